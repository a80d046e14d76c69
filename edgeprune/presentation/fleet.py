"""The pass/fail table of `make all-targets`: one row per device build folder.

Usage: ``python -m edgeprune.presentation.fleet BUILD_DIR TARGET...``. Reads each
``BUILD_DIR/TARGET/report.json`` (and ``BUILD_DIR/TARGET.exit``, the exit code
make recorded) and prints flash, RAM and latency against budget and the verdict
(latency is the estimate, or the measurement on a profile that measures). Exits
3 if any device failed its budget, 1 if any build failed otherwise, else 0.
"""

from __future__ import annotations

import os
import sys

from edgeprune.presentation.table import table


def row(build_dir: str, target: str) -> tuple[list[str], int]:
    """The table row of ``build_dir/target`` and the exit code its build recorded."""
    from edgeprune import report
    from edgeprune.errors import BadInputError

    exit_path = os.path.join(build_dir, f"{target}.exit")
    code = int(open(exit_path).read().strip()) if os.path.exists(exit_path) else 0
    report_path = os.path.join(build_dir, target, report.REPORT_NAME)
    if not os.path.exists(report_path):
        return [target, "-", "-", "-", "-", f"ERROR (exit {code}, see {target}.log)"], code or 1
    try:
        stages = report.read(report_path).stages
    except BadInputError as exc:
        return [target, "-", "-", "-", "-", f"ERROR ({exc})"], code or 1
    final = stages.evaluate.get("final")
    accuracy = None if final is None else final.figures.get("accuracy")
    acc = "-" if accuracy is None else f"{accuracy:.4f}"
    check = stages.check
    if check is None:
        return [target, "-", "-", "-", acc, f"ERROR (exit {code})"], code or 1

    def cell(name):
        r = check.rule(name)
        if r is None or r.figure is None:
            return "-"
        if name == "latency":
            kind = "measured" if check.latency_measured else "est."
            return f"{r.figure:,.3g} / {r.budget:,.4g} ({kind})"
        return f"{r.figure:,.0f} / {r.budget:,.0f}"

    verdict = "PASS" if check.ok and code == 0 else ("FAIL" if not check.ok
                                                     else f"exit {code}")
    return [target, cell("flash"), cell("ram"), cell("latency"), acc, verdict], code


def main(argv: list[str]) -> int:
    build_dir, targets = argv[0], argv[1:]
    rows = [["target", "flash B (used / budget)", "RAM B (used / budget)",
             "latency ms (figure / budget)", "int8 accuracy", "verdict"]]
    codes = []
    for target in targets:
        r, code = row(build_dir, target)
        rows.append(r)
        codes.append(code)
    print("\n".join(table(rows)))
    if any(c == 3 for c in codes):
        return 3
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
