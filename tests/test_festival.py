"""Festival's Czech and Finnish voices reading Kyrgyz: how the phones are spelled for them, and how what
they said becomes Kyrgyz labels. Festival itself runs only in the last test (where it is installed)."""

import shutil

import pytest
import soundfile as sf

from unispeech.festival import (
    ENCODING,
    HELD_OUT_VOICES,
    SPELLING,
    TO_KYRGYZ,
    VOICES,
    FestivalError,
    _utterances_with_gaps,
    labels,
    speak,
    spell,
    uvular,
    voice_folder,
)
from unispeech.g2p import kyrgyz_inventory


@pytest.mark.parametrize("language", ["cs", "fi", "it"])
def test_every_kyrgyz_phone_has_a_spelling_the_voice_can_read(language):
    assert set(SPELLING[language]) == set(kyrgyz_inventory())
    for letters in SPELLING[language].values():
        letters.encode(ENCODING[language])  # raises if Festival's front end could not read it


@pytest.mark.parametrize("language", ["cs", "fi", "it"])
def test_every_festival_phone_maps_into_the_kyrgyz_inventory(language):
    produced = {k for ks in TO_KYRGYZ[language].values() for k in ks}
    assert produced <= set(kyrgyz_inventory())


def test_a_sentence_is_spelled_word_by_word_with_its_clause_breaks_kept():
    spelled = spell("Бул жакшы, бирок кеч.", "cs")
    assert spelled.count(",") == 1 and len(spelled.replace(",", "").split()) == 4
    spelled.encode(ENCODING["cs"])


def test_the_velar_nasal_before_k_or_g_is_spelled_n_so_no_extra_g_is_said():
    # ыңгайлуу: ŋ then ʁ; "ngg" would make the voice say two g's
    assert "ngg" not in spell("ыңгайлуу", "cs") and "ng" in spell("таң", "cs")


def test_czech_segments_become_kyrgyz_phones_with_pauses_dropped():
    assert labels(["#", "z~", "e", "c~", "_", "i:", "n*", "k", "#"], "cs") == ["dZ", "e", "tS", "i:", "N", "k"]


def test_italian_stress_is_dropped_and_its_palatals_become_two_kyrgyz_phones():
    assert labels(["#", "a1", "J", "O", "L", "ng", "k"], "it") == ["ɑ", "n", "j", "o", "l", "j", "N", "q"]


def test_finnish_long_vowels_are_one_phone_and_long_consonants_two():
    assert labels(["#", "t:", "u:", "##", "7", "s:", "y"], "fi") == ["t[", "t[", "u:", "oe", "s", "s", "y"]


def test_k_and_g_turn_uvular_where_the_nearest_vowel_is_back():
    assert uvular(["k", "ɑ"]) == ["q", "ɑ"]
    assert uvular(["ɑ", "k"]) == ["ɑ", "q"]  # word-final after a back vowel: no vowel after it
    assert uvular(["ɡ", "e", "ɑ"]) == ["ɡ", "e", "ɑ"]  # the next vowel decides
    assert uvular(["k", "t["]) == ["k", "t["]  # no vowel at all: left velar


def test_a_segment_outside_the_phone_set_is_an_error_not_a_guess():
    with pytest.raises(FestivalError, match="outside its phone set: w~"):
        labels(["a", "w~"], "cs")


def test_utterances_where_festival_used_a_default_diphone_are_found_in_its_log():
    log = (
        "@@ 0\n@@ 1\nUniSyn: using default diphone #-# for j-t\n@@ 2\n@@ 3\nUniSyn: using default diphone #-# for g-7\n"
    )
    assert _utterances_with_gaps(log) == {1, 3}


def test_held_out_voices_are_voices_and_leave_each_language_a_training_voice_but_italian():
    assert set(HELD_OUT_VOICES) <= set(VOICES)
    trained = {VOICES[v].language for v in VOICES if v not in HELD_OUT_VOICES}
    assert trained == {"cs", "fi"}  # Italian: a front end and recordings the model never met


@pytest.mark.skipif(
    not (shutil.which("festival") and voice_folder("czech_dita").is_dir()),
    reason="needs Festival and festvox-czech-dita (apt-get install festival festvox-czech-dita)",
)
def test_a_czech_voice_reads_kyrgyz_into_16_khz_clips_with_kyrgyz_labels(tmp_path):
    (row,) = speak(["Бул жакшы китеп."], "czech_dita", tmp_path)
    info = sf.info(row["audio"])
    assert (
        info.samplerate == 16000
        and 0.5 < info.duration < 5
        and row["duration"] == pytest.approx(info.duration, abs=1e-3)
    )
    phones = row["phones"].split()
    assert set(phones) <= set(kyrgyz_inventory()) and phones[:3] == ["b", "u", "l"]
    assert row["voice"] == "festival-czech_dita" and row["corpus"] == "festival"
