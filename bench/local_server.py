"""`unispeech serve` in a child process on 127.0.0.1 (a free port), for the benches that load it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time


@contextlib.contextmanager
def local_server(model: str | None = None):
    """Yields (base URL, server pid) once /health answers; stops the server afterwards."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "unispeech", "serve", "--port", str(port)] + (["--model", model] if model else [])
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.25)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)
