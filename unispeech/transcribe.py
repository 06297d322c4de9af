"""Run a CTC model over utterances of any length: length-sorted padded batches, long files in chunks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .audio import (
    AudioError,
    AudioSettings,
    FrameGeometry,
    check_audio,
    load_audio,
    normalize,
    to_float_mono,
)
from .checkpoint import save_folder
from .decoding import Decoder, GreedyDecoder, Transcription
from .model import CTCModel
from .precision import Precision
from .progress import progress_bar
from .runners import OnnxRunner, TorchRunner
from .vocab import Vocabulary

AudioInput = Union[str, os.PathLike, np.ndarray]


class Cancelled(Exception):
    """`logits_batch` stopped because its `cancelled()` said nobody waits for the result any more."""


@dataclasses.dataclass(frozen=True)
class ChunkOptions:
    """How audio longer than `max_seconds` is split: cores of `chunk_seconds`, each seen with
    `context_seconds` of audio on both sides; only the core frames are kept, so frames are stitched exactly."""

    max_seconds: float = 30.0
    chunk_seconds: float = 20.0
    context_seconds: float = 3.0
    max_batch_seconds: float = 60.0  # padded audio per forward pass: bounds activation memory (~1 GB for Large)


@dataclasses.dataclass(frozen=True)
class _Piece:
    item: int  # which utterance
    sample_start: int
    sample_end: int
    frame_offset: int  # global index of the window's first frame
    core: tuple[int, int]  # global frames this piece contributes


class Recognizer:
    """A loaded model with its vocabulary, audio settings, runner and decoder; what `unispeech.load_model`
    returns. `model`: a CTCModel (run by torch in `precision`) or a runner (runners.py: torch or an ONNX
    export in onnxruntime). Change the decoder with a copy: `recognizer.with_decoder(...)`."""

    def __init__(
        self,
        model: CTCModel | TorchRunner | OnnxRunner,
        vocab: Vocabulary,
        audio: AudioSettings,
        name: str = "",
        chunking: ChunkOptions = ChunkOptions(),
        precision: Precision = Precision(),
        decoder: Decoder = GreedyDecoder(),
        choice: str = "",
    ):
        self.runner = TorchRunner(model, precision) if isinstance(model, torch.nn.Module) else model
        self.vocab, self.audio, self.name, self.chunking, self.decoder = vocab, audio, name, chunking, decoder
        self.choice = choice  # why this backend and precision run (precision.choose_backend), for --verbose
        self.config = self.runner.config
        self.frames = FrameGeometry.of(self.config, audio)

    def with_decoder(self, decoder: Decoder) -> Recognizer:
        """The same model (shared, not copied) decoding with another strategy."""
        return Recognizer(
            self.runner, self.vocab, self.audio, self.name, self.chunking, decoder=decoder, choice=self.choice
        )

    @property
    def model(self) -> CTCModel | None:
        """The torch model, when torch runs it (None for an ONNX export)."""
        return getattr(self.runner, "model", None)

    @property
    def precision(self) -> Precision:
        return getattr(self.runner, "precision", Precision())

    @property
    def device(self) -> torch.device:
        return self.runner.device

    @property
    def dtype(self) -> torch.dtype:
        """torch's type for the transformer's matmuls (float32 for an ONNX export: its dtype is in describe())."""
        return self.precision.compute

    def describe(self) -> str:
        """What runs: backend, precision, device (e.g. "onnxruntime int8 on cpu")."""
        return self.runner.describe()

    def prepare(self, audio: AudioInput, sampling_rate: int | None = None) -> np.ndarray:
        """A path or an array -> the model's input: mono, resampled, normalised if the model wants it."""
        rate = self.audio.sampling_rate
        if isinstance(audio, (str, os.PathLike)):
            if sampling_rate is not None:
                raise ValueError("sampling_rate is read from the file; pass it only with an array")
            wav = load_audio(audio, rate)
            name = str(audio)
        else:
            if sampling_rate is None:
                raise ValueError("an audio array needs its sampling_rate")
            wav = to_float_mono(audio, sampling_rate, rate)
            name = "audio"
        check_audio(wav, rate, name, min_samples=self.frames.receptive_field)
        return normalize(wav) if self.audio.do_normalize else wav

    def logits(self, audio: AudioInput, sampling_rate: int | None = None) -> np.ndarray:
        """Frame logits (frames, vocab) as float32 numpy."""
        return self.logits_batch([self.prepare(audio, sampling_rate)])[0]

    def transcribe(self, audio: AudioInput, sampling_rate: int | None = None) -> Transcription:
        wav = self.prepare(audio, sampling_rate)
        return self.decode(self.logits_batch([wav])[0], wav.size)

    def decode(self, logits: np.ndarray, num_samples: int) -> Transcription:
        duration = num_samples / self.audio.sampling_rate
        return self.decoder.decode(logits, self.vocab, self.frames.seconds_per_frame, duration)

    def transcribe_many(
        self, items: Iterable[AudioInput], batch_size: int = 8, progress: bool = False, sampling_rate: int | None = None
    ) -> Iterator[Transcription | AudioError]:
        """Results in input order; an unusable input yields its AudioError instead of stopping the rest."""
        items = list(items)
        bar = _progress(len(items), progress)
        for wav, logits in self.logits_many(items, batch_size, sampling_rate):
            bar.update(1)
            yield wav if logits is None else self.decode(logits, wav.size)
        bar.close()

    def logits_many(
        self, items: Iterable[AudioInput], batch_size: int = 8, sampling_rate: int | None = None
    ) -> Iterator[tuple[np.ndarray | AudioError, np.ndarray | None]]:
        """(prepared waveform, its logits) of each input in input order, in transcribe_many's batch plan; an
        unusable input gives (its AudioError, None)."""
        items = list(items)
        group = max(1, batch_size) * 16  # decode this many files at a time, sorted by length inside
        # Decoding the next group in a thread while the model runs was measured slower on 2 cores (15.6 s vs
        # 11.1 s for 227 files): the reader takes a core from the model's threads (docs/performance.md).
        for lo in range(0, len(items), group):
            wavs = self._prepare_group(items[lo : lo + group], sampling_rate)
            good = [i for i, w in enumerate(wavs) if not isinstance(w, AudioError)]
            logits: list[np.ndarray | None] = [None] * len(wavs)
            for i, x in zip(good, self.logits_batch([wavs[i] for i in good], batch_size)):
                logits[i] = x
            yield from zip(wavs, logits)

    def _prepare_group(self, items: list, sampling_rate: int | None) -> list[np.ndarray | AudioError]:
        wavs: list[np.ndarray | AudioError] = []
        for item in items:
            try:
                wavs.append(self.prepare(item, sampling_rate))
            except AudioError as e:
                wavs.append(e)
        return wavs

    def logits_batch(
        self, wavs: list[np.ndarray], batch_size: int = 8, cancelled: Callable[[], bool] | None = None
    ) -> list[np.ndarray]:
        """Prepared waveforms -> their logits, batching pieces of similar length together. `cancelled` is
        asked before each forward pass; when it says yes, Cancelled is raised (nobody wants the rest)."""
        pieces = [p for i, w in enumerate(wavs) for p in self._plan(i, w.size)]
        n_frames = [self.frames.frames(w.size) for w in wavs]
        out = [np.empty((n, len(self.vocab)), np.float32) for n in n_frames]
        pieces.sort(key=lambda p: p.sample_end - p.sample_start, reverse=True)
        max_samples = int(self.chunking.max_batch_seconds * self.audio.sampling_rate)
        start = 0
        while start < len(pieces):
            if cancelled is not None and cancelled():
                raise Cancelled
            longest = pieces[start].sample_end - pieces[start].sample_start
            size = max(1, min(batch_size, self.runner.max_batch, max_samples // max(longest, 1)))
            batch = pieces[start : start + size]
            start += size
            logits, lengths = self._forward([wavs[p.item][p.sample_start : p.sample_end] for p in batch])
            for p, row, n in zip(batch, logits, lengths):
                a, b = p.core[0] - p.frame_offset, p.core[1] - p.frame_offset
                assert b <= n, "piece shorter than its core"
                out[p.item][p.core[0] : p.core[1]] = row[a:b]
        return out

    def _plan(self, item: int, num_samples: int) -> list[_Piece]:
        """Split one utterance into windows whose core frames tile [0, n_frames) exactly."""
        rate, stride, field = self.audio.sampling_rate, self.frames.stride, self.frames.receptive_field
        n = self.frames.frames(num_samples)
        if num_samples <= self.chunking.max_seconds * rate:
            return [_Piece(item, 0, num_samples, 0, (0, n))]
        core = max(1, int(self.chunking.chunk_seconds * rate) // stride)
        context = int(self.chunking.context_seconds * rate) // stride
        pieces = []
        for a in range(0, n, core):
            b = min(n, a + core)
            first, last = max(0, a - context), min(n, b + context)  # window frames [first, last)
            pieces.append(_Piece(item, first * stride, min(num_samples, (last - 1) * stride + field), first, (a, b)))
        return pieces

    def _forward(self, wavs: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        lengths = np.array([w.size for w in wavs], np.int64)
        batch = np.zeros((len(wavs), int(lengths.max())), np.float32)
        for row, w in zip(batch, wavs):
            row[: w.size] = w
        logits, frame_lengths = self.runner(batch, lengths)
        return logits, [int(n) for n in frame_lengths]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write a Hugging Face folder (safetensors) that transformers and `load_model` read."""
        if self.model is None:
            raise ValueError("this model runs from an ONNX export, which has no weights to save; save the source")
        return save_folder(folder, self.model, self.vocab, self.audio)


def _progress(total: int, enabled: bool):
    return progress_bar(total=total, unit="file", desc="transcribing", dynamic_ncols=True, enabled=enabled)
