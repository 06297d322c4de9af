"""Shared fixtures: tiny reference checkpoints written by transformers, and audio written to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unispeech.config import tiny_config

PHONES = list(json.loads((Path(__file__).parents[1] / "unispeech" / "data" / "phones_ky.json").read_text()))
VOCAB = {**{p: i for i, p in enumerate(PHONES)}, "<pad>": 39, "<s>": 40, "</s>": 41, "<unk>": 42}
TOKENIZER_CONFIG = {
    "unk_token": "<unk>",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "phonemizer_lang": "ky",
    "phonemizer_backend": "espeak",
    "do_lower_case": False,
    "tokenizer_class": "Wav2Vec2PhonemeCTCTokenizer",
}


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights far from transformers' small init, so that a wrong op shows in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm.weight" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 16
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / fan_in) ** 0.5)


def make_reference(
    folder: Path,
    *,
    model_type: str = "unispeech",
    safe: bool = True,
    seed: int = 0,
    shard: str | None = None,
    **overrides,
):
    """A randomly initialised transformers CTC model saved as a Hugging Face folder with the ky vocab."""
    import transformers

    hf = {k: v for k, v in tiny_config(**overrides).to_hf_dict().items() if k != "architectures"}
    hf["model_type"] = model_type
    if model_type == "unispeech":
        model = transformers.UniSpeechForCTC(transformers.UniSpeechConfig(**hf))
    else:
        model = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**hf))
    randomize(model.eval(), seed)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, **kwargs)
    if not safe:  # transformers 5 writes only safetensors; older releases wrote this pickle
        from safetensors.torch import load_file

        torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    (folder / "vocab.json").write_text(json.dumps(VOCAB, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_normalize": True,
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1,
                "padding_side": "right",
                "padding_value": 0,
                "return_attention_mask": True,
                "sampling_rate": 16000,
            }
        )
    )
    return model


def normalized(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def speechlike(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Noise with a slowly varying envelope and pitch: enough structure for random models to vary over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6)) ** 2
    tone = np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (0.3 * envelope * (tone + 0.3 * rng.standard_normal(t.size))).astype(np.float32)


@pytest.fixture(autouse=True, scope="session")
def onnx_cache(tmp_path_factory):
    """ONNX exports made by the tests go to a cache of their own (and reach subprocesses through the env)."""
    import os

    os.environ["UNISPEECH_CACHE"] = str(tmp_path_factory.mktemp("unispeech-cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-layer")
    make_reference(folder)
    return folder


TONES = {"ɑ": 300, "S": 700, "m": 1200, "i": 2000, "q": 3200}


def write_tone_dataset(folder: Path, n: int = 40, seed: int = 0) -> Path:
    """A toy phone task: each phone is a tone of its own pitch. Returns a JSONL manifest with the labels."""
    import soundfile as sf

    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        seq = list(rng.choice(list(TONES), size=rng.integers(2, 5)))
        parts = [np.zeros(1600)]
        for p in seq:
            t = np.arange(int(rng.uniform(0.08, 0.14) * 16000)) / 16000
            parts += [0.5 * np.sin(2 * np.pi * TONES[p] * t), np.zeros(int(rng.uniform(0.03, 0.06) * 16000))]
        wav = np.concatenate(parts)
        wav = wav + 0.01 * rng.standard_normal(wav.size)
        sf.write(folder / "clips" / f"{k}.wav", wav.astype(np.float32), 16000)
        rows.append({"audio": f"clips/{k}.wav", "phones": " ".join(seq)})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return manifest


def write_tiny_config(path: Path, **overrides) -> Path:
    dims = dict(num_hidden_layers=1, hidden_size=64, intermediate_size=128, conv_dim=(32,) * 7)
    dims.update(overrides)
    path.write_text(json.dumps(tiny_config(**dims).to_hf_dict()), encoding="utf-8")
    return path


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """`unispeech ARGV` in-process: exit code, stdout, stderr; never a traceback."""
    from unispeech.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return stop.value.code, out, err


# A toy fine-tuning task (tones as phones) and the recipe settings that learn it in a few hundred updates.
TOY = dict(
    mask_time_prob=0.0,
    mask_channel_prob=0.0,
    layerdrop=0.0,
    dropout=0.0,
    freeze_encoder_updates=0,
    lr=3e-3,
    max_batch_seconds=8,
    valid_every=100,
    save_every=50,
    log_every=1,
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_tone_dataset(root), write_tiny_config(root / "config.json")


def torchrun_unispeech(port: int, processes: int = 2) -> list[str]:
    """The launcher prefix for `unispeech` under torchrun: `processes` ranks on this machine (gloo on CPU)."""
    import sys

    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_port",
        str(port),
        "-m",
        "unispeech",
    ]
