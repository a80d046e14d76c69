"""The bad-input registry's machinery: :class:`BadInput`, the argv builders, the
files cases use (:class:`Files` writes each one and returns its path, for the
test; :class:`DocFiles` returns a readable placeholder instead, for
:func:`render`, so one argv builder serves both) and the page's rendering."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BadInput:
    """One class of bad input: where, what, the command, exit code and message."""

    area: str
    case: str
    argv: Callable[[Files], list[str]]
    exit_code: int
    message: str

    def pattern(self) -> re.Pattern:
        """``message`` as a regular expression: literal text, ``…`` matching anything."""
        return re.compile(".*".join(re.escape(part) for part in self.message.split("…")), re.S)


def _digits(n: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, n)
    return {"x_train": x, "y_train": y, "x_test": x[:16], "y_test": y[:16]}


class Files:
    """Writes each case's files under ``root`` and returns their paths."""

    def __init__(self, root: str):
        self.root = root
        self._n = 0
        self._cache: dict[str, str] = {}
        self._held: list = []  # locks kept for the life of the test module

    def _new(self, suffix: str) -> str:
        self._n += 1
        return os.path.join(self.root, f"f{self._n:03d}{suffix}")

    def out(self) -> str:
        """A run folder that does not exist yet (a refused run must not create it)."""
        return self._new("_out")

    def missing(self, name: str) -> str:
        return os.path.join(self.root, "missing", name)

    def folder(self, suffix: str = "_dir") -> str:
        path = self._new(suffix)
        os.makedirs(path)
        return path

    def text(self, content: str | bytes, suffix: str) -> str:
        path = self._new(suffix)
        with open(path, "wb" if isinstance(content, bytes) else "w") as fh:
            fh.write(content)
        return path

    def recipe(self, content: str) -> str:
        return self.text(content, ".toml")

    def npz(self, drop: tuple[str, ...] = (), **arrays) -> str:
        data = {k: v for k, v in {**_digits(), **arrays}.items() if k not in drop}
        path = self._new(".npz")
        np.savez(path, **data)
        return path

    def profile(self, old: str, new: str) -> str:
        """A copy of the nano33ble profile with ``old`` replaced by ``new``."""
        from edgeprune.target import load_target

        with open(load_target("nano33ble").path) as fh:
            text = fh.read()
        assert old in text, old
        return self.text(text.replace(old, new, 1), ".toml")

    def keras_model(self) -> str:
        """A tiny untrained tf_keras CNN on 8x8x1 inputs, 10 classes, as .keras."""
        if "keras" not in self._cache:
            from edgeprune.adapters.keras import keras

            L = keras.layers
            model = keras.Sequential(
                [keras.Input((8, 8, 1)), L.Conv2D(4, 3), L.Flatten(), L.Dense(10)]
            )
            self._cache["keras"] = self._new(".keras")
            model.save(self._cache["keras"])
        return self._cache["keras"]

    def tflite(self, mode: str = "int8") -> str:
        """That model converted by edgeprune's converter (calibrated on random digits)."""
        if mode not in self._cache:
            from edgeprune.adapters.converter import to_tflite
            from edgeprune.adapters.keras import keras

            model = keras.models.load_model(self.keras_model())
            data = to_tflite(model, mode, _digits(16)["x_train"])
            self._cache[mode] = self.text(data, f"_{mode}.tflite")
        return self._cache[mode]

    def mutant(self, name: str) -> str:
        """The int8 model damaged as ``benchmarks/tflite_mutants.py``'s hand-made case ``name``."""
        import sys

        benchmarks = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")
        if benchmarks not in sys.path:
            sys.path.insert(0, benchmarks)
        import tflite_mutants

        with open(self.tflite(), "rb") as fh:
            return self.text(tflite_mutants.HAND_MADE[name](fh.read()), ".tflite")

    def truncated_tflite(self) -> str:
        with open(self.tflite()) as fh:
            data = fh.buffer.read()
        return self.text(data[: len(data) // 2], ".tflite")

    def huge_npz(self) -> str:
        """An .npz whose x_train header declares 2**36 float32 values (256 GiB) over 16 bytes."""
        import io
        import zipfile

        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 1048576), }"
        header += " " * (63 - (len(header) + 10) % 64) + "\n"
        npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
        path = self._new(".npz")
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x_train.npy", npy + b"\0" * 16)
            for key, arr in _digits().items():
                if key != "x_train":
                    buf = io.BytesIO()
                    np.save(buf, arr)
                    zf.writestr(f"{key}.npy", buf.getvalue())
        return path

    def lambda_model(self, ext: str) -> str:
        """A model with a Lambda layer saved as ``ext`` (.keras, .h5, or "" for a SavedModel);
        the refusal must come before its code could run."""
        from edgeprune.adapters.keras import keras

        L = keras.layers
        inp = keras.Input((8, 8, 1))
        out = L.Dense(10)(L.Flatten()(L.Lambda(lambda t: t * 2.0, name="double")(inp)))
        path = self._new(ext or "_savedmodel")
        keras.Model(inp, out).save(path, **({"save_format": "tf"} if not ext else {}))
        return path

    def recurrent_model(self) -> str:
        """An LSTM over 8 steps of 8 features that is not unrolled, as .keras."""
        from edgeprune.adapters.keras import keras

        L = keras.layers
        model = keras.Sequential(
            [keras.Input((8, 8)), L.LSTM(4, name="lstm"), L.Dense(10, activation="softmax")]
        )
        path = self._new(".keras")
        model.save(path)
        return path

    def keras_with_json(self, member: str, text: str) -> str:
        """The tiny model's .keras archive with ``member`` replaced by ``text``."""
        import zipfile

        path = self._new(".keras")
        with zipfile.ZipFile(self.keras_model()) as src, zipfile.ZipFile(path, "w") as dst:
            for item in src.infolist():
                data = text.encode() if item.filename == member else src.read(item)
                dst.writestr(item, data)
        return path

    def empty_model(self) -> str:
        """A Sequential model with an input and no layer, as .keras."""
        from edgeprune.adapters.keras import keras

        path = self._new(".keras")
        keras.Sequential([keras.Input((8, 8, 1))]).save(path)
        return path

    def fifo(self) -> str:
        """A named pipe nobody writes to (reading it would wait for ever)."""
        path = self._new(".fifo")
        os.mkfifo(path)
        return path

    def other_run_folder(self) -> str:
        """A run folder whose report lists another model's artifacts."""
        import json

        path = self.folder()
        listed = {"final_int8.tflite": {"stage": "quantize", "sha256": "c" * 64}}
        with open(os.path.join(path, "report.json"), "w") as fh:
            json.dump({"inputs": {"model": "builtin:kws"}, "artifacts": listed}, fh)
        return path

    def held_folder(self) -> str:
        """A run folder another edgeprune command holds (the lock taken here and kept)."""
        from edgeprune.run_folder import hold

        path = self.folder()
        holder = hold(path, command="run")
        holder.__enter__()
        self._held.append(holder)
        return path


