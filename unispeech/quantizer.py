"""Gumbel-softmax product quantizer over CNN features (the paper's "Quantizer" box)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GumbelQuantizer(nn.Module):
    """G groups x V codewords; each frame picks one codeword per group (hard, straight-through in training)
    and the picks are concatenated. Attribute names follow transformers' UniSpeechGumbelVectorQuantizer."""

    def __init__(self, in_dim: int, groups: int, entries: int, codevector_dim: int):
        super().__init__()
        if codevector_dim % groups:
            raise ValueError(f"codevector_dim {codevector_dim} is not divisible by {groups} groups")
        self.groups, self.entries = groups, entries
        self.weight_proj = nn.Linear(in_dim, groups * entries)
        self.codevectors = nn.Parameter(torch.empty(1, groups * entries, codevector_dim // groups).uniform_())
        nn.init.normal_(self.weight_proj.weight, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.temperature = 2.0

    def forward(self, z: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) features -> quantized (B, T, codevector_dim) and the codevector perplexity.

        Perplexity (summed over groups) is that of the average soft distribution over valid frames in
        training, of the hard picks in eval mode (as transformers computes it).
        """
        B, T, _ = z.shape
        scores = self.weight_proj(z).float().view(B * T * self.groups, self.entries)
        if self.training:
            picks = F.gumbel_softmax(scores, tau=self.temperature, hard=True)
            dist = torch.softmax(scores.view(B * T, self.groups, self.entries), dim=-1)
        else:
            picks = F.one_hot(scores.argmax(-1), self.entries).to(scores.dtype)
            dist = picks.view(B * T, self.groups, self.entries)
        flat_valid = valid.reshape(-1) if valid is not None else None
        perplexity = codevector_perplexity(dist, flat_valid)
        picks = picks.view(B * T, self.groups, self.entries)
        books = self.codevectors.view(self.groups, self.entries, -1).float()
        # one matmul per group (picking rows of the codebook), not a (N, G, V, D) broadcast product and sum
        quantized = torch.einsum("ngv,gvd->ngd", picks, books).reshape(B, T, -1)  # (B, T, G * D)
        return quantized.to(z.dtype), perplexity


def codevector_perplexity(dist: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """dist (N, G, V) -> sum over groups of exp(entropy of the mean distribution over the N frames)."""
    if valid is not None:
        mask = valid.to(dist.dtype)[:, None, None]
        marginal = (dist * mask).sum(0) / mask.sum().clamp(min=1)
    else:
        marginal = dist.mean(0)
    # log(p + 1e-7), as fairseq and transformers write it: xlogy's gradient at an unused codeword (p
    # underflowed to 0) is -inf * 0 = NaN, which made every update of a peaked quantizer non-finite.
    return torch.exp(-(marginal * torch.log(marginal + 1e-7)).sum(-1)).sum()
