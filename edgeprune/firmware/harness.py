"""The serial validation harness and the Arduino sketch that runs it.

``edgeprune validate --runner serial`` talks to firmware built from these
files. The C++ sources and the sketch are files under ``firmware_src/``, not
strings in Python; the sketch is a :class:`string.Template` whose
placeholders are ``${head}`` (the generated-file comment), the model's file
names ``${model_h}``, ``${ops_h}``, ``${config_h}``, and its C names
``${resolver}`` (``<name>_OpResolver``), ``${register}``
(``<name>_RegisterOps``), ``${camel}`` (``k${camel}ArenaBytes``) and
``${array}`` (the model array), and ``${alt_memory}``, the code that passes the
alternate decompression block (:mod:`edgeprune.firmware.alt_memory`).
"""

from __future__ import annotations

from importlib.resources import files as package_files
from string import Template

from edgeprune import protocol
from edgeprune.firmware import alt_memory
from edgeprune.firmware.model_files import Names

PROTOCOL_H = "edgeprune_protocol.h"
HARNESS_H = "validation_harness.h"
HARNESS_CC = "validation_harness.cc"
SKETCH = "edgeprune_validate"
_ALT_FAILED = 'Halt("SetDecompressionMemory failed");'


def _source(name: str) -> str:
    return (package_files("edgeprune.firmware") / "firmware_src" / name).read_text(encoding="utf-8")


def validation_files(files: dict[str, str], n: Names, head: list[str]) -> dict[str, str]:
    """The serial validation harness (protocol header, C++ harness) and an Arduino
    sketch folder that holds everything it compiles (the Arduino IDE builds every
    source of its sketch folder and nothing else), with copies of the model's
    ``files`` (model, ops and config: ``inference_example.cc`` has a ``main()`` of
    its own and stays out). Reads the package's ``firmware_src/``; no other side
    effects."""
    top = "\n".join(head) + "\n"
    harness = {
        PROTOCOL_H: top + protocol.c_header(),
        HARNESS_H: top + _source(HARNESS_H),
        HARNESS_CC: top + _source(HARNESS_CC),
    }
    model = {f: files[f] for f in (n.model_h, n.model_cc, n.ops_h, n.config_h)}
    sketch = {f"{SKETCH}/{name}": text for name, text in {**model, **harness}.items()}
    sketch[f"{SKETCH}/{SKETCH}.ino"] = Template(_source(f"{SKETCH}.ino")).substitute(
        head="\n".join(head),
        alt_memory="\n".join(alt_memory.setup_lines(n.guard, "interpreter", _ALT_FAILED)),
        camel=n.camel,
        array=n.array,
        resolver=n.resolver,
        register=n.register,
        model_h=n.model_h,
        ops_h=n.ops_h,
        config_h=n.config_h,
    )
    return {**harness, **sketch}
