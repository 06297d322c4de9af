"""Writing results: txt, json, jsonl, tsv, ctm and Praat TextGrid."""

from __future__ import annotations

import json

from .decoding import Transcription

FORMATS = ("txt", "json", "jsonl", "tsv", "ctm", "textgrid")

Interval = tuple[float, float, str, float]  # start, end, label, score


def format_results(results: list[tuple[str, Transcription]], fmt: str) -> str:
    """(source name, transcription) pairs -> the text of one output file."""
    if fmt == "txt":
        if len(results) == 1:
            return results[0][1].text + "\n"
        return "".join(f"{name}\t{r.text}\n" for name, r in results)
    if fmt in ("json", "jsonl"):
        return format_rows([dict(path=name, **r.to_dict()) for name, r in results], fmt)
    tiers = [
        (name, {"phones": [(s, e, p, c) for p, (s, e), c in zip(r.phones, r.timestamps, r.confidences)]}, r.duration)
        for name, r in results
    ]
    return format_tiers(tiers, fmt)


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows[0] if len(rows) == 1 else rows, ensure_ascii=False, indent=2) + "\n"
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def format_tiers(items: list[tuple[str, dict[str, list[Interval]], float]], fmt: str) -> str:
    """(name, {tier: intervals}, duration) per file -> tsv, ctm or textgrid text."""
    if fmt == "tsv":
        lines = ["path\ttier\tlabel\tstart\tend\tscore"]
        lines += [
            f"{name}\t{tier}\t{label}\t{s:.2f}\t{e:.2f}\t{c:.3f}"
            for name, tiers, _ in items
            for tier, intervals in tiers.items()
            for s, e, label, c in intervals
        ]
        return "\n".join(lines) + "\n"
    if fmt == "ctm":  # NIST CTM: utterance, channel, start, duration, token, confidence (first tier: phones)
        return "".join(
            f"{ctm_name(name)} 1 {s:.2f} {e - s:.2f} {label} {c:.3f}\n"
            for name, tiers, _ in items
            for s, e, label, c in next(iter(tiers.values()))
        )
    if fmt == "textgrid":
        if len(items) != 1:
            raise ValueError("a TextGrid holds one recording: give one audio file for --format textgrid")
        return textgrid(items[0][1], items[0][2])
    raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")


def textgrid(tiers: dict[str, list[Interval]], duration: float) -> str:
    """Praat's long TextGrid format; gaps between intervals become empty intervals, as Praat requires."""
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {duration}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for n, (name, intervals) in enumerate(tiers.items(), 1):
        filled, t = [], 0.0
        for s, e, label, _ in intervals:
            if s > t:
                filled.append((t, s, ""))
            filled.append((max(s, t), e, label))
            t = e
        if t < duration or not filled:
            filled.append((t, duration, ""))
        lines += [
            f"    item [{n}]:",
            '        class = "IntervalTier"',
            f'        name = "{name}"',
            "        xmin = 0",
            f"        xmax = {duration}",
            f"        intervals: size = {len(filled)}",
        ]
        for k, (s, e, label) in enumerate(filled, 1):
            text = label.replace('"', '""')
            lines += [
                f"        intervals [{k}]:",
                f"            xmin = {s}",
                f"            xmax = {e}",
                f'            text = "{text}"',
            ]
    return "\n".join(lines) + "\n"


def ctm_name(name: str) -> str:
    """CTM fields are separated by white space: escape it (and %) in a file name as in URLs, %20 for a space."""
    return "".join(f"%{ord(c):02X}" if c.isspace() or c == "%" else c for c in name)
