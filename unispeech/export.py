"""ONNX export of a CTC model, float32 and int8: one graph from waveforms and their lengths to logits,
log-probabilities and frame lengths, with the vocabulary, audio settings and frame geometry recorded in it,
so that onnxruntime alone can run it (`runners.OnnxRunner` is ours; onnx-asr's wav2vec2-ctc contract holds).

The graph is traced from our implementation (torch.export); attention becomes onnxruntime's fused
MultiHeadAttention. onnxruntime then folds the constants (the weight-normed positional kernel, the CNN's
matmul weights), so that the int8 pass finds every matmul weight constant. int8 = dynamic quantization of
every matmul with a constant weight: signed weights per output channel, activations quantized per call
(uint8, their range measured on the fly) -- the scheme that measured fastest at equal accuracy (performance.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .audio import AudioSettings, FrameGeometry
from .checkpoint import metadata_files, weights_file
from .files import atomic_write
from .model import CTCModel
from .vocab import Vocabulary

EXPORT_VERSION = 2  # bump when the graph changes: cached exports of older versions are made anew
# The names onnx-asr's wav2vec2-ctc runner feeds and reads; `normalize` (a bool scalar) defaults to the
# model's do_normalize, so a runner that passes raw 16 kHz audio gets it normalised per utterance in the
# graph, while ours, which normalises whole files before cutting long ones into windows, passes False.
INPUTS = ("input_values", "input_lengths", "normalize")  # (B, S) float32, (B,) int64 valid samples, ()
OUTPUTS = ("logits", "logprobs", "logits_len")  # (B, T, V) float32 twice (raw, log-softmax), (B,) int64
FILES = {"float32": "model.onnx", "int8": "model.int8.onnx"}
FP32_TOLERANCE = 1e-4  # largest |logit difference| an fp32 export may show against our torch fp32


class ExportError(RuntimeError):
    """The export could not be made, or does not compute what the model computes."""


@dataclasses.dataclass(frozen=True)
class Int8Options:
    """What the int8 pass leaves in float32: the matmuls inside these modules (names as in the state dict)."""

    keep_float: tuple[str, ...] = ("lm_head", "feature_extractor")


def export_onnx(
    model: CTCModel,
    vocab: Vocabulary,
    audio: AudioSettings,
    out: str | os.PathLike,
    dtypes: tuple[str, ...] = ("float32",),
    int8: Int8Options = Int8Options(),
    source: str = "",
) -> dict[str, Path]:
    """Write `out`/model.onnx (and model.int8.onnx with "int8" in `dtypes`) plus config.json,
    preprocessor_config.json, the vocabulary, tokens.txt and vocab.txt; returns {dtype: path}. The float32 graph is
    checked against `model` (float32) on a padded batch and refused beyond FP32_TOLERANCE."""
    unknown = set(dtypes) - set(FILES)
    if unknown:
        raise ValueError(f"cannot export in {', '.join(sorted(unknown))} (expected float32 or int8)")
    out = Path(out)
    model = model.float().eval()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp, _quiet():
        traced, matmuls = _trace(_Graph(model, vocab.blank_id), Path(tmp) / "traced.onnx")
        fp32 = _fold_constants(traced, Path(tmp) / FILES["float32"])
        metadata = graph_metadata(model, vocab, audio, source)
        _check_fp32(model, fp32, audio)
        made = {"float32": fp32}
        if "int8" in dtypes:
            keep = [node for node, scope in matmuls.items() if any(m in scope for m in int8.keep_float)]
            made["int8"] = _quantize(fp32, Path(tmp) / FILES["int8"], keep)
        paths = {}
        for dtype in dtypes:
            _write_metadata(made[dtype], {**metadata, "dtype": dtype})
            paths[dtype] = _move_into(made[dtype], out)
    token_files = {"tokens.txt": _tokens_txt(vocab), "vocab.txt": _tokens_txt(vocab, blank="<blk>")}
    for name, text in {**metadata_files(model.config, vocab, audio), **token_files}.items():
        atomic_write(out / name, text + "\n")
    return paths


def graph_metadata(model: CTCModel, vocab: Vocabulary, audio: AudioSettings, source: str) -> dict[str, str]:
    """What a runner needs besides the graph, as ONNX metadata (strings)."""
    frames = FrameGeometry.of(model.config, audio)
    return {
        "unispeech.export_version": str(EXPORT_VERSION),
        "model_type": f"{model.config.model_type}-ctc",
        "source": source,
        "sampling_rate": str(audio.sampling_rate),
        "do_normalize": json.dumps(audio.do_normalize),  # zero mean, unit variance per utterance, before padding
        "frame_stride": str(frames.stride),
        "receptive_field": str(frames.receptive_field),
        "frame_seconds": repr(frames.seconds_per_frame),
        "blank_id": str(vocab.blank_id),
        "vocabulary": json.dumps(vocab.tokens, ensure_ascii=False),
        "inputs": ",".join(INPUTS),
        "outputs": ",".join(OUTPUTS),
    }


class _Graph(torch.nn.Module):
    """What the ONNX graph computes: optional per-utterance normalisation, the model, log-probabilities
    (certain blank past each row's last valid frame, for runners that estimate the frame count)."""

    def __init__(self, model: CTCModel, blank_id: int):
        super().__init__()
        self.model, self.blank_id = model, blank_id

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, normalize: torch.Tensor):
        valid = (torch.arange(wav.shape[1])[None, :] < lengths[:, None]).to(wav.dtype)
        count = lengths[:, None].to(wav.dtype)
        mean = (wav * valid).sum(1, keepdim=True) / count
        var = (((wav - mean) * valid) ** 2).sum(1, keepdim=True) / count
        wav = torch.where(normalize, (wav - mean) / torch.sqrt(var + 1e-7) * valid, wav)  # audio.normalize
        logits, frame_lengths = self.model(wav, lengths)
        past_end = torch.arange(logits.shape[1])[None, :, None] >= frame_lengths[:, None, None]
        blank = torch.full_like(logits[:1, :1], -1e4)
        blank[..., self.blank_id] = 0.0
        return logits, torch.where(past_end, blank, torch.log_softmax(logits, -1)), frame_lengths


