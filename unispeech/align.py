"""CTC forced alignment: where each phone of a known sentence lies in the audio."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from .decoding import log_softmax
from .g2p import text_words
from .transcribe import AudioInput, Recognizer

MAX_TRELLIS = 400_000_000  # frames x alignment states; beyond this the backpointers would not fit in memory


@dataclasses.dataclass(frozen=True)
class Interval:
    label: str
    start: float
    end: float
    score: float  # mean posterior of the label over its frames (0..1)


@dataclasses.dataclass(frozen=True)
class Alignment:
    phones: list[Interval]
    words: list[Interval]
    duration: float

    def to_dict(self) -> dict:
        return {
            "phones": [dataclasses.asdict(p) for p in self.phones],
            "words": [dataclasses.asdict(w) for w in self.words],
            "duration": self.duration,
        }


def viterbi(log_probs: np.ndarray, tokens: list[int], blank: int, frame_seconds: float) -> list[tuple[int, int]]:
    """Best CTC path through blank-augmented `tokens`: for each token, its (first, last) frame."""
    T, L = log_probs.shape[0], len(tokens)
    repeats = sum(a == b for a, b in zip(tokens, tokens[1:]))
    if T < L + repeats:
        raise ValueError(
            f"the audio is too short for the text: {L} phones need at least "
            f"{(L + repeats) * frame_seconds:.2f} s, the audio gives {T * frame_seconds:.2f} s"
        )
    S = 2 * L + 1
    if T * S > MAX_TRELLIS:
        raise ValueError(f"alignment too large ({T} frames x {S} states); split the audio and text into pieces")
    ext = np.full(S, blank)
    ext[1::2] = tokens
    skip = np.zeros(S, bool)  # s-2 -> s allowed: a token whose predecessor token differs
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    emit = log_probs[:, ext]  # (T, S)
    score = np.full(S, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((T, S), np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, T):
        stay, step = score, np.r_[-np.inf, score[:-1]]
        jump = np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)
        choice = np.argmax(np.stack([stay, step, jump]), axis=0)
        score = np.choose(choice, [stay, step, jump]) + emit[t]
        back[t] = choice
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    spans: dict[int, list[int]] = {}
    for t in range(T - 1, -1, -1):
        if s % 2:
            spans.setdefault(s // 2, [t, t])[0] = t
        s -= int(back[t, s])
    return [tuple(spans[i]) for i in range(L)]


def align(
    recognizer: Recognizer,
    audio: AudioInput,
    text: str | None = None,
    phones: list[str] | None = None,
    sampling_rate: int | None = None,
    language: str = "ky",
) -> Alignment:
    """Phone and word intervals of `text` (via G2P) or of given `phones` in `audio`."""
    from .g2p import WORD_BOUNDARY, phonemize

    if phones is None:
        if not text or not text.strip():
            raise ValueError("give the text that was spoken")
        phones = phonemize(text, language=language, word_boundaries=True)
    words = _words(phones, text, WORD_BOUNDARY)
    sequence = [p for p in phones if p != WORD_BOUNDARY]
    if not sequence:
        raise ValueError(f"the text has no pronounceable words: {text!r}")
    tokens = recognizer.vocab.encode(sequence)
    wav = recognizer.prepare(audio, sampling_rate)
    logits = recognizer.logits_batch([wav])[0]
    log_probs = log_softmax(logits)
    duration = wav.size / recognizer.audio.sampling_rate
    return align_frames(log_probs, sequence, tokens, words, recognizer.frames, duration, recognizer.vocab.blank_id)


def align_frames(
    log_probs: np.ndarray,
    sequence: list[str],
    tokens: list[int],
    words: list[tuple[str, int, int]],
    frames,
    duration: float,
    blank: int,
) -> Alignment:
    """Intervals of `sequence` (its `tokens`) in frame log posteriors (T, V); `words`: (word, first, end)."""
    spans = viterbi(log_probs, tokens, blank, frames.seconds_per_frame)
    intervals = []
    for i, ((first, last), token) in enumerate(zip(spans, tokens)):
        end_frame = spans[i + 1][0] if i + 1 < len(spans) else last + 1  # a phone lasts until the next begins
        score = float(np.exp(log_probs[first : last + 1, token]).mean())
        intervals.append(
            Interval(
                sequence[i], frames.seconds(first), round(min(frames.seconds(end_frame), duration), 3), round(score, 4)
            )
        )
    word_intervals = [
        Interval(
            word, intervals[a].start, intervals[b - 1].end, round(float(np.mean([p.score for p in intervals[a:b]])), 4)
        )
        for word, a, b in words
    ]
    return Alignment(intervals, word_intervals, round(duration, 3))


def _words(phones: list[str], text: str | None, boundary: str) -> list[tuple[str, int, int]]:
    """(word, first phone index, end phone index) per word, named from the text when the counts agree."""
    groups, index, current = [], 0, 0
    for p in phones + [boundary]:
        if p == boundary:
            if index > current:
                groups.append((current, index))
            current = index
        else:
            index += 1
    cleaned = text_words(text or "")
    if len(cleaned) != len(groups):
        cleaned = [f"w{i + 1}" for i in range(len(groups))]
    return [(name, a, b) for name, (a, b) in zip(cleaned, groups)]


def alignment_text(name: str, text: str | None, result: Alignment, fmt: str) -> str:
    """One alignment as json, tsv, ctm or TextGrid (phone and word tiers)."""
    from .formats import format_rows, format_tiers

    if fmt == "json":
        return format_rows([dict(path=name, text=text, **result.to_dict())], "json")
    tiers = {
        tier: [(i.start, i.end, i.label, i.score) for i in intervals]
        for tier, intervals in (("phones", result.phones), ("words", result.words))
    }
    return format_tiers([(name, tiers, result.duration)], fmt)


def align_manifest(recognizer: Recognizer, manifest, out_dir, fmt: str, language: str = "ky") -> tuple[int, int]:
    """Every utterance of a manifest (audio + text or phones) aligned into `out_dir/ID.EXT`; one that fails
    is reported on stderr and the rest go on. -> (aligned, failed)."""
    import sys
    from pathlib import Path

    from .data import load_dataset
    from .files import atomic_write

    utterances, skipped = load_dataset(manifest)
    aligned, failed = 0, len(skipped)
    suffix = {"json": ".json", "tsv": ".tsv", "ctm": ".ctm", "textgrid": ".TextGrid"}[fmt]
    used: set[str] = set()
    for u in utterances:
        phones = list(u.phones) if u.phones else None
        try:
            result = align(recognizer, u.audio, text=u.text, phones=phones, language=language)
        except ValueError as e:  # AudioError included: report it and go on with the rest
            print(f"unispeech: skipped {u.id}: {e}", file=sys.stderr)
            failed += 1
            continue
        atomic_write(Path(out_dir) / file_name(u.id, suffix, used), alignment_text(str(u.audio), u.text, result, fmt))
        aligned += 1
    return aligned, failed


def file_name(uid: str, suffix: str, used: set[str]) -> str:
    """`uid` + `suffix` as one file name inside the output folder: a manifest's id may hold path separators or
    start with a dot, and two ids may become the same name (the later gets `#n`)."""
    stem = re.sub(r"[/\\\x00]", "_", uid)
    stem = "_" + stem[1:] if stem.startswith(".") else stem
    name, n = stem + suffix, 1
    while name.lower() in used:  # case-insensitive file systems too
        n += 1
        name = f"{stem}#{n}{suffix}"
    used.add(name.lower())
    return name
