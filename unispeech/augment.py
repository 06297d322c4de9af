"""Augmentation aimed at the gap between synthetic and real speech: tempo/pitch (speed perturbation), pitch
and vocal-tract length (Praat's PSOLA "Change gender"), band-limiting and telephone codecs, rooms, noise and
gain. Each function draws from the generator it is given and returns what it drew, so a manifest can say what
was done to every clip."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from .audio import SAMPLE_RATE, decode_audio, load_audio, normalize
from .data import write_manifest
from .files import file_sha256
from .progress import progress_bar

BAND_LIMITS = (8000, 11025, 12000)  # sampling rates of narrow-band channels (telephone, old recorders)
# Voice change: formants scaled by 0.88-1.15 (vocal-tract length, about VTLP's usual 0.9-1.1 warp and a little
# more), the pitch median by 0.7-1.45 (log-uniform: a low male voice to a higher female one from one speaker).
FORMANT_RATIOS = (0.88, 1.15)
PITCH_FACTORS = (0.7, 1.45)
PITCH_FLOOR, PITCH_CEILING = 75.0, 600.0  # Praat's pitch search range (Hz), its defaults for speech
PRAAT_REQUIREMENT = "praat-parselmouth>=0.4.3"  # voice_change's library: pyproject's `train` extra


def room_response(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A synthetic room impulse response: a unit direct path, then an exponentially decaying noise tail
    (RT60 0.1-0.6 s) scaled to a direct-to-reverberant energy ratio of 0-20 dB (near- to mid-field speech).
    The tail's level must be set by its energy: unscaled, its thousands of samples outweigh the direct path
    many times over (what the first version did: DRR -18 to +6 dB)."""
    rt60, drr_db = float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.0, 20.0))
    t = np.arange(1, int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # -60 dB (e^-6.9) at t = rt60
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], tail]), {"rt60": round(rt60, 3), "drr_db": round(drr_db, 1)}


