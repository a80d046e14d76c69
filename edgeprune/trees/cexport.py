"""C code for a :class:`~edgeprune.trees.model.Forest`: what the device runs.

:func:`generate` writes ``<name>_model.h`` and ``<name>_model.c``: the nodes as
constant arrays walked by one loop (``layout="loop"``, the default: smaller once
compiled, see docs/tree-c-export.md) or each tree as nested ``if``/``else``
(``layout="ifelse"``). Every symbol starts with ``name``, so two models link into
one firmware. The header declares

- ``int32_t <name>_predict(const <name>_input_t *features)``: the class *index*
  (into the forest's ``classes``, listed in the header) of a classifier;
  ``<name>_output_t <name>_predict(...)``, the value, of a regressor;
- ``void <name>_predict_proba(const <name>_input_t *features, <name>_score_t *out)``
  for a classifier with more than one member: the averaged class fractions;
- ``<NAME>_N_FEATURES``, ``<NAME>_N_CLASSES`` (classifiers) and, for integer
  inputs, ``<name>_quantize(const float *x, <name>_input_t *q)``.

Exactness, with ``dtype="float"`` (float32 features, as scikit-learn reads them):

- a threshold ``t`` (float64) is stored as the largest float32 ``f <= t``: for a
  float32 ``x``, ``x <= t`` exactly when ``x <= f``, so every decision is
  scikit-learn's;
- a classifier of one member stores each leaf's class (argmax, first on ties);
  a forest sums leaf fractions member by member and divides by the member count,
  as :meth:`Forest.predict_value` does: with ``leaf_dtype="double"``, operation for
  operation (IEEE double, no contraction). With ``"float"`` (half the bytes, no
  soft-float double helpers) the argmax can differ only where two classes' scores
  lie within float32 rounding; :func:`edgeprune.trees.hostrun.compare` counts them;
- a forest whose leaves are quantized (``meta["leaf_scale"]``, :func:`leaf_scale`)
  stores each impure leaf as a byte per class and sums whole numbers in
  ``uint32_t``, with either ``dtype``: the sums are :meth:`Forest.predict_value`'s
  exactly, so the argmax is too;
- a regressor's output is within ``(members + 2) x 2^-23 x max |leaf value|`` of
  scikit-learn's with float leaves
  (:func:`edgeprune.trees.hostrun.regression_tolerance`), equal with double.

``dtype="int16"`` is for cores without an FPU: features quantized as ``q = round((x -
offset) / scale)`` (per feature, in the header; every threshold maps inside +-32767),
thresholds as the quantized largest float32 <= ``t``, leaf fractions as uint16 x 65535.
A decision flips only where ``x`` and ``t`` share a quantization level, and rounded
fractions can change a near tie: the host runner says how many differ.
"""

from __future__ import annotations

import math

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.trees.model import CLASSIFICATION, LEAF, Forest
from edgeprune.trees.prune_ensemble import LEAF_SCALE_KEY

DTYPES = ("float", "int16")
LEAF_DTYPES = ("float", "double")
LAYOUTS = ("loop", "ifelse")
Q_MAX = 32767  # the clamp of a quantized feature
Q_THRESHOLD_SPAN = 30000  # thresholds of a feature map into +-this, leaving headroom
FRACTION_ONE = 65535  # a classifier leaf fraction of 1.0 with dtype="int16"


class CExportError(BadInputError):
    """A model or an option the C export cannot take (the message names which and why)."""


