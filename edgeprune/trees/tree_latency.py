"""Estimated latency of one prediction of a tree model, from its compiled code's instructions.

The instructions the generated C executes were counted under QEMU
(:func:`count_instructions`: the model built for the core with the target's
compiler and flags, run with ``-singlestep -d exec,nochain`` so that every
executed instruction is one trace line; a prediction's count runs from the entry
of ``<name>_predict`` until control is back in ``main``). :func:`calibrate` fits
(least relative error), per core and input dtype, over digits, breast cancer and
wine trees and forests of several depths and sizes,

    instructions = call + per_node x nodes visited
                   + (more than one member: forest_call + per_member x members
                      + per_summed_output x leaves summed x outputs)

(a classifier forest's pure leaf adds one to its class; only the others add a row)

per task (a classifier's leaves are fractions to sum and argmax, a regressor's
values), and :data:`COUNTS_FILE` holds the fit (``python -m edgeprune.trees.tree_latency``
rewrites it). :func:`estimate` applies it to a forest's *mean* path (leaves
weighted by the training samples that reached them) and reports the *worst* (each
member's deepest path and costliest leaf) in a note, times the core's cycles per
instruction, over the clock.

What it does not tell: QEMU counts instructions, not cycles. The cycles per
instruction are the fitted figures of the CMSIS-NN cost models (straight-line
kernels) or, where none was fitted, an assumption; tree walking is loads and
taken branches (2-4 cycles each on these cores, more with flash wait states), so
the error band is +-100 %, as for other counted code no board measured. The
Cortex-M33 borrows the M4F's counts (same Thumb-2 code, QEMU's an505 boots
secure), the Cortex-A cores and x86-64 the M7's: labelled in the estimate.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.estimates.latency import LatencyEstimate, OpEstimate
from edgeprune.trees.cexport import one_hot
from edgeprune.trees.compile import COMMON_FLAGS, CompileError, run_tool, toolchain
from edgeprune.trees.model import CLASSIFICATION, LEAF, REGRESSION, Forest

COUNTS_FILE = "instruction_counts.toml"  # in edgeprune/trees/c_src/
ERROR_BAND = 1.0
#: core -> (QEMU machine, top of its RAM, has an FPU to enable)
QEMU = {
    "cortex-m0plus": ("microbit", 0x20004000, False),  # nRF51's Cortex-M0: ARMv6-M, as M0+
    "cortex-m4f": ("mps2-an386", 0x20400000, True),
    "cortex-m7": ("mps2-an500", 0x20400000, True),
    "cortex-m55": ("mps3-an547", 0x20400000, True),
}
BORROWED = {
    "cortex-m33": "cortex-m4f",
    "cortex-a53": "cortex-m7",
    "cortex-a72": "cortex-m7",
    "cortex-a76": "cortex-m7",
    "x86-64": "cortex-m7",
}
#: core -> (cycles per instruction, where it comes from)
CPI = {
    "cortex-m4f": (1.205, "the cmsis-nn_cortex-m4f fit's (MLPerf Tiny on NUCLEO-L4R5ZI)"),
    "cortex-m7": (0.8176, "the cmsis-nn_cortex-m7 fit's (dual issue)"),
    "cortex-m33": (0.9855, "the cmsis-nn_cortex-m33 fit's"),
    "cortex-m55": (0.9855, "the cmsis-nn_cortex-m33 fit's, as cmsis-nn_cortex-m55 takes it"),
    "cortex-m0plus": (1.5, "assumed: ARMv6-M loads and taken branches take 2 cycles, ALU 1"),
}
LINUX_CPI = (1.0, "assumed for an out-of-order or dual-issue application core")


def counts_path() -> Path:
    return Path(str(resources.files("edgeprune.trees") / "c_src" / COUNTS_FILE))


def _main_source(name: str, x: np.ndarray, quantized: bool) -> str:
    up = name.upper()
    rows = ",\n".join("{" + ", ".join(f"{float(v)!r}f" for v in row) + "}" for row in x)
    feed = (
        f"{name}_input_t q[{up}_N_FEATURES]; {name}_quantize(rows[i], q); sink = {name}_predict(q);"
        if quantized
        else f"sink = {name}_predict(rows[i]);"
    )
    return (
        f'#include "{name}_model.h"\n'
        f"static const float rows[{len(x)}][{up}_N_FEATURES] = {{\n{rows}\n}};\n"
        f"static volatile __typeof__({name}_predict(0)) sink;\n"
        f"int main(void) {{\n    for (int i = 0; i < {len(x)}; ++i) {{ {feed} }}\n"
        "    return 0;\n}\n"
    )


def _symbol(nm_out: str, symbol: str) -> tuple[int, int]:
    for line in nm_out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == symbol:
            return int(parts[0], 16) & ~1, int(parts[1], 16)
    raise CompileError(f"{symbol} is not in the counting program")


def _segments(log: Path, entry: int, main: tuple[int, int]) -> list[int]:
    """Instructions from each entry to ``entry`` until the PC is back in ``main``."""
    counts, n, inside = [], 0, False
    pc_of = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")
    with open(log) as fh:
        for line in fh:
            m = pc_of.search(line)
            if not m:
                continue
            pc = int(m.group(1), 16)
            if not inside and pc == entry:
                inside, n = True, 0
            if inside:
                if main[0] <= pc < main[0] + main[1]:
                    counts.append(n)
                    inside = False
                else:
                    n += 1
    return counts


def count_instructions(files: dict[str, str], name: str, x: np.ndarray, core: str) -> np.ndarray:
    """Instructions one ``<name>_predict`` executes on each row of ``x``, under QEMU.

    Builds the model with :func:`toolchain`'s compiler and flags (``-Os``) into a
    bare-metal program for the core's QEMU machine (:data:`QEMU`) and runs it.

    Raises:
        BadInputError: no QEMU machine for ``core``; CompilerMissingError: no compiler;
        CompileError: the build failed or QEMU did not run every row.
    """
    if core not in QEMU:
        raise BadInputError(f"no QEMU machine counts {core}; counted cores: {', '.join(QEMU)}")
    machine, stack_top, fpu = QEMU[core]
    chain = toolchain(core)
    vectors = (resources.files("edgeprune.trees") / "c_src" / "qemu_vectors.c").read_text()
    quantized = f"void {name}_quantize(" in files.get(f"{name}_model.h", "")
    defines = [f"-DSTACK_TOP={stack_top:#x}"] + (["-DENABLE_FPU"] if fpu else [])
    x = np.asarray(x, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="edgeprune-count-") as tmp:
        folder = Path(tmp)
        sources = {
            **files,
            "qemu_vectors.c": vectors,
            "count_main.c": _main_source(name, x, quantized),
        }
        for fname, text in sources.items():
            (folder / fname).write_text(text)
        flags = [f for f in COMMON_FLAGS if f != "-fcallgraph-info=su"]
        link = ["-specs=nano.specs", "-specs=rdimon.specs", "-Wl,--section-start=.vectors=0x0"]
        link += ["-Wl,--undefined=edgeprune_vectors", "-Wl,--gc-sections"]
        cs = sorted(p.name for p in folder.glob("*.c"))
        run_tool(
            [chain.cc, *chain.flags, *flags, *defines, "-I.", *cs, *link, "-o", "c.elf", "-lm"],
            folder,
        )
        nm = run_tool([chain.cc.replace("gcc", "nm"), "-S", "c.elf"], folder)
        cmd = [
            "qemu-system-arm",
            "-M",
            machine,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
        ]
        cmd += ["-semihosting-config", "enable=on,target=native", "-singlestep"]
        cmd += ["-d", "exec,nochain", "-D", "trace.log", "-kernel", "c.elf"]
        try:
            proc = subprocess.run(cmd, cwd=folder, capture_output=True, timeout=600, check=False)
        except FileNotFoundError:
            raise BadInputError(
                "qemu-system-arm is not installed; install the Debian package qemu-system-arm"
            ) from None
        counts = _segments(folder / "trace.log", *_entry_and_main(nm, name))
    if proc.returncode != 0 or len(counts) != len(x):
        raise CompileError(
            f"QEMU {machine} ran {len(counts)} of {len(x)} predictions (exit {proc.returncode})"
        )
    return np.asarray(counts, dtype=np.int64)


def _entry_and_main(nm: str, name: str):
    return _symbol(nm, f"{name}_predict")[0], _symbol(nm, "main")


def visits(forest: Forest, x: np.ndarray) -> np.ndarray:
    """Decision nodes each row of ``x`` passes, summed over the members."""
    return np.sum([[len(p) - 1 for p in t.path_nodes(x)] for t in forest.trees], axis=0)


def _summed(forest: Forest, tree, leaves: np.ndarray) -> np.ndarray:
    """1 where the export adds a leaf's whole row to the sums (0: a single tree's class,
    or a pure leaf of a classifier forest, which adds one)."""
    if forest.n_members == 1:
        return np.zeros(len(leaves))
    if forest.task != CLASSIFICATION:
        return np.ones(len(leaves))
    return np.array([0.0 if one_hot(tree.value[leaf]) else 1.0 for leaf in leaves])


def summed_leaves(forest: Forest, x: np.ndarray) -> np.ndarray:
    """Members whose leaf's row each row of ``x`` adds to the sums."""
    return np.sum([_summed(forest, t, t.apply(x)) for t in forest.trees], axis=0)


