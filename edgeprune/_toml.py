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
    except OSError as exc:
        raise error(f"{where}: cannot be read ({exc.strerror})") from None
