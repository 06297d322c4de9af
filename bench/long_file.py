"""Transcribe one long synthetic file with the Large config (random weights): wall time, RTF, peak RSS.

    python bench/long_file.py --minutes 10 [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from unispeech import load_model
from unispeech.checkpoint import AudioSettings, save_folder
from unispeech.config import large_config
from unispeech.model import build_model
from unispeech.vocab import phone_vocabulary
import json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    phones = list(json.loads((Path(__file__).parents[1] / "unispeech/data/phones_ky.json").read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        save_folder(Path(tmp) / "large", build_model(large_config()).eval(), phone_vocabulary(phones), AudioSettings())
        rng = np.random.default_rng(0)
        samples = int(args.minutes * 60 * 16000)
        audio = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        sf.write(Path(tmp) / "long.flac", audio, 16000)
        del audio
        t0 = time.perf_counter()
        recognizer = load_model(Path(tmp) / "large", dtype=args.dtype)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = recognizer.transcribe(Path(tmp) / "long.flac")
        wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    seconds = args.minutes * 60
    print(f"| Large, random weights | {args.minutes:g} min | {args.dtype} | load {load_s:.1f} s | "
          f"wall {wall:.1f} s | RTF {wall / seconds:.3f} | peak RSS {peak_gb:.2f} GB | "
          f"{len(result.phones)} phones, duration {result.duration:.1f} s |")


if __name__ == "__main__":
    main()
