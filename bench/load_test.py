"""Bounded load test of `unispeech serve` on localhost: concurrent clients mixing good and bad uploads.

    python bench/load_test.py [--model DIR] [--clients 40] [--seconds 30]

Starts the server on 127.0.0.1 (a free port), runs the clients for the given time, then stops everything.
Uploads: good clips (1-6 s), bad ones (not audio, empty, truncated, wrong type), and oversize ones (30 MB
with a Content-Length, and 30 MB sent chunked, without one) against the default 25 MB limit.
Prints the CPU, status counts, p50/p95 latency of successful requests, throughput, and the server's RSS
over time. Only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time

import numpy as np
import soundfile as sf


def payloads(rng: np.random.Generator, oversize: bool = True) -> list[tuple[str, bytes, str]]:
    def wav(seconds: float) -> bytes:
        buf = io.BytesIO()
        t = np.arange(int(seconds * 16000)) / 16000
        sf.write(
            buf,
            (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32),
            16000,
            format="WAV",
        )
        return buf.getvalue()

    good = [("good", wav(s), "audio/wav") for s in (1.0, 2.5, 4.0, 6.0)]
    bad = [
        ("bad-not-audio", b"not audio at all" * 64, "audio/wav"),
        ("bad-empty", b"", "audio/wav"),
        ("bad-truncated", wav(2.0)[:60], "audio/wav"),
        ("bad-type", b"hello", "text/plain"),
    ]
    big = [("oversize-length", bytes(30 * 2**20), "audio/wav"), ("oversize-chunked", None, "audio/wav")]
    return good * 3 + bad + (big if oversize else [])  # 3 good for each bad


async def chunked(total: int = 30 * 2**20, piece: int = 64 * 1024):
    """A body without Content-Length (Transfer-Encoding: chunked): limits must hold while it streams."""
    for _ in range(total // piece):
        yield bytes(piece)


async def client(base: str, items, rng, stop_at: float, results: list) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=120) as http:
        while time.perf_counter() < stop_at:
            kind, body, ctype = items[int(rng.integers(len(items)))]
            t0 = time.perf_counter()
            try:
                content = chunked() if body is None else body
                r = await http.post(f"{base}/v1/transcribe", content=content, headers={"content-type": ctype})
                results.append((kind, r.status_code, time.perf_counter() - t0))
            except httpx.HTTPError as e:  # a server may close a connection whose oversize body it refused
                results.append((kind, f"exception {type(e).__name__}", time.perf_counter() - t0))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main_async(args) -> None:
    import httpx
    from local_server import local_server  # bench/ is on the path when run as a script

    with local_server(args.model) as (base, pid):
        rng = np.random.default_rng(0)
        items = payloads(rng, not args.no_oversize)
        results: list = []
        memory = [rss_mb(pid)]
        stop_at = time.perf_counter() + args.seconds
        tasks = [
            asyncio.create_task(client(base, items, np.random.default_rng(i), stop_at, results))
            for i in range(args.clients)
        ]
        started = time.perf_counter()
        while not all(t.done() for t in tasks):
            await asyncio.sleep(1)
            memory.append(rss_mb(pid))
        elapsed = time.perf_counter() - started
        healthy = httpx.get(f"{base}/health", timeout=10).status_code == 200
    report(results, elapsed, memory, healthy, args)


def report(results, elapsed, memory, healthy, args) -> None:
    from collections import Counter

    from unispeech.precision import cpu_flags

    counts = Counter(
        (kind.split("-")[0] if kind.startswith(("good", "bad")) else kind, status) for kind, status, _ in results
    )
    ok = sorted(t for kind, status, t in results if status == 200)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {__import__('os').cpu_count()} cores, flags {' '.join(sorted(cpu_flags())) or 'none of note'}")
    print(f"{args.clients} clients, {elapsed:.1f} s, {len(results)} requests ({len(results) / elapsed:.1f}/s)")
    for (kind, status), n in sorted(counts.items(), key=str):
        print(f"  {kind:5s} -> {status}: {n}")
    if ok:
        print(
            f"  successful: {len(ok)} ({len(ok) / elapsed:.2f}/s), latency p50 {np.percentile(ok, 50):.2f} s, "
            f"p95 {np.percentile(ok, 95):.2f} s"
        )
    print(f"  5xx or exceptions: {sum(1 for _, s, _ in results if not isinstance(s, int) or s >= 500)}")
    print(
        f"  server RSS: start {memory[0]:.0f} MB, max {max(memory):.0f} MB, end {memory[-1]:.0f} MB; "
        f"healthy after: {healthy}"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--no-oversize", action="store_true", help="good and bad uploads only")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
