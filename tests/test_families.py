"""Families for leave-one-family-out: the fallback key, the folds, and the domain summary's rules."""

from __future__ import annotations

import numpy as np
import pytest

from hguard.calibrate.data import Example
from hguard.calibrate.families import MAX_FOLDS, MIN_CLASS_FOR_MEAN, family_folds, family_of, summarize
from hguard.ood import feature_distance, fit_ood, ood_problem


def _ex(i, meta):
    return Example(id=f"x-{i}", question="q?", answers=["Paris"], domain="d", meta=meta)


def test_family_falls_back_to_the_fact_group_then_the_id():
    assert family_of(_ex(1, {"family": "capital", "fact": "f"})) == "capital"
    assert family_of(_ex(2, {"fact": "capital:france"})) == "fact:capital:france"
    assert family_of(_ex(3, {"group": "g1"})) == "group:g1"  # a blank family is refused at load (test_data)
    assert family_of(_ex(4, None)) == "id:x-4"


def test_few_families_are_held_out_one_by_one_many_in_whole_folds():
    assert family_folds(["b", "a", "b", "c"]) == [["a"], ["b"], ["c"]]
    names = [f"f{i}" for i in range(37)]
    folds = family_folds(names + names[:5])
    assert len(folds) == MAX_FOLDS and sorted(n for f in folds for n in f) == sorted(names)
    assert folds == family_folds(list(reversed(names)))  # independent of row order


def _entry(correct, halluc, probe, merged, accepted=0, acc_h=0):
    a = {"probe": probe, "merged": merged, "mean_logprob": 0.6, "min_logprob": 0.5, "entropy": 0.55,
         "length": 0.5, "random_neurons": 0.5}
    e = {"n": correct + halluc, "n_scored": correct + halluc, "correct": correct, "hallucinated": halluc,
         "at_target": {"n_accepted": accepted, "accepted_hallucinated": acc_h, "coverage": accepted / (correct + halluc),
                       "accepted_hallucination_rate": acc_h / accepted if accepted else None,
                       "within_target": (acc_h / accepted <= 0.2) if accepted else None}}
    if min(correct, halluc) == 0:
        e["one_class"] = "one class"
        e["auroc"] = {k: None for k in a}
    else:
        e["auroc"] = a
    return e


def test_summary_means_only_families_with_enough_of_each_class_and_pools_routing():
    per = {
        "a": _entry(20, 30, 0.9, 0.92, accepted=10, acc_h=1),
        "b": _entry(10, 40, 0.8, 0.82, accepted=5, acc_h=2),
        "few": _entry(MIN_CLASS_FOR_MEAN - 1, 40, 0.1, 0.1),
        "one": _entry(0, 30, None, None),
    }
    s = summarize(per, ["mean_logprob", "min_logprob", "entropy", "length"], 0.2)
    assert s["n_families"] == 4 and s["n_families_in_mean"] == 2
    assert s["one_class_families"] == ["one"] and s["few_of_a_class_families"] == ["few"]
    assert s["mean_auroc"]["probe"] == pytest.approx(0.85) and s["min_auroc"]["probe"] == {"family": "b", "auroc": 0.8}
    assert s["targets"]["probe_mean_ge_0.85"] and not s["targets"]["merged_mean_ge_0.88"]
    assert s["best_baseline"] == "mean_logprob" and s["targets"]["ahead_of_best_baseline"]
    t = s["at_target"]
    assert t["n_accepted"] == 15 and t["accepted_hallucination_rate"] == pytest.approx(3 / 15)
    assert t["within_target"] and t["families_over_target"] == ["b"]
    lo, hi = t["accepted_hallucination_ci95"]
    assert lo < 0.2 < hi
    # nothing accepted: no figure to judge against the target, and no family is over it
    none = summarize({"a": _entry(20, 30, 0.9, 0.92), "b": _entry(10, 40, 0.8, 0.82)}, ["mean_logprob"], 0.2)["at_target"]
    assert none["n_accepted"] == 0 and none["within_target"] is None and none["families_over_target"] == []


