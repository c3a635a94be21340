"""Small numeric pieces shared by the runtime: the one logistic function everything uses, the one rule
for a column that did not vary, and the one reader of a number that code of one's own hands back."""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeGuard

#: what :func:`finite_number` and :func:`number_rows` read as a number, said in the reasons that refuse anything else
NUMBER_RULE = ("a real number (int or float), not a str, bool, Decimal, array or tensor: return float(x) of a "
               "numpy, torch or Decimal value")


def is_real(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a real number: an int, a float or a numpy integer or floating scalar (``numbers.Real``),
    never a bool (True as a score or threshold is always a bug) nor a str that reads as one ("0.9")."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite_number(value: Any) -> float | None:
    """The one reader of a number handed back by a callable, of one's own or the guard's (a grounding scorer's signal,
    a router's similarity, a probe's logit or distance, a confidence signal): ``value`` as a float when it is a finite
    real number (:func:`is_real`), else None, which the caller holds for review naming the value. A str that
    ``float()`` reads ("0.9"), a bool, None, NaN, an infinity, an int too large for a float (10**400) or an array
    are not numbers here."""
    if not is_real(value):
        return None
    try:
        x = float(value)
    except OverflowError:  # an int beyond float range: float() raises where it would be an infinity
        return None
    return x if math.isfinite(x) else None


def number_rows(value: Any):
    """:func:`finite_number`'s rule for a callable's array (an embedder's vectors): ``value`` as a float64 array when
    its elements are real numbers (an integer or floating dtype), else None (strings, bools, objects such as None).
    Whether the values are finite and the shape right is the caller's check. Raises what ``numpy.asarray`` raises for
    what it cannot read as an array (a ragged list)."""
    import numpy as np

    arr = np.asarray(value)
    return arr.astype(np.float64) if arr.dtype.kind in "iuf" else None


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


__all__ = ["NUMBER_RULE", "constant_columns", "finite_number", "is_real", "number_rows", "sigmoid", "sigmoid_array"]
