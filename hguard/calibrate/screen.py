"""Fitting a probe without holding every feature in memory: screen over the shards, then fit on the top K.

Pass 1 streams the shards of a collection folder (one shard in memory at a time) and keeps, per
feature and class, the count, sum and sum of squares (float64), and per feature the minimum and
maximum. Each feature gets the absolute Welch t statistic of its two class means; constant features
score 0. Pass 2 reads only the ``k`` best columns of the wanted rows, and the usual
:class:`hguard.probe.HNeuronProbe` (same CV, same 1-SE rule) is fitted on that (n, k) matrix; its
feature indices are then mapped back to the model's full index space, so the result is an ordinary
probe file for the whole model.

Peak memory: one shard (rows x n_features float32) plus eight float64 vectors of n_features for the
statistics, plus the (n, k) matrix and the probe's working copies of it: bounded by ``k`` and the
shard size, not by n x n_features. With ``k`` >= the number of features the fit is the in-memory fit.

In the calibration pipeline (``hguard calibrate --screen-top K``, or by itself over the memory budget,
see :func:`choose_fit`) the features stay in the shards as a :class:`ShardFeatures`; every probe fit
(the domain's, each out-of-fold refit at the chosen C, each leave-one-family-out fold) screens on its
own training rows, so held-out rows never choose features, and scoring reads only the probe's columns
(:func:`probe_logit`). Each screening is one streaming pass over the shards of its rows.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import DataError, InputError
from .shards import ShardStore


@dataclass
class FeatureStats:
    """Per-feature statistics of the screened rows, by class (0 = faithful, 1 = hallucinated)."""

    n: np.ndarray  # (2,) rows per class
    mean: np.ndarray  # (2, n_features)
    var: np.ndarray  # (2, n_features), unbiased
    min: np.ndarray  # (n_features,)
    max: np.ndarray  # (n_features,)

    @property
    def score(self) -> np.ndarray:
        """|Welch t| per feature; 0 for features that do not vary over the screened rows."""
        se = np.sqrt(self.var[0] / max(self.n[0], 1) + self.var[1] / max(self.n[1], 1))
        t = np.abs(self.mean[1] - self.mean[0]) / np.where(se > 0, se, np.inf)
        t[~(self.max > self.min)] = 0.0
        return t


class ShardFeatures:
    """The CETT rows ``ids`` of a collection folder, read from its shards on demand, never all at once.

    It stands where the pipeline holds an (n, n_features) matrix when the probe is fitted by screening:
    ``X[rows]`` (a mask, indices or a slice) is another view, ``X[:, columns]`` reads those columns
    shard by shard, :meth:`blocks` streams the rows one shard at a time. Converting it to a full
    array is refused: that is the in-memory fit's matrix this class exists to avoid.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, work_dir: str | os.PathLike | None, ids: Sequence[str], *, _store=None, _done=None, _verified=None):
        if _store is None:
            if work_dir is None:
                raise InputError("ShardFeatures needs the collection folder (work_dir) or an open store")
            _store = ShardStore(work_dir)
        self.store = _store
        self.ids = list(ids)
        self._done = _done if _done is not None else self.store.finished()
        self._verified = _verified if _verified is not None else set()
        missing = [i for i in self.ids if i not in self._done]
        if missing:
            raise DataError(f"{self.store.work} has no answers for {len(missing)} ids (first: {missing[0]!r}); run the collection again")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.ids), int(self.store.settings["n_features"]))

    def __len__(self) -> int:
        return len(self.ids)

    def __array__(self, dtype=None, copy=None):
        raise DataError(
            f"{len(self.ids)} rows x {self.shape[1]} features were asked for in memory while the probe is fitted by "
            "screening from the shards; this code path must read columns (X[:, idx]) instead"
        )

    def rows(self, key) -> "ShardFeatures":
        pick = np.arange(len(self.ids))[key]
        return ShardFeatures(None, [self.ids[i] for i in np.atleast_1d(pick)], _store=self.store, _done=self._done,
                             _verified=self._verified)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, cols = key
            view = self if isinstance(rows, slice) and rows == slice(None) else self.rows(rows)
            if isinstance(cols, slice):
                cols = np.arange(self.shape[1])[cols]
            return view.columns(cols)
        return self.rows(key)

    def blocks(self):
        """(positions in ``ids``, float32 block of those rows) per shard, one shard in memory at a time."""
        wanted: dict[str, list[tuple[int, int]]] = {}
        for at, i in enumerate(self.ids):
            r = self._done[i]
            wanted.setdefault(r["shard"], []).append((at, r["index"]))
        for entry in self.store.entries():
            pairs = wanted.get(entry["shard"])
            if not pairs:
                continue
            feats = self.store.open_features(entry, verify=entry["shard"] not in self._verified)
            self._verified.add(entry["shard"])
            pos = np.array([p for p, _ in pairs])
            picked = np.array([r for _, r in pairs])
            yield pos, np.asarray(feats[picked], dtype=np.float32)

    def columns(self, columns) -> np.ndarray:
        """The (len(ids), len(columns)) float32 matrix of those columns."""
        cols = np.asarray(columns, dtype=np.intp).reshape(-1)
        out = np.zeros((len(self.ids), cols.size), np.float32)
        for pos, block in self.blocks():
            out[pos] = block[:, cols]
        return out


