"""Forced alignment: the Viterbi path, Praat TextGrids that a third-party reader parses back, clear refusals."""

import numpy as np
import pytest

import unispeech
from unispeech.align import align, viterbi
from unispeech.formats import textgrid

from .conftest import run_main, speechlike

BLANK = 5


def peaked(path: list[int], vocab: int = 6) -> np.ndarray:
    """Log-probs that strongly prefer the given token per frame."""
    lp = np.full((len(path), vocab), np.log(0.02))
    lp[np.arange(len(path)), path] = np.log(0.9)
    return lp


def test_viterbi_recovers_the_frames_of_each_token():
    frames = [BLANK, 1, 1, BLANK, 2, 2, 2, BLANK, 2, BLANK]
    assert viterbi(peaked(frames), [1, 2, 2], BLANK, 0.02) == [(1, 2), (4, 6), (8, 8)]


def test_viterbi_forces_a_blank_between_repeated_tokens():
    frames = [1, 1, 1, 1]  # a model that never emits blank still has to separate the repeat
    spans = viterbi(peaked(frames), [1, 1], BLANK, 0.02)
    assert spans[0][1] < spans[1][0] - 1


def test_viterbi_refuses_too_short_audio():
    with pytest.raises(ValueError, match="too short for the text"):
        viterbi(peaked([1, 2]), [1, 2, 3], BLANK, 0.02)
    with pytest.raises(ValueError, match="too short"):
        viterbi(peaked([1, 1, 1]), [1, 1, 1], BLANK, 0.02)  # repeats need blanks: 5 frames


def test_textgrid_parses_back_with_praatio(tmp_path):
    from praatio import textgrid as praat

    tiers = {
        "phones": [(0.1, 0.25, "q", 0.9), (0.25, 0.4, "ɯ", 0.8), (0.5, 0.7, "r", 0.7)],
        "words": [(0.1, 0.7, "кыр", 0.8)],
    }
    path = tmp_path / "a.TextGrid"
    path.write_text(textgrid(tiers, 1.0), encoding="utf-8")
    grid = praat.openTextgrid(str(path), includeEmptyIntervals=False)
    assert grid.tierNames == ("phones", "words")
    phones = [(e.start, e.end, e.label) for e in grid.getTier("phones").entries]
    assert phones == [(s, e, label) for s, e, label, _ in tiers["phones"]]
    assert [(e.start, e.end, e.label) for e in grid.getTier("words").entries] == [(0.1, 0.7, "кыр")]


def test_align_output_is_consistent_and_bad_text_is_refused(tiny_model_dir):
    model = unispeech.load_model(tiny_model_dir, dtype="float32")
    wav = speechlike(2.0)
    result = align(model, wav, text="Салам, эки дос!", sampling_rate=16000)
    assert [p.label for p in result.phones] == unispeech.phonemize("Салам, эки дос!")
    assert [w.label for w in result.words] == ["Салам", "эки", "дос"]
    starts = [p.start for p in result.phones]
    assert starts == sorted(starts) and all(p.start < p.end <= result.duration for p in result.phones)
    assert result.words[0].start == result.phones[0].start and result.words[-1].end == result.phones[-1].end
    with pytest.raises(ValueError, match="no pronounceable"):
        align(model, wav, text="... !!! ---", sampling_rate=16000)
    with pytest.raises(ValueError, match="too short for the text"):
        align(model, speechlike(0.3), text="Кыргызстан сонун өлкө, тоолору бийик", sampling_rate=16000)


def test_align_command_writes_a_textgrid(tiny_model_dir, tmp_path, capsys):
    import soundfile as sf
    from praatio import textgrid as praat

    from unispeech.cli import main

    clip = tmp_path / "a.wav"
    sf.write(clip, speechlike(2.0), 16000)
    out = tmp_path / "a.TextGrid"
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "align",
                str(clip),
                "--text",
                "эки дос",
                "--model",
                str(tiny_model_dir),
                "--format",
                "textgrid",
                "--output",
                str(out),
            ]
        )
    assert stop.value.code == 0
    grid = praat.openTextgrid(str(out), includeEmptyIntervals=False)
    assert [e.label for e in grid.getTier("phones").entries] == unispeech.phonemize("эки дос")
    with pytest.raises(SystemExit) as stop:
        main(["align", str(clip), "--text", "???", "--model", str(tiny_model_dir)])
    assert stop.value.code == 2 and "no pronounceable" in capsys.readouterr().err


def test_align_manifest_batch_form(tiny_model_dir, tmp_path, capsys):
    import json

    import soundfile as sf
    from praatio import textgrid as praat

    from unispeech.cli import main

    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", speechlike(1.5), 16000)
    (tmp_path / "bad.wav").write_text("not audio")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(r, ensure_ascii=False) + "\n"
            for r in [
                {"audio": "a.wav", "text": "эки дос"},
                {"audio": "b.wav", "phones": "s ɑ l ɑ m"},
                {"audio": "bad.wav", "text": "салам"},
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "align",
                "--manifest",
                str(manifest),
                "--out-dir",
                str(tmp_path / "out"),
                "--format",
                "textgrid",
                "--model",
                str(tiny_model_dir),
            ]
        )
    assert stop.value.code == 1  # one utterance could not be aligned, the others were
    assert "skipped bad" in capsys.readouterr().err
    grid = praat.openTextgrid(str(tmp_path / "out" / "b.TextGrid"), includeEmptyIntervals=False)
    assert [e.label for e in grid.getTier("phones").entries] == "s ɑ l ɑ m".split()
    assert (tmp_path / "out" / "a.TextGrid").is_file() and not (tmp_path / "out" / "bad.TextGrid").exists()


def test_align_manifest_names_files_by_the_manifest_ids_kept_inside_the_folder(tiny_model_dir, tmp_path, capsys):
    import json

    import soundfile as sf

    sf.write(tmp_path / "a.wav", speechlike(1.0), 16000)
    ids = ["fr/a-0", "../up", "Same", "same", ".hidden"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "audio": "a.wav", "phones": "s ɑ"}) + "\n" for i in ids))
    out = tmp_path / "out"
    code, _, err = run_main(
        ["align", "--manifest", str(manifest), "--out-dir", str(out), "--model", str(tiny_model_dir)], capsys
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["fr_a-0.json", "_._up.json", "Same.json", "same#2.json", "_hidden.json"]
    )
    assert not (tmp_path / "up.json").exists()
