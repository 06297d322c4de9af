"""CTC fine-tuning with the UniSpeech recipe (finetune.sh): frozen CNN, head-only start, SpecAugment, tri-stage LR."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import AudioSettings
from ..augment import BatchAugment, BatchCodec, BatchNoise
from ..checkpoint import is_pretraining, load_weights, read_metadata, resolve_folder, save_folder, weights_file
from ..config import ModelConfig
from ..data import load_dataset
from ..g2p import kyrgyz_inventory
from ..masking import MaskOptions
from ..metrics import phone_error_rate
from ..model import CTCModel, build_model, initialize_weights
from ..precision import resolve_device
from ..transcribe import Recognizer
from ..vocab import Vocabulary, phone_vocabulary
from .batches import Batch, Example, load_examples
from .loop import train
from .recipe import TrainOptions, read_recipe


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
    noise: BatchNoise | None = None  # noise drawn anew for every batch (a [noise] table in TOML); None = none
    codec: BatchCodec | None = None  # a lossy codec drawn anew for every batch, after the noise ([codec])

    def __post_init__(self):
        BatchAugment.read_tables(self)

    @property
    def masking(self) -> MaskOptions:
        return MaskOptions(
            self.mask_time_prob, self.mask_time_length, 2, self.mask_channel_prob, self.mask_channel_length
        )


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
        backbone = self.model.backbone
        masks = None
        if backbone.masker is not None:
            masks = backbone.masker.draw(r.masking, backbone.output_lengths(batch.lengths), gen)
        wav = BatchAugment(r.noise, r.codec)(batch.wav, batch.lengths, gen)
        logits, frame_lengths = model(wav, batch.lengths, masks)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, V)
        loss = F.ctc_loss(
            log_probs,
            batch.labels.to(logits.device),
            frame_lengths,
            batch.label_lengths,
            blank=self.vocab.blank_id,
            reduction="sum",
            zero_infinity=True,
        )
        sentences = float(batch.lengths.numel())  # fairseq --sentence-avg
        return loss, sentences, {}

    def validate(self, model) -> dict:
        if not self.valid:
            return {}
        model.eval()
        per = phone_error_rate_on(self.model, self.vocab, self.valid)
        model.train()
        return {"per": per, "utterances": len(self.valid)}

    def export(self, model, folder: Path) -> None:
        save_folder(folder, self.model, self.vocab, AudioSettings())


def phone_error_rate_on(model: CTCModel, vocab: Vocabulary, examples: list[Example]) -> float:
    """Greedy PER of `model` (in eval mode) on labelled examples."""
    recognizer = Recognizer(model, vocab, AudioSettings())
    wavs = [recognizer.prepare(e.audio.astype(np.float32) / 32768, 16000) for e in examples]
    logits = recognizer.logits_batch(wavs, batch_size=16)
    hyps = [recognizer.decode(x, w.size).phones for x, w in zip(logits, wavs)]
    return phone_error_rate([[vocab.tokens[t] for t in e.labels] for e in examples], hyps).per


def init_model(init: str | Path, recipe: FinetuneRecipe) -> tuple[CTCModel, Vocabulary]:
    """A model to fine-tune: from a checkpoint folder (CTC of any head size, or pretraining) whose body is
    loaded and whose head starts anew if it does not fit; or from a config.json alone (random init)."""
    folder = Path(init)
    if not folder.exists() and str(init).count("/") == 1:  # a hub id
        folder = resolve_folder(str(init))
    config_path = folder / "config.json" if folder.is_dir() else folder
    if not config_path.is_file():
        raise ValueError(f"--init {init}: expected a model folder with config.json, or a config.json file")
    if folder.is_dir() and weights_file(folder) is None:
        raise ValueError(
            f"--init {init}: the folder has a config.json but no weights; to train from random "
            f"weights pass the file itself: --init {config_path}"
        )
    base = ModelConfig.from_json(config_path)
    vocab = phone_vocabulary(list(kyrgyz_inventory()))
    pretraining = is_pretraining(base)
    if folder.is_dir() and (folder / "vocab.json").is_file() and not pretraining:  # a pretraining vocab is not ours
        vocab = read_metadata(folder)[1]
    # ...unless its CTC head labels exactly our phones (multi-task training on them): then that head goes on
    carry_head = pretraining and (folder / "vocab.json").is_file() and read_metadata(folder)[1].tokens == vocab.tokens
    config = dataclasses.replace(
        base,
        vocab_size=len(vocab),
        pad_token_id=vocab.blank_id,
        layerdrop=recipe.layerdrop,
        hidden_dropout=recipe.dropout,
        attention_dropout=recipe.dropout,
        activation_dropout=recipe.dropout,
        feat_proj_dropout=recipe.dropout,
        final_dropout=recipe.dropout,
        mask_time_prob=max(base.mask_time_prob, recipe.mask_time_prob),
        mask_time_length=recipe.mask_time_length,
        mask_feature_prob=max(base.mask_feature_prob, recipe.mask_channel_prob),
        mask_feature_length=recipe.mask_channel_length,
    )
    torch.manual_seed(recipe.train.seed)
    model = initialize_weights(build_model(config))  # a new head (or all of it, from a config) starts as fairseq's
    if folder.is_dir():
        for note in load_weights(model, folder, strict=False, carry_head=carry_head):
            print(f"unispeech: --init {init}: {note}", file=sys.stderr)
    return model, vocab


def finetune(
    init: str | Path,
    train_data: str | Path,
    out_dir: str | Path,
    valid_data: str | Path | None = None,
    recipe: FinetuneRecipe = FinetuneRecipe(),
    resume: bool = False,
    split: str = "train",
    valid_split: str = "dev",
    progress: bool = True,
    audio_dir: str | Path | None = None,
    device: str = "cpu",
) -> Path:
    """Fine-tune `init` on `train_data` on `device`; the best model (by validation PER) goes to `out_dir`."""
    resolve_device(device)  # before the data is read
    model, vocab = init_model(init, recipe)
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
    train(task, examples, recipe.train, out_dir, resume=resume, meta=meta, device=device, progress_bar=progress)
    return Path(out_dir)


def load_recipe(path: str | Path | None, **overrides) -> FinetuneRecipe:
    return read_recipe(FinetuneRecipe, path, **overrides)
