"""Compiled flash, RAM and stack of tree models on each target's own compiler.

Needs Debian's gcc-arm-none-eabi (``.ci/run`` installs it) for the Cortex-M
profiles; a profile whose compiler is missing must raise CompilerMissingError
naming the package, which is what the tests check when it is. With
``EDGEPRUNE_REQUIRE_ARM_GCC=1`` (``.ci/run``) a missing compiler or QEMU fails the tests.
"""

from __future__ import annotations

import os
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
QEMU = shutil.which("qemu-system-arm") is not None
REQUIRED = os.environ.get("EDGEPRUNE_REQUIRE_ARM_GCC") == "1"  # .ci/run: fail, do not skip
needs_arm = pytest.mark.skipif(
    not (ARM or REQUIRED), reason="needs arm-none-eabi-gcc (gcc-arm-none-eabi)"
)
needs_qemu = pytest.mark.skipif(
    not (ARM and QEMU or REQUIRED), reason="needs arm-none-eabi-gcc and qemu-system-arm"
)
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
        if target.core.startswith("cortex-m") and (ARM or REQUIRED):
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


def test_only_cores_without_an_fpu_default_to_int16_inputs():
    dtypes = {t: cc.default_dtype(load_target(t)) for t in list_targets()}
    assert dtypes["pico"] == "int16"
    assert {d for t, d in dtypes.items() if t != "pico"} == {"float"}
    assert cc.default_dtype("cortex-m0plus") == "int16"


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


@needs_qemu
def test_counted_instructions_grow_with_the_nodes_a_row_visits():
    from edgeprune.trees import tree_latency as tl

    x, y = load_wine(return_X_y=True)
    tree = from_sklearn(DecisionTreeClassifier(random_state=0).fit(x, y))
    rows = x[:40].astype(np.float32)
    counts = tl.count_instructions(cexport.generate(tree, "w"), "w", rows, "cortex-m4f")
    visits = tl.visits(tree, rows)
    assert len(counts) == len(rows) and len(set(visits.tolist())) > 1
    # the same path costs the same; a longer path costs more, per node as the fit says
    by_depth = {v: set(counts[visits == v].tolist()) for v in set(visits.tolist())}
    assert all(len(c) == 1 for c in by_depth.values())
    depths = sorted(by_depth)
    lo, hi = by_depth[depths[0]].pop(), by_depth[depths[-1]].pop()
    per_node = (hi - lo) / (depths[-1] - depths[0])
    fit = tl.load_counts()["cortex-m4f-float"]["classification"]["per_node"]
    assert abs(per_node - fit) <= 0.25 * fit


@needs_qemu
def test_the_fit_predicts_the_counted_instructions_of_a_model_outside_its_calibration():
    from edgeprune.trees import tree_latency as tl

    x, y = load_wine(return_X_y=True)
    est = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=3).fit(x[::3], y[::3])
    forest = from_sklearn(est)
    rows = x[1:60:3].astype(np.float32)
    counted = tl.count_instructions(cexport.generate(forest, "h"), "h", rows, "cortex-m55")
    fit = tl.load_counts()["cortex-m55-float"]["classification"]
    cols = tl.terms(forest, tl.visits(forest, rows), tl.summed_leaves(forest, rows))
    predicted = cols @ np.array([fit[t] for t in tl.TERMS])
    assert np.max(np.abs(predicted - counted) / counted) < 0.2


def test_estimate_is_instructions_times_cycles_per_instruction_over_the_clock(wine_models):
    from edgeprune.trees import tree_latency as tl

    forest = wine_models[1]
    target = load_target("nucleo_l4r5zi")
    size = cc.CompiledSize(1, 1, 1, {}, {}, "gcc", (), "cortex-m4f", 1)
    est = tl.estimate(forest, size, target)
    fit = tl.load_counts()["cortex-m4f-float"]["classification"]
    mean, deepest, mean_summed, worst_summed = tl.path_statistics(forest)
    assert 0 <= mean_summed <= worst_summed <= forest.n_members
    cols = tl.terms(forest, mean, mean_summed)
    instructions = cols[0] @ np.array([fit[t] for t in tl.TERMS])
    assert est.ms == pytest.approx(instructions * 1.205 / 120e6 * 1e3)
    assert est.ms_high == pytest.approx(2 * est.ms) and est.basis == "derived"
    assert est.energy_uj == pytest.approx(est.ms * 40.84)
    assert any(n.startswith(f"worst path: {deepest} decision nodes") for n in est.notes)
    assert deepest >= mean > 0
    m33 = tl.estimate(forest, None, load_target("pico2"))
    assert "instruction counts of cortex-m4f used for cortex-m33" in m33.notes


def test_estimate_refuses_another_cores_size_and_uncounted_cores(wine_models):
    from edgeprune.trees import tree_latency as tl

    size = cc.CompiledSize(1, 1, 1, {}, {}, "gcc", (), "cortex-m0plus", 1)
    with pytest.raises(cc.BadInputError, match="compiled size is for cortex-m0plus, but"):
        tl.estimate(wine_models[1], size, load_target("nucleo_l4r5zi"))
    with pytest.raises(cc.BadInputError, match="no instruction counts for xtensa-lx6"):
        tl.estimate(wine_models[1], None, load_target("esp32"))
    with pytest.raises(cc.BadInputError, match="no instruction counts for cortex-m4f with int8"):
        tl.estimate(wine_models[1], None, load_target("nucleo_l4r5zi"), dtype="int8")
    m0 = tl.estimate(wine_models[1], None, load_target("pico"), dtype="int16")
    assert m0.cost_model == "tree-walk_cortex-m0plus_int16"
