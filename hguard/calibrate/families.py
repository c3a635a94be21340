"""Generalisation to kinds of question the calibration never saw: leave-one-family-out.

Every calibration row belongs to a *family* (``meta.family``: its question template or sub-topic; a row
without one falls back to its fact group). For each family F of a domain, a probe is fitted on the
domain's training answers of the other families, with its own C; its scores on F are F's
*cross-family out-of-fold* scores. From those scores:

* the merger of probe and confidence is fitted on cross-family out-of-fold probe scores, so it learns
  how far the probe's score can be trusted on a family it was not fitted on;
* the accept/abstain thresholds (Learn-then-Test) are fitted on cross-family out-of-fold merged risks,
  so the accept threshold is certified on answers to kinds of question its probe never saw;
* each family is reported with probe, merger and thresholds fitted without it (the thresholds and the
  merger for F are fitted on the other families' out-of-fold scores alone), tested on all of F's answers but
  reviewed ones (rows exported from the review queue, live traffic the guard picked: fitted on, never tested on,
  so the "reviewed" family has no figure and says why).

With more than :data:`MAX_FOLDS` families (typically: no ``meta.family``, one family per fact), the
families are dealt into that many folds for the probes, each held out as a whole.

F's accept threshold is the one the guard's check refits at load (:func:`hguard._policy_fit.
accept_below_without_family`: on the scores the domain's thresholds are fitted on, without F if F is a kind of
question, without F's fold of fallback groups if F is one, :func:`hguard._policy_fit.held_out_folds`), so the
report's pooled figure is the one that withdraws a threshold. One leak is left and stated: the other families'
out-of-fold scores, on which F's merger and thresholds are fitted, come from probes (and, for the thresholds,
mergers) that were fitted with F's answers in them; F's own scores never do.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from .._numerics import sigmoid_array
from .._policy_fit import MAX_FOLDS, accept_below_without_family, family_folds, is_fallback_family
from .._stats import clopper_pearson_interval
from ..ood import beyond, fit_ood, full_distance
from .collect import Collected
from .judge import right_reply
from .pipeline import _lengths, _y, accepted_by_guard, reviewed
from .screen import FitWarnings, fit_probe, probe_logit, random_baseline

# Each held-out family's probe chooses its own C, on a coarser search than the shipped probe's (3 folds,
# 6 values of C instead of 5 and 10): one such fit per family is what keeps calibration within budget.
MIN_CLASS_FOR_MEAN = 5
FOLD_CV = 3
FOLD_PROBE = {"Cs": 6}
# How the report names the scores the thresholds were fitted on.
CROSS_FAMILY_SCORES = (
    "cross-family out-of-fold merged risks of the training split: each answer's probe score comes from a "
    "probe fitted without its family (leave-one-family-out), merged by a merger fitted on the other families' "
    "cross-family scores (the shipped merger is fitted on all of them)"
)
FACT_FOLD_SCORES = "out-of-fold merged risks of the training split from "  # + the domain's folds (fitted["folds"])


def family_of(example) -> str:
    """``meta.family``, else the fact group (``meta.group`` or ``meta.fact``), else the row's id."""
    meta = example.meta or {}
    fam = meta.get("family")
    if isinstance(fam, str) and fam.strip():
        return fam
    for key in ("group", "fact"):  # FALLBACK_FAMILY_PREFIXES
        if meta.get(key) is not None:
            return f"{key}:{meta[key]}"
    return f"id:{example.id}"


