"""RAG calibration, its report: per domain and per condition on held-out passages, as JSON and
Markdown (see :mod:`hguard.calibrate.rag`)."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .pipeline import (
    auroc,
    auroc_ci,
)
from .._stats import SMALL_CLASS, clopper_pearson_interval
from ..errors import error_text
from .judge import followed_misleading
from ._rag_fit import _REPORTED, _finite, _y, conflict_scores, declined, score_rag_rows

#: What a RAG domain's thresholds are fitted on (the report says it, as the closed-book one says its own), with the
#: folds its calibration recorded (``train["folds"]``: by passage, or of rows and why)
RAG_THRESHOLDS_FITTED_ON = ("the merged risks of the training answers out of fold ({folds}the probe refitted and the "
                            "merger fitted without each fold), never the held-out passages")


def _share(mask: np.ndarray, among: np.ndarray) -> dict:
    # as booleans: a mask built from no held-out rows (np.array([])) is a float array, which ``&`` refuses
    mask, among = np.asarray(mask, dtype=bool), np.asarray(among, dtype=bool)
    n, k = int(among.sum()), int((mask & among).sum())
    return {"n": n, "k": k, "rate": (k / n) if n else None, "ci95": clopper_pearson_interval(k, n)}


def held_out_scores(fitted: dict, rows: Sequence[dict], features: np.ndarray) -> dict[str, list]:
    """The merged risks and labels (1 = hallucinated) of the held-out answers that assert something, as
    :func:`rag_report` scores them: what withdraws an accept threshold they reject (a probe file's ``held_out_scores``)."""
    ok = _finite(rows, list(dict.fromkeys([f for f in fitted["merger"]["features"] if f != "neuron_logit"] + list(_REPORTED))))
    rs = [r for r, k in zip(rows, ok) if k]
    if not rs:
        return {"risk": [], "hallucinated": []}
    risk = score_rag_rows(fitted, rs, features[ok])["merged"]
    keep = ~declined(rs)
    return {"risk": [float(v) for v, k in zip(risk, keep) if k], "hallucinated": [int(v) for v, k in zip(_y(rs), keep) if k]}


def unscorable_rows(rows: Sequence[dict], names: Sequence[str]) -> list[tuple[str, str]]:
    """(id, the first of ``names`` it lacks) of each row a signal of which could not be computed (missing or not
    finite: a passage in letters the grounding reader cannot read gives no grounding): calibration leaves those out of
    every fit and figure. ``neuron_logit`` (the probe's own) is never missing."""
    out = []
    for r in rows:
        bad = [k for k in names if k != "neuron_logit" and (r.get(k) is None or not math.isfinite(float(r[k])))]
        if bad:
            out.append((str(r["id"]), bad[0]))
    return out


def unscorable_said(u: Mapping[str, Any]) -> str:
    """The line calibrate-rag and report.md give of a domain's unscorable rows (its report entry's ``unscorable``)."""
    if u["signal"] == "yes_no":  # the question's, not the passage's: whether it asks for yes or no is not read
        why, fix = ("yes_no is missing where the question is not read as asking for yes or no nor for content (it "
                    "reads as a language whose question words hguard does not list, or none of them opens it) and the "
                    "answer opens with no yes or no"), "word those questions as your users ask them (\"Is ...?\", \"What ...?\")"
    else:
        why, fix = ("a grounding signal is missing where the passage or the answer has no word the grounding reader can "
                    "read, e.g. letters it does not know or only punctuation"), "give those rows their passage as plain text"
    return (f"{u['n']} row(s) left out of every fit and figure, their signals could not be computed (first "
            f"{u['first_id']!r}: no {u['signal']}; {why}): {fix}, or drop them, and calibrate again")


def conflict_at_chance(kc: Mapping[str, Any]) -> str | None:
    """Where the knowledge-conflict detector (a report's ``knowledge_conflict``) is not shown to tell answers that
    followed a misleading passage from right supporting ones better than chance (the 95% interval of its out-of-fold
    AUROC reaches 0.5), what calibrate-rag warns and report.md says; None otherwise (or without a detector). A legal
    team's detector at 0.539 was fitted and counted as the check with no word."""
    tr = kc.get("train") or {}
    a, ci = tr.get("oof_auroc"), tr.get("oof_auroc_ci95")
    if a is None or not ci or ci[0] > 0.5:
        return None
    return (f"the knowledge-conflict detector is not shown to tell answers that followed a misleading passage from right "
            f"answers better than chance: the 95% interval of its out-of-fold AUROC {a:.3f} is {ci[0]:.2f}-{ci[1]:.2f}, "
            f"which reaches 0.5 (n={tr['followed_misleading'] + tr['right_supporting']}: {tr['followed_misleading']} "
            f"followed, {tr['right_supporting']} right); its flags are close to noise (with knowledge_conflict = "
            "'review' they hold answers for review nearly at random and miss those that followed a misleading "
            "passage): do not count it as the check; add rows with meta.condition \"misleading\" and calibrate again")


def held_out_unchecked(m: Mapping[str, Any], linked: str | None, *, test_fraction: float, seed: int) -> str:
    """Why a RAG domain's thresholds were not checked on held-out passages (it has no scored held-out answer): what the
    calibration warns and report.md says. The accept threshold stands on the training answers' out-of-fold risks, as a
    closed-book calibration's does with an empty held-out split (:func:`hguard._policy_fit.withdrawn_on_held_out`
    withdraws only on held-out answers that reject it). ``m["all"]`` counts the held-out answers whose signals could be
    computed, ``m["n_unscorable"]`` the others: held-out answers too, left out of every figure."""
    a = m["all"]
    unscorable = int(m.get("n_unscorable") or 0)
    if not a["n"] + unscorable:
        why = "no held-out answers: " + (linked or f"no passage of the domain fell on the held-out side of the split "
                                                 f"(test fraction {test_fraction:g}, seed {seed}); add passages, or "
                                                 "raise --test-fraction")
    elif not unscorable:
        why = f"none of its {a['n']} held-out answers was scored: every one declined"
    else:
        why = (f"none of its {a['n'] + unscorable} held-out answers was scored: "
               + (f"{a['refusals']} declined and " if a["refusals"] else "")
               + f"{unscorable} had a signal that could not be computed (the unscorable rows)")
    th = m.get("thresholds") or {}
    kept = (f"accept_below {th['accept_below']:.3f} rests on the training answers alone and nothing on held-out "
            "passages could withdraw it" if th.get("accept_below") else "no accept threshold is certified")
    return (f"{why}; its thresholds were not checked on held-out passages ({kept}): do not rely on them until a "
            "calibration with answers on both sides of the split checks them")


def conflict_holds(conflict: Mapping[str, Any], rows: Sequence[dict], how: str = "review") -> list[str | None]:
    """Why a guard whose domain has ``knowledge_conflict = how`` holds each of ``rows`` for review under the
    knowledge-conflict check (None: routed as scored), by the guard's own rule
    (:func:`hguard._guard_scoring.knowledge_conflict_check`): flagged by the detector of ``conflict`` (a calibration's
    ``knowledge_conflict`` entry), a yes/no answer it cannot clear, or, without a detector, every answer. A signal the
    detector reads that is missing holds the answer, as the guard's failed scoring does."""
    from .._guard_scoring import knowledge_conflict_check
    from ..errors import HGuardError

    detector = conflict if conflict.get("detector") else None
    out: list[str | None] = []
    for r in rows:
        try:  # a copy: the check records its score in the signals it is given
            hold, _ = knowledge_conflict_check(dict(r), detector, how, str(r.get("domain")))
        except HGuardError as exc:
            hold = f"{_CHECK_FAILED}: {exc}"
        out.append(hold)
    return out


def answer_holds_of(rows: Sequence[dict]) -> list[list[str] | None]:
    """Why the guard holds each of ``rows`` (replies that do not decline) for review by what its texts say, by the
    guard's own rules: :func:`hguard._guard_scoring.answer_holds` (a passage addressing the model, chat turns in the
    question, an answer repeating the question, stating a figure neither the passage nor the question states or one
    the passage states only about something else, saying the opposite of its passage, holding direction controls)
    and, a RAG probe's, :func:`hguard.signals.relevance.off_question` (a passage sharing none of the question's
    content words). ``[]``: none; None: the row carries no passage (``context``) or no question, so they could not be
    read (rows :func:`hguard.calibrate._rag_signals.add_rag_signals` builds carry both)."""
    from .._guard_scoring import answer_holds
    from ..signals.relevance import off_question

    out: list[list[str] | None] = []
    for r in rows:
        if "context" not in r or not isinstance(r.get("question"), str):
            out.append(None)
            continue
        q, c = r["question"], r["context"]
        holds = answer_holds(q, str(r.get("answer") or ""), c, None)  # a check that raises is a hold of its own
        try:
            off = off_question(q, c, r.get("context_relevance"))
        except Exception as exc:  # fail closed, as the guard's own checks: the row is held, not the report lost
            off = f"the passage-relevance check could not run ({error_text(exc, 300)}): held for review"
        if off is not None:
            holds.append(off)
        out.append(holds)
    return out


def _held_route(hold: str, risk: float | None, th: Any) -> str:
    """Where the guard routes an answer the knowledge-conflict check holds (:func:`hguard.policy.decide`): with a
    usable risk at or above ``abstain_above``, "abstain" (a hold alone is set against the thresholds), else "review";
    a check that could not run is a scoring problem, which reviews whatever the risk."""
    if hold.startswith(_CHECK_FAILED) or risk is None or not math.isfinite(risk) or risk < th.abstain_above:
        return "review"
    return "abstain"


_CHECK_FAILED = "the knowledge-conflict check could not run"


def rag_report(fitted: dict, rows: Sequence[dict], features: np.ndarray, conflict: Mapping[str, Any], *,
               answers: bool = False) -> dict:
    """Held-out figures of one RAG domain, overall and per condition; with ``answers``, also each answer with
    its label, the judge's reason, its merged risk (None where a signal could not be computed, or for a reply
    that declines) and where the thresholds route it, so the judge can be checked on one's own rows."""
    ok = _finite(rows, list(dict.fromkeys([f for f in fitted["merger"]["features"] if f != "neuron_logit"] + list(_REPORTED))))
    rs = [r for r, k in zip(rows, ok) if k]
    F = features[ok]
    sc = score_rag_rows(fitted, rs, F)
    y = _y(rs)
    declining_all = declined(rows)  # read once, for every row (the per-answer routes name the unscorable ones too)
    scored = ~declining_all[ok]  # the guard's predicate: a judge's "refusal" it does not read as declining is scored
    th = fitted["thresholds"]
    folds = (fitted.get("train") or {}).get("folds")  # None: a probe file that does not record them
    risk = sc["merged"]
    accepted_by_risk = risk < th.accept_below
    cflag = conflict_scores(conflict, rs) >= conflict.get("threshold", math.inf) if conflict.get("detector") else np.zeros(len(rs), bool)
    # a reply that declines abstains by rule, whatever its risk, and no conflict is read into it (as the guard serves)
    holds = [h if s else None for h, s in zip(conflict_holds(conflict, rs), scored)]
    held = np.array([h is not None for h in holds], dtype=bool)
    # what the answer's texts say, by the guard's own rules (None: a row with no passage, which they cannot read)
    read = iter(answer_holds_of([r for r, s in zip(rs, scored) if s]))
    text_holds = [next(read) if s else [] for s in scored]  # a reply that declines abstains by rule, held or not
    text_held = np.array([bool(h) for h in text_holds], dtype=bool)
    unread = np.array([h is None for h in text_holds], dtype=bool)
    # knowledge_conflict = "review", the default, and the answer's own holds, by the guard's own rules
    accepted = accepted_by_risk & scored & ~held & ~text_held
    halluc = y == 1
    follows = np.array([followed_misleading(r) for r in rs], dtype=bool)

    def block(mask: np.ndarray) -> dict:
        m = mask & scored
        yy = y[m]
        scores = {k: v[m] for k, v in sc.items()}
        return {
            "n": int(mask.sum()),
            "refusals": int((mask & ~scored).sum()),  # declined: the guard abstains by rule
            # the judge's "refusal" that the guard scores (a yes/no reply that takes no side): counted hallucinated
            "refusals_scored": int((mask & scored & np.array([r["label"] == "refusal" for r in rs], dtype=bool)).sum()),
            "correct": int(sum(r["label"] == "correct" for r, k in zip(rs, m) if k)),
            "hallucinated": int((yy == 1).sum()),
            "auroc": {k: auroc(yy, v) for k, v in scores.items()},
            "auroc_ci95": auroc_ci(yy, scores),
            "accepted": _share(accepted, mask),
            "accepted_by_risk_alone": _share(accepted_by_risk & scored, mask),
            "hallucinated_among_accepted": _share(halluc, accepted & mask),
            "knowledge_conflict_flagged": _share(cflag & scored, mask),
            "knowledge_conflict_held": _share(held, mask),
            # held by what the answer's texts say (it reverses its passage, states a figure neither states, ...)
            "answer_checks_held": _share(text_held, mask),
        }

    def dataset_block(d: str) -> dict:
        # a dataset's rows may hold several conditions (off-topic and supporting rows in one AUROC): counted, to be said
        mask = np.array([r["dataset"] == d for r in rs], dtype=bool)
        return {**block(mask), "conditions": dict(sorted(Counter(r["condition"] for r, k in zip(rs, mask) if k).items()))}

    conds = sorted({r["condition"] for r in rs})
    out: dict[str, Any] = {
        "n_unscorable": int((~ok).sum()),
        "thresholds": {**th.to_dict(), "fitted_on": RAG_THRESHOLDS_FITTED_ON.format(folds=f"{folds}; " if folds else "")},
        "knowledge_conflict_checked": bool(conflict.get("detector")),
        # the first answer the knowledge-conflict check holds, and why (with no detector: every one, for that reason)
        "knowledge_conflict_hold": next((h for h in holds if h is not None), None),
        # scored answers whose row carries no passage or question: the answer checks could not read them, and they
        # count as accepted under accept_below (rows calibrate-rag and evaluate --rag build carry both)
        "answer_checks_unread": int(unread.sum()),
        "all": block(np.ones(len(rs), bool)),
        "conditions": {c: block(np.array([r["condition"] == c for r in rs], dtype=bool)) for c in conds},
        "datasets": {d: dataset_block(d) for d in sorted({r["dataset"] for r in rs})},
    }
    if answers:
        risk_of = {r["id"]: float(v) for r, v, s in zip(rs, risk, scored) if s}  # none for a reply that declines
        flagged = {r["id"] for r, f, s in zip(rs, cflag, scored) if f and s}
        # the knowledge-conflict check's hold (flagged, a yes/no answer not cleared, or no detector) first: one that
        # could not run reviews whatever the risk; then what the answer's texts say
        on_hold = {r["id"]: [*([h] if h else []), *(t or [])] for r, h, t in zip(rs, holds, text_holds) if h or t}
        declining = {r["id"] for r, d in zip(rows, declining_all) if d}
        out["answers"] = [
            {"id": r["id"], "question": r.get("question"), "answer": r["answer"], "condition": r.get("condition"),
             "label": r["label"], "judge_reason": r.get("judge_reason"),
             "merged_risk": risk_of.get(r["id"]),
             "route_at_thresholds": ("abstain" if r["id"] in declining
                                     else _held_route(on_hold[r["id"]][0], risk_of.get(r["id"]), th) if r["id"] in on_hold
                                     else th.route_of(risk_of.get(r["id"], math.nan))),
             "holds": on_hold.get(r["id"], []),  # why the guard holds it for review (none for a reply that declines)
             "knowledge_conflict": r["id"] in flagged if conflict.get("detector") else None}
            for r in rows
        ]
    out["targets"] = {
        "merged_auroc": {"value": out["all"]["auroc"].get("merged"), "ci95": out["all"]["auroc_ci95"].get("merged"),
                         "target": ">= 0.90 and above grounding alone and probe alone",
                         "grounding": out["all"]["auroc"].get("grounding"), "probe": out["all"]["auroc"].get("probe")},
        "supporting_accepted": {**_share(accepted, np.array([r["condition"] == "supporting" for r in rs], dtype=bool)), "target": ">= 0.40"},
        "offtopic_accepted": {**_share(accepted, np.array([r["condition"] == "offtopic" for r in rs], dtype=bool)), "target": "<= 0.05"},
        "offtopic_wrong_accepted": {**_share(accepted, np.array([r["condition"] == "offtopic" and r["label"] == "hallucinated" for r in rs], dtype=bool)),
                                    "target": "(off-topic answers that did not abstain)"},
        "misleading_followed_accepted": {**_share(accepted, follows), "target": "<= 0.10"},
        "misleading_followed_flagged": _share(cflag, follows),
        "supporting_right_flagged": _share(cflag, np.array([r["condition"] == "supporting" and r["label"] == "correct" for r in rs], dtype=bool)),
    }
    return out


# ----------------------------------------------------------------------------------- pipeline


def write_rag_report(report: dict, folder: str | os.PathLike) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False, default=str) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(rag_markdown(report), encoding="utf-8")


