"""ONNX export and the onnxruntime backend: the graph computes what our torch float32 computes, carries what a
runner needs, and everything above the runner (chunking, batching, decoding) is unchanged on top of it."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest
import torch

import unispeech
from unispeech.checkpoint import load_folder
from unispeech.export import FP32_TOLERANCE, _module, export_onnx, read_graph_metadata
from unispeech.precision import choose_backend

from .conftest import normalized, run_main, speechlike

INT8_BOUND = 0.1  # int8 logits within this fraction of the logits' range of float32's (tiny random model)


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    model, vocab, audio = load_folder(tiny_model_dir)
    paths = export_onnx(model, vocab, audio, out, dtypes=("float32", "int8"), source="tiny")
    return out, paths


def padded_batch(seconds=(1.3, 0.7, 0.31)):
    waves = [normalized(speechlike(s, seed=i)) for i, s in enumerate(seconds)]
    batch = np.zeros((len(waves), max(w.size for w in waves)), np.float32)
    for row, w in zip(batch, waves):
        row[: w.size] = w
    return batch, np.array([w.size for w in waves])


def torch_logits(folder, batch, lengths):
    model, _, _ = load_folder(folder)
    with torch.inference_mode():
        logits, frames = model(torch.from_numpy(batch), torch.from_numpy(lengths))
    return logits.numpy(), frames.numpy()


def test_onnx_float32_matches_torch_float32_on_a_padded_batch(tiny_model_dir, exported):
    import onnxruntime as ort

    _, paths = exported
    batch, lengths = padded_batch()
    expected, expected_frames = torch_logits(tiny_model_dir, batch, lengths)
    session = ort.InferenceSession(str(paths["float32"]), providers=["CPUExecutionProvider"])
    feed = {"input_values": batch, "input_lengths": lengths, "normalize": np.array(False)}
    got, frames = session.run(["logits", "logits_len"], feed)
    assert frames.tolist() == expected_frames.tolist()
    for row, n in enumerate(frames):
        assert np.abs(got[row, :n] - expected[row, :n]).max() <= FP32_TOLERANCE


def test_onnx_int8_stays_within_its_bound(tiny_model_dir, exported):
    _, paths = exported
    batch, lengths = padded_batch()
    expected, frames = torch_logits(tiny_model_dir, batch, lengths)
    got, _ = unispeech.runners.OnnxRunner(paths["int8"])(batch, lengths)
    for row, n in enumerate(frames):
        scale = np.ptp(expected[row, :n])
        error = np.abs(got[row, :n] - expected[row, :n]).max()
        assert 0 < error <= INT8_BOUND * scale  # quantized (not a copy of float32), and close


def test_int8_results_do_not_depend_on_batch_mates(exported):
    """int8 activations are quantized with one range per call: each utterance gets a call of its own."""
    out, _ = exported
    recognizer = unispeech.load_model(out, dtype="int8")
    quiet, loud = speechlike(1.0, seed=1), speechlike(0.7, seed=2)
    alone = recognizer.logits(quiet, 16000)
    together = recognizer.logits_batch([recognizer.prepare(w, 16000) for w in (quiet, loud)], batch_size=8)
    assert np.array_equal(alone, together[0])


def test_int8_keep_fragments_match_whole_module_names():
    """Int8Options.keep_float fragments, dotted or not, name modules: layer 1 is not layer 10, and a CNN layer
    whose matmul sits in the layer's own module matches its dotted name too."""
    import onnx

    def scope(*names):
        node = onnx.helper.make_node("MatMul", ["a", "b"], ["c"])
        entry = node.metadata_props.add()
        entry.key, entry.value = "pkg.torch.onnx.name_scopes", str(["", "model", *names])
        return _module(node)

    layer10 = scope("model.backbone.encoder.layers.10", "model.backbone.encoder.layers.10.attention")
    assert "encoder.layers.10." in layer10 and "encoder.layers.1." not in layer10 and "attention" in layer10
    cnn0 = scope("model.backbone.feature_extractor", "model.backbone.feature_extractor.conv_layers.0")
    assert all(f in cnn0 for f in ("conv_layers.0.", "conv_layers.0", "feature_extractor"))
    assert "conv_layers.1" not in cnn0


