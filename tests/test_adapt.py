"""Adapting the model to a voice (unispeech/adapt.py), to each utterance (SUTA, `--adapt`) and once to all of a
run's audio (`--adapt-together`, `unispeech adapt`): what it optimises, that it leaves the loaded model as it was,
that an utterance's result does not depend on its company, that adapting together is repeatable and bounded, and
where neither can run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import unispeech
from unispeech import AdaptOptions, GreedyDecoder, TogetherOptions
from unispeech.adapt import adapted_names, class_confusion, cut_pieces, suta_loss
from unispeech.checkpoint import DEFAULT_MODEL_DIR

from .conftest import normalized, run_main, speechlike

ROOT_EXAMPLE = Path(__file__).parents[1] / "examples" / "ky_example.flac"


def test_class_confusion_is_zero_for_sure_frames_of_distinct_classes_and_grows_as_they_blur():
    sure = torch.full((5, 5), -30.0)
    sure[torch.arange(5), torch.arange(5)] = 30.0  # each class the sure choice of one frame
    blurred = torch.zeros(5, 5)
    assert class_confusion(sure) < 1e-6
    assert class_confusion(blurred) > 0.5
    assert class_confusion(sure / 10) < class_confusion(sure / 30) < class_confusion(blurred)


def test_the_entropy_term_looks_only_at_frames_not_heard_as_blank():
    options = AdaptOptions(temperature=1.0)
    logits = torch.zeros(6, 5)
    logits[:, 4] = 5.0  # every frame's best class is the blank (4): the loss is the confusion term alone
    expected = (1 - options.entropy_weight) * class_confusion(logits)
    assert torch.isclose(suta_loss(logits, 4, options), expected)
    assert suta_loss(logits, 0, options) > expected  # with another blank, the frames' entropy counts too


def test_it_adapts_the_feature_encoder_and_the_layer_norms_only(tiny_model_dir):
    model = unispeech.load_model(tiny_model_dir, dtype="float32", backend="torch").model
    names = adapted_names(model)
    assert any(n.startswith("backbone.feature_extractor.conv_layers.0.conv") for n in names)
    assert any("encoder.layers.0.layer_norm" in n for n in names)
    assert not any("attention" in n or "feed_forward" in n or n.startswith("lm_head") for n in names)


def test_options_out_of_range_are_refused():
    for bad in (
        dict(steps=0),
        dict(lr=0.0),
        dict(temperature=-1.0),
        dict(entropy_weight=1.5),
        dict(min_spoken_frames=-1),
    ):
        with pytest.raises(ValueError, match="adaptation needs"):
            AdaptOptions(**bad)


@pytest.fixture(scope="module")
def demo_adapting():
    return unispeech.load_model(DEFAULT_MODEL_DIR, decoder=GreedyDecoder(), adapt=AdaptOptions(steps=3))


def test_adapting_lowers_the_loss_on_the_utterance_and_leaves_the_loaded_weights_as_they_were(demo_adapting):
    recognizer = demo_adapting
    wav = recognizer.prepare(str(ROOT_EXAMPLE))
    model, blank, options = recognizer.model, recognizer.vocab.blank_id, recognizer.runner.options
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        plain = model(torch.from_numpy(wav)[None], torch.tensor([wav.size]))[0][0]
    adapted = torch.from_numpy(recognizer.logits_batch([wav])[0])
    assert suta_loss(adapted, blank, options) < suta_loss(plain, blank, options)
    assert not torch.allclose(adapted, plain, atol=1e-3)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_an_utterance_s_result_does_not_depend_on_what_came_before_it_or_shares_its_batch(demo_adapting):
    a, b = (normalized(speechlike(s, seed)) for s, seed in ((1.5, 1), (2.0, 2)))
    alone = demo_adapting.logits_batch([b])[0]
    demo_adapting.logits_batch([a])
    after_a = demo_adapting.logits_batch([b])[0]
    together = demo_adapting.logits_batch([a, b])[1]
    np.testing.assert_allclose(after_a, alone, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_it_says_that_it_adapts_and_a_bulk_job_made_without_it_is_another_model(demo_adapting):
    plain = unispeech.load_model(DEFAULT_MODEL_DIR, dtype="float32", backend="torch")
    assert "SUTA: 3 steps" in demo_adapting.describe()
    assert demo_adapting.runner.identity() != plain.runner.identity()


def test_it_runs_in_torch_float32_and_refuses_onnxruntime_or_another_precision(tiny_model_dir):
    for backend, dtype in (("onnxruntime", "auto"), ("auto", "int8"), ("torch", "bfloat16")):
        with pytest.raises(ValueError, match="runs in torch float32"):
            unispeech.load_model(tiny_model_dir, dtype=dtype, backend=backend, adapt=AdaptOptions())
    recognizer = unispeech.load_model(tiny_model_dir, adapt=AdaptOptions(steps=1))
    assert recognizer.describe().startswith("torch float32")


def test_the_command_line_adapts_when_asked_and_refuses_zero_steps_or_steps_without_adapt(capsys):
    argv = ["transcribe", "--adapt", str(ROOT_EXAMPLE), "--adapt-steps", "2", "--verbose", "--decoder", "greedy"]
    code, out, err = run_main(argv, capsys)
    assert code == 0 and out.strip() and "SUTA: 2 steps" in err
    code, out, err = run_main(["transcribe", str(ROOT_EXAMPLE), "--adapt", "--adapt-steps", "0"], capsys)
    assert code == 2 and "--adapt-steps" in err
    code, out, err = run_main(["transcribe", str(ROOT_EXAMPLE), "--adapt-steps", "5"], capsys)
    assert code != 0 and "give --adapt or --adapt-together too" in err and not out
    code, out, err = run_main(["align", str(ROOT_EXAMPLE), "--text", "ал", "--adapt-lr", "1e-4"], capsys)
    assert code != 0 and "give --adapt too" in err and not out


def test_an_utterance_with_too_few_frames_heard_as_phones_is_decoded_as_loaded():
    """A letter or a short word gives the losses too few frames to go on (on KLettres' letters they made up phones
    in the silences): below `min_spoken_frames` the utterance is not adapted."""
    guarded = unispeech.load_model(DEFAULT_MODEL_DIR, adapt=AdaptOptions(steps=2, min_spoken_frames=10**6))
    plain = unispeech.load_model(DEFAULT_MODEL_DIR, dtype="float32", backend="torch")
    np.testing.assert_allclose(guarded.logits(str(ROOT_EXAMPLE)), plain.logits(str(ROOT_EXAMPLE)), atol=1e-5)


def test_a_server_started_with_adapt_answers_with_the_adapted_model():
    from fastapi.testclient import TestClient

    from unispeech.server import create_app

    expected = unispeech.load_model(DEFAULT_MODEL_DIR, adapt=AdaptOptions(steps=2)).transcribe(str(ROOT_EXAMPLE))
    with TestClient(create_app(str(DEFAULT_MODEL_DIR), adapt=AdaptOptions(steps=2))) as client:
        r = client.post("/v1/transcribe", content=ROOT_EXAMPLE.read_bytes(), headers={"content-type": "audio/flac"})
        health = client.get("/health").json()
    assert "SUTA: 2 steps" in health["runs"]
    assert r.status_code == 200, r.text
    assert r.json()["phones"] == expected.phones


# Adapting once to all the audio of a run (--adapt-together)


def test_adapting_together_lowers_the_loss_over_the_audio_changes_only_the_adapted_parameters_of_a_copy():
    plain = unispeech.load_model(DEFAULT_MODEL_DIR, dtype="float32", backend="torch", decoder=GreedyDecoder())
    before = {n: p.detach().clone() for n, p in plain.model.named_parameters()}
    wav = plain.prepare(str(ROOT_EXAMPLE))
    options = TogetherOptions(steps=3)
    adapted = unispeech.adapted_to(plain, [str(ROOT_EXAMPLE)], options)
    blank = plain.vocab.blank_id
    loss = {r: suta_loss(torch.from_numpy(r.logits_batch([wav])[0]), blank, options) for r in (plain, adapted)}
    assert loss[adapted] < loss[plain]
    assert all(torch.equal(p, before[n]) for n, p in plain.model.named_parameters())
    changed = {n for n, p in adapted.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(adapted_names(plain.model))
    assert "adapted together (3 steps" in adapted.describe() and "to 1 inputs, 3 draws" in adapted.describe()


def test_adapting_together_is_repeatable_so_a_resumed_job_finds_the_same_model_and_other_audio_gives_another():
    plain = unispeech.load_model(DEFAULT_MODEL_DIR, dtype="float32", backend="torch")
    other = normalized(speechlike(3.0, seed=3))
    options = TogetherOptions(steps=2, min_spoken_frames=0)
    first, again = (unispeech.adapted_to(plain, [str(ROOT_EXAMPLE)], options) for _ in range(2))
    elsewhere = unispeech.adapted_to(plain, [other], options)
    assert first.runner.identity() == again.runner.identity() != plain.runner.identity()
    assert elsewhere.runner.identity() != first.runner.identity()


def test_pieces_with_too_few_frames_heard_as_phones_give_no_gradient_and_unreadable_inputs_are_left_out(tmp_path):
    plain = unispeech.load_model(DEFAULT_MODEL_DIR, dtype="float32", backend="torch")
    missing = str(tmp_path / "missing.wav")
    adapted = unispeech.adapted_to(
        plain, [str(ROOT_EXAMPLE), missing], TogetherOptions(steps=2, min_spoken_frames=10**6)
    )
    assert "to 2 inputs, 0 draws heard as speech" in adapted.describe()
    assert adapted.runner.identity().split()[0] == plain.runner.identity()  # the weights as loaded


def test_long_inputs_are_adapted_on_pieces_of_piece_seconds(tiny_model_dir):
    plain = unispeech.load_model(tiny_model_dir, dtype="float32", backend="torch")
    long = normalized(speechlike(6.0, seed=4))
    options = TogetherOptions(steps=2, piece_seconds=1.0, min_spoken_frames=0)
    seen = []
    hook = plain.model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape[-1]))
    try:
        unispeech.adapted_to(plain, [long], options)
    finally:
        hook.remove()
    assert seen == [16000] * 8  # 2 steps of 4 pieces of the 6 s


def test_however_long_the_recordings_at_most_max_pieces_are_kept_and_a_tail_under_a_second_is_left_out():
    lengths = (10 * 16000 + 8000, 3 * 16000, 20000, 8000)  # 10.5 s, 3 s, 1.25 s, and a recording of 0.5 s
    recordings = [np.arange(n, dtype=np.float32) + 1e6 * i for i, n in enumerate(lengths)]
    every = cut_pieces(recordings, TogetherOptions(piece_seconds=1.0, max_pieces=1000), 16000)
    assert [p.size for p in every] == [16000] * 14 + [8000]  # the 0.5 s and 0.25 s tails left out, not the 0.5 s clip
    options = TogetherOptions(piece_seconds=1.0, max_pieces=5)
    kept, again = (cut_pieces(recordings, options, 16000) for _ in range(2))
    assert len(kept) == 5 and len({float(k[0]) for k in kept}) == 5
    assert all(any(np.array_equal(k, e) for e in every) for k in kept)
    assert [float(k[0]) for k in kept] == [float(k[0]) for k in again]  # seeded
    assert [float(k[0]) for k in kept] != [float(e[0]) for e in every[:5]]  # drawn from all, not the first five


def test_adapting_together_needs_torch_float32_weights_and_sane_options(tiny_model_dir):
    int8 = unispeech.load_model(tiny_model_dir, dtype="int8")
    with pytest.raises(ValueError, match="needs the model's weights in torch float32"):
        unispeech.adapted_to(int8, [normalized(speechlike(1.0))], TogetherOptions())
    for bad in (
        dict(pieces_per_step=0),
        dict(piece_seconds=0.5),
        dict(max_inputs=0),
        dict(max_pieces=0),
        dict(steps=0),
    ):
        with pytest.raises(ValueError, match="adaptation needs"):
            TogetherOptions(**bad)


def test_the_command_line_adapts_together_when_asked_and_says_so_in_the_evaluation_report(tmp_path, capsys):
    argv = ["transcribe", "--adapt-together", "--adapt-steps", "2", "--verbose", "--decoder", "greedy"]
    code, out, err = run_main([*argv, str(ROOT_EXAMPLE), str(ROOT_EXAMPLE)], capsys)
    assert code == 0 and out.count("ky_example.flac") == 2 and "adapted together (2 steps" in err
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": str(ROOT_EXAMPLE), "text": "ал жерде"}) + "\n")
    argv = ["evaluate", "--data", str(manifest), "--out", str(tmp_path / "report"), "--adapt-together"]
    code, out, err = run_main([*argv, "--adapt-steps", "2", "--decoder", "greedy"], capsys)
    assert code == 0 and "PER" in out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "adapted together (2 steps of up to 4 pieces" in report["summary"]["runs"]
    code, out, err = run_main([*argv, "--adapt-steps", "2", "--decoder", "greedy"], capsys)
    assert code == 0, err  # the same adaptation again: the finished evaluation is found, not refused


def test_the_command_line_refuses_both_adaptations_at_once_ray_and_other_precisions(capsys):
    for extra, message in (
        (["--adapt"], "give one"),
        (["--engine", "ray"], "cannot run with --engine ray"),
        (["--dtype", "int8"], "runs in torch float32"),
        (["--backend", "onnxruntime"], "runs in torch float32"),
    ):
        code, out, err = run_main(["transcribe", str(ROOT_EXAMPLE), "--adapt-together", *extra], capsys)
        assert code != 0 and message in err and not out, (extra, err)


def test_unispeech_adapt_saves_a_model_folder_that_decodes_as_the_adapted_model_with_its_own_decoding(tmp_path, capsys):
    out = tmp_path / "my-voice"
    code, stdout, err = run_main(["adapt", str(ROOT_EXAMPLE), "--out", str(out), "--adapt-steps", "2"], capsys)
    assert code == 0, err
    assert "adapted together (2 steps" in stdout and (out / "unispeech_decoding.json").is_file()
    plain = unispeech.load_model(DEFAULT_MODEL_DIR, dtype="float32", backend="torch")
    expected = unispeech.adapted_to(plain, [str(ROOT_EXAMPLE)], TogetherOptions(steps=2))
    saved = unispeech.load_model(out, dtype="float32", backend="torch")
    np.testing.assert_allclose(saved.logits(str(ROOT_EXAMPLE)), expected.logits(str(ROOT_EXAMPLE)), atol=1e-5)
    assert saved.decoder.describe() == plain.decoder.describe()
    before = (out / "model.safetensors").read_bytes()
    code, stdout, err = run_main(["adapt", str(ROOT_EXAMPLE), "--out", str(out)], capsys)
    assert code != 0 and "already holds a model" in err and (out / "model.safetensors").read_bytes() == before


def test_unispeech_adapt_refuses_audio_with_nothing_heard_as_speech(tmp_path, capsys):
    import soundfile

    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(32000, np.float32), 16000)
    code, stdout, err = run_main(["adapt", str(silence), "--out", str(tmp_path / "m")], capsys)
    assert code != 0 and "nothing to adapt to" in err and not (tmp_path / "m").exists()
