"""Adapting the model to a voice before decoding it, with no transcript: SUTA's losses (Lin et al., "Listen,
Adapt, Better WER", arXiv 2203.14222). A few AdamW steps on the CNN feature encoder and every layer norm minimise
the entropy of the frames whose best class is not the blank and the confusion between classes (minimum class
confusion); for a voice the model never heard, this moves its normalisations towards that voice.

Two ways: to each utterance on its own (`AdaptOptions`, `AdaptingRunner`: SUTA as published; each utterance
adapts a copy of those parameters, so a result does not depend on what was transcribed before it), or once to all
the audio of a run, one speaker or one recording (`TogetherOptions`, `adapted_to`: steps drawn over all of it,
then every input decoded by the adapted copy; cheaper, and it learns more of the voice than one utterance holds).
The loaded weights never change either way."""

from __future__ import annotations

import copy
import dataclasses
import random
import threading

import numpy as np
import torch
from torch.func import functional_call

from .audio import AudioError
from .model import CTCModel
from .precision import Precision
from .runners import TorchRunner
from .transcribe import AudioInput, Recognizer


@dataclasses.dataclass(frozen=True)
class AdaptOptions:
    steps: int = 10
    lr: float = 2e-5
    temperature: float = 2.5  # softens the posteriors the losses see (SUTA's setting)
    entropy_weight: float = 0.3  # the rest of the loss is class confusion
    min_spoken_frames: int = 10  # fewer frames heard as phones (a letter, a word): decoded as they are

    def __post_init__(self):
        ok = self.steps >= 1 and self.lr > 0 and self.temperature > 0 and self.min_spoken_frames >= 0
        if not (ok and 0 <= self.entropy_weight <= 1):
            raise ValueError(
                f"adaptation needs steps >= 1, lr > 0, temperature > 0, entropy weight 0-1, min spoken frames "
                f">= 0: {self}"
            )

    def describe(self) -> str:
        return f"adapted to each utterance (SUTA: {self.steps} steps, lr {self.lr:g})"


def adapted_names(model: CTCModel) -> list[str]:
    """The parameters SUTA adapts: the feature encoder's convolutions and norms, and every layer norm."""
    return [
        name
        for name, _ in model.named_parameters()
        if name.startswith("backbone.feature_extractor.") or "layer_norm" in name
    ]


def frame_entropy(logits: torch.Tensor) -> torch.Tensor:
    return -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)


