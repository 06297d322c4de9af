"""GPU speed of ours against transformers' UniSpeechForCTC on the same weights and audio, in one run.

    python bench/cuda_speed.py [--clips 100] [--batch 16] [--repeats 10]

Large config (the Kyrgyz checkpoint's dimensions) with random weights, as bench/speed.py. Cases: one 10 s clip
(min of `repeats` after a warm-up) and a set of mixed 1-15 s clips (throughput; ours through its own batching,
transformers in length-sorted padded batches with an attention mask). Agreement: frames whose argmax equals our
float32's (random weights: near ties are common; the agreement that matters is bench/precision_agreement.py's).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from speed import speechlike

WORK = Path("/tmp/unispeech-cuda-bench")


def make_model() -> Path:
    from unispeech.audio import AudioSettings
    from unispeech.checkpoint import save_folder
    from unispeech.config import large_config
    from unispeech.g2p import kyrgyz_inventory
    from unispeech.model import build_model
    from unispeech.vocab import phone_vocabulary

    if not (WORK / "model.safetensors").is_file():
        torch.manual_seed(0)
        vocab = phone_vocabulary(list(kyrgyz_inventory()))
        save_folder(WORK, build_model(large_config()).eval(), vocab, AudioSettings())
    return WORK


def ours(folder: Path, dtype: str, device: str):
    from unispeech import load_model

    recognizer = load_model(folder, device=device, dtype=dtype)

    def run(wavs: list[np.ndarray], batch: int) -> list[np.ndarray]:
        return recognizer.logits_batch([recognizer.prepare(w, 16000) for w in wavs], batch_size=batch)

    return recognizer.describe(), run


def transformers_ctc(folder: Path, autocast: bool, device: str):
    import transformers

    model = transformers.UniSpeechForCTC.from_pretrained(folder).to(device).eval()
    context = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if autocast else nullcontext

    @torch.no_grad()
    def run(wavs: list[np.ndarray], batch: int) -> list[np.ndarray]:
        order = sorted(range(len(wavs)), key=lambda i: wavs[i].size)
        out: list[np.ndarray | None] = [None] * len(wavs)
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            width = max(wavs[i].size for i in rows)
            x = torch.zeros(len(rows), width)
            mask = torch.zeros(len(rows), width, dtype=torch.long)
            for k, i in enumerate(rows):
                w = torch.from_numpy((wavs[i] - wavs[i].mean()) / np.sqrt(wavs[i].var() + 1e-7))
                x[k, : w.numel()], mask[k, : w.numel()] = w, 1
            with context():
                logits = model(x.to(device), attention_mask=mask.to(device)).logits.float()
            lengths = model._get_feat_extract_output_lengths(mask.sum(-1)).tolist()
            for k, i in enumerate(rows):
                out[i] = logits[k, : lengths[k]].cpu().numpy()
        return out

    return f"transformers {'bf16 autocast' if autocast else 'float32'}", run


def timed(run, wavs, batch: int, repeats: int) -> tuple[float, list[np.ndarray]]:
    run(wavs[:2], batch)  # warm-up: cuDNN plans, allocator
    best, outputs = float("inf"), None
    for _ in range(repeats):  # each run ends with the logits on the host: no pending GPU work is left out
        t0 = time.perf_counter()
        outputs = run(wavs, batch)
        best = min(best, time.perf_counter() - t0)
    return best, outputs


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    same = sum(int((x.argmax(-1) == y[: len(x)].argmax(-1)).sum()) for x, y in zip(a, b))
    return same / sum(len(x) for x in a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cuda", help="cuda (what this bench is for), or cpu to try it out")
    args = p.parse_args()
    device = args.device
    folder = make_model()
    rng = np.random.default_rng(0)
    cases = {
        "clip": [speechlike(10.0, rng)],
        "mixed": [speechlike(float(s), rng) for s in rng.uniform(1, 15, args.clips)],
    }
    impls = {
        "ours-fp32": lambda: ours(folder, "float32", device),
        "ours-auto": lambda: ours(folder, "auto", device),
        "hf-fp32": lambda: transformers_ctc(folder, False, device),
        "hf-bf16-autocast": lambda: transformers_ctc(folder, True, device),
    }
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"{name}; torch {torch.__version__}; {args.clips} mixed clips, batch {args.batch}")
    results, reference = {}, {}
    for name, make in impls.items():
        what, run = make()
        for case, wavs in cases.items():
            repeats = args.repeats if case == "clip" else max(2, args.repeats // 5)
            seconds, outputs = timed(run, wavs, args.batch, repeats)
            reference.setdefault(case, outputs)
            audio = sum(w.size for w in wavs) / 16000
            results[name, case] = (what, seconds, audio / seconds, agreement(reference[case], outputs))
    print("| impl | runs | 10 s clip | vs hf-fp32 | mixed: audio s / s | vs hf-fp32 | frames = ours fp32 |")
    print("|---|---|---|---|---|---|---|")
    for name in impls:
        what, clip_s, _, _ = results[name, "clip"]
        _, _, rate, agree = results[name, "mixed"]
        clip_ratio = results["hf-fp32", "clip"][1] / clip_s
        rate_ratio = rate / results["hf-fp32", "mixed"][2]
        print(
            f"| {name} | {what} | {clip_s * 1000:.1f} ms | {clip_ratio:.2f}x | {rate:.0f} | {rate_ratio:.2f}x "
            f"| {agree:.4f} |"
        )


if __name__ == "__main__":
    main()
