"""The training log (train_log.jsonl, one JSON object per logged update or validation) and its plot."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write

LOG_NAME = "train_log.jsonl"


def read_log(out: str | Path) -> list[dict]:
    """Every row of a run's log; a last line cut short by an interruption is skipped."""
    path = Path(out) / LOG_NAME
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def training_rows(out: str | Path) -> list[dict]:
    """The rows logged after training updates (with a loss)."""
    return [r for r in read_log(out) if "loss" in r]


def validation_rows(out: str | Path) -> list[dict]:
    """The rows logged after validations (their keys start with valid_)."""
    return [r for r in read_log(out) if any(k.startswith("valid_") for k in r)]


def plot_training(out: Path) -> None:
    """training.png from train_log.jsonl: training loss and validation PER against updates; for pretraining
    also the contrastive accuracy and the codevector perplexity (is the codebook collapsing?)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(out)
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
    atomic_write(out / "training.png", lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
