"""The calibration report: JSON for scripts, Markdown and PNG plots for people."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any, Mapping

from .._policy_fit import families_over_said
from .._stats import clopper_pearson_interval
from ..errors import install_extra

SIGNALS = ("probe", "merged", "mean_logprob", "min_logprob", "entropy", "length", "random_neurons")


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _counted(rate: float | None, k: int | None, n: int | None, ci) -> str:
    """A rate with its count and 95% interval ("0.63 (47 of 75; 0.51-0.73)"), the rate alone where the report holds
    no count (a report of an earlier version)."""
    if k is None or n is None:
        return _f(rate, 2)
    return f"{_f(rate, 2)} ({k} of {n}" + (f"; {ci[0]:.2f}-{ci[1]:.2f}" if ci else "") + ")"


def _among_accepted(t: dict) -> str:
    """The hallucination rate among accepted answers with its count and 95% interval, where the report holds them."""
    return _counted(t.get("accepted_hallucination_rate"), t.get("accepted_hallucinated"), t.get("n_accepted"),
                    t.get("accepted_hallucination_ci95"))


def _coverage(t: dict, n_scored: int | None) -> str:
    """The share of scored held-out answers accepted, with its count and 95% interval."""
    return _counted(t.get("coverage"), t.get("n_accepted"), n_scored if "coverage_ci95" in t else None,
                    t.get("coverage_ci95"))


def _abstained(t: dict, n_scored: int | None) -> str:
    """The share of scored held-out answers abstained on, with its count and 95% interval."""
    return _counted(t.get("abstain_share"), t.get("n_abstained"), n_scored, t.get("abstain_share_ci95"))


def abstain_promise_said(t: dict) -> str | None:
    """What the held-out answers say of the abstain threshold's promise (at least abstain_precision of the answers it
    abstains on hallucinated, certified on the training split's scores), in one line; None where the report holds no
    such check (nothing abstained on, no promise, a report of an earlier version)."""
    if t.get("abstained_within_promise") is None:
        return None
    promise, k, n = t["abstain_precision"], t["abstained_hallucinated"], t["n_abstained"]
    lo, hi = t["abstained_hallucination_ci95"]
    verdict = ("within it" if t["abstained_within_promise"] else
               "**below it**: the interval lies wholly below it" if t["abstained_below_promise_shown"] else
               "below it by the point estimate; the interval reaches it, so these answers do not show it broken")
    return (f"the abstain threshold {t['abstain_above']:.3f} promises at least {promise:g} hallucinated among the "
            f"answers it abstains on (certified on the training split's scores with confidence {t['confidence']}); on "
            f"the held-out split {k} of {n} abstained answers were hallucinated ({k / n:.2f}, 95% CI {lo:.2f}-{hi:.2f}): "
            f"{verdict}")


def _per_mille(x: float) -> str:
    """A share per mille as the report writes it: two decimals, and two significant digits below 0.01 (a share that
    is not 0 never reads as 0.00)."""
    return f"{x:.2f}" if x == 0 or x >= 0.01 else f"{x:.2g}"


def neurons_cells(m: Mapping[str, Any]) -> str:
    """The per-domain table's two cells on the probe's neurons: how many it reads (per mille of the model's FFN
    neurons), and how many of them raise the risk (H-neurons: positive weight). A probe of 12 neurons, all lowering
    the risk, read "H-neurons 0 (0.00)" beside its AUROC of 0.833 (a finance team's trial). A report from before
    the count of the neurons read gives its H-neurons alone."""
    n = m.get("n_selected_neurons")
    share = m.get("neuron_share_per_mille")
    used = "n/a" if n is None else str(n) + ("" if share is None else f" ({_per_mille(share)})")
    h = m["n_h_neurons"]
    return f"{used} | {h}" + (f" ({_per_mille(m['h_neuron_share_per_mille'])})" if n is None else "")


def probe_not_above_random(m: Mapping[str, Any]) -> str | None:
    """Why a domain's probe is not shown to do better on its held-out facts than as many random neurons (the
    control), naming both figures: the paired bootstrap interval of their AUROC difference reaches 0, or, where the
    report holds none (a class under 10 answers, or a report from before it), the probe's AUROC is not above the
    control's 95% interval. None where the probe clears the control, or a figure is missing."""
    a, ci = m.get("auroc") or {}, m.get("auroc_ci95") or {}
    p, r = a.get("probe"), a.get("random_neurons")
    if p is None or r is None:
        return None
    pc, rc = ci.get("probe"), ci.get("random_neurons")
    diff = m.get("probe_minus_random_ci95")
    if diff is not None:
        if diff[0] > 0:
            return None
        how = (f"the paired bootstrap 95% interval of their difference, {diff[0]:+.3f} to {diff[1]:+.3f}, "
               + ("includes 0" if diff[1] >= 0 else "lies below 0"))
    elif p <= r:
        how = "the probe scores no higher"
    elif rc is not None and p <= rc[1]:
        how = "the probe's AUROC lies inside the control's 95% interval"
    else:
        return None
    shown = (f"probe AUROC {p:.3f}" + (f" [{pc[0]:.2f}-{pc[1]:.2f}]" if pc else "") + f" vs {r:.3f}"
             + (f" [{rc[0]:.2f}-{rc[1]:.2f}]" if rc else "") + " for as many random neurons")
    return (f"the probe is not distinguishable from as many random neurons on held-out facts: {shown}; {how}: "
            "its neurons are not shown to carry a hallucination signal of their own")


