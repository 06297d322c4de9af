"""The training loop shared by fine-tuning and pretraining: DDP, accumulation, bf16, exact resume.

A task supplies the model and three functions (`compute_loss`, `validate`, `export`); this module
owns everything else: batch order, learning-rate schedule, optimizer, checkpoints, logs and plots.
"""

from __future__ import annotations

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
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.distributed as dist

from .batches import Batch, Example, collate, plan_batches


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Optimisation settings. Defaults are the UniSpeech fine-tuning recipe (finetune.sh)."""

    max_updates: int = 20000
    lr: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1  # tri-stage schedule: warm-up / hold / decay of max_updates
    hold_fraction: float = 0.4
    decay_fraction: float = 0.5
    init_lr_scale: float = 0.01
    final_lr_scale: float = 0.05
    max_batch_seconds: float = 200.0  # padded audio per batch and process
    grad_accum: int = 1
    clip_norm: float = 10.0  # 0 = off
    bf16: bool = False  # autocast matmuls to bfloat16 (CPU with AMX/AVX512-bf16, or CUDA)
    seed: int = 1337
    valid_every: int = 500  # 0 = validate only at the end
    save_every: int = 500  # 0 = checkpoint only at the end (and on Ctrl-C)
    log_every: int = 10
    keep_last: int = 2
    stop_after: int = 0  # stop (with a checkpoint) after this many updates in this run; 0 = run to max_updates

    def __post_init__(self):
        for name in ("max_updates", "log_every", "keep_last", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("valid_every", "save_every", "stop_after", "max_batch_seconds", "lr", "clip_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")


MAX_NONFINITE_UPDATES = 20


def _every(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


class Task(Protocol):
    model: torch.nn.Module

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


def distributed() -> tuple[int, int]:
    """(rank, world size), starting the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@dataclasses.dataclass
