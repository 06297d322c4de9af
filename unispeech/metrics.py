"""Edit operations between phone sequences, error counts and the phone error rate (PER)."""

from __future__ import annotations

import dataclasses
from collections import Counter

EMPTY = "∅"  # the missing side of an insertion or deletion in confusion counts


def edit_ops(ref: list[str], hyp: list[str]) -> list[tuple[str, str | None, str | None]]:
    """Minimum-edit alignment: ("=", r, h), ("S", r, h), ("D", r, None), ("I", None, h) in order. Of the
    alignments with the fewest edits, one with the most matches ("a b" / "b c": D, =, I rather than S, S, which
    jiwer gives): the number of phones recognised right must not depend on a tie-break."""
    n, m = len(ref), len(hyp)
    edit = n + m + 1  # an edit costs more than all matches can save: fewest edits first, then most matches
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i * edit
    for j in range(m + 1):
        cost[0][j] = j * edit
    for i in range(1, n + 1):
        row, prev, r = cost[i], cost[i - 1], ref[i - 1]
        for j in range(1, m + 1):
            row[j] = min(prev[j - 1] + (edit if r != hyp[j - 1] else -1), prev[j] + edit, row[j - 1] + edit)
    ops, i, j = [], n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (edit if ref[i - 1] != hyp[j - 1] else -1):
            ops.append(("=" if ref[i - 1] == hyp[j - 1] else "S", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + edit:
            ops.append(("D", ref[i - 1], None))
            i -= 1
        else:
            ops.append(("I", None, hyp[j - 1]))
            j -= 1
    return ops[::-1]


@dataclasses.dataclass
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_phones: int = 0

    @property
    def edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def correct(self) -> int:
        """Reference phones recognised as themselves: a PER that falls because a model says less (deletions
        for insertions) leaves this where it was, or lowers it."""
        return self.reference_phones - self.substitutions - self.deletions

    @property
    def per(self) -> float:
        """Edits / reference phones; an empty reference scores 0 if the hypothesis is empty too, else 1 per
        insertion."""
        return self.edits / self.reference_phones if self.reference_phones else float(self.edits)

    def add(self, ops) -> ErrorCounts:
        kinds = Counter(op for op, _, _ in ops)
        self.substitutions += kinds["S"]
        self.deletions += kinds["D"]
        self.insertions += kinds["I"]
        self.reference_phones += kinds["="] + kinds["S"] + kinds["D"]
        return self


def phone_error_rate(refs: list[list[str]], hyps: list[list[str]]) -> ErrorCounts:
    """Corpus-level counts: total edits over total reference phones."""
    total = ErrorCounts()
    for ref, hyp in zip(refs, hyps, strict=True):
        total.add(edit_ops(list(ref), list(hyp)))
    return total
