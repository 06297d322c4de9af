"""unispeech: speech to phones with UniSpeech / wav2vec 2.0 CTC models, built first for Kyrgyz."""

from __future__ import annotations

import os

import torch

from .audio import SAMPLE_RATE, AudioError, load_audio
from .checkpoint import load_folder, resolve_folder
from .config import ModelConfig
from .decoding import Transcription, greedy_decode
from .g2p import phonemize
from .transcribe import ChunkOptions, Recognizer

__version__ = "0.1.0"

REAL_MODEL = "microsoft/unispeech-1350-en-17h-ky-ft-1h"

__all__ = ["load_model", "Recognizer", "Transcription", "ModelConfig", "ChunkOptions", "AudioError",
           "load_audio", "greedy_decode", "phonemize", "SAMPLE_RATE", "REAL_MODEL", "__version__"]


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | str | None = "auto") -> Recognizer:
    """Load a CTC checkpoint: a local Hugging Face folder, or a hub id such as
    "microsoft/unispeech-1350-en-17h-ky-ft-1h" (downloaded with huggingface_hub when online).

    dtype "auto", where the hardware has fast bf16 matmuls (CPUs with AVX512-bf16 or AMX, CUDA GPUs): the
    transformer's matmuls in bfloat16, the CNN feature encoder in float32 (its rounding is what changes
    phones most), else float32 throughout. "bfloat16" puts the CNN in bfloat16 too (fastest). The CTC head,
    the transformer's layer norms and its residual stream always stay float32.
    """
    folder = resolve_folder(name_or_path)
    compute = _dtype(dtype, torch.device(device))
    features = torch.float32 if dtype in (None, "auto") and compute != torch.float32 else None
    model, vocab, audio = load_folder(folder, compute, features)
    return Recognizer(model.to(device=device), vocab, audio, name=str(name_or_path))


def fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def _dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if fast_bf16(device) else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r} (expected one of {', '.join(names)})")
    return names[dtype]