#: the holds report.md's accepted figures apply by the guard's own rules (:func:`answer_holds_of`)
ANSWER_CHECKS = ("what the answer's texts say (an answer sentence that says the opposite of the passage, a figure "
                 "neither the passage nor the question states or one the passage states only about something else, an "
                 "answer that repeats the question, direction-control "
                 "characters, a passage addressing the model or sharing none of the question's words, chat turns "
                 "typed into the question)")
#: the guard's holds that report.md's accepted figures do not reflect: they depend on the request, on the model or on the
#: policy, which the rows :func:`rag_report` reads do not carry, or the row has no figure. The holds that read the
#: answer against its passage and question are applied (:func:`answer_holds_of`: the guard's own rules), to every row
#: that carries them (``answer_checks_unread`` counts those that do not)
ACCEPTED_LEAVES_OUT = (
    "It does not reflect the guard's holds that depend on how a question is asked (a question the domain's router "
    "would not choose it for is held as out of its distribution: see the router section; a RAG probe file carries no "
    "probe-feature distance check), on the model's own control tokens typed into the question or the passage, or on "
    "the policy (an answer cut at max_new_tokens is held where the domain sets cut_answer = 'review' or the question "
    "asks for an agent's step; the figures route it as scored, as cut_answer = 'mark' does); rows whose signals could "
    "not be computed (no grounding: the guard holds them) are left out of every figure and counted as unscorable.")


