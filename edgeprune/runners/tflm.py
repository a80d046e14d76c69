"""Run a ``.tflite`` model in the tflite-micro Python interpreter (reference kernels).

The interpreter runs in a worker process (:mod:`edgeprune.tflm.probe`), so a crash
in TFLite Micro is an error here, not the end of the caller. The arena is the
smallest that works (:func:`micro.find_arena`) unless one is given: a model
that validates here runs in exactly the memory the firmware reserves. A
compressed model on a target with alternate decompression memory runs with
its decoded weights in a block of ``alt_decompression_bytes`` outside the
arena, as the firmware gives them (:func:`edgeprune.stages.check.decoded_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.tflm import probe as micro


@dataclass(frozen=True)
class TflmRunner:
    model: bytes
    arena_bytes: int | None = None
    alt_decompression_bytes: int = 0

    name = "tflm"

    def run(self, x: np.ndarray):
        from edgeprune.runners import RunOutput
        from edgeprune.runners.host import machine_name, package_version

        alt = self.alt_decompression_bytes
        arena = (
            self.arena_bytes
            or micro.find_arena(self.model, alt_decompression_bytes=alt).required_bytes()
        )
        result = micro.run_detailed(self.model, x, arena, alt_decompression_bytes=alt)
        tflm = package_version("tflite-micro")
        block = f" and a {alt:,}-byte alternate decompression block" if alt else ""
        return RunOutput(
            result.outputs,
            result.raw,
            result.times_ms,
            "host wall clock around each TFLite Micro invoke (reference kernels "
            "on this CPU, not a device's time)",
            f"tflite-micro {tflm} with a {arena:,}-byte arena{block} on {machine_name()}",
        )
