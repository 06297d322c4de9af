"""Flight of the Amazon Queen's talkie version (Debian's flight-of-the-amazon-queen, freeware): about thirty
characters, voiced by real actors, speaking the game's English dialogue, for the demo model (issue #21).

The game keeps everything in one bundle, `queen.1c`: a table of named files, among them one dialogue file per
conversation (`<CHARACTER><n>.DOG`: Joe's lines and the other character's, each a string by id) and one MP3
recording (11025 Hz) per spoken segment, named from the conversation's key, the line's id, the speaker (J for
Joe, P for the other) and the segment (a line's `*XX` commands cut it into segments; ScummVM's Queen engine
reads it so). Lines are labelled by espeak-ng's en-us reading mapped onto Kyrgyz phones, with English's dental
fricatives as a Kyrgyz speaker says them (ð d, θ t).
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import soundfile as sf

from .audio import AudioError, decode_audio
from .corpora import CorpusError, fetch_deb, labelled_row, map_ipa_phones, write_wav
from .g2p import phonemize

FOTAQ_PACKAGE = "flight-of-the-amazon-queen"
FOTAQ_DIR = "usr/share/scummvm/flight-of-the-amazon-queen"
FOTAQ_BUNDLE = "queen.1c"
FOTAQ_VOICE = "en-us"
# English phones with no Kyrgyz counterpart in corpora.IPA_TO_KY, as a Kyrgyz speaker says them
EN_TO_KY = {"ð": ["d["], "θ": ["t["], "ɛɹ": ["e", "r"], "aɪɚ": ["ɑ", "j", "ə", "r"]}
DOG_HEADER = 20  # an Amiga bank header before each dialogue file's data
_COMMAND = re.compile(r"^(?:XY\d\d\(\d+,\d+\)|..)")  # what follows a '*': a 2-character command, XY with a place
# a recording this many seconds or more per label phone, or this few, is taken to say something else
MAX_SECONDS_PER_PHONE, MIN_SECONDS_PER_PHONE = 0.4, 0.03


def fetch_fotaq(dest: str | Path) -> Path:
    """Debian's flight-of-the-amazon-queen unpacked into `dest` (`corpora.fetch_deb`); -> the game's folder."""
    return fetch_deb(FOTAQ_PACKAGE, dest, FOTAQ_DIR, FOTAQ_BUNDLE)


def read_bundle(path: Path) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """A rebuilt `queen.1c` ('QTBL', version, compression, then the table: count, and per file a 12-byte name, a
    bundle number, offset and size, big-endian) -> (its bytes, {name: (offset, size)})."""
    data = path.read_bytes()
    if data[:4] != b"QTBL" or len(data) < 15:
        raise CorpusError(f"{path}: not a rebuilt Flight of the Amazon Queen bundle (no QTBL table)")
    (count,) = struct.unpack_from(">H", data, 13)
    table = {}
    try:
        for i in range(count):
            name, _, offset, size = struct.unpack_from(">12sBII", data, 15 + 21 * i)
            table[name.rstrip(b"\0").decode("ascii")] = (offset, size)
    except (struct.error, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: its table of {count} files is cut short or garbled ({e})") from e
    if any(offset + size > len(data) for offset, size in table.values()):
        raise CorpusError(f"{path}: its table names files beyond its end (a truncated copy?)")
    return data, table


def dialogue_segments(dog: bytes, character: str) -> list[tuple[str, str, str]]:
    """One `.DOG` file's spoken segments: (recording name, speaker, text); speaker "joe" or `character`."""
    b = dog[DOG_HEADER:]
    levels, _, key, joe_count, other_count = struct.unpack_from(">hhhhh", b, 0)
    other_at, _, greeting_at = struct.unpack_from(">hhh", b, 22)
    lines = _lines(b, 32 + abs(levels) * 96, joe_count, "J") + _lines(b, other_at, other_count, "P")
    greeting, after = _string(b, greeting_at)
    joe_again, _ = _string(b, after + (after & 1))
    lines += [("XXXX", "P", greeting), ("XXXX", "J", joe_again)]
    segments = []
    for line_id, who, text in lines:
        for index, part in enumerate(text.split("*")):
            part = _COMMAND.sub("", part, count=1) if index else part
            name = f"{key:2d}{line_id}{who}{index + 1:1x}".replace(" ", "0").upper() + ".SB"
            if part.strip():
                segments.append((name, "joe" if who == "J" else character, part.strip()))
    return segments


def _lines(b: bytes, offset: int, count: int, who: str) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(count):
        offset = (offset + 3) & ~3
        (line_id,) = struct.unpack_from(">i", b, offset)
        text, offset = _string(b, offset + 4)
        out.append(("SSSS" if line_id == 0 else f"{line_id:4x}", who, text))
    return out


def _string(b: bytes, offset: int) -> tuple[str, int]:
    length = b[offset]
    return b[offset + 1 : offset + 1 + length].decode("cp437"), offset + 1 + length


def fotaq_rows(folder: str | Path, decoded: str | Path) -> tuple[list[dict], int]:
    """The game's folder (holding `queen.1c`): every dialogue segment that has a recording, decoded once into
    `decoded/<name>.wav` (16 kHz), labelled by espeak-ng (`map_ipa_phones` with EN_TO_KY), voice
    `fotaq-<character>`. -> (rows, how many segments were left out: a phone without a Kyrgyz counterpart, or a
    length that does not fit the label)."""
    bundle = Path(folder) / FOTAQ_BUNDLE
    if not bundle.is_file():
        raise CorpusError(f"{folder}: no {FOTAQ_BUNDLE} (expected {FOTAQ_DIR})")
    data, table = read_bundle(bundle)
    said = _recorded_segments(bundle, data, table)
    rows, left_out = [], 0
    for (name, speaker, text), ipa in zip(said, phonemize([t for _, _, t in said], language=FOTAQ_VOICE)):
        phones = map_ipa_phones(ipa, "en", EN_TO_KY)
        audio = Path(decoded) / f"{name.removesuffix('.SB')}.wav"
        if phones is not None and not audio.is_file():
            offset, size = table[name]
            try:
                samples = decode_audio(io.BytesIO(data[offset : offset + size]), name)
            except AudioError as e:
                raise CorpusError(f"{bundle}: {name} is not a recording soundfile can read ({e})") from e
            write_wav(samples, audio)
        seconds = sf.info(str(audio)).duration if phones is not None else 0.0
        if not MIN_SECONDS_PER_PHONE * len(phones or ()) < seconds < MAX_SECONDS_PER_PHONE * len(phones or ()):
            left_out += 1
            continue
        uid = name.removesuffix(".SB")
        rows.append(labelled_row("fotaq", "en", uid, audio, text, phones, f"fotaq-{speaker}", seconds))
    return rows, left_out


def _recorded_segments(bundle: Path, data: bytes, table: dict) -> list[tuple[str, str, str]]:
    """Every conversation's segments that have a recording: (name, speaker, text), each recording once (the first
    conversation naming it)."""
    said = {}
    for name in sorted(n for n in table if n.endswith(".DOG")):
        offset, size = table[name]
        character = re.sub(r"\d+$", "", name.removesuffix(".DOG")).lower()
        try:
            segments = dialogue_segments(data[offset : offset + size], character)
        except (struct.error, IndexError) as e:
            raise CorpusError(f"{bundle}: {name} is not a dialogue file this reader knows ({e})") from e
        for recording, speaker, text in segments:
            if recording in table:
                said.setdefault(recording, (speaker, text))
    return [(name, speaker, text) for name, (speaker, text) in said.items()]
