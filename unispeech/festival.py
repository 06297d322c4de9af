"""Kyrgyz sentences read by Festival's diphone voices of real Czech, Finnish and Italian speakers (Debian).

These voices join recorded diphones of one real speaker each (women, men and a boy; LPC-resynthesised),
so their timbre is a person's, not a vocoder's: the demo model made from synthetic speech alone fails on
them as on real voices (~50 % PER). The Kyrgyz phones are spelled in the voice's own orthography
(`SPELLING`), and the labels are what the voice then said: Festival's own segments, mapped back onto the
Kyrgyz set (`TO_KYRGYZ`). Where the language lacks a Kyrgyz sound (Czech has no ө ү ы), the label is the
sound it made instead, never the one that was asked for. Utterances in which Festival fell back to a
default diphone (a silent gap where a phone was asked for) are left out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .g2p import WORD_BOUNDARY, phonemize


@dataclass(frozen=True)
class FestivalVoice:
    package: str  # Debian package
    language: str  # "cs" or "fi": which spelling and phone set
    speaker: str
    license: str


VOICES = {
    "czech_dita": FestivalVoice("festvox-czech-dita", "cs", "adult woman", "GPL-3+, Brailcom"),
    "czech_krb": FestivalVoice("festvox-czech-krb", "cs", "boy", "GPL-3+, Brailcom"),
    "czech_machac": FestivalVoice("festvox-czech-machac", "cs", "adult man", "GPL-3+, Brailcom"),
    "czech_ph": FestivalVoice("festvox-czech-ph", "cs", "adult man", "GPL-2+, Brailcom"),
    "suo_fi_lj_diphone": FestivalVoice("festvox-suopuhe-lj", "fi", "adult woman", "LGPL-2+, University of Helsinki"),
    "hy_fi_mv_diphone": FestivalVoice("festvox-suopuhe-mv", "fi", "adult man", "LGPL-2+, University of Helsinki"),
    "lp_diphone": FestivalVoice("festvox-italp16k", "it", "adult woman", "GPL-2+, IFM Development Team"),
    "pc_diphone": FestivalVoice("festvox-itapc16k", "it", "adult man", "GPL-2+, IFM Development Team"),
}
# Never trained on: real timbres the model has not met, one with a training voice's front end (Czech) and two
# with a front end and recordings of their own (Italian)
HELD_OUT_VOICES = ("czech_ph", "lp_diphone", "pc_diphone")
ENCODING = {"cs": "iso-8859-2", "fi": "latin-1", "it": "latin-1"}  # what each language's Festival front end reads
_FOLDERS = {"cs": "czech", "fi": "finnish", "it": "italian"}

_VOWELS = "ɑ ɑ: e e: i i: o o: u u: ɯ oe oe: y y: ə".split()
_LETTERS = {
    # Kyrgyz phone: Czech, Finnish, Italian letters (Finnish has no š ž č in Latin-1, nor z or x; Italian has no
    # long vowels, ö ü ы or x, and writes tʃ dʒ ʃ as ci gi sci, whose i its front end may say: the label tells)
    **dict(zip(_VOWELS, zip("a á e é i í o ó u ú y e é i í e".split(), "a aa e ee i ii o oo u uu i ö öö y yy e".split(),
                            "a a e e i i o o u u i e e i i e".split()))),
    "b": ("b", "b", "b"), "d[": ("d", "d", "d"), "t[": ("t", "t", "t"), "p": ("p", "p", "p"), "k": ("k", "k", "k"),
    "q": ("k", "k", "k"), "ɡ": ("g", "g", "gh"), "ʁ": ("g", "g", "gh"), "X": ("ch", "h", "k"), "s": ("s", "s", "s"),
    "z": ("z", "s", "s"), "S": ("š", "s", "sci"), "dZ": ("dž", "dj", "gi"), "tS": ("č", "ts", "ci"),
    "ts": ("c", "ts", "z"), "f": ("f", "f", "f"), "v": ("v", "v", "v"), "m": ("m", "m", "m"), "n": ("n", "n", "n"),
    "N": ("ng", "ng", "ng"), "j": ("j", "j", "j"), "l": ("l", "l", "l"), "r": ("r", "r", "r"),
}  # fmt: skip
SPELLING = {
    language: {p: letters[n] for p, letters in _LETTERS.items()} for n, language in enumerate(("cs", "fi", "it"))
}

# Festival's phones (czech.scm, suopuhe's finnish_phones.scm, italian_phoneset.scm) -> Kyrgyz phones; k/g get
# their uvular form from the word's vowels afterwards (`uvular`).
_CZECH = {
    "a": "ɑ", "a:": "ɑ:", "e": "e", "e:": "e:", "i": "i", "i:": "i:", "o": "o", "o:": "o:", "u": "u", "u:": "u:",
    "b": "b", "c": "ts", "c~": "tS", "ch": "X", "d": "d[", "d~": "d[", "dz": "z", "dz~": "dZ", "f": "f", "g": "ɡ",
    "h": "X", "j": "j", "k": "k", "l": "l", "m": "m", "n": "n", "n*": "N", "n~": "n", "p": "p", "r": "r", "r~": "r",
    "r~*": "r", "s": "s", "s~": "S", "t": "t[", "t~": "t[", "v": "v", "z": "z", "z~": "dZ",
}  # fmt: skip
_FINNISH_SHORT = {
    "a": "ɑ", "e": "e", "i": "i", "o": "o", "u": "u", "y": "y", "7": "oe", "@": "e", "p": "p", "t": "t[", "k": "k",
    "b": "b", "d": "d[", "g": "ɡ", "f": "f", "s": "s", "S": "S", "h": "X", "v": "v", "m": "m", "n": "n", "N": "N",
    "l": "l", "r": "r", "j": "j",
}  # fmt: skip
_FINNISH = {
    **{p: (k,) for p, k in _FINNISH_SHORT.items()},
    # long vowels are one Kyrgyz phone, long (geminate) consonants two
    **{f"{p}:": ((k + ":",) if k + ":" in _VOWELS else (k, k)) for p, k in _FINNISH_SHORT.items()},
}
_ITALIAN_VOWELS = {"i": "i", "e": "e", "E": "e", "a": "ɑ", "o": "o", "O": "o", "u": "u"}
_ITALIAN = {
    **{v: (k,) for v, k in _ITALIAN_VOWELS.items()},
    **{f"{v}1": (k,) for v, k in _ITALIAN_VOWELS.items()},  # stressed
    "j": ("j",), "w": ("u",), "p": ("p",), "t": ("t[",), "k": ("k",), "b": ("b",), "d": ("d[",), "g": ("ɡ",),
    "f": ("f",), "s": ("s",), "S": ("S",), "v": ("v",), "z": ("z",), "Z": ("dZ",), "ts": ("ts",), "tS": ("tS",),
    "dz": ("z",), "dZ": ("dZ",), "m": ("m",), "n": ("n",), "J": ("n", "j"), "ng": ("N",), "nf": ("m",),
    "l": ("l",), "L": ("l", "j"), "r": ("r",),
}  # fmt: skip
TO_KYRGYZ = {"cs": {p: (k,) for p, k in _CZECH.items()}, "fi": _FINNISH, "it": _ITALIAN}
_SILENCES = {"#", "##", "_"}  # pauses (Finnish writes a long one "##")
_BACK = {"ɑ", "ɑ:", "o", "o:", "u", "u:", "ɯ"}
_UVULAR = {"k": "q", "ɡ": "ʁ"}
_VELARS = {"k", "q", "ɡ", "ʁ"}


class FestivalError(RuntimeError):
    """Festival or one of its voices is missing, or it said something we cannot label."""


def spell(text: str, language: str) -> str:
    """Kyrgyz text -> the same phones written in `language`'s orthography, a comma at each clause break so
    that the voice phrases the sentence."""
    clauses = [c for c in re.split(r"[,.;:!?—–…]+", text) if c.strip()]
    letters = SPELLING[language]
    spelled = []
    for phones in phonemize(clauses, word_boundaries=True) if clauses else []:
        words = " ".join(phones).split(WORD_BOUNDARY)
        spelled.append(" ".join(_spell_word(w.split(), letters) for w in words if w.strip()))
    return ", ".join(s for s in spelled if s)


def _spell_word(phones: list[str], letters: dict[str, str]) -> str:
    # ŋ is "ng", but before k or g the "n" alone says it in both languages ("ngg" would add a g)
    return "".join(
        "n" if p == "N" and i + 1 < len(phones) and phones[i + 1] in _VELARS else letters[p]
        for i, p in enumerate(phones)
    )


def labels(segments: list[str], language: str) -> list[str]:
    """Festival's segment names -> Kyrgyz phones (pauses dropped); an unknown name is an error, not a guess."""
    table = TO_KYRGYZ[language]
    unknown = sorted({s for s in segments if s not in _SILENCES and s not in table})
    if unknown:
        raise FestivalError(f"Festival {language} segments outside its phone set: {' '.join(unknown)}")
    return uvular([k for s in segments if s not in _SILENCES for k in table[s]])