def counts_label(c: Mapping[str, Any]) -> str:
    """A held-out set's size and classes as the report writes them beside its figures (tables and plots)."""
    return f"n {c['n']}: {c['correct']} right / {c['hallucinated']} halluc."


def class_counts(m: Mapping[str, Any]) -> tuple[int, int] | None:
    """(right, hallucinated) among a domain's scored held-out answers; a report from before the counts gives them by
    its hallucination rate times its scored n, which is exact (None where it is not)."""
    if "correct" in m:
        return int(m["correct"]), int(m["hallucinated"])
    if m.get("n_scored") is None or m.get("hallucination_rate") is None:
        return None
    k = m["hallucination_rate"] * m["n_scored"]
    return (int(m["n_scored"]) - round(k), round(k)) if abs(k - round(k)) < 1e-6 else None


def _majority(cc: tuple[int, int] | None) -> str:
    """The accuracy of always saying the larger class of ``cc`` (right, hallucinated), as the accuracy table's baseline."""
    return "n/a" if not cc or not sum(cc) else f"{max(cc) / sum(cc):.3f} ({'hallucinated' if cc[1] >= cc[0] else 'right'})"


def _accuracy_cell(acc: float | None, cc: tuple[int, int] | None) -> str:
    """An accuracy on the scored held-out answers with its exact (Clopper-Pearson) 95% interval, where their count is
    known: a bare 0.858 read as better than the 0.818 of always saying "hallucinated" (a bank evaluator's trial)."""
    if acc is None or not cc or not sum(cc):
        return _f(acc)
    n = sum(cc)
    ci = clopper_pearson_interval(round(acc * n), n)
    return _f(acc) if ci is None else f"{_f(acc)} [{ci[0]:.2f}, {ci[1]:.2f}]"


def few_of_a_class(c: Mapping[str, Any] | None, least: int) -> bool:
    """Whether a set has fewer than ``least`` answers of a class: its AUROC is shown but rests on too few answers."""
    return c is not None and min(c["correct"], c["hallucinated"]) < least


def transfer_markdown(tr: Mapping[str, Any]) -> list[str]:
    """The cross-domain transfer table: each column (tested on) with its held-out class counts, a column with fewer
    than ``min_class_for_mean`` answers of a class marked and left out of the second mean."""
    names = list(tr["auroc"])
    cols = sorted({c for r in tr["auroc"].values() for c in r})
    counts = tr.get("counts") or {}
    least = tr.get("min_class_for_mean", 5)

    def head(b: str) -> str:
        c = counts.get(b)
        return f"{b} ({counts_label(c)})" if c else b

    def few(b: str) -> bool:
        return few_of_a_class(counts.get(b), least)

    lines = ["", "## Cross-domain transfer (probe AUROC; rows: trained on, columns: tested on)", ""]
    if not counts:
        lines += ["(This report predates the class counts of each column: see the held-out split of each domain.)", ""]
    lines += ["| trained on \\ tested on | " + " | ".join(head(b) for b in cols) + " |", "|---|" + "---|" * len(cols)]
    for a in names:
        lines.append(f"| {a} | " + " | ".join(_f(tr["auroc"][a].get(b)) + (" (few)" if few(b) else "") for b in cols) + " |")
    line = f"Mean within domain: {_f(tr['mean_within'])}; mean across domains: {_f(tr['mean_across'])}"
    if "mean_across_enough" in tr:
        line += (f"; across domains without the columns marked (few), with fewer than {least} answers of a class: "
                 f"{_f(tr['mean_across_enough'])}")
    return lines + ["", line + "."]


def _threshold_scores(t: dict | None) -> str:
    """The AUROC of the scores the thresholds were fitted on, with n and the class counts."""
    if not t:
        return ""
    ci = t.get("auroc_ci95")
    return (f" ({t['n']} answers: {t['correct']} right, {t['hallucinated']} hallucinated; AUROC {_f(t['auroc'])}"
            + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + ")")


def family_count(fam: dict) -> str:
    """How many families a domain's leave-one-family-out entry holds, saying how many are fallback groups (the fact
    groups of rows without ``meta.family``: held-out facts, not kinds of question) and how many rows fell back."""
    n = (fam.get("summary") or {}).get("n_families")
    fb = (fam.get("summary") or {}).get("n_fallback_groups") or 0 if n is not None else 0
    rows = fam.get("rows_without_family") or 0
    said = f"{n}" if n is not None else ""
    if fb and n is not None:
        said += f": {n - fb} meta.family + {fb} fallback fact groups"
    if rows:
        said += (f"{'; ' if said else ''}{rows} row{'s' if rows != 1 else ''} without meta.family fell back to "
                 "their fact group")
    return said


