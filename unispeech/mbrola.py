"""Kyrgyz sentences said by MBROLA's diphone voices of real speakers (Debian's contrib and non-free sections).

Each MBROLA voice joins diphones recorded from one real speaker (PSOLA), so its timbre is a person's. MBROLA
reads no text: it is given phones with durations and pitch (a .pho file). Each Kyrgyz phone is given as the
voice's nearest phone, with prosody drawn by rule (`unispeech.prosody`), and the labels are the sounds it was
given, mapped back onto the Kyrgyz set. The Turkish voices have nearly every Kyrgyz sound (ө ү ы included).

Their licence is not free: a voice may be used with the MBROLA program only, copied freely when no charge is
made, and not sold nor built into a product that is sold. The voices never ship here: a recipe fetches them
(`fetch`), and uses what they say as test sets or, when asked, as training speech (recipes/demo_model.py
`--mbrola`, `--mbrola-train`), which the model card then names with the licence.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .g2p import VOWELS, harmonised
from .prosody import PhoneSet, segments

# The labelling rules' version: a recipe makes readings labelled under another anew (2: velars by their own word)
LABELLING = 2
LICENSE = "MBROLA licence: with the MBROLA program only, no charge, not sold (Faculté polytechnique de Mons)"


@dataclass(frozen=True)
class Language:
    """How a language's voices say Kyrgyz: `asked` gives each Kyrgyz phone as the voice's phones (a long vowel
    is the short one held longer), `labels` names what each of those says in the Kyrgyz set, and a Kyrgyz phone
    in `joined` is one sound said as several phones, labelled once, as `joined` names it."""

    name: str
    asked: dict[str, str]
    labels: dict[str, str]
    joined: dict[str, str] = field(default_factory=dict)


# What every language here shares: SAMPA's consonants, given and labelled alike. q and ʁ are given as k and g,
# and labelled q and ʁ where the word's vowels, as said, are back (`g2p.harmonised`, as for the Festival voices)
_ASKED = {
    "b": "b", "d[": "d", "t[": "t", "p": "p", "k": "k", "q": "k", "ɡ": "g", "ʁ": "g", "s": "s", "z": "z", "S": "S",
    "dZ": "dZ", "tS": "tS", "ts": "ts", "f": "f", "v": "v", "m": "m", "n": "n", "N": "N", "l": "l", "r": "r",
    "j": "j",
}  # fmt: skip
_LABELS = {
    "b": "b", "d": "d[", "t": "t[", "p": "p", "k": "k", "g": "ɡ", "s": "s", "z": "z", "S": "S", "dZ": "dZ",
    "tS": "tS", "ts": "ts", "f": "f", "v": "v", "m": "m", "n": "n", "N": "N", "l": "l", "r": "r", "j": "j",
}  # fmt: skip


def _language(name: str, asked: dict, labels: dict, joined: dict | None = None, lacks: str = "") -> Language:
    """A language from the shared consonants, its own vowels and differences, and the phones it `lacks`."""
    return Language(
        name,
        _ASKED | asked,
        {k: v for k, v in _LABELS.items() if k not in lacks.split()} | labels,
        joined or {},
    )


# Turkish has no ŋ (given as n, labelled n) and no ts (t s)
TURKISH = _language(
    "Turkish",
    {"ɑ": "a", "e": "e", "i": "I", "o": "o", "u": "u", "ɯ": "@", "oe": "@'", "y": "y", "ə": "@", "X": "h",
     "ts": "t s", "N": "n"},
    {"a": "ɑ", "e": "e", "I": "i", "o": "o", "u": "u", "@": "ɯ", "@'": "oe", "y": "y", "h": "X"},
    lacks="ts N",
)  # fmt: skip
# German (the voices with an alveolar r, English "r": German's own R is uvular): the tense vowels; no ɯ (given as
# I, labelled i, as the Festival voices' nearest vowel is); dʒ is d + Z
GERMAN = _language(
    "German",
    {"ɑ": "a", "e": "e:", "i": "i:", "o": "o:", "u": "u:", "ɯ": "I", "oe": "2:", "y": "y:", "ə": "@", "X": "x",
     "dZ": "d Z"},
    {"a": "ɑ", "e:": "e", "i:": "i", "I": "i", "o:": "o", "u:": "u", "2:": "oe", "y:": "y", "@": "ə", "x": "X",
     "Z": "dZ"},
    {"dZ": "dZ"},
    lacks="dZ",
)  # fmt: skip
# Polish: its y is ɨ, near ы (labelled ɯ); no ө ү (given as e and i, the Festival voices' nearest)
POLISH = _language(
    "Polish",
    {"ɑ": "a", "e": "e", "i": "i", "o": "o", "u": "u", "ɯ": "I", "oe": "e", "y": "i", "ə": "I", "X": "x"},
    {"a": "ɑ", "e": "e", "i": "i", "o": "o", "u": "u", "I": "ɯ", "x": "X"},
)  # fmt: skip
# Estonian: ö ü, and õ (ɤ, near ы: labelled ɯ); no z (s), ŋ (n), ts (t s); tʃ is t + S and so is dʒ (Estonian has
# no voiced sibilant: said and labelled tʃ); x is h (as Turkish's)
ESTONIAN = _language(
    "Estonian",
    {"ɑ": "a", "e": "e", "i": "i", "o": "o", "u": "u", "ɯ": "7", "oe": "2", "y": "y", "ə": "7", "X": "h", "z": "s",
     "dZ": "t S", "tS": "t S", "ts": "t s", "N": "n"},
    {"a": "ɑ", "e": "e", "i": "i", "o": "o", "u": "u", "y": "y", "2": "oe", "7": "ɯ", "h": "X"},
    {"tS": "tS", "dZ": "tS"},
    lacks="z dZ tS ts N",
)  # fmt: skip
# Czech: long vowels of its own; no ɯ, ө, ү (given as i, e, i, as Festival's Czech voices say them), no ŋ (n)
CZECH = _language(
    "Czech",
    {"ɑ": "a", "e": "e", "i": "i", "o": "o", "u": "u", "ɯ": "i", "oe": "e", "y": "i", "ə": "e", "X": "x", "N": "n"},
    {"a": "ɑ", "e": "e", "i": "i", "o": "o", "u": "u", "x": "X"},
    lacks="N",
)  # fmt: skip
# Croatian: as Czech (five vowels, x, no ŋ), as far as Kyrgyz asks
CROATIAN = dataclasses.replace(CZECH, name="Croatian")
# Hungarian: ö ü; its short a is rounded (ɒ), so ɑ is given as long á, and e as long é (short e is open ɛ); no ɯ (i,
# as German), ə (ɛ: labelled e) or ŋ (n); hu1 has no x (h, as Turkish's)
HUNGARIAN = _language(
    "Hungarian",
    {"ɑ": "a:", "e": "e:", "i": "i", "o": "o", "u": "u", "ɯ": "i", "oe": "2", "y": "y", "ə": "E", "X": "h", "N": "n"},
    {"a:": "ɑ", "e:": "e", "E": "e", "i": "i", "o": "o", "u": "u", "2": "oe", "y": "y", "h": "X"},
    lacks="N",
)  # fmt: skip
# Romanian: î/â is ɨ, near ы (labelled ɯ), ă is ə; no ө ү (e and i), ŋ (n); x is h (as Turkish's). ro1 spells
# tʃ dʒ ts as C G T
ROMANIAN = _language(
    "Romanian",
    {"ɑ": "a", "e": "e", "i": "i", "o": "o", "u": "u", "ɯ": "1", "oe": "e", "y": "i", "ə": "@", "X": "h", "N": "n",
     "tS": "C", "dZ": "G", "ts": "T"},
    {"a": "ɑ", "e": "e", "i": "i", "o": "o", "u": "u", "1": "ɯ", "@": "ə", "h": "X", "C": "tS", "G": "dZ", "T": "ts"},
    lacks="N tS dZ ts",
)  # fmt: skip
# Lithuanian: every Kyrgyz consonant but ŋ (its N is a coda n: given n); its voices have hard consonants before
# front vowels too (k-i), so no palatalised ones are asked; every vowel unstressed (its capitals are stressed).
# Its vowels chosen by what v17 heard in 30 sentences of each voice (greedy PER, lt1 / lt2): ė (ee) for e as
# Czech does 41 / 52 %, short e 46 / 46 %; then long aa for ɑ (unstressed a is reduced, heard as e) and long ii
# for i (short i is lax, heard as ɯ): 39 / 36 %. o is long (oo: short o is only in loanwords); no ɯ, ү (ii, as
# Czech gives i), ө, ə (e); j is the consonant j' (its j is a diphthong's glide)
LITHUANIAN = _language(
    "Lithuanian",
    {"ɑ": "aa", "e": "e", "i": "ii", "o": "oo", "u": "u", "ɯ": "ii", "oe": "e", "y": "ii", "ə": "e", "X": "x",
     "N": "n", "j": "j'"},
    {"aa": "ɑ", "e": "e", "ii": "i", "oo": "o", "u": "u", "x": "X", "j'": "j"},
    lacks="N j",
)  # fmt: skip
LANGUAGES = (TURKISH, GERMAN, POLISH, ESTONIAN, CZECH, CROATIAN, HUNGARIAN, ROMANIAN, LITHUANIAN)


_BRNO = "NLP Laboratory, Faculty of Informatics, Masaryk University Brno"
_VILNIUS = "Pijus Kasparaitis, A. S. Girdenis, Vilnius University"


@dataclass(frozen=True)
class MbrolaVoice:
    package: str  # Debian package (non-free)
    language: Language  # how it says Kyrgyz
    speaker: str
    pitch: tuple[float, float]  # the range the sentence's base pitch is drawn from (Hz)
    made_by: str
    held_twins: bool = False  # it has no diphone of a phone with itself: twins are given as one phone (`_held`)


VOICES = {
    "tr1": MbrolaVoice("mbrola-tr1", TURKISH, "adult man", (85.0, 135.0), "Barış Bozkurt, TCTS Lab, FPMs"),
    "tr2": MbrolaVoice("mbrola-tr2", TURKISH, "adult woman", (165.0, 240.0), "Barış Bozkurt, TCTS Lab, FPMs"),
    "de4": MbrolaVoice("mbrola-de4", GERMAN, "adult man", (85.0, 135.0), "IMS, University of Stuttgart"),
    "de6": MbrolaVoice("mbrola-de6", GERMAN, "adult man", (85.0, 135.0), "Institute of Phonetics, Saarland University"),
    "de7": MbrolaVoice("mbrola-de7", GERMAN, "adult woman", (165.0, 240.0), "DFKI (EU project NECA)"),
    "pl1": MbrolaVoice("mbrola-pl1", POLISH, "adult woman", (165.0, 240.0), "Krzysztof Szklanny, PJWSTK"),
    "ee1": MbrolaVoice(
        "mbrola-ee1", ESTONIAN, "adult man", (85.0, 135.0), "Einar Meister, Arvo Eek, Meelis Mihkla, Tallinn"
    ),
    "cz2": MbrolaVoice("mbrola-cz2", CZECH, "adult man", (85.0, 135.0), _BRNO),
    # its diphones are said at ~160 Hz, so a pitch range about that
    "hu1": MbrolaVoice(
        "mbrola-hu1",
        HUNGARIAN,
        "adult woman by its README, a man by Debian's description",
        (130.0, 190.0),
        "Klára Vicsi, BME",
    ),
    "cr1": MbrolaVoice(
        "mbrola-cr1", CROATIAN, "adult man", (85.0, 135.0), "Juraj Bakran, Nikolaj Lazić, Zagreb", held_twins=True
    ),
    "ro1": MbrolaVoice("mbrola-ro1", ROMANIAN, "adult man", (85.0, 135.0), "Marian Boldea, Politehnica Timișoara"),
    "lt1": MbrolaVoice("mbrola-lt1", LITHUANIAN, "adult man, A. S. Girdenis", (85.0, 135.0), _VILNIUS),
    "lt2": MbrolaVoice("mbrola-lt2", LITHUANIAN, "adult man, G. Deksnys", (85.0, 135.0), _VILNIUS),
}

_KINDS = {  # seconds at rate 1 by what the sound is in Kyrgyz (~11 phones a second, as read Kyrgyz)
    **{v: 0.085 for v in "ɑ e i o u y oe".split()}, "ɯ": 0.07, "ə": 0.07,
    **{c: 0.075 for c in "b d[ t[ p k q ɡ ʁ".split()}, **{c: 0.09 for c in "s z S X f v".split()},
    **{c: 0.1 for c in "tS dZ ts".split()},
}  # fmt: skip


class MbrolaError(RuntimeError):
    """MBROLA or one of its voices is missing or failed."""


def _word(word: list[str], language: Language) -> list[tuple[str, tuple[str, ...]]]:
    """A word's Kyrgyz phones -> (the voice's phone, the Kyrgyz labels of its sound)."""
    out = []
    for phone in word:
        short, length = phone.rstrip(":"), ":" if phone.endswith(":") else ""
        for n, name in enumerate(language.asked[short].split()):
            label = language.joined.get(short) or language.labels[name]
            said = () if n and short in language.joined else (label + length if label + length in VOWELS else label,)
            out.append((name, said))
    return harmonised(out)


def phone_set(language: Language) -> PhoneSet:
    """The rule prosody's view of a language: its phones' durations by the Kyrgyz sound they make."""
    seconds = {  # the second phone of a joined pair (Z of d Z) is short: the pair is one Kyrgyz sound
        name: 0.06 if label in language.joined.values() else _KINDS.get(label, 0.06)
        for name, label in language.labels.items()
    }
    vowels = frozenset(name for name, label in language.labels.items() if label in VOWELS)
    return PhoneSet(functools.partial(_word, language=language), seconds, vowels, "_")


def _held(given: list) -> list:
    """Twin phones side by side (a geminate; a word's last vowel before the next word's same one) as one phone
    held for both, labelled as both: for a voice without a phone's diphone with itself (cr1)."""
    out = []
    for name, seconds, f0, said in given:
        if out and name == out[-1][0] and said:
            out[-1] = (name, out[-1][1] + seconds, out[-1][2] or f0, out[-1][3] + said)
        else:
            out.append((name, seconds, f0, said))
    return out


