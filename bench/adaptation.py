"""Adapting to the voice (unispeech/adapt.py) against decoding as loaded, paired, set by set. Arms:
  each      `--adapt`: each utterance adapted on its own (SUTA);
  together  `--adapt-together`: the model adapted once to all the set's utterances, then each decoded;
  half      adapted together to the first half of the (shuffled) set, scored on the second half only: what
            adapting to a speaker's earlier recordings does for ones it has not seen.
Each row: PER with the model's own decoding (its phone LM) and greedy, for the plain model on the same utterances
and for the arm; B - A with its paired-bootstrap interval; the change in the share of phones right; seconds an
utterance takes (for together / half: the adaptation's time shared out, plus the forward pass). Torch float32.

    python bench/adaptation.py --model unispeech/assets/default-model --work runs/demo-v26
                               --sets test-asterisk-ru,test-fotaq [--arms each,together,half] [--limit 120]
                               [--steps 10] [--lr 2e-5] [--min-spoken-frames 10] [--out runs/adaptation]

--steps and --lr set `each` (together / half take TogetherOptions' defaults); --min-spoken-frames sets all three.

`--out` keeps each finished set and arm's scored rows (JSON), so an interrupted run goes on where it stopped.
"""

import argparse
import json
import random
import time
from pathlib import Path

from unispeech import AdaptOptions, GreedyDecoder, TogetherOptions, adapted_to, load_model
from unispeech.data import load_dataset
from unispeech.evaluate import score
from unispeech.paired import compare

ARMS = ("each", "together", "half")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model folder (its own decoding: the phone LM where it has one)")
    p.add_argument("--work", type=Path, required=True, help="the folder of the sets (each SET/manifest.jsonl)")
    p.add_argument("--sets", required=True, help="comma-separated set names")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    p.add_argument("--limit", type=int, default=0, help="at most this many utterances a set, drawn seeded (0: all)")
    p.add_argument("--steps", type=int, default=AdaptOptions.steps, help="each: steps an utterance")
    p.add_argument("--lr", type=float, default=AdaptOptions.lr, help="each: learning rate")
    p.add_argument("--min-spoken-frames", type=int, default=AdaptOptions.min_spoken_frames)
    p.add_argument("--out", type=Path, default=Path("runs/adaptation"))
    args = p.parse_args()
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS):
        p.error(f"--arms: {args.arms}: each of {', '.join(ARMS)}")
    plain = load_model(args.model, dtype="float32", backend="torch")
    options = {
        "each": AdaptOptions(steps=args.steps, lr=args.lr, min_spoken_frames=args.min_spoken_frames),
        "together": TogetherOptions(min_spoken_frames=args.min_spoken_frames),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.model}: {plain.describe()}; decoding {plain.decoder.describe()}; {options}")
    print("| set | arm | utterances | plain LM / greedy | adapted LM / greedy | LM, B - A [95 %] | greedy [95 %] "
          "| phones right greedy, B - A | s / utterance, plain / adapted |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        utterances, wavs = read_set(args.work / name / "manifest.jsonl", plain, args.limit)
        for arm in ["plain", *arms]:
            done = args.out / f"{name}-{arm}-{args.limit}{suffix(arm, args)}.json"
            if not done.is_file():
                done.write_text(json.dumps(run_arm(arm, plain, args.model, utterances, wavs, options)))
            if arm != "plain":
                base = json.loads((args.out / f"{name}-plain-{args.limit}.json").read_text())
                print(row(name, arm, base, json.loads(done.read_text())), flush=True)


def suffix(arm: str, args) -> str:
    """What else names an arm's results: its settings where they are not the defaults (the tables made before
    the options keep their files)."""
    each = (args.steps, args.lr) != (AdaptOptions.steps, AdaptOptions.lr) and arm == "each"
    floor = args.min_spoken_frames != AdaptOptions.min_spoken_frames and arm != "plain"
    return (f"-{args.steps}-{args.lr:g}" if each else "") + (f"-floor{args.min_spoken_frames}" if floor else "")


def read_set(manifest: Path, plain, limit: int):
    utterances, _ = load_dataset(manifest)
    if limit and len(utterances) > limit:
        utterances = random.Random(0).sample(utterances, limit)
    else:
        random.Random(0).shuffle(utterances)  # the half arm's halves: no order of the manifest's making
    return utterances, [plain.prepare(u.audio) for u in utterances]


def run_arm(arm: str, plain, model: str, utterances: list, wavs: list, options: dict) -> dict:
    """Each utterance the arm decodes, scored as `unispeech evaluate` scores it (evaluate.score), both decodings;
    the seconds are the adaptation's and the forward passes', per utterance decoded."""
    half = len(wavs) // 2
    picked = range(half, len(wavs)) if arm == "half" else range(len(wavs))
    recognizer = load_model(model, adapt=options["each"]) if arm == "each" else plain
    start = time.perf_counter()
    if arm in ("together", "half"):
        recognizer = adapted_to(plain, wavs[:half] if arm == "half" else wavs, options["together"])
    seconds, rows = time.perf_counter() - start, {"own": {}, "greedy": {}}
    for i in picked:
        start = time.perf_counter()
        logits = recognizer.logits_batch([wavs[i]])[0]
        seconds += time.perf_counter() - start
        for decoding, decoder in (("own", recognizer), ("greedy", recognizer.with_decoder(GreedyDecoder()))):
            rows[decoding][utterances[i].id] = score(utterances[i], decoder.decode(logits, wavs[i].size).to_dict())
    return {"rows": rows, "seconds": seconds / len(picked)}


def row(name: str, arm: str, base: dict, scored: dict) -> str:
    """The arm against the plain model on the utterances the arm decoded."""
    a = {k: {i: base["rows"][k][i] for i in scored["rows"][k]} for k in ("own", "greedy")}
    lm = compare(a["own"], scored["rows"]["own"])
    best_path = compare(a["greedy"], scored["rows"]["greedy"])
    return (
        f"| {name} | {arm} | {lm.utterances} | {100 * lm.per_a:.2f} / {100 * best_path.per_a:.2f} "
        f"| {100 * lm.per_b:.2f} / {100 * best_path.per_b:.2f} | {lm.cell()} | {best_path.cell()} "
        f"| {100 * best_path.right_difference:+.2f} | {base['seconds']:.2f} / {scored['seconds']:.2f} |"
    )


if __name__ == "__main__":
    main()
