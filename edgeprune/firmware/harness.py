"""The serial validation harness that ``edgeprune validate --runner serial`` talks to.

The C++ sources are files under ``firmware_src/``, not strings in Python:
``validation_harness.{h,cc}`` (the protocol's board side, on any
``tflite::MicroInterpreter``) and ``edgeprune_protocol.h`` (the protocol's
constants, generated from :mod:`edgeprune.protocol`). A board runs them through
its project template's validation build option (:mod:`edgeprune.firmware.projects`:
the Arduino library's ``<name>_validate`` example, PlatformIO's ``<board>_validate``
env, ESP-IDF's Kconfig option, pico-sdk's ``EDGEPRUNE_VALIDATION``, Zephyr's
``validation.conf``), which gives it the UART and a cycle counter.
"""

from __future__ import annotations

from importlib.resources import files as package_files

from edgeprune import protocol

PROTOCOL_H = "edgeprune_protocol.h"
HARNESS_H = "validation_harness.h"
HARNESS_CC = "validation_harness.cc"


def _source(name: str) -> str:
    return (package_files("edgeprune.firmware") / "firmware_src" / name).read_text(encoding="utf-8")


def validation_files(head: list[str]) -> dict[str, str]:
    """The serial validation harness: the protocol header and the C++ harness, each
    under the generated-file comment ``head``. Reads the package's ``firmware_src/``;
    no other side effects."""
    top = "\n".join(head) + "\n"
    return {
        PROTOCOL_H: top + protocol.c_header(),
        HARNESS_H: top + _source(HARNESS_H),
        HARNESS_CC: top + _source(HARNESS_CC),
    }
