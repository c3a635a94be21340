"""AUROC and its bootstrap interval, the exact Clopper-Pearson bounds on a binomial rate, and the
time-uniform (sequential) bounds for a rate looked at again and again: the one implementation of each that
calibration, threshold fitting, the monitor, the research scripts and the benchmarks use.

Labels are 1 for the positive class (a hallucinated answer) and 0 for the other; a score is
oriented so that higher means more likely positive (a risk). numpy and scipy are imported inside
the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import ArrayLike  # a sequence or an array

from hguard._numerics import finite_number
from hguard.errors import InputError

__all__ = [
    "auroc",
    "auroc_ci",
    "auroc_difference_ci",
    "bootstrap_aurocs",
    "clopper_pearson_interval",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "labels_and_scores",
    "sequential_bounds",
]


def _labels(y: Any):
    import numpy as np

    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"labels must be a 1-d sequence, got shape {arr.shape}; pass one label per answer")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))][0]
        raise InputError(f"labels must be 0 (right) or 1 (hallucinated), got {bad!r}; relabel that answer")
    return arr.astype(int)


def _scores(score: Any, n: int, name: str = "scores"):
    import numpy as np

    s = np.asarray(score, dtype=float)
    if s.shape != (n,):
        raise InputError(f"{name} has shape {s.shape} but there are {n} labels; pass one score per answer")
    if np.isnan(s).any():
        raise InputError(f"{name} contain NaN; score every answer or leave the unscored ones out")
    return s


def labels_and_scores(y: ArrayLike, score: ArrayLike, name: str = "scores"):
    """``(labels, scores)`` as a 0/1 int array and a float array of one length, or InputError naming
    the problem (labels other than 0/1, a score count that differs from the label count, a NaN score)."""
    labels = _labels(y)
    return labels, _scores(score, labels.size, name)


def auroc(y: ArrayLike, score: ArrayLike) -> float | None:
    """Area under the ROC curve of ``score`` for labels ``y``, ties counted half.

    None when a class is missing (no answers, or all of one class), where the AUROC is undefined.
    Raises InputError for labels other than 0/1, a score count that differs from the label count, or
    a NaN score.
    """
    from scipy.stats import rankdata

    labels, s = labels_and_scores(y, score)
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(s)
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_aurocs(y: ArrayLike, scores: Mapping[str, ArrayLike], *, n_boot: int = 1000,
                     seed: Any = 0) -> dict[str, Any]:
    """The AUROC of every score on the same ``n_boot`` bootstrap resamples of the answers (paired).

    Answers are resampled within each class (every resample keeps the class counts, so none is
    ever one-class and none is dropped), and every score sees the same resamples, so the arrays of
    two scores can be subtracted for a paired interval of their difference. Returns one array of
    ``n_boot`` AUROCs per score; empty arrays when a class is missing. ``seed`` is an integer, or a
    ``numpy.random.Generator`` to draw from (it is advanced).
    """
    import numpy as np
    from scipy.stats import rankdata

    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise InputError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    labels = _labels(y)
    checked = {k: _scores(v, labels.size, f"scores[{k!r}]") for k, v in scores.items()}
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if pos.size == 0 or neg.size == 0:
        return {k: np.empty(0) for k in checked}
    rng = np.random.default_rng(seed)
    idx = np.stack([np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)]) for _ in range(n_boot)])
    n1, n0 = pos.size, neg.size
    out = {}
    for k, s in checked.items():
        ranks = rankdata(s[idx], axis=1)
        out[k] = (ranks[:, :n1].sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return out


def auroc_ci(y: ArrayLike, scores: Mapping[str, ArrayLike], *, n_boot: int = 1000,
             level: float = 0.95, seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile bootstrap interval ``[low, high]`` of each score's AUROC at ``level``, from
    :func:`bootstrap_aurocs` (within-class resamples, the same for every score); None per score
    when a class is missing.

    When the smaller class holds fewer than ``SMALL_CLASS`` answers the bootstrap collapses (one wrong
    answer ranked above five right ones resamples to AUROC 1 every time: "1.00 [1.00, 1.00]"), so the
    interval is widened to hold the exact binomial (Clopper-Pearson) interval of the AUROC read as the
    mean of that many bounded [0, 1] terms, one per answer of the smaller class: what so few answers can
    show."""
    import numpy as np

    if not 0.0 < level < 1.0:
        raise InputError(f"level must be strictly between 0 and 1, got {level!r}")
    boot = bootstrap_aurocs(y, scores, n_boot=n_boot, seed=seed)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    labels = _labels(y)
    m = int(min((labels == 1).sum(), (labels == 0).sum()))
    out: dict[str, list[float] | None] = {}
    for k, v in boot.items():
        if not v.size:
            out[k] = None
            continue
        low, high = float(np.percentile(v, lo)), float(np.percentile(v, hi))
        out[k] = widened_for_small_class([low, high], float(auroc(labels, scores[k]) or 0.0), m, level)
    return out


