"""RAG calibration, its fitting: the probe, its out-of-fold logits, the merger, thresholds and the
knowledge-conflict detector of one RAG domain, and every risk the report scores (see :mod:`hguard.calibrate.rag`)."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .._numerics import sigmoid_array
from ..errors import DataError
from .judge import declines, followed_misleading
from .pipeline import (
    MIN_PER_CLASS,
    apply_merger,
    auroc,
    auroc_ci,
    fit_merger,
)
from ._rag_signals import GROUNDING_FEATURES, MERGER_CS, RAG_MERGER_FEATURES


def _finite(rows: Sequence[dict], names: Sequence[str]) -> np.ndarray:
    return np.array([all(r.get(k) is not None and math.isfinite(float(r[k])) for k in names) for r in rows], dtype=bool)


def declined(rows: Sequence[dict]) -> np.ndarray:
    """Whether each row's reply declines as the guard reads it (:func:`hguard.calibrate.judge.declines` with the
    question, the predicate the guard abstains by): such a reply abstains by rule whatever its risk, so the fit and
    the report leave it out of every risk figure. The judge's label "refusal" is wider: to a yes/no question it also
    calls a reply that hedges or takes no side ("The answer is:", "This study aimed to investigate whether ...")
    a refusal, and the guard scores those and can accept them, so they are scored here too, as hallucinated (`_y`):
    such a reply may still state a side the judge did not read ("Possibly. Statins clearly increase the risk ..."),
    and an accept threshold must not count it safe."""
    return np.array([declines(str(r.get("answer") or ""), r.get("question")) is not None for r in rows], dtype=bool)


def _matrix(rows: Sequence[dict], names: Sequence[str], neuron_logit: np.ndarray | None = None) -> np.ndarray:
    cols = []
    for k in names:
        if k == "neuron_logit":
            cols.append(np.asarray(neuron_logit, dtype=float))
        else:
            cols.append(np.array([float(r[k]) for r in rows], dtype=float))
    return np.column_stack(cols) if cols else np.zeros((len(rows), 0))


def _y(rows: Sequence[dict]) -> np.ndarray:
    """1 for a reply the threshold must not accept: hallucinated, or a judge's "refusal" the guard scores (a review: a
    hedge that states the wrong side, "Yes or no depends on timing, but the fee is refundable in every case.", was
    fitted as not hallucinated); 0 for a right one. Replies the guard reads as declining are left out before."""
    return np.array([1 if r["label"] in ("hallucinated", "refusal") else 0 for r in rows], dtype=int)


def _folds(y: np.ndarray, groups: Sequence[str], k: int, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold

    return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


# --------------------------------------------------------------------------------- conflict


def _conflict_target(rows: Sequence[dict]) -> np.ndarray:
    """1: followed a misleading passage against the truth; 0: right answer from a supporting passage of a
    dataset that has misleading passages (the same questions, so the detector learns to tell following a
    false passage from answering from a true one, not one dataset or domain from another: fitted on every
    right supporting answer, it learned policy yes/no answers from general ones and flagged 31 of 35 right
    general answers); -1: neither (not used by the detector)."""
    followed = [followed_misleading(r) for r in rows]  # "names neither ... misleading answer" is not following it
    contrasted = {r.get("dataset") for r, f in zip(rows, followed) if f}
    out = []
    for r, f in zip(rows, followed):
        if f:
            out.append(1)
        elif r["condition"] == "supporting" and r["label"] == "correct" and r.get("dataset") in contrasted:
            out.append(0)
        else:
            out.append(-1)
    return np.array(out, dtype=int)


def fit_conflict_detector(rows: Sequence[dict], *, seed: int, cv: int = 5, features: Sequence[str] | None = None) -> dict:
    """Logistic detector over the closed-book signals (``features``, default
    :data:`~hguard.signals.conflict.CONFLICT_FEATURES`), and the threshold of best balanced accuracy
    on its out-of-fold scores. ``{"detector": None, "why": ...}`` when there are too few rows."""
    from sklearn.linear_model import LogisticRegression

    from ..signals.conflict import CONFLICT_FEATURES

    features = tuple(features or CONFLICT_FEATURES)
    t = _conflict_target(rows)
    ok = (t >= 0) & _finite(rows, features)
    rs = [r for r, k in zip(rows, ok) if k]
    y = t[ok]
    counts = np.bincount(y, minlength=2)
    if not (t == 1).any():
        return {"detector": None, "why": "no training answer followed a misleading passage (rows with meta.condition "
                                          "\"misleading\" give the detector its contrast); no knowledge-conflict check"}
    if counts.min() < MIN_PER_CLASS:
        return {"detector": None, "why": f"{counts[1]} answers followed a misleading passage and {counts[0]} answers "
                                          f"were right from a supporting passage of the same meta.dataset (any of its "
                                          f"questions, not only those asked with a misleading passage); at least "
                                          f"{MIN_PER_CLASS} of each are needed"}
    X = _matrix(rs, features)
    mean, scale = X.mean(0), X.std(0)
    scale[scale == 0] = 1.0

    def fit(a):
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit((X[a] - mean) / scale, y[a])

    oof = np.zeros(len(y))
    for a, b in _folds(y, [r["group"] for r in rs], min(cv, int(counts.min())), seed):
        oof[b] = fit(a).predict_proba((X[b] - mean) / scale)[:, 1]
    best, best_bacc = 0.5, -1.0
    for th in np.unique(oof):
        flag = oof >= th
        bacc = 0.5 * (flag[y == 1].mean() + (~flag[y == 0]).mean())
        if bacc > best_bacc:
            best, best_bacc = float(th), float(bacc)
    lr = fit(np.arange(len(y)))
    return {
        "detector": {"features": list(features), "mean": mean.tolist(), "scale": scale.tolist(),
                     "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])},
        "threshold": best,
        "train": {"followed_misleading": int(counts[1]), "right_supporting": int(counts[0]),
                  "oof_auroc": auroc(y, oof), "oof_auroc_ci95": auroc_ci(y, {"oof": oof})["oof"],
                  "oof_balanced_accuracy": best_bacc},
        "fitted_on": "training passages: answers that followed a misleading passage against the truth versus right "
                     "answers from a supporting passage of the same dataset(s) ("
                     + (", ".join(sorted({str(r.get("dataset")) for r, k in zip(rows, t) if k >= 0 and r.get("dataset")}))
                        or "rows naming no dataset") + "), all RAG domains pooled",
    }


def conflict_scores(det: Mapping[str, Any], rows: Sequence[dict]) -> np.ndarray:
    from ..signals.conflict import conflict_score

    if not det.get("detector"):
        return np.zeros(len(rows))
    return np.array([conflict_score(r, det["detector"]) for r in rows])


# ------------------------------------------------------------------------------------ fitting


def fit_rag_domain(domain: str, rows: Sequence[dict], features: np.ndarray, *, seed: int, n_layers: int, d_ff: int,
                   target: float, confidence: float, cv: int = 5, fit=None,
                   merger_features: Sequence[str] = RAG_MERGER_FEATURES, linked: str | None = None,
                   passages: Sequence[str | None] | None = None) -> dict:
    """Probe, merger (over ``merger_features``) and thresholds of one RAG domain on its training
    answers (refusals left out). The probe's C is chosen, the merger's regularisation too, and the out-of-fold scores
    are measured, on ``cv`` folds grouped by passage as the held-out split is (each row's unit of the split,
    :func:`hguard.calibrate._pipeline_fit.split_units`, from ``passages``, one per row, the text each row shows;
    None: by meta.group alone); ``train["folds"]`` says which folds, and why where they are of rows.

    ``fit``: a :class:`hguard.calibrate.screen.ProbeFit` (None: in memory); a screened fit screens
    again inside each out-of-fold refit. ``linked``: what links the domain's rows into one unit of the passage split
    (:func:`hguard.calibrate._pipeline_fit.linked_by_passage`), said when no row fell on the training side."""
    from ..policy import fit_thresholds
    from ._pipeline_fit import grouped_folds, split_units
    from .screen import fit_probe, out_of_fold_logits

    merger_features = tuple(merger_features)
    if not len(rows) and linked:
        raise DataError(f"RAG domain {domain!r}: no training answers: {linked}")
    if not len(rows):
        raise DataError(f"RAG domain {domain!r}: no training answers (every passage of the domain fell on the "
                        "held-out side of the split); add questions with other passages (meta.group) to the domain")
    answered = ~declined(rows)  # as the guard reads a reply: what it scores is what the thresholds are fitted on
    keep = answered & _finite(rows, [f for f in merger_features if f != "neuron_logit"])
    # answered, a merger signal missing or not finite (a yes/no reading of another language's question not made, a
    # grounding not computed): each of them is among the domain's unscorable rows too, which name the first signal
    unread = int((answered & ~keep).sum())
    tr = [r for r, k in zip(rows, keep) if k]
    X = features[keep]
    y = _y(tr)
    lengths = np.array([r["length"] for r in tr], dtype=float)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        n_ref = int((~answered).sum())
        raise DataError(f"RAG domain {domain!r}: {counts[0]} right and {counts[1]} hallucinated training answers "
                        f"({n_ref} of {len(rows)} training answers declined and are left out"
                        + (f", {unread} more have a signal that could not be read" if unread else "")
                        + f"); at least {MIN_PER_CLASS} "
                        "of each are needed: add questions to the domain")
    units = [u for u, k in zip(split_units(rows, passages), keep) if k]
    cv_folds = grouped_folds(y, units, cv, seed, unit="passage")
    t0 = time.perf_counter()
    probe = fit_probe(X, y, fit=fit, lengths=lengths, groups=cv_folds.groups, cv=cv, n_layers=n_layers, d_ff=d_ff,
                      random_state=seed)
    fit_seconds = time.perf_counter() - t0
    folds = cv_folds.folds
    oof = out_of_fold_logits(probe, X, y, folds, fit=fit, lengths=lengths)
    merger, merged_oof, best_c, by_c = _fit_merger_oof(_matrix(tr, merger_features, oof), y, folds, merger_features)
    # The same merger without the relevance signals, fitted the same way: the report's ablation.
    from ..signals.relevance import RELEVANCE_FEATURES

    ablations = {}
    without = tuple(f for f in merger_features if f not in RELEVANCE_FEATURES)
    if without != merger_features:
        ablations["merged_without_relevance"] = _fit_merger_oof(_matrix(tr, without, oof), y, folds, without)
    thresholds = fit_thresholds(merged_oof, y, target=target, confidence=confidence)
    return {
        "probe": probe, "merger": merger, "thresholds": thresholds, "oof_merged": merged_oof.tolist(), "oof_y": y.tolist(),
        "ablations": {k: v[0] for k, v in ablations.items()},
        "train": {"n": int(len(rows)), "n_scored": int(len(y)), "refusals": int((~answered).sum()),
                  "unread": unread,  # answered, a merger signal not read: left out of the fit as refusals are
                  "by_condition": {c: sum(r.get("condition") == c for r in rows) for c in sorted({str(r.get("condition")) for r in rows})},
                  "correct": int(counts[0]), "hallucinated": int(counts[1]),
                  "cv_auroc_oof_probe": auroc(y, oof), "cv_auroc_oof_merged": auroc(y, merged_oof),
                  "folds_by": "passage" if cv_folds.grouped else "row", "folds": cv_folds.said,
                  "merger_C": best_c, "cv_auroc_oof_merged_by_C": {str(c): by_c[c][0] for c in MERGER_CS},
                  **{f"cv_auroc_oof_{k}": auroc(y, v[1]) for k, v in ablations.items()},
                  "probe_fit_seconds": fit_seconds},
    }


def _fit_merger_oof(Z: np.ndarray, y: np.ndarray, folds, features: Sequence[str]):
    """The merger over ``features`` with its regularisation chosen on the training answers alone
    (out-of-fold AUROC on ``folds``, the probe's, by passage: with about a dozen signals and a few hundred answers, C = 1
    overfits): (merger fitted on all of them, its out-of-fold risks, C, {C: (AUROC, risks)})."""
    by_c = {}
    for c in MERGER_CS:
        m = np.zeros(len(y))
        for a, b in folds:
            m[b] = apply_merger(fit_merger(Z[a], y[a], features, C=c), Z[b])
        by_c[c] = (auroc(y, m) or 0.0, m)
    best_c = max(MERGER_CS, key=lambda c: by_c[c][0])
    return fit_merger(Z, y, features, C=best_c), by_c[best_c][1], best_c, by_c


# the single signals the report scores besides the merged risk and the probe
_REPORTED = GROUNDING_FEATURES + ("mean_logprob", "min_logprob", "mean_entropy", "closed_book_logprob")


def score_rag_rows(fitted: dict, rows: Sequence[dict], features: np.ndarray) -> dict[str, np.ndarray]:
    """Every risk of the report (higher = riskier) for ``rows``; rows must have finite signals."""
    from .screen import probe_logit

    probe = fitted["probe"]
    lengths = np.array([r["length"] for r in rows], dtype=float)
    logit = probe_logit(probe, features, lengths=lengths) if len(rows) else np.zeros(0)
    out = {
        "merged": apply_merger(fitted["merger"], _matrix(rows, fitted["merger"]["features"], logit)) if len(rows) else np.zeros(0),
        "probe": sigmoid_array(np.asarray(logit, dtype=float)),
    }
    for name, merger in fitted.get("ablations", {}).items():
        out[name] = apply_merger(merger, _matrix(rows, merger["features"], logit)) if len(rows) else np.zeros(0)
    for k in GROUNDING_FEATURES:
        out[k] = 1.0 - np.array([float(r[k]) for r in rows])
    out["confidence_mean_logprob"] = -np.array([float(r["mean_logprob"]) for r in rows])
    out["confidence_min_logprob"] = -np.array([float(r["min_logprob"]) for r in rows])
    out["confidence_entropy"] = np.array([float(r["mean_entropy"]) for r in rows])
    out["closed_book_logprob"] = -np.array([float(r["closed_book_logprob"]) for r in rows])
    return out


# ------------------------------------------------------------------------------------- report