def _blocks(X, rows_per_block: int = 4096):
    """(positions, float32 block) over a :class:`ShardFeatures` or an in-memory matrix."""
    if isinstance(X, ShardFeatures):
        yield from X.blocks()
        return
    X = np.asarray(X)
    for s in range(0, X.shape[0], rows_per_block):
        yield np.arange(s, min(s + rows_per_block, X.shape[0])), np.asarray(X[s : s + rows_per_block], dtype=np.float32)


def columns_of(X, columns) -> np.ndarray:
    """``X[:, columns]`` for a :class:`ShardFeatures` or an in-memory matrix."""
    cols = np.asarray(columns, dtype=np.intp)
    return X.columns(cols) if isinstance(X, ShardFeatures) else np.asarray(X)[:, cols]


def stats_of(X, y: Sequence[int] | np.ndarray) -> FeatureStats:
    """Pass 1 over ``X`` (shards or memory): per-class moments and the range of every feature."""
    labels = np.asarray(y, dtype=int)
    if labels.shape != (len(X),) or not np.isin(labels, (0, 1)).all():
        raise InputError(f"y must hold one 0/1 label per row ({len(X)}); got shape {labels.shape}")
    width = X.shape[1]
    n = np.zeros(2)
    s = np.zeros((2, width))
    ss = np.zeros((2, width))
    lo = np.full(width, np.inf)
    hi = np.full(width, -np.inf)
    for pos, block in _blocks(X):
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
        for c in (0, 1):
            b = block[labels[pos] == c].astype(np.float64)
            if len(b):
                n[c] += len(b)
                s[c] += b.sum(axis=0)
                ss[c] += np.einsum("ij,ij->j", b, b)
    mean = s / np.maximum(n, 1)[:, None]
    var = np.maximum(ss - n[:, None] * mean**2, 0.0) / np.maximum(n - 1, 1)[:, None]
    return FeatureStats(n=n, mean=mean, var=var, min=lo, max=hi)


def feature_stats(work_dir: str | os.PathLike, ids: Sequence[str], y: Sequence[int]) -> FeatureStats:
    """Pass 1: per-class moments and the range of every feature over the rows ``ids`` (labels ``y``)."""
    return stats_of(ShardFeatures(work_dir, ids), y)


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"--screen-top {k!r}: pass the number of features to keep, an int >= 1")
    return int(k)


def top_k(stats: FeatureStats, k: int) -> np.ndarray:
    """Sorted indices of the ``k`` highest-scoring varying features (ties: the lower index)."""
    k = check_k(k)
    score = stats.score
    varying = np.flatnonzero(stats.max > stats.min)
    if varying.size <= k:
        return varying
    order = np.lexsort((varying, -score[varying]))
    return np.sort(varying[order[:k]])


def load_columns(work_dir: str | os.PathLike, ids: Sequence[str], columns: Sequence[int]) -> np.ndarray:
    """Pass 2: the (len(ids), len(columns)) float32 matrix of those columns, read shard by shard."""
    return ShardFeatures(work_dir, ids).columns(columns)


STATISTIC = "abs Welch t per feature"


def fit_screened_matrix(X, y, *, k: int, lengths=None, groups=None, stats: FeatureStats | None = None, **probe_params):
    """:func:`fit_screened` on ``X``: a :class:`ShardFeatures` (streamed) or an in-memory matrix."""
    from ..probe import HNeuronProbe

    k = check_k(k)
    width = X.shape[1]
    stats = stats if stats is not None else stats_of(X, y)
    cols = top_k(stats, k)
    V = columns_of(X, cols)
    n_layers, d_ff = probe_params.pop("n_layers", None), probe_params.pop("d_ff", None)
    probe = HNeuronProbe(**probe_params)
    nl, df = HNeuronProbe(n_layers=n_layers, d_ff=d_ff)._resolve_shape(width)
    probe.fit(V, y, lengths=lengths, groups=groups)
    del V
    probe.set_params(n_layers=nl, d_ff=df)
    probe.feature_indices_ = cols[probe.feature_indices_].astype(np.int64)
    probe.n_features_in_ = int(width)
    probe.n_layers_, probe.d_ff_ = nl, df
    probe.screening_ = {"k": int(k), "kept": int(cols.size), "n_features": int(width), "statistic": STATISTIC}
    return probe


