"""Pronunciation scoring on held-out synthetic speech with simulated mispronunciations, against a baseline.

    python bench/scoring_eval.py [--model DIR] [--sentences 60] [--out docs]

Each held-out sentence (data/ky/val.text, never in the demo model's training) is spoken by espeak-ng (the
training voices and the unseen voice m3, alternating) and scored against
  (a) its own text: every phone was said;
  (b) the text with one word replaced by a word of another sentence: that word's phones were not said;
  (c) its phones with one phone substituted by another phone: that phone was not said;
  (d) its phones with one phone inserted into the expected sequence: the speaker left out a phone the text
      asks for (a deletion), so that phone was not said.
The audio is the same in all four: what changes is what was expected, which is what a learner's reading
of a prompt is. Phone ROC AUC (said vs not said), word ROC AUC (the replaced word vs the others), and how
often the true text gets the higher utterance score, for our GOP and for the baseline (align the expected
phones with the recognised ones: 1 for a matched phone, 0 otherwise; a word's score the fraction matched).
Writes SCORING.json and scoring.png to --out.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def auc(positive: list[float], negative: list[float]) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half): P(a said phone scores above an unsaid one)."""
    pos, neg = np.asarray(positive), np.asarray(negative)
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def roc(positive: list[float], negative: list[float]) -> tuple[np.ndarray, np.ndarray]:
    thresholds = np.unique(np.r_[positive, negative, -1.0, 2.0])[::-1]
    pos, neg = np.asarray(positive), np.asarray(negative)
    return (np.array([(neg >= t).mean() for t in thresholds]), np.array([(pos >= t).mean() for t in thresholds]))


def baseline(expected: list[list[str]], heard: list[str]) -> tuple[list[float], list[float]]:
    """Per phone 1/0 (matched by the minimum-edit alignment or not), per word the fraction matched."""
    from unispeech.metrics import edit_ops

    flat = [p for w in expected for p in w]
    matched = [float(op == "=") for op, ref, _ in edit_ops(flat, heard) if ref is not None]
    words, start = [], 0
    for w in expected:
        words.append(float(np.mean(matched[start : start + len(w)])))
        start += len(w)
    return matched, words


def variants(
    words: list[str], phones: list[list[str]], other_words: list[tuple[str, list[str]]], inventory, rng: random.Random
):
    """(name, words, word phones, unsaid (word, phone) positions, unsaid words) for (a)-(d)."""
    yield "true", words, phones, set(), set()
    k = rng.randrange(len(words))
    word, new = rng.choice([o for o in other_words if o[1] != phones[k]])
    yield (
        "word",
        words[:k] + [word] + words[k + 1 :],
        phones[:k] + [new] + phones[k + 1 :],
        {(k, j) for j in range(len(new))},
        {k},
    )
    k = rng.randrange(len(words))
    j = rng.randrange(len(phones[k]))
    swapped = list(phones[k])
    swapped[j] = rng.choice([p for p in inventory if p != swapped[j]])
    yield "substituted", words, phones[:k] + [swapped] + phones[k + 1 :], {(k, j)}, set()
    k = rng.randrange(len(words))
    j = rng.randrange(len(phones[k]) + 1)
    extra = list(phones[k])
    extra.insert(j, rng.choice(inventory))
    yield "deleted", words, phones[:k] + [extra] + phones[k + 1 :], {(k, j)}, set()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "unispeech" / "assets" / "default-model"))
    p.add_argument("--sentences", type=int, default=60)
    p.add_argument("--out", default=str(ROOT / "docs"))
    args = p.parse_args()
    from unispeech import load_model, phonemize
    from unispeech.data import sentence_pool
    from unispeech.g2p import kyrgyz_inventory
    from unispeech.scoring import score, text_words
    from unispeech.synth import TRAIN_VARIANTS, UNSEEN_VARIANT, Speaker, Voice

    model = load_model(args.model)
    test, _ = sentence_pool(ROOT / "data" / "ky")
    rng = random.Random(0)
    sentences = [s for s in test if 3 <= len(text_words(s)) <= 12][: args.sentences]
    per_sentence = [(text_words(s), phonemize(text_words(s))) for s in sentences]
    pool = [(w, ph) for ws, phs in per_sentence for w, ph in zip(ws, phs) if ph]
    speaker, inventory = Speaker("ky"), list(kyrgyz_inventory())
    phone_scores = {"gop": ([], []), "baseline": ([], [])}  # (said, not said)
    word_scores = {"gop": ([], []), "baseline": ([], [])}
    wins = {"gop": [], "baseline": []}
    seconds = []
    for n, (sentence, (words, phones)) in enumerate(zip(sentences, per_sentence)):
        if not all(phones):
            continue
        variant = (list(TRAIN_VARIANTS) + [UNSEEN_VARIANT])[n % (len(TRAIN_VARIANTS) + 1)]
        wav = speaker.speak(sentence, Voice(variant, rate=rng.randint(140, 190), pitch=rng.randint(35, 65)))
        heard = model.transcribe(wav, 16000).phones
        utterance = {}
        for name, ws, phs, unsaid, unsaid_words in variants(words, phones, pool, inventory, rng):
            t0 = time.perf_counter()
            result = score(model, wav, " ".join(ws), sampling_rate=16000, word_phones=phs)
            seconds.append(time.perf_counter() - t0)
            base_phones, base_words = baseline(phs, heard)
            flat = [(k, j) for k, w in enumerate(phs) for j in range(len(w))]
            gop = [p.score for w in result.words for p in w.phones]
            for method, values, word_values in (
                ("gop", gop, [w.score for w in result.words]),
                ("baseline", base_phones, base_words),
            ):
                for pos, v in zip(flat, values):
                    phone_scores[method][pos in unsaid].append(v)
                if name == "word":
                    for k, v in enumerate(word_values):
                        word_scores[method][k in unsaid_words].append(v)
            utterance[name] = {"gop": result.score, "baseline": float(np.mean(base_phones))}
        for method in wins:
            wins[method] += [utterance["true"][method] > utterance[v][method] for v in utterance if v != "true"]
    report = {
        method: {
            "phone_auc": auc(*phone_scores[method]),
            "word_auc": auc(*word_scores[method]),
            "true_text_higher": float(np.mean(wins[method])),
        }
        for method in ("gop", "baseline")
    }
    report.update(
        sentences=len(wins["gop"]) // 3,
        phones_said=len(phone_scores["gop"][0]),
        phones_not_said=len(phone_scores["gop"][1]),
        median_score_seconds=float(np.median(seconds)),
        command="python bench/scoring_eval.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
    )
    out = Path(args.out)
    (out / "SCORING.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(phone_scores, word_scores, report, out / "scoring.png")
    print(json.dumps(report, indent=2))


def plot(phone_scores, word_scores, report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, scores, key, title in (
        (axes[0], phone_scores, "phone_auc", "phones: said vs not said"),
        (axes[1], word_scores, "word_auc", "words: kept vs replaced"),
    ):
        for method, style in (("gop", "-"), ("baseline", "--")):
            fpr, tpr = roc(*scores[method])
            ax.plot(fpr, tpr, style, label=f"{method} (AUC {report[method][key]:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="#999")
        ax.set_xlabel("false positive rate (not said, scored as said)")
        ax.set_ylabel("true positive rate (said, scored as said)")
        ax.set_title(title)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
