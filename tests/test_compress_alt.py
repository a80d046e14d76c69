"""Alternate decompression memory from the target profile ([alt_decompression]).

A profile may give TFLite Micro a block for decoded weights outside the arena
(MicroInterpreter::SetDecompressionMemory). The check measures the arena with the
decoded tensors there, counts the block in the RAM rule when its region is part of
ram_bytes and judges it against its own region otherwise, and says where decoded
weights live. The model: the validation run's 75 %-sparse digits CNN, prune-compressed.
"""

from __future__ import annotations

import copy
import re

import pytest

from edgeprune._toml import read_toml
from edgeprune.artifacts import Flatbuffer
from edgeprune.compress import compress_model
from edgeprune.compress.verification import alt_decompression_bytes
from edgeprune.rules import alt_memory
from edgeprune.rules.result import negate, rule_text
from edgeprune.stages.check import check_flatbuffer
from edgeprune.target import (
    AltDecompression,
    TargetError,
    list_targets,
    load_target,
    parse_target,
    targets_dir,
)


def _profile(alt: dict | None, base: str = "nano33ble", name: str = "alt"):
    data = copy.deepcopy(read_toml(f"{targets_dir()}/{base}.toml", TargetError, "target"))
    if alt is not None:
        data["alt_decompression"] = alt
    return parse_target(data, f"{name}.toml", name)


SEPARATE = {"bytes": 65_536, "region": "SRAM2", "in_ram_bytes": False}


@pytest.fixture(scope="module")
def models(run_dir):
    dense = (run_dir / "final_int8.tflite").read_bytes()
    compressed = compress_model(dense, "prune").model
    return dense, compressed


@pytest.fixture(scope="module")
def checks(models):
    """The compressed model checked on nano33ble as shipped, and with a separate, an
    in-RAM and a too-small alternate decompression region."""
    compressed = Flatbuffer.of(models[1], "final_int8_compressed.tflite", "int8")
    profiles = {
        "none": _profile(None),
        "separate": _profile(SEPARATE),
        "in_ram": _profile({**SEPARATE, "in_ram_bytes": True}),
        "small": _profile({**SEPARATE, "bytes": 4096}),
    }
    return {k: check_flatbuffer(compressed, t) for k, t in profiles.items()}


def test_the_table_parses_and_the_block_is_the_need_capped_at_the_region():
    t = _profile({**SEPARATE, "section": ".sram2_bss"})
    assert t.alt_decompression == AltDecompression(65_536, "SRAM2", False, ".sram2_bss")
    assert t.alt_decompression.block_bytes(32_768) == 32_768
    assert t.alt_decompression.block_bytes(100_000) == 65_536
    assert _profile(None).alt_decompression is None


@pytest.mark.parametrize("size", [-1, 0, 1.5, "64k", True])
def test_a_bad_alt_size_is_refused_in_one_line_naming_the_key_and_the_fix(size):
    with pytest.raises(TargetError) as err:
        _profile({**SEPARATE, "bytes": size})
    text = str(err.value)
    assert "\n" not in text
    assert f"alt.toml: alt_decompression.bytes = {size!r} must be a whole number" in text
    assert "fix it or remove the [alt_decompression] table" in text


@pytest.mark.parametrize(
    ("alt", "base", "message"),
    [
        ({**SEPARATE, "in_ram_bytes": True, "bytes": 10**6}, "nano33ble", "set in_ram_bytes"),
        (SEPARATE, "rpi4", "of a kind = 'mcu' profile"),
        ({"bytes": 4096, "region": "DTCM"}, "nano33ble", "missing key 'alt_decompression.in_"),
        ({**SEPARATE, "size": 1}, "nano33ble", "unknown key 'alt_decompression.size'"),
        ({**SEPARATE, "section": "a b"}, "nano33ble", "is not a linker section name"),
        (4096, "nano33ble", "must be a table (bytes, region, in_ram_bytes)"),
    ],
)
def test_bad_alt_tables_are_refused_naming_what_to_change(alt, base, message):
    with pytest.raises(TargetError, match="alt_decompression") as err:
        _profile(alt, base)
    assert message in str(err.value)


