"""Training checkpoints: written atomically with a SHA-256 beside them, verified on resume (falling back to the
newest intact one), and refused when the run's settings changed in a way that would silently alter it."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sys
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, file_sha256
from .recipe import TrainOptions, as_read_now, changed_on_resume


@dataclasses.dataclass
class Progress:
    """Where the run is: restored exactly on resume."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # next batch of the epoch's plan
    best_per: float = float("inf")
    best_step: int = -1


def data_fingerprint(examples) -> dict:
    """What the batch plan depends on besides the options: how many clips, and how long each is."""
    lengths = np.array([e.audio.size for e in examples], dtype=np.int64)
    return {"examples": len(examples), "samples_sha256": hashlib.sha256(lengths.tobytes()).hexdigest()[:16]}


def write_checkpoint(
    ckpt_dir: Path,
    model,
    optimizer,
    progress: Progress,
    options: TrainOptions,
    meta: dict,
    name: str | None = None,
    extra: dict | None = None,
) -> Path:
    """checkpoint-STEP.pt (+ .sha256); keeps the last `options.keep_last` regular checkpoints."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "progress": dataclasses.asdict(progress),
        "options": dataclasses.asdict(options),
        "meta": meta,
        "rng": _rng_states(),
        **(extra or {}),
    }
    path = ckpt_dir / (name or f"checkpoint-{progress.step:07d}.pt")
    atomic_write(path, lambda tmp: torch.save(state, tmp))  # a checkpoint is either complete or absent
    atomic_write(_digest_path(path), f"{file_sha256(path)}  {path.name}\n")
    if name is None:
        for old in sorted(ckpt_dir.glob("checkpoint-*.pt"))[: -options.keep_last]:
            old.unlink()
            _digest_path(old).unlink(missing_ok=True)
    return path


def resume_from_latest(
    ckpt_dir: Path, model, optimizer, options: TrainOptions, meta: dict, rank: int, recipe_kind=None
) -> Progress:
    """Restore model, optimizer, RNG and position from the newest checkpoint that verifies; `recipe_kind`
    (the recipe's dataclass) reads the checkpoint's recipe as this version would."""
    checkpoints = sorted(ckpt_dir.glob("checkpoint-*.pt"))
    if not checkpoints:
        raise ValueError(f"--resume: no checkpoint in {ckpt_dir}")
    bad = []
    for path in reversed(checkpoints):
        try:
            state = read_checkpoint(path)
        except ValueError as e:
            bad.append(str(e))
            if rank == 0:
                print(f"unispeech: warning: {e}; trying the previous checkpoint", file=sys.stderr)
            continue
        check_same_run(state, options, meta, path, recipe_kind)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _restore_rng(state["rng"])
        if rank == 0:
            print(f"resuming from {path.name}", file=sys.stderr)
        return Progress(**state["progress"])
    raise ValueError(f"--resume: no intact checkpoint in {ckpt_dir} ({'; '.join(bad)})")


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout and Gumbel noise draw on the GPU
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def read_checkpoint(path: Path) -> dict:
    """A verified checkpoint; ValueError naming the file if it is empty, truncated, corrupt or altered."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes)")
    digest = _digest_path(path)
    if digest.is_file():
        expected = digest.read_text(encoding="utf-8").split()[0]
        if file_sha256(path) != expected:
            raise ValueError(f"{path}: corrupt (its SHA-256 differs from the one recorded when it was written)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{path}: unreadable, truncated or corrupt ({type(e).__name__}: {str(e)[:120]})") from e
    if not isinstance(state, dict) or not {"model", "optimizer", "progress", "rng"} <= set(state):
        raise ValueError(f"{path}: not a unispeech training checkpoint")
    return state


def check_same_run(state: dict, options: TrainOptions, meta: dict, path: Path, recipe_kind=None) -> None:
    """Refuse a resume whose options, recipe, world size or data differ from the checkpoint's (the plan
    position and the model would silently mean something else); a longer --max-updates is fine. Settings
    that this version added since the checkpoint was written count as their defaults (`as_read_now`)."""
    changed = changed_on_resume(as_read_now(TrainOptions, state.get("options", {})), dataclasses.asdict(options))
    saved_meta = state.get("meta", {})
    saved_recipe = saved_meta.get("recipe", {})
    if recipe_kind is not None:
        saved_recipe = as_read_now(recipe_kind, saved_recipe)
    saved_recipe = {k: v for k, v in saved_recipe.items() if k != "train"}
    recipe = {k: v for k, v in meta.get("recipe", {}).items() if k != "train"}
    changed += changed_on_resume(saved_recipe, recipe, allowed=())
    for key in ("world_size", "data"):
        if key in saved_meta and saved_meta[key] != meta.get(key):
            changed.append(f"{key}: {saved_meta[key]} -> {meta.get(key)}")
    if changed:
        raise ValueError(
            f"--resume: {path.name} was written with other settings ({'; '.join(changed)}); "
            "resume with the same settings (only --max-updates, --stop-after, --valid-every and "
            "--save-every may change), or train into a new --out folder"
        )


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")
