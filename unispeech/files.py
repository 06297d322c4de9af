"""Writing files so that an interruption never leaves a half-written one under the final name."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Union

Content = Union[str, bytes, Callable[[str], None]]


def atomic_write(path: str | os.PathLike, content: Content) -> Path:
    """Write `content` (text, bytes, or a function that writes to the path it is given) to a temporary file
    beside `path`, then rename it into place: the file is either the old one or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if callable(content):
            content(tmp)
        elif isinstance(content, bytes):
            Path(tmp).write_bytes(content)
        else:
            Path(tmp).write_text(content, encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; ours are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
