"""CPU speed of ours (every backend and precision, and the default) against its peers on the same weights
and audio, in one run: transformers' UniSpeechForCTC (fp32; bf16 autocast where bf16 is native), transformers'
ONNX export in ONNX Runtime (fp32, and int8: dynamic, MatMul only, per-channel signed weights) and in OpenVINO
(fp32).

    python bench/speed.py [--cases clip,mixed,long] [--impls ...] [--clips 100] [--long-minutes 10] [--threads 0]
                          [--processes 1]

Cases: (a) one 10 s clip (min of 5 after a warm-up), (b) a set of mixed-length clips (1-15 s; throughput
with each side's batching), (c) one long file (ours only: the peers have no long-audio path). Large config
with random weights (the Kyrgyz checkpoint's dimensions). Every measurement runs in its own process, so its
peak RSS is its own; exports are made before timing (once, cached in /tmp/unispeech-bench) and their load
time is that of the cached file. Agreement columns: against our torch float32 on the same audio (random
weights: near ties; the agreement that matters is bench/precision_agreement.py's, on the demo model).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path("/tmp/unispeech-bench")
IMPLS = {  # name -> (what runs, its setting)
    "hf-fp32": ("transformers", "float32"),
    "hf-bf16-autocast": ("transformers", "autocast"),
    "hf-onnx-fp32": ("hf-onnx", "float32"),
    "hf-onnx-int8": ("hf-onnx", "int8"),
    "openvino-fp32": ("openvino", "float32"),
    "ours-default": ("ours", ("auto", "auto")),
    "ours-torch-fp32": ("ours", ("torch", "float32")),
    "ours-torch-auto": ("ours", ("torch", "auto")),
    "ours-torch-mixed": ("ours", ("torch", "mixed")),
    "ours-torch-bf16": ("ours", ("torch", "bfloat16")),
    "ours-onnx-fp32": ("ours", ("onnxruntime", "float32")),
    "ours-onnx-int8": ("ours", ("onnxruntime", "int8")),
}
REFERENCE = "ours-torch-fp32"
HF_ONNX = {"float32": "hf.onnx", "int8": "hf.int8.onnx"}


def prepare(minutes: float, clips: int, impls: list[str]) -> None:
    import soundfile as sf
    import torch

    from unispeech.audio import AudioSettings
    from unispeech.checkpoint import save_folder
    from unispeech.config import large_config
    from unispeech.g2p import kyrgyz_inventory
    from unispeech.model import build_model
    from unispeech.vocab import phone_vocabulary

    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "large" / "model.safetensors").is_file():
        torch.manual_seed(0)
        save_folder(
            WORK / "large",
            build_model(large_config()).eval(),
            phone_vocabulary(list(kyrgyz_inventory())),
            AudioSettings(),
        )
    rng = np.random.default_rng(0)
    sets = {
        inputs_name("clip", clips): lambda: [speechlike(10.0, rng)],
        inputs_name("mixed", clips): lambda: [speechlike(float(s), rng) for s in rng.uniform(1, 15, clips)],
    }
    for name, make in sets.items():
        if not (WORK / f"{name}.npz").is_file():
            save_arrays(WORK / f"{name}.npz", make())
    if minutes and not (WORK / f"long{minutes:g}.flac").is_file():
        sf.write(
            WORK / f"long{minutes:g}.flac", np.concatenate([speechlike(60.0, rng) for _ in range(int(minutes))]), 16000
        )
    if any(IMPLS[i][0] in ("hf-onnx", "openvino") for i in impls):
        export_transformers()
    for impl in impls:  # our exports, made (and cached) now, so that no timed child makes one
        kind, setting = IMPLS[impl]
        if kind == "ours":
            subprocess.run([sys.executable, "-c", LOAD_OURS.format(WORK / "large", *setting)], check=True, env=ENV)


LOAD_OURS = "import unispeech; unispeech.load_model('{}', backend='{}', dtype='{}')"
ENV = {**os.environ, "UNISPEECH_CACHE": str(WORK / "cache")}


def export_transformers() -> None:
    """transformers' UniSpeechForCTC -> ONNX (input_values + attention_mask -> logits) and its int8 variant."""
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not (WORK / HF_ONNX["float32"]).is_file():
        model = transformers.UniSpeechForCTC.from_pretrained(WORK / "large").eval()

        class Logits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x, mask):
                return self.model(x, attention_mask=mask).logits

        batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=400)
        torch.onnx.export(
            Logits().eval(),
            (torch.randn(2, 32000), torch.ones(2, 32000, dtype=torch.long)),
            str(WORK / HF_ONNX["float32"]),
            dynamo=True,
            input_names=["input_values", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes=({0: batch, 1: samples}, {0: batch, 1: samples}),
            external_data=True,
        )
    if not (WORK / HF_ONNX["int8"]).is_file():
        quantize_dynamic(
            str(WORK / HF_ONNX["float32"]),
            str(WORK / HF_ONNX["int8"]),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True},
        )