def attach_families(rows: Sequence[dict], examples: Sequence) -> None:
    """Set ``row["family"]`` from the example of the same id (rows come back from the collection), and say
    once how many rows had no ``meta.family``: each of those is a family of its own fact (or row), so for
    them leave-one-family-out holds out a fact, not a kind of question."""
    import warnings

    by_id = {e.id: family_of(e) for e in examples}
    for r in rows:
        r["family"] = by_id.get(r["id"], f"id:{r['id']}")
    _join_repeated_questions(rows)
    named: dict[tuple[str, str], list[str]] = {}  # a family is one domain's
    for e in examples:
        if isinstance((e.meta or {}).get("family"), str):
            named.setdefault((e.domain, e.meta["family"]), []).append(e.id)
    lonely = sorted(k for k, ids in named.items() if len(ids) == 1)
    if lonely:
        warnings.warn(
            f"{len(lonely)} meta.family value(s) name a single row (first: {lonely[0][1]!r} of domain {lonely[0][0]!r}, "
            f"row {named[lonely[0]][0]!r}): "
            "a family of one row is held out as one answer, which says nothing of a kind of question; check its "
            "spelling against the other rows' families, or give it more rows", UserWarning, stacklevel=2)
    bare = [e for e in examples if not isinstance((e.meta or {}).get("family"), str) or not e.meta["family"].strip()]
    if bare:
        no_group = sum(1 for e in bare if by_id[e.id].startswith("id:"))
        warnings.warn(
            f"{len(bare)} of {len(examples)} rows have no meta.family (first: {bare[0].id!r}): each falls back to its "
            f"fact group (meta.group or meta.fact{f'; {no_group} have neither and are a family of one row' if no_group else ''}), "
            "so the leave-one-family-out figures and the cross-family scores the thresholds are fitted on hold out "
            "those facts, not a kind of question; set meta.family to the row's question template or sub-topic",
            UserWarning, stacklevel=2)


def _join_repeated_questions(rows: Sequence[dict]) -> None:
    """Rows of one domain asking the same question (case, spacing and punctuation aside: a reviewed answer
    exported back next to its calibration row, a question pasted twice) are one data point for the split: each repeat takes the group and family
    of the first row asking it (one not exported from review, when there is one), so no question is on both
    sides of the held-out split or of a leave-one-family-out fold; said once in a warning."""
    import warnings

    import re

    def key(r: dict) -> tuple[str, str]:  # case, spacing and punctuation aside
        return r["domain"], " ".join(re.sub(r"[^\w\s]", " ", str(r.get("question", "")).lower()).split())

    first: dict[tuple[str, str], dict] = {}
    for r in sorted(rows, key=lambda r: r["family"] == "reviewed"):  # a calibration row before its reviewed repeat
        first.setdefault(key(r), r)
    moved = []
    for r in rows:
        head = first[key(r)]
        if head is not r and (r["group"], r["family"]) != (head["group"], head["family"]):
            r["group"], r["family"] = head["group"], head["family"]
            moved.append((r["id"], head["id"]))
    if moved:
        warnings.warn(
            f"{len(moved)} row(s) repeat the question of another row of their domain (first: {moved[0][0]!r} asks what "
            f"{moved[0][1]!r} asks): each is kept with that row, on the same side of the held-out split and in its "
            "family, so a repeated question is never tested against itself", UserWarning, stacklevel=3)
    # the same answer to the same question labelled both ways (a reviewer's verdict against the judge's reading of
    # the calibration row's answers): one of the two is wrong, and both are fitted on
    from .._text import same_words

    seen: dict[tuple[str, str], list[dict]] = {}
    conflicts = []
    for r in rows:
        if r.get("label") not in ("correct", "hallucinated") or not isinstance(r.get("answer"), str):
            continue
        asked_before = seen.setdefault(key(r), [])
        conflicts += [(other, r) for other in asked_before
                      if other["label"] != r["label"] and same_words(other["answer"], r["answer"])]
        asked_before.append(r)
    if conflicts:
        a, b = conflicts[0]
        warnings.warn(
            f"{len(conflicts)} pair(s) of rows give the same answer to the same question with opposite labels (first: "
            f"{a['id']!r} {a['label']!r}, {b['id']!r} {b['label']!r}, answer {a['answer'][:80]!r}): "
            + ("a reviewer's verdict and the judge's reading of the answers disagree; fix the row's answers or the "
               "verdict" if "review" in (a.get("source"), b.get("source")) else
               "the two rows accept different answers to one question; fix their answers (or keep one row)")
            + ", as both are fitted on", UserWarning, stacklevel=3)


