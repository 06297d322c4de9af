"""The bundled demo model end to end: the README's first command, and held-out synthetic Kyrgyz speech."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import unispeech
from unispeech.augment import FORMANT_RATIOS, augment
from unispeech.checkpoint import DEFAULT_MODEL_DIR
from unispeech.metrics import phone_error_rate
from unispeech.synth import UNSEEN_VARIANT, Speaker, Voice

ROOT = Path(__file__).parents[1]
HELD_OUT = [line.split("\t", 1)[1] for line in (ROOT / "data/ky/val.text").read_text(encoding="utf-8").splitlines()]
# The model decodes with its own phone LM (beam search; MODEL_CARD.md). Measured on the 227 held-out sentences: 2.0 %
# (greedy 3.3 %; v31; v30 2.0 / 3.5 %; v22 1.9 / 3.2 %; v20 1.9 / 3.0 %; v18 1.7 / 3.0 %; v17 1.8 / 2.9 %; v15 1.7 / 2.9
# %; v14 1.8 / 2.8 %; v13 1.7 / 2.8 %; v12 1.9 / 2.8 %); on the 12 drawn below (seeded): v31 m1 0.8 %, f2 + noise 2.3 %,
# m3 0.8 %, v30 0.6 / 2.7 / 0.6 % (Zen4, torch auto); v22 and v20 m1 0.8 %, f2 + noise 2.3 %, m3 0.8 % (AMX, torch
# auto); v18 m1 0.8 %, f2 + noise 1.5 %, m3 0.6 %, v17 1.1 / 2.1 / 0.8 % (AMX, torch mixed); v15 1.3 / 1.7 / 0.4 %, v14
# 1.3 / 1.9 / 1.1 %, v13 1.5 / 2.1 / 0.6 % (AMX, torch bfloat16); v12 1.5 / 2.7 / 1.3 % (AMX, onnxruntime int8 and torch
# auto alike); v11 0.8 / 2.9 / 0.8 % (Zen4, onnxruntime int8); the README example 0.0 % (v31, v30, v22, v20, v17, v15,
# v14, v13, v11). The bounds sit above (precision and CPU move them by a fraction of a point); a broken model, audio
# path or decoder gives 60-100 %.
README_EXAMPLE_BOUND = 0.03
# The six held-out RHVoice clips of tests/data/rhvoice: v31 6.0 % (greedy 8.0 %), v30 and v22 5.7 %, v20 5.0 %, v18 5.3
# %, v17 4.0 %, v15 5.3 %, v14 6.3 %, v13 5.0 %, v12 6.0 % (v14's and v12's lighter LM weight: 0.3 against 0.5), v11 and
# v10 4.3 %, v9 and v7 4.7 % with the phone LM, v6 4.3 %, v5 with the same LM 4.7 % (greedy: v22 7.0 %, v20 7.7 %, v18
# 7.7 %, v17 6.7 %, v15 7.7 %, v14 7.3 %, v13 8.0 %, v12 7.0 %, v11 7.7 %, v10 7.3 %, v9 9.7 %, v7 8.0 %, v6 7.0 %, v5
# 8.0 %, v4 11.7 %, v3 12.7 %, the espeak-ng-only v2 88.3 %).
RHVOICE_BOUND = 0.08
# The same clips with each voice moved towards the other sex (Praat's PSOLA): v31 7.0 %, v30 8.0 %, v22 and v20 6.3 %,
# v17 6.0 %, v15 6.7 %, v14 8.7 %, v13 7.7 % (torch bfloat16), v12 8.7 % (int8; 8.0 % torch auto), v11 7.7 %, v10 6.0 %,
# v9 7.0 %, v7 8.0 %, v6 (the first trained with voice changes) 7.3 % with the phone LM; v5, trained on the two voices
# as they are, 13.3 % with the same LM (greedy: 13.0 and 22.3 %). The bound fails a model at v5's level.
OTHER_VOICES_BOUND = 0.11
# The same clips under white noise and under babble (three of the other clips) at 10 and 5 dB SNR, pooled: v31 26.2 %,
# v30 28.2 %, v22 29.2 %, v20 27.8 %, v17 28.2 %, v15 27.1 %, v14 28.0 %, v13 28.0 % (torch bfloat16), v12 28.6 % (int8;
# 28.9 % torch auto), v11 28.9 %, v10 29.7 %, v9 30.8 %, v7 (trained with noise drawn anew for every batch, down to 0
# dB) 32.5 % with its phone LM; v6, trained on the stored copies' 10-40 dB alone, 39.3 %. The bound fails a v6-level
# model.
NOISY_BOUND = 0.36


@pytest.fixture(scope="module")
def demo():
    return unispeech.load_model(DEFAULT_MODEL_DIR)


def test_readme_first_command_prints_phones_with_times():
    done = subprocess.run(
        [sys.executable, "-m", "unispeech", "transcribe", str(ROOT / "examples/ky_example.flac"), "--format", "tsv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()[1:]]
    assert len(rows) > 20 and all(float(r[3]) < float(r[4]) for r in rows)
    notes = [line for line in done.stderr.splitlines() if "to ONNX" not in line]  # a first-use export says so
    assert len(notes) == 1 and "microsoft/unispeech-1350-en-17h-ky-ft-1h" in notes[0]
    expected = unispeech.phonemize((ROOT / "examples/ky_example.txt").read_text(encoding="utf-8"))
    assert phone_error_rate([expected], [[r[2] for r in rows]]).per <= README_EXAMPLE_BOUND


@pytest.mark.parametrize(
    "variant,augmented,bound", [("m1", False, 0.05), ("f2", True, 0.09), (UNSEEN_VARIANT, False, 0.06)]
)
def test_held_out_sentences(demo, variant, augmented, bound):
    speaker = Speaker("ky")
    rng = np.random.default_rng(7)
    sentences = HELD_OUT[20:32]
    refs, hyps = [], []
    for text in sentences:
        wav = speaker.speak(text, Voice(variant, rate=int(rng.integers(140, 190)), pitch=int(rng.integers(35, 65))))
        if augmented:
            wav, _ = augment(wav, rng)
        refs.append(unispeech.phonemize(text))
        hyps.append(demo.transcribe(wav, 16000).phones)
    per = phone_error_rate(refs, hyps).per
    print(
        f"demo model, {len(sentences)} held-out sentences, voice {variant}{' + noise' if augmented else ''}: "
        f"PER {100 * per:.1f} %"
    )
    assert per <= bound


def test_forced_alignment_boundaries_match_espeak(demo):
    """Phone starts from CTC alignment against espeak-ng's own phoneme events (clean held-out speech)."""
    from unispeech.align import align

    speaker = Speaker("ky")
    errors = []
    for text in HELD_OUT[40:52]:
        wav = speaker.speak(text, Voice("m1", rate=160, pitch=50))
        onsets = speaker.phone_onsets()
        if len(onsets) != len(unispeech.phonemize(text)):
            continue  # espeak's events and the G2P disagree on the count: no reference for this sentence
        result = align(demo, wav, text=text, sampling_rate=16000)
        errors += [abs(p.start - o) for p, o in zip(result.phones, onsets)]
    assert len(errors) > 200
    print(f"mean boundary error {1000 * np.mean(errors):.1f} ms over {len(errors)} phones")
    assert np.mean(errors) < 0.040


