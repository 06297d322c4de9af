"""Speech beyond espeak-ng for the demo model: RHVoice's two Kyrgyz voices, festvox-ru's real Russian speaker,
KLettres' real speakers of 16 languages saying letters and syllables, Fish Fillets' actors speaking Czech and
Dutch dialogue, and Asterisk's professional speakers saying telephone prompts in five languages (two of them
by an older speaker too).

Each reader returns manifest rows (absolute `audio`, `text`, `phones` where the corpus fixes them, `voice`,
`duration`, `corpus`) and never reaches the network; `fetch_deb` is the one step that does (apt).
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .g2p import BACK_VOWELS, UVULAR, VOWELS, phonemize, uvular

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
    """Debian's festvox-ru package unpacked into `dest` (`fetch_deb`); -> its voice folder."""
    return fetch_deb(FESTVOX_RU_PACKAGE, dest, FESTVOX_RU_VOICE, "etc/txt.done.data")


def fetch_deb(package: str | tuple[str, ...], dest: str | Path, inside: str, marker: str) -> Path:
    """A Debian package, or several unpacked into one tree (apt-get download; dpkg-deb, no root, nothing
    installed), into `dest`; -> its folder `inside`. Reuses an earlier unpack (one that has `inside`/`marker`)."""
    dest = Path(dest)
    folder = dest / inside
    if (folder / marker).exists():
        return folder
    packages = (package,) if isinstance(package, str) else package
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise CorpusError(
            f"{', '.join(packages)}: Debian/Ubuntu packages (apt); on this system download the .deb file(s) "
            f"yourself, unpack them into one folder with `dpkg-deb -x` (or `ar x` + tar) and pass its "
            f"{Path(inside).name} folder"
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", *packages], cwd=tmp, check=True)
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for deb in sorted(Path(tmp).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return folder


KLETTRES_PACKAGE = "klettres-data"
KLETTRES_DIR = "usr/share/klettres"
# KLettres' language folders -> the espeak-ng voice that reads their letter names and syllables. Left out:
# ar, he, ml (scripts and phones far from Kyrgyz), nds and nn (no espeak-ng voice; nn has no recordings).
KLETTRES_LANGUAGES = {
    "cs": "cs", "da": "da", "de": "de", "en": "en-us", "en_GB": "en-gb", "es": "es", "fr": "fr-fr", "hu": "hu",
    "it": "it", "lt": "lt", "nb": "nb", "nl": "nl", "pt_BR": "pt-br", "ru": "ru", "tn": "tn", "uk": "uk",
}  # fmt: skip
# espeak-ng's phones in those languages -> Kyrgyz phones, where a Kyrgyz listener hears one of its own (vowel
# length kept; ʒ is labelled dZ as in RU_TO_KY): the same phone (ʁ; ɣ is how Kyrgyz says g between vowels, which
# `uvular` writes ɡ or ʁ), palatalisation dropped as RU_TO_KY drops it (ɲ c ɟ ɕ: нь ть дь щ), reduced vowels to the
# nearest full one, diphthongs as vowel + glide, consonant length dropped. Anything else (θ ð ʎ ř, nasal
# vowels...) leaves its clip out of the set rather than guessing.
IPA_TO_KY = {
    "a": ["ɑ"], "ɑ": ["ɑ"], "ʌ": ["ɑ"], "aː": ["ɑ:"], "ɑː": ["ɑ:"],
    "e": ["e"], "ɛ": ["e"], "ε": ["e"], "æ": ["e"], "ea": ["e"], "eː": ["e:"], "ɛː": ["e:"], "ee": ["e:"],
    "i": ["i"], "ɪ": ["i"], "iː": ["i:"], "o": ["o"], "ɔ": ["o"], "ɒ": ["o"], "ɵ": ["o"],
    "oː": ["o:"], "ɔː": ["o:"], "ɒɒ": ["o:"], "u": ["u"], "ʊ": ["u"], "uː": ["u:"],
    "y": ["y"], "ʏ": ["y"], "ʉ": ["y"], "yː": ["y:"], "ʉː": ["y:"], "ø": ["oe"], "œ": ["oe"], "øː": ["oe:"],
    "ə": ["ə"], "ɨ": ["ɯ"], "ɐ": ["ɑ"], "ᵻ": ["i"], "ɜ": ["ə"], "ɜː": ["ə"], "ɪː": ["i:"],
    "eɪ": ["e", "j"], "ɛɪ": ["e", "j"], "aɪ": ["ɑ", "j"], "ɔɪ": ["o", "j"], "aʊ": ["ɑ", "u"], "oʊ": ["o"],
    "əʊ": ["o"], "ja": ["j", "ɑ"], "ju": ["j", "u"], "oɪ": ["o", "j"], "œy": ["oe", "j"], "ʌʊ": ["ɑ", "u"],
    "eʊ": ["e", "u"], "yʊ": ["y", "u"], "iə": ["i", "ə"], "aɪə": ["ɑ", "j", "ə"], "əl": ["ə", "l"],
    "ɚ": ["ə", "r"], "ɔːɹ": ["o:", "r"], "ɑːɹ": ["ɑ:", "r"], "ʊɹ": ["u", "r"], "ɪɹ": ["i", "r"],
    "p": ["p"], "b": ["b"], "t": ["t["], "d": ["d["], "k": ["k"], "ɡ": ["ɡ"], "g": ["ɡ"],
    "f": ["f"], "v": ["v"], "ʋ": ["v"], "β": ["v"], "w": ["u"], "s": ["s"], "z": ["z"], "ʃ": ["S"], "ʒ": ["dZ"],
    "x": ["X"], "h": ["X"], "ɦ": ["X"], "ts": ["ts"], "tʃ": ["tS"], "dʒ": ["dZ"], "ss": ["s"],
    "ʁ": ["ʁ"], "ɣ": ["ɡ"], "ʝ": ["j"], "ɲ": ["n"], "c": ["t["], "ɟ": ["d["], "ɕ": ["S"],
    "m": ["m"], "n": ["n"], "ŋ": ["N"], "l": ["l"], "ɭ": ["l"], "r": ["r"], "ɾ": ["r"], "ɹ": ["r"], "j": ["j"],
}  # fmt: skip
# espeak-ng's ы; its reduced final e, said i; Dutch g, said voiceless
IPA_TO_KY_BY_LANGUAGE = {"ru": {"y": ["ɯ"]}, "pt_BR": {"y": ["i"]}, "nl": {"ɣ": ["X"]}}
# glottal onsets, palatalisation (Kyrgyz has none), dentals, syllabic marks: not phones of their own
_IPA_MARKS = re.compile("^ʔ|[ʲ\u032a\u0329]")
_GEMINATE = re.compile(r"^([^aeiouyɑɛɪɔʊʌæøœɒɵəɨʉʏε]+)ː$")  # tː, dʒː


def map_ipa_phones(phones: list[str], language: str, more: dict[str, list[str]] | None = None) -> list[str] | None:
    """espeak-ng's phones of one short utterance in `language` -> Kyrgyz phones (IPA_TO_KY and `more`, velars
    uvular beside back vowels as our G2P writes them); None if a phone has no Kyrgyz counterpart or no vowel is
    left."""
    table = {**IPA_TO_KY, **IPA_TO_KY_BY_LANGUAGE.get(language, {}), **(more or {})}
    out = []
    for phone in phones:
        phone = _GEMINATE.sub(r"\1", _IPA_MARKS.sub("", phone))
        if phone not in table:
            return None
        out.extend(table[phone])
    return uvular(out) if any(p in VOWELS for p in out) else None


def labelled_row(corpus: str, language: str, uid: str, audio: Path, text: str, phones: list[str], voice: str,
                 seconds: float, **more) -> dict:  # fmt: skip
    """A manifest row of a real-voice corpus labelled by espeak-ng's reading (KLettres, Fish Fillets, Asterisk)."""
    row = {"id": f"{corpus}_{language}_{uid}", "audio": str(audio.resolve()), "text": text, "phones": " ".join(phones)}
    return {**row, "voice": voice, "language": language, **more, "duration": seconds, "corpus": corpus}


def fetch_klettres(dest: str | Path) -> Path:
    """Debian's klettres-data package unpacked into `dest` (`fetch_deb`); -> its data folder."""
    return fetch_deb(KLETTRES_PACKAGE, dest, KLETTRES_DIR, "cs/sounds.xml")


def klettres_rows(folder: str | Path, languages: dict[str, str] = KLETTRES_LANGUAGES) -> tuple[list[dict], int]:
    """KLettres' data folder (`usr/share/klettres`: <language>/sounds.xml naming each recording's letter or
    syllable): one real speaker per language, labelled by espeak-ng reading the same letters in that language,
    mapped onto Kyrgyz phones (`map_ipa_phones`). -> (rows, how many recordings were left out unlabelled)."""
    folder = Path(folder)
    found = [lang for lang in languages if (folder / lang / "sounds.xml").is_file()]
    if not found:
        raise CorpusError(f"{folder}: no <language>/sounds.xml (expected KLettres' usr/share/klettres folder)")
    rows, left_out = [], 0
    for lang in found:
        sounds = re.findall(
            r'<sound\s+name="([^"]+)"\s+file="([^"]+)"', (folder / lang / "sounds.xml").read_text("utf-8")
        )
        said, seen = [], set()
        for name, file in sounds:  # a file named twice is read once; one named but not there, not at all
            if file not in seen and (folder / file).is_file():
                seen.add(file)
                said.append((name, folder / file))
        # lower case: espeak-ng spells a word in capitals letter by letter, and names a lone letter either way
        readings = phonemize([name.lower() for name, _ in said], language=languages[lang])
        for (name, audio), ipa in zip(said, readings):
            phones = map_ipa_phones(ipa, lang)
            if phones is None:
                left_out += 1
                continue
            uid, seconds = f"{audio.parent.name}_{audio.stem}", sf.info(str(audio)).duration
            rows.append(labelled_row("klettres", lang, uid, audio, name, phones, f"klettres-{lang}", seconds))
    return rows, left_out


FILLETS_PACKAGES = ("fillets-ng-data", "fillets-ng-data-cs", "fillets-ng-data-nl")  # scripts; Czech, Dutch voices
FILLETS_DIR = "usr/share/games/fillets-ng"
FILLETS_LANGUAGES = {"cs": "cs", "nl": "nl"}  # the game's spoken languages -> the espeak-ng voice that labels them
FILLETS_ROLES = {"m": "small-fish", "v": "big-fish"}  # a line id's second field; every other character: "other"
# dialogId("id", "font", "English subtitle") followed by dialogStr("the same line in the file's language")
_DIALOGUE = re.compile(
    r'dialogId\(\s*"([^"]+)"\s*,\s*"[^"]*"\s*,\s*"(?:[^"\\]|\\.)*"\s*\)\s*dialogStr\(\s*"((?:[^"\\]|\\.)*)"\s*\)'
)


def fetch_fillets(dest: str | Path) -> Path:
    """Debian's Fish Fillets data (the dialogue scripts and the Czech and Dutch voices) unpacked into `dest`
    (`fetch_deb`); -> the game's data folder."""
    return fetch_deb(FILLETS_PACKAGES, dest, FILLETS_DIR, "sound/airplane/nl")


def fillets_rows(folder: str | Path, languages: dict[str, str] = FILLETS_LANGUAGES) -> tuple[list[dict], int]:
    """Fish Fillets' data folder (`usr/share/games/fillets-ng`: script/<level>/dialogs_<language>.lua, each line's
    subtitle by id; sound/<level>/<language>/<id>.ogg): actors speaking the game's dialogue, each line labelled by
    espeak-ng reading its subtitle in that language, mapped onto Kyrgyz phones (`map_ipa_phones`). -> (rows, how
    many recordings were left out: no subtitle, a phone without a Kyrgyz counterpart, or no samples)."""
    folder = Path(folder)
    if not (folder / "script").is_dir() or not (folder / "sound").is_dir():
        raise CorpusError(f"{folder}: no script/ and sound/ (expected Fish Fillets' usr/share/games/fillets-ng)")
    rows, left_out = [], 0
    for lang, voice in languages.items():
        subtitles = {}
        for script in sorted(folder.glob(f"script/**/dialogs_{lang}.lua")):
            for uid, text in _DIALOGUE.findall(script.read_text(encoding="utf-8")):
                subtitles.setdefault(uid, re.sub(r"\\(.)", r"\1", text).strip())
        recordings = sorted(folder.glob(f"sound/**/{lang}/*.ogg"))
        said = [(audio, subtitles[audio.stem]) for audio in recordings if subtitles.get(audio.stem)]
        left_out += len(recordings) - len(said)
        for (audio, text), ipa in zip(said, phonemize([text for _, text in said], language=voice)):
            phones = map_ipa_phones(ipa, lang)
            seconds = sf.info(str(audio)).duration if phones is not None else 0  # (one Dutch recording is empty)
            if not seconds:
                left_out += 1
                continue
            role = audio.stem.split("-")[1] if audio.stem.count("-") >= 2 else ""
            level, voice = audio.parent.parent.name, f"fillets-{lang}-{FILLETS_ROLES.get(role, 'other')}"
            rows.append(
                labelled_row("fillets", lang, f"{level}_{audio.stem}", audio, text, phones, voice, seconds, level=level)
            )
    return rows, left_out


ASTERISK_DIR = "usr/share"
# the prompts' languages -> (the speaker's folder, the espeak-ng voice that labels them); en and es are one speaker
ASTERISK_VOICES = {
    "en": ("en_US_f_Allison", "en-us"), "es": ("es_MX_f_Allison", "es-419"), "fr": ("fr_CA_f_June", "fr-fr"),
    "it": ("it_IT_m_Carlo", "it"), "ru": ("ru_RU_f_IvrvoiceRU", "ru"),
}  # fmt: skip
# Two more speakers, recorded for Asterisk 1.2-1.4 (asterisk/sounds/<language>/<id>.gsm, 8 kHz GSM 6.10) with no
# texts of their own: each prompt is labelled by the core sounds' text of the same id in its language, which
# they may have worded otherwise (`_same_wording`). voice -> (that language, its Debian package)
ASTERISK_PROMPT_VOICES = {
    "es-co": ("es", "asterisk-prompt-es-co"),  # July E. Jiménez, Colombian Spanish
    "fr-armelle": ("fr", "asterisk-prompt-fr-armelle"),  # Armelle Desjardins, French
}
ASTERISK_LANGUAGES = (*ASTERISK_VOICES, *ASTERISK_PROMPT_VOICES)
# the prompts' texts, their recordings as 16 kHz G.722 (the only wide-band form Debian ships), the older speakers
ASTERISK_PACKAGES = tuple(
    f"asterisk-core-sounds-{lang}{form}" for lang in ASTERISK_VOICES for form in ("", "-g722")
) + tuple(package for _, package in ASTERISK_PROMPT_VOICES.values())
# An older speaker's prompt more than this many times longer or shorter, against the core speaker's reading of
# the same id, than that speaker's median is taken to say other words than the text, and left out.
WORDING_TOLERANCE = 1.5
_PROMPT = re.compile(r"^([\w/-]+):\s*(.*)$")  # "id: text"; a few texts repeat their id ("conf-x: conf-x: ...")
G722_REQUIREMENT = "g722>=1.2"


def fetch_asterisk(dest: str | Path) -> Path:
    """Debian's Asterisk core sounds (texts and G.722 recordings, five languages) and the two older speakers'
    prompts unpacked into `dest` (`fetch_deb`); -> its usr/share folder."""
    return fetch_deb(ASTERISK_PACKAGES, dest, ASTERISK_DIR, "doc/asterisk-prompt-fr-armelle/copyright")


def asterisk_rows(
    folder: str | Path, decoded: str | Path, languages: tuple[str, ...] = ASTERISK_LANGUAGES
) -> tuple[list[dict], int]:
    """Asterisk's telephone prompts (`folder` = usr/share: asterisk/sounds/<speaker>/<id>.g722, and
    doc/asterisk-core-sounds-<language>/core-sounds-<language>.txt.gz giving each id's text; the older speakers
    of ASTERISK_PROMPT_VOICES where their packages are there too): professional speakers, labelled by espeak-ng
    reading the text in its language, mapped onto Kyrgyz phones (`map_ipa_phones`). Recordings are decoded once
    into `decoded` as 16 kHz WAV. -> (rows, how many prompts were left out: a note in brackets, no recording or
    an empty one, another wording, or a phone without a Kyrgyz counterpart)."""
    folder, decoded = Path(folder), Path(decoded)
    if not any(_asterisk_texts(folder, lang).is_file() for lang in languages):
        raise CorpusError(f"{folder}: no doc/asterisk-core-sounds-*/core-sounds-*.txt.gz (expected usr/share)")
    rows, left_out = [], 0
    for lang in languages:
        said, left_out_here = _asterisk_said(folder, decoded, lang)
        left_out += left_out_here
        base = _core_language(lang)
        ipas = phonemize([text for _, text, _ in said], language=ASTERISK_VOICES[base][1])
        for (uid, text, recording), ipa in zip(said, ipas):
            phones, audio = map_ipa_phones(ipa, base), decoded / lang / f"{uid}.wav"
            if phones is not None and not audio.is_file():
                (decode_gsm if recording.suffix == ".gsm" else decode_g722)(recording, audio)
            seconds = sf.info(str(audio)).duration if phones is not None else 0
            if not seconds:
                left_out += 1
                continue
            key, family = uid.replace("/", "_"), re.split("[-/_]", uid)[0]  # vm, conf, digits...: held out together
            rows.append(
                labelled_row("asterisk", lang, key, audio, text, phones, f"asterisk-{lang}", seconds, level=family)
            )
    return rows, left_out


def _core_language(lang: str) -> str:
    """The core sounds' language of a speaker (an older speaker's: the one whose texts label it)."""
    return ASTERISK_PROMPT_VOICES[lang][0] if lang in ASTERISK_PROMPT_VOICES else lang


def _asterisk_texts(folder: Path, lang: str) -> Path:
    base = _core_language(lang)
    return folder / f"doc/asterisk-core-sounds-{base}/core-sounds-{base}.txt.gz"


def _asterisk_said(folder: Path, decoded: Path, lang: str) -> tuple[list[tuple[str, str, Path]], int]:
    """One speaker's prompts that are said as written: (id, text, recording), and how many others there are: of
    its language's listing (a core speaker), of its recordings that the listing has (an older one); none if the
    speaker is not there (an older speaker's package not unpacked)."""
    listing = _asterisk_texts(folder, lang)
    older = lang in ASTERISK_PROMPT_VOICES
    sounds = folder / "asterisk/sounds" / (_core_language(lang) if older else ASTERISK_VOICES[lang][0])
    if not listing.is_file() or not (sounds.is_dir() or (decoded / lang).is_dir()):
        return [], 0
    prompts, suffix = _asterisk_prompts(listing), ".gsm" if older else ".g722"
    recorded = [(uid, text, sounds / f"{uid}{suffix}") for uid, text in prompts.items()]
    recorded = [s for s in recorded if (decoded / lang / f"{s[0]}.wav").is_file() or s[2].is_file()]
    # brackets and parentheses: a sound described ("[beep]"), or a note that may or may not be said
    said = [s for s in recorded if not re.search(r"[\[(]", s[1])]
    if older:
        said = _same_wording(said, folder, decoded, lang)
    return said, (len(recorded) if older else len(prompts)) - len(said)


def _same_wording(said: list[tuple[str, str, Path]], folder: Path, decoded: Path, lang: str) -> list:
    """An older speaker's prompts whose length, against the core speaker's reading of the same id, is within
    WORDING_TOLERANCE of that speaker's median ratio (a prompt the core speaker lacks is left out)."""
    base = _core_language(lang)
    core = folder / "asterisk/sounds" / ASTERISK_VOICES[base][0]
    ratios = {}
    for uid, _, recording in said:
        theirs = _asterisk_seconds(recording, decoded / lang / f"{uid}.wav")
        ours = _asterisk_seconds(core / f"{uid}.g722", decoded / base / f"{uid}.wav")
        if theirs and ours:
            ratios[uid] = theirs / ours
    if not ratios:
        return []
    median = float(np.median(list(ratios.values())))
    return [s for s in said if s[0] in ratios and abs(np.log(ratios[s[0]] / median)) <= np.log(WORDING_TOLERANCE)]


def _asterisk_seconds(recording: Path, wav: Path) -> float:
    """A prompt's length from its decoded WAV, or from its recording's size (G.722 at 64 kbit/s; GSM 6.10: 33
    bytes a 20 ms frame); 0 if neither is there."""
    if wav.is_file():
        return sf.info(str(wav)).duration
    if recording.is_file():
        return recording.stat().st_size / (1650 if recording.suffix == ".gsm" else 8000)
    return 0.0


def _asterisk_prompts(listing: Path) -> dict[str, str]:
    prompts = {}
    with gzip.open(listing, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        match = _PROMPT.match(line.strip())
        if match and not line.startswith(";"):
            uid, text = match.groups()
            text = text.removeprefix(f"{uid}:").strip()
            if text:
                prompts.setdefault(uid, text)
    return prompts


def decode_g722(source: Path, target: Path) -> None:
    """A raw G.722 file (64 kbit/s) -> 16 kHz 16-bit WAV, written whole or not at all."""
    try:
        import G722
    except ImportError as e:
        raise CorpusError(f"Asterisk's recordings are G.722: pip install '{G722_REQUIREMENT}'") from e
    write_wav(np.asarray(G722.G722(16000, 64000).decode(source.read_bytes()), dtype=np.int16), target)


def decode_gsm(source: Path, target: Path) -> None:
    """A raw GSM 6.10 file (8 kHz, the older Asterisk prompts' .gsm) -> 16 kHz 16-bit WAV (soxr), written whole
    or not at all."""
    import soxr

    samples, rate = sf.read(str(source), format="RAW", subtype="GSM610", samplerate=8000, channels=1)
    write_wav(soxr.resample(samples, rate, 16000), target)


def write_wav(samples: np.ndarray, target: Path) -> None:
    """16 kHz samples -> a 16-bit WAV, written whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.stem + ".partial.wav")
    sf.write(str(partial), samples, 16000, subtype="PCM_16")
    partial.replace(target)
