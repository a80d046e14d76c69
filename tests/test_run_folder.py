"""The run-folder lock (one writer per folder, across processes) and the
cleanup of a killed writer's temporary files."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edgeprune import run_folder
from edgeprune.errors import BadInputError

# Holds the lock of the folder argv[1] until stdin closes; prints "held" once it has it.
HOLDER = """
import sys
from edgeprune import run_folder
with run_folder.hold(sys.argv[1], "run"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of ``tmp_path / 'run'``."""
    folder = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait()


def test_second_writer_is_refused_naming_the_holder(holder):
    folder, proc = holder
    with pytest.raises(run_folder.FolderInUseError) as err:
        with run_folder.hold(folder, "prune"):
            pytest.fail("two processes held one run folder")
    message = str(err.value)
    assert message.startswith(f"run folder {folder} is in use by another edgeprune process")
    assert f"(pid {proc.pid}, edgeprune run, started 20" in message
    assert message.endswith("wait for it to finish or choose another output folder")
    assert isinstance(err.value, BadInputError)


def test_one_file_writer_is_refused_while_a_run_holds_the_folder(holder, tmp_path):
    folder, _ = holder
    with pytest.raises(run_folder.FolderInUseError, match="is in use by another"):
        run_folder.ensure_free(folder)
    run_folder.ensure_free(tmp_path / "elsewhere")  # a free or missing folder passes


def test_lock_of_a_killed_holder_is_not_stale(holder):
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(folder / run_folder.LOCK_NAME)  # kill -9 left the file ...
    run_folder.ensure_free(folder)  # ... but not the lock
    with run_folder.hold(folder, "run"):
        pass
    assert os.listdir(folder) == []


def test_lock_is_released_and_its_file_removed_after_the_block(tmp_path):
    folder = tmp_path / "run"
    (folder).mkdir()
    with run_folder.hold(folder):
        assert (folder / run_folder.LOCK_NAME).read_text().startswith(f"pid {os.getpid()}, run")
    assert os.listdir(folder) == []
    with run_folder.hold(folder):  # and can be taken again
        pass


def test_folder_created_for_the_lock_is_removed_when_left_empty(tmp_path):
    folder = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with run_folder.hold(folder):
            assert folder.is_dir()
            raise RuntimeError("failed before writing")
    assert os.listdir(tmp_path) == []


def test_lock_that_cannot_be_opened_is_a_named_error(tmp_path):
    folder = tmp_path / "run"
    (folder / run_folder.LOCK_NAME).mkdir(parents=True)  # root may write anywhere, not this
    with pytest.raises(BadInputError) as err:
        with run_folder.hold(folder):
            pass
    assert str(err.value) == (
        f"run folder {folder} cannot be locked (Is a directory); choose a folder you can write"
    )


def test_folder_that_cannot_be_created_is_a_named_error(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(run_folder.os, "makedirs", refused)
    with pytest.raises(BadInputError) as err:
        with run_folder.hold(tmp_path / "run"):
            pass
    assert str(err.value) == (
        f"run folder {tmp_path / 'run'} cannot be created (Permission denied); choose a "
        f"folder you can write"
    )


# Dies by kill -9 in the middle of atomic writes of a file and of a folder.
KILLED_WRITER = """
import os, sys
from edgeprune import artifacts, run_folder
with run_folder.hold(sys.argv[1], "prune"):
    with artifacts.atomic_path(os.path.join(sys.argv[1], "pruned.keras"), ".keras") as keras:
        with open(keras, "wb") as fh:
            fh.write(b"half a model")
        with artifacts.atomic_path(os.path.join(sys.argv[1], "firmware")) as firmware:
            os.mkdir(firmware)
            print(os.path.basename(keras), os.path.basename(firmware), flush=True)
            sys.stdin.read()
"""


def _leftovers_of_a_killed_writer(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    names = proc.stdout.readline().split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(names) == 2 and all((folder / n).exists() for n in names)
    return names


def test_leftovers_of_a_killed_write_are_removed_and_user_files_kept(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    leftovers = _leftovers_of_a_killed_writer(folder)
    (folder / ".firmware.old-0a1b2c3d").mkdir()  # a folder swap killed half way
    (folder / ".edgeprune-probe-k2_x9a0b").write_text("")  # check_out_dir's probe
    user = [".hidden", "notes.tmp", ".pruned.keras.tmp", "model.keras", ".a.b.tmp.keras"]
    for name in user:
        (folder / name).write_text("mine")
    assert all(run_folder.is_leftover(n) for n in leftovers)
    with run_folder.hold(folder) as held:
        assert sorted(held.removed) == sorted(
            [*leftovers, ".firmware.old-0a1b2c3d", ".edgeprune-probe-k2_x9a0b"]
        )
    assert sorted(os.listdir(folder)) == sorted(user)


# Journals what it may write, writes part of it, and is killed with -9 before its report.
KILLED_RUN = """
import os, sys
from edgeprune import run_folder
folder = sys.argv[1]
with run_folder.hold(folder, sys.argv[2]) as held:
    held.journal(["baseline.keras", "firmware", "final_int8.tflite", "../outside.txt"])
    open(os.path.join(folder, "baseline.keras"), "wb").close()
    os.makedirs(os.path.join(folder, "firmware"))
    open(os.path.join(folder, "firmware", "model_data.cc"), "w").close()
    if sys.argv[3] == "report":
        open(os.path.join(folder, "report.json"), "w").close()
    print("written", flush=True)
    sys.stdin.read()
"""


def _killed(folder, command="run", report=""):
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("mine")
    (folder.parent / "outside.txt").write_text("not in the folder")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(folder), command, report],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_files_of_a_run_killed_before_its_report_are_removed_by_the_next(tmp_path):
    folder = tmp_path / "run"
    _killed(folder)
    with run_folder.hold(folder) as held:
        assert held.removed == ["baseline.keras", "firmware"]  # what it journaled and wrote
    assert os.listdir(folder) == ["notes.txt"]
    assert (tmp_path / "outside.txt").exists()  # a journal never reaches out of the folder


@pytest.mark.parametrize("command, report", [("run", "report"), ("validate", "")])
def test_a_killed_run_that_wrote_its_report_or_another_command_is_not_undone(
    tmp_path, command, report
):
    folder = tmp_path / "run"
    _killed(folder, command, report)
    with run_folder.hold(folder) as held:
        assert held.removed == []
    assert (folder / "baseline.keras").exists() and (folder / "firmware").is_dir()


# ---------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from conftest import build_tiny

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_tiny("sequential").save(str(path))
    return str(path)


def test_run_into_a_held_folder_is_refused_and_leaves_it_as_it_was(holder, tiny_model, digits_npz):
    from click.testing import CliRunner

    from edgeprune.cli import main

    folder, proc = holder
    (folder / "notes.txt").write_text("mine")
    before = sorted(os.listdir(folder))
    result = CliRunner().invoke(
        main, ["run", "--model", tiny_model, "--data", digits_npz, "--out", str(folder)]
    )
    assert result.exit_code == 1, result.output
    assert (
        f"edgeprune: error: run folder {folder} is in use by another edgeprune process "
        f"(pid {proc.pid}, edgeprune run, started "
    ) in result.output
    assert sorted(os.listdir(folder)) == before


def test_stage_commands_into_a_held_folder_are_refused(holder, tiny_model, digits_npz):
    import edgeprune.pipeline as pipeline

    folder, _ = holder
    for stage in (pipeline.prune_only, pipeline.quantize_only):
        with pytest.raises(run_folder.FolderInUseError, match="is in use by another"):
            stage(tiny_model, digits_npz, None, str(folder))


def test_firmware_and_check_report_into_a_held_folder_are_refused(holder, int8_model, tmp_path):
    from edgeprune.stages.check import check_model
    from edgeprune.stages.firmware import build_firmware

    folder, _ = holder
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    with pytest.raises(run_folder.FolderInUseError, match="is in use by another"):
        build_firmware(str(model), "nano33ble", str(folder))
    with pytest.raises(run_folder.FolderInUseError, match="is in use by another"):
        check_model(str(model), "nano33ble", report_path=str(folder / "check.json"))
    assert not (folder / "firmware").exists() and not (folder / "check.json").exists()


def test_validate_on_a_held_folder_is_refused_before_running(holder, run_dir):
    from edgeprune.stages.validate import validate_run

    folder, _ = holder
    shutil.copytree(run_dir, folder, dirs_exist_ok=True)
    before = (folder / "report.json").read_bytes()
    with pytest.raises(run_folder.FolderInUseError, match="is in use by another"):
        validate_run(str(folder), runner="host")
    assert (folder / "report.json").read_bytes() == before


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_is_refused_the_first_finishes(tmp_path):
    """The campaign's finding, end to end: two `edgeprune run --out X` processes."""
    import json

    from edgeprune.artifacts import sha256_file

    out = tmp_path / "run"
    command = [sys.executable, "-m", "edgeprune", "run", "--out", str(out)]
    command += ["--train-epochs", "2", "--epochs", "1"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not _held(out / run_folder.LOCK_NAME):  # no timing: the lock itself says when
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    # the first run is paused while it holds the folder, so the second meets it however
    # long its own start-up takes (a short first run could otherwise finish before that)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(command, capture_output=True, text=True)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 1, second.stderr
    assert f"edgeprune: error: run folder {out} is in use by another edgeprune process" in (
        second.stderr
    )
    stdout, stderr = first.communicate()
    assert first.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["artifacts"]  # and every file it lists is the one this run wrote
    for name, listed in report["artifacts"].items():
        assert sha256_file(out / name) == listed["sha256"]
    assert not (out / run_folder.LOCK_NAME).exists()


def _held(lock) -> bool:
    """Whether another process holds an flock on ``lock`` (False while it is not there)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
