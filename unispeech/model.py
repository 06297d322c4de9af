"""UniSpeech / wav2vec 2.0 models assembled from the boxes in `components`."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .components import (
    ConvPositionalEmbedding,
    Encoder,
    EncoderLayer,
    FeatureEncoder,
    FeatureProjection,
    conv_output_lengths,
)
from .config import ModelConfig


class UniSpeechModel(nn.Module):
    """Waveform -> contextual frames: CNN feature encoder, projection, (masking), transformer."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.config = c
        self.feature_extractor = FeatureEncoder(c.conv_dim, c.conv_kernel, c.conv_stride, c.conv_bias,
                                                c.feat_extract_norm, c.feat_extract_activation)
        self.feature_projection = FeatureProjection(c.conv_dim[-1], c.hidden_size, c.layer_norm_eps,
                                                    c.feat_proj_dropout)
        if c.mask_time_prob > 0 or c.mask_feature_prob > 0:  # as in transformers, so state dicts match
            self.masked_spec_embed = nn.Parameter(torch.empty(c.hidden_size).uniform_())
        layers = [
            EncoderLayer(c.hidden_size, c.num_attention_heads, c.intermediate_size, c.hidden_act, c.layer_norm_eps,
                         c.do_stable_layer_norm, c.attention_dropout, c.activation_dropout, c.hidden_dropout)
            for _ in range(c.num_hidden_layers)
        ]
        pos_conv = ConvPositionalEmbedding(c.hidden_size, c.num_conv_pos_embeddings,
                                           c.num_conv_pos_embedding_groups, c.feat_extract_activation)
        self.encoder = Encoder(layers, pos_conv, c.hidden_size, c.layer_norm_eps, c.do_stable_layer_norm,
                               c.hidden_dropout, c.layerdrop)

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

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor,
                mask_fn: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`mask_fn(x, frame_lengths) -> x` applies training-time masking to the projected frames."""
        x, _, frame_lengths = self.features(wav, lengths)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            if mask_fn is not None:
                x = mask_fn(x, frame_lengths)
            return self.encoder(x, frame_lengths), frame_lengths


class CTCModel(nn.Module):
    """The encoder plus a linear CTC head over the phone vocabulary (UniSpeechForCTC / Wav2Vec2ForCTC)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = UniSpeechModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor,
                mask_fn: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) normalised 16 kHz waveform, (B,) valid samples -> logits (B, T, V), valid frames (B,)."""
        hidden, frame_lengths = self.backbone(wav, lengths, mask_fn)
        hidden = self.dropout(hidden).to(self.lm_head.weight.dtype)  # the head may stay fp32 under a bf16 body
        return self.lm_head(hidden), frame_lengths


def build_model(config: ModelConfig) -> CTCModel:
    return CTCModel(config)
