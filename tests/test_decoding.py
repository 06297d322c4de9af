"""Greedy CTC decoding: collapse repeats, drop blanks and special tokens, 20 ms frame times."""

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
    a, l, r = VOCAB.ids["ɑ"], VOCAB.ids["l"], VOCAB.ids["r"]
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
