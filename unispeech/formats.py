"""Writing transcriptions: txt, json, jsonl, tsv."""

from __future__ import annotations

import json

from .decoding import Transcription

FORMATS = ("txt", "json", "jsonl", "tsv")


def format_results(results: list[tuple[str, Transcription]], fmt: str) -> str:
    """(source name, transcription) pairs -> the text of one output file."""
    if fmt == "txt":
        if len(results) == 1:
            return results[0][1].text + "\n"
        return "".join(f"{name}\t{r.text}\n" for name, r in results)
    if fmt == "json":
        rows = [dict(path=name, **r.to_dict()) for name, r in results]
        return json.dumps(rows[0] if len(rows) == 1 else rows, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(dict(path=name, **r.to_dict()), ensure_ascii=False) + "\n" for name, r in results)
    if fmt == "tsv":
        lines = ["path\tphone\tstart\tend\tconfidence"]
        for name, r in results:
            lines += [f"{name}\t{p}\t{s:.2f}\t{e:.2f}\t{c:.3f}"
                      for p, (s, e), c in zip(r.phones, r.timestamps, r.confidences)]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
