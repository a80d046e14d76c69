"""Keep TensorFlow's native start-up chatter off the user's terminal.

TensorFlow's C++ runtime writes lines such as ``I0000 ... port.cc:153]
oneDNN custom operations are on`` straight to file descriptor 2, and no
environment variable silences them in TF 2.21 (``TF_CPP_MIN_LOG_LEVEL`` does
not). :func:`filter_native_stderr` routes fd 2 through a small child process
that drops those lines and forwards everything else. A child process, not a
thread, so that if the native code aborts the process, the child still
forwards its last words.
"""

from __future__ import annotations

import os
import subprocess
import sys

# absl's log prefix: severity letter, MMDD, time (TF 2.21 prints seconds since
# the epoch: "I0000 00:00:1795292630.202176"), thread, file:line]. Info,
# warning and error lines go; fatal (F) lines and everything else pass.
NOISE = (
    rb"^([IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|fully_quantize: \d, inference_type"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)

_FILTER = f"""
import re, sys
noise = re.compile({NOISE!r})
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not noise.match(line):
        out.write(line); out.flush()
"""


def filter_native_stderr() -> None:
    """Route fd 2 through the filter; ``sys.stderr`` keeps writing to the terminal."""
    try:
        original = os.dup(2)
        child = subprocess.Popen(
            [sys.executable, "-c", _FILTER], stdin=subprocess.PIPE, stdout=original, close_fds=True
        )
    except OSError:
        return
    sys.stderr.flush()
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()
    sys.stderr = open(
        original,
        "w",
        buffering=1,
        encoding="utf-8",  # noqa: SIM115
        errors="replace",
        closefd=False,
    )
