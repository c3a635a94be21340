"""Figures for comparing hallucination detectors on the same answers.

Every score is a *risk* (higher = more likely hallucinated) and every label is 1 for a
hallucinated answer, 0 for a right one.
"""

from __future__ import annotations


import numpy as np

from hguard._stats import auroc, bootstrap_aurocs, labels_and_scores
from hguard.errors import InputError

__all__ = [
    "auroc",
    "bootstrap_aurocs",
    "best_accuracy",
    "risk_at_coverage",
    "detector_summary",
]


def _arrays(y, risk) -> tuple[np.ndarray, np.ndarray]:
    return labels_and_scores(y, risk, "risks")


def best_accuracy(y, risk) -> tuple[float, float]:
    """(accuracy, threshold) of "hallucinated when risk >= threshold" at the best threshold.

    Chosen on the same answers (an oracle threshold: an upper bound on a deployed threshold). The
    thresholds include +inf (flag nothing), so the result is never below the majority-class rate of
    right answers.
    """
    y, r = _arrays(y, risk)
    if len(y) == 0:
        raise InputError("no answers")
    best, best_t = float((y == 0).mean()), float("inf")
    for t in np.unique(r):
        acc = float(((r >= t).astype(int) == y).mean())
        if acc > best:
            best, best_t = acc, float(t)
    return best, best_t


def risk_at_coverage(y, risk, coverage: float) -> float:
    """Hallucination rate among the ``coverage`` share of answers with the lowest risk.

    Ties at the cut are taken in proportion (the expected rate under random tie-breaking), so a
    detector that gives every answer the same risk scores the base rate.
    """
    y, r = _arrays(y, risk)
    if not 0 < coverage <= 1:
        raise InputError(f"coverage must be in (0, 1], got {coverage!r}")
    if len(y) == 0:
        raise InputError("no answers")
    k = coverage * len(y)
    taken = 0.0
    bad = 0.0
    for v in np.unique(r):  # ascending
        grp = y[r == v]
        room = k - taken
        if room <= 0:
            break
        use = min(room, len(grp))
        bad += use * grp.mean()
        taken += use
    return float(bad / k)


def detector_summary(y, risk, *, boot: np.ndarray | None = None, coverages=(0.5, 0.8)) -> dict:
    """AUROC (with a bootstrap 95% interval when ``boot`` holds resampled AUROCs, widened below ten answers in the
    smaller class as :func:`hguard._stats.auroc_ci` widens it: 2 right and 2 wrong ranked perfectly resample to
    [1.00, 1.00]), best-threshold accuracy, and the hallucination rate among accepted answers at each coverage."""
    from hguard._stats import widened_for_small_class

    y, r = _arrays(y, risk)
    acc, thr = best_accuracy(y, r) if len(y) else (None, None)
    auc = auroc(y, r)
    ci = None
    if boot is not None and len(boot):
        m = int(min((y == 1).sum(), (y == 0).sum()))
        ci = widened_for_small_class([float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))], auc or 0.0, m)
    out = {
        "auroc": auc,
        "auroc_ci95": ci,
        "accuracy_best_threshold": acc,
        "best_threshold": thr,
        "hallucination_rate_at_coverage": {f"{c:g}": risk_at_coverage(y, r, c) for c in coverages} if len(y) else {},
    }
    return out
