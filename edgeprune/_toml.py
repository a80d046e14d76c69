"""Read a TOML file, turning every failure into one domain error line."""

from __future__ import annotations

import os
import tomllib
from typing import Any


def read_toml(path: str | os.PathLike, error: type[Exception], what: str) -> dict[str, Any]:
    """Parse ``path``; raise ``error("<what> <path>: <problem>; <fix>")`` on failure."""
    where = f"{what} {os.fspath(path)}"
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"{where}: no such file; check the path") from None
    except IsADirectoryError:
        raise error(f"{where}: is a folder, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: not valid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError as exc:
        raise error(
            f"{where}: not valid TOML (byte {exc.start} is not UTF-8); save it as UTF-8 text"
        ) from None
    except RecursionError:
        raise error(
            f"{where}: not valid TOML (nested too deeply to read); flatten its tables and arrays"
        ) from None
    except OSError as exc:
        raise error(f"{where}: cannot be read ({exc.strerror})") from None


def id_or_path(name_or_path: str | os.PathLike, folder: str) -> tuple[str, str, bool]:
    """``(path, id, shipped)`` for a shipped file's id (``nano33ble``, looked up as
    ``folder/<id>.toml``) or any ``.toml`` path; ``shipped`` is false for a path."""
    text = os.fspath(name_or_path)
    if text.endswith(".toml") or os.sep in text:
        return text, os.path.splitext(os.path.basename(text))[0], False
    return os.path.join(folder, f"{text}.toml"), text, True


def toml_ids(folder: str) -> list[str]:
    """The ids (file names without ``.toml``) of the TOML files in ``folder``, sorted."""
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".toml"))
