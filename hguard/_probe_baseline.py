"""The "random neurons of the same count" baseline of the evaluation."""

from __future__ import annotations

from numbers import Integral
from typing import Sequence

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from ._probe_fit import _Scaler
from ._probe_inputs import _check_lengths, _check_X, _two_columns
from ._stats import auroc
from .errors import InputError


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
                fold_auroc = auroc(y[te], model(C).fit(Ztr, y[tr]).decision_function(Zte))
                if fold_auroc is None:
                    raise ValueError("a cross-validation test fold holds answers of one class only; its AUROC is undefined")
                scores[i, j] = fold_auroc
        mean = scores.mean(axis=1)
        final = model(Cs[int(np.argmax(mean))]).fit(design(np.arange(X.shape[0])), y)
    return RandomNeuronProbe(idx, center, scale, length, final, X.shape[1], Cs, mean.tolist())