def _f(x, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _rate(s: dict) -> str:
    return "-" if not s or s.get("n", 0) == 0 else f"{s['k']}/{s['n']} = {s['rate']:.2f}{_ci(s['ci95'])}"


def rag_markdown(report: dict) -> str:
    t = report["policy_target"]
    lines = [
        "# RAG calibration report", "",
        f"Model {report['model']}; answers given with context through the guard's context prompt "
        f"(prompt mode `rag`, context prompt fingerprint `{report['fingerprints'].get('context_prompt_fingerprint')}`). "
        f"Split by passage: {report['split']['n_train']} training answers, {report['split']['n_test']} held out. "
        f"Everything fitted (probe, merger of probe + confidence + grounding + closed-book + relevance signals, thresholds, "
        f"knowledge-conflict detector) saw the training passages only; every figure below is on held-out passages. "
        f"Policy target: at most {t['target']:.0%} hallucinations among accepted answers at {t['confidence']:.0%} confidence. "
        "No hand-set grounding weight is in force: a policy's `grounding_weight` is a manual override the guard reports in its reasons.",
        "", "Intervals: AUROC, 95% percentile bootstrap (1000 resamples within each class), widened to the exact "
        f"binomial interval where a class has fewer than {SMALL_CLASS} answers, shown after every AUROC "
        "(\"0.58 [0.45, 0.70]\"); shares, 95% Clopper-Pearson.", "",
    ]
    if report["split"].get("family"):  # rows set meta.family, which the passage split does not read
        lines += [f"meta.family is not used: {report['split']['family']}.", ""]
    reviewed = [f"- {d}: {m['reviewed_split']}." for d, m in report["domains"].items() if m.get("reviewed_split")]
    if reviewed:
        lines += ["Reviewed rows (exported from the review queue) are always in training:", "", *reviewed, ""]
    kc = report.get("knowledge_conflict", {})
    tr = kc.get("train")
    said = (
        f"Fitted on {tr['followed_misleading']} training answers that followed a misleading passage against the truth "
        f"and {tr['right_supporting']} right answers from a supporting passage of the same meta.dataset (all RAG domains "
        f"pooled); out-of-fold AUROC {_f(tr['oof_auroc'])}, "
        f"balanced accuracy {_f(tr['oof_balanced_accuracy'])} at the threshold {_f(kc.get('threshold'))} it flags from."
        if tr else f"No detector: {kc.get('why')}"
    )
    at_chance = conflict_at_chance(kc)
    if at_chance:
        said += f" **Not shown to work**: {at_chance[0].upper()}{at_chance[1:]}."
    lines += ["## Knowledge-conflict detector", "", said, ""]
    from .report import router_markdown

    lines += [*router_markdown(report)[1:], ""] if report.get("router") else []
    for d, why in report.get("skipped", {}).items():
        lines += [f"## {d}: skipped", "", f"{why}", ""]
    for d, m in report["domains"].items():
        tg = m["targets"]
        ma = tg["merged_auroc"]
        lines += [
            f"## {d}", "",
            f"Training answers {m['train']['n']} ({m['train']['correct']} right, {m['train']['hallucinated']} hallucinated, "
            f"{m['train']['refusals']} refusals"
            + (f", {m['train']['unread']} answered but left out with a signal not read, among the unscorable rows below"
               if m["train"].get("unread") else "")
            + f"); held out {m['all']['n']} ({m['all']['correct']} right, "
            f"{m['all']['hallucinated']} hallucinated, {m['all']['refusals']} refusals"
            + (f", {m['all']['refusals_scored']} replies the judge calls refusals that the guard scores, as it does not "
               "read them as declining (counted among the hallucinated: a hedge may state a side)"
               if m["all"].get("refusals_scored") else "")
            + "). "
            f"accept_below {_f(m['thresholds']['accept_below'])}, abstain_above {_f(m['thresholds']['abstain_above'])}"
            + (" (no accept threshold is certified at the policy target: the domain reviews every answer until it is "
               "calibrated with more or better-separated answers)." if not m["thresholds"]["accept_below"] else
               f" **withdrawn**: {m['thresholds']['withdrawn']}; the figures below show what it would have accepted."
               if m["thresholds"].get("withdrawn") else ".")
            + (" An abstain_above of 1 means no abstain threshold is certified: the domain abstains only on answers "
               "that decline." if m["thresholds"]["abstain_above"] >= 1.0 else "")
            + (f" Thresholds fitted on {m['thresholds']['fitted_on']}." if m["thresholds"].get("fitted_on") else ""), "",
            *([f"**Not checked on held-out passages**: {m['held_out_unchecked']}.", ""] if m.get("held_out_unchecked") else []),
            *([f"**Unscorable rows**: {unscorable_said(m['unscorable'])}.", ""] if m.get("unscorable") else []),
            "| target | measured (held out) | met |", "|---|---|---|",
            f"| merged AUROC >= 0.90, above grounding and probe | merged {_f(ma['value'])}{_ci(ma['ci95'])}; "
            f"grounding {_f(ma['grounding'])}{_ci(m['all']['auroc_ci95'].get('grounding'))}; "
            f"probe {_f(ma['probe'])}{_ci(m['all']['auroc_ci95'].get('probe'))} | "
            f"{_auroc_met(ma)} |",
            f"| supporting answers accepted >= 40% | {_rate(tg['supporting_accepted'])} | {_met(tg['supporting_accepted'], 0.40, True, m, 'supporting')} |",
            f"| off-topic answers accepted <= 5% | {_rate(tg['offtopic_accepted'])} | {_met(tg['offtopic_accepted'], 0.05, False, m, 'offtopic')} |",
            f"| misleading-passage answers against the truth accepted <= 10% | {_rate(tg['misleading_followed_accepted'])} | {_met(tg['misleading_followed_accepted'], 0.10, False, m, 'misleading')} |",
            "",
            "Accepted, here and below, is as a guard with knowledge_conflict = \"review\" (the default) routes an "
            "answer: under accept_below, not held by the knowledge-conflict check (flagged by the detector, a yes/no "
            "answer the check cannot clear, or every answer where no detector was fitted)"
            + (f" and not held by {ANSWER_CHECKS}, by the guard's own rules"
               + (f" (held by them: {_rate(m['all']['answer_checks_held'])} of all answers)"
                  if (m["all"].get("answer_checks_held") or {}).get("k") else "")
               + "; report.json's accepted_by_risk_alone is the risk's alone. "
               + (f"**{m['answer_checks_unread']} scored answer(s) carried no passage or question**, so what their "
                  "texts say could not be read: they count as accepted where their risk is under accept_below. "
                  if m.get("answer_checks_unread") else "")
               if "answer_checks_unread" in m else
               f", by the guard's own rule; report.json's accepted_by_risk_alone is the risk's alone. This report was "
               f"computed before the answer checks were applied: its accepted figures also count answers the guard "
               f"holds by {ANSWER_CHECKS}. ")
            + f"{ACCEPTED_LEAVES_OUT} "
            f"Hallucinations among accepted answers (all conditions): {_rate(m['all']['hallucinated_among_accepted'])}. "
            + (f"Knowledge conflict flagged: {_rate(tg['misleading_followed_flagged'])} of answers that followed a misleading passage, "
             f"{_rate(tg['supporting_right_flagged'])} of right supporting answers"
             + (f"; held by the check (flagged, or a yes/no answer it cannot clear): "
                f"{_rate(m['all']['knowledge_conflict_held'])} of all answers." if m["all"].get("knowledge_conflict_held")
                else ".") if m.get("knowledge_conflict_checked", True)
             else "Knowledge conflict: not checked (no detector was fitted, see above), so with knowledge_conflict = "
                  "\"review\" every answer is held for review and none is accepted"
                  + (f" ({m['knowledge_conflict_hold']})." if m.get("knowledge_conflict_hold") else ".")), "",
        ]
        sigs = list(m["all"]["auroc"])
        lines += ["| condition | n | right/halluc./refusal | " + " | ".join(sigs) + " | accepted | halluc. among accepted |",
                  "|---|---|---|" + "---|" * len(sigs) + "---|---|"]
        for name, b in [("all", m["all"]), *m["conditions"].items(),
                        *[(f"dataset {k}{_condition_mix(v)}", v) for k, v in m["datasets"].items()]]:
            one = " (one class: no AUROC)" if b["n"] and min(b["correct"], b["hallucinated"]) == 0 else ""
            lines.append(
                f"| {name} | {b['n']} | {b['correct']}/{b['hallucinated']}/{b['refusals']}{one} | "
                + " | ".join(_f(b["auroc"][s], 2) + _ci(b["auroc_ci95"].get(s)) for s in sigs)
                + f" | {_rate(b['accepted'])} | {_rate(b['hallucinated_among_accepted'])} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def _condition_mix(b: dict) -> str:
    """What conditions a per-dataset row of report.md holds: " (supporting 34)", or, where its figures mix several,
    " (offtopic 12, supporting 4: its AUROCs mix them)" (the per-condition rows give each alone); "" for a report
    that does not record them."""
    c = b.get("conditions")
    if not c:
        return ""
    counts = ", ".join(f"{k} {v}" for k, v in c.items())
    return f" ({counts}: its AUROCs mix them)" if len(c) > 1 else f" ({counts})"


def _auroc_met(ma: dict) -> str:
    """Whether the merged AUROC meets its target (0.90, above grounding and probe alone), and, when it does by the
    point estimate only, where its interval reaches (0.927 [0.45, 1.00] read "yes")."""
    v = ma.get("value")
    if v is None or v < 0.9 or v <= (ma.get("grounding") or 0) or v <= (ma.get("probe") or 0):
        return "no"
    lo = (ma.get("ci95") or [None])[0]
    return f"yes by the point estimate; its 95% interval reaches {lo:.2f}" if lo is not None and lo < 0.9 else "yes"


def _met(s: dict, bound: float, at_least: bool, m: dict | None = None, condition: str | None = None) -> str:
    """Whether a held-out share meets its bound: "not measurable" with where the condition's rows are, "only
    trivially" when an upper bound holds because the domain accepts nothing, and the interval's far end
    when the point estimate meets the bound but the interval does not."""
    if not s or s.get("rate") is None:
        held = (((m or {}).get("conditions") or {}).get(condition or "") or {}).get("n", 0)
        if held and condition == "misleading":  # the rows are there; none of their answers followed the passage
            return (f"not measurable (none of the {held} held-out misleading-passage answers was judged to follow the "
                    "passage against the truth)")
        in_train = ((m or {}).get("train", {}).get("by_condition") or {}).get(condition or "", 0)
        where = f": all {in_train} are on the training side of the passage split" if in_train else ""
        return f"not measurable (no held-out rows of this condition{where})"
    if s["k"] == 0 and (m or {}).get("knowledge_conflict_checked") is False:  # every answer held by the guard
        held = ("every answer is held for review: no knowledge-conflict detector was fitted and the check is asked for "
                "(knowledge_conflict = \"review\")")
        return f"no: {held}" if at_least else f"only trivially: {held}"
    ok = s["rate"] >= bound if at_least else s["rate"] <= bound
    if ok and not at_least and s["k"] == 0 and not ((m or {}).get("thresholds") or {}).get("accept_below"):
        return "only trivially: the domain accepts nothing (no accept threshold certified)"
    far = (s.get("ci95") or [None, None])[0 if at_least else 1]
    if ok and far is not None and (far < bound if at_least else far > bound):
        return f"yes by the point estimate; its 95% interval reaches {far:.2f}"
    return "yes" if ok else "no"


# ---------------------------------------------------------------------------------- evaluation
