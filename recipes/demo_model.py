"""Train the bundled demo model from nothing: synthetic Kyrgyz speech -> small UniSpeech -> evaluation -> bundle.

    python recipes/demo_model.py [--work runs/demo] [--max-updates 6000] [--bf16]

Every step resumes: re-run the same command after an interruption and it continues where it stopped.
Steps: split the sentences (the 227 sentences of data/ky/val.text never reach training), synthesise
train / valid / test sets with espeak-ng, train from scratch with `unispeech finetune`, evaluate with
`unispeech evaluate`, then copy the model into unispeech/assets/default-model.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ky"
ASSET = ROOT / "unispeech" / "assets" / "default-model"
CONFIG = ROOT / "recipes" / "demo_config.json"
RECIPE = ROOT / "recipes" / "demo_recipe.toml"
VALID_SENTENCES = 150


def sentence_splits() -> dict[str, list[str]]:
    def texts(name):
        return [line.split("\t", 1)[1].strip() for line in (DATA / name).read_text(encoding="utf-8").splitlines()]

    test = texts("val.text")  # the checkpoint's own validation sentences: our held-out test
    pool = texts("train.text") + [line.strip() for f in sorted((DATA / "cv-sentences").glob("*.txt"))
                                  for line in f.read_text(encoding="utf-8").splitlines()]
    held = set(test)
    pool = sorted({s for s in pool if s and s not in held})
    random.Random(0).shuffle(pool)
    return {"valid": pool[:VALID_SENTENCES], "train": pool[VALID_SENTENCES:], "test": test}


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "runs" / "demo"))
    parser.add_argument("--copies", type=int, default=2, help="voices per training sentence")
    parser.add_argument("--max-updates", type=int, default=1500)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--skip-bundle", action="store_true", help="do not copy the result into the package")
    args = parser.parse_args()
    from unispeech.synth import TRAIN_VARIANTS, UNSEEN_VARIANT, synthesize_corpus

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = sentence_splits()
    started = time.time()
    sets = {"train": (splits["train"], TRAIN_VARIANTS, args.copies, 1),
            "valid": (splits["valid"], TRAIN_VARIANTS, 1, 2),
            "test": (splits["test"], TRAIN_VARIANTS, 1, 3),
            "test-unseen-voice": (splits["test"], (UNSEEN_VARIANT,), 1, 4)}
    for name, (sentences, variants, copies, seed) in sets.items():
        synthesize_corpus(sentences, work / name, variants=variants, copies=copies, seed=seed)
    model_dir = work / "model"
    resume = ["--resume"] if any((model_dir / "checkpoints").glob("checkpoint-*.pt")) else []
    run([sys.executable, "-m", "unispeech", "finetune", "--init", str(CONFIG), "--recipe", str(RECIPE),
         "--train", str(work / "train" / "manifest.jsonl"), "--valid", str(work / "valid" / "manifest.jsonl"),
         "--out", str(model_dir), "--max-updates", str(args.max_updates)] + (["--bf16"] if args.bf16 else []) + resume)
    results = {}
    for name in ("test", "test-unseen-voice"):
        run([sys.executable, "-m", "unispeech", "evaluate", "--model", str(model_dir),
             "--data", str(work / name / "manifest.jsonl"), "--out", str(work / f"eval-{name}")])
        results[name] = json.loads((work / f"eval-{name}" / "report.json").read_text())["summary"]
    summary = {"per_test": results["test"]["per"], "per_unseen_voice": results["test-unseen-voice"]["per"],
               "wall_seconds_this_run": round(time.time() - started)}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if not args.skip_bundle:
        ASSET.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json",
                  "special_tokens_map.json", "preprocessor_config.json"):
            shutil.copy2(model_dir / f, ASSET / f)
        print(f"bundled into {ASSET}")


if __name__ == "__main__":
    main()
