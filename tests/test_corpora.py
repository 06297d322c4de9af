"""Real-voice training material: the RHVoice, festvox-ru, KLettres and Fish Fillets readers, their phone mappings,
and the augmentation aimed at the synthetic-to-real gap."""

import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unispeech.augment import (
    FORMANT_RATIOS,
    PITCH_FACTORS,
    BatchCodec,
    BatchNoise,
    add_batch_codec,
    add_batch_noise,
    augment_corpus,
    band_limit,
    channel,
    encode,
    lossy_codec,
    mu_law,
    other_voices_set,
    speed_perturb,
    voice_change,
)
from unispeech.corpora import (
    IPA_TO_KY,
    CorpusError,
    asterisk_rows,
    festvox_ru_rows,
    fetch_deb,
    fillets_rows,
    klettres_rows,
    map_ipa_phones,
    map_russian_phones,
    rhvoice_rows,
)
from unispeech.g2p import kyrgyz_inventory

RATE = 16000


def tone(seconds: float, hz: float, rate: int = RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def vowel(f0: float, formant: float, seconds: float = 1.0) -> np.ndarray:
    """A sustained synthetic vowel: a pulse train at `f0` through one resonance at `formant` (100 Hz wide)."""
    n = int(seconds * RATE)
    pulses = np.zeros(n)
    pulses[:: int(RATE / f0)] = 1.0
    r = np.exp(-np.pi * 100 / RATE)
    a1, a2 = -2 * r * np.cos(2 * np.pi * formant / RATE), r * r
    out = np.zeros(n + 2)
    for i in range(n):
        out[i + 2] = pulses[i] - a1 * out[i + 1] - a2 * out[i]
    return (0.5 * out[2:] / np.abs(out).max()).astype(np.float32)


def fundamental(wav: np.ndarray) -> float:
    """f0 by autocorrelation: the first strong peak between 60 and 400 Hz (the period, not a multiple)."""
    ac = np.correlate(wav - wav.mean(), wav - wav.mean(), "full")[wav.size - 1 :]
    lags = np.arange(RATE // 400, RATE // 60)
    lag = lags[ac[lags] > 0.8 * ac[lags].max()][0]
    while ac[lag + 1] > ac[lag]:
        lag += 1
    return RATE / lag


def spectral_centroid(wav: np.ndarray, low: float = 300, high: float = 3000) -> float:
    power = np.abs(np.fft.rfft(wav)) ** 2
    hz = np.fft.rfftfreq(wav.size, 1 / RATE)
    band = (hz > low) & (hz < high)
    return float((power[band] * hz[band]).sum() / power[band].sum())


def festvox_folder(tmp_path, labs: dict[str, str]):
    voice = tmp_path / "msu_ru_nsh_clunits"
    for sub in ("wav", "lab", "etc"):
        (voice / sub).mkdir(parents=True)
    prompts = []
    for uid, lab in labs.items():
        sf.write(voice / "wav" / f"{uid}.wav", tone(1.0, 200), RATE)
        (voice / "lab" / f"{uid}.lab").write_text("#\n" + lab, encoding="utf-8")
        prompts.append(f'( {uid} "Т+екст {uid}." )')
    (voice / "etc" / "txt.done.data").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return voice


def test_every_festvox_phone_maps_into_the_kyrgyz_inventory():
    from unispeech.corpora import RU_TO_KY

    assert set(RU_TO_KY.values()) <= set(kyrgyz_inventory())


def test_russian_k_and_g_turn_uvular_before_back_vowels_as_our_g2p_does():
    assert map_russian_phones(["pau", "k", "a", "g", "oo", "k", "ii", "g", "ee", "kk", "a", "pau"]) == [
        "q", "ɑ", "ʁ", "o", "k", "i", "ɡ", "e", "k", "ɑ"
    ]  # fmt: skip


def test_an_unknown_festvox_label_is_an_error_not_a_guess():
    with pytest.raises(CorpusError, match="outside its phone set: xx"):
        map_russian_phones(["a", "xx"])


def test_festvox_rows_take_phones_from_the_labels_and_duration_from_the_last_segment(tmp_path):
    voice = festvox_folder(tmp_path, {"ru_0001": "0.1 125 pau\n0.3 125 m\n0.5 125 aa\n0.91 125 pau\n"})
    (row,) = festvox_ru_rows(voice)
    assert row["phones"] == "m ɑ" and row["duration"] == pytest.approx(0.91)
    assert row["text"] == "Текст ru_0001." and row["corpus"] == "festvox-ru"


def test_a_folder_that_is_not_festvox_ru_says_what_it_expected(tmp_path):
    with pytest.raises(CorpusError, match="txt.done.data"):
        festvox_ru_rows(tmp_path)


def test_every_ipa_mapping_lands_in_the_kyrgyz_inventory():
    assert {p for phones in IPA_TO_KY.values() for p in phones} <= set(kyrgyz_inventory())


def test_espeak_phones_of_other_languages_map_onto_kyrgyz_phones_with_its_velar_rule():
    assert map_ipa_phones(["b", "eː"], "cs") == ["b", "e:"]
    assert map_ipa_phones(["k", "a"], "es") == ["q", "ɑ"]  # a velar beside a back vowel is uvular in Kyrgyz
    assert map_ipa_phones(["tʃʲ", "e"], "ru") == ["tS", "e"]  # palatalisation dropped, as for festvox-ru
    assert map_ipa_phones(["ʔe"], "da") == ["e"]  # a glottal onset is no phone
    assert map_ipa_phones(["kː", "a"], "it") == ["q", "ɑ"]  # geminates count once
    assert map_ipa_phones(["eɪ"], "en") == ["e", "j"]


def test_a_phone_a_kyrgyz_listener_hears_as_one_of_its_own_is_labelled_so():
    assert map_ipa_phones(["ʁ", "u", "ʒ"], "fr") == ["ʁ", "u", "dZ"]  # French r is Kyrgyz ʁ
    assert map_ipa_phones(["l", "a", "ɣ", "o"], "es") == ["l", "ɑ", "ʁ", "o"]  # g between vowels, as Kyrgyz says it
    assert map_ipa_phones(["ɲ", "a"], "cs") == ["n", "ɑ"]  # palatalisation dropped, as for Russian нь
    assert map_ipa_phones(["ɹ", "ɛ", "d"], "en") == ["r", "e", "d["]
    assert map_ipa_phones(["ɔ", "dʒː", "ɪ"], "it") == ["o", "dZ", "i"]  # a geminate affricate counts once
    assert map_ipa_phones(["ɣ", "u", "t"], "nl") == ["X", "u", "t["]  # Dutch g is said voiceless


def test_a_phone_without_a_kyrgyz_counterpart_leaves_the_clip_out_rather_than_guess():
    assert map_ipa_phones(["θ", "e"], "es") is None
    assert map_ipa_phones(["ð", "e"], "es") is None
    assert map_ipa_phones(["ɑ̃"], "fr") is None  # a nasal vowel
    assert map_ipa_phones(["e", "r̝"], "cs") is None
    assert map_ipa_phones(["β"], "uk") is None  # no vowel: espeak-ng read a letter as a word, not its name


def test_the_same_symbol_can_mean_different_vowels_by_language():
    assert map_ipa_phones(["m", "y"], "ru") == ["m", "ɯ"]  # espeak-ng's Russian y is ы
    assert map_ipa_phones(["m", "y"], "fr") == ["m", "y"]


def klettres_folder(tmp_path, sounds: dict[str, str], language: str = "es"):
    folder = tmp_path / "klettres"
    (folder / language / "syllab").mkdir(parents=True)
    lines = []
    for name, file in sounds.items():
        if file != "missing.ogg":
            sf.write(folder / language / "syllab" / file, tone(0.5, 200), RATE, format="OGG")
        lines.append(f'<sound name="{name}" file="{language}/syllab/{file}" />')
    xml = "<klettres><language><alphabet>\n" + "\n".join(lines) + "\n</alphabet></language></klettres>\n"
    (folder / language / "sounds.xml").write_text(xml, encoding="utf-8")
    return folder


def test_klettres_rows_label_each_recording_by_espeak_reading_it_in_its_language(tmp_path):
    folder = klettres_folder(tmp_path, {"KA": "ka.ogg", "ZA": "za.ogg", "BE": "be.ogg", "LU": "missing.ogg"})
    rows, left_out = klettres_rows(folder)
    by_text = {r["text"]: r for r in rows}
    assert set(by_text) == {"KA", "BE"} and left_out == 1  # Spanish z is θ: no Kyrgyz phone; a missing file: no row
    assert by_text["KA"]["phones"] == "q ɑ" and by_text["BE"]["phones"] == "b e"
    assert by_text["KA"]["voice"] == "klettres-es" and by_text["KA"]["duration"] == pytest.approx(0.5, abs=0.01)
    assert Path(by_text["KA"]["audio"]).is_absolute() and by_text["KA"]["corpus"] == "klettres"


def test_a_klettres_recording_named_twice_is_one_row(tmp_path):
    folder = klettres_folder(tmp_path, {"BA": "ba.ogg", "B": "ba.ogg"})
    rows, _ = klettres_rows(folder)
    assert [r["text"] for r in rows] == ["BA"]


def test_a_folder_that_is_not_klettres_says_what_it_expected(tmp_path):
    with pytest.raises(CorpusError, match="sounds.xml"):
        klettres_rows(tmp_path)


def fillets_folder(tmp_path, lines: dict[str, dict[str, str | None]]) -> Path:
    """A Fish Fillets data tree: `lines` {language: {"level/line-id": subtitle or None (no dialogStr)}}, each with
    its recording (0.75 s; none if the id ends in "-silent", no samples if it ends in "-empty")."""
    folder = tmp_path / "fillets-ng"
    for lang, by_id in lines.items():
        scripts: dict[str, list[str]] = {}
        for key, subtitle in by_id.items():
            level, uid = key.split("/")
            english = 'English "quoted" (and bracketed)'.replace('"', '\\"')
            entry = f'dialogId("{uid}", "font_small", "{english}")\n'
            if subtitle is not None:
                entry += 'dialogStr("{}")\n'.format(subtitle.replace('"', '\\"'))
            scripts.setdefault(level, []).append(entry)
            if not uid.endswith("-silent"):
                (folder / "sound" / level / lang).mkdir(parents=True, exist_ok=True)
                audio = tone(0.0 if uid.endswith("-empty") else 0.75, 200)
                sf.write(folder / "sound" / level / lang / f"{uid}.ogg", audio, RATE, format="OGG")
        for level, entries in scripts.items():
            (folder / "script" / level).mkdir(parents=True, exist_ok=True)
            (folder / "script" / level / f"dialogs_{lang}.lua").write_text("\n\n".join(entries), encoding="utf-8")
    return folder


def test_fillets_rows_label_each_spoken_line_by_espeak_reading_its_subtitle(tmp_path):
    folder = fillets_folder(
        tmp_path,
        {
            "cs": {
                "airplane/let-m-kolo": 'Kolo "je" tady!',  # an escaped quote inside the subtitle
                "airplane/let-v-reka": "Řeka teče.",  # ř: no Kyrgyz phone
                "barrel/bar-pap-mama": "Máma volá.",
                "barrel/bar-m-nic": None,  # recorded, no Czech subtitle
                "barrel/bar-v-silent": "Máma.",  # a subtitle, no recording: no row, nothing left out
            },
            "nl": {
                "airplane/let-v-moe": "Ik ben moe.",
                "airplane/let-m-goed": "Goed zo.",  # Dutch g: ɣ, said and labelled X
                "airplane/let-m-empty": "Wat is dat?",
            },
        },
    )
    rows, left_out = fillets_rows(folder)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {
        "fillets_cs_airplane_let-m-kolo",
        "fillets_cs_barrel_bar-pap-mama",
        "fillets_nl_airplane_let-v-moe",
        "fillets_nl_airplane_let-m-goed",
    }
    assert left_out == 3
    kolo = by_id["fillets_cs_airplane_let-m-kolo"]
    assert kolo["text"] == 'Kolo "je" tady!' and kolo["phones"] == "q o l o j e t[ ɑ d[ i"
    assert kolo["voice"] == "fillets-cs-small-fish" and kolo["level"] == "airplane" and kolo["language"] == "cs"
    assert by_id["fillets_cs_barrel_bar-pap-mama"]["voice"] == "fillets-cs-other"
    assert by_id["fillets_nl_airplane_let-v-moe"]["phones"] == "i k b e n m u"
    assert by_id["fillets_nl_airplane_let-v-moe"]["voice"] == "fillets-nl-big-fish"
    assert by_id["fillets_nl_airplane_let-m-goed"]["phones"] == "X u t[ z o:"
    assert kolo["duration"] == pytest.approx(0.75, abs=0.01) and Path(kolo["audio"]).is_absolute()


def test_fillets_rows_read_only_the_languages_asked_for(tmp_path):
    folder = fillets_folder(tmp_path, {"cs": {"a/a-m-x": "Máma volá."}, "nl": {"a/a-m-y": "Ik ben moe."}})
    rows, left_out = fillets_rows(folder, {"nl": "nl"})
    assert [r["language"] for r in rows] == ["nl"] and left_out == 0


def test_a_folder_that_is_not_fillets_says_what_it_expected(tmp_path):
    with pytest.raises(CorpusError, match="fillets-ng"):
        fillets_rows(tmp_path)


def asterisk_folder(tmp_path, prompts: dict[str, dict[str, float]], texts: dict[str, list[str]]) -> Path:
    """Asterisk's usr/share: `prompts` {speaker folder: {id: seconds}} recorded as G.722 (a tone), `texts`
    {language: the lines of core-sounds-<language>.txt}."""
    G722 = pytest.importorskip("G722")
    folder = tmp_path / "share"
    for speaker, recorded in prompts.items():
        for uid, seconds in recorded.items():
            path = folder / "asterisk/sounds" / speaker / f"{uid}.g722"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(G722.G722(RATE, 64000).encode((tone(seconds, 300) * 8000).astype(np.int16)))
    for lang, lines in texts.items():
        listing = folder / f"doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz"
        listing.parent.mkdir(parents=True)
        with gzip.open(listing, "wt", encoding="utf-8") as out:
            out.write("\n".join([f"; Core Asterisk Sounds in {lang}", "", *lines]) + "\n")
    return folder


def test_asterisk_rows_decode_each_prompt_once_and_label_it_by_espeak_reading_its_text(tmp_path):
    folder = asterisk_folder(
        tmp_path,
        {"ru_RU_f_IvrvoiceRU": {"auth-thankyou": 0.5, "digits/1": 0.4, "beep": 0.2, "conf-menu": 0.6, "vm-x": 0.0},
         "en_US_f_Allison": {"three": 0.5}},
        {"ru": ["auth-thankyou: Спасибо.", "digits/1: один", "beep: [this is a simple beep tone]",
                "conf-menu: conf-menu: Нажмите один.", "vm-x: Пусто.", "vm-missing: Нет записи."],
         "en": ["three: three", "silence/1: (1 second of silence)"]},
    )  # fmt: skip
    decoded = tmp_path / "wav"
    rows, left_out = asterisk_rows(folder, decoded)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"asterisk_ru_auth-thankyou", "asterisk_ru_digits_1", "asterisk_ru_conf-menu"}
    # left out: a bracketed sound, an empty recording, a missing one, English θ, a parenthesised note
    assert left_out == 5
    thanks = by_id["asterisk_ru_auth-thankyou"]
    assert thanks["phones"] == "s p ɑ s i b ɑ" and thanks["voice"] == "asterisk-ru" and thanks["level"] == "auth"
    assert by_id["asterisk_ru_conf-menu"]["text"] == "Нажмите один."  # the repeated id is not read as words
    assert by_id["asterisk_ru_digits_1"]["level"] == "digits"
    audio, rate = sf.read(thanks["audio"])
    assert rate == RATE and thanks["duration"] == pytest.approx(0.5, abs=0.01) and len(audio) == 8000
    assert np.abs(audio).max() > 0.1  # the tone came through the codec
    (folder / "asterisk/sounds/ru_RU_f_IvrvoiceRU/auth-thankyou.g722").unlink()  # decoded once: not needed again
    again, _ = asterisk_rows(folder, decoded, ("ru",))
    assert [r["id"] for r in again] == [r["id"] for r in rows if r["language"] == "ru"]
    assert not list(decoded.rglob("*.partial.wav"))


def test_an_older_asterisk_speaker_is_labelled_by_the_core_text_of_each_prompt_said_at_its_usual_length(tmp_path):
    core = {"vm-goodbye": 1.0, "vm-yes": 0.5, "digits/7": 0.4, "vm-long": 0.4}
    folder = asterisk_folder(
        tmp_path, {"fr_CA_f_June": core},
        {"fr": ["vm-goodbye: Salut.", "vm-yes: Oui.", "digits/7: sept", "vm-long: Douze.", "vm-nocore: Huit."]},
    )  # fmt: skip
    # Armelle is 1.3 times slower than June, but for vm-long: four times longer, so other words than "Douze."
    said = {"vm-goodbye": 1.3, "vm-yes": 0.64, "digits/7": 0.52, "vm-long": 1.6, "vm-nocore": 0.5, "extra": 0.5}
    for uid, seconds in said.items():
        path = folder / "asterisk/sounds/fr" / f"{uid}.gsm"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, 300, rate=8000), 8000, format="RAW", subtype="GSM610")
    rows, left_out = asterisk_rows(folder, tmp_path / "wav", ("fr-armelle",))
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {
        "asterisk_fr-armelle_vm-goodbye",
        "asterisk_fr-armelle_vm-yes",
        "asterisk_fr-armelle_digits_7",
    }
    assert left_out == 2  # another wording, a prompt the core speaker lacks ("extra" has no text: not counted)
    seven = by_id["asterisk_fr-armelle_digits_7"]
    assert seven["phones"] == "s e t[" and seven["voice"] == "asterisk-fr-armelle" and seven["language"] == "fr-armelle"
    audio, rate = sf.read(seven["audio"])  # GSM's 8 kHz, resampled
    assert rate == RATE and seven["duration"] == pytest.approx(0.52, abs=0.02) and np.abs(audio).max() > 0.1
    core_only, _ = asterisk_rows(folder, tmp_path / "wav-core", ("fr",))  # June's rows are her own
    assert {r["voice"] for r in core_only} == {"asterisk-fr"} and len(core_only) == 4


