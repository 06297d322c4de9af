"""A resumable evaluation run: transcribe a dataset (any engine of bulk.py), score each utterance, write the report.

`out_dir/transcription/` is the bulk job (resumed when re-run, refused for another model, precision or
decoder); `utterances.jsonl` holds one scored row per utterance; `report.json`, `report.md` and the plots
are the same whichever engine ran the job; the run's speed goes to `speed.json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .bulk import ModelSpec, run_job
from .data import Skipped, Utterance, with_phones
from .files import atomic_write
from .metrics import ErrorCounts, edit_ops, phone_error_rate
from .report import write_report
from .transcribe import Recognizer

TRANSCRIPTION = "transcription"


def evaluate(
    recognizer: Recognizer,
    utterances: list[Utterance],
    out_dir: str | Path,
    skipped: list[Skipped] = (),
    batch_size: int = 8,
    progress: bool = True,
    language: str = "ky",
    meta: dict | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    spec: ModelSpec | None = None,
) -> dict | None:
    """Transcribe, score and report; -> the report (None on torchrun ranks other than 0, which only
    transcribe their share)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "utterances.jsonl").is_file() and not (out / TRANSCRIPTION / "job.json").is_file():
        raise ValueError(
            f"{out} holds results of an older evaluation (no {TRANSCRIPTION}/job.json); "
            "choose another --out folder, or delete this one to start over"
        )
    started = time.perf_counter()
    job = run_job(
        recognizer,
        [str(u.audio) for u in utterances],
        out / TRANSCRIPTION,
        batch_size=batch_size,
        engine=engine,
        ray_address=ray_address,
        spec=spec,
        progress=progress,
    )
    if job.transcripts is None:
        return None
    elapsed = time.perf_counter() - started
    utterances = with_phones(utterances, language)  # G2P on rank 0 only: the other ranks score nothing
    results = [json.loads(line) for line in job.transcripts.read_text(encoding="utf-8").splitlines()]
    rows = [score(u, r) for u, r in zip(utterances, results, strict=True)]
    atomic_write(out / "utterances.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    audio = sum(r.get("duration", 0.0) for r in results)
    speed = {
        "newly_transcribed": job.transcribed,
        "seconds": elapsed,
        "utterances_per_second": job.transcribed / elapsed if job.transcribed else None,
        # audio of this run alone is known only when nothing was done before it
        "real_time_factor": elapsed / audio if job.transcribed and not job.already_done and audio else None,
    }
    atomic_write(out / "speed.json", json.dumps(speed, indent=2))
    return write_report(out, rows, list(skipped), {**(meta or {}), "newly_scored": job.transcribed})


def score_logits(
    recognizer: Recognizer, logits: list, lengths: list[int], refs: list[list[str]], decoder=None
) -> ErrorCounts:
    """Corpus error counts of logits computed once (`Recognizer.logits_batch`) and decoded with `decoder`
    (default: the recognizer's own): one decoding after another without running the network again, as
    decoder tuning and the noise benches do. `lengths`: each utterance's samples."""
    decoded = recognizer if decoder is None else recognizer.with_decoder(decoder)
    hyps = [decoded.decode(x, n).phones for x, n in zip(logits, lengths, strict=True)]
    return phone_error_rate(refs, hyps)


def score(u: Utterance, result: dict) -> dict:
    """One utterance's row: its edit operations against the reference phones, or why it was skipped."""
    if "error" in result:
        return {"id": u.id, "skipped": result["error"]}
    if not u.phones:
        return {"id": u.id, "skipped": "sentence phonemizes to nothing"}
    ops = edit_ops(list(u.phones), result["phones"])
    counts = ErrorCounts().add(ops)
    return {
        "id": u.id,
        "audio": str(u.audio),
        "text": u.text,
        "ref": " ".join(u.phones),
        "hyp": result["text"],
        "per": counts.per,
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "reference_phones": counts.reference_phones,
        "duration": result["duration"],
        "ops": [[op, r, h] for op, r, h in ops if op != "="],
    }
