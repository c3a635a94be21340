"""The sparse H-Neuron probe: an L1 logistic regression on per-answer CETT vectors, and its file format.

A row of ``X`` is one answer's mean CETT contribution of every FFN neuron, ``n_layers * d_ff`` float
features with feature index ``layer * d_ff + neuron``; labels are 1 for hallucinated, 0 for faithful
(any two labels work; ``classes_[1]`` is the positive class). The neurons with positive weight are
the domain's H-Neurons.

:class:`HNeuronProbe` follows scikit-learn's conventions, and adds what hguard needs:

* the regularisation is chosen by stratified K-fold cross-validated AUROC on the training rows,
  with the one-standard-error rule towards sparser probes by default (sparse probes transfer better
  to other questions of the same domain), and ``cv_results_`` keeps the whole grid;
* features are centred and scaled on the training rows (L1 is scale sensitive); scaling is fitted
  inside each fold too, so the cross-validated scores do not see the held-out rows;
* answer length, ``log(1 + n_tokens)``, is a separate feature with a light penalty, because
  averaged CETT tracks length, and it is reported apart from the neurons;
* only the selected neurons are needed at inference: :meth:`HNeuronProbe.predict_proba_subset`
  takes their values in ``feature_indices_`` order, which is what the recorder produces;
* :meth:`HNeuronProbe.save` / :meth:`HNeuronProbe.load` use JSON, never pickle, with a
  ``probe_id`` (a content hash) and fingerprints of the model, chat template and system prompt the
  probe was calibrated under.

:func:`random_neuron_probe` is the "random neurons of the same count" baseline of the evaluation.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import stat
import tempfile
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d
from threadpoolctl import threadpool_limits

from hguard.errors import InputError, ProbeError, ProbeMismatchError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HNeuronProbe",
    "RandomNeuronProbe",
    "check_fingerprints",
    "random_neuron_probe",
]

FORMAT_NAME = "hguard.h_neuron_probe"
FORMAT_VERSION = 1

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

_FINGERPRINT_FIXES = {
    "model_fingerprint": "for this model",
    "chat_template_fingerprint": "for this chat template",
    "system_prompt_fingerprint": "with this system prompt",
}

# scikit-learn 1.8 deprecated `penalty` in favour of `l1_ratio`; older versions need `penalty`.
_PENALTY_DEPRECATED = inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated"


def _l1_logistic(**kwargs) -> LogisticRegression:
    if _PENALTY_DEPRECATED:
        return LogisticRegression(l1_ratio=1.0, solver="liblinear", **kwargs)
    return LogisticRegression(penalty="l1", solver="liblinear", **kwargs)


# ------------------------------------------------------------------------------------------- inputs


def _check_X(X, name: str = "X") -> np.ndarray:
    try:
        return check_array(X, dtype=(np.float32, np.float64), ensure_2d=True)
    except ValueError as e:
        raise InputError(
            f"{name} is not usable as CETT features ({e}); pass a finite 2-D array of shape (n_answers, n_features)"
        ) from e


def _check_lengths(lengths, n_rows: int, length_control: bool, where: str) -> np.ndarray | None:
    if not length_control:
        return None
    if lengths is None:
        raise InputError(
            f"{where}: lengths=None but the probe uses length control; pass lengths= (answer length in tokens, "
            "one per row) or use HNeuronProbe(length_control=False)"
        )
    arr = np.asarray(lengths, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n_rows:
        raise InputError(
            f"{where}: lengths has shape {arr.shape} but X has {n_rows} rows; pass one answer length per row"
        )
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: lengths[{i}] = {float(arr[i])!r} is not a finite count >= 0; pass token counts")
    return np.log1p(arr)


def _check_y(y, n_rows: int) -> np.ndarray:
    if y is None:
        raise InputError(
            "HNeuronProbe requires y to be passed, but the target y is None; pass one label per row "
            "(1 = hallucinated, 0 = faithful)"
        )
    try:
        y = column_or_1d(y, warn=True)
    except ValueError as e:
        raise InputError(f"y is not a 1-D array of labels ({e}); pass one label per row") from e
    if y.shape[0] != n_rows:
        raise InputError(f"y has {y.shape[0]} labels but X has {n_rows} rows; pass one label per row")
    kind = type_of_target(y)
    if kind == "continuous":
        raise InputError(
            "Unknown label type: continuous values in y (e.g. " f"{y[:3].tolist()}); pass class labels, "
            "1 = hallucinated, 0 = faithful"
        )
    classes = np.unique(y)
    if classes.size == 1:
        raise InputError(
            f"y has only one class ({classes[0]!r}); the probe needs both hallucinated (1) and faithful (0) "
            "answers: collect answers of the other class"
        )
    if classes.size > 2:
        raise InputError(
            f"Only binary classification is supported; y has {classes.size} classes {classes.tolist()[:5]}. "
            "Pass 1 = hallucinated, 0 = faithful"
        )
    return y


def _sample_weights(y01: np.ndarray, class_weight) -> np.ndarray:
    if class_weight is None:
        return np.ones(y01.shape[0])
    n, n_pos = y01.shape[0], int(y01.sum())
    # The same weights that LogisticRegression(class_weight="balanced") uses: n / (2 * n_class).
    return np.where(y01 == 1, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))


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
        # Equal lengths give a zero column; any positive scale keeps it zero and harmless.
        self.scale = sd if sd > 0 else 1.0

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
    zlen = lscaler.boosted(loglen[train]) if length_control else None
    points = _l1_path(Z, y01[train], zlen, Cs, **fit_kw)
    del Z
    aurocs, counts = [], []
    Xte = X[test]
    for p in points:
        cols = scaler.keep[p.active]
        zt = (Xte[:, cols].astype(np.float64) - scaler.center[p.active]) / scaler.scale[p.active]
        d = zt @ p.weights + p.intercept
        if length_control:
            d = d + p.length_weight * lscaler.boosted(loglen[test])
        aurocs.append(float(roc_auc_score(y01[test], d)))
        counts.append(int(p.active.size))
    return aurocs, counts


# -------------------------------------------------------------------------------------------- probe


class HNeuronProbe(ClassifierMixin, BaseEstimator):
    """Sparse (L1) logistic probe on CETT vectors, with the regularisation chosen by CV AUROC.

    Parameters
    ----------
    Cs : int or sequence of float, default=10
        An int asks for that many values, log-spaced from just above the C at which the first
        neuron enters (on the standardised training data) up 2.5 decades; a sequence is used as
        given (sorted). C is liblinear's: larger C, weaker penalty, more neurons.
    cv : int or None, default=5
        Stratified folds for choosing C (shuffled with ``random_state``; grouped when ``fit`` gets
        ``groups``). None fits the single C given in ``Cs`` without cross-validation (for refits
        whose C was already chosen); the cross-validated entries of ``cv_results_`` are then None.
    selection : {"1se", "best"}, default="1se"
        "best": the C with the highest mean CV AUROC. "1se": the smallest C (fewest neurons) whose
        mean AUROC is within one standard error of the best, among those with any neuron.
    standardize : bool, default=True
        Centre and scale each neuron by the mean and standard deviation of its training values
        winsorised at the 1% and 99% order statistics. False keeps raw CETT values, as in the paper.
    length_control : bool, default=True
        Add ``log(1 + answer length)``, standardised and almost unpenalised, as a feature; then
        ``fit``, ``predict_proba`` etc. need ``lengths=``.
    class_weight : "balanced" or None, default="balanced"
    max_iter : int, default=1000
        liblinear's iteration limit per fit.
    tol : float, default=1e-4
        liblinear's stopping tolerance.
    random_state : int or None, default=0
        Seeds the folds and liblinear's coordinate order.
    n_layers, d_ff : int or None
        Map feature index to (layer, neuron). One is inferred from the other and the number of
        features; with neither, the features are treated as one layer.

    Fitted attributes
    -----------------
    classes_, n_features_in_, n_layers_, d_ff_, Cs_ (the grid), C_ (the one used), best_C_,
    one_se_C_, cv_results_ (per C: mean/std/se AUROC, fold AUROCs, mean neurons per fold, neurons
    on all training rows), feature_indices_ (sorted global indices of the selected neurons, alias
    ``selected_``), weights_ (aligned with them, per scaled unit), center_, scale_ (for those
    neurons only), intercept_ (float), length_center_, length_scale_, length_weight_ (None
    without length control; per standard deviation of log length, like the neuron weights),
    n_iter_ (liblinear iterations of the final fit). ``coef_`` is the dense (1, n_features_in_)
    view of ``weights_``. After save or load: probe_id_, metadata_.
    """

    def __init__(
        self,
        Cs=10,
        *,
        cv=5,
        selection="1se",
        standardize=True,
        length_control=True,
        class_weight="balanced",
        max_iter=1000,
        tol=1e-4,
        random_state=0,
        n_layers=None,
        d_ff=None,
    ):
        self.Cs = Cs
        self.cv = cv
        self.selection = selection
        self.standardize = standardize
        self.length_control = length_control
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_layers = n_layers
        self.d_ff = d_ff

    # scikit-learn >= 1.6 reads tags from here, older versions from _more_tags.
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _more_tags(self):
        return {"binary_only": True}

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "weights_")

    # ------------------------------------------------------------------------------------ fit

    def _validate_params(self) -> None:
        def bad(name, fix):
            raise InputError(f"HNeuronProbe({name}={getattr(self, name)!r}): {fix}")

        if self.selection not in ("1se", "best"):
            bad("selection", 'use "1se" (sparser, transfers better) or "best"')
        if self.cv is None:
            if isinstance(self.Cs, Integral) or np.size(self.Cs) != 1:
                bad("cv", "cv=None (no cross-validation) needs a single C, e.g. Cs=[0.05]; or use an int >= 2")
        elif not isinstance(self.cv, Integral) or isinstance(self.cv, bool) or self.cv < 2:
            bad("cv", "use an int >= 2 (number of stratified folds), or None with a single C")
        if self.class_weight not in ("balanced", None):
            bad("class_weight", 'use "balanced" or None')
        if not isinstance(self.max_iter, Integral) or self.max_iter < 1:
            bad("max_iter", "use an int >= 1")
        if not isinstance(self.tol, Real) or not self.tol > 0:
            bad("tol", "use a float > 0, e.g. 1e-4")
        if self.random_state is not None and (
            not isinstance(self.random_state, Integral) or isinstance(self.random_state, bool)
        ):
            bad("random_state", "use an int or None (it is stored in the probe file)")
        for name in ("n_layers", "d_ff"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, Integral) or isinstance(v, bool) or v < 1):
                bad(name, "use a positive int or None")
        if isinstance(self.Cs, Integral) and not isinstance(self.Cs, bool):
            if self.Cs < 1:
                bad("Cs", "use an int >= 1 (grid size) or a sequence of positive floats")
        else:
            try:
                arr = np.asarray(self.Cs, dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.array([np.nan])
            if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                bad("Cs", "use an int (grid size) or a non-empty sequence of finite floats > 0")

    def _resolve_shape(self, n_features: int) -> tuple[int, int]:
        nl, df = self.n_layers, self.d_ff
        if nl is None and df is None:
            return 1, n_features
        if df is None:
            df, rem = divmod(n_features, nl)
            if rem:
                raise InputError(
                    f"X has {n_features} features, not a multiple of n_layers={nl}; pass the model's n_layers and d_ff"
                )
        elif nl is None:
            nl, rem = divmod(n_features, df)
            if rem:
                raise InputError(
                    f"X has {n_features} features, not a multiple of d_ff={df}; pass the model's n_layers and d_ff"
                )
        if nl * df != n_features:
            raise InputError(
                f"X has {n_features} features but n_layers={nl} x d_ff={df} = {nl * df}; "
                "pass the n_layers and d_ff of the model that recorded X"
            )
        return int(nl), int(df)

    def fit(self, X, y, lengths=None, groups=None):
        """Fit on CETT rows ``X`` (n, n_features), labels ``y`` (n,), answer lengths (n,) in tokens.

        ``groups`` (n,): rows that share a value (e.g. phrasings of one fact) stay in one fold while C
        is chosen, so the CV AUROC is not inflated by near-duplicates on both sides of a fold.
        """
        # The path does hundreds of matrix-vector products; they are memory bound, and a
        # multi-threaded BLAS spinning on a busy 2-core machine made each one 20-50x slower.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y, lengths, groups)

    def _fit(self, X, y, lengths, groups=None):
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
        lscaler = _LengthScaler(loglen) if self.length_control else None
        zlen = lscaler.boosted(loglen) if self.length_control else None
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
        if self.length_control:
            self.length_center_, self.length_scale_ = lscaler.center, lscaler.scale
            self.length_weight_ = float(p.length_weight) * _LENGTH_BOOST
        else:
            self.length_center_ = self.length_scale_ = self.length_weight_ = None
        if mean[best] - 2.0 * se[best] <= 0.5:
            # The selection rules always return some probe; on labels the neurons cannot predict
            # it would be noise with confident-looking weights.
            warnings.warn(
                f"the probe does not beat chance in cross-validation: best mean AUROC {mean[best]:.3f} "
                f"(standard error {se[best]:.3f}) at C={self.best_C_:.4g}; its scores carry no signal: check "
                "the labels, collect more labelled answers, or do not use a neuron probe for this domain",
                UserWarning,
                stacklevel=3,
            )
        if self.feature_indices_.size == 0:
            warnings.warn(
                f"the probe selected no neuron at C={self.C_:.4g} (its score rests on length and the intercept "
                "alone); the domain may lack signal or rows: collect more labelled answers",
                UserWarning,
                stacklevel=3,
            )
        return self

    # ---------------------------------------------------------------------------- inference

    @property
    def selected_(self) -> np.ndarray:
        check_is_fitted(self)
        return self.feature_indices_

    @property
    def coef_(self) -> np.ndarray:
        check_is_fitted(self)
        dense = np.zeros((1, self.n_features_in_))
        dense[0, self.feature_indices_] = self.weights_
        return dense

    @property
    def neurons_(self) -> list[tuple[int, int, float]]:
        """(layer, neuron, weight) of every selected neuron, largest |weight| first."""
        check_is_fitted(self)
        order = sorted(range(self.weights_.size), key=lambda i: (-abs(self.weights_[i]), self.feature_indices_[i]))
        return [
            (int(self.feature_indices_[i] // self.d_ff_), int(self.feature_indices_[i] % self.d_ff_),
             float(self.weights_[i]))
            for i in order
        ]

    @property
    def h_neurons_(self) -> list[tuple[int, int, float]]:
        """The neurons whose activity raises the risk (positive weight): the domain's H-Neurons."""
        return [t for t in self.neurons_ if t[2] > 0]

    def decision_function_subset(self, values, lengths=None) -> np.ndarray:
        """Log-odds of the positive class from the selected neurons' values only.

        ``values``: (n, len(feature_indices_)), columns in ``feature_indices_`` order (what the
        recorder returns when asked for that subset). ``lengths``: (n,) answer lengths in tokens.
        """
        check_is_fitted(self)
        k = self.feature_indices_.size
        try:
            V = check_array(values, dtype=(np.float64, np.float32), ensure_min_features=0)
        except ValueError as e:
            raise InputError(
                f"values are not usable ({e}); pass a finite (n, {k}) array in feature_indices_ order"
            ) from e
        if V.shape[1] != k:
            raise InputError(
                f"values has {V.shape[1]} columns but the probe uses {k} neurons; record exactly "
                "probe.feature_indices_, in that order"
            )
        return self._decide(V, lengths, "decision_function_subset")

    def predict_proba_subset(self, values, lengths=None) -> np.ndarray:
        """(n, 2) class probabilities from the selected neurons' values only (see decision_function_subset)."""
        return _two_columns(expit(self.decision_function_subset(values, lengths)))

    def _decide(self, V: np.ndarray, lengths, where: str) -> np.ndarray:
        loglen = _check_lengths(lengths, V.shape[0], self.length_control, where)
        d = ((V.astype(np.float64) - self.center_) / self.scale_) @ self.weights_ + self.intercept_
        if self.length_control:
            d = d + self.length_weight_ * (loglen - self.length_center_) / self.length_scale_
        return d

    def _full(self, X, where: str) -> np.ndarray:
        check_is_fitted(self)
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but HNeuronProbe is expecting {self.n_features_in_} features "
                f"as input ({where}); pass all n_layers x d_ff CETT features, or use the *_subset methods "
                "with the values of feature_indices_"
            )
        return X[:, self.feature_indices_]

    def decision_function(self, X, lengths=None) -> np.ndarray:
        """Log-odds of the positive class (hallucinated), shape (n,)."""
        return self._decide(self._full(X, "decision_function"), lengths, "decision_function")

    def predict_proba(self, X, lengths=None) -> np.ndarray:
        """(n, 2): probabilities of classes_[0] and classes_[1] (hallucinated)."""
        return _two_columns(expit(self.decision_function(X, lengths)))

    def predict(self, X, lengths=None) -> np.ndarray:
        d = self.decision_function(X, lengths)
        return self.classes_[(d > 0).astype(int)]

    def score(self, X, y, sample_weight=None, lengths=None) -> float:
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y, self.predict(X, lengths), sample_weight=sample_weight))

    # --------------------------------------------------------------------------------- files

    def _payload(self) -> dict:
        check_is_fitted(self)
        params = {k: _jsonable(v, f"params[{k!r}]") for k, v in self.get_params().items()}
        length = None
        if self.length_control:
            length = {"center": self.length_center_, "scale": self.length_scale_, "weight": self.length_weight_}
        model = {
            "classes": _jsonable(self.classes_.tolist(), "classes_"),
            "n_features_in": self.n_features_in_,
            "n_layers": self.n_layers_,
            "d_ff": self.d_ff_,
            "Cs": [float(c) for c in self.Cs_],
            "C": self.C_,
            "best_C": self.best_C_,
            "one_se_C": self.one_se_C_,
            "cv_results": _jsonable(self.cv_results_, "cv_results_"),
            "feature_indices": [int(i) for i in self.feature_indices_],
            "weights": [float(w) for w in self.weights_],
            "center": [float(c) for c in self.center_],
            "scale": [float(s) for s in self.scale_],
            "intercept": float(self.intercept_),
            "n_iter": int(self.n_iter_[0]),
            "length": length,
        }
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "params": params, "model": model}

    def save(self, path, *, metadata: Mapping[str, Any], key: bytes | None = None) -> str:
        """Write the probe and free-form JSON ``metadata`` to ``path``; returns the ``probe_id``.

        ``metadata`` should hold ``model_fingerprint``, ``chat_template_fingerprint``,
        ``system_prompt_fingerprint``, ``domain``, ``data_hash``, ``metrics``, ``created``, and may hold
        anything else JSON can carry (numpy scalars and arrays are converted). The file is replaced
        atomically. With ``key`` (see :mod:`hguard.integrity`) the file is signed.
        """
        if not isinstance(metadata, Mapping):
            raise InputError(f"metadata is a {type(metadata).__name__}, not a dict; pass a dict of JSON values")
        doc = self._payload()
        doc["metadata"] = _jsonable(dict(metadata), "metadata")
        doc["probe_id"] = _probe_id(doc)
        if key is not None:
            doc["signature"] = _signature(doc, key)
        text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep a shared probe from its readers
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.probe_id_ = doc["probe_id"]
        self.metadata_ = doc["metadata"]
        return doc["probe_id"]

    @classmethod
    def load(
        cls, path, *, expect: Mapping[str, Any] | None = None, key: bytes | None = None,
        require_signature: bool = False,
    ) -> tuple["HNeuronProbe", dict]:
        """Read a probe file; returns ``(probe, metadata)``.

        ``expect`` maps metadata keys (typically the three fingerprints) to the values of the running
        setup; any difference raises :class:`ProbeMismatchError`. A file that is not a probe, is
        truncated, or was edited after saving raises :class:`ProbeError`; so does, with ``key``, a
        signature that does not match, and with ``require_signature`` a file that is not signed.
        """
        path = Path(path)
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
                raise ProbeError(f"probe file {str(path)!r} is not a regular file; put the probe's JSON file there")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise ProbeError(f"probe file {str(path)!r} does not exist; calibrate the domain with `hguard calibrate`") from e
        except (OSError, UnicodeDecodeError) as e:
            raise ProbeError(f"probe file {str(path)!r} cannot be read ({e}); restore it or recalibrate the domain") from e
        try:
            doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except (ValueError, RecursionError) as e:
            raise ProbeError(
                f"probe file {str(path)!r} is not valid JSON ({e}); it is truncated or damaged: restore it or recalibrate"
            ) from e
        probe = _from_document(doc, path, cls)
        _check_signature(doc, path, key, require_signature)
        metadata = probe.metadata_
        if expect:
            problems = check_fingerprints(metadata, expect)
            if problems:
                domain = metadata.get("domain")
                how = " and ".join(
                    _FINGERPRINT_FIXES[k] for k in expect if k in _FINGERPRINT_FIXES and _differs(metadata, k, expect[k])
                )
                cmd = f"hguard calibrate --domain {domain}" if isinstance(domain, str) else "hguard calibrate"
                raise ProbeMismatchError(
                    f"probe file {str(path)!r} was calibrated under another setup: {'; '.join(problems)}; "
                    f"recalibrate with `{cmd}` {how or 'for this setup'}, or load the probe made for it"
                )
        return probe, metadata


