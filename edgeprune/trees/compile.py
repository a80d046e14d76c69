"""Flash, RAM and stack of generated C, measured on the target core's own compiler.

:func:`compiled_size` compiles the files :mod:`edgeprune.trees.cexport` writes
with a tiny entry (``main`` calling ``<name>_predict`` on a volatile feature
vector and storing the result in a volatile) at ``-Os`` with
``-ffunction-sections -fdata-sections`` and links with ``--gc-sections``
(newlib-nano and nosys on Cortex-M), so that what the model pulls in (libgcc's
soft-float helpers on a Cortex-M0+, libm) counts. From the linked ELF:

- flash = the loaded sections: ``.text .rodata .data`` (its initial values),
  ``.init .fini .init_array .fini_array`` and the unwind tables ``.ARM.exidx
  .ARM.extab .eh_frame`` (``.eh_frame_hdr`` on Linux); dynamic-linking tables
  (``.plt .got .dynsym ...``) are not counted;
- RAM = ``.data + .bss`` (+ ``.noinit``) + the deepest stack of the model's
  call graph (GCC's ``-fcallgraph-info=su``: frames summed along the deepest
  path from ``<name>_predict``; libgcc's assembly helpers are not in it and use
  a few words);
- the same program built with an empty model (``predict`` returning 0, the same
  feature vector) is measured the same way and subtracted: the figures are
  what the model adds to a firmware that already reads its features.

Cortex-M cores use Debian's ``arm-none-eabi-gcc`` (package gcc-arm-none-eabi);
x86-64 the host ``gcc``; Cortex-A cores ``aarch64-linux-gnu-gcc``
(gcc-aarch64-linux-gnu). Xtensa has no Debian compiler and is refused.
"""

from __future__ import annotations

import functools
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.errors import BadInputError, clip

ARM_FLAGS = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m4f": ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
    "cortex-m33": ("-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
    "cortex-m55": ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
}
AARCH64_CORES = ("cortex-a53", "cortex-a72", "cortex-a76")
COMMON_FLAGS = (
    "-Os",
    "-std=c99",
    "-ffunction-sections",
    "-fdata-sections",
    "-ffp-contract=off",  # no fused multiply-add: the sums stay numpy's
    "-fno-common",
    "-fcallgraph-info=su",
)
FLASH_SECTIONS = frozenset(
    ".text .rodata .data .init .fini .init_array .fini_array .ARM.exidx .ARM.extab "
    ".eh_frame .eh_frame_hdr".split()
)
RAM_SECTIONS = frozenset(".data .bss .noinit".split())


class CompilerMissingError(BadInputError):
    """The compiler for the target's core is not installed (or none exists for it)."""


class CompileError(BadInputError):
    """The generated C did not compile or link (the message quotes the compiler)."""


@dataclass(frozen=True)
class Toolchain:
    """How C is built for one core: the compiler, its flags and its size tool."""

    core: str
    cc: str
    size: str
    objdump: str
    flags: tuple[str, ...]
    link_flags: tuple[str, ...]
    package: str  # the Debian package that provides ``cc``


@dataclass(frozen=True)
class CompiledSize:
    """What a model adds to a firmware on one core, from its linked ELF (bytes)."""

    flash_bytes: int
    ram_bytes: int  # static data + stack_bytes
    stack_bytes: int
    sections: dict  # section -> bytes, of the model's program (before subtraction)
    baseline_sections: dict  # the same of the empty model's program
    compiler: str  # the compiler's version line
    flags: tuple[str, ...]
    core: str
    elf_bytes: int  # the linked ELF's file size (debug info included): evidence only
    basis: str = "compiled"
    notes: tuple[str, ...] = field(default_factory=tuple)


def default_dtype(target) -> str:
    """The export's input dtype for ``target`` (a Target or a core name): ``"int16"`` on a
    core without an FPU (every float compare would call a soft-float routine), else
    ``"float"`` (exact: scikit-learn's own decisions)."""
    from edgeprune.target import SOFT_FLOAT_CORES

    core = target if isinstance(target, str) else target.core
    return "int16" if core in SOFT_FLOAT_CORES else "float"