def fit_screened(
    work_dir: str | os.PathLike,
    ids: Sequence[str],
    y: Sequence[int],
    *,
    k: int,
    lengths: Sequence[float] | None = None,
    groups=None,
    **probe_params,
):
    """A :class:`hguard.probe.HNeuronProbe` for the rows ``ids`` of a collection folder, screened to ``k`` features.

    ``probe_params`` go to the probe (``cv``, ``random_state``, ``n_layers``, ``d_ff``, ...). The
    returned probe is fitted on the screened columns and then expressed in the model's full feature
    space (``n_features_in_`` = all neurons), so it scores, saves and loads like any probe; its
    ``screening_`` attribute records k, the statistic and how many features were screened.
    """
    return fit_screened_matrix(ShardFeatures(work_dir, ids), y, k=k, lengths=lengths, groups=groups, **probe_params)


# ---------------------------------------------------------------------- the pipeline's probe fits


@dataclass(frozen=True)
class ProbeFit:
    """How calibration fits its probes: in memory (``screen_top`` None) or screened to ``screen_top`` features.

    The same choice applies to every fit of a calibration: the domain probe, its out-of-fold refits
    (screened again inside each fold, so held-out rows never choose features) and the cross-family folds.
    """

    screen_top: int | None = None
    reason: str = "default: the feature matrix fits the memory budget"
    budget_bytes: int | None = None
    in_memory_bytes: int | None = None

    @property
    def screened(self) -> bool:
        return self.screen_top is not None

    def describe(self) -> dict:
        out: dict[str, Any] = {"method": "screened" if self.screened else "in_memory", "reason": self.reason}
        if self.screened:
            out.update(k=self.screen_top, statistic=STATISTIC, screened_within_each_fold=True)
        if self.budget_bytes is not None and self.in_memory_bytes is not None:
            out["memory_budget_gb"] = self.budget_bytes / 1e9
            out["in_memory_estimate_gb"] = self.in_memory_bytes / 1e9
        return out


# bytes per (row, feature) of the in-memory fit: the float32 matrix of every collected row, plus the
# probe's float64 working copy of the training rows
IN_MEMORY_BYTES_PER_VALUE = 12


