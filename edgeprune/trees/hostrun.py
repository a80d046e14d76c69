"""The generated C compiled for this machine and run: the host runner of a tree model.

:func:`predict` builds the C files with the host ``gcc`` (``-O2 -ffp-contract=off``,
IEEE float and double as on the devices) into a program that reads float32 rows
on stdin and writes one prediction per row (int32 class index, or float64 of the
value), in a temporary folder, and returns the predictions. :func:`compare` runs
a forest's export against :meth:`Forest.predict` (= scikit-learn's) and says how
many rows agree and, for the first that do not, why.

Agreement is equality for class labels; for a regressor, a difference within
:func:`regression_tolerance` (float leaves) or exact equality (``leaf_dtype="double"``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgeprune.errors import BadInputError, clip
from edgeprune.trees import cexport
from edgeprune.trees.compile import CompileError, CompilerMissingError, header_facts, run_tool
from edgeprune.trees.model import CLASSIFICATION, LEAF, Forest, model_inputs

HOST_FLAGS = ("-O2", "-std=c99", "-ffp-contract=off")
MAX_DIFFERENCES = 10  # rows explained in a comparison


def regression_tolerance(forest: Forest) -> float:
    """How far the float-leaf C output of a regressor may be from scikit-learn's: each leaf
    rounded to float32 (half an ulp) and each of the members' additions and the division
    rounded, bounded by ``(members + 2) x 2^-23 x max |leaf value|``."""
    biggest = max(float(np.max(np.abs(t.value))) for t in forest.trees)
    return (forest.n_members + 2) * 2.0**-23 * biggest


def runner_source(name: str, quantized: bool) -> str:
    """``main``: read float32 rows of ``<NAME>_N_FEATURES`` on stdin, write predictions."""
    up = name.upper()
    feed = (
        f"{name}_input_t q[{up}_N_FEATURES]; {name}_quantize(x, q); p = {name}_predict(q);"
        if quantized
        else f"p = {name}_predict(x);"
    )
    return (
        "#include <stdio.h>\n#include <stdint.h>\n"
        f'#include "{name}_model.h"\n'
        "int main(void) {\n"
        f"    float x[{up}_N_FEATURES];\n"
        f"    while (fread(x, sizeof(float), {up}_N_FEATURES, stdin) == {up}_N_FEATURES) {{\n"
        f"        __typeof__({name}_predict(0)) p; {feed}\n"
        "        double out = (double)p;\n"
        "        fwrite(&out, sizeof out, 1, stdout);\n"
        "    }\n    return 0;\n}\n"
    )


def predict(files: dict[str, str], name: str, x: np.ndarray) -> np.ndarray:
    """Predictions of the C model ``name`` in ``files`` on each row of ``x`` (float32).

    Returns int64 class indices for a classifier (``<name>_predict`` returns
    ``int32_t``), float64 values for a regressor. Side effects: compiles and runs
    a program in a temporary folder, removed afterwards.

    Raises:
        CompilerMissingError: no ``gcc`` on this machine (package build-essential).
        CompileError: the C did not compile, or the program failed.
        BadInputError: ``x`` is not 2-D with the model's feature count, or holds NaN
            or infinity.
    """
    n_features, _ = header_facts(files, name)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise BadInputError(f"x has shape {x.shape}; the model reads rows of {n_features} features")
    if not np.isfinite(x).all():  # scikit-learn routes NaN by what it saw in training; C cannot
        row = int(np.nonzero(~np.isfinite(x).all(axis=1))[0][0])
        raise BadInputError(
            f"x row {row} holds NaN or infinity; the C model compares finite features only: "
            "impute or drop such rows first"
        )
    if shutil.which("gcc") is None:
        raise CompilerMissingError(
            "gcc is not installed; install the Debian package build-essential"
        )
    quantized = f"void {name}_quantize(" in files.get(f"{name}_model.h", "")
    classifier = f"int32_t {name}_predict(" in files.get(f"{name}_model.h", "")
    with tempfile.TemporaryDirectory(prefix="edgeprune-hostrun-") as tmp:
        folder = Path(tmp)
        for fname, text in {**files, f"{name}_runner.c": runner_source(name, quantized)}.items():
            (folder / fname).write_text(text)
        sources = sorted(p.name for p in folder.glob("*.c"))
        run_tool(["gcc", *HOST_FLAGS, "-I.", *sources, "-o", "runner", "-lm"], folder)
        proc = subprocess.run(
            [str(folder / "runner")], input=x.tobytes(), capture_output=True, check=False
        )
    if proc.returncode != 0:
        raise CompileError(f"the host-compiled model failed: {clip(proc.stderr.decode())}")
    out = np.frombuffer(proc.stdout, dtype=np.float64)
    if out.shape[0] != x.shape[0]:
        raise CompileError(f"the host-compiled model answered {out.shape[0]} of {x.shape[0]} rows")
    return out.astype(np.int64) if classifier else out.copy()


@dataclass(frozen=True)
class Difference:
    """One row where the C model and scikit-learn disagree, and why."""

    row: int
    expected: object  # scikit-learn's label or value
    got: object  # the C model's
    why: str


class Agreement(NamedTuple):
    """How many rows the C model predicts as scikit-learn does."""

    n_equal: int
    n: int
    differences: tuple[Difference, ...]  # the first MAX_DIFFERENCES
    tolerance: float = 0.0  # regressors: the largest difference counted as equal

    @property
    def fraction(self) -> float:
        return self.n_equal / self.n if self.n else 1.0


def _near_thresholds(forest: Forest, row: np.ndarray, scale: np.ndarray) -> str:
    """Decisions on ``row``'s paths taken within half a quantization step of the threshold."""
    near = []
    for m, tree in enumerate(forest.trees):
        for node in tree.path_nodes(row[None, :])[0]:
            if tree.left[node] == LEAF:
                continue
            f = int(tree.feature[node])
            if abs(float(row[f]) - tree.threshold[node]) <= scale[f]:
                near.append(f"member {m} node {node} (feature {f})")
    return ", ".join(near[:3]) + (" ..." if len(near) > 3 else "")


