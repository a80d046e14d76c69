"""The summary's run time includes start-up (issue 15: 44.8 s reported, 94 s waited)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edgeprune.presentation import summary

#: taken when pytest imported this module, long after this process started
IMPORTED = time.monotonic()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_process_age_counts_from_before_the_interpreter_ran_this_module():
    age = summary.process_seconds()
    assert age is not None
    # /proc counts in clock ticks (10 ms): allow two of them
    assert age >= time.monotonic() - IMPORTED - 0.02


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_a_child_reads_its_own_start_not_its_parents():
    """A fresh interpreter is younger than this test process."""
    code = "from edgeprune.presentation.summary import process_seconds as p; print(p())"
    child = float(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert 0 <= child < summary.process_seconds()


def test_run_time_shows_the_pipeline_and_the_whole_process(monkeypatch):
    monkeypatch.setattr(summary, "process_seconds", lambda: 94.04)
    assert summary.run_time(44.83) == "44.8 s; 94.0 s since the process started"


def test_run_time_without_proc_shows_the_pipeline_alone(monkeypatch):
    monkeypatch.setattr(summary, "process_seconds", lambda: None)
    assert summary.run_time(44.83) == "44.8 s"


def test_a_process_name_with_spaces_and_parentheses_is_read(tmp_path, monkeypatch):
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", *["0"] * 18, str(5 * ticks)]  # field 22 (starttime) is 5 s after boot
    stat = tmp_path / "stat"
    stat.write_text(f"123 (a b) c)) {' '.join(fields)} 0 0\n")
    uptime = tmp_path / "uptime"
    uptime.write_text("65.00 100.00\n")
    real_open = open

    def fake_open(path, *args, **kwargs):
        mapped = {"/proc/self/stat": stat, "/proc/uptime": uptime}.get(path, path)
        return real_open(mapped, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert summary.process_seconds() == pytest.approx(60.0)
