"""Greedy CTC decoding: collapse repeats, drop blanks and special tokens, times from the model's frame stride;
decoders as strategies."""

import numpy as np
import pytest

from unispeech.decoding import greedy_decode
from unispeech.vocab import phone_vocabulary

from .conftest import PHONES

VOCAB = phone_vocabulary(PHONES)
BLANK = VOCAB.blank_id


def one_hot_logits(ids: list[int]) -> np.ndarray:
    logits = np.full((len(ids), len(VOCAB)), -5.0, np.float32)
    logits[np.arange(len(ids)), ids] = 5.0
    return logits


def test_known_sequence_decodes_to_known_phones_and_times():
    a, l, r = VOCAB.ids["ɑ"], VOCAB.ids["l"], VOCAB.ids["r"]  # noqa: E741 (the phone l)
    s_tok = VOCAB.ids["<s>"]
    #        0  1  2  3      4      5  6      7  8  9
    frames = [a, a, BLANK, l, s_tok, a, BLANK, a, r, r]
    out = greedy_decode(one_hot_logits(frames), VOCAB, 0.02)
    assert out.phones == ["ɑ", "l", "ɑ", "ɑ", "r"]  # blank separates the two ɑ; <s> is dropped
    assert out.text == "ɑ l ɑ ɑ r"
    assert out.timestamps == [(0.0, 0.04), (0.06, 0.08), (0.1, 0.12), (0.14, 0.16), (0.16, 0.2)]
    assert out.duration == 0.2
    assert all(0.99 < c <= 1.0 for c in out.confidences)


def test_all_blank_gives_empty_result():
    out = greedy_decode(one_hot_logits([BLANK] * 7), VOCAB, 0.02, duration=0.15)
    assert out.phones == [] and out.text == "" and out.timestamps == [] and out.duration == 0.15


def test_confidence_is_the_mean_posterior_of_the_run():
    logits = np.zeros((2, len(VOCAB)), np.float32)
    logits[:, 0] = [np.log(len(VOCAB) - 1) + np.log(3), np.log(len(VOCAB) - 1)]  # p = 0.75, then 0.5
    out = greedy_decode(logits, VOCAB, 0.02)
    assert out.phones == [PHONES[0]]
    assert out.confidences == [pytest.approx(0.625, abs=1e-3)]


def test_wrong_width_is_rejected():
    with pytest.raises(ValueError, match="expected logits of shape"):
        greedy_decode(np.zeros((3, 10)), VOCAB, 0.02)


def test_timestamps_follow_the_model_frame_stride(tmp_path):
    """A model with a total conv stride of 40 samples (2.5 ms frames): every time stays inside the 2 s clip
    and equals frame index x 2.5 ms (a fixed 20 ms frame would put the last phone near 16 s)."""
    import unispeech
    from unispeech.align import align

    from .conftest import make_reference, speechlike

    make_reference(tmp_path, conv_stride=(5, 2, 2, 2, 1, 1, 1))
    model = unispeech.load_model(tmp_path, dtype="float32")
    assert model.frames.seconds_per_frame == 40 / 16000
    wav = speechlike(2.0)
    result = model.transcribe(wav, 16000)
    logits = model.logits(wav, 16000)
    assert logits.shape[0] > 700  # 2.5 ms frames
    assert result.phones and result.timestamps[-1][1] <= 2.0
    assert result.timestamps == greedy_decode(logits, model.vocab, 0.0025).timestamps
    assert max(e for _, e in result.timestamps) > 1.0  # spread over the clip, not squeezed into its start
    aligned = align(model, wav, phones=["ɑ", "m", "i"], sampling_rate=16000)
    assert all(0 <= p.start < p.end <= 2.0 for p in aligned.phones)


def test_decoders_are_strategies_given_to_the_recognizer(tiny_model_dir):
    import unispeech
    from unispeech.beam import BeamOptions, BeamSearchDecoder

    from .conftest import speechlike

    greedy = unispeech.load_model(tiny_model_dir, dtype="float32")
    beam = greedy.with_decoder(BeamSearchDecoder(BeamOptions(beam_width=1, lm_weight=0.0, token_threshold=1e-6)))
    assert beam.model is greedy.model and isinstance(greedy.decoder, unispeech.GreedyDecoder)
    wav = speechlike(1.5)
    assert beam.transcribe(wav, 16000).phones == greedy.transcribe(wav, 16000).phones  # width 1, no LM = greedy
    with pytest.raises(ValueError, match="beam_width must be at least 1"):
        BeamOptions(beam_width=0)


def test_load_model_without_arguments_loads_the_bundled_model(capsys):
    import unispeech
    from unispeech.checkpoint import DEFAULT_MODEL_DIR

    model = unispeech.load_model()
    assert model.name == "bundled demo model" and model.config.vocab_size == 43
    assert "bundled demo model" in capsys.readouterr().err
    assert unispeech.load_model("default").config == unispeech.load_model(DEFAULT_MODEL_DIR).config
