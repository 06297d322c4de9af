"""The demo model's own decoding: a phone n-gram LM of Kyrgyz sentences and beam-search weights tuned for it.

    python recipes/demo_lm.py --model runs/demo/model-real --work runs/demo [--order 4]

The LM is built (Witten-Bell, `unispeech.lm`) from the G2P'd training sentences of data/ky: the held-out
sentences (data/ky/val.text, the espeak-ng validation sentences) never reach it, and neither do the sentences
of the tuning sets. The LM weight and insertion bonus are chosen on Kyrgyz validation utterances (espeak-ng's
`valid`, and RHVoice's `valid-rhvoice`, Festival's `valid-festival` and `valid-unseen-voices` when the work folder
has them) by a small grid: the mean of the sets' PERs, so that each kind of voice counts once (pooled, espeak-ng's
150 utterances, where the model is surest, chose a heavier LM that cost the unseen voices and real speech).
`valid-unseen-voices` (recipes/demo_model.py --mbrola-tuning) are voices the model never meets in training: without
them every tuning voice is a training voice, and the unseen ones (the Record button's case) want a heavier LM than
those (v14-v16: 0.5 / 2.0 against 0.3 / 1.0 on the unseen Kyrgyz-sentence test sets). The result goes
into the model folder (`phone_lm.arpa`, `unispeech_decoding.json`), which makes beam search with the LM that
model's default decoding (`load_model`, `unispeech transcribe`, `evaluate`, `serve`; `--decoder greedy` opts out).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ky"
VALID_SENTENCES = 150  # as recipes/demo_model.py
TUNING_SETS = ("valid", "valid-rhvoice", "valid-festival", "valid-unseen-voices")
LM_WEIGHTS = (0.3, 0.5, 0.8, 1.2)
INSERTION_BONUSES = (0.0, 1.0, 2.0, 3.0, 4.0)
GRID = tuple(itertools.product(LM_WEIGHTS, INSERTION_BONUSES))  # (LM weight, insertion bonus)


def tuning_sets(work: Path) -> list[str]:
    """The tuning sets that `work` has, in TUNING_SETS order."""
    return [name for name in TUNING_SETS if (work / name / "manifest.jsonl").is_file()]


def unseen_voices(work: Path) -> list[str]:
    """The voices of the `valid-unseen-voices` tuning set (none where `work` has no such set)."""
    manifest = work / "valid-unseen-voices" / "manifest.jsonl"
    lines = manifest.read_text(encoding="utf-8").splitlines() if manifest.is_file() else []
    return sorted({json.loads(line)["voice"] for line in lines if line.strip()})


def add_phone_lm(model_dir: Path, work: Path, order: int = 4) -> dict:
    """Build, tune and write the folder's phone LM and decoding; -> what was chosen, for the model card."""
    from unispeech import load_model, phonemize
    from unispeech.beam import BeamOptions, save_folder_decoder
    from unispeech.data import load_dataset, sentence_splits
    from unispeech.lm import build_lm

    names = tuning_sets(work)
    tuning = [load_dataset(work / name / "manifest.jsonl")[0] for name in names]
    held = {u.text for rows in tuning for u in rows}
    sentences = [s for s in sentence_splits(DATA, VALID_SENTENCES)["train"] if s not in held]
    lm = build_lm(phonemize(sentences), order=order)
    model = load_model(model_dir, dtype="float32")
    scored = [Scored(model, [u.audio for u in rows], [u.phones for u in rows]) for rows in tuning]
    per_set = [s.grid(lm) for s in scored]
    grid = {g: sum(pers[g] for pers in per_set) / len(per_set) for g in GRID}
    weight, bonus = min(grid, key=grid.get)
    save_folder_decoder(model_dir, BeamOptions(8, weight, bonus), lm)
    chosen = {
        "order": order,
        "sentences": len(sentences),
        "ngrams": len(lm.probs),
        "lm_weight": weight,
        "insertion_bonus": bonus,
        "tuned_on": {name: len(rows) for name, rows in zip(names, tuning)},
        "unseen_voices": unseen_voices(work),
        "tuning_per_greedy": sum(s.per(None, None) for s in scored) / len(scored),  # the mean of the sets' PERs
        "tuning_per_beam_lm": grid[(weight, bonus)],
    }
    print(json.dumps(chosen, indent=2))
    return chosen


class Scored:
    """Logits of a set computed once; PER of any decoding of them."""

    def __init__(self, model, paths: list[Path], refs: list[list[str]]):
        wavs = [model.prepare(p) for p in paths]
        self.model, self.refs, self.lengths = model, refs, [w.size for w in wavs]
        self.logits = model.logits_batch(wavs, batch_size=16)

    def per(self, options, lm) -> float:
        from unispeech import GreedyDecoder
        from unispeech.beam import BeamSearchDecoder
        from unispeech.evaluate import score_logits

        decoder = GreedyDecoder() if options is None else BeamSearchDecoder(options, lm)
        return score_logits(self.model, self.logits, self.lengths, self.refs, decoder).per

    def grid(self, lm) -> dict[tuple[float, float], float]:
        """PER with `lm` at every (LM weight, insertion bonus) of GRID, beam width 8."""
        from unispeech.beam import BeamOptions

        return {(w, b): self.per(BeamOptions(8, w, b), lm) for w, b in GRID}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the model folder to give its own decoding")
    p.add_argument("--work", type=Path, required=True, help="recipes/demo_model.py's work folder (tuning sets)")
    p.add_argument("--order", type=int, default=4)
    args = p.parse_args()
    add_phone_lm(args.model, args.work, args.order)


if __name__ == "__main__":
    main()
