"""Does our contrastive pretraining learn like the reference implementation? transformers'
`Wav2Vec2ForPreTraining` (which, unlike its UniSpeech class, computes the wav2vec 2.0 loss) and our
`unispeech pretrain` in contrastive-only mode, trained in the same run by the same loop on the same batches,
optimizer, schedule and Gumbel anneal; the reference draws its own span masks and negatives
(transformers' `_compute_mask_indices` and `_sample_negative_indices`: masked frames only, as wav2vec 2.0)
and keeps its own initialisation, so that it checks our recipe, not only our loss code. Prints contrastive
accuracy and codevector perplexity side by side.

    python bench/contrastive_reference.py --data runs/reproduction/target/manifest.jsonl --updates 300 --bf16

Both models have the dimensions of --config. The heads differ as the two papers' do: wav2vec 2.0 projects the
transformer output and the quantized latent into a shared 'proj_codevector_dim' space; UniSpeech maps the
quantized latent up to the transformer width (project_q, project_hid) and compares it with the raw output.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from unispeech.components import valid_mask
from unispeech.train.batches import Batch, load_examples
from unispeech.train.log import read_log
from unispeech.train.loop import train
from unispeech.train.losses import contrastive_logits
from unispeech.train.pretrain import (
    PretrainRecipe,
    PretrainTask,
    gumbel_temperature,
    init_pretrain_model,
    read_pretrain_recipe,
)

ROOT = Path(__file__).resolve().parents[1]


class ReferenceTask:
    """transformers' Wav2Vec2ForPreTraining as a task of our training loop (loss: summed contrastive +
    weighted diversity, normalised by the masked frames, as in fairseq and in ours)."""

    def __init__(self, config, recipe: PretrainRecipe):
        import transformers

        hf = {k: v for k, v in config.to_hf_dict().items() if k != "architectures"}
        hf.update(
            model_type="wav2vec2",
            num_negatives=recipe.num_negatives,
            contrastive_logits_temperature=recipe.logit_temperature,
            diversity_loss_weight=recipe.diversity_weight,
            mask_time_prob=max(config.mask_time_prob, 0.05),
        )
        torch.manual_seed(recipe.train.seed)
        self.model = transformers.Wav2Vec2ForPreTraining(transformers.Wav2Vec2Config(**hf))
        self.recipe = recipe

    def compute_loss(self, model, batch: Batch, step: int):
        from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

        r = self.recipe
        model.set_gumbel_temperature(gumbel_temperature(r, step))
        frame_lengths = model._get_feat_extract_output_lengths(batch.lengths)
        B, T = len(frame_lengths), int(frame_lengths.max())
        np.random.seed((r.train.seed * 7919 + batch.index) % 2**32)  # transformers draws from numpy's global state
        frames = valid_mask(frame_lengths, T).long()
        mask = _compute_mask_indices((B, T), r.mask_prob, r.mask_length, attention_mask=frames, min_masks=2)
        sampled = _sample_negative_indices((B, T), r.num_negatives, mask_time_indices=mask)
        mask, sampled = torch.from_numpy(mask), torch.from_numpy(sampled).long()
        rows, steps = mask.nonzero(as_tuple=True)
        negatives = sampled[rows, steps] - rows[:, None] * T  # transformers indexes the flattened (B*T) frames
        attention = valid_mask(batch.lengths, batch.wav.shape[1]).long()
        out = model(batch.wav, attention_mask=attention, mask_time_indices=mask, sampled_negative_indices=sampled)
        logits = contrastive_logits(
            out.projected_states[rows, steps],
            out.projected_quantized_states[rows, steps],
            out.projected_quantized_states[rows[:, None], negatives],
            r.logit_temperature,
        )
        n = float(rows.numel())
        stats = {
            "contrastive": float(out.contrastive_loss.detach()),
            "accuracy": float((logits.argmax(-1) == 0).sum()),
            "perplexity": float(out.codevector_perplexity) * n,
            "masked": n,
        }
        return out.loss, n, stats

    def validate(self, model) -> dict:
        return {}

    def export(self, model, folder: Path) -> None:
        model.save_pretrained(folder)


def curve(folder: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_log(folder) if "accuracy" in r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a manifest of audio (labels unused)")
    parser.add_argument("--config", default=str(ROOT / "recipes" / "reproduction_config.json"))
    parser.add_argument("--recipe", help="a pretraining TOML (default: the reproduction's stage-1 settings)")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-seconds", type=float, default=40)
    parser.add_argument(
        "--stop-after", type=int, default=0, help="end each run early (the schedule stays that of --updates)"
    )
    parser.add_argument("--impls", default="ours,transformers")
    parser.add_argument("--every", type=int, help="table rows every this many updates (default: updates / 10)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "contrastive-reference"))
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    from unispeech.data import load_dataset

    recipe = read_pretrain_recipe(
        args.recipe,
        max_updates=args.updates,
        lr=args.lr,
        max_batch_seconds=args.batch_seconds,
        bf16=args.bf16 or None,
        warmup_fraction=0.1,
        hold_fraction=0.0,
        decay_fraction=0.9,
        init_lr_scale=0.0,
        final_lr_scale=0.0,
        clip_norm=10.0,
        log_every=10,
        save_every=0,
        seed=1,
        stop_after=args.stop_after,
    )
    if not args.recipe:  # the reproduction's anneal: 2 -> 0.5 within the run
        recipe = dataclasses.replace(recipe, gumbel=(2.0, 0.5, 0.25 ** (1 / args.updates)))
    examples = load_examples(load_dataset(args.data, split="train")[0], None, labelled=False)[0]
    out = Path(args.out)
    for impl in args.impls.split(","):
        if (out / impl / "train_log.jsonl").is_file():
            continue
        model, _ = init_pretrain_model(args.config, recipe, None)  # pretraining's dropouts and layerdrop
        task = PretrainTask(model, None, recipe) if impl == "ours" else ReferenceTask(model.config, recipe)
        print(f"{impl}: {sum(p.numel() for p in task.model.parameters()) / 1e6:.2f} M parameters", file=sys.stderr)
        train(task, examples, recipe.train, out / impl)
    curves = {impl: curve(out / impl) for impl in args.impls.split(",")}
    impls = list(curves)
    print("| update | " + " | ".join(f"{i} accuracy | {i} perplexity" for i in impls) + " |")
    print("|---" * (1 + 2 * len(impls)) + "|")
    steps = sorted(set.intersection(*(set(c) for c in curves.values())))
    for s in steps:
        if s == 1 or s % (args.every or max(args.updates // 10, 10)) == 0 or s == steps[-1]:
            cells = [f"{curves[i][s]['accuracy']:.3f} | {curves[i][s]['perplexity']:.0f}" for i in impls]
            print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
