"""Property-based fuzzing of the .tflite reader: damaged bytes in, and the only
outcomes allowed are a parsed, verified model whose cost can be counted, or the
domain error (``InvalidModelError``, exit 1). Never another exception.

Seeds: our own int8 and float32 models and the hand-made mutants of issue 14
(benchmarks/tflite_mutants.py). Mutations: bit flips, random integers written at
random offsets, truncations, splices. ~200 examples in the quick suite; the
slow suite runs 20,000 (about two minutes).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tflite_mutants  # noqa: E402

from edgeprune.errors import InvalidModelError  # noqa: E402
from edgeprune.estimates.opcost import model_cost  # noqa: E402
from edgeprune.tflite import inspect_model, read_constant  # noqa: E402


@pytest.fixture(scope="module")
def hand_made(int8_model) -> dict[str, bytes]:
    return {name: make(int8_model) for name, make in tflite_mutants.HAND_MADE.items()}


@pytest.fixture(scope="module")
def seeds(int8_model, float_model, hand_made) -> list[bytes]:
    return [int8_model, float_model, *hand_made.values()]


def _read_everything(data: bytes) -> str:
    """What the readers make of ``data``: "ok" or "refused"; any other exception escapes."""
    try:
        info = inspect_model(data)
        model_cost(info)
        for tensor in info.tensors[:8]:
            if tensor.is_constant and not tensor.is_sparse:
                try:
                    read_constant(data, tensor)
                except InvalidModelError:
                    raise
                except ValueError as exc:  # a documented refusal (dtype numpy cannot hold)
                    assert "numpy cannot hold" in str(exc) or "external" in str(exc), exc
    except InvalidModelError as exc:
        assert str(exc) and "\n" not in str(exc)
        return "refused"
    return "ok"


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**31), st.integers(0, 7)),
    st.tuples(
        st.just("int"),
        st.integers(0, 2**31),
        st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 0xFFFF, 4, 99])
        | st.integers(-(2**31), 2**31 - 1),
    ),
    st.tuples(st.just("truncate"), st.integers(0, 2**31), st.just(0)),
    st.tuples(st.just("splice"), st.integers(0, 2**31), st.integers(0, 2**31)),
)


def _apply(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, at, value in mutations:
        if not out:
            break
        at %= len(out)
        if kind == "flip":
            out[at] ^= 1 << value
        elif kind == "int":
            out[at : at + 4] = struct.pack("<i", value)[: len(out) - at]
        elif kind == "truncate":
            del out[at:]
        else:
            source = value % len(out)
            out[at : at + 16] = out[source : source + 16]
    return bytes(out)


def _fuzz(seeds, seed_index: int, mutations) -> None:
    data = _apply(seeds[seed_index % len(seeds)], mutations)
    assert _read_everything(data) in ("ok", "refused")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed_index=st.integers(0, 100), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_models_parse_or_are_refused_by_name(seeds, seed_index, mutations):
    _fuzz(seeds, seed_index, mutations)


@pytest.mark.slow
@settings(
    max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed_index=st.integers(0, 100), mutations=st.lists(mutation, min_size=1, max_size=8))
def test_many_mutated_models_parse_or_are_refused_by_name(seeds, seed_index, mutations):
    _fuzz(seeds, seed_index, mutations)


def test_the_hand_made_mutants_are_all_refused(int8_model, float_model, hand_made):
    assert [_read_everything(s) for s in (int8_model, float_model)] == ["ok", "ok"]
    outcomes = {name: _read_everything(data) for name, data in hand_made.items()}
    assert set(outcomes.values()) == {"refused"}


def test_seeded_byte_mutants_cover_both_outcomes(int8_model):
    outcomes = [
        _read_everything(m)
        for _, m in tflite_mutants.random_mutants({"int8": int8_model}, 300, seed=1)
    ]
    # A campaign that only ever produced refusals (or passes) would test one path.
    assert outcomes.count("ok") > 10 and outcomes.count("refused") > 10


def test_campaign_mutants_are_deterministic_and_cover_every_hand_made_case(int8_model, float_model):
    import campaign_tflite

    seeds = {"int8": int8_model, "float32": float_model}
    mutants = campaign_tflite.make_mutants(seeds, 500)
    assert len(mutants) == 500
    assert mutants == campaign_tflite.make_mutants(seeds, 500)
    names = {name for name, _ in mutants}
    assert {f"int8: {case}" for case in tflite_mutants.HAND_MADE} <= names
    assert "float32: NaN weight scale" not in names  # its weights are not quantized


def test_campaign_counts_a_hang_and_an_exit_code(tmp_path):
    import campaign_tflite

    hung = campaign_tflite.run_watched([sys.executable, "-c", "import time; time.sleep(60)"], 1)
    assert hung["hung"] and hung["exit"] == -9
    failed = campaign_tflite.run_watched(
        [sys.executable, "-c", "import sys; sys.exit('edgeprune: error: no')"], 30
    )
    assert (failed["exit"], failed["stderr"], failed["hung"]) == (1, "edgeprune: error: no", False)
    assert failed["peak_mb"] > 1