def test_a_separate_region_shrinks_the_arena_and_is_judged_by_its_own_rule(checks, models):
    needed = alt_decompression_bytes(models[1])
    plain, sep = checks["none"], checks["separate"]
    assert sep.evidence.decoded_bytes == plain.evidence.decoded_bytes == needed > 0
    assert plain.evidence.alt_decompression_bytes == 0
    assert "decoded weights live in the arena" in plain.evidence.decoded_where
    assert sep.evidence.alt_decompression_bytes == needed
    # the decoded weights left the arena: it shrinks by at least most of the block
    assert plain.evidence.arena_bytes - sep.evidence.arena_bytes > needed // 2
    rules = {r.name: r for r in sep.rules}
    assert list(rules) == ["flash", "ram", "arena", "latency", "alt_memory"]
    assert (rules["alt_memory"].figure, rules["alt_memory"].budget) == (needed, 65_536)
    assert "outside the arena" in rules["alt_memory"].evidence and "SRAM2" in rules["ram"].evidence
    ev, reserve = sep.evidence, 65_536  # nano33ble's reserve
    assert rules["ram"].figure == ev.arena_bytes + ev.runtime_ram_bytes + reserve
    assert [r.name for r in plain.rules] == ["flash", "ram", "arena", "latency"]


def test_a_region_inside_ram_bytes_adds_the_block_to_the_ram_rule(checks):
    sep, in_ram = checks["separate"], checks["in_ram"]
    assert [r.name for r in in_ram.rules] == ["flash", "ram", "arena", "latency"]
    assert in_ram.evidence.arena_bytes == sep.evidence.arena_bytes
    block = in_ram.evidence.alt_decompression_bytes
    ram = {r.name: r for r in in_ram.rules}["ram"]
    sep_ram = {r.name: r for r in sep.rules}["ram"]
    assert ram.figure == sep_ram.figure + block
    assert f"+ alternate decompression block {block:,} B" in ram.evidence
    assert "part of ram_bytes" in ram.evidence


def test_a_region_smaller_than_the_need_is_all_used_and_the_rest_falls_back(checks):
    small, sep = checks["small"], checks["separate"]
    assert small.evidence.alt_decompression_bytes == 4096 < small.evidence.decoded_bytes
    assert small.evidence.arena_bytes > sep.evidence.arena_bytes
    assert "falls back to the arena" in small.evidence.decoded_where
    assert all(r.ok for r in small.rules if r.name == "alt_memory")


def test_a_dense_model_on_a_target_with_alt_memory_is_checked_as_before(models):
    dense = Flatbuffer.of(models[0], "final_int8.tflite", "int8")
    with_alt = check_flatbuffer(dense, _profile(SEPARATE))
    assert with_alt.evidence.decoded_where == "" and with_alt.evidence.decoded_bytes == 0
    assert [r.name for r in with_alt.rules] == ["flash", "ram", "arena", "latency"]
    plain = check_flatbuffer(dense, _profile(None))
    assert with_alt.evidence.arena_bytes == plain.evidence.arena_bytes


def test_the_alt_memory_rule_reads_as_its_result():
    text = rule_text(alt_memory.alt_memory_rule)
    assert text == "The decoded weights' block fits its own memory region."
    assert negate(text) == "The decoded weights' block does not fit its own memory region."


def test_every_shipped_alt_table_is_inside_the_device_and_cites_its_size():
    shipped = [t for t in list_targets() if load_target(t).alt_decompression is not None]
    assert shipped, "no shipped profile has [alt_decompression]"
    for target_id in shipped:
        target = load_target(target_id)
        assert target.kind == "mcu" and target.alt_decompression.bytes <= target.ram_bytes
        with open(target.path, encoding="utf-8") as fh:
            table = fh.read().split("[alt_decompression]")[1]
        size_line = next(line for line in table.splitlines() if line.startswith("bytes"))
        assert re.search(r"# \[\d\]", size_line), f"{target_id}: cite the size's source"