def pho(text: str, voice: str) -> tuple[str, list[str]]:
    """What MBROLA is given for `text` in `voice` (a .pho file: phone, milliseconds, and a pitch point at the
    middle of each vowel), and the Kyrgyz labels of what it says. The prosody is drawn from the voice and the
    sentence, so a sentence is said the same way every time."""
    spec = VOICES[voice]
    given = segments(text, random.Random(f"{voice} {text}"), phone_set(spec.language), spec.pitch)
    given = _held(given) if spec.held_twins else given
    lines = [f"{name} {1000 * s:.0f}" + (f" 50 {f0:.1f}" if f0 else "") for name, s, f0, _ in given]
    return "\n".join(lines) + "\n", [label for *_, said in given for label in said]


def fetch(voices: list[str], dest: str | Path) -> Path:
    """The MBROLA program and `voices` under `dest` (Debian packages fetched with apt-get download and unpacked
    with dpkg-deb: nothing installed, no root); -> the unpacked root. Reuses an earlier unpack."""
    dest = Path(dest)
    wanted = ["mbrola"] + [VOICES[v].package for v in voices]
    missing = [p for p in wanted if not (dest / ".unpacked" / p).is_file()]
    if not missing:
        return dest
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise MbrolaError(
            f"MBROLA comes from Debian/Ubuntu's apt (contrib and non-free, or multiverse): download "
            f"{' '.join(wanted)} yourself and unpack them with `dpkg-deb -x` into {dest}"
        )
    (dest / ".unpacked").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for package, deb in _download(missing, Path(tmp)).items():
            unpack = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
            if unpack.returncode:
                raise MbrolaError(f"dpkg-deb could not unpack {deb.name} into {dest}: {unpack.stderr[-300:]}")
            (dest / ".unpacked" / package).write_text(deb.name)  # marked once whole
    return dest


