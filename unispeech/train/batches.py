"""Training data: labelled utterances in memory, length-bucketed batches by total audio seconds."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch

from ..audio import AudioError, load_audio, normalize
from ..data import Utterance, with_phones
from ..progress import progress_bar
from ..vocab import Vocabulary


@dataclasses.dataclass
class Example:
    id: str
    audio: np.ndarray  # int16 at 16 kHz: half the memory of float32
    labels: list[int]


@dataclasses.dataclass
class Batch:
    wav: torch.Tensor  # (B, S) normalised float32
    lengths: torch.Tensor  # (B,) valid samples
    labels: torch.Tensor  # (sum of label lengths,) concatenated targets for ctc_loss
    label_lengths: torch.Tensor  # (B,)
    index: int  # position in the epoch's batch plan: seeds this batch's random masks


def load_examples(
    utterances: list[Utterance],
    vocab: Vocabulary | None,
    language: str = "ky",
    progress: bool = True,
    labelled: bool = True,
) -> tuple[list[Example], list[str]]:
    """Decode every clip once (a file listed by several rows: once for all of them) and encode its phones; returns
    the examples and one line per skipped clip."""
    if labelled:
        utterances = with_phones(utterances, language)
    if labelled and vocab is not None:
        unknown = sorted({p for u in utterances for p in (u.phones or ()) if p not in vocab.ids})
        if unknown:
            raise ValueError(
                f"labels use phones that are not in the vocabulary: {' '.join(unknown)} "
                f"(vocabulary: {' '.join(t for i, t in enumerate(vocab.tokens) if i not in vocab.special_ids)})"
            )
    examples, skipped = [], []
    decoded: dict[str, np.ndarray] = {}  # a file listed twice (a source weighted up) is decoded and held once
    unreadable: dict[str, str] = {}  # and tried once
    for u in progress_bar(utterances, desc="loading audio", unit="clip", enabled=progress):
        if labelled and not u.phones:
            skipped.append(f"{u.id}: no phones")
            continue
        pcm, why = decoded.get(str(u.audio)), unreadable.get(str(u.audio))
        if pcm is None and why is None:
            try:
                wav = load_audio(u.audio)
                pcm = decoded[str(u.audio)] = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
            except AudioError as e:
                why = unreadable[str(u.audio)] = str(e)
        if why is not None:
            skipped.append(f"{u.id}: {why}")
            continue
        labels = vocab.encode(list(u.phones)) if labelled and vocab is not None else []
        examples.append(Example(u.id, pcm, labels))
    return examples, skipped


def plan_batches(
    examples: list[Example], max_seconds: float, seed: int, epoch: int, world_size: int = 1, rate: int = 16000
) -> list[list[int]]:
    """Example indices grouped into batches of similar length whose padded audio stays under `max_seconds`.

    Lengths are jittered before sorting so the buckets differ between epochs; batch order is shuffled.
    The same (seed, epoch) gives the same plan in every process. The count is a multiple of world_size.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    keyed = sorted(range(len(examples)), key=lambda i: examples[i].audio.size * rng.uniform(0.9, 1.1))
    batches, current, longest = [], [], 0
    for i in keyed:
        n = examples[i].audio.size
        if current and max(longest, n) * (len(current) + 1) > max_seconds * rate:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    usable = len(batches) - len(batches) % world_size
    return batches[:usable] if usable else batches[:0]


def collate(examples: list[Example], index: int) -> Batch:
    wavs = [normalize(e.audio.astype(np.float32) / 32768) for e in examples]
    lengths = torch.tensor([w.size for w in wavs])
    wav = torch.zeros(len(wavs), int(lengths.max()))
    for row, w in zip(wav, wavs):
        row[: w.size] = torch.from_numpy(w)
    labels = torch.tensor([t for e in examples for t in e.labels], dtype=torch.long)
    return Batch(wav, lengths, labels, torch.tensor([len(e.labels) for e in examples]), index)


def batch_to(batch: Batch, device: str | torch.device) -> Batch:
    """The batch's tensors on `device` (labels too: CTC and the loss weights read them there)."""
    if torch.device(device).type == "cpu":
        return batch
    move = {f: getattr(batch, f).to(device) for f in ("wav", "lengths", "labels", "label_lengths")}
    return dataclasses.replace(batch, **move)
