"""The pass/fail table of a folder of device builds (``edgeprune fleet``, which
``make all-targets`` runs): one row per target.

Reads each ``BUILD_DIR/TARGET/report.json`` (and ``BUILD_DIR/TARGET.exit``, the
exit code make recorded) and shows flash (storage on Linux), RAM and latency
against budget and the verdict (latency is the estimate, or the measurement on
a profile that measures; with no latency budget set it is reported, not
judged). A run that compressed its weights (``[compress]``) shows the dense int8
model's figure in brackets beside the compressed model's. A cell with no
figure says why in words. :attr:`Fleet.exit_code` is 3 if any device failed
its budget, 1 if any build failed otherwise, else 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgeprune.errors import BadInputError
from edgeprune.presentation.table import table
from edgeprune.rules.result import format_quantity


def row(build_dir: str, target: str) -> tuple[list[str], int]:
    """The table row of ``build_dir/target`` and the exit code its build recorded."""
    from edgeprune import report
    from edgeprune.errors import BadInputError

    exit_path = os.path.join(build_dir, f"{target}.exit")
    code = int(open(exit_path).read().strip()) if os.path.exists(exit_path) else 0
    report_path = os.path.join(build_dir, target, report.REPORT_NAME)
    none = ["no report"] * 3 + ["not evaluated"]
    if not os.path.exists(report_path):
        return [target, *none, f"ERROR (exit {code}, see {target}.log)"], code or 1
    try:
        stages = report.read(report_path).stages
    except BadInputError as exc:
        return [target, *none, f"ERROR ({exc})"], code or 1
    final = stages.evaluate.get("final")
    accuracy = None if final is None else final.figures.get("accuracy")
    acc = "not evaluated" if accuracy is None else f"{accuracy:.4f}"
    check = stages.check
    if check is None:
        return [target, *["not checked"] * 3, acc, f"ERROR (exit {code})"], code or 1

    def cell(*names):
        r = next((check.rule(n) for n in names if check.rule(n) is not None), None)
        if r is None or r.figure is None:
            return "not measured"
        kind = ""
        if r.name == "latency":
            kind = " (measured)" if check.latency_measured else " (est.)"
        figure = format_quantity(r.figure, r.unit) + _dense(stages, r.name)
        if not r.judged:
            return f"{figure}{kind}, no budget set"
        return f"{figure} / {format_quantity(r.budget, r.unit)}{kind}"

    verdict = "PASS" if check.ok and code == 0 else ("FAIL" if not check.ok else f"exit {code}")
    return [target, cell("flash", "storage"), cell("ram"), cell("latency"), acc, verdict], code


def _dense(stages, rule: str) -> str:
    """`` (dense X)`` after a compressed model's figure: the dense int8 model's."""
    compress = stages.compress
    if compress is None or not compress.model or compress.dense_check is None:
        return ""
    dense = compress.dense_check.rule(rule)
    return "" if dense is None else f" (dense {format_quantity(dense.figure, dense.unit)})"


HEADER = (
    "target",
    "flash or storage (used / budget)",
    "RAM (used / budget)",
    "latency (figure / budget)",
    "int8 accuracy",
    "verdict",
)


@dataclass(frozen=True)
class Fleet:
    """The table of one build folder: a row and an exit code per target."""

    build_dir: str
    targets: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    codes: tuple[int, ...]

    @property
    def exit_code(self) -> int:
        """3 if any device failed its budget, 1 if any build failed otherwise, else 0."""
        if 3 in self.codes:
            return 3
        return 1 if any(self.codes) else 0

    @property
    def failures(self) -> str:
        """One line naming the targets that did not pass ("" when all did)."""
        failed = [f"{t} (exit {c})" for t, c in zip(self.targets, self.codes, strict=True) if c]
        if not failed:
            return ""
        return (
            f"{len(failed)} of {len(self.targets)} targets did not pass: "
            f"{', '.join(failed)}; see {os.path.join(self.build_dir, '<target>.log')}"
        )

    def text(self) -> str:
        """The aligned table."""
        return "\n".join(table([list(HEADER), *map(list, self.rows)]))


def discover(build_dir: str) -> list[str]:
    """The targets built in ``build_dir``: each ``NAME.exit`` file and each folder
    holding a report.json, sorted.

    Raises:
        BadInputError: ``build_dir`` holds no build.
    """
    try:
        names = os.listdir(build_dir)
    except OSError as exc:
        raise BadInputError(
            f"cannot read the build folder {build_dir} ({exc.strerror}); run "
            f"`make all-targets` or name the folder it wrote"
        ) from None
    found = {n[: -len(".exit")] for n in names if n.endswith(".exit")}
    found |= {n for n in names if os.path.isfile(os.path.join(build_dir, n, "report.json"))}
    if not found:
        raise BadInputError(
            f"{build_dir} holds no device build (no NAME.exit, no "
            f"NAME/report.json); run `make all-targets` or name the targets"
        )
    return sorted(found)


def fleet(build_dir: str, targets: tuple[str, ...] | list[str] = ()) -> Fleet:
    """The table of ``targets`` (default: every target :func:`discover` finds) in
    ``build_dir``; nothing is written.

    Raises:
        BadInputError: no targets given and none found.
    """
    targets = tuple(targets) or tuple(discover(build_dir))
    rows, codes = zip(*(row(build_dir, t) for t in targets), strict=True)
    return Fleet(build_dir, targets, tuple(map(tuple, rows)), tuple(codes))