def cross_family_fit(train: Collected, *, seed: int, n_layers: int, d_ff: int, cv: int = 5,
                     min_per_class: int = 8, probe_params: dict | None = None, c_by_family: bool = False,
                     only: Sequence[str] | None = None, fit=None) -> dict[str, Any]:
    """Leave-one-family-out probes on a domain's training answers (refusals already removed).

    Returns the folds (families held out, the probe fitted without them, its random-neuron control, or
    why the fold could not be fitted) and ``oof_logit``: each training answer's probe logit from the
    probe of its fold (NaN where its fold could not be fitted).
    """
    rows = train.rows
    fam = np.array([r["family"] for r in rows])
    y = _y(rows)
    lengths = _lengths(rows)
    oof = np.full(len(rows), np.nan)
    dist = np.full(len(rows), np.nan)
    folds = []
    t0 = time.perf_counter()
    said = FitWarnings("leave-one-family-out fits, each without its family (or families, a fold of small ones), for "
                       "the cross-family figures and thresholds")
    for held in family_folds(fam.tolist()):
        if only is not None and not set(held) & set(only):
            continue
        out = np.isin(fam, held)
        keep = ~out
        counts = np.bincount(y[keep], minlength=2)
        fold: dict[str, Any] = {"families": held, "n_fit": int(keep.sum()),
                                "fit_counts": {"correct": int(counts[0]), "hallucinated": int(counts[1])}}
        if counts.min() < max(min_per_class, cv):
            fold["skipped"] = (f"without {', '.join(held)} the training split has {counts[0]} correct and "
                               f"{counts[1]} hallucinated answers; at least {max(min_per_class, cv)} of each are needed")
            folds.append(fold)
            continue
        # C chosen by folds of whole families (a variant measured in benchmarks/generalization.py) or of answers
        groups = fam[keep] if c_by_family and len(set(fam[keep].tolist())) >= cv else None
        # a screened fit screens on the fold's rows only: the held-out families choose no feature
        with said.fit("family " + ", ".join(held)):  # said as this fold's, not the shipped probe's
            probe = fit_probe(train.features[keep], y[keep], fit=fit, lengths=lengths[keep], groups=groups, cv=cv,
                              n_layers=n_layers, d_ff=d_ff, random_state=seed, **(probe_params or {}))
        oof[out] = probe_logit(probe, train.features[out], lengths=lengths[out])
        distance = full_distance(probe, train.features)  # the probe's neurons only are read
        dist[out] = distance[out]
        fold["own_distance"] = distance[keep]
        rnd = random_baseline(train.features[keep], y[keep], max(1, len(probe.feature_indices_)), seed=seed,
                              lengths=lengths[keep], fit=fit)
        fold.update(probe=probe, random_baseline=rnd.to_dict())
        folds.append(fold)
    said.say()
    return {"folds": folds, "oof_logit": oof, "oof_distance": dist, "families": fam, "y": y,
            "seconds": time.perf_counter() - t0}


def _at_target(risk: np.ndarray, y: np.ndarray, accept_below: float, target: float, distance=None,
               ood_threshold: float | None = None) -> dict:
    acc, far = accepted_by_guard(risk, accept_below, distance, ood_threshold)
    n_acc = int(acc.sum())
    k = int(y[acc].sum()) if n_acc else 0
    return {
        "accept_below": float(accept_below),
        "n_accepted": n_acc,
        "coverage": float(acc.mean()) if len(acc) else None,
        "accepted_hallucinated": k,
        **_against_target(k, n_acc, target),
        "review_out_of_distribution": far,  # under accept_below, but sent to review by the distance: not accepted
    }


def _against_target(k: int, n_acc: int, target: float) -> dict:
    """The hallucination rate among ``n_acc`` accepted answers (``k`` hallucinated), its exact 95% interval, whether
    the rate is within ``target`` (``within_target``, a point estimate: 0 of 2 is within any target) and whether the
    interval shows it (``within_target_shown``: its upper end within the target, as the monitor says it); all None
    when nothing was accepted (nothing to judge)."""
    rate = k / n_acc if n_acc else None
    ci = clopper_pearson_interval(k, n_acc)
    return {"accepted_hallucination_rate": rate, "within_target": None if rate is None else rate <= target,
            "accepted_hallucination_ci95": ci, "within_target_shown": None if ci is None else ci[1] <= target}


