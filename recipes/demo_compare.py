"""Two demo models on the same held-out sets, paired: is B better than A, set by set, with its phone LM and greedy?

    python recipes/demo_compare.py A_MODEL B_MODEL --work runs/demo-v26 [--sets test-asterisk-ru ...]
                                   [--names v22 v26] [--threads 2]

Evaluates each model on each set's `WORK/SET/manifest.jsonl` twice (the model's own decoding and `--decoder
greedy`), in float32 so that the figures do not depend on the CPU's `auto`, into `WORK/compare/NAME-{own,greedy}/SET`
(resumable: a finished evaluation is kept), then prints one Markdown row per set: both PERs, B - A with its
paired-bootstrap interval (`unispeech.paired`) and the verdict, and greedy's change in the share of phones right.
The default sets are those no demo model trains on (unseen speakers, held-out sentences; Flight of the Amazon Queen's
actors where the work folder has them as unseen speakers); a trained speaker's held-out lines moved with the phone
map (docs/demo-model.md, seventeenth sitting), so they are not among them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo_sets import run  # stdout: the table alone, the evaluations' output on stderr

from unispeech.paired import compare, read_evaluation

UNSEEN_SETS = (
    "test-asterisk-ru",
    "test-fillets-nl",
    "test-fotaq",  # only where the recipe ran with --fotaq and without --fotaq-train
    "test-klettres",
    "test-asterisk-es-co",
    "test-asterisk-fr-armelle",
    "test-festival-unseen-italian",
    "test-festival-unseen-voice",
    "test-mbrola-turkish",
    "test-festvox-ru-nsh",
    "test-rhvoice-azamat",
    "test-rhvoice-nazgul",
    "test",
    "test-unseen-voice",
)
OPTIONAL_SETS = {"test-fotaq"}  # left out of the default where the work folder does not have them
DECODERS = {"own": "auto", "greedy": "greedy"}


def default_sets(work: Path) -> list[str]:
    """UNSEEN_SETS, less the optional ones that `work` does not have."""
    return [s for s in UNSEEN_SETS if s not in OPTIONAL_SETS or (work / s / "manifest.jsonl").is_file()]


def evaluate_all(model: Path, name: str, work: Path, sets: list[str], threads: int) -> None:
    for set_name in sets:
        for label, decoder in DECODERS.items():
            out = work / "compare" / f"{name}-{label}" / set_name
            if (out / "report.json").is_file():
                continue
            run([sys.executable, "-m", "unispeech", "evaluate", "--model", str(model), "--data",
                 str(work / set_name / "manifest.jsonl"), "--out", str(out), "--dtype", "float32",
                 "--threads", str(threads), "--decoder", decoder], stdout=sys.stderr)  # fmt: skip


def table(work: Path, names: tuple[str, str], sets: list[str]) -> str:
    a, b = names
    lines = [
        f"| set | utterances | {a} LM / greedy | {b} LM / greedy | {b} - {a} LM [95 %] | greedy [95 %] | "
        f"phones right greedy, {b} - {a} |",
        "|---|---|---|---|---|---|---|",
    ]
    for set_name in sets:
        own, greedy = (
            compare(*(read_evaluation(work / "compare" / f"{n}-{label}" / set_name) for n in names))
            for label in DECODERS
        )
        lines.append(
            f"| {set_name} | {own.utterances} | {100 * own.per_a:.2f} / {100 * greedy.per_a:.2f} | "
            f"{100 * own.per_b:.2f} / {100 * greedy.per_b:.2f} | {own.cell()} | {greedy.cell()} | "
            f"{100 * (greedy.right_b - greedy.right_a):+.2f} [{100 * greedy.right_low:+.2f}, "
            f"{100 * greedy.right_high:+.2f}] |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="model A (the baseline), a model folder")
    p.add_argument("b", type=Path, help="model B")
    p.add_argument("--work", type=Path, required=True, help="the recipe's work folder holding the test sets")
    p.add_argument("--sets", nargs="+", help="set folders of --work (default: UNSEEN_SETS that it has)")
    p.add_argument("--names", nargs=2, default=("A", "B"), help="the two models' names in folders and the table")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    args.sets = args.sets or default_sets(args.work)
    missing = [s for s in args.sets if not (args.work / s / "manifest.jsonl").is_file()]
    if missing:
        p.error(f"no {args.work}/SET/manifest.jsonl for {', '.join(missing)} (the recipe makes them)")
    for model, name in zip((args.a, args.b), args.names):
        if not (model / "config.json").is_file():
            p.error(f"{model}: not a model folder (no config.json)")
        evaluate_all(model, name, args.work, args.sets, args.threads)
    print(table(args.work, tuple(args.names), args.sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
