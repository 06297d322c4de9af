"""Where a precision changes the phones, how close was float32 itself to a tie? For each utterance whose
greedy phones differ from float32's: the frames whose best id changed and float32's own top-2 logit margin
there, beside the median margin over all frames. All utterances run as one batch plan (sorted by length), so
which near-ties flip can differ from bench/precision_agreement.py's (it plans 256 files at a time).

    python bench/flip_margins.py [--model FOLDER] [--data MANIFEST ...] [--dtype auto mixed ...]

Model and data as bench/precision_agreement.py (by default its three draws of the demo model's held-out
sentences). Greedy only: a beam search with a phone LM has no single frame to blame.
"""

import argparse

import numpy as np
from precision_agreement import TIE, add_data_arguments, top2_margin, utterance_sets

from unispeech import GreedyDecoder, load_model


def greedy_logits(model_dir: str, paths: list, dtype: str, batch_size: int) -> tuple[list, list, int]:
    """-> (logits, phones) per utterance, torch backend in `dtype`, and the blank's id."""
    recognizer = load_model(model_dir, backend="torch", dtype=dtype, decoder=GreedyDecoder())
    wavs = [recognizer.prepare(p) for p in paths]
    logits = recognizer.logits_batch(wavs, batch_size)
    phones = [recognizer.decode(x, w.size).phones for x, w in zip(logits, wavs)]
    return logits, phones, recognizer.vocab.blank_id


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p, decoder=False)  # greedy only
    p.add_argument("--dtype", nargs="+", default=["auto", "mixed"], choices=("auto", "mixed", "bfloat16", "float16"))
    p.add_argument("--batch-size", type=int, default=16)
    a = p.parse_args()
    paths = [u.audio for s in utterance_sets(a.data) for u in s]
    ref_logits, ref_phones, blank = greedy_logits(a.model, paths, "float32", a.batch_size)
    ref_top2 = [np.argsort(x, axis=1)[:, -2:] for x in ref_logits]  # (second, best) ids per frame
    ref_margins = [np.diff(np.take_along_axis(x, top2, axis=1), axis=1)[:, 0] for x, top2 in zip(ref_logits, ref_top2)]
    ties = [top2[margin < TIE] for top2, margin in zip(ref_top2, ref_margins)]
    print(
        f"{len(paths)} utterances, greedy; float32's top-2 margin over all frames: median "
        f"{np.median(np.concatenate(ref_margins)):.2f}; frames within {TIE} of a tie: "
        f"{sum(map(len, ties))}, the blank one of the two in {sum(int((t == blank).any(axis=1).sum()) for t in ties)}\n"
    )
    rows, summaries = [], []
    for dtype in a.dtype:
        logits, phones, _ = greedy_logits(a.model, paths, dtype, a.batch_size)
        changed_here = 0
        for path, ref, out, x32, margin, x in zip(paths, ref_phones, phones, ref_logits, ref_margins, logits):
            if ref != out:
                changed_here += 1
                frames = np.nonzero(x32.argmax(1) != x.argmax(1))[0]
                margins = ", ".join(f"{m:.3f}" for m in margin[frames])
                rows.append(f"| {dtype} | {path.parent.parent.name}/{path.name} | {len(frames)} | {margins} |")
        summaries.append(f"| {dtype} | {changed_here} | {margin_errors(ref_top2, ref_margins, logits)} |")
    print("| dtype | utterances changed | error on float32's top-2 margin: median / 99.9th pct / max |", end=" ")
    print(f"utterances with a frame within {TIE} of a tie |\n|---|---|---|---|")
    print("\n".join(summaries))
    print("\n| dtype | utterance | frames changed | float32's margin there |\n|---|---|---|---|")
    print("\n".join(rows))


def margin_errors(ref_top2: list, ref_margins: list, logits: list) -> str:
    """How far the reduced precision moves the gap between float32's two best ids, over all frames; and how
    many utterances come within TIE of a tie somewhere in it (where a fallback to float32 would have to redo)."""
    errors, near = [], 0
    for top2, margin, x in zip(ref_top2, ref_margins, logits):
        gap = np.take_along_axis(x, top2[:, 1:], axis=1) - np.take_along_axis(x, top2[:, :1], axis=1)
        errors.append(np.abs(gap[:, 0] - margin))
        near += bool((top2_margin(x) < TIE).any())
    e = np.concatenate(errors)
    return f"{np.median(e):.3f} / {np.percentile(e, 99.9):.3f} / {e.max():.3f} | {near} of {len(logits)}"


if __name__ == "__main__":
    main()
