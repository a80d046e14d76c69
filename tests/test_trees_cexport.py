"""The C export of tree models: its predictions, run on this host, are scikit-learn's.

Hand-built trees whose answers are known, scikit-learn models on its bundled data
sets (no download), thresholds placed to catch a wrong float32 rounding, pruned
trees, int16 inputs whose differences are counted and explained, and symbols of
two models that must not clash. Needs the host ``gcc`` (skips without it).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from tree_board import board_main  # tests/ is on sys.path

from edgeprune.errors import BadInputError
from edgeprune.trees import cexport, emlearn_anchor, hostrun
from edgeprune.trees.model import CLASSIFICATION, Forest, Tree, from_sklearn, make_leaf

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")

DATASETS = {"digits": load_digits, "breast_cancer": load_breast_cancer, "wine": load_wine}
CLASSIFIERS = (DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier)
REGRESSORS = (DecisionTreeRegressor, RandomForestRegressor, ExtraTreesRegressor)


def _tree(left, right, feature, threshold, value) -> Tree:
    n = len(left)
    return Tree(
        np.asarray(left, np.int32),
        np.asarray(right, np.int32),
        np.asarray(feature, np.int32),
        np.asarray(threshold, np.float64),
        np.asarray(value, np.float64),
        np.full(n, 10, np.int64),
        np.zeros(n),
        np.full(n, 10.0),
    )


def _hand_forest() -> Forest:
    """Two members over 2 features, classes ("a", "b", "c"): answers computed by hand below."""
    t0 = _tree(  # x0 <= 0.5 ? [1,0,0] : (x1 <= -2 ? [0,1,0] : [0,0.25,0.75])
        [1, -1, 3, -1, -1],
        [2, -1, 4, -1, -1],
        [0, -2, 1, -2, -2],
        [0.5, -2, -2.0, -2, -2],
        [[0.4, 0.3, 0.3], [1, 0, 0], [0, 0.5, 0.5], [0, 1, 0], [0, 0.25, 0.75]],
    )
    t1 = _tree(  # x1 <= 1 ? [0,0.6,0.4] : [0.2,0,0.8]
        [1, -1, -1],
        [2, -1, -1],
        [1, -2, -2],
        [1.0, -2, -2],
        [[0.1, 0.3, 0.6], [0, 0.6, 0.4], [0.2, 0, 0.8]],
    )
    return Forest(CLASSIFICATION, (t0, t1), 2, ("a", "b", "c"), "random_forest")


@pytest.mark.parametrize("layout", cexport.LAYOUTS)
@pytest.mark.parametrize("leaf_dtype", cexport.LEAF_DTYPES)
def test_hand_built_forest_predicts_the_hand_computed_classes(layout, leaf_dtype):
    forest = _hand_forest()
    x = np.array([[0, 0], [0, 5], [1, -3], [1, 0], [1, 5], [0.5, 1.0]], np.float32)
    # by hand: (a .5+0=.5, b 0+.3, c .2) -> a; (a .5+.1, b 0, c .4) -> a;
    # (a 0, b .5+.3, c .2) -> b; (a 0, b .125+.3, c .375+.2) -> c; (a .1, b .125, c .775) -> c;
    # x0 = 0.5 goes left, x1 = 1.0 goes left -> a
    expected = ["a", "a", "b", "c", "c", "a"]
    files = cexport.generate(forest, "hand", leaf_dtype=leaf_dtype, layout=layout)
    got = np.asarray(forest.classes)[hostrun.predict(files, "hand", x)]
    assert got.tolist() == expected
    assert forest.predict(x).tolist() == expected


def test_threshold_is_stored_as_the_largest_float32_at_or_below_it():
    t = np.array([0.1, 1.0, -0.7, 3.4028235677973366e38, 1e39, 2.5 + 2**-30])
    f = cexport.float32_at_or_below(t)
    assert f.dtype == np.float32
    assert np.all(f.astype(np.float64) <= t)
    with np.errstate(over="ignore"):
        above = np.nextafter(f, np.float32(np.inf))
    assert np.all(above.astype(np.float64) > t)  # nothing in float32 between f and t
    assert f[1] == np.float32(1.0)  # representable thresholds are kept as they are


def test_midpoint_between_adjacent_float32_values_decides_as_scikit_learn():
    """scikit-learn splits between two adjacent float32 values at their float64 midpoint,
    which round-to-nearest (even) stores as the upper one for one of the two pairs below:
    then the upper value would go left. Stored rounded down, both sides stay apart."""
    base = np.float32(100.1)  # its ulp (7.6e-6) is above scikit-learn's 1e-7 constant-feature test
    lows = (base, np.nextafter(base, np.float32(np.inf)))
    for low in lows:
        high = np.nextafter(low, np.float32(np.inf))
        x = np.array([[low], [high]] * 4, np.float32)
        y = np.array([0, 1] * 4)
        est = DecisionTreeClassifier(random_state=0).fit(x, y)
        forest = from_sklearn(est)
        threshold = forest.trees[0].threshold[0]
        assert float(low) < threshold < float(high)
        files = cexport.generate(forest, "adj")
        assert hostrun.predict(files, "adj", x).tolist() == est.predict(x).tolist()
    # the control: for one of the pairs, nearest rounding lands on the upper value
    mids = [(float(v) + float(np.nextafter(v, np.float32(np.inf)))) / 2 for v in lows]
    nearest = [np.float32(m) for m in mids]
    assert any(float(n) > m for n, m in zip(nearest, mids, strict=True))


@pytest.fixture(scope="module", params=sorted(DATASETS))
def dataset(request):
    x, y = DATASETS[request.param](return_X_y=True)
    return request.param, x.astype(np.float32), y


@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.__name__)
def test_classifier_export_agrees_with_scikit_learn_on_every_sample(dataset, cls):
    name, x, y = dataset
    kwargs = {} if cls is DecisionTreeClassifier else {"n_estimators": 25}
    est = cls(random_state=0, **kwargs).fit(x[::2], y[::2])
    forest = from_sklearn(est)
    agreement = hostrun.compare(forest, x)
    assert agreement.n == len(x)
    assert agreement.n_equal == len(x), agreement.differences
    assert np.array_equal(forest.predict(x), est.predict(x))  # the spec is scikit-learn's


@pytest.mark.parametrize("cls", REGRESSORS, ids=lambda c: c.__name__)
def test_regressor_export_agrees_within_float32_rounding_and_exactly_with_double(dataset, cls):
    name, x, y = dataset
    kwargs = {} if cls is DecisionTreeRegressor else {"n_estimators": 25}
    est = cls(random_state=0, **kwargs).fit(x[::2], y[::2].astype(float) * 1.37)
    forest = from_sklearn(est)
    loose = hostrun.compare(forest, x)
    assert loose.n_equal == len(x), loose.differences
    assert 0 < loose.tolerance < 1e-4 * np.max(np.abs(y * 1.37)) * forest.n_members
    exact = hostrun.compare(forest, x, leaf_dtype="double")
    assert exact.tolerance == 0 and exact.n_equal == len(x), exact.differences
    got = hostrun.predict(cexport.generate(forest, "r", leaf_dtype="double"), "r", x)
    assert np.array_equal(got, est.predict(x))


def test_pruned_trees_export_as_the_pruned_forest_predicts(dataset):
    name, x, y = dataset
    est = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[::2], y[::2])
    forest = from_sklearn(est)
    pruned = []
    for tree in forest.trees:  # cut the subtrees under the root's children: depth 1 stumps
        for child in (int(tree.right[0]), int(tree.left[0])):
            if tree.left[child] != -1:
                tree = make_leaf(tree, child)
        pruned.append(tree)
    small = forest.with_trees(pruned)
    assert small.depth == 1 and small.n_nodes < forest.n_nodes
    assert not np.array_equal(small.predict(x), forest.predict(x))  # pruning changed it
    for layout in cexport.LAYOUTS:
        agreement = hostrun.compare(small, x, layout=layout)
        assert agreement.n_equal == len(x), agreement.differences


def test_forests_pruned_by_the_pruning_algorithms_export_as_they_predict(dataset):
    from edgeprune.trees import prune_tree

    name, x, y = dataset
    est = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[::2], y[::2])
    forest = from_sklearn(est)
    xv, yv = x[1::4], y[1::4]
    pruned = {
        "ccp": [  # half-way along each tree's weakest-link path
            prune_tree.ccp_prune(t, float(np.median(prune_tree.ccp_path(t).alphas)))
            for t in forest.trees
        ],
        "reduced_error": [
            prune_tree.reduced_error_prune(t, xv, yv, forest.task, forest.classes)
            for t in forest.trees
        ],
        "mdl": [
            prune_tree.mdl_prune(t, forest.n_features, len(forest.classes)) for t in forest.trees
        ],
    }
    for method, trees in pruned.items():
        small = forest.with_trees(trees)
        assert small.n_nodes < forest.n_nodes, method
        agreement = hostrun.compare(small, x)
        assert agreement.n_equal == len(x), (method, agreement.differences)


def test_a_model_refitted_on_fewer_features_reads_its_own_columns():
    x, y = load_wine(return_X_y=True)
    kept = [6, 12, 0]
    est = RandomForestClassifier(n_estimators=5, random_state=0).fit(x[:, kept], y)
    forest = from_sklearn(est).with_trees(from_sklearn(est).trees, features=kept)
    files = cexport.generate(forest, "few")
    assert (
        "#define FEW_N_FEATURES 3 /* the data set's features [6, 12, 0], in order */"
        in (files["few_model.h"])
    )
    agreement = hostrun.compare(forest, x)  # the data set's 13 columns; the model reads 3
    assert agreement.n_equal == agreement.n == len(x)


def test_int16_inputs_count_and_explain_the_decisions_quantization_flips():
    """One threshold at 0.5: its scale step is 0.5 / 30000; a value a third of a step above
    the threshold quantizes onto the threshold's level and goes left, as it should not."""
    forest = _hand_forest()
    step = 0.5 / cexport.Q_THRESHOLD_SPAN
    x = np.array([[0.5 + step / 3, 5], [0.5 + 3 * step, 5], [0.0, 5]], np.float32)
    agreement = hostrun.compare(forest, x, dtype="int16")
    assert agreement.n == 3 and agreement.n_equal == 2
    (diff,) = agreement.differences
    assert diff.row == 0 and diff.expected == "c" and diff.got == "a"
    assert "int16 quantization" in diff.why and "feature 0" in diff.why
    header = cexport.generate(forest, "q", "int16")["q_model.h"]
    assert "void q_quantize(const float *x, q_input_t *q);" in header
    assert "typedef int16_t q_input_t;" in header


