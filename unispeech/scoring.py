"""Pronunciation scoring: how well each expected phone of a known sentence was said, from the CTC posteriors.

Goodness of pronunciation, alignment-free (as the CTC-based GOP of Cao et al., Interspeech 2024): with
L the expected phone sequence and X the audio, phone i scores

    P_i = P(L | X) / (P(L | X) + sum_q P(L with phone i replaced by q | X) + P(L without phone i | X))

where every P(. | X) sums over all CTC alignments (the forward algorithm, torch's ctc_loss). P_i is the
posterior of the expected phone among everything that could have stood in its place, given the rest of
the sentence: a number in [0, 1] without further calibration. A phone whose P_i is under 0.5 is
"substituted" (the best rival phone is what was heard) or "deleted" (when leaving it out is the best rival).
A word's score is the mean of its phones', the utterance's the mean of its words'. Times come from the
forced alignment of L (align.py). Phones heard but not expected (insertions, from the greedy transcript
compared with L) are listed with the word they follow.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .align import align_frames
from .decoding import log_softmax
from .g2p import text_words
from .metrics import edit_ops
from .transcribe import AudioInput, Recognizer

OK_THRESHOLD = 0.5
MAX_SEQUENCES = 2048  # rival sequences per ctc_loss call: bounds memory for long sentences


@dataclasses.dataclass(frozen=True)
class PhoneScore:
    phone: str
    score: float
    start: float
    end: float
    verdict: str  # "ok", "substituted" or "deleted"
    heard: str | None  # the best rival phone for "substituted"; None otherwise


@dataclasses.dataclass(frozen=True)
class WordScore:
    word: str
    score: float
    start: float
    end: float
    phones: list[PhoneScore]
    inserted: list[str]  # phones heard after this word's that the text does not have


@dataclasses.dataclass(frozen=True)
class PronunciationScore:
    text: str
    score: float
    words: list[WordScore]
    ignored: list[str]  # words of the text with no pronounceable letters (punctuation, symbols)
    duration: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def rival_log_probs(log_probs: np.ndarray, tokens: list[int], candidates: list[int], blank: int) -> np.ndarray:
    """log P(L|X) of every rival of every position: (N, 1 + C + 1) with column 0 the expected sequence
    itself, then each candidate phone in its place (the expected phone's own column is -inf), then deletion."""
    import torch
    import torch.nn.functional as F

    sequences = [tokens]
    for i in range(len(tokens)):
        sequences += [tokens[:i] + [q] + tokens[i + 1 :] for q in candidates] + [tokens[:i] + tokens[i + 1 :]]
    lp = torch.from_numpy(np.ascontiguousarray(log_probs, dtype=np.float32))  # (T, V)
    out = []
    for lo in range(0, len(sequences), MAX_SEQUENCES):
        chunk = sequences[lo : lo + MAX_SEQUENCES]
        targets = torch.tensor([t for s in chunk for t in s], dtype=torch.long)
        loss = F.ctc_loss(
            lp[:, None, :].expand(-1, len(chunk), -1),
            targets,
            torch.full((len(chunk),), lp.shape[0], dtype=torch.long),
            torch.tensor([len(s) for s in chunk], dtype=torch.long),
            blank=blank,
            reduction="none",
        )
        out.append(-loss.double().numpy())  # impossible sequences: inf loss -> -inf log probability
    flat = np.concatenate(out)
    width = len(candidates) + 1
    rivals = flat[1:].reshape(len(tokens), width)
    own = np.array(candidates)[None, :] == np.array(tokens)[:, None]  # (N, C): the expected phone itself
    rivals[:, :-1][own] = -np.inf
    return np.concatenate([np.full((len(tokens), 1), flat[0]), rivals], axis=1)


def phone_scores(log_probs: np.ndarray, tokens: list[int], candidates: list[int], blank: int):
    """-> P_i per position, and per position the best rival: a candidate index, or -1 for deletion."""
    table = rival_log_probs(log_probs, tokens, candidates, blank)
    total = np.logaddexp.reduce(table, axis=1)
    scores = np.exp(table[:, 0] - total)
    best = table[:, 1:].argmax(axis=1)
    return scores, np.where(best == len(candidates), -1, best)


def score(
    recognizer: Recognizer,
    audio: AudioInput,
    text: str,
    sampling_rate: int | None = None,
    language: str = "ky",
    word_phones: list[list[str]] | None = None,
) -> PronunciationScore:
    """Score the pronunciation of `text` in `audio` (see the module docstring). `word_phones`: the expected
    phones of each word of the text, instead of the G2P's (to score against a particular pronunciation)."""
    from .g2p import phonemize

    if not text or not text.strip():
        raise ValueError("give the text that was read (it is empty)")
    words = text_words(text)
    if word_phones is None:
        word_phones = phonemize(words, language=language) if words else []
    elif len(word_phones) != len(words):
        raise ValueError(f"word_phones has {len(word_phones)} entries, the text {len(words)} words")
    kept = [(w, p) for w, p in zip(words, word_phones) if p]
    ignored = [w for w, p in zip(words, word_phones) if not p]
    if not kept:
        raise ValueError(f"the text has no pronounceable words: {text!r}")
    sequence = [p for _, phones in kept for p in phones]
    vocab = recognizer.vocab
    tokens = vocab.encode(sequence)
    wav = recognizer.prepare(audio, sampling_rate)
    logits = recognizer.logits_batch([wav])[0]
    log_probs = log_softmax(logits)
    duration = wav.size / recognizer.audio.sampling_rate
    bounds, start = [], 0
    for word, phones in kept:
        bounds.append((word, start, start + len(phones)))
        start += len(phones)
    alignment = align_frames(log_probs, sequence, tokens, bounds, recognizer.frames, duration, vocab.blank_id)
    candidates = [i for i in range(len(vocab)) if i not in vocab.special_ids]
    scores, rivals = phone_scores(log_probs, tokens, candidates, vocab.blank_id)
    per_phone = [
        _phone(p, float(s), int(r), candidates, vocab.tokens, interval)
        for p, s, r, interval in zip(sequence, scores, rivals, alignment.phones)
    ]
    inserted = _insertions(sequence, recognizer.decode(logits, wav.size).phones, bounds)
    out = [
        WordScore(
            word,
            round(float(np.mean([p.score for p in per_phone[a:b]])), 4),
            per_phone[a].start,
            per_phone[b - 1].end,
            per_phone[a:b],
            inserted[k],
        )
        for k, (word, a, b) in enumerate(bounds)
    ]
    total = round(float(np.mean([w.score for w in out])), 4)
    return PronunciationScore(text, total, out, ignored, round(duration, 3))


def _phone(phone: str, p: float, rival: int, candidates: list[int], tokens, interval) -> PhoneScore:
    if p >= OK_THRESHOLD:
        verdict, heard = "ok", None
    elif rival < 0:
        verdict, heard = "deleted", None
    else:
        verdict, heard = "substituted", tokens[candidates[rival]]
    return PhoneScore(phone, round(p, 4), interval.start, interval.end, verdict, heard)


def _insertions(expected: list[str], heard: list[str], bounds: list[tuple[str, int, int]]) -> list[list[str]]:
    """Heard phones the text lacks, attached to the word whose phone they follow (the first word before any)."""
    inserted: list[list[str]] = [[] for _ in bounds]
    position = 0  # expected phones passed so far
    for op, _, hyp in edit_ops(expected, heard):
        if op == "I":
            word = max((k for k, (_, a, _) in enumerate(bounds) if a < max(position, 1)), default=0)
            inserted[word].append(hyp)
        else:
            position += 1
    return inserted


def format_score(name: str, result: PronunciationScore, fmt: str) -> str:
    """json (the result with its path), tsv (one row per expected phone) or a TextGrid (words, phones and
    verdict tiers)."""
    from .formats import format_rows, format_tiers

    if fmt == "json":
        return format_rows([{"path": name, **result.to_dict()}], "json")
    if fmt == "tsv":
        rows = ["path\tword\tword_score\tphone\tscore\tstart\tend\tverdict\theard"]
        rows += [
            f"{name}\t{w.word}\t{w.score:.4f}\t{p.phone}\t{p.score:.4f}\t{p.start:.2f}\t{p.end:.2f}\t{p.verdict}\t"
            f"{p.heard or ''}"
            for w in result.words
            for p in w.phones
        ]
        return "\n".join(rows) + "\n"
    if fmt != "textgrid":
        raise ValueError(f"unknown format {fmt!r} (expected json, tsv or textgrid)")
    phones = [p for w in result.words for p in w.phones]
    tiers = {
        "words": [(w.start, w.end, w.word, w.score) for w in result.words],
        "phones": [(p.start, p.end, p.phone, p.score) for p in phones],
        "verdicts": [(p.start, p.end, p.verdict + (f" {p.heard}" if p.heard else ""), p.score) for p in phones],
    }
    return format_tiers([(name, tiers, result.duration)], "textgrid")
