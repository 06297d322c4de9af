"""Throughput of a bulk transcription job: one process with N threads vs N single-thread torchrun ranks,
the same files, in one run.

    python bench/bulk_throughput.py --input runs/remeasure/test/manifest.jsonl [--model DIR] [--procs 2]

Each layout writes into its own fresh folder under --work; the table has wall seconds (launch and model
load included), files/s, audio seconds per second and each worker's peak RSS (from runs.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(layout: str, args, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = ["transcribe", "--input", args.input, "--output-dir", str(out), "--batch-size", str(args.batch_size)]
    base += ["--model", args.model] if args.model else []
    if layout == "threads":
        cmd = [sys.executable, "-m", "unispeech", *base, "--threads", str(args.procs)]
        env = {}
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(args.procs),
            "--master_port",
            "29571",
            "-m",
            "unispeech",
            *base,
            "--threads",
            "1",
        ]
        env = {"OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    workers = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    return {
        "wall": wall,
        "files": len(rows),
        "audio": sum(r.get("duration", 0.0) for r in rows),
        "rss": [w["max_rss_mb"] for w in sorted(workers, key=lambda w: w["rank"])],
        "bytes": (out / "transcripts.jsonl").read_bytes(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--model")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--work", default="/tmp/unispeech-bulk-bench")
    args = p.parse_args()
    from unispeech.precision import cpu_flags

    print(f"CPU flags: {' '.join(sorted(cpu_flags()))}; {os.cpu_count()} cores")
    results = {layout: run(layout, args, Path(args.work) / layout) for layout in ("threads", "ranks")}
    print("| layout | wall (s) | files/s | audio s/s | peak RSS per worker (MB) |")
    print("|---|---|---|---|---|")
    for layout, label in (("threads", f"1 process, {args.procs} threads"), ("ranks", f"{args.procs} ranks x 1 thread")):
        r = results[layout]
        print(
            f"| {label} | {r['wall']:.1f} | {r['files'] / r['wall']:.1f} | {r['audio'] / r['wall']:.1f} | "
            f"{', '.join(f'{m:.0f}' for m in r['rss'])} |"
        )
    print(f"transcripts.jsonl identical: {results['threads']['bytes'] == results['ranks']['bytes']}")


if __name__ == "__main__":
    main()
