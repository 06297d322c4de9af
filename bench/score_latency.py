"""Latency of `POST /v1/score` for a 5 s clip: one client alone, then 20 concurrent clients (loopback only).

    python bench/score_latency.py [--model DIR] [--clients 20] [--requests 3]

Starts `unispeech serve` on 127.0.0.1 (a free port), speaks a held-out sentence with espeak-ng, trims or
pads it to 5 s, and prints the CPU, the single-client median of 5 requests, and p50/p95/max over
clients x requests with all clients sending at once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def clip() -> tuple[bytes, str]:
    import soundfile as sf

    from unispeech.data import sentence_pool
    from unispeech.synth import Speaker, Voice

    test, _ = sentence_pool(ROOT / "data" / "ky")
    text = next(s for s in test if 60 <= len(s) <= 90)
    wav = Speaker("ky").speak(text, Voice("m3", rate=150, pitch=50))[: 5 * 16000]
    wav = np.pad(wav, (0, max(0, 5 * 16000 - wav.size)))
    buf = io.BytesIO()
    sf.write(buf, wav, 16000, format="WAV")
    return buf.getvalue(), text


async def post(http, base: str, data: bytes, text: str) -> float:
    t0 = time.perf_counter()
    r = await http.post(f"{base}/v1/score", files={"file": ("a.wav", data, "audio/wav")}, data={"text": text})
    r.raise_for_status()
    return time.perf_counter() - t0


async def measure(base: str, data: bytes, text: str, clients: int, requests: int) -> tuple[list, list]:
    import httpx

    async with httpx.AsyncClient(timeout=300) as http:
        alone = [await post(http, base, data, text) for _ in range(5)]

        async def client():
            return [await post(http, base, data, text) for _ in range(requests)]

        together = [t for ts in await asyncio.gather(*(client() for _ in range(clients))) for t in ts]
    return alone, together


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=3)
    args = p.parse_args()
    from local_server import local_server  # bench/ is on the path when run as a script

    from unispeech.precision import cpu_flags

    data, text = clip()
    with local_server(args.model) as (base, _):
        alone, together = asyncio.run(measure(base, data, text, args.clients, args.requests))
    print(f"CPU flags: {' '.join(sorted(cpu_flags()))}; 5 s clip, {len(text.split())} words")
    print(f"one client: median {np.median(alone):.2f} s over 5 requests")
    print(
        f"{args.clients} concurrent clients x {args.requests}: p50 {np.percentile(together, 50):.2f} s, "
        f"p95 {np.percentile(together, 95):.2f} s, max {max(together):.2f} s"
    )


if __name__ == "__main__":
    main()