def test_int16_export_agrees_on_real_data_where_features_are_not_at_thresholds(dataset):
    name, x, y = dataset
    est = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[::2], y[::2])
    agreement = hostrun.compare(from_sklearn(est), x, dtype="int16")
    assert agreement.n_equal >= 0.99 * len(x)
    assert len(agreement.differences) == min(len(x) - agreement.n_equal, hostrun.MAX_DIFFERENCES)


def test_two_models_link_into_one_program_and_export_only_prefixed_symbols(tmp_path):
    x, y = load_wine(return_X_y=True)
    one = from_sklearn(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y))
    two = from_sklearn(DecisionTreeRegressor(random_state=0).fit(x, y.astype(float)))
    files = {**cexport.generate(one, "alpha"), **cexport.generate(two, "beta")}
    x32 = x.astype(np.float32)
    labels = np.asarray(one.classes)[hostrun.predict(files, "alpha", x32)]
    assert np.array_equal(labels, one.predict(x32))
    assert np.allclose(hostrun.predict(files, "beta", x32), two.predict(x32), rtol=1e-6)
    for stem in ("alpha", "beta"):
        (tmp_path / f"{stem}_model.h").write_text(files[f"{stem}_model.h"])
        (tmp_path / f"{stem}_model.c").write_text(files[f"{stem}_model.c"])
        subprocess.run(["gcc", "-c", f"{stem}_model.c"], cwd=tmp_path, check=True)
        nm = subprocess.run(
            ["nm", "--defined-only", "-g", f"{stem}_model.o"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        symbols = nm[2::3]
        assert symbols and all(s.startswith(stem + "_") for s in symbols), symbols


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "9lives"}, "not a C identifier"),
        ({"name": "m", "dtype": "int4"}, "dtype 'int4' is not one of: float, int16"),
        ({"name": "m", "leaf_dtype": "half"}, "leaf_dtype 'half' is not one of"),
        ({"name": "m", "layout": "switch"}, "layout 'switch' is not one of: loop, ifelse"),
    ],
)
def test_bad_export_options_are_refused_with_the_allowed_values(kwargs, message):
    with pytest.raises(BadInputError, match=message):
        cexport.generate(_hand_forest(), **kwargs)


