"""Time models on this machine: the measurements `edgeprune calibrate` fits a host
cost model to (``edgeprune measure``).

The timing is ai-edge-litert's, here, with a Linux profile's kernels and threads;
the rows take that profile's clock and cost model.
"""

from __future__ import annotations

import datetime
import logging
import os

from edgeprune.errors import BadInputError
from edgeprune.estimates import measurements

log = logging.getLogger(__name__)


def measure_host(
    models: list[str],
    target: str = "host",
    runs: int | None = None,
    out: str | None = None,
    append: bool = False,
    max_model_bytes: int | None = None,
) -> tuple[list[dict], str]:
    """Time each .tflite of ``models`` on this machine with ``target``'s kernels and
    threads, ``runs`` invokes each (default: the profile's).

    Returns the measurement rows and their CSV text. Side effects: with ``out``,
    that text is written there (after the file's own rows with ``append``); each
    model's median and the file written are logged. A model over
    ``max_model_bytes`` (default 64 MiB) is refused unread.

    Raises:
        BadInputError: a microcontroller profile, ``append`` without ``out``, ``out``
            exists without ``append`` or is not a measurements file, a model that
            is not a readable .tflite.
        RunnerError: a model does not run in ai-edge-litert.
    """
    from edgeprune.artifacts import read_flatbuffer
    from edgeprune.runners.host import measure_latency
    from edgeprune.target import load_target

    t = load_target(target)
    if t.runtime != "litert":
        raise BadInputError(
            f"{t.id} runs TFLite Micro on a microcontroller; `measure` times "
            f"LiteRT on this machine: use --target host (or a Linux profile)"
        )
    if append and out is None:
        raise BadInputError("--append needs --out, the measurements file to extend")
    existing = measurements.existing_measurements(out, append) if out is not None else ""
    folder = os.path.dirname(os.path.abspath(out)) if out else os.getcwd()
    today = datetime.date.today().isoformat()
    rows = []
    for path in models:
        data = read_flatbuffer(path, max_model_bytes).data
        m = measure_latency(data, t.kernels, t.latency.threads, runs=runs or t.latency.runs)
        log.info("%s: %.4g ms (%s)", path, m.p50_ms, m.text)
        rows.append(
            measurements.measurement_row(
                path,
                m.p50_ms,
                t.clock_hz,
                t.latency.cost_model_id(t),
                m.where,
                f"edgeprune measure --target {t.id}, {today}: {m.text}",
                folder,
            )
        )
    header = f"Measured with `edgeprune measure` on {today}; ms is the median invoke time."
    if out is not None:
        measurements.write_measurements(out, rows, header, existing)
        log.info("wrote %d row%s to %s", len(rows), "s" if len(rows) != 1 else "", out)
    return rows, measurements.measurements_csv(rows, header, existing)
