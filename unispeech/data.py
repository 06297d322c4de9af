"""Speech datasets: Common Voice release folders, UniSpeech `*.text`/`*.phone` splits, TSV/JSONL manifests.

Every reader returns the usable utterances plus the skipped ones with a reason, never raising for a
single bad row.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

from .files import atomic_write

AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg")


@dataclasses.dataclass(frozen=True)
class Utterance:
    id: str
    audio: Path | None
    text: str | None = None
    phones: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Skipped:
    id: str
    reason: str


def with_phones(utterances: list[Utterance], language: str = "ky") -> list[Utterance]:
    """Utterances without phones get them from their text by G2P (one espeak call for all of them)."""
    out = list(utterances)
    missing = [i for i, u in enumerate(out) if u.phones is None]
    if not missing:  # espeak-ng is not needed (nor imported) when every row has its phones
        return out
    from .g2p import phonemize

    for i, phones in zip(missing, phonemize([out[i].text or "" for i in missing], language=language)):
        out[i] = dataclasses.replace(out[i], phones=tuple(phones))
    return out


def load_dataset(
    path: str | Path, split: str = "test", audio_dir: str | Path | None = None, labelled: bool = True
) -> tuple[list[Utterance], list[Skipped]]:
    """Read whatever `path` is: a Common Voice folder (`<split>.tsv` + `clips/`), a `.tsv`/`.jsonl`
    manifest, or a UniSpeech split (`name.text` and/or `name.phone`, audio in `audio_dir`). With
    `labelled=False` (audio for the contrastive task) a manifest needs no label column."""
    path = Path(path)
    if path.is_dir():
        folder = _common_voice_folder(path, split)
        return read_tsv(folder / f"{split}.tsv", Path(audio_dir) if audio_dir else folder / "clips", labelled)
    base = path.with_suffix("") if path.suffix in (".text", ".phone") else path
    if base.with_suffix(".text").is_file() or base.with_suffix(".phone").is_file():
        return read_split_files(base, Path(audio_dir) if audio_dir else base.parent / "clips")
    if not path.is_file():
        raise ValueError(f"{path}: no such dataset file or folder")
    if path.suffix == ".jsonl":
        return read_jsonl(path, Path(audio_dir) if audio_dir else path.parent, labelled)
    if path.suffix in (".tsv", ".csv"):
        default_audio = path.parent / "clips" if (path.parent / "clips").is_dir() else path.parent
        return read_tsv(path, Path(audio_dir) if audio_dir else default_audio, labelled)
    raise ValueError(f"{path}: unknown dataset format (expected a Common Voice folder, .tsv, .jsonl, or .text/.phone)")


def _common_voice_folder(path: Path, split: str) -> Path:
    if (path / f"{split}.tsv").is_file():
        return path
    candidates = sorted(p.parent for p in path.glob(f"*/{split}.tsv"))
    if len(candidates) == 1:  # the release root `cv-corpus-*/` holding one language folder
        return candidates[0]
    if not candidates:
        raise ValueError(f"{path}: no {split}.tsv here or in a language folder below")
    raise ValueError(f"{path}: several language folders ({', '.join(c.name for c in candidates)}); pass one of them")


def read_tsv(path: Path, audio_dir: Path, labelled: bool = True) -> tuple[list[Utterance], list[Skipped]]:
    """A Common Voice TSV (`path`, `sentence`) or a manifest TSV (`audio`/`path` and `text`/`sentence`/`phones`)."""
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)  # CV sentences contain quotes
        columns = reader.fieldnames or []
        rows = list(reader)
    return _from_rows(rows, columns, audio_dir, str(path), labelled)


def read_jsonl(path: Path, audio_dir: Path, labelled: bool = True) -> tuple[list[Utterance], list[Skipped]]:
    rows, skipped, columns = [], [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError as e:
            skipped.append(Skipped(f"{path.name}:{n}", f"invalid JSON line ({e})"))
            continue
        columns |= set(row)
        rows.append(row)
    utterances, more = _from_rows(rows, sorted(columns), audio_dir, str(path), labelled)
    return utterances, skipped + more


def _from_rows(rows: list[dict], columns: list[str], audio_dir: Path, source: str, labelled: bool = True):
    audio_key = next((k for k in ("path", "audio") if k in columns), None)
    label_keys = [k for k in ("phones", "sentence", "text") if k in columns]
    if audio_key is None or (labelled and not label_keys):
        needs = " and a label column ('sentence', 'text' or 'phones')" if labelled else ""
        raise ValueError(
            f"{source}: needs an audio column ('path' or 'audio'){needs}; found: {', '.join(columns) or 'none'}"
        )
    utterances, skipped, seen = [], [], set()
    for n, row in enumerate(rows, 1):
        name, given = row.get(audio_key), row.get("id")
        if isinstance(given, (str, int)) and str(given).strip():  # the manifest's own name for it
            uid = str(given).strip()
        else:
            uid = Path(name).stem if isinstance(name, str) and name else f"{Path(source).name}:{n}"
        uid = uid if uid not in seen else f"{uid}#{n}"  # ids key the resume log: keep them unique
        seen.add(uid)
        if not name:
            skipped.append(Skipped(uid, f"row {n}: no audio path"))
            continue
        phones = row.get("phones")
        if isinstance(phones, str):
            phones = phones.split()
        phones = tuple(p for p in phones if p != "|") if phones else None
        text = next((row[k] for k in ("sentence", "text") if isinstance(row.get(k), str) and row[k].strip()), None)
        if labelled and not phones and not text:
            skipped.append(Skipped(uid, f"row {n}: empty sentence"))
            continue
        audio = Path(name) if Path(name).is_absolute() else audio_dir / name
        utterances.append(Utterance(uid, audio, text, phones))
    return utterances, skipped


def read_split_files(base: Path, audio_dir: Path) -> tuple[list[Utterance], list[Skipped]]:
    """UniSpeech's `<name>.text` (id TAB sentence) and `<name>.phone` (phones, "|" between words), line by line."""
    text_path, phone_path = base.with_suffix(".text"), base.with_suffix(".phone")
    texts = text_path.read_text(encoding="utf-8").splitlines() if text_path.is_file() else None
    phones = phone_path.read_text(encoding="utf-8").splitlines() if phone_path.is_file() else None
    if texts is None:
        raise ValueError(f"{text_path}: missing (it names the clips of {phone_path.name})")
    if phones is not None and len(phones) != len(texts):
        raise ValueError(f"{text_path} has {len(texts)} lines but {phone_path} has {len(phones)}")
    utterances, skipped = [], []
    for n, line in enumerate(texts, 1):
        uid, _, sentence = line.partition("\t")
        uid = uid.strip()
        if not uid:
            skipped.append(Skipped(f"{text_path.name}:{n}", "empty line"))
            continue
        labels = tuple(p for p in phones[n - 1].split() if p != "|") if phones is not None else None
        if not labels and not sentence.strip():
            skipped.append(Skipped(uid, "empty sentence"))
            continue
        utterances.append(Utterance(uid, _find_audio(audio_dir, uid), sentence.strip() or None, labels or None))
    return utterances, skipped