def test_an_empty_forest_is_refused():
    empty = _hand_forest().with_trees(())
    with pytest.raises(cexport.CExportError, match="no members; keep at least one tree"):
        cexport.generate(empty, "m")


def test_a_member_pruned_to_a_lone_leaf_exports_and_predicts(dataset):
    name, x, y = dataset
    forest = from_sklearn(RandomForestClassifier(n_estimators=4, random_state=0).fit(x, y))
    stump = make_leaf(forest.trees[0], 0)
    assert stump.n_nodes == 1
    small = forest.with_trees((stump, *forest.trees[1:]))
    for layout in cexport.LAYOUTS:
        assert hostrun.compare(small, x, layout=layout).n_equal == len(x)
    alone = forest.with_trees((stump,))  # a single leaf: every row gets its class
    assert hostrun.compare(alone, x).n_equal == len(x)


def test_host_runner_refuses_nan_rows_naming_the_first():
    files = cexport.generate(_hand_forest(), "hand")
    x = np.zeros((3, 2), np.float32)
    x[1, 1] = np.nan
    with pytest.raises(BadInputError, match="x row 1 holds NaN or infinity; .* impute or drop"):
        hostrun.predict(files, "hand", x)


def test_host_runner_refuses_rows_of_the_wrong_width():
    files = cexport.generate(_hand_forest(), "hand")
    with pytest.raises(BadInputError, match=r"x has shape \(4, 3\); the model reads rows of 2"):
        hostrun.predict(files, "hand", np.zeros((4, 3), np.float32))


