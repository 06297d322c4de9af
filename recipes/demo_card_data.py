"""The demo model's card, its training-data table: clips and hours per source and what each source is (the
manifests say which voices; unispeech/festival.py, unispeech/mbrola.py and recipes/demo_rhvoice.py who they are)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from demo_descriptions import LANGUAGE_NAMES, SOURCES, and_joined, real_speakers
from demo_rhvoice import voices_source

from unispeech import mbrola
from unispeech.festival import VOICES


def training_rows(work: Path) -> list[dict]:
    """The last stage's training manifest (mixed when real voices were used)."""
    manifest = work / "train-mixed" / "manifest.jsonl"
    if not manifest.is_file():
        manifest = work / "train" / "manifest.jsonl"
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]


def data_table(rows: list[dict]) -> str:
    """Clips and hours per source of the training rows."""
    clips, seconds = Counter(), Counter()
    for r in {r["audio"]: r for r in rows}.values():  # a clip listed twice (--real-repeat) counts once
        corpus = r.get("corpus", "espeak-ng")
        clips[corpus] += 1
        seconds[corpus] += r["duration"]
    drawn = Counter(r.get("corpus", "espeak-ng") for r in rows)
    lines = ["| source | clips | hours | what it is |", "|---|---|---|---|"]
    sources = {**SOURCES, "festival": festival_source(festival_voices(rows)), "mbrola": mbrola_source(rows)}
    sources["rhvoice-voices"] = voices_source(rows)
    repeated = {
        c: f" (each clip {drawn[c] // clips[c]} times in the training mix)" for c in clips if drawn[c] > clips[c]
    }
    lines += [
        f"| {c} | {clips[c]} | {seconds[c] / 3600:.2f} | {sources.get(c, c)}{repeated.get(c, '')} |" for c in clips
    ]
    return "\n".join(lines)


def festival_voices(rows: list[dict]) -> list[str]:
    """The Festival voices among the training rows."""
    return sorted({r["voice"].removeprefix("festival-") for r in rows if r.get("corpus") == "festival"})


def manifest_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text("utf-8").splitlines() if line.strip()]


def mbrola_voices(rows: list[dict]) -> list[str]:
    """The MBROLA voices among the training rows."""
    return sorted({r["voice"].removeprefix("mbrola-") for r in rows if r.get("corpus") == "mbrola"})


def mbrola_source(rows: list[dict]) -> str:
    """What the MBROLA training rows are (unispeech/mbrola.py's VOICES)."""
    voices = {v: mbrola.VOICES[v] for v in mbrola_voices(rows)}
    named = ", ".join(
        f"{v} ({spec.speaker}, {spec.language.name}; Debian `{spec.package}`, {spec.made_by})"
        for v, spec in voices.items()
    )
    return (
        f"Kyrgyz sentences (espeak-ng's training sentences) said by MBROLA's diphone voices of "
        f"{real_speakers(len(voices))}: {named}; each given the Kyrgyz phones as the nearest ones of its "
        "language, with durations and pitch drawn by rule (`unispeech/mbrola.py`); labels: the sounds given, "
        f"named in the Kyrgyz set; utterances with a missing diphone left out; {mbrola.LICENSE}"
    )


def festival_source(voices: list[str]) -> str:
    """What the Festival rows are, for the voices trained on (unispeech/festival.py's VOICES)."""
    named = ", ".join(
        f"{v} ({VOICES[v].speaker}, {VOICES[v].language}; {VOICES[v].package}: {VOICES[v].license})" for v in voices
    )
    how = []
    spelled = sorted({LANGUAGE_NAMES[VOICES[v].language] for v in voices if VOICES[v].language != "en"})
    if spelled:
        how.append(f"the {and_joined(spelled)} ones read the phones spelled in their orthography")
    if any(VOICES[v].language == "en" for v in voices):
        how.append("the English ones are given the phones, with durations and pitch drawn by rule")
    kinds = and_joined(sorted({VOICES[v].synthesis for v in voices}, reverse=True))
    return (
        f"Kyrgyz sentences (espeak-ng's training sentences) read by Festival's {kinds} voices of "
        f"{real_speakers(len(voices))}: {named}; {'; '.join(how)}; labels: the phones the voice said (its segments), "
        "mapped onto the Kyrgyz set (`unispeech/festival.py`); utterances with a missing diphone left out"
    )