def _download(packages: list[str], tmp: Path) -> dict[str, Path]:
    """apt-get download, first from the system's sections; where those lack MBROLA (Debian enables main
    alone by default), from the same mirrors' contrib and non-free sections through a private package list."""
    if subprocess.run(["apt-get", "download", *packages], cwd=tmp, capture_output=True).returncode:
        options = _private_sections(tmp)
        update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True)
        got = subprocess.run(["apt-get", *options, "download", *packages], cwd=tmp, capture_output=True, text=True)
        if update.returncode or got.returncode:
            raise MbrolaError(f"apt-get could not fetch {' '.join(packages)}: {(update.stderr + got.stderr)[-400:]}")
    debs = {p: next(iter(tmp.glob(f"{p}_*.deb")), None) for p in packages}
    if None in debs.values():
        raise MbrolaError(f"apt-get download gave no .deb for {' '.join(p for p, d in debs.items() if d is None)}")
    return debs


def _private_sections(tmp: Path) -> list[str]:
    """apt-get options for a package list of the system's Debian mirrors and suites, contrib and non-free."""
    sources = []
    for path in Path("/etc/apt/sources.list.d").glob("*.sources"):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#")
            if "deb" in fields.get("Types", "").split():
                sources += [(uri, suite) for uri in fields["URIs"].split() for suite in fields["Suites"].split()]
    listing = Path("/etc/apt/sources.list")
    for line in listing.read_text().splitlines() if listing.is_file() else []:
        parts = line.split()
        if parts[:1] == ["deb"] and len(parts) >= 3 and not parts[1].startswith("["):
            sources.append((parts[1], parts[2]))
    (tmp / "lists" / "partial").mkdir(parents=True)
    (tmp / "sources.list").write_text("".join(f"deb {u} {s} contrib non-free\n" for u, s in sources))
    return [
        f"-oDir::Etc::sourcelist={tmp / 'sources.list'}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={tmp / 'lists'}",
        "-oDir::Cache::pkgcache=",
        "-oDir::Cache::srcpkgcache=",
    ]


