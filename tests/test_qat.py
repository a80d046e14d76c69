"""Clustering and the preserving QAT modes (pqat, cqat, pcqat): each converts to int8 and
keeps its zeros and clusters there; plain QAT destroys both, and the check says so."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import small_recipe

from edgeprune.adapters import converter as convert
from edgeprune.adapters import keras as ka
from edgeprune.adapters import tfmot as tm
from edgeprune.adapters import tfmot_qat as tq
from edgeprune.errors import RecipeError, UnsupportedModelError, VerificationError
from edgeprune.recipe import build_recipe
from edgeprune.report.entries import QuantizeEntry
from edgeprune.stages.preserve import SPARSITY_TOLERANCE, check_preserved, int8_weights

N = 8  # clusters per layer in these tests
TRAINING = dict(task="classification", probabilities=True, seed=0, batch_size=64)


@pytest.fixture(scope="module")
def pruned(trained_models, digits):
    """The tiny sequential model pruned to 75 % by the pipeline's tfmot path, stripped."""
    from edgeprune.schedule import plan_schedule

    opts = small_recipe(final_sparsity=0.75, epochs=3).prune
    model = trained_models["sequential"]
    plans = tm.plan_layers(model, opts)
    wrapped = tm.wrap(model, plans, plan_schedule(opts, len(digits.x_train)), opts)
    tm.fine_tune(
        wrapped, digits.x_train, digits.y_train, task="classification", probabilities=True,
        opts=opts, seed=0,
    )  # fmt: skip
    return tm.strip(wrapped)


@pytest.fixture(scope="module")
def clustered(pruned, digits):
    """The pruned model clustered to N values per layer: (model, clustered layer names)."""
    return tq.cluster(
        pruned, digits.x_train, digits.y_train, clusters=N, epochs=1, learning_rate=1e-4, **TRAINING
    )


@pytest.fixture(scope="module")
def clustered_dense(trained_models, digits):
    """The unpruned model clustered to N values: clusters, and no zeros to keep."""
    return tq.cluster(
        trained_models["sequential"],
        digits.x_train,
        digits.y_train,
        clusters=N,
        epochs=1,
        learning_rate=1e-4,
        **TRAINING,
    )


def _qat_int8(model, digits, mode: str) -> bytes:
    qat = tq.quantize_aware(
        model, digits.x_train, digits.y_train, mode=mode, epochs=1, learning_rate=1e-4, **TRAINING
    )
    return convert.to_tflite(qat, "int8", digits.x_train[:50])


def _accuracy(model, digits) -> float:
    """Test accuracy of a Keras model or of ``.tflite`` bytes (host LiteRT)."""
    from edgeprune.runners.host import HostRunner

    if isinstance(model, bytes):
        scores = HostRunner(model).predict(digits.x_test)
    else:
        scores = ka.predict(model, digits.x_test)
    return float(np.mean(scores.argmax(1) == digits.y_test))


def test_cluster_leaves_at_most_n_values_per_layer_and_keeps_zeros(pruned, clustered):
    model, names = clustered
    assert names == ["conv", "hidden", "out"]
    before, after = tq.kernel_figures(pruned), tq.kernel_figures(model)
    for name in names:
        weights, zeros, distinct = after[name]
        assert 2 <= distinct <= N, name
        # tfmot's preserve_sparsity: pruned zeros stay zero (one of the N values)
        assert zeros >= before[name][1], name
    assert not any("cluster" in layer.name for layer in model.layers)  # stripped


def test_cluster_skips_kernels_smaller_than_the_cluster_count(trained_models, digits):
    model, names = tq.cluster(
        trained_models["sequential"],
        digits.x_train[:64],
        digits.y_train[:64],
        clusters=100,  # conv has 72 weights: nothing to gain
        epochs=1,
        learning_rate=1e-4,
        **TRAINING,
    )
    assert names == ["hidden", "out"]
    assert tq.kernel_figures(model)["conv"][2] == 72


def test_depthwise_kernels_stay_unclustered_and_pcqat_checks_the_rest(trained_models, digits):
    model, names = tq.cluster(
        trained_models["depthwise"],
        digits.x_train,
        digits.y_train,
        clusters=N,
        epochs=1,
        learning_rate=1e-4,
        **TRAINING,
    )
    assert names == ["out", "pw", "stem"]  # tfmot's registry leaves DepthwiseConv2D out
    figures = tq.kernel_figures(model)
    assert figures["dw"][2] == 72  # every weight its own value
    data = _qat_int8(model, digits, "pcqat")
    entry = check_preserved("pcqat", figures, data, clustered=names, clusters=N)
    rows = {r.layer: r for r in entry.layers}
    assert entry.ok and not rows["dw"].clustered and rows["dw"].int8_distinct > N
    assert all(rows[n].int8_distinct <= N for n in names)