def evaluate_families(
    cf: dict,
    train: Collected,
    domain_rows: Collected,
    *,
    target: float,
    confidence: float,
    thresholds_scores: tuple[Sequence[float], Sequence[int], Sequence[str]] | None = None,
) -> dict:
    """Per family: every signal's AUROC with intervals, class counts and routing at the target, each
    from probe, merger and thresholds fitted without the family; then the domain's summary.

    ``train`` holds the training answers the folds were fitted on (refusals removed), ``domain_rows``
    every answer of the domain (training and held-out split, refusals included): a family is tested on
    all of its answers, none of which its probe, merger or thresholds saw. ``thresholds_scores`` (risk,
    hallucinated, family): the scores the domain's thresholds are fitted on; each family is routed by the accept
    threshold fitted on them without it (:func:`hguard._policy_fit.accept_below_without_family`, what the guard's
    check refits), so the pooled figure is the one :func:`hguard._policy_fit.withdrawn_on_new_families` reads.
    """
    from ..policy import fit_thresholds
    from .pipeline import (BASELINES as baselines, apply_merger, auroc, auroc_ci, fit_merger, merger_features,
                           random_baseline_score)

    fam_tr = cf["families"]
    y_tr = cf["y"]
    oof = cf["oof_logit"]
    Z_tr = merger_features(train.rows, np.nan_to_num(oof))
    if thresholds_scores is None:  # the cross-family scores, each merged without its family
        ok = np.isfinite(oof)
        thresholds_scores = (_merged_without_family(Z_tr[ok], y_tr[ok], fam_tr[ok], Z_tr[ok], fam_tr[ok],
                                                    fit_merger(Z_tr[ok], y_tr[ok])).tolist(),
                             y_tr[ok].tolist(), fam_tr[ok].tolist())
    th_risk = [float(v) for v in thresholds_scores[0]]
    th_y = [int(v) for v in thresholds_scores[1]]
    th_fam = [str(v) for v in thresholds_scores[2]]
    without = accept_below_without_family(th_risk, th_y, th_fam, target=target, confidence=confidence)
    # a family with no training answer: the thresholds fitted on all of them were fitted without it
    on_all = fit_thresholds(th_risk, th_y, target=target, confidence=confidence).accept_below
    per_family: dict[str, dict] = {}
    left_out: dict[str, list] = {"risk": [], "hallucinated": [], "family": [], "out_of_distribution": []}
    for fold in cf["folds"]:
        for f in fold["families"]:
            # reviewed rows (live traffic the guard picked) are fitted on, never what a family's figure is measured on
            of_f = np.array([r["family"] == f for r in domain_rows.rows], dtype=bool)
            rev = np.array([reviewed(r) for r in domain_rows.rows], dtype=bool)
            sub = domain_rows.subset(of_f & ~rev)
            refusals = sum(1 for r in sub.rows if r["label"] == "refusal")
            te = sub.subset([r["label"] != "refusal" for r in sub.rows])
            y = _y(te.rows)
            counts = np.bincount(y, minlength=2) if len(y) else np.zeros(2, int)
            entry: dict[str, Any] = {
                "n": len(sub.rows),
                "n_scored": int(len(y)),
                "correct": int(counts[0]),
                "hallucinated": int(counts[1]),
                "refusals": refusals,
                "model_accuracy": (sum(right_reply(r["label"], r.get("kind", "qa")) for r in sub.rows) / len(sub.rows))
                if sub.rows else None,
                "held_out_with": [g for g in fold["families"] if g != f],
            }
            n_reviewed = int((of_f & rev).sum())
            if n_reviewed:
                entry["reviewed_left_out"] = n_reviewed
            if not sub.rows:
                entry["no_figure"] = (f"its {n_reviewed} rows are reviewed answers (exported from the review queue: live "
                                      "traffic the guard picked for review, not a random draw): fitted on in the other "
                                      "families' folds, never what a held-out figure is measured on")
                per_family[f] = entry
                continue
            if fold.get("unseen_in_training"):
                entry["held_out_only"] = ("no training answer: all of its rows are in the held-out split, so the "
                                          "probe, merger and thresholds fitted on the whole training split never saw it")
            if "skipped" in fold:
                entry["no_figure"] = fold["skipped"]
                per_family[f] = entry
                continue
            if not len(y):
                entry["no_figure"] = "no answer of this family was scored (all refusals)"
                per_family[f] = entry
                continue
            others = ~np.isin(fam_tr, fold["families"]) & np.isfinite(oof)
            if np.bincount(y_tr[others], minlength=2).min() < 2:
                entry["no_figure"] = (f"the other families' cross-family scores hold {int(others.sum())} answers, fewer "
                                      "than 2 of a class: no merger can be fitted without this family")
                per_family[f] = entry
                continue
            probe = fold["probe"]
            lengths = _lengths(te.rows)
            logit = probe_logit(probe, te.features, lengths=lengths)
            merger = fit_merger(Z_tr[others], y_tr[others])
            rb = fold["random_baseline"]
            scores = {
                "probe": sigmoid_array(logit),
                "merged": apply_merger(merger, merger_features(te.rows, logit)),
                "random_neurons": random_baseline_score(rb, te.features[:, rb["feature_indices"]], lengths),
            }
            for name, fn in baselines.items():
                scores[name] = np.array([fn(r) for r in te.rows], dtype=float)
            if counts.min() == 0:
                only = "hallucinated" if counts[0] == 0 else "correct"
                entry["one_class"] = (f"all {len(y)} scored answers are {only}: AUROC is undefined; the routing "
                                      "figures below still say how many of them were accepted")
                entry["auroc"] = {k: None for k in scores}
                entry["auroc_ci95"] = {k: None for k in scores}
            else:
                entry["auroc"] = {k: auroc(y, v) for k, v in scores.items()}
                entry["auroc_ci95"] = auroc_ci(y, scores)
            # routed as a guard with this fold's probe, thresholds and out-of-distribution threshold would route it
            others_d = cf["oof_distance"][~np.isin(fam_tr, fold["families"])]
            ood = fit_ood(others_d, fitted_on="the other families' cross-family distances",
                          own=fold.get("own_distance"))
            d = full_distance(probe, te.features)
            ood_at = ood["threshold"] if ood else None
            far = beyond(d, ood_at)
            entry["at_target"] = {"target": target, "confidence": confidence,
                                  **_at_target(scores["merged"], y, without.get(f, on_all), target, d, ood_at)}
            # what routes this family at any target when a guard loads the probe file (CalibratedDomain.fit_thresholds)
            left_out["risk"] += [float(v) for v in scores["merged"]]
            left_out["hallucinated"] += [int(v) for v in y]
            left_out["family"] += [f] * len(y)
            left_out["out_of_distribution"] += [int(v) for v in far]
            entry["ood"] = {
                "threshold": ood_at,
                "median_distance": float(np.median(d)) if len(d) else None,
                "triggered": int(far.sum()) if ood else None,
                "trigger_rate": float(far.mean()) if ood and len(d) else None,
            }
            entry["C"] = float(probe.C_)
            entry["n_selected_neurons"] = int(len(probe.feature_indices_))
            per_family[f] = entry
    return {"families": per_family, "summary": summarize(per_family, list(baselines), target),
            LEFT_OUT_SCORES: left_out if left_out["risk"] else None}


