"""Voices on the server (`POST /v1/voices`): the served model adapted once to a speaker's recordings, used by later
requests that name it, held least-recently-used first within `max_voices`, and refused clearly where it cannot be."""

import io
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import soundfile as sf

import unispeech
from unispeech import TogetherOptions
from unispeech.adapt import Adaptation, plain_float32
from unispeech.server import ServerLimits, create_app
from unispeech.uploads import ApiError
from unispeech.voices import trainable_copy

from .conftest import speechlike

OPTIONS = TogetherOptions(steps=2, min_spoken_frames=0)  # the tiny random model hears little as phones


def wav_bytes(seconds: float, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, seed), 16000, format="WAV")
    return buf.getvalue()


def recordings(*seeds: int) -> list:
    return [("file", (f"r{s}.wav", wav_bytes(1.0 + 0.2 * s, seed=s), "audio/wav")) for s in seeds]


def client_for(model_dir, recognizer=None, options=OPTIONS, **limits):
    from fastapi.testclient import TestClient

    app = create_app(
        model=None if recognizer else str(model_dir),
        recognizer=recognizer,
        limits=ServerLimits(**{"max_seconds": 5.0, "timeout_seconds": 30, **limits}),
        model_name="tiny",
        voice_options=options,
    )
    return TestClient(app)


@pytest.fixture(scope="module")
def plain(tiny_model_dir):
    return unispeech.load_model(tiny_model_dir, dtype="float32", backend="torch")


@pytest.fixture(scope="module")
def client(tiny_model_dir, plain):
    with client_for(tiny_model_dir, plain) as c:
        yield c


def new_voice(client, *seeds: int) -> str:
    r = client.post("/v1/voices", files=recordings(*seeds))
    assert r.status_code == 201, r.text
    return r.json()["voice"]


def test_a_voice_is_the_model_adapted_to_the_recordings_and_requests_that_name_it_use_it(client, plain):
    r = client.post("/v1/voices", files=recordings(1, 2))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["recordings"] == 2 and body["seconds"] == pytest.approx(1.2 + 1.4, abs=0.01)
    assert "adapted together (2 steps" in body["adapted"] and body["model"] == "tiny"
    wavs = [plain.prepare(speechlike(1.0 + 0.2 * s, s), 16000) for s in (1, 2)]
    library = unispeech.adapted_to(plain, wavs, OPTIONS)  # what the server must have made
    clip = wav_bytes(1.3, seed=7)
    expected, unadapted = (r.transcribe(speechlike(1.3, 7), 16000) for r in (library, plain))
    form = client.post("/v1/transcribe", files={"file": ("a.wav", clip, "audio/wav")}, data={"voice": body["voice"]})
    query = client.post(f"/v1/transcribe?voice={body['voice']}", content=clip, headers={"content-type": "audio/wav"})
    for reply in (form, query):
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["voice"] == body["voice"] and answer["phones"] == expected.phones
        confidences = [t["confidence"] for t in answer["timestamps"]]
        assert confidences == pytest.approx(expected.confidences, abs=1e-4)
    assert expected.confidences != unadapted.confidences
    served = client.post("/v1/transcribe", content=clip, headers={"content-type": "audio/wav"}).json()
    assert "voice" not in served and served["phones"] == unadapted.phones  # the served model is as it was
    assert client.get("/health").json()["voices"] == {"held": 1, "max": 4, "per_client": 2}
    info = {k: body[k] for k in ("voice", "recordings", "seconds", "adapted", "model")}
    assert client.get(f"/v1/voices/{body['voice']}").json() == info
    client.delete(f"/v1/voices/{body['voice']}")


def test_a_voice_downloads_as_a_model_folder_that_loads_and_answers_as_the_voice(client, tmp_path):
    voice = new_voice(client, 6)
    r = client.get(f"/v1/voices/{voice}/model")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert f'filename="{voice}.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / voice
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    loaded = unispeech.load_model(folder, dtype="float32", backend="torch")
    clip = wav_bytes(1.1, seed=9)
    served = client.post("/v1/transcribe", files={"file": ("a.wav", clip, "audio/wav")}, data={"voice": voice}).json()
    offline = loaded.transcribe(speechlike(1.1, 9), 16000)
    assert offline.phones == served["phones"]
    assert offline.confidences == pytest.approx([t["confidence"] for t in served["timestamps"]], abs=1e-4)
    assert client.get("/v1/voices/v-nonesuch/model").status_code == 404
    client.delete(f"/v1/voices/{voice}")