def _two_columns(p1: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p1, p1])


# ---------------------------------------------------------------------------------- fingerprints


def _differs(metadata: Mapping[str, Any], key: str, expected) -> bool:
    return expected is not None and (key not in metadata or metadata[key] != expected)


def check_fingerprints(metadata: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between a probe's metadata and the running setup.

    ``expected`` maps keys (``model_fingerprint``, ``chat_template_fingerprint``,
    ``system_prompt_fingerprint``, or any other metadata key) to the running values; a value of None
    means "unknown here" and is not checked. A key the probe lacks is a difference. An empty list
    means the probe matches.
    """
    problems = []
    for key, want in expected.items():
        if want is None:
            continue
        if key not in metadata:
            problems.append(f"{key}: the probe records none, this setup has {want!r}")
        elif metadata[key] != want:
            problems.append(f"{key}: the probe was calibrated with {metadata[key]!r}, this setup has {want!r}")
    return problems


# ------------------------------------------------------------------------------------------- JSON


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text} overflows to {value}")
    return value


def _jsonable(value, where: str):
    """``value`` as plain JSON types (numpy converted), or InputError naming the offending entry."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        f = float(value)
        if not math.isfinite(f):
            raise InputError(f"{where} = {f!r} is not finite and JSON cannot hold it; store None or a string")
        return f
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"{where} has key {k!r} of type {type(k).__name__}; JSON keys must be str")
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InputError(f"{where} is a {type(value).__name__} ({value!r:.60}); store JSON values only")


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _probe_id(doc: Mapping[str, Any]) -> str:
    # Python's float repr round-trips, so the hash of the re-read document equals the saved one.
    body = {k: doc[k] for k in ("format", "version", "params", "model", "metadata")}
    return hashlib.sha256(_canonical(body)).hexdigest()[:16]


