"""Small numeric pieces shared by the runtime: the one logistic function everything uses."""

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


__all__ = ["sigmoid", "sigmoid_array"]
