"""Two evaluations of the same utterances compared: the PER difference and how sure we are of it.

The utterances, not the phones, are the unit that was drawn: a paired bootstrap resamples them (with their
phone counts and both models' edits) and takes the spread of the corpus-level PER difference. A model is
called better or worse only when the interval leaves out zero; one that is not is "no clear difference",
which on a few hundred utterances is the usual answer for differences of a few tenths of a point.
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
    unpaired: int  # scored in one evaluation only
    paired_by: str = "id"  # or "audio": evaluations whose ids differ (made before ids came from the manifest)

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
    ids, paired_by = sorted(a.keys() & b.keys()), "id"
    if not ids:  # the same utterances under other ids (an older evaluation named them by file stem)?
        a, b, paired_by = _by_audio(a), _by_audio(b), "audio"
        ids = sorted(a.keys() & b.keys())
    if not ids:
        raise ValueError("the two evaluations share no scored utterance (by id or audio file): not the same test set")
    other = [i for i in ids if a[i]["ref"] != b[i]["ref"]]
    if other:
        raise ValueError(f"utterance {other[0]!r} (and {len(other) - 1} more) has other reference phones in B")
    refs = np.array([len(a[i]["ref"].split()) for i in ids])
    edits = np.array([[_edits(a[i]), _edits(b[i])] for i in ids])
    if not refs.sum():
        raise ValueError("the shared utterances have no reference phones")
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, draws, 256):  # in blocks: draws x utterances indices at once would be large
        picks = rng.integers(0, len(ids), size=(min(256, draws - start), len(ids)))
        phones = refs[picks].sum(axis=1)
        differences.append((edits[picks, 1].sum(axis=1) - edits[picks, 0].sum(axis=1)) / np.maximum(phones, 1))
    low, high = np.quantile(np.concatenate(differences), [(1 - level) / 2, (1 + level) / 2])
    return PairedComparison(
        utterances=len(ids),
        reference_phones=int(refs.sum()),
        per_a=float(edits[:, 0].sum() / refs.sum()),
        per_b=float(edits[:, 1].sum() / refs.sum()),
        low=float(low),
        high=float(high),
        level=level,
        b_better=int((edits[:, 1] < edits[:, 0]).sum()),
        b_worse=int((edits[:, 1] > edits[:, 0]).sum()),
        unpaired=len(a.keys() ^ b.keys()),
        paired_by=paired_by,
    )


def _by_audio(rows: dict[str, dict]) -> dict[str, dict]:
    """The rows keyed by their audio file instead (none where a file is missing or scored twice)."""
    files = [row.get("audio") for row in rows.values()]
    if None in files or len(set(files)) != len(files):
        return {}
    return {row["audio"]: row for row in rows.values()}


def _edits(row: dict) -> int:
    return row["substitutions"] + row["deletions"] + row["insertions"]