def test_pqat_keeps_every_layers_zeros_in_int8(pruned, digits):
    figures = tq.kernel_figures(pruned)
    data = _qat_int8(pruned, digits, "pqat")
    entry = check_preserved("pqat", figures, data, clustered=[], clusters=0, qat_epochs=1)
    assert entry.checks == ("sparsity",) and entry.ok
    assert {r.layer for r in entry.layers} == {"conv", "hidden", "out"}
    for row in entry.layers:
        assert row.found and row.float_zero_fraction == pytest.approx(0.75, abs=0.02)
        assert row.int8_zero_fraction >= row.float_zero_fraction - SPARSITY_TOLERANCE
    assert _accuracy(data, digits) >= _accuracy(pruned, digits) - 0.05 > 0.5  # chance is 0.1


def test_plain_qat_loses_the_zeros_and_fails_the_check(pruned, digits):
    figures = tq.kernel_figures(pruned)
    data = _qat_int8(pruned, digits, "qat")
    zeros = {k: z / n for k, (n, z, _, _) in int8_weights(data).items()}
    # one epoch at 1e-4 moves the zeros of conv (per-channel scales, 72 weights) off
    # zero; the larger layers lose fewer in so short a run
    assert zeros["conv"] < 0.5 and zeros["hidden"] < 0.74
    with pytest.raises(VerificationError) as info:
        check_preserved("qat", figures, data, clustered=[], clusters=0)
    message = str(info.value)
    assert message.startswith("qat did not keep layer conv: ")
    assert "of its int8 weights are zero against 0.750 of its float weights (tolerance 0.01)" in (
        message
    )
    assert "\n" not in message


@pytest.mark.parametrize("mode", ["cqat", "pcqat"])
def test_cluster_preserving_qat_keeps_at_most_n_int8_values_per_channel(clustered, digits, mode):
    model, names = clustered
    figures = tq.kernel_figures(model)
    data = _qat_int8(model, digits, mode)
    entry = check_preserved(mode, figures, data, clustered=names, clusters=N, qat_epochs=1)
    assert entry.ok
    rows = {r.layer: r for r in entry.layers}
    assert rows["conv"].per_channel and not rows["hidden"].per_channel
    for name in names:
        assert 1 <= rows[name].int8_distinct <= N
    if mode == "pcqat":
        assert entry.checks == ("sparsity", "clusters")
        for row in entry.layers:
            assert row.int8_zero_fraction >= row.float_zero_fraction - SPARSITY_TOLERANCE
    else:
        assert entry.checks == ("clusters",)
    assert _accuracy(data, digits) >= _accuracy(model, digits) - 0.05 > 0.5  # chance is 0.1


def test_post_training_int8_keeps_clusters(clustered, digits):
    model, names = clustered
    data = convert.to_tflite(model, "int8", digits.x_train[:50])
    entry = check_preserved("int8", tq.kernel_figures(model), data, clustered=names, clusters=N)
    assert entry.checks == ("clusters",) and entry.ok


def test_plain_qat_dissolves_clusters_and_fails_the_check(clustered_dense, digits):
    model, names = clustered_dense
    data = _qat_int8(model, digits, "qat")
    assert max(int8_weights(data)["hidden"][2], int8_weights(data)["out"][2]) > 2 * N
    # judged as cqat (a cluster-preserving scheme that is really plain QAT)
    with pytest.raises(VerificationError) as info:
        check_preserved("cqat", tq.kernel_figures(model), data, clustered=names, clusters=N)
    assert str(info.value).startswith("cqat did not keep layer ")
    assert "distinct int8 values in " in str(info.value)
    assert f"more than cluster.clusters = {N}" in str(info.value)


def test_unsupported_layer_is_refused_in_one_line(digits):
    from edgeprune.adapters.keras import keras

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    out = keras.layers.Dense(10, activation="softmax", name="out")(x)
    model = keras.Model(inp, out)
    with pytest.raises(UnsupportedModelError, match="tfmot cannot apply quantization-aware") as e:
        _qat_int8(model, digits, "pqat")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- recipe


def test_recipe_takes_the_qat_modes_and_a_cluster_section():
    r = build_recipe({"quantize": {"mode": "pcqat", "qat_epochs": 3}, "cluster": {"clusters": 16}})
    assert (r.quantize.mode, r.quantize.qat_epochs, r.cluster.clusters) == ("pcqat", 3, 16)
    assert r.to_dict()["cluster"]["clusters"] == 16
    assert build_recipe({}).cluster.clusters == 0  # off by default


