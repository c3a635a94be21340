"""The monitor's pure statistics: the live bounds (the exact Clopper-Pearson bounds of one look, or
time-uniform ones; both in :mod:`hguard._stats`) and the breach rules on them, the least number of
spot-checks that can certify a target, the seeded spot-check selection and the drift test. Plain numbers in, plain numbers out (scipy imported inside). See
:mod:`hguard.monitor`."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
from typing import Any, Sequence

from ._stats import _check_unit_open, clopper_pearson_lower, clopper_pearson_upper, sequential_bounds
from .errors import InputError


LIVE_BOUNDS = ("per_run", "sequential")


def live_bounds(k: int, n: int, confidence: float, kind: str = "per_run") -> tuple[float, float]:
    """``(lower, upper)`` bounds on the accepted hallucination rate after ``k`` hallucinations in ``n`` reviewed
    spot-checks: ``per_run``, the exact Clopper-Pearson bounds, which hold for one look (run after run on the
    growing record, a rule on them fires more often than ``1 - confidence`` says, erring toward tightening);
    ``sequential``, a confidence sequence that holds however often the monitor runs
    (:func:`hguard._stats.sequential_bounds`), at the price of more spot-checks before a rise is caught
    (``benchmarks/README.md``)."""
    _check_kind(kind)
    if kind == "sequential":
        return sequential_bounds(k, n, confidence)
    return clopper_pearson_lower(k, n, confidence), clopper_pearson_upper(k, n, confidence)


def _check_kind(kind: str) -> None:
    if kind not in LIVE_BOUNDS:
        raise InputError(f"live bounds must be one of {LIVE_BOUNDS}, got {kind!r}")


def breached(k: int, n: int, target: float, confidence: float, rule: str = "upper_bound", bounds: str = "per_run") -> bool:
    """Whether ``k`` hallucinations in ``n`` reviewed spot-checks breach the target under ``rule``, on the
    ``bounds`` of :func:`live_bounds`: ``upper_bound``: the upper bound exceeds the target, once n reaches
    :func:`min_checks` (before that even a clean record could not certify it); ``lower_bound``: the lower
    bound exceeds the target."""
    if rule not in ("upper_bound", "lower_bound"):
        raise InputError(f"breach rule must be 'upper_bound' or 'lower_bound', got {rule!r}")
    lower, upper = live_bounds(k, n, confidence, bounds)
    if rule == "upper_bound":
        return n >= min_checks(target, confidence, bounds) and upper > target
    return lower > target


def min_checks(target: float, confidence: float, bounds: str = "per_run") -> int:
    """Least number of reviewed spot-checks at which a clean record (0 hallucinations) brings the upper bound
    to the target or below; before that the bound cannot certify anything and is not acted on."""
    target, confidence = _check_unit_open("target", target), _check_unit_open("confidence", confidence)
    _check_kind(bounds)
    n = int(math.ceil(math.log(1.0 - confidence) / math.log(1.0 - target) - 1e-12))  # one look
    if bounds == "sequential":
        # k = 0: the evidence against the target is 1 / ((n + 1) (1 - target)^n) (sequential_bounds); it must
        # reach 1 / (1 - confidence), which never takes fewer checks than one look
        while (n + 1) * (1.0 - target) ** n > 1.0 - confidence:
            n += 1
    return n


def selection_u(seed: str, record_id: str) -> float:
    """A number in [0, 1) from HMAC-SHA256 keyed by ``seed`` over the decision's audit record id."""
    if not isinstance(seed, str) or not seed:
        raise InputError(f"the spot-check seed must be a non-empty string, got {seed!r}; set [monitor] seed")
    if not isinstance(record_id, str) or not record_id:
        raise InputError(f"record_id must be a non-empty string, got {record_id!r}")
    digest = hmac.new(seed.encode("utf-8"), record_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@functools.cache
def seed_id(seed: str) -> str:
    """Which spot-check seed selected a decision, without the seed: 16 hex digits of scrypt over it (slow on
    purpose, so that a short seed is not found from its id by trying words; a random seed, as ``policy_copy``
    writes, cannot be). Accepted decisions record it, so the monitor checks each against the seed it was
    selected under, and one selected under a seed the policy has since replaced is not read as cherry-picking."""
    if not isinstance(seed, str) or not seed:
        raise InputError(f"the spot-check seed must be a non-empty string, got {seed!r}; set [monitor] seed")
    return hashlib.scrypt(seed.encode("utf-8"), salt=b"hguard spot-check seed id", n=2**14, r=8, p=1, dklen=8).hex()


def drift_test(reference: Sequence[float | None], live: Sequence[float | None], p_value: float, *, min_n: int = 20) -> dict:
    """Two-sample KS test of ``live`` against ``reference`` (finite values only). ``drift`` is True when its
    p-value is below ``p_value``; None (untested) when either side has fewer than ``min_n`` values."""
    p_value = _check_unit_open("drift_p_value", p_value)
    ref = [float(x) for x in reference if x is not None and math.isfinite(float(x))]
    liv = [float(x) for x in live if x is not None and math.isfinite(float(x))]
    out: dict[str, Any] = {"n_reference": len(ref), "n_live": len(liv), "statistic": None, "p_value": None, "drift": None}
    if len(ref) < min_n or len(liv) < min_n:
        out["note"] = f"untested: fewer than {min_n} values on a side"
        return out
    from scipy.stats import ks_2samp

    res = ks_2samp(ref, liv)
    out.update(statistic=float(res.statistic), p_value=float(res.pvalue), drift=bool(res.pvalue < p_value))
    return out
