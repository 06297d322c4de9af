"""A resumable evaluation run: transcribe a dataset, score each utterance, write the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .data import Skipped, Utterance, with_phones
from .metrics import ErrorCounts, edit_ops
from .report import write_report
from .transcribe import Recognizer


def evaluate(
    recognizer: Recognizer,
    utterances: list[Utterance],
    out_dir: str | Path,
    skipped: list[Skipped] = (),
    batch_size: int = 8,
    progress: bool = True,
    language: str = "ky",
    meta: dict | None = None,
) -> dict:
    """Transcribe, score and report. Rows already in `out_dir/utterances.jsonl` are reused (resume) when
    they came from the same model, precision and decoder; results of another model are refused, not mixed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "utterances.jsonl"
    _check_same_run(out / "run.json", _run_identity(recognizer), rows_path)
    done = _read_rows(rows_path)
    skipped = list(skipped)
    todo = [u for u in utterances if u.id not in done]
    todo = with_phones(todo, language)
    from tqdm import tqdm

    start, audio_seconds, fresh = time.perf_counter(), 0.0, 0
    bar = tqdm(total=len(todo), unit="utt", desc="evaluating", dynamic_ncols=True, disable=not progress)
    with open(rows_path, "a", encoding="utf-8") as log, bar:
        for lo in range(0, len(todo), batch_size * 16):
            group = todo[lo : lo + batch_size * 16]
            results = recognizer.transcribe_many([u.audio for u in group], batch_size=batch_size)
            for u, result in zip(group, results):
                row = _score(u, result)
                audio_seconds += row.get("duration", 0.0)
                fresh += "per" in row
                done[u.id] = row
                log.write(json.dumps(row, ensure_ascii=False) + "\n")
            log.flush()
            bar.update(len(group))
    elapsed = time.perf_counter() - start
    rows = [done[u.id] for u in utterances if u.id in done]
    speed = {
        "utterances_per_second": fresh / elapsed if fresh and elapsed else None,
        "real_time_factor": elapsed / audio_seconds if audio_seconds else None,
        "newly_scored": fresh,
    }
    return write_report(out, rows, skipped, {**(meta or {}), **speed})


def _run_identity(recognizer: Recognizer) -> dict:
    import torch

    with torch.no_grad():  # a checksum of the weights: a retrained model in the same folder is another model
        checksum = sum(float(p.double().sum()) for p in recognizer.model.parameters())
    precision = recognizer.precision
    return {
        "model": recognizer.name,
        "weights_checksum": f"{checksum:.9e}",
        "dtype": f"{precision.compute} (CNN {precision.features})".replace("torch.", ""),
        "decoder": recognizer.decoder.describe(),
    }


def _check_same_run(path: Path, identity: dict, rows_path: Path) -> None:
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != identity:
            changed = ", ".join(f"{k}: {previous.get(k)} -> {v}" for k, v in identity.items() if previous.get(k) != v)
            raise ValueError(
                f"{path.parent} holds results of another run ({changed}); "
                "choose another --out folder, or delete this one to start over"
            )
    elif rows_path.is_file() and rows_path.stat().st_size:
        raise ValueError(
            f"{path.parent} holds results without a run.json (another version or model?); "
            "choose another --out folder, or delete this one to start over"
        )
    path.write_text(json.dumps(identity, indent=2), encoding="utf-8")


def _score(u: Utterance, result) -> dict:
    if isinstance(result, Exception):
        return {"id": u.id, "skipped": str(result)}
    if not u.phones:
        return {"id": u.id, "skipped": "sentence phonemizes to nothing"}
    ops = edit_ops(list(u.phones), result.phones)
    counts = ErrorCounts().add(ops)
    return {
        "id": u.id,
        "audio": str(u.audio),
        "text": u.text,
        "ref": " ".join(u.phones),
        "hyp": result.text,
        "per": counts.per,
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "reference_phones": counts.reference_phones,
        "duration": result.duration,
        "ops": [[op, r, h] for op, r, h in ops if op != "="],
    }


def _read_rows(path: Path) -> dict[str, dict]:
    rows = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interruption: recompute it
                continue
            rows[row["id"]] = row
    return rows
