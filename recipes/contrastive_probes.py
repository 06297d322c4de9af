"""#20's regime probes side by side on one machine (made for one GPU: each probe is a small model), to a deadline.

    python recipes/contrastive_probes.py --clean DIR [--noisy DIR] --work W [--device cuda] [--minutes 7]
                                         [--probes noisy-40,clean-40,...]
    python recipes/contrastive_probes.py --work W --summary     # the table of what W's probes logged

Every probe is contrastive-only pretraining of the reproduction model (recipes/reproduction_config.json) with
recipes/contrastive_probe.toml (the long CPU probe of docs/reproduction.md: lr 1e-3, 40 s batches, Gumbel
2 -> 0.5 over 3000 updates) and one or two changes on the command line. The data: the reproduction's Kyrgyz
target sentences (1200 clips; 1140 train, the last 60 held out, as the long probe), either as synthesised
("noisy": noise at 10-40 dB SNR, half of them reverberant, silence padding) or clean (`synthesize_corpus(...,
clean=True)`: the same voices, no augmentation). Without --noisy, the noisy set is made from the clean one
with the synthesis' own augmentation and per-clip seeds (seed 101), i.e. the same draws as the original set.

At the deadline every probe gets a Ctrl-C (it finishes its update and writes a checkpoint); `--resume`-able
with the same command. The summary is each probe's held-out contrastive loss / accuracy / perplexity by update.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBES = {  # name -> (data set, extra `unispeech pretrain` flags)
    "noisy-40": ("noisy", []),
    "clean-40": ("clean", []),
    "noisy-160": ("noisy", ["--max-batch-seconds", "160"]),
    "clean-160": ("clean", ["--max-batch-seconds", "160"]),
    "clean-160-lr2e-3": ("clean", ["--max-batch-seconds", "160", "--lr", "2e-3"]),
    "clean-640-lr2e-3": ("clean", ["--max-batch-seconds", "640", "--lr", "2e-3"]),
    "noisy-640-lr2e-3": ("noisy", ["--max-batch-seconds", "640", "--lr", "2e-3"]),
    "clean-640-lr2e-3-bf16": ("clean", ["--max-batch-seconds", "640", "--lr", "2e-3", "--bf16"]),
}
HELD_OUT = 60
SEED = 101  # recipes/reproduction.py's seed for the target set (100 + its place among the sets)


def noisy_from_clean(clean: Path, out: Path, workers: int = 8) -> Path:
    """The synthesis' augmentation (unispeech.synth: augment with the per-clip generator) applied to the clean
    clips: the noisy set as synthesize_corpus(seed=101) makes it, up to the clean clips' own coding."""
    from unispeech.augment import worker_pool

    rows = [json.loads(line) for line in (clean / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    (out / "clips").mkdir(parents=True, exist_ok=True)
    jobs = [(clean / r["audio"], out / "clips" / f"{i:06d}.flac", i) for i, r in enumerate(rows)]
    with worker_pool(workers, len(jobs)) as pool:
        infos = list((pool.map if pool else map)(_augment_clip, *zip(*jobs)))
    lines = [
        json.dumps({**r, "audio": f"clips/{i:06d}.flac", **info}, ensure_ascii=False) + "\n"
        for i, (r, info) in enumerate(zip(rows, infos))
    ]
    (out / "manifest.jsonl").write_text("".join(lines), encoding="utf-8")
    return out


def _augment_clip(src: Path, dst: Path, index: int) -> dict:
    import numpy as np
    import soundfile as sf

    from unispeech.augment import augment

    wav, rate = sf.read(src, dtype="float32")
    noisy, info = augment(wav, np.random.default_rng([SEED, index]))
    sf.write(dst, noisy, rate)
    return {"duration": round(noisy.size / rate, 3), **info}


def split(folder: Path) -> tuple[Path, Path]:
    """probe-train (all but the last HELD_OUT clips) and probe-valid manifests beside the set's manifest."""
    lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    train, valid = folder / "probe-train.jsonl", folder / "probe-valid.jsonl"
    train.write_text("".join(lines[:-HELD_OUT]), encoding="utf-8")
    valid.write_text("".join(lines[-HELD_OUT:]), encoding="utf-8")
    return train, valid


def command(name: str, sets: dict[str, tuple[Path, Path]], work: Path, device: str) -> list[str]:
    data, extra = PROBES[name]
    train, valid = sets[data]
    out = work / name
    resume = ["--resume"] if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.pt")) else []
    return [
        *(sys.executable, "-m", "unispeech", "pretrain"),
        *("--init", str(ROOT / "recipes" / "reproduction_config.json")),
        *("--recipe", str(ROOT / "recipes" / "contrastive_probe.toml")),
        *("--unlabeled", str(train), "--valid", str(valid), "--out", str(out), "--device", device),
        *extra,
        *resume,
    ]


def run_to_deadline(commands: dict[str, list[str]], work: Path, seconds: float) -> None:
    """All probes at once, each with its own log; a Ctrl-C to each at the deadline, a kill a minute later."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    procs = {}
    for name, cmd in commands.items():
        print("$", " ".join(cmd), flush=True)
        log = open(work / f"{name}.log", "a")
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + seconds
    while time.time() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for name, p in procs.items():
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
        print(f"{name}: exit {p.returncode}", flush=True)


def summary(work: Path, names: list[str]) -> str:
    """Held-out loss / accuracy / perplexity of each probe at each validated update, and seconds per update."""
    logs = {}
    for name in names:
        path = work / name / "train_log.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
        logs[name] = rows
    steps = sorted({r["step"] for rows in logs.values() for r in rows if "valid_accuracy" in r})
    lines = ["| update | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for step in steps:
        cells = []
        for name in names:
            row = next((r for r in logs[name] if r.get("step") == step and "valid_accuracy" in r), None)
            cells.append(
                f"{row['valid_loss']:.3f} / {row['valid_accuracy']:.3f} / {row['valid_perplexity']:.0f}" if row else "-"
            )
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    pace = []
    for name in names:
        timed = [r for r in logs[name] if "seconds" in r]
        if len(timed) >= 2:
            rate = (timed[-1]["seconds"] - timed[0]["seconds"]) / max(timed[-1]["step"] - timed[0]["step"], 1)
            pace.append(f"{name}: {rate:.3f} s/update to update {timed[-1]['step']}")
    return "\n".join(lines + ["", *pace])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clean", type=Path, help="the clean target set (manifest.jsonl + clips)")
    p.add_argument("--noisy", type=Path, help="the noisy target set (default: made from --clean)")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--minutes", type=float, default=7.0, help="wall time before every probe is stopped")
    p.add_argument("--probes", default=",".join(PROBES), help="comma-separated, of: " + ", ".join(PROBES))
    p.add_argument("--summary", action="store_true", help="only print the table of what the probes logged")
    args = p.parse_args()
    names = args.probes.split(",")
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        sys.exit(f"contrastive_probes.py: unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
    if not args.summary and args.clean is None:
        sys.exit("contrastive_probes.py: --clean DIR is needed to run probes (--summary alone reads --work)")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        noisy = args.noisy
        if noisy is None and any(PROBES[n][0] == "noisy" for n in names):
            noisy = args.work / "target-noisy"
            if not (noisy / "manifest.jsonl").is_file():
                noisy_from_clean(args.clean, noisy)
        sets = {"clean": split(args.clean), **({"noisy": split(noisy)} if noisy else {})}
        run_to_deadline({n: command(n, sets, args.work, args.device) for n in names}, args.work, args.minutes * 60)
    print(summary(args.work, names))


if __name__ == "__main__":
    main()