def _signature(doc: Mapping[str, Any], key: bytes) -> dict:
    from .integrity import SIGNATURE_ALG, key_id, mac_hex

    body = {k: v for k, v in doc.items() if k != "signature"}
    return {"alg": SIGNATURE_ALG, "key_id": key_id(key), "mac": mac_hex(key, _canonical(body))}


def _check_signature(doc: Mapping[str, Any], path: Path, key: bytes | None, required: bool) -> None:
    """ProbeError unless the document's signature checks under key (or no key is given and none is required)."""
    from .integrity import KEY_FILE_ENV, SIGNATURE_ALG, key_id, mac_matches

    where = f"probe file {str(path)!r}"
    sig = doc.get("signature")
    if key is None:
        if required:
            raise ProbeError(
                f"{where} cannot be checked: signed probes are required ([integrity] require_signed_probes) but no "
                f"key is configured; set {KEY_FILE_ENV} or [integrity] key_file to the key calibration signed with"
            )
        return
    if sig is None:
        if required:
            raise ProbeError(
                f"{where} is not signed, and signed probes are required; recalibrate with {KEY_FILE_ENV} set "
                "(calibration signs with it), or set [integrity] require_signed_probes = false"
            )
        return
    if not isinstance(sig, dict) or sig.get("alg") != SIGNATURE_ALG or not isinstance(sig.get("mac"), str):
        raise ProbeError(f"{where} has a malformed signature ({sig!r:.80}); restore the file or recalibrate")
    body = {k: v for k, v in doc.items() if k != "signature"}
    if not mac_matches(key, _canonical(body), sig["mac"]):
        if sig.get("key_id") != key_id(key):
            raise ProbeError(
                f"{where} was signed with another key (key id {sig.get('key_id')!r:.40}, the configured key's is "
                f"{key_id(key)!r}); configure the key it was calibrated with, or recalibrate"
            )
        raise ProbeError(
            f"{where} fails its signature: it was changed after calibration signed it; restore the original "
            "file or recalibrate (never edit probe files by hand)"
        )


