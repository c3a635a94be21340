"""Value checks and number formatting shared by the policy's modules (schema messages, routing reasons)."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from ._numerics import is_real



def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _finite_unit(x: Any) -> TypeGuard[float]:
    return is_real(x) and math.isfinite(x) and 0.0 <= x <= 1.0
