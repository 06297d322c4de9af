"""Audio input: every container soundfile reads, any rate and channel count, arrays, and clear refusals."""

import numpy as np
import pytest
import soundfile as sf

from unispeech.audio import AudioError, load_audio, normalize, to_float_mono


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    "ext,kwargs",
    [
        ("wav", {"subtype": "PCM_16"}),
        ("wav", {"subtype": "FLOAT"}),
        ("flac", {}),
        ("ogg", {"format": "OGG", "subtype": "VORBIS"}),
        ("mp3", {"format": "MP3"}),
    ],
)
@pytest.mark.parametrize("rate,channels", [(16000, 1), (48000, 2), (22050, 1), (8000, 3)])
def test_files_become_16k_mono(tmp_path, ext, kwargs, rate, channels):
    if ext == "mp3":
        channels = min(channels, 2)  # MPEG audio holds at most two channels
    mono = tone(1.0, rate)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    path = tmp_path / f"clip.{ext}"
    sf.write(path, data, rate, **kwargs)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 16000) <= 40  # mp3 decoders may add or drop a few samples
    spectrum = np.abs(np.fft.rfft(audio[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 3  # the tone survives at the right pitch
    assert 0.3 < np.abs(audio).max() < 0.7


def test_arrays_int_and_float_multichannel():
    x = tone(0.5, 44100)
    as_int16 = (np.stack([x, x], axis=1) * 32767).astype(np.int16)
    as_uint8 = (x * 127 + 128).astype(np.uint8)
    a = to_float_mono(as_int16, 44100)
    b = to_float_mono(x.astype(np.float64), 44100)
    c = to_float_mono(as_uint8, 44100)
    assert a.shape == b.shape == c.shape == (8000,)
    assert np.abs(a - b).max() < 1e-3 and np.abs(c - b).max() < 2e-2


def test_normalize_matches_feature_extractor_formula():
    x = tone(0.3, 16000) + 0.2
    y = normalize(x)
    assert abs(y.mean()) < 1e-5 and abs(y.std() - 1) < 1e-4


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_text("this is not audio\n" * 50), "not a readable audio file"),
        (lambda p: p.write_bytes(b""), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros(0, np.float32), 16000, format="WAV"), "contains no samples"),
        (
            lambda p: sf.write(
                p, np.array([0.1, np.nan, 0.2] * 1000, np.float32), 16000, format="WAV", subtype="FLOAT"
            ),
            "NaN or infinite",
        ),
        (lambda p: sf.write(p, np.zeros(100, np.float32), 1000, format="WAV"), "1000 Hz is too low for speech"),
    ],
)
def test_bad_files_raise_audio_error(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_truncated_mp3(tmp_path):
    good = tmp_path / "good.mp3"
    sf.write(good, tone(2.0, 16000), 16000, format="MP3")
    data = good.read_bytes()
    header_only = tmp_path / "header.mp3"
    header_only.write_bytes(data[:300])
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(header_only)
    half = tmp_path / "half.mp3"
    half.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="truncated"):
        audio = load_audio(half)  # what is there decodes, with a warning
    assert 0 < audio.size < 32000 and np.isfinite(audio).all()


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros(0, np.float32), "no samples"),
        (np.array([0.0, np.inf] * 500, np.float32), "NaN or infinite"),
        (np.zeros((2, 2, 2), np.float32), "shape"),
        (np.array(["a", "b"]), "dtype"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(AudioError, match=message):
        to_float_mono(array, 16000)


@pytest.mark.parametrize("rate", [0, -16000, 1, 3999])
def test_a_sampling_rate_below_any_speech_band_is_refused(rate):
    with pytest.raises(AudioError, match=f"sampling rate {rate} Hz is too low for speech"):
        to_float_mono(np.zeros(8000, np.float32), rate)
    assert to_float_mono(np.zeros(4000, np.float32), 4000).size == 16000
