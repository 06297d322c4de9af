"""Speech beyond espeak-ng for the demo model: RHVoice's two Kyrgyz voices and festvox-ru's real Russian speaker.

Each reader returns manifest rows (absolute `audio`, `text`, `phones` where the corpus fixes them, `voice`,
`duration`, `corpus`) and never reaches the network; `fetch_festvox_ru` is the one step that does (apt).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .g2p import BACK_VOWELS, UVULAR

FESTVOX_RU_PACKAGE = "festvox-ru"
FESTVOX_RU_VOICE = "usr/share/festival/voices/russian/msu_ru_nsh_clunits"

# festvox-ru's phone set (msu_ru_nsh_phoneset.scm) onto the Kyrgyz one. Palatalisation is dropped (the
# Kyrgyz set has none); reduced vowels go to their nearest full vowel; k/g become uvular before back
# vowels as our Kyrgyz G2P does (`g2p.UVULAR`).
RU_TO_KY = {
    "a": "ɑ", "aa": "ɑ", "ae": "ɑ", "ay": "i", "e": "e", "ee": "e", "i": "i", "ii": "i", "y": "ɯ", "yy": "ɯ",
    "u": "u", "uu": "u", "ur": "u", "oo": "o",
    "p": "p", "pp": "p", "b": "b", "bb": "b", "t": "t[", "tt": "t[", "d": "d[", "dd": "d[",
    "k": "k", "kk": "k", "g": "ɡ", "gg": "ɡ", "c": "ts", "ch": "tS", "f": "f", "ff": "f", "v": "v", "vv": "v",
    "s": "s", "ss": "s", "z": "z", "zz": "z", "sh": "S", "sch": "S", "zh": "dZ", "h": "X", "hh": "X",
    "m": "m", "mm": "m", "n": "n", "nn": "n", "l": "l", "ll": "l", "r": "r", "rr": "r", "j": "j",
}  # fmt: skip
_SILENCE = "pau"


class CorpusError(ValueError):
    """A corpus folder that is not what its reader expects."""


def rhvoice_rows(folder: str | Path) -> list[dict]:
    """`ky-rhvoice/` (metadata.tsv: id, voice, rate %, pitch %, seconds, text; audio/<id>.flac). No phones:
    RHVoice speaks with its own G2P, the labels come from ours."""
    folder = Path(folder)
    meta = folder / "metadata.tsv"
    if not meta.is_file():
        raise CorpusError(f"{folder}: no metadata.tsv (expected the ky-rhvoice folder)")
    rows = []
    for n, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != 6:
            raise CorpusError(f"{meta}:{n}: expected 6 tab-separated fields, got {len(fields)}")
        uid, voice, rate, pitch, seconds, text = fields
        rows.append(
            {
                "id": uid,
                "audio": str((folder / "audio" / f"{uid}.flac").resolve()),
                "text": text,
                "voice": f"rhvoice-{voice.lower()}",
                "rate": int(rate),
                "pitch": int(pitch),
                "duration": float(seconds),
                "corpus": "rhvoice",
            }
        )
    return rows


def festvox_ru_rows(folder: str | Path) -> list[dict]:
    """festvox-ru's voice folder (`msu_ru_nsh_clunits`: wav/, lab/, etc/txt.done.data): phones from the
    time-aligned labels mapped onto the Kyrgyz set, pauses dropped."""
    folder = Path(folder)
    prompts = folder / "etc" / "txt.done.data"
    if not prompts.is_file():
        raise CorpusError(f"{folder}: no etc/txt.done.data (expected festvox-ru's msu_ru_nsh_clunits folder)")
    rows = []
    for uid, text in re.findall(r'\(\s*(\S+)\s+"(.*)"\s*\)', prompts.read_text(encoding="utf-8")):
        lab, wav = folder / "lab" / f"{uid}.lab", folder / "wav" / f"{uid}.wav"
        if not (lab.is_file() and wav.is_file()):
            continue
        segments = [f for f in (line.split() for line in lab.read_text(encoding="utf-8").splitlines()) if len(f) == 3]
        phones = map_russian_phones([label for _, _, label in segments])
        rows.append(
            {
                "id": uid,
                "audio": str(wav.resolve()),
                "text": text.replace("+", ""),  # '+' marks stress in the prompts
                "phones": " ".join(phones),
                "voice": "festvox-ru-nsh",
                "duration": float(segments[-1][0]) if segments else 0.0,  # each line: end time, colour, phone
                "corpus": "festvox-ru",
            }
        )
    if not rows:
        raise CorpusError(f"{folder}: no utterance has both lab/<id>.lab and wav/<id>.wav")
    return rows


def map_russian_phones(labels: list[str]) -> list[str]:
    """festvox-ru phone labels -> Kyrgyz phones (see RU_TO_KY); an unknown label is an error, not a guess."""
    unknown = sorted({p for p in labels if p != _SILENCE and p not in RU_TO_KY})
    if unknown:
        raise CorpusError(f"festvox-ru labels outside its phone set: {' '.join(unknown)}")
    labels = [p for p in labels if p != _SILENCE]
    phones = [RU_TO_KY[p] for p in labels]
    return [  # plain (not palatalised) k and g only: before a back vowel they are uvular
        UVULAR[p] if label in ("k", "g") and i + 1 < len(phones) and phones[i + 1] in BACK_VOWELS else p
        for i, (label, p) in enumerate(zip(labels, phones))
    ]


def fetch_festvox_ru(dest: str | Path) -> Path:
    """Debian's festvox-ru package (apt-get download; unpacked with dpkg-deb, no root, nothing installed)
    into `dest`; -> its voice folder. Reuses an earlier unpack."""
    dest = Path(dest)
    voice = dest / FESTVOX_RU_VOICE
    if (voice / "etc" / "txt.done.data").is_file():
        return voice
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise CorpusError(
            "festvox-ru comes from Debian/Ubuntu's apt; on this system download festvox-ru_*.deb yourself, "
            "unpack it with `dpkg-deb -x` (or `ar x` + tar) and pass its msu_ru_nsh_clunits folder"
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", FESTVOX_RU_PACKAGE], cwd=tmp, check=True)
        (deb,) = Path(tmp).glob("*.deb")
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return voice
