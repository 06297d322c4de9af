"""A small-scale reproduction of the UniSpeech paper's comparison (its Table 1) on synthetic speech.

    python recipes/reproduction.py [--work runs/reproduction] [--pretrain-updates 500] [--finetune-updates 800]
                                   [--seeds 1,2] [--device cuda] [--pretrain-batch-seconds 640 --pretrain-lr 2e-3]

Languages, all spoken by espeak-ng with random voices, noise and reverberation (disjoint sentence sets):
  source   Kazakh (`kk` voice, Kazakh G2P phones, its own phone set): labelled, the paper's English role
  target   Kyrgyz, unlabelled (pretraining audio)
  finetune a small labelled Kyrgyz set (the paper's 1 h), plus a validation set
  test     the 227 held-out sentences of data/ky/val.text (never seen anywhere else)
Rows: the same small model (recipes/reproduction_config.json), the same fine-tuning; every pretrained row gets
the same number of pretraining updates of the same batch size (equal compute):
  none            no pretraining (fine-tuning from random weights)
  ctc             CTC transfer: source labels only (alpha 1, r 0)
  contrastive     contrastive only (wav2vec 2.0), source + target audio without labels
  unispeech       UniSpeech multi-task, r 0.5, on the labelled source (stage 1 as released)
  unispeech-r0    the same with r 0 (no replacement of transformer outputs by quantized latents)
  unispeech-plus  UniSpeech r 0.5 for 3/4 of the updates, then stage 2 (target audio, contrastive, mask 0.65)
and, only when named in `--rows`, two rows of ours (target audio mixed into stage 1; diversity weight 1.0).
The table is made in float32 (only ~20 % slower than `--bf16` at this model size): before 2026-12-02 a
oneDNN bf16 kernel fault on AMX CPUs (now routed around, see components.bf16_conv_is_exact) kept every
`--bf16` row on the CTC blank plateau, and float32 keeps the table free of any CPU's bf16 kernels.
Every step resumes: re-run the same command after an interruption. Writes docs/reproduction.md and .png.
Rows can run side by side (`--rows`, OMP_NUM_THREADS=1 each, after the data exist); each such run writes the
table of its own rows, so finish with one run without `--rows`: its steps are all done, it collects the table.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from unispeech.data import sentence_pool
from unispeech.train.log import read_log, training_rows

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes" / "reproduction_config.json"
DOC = ROOT / "docs" / "reproduction.md"
SIZES = {"source": 1200, "target": 1200, "finetune": 900, "valid": 60}  # finetune: ~1 h, the paper's 1 h
PRETRAIN_BATCH_SECONDS = 40
FINETUNE_BATCH_SECONDS = 40  # CTC left its blank plateau after ~30k s of audio (demo model); 20 s batches never did
UNISPEECH = [sys.executable, "-m", "unispeech"]  # every step runs the CLI in its own process


def run(cmd: list[str]) -> float:
    """Run a step, echoing it; -> its wall seconds."""
    print("$", " ".join(cmd), flush=True)
    started = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - started


# (name, label, pretraining stages: data and settings; "fraction" of the pretraining updates; "recipe": extra
# lines for the pretraining TOML)
ROWS = [
    ("none", "no pretraining", []),
    ("ctc", "CTC transfer (source labels)", [dict(labeled="source", alpha=1.0, replace_prob=0.0)]),
    ("contrastive", "contrastive only (source + target audio)", [dict(unlabeled="all")]),
    # As released: stage 1 (one2one_large_pretrain_en1350.sh) sees the labelled source language only; the
    # target language's audio enters only in stage 2 (continue_pretrain.sh), the "+" row.
    ("unispeech", "UniSpeech, r = 0.5", [dict(labeled="source", replace_prob=0.5)]),
    ("unispeech-r0", "UniSpeech, r = 0", [dict(labeled="source", replace_prob=0.0)]),
    (
        "unispeech-plus",
        "UniSpeech r = 0.5 + stage 2 (target audio)",
        [
            dict(labeled="source", replace_prob=0.5, fraction=0.75),
            dict(unlabeled="target", mask_prob=0.65, fraction=0.25),
        ],
    ),
    # not in the paper, run only when named in --rows: the earlier rows that mixed target audio into stage 1
    (
        "unispeech-mixed",
        "UniSpeech, r = 0.5, target audio in stage 1 (ours)",
        [dict(labeled="source", unlabeled="target", replace_prob=0.5)],
    ),  # fmt: skip
    (
        "unispeech-div1",
        "UniSpeech, r = 0.5, diversity weight 1.0 (ours)",
        [dict(labeled="source", replace_prob=0.5, recipe="diversity_weight = 1.0\n")],
    ),
]

PAPER_ROWS = 6  # the first six rows are the paper's Table 1 regimes

PRETRAIN_TOML = """# written by recipes/reproduction.py: the paper's stage-1 settings at a small scale
mask_prob = 0.5
mask_length = 10
num_negatives = 100
{extra}gumbel = [2.0, 0.5, {decay}]  # the paper's 2 -> 0.5 anneal, compressed into this run's updates
[train]
lr = {lr}
weight_decay = 0.01
max_batch_seconds = {batch}
warmup_fraction = 0.1
hold_fraction = 0.0
decay_fraction = 0.9
init_lr_scale = 0.0
final_lr_scale = 0.0
clip_norm = 10.0
save_every = 100
log_every = 10
seed = 1
"""

FINETUNE_TOML = """# written by recipes/reproduction.py: one fine-tuning recipe for every row
freeze_feature_encoder = false
freeze_encoder_updates = 0
mask_time_prob = 0.3
mask_time_length = 10
mask_channel_prob = 0.1
mask_channel_length = 32
layerdrop = 0.05
dropout = 0.1
[train]
lr = 8e-4
max_batch_seconds = {batch}
warmup_fraction = 0.1
hold_fraction = 0.4
decay_fraction = 0.5
clip_norm = 5.0
valid_every = {valid_every}
save_every = 100
log_every = 10
seed = {seed}
"""


def sentence_sets() -> dict[str, list[str]]:
    test, pool = sentence_pool(ROOT / "data" / "ky")
    random.Random(1).shuffle(pool)
    sets, start = {}, 0
    for name, size in SIZES.items():
        sets[name], start = pool[start : start + size], start + size
    return {**sets, "test": test}


def step(marker: Path, cmd: list[str]) -> dict:
    """Run `cmd` once (resuming its checkpoints after an interruption); `marker` records that it finished."""
    if marker.is_file():
        return json.loads(marker.read_text())
    out = Path(cmd[cmd.index("--out") + 1])
    resume = ["--resume"] if any((out / "checkpoints").glob("checkpoint-*.pt")) else []
    command = " ".join(["unispeech"] + cmd[len(UNISPEECH) :]).replace(f"{ROOT}/", "")
    result = {"seconds": round(run(cmd + resume)), "command": command}
    marker.write_text(json.dumps(result))
    return result


def main() -> None:
    args = parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sets = sentence_sets()
    manifests = synthesize_sets(work, sets)
    P, F = args.pretrain_updates, args.finetune_updates
    seeds = [int(s) for s in args.seeds.split(",")]
    device = ["--device", args.device] if args.device != "cpu" else []  # evaluation takes it too
    flags = (["--bf16"] if args.bf16 else []) + device
    results = {}
    for name, label, stages in ROWS:
        if name not in args.rows.split(","):
            continue
        row = work / name
        row.mkdir(exist_ok=True)
        init, seconds, commands = pretrain_row(row, stages, P, manifests, flags, args)
        pers, finetune_seconds = [], []
        for seed in seeds:
            per, done = finetune_row(row, init, seed, F, manifests, flags, device)
            pers.append(per)
            finetune_seconds.append(done["seconds"])
            commands.append(done["command"])
        results[name] = {
            "label": label,
            "per": sum(pers) / len(pers),
            "pers": dict(zip(map(str, seeds), pers)),
            "pretrain_seconds": seconds,
            "finetune_seconds": sum(finetune_seconds) / len(seeds),
            "commands": commands,
            "pretrain_stats": last_stats(row, len(stages)),
        }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    command = " ".join(["python", "recipes/reproduction.py"] + sys.argv[1:])
    write_report(work, results, sets, (P, args.pretrain_batch_seconds, F), command)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "runs" / "reproduction"))
    parser.add_argument("--pretrain-updates", type=int, default=500)
    parser.add_argument("--finetune-updates", type=int, default=800)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="cpu", help="where every training step runs: cpu, cuda (default: cpu)")
    parser.add_argument(
        "--pretrain-batch-seconds",
        type=float,
        default=PRETRAIN_BATCH_SECONDS,
        help="audio per pretraining update (docs/reproduction.md: 640 s is where the contrastive task learns)",
    )
    parser.add_argument("--pretrain-lr", type=float, default=5e-4, help="peak pretraining learning rate")
    parser.add_argument(
        "--seeds",
        default="1",
        help="fine-tuning seeds, e.g. 1,2: each row is fine-tuned once per "
        "seed and the table gives each seed's PER and their mean",
    )
    parser.add_argument(
        "--rows",
        default=",".join(r[0] for r in ROWS[:PAPER_ROWS]),
        help="comma-separated rows (default: the paper's six; also " + ", ".join(r[0] for r in ROWS[PAPER_ROWS:]) + ")",
    )
    return parser.parse_args()


def synthesize_sets(work: Path, sets: dict[str, list[str]]) -> dict[str, Path]:
    """Every sentence set spoken by espeak-ng (the source set in Kazakh) -> {name: manifest}, plus "all"."""
    from unispeech.synth import TRAIN_VARIANTS, synthesize_corpus

    for seed, (name, sentences) in enumerate(sets.items()):
        language = "kk" if name == "source" else "ky"
        synthesize_corpus(sentences, work / name, variants=TRAIN_VARIANTS, seed=100 + seed, language=language)
    manifests = {name: work / name / "manifest.jsonl" for name in sets}
    manifests["all"] = combined(work, ["source", "target"])
    return manifests


def pretrain_row(row: Path, stages: list[dict], P: int, manifests: dict, flags: list[str], args):
    """A row's pretraining stages, each from the last -> (the model to fine-tune, seconds, commands)."""
    init, seconds, commands = CONFIG, 0.0, []
    for i, stage in enumerate(stages):
        updates = round(P * stage.get("fraction", 1.0))
        toml = row / f"pretrain-{i}.toml"
        extra = stage.get("recipe", "")
        settings = dict(batch=args.pretrain_batch_seconds, lr=args.pretrain_lr, extra=extra)
        toml.write_text(PRETRAIN_TOML.format(decay=0.25 ** (1 / updates), **settings))
        out = row / f"pretrain-{i}"
        cmd = UNISPEECH + ["pretrain", "--init", str(init), "--recipe", str(toml), "--out", str(out)]
        cmd += ["--max-updates", str(updates)] + flags
        if "labeled" in stage:
            cmd += ["--labeled", str(manifests[stage["labeled"]]), "--language", "kk"]
        if "unlabeled" in stage:
            cmd += ["--unlabeled", str(manifests[stage["unlabeled"]])]
        for key in ("alpha", "replace_prob", "mask_prob"):
            if key in stage:
                cmd += [f"--{key.replace('_', '-')}", str(stage[key])]
        done = step(row / f"pretrain-{i}.done", cmd)
        seconds, init = seconds + done["seconds"], out
        commands.append(done["command"])
    return init, seconds, commands


