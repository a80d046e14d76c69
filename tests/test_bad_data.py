"""Bad data sets end in a named DataError (or a warning) before anything is allocated or trained."""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.data import Dataset, infer_task, load_dataset, prepare
from edgeprune.errors import DataError

RNG = np.random.default_rng(0)


def _npz(tmp_path, name="d.npz", **arrays):
    base = {
        "x_train": RNG.random((20, 4)).astype(np.float32),
        "y_train": RNG.integers(0, 3, 20),
        "x_test": RNG.random((10, 4)).astype(np.float32),
        "y_test": RNG.integers(0, 3, 10),
    }
    base.update(arrays)
    path = tmp_path / name
    np.savez(path, **base)
    return path


def test_scalar_y_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="y_train is empty or a scalar"):
        load_dataset(_npz(tmp_path, y_train=np.array(3)))


def test_float64_beyond_float32_is_named(tmp_path):
    x = RNG.random((20, 4))
    x[2, 1] = 1e300
    with pytest.raises(DataError) as info:
        load_dataset(_npz(tmp_path, x_train=x))
    assert "x_train holds 1 value beyond float32's range" in str(info.value)
    assert "the dtype it is trained in" in str(info.value)


def test_pickled_array_is_named(tmp_path):
    x = np.empty(20, dtype=object)
    x[:] = [[1.0]] * 20
    path = tmp_path / "obj.npz"
    np.savez(
        path,
        x_train=x,
        y_train=np.zeros(20),
        x_test=np.zeros((10, 1)),
        y_test=np.zeros(10),
    )
    with pytest.raises(DataError, match="array 'x_train' holds Python objects \\(pickled\\)"):
        load_dataset(path)


def test_huge_declared_array_is_refused_before_allocating(tmp_path):
    """A header that declares 256 GB in a tiny member: refused from the header."""
    path = _npz(tmp_path)
    forged = tmp_path / "huge.npz"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(forged, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "x_train.npy":
                header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 4), np.float32))
                header["shape"] = (2**33, 8)  # 2**33 * 8 * 4 bytes = 256 GiB
                import io

                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                data = buf.getvalue() + data[-64:]
            zout.writestr(item, data)
    with pytest.raises(DataError) as info:
        load_dataset(forged)
    message = str(info.value)
    assert "array 'x_train' declares shape (8589934592, 8) of float32" in message
    assert "274,877,906,944 bytes" in message and "corrupt or truncated" in message


def test_complex_and_string_arrays_are_named(tmp_path):
    with pytest.raises(DataError, match="x_train holds complex numbers; pass real values"):
        load_dataset(_npz(tmp_path, x_train=RNG.random((20, 4)) * 1j))
    with pytest.raises(DataError, match="x_test has dtype <U1; it must be numeric"):
        load_dataset(_npz(tmp_path, x_test=np.array(["a"] * 10)))


def test_bool_features_are_numeric(tmp_path):
    ds = load_dataset(_npz(tmp_path, x_train=RNG.random((20, 4)) > 0.5))
    assert ds.x_train.dtype == np.float32


def test_one_test_sample_is_meaningless(tmp_path):
    path = _npz(tmp_path, x_test=np.zeros((1, 4)), y_test=np.zeros(1, int))
    with pytest.raises(DataError, match="accuracy on 1 sample is meaningless: give at least 2"):
        load_dataset(path)


def test_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is not a regular file"):
        load_dataset(fifo)


def _ds(y_train, y_test=None):
    y_test = y_train[:4] if y_test is None else y_test
    return Dataset(
        "t",
        np.zeros((len(y_train), 4), np.float32),
        y_train,
        np.zeros((len(y_test), 4), np.float32),
        y_test,
    )


def test_float_labels_on_a_classifier_name_class_ids():
    y = np.array([0.0, 1.5, 2.0, 1.0, 0.0, 2.0])
    with pytest.raises(DataError) as info:
        infer_task(_ds(y), output_units=3, probabilities=True)
    assert "non-integer label 1.5" in str(info.value)
    assert "labels must be integer class ids 0..2" in str(info.value)
    assert "regression" not in str(info.value)


@pytest.fixture()
def warnings_seen(caplog, monkeypatch):
    # the CLI stops the edgeprune logger propagating once it has run in this session
    monkeypatch.setattr(logging.getLogger("edgeprune"), "propagate", True)
    return caplog


def test_one_class_and_fewer_samples_than_classes_warn(warnings_seen):
    caplog = warnings_seen
    y = np.zeros(6, int)
    with caplog.at_level(logging.WARNING, logger="edgeprune"):
        prepare(_ds(y, np.zeros(3, int)), "classification", (None, 4), (None, 10))
    text = caplog.text
    assert "y_train holds only class 0" in text
    assert "x_train has 6 samples for 10 classes" in text
    assert "x_test has 3 samples for 10 classes" in text


def test_balanced_data_does_not_warn(warnings_seen):
    caplog = warnings_seen
    y = np.arange(12) % 3
    with caplog.at_level(logging.WARNING, logger="edgeprune"):
        prepare(_ds(y, np.arange(6) % 3), "classification", (None, 4), (None, 3))
    assert caplog.text == ""


def test_cli_bad_data_is_one_line_exit_1(tmp_path):
    from edgeprune.cli import main

    path = _npz(tmp_path, y_train=np.array(3))
    r = CliRunner().invoke(main, ["run", "--data", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == (
        f"edgeprune: error: data file {path}: y_train is empty or a scalar; it needs one row "
        f"per sample"
    )
    assert not (tmp_path / "o").exists()
