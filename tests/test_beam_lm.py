"""Phone LM (Witten-Bell, ARPA) and beam search; a beam of one without LM is exactly greedy decoding."""

import math

import numpy as np
import pytest

from unispeech.beam import BeamOptions, beam_search
from unispeech.decoding import greedy_decode
from unispeech.lm import PhoneLM, build_lm
from unispeech.vocab import phone_vocabulary

from .conftest import PHONES

VOCAB = phone_vocabulary(PHONES)


@pytest.mark.parametrize("seed", range(20))
def test_beam_one_without_lm_equals_greedy(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(120, len(VOCAB))).astype(np.float32) * rng.uniform(0.5, 4)
    logits[:, VOCAB.blank_id] += rng.uniform(0, 3)  # blank-heavy, as real CTC output is
    lm = build_lm([list(rng.choice(PHONES, 8)) for _ in range(30)], order=2)
    greedy = greedy_decode(logits, VOCAB, 0.02)
    for model in (None, lm):
        beam = beam_search(logits, VOCAB, 0.02, model, BeamOptions(beam_width=1, lm_weight=0.0, token_threshold=1e-6))
        assert beam == greedy


def test_lm_pulls_an_ambiguous_frame_towards_likely_phones():
    a, b = VOCAB.ids["ɑ"], VOCAB.ids["ɯ"]
    logits = np.full((3, len(VOCAB)), -10.0, np.float32)
    logits[0, VOCAB.ids["q"]] = 5
    logits[1, a], logits[1, b] = 4.0, 4.2  # acoustically ɯ by a hair
    logits[2, VOCAB.blank_id] = 5
    lm = build_lm([["q", "ɑ"]] * 20 + [["q", "ɯ", "l"]], order=2)
    assert beam_search(logits, VOCAB, 0.02, None, BeamOptions(beam_width=4)).phones == ["q", "ɯ"]
    assert beam_search(logits, VOCAB, 0.02, lm, BeamOptions(beam_width=4, lm_weight=1.0)).phones == ["q", "ɑ"]


def test_lm_distributions_sum_to_one_and_arpa_round_trips(tmp_path):
    sentences = [["ɑ", "l", "ɑ"], ["q", "ɑ", "l"], ["ɑ", "q"], ["l", "l", "ɑ", "q"]]
    lm = build_lm(sentences, order=3)
    outcomes = sorted(lm.vocab - {"<s>"})
    for history in [("<s>",), ("<s>", "ɑ"), ("ɑ", "l"), ("q",), ("never", "seen")]:
        assert sum(math.exp(lm.logprob(history, w)) for w in outcomes) == pytest.approx(1.0, abs=1e-6)
    path = tmp_path / "lm.arpa"
    lm.save(path)
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=") and "\\3-grams:" in text and text.rstrip().endswith("\\end\\")
    again = PhoneLM.load(path)
    for s in sentences + [["q", "q", "l"]]:
        assert again.sentence_logprob(s) == pytest.approx(lm.sentence_logprob(s), abs=1e-4)


def test_bad_lm_files(tmp_path):
    empty = tmp_path / "empty.arpa"
    empty.write_text("")
    with pytest.raises(ValueError, match="holds no n-grams"):
        PhoneLM.load(empty)
    with pytest.raises(ValueError, match="no such language model"):
        PhoneLM.load(tmp_path / "missing.arpa")
    garbage = tmp_path / "garbage.arpa"
    garbage.write_text("hello world\n")
    with pytest.raises(ValueError, match="not an ARPA file"):
        PhoneLM.load(garbage)
    with pytest.raises(ValueError, match="no phone sequences"):
        build_lm([[], []])


def test_lm_build_and_beam_transcribe_commands(tiny_model_dir, tmp_path, capsys):
    import soundfile as sf

    from unispeech.cli import main

    from .conftest import speechlike

    text = tmp_path / "sentences.txt"
    text.write_text("Салам.\nid1\tЭки дос келди.\n", encoding="utf-8")
    lm_path = tmp_path / "ky.arpa"
    with pytest.raises(SystemExit) as stop:
        main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(lm_path)])
    assert stop.value.code == 0 and "from 2 sentences" in capsys.readouterr().out
    assert PhoneLM.load(lm_path).order == 3
    clip = tmp_path / "a.wav"
    sf.write(clip, speechlike(1.0), 16000)
    base = ["transcribe", str(clip), "--model", str(tiny_model_dir), "--dtype", "float32"]
    with pytest.raises(SystemExit):
        main(base)
    greedy = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(base + ["--decoder", "beam", "--beam-width", "1", "--lm", str(lm_path), "--lm-weight", "0"])
    assert capsys.readouterr().out == greedy
    empty = tmp_path / "empty.arpa"
    empty.write_text("")
    with pytest.raises(SystemExit) as stop:
        main(base + ["--decoder", "beam", "--lm", str(empty)])
    assert stop.value.code == 2 and "holds no n-grams" in capsys.readouterr().err


