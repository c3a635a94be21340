"""The calibrated domain (one frozen record of a probe file's calibration), the generation settings it
was calibrated under, and the guard's plan: round trip, read-only, older files, and answers generated
under other settings than the calibration's (review with both values named, or a warning)."""

from __future__ import annotations

import json
import shutil
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from hguard._resources import DEFAULT_POLICY, REFERENCE_PROBES
from hguard.domain import CalibratedDomain, CalibrationScores
from hguard.errors import InputError, ProbeError
from hguard.guard import Guard
from hguard.policy import Policy, Thresholds, fit_thresholds, load_policy
from hguard.probe import HNeuronProbe
from hguard.settings import CLOSED_BOOK, RAG, GenerationSettings

Q = "who is the author of the book ?"
FPS = {"model_fingerprint": "m1", "chat_template_fingerprint": "t1", "system_prompt_fingerprint": "s1"}


@pytest.fixture(scope="module")
def small_probe():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2 * 10))
    y = (X[:, 3] + 0.3 * rng.normal(size=60) > 0).astype(int)
    return HNeuronProbe(Cs=3, cv=3, n_layers=2, length_control=False).fit(X, y)


def _domain(probe, **kw) -> CalibratedDomain:
    risk = [0.1] * 40 + [0.9] * 40
    y = [0] * 40 + [1] * 40
    fields = dict(
        merger={"features": ["neuron_logit"], "mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0},
        thresholds=fit_thresholds(risk, y, target=0.2, confidence=0.9),
        thresholds_fitted_on="out-of-fold training scores",
        calibration_scores={"risk": risk, "hallucinated": y},
        router_questions=("where is paris ?", "who wrote it ?"),
        ood={"threshold": 3.5, "quantile": 0.95, "fitted_on": "held-out families"},
        extra={"model": "tiny", "data_hash": "abc", "split": {"test_fraction": 0.3, "seed": 0}},
    )
    fields.update(kw)
    return CalibratedDomain.create(probe, name="capitals", settings=GenerationSettings(max_new_tokens=7, system_prompt="answer"),
                                   fingerprints=FPS, **fields)


# ------------------------------------------------------------------------------------ the object


def test_round_trip_keeps_every_field(small_probe, tmp_path):
    saved = _domain(small_probe).save(tmp_path / "capitals.json")
    assert saved.probe_id and saved.probe_id == small_probe.probe_id_
    back = CalibratedDomain.load(tmp_path / "capitals.json")
    assert back.probe_id == saved.probe_id and back.name == "capitals" and back.prompt_mode == CLOSED_BOOK
    assert back.generation == GenerationSettings(max_new_tokens=7, system_prompt="answer") and back.generation_recorded
    assert dict(back.fingerprints) == FPS
    assert back.thresholds == saved.thresholds and isinstance(back.thresholds, Thresholds)
    assert back.calibration_scores == CalibrationScores(tuple([0.1] * 40 + [0.9] * 40), tuple([0] * 40 + [1] * 40))
    assert back.router_questions == ("where is paris ?", "who wrote it ?")
    assert back.ood["threshold"] == 3.5 and back.merger["coef"] == (1.0,)
    assert back.split["seed"] == 0 and back.data_hash == "abc" and back.extra["model"] == "tiny"
    assert back.metadata() == saved.metadata()
    np.testing.assert_allclose(back.probe.weights_, small_probe.weights_)
    meta = json.loads((tmp_path / "capitals.json").read_text())["metadata"]
    assert meta["generation_fingerprint"] == GenerationSettings(max_new_tokens=7, system_prompt="answer").fingerprint
    assert meta["max_new_tokens"] == 7 and meta["system_prompt"] == "answer"  # older readers still find them


def test_the_domain_and_its_record_are_read_only(small_probe):
    cd = _domain(small_probe)
    with pytest.raises(FrozenInstanceError):
        cd.thresholds = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        cd.merger["intercept"] = 5.0  # type: ignore[index]
    with pytest.raises(TypeError):
        cd.ood["threshold"] = 0.0  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        cd.generation.max_new_tokens = 9  # type: ignore[union-attr,misc]
    changed = replace(cd, ood={**cd.ood, "threshold": 1.0})  # a changed domain is a new object
    assert changed.ood["threshold"] == 1.0 and cd.ood["threshold"] == 3.5


def test_generation_fingerprint_covers_every_setting_and_bad_settings_are_refused():
    base = GenerationSettings(max_new_tokens=32, system_prompt="answer")
    prints = {base.fingerprint, base.replace(max_new_tokens=48).fingerprint, base.replace(system_prompt="x").fingerprint,
              base.replace(prompt_mode=RAG).fingerprint, base.replace(do_sample=True).fingerprint,
              base.replace(temperature=0.7).fingerprint}
    assert len(prints) == 6 and GenerationSettings(max_new_tokens=32, system_prompt="answer").fingerprint == base.fingerprint
    for bad, says in (({"max_new_tokens": 0}, "max_new_tokens"), ({"max_new_tokens": True}, "max_new_tokens"),
                      ({"prompt_mode": "chat"}, "prompt mode"), ({"temperature": 0.0}, "temperature"),
                      ({"temperature": 10**400}, "temperature must be a finite number > 0, got 1000")):  # not OverflowError
        with pytest.raises(InputError, match=says):
            GenerationSettings(**bad)
    assert base.differences(base.replace(max_new_tokens=48)) == ["max_new_tokens 48 at calibration, 32 here"]
    with pytest.raises(ProbeError, match="temperature must be a finite number > 0, got 1000.*recalibrate"):
        GenerationSettings.from_dict({"max_new_tokens": 32, "temperature": 10**400})  # a probe file's JSON int


def test_a_record_whose_generation_fingerprint_does_not_match_is_refused(small_probe, tmp_path):
    meta = _domain(small_probe).metadata()
    meta["generation"]["max_new_tokens"] = 8  # edited without its fingerprint (the probe_id is recomputed by save)
    small_probe.save(tmp_path / "p.json", metadata=meta)
    with pytest.raises(ProbeError, match="generation_fingerprint"):
        CalibratedDomain.load(tmp_path / "p.json")


@pytest.mark.parametrize("name", ["geography", "chemistry", "literature", "general.rag", "policy.rag"])
def test_the_shipped_probe_files_load_with_their_recorded_settings(name):
    path = REFERENCE_PROBES / f"{name}.json"
    raw = json.loads(path.read_text())
    cd = CalibratedDomain.load(path)
    meta = raw["metadata"]
    # the shipped files record their generation settings and the fingerprint of them
    assert cd.generation_recorded and meta["generation_fingerprint"] == cd.generation.fingerprint
    assert cd.probe_id == raw["probe_id"] and cd.name == meta["domain"]
    assert cd.prompt_mode == (RAG if name.endswith(".rag") else CLOSED_BOOK)
    assert cd.generation == GenerationSettings(max_new_tokens=meta["max_new_tokens"], system_prompt=meta["system_prompt"],
                                               prompt_mode=cd.prompt_mode)
    assert cd.thresholds.to_dict() == meta["thresholds"] and list(cd.router_questions) == meta["router_questions"]
    assert list(cd.calibration_scores.risk) == meta["calibration_scores"]["risk"]
    # the default policy generates as the shipped probes were calibrated: no mismatch to report
    assert cd.generation_problem(GenerationSettings.from_policy(load_policy(DEFAULT_POLICY).generation)) is None


def test_an_old_file_without_generation_settings_has_unknown_settings(small_probe, tmp_path):
    meta = {k: v for k, v in _domain(small_probe).metadata().items()
            if k not in ("generation", "generation_fingerprint", "max_new_tokens", "system_prompt")}
    small_probe.save(tmp_path / "old.json", metadata=meta)
    cd = CalibratedDomain.load(tmp_path / "old.json")
    assert cd.generation is None and not cd.generation_recorded
    why = cd.generation_problem(GenerationSettings(max_new_tokens=32))
    assert why.startswith("generation settings unknown: the calibration of domain 'capitals' records no max_new_tokens")
    assert "max_new_tokens 32" in why
    why = _domain(small_probe).generation_problem(GenerationSettings(max_new_tokens=32, system_prompt="answer"))
    assert why.startswith("generation settings differ from the calibration of domain 'capitals': "), why


# ----------------------------------------------------------------------------------- the guard


def _policy(probes, tmp_path, max_new_tokens=4, **alpha):
    return Policy.model_validate({
        "version": 1, "probes": str(probes),
        "audit": {"path": str(tmp_path / "audit.jsonl")}, "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "generation": {"max_new_tokens": max_new_tokens, "system_prompt": "answer"},
        "domains": {"alpha": {"accept_below": 1.0, "abstain_above": 1.0, **alpha}, "beta": {}},
    })


def test_the_guard_serves_calibrated_domains_with_plans_built_at_load(tiny_calibrated, tmp_path, monkeypatch):
    lm, root = tiny_calibrated
    g = Guard.from_policy(_policy(root / "probes", tmp_path), lm=lm)
    cd = g.probes["alpha"]
    assert isinstance(cd, CalibratedDomain) and cd.generation == GenerationSettings(max_new_tokens=4, system_prompt="answer")
    plan = g.plan("alpha")
    assert plan.without_context.domain is cd and plan.with_context.domain is None and plan.with_context.problem
    assert plan.without_context.thresholds.accept_below == 1.0 and plan.without_context.generation_problem is None
    # beta routes by thresholds fitted for the policy when the guard loaded it
    dp = g.policy.domain("beta")
    want = fit_thresholds(list(g.probes["beta"].calibration_scores.risk), list(g.probes["beta"].calibration_scores.hallucinated),
                          target=dp.target_hallucination_rate, confidence=dp.confidence, abstain_precision=dp.abstain_precision)
    assert g.fitted_thresholds("beta") == want
    # nothing is fitted per request
    monkeypatch.setattr(CalibratedDomain, "fit_thresholds", lambda self, dp: (_ for _ in ()).throw(AssertionError("refit")))
    r = g.invoke(Q, domain="alpha")
    assert r.route == "accept" and not any("generation" in x for x in r.reasons), r.reasons
    with pytest.raises(TypeError):
        g.probes["alpha"] = cd  # type: ignore[index]


def test_other_generation_settings_than_the_calibration_go_to_review_naming_both(tiny_calibrated, tmp_path):
    lm, root = tiny_calibrated
    g = Guard.from_policy(_policy(root / "probes", tmp_path, max_new_tokens=6), lm=lm)
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review", r.reasons
    why = [x for x in r.reasons if "generation settings differ" in x]
    assert why and "max_new_tokens 4 at calibration, 6 here" in why[0] and "generation_mismatch = 'review'" in why[0]
    # a call's own length limit is checked the same way
    same = Guard.from_policy(_policy(root / "probes", tmp_path), lm=lm)
    r = same.invoke(Q, domain="alpha", max_new_tokens=5)
    assert r.route == "review" and any("max_new_tokens 4 at calibration, 5 here" in x for x in r.reasons), r.reasons
    assert same.invoke(Q, domain="alpha", max_new_tokens=4).route == "accept"


def test_generation_mismatch_warn_routes_as_scored_with_a_warning(tiny_calibrated, tmp_path):
    lm, root = tiny_calibrated
    g = Guard.from_policy(_policy(root / "probes", tmp_path, max_new_tokens=6, generation_mismatch="warn"), lm=lm)
    r = g.invoke(Q, domain="alpha")
    assert r.route == "accept", r.reasons
    assert any(x.startswith("warning: generation settings differ") and "4 at calibration, 6 here" in x
               and "generation_mismatch = 'warn'" in x for x in r.reasons), r.reasons


@pytest.mark.parametrize("how, route", [("review", "review"), ("warn", "accept")])
def test_an_old_probe_without_generation_settings_is_decided_by_the_policy_key(tiny_calibrated, tmp_path, how, route):
    lm, root = tiny_calibrated
    probes = tmp_path / "probes"
    probes.mkdir()
    shutil.copy(root / "probes" / "beta.json", probes / "beta.json")
    old = CalibratedDomain.load(root / "probes" / "alpha.json")
    meta = {k: v for k, v in old.metadata().items() if k not in ("generation", "generation_fingerprint", "max_new_tokens")}
    old.probe.save(probes / "alpha.json", metadata=meta)
    g = Guard.from_policy(_policy(probes, tmp_path, generation_mismatch=how), lm=lm)
    assert g.probes["alpha"].generation is None
    r = g.invoke(Q, domain="alpha")
    assert r.route == route and any("generation settings unknown" in x and f"generation_mismatch = '{how}'" in x
                                    for x in r.reasons), r.reasons


@pytest.mark.parametrize("key, value", [
    ("router_questions", [1, 2]),
    ("calibration_scores", {"risk": ["x"], "hallucinated": [1]}),
    ("calibration_scores", {"risk": [0.1, 0.2], "hallucinated": [1]}),
    ("prompt_mode", "chat"),
    ("ood", {"threshold": "far"}),
    ("thresholds", {"accept_below": 0.2}),
])
def test_a_malformed_record_entry_is_refused_naming_it(small_probe, tmp_path, key, value):
    meta = {**_domain(small_probe).metadata(), key: value}
    if key == "prompt_mode":
        meta.pop("generation"), meta.pop("generation_fingerprint")
    small_probe.save(tmp_path / "p.json", metadata=meta)
    with pytest.raises(ProbeError, match="thresholds" if key == "thresholds" else key):
        CalibratedDomain.load(tmp_path / "p.json")


@pytest.mark.parametrize("key, value, says", [
    ("ood", True, r"\['threshold'\] is True \(bool\), not a finite number"),
    ("ood", 10**400, r"\['threshold'\] is 1000.* \(int\), not a finite number"),
    ("knowledge_conflict", True, r"\['threshold'\] is True \(bool\), not a finite number"),
    ("knowledge_conflict", 2, r"\['threshold'\] is 2.0, not in \[0, 1\]"),
], ids=["ood-true", "ood-10**400", "conflict-true", "conflict-2"])
def test_a_threshold_the_checks_cannot_test_against_is_refused_naming_it(small_probe, tmp_path, key, value, says):
    """A probe file's knowledge-conflict threshold of true (read as 1.0) or 2 loaded, and no answer's score, a
    probability, reached it: every conflicting answer was routed as scored; an out-of-distribution threshold of
    10**400 loaded, then raised OverflowError at each answer. Written to the file or built in code, each is refused."""
    entry = {"detector": {}, "threshold": value} if key == "knowledge_conflict" else {"threshold": value, "quantile": 0.99}
    small_probe.save(tmp_path / "p.json", metadata={**_domain(small_probe).metadata(), key: entry})
    with pytest.raises(ProbeError, match=rf"metadata\['{key}'\]{says}.*restore the file or recalibrate"):
        CalibratedDomain.load(tmp_path / "p.json")
    with pytest.raises(InputError, match=rf"^{key}{says}"):
        _domain(small_probe, **{key: entry})
    with pytest.raises(InputError, match=r"\['threshold'\] is inf \(float\), not a finite number"):
        _domain(small_probe, **{key: {**entry, "threshold": float("inf")}})  # JSON cannot hold it: built in code


@pytest.mark.parametrize("name, key", [("geography", "merger"), ("general.rag", "merger"), ("geography", "ood")])
def test_a_probe_file_without_the_merger_or_ood_check_its_calibration_fitted_is_refused(tmp_path, name, key):
    """A fault-injection trial took `merger` out of geography.json (and recomputed probe_id, as anyone without a key
    can): it loaded with no word, its risk became the probe's alone (0.0842 -> 0.0345) under thresholds fitted on
    merged risks, and a route flipped from review to accept; without `ood` the out-of-distribution check was off."""
    probe, _ = HNeuronProbe.load(REFERENCE_PROBES / f"{name}.json")
    meta = json.loads((REFERENCE_PROBES / f"{name}.json").read_text())["metadata"]
    probe.save(tmp_path / "whole.json", metadata=meta)
    assert CalibratedDomain.load(tmp_path / "whole.json").merger is not None  # as shipped, it loads
    del meta[key]
    probe.save(tmp_path / "edited.json", metadata=meta)
    with pytest.raises(ProbeError, match=rf"\['{key}'\] is not the .*restore the file or recalibrate"):
        CalibratedDomain.load(tmp_path / "edited.json")


def test_an_accept_threshold_its_held_out_answers_reject_is_withdrawn_at_any_target(small_probe, tmp_path):
    """A new user's own domain: an accept threshold was certified on 16 easy answers of one family, its held-out split
    accepted 4 of 7 answers hallucinated (at confidence 0.9 at least 0.28, over the target 0.2), and nothing said so:
    the guard then accepted an invented policy's deductible under it."""
    from types import SimpleNamespace

    held = {"risk": [0.05] * 7 + [0.95] * 10, "hallucinated": [1, 1, 1, 1, 0, 0, 0] + [1] * 10}
    _domain(small_probe, held_out_scores=held).save(tmp_path / "capitals.json")
    back = CalibratedDomain.load(tmp_path / "capitals.json")
    assert back.held_out_scores == CalibrationScores(tuple(held["risk"]), tuple(held["hallucinated"]))
    for target in (0.1, 0.2):  # at 0.3 the bound, 0.28, is within it
        dp = SimpleNamespace(target_hallucination_rate=target, confidence=0.9, abstain_precision=0.9, certify="pooled")
        plain = fit_thresholds(list(back.calibration_scores.risk), list(back.calibration_scores.hallucinated),
                               target=target, confidence=0.9)
        assert plain.accept_below > 0.1  # certified on the training scores alone
        th = back.fit_thresholds(dp)
        assert th.accept_below == 0.0 and "; withdrawn: accept_below " in th.method
        assert "accepts 4 hallucinated of 7 held-out answers" in th.method and f"above the target {target}" in th.method
    # held-out answers that do not reject it leave it
    _domain(small_probe, held_out_scores={"risk": [0.05] * 7, "hallucinated": [0] * 7}).save(tmp_path / "ok.json")
    dp = SimpleNamespace(target_hallucination_rate=0.2, confidence=0.9, abstain_precision=0.9, certify="pooled")
    assert CalibratedDomain.load(tmp_path / "ok.json").fit_thresholds(dp).accept_below > 0.1


def test_an_accept_threshold_the_families_left_out_in_turn_reject_is_withdrawn(small_probe, tmp_path, monkeypatch):
    """A finance team's trial: certified at 20% / 90% on the pooled cross-family scores of four families, an accept
    threshold accepted 37% hallucinated (92 answers) on two kinds of question the calibration lacked; its own held-out
    families, each fitted without it, had accepted 7 of 26 hallucinated, and the threshold shipped. A kind of
    question whose low-risk answers are wrong, left out, is accepted by what the others certify: withdrawn."""
    from types import SimpleNamespace

    from hguard._policy_fit import withdrawn_on_new_families

    # three kinds of question right at low and middling risk; a fourth wrong at middling risk: pooled, the threshold
    # stops below the middle (20 of its 50 answers there are wrong), and certifies the 70 low-risk answers, all right
    kind = [0.05] * 20 + [0.3] * 10 + [0.9] * 20
    risk = kind * 3 + [0.05] * 10 + [0.3] * 20 + [0.9] * 10
    y = ([0] * 30 + [1] * 20) * 3 + [0] * 10 + [1] * 30
    fam = [f for f in "abc" for _ in range(50)] + ["d"] * 40
    pooled = fit_thresholds(risk, y, target=0.2, confidence=0.9)
    assert 0.05 < pooled.accept_below <= 0.3 and pooled.accepted_error_rate == 0.0
    th = withdrawn_on_new_families(pooled, risk, y, fam)
    # d left out, the others certify the middle too and accept 20 of its 30 answers there wrongly; each of a, b, c
    # left out is routed below the middle (0 of 20 wrong): 20 of 90
    assert th.accept_below == 0.0 and "20 of the 90 answers accepted are hallucinated (0.222" in th.method, th.method
    assert "withdrawn: each of the calibration's 4 families" in th.method
    # per family, d left out is certified the same way by a, b and c
    per = fit_thresholds(risk, y, target=0.2, confidence=0.9, families=fam)
    assert withdrawn_on_new_families(per, risk, y, fam, per_family=True).accept_below == 0.0
    # kinds of question that, left out in turn, stay within the target leave it; so do no or one family
    same = ["a"] * 50 + ["b"] * 50 + ["c"] * 50 + ["a"] * 40
    kept = withdrawn_on_new_families(pooled, risk, y, [f if i < 150 else "abc"[i % 3] for i, f in enumerate(same)])
    assert kept is pooled
    assert withdrawn_on_new_families(pooled, risk, y, None) is pooled
    assert withdrawn_on_new_families(pooled, risk, y, ["a"] * 190) is pooled
    # a user trial: d's rows without meta.family fell back to their fact groups, which the check left out (a threshold
    # the report said was not met stood); their answers are held-out-fold answers like any other: withdrawn
    facts = fam[:150] + [f"fact:{i % 4}" for i in range(40)]
    th = withdrawn_on_new_families(pooled, risk, y, facts)
    assert th.accept_below == 0.0 and "7 families (3 meta.family, 4 fallback fact groups of rows without one)" in th.method
    # hundreds of fallback groups are held out in folds (as the probes held them out), not refitted one by one
    from hguard import _policy_fit

    fits = []
    real_fit = _policy_fit.fit_thresholds
    monkeypatch.setattr(_policy_fit, "fit_thresholds", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    withdrawn_on_new_families(pooled, risk, y, [f"fact:{i}" for i in range(190)])
    assert len(fits) == _policy_fit.MAX_FOLDS
    monkeypatch.undo()
    # a review: a family with no training answer (all in the held-out split) is routed by the threshold itself, which
    # was fitted without it; it was skipped, and its evidence with it
    mixed = [f if i < 150 else "abc"[i % 3] for i, f in enumerate(same)]
    unseen = ([0.05] * 40, [1] * 30 + [0] * 10, ["e"] * 40, None)
    assert withdrawn_on_new_families(pooled, risk, y, mixed, left_out=(risk + unseen[0], y + unseen[1], mixed + unseen[2],
                                                                        None)).accept_below == 0.0
    # the guard withdraws it at load, at the policy's target, from the file's scores
    _domain(small_probe, calibration_scores={"risk": risk, "hallucinated": y, "family": fam}).save(tmp_path / "f.json")
    dp = SimpleNamespace(target_hallucination_rate=0.2, confidence=0.9, abstain_precision=0.9, certify="pooled")
    got = CalibratedDomain.load(tmp_path / "f.json").fit_thresholds(dp)
    assert got.accept_below == 0.0 and "withdrawn: each of the calibration's 4 families" in got.method


def test_a_threshold_an_older_calibration_certified_in_sample_accepts_nothing_and_says_so(small_probe, tmp_path):
    """An upgrading team's trial: a probe file of an older release (its merger fitted on the very merged risks its
    thresholds were certified on) accepted a hallucinated answer under accept_below 0.24, where recalibrating the
    same rows certified nothing, and nothing said so."""
    from types import SimpleNamespace

    old = ("cross-family out-of-fold merged risks of the training split: each answer's probe score comes from a probe "
           "fitted without its family (leave-one-family-out), merged by the shipped merger, which was fitted on those "
           "same cross-family scores")
    dp = SimpleNamespace(target_hallucination_rate=0.2, confidence=0.9, abstain_precision=0.9, certify="pooled")
    now = _domain(small_probe)
    assert now.in_sample_thresholds is None and now.fit_thresholds(dp).accept_below > 0.1
    _domain(small_probe, thresholds_fitted_on=old).save(tmp_path / "old.json")
    back = CalibratedDomain.load(tmp_path / "old.json")
    for th in (back.fit_thresholds(dp), back.fit_thresholds(None)):  # the policy's target, or the file's own
        assert th.accept_below == 0.0 and th.abstain_above == now.fit_thresholds(dp).abstain_above
        assert "accepts nothing until the domain is recalibrated" in th.method
    assert "in-sample, no guarantee" in back.in_sample_thresholds


def test_the_guard_says_at_start_which_domains_an_older_calibration_leaves_uncertified(tiny_calibrated, tmp_path):
    import shutil

    lm, root = tiny_calibrated
    probes = tmp_path / "probes"
    shutil.copytree(root / "probes", probes)
    from dataclasses import replace

    beta = CalibratedDomain.load(probes / "beta.json")  # as an older release wrote it (saved again: its own id)
    replace(beta, thresholds_fitted_on="... merged by the shipped merger, which was fitted on those same cross-family "
            "scores", held_out_scores=None).save(probes / "beta.json")
    with pytest.warns(UserWarning) as said:  # a target its scores certify nothing at: nothing changes, nothing said
        Guard.from_policy(_policy(probes, tmp_path), lm=lm)
    assert not [w for w in said if "calibrated by an older release" in str(w.message)]
    lenient = _policy(probes, tmp_path)
    lenient = lenient.model_copy(update={"domains": {**lenient.domains, "beta": lenient.domains["beta"].model_copy(
        update={"target_hallucination_rate": 0.9, "confidence": 0.5})}})
    assert CalibratedDomain.load(probes / "beta.json")._fit_thresholds(lenient.domain("beta")).accept_below > 0
    with pytest.warns(UserWarning) as said:
        g = Guard.from_policy(lenient, lm=lm)
    old = [str(w.message) for w in said if "calibrated by an older release" in str(w.message)]
    assert len(old) == 1 and old[0].startswith("domain 'beta': calibrated by an older release: its accept threshold")
    assert "it carries no held-out answers" in old[0]
    # the tiny model is built in memory: the calibration named is Python's, on the guard's own model and settings
    assert "recalibrate it with its data (`from hguard.calibrate.pipeline import calibrate; calibrate(['FILE.jsonl'], " \
           "'DIR', domains=['beta'], lm=guard.lm, system_prompt=guard.settings.system_prompt" in old[0], old[0]
    assert g.fitted_thresholds("beta").accept_below == 0.0


def test_the_held_out_check_counts_only_the_answers_the_guard_accepts(small_probe, tmp_path):
    """An evaluation engineer's trial: the figures of accepted answers counted answers under accept_below that the
    out-of-distribution check sends to review; the held-out check that withdraws an accept threshold did too. Here
    the 4 hallucinated answers under it lie out of distribution: the guard accepts only the 3 right ones."""
    from types import SimpleNamespace

    held = {"risk": [0.05] * 7 + [0.95] * 10, "hallucinated": [1, 1, 1, 1, 0, 0, 0] + [1] * 10,
            "out_of_distribution": [1, 1, 1, 1, 0, 0, 0] + [0] * 10}
    _domain(small_probe, held_out_scores=held).save(tmp_path / "far.json")
    back = CalibratedDomain.load(tmp_path / "far.json")
    assert back.held_out_scores is not None and back.held_out_scores.to_dict() == held
    dp = SimpleNamespace(target_hallucination_rate=0.2, confidence=0.9, abstain_precision=0.9, certify="pooled",
                         out_of_distribution="review")
    assert back.fit_thresholds(dp).accept_below > 0.1
    # a policy that lets the risk route them accepts them: they count, and reject it
    warn = back.fit_thresholds(SimpleNamespace(**{**vars(dp), "out_of_distribution": "warn"}))
    assert warn.accept_below == 0.0 and "accepts 4 hallucinated of 7 held-out answers" in warn.method
    with pytest.raises(ValueError, match="'out_of_distribution' list of 0/1 as long as 'risk'"):
        CalibrationScores.from_dict({**held, "out_of_distribution": [1, 0]})


def test_a_calibration_records_its_held_out_scores_and_withdraws_what_they_reject(tiny_calibrated):
    """The pipeline writes the held-out split's merged risks into each probe file (the report's n scored), and the
    thresholds it stores and reports are the ones those scores leave."""
    _, root = tiny_calibrated
    report = json.loads((root / "probes" / "report.json").read_text())
    for domain in ("alpha", "beta"):
        cd = CalibratedDomain.load(root / "probes" / f"{domain}.json")
        m = report["domains"][domain]
        assert len(cd.held_out_scores.risk) == m["n_scored"] and sum(cd.held_out_scores.hallucinated) == m["hallucinated"]
        assert "held_out_scores" not in m
        withdrawn = m["at_target"].get("withdrawn")
        assert (cd.thresholds.accept_below == 0.0 and withdrawn in cd.thresholds.method) if withdrawn else True


def test_the_report_and_the_command_line_say_a_withdrawn_threshold_and_why():
    from hguard.calibrate.report import _certified
    from hguard.cli import _calibration_summary

    why = "accept_below 0.328 accepts 4 hallucinated of 7 held-out answers (...)"
    m = {"at_target": {"target": 0.2, "confidence": 0.9, "accept_below": 0.328, "withdrawn": why, "coverage": 0.29},
         "thresholds_method": "Learn-then-Test; withdrawn: " + why, "n": 24, "n_scored": 20, "correct": 10,
         "hallucinated": 10, "refusals": 4, "auroc": {}}
    assert "**no accept threshold**: 0.328" in _certified("insurance", m) and why in _certified("insurance", m)
    said = "\n".join(_calibration_summary(m))
    assert "no accept threshold: accept below 0.328" in said and "is withdrawn: " + why in said and "certified at target 0.2 with confidence 0.9 (coverage" not in said


def test_a_per_family_certificate_reads_the_families_the_probe_file_records(small_probe, tmp_path):
    from hguard.policy import DomainPolicy

    # family "b" is wrong at low risk: the pool certifies an accept threshold, the per-family test does not
    risk = [0.1] * 80 + [0.1] * 20 + [0.9] * 60
    y = [0] * 78 + [1] * 2 + [1] * 12 + [0] * 8 + [1] * 60
    fam = ["a"] * 80 + ["b"] * 20 + ["c"] * 60
    saved = _domain(small_probe, calibration_scores={"risk": risk, "hallucinated": y, "family": fam}).save(tmp_path / "d.json")
    back = CalibratedDomain.load(tmp_path / "d.json")
    assert back.calibration_scores.family == tuple(fam) and saved.calibration_scores.family == tuple(fam)
    pooled = back.fit_thresholds(DomainPolicy(target_hallucination_rate=0.2, confidence=0.9))
    per = back.fit_thresholds(DomainPolicy(target_hallucination_rate=0.2, confidence=0.9, certify="per_family"))
    assert per.accept_below == 0.0 and "intersection-union" in per.method
    # pooled, the same family left out is accepted by what the others certify (12 of its 20 wrong): withdrawn too
    assert fit_thresholds(risk, y, target=0.2, confidence=0.9).accept_below > 0.1
    assert pooled.accept_below == 0.0 and "withdrawn: each of the calibration's 3 families" in pooled.method
    # scores without families (files written before): a per-family certificate accepts nothing, and says why
    old = _domain(small_probe)
    th = old.fit_thresholds(DomainPolicy(target_hallucination_rate=0.2, confidence=0.9, certify="per_family"))
    assert th.accept_below == 0.0 and "records no family" in th.method
    assert old.fit_thresholds(DomainPolicy(target_hallucination_rate=0.2, confidence=0.9)).accept_below > 0.1
    with pytest.raises(ValueError, match="'family' list of strings as long as 'risk'"):
        _domain(small_probe, calibration_scores={"risk": risk, "hallucinated": y, "family": fam[:-1]})


def test_a_probe_file_whose_abstain_threshold_an_older_release_raised_to_accept_below_loads_with_the_certified_one(
        small_probe, tmp_path):
    """An auditor's trial: the stored abstain threshold (raised to an accept threshold later withdrawn) failed its own
    certificate, 0.898 < 0.9, and the guard routed by it."""
    r = np.linspace(0, 0.99, 100)
    y = np.zeros(100, dtype=int)
    y[[40, 50, 60, 70]] = 1
    y[75:] = 1
    fitted = fit_thresholds(r, y, target=0.25, confidence=0.8, abstain_precision=0.9)
    old = replace(fitted, abstain_above=fitted.accept_below, certified_abstain=None,
                  method="learn-then-test; abstain_above raised to accept_below").accepting_nothing("withdrawn: held-out")
    _domain(small_probe, thresholds=old, calibration_scores={"risk": r.tolist(), "hallucinated": y.tolist()}).save(
        tmp_path / "capitals.json")
    back = CalibratedDomain.load(tmp_path / "capitals.json")
    assert back.fit_thresholds(None).abstain_above == 0.75 and back.fit_thresholds(None).abstained_precision_lcb >= 0.9


def test_the_new_family_check_deals_many_fallback_groups_into_folds_in_linear_time(monkeypatch):
    """A review: each fold's other answers were found by asking, of every answer, whether its family was in the
    fold's list of names, so a guard's start-up was quadratic in the fallback groups of rows without meta.family
    (20,000 rows: 4.1 s, where the check had taken 0.02 s). With the threshold fits themselves stubbed out, 50,000
    fallback groups take half a minute read that way, well under a second read through an index of folds."""
    import time
    from types import SimpleNamespace

    from hguard import _policy_fit

    seen = []
    monkeypatch.setattr(_policy_fit, "fit_thresholds",
                        lambda risk, *a, **k: seen.append(len(risk)) or SimpleNamespace(accept_below=0.5))
    n = 50_000
    started = time.perf_counter()
    out = _policy_fit.accept_below_without_family([0.1] * n, [0] * n, [f"id:row{i}" for i in range(n)],
                                                  target=0.2, confidence=0.9)
    assert time.perf_counter() - started < 5
    assert len(seen) == _policy_fit.MAX_FOLDS and sum(seen) == n * (_policy_fit.MAX_FOLDS - 1)
    assert len(out) == n and set(out.values()) == {0.5}


def test_the_new_family_check_holds_each_kind_of_question_out_alone_however_many_there_are():
    """A review: with more than 10 kinds of question (meta.family), the check dealt them into 10 folds by hash and
    routed two of them by a threshold fitted without both, so its decisions flipped both ways against the check that
    held each out alone. Eleven kinds of question, no fallback group: a threshold that, each kind left out in turn,
    accepts 26 of 163 hallucinated against a target of 0.15 was kept, two kinds held out together. Each kind is held
    out alone again; only fallback groups of rows without meta.family are dealt into folds."""
    import random

    from hguard._policy_fit import MAX_FOLDS, accept_below_without_family, held_out_folds, withdrawn_on_new_families

    rnd = random.Random(42)
    nf = rnd.choice([11, 12, 15, 20, 30])
    risk, y, fam = [], [], []
    for k in range(nf):
        shift, base = rnd.gauss(0, 0.3), rnd.uniform(0.1, 0.4)
        for _ in range(rnd.randint(15, 60)):
            h = rnd.random() < base
            risk.append(min(1, max(0, rnd.gauss(0.65 if h else 0.35, 0.15) + shift)))
            y.append(int(h))
            fam.append(f"kind{k}")
    t = rnd.choice([0.15, 0.2, 0.25])
    assert nf == 11 and t == 0.15
    th = fit_thresholds(risk, y, target=t, confidence=0.9)
    assert th.accept_below
    out = withdrawn_on_new_families(th, risk, y, fam)
    assert out.accept_below == 0.0 and "26 of the 163 answers accepted are hallucinated (0.160" in out.method, out.method
    # each kind routed by the threshold fitted on all the others
    without = accept_below_without_family(risk, y, fam, target=t, confidence=0.9)
    for name in ("kind2", "kind8"):
        rest = [i for i, f in enumerate(fam) if f != name]
        assert without[name] == fit_thresholds([risk[i] for i in rest], [y[i] for i in rest], target=t,
                                               confidence=0.9).accept_below
    # thirty kinds alone, and 40 fallback groups dealt into MAX_FOLDS folds of their own
    kinds = [f"kind{k}" for k in range(30)]
    facts = [f"fact:{i}" for i in range(40)] + [f"id:{i}" for i in range(5)]
    folds = held_out_folds(kinds + facts + kinds)
    assert [f for f in folds if not f[0].startswith(("fact:", "id:"))] == [[k] for k in sorted(kinds)]
    dealt = [f for f in folds if f[0].startswith(("fact:", "id:"))]
    assert len(dealt) == MAX_FOLDS and sorted(sum(dealt, [])) == sorted(facts)
    assert all(all(n.startswith(("fact:", "id:")) for n in f) for f in dealt)


def test_fallback_groups_the_probe_separates_cannot_outvote_the_kinds_of_question_the_threshold_fails_on():
    """A review: three kinds of question (meta.family, 30 answers each) whose hallucinated answers score like right
    ones, and 600 rows without meta.family that the probe separates well. Pooled over all 603 families the accepted
    answers read 0.176 hallucinated, within 0.2, and the threshold was kept; the three kinds alone accepted 45 of 90
    hallucinated (the check before fallback groups counted withdrew it). Both figures are read, and said."""
    import random

    from hguard._policy_fit import new_family_figure, withdrawn_on_new_families

    rnd = random.Random(0)
    risk, y, fam = [], [], []
    for i in range(600):  # one fallback fact group each, well separated: 120 hallucinated
        h = i % 5 == 0
        risk.append(rnd.uniform(0.6, 1.0) if h else rnd.uniform(0.0, 0.5))
        y.append(int(h))
        fam.append(f"fact:q{i}")
    for f in "abc":  # hallucinated answers score like right ones
        for i in range(30):
            risk.append(rnd.uniform(0.0, 0.5))
            y.append(int(i % 2 == 0))
            fam.append(f)
    th = fit_thresholds(risk, y, target=0.2, confidence=0.9)
    assert th.accept_below > 0.5
    fig = new_family_figure(th, risk, y, fam)
    assert fig["n_families"] == 603 and fig["n_fallback_groups"] == 600 and fig["rate"] < 0.2
    assert fig["meta_family"] == {"n_families": 3, "n_accepted": 90, "accepted_hallucinated": 45, "rate": 0.5}
    out = withdrawn_on_new_families(th, risk, y, fam)
    assert out.accept_below == 0.0, out.method
    k, n = fig["accepted_hallucinated"], fig["n_accepted"]
    assert (f"603 families (3 meta.family, 600 fallback fact groups of rows without one) routed by the accept threshold "
            f"fitted without it, {k} of the {n} answers accepted are hallucinated ({k / n:.3f}); of its 3 meta.family "
            "kinds of question alone, 45 of 90 answers accepted are hallucinated (0.500, above the target 0.2): it "
            "does not hold") in out.method
    # kinds of question the threshold holds on, beside the same fallback groups: kept
    ok = [r if f.startswith("fact:") else (0.9 if h else 0.1) for r, h, f in zip(risk, y, fam)]
    th = fit_thresholds(ok, y, target=0.2, confidence=0.9)
    assert new_family_figure(th, ok, y, fam)["meta_family"]["rate"] == 0.0
    assert withdrawn_on_new_families(th, ok, y, fam) is th
    # one kind of question beside fallback groups: no figure of the kinds alone, as the check had none
    one = ["a" if not f.startswith("fact:") else f for f in fam]
    assert new_family_figure(th, ok, y, one)["meta_family"] is None
    # no fallback group: the figure itself, said once as before
    assert new_family_figure(th, ok[600:], y[600:], fam[600:])["meta_family"] is None


def test_the_guards_refit_reads_the_new_family_figure_once_for_its_check_and_its_warnings(small_probe, monkeypatch):
    """A review: with 400 kinds of question the guard's refit computed the new-family figure for its check (7.5 s),
    then again, the same, for its start-up warnings (7.2 s). Computed once for the same thresholds and policy; another
    target, confidence or certificate computes its own."""
    import hguard._policy_fit as pf
    from hguard.policy import DomainPolicy

    calls = []
    real = pf.new_family_figure
    monkeypatch.setattr(pf, "new_family_figure", lambda *a, **k: calls.append(1) or real(*a, **k))
    y = ([0] * 30 + [1] * 20) * 4  # 40% hallucinated in each of four families: accept_below 1.0 at a target of 0.5
    d = _domain(small_probe, thresholds=fit_thresholds([0.5] * 200, y, target=0.2, confidence=0.9),
                calibration_scores={"risk": [0.5] * 200, "hallucinated": y,
                                    "family": [f for f in "abcd" for _ in range(50)]})
    dp = DomainPolicy(target_hallucination_rate=0.5, confidence=0.9)
    th = d.fit_thresholds(dp)
    assert th.accept_below == 1.0 and th.refitted_from == {"target": 0.2, "confidence": 0.9} and len(calls) == 1
    (said,) = d.refit_warnings(dp, th, "domain 'x'")
    assert "which accepts every answer" in said and len(calls) == 1
    for other in (DomainPolicy(target_hallucination_rate=0.6, confidence=0.9),
                  DomainPolicy(target_hallucination_rate=0.5, confidence=0.85),
                  DomainPolicy(target_hallucination_rate=0.5, confidence=0.85, certify="per_family")):
        was = len(calls)
        assert d.refit_warnings(other, d.fit_thresholds(other), "domain 'x'") and len(calls) == was + 1
    assert replace(d).fit_thresholds(dp) == th and len(calls) == 5  # a replaced record computes its own
