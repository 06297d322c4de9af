"""Adapting to each utterance (`--adapt`, unispeech/adapt.py: SUTA) against decoding as loaded, paired, set by set:
PER with the model's own decoding (its phone LM) and greedy, B - A with its paired-bootstrap interval, the change in
the share of phones right, and the seconds an utterance takes each way. Both sides run torch float32 on the same
audio; each utterance is adapted once and its logits decoded both ways.

    python bench/adaptation.py --model unispeech/assets/default-model --work runs/demo-v26
                               --sets test-asterisk-ru,test-fotaq [--limit 300] [--steps 10] [--lr 2e-5]
                               [--min-spoken-frames 10] [--out runs/adaptation]

`--out` keeps each finished set's scored rows (`SET.json`), so an interrupted run goes on where it stopped.
"""

import argparse
import json
import random
import time
from pathlib import Path

from unispeech import AdaptOptions, GreedyDecoder, load_model
from unispeech.data import load_dataset
from unispeech.evaluate import score
from unispeech.paired import compare


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model folder (its own decoding: the phone LM where it has one)")
    p.add_argument("--work", type=Path, required=True, help="the folder of the sets (each SET/manifest.jsonl)")
    p.add_argument("--sets", required=True, help="comma-separated set names")
    p.add_argument("--limit", type=int, default=0, help="at most this many utterances a set, drawn seeded (0: all)")
    p.add_argument("--steps", type=int, default=AdaptOptions.steps)
    p.add_argument("--lr", type=float, default=AdaptOptions.lr)
    p.add_argument("--min-spoken-frames", type=int, default=AdaptOptions.min_spoken_frames)
    p.add_argument("--out", type=Path, default=Path("runs/adaptation"))
    args = p.parse_args()
    options = AdaptOptions(steps=args.steps, lr=args.lr, min_spoken_frames=args.min_spoken_frames)
    plain = load_model(args.model, dtype="float32", backend="torch")
    adapting = load_model(args.model, adapt=options)
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.model}: plain ({plain.describe()}) against {adapting.describe()}; decoding {plain.decoder.describe()}"
    )
    print("| set | utterances | plain LM / greedy | adapted LM / greedy | LM, B - A [95 %] | greedy [95 %] "
          "| phones right greedy, B - A | s / utterance, plain / adapted |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        done = args.out / f"{name}-{args.steps}-{args.lr:g}-{args.min_spoken_frames}.json"
        if not done.is_file():
            scored = score_set(args.work / name / "manifest.jsonl", plain, adapting, args.limit)
            done.write_text(json.dumps(scored))
        print(row(name, json.loads(done.read_text())), flush=True)


def score_set(manifest: Path, plain, adapting, limit: int) -> dict:
    """Each utterance scored as `unispeech evaluate` scores it (evaluate.score), for each side and decoding."""
    utterances, _ = load_dataset(manifest)
    if limit and len(utterances) > limit:
        utterances = random.Random(0).sample(utterances, limit)
    scored = {arm: {} for arm in ("plain-own", "plain-greedy", "adapted-own", "adapted-greedy")}
    seconds = {"plain": 0.0, "adapted": 0.0}
    for u in utterances:
        wav = plain.prepare(u.audio)
        for side, recognizer in (("plain", plain), ("adapted", adapting)):
            start = time.perf_counter()
            logits = recognizer.logits_batch([wav])[0]
            seconds[side] += time.perf_counter() - start
            for decoding, decoder in (("own", recognizer), ("greedy", recognizer.with_decoder(GreedyDecoder()))):
                result = decoder.decode(logits, wav.size).to_dict()
                scored[f"{side}-{decoding}"][u.id] = score(u, result)
    return {"arms": scored, "seconds": {k: v / len(utterances) for k, v in seconds.items()}}


def row(name: str, scored: dict) -> str:
    arms, seconds = scored["arms"], scored["seconds"]
    lm = compare(arms["plain-own"], arms["adapted-own"])
    best_path = compare(arms["plain-greedy"], arms["adapted-greedy"])
    return (
        f"| {name} | {lm.utterances} | {100 * lm.per_a:.2f} / {100 * best_path.per_a:.2f} "
        f"| {100 * lm.per_b:.2f} / {100 * best_path.per_b:.2f} | {interval(lm)} | {interval(best_path)} "
        f"| {100 * best_path.right_difference:+.2f} | {seconds['plain']:.2f} / {seconds['adapted']:.2f} |"
    )


def interval(c) -> str:
    verdict = {"B better": " better", "B worse": " worse"}.get(c.verdict, "")
    return f"{100 * c.difference:+.2f} [{100 * c.low:+.2f}, {100 * c.high:+.2f}]{verdict}"


if __name__ == "__main__":
    main()
