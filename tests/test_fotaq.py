"""Flight of the Amazon Queen's dialogue read out of a bundle made here like the game's queen.1c."""

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unispeech.corpora import CorpusError
from unispeech.fotaq import DOG_HEADER, fotaq_rows

KEY = 3


def _pstring(text: str) -> bytes:
    return bytes([len(text)]) + text.encode("cp437")


def _lines(start: int, lines: list[tuple[int, str]]) -> bytes:
    out = b""
    for line_id, text in lines:
        out += b"\0" * (-(start + len(out)) % 4) + struct.pack(">i", line_id) + _pstring(text)
    return out


def _dog(joe: list[tuple[int, str]], other: list[tuple[int, str]], greeting: str, joe_again: str) -> bytes:
    """A one-level conversation: header, dialogue tree, Joe's lines, the other's, cutaway, greetings."""
    joe_at = 32 + 96
    joe_part = _lines(joe_at, joe)
    other_at = joe_at + len(joe_part)
    other_part = _lines(other_at, other)
    cutaway_at = (other_at + len(other_part) + 3) & ~3
    greeting_at = cutaway_at + 8
    greetings = _pstring(greeting)
    greetings += b"\0" * ((greeting_at + len(greetings)) & 1) + _pstring(joe_again)
    head = struct.pack(">hhhhh", 1, 7, KEY, len(joe), len(other)) + b"\0" * 12
    head += struct.pack(">hhh", other_at, cutaway_at, greeting_at)
    body = head.ljust(32, b"\0") + b"\0" * 96 + joe_part
    body = body + other_part
    body = body.ljust(cutaway_at, b"\0") + b"\0" * 8 + greetings
    return b"AmBk" + b"\0" * (DOG_HEADER - 4) + body


def _mp3(seconds: float) -> bytes:
    rate = 11025
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 220 * t), rate, format="MP3")
    return buf.getvalue()


def _bundle(folder, files: dict[str, bytes]) -> None:
    names = sorted(files)
    table_size = 15 + 21 * len(names)
    table, data, offset = b"", b"", table_size
    for name in names:
        table += struct.pack(">12sBII", name.encode("ascii"), 1, offset, len(files[name]))
        data += files[name]
        offset += len(files[name])
    head = b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([1]) + struct.pack(">H", len(names))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "queen.1c").write_bytes(head + table + data)


@pytest.fixture
def game(tmp_path):
    dog = _dog(
        joe=[(0x12, "Is this the key?*FLWhere is the boat?"), (0x13, "Never recorded.")],
        other=[(0x12, "Thanks, take it."), (0x14, "Hi.")],
        greeting="Hello, stranger.",
        joe_again="",
    )
    files = {
        "HENRY2.DOG": dog,
        "030012J1.SB": _mp3(1.2),
        "030012J2.SB": _mp3(1.3),
        "030012P1.SB": _mp3(1.0),
        "030014P1.SB": _mp3(6.0),  # far too long for "Hi.": another line's recording, left out
        "03XXXXP1.SB": _mp3(1.1),
    }
    _bundle(tmp_path / "game", files)
    return tmp_path / "game"


def test_each_recorded_segment_of_a_line_is_a_row_labelled_by_espeak_reading_its_subtitle(game, tmp_path):
    rows, left_out = fotaq_rows(game, tmp_path / "wav")
    by_id = {row["id"]: row for row in rows}
    assert sorted(by_id) == ["fotaq_en_030012J1", "fotaq_en_030012J2", "fotaq_en_030012P1", "fotaq_en_03XXXXP1"]
    # a '*XX' command cuts Joe's line in two, each its own recording
    assert by_id["fotaq_en_030012J1"]["text"] == "Is this the key?"
    assert by_id["fotaq_en_030012J2"]["text"] == "Where is the boat?"
    assert by_id["fotaq_en_03XXXXP1"]["text"] == "Hello, stranger."
    assert {row["voice"] for row in rows} == {"fotaq-joe", "fotaq-henry"}
    assert by_id["fotaq_en_030012P1"]["voice"] == "fotaq-henry"
    assert left_out == 1  # the 6 s "Hi."; the line never recorded is not counted (nothing to leave out)


def test_english_dental_fricatives_are_labelled_as_a_kyrgyz_speaker_says_them(game, tmp_path):
    rows, _ = fotaq_rows(game, tmp_path / "wav")
    phones = {row["text"]: row["phones"].split() for row in rows}
    assert phones["Is this the key?"][:4] == ["i", "z", "d[", "i"]  # this: ð said d
    assert phones["Thanks, take it."][0] == "t["  # thanks: θ said t


