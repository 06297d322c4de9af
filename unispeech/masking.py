"""Span masks over time (SpecAugment-style, as in wav2vec 2.0 / UniSpeech) and over channels.

`SpanMasker` owns the learnt mask embedding; a training task draws `SpanMasks` for a batch (it needs
them itself: pretraining scores the masked frames) and passes them to the model's forward.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class MaskOptions:
    time_prob: float = 0.0  # expected fraction of a row's frames covered by span starts x length
    time_length: int = 10  # frames per time span
    min_time_spans: int = 2  # per row, as fairseq's mask_min_masks
    channel_prob: float = 0.0
    channel_length: int = 64  # channels per channel span (capped at the width)


@dataclasses.dataclass(frozen=True)
class SpanMasks:
    time: torch.Tensor | None  # (B, T) bool: frames replaced by the mask embedding
    channels: torch.Tensor | None  # (B, C) bool: channels set to 0 in every frame


def span_mask(
    batch: int,
    size: int,
    prob: float,
    length: int,
    lengths: torch.Tensor | None = None,
    min_masks: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
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


class SpanMasker(nn.Module):
    """Replaces masked frames by one learnt embedding and zeroes masked channels (the paper's "Masking")."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.masked_spec_embed = nn.Parameter(torch.empty(hidden_size).uniform_())

    def draw(
        self, options: MaskOptions, frame_lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> SpanMasks:
        return draw_span_masks(options, frame_lengths, self.masked_spec_embed.numel(), generator)

    def forward(self, x: torch.Tensor, masks: SpanMasks) -> torch.Tensor:  # (B, T, C)
        if masks.time is not None:
            x = torch.where(masks.time[:, :, None].to(x.device), self.masked_spec_embed.to(x.dtype), x)
        if masks.channels is not None:
            x = x.masked_fill(masks.channels[:, None, :].to(x.device), 0.0)
        return x


def draw_span_masks(
    options: MaskOptions, frame_lengths: torch.Tensor, width: int, generator: torch.Generator | None = None
) -> SpanMasks:
    """Masks for a batch whose rows have `frame_lengths` valid frames of `width` channels (time first)."""
    frame_lengths = frame_lengths.cpu()
    batch, frames = len(frame_lengths), int(frame_lengths.max())
    time = channels = None
    if options.time_prob > 0:
        time = span_mask(
            batch, frames, options.time_prob, options.time_length, frame_lengths, options.min_time_spans, generator
        )
    if options.channel_prob > 0:
        channels = span_mask(
            batch, width, options.channel_prob, min(options.channel_length, width), generator=generator
        )
    return SpanMasks(time, channels)