def uvular(phones: list[str]) -> list[str]:
    """k/g -> q/ʁ where the nearest vowel (the next one, else the one before) is back: Kyrgyz vowel harmony,
    as our G2P writes it. The voices say a velar k; the Kyrgyz phone for it in that word is q."""
    vowels = [i for i, p in enumerate(phones) if p in _VOWELS]
    out = []
    for i, p in enumerate(phones):
        if p in _UVULAR:
            after = [phones[j] for j in vowels if j > i][:1]
            near = after or [phones[j] for j in vowels if j < i][-1:]
            p = _UVULAR[p] if near and near[0] in _BACK else p
        out.append(p)
    return out


def voice_folder(voice: str) -> Path:
    return Path("/usr/share/festival/voices") / _FOLDERS[VOICES[voice].language] / voice


def install(voices: list[str]) -> None:
    """Festival and the voices' Debian packages, through apt-get where any is missing."""
    missing = [VOICES[v].package for v in voices if not voice_folder(v).is_dir()]
    if shutil.which("festival") and not missing:
        return
    if not shutil.which("apt-get"):
        raise FestivalError(
            "Festival's voices come from Debian/Ubuntu's apt; install festival and "
            f"{' '.join(VOICES[v].package for v in voices)} yourself"
        )
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "festival", *missing]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/bin"}
    if subprocess.run(cmd, env=env).returncode:
        raise FestivalError(f"`{' '.join(cmd)}` failed (it needs root and Debian's package lists): run it yourself")


