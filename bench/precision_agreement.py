"""Reduced precision against fp32 on a trained model's evaluation utterances: identical phones and PER change.
"auto" is the default (bf16 transformer matmuls, fp32 CNN); "bfloat16" puts the CNN in bf16 too.

    python bench/precision_agreement.py [--model unispeech/assets/default-model] [--data runs/demo/test/manifest.jsonl]
"""

import argparse

from unispeech import load_model
from unispeech.data import load_dataset
from unispeech.metrics import phone_error_rate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="unispeech/assets/default-model")
    p.add_argument("--data", default="runs/demo/test/manifest.jsonl")
    a = p.parse_args()
    utterances = load_dataset(a.data)[0]
    paths, refs = [u.audio for u in utterances], [u.phones for u in utterances]
    out = {}
    for dtype in ("float32", "auto", "bfloat16"):
        model = load_model(a.model, dtype=dtype)
        out[dtype] = [r.phones for r in model.transcribe_many(paths, batch_size=16)]
    per32 = phone_error_rate(refs, out["float32"]).per
    print(f"{len(utterances)} utterances, PER fp32 {100 * per32:.2f} %")
    for dtype in ("auto", "bfloat16"):
        same = sum(x == y for x, y in zip(out["float32"], out[dtype])) / len(utterances)
        per = phone_error_rate(refs, out[dtype]).per
        print(
            f"dtype {dtype}: identical phones {100 * same:.1f} %, PER {100 * per:.2f} % "
            f"(change {100 * (per - per32):+.2f} points)"
        )


if __name__ == "__main__":
    main()
