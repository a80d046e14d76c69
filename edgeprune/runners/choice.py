"""Which runner validates a model, and that runner opened with the model loaded.

:func:`choose_runner` picks one of :data:`RUNNERS` from the target and the
address (a serial port or an ssh board) and refuses a pair that does not fit;
:func:`open_runner` builds it, with a Linux target's kernels and threads for ssh.
"""

from __future__ import annotations

import os

from edgeprune.errors import BadInputError
from edgeprune.recipe_options import ValidateOptions
from edgeprune.target import Target

#: Where a model can run, as ``--runner`` spells them.
RUNNERS = ("host", "tflm", "serial", "ssh")


def choose_runner(target: Target | None, runner: str = "auto", address: str | None = None) -> str:
    """The runner to validate on: ``runner`` itself, or for ``"auto"`` the one the
    target and the address imply (with an address: serial on a TFLite Micro target,
    ssh on a Linux one; without: tflm on a TFLite Micro target, host otherwise).

    Raises:
        BadInputError: an unknown runner, or a runner that does not go with the
            address or the target (ssh to a microcontroller, a port for the host).
    """
    if runner != "auto" and runner not in RUNNERS:
        raise BadInputError(f"unknown runner {runner!r}; choose auto, {', '.join(RUNNERS)}")
    tflm = target is not None and target.runtime == "tflm"
    if runner == "auto" and address and target is None:
        raise BadInputError(
            "with --device, name the runner (--runner serial or --runner ssh) "
            "or the --target it belongs to"
        )
    if runner == "auto":
        runner = ("serial" if tflm else "ssh") if address else ("tflm" if tflm else "host")
    if runner == "serial" and not address:
        raise BadInputError(
            "the serial runner needs the device's port; pass it as --device, "
            "for example /dev/ttyACM0@115200"
        )
    if runner == "ssh" and not address:
        raise BadInputError(
            "the ssh runner needs the board's address; pass it as --device, "
            "for example pi@raspberrypi.local"
        )
    if runner in ("host", "tflm") and address:
        raise BadInputError(
            f"the {runner} runner runs on this machine; --device is for the "
            f"serial and ssh runners (drop it, or choose one of those)"
        )
    if target is not None and runner == "ssh" and tflm:
        raise BadInputError(
            f"{target.id} runs TFLite Micro on a microcontroller; validate it "
            f"with --runner serial (or tflm here), not ssh"
        )
    if target is not None and runner == "serial" and not tflm:
        raise BadInputError(
            f"{target.id} is a Linux machine running LiteRT; validate "
            f"it with --runner ssh (or host here), not serial"
        )
    return runner


def open_runner(
    runner: str,
    model_path: str,
    target: Target | None = None,
    address: str | None = None,
    opts: ValidateOptions | None = None,
):
    """The runner named ``runner`` (one of :data:`RUNNERS`) loaded with the model at
    ``model_path``; ssh runs a Linux target's kernels and threads.

    Raises:
        BadInputError: ``address`` is not a serial port or board address.
    """
    opts = opts or ValidateOptions()
    with open(model_path, "rb") as fh:
        model = fh.read()
    if runner == "serial":
        from edgeprune.runners.serial import SerialRunner

        return SerialRunner(model, address, opts.timeout_s)
    if runner == "ssh":
        from edgeprune.runners.ssh import SshRunner

        linux = target is not None and target.runtime == "litert"
        reference = linux and target.kernels == "reference"
        return SshRunner(
            model,
            address,
            opts.timeout_s,
            kernels="reference" if reference else "xnnpack",
            threads=target.latency.threads if linux else 1,
            python=opts.remote_python,
            ssh_config=opts.ssh_config,
            identity=opts.ssh_key,
            model_name=os.path.basename(model_path),
        )
    if runner == "tflm":
        from edgeprune.runners.tflm import TflmRunner
        from edgeprune.stages.check import decoded_memory

        block = decoded_memory(model, target)[1] if target is not None else 0
        return TflmRunner(model, alt_decompression_bytes=block)
    from edgeprune.runners.host import HostRunner

    return HostRunner(model)