def test_compare_and_score_take_a_voice_too(client):
    voice = new_voice(client, 3)
    clip = ("a.wav", wav_bytes(1.2, seed=8), "audio/wav")
    for route in ("/v1/compare", "/v1/score"):
        r = client.post(route, files={"file": clip}, data={"text": "Салам", "voice": voice})
        assert r.status_code == 200, r.text
        assert r.json()["voice"] == voice
    assert client.delete(f"/v1/voices/{voice}").json() == {"forgotten": voice}
    r = client.post("/v1/score", files={"file": clip}, data={"text": "Салам", "voice": voice})
    assert r.status_code == 404 and "unknown voice" in r.json()["error"]


def test_the_least_recently_used_voice_is_forgotten_first(tiny_model_dir, plain):
    with client_for(tiny_model_dir, plain, max_voices=2) as c:
        first, second = new_voice(c, 1), new_voice(c, 2)
        clip = {"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
        assert c.post("/v1/transcribe", files=clip, data={"voice": first}).status_code == 200
        third = new_voice(c, 3)  # the second is now the least recently used
        r = c.post("/v1/transcribe", files=clip, data={"voice": second})
        assert r.status_code == 404 and "adapt to the recordings again" in r.json()["error"]
        assert all(c.post("/v1/transcribe", files=clip, data={"voice": v}).status_code == 200 for v in (first, third))
        assert c.get("/health").json()["voices"] == {"held": 2, "max": 2, "per_client": 2}
        assert c.delete("/v1/voices/v-nonesuch").status_code == 404
        assert c.get(f"/v1/voices/{second}").status_code == 404
        r = c.post("/v1/transcribe", files=clip, data={"voice": "x" * 100_000})
        assert r.status_code == 404 and len(r.json()["error"]) < 400  # not echoed whole


def test_one_client_making_many_voices_forgets_its_own_not_the_others(tiny_model_dir, plain):
    from fastapi.testclient import TestClient

    with client_for(tiny_model_dir, plain, max_voices=3, max_voices_per_client=2) as a:
        other = TestClient(a.app, client=("10.0.0.2", 5000))  # another address, the same running server
        theirs = new_voice(other, 1)
        mine = [new_voice(a, seed) for seed in (2, 3, 4, 5, 6)]
        held = [v for v in [theirs, *mine] if a.get(f"/v1/voices/{v}").status_code == 200]
        assert held == [theirs, *mine[-2:]]  # the flood pushed out only its own
        assert a.get("/health").json()["voices"] == {"held": 3, "max": 3, "per_client": 2}
    with client_for(tiny_model_dir, plain, max_voices=3, max_voices_per_client=0) as a:  # behind a proxy: no limit
        assert len([new_voice(a, seed) for seed in (1, 2, 3)]) == a.get("/health").json()["voices"]["held"] == 3


def test_the_api_describes_voices(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"post"} <= set(paths["/v1/voices"]) and {"get", "delete"} <= set(paths["/v1/voices/{voice}"])
    for route in ("/v1/transcribe", "/v1/compare", "/v1/score"):
        assert any(p["name"] == "voice" for p in paths[route]["post"]["parameters"])


def test_requests_for_different_voices_arriving_together_each_get_their_own_model(client, plain):
    seeds = (4, 5)
    voices = [new_voice(client, s) for s in seeds]
    models = [unispeech.adapted_to(plain, [plain.prepare(speechlike(1.0 + 0.2 * s, s), 16000)], OPTIONS) for s in seeds]
    jobs = [(0.8 + 0.1 * i, 10 + i, i % 3) for i in range(9)]  # every third on the served model (index 2)

    def post(job):
        seconds, seed, which = job
        form = {"voice": voices[which]} if which < 2 else {}
        return client.post(
            "/v1/transcribe", files={"file": ("a.wav", wav_bytes(seconds, seed), "audio/wav")}, data=form
        )

    with ThreadPoolExecutor(len(jobs)) as pool:
        replies = list(pool.map(post, jobs))
    for (seconds, seed, which), reply in zip(jobs, replies):
        assert reply.status_code == 200, reply.text
        model = models[which] if which < 2 else plain
        assert reply.json().get("voice") == (voices[which] if which < 2 else None)
        assert reply.json()["phones"] == model.transcribe(speechlike(seconds, seed), 16000).phones
    for v in voices:
        client.delete(f"/v1/voices/{v}")


def test_a_server_loaded_in_another_precision_adapts_a_float32_copy(tiny_model_dir):
    with client_for(tiny_model_dir, None) as c:
        runs = c.get("/health").json()["runs"]
        voice = new_voice(c, 1)
        r = c.post("/v1/transcribe", files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")}, data={"voice": voice})
        assert r.status_code == 200 and r.json()["voice"] == voice
        assert c.get("/health").json()["runs"] == runs  # the served model runs as it did
        served, base = c.app.state.recognizer, c.app.state.voices.base()
        assert plain_float32(base.runner) and (base is served) == plain_float32(served.runner)


@pytest.mark.parametrize(
    "setup, files, status, message",
    [
        ({"max_voices": 0}, recordings(1), 403, "adapts to no voices (it was started with --max-voices 0)"),
        ({"options": TogetherOptions(steps=2, min_spoken_frames=10**6)}, recordings(1), 422, "heard as speech"),
        ({}, recordings(1) + [("file", ("b.wav", b"not audio" * 40, "audio/wav"))], 422, "recording 2"),
        ({}, [("file", (f"{i}.wav", wav_bytes(0.1), "audio/wav")) for i in range(21)], 400, "Too many files"),
        ({}, [("file", ("e.wav", b"", "audio/wav"))], 422, "empty upload"),
    ],
)
def test_voices_that_cannot_be_made_are_refused_with_a_clear_error(
    tiny_model_dir, plain, setup, files, status, message
):
    setup = dict(setup)  # (pytest hands every run the same parameter objects)
    options = setup.pop("options", OPTIONS)
    with client_for(tiny_model_dir, plain, options=options, max_upload_bytes=2_000_000, **setup) as c:
        r = c.post("/v1/voices", files=files)
        assert r.status_code == status and message in r.json()["error"], r.text
        assert c.get("/health").json()["voices"]["held"] == 0


def test_a_model_handed_over_in_another_precision_cannot_adapt(tiny_model_dir):
    int8 = unispeech.load_model(tiny_model_dir, dtype="int8")
    with client_for(tiny_model_dir, int8) as c:
        r = c.post("/v1/voices", files=recordings(1))
        assert r.status_code == 403 and "no float32 weights to adapt" in r.json()["error"]


def test_a_served_model_without_float32_weights_to_load_cannot_adapt(tiny_model_dir, tmp_path):
    int8 = unispeech.load_model(tiny_model_dir, dtype="int8")
    with pytest.raises(ApiError, match="adapts to no voices: its model's float32 weights cannot be loaded") as e:
        trainable_copy(int8, str(tmp_path), loadable=True)  # a folder without a model, as an export's has no weights
    assert e.value.status == 403


def test_requests_are_answered_between_adapting_steps_and_past_the_timeout_adapting_answers_504_and_stops(
    tiny_model_dir, plain, monkeypatch
):
    stepping, step, steps = threading.Event(), Adaptation.step, []
    monkeypatch.setattr(Adaptation, "step", lambda self: stepping.set() or steps.append(1) or step(self))
    endless = TogetherOptions(steps=10**6, min_spoken_frames=0)
    clip = {"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
    with client_for(tiny_model_dir, plain, options=endless, timeout_seconds=3.0) as c, ThreadPoolExecutor(1) as pool:
        adapting = pool.submit(c.post, "/v1/voices", files=recordings(1))
        assert stepping.wait(20)
        assert c.post("/v1/transcribe", files=clip).status_code == 200
        assert not adapting.done()  # answered while the adapting went on
        r = adapting.result()
        assert r.status_code == 504 and "unispeech adapt" in r.json()["error"]
        stopped_at = len(steps)
        time.sleep(0.5)
        assert len(steps) <= stopped_at + 1  # no step after the one under way
        assert c.post("/v1/transcribe", files=clip).status_code == 200
        assert c.get("/health").json()["voices"]["held"] == 0
