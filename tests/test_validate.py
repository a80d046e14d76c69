"""Validation runs on the host and TFLite Micro runners: metrics, agreement in LSB,
latency, the rules and exit code 4, the report entry, bad run folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from test_firmware_projects import STUBS, _stub_resolver
from tflm_bridge import BRIDGE_CC, PROJECT_INTERPRETER_H, PROJECT_SCHEMA_H, TflmWorker

from edgeprune.cli import main
from edgeprune.errors import BadInputError, QualityError
from edgeprune.presentation.validation import format_result, format_rule
from edgeprune.recipe_options import ValidateOptions
from edgeprune.rules import validation as rules
from edgeprune.runners import RunOutput
from edgeprune.stages import validate as val

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def invoke(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def _report(run_dir):
    return json.loads((run_dir / "report.json").read_text())


def test_host_runner_agrees_exactly_and_writes_the_report(run_dir):
    r = invoke(run_dir, "--runner", "host")
    assert r.exit_code == 0, r.output
    assert "validate final_int8.tflite on host: PASS" in r.output
    entry = _report(run_dir)["validation"]["host"]
    assert entry["ok"] and not entry["partial"]
    assert entry["completed"] == entry["samples"] == 360
    assert entry["agreement"]["agreement"] == 1.0 and entry["agreement"]["max_abs_diff"] == 0
    assert entry["agreement"]["unit"] == "LSB of the int8 output"
    assert entry["latency_ms"]["n"] == 360
    assert (
        0 < entry["latency_ms"]["p50"] <= entry["latency_ms"]["p99"] <= entry["latency_ms"]["max"]
    )
    assert entry["model_sha256"] == _report(run_dir)["artifacts"]["final_int8.tflite"]["sha256"]
    assert len(entry["metrics"]["confusion_matrix"]) == 10
    assert entry["split"].startswith("test")  # digits has no x_val


def test_tflm_runner_runs_in_the_smallest_arena_and_keeps_the_host_entry(run_dir):
    r = invoke(run_dir, "--target", "nano33ble", "--samples", "120")  # auto: tflm
    assert r.exit_code == 0, r.output
    report = _report(run_dir)
    entry = report["validation"]["tflm"]
    assert entry["completed"] == 120 and "first 120 samples" in entry["split"]
    assert "tflite-micro" in entry["where"] and "arena" in entry["where"]
    assert entry["agreement"]["agreement"] >= 0.99
    assert entry["agreement"]["max_abs_diff"] <= 2  # kernels may round one LSB apart
    assert "host" in report["validation"]  # a second runner adds, it does not replace
    assert entry["baseline_metrics"]["accuracy"] >= entry["metrics"]["accuracy"] - 0.05


def test_a_model_that_lost_its_accuracy_exits_4_after_writing_the_result(run_dir, tmp_path):
    """The run folder's final model swapped for an untrained one (its hash
    recorded, as if the run had produced it): the accuracy rule fails."""
    from edgeprune.models import digits_cnn

    from edgeprune.adapters import converter as convert
    from edgeprune.adapters.keras import seed_everything
    from edgeprune.artifacts import sha256_file
    from edgeprune.data import load_dataset

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    seed_everything(3)
    ds = load_dataset("digits")
    (broken / "final_int8.tflite").write_bytes(
        convert.to_tflite(digits_cnn.build(), "int8", ds.x_train[:32])
    )
    report = _report(broken)
    report["artifacts"]["final_int8.tflite"]["sha256"] = sha256_file(broken / "final_int8.tflite")
    (broken / "report.json").write_text(json.dumps(report))
    r = invoke(broken, "--runner", "host")
    assert r.exit_code == 4, r.output
    assert "fails validation on host: accuracy" in r.output
    entry = _report(broken)["validation"]["host"]
    assert entry["ok"] is False and entry["rules"][0]["figure"] > 0.5
    r = invoke(broken, "--runner", "host", "--max-validation-drop", "-0.5")
    assert r.exit_code == 1 and "validate.max_accuracy_drop = -0.5 is below" in r.output


def test_bad_run_folders_are_one_line_errors(run_dir, tmp_path):
    r = invoke(tmp_path)
    assert r.exit_code == 1 and "has no report.json; validate a run folder" in r.output
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    with open(copy / "final_int8.tflite", "ab") as fh:
        fh.write(b"\0")
    r = invoke(copy, "--runner", "host")
    assert r.exit_code == 1 and "changed since report.json was written" in r.output
    r = CliRunner().invoke(main, ["validate"])
    assert r.exit_code == 2 and "give the run folder" in r.output


def test_agreement_counts_lsb_and_classes():
    ref_raw = np.array([[10, -5], [3, 4], [0, 0]], np.int8)
    raw = np.array([[11, -5], [6, 4], [0, 0]], np.int8)  # sample 1: class 1 -> 0, 3 LSB
    ref, out = ref_raw.astype(np.float32), raw.astype(np.float32)
    a = val.reference_agreement("classification", out, raw, ref, ref_raw)
    assert a["agreement"] == pytest.approx(2 / 3)
    assert a["max_abs_diff"] == 3 and a["mean_abs_diff"] == pytest.approx(4 / 6)
    r = val.reference_agreement("regression", out, raw, ref, ref_raw)
    assert r["agreement"] == pytest.approx(2 / 3)  # sample 1 is 3 LSB off
    assert r["basis"].startswith("every output within 1 LSB")


def test_validate_run_is_one_call_that_writes_the_report_and_raises_with_the_result(
    run_dir, tmp_path
):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    result = val.validate_run(str(copy), runner="host", options=ValidateOptions(samples=40))
    assert result.ok and result.runner == "host" and result.completed == 40
    entry = _report(copy)["validation"]["host"]
    assert entry["rules"] == [r.to_dict() for r in result.rules]
    assert [(r["name"], r["key"]) for r in entry["rules"]] == [
        ("accuracy", "validate.max_accuracy_drop"),
        ("agreement", "validate.min_agreement"),
    ]
    assert entry["rules"][0]["rule"] == rules.accuracy_rule.__doc__.splitlines()[0]
    strict = ValidateOptions(samples=40, max_accuracy_drop=-1.0)  # no model can pass it
    with pytest.raises(QualityError, match="fails validation on host: accuracy") as failed:
        val.validate_run(str(copy), runner="host", options=strict)
    assert failed.value.result.rules[0].ok is False
    assert _report(copy)["validation"]["host"]["ok"] is False  # written before the raise
    with pytest.raises(BadInputError, match="needs the board's address"):
        val.validate_run(str(copy), runner="ssh")


def test_validation_rules_are_predicates_whose_docstring_is_the_rule():
    opts = ValidateOptions(max_accuracy_drop=0.03, max_mse_increase=0.5, min_agreement=0.95)
    agree = {
        "agreement": 0.96,
        "basis": "same class as the host reference",
        "unit": "LSB of the int8 output",
        "max_abs_diff": 2.0,
    }
    ev = rules.Evidence({"accuracy": 0.94}, {"accuracy": 0.97}, agree)
    accuracy, agreement = rules.evaluate("classification", ev, opts)
    assert accuracy.ok and accuracy.figure == pytest.approx(0.03)  # at the budget passes
    assert accuracy.key == "validate.max_accuracy_drop"
    assert agreement.ok and agreement.key == "validate.min_agreement"
    assert "same class as the host reference" in agreement.evidence
    for r, fn in ((accuracy, rules.accuracy_rule), (agreement, rules.agreement_rule)):
        assert r.rule == fn.__doc__.strip().splitlines()[0] and r.rule.endswith("budget.")
    ev = rules.Evidence({"mse": 0.3}, {"mse": 0.1}, {**agree, "agreement": 0.5})
    mse, agreement = rules.evaluate("regression", ev, opts)
    assert (mse.name, mse.figure, mse.ok) == ("mse", pytest.approx(2.0), False)
    assert mse.key == "validate.max_mse_increase" and not agreement.ok
    assert mse.evidence == "mse 0.3 on the runner, 0.1 for the float baseline"
    assert agreement.headroom == pytest.approx(-0.45)  # at least the budget: below is negative
    assert rules.failures((mse, agreement)) == (
        "mse 2, over the budget 0.5 "
        "(validate.max_mse_increase); agreement 0.5, "
        "under the budget 0.95 (validate.min_agreement)"
    )
    dropped = rules.accuracy_rule(
        rules.Evidence({"accuracy": 0.90}, {"accuracy": 0.97}, agree), opts
    )
    assert not dropped.ok and dropped.figure == pytest.approx(0.07)
    assert dropped.evidence == "accuracy 0.9000 on the runner, 0.9700 for the float baseline"
    assert format_rule(dropped) == (
        "rule accuracy: The accuracy lost against the float baseline does not fit the "
        "validation budget. 0.07, budget 0.03 (validate.max_accuracy_drop): "
        f"FAILED; {dropped.evidence}"
    )


def test_a_partial_run_is_marked_and_never_passes(run_dir):
    class Silent:
        name = "fake"

        def run(self, x):
            n = 7
            return RunOutput(
                np.zeros((n, 10), np.float32),
                np.zeros((n, 10), np.int8),
                np.ones(n),
                "test clock",
                "nowhere",
                True,
                f"device went silent after {n} of {len(x)} samples",
            )

    result = val.validate(val.read_run(str(run_dir)), Silent())
    assert result.partial and not result.ok and result.completed == 7
    assert result.latency_ms["n"] == 7
    assert "went silent after 7 of 360" in format_result(result)


def test_host_runner_reuses_the_reference_run_and_ctrl_c_there_is_not_swallowed(
    run_dir, monkeypatch
):
    """The host runner with the reference's settings is not run twice; Ctrl-C during
    the reference run (before any runner) ends validation, it does not go on."""
    from edgeprune.runners import host

    calls = []
    real = host.HostRunner.run

    def counting(self, x):
        calls.append(len(x))
        return real(self, x)

    monkeypatch.setattr(host.HostRunner, "run", counting)
    run = val.read_run(str(run_dir))
    model = (run_dir / "final_int8.tflite").read_bytes()
    result = val.validate(run, host.HostRunner(model), opts=ValidateOptions(samples=30))
    assert calls == [30] and result.completed == 30 and result.ok

    class Never:
        name = "never"

        def run(self, x):
            raise AssertionError("the runner ran after Ctrl-C")

    def interrupted(self, x):
        return RunOutput(
            np.zeros((0, 10), np.float32),
            np.zeros((0, 10), np.int8),
            np.zeros(0),
            "clock",
            "here",
            True,
            "interrupted after 0 of 30",
        )

    monkeypatch.setattr(host.HostRunner, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        val.validate(run, Never(), opts=ValidateOptions(samples=30))


def test_make_validate_target_calls_validate_on_the_build_folder():
    out = subprocess.run(
        ["make", "-n", "-C", ROOT, "validate-nano33ble", "RUNNER=tflm"],
        capture_output=True,
        text=True,
    )
    assert "edgeprune validate build/nano33ble --target nano33ble --runner tflm" in out.stdout


# ------------------------------------------------------------------ serial


def test_frames_round_trip_and_the_reader_resyncs_after_corruption():
    from edgeprune import protocol as p

    good = p.encode(p.SET_INPUT, p.OFFSET.pack(8) + b"\x01\x02")
    bad = bytearray(p.encode(p.INVOKE))
    bad[-1] ^= 1
    reader = p.FrameReader()
    reader.feed(b"noise" + bytes(bad) + good[:5])
    with pytest.raises(p.FrameError, match="CRC mismatch on a INVOKE frame"):
        reader.next()
    assert reader.next() is None  # half a frame: wait for the rest
    reader.feed(good[5:])
    frame = reader.next()
    assert (frame.kind, frame.payload) == (p.SET_INPUT, p.OFFSET.pack(8) + b"\x01\x02")
    assert good[:2] == b"\xe9\x50" and len(good) == 2 + 3 + 6 + 4
    too_long = p.SYNC + p.HEADER.pack(p.MAX_PAYLOAD + 1, p.HELLO)
    reader.feed(too_long)
    with pytest.raises(p.FrameError, match="over 1024"):
        reader.next()
    header = p.c_header()
    assert "#define EP_SYNC0 233" in header
    assert f"#define EP_IDENTITY_BYTES {p.IDENTITY_BODY.size}" in header


@pytest.fixture
def device(run_dir):
    """Start the emulated device on a pseudo-terminal; yields a function of its flags."""
    import sys

    procs = []

    def start(*flags):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgeprune.tflm.board",
                str(run_dir / "final_int8.tflite"),
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        return proc.stdout.readline().strip()

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_serial_runner_validates_against_the_emulated_device(run_dir, device, tmp_path):
    from edgeprune.estimates.measurements import load_measurements

    port = device("--clock-hz", "80000000")
    csv_path = tmp_path / "cal" / "measurements.csv"
    csv_path.parent.mkdir()
    r = invoke(
        run_dir,
        "--target",
        "nano33ble",
        "--device",
        port,
        "--samples",
        "60",
        "--measurements",
        csv_path,
    )
    assert r.exit_code == 0, r.output
    # the median invoke as a calibration row, at the clock the device reported
    (row,) = load_measurements(str(csv_path))
    assert row.clock_hz == 80_000_000 and row.cost_model == "cmsis-nn_cortex-m4f"
    assert row.model == os.path.relpath(run_dir / "final_int8.tflite", csv_path.parent)
    assert row.ms == pytest.approx(
        _report(run_dir)["validation"]["serial"]["latency_ms"]["p50"], rel=1e-5
    )
    assert "edgeprune validate --runner serial --target nano33ble" in row.source
    entry = _report(run_dir)["validation"]["serial"]
    assert entry["completed"] == 60 and not entry["partial"]
    assert f"serial device {port}" in entry["where"] and "clock 80 MHz" in entry["where"]
    assert entry["agreement"]["agreement"] >= 0.98 and entry["agreement"]["max_abs_diff"] <= 2
    assert entry["latency_ms"]["n"] == 60 and entry["latency_ms"]["p50"] > 0
    assert "cycle count" in entry["timing"]


def test_corrupted_frames_are_resent_and_the_run_completes(run_dir, device):
    port = device("--corrupt-every", "5")
    r = invoke(
        run_dir, "--runner", "serial", "--device", port, "--samples", "30", "--device-timeout", "2"
    )
    assert r.exit_code == 0, r.output
    entry = _report(run_dir)["validation"]["serial"]
    assert entry["completed"] == 30 and "resent after corrupted frames" in entry["where"]


def test_a_device_that_goes_silent_leaves_partial_results_and_exits_5(run_dir, device):
    port = device("--silent-after", "12")
    r = invoke(
        run_dir,
        "--runner",
        "serial",
        "--device",
        port,
        "--samples",
        "40",
        "--device-timeout",
        "0.3",
    )
    assert r.exit_code == 5, r.output
    assert "stopped answering at GET_OUTPUT of sample 12 of 40 (11 completed)" in r.output
    entry = _report(run_dir)["validation"]["serial"]
    assert entry["partial"] and entry["completed"] == 11 and entry["ok"] is False
    assert entry["latency_ms"]["n"] == 11


def test_a_device_running_another_model_is_refused(run_dir, device):
    port = device("--model-crc", "0x1234abcd")
    r = invoke(run_dir, "--runner", "serial", "--device", port, "--device-timeout", "2")
    assert r.exit_code == 5, r.output
    assert "runs another model (CRC-32 0x1234abcd" in r.output
    assert "flash the firmware/ folder of this run" in r.output


def test_serial_runner_needs_a_port_and_host_runners_refuse_one(run_dir):
    r = invoke(run_dir, "--runner", "serial")
    assert r.exit_code == 1 and "needs the device's port" in r.output
    r = invoke(run_dir, "--runner", "tflm", "--device", "/dev/ttyACM0")
    assert r.exit_code == 1 and "--device is for the serial and ssh runners" in r.output
    r = invoke(run_dir, "--runner", "serial", "--device", "/dev/nonexistent_tty")
    assert r.exit_code == 1 and "cannot open serial device /dev/nonexistent_tty" in r.output


# TFLite Micro's interpreter as far as the harness and the sketch use it (on the
# tensor types and model of tests/stubs/tflm, which the project templates build
# against), and tensors whose Invoke copies the first output bytes of the input,
# so the host can check every byte that travelled.
_STUB_INTERPRETER = """#pragma once
#include "stub_tflm_common.h"
#include "tensorflow/lite/schema/schema_generated.h"
namespace tflite {
class MicroInterpreter {
 public:
  template <typename Resolver>
  MicroInterpreter(const Model*, const Resolver&, uint8_t*, size_t arena_bytes)
      : arena_bytes_(arena_bytes) {}
  TfLiteStatus AllocateTensors() { return arena_bytes_ > 0 ? kTfLiteOk : kTfLiteError; }
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  TfLiteStatus Invoke();
 private:
  size_t arena_bytes_;
};
}  // namespace tflite
"""

_ECHO_TENSORS = """static uint8_t in_mem[IN_BYTES], out_mem[OUT_BYTES];
static TfLiteTensor in_t = {kTfLiteInt8, {(int8_t*)in_mem}, {1.0f, 0}, IN_BYTES};
static TfLiteTensor out_t = {kTfLiteInt8, {(int8_t*)out_mem}, {1.0f, 0}, OUT_BYTES};
TfLiteTensor* tflite::MicroInterpreter::input(size_t) { return &in_t; }
TfLiteTensor* tflite::MicroInterpreter::output(size_t) { return &out_t; }
TfLiteStatus tflite::MicroInterpreter::Invoke() {
  memcpy(out_mem, in_mem, OUT_BYTES);
  return kTfLiteOk;
}
"""

# A host "board" for the generated harness: the echo tensors, a cycle counter
# that steps by 1234, the UART on stdin and stdout.
_ECHO_BOARD = (
    """#include <string.h>
