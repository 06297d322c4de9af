"""MBROLA's voices as unseen real speakers: what each voice is given for a Kyrgyz sentence (phones of its own
language, durations, pitch) and how the sounds it is given become Kyrgyz labels. MBROLA itself runs only in
the last test, where an unpacked copy is found (`UNISPEECH_TEST_MBROLA`; .ci/run fetches one)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from unispeech import mbrola, phonemize
from unispeech.g2p import kyrgyz_inventory
from unispeech.mbrola import LANGUAGES, VOICES, MbrolaError, fetch, pho, speak

SENTENCE = "Кыргызстандын борбору Бишкек шаары, жаңы китеп окудум."
FOUND = Path(os.environ.get("UNISPEECH_TEST_MBROLA", "/nonexistent"))


def given(text: str, voice: str) -> list[list[str]]:
    return [line.split() for line in pho(text, voice)[0].splitlines()]


@pytest.mark.parametrize("language", LANGUAGES, ids=lambda language: language.name)
def test_every_kyrgyz_phone_is_given_as_phones_of_the_language_and_labelled_in_the_kyrgyz_set(language):
    assert {p.rstrip(":") for p in kyrgyz_inventory()} == set(language.asked)  # long vowels: held longer
    assert {name for asked in language.asked.values() for name in asked.split()} <= set(language.labels)
    assert set(language.labels.values()) | set(language.joined.values()) <= set(kyrgyz_inventory())
    assert all(VOICES[v].language in LANGUAGES for v in VOICES)


def test_a_voice_that_spells_a_sound_its_own_way_is_given_its_own_symbol_and_labelled_the_kyrgyz_one():
    def names(text, voice):
        return [line[0] for line in given(text, voice)]

    assert names("Чач", "ro1") == ["_", "C", "a", "C", "_"] and pho("Чач", "ro1")[1] == ["tS", "ɑ", "tS"]
    assert names("Жаз", "ro1")[1] == "G" and pho("Жаз", "ro1")[1] == ["dZ", "ɑ", "z"]
    assert names("Хат", "hu1") == ["_", "h", "a:", "t", "_"] and pho("Хат", "hu1")[1] == ["X", "ɑ", "t["]
    assert names("Той", "lt1") == ["_", "t", "oo", "j'", "_"] and pho("Той", "lt1")[1] == ["t[", "o", "j"]
    assert names("Жаңы", "lt2") == ["_", "dZ", "aa", "n", "ii", "_"] and pho("Жаңы", "lt2")[1] == ["dZ", "ɑ", "n", "i"]


def test_a_voice_without_twin_diphones_is_given_twins_as_one_phone_held_for_both_and_labelled_twice():
    names = [line[0] for line in given("Аттуу киши ала алат", "cr1")]
    assert names == "_ a t u k i S i a l a l a t _".split()  # tt, and ала алат's a a across the words
    assert pho("Аттуу киши ала алат", "cr1")[1] == phonemize(["Аттуу киши ала алат"])[0]
    held, single = (int(line[1]) for line in given("Аттуу ат", "cr1") if line[0] == "t")
    assert held > 1.3 * single  # one sentence: one rate
    assert [line[0] for line in given("Аттуу", "tr1")][1:4] == ["a", "t", "t"]  # tr1 has its t-t diphone


def test_a_sound_said_as_two_phones_is_labelled_once_as_what_it_is():
    assert pho("Жаз", "de7")[0].split()[2:5:2] == ["d", "Z"] and pho("Жаз", "de7")[1] == ["dZ", "ɑ", "z"]
    assert pho("Жаз", "ee1")[1] == ["tS", "ɑ", "s"]  # Estonian has no voiced sibilants: it says tʃ and s
    assert pho("Күн", "pl1")[1] == ["k", "i", "n"] and pho("Кыш", "pl1")[1] == ["q", "ɯ", "S"]


def test_the_labels_are_the_kyrgyz_phones_but_where_turkish_lacks_the_sound():
    expected = phonemize([SENTENCE])[0]
    labels = pho(SENTENCE, "tr1")[1]
    assert labels == [{"N": "n"}.get(p, p) for p in expected]  # ŋ is said (and labelled) n
    assert "ŋ" not in labels and "N" not in labels and "ɑ:" in labels  # long vowels keep their length
    assert pho("Бишкек шаары", "tr1")[1][:6] == "b i S k e k".split()  # a velar keeps its word's label


def test_each_phone_gets_milliseconds_and_each_vowel_a_pitch_point_the_woman_higher():
    lines = given(SENTENCE, "tr1")
    assert lines[0][0] == lines[-1][0] == "_" and [n for n, *_ in lines].count("_") == 3  # a pause per clause
    assert all(20 <= int(line[1]) <= 500 for line in lines)
    turkish = mbrola.phone_set(mbrola.TURKISH).vowels
    vowels = [line for line in lines if line[0] in turkish]
    assert vowels and all(len(v) == 4 and v[2] == "50" for v in vowels)
    assert all(len(line) == 2 for line in lines if line[0] not in turkish)
    pitch = {voice: [float(v[3]) for v in given(SENTENCE, voice) if len(v) == 4] for voice in ("tr1", "tr2")}
    assert all(70 < f0 < 180 for f0 in pitch["tr1"]) and all(135 < f0 < 310 for f0 in pitch["tr2"])
    assert sum(pitch["tr2"]) > 1.2 * sum(pitch["tr1"])  # the same contour about a higher base
    assert pho(SENTENCE, "tr2") == pho(SENTENCE, "tr2")  # the same prosody for a sentence every time


def test_without_apt_the_fetch_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setattr(mbrola.shutil, "which", lambda name: None)
    with pytest.raises(MbrolaError, match="mbrola-tr1.*dpkg-deb -x"):
        fetch(["tr1"], tmp_path)
    with pytest.raises(MbrolaError, match="no MBROLA program or voice tr1"):
        speak(["Бала."], "tr1", tmp_path, tmp_path / "out")


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb (Debian/Ubuntu)")
def test_the_fetch_unpacks_each_package_once_into_a_folder_it_makes(tmp_path, monkeypatch):
    downloads = []

    def download(packages, tmp):  # a .deb per package, built here: what apt-get download would bring
        downloads.append(packages)
        debs = {}
        for package in packages:
            tree = tmp / package
            (tree / "DEBIAN").mkdir(parents=True)
            (tree / "DEBIAN" / "control").write_text(
                f"Package: {package}\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"
            )
            (tree / "usr" / "share" / "mbrola" / "tr1").mkdir(parents=True)
            (tree / "usr" / "share" / "mbrola" / "tr1" / package).write_text(package)
            subprocess.run(
                ["dpkg-deb", "-b", str(tree), str(tmp / f"{package}_1_all.deb")], check=True, capture_output=True
            )
            debs[package] = tmp / f"{package}_1_all.deb"
        return debs

    monkeypatch.setattr(mbrola, "_download", download)
    root = fetch(["tr1"], tmp_path / "not" / "yet")
    assert (root / "usr" / "share" / "mbrola" / "tr1" / "mbrola-tr1").read_text() == "mbrola-tr1"
    assert fetch(["tr1"], root) == root and downloads == [["mbrola", "mbrola-tr1"]]  # the second time: kept
    fetch(["tr1", "tr2"], root)
    assert downloads[-1] == ["mbrola-tr2"]


@pytest.mark.skipif(
    not all((FOUND / ".unpacked" / p).is_file() for p in ("mbrola", VOICES["tr1"].package)),
    reason="needs MBROLA and its tr1 voice unpacked at $UNISPEECH_TEST_MBROLA (unispeech.mbrola.fetch(['tr1'], DIR))",
)
def test_the_turkish_voice_says_kyrgyz_phones_into_16_khz_clips(tmp_path):
    (row,) = speak(["Бала менен апа, бала менен апа."], "tr1", FOUND, tmp_path)
    info = sf.info(row["audio"])
    assert info.samplerate == 16000 and 1.0 < info.duration < 6
    assert row["phones"].split() == "b ɑ l ɑ m e n e n ɑ p ɑ".split() * 2
    assert row["voice"] == "mbrola-tr1" and row["corpus"] == "mbrola"
