"""Transcribe one long synthetic file with the Large config (random weights): wall time, RTF, peak RSS.

    python bench/long_file.py --minutes 10 [--backend auto|torch|onnxruntime] [--dtype auto|float32|bfloat16|int8]

The model folder and the audio are written by a child process first, so the peak RSS reported is that
of loading the model and transcribing the file alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

WORK = Path("/tmp/unispeech-bench")


def make_inputs(minutes: float) -> None:
    import numpy as np
    import soundfile as sf
    import torch

    from unispeech.audio import AudioSettings
    from unispeech.checkpoint import save_folder
    from unispeech.config import large_config
    from unispeech.model import build_model
    from unispeech.vocab import phone_vocabulary

    phones = list(json.loads((Path(__file__).parents[1] / "unispeech/data/phones_ky.json").read_text()))
    if not (WORK / "large" / "model.safetensors").is_file():
        torch.manual_seed(0)
        save_folder(WORK / "large", build_model(large_config()).eval(), phone_vocabulary(phones), AudioSettings())
    audio_path = WORK / f"noise-{minutes:g}min.flac"
    if not audio_path.is_file():
        rng = np.random.default_rng(0)
        sf.write(audio_path, (0.1 * rng.standard_normal(int(minutes * 60 * 16000))).astype(np.float32), 16000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--make-inputs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_inputs:
        make_inputs(args.minutes)
        return
    subprocess.run([sys.executable, __file__, "--make-inputs", "--minutes", str(args.minutes)], check=True)
    import os

    from unispeech import load_model

    os.environ.setdefault("UNISPEECH_CACHE", str(WORK / "cache"))  # bench/speed.py's exports
    t0 = time.perf_counter()
    recognizer = load_model(WORK / "large", dtype=args.dtype, backend=args.backend)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = recognizer.transcribe(WORK / f"noise-{args.minutes:g}min.flac")
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"| Large, random weights | {args.minutes:g} min | {recognizer.describe()} | load {load_s:.1f} s "
        f"| wall {wall:.1f} s "
        f"| RTF {wall / (args.minutes * 60):.3f} | peak RSS {peak_gb:.2f} GB | {len(result.phones)} phones |"
    )


if __name__ == "__main__":
    main()
