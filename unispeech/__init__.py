"""unispeech: speech to phones with UniSpeech / wav2vec 2.0 CTC models, built first for Kyrgyz."""

from __future__ import annotations

import os

import torch

from .audio import SAMPLE_RATE, AudioError, load_audio
from .checkpoint import REAL_MODEL, load_folder, resolve_folder
from .config import ModelConfig
from .decoding import GreedyDecoder, Transcription, greedy_decode
from .g2p import phonemize
from .precision import Precision
from .transcribe import ChunkOptions, Recognizer

__version__ = "0.1.0"

__all__ = [
    "load_model",
    "Recognizer",
    "Transcription",
    "ModelConfig",
    "ChunkOptions",
    "AudioError",
    "Precision",
    "GreedyDecoder",
    "load_audio",
    "greedy_decode",
    "phonemize",
    "score",
    "SAMPLE_RATE",
    "REAL_MODEL",
    "__version__",
]


def load_model(
    name_or_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = "auto",
    decoder=None,
) -> Recognizer:
    """Load a CTC checkpoint: the bundled demo model (no argument, or "default"), a local Hugging Face
    folder, or a hub id such as "microsoft/unispeech-1350-en-17h-ky-ft-1h" (downloaded with huggingface_hub
    when online).

    dtype "auto", where the hardware has fast bf16 matmuls (CPUs with AVX512-bf16 or AMX, CUDA GPUs): the
    transformer's matmuls in bfloat16, the CNN feature encoder in float32 (its rounding is what changes
    phones most), else float32 throughout. "bfloat16" puts the CNN in bfloat16 too (fastest). The CTC head,
    the transformer's layer norms and its residual stream always stay float32 (precision.py).
    `decoder`: a decoding strategy (default greedy; `unispeech.beam.BeamSearchDecoder` for beam + phone LM).
    """
    folder = resolve_folder(name_or_path)
    device = torch.device(device)
    precision = Precision.choose(dtype, device)
    model, vocab, audio = load_folder(folder, precision)
    name = "bundled demo model" if name_or_path in (None, "default") else str(name_or_path)
    return Recognizer(
        model.to(device=device), vocab, audio, name=name, precision=precision, decoder=decoder or GreedyDecoder()
    )


def score(
    audio,
    text: str,
    model: Recognizer | str | os.PathLike | None = None,
    sampling_rate: int | None = None,
    language: str = "ky",
):
    """Pronunciation scores of `text` read in `audio` (scoring.py): per phone, word and utterance, in [0, 1].
    `model`: a loaded Recognizer (load it once for many calls), a model name or folder, or None (bundled)."""
    from .scoring import score as score_with

    recognizer = model if isinstance(model, Recognizer) else load_model(model)
    return score_with(recognizer, audio, text, sampling_rate=sampling_rate, language=language)
