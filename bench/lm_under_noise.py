"""Greedy decoding against the model's own decoding (its phone LM) as the audio gets worse: white noise (or
babble: three other utterances of the set) at falling SNR on held-out sets, the same logits decoded both ways.

    python bench/lm_under_noise.py --work runs/demo-v6 [--model unispeech/assets/default-model]
        [--sets test-rhvoice-other-voices,test-rhvoice-azamat,test-rhvoice-nazgul] [--snr clean,10,5,0]
        [--noise white|babble]

Does the bundled LM still help where the acoustic model is lost (real voices it never heard), or does it
start to invent Kyrgyz? Prints PER (substitutions / deletions / insertions) per set and SNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def noisy(clips: list[np.ndarray], i: int, snr_db: float | None, rng: np.random.Generator, babble: bool):
    """Clip `i` plus white noise, or with `babble` the sum of three other clips (looped to length), at `snr_db`."""
    wav = clips[i]
    if snr_db is None:
        return wav
    if babble:
        others = rng.choice([j for j in range(len(clips)) if j != i], 3, replace=False)
        noise = sum(np.resize(clips[j], wav.size) for j in others)
    else:
        noise = rng.normal(size=wav.size)
    scale = np.sqrt(np.mean(wav**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return (wav + noise * scale).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="recipes/demo_model.py's work folder (the test sets)")
    p.add_argument("--model", default=str(ROOT / "unispeech" / "assets" / "default-model"))
    p.add_argument("--sets", default="test-rhvoice-other-voices,test-rhvoice-azamat,test-rhvoice-nazgul")
    p.add_argument("--snr", default="clean,10,5,0", help="dB; 'clean' adds no noise")
    p.add_argument("--noise", choices=("white", "babble"), default="white")
    args = p.parse_args()
    from unispeech import GreedyDecoder, load_model
    from unispeech.audio import load_audio
    from unispeech.beam import folder_decoder
    from unispeech.data import load_dataset
    from unispeech.evaluate import score_logits

    model = load_model(args.model, dtype="float32")
    own = folder_decoder(args.model)
    if own is None:
        raise SystemExit(f"{args.model} has no decoding of its own (unispeech_decoding.json): nothing to compare")
    babble = args.noise == "babble"
    print("| set | SNR (dB) | greedy PER (S / D / I) | with its phone LM (S / D / I) |\n|---|---|---|---|")
    for name in args.sets.split(","):
        utterances = load_dataset(args.work / name / "manifest.jsonl")[0]
        clean, refs = [load_audio(u.audio) for u in utterances], [list(u.phones) for u in utterances]
        rng = np.random.default_rng(0)
        for snr in args.snr.split(","):
            level = None if snr == "clean" else float(snr)
            wavs = [model.prepare(noisy(clean, i, level, rng, babble), 16000) for i in range(len(clean))]
            logits = model.logits_batch(wavs, batch_size=16)
            cells = []
            for decoder in (GreedyDecoder(), own):
                c = score_logits(model, logits, [w.size for w in wavs], refs, decoder)
                cells.append(f"{100 * c.per:.1f} % ({c.substitutions} / {c.deletions} / {c.insertions})")
            print(f"| {name} | {snr} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
