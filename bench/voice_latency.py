"""How long a transcription waits while the server adapts a voice: the worst case a voice can be (20 recordings
of 30 s: every piece of every step 15 s) made of the audio of a manifest, and 5 s clips transcribed one after
another meanwhile, against the same clips on the idle server. The app runs in this process (fastapi's
TestClient), serving the model as `unispeech serve` would.

    python bench/voice_latency.py --manifest runs/demo-v26/test-festvox-ru-nsh/manifest.jsonl [--model FOLDER]

The manifest's audio, concatenated, must last at least 10 minutes. Nothing else should run.
"""

import argparse
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from unispeech.data import load_dataset
from unispeech.server import create_app

RATE, RECORDINGS, SECONDS = 16000, 20, 30


def wav_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, RATE, format="WAV")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="a manifest of 16 kHz audio, 10 min or more in all")
    p.add_argument("--model", help="model folder (default: the bundled demo model)")
    args = p.parse_args()
    utterances, _ = load_dataset(args.manifest, labelled=False)
    audio = np.concatenate([sf.read(u.audio, dtype="float32")[0] for u in utterances])
    size = SECONDS * RATE
    if audio.size < RECORDINGS * size:
        raise SystemExit(f"{args.manifest}: {audio.size / RATE:.0f} s of audio; this needs {RECORDINGS * SECONDS} s")
    files = [("file", (f"{i}.wav", wav_bytes(audio[i * size : (i + 1) * size]), "audio/wav")) for i in range(20)]
    clip = {"file": ("clip.wav", wav_bytes(audio[: 5 * RATE]), "audio/wav")}
    with TestClient(create_app(args.model)) as client, ThreadPoolExecutor(1) as pool:
        print(f"served: {client.get('/health').json()['runs']}")
        client.post("/v1/voices", files=files[:1])  # the first voice also loads the float32 copy of the model

        def transcribe() -> float:
            start = time.perf_counter()
            if client.post("/v1/transcribe", files=clip).status_code != 200:
                raise SystemExit("a transcription failed")
            time.sleep(0.5)
            return time.perf_counter() - start - 0.5

        idle = [transcribe() for _ in range(10)]
        start = time.perf_counter()
        adapting = pool.submit(client.post, "/v1/voices", files=files)
        busy = []
        while not adapting.done():
            busy.append(transcribe())
        print(f"adapting to {RECORDINGS} x {SECONDS} s: status {adapting.result().status_code}, "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        for name, took in (("idle", idle), ("while adapting", busy)):
            print(f"{name}: {len(took)} transcriptions of 5 s, median {np.median(took):.2f} s, max {max(took):.2f} s")


if __name__ == "__main__":
    main()
