"""UniSpeech / wav2vec 2.0 models assembled from the boxes in `components`: the backbone, the CTC model that
transcribes, and the pretraining model that wraps the same backbone with the quantizer and its heads."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from .components import (
    BOX_INPUT_TYPES,
    ConvPositionalEmbedding,
    Encoder,
    EncoderLayer,
    FeatureEncoder,
    FeatureProjection,
    conv_output_lengths,
    valid_mask,
)
from .config import ModelConfig
from .masking import SpanMasker, SpanMasks
from .precision import Precision, Roles
from .quantizer import GumbelQuantizer

PRECISION_ROLES = Roles(
    cnn=FeatureEncoder, entry=(FeatureProjection, ConvPositionalEmbedding), transformer=Encoder, boxes=BOX_INPUT_TYPES
)
INITIALIZER_RANGE = 0.02  # std of linear weights: BERT's, fairseq's init_bert_params and transformers' default


class UniSpeechModel(nn.Module):
    """Waveform -> contextual frames: CNN feature encoder, projection, (masking), transformer."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.config = c
        self.feature_extractor = FeatureEncoder(
            c.conv_dim, c.conv_kernel, c.conv_stride, c.conv_bias, c.feat_extract_norm, c.feat_extract_activation
        )
        self.feature_projection = FeatureProjection(
            c.conv_dim[-1], c.hidden_size, c.layer_norm_eps, c.feat_proj_dropout
        )
        # As in transformers, the mask embedding exists only where the config masks, so state dicts match.
        self.masker = SpanMasker(c.hidden_size) if c.mask_time_prob > 0 or c.mask_feature_prob > 0 else None
        layers = [
            EncoderLayer(
                c.hidden_size,
                c.num_attention_heads,
                c.intermediate_size,
                c.hidden_act,
                c.layer_norm_eps,
                c.do_stable_layer_norm,
                c.attention_dropout,
                c.activation_dropout,
                c.hidden_dropout,
            )
            for _ in range(c.num_hidden_layers)
        ]
        pos_conv = ConvPositionalEmbedding(
            c.hidden_size, c.num_conv_pos_embeddings, c.num_conv_pos_embedding_groups, c.feat_extract_activation
        )
        self.encoder = Encoder(
            layers, pos_conv, c.hidden_size, c.layer_norm_eps, c.do_stable_layer_norm, c.hidden_dropout, c.layerdrop
        )

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(num_samples, self.config.conv_kernel, self.config.conv_stride)

    freeze_features = False  # fine-tuning: the CNN gets no gradients
    freeze_encoder = False  # fine-tuning's first updates: only the head trains

    def features(self, wav: torch.Tensor, lengths: torch.Tensor):
        """(B, S) waveform -> projected frames (B, T, C), normalised CNN features (B, T, C_cnn), frame lengths."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (self.freeze_features or self.freeze_encoder)):
            z, frame_lengths = self.feature_extractor(wav, lengths)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            x, z_normed = self.feature_projection(z)
        return x, z_normed, frame_lengths

    def forward(
        self, wav: torch.Tensor, lengths: torch.Tensor, masks: SpanMasks | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`masks` (training): frames and channels of the projected features to mask, drawn by `self.masker`."""
        x, _, frame_lengths = self.features(wav, lengths)
        return self.contextualize(x, frame_lengths, masks), frame_lengths

    def contextualize(self, x: torch.Tensor, frame_lengths: torch.Tensor, masks: SpanMasks | None) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            if masks is not None:
                if self.masker is None:
                    raise ValueError("this model's config masks nothing (mask_time_prob = mask_feature_prob = 0)")
                x = self.masker(x, masks)
            return self.encoder(x, frame_lengths)


class CTCModel(nn.Module):
    """The encoder plus a linear CTC head over the phone vocabulary (UniSpeechForCTC / Wav2Vec2ForCTC)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = UniSpeechModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, wav: torch.Tensor, lengths: torch.Tensor, masks: SpanMasks | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) normalised 16 kHz waveform, (B,) valid samples -> logits (B, T, V), valid frames (B,)."""
        hidden, frame_lengths = self.backbone(wav, lengths, masks)
        return self.lm_head(self.dropout(hidden)), frame_lengths  # the encoder's output is float32 (precision.py)


