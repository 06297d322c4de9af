"""Test-time voice warp (no rule found that helps without costs, though one unseen speaker gains 4-5 points at x0.82:
docs/demo-model.md, eighteenth sitting; kept so that it is not tried blind again): each utterance resampled by a
few factors (tempo, pitch and formants move together), and the factor chosen where the model is most confident. PER
per fixed factor, per selection rule (per utterance, and one factor per set as for one speaker's session), and the
per-utterance oracle (the best factor by its errors: the most any rule could reach). Greedy, or the model's own
decoding (its phone LM) with --decoder own. `--warp formant`: the formants alone scaled by the factor (Praat's
"Change gender", pitch and tempo kept; needs the `train` extra).

    python bench/warp_probe.py --model unispeech/assets/default-model --work runs/demo-pair \
        --sets test-festival-unseen-voice,test-mbrola-turkish,test-klettres,test-unseen-voice [--decoder own]
"""

import argparse
from pathlib import Path

import numpy as np

from unispeech import GreedyDecoder, load_model
from unispeech.audio import normalize
from unispeech.augment import speed_perturb, voice_change
from unispeech.data import load_dataset
from unispeech.decoding import log_softmax
from unispeech.metrics import ErrorCounts, edit_ops

FACTORS = (0.82, 0.88, 0.94, 1.0, 1.06, 1.12)
NEAREST_FIRST = sorted(FACTORS, key=lambda f: abs(f - 1.0))  # a rule's ties go to the smaller warp
RULES = {  # name -> (score of one utterance's logits, higher is surer)
    "mean top log-prob": lambda lp, blank: lp.max(-1).mean(),
    "mean top log-prob, non-blank frames": lambda lp, blank: _non_blank_top(lp, blank),
    "negative entropy": lambda lp, blank: (np.exp(lp) * lp).sum(-1).mean(),
    # unseen real voices fail by deleting (blank where a phone is): the factor at which the model says most
    # (phones of the best path, not frames: a faster tempo has fewer blank frames for the same phones)
    "most phones said": lambda lp, blank: _phones_said(lp, blank),
}


def _non_blank_top(lp: np.ndarray, blank: int) -> float:
    top = lp.max(-1)[lp.argmax(-1) != blank]
    return float(top.mean()) if top.size else -np.inf


WARPS = {"speed": speed_perturb, "formant": lambda wav, factor: voice_change(wav, factor, 1.0)}


def _phones_said(lp: np.ndarray, blank: int) -> int:
    best = lp.argmax(-1)
    runs = best[np.r_[True, best[1:] != best[:-1]]] if best.size else best
    return int((runs != blank).sum())


def warped_results(model, rows, prepared: list[np.ndarray], factor: float, warp: str = "speed") -> list[dict]:
    """Per utterance: its edit operations and each rule's score at `factor` (`prepared`: the rows' model inputs)."""
    wavs = [w if factor == 1.0 else normalize(WARPS[warp](w, factor)) for w in prepared]
    out = []
    for u, wav, logits in zip(rows, wavs, model.logits_batch(wavs, batch_size=16)):
        lp = log_softmax(logits)
        ops = edit_ops(list(u.phones), model.decode(logits, wav.size).phones)
        out.append({"ops": ops, **{name: float(rule(lp, model.vocab.blank_id)) for name, rule in RULES.items()}})
    return out


def per(results: dict[float, list[dict]], choice: list[float]) -> float:
    """PER (%) with utterance i decoded at factor choice[i]."""
    counts = ErrorCounts()
    for i, f in enumerate(choice):
        counts.add(results[f][i]["ops"])
    return 100 * counts.per


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--work", type=Path, required=True, help="recipes/demo_model.py's work folder")
    p.add_argument("--sets", required=True, help="comma-separated set folders in --work")
    p.add_argument("--decoder", choices=("greedy", "own"), default="greedy", help="own: the model folder's decoding")
    p.add_argument("--warp", choices=tuple(WARPS), default="speed", help="resample (default), or formants alone")
    a = p.parse_args()
    model = load_model(a.model, dtype="float32", decoder=None if a.decoder == "own" else GreedyDecoder())
    columns = [f"x{f}" for f in FACTORS] + [f"{r} ({k})" for r in RULES for k in ("each", "set")] + ["oracle"]
    print("| set | utterances | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    for name in a.sets.split(","):
        rows = load_dataset(a.work / name / "manifest.jsonl")[0]
        prepared = [model.prepare(u.audio) for u in rows]  # read once, warped per factor
        results = {f: warped_results(model, rows, prepared, f, a.warp) for f in FACTORS}
        n = len(rows)
        cells = [f"{per(results, [f] * n):.2f}" for f in FACTORS]
        for rule in RULES:
            each = [max(NEAREST_FIRST, key=lambda f: results[f][i][rule]) for i in range(n)]
            best = max(NEAREST_FIRST, key=lambda f: np.mean([r[rule] for r in results[f]]))
            cells += [f"{per(results, each):.2f}", f"{per(results, [best] * n):.2f} (x{best})"]
        oracle = [min(FACTORS, key=lambda f: ErrorCounts().add(results[f][i]["ops"]).edits) for i in range(n)]
        cells.append(f"{per(results, oracle):.2f}")
        print(f"| {name} | {n} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
