"""Model dimensions: one frozen dataclass, read from and written to a Hugging Face `config.json`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

SUPPORTED_MODEL_TYPES = ("unispeech", "wav2vec2")
SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "swish", "silu")

# Options that change the computation and that we do not implement: loading such a
# checkpoint must fail loudly instead of producing different logits.
_UNSUPPORTED_WHEN_SET = {
    "add_adapter": "an adapter stack after the encoder",
    "adapter_attn_dim": "attention adapters",
    "use_weighted_layer_sum": "a weighted sum of layer outputs",
    "position_embeddings_type": "conformer position embeddings",
    "conv_pos_batch_norm": "batch norm in the positional convolution",
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every dimension and switch of the UniSpeech / wav2vec 2.0 CTC model."""

    model_type: str = "unispeech"
    vocab_size: int = 43
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "layer"  # "layer": LN after every conv; "group": GN after the first only
    feat_extract_activation: str = "gelu"
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = True  # pre-LN transformer layers and a final LN
    pad_token_id: int = 39  # the CTC blank
    # Training-only settings (dropouts, SpecAugment); inference ignores them.
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.1
    final_dropout: float = 0.0
    layerdrop: float = 0.1
    mask_time_prob: float = 0.075
    mask_time_length: int = 10
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    # Pretraining head sizes (UniSpeechForPreTraining).
    num_codevector_groups: int = 2
    num_codevectors_per_group: int = 320
    codevector_dim: int = 768
    proj_codevector_dim: int = 768
    num_ctc_classes: int = 80
    replace_prob: float = 0.5
    feat_quantizer_dropout: float = 0.0  # dropout on the CNN features before the quantizer
    # Every other key of the original config.json, kept so that saving round-trips it.
    extra: dict = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"unsupported model config: {what}")

        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise bad(f"model_type {self.model_type!r} (supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
        if self.feat_extract_norm not in ("group", "layer"):
            raise bad(f"feat_extract_norm {self.feat_extract_norm!r} (expected 'group' or 'layer')")
        for name in ("hidden_act", "feat_extract_activation"):
            if getattr(self, name) not in SUPPORTED_ACTIVATIONS:
                raise bad(f"{name} {getattr(self, name)!r} (supported: {', '.join(SUPPORTED_ACTIVATIONS)})")
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride)) or not self.conv_dim:
            raise bad("conv_dim, conv_kernel and conv_stride must be non-empty and of equal length")
        if self.hidden_size % self.num_attention_heads:
            raise bad(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise bad("hidden_size is not divisible by num_conv_pos_embedding_groups")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise bad(f"pad_token_id {self.pad_token_id} outside the vocabulary of size {self.vocab_size}")
        for key, what in _UNSUPPORTED_WHEN_SET.items():
            if self.extra.get(key) not in (None, False):
                raise bad(f"{key}={self.extra[key]!r} ({what} is not implemented)")

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any]) -> ModelConfig:
        fields = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in hf.items() if k in fields}
        if known.get("pad_token_id") is None:
            known.pop("pad_token_id", None)
        extra = {k: v for k, v in hf.items() if k not in fields}
        # HF defaults differ from ours (which are the Kyrgyz checkpoint's): take HF's for absent keys.
        for key, hf_default in _HF_DEFAULTS.items():
            known.setdefault(key, hf_default)
        return cls(**known, extra=extra)

    def to_hf_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name != "extra":
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        out["num_feat_extract_layers"] = len(self.conv_dim)
        arch = "UniSpeechForCTC" if self.model_type == "unispeech" else "Wav2Vec2ForCTC"
        out.setdefault("architectures", [arch])
        return out

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        try:
            hf = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(hf, dict):
            raise ValueError(f"{path}: expected a JSON object")
        try:
            return cls.from_hf_dict(hf)
        except TypeError as e:
            raise ValueError(f"{path}: malformed config ({e})") from e


# transformers' defaults for keys a config.json may omit (UniSpeechConfig / Wav2Vec2Config agree on these).
_HF_DEFAULTS = {
    "vocab_size": 32,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "conv_bias": False,
    "pad_token_id": 0,
    "activation_dropout": 0.1,
    "feat_proj_dropout": 0.0,
    "final_dropout": 0.1,
    "mask_time_prob": 0.05,
    "codevector_dim": 256,
    "proj_codevector_dim": 256,
}


def large_config(**overrides: Any) -> ModelConfig:
    """The dimensions of microsoft/unispeech-1350-en-17h-ky-ft-1h (UniSpeech-Large+, 43-id CTC head)."""
    return dataclasses.replace(ModelConfig(), **overrides)


def tiny_config(**overrides: Any) -> ModelConfig:
    """A few-thousand-parameter model of the same family, for tests."""
    small = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(16, 16, 16, 16, 16, 16, 16),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        codevector_dim=32,
        proj_codevector_dim=32,
    )
    small.update(overrides)
    return dataclasses.replace(ModelConfig(), **small)
