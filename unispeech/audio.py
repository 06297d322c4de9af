"""Audio in: any file soundfile reads, or an array, to mono float32 at the model's rate."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
READ_BLOCK_SECONDS = 30  # files are decoded and resampled in blocks, so memory holds one mono 16 kHz copy
MIN_SAMPLING_RATE = 4000  # below it no speech band survives (telephone audio is 8000 Hz): a broken header


@dataclasses.dataclass(frozen=True)
class AudioSettings:
    """preprocessor_config.json: what the model expects of its input."""

    sampling_rate: int = SAMPLE_RATE
    do_normalize: bool = True

    @classmethod
    def from_folder(cls, folder: Path) -> AudioSettings:
        path = Path(folder) / "preprocessor_config.json"
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        return cls(
            sampling_rate=int(data.get("sampling_rate", SAMPLE_RATE)), do_normalize=bool(data.get("do_normalize", True))
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "do_normalize": self.do_normalize,
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1,
                "padding_side": "right",
                "padding_value": 0.0,
                "processor_class": "Wav2Vec2Processor",
                "return_attention_mask": True,
                "sampling_rate": self.sampling_rate,
            },
            indent=2,
        )


@dataclasses.dataclass(frozen=True)
class FrameGeometry:
    """Where the model's output frames lie in its input: frame i starts at sample i * stride and sees
    `receptive_field` samples. The one source of every time we report (20 ms frames for the usual encoder)."""

    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    sampling_rate: int = SAMPLE_RATE

    @classmethod
    def of(cls, config, audio: AudioSettings = AudioSettings()) -> FrameGeometry:
        """From a ModelConfig and the audio settings it was trained with."""
        return cls(tuple(config.conv_kernel), tuple(config.conv_stride), audio.sampling_rate)

    @property
    def stride(self) -> int:
        """Input samples per output frame (320 = 20 ms at 16 kHz)."""
        return int(np.prod(self.strides))

    @property
    def receptive_field(self) -> int:
        """Input samples seen by one output frame (400 = 25 ms for the standard encoder)."""
        field = 1
        for kernel, stride in reversed(list(zip(self.kernels, self.strides))):
            field = (field - 1) * stride + kernel
        return field

    @property
    def seconds_per_frame(self) -> float:
        return self.stride / self.sampling_rate

    def frames(self, num_samples: int) -> int:
        """Output frames for `num_samples` input samples."""
        from .components import conv_output_lengths

        return conv_output_lengths(num_samples, self.kernels, self.strides)

    def seconds(self, frame: int) -> float:
        """The start time of `frame` (or the end time of frame - 1), rounded to the millisecond."""
        return round(frame * self.seconds_per_frame, 3)


class AudioError(ValueError):
    """The input is not usable audio; the message says why."""


class AudioTooLong(AudioError):
    """The audio is longer than a configured limit."""


def load_audio(path: str | os.PathLike, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` (wav, flac, ogg, mp3, ...), mix to mono, resample to `sampling_rate`: float32 (samples,)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied (this user may not read the file)")
    return decode_audio(str(path), str(path), sampling_rate)


def decode_audio(
    source, name: str, sampling_rate: int = SAMPLE_RATE, max_seconds: float | None = None, notes: list | None = None
) -> np.ndarray:
    """Decode a path or a binary file object; `max_seconds` refuses longer audio before decoding it all.
    What the caller should know but is no error (a truncated file) goes to `notes`, else to warnings.warn."""
    import soundfile as sf
    import soxr

    path = name  # for messages
    try:
        f = sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: not a readable audio file (unknown format, empty or corrupt)") from e
    try:
        with f:
            source_rate = f.samplerate
            check_rate(source_rate, path)
            block = max(1, READ_BLOCK_SECONDS * source_rate)
            resampler = (
                None
                if source_rate == sampling_rate
                else soxr.ResampleStream(source_rate, sampling_rate, 1, dtype="float32")
            )
            pieces = []
            decoded = 0
            while len(data := f.read(block, dtype="float32", always_2d=True)):  # not blocks(): it trusts
                decoded += len(data)  # the header's length and pads a truncated mp3 with zeros
                if max_seconds is not None and decoded > max_seconds * source_rate:
                    raise AudioTooLong(f"{path}: longer than the limit of {max_seconds:g} s")
                if not np.isfinite(data).all():  # float files can hold them; soxr would smear them
                    raise AudioError(f"{path}: contains NaN or infinite samples (corrupt or truncated file?)")
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                pieces.append(mono if resampler is None else resampler.resample_chunk(mono))
            if resampler is not None:
                pieces.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            if 0 < f.frames and decoded < 0.98 * f.frames:
                note = (
                    f"{path}: decoded {decoded / source_rate:.2f} s of the {f.frames / source_rate:.2f} s "
                    "its header announces (truncated file?)"
                )
                notes.append(note) if notes is not None else warnings.warn(note, stacklevel=2)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: decoding failed, truncated or corrupt file ({_first_line(e)})") from e
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return check_audio(audio, sampling_rate, str(path))


def to_float_mono(audio: np.ndarray, sampling_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An in-memory array (samples,) or (samples, channels), int or float -> float32 mono at `target_rate`."""
    import soxr

    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise AudioError(f"expected audio of shape (samples,) or (samples, channels), got {audio.shape}")
    if np.issubdtype(audio.dtype, np.integer):
        audio = _int_to_float(audio)
    elif not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"expected integer or float samples, got dtype {audio.dtype}")
    if audio.ndim == 2:
        audio = audio.astype(np.float32, copy=False).mean(axis=1)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    check_rate(sampling_rate, "audio")
    if sampling_rate != target_rate and audio.size:
        check_audio(audio, target_rate, "audio")  # soxr would spread NaNs silently
        audio = soxr.resample(audio, sampling_rate, target_rate).astype(np.float32, copy=False)
    return check_audio(audio, target_rate, "audio")


def check_rate(sampling_rate: int, name: str) -> None:
    if sampling_rate < MIN_SAMPLING_RATE:
        raise AudioError(
            f"{name}: sampling rate {sampling_rate} Hz is too low for speech (at least {MIN_SAMPLING_RATE} Hz; "
            "a wrong header or a wrong rate argument?)"
        )


def _int_to_float(audio: np.ndarray) -> np.ndarray:
    """Full-scale integers -> [-1, 1); unsigned samples are centred on their midpoint (8-bit WAV)."""
    info = np.iinfo(audio.dtype)
    if info.min < 0:
        return audio.astype(np.float32) / -float(info.min)
    mid = (float(info.max) + 1) / 2
    return (audio.astype(np.float32) - mid) / mid


def check_audio(audio: np.ndarray, sampling_rate: int, name: str, min_samples: int = 0) -> np.ndarray:
    if audio.size == 0:
        raise AudioError(f"{name}: contains no samples")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if audio.size < min_samples:
        raise AudioError(
            f"{name}: too short ({audio.size} samples, {audio.size / sampling_rate * 1000:.1f} ms); "
            f"the model needs at least {min_samples} samples at {sampling_rate} Hz"
        )
    return audio


def normalize(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, exactly as transformers' Wav2Vec2FeatureExtractor does."""
    audio = audio.astype(np.float32, copy=False)
    return (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
