"""The ``compress`` entry of ``report.json``: TFLite Micro weight compression (DECODE).

What the compress stage did (per tensor: the encoding or why it stayed
dense), the bit-exact verification, and the dense int8 model's device check
beside the compressed model's (which is the run's ``stages.check``), so that
a reader sees both side by side and which file each figure came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edgeprune.report.entries import CheckEntry, Stages, _Entry, _optional


@dataclass(frozen=True)
class CompressEntry(_Entry):
    """The compress stage.

    ``model`` is the compressed ``.tflite`` the firmware embeds ("" when
    nothing was compressed: then ``note`` says why and the dense model is
    shipped); ``dense_model`` the uncompressed int8 model it was made from.
    ``compression`` is :meth:`edgeprune.compress.CompressedModel.to_dict`
    without the bytes; ``verification`` :meth:`edgeprune.compress.Verification.to_dict`
    (samples run bit-exact, both arenas). ``dense_check`` is the device check of
    ``dense_model``; ``stopped_fitting`` names the rules the dense model
    passed and the compressed one fails.
    """

    _types: ClassVar[dict[str, Any]] = {"dense_check": CheckEntry, "stopped_fitting": tuple}
    method: str
    model: str
    dense_model: str
    compression: dict
    note: str = ""
    clusters: int | None = None
    verification: dict | None = _optional()
    dense_check: CheckEntry | None = _optional()
    stopped_fitting: tuple[str, ...] = ()
    seconds: float = 0.0


# Stages' compress field holds this entry (entries.py cannot import this module).
Stages._types = {**Stages._types, "compress": CompressEntry}