def default_memory_budget() -> int:
    """Half of this machine's physical memory, in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9


def choose_fit(n_rows: int, n_features: int, *, screen_top: int | None = None, fit_memory_gb: float | None = None) -> ProbeFit:
    """The rule: ``screen_top`` given -> screened to it. Otherwise the in-memory fit needs about
    ``n_rows x n_features x 12`` bytes; above the budget (``fit_memory_gb``, default half the
    machine's memory) the fit is screened to ``K = min(n_features, budget / (n_rows x 12))``, the
    most features whose in-memory matrix fits the same budget."""
    if fit_memory_gb is not None and (isinstance(fit_memory_gb, bool) or not fit_memory_gb > 0 or not np.isfinite(fit_memory_gb)):
        raise InputError(f"--fit-memory-gb {fit_memory_gb!r}: pass the memory the probe fit may use, in GB, > 0")
    if screen_top is not None:
        k = check_k(screen_top)
        every = f", at least the model's {n_features} features: every feature kept" if k >= n_features else ""
        return ProbeFit(k, reason=f"--screen-top {screen_top} was given{every}")
    budget = int(fit_memory_gb * 1e9) if fit_memory_gb is not None else default_memory_budget()
    need = int(n_rows) * int(n_features) * IN_MEMORY_BYTES_PER_VALUE
    if need <= budget:
        return ProbeFit(None, reason=f"the in-memory fit needs about {need / 1e9:.3g} GB, within the budget of {budget / 1e9:.3g} GB",
                        budget_bytes=budget, in_memory_bytes=need)
    k = int(max(1, min(n_features, budget // max(1, n_rows * IN_MEMORY_BYTES_PER_VALUE))))
    return ProbeFit(k, reason=f"the in-memory fit would need about {need / 1e9:.3g} GB, over the budget of {budget / 1e9:.3g} GB "
                    f"(--fit-memory-gb): screened to the top {k} features", budget_bytes=budget, in_memory_bytes=need)


def fit_probe(X, y, *, fit: ProbeFit | None, lengths=None, groups=None, **probe_params):
    """The calibration probe on ``X`` (rows x every feature) by ``fit``'s method."""
    from ..probe import HNeuronProbe

    if fit is None or fit.screen_top is None:
        return HNeuronProbe(**probe_params).fit(X, y, lengths=lengths, groups=groups)
    return fit_screened_matrix(X, y, k=fit.screen_top, lengths=lengths, groups=groups, **probe_params)


def refit_at_C(probe, X, y, *, fit: ProbeFit | None, lengths=None):
    """``probe`` refitted on other rows with its chosen C fixed (no inner CV), by the same method;
    a screened probe screens again on these rows."""
    from sklearn.base import clone

    if fit is None or fit.screen_top is None:
        return clone(probe).set_params(Cs=[probe.C_], cv=None).fit(X, y, lengths=lengths)
    params = {**probe.get_params(), "Cs": [probe.C_], "cv": None}
    return fit_screened_matrix(X, y, k=fit.screen_top, lengths=lengths, **params)


class FitWarnings:
    """The warnings of fits that are not the probe written (its out-of-fold refits, the leave-one-family-out fits),
    each said once when :meth:`say` is called, naming which fits raised it: three refits at one C said "the probe
    selected no neuron at C=..." three times word for word, and a family fold's "the probe does not beat chance"
    read as the shipped probe's. ``kind``: what the fits are, for the message ("out-of-fold refits (...)")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.n = 0
        self.said: dict[tuple[type[Warning], str], list[tuple[Any, tuple[int, str | None]]]] = {}

    @contextmanager
    def fit(self, name: str | None = None) -> Iterator[None]:
        """Inside: one fit (``name``: what it left out, e.g. "family capital"), its warnings held back."""
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every fit's, counted here; the caller's filters decide on the sum
            yield
        self.n += 1
        for w in caught:
            fits = self.said.setdefault((w.category, str(w.message)), [])
            if not fits or fits[-1][1] != (self.n, name):  # a fit that says it twice (once per CV fold) is one fit
                fits.append((w, (self.n, name)))

    def say(self) -> None:
        import warnings

        for (category, message), ws in self.said.items():
            names = [n for _, (_, n) in ws if n]
            which = (f"in the fit without {names[0]} (one of the {self.n} {self.kind}, not the probe written)"
                     if len(ws) == 1 and names else
                     f"in {len(ws)} of the {self.n} {self.kind} (not the probe written)")
            w = ws[0][0]
            warnings.warn_explicit(f"{which}: {message}", category, w.filename, w.lineno, source=w.source)
        self.said.clear()


def out_of_fold_logits(probe, X, y, folds, *, fit: ProbeFit | None, lengths=None) -> np.ndarray:
    """The logits of ``probe`` on each of ``folds``' held-out rows, by :func:`refit_at_C` on the others: the
    scores the merger and the thresholds are fitted on. The refits' warnings are said once each
    (:class:`FitWarnings`)."""
    oof = np.zeros(len(y))
    said = FitWarnings("out-of-fold refits, each without one fold of the training answers, for the scores the merger "
                       "and thresholds are fitted on")
    for a, b in folds:
        with said.fit():
            p = refit_at_C(probe, X[a], y[a], fit=fit, lengths=None if lengths is None else lengths[a])
        oof[b] = probe_logit(p, X[b], lengths=None if lengths is None else lengths[b])
    said.say()
    return oof


def probe_logit(probe, X, lengths=None) -> np.ndarray:
    """``probe.decision_function(X)`` reading only the probe's columns of ``X`` (shards or memory)."""
    return probe.decision_function_subset(columns_of(X, probe.feature_indices_), lengths=lengths)


def random_baseline(X, y, n_neurons: int, *, seed: int, lengths=None, fit: ProbeFit | None):
    """:func:`hguard.probe.random_neuron_probe` on ``X``; from shards, the same draw among the varying
    neurons (found by one streaming pass), reading only the drawn columns."""
    from ..probe import random_neuron_probe

    if fit is None or not fit.screened:
        return random_neuron_probe(X, y, n_neurons, seed=seed, lengths=lengths)
    stats = stats_of(X, y)
    varying = np.flatnonzero(stats.max > stats.min)
    if n_neurons > varying.size:
        raise InputError(f"n_neurons={n_neurons} but only {varying.size} neurons vary in X; pass a smaller count")
    # the draw of random_neuron_probe, made here over the full width
    idx = np.sort(np.random.default_rng(seed).choice(varying, size=int(n_neurons), replace=False))
    rnd = random_neuron_probe(columns_of(X, idx), y, int(n_neurons), seed=seed, lengths=lengths)
    rnd.feature_indices_ = idx[rnd.feature_indices_]
    rnd.n_features_in_ = int(X.shape[1])
    return rnd


__all__ = ["FeatureStats", "FitWarnings", "ProbeFit", "ShardFeatures", "choose_fit", "columns_of", "feature_stats", "fit_probe", "fit_screened",
           "fit_screened_matrix", "load_columns", "out_of_fold_logits", "probe_logit", "random_baseline", "refit_at_C", "stats_of",
           "top_k"]