def _trace(graph: _Graph, path: Path) -> tuple[Path, dict[str, str]]:
    """torch.export -> ONNX with dynamic batch and length; also {matmul node: the module it computes}."""
    import onnx

    frames = FrameGeometry.of(graph.model.config, AudioSettings())
    samples = 2 * frames.receptive_field + 1000
    example = (torch.zeros(2, samples), torch.tensor([samples, samples - 500]), torch.tensor(False))
    batch, length = torch.export.Dim("batch"), torch.export.Dim("samples", min=frames.receptive_field)
    with torch.no_grad():
        torch.onnx.export(
            graph,
            example,
            str(path),
            dynamo=True,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_shapes=({0: batch, 1: length}, {0: batch}, {}),
            custom_translation_table={torch.ops.unispeech.attention.default: _multi_head_attention},
            external_data=True,
            optimize=True,
            verbose=False,
        )
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return path, {n.name: _module(n) for n in nodes if n.op_type == "MatMul"}


def _module(node) -> str:
    """The modules a node was traced inside, outermost first, each name ending in a dot ("model. model.backbone.
    ... model.lm_head."), so that a fragment matches a whole name: "layers.1." not "layers.10", and
    "conv_layers.0." also where the matmul sits in that module itself."""
    import ast

    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "[]")
    return " ".join(f"{s}." for s in ast.literal_eval(scopes) if s)


def _multi_head_attention(q, k, v, key_mask, heads: int):
    """The translation of components.fused_attention: com.microsoft MultiHeadAttention (B, T, C) layout."""
    import onnx
    import onnxscript
    from onnxscript import opset18 as op

    schema = onnx.defs.OpSchema
    optional = schema.FormalParameterOption.Optional
    mha = schema(
        "MultiHeadAttention",
        "com.microsoft",
        1,
        inputs=[
            schema.FormalParameter("query", "T"),
            schema.FormalParameter("key", "T"),
            schema.FormalParameter("value", "T"),
            schema.FormalParameter("bias", "T", param_option=optional),
            schema.FormalParameter("key_padding_mask", "M", param_option=optional),
        ],
        outputs=[schema.FormalParameter("output", "T")],
        type_constraints=[("T", ["tensor(float)"], ""), ("M", ["tensor(int32)"], "")],
        attributes=[schema.Attribute("num_heads", schema.AttrType.INT, "")],
    )
    attention = onnxscript.values.Op(onnxscript.values.Opset("com.microsoft", 1), "MultiHeadAttention", mha)
    return attention(q, k, v, None, op.Cast(key_mask, to=onnx.TensorProto.INT32), num_heads=heads)