def model_with_its_own_lm(tiny_model_dir, tmp_path, options: BeamOptions):
    import shutil

    from unispeech.beam import save_folder_decoder

    folder = tmp_path / "with-lm"
    shutil.copytree(tiny_model_dir, folder)
    lm = build_lm([["ɑ", "l", "ɑ"], ["q", "ɑ", "l"], ["l", "q"]], order=2)
    save_folder_decoder(folder, options, lm)
    return folder, lm


def test_a_model_folder_with_its_own_lm_decodes_with_it_by_default(tiny_model_dir, tmp_path):
    from unispeech import GreedyDecoder, load_model
    from unispeech.beam import BeamSearchDecoder

    options = BeamOptions(beam_width=3, lm_weight=0.7, insertion_bonus=1.5)
    folder, lm = model_with_its_own_lm(tiny_model_dir, tmp_path, options)
    decoder = load_model(folder, dtype="float32").decoder
    assert isinstance(decoder, BeamSearchDecoder) and decoder.options == options
    assert decoder.lm.sentence_logprob(["q", "ɑ", "l"]) == pytest.approx(lm.sentence_logprob(["q", "ɑ", "l"]), 1e-4)
    assert isinstance(load_model(folder, dtype="float32", decoder=GreedyDecoder()).decoder, GreedyDecoder)
    assert isinstance(load_model(tiny_model_dir, dtype="float32").decoder, GreedyDecoder)  # no LM: greedy


def test_decoder_auto_greedy_and_beam_on_the_command_line(tiny_model_dir, tmp_path, capsys):
    import soundfile as sf

    from unispeech.cli import main

    from .conftest import speechlike

    # weight 0, one hypothesis: the folder's own decoding then equals greedy, so outputs must match
    folder, _ = model_with_its_own_lm(tiny_model_dir, tmp_path, BeamOptions(beam_width=1, lm_weight=0.0))
    clip = tmp_path / "a.wav"
    sf.write(clip, speechlike(1.0), 16000)
    base = ["transcribe", str(clip), "--model", str(folder), "--dtype", "float32", "--verbose"]
    outputs = {}
    for decoder in ("auto", "greedy"):
        with pytest.raises(SystemExit) as stop:
            main(base + ["--decoder", decoder])
        captured = capsys.readouterr()
        assert stop.value.code == 0
        outputs[decoder] = captured.out
        assert ("LM of order 2" in captured.err) == (decoder == "auto")
    assert outputs["auto"] == outputs["greedy"]
    with pytest.raises(SystemExit) as stop:
        main(base + ["--lm", str(folder / "phone_lm.arpa")])
    assert stop.value.code == 2 and "--lm needs --decoder beam" in capsys.readouterr().err


def test_a_broken_decoding_file_is_a_clear_error(tiny_model_dir, tmp_path, capsys):
    from unispeech.beam import DECODING_FILE
    from unispeech.cli import main

    folder, _ = model_with_its_own_lm(tiny_model_dir, tmp_path, BeamOptions())
    (folder / DECODING_FILE).write_text('{"beam_width": 0}')
    with pytest.raises(SystemExit) as stop:
        main(["transcribe", "x.wav", "--model", str(folder)])
    assert stop.value.code == 2 and "beam_width must be at least 1" in capsys.readouterr().err
    (folder / DECODING_FILE).write_text('{"lm": "phone_lm.arpa", "width": 8}')
    with pytest.raises(SystemExit) as stop:
        main(["transcribe", "x.wav", "--model", str(folder)])
    assert stop.value.code == 2 and f"{DECODING_FILE}: not a decoding file" in capsys.readouterr().err
    (folder / DECODING_FILE).write_text('{"lm": "gone.arpa"}')
    with pytest.raises(SystemExit) as stop:
        main(["transcribe", "x.wav", "--model", str(folder)])
    assert stop.value.code == 2 and "gone.arpa: no such language model file" in capsys.readouterr().err


def test_an_onnx_export_keeps_the_model_s_own_decoding(tiny_model_dir, tmp_path, capsys):
    from unispeech import load_model
    from unispeech.beam import BeamSearchDecoder

    from .conftest import run_main

    options = BeamOptions(beam_width=4, lm_weight=0.6, insertion_bonus=1.0)
    folder, _ = model_with_its_own_lm(tiny_model_dir, tmp_path, options)
    code, _, _ = run_main(["export", str(folder), "--out", str(tmp_path / "onnx")], capsys)
    assert code == 0
    decoder = load_model(tmp_path / "onnx", backend="onnxruntime", dtype="float32").decoder
    assert isinstance(decoder, BeamSearchDecoder) and decoder.options == options and decoder.lm.order == 2