def class_confusion(logits: torch.Tensor) -> torch.Tensor:
    """Minimum class confusion (Jin et al. 2020): how much probability mass the frames share between classes,
    confident frames weighted up; 0 when every frame is sure of one class."""
    p = logits.softmax(-1)  # (frames, classes)
    weight = 1 + torch.exp(-frame_entropy(logits).detach())
    weight = p.shape[0] * weight / weight.sum()
    confusion = (p * weight[:, None]).T @ p
    confusion = confusion / confusion.sum(1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / p.shape[1]


def suta_loss(logits: torch.Tensor, blank: int, options: AdaptOptions) -> torch.Tensor:
    logits = logits / options.temperature
    loss = (1 - options.entropy_weight) * class_confusion(logits)
    spoken = logits.argmax(-1) != blank
    if spoken.any():  # an utterance heard as all blank has only the confusion term
        loss = loss + options.entropy_weight * frame_entropy(logits[spoken]).mean()
    return loss


def adapted_logits(model: CTCModel, wav: torch.Tensor, options: AdaptOptions, blank: int) -> torch.Tensor:
    """(samples,) normalised waveform -> (frames, classes) float32 logits of the model adapted to it."""
    own = dict(model.named_parameters())
    params = {name: own[name].detach().clone().requires_grad_(True) for name in adapted_names(model)}
    optimizer = torch.optim.AdamW(params.values(), lr=options.lr)
    wav, length = wav[None], torch.tensor([wav.numel()], device=wav.device)
    with torch.enable_grad():
        for step in range(options.steps):
            logits = functional_call(model, params, (wav, length))[0][0].float()
            if step == 0 and int((logits.argmax(-1) != blank).sum()) < options.min_spoken_frames:
                return logits.detach()
            grads = torch.autograd.grad(suta_loss(logits, blank, options), list(params.values()))
            for param, grad in zip(params.values(), grads):
                param.grad = grad
            optimizer.step()
    with torch.no_grad():
        return functional_call(model, params, (wav, length))[0][0].float()


class AdaptingRunner(TorchRunner):
    """A float32 CTCModel that adapts to each waveform of a batch on its own (SUTA) before giving its logits."""

    def __init__(self, model: CTCModel, options: AdaptOptions, blank: int):
        super().__init__(model, Precision())
        self.options, self.blank = options, blank
        self.lock = threading.Lock()  # functional_call swaps the module's parameters while it runs

    def __call__(self, batch: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.model.backbone.output_lengths(torch.from_numpy(lengths)).numpy()
        out = np.zeros((len(batch), int(n.max()), self.config.vocab_size), np.float32)
        with self.lock:
            for i, (row, length) in enumerate(zip(batch, lengths)):
                wav = torch.from_numpy(row[:length]).to(self.device)
                out[i, : n[i]] = adapted_logits(self.model, wav, self.options, self.blank).cpu().numpy()
        return out, n

    def describe(self) -> str:
        return f"{super().describe()}, {self.options.describe()}"

    def identity(self) -> str:
        return f"{super().identity()} {self.options}"


@dataclasses.dataclass(frozen=True)
class TogetherOptions(AdaptOptions):
    """Adapting once to all the audio of a run: `steps` AdamW steps, each on `utterances_per_step` inputs drawn
    (seeded) from at most `max_inputs` of them, a random `crop_seconds` window of each longer one."""

    steps: int = 30
    utterances_per_step: int = 4
    crop_seconds: float = 15.0
    max_inputs: int = 200
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.utterances_per_step < 1 or self.crop_seconds <= 0 or self.max_inputs < 1:
            raise ValueError(f"adaptation needs utterances per step >= 1, crop > 0 s, max inputs >= 1: {self}")

    def describe(self) -> str:
        return f"adapted together ({self.steps} steps of up to {self.utterances_per_step} inputs, lr {self.lr:g})"


def adapt_together(
    model: CTCModel, wavs: list[torch.Tensor], options: TogetherOptions, blank: int, sampling_rate: int
) -> tuple[CTCModel, int]:
    """-> (a copy of `model` adapted to all of `wavs`, how many crops gave a gradient). A crop with fewer than
    `min_spoken_frames` frames heard as phones (silence, a letter) gives none."""
    adapted = copy.deepcopy(model).requires_grad_(False)
    names = set(adapted_names(model))
    params = [p.requires_grad_(True) for n, p in adapted.named_parameters() if n in names]
    optimizer = torch.optim.AdamW(params, lr=options.lr)
    rng, crop, used = random.Random(options.seed), int(options.crop_seconds * sampling_rate), 0
    with torch.enable_grad():
        for _ in range(options.steps if wavs else 0):
            drawn = rng.sample(wavs, min(options.utterances_per_step, len(wavs)))
            for wav in drawn:
                if wav.numel() > crop:
                    start = rng.randrange(wav.numel() - crop)
                    wav = wav[start : start + crop]
                logits = adapted(wav[None], torch.tensor([wav.numel()], device=wav.device))[0][0].float()
                if int((logits.argmax(-1) != blank).sum()) >= options.min_spoken_frames:
                    (suta_loss(logits, blank, options) / len(drawn)).backward()
                    used += 1
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return adapted.requires_grad_(False), used


class AdaptedRunner(TorchRunner):
    """A float32 CTCModel adapted to the audio of a run (`adapted_to`); it runs as any torch model."""

    def __init__(self, model: CTCModel, note: str, used: int):
        super().__init__(model, Precision())
        self.note, self.used = note, used  # used: crops that gave a gradient (0: the weights as loaded)

    def describe(self) -> str:
        return f"{super().describe()}, {self.note}"

    def identity(self) -> str:
        return f"{super().identity()} {self.note}"


def adapted_to(recognizer: Recognizer, audio: list[AudioInput], options: TogetherOptions) -> Recognizer:
    """`recognizer` adapted once to all of `audio` (paths or prepared waveforms; one speaker or recording):
    a new Recognizer whose model is an adapted copy. Inputs that cannot be read are left out (their
    transcription will report them); the recognizer must run its weights in torch float32."""
    runner = recognizer.runner
    if type(runner) is not TorchRunner or runner.precision != Precision():
        raise ValueError(
            f"adapting takes gradients: it needs the model's weights in torch float32, not {runner.describe()}"
        )
    audio = list(audio)
    chosen = random.Random(options.seed).sample(audio, min(len(audio), options.max_inputs))
    wavs = []
    for item in chosen:
        try:
            wav = recognizer.prepare(item) if not isinstance(item, np.ndarray) else item
        except AudioError:
            continue
        wavs.append(torch.from_numpy(wav).to(runner.device))
    model, used = adapt_together(runner.model, wavs, options, recognizer.vocab.blank_id, recognizer.audio.sampling_rate)
    note = f"{options.describe()} to {len(audio)} inputs, {used} crops heard as speech"
    return Recognizer(
        AdaptedRunner(model, note, used),
        recognizer.vocab,
        recognizer.audio,
        recognizer.name,
        recognizer.chunking,
        decoder=recognizer.decoder,
        choice=recognizer.choice,
    )
