"""Kyrgyz text -> the checkpoint's phones, with espeak-ng through phonemizer (no system espeak needed).

The checkpoint's labels are exactly what espeak-ng's `ky` voice prints in IPA mode with a phone separator
and no stress marks; words that espeak switches to English (Latin script) come out in English phones,
which are mapped to the nearest Kyrgyz phones below.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import warnings
from collections import Counter
from pathlib import Path

WORD_BOUNDARY = "|"
# The vowels of the phone set (short before long), the back ones, and the velars' uvular phones beside back
# vowels: Kyrgyz vowel harmony as the labels write it
VOWELS = tuple("ɑ ɑ: e e: i i: o o: u u: ɯ oe oe: y y: ə".split())
BACK_VOWELS = frozenset("ɑ ɑ: o o: u u: ɯ".split())
UVULAR = {"k": "q", "ɡ": "ʁ"}
VELARS = frozenset(UVULAR) | frozenset(UVULAR.values())  # k ɡ and their uvular q ʁ

# espeak-ng English phones (from Latin words and spelled letters) -> the Kyrgyz inventory.
FOREIGN_PHONES = {
    "ɪ": ["i"],
    "iː": ["i:"],
    "ɹ": ["r"],
    "əʊ": ["o"],
    "oʊ": ["o"],
    "ɛ": ["e"],
    "e": ["e"],
    "æ": ["e"],
    "d": ["d["],
    "t": ["t["],
    "aɪ": ["ɑ", "j"],
    "eɪ": ["e", "j"],
    "ɔɪ": ["o", "j"],
    "aʊ": ["ɑ", "u"],
    "tʃ": ["tS"],
    "dʒ": ["dZ"],
    "ʃ": ["S"],
    "ʒ": ["dZ"],
    "ŋ": ["N"],
    "x": ["X"],
    "h": ["X"],
    "ɑː": ["ɑ:"],
    "ʌ": ["ɑ"],
    "a": ["ɑ"],
    "ɐ": ["ɑ"],
    "ɒ": ["o"],
    "ɔ": ["o"],
    "ɔː": ["o:"],
    "ʊ": ["u"],
    "uː": ["u:"],
    "ɜː": ["oe:"],
    "ɜ": ["oe"],
    "əl": ["ə", "l"],
    "əː": ["ə"],
    "w": ["u"],
    "θ": ["s"],
    "ð": ["z"],
    "ɾ": ["r"],
    "ɡ": ["ɡ"],
    "g": ["ɡ"],
    "ʔ": [],
    "n̩": ["n"],
    "l̩": ["l"],
    "ɚ": ["ə", "r"],
    "ɬ": ["l"],
    "ɪə": ["i", "ə"],
    "eə": ["e", "ə"],
    "ʊə": ["u", "ə"],
    "aɪə": ["ɑ", "j", "ə"],
    "r": ["r"],
}


# A word with two or more capitals (УКМК, ТИЗОсунда): espeak-ng's ky voice spells such words letter by letter
# and, in running text, names most letters "сирилик ..." ("Cyrillic ..."), which no Kyrgyz reader says.
CAPITALS_WORD = re.compile(r"\w*[А-ЯЁӨҮҢ]\w*[А-ЯЁӨҮҢ]\w*")


def spoken_form(text: str, language: str = "ky") -> str:
    """The text as espeak-ng is given it, for G2P and synthesis alike: for Kyrgyz, words with two or more
    Cyrillic capitals are lower-cased so that they are read as words (how a reader says an abbreviation is not in
    the text; reading it as a word at least gives Kyrgyz phones). Stray whitespace is collapsed."""
    text = " ".join(text.split())
    if language != "ky":
        return text
    return CAPITALS_WORD.sub(lambda m: m.group(0).lower(), text)


PUNCTUATION = ".,!?;:«»\"'()[]—–-…“”„"


def text_words(text: str) -> list[str]:
    """The words of a text, punctuation stripped from their ends (what alignment and scoring name words by)."""
    return [w for w in (t.strip(PUNCTUATION) for t in text.split()) if w]


@functools.lru_cache(maxsize=1)
def kyrgyz_inventory() -> tuple[str, ...]:
    """The 39 phones of microsoft/unispeech-1350-en-17h-ky-ft-1h, in vocabulary order."""
    path = Path(__file__).parent / "data" / "phones_ky.json"
    return tuple(json.loads(path.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=4)
def _backend(language: str):
    """One espeak-ng session per language, reused across calls (loading the voice dominates short calls)."""
    try:
        import espeakng_loader
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as e:
        raise RuntimeError("G2P needs phonemizer and espeakng-loader: pip install phonemizer espeakng-loader") from e
    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    quiet = logging.getLogger("unispeech.g2p.phonemizer")
    quiet.setLevel(logging.ERROR)
    try:
        return EspeakBackend(
            language, preserve_punctuation=False, with_stress=False, language_switch="remove-flags", logger=quiet
        )
    except RuntimeError as e:
        raise ValueError(f"espeak-ng has no voice for language {language!r}") from e


def phonemize(
    texts: str | list[str],
    language: str = "ky",
    word_boundaries: bool = False,
) -> list[str] | list[list[str]]:
    """Text -> phones. A string gives one phone list; a list of strings gives one list per string.

    For Kyrgyz the phones are those of the checkpoint's vocabulary: foreign phones are mapped to the
    nearest Kyrgyz phone, and any left over are dropped with a warning naming them.
    With `word_boundaries`, "|" stands between words.
    """
    single = isinstance(texts, str)
    batch = [texts] if single else list(texts)
    if not all(isinstance(t, str) for t in batch):
        raise ValueError("phonemize takes a string or a list of strings")
    from phonemizer.separator import Separator

    cleaned = [spoken_form(t, language) for t in batch]
    raw = (
        _backend(language).phonemize(
            cleaned, separator=Separator(phone=" ", word=f" {WORD_BOUNDARY} "), strip=True, njobs=1
        )
        if cleaned
        else []
    )
    inventory = set(kyrgyz_inventory()) if language == "ky" else None
    dropped: Counter = Counter()
    out = [_to_inventory(line, inventory, word_boundaries, dropped) for line in raw]
    if dropped:
        listing = ", ".join(f"{p!r}×{n}" for p, n in dropped.most_common())
        warnings.warn(f"phones outside the Kyrgyz inventory were dropped: {listing}", stacklevel=2)
    return out[0] if single else out


def _to_inventory(line: str, inventory: set[str] | None, word_boundaries: bool, dropped: Counter) -> list[str]:
    words = []
    for word in line.split(WORD_BOUNDARY):
        phones = []
        for p in word.split():
            if inventory is None or p in inventory:
                phones.append(p)
            elif p in FOREIGN_PHONES:
                phones.extend(FOREIGN_PHONES[p])
            else:
                dropped[p] += 1
        if phones:
            words.append(phones)
    if not word_boundaries:
        return [p for w in words for p in w]
    return [p for i, w in enumerate(words) for p in ([WORD_BOUNDARY] if i else []) + w]


def uvular(phones: list[str], words: list[str] | None = None) -> list[str]:
    """k/g -> q/ʁ where the nearest vowel of the same word (the next one, else the one before) is back: Kyrgyz
    vowel harmony, as our G2P writes it. A voice of another language (Festival's, MBROLA's) says a velar k; the
    Kyrgyz phone for it in that word is q.
    Without `words` (a word key per phone), or in a word without a vowel, the nearest vowel of the utterance."""
    words = words or [""] * len(phones)
    vowels = [i for i, p in enumerate(phones) if p in VOWELS]
    out = []
    for i, p in enumerate(phones):
        if p in UVULAR:
            own = [j for j in vowels if words[j] == words[i]] or vowels
            after = [phones[j] for j in own if j > i][:1]
            near = after or [phones[j] for j in own if j < i][-1:]
            p = UVULAR[p] if near and near[0] in BACK_VOWELS else p
        out.append(p)
    return out


def harmonised(word: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
    """One word's (voice phone, Kyrgyz labels) with its velars labelled by the word's own vowels (`uvular`)."""
    flat = uvular([label for _, said in word for label in said])
    out, i = [], 0
    for name, said in word:
        out.append((name, tuple(flat[i : i + len(said)])))
        i += len(said)
    return out
