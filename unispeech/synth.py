"""Synthetic Kyrgyz speech from espeak-ng (the library bundled by espeakng-loader), with augmentation.

Used to train and test the bundled demo model. The labels are our G2P of the same sentences, which is
exactly what espeak-ng speaks, so the corpus is self-consistent.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .augment import augment
from .data import manifest_audio
from .g2p import phonemize, spoken_form
from .progress import progress_bar

# espeak-ng's C API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_INITIALIZE_PHONEME_EVENTS = 1
_EVENT_PHONEME = 7


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

TRAIN_VARIANTS = ("m1", "m2", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
UNSEEN_VARIANT = "m3"  # held out of training: the "unseen voice" test


@dataclasses.dataclass(frozen=True)
class Voice:
    variant: str = "m1"  # espeak-ng voice variant (voices/!v)
    rate: int = 165  # words per minute
    pitch: int = 50  # 0..100
    pitch_range: int = 50  # 0..100

    @classmethod
    def random(cls, rng: np.random.Generator, variants=TRAIN_VARIANTS) -> Voice:
        return cls(
            variant=str(rng.choice(variants)),
            rate=int(rng.integers(125, 211)),
            pitch=int(rng.integers(25, 76)),
            pitch_range=int(rng.integers(20, 81)),
        )


@functools.cache
def _espeak() -> tuple[ctypes.CDLL, int]:
    """The espeak-ng library, initialised once per process, and its sample rate. espeak-ng keeps global
    state: initialising it a second time after a few thousand sentences crashed it (segfault)."""
    import espeakng_loader

    lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
    data_parent = os.path.dirname(espeakng_loader.get_data_path()).encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INITIALIZE_PHONEME_EVENTS)
    if rate <= 0:
        raise RuntimeError("espeak-ng failed to initialise")
    return lib, rate


class Speaker:
    """An espeak-ng synthesiser for one language. Speakers share the process's one espeak-ng instance."""

    def __init__(self, language: str = "ky"):
        self.language = language
        self._lib, self.source_rate = _espeak()
        self._pieces: list[np.ndarray] = []
        self._onsets: list[tuple[str, int]] = []  # (espeak phoneme name, sample at the source rate)
        self._callback = _CALLBACK(self._collect)  # kept referenced: espeak calls it from C

    def _collect(self, wav, n, events) -> int:
        if n > 0:
            self._pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events and events[i].type != 0:
            if events[i].type == _EVENT_PHONEME:
                self._onsets.append((events[i].id.decode(errors="replace"), events[i].sample))
            i += 1
        return 0

    def speak(self, text: str, voice: Voice = Voice()) -> np.ndarray:
        """Text -> float32 mono audio at 16 kHz; the text is read as G2P reads it (`g2p.spoken_form`)."""
        import soxr

        if self._lib.espeak_SetVoiceByName(f"{self.language}+{voice.variant}".encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {self.language}+{voice.variant}")
        for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.pitch_range)):
            self._lib.espeak_SetParameter(param, value, 0)
        data = spoken_form(text, self.language).encode("utf-8")
        self._pieces, self._onsets = [], []
        self._lib.espeak_SetSynthCallback(self._callback)  # the callback is global: make it this speaker's
        self._lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        wav = np.concatenate(self._pieces).astype(np.float32) / 32768 if self._pieces else np.zeros(0, np.float32)
        return soxr.resample(wav, self.source_rate, SAMPLE_RATE).astype(np.float32)

    def phone_onsets(self) -> list[float]:
        """Start times (s) of the phones of the last `speak`, pauses left out: one per G2P phone."""
        return [sample / self.source_rate for name, sample in self._onsets if not name.startswith("_")]


def synthesize_corpus(
    sentences: list[str],
    out_dir: str | Path,
    variants=TRAIN_VARIANTS,
    copies: int = 1,
    seed: int = 0,
    clean: bool = False,
    progress: bool = True,
    language: str = "ky",
) -> Path:
    """Speak every sentence `copies` times with random voices of espeak-ng's `language`; write FLAC clips and
    `manifest.jsonl` (text, that language's G2P phones, duration, voice, augmentation).

    Resumable: clips already listed in the manifest are kept, so an interrupted run continues.
    """
    import soundfile as sf

    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    done = manifest_audio(manifest)
    phones = phonemize(sentences, language=language)
    speaker = Speaker(language)
    rng = np.random.default_rng(seed)
    with open(manifest, "a", encoding="utf-8") as log:
        for i in progress_bar(range(len(sentences) * copies), desc="synthesizing", unit="clip", enabled=progress):
            text, labels = sentences[i % len(sentences)], phones[i % len(sentences)]
            voice = Voice.random(rng, variants)
            clip_rng = np.random.default_rng([seed, i])  # each clip's augmentation independent of the rest
            name = f"clips/{i:06d}.flac"
            if name in done or not labels:
                continue
            wav = speaker.speak(text, voice)
            wav, info = (wav, {}) if clean else augment(wav, clip_rng)
            sf.write(out / name, wav, SAMPLE_RATE)
            row = {
                "audio": name,
                "text": text,
                "phones": " ".join(labels),
                "duration": round(wav.size / SAMPLE_RATE, 3),
                "voice": dataclasses.asdict(voice),
                **info,
            }
            log.write(json.dumps(row, ensure_ascii=False) + "\n")
            log.flush()
    return manifest
