"""Out-of-bag rows: the samples each member of a bagged forest never saw.

A random forest fits member ``t`` on a bootstrap sample of the training rows;
the rows left out (about 37 %) are an honest test set for that member, and
there are several times more of them than validation samples. Breiman ("Out-
of-bag estimation", 1996) used them to estimate a forest's error;
Martínez-Muñoz & Suárez ("Out-of-bag estimation of the optimal sample size in
bagging", *Pattern Recognition* 43, 2010) to order and cut a bagged ensemble.
Pruning here uses them to make its choices on more samples than the
validation split alone (docs/tree-pruning.md, "Choosing on out-of-bag rows").

scikit-learn draws member ``t``'s bootstrap from the integer seed it stores as
``estimators_[t].random_state``; :func:`bootstrap_record` keeps those seeds in
the Forest's ``meta["bootstrap"]`` when edgeprune trains the forest, together
with a fingerprint of the training rows, so that :func:`evaluation_set` uses
them only with the very rows the forest was fitted on. A model read from a file
has no record: its choices fall back to the validation split, and the pruning
step says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_KEY = "bootstrap"


def fingerprint(x, y) -> str:
    """A SHA-256 of the rows ``(x, y)`` (x as float64, labels as text)."""
    h = hashlib.sha256(np.ascontiguousarray(np.asarray(x, dtype=np.float64)).tobytes())
    h.update(repr(np.asarray(y).tolist()).encode())
    return h.hexdigest()


def bootstrap_record(fitted, x, y) -> dict | None:
    """What :func:`evaluation_set` needs to rebuild each member's out-of-bag rows
    of the fitted scikit-learn forest ``fitted`` (trained on ``(x, y)``): the
    members' seeds, the row count, the bootstrap size and the rows' fingerprint.
    None when the model draws no bootstrap (a single tree, extra trees, or
    ``bootstrap=False``) or draws fewer rows than it has (``max_samples``, whose
    rounding scikit-learn has changed between versions)."""
    if not getattr(fitted, "bootstrap", False) or fitted.max_samples is not None:
        return None
    return {
        "seeds": [int(m.random_state) for m in fitted.estimators_],
        "n_samples": len(x),
        "n_bootstrap": len(x),
        "rows_sha256": fingerprint(x, y),
    }


def unsampled_rows(seed: int, n_samples: int, n_bootstrap: int) -> np.ndarray:
    """The rows a member with bootstrap seed ``seed`` never drew, ascending: the
    draw is scikit-learn's (``RandomState(seed).randint(0, n_samples, n_bootstrap)``),
    so this equals its ``_generate_unsampled_indices`` (tested)."""
    drawn = np.random.RandomState(seed).randint(0, n_samples, n_bootstrap)
    return np.nonzero(np.bincount(drawn, minlength=n_samples) == 0)[0]


@dataclass(frozen=True)
class EvaluationSet:
    """The rows pruning chooses on: ``x``, ``y`` and ``mask[t, i]``, True where row
    ``i`` may judge member ``t`` (it is out of ``t``'s bootstrap, or a validation
    row). ``source`` says which rows these are, for the step's parameters."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray  # bool (members, rows)
    source: str

    def rows(self, member: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the rows that may judge ``member``."""
        keep = self.mask[member]
        return self.x[keep], self.y[keep]


def validation_only(n_members: int, val_data) -> EvaluationSet:
    """Every member judged on the whole validation split."""
    x, y = val_data
    return EvaluationSet(x, y, np.ones((n_members, len(x)), dtype=bool), "validation")


def evaluation_set(forest, train_x, train_y, val_data) -> EvaluationSet:
    """Out-of-bag and validation rows pooled when ``forest.meta`` has a bootstrap
    record of exactly ``(train_x, train_y)`` (``train_x`` already the columns the
    model reads); else the validation split, with the reason in ``source``."""
    record = forest.meta.get(BOOTSTRAP_KEY)
    x_val, y_val = val_data
    if not record:
        why = "no bootstrap record (a model read from a file, or one not bagged)"
        return _fallback(forest, val_data, why)
    if train_x is None or len(record["seeds"]) != forest.n_members:
        return _fallback(forest, val_data, "the training rows were not given")
    if (
        len(train_x) != record["n_samples"]
        or fingerprint(train_x, train_y) != record["rows_sha256"]
    ):
        return _fallback(forest, val_data, "the training rows differ from those it was fitted on")
    n = len(train_x)
    mask = np.zeros((forest.n_members, n + len(x_val)), dtype=bool)
    for t, seed in enumerate(record["seeds"]):
        mask[t, unsampled_rows(seed, n, record["n_bootstrap"])] = True
    mask[:, n:] = True
    x = np.concatenate([np.asarray(train_x, dtype=np.float64), np.asarray(x_val, dtype=np.float64)])
    y = np.concatenate([np.asarray(train_y), np.asarray(y_val)])
    return EvaluationSet(x, y, mask, "out-of-bag + validation")


def choice_rows(forest, choose_on: str, train_data, val_data) -> EvaluationSet | None:
    """The rows ``forest``'s pruning choices are judged on: out-of-bag and
    validation rows pooled when ``choose_on`` is "oob" and the forest's bootstrap
    record matches ``train_data`` (checked ``(x, y)``, all the data's columns),
    else the validation split (None without one)."""
    from edgeprune.trees.model import model_inputs

    if val_data is None:
        return None
    if choose_on != "oob":
        return validation_only(forest.n_members, val_data)
    if train_data is None:
        return evaluation_set(forest, None, None, val_data)
    return evaluation_set(forest, model_inputs(forest, train_data[0]), train_data[1], val_data)


def _fallback(forest, val_data, why: str) -> EvaluationSet:
    out = validation_only(forest.n_members, val_data)
    return EvaluationSet(out.x, out.y, out.mask, f"validation ({why})")
