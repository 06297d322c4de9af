"""Train the bundled demo model from nothing: synthetic Kyrgyz speech -> small UniSpeech -> evaluation -> bundle.

    python recipes/demo_model.py [--work runs/demo] [--max-updates 1500] [--continue-updates 1500 ...] [--bf16]

Every step resumes: re-run the same command after an interruption and it continues where it stopped.
Steps: split the sentences (the 227 sentences of data/ky/val.text never reach training), synthesise
train / valid / test sets with espeak-ng, train from scratch with `unispeech finetune` (stage 1, its own
tri-stage schedule), continue from the previous stage's best model with a second, lower schedule (stages
2, 3, ...: warm restarts, so that a finished stage is extended without redoing it; each with its own seed),
evaluate with `unispeech evaluate`, then copy the model into unispeech/assets/default-model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from unispeech.train.log import read_log

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ky"
ASSET = ROOT / "unispeech" / "assets" / "default-model"
CONFIG = ROOT / "recipes" / "demo_config.json"
RECIPE = ROOT / "recipes" / "demo_recipe.toml"
RECIPE_STAGE2 = ROOT / "recipes" / "demo_recipe_stage2.toml"
VALID_SENTENCES = 150


def run(cmd: list[str]) -> float:
    """Run a step, echoing it; -> its wall seconds."""
    print("$", " ".join(cmd), flush=True)
    started = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "runs" / "demo"))
    parser.add_argument("--copies", type=int, default=2, help="voices per training sentence")
    parser.add_argument("--max-updates", type=int, default=1500, help="stage 1 updates (from scratch)")
    parser.add_argument(
        "--continue-updates",
        type=int,
        nargs="*",
        default=[1500],
        help="updates of stages 2, 3, ... (each from the previous stage's best model); none = stage 1 only",
    )
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--skip-bundle", action="store_true", help="do not copy the result into the package")
    args = parser.parse_args()
    from unispeech.data import sentence_splits
    from unispeech.synth import TRAIN_VARIANTS, UNSEEN_VARIANT, synthesize_corpus

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    splits = sentence_splits(DATA, VALID_SENTENCES)
    sets = {
        "train": (splits["train"], TRAIN_VARIANTS, args.copies, 1),
        "valid": (splits["valid"], TRAIN_VARIANTS, 1, 2),
        "test": (splits["test"], TRAIN_VARIANTS, 1, 3),
        "test-unseen-voice": (splits["test"], (UNSEEN_VARIANT,), 1, 4),
    }
    for name, (sentences, variants, copies, seed) in sets.items():
        synthesize_corpus(sentences, work / name, variants=variants, copies=copies, seed=seed)
    train_stage(CONFIG, RECIPE, stage_dir(work, 1), args.max_updates, work, args.bf16)
    continued = [n for n in args.continue_updates if n]
    for stage, updates in enumerate(continued, start=2):
        train_stage(
            stage_dir(work, stage - 1), RECIPE_STAGE2, stage_dir(work, stage), updates, work, args.bf16, seed=stage
        )
    stages = 1 + len(continued)
    model_dir = stage_dir(work, stages)
    results = {}
    for name in ("test", "test-unseen-voice"):
        out = work / f"eval-{model_dir.name}-{name}"
        run(
            [
                sys.executable,
                "-m",
                "unispeech",
                "evaluate",
                "--model",
                str(model_dir),
                "--data",
                str(work / name / "manifest.jsonl"),
                "--out",
                str(out),
            ]
        )
        results[name] = json.loads((out / "report.json").read_text())["summary"]
    summary = {
        "per_test": results["test"]["per"],
        "per_unseen_voice": results["test-unseen-voice"]["per"],
        "command": " ".join(["python", "recipes/demo_model.py"] + sys.argv[1:]),
        "stages": stages,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if not args.skip_bundle:
        bundle(work)


def stage_dir(work: Path, stage: int) -> Path:
    """Where stage `stage` (1 = from scratch) writes its model."""
    return work / ("model" if stage == 1 else f"model-stage{stage}")


def train_stage(
    init: Path, recipe: Path, out: Path, updates: int, work: Path, bf16: bool, seed: int | None = None
) -> None:
    resume = ["--resume"] if any((out / "checkpoints").glob("checkpoint-*.pt")) else []
    run(
        [
            sys.executable,
            "-m",
            "unispeech",
            "finetune",
            "--init",
            str(init),
            "--recipe",
            str(recipe),
            "--train",
            str(work / "train" / "manifest.jsonl"),
            "--valid",
            str(work / "valid" / "manifest.jsonl"),
            "--out",
            str(out),
            "--max-updates",
            str(updates),
        ]
        + (["--bf16"] if bf16 else [])
        + (["--seed", str(seed)] if seed is not None else [])
        + resume
    )


def bundle(work: Path) -> None:
    """Copy the trained model into the package and write its model card from the measured figures."""
    summary = json.loads((work / "summary.json").read_text())
    stages = [stage_dir(work, k) for k in range(1, summary["stages"] + 1)]
    model_dir = stages[-1]
    ASSET.mkdir(parents=True, exist_ok=True)
    for f in (
        "config.json",
        "model.safetensors",
        "vocab.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
    ):
        shutil.copy2(model_dir / f, ASSET / f)
    config = json.loads((model_dir / "config.json").read_text())
    logs = [read_log(d) for d in stages]
    updates = [max(r["step"] for r in log) for log in logs]
    best = min((r for r in logs[-1] if r.get("valid_per") is not None), key=lambda r: r["valid_per"])
    manifest = [json.loads(line) for line in (work / "train" / "manifest.jsonl").read_text().splitlines()]
    hours = sum(r["duration"] for r in manifest) / 3600
    import torch
    from safetensors.torch import load_file

    params = sum(t.numel() for t in load_file(ASSET / "model.safetensors").values())
    card = MODEL_CARD.format(
        params=params / 1e6,
        hidden=config["hidden_size"],
        layers=config["num_hidden_layers"],
        heads=config["num_attention_heads"],
        ffn=config["intermediate_size"],
        conv=config["conv_dim"],
        clips=len(manifest),
        hours=hours,
        sentences=len(set(r["text"] for r in manifest)),
        updates=" + ".join(map(str, updates)),
        best_step=best["step"],
        valid_per=100 * best["valid_per"],
        test=100 * summary["per_test"],
        unseen=100 * summary["per_unseen_voice"],
        minutes=sum(map(logged_seconds, logs)) / 60,
        command=summary["command"],
        torch=torch.__version__,
        work=_shown(work),
        continued=""
        if len(stages) == 1
        else (
            ", then continued from the previous stage's best model with further tri-stage schedules at lr 4e-4\n"
            "  (`recipes/demo_recipe_stage2.toml`, seed = stage number)"
        ),
    )
    (ASSET / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    print(f"bundled into {ASSET}")


def _shown(path: Path) -> str:
    """A path as the card shows it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def logged_seconds(log: list[dict]) -> float:
    """Wall seconds of one training stage from its train_log.jsonl rows. Each run's clock starts at zero, so
    a resumed stage is the sum of each run's last time; a killed run loses at most its last few updates."""
    total = last = 0.0
    for row in log:
        if "seconds" in row:
            if row["seconds"] < last:  # a new run (resume) began
                total += last
            last = row["seconds"]
    return total + last


