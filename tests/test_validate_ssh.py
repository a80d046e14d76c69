"""The ssh runner against a real OpenSSH server on 127.0.0.1 with a throwaway key.

The "board" is this machine: sshd runs the same board_script.py a Raspberry Pi
gets, with the project's Python (it has numpy and ai-edge-litert). Without an
sshd on the machine these tests skip, unless EDGEPRUNE_REQUIRE_SSHD=1 (what
.ci/run sets after installing openssh-server), where they fail instead. They
are marked slow: ``make test`` leaves them out, ``make test-all`` runs them.
"""

from __future__ import annotations

import ast
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.errors import BadInputError, DeviceError
from edgeprune.runners import board_script
from edgeprune.runners.ssh import SshRunner, parse_address

SCRIPT = board_script.__file__


def _sshd_binary() -> str | None:
    return shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Board:
    """An sshd on 127.0.0.1 and an ssh config that reaches it as host ``board``."""

    def __init__(self, root, sshd: str) -> None:
        self.root = root
        self.port = _free_port()
        self.user = getpass.getuser()
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        for name in ("host_key", "client_key"):
            subprocess.run([*keygen, "-f", str(root / name)], check=True)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        os.chmod(root / "authorized_keys", 0o600)
        host_pub = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {root / 'host_key'}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    f"PidFile {root / 'sshd.pid'}",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        self.config = root / "ssh_config"
        self.config.write_text(
            "\n".join(
                [
                    "Host board",
                    "  HostName 127.0.0.1",
                    f"  Port {self.port}",
                    f"  User {self.user}",
                    f"  IdentityFile {root / 'client_key'}",
                    "  IdentitiesOnly yes",
                    f"  UserKnownHostsFile {root / 'known_hosts'}",
                    "  StrictHostKeyChecking yes",
                    "  LogLevel ERROR",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(root / "sshd_config")],
            stderr=open(root / "sshd.log", "wb"),
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "sshd did not start: " + (root / "sshd.log").read_text(errors="replace")
                    ) from None
                time.sleep(0.05)

    def runner(self, model: bytes, **kw) -> SshRunner:
        kw.setdefault("ssh_config", str(self.config))
        kw.setdefault("python", sys.executable)
        kw.setdefault("kernels", "reference")
        return SshRunner(model, kw.pop("address", "board"), **kw)

    def leftovers(self) -> list[str]:
        """edgeprune folders the runner left in the board's temporary directory."""
        import glob
        import tempfile

        return glob.glob(
            os.path.join(os.environ.get("TMPDIR", tempfile.gettempdir()), "edgeprune.*")
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    sshd = _sshd_binary()
    if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        if os.environ.get("EDGEPRUNE_REQUIRE_SSHD"):
            pytest.fail("EDGEPRUNE_REQUIRE_SSHD is set but sshd, ssh or ssh-keygen is missing")
        pytest.skip("no OpenSSH server here (apt-get install openssh-server)")
    b = Board(tmp_path_factory.mktemp("board"), sshd)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def model(run_dir) -> bytes:
    return (run_dir / "final_int8.tflite").read_bytes()


@pytest.fixture(scope="module")
def x():
    from edgeprune.data import load_dataset

    return load_dataset("digits").x_test[:70].astype(np.float32)


def _relaying_python(path, before: str = "", after: str = ""):
    """A stand-in for the board's Python that runs the real one on the board script
    and relays its frames to ssh, with ``before`` and ``after`` (indented code, with
    ``frames`` relayed so far) around each: a board that stalls, dies or is slow."""
    path.write_text(f"""#!{sys.executable}
import os, struct, subprocess, sys, time
child = subprocess.Popen([{sys.executable!r}, *sys.argv[1:]], stdout=subprocess.PIPE)
out = os.fdopen(1, "wb")
frames = 0
def read(n):
    data = b""
    while len(data) < n:
        chunk = child.stdout.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data
while True:
    a = read(4); h = read(struct.unpack(">I", a)[0]); b = read(8)
    p = read(struct.unpack(">Q", b)[0]){before}
    out.write(a + h + b + p); out.flush()
    frames += 1{after}
""")
    path.chmod(0o755)
    return path


@pytest.mark.slow
def test_ssh_runner_matches_the_host_runner_bit_for_bit(board, model, x):
    """Same kernels (reference), same bytes out: the board script, the framing, the
    quantization on this side and the copy to the board all lose nothing."""
    from edgeprune.runners.host import HostRunner

    before = set(board.leftovers())
    got = board.runner(model, batch_size=16).run(x)  # 70 samples: 4 full batches and 6
    ref = HostRunner(model).run(x)
    assert not got.partial and got.completed == 70, got.error
    np.testing.assert_array_equal(got.raw, ref.raw)
    np.testing.assert_array_equal(got.outputs, ref.outputs)
    assert len(got.times_ms) == 70 and (got.times_ms > 0).all()
    assert got.where.startswith("ssh board: ") and "ai_edge_litert" in got.where
    assert "built-in kernels without delegates" in got.timing
    assert "warm-up" in got.timing
    assert set(board.leftovers()) == before  # the board's folder is gone


@pytest.mark.slow
def test_validate_over_ssh_from_the_cli_writes_the_report(board, run_dir, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f'[validate]\nssh_config = "{board.config}"\nremote_python = "{sys.executable}"\n'
    )
    from edgeprune.estimates.measurements import load_measurements

    csv_path = tmp_path / "measurements.csv"
    for samples in ("40", "20"):  # the second run adds a row to the file
        r = CliRunner().invoke(
            main,
            [
                "validate",
                str(run_dir),
                "--target",
                "rpi4",
                "--device",
                "board",
                "--recipe",
                str(recipe),
                "--samples",
                samples,
                "--measurements",
                str(csv_path),
            ],
        )
        assert r.exit_code == 0, r.output
        assert "on ssh: PASS" in r.output and "measurements: added" in r.output
    entry = json.loads((run_dir / "report.json").read_text())["validation"]["ssh"]
    assert entry["completed"] == 20 and entry["ok"]
    # rpi4's profile: XNNPACK with 4 threads; the int8 model's classes still agree
    assert "XNNPACK" in entry["timing"] and "4 threads" in entry["timing"]
    assert entry["agreement"]["agreement"] >= 0.95 and entry["latency_ms"]["n"] == 20
    rows = load_measurements(str(csv_path))
    assert len(rows) == 2 and {r.cost_model for r in rows} == {"xnnpack_cortex-a72"}
    assert rows[1].clock_hz == 1_500_000_000 and "not read off the board" in rows[1].source
    assert rows[1].ms == pytest.approx(entry["latency_ms"]["p50"], rel=1e-5)
    assert rows[1].board == entry["where"]


@pytest.mark.slow
def test_address_with_user_and_port_and_a_key(board, model, x, tmp_path):
    """No alias: user@127.0.0.1:PORT with the key passed as ssh -i; the config
    file only holds the known host."""
    config = tmp_path / "known_only"
    config.write_text(
        f"Host *\n  UserKnownHostsFile {board.root / 'known_hosts'}\n"
        f"  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n"
    )
    runner = board.runner(
        model,
        address=f"{board.user}@127.0.0.1:{board.port}",
        ssh_config=str(config),
        identity=str(board.root / "client_key"),
    )
    got = runner.run(x[:5])
    assert got.completed == 5 and not got.partial


@pytest.mark.slow
def test_a_board_that_refuses_the_key_is_a_clear_error(board, model, x, tmp_path):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    runner = board.runner(
        model,
        identity=str(tmp_path / "other"),
        ssh_config=None,
        address=f"{board.user}@127.0.0.1:{board.port}",
    )
    with pytest.raises(DeviceError) as err:
        runner.run(x[:3])
    text = str(err.value)
    # either the unknown host key (no config) or the refused key: both named, with the fix
    assert ("host key" in text and "accept the board's host key" in text) or (
        "Permission denied" in text and "ssh-copy-id" in text
    ), text


@pytest.mark.slow
def test_a_board_without_the_python_is_a_clear_error(board, model, x):
    with pytest.raises(DeviceError) as err:
        board.runner(model, python="/nonexistent/python3").run(x[:3])
    assert "waiting for the start of the board's runner" in str(err.value)
    assert "exit status 127" in str(err.value)


@pytest.mark.slow
def test_a_board_that_dies_mid_run_leaves_partial_results(board, model, x, tmp_path):
    """The board's python is a wrapper that kills the runner after 25 results."""
    wrapper = _relaying_python(
        tmp_path / "dying_python",
        after="""
    if frames == 26:  # hello and 25 results
        child.kill()
        os._exit(9)""",
    )
    got = board.runner(model, python=str(wrapper), batch_size=10).run(x[:60])
    assert got.partial and got.completed == 25
    assert "stopped answering at sample 26 of 60 (25 completed)" in got.error
    assert "exit status 9" in got.error


@pytest.mark.slow
def test_a_silent_board_times_out_with_partial_results(board, model, x, tmp_path):
    wrapper = _relaying_python(
        tmp_path / "stalling_python",
        before="""
    if frames == 13:  # hello and 12 results, then silence
        time.sleep(60)""",
    )
    began = time.monotonic()
    got = board.runner(model, python=str(wrapper), timeout_s=1.5).run(x[:30])
    assert time.monotonic() - began < 30
    assert got.partial and got.completed == 12
    assert "at sample 13 of 30 (12 completed): no sample 13 within 1.5 s" in got.error


def test_the_ssh_runner_refuses_bad_addresses_and_paths(model):
    for bad in ("", "-oProxyCommand=x", "pi@", "pi@host:port", "host:99999", "a b"):
        with pytest.raises(BadInputError):
            parse_address(bad)
    assert parse_address("pi@10.0.0.7:2222").destination == "pi@10.0.0.7"
    assert parse_address("pi@10.0.0.7:2222").port == 2222
    assert parse_address("[fe80::1]:22").scp_target("/tmp/x") == "[fe80::1]:/tmp/x"
    assert parse_address("mypi").port is None
    with pytest.raises(BadInputError, match="ssh key /nonexistent does not exist"):
        SshRunner(model, "pi@host", identity="/nonexistent")


def test_validate_cli_picks_ssh_for_linux_targets_and_refuses_mixups(run_dir):
    r = CliRunner().invoke(main, ["validate", str(run_dir), "--runner", "ssh"])
    assert r.exit_code == 1 and "needs the board's address" in r.output
    r = CliRunner().invoke(
        main, ["validate", str(run_dir), "--target", "rpi4", "--device", "-oProxyCommand=x"]
    )
    assert r.exit_code == 1 and "not a board address" in r.output
    r = CliRunner().invoke(
        main,
        [
            "validate",
            str(run_dir),
            "--target",
            "nano33ble",
            "--runner",
            "ssh",
            "--device",
            "pi@host",
        ],
    )
    assert r.exit_code == 1 and "validate it with --runner serial" in r.output
    r = CliRunner().invoke(
        main,
        [
            "validate",
            str(run_dir),
            "--target",
            "rpi4",
            "--runner",
            "serial",
            "--device",
            "/dev/ttyACM0",
        ],
    )
    assert r.exit_code == 1 and "validate it with --runner ssh" in r.output
    r = CliRunner().invoke(main, ["validate", str(run_dir), "--device", "pi@host"])
    assert r.exit_code == 1 and "name the runner" in r.output


def test_board_script_runs_on_python_3_7_grammar_and_imports_nothing_of_edgeprune():
    source = open(SCRIPT).read()
    tree = ast.parse(source, feature_version=(3, 7))
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert imported <= set(sys.stdlib_module_names) | {"numpy"}, imported


_OLD_RUNTIME = """from ai_edge_litert.interpreter import Interpreter as _New, OpResolverType  # noqa


class Interpreter(_New):  # a runtime from before the op resolver choice
    def __init__(self, model_content=None, num_threads=None):
        super().__init__(model_content=model_content, num_threads=num_threads)
"""


@pytest.mark.parametrize("old", [False, True], ids=["current", "before-op-resolver-choice"])
def test_board_script_prefers_tflite_runtime(model, tmp_path, x, old):
    """A board with tflite_runtime uses it (here a stand-in package that wraps
    ai_edge_litert; or one whose Interpreter takes no op resolver, as before TF
    2.5); the script is driven over pipes as ssh would drive it."""
    from edgeprune.runners.ssh import _Link

    fake = tmp_path / "site" / "tflite_runtime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "2.14.0-standin"\n')
    (fake / "interpreter.py").write_text(
        _OLD_RUNTIME
        if old
        else "from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa\n"
    )
    (tmp_path / "m.tflite").write_bytes(model)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, str(tmp_path / "m.tflite"), "--kernels", "reference"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    link = _Link(proc)
    hello, _ = link.receive(60, "hello")
    assert hello["runtime"] == "tflite_runtime 2.14.0-standin"
    assert hello["input"]["dtype"] == "int8" and hello["warmup_ms"] > 0
    assert hello["kernels"] == (
        "the runtime's default kernels (it offers no choice)"
        if old
        else "built-in kernels without delegates"
    )
    link.send({"op": "batch", "n": 1}, b"\0" * 7, 5)  # the wrong number of bytes
    header, _ = link.receive(30, "error")
    assert header["op"] == "error" and "needs 64 bytes of int8 input, got 7" in header["message"]
    link.close()
    assert proc.wait(timeout=10) == 2


@pytest.mark.slow
def test_ctrl_c_mid_run_leaves_a_valid_partial_report_and_no_remote_folder(
    board, run_dir, tmp_path
):
    """SIGINT to `edgeprune validate` while a slowed board answers: exit 130, the
    samples done are in report.json marked partial, the board's folder is gone."""
    import shutil as sh
    import signal

    run = tmp_path / "run"
    sh.copytree(run_dir, run)
    marker = tmp_path / "ten_results"
    wrapper = _relaying_python(
        tmp_path / "slow_python",
        before="""
    time.sleep(0.05)""",
        after=f"""
    if frames == 11:
        open({str(marker)!r}, "w").close()""",
    )
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[validate]\nssh_config = "{board.config}"\nremote_python = "{wrapper}"\n')
    before = set(board.leftovers())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeprune",
            "validate",
            str(run),
            "--runner",
            "ssh",
            "--device",
            "board",
            "--recipe",
            str(recipe),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted at sample" in output
    entry = json.loads((run / "report.json").read_text())["validation"]["ssh"]
    assert entry["partial"] and not entry["ok"] and 10 <= entry["completed"] < 360
    assert entry["latency_ms"]["n"] == entry["completed"]
    assert set(board.leftovers()) == before
