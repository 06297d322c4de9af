"""unispeech: speech to phones with UniSpeech / wav2vec 2.0 CTC models, built first for Kyrgyz."""

from __future__ import annotations

import os

import torch

from .audio import SAMPLE_RATE, AudioError, load_audio
from .checkpoint import load_folder, resolve_folder
from .config import ModelConfig
from .decoding import Transcription, greedy_decode
from .transcribe import ChunkOptions, Recognizer

__version__ = "0.1.0"

REAL_MODEL = "microsoft/unispeech-1350-en-17h-ky-ft-1h"

__all__ = ["load_model", "Recognizer", "Transcription", "ModelConfig", "ChunkOptions", "AudioError",
           "load_audio", "greedy_decode", "SAMPLE_RATE", "REAL_MODEL", "__version__"]


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | str | None = None) -> Recognizer:
    """Load a CTC checkpoint: a local Hugging Face folder, or a hub id such as
    "microsoft/unispeech-1350-en-17h-ky-ft-1h" (downloaded with huggingface_hub when online)."""
    folder = resolve_folder(name_or_path)
    model, vocab, audio = load_folder(folder)
    model = model.to(device=device, dtype=_dtype(dtype))
    return Recognizer(model, vocab, audio, name=str(name_or_path))


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r} (expected one of {', '.join(names)})")
    return names[dtype]
