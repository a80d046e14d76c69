"""The serial validation harness and the Arduino sketch that runs it.

``edgeprune validate --runner serial`` talks to firmware built from these
files. The C++ sources and the sketch are files under ``firmware_src/``, not
strings in Python; the sketch is a :class:`string.Template` whose
placeholders are ``${head}`` (the generated-file comment), ``${camel}`` (the
CamelCase prefix of the model's C names: ``k${camel}ArenaBytes``,
``${camel}OpResolver``) and ``${array}`` (the model array).
"""

from __future__ import annotations

from importlib.resources import files as package_files
from string import Template

from edgeprune import protocol
from edgeprune.firmware.model_files import Names

PROTOCOL_H = "edgeprune_protocol.h"
HARNESS_H = "validation_harness.h"
HARNESS_CC = "validation_harness.cc"
SKETCH = "edgeprune_validate"


def _source(name: str) -> str:
    return (package_files("edgeprune.firmware") / "firmware_src" / name).read_text(encoding="utf-8")


def validation_files(files: dict[str, str], n: Names, head: list[str]) -> dict[str, str]:
    """The serial validation harness (protocol header, C++ harness) and an Arduino
    sketch folder that holds everything it compiles (the Arduino IDE builds only
    its sketch folder), with copies of the model's ``files``. Reads the package's
    ``firmware_src/``; no other side effects."""
    top = "\n".join(head) + "\n"
    harness = {
        PROTOCOL_H: top + protocol.c_header(),
        HARNESS_H: top + _source(HARNESS_H),
        HARNESS_CC: top + _source(HARNESS_CC),
    }
    sketch = {f"{SKETCH}/{name}": text for name, text in {**files, **harness}.items()}
    sketch[f"{SKETCH}/{SKETCH}.ino"] = Template(_source(f"{SKETCH}.ino")).substitute(
        head="\n".join(head), camel=n.camel, array=n.array
    )
    return {**harness, **sketch}
