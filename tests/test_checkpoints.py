"""Training checkpoints and starting points that cannot silently lie: every weight layout initialises
fine-tuning, resume refuses changed settings, falls back past a damaged checkpoint, and says when there is
nothing to do."""

import json

import pytest
import torch
from safetensors.torch import load_file

from unispeech.train.finetune import finetune, load_recipe

from .conftest import TOY, make_reference, run_main, write_tiny_config, write_tone_dataset

TOY = {**TOY, "save_every": 2}


def write_sharded_bin(folder, shards: int = 3) -> None:
    """The layout older transformers wrote: pytorch_model-0000N-of-0000M.bin + pytorch_model.bin.index.json."""
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {k: state[k] for k in keys[i::shards]}
        torch.save(part, folder / name)
        weight_map.update({k: name for k in part})
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def test_fine_tuning_from_a_sharded_bin_checkpoint_keeps_its_weights(toy, tmp_path):
    manifest, _ = toy
    init = tmp_path / "init"
    make_reference(init, hidden_size=64, num_attention_heads=4, intermediate_size=128)
    reference = load_file(init / "model.safetensors")
    write_sharded_bin(init)
    recipe = load_recipe(None, max_updates=1, **{**TOY, "freeze_encoder_updates": 1})  # the CNN is frozen throughout
    out = finetune(init, manifest, tmp_path / "out", recipe=recipe, progress=False)
    trained = load_file(out / "model.safetensors")
    cnn = [k for k in reference if ".feature_extractor." in k]
    assert cnn and all(torch.equal(trained[k], reference[k]) for k in cnn)  # random init would differ


def test_init_from_a_folder_without_weights_is_refused(toy, tmp_path, capsys):
    manifest, config = toy
    folder = tmp_path / "no-weights"
    folder.mkdir()
    (folder / "config.json").write_text(config.read_text())
    code, _, err = run_main(
        [
            "finetune",
            "--init",
            str(folder),
            "--train",
            str(manifest),
            "--out",
            str(tmp_path / "out"),
            "--max-updates",
            "1",
        ],
        capsys,
    )
    assert code == 2 and "no weights" in err and str(folder / "config.json") in err


def train_cli(manifest, config, out, *extra) -> list[str]:
    return [
        "finetune",
        "--init",
        str(config),
        "--train",
        str(manifest),
        "--out",
        str(out),
        "--freeze-encoder-updates",
        "0",
        "--save-every",
        "2",
        "--max-batch-seconds",
        "8",
        *extra,
    ]


def test_resume_with_a_changed_batch_size_is_refused_and_more_updates_are_allowed(toy, tmp_path, capsys):
    manifest, config = toy
    out = tmp_path / "out"
    assert run_main(train_cli(manifest, config, out, "--max-updates", "4"), capsys)[0] == 0
    changed = train_cli(manifest, config, out, "--max-updates", "6", "--resume")
    changed[changed.index("--max-batch-seconds") + 1] = "5"
    code, _, err = run_main(changed, capsys)
    assert code == 2 and "max_batch_seconds: 8.0 -> 5.0" in err and "checkpoint-0000004.pt" in err
    code, _, err = run_main(train_cli(manifest, config, out, "--max-updates", "6", "--resume"), capsys)
    assert code == 0 and "resuming from checkpoint-0000004.pt" in err
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*.pt"))[-1] == "checkpoint-0000006.pt"


def test_resume_when_already_done_says_there_is_nothing_to_do(toy, tmp_path, capsys):
    manifest, config = toy
    out = tmp_path / "out"
    assert run_main(train_cli(manifest, config, out, "--max-updates", "4"), capsys)[0] == 0
    code, _, err = run_main(train_cli(manifest, config, out, "--max-updates", "3", "--resume"), capsys)
    assert code == 0 and "nothing to do" in err and "update 4" in err


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped bits"])
def test_resume_falls_back_past_a_damaged_latest_checkpoint(toy, tmp_path, capsys, damage):
    manifest, config = toy
    out = tmp_path / "out"
    assert run_main(train_cli(manifest, config, out, "--max-updates", "4"), capsys)[0] == 0
    latest = out / "checkpoints" / "checkpoint-0000004.pt"
    data = bytearray(latest.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:  # 4 KB in the middle of the tensors: torch.load alone would read this without complaint
        middle = len(data) // 2
        data[middle : middle + 4096] = bytes(b ^ 0x5A for b in data[middle : middle + 4096])
    latest.write_bytes(bytes(data))
    code, _, err = run_main(train_cli(manifest, config, out, "--max-updates", "5", "--resume"), capsys)
    assert code == 0, err
    assert str(latest) in err and "resuming from checkpoint-0000002.pt" in err


def test_pretraining_logs_validation_figures(tmp_path):
    from unispeech.train.log import validation_rows
    from unispeech.train.pretrain import pretrain, read_pretrain_recipe

    manifest = write_tone_dataset(tmp_path / "data", n=12)
    held_out = write_tone_dataset(tmp_path / "held-out", n=4, seed=1)
    config = write_tiny_config(
        tmp_path / "config.json",
        num_codevector_groups=2,
        num_codevectors_per_group=8,
        codevector_dim=16,
        proj_codevector_dim=16,
    )
    recipe = read_pretrain_recipe(
        None,
        max_updates=4,
        valid_every=2,
        max_batch_seconds=8,
        num_negatives=5,
        mask_length=3,
        mask_prob=0.4,
        save_every=0,
    )
    out = pretrain(config, tmp_path / "pt", labeled=manifest, recipe=recipe, progress=False, valid_data=held_out)
    rows = validation_rows(out)
    assert [r["step"] for r in rows] == [2, 4]
    for r in rows:
        assert 0 <= r["valid_accuracy"] <= 1 and r["valid_contrastive"] > 0 and r["valid_utterances"] == 4
        assert 1 <= r["valid_perplexity"] <= 16  # of the hard codes: at most G x V


def test_resume_reads_a_checkpoint_from_before_a_setting_existed_with_that_settings_default(toy, tmp_path, capsys):
    """A checkpoint written before a release added a setting (here [codec]'s level ranges and the
    keep_last option) resumes under the new release, which reads the missing settings as their defaults."""
    import hashlib

    manifest, config = toy
    out, recipe = tmp_path / "out", tmp_path / "codec.toml"
    recipe.write_text("[codec]\nprob = 0.5\nopus = 0.5\n")
    args = train_cli(manifest, config, out, "--recipe", str(recipe))
    assert run_main([*args, "--max-updates", "2"], capsys)[0] == 0
    path = out / "checkpoints" / "checkpoint-0000002.pt"
    state = torch.load(path, weights_only=False)
    assert set(state["meta"]["recipe"]["codec"]) > {"prob", "opus"} and "keep_last" in state["options"]
    state["meta"]["recipe"]["codec"] = {"prob": 0.5, "opus": 0.5}  # as the release before the ranges wrote it
    del state["options"]["keep_last"]
    torch.save(state, path)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "\n")
    code, _, err = run_main([*args, "--max-updates", "3", "--resume"], capsys)
    assert code == 0 and "resuming from checkpoint-0000002.pt" in err
    recipe.write_text("[codec]\nprob = 0.5\nopus = 0.5\nopus_levels = [0.9, 1]\n")  # a real change is still refused
    code, _, err = run_main([*args, "--max-updates", "4", "--resume"], capsys)
    assert code == 2 and "opus_levels" in err
