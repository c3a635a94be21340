"""Calibration's fitting: the merger of probe and confidence, the baselines, the split, one domain's
fit on its training answers and its figures on the test split (see :mod:`hguard.calibrate.pipeline`)."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence, cast

import numpy as np

from .._numerics import constant_columns, sigmoid_array
from .._stats import auroc, auroc_ci, auroc_difference_ci, clopper_pearson_interval
from ..errors import DataError
from ..ood import beyond, full_distance
from ..settings import CALIBRATION_MAX_NEW_TOKENS, CALIBRATION_SYSTEM_PROMPT
from .collect import Collected
from .data import Example, load_examples

DEFAULT_SYSTEM_PROMPT = CALIBRATION_SYSTEM_PROMPT
DEFAULT_MAX_NEW_TOKENS = CALIBRATION_MAX_NEW_TOKENS
MERGER_FEATURES = ("neuron_logit", "mean_logprob", "min_logprob", "mean_entropy", "log_length")
# Raw confidence baselines, each oriented so that a higher value means a riskier answer.
BASELINES = {
    "mean_logprob": lambda r: -r["mean_logprob"],
    "min_logprob": lambda r: -r["min_logprob"],
    "entropy": lambda r: r["mean_entropy"],
    "length": lambda r: r["length"],
}
MIN_PER_CLASS = 8


# ------------------------------------------------------------------------------------- helpers


@contextmanager
def warnings_of_domain(domain: str) -> Iterator[None]:
    """Say the UserWarnings raised inside (the probe's "does not beat chance", "selected no neuron", ...)
    again with ``domain 'NAME': `` in front: the probe fits rows and cannot know which domain they are,
    and a calibration fits several. Other warnings, and ones that already name a domain, pass unchanged."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every one reaches the caller's filters, which decide
            yield
    finally:
        for w in caught:
            message = str(w.message)
            if issubclass(w.category, UserWarning) and not message.startswith("domain "):
                message = f"domain {domain!r}: {message}"
            warnings.warn_explicit(message, w.category, w.filename, w.lineno, source=w.source)


def best_threshold(y, score) -> float:
    """The threshold on ``score`` (risk: higher = hallucinated) with the best accuracy on (y, score)."""
    y = np.asarray(y)
    s = np.asarray(score, dtype=float)
    cands = np.unique(s)
    best, best_acc = float(cands[0]) if cands.size else 0.0, -1.0
    for t in cands:
        acc = float(((s >= t).astype(int) == y).mean())
        if acc > best_acc:
            best, best_acc = float(t), acc
    return best


def accuracy_at(y, score, threshold) -> float | None:
    y = np.asarray(y)
    if y.size == 0:
        return None
    return float(((np.asarray(score, dtype=float) >= threshold).astype(int) == y).mean())


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def merger_features(rows: Sequence[dict], neuron_logit: np.ndarray) -> np.ndarray:
    return np.column_stack(
        [
            neuron_logit,
            [r["mean_logprob"] for r in rows],
            [r["min_logprob"] for r in rows],
            [r["mean_entropy"] for r in rows],
            [math.log1p(r["length"]) for r in rows],
        ]
    ).astype(float)


def fit_merger(Z: np.ndarray, y: np.ndarray, features: Sequence[str] = MERGER_FEATURES, C: float = 1.0) -> dict:
    """A small logistic model over probe logit and confidence (or the named ``features``, one per
    column of ``Z``), as plain data for :func:`policy.merge_risk`."""
    from sklearn.linear_model import LogisticRegression

    mean = Z.mean(0)
    scale = Z.std(0)
    constant = constant_columns(scale, mean)  # it says nothing: a unit scale and no weight
    scale[constant] = 1.0
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit((Z - mean) / scale, y)
    coef = lr.coef_[0].copy()
    coef[constant] = 0.0
    return {
        "features": list(features),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "intercept": float(lr.intercept_[0]),
    }


def apply_merger(merger: Mapping[str, Any], Z: np.ndarray) -> np.ndarray:
    z = (Z - np.asarray(merger["mean"])) / np.asarray(merger["scale"])
    return sigmoid_array(z @ np.asarray(merger["coef"]) + merger["intercept"])


def random_baseline_score(d: Mapping[str, Any], values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Risk from the random-neuron baseline stored in a probe file; ``values`` in its index order."""
    Z = (np.asarray(values, dtype=float) - np.asarray(d["center"])) / np.asarray(d["scale"])
    if d["length"] is not None:
        Z = np.column_stack([Z, (np.log1p(lengths) - d["length"][0]) / d["length"][1]])
    return sigmoid_array(Z @ np.asarray(d["coef"]) + d["intercept"])


def _rank01(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x) / max(len(x), 1)


def accepted_by_guard(risk, accept_below: float, distance=None,
                      ood_threshold: float | None = None) -> tuple[np.ndarray, int]:
    """Which answers a guard accepts (merged risk below ``accept_below`` and not out of distribution, as
    :func:`hguard.ood.beyond` decides: beyond the threshold goes to review, whatever the risk), and how many under
    ``accept_below`` the out-of-distribution check sends to review instead. Every figure of accepted answers counts
    these, so that it says what the guard does (with the policy's default ``out_of_distribution = "review"``)."""
    below = np.asarray(risk, dtype=float) < accept_below
    far = beyond(distance, ood_threshold) if distance is not None else np.zeros(below.shape, dtype=bool)
    return below & ~far, int((below & far).sum())


def _y(rows: Sequence[dict]) -> np.ndarray:
    return np.array([1 if r["label"] == "hallucinated" else 0 for r in rows], dtype=int)


def _lengths(rows: Sequence[dict]) -> np.ndarray:
    return np.array([r["length"] for r in rows], dtype=float)


def reviewed(row: Mapping[str, Any]) -> bool:
    """Whether a collected row was exported from the review queue (``meta.source`` "review"): live traffic the guard
    picked for review, not a random draw, so it is fitted on and never what a held-out figure is measured on."""
    return row.get("source") == "review"


def split_groups(
    rows: Sequence[dict], test_fraction: float, seed: int, passages: Sequence[str | None] | None = None
) -> np.ndarray:
    """Boolean test mask, by group, deterministic (hash of the group key and seed).

    A group that holds a reviewed row (:func:`reviewed`) is on the training side, with the rows kept with it.
    ``passages`` (one per row, RAG calibration): no passage text is read on both sides. Groups whose rows show
    the same passage as their own (a SQuAD paragraph serving several questions) are kept on one side, the side
    of the smallest group key among them; an off-topic row (``condition`` "offtopic": another row's passage)
    goes to the side of the group that owns its passage, or, for a passage only off-topic rows show, the side
    of the smallest group key among them. Groups that share no passage keep their own side."""
    from .data import split_ids

    groups = sorted({r["group"] for r in rows})
    _, test_ids = split_ids(groups, test_fraction=test_fraction, seed=seed)
    test = set(test_ids)
    units = split_units(rows, passages)
    trained = {u for r, u in zip(rows, units) if reviewed(r)}
    return np.array([u in test and u not in trained for u in units], dtype=bool)


def split_units(rows: Sequence[dict], passages: Sequence[str | None] | None = None) -> list[str]:
    """Each row's unit of :func:`split_groups`, the rows it keeps on one side: its group (``meta.group`` or
    ``meta.fact``, else its id); with ``passages`` (RAG), the smallest group key of the groups linked by showing the
    same passage text, an off-topic row's that of the group owning its passage. The cross-validation folds of the
    fit are grouped by the same units (:func:`grouped_folds`)."""
    if passages is None:
        return [r["group"] for r in rows]
    root, owner, keys = _passage_units(rows, passages)
    # the group whose side the row takes: an off-topic row's is the one owning the passage it shows
    return [root(owner[k] if r.get("condition") == "offtopic" and k is not None else r["group"])
            for r, k in zip(rows, keys)]


@dataclass(frozen=True)
class Folds:
    """The cross-validation folds of one domain's training answers (:func:`grouped_folds`): ``folds`` ((train, test)
    row indices), ``groups`` (each row's unit, handed to the probe so that its C is chosen on these same folds; None
    where the folds are of rows), and ``said`` (what they are, as the report says it)."""

    folds: list[tuple[np.ndarray, np.ndarray]]
    groups: np.ndarray | None
    said: str

    @property
    def grouped(self) -> bool:
        return self.groups is not None


def grouped_folds(y, units: Sequence[str], cv: int, seed: int, unit: str = "fact") -> Folds:
    """``cv`` stratified folds of the rows labelled ``y`` that keep each of ``units`` (:func:`split_units`, the held-out
    split's) in one fold, shuffled with ``seed`` as the probe shuffles its own (``HNeuronProbe.fit(groups=)``), so
    that the probe's C is chosen, and the out-of-fold scores are measured, on folds with no ``unit`` on both sides.
    Where units cannot give such folds (fewer units than folds, or a fold that would hold answers of one class only),
    stratified folds of rows, and ``said`` tells which and why (the report says it beside the figures)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(y)
    groups = np.asarray([str(u) for u in units])
    zeros = np.zeros((len(y), 1))
    n_units = len(set(groups.tolist()))
    why = None
    if n_units < cv:
        why = f"the training answers come from {n_units} {unit}s, fewer than the {cv} folds"
    else:
        folds = [(a, b) for a, b in StratifiedGroupKFold(cv, shuffle=True, random_state=seed).split(zeros, y, groups)]
        if all(len(set(y[b].tolist())) == 2 for _, b in folds):
            return Folds(folds, groups, f"{cv} folds grouped by {unit} as the held-out split is (no {unit} on both "
                                        "sides of a fold)")
        per_class = {c: len(set(groups[y == c].tolist())) for c in (0, 1)}
        c = min(per_class, key=lambda k: per_class[k])
        why = (f"grouped by {unit}, a fold would hold answers of one class only: the "
               f"{'hallucinated' if c else 'right'} answers come from {per_class[c]} {unit}s")
    folds = [(a, b) for a, b in StratifiedKFold(cv, shuffle=True, random_state=seed).split(zeros, y)]
    said = (f"{cv} folds of rows, not grouped by {unit} ({why}): rows of one {unit} can be on both sides of a fold, "
            "which reads the figures high")
    warnings.warn(f"C chosen and out-of-fold scores measured on {said}; add questions of other {unit}s", UserWarning,
                  stacklevel=2)
    return Folds(folds, None, said)


def _passage_units(rows: Sequence[dict], passages: Sequence[str | None]):
    """What :func:`split_groups` keeps on one side: (each group's unit, as a function giving its smallest group key;
    each passage text's owner group; each row's passage text, whitespace folded, or None)."""
    parent = {g: g for g in sorted({r["group"] for r in rows})}

    def root(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    keys = [" ".join(p.split()) if p and p.strip() else None for p in passages]
    owner: dict[str, str] = {}  # passage text -> a group that shows it as its own
    for r, key in zip(rows, keys):
        if key is None or r.get("condition") == "offtopic":
            continue
        a, b = root(owner.setdefault(key, r["group"])), root(r["group"])
        if a != b:  # the smaller key stays the root, so a component's root is its smallest group key
            parent[max(a, b)] = min(a, b)
    # a passage only off-topic rows show (a distractor of the user's own) has no owner: the smallest group key
    # among the rows showing it decides, for all of them
    for r, k in sorted(zip(rows, keys), key=lambda rk: rk[0]["group"]):
        if k is not None and k not in owner:
            owner[k] = r["group"]
    return root, owner, keys


def linked_by_passage(rows: Sequence[dict], passages: Sequence[str | None]) -> str | None:
    """Where ``rows`` (one domain's) of several groups are linked by shared passage texts into a single unit of the
    passage split (:func:`split_groups`), so that every row falls on one side whatever the seed: what links them and
    the fix, one sentence; None otherwise. A row showing another group's passage as its own (any meta.condition but
    "offtopic") links the two: a legal team's off-topic rows tagged "unanswerable" linked 40 clauses into one."""
    groups = {r["group"] for r in rows}
    if len(groups) < 2:
        return None
    root, _, keys = _passage_units(rows, passages)
    if len({root(g) for g in groups}) > 1:
        return None
    shown: dict[str, list[dict]] = {}  # passage text -> the rows showing it as their own
    for r, k in zip(rows, keys):
        if k is not None and r.get("condition") != "offtopic":
            shown.setdefault(k, []).append(r)
    shared = [rs for rs in shown.values() if len({r["group"] for r in rs}) > 1]
    # the rows that link: in a passage shared by groups, those of a group other than the one whose supporting
    # question it answers (all of them where no supporting row, or several groups', show it)
    links = []
    for rs in shared:
        own = {r["group"] for r in rs if r.get("condition") == "supporting"}
        links += [r for r in rs if r["group"] not in own] if len(own) == 1 else rs
    said = ""
    if links:
        r = min(links, key=lambda x: str(x["id"]))
        others = sorted({x["group"] for rs in shared if r in rs for x in rs} - {r["group"]})
        conds = sorted({str(x.get("condition")) for x in links})
        said = (f": {len(links)} row(s) show as their own a passage another group shows too (first {r['id']!r}, "
                f"meta.condition {r.get('condition')!r}, group {r['group']!r}, shares its passage with "
                f"{', '.join(map(repr, others[:3]))}; meta.condition of these rows: {', '.join(conds)})")
    return (f"its {len(rows)} rows of {len(groups)} groups (meta.group) are linked into one unit of the passage split by "
            f"shared passage texts{said}, so every row falls on one side whatever the seed; give a row whose passage "
            "is another question's meta.condition \"offtopic\" (it then goes with that passage's group and links none), "
            "or give each group passages of its own")


def reviewed_in_training(rows: Sequence[dict], test: np.ndarray, test_fraction: float, seed: int,
                         passages: Sequence[str | None] | None = None) -> dict[str, str]:
    """Per domain with reviewed rows, the sentence the report says of them: all in training (``split_groups``), and
    how many other rows went there with them (rows asking their questions, or showing their passages), which the
    same data without them would hold out."""
    assert not any(t and reviewed(r) for r, t in zip(rows, test)), "split_groups keeps reviewed rows in training"
    alone = split_groups([{**r, "source": None} for r in rows], test_fraction, seed, passages)
    out: dict[str, str] = {}
    for d in sorted({r["domain"] for r in rows if reviewed(r)}):
        n = sum(1 for r in rows if r["domain"] == d and reviewed(r))
        moved = sum(1 for r, a, t in zip(rows, alone, test) if r["domain"] == d and a and not t and not reviewed(r))
        out[d] = (f"{n} reviewed rows, all in training (live traffic the guard picked for review, not a random draw, is "
                  "never what a held-out figure is measured on)" + (
                      f"; {moved} other row{'s' if moved != 1 else ''} asking their questions (or showing their "
                      "passages) went to training with them, so the held-out set is not the one the same data without "
                      "them holds out" if moved else ""))
    return out


def held_out_digests(rows: Sequence[dict]) -> dict[str, str]:
    """Digests of the rows a held-out figure is measured on, so two reports tell whether their held-out figures
    compare like with like (:mod:`hguard.calibrate.changes`): ``held_out_set`` of their ids (the same rows), and
    ``held_out_answers`` of each one's id, answer and label (the same answers scored: the same rows answered with
    other generation settings, or by another model, are other answers)."""
    import hashlib

    def digest(lines: list[str]) -> str:
        return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()[:16]

    return {"held_out_set": digest([str(r["id"]) for r in rows]),
            "held_out_answers": digest([json.dumps([str(r["id"]), r.get("answer"), r.get("label")]) for r in rows])}


# ------------------------------------------------------------------------------------ fitting


def fit_domain(domain: str, train: Collected, *, seed: int, n_layers: int, d_ff: int, cv: int = 5, fit=None) -> dict:
    """Fit probe, random-neuron baseline, merger and thresholds on one domain's training answers. The probe's C is
    chosen, and the out-of-fold scores the merger, the thresholds and the report use are measured, on ``cv`` folds
    grouped by fact as the held-out split is (:func:`grouped_folds`; ``folds`` says which folds, and why when
    they are of rows).

    ``fit``: a :class:`hguard.calibrate.screen.ProbeFit` (None: in memory); a screened fit screens
    again inside each out-of-fold refit."""
    from ..policy import fit_thresholds
    from .screen import fit_probe, out_of_fold_logits, probe_logit, random_baseline

    keep = np.array([r["label"] != "refusal" for r in train.rows])
    tr = train.subset(keep)
    y = _y(tr.rows)
    lengths = _lengths(tr.rows)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(
            f"domain {domain!r}: the training split has {counts[0]} correct and {counts[1]} hallucinated answers; "
            f"at least {MIN_PER_CLASS} of each are needed to fit a probe; add questions to the domain"
        )
    cv_folds = grouped_folds(y, split_units(tr.rows), cv, seed)
    t0 = time.perf_counter()
    probe = fit_probe(tr.features, y, fit=fit, lengths=lengths, groups=cv_folds.groups, cv=cv, n_layers=n_layers,
                      d_ff=d_ff, random_state=seed)
    fit_seconds = time.perf_counter() - t0
    # Out-of-fold probe scores with C fixed, so the merger and the thresholds see honest scores.
    folds = cv_folds.folds
    oof = out_of_fold_logits(probe, tr.features, y, folds, fit=fit, lengths=lengths)
    Z = merger_features(tr.rows, oof)
    merger = fit_merger(Z, y)
    merged_oof = np.zeros(len(y))
    for a, b in folds:
        merged_oof[b] = apply_merger(fit_merger(Z[a], y[a]), Z[b])
    n_random = max(1, len(probe.feature_indices_))
    rnd = random_baseline(tr.features, y, n_random, seed=seed, lengths=lengths, fit=fit)
    return {
        "probe": probe,
        "merger": merger,
        "random_baseline": rnd.to_dict(),
        "oof_neuron_auroc": auroc(y, oof),
        "oof_merged_auroc": auroc(y, merged_oof),
        "folds": cv_folds.said,  # what C was chosen and the out-of-fold scores measured on
        "folds_grouped": cv_folds.grouped,
        "oof_merged": merged_oof.tolist(),
        "oof_y": y.tolist(),
        "oof_logit": oof,  # each training answer's probe logit from a fold without it (same order as oof_y)
        "oof_family": [r.get("family") for r in tr.rows],
        "n_train": int(len(y)),
        "n_train_refusals": int((~keep).sum()),
        "train_counts": {"correct": int(counts[0]), "hallucinated": int(counts[1])},
        "fit_seconds": fit_seconds,
        "fit_thresholds": fit_thresholds,
        "baseline_thresholds": {
            name: best_threshold(y, [f(r) for r in tr.rows]) for name, f in BASELINES.items()
        },
        "probe_threshold": best_threshold(y, sigmoid_array(probe_logit(probe, tr.features, lengths=lengths))),
        "merged_threshold": best_threshold(y, merged_oof),
    }


def score_rows(fitted: dict, col: Collected) -> dict[str, np.ndarray]:
    """Every risk score of the report for ``col``'s rows under one domain's fitted objects."""
    from .screen import probe_logit

    probe = fitted["probe"]
    lengths = _lengths(col.rows)
    logit = probe_logit(probe, col.features, lengths=lengths)
    rb = fitted["random_baseline"]
    out = {
        "probe": sigmoid_array(logit),
        "merged": apply_merger(fitted["merger"], merger_features(col.rows, logit)),
        "random_neurons": random_baseline_score(rb, col.features[:, rb["feature_indices"]], lengths),
    }
    for name, f in BASELINES.items():
        out[name] = np.array([f(r) for r in col.rows], dtype=float)
    return out


def domain_metrics(fitted: dict, test: Collected, *, target: float, confidence: float, thresholds) -> dict:
    keep = np.array([r["label"] != "refusal" for r in test.rows])
    te = test.subset(keep)
    y = _y(te.rows)
    scores = score_rows(fitted, te) if len(te.rows) else {}
    au = {k: auroc(y, v) for k, v in scores.items()}
    ci = auroc_ci(y, scores)
    thr = {
        "probe": fitted["probe_threshold"],
        "merged": fitted["merged_threshold"],
        "random_neurons": 0.5,
        **fitted["baseline_thresholds"],
    }
    acc = {k: accuracy_at(y, v, thr[k]) for k, v in scores.items()}
    n_all = len(test.rows)
    probe = fitted["probe"]
    merged = scores.get("merged", np.zeros(0))
    distance, ood_at = held_out_distance(fitted, te)
    accepted, far_below = accepted_by_guard(merged, thresholds.accept_below, distance, ood_at)
    abstained = merged >= thresholds.abstain_above if len(merged) else np.zeros(0, bool)
    n_accepted, k_accepted = int(accepted.sum()), int(y[accepted].sum())
    n_abstained, k_abstained = int(abstained.sum()), int(y[abstained].sum()) if len(abstained) else 0
    return {
        "n": n_all,
        "n_scored": int(len(y)),
        "hallucination_rate": float(y.mean()) if len(y) else None,
        "correct": int(len(y) - y.sum()),
        "hallucinated": int(y.sum()),
        "refusal_rate": float((~keep).mean()) if n_all else None,
        "refusals": int((~keep).sum()),
        "auroc": au,
        "auroc_ci95": ci,
        # the probe against as many random neurons, paired on the same resamples (None: too few of a class)
        "probe_minus_random_ci95": (auroc_difference_ci(y, scores["probe"], scores["random_neurons"])
                                    if "probe" in scores and "random_neurons" in scores else None),
        "accuracy": acc,
        "n_h_neurons": len(probe.h_neurons_),
        "n_selected_neurons": int(len(probe.feature_indices_)),
        "h_neuron_share_per_mille": 1000.0 * len(probe.h_neurons_) / probe.n_features_in_,
        "neuron_share_per_mille": 1000.0 * len(probe.feature_indices_) / probe.n_features_in_,
        "C": float(probe.C_),
        "at_target": {
            "target": target,
            "confidence": confidence,
            "accept_below": thresholds.accept_below,
            "abstain_above": thresholds.abstain_above,
            "coverage": float(accepted.mean()) if len(accepted) else None,
            "coverage_ci95": clopper_pearson_interval(n_accepted, int(len(y))),
            "n_accepted": n_accepted,
            "accepted_hallucinated": k_accepted,
            "accepted_hallucination_rate": k_accepted / n_accepted if n_accepted else None,
            "accepted_hallucination_ci95": clopper_pearson_interval(k_accepted, n_accepted),
            "abstain_share": float(abstained.mean()) if len(abstained) else None,
            "n_abstained": n_abstained,  # of the n_scored held-out answers
            "abstain_share_ci95": clopper_pearson_interval(n_abstained, int(len(y))),
            # the abstain threshold's promise (at least abstain_precision of abstained answers hallucinated, certified
            # on the training split's scores) checked on the held-out answers it abstains on
            "abstain_precision": getattr(thresholds, "abstain_precision", None),
            "abstained_hallucinated": k_abstained,
            "abstained_hallucination_rate": k_abstained / n_abstained if n_abstained else None,
            "abstained_hallucination_ci95": clopper_pearson_interval(k_abstained, n_abstained),
            **abstain_promise_checked(k_abstained, n_abstained, getattr(thresholds, "abstain_precision", None)),
            "review_out_of_distribution": far_below,  # under accept_below, but sent to review by the distance
        },
        # the held-out answers' merged risks, labels and whether the out-of-distribution check sends them to review
        # (moved into the probe file by the pipeline)
        "held_out_scores": {"risk": [float(r) for r in merged], "hallucinated": [int(v) for v in y],
                            "out_of_distribution": [int(v) for v in beyond(distance, ood_at)]},
    }


def abstain_promise_checked(k: int, n: int, promise: float | None) -> dict:
    """The abstain threshold's promise (at least ``promise`` of the answers it abstains on hallucinated) against ``n``
    abstained held-out answers, ``k`` of them hallucinated: whether the rate meets it (``abstained_within_promise``, a
    point estimate) and whether its exact 95% interval lies wholly below it (``abstained_below_promise_shown``); None
    where nothing was abstained on or the thresholds hold no promise."""
    ci = clopper_pearson_interval(k, n)
    if promise is None or ci is None:
        return {"abstained_within_promise": None, "abstained_below_promise_shown": None}
    return {"abstained_within_promise": k / n >= promise, "abstained_below_promise_shown": ci[1] < promise}


def held_out_distance(fitted: dict, te: Collected) -> tuple[np.ndarray, float | None]:
    """Each of ``te``'s answers' out-of-distribution distance under the domain's probe, and the threshold beyond
    which the guard sends it to review (None: the domain has none, and the distance sends nothing)."""
    ood = fitted.get("ood")
    if not len(te.rows):
        return np.zeros(0), None
    return full_distance(fitted["probe"], te.features), (float(ood["threshold"]) if ood else None)


def _examples(data: Sequence[str | os.PathLike] | Sequence[Example]) -> list[Example]:
    """``data`` as examples: given as examples, or read from the files it names."""
    if data and isinstance(data[0], Example):
        return list(cast("Sequence[Example]", data))
    return load_examples(list(cast("Sequence[str | os.PathLike[str]]", data)))


def _load_lm(model: str | None, lm):
    """``lm``, or the model ``model`` names loaded; a model whose weights were edited in memory since it was loaded is
    refused: its fingerprint names the files, and probes calibrated or evaluated on it would record them."""
    if lm is not None:
        problem = lm.weights_changed()
        if problem:
            from ..errors import UnsupportedModelError

            raise UnsupportedModelError(problem)
        return lm
    from ..models import load_model

    return load_model("default" if model is None else model)  # "" (`--model "$MODEL"`, unset) is refused there