def over_target_counts(m: dict) -> list[tuple[str, int | None, int | None]]:
    """The held-out families whose accepted answers are hallucinated over the target (each routed with the thresholds
    fitted without it), as (family, hallucinated, accepted), the counts None where the report does not hold them."""
    fam = m.get("families") or {}
    over = ((fam.get("summary") or {}).get("at_target") or {}).get("families_over_target") or []

    def one(f: str) -> tuple[str, int | None, int | None]:
        t = ((fam.get("families") or {}).get(f) or {}).get("at_target") or {}
        if t.get("n_accepted") is None or t.get("accepted_hallucination_rate") is None:
            return f, None, None
        return f, t["accepted_hallucinated"], t["n_accepted"]

    return [one(f) for f in over]


def families_over_target(m: dict) -> str | None:
    """The held-out families whose accepted answers are hallucinated over the target (:func:`over_target_counts`), each
    with its count where the report holds it; None when there is none. Said wherever the certified accept threshold
    is, also when the families pooled are within the target."""
    return families_over_said(over_target_counts(m)) or None


def _certified(domain: str, m: dict) -> str:
    """Whether the domain's accept threshold is certified at its target, and how (the thresholds' method);
    then what ``certify = "per_family"`` would certify from the same scores."""
    t = m["at_target"]
    if t.get("withdrawn"):
        evidence = ("The leave-one-family-out table shows each family's figures." if t["withdrawn"].startswith(
            "each of the calibration's") else "The table's held-out row shows what it would have accepted.")
        line = (f"- {domain}: **no accept threshold**: {_f(t['accept_below'])}, certified at target {t['target']} with "
                f"confidence {t['confidence']} on the scores below, **is withdrawn**: {t['withdrawn']}. {evidence}")
    elif not t["accept_below"]:
        line = (f"- {domain}: **no accept threshold is certified** at target {t['target']} with confidence "
                f"{t['confidence']}, so nothing is accepted: {m['thresholds_method']}.")
    else:
        line = f"- {domain}: accept threshold {_f(t['accept_below'])} certified: {m['thresholds_method']}."
        lofo = ((m.get("families") or {}).get("summary") or {}).get("at_target") or {}
        over = families_over_target(m)
        if lofo.get("within_target") is False:
            line += (f" **On held-out families (each fitted without it) it is not met**: "
                     f"{_among_accepted(lofo)} hallucinated among accepted against the target {t['target']}"
                     + (f" (over it: {over})" if over else "") + ".")
        elif over:
            line += (f" **Warning: held-out families over the target {t['target']}** (each fitted without it): {over}; "
                     f"pooled over the families it is met ({_among_accepted(lofo)} hallucinated among accepted), but a "
                     "new kind of question like these may get what they got.")
        kinds = ((m.get("families") or {}).get("summary") or {}).get("at_target_meta_family") or {}
        if kinds.get("within_target") is False:  # the fallback groups outvote the kinds of question
            line += (f" **On its {kinds['n_families']} meta.family kinds of question alone (each fitted without it) it "
                     f"is not met**: {_among_accepted(kinds)} hallucinated among accepted against the target "
                     f"{t['target']}.")
    pf = m.get("thresholds_per_family")
    if pf:
        n = pf.get("n_calibration")  # a report of an earlier version: the share alone
        k = None if n is None or pf["coverage"] is None else round(pf["coverage"] * n)
        share = (f"{pf['coverage']:.1%} of the calibration answers" if k is None else
                 f"{_counted(pf['coverage'], k, n, clopper_pearson_interval(k, n))} of the calibration answers")
        got = f"accept below {_f(pf['accept_below'])} ({share})" if pf["accept_below"] else "nothing accepted"
        line += f" With `certify = \"per_family\"` in the policy: {got}: {pf['method']}."
    return line


