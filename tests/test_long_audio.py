"""Long audio is processed in windows whose core frames tile the utterance exactly."""

import dataclasses

import numpy as np
import pytest

from unispeech.audio import AudioSettings
from unispeech.config import tiny_config
from unispeech.model import build_model
from unispeech.transcribe import ChunkOptions, Recognizer
from unispeech.vocab import phone_vocabulary

from .conftest import PHONES, randomize, speechlike

SMALL_CHUNKS = ChunkOptions(max_seconds=3.0, chunk_seconds=1.0, context_seconds=0.5, max_batch_seconds=8.0)


def recognizer(layers: int, chunking: ChunkOptions) -> Recognizer:
    model = build_model(tiny_config(num_hidden_layers=layers))
    randomize(model)
    return Recognizer(model, phone_vocabulary(PHONES), AudioSettings(), chunking=chunking)


@pytest.mark.parametrize("seconds", [3.5, 7.77, 10.0])
def test_chunks_stitch_exactly_for_a_local_model(seconds):
    """Without attention layers every frame sees < 0.5 s, so chunking must change nothing at all."""
    whole = recognizer(0, dataclasses.replace(SMALL_CHUNKS, max_seconds=60.0))
    chunked = recognizer(0, SMALL_CHUNKS)
    wav = whole.prepare(speechlike(seconds, seed=3), 16000)
    assert len(chunked._plan(0, wav.size)) > 1
    a, b = whole.logits_batch([wav])[0], chunked.logits_batch([wav])[0]
    assert a.shape == b.shape == (int(whole.model.backbone.output_lengths(np.array(wav.size))), len(PHONES) + 4)
    assert np.abs(a - b).max() < 1e-4


def test_chunks_of_several_files_batch_together_in_order():
    r = recognizer(0, SMALL_CHUNKS)
    wavs = [r.prepare(speechlike(s, seed=i), 16000) for i, s in enumerate((5.0, 0.8, 4.1))]
    together = r.logits_batch(wavs, batch_size=4)
    alone = [r.logits_batch([w], batch_size=1)[0] for w in wavs]
    for x, y in zip(together, alone):
        assert np.abs(x - y).max() < 1e-4


def test_attention_model_chunked_close_to_whole():
    whole = recognizer(2, dataclasses.replace(SMALL_CHUNKS, max_seconds=60.0))
    chunked = recognizer(2, SMALL_CHUNKS)
    wav = whole.prepare(speechlike(8.0, seed=5), 16000)
    a, b = whole.logits_batch([wav])[0], chunked.logits_batch([wav])[0]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.mean() > 0.95
