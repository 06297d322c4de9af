"""unispeech: speech to phones with UniSpeech / wav2vec 2.0 CTC models, built first for Kyrgyz."""

from __future__ import annotations

import dataclasses
import os

import torch

from .adapt import AdaptingRunner, AdaptOptions, TogetherOptions, adapted_to, check_trainable
from .audio import SAMPLE_RATE, AudioError, load_audio
from .beam import folder_decoder
from .checkpoint import REAL_MODEL, load_folder, resolve_folder, weights_file
from .config import ModelConfig
from .decoding import GreedyDecoder, Transcription, greedy_decode
from .g2p import phonemize
from .precision import Choice, Precision, choose_backend, resolve_device
from .runners import OnnxRunner, TorchRunner
from .transcribe import ChunkOptions, Recognizer

__version__ = "0.1.0"

__all__ = [
    "load_model",
    "AdaptOptions",
    "TogetherOptions",
    "adapted_to",
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
    backend: str = "auto",
    adapt: AdaptOptions | None = None,
) -> Recognizer:
    """Load a CTC checkpoint: the bundled demo model (no argument, or "default"), a local Hugging Face
    folder (or a folder that `unispeech export` wrote), or a hub id such as
    "microsoft/unispeech-1350-en-17h-ky-ft-1h" (downloaded with huggingface_hub when online).

    backend "auto" and dtype "auto" (the defaults) pick per machine (precision.choose_backend): on a CPU the
    fastest setting measured on its class that keeps float32's phones on >= 99 % of each draw of the demo
    model's held-out utterances (precision.MEASURED; decoded as this model will be: greedy, where a change only at
    float32's own ties counts as kept, or with its phone LM), on CUDA torch with bf16 matmuls.
    `recognizer.describe()` and `recognizer.choice` say what runs and why. dtype "int8" or backend
    "onnxruntime" ask for the model's ONNX export in onnxruntime (made once, then cached); "float32",
    "bfloat16", "float16" for torch in that type ("auto" with backend "torch": bf16 transformer matmuls and a
    float32 CNN where bf16 is native; "mixed": bf16 matmuls in the transformer layers only). The CTC head, the
    transformer's layer norms and its residual stream always stay float32 (precision.py).
    `decoder`: a decoding strategy; by default the folder's own (beam search with its phone LM where it ships
    `unispeech_decoding.json`, as the bundled model does), else greedy. `GreedyDecoder()` asks for greedy.
    `adapt`: adapt the model to each utterance before decoding it (adapt.py: SUTA); it takes gradients, so it
    runs in torch float32, about `adapt.steps` x 3 times the time of a plain forward pass. To adapt once to many
    recordings of one voice instead: `adapted_to(load_model(name, dtype="float32", backend="torch"), files,
    TogetherOptions())`.
    """
    folder = resolve_folder(name_or_path)
    device = resolve_device(device)
    decoder = decoder or folder_decoder(folder) or GreedyDecoder()
    if adapt is not None:
        choice = _adapting_choice(folder, backend, dtype)
    else:
        choice = choose_backend(backend, dtype, device, with_lm=getattr(decoder, "lm", None) is not None)
    if weights_file(folder) is None and (folder / "model.onnx").is_file():  # (adapting refused such a folder)
        choice = _export_folder_choice(choice, folder, backend, dtype, device)
    name = "bundled demo model" if name_or_path in (None, "default") else str(name_or_path)
    if choice.backend == "onnxruntime":
        runner, vocab, audio = _load_onnx(folder, choice.dtype)
    else:
        model, vocab, audio = load_folder(folder, choice.precision)
        if adapt is not None:
            runner = AdaptingRunner(model.to(device=device), adapt, vocab.blank_id)
        else:
            runner = TorchRunner(model.to(device=device), choice.precision)
    return Recognizer(runner, vocab, audio, name=name, decoder=decoder, choice=choice.reason)


def _adapting_choice(folder, backend: str, dtype) -> Choice:
    """Adaptation takes gradients through the model: torch in float32, from the folder's weights."""
    check_trainable(backend, dtype)
    if weights_file(folder) is None:
        raise ValueError(f"{folder} has no weights (an ONNX export?): adapting to each utterance needs them")
    return Choice("torch", "float32", Precision(), "adapting to each utterance: torch float32 (gradients)")


def _export_folder_choice(choice, folder, backend, dtype, device):
    """What runs a folder that holds an ONNX export and no weights: the graph that auto chose where the folder
    has it, else its float32 graph (an export made without --int8 on a CPU whose auto is int8)."""
    from .export import FILES

    if choice.backend == "onnxruntime":
        if (folder / FILES[choice.dtype]).is_file() or not (backend == "auto" and dtype in (None, "auto")):
            return choice  # a named graph the folder lacks: cached_export says so
    elif backend != "auto" or dtype not in (None, "auto", "float32", torch.float32):
        raise ValueError(f"{folder} holds an ONNX export, no weights: load it with backend onnxruntime")
    return dataclasses.replace(choose_backend("onnxruntime", "float32", device), reason="an ONNX export folder")


def _load_onnx(folder, dtype: str):
    """The folder's ONNX export in `dtype` (made and cached on first use), without reading the torch weights."""
    import sys

    from .checkpoint import read_metadata
    from .export import cached_export

    config, vocab, audio = read_metadata(folder)  # first: a broken folder gets the same message as in torch
    path = cached_export(folder, dtype, load=lambda: load_folder(folder), notify=lambda m: print(m, file=sys.stderr))
    return OnnxRunner(path, config), vocab, audio


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
