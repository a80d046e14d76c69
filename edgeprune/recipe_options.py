"""The recipe's option sections: one frozen dataclass per TOML table ([train],
[structured], [prune], [cluster], [quantize], [validate], [budget]), each field carrying
its flag, help text and allowed values; and the choices the options take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEDULES = ("polynomial_decay", "constant")
PATTERNS = ("unstructured", "m_by_n", "block")
# pqat, cqat and pcqat are quantization-aware training with tfmot's collaborative
# schemes (prune-, cluster-, prune-and-cluster-preserving); they convert to int8.
QAT_MODES = ("pqat", "cqat", "pcqat")
QUANTIZE_MODES = ("int8", "dynamic", "float16", "float32", *QAT_MODES)
COMPRESS_METHODS = ("none", "prune", "lut", "both")
# TFLite Micro's LUT decoder indexes at most 2**7 values (edgeprune.compress.plan).
MAX_CLUSTERS = 128


def converted_dtype(mode: str) -> str:
    """The converter mode that ``quantize.mode`` ends in: a QAT mode converts to int8."""
    return "int8" if mode in QAT_MODES else mode


DENSE_CHOICES = ("auto", "per_channel", "per_tensor")


def option(
    default: Any,
    flag: str,
    help: str,
    *,
    choices=None,
    lo=None,
    hi=None,
    hi_open=False,
    lo_open=False,
    kind=None,
    factory=None,
):
    """A dataclass field that carries its flag, help text and allowed values (``choices``;
    range ``lo``..``hi``, either end excluded with ``lo_open``/``hi_open``); ``kind="pair"``
    reads ``2:4`` or ``1x4``."""
    meta = {
        "flag": flag,
        "help": help,
        "choices": choices,
        "lo": lo,
        "hi": hi,
        "hi_open": hi_open,
        "lo_open": lo_open,
        "kind": kind,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainOptions:
    """How edgeprune trains a built-in baseline model (ignored for a user's model)."""

    epochs: int = option(20, "--train-epochs", "Epochs to train a built-in baseline.", lo=1)
    batch_size: int = option(32, "--train-batch-size", "Batch size for baseline training.", lo=1)
    learning_rate: float = option(
        2e-3,
        "--train-learning-rate",
        "Adam learning rate for baseline training.",
        lo=0.0,
        lo_open=True,
    )


@dataclass(frozen=True)
class PruneOptions:
    """Magnitude pruning with tfmot and the fine-tuning that goes with it."""

    schedule: str = option("polynomial_decay", "--schedule", "Pruning schedule.", choices=SCHEDULES)
    final_sparsity: float = option(
        0.75,
        "--sparsity",
        "Fraction of weights to zero in each pruned layer.",
        lo=0.0,
        hi=1.0,
        hi_open=True,
    )
    initial_sparsity: float = option(
        0.0,
        "--initial-sparsity",
        "Sparsity at the first step (polynomial_decay).",
        lo=0.0,
        hi=1.0,
        hi_open=True,
    )
    power: float = option(
        3.0, "--power", "Exponent of the polynomial_decay schedule.", lo=0.0, lo_open=True
    )
    pattern: str = option(
        "unstructured",
        "--pattern",
        "Sparsity pattern: any weight, m zeros in every n, or whole blocks.",
        choices=PATTERNS,
    )
    m_by_n: tuple[int, int] = option(
        (2, 4), "--m-by-n", "For pattern m_by_n: m zeros in every n weights, as M:N.", kind="pair"
    )
    block_size: tuple[int, int] = option(
        (1, 4),
        "--block-size",
        "For pattern block: block height and width, as HxW "
        "(2-D kernels, that is Dense layers, only).",
        kind="pair",
    )
    block_pooling: str = option(
        "AVG", "--block-pooling", "How a block's magnitude is pooled.", choices=("AVG", "MAX")
    )
    epochs: int = option(10, "--epochs", "Fine-tuning epochs while pruning.", lo=1)
    batch_size: int = option(32, "--batch-size", "Fine-tuning batch size.", lo=1)
    learning_rate: float = option(
        1e-3, "--learning-rate", "Adam learning rate for fine-tuning.", lo=0.0, lo_open=True
    )
    begin_step: int | None = option(
        None, "--begin-step", "Step at which pruning starts (default 0).", lo=0
    )
    end_step: int | None = option(
        None,
        "--end-step",
        "Step at which the schedule reaches final_sparsity (default: derived from end_fraction).",
        lo=1,
    )
    end_fraction: float = option(
        0.7,
        "--end-fraction",
        "Fraction of the fine-tuning steps by which the schedule ends; "
        "the rest recovers accuracy at the final sparsity.",
        lo=0.0,
        hi=1.0,
    )
    frequency: int | None = option(
        None,
        "--frequency",
        "Steps between mask updates (default: derived, about 16 updates over the schedule).",
        lo=1,
    )
    include: tuple[str, ...] = option(
        (), "--include", "Prune only these layers (names or layer types).", factory=tuple
    )
    exclude: tuple[str, ...] = option(
        (), "--exclude", "Never prune these layers (names or layer types).", factory=tuple
    )


@dataclass(frozen=True)
class ClusterOptions:
    """Weight clustering with tfmot (``clusters = 0``: off): each weighted layer's kernel
    takes at most ``clusters`` distinct values (pruned zeros kept as one of them), the
    step before TFLite Micro's LUT compression. Runs in the quantize stage, before
    conversion."""

    clusters: int = option(
        0,
        "--clusters",
        f"Distinct weight values per layer after clustering (0: no clustering; "
        f"2 to {MAX_CLUSTERS}, what a LUT index of 1-7 bits can address).",
        lo=0,
        hi=MAX_CLUSTERS,
    )
    epochs: int = option(2, "--cluster-epochs", "Fine-tuning epochs while clustering.", lo=1)
    batch_size: int = option(32, "--cluster-batch-size", "Clustering fine-tuning batch.", lo=1)
    learning_rate: float = option(
        1e-4,
        "--cluster-learning-rate",
        "Adam learning rate of the clustering fine-tuning.",
        lo=0.0,
        lo_open=True,
    )


STRUCTURED_GOALS = ("none", "width", "params", "macs", "fit")
IMPORTANCE = ("l1", "l2", "bn_scale", "taylor", "obd")


@dataclass(frozen=True)
class StructuredPruning:
    """Structured pruning: whole neurons, filters and channels removed and the
    model rebuilt narrower, before the tfmot stage (``goal = "none"``: off)."""

    goal: str = option(
        "none",
        "--structured",
        "Structured pruning goal: none (off); width (keep a fraction of the "
        "channels); params or macs (divide them by a factor); fit (the largest "
        "model that passes the --target device's flash, RAM and latency budgets).",
        choices=STRUCTURED_GOALS,
    )
    width: float = option(
        0.5,
        "--width",
        "Goal width: fraction of the prunable channels kept.",
        lo=0.0,
        hi=1.0,
        lo_open=True,
    )
    reduction: float = option(
        2.0,
        "--reduction",
        "Goal params or macs: factor to divide them by (2.0 halves them).",
        lo=1.0,
    )
    importance: str = option(
        "l1",
        "--importance",
        "Channel importance: L1 or L2 norm of the kernel, BatchNorm scale, "
        "first-order Taylor or Optimal Brain Damage (both on training data).",
        choices=IMPORTANCE,
    )
    ranking: str = option(
        "global",
        "--ranking",
        "Rank channels across all layers (global, with a per-layer floor) or "
        "cut every layer by the same ratio (uniform).",
        choices=("global", "uniform"),
    )
    floor: float = option(
        0.1,
        "--layer-floor",
        "Global ranking: fraction of each layer's channels always kept.",
        lo=0.0,
        hi=1.0,
        hi_open=True,
    )
    rounds: int = option(
        1,
        "--structured-rounds",
        "Prune-and-fine-tune rounds that approach the goal geometrically (1: one-shot).",
        lo=1,
        hi=50,
    )
    epochs: int = option(
        5, "--structured-epochs", "Fine-tuning epochs after each round (0: none).", lo=0
    )
    batch_size: int = option(
        32, "--structured-batch-size", "Fine-tuning batch size of the structured rounds.", lo=1
    )
    learning_rate: float = option(
        1e-3,
        "--structured-learning-rate",
        "Adam learning rate of the structured rounds.",
        lo=0.0,
        lo_open=True,
    )
    min_accuracy: float | None = option(
        None,
        "--min-accuracy",
        "Stop the rounds when validation accuracy falls below "
        "this and keep the round before (classification).",
        lo=0.0,
        hi=1.0,
    )
    samples: int = option(
        256, "--importance-samples", "Training samples the taylor and obd criteria use.", lo=1
    )
    channel_multiple: int | None = option(
        None,
        "--channel-multiple",
        "Round each layer's kept channels to a multiple of this (1: not rounded). "
        "Default: the --target profile's channel_multiple (4 for CMSIS-NN, 8 for "
        "ESP-NN kernels); 1 without a target.",
        lo=1,
        hi=256,
    )


@dataclass(frozen=True)
class QuantizeOptions:
    """TFLite conversion."""

    mode: str = option(
        "int8",
        "--quantize",
        "TFLite conversion mode; pqat, cqat and pcqat fine-tune with tfmot's prune-, "
        "cluster- or prune-and-cluster-preserving quantization-aware training, then "
        "convert to int8 and check that the zeros and clusters survived.",
        choices=QUANTIZE_MODES,
    )
    dense: str = option(
        "auto",
        "--dense",
        "int8 Dense weights: auto (on TFLite Micro targets, per-tensor when that "
        "measures a smaller arena within the quantization budget, else "
        "per-channel), per_channel or per_tensor.",
        choices=DENSE_CHOICES,
    )
    calibration_samples: int = option(
        200,
        "--calibration-samples",
        "Representative samples for int8 calibration (from x_calib "
        "if the data has it, else a seeded sample of x_train).",
        lo=1,
    )
    max_accuracy_drop: float = option(
        0.02,
        "--max-accuracy-drop",
        "Quantization budget (classification): accuracy the "
        "converted model may lose against the float model it "
        "came from; more fails the run with exit code 4.",
        lo=0.0,
        hi=1.0,
    )
    qat_epochs: int = option(
        2, "--qat-epochs", "pqat, cqat, pcqat: quantization-aware fine-tuning epochs.", lo=1
    )
    qat_batch_size: int = option(
        32, "--qat-batch-size", "pqat, cqat, pcqat: fine-tuning batch size.", lo=1
    )
    qat_learning_rate: float = option(
        1e-4,
        "--qat-learning-rate",
        "pqat, cqat, pcqat: Adam learning rate of the fine-tuning.",
        lo=0.0,
        lo_open=True,
    )
    max_mse_increase: float = option(
        0.25,
        "--max-mse-increase",
        "Quantization budget (regression): relative MSE increase "
        "allowed against the float model; more fails with exit "
        "code 4.",
        lo=0.0,
    )


@dataclass(frozen=True)
class ValidateOptions:
    """On-device validation: what counts as the model still doing its job."""

    max_accuracy_drop: float = option(
        0.03,
        "--max-validation-drop",
        "Accuracy the model may lose on the runner against the "
        "float baseline on the same samples; more exits 4.",
        lo=0.0,
        hi=1.0,
    )
    max_mse_increase: float = option(
        0.5,
        "--max-validation-mse-increase",
        "Regression: relative MSE increase allowed against the float baseline; more exits 4.",
        lo=0.0,
    )
    min_agreement: float = option(
        0.95,
        "--min-agreement",
        "Fraction of samples whose result matches the host reference "
        "(same class; regression: every output within 1 LSB); less "
        "exits 4.",
        lo=0.0,
        hi=1.0,
    )
    samples: int | None = option(
        None, "--samples", "Validate on the first N samples of the split (default: all).", lo=1
    )
    timeout_s: float = option(
        10.0,
        "--device-timeout",
        "Seconds any one device call may take before the device counts as silent.",
        lo=0.0,
        lo_open=True,
    )
    remote_python: str = option(
        "python3",
        "--remote-python",
        "ssh runner: the board's Python, with numpy and tflite_runtime "
        "or ai_edge_litert (a path for a virtualenv's).",
    )
    ssh_config: str | None = option(
        None,
        "--ssh-config",
        "ssh runner: an ssh config file to use instead of ~/.ssh/config (ssh -F).",
    )
    ssh_key: str | None = option(
        None,
        "--ssh-key",
        "ssh runner: the private key to log in with (ssh -i); default: "
        "the ssh config's and the agent's.",
    )


@dataclass(frozen=True)
class BudgetOptions:
    """Overrides of the target's budgets (unset: the target's own; a target sets no
    latency budget, so without one here latency is reported, not judged)."""

    max_flash_bytes: int | None = option(
        None,
        "--max-flash-bytes",
        "Flash budget, bytes: model + runtime + reserve on an MCU, the model file on Linux.",
        lo=1,
    )
    max_ram_bytes: int | None = option(
        None,
        "--max-ram-bytes",
        "RAM budget, bytes: arena + runtime + reserve on an MCU, the memory the model "
        "adds to a process on Linux.",
        lo=1,
    )
    max_latency_ms: float | None = option(
        None,
        "--max-latency-ms",
        "Latency budget for one inference, ms (default: none; the estimate is "
        "reported, not judged).",
        lo=0.0,
        lo_open=True,
    )
    cost_model: str | None = option(
        None,
        "--cost-model",
        "Cost model for the latency estimate: a shipped id or a .toml "
        "written by `edgeprune calibrate --out` (default: the "
        "target's).",
    )
    force_cost_model: bool = option(
        False,
        "--force-cost-model",
        "Use --cost-model even when it was fitted for another core or kernel "
        "library than the target's (the estimate then says so).",
    )


@dataclass(frozen=True)
class CompressOptions:
    """TFLite Micro weight compression (DECODE) after quantization; TFLite Micro targets only."""

    method: str = option(
        "none",
        "--compress",
        "Compress int8 weights for TFLite Micro's DECODE operator: prune (store the "
        "non-zero values and a bit mask), lut (clustered weights as a value table and "
        "indices: cluster them with --clusters), both (the smaller per tensor), or none.",
        choices=COMPRESS_METHODS,
    )
    max_decoded_bytes: int | None = option(
        None,
        "--max-decoded-bytes",
        "Leave weight tensors larger than this dense: a decoded tensor takes arena "
        "while its consumer runs (default: no limit).",
        lo=0,
    )
