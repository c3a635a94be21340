"""Calibration report figures across domains: coverage at target error rates, the transfer matrix
and out-of-distribution rates (see :mod:`hguard.calibrate.pipeline`)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from .._stats import auroc, clopper_pearson_interval
from .collect import Collected
from ._pipeline_fit import _lengths, _y, accepted_by_guard, held_out_distance, score_rows


REPORT_TARGETS = (0.05, 0.10, 0.20, 0.30)


def coverage_at_targets(fitted: dict, test: Collected, *, confidence: float) -> list[dict]:
    """For several targets: the accept threshold fitted on training scores, and what it does on the
    held-out split (coverage and hallucination rate among the answers a guard accepts: under the threshold and not
    out of distribution)."""
    keep = [r["label"] != "refusal" for r in test.rows]
    te = test.subset(keep)
    if not te.rows:
        return []
    y = _y(te.rows)
    merged = score_rows(fitted, te)["merged"]
    distance, ood_at = held_out_distance(fitted, te)
    out = []
    for t in REPORT_TARGETS:
        th = fitted["fit_thresholds"](fitted["oof_merged"], fitted["oof_y"], target=t, confidence=confidence)
        acc, far_below = accepted_by_guard(merged, th.accept_below, distance, ood_at)
        k = int(y[acc].sum())
        out.append(
            {
                "target": t,
                "accept_below": th.accept_below,
                "coverage": float(acc.mean()),
                "n_scored": int(len(y)),
                "coverage_ci95": clopper_pearson_interval(int(acc.sum()), int(len(y))),
                "accepted_hallucination_rate": float(y[acc].mean()) if acc.any() else None,
                "n_accepted": int(acc.sum()),
                "accepted_hallucinated": k,
                "accepted_hallucination_ci95": clopper_pearson_interval(k, int(acc.sum())),
                "review_out_of_distribution": far_below,
            }
        )
    return out


def _disagreements(rows: Sequence[dict]) -> int:
    """Reviewed items where the reviewer's label disagrees with the probe's side of 0.5."""
    n = 0
    for r in rows:
        if r.get("source") == "review" and r.get("review_risk") is not None:
            said_bad = r["label"] == "hallucinated"
            if said_bad != (float(r["review_risk"]) >= 0.5):
                n += 1
    return n


def transfer_matrix(fitted: dict, col: Collected, by_domain: dict, test_mask: np.ndarray) -> dict:
    """AUROC of each domain's probe (rows) on each domain's held-out answers (columns), with each column's class
    counts; ``mean_across_enough`` leaves out the columns with fewer than ``MIN_CLASS_FOR_MEAN`` answers of a class
    (an AUROC on one right answer is a rank, not a figure), as the family means do."""
    from .families import MIN_CLASS_FOR_MEAN
    from .screen import probe_logit

    names = sorted(fitted)
    matrix: dict[str, dict[str, float | None]] = {}
    counts: dict[str, dict[str, int]] = {}
    scored: dict[str, Collected] = {}  # each column's held-out answers that assert something, taken once
    for b in sorted(by_domain):
        te = col.subset(by_domain[b] & test_mask)
        scored[b] = te.subset([r["label"] != "refusal" for r in te.rows])
        y = _y(scored[b].rows)
        counts[b] = {"n": len(te.rows), "correct": int(len(y) - y.sum()), "hallucinated": int(y.sum()),
                     "refusals": len(te.rows) - len(scored[b].rows)}
    for a in names:
        matrix[a] = {}
        for b, te in scored.items():
            if not te.rows:
                matrix[a][b] = None
                continue
            p = probe_logit(fitted[a]["probe"], te.features, lengths=_lengths(te.rows))
            matrix[a][b] = auroc(_y(te.rows), p)
    diag = [v for a in names if (v := matrix[a].get(a)) is not None]
    off = [v for a in names for b, v in matrix[a].items() if b != a and v is not None]
    enough = [v for a in names for b, v in matrix[a].items() if b != a and v is not None
              and min(counts[b]["correct"], counts[b]["hallucinated"]) >= MIN_CLASS_FOR_MEAN]
    return {
        "auroc": matrix,
        "counts": counts,
        "mean_within": float(np.mean(diag)) if diag else None,
        "mean_across": float(np.mean(off)) if off else None,
        "mean_across_enough": float(np.mean(enough)) if enough else None,
        "min_class_for_mean": MIN_CLASS_FOR_MEAN,
    }


def ood_rates(fitted: dict, col: Collected, by_domain: dict, test_mask: np.ndarray, domains: dict) -> dict:
    """How often each domain's out-of-distribution check fires: on its held-out families (from the
    leave-one-family-out run), on its own held-out split, and on every other domain's held-out answers."""
    from ..ood import beyond, full_distance

    out = {}
    for a, f in sorted(fitted.items()):
        ood = f.get("ood")
        if not ood:
            out[a] = {"no_figure": "no cross-family distances (fewer than two families)"}
            continue
        entry = {"threshold": ood["threshold"], "quantile": ood["quantile"], "fitted_on": ood["fitted_on"],
                 "held_out_families": (domains[a].get("families") or {}).get("summary", {}).get("ood_held_out_families"),
                 "domains": {}}
        for b in sorted(by_domain):
            te = col.subset(by_domain[b] & test_mask)
            if not te.rows:
                continue
            far = beyond(full_distance(f["probe"], te.features), ood["threshold"])
            entry["domains"][b] = {"n": len(te.rows), "triggered": int(far.sum()), "rate": float(far.mean())}
        out[a] = entry
    return out


