"""Pretraining defaults as microsoft/UniSpeech released them: quantizer input dropout, fairseq's
initialisation, negatives from masked frames where the original draws them so, stage 1 on labelled data only."""

import argparse
import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from unispeech.components import FeatureProjection
from unispeech.config import tiny_config
from unispeech.quantizer import GumbelQuantizer
from unispeech.train.losses import sample_masked_negatives
from unispeech.train.pretrain import (
    PretrainRecipe,
    draw_masks_and_negatives,
    init_pretrain_model,
    read_pretrain_recipe,
    resolve_negatives,
)

from .conftest import write_tiny_config

ROOT = Path(__file__).parents[1]
WIDE = dict(hidden_size=256, intermediate_size=1024, conv_dim=(128,) * 7, num_hidden_layers=2)  # enough weights


def test_the_quantizer_sees_features_dropped_at_0_1_as_the_scripts_pass(tmp_path):
    assert PretrainRecipe().dropout_features == 0.1  # --dropout-features 0.1 in both stage scripts
    model, _ = init_pretrain_model(write_tiny_config(tmp_path / "c.json"), PretrainRecipe(), 43)
    assert model.dropout_features.p == 0.1
    assert model.config.feat_quantizer_dropout == 0.1  # and the saved config says so


def test_stage_2_continues_with_the_recipe_s_feature_dropout(tmp_path):
    from unispeech.checkpoint import save_folder
    from unispeech.model import UniSpeechPretrainModel

    save_folder(tmp_path / "stage1", UniSpeechPretrainModel(tiny_config(feat_quantizer_dropout=0.0)), None)
    model, _ = init_pretrain_model(tmp_path / "stage1", PretrainRecipe(dropout_features=0.25), None)
    assert model.dropout_features.p == 0.25 and model.config.feat_quantizer_dropout == 0.25


def _std(t: torch.Tensor) -> float:
    return float(t.detach().float().std())


def test_random_initialisation_is_fairseq_s(tmp_path):
    model, _ = init_pretrain_model(write_tiny_config(tmp_path / "c.json", **WIDE), PretrainRecipe(), 43)
    convs = [m for m in model.backbone.feature_extractor.modules() if isinstance(m, nn.Conv1d)]
    for conv in convs:  # kaiming normal, fan-in: std sqrt(2 / fan_in)
        fan_in = conv.in_channels * conv.kernel_size[0]
        assert _std(conv.weight) == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
    linears = [
        m for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.startswith("backbone.encoder")
    ]
    assert len(linears) == 2 * 6
    for linear in linears:  # BERT's N(0, 0.02), zero bias
        assert _std(linear.weight) == pytest.approx(0.02, rel=0.1)
        assert torch.count_nonzero(linear.bias) == 0
    for head in (model.project_q, model.project_hid, model.ctc_proj):
        assert _std(head.weight) == pytest.approx(0.02, rel=0.15)
    (projection,) = [m for m in model.modules() if isinstance(m, FeatureProjection)]
    bound = 1 / math.sqrt(projection.projection.in_features)  # its own rule: uniform(-1/sqrt(in), 1/sqrt(in))
    assert float(projection.projection.weight.detach().abs().max()) <= bound
    assert _std(projection.projection.weight) == pytest.approx(bound / math.sqrt(3), rel=0.1)
    (quantizer,) = [m for m in model.modules() if isinstance(m, GumbelQuantizer)]
    assert _std(quantizer.weight_proj.weight) == pytest.approx(1.0, rel=0.1)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)


def test_fine_tuning_from_a_config_starts_from_the_same_initialisation(tmp_path):
    from unispeech.train.finetune import FinetuneRecipe, init_model

    model, _ = init_model(write_tiny_config(tmp_path / "c.json", **WIDE), FinetuneRecipe())
    assert _std(model.lm_head.weight) == pytest.approx(0.02, rel=0.2)
    conv = next(m for m in model.backbone.feature_extractor.modules() if isinstance(m, nn.Conv1d))
    assert _std(conv.weight) == pytest.approx(math.sqrt(2 / (conv.in_channels * conv.kernel_size[0])), rel=0.1)


