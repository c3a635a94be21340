"""Small numeric pieces shared by the runtime: the one logistic function everything uses, and the one rule
for a column that did not vary."""

from __future__ import annotations

import math


def sigmoid(x: float) -> float:
    """The logistic function of one number, split by sign so ``exp`` never overflows (x = -1e4 gives 0.0,
    not an OverflowError)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def sigmoid_array(x):
    """The logistic function element-wise over an array, without overflow warnings."""
    from scipy.special import expit

    return expit(x)


def constant_columns(scale, center):
    """Where a standard deviation is float rounding, not spread (equal values give ~1e-15, not always 0):
    element-wise ``scale <= 1e-9 * max(1, |center|)``. Scaled by it, any other value at request time would
    become a huge score, so such a column keeps a unit scale (and, in the merger, no weight)."""
    import numpy as np

    return np.asarray(scale) <= 1e-9 * np.maximum(1.0, np.abs(np.asarray(center)))


__all__ = ["constant_columns", "sigmoid", "sigmoid_array"]