def speak(sentences: list[str], voice: str, out_dir: Path) -> list[dict]:
    """Every sentence read by `voice` in one Festival process; -> rows (audio = a 16 kHz FLAC in `out_dir`,
    text, phones, duration) of the utterances that Festival said in full."""
    import soundfile as sf

    from .audio import SAMPLE_RATE, load_audio

    if not sentences:
        return []
    language = VOICES[voice].language
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        script = [f"(voice_{voice})"]
        for i, text in enumerate(sentences):
            spelled = spell(text, language).replace('"', "")
            script.append(
                f'(format stderr "@@ {i}\\n")(set! utt (Utterance Text "{spelled}"))(utt.synth utt)'
                f'(utt.save.wave utt "{tmp}/{i}.wav" \'riff)(utt.save.segs utt "{tmp}/{i}.segs")'
            )
        (Path(tmp) / "say.scm").write_bytes("\n".join(script).encode(ENCODING[language]))
        run = subprocess.run(["festival", "--batch", f"{tmp}/say.scm"], capture_output=True, encoding="latin-1")
        gaps = _utterances_with_gaps(run.stderr)
        rows = []
        for i, text in enumerate(sentences):
            segs = Path(tmp) / f"{i}.segs"
            if i in gaps or not segs.is_file():
                continue
            names = [f[2] for f in (line.split() for line in segs.read_text("latin-1").splitlines()) if len(f) == 3]
            wav = load_audio(Path(tmp) / f"{i}.wav")
            sf.write(out_dir / f"{i:05d}.flac", wav, SAMPLE_RATE)
            phones = labels(names, language)
            row = {"audio": str((out_dir / f"{i:05d}.flac").resolve()), "text": text, "phones": " ".join(phones)}
            rows.append({"id": f"{voice}-{i:05d}", **row, "duration": round(wav.size / SAMPLE_RATE, 3)})
    if not rows:
        raise FestivalError(f"Festival's {voice} said none of {len(sentences)} sentences: {run.stderr[-300:]}")
    return [{**r, "voice": f"festival-{voice}", "corpus": "festival"} for r in rows]


def _utterances_with_gaps(log: str) -> set[int]:
    """Utterances (by the "@@ i" markers the script prints) during which Festival used a default diphone."""
    gaps, current = set(), None
    for line in log.splitlines():
        if line.startswith("@@ "):
            current = int(line[3:])
        elif "default diphone" in line and current is not None:
            gaps.add(current)
    return gaps