RHVOICE_CLIPS = ROOT / "tests" / "data" / "rhvoice"


def rhvoice_clips() -> list[dict]:
    """The six held-out RHVoice clips bundled with the tests (manifest rows: audio, voice, phones)."""
    lines = (RHVOICE_CLIPS / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_the_demo_model_hears_rhvoice_s_kyrgyz_voices_on_unseen_sentences(demo):
    folder, rows = RHVOICE_CLIPS, rhvoice_clips()
    assert {r["voice"] for r in rows} == {"rhvoice-azamat", "rhvoice-nazgul"}
    hyps = [demo.transcribe(str(folder / r["audio"])).phones for r in rows]
    counts = phone_error_rate([r["phones"].split() for r in rows], hyps)
    print(f"demo model, {len(rows)} held-out RHVoice clips: PER {100 * counts.per:.1f} %")
    assert counts.per < RHVOICE_BOUND


def test_the_demo_model_hears_rhvoice_clips_in_voices_it_never_heard(demo):
    """Unseen speakers, simulated: Azamat's formants x1.12 and pitch x1.35, Nazgul's x0.88 and x0.74."""
    from unispeech.audio import load_audio
    from unispeech.augment import voice_change

    folder, rows = RHVOICE_CLIPS, rhvoice_clips()
    towards = {"rhvoice-azamat": (1.12, 1.35), "rhvoice-nazgul": (0.88, 1 / 1.35)}
    hyps = [
        demo.transcribe(voice_change(load_audio(folder / r["audio"]), *towards[r["voice"]]), 16000).phones for r in rows
    ]
    counts = phone_error_rate([r["phones"].split() for r in rows], hyps)
    print(f"demo model, {len(rows)} held-out RHVoice clips in other voices: PER {100 * counts.per:.1f} %")
    assert counts.per < OTHER_VOICES_BOUND


def test_the_demo_model_hears_rhvoice_clips_under_noise_and_babble(demo):
    from unispeech.audio import load_audio

    folder, rows = RHVOICE_CLIPS, rhvoice_clips()
    clips = [load_audio(folder / r["audio"]) for r in rows]
    rng = np.random.default_rng(0)
    refs, hyps = [], []
    for i, (wav, row) in enumerate(zip(clips, rows)):
        babble = sum(np.resize(clips[(i + k) % len(clips)], wav.size) for k in (1, 2, 3))
        for noise in (rng.normal(size=wav.size), babble):
            for snr_db in (10, 5):
                scale = np.sqrt(np.mean(wav**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
                hyps.append(demo.transcribe((wav + scale * noise).astype(np.float32), 16000).phones)
                refs.append(row["phones"].split())
    counts = phone_error_rate(refs, hyps)
    print(f"demo model, {len(rows)} RHVoice clips, white noise and babble at 10 and 5 dB: PER {100 * counts.per:.1f} %")
    assert counts.per < NOISY_BOUND


def test_room_response_has_the_direct_to_reverberant_ratio_it_reports():
    """The synthetic reverberation is as strong as the manifest says: direct path first, tail energy set by DRR."""
    from unispeech.augment import room_response

    rng = np.random.default_rng(3)
    for _ in range(20):
        ir, info = room_response(rng)
        assert 0.1 <= info["rt60"] <= 0.6 and 0.0 <= info["drr_db"] <= 20.0
        assert ir[0] == 1.0 and np.abs(ir[1:]).max() < 1.0
        assert 10 * np.log10(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(info["drr_db"], abs=0.05)
        assert ir.size == pytest.approx(info["rt60"] * 16000, abs=10)  # rt60 is reported to 1 ms


def test_several_corpora_in_one_process(tmp_path):
    """The demo recipe synthesises four sets in one process; re-initialising espeak-ng after the first
    (1500 sentences) used to segfault. Run in a subprocess so that a crash fails this test, not the suite."""
    script = f"""
import sys
from unispeech.data import sentence_splits
from unispeech.synth import synthesize_corpus
splits = sentence_splits({str(ROOT / "data" / "ky")!r})
synthesize_corpus(splits["train"][:1500], {str(tmp_path / "a")!r}, clean=True, progress=False)
synthesize_corpus(splits["valid"][:20], {str(tmp_path / "b")!r}, progress=False)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len((tmp_path / "b" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()) == 20


def test_the_demo_model_decodes_with_its_own_phone_lm_and_it_helps_on_rhvoice(demo):
    """The bundled model ships a Kyrgyz phone LM (recipes/demo_lm.py) and decodes with it by default; on the
    held-out RHVoice clips it must not do worse than greedy decoding of the same logits."""
    from unispeech import GreedyDecoder
    from unispeech.beam import BeamSearchDecoder

    assert isinstance(demo.decoder, BeamSearchDecoder) and demo.decoder.lm is not None
    assert demo.decoder.lm.order >= 3
    rows = rhvoice_clips()
    refs = [r["phones"].split() for r in rows]
    greedy = demo.with_decoder(GreedyDecoder())
    with_lm = phone_error_rate(refs, [demo.transcribe(str(RHVOICE_CLIPS / r["audio"])).phones for r in rows])
    without = phone_error_rate(refs, [greedy.transcribe(str(RHVOICE_CLIPS / r["audio"])).phones for r in rows])
    print(
        f"demo model, {len(rows)} held-out RHVoice clips: PER {100 * with_lm.per:.1f} % with its phone LM, "
        f"{100 * without.per:.1f} % greedy"
    )
    assert with_lm.per <= without.per


def test_the_recipe_grows_its_start_model_and_evaluates_and_bundles_the_stored_float16_weights(
    tiny_model_dir, tmp_path, monkeypatch
):
    import shutil

    import torch
    from safetensors.torch import load_file

    from unispeech.beam import DECODING_FILE, PHONE_LM_FILE

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    start = tmp_path / "init"
    shutil.copytree(tiny_model_dir, start)
    layers = json.loads((start / "config.json").read_text())["num_hidden_layers"]
    grown = demo_model.deepened(start, layers + 1, tmp_path)
    assert json.loads((grown / "config.json").read_text())["num_hidden_layers"] == layers + 1
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    before, after = (unispeech.load_model(m, dtype="float32").logits(wav, 16000) for m in (start, grown))
    assert np.array_equal(before, after)

    (start / DECODING_FILE).write_text('{"beam_width": 8}')
    (start / PHONE_LM_FILE).write_text("\\data\\\n")
    stored = demo_model.stored_in_float16(start)
    assert stored.name == "init-float16"
    assert {t.dtype for t in load_file(stored / "model.safetensors").values()} == {torch.float16}
    for name in (DECODING_FILE, PHONE_LM_FILE):
        assert (stored / name).read_text() == (start / name).read_text()


def test_fish_fillets_lines_are_unseen_speakers_or_else_the_held_out_levels_of_the_trained_ones(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_sets

    rows = [{"id": f"{lang}{level}{i}", "language": lang, "level": f"level{level:02d}", "corpus": "fillets"}
            for lang in ("cs", "nl") for level in range(10) for i in range(40)]  # fmt: skip
    split = demo_sets.speaker_splits(rows, {"cs"})
    nl = [r for r in split["test"] if r["language"] == "nl"]
    assert len(nl) == 400 and {r["test_set"] for r in nl} == {"fillets-nl"}  # not trained on: every line a test
    cs_test = [r for r in split["test"] if r["language"] == "cs"]
    assert {r["level"] for r in cs_test} == {"level00", "level05"} and len(cs_test) == 80  # every fifth level
    assert {r["test_set"] for r in cs_test} == {"fillets-cs-unseen-levels"}
    heard = split["train"] + split["valid"]
    assert len(heard) == 320 and len(split["valid"]) == 11 and not {r["level"] for r in heard} & {"level00", "level05"}
    assert {r["language"] for r in heard} == {"cs"} and not {r["id"] for r in split["train"]} & {
        r["id"] for r in split["valid"]
    }


class FakeRHVoice:
    """rhvoice_wrapper's TTS, as demo_rhvoice uses it: WAV bytes at 24 kHz, a second per word of the text."""

    def __init__(self):
        self.asked = []

    def get(self, text, voice, format_, sets):
        import io

        import soundfile as sf

        self.asked.append((text, voice, sets))
        buffer = io.BytesIO()
        sf.write(buffer, np.full(24000 * len(text.split()), 0.1, np.float32), 24000, format="WAV")
        return buffer.getvalue()

    def join(self):
        pass


def test_rhvoice_s_other_voices_read_their_sources_training_and_held_out_sentences_with_those_labels(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_rhvoice

    def rows(prefix, texts):
        return [{"id": f"{prefix}_{i:05d}", "text": t, "phones": f"p{i}"} for i, t in enumerate(texts)]

    parts = {
        "festvox-ru": {"train": rows("ru", ["b a", "a"]), "test": rows("rut", ["c c c"])},
        "rhvoice": {"train": rows("rhv_azamat_0", ["z z", "y"]), "test": rows("rhv_nazgul_0", ["x x x x"])},
    }
    engine = FakeRHVoice()
    monkeypatch.setattr(demo_rhvoice, "text_to_speech", lambda work, spec: engine)
    made = demo_rhvoice.rhvoice_voice_parts(tmp_path, ["talgat", "irina", "anna"], parts, None)
    assert [r["id"] for r in made["train"]] == [
        "rhvru_anna_ru_00000",
        "rhvru_anna_ru_00001",
        "rhvru_irina_ru_00000",
        "rhvru_irina_ru_00001",
        "rhvky_talgat_00001",
        "rhvky_talgat_00000",
    ]  # fmt: skip  (festvox-ru by id, Kyrgyz by text)
    assert [(r["text"], r["phones"], r["voice"]) for r in made["train"][-2:]] == [
        ("y", "p1", "rhvoice-talgat"), ("z z", "p0", "rhvoice-talgat")]  # fmt: skip
    assert [(r["voice"], r["text"], r["duration"]) for r in made["test"]] == [
        ("rhvoice-anna", "c c c", 3.0),
        ("rhvoice-irina", "c c c", 3.0),
        ("rhvoice-talgat", "x x x x", 4.0),
    ]
    assert all(r["corpus"] == "rhvoice-voices" and Path(r["audio"]).is_file() for r in made["train"] + made["test"])
    rates = [sets["absolute_rate"] for _, _, sets in engine.asked]
    assert all(-0.3 <= r <= 0.3 for r in rates) and len(rates) == 9
    assert len(set(rates[:4])) == 4  # anna and irina read the two Russian sentences at four different rates
    monkeypatch.setattr(demo_rhvoice, "text_to_speech", lambda work, spec: pytest.fail("the engine started again"))
    assert demo_rhvoice.rhvoice_voice_parts(tmp_path, ["anna", "talgat", "irina"], parts, None) == made


def test_ukrainian_voices_read_kyrgyz_spelled_in_ukrainian_letters_labelled_with_what_the_letters_say(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_rhvoice import SPELLINGS, spelled

    from unispeech.g2p import phonemize

    def ukrainian(text):
        return spelled(text, SPELLINGS["uk"])

    text = "Баары жакшы, көңүл ачык! Аябай."
    letters, labels = ukrainian(text)
    assert letters == "баари джакши, кенґул ачик, аябай."  # a comma at each clause break, ө ү as е у, ң as нґ
    g2p = phonemize([text])[0]
    assert labels.split() == [said for p in g2p for said in {"N": ["N", "ɡ"], "oe": ["e"], "y": ["u"]}.get(p, [p])]
    assert labels.split()[1] == "ɑ:"  # a long vowel, written twice, keeps its length
    assert ukrainian("Мыңкан.")[0] == "минкан."  # ң before a velar: н alone (нґ would add a ґ)
    assert ukrainian("Ыя.") == ("ия.", "ɯ j ɑ")  # j and a vowel: one letter
    assert ukrainian("Объект.") == ("об'єкт.", "o b j e k t[")  # after a consonant an apostrophe keeps the j
    assert ukrainian("Бияан.") == ("біяан.", "b i j ɑ: n")  # a long one: я then а (яя would say j a j a)


def test_the_esperanto_voice_reads_kyrgyz_in_esperanto_letters_with_ы_ө_ү_labelled_as_the_i_e_u_it_says(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_rhvoice import SPELLINGS, spelled

    letters, labels = spelled("Жыл, көңүл! Чоочун шаар.", SPELLINGS["eo"])
    assert letters == "ĝil, kengul, ĉooĉun ŝaar."
    assert labels == "dZ i l k e N ɡ u l tS o: tS u n S ɑ: r"


def test_a_ukrainian_voice_reads_the_spelling_and_its_clips_carry_the_spellings_labels(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_rhvoice

    sentence = {"id": "rhv_azamat_0_00007", "text": "Көл.", "phones": "k oe l"}
    parts = {"rhvoice": {"train": [sentence], "test": []}}
    engine = FakeRHVoice()
    monkeypatch.setattr(demo_rhvoice, "text_to_speech", lambda work, spec: engine)
    made = demo_rhvoice.rhvoice_voice_parts(tmp_path, ["natalia", "talgat"], parts, None)
    assert [text for text, _, _ in engine.asked] == ["кел.", "Көл."]  # natalia the spelling, talgat the text
    assert [(r["id"], r["text"], r["phones"]) for r in made["train"]] == [
        ("rhvky_natalia_00007", "Көл.", "k e l"), ("rhvky_talgat_00007", "Көл.", "k oe l")]  # fmt: skip


def test_the_rhvoice_engine_is_a_built_one_or_a_source_tree_and_a_failed_download_says_what_to_pass(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import urllib.request

    import demo_rhvoice

    built = tmp_path / "engine" / "lib"
    built.mkdir(parents=True)
    (built / "libRHVoice.so").touch()
    assert demo_rhvoice.engine_library(tmp_path / "w", str(tmp_path / "engine")) == built / "libRHVoice.so"
    with pytest.raises(SystemExit, match="neither a built engine .* nor RHVoice's source"):
        demo_rhvoice.engine_library(tmp_path / "w", str(tmp_path))

    def offline(url, timeout):
        raise OSError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit, match="could not be downloaded .*no route to host.*pass --rhvoice-engine"):
        demo_rhvoice.engine_library(tmp_path / "w", None)
    assert not (tmp_path / "w" / "rhvoice-engine").exists()


def test_rhvoice_s_other_voices_enter_the_training_mix_as_made_and_test_each_voice(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import argparse

    import demo_sets

    from unispeech import augment
    from unispeech.data import write_manifest

    clip = {"audio": str(ROOT / "tests/data/rhvoice" / "rhv_azamat_0_00752.flac"), "text": "a", "phones": "ɑ"}
    voices = {"train": [{**clip, "id": "t1", "voice": "rhvoice-anna", "duration": 1.0}],
              "valid": [], "test": [{**clip, "id": "t2", "voice": "rhvoice-talgat", "duration": 1.0}]}  # fmt: skip
    monkeypatch.setattr(demo_sets, "source_parts", lambda work, args: ({"rhvoice-voices": voices}, {}))
    monkeypatch.setattr(augment, "augment_corpus", lambda *a, **k: pytest.fail("augmented RHVoice's other voices"))
    for name in ("train", "valid"):
        write_manifest([{**clip, "id": name, "duration": 1.0}], tmp_path / name / "manifest.jsonl")
    args = argparse.Namespace(voice_change=False, rhvoice=None, extra_data=[], real_repeat="rhvoice-voices")
    sets = demo_sets.real_voice_sets(tmp_path, args)
    mixed = [json.loads(line) for line in sets["train"].read_text().splitlines()]
    assert [r["id"] for r in mixed] == ["train", "t1", "t1"]  # twice: --real-repeat
    assert list(sets["tests"]) == ["test-rhvoice-talgat"]


def test_asterisk_prompts_split_by_language_and_family_and_never_mix_with_another_corpus(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_sets

    rows = [{"id": f"{corpus}{lang}{family}{i}", "language": lang, "level": family, "corpus": corpus}
            for corpus in ("asterisk", "fillets") for lang in ("it", "ru")
            for family in ("conf", "digits", "vm", "queue", "agent", "letters") for i in range(5)]  # fmt: skip
    split = demo_sets.speaker_splits([r for r in rows if r["corpus"] == "asterisk"], {"it"}, "unseen-prompts")
    assert {r["test_set"] for r in split["test"]} == {"asterisk-ru", "asterisk-it-unseen-prompts"}
    held = {r["level"] for r in split["test"] if r["language"] == "it"}
    assert held == {"agent", "vm"}  # every fifth family, sorted: none of its prompts is trained on
    assert {r["level"] for r in split["train"] + split["valid"]} == {"conf", "digits", "queue", "letters"}
    both = demo_sets.speaker_splits(rows, set())
    assert {r["test_set"] for r in both["test"]} == {"asterisk-it", "asterisk-ru", "fillets-it", "fillets-ru"}


def test_the_recipe_redoes_a_festival_reading_only_when_what_festival_is_asked_changed(tmp_path, monkeypatch):
    import unispeech.festival as festival

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_sets

    spelling = {"czech_dita": "v1"}  # what the fake front end asks each voice for a sentence: a spelling version
    made: list[tuple[str, str]] = []

    def speak(sentences, voice, out):
        made.append((voice, out.name.removeprefix(f"{voice}-")))
        return [{"id": f"{voice}-{i}", "audio": "x.flac", "text": s, "phones": "ɑ", "duration": 1.0}
                for i, s in enumerate(sentences)]  # fmt: skip

    monkeypatch.setattr(festival, "install", lambda voices: None)
    monkeypatch.setattr(festival, "LABELLING", 1)
    monkeypatch.setattr(festival, "request", lambda text, voice: f"{spelling.get(voice, 'v1')} {text}")
    monkeypatch.setattr(festival, "speak", speak)
    assert {v.language for v in festival.VOICES.values()} <= set(demo_sets.UNSEEN_TEST_SETS)  # each can be held out
    splits = {"train": [f"t{i}" for i in range(400)], "valid": [f"v{i}" for i in range(20)], "test": ["s"] * 120}
    sets = demo_sets.festival_sets(tmp_path, splits, 3, ["czech_dita", "czech_krb"])
    assert len(made) == 6 + len(festival.VOICES) - 2 and len(sets["train"]) == 6  # 3 splits per trained voice
    made.clear()
    assert demo_sets.festival_sets(tmp_path, splits, 3, ["czech_dita", "czech_krb"]) == sets and made == []
    spelling["czech_dita"] = "v2"  # a spelling fix: that voice's readings are stale, the others are kept
    demo_sets.festival_sets(tmp_path, splits, 3, ["czech_dita", "czech_krb"])
    assert sorted(made) == [("czech_dita", "test"), ("czech_dita", "train"), ("czech_dita", "valid")]
    made.clear()  # a reading kept by an older recipe (its sentences alone) is taken on them, as labelling 1
    old = tmp_path / "festival" / "czech_krb-train" / "sentences.json"
    old.write_text(json.dumps(json.loads(old.read_text())["sentences"]))
    demo_sets.festival_sets(tmp_path, splits, 3, ["czech_dita", "czech_krb"])
    assert made == []
    monkeypatch.setattr(festival, "LABELLING", 2)  # new labelling rules: every reading is made anew
    demo_sets.festival_sets(tmp_path, splits, 3, ["czech_dita", "czech_krb"])
    assert len(made) == 6 + len(festival.VOICES) - 2


def test_the_recipe_gives_each_mbrola_training_voice_its_own_sentences_and_held_out_voices_the_same_ones(
    tmp_path, monkeypatch
):
    import unispeech.mbrola as mbrola

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_sets

    def speak(sentences, voice, root, out):
        if voice == "de4" and out.name.endswith("valid"):
            raise mbrola.MbrolaError("said none")  # a small set the voice could not say: empty, not fatal
        return [{"id": f"{voice}-{i}", "audio": "x.flac", "text": s, "phones": "ɑ", "duration": 1.0}
                for i, s in enumerate(sentences)]  # fmt: skip

    monkeypatch.setattr(mbrola, "fetch", lambda voices, dest: dest)
    monkeypatch.setattr(mbrola, "speak", speak)
    splits = {"train": [f"t{i}" for i in range(100)], "valid": [f"v{i}" for i in range(40)]}
    splits["test"] = [f"s{i}" for i in range(200)]
    parts = demo_sets.mbrola_sets(tmp_path, splits, ["tr1", "tr2", "de6", "de4"], ["de6", "de4"], 10)
    train = {v: {r["text"] for r in parts["train"] if r["id"].startswith(v)} for v in ("de6", "de4")}
    assert len(train["de6"]) == len(train["de4"]) == 10 and not train["de6"] & train["de4"]
    assert {r["id"].split("-")[0] for r in parts["valid"]} == {"de6"}
    tests = {}
    for r in parts["test"]:
        tests.setdefault(r["test_set"], {}).setdefault(r["id"].split("-")[0], set()).add(r["text"])
    assert set(tests) == {"mbrola-turkish", "mbrola-seen-voices"}
    assert (
        tests["mbrola-turkish"]["tr1"] == tests["mbrola-turkish"]["tr2"] and len(tests["mbrola-turkish"]["tr1"]) == 120
    )
    assert not tests["mbrola-seen-voices"]["de6"] & tests["mbrola-seen-voices"]["de4"]
    more = demo_sets.mbrola_sets(tmp_path / "b", splits, ["de6", "de4", "pl1", "cr1", "hu1"], ["de6", "de4", "pl1"],
                                  10, tuning=["cr1", "hu1"])  # fmt: skip
    assert {r["text"] for r in more["train"] if r["id"].startswith("de4")} == train["de4"]  # a voice added: kept
    tuning = {v: {r["text"] for r in more["tuning"] if r["id"].startswith(v)} for v in ("cr1", "hu1")}
    assert tuning["cr1"] == tuning["hu1"] and tuning["cr1"] <= set(splits["valid"]) and len(tuning["cr1"]) == 40
    assert not any(r["id"].startswith(("cr1", "hu1")) for split in ("train", "valid", "test") for r in more[split])


@pytest.mark.parametrize(
    "roles, message",
    [
        (["--festival", "--mbrola-train", "de6,hu1", "--mbrola-tuning", "hu1"], "not two of them"),
        (["--mbrola", "tr1", "--mbrola-tuning", "tr1,cr1", "--rhvoice", "x"], "not two of them"),
        (["--mbrola-tuning", "cr1"], "beside the real-voice stage"),
        (["--asterisk", "fetch"], "beside the real-voice stage"),
        (["--asterisk-train", "it"], "with --asterisk"),
        (["--fotaq", "fetch"], "beside the real-voice stage"),
        (["--fotaq-train", "--rhvoice", "x"], "give --fotaq too"),
        (["--rhvoice-voices", "anna", "--rhvoice", "x"], "reads --festvox-ru's sentences: give --festvox-ru too"),
        (["--rhvoice-voices", "talgat,bob", "--rhvoice", "x"], "--rhvoice-voices bob: not one of aleksandr,"),
        (
            ["--asterisk", "fetch", "--asterisk-train", "it,de"],
            "--asterisk-train takes some of en,es,fr,it,ru,es-co,fr-armelle",
        ),
    ],
)
def test_the_recipe_refuses_a_voice_in_two_roles_a_test_source_without_a_real_voice_stage_or_an_unknown_language(
    tmp_path, monkeypatch, capsys, roles, message
):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    monkeypatch.setattr(sys, "argv", ["demo_model.py", "--work", str(tmp_path / "w"), *roles])
    with pytest.raises(SystemExit) as exit:
        demo_model.main()
    assert exit.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_the_cards_first_sentence_names_the_real_speakers_trained_on_by_source(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_card import _listed_on, real_speakers_heard

    rows = [{"corpus": "klettres", "language": lang} for lang in ("uk", "da", "uk")]
    rows += [{"corpus": "fillets", "language": lang} for lang in ("nl", "cs", "nl")]
    rows += [{"corpus": "festival", "voice": "festival-czech_dita"}]
    rows += [{"corpus": "asterisk", "language": lang} for lang in ("it", "es")]
    rows += [{"corpus": "fotaq", "voice": f"fotaq-{v}"} for v in ("joe", "faye", "joe")]
    rows += [{"corpus": "mbrola", "voice": f"mbrola-{v}"} for v in ("de4", "lt1", "lt2")] + [{"corpus": "espeak-ng"}]
    rows += [{"corpus": "rhvoice-voices", "voice": f"rhvoice-{v}"} for v in ("talgat", "anna", "talgat")]
    assert real_speakers_heard(rows) == [
        "two real speakers of other languages saying letters and syllables (KLettres: da, uk)",
        "actors speaking Czech and Dutch dialogue (Fish Fillets)",
        "professional speakers saying Mexican Spanish and Italian telephone prompts (Asterisk)",
        "actors voicing two characters in English (Flight of the Amazon Queen)",
        "RHVoice's voices of two more real speakers: anna (Russian) and talgat (Tatar, reading Kyrgyz)",
        "Festival's voices of one real speaker (Czech) reading Kyrgyz",
        "MBROLA's voices of three more (German and Lithuanian) given its phones",
    ]
    assert real_speakers_heard([{"corpus": "espeak-ng"}]) == [] and _listed_on([]) == ""


def test_the_card_says_what_each_rhvoice_voice_read_and_how_it_is_labelled(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_rhvoice
    from demo_rhvoice import test_set_descriptions, voices_source

    rows = [{"corpus": "rhvoice-voices", "voice": f"rhvoice-{v}"} for v in ("natalia", "anna", "anatol", "anna")]
    line = voices_source(rows + [{"corpus": "rhvoice", "voice": "rhvoice-azamat"}])
    assert "the Russian anna reading festvox-ru's training sentences, labelled with festvox-ru's mapped phones" in line
    assert (
        "the Ukrainian anatol, natalia reading RHVoice Kyrgyz's training sentences spelled in Ukrainian letters" in line
    )
    assert "azamat" not in line and "talgat" not in line and "Tatar" not in line
    assert line.endswith(f"licences: LGPL-2.1 (anatol, natalia); {demo_rhvoice.VOICES['anna'].licence} (anna)")
    kind, what = test_set_descriptions()["test-rhvoice-anatol"]
    assert kind.startswith("RHVoice Anatol (vocoded real male Ukrainian speaker) reading RHVoice Kyrgyz's held-out")
    assert what == "unseen sentences"


def test_the_card_gives_the_share_of_phones_right_for_each_unseen_real_speaker_set(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_card import real_unseen_text, speaker_corpora_held_out

    names = ["test", "test-fillets-nl", "test-asterisk-ru", "test-asterisk-it-unseen-prompts", "test-asterisk-es-co"]
    text = real_unseen_text(
        {"phones_right_greedy": dict(zip(names, (0.99, 0.15, 0.4, 0.65, 0.37)))}
    )  # the trained speaker's held-out prompts and espeak-ng are not unseen
    assert (
        "(greedy): Fish Fillets' Dutch actors 15.0 %, Asterisk's Russian speaker 40.0 % and Asterisk's Colombian "
        "Spanish speaker 37.0 %." in text
    )
    assert real_unseen_text({"phones_right_greedy": {"test": 0.99}}) == ""
    assert real_unseen_text({}) == ""  # a summary from before the field: no paragraph
    held_out = speaker_corpora_held_out([{"corpus": "asterisk"}, {"corpus": "espeak-ng"}])
    assert held_out == "; Asterisk's prompts of every fifth family in each language trained on, and all of its others"


def test_the_cards_data_table_counts_a_repeated_clip_once_and_says_it_is_repeated(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_card_data import data_table

    real = [{"corpus": "klettres", "audio": f"k{i}.flac", "duration": 1800.0} for i in range(2)]
    rows = [{"audio": "e.flac", "duration": 3600.0}] + real * 3  # --real-repeat twice over
    table = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in data_table(rows).splitlines()[2:]}
    assert table["espeak-ng"][1:3] == ["1", "1.00"] and table["klettres"][1:3] == ["2", "1.00"]
    assert table["klettres"][3].endswith("(each clip 3 times in the training mix) |")
    assert "times in the training mix" not in table["espeak-ng"][3]


def test_the_card_names_the_unseen_voices_the_phone_lm_was_tuned_on_with_their_licence(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_card import decoding_text

    from unispeech.mbrola import LICENSE

    lm = {"order": 4, "ngrams": 9, "sentences": 3, "lm_weight": 0.5, "insertion_bonus": 2.0, "tuning_per_greedy": 0.1,
          "tuned_on": {"valid": 150, "valid-unseen-voices": 80}, "tuning_per_beam_lm": 0.09}  # fmt: skip
    assert "cr1" not in decoding_text(lm) and LICENSE not in decoding_text(lm)  # older LMs: no such set
    text = decoding_text({**lm, "unseen_voices": ["mbrola-cr1"]})
    assert "`valid-unseen-voices` (80)" in text and "cr1 (Croatian; Debian `mbrola-cr1`)" in text and LICENSE in text


def test_the_recipe_retunes_the_phone_lm_when_its_tuning_sets_change(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_lm
    import demo_model

    from unispeech.beam import DECODING_FILE

    model, work = tmp_path / "model-real", tmp_path
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"w")
    (model / DECODING_FILE).write_text("{}")
    (work / "valid").mkdir()
    (work / "valid" / "manifest.jsonl").write_text("")
    (work / "phone-lm-model-real.json").write_text(json.dumps({"tuned_on": {"valid": 150}}))
    tuned = []
    monkeypatch.setattr(demo_lm, "add_phone_lm", lambda m, w, order: tuned.append(1) or {"tuned_on": {"new": 1}})
    assert demo_model.phone_lm(model, work, 4) == {"tuned_on": {"valid": 150}} and not tuned  # made: kept
    (work / "valid-unseen-voices").mkdir()
    (work / "valid-unseen-voices" / "manifest.jsonl").write_text("")
    assert demo_model.phone_lm(model, work, 4) == {"tuned_on": {"new": 1}} and tuned == [1]  # a new tuning set


def test_a_stage_trained_to_its_updates_is_not_resumed_and_one_short_of_them_is(tmp_path, monkeypatch):
    """Re-running the recipe (to bundle, say) must not load a stage's training audio again only to find it done."""
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    calls = []
    monkeypatch.setattr(demo_model, "run", calls.append)
    out = tmp_path / "model-real"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-0000250.pt").write_bytes(b"c")
    demo_model.train_stage(tmp_path / "init", tmp_path / "r.toml", out, 250, tmp_path, [])
    assert len(calls) == 1 and "--resume" in calls[0]  # its model was never exported: the run was cut short
    (out / "model.safetensors").write_bytes(b"w")
    demo_model.train_stage(tmp_path / "init", tmp_path / "r.toml", out, 250, tmp_path, [])
    assert len(calls) == 1
    demo_model.train_stage(tmp_path / "init", tmp_path / "r.toml", out, 500, tmp_path, [])
    assert len(calls) == 2 and calls[1][calls[1].index("--max-updates") + 1] == "500" and "--resume" in calls[1]


def test_the_recipe_with_data_only_makes_every_set_and_names_them_without_training(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    made = []
    monkeypatch.setattr(demo_model, "synthesize_espeak_sets", lambda work, copies: made.append("espeak"))
    sets = {"train": tmp_path / "train-mixed.jsonl", "valid": tmp_path / "valid-mixed.jsonl", "left_out": {}}
    monkeypatch.setattr(demo_model, "real_voice_sets", lambda w, a: made.append("real") or {**sets, "tests": {
        "test-rhvoice-azamat": tmp_path / "azamat.jsonl"}})  # fmt: skip
    monkeypatch.setattr(demo_model, "train_stage", lambda *a, **k: pytest.fail("trained with --data-only"))
    work = tmp_path / "w"
    monkeypatch.setattr(sys, "argv", ["demo_model.py", "--work", str(work), "--rhvoice", "x", "--data-only"])
    demo_model.main()
    named = json.loads(capsys.readouterr().out)
    assert made == ["espeak", "real"] and not (work / "summary.json").exists()
    assert named["train"] == str(sets["train"]) and named["test-rhvoice-azamat"] == str(tmp_path / "azamat.jsonl")
    assert named["test-unseen-voice"] == str(work / "test-unseen-voice" / "manifest.jsonl")


def test_the_recipe_trains_on_the_fish_fillets_and_asterisk_languages_asked_for_and_tests_the_others(
    tmp_path, monkeypatch
):
    import argparse

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_sets

    from unispeech import augment
    from unispeech.data import write_manifest

    from .test_corpora import asterisk_folder, fillets_folder

    monkeypatch.setattr(
        augment, "augment_corpus", lambda rows, out, *a, **k: write_manifest(rows, out / "manifest.jsonl")
    )
    czech = {f"level{n}/l{n}-m-{i}": "Máma volá." for n in range(6) for i in range(2)}
    folder = fillets_folder(tmp_path, {"cs": czech, "nl": {"a/a-v-moe": "Ik ben moe."}})
    work = tmp_path / "w"
    for split in ("train", "valid"):
        (work / split).mkdir(parents=True)
        (work / split / "manifest.jsonl").write_text("", encoding="utf-8")
    sources = dict(rhvoice=None, festvox_ru=None, festival=False, mbrola=None, mbrola_train=None, mbrola_tuning=None,
                   rhvoice_voices=None)  # fmt: skip
    italian = {f"f{n}-x{i}": 0.3 for n in range(6) for i in range(2)}
    prompts = asterisk_folder(
        tmp_path,
        {"it_IT_m_Carlo": italian, "ru_RU_f_IvrvoiceRU": {"auth-thankyou": 0.3}},
        {"it": [f"{uid}: Grazie." for uid in italian], "ru": ["auth-thankyou: Спасибо."]},
    )
    args = argparse.Namespace(**sources, klettres=None, fotaq=None, fillets=str(folder), fillets_train="cs",
                              voice_change=False, formant_ratios=FORMANT_RATIOS, asterisk=str(prompts),
                              asterisk_train="it", extra_data=[], real_copies=1,
                              real_repeat="fillets=3,asterisk")  # fmt: skip
    sets = demo_sets.real_voice_sets(work, args)
    assert set(sets["tests"]) == {
        "test-fillets-cs-unseen-levels", "test-fillets-nl", "test-asterisk-it-unseen-prompts", "test-asterisk-ru"
    }  # fmt: skip

    def read(path):
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]

    assert {r["level"] for r in read(sets["tests"]["test-asterisk-it-unseen-prompts"])} == {"f0", "f5"}
    prompts_trained = read(work / "train-asterisk" / "manifest.jsonl")
    assert len(prompts_trained) == 7 and {r["language"] for r in prompts_trained} == {"it"}
    assert {r["level"] for r in read(sets["tests"]["test-fillets-cs-unseen-levels"])} == {"level0", "level5"}
    trained = read(work / "train-fillets" / "manifest.jsonl")
    assert len(trained) == 7 and {r["level"] for r in trained} == {"level1", "level2", "level3", "level4"}
    assert len(read(sets["train"])) == 7 * 3 + 7 * 2  # --real-repeat fillets=3,asterisk: copies thrice and twice


def test_the_recipe_tests_on_the_klettres_languages_it_does_not_train_on(tmp_path, monkeypatch):
    import argparse

    import soundfile as sf

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_sets

    from unispeech import augment
    from unispeech.data import write_manifest

    def augment_corpus(rows, out, *args, **kwargs):
        augmented.extend(rows)
        return write_manifest(rows, Path(out) / "manifest.jsonl")

    monkeypatch.setattr(augment, "augment_corpus", augment_corpus)
    augmented, klettres = [], tmp_path / "klettres"
    for language, names in (("it", ("ba", "ce", "zi")), ("es", ("ka",))):
        (klettres / language / "syllab").mkdir(parents=True)
        for name in names:
            sf.write(klettres / language / "syllab" / f"{name}.ogg", np.zeros(8000, np.float32), 16000, format="OGG")
        sounds = "".join(f'<sound name="{n.upper()}" file="{language}/syllab/{n}.ogg" />\n' for n in names)
        (klettres / language / "sounds.xml").write_text(f"<klettres>\n{sounds}</klettres>\n", encoding="utf-8")
    work = tmp_path / "w"
    for split in ("train", "valid"):
        (work / split).mkdir(parents=True)
        (work / split / "manifest.jsonl").write_text("", encoding="utf-8")
    sources = dict(rhvoice=None, festvox_ru=None, festival=False, mbrola=None, mbrola_train=None, mbrola_tuning=None,
                   rhvoice_voices=None)  # fmt: skip
    args = argparse.Namespace(**sources, klettres=str(klettres), klettres_train=None, fillets=None, asterisk=None,
                              fotaq=None, voice_change=False, formant_ratios=FORMANT_RATIOS, extra_data=[],
                              real_copies=1, real_repeat=None)  # fmt: skip
    sets = demo_sets.real_voice_sets(work, args)
    assert list(sets["tests"]) == ["test-klettres"] and sets["left_out"] == {"klettres unlabelled": 1}  # zi: dz
    rows = [json.loads(line) for line in sets["tests"]["test-klettres"].read_text(encoding="utf-8").splitlines()]
    assert sorted((r["text"], r["phones"]) for r in rows) == [("BA", "b ɑ"), ("CE", "tS e"), ("KA", "q ɑ")]
    assert not augmented  # a test set only: nothing trained on

    args.klettres_train = "es"
    sets = demo_sets.real_voice_sets(work, args)
    rows = [json.loads(line) for line in sets["tests"]["test-klettres"].read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} == {"it"} and [r["text"] for r in augmented] == ["KA"]
    mixed = sets["train"].read_text(encoding="utf-8").splitlines()
    args.real_repeat = "klettres"  # weighted up: the same copies once more in the training mix
    twice = demo_sets.real_voice_sets(work, args)["train"].read_text(encoding="utf-8").splitlines()
    assert len(mixed) == 1 and twice == mixed * 2
    args.real_repeat = "festvox-ru"
    with pytest.raises(SystemExit, match="--real-repeat festvox-ru: not a real-voice source trained on here"):
        demo_sets.real_voice_sets(work, args)


@pytest.mark.parametrize("spec", ["klettres=1", "klettres=two", "klettres=", "klettres=2.5"])
def test_the_recipe_refuses_a_weight_that_is_not_a_whole_number_of_two_or_more(spec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    argv = ["demo_model.py", "--work", str(tmp_path / "w"), "--klettres", "fetch", "--klettres-train", "da"]
    monkeypatch.setattr(sys, "argv", argv + ["--real-repeat", spec])
    with pytest.raises(SystemExit, match=f"--real-repeat {spec}: give SOURCE or SOURCE=N with a whole N of 2 or more"):
        demo_model.main()
    assert not (tmp_path / "w").exists()  # refused before any work


@pytest.mark.parametrize("spec", ["0.9", "1.1,1.2", "0.8,0.9", "0.4,1.2", "0.8,x"])
def test_the_recipe_refuses_a_formant_range_that_is_not_two_numbers_around_one(spec, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    monkeypatch.setattr(sys, "argv", ["demo_model.py", "--work", str(tmp_path / "w"), "--formant-ratios", spec])
    with pytest.raises(SystemExit) as exit:
        demo_model.main()
    assert exit.value.code == 2 and f"--formant-ratios: {spec!r}" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_the_recipe_reads_a_formant_range_and_the_card_says_it(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_card
    import demo_model

    args = demo_model.arguments().parse_args(["--formant-ratios", "0.85,1.25"])
    assert args.formant_ratios == (0.85, 1.25)
    assert demo_model.arguments().parse_args([]).formant_ratios == FORMANT_RATIOS
    text = demo_card.voice_change_text({"voice_change": True, "formant_ratios": [0.85, 1.25]})
    assert "formants x0.85-1.25" in text


@pytest.mark.parametrize("train", ["xx", ",".join(["cs", "da", "de", "en", "en_GB", "es", "fr", "hu", "it", "lt", "nb",
                                                  "nl", "pt_BR", "ru", "tn", "uk"])])  # fmt: skip
def test_the_recipe_refuses_klettres_training_languages_it_does_not_know_or_all_of_them(
    tmp_path, monkeypatch, capsys, train
):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import demo_model

    work = tmp_path / "w"
    monkeypatch.setattr(
        sys, "argv", ["demo_model.py", "--work", str(work), "--klettres", "x", "--klettres-train", train]
    )
    with pytest.raises(SystemExit) as exit:
        demo_model.main()
    assert exit.value.code == 2 and "--klettres-train takes some of" in capsys.readouterr().err and not work.exists()


def test_demo_compare_gives_a_row_per_set_with_both_decodings_and_the_verdict(tmp_path, monkeypatch):
    """recipes/demo_compare.py's table: per set both models' PERs with the LM and greedy, B - A with its paired
    interval, a verdict only where the interval leaves out zero."""
    import random

    from .test_paired import evaluation, garbled, references

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_compare import table

    refs, rng = references(200), random.Random(1)
    worse, better, same = ([garbled(r, rate, rng) for r in refs] for rate in (0.3, 0.1, 0.2))
    for name, own in (("A", worse), ("B", better)):
        evaluation(tmp_path / "compare" / f"{name}-own" / "set", refs, own)
        evaluation(tmp_path / "compare" / f"{name}-greedy" / "set", refs, same)
    header, rule, row = table(tmp_path, ("A", "B"), ["set"]).splitlines()
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert header.startswith("| set | utterances | A LM / greedy | B LM / greedy |") and rule.count("|") == 8
    assert cells[:2] == ["set", "200"]
    assert cells[4].endswith("better") and cells[4].startswith("-")  # B garbles a third as much with its LM
    assert cells[5] == "+0.00 [+0.00, +0.00]" and cells[6] == "+0.00 [+0.00, +0.00]"  # greedy: the same phones


def test_demo_compare_takes_the_optional_unseen_sets_only_where_the_work_folder_has_them(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    from demo_compare import OPTIONAL_SETS, UNSEEN_SETS, default_sets

    assert default_sets(tmp_path) == [s for s in UNSEEN_SETS if s not in OPTIONAL_SETS]
    (tmp_path / "test-fotaq").mkdir()
    (tmp_path / "test-fotaq" / "manifest.jsonl").write_text("", encoding="utf-8")
    assert default_sets(tmp_path) == list(UNSEEN_SETS) and "test-fotaq" in UNSEEN_SETS
