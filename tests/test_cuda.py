"""The GPU path: inference and both training commands on CUDA agree with the CPU. Where torch has no CUDA device
these tests skip, and one test checks instead that asking for one is a clear error."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from unispeech import load_model
from unispeech.train.batches import batch_to, collate, load_examples
from unispeech.train.log import read_log
from unispeech.train.pretrain import PretrainTask, init_pretrain_model, pretrain, read_pretrain_recipe

from .conftest import run_main, speechlike, write_tiny_config, write_tone_dataset

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (tests/test_cuda.py runs on a GPU)")
PRETRAIN = dict(max_batch_seconds=8, num_negatives=10, mask_length=3, mask_prob=0.4, log_every=1, valid_every=3)
CODEBOOK = dict(num_codevector_groups=2, num_codevectors_per_group=16, codevector_dim=32, proj_codevector_dim=32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_a_gpu_this_machine_lacks_is_a_clear_error(tmp_path, tiny_model_dir, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, speechlike(1.0), 16000)
    code, _, err = run_main(["transcribe", "--model", str(tiny_model_dir), "--device", "cuda", str(wav)], capsys)
    assert code == 2 and "--device cuda" in err and "use --device cpu" in err
    manifest = write_tone_dataset(tmp_path / "data", n=4)
    config = write_tiny_config(tmp_path / "config.json", **CODEBOOK)
    argv = ["pretrain", "--init", str(config), "--unlabeled", str(manifest), "--out", str(tmp_path / "pt")]
    code, _, err = run_main([*argv, "--device", "cuda"], capsys)
    assert code == 2 and "--device cuda" in err and not (tmp_path / "pt").exists()


def test_an_unknown_device_is_a_clear_error(capsys):
    code, _, err = run_main(["info", "--device", "tpu"], capsys)
    assert code == 2 and "expected cpu, cuda or cuda:N" in err


@cuda
def test_transcription_on_cuda_gives_the_cpu_phones(tiny_model_dir):
    wavs = [speechlike(s, seed=k) for k, s in enumerate((1.0, 3.5, 7.0))]
    cpu = load_model(tiny_model_dir, dtype="float32")
    gpu = load_model(tiny_model_dir, device="cuda", dtype="float32")
    assert gpu.device.type == "cuda"
    for wav in wavs:
        a, b = cpu.logits(wav, 16000), gpu.logits(wav, 16000)
        assert np.abs(a - b).max() < 1e-3 * max(1.0, np.abs(a).max())  # cuDNN's conv may use TF32
        assert cpu.transcribe(wav, 16000).phones == gpu.transcribe(wav, 16000).phones


@cuda
def test_pretraining_losses_on_cuda_equal_the_cpu_ones(tmp_path):
    """Held-out figures (eval mode: hard codes, fixed masks and negatives) of the same weights on both devices;
    labelled rows too, so the CTC term and the loss weights run there."""
    manifest = write_tone_dataset(tmp_path / "data", n=6)
    config = write_tiny_config(tmp_path / "config.json", **CODEBOOK)
    recipe = read_pretrain_recipe(None, **PRETRAIN)
    from unispeech.data import load_dataset, with_phones
    from unispeech.vocab import phone_vocabulary

    utts = with_phones(load_dataset(manifest, split="train")[0], "ky")
    vocab = phone_vocabulary(sorted({p for u in utts for p in u.phones}), lang="ky")
    model, _ = init_pretrain_model(config, recipe, len(vocab))
    examples = load_examples(utts, vocab, progress=False)[0]
    batch = collate(examples, index=0)
    figures = {}
    for device in ("cpu", "cuda"):
        task = PretrainTask(model.to(device), vocab, recipe)
        model.eval()
        with torch.no_grad():
            loss, masked, stats = task.losses(model, batch_to(batch, device), step=0)
        figures[device] = {"loss": float(loss), "masked": masked, **stats}
    assert figures["cpu"]["masked"] == figures["cuda"]["masked"] > 0
    for key in ("loss", "contrastive", "ctc", "accuracy", "perplexity"):
        assert figures["cuda"][key] == pytest.approx(figures["cpu"][key], rel=2e-3, abs=1e-3), key


@cuda
def test_pretraining_on_cuda_resumes_and_hands_over_to_finetuning_there(tmp_path):
    manifest = write_tone_dataset(tmp_path / "data", n=12)
    config = write_tiny_config(tmp_path / "config.json", **CODEBOOK)
    first = read_pretrain_recipe(None, max_updates=6, save_every=3, stop_after=3, **PRETRAIN)
    common = dict(labeled=manifest, unlabeled=manifest, valid_data=manifest, progress=False, device="cuda")
    out = pretrain(config, tmp_path / "pt", recipe=first, **common)
    again = read_pretrain_recipe(None, max_updates=6, save_every=3, **PRETRAIN)
    out = pretrain(config, tmp_path / "pt", recipe=again, resume=True, **common)
    rows = read_log(out)
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == sorted(steps) and steps[-1] == 6 and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert [r["step"] for r in rows if "valid_accuracy" in r] == [3, 6]
    from unispeech.train.finetune import finetune, load_recipe

    tuned = finetune(
        out,
        manifest,
        tmp_path / "ft",
        valid_data=manifest,
        recipe=load_recipe(None, max_updates=4, max_batch_seconds=8, valid_every=2, freeze_encoder_updates=0),
        progress=False,
        device="cuda",
    )
    assert [r["step"] for r in read_log(tuned) if "valid_per" in r] == [2, 4]
    assert json.loads((tuned / "config.json").read_text())["architectures"] == ["UniSpeechForCTC"]
    wav = speechlike(2.0)  # barely trained: near ties, so the logits are compared, in float32 on both
    gpu = load_model(tuned, device="cuda", dtype="float32").logits(wav, 16000)
    cpu = load_model(tuned, dtype="float32").logits(wav, 16000)
    assert np.abs(gpu - cpu).max() < 1e-3 * max(1.0, np.abs(cpu).max())