TERMS = ("call", "per_node", "forest_call", "per_member", "per_summed_output")


def terms(forest: Forest, nodes, summed) -> np.ndarray:
    """The fit's columns (:data:`TERMS`): 1 and the nodes visited; for more than one member
    (leaves summed, divided, the argmax taken) 1, the members, and the summed leaves x the
    outputs (classes, or 1)."""
    nodes = np.atleast_1d(np.asarray(nodes, dtype=np.float64))
    summed = np.atleast_1d(np.asarray(summed, dtype=np.float64))
    many = 0.0 if forest.n_members == 1 else 1.0
    outputs = len(forest.classes) if forest.task == CLASSIFICATION else 1
    one = np.ones_like(nodes)
    return np.column_stack(
        [one, nodes, one * many, one * many * forest.n_members, summed * outputs]
    )


def path_statistics(forest: Forest) -> tuple[float, int, float, int]:
    """Decision nodes and summed leaves on the mean path (leaves weighted by the training
    samples that reached them) and on the worst (each member's deepest path, and a leaf
    that sums a row wherever the member has one)."""
    mean, deepest, mean_summed, worst_summed = 0.0, 0, 0.0, 0
    for t in forest.trees:
        depth = np.zeros(t.n_nodes, dtype=np.int64)
        for i in range(t.n_nodes):  # children come after their parent in scikit-learn's order
            if t.left[i] != LEAF:
                depth[t.left[i]] = depth[t.right[i]] = depth[i] + 1
        leaves = np.nonzero(t.left == LEAF)[0]
        weights = t.n_samples[leaves].astype(np.float64)
        weights = weights if weights.sum() > 0 else None
        summed = _summed(forest, t, leaves)
        mean += float(np.average(depth[leaves], weights=weights))
        mean_summed += float(np.average(summed, weights=weights))
        deepest += int(depth[leaves].max())
        worst_summed += int(summed.max())
    return mean, deepest, mean_summed, worst_summed


