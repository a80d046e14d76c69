"""A latency measured by timing invokes (the host profile, ``edgeprune measure``).

Kept apart from :mod:`edgeprune.estimates.latency`, which re-exports it, so that
module holds only what estimates. No TensorFlow import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyMeasurement:
    """Wall-clock times of ``runs`` invokes after ``warmup`` untimed ones, in ms."""

    runs: int
    warmup: int
    threads: int
    kernels: str
    p50_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    where: str = ""  # the runtime and machine it was measured on

    @property
    def text(self) -> str:
        threads = f"{self.threads} thread" + ("s" if self.threads > 1 else "")
        return (
            f"median of {self.runs} invokes after {self.warmup} untimed ({self.kernels}, "
            f"{threads}, {self.where}); p90 {self.p90_ms:.4g} ms, min {self.min_ms:.4g} "
            f"ms, max {self.max_ms:.4g} ms"
        )