class UniSpeechPretrainModel(nn.Module):
    """The backbone wrapped with the quantizer and the heads that pretraining needs (UniSpeechForPreTraining)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = UniSpeechModel(config)
        self.dropout_features = nn.Dropout(config.feat_quantizer_dropout)
        self.quantizer = GumbelQuantizer(
            config.conv_dim[-1], config.num_codevector_groups, config.num_codevectors_per_group, config.codevector_dim
        )
        self.project_q = nn.Linear(config.codevector_dim, config.proj_codevector_dim)
        self.project_hid = nn.Linear(config.proj_codevector_dim, config.hidden_size)
        self.ctc_proj = nn.Linear(config.hidden_size, config.num_ctc_classes)
        self.dropout = nn.Dropout(config.final_dropout)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, masks: SpanMasks | None = None):
        """-> transformer output c (B, T, H), projected quantized latents (B, T, H), perplexity, frame lengths."""
        x, z_normed, frame_lengths = self.backbone.features(wav, lengths)
        context = self.backbone.contextualize(x, frame_lengths, masks)
        valid = valid_mask(frame_lengths, x.shape[1])
        quantized, perplexity = self.quantizer(self.dropout_features(z_normed), valid)
        targets = self.project_hid(self.project_q(quantized))
        return context, targets, perplexity, frame_lengths

    def ctc_logits(self, context: torch.Tensor, targets: torch.Tensor, replace: torch.Tensor) -> torch.Tensor:
        """The phonetic CTC head over c, each frame replaced by its quantized latent where `replace` (B, T)."""
        return self.ctc_proj(self.dropout(replace_mix(context, targets, replace)))


def ctc_view(model: UniSpeechPretrainModel) -> CTCModel:
    """The pretraining model's backbone and phonetic CTC head as a CTC model (the paper's CTC-transfer
    recognizer), sharing their parameters: no replacement, no quantizer."""
    config = dataclasses.replace(model.config, vocab_size=model.config.num_ctc_classes)
    with torch.device("meta"):
        view = CTCModel(config)
    view.backbone, view.lm_head, view.dropout = model.backbone, model.ctc_proj, model.dropout
    return view


def replace_mix(context: torch.Tensor, quantized: torch.Tensor, replace: torch.Tensor) -> torch.Tensor:
    """Each frame of the transformer output replaced by its (projected) quantized latent where `replace` (B, T)."""
    return torch.where(replace[:, :, None], quantized.to(context.dtype), context)


def build_model(config: ModelConfig) -> CTCModel:
    return CTCModel(config)


@torch.no_grad()
def initialize_weights(model: nn.Module) -> nn.Module:
    """The initialisation of fairseq's wav2vec 2.0 / UniSpeech, as transformers writes it (`_init_weights`),
    for training from scratch: kaiming-normal convolutions, N(0, 0.02) linears with zero bias, unit layer
    norms; then the boxes with their own rule (the feature projection's uniform, the quantizer's N(0, 1)
    scores and uniform codebook). PyTorch's defaults start the CNN ~2.45x smaller and the transformer ~2x
    larger, which changes Adam's relative step sizes. The positional conv keeps its own (fairseq's) init."""
    for module in model.modules():
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=INITIALIZER_RANGE)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, FeatureProjection):
            bound = 1 / math.sqrt(module.projection.in_features)
            nn.init.uniform_(module.projection.weight, -bound, bound)
            nn.init.uniform_(module.projection.bias, -bound, bound)
        elif isinstance(module, GumbelQuantizer):
            nn.init.normal_(module.weight_proj.weight, std=1.0)
            nn.init.zeros_(module.weight_proj.bias)
            nn.init.uniform_(module.codevectors)
    return model


@torch.no_grad()
def deepen(model: CTCModel, layers: int, seed: int = 0) -> CTCModel:
    """A copy of `model` with `layers` transformer layers that computes the same function: the new layers
    (spread evenly between the old ones) start with zero output projections, so each is an identity through
    its residual paths until training moves them (a pre-LN transformer only). Their other weights are drawn
    as `initialize_weights` draws them, from `seed`."""
    config = model.config
    old = config.num_hidden_layers
    if not config.do_stable_layer_norm:
        raise ValueError("deepen needs pre-LN transformer layers (do_stable_layer_norm): post-LN ones are no identity")
    if layers < old:
        raise ValueError(f"deepen adds layers: the model has {old}, asked for {layers}")
    with torch.random.fork_rng():  # the caller's random stream stays as it was
        torch.manual_seed(seed)
        grown = initialize_weights(CTCModel(dataclasses.replace(config, num_hidden_layers=layers)))
    added = layers - old
    before = [round(old * (j + 1) / (added + 1)) for j in range(added)]  # old layers below each new one
    order: list[int | None] = []  # the old layer each new position copies; None: a new layer
    for i in range(old + 1):
        order += [None] * before.count(i) + ([i] if i < old else [])
    state = {k: v for k, v in model.state_dict().items() if ".encoder.layers." not in k}
    for new_index, old_index in enumerate(order):
        target = grown.backbone.encoder.layers[new_index]
        if old_index is None:
            for projection in (target.attention.out_proj, target.feed_forward.output_dense):
                projection.weight.zero_()
                projection.bias.zero_()
        else:
            target.load_state_dict(model.backbone.encoder.layers[old_index].state_dict())
    grown.load_state_dict(state, strict=False)
    return grown


def set_precision(model: nn.Module, precision: Precision) -> nn.Module:
    """Cast a CTC or pretraining model by the one rule in precision.py."""
    return precision.apply(model, PRECISION_ROLES)


def parameter_dtypes(model: nn.Module, precision: Precision) -> dict[str, torch.dtype]:
    return precision.parameter_dtypes(model, PRECISION_ROLES)