def load_counts() -> dict:
    with open(counts_path(), "rb") as fh:
        return tomllib.load(fh)


def estimate(forest: Forest, compiled, target, *, dtype: str = "float") -> LatencyEstimate:
    """Estimated time of one prediction of ``forest`` on ``target`` (see the module text).

    ``compiled`` is the :class:`~edgeprune.trees.compile.CompiledSize` of the same
    export (its core must be the target's); ``dtype`` the export's input dtype.

    Raises:
        BadInputError: ``compiled`` measured for another core, or no counts for
            the core and dtype (Xtensa).
    """
    core = target.core
    if compiled is not None and compiled.core != core:
        raise BadInputError(f"compiled size is for {compiled.core}, but {target.id} is {core}")
    counted = BORROWED.get(core, core)
    key = f"{counted}-{dtype}"
    table = load_counts()
    if key not in table:
        raise BadInputError(
            f"no instruction counts for {core} with {dtype} inputs; counted: {', '.join(table)}"
        )
    fit = table[key][forest.task]
    mean, deepest, mean_summed, worst_summed = path_statistics(forest)
    coef = np.array([fit[t] for t in TERMS])
    cols = terms(forest, [mean, deepest], [mean_summed, worst_summed])
    instr_mean, instr_deep = (cols @ coef).tolist()
    cpi, cpi_source = CPI.get(core, LINUX_CPI)
    ms = instr_mean * cpi / target.clock_hz * 1e3
    power = target.latency.active_power_mw
    notes = [
        f"worst path: {deepest} decision nodes, {instr_deep:.0f} instructions, "
        f"{instr_deep * cpi / target.clock_hz * 1e3:.4g} ms",
        f"cycles per instruction {cpi:g}: {cpi_source}",
    ]
    notes.append(
        f"the fit's error on its {fit['rows']} counted predictions: median "
        f"{fit['median_rel_error']:.0%}, max {fit['max_rel_error']:.0%}"
    )
    if counted != core:
        notes.append(f"instruction counts of {counted} used for {core}")
    source = (
        f"instructions counted under QEMU {fit['machine']} ({fit['compiler']}, -Os), fitted "
        f"over {fit['rows']} predictions of {fit['models']} models: mean path {mean:.1f} nodes"
    )
    row = OpEstimate(0, "TREE_WALK", forest.kind, "tree", dtype, 0, instr_mean * cpi, ms)
    return LatencyEstimate(
        target=target.id,
        cost_model=f"tree-walk_{counted}_{dtype}",
        basis="derived",
        source=source,
        clock_hz=target.clock_hz,
        threads=1,
        ms=ms,
        energy_uj=ms * power if power is not None else None,
        power_mw=power,
        ops=(row,),
        accuracy=None,
        notes=tuple(notes),
        error_band=ERROR_BAND,
        error_band_basis="instructions counted, cycles per instruction not measured on a board",
    )


