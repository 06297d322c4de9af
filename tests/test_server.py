"""The HTTP API: every endpoint, and bad input answered with a 4xx JSON error while the server stays healthy."""

import io

import numpy as np
import pytest
import soundfile as sf

from unispeech import load_model
from unispeech.server import ServerLimits, create_app

from .conftest import speechlike


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    from fastapi.testclient import TestClient

    recognizer = load_model(tiny_model_dir, dtype="float32")  # batch-independent to 1e-4: exact comparisons
    limits = ServerLimits(max_upload_bytes=400_000, max_seconds=5.0, timeout_seconds=30)
    with TestClient(create_app(recognizer=recognizer, limits=limits, model_name="tiny")) as c:
        c.recognizer = recognizer
        yield c


def audio_bytes(seconds=1.0, fmt="WAV", rate=16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, rate=rate), rate, format=fmt)
    return buf.getvalue()


def assert_healthy(client):
    assert client.get("/health").json()["status"] == "ok"


def test_transcribe_multipart_and_raw_body_agree_with_the_library(client):
    data = audio_bytes(1.3)
    expected = client.recognizer.transcribe(speechlike(1.3), 16000)
    multipart = client.post("/v1/transcribe", files={"file": ("a.wav", data, "audio/wav")})
    raw = client.post("/v1/transcribe", content=data, headers={"content-type": "audio/wav"})
    for r in (multipart, raw):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["phones"] == expected.phones and body["text"] == expected.text
        assert body["model"] == "tiny" and body["duration"] == pytest.approx(1.3, abs=0.01)
        assert len(body["timestamps"]) == len(body["phones"])


def test_mp3_upload(client):
    r = client.post("/v1/transcribe", files={"file": ("a.mp3", audio_bytes(1.0, "MP3", 48000), "audio/mpeg")})
    assert r.status_code == 200 and r.json()["duration"] == pytest.approx(1.0, abs=0.05)


def test_phonemize(client):
    r = client.post("/v1/phonemize", json={"text": "Кыргызстан", "word_boundaries": True})
    assert r.status_code == 200
    from unispeech import phonemize

    assert r.json()["phones"] == phonemize("Кыргызстан", word_boundaries=True)
    r = client.post("/v1/phonemize", json={"text": ["Салам", "эки сөз"]})
    assert len(r.json()["phones"]) == 2


def test_compare_aligns_recognised_and_expected(client):
    r = client.post("/v1/compare", files={"file": ("a.wav", audio_bytes(1.0), "audio/wav")}, data={"text": "Салам"})
    assert r.status_code == 200, r.text
    body = r.json()
    from unispeech import phonemize

    assert body["expected"] == phonemize("Салам")
    assert [a["expected"] for a in body["alignment"] if a["expected"]] == body["expected"]
    assert [a["recognised"] for a in body["alignment"] if a["recognised"]] == body["phones"]
    edits = body["substitutions"] + body["deletions"] + body["insertions"]
    assert body["per"] == pytest.approx(edits / len(body["expected"]))


@pytest.mark.parametrize(
    "name,request_kwargs,status,message",
    [
        (
            "non-audio bytes",
            {"files": {"file": ("a.wav", b"hello world" * 100, "audio/wav")}},
            422,
            "not a readable audio",
        ),
        ("empty body", {"content": b"", "headers": {"content-type": "audio/wav"}}, 422, "empty upload"),
        (
            "oversized upload",
            {"content": b"\0" * 500_000, "headers": {"content-type": "audio/wav"}},
            413,
            "larger than",
        ),
        ("too-long audio", {"files": {"file": ("a.wav", None, "audio/wav")}}, 413, "longer than the limit"),
        ("corrupt mp3", {"files": {"file": ("a.mp3", b"ID3" + bytes(300), "audio/mpeg")}}, 422, "not a readable audio"),
        (
            "wrong content type",
            {"content": b"x", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported content",
        ),
        ("missing file field", {"files": {"other": ("a.wav", b"x", "audio/wav")}}, 422, "missing file field"),
        ("too short", {"files": {"file": ("a.wav", None, "audio/wav")}, "seconds": 0.01}, 422, "too short"),
        ("NaN samples", {"files": {"file": ("a.wav", None, "audio/wav")}, "nan": True}, 422, "NaN"),
    ],
)
def test_bad_uploads_get_a_clear_4xx(client, name, request_kwargs, status, message):
    kwargs = dict(request_kwargs)
    seconds, nan = kwargs.pop("seconds", 6.0), kwargs.pop("nan", False)
    if "files" in kwargs and kwargs["files"].get("file", (None, 1))[1] is None:
        buf = io.BytesIO()
        wav = np.full(16000, np.nan, np.float32) if nan else speechlike(seconds)
        sf.write(buf, wav, 16000, format="WAV", subtype="FLOAT")
        kwargs["files"] = {"file": ("a.wav", buf.getvalue(), "audio/wav")}
    r = client.post("/v1/transcribe", **kwargs)
    assert r.status_code == status, (name, r.text)
    assert message in r.json()["error"], (name, r.json())
    assert_healthy(client)


def test_bad_requests_to_text_endpoints(client):
    assert client.post("/v1/compare", files={"file": ("a.wav", audio_bytes(), "audio/wav")}).status_code == 422
    r = client.post("/v1/compare", files={"file": ("a.wav", audio_bytes(), "audio/wav")}, data={"text": "..."})
    assert r.status_code == 422 and "no pronounceable" in r.json()["error"]
    assert client.post("/v1/phonemize", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/v1/phonemize", json={"text": 3}).status_code == 422
    assert client.post("/v1/phonemize", content=b"text", headers={"content-type": "text/plain"}).status_code == 415
    assert_healthy(client)


def test_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "http" not in page.text.split("<script>")[0].lower()
    schema = client.get("/openapi.json").json()
    assert {"/v1/transcribe", "/v1/phonemize", "/v1/compare", "/health"} <= set(schema["paths"])


def test_concurrent_requests_are_batched_and_all_answered(client):
    from concurrent.futures import ThreadPoolExecutor

    data = [audio_bytes(0.5 + 0.1 * i) for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        replies = list(
            pool.map(lambda d: client.post("/v1/transcribe", content=d, headers={"content-type": "audio/wav"}), data)
        )
    assert all(r.status_code == 200 for r in replies)
    for d, r in zip(data, replies):
        wav, rate = sf.read(io.BytesIO(d), dtype="float32")
        assert r.json()["phones"] == client.recognizer.transcribe(wav, rate).phones
