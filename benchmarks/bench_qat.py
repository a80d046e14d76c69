"""Clustering and the preserving QAT modes on the digits CNN: what each quantize.mode keeps.

Run: python benchmarks/bench_qat.py [--clusters N] [--json FILE]

Each row is one ``edgeprune run`` of the default digits CNN (the default recipe:
75 % unstructured sparsity, 10 pruning epochs) with ``quantize.mode`` int8
(post-training), pqat, cqat or pcqat, and ``cluster.clusters`` N for the
clustering rows, into a temporary folder. The figures are read from each run's
``report.json`` (test accuracy of the int8 model on LiteRT; the zero fraction
and the largest count of distinct int8 values in one channel of a clustered
layer, from the ``.tflite``) and from the file (bytes, gzip bytes). The plain
QAT row fine-tunes the pcqat run's ``pruned.keras`` with tfmot's default scheme
(no recipe offers it) and measures the same figures.

Exit code 1 when a preserving mode lost zeros or clusters (the run itself would
have failed) or when plain QAT kept them (then the check proves nothing).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import edgeprune.pipeline as pipeline  # noqa: E402
from edgeprune.recipe import build_recipe  # noqa: E402
from edgeprune.stages.preserve import int8_weights  # noqa: E402


def _row(name, data: bytes, accuracy, seconds, clustered=(), float_accuracy=None):
    figures = int8_weights(data)
    weights = sum(n for n, _, _, _ in figures.values())
    zeros = sum(z for _, z, _, _ in figures.values())
    distinct = max((figures[c][2] for c in clustered if c in figures), default=None)
    return {
        "mode": name,
        "accuracy": accuracy,
        "pruned_float_accuracy": float_accuracy,
        "zero_fraction": zeros / weights,
        "max_distinct_per_channel": distinct,
        "bytes": len(data),
        "gzip_bytes": len(gzip.compress(data, 9, mtime=0)),
        "seconds": seconds,
    }


def _run(mode: str, clusters: int, folder: str):
    recipe = build_recipe({"quantize": {"mode": mode}, "cluster": {"clusters": clusters}})
    t0 = time.perf_counter()
    result = pipeline.run(recipe=recipe, out=folder, page=False)
    seconds = time.perf_counter() - t0
    acc = {e.stage: e.metrics["accuracy"] for e in result.evaluations}
    q = result.report.stages.quantize
    clustered = [r.layer for r in q.preserve.layers if r.clustered] if q.preserve else []
    return _row(f"{mode}" + (f" ({clusters})" if clusters else ""), result.quantize.tflite.data,
                acc["final"], seconds, clustered, acc["pruned"]), result  # fmt: skip


def _plain_qat(folder: str, clusters: int) -> dict:
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka
    from edgeprune.adapters import tfmot_qat as tm
    from edgeprune.data import load_dataset
    from edgeprune.runners.host import HostRunner

    ds = load_dataset("digits")
    model = ka.load_user_model(os.path.join(folder, "pruned.keras"))[0]
    t0 = time.perf_counter()
    model, names = tm.cluster(model, ds.x_train, ds.y_train, clusters=clusters, epochs=2,
                              batch_size=32, learning_rate=1e-4, task="classification",
                              probabilities=True, seed=0)  # fmt: skip
    qat = tm.quantize_aware(model, ds.x_train, ds.y_train, mode="qat", epochs=2, batch_size=32,
                            learning_rate=1e-4, task="classification", probabilities=True,
                            seed=0)  # fmt: skip
    data = convert.to_tflite(qat, "int8", ds.x_train[:200])
    accuracy = float((HostRunner(data).predict(ds.x_test).argmax(1) == ds.y_test).mean())
    return _row(f"plain qat ({clusters})", data, accuracy, time.perf_counter() - t0, names)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for mode, clusters in (("int8", 0), ("pqat", 0), ("int8", args.clusters),
                               ("cqat", args.clusters), ("pcqat", args.clusters)):  # fmt: skip
            row, _ = _run(mode, clusters, os.path.join(tmp, f"{mode}{clusters}"))
            rows.append(row)
        rows.append(_plain_qat(os.path.join(tmp, f"pcqat{args.clusters}"), args.clusters))
    print(
        f"{'mode':<14}{'float':>7}{'accuracy':>9}{'zeros':>7}{'values/ch':>10}{'bytes':>8}{'gzip':>7}{'s':>6}"
    )
    for r in rows:
        d = "-" if r["max_distinct_per_channel"] is None else r["max_distinct_per_channel"]
        fa = "-" if r["pruned_float_accuracy"] is None else f"{r['pruned_float_accuracy']:.4f}"
        print(f"{r['mode']:<14}{fa:>7}{r['accuracy']:>9.4f}{r['zero_fraction']:>7.3f}{d:>10}"
              f"{r['bytes']:>8}{r['gzip_bytes']:>7}{r['seconds']:>6.0f}")  # fmt: skip
    plain = rows[-1]
    if plain["zero_fraction"] > 0.7 and (plain["max_distinct_per_channel"] or 0) <= args.clusters:
        print("plain QAT kept zeros and clusters: the checks would prove nothing")
        ok = False
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
