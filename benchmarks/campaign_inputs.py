"""The campaign's bad recipes, device profiles and data sets, written into a folder.

Each builder writes its files under ``workdir`` and returns
:class:`campaign_cli.Case` objects. Recipes and profiles are generated from
the code's own option tables (every numeric recipe key of
``edgeprune.recipe_options``, every key of two shipped profiles), so a new
key is mutated without a change here.

Recipe cases end on a sentinel: the run is also given a data file that does
not exist, so a recipe that passes its checks fails a moment later on the
data, before TensorFlow loads. That message means "the bad value was
accepted" (``invalid-passed``) where the value must be refused, and an
ordinary refusal where it may be legal (a learning rate of 1e300).
"""

from __future__ import annotations

import io
import json
import math
import os
import tomllib
import zipfile

import numpy as np
from campaign_cli import Case

from edgeprune.recipe import option_fields
from edgeprune.target import targets_dir

SENTINEL_DATA = "/nonexistent/campaign_sentinel.npz"
SENTINEL = "campaign_sentinel.npz does not exist"
TRAIN_FAST = [
    "--train-epochs",
    "1",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--train-batch-size",
    "16",
    "--calibration-samples",
    "8",
]


# ------------------------------------------------------------------ TOML writing


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: \uXXXX escapes are TOML's too
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def dump_toml(data: dict) -> str:
    """TOML text of ``data`` (top-level scalars first, then one table per dict)."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if not _table(v)]
    for name, table in data.items():
        if _table(table):
            lines.append(f"\n[{json.dumps(name)}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _table(v) -> bool:
    return isinstance(v, dict) and bool(v)


def _write(path: str, content: str | bytes) -> str:
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as fh:
        fh.write(content)
    return path


# ------------------------------------------------------------------ (b) recipes


def _numeric_keys() -> list[tuple[str, str, dict]]:
    """(dotted key, "int" | "float", field metadata) for every numeric recipe option."""
    keys = []
    for section, f in option_fields():
        typ = f.type if isinstance(f.type, str) else f.type.__name__
        kind = "int" if typ.startswith("int") else "float" if typ.startswith("float") else None
        if kind and f.metadata.get("kind") != "pair":
            keys.append((f"{section}.{f.name}" if section else f.name, kind, dict(f.metadata)))
    return keys


def _nest(dotted: str, value) -> dict:
    section, _, key = dotted.rpartition(".")
    return {section: {key: value}} if section else {key: value}


def recipe_cases(workdir: str) -> list[Case]:
    """Bad recipes: every numeric key with inf, nan, negative, huge, string and
    bool values, then whole-file faults (encoding, nesting, sections, pairs)."""
    folder = os.path.join(workdir, "recipes")
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(workdir, "out_recipe")
    cases = []

    def case(name: str, content, must_name=None, refuse=True):
        path = _write(os.path.join(folder, f"{len(cases):03d}.toml"), content)
        argv = ["run", "--recipe", path, "--data", SENTINEL_DATA, "--out", out]
        cases.append(
            Case(
                "recipe",
                name,
                argv,
                (1,),
                30,
                out=out,
                accepted=SENTINEL if refuse else None,
                must_name=must_name if refuse else None,
            )
        )

    for key, kind, meta in _numeric_keys():
        huge = 2**70 if kind == "int" else 1e300
        values = {
            "inf": math.inf,
            "-inf": -math.inf,
            "nan": math.nan,
            "negative": -1 if kind == "int" else -1.0,
            "huge": huge,
            "string": "12",
            "bool": True,
            "list": [1],
        }
        for label, value in values.items():
            refuse = not (label == "huge" and kind == "float" and meta.get("hi") is None)
            case(f"{key} = {label}", dump_toml(_nest(key, value)), key, refuse)
    for name, content, key in (
        ("not UTF-8", b"seed = 0\n# \xff\xfe\xfd\n", None),
        ("UTF-8 byte order mark", "\ufeffseed = 0\n", None),
        ("NUL byte", b"seed = 0\x00\n", None),
        ("binary garbage", bytes(range(256)) * 4, None),
        ("nested arrays 100000 deep", "a = " + "[" * 100000 + "]" * 100000 + "\n", None),
        ("nested inline tables 50000 deep", "a = " + "{b=" * 50000 + "1" + "}" * 50000, None),
        ("TOML syntax error", "[prune\nfinal_sparsity = 0.5\n", None),
        ("duplicate key", "seed = 1\nseed = 2\n", None),
        ("unknown top-level key", "sede = 1\n", "sede"),
        ("unknown section", "[prunning]\nepochs = 1\n", "prunning"),
        ("unknown key in section", "[prune]\nfinal_sparsty = 0.5\n", "final_sparsty"),
        ("section is a number", "prune = 3\n", "prune"),
        ("section is an array of tables", "[[prune]]\nepochs = 1\n", "prune"),
        ("schedule not a choice", '[prune]\nschedule = "cubic"\n', "prune.schedule"),
        ("task not a string", "task = 5\n", "task"),
        ("seed 2**32", "seed = 4294967296\n", "seed"),
        ("m_by_n 0:4", '[prune]\npattern = "m_by_n"\nm_by_n = "0:4"\n', "prune.m_by_n"),
        ("m_by_n 4:2 (m > n)", '[prune]\npattern = "m_by_n"\nm_by_n = "4:2"\n', "prune.m_by_n"),
        ("m_by_n a:b", '[prune]\nm_by_n = "a:b"\n', "prune.m_by_n"),
        ("block_size three numbers", "[prune]\nblock_size = [1, 4, 2]\n", "prune.block_size"),
        ("block_size huge", '[prune]\nblock_size = "1x1099511627776"\n', "prune.block_size"),
        ("include a number", "[prune]\ninclude = 3\n", "prune.include"),
        ("include a list of numbers", "[prune]\ninclude = [1, 2]\n", "prune.include"),
        ("exclude a table", "[prune]\nexclude = {a = 1}\n", "prune.exclude"),
        ("cost_model with a NUL", '[budget]\ncost_model = "a\\u0000b"\n', "budget.cost_model"),
        ("remote_python empty", '[validate]\nremote_python = ""\n', "validate.remote_python"),
        ("a date as a number", "[prune]\nepochs = 1979-05-27\n", "prune.epochs"),
        ("begin_step after end_step", "[prune]\nbegin_step = 50\nend_step = 10\n", "prune"),
    ):
        case(name, content, key)
    case("empty file (defaults: accepted)", "", refuse=False)
    for name, path in (
        ("recipe is a folder", folder),
        ("recipe does not exist", os.path.join(folder, "missing.toml")),
        ("recipe is /dev/zero", "/dev/zero"),
    ):
        argv = ["run", "--recipe", path, "--data", SENTINEL_DATA, "--out", out]
        cases.append(Case("recipe", name, argv, (1, 2), 30, out=out, accepted=SENTINEL))
    return cases


# ------------------------------------------------------------------ (c) profiles


def _profile(name: str) -> dict:
    with open(os.path.join(targets_dir(), f"{name}.toml"), "rb") as fh:
        return tomllib.load(fh)


def _leaves(data: dict):
    for k, v in data.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                yield (k, k2), v2
        else:
            yield (k,), v


def _mutated(base: dict, path: tuple, value, delete: bool = False) -> dict:
    copy = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    holder = copy if len(path) == 1 else copy[path[0]]
    if delete:
        holder.pop(path[-1], None)
    else:
        holder[path[-1]] = value
    return copy


def profile_cases(workdir: str) -> list[Case]:
    """Copies of two shipped profiles (a microcontroller and a Linux board) with one
    key mutated each: non-finite, astronomically large, negative, wrong type,
    control characters, missing; loaded by ``edgeprune targets show FILE``."""
    folder = os.path.join(workdir, "profiles")
    os.makedirs(folder, exist_ok=True)
    cases = []

    def case(name: str, data: dict | str | bytes, must_name: str | None):
        path = os.path.join(folder, f"p{len(cases):03d}.toml")
        _write(path, data if isinstance(data, (str, bytes)) else dump_toml(data))
        cases.append(
            Case("profile", name, ["targets", "show", path], (1,), 30, must_name=must_name)
        )

    for base_name in ("nano33ble", "rpi4"):
        base = _profile(base_name)
        for path, value in _leaves(base):
            dotted = ".".join(path)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            for label, bad in (
                ("inf", math.inf),
                ("nan", math.nan),
                ("2**70", 2**70),
                ("2**80", 2**80),
                ("negative", -1),
                ("a string", "64 MHz"),
                ("a bool", True),
            ):
                case(f"{base_name} {dotted} = {label}", _mutated(base, path, bad), dotted)
        for label, bad in (
            ("escape sequence", "Nano \x1b[2J\x1b[31mred"),
            ("newline", "Nano\nfake line"),
            ("NUL", "Nano\x00"),
            ("carriage return", "Nano\roverwritten"),
            ("a number", 5),
        ):
            case(f"{base_name} name with {label}", _mutated(base, ("name",), bad), "name")
        for path, _ in _leaves(base):
            optional = ("npu", "power_source", "active_power_mw", "threads", "reason")
            # budgets default to the device's capacity (latency to none): optional too
            if path[-1] not in (*optional, "max_flash_bytes", "max_ram_bytes"):
                dotted = ".".join(path)
                case(f"{base_name} missing {dotted}", _mutated(base, path, None, True), path[-1])
        for table in ("reserve", "budget"):
            case(f"{base_name} [{table}] is a number", _mutated(base, (table,), 3), table)
    case("profile is binary garbage", "\x01\x02 = \x03", None)
    nano = dump_toml(_profile("nano33ble")).encode()
    case("profile not UTF-8 (a comment byte 0xff)", nano + b"# caf\xff\n", None)
    return cases


# ------------------------------------------------------------------ (d) data sets


def _digits_like(n: int, seed: int = 0, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, classes, n)


def _huge_header_npz(path: str) -> None:
    """An .npz whose x_train header declares 2**36 float32 values (256 GB) over 16 bytes."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 1048576), }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 16
    x, y = _digits_like(32)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", npy)
        for key, arr in (("y_train", y), ("x_test", x), ("y_test", y)):
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{key}.npy", buf.getvalue())


