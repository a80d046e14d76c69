"""Flash and static RAM that the TFLite Micro runtime adds to a model, per core.

Measured by this project on this machine (method and raw figures:
``docs/tflm-flash-measurement.md``): arm-none-eabi-gcc 12.2.1, ``-Os`` for the
interpreter and the kernels, newlib-nano, ``--gc-sections``, TFLite Micro at
90b983c with CMSIS-NN 4ab83cc, as ELF text+data of a program minus an empty
``main`` and minus the model bytes. Per build:

* the interpreter with an empty ``MicroMutableOpResolver<6>``;
* the interpreter plus ONE kernel, int8-only registration and generic;
* the six kernels of the MLPerf Tiny keyword-spotting (KWS) model together.

One-kernel figures cannot simply be added: each carries helper code the
kernels share (software double-precision and libm routines on the M4F,
quantization helpers). A model's kernel flash is therefore estimated as the
sum of its ops' one-kernel figures minus the shared code counted once per
extra op, with the shared share calibrated so that the estimate reproduces the
measured KWS build exactly. Every figure says it is an estimate and from what
(:attr:`RuntimeFlash.basis`).

Measured: Cortex-M0+, M4F, M7, M33 and M55 (MVE) with CMSIS-NN, and the
M4F with reference kernels. Not measured: the Xtensa cores with ESP-NN; for
those the Cortex-M4F CMSIS-NN measurement stands in, and the basis says so.
"""

from __future__ import annotations

from dataclasses import dataclass

# Static RAM outside the arena with the interpreter and a
# MicroMutableOpResolver<6> as static objects (208 + 228 B), measured on the M4F.
STATIC_RAM_BYTES = 444
KWS_OPS = ("AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE",
           "SOFTMAX")


@dataclass(frozen=True)
class Measurement:
    """One measured build configuration: bytes of text+data."""

    interpreter_bytes: int
    kws_int8_bytes: int  # interpreter + the six KWS kernels, int8-only where TFLM has it
    kws_generic_bytes: int
    ops: dict  # opcode -> (int8-only registration or None if TFLM has none, generic)

    def one_op(self, opcode: str, int8_only: bool) -> int | None:
        if opcode not in self.ops:
            return None
        int8, generic = self.ops[opcode]
        return int8 if int8_only and int8 is not None else generic

    def shared_bytes(self) -> float:
        """Helper code one-kernel figures each include, from the KWS builds."""
        singles = sum(self.one_op(op, True) for op in KWS_OPS)
        kernels = self.kws_int8_bytes - self.interpreter_bytes
        return (singles - kernels) / (len(KWS_OPS) - 1)


