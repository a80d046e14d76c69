"""Quality metrics computed from model outputs; knows nothing of how they were produced."""

from __future__ import annotations

import numpy as np


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class indices from logits or probabilities (one unit: threshold at 0.5)."""
    flat = outputs.reshape(len(outputs), -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] >= 0.5).astype(np.int64)
    return flat.argmax(axis=1).astype(np.int64)


def classification(y_true: np.ndarray, outputs: np.ndarray, n_classes: int) -> dict:
    """Accuracy, macro-F1 over all ``n_classes`` and the confusion matrix (rows: truth)."""
    from sklearn.metrics import confusion_matrix, f1_score

    y_pred = predicted_classes(outputs)
    labels = list(range(n_classes))
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def regression(y_true: np.ndarray, outputs: np.ndarray) -> dict:
    diff = outputs.reshape(len(outputs), -1) - y_true.reshape(len(y_true), -1)
    return {"mse": float(np.mean(diff**2)), "mae": float(np.mean(np.abs(diff)))}


def agreement(task: str, outputs: np.ndarray, reference: np.ndarray) -> dict:
    """How closely ``outputs`` follow ``reference`` (the baseline's outputs).

    Classification: the fraction of samples with the same predicted class.
    Regression: MSE and the largest absolute difference between the two.
    """
    if task == "classification":
        return {
            "agreement": float(np.mean(predicted_classes(outputs) == predicted_classes(reference)))
        }
    diff = outputs.reshape(len(outputs), -1) - reference.reshape(len(reference), -1)
    return {
        "mse_vs_baseline": float(np.mean(diff**2)),
        "max_abs_diff_vs_baseline": float(np.max(np.abs(diff))) if diff.size else 0.0,
    }


def scores(task: str, probabilities: bool, outputs: np.ndarray) -> np.ndarray:
    """One logit unit becomes a probability, so that 0.5 is the class threshold."""
    if task == "classification" and not probabilities and outputs.size and outputs[0].size == 1:
        return 1.0 / (1.0 + np.exp(-outputs))
    return outputs


def evaluate(task: str, y_true: np.ndarray, outputs: np.ndarray, n_classes: int) -> dict:
    if task == "classification":
        return classification(y_true, outputs, n_classes)
    return regression(y_true, outputs)
