"""Value checks and number formatting shared by the policy's modules (schema messages, routing reasons)."""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeGuard


def _real(value: Any) -> TypeGuard[float]:
    # numbers.Real admits numpy scalars (a probe may hand over float32);
    # bool is excluded because True as a risk or threshold is always a bug.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _finite_unit(x: Any) -> TypeGuard[float]:
    return _real(x) and math.isfinite(x) and 0.0 <= x <= 1.0
