"""The `unispeech transcribe` command: output formats, and one clear line per bad input."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from unispeech import load_model

from .conftest import run_main, speechlike


@pytest.fixture
def clips(tmp_path):
    paths = []
    for i, seconds in enumerate((1.2, 0.6)):
        path = tmp_path / f"clip{i}.flac"
        sf.write(path, speechlike(seconds, seed=i), 16000)
        paths.append(str(path))
    return paths


def test_formats_agree(tiny_model_dir, clips, capsys, tmp_path):
    code, out, _ = run_main(["transcribe", *clips, "--model", str(tiny_model_dir), "--format", "json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [r["path"] for r in rows] == clips
    for r in rows:
        assert r["text"] == " ".join(r["phones"]) and len(r["timestamps"]) == len(r["phones"])
        assert all(t["start"] < t["end"] <= r["duration"] + 0.02 for t in r["timestamps"])
    code, out, _ = run_main(["transcribe", *clips, "--model", str(tiny_model_dir), "--format", "txt"], capsys)
    assert out.splitlines() == [f"{r['path']}\t{r['text']}" for r in rows]
    code, out, _ = run_main(["transcribe", *clips, "--model", str(tiny_model_dir), "--format", "tsv"], capsys)
    assert len(out.splitlines()) == 1 + sum(len(r["phones"]) for r in rows)
    target = tmp_path / "out" / "result.jsonl"
    code, out, _ = run_main(
        ["transcribe", *clips, "--model", str(tiny_model_dir), "--format", "jsonl", "--output", str(target)], capsys
    )
    assert out == "" and [json.loads(line)["phones"] for line in target.read_text().splitlines()] == [
        r["phones"] for r in rows
    ]


def bad_inputs(tmp_path):
    cases = {
        "missing": (tmp_path / "missing.wav", "no such file"),
        "directory": (tmp_path / "adir", "is a directory"),
        "text": (tmp_path / "notes.wav", "not a readable audio file"),
        "corrupt_mp3": (tmp_path / "corrupt.mp3", "not a readable audio file"),
        "empty": (tmp_path / "empty.wav", "contains no samples"),
        "too_short": (tmp_path / "short.wav", "too short"),
        "nan": (tmp_path / "nan.wav", "NaN or infinite"),
    }
    (tmp_path / "adir").mkdir()
    (tmp_path / "notes.wav").write_text("hello\n" * 100)
    sf.write(tmp_path / "good.mp3", speechlike(1.0), 16000, format="MP3")
    (tmp_path / "corrupt.mp3").write_bytes((tmp_path / "good.mp3").read_bytes()[:300])
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "short.wav", speechlike(0.02), 16000)  # 320 samples < 400
    sf.write(tmp_path / "nan.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    return cases


def test_each_bad_file_gets_one_clear_line(tiny_model_dir, tmp_path, capsys):
    for name, (path, message) in bad_inputs(tmp_path).items():
        code, out, err = run_main(["transcribe", str(path), "--model", str(tiny_model_dir)], capsys)
        assert code == 1, name
        assert message in err, (name, err)
        assert out == ""


def test_batch_with_a_bad_file_keeps_the_good_ones(tiny_model_dir, clips, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    code, out, err = run_main(
        ["transcribe", clips[0], str(bad), clips[1], "--model", str(tiny_model_dir), "--format", "jsonl"], capsys
    )
    assert code == 1
    assert [json.loads(line)["path"] for line in out.splitlines()] == [clips[0], clips[1]]
    assert f"skipped {bad}: not a readable audio file" in err and "1 of 3 files" in err


def broken_models(tmp_path, tiny_model_dir):
    def copy(name):
        return shutil.copytree(tiny_model_dir, tmp_path / name)

    no_config = copy("no-config")
    (no_config / "config.json").unlink()
    no_weights = copy("no-weights")
    (no_weights / "model.safetensors").unlink()
    bad_vocab = copy("bad-vocab")
    vocab = json.loads((bad_vocab / "vocab.json").read_text())
    del vocab["<unk>"]
    (bad_vocab / "vocab.json").write_text(json.dumps(vocab))
    bad_option = copy("bad-option")
    config = json.loads((bad_option / "config.json").read_text())
    config["feat_extract_norm"] = "batch"
    (bad_option / "config.json").write_text(json.dumps(config))
    return {
        no_config: "no config.json",
        no_weights: "no weights",
        bad_vocab: "has 42 tokens but the model's CTC head has 43",
        bad_option: "feat_extract_norm 'batch'",
        tmp_path / "nowhere": "no such model folder",
    }


def test_bad_model_folders(tiny_model_dir, clips, tmp_path, capsys):
    for folder, message in broken_models(tmp_path, tiny_model_dir).items():
        code, out, err = run_main(["transcribe", clips[0], "--model", str(folder)], capsys)
        assert code == 2 and message in err, (folder, err)
        assert err.count("\n") == 1


def test_offline_hub_id_says_how_to_pass_a_folder(clips, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    code, _, err = run_main(["transcribe", clips[0], "--model", "microsoft/unispeech-1350-en-17h-ky-ft-1h"], capsys)
    assert code == 2
    assert "could not fetch 'microsoft/unispeech-1350-en-17h-ky-ft-1h'" in err and "--model /path/to/folder" in err


def test_console_script_runs(tiny_model_dir, clips):
    done = subprocess.run(
        [sys.executable, "-m", "unispeech", "transcribe", clips[0], "--model", str(tiny_model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == load_model(tiny_model_dir).transcribe(clips[0]).text + "\n"
    help_text = subprocess.run(
        [sys.executable, "-m", "unispeech", "transcribe", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "--format" in help_text and "--batch-size" in help_text