def auroc_difference_ci(y: ArrayLike, a: ArrayLike, b: ArrayLike, *, n_boot: int = 1000, level: float = 0.95,
                        seed: int = 0) -> list[float] | None:
    """Percentile bootstrap interval ``[low, high]`` at ``level`` of AUROC(``a``) minus AUROC(``b``), both read on
    the same resamples (:func:`bootstrap_aurocs`: paired, so what the two scores share cancels); None when a class
    is missing, or when the smaller class holds fewer than ``SMALL_CLASS`` answers, where the bootstrap collapses
    (:func:`auroc_ci`) and no interval of the difference is given."""
    import numpy as np

    if not 0.0 < level < 1.0:
        raise InputError(f"level must be strictly between 0 and 1, got {level!r}")
    labels = _labels(y)
    if min(int((labels == 1).sum()), int((labels == 0).sum())) < SMALL_CLASS:
        return None
    boot = bootstrap_aurocs(labels, {"a": a, "b": b}, n_boot=n_boot, seed=seed)
    diff = boot["a"] - boot["b"]
    return [float(np.percentile(diff, 100 * (1 - level) / 2)), float(np.percentile(diff, 100 * (1 + level) / 2))]


def widened_for_small_class(interval: Sequence[float], auc: float, m: int, level: float = 0.95) -> list[float]:
    """``interval`` of an AUROC ``auc`` whose smaller class holds ``m`` answers, widened when ``m`` is below
    :data:`SMALL_CLASS` to hold the exact binomial (Clopper-Pearson) interval of the AUROC read as the mean of
    ``m`` bounded [0, 1] terms (see :func:`auroc_ci`); unchanged otherwise."""
    from scipy.special import betaincinv

    low, high = float(interval[0]), float(interval[1])
    if 0 < m < SMALL_CLASS:
        a = auc * m  # "successes" out of m, not always a whole number
        tail = (1 - level) / 2
        low = min(low, float(betaincinv(a, m - a + 1, tail)) if a > 0 else 0.0)
        high = max(high, float(betaincinv(a + 1, m - a, 1 - tail)) if a < m else 1.0)
    return [low, high]


SMALL_CLASS = 10  # below this many answers in the smaller class, auroc_ci widens to the exact binomial interval


def _check_unit_open(name: str, value: Any) -> float:
    x = finite_number(value)
    if x is None or not 0.0 < x < 1.0:
        raise InputError(f"{name} must be a number strictly between 0 and 1, got {value!r}; e.g. 0.9")
    return x


def clopper_pearson_upper(k: int, n: int, confidence: float) -> float:
    """Exact one-sided upper bound on a binomial rate after ``k`` events in ``n`` trials: the ``p`` with
    ``P(Binom(n, p) <= k) = 1 - confidence``. 1.0 when ``n == 0`` (nothing is known) or ``k == n``."""
    confidence = _check_unit_open("confidence", confidence)
    _check_counts(k, n)
    if n == 0 or k == n:
        return 1.0
    from scipy.special import betaincinv

    return float(betaincinv(k + 1, n - k, confidence))


def clopper_pearson_lower(k: int, n: int, confidence: float) -> float:
    """Exact one-sided lower bound: the ``p`` with ``P(Binom(n, p) >= k) = 1 - confidence``; 0 when k == 0."""
    upper = clopper_pearson_upper(k, n, confidence)  # validates the input
    if k == 0 or n == 0:
        return 0.0
    if upper == 1.0 and k == n:
        return float((1.0 - confidence) ** (1.0 / n))
    from scipy.special import betaincinv

    return float(betaincinv(k, n - k + 1, 1.0 - confidence))


def clopper_pearson_interval(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """Two-sided exact interval ``[lower, upper]`` of the rate ``k / n`` at ``level``; None when n == 0."""
    if n == 0:
        return None
    one_sided = 1.0 - (1.0 - level) / 2
    return [clopper_pearson_lower(k, n, one_sided), clopper_pearson_upper(k, n, one_sided)]


def _check_counts(k: int, n: int) -> None:
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"{name} must be a non-negative integer, got {v!r}")
    if k > n:
        raise InputError(f"k ({k}) cannot exceed n ({n}): there are at most n hallucinations in n answers")


def sequential_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Time-uniform ``(lower, upper)`` bounds on a binomial rate after ``k`` events in ``n`` trials: a
    confidence sequence, so that with probability ``confidence`` the rate lies within the bounds at *every*
    ``n`` at once, however often they are looked at and acted on (Clopper-Pearson bounds hold for one look).

    The bounds are the rates ``p`` whose evidence against them stays below ``1 / (1 - confidence)``: the
    beta-binomial mixture martingale with a uniform prior, ``B(k + 1, n - k + 1) / (p^k (1 - p)^(n - k))``,
    which by Ville's inequality passes that level at some ``n`` with probability at most ``1 - confidence``
    under the true rate (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021). Its log is convex in ``p``
    and at most 0 at ``k / n``, so the set is an interval around ``k / n``. ``(0, 1)`` when ``n == 0``."""
    confidence = _check_unit_open("confidence", confidence)
    _check_counts(k, n)
    if n == 0:
        return 0.0, 1.0
    import math

    from scipy.optimize import brentq
    from scipy.special import betaln

    level = math.log(1.0 / (1.0 - confidence))
    mix = float(betaln(k + 1, n - k + 1))

    def excess(p: float) -> float:  # log evidence against p, less the level
        return mix - (k * math.log(p) if k else 0.0) - ((n - k) * math.log1p(-p) if n - k else 0.0) - level

    tiny = 1e-15
    centre = k / n
    lower = 0.0 if k == 0 or excess(tiny) < 0 else brentq(excess, tiny, centre, xtol=1e-12)
    upper = 1.0 if k == n or excess(1.0 - tiny) < 0 else brentq(excess, centre, 1.0 - tiny, xtol=1e-12)
    return float(lower), float(upper)