#: what a closed-book report's router figure counts: each held-out row's question (the caller's ``counts``)
ROUTER_COUNTS_ROWS = "held-out answers (one per held-out row: a question asked in two rows counts twice)"
#: what a RAG report's counts: the distinct questions of the held-out supporting rows (the router's kind of question)
ROUTER_COUNTS_RAG = ("distinct question texts of the held-out supporting rows (a question asked of several passages "
                     "counts once; off-topic rows are left out)")


def question_form(text: str) -> str:
    """A question's wording with case, spacing and punctuation aside ("What is the notice period?" and "what is the
    notice  period" are one): how a held-out question is told to be also a training question."""
    from .._text import seen_form

    return " ".join("".join(" " if unicodedata.category(c)[0] == "P" else c for c in seen_form(text)).split())


def router_coverage(train: Mapping[str, Sequence[str]], test: Mapping[str, Sequence[str]], embedder: Any = None, *,
                    counts: str = ROUTER_COUNTS_ROWS, rows: Mapping[str, int] | None = None) -> dict:
    """Where the guard's automatic domain choice would send each domain's held-out questions, asked without naming
    a domain: a router built as the shipped one is (``router_sample`` of each domain's questions) from the training
    split alone, choosing as the guard does at the policy's default ``domain_min_similarity``. Per domain: how many
    reach it (with a 95% interval), go to another domain or to none, and the spread of their similarity to it.
    ``counts`` says what ``test``'s questions are (what n counts: the report says it), ``rows`` how many held-out rows
    each domain's came from where that is not n (``n_rows``: 34 distinct questions of 38 rows). A held-out question whose
    wording (:func:`question_form`) is also one of the domain's training questions is not held out for this figure
    (the split is by passage or fact, not by wording, so a templated question sits on both sides): ``in_training``
    counts them (``in_training_first``: the first few) and ``without_training_questions`` is the figure without them.
    ``embedder``: one with ``encode`` and ``windows`` as :class:`hguard.signals.embedding.Embedder` (the default)."""
    from .._policy_route import pick_domain
    from .._stats import clopper_pearson_interval
    from ..errors import ModelNotFoundError
    from ..policy import Policy
    from ..signals.embedding import get_embedder, router_sample, router_similarity

    minimum = float(Policy.model_fields["domain_min_similarity"].default)
    try:
        embedder = embedder if embedder is not None else get_embedder()
        router = {d: embedder.encode(list(router_sample(qs))) for d, qs in train.items() if qs}
    except ModelNotFoundError as exc:
        return {"no_figure": f"the sentence-embedding model the router uses is not available: {exc}"}
    out: dict = {"min_similarity": minimum, "router": "each domain's training-split questions (as many as a probe "
                 "file keeps); the shipped router holds both splits'", "n_counts": counts, "domains": {}}
    for domain, questions in sorted(test.items()):
        if domain not in router or not questions:
            continue
        trained = {question_form(q) for q in train[domain]}
        own, other, none, sims = 0, Counter[str](), 0, []
        seen, own_new, n_new = [], 0, 0
        for q in questions:
            pieces = embedder.encode(embedder.windows(q))
            scores = {d: router_similarity(M, pieces) for d, M in router.items()}
            chosen, _ = pick_domain(scores, router, minimum)
            sims.append(scores[domain])
            if question_form(q) in trained:
                seen.append(q)
            else:
                n_new += 1
                own_new += int(chosen == domain)
            if chosen == domain:
                own += 1
            elif chosen is None:
                none += 1
            else:
                other[chosen] += 1
        n = len(questions)
        out["domains"][domain] = {
            "n": n, "to_domain": own, "rate": own / n, "interval": clopper_pearson_interval(own, n),
            "to_other": dict(other.most_common()), "to_none": none,
            "similarity": {"p10": float(np.quantile(sims, 0.1)), "median": float(np.median(sims))},
            **({"n_rows": int(rows[domain])} if rows and domain in rows else {}),
            "in_training": len(seen), "in_training_first": seen[:5],
            "without_training_questions": {"n": n_new, "to_domain": own_new, "rate": own_new / n_new if n_new else None,
                                           "interval": clopper_pearson_interval(own_new, n_new)},
        }
    return out
