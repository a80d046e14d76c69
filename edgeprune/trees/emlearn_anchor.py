"""emlearn's C export of a scikit-learn estimator: the benchmark's anchor (issue 17),
wrapped in a header of :func:`edgeprune.trees.cexport.generate`'s contract."""

from __future__ import annotations

from edgeprune.trees.cexport import CExportError


def emlearn_anchor(estimator, name: str) -> dict[str, str]:
    """emlearn's C export of a fitted scikit-learn ``estimator`` (the benchmark's anchor),
    with a ``<name>_model.h`` of :func:`~edgeprune.trees.cexport.generate`'s contract, so
    that :func:`edgeprune.trees.compile.compiled_size` and the host runner take it as is.

    emlearn 0.23 (``method="inline"``, float features) majority-votes leaf classes and
    compares ``x < t``, ``t`` printed to 6 decimals: not scikit-learn's soft vote and
    thresholds, so its predictions can differ (the host runner counts them).

    Raises:
        CExportError: ``name`` not a C identifier, or emlearn refuses the estimator.
    """
    import emlearn

    if not name.isidentifier() or not name.isascii():
        raise CExportError(f"model name {name!r} is not a C identifier; use letters, digits, _")
    try:
        code = emlearn.convert(estimator, method="inline", dtype="float").save(name=f"{name}_eml")
    except (ValueError, TypeError) as exc:
        raise CExportError(f"emlearn cannot export {type(estimator).__name__}: {exc}") from None
    out_t = "int32_t" if hasattr(estimator, "classes_") else "float"  # class index or value
    n, up = name, name.upper()
    header = (
        f"/* {n}: emlearn's export, wrapped by edgeprune. */\n#ifndef {up}_MODEL_H\n"
        f"#define {up}_MODEL_H\n#include <stdint.h>\n"
        f"#define {up}_N_FEATURES {int(estimator.n_features_in_)}\n"
        f"typedef float {n}_input_t;\n{out_t} {n}_predict(const {n}_input_t *features);\n#endif\n"
    )
    source = (
        f'#include "{n}_model.h"\n{code}\n'
        f"{out_t} {n}_predict(const {n}_input_t *features) {{\n"
        f"    return {n}_eml_predict(features, {up}_N_FEATURES);\n}}\n"
    )
    return {f"{n}_model.h": header, f"{n}_model.c": source}
