"""What `edgeprune inspect` and `edgeprune cost` print: a .tflite's tensors and
operators, and each operator's cost (with a target, its estimated latency).

No TensorFlow: the flatbuffer is parsed by :mod:`edgeprune.tflite`.
"""

from __future__ import annotations

import dataclasses
import json

from edgeprune.presentation.table import table


def inspect_report(model_path: str, as_json: bool = False, max_bytes: int | None = None) -> str:
    """Ops, tensors, sizes and parameter count of the .tflite at ``model_path``, as
    text or (``as_json``) as JSON with the weights' zero fraction.

    Raises:
        BadInputError: the file is missing, unreadable or not a .tflite.
    """
    from edgeprune.artifacts import read_flatbuffer
    from edgeprune.presentation.inspect import format_model_info

    info = read_flatbuffer(model_path, max_bytes).info
    if not as_json:
        return format_model_info(info)
    body = dataclasses.asdict(info)
    body["weights"]["zero_fraction"] = info.weights.zero_fraction
    return json.dumps(body, indent=2)


def cost_report(
    model_path: str,
    target: str | None = None,
    cost_model: str | None = None,
    as_json: bool = False,
    max_bytes: int | None = None,
    force_cost_model: bool = False,
) -> str:
    """Per-operator cost of the .tflite at ``model_path`` (class, MACs, bytes), and
    with ``target`` (a profile name or file) each operator's estimated latency under
    ``cost_model`` (default: the target's). JSON with ``as_json``: the op costs a
    calibration set ships in place of a model. Files over ``max_bytes`` (default
    64 MiB) are refused unread.

    Raises:
        BadInputError: the file is not a readable, valid .tflite, the target or
            the cost model is unknown, or the cost model is for another core or
            kernel library than the target's (unless ``force_cost_model``).
    """
    from edgeprune.artifacts import read_flatbuffer
    from edgeprune.estimates.latency import estimate_latency
    from edgeprune.estimates.opcost import model_cost

    info = read_flatbuffer(model_path, max_bytes).info
    costs = model_cost(info)
    est = None
    if target is not None:
        from edgeprune.target import load_target

        est = estimate_latency(costs, load_target(target), cost_model, force_cost_model)
    if as_json:
        body = costs.to_dict()
        if est is not None:
            body["estimate"] = dataclasses.asdict(est)
        return json.dumps(body, indent=1)
    return _cost_text(costs, est)


def _cost_text(costs, est) -> str:
    from edgeprune.estimates.opcost import format_count
    from edgeprune.tflite.names import layer_label

    rows = [
        ["op", "layer", "class", "dtype", "kernel", "MACs", "elements", "weights B", "act. B"]
        + (["est. ms", "share"] if est else [])
    ]
    for i, o in enumerate(costs.ops):
        row = [
            f"{o.index} {o.opcode}",
            layer_label(o.layer, 24),
            o.op_class,
            o.dtype,
            o.kernel,
            format_count(o.macs),
            format_count(o.elements),
            f"{o.weight_bytes:,}",
            f"{o.input_bytes + o.output_bytes:,}",
        ]
        if est:
            row += [f"{est.ops[i].ms:.4g}", f"{est.ops[i].ms / est.ms:.0%}" if est.ms else "-"]
        rows.append(row)
    lines = table(rows, right=set(range(5, 11)))
    lines.append(
        f"total: {costs.macs:,} MACs, {costs.weight_bytes:,} B of constants, "
        f"{len(costs.ops)} operators"
    )
    if est is not None:
        from edgeprune.presentation.check import format_top_ops

        line = f"latency on {est.target}: ESTIMATE {est.ms:,.4g} ms ±{est.error_band:.0%}"
        if est.energy_uj is not None:
            line += f", energy {est.energy_uj:,.4g} uJ at {est.power_mw:g} mW"
        lines += [f"{line}\n  {est.caveat}\n", format_top_ops(est)]
    return "\n".join(lines)
