"""The server's voices end to end: a speaker's first recordings sent to `POST /v1/voices`, then held-out ones of
the same set through `POST /v1/transcribe` with and without the voice, paired; how long adapting takes. The app
runs in this process (fastapi's TestClient: the real routes, batcher and worker thread, no socket), serving the
model as `unispeech serve` would (`auto` precision; voices in torch float32).

    python bench/voices.py --work runs/demo-v26 --sets test-asterisk-ru,test-asterisk-es-co [--first 10]
                           [--scored 60] [--model FOLDER]

Each set's utterances are shuffled (seed 0); the voice is made of the first `--first`, and the last `--scored` of
the rest are transcribed. PER with the served decoding (the bundled model: its phone LM). Nothing else should run.
"""

import argparse
import random
import time
from pathlib import Path

from fastapi.testclient import TestClient

from unispeech.data import Utterance, load_dataset
from unispeech.evaluate import score
from unispeech.paired import compare
from unispeech.server import create_app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="the folder of the sets (each SET/manifest.jsonl)")
    p.add_argument("--sets", required=True, help="comma-separated set names")
    p.add_argument("--first", type=int, default=10, help="recordings the voice is made of (at most 20)")
    p.add_argument("--scored", type=int, default=60, help="held-out recordings transcribed with and without it")
    p.add_argument("--model", help="model folder (default: the bundled demo model)")
    args = p.parse_args()
    with TestClient(create_app(args.model)) as client:
        print(f"served: {client.get('/health').json()['runs']}")
        print("| set | voice made of | adapting, s (first / again) | PER plain | PER with the voice | B - A [95 %] |")
        print("|---|---|---|---|---|---|")
        for name in args.sets.split(","):
            utterances, _ = load_dataset(args.work / name / "manifest.jsonl")
            random.Random(0).shuffle(utterances)
            print(one_set(client, name, utterances[: args.first], utterances[args.first :][-args.scored :]), flush=True)


def one_set(client: TestClient, name: str, made_of: list[Utterance], scored: list[Utterance]) -> str:
    files = [("file", (u.audio.name, u.audio.read_bytes(), "audio/wav")) for u in made_of]
    took = []
    for _ in range(2):  # the first voice of a server also loads its float32 copy of the model
        start = time.perf_counter()
        reply = client.post("/v1/voices", files=files)
        took.append(time.perf_counter() - start)
        if reply.status_code != 201:
            raise SystemExit(f"{name}: {reply.json()['error']}")
    voice = reply.json()
    plain, adapted = ({u.id: scored_row(client, u, form) for u in scored} for form in ({}, {"voice": voice["voice"]}))
    result = compare(plain, adapted)
    made = f"{voice['recordings']} recordings, {voice['seconds']:.1f} s"
    return (
        f"| {name} | {made} | {took[0]:.1f} / {took[1]:.1f} | {100 * result.per_a:.2f} | {100 * result.per_b:.2f} "
        f"| {result.cell()} |"
    )


def scored_row(client: TestClient, u: Utterance, form: dict) -> dict:
    """The utterance's row as `unispeech evaluate` scores it."""
    audio = {"file": ("a.wav", u.audio.read_bytes(), "audio/wav")}
    return score(u, client.post("/v1/transcribe", files=audio, data=form).json())


if __name__ == "__main__":
    main()
