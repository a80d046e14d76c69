"""The digits CNN's firmware files as `edgeprune firmware` writes them (issue 19's
layout: every file and symbol named after the model), for the project template
tests and the checks in benchmarks/project_check/."""

from __future__ import annotations

NAME = "digits_cnn"
CAMEL = "DigitsCnn"
LABELS = [str(d) for d in range(10)]


def firmware(model: bytes, arena: int | None, name: str = NAME) -> dict[str, str]:
    """The firmware files of ``model`` named ``name``, with the digits labels."""
    from edgeprune.firmware.emit import ModelFacts, render

    return render(model, f"{name}.tflite", arena, name, ModelFacts(labels=tuple(LABELS)))
