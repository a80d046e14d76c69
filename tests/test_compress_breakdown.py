"""benchmarks/compress_breakdown.py: where the bytes of a dense and a prune-compressed
model go, read from the files, and the bound a ratio target is measured against."""

from __future__ import annotations

import os
import sys

import pytest

from edgeprune.compress import compress_model

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import compress_breakdown as cb  # noqa: E402


@pytest.fixture(scope="module")
def models(run_dir):
    dense = (run_dir / "final_int8.tflite").read_bytes()
    return dense, compress_model(dense, "prune")


def test_each_compressed_kernel_holds_exactly_its_prune_encoding(models):
    dense, result = models
    counts = cb.kernel_counts(dense)
    parts = cb.breakdown(result.model)["kernels"]
    compressed = {t.name for t in result.tensors if t.method == "prune"}
    assert compressed and compressed <= set(parts)
    for name in compressed:
        n, kept = counts[name]
        assert parts[name] == {"mask": -(-n // 8), "values": kept, "header": 16}
        assert sum(parts[name].values()) == cb.prune_bytes(n, kept)
    for name in set(parts) - compressed:
        assert parts[name] == {"dense": counts[name][0]}  # left dense, every byte


def test_the_table_accounts_for_every_byte_and_the_bound_is_below_the_model(models):
    dense, result = models
    rows = cb.table(dense, result.model)
    assert rows[-1] == ("total", len(dense), len(result.model))
    for col in (1, 2):
        assert sum(r[col] for r in rows[:-1]) == rows[-1][col]
        assert all(r[col] >= 0 for r in rows)
    d, c = cb.breakdown(dense), cb.breakdown(result.model)
    # what compression must not touch is the same in both
    for key in ("other_data", "metadata", "quantization", "names", "signature_and_description"):
        assert d[key] == c[key], key
    assert c["decode_operators"] == sum(1 for t in result.tensors if t.method)
    bound = cb.ceiling(
        dense, {t.name: cb.kernel_counts(dense)[t.name] for t in result.tensors if t.method}
    )
    # DECODE's own cost: the new tensors' names and tables, the operators
    assert bound + c["decode_names"] + c["structure"] - d["structure"] == len(result.model)
    assert "2.2x needs <=" in cb.report(dense, result.model)
