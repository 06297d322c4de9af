"""The training loop shared by fine-tuning and pretraining: DDP, accumulation, bf16, exact resume.

A task supplies the model and three functions (`compute_loss`, `validate`, `export`); this module
owns everything else: batch order, learning-rate schedule, optimizer, checkpoints, logs and plots.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from ..precision import bf16_autocast, resolve_device
from ..progress import progress_bar
from .batches import Batch, Example, batch_to, collate, plan_batches
from .checkpoints import (
    Progress,
    data_fingerprint,
    resume_from_latest,
    write_checkpoint,
)
from .log import LOG_NAME, plot_training
from .recipe import TrainOptions

MAX_NONFINITE_UPDATES = 20


def _every(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


class Task(Protocol):
    model: torch.nn.Module
    recipe: object  # the recipe dataclass the run was started with

    def compute_loss(self, model: torch.nn.Module, batch: Batch, step: int) -> tuple[torch.Tensor, float, dict]:
        """Summed loss over the batch, its normaliser (sentences, masked frames...), and stats to log."""

    def validate(self, model: torch.nn.Module) -> dict: ...

    def export(self, model: torch.nn.Module, folder: Path) -> None: ...


def tri_stage(step: int, o: TrainOptions) -> float:
    """Learning-rate multiplier: linear warm-up from init_lr_scale, hold at 1, exponential decay to
    final_lr_scale (linear to 0 when final_lr_scale is 0)."""
    warmup, hold = int(o.warmup_fraction * o.max_updates), int(o.hold_fraction * o.max_updates)
    decay = max(1, int(o.decay_fraction * o.max_updates))
    if step < warmup:
        return o.init_lr_scale + (1 - o.init_lr_scale) * step / warmup
    if step < warmup + hold:
        return 1.0
    if step < warmup + hold + decay:
        done = (step - warmup - hold) / decay
        if o.final_lr_scale <= 0:  # linear decay to zero (fairseq's polynomial_decay, power 1)
            return 1.0 - done
        return math.exp(math.log(o.final_lr_scale) * done)
    return max(o.final_lr_scale, 0.0)


def distributed(device_type: str = "cpu") -> tuple[int, int]:
    """(rank, world size), starting the process group when launched by torchrun (NCCL for CUDA training)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        # left to interpreter exit, gloo's threads are sometimes torn down still running: the rank aborts
        atexit.register(_end_process_group)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _end_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@dataclasses.dataclass
class Run:
    """Everything one training run holds; the functions below each do one step of it."""

    task: Task
    examples: list[Example]
    options: TrainOptions
    out: Path
    model: torch.nn.Module
    ddp: torch.nn.Module
    optimizer: torch.optim.Optimizer
    progress: Progress
    rank: int
    world: int
    device: torch.device
    meta: dict
    log: Any = None
    nonfinite: int = 0  # updates in a row whose gradients were not finite (not applied)
    skipped: int = 0  # such updates in this run
    batch: Batch | None = None  # the batch being computed, saved if it crashes
    started: float = dataclasses.field(default_factory=time.perf_counter)  # the logged seconds count from here

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