def augment(wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Silence padding, reverberation, additive noise and gain, each drawn at random; returns what was drawn."""
    info: dict = {}
    pad = rng.uniform(0.05, 0.4, size=2)
    wav = np.concatenate(
        [np.zeros(int(pad[0] * SAMPLE_RATE), np.float32), wav, np.zeros(int(pad[1] * SAMPLE_RATE), np.float32)]
    )
    if rng.random() < 0.5:
        ir, room = room_response(rng)
        n = 1 << (wav.size + ir.size - 2).bit_length()  # >= the full convolution; a power of 2 keeps the FFT fast
        wet = np.fft.irfft(np.fft.rfft(wav, n) * np.fft.rfft(ir, n), n)[: wav.size]
        wav = (wet / (np.abs(wet).max() + 1e-9) * np.abs(wav).max()).astype(np.float32)
        info.update(room)
    if rng.random() < 0.8:
        snr = float(rng.uniform(10, 40))
        noise = rng.standard_normal(wav.size)
        if rng.random() < 0.5:  # brown-ish noise: more energy at low frequencies
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
        power = np.mean(wav**2) + 1e-12
        noise *= np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
        wav = (wav + noise).astype(np.float32)
        info["snr_db"] = round(snr, 1)
    gain_db = float(rng.uniform(-12, 4))
    wav = np.clip(wav * 10 ** (gain_db / 20) / (np.abs(wav).max() + 1e-9) * 0.7, -1, 1).astype(np.float32)
    info["gain_db"] = round(gain_db, 1)
    return wav, info


@dataclasses.dataclass(frozen=True)
class BatchNoise:
    """Noise added to training batches as they are drawn, on top of the stored clips' own augmentation: that
    is drawn once per clip (10-40 dB SNR), this is new every epoch and reaches lower SNRs, where the demo model
    failed (white noise at 10 dB took RHVoice from 8-13 % to 34-44 % PER)."""

    prob: float = 0.5  # share of utterances that get noise
    snr_db: tuple[float, float] = (0.0, 20.0)  # uniform, against the utterance's power
    babble: float = 0.3  # share of those whose noise is other utterances of the batch instead of coloured noise

    def __post_init__(self):
        try:
            low, high = (float(x) for x in self.snr_db)
            fits = 0 <= float(self.prob) <= 1 and 0 <= float(self.babble) <= 1 and low <= high
        except (TypeError, ValueError):  # not numbers, or snr_db not a pair
            fits = False
        if not fits:
            raise ValueError(f"noise: prob and babble must lie in [0, 1] and snr_db be [low, high], not {self}")


def add_batch_noise(wav: torch.Tensor, lengths: torch.Tensor, noise: BatchNoise, gen: torch.Generator):
    """`wav` (B, S), each row normalised over its first `lengths` samples, with noise added to a drawn share of
    rows and those rows normalised again, as inference normalises a noisy recording; padding stays zero.
    Draws come from `gen` (on the CPU), so a batch gets the same noise on any device."""
    rows, samples = wav.shape
    valid = (torch.arange(samples) < lengths.cpu()[:, None]).float()
    count = valid.sum(1, keepdim=True).clamp_min(1)
    picked = torch.rand(rows, generator=gen) < noise.prob
    snr = torch.empty(rows, 1).uniform_(*noise.snr_db, generator=gen)
    babble = (torch.rand(rows, 1, generator=gen) < noise.babble) & (rows > 1)
    clean = wav.detach().float().cpu() * valid
    mixed = torch.where(babble, _babble(clean, gen), _coloured_noise(rows, samples, gen)) * valid

    def power(x):
        return (x**2).sum(1, keepdim=True) / count

    noisy = clean + mixed * torch.sqrt(power(clean) / power(mixed).clamp_min(1e-12) / 10 ** (snr / 10))
    mean = noisy.sum(1, keepdim=True) / count
    renormed = (noisy - mean) / torch.sqrt(power((noisy - mean) * valid) + 1e-7) * valid  # audio.normalize
    return torch.where(picked[:, None], renormed, clean).to(device=wav.device, dtype=wav.dtype)


@dataclasses.dataclass(frozen=True)
class Codec:
    container: str  # soundfile's format
    subtype: str
    levels: tuple[float, float]  # soundfile's compression levels (0 best, 1 smallest) that training draws from
    bitrates: str  # what those levels came to on 16 kHz speech (RHVoice and Festival test clips)


# Lossy codecs as libsndfile (soundfile) writes them, with the levels that span their speech range at 16 kHz
CODECS = {
    "opus": Codec("OGG", "OPUS", (0.85, 1.0), "~45-8 kbit/s"),  # VoIP, browser recordings; <~12 kbit/s: 4 kHz band
    "mp3": Codec("MP3", "MPEG_LAYER_III", (0.0, 0.9), "~62-26 kbit/s"),  # LAME, variable bitrate
}


@dataclasses.dataclass(frozen=True)
class BatchCodec:
    """A lossy codec (Opus or MP3, at a compression level drawn from a range: by default CODECS') applied to
    training batches as they are drawn, after the batch noise: a recording is noisy first, then compressed."""

    prob: float = 0.2  # share of utterances that go through a codec
    opus: float = 0.6  # share of those that go through Opus; the others MP3
    opus_levels: tuple[float, float] = CODECS["opus"].levels  # the compression levels drawn from (uniform)
    mp3_levels: tuple[float, float] = CODECS["mp3"].levels

    def __post_init__(self):
        try:
            ranges = [(float(low), float(high)) for low, high in (self.opus_levels, self.mp3_levels)]
            fits = 0 <= float(self.prob) <= 1 and 0 <= float(self.opus) <= 1
            fits = fits and all(0 <= low <= high <= 1 for low, high in ranges)
            fits = fits and ranges[1][1] < 1  # LAME refuses level 1
        except (TypeError, ValueError):  # not numbers, or a range not a pair
            fits = False
        if not fits:
            raise ValueError(
                f"codec: prob and opus must lie in [0, 1], opus_levels be [low, high] within [0, 1] and mp3_levels "
                f"within [0, 1), not {self}"
            )

    def levels(self, codec: str) -> tuple[float, float]:
        return self.opus_levels if codec == "opus" else self.mp3_levels


def add_batch_codec(wav: torch.Tensor, lengths: torch.Tensor, codec: BatchCodec, gen: torch.Generator):
    """`wav` (B, S) with a drawn share of rows through a lossy codec (`lossy_codec`) over their first `lengths`
    samples and normalised again; padding stays zero. Draws come from `gen`, as `add_batch_noise`'s do."""
    rows = wav.shape[0]
    picked = (torch.rand(rows, generator=gen) < codec.prob).tolist()
    opus = (torch.rand(rows, generator=gen) < codec.opus).tolist()
    level = torch.rand(rows, generator=gen).tolist()  # where in the codec's range of levels
    if not any(picked):
        return wav
    out = wav.detach().float().cpu().clone()
    for row in (i for i in range(rows) if picked[i]):
        name = "opus" if opus[row] else "mp3"
        low, high = codec.levels(name)
        n = int(lengths[row])
        coded = lossy_codec(out[row, :n].numpy(), name, low + (high - low) * level[row])
        out[row, :n] = torch.from_numpy(normalize(coded))
    return out.to(device=wav.device, dtype=wav.dtype)


@dataclasses.dataclass(frozen=True)
class BatchAugment:
    """What a training recipe adds to each batch as it is drawn: noise, then a lossy codec (its [noise] and
    [codec] tables; either may be absent)."""

    noise: BatchNoise | None = None
    codec: BatchCodec | None = None

    @classmethod
    def from_recipe(cls, recipe) -> BatchAugment:
        """From a recipe's `noise` and `codec` fields: dataclasses, TOML tables (dicts) or None; anything else
        is refused by name."""
        tables = {}
        for name, kind in (("noise", BatchNoise), ("codec", BatchCodec)):
            value = getattr(recipe, name)
            if isinstance(value, dict):
                value = kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            elif not (value is None or isinstance(value, kind)):
                keys = ", ".join(f.name for f in dataclasses.fields(kind))
                raise ValueError(f"{name} must be a [{name}] table ({keys}), not {value!r}")
            tables[name] = value
        return cls(**tables)

    @classmethod
    def read_tables(cls, recipe) -> None:
        """A frozen recipe's [noise] and [codec] tables replaced by their dataclasses (its __post_init__)."""
        augment = cls.from_recipe(recipe)
        object.__setattr__(recipe, "noise", augment.noise)
        object.__setattr__(recipe, "codec", augment.codec)

    def __call__(self, wav: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        wav = wav if self.noise is None else add_batch_noise(wav, lengths, self.noise, gen)
        return wav if self.codec is None else add_batch_codec(wav, lengths, self.codec, gen)


def _coloured_noise(rows: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise whose power falls as f**-slope above 50 Hz (flat below: no drift), the slope drawn per row
    from 0 (white) to 2 (brown)."""
    slope = torch.rand(rows, 1, generator=gen) * 2
    freqs = torch.fft.rfftfreq(samples, d=1 / SAMPLE_RATE).clamp_min(50.0)
    white = torch.randn(rows, samples, generator=gen)
    return torch.fft.irfft(torch.fft.rfft(white) * freqs ** (-slope / 2), n=samples)


def _babble(clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For each row, 1-3 other rows of the batch (other talkers) at random offsets."""
    rows, samples = clean.shape
    talkers = torch.zeros_like(clean)
    for voice in range(3):
        shift = int(torch.randint(1, max(rows, 2), (1,), generator=gen))
        offset = int(torch.randint(0, samples, (1,), generator=gen))
        take = (torch.rand(rows, 1, generator=gen) < 0.7) | (voice == 0)
        talkers += take * clean.roll(shift, 0).roll(offset, 1)
    return talkers


def speed_perturb(wav: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster: tempo and pitch (and so formants) change together, the usual
    speed perturbation of Kaldi/icefall, which also stands in for vocal-tract-length perturbation."""
    import soxr

    return soxr.resample(wav, SAMPLE_RATE, SAMPLE_RATE / factor).astype(np.float32)


def voice_change(wav: np.ndarray, formant_ratio: float, pitch_factor: float) -> np.ndarray:
    """Another speaker from the same recording, at the same tempo: formants (vocal-tract length) scaled by
    `formant_ratio` and the pitch median by `pitch_factor`, with Praat's PSOLA "Change gender". Audio without
    voiced frames keeps its pitch (Praat: a new median of 0 changes nothing). Deterministic: Praat's
    resynthesis draws random numbers, so its generator is seeded from the input and the settings."""
    try:
        import parselmouth
        from parselmouth.praat import call, run
    except ImportError as err:  # a training-time extra, not a runtime dependency
        raise ImportError(f"voice_change needs Praat's Python binding: pip install '{PRAAT_REQUIREMENT}'") from err

    sound = parselmouth.Sound(wav.astype(np.float64), SAMPLE_RATE)
    median = call(call(sound, "To Pitch", 0.0, PITCH_FLOOR, PITCH_CEILING), "Get quantile", 0, 0, 0.5, "Hertz")
    target = float(np.clip(median * pitch_factor, PITCH_FLOOR, PITCH_CEILING)) if np.isfinite(median) else 0.0
    seed = zlib.crc32(np.array([formant_ratio, pitch_factor]).tobytes(), zlib.crc32(wav.tobytes()))
    run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
    try:
        with warnings.catch_warnings():  # "no voiced segments" is expected of pauses and fricatives alone
            warnings.simplefilter("ignore", parselmouth.PraatWarning)
            out = call(sound, "Change gender", PITCH_FLOOR, PITCH_CEILING, formant_ratio, target, 1.0, 1.0)
    finally:
        run("random_initializeSafelyAndUnpredictably ()")
    return out.values[0].astype(np.float32)[: wav.size]


def band_limit(wav: np.ndarray, rate: int) -> np.ndarray:
    """Keep only what a channel sampled at `rate` passes (soxr's steep low-pass), back at 16 kHz."""
    import soxr

    return soxr.resample(soxr.resample(wav, SAMPLE_RATE, rate), rate, SAMPLE_RATE).astype(np.float32)[: wav.size]


def mu_law(wav: np.ndarray, bits: int = 8) -> np.ndarray:
    """G.711-style companding to `bits` bits and back: the quantisation noise of a telephone codec."""
    mu = 2**bits - 1
    peak = np.abs(wav).max() + 1e-9
    x = np.clip(wav / peak, -1, 1)
    code = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)
    y = 2 * code / mu - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak).astype(np.float32)


def encode(wav: np.ndarray, codec: str, level: float) -> bytes:
    """`wav` as a file of `codec` ("opus" or "mp3") at soundfile's `compression_level` (0 best, 1 smallest),
    peak-scaled to 0.9 (the encoders take [-1, 1])."""
    import io

    import soundfile as sf

    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: one of {', '.join(CODECS)}")
    spec, buf = CODECS[codec], io.BytesIO()
    peak = np.abs(wav).max() + 1e-9
    sf.write(buf, wav / peak * 0.9, SAMPLE_RATE, format=spec.container, subtype=spec.subtype, compression_level=level)
    return buf.getvalue()


def decode(data: bytes, like: np.ndarray) -> np.ndarray:
    """A file `encode` made from `like`, decoded back to `like`'s level (its peak) and length."""
    import io

    import soundfile as sf

    out = sf.read(io.BytesIO(data), dtype="float32")[0] * ((np.abs(like).max() + 1e-9) / 0.9)
    return np.pad(out, (0, max(0, like.size - out.size)))[: like.size].astype(np.float32)


def lossy_codec(wav: np.ndarray, codec: str, level: float) -> np.ndarray:
    """`wav` through `codec` at `level` (see `encode`) and back, at its own level and length: what a recording
    loses on its way through a browser, a call or an mp3."""
    return decode(encode(wav, codec, level), wav)


def channel(
    wav: np.ndarray, rng: np.random.Generator, voices: bool = True, formant_ratios: tuple[float, float] = FORMANT_RATIOS
) -> tuple[np.ndarray, dict]:
    """A voice change (with `voices`, 70 %: formants within `formant_ratios` and pitch, see PITCH_FACTORS), speed
    perturbation (80 %: factor 0.9-1.1), then a narrow-band channel (30 %), a codec (half of those)."""
    info: dict = {}
    if voices and rng.random() < 0.7:
        ratio, factor = draw_voice(rng, formant_ratios)
        wav = voice_change(wav, ratio, factor)
        info.update(formant_ratio=round(ratio, 3), pitch_factor=round(factor, 3))
    if rng.random() < 0.8:
        factor = float(rng.uniform(0.9, 1.1))
        wav = speed_perturb(wav, factor)
        info["speed"] = round(factor, 3)
    if rng.random() < 0.3:
        rate = int(rng.choice(BAND_LIMITS))
        wav = band_limit(wav, rate)
        info["band_limit_hz"] = rate // 2
        if rng.random() < 0.5:
            wav = mu_law(wav)
            info["codec"] = "mu-law-8bit"
    return wav, info


def clip_rng(seed: int, row_id, *more: int) -> np.random.Generator:
    """A generator of its own for each clip, from the seed and the row's id, so a redone clip is the same."""
    return np.random.default_rng([seed, zlib.crc32(str(row_id).encode()), *more])


def draw_voice(rng: np.random.Generator, formant_ratios: tuple[float, float] = FORMANT_RATIOS) -> tuple[float, float]:
    """A formant ratio (uniform in `formant_ratios`) and a pitch factor (log-uniform in PITCH_FACTORS)."""
    return float(rng.uniform(*formant_ratios)), float(np.exp(rng.uniform(*np.log(PITCH_FACTORS))))


def other_voices_set(rows: list[dict], out_dir: str | Path, seed: int) -> Path:
    """One copy of every row in another voice (formants and pitch drawn as `channel` draws them; no channel,
    room or noise), as `out_dir/clips/<id>.flac` with a manifest: held-out recordings spoken by unseen
    (simulated) speakers. Rewritten whole each time: it is small and must follow the rows given now."""
    import soundfile as sf

    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    manifest = []
    for row in rows:
        ratio, factor = draw_voice(clip_rng(seed, row["id"]))
        wav = voice_change(load_audio(row["audio"]), ratio, factor)
        name = f"clips/{row['id']}.flac"
        sf.write(out / name, wav, SAMPLE_RATE)
        drawn = {"formant_ratio": round(ratio, 3), "pitch_factor": round(factor, 3)}
        manifest.append(
            {**row, "audio": name, "source": str(row["audio"]), "duration": round(wav.size / SAMPLE_RATE, 3), **drawn}
        )
    return write_manifest(manifest, out / "manifest.jsonl")


def augment_corpus(
    rows: list[dict],
    out_dir: str | Path,
    copies: int,
    seed: int,
    progress: bool = True,
    voices: bool = True,
    workers: int | None = None,
    formant_ratios: tuple[float, float] = FORMANT_RATIOS,
) -> Path:
    """Write `copies` augmented versions (channel, with voice changes if `voices`, then room/noise/gain) of
    every row's `audio` (an absolute path) as `out_dir/clips/<id>-<copy>.flac`, and a `manifest.jsonl` of
    `rows` as given now (labels included) plus `source` (the original file) and what was drawn for each clip.
    `workers` processes (default: one per core) draw the clips; each clip's draws depend only on
    (seed, id, copy), so the result is the same for any number of workers.

    Resumable: what was drawn is logged clip by clip in `drawn.jsonl`, and a clip already logged from the
    same source with the same `voices` (and, with them, `formant_ratios`) is kept. The manifest is written
    (atomically) from `rows` at the end, so rows relabelled since (a G2P fix) get their new labels and rows
    dropped since leave it."""

    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("augment_corpus names clips by row id: the ids must be unique")
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    log_path = out / "drawn.jsonl"
    lines = log_path.read_text(encoding="utf-8").splitlines() if log_path.is_file() else []
    drawn = {entry["audio"]: entry for entry in map(json.loads, filter(str.strip, lines))}
    entries, todo = {}, []
    stamps = {str(row["audio"]): source_stamp(row["audio"]) for row in rows}
    digests = functools.cache(file_sha256)  # read only where a stamp differs: a source laid anew, same bytes?
    for copy in range(copies):
        for row in rows:
            name = f"clips/{row['id']}-{copy}.flac"
            entry = drawn.get(name)
            # kept only if drawn from the same source, unchanged since (older logs have no stamp; a source copied
            # anew has another mtime but the same bytes), with the same voices setting (older logs: none)
            source = str(row["audio"])
            same = (
                entry is not None
                and entry["source"] == source
                and entry.get("voices", False) == voices
                and (not voices or tuple(entry.get("formant_ratios", FORMANT_RATIOS)) == tuple(formant_ratios))
                and (
                    entry.get("source_stamp", stamps[source]) == stamps[source]
                    or entry.get("source_digest") == digests(source)
                )
            )
            if same and (out / name).is_file():
                entries[name] = entry
            else:
                todo.append((str(row["audio"]), str(out), name, seed, row["id"], copy, voices, formant_ratios))
    bar = progress_bar(total=len(todo), desc=f"augmenting {out.name}", unit="clip", enabled=progress and bool(todo))
    with open(log_path, "a", encoding="utf-8") as log, worker_pool(workers, len(todo)) as pool:
        for entry in pool.map(_draw_clip, todo, chunksize=4) if pool else map(_draw_clip, todo):
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")  # only what is written to disk is logged
            log.flush()
            entries[entry["audio"]] = entry
            bar.update()
    bar.close()
    manifest = [{**row, **entries[f"clips/{row['id']}-{copy}.flac"]} for copy in range(copies) for row in rows]
    return write_manifest(manifest, out / "manifest.jsonl")


def worker_pool(workers: int | None, jobs: int):
    """Processes for `jobs` clips (a no-op context with None when one will do). Spawned, not forked: the
    caller may hold torch's threads; a worker that cannot start raises BrokenProcessPool instead of hanging."""
    import contextlib
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = min(workers or os.cpu_count() or 1, jobs)
    if workers <= 1:
        return contextlib.nullcontext(None)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _draw_clip(job: tuple) -> dict:
    """One augmented clip written to disk -> its log entry (in a worker process)."""
    import soundfile as sf

    source, out, name, seed, row_id, copy, voices, formant_ratios = job
    stamp = source_stamp(source)  # before reading it: a source rewritten meanwhile is drawn again next time
    data = Path(source).read_bytes()  # read once: hashed, then decoded
    digest = hashlib.sha256(data).hexdigest()  # the same audio laid anew (new mtime) keeps its copies
    rng = clip_rng(seed, row_id, copy)
    wav, info = channel(decode_audio(io.BytesIO(data), source), rng, voices, formant_ratios)
    wav, more = augment(wav, rng)
    sf.write(Path(out) / name, wav, SAMPLE_RATE)
    entry = {"audio": name, "source": source, "duration": round(wav.size / SAMPLE_RATE, 3), "voices": voices}
    if voices:
        entry["formant_ratios"] = list(formant_ratios)
    return {**entry, "source_stamp": stamp, "source_digest": digest, **info, **more}


def source_stamp(path) -> str:
    """Size and modification time of a source file: a source written anew (a reading of other sentences under
    the same name) has another stamp, so its old augmented copies are not kept."""
    stat = os.stat(path)
    return f"{stat.st_size}:{stat.st_mtime_ns}"
