"""Risk merging: the calibrated logistic merger of an answer's signals (:func:`merge_risk`) and how
RAG grounding support raises the risk (:func:`apply_grounding`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hguard._numerics import is_real, sigmoid
from hguard.errors import InputError, ProbeError
from hguard.errors import shown as _short


# How far (in calibration standard deviations) a signal may lie from its calibration mean before the merger's
# word on it is not taken where it would lower the risk: a logistic model extrapolates without limit, so one
# input far outside what calibration saw (a length every calibration answer shared, a confidence never seen)
# could drive the risk to 0. Beyond it the answer goes to review; where the input raises the risk, it stands.
EXTRAPOLATION_LIMIT = 10.0


def _merger_vector(merger: Mapping[str, Any], key: str, n: int) -> list[float]:
    values = merger.get(key)
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or len(values) != n:
        raise ProbeError(
            f"risk merger field {key!r} must be a list of {n} numbers (one per feature), got {_short(values)}; "
            "the probe file is damaged or from another hguard version: recalibrate the domain"
        )
    out = []
    for i, v in enumerate(values):
        if not is_real(v) or not math.isfinite(v):
            raise ProbeError(
                f"risk merger field {key}[{i}] must be a finite number, got {_short(v)}; recalibrate the domain"
            )
        out.append(float(v))
    return out



class UnscorableSignal(InputError):
    """A signal the merger cannot score an answer with: missing, not a finite number, or beyond what it was
    calibrated on. The guard holds such an answer for review with this message as its reason (a safety hold, not a
    failure: it read "scoring failed: InputError: ..." beside real faults)."""


class OutsideCalibration(UnscorableSignal):
    """A signal far beyond the values the merger was calibrated on, where it would lower the risk: an
    out-of-calibration finding about the answer (the domain was calibrated on other kinds of answers), not a failure.
    The guard holds the answer for review, its reason opening "outside the calibration: " (it read "scoring problem:
    cannot merge risk ...", and two trials took a right, well-grounded answer's hold for a malfunction)."""

    @classmethod
    def of(cls, signal: str, value: float, deviations: float, mean: float, scale: float) -> OutsideCalibration:
        """The finding for ``signal`` at ``value``, ``deviations`` calibration standard deviations from its ``mean``
        (one message argument, as every error: it pickles and copies as one)."""
        return cls(
            f"this answer's signal {signal!r} is {value:.6g}, {deviations:.3g} standard deviations from its calibration mean "
            f"{mean:.6g} (scale {scale:.3g}): it lies far outside what the domain's calibration answers had (the "
            "domain was calibrated on other kinds of answers), and the merger, read beyond them, would lower the risk, "
            "so the answer's risk is not scored"
        )

def merge_risk(signals: Mapping[str, float | None], merger: Mapping[str, Any]) -> float:
    """Combine an answer's signals into one risk in [0, 1] with the calibrated merger.

    ``merger`` is ``{"features", "mean", "scale", "coef", "intercept"}``:
    ``risk = sigmoid(coef . ((x - mean) / scale) + intercept)``.
    Signals the merger does not use are ignored.

    Raises InputError (:class:`UnscorableSignal`) when a feature the merger needs is missing, None or not
    finite, and :class:`OutsideCalibration` when one lies beyond :data:`EXTRAPOLATION_LIMIT` where it would lower
    the risk, so the caller can fail closed; raises ProbeError when the merger itself is malformed.
    """
    if not isinstance(merger, Mapping):
        raise ProbeError(f"risk merger must be a mapping, got {_short(merger)}; recalibrate the domain")
    features = merger.get("features")
    if (
        not isinstance(features, Sequence)
        or isinstance(features, (str, bytes))
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise ProbeError(
            f"risk merger 'features' must be a non-empty list of signal names, got {_short(features)}; "
            "recalibrate the domain"
        )
    n = len(features)
    mean = _merger_vector(merger, "mean", n)
    scale = _merger_vector(merger, "scale", n)
    coef = _merger_vector(merger, "coef", n)
    intercept = merger.get("intercept")
    if not is_real(intercept) or not math.isfinite(intercept):
        raise ProbeError(f"risk merger 'intercept' must be a finite number, got {_short(intercept)}; recalibrate the domain")
    for name, s in zip(features, scale):
        if s <= 0:
            raise ProbeError(f"risk merger scale for {name!r} must be > 0, got {s}; recalibrate the domain")

    missing = [name for name in features if signals.get(name) is None]
    if missing:
        raise UnscorableSignal(
            f"cannot merge risk: signal(s) {', '.join(missing)} missing (given: "
            f"{', '.join(sorted(k for k, v in signals.items() if v is not None)) or 'none'}); "
            "compute every signal the probe was calibrated with, or route the answer to review"
        )
    z = float(intercept)
    for name, m, s, c in zip(features, mean, scale, coef):
        x = signals[name]
        if not is_real(x) or not math.isfinite(x):
            raise UnscorableSignal(
                f"cannot merge risk: signal {name!r} is {_short(x)}, not a finite number; "
                "route the answer to review"
            )
        zi = (float(x) - m) / s
        if abs(zi) > EXTRAPOLATION_LIMIT and c * zi < 0:
            raise OutsideCalibration.of(name, float(x), abs(zi), m, s)
        z += c * zi
    return sigmoid(z)


def apply_grounding(risk: float, grounding_support: float | None, weight: float) -> float:
    """Raise ``risk`` by how poorly the answer is supported by the given context.

    ``risk' = 1 - (1 - risk) * (1 - weight * (1 - support))``

    Read it as: the answer is trusted only if the model is right *and* the
    context does not undercut it; ``weight * (1 - support)`` is the chance we
    give to the context undercutting it. So support 1 leaves the risk
    unchanged, support 0 raises it by ``weight`` of the remaining headroom
    (``risk + weight * (1 - risk)``), and the result is monotone: increasing
    in risk and weight, decreasing in support, and always within [risk, 1].

    Grounding never lowers the risk below the probe's: a high support score
    can come from lexical overlap with a passage that does not actually say
    the same thing, so it may block an answer but not rescue one.

    ``grounding_support=None`` (no context given) returns ``risk`` unchanged.
    """
    for name, value in (("risk", risk), ("weight", weight)):
        if not is_real(value) or not (0.0 <= value <= 1.0):
            raise InputError(f"apply_grounding: {name} must be a number in [0, 1], got {_short(value)}")
    if grounding_support is None:
        return float(risk)
    if not is_real(grounding_support) or not (0.0 <= grounding_support <= 1.0):
        raise InputError(
            f"apply_grounding: grounding support must be a number in [0, 1] or None, got {_short(grounding_support)}; "
            "route the answer to review"
        )
    return 1.0 - (1.0 - risk) * (1.0 - weight * (1.0 - grounding_support))
