"""Run a model on a Linux board (a Raspberry Pi) over SSH.

The runner uses the system's ``ssh`` and ``scp`` with the user's own
configuration (``~/.ssh/config``, agent, known hosts), or the config file and
key the recipe names, always in batch mode: a board that would ask for a
password or a host-key confirmation is an error that says so, never a prompt.

1. ``mktemp -d`` on the board, then ``scp`` of the model and
   :mod:`edgeprune.runners.board_script` (standard library, numpy and
   whichever TFLite interpreter the board has) into it.
2. ``ssh BOARD python3 board_script.py MODEL``: the board answers ``hello``
   with its interpreter, its board name and the SHA-256 of the model as it
   arrived, which must be this run's.
3. Inputs (quantized here, as the tensor holds them) go in batches; every
   sample comes back as its own frame with the output tensor as the
   interpreter left it and the board's time of that invoke.
4. The board's folder is removed, also after a failure or Ctrl-C.

Every exchange waits at most ``timeout_s``. A board that stops answering, or a
session that drops, ends the run with the samples done so far, marked partial,
and the error names the sample it stopped at.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field

import numpy as np

from edgeprune.errors import BadInputError, DeviceError
from edgeprune.runners.host import dequantize, quantize, tensor_detail
from edgeprune.runners.ssh_link import BoardGone, BoardSilent, check_hello, check_result
from edgeprune.runners.ssh_link import Link as _Link
from edgeprune.runners.ssh_link import hint as _hint
from edgeprune.runners.ssh_link import last_line as _last_line

__all__ = ["BoardGone", "BoardSilent", "SshRunner", "parse_address"]

SCRIPT_NAME = "board_script.py"


@dataclass(frozen=True)
class Address:
    destination: str  # [user@]host, as ssh takes it
    port: int | None

    def scp_target(self, path: str) -> str:
        user, at, host = self.destination.rpartition("@")
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        return f"{user}{at}{host}:{path}"


def parse_address(address: str) -> Address:
    """``pi@raspberrypi.local``, ``pi@10.0.0.7:2222``, ``[fe80::1]:22`` or an alias
    from the ssh config (``mypi``)."""
    text = address.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://") :].rstrip("/")
    fix = "write it like pi@raspberrypi.local, pi@10.0.0.7:2222 or an ssh config alias"
    if not text or any(c.isspace() for c in text) or text.startswith("-"):
        raise BadInputError(f"ssh device '{address}' is not a board address; {fix}")
    port = None
    user, at, host = text.rpartition("@")
    if host.startswith("["):
        inner, close, rest = host[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise BadInputError(f"ssh device '{address}': unbalanced [ ]; {fix}")
        host, port_text = inner, rest[1:]
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    else:
        port_text = ""  # no port, or a bare IPv6 address
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadInputError(
                f"ssh device '{address}': port '{port_text}' is not a port number; {fix}"
            )
        port = int(port_text)
    if not host or (at and not user):
        raise BadInputError(f"ssh device '{address}' names no host; {fix}")
    return Address(f"{user}{at}{host}", port)


@dataclass
class SshRunner:
    model: bytes
    address: str
    timeout_s: float = 10.0
    kernels: str = "xnnpack"  # or "reference": the built-in kernels without delegates
    threads: int = 1
    python: str = "python3"
    ssh_config: str | None = None  # ssh -F
    identity: str | None = None  # ssh -i
    batch_size: int = 32
    model_name: str = "model.tflite"
    hello: dict = field(default_factory=dict, init=False)

    name = "ssh"

    def __post_init__(self) -> None:
        from edgeprune.tflite import inspect_model

        self.board = parse_address(self.address)
        if self.kernels not in ("xnnpack", "reference"):
            raise BadInputError(
                f"the ssh runner runs xnnpack or reference kernels, not {self.kernels!r}"
            )
        self.ssh_config = os.path.expanduser(self.ssh_config) if self.ssh_config else None
        self.identity = os.path.expanduser(self.identity) if self.identity else None
        for what, path in (("ssh config", self.ssh_config), ("ssh key", self.identity)):
            if path is not None and not os.path.isfile(path):
                raise BadInputError(
                    f"{what} {path} does not exist; fix the path in "
                    f"[validate] or leave it out to use ~/.ssh"
                )
        info = inspect_model(self.model)
        self.inp, self.out = info.inputs[0], info.outputs[0]
        import hashlib

        self.sha256 = hashlib.sha256(self.model).hexdigest()

    # ------------------------------------------------------------ ssh and scp

    def _options(self, port_flag: str) -> list[str]:
        opts = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, round(self.timeout_s))}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        if self.ssh_config:
            opts += ["-F", self.ssh_config]
        if self.identity:
            opts += ["-i", self.identity]
        if self.board.port:
            opts += [port_flag, str(self.board.port)]
        return opts

    def ssh_command(self, remote: str) -> list[str]:
        return ["ssh", *self._options("-p"), "--", self.board.destination, remote]

    def _call(self, argv: list[str], what: str, timeout: float) -> str:
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise BadInputError(
                f"the ssh runner needs the OpenSSH client ({argv[0]} is not on "
                f"PATH); install openssh-client"
            ) from None
        except subprocess.TimeoutExpired:
            raise BoardSilent(f"{what} on {self.address}: no answer within {timeout:g} s") from None
        if proc.returncode != 0:
            said = _last_line(proc.stderr) or f"exit status {proc.returncode}"
            hint = _hint(said)
            raise DeviceError(f"{what} on {self.address} failed: {said}{hint}")
        return proc.stdout

    def _mkdir(self) -> str:
        """A fresh folder in the board's temporary directory."""
        folder = self._call(
            self.ssh_command('mktemp -d "${TMPDIR:-/tmp}/edgeprune.XXXXXX"'),
            "ssh (mktemp)",
            self.timeout_s + 5,
        ).strip()
        if not folder.startswith("/"):
            raise DeviceError(
                f"mktemp on {self.address} answered {folder[:80]!r}, not a "
                f"folder; the board needs a POSIX shell and mktemp"
            )
        return folder

    def _copy(self, local: str, folder: str) -> None:
        """The script and the model into the board's ``folder`` (1 s per MB allowed)."""
        self._call(
            [
                "scp",
                "-q",
                *self._options("-P"),
                os.path.join(local, SCRIPT_NAME),
                os.path.join(local, self.model_name),
                self.board.scp_target(folder + "/"),
            ],
            "scp",
            self.timeout_s + 5 + len(self.model) / 1e6,
        )

    def _remove(self, folder: str) -> None:
        try:
            subprocess.run(
                self.ssh_command(f"rm -rf {shlex.quote(folder)}"),
                capture_output=True,
                timeout=self.timeout_s + 5,
                stdin=subprocess.DEVNULL,
            )
        except (subprocess.TimeoutExpired, OSError, KeyboardInterrupt):
            pass  # best effort: the folder is in the board's temporary directory

    # ------------------------------------------------------------ the run

    def run(self, x: np.ndarray):
        import tempfile
        from importlib.resources import files

        with tempfile.TemporaryDirectory(prefix="edgeprune-ssh-") as local:
            script = (files("edgeprune") / "runners" / SCRIPT_NAME).read_bytes()
            with open(os.path.join(local, SCRIPT_NAME), "wb") as fh:
                fh.write(script)
            with open(os.path.join(local, self.model_name), "wb") as fh:
                fh.write(self.model)
            folder = self._mkdir()
            try:
                self._copy(local, folder)
                return self._session(folder, x)
            finally:
                self._remove(folder)

    def _session(self, folder: str, x: np.ndarray):
        from edgeprune.runners import RunOutput, sample_progress

        remote = (
            f"cd {shlex.quote(folder)} && exec {shlex.quote(self.python)} {SCRIPT_NAME} "
            f"{shlex.quote(self.model_name)} --kernels {self.kernels} "
            f"--threads {int(self.threads)}"
        )
        proc = subprocess.Popen(
            self.ssh_command(remote),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # Ctrl-C reaches us, not ssh
        link = _Link(proc)
        out_dtype = np.dtype(self.out.dtype)
        out_shape = tuple(self.out.shape[1:])
        out_bytes = int(np.prod(out_shape)) * out_dtype.itemsize
        raws, times, error = [], [], ""
        i = 0
        try:
            self.hello = self._hello(link)  # a board that cannot start raises: nothing done
            try:
                with sample_progress("the ssh board", len(x)) as bar:
                    while i < len(x):
                        chunk = x[i : i + self.batch_size]
                        data = quantize(chunk, tensor_detail(self.inp)).tobytes()
                        link.send({"op": "batch", "n": len(chunk)}, data, self.timeout_s)
                        for _ in range(len(chunk)):
                            header, payload = link.receive(
                                self.timeout_s, f"sample {i + 1}", out_bytes
                            )
                            ms = check_result(header, payload, i, out_bytes)
                            raws.append(np.frombuffer(payload, out_dtype).reshape(1, *out_shape))
                            times.append(ms)
                            i += 1
                            bar.advance()
                link.send({"op": "bye"}, b"", self.timeout_s)
            except DeviceError as exc:
                what = (
                    "stopped answering" if isinstance(exc, (BoardSilent, BoardGone)) else "failed"
                )
                error = (
                    f"the board {what} at sample {i + 1} of {len(x)} ({len(raws)} completed): {exc}"
                )
            except KeyboardInterrupt:
                error = f"interrupted at sample {i + 1} of {len(x)} ({len(raws)} completed)"
        finally:
            link.close()
        raw = np.concatenate(raws) if raws else np.zeros((0, *out_shape), out_dtype)
        h = self.hello
        where = (
            f"ssh {self.board.destination}: {h['board']} ({h['machine']}, {h['cores']} "
            f"cores); {h['runtime']}, Python {h['python']}, numpy {h['numpy']}"
        )
        timing = (
            f"the board's wall clock (time.perf_counter) around invoke(), {h['kernels']}"
            f", {h['threads']} thread{'s' if h['threads'] != 1 else ''}, one sample per "
            f"invoke; one warm-up invoke ({h['warmup_ms']:.3g} ms) not counted"
        )
        return RunOutput(
            dequantize(raw, tensor_detail(self.out)),
            raw,
            np.asarray(times),
            timing,
            where,
            bool(error),
            error,
        )

    def _hello(self, link: _Link) -> dict:
        header, _ = link.receive(self.timeout_s + 5, "start of the board's runner", 0)
        if header.get("op") == "error":
            raise DeviceError(f"the board's runner cannot start: {header.get('message')}")
        header = check_hello(header)
        if header["sha256"] != self.sha256:
            raise DeviceError(
                f"the model on {self.address} is not this run's (SHA-256 "
                f"{header['sha256'][:16]}..., expected {self.sha256[:16]}...): "
                f"the copy was damaged; run again"
            )
        for what, mine, theirs in (
            ("input", self.inp, header["input"]),
            ("output", self.out, header["output"]),
        ):
            if theirs["dtype"] != np.dtype(mine.dtype).name or list(theirs["shape"][1:]) != list(
                mine.shape[1:]
            ):
                raise DeviceError(
                    f"{header['runtime']} on the board reads the {what} as "
                    f"{theirs['dtype']} {theirs['shape']}, edgeprune as "
                    f"{np.dtype(mine.dtype).name} {list(mine.shape)}"
                )
        return header
