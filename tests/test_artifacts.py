import errno
import os

import pytest

from edgeprune import artifacts
from edgeprune.errors import BadInputError


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.tflite"

    def writer(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("crash mid-write")

    run = artifacts.RunDir(str(tmp_path))
    with pytest.raises(RuntimeError):
        run.write_with("model.tflite", writer, "quantize")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_complete_file(tmp_path):
    run = artifacts.RunDir(str(tmp_path / "run"))
    written = run.write_bytes("a.bin", b"12345", "stage")
    assert open(written.path, "rb").read() == b"12345"
    entry = run.artifacts["a.bin"]
    assert entry["bytes"] == written.size_bytes == 5
    assert entry["sha256"] == written.sha256 == artifacts.sha256_file(written.path)


def test_run_dir_is_created_only_by_a_write(tmp_path):
    run = artifacts.RunDir(str(tmp_path / "later"))
    assert not os.path.exists(run.path)
    model = run.write_flatbuffer("m.tflite", b"bytes", "quantize", "int8")
    assert os.path.isdir(run.path)
    assert model.data == b"bytes" and model.name == "m.tflite" and model.mode == "int8"
    assert model.sha256 == run.artifacts["m.tflite"]["sha256"] == artifacts.sha256_bytes(b"bytes")


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(BadInputError, match="is a file; choose a folder path"):
        artifacts.check_out_dir(f)
    with pytest.raises(BadInputError, match="lies under .* which is a file"):
        artifacts.check_out_dir(f / "sub")


@pytest.mark.parametrize(
    "code, reason", [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system")]
)
def test_out_dir_that_cannot_be_written_is_refused_and_left_as_it_was(
    tmp_path, monkeypatch, code, reason
):
    def refused(*args, **kwargs):  # what a folder without permission or a read-only mount does
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(artifacts.tempfile, "mkstemp", refused)
    out = tmp_path / "new" / "run"
    with pytest.raises(BadInputError) as err:
        artifacts.check_out_dir(out)
    assert str(err.value) == (
        f"output directory {out} cannot be written ({reason}); choose another folder"
    )
    assert os.listdir(tmp_path) == []  # the folders made for the probe are gone again


def test_disk_full_during_an_atomic_write_is_a_named_error_and_leaves_nothing(tmp_path):
    run = artifacts.RunDir(str(tmp_path))

    def disk_full(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(artifacts.ArtifactWriteError) as err:
        run.write_with("pruned.keras", disk_full, "prune", suffix=".keras")
    assert str(err.value) == (
        f"writing {tmp_path / 'pruned.keras'} failed (No space left on device); check "
        f"free space and permissions of {tmp_path}"
    )
    assert os.listdir(tmp_path) == [] and run.artifacts == {}
