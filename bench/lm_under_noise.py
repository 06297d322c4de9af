"""Greedy decoding against the model's own decoding (its phone LM) as the audio gets worse: white noise (or
babble: three other utterances of the set) at falling SNR on held-out sets, or a lossy codec (Opus, MP3) at
rising compression, the same logits decoded both ways.

    python bench/lm_under_noise.py --work runs/demo-v6 [--model unispeech/assets/default-model]
        [--sets test-rhvoice-other-voices,test-rhvoice-azamat,test-rhvoice-nazgul] [--snr clean,10,5,0]
        [--noise white|babble] [--codec clean,opus:0.9,opus:1,mp3:0.9]

`--codec` replaces the noise: each entry is a codec and soundfile's compression level (0 best, 1 smallest);
the table gives the bitrate it came to on the set.

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


def degraded(clips, i, condition: str, rng, babble: bool) -> tuple[np.ndarray, int]:
    """Clip `i` under `condition` ('clean', an SNR in dB, or 'CODEC:LEVEL'), and its size in bytes encoded."""
    from unispeech.augment import decode, encode

    if ":" not in condition:
        return noisy(clips, i, None if condition == "clean" else float(condition), rng, babble), 0
    codec, level = condition.split(":")
    data = encode(clips[i], codec, float(level))
    return decode(data, clips[i]), len(data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="recipes/demo_model.py's work folder (the test sets)")
    p.add_argument("--model", default=str(ROOT / "unispeech" / "assets" / "default-model"))
    p.add_argument("--sets", default="test-rhvoice-other-voices,test-rhvoice-azamat,test-rhvoice-nazgul")
    p.add_argument("--snr", default="clean,10,5,0", help="dB; 'clean' adds no noise")
    p.add_argument("--noise", choices=("white", "babble"), default="white")
    p.add_argument("--codec", help="CODEC:LEVEL,... (opus, mp3; 'clean' for none) instead of noise")
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
    conditions = (args.codec or args.snr).split(",")
    head = "codec (kbit/s)" if args.codec else "SNR (dB)"
    print(f"| set | {head} | greedy PER (S / D / I) | with its phone LM (S / D / I) |\n|---|---|---|---|")
    for name in args.sets.split(","):
        utterances = load_dataset(args.work / name / "manifest.jsonl")[0]
        clean, refs = [load_audio(u.audio) for u in utterances], [list(u.phones) for u in utterances]
        rng = np.random.default_rng(0)
        seconds = sum(w.size for w in clean) / 16000
        for condition in conditions:
            pairs = [degraded(clean, i, condition, rng, babble) for i in range(len(clean))]
            wavs = [model.prepare(wav, 16000) for wav, _ in pairs]
            size = sum(n for _, n in pairs)
            label = f"{condition} ({8 * size / seconds / 1000:.0f})" if size else condition
            logits = model.logits_batch(wavs, batch_size=16)
            cells = []
            for decoder in (GreedyDecoder(), own):
                c = score_logits(model, logits, [w.size for w in wavs], refs, decoder)
                cells.append(f"{100 * c.per:.1f} % ({c.substitutions} / {c.deletions} / {c.insertions})")
            print(f"| {name} | {label} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
