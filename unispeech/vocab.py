"""The output vocabulary: `vocab.json` plus the tokenizer's special tokens."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

PHONEME_TOKENIZER = "Wav2Vec2PhonemeCTCTokenizer"
CHAR_TOKENIZER = "Wav2Vec2CTCTokenizer"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token strings by id, which id is the CTC blank, and which ids are never emitted."""

    tokens: tuple[str, ...]
    blank_id: int
    special_ids: frozenset[int]
    word_delimiter: str | None = None  # "|" in character vocabularies; None for the Kyrgyz phones
    tokenizer_class: str = PHONEME_TOKENIZER
    phonemizer_lang: str | None = None

    @property
    def is_phonemes(self) -> bool:
        return self.tokenizer_class == PHONEME_TOKENIZER

    def __len__(self) -> int:
        return len(self.tokens)

    @functools.cached_property  # looked up per phone when encoding labels: build the map once
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def join(self, tokens: list[str]) -> str:
        """Tokens -> text: phones space-separated; characters concatenated with the delimiter as a space."""
        if self.is_phonemes:
            return " ".join(tokens)
        text = "".join(tokens)
        return text.replace(self.word_delimiter, " ").strip() if self.word_delimiter else text

    def encode(self, phones: list[str]) -> list[int]:
        ids = self.ids
        unknown = sorted({p for p in phones if p not in ids or ids[p] in self.special_ids})
        if unknown:
            raise ValueError(f"phones not in the model's vocabulary: {' '.join(unknown)}")
        return [ids[p] for p in phones]

    @classmethod
    def from_folder(cls, folder: Path, blank_id: int, head_size: int) -> Vocabulary:
        vocab_path = folder / "vocab.json"
        if not vocab_path.is_file():
            raise ValueError(f"{folder}: no vocab.json (the model's output tokens)")
        try:
            raw = json.loads(vocab_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{vocab_path}: not valid JSON ({e})") from e
        if not isinstance(raw, dict) or not all(isinstance(v, int) for v in raw.values()):
            raise ValueError(
                f"{vocab_path}: expected an object mapping tokens to integer ids "
                "(multi-language vocabularies are not supported)"
            )
        if sorted(raw.values()) != list(range(len(raw))):
            raise ValueError(f"{vocab_path}: ids must be 0..{len(raw) - 1}, each once")
        if len(raw) != head_size:
            raise ValueError(f"{vocab_path} has {len(raw)} tokens but the model's CTC head has {head_size} outputs")
        tokens = [""] * len(raw)
        for token, i in raw.items():
            tokens[i] = token
        settings = _tokenizer_settings(folder)
        specials = {
            settings.get(k, d)
            for k, d in (("pad_token", "<pad>"), ("unk_token", "<unk>"), ("bos_token", "<s>"), ("eos_token", "</s>"))
        }
        if tokens[blank_id] != settings.get("pad_token", tokens[blank_id]):
            raise ValueError(
                f"{folder}: config pad_token_id {blank_id} is {tokens[blank_id]!r} in vocab.json, "
                f"but the tokenizer's pad token is {settings['pad_token']!r}"
            )
        return cls(
            tokens=tuple(tokens),
            blank_id=blank_id,
            special_ids=frozenset(i for i, t in enumerate(tokens) if t in specials) | {blank_id},
            word_delimiter=settings.get(
                "word_delimiter_token", "|" if settings.get("tokenizer_class") == CHAR_TOKENIZER else None
            ),
            tokenizer_class=settings.get("tokenizer_class", PHONEME_TOKENIZER),
            phonemizer_lang=settings.get("phonemizer_lang"),
        )

    def files(self) -> dict[str, str]:
        """The files transformers' AutoTokenizer reads: vocab.json, tokenizer_config.json, special_tokens_map.json."""
        special = {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": self.tokens[self.blank_id],
        }
        tokenizer_config = dict(special, tokenizer_class=self.tokenizer_class, do_lower_case=False)
        if self.is_phonemes:
            tokenizer_config.update(phonemizer_lang=self.phonemizer_lang or "ky", phonemizer_backend="espeak")
        if self.word_delimiter is not None:
            tokenizer_config["word_delimiter_token"] = self.word_delimiter
        vocab = {t: i for i, t in enumerate(self.tokens)}
        return {
            "vocab.json": json.dumps(vocab, ensure_ascii=False),
            "tokenizer_config.json": json.dumps(tokenizer_config, ensure_ascii=False, indent=2),
            "special_tokens_map.json": json.dumps(special, indent=2),
        }


def _tokenizer_settings(folder: Path) -> dict:
    """tokenizer_config.json over special_tokens_map.json; token objects flattened to their text."""
    settings: dict = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
            for key, value in data.items():
                settings[key] = value.get("content") if isinstance(value, dict) else value
    return settings


def phone_vocabulary(phones: list[str], lang: str = "ky") -> Vocabulary:
    """The Kyrgyz checkpoint's layout: phones 0..N-1, then <pad> (blank), <s>, </s>, <unk>."""
    tokens = tuple(phones) + ("<pad>", "<s>", "</s>", "<unk>")
    n = len(phones)
    return Vocabulary(
        tokens=tokens,
        blank_id=n,
        special_ids=frozenset(range(n, n + 4)),
        tokenizer_class=PHONEME_TOKENIZER,
        phonemizer_lang=lang,
    )
