"""What this machine is, read from Linux's ``/proc`` and ``/sys`` when a profile
asks for it (the ``host`` profile's ``read_from_this_machine``), so that its
figures are this machine's, not those of the machine a profile was written on.

Importing this module is cheap (no TensorFlow).
"""

from __future__ import annotations

import os

#: The profile keys that can be read from this machine instead of written down.
READABLE = ("cpu", "cores", "clock_hz", "ram_bytes")


class MachineReadError(OSError):
    """A figure cannot be read from this machine; the message says where it looked."""


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _cpuinfo(root: str) -> list[tuple[str, str]]:
    text = _read(root, "/proc/cpuinfo") or ""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return [(k.strip(), v.strip()) for k, v in pairs]


def cpu(root: str = "/") -> str:
    """The CPU's model name (x86 ``model name``, Arm ``Model`` or ``Hardware``), or
    ``"unknown CPU"`` when /proc/cpuinfo names none."""
    info = _cpuinfo(root)
    for key in ("model name", "Model", "Hardware", "cpu model"):
        found = next((v for k, v in info if k == key and v), None)
        if found:
            return found
    return "unknown CPU"


def cores(root: str = "/") -> int:
    """Logical CPUs: the ``processor`` entries of /proc/cpuinfo, else ``os.cpu_count()``.

    Raises:
        MachineReadError: neither gives a count.
    """
    count = sum(1 for k, _ in _cpuinfo(root) if k == "processor")
    count = count or (os.cpu_count() if root == "/" else 0) or 0
    if not count:
        raise MachineReadError("/proc/cpuinfo lists no processor")
    return count


def clock_hz(root: str = "/") -> int:
    """The rated clock: cpu0's ``cpufreq/cpuinfo_max_freq`` (kHz) where the kernel has
    cpufreq, else the first ``cpu MHz`` of /proc/cpuinfo (virtual machines have no
    cpufreq; there it is the clock the hypervisor reports).

    Raises:
        MachineReadError: neither is there.
    """
    khz = (_read(root, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") or "").strip()
    if khz.isdigit() and int(khz) > 0:
        return int(khz) * 1000
    for key, value in _cpuinfo(root):
        if key == "cpu MHz":
            try:
                return round(float(value) * 1e6)
            except ValueError:
                break
    raise MachineReadError(
        "no /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq and no 'cpu MHz' "
        "line in /proc/cpuinfo"
    )


def ram_bytes(root: str = "/") -> int:
    """``MemTotal`` of /proc/meminfo, in bytes; without /proc, the physical pages
    ``sysconf`` counts.

    Raises:
        MachineReadError: neither gives a figure.
    """
    for line in (_read(root, "/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if key == "MemTotal" and parts and parts[0].isdigit():
            return int(parts[0]) * 1024
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if root == "/" else 0
    except (ValueError, OSError):
        pages = 0
    if pages <= 0:
        raise MachineReadError("no MemTotal line in /proc/meminfo")
    return pages


def read(keys, root: str = "/") -> dict:
    """``{key: value}`` for each of ``keys`` (each in :data:`READABLE`).

    Raises:
        MachineReadError: naming the key and where it looked.
    """
    readers = {"cpu": cpu, "cores": cores, "clock_hz": clock_hz, "ram_bytes": ram_bytes}
    out = {}
    for key in keys:
        try:
            out[key] = readers[key](root)
        except MachineReadError as exc:
            raise MachineReadError(f"cannot read {key} from this machine: {exc}") from None
    return out