def _find_audio(audio_dir: Path, uid: str) -> Path:
    for ext in AUDIO_EXTENSIONS:
        candidate = audio_dir / f"{uid}{ext}"
        if candidate.is_file():
            return candidate
    return audio_dir / f"{uid}.mp3"  # reported as missing when read


def read_sentences(path: Path) -> list[str]:
    """Sentences of a text file: one per line, or `id TAB sentence` (UniSpeech *.text); blank lines dropped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return [s for s in ((line.split("\t", 1)[1] if "\t" in line else line).strip() for line in lines) if s]


def sentence_pool(data_dir: Path) -> tuple[list[str], list[str]]:
    """From a folder laid out like the repository's data/ky: the held-out test sentences (val.text, the
    checkpoint's own validation set) and every other sentence (train.text and cv-sentences/*.txt), sorted,
    without duplicates and without any test sentence. What recipes, benches and tests synthesise from."""
    data_dir = Path(data_dir)
    test = read_sentences(data_dir / "val.text")
    pool = read_sentences(data_dir / "train.text")
    for f in sorted((data_dir / "cv-sentences").glob("*.txt")):
        pool += read_sentences(f)
    held = set(test)
    return test, sorted({s for s in pool if s not in held})


def sentence_splits(data_dir: Path, valid_size: int = 150, seed: int = 0) -> dict[str, list[str]]:
    """The demo model's sentence splits: train / valid from a seeded shuffle of the pool, test held out."""
    import random

    test, pool = sentence_pool(data_dir)
    random.Random(seed).shuffle(pool)
    return {"valid": pool[:valid_size], "train": pool[valid_size:], "test": test}


def manifest_audio(manifest: Path) -> set[str]:
    """The `audio` of every row a JSONL manifest already lists (none if it does not exist): what a resumable
    writer that appends to it has done."""
    if not manifest.is_file():
        return set()
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["audio"] for line in lines if line.strip()}


def write_manifest(rows: list[dict], path: Path) -> Path:
    """A JSONL manifest of `rows`, its folder made if needed, written atomically; left untouched when it already
    says exactly that (so that its modification time tells a resumed recipe whether what is downstream of it
    is stale)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    return atomic_write(path, text)


def merge_manifests(manifests: list[Path], out: Path) -> Path:
    """One JSONL manifest of several, every audio path made absolute (relative ones are beside their manifest)."""
    rows = []
    for manifest in manifests:
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                row["audio"] = str((manifest.parent / row["audio"]).resolve())
                rows.append(row)
    return write_manifest(rows, out)
