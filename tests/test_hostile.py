"""Hostile and careless input: server limits that hold however a request arrives (chunked too), work that
stays off the event loop or is dropped when nobody waits, errors in the API's shape; CLI options checked
at parse time, one line each."""

import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from unispeech import load_model
from unispeech.server import ServerLimits, create_app

from .conftest import run_main, speechlike

LIMITS = ServerLimits(max_upload_bytes=400_000, max_text_bytes=100_000, max_seconds=30.0, timeout_seconds=30)
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def recognizer(tiny_model_dir):
    return load_model(tiny_model_dir, dtype="float32")


@pytest.fixture(scope="module")
def client(recognizer):
    from fastapi.testclient import TestClient

    with TestClient(create_app(recognizer=recognizer, limits=LIMITS, model_name="tiny")) as c:
        yield c


@pytest.fixture(scope="module")
def live(tiny_model_dir, tmp_path_factory):
    """`unispeech serve` in its own process on 127.0.0.1 (1 MB upload limit), with its own temp folder."""
    import json
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tmp_path_factory.mktemp("server-tmp")
    cmd = [sys.executable, "-m", "unispeech", "serve", "--model", str(tiny_model_dir), "--port", str(port)]
    proc = subprocess.Popen(
        cmd + ["--max-upload-mb", "1"],
        env={**__import__("os").environ, "TMPDIR": str(temp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(240):
        try:
            json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1))
            break
        except OSError:
            time.sleep(0.25)
    yield port, proc.pid, temp
    proc.terminate()
    proc.wait(timeout=30)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def folder_mb(folder) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def send_chunked(port: int, path: str, ctype: str, total: int, head: bytes = b"", watch=lambda: None):
    """POST `head` + zeros up to `total` bytes with Transfer-Encoding: chunked, stopping when the server
    answers (or stops reading). -> (status, JSON body, bytes sent, what `watch` returned at its largest)."""
    import json
    import select
    import socket

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent, peak, piece = 0, 0.0, head or b"\0" * CHUNK  # an empty chunk would end the body
    try:
        while sent < total and not select.select([s], [], [], 0)[0]:
            s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent, piece = sent + len(piece), b"\0" * CHUNK
            peak = max(peak, watch() or 0.0)
    except OSError:  # the server closed its side: the answer is waiting
        pass
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.lower().split(b"content-length:")[1].split(b"\r\n")[0]
        ):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (OSError, IndexError, ValueError):
        pass
    s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}") if status else {}, sent, peak


def test_a_chunked_oversize_raw_body_is_refused_before_it_is_read(live):
    port, pid, _ = live
    before = rss_mb(pid)
    status, body, sent, peak = send_chunked(port, "/v1/transcribe", "audio/wav", 200 * 2**20, watch=lambda: rss_mb(pid))
    assert status == 413 and "larger than the limit of 1048576 bytes" in body["error"], (status, body, sent)
    assert sent < 20 * 2**20  # of 200 MB offered: the limit plus what the sockets' buffers took
    assert peak - before < 30  # server RSS


def multipart(fields: list[tuple[str, int]], boundary: str = "xyz") -> tuple[bytes, bytes]:
    """The head of a multipart body whose last part (named fields[-1]) is left open, and the closing tail."""
    head = b""
    for i, (name, size) in enumerate(fields):
        disposition = f'form-data; name="{name}"' + ('; filename="a.wav"' if name == "file" else "")
        head += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        if i < len(fields) - 1:
            head += b"x" * size + b"\r\n"
    return head, f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("part", ["file", "text"])
def test_a_chunked_oversize_form_part_is_refused_before_it_is_stored(live, part):
    port, pid, temp = live
    head, _ = multipart([("text", 10), (part, 0)] if part == "file" else [(part, 0)])
    before = rss_mb(pid)
    status, body, sent, peak = send_chunked(
        port,
        "/v1/compare",
        "multipart/form-data; boundary=xyz",
        200 * 2**20,
        head,
        watch=lambda: max(rss_mb(pid) - before, folder_mb(temp)),
    )
    assert status in (400, 413) and ("larger than" in body["error"] or "maximum size" in body["error"]), body
    assert sent < 20 * 2**20 and peak < 30  # server RSS growth and spooled file, MB


