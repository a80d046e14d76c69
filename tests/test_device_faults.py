"""Device faults of the serial and ssh runners: every one ends the run with the samples
completed so far, marked partial (none completed is a partial result too), and an
error naming the request, the sample and the fault; `edgeprune validate` then exits
5 with them in a valid report.json.

Most faults come from the scripted boards of :mod:`edgeprune.runners.faulty` (no
TFLite Micro, served from a thread or through a stand-in ``ssh`` on PATH); the
disconnect also from the emulated board, killed part way as an unplugged board.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune import protocol as p
from edgeprune.cli import main
from edgeprune.runners import faulty
from edgeprune.runners.serial import SerialRunner
from edgeprune.runners.ssh import SshRunner


@pytest.fixture(scope="module")
def x(digits):
    return digits.x_test[:6].reshape(-1, 8, 8, 1).astype(np.float32)


@pytest.fixture
def scripted(int8_model):
    """Serve the scripted board with a fault from a thread; yields a function of the fault."""
    stops = []

    def start(fault: str | None = None, clock_hz: int = 64_000_000) -> str:
        board = faulty.scripted_board(int8_model, clock_hz)
        port, stop = faulty.serve_in_thread(board, fault and faulty.SerialFault.parse(fault))
        stops.append(stop)
        return port

    yield start
    for stop in stops:
        stop()


def serial_run(model, port, x, timeout_s=0.5):
    return SerialRunner(model, port, timeout_s=timeout_s, retries=1).run(x)


# (fault, completed, words of the error)
SERIAL_CASES = [
    ("identity-short", 0, "before sample 1 of 6 (0 completed): IDENTITY payload of 26 bytes"),
    ("identity-max-payload-0", 0, "IDENTITY reports max payload 0 bytes, below the 5"),
    ("identity-max-payload-4", 0, "IDENTITY reports max payload 4 bytes"),
    ("identity-clock-0", 0, "IDENTITY reports clock Hz 0; no device has that"),
    ("identity-arena-0", 0, "IDENTITY reports arena bytes 0"),
    ("identity-input-bytes", 0, "the device's tensors hold 65 and 10 bytes, the model's 64"),
    ("ack-fail@2", 2, "at SET_INPUT of sample 3 of 6 (2 completed): ACK carries failure status 4"),
    ("ack-long@0", 0, "at SET_INPUT of sample 1 of 6 (0 completed): ACK payload of 2 bytes"),
    ("invoked-short@3", 3, "at INVOKE of sample 4 of 6 (3 completed): INVOKED payload of 5"),
    ("invoked-fail@1", 1, "at INVOKE of sample 2 of 6 (1 completed): INVOKED carries failure"),
    ("invoke-refused@4", 4, "the device refused INVOKE: invoke failed (arena overflow)"),
    ("error-empty@0", 0, "answered INVOKE with a broken frame: ERROR payload is empty"),
    ("wrong-type@2", 2, "stopped answering at INVOKE of sample 3 of 6 (2 completed): INVOKE: "),
    ("garbage@1", 1, "stopped answering at INVOKE of sample 2 of 6 (1 completed)"),
    ("silent@5", 5, "no answer within 0.5 s, after 2 attempts"),
    ("output-status-only@0", 0, "at GET_OUTPUT of sample 1 of 6 (0 completed): OUTPUT carries 0"),
    ("output-short@2", 2, "OUTPUT carries 9 bytes, 10 were asked for"),
    ("output-fail@3", 3, "at GET_OUTPUT of sample 4 of 6 (3 completed): OUTPUT carries failure"),
    ("disconnect@2", 2, "stopped answering at INVOKE of sample 3 of 6 (2 completed): INVOKE: the"),
]


@pytest.mark.parametrize("fault, completed, words", SERIAL_CASES, ids=[c[0] for c in SERIAL_CASES])
def test_every_serial_fault_ends_the_run_partial_with_what_completed(
    int8_model, scripted, x, fault, completed, words
):
    port = scripted(fault if "@" in fault else fault + "@0")
    _assert_partial(serial_run(int8_model, port, x), completed, words)


def _assert_partial(got, completed: int, words: str) -> None:
    assert got.partial and got.completed == completed and len(got.times_ms) == completed
    assert words in got.error, got.error
    assert np.isfinite(got.times_ms).all() and (got.times_ms >= 0).all()


def test_the_scripted_board_without_a_fault_completes_every_sample(int8_model, scripted, x):
    got = serial_run(int8_model, scripted(), x)
    assert not got.partial and got.completed == 6 and got.error == ""
    assert got.raw.shape == (6, 10) and not got.raw.any()  # the scripted board answers zeros


def test_a_disconnect_names_the_port_and_the_unplugged_board(int8_model, scripted, x):
    got = serial_run(int8_model, scripted("disconnect@1"), x)
    assert "the serial port" in got.error and "was unplugged or reset" in got.error


def test_the_protocol_refuses_impossible_answers():
    ident = p.Identity(p.VERSION, 1, 100, 2048, 64, 10, 64_000_000, p.MAX_PAYLOAD)
    assert p.Identity.unpack(ident.pack()) == ident
    with pytest.raises(p.MessageError, match="clock Hz 0"):
        p.Identity.unpack(ident.__class__(*[*ident.__dict__.values()][:6], 0, 1024).pack())
    assert p.decode_invoked(p.INVOKED_BODY.pack(p.STATUS_OK, 77)) == 77
    with pytest.raises(p.MessageError, match="failure status 5 \\(invoke failed\\)"):
        p.decode_invoked(p.INVOKED_BODY.pack(p.ERR_INVOKE, 77))
    assert p.decode_output(b"\0abc", 3) == b"abc"
    with pytest.raises(p.MessageError, match="OUTPUT carries 0 bytes, 3 were asked for"):
        p.decode_output(b"\0", 3)
    with pytest.raises(p.MessageError, match="OUTPUT payload is empty"):
        p.decode_output(b"", 3)
    assert p.decode_error(b"\x05bad\nline\xff") == (5, "bad line\ufffd")
    assert issubclass(p.FrameError, p.ProtocolError) and issubclass(p.MessageError, ValueError)


# ------------------------------------------------------------------ end to end


def _validate(run_dir, *args):
    return CliRunner().invoke(main, ["validate", str(run_dir), "--samples", "8", *args])


def _entry(run_dir, runner):
    text = (run_dir / "report.json").read_text()
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in report.json"))[
        "validation"
    ][runner]


@pytest.fixture
def run_copy(run_dir, tmp_path):
    import shutil

    shutil.copytree(run_dir, tmp_path / "run")
    return tmp_path / "run"


def test_a_board_refusing_invoke_exits_5_and_saves_its_samples(run_copy):
    model = (run_copy / "final_int8.tflite").read_bytes()
    port, stop = faulty.serve_in_thread(
        faulty.scripted_board(model), faulty.SerialFault.parse("invoke-refused@3")
    )
    try:
        r = _validate(run_copy, "--runner", "serial", "--device", port, "--device-timeout", "1")
    finally:
        stop()
    assert r.exit_code == 5, r.output
    assert "edgeprune: error: validation on serial is partial: the device failed at INVOKE of " in (
        r.output
    )
    assert "sample 4 of 8 (3 completed): the device refused INVOKE" in r.output
    entry = _entry(run_copy, "serial")
    assert entry["partial"] and entry["completed"] == 3 and entry["latency_ms"]["n"] == 3


def test_a_board_failing_at_hello_is_a_partial_run_with_no_sample(run_copy):
    model = (run_copy / "final_int8.tflite").read_bytes()
    port, stop = faulty.serve_in_thread(
        faulty.scripted_board(model), faulty.SerialFault.parse("identity-clock-0@0")
    )
    try:
        r = _validate(run_copy, "--runner", "serial", "--device", port, "--device-timeout", "1")
    finally:
        stop()
    assert r.exit_code == 5, r.output
    assert "HELLO, before sample 1 of 8 (0 completed): IDENTITY reports clock Hz 0" in r.output
    entry = _entry(run_copy, "serial")
    assert entry["partial"] and entry["completed"] == 0 and entry["metrics"] == {}
    assert entry["agreement"]["basis"] == "no sample completed" and entry["ok"] is False
    assert entry["agreement"]["agreement"] is None  # nothing compared: no figure, not 0
    assert "agreement: none (no sample completed)" in r.output


def test_the_emulated_board_unplugged_mid_run_exits_5_with_partial_results(run_copy):
    board = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeprune.tflm.board",
            str(run_copy / "final_int8.tflite"),
            "--arena",
            "30000",
            "--fault",
            "disconnect@4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = board.stdout.readline().strip()
        r = _validate(run_copy, "--runner", "serial", "--device", port, "--device-timeout", "2")
    finally:
        board.kill()
        board.wait()
    assert r.exit_code == 5, r.output
    assert "stopped answering at INVOKE of sample 5 of 8 (4 completed)" in r.output
    assert "internal error" not in r.output
    assert _entry(run_copy, "serial")["completed"] == 4


# ------------------------------------------------------------------ ssh stand-in


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """`ssh` and `scp` on PATH that run on this machine; yields a function of the fault."""
    import os

    folder = faulty.install_fake_ssh(str(tmp_path / "bin"))
    monkeypatch.setenv("PATH", folder + os.pathsep + os.environ["PATH"])

    def set_fault(fault: str | None) -> None:
        if fault:
            monkeypatch.setenv("EDGEPRUNE_SSH_FAULT", fault)
        else:
            monkeypatch.delenv("EDGEPRUNE_SSH_FAULT", raising=False)

    return set_fault


SSH_CASES = [
    ("nan-ms@2", 2, "reported nan ms for sample 3; an invoke takes a finite, positive time"),
    ("inf-ms@0", 0, "reported inf ms for sample 1"),
    ("negative-ms@3", 3, "reported -5.0 ms for sample 4"),
    ("zero-ms@1", 1, "reported 0.0 ms for sample 2"),
    ("string-ms@1", 1, "reported fast ms for sample 2"),
    ("short-payload@2", 2, "sent 9 bytes for sample 3, the output tensor has 10"),
    ("huge-payload@1", 1, "declared a 1,152,921,504,606,846,976-byte payload for sample 2"),
    ("wrong-index@2", 2, "for sample 3: out of step"),
    ("error@4", 4, "failed at sample 5 of 6 (4 completed): the board's runner: RuntimeError"),
    ("not-json@0", 0, "sent a frame that is not a JSON object"),
    ("header-list@1", 1, "sent a frame that is not a JSON object"),
    ("huge-header@2", 2, "sent a 1048577-byte header"),
    ("disconnect@3", 3, "stopped answering at sample 4 of 6 (3 completed): the ssh session ended"),
    ("silent@2", 2, "stopped answering at sample 3 of 6 (2 completed): no sample 3 within 1 s"),
]


@pytest.mark.parametrize("fault, completed, words", SSH_CASES, ids=[c[0] for c in SSH_CASES])
def test_every_ssh_fault_ends_the_run_partial_with_what_completed(
    int8_model, fake_ssh, x, fault, completed, words
):
    fake_ssh(fault)
    got = SshRunner(int8_model, "pi@board", timeout_s=1.0).run(x)
    _assert_partial(got, completed, words)
    assert (got.times_ms > 0).all()


@pytest.mark.parametrize(
    "fault, words",
    [
        ("hello-missing@0", "sent a hello with sha256 = 'None'"),
        ("hello-bad-tensor@0", "sent a hello with input = '7'"),
        ("exit-at-start@0", "can't open file 'board_script.py'"),
    ],
)
def test_a_board_that_cannot_start_raises_a_device_error(int8_model, fake_ssh, x, fault, words):
    from edgeprune.errors import DeviceError

    fake_ssh(fault)
    with pytest.raises(DeviceError) as err:
        SshRunner(int8_model, "pi@board", timeout_s=1.0).run(x)
    assert words in str(err.value)


def test_an_ssh_board_sending_nan_exits_5_with_a_valid_report(run_copy, fake_ssh):
    fake_ssh("nan-ms@3")
    r = _validate(run_copy, "--runner", "ssh", "--device", "pi@board", "--device-timeout", "2")
    assert r.exit_code == 5, r.output
    assert "the board failed at sample 4 of 8 (3 completed): the board's runner reported nan" in (
        r.output
    )
    entry = _entry(run_copy, "ssh")  # parse_constant fails on NaN
    assert entry["partial"] and entry["completed"] == 3
    assert all(math.isfinite(v) for v in entry["latency_ms"].values())


def test_an_ssh_board_that_cannot_start_is_recorded_with_no_sample(run_copy, fake_ssh):
    fake_ssh("exit-at-start@0")
    r = _validate(run_copy, "--runner", "ssh", "--device", "pi@board", "--device-timeout", "2")
    assert r.exit_code == 5, r.output
    assert "the device failed before sample 1 of 8 (0 completed)" in r.output
    entry = _entry(run_copy, "ssh")
    assert entry["partial"] and entry["completed"] == 0 and entry["latency_ms"] == {"n": 0}
    assert entry["agreement"]["unit"] == "LSB of the int8 output"


def test_the_report_writes_nan_as_null(tmp_path):
    from edgeprune import report

    assert report._finite({"a": [1.0, float("nan")], "b": (float("-inf"), 2)}) == {
        "a": [1.0, None],
        "b": [None, 2],
    }


def test_the_device_campaign_covers_every_fault_kind():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    from campaign_devices import _cases

    cases = _cases()
    for runner, kinds in (("serial", faulty.SERIAL), ("ssh", faulty.SSH)):
        covered = {fault.partition("@")[0] for r, _, fault, _ in cases if r == runner and fault}
        assert covered == set(kinds), set(kinds) - covered
    assert len(cases) >= 50 and sum(c[3] is None for c in cases) == 2  # two clean runs