class DocFiles(Files):
    """The same interface, returning placeholders for the page; writes nothing."""

    def __init__(self):
        super().__init__("")

    def out(self):
        return "OUT"

    def missing(self, name):
        return f"missing/{name}"

    def folder(self, suffix="_dir"):
        return "FOLDER/" if suffix == "_dir" else f"FOLDER{suffix}/"

    def text(self, content, suffix):
        return f"FILE{suffix}"

    def recipe(self, content):
        shown = content.strip().replace("\n", "; ")
        return f"recipe.toml ({shown})" if len(shown) < 60 else "recipe.toml"

    def npz(self, drop=(), **arrays):
        what = [f"without {', '.join(drop)}"] if drop else []
        what += [f"bad {k}" for k in arrays]
        return f"data.npz ({'; '.join(what)})" if what else "data.npz"

    def profile(self, old, new):
        return f"profile.toml ({new})"

    def keras_model(self):
        return "model.keras"

    def tflite(self, mode="int8"):
        return f"model_{mode}.tflite"

    def huge_npz(self):
        return "data.npz (x_train header declares 256 GiB)"

    def lambda_model(self, ext):
        return f"lambda_model{ext or '/ (SavedModel)'}"

    def recurrent_model(self):
        return "lstm.keras"

    def keras_with_json(self, member, text):
        return f"model.keras ({member}: {text})"

    def held_folder(self):
        return "FOLDER/ (held by a running edgeprune)"

    def other_run_folder(self):
        return "FOLDER/ (another model's run)"

    def empty_model(self):
        return "empty.keras (no layers)"

    def fifo(self):
        return "FIFO"

    def mutant(self, name):
        return f"damaged.tflite ({name})"

    def truncated_tflite(self):
        return "truncated.tflite"


# ------------------------------------------------------------------ argv builders


def run_cmd(f: Files, *args: str) -> list[str]:
    return ["run", *args, "--out", f.out()]


def with_recipe(text: str):
    return lambda f: run_cmd(f, "--recipe", f.recipe(text))


def with_data(**arrays):
    return lambda f: run_cmd(f, "--data", f.npz(**arrays))


def with_model(path: Callable[[Files], str]):
    return lambda f: run_cmd(f, "--model", path(f), "--data", "digits")


def render(registry) -> str:
    """docs/bad-inputs.md: one table per area of ``registry``, in its order."""
    doc = DocFiles()
    lines = [
        "# Bad inputs and faults: exit codes and messages",
        "",
        "Generated from `tests/bad_inputs.py` by `make bad-inputs-doc` (`python -m",
        "tests.bad_inputs > docs/bad-inputs.md`); do not edit by hand.",
        "`tests/test_bad_inputs.py` runs every row through the CLI, checks the exit code",
        "and that stderr is the one line `edgeprune: error: <message>`, and fails when",
        "this page differs from the registry, so the page cannot drift from the code.",
        "",
        "`…` in a message stands for text that varies (a path, a library's own words).",
        "Exit codes: 1 bad input, 2 usage error (click's own message), 3 over a device",
        "budget, 4 a quality budget or validation rule missed, 5 a device failed during",
        "validation (partial results written), 70 an internal error (a bug: no row",
        "here may end there), 130 interrupted. `benchmarks/campaign.py` (`make",
        "campaign`) throws many more variants of these at the real CLI.",
    ]
    areas = list(dict.fromkeys(b.area for b in registry))
    for area in areas:
        lines += ["", f"## {area}", "", "| bad input | command | exit | message |"]
        lines.append("|---|---|---|---|")
        for b in (b for b in registry if b.area == area):
            command = " ".join(["edgeprune", *b.argv(doc)])
            cells = [b.case, f"`{command}`", str(b.exit_code), b.message]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A table cell: pipes escaped, and < > as entities (``<target>`` is no HTML tag)."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
