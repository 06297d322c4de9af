"""Our implementation reproduces transformers' UniSpeechForCTC / Wav2Vec2ForCTC logits, and round-trips folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import unispeech
from unispeech.decoding import greedy_decode

from .conftest import make_reference, normalized, speechlike

VARIANTS = [  # (feat_extract_norm, do_stable_layer_norm, conv_bias)
    ("layer", True, False),  # the Kyrgyz checkpoint's layout
    ("layer", False, True),
    ("group", False, False),  # wav2vec2-base layout
    ("group", True, True),
]


def reference_logits(model, waves: list[np.ndarray]) -> list[np.ndarray]:
    """transformers' logits, one utterance at a time (no padding)."""
    with torch.no_grad():
        return [model(torch.from_numpy(normalized(w))[None]).logits[0].numpy() for w in waves]


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
@pytest.mark.parametrize("norm,stable,bias", VARIANTS)
def test_logits_match_transformers(tmp_path, norm, stable, bias, safe):
    ref = make_reference(tmp_path, safe=safe, feat_extract_norm=norm, do_stable_layer_norm=stable, conv_bias=bias)
    assert (tmp_path / ("model.safetensors" if safe else "pytorch_model.bin")).is_file()
    ours = unispeech.load_model(tmp_path, dtype="float32")
    waves = [speechlike(s, seed=i) for i, s in enumerate((1.0, 2.37, 0.5))]
    for wav, expected in zip(waves, reference_logits(ref, waves)):
        got = ours.logits(wav, sampling_rate=16000)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
        assert np.abs(expected).max() > 1.0, "logits too small for the comparison to mean anything"
        assert ours.decode(got, wav.size).phones == greedy_decode(expected, ours.vocab, 0.02).phones


@pytest.mark.parametrize("stable", [True, False])
def test_padded_batch_matches_transformers_layer_norm(tmp_path, stable):
    import transformers

    ref = make_reference(tmp_path, feat_extract_norm="layer", do_stable_layer_norm=stable)
    ours = unispeech.load_model(tmp_path, dtype="float32")
    waves = [speechlike(s, seed=i) for i, s in enumerate((2.0, 0.7, 1.31))]
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    inputs = extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        batched = ref(inputs.input_values, attention_mask=inputs.attention_mask).logits.numpy()
    got = ours.logits_batch([ours.prepare(w, 16000) for w in waves], batch_size=3)
    for row, ours_row in zip(batched, got):
        assert np.abs(row[: len(ours_row)] - ours_row).max() < 1e-4


@pytest.mark.parametrize("norm,stable,bias", VARIANTS)
def test_batched_equals_one_by_one(tmp_path, norm, stable, bias):
    """Padding never changes a row's result, for group norm too (which transformers lets padding leak into)."""
    make_reference(tmp_path, feat_extract_norm=norm, do_stable_layer_norm=stable, conv_bias=bias)
    ours = unispeech.load_model(tmp_path, dtype="float32")
    waves = [ours.prepare(speechlike(s, seed=i), 16000) for i, s in enumerate((2.5, 0.4, 1.0, 1.7))]
    batched = ours.logits_batch(waves, batch_size=4)
    singles = [ours.logits_batch([w])[0] for w in waves]
    for b, s in zip(batched, singles):
        assert b.shape == s.shape
        assert np.abs(b - s).max() < 1e-4
    results = list(ours.transcribe_many(waves, batch_size=4, sampling_rate=16000))
    assert [r.phones for r in results] == [ours.decode(s, w.size).phones for s, w in zip(singles, waves)]
    # the logits under transcribe_many, in input order; an unusable input keeps its place as its error
    pairs = list(ours.logits_many([waves[0], np.zeros(10, np.float32), waves[1]], batch_size=4, sampling_rate=16000))
    assert isinstance(pairs[1][0], unispeech.AudioError) and pairs[1][1] is None
    assert np.abs(pairs[0][1] - singles[0]).max() < 1e-4 and np.abs(pairs[2][1] - singles[1]).max() < 1e-4


def test_wav2vec2_checkpoint_loads(tmp_path):
    ref = make_reference(tmp_path, model_type="wav2vec2", feat_extract_norm="group", do_stable_layer_norm=False)
    assert "wav2vec2.feature_extractor.conv_layers.0.conv.weight" in ref.state_dict()
    ours = unispeech.load_model(tmp_path, dtype="float32")
    wav = speechlike(1.2)
    assert np.abs(ours.logits(wav, 16000) - reference_logits(ref, [wav])[0]).max() < 1e-4


