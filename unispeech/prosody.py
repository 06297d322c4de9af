"""Prosody drawn by rule for voices that are given phones, not text (Festival's English voices, MBROLA's).

A voice of another language cannot read Kyrgyz, but a diphone voice says any phone sequence of its own phone set
with the durations and pitch it is given. `segments` draws those: a rate and pitch range per sentence, pitch
falling through each clause and rising on each word's last vowel (where Kyrgyz puts the stress), long vowels
held, the clause's last vowel drawn out, and a pause at each clause break.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from .g2p import WORD_BOUNDARY, phonemize

Segment = tuple[str, float, "float | None", tuple[str, ...]]  # voice phone, seconds, pitch (Hz), Kyrgyz labels
CLAUSE_BREAK = re.compile(r"[,.;:!?—–…]+")


def clause_words(text: str) -> list[list[list[str]]]:
    """Kyrgyz text -> its clauses (split at CLAUSE_BREAK), each a list of its words' phones (our G2P)."""
    clauses = [c for c in CLAUSE_BREAK.split(text) if c.strip()]
    return [
        [w.split() for w in " ".join(phones).split(WORD_BOUNDARY) if w.strip()]
        for phones in (phonemize(clauses, word_boundaries=True) if clauses else [])
    ]


@dataclass(frozen=True)
class PhoneSet:
    """How a voice given phones says Kyrgyz: `word` turns a word's Kyrgyz phones into (its phone, the Kyrgyz
    labels of that sound); `seconds` are its phones' durations at rate 1 (~11 phones a second, as read Kyrgyz),
    `default_seconds` for the others; `vowels` carry the pitch."""

    word: Callable[[list[str]], list[tuple[str, tuple[str, ...]]]]
    seconds: dict[str, float]
    vowels: frozenset[str]
    pause: str
    default_seconds: float = 0.06


def segments(text: str, rng: random.Random, phone_set: PhoneSet, pitch: tuple[float, float] = (85.0, 135.0)):
    """Kyrgyz text -> what a voice given phones is given: [(its phone, seconds, pitch target in Hz at its middle
    or None, the Kyrgyz labels of that sound: none for a pause)]. The rate and the base pitch (drawn from
    `pitch`) are drawn per sentence."""
    rate, base = rng.uniform(0.8, 1.25), rng.uniform(*pitch)
    out: list[Segment] = [(phone_set.pause, rng.uniform(0.12, 0.25), None, ())]
    for clause in clause_words(text):
        words = [phone_set.word(w) for w in clause]
        vowels, seen = sum(name in phone_set.vowels for w in words for name, _ in w), 0
        for w, word in enumerate(words):
            stressed = max((i for i, (name, _) in enumerate(word) if name in phone_set.vowels), default=-1)
            for i, (name, said) in enumerate(word):
                seconds = phone_set.seconds.get(name, phone_set.default_seconds) * rng.uniform(0.85, 1.15) / rate
                f0 = None
                if name in phone_set.vowels:
                    f0 = base * (1.15 - 0.3 * seen / max(vowels - 1, 1)) * (1.1 if i == stressed else 1.0)
                    long = said[0].endswith(":")
                    seconds *= (1.9 if long else 1.0) * (1.35 if i == stressed and w == len(words) - 1 else 1.0)
                    seen += 1
                out.append((name, seconds, f0, said))
        out.append((phone_set.pause, rng.uniform(0.12, 0.3), None, ()))
    return out
