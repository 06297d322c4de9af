"""Training settings: the optimisation options every recipe shares, TOML recipes, and their command-line flags.

A recipe is a frozen dataclass with a `train: TrainOptions` field (FinetuneRecipe, PretrainRecipe); its TOML
file has the recipe's keys at the top and the optimisation in [train]. Flags are spelled like the fields.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

# Options that may differ on --resume: they change neither the data plan nor the model being trained.
RESUMABLE_CHANGES = ("max_updates", "stop_after", "valid_every", "save_every", "log_every", "keep_last")


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


def read_recipe(recipe_cls, path: str | Path | None, **overrides):
    """A recipe dataclass from a TOML file, with explicit overrides on top; None overrides are ignored."""
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
    _refuse_unknown(path, recipe_keys, {f.name for f in dataclasses.fields(recipe_cls)}, train_fields)
    train_keys = {**dataclasses.asdict(recipe_cls().train), **recipe_keys.pop("train", {})}
    for key, value in overrides.items():
        if value is not None:
            (train_keys if key in train_fields else recipe_keys)[key] = value
    try:
        train_keys["betas"] = tuple(train_keys["betas"])
        recipe_keys = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe_keys.items()}
        return recipe_cls(train=TrainOptions(**train_keys), **recipe_keys)
    except TypeError as e:
        raise ValueError(f"unknown recipe setting ({e})") from e


def _refuse_unknown(path, keys: dict, fields: set[str], train_fields: set[str]) -> None:
    """Name each setting the recipe does not have, and where a misplaced one belongs."""
    train = keys.get("train", {})
    unknown = [k for k in keys if k not in fields] + [f"train.{k}" for k in train if k not in train_fields]
    if unknown:
        hint = [k for k in unknown if k in train_fields]
        where = f"; {', '.join(hint)} belong{'s' if len(hint) == 1 else ''} under [train]" if hint else ""
        raise ValueError(f"{path}: unknown recipe setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{where}")


def positive_int(text: str) -> int:
    return _ranged(int, text, low=1)


def natural_int(text: str) -> int:
    return _ranged(int, text, low=0)


def positive_float(text: str) -> float:
    value = _ranged(float, text, low=0.0)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _ranged(kind, text: str, low):
    try:
        value = kind(text)
    except ValueError:
        kind_name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {kind_name}, not {text!r}") from None
    if value != value or value < low:  # NaN too
        raise argparse.ArgumentTypeError(f"must be at least {low}, not {text}")
    return value


def add_train_options(p: argparse.ArgumentParser, defaults: TrainOptions) -> None:
    """The optimisation flags of `finetune` and `pretrain`, each spelled like its TrainOptions field."""
    d = defaults
    p.add_argument("--recipe", help="TOML recipe file (options given here override it)")
    p.add_argument("--resume", action="store_true", help="continue from the last intact checkpoint in --out")
    p.add_argument("--max-updates", type=positive_int, help=f"total updates (recipe: {d.max_updates})")
    p.add_argument("--lr", type=positive_float, help=f"peak learning rate (recipe: {d.lr:g})")
    p.add_argument(
        "--max-batch-seconds",
        "--batch-seconds",
        dest="max_batch_seconds",
        type=positive_float,
        help=f"padded audio seconds per batch and process (recipe: {d.max_batch_seconds:g})",
    )
    p.add_argument("--grad-accum", type=positive_int, help=f"batches per update and process (recipe: {d.grad_accum})")
    p.add_argument(
        "--bf16",
        action="store_true",
        default=None,
        help="bfloat16 autocast (fast on CPUs with AMX / AVX512-bf16, and on CUDA)",
    )
    p.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu; under torchrun, cuda = each rank's GPU)"
    )
    p.add_argument("--seed", type=int, help=f"random seed (recipe: {d.seed})")
    p.add_argument("--valid-every", type=natural_int, help=f"updates between validations (recipe: {d.valid_every})")
    p.add_argument("--save-every", type=natural_int, help=f"updates between checkpoints (recipe: {d.save_every})")
    p.add_argument(
        "--stop-after", type=natural_int, help="stop (with a checkpoint) after this many updates in this run"
    )


def train_overrides(args: argparse.Namespace) -> dict:
    """The TrainOptions fields the command line set (None where it did not)."""
    names = (
        "max_updates",
        "lr",
        "max_batch_seconds",
        "grad_accum",
        "bf16",
        "seed",
        "valid_every",
        "save_every",
        "stop_after",
    )
    return {name: getattr(args, name) for name in names}


def as_read_now(kind, saved: dict) -> dict:
    """A checkpoint's settings as this version reads them: a setting added since it was written takes its
    default, which keeps the old behaviour (so an upgrade does not block --resume). A setting this version
    no longer has leaves the saved dict as it was, and the comparison names it."""
    try:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
        if kind is TrainOptions:
            return dataclasses.asdict(TrainOptions(**values))
        return dataclasses.asdict(kind(**{**values, "train": TrainOptions()}))
    except (TypeError, ValueError):
        return saved


def changed_on_resume(saved: dict, current: dict, allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """'name: saved -> now' for every setting that differs (lists and tuples compare alike)."""

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    return [
        f"{key}: {plain(saved.get(key))} -> {plain(value)}"
        for key, value in current.items()
        if key not in allowed and plain(saved.get(key)) != plain(value)
    ]
