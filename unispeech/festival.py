"""Kyrgyz sentences read by Festival's voices of real Czech, Finnish, Italian, Catalan and American speakers (Debian).

These voices join recorded diphones of one real speaker each (women, men and a boy; LPC-resynthesised), so their
timbre is a person's, not a vocoder's: the demo model made from synthetic speech alone fails on them as on real
voices (~50 % PER). The Catalan voice is a statistical-parametric (HTS) voice of a real woman. The Kyrgyz phones
are spelled in the voice's own orthography (`SPELLING`), and the labels are what the voice then said: Festival's
own segments, mapped back onto the Kyrgyz set (`TO_KYRGYZ`). Where the language lacks a Kyrgyz sound (Czech has no
ө ү ы), the label is the sound it made instead, never the one that was asked for. Utterances in which Festival fell
back to a default diphone (a silent gap where a phone was asked for) are left out.

The English voices get no text: an English front end cannot read Kyrgyz in any spelling. They are given the phones
themselves (Festival's "Segments" utterances, `segments`), each Kyrgyz phone as the nearest English one, with
durations and a pitch contour drawn here; the labels are again the sounds they were given.
"""

from __future__ import annotations

import functools
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .g2p import VELARS, VOWELS, harmonised, uvular
from .prosody import PhoneSet, clause_words, segments


@dataclass(frozen=True)
class FestivalVoice:
    package: str  # Debian package
    language: str  # "cs", "fi", "it", "ca": which spelling and phone set; "en": given phones (`segments`)
    speaker: str
    license: str
    synthesis: str = "diphone"  # or "HTS (statistical-parametric)"


VOICES = {
    "czech_dita": FestivalVoice("festvox-czech-dita", "cs", "adult woman", "GPL-3+, Brailcom"),
    "czech_krb": FestivalVoice("festvox-czech-krb", "cs", "boy", "GPL-3+, Brailcom"),
    "czech_machac": FestivalVoice("festvox-czech-machac", "cs", "adult man", "GPL-3+, Brailcom"),
    "czech_ph": FestivalVoice("festvox-czech-ph", "cs", "adult man", "GPL-2+, Brailcom"),
    "suo_fi_lj_diphone": FestivalVoice("festvox-suopuhe-lj", "fi", "adult woman", "LGPL-2+, University of Helsinki"),
    "hy_fi_mv_diphone": FestivalVoice("festvox-suopuhe-mv", "fi", "adult man", "LGPL-2+, University of Helsinki"),
    "lp_diphone": FestivalVoice("festvox-italp16k", "it", "adult woman", "GPL-2+, IFM Development Team"),
    "pc_diphone": FestivalVoice("festvox-itapc16k", "it", "adult man", "GPL-2+, IFM Development Team"),
    "kal_diphone": FestivalVoice("festvox-kallpc16k", "en", "adult man", "free, (c) 1998 Alan W Black, Kevin Lenzo"),
    "ked_diphone": FestivalVoice("festvox-kdlpc16k", "en", "adult man", "free, (c) 1997 CSTR, Univ. of Edinburgh"),
    "upc_ca_ona_hts": FestivalVoice(
        "festvox-ca-ona-hts",
        "ca",
        "adult woman",
        "LGPL-2.1+, Universitat Politècnica de Catalunya",
        "HTS (statistical-parametric)",
    ),
}
# The labelling rules' version: a recipe makes readings labelled under another anew (2: velars by their own word)
LABELLING = 2
# Test sets only unless a recipe trains on them (recipes/demo_model.py --festival-voices): real timbres a model
# has not met, one with a training voice's front end (Czech), three with a front end and recordings of their own
# (two Italian diphone voices, one Catalan HTS voice) and two given phones with prosody drawn by rule (English)
HELD_OUT_VOICES = ("czech_ph", "lp_diphone", "pc_diphone", "kal_diphone", "ked_diphone", "upc_ca_ona_hts")
ENCODING = {"cs": "iso-8859-2", "fi": "latin-1", "it": "latin-1", "ca": "latin-1", "en": "latin-1"}  # Festival reads
_FOLDERS = {"cs": "czech", "fi": "finnish", "it": "italian", "ca": "catalan", "en": "english"}