def float32_at_or_below(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 ``f <= t`` for each float64 ``t``: the stored threshold that makes
    the float32 comparison ``x <= f`` decide exactly as ``float64(x) <= t``."""
    t = np.asarray(threshold, dtype=np.float64)
    with np.errstate(over="ignore"):
        f = t.astype(np.float32)
    over = f.astype(np.float64) > t
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def c_float(value: float) -> str:
    """A float32 as a C literal that reads back to the same float32."""
    v = np.float32(value)
    if not math.isfinite(float(v)):
        return ("-" if v < 0 else "") + "HUGE_VALF"
    return np.format_float_scientific(v, unique=True, trim="-").replace("e+", "e") + "f"


def c_double(value: float) -> str:
    """A float64 as a C literal that reads back to the same double."""
    finite = math.isfinite(value)
    return repr(float(value)) if finite else ("-HUGE_VAL" if value < 0 else "HUGE_VAL")


def _int_type(lo: int, hi: int) -> str:
    for bits in (8, 16, 32):
        if -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1):
            return f"int{bits}_t"
    raise CExportError(f"a model with an index of {hi} is too large for the C export")


def _uint_type(hi: int) -> str:
    return "uint8_t" if hi < 256 else "uint16_t" if hi < 65536 else "uint32_t"


def _array(ctype: str, name: str, items: list[str], per_line: int = 12) -> str:
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(rows) if rows else "0"
    return f"static const {ctype} {name}[{max(len(items), 1)}] = {{\n    {body}\n}};\n"


def one_hot(row: np.ndarray) -> bool:
    """A pure leaf: all of one class (the export adds 1 to its class, no row)."""
    return bool(np.count_nonzero(row) == 1 and row.max() == 1.0)


class _Flat:
    """The forest as global arrays: internal nodes numbered across members; leaves as rows
    of values, one row per distinct value (a grown forest's pure leaves share a few; a
    single classifier tree, one per class, since its C stores the class alone).

    With ``pure_first`` (a classifier of several members) leaf ``c < n_pure`` is a pure
    leaf of class ``c`` and stores no row: adding 1 to that class's sum is exactly what
    adding the row (0 elsewhere) does, at a tenth of the work for ten classes."""

    def __init__(self, forest: Forest, pure_first: bool = False):
        self.feature, self.threshold, self.left, self.right, self.roots = [], [], [], [], []
        self.leaf_rows: list[np.ndarray] = []
        self.n_pure = forest.trees[0].value.shape[1] if pure_first else 0
        rows: dict[bytes, int] = {}
        by_class = forest.task == CLASSIFICATION and forest.n_members == 1
        for tree in forest.trees:
            internal = [i for i in range(tree.n_nodes) if tree.left[i] != LEAF]
            ids = {i: len(self.feature) + k for k, i in enumerate(internal)}
            for i in range(tree.n_nodes):
                if tree.left[i] == LEAF and self.n_pure and one_hot(tree.value[i]):
                    ids[i] = -(int(np.argmax(tree.value[i])) + 1)
                elif tree.left[i] == LEAF:  # leaves with equal values share one row
                    key = tree.value[i].tobytes()
                    if by_class:  # a lone classifier stores only the leaf's class
                        key = int(np.argmax(tree.value[i])).to_bytes(4)
                    if key not in rows:
                        rows[key] = len(self.leaf_rows)
                        self.leaf_rows.append(tree.value[i])
                    ids[i] = -(self.n_pure + rows[key] + 1)
            self.feature += [int(tree.feature[i]) for i in internal]
            self.threshold += [float(tree.threshold[i]) for i in internal]
            self.left += [ids[int(tree.left[i])] for i in internal]
            self.right += [ids[int(tree.right[i])] for i in internal]
            self.roots.append(ids[0])
        width = forest.trees[0].value.shape[1]
        self.values = np.asarray(self.leaf_rows, dtype=np.float64).reshape(-1, width)
        children = self.left + self.right + self.roots
        self.index_t = _int_type(min(children), max(children + [0]))


def leaf_scale(forest: Forest, flat: _Flat) -> int | None:
    """The integer scale of a classifier's leaf rows (``meta["leaf_scale"]``, set by
    :func:`~edgeprune.trees.prune_ensemble.quantize_leaves`), or None to store them as
    fractions: also when a row is not whole 1/scale units that fit a byte (the meta
    outlived its leaves), since the integer sums would then not be the model's."""
    scale = forest.meta.get(LEAF_SCALE_KEY)
    if forest.task != CLASSIFICATION or not isinstance(scale, int) or not 1 < scale <= 256:
        return None
    units = flat.values * scale
    whole = np.array_equal(units, np.rint(units)) and (units.size == 0 or units.max() <= 255)
    return scale if whole else None