def test_asterisk_without_the_g722_decoder_says_what_to_install(tmp_path, monkeypatch):
    folder = asterisk_folder(
        tmp_path, {"ru_RU_f_IvrvoiceRU": {"auth-thankyou": 0.3}}, {"ru": ["auth-thankyou: Спасибо."]}
    )
    monkeypatch.setitem(sys.modules, "G722", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(CorpusError, match="pip install 'g722"):
        asterisk_rows(folder, tmp_path / "wav")
    assert not list((tmp_path / "wav").rglob("*.wav"))  # nothing half-decoded left behind


def test_a_folder_that_is_not_asterisks_says_what_it_expected(tmp_path):
    with pytest.raises(CorpusError, match="core-sounds"):
        asterisk_rows(tmp_path, tmp_path / "wav")


def test_fetch_deb_reuses_an_earlier_unpack_without_apt(tmp_path, monkeypatch):
    inside = tmp_path / "pkg" / "usr" / "share" / "x"
    inside.mkdir(parents=True)
    (inside / "marker").write_text("", encoding="utf-8")
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("apt-get was called"))
    assert fetch_deb("some-package", tmp_path / "pkg", "usr/share/x", "marker") == inside


def test_fetch_deb_unpacks_several_packages_into_one_tree(tmp_path, monkeypatch):
    def run(command, cwd=None, check=False):
        if command[:2] == ["apt-get", "download"]:
            for package in command[2:]:
                (Path(cwd) / f"{package}_1.0_all.deb").write_text(package, encoding="utf-8")
        else:  # dpkg-deb -x DEB DEST: each package brings its own file under usr/share/x
            deb, dest = Path(command[2]), Path(command[3])
            (dest / "usr" / "share" / "x").mkdir(parents=True, exist_ok=True)
            (dest / "usr" / "share" / "x" / deb.read_text(encoding="utf-8")).write_text("", encoding="utf-8")

    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr("subprocess.run", run)
    folder = fetch_deb(("data", "voices"), tmp_path / "pkg", "usr/share/x", "voices")
    assert sorted(p.name for p in folder.iterdir()) == ["data", "voices"]
    assert not (tmp_path / "pkg.partial").exists()