_LETTERS = {
    # Kyrgyz phone: Czech, Finnish, Italian, Catalan letters (Finnish has no š ž č in Latin-1, nor z or x; Italian
    # has no long vowels, ö ü ы or x, and writes tʃ dʒ ʃ as ci gi sci, whose i its front end may say: the label
    # tells; Catalan reduces unstressed vowels to ə, so every vowel carries a stress accent, and an unstressed i
    # is the glide j)
    **dict(zip(VOWELS, zip("a á e é i í o ó u ú y e é i í e".split(), "a aa e ee i ii o oo u uu i ö öö y yy e".split(),
                            "a a e e i i o o u u i e e i i e".split(), "à à é é í í ó ó ú ú í é é í í é".split()))),
    "b": ("b", "b", "b", "b"), "d[": ("d", "d", "d", "d"), "t[": ("t", "t", "t", "t"), "p": ("p", "p", "p", "p"),
    "k": ("k", "k", "k", "k"), "q": ("k", "k", "k", "k"), "ɡ": ("g", "g", "gh", "g"), "ʁ": ("g", "g", "gh", "g"),
    "X": ("ch", "h", "k", "k"), "s": ("s", "s", "s", "s"), "z": ("z", "s", "s", "z"), "S": ("š", "s", "sci", "x"),
    "dZ": ("dž", "dj", "gi", "j"), "tS": ("č", "ts", "ci", "tx"), "ts": ("c", "ts", "z", "ts"),
    "f": ("f", "f", "f", "f"), "v": ("v", "v", "v", "v"), "m": ("m", "m", "m", "m"), "n": ("n", "n", "n", "n"),
    "N": ("ng", "ng", "ng", "ng"), "j": ("j", "j", "j", "i"), "l": ("l", "l", "l", "l"), "r": ("r", "r", "r", "r"),
}  # fmt: skip
SPELLING = {
    language: {p: letters[n] for p, letters in _LETTERS.items()} for n, language in enumerate(("cs", "fi", "it", "ca"))
}
# Letters that say another sound in some places, and what is written there instead. Catalan: g before e/i (ʒ:
# "gu"), s between vowels (z: "ss"), r at a word's end (silent: "rr")
_IN_CONTEXT = {"ca": ((re.compile("g(?=[eéií])"), "gu"), (re.compile("(?<=[aàeéiíoóuú])s(?=[aàeéiíoóuú])"), "ss"),
                      (re.compile("r$"), "rr"))}  # fmt: skip

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
    **{f"{p}:": ((k + ":",) if k + ":" in VOWELS else (k, k)) for p, k in _FINNISH_SHORT.items()},
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
_CATALAN_VOWELS = {"a": "ɑ", "e": "e", "E": "e", "i": "i", "o": "o", "O": "o", "u": "u"}
_CATALAN = {  # festival-ca's upc_catalan-central phones; "tS" is the pair t S joined (`_JOINED`)
    **{v: (k,) for v, k in _CATALAN_VOWELS.items() if v != "i"},
    "i": ("j",),  # every vowel is spelled stressed, so an unstressed i is a spelled j, said as a glide
    **{f"{v}1": (k,) for v, k in _CATALAN_VOWELS.items()},  # stressed
    "ax": ("ə",), "j": ("j",), "w": ("u",), "p": ("p",), "t": ("t[",), "k": ("k",), "b": ("b",), "d": ("d[",),
    "g": ("ɡ",), "f": ("f",), "s": ("s",), "z": ("z",), "S": ("S",), "Z": ("dZ",), "tS": ("tS",), "m": ("m",),
    "n": ("n",), "J": ("n", "j"), "l": ("l",), "L": ("l", "j"), "r": ("r",), "rr": ("r",),
}  # fmt: skip
_JOINED = {"ca": {("t", "S"): "tS"}}  # segment pairs that are one Kyrgyz phone (Catalan "tx")
# Kyrgyz phone -> the English (Festival's radio phone set) ones the English voices are given; a long vowel is the
# short one held longer. English has no ө ү ы: they are given as e, u and ɪ, and labelled e, u and i.
ASKED_ENGLISH = {
    "ɑ": "aa", "e": "eh", "i": "iy", "o": "ao", "u": "uw", "ɯ": "ih", "oe": "eh", "y": "uw", "ə": "ax", "b": "b",
    "d[": "d", "t[": "t", "p": "p", "k": "k", "q": "k", "ɡ": "g", "ʁ": "g", "X": "hh", "s": "s", "z": "z",
    "S": "sh", "dZ": "jh", "tS": "ch", "ts": "t s", "f": "f", "v": "v", "m": "m", "n": "n", "N": "ng", "l": "l",
    "r": "r", "j": "y",
}  # fmt: skip
_ENGLISH = {  # as g2p.FOREIGN_PHONES maps espeak-ng's English phones (ɪ -> i)
    "aa": "ɑ", "eh": "e", "iy": "i", "ao": "o", "uw": "u", "ih": "i", "ax": "ə", "b": "b", "d": "d[", "t": "t[",
    "p": "p", "k": "k", "g": "ɡ", "hh": "X", "s": "s", "z": "z", "sh": "S", "jh": "dZ", "ch": "tS", "f": "f",
    "v": "v", "m": "m", "n": "n", "ng": "N", "l": "l", "r": "r", "y": "j",
}  # fmt: skip
TO_KYRGYZ = {
    "cs": {p: (k,) for p, k in _CZECH.items()},
    "fi": _FINNISH,
    "it": _ITALIAN,
    "ca": _CATALAN,
    "en": {p: (k,) for p, k in _ENGLISH.items()},
}
# Seconds of each English phone at rate 1 (~11 phones a second, as read Kyrgyz), by kind
_VOWEL_SECONDS = {"aa": 0.085, "eh": 0.085, "iy": 0.085, "ao": 0.085, "uw": 0.085, "ih": 0.075, "ax": 0.055}
_VOWEL_SECONDS |= {"ay": 0.13, "oy": 0.13, "ey": 0.12}
_DIPHTHONGS = {"ɑ": "ay", "o": "oy", "e": "ey"}  # Kyrgyz vowel + coda j
_SECONDS_OF = _VOWEL_SECONDS | {p: 0.075 for p in "b d t p k g".split()} | {p: 0.09 for p in "s z sh f v hh".split()}
_SECONDS_OF |= {"ch": 0.1, "jh": 0.1}
_SILENCES = {"#", "##", "_", "pau"}  # pauses (Finnish writes a long one "##")


