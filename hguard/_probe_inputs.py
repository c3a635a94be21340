"""Input checks shared by the H-Neuron probe and its random-neuron baseline."""

from __future__ import annotations

import numpy as np
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, column_or_1d

from .errors import InputError

def _check_X(X, name: str = "X") -> np.ndarray:
    try:
        return check_array(X, dtype=(np.float32, np.float64), ensure_2d=True)
    except ValueError as e:
        raise InputError(
            f"{name} is not usable as CETT features ({e}); pass a finite 2-D array of shape (n_answers, n_features)"
        ) from e


def _check_lengths(lengths, n_rows: int, length_control: bool, where: str) -> np.ndarray | None:
    if not length_control:
        return None
    if lengths is None:
        raise InputError(
            f"{where}: lengths=None but the probe uses length control; pass lengths= (answer length in tokens, "
            "one per row) or use HNeuronProbe(length_control=False)"
        )
    arr = np.asarray(lengths, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n_rows:
        raise InputError(
            f"{where}: lengths has shape {arr.shape} but X has {n_rows} rows; pass one answer length per row"
        )
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: lengths[{i}] = {float(arr[i])!r} is not a finite count >= 0; pass token counts")
    return np.log1p(arr)


def _check_y(y, n_rows: int) -> np.ndarray:
    if y is None:
        raise InputError(
            "HNeuronProbe requires y to be passed, but the target y is None; pass one label per row "
            "(1 = hallucinated, 0 = faithful)"
        )
    try:
        y = column_or_1d(y, warn=True)
    except ValueError as e:
        raise InputError(f"y is not a 1-D array of labels ({e}); pass one label per row") from e
    if y.shape[0] != n_rows:
        raise InputError(f"y has {y.shape[0]} labels but X has {n_rows} rows; pass one label per row")
    kind = type_of_target(y)
    if kind == "continuous":
        raise InputError(
            "Unknown label type: continuous values in y (e.g. " f"{y[:3].tolist()}); pass class labels, "
            "1 = hallucinated, 0 = faithful"
        )
    classes = np.unique(y)
    if classes.size == 1:
        raise InputError(
            f"y has only one class ({classes[0]!r}); the probe needs both hallucinated (1) and faithful (0) "
            "answers: collect answers of the other class"
        )
    if classes.size > 2:
        raise InputError(
            f"Only binary classification is supported; y has {classes.size} classes {classes.tolist()[:5]}. "
            "Pass 1 = hallucinated, 0 = faithful"
        )
    return y


def _sample_weights(y01: np.ndarray, class_weight) -> np.ndarray:
    if class_weight is None:
        return np.ones(y01.shape[0])
    n, n_pos = y01.shape[0], int(y01.sum())
    # The same weights that LogisticRegression(class_weight="balanced") uses: n / (2 * n_class).
    return np.where(y01 == 1, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))


def _two_columns(p1: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p1, p1])