def test_a_family_whose_merged_interval_lies_below_chance_is_named_inverted_in_summary_warning_and_report():
    from hguard.calibrate.report import families_markdown
    from hguard.cli import calibration_warnings

    per = {"a": _entry(20, 30, 0.9, 0.92), "back": _entry(30, 25, 0.3, 0.28), "near": _entry(30, 25, 0.45, 0.46),
           "few": _entry(1, 199, 0.08, 0.075)}
    for e in per.values():
        e["refusals"] = 0
        e["auroc_ci95"] = {k: [v - 0.05, v + 0.05] for k, v in e["auroc"].items()}
    per["a"]["auroc_ci95"]["merged"] = [0.85, 0.97]
    per["back"]["auroc_ci95"]["merged"] = [0.18, 0.39]
    per["near"]["auroc_ci95"]["merged"] = [0.35, 0.57]  # reaches chance: not inverted beyond doubt
    per["few"]["auroc_ci95"]["merged"] = [0.04, 0.11]  # one right answer ranked low: too few to call the family inverted
    s = summarize(per, ["mean_logprob"], 0.2)
    assert s["inverted_families"] == ["back"]
    report = {"domains": {"geo": {"auroc": {"merged": 0.8}, "auroc_ci95": {"merged": [0.7, 0.9]}, "n_scored": 105,
                                  "families": {"families": per, "summary": s}}}}
    lines = calibration_warnings(report, [])
    assert len(lines) == 1 and "'geo', family 'back'" in lines[0] and "0.18-0.39" in lines[0]
    assert "30 correct, 25 hallucinated" in lines[0]
    row = next(x for x in families_markdown(report) if x.startswith("| geo | 4 "))
    assert "back (inverted)" in row and "near" not in row and "few (inverted)" not in row


class _Probe:
    feature_indices_ = np.array([3, 7])
    center_ = np.array([1.0, -1.0])
    scale_ = np.array([2.0, 0.5])


def test_feature_distance_threshold_and_review_reason():
    d = feature_distance(_Probe(), [[1.0, -1.0], [5.0, 0.0]])
    assert d[0] == 0.0 and d[1] == pytest.approx(np.sqrt((2.0**2 + 2.0**2) / 2))
    ood = fit_ood(np.r_[np.linspace(0, 1, 99), np.nan], fitted_on="test")
    assert ood["n"] == 99 and ood["threshold"] == pytest.approx(0.99)
    assert ood_problem(0.5, ood) is None
    assert "2 > 0.99" in ood_problem(2.0, ood)
    assert "not a number" in ood_problem(float("nan"), ood)  # fails closed
    assert ood_problem(5.0, None) is None
    with pytest.raises(ValueError, match="reads 2 neurons"):
        feature_distance(_Probe(), [[1.0, 2.0, 3.0]])


def test_a_repeated_question_is_kept_with_its_first_row_on_one_side_of_the_split_and_in_its_family():
    from hguard.calibrate.families import attach_families

    exs = [
        Example(id="cal-1", question="Which port does HTTPS use?", answers=["443"], domain="it", meta={"family": "port", "fact": "https"}),
        Example(id="cal-2", question="What does DNS stand for?", answers=["Domain Name System"], domain="it", meta={"family": "acronym"}),
        # exported from review: same question, its own id as group, family "reviewed"
        Example(id="rev-1", question="which port does  HTTPS use", answers=["443"], domain="it", meta={"family": "reviewed", "label": "correct"}),
        Example(id="other", question="Which port does HTTPS use?", answers=["443"], domain="net", meta={"family": "x"}),
    ]
    rows = [{"id": e.id, "question": e.question, "domain": e.domain, "group": f"g-{e.id}"} for e in exs]
    with pytest.warns(UserWarning, match=r"1 row\(s\) repeat the question of another row of their domain \(first: 'rev-1' asks what 'cal-1' asks\)"):
        attach_families(rows, exs)
    by = {r["id"]: r for r in rows}
    assert (by["rev-1"]["group"], by["rev-1"]["family"]) == ("g-cal-1", "port")
    assert (by["other"]["group"], by["other"]["family"]) == ("g-other", "x")  # another domain: its own row
    assert (by["cal-2"]["group"], by["cal-2"]["family"]) == ("g-cal-2", "acronym")
    # the same answer labelled both ways (a reviewer's "hallucinated" beside the judge's "correct") is said
    for r, label in zip(rows, ("correct", "correct", "hallucinated", "correct")):
        r["answer"], r["label"] = "Port 443.", label
    with pytest.warns(UserWarning, match=r"1 pair\(s\) of rows give the same answer to the same question with opposite "
                      r"labels \(first: 'cal-1' 'correct', 'rev-1' 'hallucinated'"):
        attach_families(rows, exs)