#include <unistd.h>
#include "model_final_int8.h"
#include "validation_harness.h"
"""
    + _ECHO_TENSORS
    + """static uint64_t ticks = 0;
static void Write(void*, const uint8_t* d, size_t n) {
  while (n) { ssize_t k = write(1, d, n); if (k <= 0) return; d += k; n -= (size_t)k; }
}
static uint64_t Cycles(void*) { return ticks += 1234; }
int main() {
  uint8_t arena[16];
  tflite::MicroInterpreter interpreter(nullptr, 0, arena, sizeof arena);
  edgeprune::ValidationHarness harness(&interpreter, g_final_int8_model_data,
      g_final_int8_model_data_len, 5555, 48000000, edgeprune::Transport{Write, Cycles, nullptr});
  uint8_t buf[256];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n <= 0) { usleep(1000); continue; }
    for (ssize_t i = 0; i < n; ++i) harness.Receive(buf[i]);
  }
}
"""
)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler on PATH")
def test_the_generated_cpp_harness_speaks_the_protocol_byte_for_byte(run_dir, tmp_path):
    """Compile the firmware's harness (against a stub interpreter) into a host
    program, put it behind a pseudo-terminal and validate against it with the
    serial runner: identity (its CRC-32 of the model array), chunked input,
    cycles and output all cross the C++ code as the firmware would run it."""
    from edgeprune.firmware import emit as firmware

    model = (run_dir / "final_int8.tflite").read_bytes()
    files = firmware.render(model, "final_int8.tflite", 5555)
    assert {"validation_harness.cc", "validation_harness.h", "edgeprune_protocol.h"} <= set(files)
    assert not [f for f in files if "/" in f]  # no sketch: the project templates build it
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    stub = tmp_path / "stub" / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    (stub / "micro_interpreter.h").write_text(_STUB_INTERPRETER)
    (tmp_path / "board.cc").write_text(_ECHO_BOARD)
    got = _build_and_echo(
        model,
        tmp_path,
        [
            *_includes(tmp_path / "stub", tmp_path, STUBS / "tflm"),
            str(tmp_path / "board.cc"),
            str(tmp_path / "validation_harness.cc"),
            str(tmp_path / "model_final_int8.cc"),
        ],
        25,
    )
    np.testing.assert_allclose(got.times_ms, 1234 / 48e6 * 1e3)
    assert "clock 48 MHz" in got.where and "arena 5,555 B" in got.where


def _includes(*dirs) -> list[str]:
    return [arg for d in dirs for arg in ("-I", str(d))]


def test_measurements_are_refused_where_they_would_mean_nothing(run_dir, tmp_path):
    before = (run_dir / "report.json").read_bytes()
    csv_path = tmp_path / "m.csv"
    r = invoke(run_dir, "--target", "nano33ble", "--runner", "tflm", "--measurements", csv_path)
    assert r.exit_code == 1 and "the tflm runner times this machine" in r.output
    r = invoke(run_dir, "--runner", "serial", "--device", "/dev/null", "--measurements", csv_path)
    assert r.exit_code == 1 and "--measurements needs --target" in r.output
    csv_path.write_text("not,a,measurements,file\n")
    r = invoke(
        run_dir, "--target", "nano33ble", "--device", "/dev/null", "--measurements", csv_path
    )
    assert r.exit_code == 1 and "missing column" in r.output
    assert (run_dir / "report.json").read_bytes() == before  # nothing ran, nothing written
    assert csv_path.read_text() == "not,a,measurements,file\n"


def _build_board(tmp_path, compile_args: list[str], in_bytes: int, out_bytes: int) -> str:
    build = subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-DIN_BYTES={in_bytes}",
            f"-DOUT_BYTES={out_bytes}",
            *compile_args,
            "-o",
            str(tmp_path / "board"),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    return str(tmp_path / "board")


def _build_and_echo(model: bytes, tmp_path, compile_args: list[str], n: int):
    """Compile an echo board, validate ``n`` digits through it and check that each
    output is the first bytes of the input the host sent."""
    from edgeprune.data import load_dataset
    from edgeprune.runners.serial import SerialRunner

    runner = SerialRunner(model, "/dev/null")
    in_bytes, out_bytes = int(np.prod(runner.inp.shape)), int(np.prod(runner.out.shape))
    board = _build_board(tmp_path, compile_args, in_bytes, out_bytes)
    x = load_dataset("digits").x_test[:n]
    got = _through_pty([board], model, x)
    assert not got.partial and got.completed == n, got.error
    sent = np.stack([np.frombuffer(runner._quantize(x[i : i + 1]), np.int8) for i in range(n)])
    np.testing.assert_array_equal(got.raw.reshape(n, -1), sent[:, :out_bytes])
    return got


def _through_pty(argv: list[str], model: bytes, x: np.ndarray, **popen):
    """Start a host-compiled board with its UART on a pseudo-terminal (``popen``:
    more of Popen's arguments) and validate ``x`` through it with the serial runner."""
    import tty

    from edgeprune.runners.serial import SerialRunner

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    board = subprocess.Popen(argv, stdin=master, stdout=master, **popen)
    try:
        return SerialRunner(model, os.ttyname(slave), timeout_s=2.0).run(x)
    finally:
        board.kill()
        board.wait()
        os.close(master)
        os.close(slave)


# The Arduino core as far as the sketch uses it: Serial is the process's stdin
# and stdout, micros() the monotonic clock.
_STUB_ARDUINO_H = """#pragma once
#include <stddef.h>
#include <stdint.h>
#define F_CPU 64000000UL
class HardwareSerial {
 public:
  void begin(unsigned long baud);
  explicit operator bool() const { return true; }
  int available();
  int read();
  size_t write(const uint8_t* data, size_t size);
  size_t println(const char* text);
};
extern HardwareSerial Serial;
unsigned long micros();
void delay(unsigned long ms);
void setup();
void loop();
"""


_ARDUINO_BOARD = """#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "Arduino.h"
HardwareSerial Serial;
void HardwareSerial::begin(unsigned long) {}
int HardwareSerial::available() {
  struct pollfd p = {0, POLLIN, 0};
  return poll(&p, 1, 1) > 0 ? 1 : 0;
}
int HardwareSerial::read() {
  uint8_t b;
  return ::read(0, &b, 1) == 1 ? b : -1;
}
size_t HardwareSerial::write(const uint8_t* d, size_t n) {
  size_t done = 0;
  while (done < n) { ssize_t k = ::write(1, d + done, n - done); if (k <= 0) break; done += k; }
  return done;
}
size_t HardwareSerial::println(const char* text) {
  return write((const uint8_t*)text, strlen(text));
}
unsigned long micros() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (unsigned long)(t.tv_sec * 1000000ull + t.tv_nsec / 1000);
}
void delay(unsigned long ms) { usleep(ms * 1000); }
int main() {
  setup();
  for (;;) loop();
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler on PATH")
def test_the_arduino_librarys_validate_example_passes_serial_validation(run_dir, tmp_path):
    """The validation sketch of the Arduino project template (the library's
    ``<name>_validate`` example with its ``src/``), compiled as it is (the .ino as
    C++) against stub Arduino headers, the resolver of ops_<name>.h and the
    TFLite Micro bridge of tests/tflm_bridge.py (the model array it embeds runs in
    the tflite-micro interpreter, in a worker process). Behind a pseudo-terminal,
    the serial runner validates 50 digits through it: the board reports the
    model's arena constant and F_CPU, and its outputs are the host runner's
    (LiteRT) for the same inputs."""
    from edgeprune.data import load_dataset
    from edgeprune.firmware import emit as firmware
    from edgeprune.runners.host import HostRunner
    from edgeprune.target import load_target

    model = (run_dir / "final_int8.tflite").read_bytes()
    facts = firmware.ModelFacts(target=load_target("nano33ble"))
    files = firmware.render(model, "final_int8.tflite", 16384, name="digits", facts=facts)
    library = tmp_path / "projects" / "arduino"
    for name, text in files.items():
        if name.startswith("projects/arduino/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
    stub = tmp_path / "stub"
    for header, text in {
        "Arduino.h": _STUB_ARDUINO_H,
        "Chirale_TensorFlowLite.h": "#pragma once\n",
        "tensorflow/lite/micro/micro_interpreter.h": PROJECT_INTERPRETER_H,
        "tensorflow/lite/schema/schema_generated.h": PROJECT_SCHEMA_H,
    }.items():
        (stub / header).parent.mkdir(parents=True, exist_ok=True)
        (stub / header).write_text(text)
    _stub_resolver(tmp_path / "resolver", files["ops_digits.h"])
    (tmp_path / "board.cc").write_text(_ARDUINO_BOARD)
    (tmp_path / "bridge.cc").write_text(BRIDGE_CC)
    includes = _includes(stub, library / "src", tmp_path / "resolver", STUBS / "tflm")
    board = _build_board(
        tmp_path,
        [
            *includes,
            *TflmWorker.defines("digits"),
            *sorted(str(p) for p in (library / "src").glob("*.cpp")),
            str(tmp_path / "board.cc"),
            str(tmp_path / "bridge.cc"),
            "-include",
            "Arduino.h",
            "-x",
            "c++",
            str(library / "examples" / "digits_validate" / "digits_validate.ino"),
        ],
        0,
        0,
    )
    x = load_dataset("digits").x_test[:50]
    worker = TflmWorker(tmp_path)
    try:
        got = _through_pty([board], model, x, pass_fds=worker.fds, env=worker.env)
    finally:
        worker.close()
    assert not got.partial and got.completed == 50, (got.error, worker.log()[-2000:])
    assert "arena 16,384 B" in got.where and "clock 64 MHz" in got.where
    assert got.clock_hz == 64_000_000 and (got.times_ms >= 0).all()
    np.testing.assert_array_equal(got.raw, HostRunner(model).run(x).raw)


def test_invokes_timed_at_zero_are_flagged_and_never_a_measurement_row(run_dir, tmp_path, caplog):
    """A board whose cycle counter does not run reports 0 cycles for every invoke:
    the result says so, and `--measurements` writes no 0 ms row for calibrate."""

    class StoppedClock:
        name = "fake"

        def run(self, x):
            n = len(x)
            raw = np.zeros((n, 10), np.int8)
            return RunOutput(raw.astype(np.float32), raw, np.zeros(n), "cycles", "b", False, "")

    run = val.read_run(str(run_dir))
    result = val.validate(run, StoppedClock(), opts=ValidateOptions(samples=12))
    assert result.latency_ms["zero"] == 12 and result.completed == 12
    assert any(n.startswith("12 of 12 invokes timed 0 ms") for n in result.notes)
    assert "note: 12 of 12 invokes timed 0 ms" in format_result(result)

    csv_path = tmp_path / "measurements.csv"
    from edgeprune.target import load_target

    target = load_target("nano33ble")
    with caplog.at_level("WARNING", logger="edgeprune"):
        val._add_measurement(run, result, target, str(csv_path), "")
    assert not csv_path.exists()
    assert "12 of 12 invokes timed 0 ms" in caplog.text