def finetune_row(
    row: Path, init: Path, seed: int, F: int, manifests: dict, flags: list[str], device: list[str]
) -> tuple[float, dict]:
    """Fine-tune a row's model with one seed (`flags`: training's) and evaluate it on the test set (`device`:
    evaluation's) -> (PER, the step's record)."""
    suffix = seed_suffix(seed)
    toml = row / f"finetune{suffix}.toml"
    toml.write_text(FINETUNE_TOML.format(batch=FINETUNE_BATCH_SECONDS, valid_every=max(F // 6, 1), seed=seed))
    out = row / f"finetune{suffix}"
    cmd = UNISPEECH + ["finetune", "--init", str(init), "--recipe", str(toml), "--out", str(out)]
    cmd += ["--train", str(manifests["finetune"]), "--valid", str(manifests["valid"]), "--max-updates", str(F)]
    done = step(row / f"finetune{suffix}.done", cmd + flags)
    evaluation = row / f"eval-test{suffix}"
    if not (evaluation / "report.json").is_file():
        run(
            UNISPEECH
            + ["evaluate", "--model", str(out), "--data", str(manifests["test"]), "--out", str(evaluation), *device]
        )
    return json.loads((evaluation / "report.json").read_text())["summary"]["per"], done


def seed_suffix(seed: int | str) -> str:
    """The suffix of a fine-tuning seed's folders and markers; seed 1 keeps the layout of single-seed runs."""
    return "" if int(seed) == 1 else f"-seed{seed}"


def combined(work: Path, names: list[str]) -> Path:
    """One manifest over several sets (absolute audio paths), for unlabelled pretraining on all audio."""
    from unispeech.data import merge_manifests

    return merge_manifests([work / name / "manifest.jsonl" for name in names], work / "all.jsonl")


def last_stats(row: Path, stages: int) -> dict:
    """The last logged contrastive accuracy / perplexity / CTC loss of the last pretraining stage."""
    if not stages:
        return {}
    last = training_rows(row / f"pretrain-{stages - 1}")[-1]
    return {k: last[k] for k in ("accuracy", "perplexity", "ctc") if k in last}


def hours(work: Path, name: str) -> float:
    rows = [json.loads(line) for line in (work / name / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    return sum(r["duration"] for r in rows) / 3600


def write_report(work: Path, results: dict, sets: dict, budget: tuple[int, float, int], command: str) -> None:
    """docs/reproduction.md above its discussion; `budget`: pretraining updates, their audio seconds, and
    fine-tuning updates per row."""
    P, pretrain_batch, F = budget
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    seeds = list(results[names[0]]["pers"])
    shown = seeds if len(seeds) > 1 else []  # per-seed figures; with one seed its PER is the mean
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [results[n]["label"] for n in names][::-1]
    ax.barh(labels, [100 * results[n]["per"] for n in names][::-1], color="#4f81bd")
    for seed in shown:
        ax.plot([100 * results[n]["pers"][seed] for n in names][::-1], labels, "ko", ms=4)
    ax.set_xlabel("held-out Kyrgyz PER (%)" + (f", mean of seeds {', '.join(shown)} (dots)" if shown else ""))
    for i, n in enumerate(names):
        for seed in seeds:
            suffix = seed_suffix(seed)
            log = read_log(work / n / f"finetune{suffix}")
            valid = [(r["step"], 100 * r["valid_per"]) for r in log if r.get("valid_per") is not None]
            ax2.plot(
                *zip(*valid),
                "o-" if seed == "1" else "o--",
                color=f"C{i}",
                ms=3,
                label=results[n]["label"] if seed == "1" else None,
            )
    ax2.set_xlabel("fine-tuning update" + (" (solid: seed 1, dashed: other seeds)" if shown else ""))
    ax2.set_ylabel("validation PER (%)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(DOC.with_suffix(".png"), dpi=100)
    plt.close(fig)
    table = [
        f"| pretraining | held-out PER{', mean' if shown else ''} | {''.join(f'seed {s} | ' for s in shown)}"
        "pretraining min | fine-tuning min (per seed) | last pretraining stats |",
        "|---|---|" + "---|" * len(shown) + "---|---|---|",
    ]
    for n in names:
        r = results[n]
        stats = ", ".join(f"{k} {v:.3g}" for k, v in r["pretrain_stats"].items()) or "-"
        per_seed = "".join(f"{100 * r['pers'][s]:.2f} % | " for s in shown)
        table.append(
            f"| {r['label']} | **{100 * r['per']:.2f} %** | {per_seed}{r['pretrain_seconds'] / 60:.1f} | "
            f"{r['finetune_seconds'] / 60:.1f} | {stats} |"
        )
    commands = "\n".join(f"# {n}\n" + "\n".join(results[n]["commands"]) for n in names)
    params = "hidden 192, 4 layers, 4 heads, FFN 768, quantizer 2 x 320"
    discussion = ""
    if DOC.is_file() and "<!-- discussion -->" in DOC.read_text(encoding="utf-8"):
        discussion = DOC.read_text(encoding="utf-8").split("<!-- discussion -->", 1)[1]
    DOC.write_text(
        f"""# UniSpeech's comparison, reproduced small (synthetic speech)

Made by `{command}` (all of this file above the discussion is written by that script).

- Data (espeak-ng voices with random rate/pitch, reverberation, noise 10-40 dB SNR, gain; disjoint sentences):
  source language Kazakh, labelled with Kazakh phones ({hours(work, "source"):.2f} h, {len(sets["source"])} clips);
  unlabelled Kyrgyz ({hours(work, "target"):.2f} h); labelled Kyrgyz for fine-tuning
  ({hours(work, "finetune"):.2f} h) and validation ({hours(work, "valid"):.2f} h); test: the
  {len(sets["test"])} held-out sentences of `data/ky/val.text` ({hours(work, "test"):.2f} h).
- Model: `recipes/reproduction_config.json` ({params}).
- Budget per row: {P} pretraining updates of up to {pretrain_batch:g} s of audio (none for "no
  pretraining"; 3/4 + 1/4 for stage 1 + stage 2), then {F} fine-tuning updates of up to
  {FINETUNE_BATCH_SECONDS} s, once per fine-tuning seed ({", ".join(seeds)}); the same fine-tuning recipe for every row.
- PER: `unispeech evaluate` of each fine-tuned model on the test set (greedy decoding).

{chr(10).join(table)}

![fine-tuning curves](reproduction.png)

The commands each row ran:

```
{commands}
```
<!-- discussion -->{discussion}""",
        encoding="utf-8",
    )
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