def test_sharded_checkpoint_loads(tmp_path):
    ref = make_reference(tmp_path, shard="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    wav = speechlike(1.0)
    ours = unispeech.load_model(tmp_path, dtype="float32")
    assert np.abs(ours.logits(wav, 16000) - reference_logits(ref, [wav])[0]).max() < 1e-4


def test_old_weight_norm_names_load(tmp_path):
    """Checkpoints saved before torch's parametrizations name the positional conv weight_g / weight_v."""
    from safetensors.torch import load_file, save_file

    ref = make_reference(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    renamed = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in state.items()
    }
    assert any(k.endswith("pos_conv_embed.conv.weight_g") for k in renamed)
    save_file(renamed, tmp_path / "model.safetensors")
    wav = speechlike(1.0)
    ours = unispeech.load_model(tmp_path, dtype="float32")
    assert np.abs(ours.logits(wav, 16000) - reference_logits(ref, [wav])[0]).max() < 1e-4


def test_saved_folder_loads_in_transformers(tmp_path):
    import transformers

    make_reference(tmp_path / "src")
    ours = unispeech.load_model(tmp_path / "src", dtype="float32")
    out = ours.save(tmp_path / "saved")
    assert {
        "config.json",
        "model.safetensors",
        "vocab.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "special_tokens_map.json",
    } <= {p.name for p in out.iterdir()}
    hf = transformers.AutoModelForCTC.from_pretrained(out).eval()
    assert type(hf).__name__ == "UniSpeechForCTC"
    extractor = transformers.AutoFeatureExtractor.from_pretrained(out)
    tokenizer = transformers.Wav2Vec2PhonemeCTCTokenizer.from_pretrained(out, do_phonemize=False)
    wav = speechlike(1.5)
    inputs = extractor(wav, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = hf(inputs.input_values).logits
    ours_logits = ours.logits(wav, 16000)
    assert np.abs(logits[0].numpy() - ours_logits).max() < 1e-4
    expected_text = tokenizer.batch_decode(logits.argmax(-1))[0]
    assert ours.decode(ours_logits, wav.size).text == expected_text
    assert unispeech.load_model(out, dtype="float32").logits(wav, 16000).tolist() == ours_logits.tolist()


def test_weights_stored_in_float16_load_exactly_and_transformers_computes_in_float32(tmp_path):
    import transformers
    from safetensors.torch import load_file

    from unispeech.checkpoint import save_folder

    make_reference(tmp_path / "src")
    ours = unispeech.load_model(tmp_path / "src", dtype="float32")
    out = save_folder(tmp_path / "half", ours.model, ours.vocab, ours.audio, storage=torch.float16)
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float16}
    half = unispeech.load_model(out, dtype="float32")
    stored = ours.model.state_dict()
    for key, value in half.model.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, stored[key].half().float()), key
    hf = transformers.AutoModelForCTC.from_pretrained(out).eval()
    assert next(hf.parameters()).dtype == torch.float32
    wav = speechlike(1.0)
    with torch.no_grad():
        logits = hf(torch.from_numpy(normalized(wav))[None]).logits[0].numpy()
    assert np.abs(logits - half.logits(wav, 16000)).max() < 1e-4
    with torch.no_grad():
        ours.model.lm_head.bias[0] = 1e5
    with pytest.raises(ValueError, match="lm_head.bias: values up to 1e.05 do not fit torch.float16"):
        save_folder(tmp_path / "too-large", ours.model, ours.vocab, ours.audio, storage=torch.float16)
    assert not (tmp_path / "too-large").exists()


def test_imports_and_runs_without_transformers(tiny_model_dir):
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import numpy as np, unispeech\n"
        f"r = unispeech.load_model({str(tiny_model_dir)!r}, dtype='float32')\n"
        "out = r.transcribe(np.random.default_rng(0).standard_normal(16000).astype('float32'), 16000)\n"
        "print(len(out.timestamps) == len(out.phones))\n"
    )
    assert python_output(code) == "True"


