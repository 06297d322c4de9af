"""Every backend and precision against float32 on a trained model's evaluation utterances: identical phones
and PER change (the numbers behind precision.MEASURED's agreement column and `auto`'s choice).

    python bench/precision_agreement.py [--model FOLDER] [--data MANIFEST ...] [--decoder greedy]

Phones as users get them: the model's own decoding (the bundled model's phone LM since 2026-12-04; greedy
before), or greedy with --decoder greedy. Greedy also counts the utterances identical up to float32's own ties:
every frame whose best id changed is one where float32's two best logits were within TIE of each other, a choice
that rounding anywhere (another CPU, batch plan or thread count) can make either way; the floor takes that count
for greedy decoding (bench/flip_margins.py shows where the flips are).

The default data: the demo model's 227 held-out sentences (recipes/demo_model.py's test sentences and
training voices) in three draws of voices and augmentation (seed 3 is the recipe's own test set), 681
utterances, synthesised on first use. One draw decides the 99 % floor by one or two utterances, and which
ones flip moves with the audio: espeak-ng's output is not the same from run to run (docs/performance.md).
"""

import argparse
from pathlib import Path

import numpy as np

from unispeech import GreedyDecoder, load_model
from unispeech.data import load_dataset
from unispeech.metrics import phone_error_rate

SETTINGS = {  # name -> (backend, dtype)
    "torch float32": ("torch", "float32"),
    "default (auto)": ("auto", "auto"),
    "torch auto (bf16 matmuls, fp32 CNN)": ("torch", "auto"),
    "torch mixed (bf16 layers, the rest fp32)": ("torch", "mixed"),
    "torch bfloat16": ("torch", "bfloat16"),
    "onnxruntime float32": ("onnxruntime", "float32"),
    "onnxruntime int8": ("onnxruntime", "int8"),
}


TIE = 0.1  # float32's top-2 logit margin below which its choice is a tie (auto's median error on it: ~0.01)
DRAWS = {3: Path("runs/remeasure/test"), 5: Path("runs/remeasure/test-seed5"), 7: Path("runs/remeasure/test-seed7")}


def held_out_sets() -> list[Path]:
    """The demo recipe's test sentences and voices, one set per seed of DRAWS (resumable)."""
    from unispeech.data import sentence_splits
    from unispeech.synth import TRAIN_VARIANTS, synthesize_corpus

    test = sentence_splits(Path("data/ky"), 150)["test"]
    return [
        synthesize_corpus(test, folder, variants=TRAIN_VARIANTS, copies=1, seed=seed, progress=False)
        for seed, folder in DRAWS.items()
    ]


def add_data_arguments(p: argparse.ArgumentParser, decoder: bool = True) -> None:
    """--model, --data and (with `decoder`) --decoder, as this bench and bench/int8_parts.py,
    bench/precision_parts.py, bench/flip_margins.py take them."""
    p.add_argument("--model", default="unispeech/assets/default-model")
    p.add_argument("--data", nargs="+", help="manifests (.jsonl), pooled (default: the three draws of DRAWS)")
    if decoder:
        p.add_argument("--decoder", choices=("auto", "greedy"), default="auto", help="auto: the model's own decoding")


def utterance_sets(manifests: list[str] | None) -> list[list]:
    """The utterances of each manifest (default: the held-out draws, synthesised on first use)."""
    return [load_dataset(m)[0] for m in manifests or held_out_sets()]


def main() -> None:
    p = argparse.ArgumentParser()
    add_data_arguments(p)
    p.add_argument("--batch-size", type=int, default=16)
    a = p.parse_args()
    sets = utterance_sets(a.data)
    utterances = [u for s in sets for u in s]
    paths, refs = [u.audio for u in utterances], [u.phones for u in utterances]
    greedy = a.decoder == "greedy"
    out, frames, runs = {}, {}, {}
    for name, (backend, dtype) in SETTINGS.items():
        model = load_model(a.model, backend=backend, dtype=dtype, decoder=GreedyDecoder() if greedy else None)
        runs[name] = model.describe()
        if greedy:  # the frames too: where the best id changed, and float32's margin there
            out[name], frames[name] = greedy_run(model, paths, a.batch_size)
        else:
            out[name] = [r.phones for r in model.transcribe_many(paths, batch_size=a.batch_size)]
    per32 = phone_error_rate(refs, out["torch float32"]).per
    sizes = " + ".join(str(len(s)) for s in sets)
    print(f"{sizes} utterances, decoding: {model.decoder.describe()}, PER torch float32 {100 * per32:.2f} %\n")
    tie_column = f" | up to float32's ties (margin < {TIE}) | per set" if greedy else ""
    print(f"| setting | runs | identical phones | per set | PER | change{tie_column} |")
    print("|---|---|---|---|---|---|" + "---|---|" * greedy)
    for name in SETTINGS:
        same = [x == y for x, y in zip(out["torch float32"], out[name])]
        per = phone_error_rate(refs, out[name]).per
        line = f"| {name} | {runs[name]} | {shares(same, sets)} | {100 * per:.2f} % | {100 * (per - per32):+.2f} |"
        if greedy:
            ties = [s or only_ties(f32, f) for s, f32, f in zip(same, frames["torch float32"], frames[name])]
            line += f" {shares(ties, sets)} |"
        print(line)


def greedy_run(model, paths: list, batch_size: int) -> tuple[list, list]:
    """Greedy phones and per-frame (best id, top-2 margin) of each utterance, in transcribe_many's batch plan."""
    phones, frames = [], []
    for wav, logits in model.logits_many(paths, batch_size):
        if logits is None:  # an unreadable file: its AudioError
            raise wav
        phones.append(model.decode(logits, wav.size).phones)
        frames.append((logits.argmax(axis=1), top2_margin(logits)))
    return phones, frames


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """Per frame: best logit minus second best."""
    ordered = np.sort(logits, axis=1)
    return ordered[:, -1] - ordered[:, -2]


def only_ties(reference: tuple, other: tuple) -> bool:
    """Whether every frame whose best id differs from float32's was a tie in float32 (margin < TIE)."""
    (best32, margin32), (best, _) = reference, other
    return bool((margin32[best32 != best] < TIE).all())


def shares(same: list[bool], sets: list[list]) -> str:
    """ "share % (n/total) | per-set shares" of the utterances that count as the same."""
    each, start = [], 0
    for s in sets:
        each.append(f"{100 * sum(same[start : start + len(s)]) / len(s):.1f}")
        start += len(s)
    return f"{100 * sum(same) / len(same):.1f} % ({sum(same)}/{len(same)}) | {' / '.join(each)}"


if __name__ == "__main__":
    main()