def _fold_constants(src: Path, dst: Path) -> Path:
    """onnxruntime's basic (portable, standard-op) graph optimizations, saved: constant folding above all."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    options.optimized_model_filepath = str(dst)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", dst.name + ".data")
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return dst


def _quantize(src: Path, dst: Path, exclude: list[str]) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        use_external_data_format=_is_large(src),
        extra_options={"MatMulConstBOnly": True},
    )
    return dst


def _is_large(path: Path) -> bool:
    """Protobuf files stop at 2 GB: past ~1.5 GB of weights, keep them in a .data file beside the graph."""
    data = path.with_name(path.name + ".data")
    return (data.stat().st_size if data.exists() else path.stat().st_size) > 1_500_000_000


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    """The metadata, and the default of the `normalize` input (an initializer of the same name)."""
    import onnx

    model = onnx.load(str(path))
    normalize = json.loads(metadata["do_normalize"])
    kept = [t for t in model.graph.initializer if t.name != "normalize"]
    del model.graph.initializer[:]
    model.graph.initializer.extend([*kept, onnx.numpy_helper.from_array(np.array(normalize), "normalize")])
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    large = _is_large(path)
    path.with_name(path.name + ".data").unlink(missing_ok=True)  # loaded above; written anew if large
    onnx.save(model, str(path), save_as_external_data=large, location=path.name + ".data" if large else None)


def _move_into(path: Path, folder: Path) -> Path:
    """Replace the file (and its weights file) in `folder` by rename: a reader never sees half a model."""
    data = path.with_name(path.name + ".data")
    if data.exists():
        os.replace(data, folder / data.name)
    else:
        (folder / data.name).unlink(missing_ok=True)
    os.replace(path, folder / path.name)
    return folder / path.name


def _check_fp32(model: CTCModel, path: Path, audio: AudioSettings) -> None:
    """Our torch float32 against the graph on two rows of different length (padding exercised)."""
    from .runners import OnnxRunner

    rate = audio.sampling_rate
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(2, rate, generator=gen)
    lengths = torch.tensor([rate, rate * 2 // 3])
    batch[1, lengths[1] :] = 0
    with torch.inference_mode():
        expected, expected_lengths = model(batch, lengths)
    got, got_lengths = OnnxRunner(path)(batch.numpy(), lengths.numpy())
    if list(got_lengths) != expected_lengths.tolist():
        raise ExportError(f"the ONNX graph gives {list(got_lengths)} frames, the model {expected_lengths.tolist()}")
    diff = max(
        float(np.abs(got[i, :n] - expected[i, :n].numpy()).max()) for i, n in enumerate(expected_lengths.tolist())
    )
    if diff > FP32_TOLERANCE:
        raise ExportError(f"the ONNX graph's logits differ from the model's by {diff:.2e} (> {FP32_TOLERANCE})")


def _tokens_txt(vocab: Vocabulary, blank: str | None = None) -> str:
    """One "token id" line per id (sherpa-onnx's tokens.txt; onnx-asr's vocab.txt names the blank <blk>)."""
    tokens = [blank if blank and i == vocab.blank_id else t for i, t in enumerate(vocab.tokens)]
    return "\n".join(f"{token} {i}" for i, token in enumerate(tokens))


@contextlib.contextmanager
def _quiet():
    """torch.onnx and the quantizer print progress, warnings and log lines meant for their developers."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


# ---- the cache: exports made once per model, found again by what they were made from ----


def cache_root() -> Path:
    return Path(os.environ.get("UNISPEECH_CACHE", Path.home() / ".cache" / "unispeech")) / "onnx"


def export_key(folder: Path, int8: Int8Options) -> str:
    """Changes when the weights (by file identity), the config, the export code or the tools change."""
    import onnxruntime

    weights = weights_file(folder)
    stat = weights.stat() if weights else None
    facts = {
        "weights": [str(weights.resolve()), stat.st_size, stat.st_mtime_ns] if stat else None,
        "config": (folder / "config.json").read_text(encoding="utf-8"),
        "export": EXPORT_VERSION,
        "int8": dataclasses.asdict(int8),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def cached_export(folder: Path, dtype: str, load, int8: Int8Options = Int8Options(), notify=print) -> Path:
    """The ONNX file of the model in `folder` in `dtype`: the folder's own (an export folder), else the
    cache's, else made now with `load()` -> (model, vocab, audio) and kept in the cache."""
    own = folder / FILES[dtype]
    if own.is_file():
        return own
    if weights_file(folder) is None:
        raise ValueError(f"{folder}: no weights and no ONNX {dtype} export ({FILES[dtype]}) in it")
    target = cache_root() / export_key(folder, int8)
    if (target / FILES[dtype]).is_file():
        return target / FILES[dtype]
    notify(f"unispeech: exporting {folder.name} to ONNX {dtype} once (cached in {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".making-"))
    try:
        model, vocab, audio = load()
        export_onnx(model, vocab, audio, staging, dtypes=tuple(dict.fromkeys(("float32", dtype))), int8=int8)
        if target.exists():  # another process made another dtype meanwhile: keep both
            for item in staging.iterdir():
                if not (target / item.name).exists():
                    os.replace(item, target / item.name)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / FILES[dtype]


def read_graph_metadata(path: str | os.PathLike) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