def test_fetch_deb_without_apt_names_every_package_to_fetch_by_hand(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(CorpusError, match="data, voices: Debian.*dpkg-deb -x.*pass its x folder"):
        fetch_deb(("data", "voices"), tmp_path / "pkg", "usr/share/x", "voices")


def test_rhvoice_rows_read_the_metadata_and_point_at_the_flac(tmp_path):
    (tmp_path / "metadata.tsv").write_text("rhv_nazgul_0_00001\tNazgul\t90\t110\t2.5\tБала келди.\n", encoding="utf-8")
    (row,) = rhvoice_rows(tmp_path)
    assert row["voice"] == "rhvoice-nazgul" and row["audio"].endswith("audio/rhv_nazgul_0_00001.flac")
    assert "phones" not in row  # RHVoice's own G2P is not ours: labels come from our G2P later
    (tmp_path / "metadata.tsv").write_text("only\tthree\tfields\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="expected 6 tab-separated fields"):
        rhvoice_rows(tmp_path)


def test_speed_perturbation_shortens_and_raises_pitch_together():
    fast = speed_perturb(tone(1.0, 200), 1.1)
    assert fast.size == pytest.approx(RATE / 1.1, abs=2)
    spectrum = np.abs(np.fft.rfft(fast))
    assert np.argmax(spectrum) * RATE / fast.size == pytest.approx(220, abs=3)


def test_voice_change_moves_pitch_at_the_same_tempo_and_formants():
    wav = vowel(120, 1000)
    higher = voice_change(wav, formant_ratio=1.0, pitch_factor=1.25)
    lower = voice_change(wav, formant_ratio=1.0, pitch_factor=0.8)
    assert higher.size == lower.size == wav.size  # tempo kept: unlike speed perturbation, no shorter clip
    assert fundamental(wav) == pytest.approx(120, rel=0.02)
    assert fundamental(higher) == pytest.approx(150, rel=0.03)
    assert fundamental(lower) == pytest.approx(96, rel=0.03)
    assert spectral_centroid(higher) == pytest.approx(spectral_centroid(wav), rel=0.04)


def test_voice_change_scales_formants_as_a_shorter_or_longer_vocal_tract():
    wav = vowel(120, 1000)
    shorter = voice_change(wav, formant_ratio=1.15, pitch_factor=1.0)
    longer = voice_change(wav, formant_ratio=0.88, pitch_factor=1.0)
    assert spectral_centroid(shorter) / spectral_centroid(wav) == pytest.approx(1.15, abs=0.04)
    assert spectral_centroid(longer) / spectral_centroid(wav) == pytest.approx(0.88, abs=0.04)
    assert fundamental(shorter) == pytest.approx(120, rel=0.03)  # the pitch stays where it was


def test_voice_change_is_the_same_every_time():
    """Praat's resynthesis draws random numbers: unseeded, the same call gave another waveform each time, so a
    resumed or parallel augmentation could not redo a clip as it was."""
    wav = vowel(120, 900, 0.6)
    first = voice_change(wav, 1.1, 1.2)
    voice_change(vowel(150, 700, 0.3), 0.9, 0.8)  # whatever ran in between
    assert np.array_equal(voice_change(wav, 1.1, 1.2), first)
    assert not np.array_equal(voice_change(wav, 1.1, 1.25), first)


def test_voice_change_leaves_unvoiced_audio_at_its_length():
    noise = (0.1 * np.random.default_rng(0).standard_normal(RATE // 2)).astype(np.float32)
    out = voice_change(noise, formant_ratio=1.1, pitch_factor=1.3)
    assert out.size == noise.size and np.isfinite(out).all() and np.abs(out).max() > 0


def test_band_limiting_removes_what_the_channel_cannot_carry():
    wav = tone(1.0, 500) + tone(1.0, 6000)
    out = band_limit(wav, 8000)
    spectrum = np.abs(np.fft.rfft(out))
    assert out.size == wav.size
    assert spectrum[6000] < 1e-3 * spectrum[500]  # bins are 1 Hz apart for a 1 s signal


def test_mu_law_keeps_the_signal_within_8_bit_quantisation_error():
    wav = tone(0.5, 300)
    out = mu_law(wav)
    assert not np.array_equal(out, wav)
    assert np.max(np.abs(out - wav)) < 0.5 * 0.05  # the coarsest step of 8-bit mu-law is ~4 % of the peak


def test_channel_reports_what_it_drew():
    infos = [channel(tone(0.5, 300), np.random.default_rng(i))[1] for i in range(40)]
    assert any("speed" in i for i in infos) and any("band_limit_hz" in i for i in infos)
    assert all(0.9 <= i.get("speed", 1.0) <= 1.1 for i in infos)
    changed = [i for i in infos if "formant_ratio" in i]
    assert 0.5 * len(infos) <= len(changed) < len(infos)  # 70 % of the clips
    assert all(FORMANT_RATIOS[0] <= i["formant_ratio"] <= FORMANT_RATIOS[1] for i in changed)
    assert all(PITCH_FACTORS[0] <= i["pitch_factor"] <= PITCH_FACTORS[1] for i in changed)
    assert min(i["pitch_factor"] for i in changed) < 1 < max(i["pitch_factor"] for i in changed)


def test_channel_draws_formants_within_the_range_it_is_given():
    infos = [channel(tone(0.5, 300), np.random.default_rng(i), formant_ratios=(1.2, 1.3))[1] for i in range(20)]
    assert all(1.2 <= i["formant_ratio"] <= 1.3 for i in infos if "formant_ratio" in i)
    assert any("formant_ratio" in i for i in infos)


def test_channel_without_voices_draws_no_voice_change():
    infos = [channel(tone(0.5, 300), np.random.default_rng(i), voices=False)[1] for i in range(20)]
    assert not any("formant_ratio" in i or "pitch_factor" in i for i in infos)


def test_other_voices_set_speaks_each_held_out_clip_once_in_a_drawn_voice(tmp_path):
    rows = []
    for k in range(3):
        sf.write(tmp_path / f"src{k}.wav", vowel(110 + 20 * k, 900), RATE)
        rows.append({"id": f"u{k}", "audio": str(tmp_path / f"src{k}.wav"), "phones": "ɑ", "voice": "v"})
    manifest = other_voices_set(rows, tmp_path / "other", seed=13)
    made = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert [m["source"] for m in made] == [r["audio"] for r in rows] and all(m["phones"] == "ɑ" for m in made)
    for row, m in zip(rows, made):
        assert FORMANT_RATIOS[0] <= m["formant_ratio"] <= FORMANT_RATIOS[1]
        wav, _ = sf.read(tmp_path / "other" / m["audio"], dtype="float32")
        source, _ = sf.read(row["audio"], dtype="float32")
        assert wav.size == source.size  # same tempo, so the clip keeps its length
        assert fundamental(wav) / fundamental(source) == pytest.approx(m["pitch_factor"], rel=0.05)
    again = other_voices_set(rows, tmp_path / "again", seed=13).read_text(encoding="utf-8")
    assert again == manifest.read_text(encoding="utf-8")  # the same voices each time: a fixed test set


def test_augment_corpus_writes_copies_and_resumes_without_redoing_them(tmp_path):
    sources = []
    for k in range(2):
        sf.write(tmp_path / f"src{k}.wav", tone(0.6, 200 + 100 * k), RATE)
        sources.append({"id": f"u{k}", "audio": str(tmp_path / f"src{k}.wav"), "phones": "m ɑ", "voice": f"v{k}"})
    out = tmp_path / "aug"
    manifest = augment_corpus(sources, out, copies=2, seed=1, progress=False)
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in rows] == [s["audio"] for s in sources] * 2
    assert all((out / r["audio"]).is_file() and r["phones"] == "m ɑ" for r in rows)
    first = (out / rows[0]["audio"]).stat().st_mtime_ns
    log = out / "drawn.jsonl"
    log.write_text("".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    (out / rows[3]["audio"]).unlink()  # as if interrupted before the last clip
    augment_corpus(sources, out, copies=2, seed=1, progress=False)
    again = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert again == rows  # the same draws: the redone clip is the one it would have been
    assert (out / rows[0]["audio"]).stat().st_mtime_ns == first  # kept, not rewritten


def test_augment_corpus_gives_the_same_clips_with_any_number_of_workers(tmp_path):
    sources = []
    for k in range(5):
        sf.write(tmp_path / f"src{k}.wav", vowel(110 + 20 * k, 800, 0.5), RATE)
        sources.append({"id": f"u{k}", "audio": str(tmp_path / f"src{k}.wav"), "phones": "ɑ"})
    manifests = {n: augment_corpus(sources, tmp_path / f"w{n}", 2, 3, progress=False, workers=n) for n in (1, 3)}
    rows = {n: [json.loads(line) for line in m.read_text().splitlines()] for n, m in manifests.items()}
    assert rows[1] == rows[3] and len(rows[1]) == 10  # same order, same draws
    for row in rows[1]:
        assert np.array_equal(sf.read(tmp_path / "w1" / row["audio"])[0], sf.read(tmp_path / "w3" / row["audio"])[0])


def test_augment_corpus_redraws_clips_made_with_another_voices_setting(tmp_path):
    sf.write(tmp_path / "src.wav", vowel(120, 900, 0.6), RATE)
    sources = [{"id": f"u{k}", "audio": str(tmp_path / "src.wav"), "phones": "ɑ", "voice": "v"} for k in range(6)]
    out = tmp_path / "aug"
    with_voices = [
        json.loads(line) for line in augment_corpus(sources, out, 1, 1, progress=False).read_text().splitlines()
    ]
    assert any("formant_ratio" in r for r in with_voices) and all(r["voices"] for r in with_voices)
    manifest = augment_corpus(sources, out, 1, 1, progress=False, voices=False)
    without = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert not any("formant_ratio" in r or r["voices"] for r in without)  # none of the voice-changed clips kept


def test_augment_corpus_redraws_voice_changed_clips_for_another_formant_range_and_keeps_them_for_the_same(tmp_path):
    sf.write(tmp_path / "src.wav", vowel(120, 900, 0.6), RATE)
    sources = [{"id": f"u{k}", "audio": str(tmp_path / "src.wav"), "phones": "ɑ", "voice": "v"} for k in range(6)]
    out = tmp_path / "aug"

    def rows(**kw):
        return [
            json.loads(line)
            for line in augment_corpus(sources, out, 1, 1, progress=False, **kw).read_text().splitlines()
        ]

    default = rows()
    assert all(r["formant_ratios"] == list(FORMANT_RATIOS) for r in default)
    wider = rows(formant_ratios=(1.2, 1.3))
    changed = [r for r in wider if "formant_ratio" in r]
    assert changed and all(1.2 <= r["formant_ratio"] <= 1.3 for r in changed)
    assert all(r["formant_ratios"] == [1.2, 1.3] for r in wider)
    log_lines = (out / "drawn.jsonl").read_text().count("\n")
    assert rows(formant_ratios=(1.2, 1.3)) == wider and (out / "drawn.jsonl").read_text().count("\n") == log_lines


def tone_rows(folder: Path, count: int) -> list[dict]:
    """`count` rows u0, u1, ... of 0.4 s tones written into `folder`, labelled "m ɑ"."""
    for k in range(count):
        sf.write(folder / f"src{k}.wav", tone(0.4, 200 + 50 * k), RATE)
    return [{"id": f"u{k}", "audio": str(folder / f"src{k}.wav"), "phones": "m ɑ"} for k in range(count)]


def test_augment_corpus_manifest_follows_the_rows_given_now(tmp_path):
    sources = tone_rows(tmp_path, 3)
    out = tmp_path / "aug"
    augment_corpus(sources, out, copies=1, seed=1, progress=False)
    first = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    relabelled = [{**sources[0], "phones": "n ɑ"}, sources[2]]  # a G2P fix relabels u0; u1 is dropped
    manifest = augment_corpus(relabelled, out, copies=1, seed=1, progress=False)
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["phones"]) for r in rows] == [("u0", "n ɑ"), ("u2", "m ɑ")]
    assert all((out / r["audio"]).stat().st_mtime_ns == first[Path(r["audio"]).name] for r in rows)
    with pytest.raises(ValueError, match="unique"):
        augment_corpus([sources[0], sources[0]], out, copies=1, seed=1, progress=False)


def speech_like_batch(rows: int = 4, seconds: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised rows of vowels at different pitches, the later ones shorter and zero-padded."""
    lengths = torch.tensor([int(seconds * RATE * (1 - 0.5 * i / rows)) for i in range(rows)])
    wav = torch.zeros(rows, int(lengths[0]))
    for i, n in enumerate(lengths.tolist()):
        x = vowel(100 + 10 * i, 700 + 50 * i, seconds)[:n]
        wav[i, :n] = torch.from_numpy((x - x.mean()) / np.sqrt(x.var() + 1e-7))
    return wav, lengths


@pytest.mark.parametrize("babble", [0.0, 1.0])
@pytest.mark.parametrize("snr", [0.0, 10.0])
def test_batch_noise_reaches_the_drawn_snr_and_renormalises(snr, babble):
    """Clean speech plus noise at SNR s, normalised again, keeps a correlation of 1/sqrt(1 + 10**(-s/10)) with
    the clean rows (0.71 at 0 dB, 0.95 at 10 dB); zero mean and unit variance, padding still zero."""
    wav, lengths = speech_like_batch()
    out = add_batch_noise(wav, lengths, BatchNoise(1.0, (snr, snr), babble), torch.Generator().manual_seed(0))
    expected = 1 / np.sqrt(1 + 10 ** (-snr / 10))
    for row, clean, n in zip(out, wav, lengths.tolist()):
        x, c = row[:n].double(), clean[:n].double()
        assert abs(float(x.mean())) < 1e-4 and float(x.std(unbiased=False)) == pytest.approx(1, abs=1e-3)
        assert float((x * c).mean() / c.std(unbiased=False)) == pytest.approx(expected, abs=0.04)
        assert not row[n:].any()


def test_batch_noise_touches_the_drawn_share_of_rows_the_same_way_every_time():
    wav, lengths = speech_like_batch(rows=64, seconds=0.2)
    noise = BatchNoise(prob=0.5, snr_db=(5.0, 5.0))
    first = add_batch_noise(wav, lengths, noise, torch.Generator().manual_seed(3))
    again = add_batch_noise(wav, lengths, noise, torch.Generator().manual_seed(3))
    other = add_batch_noise(wav, lengths, noise, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    changed = int((first != wav).any(1).sum())
    assert 20 <= changed <= 44  # about half of 64
    assert torch.equal(add_batch_noise(wav, lengths, BatchNoise(prob=0.0), torch.Generator()), wav)


def test_batch_noise_settings_are_checked():
    for bad in (dict(prob=1.5), dict(babble=-0.1), dict(snr_db=(20.0, 0.0)), dict(prob="high"), dict(snr_db=5)):
        with pytest.raises(ValueError, match="noise"):
            BatchNoise(**bad)


def high_band_share(wav: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(wav)) ** 2
    return float(power[np.fft.rfftfreq(wav.size, 1 / RATE) > 5000].sum() / power.sum())


@pytest.mark.parametrize("codec,level", [("opus", 0.85), ("mp3", 0.0), ("mp3", 0.9)])
def test_a_lossy_codec_at_speech_bitrates_keeps_the_signal_in_time_level_and_length(codec, level):
    x = (vowel(120, 700) + 0.05 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    y = lossy_codec(x, codec, level)
    assert y.dtype == np.float32 and y.size == x.size and not np.array_equal(x, y)
    assert np.corrcoef(x, y)[0, 1] > 0.95  # no delay: the decoder's lead-in is dropped
    assert np.sqrt(np.mean(y**2) / np.mean(x**2)) == pytest.approx(1, abs=0.1)


def test_opus_at_its_smallest_is_a_narrow_band_channel_in_a_quarter_of_the_bytes():
    """At ~8 kbit/s Opus codes 4 kHz of bandwidth (what broke the demo model: bench/lm_under_noise.py --codec)."""
    x = (vowel(120, 700) + 0.05 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)
    assert len(encode(x, "opus", 1.0)) < len(encode(x, "opus", 0.85)) / 3
    loss_db = 10 * np.log10(high_band_share(lossy_codec(x, "opus", 1.0)) / high_band_share(x))
    assert loss_db < -20
    assert 10 * np.log10(high_band_share(lossy_codec(x, "opus", 0.85)) / high_band_share(x)) > -3


def test_batch_codec_renormalises_the_drawn_rows_the_same_way_every_time_and_keeps_padding_zero():
    wav, lengths = speech_like_batch(rows=16, seconds=0.5)
    codec = BatchCodec(prob=0.5, opus=0.5)
    first = add_batch_codec(wav, lengths, codec, torch.Generator().manual_seed(3))
    again = add_batch_codec(wav, lengths, codec, torch.Generator().manual_seed(3))
    other = add_batch_codec(wav, lengths, codec, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    changed = (first != wav).any(1)
    assert 3 <= int(changed.sum()) <= 13  # about half of 16
    for row, clean, n, touched in zip(first, wav, lengths.tolist(), changed.tolist()):
        assert not row[n:].any()
        if touched:
            x = row[:n].double()
            assert abs(float(x.mean())) < 1e-3 and float(x.std(unbiased=False)) == pytest.approx(1, abs=1e-3)
            assert float((x * clean[:n].double()).mean()) > 0.8  # the same speech, coded
    assert torch.equal(add_batch_codec(wav, lengths, BatchCodec(prob=0.0), torch.Generator()), wav)


def test_batch_codec_draws_its_levels_from_the_range_it_is_given():
    """Opus held at its smallest level codes every row into a 4 kHz band; MP3 at its best keeps the band."""
    wav, lengths = speech_like_batch(rows=4, seconds=1.0)
    noisy = wav + 0.05 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(0)) * (wav != 0)
    narrow = add_batch_codec(noisy, lengths, BatchCodec(1.0, 1.0, opus_levels=(1.0, 1.0)), torch.Generator())
    wide = add_batch_codec(noisy, lengths, BatchCodec(1.0, 0.0, mp3_levels=(0.0, 0.0)), torch.Generator())
    for row, n in enumerate(lengths.tolist()):
        clean = high_band_share(noisy[row, :n].numpy())
        assert 10 * np.log10(high_band_share(narrow[row, :n].numpy()) / clean) < -10
        assert 10 * np.log10(high_band_share(wide[row, :n].numpy()) / clean) > -3


def test_batch_codec_settings_are_checked():
    bad_ranges = (dict(opus_levels=(0.9, 0.8)), dict(opus_levels=(0.5, 1.5)), dict(mp3_levels=(0.5, 1.0)))
    for bad in (dict(prob=1.5), dict(opus=-0.1), dict(prob="often"), dict(opus_levels=0.9), *bad_ranges):
        with pytest.raises(ValueError, match="codec"):
            BatchCodec(**bad)


def test_augment_corpus_redraws_the_copies_of_a_source_written_anew_under_the_same_name(tmp_path):
    # a Festival reading of other sentences replaces the files of the old one: its old copies are stale audio
    sources = tone_rows(tmp_path, 2)
    out = tmp_path / "aug"
    augment_corpus(sources, out, copies=2, seed=1, progress=False)
    first = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    sf.write(tmp_path / "src1.wav", tone(0.9, 400), RATE)  # u1 said anew: another length
    rows = [
        json.loads(line)
        for line in augment_corpus(sources, out, copies=2, seed=1, progress=False).read_text().splitlines()
    ]
    kept = {(r["id"], (out / r["audio"]).stat().st_mtime_ns == first[Path(r["audio"]).name]) for r in rows}
    assert kept == {("u0", True), ("u1", False)}  # each copy
    assert all(r["duration"] > 0.8 for r in rows if r["id"] == "u1")  # drawn from the new audio


def test_augment_corpus_keeps_the_copies_of_a_source_copied_anew_with_the_same_bytes(tmp_path):
    # the shared data folder is laid anew each session: new mtimes, the same audio
    sources = tone_rows(tmp_path, 2)
    out = tmp_path / "aug"
    augment_corpus(sources, out, copies=2, seed=1, progress=False)
    first = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    data = (tmp_path / "src0.wav").read_bytes()
    (tmp_path / "src0.wav").unlink()
    (tmp_path / "src0.wav").write_bytes(data)
    os.utime(tmp_path / "src0.wav", ns=(1, 1))
    augment_corpus(sources, out, copies=2, seed=1, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == first
