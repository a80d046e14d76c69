"""Runners execute a .tflite model somewhere and bring back what it computed.

One interface, one module each: ``host`` (ai-edge-litert here), ``tflm`` (the
tflite-micro interpreter in a worker process), and the device runners. A
runner takes float32 samples and returns a :class:`RunOutput`: the
dequantized outputs, output 0 exactly as the runtime left it (int8 for an
integer model: agreement is measured in its LSB) and one time per inference
with a sentence saying what that time measures. Runners compute no metrics.

A runner that stops part way (a device that goes silent, Ctrl-C) returns what
it has with ``partial`` set and ``error`` saying how far it got. ``choice``
picks the runner for a target and an address and opens it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RunOutput:
    outputs: np.ndarray  # float32, one row per completed sample
    raw: np.ndarray  # output 0 as the runtime produced it, one row per completed sample
    times_ms: np.ndarray  # one per inference; may be empty when the runner cannot time
    timing: str  # what times_ms measures, and with which clock
    where: str  # runtime, version and machine or board
    partial: bool = False
    error: str = ""  # why the run stopped early, naming how far it got
    clock_hz: int | None = None  # the clock the device reported (serial), else None

    @property
    def completed(self) -> int:
        return len(self.outputs)


class Runner(Protocol):
    name: str

    def run(self, x: np.ndarray) -> RunOutput:
        """Run every sample of ``x`` (float32, first axis the batch)."""
        ...


def sample_progress(where: str, samples: int):
    """The progress task of a runner's sample loop (``advance`` once per sample): a
    bar on a terminal, else a plain line every few seconds at most, -v or not
    (samples are quick)."""
    from edgeprune import progress

    return progress.task(
        f"validation on {where}", samples, "sample", log_every_s=progress.FAST_STEPS_S
    )
