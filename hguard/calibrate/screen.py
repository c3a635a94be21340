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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

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


def _rows_by_shard(store: ShardStore, ids: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
    """Shard name -> [(position in ids, row index in the shard)]."""
    done = store.finished()
    missing = [i for i in ids if i not in done]
    if missing:
        raise DataError(f"{store.work} has no answers for {len(missing)} ids (first: {missing[0]!r}); run the collection again")
    out: dict[str, list[tuple[int, int]]] = {}
    for pos, i in enumerate(ids):
        r = done[i]
        out.setdefault(r["shard"], []).append((pos, r["index"]))
    return out


def _iter_blocks(store: ShardStore, ids: Sequence[str]):
    """(positions in ids, float32 block of those rows) per shard, one shard in memory at a time."""
    wanted = _rows_by_shard(store, ids)
    for entry, feats in store.iter_shards(ids):
        pairs = wanted.get(entry["shard"])
        if not pairs:
            continue
        pos = np.array([p for p, _ in pairs])
        rows = np.array([r for _, r in pairs])
        yield pos, np.asarray(feats[rows], dtype=np.float32)


def feature_stats(work_dir: str | os.PathLike, ids: Sequence[str], y: Sequence[int]) -> FeatureStats:
    """Pass 1: per-class moments and the range of every feature over the rows ``ids`` (labels ``y``)."""
    store = ShardStore(work_dir)
    y = np.asarray(y, dtype=int)
    if y.shape != (len(ids),) or not np.isin(y, (0, 1)).all():
        raise InputError(f"y must hold one 0/1 label per id ({len(ids)}); got shape {y.shape}")
    width = store.settings["n_features"]
    n = np.zeros(2)
    s = np.zeros((2, width))
    ss = np.zeros((2, width))
    lo = np.full(width, np.inf)
    hi = np.full(width, -np.inf)
    for pos, block in _iter_blocks(store, ids):
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
        for c in (0, 1):
            b = block[y[pos] == c].astype(np.float64)
            if len(b):
                n[c] += len(b)
                s[c] += b.sum(axis=0)
                ss[c] += np.einsum("ij,ij->j", b, b)
    mean = s / np.maximum(n, 1)[:, None]
    var = np.maximum(ss - n[:, None] * mean**2, 0.0) / np.maximum(n - 1, 1)[:, None]
    return FeatureStats(n=n, mean=mean, var=var, min=lo, max=hi)


def top_k(stats: FeatureStats, k: int) -> np.ndarray:
    """Sorted indices of the ``k`` highest-scoring varying features (ties: the lower index)."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k={k!r}: pass the number of features to keep, an int >= 1")
    score = stats.score
    varying = np.flatnonzero(stats.max > stats.min)
    if varying.size <= k:
        return varying
    order = np.lexsort((varying, -score[varying]))
    return np.sort(varying[order[:k]])


def load_columns(work_dir: str | os.PathLike, ids: Sequence[str], columns: Sequence[int]) -> np.ndarray:
    """Pass 2: the (len(ids), len(columns)) float32 matrix of those columns, read shard by shard."""
    store = ShardStore(work_dir)
    cols = np.asarray(columns, dtype=np.intp)
    out = np.zeros((len(ids), cols.size), np.float32)
    for pos, block in _iter_blocks(store, ids):
        out[pos] = block[:, cols]
    return out


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
    from ..probe import HNeuronProbe

    store = ShardStore(work_dir)
    width = store.settings["n_features"]
    stats = feature_stats(work_dir, ids, y)
    cols = top_k(stats, k)
    X = load_columns(work_dir, ids, cols)
    n_layers, d_ff = probe_params.pop("n_layers", None), probe_params.pop("d_ff", None)
    probe = HNeuronProbe(**probe_params)
    full = HNeuronProbe(n_layers=n_layers, d_ff=d_ff)
    nl, df = full._resolve_shape(width)
    probe.fit(X, y, lengths=lengths, groups=groups)
    del X
    probe.set_params(n_layers=nl, d_ff=df)
    probe.feature_indices_ = cols[probe.feature_indices_].astype(np.int64)
    probe.n_features_in_ = int(width)
    probe.n_layers_, probe.d_ff_ = nl, df
    probe.screening_ = {"k": int(k), "kept": int(cols.size), "n_features": int(width), "statistic": "abs Welch t per feature"}
    return probe


__all__ = ["FeatureStats", "feature_stats", "fit_screened", "load_columns", "top_k"]
