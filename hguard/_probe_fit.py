"""Fitting the sparse probe: scaling, the L1 regularisation path on a working set, and the choice of C.

:func:`fit_probe` does the work of :meth:`hguard.probe.HNeuronProbe.fit` and sets its fitted attributes.
"""

from __future__ import annotations

import inspect
import math
import warnings
from numbers import Integral

import numpy as np
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ._numerics import constant_columns
from ._probe_inputs import _check_lengths, _check_X, _check_y, _sample_weights
from ._stats import auroc
from .errors import InputError

# The length feature is standardised and then multiplied by this factor: an L1 penalty on a
# feature scaled up k times costs 1/k per unit of effect, so length is nearly unpenalised and
# enters before any neuron, and neurons must explain what length does not.
_LENGTH_BOOST = 10.0
# liblinear penalises the intercept as a weight on a constant column; a larger constant makes that
# penalty negligible without hurting the solver's conditioning.
_INTERCEPT_SCALING = 10.0
# Automatic grid: from just above the C at which the first neuron enters, up this many decades
# (at about 300x that C a 400-row probe is dense, a few hundred neurons, where L1 saturates at n).
_AUTO_GRID_START = 1.25
_AUTO_GRID_DECADES = 2.5
# Quantiles for the winsorised standard deviation: a single extreme answer should not shrink a
# neuron's scaled values (and so its chance to be selected).
_WINSOR_Q = 0.01
# A feature left out of a working-set fit is accepted as zero while C * |gradient| <= 1 + slack.
_KKT_SLACK = 1e-2
_MAX_KKT_ROUNDS = 50
# The least number of candidates a working-set round may add.
_MIN_ADD = 64

# scikit-learn 1.8 deprecated `penalty` in favour of `l1_ratio`; older versions need `penalty`.
_PENALTY_DEPRECATED = inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated"


def _l1_logistic(**kwargs) -> LogisticRegression:
    if _PENALTY_DEPRECATED:
        return LogisticRegression(l1_ratio=1.0, solver="liblinear", **kwargs)
    return LogisticRegression(penalty="l1", solver="liblinear", **kwargs)

# ------------------------------------------------------------------------------------------ scaling


class _Scaler:
    """Per-feature centre and scale fitted on training rows; constant features are dropped.

    Centre and scale are the mean and standard deviation of the feature winsorised at its 1% and
    99% order statistics (with under 100 rows, at its extremes, i.e. plain mean and std).
    """

    def __init__(self, X: np.ndarray, standardize: bool):
        # A constant feature cannot separate anything and would divide by zero when scaled.
        self.keep = np.flatnonzero(X.max(axis=0) > X.min(axis=0))
        if not standardize:
            self.center = np.zeros(self.keep.size)
            self.scale = np.ones(self.keep.size)
            return
        n = X.shape[0]
        k = int(math.floor(_WINSOR_Q * (n - 1)))
        # Partitioning rows of the transposed copy is faster than quantiles down strided columns,
        # and a partitioned row holds the same values, so it is winsorised and summarised in place.
        rows = np.ascontiguousarray((X[:, self.keep] if self.keep.size < X.shape[1] else X).T, dtype=np.float32)
        rows.partition([k, n - 1 - k], axis=1)
        lo, hi = rows[:, k].copy(), rows[:, n - 1 - k].copy()
        np.maximum(rows, lo[:, None], out=rows)
        np.minimum(rows, hi[:, None], out=rows)
        self.center, self.scale = _row_mean_std(rows)
        # Neurons that fire in under 1% of answers have no winsorised spread; their plain std is
        # still a fair unit.
        flat = ~(self.scale > 0)
        if flat.any():
            cols = self.keep[flat]
            self.center[flat], self.scale[flat] = _row_mean_std(np.ascontiguousarray(X[:, cols].T, dtype=np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        Xk = X[:, self.keep] if self.keep.size < X.shape[1] else X.astype(np.float32, copy=True)
        Xk = Xk.astype(np.float32, copy=False)
        Xk -= self.center.astype(np.float32)
        Xk /= self.scale.astype(np.float32)
        return Xk


def _row_mean_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # In place and with einsum: numpy's std of a wide float32 matrix allocates several temporaries.
    mean = rows.mean(axis=1, dtype=np.float64)
    rows -= mean.astype(np.float32)[:, None]
    return mean, np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64) / rows.shape[1])


