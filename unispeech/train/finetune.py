"""CTC fine-tuning with the UniSpeech recipe (finetune.sh): frozen CNN, head-only start, SpecAugment, tri-stage LR."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import AudioSettings, from_hf_keys, read_state_dict, save_folder
from ..config import ModelConfig
from ..data import load_dataset
from ..decoding import greedy_decode
from ..evaluate import phone_error_rate
from ..g2p import kyrgyz_inventory
from ..masking import span_mask
from ..model import CTCModel, build_model
from ..transcribe import Recognizer
from ..vocab import Vocabulary, phone_vocabulary
from .batches import Batch, Example, load_examples
from .loop import TrainOptions, read_recipe, train


@dataclasses.dataclass(frozen=True)
class FinetuneRecipe:
    """What the UniSpeech fine-tuning script sets, besides optimisation (in `train`)."""

    train: TrainOptions = TrainOptions()
    freeze_encoder_updates: int = 2000  # only the CTC head trains before this update
    freeze_feature_encoder: bool = True  # the CNN never trains (feature_grad_mult 0)
    mask_time_prob: float = 0.75
    mask_time_length: int = 10
    mask_channel_prob: float = 0.25
    mask_channel_length: int = 64
    layerdrop: float = 0.1
    dropout: float = 0.1  # hidden, attention, activation, feature-projection and final dropout


class FinetuneTask:
    def __init__(self, model: CTCModel, vocab: Vocabulary, recipe: FinetuneRecipe, valid: list[Example]):
        self.model, self.vocab, self.recipe, self.valid = model, vocab, recipe, valid
        model.backbone.freeze_features = recipe.freeze_feature_encoder
        for p in model.backbone.feature_extractor.parameters():
            p.requires_grad_(not recipe.freeze_feature_encoder)

    def compute_loss(self, model, batch: Batch, step: int):
        r = self.recipe
        self.model.backbone.freeze_encoder = step < r.freeze_encoder_updates
        gen = torch.Generator().manual_seed(r.train.seed * 7919 + batch.index)  # same masks in every process layout
        embed = getattr(self.model.backbone, "masked_spec_embed", None)

        def mask_fn(x: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
            B, T, C = x.shape
            if r.mask_time_prob > 0 and embed is not None:
                time = span_mask(B, T, r.mask_time_prob, r.mask_time_length, frame_lengths, 2, gen)
                x = torch.where(time[:, :, None].to(x.device), embed.to(x.dtype), x)
            if r.mask_channel_prob > 0:
                channels = span_mask(B, C, r.mask_channel_prob, min(r.mask_channel_length, C), generator=gen)
                x = x.masked_fill(channels[:, None, :].to(x.device), 0.0)
            return x

        logits, frame_lengths = model(batch.wav, batch.lengths, mask_fn=mask_fn)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, V)
        loss = F.ctc_loss(log_probs, batch.labels.to(logits.device), frame_lengths, batch.label_lengths,
                          blank=self.vocab.blank_id, reduction="sum", zero_infinity=True)
        sentences = float(batch.lengths.numel())  # fairseq --sentence-avg
        return loss, sentences, {}

    def validate(self, model) -> dict:
        if not self.valid:
            return {}
        model.eval()
        recognizer = Recognizer(self.model, self.vocab, AudioSettings())
        wavs = [recognizer.prepare(e.audio.astype(np.float32) / 32768, 16000) for e in self.valid]
        logits = recognizer.logits_batch(wavs, batch_size=16)
        hyps = [greedy_decode(x, self.vocab).phones for x in logits]
        refs = [[self.vocab.tokens[t] for t in e.labels] for e in self.valid]
        counts = phone_error_rate(refs, hyps)
        model.train()
        return {"per": counts.per, "utterances": len(refs)}

    def export(self, model, folder: Path) -> None:
        save_folder(folder, self.model, self.vocab, AudioSettings())


def init_model(init: str | Path, vocab: Vocabulary | None, recipe: FinetuneRecipe) -> tuple[CTCModel, Vocabulary]:
    """A model to fine-tune from a checkpoint folder (any head, or none) or from a config.json (random init)."""
    init = Path(init)
    if not init.exists() and str(init).count("/") == 1:  # a hub id
        from ..checkpoint import resolve_folder
        init = resolve_folder(str(init))
    config_path = init / "config.json" if init.is_dir() else init
    if not config_path.is_file():
        raise ValueError(f"--init {init}: expected a model folder with config.json, or a config.json file")
    base = ModelConfig.from_json(config_path)
    pretraining = "UniSpeechForPreTraining" in base.extra.get("architectures", [])
    if vocab is None:
        if init.is_dir() and (init / "vocab.json").is_file() and not pretraining:  # its labels are not ours
            vocab = Vocabulary.from_folder(init, blank_id=base.pad_token_id, head_size=base.vocab_size)
        else:
            vocab = phone_vocabulary(list(kyrgyz_inventory()))
    config = dataclasses.replace(
        base, vocab_size=len(vocab), pad_token_id=vocab.blank_id, layerdrop=recipe.layerdrop,
        hidden_dropout=recipe.dropout, attention_dropout=recipe.dropout, activation_dropout=recipe.dropout,
        feat_proj_dropout=recipe.dropout, final_dropout=recipe.dropout,
        mask_time_prob=max(base.mask_time_prob, recipe.mask_time_prob), mask_time_length=recipe.mask_time_length)
    torch.manual_seed(recipe.train.seed)
    model = build_model(config)
    if init.is_dir() and any((init / n).is_file() for n in ("model.safetensors", "pytorch_model.bin",
                                                            "model.safetensors.index.json")):
        state = from_hf_keys(read_state_dict(init), base.model_type)
        head = state.get("lm_head.weight")
        if head is not None and head.shape[0] != len(vocab):
            print(f"unispeech: the init checkpoint's CTC head has {head.shape[0]} outputs but the vocabulary has "
                  f"{len(vocab)}: the head is re-initialised", file=sys.stderr)
        if head is None or head.shape[0] != len(vocab):
            state = {k: v for k, v in state.items() if not k.startswith("lm_head.")}
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        missing = [k for k in missing if not k.startswith("lm_head.") and k != "backbone.masked_spec_embed"]
        if missing or unexpected:
            raise ValueError(f"--init {init}: weights do not match its config (missing: {missing[:5]}, "
                             f"unexpected: {unexpected[:5]})")
    return model, vocab


def finetune(init: str | Path, train_data: str | Path, out_dir: str | Path, valid_data: str | Path | None = None,
             recipe: FinetuneRecipe = FinetuneRecipe(), resume: bool = False, split: str = "train",
             valid_split: str = "dev", progress: bool = True, audio_dir: str | Path | None = None) -> Path:
    """Fine-tune `init` on `train_data`; the best model (by validation PER) is written to `out_dir`."""
    model, vocab = init_model(init, None, recipe)
    train_utts, skipped = load_dataset(train_data, split=split, audio_dir=audio_dir)
    if not train_utts:
        raise ValueError(f"{train_data}: no usable training utterances ({len(skipped)} skipped)")
    examples, bad = load_examples(train_utts, vocab, progress=progress)
    if not examples:
        raise ValueError(f"{train_data}: none of the {len(train_utts)} clips could be read (first: {bad[0]})")
    valid: list[Example] = []
    if valid_data:
        valid_utts, _ = load_dataset(valid_data, split=valid_split, audio_dir=audio_dir)
        valid, _ = load_examples(valid_utts, vocab, progress=progress)
    for line in (skipped and [f"{len(skipped)} rows skipped in {train_data}"]) + bad[:5]:
        print(f"unispeech: {line}", file=sys.stderr)
    task = FinetuneTask(model, vocab, recipe, valid)
    meta = {"kind": "finetune", "recipe": dataclasses.asdict(recipe), "init": str(init)}
    train(task, examples, recipe.train, out_dir, resume=resume, meta=meta, progress_bar=progress)
    return Path(out_dir)


def load_recipe(path: str | Path | None, **overrides) -> FinetuneRecipe:
    return read_recipe(FinetuneRecipe, path, **overrides)
