"""The Keras layer behind a converter tensor name.

The TFLite converter names an operator's output tensor after every TensorFlow
node it fused into it, joined by ``;``:
``functional_1/activation/Relu;functional_1/batch_normalization/FusedBatchNormV3;
functional_1/conv2d/BiasAdd;functional_1/conv2d/Conv2D1``. Each part is
``<model>/<layer>/<ops inside the layer>``. The layer that did the work is the
first part that is not a fused activation or batch normalization (those come
first when the converter folded them into a convolution or a dense layer);
the parts after it can name a layer whose node only shared a function (the
``conv2d_4/Conv2D`` inside the first ``conv2d`` of MLPerf Tiny's KWS model).
"""

from __future__ import annotations

import re

#: Op names of fused activations (with the converter's numeric suffixes removed).
_FUSED = frozenset(
    {
        "Relu",
        "Relu6",
        "LeakyRelu",
        "Elu",
        "Selu",
        "Sigmoid",
        "Tanh",
        "Softplus",
        "Softsign",
        "HardSigmoid",
        "Gelu",
        "Identity",
    }
)
_SUFFIX = re.compile(r"(_\d+)?\d*$")


def _parts(component: str) -> list[str]:
    return [p for p in component.split(":")[0].split("/") if p]


def _layer(parts: list[str]) -> str:
    if len(parts) >= 3:
        # a scope repeated (TF1 slim: "MobilenetV1/MobilenetV1/Conv2d_1/Relu6") is not a layer
        return parts[2] if parts[1] == parts[0] and len(parts) > 3 else parts[1]
    return parts[0] if len(parts) == 2 else ""


def _is_fused(parts: list[str]) -> bool:
    ops = parts[2:] if len(parts) >= 3 else parts[1:]
    if any(p == "batchnorm" or p.startswith("FusedBatchNorm") for p in ops):
        return True
    return bool(ops) and _SUFFIX.sub("", ops[-1]) in _FUSED


def keras_layer(tensor_name: str) -> str:
    """The Keras layer an operator's output tensor name comes from
    (``"...eadVariableOp;functional_5/c2/Conv1D1"`` -> ``"c2"``), or ``""`` when
    the name holds none (``StatefulPartitionedCall:0``, a model's last output)."""
    components = [_parts(c) for c in tensor_name.split(";")]
    named = [p for p in components if _layer(p)]
    main = next((p for p in named if not _is_fused(p)), named[0] if named else [])
    return _layer(main)


def layer_label(tensor_name: str, width: int = 40) -> str:
    """The Keras layer for an operator table, else the tensor name (cut at the right
    end to ``width`` characters: its start is the informative part)."""
    name = keras_layer(tensor_name) or tensor_name
    return name if len(name) <= width else name[: width - 3] + "..."
