"""CTC decoding: frame logits -> phones with times. Decoders are strategy objects (`GreedyDecoder` here,
`beam.BeamSearchDecoder` with a phone LM) that a `Recognizer` is given."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from .vocab import Vocabulary


@dataclasses.dataclass(frozen=True)
class Transcription:
    """Decoded phones of one utterance, each with its start/end time (s) and mean posterior (0..1)."""

    phones: list[str]
    timestamps: list[tuple[float, float]]
    confidences: list[float]
    duration: float
    text: str

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "phones": self.phones,
            "timestamps": [
                {"phone": p, "start": s, "end": e, "confidence": c}
                for p, (s, e), c in zip(self.phones, self.timestamps, self.confidences)
            ],
            "duration": self.duration,
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Frame posteriors (T, V), float32; the one definition behind every confidence we report."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Frame log-posteriors (T, V): what beam search, forced alignment and scoring add up."""
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


class Decoder(Protocol):
    def decode(
        self, logits: np.ndarray, vocab: Vocabulary, frame_seconds: float, duration: float | None = None
    ) -> Transcription:
        """(frames, vocab) logits -> phones; `frame_seconds` is the model's frame stride in seconds."""

    def describe(self) -> str:
        """What decodes, for reports and for telling one evaluation run from another."""


@dataclasses.dataclass(frozen=True)
class GreedyDecoder:
    """Best path decoding (argmax per frame)."""

    def decode(
        self, logits: np.ndarray, vocab: Vocabulary, frame_seconds: float, duration: float | None = None
    ) -> Transcription:
        return greedy_decode(logits, vocab, frame_seconds, duration)

    def describe(self) -> str:
        return "greedy"


def greedy_decode(
    logits: np.ndarray, vocab: Vocabulary, frame_seconds: float, duration: float | None = None
) -> Transcription:
    """Best path: argmax per frame, merge repeats, drop the blank and special tokens.

    A phone's time span runs from the first to the end of the last frame of its run of argmax frames.
    """
    logits = np.asarray(logits, dtype=np.float32)  # (T, V)
    if logits.ndim != 2 or logits.shape[1] != len(vocab):
        raise ValueError(f"expected logits of shape (frames, {len(vocab)}), got {logits.shape}")
    best = logits.argmax(axis=1)
    posterior = softmax(logits)[np.arange(best.size), best]
    run_starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]]) if best.size else np.zeros(0, int)
    run_ends = np.r_[run_starts[1:], best.size]
    phones, stamps, confidences = [], [], []
    for start, end in zip(run_starts, run_ends):
        token = int(best[start])
        if token in vocab.special_ids:
            continue
        phones.append(vocab.tokens[token])
        stamps.append((round(start * frame_seconds, 3), round(end * frame_seconds, 3)))
        confidences.append(round(float(posterior[start:end].mean()), 4))
    total = duration if duration is not None else best.size * frame_seconds
    return Transcription(
        phones=phones,
        timestamps=stamps,
        confidences=confidences,
        duration=round(float(total), 3),
        text=vocab.join(phones),
    )
