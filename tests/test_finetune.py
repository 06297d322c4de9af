"""Fine-tuning: learns a toy phone task, resumes exactly, runs under torchrun, refuses bad input clearly."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import unispeech
from unispeech.augment import BatchCodec, BatchNoise
from unispeech.train.finetune import FinetuneRecipe, finetune, load_recipe
from unispeech.train.log import read_log

from .conftest import TOY, torchrun_unispeech


def log_rows(out: Path) -> list[dict]:
    return read_log(out)


def test_learns_the_toy_task_and_recovers_its_labels(toy, tmp_path):
    manifest, config = toy
    out = finetune(
        config,
        manifest,
        tmp_path / "out",
        valid_data=manifest,
        recipe=load_recipe(None, max_updates=300, **TOY),
        progress=False,
    )
    losses = [r["loss"] for r in log_rows(out) if "loss" in r]
    assert losses[-1] < 0.05 * losses[0]
    assert [r["valid_per"] for r in log_rows(out) if "valid_per" in r][-1] < 0.05
    model = unispeech.load_model(out)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for dtype in ("float32", "bfloat16"):
        model = unispeech.load_model(out, dtype=dtype)
        correct = sum(model.transcribe(manifest.parent / r["audio"]).text == r["phones"] for r in rows)
        assert correct >= 0.95 * len(rows), dtype
    assert (out / "training.png").stat().st_size > 0


def test_output_loads_in_transformers(toy, tmp_path):
    import transformers

    manifest, config = toy
    out = finetune(config, manifest, tmp_path / "out", recipe=load_recipe(None, max_updates=5, **TOY), progress=False)
    hf = transformers.AutoModelForCTC.from_pretrained(out).eval()
    ours = unispeech.load_model(out, dtype="float32")
    wav = ours.prepare(manifest.parent / "clips" / "0.wav")
    with torch.no_grad():
        ref = hf(torch.from_numpy(wav)[None]).logits[0].numpy()
    assert abs(ref - ours.logits(manifest.parent / "clips" / "0.wav")).max() < 1e-4


def test_resume_continues_exactly(toy, tmp_path):
    """Dropout, masks, layer drop, batch noise and codecs drawn after a resume are those of an uninterrupted run."""
    manifest, config = toy
    random_parts = {"dropout": 0.1, "mask_time_prob": 0.3, "mask_time_length": 3, "layerdrop": 0.2}
    random_parts["noise"] = BatchNoise(prob=0.5, snr_db=(5.0, 20.0), babble=0.5)
    random_parts["codec"] = BatchCodec(prob=0.5, opus=0.5)
    recipe = load_recipe(None, max_updates=40, **{**TOY, **random_parts})
    straight = finetune(config, manifest, tmp_path / "straight", recipe=recipe, progress=False)
    half = load_recipe(None, max_updates=40, stop_after=20, **{**TOY, **random_parts})
    finetune(config, manifest, tmp_path / "resumed", recipe=half, progress=False)
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("*.pt"))[-1] == "checkpoint-0000020.pt"
    finetune(config, manifest, tmp_path / "resumed", recipe=recipe, resume=True, progress=False)
    a, b = load_file(straight / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    straight_losses = {r["step"]: r["loss"] for r in log_rows(straight) if "loss" in r}
    resumed_losses = {r["step"]: r["loss"] for r in log_rows(tmp_path / "resumed") if "loss" in r}
    assert all(abs(straight_losses[s] - resumed_losses[s]) < 1e-5 for s in straight_losses)


def run_cli(args, env=None, launcher=None):
    cmd = (launcher or [sys.executable, "-m", "unispeech"]) + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_two_processes_match_one_with_the_same_global_batch(toy, tmp_path):
    manifest, config = toy
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        "mask_time_prob = 0.3\nmask_time_length = 3\nlayerdrop = 0.0\ndropout = 0.0\n"
        "[train]\nlr = 3e-3\nmax_batch_seconds = 4\nsave_every = 100\nvalid_every = 100\nlog_every = 1\n"
    )
    common = [
        "finetune",
        "--init",
        str(config),
        "--train",
        str(manifest),
        "--recipe",
        str(recipe),
        "--max-updates",
        "12",
        "--freeze-encoder-updates",
        "0",
    ]
    one = run_cli(common + ["--out", str(tmp_path / "one"), "--grad-accum", "2"])
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = torchrun_unispeech(29533)
    two = run_cli(common + ["--out", str(tmp_path / "two")], env={"OMP_NUM_THREADS": "1"}, launcher=torchrun)
    assert two.returncode == 0, two.stderr[-2000:]
    losses_one = [r["loss"] for r in log_rows(tmp_path / "one") if "loss" in r]
    losses_two = [r["loss"] for r in log_rows(tmp_path / "two") if "loss" in r]
    assert len(losses_one) == len(losses_two) == 12
    assert losses_one == pytest.approx(losses_two, rel=1e-3)
    # Summation order differs between the layouts; Adam turns those float differences in near-zero
    # gradients into small parameter differences (each update moves a weight by up to lr = 3e-3).
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 3e-3


def test_bad_inputs_have_clear_messages(toy, tmp_path):
    manifest, config = toy
    common = ["--init", str(config), "--max-updates", "2"]
    (tmp_path / "empty.jsonl").write_text("")
    done = run_cli(["finetune", *common, "--train", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "o1")])
    assert done.returncode == 2 and "needs an audio column" in done.stderr and "Traceback" not in done.stderr

    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(manifest.read_text().replace('"ɑ', '"th ɑ'))
    shutil.copytree(manifest.parent / "clips", tmp_path / "clips")
    done = run_cli(["finetune", *common, "--train", str(foreign), "--out", str(tmp_path / "o2")])
    assert done.returncode == 2 and "not in the vocabulary: th" in done.stderr

    unreadable = tmp_path / "unreadable.jsonl"
    unreadable.write_text(manifest.read_text().replace("clips/", "nowhere/"))
    done = run_cli(["finetune", *common, "--train", str(unreadable), "--out", str(tmp_path / "o3")])
    assert done.returncode == 2 and "none of the 40 clips could be read" in done.stderr

    done = run_cli(["finetune", *common, "--train", str(manifest), "--out", str(tmp_path / "o4"), "--resume"])
    assert done.returncode == 2 and "no checkpoint" in done.stderr


def test_init_with_another_head_size_reinitialises_it(toy, tmp_path, capsys):
    manifest, config = toy
    first = finetune(
        config, manifest, tmp_path / "first", recipe=load_recipe(None, max_updates=3, **TOY), progress=False
    )
    vocab = json.loads((first / "vocab.json").read_text())
    vocab["extra"] = len(vocab)  # a 44-token vocabulary against a 43-output head
    (first / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    cfg = json.loads((first / "config.json").read_text())
    cfg["vocab_size"] = 44
    (first / "config.json").write_text(json.dumps(cfg))
    second = finetune(
        first, manifest, tmp_path / "second", recipe=load_recipe(None, max_updates=3, **TOY), progress=False
    )
    assert "head is re-initialised" in capsys.readouterr().err
    assert unispeech.load_model(second, backend="torch").model.lm_head.out_features == 44


def test_recipe_defaults_are_the_papers():
    r = FinetuneRecipe()
    assert (r.train.lr, r.train.betas, r.train.eps, r.train.max_updates) == (2e-5, (0.9, 0.98), 1e-8, 20000)
    assert (r.mask_time_prob, r.mask_time_length, r.mask_channel_prob, r.mask_channel_length) == (0.75, 10, 0.25, 64)
    assert (r.freeze_encoder_updates, r.layerdrop, r.dropout, r.train.final_lr_scale) == (2000, 0.1, 0.1, 0.05)
    with pytest.raises(ValueError, match="unknown recipe setting"):
        load_recipe(None, no_such_key=1)


@pytest.mark.parametrize(
    "table, expected",
    [
        ("[noise]\nprob = 1.0\nsnr_db = [0, 5]\nbabble = 0.5\n", BatchNoise(prob=1.0, snr_db=(0, 5), babble=0.5)),
        ("[codec]\nprob = 1.0\nopus = 0.5\nopus_levels = [0.9, 1]\n", BatchCodec(1.0, 0.5, opus_levels=(0.9, 1.0))),
    ],
    ids=["noise", "codec"],
)
def test_a_noise_or_codec_table_in_the_recipe_changes_every_batch_drawn(toy, tmp_path, table, expected):
    manifest, config = toy
    name = type(expected).__name__.removeprefix("Batch").lower()
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(table)
    changed = load_recipe(recipe, max_updates=2, **TOY)
    assert getattr(changed, name) == expected
    plain = finetune(
        config, manifest, tmp_path / "plain", recipe=load_recipe(None, max_updates=2, **TOY), progress=False
    )
    drawn = finetune(config, manifest, tmp_path / name, recipe=changed, progress=False)
    first = [next(r["loss"] for r in log_rows(out) if r.get("step") == 1) for out in (plain, drawn)]
    assert first[0] != pytest.approx(first[1], rel=1e-4)
    recipe.write_text(f"[{name}]\nprob = 1.0\nloudness = 3\n")
    with pytest.raises(ValueError, match="unknown recipe setting"):
        load_recipe(recipe)
    recipe.write_text(f"{name} = 3\n")
    with pytest.raises(ValueError, match=rf"{name} must be a \[{name}\] table"):
        load_recipe(recipe)


def test_recipe_intervals_zero_means_only_at_the_end_and_negatives_are_refused(toy, tmp_path):
    manifest, config = toy
    recipe = load_recipe(None, max_updates=3, **{**TOY, "valid_every": 0, "save_every": 0})
    out = finetune(config, manifest, tmp_path / "o", valid_data=manifest, recipe=recipe, progress=False)
    assert [r["step"] for r in log_rows(out) if "valid_per" in r] == [3]
    assert [p.name for p in (out / "checkpoints").glob("checkpoint-*.pt")] == ["checkpoint-0000003.pt"]
    for bad in (dict(valid_every=-1), dict(log_every=0), dict(max_updates=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            load_recipe(None, **bad)


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(toy, tmp_path):
    import signal
    import time

    manifest, config = toy
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "unispeech",
        "finetune",
        "--init",
        str(config),
        "--train",
        str(manifest),
        "--out",
        str(out),
        "--max-updates",
        "100000",
        "--freeze-encoder-updates",
        "0",
        "--save-every",
        "100000",
        "--batch-seconds",
        "8",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (
        (out / "train_log.jsonl").is_file() and (out / "train_log.jsonl").read_text().count("\n") >= 2
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-1000:]
    assert "saved a checkpoint at update" in err and "Traceback" not in err
    saved = sorted((out / "checkpoints").glob("checkpoint-*.pt"))
    assert saved and not list((out / "checkpoints").glob(".*.tmp"))
    step = int(saved[-1].stem.split("-")[1])
    assert step >= 10
    done = run_cli(
        [
            "finetune",
            "--init",
            str(config),
            "--train",
            str(manifest),
            "--out",
            str(out),
            "--max-updates",
            str(step + 3),
            "--freeze-encoder-updates",
            "0",
            "--batch-seconds",
            "8",
            "--resume",
        ]
    )
    assert done.returncode == 0, done.stderr[-1000:]
    assert f"resuming from {saved[-1].name}" in done.stderr
    assert sorted((out / "checkpoints").glob("checkpoint-*.pt"))[-1].name == f"checkpoint-{step + 3:07d}.pt"


def test_a_run_of_non_finite_gradients_stops_training_with_a_clear_error(tmp_path):
    from unispeech.train.batches import Example
    from unispeech.train.loop import MAX_NONFINITE_UPDATES, train
    from unispeech.train.recipe import TrainOptions

    class NaNAfterFive:  # finite gradients for 5 updates, then NaN from every batch
        model = torch.nn.Linear(4, 1)

        def compute_loss(self, model, batch, step):
            loss = model(batch.wav[:, :4]).sum() * (float("nan") if step >= 5 else 1.0)
            return loss, 1.0, {}

        def validate(self, model):
            return {}

        def export(self, model, folder):
            pass

    examples = [Example(str(i), (torch.randn(1600) * 3000).short().numpy(), []) for i in range(8)]
    options = TrainOptions(max_updates=100, lr=1e-3, max_batch_seconds=0.2, save_every=2, log_every=1)
    with pytest.raises(RuntimeError, match="gradients of the last 20 updates were not finite"):
        train(NaNAfterFive(), examples, options, tmp_path, progress_bar=False)
    rows = read_log(tmp_path)
    assert rows[-1]["skipped_updates"] == MAX_NONFINITE_UPDATES - 1  # logged before the last one stopped it
    assert sorted(tmp_path.glob("checkpoints/checkpoint-*.pt"))  # the checkpoints written before are kept


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "recipes").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_reads_as_a_fine_tuning_or_a_pretraining_recipe(path):
    from unispeech.train.pretrain import read_pretrain_recipe

    refusals = []
    for read in (load_recipe, read_pretrain_recipe):
        try:
            recipe = read(path)
        except ValueError as e:
            refusals.append(str(e))
            continue
        assert recipe.noise is None or isinstance(recipe.noise, BatchNoise)
        assert recipe.codec is None or isinstance(recipe.codec, BatchCodec)
        return
    pytest.fail(f"{path.name} reads as neither kind of recipe: {refusals}")
