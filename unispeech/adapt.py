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
import os
import random
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

from .audio import AudioError
from .beam import save_folder_decoder
from .model import CTCModel
from .precision import Precision
from .progress import progress_bar
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


def check_trainable(backend: str, dtype) -> None:
    """Adapting takes gradients through the model: torch in float32 (what `auto` means here), nothing else."""
    if backend == "onnxruntime" or str(dtype).replace("torch.", "") not in ("auto", "None", "float32"):
        raise ValueError(f"adapting takes gradients: it runs in torch float32, not {backend} {dtype}")


def plain_float32(runner) -> bool:
    """Whether a runner runs its model's own weights in torch float32, as adapting once to a voice needs."""
    return type(runner) is TorchRunner and runner.precision == Precision()


def heard_as_speech(logits: torch.Tensor, blank: int, options: AdaptOptions) -> bool:
    """Enough frames heard as phones for the losses to go on (a letter or silence is left as it is)."""
    return int((logits.argmax(-1) != blank).sum()) >= options.min_spoken_frames


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
            if step == 0 and not heard_as_speech(logits, blank, options):
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
    """Adapting once to all the audio of a run: the audio of at most `max_inputs` inputs (drawn seeded) cut into
    pieces of at most `piece_seconds`, of which at most `max_pieces` are kept (drawn seeded: memory stays bounded
    however long the recordings); then `steps` AdamW steps, each on `pieces_per_step` pieces drawn seeded."""

    steps: int = 30
    pieces_per_step: int = 4
    piece_seconds: float = 15.0
    max_inputs: int = 200
    max_pieces: int = 200
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if min(self.pieces_per_step, self.max_inputs, self.max_pieces) < 1 or self.piece_seconds < 1:
            raise ValueError(f"adaptation needs pieces per step, max inputs, max pieces >= 1, pieces >= 1 s: {self}")

    def describe(self) -> str:
        return f"adapted together ({self.steps} steps of up to {self.pieces_per_step} pieces, lr {self.lr:g})"


def cut_pieces(wavs: Iterable[np.ndarray], options: TogetherOptions, sampling_rate: int) -> list[np.ndarray]:
    """Each waveform cut into consecutive pieces of at most `piece_seconds` (a tail under 1 s is left out), at most
    `max_pieces` of them kept, drawn seeded (reservoir sampling: one recording in memory at a time)."""
    size, kept, seen = int(options.piece_seconds * sampling_rate), [], 0
    rng = random.Random(options.seed)
    for wav in wavs:
        for start in range(0, wav.size, size):
            piece = wav[start : start + size]
            if start and piece.size < sampling_rate:
                continue
            seen += 1
            slot = len(kept) if len(kept) < options.max_pieces else rng.randrange(seen)
            if slot < options.max_pieces:
                kept[slot : slot + 1] = [piece.copy()]
    return kept


class AdaptedRunner(TorchRunner):
    """A float32 CTCModel adapted to the audio of a run (`adapted_to`); it runs as any torch model."""

    def __init__(self, model: CTCModel, note: str, used: int):
        super().__init__(model, Precision())
        self.note, self.used = note, used  # used: draws that gave a gradient (0: the weights as loaded)

    def describe(self) -> str:
        return f"{super().describe()}, {self.note}"

    def identity(self) -> str:
        return f"{super().identity()} {self.note}"


class Adaptation:
    """Adapting a recognizer once to all of some audio, a step at a time (a server answers other requests between
    steps): the audio cut into pieces (`cut_pieces`), then each `step()` an AdamW step on a seeded draw of
    `pieces_per_step` of them; a piece with fewer than `min_spoken_frames` frames heard as phones (silence, a
    letter) gives no gradient. `result()`: a new Recognizer whose model is the adapted copy."""

    def __init__(self, recognizer: Recognizer, audio: list[AudioInput], options: TogetherOptions):
        runner = recognizer.runner
        if not plain_float32(runner):
            raise ValueError(
                f"adapting takes gradients: it needs the model's weights in torch float32, not {runner.describe()}"
            )
        audio = list(audio)
        chosen = random.Random(options.seed).sample(audio, min(len(audio), options.max_inputs))
        pieces = cut_pieces(_readable(recognizer, chosen), options, recognizer.audio.sampling_rate)
        self.pieces = [torch.from_numpy(piece).to(runner.device) for piece in pieces]
        self.base, self.options, self.inputs = recognizer, options, len(audio)
        self.model = copy.deepcopy(runner.model).requires_grad_(False)
        names = set(adapted_names(self.model))
        params = [p.requires_grad_(True) for n, p in self.model.named_parameters() if n in names]
        self.optimizer = torch.optim.AdamW(params, lr=options.lr)
        self.rng, self.used = random.Random(options.seed), 0  # used: draws that gave a gradient
        self.steps_left = options.steps if self.pieces else 0

    def step(self) -> bool:
        """One step; False once all are done."""
        if not self.steps_left:
            return False
        drawn = self.rng.sample(self.pieces, min(self.options.pieces_per_step, len(self.pieces)))
        blank = self.base.vocab.blank_id
        with torch.enable_grad():
            for wav in drawn:
                logits = self.model(wav[None], torch.tensor([wav.numel()], device=wav.device))[0][0].float()
                if heard_as_speech(logits, blank, self.options):
                    (suta_loss(logits, blank, self.options) / len(drawn)).backward()
                    self.used += 1
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.steps_left -= 1
        return True

    def result(self) -> Recognizer:
        note = f"{self.options.describe()} to {self.inputs} inputs, {self.used} draws heard as speech"
        base = self.base
        return Recognizer(
            AdaptedRunner(self.model.requires_grad_(False), note, self.used),
            base.vocab,
            base.audio,
            base.name,
            base.chunking,
            decoder=base.decoder,
            choice="adapting together: torch float32 (gradients)",
        )


def adapted_to(
    recognizer: Recognizer, audio: list[AudioInput], options: TogetherOptions, progress: bool = False
) -> Recognizer:
    """`recognizer` adapted once to all of `audio` (paths or prepared waveforms; one speaker or recording):
    a new Recognizer whose model is an adapted copy (`Adaptation`, all its steps; `progress`: a bar of them on
    stderr). Inputs that cannot be read are left out (their transcription will report them); the recognizer must run
    its weights in torch float32."""
    adaptation = Adaptation(recognizer, audio, options)
    for _ in progress_bar(range(adaptation.steps_left), desc="adapting", unit="step", enabled=progress):
        adaptation.step()
    return adaptation.result()


def save_adapted(recognizer: Recognizer, folder: str | os.PathLike) -> Path:
    """An adapted recognizer as a model folder for any `--model`: its float32 weights (float16 storage would round
    away most of what adapting changed) and its model's own decoding (the phone LM), where it has one."""
    out = recognizer.save(folder)
    if getattr(recognizer.decoder, "options", None) is not None:
        save_folder_decoder(out, recognizer.decoder.options, recognizer.decoder.lm)
    return out


def _readable(recognizer: Recognizer, items: list[AudioInput]) -> Iterator[np.ndarray]:
    """Each input prepared (a waveform passes as it is); one that cannot be read is left out."""
    for item in items:
        try:
            yield item if isinstance(item, np.ndarray) else recognizer.prepare(item)
        except AudioError:
            continue
