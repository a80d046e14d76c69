"""Class labels for the firmware: read from a text file, checked against the model, and
rendered as ``labels_<name>.h`` (``k<Name>Labels[]``, ``k<Name>LabelCount``).

A labels file holds one label a line, in the order of the model's output
units; blank lines at its end are ignored. The built-in data sets know their
labels (:data:`BUILTIN_LABELS`). Every function here is pure
except :func:`read_labels`, which reads one file.
"""

from __future__ import annotations

import os

from edgeprune.errors import BadInputError
from edgeprune.firmware.model_files import Names, comment_text
from edgeprune.tflite import ModelInfo

# A labels file is a short list; anything larger is not one.
MAX_LABELS_BYTES = 1 << 20

# The class names of the built-in data sets (edgeprune.data.BUILTIN_DATASETS), in
# label order. The synthetic sets carry the names of the MLPerf Tiny tasks they stand
# in for: their samples are generated patterns, so the names say which output is
# which, not what a pattern shows. ad_synthetic is a regression: no classes. The
# orders are MLPerf Tiny's reference training code (github.com/mlcommons/tiny, commit
# 1afd2c98, benchmark/training/):
# - keyword spotting: keyword_spotting/get_dataset.py and make_bin_files.py,
#   word_labels = ["Down", "Go", "Left", "No", "Off", "On", "Right", "Stop", "Up",
#   "Yes", "Silence", "Unknown"] (lower-cased here). TFLite Micro's micro_speech
#   example is another model with another order (4 classes, kCategoryLabels =
#   silence, unknown, yes, no): do not mix the two;
# - visual wake words: visual_wake_words/generate_y_labels.py writes label 1 for
#   person/ and 0 for non_person/, and trained_models/vww/vww_model_settings.cc has
#   kNotAPersonIndex = 0, kPersonIndex = 1 ("notperson", "person");
# - image classification: CIFAR-10's batches.meta label_names, which
#   image_classification/train.py reads and lists in this order.
BUILTIN_LABELS: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(d) for d in range(10)),
    "kws_synthetic": tuple("down go left no off on right stop up yes silence unknown".split()),
    "vww_synthetic": ("no_person", "person"),
    "ic_synthetic": tuple("airplane automobile bird cat deer dog frog horse ship truck".split()),
    # scikit-learn's target_names of its bundled tabular sets (for tree models)
    "breast_cancer": ("malignant", "benign"),
    "wine": ("class_0", "class_1", "class_2"),
}


def label_names(dataset: str | None) -> tuple[str, ...] | None:
    """The class names of built-in data set ``dataset``, in label order, or None when
    it has none (a regression set, an ``.npz`` file, None)."""
    return BUILTIN_LABELS.get(dataset) if dataset else None


def read_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The labels in the UTF-8 text file at ``path``, one a line, spaces around each
    stripped; blank lines at the end are dropped.

    Raises:
        BadInputError: the file is missing, not a regular file, over 1 MiB, not
            UTF-8, holds no label, or a blank line before its last label.
    """
    shown = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            if not os.path.isfile(path):
                raise BadInputError(f"labels file {shown} is not a regular file; give a text file")
            raw = fh.read(MAX_LABELS_BYTES + 1)
    except OSError as exc:
        raise BadInputError(
            f"cannot read labels file {shown}: {exc.strerror or exc}; give a text file "
            f"with one label a line"
        ) from exc
    if len(raw) > MAX_LABELS_BYTES:
        raise BadInputError(
            f"labels file {shown} is over {MAX_LABELS_BYTES // 2**20} MiB; it should hold "
            f"one label a line"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"labels file {shown} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BadInputError(f"labels file {shown} holds no label; write one label a line")
    if "" in lines:
        raise BadInputError(
            f"labels file {shown} has a blank line {lines.index('') + 1} before its last "
            f"label; write one label a line, in the order of the model's outputs"
        )
    return tuple(lines)


def output_units(info: ModelInfo) -> int:
    """The number of values of the model's first output (the classes of a classifier)."""
    return info.outputs[0].elements if info.outputs else 0


def check_labels(labels: tuple[str, ...], info: ModelInfo, source: str = "the labels") -> None:
    """Raise :class:`BadInputError` unless there is one label per value of the
    model's first output (``source`` names the labels in the message)."""
    units = output_units(info)
    if len(labels) != units:
        raise BadInputError(
            f"{source} hold {len(labels)} labels but the model's output has {units} "
            f"values; give one label per output value, in order"
        )
    if any(not isinstance(label, str) or not label for label in labels):
        raise BadInputError(f"{source} hold an empty label; give each class a name")


def c_string(text: str) -> str:
    """``text`` as a C string literal: printable ASCII as is, ``"``, ``\\`` and ``?``
    escaped (no trigraph can form), every other byte of its UTF-8 as a 3-digit octal
    escape (which, unlike ``\\x``, cannot swallow the characters after it)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def labels_h(labels: tuple[str, ...], n: Names, head: list[str], note: str) -> str:
    """``labels_<name>.h``: the labels of the model's output values, in order; ``note``
    says where they came from."""
    guard = f"{n.guard}_LABELS_H_"
    count = f"k{n.camel}LabelCount"
    return "\n".join(
        [
            *head,
            "",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f"// {comment_text(note)}",
            f"// {n.labels_array}[i] names output value i.",
            f"constexpr int {count} = {len(labels)};",
            f"constexpr const char* {n.labels_array}[{count}] = {{",
            *(f"    {c_string(label)}," for label in labels),
            "};",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )
