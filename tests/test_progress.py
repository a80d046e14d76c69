"""Progress of long work (edgeprune.progress): bars on a terminal, plain lines elsewhere,
nothing with -q; and the loops that report through it (epochs, rounds, fit candidates,
the arena search, validation samples).

Time never enters an assertion: the rate of plain lines is tested with a fake clock.
"""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import subprocess
import sys

import numpy as np
import pytest

from edgeprune import progress

PROGRESS_LOG = logging.getLogger("edgeprune.progress")
ARENA_LINE = re.compile(r"arena search: try (\d+), [\d,]+ B (runs|too small)")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def screen(output: str) -> list[str]:
    """The lines a terminal shows after ``output``: enough of one for rich's bars
    (carriage return, erase line, cursor up, colours ignored)."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            rows += [""] * (row + 1 - len(rows))
        elif token.endswith("K"):
            rows[row] = rows[row][:col] if token in ("\x1b[K", "\x1b[0K") else ""
        elif token.endswith("A"):
            row = max(0, row - int(token[2:-1] or 1))
        elif not token.startswith("\x1b"):
            rows[row] = rows[row][:col].ljust(col) + token + rows[row][col + len(token) :]
            col += len(token)
    return [r.rstrip() for r in rows]


@pytest.fixture
def lines():
    """The plain progress lines, whatever the CLI tests before left on the
    ``edgeprune`` logger (a -q run sets it to WARNING and stops propagation)."""
    saved = (progress._settings.mode, progress._settings.stream, progress._settings.log_every_s)
    handler, level = Lines(), PROGRESS_LOG.level
    PROGRESS_LOG.addHandler(handler)
    PROGRESS_LOG.setLevel(logging.INFO)
    yield handler.lines
    PROGRESS_LOG.removeHandler(handler)
    PROGRESS_LOG.setLevel(level)
    progress.configure(saved[0], stream=saved[1], log_every_s=saved[2])


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress._settings, "clock", lambda: now[0])
    return now


def test_log_mode_writes_a_line_per_step_with_the_count_when_asked(lines):
    progress.configure("log", log_every_s=0)
    with progress.task("training", total=3, unit="epoch") as bar:
        bar.advance(status="loss 1.2")
        bar.update("waiting")  # a status alone logs nothing
        bar.advance()
        bar.advance(status="loss 0.4")
    assert lines == [
        "training: epoch 1/3, loss 1.2",
        "training: epoch 2/3, waiting",
        "training: epoch 3/3, loss 0.4",
    ]


def test_log_mode_writes_at_most_a_line_every_few_seconds_and_the_end(lines, clock):
    progress.configure("log", log_every_s=5.0)
    with progress.task("validation on host", total=100, unit="sample") as bar:
        for i in range(100):
            clock[0] = i * 0.2  # a step every 0.2 s: 20 s in all
            bar.advance()
        clock[0] = 20.0
    assert lines == [
        "validation on host: sample 26/100",  # 5.0 s
        "validation on host: sample 51/100",
        "validation on host: sample 76/100",
        "validation on host: sample 100/100",  # the end, not logged by a step
    ]


def test_work_that_ends_quickly_logs_nothing_and_a_failed_task_no_end_line(lines, clock):
    progress.configure("log", log_every_s=5.0)
    with progress.task("arena search", unit="try") as bar:
        clock[0] = 1.0
        bar.advance(status="4,064 B runs")
    with pytest.raises(KeyboardInterrupt), progress.task("sweep trials", total=4) as bar:
        clock[0] = 10.0
        bar.advance(status="best accuracy 0.97")  # 9 s after the start: logged
        clock[0] = 30.0
        raise KeyboardInterrupt
    assert lines == ["sweep trials: 1/4, best accuracy 0.97"]


def test_a_loop_that_logs_its_own_steps_adds_no_plain_line(lines):
    progress.configure("log", log_every_s=0)
    with progress.task("structured rounds", 2, "round", plain=False) as bar:
        bar.advance(status="width 0.7")
        bar.advance()
    assert lines == []


def test_off_mode_shows_nothing(lines, capsys):
    progress.configure("off", log_every_s=0)
    with progress.task("training", total=2, unit="epoch") as bar:
        bar.advance(2)
    assert lines == [] and capsys.readouterr().err == ""


def test_bars_draw_on_the_stream_and_log_records_print_whole_above_them(lines):
    stream = io.StringIO()
    logger = logging.getLogger("edgeprune")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        progress.configure("bar", stream=stream, log_every_s=0)
        with progress.task("structured rounds", 2, "round") as outer:
            with progress.task("structured fine-tuning", total=3, unit="epoch") as inner:
                assert progress._bars.users == 2  # one display for both
                inner.advance(status="loss 0.5")
                logging.getLogger("edgeprune.stage").warning("a log record mid-bar")
            outer.advance(status="width 0.700")
        assert progress._bars is None and handler.stream is stream  # restored
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "structured fine-tuning" in text and "\r" in text and "1/3" in text
    assert "a log record mid-bar" in screen(text)  # a whole line, and it stays
    assert "━" not in "".join(screen(text))  # the bars do not
    assert lines == []  # bars, not plain lines


def test_a_forked_child_logs_instead_of_drawing_over_its_parent(lines):
    stream = io.StringIO()
    progress.configure("bar", stream=stream, log_every_s=0)
    with progress.task("sweep trials", total=2) as parent:
        progress._bars.pid = -1  # as a child forked while the parent's bar is live sees it
        with progress.task("baseline training", total=1, unit="epoch") as child:
            child.advance()
        progress._bars.pid = os.getpid()
        parent.advance()
    assert lines == ["baseline training: epoch 1/1"]


def test_the_mode_follows_the_stream_and_quiet(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        assert progress.mode_for(terminal) == "bar"
        assert progress.mode_for(terminal, quiet=True) == "off"
        monkeypatch.setenv("TERM", "dumb")
        assert progress.mode_for(terminal) == "log"
    os.close(master)
    assert progress.mode_for(io.StringIO()) == "log"
    with pytest.raises(ValueError, match="progress mode 'fancy' is unknown; choose from bar"):
        progress.configure("fancy")


def test_progress_imports_neither_rich_nor_tensorflow_until_a_bar_is_drawn():
    code = (
        "import sys, edgeprune.progress as p\n"
        "with p.task('x', 2) as t: t.advance()\n"
        "print(sorted(m for m in ('rich', 'tensorflow', 'tf_keras') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


# ------------------------------------------------------------ the loops that report


def test_the_epoch_callback_counts_each_epoch_of_a_fit_once(lines):
    from edgeprune.adapters import keras as ka

    ka.seed_everything(0)
    model = ka.keras.Sequential([ka.keras.Input((4,)), ka.keras.layers.Dense(2)])
    ka.compile_for(model, "regression", 0.01, False)
    x = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    progress.configure("log", log_every_s=0)
    metrics = ka.fit(model, x, x[:, :2], epochs=4, batch_size=8, seed=0, description="fitting")
    assert [line.split(",")[0] for line in lines] == [f"fitting: epoch {i}/4" for i in (1, 2, 3, 4)]
    assert lines[-1] == f"fitting: epoch 4/4, loss {metrics['loss']:.4g}"


def test_validation_samples_and_arena_tries_log_every_two_seconds_even_with_v(
    lines, monkeypatch, int8_model, digits
):
    """Samples and arena tries are quick steps: with -v (a line per step) their lines
    still come at most every FAST_STEPS_S; here the clock moves 1 s per reading."""
    from edgeprune.runners.host import HostRunner
    from edgeprune.tflm import probe

    ticks = iter(range(10_000))
    monkeypatch.setattr(progress._settings, "clock", lambda: float(next(ticks)))
    progress.configure("log", log_every_s=0)
    assert progress.FAST_STEPS_S == 2.0
    HostRunner(int8_model).run(digits.x_test[:5])
    # read at the start (0) and each sample (1..5): lines at 2 and 4, the end at 6
    assert lines == [f"validation on host: sample {i}/5" for i in (2, 4, 5)]
    lines.clear()
    arena = probe.find_arena(int8_model)
    tries = [int(m[1]) for m in map(ARENA_LINE.fullmatch, lines) if m]
    assert len(tries) == len(lines) and arena.tries > 2
    assert tries == [*range(2, arena.tries + 1, 2), *([arena.tries] if arena.tries % 2 else [])]


def test_structured_rounds_and_fit_candidates_show_as_bars(lines):
    from conftest import build_tiny

    from edgeprune.structured.rounds import StructuredOptions, prune_structured

    model = build_tiny("sequential")
    limit = model.count_params() // 2
    stream = io.StringIO()
    progress.configure("bar", stream=stream)
    result = prune_structured(
        model,
        StructuredOptions(goal="fit", rounds=2),
        fits=lambda m: m.count_params() <= limit,
    )
    text = stream.getvalue()
    assert "structured rounds" in text and "2/2" in text
    assert "structured fit" in text and "candidate" in text and "width 0." in text
    assert len(result.rounds) == 2 and lines == []


# ------------------------------------------------------------ whole commands

QUICK_RUN = ["run", "--train-epochs", "2", "--epochs", "1", "--calibration-samples", "50"]
STRUCTURED = ["--structured", "width", "--structured-rounds", "2", "--structured-epochs", "2"]


def _invoke(*args: str):
    from click.testing import CliRunner

    from edgeprune.cli import main

    saved = (progress._settings.mode, progress._settings.stream, progress._settings.log_every_s)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        progress.configure(saved[0], stream=saved[1], log_every_s=saved[2])


def test_a_structured_run_off_a_terminal_logs_a_plain_line_per_epoch(tmp_path):
    """stderr is not a terminal: no bar, a line per epoch (-v: every step) with its
    count, in the order the stages train; rounds keep their own line, said once."""
    r = _invoke("-v", *QUICK_RUN, *STRUCTURED, "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.stderr
    assert "━" not in r.stderr and "\r" not in r.stderr
    epochs = [
        line.removeprefix("edgeprune: ").split(",")[0]
        for line in r.stderr.splitlines()
        if ": epoch " in line
    ]
    assert epochs == [
        "baseline training: epoch 1/2",
        "baseline training: epoch 2/2",
        *["structured fine-tuning: epoch 1/2", "structured fine-tuning: epoch 2/2"] * 2,
        "prune fine-tuning: epoch 1/1",
    ]
    assert r.stderr.count("structured round ") == 2  # the stage's lines, no progress copy
    assert "structured rounds:" not in r.stderr


def test_quiet_prints_nothing_on_stderr(tmp_path):
    r = _invoke("-q", *QUICK_RUN, "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    assert "edgeprune run ->" in r.stdout  # the result still shows


def _on_a_terminal(argv: list[str], timeout_s: float = 600) -> tuple[int, str]:
    """Run ``argv`` with a 100x30 pseudo-terminal as stdin, stdout and stderr;
    its exit code and everything it wrote there."""
    import fcntl
    import select
    import signal
    import struct
    import termios
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    output, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 1.0)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                output.append(data)
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(output).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_run_on_a_terminal_draws_bars_and_leaves_readable_lines(tmp_path):
    """The real command under a pseudo-terminal: through the native-stderr filter
    the terminal is still seen, bars are drawn and redrawn in place (carriage
    returns), and once they are gone the screen holds the log lines and the
    summary as they would read without bars."""
    out = tmp_path / "run"
    code, output = _on_a_terminal(
        [sys.executable, "-m", "edgeprune", *QUICK_RUN, *STRUCTURED, "--out", str(out)]
    )
    assert code == 0, output
    assert "\r\x1b[2Kbaseline training" in output and "━" in output
    for description in ("structured rounds", "structured fine-tuning", "prune fine-tuning"):
        assert description in output
    shown = screen(output)
    assert "━" not in "".join(shown) and ": epoch " not in "\n".join(shown)

    def at(start: str) -> int:  # the first screen line that starts so
        return next(i for i, line in enumerate(shown) if line.startswith(start))

    assert (
        at("edgeprune: baseline: training digits_cnn for 2 epochs")
        < at("edgeprune: structured: width goal, l1 importance, global ranking, 2 round(s)")
        < at(f"report: {out}/report.json")
    )
    assert any(line.startswith("edgeprune: structured round 2/2: removed ") for line in shown)
    assert (out / "report.json").exists()


@pytest.mark.slow
def test_quiet_on_a_terminal_draws_no_bar(tmp_path):
    code, output = _on_a_terminal(
        [sys.executable, "-m", "edgeprune", "-q", *QUICK_RUN, "--out", str(tmp_path / "run")]
    )
    assert code == 0, output
    assert "━" not in output and "edgeprune:" not in output and "\x1b[" not in output
    assert "edgeprune run ->" in output  # stdout: the result