def test_too_many_form_fields_get_the_api_error_shape(client):
    head, tail = multipart([(f"f{i}", 10) for i in range(20)] + [("file", 0)])
    r = client.post(
        "/v1/transcribe", content=head + b"RIFF" + tail, headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert r.status_code == 400 and "Too many fields" in r.json()["error"]
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_a_json_body_over_the_text_limit_is_refused_while_streaming(live):
    port, _, _ = live
    status, body, sent, _ = send_chunked(port, "/v1/phonemize", "application/json", 200 * 2**20, b'{"text": "')
    assert status == 413 and "JSON body larger than the limit of 1048576 bytes" in body["error"]
    assert sent < 20 * 2**20


def test_health_answers_while_a_long_phonemize_runs(recognizer):
    from fastapi.testclient import TestClient

    text = " ".join(["Кыргызстан сонун өлкө, тоолору бийик."] * 14000)  # ~1 MB of UTF-8
    assert 0.9e6 < len(text.encode()) < 2**20
    with TestClient(create_app(recognizer=recognizer, model_name="tiny")) as c:
        done = {}
        worker = threading.Thread(target=lambda: done.update(r=c.post("/v1/phonemize", json={"text": text})))
        worker.start()
        time.sleep(0.5)
        health = c.get("/health")
        busy = worker.is_alive()
        worker.join(timeout=120)
    # /health answered while the phonemize still ran: it did not wait for it. (No latency bound: one of 0.5 s
    # failed on a loaded 2-core VM; timing targets belong in bench/load_test.py.)
    assert health.status_code == 200 and busy
    assert done["r"].status_code == 200 and len(done["r"].json()["phones"]) > 100_000


def test_a_timed_out_request_does_not_delay_the_next(recognizer, tiny_model_dir):
    """A 120 s file on a model slowed to 0.4 s per forward pass (6 windows, 2.4 s): after its 504 at 0.8 s,
    the next 1 s clip waits at most for the window in flight, not for the rest of the file."""
    from fastapi.testclient import TestClient

    slow = load_model(tiny_model_dir, dtype="float32")
    forward = slow._forward
    slow._forward = lambda wavs: (time.sleep(0.4), forward(wavs))[1]
    limits = ServerLimits(max_seconds=200, timeout_seconds=0.8)
    with TestClient(create_app(recognizer=slow, limits=limits, model_name="slow")) as c:
        long = c.post("/v1/transcribe", content=wav_bytes(120.0), headers={"content-type": "audio/wav"})
        assert long.status_code == 504 and "error" in long.json()
        t0 = time.perf_counter()
        short = c.post("/v1/transcribe", content=wav_bytes(1.0), headers={"content-type": "audio/wav"})
        latency = time.perf_counter() - t0
    assert short.status_code == 200
    assert latency < 0.4 + 0.4 + 0.3, latency  # the window in flight + its own pass + slack (uncancelled: ~2 s)


def wav_bytes(seconds: float, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds), 16000, format=fmt)
    return buf.getvalue()


