"""Value checks and number formatting shared by the policy's modules (schema messages, routing reasons)."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from ._numerics import is_real

_real = is_real  # numbers.Real (numpy scalars too), never a bool: the one rule, in _numerics


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _finite_unit(x: Any) -> TypeGuard[float]:
    return _real(x) and math.isfinite(x) and 0.0 <= x <= 1.0