def test_recordings_are_decoded_once_to_16_khz_wav(game, tmp_path):
    rows, _ = fotaq_rows(game, tmp_path / "wav")
    info = sf.info(rows[0]["audio"])
    assert info.samplerate == 16000 and info.channels == 1
    assert abs(rows[0]["duration"] - info.duration) < 1e-6 and 1.0 < info.duration < 1.5
    stamp = {row["audio"]: Path(row["audio"]).stat().st_mtime_ns for row in rows}
    again, _ = fotaq_rows(game, tmp_path / "wav")
    assert {row["audio"]: Path(row["audio"]).stat().st_mtime_ns for row in again} == stamp


def test_a_folder_without_the_game_bundle_says_what_it_expected(tmp_path):
    with pytest.raises(CorpusError, match="no queen.1c"):
        fotaq_rows(tmp_path, tmp_path / "wav")
    (tmp_path / "queen.1c").write_bytes(b"not a bundle at all")
    with pytest.raises(CorpusError, match="not a rebuilt Flight of the Amazon Queen bundle"):
        fotaq_rows(tmp_path, tmp_path / "wav")


def test_a_damaged_bundle_says_which_part_is_damaged(game, tmp_path):
    whole = (game / "queen.1c").read_bytes()
    (game / "queen.1c").write_bytes(whole[:-2000])
    with pytest.raises(CorpusError, match="beyond its end"):
        fotaq_rows(game, tmp_path / "wav")
    (game / "queen.1c").write_bytes(whole[:40])
    with pytest.raises(CorpusError, match="cut short or garbled"):
        fotaq_rows(game, tmp_path / "wav")
    _bundle(game, {"HENRY2.DOG": b"AmBk", "030012J1.SB": _mp3(1.2)})
    with pytest.raises(CorpusError, match="HENRY2.DOG is not a dialogue file"):
        fotaq_rows(game, tmp_path / "wav")
    dog = _dog(joe=[(0x12, "Is this the key?")], other=[], greeting="", joe_again="")
    _bundle(game, {"HENRY2.DOG": dog, "030012J1.SB": b"\x00" * 400})
    with pytest.raises(CorpusError, match="030012J1.SB is not a recording"):
        fotaq_rows(game, tmp_path / "wav")


def test_the_demo_recipe_tests_every_tenth_line_and_trains_on_the_others_only_when_asked(tmp_path, monkeypatch):
    import argparse

    from unispeech import augment
    from unispeech.augment import FORMANT_RATIOS
    from unispeech.data import write_manifest

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "recipes"))
    import demo_sets

    monkeypatch.setattr(
        augment, "augment_corpus", lambda rows, out, *a, **k: write_manifest(rows, out / "manifest.jsonl")
    )
    lines = [(0x20 + n, "Where is the boat?") for n in range(12)]
    files = {f"03{0x20 + n:04X}J1.SB": _mp3(1.2) for n in range(12)}
    _bundle(tmp_path / "game", {"LOLA1.DOG": _dog(joe=lines, other=[], greeting="", joe_again=""), **files})
    work = tmp_path / "w"
    for split in ("train", "valid"):
        (work / split).mkdir(parents=True)
        (work / split / "manifest.jsonl").write_text("", encoding="utf-8")
    none = dict.fromkeys(
        ["rhvoice", "festvox_ru", "mbrola", "mbrola_train", "mbrola_tuning", "klettres", "fillets", "rhvoice_voices"]
    )
    game = str(tmp_path / "game")
    args = argparse.Namespace(**none, festival=False, asterisk=None, fotaq=game, fotaq_train=False,
                              voice_change=False, formant_ratios=FORMANT_RATIOS, extra_data=[], real_copies=1,
                              real_repeat=None)  # fmt: skip

    def lines_of(path):
        return Path(path).read_text(encoding="utf-8").splitlines()

    sets = demo_sets.real_voice_sets(work, args)  # unseen speakers: a test set only
    assert list(sets["tests"]) == ["test-fotaq"] and len(lines_of(sets["tests"]["test-fotaq"])) == 2
    assert not (work / "train-fotaq").exists() and not lines_of(sets["train"])
    args.real_repeat = "fotaq=2"
    with pytest.raises(SystemExit, match="--real-repeat fotaq: not a real-voice source trained on here"):
        demo_sets.real_voice_sets(work, args)

    args.fotaq_train = True
    sets = demo_sets.real_voice_sets(work, args)
    assert list(sets["tests"]) == ["test-fotaq-unseen-lines"]
    tested = lines_of(sets["tests"]["test-fotaq-unseen-lines"])
    trained = lines_of(work / "train-fotaq" / "manifest.jsonl")
    valid = lines_of(work / "valid-fotaq" / "manifest.jsonl")
    assert (len(tested), len(valid), len(trained)) == (2, 1, 9) and not set(tested) & set(trained)
    assert len(lines_of(sets["train"])) == 9 * 2  # fotaq=2: its copies twice
