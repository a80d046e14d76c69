"""The .tflite verifier and bounded reads: every class of damage LiteRT's loader
refuses is refused by inspect, cost and check with one named line (exit 1);
only regular files under a size cap are read; TFLite Micro's worker is bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import tflite_mutants  # noqa: E402

from edgeprune.cli import main  # noqa: E402
from edgeprune.errors import InvalidModelError, ModelLoadError  # noqa: E402
from edgeprune.tflite import TFLiteInvalidError, inspect_model  # noqa: E402

FIX = "the file is damaged or was not written by the TFLite converter — re-convert the model"

# (mutant, what the message must say): the cases issue 14 found passing `check`.
REFUSED = [
    ("stride 0", "operator 0 (CONV_2D) of subgraph 0 has strideW 0 (must be at least 1)"),
    ("negative dilation", "operator 0 (CONV_2D) of subgraph 0 has dilationHFactor -1"),
    ("padding 99", "operator 0 (CONV_2D) of subgraph 0 has padding 99 (SAME or VALID)"),
    ("fused activation 99", "has fused activation 99 (unknown)"),
    ("conv options missing", "has options NONE, not Conv2DOptions"),
    ("no inputs", "subgraph 0 has no input tensor"),
    ("no outputs", "subgraph 0 has no output tensor"),
    ("no operators", "subgraph 0 has no operator"),
    ("no subgraphs", "the model has no subgraph"),
    ("schema 99", "schema version 99, not 3"),
    ("root table emptied", "the root table is empty (no schema version, no subgraph)"),
    ("NaN weight scale", "has quantization scale nan (must be > 0)"),
    ("weights with no data", "which holds no data and no earlier operator writes"),
    ("bias zero point 2", "has zero point 2; TFLite's quantization spec fixes it at 0"),
    ("huge dimension", "declares shape [1, 1073741824, 8, 1], 8,589,934,592 bytes"),
    ("unknown builtin 250", "operator 0 (UNKNOWN_BUILTIN_250) of subgraph 0 has an unknown"),
]


@pytest.fixture(scope="module")
def model_file(int8_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("verify") / "m.tflite"
    path.write_bytes(int8_model)
    return path


def test_our_own_models_pass_the_verifier(int8_model, float_model):
    for data in (int8_model, float_model):
        assert inspect_model(data).operators


@pytest.mark.parametrize(("mutant", "message"), REFUSED, ids=[m for m, _ in REFUSED])
def test_each_class_of_damage_is_refused_naming_where_and_the_fix(int8_model, mutant, message):
    data = tflite_mutants.HAND_MADE[mutant](int8_model)
    with pytest.raises(TFLiteInvalidError) as excinfo:
        inspect_model(data)
    text = str(excinfo.value)
    assert message in text
    assert text.startswith("<bytes>: ") and text.endswith(FIX)
    assert isinstance(excinfo.value, InvalidModelError)  # a bad input, exit 1
    assert "\n" not in text


@pytest.mark.parametrize("mutant", ["opcode index 99", "tensor index 999"])
def test_indices_out_of_range_are_format_errors(int8_model, mutant):
    with pytest.raises(InvalidModelError, match="damaged TFLite model: operator 0 of subgraph 0"):
        inspect_model(tflite_mutants.HAND_MADE[mutant](int8_model))


@pytest.mark.parametrize("command", ["inspect", "cost", "check"])
def test_commands_refuse_what_the_verifier_refuses_with_one_line(int8_model, tmp_path, command):
    path = tmp_path / "stride0.tflite"
    path.write_bytes(tflite_mutants.HAND_MADE["stride 0"](int8_model))
    args = [command, str(path)] + (["--target", "nano33ble"] if command == "check" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"edgeprune: error: {path}: operator 0 (CONV_2D) of subgraph 0 has strideW 0 "
        f"(must be at least 1); {FIX}\n"
    )


def test_a_string_past_the_end_of_the_file_is_refused(int8_model):
    with pytest.raises(TFLiteInvalidError, match="the key of signature 0 runs past the end"):
        inspect_model(tflite_mutants.signature_key_past_the_end(int8_model))


def test_tflite_micro_worker_runs_litert_flatbuffer_verifier_first(int8_model, monkeypatch):
    # Damage the Python walk misses (the campaign finds some in every few hundred
    # mutants) is stood in for by skipping the walk: the worker must still refuse.
    from edgeprune.tflm import probe

    damaged = tflite_mutants.signature_key_past_the_end(int8_model)
    monkeypatch.setattr(probe, "_inspect", lambda model: inspect_model(int8_model))
    with pytest.raises(TFLiteInvalidError) as excinfo:
        probe.check_ops(damaged)
    assert str(excinfo.value) == (
        "LiteRT's flatbuffer verifier refuses the model (The model is not a valid "
        f"Flatbuffer buffer); {FIX}"
    )
    assert probe.check_ops(int8_model).supported


@pytest.mark.parametrize(
    ("special", "message"),
    [
        ("/dev/zero", "model /dev/zero is not a regular file; pass a .tflite file"),
        ("/dev/urandom", "model /dev/urandom is not a regular file; pass a .tflite file"),
        ("fifo", "is not a regular file; pass a .tflite file"),
    ],
)
def test_only_regular_files_are_read(tmp_path, special, message):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)  # no writer: a read would wait for ever
    with pytest.raises(ModelLoadError) as excinfo:
        inspect_model(special)
    assert message in str(excinfo.value)


def test_a_file_over_the_cap_is_refused_unread_and_the_flag_raises_the_cap(model_file, tmp_path):
    big = tmp_path / "big.tflite"
    big.write_bytes(model_file.read_bytes().ljust(2 * 2**20 + 1, b"\0"))
    with pytest.raises(ModelLoadError, match=r"is 2\.0 MiB, over the 1 MiB limit for a .tflite"):
        inspect_model(big, max_bytes=2**20)
    runner = CliRunner()
    refused = runner.invoke(main, ["inspect", "--max-model-mb", "1", str(big)])
    assert refused.exit_code == 1
    assert "raise the limit with --max-model-mb if the file is right" in refused.output
    # Padding after the flatbuffer is allowed: with the cap raised, it is read.
    accepted = runner.invoke(main, ["inspect", "--max-model-mb", "3", str(big)])
    assert accepted.exit_code == 0, accepted.output
    assert "2,097,153 B" in accepted.output


def test_cost_refuses_a_conv_whose_filter_is_rank_0(int8_model):
    from edgeprune.estimates.opcost import model_cost

    def scalar_filter(model):
        conv = tflite_mutants._first_conv(model)
        filt = model.subgraphs[0].tensors[conv.inputs[1]]
        filt.shape, filt.quantization = [], None
        model.buffers[filt.buffer].data = [0]  # one int8 value: its declared size

    info = inspect_model(tflite_mutants._edit(int8_model, scalar_filter))
    with pytest.raises(InvalidModelError) as excinfo:
        model_cost(info)
    assert str(excinfo.value).startswith(
        "<bytes>: operator 0 (CONV_2D) of subgraph 0 has input 1 of shape [], not of rank 4, "
        "so its cost cannot be counted"
    )


def test_cost_counts_elementwise_ops_on_rank_0_tensors(int8_model):
    from edgeprune.estimates.opcost import model_cost

    def scalar_softmax(model):
        graph = model.subgraphs[0]
        softmax = graph.operators[-1]
        for t in (*softmax.inputs, *softmax.outputs):
            graph.tensors[t].shape, graph.tensors[t].shapeSignature = [], None

    costs = model_cost(tflite_mutants._edit(int8_model, scalar_softmax))
    assert costs.ops[-1].opcode == "SOFTMAX"
    assert costs.ops[-1].elements == 1


def test_check_refuses_an_activation_larger_than_the_targets_ram(int8_model, tmp_path):
    path = tmp_path / "large.tflite"
    path.write_bytes(tflite_mutants._edit(int8_model, tflite_mutants._large_activation))
    result = CliRunner().invoke(main, ["check", "--target", "nano33ble", str(path)])
    assert result.exit_code == 1, result.output
    assert "of shape [1, 8192, 8192, 1] alone needs 67,108,864 bytes, more than the 262,144 " in (
        result.output
    )


def test_worker_limits_its_own_address_space():
    script = (
        "import resource\n"
        "from edgeprune.tflm.worker import limit_memory\n"
        "limit_memory(2**31)\n"
        "print(resource.getrlimit(resource.RLIMIT_AS)[0])\n"
        "try:\n"
        "    bytearray(3 * 2**30)\n"
        "except MemoryError:\n"
        "    print('MemoryError')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.stdout.split() == [str(2**31), "MemoryError"], out.stderr


def test_empty_whole_model_failure_still_gives_a_reason(monkeypatch, int8_model):
    from edgeprune.artifacts import Flatbuffer
    from edgeprune.stages import check
    from edgeprune.target import load_target
    from edgeprune.tflm import probe

    def crashed(_data):
        return probe.OpSupport(False, {}, (), "TFLite Micro crashed (SIGSEGV)")

    monkeypatch.setattr(probe, "check_ops", crashed)
    target = load_target("nano33ble")
    facts, _ = check.support(Flatbuffer.of(int8_model, "m.tflite", "int8"), target)
    assert facts.unsupported == ("the whole model: TFLite Micro crashed (SIGSEGV)",)
    with pytest.raises(check.TargetMismatchError, match=r"on nano33ble: the whole model: TFLite"):
        check.require(facts, target)


def test_a_restarted_worker_skips_the_verifier_its_bytes_already_passed(int8_model):
    from edgeprune.tflm.client import Worker

    with Worker(int8_model) as worker:
        request = {"cmd": "probe", "arena_bytes": 2**20, "invoke": False}
        assert worker.request(request).ok
        assert "--verified" not in worker._proc.args
        worker._reap(kill=True)  # as after a crash at a too-small arena
        assert worker.request(request).ok
        assert worker.starts == 2 and "--verified" in worker._proc.args
