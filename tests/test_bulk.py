"""Whole corpora: one process, two torchrun ranks and a local Ray pipeline write the same transcripts.jsonl;
a crashed or killed job re-run does only what is missing; evaluation reports agree across engines."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

from unispeech import load_model
from unispeech.bulk import FINAL, PARTS, RUNS, plan, run_job, shard

from .conftest import run_main, speechlike, torchrun_unispeech


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """14 clips of 0.5-4.4 s and one file that is not audio, listed in a text file (relative paths)."""
    root = tmp_path_factory.mktemp("corpus")
    names = []
    for i in range(14):
        sf.write(root / f"c{i:02d}.wav", speechlike(0.5 + 0.3 * i, seed=i), 16000)
        names.append(f"c{i:02d}.wav")
    (root / "broken.wav").write_text("not audio\n")
    names.insert(5, "broken.wav")
    (root / "list.txt").write_text("# a comment\n" + "\n".join(names) + "\n")
    return root


def cli(*args, env=None, launcher=None) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable, "-m", "unispeech"]) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def runs(out) -> list[dict]:
    return [json.loads(line) for line in (out / RUNS).read_text().splitlines()]


def test_one_process_two_torchrun_ranks_and_ray_write_the_same_file(corpus, tiny_model_dir, tmp_path):
    common = ["--input", corpus / "list.txt", "--model", tiny_model_dir, "--batch-size", "4", "--threads", "1"]
    one = cli("transcribe", *common, "--output-dir", tmp_path / "one")
    assert one.returncode == 1 and "15 inputs" in one.stderr and "1 with an error" in one.stderr, one.stderr
    reference = (tmp_path / "one" / FINAL).read_bytes()
    lines = [json.loads(line) for line in reference.decode().splitlines()]
    assert [r["index"] for r in lines] == list(range(15))  # input order
    assert lines[5]["path"].endswith("broken.wav") and "not a readable audio file" in lines[5]["error"]
    assert all("phones" in r for i, r in enumerate(lines) if i != 5)

    torchrun = torchrun_unispeech(29544)
    two = cli("transcribe", *common, "--output-dir", tmp_path / "two", launcher=torchrun, env={"OMP_NUM_THREADS": "1"})
    assert (tmp_path / "two" / FINAL).read_bytes() == reference, two.stderr[-2000:]
    assert sorted(r["rank"] for r in runs(tmp_path / "two")) == [0, 1]
    assert sum(r["transcribed"] for r in runs(tmp_path / "two")) == 15  # each input once, over both ranks

    pytest.importorskip("ray")
    ray = cli("transcribe", *common, "--output-dir", tmp_path / "ray", "--engine", "ray", "--ray-actors", "1")
    assert (tmp_path / "ray" / FINAL).read_bytes() == reference, ray.stderr[-2000:]


def test_a_crashed_job_re_run_does_only_the_missing_inputs(corpus, tiny_model_dir, tmp_path):
    from unispeech.bulk import read_input_list

    paths = read_input_list(corpus / "list.txt")
    recognizer = load_model(tiny_model_dir, dtype="float32")
    clean = run_job(recognizer, paths, tmp_path / "clean", batch_size=4, progress=False)

    calls = []
    real = recognizer.transcribe_many

    def crash_on_third_batch(items, **kw):
        calls.append(len(items))
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return real(items, **kw)

    recognizer.transcribe_many = crash_on_third_batch
    with pytest.raises(RuntimeError, match="power cut"):
        run_job(recognizer, paths, tmp_path / "crashed", batch_size=4, progress=False)
    part = next((tmp_path / "crashed" / PARTS).glob("*.jsonl"))
    with open(part, "a", encoding="utf-8") as f:
        f.write('{"index": 14, "path": "torn by a kil')  # a kill -9 in the middle of a write
    recognizer.transcribe_many = real
    again = run_job(recognizer, paths, tmp_path / "crashed", batch_size=4, progress=False)
    assert again.already_done == 8 and again.transcribed == 7  # two batches of 4 were done; 7 inputs left
    assert again.transcripts.read_bytes() == clean.transcripts.read_bytes()
    finished = run_job(recognizer, paths, tmp_path / "crashed", batch_size=4, progress=False)
    assert finished.transcribed == 0 and finished.already_done == 15  # a finished job re-run is a no-op


def test_a_killed_job_re_run_gives_the_same_file(tiny_model_dir, tmp_path):
    for i in range(120):
        sf.write(tmp_path / f"k{i:03d}.wav", speechlike(2.0 + 0.01 * i, seed=i), 16000)
    (tmp_path / "list.txt").write_text("\n".join(f"k{i:03d}.wav" for i in range(120)) + "\n")
    args = ["--input", tmp_path / "list.txt", "--model", tiny_model_dir, "--batch-size", "2", "--threads", "1"]
    assert cli("transcribe", *args, "--output-dir", tmp_path / "clean").returncode == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "unispeech", "transcribe", *map(str, args), "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and sum(p.stat().st_size for p in (out / PARTS).glob("*.jsonl")) < 2000:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / FINAL).exists(), "the job finished before it could be killed"
    assert cli("transcribe", *args, "--output-dir", out).returncode == 0
    assert (out / FINAL).read_bytes() == (tmp_path / "clean" / FINAL).read_bytes()
    (second,) = runs(out)  # the killed run never logged its count
    assert 0 < second["already_done"] and second["already_done"] + second["transcribed"] <= 120 + 2


def test_evaluate_reports_agree_across_engines(tiny_model_dir, tmp_path, capsys):
    from .test_evaluate import build_common_voice

    data = build_common_voice(tmp_path)
    common = ["evaluate", "--model", tiny_model_dir, "--data", data, "--threads", "1", "--batch-size", "2"]
    assert cli(*common, "--out", tmp_path / "one").returncode == 0
    torchrun = torchrun_unispeech(29545)
    two = cli(*common, "--out", tmp_path / "two", launcher=torchrun, env={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-2000:]
    engines = ["two"]
    if __import__("importlib").util.find_spec("ray"):
        assert cli(*common, "--out", tmp_path / "ray", "--engine", "ray", "--ray-actors", "1").returncode == 0
        engines.append("ray")
    for name in ("report.json", "report.md", "utterances.jsonl"):
        reference = (tmp_path / "one" / name).read_bytes()
        for engine in engines:
            assert (tmp_path / engine / name).read_bytes() == reference, (engine, name)
    assert json.loads((tmp_path / "one" / "report.json").read_text())["summary"]["utterances"] == 6


def test_batches_are_length_sorted_and_shares_balanced():
    seconds = [1.0, 9.0, 3.0, 7.0, 5.0, 2.0, 8.0, 4.0]
    batches, _ = plan([f"x{i}" for i in range(8)], batch_size=2)  # unreadable paths: duration 0, index order
    assert batches == [[0, 1], [2, 3], [4, 5], [6, 7]]
    by_length = sorted(range(8), key=lambda i: -seconds[i])
    batches = [by_length[k : k + 2] for k in range(0, 8, 2)]
    shares = shard(batches, seconds, world=2)
    loads = [sum(seconds[i] for b in share for i in b) for share in shares]
    assert sorted(i for share in shares for b in share for i in b) == list(range(8))
    assert abs(loads[0] - loads[1]) <= 3.0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--input", "{tmp}/nowhere.txt", "--output-dir", "{tmp}/o"], "no such file or folder"),
        (["--input", "{tmp}/list.txt", "--output-dir", "{tmp}/no/parent/o"], "parent folder"),
        (["--input", "{tmp}/binary.txt", "--output-dir", "{tmp}/o"], "cannot read the list"),
        (["--input", "{tmp}/list.txt"], "--input LIST with --output-dir"),
        (
            ["--input", "{tmp}/list.txt", "--output-dir", "{tmp}/o", "--engine", "ray", "--ray-address", "127.0.0.1:1"],
            "cannot reach the Ray cluster at 127.0.0.1:1",
        ),
    ],
)
def test_bad_job_input_gets_one_clear_line(tiny_model_dir, tmp_path, capsys, args, message):
    (tmp_path / "list.txt").write_text("a.wav\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    if "ray" in args:
        pytest.importorskip("ray")
    argv = ["transcribe", "--model", str(tiny_model_dir)] + [a.format(tmp=tmp_path) for a in args]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and message in err
