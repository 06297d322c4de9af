"""UniSpeech multi-task pretraining: phonetic CTC on labelled speech + contrastive learning on all speech,
joined by replacing transformer outputs with quantized latents before the CTC head (paper, section 2).

Stage 1: labelled (source language) and optionally unlabelled audio, loss
    labelled:   alpha * CTC(mix) + (1 - alpha) * (contrastive + 0.1 * diversity)
    unlabelled: contrastive + 0.1 * diversity
Stage 2 ("+" models): unlabelled target-language audio only, contrastive + diversity, mask prob 0.65.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ..augment import BatchAugment, BatchCodec, BatchNoise
from ..checkpoint import (
    is_pretraining,
    load_pretraining_folder,
    load_weights,
    read_config,
    read_metadata,
    save_folder,
)
from ..config import ModelConfig
from ..data import load_dataset, with_phones
from ..masking import MaskOptions, SpanMasks, draw_span_masks
from ..model import UniSpeechPretrainModel, ctc_view, initialize_weights
from ..precision import resolve_device
from ..vocab import Vocabulary, phone_vocabulary
from .batches import Batch, Example, batch_to, collate, load_examples, plan_batches
from .finetune import phone_error_rate_on
from .loop import train
from .losses import (
    contrastive_logits,
    contrastive_loss,
    diversity_loss,
    sample_masked_negatives,
    sample_negatives,
)
from .recipe import TrainOptions, read_recipe

NEGATIVE_SOURCES = ("auto", "all", "masked")
VALID_BATCH_INDEX = 1_000_000_000  # validation batches' mask seeds: apart from every training batch's


@dataclasses.dataclass(frozen=True)
class PretrainRecipe:
    """Defaults: the UniSpeech stage-1 script (one2one_large_pretrain_en1350.sh)."""

    train: TrainOptions = TrainOptions(
        lr=1e-3,
        eps=1e-6,
        weight_decay=0.01,
        max_updates=250000,
        warmup_fraction=0.1,
        hold_fraction=0.0,
        decay_fraction=0.9,
        init_lr_scale=0.0,
        final_lr_scale=0.0,
        clip_norm=0.0,
    )
    alpha: float = 0.5  # CTC weight for labelled utterances
    replace_prob: float = 0.5  # r: frames whose transformer output is replaced by the quantized latent
    mask_prob: float = 0.5  # 0.65 in stage 2
    mask_length: int = 10
    num_negatives: int = 100
    logit_temperature: float = 0.1
    diversity_weight: float = 0.1
    gumbel: tuple[float, float, float] = (2.0, 0.5, 0.999995)  # start, floor, decay per update
    dropout: float = 0.1
    dropout_features: float = 0.1  # --dropout-features: CNN features dropped before the quantizer
    layerdrop: float = 0.0
    # Where negatives come from: "all" frames of the utterance (stage 1, --negatives-from-everywhere),
    # "masked" frames only (stage 2 and wav2vec 2.0), or "auto": "all" with labelled data, else "masked".
    negatives: str = "auto"
    noise: BatchNoise | None = None  # batch noise and codec as in fine-tuning ([noise], [codec] tables)
    codec: BatchCodec | None = None

    def __post_init__(self):
        if self.negatives not in NEGATIVE_SOURCES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVE_SOURCES)}, not {self.negatives!r}")
        BatchAugment.read_tables(self)

    @property
    def masking(self) -> MaskOptions:
        return MaskOptions(time_prob=self.mask_prob, time_length=self.mask_length, min_time_spans=2)


@dataclasses.dataclass
class CollapseWatch:
    """Warns once when the codevector perplexity stays below `fraction` of G·V for `patience` batches in a
    row. A collapsed codebook makes every target alike and the contrastive task trivial; seen in multi-task
    runs whose CTC term sat on the all-blank plateau (docs/reproduction.md)."""

    total: int  # G·V
    fraction: float = 0.02
    patience: int = 20
    below: int = 0
    warned: bool = False

    def update(self, step: int, perplexity: float) -> str | None:
        self.below = self.below + 1 if perplexity < self.fraction * self.total else 0
        if self.below < self.patience or self.warned:
            return None
        self.warned = True
        return (
            f"unispeech: warning: the quantizer's codebook has collapsed (perplexity {perplexity:.1f} of "
            f"{self.total} for {self.patience} batches, update {step}); contrastive accuracy is meaningless "
            "now. In our small-scale runs a larger diversity weight (diversity_weight = 1.0 in the recipe) "
            "avoided it and a smaller --alpha did not; see docs/reproduction.md."
        )


def gumbel_temperature(recipe: PretrainRecipe, step: int) -> float:
    start, floor, decay = recipe.gumbel
    return max(start * decay**step, floor)


def draw_masks_and_negatives(recipe: PretrainRecipe, frame_lengths: torch.Tensor, batch_index: int):
    """A batch's span mask (B, T), its masked (rows, steps), their negatives (N, K), and the generator they
    came from (it goes on to draw the replacement mask). Seeded by the batch's place in the plan, so a
    resumed run, or another model trained on the same plan (bench/contrastive_reference.py), draws the same."""
    gen = torch.Generator().manual_seed(recipe.train.seed * 7919 + batch_index)
    frame_lengths = frame_lengths.cpu()
    mask = draw_span_masks(recipe.masking, frame_lengths, width=0, generator=gen).time
    rows, steps = mask.nonzero(as_tuple=True)
    if recipe.negatives == "masked":
        negatives = sample_masked_negatives(rows, steps, recipe.num_negatives, gen)
    else:
        negatives = sample_negatives(frame_lengths, rows, steps, recipe.num_negatives, gen)
    return mask, rows, steps, negatives, gen


class PretrainTask:
    """The UniSpeech losses for the shared training loop; validation reuses them on held-out batches."""

    def __init__(
        self, model: UniSpeechPretrainModel, vocab: Vocabulary | None, recipe: PretrainRecipe, valid: list[Example] = ()
    ):
        self.model, self.vocab, self.valid = model, vocab, list(valid)
        self.recipe = resolve_negatives(recipe, labelled=vocab is not None)
        self.collapse = CollapseWatch(model.quantizer.groups * model.quantizer.entries)

    def compute_loss(self, model, batch: Batch, step: int):
        loss, n_masked, stats = self.losses(model, batch, step)
        warning = self.collapse.update(step, stats["perplexity"] / max(n_masked, 1.0))
        if warning:
            print(f"\n{warning}", file=sys.stderr)
        return loss, n_masked, stats

    def losses(self, model, batch: Batch, step: int):
        """Summed loss, masked frames, and summed stats (contrastive, accuracy, perplexity, ctc) of a batch."""
        r, core = self.recipe, self.model
        core.quantizer.temperature = gumbel_temperature(r, step)
        frame_lengths = core.backbone.output_lengths(batch.lengths)
        mask, rows, steps, negatives, gen = draw_masks_and_negatives(r, frame_lengths, batch.index)
        B, T = mask.shape
        wav = batch.wav
        if model.training and (r.noise or r.codec):  # its own generator: the masks stay those of the plan
            wav = BatchAugment(r.noise, r.codec)(
                wav, batch.lengths, torch.Generator().manual_seed(r.train.seed * 7919 + batch.index + 1)
            )
        context, targets, perplexity, frame_lengths = model(wav, batch.lengths, SpanMasks(mask, None))
        rows, steps, negatives = (t.to(context.device) for t in (rows, steps, negatives))  # drawn on the CPU
        logits = contrastive_logits(
            context[rows, steps], targets[rows, steps], targets[rows[:, None], negatives], r.logit_temperature
        )
        label_lengths = batch.label_lengths
        labelled = label_lengths > 0
        row_weight = torch.where(labelled, 1 - r.alpha, 1.0)[rows]  # unlabelled rows: contrastive alone
        contrastive, correct = contrastive_loss(logits, row_weight)
        n_masked = float(rows.numel())
        diversity = diversity_loss(perplexity, core.quantizer.groups, core.quantizer.entries)
        loss = contrastive + r.diversity_weight * diversity * float(row_weight.mean()) * n_masked
        stats = {
            "contrastive": float(contrastive.detach()),
            "accuracy": float(correct),
            "perplexity": float(perplexity.detach()) * n_masked,
            "masked": n_masked,
        }
        if labelled.any() and r.alpha > 0:
            replace = (torch.rand(B, T, generator=gen) < r.replace_prob).to(context.device)  # Bernoulli(r) per frame
            ctc_logits = core.ctc_logits(context[labelled], targets[labelled], replace[labelled])
            log_probs = ctc_logits.float().log_softmax(-1).transpose(0, 1)
            ctc = F.ctc_loss(
                log_probs,
                batch.labels,
                frame_lengths[labelled],
                label_lengths[labelled],
                blank=self.vocab.blank_id,
                reduction="sum",
                zero_infinity=True,
            )
            loss = loss + r.alpha * ctc
            stats["ctc"] = float(ctc.detach())
        return loss, n_masked, stats

    @torch.no_grad()
    def validate(self, model) -> dict:
        """Held-out loss, contrastive accuracy and codevector perplexity (of the hard codes: eval mode) per
        masked frame; the masks are the same at every validation."""
        if not self.valid:
            return {}
        model.eval()
        totals: dict[str, float] = {}
        plan = plan_batches(self.valid, self.recipe.train.max_batch_seconds, seed=0, epoch=0)
        for i, rows in enumerate(plan):
            batch = collate([self.valid[k] for k in rows], index=VALID_BATCH_INDEX + i)
            batch = batch_to(batch, next(model.parameters()).device)
            loss, n_masked, stats = self.losses(model, batch, step=0)
            for key, value in {"loss": float(loss), **stats}.items():
                totals[key] = totals.get(key, 0.0) + value
        masked = max(totals.pop("masked"), 1.0)
        figures = {**{k: v / masked for k, v in totals.items()}, "utterances": len(self.valid)}
        labelled = [e for e in self.valid if e.labels]
        if labelled and self.vocab is not None:  # the CTC head's phone error rate, without replacement
            figures["per"] = phone_error_rate_on(ctc_view(self.model), self.vocab, labelled)
        model.train()
        return figures

    def export(self, model, folder: Path) -> None:
        save_folder(folder, self.model, self.vocab)


def resolve_negatives(recipe: PretrainRecipe, labelled: bool) -> PretrainRecipe:
    """`negatives = "auto"` as released: all frames in stage 1 (labelled data, --negatives-from-everywhere),
    masked frames in stage 2 and in contrastive-only (wav2vec 2.0) pretraining."""
    if recipe.negatives != "auto":
        return recipe
    return dataclasses.replace(recipe, negatives="all" if labelled else "masked")


def read_pretrain_recipe(path, **overrides) -> PretrainRecipe:
    return read_recipe(PretrainRecipe, path, **overrides)


def init_pretrain_model(init: str | Path, recipe: PretrainRecipe, num_ctc_classes: int | None):
    """From a pretraining checkpoint folder (continue / stage 2), a fine-tuned CTC model's folder (its body
    and CTC head go on, with a new quantizer: multi-task training from a recognizer), or a config.json
    (random initialisation)."""
    init = Path(init)
    if not init.exists():
        raise ValueError(f"{init}: no such pretraining folder, CTC model folder or config.json")
    if init.is_dir() and not is_pretraining(read_config(init)):
        return from_ctc_model(init, recipe)
    if init.is_dir():
        model = load_pretraining_folder(init)
        model.dropout_features.p = recipe.dropout_features
        model.config = dataclasses.replace(model.config, feat_quantizer_dropout=recipe.dropout_features)
        return model, read_metadata(init)[1] if (init / "vocab.json").is_file() else None
    base = ModelConfig.from_json(init)
    config = training_config(base, recipe, num_ctc_classes or base.num_ctc_classes)
    torch.manual_seed(recipe.train.seed)
    return initialize_weights(UniSpeechPretrainModel(config)), None


def from_ctc_model(folder: Path, recipe: PretrainRecipe):
    """A fine-tuned CTC model -> the pretraining model with its body and its head as the phonetic CTC head;
    the quantizer and its projections start as in pretraining from scratch."""
    base = read_config(folder)
    vocab = read_metadata(folder)[1]
    torch.manual_seed(recipe.train.seed)
    model = initialize_weights(UniSpeechPretrainModel(training_config(base, recipe, base.vocab_size)))
    load_weights(model, folder, strict=False, carry_head=True)
    return model, vocab


def training_config(base: ModelConfig, recipe: PretrainRecipe, num_ctc_classes: int) -> ModelConfig:
    return dataclasses.replace(
        base,
        num_ctc_classes=num_ctc_classes,
        mask_time_prob=max(base.mask_time_prob, 0.05),
        hidden_dropout=recipe.dropout,
        attention_dropout=recipe.dropout,
        activation_dropout=recipe.dropout,
        feat_proj_dropout=recipe.dropout,
        final_dropout=0.0,
        layerdrop=recipe.layerdrop,
        feat_quantizer_dropout=recipe.dropout_features,
    )


def read_valid(valid_data, vocab: Vocabulary | None, language: str, progress: bool) -> list[Example]:
    """Held-out audio; with its phones too where the run has a CTC head and every row has a label (the
    head's PER is then validated as well)."""
    utts = load_dataset(valid_data, split="dev", labelled=False)[0]
    labelled = vocab is not None and utts and all(u.phones or u.text for u in utts)
    return load_examples(utts, vocab if labelled else None, language, progress=progress, labelled=labelled)[0]


def pretrain(
    init: str | Path,
    out_dir: str | Path,
    labeled: str | Path | None = None,
    unlabeled: str | Path | None = None,
    recipe: PretrainRecipe = PretrainRecipe(),
    resume: bool = False,
    language: str = "ky",
    progress: bool = True,
    valid_data: str | Path | None = None,
    device: str = "cpu",
) -> Path:
    """Stage 1 (labelled + optional unlabelled) or stage 2 (unlabelled only) on `device`; the model goes to
    `out_dir`. `valid_data` (audio) gives the held-out contrastive figures every valid_every updates."""
    if not labeled and not unlabeled:
        raise ValueError("give --labeled and/or --unlabeled data")
    resolve_device(device)  # before the data is read
    labelled_utts = with_phones(load_dataset(labeled, split="train")[0], language) if labeled else []
    unlabelled_utts = load_dataset(unlabeled, split="train", labelled=False)[0] if unlabeled else []
    vocab = None
    if labelled_utts:
        vocab = phone_vocabulary(sorted({p for u in labelled_utts for p in (u.phones or ())}), lang=language)
    model, init_vocab = init_pretrain_model(init, recipe, len(vocab) if vocab else None)
    model.config = dataclasses.replace(model.config, replace_prob=recipe.replace_prob)  # the saved config says r
    if init_vocab is not None:
        vocab = init_vocab  # continue with the checkpoint's CTC classes (kept on export without labelled data too)
    if vocab is not None and len(vocab) != model.config.num_ctc_classes:
        raise ValueError(
            f"the labelled data has {len(vocab)} CTC classes, the model's ctc_proj {model.config.num_ctc_classes}"
        )
    if vocab is not None:  # the CTC head's blank, for validating its PER and recognizing with it
        model.config = dataclasses.replace(model.config, pad_token_id=vocab.blank_id)
    examples = load_examples(labelled_utts, vocab, language=language, progress=progress)[0] if labelled_utts else []
    if unlabelled_utts:
        examples += load_examples(unlabelled_utts, None, progress=progress, labelled=False)[0]
    if not examples:
        raise ValueError("none of the clips could be read")
    recipe = resolve_negatives(recipe, labelled=any(e.labels for e in examples))
    valid = read_valid(valid_data, vocab, language, progress) if valid_data else []
    print(
        f"unispeech: pretraining on {len(examples)} clips ({sum(bool(e.labels) for e in examples)} labelled), "
        f"validating on {len(valid)}",
        file=sys.stderr,
    )
    task = PretrainTask(model, vocab, recipe, valid)
    train(
        task,
        examples,
        recipe.train,
        out_dir,
        resume=resume,
        device=device,
        progress_bar=progress,
        meta={"kind": "pretrain", "recipe": dataclasses.asdict(recipe), "init": str(init)},
    )
    return Path(out_dir)
