"""The subcommand about evaluation reports: `compare-reports` (is model B's PER really lower than A's?)."""

from __future__ import annotations

import argparse
import json

from .train.recipe import natural_int, positive_float, positive_int


def cmd_compare_reports(args: argparse.Namespace) -> int:
    from .paired import compare_runs, read_evaluation

    a_runs = [read_evaluation(folder) for folder in [args.a, *(pair[0] for pair in args.also or ())]]
    b_runs = [read_evaluation(folder) for folder in [args.b, *(pair[1] for pair in args.also or ())]]
    result = compare_runs(a_runs, b_runs, draws=args.draws, level=args.level, seed=args.seed)
    if args.format == "json":
        derived = {"difference": result.difference, "verdict": result.verdict}
        derived |= {"right_difference": result.right_difference, "says_less": result.says_less}
        print(json.dumps({**vars(result), **derived}, indent=2))
        return 0
    unpaired = f"; {result.unpaired} scored in only some, left out" if result.unpaired else ""
    unpaired += "; paired by audio file: the ids differ" if result.paired_by == "audio" else ""
    runs = f", the mean of {result.runs_a} and {result.runs_b} runs" if result.runs_a + result.runs_b > 2 else ""
    resampled = " over utterances and runs" if runs else ""
    print(
        f"A {100 * result.per_a:.2f} %, B {100 * result.per_b:.2f} % PER over {result.utterances} utterances "
        f"({result.reference_phones} phones{runs}{unpaired})\n"
        f"B - A {100 * result.difference:+.2f} points, {100 * result.level:g} % interval "
        f"[{100 * result.low:+.2f}, {100 * result.high:+.2f}] (paired bootstrap{resampled}, {args.draws} draws): "
        f"{result.verdict}; B better on {result.b_better} utterances, worse on {result.b_worse}\n"
        f"Phones right: A {100 * result.right_a:.2f} %, B {100 * result.right_b:.2f} %; B - A "
        f"{100 * result.right_difference:+.2f} points [{100 * result.right_low:+.2f}, {100 * result.right_high:+.2f}]"
        + (
            "; B's lower PER comes with fewer phones right: it says less, it does not hear more"
            if result.says_less
            else ""
        )
    )
    return 0


def level(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"a level is between 0 and 1 (0.95 for 95 %), not {text}")
    return value


def add_compare_reports(sub) -> None:
    p = sub.add_parser(
        "compare-reports",
        help="two evaluations of the same test set: the PER difference and its interval (and the phones right)",
        description="Compare two `unispeech evaluate --out` folders of the same utterances (paired by id): "
        "both PERs, B - A with a paired-bootstrap interval, and whether B is better, worse, or not clearly "
        "either; the same for the share of reference phones recognised right, which tells a model that hears more "
        "from one that says less. The interval covers the draw of utterances, not of training runs: it compares "
        "two models. "
        "To compare two recipes, train each with several seeds and give the other runs with --also: each "
        "draw then resamples the runs too.",
    )
    p.add_argument("a", help="evaluation folder of model A (the baseline)")
    p.add_argument("b", help="evaluation folder of model B")
    p.add_argument(
        "--also",
        nargs=2,
        action="append",
        metavar=("A2", "B2"),
        help="another run of each side's recipe (say, another training seed), evaluated on the same set; repeatable",
    )
    p.add_argument("--draws", type=positive_int, default=2000, help="bootstrap resamplings (default: 2000)")
    p.add_argument("--level", type=level, default=0.95, help="interval level (default: 0.95)")
    p.add_argument("--seed", type=natural_int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=cmd_compare_reports)