class FestivalError(RuntimeError):
    """Festival or one of its voices is missing, or it said something we cannot label."""


def spell(text: str, language: str) -> str:
    """Kyrgyz text -> the same phones written in `language`'s orthography, a comma at each clause break so
    that the voice phrases the sentence."""
    letters = SPELLING[language]
    spelled = [" ".join(_spell_word(w, letters, language) for w in clause) for clause in clause_words(text)]
    return ", ".join(s for s in spelled if s)


def _spell_word(phones: list[str], letters: dict[str, str], language: str) -> str:
    # ŋ is "ng", but before k or g the "n" alone says it in every language ("ngg" would add a g)
    word = "".join(
        "n" if p == "N" and i + 1 < len(phones) and phones[i + 1] in VELARS else letters[p]
        for i, p in enumerate(phones)
    )
    for pattern, letters_there in _IN_CONTEXT.get(language, ()):
        word = pattern.sub(letters_there, word)
    return word


def _english(word: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """A word's Kyrgyz phones -> (English phone, the Kyrgyz labels of its sound). English has no j before a
    consonant or a pause, so its diphone voices cannot say one there: a vowel with such a j becomes an English
    diphthong (ay, oy, ey; labelled as g2p labels English's), or the vowel and an i."""
    out, i = [], 0
    while i < len(word):
        phone, after = word[i], word[i + 1 : i + 3]
        length = ":" if phone.endswith(":") else ""
        short = phone.rstrip(":")
        if after[:1] == ["j"] and (len(after) < 2 or after[1] not in VOWELS):
            # ɑ o e: ay oy ey; after another vowel the j is said as an i
            out += (
                [(_DIPHTHONGS[short], (phone, "j"))] if short in _DIPHTHONGS else _english([phone]) + [("iy", ("i",))]
            )
            i += 2
            continue
        for name in ASKED_ENGLISH[short].split():
            label = _ENGLISH[name]
            out.append((name, (label + length if label + length in VOWELS else label,)))
        i += 1
    return harmonised(out)


ENGLISH = PhoneSet(_english, _SECONDS_OF, frozenset(_VOWEL_SECONDS), "pau")


def request(text: str, voice: str) -> str:
    """What Festival is asked to say for `text` with `voice` (its utterance): a reading made from other requests
    (the spelling or the phones given changed since) is stale."""
    return _utterance(text, voice)[0]


def _utterance(text: str, voice: str) -> tuple[str, list[tuple] | None]:
    """The Festival utterance that has `voice` read `text`, and for a voice given phones, what it was given."""
    language = VOICES[voice].language
    if language != "en":
        return f'(Utterance Text "{spell(text, language).replace(chr(34), "")}")', None
    given = segments(text, random.Random(f"{voice} {text}"), ENGLISH)  # the same prosody for a sentence every time
    given = _bridged(given, diphones(voice))
    listing = " ".join(f"({n} {t:.3f}" + (f" ({t / 2:.3f} {f0:.1f}))" if f0 else ")") for n, t, f0, _ in given)
    return f"(Utterance Segments ({listing}))", given


@functools.cache
def diphones(voice: str) -> frozenset[str]:
    """The "a-b" diphones a voice has recorded (the index at the head of its group file)."""
    (group,) = (voice_folder(voice) / "group").glob("*.group")
    with open(group, "rb") as f:
        head = f.read(1 << 20)  # the index is text before the binary data: ~30 bytes a diphone
    header, _, index = head.partition(b"EST_Header_End\n")
    count = int(re.search(rb"NumEntries (\d+)", header).group(1))
    return frozenset(line.split()[0].decode("latin-1") for line in index.split(b"\n")[:count])


def _bridged(given: list[tuple], recorded: frozenset[str]) -> list[tuple]:
    """A short pause between two phones whose diphone the voice lacks (English has no ɑ-u or j-l across a
    word boundary): otherwise Festival puts silence where a phone was asked for."""
    out = given[:1]
    for segment in given[1:]:
        if f"{out[-1][0]}-{segment[0]}" not in recorded:
            out.append(("pau", 0.03, None, ()))
        out.append(segment)
    return out


def labels(segments: list[str], language: str, words: list[str] | None = None) -> list[str]:
    """Festival's segment names -> Kyrgyz phones (pauses dropped); an unknown name is an error, not a guess.
    `words` (a word key per segment: Festival's word item) keeps each velar's harmony within its own word."""
    table = TO_KYRGYZ[language]
    said = _joined(list(zip(segments, words or [""] * len(segments))), _JOINED.get(language, {}))
    unknown = sorted({s for s, _ in said if s not in _SILENCES and s not in table})
    if unknown:
        raise FestivalError(f"Festival {language} segments outside its phone set: {' '.join(unknown)}")
    phones = [(k, word) for s, word in said if s not in _SILENCES for k in table[s]]
    return uvular([k for k, _ in phones], [word for _, word in phones])


def _joined(segments: list[tuple[str, str]], pairs: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """(segment, word) pairs, with each pair of segments that is one Kyrgyz phone made one (the first's word)."""
    out: list[tuple[str, str]] = []
    for s, word in segments:
        if out and (out[-1][0], s) in pairs:
            out[-1] = (pairs[out[-1][0], s], out[-1][1])
        else:
            out.append((s, word))
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
        script, given = [f"(voice_{voice})", _SAVE_SEGMENTS], {}
        for i, text in enumerate(sentences):
            utterance, given[i] = _utterance(text, voice)
            script.append(
                f'(format stderr "@@ {i}\\n")(set! utt {utterance})(utt.synth utt)'
                f'(utt.save.wave utt "{tmp}/{i}.wav" \'riff)(save_segments utt "{tmp}/{i}.segs")'
            )
        (Path(tmp) / "say.scm").write_bytes("\n".join(script).encode(ENCODING[language]))
        run = subprocess.run(["festival", "--batch", f"{tmp}/say.scm"], capture_output=True, encoding="latin-1")
        gaps = _utterances_with_gaps(run.stderr)
        rows = []
        for i, text in enumerate(sentences):
            segs = Path(tmp) / f"{i}.segs"
            if i in gaps or not segs.is_file():
                continue
            said = [line.split() for line in segs.read_text("latin-1").splitlines() if line.strip()]
            names, words = [name for name, _ in said], [word for _, word in said]
            phones = labels(names, language, words) if given[i] is None else _given_labels(given[i], names)
            if not phones:
                continue
            wav = load_audio(Path(tmp) / f"{i}.wav")
            sf.write(out_dir / f"{i:05d}.flac", wav, SAMPLE_RATE)
            row = {"audio": str((out_dir / f"{i:05d}.flac").resolve()), "text": text, "phones": " ".join(phones)}
            rows.append({"id": f"{voice}-{i:05d}", **row, "duration": round(wav.size / SAMPLE_RATE, 3)})
    if not rows:
        raise FestivalError(f"Festival's {voice} said none of {len(sentences)} sentences: {run.stderr[-300:]}")
    return [{**r, "voice": f"festival-{voice}", "corpus": "festival"} for r in rows]


# Writes each segment's name and its word (Festival's word item id; 0 for a pause)
_SAVE_SEGMENTS = """(define (save_segments utt path)
  (let ((fd (fopen path "w")))
    (mapcar (lambda (s) (format fd "%s %s\\n" (item.name s) (item.feat s "R:SylStructure.parent.parent.id")))
            (utt.relation.items utt 'Segment))
    (fclose fd)))"""


def _given_labels(given: list[tuple], said: list[str]) -> list[str]:
    """The labels of what a voice given phones was given, once its segments show it said exactly that."""
    if [g[0] for g in given] != said:
        raise FestivalError(f"Festival said {' '.join(said)!r}, not the phones it was given")
    return [label for *_, said in given for label in said]


def _utterances_with_gaps(log: str) -> set[int]:
    """Utterances (by the "@@ i" markers the script prints) during which Festival used a default diphone, or
    met a letter its letter-to-sound rules lack (and skipped it)."""
    gaps, current = set(), None
    for line in log.splitlines():
        if line.startswith("@@ "):
            current = int(line[3:])
        elif ("default diphone" in line or "failed to find tree" in line) and current is not None:
            gaps.add(current)
    return gaps