def quantization(forest: Forest, flat: _Flat | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (offset, scale) of a ``dtype="int16"`` export: every threshold of a feature
    maps into +-Q_THRESHOLD_SPAN (unused features: 0, 1)."""
    flat = flat or _Flat(forest)
    offset, scale = np.zeros(forest.n_features), np.ones(forest.n_features)
    feats, thr = np.asarray(flat.feature, dtype=np.int64), np.asarray(flat.threshold)
    for f in np.unique(feats):
        t = thr[feats == f]
        lo, hi = float(t.min()), float(t.max())
        offset[f], span = (lo + hi) / 2, (hi - lo) / 2
        scale[f] = span / Q_THRESHOLD_SPAN if span > 0 else max(abs(lo), 1e-3) / Q_THRESHOLD_SPAN
    return offset, scale


def quantize(x: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What ``<name>_quantize`` computes (float32 arithmetic), for the runners' reasoning."""
    x = np.asarray(x, dtype=np.float32)
    q = np.floor((x - offset.astype(np.float32)) / scale.astype(np.float32) + np.float32(0.5))
    return np.clip(q, -Q_MAX, Q_MAX).astype(np.int16)


def _validate(forest: Forest, name: str, dtype: str, leaf_dtype: str, layout: str) -> None:
    if not name.isidentifier() or not name.isascii():
        raise CExportError(f"model name {name!r} is not a C identifier; use letters, digits, _")
    choices = ((dtype, DTYPES, "dtype"), (leaf_dtype, LEAF_DTYPES, "leaf_dtype"))
    for value, allowed, what in (*choices, (layout, LAYOUTS, "layout")):
        if value not in allowed:
            raise CExportError(f"{what} {value!r} is not one of: {', '.join(allowed)}")
    if forest.n_members == 0:
        raise CExportError("the forest has no members; keep at least one tree")
    if forest.task == CLASSIFICATION and len(forest.classes) < 2:
        raise CExportError("a classifier needs at least two classes to export")
    if forest.task != CLASSIFICATION and forest.trees[0].value.shape[1] != 1:
        raise CExportError("multi-output regressors are not handled; fit one output")


def generate(
    forest: Forest,
    name: str,
    dtype: str = "float",
    *,
    leaf_dtype: str = "float",
    layout: str = "loop",
) -> dict[str, str]:
    """C source for ``forest``: ``{"<name>_model.h": ..., "<name>_model.c": ...}``.

    See the module docstring for the functions, what is exact and what is not.
    Pure: writes nothing.

    Raises:
        CExportError: ``name`` not a C identifier, an unknown ``dtype``/``leaf_dtype``/
            ``layout``, an empty forest, a multi-output regressor.
    """
    _validate(forest, name, dtype, leaf_dtype, layout)
    flat = _Flat(forest, pure_first=forest.task == CLASSIFICATION and forest.n_members > 1)
    q = quantization(forest, flat) if dtype == "int16" else None
    ctx = _Context(forest, name, dtype, leaf_dtype, flat, q)
    return {f"{name}_model.h": _header(ctx), f"{name}_model.c": _source(ctx, layout)}


class _Context:
    def __init__(self, forest, name, dtype, leaf_dtype, flat, q):
        self.forest, self.name, self.dtype, self.flat, self.q = forest, name, dtype, flat, q
        self.classifier = forest.task == CLASSIFICATION
        self.n_classes = len(forest.classes) if self.classifier else 1
        self.single = forest.n_members == 1
        self.input_t = "float" if dtype == "float" else "int16_t"
        # ``one``: a fraction of 1.0 as a whole number, where the sums are integers
        self.one = None if self.single else leaf_scale(forest, flat)
        if self.one:
            self.score_t, self.acc_t = "uint8_t", "uint32_t"
        elif self.classifier and dtype == "int16":
            self.score_t, self.acc_t, self.one = "uint16_t", "uint32_t", FRACTION_ONE
        else:
            self.score_t = self.acc_t = "double" if leaf_dtype == "double" else "float"
        self.upper = name.upper()


def _header(c: _Context) -> str:
    f = c.forest
    lines = [
        f"/* {c.name}: {f.kind} {f.task}, {f.n_members} member(s), {f.n_nodes} nodes, "
        f"{f.n_features} features. Generated by edgeprune; do not edit. */",
        f"#ifndef {c.upper}_MODEL_H",
        f"#define {c.upper}_MODEL_H",
        "#include <stdint.h>",
        '#ifdef __cplusplus\nextern "C" {\n#endif',
        f"#define {c.upper}_N_FEATURES {f.n_features}" + _inputs_note(f),
        f"typedef {c.input_t} {c.name}_input_t;",
    ]
    if c.classifier:
        labels = ", ".join(f"{i}={lab!r}" for i, lab in enumerate(f.classes))
        lines += [
            f"#define {c.upper}_N_CLASSES {c.n_classes}",
            f"/* class index -> label: {labels} */",
            f"int32_t {c.name}_predict(const {c.name}_input_t *features);",
        ]
        if not c.single:
            what = f"summed x {c.one}, not divided" if c.one else "averaged"
            lines += [
                f"typedef {c.acc_t} {c.name}_score_t;",
                f"/* out[{c.upper}_N_CLASSES]: the members' leaf fractions, {what} */",
                f"void {c.name}_predict_proba(const {c.name}_input_t *, {c.name}_score_t *out);",
            ]
    else:
        lines += [
            f"typedef {c.acc_t} {c.name}_output_t;",
            f"{c.name}_output_t {c.name}_predict(const {c.name}_input_t *features);",
        ]
    if c.q is not None:
        lines.append(
            "/* Inputs are quantized per feature: q = round((x - offset) / scale), clamped "
            f"to +-{Q_MAX}. feature: offset, scale */"
        )
        for i, (o, s) in enumerate(zip(*c.q, strict=True)):
            lines.append(f"/*   {i}: {np.float32(o)!r}, {np.float32(s)!r} */")
        lines.append(f"void {c.name}_quantize(const float *x, {c.name}_input_t *q);")
    lines += ["#ifdef __cplusplus\n}\n#endif", f"#endif /* {c.upper}_MODEL_H */", ""]
    return "\n".join(lines)


def _inputs_note(f: Forest) -> str:
    kept = f.meta.get("features")  # a model refitted on fewer of the data set's features
    return "" if kept is None else f" /* the data set's features {list(kept)}, in order */"


def _thresholds(c: _Context) -> list[str]:
    thr = np.asarray(c.flat.threshold, dtype=np.float64)
    if c.q is None:
        return [c_float(v) for v in float32_at_or_below(thr)]
    # q <= Q(f), f the largest float32 <= t, with Q the C quantizer (monotone): exact for
    # every x unless x and f share a quantization level on either side of t
    offset, scale = c.q
    feats = np.asarray(c.flat.feature, dtype=np.int64)
    f = float32_at_or_below(thr)
    qt = quantize(f[:, None], offset[feats][:, None], scale[feats][:, None])[:, 0]
    return [str(int(v)) for v in qt]


def _leaf_items(c: _Context) -> tuple[str, list[str]]:
    values = c.flat.values
    if c.classifier and c.single:
        return _uint_type(c.n_classes), [str(int(np.argmax(row))) for row in values]
    if c.one:  # quantized leaves are whole numbers of 1/one already (leaf_scale): exact
        return c.score_t, [str(int(v)) for v in np.rint(values.ravel() * c.one)]
    fmt = c_double if c.score_t == "double" else c_float
    return c.score_t, [fmt(v) for v in values.ravel()]


def _data(c: _Context, layout: str) -> str:
    n, fl = c.name, c.flat
    out = []
    if layout == "loop":
        thr_t = "float" if c.q is None else "int16_t"
        feat_t = _uint_type(max(c.forest.n_features, 1))
        out.append(_array(feat_t, f"{n}_feature", [str(v) for v in fl.feature]))
        out.append(_array(thr_t, f"{n}_threshold", _thresholds(c), 6))
        for part, refs in (("left", fl.left), ("right", fl.right), ("root", fl.roots)):
            out.append(_array(fl.index_t, f"{n}_{part}", [str(v) for v in refs]))
    leaf_t, items = _leaf_items(c)
    out.append(_array(leaf_t, f"{n}_leaf_value", items, 6))
    if c.q is not None:
        out.append(_array("float", f"{n}_q_offset", [c_float(v) for v in c.q[0]], 6))
        out.append(_array("float", f"{n}_q_scale", [c_float(v) for v in c.q[1]], 6))
    return "\n".join(out)


def _walkers(c: _Context, layout: str) -> str:
    """``static int32_t <name>_leaf(int32_t member, const input *x)``: the leaf index."""
    n, it = c.name, c.input_t
    if layout == "loop":
        return (
            f"static int32_t {n}_leaf(int32_t member, const {it} *x) {{\n"
            f"    int32_t node = {n}_root[member];\n"
            "    while (node >= 0) {\n"
            f"        node = (x[{n}_feature[node]] <= {n}_threshold[node]) ? {n}_left[node]"
            f" : {n}_right[node];\n"
            "    }\n"
            "    return -node - 1;\n"
            "}\n"
        )
    thresholds = _thresholds(c)
    fl = c.flat

    def body(ref: int, indent: str) -> list[str]:
        if ref < 0:
            return [f"{indent}return {-ref - 1};"]
        cond = f"if (x[{fl.feature[ref]}] <= {thresholds[ref]}) {{"
        return (
            [indent + cond, *body(fl.left[ref], indent + "    "), indent + "} else {"]
            + body(fl.right[ref], indent + "    ")
            + [indent + "}"]
        )

    parts, cases = [], []
    for m, root in enumerate(fl.roots):
        lines = body(root, "    ")
        parts.append(
            f"static int32_t {n}_tree_{m}(const {it} *x) {{\n" + "\n".join(lines) + "\n}\n"
        )
        cases.append(f"    case {m}: return {n}_tree_{m}(x);")
    parts.append(
        f"static int32_t {n}_leaf(int32_t member, const {it} *x) {{\n"
        "    switch (member) {\n" + "\n".join(cases) + "\n    default: return 0;\n    }\n}\n"
    )
    return "\n".join(parts)


def _predict(c: _Context) -> str:
    n, it, m = c.name, c.input_t, c.forest.n_members
    if c.classifier and c.single:
        return (
            f"int32_t {n}_predict(const {it} *features) {{\n"
            f"    return {n}_leaf_value[{n}_leaf(0, features)];\n}}\n"
        )
    k = c.n_classes
    div = "" if c.one else f"\n    for (int32_t c = 0; c < {k}; ++c) out[c] /= ({c.acc_t}){m};"
    add = f"for (int32_t c = 0; c < {k}; ++c) out[c] += {n}_leaf_value[leaf * {k} + c];"
    if c.flat.n_pure:  # a pure leaf adds exactly one to its class (see _Flat)
        one = f"{c.one}u" if c.one else {"double": "1.0"}.get(c.acc_t, "1.0f")
        add = (
            f"if (leaf < {k}) {{\n            out[leaf] += {one};\n"
            f"            continue;\n        }}\n        leaf -= {k};\n        {add}"
        )
    proba = (
        f"void {n}_predict_proba(const {it} *features, {c.acc_t} *out) {{\n"
        f"    for (int32_t c = 0; c < {k}; ++c) out[c] = 0;\n"
        f"    for (int32_t t = 0; t < {m}; ++t) {{\n"
        f"        int32_t leaf = {n}_leaf(t, features);\n"
        f"        {add}\n"
        f"    }}{div}\n}}\n"
    )
    if not c.classifier:
        return proba.replace(f"void {n}_predict_proba", f"static void {n}_sum") + (
            f"{c.acc_t} {n}_predict(const {it} *features) {{\n"
            f"    {c.acc_t} out[1];\n    {n}_sum(features, out);\n    return out[0];\n}}\n"
        )
    return proba + (
        f"int32_t {n}_predict(const {it} *features) {{\n"
        f"    {c.acc_t} score[{k}];\n    int32_t best = 0;\n"
        f"    {n}_predict_proba(features, score);\n"
        f"    for (int32_t c = 1; c < {k}; ++c) if (score[c] > score[best]) best = c;\n"
        "    return best;\n}\n"
    )


def _quantizer(c: _Context) -> str:
    if c.q is None:
        return ""
    n = c.name
    return (
        f"void {n}_quantize(const float *x, int16_t *q) {{\n"
        f"    for (int32_t i = 0; i < {c.upper}_N_FEATURES; ++i) {{\n"
        f"        float v = floorf((x[i] - {n}_q_offset[i]) / {n}_q_scale[i] + 0.5f);\n"
        f"        q[i] = (int16_t)(v > {Q_MAX}.0f ? {Q_MAX} : v < -{Q_MAX}.0f ? -{Q_MAX} : v);\n"
        "    }\n}\n"
    )


def _source(c: _Context, layout: str) -> str:
    return "\n".join(
        [
            f"/* {c.name}: generated by edgeprune (layout {layout}); do not edit. */",
            f'#include "{c.name}_model.h"',
            "#include <math.h>",
            "",
            _data(c, layout),
            _walkers(c, layout),
            _predict(c),
            _quantizer(c),
        ]
    )