def _from_document(doc, path: Path, cls) -> HNeuronProbe:
    where = f"probe file {str(path)!r}"

    def fail(what: str):
        raise ProbeError(f"{where}: {what}; the file is damaged or from another tool: restore it or recalibrate")

    if not isinstance(doc, dict):
        fail(f"top level is a {type(doc).__name__}, not an object")
    if doc.get("format") != FORMAT_NAME:
        fail(f"format is {doc.get('format')!r}, expected {FORMAT_NAME!r}")
    if doc.get("version") != FORMAT_VERSION:
        raise ProbeError(
            f"{where} has format version {doc.get('version')!r}; this hguard reads version {FORMAT_VERSION}: "
            "upgrade hguard or recalibrate the domain"
        )
    for key, typ in (("params", dict), ("model", dict), ("metadata", dict), ("probe_id", str)):
        if not isinstance(doc.get(key), typ):
            fail(f"{key!r} is missing or not a {typ.__name__}")
    actual = _probe_id(doc)
    if actual != doc["probe_id"]:
        raise ProbeError(
            f"{where} was modified after it was saved: it says probe_id {doc['probe_id']!r} but its content hashes "
            f"to {actual!r}; restore the original file or recalibrate (never edit probe files by hand)"
        )
    m = doc["model"]

    def get(key, check, what):
        if key not in m or not check(m[key]):
            fail(f"model[{key!r}] is missing or not {what} (found {m.get(key)!r:.60})")
        return m[key]

    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    is_num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    nums = lambda v: isinstance(v, list) and all(is_num(x) for x in v)  # noqa: E731

    n_features = get("n_features_in", lambda v: is_int(v) and v > 0, "a positive int")
    n_layers = get("n_layers", lambda v: is_int(v) and v > 0, "a positive int")
    d_ff = get("d_ff", lambda v: is_int(v) and v > 0, "a positive int")
    if n_layers * d_ff != n_features:
        fail(f"n_layers {n_layers} x d_ff {d_ff} != n_features_in {n_features}")
    classes = get("classes", lambda v: isinstance(v, list) and len(v) == 2, "a list of two labels")
    idx = get("feature_indices", lambda v: isinstance(v, list) and all(is_int(i) for i in v), "a list of ints")
    k = len(idx)
    weights = get("weights", lambda v: nums(v) and len(v) == k, f"{k} numbers")
    center = get("center", lambda v: nums(v) and len(v) == k, f"{k} numbers")
    scale = get("scale", lambda v: nums(v) and len(v) == k and all(s > 0 for s in v), f"{k} numbers > 0")
    if any(not 0 <= i < n_features for i in idx) or any(a >= b for a, b in zip(idx, idx[1:])):
        fail(f"feature_indices are not strictly increasing within 0..{n_features - 1}")
    intercept = get("intercept", is_num, "a number")
    n_iter = get("n_iter", lambda v: is_int(v) and v >= 0, "an int >= 0")
    Cs = get("Cs", lambda v: nums(v) and len(v) > 0, "a list of numbers")
    C = get("C", is_num, "a number")
    best_C = get("best_C", is_num, "a number")
    one_se_C = get("one_se_C", is_num, "a number")
    cv_results = get("cv_results", lambda v: isinstance(v, dict), "an object")
    length = m.get("length")
    if length is not None and not (
        isinstance(length, dict) and all(is_num(length.get(x)) for x in ("center", "scale", "weight"))
        and length["scale"] > 0
    ):
        fail(f"model['length'] is not null or an object with numeric center, scale > 0, weight (found {length!r:.60})")

    try:
        probe = cls(**doc["params"])
        probe._validate_params()
    except (TypeError, InputError) as e:
        fail(f"params are not valid for {cls.__name__} ({e})")
    if probe.length_control != (length is not None):
        fail(f"length_control={probe.length_control!r} but the length section is {length!r:.60}")
    probe.classes_ = np.asarray(classes)
    probe.n_features_in_ = n_features
    probe.n_layers_, probe.d_ff_ = n_layers, d_ff
    probe.Cs_ = np.asarray(Cs, dtype=np.float64)
    probe.C_, probe.best_C_, probe.one_se_C_ = float(C), float(best_C), float(one_se_C)
    probe.cv_results_ = cv_results
    probe.feature_indices_ = np.asarray(idx, dtype=np.int64)
    probe.weights_ = np.asarray(weights, dtype=np.float64)
    probe.center_ = np.asarray(center, dtype=np.float64)
    probe.scale_ = np.asarray(scale, dtype=np.float64)
    probe.intercept_ = float(intercept)
    probe.n_iter_ = np.array([n_iter])
    if length is None:
        probe.length_center_ = probe.length_scale_ = probe.length_weight_ = None
    else:
        probe.length_center_ = float(length["center"])
        probe.length_scale_ = float(length["scale"])
        probe.length_weight_ = float(length["weight"])
    probe.probe_id_ = doc["probe_id"]
    probe.metadata_ = doc["metadata"]
    return probe