def _merged_without_family(Z: np.ndarray, y: np.ndarray, families: np.ndarray, Z_score: np.ndarray,
                           families_score: np.ndarray, merger: dict) -> np.ndarray:
    """The merged risk of each row of ``Z_score`` from a merger fitted without its family (on the rows of ``Z``
    of the other families), so that the thresholds certified on these scores rest on no merger that saw the
    answers it scores; ``merger`` (fitted on all) for a family whose others hold fewer than 2 of a class."""
    from .pipeline import apply_merger, fit_merger

    out = np.zeros(len(Z_score))
    for f in np.unique(families_score):
        others = families != f
        at = families_score == f
        m = fit_merger(Z[others], y[others]) if np.bincount(y[others], minlength=2).min() >= 2 else merger
        out[at] = apply_merger(m, Z_score[at])
    return out


#: the key of :func:`evaluate_families`' result holding each family's answers as scored without it (risk, hallucinated,
#: family, out_of_distribution): the probe file's ``family_scores``, taken out of the report
LEFT_OUT_SCORES = "left_out_scores"


def cross_family_calibration(fitted: dict, train: Collected, domain_rows: Collected, *, seed: int, n_layers: int,
                             d_ff: int, target: float, confidence: float, cv: int = 5, fit=None) -> dict:
    """Leave-one-family-out for one domain; re-fits ``fitted``'s merger and the scores its thresholds
    are fitted on from cross-family out-of-fold probe scores. Returns the report's ``families`` entry."""
    from .pipeline import apply_merger, best_threshold, fit_merger, merger_features

    tr = train.subset([r["label"] != "refusal" for r in train.rows])
    names = sorted({r["family"] for r in tr.rows})
    # the rows without meta.family, each in the fallback group of its fact (or its own row)
    without_family = sum(1 for r in domain_rows.rows if is_fallback_family(r["family"]))
    if len(names) < 2:
        fitted["thresholds_fitted_on"] = FACT_FOLD_SCORES + fitted["folds"] + " (the domain has fewer than two families, so no cross-family scores exist)"
        why = (f"the training split has {len(names)} family ({', '.join(names) or 'none'}); leave-one-family-out needs "
               "at least two (set meta.family on the rows: the question template or sub-topic)")
        return {"no_figure": why, "rows_without_family": without_family}
    cf = cross_family_fit(tr, seed=seed, n_layers=n_layers, d_ff=d_ff, cv=FOLD_CV, probe_params=FOLD_PROBE, fit=fit)
    # A family with no scored training answer (all of its rows fell in the held-out split) was never seen by the
    # probe, merger and thresholds fitted on the whole training split: those are its leave-one-family-out fit.
    unseen = sorted({r["family"] for r in domain_rows.rows} - set(names))
    own = full_distance(fitted["probe"], tr.features)  # the shipped probe's own answers, its threshold's floor
    for f in unseen:  # routed with the out-of-distribution threshold the guard applies (a review found a lower one)
        cf["folds"].append({"families": [f], "n_fit": len(tr.rows), "probe": fitted["probe"],
                            "random_baseline": fitted["random_baseline"], "unseen_in_training": True,
                            "own_distance": own})
    ok = np.isfinite(cf["oof_logit"])
    y = cf["y"]
    if ok.sum() and np.bincount(y[ok], minlength=2).min() >= 2:
        Z = merger_features([r for r, k in zip(tr.rows, ok) if k], cf["oof_logit"][ok])
        fitted["merger"] = fit_merger(Z, y[ok])
        # An answer whose family could not be held out (no probe could be fitted without it) keeps its score
        # from the folds of answers: dropping it would leave its family out of the thresholds' base rate.
        logit = np.where(ok, cf["oof_logit"], fitted["oof_logit"])
        usable = np.isfinite(logit)
        merged = _merged_without_family(
            Z, y[ok], cf["families"][ok], merger_features([r for r, k in zip(tr.rows, usable) if k], logit[usable]),
            cf["families"][usable], fitted["merger"])
        fitted["oof_merged"] = merged.tolist()
        fitted["oof_y"] = y[usable].tolist()
        fitted["oof_family"] = cf["families"][usable].tolist()
        fitted["merged_threshold"] = best_threshold(y[ok], apply_merger(fitted["merger"], Z))
        left = sorted({r["family"] for r, k in zip(tr.rows, ok) if not k})
        fitted["thresholds_fitted_on"] = CROSS_FAMILY_SCORES + (
            f"; the {int((usable & ~ok).sum())} answers of {', '.join(left)} (no probe could be fitted without their "
            "family) are scored by the probes of the folds of answers instead, which saw their family"
            if left else "") + (
            f"; {', '.join(unseen)} ha{'s' if len(unseen) == 1 else 've'} no training answer (all in the held-out "
            "split) and so no part in these scores (nor in a per-family certificate)" if unseen else "")
        fitted["ood"] = fit_ood(cf["oof_distance"], fitted_on=(
            "cross-family out-of-fold distances of the training split (each answer under a probe fitted without "
            "its family)"), own=own)
    else:
        fitted["thresholds_fitted_on"] = FACT_FOLD_SCORES + fitted["folds"] + (
            f" (the cross-family scores hold {int(ok.sum())} answers, fewer than 2 of a class, too few to fit a merger on)")
    result = evaluate_families(cf, tr, domain_rows, target=target, confidence=confidence,
                               thresholds_scores=(fitted["oof_merged"], fitted["oof_y"], fitted["oof_family"]))
    result["fit_seconds"] = cf["seconds"]
    result["rows_without_family"] = without_family
    result["method"] = (
        f"leave-one-family-out: for each family, probe (C by {FOLD_CV}-fold CV over {FOLD_PROBE['Cs']} values), merger and thresholds fitted on the "
        "training split without that family, tested on all of its answers (training and held-out split); "
        f"with more than {MAX_FOLDS} families the probes hold them out in {MAX_FOLDS} folds of whole families, "
        f"the thresholds each meta.family alone and the fallback fact groups in {MAX_FOLDS} folds. Other "
        "families may ask about the same entities (a fact) in another form."
    )
    return result