MEASURED: dict[tuple[str, str], Measurement] = {
    ('cortex-m0plus', 'cmsis-nn'): Measurement(
        interpreter_bytes=10452, kws_int8_bytes=51816,
        kws_generic_bytes=74232,
        ops={
            'ADD': (14212, 18248),
            'AVERAGE_POOL_2D': (8412, 9008),
            'BATCH_MATMUL': (15580, 18184),
            'CONCATENATION': (None, 3724),
            'CONV_2D': (20612, 31684),
            'DEPTHWISE_CONV_2D': (19428, 27244),
            'DEQUANTIZE': (None, 3224),
            'EXPAND_DIMS': (None, 1136),
            'FULLY_CONNECTED': (18888, 21184),
            'GATHER': (None, 2120),
            'HARD_SWISH': (None, 10908),
            'LEAKY_RELU': (None, 10244),
            'LOGISTIC': (None, 15340),
            'MAXIMUM': (1772, 5796),
            'MAX_POOL_2D': (8540, 9152),
            'MEAN': (None, 14512),
            'MINIMUM': (None, 5796),
            'MUL': (14908, 18104),
            'PACK': (None, 1576),
            'PAD': (2332, 4084),
            'PADV2': (None, 4096),
            'QUANTIZE': (None, 12764),
            'RELU': (None, 10408),
            'RELU6': (None, 4780),
            'RESHAPE': (None, 1756),
            'RESIZE_NEAREST_NEIGHBOR': (None, 5320),
            'SHAPE': (None, 720),
            'SOFTMAX': (18932, 20324),
            'SPLIT': (None, 1704),
            'SQUEEZE': (None, 1188),
            'STRIDED_SLICE': (None, 7588),
            'SUB': (None, 16776),
            'SUM': (None, 12804),
            'SVDF': (14512, 19848),
            'TANH': (None, 15608),
            'TRANSPOSE': (1276, 2148),
            'TRANSPOSE_CONV': (21060, 23092),
            'UNIDIRECTIONAL_SEQUENCE_LSTM': (22848, 28100),
            'UNPACK': (None, 1372),
        }),
    ('cortex-m4f', 'cmsis-nn'): Measurement(
        interpreter_bytes=10552, kws_int8_bytes=44948,
        kws_generic_bytes=72564,
        ops={
            'ADD': (7616, 11552),
            'AVERAGE_POOL_2D': (5640, 6152),
            'BATCH_MATMUL': (8692, 10932),
            'CONCATENATION': (None, 3104),
            'CONV_2D': (13588, 29460),
            'DEPTHWISE_CONV_2D': (12452, 20004),
            'DEQUANTIZE': (None, 3040),
            'EXPAND_DIMS': (None, 1312),
            'FULLY_CONNECTED': (11280, 14448),
            'GATHER': (None, 2304),
            'HARD_SWISH': (None, 4520),
            'LEAKY_RELU': (None, 4680),
            'LOGISTIC': (None, 7688),
            'MAXIMUM': (1888, 5312),
            'MAX_POOL_2D': (5832, 6408),
            'MEAN': (None, 7424),
            'MINIMUM': (None, 5312),
            'MUL': (7788, 10380),
            'PACK': (None, 1408),
            'PAD': (1952, 3552),
            'PADV2': (None, 3584),
            'QUANTIZE': (None, 5600),
            'RELU': (None, 4648),
            'RELU6': (None, 2568),
            'RESHAPE': (None, 1408),
            'RESIZE_NEAREST_NEIGHBOR': (None, 2400),
            'SHAPE': (None, 736),
            'SOFTMAX': (9468, 10716),
            'SPLIT': (None, 1472),
            'SQUEEZE': (None, 1376),
            'STRIDED_SLICE': (None, 5184),
            'SUB': (None, 9452),
            'SUM': (None, 6656),
            'SVDF': (9336, 11860),
            'TANH': (None, 7880),
            'TRANSPOSE': (1504, 2368),
            'TRANSPOSE_CONV': (13312, 15264),
            'UNIDIRECTIONAL_SEQUENCE_LSTM': (12960, 18328),
            'UNPACK': (None, 1248),
        }),
    ('cortex-m4f', 'reference'): Measurement(
        interpreter_bytes=10552, kws_int8_bytes=34540,
        kws_generic_bytes=34540,
        ops={
            'ADD': (None, 9388),
            'AVERAGE_POOL_2D': (None, 5640),
            'BATCH_MATMUL': (None, 8772),
            'CONCATENATION': (None, 3104),
            'CONV_2D': (None, 9680),
            'DEPTHWISE_CONV_2D': (None, 9056),
            'DEQUANTIZE': (None, 3040),
            'EXPAND_DIMS': (None, 1312),
            'FULLY_CONNECTED': (None, 7824),
            'GATHER': (None, 2304),
            'HARD_SWISH': (None, 4520),
            'LEAKY_RELU': (None, 4680),
            'LOGISTIC': (None, 7688),
            'MAXIMUM': (None, 5184),
            'MAX_POOL_2D': (None, 5736),
            'MEAN': (None, 7424),
            'MINIMUM': (None, 5184),
            'MUL': (None, 9004),
            'PACK': (None, 1408),
            'PAD': (None, 3200),
            'PADV2': (None, 3232),
            'QUANTIZE': (None, 5600),
            'RELU': (None, 4648),
            'RELU6': (None, 2568),
            'RESHAPE': (None, 1408),
            'RESIZE_NEAREST_NEIGHBOR': (None, 2400),
            'SHAPE': (None, 736),
            'SOFTMAX': (None, 8924),
            'SPLIT': (None, 1472),
            'SQUEEZE': (None, 1376),
            'STRIDED_SLICE': (None, 5184),
            'SUB': (None, 9452),
            'SUM': (None, 6656),
            'SVDF': (None, 8564),
            'TANH': (None, 7880),
            'TRANSPOSE': (None, 1920),
            'TRANSPOSE_CONV': (None, 9248),
            'UNIDIRECTIONAL_SEQUENCE_LSTM': (None, 14424),
            'UNPACK': (None, 1248),
        }),
    ('cortex-m7', 'cmsis-nn'): Measurement(
        interpreter_bytes=10552, kws_int8_bytes=42724,
        kws_generic_bytes=70180,
        ops={
            'ADD': (4960, 8864),
            'AVERAGE_POOL_2D': (4360, 4872),
            'BATCH_MATMUL': (6228, 8468),
            'CONCATENATION': (None, 3104),
            'CONV_2D': (10900, 26804),
            'DEPTHWISE_CONV_2D': (9796, 17348),
            'DEQUANTIZE': (None, 1376),
            'EXPAND_DIMS': (None, 1312),
            'FULLY_CONNECTED': (8592, 11760),
            'GATHER': (None, 2304),
            'HARD_SWISH': (None, 2024),
            'LEAKY_RELU': (None, 2216),
            'LOGISTIC': (None, 5684),
            'MAXIMUM': (1888, 5312),
            'MAX_POOL_2D': (4552, 5096),
            'MEAN': (None, 4928),
            'MINIMUM': (None, 5312),
            'MUL': (5196, 7788),
            'PACK': (None, 1408),
            'PAD': (1952, 3552),
            'PADV2': (None, 3584),
            'QUANTIZE': (None, 2880),
            'RELU': (None, 2088),
            'RELU6': (None, 1384),
            'RESHAPE': (None, 1408),
            'RESIZE_NEAREST_NEIGHBOR': (None, 2176),
            'SHAPE': (None, 704),
            'SOFTMAX': (7372, 8492),
            'SPLIT': (None, 1472),
            'SQUEEZE': (None, 1376),
            'STRIDED_SLICE': (None, 5024),
            'SUB': (None, 6828),
            'SUM': (None, 4160),
            'SVDF': (6840, 9124),
            'TANH': (None, 5796),
            'TRANSPOSE': (1472, 2368),
            'TRANSPOSE_CONV': (10656, 12576),
            'UNIDIRECTIONAL_SEQUENCE_LSTM': (10172, 15332),
            'UNPACK': (None, 1248),
        }),
    ('cortex-m33', 'cmsis-nn'): Measurement(
        interpreter_bytes=10264, kws_int8_bytes=44548,
        kws_generic_bytes=72188,
        ops={
            'ADD': (7412, 11328),
            'AVERAGE_POOL_2D': (5484, 6004),
            'BATCH_MATMUL': (8604, 10848),
            'CONCATENATION': (None, 3032),
            'CONV_2D': (13448, 29336),
            'DEPTHWISE_CONV_2D': (12344, 19928),
            'DEQUANTIZE': (None, 2952),
            'EXPAND_DIMS': (None, 1240),
            'FULLY_CONNECTED': (11092, 14244),
            'GATHER': (None, 2216),
            'HARD_SWISH': (None, 4432),
            'LEAKY_RELU': (None, 4608),
            'LOGISTIC': (None, 7532),
            'MAXIMUM': (1800, 5220),
            'MAX_POOL_2D': (5676, 6236),
            'MEAN': (None, 7376),
            'MINIMUM': (None, 5224),
            'MUL': (7596, 10180),
            'PACK': (None, 1400),
            'PAD': (1864, 3480),
            'PADV2': (None, 3492),
            'QUANTIZE': (None, 5432),
            'RELU': (None, 4488),
            'RELU6': (None, 2472),
            'RESHAPE': (None, 1332),
            'RESIZE_NEAREST_NEIGHBOR': (None, 2092),
            'SHAPE': (None, 712),
            'SOFTMAX': (9276, 10540),
            'SPLIT': (None, 1460),
            'SQUEEZE': (None, 1292),
            'STRIDED_SLICE': (None, 4940),
            'SUB': (None, 9260),
            'SUM': (None, 6692),
            'SVDF': (9256, 11596),
            'TANH': (None, 7720),
            'TRANSPOSE': (1400, 2292),
            'TRANSPOSE_CONV': (13172, 15120),
            'UNIDIRECTIONAL_SEQUENCE_LSTM': (12764, 18132),
            'UNPACK': (None, 1248),
        }),
    ('cortex-m55', 'cmsis-nn'): Measurement(
        interpreter_bytes=10360, kws_int8_bytes=40024,
        kws_generic_bytes=64392,
        ops={
            'ADD': (4104, 7640),
            'AVERAGE_POOL_2D': (4988, 5536),
            'BATCH_MATMUL': (6852, 9252),
            'CONCATENATION': (None, 3196),
            'CONV_2D': (7512, 20364),
            'DEPTHWISE_CONV_2D': (12532, 19436),
            'DEQUANTIZE': (None, 1340),
            'EXPAND_DIMS': (None, 1292),
            'FULLY_CONNECTED': (7728, 11568),
            'GATHER': (None, 2420),
            'HARD_SWISH': (None, 2008),
            'LEAKY_RELU': (None, 2168),
            'LOGISTIC': (None, 5648),
            'MAXIMUM': (1916, 5512),
            'MAX_POOL_2D': (4416, 4992),
            'MEAN': (None, 5008),
            'MINIMUM': (None, 5516),
            'MUL': (4756, 7404),
            'PACK': (None, 1632),
            'PAD': (1980, 3660),
            'PADV2': (None, 3672),
            'QUANTIZE': (None, 2848),
            'RELU': (None, 2040),
            'RELU6': (None, 1348),
            'RESHAPE': (None, 1356),
            'RESIZE_NEAREST_NEIGHBOR': (None, 2100),
            'SHAPE': (None, 724),
            'SOFTMAX': (7560, 8680),
            'SPLIT': (None, 1596),
            'SQUEEZE': (None, 1324),
            'STRIDED_SLICE': (None, 5012),
            'SUB': (None, 7012),
            'SUM': (None, 4276),
            'SVDF': (6792, 9352),
            'TANH': (None, 5792),
            'TRANSPOSE': (1668, 2612),
            'TRANSPOSE_CONV': (8752, 10672),
            'UNIDIRECTIONAL_SEQUENCE_LSTM': (10624, 15864),
            'UNPACK': (None, 1428),
        }),
}

