"""Two evaluations of the same utterances compared: the PER difference and how sure we are of it.

The utterances, not the phones, are the unit that was drawn: a paired bootstrap resamples them (with their
phone counts and both models' edits) and takes the spread of the corpus-level PER difference. A model is
called better or worse only when the interval leaves out zero; one that is not is "no clear difference",
which on a few hundred utterances is the usual answer for differences of a few tenths of a point.

Beside the PER it compares the share of reference phones recognised right (not substituted, not deleted), drawn
from the same resamplings: a model can lower its PER by saying less (fewer insertions, more deletions) while it
hears no more, which only that share shows (docs/demo-model.md: KLettres' letters, Fish Fillets' actors).

That interval is about two trained models. Two recipes differ also by the luck of a training run (its seed
moved our held-out sets by 1-2 points, docs/demo-model.md), so each side may be several runs (seeds) of
its recipe: a draw then also resamples each side's runs and averages their edits per utterance (a two-level
bootstrap; with two or three runs a side it is a rough guide, not a precise one).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

UTTERANCES = "utterances.jsonl"  # evaluate.py's per-utterance rows


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    utterances: int  # scored in both
    reference_phones: int
    per_a: float
    per_b: float
    low: float  # the interval of per_b - per_a
    high: float
    level: float
    b_better: int  # utterances with fewer edits in B
    b_worse: int
    unpaired: int  # scored in some evaluations only
    paired_by: str = "id"  # or "audio": evaluations whose ids differ (made before ids came from the manifest)
    runs_a: int = 1  # evaluations (training runs) on each side; PERs and edits are their means
    runs_b: int = 1
    right_a: float = 0.0  # share of the reference phones recognised right (neither substituted nor deleted)
    right_b: float = 0.0
    right_low: float = 0.0  # the interval of right_b - right_a, from the same draws
    right_high: float = 0.0

    @property
    def difference(self) -> float:
        return self.per_b - self.per_a

    @property
    def verdict(self) -> str:
        if self.high < 0:
            return "B better"
        if self.low > 0:
            return "B worse"
        return "no clear difference"

    @property
    def right_difference(self) -> float:
        return self.right_b - self.right_a

    def cell(self) -> str:
        """B - A in points with its interval, and the verdict where it is clear: "-2.90 [-3.53, -2.26] better"."""
        verdict = {"B better": " better", "B worse": " worse"}.get(self.verdict, "")
        return f"{100 * self.difference:+.2f} [{100 * self.low:+.2f}, {100 * self.high:+.2f}]{verdict}"

    @property
    def says_less(self) -> bool:
        """B's PER is clearly lower while it clearly gets fewer phones right: it says less, it does not hear more."""
        return self.high < 0 and self.right_high < 0


def read_evaluation(folder: str | Path) -> dict[str, dict]:
    """The scored rows of an `unispeech evaluate --out` folder by utterance id (skipped ones left out)."""
    path = Path(folder) / UTTERANCES
    if not path.is_file():
        raise ValueError(f"{folder}: not an evaluation folder (no {UTTERANCES}; `unispeech evaluate --out` makes one)")
    rows = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            if "skipped" not in row:
                kept = {k: row[k] for k in ("ref", "substitutions", "deletions", "insertions")}
                rows[row["id"]] = {**kept, "audio": row.get("audio")}
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a row of `unispeech evaluate` ({e})") from None
    return rows


def compare(
    a: dict[str, dict], b: dict[str, dict], draws: int = 2000, level: float = 0.95, seed: int = 0
) -> PairedComparison:
    """B's PER against A's on the utterances both scored, with a `level` paired-bootstrap interval of the
    difference (`draws` resamplings, seeded: the same inputs give the same interval)."""
    return compare_runs([a], [b], draws, level, seed)


