"""The boxes of the UniSpeech / wav2vec 2.0 encoder, one class each.

Attribute names follow transformers' module names so that a state dict maps across by prefix alone.
Every box takes `(x, lengths)`: `lengths` are the valid frames of each padded row, so padding never
changes the result for the valid part of a row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .precision import bf16_conv_is_exact, runs_in_bf16

ACTIVATIONS = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "swish": nn.SiLU,
    "silu": nn.SiLU,
}


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def cpu_inference(x: torch.Tensor) -> bool:
    """Whether `x` goes through a CPU forward pass without autograd and outside export: where the CNN runs
    depth-first and the positional conv through FFTs (training, export and CUDA keep the plain ops)."""
    return x.device.type == "cpu" and not (torch.is_grad_enabled() or torch.compiler.is_exporting())


def conv_output_lengths(lengths: torch.Tensor | int, kernels, strides) -> torch.Tensor | int:
    """Output frames of the strided convolutions for `lengths` input samples (a tensor, or a plain int)."""
    for kernel, stride in zip(kernels, strides):
        lengths = (lengths - kernel) // stride + 1  # floor division, for tensors as for ints
    return lengths.clamp(min=0) if isinstance(lengths, torch.Tensor) else max(lengths, 0)


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm with one group per channel (normalise over time), using only each row's valid frames.

    transformers' GroupNorm lets padding leak into the statistics; this one does not.
    """

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # x: (B, T, C)
        mask = valid_mask(lengths, x.shape[1])[:, :, None].to(x.dtype)  # (B, T, 1)
        count = lengths.clamp(min=1)[:, None, None].to(x.dtype)
        mean = (x * mask).sum(1, keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(1, keepdim=True) / count
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class ConvLayer(nn.Module):
    """One conv block of the feature encoder: Conv1d, optional LayerNorm/GroupNorm, activation.

    Runs channels-last: the strided convolution is one matmul over overlapping windows of frames
    (faster than conv1d on CPUs, and the norms need no transposes). `conv` keeps transformers' weights.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, bias: bool, norm: str | None, act: str):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=kernel, stride=stride, bias=bias)
        self.kernel, self.stride = kernel, stride
        self.norm_kind = norm
        if norm == "layer":
            self.layer_norm = nn.LayerNorm(out_dim, elementwise_affine=True)
        elif norm == "group":
            self.layer_norm = MaskedGroupNorm(num_groups=out_dim, num_channels=out_dim, affine=True)
        self.activation = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, T, C_in) -> (B, T', C_out)
        """`lengths`: valid output frames (group norm takes its statistics over them only)."""
        windows = x.unfold(1, self.kernel, self.stride).transpose(2, 3)  # (B, T', k, C_in), a view
        windows = windows.reshape(x.shape[0], windows.shape[1], -1)
        return self._transform(windows, self.window_weight(), lengths)

    def window_weight(self) -> torch.Tensor:
        return self.conv.weight.permute(2, 1, 0).reshape(-1, self.conv.out_channels)  # (k * C_in, C_out)

    def frames(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(T, C_in) -> (T', C_out): one piece of one row, every output frame valid (no group norm)."""
        windows = x.to(weight.dtype).unfold(0, self.kernel, self.stride).transpose(1, 2)  # as forward's hook
        return self._transform(windows.reshape(windows.shape[0], -1), weight, None)

    def _transform(self, windows: torch.Tensor, weight: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(..., k * C_in) windows -> conv, norm and activation of each frame (group norm: of whole rows)."""
        x = windows @ weight
        if self.conv.bias is not None:
            x = x + self.conv.bias
        if self.norm_kind == "layer":
            x = self.layer_norm(x)
        elif self.norm_kind == "group":
            x = self.layer_norm.forward_masked(x, lengths)
        return self.activation(x)


class FeatureEncoder(nn.Module):
    """The CNN that turns the waveform into 20 ms latent frames z (the paper's "CNN" box)."""

    CHUNK_FRAMES = 64  # output frames per piece in CPU inference (docs/performance.md, "The CNN depth-first")

    def __init__(self, conv_dim, conv_kernel, conv_stride, conv_bias: bool, norm: str, act: str):
        super().__init__()
        layers = []
        for i, (dim, kernel, stride) in enumerate(zip(conv_dim, conv_kernel, conv_stride)):
            layer_norm = "layer" if norm == "layer" else ("group" if i == 0 else None)
            in_dim = 1 if i == 0 else conv_dim[i - 1]
            layers.append(ConvLayer(in_dim, dim, kernel, stride, conv_bias, layer_norm, act))
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference on a CPU leaves the frames past `lengths` zero (they depend on padding only); training,
        export and CUDA compute them from the padding."""
        x = wav[:, :, None]  # (B, samples, 1)
        piecewise = self._first_per_frame_layer() if cpu_inference(wav) else len(self.conv_layers)
        for layer in self.conv_layers[:piecewise]:
            lengths = conv_output_lengths(lengths, (layer.kernel,), (layer.stride,))
            x = layer(x, lengths)
        if piecewise < len(self.conv_layers):
            x, lengths = self._depth_first(self.conv_layers[piecewise:], x, lengths)
        return x, lengths  # (B, T, C)

    def _first_per_frame_layer(self) -> int:
        """Group norm takes a whole row's statistics: only the layers after the last such one go piecewise."""
        group = [i for i, layer in enumerate(self.conv_layers) if layer.norm_kind == "group"]
        return group[-1] + 1 if group else 0

    def _depth_first(self, layers, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The same arithmetic, piece by piece: each run of CHUNK_FRAMES output frames of one row goes through
        # every layer from the input frames it depends on, so no layer's whole-batch map (32000 x 512 floats
        # per 10 s in the first) is allocated, filled and copied: ~10 % of the float32 CNN's time, 19 % in batches.
        kernels, strides = [c.kernel for c in layers], [c.stride for c in layers]
        hop, field = math.prod(strides), 1
        for kernel, stride in zip(reversed(kernels), reversed(strides)):
            field = (field - 1) * stride + kernel
        lengths = conv_output_lengths(lengths, kernels, strides)
        weights = [layer.window_weight() for layer in layers]
        frames = conv_output_lengths(x.shape[1], kernels, strides)
        out = x.new_zeros(x.shape[0], frames, weights[-1].shape[1], dtype=weights[-1].dtype)
        for row, valid in enumerate(lengths.tolist()):
            for start in range(0, valid, self.CHUNK_FRAMES):
                end = min(start + self.CHUNK_FRAMES, valid)
                piece = x[row, start * hop : (end - 1) * hop + field]
                for layer, weight in zip(layers, weights):
                    piece = layer.frames(piece, weight)
                out[row, start:end] = piece
        return out, lengths


class FeatureProjection(nn.Module):
    """LayerNorm over the CNN features, then a linear map to the transformer width."""

    def __init__(self, in_dim: int, hidden: int, eps: float, dropout: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_dim, eps=eps)
        self.projection = nn.Linear(in_dim, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.layer_norm(x)  # the quantizer reads these (pretraining)
        return self.dropout(self.projection(normed)), normed


class WeightNormConv1d(nn.Module):
    """Conv1d whose kernel is g * v / ||v||, the norm taken per kernel position (weight_norm with dim=2)."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        if self.weight_v.is_meta:  # loading builds on meta; normal_ there imports torch's compiler (~1 s)
            return
        nn.init.normal_(self.weight_v, std=math.sqrt(4.0 / (kernel * channels)))
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def weight(self) -> torch.Tensor:
        if torch.is_grad_enabled() or torch.compiler.is_exporting():
            return self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        g, v = self.weight_g, self.weight_v
        key = (g.data_ptr(), g._version, v.data_ptr(), v._version, v.dtype, v.device)
        if getattr(self, "_cached", (None,))[0] != key:  # inference: compute the kernel once, not per call
            self._cached = (key, self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return self._cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight(), self.bias
        if runs_in_bf16(x, weight):
            if bf16_conv_is_exact(weight.shape[0], self.groups, weight.shape[2], x.device.type):
                return F.conv1d(x, weight, bias, padding=self.padding, groups=self.groups)
            with torch.autocast(x.device.type, enabled=False):
                return self._float32(x.float(), weight, bias.float()).to(x.dtype)
        if x.dtype == weight.dtype == torch.float32:
            return self._float32(x, weight, bias)
        return F.conv1d(x, weight, bias, padding=self.padding, groups=self.groups)

    def _float32(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The conv in float32 (`weight` in its own type). CPU inference runs it through FFTs, 3x faster than
        oneDNN's direct conv for the 128-wide kernel (docs/performance.md, "The positional conv through FFTs")."""
        if not cpu_inference(x) or 2 * weight.shape[2] > FFT_FRAMES:  # a kernel that wide leaves few frames a block
            return F.conv1d(x, weight.float(), bias, padding=self.padding, groups=self.groups)
        if getattr(self, "_spectrum", (None,))[0] is not weight:  # weight() gives one tensor until the weights change
            self._spectrum = (weight, conv_spectrum(weight.float(), self.groups, FFT_FRAMES))
        return fft_conv1d(x, self._spectrum[1], bias, weight.shape[2], self.padding)


FFT_FRAMES = 512  # frames per FFT in fft_conv1d (the spectrum of the Large positional conv is then 135 MB)


def conv_spectrum(weight: torch.Tensor, groups: int, size: int) -> torch.Tensor:
    """A grouped conv1d kernel (C_out, C_in / groups, k) -> its spectrum for fft_conv1d: (size // 2 + 1, groups,
    C_in / groups, C_out / groups), complex."""
    out, per_group, _ = weight.shape
    spectrum = torch.fft.rfft(weight.flip(-1), n=size)  # conv1d correlates: a convolution with the kernel reversed
    return spectrum.reshape(groups, out // groups, per_group, -1).permute(3, 0, 2, 1).contiguous()


def fft_conv1d(x: torch.Tensor, spectrum: torch.Tensor, bias: torch.Tensor, kernel: int, padding: int) -> torch.Tensor:
    """F.conv1d(x, weight, bias, padding=padding, groups=...) for x (B, C, T) from conv_spectrum(weight, ...):
    overlap-save, every block of frames through one FFT and one matmul per frequency and group."""
    B, C, T = x.shape
    bins, groups, per_group, _ = spectrum.shape
    size = 2 * (bins - 1)
    frames, step = T + 2 * padding - kernel + 1, size - kernel + 1  # output frames; of them, per block
    blocks = -(-frames // step)
    padded = F.pad(x, (padding, blocks * step + kernel - 1 - T - padding))
    X = torch.fft.rfft(padded.unfold(-1, size, step), n=size)  # (B, C, blocks, bins)
    X = X.reshape(B, groups, per_group, blocks, bins).permute(4, 1, 0, 3, 2).reshape(bins, groups, -1, per_group)
    Y = (X @ spectrum).reshape(bins, groups, B, blocks, -1).permute(2, 1, 4, 3, 0).reshape(B, C, blocks, bins)
    y = torch.fft.irfft(Y, n=size)[..., kernel - 1 :]  # the block's frames that no wrap-around reaches
    return y.reshape(B, C, blocks * step)[..., :frames] + bias[:, None]


class ConvPositionalEmbedding(nn.Module):
    """Relative position information: a wide grouped convolution over the frames, added to them."""

    def __init__(self, channels: int, kernel: int, groups: int, act: str):
        super().__init__()
        self.conv = WeightNormConv1d(channels, kernel, groups)
        self.trim = 1 if kernel % 2 == 0 else 0  # "same" length for even kernels
        self.activation = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return self.activation(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention; padded key frames are masked out."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if torch.compiler.is_exporting():  # one op in the graph: export.py maps it onto a fused kernel
            return self.out_proj(fused_attention(q, k, v, key_mask, self.heads))
        dropout = self.dropout if self.training else 0.0
        return self.out_proj(_attention(q, k, v, key_mask, self.heads, dropout))


def _attention(q, k, v, key_mask: torch.Tensor | None, heads: int, dropout: float = 0.0) -> torch.Tensor:
    B, T, C = q.shape
    q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
    attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
    return y.transpose(1, 2).reshape(B, T, C)


@torch.library.custom_op("unispeech::attention", mutates_args=())
def fused_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, heads: int
) -> torch.Tensor:
    """Attention over (B, T, C) projections, keys where `key_mask` is False ignored, as one exportable op."""
    return _attention(q, k, v, key_mask, heads)


@fused_attention.register_fake
def _(q, k, v, key_mask, heads):
    return torch.empty_like(q)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str, activation_dropout: float, dropout: float):
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden)
        self.activation = ACTIVATIONS[act]()
        self.intermediate_dropout = nn.Dropout(activation_dropout)
        self.output_dense = nn.Linear(hidden, dim)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(self.activation(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(nn.Module):
    """One transformer block; `pre_norm` selects the stable (pre-LN) or the original (post-LN) layout."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn: int,
        act: str,
        eps: float,
        pre_norm: bool,
        attention_dropout: float,
        activation_dropout: float,
        dropout: float,
    ):
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = SelfAttention(dim, heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = FeedForward(dim, ffn, act, activation_dropout, dropout)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.attention(self.layer_norm(x), key_mask))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.dropout(self.attention(x, key_mask)))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    """Positional convolution + transformer layers (the paper's "Transformer" box), with LayerDrop."""

    def __init__(
        self,
        layers: list[EncoderLayer],
        pos_conv: ConvPositionalEmbedding,
        dim: int,
        eps: float,
        pre_norm: bool,
        dropout: float,
        layerdrop: float,
    ):
        super().__init__()
        self.pre_norm, self.layerdrop = pre_norm, layerdrop
        self.pos_conv_embed = pos_conv
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        # The residual stream takes the layer norms' type (float32 under bf16 matmuls: precision.py).
        key_mask = None
        if torch.compiler.is_exporting() or bool((lengths < x.shape[1]).any()):  # an export serves any batch
            key_mask = valid_mask(lengths, x.shape[1])
            x = x * key_mask[:, :, None].to(x.dtype)  # padding must not reach the positional conv
        x = x + self.pos_conv_embed(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        x = self.dropout(x)
        for layer in self.layers:
            if self.training and self.layerdrop > 0 and float(torch.rand(())) < self.layerdrop:
                continue
            x = layer(x, key_mask)
        return self.layer_norm(x) if self.pre_norm else x


# Box -> the submodule whose type its inputs take (precision.Precision.apply casts them on entry).
BOX_INPUT_TYPES = {
    ConvLayer: "conv",
    FeatureProjection: "layer_norm",
    ConvPositionalEmbedding: "conv",
    SelfAttention: "q_proj",
    FeedForward: "intermediate_dense",
    Encoder: "layer_norm",
}