def markdown(report: dict) -> str:
    s = report["split"]
    lines = [
        f"# Calibration report: {report['model']}",
        "",
        f"System prompt: `{report['system_prompt']}`; answers up to {report['max_new_tokens']} tokens, greedy"
        + (f"; {report['prompt_frame']}." if report.get("prompt_frame") else "."),
        f"Split: {s['by']}; test fraction {s['test_fraction']}, seed {s['seed']}: "
        f"{s['n_train']} training and {s['n_test']} held-out questions. Everything below is on the held-out "
        "split unless it says otherwise; probe, merger and thresholds saw the training split only.",
        "",
        "## Per domain (held-out split)",
        "",
        "| domain | n | right / hallucinated | halluc. rate | refusals | " + " | ".join(f"AUROC {k}" for k in SIGNALS)
        + " | probe neurons (per mille) | of them H-neurons (raise the risk) |",
        "|---|---|---|---|---|" + "---|" * len(SIGNALS) + "---|---|",
    ]
    for d, m in report["domains"].items():
        cc = class_counts(m)
        counts = "n/a" if cc is None else f"{cc[0]} / {cc[1]}"
        lines.append(
            f"| {d} | {m['n']} | {counts} | {_f(m['hallucination_rate'], 2)} | {m['refusals']} | "
            + " | ".join(_f(m["auroc"].get(k)) for k in SIGNALS)
            + f" | {neurons_cells(m)} |"
        )
    lines += [
        "",
        "95% bootstrap intervals of the held-out AUROC (1000 resamples within each class): how far a "
        "figure could move on another sample of the same size.",
        "",
        "| domain | " + " | ".join(SIGNALS) + " |",
        "|---|" + "---|" * len(SIGNALS),
    ]
    for d, m in report["domains"].items():
        ci = m.get("auroc_ci95") or {}
        lines.append(
            f"| {d} | "
            + " | ".join("n/a" if not ci.get(k) else f"{ci[k][0]:.2f}-{ci[k][1]:.2f}" for k in SIGNALS)
            + " |"
        )
    control = [f"- **{d}: warning**: {why}." for d, m in report["domains"].items() if (why := probe_not_above_random(m))]
    lines += ["", *control] if control else []
    lines += ["", "Accuracy at the threshold chosen on the training split, with its exact 95% interval, beside the "
              "accuracy of always saying the larger class (\"hallucinated\" where most answers are): a signal is worth "
              "its threshold only where it beats that.", ""]
    lines += ["| domain | always the larger class | " + " | ".join(SIGNALS) + " |", "|---|---|" + "---|" * len(SIGNALS)]
    for d, m in report["domains"].items():
        cc = class_counts(m)
        lines.append(f"| {d} | {_majority(cc)} | " + " | ".join(_accuracy_cell(m["accuracy"].get(k), cc) for k in SIGNALS)
                     + " |")
    lines += ["", "## Routing at the target (thresholds from training out-of-fold scores)", ""]
    lines += [f"- {d}: thresholds fitted on {m['thresholds_fitted_on']}" + _threshold_scores(m.get("threshold_scores")) + "."
              for d, m in report["domains"].items() if m.get("thresholds_fitted_on")]
    lines += [_certified(d, m) for d, m in report["domains"].items() if m.get("thresholds_method")] + [""]
    lines += [
        "| domain | target | confidence | accept below | abstain at or above | coverage (held-out) | halluc. among accepted | abstained | halluc. among abstained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d, m in report["domains"].items():
        t = m["at_target"]
        lines.append(
            f"| {d} | {t['target']} | {t['confidence']} | {_f(t['accept_below'])}{' (withdrawn)' if t.get('withdrawn') else ''} | {_f(t['abstain_above'])} | "
            f"{_coverage(t, m.get('n_scored'))} | {_among_accepted(t)} | {_abstained(t, m.get('n_scored'))} | "
            f"{_counted(t.get('abstained_hallucination_rate'), t.get('abstained_hallucinated'), t.get('n_abstained'), t.get('abstained_hallucination_ci95'))} |"
        )
    lines += ["", "Each share is of the scored held-out answers (refusals abstain by rule and are not counted), with its count "
              "and exact (Clopper-Pearson) 95% interval."]
    promised = [f"- {d}: {said}." for d, m in report["domains"].items() if (said := abstain_promise_said(m["at_target"]))]
    lines += ["", *promised] if promised else []
    lines += ["", "Accepted answers are those a guard accepts (with the policy's default `out_of_distribution = "
              "\"review\"`): merged risk below accept below and within the domain's out-of-distribution threshold; an "
              "answer below accept below but beyond that threshold goes to review and is not counted as accepted, here, "
              "at other targets and per family."]
    lines += [f"- {d}: {n} held-out answer{'s' if n != 1 else ''} below accept below went to review as out of distribution."
              for d, m in report["domains"].items() if (n := m["at_target"].get("review_out_of_distribution"))]
    lines += ["", f"Coverage on the held-out split at other targets (confidence {report['domains'][next(iter(report['domains']))]['at_target']['confidence']}):", ""]
    lines += ["| domain | " + " | ".join(f"target {t['target']:.2f}: coverage / halluc. among accepted" for t in next(iter(report["domains"].values())).get("at_targets", [])) + " |"]
    lines += ["|---|" + "---|" * len(next(iter(report["domains"].values())).get("at_targets", []))]
    for d, m in report["domains"].items():
        lines.append(f"| {d} | " + " | ".join(f"{_coverage(t, t.get('n_scored'))} / {_among_accepted(t)}" for t in m.get("at_targets", [])) + " |")
    lines += families_markdown(report)
    lines += ood_markdown(report)
    lines += router_markdown(report)
    lines += ["", "## Training split (cross-validation)", ""]
    lines += ["| domain | n | correct | hallucinated | refusals | C | folds | OOF AUROC probe | OOF AUROC merged (before the cross-family refit) | probe fit (s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for d, m in report["domains"].items():
        t = m["train"]
        n = t["n"] if "n_scored" in t else t["n"] + t["refusals"]  # a report of 0.3.0 counted the scored ones as n
        lines.append(
            f"| {d} | {n} | {t['correct']} | {t['hallucinated']} | {t['refusals']} | {m['C']:.3g} | {_folds_by(t)} | "
            f"{_f(t['cv_auroc_oof_probe'])} | {_f(t['cv_auroc_oof_merged'])} | {t['probe_fit_seconds']:.1f} |"
        )
    lines += ["", "C is chosen, and the out-of-fold AUROCs are measured, on the folds named: by fact, grouped as the "
              "held-out split is (meta.group or meta.fact, else the row), so no fact is on both sides of a fold; by "
              "row, rows of one fact can be on both sides, which reads the figures high."]
    lines += [f"- {d}: {m['train']['folds']}." for d, m in report["domains"].items()
              if _folds_by(m["train"]) != "by fact" and m["train"].get("folds")]
    lines += transfer_markdown(report["transfer"])
    if any(m.get("reviewed_items_used") for m in report["domains"].values()):
        lines += ["", "## Human review feedback", "", "| domain | reviewed items used | reviewer disagreed with probe |", "|---|---|---|"]
        for d, m in report["domains"].items():
            lines.append(f"| {d} | {m['reviewed_items_used']} | {m['reviewer_disagreements']} |")
        reviewed = [f"- {d}: {m['reviewed_split']}." for d, m in report["domains"].items() if m.get("reviewed_split")]
        lines += ["", "Reviewed rows are always in training:", "", *reviewed] if reviewed else []
    if report.get("skipped"):
        lines += ["", "## Skipped domains", ""] + [f"- {d}: {why}" for d, why in report["skipped"].items()]
    t = report["timing"]
    lines += [
        "",
        "## Timing",
        "",
        _timing_line(t),
        "",
        f"Plots left out: {report['plots_left_out']}." if report.get("plots_left_out")
        else "Plots: `risk_coverage.png`, `transfer.png`, `auroc.png`.",
        "",
    ]
    return "\n".join(lines)


def _folds_by(train: Mapping[str, Any]) -> str:
    """What a domain's training figures were measured on: "by fact", or "by row" (a report written before the folds
    were grouped by fact has no ``folds_by``: its folds were of rows)."""
    return "by fact" if train.get("folds_by") == "fact" else "by row"


def _timing_line(t: dict) -> str:
    """The run's timing: how many answers it collected and how many it reused from an earlier run's shards, whose
    time it did not measure (a report from before the counts gives its questions alone)."""
    times = f"collection {t['collect_seconds']:.0f} s; total {t.get('total_seconds', 0):.0f} s"
    if "answers_reused" not in t:
        return f"{t['n_questions']} questions; {times}."
    if not t["answers_reused"]:
        return f"{t['n_questions']} questions, all answered in this run; {times}."
    n, shards = t["answers_collected"], t["reused_shards"]
    return (f"{t['n_questions']} questions, **resumed**: {n} answered in this run and {t['answers_reused']} reused "
            f"from {shards} shard{'s' if shards > 1 else ''} of an earlier run in the work folder; {times}: the collection "
            f"time covers this run's {n} answers only, the earlier run's time is not counted.")


def _ci(e: dict, k: str) -> str:
    a = (e.get("auroc") or {}).get(k)
    ci = (e.get("auroc_ci95") or {}).get(k)
    return "n/a" if a is None else f"{a:.2f} ({ci[0]:.2f}-{ci[1]:.2f})" if ci else f"{a:.2f}"


MAX_FAMILY_ROWS = 40


def _share(c: Mapping[str, Any]) -> str:
    """A share of questions sent to review, with its count and exact 95% interval (Clopper-Pearson)."""
    from .._stats import clopper_pearson_interval

    ci = c.get("rate_ci95") or (clopper_pearson_interval(int(c["triggered"]), int(c["n"])) if c.get("n") else None)
    return f"{c['rate']:.3f} ({c['triggered']}/{c['n']}" + (f"; {ci[0]:.3f}-{ci[1]:.3f}" if ci else "") + ")"


def ood_markdown(report: dict) -> list[str]:
    ood = report.get("ood") or {}
    if not ood:
        return []
    cols = sorted({b for e in ood.values() for b in e.get("domains", {})})
    lines = [
        "",
        "## Out-of-distribution check (routes to review)",
        "",
        "Share of questions whose probe-feature distance exceeds the domain's threshold (the "
        f"{next((e['quantile'] for e in ood.values() if 'quantile' in e), 0.99):.0%} quantile of its cross-family "
        "out-of-fold distances): on its held-out families (each under the probe fitted without it, threshold from "
        "the other families), and on each domain's held-out split under the shipped probe.",
        "",
        "| probe of \\ questions of | threshold | held-out families | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for a, e in ood.items():
        if "no_figure" in e:
            lines.append(f"| {a} | no figure: {e['no_figure']} |" + " |" * (len(cols) + 1))
            continue
        h = e.get("held_out_families") or {}
        hf = (_share(h) + (f" (incl. {h['n_fallback_groups']} fallback fact groups)" if h.get("n_fallback_groups")
                           else "")) if h else "n/a"
        lines.append(f"| {a} | {e['threshold']:.2f} | {hf} | "
                     + " | ".join(_share(e["domains"][b]) if b in e["domains"] else "n/a" for b in cols) + " |")
    return lines


def router_markdown(report: dict) -> list[str]:
    """Where the automatic domain choice sends each domain's held-out questions (see ``router_coverage``)."""
    r = report.get("router") or {}
    if not r:
        return []
    lines = ["", "## Automatic domain choice on held-out questions", ""]
    if "no_figure" in r:
        return [*lines, f"No figure: {r['no_figure']}.", ""]
    lines += [f"Each held-out question asked without naming a domain, routed as the guard routes it (the mean cosine "
              f"of its 5 nearest calibration questions, domain_min_similarity {r['min_similarity']:.2f}) by a router "
              f"built from {r['router']}. A question reaching no domain goes to the policy's default route (review), "
              "or, with context, to its context_fallback_domain; name the domain in the request to skip the choice. "
              "Only this calibration's domains compete here: a policy that lists others, or sets another "
              "domain_min_similarity, can route otherwise."
              + (f" n counts {r['n_counts']}. A held-out question whose wording (case, spacing and punctuation aside) "
                 "is also one of the domain's training questions is not held out for this figure: the split keeps a "
                 "passage or fact on one side, not a wording, so a templated question can sit on both sides; "
                 "\"also a training question\" counts them and the last column is the figure without them."
                 if "n_counts" in r else ""),
              "", "| domain | n | to this domain (95% CI) | to another | to none | similarity to it: p10 / median"
              + (" | also a training question | to this domain without those (95% CI) |" if "n_counts" in r else " |"),
              "|---|---|---|---|---|---|" + ("---|---|" if "n_counts" in r else "")]
    for d, e in r["domains"].items():
        other = ", ".join(f"{k} {v}" for k, v in e["to_other"].items()) or "0"
        n = f"{e['n']} (of {e['n_rows']} rows)" if e.get("n_rows", e["n"]) != e["n"] else e["n"]
        lines.append(f"| {d} | {n} | {_routed(e)} | {other} | "
                     f"{e['to_none']} | {_f(e['similarity']['p10'], 2)} / {_f(e['similarity']['median'], 2)} |"
                     + (_routed_new(e) if "n_counts" in r else ""))
    return lines


def _routed(e: dict) -> str:
    """How many of a router figure's questions reach their domain: "34 (1.00 [0.90, 1.00])"."""
    lo, hi = e["interval"] or (None, None)
    return f"{e['to_domain']} ({_f(e['rate'], 2)} [{_f(lo, 2)}, {_f(hi, 2)}])"


def _routed_new(e: dict) -> str:
    """The router figure's last two cells: its held-out questions that are also training questions (in bold where
    any is: report.json names the first few, ``in_training_first``), and the figure without them."""
    k, new = e["in_training"], e["without_training_questions"]
    return (f" {f'**{k}**' if k else 0} | "
            + (f"{_routed(new)} of {new['n']}" if new["n"] else "- (every one is a training question)") + " |")


def families_markdown(report: dict) -> list[str]:
    """The leave-one-family-out section: a summary per domain, then every family."""
    doms = {d: m["families"] for d, m in report["domains"].items() if "families" in m}
    if not doms:
        return []
    lines = [
        "",
        "## Leave-one-family-out (kinds of question the calibration never saw)",
        "",
        next((f["method"] for f in doms.values() if "method" in f), ""),
        "AUROC means are over the families with at least 5 answers of each class; a family with one class has "
        "no AUROC and is listed as such, one with fewer than 5 of a class is listed as (few): its AUROC is in the "
        "table below but rests on too few answers to enter a mean; one whose merged-risk interval lies below 0.5 is listed as (inverted): its right answers score riskier than its hallucinated ones. Hallucination among accepted answers is pooled over the held-out families, each "
        "routed with the thresholds and the out-of-distribution threshold fitted without it (an answer beyond that "
        "goes to review, not accepted) (Clopper-Pearson 95% interval).",
        "",
        "| domain | families (with AUROC) | one-class, few, inverted families | mean AUROC probe | merged | best baseline | random neurons "
        "| worst family probe / merged | halluc. among accepted / target (accepted of n) | probe >= 0.85 | merged >= 0.88 | none < 0.75 | ahead of baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    yes = lambda b: "yes" if b else "**no**"  # noqa: E731
    for d, fam in doms.items():
        if "no_figure" in fam:
            rows = fam.get("rows_without_family")
            lines.append(f"| {d} | no figure: {fam['no_figure']}"
                         + (f" ({rows} rows without meta.family fell back to their fact group)" if rows else "")
                         + " |" + " |" * 11)
            continue
        s = fam["summary"]
        t = s.get("at_target") or {}
        if "mean_auroc" in s:
            mean, worst, base, tg = s["mean_auroc"], s["min_auroc"], s["best_baseline"], s["targets"]
            aur = (f"{mean['probe']:.3f} | {mean['merged']:.3f} | {base} {mean[base]:.3f} | {mean['random_neurons']:.3f} | "
                   f"{worst['probe']['family']} {worst['probe']['auroc']:.2f} / {worst['merged']['family']} {worst['merged']['auroc']:.2f}")
            flags = " | ".join(yes(tg[k]) for k in ("probe_mean_ge_0.85", "merged_mean_ge_0.88", "no_family_below_0.75", "ahead_of_best_baseline"))
        else:
            aur, flags = "n/a | n/a | n/a | n/a | n/a", "n/a | n/a | n/a | n/a"
        ci = t.get("accepted_hallucination_ci95")
        acc = (f"{_f(t.get('accepted_hallucination_rate'), 3)}" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
               + f" / {t.get('target')} ({t.get('n_accepted')} of {t.get('n_scored')})") if t else "n/a"
        km = s.get("at_target_meta_family")
        if km:  # the kinds of question alone, which the new-family check reads too: fallback groups cannot outvote them
            ci = km.get("accepted_hallucination_ci95")
            acc += (f"; its {km['n_families']} meta.family kinds alone: {_f(km.get('accepted_hallucination_rate'), 3)}"
                    + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "") + f" ({km['n_accepted']} of {km['n_scored']})")
        few = ([f"{f} (few)" for f in s.get("few_of_a_class_families", [])]
               + [f"{f} (inverted)" for f in s.get("inverted_families", [])])
        in_mean = s.get("n_families_in_mean", s.get("n_families_with_auroc"))  # the key's name before 2026-12-02
        lines.append(f"| {d} | {family_count(fam)} ({in_mean}) | {', '.join(s['one_class_families'] + few) or '-'} | "
                     f"{aur} | {acc} | {flags} |")
    sig = SIGNALS
    lines += [
        "",
        "Per family (AUROC with 95% bootstrap interval, widened to the exact binomial one where a class has fewer "
        "than 10 answers; counts of the family's answers; routing at the report's target with the thresholds fitted "
        "without the family):",
        "",
        "| domain | family | n | correct | halluc. | refusals | model accuracy | " + " | ".join(sig)
        + " | coverage | halluc. among accepted (accepted) |",
        "|---|---|---|---|---|---|---|" + "---|" * len(sig) + "---|---|",
    ]
    for d, fam in doms.items():
        items = list((fam.get("families") or {}).items())
        for f, e in items[:MAX_FAMILY_ROWS]:
            head = f"| {d} | {f}{' (held-out split only)' if e.get('held_out_only') else ''} | {e['n']} | {e['correct']} | {e['hallucinated']} | {e['refusals']} | {_f(e.get('model_accuracy'), 2)} | "
            if e.get("no_figure"):
                lines.append(head + f"no figure: {e['no_figure']} |" + " |" * (len(sig) + 1))
                continue
            t = e["at_target"]
            note = " (one class)" if e.get("one_class") else ""
            lines.append(head + " | ".join(_ci(e, k) + (note if k == "probe" else "") for k in sig)
                         + f" | {_f(t['coverage'], 2)} | {_f(t['accepted_hallucination_rate'], 2)} ({t['n_accepted']}) |")
        if len(items) > MAX_FAMILY_ROWS:
            lines.append(f"| {d} | ... {len(items) - MAX_FAMILY_ROWS} more families in report.json |" + " |" * (len(sig) + 7))
    return lines


def _held_out(report: dict, d: str) -> str:
    """What a plot says of one domain's held-out answers: their count and classes from the report's own figures,
    and whether they are too few, or of one class, for an AUROC to mean much (a report from before the class counts
    gives its n alone)."""
    m = report["domains"][d]
    if "correct" not in m:
        return f"n {m['n']}"
    least = report.get("transfer", {}).get("min_class_for_mean", 5)
    r = m.get("refusals") or 0
    text = counts_label(m) + (f", {r} refusal{'s' if r > 1 else ''} (not scored)" if r else "")
    if min(m["correct"], m["hallucinated"]) == 0:
        return text + "\none class only: no AUROC"
    return text + (f"\n(few): under {least} answers of a class" if few_of_a_class(m, least) else "")


def _plot_title(what: str, report: dict, width: int) -> str:
    """A plot's title: what it shows, on the split it is drawn on as report.md states it, wrapped to the plot."""
    import textwrap

    s = report["split"]
    return textwrap.fill(f"{what} on the held-out split: {s['n_test']} of {s['n_train'] + s['n_test']} questions "
                         f"(test fraction {s['test_fraction']}, seed {s['seed']}; the probes saw the other "
                         f"{s['n_train']} only)", width)


def figures(report: dict) -> dict[str, Any]:
    """The report's plots (file name -> matplotlib Figure), drawn from the report's own figures: each says the split
    it is drawn on and each domain's held-out n and class counts, and the AUROC bars carry their 95% intervals, so
    a plot shown on its own does not read as a result on more answers than it has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figs: dict[str, Any] = {}
    doms = list(report["domains"])
    fig, axes = plt.subplots(1, max(1, len(doms)), figsize=(4.4 * max(1, len(doms)), 4.0), squeeze=False)
    for ax, d in zip(axes[0], doms):
        for k, curve in report["risk_coverage"].get(d, {}).items():
            if curve:
                cov = [c[0] for c in curve]
                err = [c[1] for c in curve]
                ax.plot(cov, err, label=k)
        t = report["domains"][d]["at_target"]["target"]
        ax.axhline(t, color="grey", ls=":", lw=1)
        ax.set_title(f"{d} ({_held_out(report, d)})", fontsize=8)
        ax.set_xlabel("coverage (share accepted)")
        ax.set_ylabel("hallucination rate among accepted")
        ax.set_xlim(0, 1)
        if ax.lines[:-1]:
            ax.legend(fontsize=7)
    fig.suptitle(_plot_title("Risk against coverage", report, 70 * max(1, len(doms))), fontsize=8)
    fig.tight_layout()
    figs["risk_coverage.png"] = fig

    tr = report["transfer"]["auroc"]
    counts = report["transfer"].get("counts") or {}
    least = report["transfer"].get("min_class_for_mean", 5)
    rows = list(tr)
    cols = sorted({c for r in tr.values() for c in r})
    M = np.array([[np.nan if tr[a].get(b) is None else tr[a][b] for b in cols] for a in rows])
    fig, ax = plt.subplots(figsize=(1.8 * len(cols) + 3, 1.0 * len(rows) + 2.4))
    im = ax.imshow(M, vmin=0.3, vmax=1.0, cmap="viridis")
    heads = [f"{b}\n{counts_label(counts[b])}" + (" (few)" if few_of_a_class(counts[b], least) else "")
             if b in counts else b for b in cols]
    ax.set_xticks(range(len(cols)), heads, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(M[i, j]):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", color="white" if M[i, j] < 0.7 else "black")
    ax.set_xlabel("tested on (held-out answers)")
    ax.set_ylabel("trained on")
    ax.set_title(_plot_title("Probe AUROC across domains", report, 12 * len(cols) + 30) + (
        f"\n(few): under {least} answers of a class" if any(few_of_a_class(c, least) for c in counts.values()) else ""),
        fontsize=7)
    fig.colorbar(im, ax=ax, label="AUROC")
    fig.tight_layout()
    figs["transfer.png"] = fig

    fig, ax = plt.subplots(figsize=(2.2 * len(doms) + 3, 4.2))
    width = 0.8 / len(SIGNALS)
    for k, sig in enumerate(SIGNALS):
        vals = np.array([report["domains"][d]["auroc"].get(sig) or np.nan for d in doms], dtype=float)
        cis = [(report["domains"][d].get("auroc_ci95") or {}).get(sig) for d in doms]
        # the intervals report.md gives (95% bootstrap), not recomputed; a bar without one has no whisker
        whiskers = np.array([[v - ci[0], ci[1] - v] if ci and not np.isnan(v) else [np.nan, np.nan] for v, ci in zip(vals, cis)]).T
        ax.bar(np.arange(len(doms)) + k * width, vals, width, label=sig, yerr=whiskers, capsize=2,
               error_kw={"elinewidth": 0.8, "ecolor": "black"})
    ax.set_xticks(np.arange(len(doms)) + 0.4 - width / 2, [f"{d}\n{_held_out(report, d)}" for d in doms], fontsize=7)
    ax.set_xlim(-width / 2 - 0.1, len(doms) - 0.2 - width / 2 + 0.1)  # a domain without bars keeps its place
    ax.axhline(0.5, color="grey", lw=1, ls=":")
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("held-out AUROC (95% interval)")
    ax.set_title(_plot_title("AUROC with 95% bootstrap intervals", report, 22 * len(doms) + 40), fontsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    figs["auroc.png"] = fig
    return figs


def plot(report: dict, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for name, fig in figures(report).items():
        paths.append(out / name)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write_report(report: dict, out: str | Path, *, plots: bool = True) -> None:
    """report.json, report.md and, with ``plots`` and matplotlib installed, the plots (without matplotlib
    they are left out with a warning and a line in report.md: the figures are all in the text)."""
    out = Path(out)
    if plots and importlib.util.find_spec("matplotlib") is None:
        plots = False
        report["plots_left_out"] = f"matplotlib is not installed; {install_extra('plots')} to draw them"
        warnings.warn(f"calibration plots left out: {report['plots_left_out']} (every figure is in report.md)",
                      stacklevel=2)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    if plots:
        plot(report, out)
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
