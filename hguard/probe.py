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

from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

from ._json import json_safe
from ._probe_baseline import RandomNeuronProbe, random_neuron_probe
from ._probe_file import (
    FORMAT_NAME,
    FORMAT_VERSION,
    _check_signature,
    _from_document,
    _probe_id,
    _signature,
    check_fingerprints,
    mismatch_error,
    probe_path,
    read_document,
    write_document,
)
from ._probe_fit import _INTERCEPT_SCALING, _LENGTH_BOOST, _Scaler, fit_probe  # noqa: F401 (_INTERCEPT_SCALING, _Scaler: tests)
from ._probe_inputs import _check_lengths, _check_X, _two_columns
from .errors import InputError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HNeuronProbe",
    "RandomNeuronProbe",
    "check_fingerprints",
    "random_neuron_probe",
]

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
        if not isinstance(self.tol, Real) or not float(self.tol) > 0:
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
            return fit_probe(self, X, y, lengths, groups)

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

    def chance_warning(self) -> str | None:
        """Why this probe's scores carry no signal (its best cross-validated mean AUROC lies within two standard
        errors of 0.5), or None: when it beats chance, or when its C was given rather than cross-validated."""
        check_is_fitted(self)
        cv = self.cv_results_ or {}
        Cs, mean, se = cv.get("C") or [], cv.get("mean_auroc") or [], cv.get("se_auroc") or []
        at = next((i for i, c in enumerate(Cs) if c == self.best_C_), None)
        if at is None or at >= min(len(mean), len(se)) or mean[at] is None or se[at] is None:
            return None
        if mean[at] - 2.0 * se[at] > 0.5:
            return None
        if mean[at] + 2.0 * se[at] < 0.5:  # below chance beyond noise: it ranks them the wrong way round
            return (f"the probe does not beat chance in cross-validation: best mean AUROC {mean[at]:.3f} (standard error "
                    f"{se[at]:.3f}) at C={self.best_C_:.4g}, below 0.5 by more than two standard errors: it ranks the "
                    "held-out folds' answers the wrong way round (what tells right from wrong in training does not hold "
                    "across folds), so its scores carry no usable signal")
        return (f"the probe does not beat chance in cross-validation: best mean AUROC {mean[at]:.3f} (standard error "
                f"{se[at]:.3f}) at C={self.best_C_:.4g}; its scores carry no signal")

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
        params = {k: json_safe(v, f"params[{k!r}]", what="probe file entry", nonfinite="raise") for k, v in self.get_params().items()}
        length = None
        if self.length_control:
            length = {"center": self.length_center_, "scale": self.length_scale_, "weight": self.length_weight_}
        model = {
            "classes": json_safe(self.classes_.tolist(), "classes_", what="probe file entry", nonfinite="raise"),
            "n_features_in": self.n_features_in_,
            "n_layers": self.n_layers_,
            "d_ff": self.d_ff_,
            "Cs": [float(c) for c in self.Cs_],
            "C": self.C_,
            "best_C": self.best_C_,
            "one_se_C": self.one_se_C_,
            "cv_results": json_safe(self.cv_results_, "cv_results_", what="probe file entry", nonfinite="raise"),
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

        ``metadata`` is stored as given (anything JSON can carry; numpy scalars and arrays are
        converted): a calibration's record is written by :meth:`hguard.domain.CalibratedDomain.save`,
        which knows its keys. The file is replaced atomically. With ``key`` (see
        :mod:`hguard.integrity`) the file is signed.
        """
        if not isinstance(metadata, Mapping):
            raise InputError(f"metadata is a {type(metadata).__name__}, not a dict; pass a dict of JSON values")
        doc = self._payload()
        doc["metadata"] = json_safe(dict(metadata), "metadata", what="probe file entry", nonfinite="raise")
        doc["probe_id"] = _probe_id(doc)
        if key is not None:
            doc["signature"] = _signature(doc, key)
        write_document(Path(path), doc)
        self.probe_id_ = doc["probe_id"]
        self.metadata_ = doc["metadata"]
        return doc["probe_id"]

    @classmethod
    def load(
        cls, path, *, expect: Mapping[str, Any] | None = None, key: bytes | None = None,
        require_signature: bool = False,
    ) -> tuple["HNeuronProbe", dict]:
        """Read a probe file; returns ``(probe, metadata)`` with the metadata as stored
        (:meth:`hguard.domain.CalibratedDomain.load` reads it into a calibrated domain).

        ``expect`` maps metadata keys (typically the three fingerprints) to the values of the running
        setup; any difference raises :class:`ProbeMismatchError`. A file that is not a probe, is
        truncated, or was edited after saving raises :class:`ProbeError`; so does, with ``key``, a
        signature that does not match, and with ``require_signature`` a file that is not signed.
        """
        path = probe_path(path)
        doc = read_document(path)
        probe = _from_document(doc, path, cls)
        _check_signature(doc, path, key, require_signature)
        metadata = probe.metadata_
        if expect:
            error = mismatch_error(path, metadata, expect)
            if error is not None:
                raise error
        return probe, metadata
