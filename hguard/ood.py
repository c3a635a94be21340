"""How far an answer lies from its domain's calibration answers, in the probe's own features.

The distance is the root mean square of the probe's selected neurons, each standardised by the centre
and scale the probe was fitted with (``center_``, ``scale_``): about 1 for an answer like the
calibration answers, larger the further the neurons the probe reads stray from where it was fitted.

Calibration sets its threshold from cross-family out-of-fold distances: each training answer measured
under a probe fitted without the answer's family, so the threshold says how far *new kinds of question*
lay; the thresholds that certify the risk were fitted on those same kinds of score. An answer beyond it
lies further out than anything the certification covered, and goes to review with its distance.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ._policy_values import _fmt_apart

OOD_QUANTILE = 0.99
OOD_FEATURE = "rms of the probe's selected neurons, standardised by the probe's centre and scale"


def feature_distance(probe, values) -> np.ndarray:
    """Distance of each row of ``values`` (n, n_selected), the probe's neurons in ``feature_indices_`` order."""
    V = np.atleast_2d(np.asarray(values, dtype=np.float64))
    k = len(probe.feature_indices_)
    if k == 0:
        return np.full(V.shape[0], np.nan)
    if V.shape[1] != k:
        raise ValueError(f"feature_distance: values have {V.shape[1]} columns; the probe reads {k} neurons")
    z = (V - np.asarray(probe.center_, dtype=np.float64)) / np.asarray(probe.scale_, dtype=np.float64)
    return np.sqrt(np.mean(z * z, axis=1))


def full_distance(probe, X) -> np.ndarray:
    """:func:`feature_distance` from full CETT rows (n, n_features)."""
    X = X if hasattr(X, "shape") else np.asarray(X)  # an array, or shard-backed rows that read only these columns
    return feature_distance(probe, X[:, np.asarray(probe.feature_indices_, dtype=np.int64)])


def fit_ood(distances, *, quantile: float = OOD_QUANTILE, fitted_on: str, own=None) -> dict | None:
    """The threshold (a quantile of finite ``distances``), as plain data for a probe file; None if none.

    ``own``: the distances of the answers the probe that will apply the threshold was fitted on, under that probe.
    ``distances`` were measured under other probes (each fitted without the answer's family), whose neurons are
    other ones and other in number, and the spread of a root mean square over k neurons shrinks as k grows: a
    threshold from probes of many neurons, applied to a probe of few, sent a fifth of a small domain's ordinary
    held-out answers to review. The threshold is never below the same quantile of ``own``, which keeps what the
    probe's own answers look like inside it."""
    d = np.asarray(distances, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    threshold, note = float(np.quantile(d, quantile)), fitted_on
    mine = np.asarray(own if own is not None else [], dtype=float)
    mine = mine[np.isfinite(mine)]
    floor = float(np.quantile(mine, quantile)) if mine.size else None
    if floor is not None and floor > threshold:
        threshold = floor
        note += "; raised to the same quantile of the probe's own training answers' distances, which lay further out"
    out: dict[str, Any] = {"feature": OOD_FEATURE, "threshold": threshold, "quantile": quantile, "n": int(d.size),
                           "fitted_on": note}
    if floor is not None:
        out["own_quantile"], out["n_own"] = floor, int(mine.size)
    return out


def beyond(distances, threshold: float | None) -> np.ndarray:
    """Whether each of ``distances`` sends its answer to review: beyond ``threshold``, or not a number (the check
    cannot clear it); none without a threshold. The guard's test (:func:`ood_problem`), and what every figure of
    accepted answers leaves out: an answer under the accept threshold but beyond this one is not accepted."""
    d = np.atleast_1d(np.asarray(distances, dtype=np.float64))
    if threshold is None:
        return np.zeros(d.shape, dtype=bool)
    return ~(np.isfinite(d) & (d <= float(threshold)))


def ood_problem(distance: float | None, ood: Mapping[str, Any] | None) -> str | None:
    """A review reason when ``distance`` is beyond the probe file's threshold (or cannot be measured)."""
    if not ood or not beyond([np.nan if distance is None else distance], ood["threshold"])[0]:
        return None
    if distance is None or not math.isfinite(distance):
        return "out-of-distribution check failed: the probe-feature distance is not a number"
    shown, threshold = _fmt_apart(distance, float(ood["threshold"]))
    return (f"question out of the calibration distribution: probe-feature distance {shown} > {threshold} (the "
            f"{ood['quantile']:.0%} quantile of "
            + ("the probe's own training answers" if ood.get("own_quantile") == ood["threshold"]
               else "held-out calibration families") + ")")


__all__ = ["OOD_FEATURE", "OOD_QUANTILE", "beyond", "feature_distance", "fit_ood", "full_distance", "ood_problem"]