# -------------------------------------------------------------------------------------- baseline


class RandomNeuronProbe:
    """The "random neurons of the same count" baseline: L2 logistic regression on random neurons.

    Built by :func:`random_neuron_probe`. Set: ``feature_indices_`` (sorted), ``center_``, ``scale_``,
    ``weights_`` (aligned with them), ``length_`` ((centre, scale) of log length, or None),
    ``length_weight_`` (None without lengths), ``intercept_``, ``C_``, ``cv_auroc_`` (mean CV AUROC
    per C in ``Cs_``). Predict with all features (``predict_proba``) or with the chosen neurons'
    values (``predict_proba_subset``); :meth:`to_dict` gives the JSON form for a report or probe file.
    """

    def __init__(self, feature_indices, scaler_center, scaler_scale, length_scaler, model, n_features_in, Cs, cv_auroc):
        self.feature_indices_ = feature_indices
        self.center_ = self._center = scaler_center
        self.scale_ = self._scale = scaler_scale
        self.length_ = self._length = length_scaler
        self._model = model
        coef = model.coef_[0].astype(np.float64)
        self.weights_ = coef[: feature_indices.size]
        self.length_weight_ = float(coef[-1]) if length_scaler is not None else None
        self.intercept_ = float(model.intercept_[0])
        self.n_features_in_ = n_features_in
        self.Cs_ = Cs
        self.C_ = float(model.C)
        self.cv_auroc_ = cv_auroc
        self.classes_ = np.array([0, 1])

    def to_dict(self) -> dict:
        """Plain-JSON description; the score is ``expit(((v - center) / scale) @ coef[:k] + length term + intercept)``."""
        return {
            "feature_indices": [int(i) for i in self.feature_indices_],
            "center": [float(c) for c in self.center_],
            "scale": [float(c) for c in self.scale_],
            "length": None if self.length_ is None else [float(self.length_[0]), float(self.length_[1])],
            "coef": [float(c) for c in self._model.coef_[0]],
            "intercept": self.intercept_,
            "C": self.C_,
        }

    def _design(self, V, lengths, where):
        V = np.asarray(V, dtype=np.float64)
        Z = (V - self._center) / self._scale
        if self._length is not None:
            loglen = _check_lengths(lengths, V.shape[0], True, where)
            Z = np.column_stack([Z, (loglen - self._length[0]) / self._length[1]])
        return Z

    def decision_function_subset(self, values, lengths=None) -> np.ndarray:
        V = _check_X(values, "values")
        if V.shape[1] != self.feature_indices_.size:
            raise InputError(
                f"values has {V.shape[1]} columns, the baseline uses {self.feature_indices_.size} neurons; "
                "pass the values of feature_indices_ in that order"
            )
        return self._model.decision_function(self._design(V, lengths, "decision_function_subset"))

    def decision_function(self, X, lengths=None) -> np.ndarray:
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X.shape[1]} features, the baseline was fitted on {self.n_features_in_}; pass rows "
                "recorded from the same model"
            )
        return self._model.decision_function(self._design(X[:, self.feature_indices_], lengths, "decision_function"))

    def predict_proba(self, X, lengths=None) -> np.ndarray:
        return _two_columns(expit(self.decision_function(X, lengths)))

    def predict_proba_subset(self, values, lengths=None) -> np.ndarray:
        return _two_columns(expit(self.decision_function_subset(values, lengths)))

    def predict(self, X, lengths=None) -> np.ndarray:
        return (self.decision_function(X, lengths) > 0).astype(int)


