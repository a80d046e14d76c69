"""Read what a ``.tflite`` file holds without importing TensorFlow.

The file is parsed with the flatbuffer schema module that ``ai_edge_litert``
ships (``ai_edge_litert.schema_py_generated``); the interpreter is never
loaded. That module pulls in ``flatbuffers`` and numpy, so it is imported on
the first call, not when this module is imported: ``edgeprune --help`` stays
cheap.

``inspect_model`` (:mod:`.parse`) returns a frozen :class:`ModelInfo` (tensors, operators,
parameter count, constant bytes, weight sparsity), which
:mod:`edgeprune.presentation.inspect` turns into the text of ``edgeprune inspect``;
``read_constant`` returns
the stored values of one constant tensor as a numpy array.
"""

from edgeprune.tflite.flatbuffer import MAX_MODEL_BYTES, read_model_file
from edgeprune.tflite.info import (
    ModelInfo,
    OperatorInfo,
    TensorInfo,
    TFLiteFormatError,
    TFLiteInvalidError,
    WeightStats,
    WeightTensorStats,
)
from edgeprune.tflite.parse import inspect_model, read_constant

__all__ = [
    "MAX_MODEL_BYTES",
    "ModelInfo",
    "OperatorInfo",
    "TFLiteFormatError",
    "TFLiteInvalidError",
    "TensorInfo",
    "WeightStats",
    "WeightTensorStats",
    "inspect_model",
    "read_constant",
    "read_model_file",
]
