"""Compiled flash, RAM and stack of tree models on each target's own compiler.

Needs Debian's gcc-arm-none-eabi (``.ci/run`` installs it) for the Cortex-M
profiles; a profile whose compiler is missing must raise CompilerMissingError
naming the package, which is what the tests check when it is.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from edgeprune.target import list_targets, load_target
from edgeprune.trees import cexport
from edgeprune.trees import compile as cc
from edgeprune.trees.model import from_sklearn

ARM = shutil.which("arm-none-eabi-gcc") is not None
needs_arm = pytest.mark.skipif(not ARM, reason="needs arm-none-eabi-gcc (gcc-arm-none-eabi)")
REFUSED = {"xtensa-lx6", "xtensa-lx7"}  # no Debian compiler


@pytest.fixture(scope="module")
def wine_models():
    x, y = load_wine(return_X_y=True)
    tree = from_sklearn(DecisionTreeClassifier(random_state=0).fit(x, y))
    forest = from_sklearn(RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y))
    return tree, forest


def test_every_profile_core_is_compiled_or_refused_on_purpose():
    cores = {load_target(t).core for t in list_targets()}
    known = set(cc.ARM_FLAGS) | set(cc.AARCH64_CORES) | {"x86-64"} | REFUSED
    assert cores <= known, f"cores without a compiler rule: {sorted(cores - known)}"


@pytest.mark.parametrize("target_id", list_targets())
def test_each_profile_sizes_a_forest_or_names_what_to_install(target_id, wine_models):
    target = load_target(target_id)
    files = cexport.generate(wine_models[1], "wine")
    try:
        chain = cc.toolchain(target.core)
    except cc.CompilerMissingError as exc:
        assert target.core in REFUSED or "install the Debian package" in str(exc)
        if target.core.startswith("cortex-m") and ARM:
            raise
        return
    size = cc.compiled_size(files, "wine_predict", target)
    internal = sum(int(np.count_nonzero(t.left != -1)) for t in wine_models[1].trees)
    # each decision node holds at least a 4-byte threshold, two children and a feature
    assert size.flash_bytes >= internal * (4 + 2 + 2 + 1)
    assert size.flash_bytes <= internal * (4 + 2 + 2 + 1) + 8192  # code and leaves: small
    assert size.ram_bytes >= size.stack_bytes > 0
    assert size.compiler == cc.compiler_version(chain.cc) and size.compiler
    assert "-Os" in size.flags and size.core == target.core


def test_xtensa_is_refused_naming_why():
    with pytest.raises(cc.CompilerMissingError, match="xtensa-lx6 has no C compiler packaged"):
        cc.toolchain("xtensa-lx6")


def test_a_missing_compiler_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(cc.shutil, "which", lambda name: None)
    with pytest.raises(cc.CompilerMissingError) as exc:
        cc.toolchain("cortex-m4f")
    assert str(exc.value) == (
        "arm-none-eabi-gcc is not installed; install the Debian package gcc-arm-none-eabi "
        "(apt-get install gcc-arm-none-eabi) to compile for cortex-m4f"
    )
    with pytest.raises(cc.CompilerMissingError, match="gcc-aarch64-linux-gnu"):
        cc.toolchain("cortex-a72")


@needs_arm
def test_the_empty_model_adds_nothing_and_a_bigger_model_adds_more(wine_models):
    empty = cc.empty_model("e", 13, "float")
    size = cc.compiled_size(empty, "e_predict", "cortex-m4f")
    assert size.flash_bytes == 0 and size.ram_bytes == 0
    tree, forest = wine_models
    small = cc.compiled_size(cexport.generate(tree, "t"), "t_predict", "cortex-m4f")
    big = cc.compiled_size(cexport.generate(forest, "t"), "t_predict", "cortex-m4f")
    assert 0 < small.flash_bytes < big.flash_bytes
    assert big.sections[".rodata"] > small.sections[".rodata"]


def _symbols(folder) -> set[str]:
    elf = next(folder.glob("*.elf"))
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines()}


@needs_arm
def test_float_model_on_cortex_m0plus_pays_for_soft_float_helpers(wine_models, tmp_path):
    forest = wine_models[1]
    soft = cc.compiled_size(
        cexport.generate(forest, "f"), "f_predict", "cortex-m0plus", keep=tmp_path / "m0"
    )
    helpers = {s for s in _symbols(tmp_path / "m0") if s.startswith("__aeabi_f")}
    # the threshold compare, the soft-vote sum and the division by the member count
    assert {"__aeabi_fcmple", "__aeabi_fadd", "__aeabi_fdiv"} <= helpers
    hard = cc.compiled_size(
        cexport.generate(forest, "f"), "f_predict", "cortex-m4f", keep=tmp_path / "m4"
    )
    assert not {s for s in _symbols(tmp_path / "m4") if s.startswith("__aeabi_f")}
    ints = cc.compiled_size(cexport.generate(forest, "f", "int16"), "f_predict", "cortex-m0plus")
    assert ints.flash_bytes < soft.flash_bytes
    assert soft.flash_bytes != hard.flash_bytes


@needs_arm
def test_loop_layout_is_smaller_than_if_else_once_compiled(wine_models):
    forest = wine_models[1]
    loop = cc.compiled_size(cexport.generate(forest, "l"), "l_predict", "cortex-m4f")
    ifelse = cc.compiled_size(
        cexport.generate(forest, "l", layout="ifelse"), "l_predict", "cortex-m4f"
    )
    assert loop.flash_bytes < ifelse.flash_bytes


def test_stack_is_the_deepest_path_of_the_call_graph(tmp_path):
    (tmp_path / "a.ci").write_text(
        'graph: { title: "a.c"\n'
        'node: { title: "m_predict" label: "m_predict\\na.c:1:1\\n16 bytes (static)" }\n'
        'node: { title: "m_proba" label: "m_proba\\na.c:2:1\\n40 bytes (static)" }\n'
        'node: { title: "m_leaf" label: "m_leaf\\na.c:3:1\\n8 bytes (static)" }\n'
        'node: { title: "m_big" label: "m_big\\na.c:4:1\\n100 bytes (static)" }\n'
        'edge: { sourcename: "m_predict" targetname: "m_proba" label: "a.c:1:5" }\n'
        'edge: { sourcename: "m_proba" targetname: "m_leaf" label: "a.c:2:5" }\n'
        'edge: { sourcename: "m_predict" targetname: "m_leaf" label: "a.c:1:7" }\n}\n'
    )
    assert cc.call_graph_stack(tmp_path, "m_predict") == 16 + 40 + 8  # m_big is not called


def test_files_without_the_header_contract_are_refused():
    with pytest.raises(cc.BadInputError, match="files lack m_model.h"):
        cc.compiled_size({"m_model.c": "int x;"}, "m_predict", "cortex-m4f")
    with pytest.raises(cc.BadInputError, match="entry 'main' must be <name>_predict"):
        cc.compiled_size({}, "main", "cortex-m4f")


@needs_arm
def test_c_that_does_not_compile_is_one_line_quoting_the_compiler(wine_models):
    files = cexport.generate(wine_models[0], "b")
    files["b_model.c"] += "\nthis is not C;\n"
    with pytest.raises(cc.CompileError) as exc:
        cc.compiled_size(files, "b_predict", "cortex-m4f")
    assert str(exc.value).startswith("arm-none-eabi-gcc failed: ") and "\n" not in str(exc.value)