def test_loading_and_transcribing_leave_torchs_compiler_unimported(tiny_model_dir):
    """Importing torch._dynamo costs ~1 s; a plain load + transcribe (the README's first command) needs none of it
    (the positional conv's random init on the meta device used to pull it in)."""
    code = (
        "import sys, numpy as np, unispeech\n"
        f"r = unispeech.load_model({str(tiny_model_dir)!r}, backend='torch', dtype='auto')\n"
        "r.transcribe(np.random.default_rng(0).standard_normal(16000).astype('float32'), 16000)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    assert python_output(code) == "False"


def python_output(code: str) -> str:
    """What `code` prints, run in a fresh interpreter (so that the imports are its own)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_config_round_trips(tmp_path, tiny_model_dir):
    ours = unispeech.load_model(tiny_model_dir, dtype="float32")
    original = json.loads((tiny_model_dir / "config.json").read_text())
    saved = json.loads((ours.save(tmp_path / "saved") / "config.json").read_text())
    for key in (
        "hidden_size",
        "conv_dim",
        "conv_kernel",
        "feat_extract_norm",
        "do_stable_layer_norm",
        "vocab_size",
        "pad_token_id",
        "num_conv_pos_embeddings",
        "model_type",
        "layer_norm_eps",
    ):
        assert saved[key] == original[key], key


def test_auto_precision_keeps_cnn_norms_and_head_in_float32(tiny_model_dir, monkeypatch):
    """dtype "auto" on bf16 hardware: bf16 transformer matmuls, everything whose rounding changes phones in fp32."""
    monkeypatch.setattr(unispeech.precision, "fast_bf16", lambda device: True)
    auto = unispeech.load_model(tiny_model_dir, backend="torch")
    fp32 = unispeech.load_model(tiny_model_dir, dtype="float32")
    bf16 = unispeech.load_model(tiny_model_dir, dtype="bfloat16")
    backbone = auto.model.backbone
    assert {p.dtype for p in backbone.feature_extractor.parameters()} == {torch.float32}
    layer = backbone.encoder.layers[0]
    assert layer.feed_forward.intermediate_dense.weight.dtype == layer.attention.q_proj.weight.dtype == torch.bfloat16
    assert layer.layer_norm.weight.dtype == backbone.encoder.layer_norm.weight.dtype == torch.float32
    assert auto.dtype == torch.bfloat16 and auto.model.lm_head.weight.dtype == torch.float32
    wav = speechlike(2.0)
    reference = fp32.logits(wav, 16000)
    error_auto = np.abs(auto.logits(wav, 16000) - reference).max()
    error_bf16 = np.abs(bf16.logits(wav, 16000) - reference).max()
    assert 0 < error_auto < error_bf16


def test_mixed_precision_runs_only_the_layers_matmuls_in_bfloat16(tiny_model_dir):
    """dtype "mixed": bf16 matmuls in the transformer layers; the CNN, the feature projection and the positional
    conv (whose bf16 rounding changes phones after the CNN's), the norms and the head in float32."""
    mixed = unispeech.load_model(tiny_model_dir, backend="torch", dtype="mixed")
    backbone = mixed.model.backbone
    for part in (backbone.feature_extractor, backbone.feature_projection, backbone.encoder.pos_conv_embed):
        assert {p.dtype for p in part.parameters()} == {torch.float32}
    layer = backbone.encoder.layers[0]
    assert layer.attention.q_proj.weight.dtype == layer.feed_forward.output_dense.weight.dtype == torch.bfloat16
    assert layer.layer_norm.weight.dtype == mixed.model.lm_head.weight.dtype == torch.float32
    assert mixed.describe().startswith("torch bfloat16 (CNN, projection, positional conv float32)")
    wav = speechlike(2.0)
    a, b = unispeech.load_model(tiny_model_dir, dtype="float32").logits(wav, 16000), mixed.logits(wav, 16000)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert 0 < np.abs(a - b).max() and cosine.min() > 0.99


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc to see memory mappings")
@pytest.mark.parametrize("dtype", ["auto", "bfloat16"])
def test_mixed_precision_load_releases_the_weight_file(tiny_model_dir, tmp_path, monkeypatch, dtype):
    """Weights kept in fp32 beside converted bf16 ones must not keep the memory-mapped file alive: its pages
    would count in RSS on top of the converted copies (for Large: +1.2 GB, over the 3 GB bound)."""
    monkeypatch.setattr(unispeech.precision, "fast_bf16", lambda device: True)
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")  # a file no other test has mapped
    recognizer = unispeech.load_model(folder, dtype=dtype, backend="torch")
    weights = str((folder / "model.safetensors").resolve())
    assert weights not in Path("/proc/self/maps").read_text()
    assert recognizer.model.lm_head.weight.dtype == torch.float32  # some weights did keep their type


def test_bfloat16_stays_close_to_float32(tiny_model_dir):
    """The fast precision (encoder in bf16, CTC head in fp32) keeps every frame's logits within cosine 0.99 of
    float32, on any CPU. (transformers' own bf16 autocast reaches only 0.973 on CPUs with AMX: its positional
    conv hits the oneDNN kernel fault that `bf16_conv_is_exact` routes around.)"""
    fp32 = unispeech.load_model(tiny_model_dir, dtype="float32")
    bf16 = unispeech.load_model(tiny_model_dir, dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16 and bf16.model.lm_head.weight.dtype == torch.float32
    wav = speechlike(2.0)
    a, b = fp32.logits(wav, 16000), bf16.logits(wav, 16000)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99


@pytest.mark.parametrize("channels,groups,kernel", [(192, 16, 64), (64, 16, 128), (1024, 16, 128)])
def test_the_positional_conv_in_bfloat16_matches_float32(channels, groups, kernel):
    """Under bf16 autocast and with bf16 weights, the weight-normed grouped conv gives float32's output to bf16
    precision, forward and backward, also for the shapes whose bf16 kernel is wrong on AMX CPUs (2-12
    channels per group: the reproduction model, the test models)."""
    from unispeech.components import WeightNormConv1d

    torch.manual_seed(0)
    conv = WeightNormConv1d(channels, kernel, groups)
    x = torch.randn(2, channels, 300, requires_grad=True)
    ref = conv(x)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), x)

    def rel(y, target):
        return ((y.float() - target).norm() / target.norm()).item()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    (grad,) = torch.autograd.grad(y.float().square().sum(), x)
    assert rel(y, ref) < 0.01 and rel(grad, ref_grad) < 0.02
    low = WeightNormConv1d(channels, kernel, groups).bfloat16()
    low.load_state_dict(conv.state_dict())
    with torch.no_grad():
        assert rel(low(x.detach().bfloat16()), ref.detach()) < 0.01


@pytest.mark.parametrize("kernel, groups, frames", [(128, 16, 499), (128, 16, 385), (16, 4, 3), (15, 2, 1200)])
def test_the_float32_positional_conv_runs_through_ffts_in_inference_with_conv1ds_result(
    monkeypatch, kernel, groups, frames
):
    """In CPU inference the weight-normed conv runs as overlap-save FFTs (blocks of FFT_FRAMES): the same frames
    as conv1d to float32 rounding, for any length (one block, several, shorter than a block) and kernel."""
    from unispeech.components import WeightNormConv1d

    torch.manual_seed(0)
    conv = WeightNormConv1d(groups * 8, kernel, groups)
    x = torch.randn(2, groups * 8, frames)
    with torch.enable_grad():
        trained = conv(x)  # autograd on: conv1d itself
    with torch.no_grad():
        expected = F.conv1d(x, conv.weight(), conv.bias, padding=kernel // 2, groups=groups)
        monkeypatch.setattr(F, "conv1d", None)  # inference must not call it
        y, again = conv(x), conv(x)
    assert y.shape == expected.shape == trained.shape and torch.equal(y, again)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trained.detach(), expected, rtol=1e-6, atol=1e-6)


def test_a_kernel_too_wide_for_the_fft_blocks_still_gives_conv1ds_result():
    from unispeech.components import FFT_FRAMES, WeightNormConv1d

    conv = WeightNormConv1d(8, FFT_FRAMES // 2 + 1, 2)
    x = torch.randn(1, 8, 700)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), F.conv1d(x, conv.weight(), conv.bias, padding=conv.padding, groups=2))