def toolchain(core: str) -> Toolchain:
    """The toolchain for ``core`` (a profile's ``core``), checked to be installed.

    Raises:
        CompilerMissingError: Xtensa (no Debian compiler), x86-64 on another machine,
            or the compiler not on PATH (the message names the Debian package).
    """
    if core in ARM_FLAGS:
        chain = Toolchain(
            core,
            "arm-none-eabi-gcc",
            "arm-none-eabi-size",
            "arm-none-eabi-objdump",
            ARM_FLAGS[core],
            ("-specs=nano.specs", "-specs=nosys.specs", "-Wl,--gc-sections"),
            "gcc-arm-none-eabi",
        )
    elif core in AARCH64_CORES:
        chain = Toolchain(
            core,
            "aarch64-linux-gnu-gcc",
            "aarch64-linux-gnu-size",
            "aarch64-linux-gnu-objdump",
            (f"-mcpu={core}",),
            ("-Wl,--gc-sections",),
            "gcc-aarch64-linux-gnu",
        )
    elif core == "x86-64":
        if platform.machine() not in ("x86_64", "AMD64"):
            raise CompilerMissingError(
                f"core x86-64 is compiled with this machine's gcc, but this is a "
                f"{platform.machine()}; measure it on an x86-64 machine"
            )
        chain = Toolchain(
            core, "gcc", "size", "objdump", (), ("-Wl,--gc-sections",), "build-essential"
        )
    else:
        raise CompilerMissingError(
            f"core {core} has no C compiler packaged by Debian (Xtensa needs Espressif's "
            "xtensa-esp-elf-gcc); tree models cannot be sized for it here"
        )
    if shutil.which(chain.cc) is None:
        raise CompilerMissingError(
            f"{chain.cc} is not installed; install the Debian package {chain.package} "
            f"(apt-get install {chain.package}) to compile for {core}"
        )
    return chain


def run_tool(cmd: list[str], cwd: Path) -> str:
    """Run a compiler or binutils command; its stdout, or CompileError quoting its stderr."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CompileError(f"{Path(cmd[0]).name} failed: {clip(proc.stderr or proc.stdout)}")
    return proc.stdout


@functools.cache
def compiler_version(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0].strip() if out.stdout else cc


def harness(name: str) -> str:
    """The measuring entry: ``main`` calls ``<name>_predict`` once on a volatile input."""
    return (
        f'#include "{name}_model.h"\n'
        f"volatile {name}_input_t {name}_harness_in[{name.upper()}_N_FEATURES];\n"
        f"static volatile __typeof__({name}_predict(({name}_input_t *)0)) {name}_sink;\n"
        f"int main(void) {{\n"
        f"    {name}_sink = {name}_predict((const {name}_input_t *){name}_harness_in);\n"
        "    return 0;\n}\n"
    )


def empty_model(name: str, n_features: int, input_t: str) -> dict[str, str]:
    """A model of the same interface that does nothing: the harness's own cost."""
    up = name.upper()
    return {
        f"{name}_model.h": f"#include <stdint.h>\n#define {up}_N_FEATURES {n_features}\n"
        f"typedef {input_t} {name}_input_t;\n"
        f"int32_t {name}_predict(const {name}_input_t *features);\n",
        f"{name}_model.c": f'#include "{name}_model.h"\n'
        f"int32_t {name}_predict(const {name}_input_t *features) {{ (void)features; return 0; }}\n",
    }


def header_facts(files: dict[str, str], name: str) -> tuple[int, str]:
    """``<NAME>_N_FEATURES`` and the ``<name>_input_t`` type of the files' header."""
    text = files.get(f"{name}_model.h", "")
    n = re.search(rf"#define {name.upper()}_N_FEATURES (\d+)", text)
    t = re.search(rf"typedef (\w+) {name}_input_t;", text)
    if not (n and t):
        raise BadInputError(
            f"files lack {name}_model.h with {name.upper()}_N_FEATURES and {name}_input_t; "
            "pass the files cexport.generate or emlearn_anchor.emlearn_anchor returned"
        )
    return int(n.group(1)), t.group(1)


def build(files: dict[str, str], name: str, chain: Toolchain, folder: Path) -> Path:
    """Write ``files`` and the harness into ``folder``, compile and link; the ELF's path."""
    for fname, text in {**files, f"{name}_harness.c": harness(name)}.items():
        (folder / fname).write_text(text)
    objects = []
    for src in sorted(folder.glob("*.c")):
        obj = src.with_suffix(".o")
        run_tool(
            [chain.cc, *chain.flags, *COMMON_FLAGS, "-I.", "-c", src.name, "-o", obj.name], folder
        )
        objects.append(obj.name)
    elf = folder / f"{name}.elf"
    run_tool([chain.cc, *chain.flags, *chain.link_flags, *objects, "-o", elf.name, "-lm"], folder)
    return elf