class _LengthScaler:
    def __init__(self, loglen: np.ndarray):
        self.center = float(loglen.mean())
        sd = float(loglen.std())
        # Equal lengths give a zero column; a unit scale keeps it zero and harmless (see constant_columns).
        self.scale = 1.0 if constant_columns(sd, self.center) else sd

    def boosted(self, loglen: np.ndarray) -> np.ndarray:
        """The column the solver sees; its weight times _LENGTH_BOOST is the weight per std."""
        return (loglen - self.center) / self.scale * _LENGTH_BOOST


# --------------------------------------------------------------------------------------------- path


class _PathPoint:
    __slots__ = ("C", "active", "weights", "length_weight", "intercept", "kkt_ok", "n_iter")

    def __init__(self, C, active, weights, length_weight, intercept, kkt_ok, n_iter):
        self.C = C
        self.active = active
        self.weights = weights
        self.length_weight = length_weight
        self.intercept = intercept
        self.kkt_ok = kkt_ok
        self.n_iter = n_iter


def _auto_grid(Z: np.ndarray, y01: np.ndarray, sw: np.ndarray, n_points: int) -> np.ndarray:
    # With balanced (or no) weights the intercept-only model predicts the weighted mean of y; the
    # first neuron enters at C = 1 / max_j |gradient_j| of that model.
    p0 = float(np.sum(sw * y01) / np.sum(sw))
    g = Z.T @ (sw * (y01 - p0)).astype(np.float32)
    gmax = float(np.max(np.abs(g))) if g.size else 0.0
    c_min = 1.0 / gmax if gmax > 0 else 1.0
    return c_min * np.logspace(np.log10(_AUTO_GRID_START), np.log10(_AUTO_GRID_START) + _AUTO_GRID_DECADES, n_points)


def _strongest(score: np.ndarray, above: float, n_active: int) -> np.ndarray:
    """Indices with ``score > above``, at most the ``max(_MIN_ADD, n_active)`` largest.

    Adding every candidate at once is correct but makes liblinear's working set (and its cost)
    tens of times larger than the few hundred neurons that end up non-zero; capped additions cost
    a few more cheap rounds instead.
    """
    cand = np.flatnonzero(score > above)
    cap = max(_MIN_ADD, n_active)
    if cand.size > cap:
        cand = cand[np.argpartition(-score[cand], cap - 1)[:cap]]
    return cand


