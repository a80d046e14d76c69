"""``report.html``: one self-contained page per run folder or sweep folder.

A run folder's page is built from its ``report.json`` alone
(:func:`write_run_html`), a sweep folder's from its ``sweep.json`` alone
(:func:`write_sweep_html`), so either can be rebuilt at any time
(``edgeprune report FOLDER``, :func:`write_report`). The page has its style
sheet inline and its figures as inline SVG (:mod:`edgeprune.presentation.plots`);
it runs no script and fetches nothing.

The pipeline calls :func:`refresh_run_html` after it writes ``report.json``. The
page is a view of the report, not a result: a failure to build it is logged
as a warning and the run keeps its artifacts and its exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os

from edgeprune import artifacts, report
from edgeprune.errors import BadInputError, clip

log = logging.getLogger(__name__)

HTML_NAME = report.HTML_NAME
SWEEP_NAME = "sweep.json"  # sweep.results.SWEEP_JSON, without importing the sweep package


def write_run_html(folder: str) -> str:
    """Build ``folder/report.html`` from ``folder/report.json``; return its path.

    Side effects: writes the page atomically (replacing an older one).

    Raises:
        BadInputError: no readable report.json of this schema (see :func:`report.read`).
        ArtifactWriteError: the page could not be written.
    """
    from edgeprune.presentation import run_page

    body = report.read(os.path.join(folder, report.REPORT_NAME))
    return _write(folder, run_page.render(body))


def write_sweep_html(folder: str) -> str:
    """Build ``folder/report.html`` from ``folder/sweep.json``; return its path.

    Raises:
        BadInputError: sweep.json is missing, not JSON, of another schema or incomplete.
        ArtifactWriteError: the page could not be written.
    """
    from edgeprune.presentation import sweep_page
    from edgeprune.sweep.results import SWEEP_JSON, read_sweep

    return _write(folder, sweep_page.render(read_sweep(os.path.join(folder, SWEEP_JSON))))


def write_report(folder: str) -> str:
    """Rebuild the page of a run folder (it has report.json) or a sweep folder
    (sweep.json); return its path. A folder with both is a run folder.

    Raises:
        BadInputError: the folder has neither file, or the one it has cannot be read.
        FolderInUseError: another edgeprune process is writing the folder.
    """
    from edgeprune.run_folder import ensure_free

    ensure_free(folder)  # a run writing it would replace report.json under us
    if os.path.isfile(os.path.join(folder, report.REPORT_NAME)):
        return write_run_html(folder)
    if os.path.isfile(os.path.join(folder, SWEEP_NAME)):
        return write_sweep_html(folder)
    if not os.path.isdir(folder):
        problem = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise BadInputError(f"{folder} {problem}; name a run folder or a sweep folder")
    raise BadInputError(
        f"{folder} has no {report.REPORT_NAME} or {SWEEP_NAME}; name a folder that "
        f"`edgeprune run` or `edgeprune sweep` wrote"
    )


def refresh_run_html(folder: str) -> str | None:
    """Rebuild ``folder``'s page after its report.json was written; the path, or None
    when it could not be built.

    Never raises an ``Exception``: the run's artifacts and report.json are valid
    without the page, so a failure (a plot bug, a full disk) is a warning that
    names the command that retries it, and no stale page is left behind.
    """
    return _refresh(folder, write_run_html, "the run's files and report.json")


def refresh_sweep_html(folder: str) -> str | None:
    """:func:`refresh_run_html` for a sweep folder, after its sweep.json was written."""
    return _refresh(folder, write_sweep_html, "the sweep's study and sweep.json")


def _refresh(folder: str, write, what: str) -> str | None:
    try:
        path = write(folder)
        log.info("page: %s", path)
        return path
    except Exception as exc:  # noqa: BLE001 - the page must never cost the run
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, HTML_NAME))
        log.warning(
            "report.html was not written (%s: %s); %s are complete; rebuild the page "
            "with `edgeprune report %s`",
            type(exc).__name__,
            clip(exc, 200),
            what,
            folder,
        )
        return None


def _write(folder: str, text: str) -> str:
    path = os.path.join(folder, HTML_NAME)
    artifacts.write_bytes_atomic(path, text.encode("utf-8"))
    return path