def sections(elf: Path, chain: Toolchain) -> dict[str, int]:
    """Section -> size in bytes (``size -A``), allocated sections only."""
    out = run_tool([chain.size, "-A", str(elf)], elf.parent)
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            if parts[2] != "0" or parts[0] in RAM_SECTIONS:
                found[parts[0]] = int(parts[1])
    return found


def call_graph_stack(folder: Path, entry: str) -> int:
    """Bytes of stack on the deepest call path from ``entry`` (GCC's ``.ci`` files)."""
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}
    node = re.compile(r'node: \{ title: "([^"]+)" label: "[^"]*\\n(\d+) bytes')
    edge = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
    for ci in folder.glob("*.ci"):
        text = ci.read_text()
        for fn, size in node.findall(text):
            frames[fn] = max(frames.get(fn, 0), int(size))
        for src, dst in edge.findall(text):
            calls.setdefault(src, set()).add(dst)

    @functools.cache
    def deepest(fn: str, depth: int = 0) -> int:
        if depth > 64:  # recursion: not in generated code; stop rather than loop
            return 0
        below = [deepest(c, depth + 1) for c in calls.get(fn, ())]
        return frames.get(fn, 0) + max(below, default=0)

    return deepest(entry)


def _flash(secs: dict[str, int]) -> int:
    return sum(v for k, v in secs.items() if k in FLASH_SECTIONS)


def _ram(secs: dict[str, int]) -> int:
    return sum(v for k, v in secs.items() if k in RAM_SECTIONS)


@functools.lru_cache(maxsize=64)
def _baseline(core: str, name: str, n_features: int, input_t: str) -> tuple:
    chain = toolchain(core)
    with tempfile.TemporaryDirectory(prefix="edgeprune-trees-") as tmp:
        elf = build(empty_model(name, n_features, input_t), name, chain, Path(tmp))
        return tuple(sections(elf, chain).items()), call_graph_stack(Path(tmp), f"{name}_predict")


def compiled_size(files: dict[str, str], entry: str, target, *, keep: Path | None = None):
    """Flash, RAM and stack that the model in ``files`` adds on ``target``'s core.

    ``entry`` is ``<name>_predict``; ``files`` hold ``<name>_model.h`` (declaring
    ``<NAME>_N_FEATURES``, ``<name>_input_t`` and the entry) and its sources, as
    :func:`edgeprune.trees.cexport.generate` and
    :func:`edgeprune.trees.emlearn_anchor.emlearn_anchor` return them.
    ``target`` is a :class:`~edgeprune.target.Target` or a core name. Builds in a
    temporary folder (``keep``: in that folder instead, left for inspection).

    Raises:
        CompilerMissingError: no compiler for the core (the Debian package named).
        CompileError: the C did not compile or link.
        BadInputError: ``entry`` is not ``<name>_predict`` of the files.
    """
    core = target if isinstance(target, str) else target.core
    if not entry.endswith("_predict"):
        raise BadInputError(f"entry {entry!r} must be <name>_predict, the generated function")
    name = entry[: -len("_predict")]
    n_features, input_t = header_facts(files, name)
    chain = toolchain(core)
    base_secs, base_stack = _baseline(core, name, n_features, input_t)
    base = dict(base_secs)
    with tempfile.TemporaryDirectory(prefix="edgeprune-trees-") as tmp:
        folder = Path(keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        elf = build(files, name, chain, folder)
        secs = sections(elf, chain)
        stack = call_graph_stack(folder, entry)
        elf_bytes = elf.stat().st_size
    return CompiledSize(
        flash_bytes=_flash(secs) - _flash(base),
        ram_bytes=_ram(secs) - _ram(base) + stack,
        stack_bytes=stack,
        sections=secs,
        baseline_sections=base,
        compiler=compiler_version(chain.cc),
        flags=(*chain.flags, *COMMON_FLAGS, *chain.link_flags),
        core=core,
        elf_bytes=elf_bytes,
        notes=(
            f"an empty model's program ({_flash(base)} B flash, {_ram(base)} B static RAM, "
            f"{base_stack} B stack: start-up code, main, the feature vector) measured the "
            "same way and subtracted",
        ),
    )
