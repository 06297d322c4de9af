"""Progress bars: live redraws on a terminal, a few plain lines in a log file."""

import io

from unispeech import progress
from unispeech.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_whole_lines_and_no_carriage_returns():
    log = io.StringIO()
    for _ in progress_bar(range(1000), desc="synthesizing", stream=log):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines and all(line.startswith("synthesizing:") for line in lines)
    assert "1000/1000" in lines[-1]
    assert len(lines) <= 3  # the first draw, the last, and at most one minute's redraw between


def test_a_postfix_set_every_update_waits_for_the_next_timed_line():
    """The training loop sets the learning rate as a postfix at every update; that alone drew a line each time."""
    log = io.StringIO()
    bar = progress_bar(total=200, desc="training", stream=log)
    for step in range(200):
        bar.update(1)
        bar.set_postfix(lr=f"{step:.2e}")
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) <= 3 and "200/200" in lines[-1] and "lr=" in lines[-1]


def test_a_log_file_gets_a_line_a_minute_while_the_work_goes_on(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # every update counts as a minute later
    log = io.StringIO()
    bar = progress_bar(total=5, desc="training", stream=log)
    for _ in range(5):
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) >= 5 and "\r" not in log.getvalue()
    counts = [next(i for i in range(6) if f" {i}/5 " in line) for line in lines]
    assert counts[:6] == [0, 1, 2, 3, 4, 5]  # every update on its own line (then the closing redraw)


def test_a_terminal_gets_tqdm_redraws():
    tty = Terminal()
    for _ in progress_bar(range(10), desc="transcribing", stream=tty, mininterval=0):
        pass
    assert "\r" in tty.getvalue()


def test_a_disabled_bar_writes_nothing():
    log = io.StringIO()
    assert list(progress_bar(range(3), enabled=False, stream=log)) == [0, 1, 2]
    assert log.getvalue() == ""