def _l1_path(
    Z: np.ndarray,
    y01: np.ndarray,
    zlen: np.ndarray | None,
    Cs: np.ndarray,
    *,
    class_weight,
    tol: float,
    max_iter: int,
    random_state,
) -> list[_PathPoint]:
    """L1 logistic regressions for ascending ``Cs`` on the columns of ``Z`` (+ the length column).

    liblinear copies a dense input into its own sparse format, which for 400 x 46,080 costs more
    than the solve; so each C is fitted on a small working set (the previous C's neurons plus those
    whose gradient says they would enter), and the fit is accepted only when no left-out neuron
    violates the optimality (KKT) condition C * |gradient_j| <= 1; violators are added and the fit
    is repeated. The result is the full-width L1 solution, to solver tolerance.
    """
    n, m = Z.shape
    sw = _sample_weights(y01, class_weight)
    p0 = float(np.sum(sw * y01) / np.sum(sw))
    grad = Z.T @ (sw * (y01 - p0)).astype(np.float32)
    active = np.zeros(0, dtype=np.intp)
    points: list[_PathPoint] = []
    for C in Cs:
        work = np.union1d(active, _strongest(C * np.abs(grad), 1.0, active.size))
        kkt_ok = False
        n_iter = 0
        for _ in range(_MAX_KKT_ROUNDS):
            cols = Z[:, work]
            if zlen is not None:
                cols = np.column_stack([cols, zlen.astype(np.float32)])
            if cols.shape[1] == 0:
                # Nothing can enter: the model is the intercept alone.
                w, b = np.zeros(0), math.log(p0 / (1.0 - p0))
                decision = np.full(n, b)
            else:
                clf = _l1_logistic(
                    C=float(C),
                    class_weight=class_weight,
                    intercept_scaling=_INTERCEPT_SCALING,
                    tol=tol,
                    max_iter=max_iter,
                    random_state=random_state,
                )
                clf.fit(cols, y01)
                w, b = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
                n_iter = max(n_iter, int(np.max(clf.n_iter_)))
                decision = cols.astype(np.float64) @ w + b
            grad = Z.T @ (sw * (y01 - expit(decision))).astype(np.float32)
            outside = np.ones(m, dtype=bool)
            outside[work] = False
            score = C * np.abs(grad)
            score[~outside] = 0.0
            violators = _strongest(score, 1.0 + _KKT_SLACK, work.size)
            if violators.size == 0:
                kkt_ok = True
                break
            work = np.union1d(work, violators)
        length_weight = None
        if zlen is not None:
            length_weight, w = float(w[-1]) if w.size else 0.0, w[:-1]
        nz = w != 0
        active = work[nz]
        points.append(_PathPoint(float(C), active, w[nz], length_weight, b, kkt_ok, n_iter))
    if not all(p.kkt_ok for p in points):
        warnings.warn(
            f"the L1 path did not settle in {_MAX_KKT_ROUNDS} working-set rounds at some C; the probe may be "
            "slightly off the optimum: raise max_iter or lower tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    return points


def _fold_scores(X, y01, loglen, train, test, Cs, standardize, length_control, fit_kw) -> tuple[list, list]:
    scaler = _Scaler(X[train], standardize)
    Z = scaler.transform(X[train])
    lscaler = _LengthScaler(loglen[train]) if length_control else None
    zlen = lscaler.boosted(loglen[train]) if lscaler is not None else None
    points = _l1_path(Z, y01[train], zlen, Cs, **fit_kw)
    del Z
    aurocs, counts = [], []
    Xte = X[test]
    for p in points:
        cols = scaler.keep[p.active]
        zt = (Xte[:, cols].astype(np.float64) - scaler.center[p.active]) / scaler.scale[p.active]
        d = zt @ p.weights + p.intercept
        if lscaler is not None:  # length control on
            d = d + p.length_weight * lscaler.boosted(loglen[test])
        fold_auroc = auroc(y01[test], d)
        if fold_auroc is None:
            raise ValueError("a cross-validation test fold holds answers of one class only; its AUROC is undefined")
        aurocs.append(fold_auroc)
        counts.append(int(p.active.size))
    return aurocs, counts


def fit_probe(self, X, y, lengths, groups=None):
    """Fit ``self`` (an HNeuronProbe) on CETT rows: the L1 path, C chosen by cross-validated AUROC."""
    self._validate_params()
    X = _check_X(X)
    y = _check_y(y, X.shape[0])
    classes, y01 = np.unique(y, return_inverse=True)
    counts = np.bincount(y01)
    if self.cv is not None and counts.min() < self.cv:
        raise InputError(
            f"only {counts.min()} answer(s) of class {classes[counts.argmin()]!r} for cv={self.cv} folds; "
            "collect more answers of that class or lower cv"
        )
    y01 = y01.astype(np.float64)
    loglen = _check_lengths(lengths, X.shape[0], self.length_control, "fit")
    n_layers, d_ff = self._resolve_shape(X.shape[1])

    fit_kw = dict(class_weight=self.class_weight, tol=float(self.tol), max_iter=int(self.max_iter),
                  random_state=self.random_state)
    scaler = _Scaler(X, self.standardize)
    Z = scaler.transform(X)
    lscaler: _LengthScaler | None = None
    zlen = None
    if loglen is not None:  # length control on
        lscaler = _LengthScaler(loglen)
        zlen = lscaler.boosted(loglen)
    if isinstance(self.Cs, Integral):
        Cs = _auto_grid(Z, y01, _sample_weights(y01, self.class_weight), int(self.Cs))
    else:
        Cs = np.unique(np.asarray(self.Cs, dtype=np.float64))

    # Folds run one after another: liblinear seeds a process-wide generator, so folds in
    # threads would make the probe depend on thread timing.
    if self.cv is None:
        folds = []  # one C given: nothing to choose, no fold is fitted
    elif groups is None:
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state).split(X, y01)
    else:
        groups = np.asarray(groups)
        if groups.shape != (X.shape[0],):
            raise InputError(
                f"groups has shape {groups.shape}; pass one group key per row of X ({X.shape[0]} rows)"
            )
        n_groups = len(np.unique(groups))
        if n_groups < self.cv:
            raise InputError(f"groups: {n_groups} distinct group(s) for cv={self.cv} folds; lower cv or pass groups=None")
        folds = StratifiedGroupKFold(self.cv, shuffle=True, random_state=self.random_state).split(X, y01, groups)
    results = [
        _fold_scores(X, y01, loglen, tr, te, Cs, self.standardize, self.length_control, fit_kw)
        for tr, te in folds
    ]
    if results:
        fold_auroc = np.array([r[0] for r in results]).T  # (n_C, n_folds)
        fold_counts = np.array([r[1] for r in results]).T
        mean = fold_auroc.mean(axis=1)
        std = fold_auroc.std(axis=1, ddof=1)
        se = std / math.sqrt(fold_auroc.shape[1])
        mean_counts = fold_counts.mean(axis=1)
    else:  # cv=None: no cross-validated figures
        fold_auroc = np.zeros((len(Cs), 0))
        mean = std = se = mean_counts = np.full(len(Cs), np.nan)

    # The whole path on all rows: the chosen C's probe is one point of it, and the others tell
    # how many neurons each C keeps on the full training set.
    points = _l1_path(Z, y01, zlen, Cs, **fit_kw)
    del Z
    full_counts = np.array([q.active.size for q in points])

    best = int(np.argmax(mean)) if results else 0  # first maximum: the smaller C on ties
    # A probe without neurons is not an H-Neuron probe, however well length alone scores.
    ok = (mean >= mean[best] - se[best]) & (mean_counts > 0) & (full_counts > 0)
    one_se = int(np.flatnonzero(ok)[0]) if ok.any() else best
    chosen = one_se if self.selection == "1se" else best
    p = points[chosen]
    order = np.argsort(scaler.keep[p.active])
    self.classes_ = classes
    self.n_features_in_ = int(X.shape[1])
    self.n_layers_, self.d_ff_ = n_layers, d_ff
    self.Cs_ = Cs
    self.C_ = float(Cs[chosen])
    self.best_C_ = float(Cs[best])
    self.one_se_C_ = float(Cs[one_se])
    self.cv_results_ = {
        "C": Cs.tolist(),
        "mean_auroc": mean.tolist(),
        "std_auroc": std.tolist(),
        "se_auroc": se.tolist(),
        "fold_auroc": fold_auroc.tolist(),
        "mean_n_neurons": mean_counts.tolist(),
        "n_neurons": full_counts.tolist(),
    }
    if not results:  # JSON has no NaN: "not measured" is None in the probe file
        for k in ("mean_auroc", "std_auroc", "se_auroc", "mean_n_neurons"):
            self.cv_results_[k] = [None] * len(Cs)
    self.feature_indices_ = scaler.keep[p.active][order].astype(np.int64)
    self.weights_ = p.weights[order]
    self.center_ = scaler.center[p.active][order]
    self.scale_ = scaler.scale[p.active][order]
    self.intercept_ = float(p.intercept)
    self.n_iter_ = np.array([p.n_iter])
    if lscaler is not None:  # set exactly when length_control is on
        self.length_center_, self.length_scale_ = lscaler.center, lscaler.scale
        self.length_weight_ = float(p.length_weight) * _LENGTH_BOOST
    else:
        self.length_center_ = self.length_scale_ = self.length_weight_ = None
    why = self.chance_warning()
    if why:
        # The selection rules always return some probe; on labels the neurons cannot predict
        # it would be noise with confident-looking weights.
        warnings.warn(f"{why}: check the labels, collect more labelled answers, or do not use a neuron probe for "
                      "this domain", UserWarning, stacklevel=3)
    if self.feature_indices_.size == 0:
        warnings.warn(
            f"the probe selected no neuron at C={self.C_:.4g} (its score rests on length and the intercept "
            "alone); the domain may lack signal or rows: collect more labelled answers",
            UserWarning,
            stacklevel=3,
        )
    return self