def _why(forest: Forest, row: np.ndarray, dtype: str, q) -> str:
    if dtype == "int16":
        near = _near_thresholds(forest, row, q[1])
        if near:
            return f"int16 quantization: the feature lies within one scale step of {near}"
    if forest.task == CLASSIFICATION:
        score = np.sort(forest.predict_value(row[None, :])[0])
        margin = score[-1] - score[-2]
        return (
            f"the two best classes' averaged scores differ by {margin:.3g}, within the "
            "rounding of the C sum's leaf values"
        )
    return "the C sum's rounding exceeds the stated tolerance"


def compare(
    forest: Forest,
    x: np.ndarray,
    *,
    name: str = "model",
    dtype: str = "float",
    leaf_dtype: str = "float",
    layout: str = "loop",
) -> Agreement:
    """The export of ``forest`` run on this host against :meth:`Forest.predict` on ``x``.

    ``x`` holds the data set's features; a model refitted on fewer reads its own
    (:func:`~edgeprune.trees.model.model_inputs`), as the C does. Generates the C
    (:func:`cexport.generate` with these options), runs it (:func:`predict`) and counts
    equal predictions. Raises what those raise.
    """
    files = cexport.generate(forest, name, dtype, leaf_dtype=leaf_dtype, layout=layout)
    x = np.asarray(model_inputs(forest, x), dtype=np.float32)
    got = predict(files, name, x)
    expected = forest.predict(x)
    tolerance = 0.0
    if forest.task == CLASSIFICATION:
        got = np.asarray(forest.classes)[got]
        equal = got == expected
    else:
        if leaf_dtype == "float":
            tolerance = regression_tolerance(forest)
        equal = np.abs(got - expected) <= tolerance
    q = None
    if dtype == "int16":
        q = cexport.quantization(forest)
    diffs = tuple(
        Difference(int(i), expected[i].item(), got[i].item(), _why(forest, x[i], dtype, q))
        for i in np.nonzero(~equal)[0][:MAX_DIFFERENCES]
    )
    return Agreement(int(np.count_nonzero(equal)), int(x.shape[0]), diffs, tolerance)


HARNESS_SOURCES = ("tree_harness.h", "tree_harness.c")


def serial_harness(files: dict[str, str], name: str) -> dict[str, str]:
    """The files of the serial validation harness for the model ``name`` in ``files``:
    ``c_src/tree_harness.[ch]`` (the protocol of :mod:`edgeprune.protocol`), its
    ``edgeprune_protocol.h`` and ``<name>_harness_glue.c``, which defines
    ``const ep_tree_model <name>_tree_model`` (identity: CRC-32 and length of
    ``<name>_model.c``). The board's main loop feeds received bytes to
    ``ep_tree_receive``; see tree_harness.h.
    """
    from importlib import resources

    from edgeprune import protocol

    n_features, _ = header_facts(files, name)
    source = files[f"{name}_model.c"].encode()
    quantized = f"void {name}_quantize(" in files[f"{name}_model.h"]
    call = (
        f"{name}_input_t q[{name.upper()}_N_FEATURES];\n    {name}_quantize(features, q);\n"
        f"    __typeof__({name}_predict(0)) r = {name}_predict(q);"
        if quantized
        else f"__typeof__({name}_predict(0)) r = {name}_predict(features);"
    )
    glue = (
        f'#include <string.h>\n#include "tree_harness.h"\n#include "{name}_model.h"\n'
        f"static void {name}_invoke(const float *features, uint8_t *output) {{\n"
        f"    {call}\n    memcpy(output, &r, sizeof r);\n}}\n"
        f"const ep_tree_model {name}_tree_model = {{{protocol.model_crc32(source)}u, "
        f"{len(source)}u, {n_features}u, (uint32_t)sizeof({name}_predict(0)), {name}_invoke}};\n"
    )
    folder = resources.files("edgeprune.trees") / "c_src"
    out = {f: (folder / f).read_text() for f in HARNESS_SOURCES}
    out["edgeprune_protocol.h"] = protocol.c_header()
    out[f"{name}_harness_glue.c"] = glue
    return out
