"""Does ``edgeprune check`` refuse a model that TFLite Micro runs? Every ``.tflite`` in a folder.

For each model: does TFLite Micro on this host run it (loaded in its worker
with a 64 MiB arena and invoked once on seeded random inputs, without any of
edgeprune's checks), is it read at all (edgeprune's verifier), then ``check``
against every microcontroller target (``kind = "mcu"`` in ``targets/``) with the
smallest arena searched once per model, not once per target. Prints one row per
model:

* ``tflm``: ``runs`` when the host's TFLite Micro ran it, else ``no``;
* ``firmware``: how many registrations the generated op resolver
  (``ops_<name>.h``) makes, and how many of them are custom ops TFLite Micro
  ships (its signal library, ``ethos-u``), or ``refused``;
* one column per target: ``fits``, ``over:<rules>`` (a budget rule failed:
  exit 3, not a refusal) or ``REFUSED`` (exit 1, the model cannot run there);

then every refusal, once per model and message, with the targets it holds on.
A refusal of a model that TFLite Micro runs is marked ``WRONG`` unless it is
one of the rules that hold whatever the runtime can do (an activation larger
than the board's RAM, a model compiled for an NPU); the exit code is the number
of such wrong refusals (0 when there is none).

    .venv/bin/python benchmarks/example_models.py /work/fwcheck/models

What this does not prove: that the model fits in the board's flash and RAM
(the budget columns say that), or that the firmware builds (``firmware`` writes
the sources; ``tests/test_firmware.py`` compiles the resolver against stubs).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from dataclasses import dataclass, field

import click

# A refusal by one of these rules is right even when TFLite Micro runs the model:
# one activation larger than the RAM, a model compiled for an NPU. A float32 model
# (TFLite Micro's reference float kernels) or a "mixed" one is not among them.
_RIGHT_WHATEVER_RUNS = ("bytes of RAM of", "compiled by Arm's Vela")
# What "TFLite Micro runs it" means here: loaded with a generous arena and invoked
# once on seeded random inputs by the host's TFLite Micro, without edgeprune's checks.
_PROBE = {"cmd": "probe", "arena_bytes": 64 * 1024 * 1024, "inputs": "random", "seed": 0}


@dataclass
class ModelRow:
    """One model's verdicts: target id -> verdict, and the refusals with their targets."""

    name: str
    ops: dict[str, int] = field(default_factory=dict)
    tflm_runs: bool = False
    firmware: str = "-"  # the op resolver's registrations, or why it has none
    verdicts: dict[str, str] = field(default_factory=dict)
    refusals: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, target: str, message: str) -> None:
        """Record a refusal; messages that differ only by the target's id count as one."""
        self.verdicts[target] = "REFUSED"
        generic = re.sub(rf"\b{re.escape(target)}\b", "<target>", message)
        self.refusals.setdefault(generic, []).append(target)

    def wrong(self) -> list[str]:
        """The refusals of a model TFLite Micro runs, for no rule that holds regardless."""
        if not self.tflm_runs:
            return []
        return [m for m in self.refusals if not any(r in m for r in _RIGHT_WHATEVER_RUNS)]


def mcu_targets() -> list:
    from edgeprune.target import list_targets, load_target

    return [t for t in (load_target(n) for n in list_targets()) if t.kind == "mcu"]


def tflm_runs(data: bytes) -> bool:
    """Does the host's TFLite Micro load and invoke ``data``, edgeprune's verifier aside?"""
    from edgeprune.tflm.client import Worker

    with Worker(data) as worker:
        return worker.request(_PROBE).ok


def render_resolver(model) -> list[str]:
    """The firmware's op resolver lines for ``model`` (``ops_<name>.h`` as ``firmware``
    writes it, rendered in memory)."""
    from edgeprune.firmware import emit

    files = emit.render(model.data, model.name, None)
    ops_h = emit.names(emit.default_name(model.name)).ops_h
    return re.findall(r"resolver\.(Add\w+\([^)]*\)*)", files[ops_h])


def check_folder(folder: str) -> tuple[list[ModelRow], list[str]]:
    """Check every ``.tflite`` in ``folder`` on every MCU target; (rows, target ids)."""
    from edgeprune.artifacts import read_flatbuffer
    from edgeprune.errors import BadInputError, EdgepruneError
    from edgeprune.stages.check import check_flatbuffer
    from edgeprune.tflm import probe

    targets = mcu_targets()
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.tflite"))):
        row = ModelRow(os.path.basename(path))
        rows.append(row)
        with open(path, "rb") as fh:
            row.tflm_runs = tflm_runs(fh.read())
        try:
            model = read_flatbuffer(path)
        except BadInputError as exc:
            for t in targets:
                row.refuse(t.id, str(exc))
            continue
        row.ops = dict(model.info.op_counts)
        try:
            calls = render_resolver(model)
            custom = sum("CUSTOM:" in op for op in row.ops)
            plural = "s" * (len(calls) != 1)
            row.firmware = f"{len(calls)} op{plural}" + (f" ({custom} custom)" if custom else "")
        except EdgepruneError as exc:
            row.firmware = "refused"
            row.refusals.setdefault(f"firmware: {exc}", []).append("all")
        try:
            arena = probe.find_arena(model.data) if row.tflm_runs else None
        except EdgepruneError:
            arena = None
        for t in targets:
            try:
                result = check_flatbuffer(model, t, arena=arena)
            except BadInputError as exc:
                row.refuse(t.id, str(exc))
                continue
            failed = [r.name for r in result.rules if not r.ok]
            row.verdicts[t.id] = "fits" if not failed else "over:" + ",".join(failed)
    return rows, [t.id for t in targets]


def report(rows: list[ModelRow], target_ids: list[str]) -> list[str]:
    """The table and the refusals, as lines."""
    from edgeprune.presentation.table import table

    header = ["model", "ops", "tflm", "firmware", *target_ids]
    body = [
        [
            r.name,
            str(len(r.ops)),
            "runs" if r.tflm_runs else "no",
            r.firmware,
            *(r.verdicts.get(t, "-") for t in target_ids),
        ]
        for r in rows
    ]
    lines = table([header, *body], right={1})
    lines += ["", "refusals:"]
    for r in rows:
        wrong = set(r.wrong())
        for message, where in r.refusals.items():
            mark = "WRONG " if message in wrong else ""
            lines.append(f"  {mark}{r.name} on {', '.join(where)}: {message}")
    wrong_total = sum(len(r.wrong()) for r in rows)
    runs = sum(r.tflm_runs for r in rows)
    lines += [
        "",
        f"{len(rows)} models, {runs} run by TFLite Micro on this host; "
        f"{wrong_total} wrong refusals of a model TFLite Micro runs",
    ]
    return lines


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def main(folder: str) -> None:
    """Check every .tflite in FOLDER on every MCU target and print the verdicts."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rows, target_ids = check_folder(folder)
    if not rows:
        raise click.ClickException(f"no .tflite file in {folder}")
    click.echo("\n".join(report(rows, target_ids)))
    sys.exit(min(sum(len(r.wrong()) for r in rows), 125))


if __name__ == "__main__":
    main()