def figures_by_family(families: Sequence[str], labels: Sequence[str], scores: dict[str, np.ndarray], *,
                      accept_below: float | None, target: float | None, distance: np.ndarray | None = None,
                      ood_threshold: float | None = None, kinds: Sequence[str] | None = None) -> dict:
    """Per family, figures of already-scored answers (``hguard evaluate``): class counts, every signal's
    AUROC with intervals (or why there is none) and routing at the probe's accept threshold.
    ``scores`` and ``distance`` hold one value per answer that is not a refusal, in order; ``kinds``
    (the rows' kinds, default all "qa") let the model's accuracy count a refusal to an unanswerable row."""
    from .pipeline import BASELINES, auroc, auroc_ci

    fam = np.asarray(families)
    lab = np.asarray(labels)
    right_all = np.array([right_reply(lb, k) for lb, k in zip(lab, kinds or ["qa"] * len(lab))], dtype=bool)
    keep = lab != "refusal"
    fam_k = fam[keep]
    y_all = (lab[keep] == "hallucinated").astype(int)
    per: dict[str, dict] = {}
    for f in sorted(set(fam.tolist())):
        sel = fam_k == f
        y = y_all[sel]
        counts = np.bincount(y, minlength=2) if len(y) else np.zeros(2, int)
        n = int((fam == f).sum())
        right = int(right_all[fam == f].sum())
        e: dict[str, Any] = {"n": n, "n_scored": int(len(y)), "correct": int(counts[0]), "hallucinated": int(counts[1]),
                             "refusals": n - int(len(y)), "model_accuracy": right / n if n else None}
        sc = {k: np.asarray(v)[sel] for k, v in scores.items()}
        if len(y) and counts.min() > 0:
            e["auroc"] = {k: auroc(y, v) for k, v in sc.items()}
            e["auroc_ci95"] = auroc_ci(y, sc)
        else:
            e["one_class"] = (f"{len(y)} scored answer{'' if len(y) == 1 else 's'}, {int(counts[0])} correct and {int(counts[1])} hallucinated: "
                              "AUROC needs both classes")
            e["auroc"] = {k: None for k in sc}
        d = np.asarray(distance, dtype=float)[sel] if distance is not None else None
        if accept_below is not None and target is not None and len(y):
            e["at_target"] = {"target": target, **_at_target(sc["merged"], y, accept_below, target, d, ood_threshold)}
        if d is not None and ood_threshold is not None and len(y):
            far = beyond(d, ood_threshold)
            e["ood"] = {"threshold": ood_threshold, "triggered": int(far.sum()), "trigger_rate": float(far.mean())}
        per[f] = e
    summary = summarize(per, list(BASELINES), target if target is not None else float("nan"))
    # these answers were never held out of a fit: the share of them beyond the probe file's threshold, by its name
    if "ood_held_out_families" in summary:
        summary["ood_answers"] = summary.pop("ood_held_out_families")
    return {"families": per, "summary": summary}