def random_neuron_probe(
    X,
    y,
    n_neurons: int,
    seed: int,
    lengths=None,
    *,
    Cs: Sequence[float] = tuple(np.logspace(-4, 1, 11)),
    cv: int = 5,
) -> RandomNeuronProbe:
    """Fit the random-neuron baseline: ``n_neurons`` neurons drawn with ``seed`` among the non-constant ones.

    Same scaling as the probe, L2 penalty (a handful of random neurons need shrinkage, not selection),
    C chosen by stratified ``cv``-fold AUROC, balanced class weights; answer length is a feature when
    ``lengths`` is given. ``y`` must be 0/1 (1 = hallucinated).
    """
    X = _check_X(X)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0] or not np.isin(y, (0, 1)).all() or np.unique(y).size != 2:
        raise InputError(
            f"y must hold one 0/1 label per row of X ({X.shape[0]}) with both classes; got shape {y.shape} "
            f"and labels {np.unique(y).tolist()[:5]}"
        )
    y = y.astype(int)
    if not isinstance(n_neurons, Integral) or n_neurons < 1:
        raise InputError(f"n_neurons={n_neurons!r}: pass the probe's neuron count, an int >= 1")
    counts = np.bincount(y)
    if counts.min() < cv:
        raise InputError(f"only {counts.min()} answer(s) of one class for cv={cv}; lower cv or collect more answers")
    # Drawing from constant neurons would handicap the baseline with features that cannot help.
    varying = np.flatnonzero(X.max(axis=0) > X.min(axis=0))
    if n_neurons > varying.size:
        raise InputError(
            f"n_neurons={n_neurons} but only {varying.size} neurons vary in X; pass a smaller count"
        )
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(varying, size=int(n_neurons), replace=False))
    V = X[:, idx].astype(np.float64)
    scaler = _Scaler(V, True)
    center, scale = scaler.center, scaler.scale  # all kept: the draw was among varying neurons
    length = None
    loglen = None
    if lengths is not None:
        loglen = _check_lengths(lengths, X.shape[0], True, "random_neuron_probe")
        sd = float(loglen.std())
        length = (float(loglen.mean()), sd if sd > 0 else 1.0)
    Cs = np.asarray(Cs, dtype=np.float64)

    def design(rows):
        Z = (V[rows] - center) / scale
        if length is not None:
            Z = np.column_stack([Z, (loglen[rows] - length[0]) / length[1]])
        return Z

    def model(C):
        return LogisticRegression(C=float(C), class_weight="balanced", max_iter=2000)

    folds = list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(V, y))
    scores = np.zeros((Cs.size, len(folds)))
    # Tiny problems: a multi-threaded BLAS only adds contention (see HNeuronProbe.fit).
    with threadpool_limits(limits=1, user_api="blas"):
        for j, (tr, te) in enumerate(folds):
            Ztr, Zte = design(tr), design(te)
            for i, C in enumerate(Cs):
                scores[i, j] = roc_auc_score(y[te], model(C).fit(Ztr, y[tr]).decision_function(Zte))
        mean = scores.mean(axis=1)
        final = model(Cs[int(np.argmax(mean))]).fit(design(np.arange(X.shape[0])), y)
    return RandomNeuronProbe(idx, center, scale, length, final, X.shape[1], Cs, mean.tolist())