@pytest.mark.parametrize(
    "values, message",
    [
        ({"quantize": {"mode": "cqat"}}, "quantize.mode = 'cqat' preserves weight clusters but"),
        ({"quantize": {"mode": "pcqat"}}, "cluster.clusters = 0 clusters nothing"),
        (
            {"quantize": {"mode": "pqat"}, "prune": {"final_sparsity": 0.0}},
            "quantize.mode = 'pqat' preserves pruned zeros but prune.final_sparsity = 0",
        ),
        ({"cluster": {"clusters": 1}}, "cluster.clusters = 1 would set every weight"),
        ({"cluster": {"clusters": 129}}, r"cluster.clusters = 129 is outside \[0, 128\]"),
        ({"cluster": {"clusters": -2}}, "cluster.clusters = -2 is below its minimum 0"),
        ({"quantize": {"qat_epochs": 0}}, "quantize.qat_epochs = 0 is below its minimum 1"),
        (
            {"quantize": {"mode": "pqat", "dense": "per_channel"}},
            "quantize.dense = 'per_channel' cannot apply to quantize.mode = 'pqat': its QAT",
        ),
    ],
)
def test_bad_qat_and_cluster_options_are_refused(values, message):
    with pytest.raises(RecipeError, match=message) as info:
        build_recipe(values)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- through the pipeline


def _recipe(mode: str, clusters: int):
    base = small_recipe().to_dict()
    base["quantize"].update(mode=mode, qat_epochs=1)
    base["cluster"].update(clusters=clusters, epochs=1)
    return build_recipe({k: base[k] for k in ("train", "prune", "quantize", "cluster")})


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, checks", [("pcqat", ["sparsity", "clusters"]), ("int8", ["clusters"])]
)
def test_pipeline_writes_the_checked_int8_model_and_its_report(tmp_path, mode, checks):
    """On a TFLite Micro target: the arena search and the firmware take the checked
    model (for int8 with quantize.dense = "auto", whichever Dense variant was chosen)."""
    import edgeprune.pipeline as pipeline
    from edgeprune import report
    from edgeprune.tflite import inspect_model

    out = tmp_path / "run"
    result = pipeline.run(recipe=_recipe(mode, 16), out=str(out), target="nano33ble", page=False)
    final = out / f"final_{mode}.tflite"
    info = inspect_model(final.read_bytes())
    assert info.inputs[0].dtype == "int8" and info.weights.zero_fraction > 0.7
    stored = json.loads((out / "report.json").read_text())
    q = stored["stages"]["quantize"]
    assert q["mode"] == mode and q["preserve"]["checks"] == checks
    assert {row["layer"] for row in q["preserve"]["layers"]} == {
        "conv1", "conv2", "fc1", "classifier"
    }  # fmt: skip
    entry = report.read(result.report_path).stages.quantize
    assert isinstance(entry, QuantizeEntry) and entry.preserve.ok and entry.preserve.clusters == 16
    # the figures are the written file's: recount its values per layer
    written = int8_weights(final.read_bytes())
    for row in entry.preserve.layers:
        assert row.int8_distinct == written[row.layer][2] <= 16
    assert (out / "firmware").is_dir() and result.check is not None


@pytest.mark.slow
def test_pipeline_with_a_broken_scheme_fails_and_leaves_nothing(tmp_path, monkeypatch):
    import edgeprune.pipeline as pipeline

    plain = tq._scheme("qat")
    monkeypatch.setattr(tq, "_scheme", lambda mode: plain)  # "pqat" that is plain QAT
    out = tmp_path / "run"
    with pytest.raises(VerificationError, match=r"^pqat did not keep layer conv1: "):
        pipeline.run(recipe=_recipe("pqat", 0), out=str(out))
    assert not os.path.exists(out) or not [p for p in os.listdir(out) if not p.startswith(".")]


# ---------------------------------------------------------------- report


def test_quantize_entry_round_trips_its_preserve_record_and_omits_it_when_absent():
    from edgeprune.report.qat_entries import PreserveEntry, PreserveLayer
    from edgeprune.rules.result import RuleResult

    check = RuleResult("accuracy", "rule", True, 0.0, 0.02, "", "quantize.max_accuracy_drop", "e")
    row = PreserveLayer("conv", 72, 0.75, 0.75, 8, 5, True, True, True, True, "")
    unmatched = PreserveLayer("emb", 40, 0.0, None, 40, None, False, False, False, True, "why")
    preserve = PreserveEntry("pcqat", ("sparsity", "clusters"), 0.01, 8, 2, 2, (row, unmatched))
    entry = QuantizeEntry("pcqat", 50, "x_train", False, check, 1.0, preserve=preserve)
    data = json.loads(json.dumps(entry.to_dict()))
    assert data["preserve"]["layers"][0]["int8_distinct"] == 5
    again = QuantizeEntry.from_dict(data)
    assert again == entry and again.preserve.ok
    plain = QuantizeEntry("int8", 50, "x_train", False, check, 1.0)
    assert "preserve" not in plain.to_dict()
    assert QuantizeEntry.from_dict(plain.to_dict()).preserve is None