def save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    np.savez(path, *arrays)


def load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6)) ** 2
    tone = np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 0.7 * t)) * t)
    return (0.3 * envelope * (tone + 0.3 * rng.standard_normal(t.size))).astype(np.float32)


def measure(impl: str, case: str, clips: int, minutes: float, threads: int, batch: int, repeats: int) -> dict:
    """Runs in a child process: load, warm up, time, and report logits for the agreement check."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    kind, setting = IMPLS[impl]
    t0 = time.perf_counter()
    model = load(kind, setting, threads)
    load_s = time.perf_counter() - t0
    if case == "long":
        audio_seconds = minutes * 60
        t0 = time.perf_counter()
        model.transcribe(WORK / f"long{minutes:g}.flac")
        wall = time.perf_counter() - t0
        outputs = None
    else:
        waves = load_arrays(WORK / f"{inputs_name(case, clips)}.npz")
        audio_seconds = sum(w.size for w in waves) / 16000
        run = lambda: logits_of(kind, setting, model, waves, batch)  # noqa: E731
        logits_of(kind, setting, model, waves[:2], batch)  # warm-up
        t0 = time.perf_counter()
        outputs = run()
        wall = time.perf_counter() - t0
        if case == "clip":  # min of `repeats` for the single clip
            for _ in range(repeats - 1):
                t0 = time.perf_counter()
                run()
                wall = min(wall, time.perf_counter() - t0)
    peak = peak_rss_gb()
    if outputs is not None:
        save_arrays(outputs_path(impl, case, clips), outputs)
    runs = model.describe() if kind == "ours" else impl
    return dict(impl=impl, case=case, wall=wall, audio_seconds=audio_seconds, load_s=load_s, peak_gb=peak, runs=runs)


def peak_rss_gb() -> float:
    """This process's high-water mark (VmHWM: reset by exec, unlike ru_maxrss, which a child inherits)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024**2


def load(kind: str, setting, threads: int):
    if kind == "ours":
        from unispeech import load_model

        return load_model(WORK / "large", backend=setting[0], dtype=setting[1])
    if kind == "transformers":
        import transformers

        return transformers.UniSpeechForCTC.from_pretrained(WORK / "large").eval()
    if kind == "hf-onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(WORK / HF_ONNX[setting]), options, providers=["CPUExecutionProvider"])
        return lambda x, mask: session.run(None, {"input_values": x, "attention_mask": mask})[0]
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = ov.Core().compile_model(str(WORK / HF_ONNX["float32"]), "CPU", config)
    return lambda x, mask: compiled([x, mask])[0]


def logits_of(kind: str, setting, model, waves: list[np.ndarray], batch: int) -> list[np.ndarray]:
    if kind == "ours":
        return model.logits_batch([model.prepare(w, 16000) for w in waves], batch_size=batch)
    if kind == "transformers":
        return hf_logits(model, waves, batch, autocast=setting == "autocast")
    return padded_batches(model, waves, batch)


def hf_logits(model, waves, batch, autocast: bool):
    """transformers at its best: length-sorted batches with attention masks, as its feature extractor pads."""
    import contextlib

    import torch

    def run(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), ctx:
            masked = torch.from_numpy(mask) if len(x) > 1 else None
            return model(torch.from_numpy(x), attention_mask=masked).logits.float().numpy()

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    return padded_batches(run, waves, batch)


def padded_batches(run, waves: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Each peer's own batching: normalised as its feature extractor does, length-sorted, padded, masked."""
    from unispeech.audio import normalize
    from unispeech.components import conv_output_lengths
    from unispeech.config import large_config

    config = large_config()
    order = sorted(range(len(waves)), key=lambda i: -waves[i].size)
    out = [None] * len(waves)
    for lo in range(0, len(order), batch):
        idx = order[lo : lo + batch]
        normed = [normalize(waves[i]) for i in idx]
        width = max(w.size for w in normed)
        x = np.zeros((len(idx), width), np.float32)
        mask = np.zeros((len(idx), width), np.int64)
        for row, w in enumerate(normed):
            x[row, : w.size] = w
            mask[row, : w.size] = 1
        logits = run(x, mask)
        for row, i in enumerate(idx):
            frames = conv_output_lengths(int(waves[i].size), config.conv_kernel, config.conv_stride)
            out[i] = logits[row, :frames]
    return out


def inputs_name(case: str, clips: int) -> str:
    return "clip10s" if case == "clip" else f"mixed{clips}"


def outputs_path(impl: str, case: str, clips: int) -> Path:
    """Named by the input set, so a table never compares outputs of different audio (e.g. another --clips)."""
    return WORK / f"out-{impl}-{inputs_name(case, clips)}.npz"


def agreement(reference: list[np.ndarray], other: list[np.ndarray]) -> dict:
    same = sum(np.array_equal(_collapse(a), _collapse(b)) for a, b in zip(reference, other))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, other))
    cos = min(float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(reference, other))
    return {"identical": same / len(reference), "max_diff": diff, "min_cosine": cos}


