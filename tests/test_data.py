import numpy as np
import pytest

from edgeprune.data import calibration_sample, infer_task, load_dataset, prepare
from edgeprune.errors import DataError


def save(tmp_path, name="d.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return str(p)


def arrays(n=20, shape=(8, 8, 1), classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x_train=rng.random((n, *shape), dtype=np.float32),
        y_train=rng.integers(0, classes, n),
        x_test=rng.random((n, *shape), dtype=np.float32),
        y_test=rng.integers(0, classes, n),
    )


def test_builtin_digits_is_the_bundled_dataset():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 8, 8, 1) and d.x_test.shape == (360, 8, 8, 1)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert set(np.unique(d.y_test)) == set(range(10))
    assert load_dataset("digits").sha256 == d.sha256  # the split is fixed


def test_npz_missing_keys_names_them(tmp_path):
    a = arrays()
    del a["y_test"], a["x_test"]
    with pytest.raises(
        DataError,
        match=r"lacks x_test, y_test; it needs x_train, y_train, "
        r"x_test, y_test",
    ):
        load_dataset(save(tmp_path, **a))


def test_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="neither a built-in data set"):
        load_dataset("mnist_please")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.npz"))


def test_not_an_npz_is_a_data_error(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(p))


def test_mismatched_row_counts(tmp_path):
    a = arrays()
    a["y_train"] = a["y_train"][:5]
    with pytest.raises(DataError, match="x_train has 20 rows but y_train has 5"):
        load_dataset(save(tmp_path, **a))


def test_shape_mismatch_names_both_shapes(tmp_path):
    d = load_dataset(save(tmp_path, **arrays(shape=(28, 28, 1))))
    with pytest.raises(
        DataError,
        match=r"x_train has samples of shape \(28, 28, 1\) but the "
        r"model's input is \(8, 8, 1\)",
    ):
        prepare(d, "classification", (None, 8, 8, 1), (None, 10))


def test_labels_out_of_range_name_the_label_and_units(tmp_path):
    a = arrays(classes=12)
    a["y_train"][0] = 11
    d = load_dataset(save(tmp_path, **a))
    with pytest.raises(
        DataError,
        match=r"holds label 11 but the model's output layer has 10 "
        r"units \(labels 0..9\)",
    ):
        prepare(d, "classification", (None, 8, 8, 1), (None, 10))


def test_one_hot_labels_become_indices(tmp_path):
    a = arrays()
    eye = np.eye(10)
    a["y_train"], a["y_test"] = eye[a["y_train"]], eye[a["y_test"]]
    d = load_dataset(save(tmp_path, **a))
    assert infer_task(d, 10) == "classification"
    p = prepare(d, "classification", (None, 8, 8, 1), (None, 10))
    assert p.one_hot and p.y_train.ndim == 1
    np.testing.assert_array_equal(p.y_train, a["y_train"].argmax(1))


def test_task_inference():
    d = load_dataset("digits")
    assert infer_task(d, 10) == "classification"
    from dataclasses import replace

    ae = replace(d, y_train=d.x_train, y_test=d.x_test)
    assert infer_task(ae, 64) == "regression"
    binary = replace(d, y_train=(d.y_train > 4).astype(int))
    assert infer_task(binary, 1) == "classification"
    assert infer_task(d, 10, "regression") == "regression"


def test_regression_targets_must_match_output(tmp_path):
    d = load_dataset("digits")
    with pytest.raises(DataError, match="for regression the targets must have the output's"):
        prepare(d, "regression", (None, 8, 8, 1), (None, 8, 8, 1))


def test_calibration_prefers_x_calib_and_is_seeded(tmp_path):
    a = arrays()
    a["x_calib"] = np.full((5, 8, 8, 1), 0.5, np.float32)
    with_calib = load_dataset(save(tmp_path, "c.npz", **a))
    assert np.all(calibration_sample(with_calib, 3, 0) == 0.5)
    d = load_dataset("digits")
    np.testing.assert_array_equal(calibration_sample(d, 10, 1), calibration_sample(d, 10, 1))
    assert not np.array_equal(calibration_sample(d, 10, 1), calibration_sample(d, 10, 2))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_values_are_named(tmp_path, value):
    a = arrays()
    a["x_train"][2, 0, 0, 0] = value
    with pytest.raises(DataError, match="x_train holds 1 NaN or infinite value; clean"):
        load_dataset(save(tmp_path, **a))


def test_one_hot_of_the_wrong_width_names_both(tmp_path):
    a = arrays(classes=12)
    eye = np.eye(12)
    a["y_train"], a["y_test"] = eye[a["y_train"]], eye[a["y_test"]]
    d = load_dataset(save(tmp_path, **a))
    assert infer_task(d, 10) == "classification"
    with pytest.raises(
        DataError,
        match="y_train is one-hot with 12 classes but the model's output layer has 10 units",
    ):
        prepare(d, "classification", (None, 8, 8, 1), (None, 10))


def test_scalar_array_is_refused(tmp_path):
    a = arrays()
    a["x_calib"] = np.float32(3.0)
    with pytest.raises(DataError, match="x_calib is empty or a scalar"):
        load_dataset(save(tmp_path, **a))
