"""PER of a model with its own phone LM over recipes/demo_lm.py's grid of LM weights and insertion bonuses,
set by set: what each kind of voice prefers (the recipe takes the mean over its validation sets).

    python bench/lm_weight_grid.py --model runs/demo-v12/model-real-float16 --work runs/demo-v12
                                   [--sets valid,valid-rhvoice,valid-festival,test-festival-unseen-voice]
                                   [--lm-from MANIFEST [--order 4]]

`--lm-from` decodes with a phone LM built from a manifest's phones (each utterance id once: augmented copies repeat
them) instead of the model's own: a phone LM of the test speech's own language, to tell a content mismatch (a
Kyrgyz LM on Russian speech) from what a real voice does to decoding.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from demo_lm import GRID, TUNING_SETS, Scored  # noqa: E402

from unispeech import load_model  # noqa: E402
from unispeech.audio import AudioError  # noqa: E402
from unispeech.beam import DECODING_FILE, PHONE_LM_FILE  # noqa: E402
from unispeech.data import load_dataset  # noqa: E402
from unispeech.lm import PhoneLM, build_lm  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a model folder with its own phone LM")
    p.add_argument("--work", type=Path, required=True, help="recipes/demo_model.py's work folder")
    p.add_argument("--sets", default=",".join(TUNING_SETS), help="comma-separated set folders in --work")
    p.add_argument("--lm-from", type=Path, help="a manifest whose phones make the phone LM (not the model's own)")
    p.add_argument("--order", type=int, default=4, help="n-gram order of the --lm-from LM (default: 4)")
    a = p.parse_args()
    if a.lm_from is None and not (a.model / DECODING_FILE).is_file():
        sys.exit(f"lm_weight_grid: {a.model} has no {DECODING_FILE}: make its LM with recipes/demo_lm.py")
    model = load_model(a.model, dtype="float32")
    lm = PhoneLM.load(a.model / PHONE_LM_FILE) if a.lm_from is None else lm_of(a.lm_from, a.order)
    print("| set | utterances | greedy | best (weight, bonus) | " + " | ".join(f"{w}, {b}" for w, b in GRID) + " |")
    print("|---|---|---|---|" + "---|" * len(GRID))
    for name in a.sets.split(","):
        rows = load_dataset(a.work / name / "manifest.jsonl")[0]
        try:
            scored = Scored(model, [u.audio for u in rows], [u.phones for u in rows])
        except AudioError as e:
            sys.exit(f"lm_weight_grid: {name}: {e} (leave that clip out of the manifest)")
        pers = scored.grid(lm)
        best = min(pers, key=pers.get)
        cells = " | ".join(f"{100 * pers[g]:.2f}" for g in GRID)
        print(
            f"| {name} | {len(rows)} | {100 * scored.per(None, None):.2f} | {best} {100 * pers[best]:.2f} | {cells} |"
        )


def lm_of(manifest: Path, order: int) -> PhoneLM:
    sentences = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        sentences.setdefault(row["id"], row["phones"].split())
    phones = sum(map(len, sentences.values()))
    print(f"phone LM of order {order} from {manifest}: {len(sentences)} utterances, {phones} phones", file=sys.stderr)
    return build_lm(list(sentences.values()), order=order)


if __name__ == "__main__":
    main()
