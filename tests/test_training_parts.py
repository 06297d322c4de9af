"""The training loop's parts, each on its own: the tri-stage schedule, span masking, batch planning, collate,
recipe reading; and the tier formats (tsv, ctm, TextGrid) that alignment and transcription write."""

import math

import numpy as np
import pytest
import torch

from unispeech.formats import format_tiers
from unispeech.masking import MaskOptions, SpanMasker, span_mask
from unispeech.train.batches import Example, collate, load_examples, plan_batches
from unispeech.train.finetune import FinetuneRecipe
from unispeech.train.loop import tri_stage
from unispeech.train.recipe import TrainOptions, read_recipe

SCHEDULE = TrainOptions(
    max_updates=100, warmup_fraction=0.1, hold_fraction=0.4, decay_fraction=0.5, init_lr_scale=0.01, final_lr_scale=0.05
)


def test_tri_stage_warms_up_linearly_holds_then_decays_exponentially():
    assert tri_stage(0, SCHEDULE) == pytest.approx(0.01)
    assert tri_stage(5, SCHEDULE) == pytest.approx(0.01 + 0.99 * 0.5)
    assert all(tri_stage(s, SCHEDULE) == 1.0 for s in range(10, 50))
    assert tri_stage(75, SCHEDULE) == pytest.approx(math.exp(math.log(0.05) * 0.5))  # halfway: sqrt(final)
    assert tri_stage(100, SCHEDULE) == tri_stage(1000, SCHEDULE) == pytest.approx(0.05)
    decay = [tri_stage(s, SCHEDULE) for s in range(50, 101)]
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_tri_stage_with_a_zero_final_scale_decays_linearly_to_zero():
    linear = TrainOptions(
        max_updates=10, warmup_fraction=0.0, hold_fraction=0.0, decay_fraction=1.0, final_lr_scale=0.0
    )
    assert [round(tri_stage(s, linear), 6) for s in range(0, 11, 5)] == [1.0, 0.5, 0.0]


def test_span_mask_masks_whole_spans_only_inside_each_row():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([100, 40, 5])
    mask = span_mask(3, 100, prob=0.3, length=10, lengths=lengths, min_masks=2, generator=gen)
    assert mask.shape == (3, 100)
    assert not mask[1, 40:].any() and not mask[2].any()  # padding never; a row shorter than a span never
    for row, n in zip(mask, lengths.tolist()):
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row[:n].int().numpy(), 0])))[::2]
        assert all(r >= 10 for r in runs)  # overlapping spans merge, never shorter than one span
    assert 0.1 < mask[0].float().mean() <= 0.3  # spans overlap, so at most prob of the row


def test_span_mask_expected_coverage_matches_fairseq_counting():
    gen = torch.Generator().manual_seed(1)
    lengths = torch.full((400,), 200)
    mask = span_mask(400, 200, prob=0.2, length=5, lengths=lengths, generator=gen)
    # 8 spans of 5 of 200 frames, uniform starts: expected coverage 1 - (1 - 5/196)^8 ~ 0.186
    assert float(mask.float().mean()) == pytest.approx(1 - (1 - 5 / 196) ** 8, abs=0.01)


def test_span_masker_replaces_masked_frames_by_its_embedding_and_zeroes_masked_channels():
    masker = SpanMasker(8)
    x = torch.randn(2, 30, 8)
    masks = masker.draw(
        MaskOptions(time_prob=0.5, time_length=3, channel_prob=0.5, channel_length=2),
        torch.tensor([30, 12]),
        torch.Generator().manual_seed(0),
    )
    y = masker(x, masks)
    time, channels = masks.time, masks.channels
    assert time.any() and channels.any() and not time[1, 12:].any()
    kept = ~time[:, :, None] & ~channels[:, None, :]
    assert torch.equal(y[kept], x.expand_as(y)[kept])
    assert (y.masked_select(channels[:, None, :].expand_as(y)) == 0).all()
    embed = masker.masked_spec_embed.detach()
    for b in range(2):
        expected = torch.where(channels[b], torch.zeros(8), embed)  # channel masking comes after the embedding
        assert torch.equal(y[b][time[b]], expected.expand(int(time[b].sum()), 8))


def examples(seconds: list[float]) -> list[Example]:
    return [Example(str(i), np.zeros(int(s * 16000), np.int16), [1, 2]) for i, s in enumerate(seconds)]


def test_batch_plan_covers_every_example_once_within_the_padded_budget():
    data = examples([0.5 + 0.1 * (i % 37) for i in range(200)])
    plan = plan_batches(data, max_seconds=8.0, seed=3, epoch=0)
    assert sorted(i for batch in plan for i in batch) == list(range(200))
    for batch in plan:
        assert max(data[i].audio.size for i in batch) * len(batch) <= 8.0 * 16000 or len(batch) == 1
    assert plan == plan_batches(data, 8.0, seed=3, epoch=0)  # every process draws the same plan
    assert plan != plan_batches(data, 8.0, seed=3, epoch=1)  # another order each epoch