# Cores without a measurement of their own, and the build that stands in.
STAND_INS = {
    # ESP-NN on Xtensa was not measured (no Xtensa toolchain in Debian).
    ("xtensa-lx6", "esp-nn"): ("cortex-m4f", "cmsis-nn"),
    ("xtensa-lx7", "esp-nn"): ("cortex-m4f", "cmsis-nn"),
}


@dataclass(frozen=True)
class RuntimeFlash:
    """Flash the TFLite Micro runtime adds for one model on one core (estimate)."""

    interpreter_bytes: int
    kernel_bytes: int
    ops: int
    basis: str  # what the estimate rests on, in words

    @property
    def total_bytes(self) -> int:
        return self.interpreter_bytes + self.kernel_bytes


def runtime_flash(core: str, kernels: str, ops: dict[str, bool]) -> RuntimeFlash:
    """Estimate the runtime flash for a model registering ``ops``.

    ``ops`` maps each distinct opcode to whether the op resolver registers its
    int8-only kernel (what :func:`edgeprune.firmware.resolver.resolver_calls` emits).
    """
    key = (core, kernels)
    if key in MEASURED:
        used, note = key, f"measured on {core} with {kernels}"
    else:
        used = STAND_INS.get(key, ("cortex-m4f", "cmsis-nn"))
        note = (f"no measurement for {core} with {kernels}: the {used[0]} {used[1]} "
                f"measurement stands in")
    m = MEASURED[used]
    largest = max(max(v for v in pair if v is not None) for pair in m.ops.values())
    sizes, unmeasured = [], []
    for opcode, int8_only in sorted(ops.items()):
        size = m.one_op(opcode, int8_only)
        if size is None:
            unmeasured.append(opcode)
            size = largest
        sizes.append(size)
    shared = m.shared_bytes()
    kernels_bytes = 0
    if sizes:
        kernels_bytes = max(max(sizes), int(round(sum(sizes) - (len(sizes) - 1) * shared)))
    basis = (f"estimate: {note}; one-kernel sizes less shared helper code counted once "
             f"({shared:,.0f} B, calibrated on the measured keyword-spotting build)")
    if unmeasured:
        basis += (f"; {', '.join(unmeasured)} not measured, counted as the largest measured "
                  f"kernel ({largest:,} B)")
    return RuntimeFlash(m.interpreter_bytes, kernels_bytes, len(ops), basis)
