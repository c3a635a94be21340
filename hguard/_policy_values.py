"""Value checks and number formatting shared by the policy's modules (schema messages, routing reasons)."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from ._numerics import is_real



def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _fmt_apart(*values: float, digits: int = 4) -> tuple[str, ...]:
    """``values`` as a reason prints them side by side, a value and the thresholds it is compared with ("similarity
    X < domain_min_similarity Y"): each with ``digits`` significant digits (:func:`_fmt`'s 4), or more where that prints
    two different numbers alike, so that a printed comparison never reads false ("similarity 0.35 <
    domain_min_similarity 0.35" was printed for 0.3486). Equal numbers print alike."""
    from itertools import combinations

    def same(x: float, y: float) -> bool:
        return x == y or (x != x and y != y)  # NaN prints as itself

    def fmt(x: float, d: int) -> str:  # d digits, or the exact value where it is shorter (0.3, not 0.2999...)
        x = x + 0.0  # -0.0 equals 0.0 and prints as it
        rounded, exact = f"{x:.{d}g}", repr(float(x))
        return exact if len(exact) <= len(rounded) else rounded

    for d in range(digits, 17):
        shown = tuple(fmt(v, d) for v in values)
        if all((a == b) == same(x, y) for (a, x), (b, y) in combinations(zip(shown, values), 2)):
            return shown
    return tuple(repr(float(v) + 0.0) for v in values)  # the shortest text that reads back as each: apart where they are


def _finite_unit(x: Any) -> TypeGuard[float]:
    return is_real(x) and math.isfinite(x) and 0.0 <= x <= 1.0
