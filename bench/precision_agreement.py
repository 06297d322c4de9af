"""Every backend and precision against float32 on a trained model's evaluation utterances: identical phones
and PER change (the numbers behind precision.MEASURED's agreement column and `auto`'s choice).

    python bench/precision_agreement.py [--model FOLDER] [--data runs/remeasure/test/manifest.jsonl]
                                        [--decoder greedy]

Phones as users get them: the model's own decoding (the bundled model's phone LM since 2026-12-04; greedy
before), or greedy with --decoder greedy.

The default data, the demo model's 227 held-out utterances (recipes/demo_model.py's test set: same sentences,
voices and seed), is synthesised on first use.
"""

import argparse
from pathlib import Path

from unispeech import GreedyDecoder, load_model
from unispeech.data import load_dataset
from unispeech.metrics import phone_error_rate

SETTINGS = {  # name -> (backend, dtype)
    "torch float32": ("torch", "float32"),
    "default (auto)": ("auto", "auto"),
    "torch auto (bf16 matmuls, fp32 CNN)": ("torch", "auto"),
    "torch bfloat16": ("torch", "bfloat16"),
    "onnxruntime float32": ("onnxruntime", "float32"),
    "onnxruntime int8": ("onnxruntime", "int8"),
}


DEFAULT_DATA = Path("runs/remeasure/test/manifest.jsonl")


def held_out_set() -> Path:
    """The demo recipe's test set (recipes/demo_model.py: test sentences, training voices, seed 3)."""
    from unispeech.data import sentence_splits
    from unispeech.synth import TRAIN_VARIANTS, synthesize_corpus

    test = sentence_splits(Path("data/ky"), 150)["test"]
    return synthesize_corpus(test, DEFAULT_DATA.parent, variants=TRAIN_VARIANTS, copies=1, seed=3, progress=False)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="unispeech/assets/default-model")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--decoder", choices=("auto", "greedy"), default="auto", help="auto: the model's own decoding")
    a = p.parse_args()
    if Path(a.data) == DEFAULT_DATA:
        held_out_set()  # resumable: a complete set is left as it is
    utterances = load_dataset(a.data)[0]
    paths, refs = [u.audio for u in utterances], [u.phones for u in utterances]
    out, runs = {}, {}
    for name, (backend, dtype) in SETTINGS.items():
        model = load_model(
            a.model, backend=backend, dtype=dtype, decoder=GreedyDecoder() if a.decoder == "greedy" else None
        )
        runs[name] = model.describe()
        out[name] = [r.phones for r in model.transcribe_many(paths, batch_size=a.batch_size)]
    per32 = phone_error_rate(refs, out["torch float32"]).per
    print(
        f"{len(utterances)} utterances, decoding: {model.decoder.describe()}, PER torch float32 {100 * per32:.2f} %\n"
    )
    print("| setting | runs | identical phones | PER | change |")
    print("|---|---|---|---|---|")
    for name in SETTINGS:
        same = sum(x == y for x, y in zip(out["torch float32"], out[name])) / len(utterances)
        per = phone_error_rate(refs, out[name]).per
        print(f"| {name} | {runs[name]} | {100 * same:.1f} % | {100 * per:.2f} % | {100 * (per - per32):+.2f} |")


if __name__ == "__main__":
    main()
