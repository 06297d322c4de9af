"""Real-voice training material: the RHVoice and festvox-ru readers, the Russian phone mapping, and the
augmentation aimed at the synthetic-to-real gap."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unispeech.augment import augment_corpus, band_limit, channel, mu_law, speed_perturb
from unispeech.corpora import CorpusError, festvox_ru_rows, map_russian_phones, rhvoice_rows
from unispeech.g2p import kyrgyz_inventory

RATE = 16000


def tone(seconds: float, hz: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


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


def test_augment_corpus_manifest_follows_the_rows_given_now(tmp_path):
    sources = []
    for k in range(3):
        sf.write(tmp_path / f"src{k}.wav", tone(0.4, 200 + 50 * k), RATE)
        sources.append({"id": f"u{k}", "audio": str(tmp_path / f"src{k}.wav"), "phones": "m ɑ"})
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