def _calibration_models(task: str):
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from edgeprune.trees.model import from_sklearn

    for load in (load_digits, load_breast_cancer, load_wine):
        x, y = load(return_X_y=True)
        if task == CLASSIFICATION:
            models = (
                DecisionTreeClassifier(random_state=0),
                DecisionTreeClassifier(max_depth=4, random_state=0),
                RandomForestClassifier(n_estimators=10, random_state=0),
                RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0),
                RandomForestClassifier(n_estimators=40, max_depth=2, random_state=0),
            )
        else:
            models = (
                DecisionTreeRegressor(max_depth=10, random_state=0),
                DecisionTreeRegressor(max_depth=3, random_state=0),
                RandomForestRegressor(n_estimators=5, max_depth=8, random_state=0),
                RandomForestRegressor(n_estimators=20, max_depth=5, random_state=0),
            )
        for est in models:
            est.fit(x[1::2], y[1::2])
            yield from_sklearn(est), x[0:40:2].astype(np.float32)


def calibrate(core: str, dtype: str, task: str) -> dict:
    """Count the calibration models on ``core`` under QEMU and fit the instruction model."""
    from edgeprune.trees import cexport
    from edgeprune.trees.compile import compiler_version

    rows, counts, n_models = [], [], 0
    for forest, x in _calibration_models(task):
        files = cexport.generate(forest, "cal", dtype)
        counts.append(count_instructions(files, "cal", x, core))
        rows.append(terms(forest, visits(forest, x), summed_leaves(forest, x)))
        n_models += 1
    a, y = np.vstack(rows), np.concatenate(counts).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a / y[:, None], np.ones_like(y), rcond=None)  # relative error
    rel = np.abs(a @ coef - y) / y
    return {
        "machine": QEMU[core][0],
        "compiler": compiler_version(toolchain(core).cc),
        "models": n_models,
        "rows": int(len(y)),
        **{t: round(float(c), 4) for t, c in zip(TERMS, coef, strict=True)},
        "median_rel_error": round(float(np.median(rel)), 4),
        "max_rel_error": round(float(np.max(rel)), 4),
    }


def write_counts(path: Path | None = None) -> Path:
    """Re-count every core of :data:`QEMU` (float and int16 inputs) and write the
    fit to :data:`COUNTS_FILE`. Takes a few minutes; needs qemu-system-arm."""
    path = path or counts_path()
    lines = [
        "# Instructions of one prediction of edgeprune's C export of tree models, counted under",
        "# QEMU (-singlestep -d exec) and fitted per core and input dtype by",
        "# `python -m edgeprune.trees.tree_latency`; see edgeprune/trees/tree_latency.py.",
    ]
    jobs = [(core, dtype) for core in QEMU for dtype in ("float", "int16")]
    for core, dtype in jobs:
        for task in (CLASSIFICATION, REGRESSION):
            fit = calibrate(core, dtype, task)
            lines.append(f'\n["{core}-{dtype}".{task}]')
            lines += [
                f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v!r}" for k, v in fit.items()
            ]
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    print(write_counts())