def _collapse(logits: np.ndarray) -> np.ndarray:
    best = logits.argmax(1)
    keep = np.r_[True, best[1:] != best[:-1]] & (best != 39)
    return best[keep]


def default_impls() -> list[str]:
    """Every implementation, bf16 ones only where bf16 is native (emulated bf16 is 10-20x slower)."""
    import torch

    from unispeech.precision import fast_bf16

    native = fast_bf16(torch.device("cpu"))
    return [i for i in IMPLS if native or not any(k in i for k in ("bf16", "torch-auto", "torch-mixed"))]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="clip case: the minimum of this many runs")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="run each measurement in this many processes and keep the fastest (int8 matmul speed can differ "
        "between processes on a VM: docs/performance.md)",
    )
    p.add_argument("--impls", help="comma-separated (default: all; bf16 ones where bf16 is native)")
    p.add_argument("--cases", default="clip,mixed,long")
    p.add_argument("--child", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        row = measure(a.child[0], a.child[1], a.clips, a.long_minutes, a.threads, a.batch, a.repeats)
        print(json.dumps(row))
        return
    impls = a.impls.split(",") if a.impls else default_impls()
    prepare(a.long_minutes if "long" in a.cases else 0, a.clips, impls)
    rows = []
    for case in a.cases.split(","):
        for impl in impls:
            if case == "long" and IMPLS[impl][0] != "ours":
                continue
            flags = ["--clips", str(a.clips), "--long-minutes", str(a.long_minutes), "--threads", str(a.threads)]
            flags += ["--batch", str(a.batch), "--repeats", str(a.repeats)]
            cmd = [sys.executable, __file__, "--child", impl, case, *flags]
            runs = [child(cmd, impl, case) for _ in range(max(a.processes, 1))]
            runs = [r for r in runs if r is not None]
            if runs:
                rows.append(min(runs, key=lambda r: r["wall"]))
                walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
                print(f"  done {impl} {case}: {walls} s", file=sys.stderr, flush=True)
    print_table(rows, a.clips)


def child(cmd: list[str], impl: str, case: str) -> dict | None:
    """One measurement in its own process: its row, or None (with the error) if it failed."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if done.returncode:
        print(f"{impl} {case} failed: {done.stderr[-800:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], clips: int) -> None:
    import torch

    from unispeech.precision import cpu_class, cpu_flags

    flags = " ".join(sorted(cpu_flags()))
    print(f"\nCPU: {cpu_class(cpu_flags())} class, flags: {flags}; {torch.get_num_threads()} threads")
    print(
        "\n| case | implementation | runs | wall (s) | RTF | vs transformers fp32 | vs fastest peer "
        "| peak RSS (GB) | load (s) | phones = ours torch fp32 | max logit diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        case_rows = [x for x in rows if x["case"] == r["case"]]
        hf = next((x["wall"] for x in case_rows if x["impl"] == "hf-fp32"), None)
        peers = [x["wall"] for x in case_rows if IMPLS[x["impl"]][0] != "ours"]
        ref, own = outputs_path(REFERENCE, r["case"], clips), outputs_path(r["impl"], r["case"], clips)
        if r["case"] != "long" and ref.is_file() and own.is_file():
            ag = agreement(load_arrays(ref), load_arrays(own))
            agree = f"{100 * ag['identical']:.1f} % | {ag['max_diff']:.3g}"
        else:
            agree = "- | -"
        ratio = f"{hf / r['wall']:.2f}x" if hf else "-"
        vs_peer = f"{min(peers) / r['wall']:.2f}x" if peers else "-"
        print(
            f"| {r['case']} | {r['impl']} | {r['runs']} | {r['wall']:.2f} | {r['wall'] / r['audio_seconds']:.3f} "
            f"| {ratio} | {vs_peer} | {r['peak_gb']:.2f} | {r['load_s']:.2f} | {agree} |"
        )


if __name__ == "__main__":
    main()