def train(
    task: Task,
    examples: list[Example],
    options: TrainOptions,
    out_dir: str | Path,
    resume: bool = False,
    meta: dict | None = None,
    device: str | torch.device = "cpu",
    progress_bar: bool = True,
) -> Progress:
    """Train `task.model` on `examples` to `options.max_updates`; checkpoints, logs and the exported model go
    to `out_dir`. With `resume`, continue exactly from the newest intact checkpoint there."""
    run = start_run(task, examples, options, Path(out_dir), resume, meta or {}, device)
    if resume and run.progress.step >= options.max_updates:
        if run.rank == 0:
            print(
                f"unispeech: nothing to do: the run is at update {run.progress.step}, --max-updates is "
                f"{options.max_updates} (raise it to train on)",
                file=sys.stderr,
            )
        return run.progress
    bar = _progress_bar(options.max_updates, run.progress.step, run.rank if progress_bar else 1)
    ctrl_c = _StopRequest()
    first_step = run.progress.step
    run.log = open(run.out / LOG_NAME, "a", encoding="utf-8") if run.rank == 0 else None
    try:
        while run.progress.step < options.max_updates:
            if options.stop_after and run.progress.step - first_step >= options.stop_after:
                break
            plan = next_plan(run)
            if plan is None:
                continue
            stop = train_one_update(run, plan, ctrl_c.requested)
            bar.update(1)
            bar.set_postfix(lr=f"{run.optimizer.param_groups[0]['lr']:.2e}")
            after_update(run, stop)
    except KeyboardInterrupt:
        save_checkpoint(run)
        if run.rank == 0:
            print(
                f"\ninterrupted: saved a checkpoint at update {run.progress.step}; continue with --resume",
                file=sys.stderr,
            )
        raise
    except Exception:
        save_crash(run)
        raise
    finally:
        ctrl_c.restore()
        bar.close()
        if run.log:
            run.log.close()
    finish(run)
    return run.progress


def start_run(
    task: Task, examples: list[Example], options: TrainOptions, out: Path, resume: bool, meta: dict, device
) -> Run:
    device = training_device(device)
    rank, world = distributed(device.type)
    if rank == 0:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    model = task.model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=options.lr, betas=options.betas, eps=options.eps, weight_decay=options.weight_decay
    )
    _seed_everything(options.seed + rank)
    meta = {**meta, "world_size": world, "data": data_fingerprint(examples)}
    progress = Progress()
    if resume:
        progress = resume_from_latest(out / "checkpoints", model, optimizer, options, meta, rank, type(task.recipe))
    ddp = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    return Run(task, examples, options, out, model, ddp, optimizer, progress, rank, world, device, meta)


def training_device(device: str | torch.device) -> torch.device:
    """The checked device; plain "cuda" under torchrun is each process's own GPU (LOCAL_RANK)."""
    device = resolve_device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def next_plan(run: Run) -> list[list[int]] | None:
    """This epoch's batch plan if the next update fits in it; else move to the next epoch (None)."""
    o, p = run.options, run.progress
    per_step = run.world * o.grad_accum
    plan = plan_batches(run.examples, o.max_batch_seconds, o.seed, p.epoch, run.world)
    if len(plan) < per_step:
        raise ValueError(
            f"{len(plan)} batches per epoch, fewer than one update needs ({per_step}): "
            "too little data for this world size and grad_accum"
        )
    if p.position + per_step > len(plan):  # the epoch's remainder is dropped
        p.epoch, p.position = p.epoch + 1, 0
        return None
    return plan


def train_one_update(run: Run, plan: list[list[int]], stop_requested: bool) -> bool:
    """Accumulate the gradients of grad_accum batches per process, apply them; -> whether to stop now."""
    o, p = run.options, run.progress
    run.model.train()
    for group in run.optimizer.param_groups:
        group["lr"] = o.lr * tri_stage(p.step, o)
    total_loss, total_size, stats = 0.0, 0.0, {}
    autocast = bf16_autocast(run.device, o.bf16)
    for k in range(o.grad_accum):
        index = p.position + k * run.world + run.rank
        run.batch = collate([run.examples[i] for i in plan[index]], index=p.epoch * 1_000_003 + index)
        sync = k == o.grad_accum - 1 or run.world == 1
        with nullcontext() if sync else run.ddp.no_sync(), autocast:
            loss, size, batch_stats = run.task.compute_loss(run.ddp, batch_to(run.batch, run.device), p.step)
        if loss.requires_grad:
            loss.float().backward()
        total_loss += float(loss.detach())
        total_size += size
        for key, value in batch_stats.items():
            stats[key] = stats.get(key, 0.0) + value
    total_loss, total_size, stop = _all_sum([total_loss, total_size, float(stop_requested)], run.world, run.device)
    grad_norm = apply_gradients(run, total_loss, total_size)
    p.step += 1
    p.position += run.world * o.grad_accum
    if run.log and (p.step % o.log_every == 0 or p.step == 1):
        _log(
            run.log,
            step=p.step,
            loss=total_loss / max(total_size, 1.0),
            lr=run.optimizer.param_groups[0]["lr"],
            grad_norm=grad_norm,
            skipped_updates=run.skipped,
            epoch=p.epoch,
            seconds=time.perf_counter() - run.started,
            **{k: v / max(total_size, 1.0) for k, v in stats.items()},
        )
    return bool(stop)


