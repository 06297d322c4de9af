"""Test-time speed/pitch warp (a negative result, kept so that it is not tried blind again): each utterance
resampled by a few factors (tempo, pitch and formants move together), and the factor chosen where the model is
most confident. Greedy PER per fixed factor, per selection rule (per utterance, and one factor per set as for one
speaker's session), and the per-utterance oracle (the best factor by its errors: the most any rule could reach).

    python bench/warp_probe.py --model unispeech/assets/default-model --work runs/demo-pair \
        --sets test-festival-unseen-voice,test-mbrola-turkish,test-klettres,test-unseen-voice
"""

import argparse
from pathlib import Path

import numpy as np

from unispeech import GreedyDecoder, load_model
from unispeech.audio import normalize
from unispeech.augment import speed_perturb
from unispeech.data import load_dataset
from unispeech.decoding import log_softmax
from unispeech.metrics import ErrorCounts, edit_ops

FACTORS = (0.88, 0.94, 1.0, 1.06, 1.12)
RULES = {  # name -> (score of one utterance's logits, higher is surer)
    "mean top log-prob": lambda lp, blank: lp.max(-1).mean(),
    "mean top log-prob, non-blank frames": lambda lp, blank: _non_blank_top(lp, blank),
    "negative entropy": lambda lp, blank: (np.exp(lp) * lp).sum(-1).mean(),
}


def _non_blank_top(lp: np.ndarray, blank: int) -> float:
    top = lp.max(-1)[lp.argmax(-1) != blank]
    return float(top.mean()) if top.size else -np.inf


def warped_results(model, rows, factor: float) -> list[dict]:
    """Per utterance: its edit operations and each rule's score at `factor`."""
    wavs = [model.prepare(u.audio) for u in rows]
    wavs = [w if factor == 1.0 else normalize(speed_perturb(w, factor)) for w in wavs]
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
    a = p.parse_args()
    model = load_model(a.model, dtype="float32", decoder=GreedyDecoder())
    columns = [f"x{f}" for f in FACTORS] + [f"{r} ({k})" for r in RULES for k in ("each", "set")] + ["oracle"]
    print("| set | utterances | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    for name in a.sets.split(","):
        rows = load_dataset(a.work / name / "manifest.jsonl")[0]
        results = {f: warped_results(model, rows, f) for f in FACTORS}
        n = len(rows)
        cells = [f"{per(results, [f] * n):.2f}" for f in FACTORS]
        for rule in RULES:
            each = [max(FACTORS, key=lambda f: results[f][i][rule]) for i in range(n)]
            best = max(FACTORS, key=lambda f: np.mean([r[rule] for r in results[f]]))
            cells += [f"{per(results, each):.2f}", f"{per(results, [best] * n):.2f} (x{best})"]
        oracle = [min(FACTORS, key=lambda f: ErrorCounts().add(results[f][i]["ops"]).edits) for i in range(n)]
        cells.append(f"{per(results, oracle):.2f}")
        print(f"| {name} | {n} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
