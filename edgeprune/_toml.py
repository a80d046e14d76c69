"""Read a TOML file, turning every failure into one domain error line."""

from __future__ import annotations

import os
import tomllib
from typing import Any

from edgeprune._files import FileTooLargeError, NotRegularFileError, read_regular

# A recipe or profile is a few KiB; the cap only keeps a wrong path (a device,
# a huge file) from being read into memory whole.
MAX_TOML_BYTES = 4 * 2**20


def read_toml(path: str | os.PathLike, error: type[Exception], what: str) -> dict[str, Any]:
    """Parse ``path``; raise ``error("<what> <path>: <problem>; <fix>")`` on failure."""
    where = f"{what} {os.fspath(path)}"
    try:
        return tomllib.loads(read_regular(path, MAX_TOML_BYTES).decode("utf-8"))
    except NotRegularFileError:
        raise error(f"{where}: not a regular file; pass a TOML file") from None
    except FileTooLargeError:
        raise error(
            f"{where}: over {MAX_TOML_BYTES // 2**20} MiB, far more than any recipe or "
            f"profile; pass the right file"
        ) from None
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