class Progress:
    """Where the run is: restored exactly on resume."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # next batch of the epoch's plan
    best_per: float = float("inf")
    best_step: int = -1


def train(task: Task, examples: list[Example], options: TrainOptions, out_dir: str | Path,
          resume: bool = False, meta: dict | None = None, device: str = "cpu", progress_bar: bool = True) -> Progress:
    rank, world = distributed()
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    model = task.model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr, betas=options.betas, eps=options.eps,
                                  weight_decay=options.weight_decay)
    progress = Progress()
    _seed_everything(options.seed + rank)
    if resume:
        progress = _load_latest(ckpt_dir, model, optimizer, rank)
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    log = open(out / "train_log.jsonl", "a", encoding="utf-8") if rank == 0 else None
    autocast = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
                if options.bf16 else nullcontext())
    per_step = world * options.grad_accum
    first_step, started, batch = progress.step, time.perf_counter(), None
    nonfinite = skipped = 0  # updates in a row / in this run whose gradients were not finite (not applied)
    bar = _progress_bar(options.max_updates, progress.step, rank if progress_bar else 1)
    ctrl_c = _StopRequest()
    try:
        while progress.step < options.max_updates:
            if options.stop_after and progress.step - first_step >= options.stop_after:
                break
            plan = plan_batches(examples, options.max_batch_seconds, options.seed, progress.epoch, world)
            if len(plan) < per_step:
                raise ValueError(f"{len(plan)} batches per epoch, fewer than one update needs ({per_step}): "
                                 "too little data for this world size and grad_accum")
            if progress.position + per_step > len(plan):  # the epoch's remainder is dropped
                progress.epoch, progress.position = progress.epoch + 1, 0
                continue
            model.train()
            for g in optimizer.param_groups:
                g["lr"] = options.lr * tri_stage(progress.step, options)
            total_loss, total_size, stats = 0.0, 0.0, {}
            for k in range(options.grad_accum):
                index = progress.position + k * world + rank
                batch = collate([examples[i] for i in plan[index]], index=progress.epoch * 1_000_003 + index)
                sync = k == options.grad_accum - 1 or world == 1
                with (nullcontext() if sync else ddp.no_sync()), autocast:
                    loss, size, batch_stats = task.compute_loss(ddp, _to(batch, device), progress.step)
                if loss.requires_grad:
                    loss.float().backward()
                total_loss += float(loss.detach())
                total_size += size
                for key, value in batch_stats.items():
                    stats[key] = stats.get(key, 0.0) + value
            total_loss, total_size, stop = _all_sum([total_loss, total_size, float(ctrl_c.requested)], world)
            for p in params:  # DDP averaged the summed losses' gradients: rescale to the global normaliser
                if p.grad is not None:
                    p.grad.mul_(world / max(total_size, 1.0))
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, options.clip_norm if options.clip_norm > 0
                                                             else float("inf")))
            if math.isfinite(grad_norm):
                optimizer.step()
                nonfinite = 0
            else:  # skipped; a run of them means the model can no longer learn, not a passing overflow
                nonfinite, skipped = nonfinite + 1, skipped + 1
                if nonfinite >= MAX_NONFINITE_UPDATES:
                    raise RuntimeError(f"training stopped at update {progress.step + 1}: the gradients of the last "
                                       f"{nonfinite} updates were not finite (loss {total_loss / max(total_size, 1):.4g}) "
                                       "and were not applied; the checkpoints written before are kept")
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            progress.position += per_step
            loss_value = total_loss / max(total_size, 1.0)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            if log and (progress.step % options.log_every == 0 or progress.step == 1):
                _log(log, step=progress.step, loss=loss_value, lr=optimizer.param_groups[0]["lr"],
                     grad_norm=grad_norm, skipped_updates=skipped, epoch=progress.epoch,
                     seconds=time.perf_counter() - started,
                     **{k: v / max(total_size, 1.0) for k, v in stats.items()})
            if _every(progress.step, options.valid_every) or progress.step == options.max_updates:
                _validate(task, model, progress, out, log, rank, world)
            if stop:  # every rank saw the same sum, so all stop after the same update; the handler below saves
                raise KeyboardInterrupt
            if _every(progress.step, options.save_every):
                _save(ckpt_dir, model, optimizer, progress, options, meta, rank)
    except KeyboardInterrupt:
        _save(ckpt_dir, model, optimizer, progress, options, meta, rank)
        if rank == 0:
            print(f"\ninterrupted: saved a checkpoint at update {progress.step}; continue with --resume",
                  file=sys.stderr)
        raise
    except Exception:
        if rank == 0 and batch is not None:  # forensics: the state and the batch that failed
            torch.save({"batch": batch, "step": progress.step}, ckpt_dir / "crash-batch.pt")
        raise
    finally:
        ctrl_c.restore()
        bar.close()
        if log:
            log.close()
    _save(ckpt_dir, model, optimizer, progress, options, meta, rank)
    if progress.best_step < 0 and rank == 0:  # no validation data: the last model is the result
        task.export(model, out)
    if rank == 0:
        plot_training(out)
    return progress


def _validate(task: Task, model, progress: Progress, out: Path, log, rank: int, world: int) -> None:
    if rank != 0:
        _barrier(world)
        return
    metrics = task.validate(model)
    per = metrics.get("per")
    if per is not None and per < progress.best_per:
        progress.best_per, progress.best_step = per, progress.step
        task.export(model, out)
    _log(log, step=progress.step, **{f"valid_{k}": v for k, v in metrics.items()}, best_per=progress.best_per)
    _barrier(world)


def _save(ckpt_dir: Path, model, optimizer, progress: Progress, options: TrainOptions, meta: dict | None,
          rank: int) -> None:
    if rank != 0:
        return
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "progress": dataclasses.asdict(progress), "options": dataclasses.asdict(options), "meta": meta or {},
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}}
    path = ckpt_dir / f"checkpoint-{progress.step:07d}.pt"
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a checkpoint is either complete or absent
    for old in sorted(ckpt_dir.glob("checkpoint-*.pt"))[:-options.keep_last]:
        old.unlink()


def _load_latest(ckpt_dir: Path, model, optimizer, rank: int) -> Progress:
    checkpoints = sorted(ckpt_dir.glob("checkpoint-*.pt"))
    if not checkpoints:
        raise ValueError(f"--resume: no checkpoint in {ckpt_dir}")
    state = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    if rank == 0:
        print(f"resuming from {checkpoints[-1].name}", file=sys.stderr)
    return Progress(**state["progress"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to(batch: Batch, device: str) -> Batch:
    if device == "cpu":
        return batch
    return dataclasses.replace(batch, wav=batch.wav.to(device), lengths=batch.lengths.to(device))


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


def _all_sum(values: list[float], world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _log(log, **row: Any) -> None:
    log.write(json.dumps(row) + "\n")
    log.flush()


def _progress_bar(total: int, start: int, rank: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=start, unit="upd", desc="training", dynamic_ncols=True,
                disable=rank != 0, file=sys.stderr)


def plot_training(out: Path) -> None:
    """training.png from train_log.jsonl: training loss and validation PER against updates; for pretraining
    also the contrastive accuracy and the codevector perplexity (is the codebook collapsing?)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    train_rows = {r["step"]: r["loss"] for r in rows if "loss" in r}
    valid_rows = {r["step"]: r["valid_per"] for r in rows if r.get("valid_per") is not None}
    quantizer_rows = {r["step"]: (r.get("accuracy", float("nan")), r["perplexity"]) for r in rows if "perplexity" in r}
    fig, axes = plt.subplots(1, 2 if quantizer_rows else 1, figsize=(12 if quantizer_rows else 7, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(list(train_rows), list(train_rows.values()), color="#4472c4", label="training loss")
    ax.set_xlabel("update")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    if valid_rows:
        ax2 = ax.twinx()
        ax2.plot(list(valid_rows), [100 * v for v in valid_rows.values()], "o-", color="#c0504d", label="valid PER")
        ax2.set_ylabel("validation PER (%)")
        ax2.legend(loc="upper center")
    ax.legend(loc="upper right")
    if quantizer_rows:
        steps, (accuracy, perplexity) = list(quantizer_rows), zip(*quantizer_rows.values())
        ax = axes[0, 1]
        ax.plot(steps, accuracy, color="#4472c4", label="contrastive accuracy")
        ax.set_xlabel("update")
        ax.set_ylabel("contrastive accuracy")
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left")
        ax2 = ax.twinx()
        ax2.plot(steps, perplexity, color="#9bbb59", label="codevector perplexity")
        ax2.set_ylabel("codevector perplexity")
        ax2.set_yscale("log")
        ax2.legend(loc="upper right")
    fig.tight_layout()
    tmp = out / ".training.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out / "training.png")


def read_recipe(recipe_cls, path: str | Path | None, **overrides):
    """A recipe dataclass (with a `train: TrainOptions` field) from a TOML file (recipe keys at the top,
    optimisation in [train]), with explicit overrides on top; None overrides are ignored."""
    recipe_keys: dict = {}
    if path:
        try:
            import tomllib
        except ImportError as e:  # Python 3.10
            raise ValueError("TOML recipes need Python 3.11 or newer; pass the settings as options") from e
        try:
            recipe_keys = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"{path}: cannot read the recipe ({e})") from e
    train_fields = {f.name for f in dataclasses.fields(TrainOptions)}
    base_train = dataclasses.asdict(recipe_cls().train)
    train_keys = {**base_train, **recipe_keys.pop("train", {})}
    for key, value in overrides.items():
        if value is not None:
            (train_keys if key in train_fields else recipe_keys)[key] = value
    try:
        for key in ("betas",):
            train_keys[key] = tuple(train_keys[key])
        for key, value in list(recipe_keys.items()):
            if isinstance(value, list):
                recipe_keys[key] = tuple(value)
        return recipe_cls(train=TrainOptions(**train_keys), **recipe_keys)
    except TypeError as e:
        raise ValueError(f"unknown recipe setting ({e})") from e