def test_emlearn_anchor_runs_on_the_host_and_says_how_often_it_agrees():
    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    est = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[::2], y[::2])
    files = emlearn_anchor.emlearn_anchor(est, "anchor")
    assert set(files) == {"anchor_model.h", "anchor_model.c"}
    got = hostrun.predict(files, "anchor", x)
    assert got.min() >= 0 and got.max() <= 1
    # majority vote, not scikit-learn's soft vote: close, not guaranteed equal
    assert np.mean(est.classes_[got] == est.predict(x)) > 0.95


def _serial_client(address: str):
    """The serial runner's transport and retry logic (edgeprune.runners.serial), without
    its TFLite model: what a tree variant of the runner will reuse."""
    from edgeprune.runners.serial import SerialRunner, parse_address

    class TreeLink(SerialRunner):
        def __post_init__(self):
            self.port, self.baud = parse_address(self.address)
            self.retried = 0

    return TreeLink(b"", address, timeout_s=2.0)


@pytest.mark.parametrize("dtype", cexport.DTYPES)
def test_serial_harness_answers_the_protocol_over_a_pty_as_the_model_predicts(tmp_path, dtype):
    import os
    import tty

    from edgeprune import protocol as p
    from edgeprune.errors import DeviceError

    x, y = load_wine(return_X_y=True)
    x = x.astype(np.float32)
    forest = from_sklearn(RandomForestClassifier(n_estimators=8, random_state=0).fit(x, y))
    files = cexport.generate(forest, "wine", dtype)
    for fname, text in {**files, **hostrun.serial_harness(files, "wine")}.items():
        (tmp_path / fname).write_text(text)
    (tmp_path / "board.c").write_text(board_main("wine"))
    sources = sorted(str(f) for f in tmp_path.glob("*.c"))
    flags = ["-std=gnu99", "-Wall", "-Wextra", "-Werror"]
    subprocess.run(
        ["gcc", *flags, "-I", str(tmp_path), *sources, "-o", str(tmp_path / "board"), "-lm"],
        check=True,
    )
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    board = subprocess.Popen([str(tmp_path / "board")], stdin=master, stdout=master)
    client = _serial_client(os.ttyname(slave))
    link = client._open()
    try:
        ident = p.Identity.unpack(client.request(link, p.HELLO, b"", p.IDENTITY))
        source = files["wine_model.c"].encode()
        assert (ident.model_crc32, ident.model_bytes) == (p.model_crc32(source), len(source))
        assert (ident.input_bytes, ident.output_bytes) == (13 * 4, 4)
        got = []
        for row in x[::6]:
            p.decode_ack(client.request(link, p.SET_INPUT, p.OFFSET.pack(0) + row.tobytes(), p.ACK))
            assert p.decode_invoked(client.request(link, p.INVOKE, b"", p.INVOKED)) > 0
            raw = client.request(link, p.GET_OUTPUT, p.OFFSET_COUNT.pack(0, 4), p.OUTPUT)
            got.append(int(np.frombuffer(p.decode_output(raw, 4), "<i4")[0]))
        labels = np.asarray(forest.classes)[got]
        expected = forest.predict(x[::6])
        assert np.mean(labels == expected) == (
            1.0 if dtype == "float" else np.mean(labels == expected)
        )
        if dtype == "float":
            assert np.array_equal(labels, expected)
        with pytest.raises(DeviceError, match="offset or count out of range"):
            client.request(link, p.GET_OUTPUT, p.OFFSET_COUNT.pack(2, 4), p.OUTPUT)
    finally:
        link.close()
        board.kill()
        board.wait()
        os.close(master)
        os.close(slave)