def speak(sentences: list[str], voice: str, root: Path, out_dir: Path) -> list[dict]:
    """Every sentence said by `voice` (MBROLA unpacked under `root`: `fetch`); -> rows (audio = a 16 kHz FLAC
    in `out_dir`, text, phones, duration) of the utterances that MBROLA said."""
    import soundfile as sf

    from .audio import SAMPLE_RATE, load_audio

    root = Path(root).resolve()  # MBROLA runs in a temporary folder
    program, database = root / "usr" / "bin" / "mbrola", root / "usr" / "share" / "mbrola" / voice / voice
    if not (program.is_file() and database.is_file()):
        raise MbrolaError(f"no MBROLA program or voice {voice} under {root}: fetch them first")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            given, phones = pho(text, voice)
            (Path(tmp) / "in.pho").write_text(given, encoding="latin-1")
            run = subprocess.run([str(program), str(database), "in.pho", "out.wav"], cwd=tmp, capture_output=True)
            if run.returncode or not phones:
                failed = run.stderr.decode("latin-1")[-300:]
                continue
            wav = load_audio(Path(tmp) / "out.wav")
            sf.write(out_dir / f"{i:05d}.flac", wav, SAMPLE_RATE)
            row = {"audio": str((out_dir / f"{i:05d}.flac").resolve()), "text": text, "phones": " ".join(phones)}
            rows.append({"id": f"mbrola-{voice}-{i:05d}", **row, "duration": round(wav.size / SAMPLE_RATE, 3)})
    if sentences and not rows:
        raise MbrolaError(f"MBROLA's {voice} said none of {len(sentences)} sentences: {failed}")
    return [{**r, "voice": f"mbrola-{voice}", "corpus": "mbrola"} for r in rows]
