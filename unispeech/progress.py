"""Progress bars on stderr: live on a terminal, a plain line a minute in a log file.

tqdm redraws its bar with carriage returns several times a second; redirected to a file (a training job under
nohup, a recipe's log), that is megabytes of one endless line. Off a terminal the bar is drawn at most once a
minute, each time as a line of its own.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

LOG_INTERVAL_S = 60.0


class _LogBar(tqdm):
    """Off a terminal: a new postfix waits for the next timed redraw instead of forcing one (the training loop
    sets one every update, which wrote a line per update)."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


class _LineWriter:
    """A stream for tqdm that turns each redraw ('\\r' + bar) into one line."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *, enabled: bool = True, stream: IO[str] | None = None, **options: Any):
    """tqdm over `iterable` (or with `total=`), on stderr; disabled when not `enabled`."""
    stream = stream or sys.stderr
    if enabled and not _is_terminal(stream):
        options = {**options, "file": _LineWriter(stream), "ascii": True}
        options.update(mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, miniters=1)  # no adaptive redraws
        options.pop("dynamic_ncols", None)
        options.setdefault("ncols", 100)
        return _LogBar(iterable, **options)
    return tqdm(iterable, disable=not enabled, file=stream, **options)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