MODEL_CARD = """# unispeech demo model (Kyrgyz phones, synthetic speech)

**Trained on synthetic speech only. It is not for real recordings**: for real Kyrgyz speech use
`--model microsoft/unispeech-1350-en-17h-ky-ft-1h`. This model exists so that the toolkit runs offline
in seconds and so that the tests have a trained model whose outputs mean something.

- Architecture: UniSpeech / wav2vec 2.0 CTC, the layout of the real checkpoint (layer-norm feature
  encoder, stable layer norm), smaller: {params:.2f} M parameters, hidden {hidden}, {layers} layers,
  {heads} heads, FFN {ffn}, conv channels {conv}.
- Output: the real checkpoint's 43-token vocabulary (39 Kyrgyz phones, `<pad>` = CTC blank), so its
  phones are in the same notation.
- Data: {clips} clips ({hours:.1f} h) of {sentences} Kyrgyz sentences (`data/ky/train.text` and
  `data/ky/cv-sentences/`) spoken by espeak-ng's `ky` voice with variants m1 m2 m4 m5 m6 m7 f1 f2 f3 f4,
  random rate, pitch and range, then random reverberation (half the clips: RT60 0.1-0.6 s,
  direct-to-reverberant ratio 0-20 dB), noise (10-40 dB SNR) and gain.
  Labels: our G2P of the same sentences. Held out: the 227 sentences of `data/ky/val.text` (never in
  training) and the voice variant m3.
- Training: from scratch with `unispeech finetune` (recipe `recipes/demo_recipe.toml`: nothing frozen,
  lr 8e-4 tri-stage, time masking 0.3, channel masking 0.1, bf16 autocast){continued}; updates per
  stage: {updates} (batches of up to 100 s of audio); best validation PER {valid_per:.2f} % at update
  {best_step} of the last stage. Training wall time on the 2-core development machine: {minutes:.0f} min
  (all stages, summed from the training logs over interrupted and resumed runs; synthesis and evaluation
  add a few minutes), torch {torch}.
- Reproduce (resumable; re-run the same command after an interruption): `{command}`

## Measured PER (`unispeech evaluate`)

| held-out set | PER |
|---|---|
| unseen sentences, training voices (`{work}/test`) | {test:.2f} % |
| unseen sentences, unseen voice variant m3 (`{work}/test-unseen-voice`) | {unseen:.2f} % |

Commands: `unispeech evaluate --model unispeech/assets/default-model --data {work}/test/manifest.jsonl`
(and `.../test-unseen-voice/manifest.jsonl`), after `python recipes/demo_model.py` has made the sets.
"""


if __name__ == "__main__":
    main()