def compare_runs(
    a_runs: list[dict[str, dict]], b_runs: list[dict[str, dict]], draws: int = 2000, level: float = 0.95, seed: int = 0
) -> PairedComparison:
    """As `compare`, each side several evaluations (training runs of one recipe) of the same utterances: PERs
    are the runs' mean, and each draw resamples each side's runs (where it has more than one) as well as the
    utterances."""
    runs = [*a_runs, *b_runs]
    ids, paired_by = sorted(set.intersection(*(set(r) for r in runs))), "id"
    if not ids:  # the same utterances under other ids (an older evaluation named them by file stem)?
        runs, paired_by = [_by_audio(r) for r in runs], "audio"
        ids = sorted(set.intersection(*(set(r) for r in runs)))
    if not ids:
        raise ValueError("the evaluations share no scored utterance (by id or audio file): not the same test set")
    first = runs[0]
    for k, run in enumerate(runs[1:], 1):
        other = [i for i in ids if run[i]["ref"] != first[i]["ref"]]
        if other:
            side = f"B's evaluation {k - len(a_runs) + 1}" if k >= len(a_runs) else f"A's evaluation {k + 1}"
            raise ValueError(f"utterance {other[0]!r} (and {len(other) - 1} more) has other reference phones in {side}")
    refs = np.array([len(first[i]["ref"].split()) for i in ids])
    if not refs.sum():
        raise ValueError("the shared utterances have no reference phones")
    counts_a, counts_b = (  # (utterances, runs, [edits, phones right])
        np.array([[(_edits(r[i]), _right(r[i], n)) for r in side] for i, n in zip(ids, refs)])
        for side in (runs[: len(a_runs)], runs[len(a_runs) :])
    )
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, draws, 256):  # in blocks: draws x utterances indices at once would be large
        block = min(256, draws - start)
        picks = rng.integers(0, len(ids), size=(block, len(ids)))
        a, b = (
            _resampled_runs(c, block, rng)[np.arange(block)[:, None], picks].sum(axis=1) for c in (counts_a, counts_b)
        )
        differences.append((b - a) / np.maximum(refs[picks].sum(axis=1), 1)[:, None])  # (block, [PER, right])
    quantiles = np.quantile(np.concatenate(differences), [(1 - level) / 2, (1 + level) / 2], axis=0)
    (low, right_low), (high, right_high) = quantiles
    mean_a, mean_b = counts_a.mean(axis=1), counts_b.mean(axis=1)
    return PairedComparison(
        utterances=len(ids),
        reference_phones=int(refs.sum()),
        per_a=float(mean_a[:, 0].sum() / refs.sum()),
        per_b=float(mean_b[:, 0].sum() / refs.sum()),
        low=float(low),
        high=float(high),
        level=level,
        b_better=int((mean_b[:, 0] < mean_a[:, 0]).sum()),
        b_worse=int((mean_b[:, 0] > mean_a[:, 0]).sum()),
        unpaired=len(set.union(*(set(r) for r in runs))) - len(ids),
        paired_by=paired_by,
        runs_a=len(a_runs),
        runs_b=len(b_runs),
        right_a=float(mean_a[:, 1].sum() / refs.sum()),
        right_b=float(mean_b[:, 1].sum() / refs.sum()),
        right_low=float(right_low),
        right_high=float(right_high),
    )


def _resampled_runs(counts: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """(utterances, runs, k) counts -> (block, utterances, k): per draw, the mean over runs drawn with replacement
    (one run: its counts, and no random numbers spent, so one-run comparisons keep their intervals)."""
    if counts.shape[1] == 1:
        return np.broadcast_to(counts[:, 0], (block, *counts[:, 0].shape))
    chosen = rng.integers(0, counts.shape[1], size=(block, counts.shape[1]))
    return counts[:, chosen].mean(axis=2).transpose(1, 0, 2)


def _by_audio(rows: dict[str, dict]) -> dict[str, dict]:
    """The rows keyed by their audio file instead (none where a file is missing or scored twice)."""
    files = [row.get("audio") for row in rows.values()]
    if None in files or len(set(files)) != len(files):
        return {}
    return {row["audio"]: row for row in rows.values()}


def _edits(row: dict) -> int:
    return row["substitutions"] + row["deletions"] + row["insertions"]


def _right(row: dict, reference_phones: int) -> int:
    return reference_phones - row["substitutions"] - row["deletions"]