def test_the_cross_family_merged_risks_thresholds_rest_on_come_from_mergers_fitted_without_each_family():
    """A statistician's trial: the merger was fitted on the very scores the thresholds were then certified on.
    A family's merged risks must not move when its own labels change."""
    import numpy as np

    from hguard.calibrate.families import _merged_without_family
    from hguard.calibrate.pipeline import fit_merger

    rng = np.random.default_rng(0)
    fam = np.repeat(np.array(["a", "b", "c"]), 60)
    Z = rng.normal(size=(len(fam), 5))
    y = (Z[:, 0] + rng.normal(scale=0.5, size=len(fam)) > 0).astype(int)
    everything = fit_merger(Z, y)
    before = _merged_without_family(Z, y, fam, Z, fam, everything)
    flipped = y.copy()
    flipped[fam == "a"] = 1 - flipped[fam == "a"]  # family a's labels turned over
    after = _merged_without_family(Z, flipped, fam, Z, fam, fit_merger(Z, flipped))
    assert np.allclose(before[fam == "a"], after[fam == "a"])  # a's own labels played no part in its scores
    assert not np.allclose(before[fam == "b"], after[fam == "b"])  # the other families' mergers saw a's labels


def test_two_rows_labelling_one_answer_both_ways_are_blamed_on_their_answers_unless_a_reviewer_is_involved():
    """A new user's duplicated question with other gold answers was said to be "a reviewer's verdict and the judge's
    reading ... disagree", though no reviewer was involved."""
    import warnings

    from hguard.calibrate.families import _join_repeated_questions

    def rows(source=None):
        base = {"domain": "ins", "question": "Capital of France?", "answer": "Paris.", "group": "g", "family": "f"}
        return [{**base, "id": "a", "label": "correct"}, {**base, "id": "b", "label": "hallucinated", "source": source}]

    for source, said in ((None, "the two rows accept different answers to one question; fix their answers"),
                         ("review", "a reviewer's verdict and the judge's reading of the answers disagree")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _join_repeated_questions(rows(source))
        assert any(said in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_the_ood_threshold_is_never_below_the_probes_own_answers_quantile():
    """An evaluation engineer's trial: on a small domain the shipped probe read 13 neurons while the threshold came
    from probes fitted without each family (other neurons, other in number), and the check sent 9 of 45 ordinary
    held-out answers to review (the README says 1-2% of new kinds of question)."""
    rng = np.random.default_rng(0)
    cross = rng.uniform(0.9, 1.1, 500)  # many neurons: a tight spread
    own = np.abs(rng.normal(1.0, 0.4, 300))  # few neurons: a wide one
    ood = fit_ood(cross, fitted_on="test", own=own)
    assert ood["threshold"] == pytest.approx(np.quantile(own, 0.99)) == ood["own_quantile"]
    assert ood["n_own"] == 300 and "raised to the same quantile of the probe's own" in ood["fitted_on"]
    assert np.mean(own > ood["threshold"]) <= 0.011
    # the cross-family quantile stands where it lies further out
    wide = fit_ood(cross * 3, fitted_on="test", own=own)
    assert wide["threshold"] == pytest.approx(np.quantile(cross * 3, 0.99)) and wide["fitted_on"] == "test"
    assert fit_ood(cross, fitted_on="test", own=[np.nan])["threshold"] == pytest.approx(np.quantile(cross, 0.99))


def test_an_answer_under_the_accept_threshold_but_out_of_distribution_is_not_counted_accepted():
    """An evaluation engineer's trial: evaluate --json said 5 accepted, 1 hallucinated where the guard (and evaluate's
    own per-answer routes) accepted 4, 1: an answer under accept_below that the out-of-distribution check sends to
    review was counted accepted, per family and pooled."""
    from hguard.calibrate.families import figures_by_family

    risk = np.array([0.1, 0.1, 0.1, 0.1, 0.8, 0.9])
    scores = {"probe": risk, "merged": risk, "mean_logprob": risk, "min_logprob": risk, "entropy": risk, "length": risk}
    labels = ["correct", "correct", "hallucinated", "correct", "hallucinated", "hallucinated"]
    distance = np.array([0.5, 3.0, 0.5, np.nan, 0.5, 0.5])  # beyond 1.0, and not a number: both go to review
    out = figures_by_family(["a"] * 6, labels, scores, accept_below=0.5, target=0.2, distance=distance, ood_threshold=1.0)
    t = out["families"]["a"]["at_target"]
    assert (t["n_accepted"], t["accepted_hallucinated"], t["review_out_of_distribution"]) == (2, 1, 2)
    assert t["coverage"] == pytest.approx(2 / 6) and t["accepted_hallucination_rate"] == 0.5
    # the rate as it stands and what its interval shows (a trial read "within_target": true on 0 of 2 accepted)
    none_wrong = figures_by_family(["a"] * 4, ["correct"] * 3 + ["hallucinated"], {k: np.array([0.1, 0.1, 0.9, 0.9])
                                   for k in scores}, accept_below=0.5, target=0.2)["families"]["a"]["at_target"]
    assert none_wrong["within_target"] is True and none_wrong["within_target_shown"] is False
    assert none_wrong["accepted_hallucination_ci95"][1] > 0.8  # 0 of 2
    assert out["families"]["a"]["ood"]["triggered"] == 2  # the guard's test, a distance that is not a number included
    s = out["summary"]
    assert (s["at_target"]["n_accepted"], s["at_target"]["review_out_of_distribution"]) == (2, 2)
    # these answers were never held out of a fit: their out-of-distribution share is named for what it is
    assert "ood_held_out_families" not in s and s["ood_answers"]["triggered"] == 2


def test_a_family_of_one_row_is_named_in_one_warning():
    """A user trial: a meta.family spelt once (a typo, a lone row) was held out as a one-answer "kind of question"."""
    import warnings

    from hguard.calibrate.families import attach_families

    exs = [_ex(i, {"family": "capital", "fact": f"f{i}"}) for i in range(3)] + [_ex(9, {"family": "lonely", "fact": "f9"})]
    rows = [{"id": e.id, "domain": "d", "question": f"q{e.id}", "group": e.id} for e in exs]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        attach_families(rows, exs)
    said = [str(x.message) for x in w if "name a single row" in str(x.message)]
    assert len(said) == 1 and "'lonely' of domain" in said[0] and "row 'x-9'" in said[0], said


def test_the_summary_and_report_give_the_kinds_of_question_alone_beside_fallback_groups():
    """A review: fallback groups of rows without meta.family, well separated, diluted the kinds of question the
    threshold fails on (pooled 0.176, the kinds alone 45 of 90 against 0.2). The summary gives both, and so does the
    report's families table."""
    import copy
    import json

    from hguard import REFERENCE_PROBES
    from hguard.calibrate.report import markdown

    per = {"a": _entry(15, 15, 0.6, 0.6, accepted=30, acc_h=15), "b": _entry(15, 15, 0.6, 0.6, accepted=30, acc_h=15),
           **{f"fact:q{i}": _entry(8, 2, 0.9, 0.9, accepted=8, acc_h=0) for i in range(60)}}
    s = summarize(per, ["mean_logprob"], 0.2)
    assert s["at_target"]["n_accepted"] == 540 and s["at_target"]["within_target"]
    kinds = s["at_target_meta_family"]
    assert kinds["n_families"] == 2 and (kinds["n_accepted"], kinds["accepted_hallucinated"]) == (60, 30)
    assert kinds["within_target"] is False and kinds["families_over_target"] == ["a", "b"]
    # no fallback groups, or one kind of question: the pooled figure alone
    assert "at_target_meta_family" not in summarize({f: per[f] for f in ("a", "b")}, ["mean_logprob"], 0.2)
    assert "at_target_meta_family" not in summarize({f: e for f, e in per.items() if f != "b"}, ["mean_logprob"], 0.2)
    report = json.loads((REFERENCE_PROBES / "report.json").read_text())
    mixed = copy.deepcopy(report)
    mixed["domains"]["geography"]["families"]["summary"]["at_target_meta_family"] = kinds
    said = markdown(mixed)
    assert "; its 2 meta.family kinds alone: 0.500 (" in said and ") (60 of 60) |" in said
    assert "meta.family kinds alone" not in markdown(report)
    from hguard.calibrate.report import _certified

    geo = mixed["domains"]["geography"]
    geo["at_target"].pop("withdrawn", None)
    geo["at_target"]["accept_below"] = 0.3
    assert ("**On its 2 meta.family kinds of question alone (each fitted without it) it is not met**: 0.50 (30 of 60; "
            in _certified("geography", {**geo, "thresholds_method": "LTT"}))
