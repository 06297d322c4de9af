"""CPU speed of transformers' UniSpeechForCTC and ours on the same weights and audio, in one run.

    python bench/speed.py [--clips 200] [--long-minutes 10] [--threads 0] [--demo-eval runs/demo/test/manifest.jsonl]

Cases: (a) one 10 s clip, (b) a set of mixed-length clips (1-15 s; throughput with each side's batching),
(c) one long file (ours only: transformers has no long-audio path and runs out of memory on 10 minutes).
Large config with random weights (the Kyrgyz checkpoint's dimensions). Every measurement runs in its own
process, so its peak RSS is its own. Agreement: our bf16 against our fp32 (identical phones, max logit
difference, cosine); with --demo-eval, also the bundled demo model's PER in both precisions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path("/tmp/unispeech-bench")
IMPLS = {
    "hf-fp32": ("transformers", "float32"),
    "hf-bf16-autocast": ("transformers", "autocast"),
    "ours-fp32": ("ours", "float32"),
    "ours-auto": ("ours", "auto"),
    "ours-bf16": ("ours", "bfloat16"),
}


def prepare(minutes: float, clips: int) -> None:
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


def measure(impl: str, case: str, clips: int, minutes: float, threads: int, batch: int) -> dict:
    """Runs in a child process: load, warm up, time, and report logits for the agreement check."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    kind, dtype = IMPLS[impl]
    t0 = time.perf_counter()
    if kind == "ours":
        from unispeech import load_model

        model = load_model(WORK / "large", dtype=dtype)
    else:
        import transformers

        model = transformers.UniSpeechForCTC.from_pretrained(WORK / "large").eval()
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
        run = (
            (lambda: ours_logits(model, waves, batch))
            if kind == "ours"
            else (lambda: hf_logits(model, waves, batch, autocast=dtype == "autocast"))
        )
        run() if case == "clip" else ours_or_hf_warmup(kind, model, waves, batch)
        t0 = time.perf_counter()
        outputs = run()
        wall = time.perf_counter() - t0
        if case == "clip":  # best of 3 for the single clip
            for _ in range(2):
                t0 = time.perf_counter()
                run()
                wall = min(wall, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    if outputs is not None:
        save_arrays(outputs_path(impl, case, clips), outputs)
    return {"impl": impl, "case": case, "wall": wall, "audio_seconds": audio_seconds, "load_s": load_s, "peak_gb": peak}


def ours_or_hf_warmup(kind, model, waves, batch):
    sample = waves[:2]
    ours_logits(model, sample, batch) if kind == "ours" else hf_logits(model, sample, batch, autocast=False)


def ours_logits(model, waves, batch):
    prepared = [model.prepare(w, 16000) for w in waves]
    return model.logits_batch(prepared, batch_size=batch)


def hf_logits(model, waves, batch, autocast: bool):
    """transformers at its best: length-sorted batches with attention masks, as its feature extractor pads."""
    import contextlib

    import torch

    order = sorted(range(len(waves)), key=lambda i: -waves[i].size)
    out = [None] * len(waves)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        for lo in range(0, len(order), batch):
            idx = order[lo : lo + batch]
            normed = [(waves[i] - waves[i].mean()) / np.sqrt(waves[i].var() + 1e-7) for i in idx]
            width = max(w.size for w in normed)
            x = torch.zeros(len(idx), width)
            mask = torch.zeros(len(idx), width, dtype=torch.long)
            for row, w in enumerate(normed):
                x[row, : w.size] = torch.from_numpy(w)
                mask[row, : w.size] = 1
            logits = model(x, attention_mask=mask if len(idx) > 1 else None).logits.float()
            lengths = model._get_feat_extract_output_lengths(mask.sum(-1))
            for row, i in enumerate(idx):
                out[i] = logits[row, : int(lengths[row])].numpy()
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--cases", default="clip,mixed,long")
    p.add_argument("--child", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(measure(a.child[0], a.child[1], a.clips, a.long_minutes, a.threads, a.batch)))
        return
    prepare(a.long_minutes if "long" in a.cases else 0, a.clips)
    rows = []
    for case in a.cases.split(","):
        for impl in a.impls.split(","):
            if case == "long" and not impl.startswith("ours"):
                continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                impl,
                case,
                "--clips",
                str(a.clips),
                "--long-minutes",
                str(a.long_minutes),
                "--threads",
                str(a.threads),
                "--batch",
                str(a.batch),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{impl} {case} failed: {done.stderr[-500:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  done {impl} {case}: {rows[-1]['wall']:.2f} s", file=sys.stderr, flush=True)
    print_table(rows, a)


def print_table(rows: list[dict], a) -> None:
    base = {(r["case"]): r for r in rows if r["impl"] == "hf-fp32"}
    base_bf16 = {(r["case"]): r for r in rows if r["impl"] == "hf-bf16-autocast"}
    print(
        "\n| case | implementation | wall (s) | RTF | audio s / s | vs transformers fp32 | vs transformers bf16 "
        "| peak RSS (GB) | load (s) | phones = ours fp32 | max logit diff | min cosine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rtf = r["wall"] / r["audio_seconds"]
        up = base.get(r["case"], {}).get("wall")
        up16 = base_bf16.get(r["case"], {}).get("wall")
        agree = "-"
        ref_path, own_path = outputs_path("ours-fp32", r["case"], a.clips), outputs_path(r["impl"], r["case"], a.clips)
        if r["case"] != "long" and ref_path.is_file() and own_path.is_file():
            ag = agreement(load_arrays(ref_path), load_arrays(own_path))
            agree = f"{100 * ag['identical']:.1f} % | {ag['max_diff']:.3g} | {ag['min_cosine']:.5f}"
        else:
            agree = "- | - | -"
        ratio = f"{up / r['wall']:.2f}x" if up else "-"
        ratio16 = f"{up16 / r['wall']:.2f}x" if up16 else "-"
        print(
            f"| {r['case']} | {r['impl']} | {r['wall']:.2f} | {rtf:.3f} | {1 / rtf:.1f} | {ratio} | {ratio16} | "
            f"{r['peak_gb']:.2f} | {r['load_s']:.2f} | {agree} |"
        )


if __name__ == "__main__":
    main()
