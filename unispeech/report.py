"""The evaluation report: report.json, report.md and two plots, from the per-utterance rows."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from .files import atomic_write
from .metrics import EMPTY, ErrorCounts

WORST_SHOWN = 15
PAIRS_SHOWN = 20


def summarize(rows: list[dict], skipped: list, meta: dict) -> dict:
    scored = [r for r in rows if "per" in r]
    total = ErrorCounts()
    per_phone: dict[str, Counter] = defaultdict(Counter)
    confusion: Counter = Counter()
    for r in scored:
        total.substitutions += r["substitutions"]
        total.deletions += r["deletions"]
        total.insertions += r["insertions"]
        total.reference_phones += r["reference_phones"]
        for phone in r["ref"].split():
            per_phone[phone]["count"] += 1
        for op, ref, hyp in r["ops"]:
            if op == "S":
                per_phone[ref]["substitutions"] += 1
            elif op == "D":
                per_phone[ref]["deletions"] += 1
            else:
                per_phone[hyp]["insertions"] += 1
            confusion[(ref or EMPTY, hyp or EMPTY)] += 1
    phones = {
        p: {
            "count": c["count"],
            "substitutions": c["substitutions"],
            "deletions": c["deletions"],
            "insertions": c["insertions"],
            "error_rate": (c["substitutions"] + c["deletions"]) / c["count"] if c["count"] else None,
        }
        for p, c in sorted(per_phone.items())
    }
    all_skipped = [{"id": s.id, "reason": s.reason} for s in skipped] + [
        {"id": r["id"], "reason": r["skipped"]} for r in rows if "skipped" in r
    ]
    return {
        "summary": {
            "per": total.per if total.reference_phones else None,
            "substitutions": total.substitutions,
            "deletions": total.deletions,
            "insertions": total.insertions,
            "reference_phones": total.reference_phones,
            "correct": total.correct,
            "utterances": len(scored),
            "skipped": len(all_skipped),
            "audio_seconds": sum(r["duration"] for r in scored),
            **meta,
        },
        "phones": phones,
        "confusions": [{"ref": a, "hyp": b, "count": n} for (a, b), n in confusion.most_common()],
        "worst": sorted(scored, key=lambda r: (-r["per"], r["id"]))[:WORST_SHOWN],
        "skipped": all_skipped,
    }


def write_report(out: Path, rows: list[dict], skipped: list, meta: dict) -> dict:
    report = summarize(rows, skipped, meta)
    _write(out / "report.json", json.dumps(report, ensure_ascii=False, indent=2))
    _write(out / "report.md", markdown(report))
    plot_phone_errors(report, out / "per_phone_errors.png")
    plot_confusions(report, out / "confusion.png")
    return report


def markdown(report: dict) -> str:
    s = report["summary"]
    per = "n/a" if s["per"] is None else f"{100 * s['per']:.2f} %"
    lines = [
        "# Evaluation report",
        "",
        "| | |",
        "|---|---|",
        f"| PER | **{per}** |",
        f"| utterances scored | {s['utterances']} |",
        f"| reference phones | {s['reference_phones']} |",
        f"| recognised right | {_share(s['correct'], s['reference_phones'])} |",
        f"| substitutions | {s['substitutions']} |",
        f"| deletions | {s['deletions']} |",
        f"| insertions | {s['insertions']} |",
        f"| skipped | {s['skipped']} |",
        f"| audio | {s['audio_seconds'] / 60:.1f} min |",
    ]
    lines += [f"| {k} | {v} |" for k, v in s.items() if k in ("model", "runs", "decoding", "data", "split")]
    lines += ["", "## Worst utterances", "", "| id | PER | reference | recognised |", "|---|---|---|---|"]
    lines += [f"| {r['id']} | {100 * r['per']:.1f} % | {r['ref']} | {r['hyp']} |" for r in report["worst"]]
    lines += [
        "",
        "## Most confused phone pairs",
        "",
        f"({EMPTY} = nothing: deletions and insertions)",
        "",
        "| reference | recognised | count |",
        "|---|---|---|",
    ]
    lines += [f"| {c['ref']} | {c['hyp']} | {c['count']} |" for c in report["confusions"][:PAIRS_SHOWN]]
    lines += [
        "",
        "## Per-phone error rate (substitutions + deletions over occurrences)",
        "",
        "| phone | count | error rate | sub | del | ins |",
        "|---|---|---|---|---|---|",
    ]
    for phone, p in sorted(report["phones"].items(), key=lambda kv: -(kv[1]["error_rate"] or 0)):
        rate = "n/a" if p["error_rate"] is None else f"{100 * p['error_rate']:.1f} %"
        lines.append(
            f"| {phone} | {p['count']} | {rate} | {p['substitutions']} | {p['deletions']} | {p['insertions']} |"
        )
    lines += ["", "## Skipped", ""]
    lines += [f"- {k['id']}: {k['reason']}" for k in report["skipped"]] or ["none"]
    lines += ["", "Plots: `per_phone_errors.png`, `confusion.png`."]
    return "\n".join(lines) + "\n"


def _share(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f} %)" if whole else str(part)


def plot_phone_errors(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(((p, v) for p, v in report["phones"].items() if v["count"]), key=lambda kv: -kv[1]["error_rate"])
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(items)), 4))
    ax.bar([p for p, _ in items], [100 * v["error_rate"] for _, v in items], color="#c0504d")
    ax.set_ylabel("error rate (%)")
    ax.set_title(f"Per-phone error rate (PER {100 * (report['summary']['per'] or 0):.2f} %)")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_confusions(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    phones = sorted(report["phones"]) + [EMPTY]
    index = {p: i for i, p in enumerate(phones)}
    matrix = np.zeros((len(phones), len(phones)))
    for c in report["confusions"]:
        if c["ref"] in index and c["hyp"] in index:
            matrix[index[c["ref"]], index[c["hyp"]]] += c["count"]
    fig, ax = plt.subplots(figsize=(max(5, 0.25 * len(phones)), max(4, 0.25 * len(phones))))
    image = ax.imshow(matrix, cmap="Reds")
    ax.set_xticks(range(len(phones)), phones, fontsize=6, rotation=90)
    ax.set_yticks(range(len(phones)), phones, fontsize=6)
    ax.set_xlabel("recognised")
    ax.set_ylabel("reference")
    ax.set_title("Confusions (errors only)")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _write(path: Path, text: str) -> None:
    atomic_write(path, text)
