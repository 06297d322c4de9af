"""What runs the network: our torch model, or its ONNX export in onnxruntime. Both take a padded batch of
prepared waveforms and their lengths (numpy) and return logits and valid frame counts, so everything above
them (chunking, batching, decoding, alignment, scoring, serving) is the same whichever runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from .model import CTCModel
from .precision import Precision, dtype_name


class TorchRunner:
    """A CTCModel on its device, in its precision (precision.py)."""

    backend = "torch"
    max_batch = 1 << 30

    def __init__(self, model: CTCModel, precision: Precision = Precision()):
        self.model, self.precision, self.config = model.eval(), precision, model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wav = torch.from_numpy(batch).to(self.device)  # the CNN casts it to its own precision
        logits, frame_lengths = self.model(wav, torch.from_numpy(lengths).to(self.device))
        return logits.float().cpu().numpy(), frame_lengths.cpu().numpy()

    def describe(self) -> str:
        return f"torch {dtype_name(self.precision)} on {self.device}"

    def identity(self) -> str:
        """Changes with the weights: a retrained model in the same folder is another model."""
        with torch.no_grad():
            return f"{sum(float(p.double().sum()) for p in self.model.parameters()):.9e}"


class OnnxRunner:
    """An ONNX export (export.py) in an onnxruntime CPU session with `threads` intra-op threads (default:
    torch's thread count, so that one setting, `--threads`, governs both backends)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, config: ModelConfig | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.path, self.config = Path(path), config
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings are for graph authors (e.g. an input with a default)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a truncated or foreign file: say which, in one line
            raise ValueError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:300]})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        self.dtype = meta.get("dtype", "float32")
        # int8 activations are quantized with one range per call: alone in its call, an utterance's result
        # does not depend on which others share its batch
        self.max_batch = 1 if self.dtype == "int8" else 1 << 30

    device = torch.device("cpu")

    def __call__(self, batch: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prepared (already normalised) waveforms: the graph's own normalisation is switched off."""
        feed = {
            "input_values": np.ascontiguousarray(batch, np.float32),
            "input_lengths": lengths.astype(np.int64),
            "normalize": np.array(False),
        }
        logits, frame_lengths = self.session.run(["logits", "logits_len"], feed)
        return logits, frame_lengths

    def describe(self) -> str:
        return f"onnxruntime {self.dtype} on cpu"

    def identity(self) -> str:
        stat = self.path.stat()
        return f"{self.path.resolve()} {stat.st_size} {stat.st_mtime_ns}"
