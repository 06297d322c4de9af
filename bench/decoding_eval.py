"""Beam search + phone LM against greedy decoding, and forced-alignment boundary error, with a trained model.

    python bench/decoding_eval.py --model unispeech/assets/default-model --data runs/demo

Uses the demo recipe's synthetic sets: the LM is built from the training sentences only, the weights are
tuned on `valid`, and the figures are reported on `test` (sentences never seen in training). Boundary
error: held-out sentences spoken by espeak-ng (clean, a training voice), aligned from their text, each
phone's start compared with espeak-ng's own phoneme event.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def per_with(model, logits, lengths, refs, decoder) -> float:
    from unispeech.evaluate import score_logits

    return score_logits(model, logits, lengths, refs, decoder).per


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="unispeech/assets/default-model")
    p.add_argument("--data", default="runs/demo")
    p.add_argument("--order", type=int, default=4)
    p.add_argument("--align-sentences", type=int, default=60)
    a = p.parse_args()
    from unispeech import GreedyDecoder, load_model, phonemize
    from unispeech.beam import BeamOptions, BeamSearchDecoder
    from unispeech.data import load_dataset, sentence_splits
    from unispeech.lm import build_lm

    model = load_model(a.model)
    data = Path(a.data)
    splits = sentence_splits(ROOT / "data" / "ky")
    lm = build_lm(phonemize(splits["train"]), order=a.order)
    results = {}
    cached = {}
    for name in ("valid", "test"):
        utterances = load_dataset(data / name / "manifest.jsonl")[0]
        paths, refs = [u.audio for u in utterances], [u.phones for u in utterances]
        wavs = [model.prepare(p) for p in paths]
        t0 = time.perf_counter()
        logits = model.logits_batch(wavs, batch_size=16)
        acoustic = time.perf_counter() - t0
        cached[name] = (logits, [w.size for w in wavs], refs, acoustic)
    logits, lengths, refs, _ = cached["valid"]
    grid = list(itertools.product((0.1, 0.3, 0.5, 0.8, 1.2), (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)))
    tuned = min(
        grid, key=lambda wb: per_with(model, logits, lengths, refs, BeamSearchDecoder(BeamOptions(8, wb[0], wb[1]), lm))
    )
    logits, lengths, refs, acoustic = cached["test"]
    results["greedy_test_per"] = per_with(model, logits, lengths, refs, GreedyDecoder())
    results["beam_no_lm_test_per"] = per_with(
        model, logits, lengths, refs, BeamSearchDecoder(BeamOptions(beam_width=8))
    )
    t0 = time.perf_counter()
    best = BeamSearchDecoder(BeamOptions(beam_width=8, lm_weight=tuned[0], insertion_bonus=tuned[1]), lm)
    results["beam_lm_test_per"] = per_with(model, logits, lengths, refs, best)
    results["beam_seconds"] = time.perf_counter() - t0
    results["acoustic_seconds"] = acoustic
    results["tuned_lm_weight"], results["tuned_insertion_bonus"] = tuned
    results["lm_order"] = a.order
    results.update(boundary_error(model, splits["test"][: a.align_sentences]))
    print(json.dumps(results, indent=2))


def boundary_error(model, sentences: list[str]) -> dict:
    from unispeech import phonemize
    from unispeech.align import align
    from unispeech.synth import Speaker, Voice

    speaker = Speaker("ky")
    errors, skipped = [], 0
    for text in sentences:
        wav = speaker.speak(text, Voice("m1", rate=160, pitch=50))
        onsets = speaker.phone_onsets()
        if len(onsets) != len(phonemize(text)):
            skipped += 1
            continue
        result = align(model, wav, text=text, sampling_rate=16000)
        errors += [abs(p.start - o) for p, o in zip(result.phones, onsets)]
    errors = np.array(errors)
    return {
        "boundary_mean_error_ms": 1000 * float(errors.mean()),
        "boundary_median_error_ms": 1000 * float(np.median(errors)),
        "boundary_within_20ms": float((errors <= 0.02).mean()),
        "boundary_phones": int(errors.size),
        "boundary_sentences_skipped": skipped,
    }


if __name__ == "__main__":
    main()