def test_a_truncated_file_is_transcribed_with_a_warning_to_the_client(client):
    mp3 = wav_bytes(5.0, "MP3")
    r = client.post("/v1/transcribe", content=mp3[: len(mp3) // 3], headers={"content-type": "audio/mpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duration"] < 2.5 and len(body["warnings"]) == 1 and "truncated file?" in body["warnings"][0]
    good = client.post("/v1/transcribe", content=mp3, headers={"content-type": "audio/mpeg"}).json()
    assert good["warnings"] == []


def test_openapi_documents_bodies_and_errors_and_docs_work_offline(client):
    paths = client.get("/openapi.json").json()["paths"]
    transcribe = paths["/v1/transcribe"]["post"]
    assert {"multipart/form-data", "audio/*"} <= set(transcribe["requestBody"]["content"])
    assert {"413", "422", "504"} <= set(transcribe["responses"])
    assert "text" in paths["/v1/compare"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["required"]
    assert "application/json" in paths["/v1/phonemize"]["post"]["requestBody"]["content"]
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "/openapi.json" in html and "https://" not in html


@pytest.mark.parametrize(
    "argv,message",
    [
        (["transcribe", "a.wav", "--threads", "-1"], "--threads: must be at least 0, not -1"),
        (["serve", "--port", "99999"], "--port: a port is 1-65535, not 99999"),
        (["transcribe", "a.wav", "--beam-width", "0"], "--beam-width: must be at least 1, not 0"),
        (["transcribe", "a.wav", "--batch-size", "0"], "--batch-size: must be at least 1, not 0"),
        (["transcribe", "a.wav", "--batch-size", "-3"], "--batch-size: must be at least 1, not -3"),
        (["finetune", "--init", "c", "--train", "t", "--out", "o", "--lr", "nan"], "--lr: must be at least"),
        (["evaluate", "--data", "d", "--limit", "x"], "--limit: expected an integer, not 'x'"),
        (
            ["lm", "build", "--text", "t", "--out", "o", "--order", "99999"],
            "--order: an n-gram order is 1-10, not 99999",
        ),
    ],
)
def test_bad_numeric_options_get_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_main(argv, capsys)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_an_unreadable_audio_file_is_named_as_a_permission_problem(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import os

    clip = tmp_path / "locked.wav"
    sf.write(clip, speechlike(1.0), 16000)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(clip) else real(p, mode, **kw))
    code, _, err = run_main(["transcribe", str(clip), "--model", str(tiny_model_dir)], capsys)  # as root, chmod 000
    assert code == 1 and "permission denied" in err  # would not stop this process: os.access is what root consults


def test_ctm_escapes_white_space_in_file_names(tiny_model_dir, tmp_path, capsys):
    clip = tmp_path / "my clip 100%.wav"
    sf.write(clip, speechlike(1.0), 16000)
    code, out, _ = run_main(["transcribe", str(clip), "--model", str(tiny_model_dir), "--format", "ctm"], capsys)
    assert code == 0 and out
    for line in out.splitlines():
        fields = line.split()
        assert len(fields) == 6 and fields[0].endswith("my%20clip%20100%25.wav")
    assert np.all([float(line.split()[3]) > 0 for line in out.splitlines()])


def test_empty_text_is_refused_rather_than_phonemized_to_nothing(capsys):
    code, out, err = run_main(["phonemize", " ", ""], capsys)
    assert code == 2 and out == "" and "nothing to phonemize: the text is empty" in err


def test_an_evaluation_that_scores_nothing_fails_and_names_the_first_reason(tiny_model_dir, tmp_path, capsys):
    import json

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"audio": "gone.wav", "sentence": "салам"}) + "\n", encoding="utf-8")
    argv = ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "eval")]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "no utterance could be scored" in err and "gone.wav: no such file" in err
    report = json.loads((tmp_path / "eval" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["utterances"] == 0 and report["skipped"][0]["id"] == "gone"


def test_a_file_system_error_is_one_line_naming_the_path(tiny_model_dir, tmp_path, capsys):
    clip, blocker = tmp_path / "clip.wav", tmp_path / "a-file"
    sf.write(clip, speechlike(1.0), 16000)
    blocker.write_text("not a folder")
    argv = ["transcribe", str(clip), "--model", str(tiny_model_dir), "--output", str(blocker / "out.txt")]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and f"error: {blocker}: is a file, where a folder is needed" in err
    argv[-1] = str(tmp_path / "missing" / "out.txt")
    (tmp_path / "missing").symlink_to(tmp_path / "nowhere" / "deeper")  # a dangling link: mkdir cannot follow it
    code, _, err = run_main(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and f"{tmp_path / 'missing'}:" in err and "[Errno" not in err


def test_pretraining_from_a_missing_init_says_what_init_must_be(tmp_path, capsys):
    import json

    sf.write(tmp_path / "clip.wav", speechlike(1.0), 16000)
    (tmp_path / "d.jsonl").write_text(json.dumps({"audio": "clip.wav"}) + "\n", encoding="utf-8")
    argv = ["pretrain", "--init", str(tmp_path / "nowhere"), "--unlabeled", str(tmp_path / "d.jsonl")]
    code, _, err = run_main(argv + ["--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "nowhere: no such pretraining folder, CTC model folder or config.json" in err


def test_lm_text_that_is_not_utf8_is_named(tmp_path, capsys):
    text = tmp_path / "binary.txt"
    text.write_bytes(b"\x00\xff\xfe not text \xc3\x28")
    code, _, err = run_main(["lm", "build", "--text", str(text), "--out", str(tmp_path / "lm.arpa")], capsys)
    assert code == 2 and f"{text}: not UTF-8 text" in err and not (tmp_path / "lm.arpa").exists()
