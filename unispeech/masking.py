"""Span masks over time (SpecAugment-style, as in wav2vec 2.0 / UniSpeech) and over channels."""

from __future__ import annotations

import torch


def span_mask(batch: int, size: int, prob: float, length: int, lengths: torch.Tensor | None = None,
              min_masks: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, size) bool mask of random spans of `length` steps.

    As in fairseq's `compute_mask_indices` ("static" lengths): each row gets
    int(prob * valid / length + U[0,1)) span starts (at least `min_masks`), drawn without replacement
    among the positions where a whole span fits; spans may overlap, so somewhat less than `prob`
    of the row ends up masked. Only a row's valid part (`lengths`) is masked.
    """
    mask = torch.zeros(batch, size, dtype=torch.bool)
    if prob <= 0 or length <= 0:
        return mask
    valid = lengths.tolist() if lengths is not None else [size] * batch
    for row, n in enumerate(valid):
        n = int(n)
        count = int(prob * n / length + float(torch.rand((), generator=generator)))
        count = max(count, min_masks)
        room = n - length + 1
        if count <= 0 or room <= 0:
            continue
        starts = torch.randperm(room, generator=generator)[: min(count, room)]
        offsets = (starts[:, None] + torch.arange(length)[None, :]).flatten()
        mask[row, offsets] = True
    return mask