def apply_gradients(run: Run, total_loss: float, total_size: float) -> float:
    """Rescale to the global normaliser, clip, step unless non-finite; -> the gradient norm."""
    params = run.params
    for p in params:  # DDP averaged the summed losses' gradients: rescale to the global normaliser
        if p.grad is not None:
            p.grad.mul_(run.world / max(total_size, 1.0))
    clip = run.options.clip_norm if run.options.clip_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
    if math.isfinite(grad_norm):
        run.optimizer.step()
        run.nonfinite = 0
    else:  # skipped; a run of them means the model can no longer learn, not a passing overflow
        run.nonfinite, run.skipped = run.nonfinite + 1, run.skipped + 1
        if run.nonfinite >= MAX_NONFINITE_UPDATES:
            raise RuntimeError(
                f"training stopped at update {run.progress.step + 1}: the gradients of the last "
                f"{run.nonfinite} updates were not finite (loss {total_loss / max(total_size, 1):.4g}) "
                "and were not applied; the checkpoints written before are kept"
            )
    run.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def after_update(run: Run, stop: bool) -> None:
    """Validate, stop on a Ctrl-C seen by any rank (all stop at the same update), checkpoint."""
    step = run.progress.step
    if _every(step, run.options.valid_every) or step == run.options.max_updates:
        validate(run)
    if stop:  # the handler in train() saves the checkpoint
        raise KeyboardInterrupt
    if _every(step, run.options.save_every):
        save_checkpoint(run)


def validate(run: Run) -> None:
    """The task's validation figures, logged as valid_*; a new best PER exports the model."""
    if run.rank != 0:
        _barrier(run.world)
        return
    metrics = run.task.validate(run.model)
    per, p = metrics.get("per"), run.progress
    if per is not None and per < p.best_per:
        p.best_per, p.best_step = per, p.step
        run.task.export(run.model, run.out)
    best = {"best_per": p.best_per} if per is not None else {}
    _log(run.log, step=p.step, **{f"valid_{k}": v for k, v in metrics.items()}, **best)
    _barrier(run.world)


def finish(run: Run) -> None:
    save_checkpoint(run)
    if run.rank == 0:
        if run.progress.best_step < 0:  # no validation PER: the last model is the result
            run.task.export(run.model, run.out)
        plot_training(run.out)


def save_checkpoint(run: Run) -> None:
    if run.rank == 0:
        write_checkpoint(run.ckpt_dir, run.model, run.optimizer, run.progress, run.options, run.meta)


def save_crash(run: Run) -> None:
    """Forensics (icefall): the state at the failing update and the batch it failed on, beside the checkpoints."""
    if run.rank == 0 and run.batch is not None:
        write_checkpoint(
            run.ckpt_dir,
            run.model,
            run.optimizer,
            run.progress,
            run.options,
            run.meta,
            name=f"crash-{run.progress.step:07d}.pt",
            extra={"batch": run.batch},
        )
        print(
            f"unispeech: the state and the failing batch are in {run.ckpt_dir / f'crash-{run.progress.step:07d}.pt'}",
            file=sys.stderr,
        )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _StopRequest:
    """Ctrl-C during training finishes the current update, then stops with a checkpoint. The handler only sets
    a flag, so the request cannot be swallowed by library code that catches exceptions, and all DDP ranks stop
    at the same update; a second Ctrl-C interrupts at once (the checkpoint is still written)."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(t)
    return t.tolist()


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _log(log, **row: Any) -> None:
    log.write(json.dumps(row) + "\n")
    log.flush()


def _progress_bar(total: int, start: int, rank: int):
    return progress_bar(total=total, initial=start, unit="upd", desc="training", dynamic_ncols=True, enabled=rank == 0)