def test_batch_plan_count_is_a_multiple_of_the_world_size():
    data = examples([1.0] * 21)
    plan = plan_batches(data, max_seconds=2.0, seed=0, epoch=0, world_size=4)
    assert len(plan) % 4 == 0 and len(plan) == 8  # 11 batches of <= 2: the 3 left over are dropped


def test_collate_pads_normalises_and_concatenates_labels():
    data = [
        Example("a", (np.sin(np.arange(800)) * 8000).astype(np.int16), [3, 4, 5]),
        Example("b", (np.cos(np.arange(500)) * 3000).astype(np.int16), [6]),
    ]
    batch = collate(data, index=7)
    assert batch.wav.shape == (2, 800) and batch.lengths.tolist() == [800, 500]
    assert torch.all(batch.wav[1, 500:] == 0)
    for row, n in zip(batch.wav, (800, 500)):
        assert float(row[:n].mean()) == pytest.approx(0, abs=1e-5) and float(row[:n].std()) == pytest.approx(
            1, rel=1e-2
        )
    assert batch.labels.tolist() == [3, 4, 5, 6] and batch.label_lengths.tolist() == [3, 1] and batch.index == 7


def test_recipe_reads_toml_then_overrides_and_refuses_unknown_keys(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text("mask_time_prob = 0.3\n[train]\nlr = 8e-4\nmax_updates = 1500\nbetas = [0.9, 0.99]\n")
    recipe = read_recipe(FinetuneRecipe, path, max_updates=20, seed=None, freeze_encoder_updates=5)
    assert recipe.mask_time_prob == 0.3 and recipe.freeze_encoder_updates == 5
    assert recipe.train.lr == 8e-4 and recipe.train.max_updates == 20 and recipe.train.betas == (0.9, 0.99)
    assert recipe.train.seed == TrainOptions().seed  # None overrides nothing
    path.write_text("mask_tme_prob = 0.3\n")
    with pytest.raises(ValueError, match="unknown recipe setting.*mask_tme_prob"):
        read_recipe(FinetuneRecipe, path)
    path.write_text("lr = 1e-4\n[train]\nlrr = 1e-4\n")  # a training setting outside [train], and a typo in it
    with pytest.raises(ValueError, match=r"unknown recipe settings lr, train\.lrr; lr belongs under \[train\]"):
        read_recipe(FinetuneRecipe, path)
    path.write_text("mask_time_prob = \n")
    with pytest.raises(ValueError, match="cannot read the recipe"):
        read_recipe(FinetuneRecipe, path)


TIERS = {"phones": [(0.1, 0.2, "s", 0.9), (0.25, 0.4, "ɑ", 0.8)], "words": [(0.1, 0.4, "са", 0.85)]}


def test_tsv_has_one_row_per_interval_of_every_tier():
    rows = format_tiers([("a.wav", TIERS, 0.5)], "tsv").splitlines()
    assert rows[0] == "path\ttier\tlabel\tstart\tend\tscore"
    assert rows[1:] == [
        "a.wav\tphones\ts\t0.10\t0.20\t0.900",
        "a.wav\tphones\tɑ\t0.25\t0.40\t0.800",
        "a.wav\twords\tса\t0.10\t0.40\t0.850",
    ]


def test_ctm_writes_start_and_duration_of_the_first_tier():
    assert format_tiers([("a", TIERS, 0.5)], "ctm").splitlines() == ["a 1 0.10 0.10 s 0.900", "a 1 0.25 0.15 ɑ 0.800"]


def test_textgrid_fills_gaps_so_intervals_tile_the_recording():
    text = format_tiers([("a", TIERS, 0.5)], "textgrid")
    assert "size = 2" in text and 'name = "phones"' in text and 'name = "words"' in text
    phones = text.split('name = "phones"')[1].split('name = "words"')[0]
    bounds = [float(line.split("=")[1]) for line in phones.splitlines() if "xmin =" in line or "xmax =" in line][2:]
    assert bounds == [0.0, 0.1, 0.1, 0.2, 0.2, 0.25, 0.25, 0.4, 0.4, 0.5]  # gap, s, gap, ɑ, tail
    with pytest.raises(ValueError, match="one recording"):
        format_tiers([("a", TIERS, 0.5), ("b", TIERS, 0.5)], "textgrid")


def test_phone_labelled_data_needs_no_g2p(monkeypatch):
    """Rows that carry their phones are used as they are: G2P (espeak-ng, a module that may not be installed
    where training runs) is not called; rows without phones get it, in one call."""
    from unispeech import g2p
    from unispeech.data import Utterance, with_phones

    calls = []
    monkeypatch.setattr(g2p, "phonemize", lambda texts, language: calls.append(list(texts)) or [["s"] for _ in texts])
    labelled = [Utterance(id="a", audio="a.wav", text="салам", phones=("s", "ɑ"))]
    assert with_phones(labelled) == labelled and calls == []
    unlabelled = [Utterance(id="b", audio="b.wav", text="салам", phones=None)]
    assert with_phones(labelled + unlabelled)[1].phones == ("s",) and calls == [["салам"]]


def _tiny_ctc(layers: int, **overrides):
    from unispeech.config import tiny_config
    from unispeech.model import CTCModel

    from .conftest import randomize

    model = CTCModel(tiny_config(num_hidden_layers=layers, **overrides))
    randomize(model, seed=3)
    return model.eval()


def test_deepen_adds_layers_between_the_old_ones_that_leave_the_logits_exactly_as_they_were():
    from unispeech.model import deepen

    model = _tiny_ctc(2)
    grown = deepen(model, 5).eval()
    wav, lengths = torch.randn(2, 8000), torch.tensor([8000, 6000])
    assert len(grown.backbone.encoder.layers) == grown.config.num_hidden_layers == 5
    assert torch.equal(grown(wav, lengths)[0], model(wav, lengths)[0])
    old = [layer.attention.q_proj.weight for layer in model.backbone.encoder.layers]
    copied = [i for i, layer in enumerate(grown.backbone.encoder.layers) if any(
        torch.equal(layer.attention.q_proj.weight, w) for w in old)]  # fmt: skip
    assert copied == [1, 3]  # new, old 0, new, old 1, new: spread evenly, order kept


def test_a_deepened_model_trains_its_new_layers_from_the_first_update():
    from unispeech.model import deepen

    grown = deepen(_tiny_ctc(1, layerdrop=0.0), 2).train()  # train mode's layerdrop (0.1) would skip a layer 1 in 10
    new = grown.backbone.encoder.layers[1]
    grown(torch.randn(2, 8000), torch.tensor([8000, 8000]))[0].logsumexp(-1).sum().backward()
    assert new.attention.out_proj.weight.grad.abs().sum() > 0
    assert new.feed_forward.output_dense.weight.grad.abs().sum() > 0


def test_deepen_refuses_fewer_layers_and_post_ln_layers():
    from unispeech.model import deepen

    with pytest.raises(ValueError, match="has 2, asked for 1"):
        deepen(_tiny_ctc(2), 1)
    with pytest.raises(ValueError, match="pre-LN"):
        deepen(_tiny_ctc(1, do_stable_layer_norm=False), 2)


def test_a_file_listed_by_several_rows_is_decoded_and_held_once(tmp_path, monkeypatch):
    import soundfile as sf

    import unispeech.train.batches as batches
    from unispeech.audio import load_audio
    from unispeech.data import Utterance
    from unispeech.vocab import phone_vocabulary

    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", np.full(1600, 0.25 if name == "a" else -0.5, np.float32), 16000)
    decoded = []
    monkeypatch.setattr(batches, "load_audio", lambda path: decoded.append(path) or load_audio(path))
    rows = [Utterance(f"u{i}", tmp_path / f"{name}.wav", phones=("ɑ",)) for i, name in enumerate("aba")]
    examples, skipped = load_examples(rows, phone_vocabulary(["ɑ"], lang="ky"), progress=False, labelled=False)
    assert sorted(map(str, decoded)) == [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")] and not skipped
    assert [e.id for e in examples] == ["u0", "u1", "u2"] and examples[0].audio is examples[2].audio
    assert examples[0].audio[0] == 8191 and examples[1].audio[0] == -16383  # each row keeps its own file's samples


def test_an_unreadable_file_listed_by_several_rows_is_tried_once_and_skips_each_row(tmp_path, monkeypatch):
    import unispeech.train.batches as batches
    from unispeech.audio import load_audio
    from unispeech.data import Utterance
    from unispeech.vocab import phone_vocabulary

    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")
    tried = []
    monkeypatch.setattr(batches, "load_audio", lambda path: tried.append(path) or load_audio(path))
    rows = [Utterance(f"u{i}", tmp_path / "broken.wav", phones=("ɑ",)) for i in range(3)]
    examples, skipped = load_examples(rows, phone_vocabulary(["ɑ"], lang="ky"), progress=False, labelled=False)
    assert not examples and len(tried) == 1
    assert [line.split(":")[0] for line in skipped] == ["u0", "u1", "u2"] and "broken.wav" in skipped[0]