def test_masked_negatives_come_from_the_same_utterance_s_masked_frames_and_never_the_positive():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 50, generator=gen) < 0.3
    mask[2] = False
    mask[2, 7] = mask[2, 30] = True  # two masked frames: each must draw the other
    rows, steps = mask.nonzero(as_tuple=True)
    negatives = sample_masked_negatives(rows, steps, 20, gen)
    assert negatives.shape == (rows.numel(), 20)
    assert bool(mask[rows[:, None].expand_as(negatives), negatives].all())  # never an unmasked frame
    assert not bool((negatives == steps[:, None]).any())  # never the positive itself
    assert set(negatives[rows == 2].flatten().tolist()) == {7, 30}
    assert torch.equal(negatives[(rows == 2) & (steps == 7)], torch.full((1, 20), 30))


def test_masked_negatives_cover_every_other_masked_frame():
    rows = torch.zeros(5, dtype=torch.long)
    steps = torch.tensor([2, 3, 9, 10, 11])
    negatives = sample_masked_negatives(rows, steps, 400, torch.Generator().manual_seed(1))
    for i, step in enumerate(steps.tolist()):
        assert set(negatives[i].tolist()) == set(steps.tolist()) - {step}


def test_the_recipe_draws_masked_negatives_when_asked_and_all_frame_negatives_by_default():
    lengths = torch.tensor([120, 90])
    masked = read_pretrain_recipe(None, negatives="masked", num_negatives=30)
    mask, rows, steps, negatives, _ = draw_masks_and_negatives(masked, lengths, batch_index=3)
    assert bool(mask[rows[:, None].expand_as(negatives), negatives].all())
    everywhere = read_pretrain_recipe(None, negatives="all", num_negatives=30)
    mask, rows, steps, negatives, _ = draw_masks_and_negatives(everywhere, lengths, batch_index=3)
    assert not bool(mask[rows[:, None].expand_as(negatives), negatives].all())
    with pytest.raises(ValueError, match="negatives must be one of auto, all, masked"):
        read_pretrain_recipe(None, negatives="some")


def test_auto_negatives_follow_the_released_stages():
    """Stage 1 (labelled, --negatives-from-everywhere) samples all frames; stage 2 and wav2vec 2.0 masked ones."""
    assert resolve_negatives(PretrainRecipe(), labelled=True).negatives == "all"
    assert resolve_negatives(PretrainRecipe(), labelled=False).negatives == "masked"
    assert resolve_negatives(PretrainRecipe(negatives="all"), labelled=False).negatives == "all"


def _reproduction():
    spec = importlib.util.spec_from_file_location("reproduction", ROOT / "recipes" / "reproduction.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reproduction_rows() -> dict:
    module = _reproduction()
    return {name: stages for name, _, stages in module.ROWS[: module.PAPER_ROWS]}


def test_the_reproduction_runs_every_step_where_and_in_the_regime_asked(tmp_path, monkeypatch):
    """--device reaches every pretraining, fine-tuning and evaluation step; --pretrain-batch-seconds and
    --pretrain-lr reach the pretraining recipe (the GPU probes' regime, docs/reproduction.md)."""
    module, ran = _reproduction(), []
    monkeypatch.setattr(module, "step", lambda marker, cmd: ran.append(cmd) or {"seconds": 1, "command": ""})
    monkeypatch.setattr(module, "run", lambda cmd: ran.append(cmd))
    manifests = {k: tmp_path / f"{k}.jsonl" for k in ("source", "target", "all", "finetune", "valid", "test")}
    args = argparse.Namespace(pretrain_batch_seconds=640.0, pretrain_lr=2e-3)
    stages = dict((name, stages) for name, _, stages in module.ROWS)["unispeech-plus"]
    flags = device = ["--device", "cuda"]
    init, _, _ = module.pretrain_row(tmp_path, stages, 1000, manifests, flags, args)
    with pytest.raises(FileNotFoundError):  # no evaluation report: nothing ran
        module.finetune_row(tmp_path, init, 2, 100, manifests, flags, device)
    assert [cmd[3] for cmd in ran] == ["pretrain", "pretrain", "finetune", "evaluate"]
    assert all(cmd[cmd.index("--device") + 1] == "cuda" for cmd in ran)
    recipe = read_pretrain_recipe(tmp_path / "pretrain-0.toml")
    assert recipe.train.max_batch_seconds == 640.0 and recipe.train.lr == 2e-3


def test_the_reproduction_s_unispeech_rows_pretrain_stage_1_on_labelled_source_only():
    rows = _reproduction_rows()
    for name in ("unispeech", "unispeech-r0", "unispeech-plus"):
        first = rows[name][0]
        assert first["labeled"] == "source" and "unlabeled" not in first, name
    assert [s.get("unlabeled") for s in rows["unispeech-plus"]] == [None, "target"]  # target audio in stage 2 only
    assert "labeled" not in rows["unispeech-plus"][1]