@pytest.mark.parametrize("norm", ["layer", "group"])
@pytest.mark.parametrize("bias", [False, True])
def test_inference_runs_the_cnn_depth_first_with_the_same_result(monkeypatch, norm, bias):
    """On a CPU, inference runs the CNN piece by piece over each row's valid frames, each piece through every
    layer (after a group-norm layer, which needs whole rows): the valid frames equal training's whole-batch
    result at any piece size, and frames that only padding reaches are zero."""
    from unispeech.components import FeatureEncoder

    torch.manual_seed(0)
    encoder = FeatureEncoder([16, 16, 16, 16], [10, 3, 3, 2], [5, 2, 2, 2], bias, norm, "gelu").eval()
    wav, lengths = torch.randn(4, 3200), torch.tensor([3200, 2222, 117, 37])
    whole, whole_lengths = encoder(wav, lengths)  # autograd on: the whole-batch path
    assert whole_lengths.tolist()[2:] == [2, 0]
    for frames in (1, 7, 64):
        monkeypatch.setattr(FeatureEncoder, "CHUNK_FRAMES", frames)
        with torch.inference_mode():
            pieces, piece_lengths = encoder(wav, lengths)
        assert torch.equal(piece_lengths, whole_lengths) and pieces.shape == whole.shape
        for row, valid in enumerate(piece_lengths.tolist()):
            torch.testing.assert_close(pieces[row, :valid], whole[row, :valid].detach(), rtol=1e-5, atol=1e-5)
            assert not pieces[row, valid:].any()
