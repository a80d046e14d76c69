"""TFLite Micro weight compression as sweep dimensions (``compress``, ``clusters``).

A compressed model ships instead of the dense one only on a TFLite Micro
target, and only from int8 weights: the sweep refuses, once and before any
trial, what ``run`` would refuse in every trial. Prune compression is what
lets unstructured sparsity save flash (the zeros leave the flatbuffer), so it
opens the ``sparsity`` dimension; ``clusters`` matters only to the methods
that encode clustered weights (``lut``, ``both``). See docs/tflm-compression.md.
"""

from __future__ import annotations

from dataclasses import replace

from edgeprune.errors import RecipeError

#: Methods whose model bytes shrink with unstructured sparsity.
PRUNING_METHODS = ("prune", "both")
#: Methods that encode clustered weights: a trial's ``clusters`` applies to these only.
CLUSTER_METHODS = ("lut", "both")


def apply_compress(recipe, method: str):
    return replace(recipe, compress=replace(recipe.compress, method=method))


def apply_clusters(recipe, clusters: int):
    return replace(recipe, cluster=replace(recipe.cluster, clusters=clusters))


def choices(section, name: str, default: tuple = ()) -> tuple:
    """The values dimension ``name`` may take in ``section`` (``default`` if absent)."""
    value = dict(section.dims).get(name)
    if value is None:
        return default
    return value if isinstance(value, tuple) else (value,)


def may_prune(section, recipe_method: str = "none") -> bool:
    """Whether some trial may ship prune-compressed weights (where sparsity saves flash):
    ``sweep.compress`` if given, else the recipe's ``compress.method``."""
    return any(m in PRUNING_METHODS for m in choices(section, "compress", (recipe_method,)))


def refuse(section, runtime: str, modes, recipe_method: str) -> None:
    """Refuse compression on a Linux target, or with a quantization mode other than int8.

    Raises:
        RecipeError: one line naming the key and the fix.
    """
    methods = [m for m in choices(section, "compress", (recipe_method,)) if m != "none"]
    if not methods:
        return
    key = "sweep.compress" if "compress" in dict(section.dims) else "compress.method"
    if runtime != "tflm":
        raise RecipeError(
            f"{key} = {methods[0]!r} on a Linux target: the compressed model needs "
            f"TFLite Micro's DECODE operator, which LiteRT lacks; sweep a TFLite Micro "
            f'target or remove it (compress.method = "none")'
        )
    other = [m for m in modes if m != "int8"]
    if other:
        raise RecipeError(
            f"{key} = {methods[0]!r} encodes int8 weights but the sweep may quantize "
            f'to {other[0]}; set sweep.quantize = "int8" or remove the compression'
        )


def check_clusters(section) -> None:
    """``sweep.clusters`` beside a ``sweep.compress`` that never uses it.

    Raises:
        RecipeError: no offered method encodes clustered weights.
    """
    names = dict(section.dims)
    if "clusters" in names and "compress" in names:
        if not any(m in CLUSTER_METHODS for m in choices(section, "compress")):
            raise RecipeError(
                "sweep.clusters applies only to trials compressed with lut or both, and "
                'sweep.compress offers neither; add "lut" or "both" to it or remove sweep.clusters'
            )
