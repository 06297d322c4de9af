"""Pretraining losses: contrastive (InfoNCE over cosine similarities), codebook diversity, and the replacement mix."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_negatives(
    lengths: torch.Tensor, rows: torch.Tensor, steps: torch.Tensor, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """For masked step i at (rows[i], steps[i]): `count` other steps of the same utterance, uniformly,
    never the step itself (draw from length-1 positions and skip over the positive). (N, count) indices."""
    high = (lengths[rows] - 1).clamp(min=1).to(torch.float64)  # (N,)
    draws = (torch.rand(rows.numel(), count, generator=generator, dtype=torch.float64) * high[:, None]).long()
    return draws + (draws >= steps[:, None]).long()


def sample_masked_negatives(
    rows: torch.Tensor, steps: torch.Tensor, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """As `sample_negatives`, but from the masked steps of the same utterance only (wav2vec 2.0, UniSpeech
    stage 2): `rows`, `steps` are the masked positions sorted by row (`mask.nonzero()`). An utterance with
    one masked step gets that step itself, which `contrastive_logits` then ignores (-inf)."""
    counts = torch.bincount(rows)
    first = torch.cumsum(counts, 0) - counts  # index of each row's first masked step
    own = torch.arange(rows.numel()) - first[rows]  # position of each step among its row's masked steps
    high = (counts[rows] - 1).clamp(min=1).to(torch.float64)
    draws = (torch.rand(rows.numel(), count, generator=generator, dtype=torch.float64) * high[:, None]).long()
    draws = draws + ((draws >= own[:, None]) & (counts[rows, None] > 1)).long()
    return steps[first[rows, None] + draws]


def contrastive_logits(
    context: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """context (N, D), targets (N, D), negatives (N, K, D) -> logits (N, 1 + K); column 0 is the positive.
    A negative identical to its positive gets -inf: it is not a distractor."""
    candidates = F.normalize(torch.cat([targets[:, None, :], negatives], dim=1).float(), dim=-1, eps=1e-8)
    # cosine as unit vectors' dot products, one (1+K, D) x (D, 1) product per row: a third less time than
    # F.cosine_similarity's broadcast (fwd + bwd) on the CPU, the same values to float rounding
    logits = torch.bmm(candidates, F.normalize(context.float(), dim=-1, eps=1e-8)[:, :, None])[..., 0] / temperature
    same = (negatives == targets[:, None, :]).all(-1)  # (N, K)
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)


def contrastive_loss(logits: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy with the positive at index 0 (optionally weighted per row), and #correct."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    per_row = F.cross_entropy(logits, target, reduction="none")
    loss = (per_row * weights).sum() if weights is not None else per_row.sum()
    return loss, (logits.argmax(-1) == 0).sum()


def diversity_loss(perplexity: torch.Tensor, groups: int, entries: int) -> torch.Tensor:
    """(G·V − perplexity) / (G·V): 0 when every codeword is used equally, near 1 when one is used."""
    total = groups * entries
    return (total - perplexity) / total