def data_cases(workdir: str) -> list[Case]:
    """Bad data sets for the built-in model: unloadable, inconsistent, non-finite in
    the dtype training uses, degenerate (one sample, one class), hostile headers."""
    folder = os.path.join(workdir, "data")
    os.makedirs(folder, exist_ok=True)
    x, y = _digits_like(64)
    cases = []

    def case(name, arrays=None, raw=None, expect=(1,), timeout=60.0, warn=False):
        path = os.path.join(folder, f"d{len(cases):02d}.npz")
        if arrays is not None:
            np.savez(path, **arrays)
        elif callable(raw):
            raw(path)
        else:
            path = raw if isinstance(raw, str) and raw.startswith("/") else _write(path, raw)
        out = os.path.join(workdir, f"out_data{len(cases):02d}")
        argv = ["run", "--data", path, "--out", out, *TRAIN_FAST]
        cases.append(Case("data", name, argv, expect, timeout, out=out, warn_if_ok=warn))

    good = {"x_train": x, "y_train": y, "x_test": x[:16], "y_test": y[:16]}
    case("missing y_test", {k: v for k, v in good.items() if k != "y_test"})
    case("x_train and y_train lengths differ", {**good, "y_train": y[:10]})
    case("scalar y_train", {**good, "y_train": np.array(3)})
    case("scalar x_test", {**good, "x_test": np.array(0.5, np.float32)})
    case("object array (pickled)", {**good, "y_train": np.array([object()] * 64)})
    case("string labels", {**good, "y_train": np.array(["cat"] * 64)})
    case("complex values", {**good, "x_train": x.astype(np.complex64)})
    case("zero samples", {**good, "x_train": x[:0], "y_train": y[:0]})
    nan_x = x.copy()
    nan_x[3, 2, 2, 0] = np.nan
    case("NaN in x_train", {**good, "x_train": nan_x})
    case("inf in x_test", {**good, "x_test": np.full_like(x[:16], np.inf)})
    big = x.astype(np.float64)
    big[0, 0, 0, 0] = 1e300
    case("float64 1e300 (infinite in float32)", {**good, "x_train": big}, timeout=240)
    case("float labels 1.5", {**good, "y_train": y + 0.5})
    case("negative labels", {**good, "y_train": y - 20})
    case("labels 2-D, not one-hot", {**good, "y_train": np.stack([y, y], axis=1)})
    case("x_test shape differs from x_train", {**good, "x_test": x[:16, :4, :4]})
    case("x_val without y_val", {**good, "x_val": x[:8]})
    case("256 GB declared in a header", raw=_huge_header_npz)
    case("not a zip (text renamed .npz)", raw="x_train,y_train\n1,2\n")
    case("empty file", raw="")
    with open(os.path.join(folder, "full.npz"), "wb") as fh:
        np.savez(fh, **good)
    with open(os.path.join(folder, "full.npz"), "rb") as fh:
        whole = fh.read()
    case("truncated .npz", raw=whole[: len(whole) // 2])
    case("data is a folder", raw=folder)
    case("data is /dev/zero", raw="/dev/zero", timeout=30)
    one = {"x_train": x[:1], "y_train": y[:1], "x_test": x[:1], "y_test": y[:1]}
    case("one sample", one, expect=(0, 1), timeout=240, warn=True)
    single = {**good, "y_train": np.zeros_like(y), "y_test": np.zeros_like(y[:16])}
    case("one class", single, expect=(0, 1), timeout=240, warn=True)
    few = {"x_train": x[:5], "y_train": np.arange(5) * 2, "x_test": x[:5], "y_test": y[:5] % 5}
    case("fewer samples than classes", few, expect=(0, 1), timeout=240, warn=True)
    return cases
