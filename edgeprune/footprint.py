"""Flash and static RAM that the TFLite Micro runtime adds to a model, per core family.

The figures are measurements, not from this machine: the table below was
measured with GCC 12.2 ``-Os``, newlib-nano and ``--gc-sections`` against
TFLite Micro at commit 90b983c, as the ELF's text+data minus an empty
``main`` and minus the model bytes (source: the project's issue 3, which
records the measurement). Only two kinds of build were measured:

* the interpreter with no kernel registered (11.3-11.6 KB on Cortex-M0+, M4F,
  M7, M33 and M55; we take the upper end);
* the interpreter plus the six kernels of the MLPerf Tiny keyword-spotting
  model (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE,
  FULLY_CONNECTED, SOFTMAX) registered int8-only.

Per-kernel sizes were not measured, so a model's kernel flash is estimated
as the measured kernel share of the keyword-spotting build divided by its six
kernels, times the model's number of distinct ops. Every figure derived here
says it is an estimate and from what (:attr:`RuntimeFlash.basis`).
"""

from __future__ import annotations

from dataclasses import dataclass

KB = 1024

INTERPRETER_FLASH_BYTES = int(11.6 * KB)
STATIC_RAM_BYTES = int(0.7 * KB)  # outside the arena: 0.6-0.7 KB measured, upper end
KWS_KERNEL_COUNT = 6

# Interpreter + the six keyword-spotting kernels registered int8-only.
KWS_INT8_FLASH_BYTES = {
    ("cortex-m4f", "cmsis-nn"): int(53.4 * KB),
    ("cortex-m7", "cmsis-nn"): int(51.7 * KB),
    ("cortex-m33", "cmsis-nn"): int(53.7 * KB),
    ("cortex-m55", "cmsis-nn"): int(44.7 * KB),  # MVE
    ("cortex-m4f", "reference"): int(41.3 * KB),
}
# The same kernels registered with the generic Register_X() calls, which pull
# in every dtype's kernel.
KWS_GENERIC_FLASH_BYTES = int(84 * KB)


@dataclass(frozen=True)
class RuntimeFlash:
    """Flash the TFLite Micro runtime adds for one model on one core (estimate)."""

    interpreter_bytes: int
    kernel_bytes: int
    ops: int
    int8_only: bool
    basis: str  # what the estimate rests on, in words

    @property
    def total_bytes(self) -> int:
        return self.interpreter_bytes + self.kernel_bytes


def runtime_flash(core: str, kernels: str, distinct_ops: int, int8_only: bool = True
                  ) -> RuntimeFlash:
    """Estimate the runtime flash for a model with ``distinct_ops`` kernels.

    ``int8_only`` means the op resolver registers int8-only kernels (what the
    emitted ``model_ops.h`` does where TFLite Micro offers them); otherwise
    the generic registrations' measurement is used.
    """
    key = (core, kernels)
    if not int8_only:
        per_op = (KWS_GENERIC_FLASH_BYTES - INTERPRETER_FLASH_BYTES) / KWS_KERNEL_COUNT
        basis = ("estimate: interpreter 11.6 KB + the measured 84 KB keyword-spotting build "
                 "with generic registrations, per kernel")
    elif key in KWS_INT8_FLASH_BYTES:
        per_op = (KWS_INT8_FLASH_BYTES[key] - INTERPRETER_FLASH_BYTES) / KWS_KERNEL_COUNT
        basis = (f"estimate: interpreter 11.6 KB + the measured keyword-spotting int8 build on "
                 f"{core} with {kernels} ({KWS_INT8_FLASH_BYTES[key] / KB:.1f} KB for 6 "
                 f"kernels), per kernel")
    else:
        worst = max(KWS_INT8_FLASH_BYTES.values())
        per_op = (worst - INTERPRETER_FLASH_BYTES) / KWS_KERNEL_COUNT
        basis = (f"estimate: no measurement for {core} with {kernels}; the largest measured "
                 f"int8 keyword-spotting build ({worst / KB:.1f} KB for 6 kernels) per kernel, "
                 f"an upper bound only as far as that core is comparable")
    return RuntimeFlash(INTERPRETER_FLASH_BYTES, int(round(per_op * distinct_ops)),
                        distinct_ops, int8_only, basis)
