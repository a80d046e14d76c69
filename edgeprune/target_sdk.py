"""The ``[sdk]`` table of a device profile: the SDKs whose project templates a
board's firmware gets, and the board's id in each (:mod:`edgeprune.firmware.projects`).

Kept apart from :mod:`edgeprune.target` for its size; :mod:`edgeprune.target`
re-exports every name here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

#: The SDKs whose project templates edgeprune writes (edgeprune/firmware/projects.py).
SDKS = ("arduino", "esp-idf", "pico-sdk", "platformio", "zephyr")
#: What the board id of each SDK in a profile's [sdk] table looks like (written into its
#: build files as is, so it must be one word), and an example.
SDK_BOARD_FORMS = {
    "arduino": (r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+", "arduino:mbed_nano:nano33ble"),
    "esp-idf": (r"esp32[a-z0-9]*", "esp32s3"),
    "pico-sdk": (r"[A-Za-z0-9_]+", "pico2"),
    "platformio": (r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+", "espressif32:esp32dev"),
    "zephyr": (r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]*)*", "stm32h747i_disco/stm32h747xx/m7"),
}
#: Cores each SDK builds for (None: any MCU core).
SDK_CORES = {
    "esp-idf": frozenset({"xtensa-lx6", "xtensa-lx7"}),
    "pico-sdk": frozenset({"cortex-m0plus", "cortex-m33"}),
}


@dataclass(frozen=True)
class SdkBoard:
    """One SDK the board's engineers build with, and the board's id in it (the Arduino
    FQBN, ESP-IDF's IDF_TARGET, pico-sdk's PICO_BOARD, ``platform:board`` for
    PlatformIO, Zephyr's board target)."""

    sdk: str
    board: str


def sdk_table(where: str, data: dict, top: dict) -> tuple[SdkBoard, ...]:
    """The validated ``[sdk]`` table: SDK name -> the board's id in that SDK.

    Raises:
        TargetError: a table that is not one, on a Linux target, an unknown SDK,
            a board id not of that SDK's form, or an SDK that does not build for the core.
    """
    from edgeprune.target import TargetError  # not at the top: target imports this module

    table = data.get("sdk")
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise TargetError(
            f"{where}: sdk must be a table of SDK = board id, such as "
            f'[sdk] esp-idf = "esp32s3"; allowed SDKs: {", ".join(SDKS)}'
        )
    if top["kind"] != "mcu":
        raise TargetError(
            f"{where}: [sdk] is for kind = 'mcu' only: a Linux target loads the "
            f".tflite file itself and gets no firmware project; remove the table"
        )
    boards = []
    for sdk, board in table.items():
        if sdk not in SDKS:
            close = difflib.get_close_matches(sdk, SDKS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise TargetError(
                f"{where}: sdk.{sdk} is not an SDK edgeprune writes projects for; "
                f"{hint}allowed: {', '.join(SDKS)}"
            )
        form, example = SDK_BOARD_FORMS[sdk]
        if not isinstance(board, str) or not re.fullmatch(form, board):
            raise TargetError(
                f"{where}: sdk.{sdk} = {board!r} is not a board id of {sdk} "
                f"(one word such as {example!r}); use the id {sdk} knows the board by"
            )
        cores = SDK_CORES.get(sdk)
        if cores is not None and top["core"] not in cores:
            raise TargetError(
                f"{where}: sdk.{sdk} builds for {', '.join(sorted(cores))}, not "
                f"core = {top['core']!r}; remove sdk.{sdk} or fix the core"
            )
        boards.append(SdkBoard(sdk, board))
    return tuple(boards)