def _inverted(entry: dict) -> bool:
    """True when the family's merged-risk AUROC interval lies wholly below 0.5: its scores run backwards."""
    ci = (entry.get("auroc_ci95") or {}).get("merged")
    return ci is not None and ci[1] is not None and ci[1] < 0.5


def in_mean(per_family: dict) -> dict:
    """The families whose AUROCs enter the domain's means: both classes, each with at least
    :data:`MIN_CLASS_FOR_MEAN` answers (an AUROC resting on one or two answers of a class, e.g. the rare abstention on
    invented entities, is reported for its family, with its interval, but does not enter the means)."""
    return {f: e for f, e in per_family.items() if e.get("auroc") and e["auroc"].get("probe") is not None
            and min(e["correct"], e["hallucinated"]) >= MIN_CLASS_FOR_MEAN}


def summarize(per_family: dict, baselines: Sequence[str], target: float) -> dict:
    """Means over the families with both classes, the worst family, and routing pooled over families."""
    two = {f: e for f, e in per_family.items() if e.get("auroc") and e["auroc"].get("probe") is not None}
    scored = in_mean(per_family)
    out: dict[str, Any] = {
        "n_families": len(per_family),
        # of those, the fallback groups of rows without meta.family (their fact groups): held-out facts, not kinds
        # of question; every pooled figure below counts their answers like any family's
        "n_fallback_groups": sum(1 for f in per_family if is_fallback_family(f)),
        "n_families_in_mean": len(scored),  # with at least min_class_for_mean answers of each class
        "one_class_families": sorted(f for f, e in per_family.items() if e.get("one_class")),
        "few_of_a_class_families": sorted(set(two) - set(scored)),
        "min_class_for_mean": MIN_CLASS_FOR_MEAN,
        "families_without_figure": sorted(f for f, e in per_family.items() if e.get("no_figure")),
        # the merged risk ranks the family's right answers above its hallucinated ones, beyond chance (among the
        # families with enough of each class: one right answer ranked low is not a family scored backwards)
        "inverted_families": sorted(f for f, e in scored.items() if _inverted(e)),
    }
    if scored:
        signals = list(next(iter(scored.values()))["auroc"])
        mean = {k: float(np.mean([e["auroc"][k] for e in scored.values()])) for k in signals}
        worst = {k: min(((f, e["auroc"][k]) for f, e in scored.items()), key=lambda t: t[1]) for k in signals}
        best_base = max(baselines, key=lambda k: mean[k])
        out.update(
            mean_auroc=mean,
            min_auroc={k: {"family": w[0], "auroc": float(w[1])} for k, w in worst.items()},
            best_baseline=best_base,
            targets={
                "probe_mean_ge_0.85": mean["probe"] >= 0.85,
                "merged_mean_ge_0.88": mean["merged"] >= 0.88,
                "no_family_below_0.75": min(worst["probe"][1], worst["merged"][1]) >= 0.75,
                "ahead_of_best_baseline": mean["probe"] > mean[best_base] and mean["merged"] > mean[best_base],
            },
        )
    oods = [e["ood"] for e in per_family.values() if e.get("ood") and e["ood"]["triggered"] is not None]
    if oods:
        n = sum(e["n_scored"] for e in per_family.values() if e.get("ood") and e["ood"]["triggered"] is not None)
        k = sum(o["triggered"] for o in oods)
        out["ood_held_out_families"] = {"n": n, "triggered": k, "rate": k / n if n else None,
                                        "rate_ci95": clopper_pearson_interval(k, n),
                                        "n_fallback_groups": out["n_fallback_groups"]}
    if any(e.get("at_target") for e in per_family.values()):
        out["at_target"] = _pooled_at_target(per_family, target)
        kinds = {f: e for f, e in per_family.items() if not is_fallback_family(f)}
        # the kinds of question (meta.family) alone, beside fallback groups: what the new-family check also reads
        # (hguard._policy_fit.new_family_figure's meta_family), so that fallback groups cannot outvote them
        if out["n_fallback_groups"] and len(kinds) >= 2:
            out["at_target_meta_family"] = {"n_families": len(kinds), **_pooled_at_target(kinds, target)}
    return out


def _pooled_at_target(per_family: dict, target: float) -> dict:
    """The routing at the target of ``per_family``'s families, each fitted without it, pooled."""
    routed = [e["at_target"] for e in per_family.values() if e.get("at_target")]
    n_acc = sum(t["n_accepted"] for t in routed)
    k = sum(t["accepted_hallucinated"] for t in routed)
    n = sum(e["n_scored"] for e in per_family.values() if e.get("at_target"))
    return {
        "target": target,
        "n_scored": n,
        "n_accepted": n_acc,
        "accepted_hallucinated": k,
        "coverage": n_acc / n if n else None,
        **_against_target(k, n_acc, target),
        "review_out_of_distribution": sum(t.get("review_out_of_distribution", 0) for t in routed),
        "families_over_target": sorted(f for f, e in per_family.items()
                                       if e.get("at_target") and e["at_target"]["within_target"] is False),
    }


__all__ = ["CROSS_FAMILY_SCORES", "LEFT_OUT_SCORES", "MAX_FOLDS", "attach_families", "cross_family_calibration", "cross_family_fit",
           "evaluate_families", "family_folds", "family_of", "figures_by_family", "summarize"]
