"""Architecture checks by reading the source: each heavy dependency stays in its adapter,
and no module grows past the size one reader can hold.

Imports are found with ``ast`` (inside functions, ``if TYPE_CHECKING:`` and
``try:`` blocks included), and so are ``importlib.import_module("...")`` and
``__import__("...")`` calls with a literal name. Nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("edgeprune", "models")
MAX_MODULE_LINES = 450

# Top-level package -> the only modules (paths from the repository root) that may import it.
ADAPTERS: dict[str, frozenset[str]] = {
    "tensorflow": frozenset({"edgeprune/adapters/keras.py"}),
    "tf_keras": frozenset({"edgeprune/adapters/keras.py"}),
    # report.html's figures: imported lazily, by the one module that draws them.
    "matplotlib": frozenset({"edgeprune/presentation/plots.py"}),
    # Keras 3: only to read Keras 3 files and rebuild them as tf_keras models.
    "keras": frozenset({"edgeprune/adapters/keras3.py"}),
    # tfmot_qat.py is the adapter's clustering and QAT half, split out for the size limit.
    "tensorflow_model_optimization": frozenset(
        {"edgeprune/adapters/tfmot.py", "edgeprune/adapters/tfmot_qat.py"}
    ),
    # decode_worker.py is the worker's DECODE half (TFLite Micro's compression modules,
    # which load its native runtime on import), split out for the module size limit;
    # only worker.py imports it, so it too runs only inside the worker process.
    "tflite_micro": frozenset({"edgeprune/tflm/worker.py", "edgeprune/tflm/decode_worker.py"}),
    # The sweep's search engine and study storages: a folder ("/" ends it), not a module.
    "optuna": frozenset({"edgeprune/sweep/"}),
    # Tree models (issue 17): the C export and reading users' models, in the trees package.
    "emlearn": frozenset({"edgeprune/trees/"}),
    "skops": frozenset({"edgeprune/trees/"}),
}
CONVERTER = "TFLiteConverter"
CONVERTER_HOME = "edgeprune/adapters/converter.py"


def _modules() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (REPO / folder).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _imported(tree: ast.AST) -> list[tuple[str, int]]:
    """(module name, line) of every import in ``tree``, wherever it stands."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append((first.value, node.lineno))
    return found


def boundary_violations(root: Path = REPO) -> list[str]:
    """``path:line: what`` for each heavy import or converter use outside its adapter."""
    problems = []
    for path in sorted(p for folder in SCANNED for p in (root / folder).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=rel)
        for module, line in _imported(tree):
            top = module.split(".")[0]
            allowed = ADAPTERS.get(top, ())
            if top in ADAPTERS and not any(
                rel == h or (h.endswith("/") and rel.startswith(h)) for h in allowed
            ):
                homes = ", ".join(sorted(allowed))
                problems.append(f"{rel}:{line}: imports {module}; only {homes} may")
        if rel != CONVERTER_HOME:
            for node in ast.walk(tree):
                named = (isinstance(node, ast.Attribute) and node.attr == CONVERTER) or (
                    isinstance(node, ast.Name) and node.id == CONVERTER
                )
                if named:
                    problems.append(
                        f"{rel}:{node.lineno}: uses {CONVERTER}; only {CONVERTER_HOME} may"
                    )
    return problems


def test_heavy_dependencies_are_imported_only_in_their_adapters():
    problems = boundary_violations()
    assert not problems, "imports outside their adapter:\n" + "\n".join(problems)


def test_the_scan_finds_imports_inside_functions_and_dynamic_imports(tmp_path):
    """The check itself: a TensorFlow import hidden in a function, a TYPE_CHECKING
    block or an import_module call is found and named with its file and line."""
    package = tmp_path / "edgeprune" / "structured"
    package.mkdir(parents=True)
    (tmp_path / "models").mkdir()
    (package / "leak.py").write_text(
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import tf_keras\n"
        "def grads():\n"
        "    import tensorflow as tf\n"
        "    return importlib.import_module('tflite_micro.runtime')\n"
        "def convert(tf):\n"
        "    return tf.lite.TFLiteConverter\n"
    )
    (tmp_path / "models" / "ok.py").write_text(
        "def build():\n    from edgeprune.adapters.keras import keras\n    return keras\n"
    )
    assert boundary_violations(tmp_path) == [
        "edgeprune/structured/leak.py:4: imports tf_keras; only edgeprune/adapters/keras.py may",
        "edgeprune/structured/leak.py:6: imports tensorflow; only edgeprune/adapters/keras.py may",
        "edgeprune/structured/leak.py:7: imports tflite_micro.runtime; only "
        "edgeprune/tflm/decode_worker.py, edgeprune/tflm/worker.py may",
        "edgeprune/structured/leak.py:9: uses TFLiteConverter; only "
        "edgeprune/adapters/converter.py may",
    ]


def _line_counts() -> dict[str, int]:
    return {
        _rel(p): len(p.read_text(encoding="utf-8").splitlines())
        for p in _modules()
        if _rel(p).startswith("edgeprune/")
    }


def test_no_module_is_over_450_lines():
    over = {m: n for m, n in _line_counts().items() if n > MAX_MODULE_LINES}
    assert not over, "modules over 450 lines: " + ", ".join(
        f"{m} ({n})" for m, n in sorted(over.items())
    )


def test_every_package_ships():
    """A subpackage missing from pyproject's list works in the editable install
    and vanishes from a wheel: every folder with an __init__.py must be listed."""
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as fh:
        listed = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "edgeprune").rglob("__init__.py")
    }
    assert found - listed == set(), f"not in pyproject's packages: {sorted(found - listed)}"


def test_progress_sits_below_every_layer():
    """Epochs, rounds, the arena search and the runners all report progress, so
    ``progress.py`` imports nothing of edgeprune and no heavy dependency: only the
    standard library and rich (which it imports when a bar is drawn)."""
    import sys

    tree = ast.parse((REPO / "edgeprune" / "progress.py").read_text(encoding="utf-8"))
    foreign = sorted(
        f"{module} (line {line})"
        for module, line in _imported(tree)
        if module.split(".")[0] not in sys.stdlib_module_names and module.split(".")[0] != "rich"
    )
    assert not foreign, "edgeprune/progress.py imports " + ", ".join(foreign)