def test_graph_records_what_a_runner_needs(exported, tiny_model_dir):
    out, paths = exported
    meta = read_graph_metadata(paths["int8"])
    vocab = json.loads((tiny_model_dir / "vocab.json").read_text(encoding="utf-8"))
    assert json.loads(meta["vocabulary"]) == sorted(vocab, key=vocab.get)
    assert (meta["sampling_rate"], meta["frame_stride"], meta["receptive_field"]) == ("16000", "320", "400")
    assert meta["do_normalize"] == "true" and meta["blank_id"] == "39" and meta["dtype"] == "int8"
    assert (out / "tokens.txt").read_text(encoding="utf-8").splitlines()[39] == "<pad> 39"
    assert (out / "vocab.txt").read_text(encoding="utf-8").splitlines()[39] == "<blk> 39"
    assert {"config.json", "vocab.json", "preprocessor_config.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob(".export-*"))  # no staging left behind


def test_a_runner_with_onnx_asrs_contract_transcribes_like_our_torch(exported, tiny_model_dir):
    """What onnx-asr's wav2vec2-ctc model type does with the folder: raw 16 kHz audio into input_values and
    input_lengths (the graph normalises by default), argmax of logprobs, vocab.txt with <blk> as the blank."""
    import onnxruntime as ort

    out, paths = exported
    waves = [speechlike(1.0, seed=5), speechlike(0.6, seed=6)]
    batch = np.zeros((2, waves[0].size), np.float32)
    for row, w in zip(batch, waves):
        row[: w.size] = w
    lengths = np.array([w.size for w in waves])
    session = ort.InferenceSession(str(paths["float32"]), providers=["CPUExecutionProvider"])
    (logprobs,) = session.run(["logprobs"], {"input_values": batch, "input_lengths": lengths})
    tokens = dict(line.split(" ") for line in (out / "vocab.txt").read_text(encoding="utf-8").splitlines())
    vocab, blank = {int(i): t for t, i in tokens.items()}, int(tokens["<blk>"])
    assert np.allclose(np.exp(logprobs).sum(-1), 1, atol=1e-4)
    ours = unispeech.load_model(tiny_model_dir, backend="torch", dtype="float32")
    for row, wav in enumerate(waves):
        best = logprobs[row, : min(wav.size // 320 + 1, logprobs.shape[1])].argmax(-1)
        phones = [vocab[b] for i, b in enumerate(best) if b != blank and (i == 0 or b != best[i - 1])]
        assert phones == ours.transcribe(wav, 16000).phones


def test_an_export_folder_loads_without_weights(exported, tiny_model_dir):
    out, _ = exported
    wavs = [speechlike(s, seed=i) for i, s in enumerate((0.5, 1.7, 0.9))]
    onnx = unispeech.load_model(out, backend="onnxruntime", dtype="float32")
    torch_fp32 = unispeech.load_model(tiny_model_dir, backend="torch", dtype="float32")
    assert onnx.model is None and onnx.describe() == "onnxruntime float32 on cpu"
    with_onnx = [r.phones for r in onnx.transcribe_many(wavs, sampling_rate=16000)]
    assert with_onnx == [r.phones for r in torch_fp32.transcribe_many(wavs, sampling_rate=16000)]
    with pytest.raises(ValueError, match="holds an ONNX export, no weights"):
        unispeech.load_model(out, backend="torch", dtype="float32")


def test_auto_runs_an_export_folder_on_a_graph_the_folder_holds(exported, tmp_path, monkeypatch):
    """Where auto would run torch, a folder without weights runs its float32 graph; where auto runs int8 (greedy
    models on AVX512-VNNI), its int8 graph if it has one, else its float32 graph (an export made without --int8)."""
    import unispeech.precision as precision
    from unispeech.precision import Measured

    out, _ = exported
    float32_only = tmp_path / "float32-only"
    shutil.copytree(out, float32_only)
    (float32_only / "model.int8.onnx").unlink()
    monkeypatch.setattr(precision, "cpu_class", lambda flags: "test")
    for first, with_both in ((("torch", "bfloat16"), "float32"), (("onnxruntime", "int8"), "int8")):
        monkeypatch.setattr(precision, "MEASURED", {"test": (Measured(*first, 0.5, (1.0,)),)})
        assert unispeech.load_model(out).describe() == f"onnxruntime {with_both} on cpu"
        assert unispeech.load_model(float32_only).describe() == "onnxruntime float32 on cpu"
    with pytest.raises(ValueError, match="no weights and no ONNX int8 export"):
        unispeech.load_model(float32_only, dtype="int8")  # asked for by name: no silent float32


def test_long_audio_chunks_the_same_through_onnxruntime(tiny_model_dir, exported):
    """Chunking sits above the runner: a 40 s file is stitched from windows in both backends alike."""
    out, _ = exported
    wav = speechlike(40.0, seed=3)
    onnx = unispeech.load_model(out, backend="onnxruntime", dtype="float32").logits(wav, 16000)
    ours = unispeech.load_model(tiny_model_dir, backend="torch", dtype="float32").logits(wav, 16000)
    assert onnx.shape == ours.shape and np.abs(onnx - ours).max() <= FP32_TOLERANCE


def test_exports_are_made_once_and_remade_when_the_weights_change(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    import unispeech.export as export

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    monkeypatch.setenv("UNISPEECH_CACHE", str(tmp_path / "cache"))
    first = unispeech.load_model(folder, dtype="int8")
    made = list((tmp_path / "cache" / "onnx").iterdir())
    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: pytest.fail("exported again"))
    again = unispeech.load_model(folder, dtype="int8")
    assert again.runner.path == first.runner.path and len(made) == 1
    monkeypatch.undo()
    monkeypatch.setenv("UNISPEECH_CACHE", str(tmp_path / "cache"))
    (folder / "model.safetensors").touch()  # same bytes, another file version: the cache cannot know
    assert unispeech.load_model(folder, dtype="int8").runner.path != first.runner.path


def test_backend_choice_rules(monkeypatch):
    import unispeech.precision as precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_backend("auto", "int8", cpu).backend == "onnxruntime"
    assert choose_backend("torch", "bfloat16", cpu).backend == "torch"
    assert choose_backend("onnxruntime", "auto", cpu).dtype == "int8"
    assert choose_backend("auto", "auto", cuda).backend == "torch"
    assert choose_backend("auto", "auto", cuda, with_lm=True).backend == "torch"  # int8 is for CPUs
    for bad in (("torch", "int8", cpu), ("onnxruntime", "bfloat16", cpu), ("onnxruntime", "int8", cuda)):
        with pytest.raises(ValueError):
            choose_backend(*bad)
    for dtype in precision.DTYPE_CHOICES:  # every name the CLI offers is one the loader takes
        choose_backend("auto", dtype, cpu)
    monkeypatch.setattr(precision, "_has_onnxruntime", lambda: False)
    assert choose_backend("auto", "auto", cpu).backend == "torch"
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        choose_backend("auto", "int8", cpu)


def test_auto_takes_the_fastest_setting_that_keeps_float32_phones(monkeypatch):
    """The rule over the measured table: agreement with float32 below the floor disqualifies a setting."""
    import unispeech.precision as precision

    for (klass, settings), with_lm in itertools.product(precision.MEASURED.items(), (False, True)):
        monkeypatch.setattr(precision, "cpu_class", lambda flags, klass=klass: klass)
        choice = choose_backend("auto", "auto", torch.device("cpu"), with_lm=with_lm)
        best = next(s for s in settings if s.agrees(with_lm) >= precision.AGREEMENT_FLOOR)
        # torch's "auto" is named by what it runs here ("bfloat16 (CNN float32)" where bf16 is native)
        dtype = (
            best.dtype
            if best.backend == "onnxruntime"
            else precision.dtype_name(precision.Precision.choose(best.dtype, torch.device("cpu")))
        )
        assert (choice.backend, choice.dtype) == (best.backend, dtype)
        assert f"lowest draw {100 * best.agrees(with_lm):.2f} %" in choice.reason
        assert ("decoded with its phone LM" in choice.reason) == with_lm
        for skipped in settings[: settings.index(best)]:
            assert f"{skipped.backend} {skipped.dtype} (" in choice.reason


def test_auto_wants_the_floor_on_every_draw_not_on_the_pooled_share(monkeypatch):
    """One draw of 227 utterances swings by a few with the audio, so a setting that passes pooled (99.3 %) but
    not on one draw (98.7 %) is not taken; the reason names only settings faster than the one chosen."""
    import unispeech.precision as precision
    from unispeech.precision import Measured

    table = (
        Measured("torch", "bfloat16", 0.4, (224 / 227, 226 / 227, 226 / 227)),
        Measured("onnxruntime", "int8", 0.5, (227 / 227, 226 / 227, 225 / 227)),
        Measured("torch", "float32", 1.5, (1.0,)),
        Measured("torch", "auto", 2.0, (0.9,)),
    )
    monkeypatch.setattr(precision, "MEASURED", {"amx": table})
    monkeypatch.setattr(precision, "cpu_class", lambda flags: "amx")
    choice = choose_backend("auto", "auto", torch.device("cpu"))
    assert (choice.backend, choice.dtype) == ("onnxruntime", "int8")
    assert "lowest draw 99.12 %" in choice.reason and "torch bfloat16 (98.68 %)" in choice.reason
    assert "torch auto (" not in choice.reason and "torch float32 (" not in choice.reason
    monkeypatch.setattr(precision, "MEASURED", {"amx": table[:1] + table[3:]})
    assert choose_backend("auto", "auto", torch.device("cpu")).dtype == "float32"  # nothing passes: float32


def test_a_model_with_its_own_phone_lm_is_run_by_the_agreement_measured_with_that_lm(monkeypatch):
    """On the AVX512-VNNI class the measured agreements differ by decoding (v7: bfloat16 keeps float32's phones
    on 99.6 % of the utterances decoded with the phone LM, 97.8 % greedily), and so do the choices."""
    import unispeech
    import unispeech.precision as precision
    from unispeech.checkpoint import DEFAULT_MODEL_DIR

    monkeypatch.setattr(precision, "cpu_class", lambda flags: "avx512-vnni")
    with_lm = precision.choose_backend("auto", "auto", torch.device("cpu"), with_lm=True)
    greedy = precision.choose_backend("auto", "auto", torch.device("cpu"), with_lm=False)
    assert (with_lm.backend, with_lm.dtype) != (greedy.backend, greedy.dtype)
    seen = []
    monkeypatch.setattr(unispeech, "choose_backend", lambda *a, **k: seen.append(k) or greedy)
    unispeech.load_model(DEFAULT_MODEL_DIR)
    unispeech.load_model(DEFAULT_MODEL_DIR, decoder=unispeech.GreedyDecoder())
    assert seen == [{"with_lm": True}, {"with_lm": False}]


def test_cli_export_info_and_bad_backend_combinations(tiny_model_dir, tmp_path, capsys):
    code, out, _ = run_main(["export", str(tiny_model_dir), "--int8", "--out", str(tmp_path / "x")], capsys)
    assert code == 0 and (tmp_path / "x" / "model.int8.onnx").is_file() and "int8:" in out
    code, out, _ = run_main(["info"], capsys)
    assert code == 0 and "class" in out
    assert "would run, for models decoded greedily:" in out and "would run, for models with a phone LM" in out
    code, _, err = run_main(["transcribe", "a.wav", "--backend", "onnxruntime", "--dtype", "bfloat16"], capsys)
    assert code == 2 and "onnxruntime runs float32 or int8" in err
    (tmp_path / "file").write_text("")
    code, _, err = run_main(["export", str(tiny_model_dir), "--out", str(tmp_path / "file")], capsys)
    assert code == 2 and "exists and is not a folder" in err
