"""CTC beam search with phone-LM shallow fusion.

Hypotheses are scored by their best single path (max over alignments, not the sum), so a beam of one
with LM weight 0 is exactly greedy decoding; wider beams add the LM: score = log P_ctc(path)
+ lm_weight * log P_lm(phones) + insertion_bonus * len(phones).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .decoding import Transcription, log_softmax, softmax
from .files import atomic_write
from .lm import BOS, EOS, PhoneLM
from .vocab import Vocabulary

DECODING_FILE = "unispeech_decoding.json"  # a model folder's own decoding: beam options, its phone LM's file
PHONE_LM_FILE = "phone_lm.arpa"  # where save_folder_decoder puts that LM


@dataclasses.dataclass(frozen=True)
class BeamOptions:
    beam_width: int = 8
    lm_weight: float = 0.5
    insertion_bonus: float = 0.0  # natural-log units per emitted phone
    token_threshold: float = 1e-3  # tokens considered per frame: posterior above this (the best always)
    blank_skip: float = 0.999  # frames with a blank posterior above this only extend with blank

    def __post_init__(self):
        if self.beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, not {self.beam_width}")


@dataclasses.dataclass(frozen=True)
class _Hyp:
    score: float  # acoustic + weighted LM + bonus
    prefix: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]  # (first frame, end frame) per phone
    last: int  # token of the previous frame (blank id after a blank)


@dataclasses.dataclass(frozen=True)
class BeamSearchDecoder:
    """Beam search, with shallow fusion of a phone n-gram LM when one is given."""

    options: BeamOptions = BeamOptions()
    lm: PhoneLM | None = None

    def decode(
        self, logits: np.ndarray, vocab: Vocabulary, frame_seconds: float, duration: float | None = None
    ) -> Transcription:
        return beam_search(logits, vocab, frame_seconds, self.lm, self.options, duration)

    def describe(self) -> str:
        lm = f"LM of order {self.lm.order} with {len(self.lm.probs)} n-grams" if self.lm else "no LM"
        return f"beam {self.options}, {lm}"


def folder_decoder(folder: str | os.PathLike) -> BeamSearchDecoder | None:
    """The decoding a model folder recommends (its unispeech_decoding.json, with the phone LM beside it), or None."""
    path = Path(folder) / DECODING_FILE
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        lm = spec.pop("lm", None)
        options = BeamOptions(**spec)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a decoding file ({e}); expected the BeamOptions fields and 'lm'") from e
    return BeamSearchDecoder(options, PhoneLM.load(Path(folder) / lm) if lm else None)


def save_folder_decoder(folder: str | os.PathLike, options: BeamOptions, lm: PhoneLM | None) -> Path:
    """Make beam search with `lm` the folder's own decoding (what `load_model` uses unless told otherwise)."""
    spec = dataclasses.asdict(options)
    if lm is not None:
        lm.save(Path(folder) / PHONE_LM_FILE)
        spec["lm"] = PHONE_LM_FILE
    return atomic_write(Path(folder) / DECODING_FILE, json.dumps(spec, indent=2) + "\n")


def beam_search(
    logits: np.ndarray,
    vocab: Vocabulary,
    frame_seconds: float,
    lm: PhoneLM | None = None,
    options: BeamOptions = BeamOptions(),
    duration: float | None = None,
) -> Transcription:
    logits = np.asarray(logits, dtype=np.float32)
    log_probs = log_softmax(logits)
    blank, specials = vocab.blank_id, vocab.special_ids
    emit_ok = np.array([i not in specials for i in range(len(vocab))])
    alpha = options.lm_weight if lm is not None else 0.0
    lm_cache: dict[tuple[tuple[int, ...], int], float] = {}

    def lm_score(prefix: tuple[int, ...], token: int | None) -> float:
        if not alpha:
            return 0.0
        key = (prefix[-(lm.order - 1) :] if lm.order > 1 else (), -1 if token is None else token)
        if key not in lm_cache:
            history = (BOS,) + tuple(vocab.tokens[t] for t in key[0])
            lm_cache[key] = alpha * lm.logprob(
                history[-(lm.order - 1) :] if lm.order > 1 else (), EOS if token is None else vocab.tokens[token]
            )
        return lm_cache[key]

    beam = [_Hyp(0.0, (), (), blank)]
    skip_blank = np.log(options.blank_skip)
    threshold = np.log(options.token_threshold)
    for t, frame in enumerate(log_probs):
        if frame[blank] > skip_blank:
            beam = [dataclasses.replace(h, score=h.score + float(frame[blank]), last=blank) for h in beam]
            continue
        candidates = np.flatnonzero((frame > threshold) & (emit_ok | (np.arange(len(frame)) == blank)))
        best_token = int(frame.argmax())
        if best_token not in candidates:
            candidates = np.append(candidates, best_token)
        merged: dict[tuple[tuple[int, ...], int], _Hyp] = {}
        for h in beam:
            for c in candidates.tolist():
                lp = float(frame[c])
                if c == blank:
                    new = _Hyp(h.score + lp, h.prefix, h.spans, blank)
                elif c == h.last:  # the same phone continues
                    new = _Hyp(h.score + lp, h.prefix, h.spans[:-1] + ((h.spans[-1][0], t + 1),), c)
                elif not emit_ok[c]:  # a special token is never emitted: treat like a blank frame
                    new = _Hyp(h.score + lp, h.prefix, h.spans, blank)
                else:
                    new = _Hyp(
                        h.score + lp + lm_score(h.prefix, c) + options.insertion_bonus,
                        h.prefix + (c,),
                        h.spans + ((t, t + 1),),
                        c,
                    )
                key = (new.prefix, new.last)
                if key not in merged or merged[key].score < new.score:
                    merged[key] = new
        beam = sorted(merged.values(), key=lambda h: -h.score)[: options.beam_width]
    best = max(beam, key=lambda h: h.score + lm_score(h.prefix, None))
    probs = softmax(logits)
    phones = [vocab.tokens[i] for i in best.prefix]
    total = duration if duration is not None else len(log_probs) * frame_seconds
    return Transcription(
        phones=phones,
        timestamps=[(round(a * frame_seconds, 3), round(b * frame_seconds, 3)) for a, b in best.spans],
        confidences=[round(float(probs[a:b, tok].mean()), 4) for (a, b), tok in zip(best.spans, best.prefix)],
        duration=round(float(total), 3),
        text=vocab.join(phones),
    )
