"""The monitor: its live bounds (sequential and one-look), the seeded spot-check selection, the drift test, the tightening state
machine, the monitor run over an audit log and a queue, bad input, and the guard's use of all of it."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from hguard.audit import AuditLog, verify
from hguard.errors import AuditIntegrityError, InputError, PolicyError
from hguard._stats import clopper_pearson_interval, clopper_pearson_lower, sequential_bounds
from hguard.monitor import (
    breached,
    DomainState,
    MonitorState,
    check_selection,
    clopper_pearson_upper,
    drift_test,
    lift,
    min_checks,
    policy_id,
    replay,
    run_monitor,
    summary,
    selection_u,
    tightened_thresholds,
    transition,
    write_html,
)
from hguard.policy import Policy, Thresholds
from hguard.review.queue import AlreadyDecided, ReviewQueue, VerdictRefused


# ------------------------------------------------------------------------------------------ statistics


@pytest.mark.parametrize(
    "k, n, conf, expected",
    [
        (0, 10, 0.95, 1 - 0.05 ** (1 / 10)),  # closed form for k = 0: 0.2589
        (0, 29, 0.95, 1 - 0.05 ** (1 / 29)),
        (1, 10, 0.95, 0.3941633),  # one-sided 95% (= upper end of the two-sided 90% interval)
        (2, 20, 0.975, 0.3169827),  # two-sided 95% exact interval for 2/20 is [0.0123, 0.3170]
        (10, 10, 0.95, 1.0),
        (0, 0, 0.9, 1.0),
    ],
)
def test_clopper_pearson_upper_matches_known_values(k, n, conf, expected):
    assert clopper_pearson_upper(k, n, conf) == pytest.approx(expected, abs=1e-6)


def test_clopper_pearson_upper_is_the_binomial_tail_inversion():
    from scipy.stats import binom

    for k, n in [(1, 10), (3, 40), (7, 25)]:
        u = clopper_pearson_upper(k, n, 0.9)
        assert binom.cdf(k, n, u) == pytest.approx(0.1, abs=1e-9)


def test_bad_statistics_input_is_refused():
    with pytest.raises(InputError, match="confidence"):
        clopper_pearson_upper(1, 10, 1.0)
    with pytest.raises(InputError, match="cannot exceed"):
        clopper_pearson_upper(11, 10, 0.9)
    with pytest.raises(InputError, match="non-negative"):
        clopper_pearson_upper(-1, 10, 0.9)
    with pytest.raises(InputError, match="target"):
        min_checks(0.0, 0.9)


def test_min_checks_is_where_a_clean_record_reaches_the_target():
    n = min_checks(0.2, 0.9)
    assert clopper_pearson_upper(0, n, 0.9) <= 0.2 < clopper_pearson_upper(0, n - 1, 0.9)
    m = min_checks(0.2, 0.9, "sequential")  # more checks, since the bound holds at every look
    assert sequential_bounds(0, m, 0.9)[1] <= 0.2 < sequential_bounds(0, m - 1, 0.9)[1] and m > n
    # a clean record's evidence against the target is 1 / ((n + 1) (1 - target)^n): it reaches 1 / 0.1 at m
    assert (m + 1) * 0.8**m <= 0.1 < m * 0.8 ** (m - 1)


def test_sequential_bounds_are_the_mixture_evidence_level_and_wider_than_one_look():
    import math

    from scipy.special import betaln

    for k, n in ((0, 1), (3, 20), (12, 30), (30, 100), (100, 100)):
        lo, hi = sequential_bounds(k, n, 0.9)
        assert lo <= k / n <= hi
        assert lo <= clopper_pearson_lower(k, n, 0.9) and hi >= clopper_pearson_upper(k, n, 0.9)
        for p in (lo, hi):  # at a bound strictly inside (0, 1), the evidence against it is exactly 1 / 0.1
            if 0 < p < 1:
                log_evidence = betaln(k + 1, n - k + 1) - k * math.log(p) - (n - k) * math.log1p(-p)
                assert log_evidence == pytest.approx(math.log(10), abs=1e-6)
    assert sequential_bounds(0, 0, 0.9) == (0.0, 1.0)
    assert sequential_bounds(0, 1, 0.9)[1] == pytest.approx(0.95)  # 0.5 / (1 - p) = 10
    with pytest.raises(InputError, match="cannot exceed"):
        sequential_bounds(3, 2, 0.9)


def test_sequential_bounds_hold_at_every_look_where_one_look_bounds_do_not():
    """Run after every reviewed spot-check, on a domain exactly at its target: the sequential lower-bound rule
    tightens within 300 checks in at most 1 - confidence of runs; the one-look bounds far more often."""
    rng = random.Random(7)
    runs, looks, target = 400, 300, 0.2
    fired = {"sequential": 0, "per_run": 0}
    for _ in range(runs):
        verdicts = [rng.random() < target for _ in range(looks)]
        for kind in fired:
            k = 0
            for n, bad in enumerate(verdicts, 1):
                k += bad
                if k / n > target and breached(k, n, target, 0.9, "lower_bound", kind):
                    fired[kind] += 1
                    break
    assert fired["sequential"] / runs <= 0.1  # the confidence holds across all 300 looks
    assert fired["per_run"] / runs > 0.2  # one-look bounds, looked at 300 times, do not


def test_selection_is_reproducible_keyed_and_uniform():
    ids = [f"id-{i}" for i in range(4000)]
    us = [selection_u("seed-a", i) for i in ids]
    assert us == [selection_u("seed-a", i) for i in ids]
    assert us != [selection_u("seed-b", i) for i in ids]
    assert all(0 <= u < 1 for u in us)
    share = sum(u < 0.1 for u in us) / len(us)
    assert 0.085 < share < 0.115  # binomial sd 0.0047
    with pytest.raises(InputError, match="seed"):
        selection_u("", "x")


def test_drift_test_flags_a_shift_and_not_the_same_distribution():
    rng = random.Random(0)
    ref = [rng.betavariate(2, 5) for _ in range(400)]
    same = [rng.betavariate(2, 5) for _ in range(200)]
    shifted = [rng.betavariate(5, 2) for _ in range(200)]
    assert drift_test(ref, same, 0.001)["drift"] is False
    t = drift_test(ref, shifted, 0.001)
    assert t["drift"] is True and t["p_value"] < 1e-10 and t["n_live"] == 200
    assert drift_test(ref, shifted[:5], 0.001)["drift"] is None  # too few to test
    with pytest.raises(InputError, match="drift_p_value"):
        drift_test(ref, same, 0.0)


# ------------------------------------------------------------------------------------------ state machine


def test_tightening_state_machine():
    s = DomainState()
    s = transition(s, {"kind": "monitor_tighten", "accept_below": 0.2, "action": "stricter", "id": "a", "reason": "x"})
    assert s.state == "tightened" and s.accept_below == 0.2 and s.record_id == "a"
    assert transition(s, {"kind": "monitor_tighten", "accept_below": 0.3, "id": "b"}) is s  # looser: ignored
    s2 = transition(s, {"kind": "monitor_tighten", "accept_below": 0.0, "action": "review", "id": "c"})
    assert s2.accept_below == 0.0 and s2.record_id == "c"
    s3 = transition(s2, {"kind": "monitor_lift", "id": "d", "reason": "checked"})
    assert s3.state == "normal" and s3.accept_below is None
    assert transition(s3, {"kind": "monitor_lift", "id": "e"}) is s3
    assert transition(s3, {"kind": "decision"}) is s3
    assert replay([{"kind": "monitor_tighten", "domain": "g", "accept_below": 0.1, "id": "x"}])["g"].state == "tightened"
    # the latest lift that ended a tightening, through a later tightening and a rotated log's carried states
    lifts: dict[str, str] = {}
    replay([{"kind": "monitor_tighten", "domain": "g", "accept_below": 0.1, "id": "x", "time": "T1"},
            {"kind": "monitor_lift", "domain": "g", "id": "y", "time": "T2"},
            {"kind": "monitor_lift", "domain": "g", "id": "z", "time": "T3"},  # nothing tightened: no lift
            {"kind": "monitor_tighten", "domain": "g", "accept_below": 0.0, "id": "w", "time": "T4"},
            {"kind": "log_continued", "monitor_states": {"h": {"state": "normal", "since": "T0", "record_id": "v"}}}],
           lifts=lifts)
    assert lifts == {"g": "T2", "h": "T0"}


def test_tightened_thresholds_lower_accept_and_say_why():
    t = Thresholds(0.4, 0.9, 0.2, 0.9, 100, 0.3, 0.1, 0.18, "fitted")
    same, why = tightened_thresholds(DomainState(), t)
    assert same is t and why is None
    new, why = tightened_thresholds(DomainState("tightened", "stricter", 0.1, "T", "r", None, "bound"), t)
    assert new.accept_below == 0.1 and new.abstain_above == 0.9 and new.accepted_error_ucb is None and "bound" in why
    new, why = tightened_thresholds(DomainState("tightened", "review", 0.0, "T", "r", None, "drift"), t)
    assert new.accept_below == 0.0 and "accept nothing: every answer not abstained on goes to review" in why
    # a hand-set accept_below's measurement is of that number: not carried beside the tightened one in force
    from dataclasses import replace

    measured = {"accept_below": 0.4, "n": 100, "accepted": 30, "hallucinated": 9, "rate": 0.3, "upper_bound": 0.4,
                "confidence": 0.9, "target": 0.2}
    new, _ = tightened_thresholds(DomainState("tightened", "review", 0.0, "T", "r", None, "drift"),
                                  replace(t, hand_set_measured=measured))
    assert new.hand_set_measured is None and "hand_set_measured" not in new.to_dict()


def test_unreadable_state_file_fails_closed(tmp_path):
    p = tmp_path / "state.json"
    ms = MonitorState(p)
    assert ms.get("geo") is None  # no file: nothing tightened
    p.write_text("{not json")
    st = ms.get("geo")
    assert st.state == "tightened" and st.accept_below == 0.0 and "unreadable" in st.reason
    why = tightened_thresholds(st, Thresholds(0.4, 0.9, 0.2, 0.9, 100, 0.3, 0.1, 0.18, "fitted"))[1]
    assert why.startswith("domain held for review, accepting nothing, while its monitor state cannot be checked: monitor state") and "None" not in why
    # a chain that cannot be replayed cannot say a domain is not tightened
    p.write_text('{"format": "hguard-monitor-state", "domains": {}}')
    (tmp_path / "audit-as-folder").mkdir()
    st = MonitorState(p, tmp_path / "audit-as-folder").get("geo")
    assert st.state == "tightened" and st.accept_below == 0.0 and "cannot be replayed" in st.reason
    assert MonitorState(p, tmp_path / "no-log-yet.jsonl").get("geo") is None  # nothing written: nothing tightened


@pytest.mark.parametrize("entry", [
    {"state": "tightened", "accept_below": float("nan")},  # json reads NaN: min(nan, 0.99) is nan, which crashed
    {"state": "tightened", "accept_below": 1.5},
    {"state": "tightened", "accept_below": None},
    {"state": "bogus"},
    {"state": "tightened", "accept_below": 0.1, "reason": ["not", "text"]},
    {"state": "tightened", "accept_below": 10**400},  # too large for a float: it raised OverflowError
])
def test_a_state_file_entry_that_is_no_state_fails_closed_naming_the_file(tmp_path, entry):
    """A fault-injection trial: a NaN threshold in the state file crashed every request of the domain after the model
    had answered, with no record (an InputError blaming the caller), and the monitor then carried it into the log."""
    import json

    p = tmp_path / "state.json"
    p.write_text(json.dumps({"format": "hguard-monitor-state", "domains": {"geo": entry}}))
    st = MonitorState(p).get("geo")
    assert st.state == "tightened" and st.accept_below == 0.0 and f"monitor state {p} is unreadable" in st.reason
    t = Thresholds(0.4, 0.9, 0.2, 0.9, 100, 0.3, 0.1, 0.18, "fitted")
    assert tightened_thresholds(st, t)[0].accept_below == 0.0


def test_a_state_that_cannot_be_checked_accepts_nothing_as_its_reason_says():
    """A state file's tightened entry with no record behind it: the reason said "accepting nothing", yet the file's
    own 0.5 was applied and an answer at risk 0.08 accepted (a fault-injection trial)."""
    t = Thresholds(0.9, 0.95, 0.2, 0.9, 100, 0.3, 0.1, 0.18, "fitted")
    new, why = tightened_thresholds(DomainState("tightened", None, 0.5, None, None, None, "forged"), t)
    assert new.accept_below == 0.0 and why.startswith("domain held for review, accepting nothing")


def test_a_tightening_record_without_a_threshold_tightens_to_nothing_instead_of_stopping_every_replay():
    """A monitor_tighten record whose accept_below was written null (a NaN) stopped every replay with a TypeError: the
    guard held every domain, and the monitor, its lift and rotation all failed, for good."""
    states = replay([{"kind": "monitor_tighten", "domain": "g", "accept_below": None, "id": "x", "reason": "carried"},
                     {"kind": "monitor_tighten", "domain": "h", "accept_below": "0.2", "id": "y"}])
    assert {d: (s.state, s.accept_below) for d, s in states.items()} == {"g": ("tightened", 0.0), "h": ("tightened", 0.0)}
    assert "its accept_below, None, is no threshold" in states["g"].reason
    assert transition(states["g"], {"kind": "monitor_lift", "id": "z"}).state == "normal"


# ------------------------------------------------------------------------------------------ policy keys


def _pol(tmp_path, **dom):
    return Policy.model_validate(
        {
            "version": 1,
            "audit": {"path": str(tmp_path / "audit.jsonl")},
            "review": {"queue": str(tmp_path / "queue.sqlite3")},
            "monitor": {"seed": "s", "state": str(tmp_path / "state.json")},
            "domains": {"geo": {"target_hallucination_rate": 0.2, "confidence": 0.9, **dom}},
        }
    )


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("spot_check_rate", 1.5, "spot_check_rate"),
        ("spot_check_rate", -0.1, "spot_check_rate"),
        ("confidence", 1.0, "confidence"),
        ("confidence", 0.0, "confidence"),
        ("on_breach", "ignore", "on_breach"),
        ("drift_window", 5, "drift_window"),
        ("live_bounds", "always", "live_bounds"),
    ],
)
def test_bad_monitor_keys_are_refused_naming_the_key(tmp_path, key, value, words):
    from hguard.policy import _validate

    data = json.loads(_pol(tmp_path).model_dump_json())
    data["domains"]["geo"][key] = value
    with pytest.raises(PolicyError, match=f"domains.geo.{words}"):
        _validate(data, source="test", base_dir=None)


# ------------------------------------------------------------------------------------------ a monitor run


def _deploy(tmp_path, policy, n, halluc_rate, seed=0, queue=None, log=None, guarantee=False, accept_below=None,
            asked="q"):
    """Write n accepted decisions (spot-checks selected as the guard does) and review every spot-check;
    ``guarantee``: each records its domain's guarantee, as the guard's decisions do; ``accept_below``: the accept
    threshold each records it was accepted under; ``asked``: the question of decision ``i`` (``asked.format(i=i)``;
    by default one question, "q", asked n times)."""
    from hguard.monitor import SPOT, guarantee_of, spot_check_decision

    rng = random.Random(seed)
    log = log or AuditLog(policy.audit.path)
    queue = queue or ReviewQueue(policy.review.queue, audit=log)
    pid = policy_id(policy)
    for i in range(n):
        rec = log.append({"request_id": f"r{seed}-{i}", "policy_id": pid, "domain": "geo", "route": "accept",
                          "risk": rng.random() * 0.3, "signals": {}, "question": asked.format(i=i), "answer": "a",
                          **({"guarantee": guarantee_of(policy, "geo")} if guarantee else {}),
                          **({"thresholds": {"accept_below": accept_below}} if accept_below is not None else {})},
                         kind="decision")  # fmt: skip
        spot = spot_check_decision(policy, "geo", rec.id, 10**9)
        if spot:
            log.append(spot, kind=SPOT)
            queue.enqueue({"audit_id": rec.id, "question": asked.format(i=i), "answer": "a", "domain": "geo",
                           "spot_check": True})
            bad = rng.random() < halluc_rate
            queue.decide(rec.id, verdict="hallucinated" if bad else "correct", reviewer="tester")
    return log, queue


def test_a_domain_not_in_breach_whose_upper_bound_passes_the_target_says_so(tmp_path):
    """An auditor's geography: 3 of 10 spot-checks hallucinated, bounds 0.116-0.552 at 0.9, target 0.2, reported
    "state=normal", "breach": false and nothing else, read as "within target"."""
    policy = _pol(tmp_path, spot_check_rate=0.5, breach_rule="lower_bound")
    _deploy(tmp_path, policy, 40, halluc_rate=0.3, seed=2)
    rep = run_monitor(policy)
    e = rep["domains"]["geo"]
    sc = e["spot_checks"]
    assert not e["breach"] and sc["upper_bound"] > 0.2 and sc["within_target_shown"] is False
    assert f"not shown within target: the upper bound {sc['upper_bound']:.3f} passes the target 0.2" in summary(rep)
    (check,) = [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_check"]
    assert (check["target"], check["confidence"], check["selection_mismatches"]) == (0.2, 0.9, 0)


def test_a_record_naming_several_decisions_leaves_the_monitors_figures_as_they_were(tmp_path):
    """A review: an adapter's query record naming the decisions a LlamaIndex accumulate response joined (a list, as
    the LangChain handler's llm_call record of a run giving several answers) stopped the monitor (TypeError:
    unhashable type: 'list'), so no estimate, drift alarm or tightening until the log was rotated."""
    policy = _pol(tmp_path, spot_check_rate=0.5, breach_rule="lower_bound")
    log, _ = _deploy(tmp_path, policy, 40, halluc_rate=0.3, seed=2)
    before = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    ids = [r["id"] for r in log if r["kind"] == "decision"][:3]
    log.append({"decision_audit_id": ids, "status": "ok"}, kind="query")
    after = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    assert after == before and after["reviewed"] > 0


def test_within_target_counts_the_spot_checks_not_yet_reviewed_as_hallucinated(tmp_path):
    """A compliance team's trial: 22 spot-checks selected, the 13 easy ones labelled correct, the 9 wrong-looking ones
    left pending: the monitor said the target was shown to hold (upper bound 0.162 < 0.2) on the 13 alone. Whoever
    picks which spot-checks to review chose the claim. Now the pending ones count as hallucinated for that claim."""
    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, spot_check_rate=1.0)
    log, queue = _deploy(tmp_path, policy, 30, halluc_rate=0.0, seed=5)
    assert run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]["within_target_shown"] is True
    pid = policy_id(policy)
    for i in range(10):  # selected, never reviewed
        rec = log.append({"request_id": f"p{i}", "policy_id": pid, "domain": "geo", "route": "accept", "risk": 0.1,
                          "signals": {}, "question": "q", "answer": "a"}, kind="decision")
        log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo", "spot_check": True})
    rep = run_monitor(policy, act=False)
    sc = rep["domains"]["geo"]["spot_checks"]
    assert (sc["selected"], sc["reviewed"], sc["hallucinated"], sc["pending"]) == (40, 30, 0, 10)
    assert sc["upper_bound"] < 0.2 < sc["upper_bound_pending_hallucinated"] and sc["within_target_shown"] is False
    assert not rep["domains"]["geo"]["breach"]  # the alarm still reads what was reviewed
    assert (f"not shown within target: 10 selected spot-check(s) not reviewed yet; counted hallucinated, the upper "
            f"bound is {sc['upper_bound_pending_hallucinated']:.3f}") in summary(rep)


def test_not_shown_within_target_is_said_in_text_whenever_the_json_says_false(tmp_path):
    """A bank trial: accept_below hand-set, 2 answers accepted, no spot-check (spot_check_min_per_day 0): --json said
    within_target_shown: false, the text said nothing of it (it was printed only once a spot-check was reviewed)."""
    policy = _pol(tmp_path, spot_check_rate=0.0)
    _deploy(tmp_path, policy, 2, halluc_rate=0.0, seed=6)
    rep = run_monitor(policy, act=False)
    sc = rep["domains"]["geo"]["spot_checks"]
    assert (sc["selected"], sc["reviewed"], sc["within_target_shown"]) == (0, 0, False)
    assert "not shown within target: none of the 2 accepted answer(s) was selected for a spot-check" in summary(rep)
    picked = _pol(tmp_path / "picked", spot_check_rate=1.0)
    log = AuditLog(picked.audit.path)
    from hguard.monitor import SPOT, spot_check_decision

    rec = log.append({"request_id": "p", "policy_id": policy_id(picked), "domain": "geo", "route": "accept", "risk": 0.1,
                      "signals": {}, "question": "q", "answer": "a"}, kind="decision")
    log.append(spot_check_decision(picked, "geo", rec.id, 10**9), kind=SPOT)
    rep = run_monitor(picked, act=False)
    assert rep["domains"]["geo"]["spot_checks"]["within_target_shown"] is False
    assert "not shown within target: 0 of the 1 selected spot-check(s) reviewed" in summary(rep)


def test_spot_checks_accepted_under_different_thresholds_are_said_pooled(tmp_path):
    """A hand-set accept_below changed from 0.4 to 0.7: the report credited all spot-checks to 0.7."""
    policy = _pol(tmp_path, spot_check_rate=0.5)
    log, queue = _deploy(tmp_path, policy, 20, halluc_rate=0.1, seed=3, accept_below=0.4)
    _deploy(tmp_path, policy, 20, halluc_rate=0.1, seed=4, accept_below=0.7, log=log, queue=queue)
    sc = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    under = sc["accepted_under"]
    assert set(under) == {"0.4", "0.7"} and sum(under.values()) == sc["reviewed"]
    rep = run_monitor(policy, act=False)
    assert (f"pooled across accept thresholds: {under['0.4']} accepted under accept_below 0.4, {under['0.7']} accepted "
            "under accept_below 0.7") in summary(rep)


def test_monitor_run_estimates_tightens_on_a_breach_and_a_person_lifts(tmp_path, capsys):
    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    log, queue = _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    rep = run_monitor(policy)
    e = rep["domains"]["geo"]
    s = e["spot_checks"]
    assert s["reviewed"] == s["selected"] > 20 and s["hallucinated"] > 0.4 * s["reviewed"]
    assert s["upper_bound"] == pytest.approx(clopper_pearson_upper(s["hallucinated"], s["reviewed"], 0.9))
    assert s["lower_bound"] == pytest.approx(clopper_pearson_lower(s["hallucinated"], s["reviewed"], 0.9))
    assert s["bounds"] == "per_run"
    assert e["breach"] and e["state"]["state"] == "tightened" and e["state"]["accept_below"] == 0.0
    assert e["selection_audit"]["mismatches"] == [] and e["selection_audit"]["by_rate"] == s["selected"]
    kinds = [r["kind"] for r in log]
    assert kinds.count("monitor_check") == 1 and kinds.count("monitor_tighten") == 1
    assert verify(policy.audit.path).ok
    # the guard's view: the state file says tightened, since the tightening record's own time (it named the
    # monitor's clock a moment later, so each held answer's reason cited a time no record holds)
    (tight,) = [r for r in log if r["kind"] == "monitor_tighten"]
    assert MonitorState(policy.monitor.state).get("geo").state == "tightened"
    assert MonitorState(policy.monitor.state).get("geo").since == tight["time"] == e["state"]["since"]
    # the mirror is not trusted to loosen: a state file edited to say normal (or deleted) leaves it
    # tightened while the chain holds the tightening, and says so
    state_path = Path(policy.monitor.state)
    kept = state_path.read_text()
    edited = json.loads(kept)
    edited["domains"]["geo"].update(state="normal", accept_below=None, action=None)
    state_path.write_text(json.dumps(edited))
    assert MonitorState(state_path).get("geo").state == "normal"  # the file alone would have lifted it
    held = MonitorState(state_path, policy.audit.path).get("geo")
    assert held.state == "tightened" and held.accept_below == 0.0 and "the chain holds" in held.reason
    state_path.unlink()
    assert MonitorState(state_path, policy.audit.path).get("geo").state == "tightened"
    # nor does a record edited or forged in the chain: only a chain that verifies is replayed
    whole = Path(policy.audit.path).read_text()
    Path(policy.audit.path).write_text(whole.replace('"kind":"monitor_tighten"', '"kind":"note"'))
    held = MonitorState(state_path, policy.audit.path).get("geo")
    assert held.state == "tightened" and held.accept_below == 0.0 and "does not verify" in held.reason
    Path(policy.audit.path).write_text(whole)
    state_path.write_text(kept)
    # a second run keeps it tightened without a second tightening
    run_monitor(policy)
    assert [r["kind"] for r in log].count("monitor_tighten") == 1
    # a name that would show as another person's in one-line listings is refused, as a reviewer's is
    for spoof in ("bob\u202eecila", "alice\n    32  2026-12-04  monitor_lift  by=security-officer"):
        with pytest.raises(InputError, match=r"--by .* holds control or formatting character\(s\) U\+(202E|000A); type"):
            lift(policy, "geo", by=spoof, reason="ok")
    assert [r["kind"] for r in log].count("monitor_lift") == 0
    # a person lifts it: audited, state normal, evidence counted afresh from then on
    st = lift(policy, "geo", by="ops", reason="checked the new traffic")
    from hguard.cli.audit import main as audit_main

    assert audit_main(["show", str(policy.audit.path), "--kind", "monitor_tighten"]) == 0
    assert audit_main(["show", str(policy.audit.path), "--kind", "monitor_lift"]) == 0
    shown = capsys.readouterr().out.splitlines()  # what changed, by whom and why, on each line
    assert "action=review" in shown[0] and "accept_below=0.0" in shown[0] and 'reason="lower bound' in shown[0]
    assert "by=ops" in shown[1] and 'reason="checked the new traffic"' in shown[1]
    assert st.state == "normal" and MonitorState(policy.monitor.state).get("geo").state == "normal"
    assert MonitorState(policy.monitor.state, policy.audit.path).get("geo").state == "normal"  # the lift is in the chain
    before = s["reviewed"]
    rep = run_monitor(policy)
    assert rep["domains"]["geo"]["spot_checks"]["reviewed"] == 0 and rep["domains"]["geo"]["state"]["state"] == "normal"
    # the verdicts given before the lift are not counted, and said (an accept-path trial's three vanished)
    assert rep["domains"]["geo"]["spot_checks"]["reviewed_before_lift"] == before > 20
    assert f"({before} reviewed spot-check(s) accepted before it are not counted)" in summary(rep)
    assert [r["kind"] for r in log].count("monitor_lift") == 1 and verify(policy.audit.path).ok
    with pytest.raises(InputError, match="not tightened"):
        lift(policy, "geo", by="ops", reason="again")
    with pytest.raises(InputError, match="--by"):
        lift(policy, "geo", by="", reason="x")
    html = write_html(rep, tmp_path / "r.html").read_text()
    assert "data:image/png;base64" in html and "geo" in html


def _routed_counts(e) -> dict:
    """A domain's review-routed tally without its rate and interval."""
    return {k: e["review_routed"][k] for k in ("reviewed", "hallucinated", "correct")}


def _review_routed(policy, log, queue, n, verdict):
    """``n`` decisions of geo routed to review (each with an ``ood_distance`` signal), with a reviewer's ``verdict``."""
    for _ in range(n):
        rec = log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.9,
                          "signals": {"ood_distance": 0.5}, "question": "q", "answer": "a"}, kind="decision")
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo",
                       "signals": {"ood_distance": 0.5}})
        queue.decide(rec.id, verdict=verdict, reviewer="tester")


def test_evidence_counts_from_the_latest_lift_also_once_the_domain_is_tightened_again(tmp_path):
    """A trial of the live guarantee: lifted, then tightened again on spot-checks accepted after the lift, the next
    monitor run counted again the verdicts the lift had set aside ("23 reviewed, 14 hallucinated" where 10 came after
    the lift, counted_since null), and the review-routed tally and the drift tests read the whole history again."""
    from hguard.audit import rotate

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    log, queue = _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    _review_routed(policy, log, queue, 3, "hallucinated")
    first = run_monitor(policy)["domains"]["geo"]
    assert first["state"]["state"] == "tightened" and first["review_routed"]["reviewed"] == 3
    before = first["spot_checks"]["reviewed"]
    lifted = lift(policy, "geo", by="ops", reason="the reviewers re-checked")
    rotate(policy.audit.path, key=None)  # the lift now lies in an archive, and the guard restarts on the fresh file
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    _deploy(tmp_path, policy, 40, halluc_rate=0.9, seed=5, log=log, queue=queue)
    _review_routed(policy, log, queue, 2, "correct")
    again = run_monitor(policy)["domains"]["geo"]
    assert again["state"]["state"] == "tightened" and again["state"]["since"] > lifted.since
    after = again["spot_checks"]["reviewed"]
    assert 0 < after < before
    rep = run_monitor(policy)  # tightened again: still only the answers given after the lift
    geo = rep["domains"]["geo"]
    sc = geo["spot_checks"]
    assert (sc["reviewed"], sc["counted_since"], sc["reviewed_before_lift"]) == (after, lifted.since, before)
    assert _routed_counts(geo) == {"reviewed": 2, "hallucinated": 0, "correct": 2}
    assert geo["drift"]["ood_distance"]["n_reference"] + geo["drift"]["ood_distance"]["n_live"] == 2
    assert f"counted since the lift at {lifted.since} ({before} reviewed spot-check(s) accepted before it" in summary(rep)
    check = [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_check"][-1]
    assert check["estimate"]["spot_checks"]["reviewed"] == after and check["estimate"]["review_routed"]["reviewed"] == 2
    assert [r["kind"] for r in AuditLog(policy.audit.path)].count("monitor_tighten") == 1  # the second, in this file


def test_evidence_after_a_lift_is_what_follows_it_in_the_chain_whatever_the_clock_says(tmp_path, monkeypatch):
    """The answers after a lift were picked by their time stamps: after a clock set back (a VM restored from a
    snapshot, an NTP step) the spot-checks accepted after the lift were stamped before it and never counted, so a
    domain hallucinating on 90% of them was not tightened again."""
    from datetime import datetime as real_datetime
    from datetime import timedelta

    import hguard.audit as audit_mod

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    log, queue = _deploy(tmp_path, policy, 60, halluc_rate=0.7)
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    lifted = lift(policy, "geo", by="ops", reason="checked")

    class SetBack(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.now(tz) - timedelta(days=1)

    monkeypatch.setattr(audit_mod, "datetime", SetBack)
    _deploy(tmp_path, policy, 60, halluc_rate=0.9, seed=7, log=AuditLog(policy.audit.path),
            queue=ReviewQueue(policy.review.queue, audit=AuditLog(policy.audit.path)))
    late = [r for r in AuditLog(policy.audit.path) if r["kind"] == "decision"][-1]
    assert late["time"] < lifted.since  # stamped before the lift it follows
    geo = run_monitor(policy)["domains"]["geo"]
    sc = geo["spot_checks"]
    assert sc["reviewed"] > 10 and sc["hallucinated"] / sc["reviewed"] > 0.6
    assert geo["state"]["state"] == "tightened"


def test_policy_hash_tells_apart_policies_of_one_guarantee(tmp_path):
    from hguard.monitor import policy_hash
    from hguard.policy import load_policy

    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('version = 1\n[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\n')
    b.write_text('version = 1\n[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\naccept_below = 0.3\n')
    pa, pb = load_policy(a), load_policy(b)
    assert policy_id(pa) == policy_id(pb) and policy_hash(pa) != policy_hash(pb)
    assert policy_hash(pa) == policy_hash(load_policy(a)) and len(policy_hash(pa)) == 16
    built = _pol(tmp_path)  # a policy built in code hashes its settings
    assert policy_hash(built) == policy_hash(_pol(tmp_path)) != policy_hash(_pol(tmp_path, spot_check_rate=0.5))
    # a policy folder moved or copied elsewhere keeps its hash: paths count as the file names them
    from hguard import policy_copy

    first, second = policy_copy(tmp_path / "one"), policy_copy(tmp_path / "two")
    assert first.read_bytes().replace(b"one", b"") != b"" and policy_hash(load_policy(first)) != ""
    seeded = second.read_text().splitlines()  # each copy gets its own spot-check seed: make them equal
    second.write_text("\n".join(x if not x.startswith("seed =") else next(
        y for y in first.read_text().splitlines() if y.startswith("seed =")) for x in seeded) + "\n")
    assert first.read_text() == second.read_text()
    assert policy_hash(load_policy(first)) == policy_hash(load_policy(second))
    # the README's layout for another model: the policy folder beside its models and probes folders
    for top in ("site-a", "site-b"):
        (tmp_path / top / "my-policy").mkdir(parents=True)
        (tmp_path / top / "my-probes").mkdir()
        (tmp_path / top / "my-policy" / "policy.toml").write_text(
            'version = 1\nprobes = "../my-probes"\n[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\n')
    moved = [policy_hash(load_policy(tmp_path / top / "my-policy" / "policy.toml")) for top in ("site-a", "site-b")]
    assert moved[0] == moved[1]
    # a file naming its anchor and key absolutely, copied byte for byte into a folder at another depth (a backup)
    # keeps its hash (ops trial: the copy's relative form of the same absolute path differed)
    text = (f'version = 1\n[audit]\npath = "audit.jsonl"\nanchor = "{tmp_path}/anchor/a.anchor"\n'
            f'[integrity]\nkey_file = "{tmp_path}/keys/k.key"\n')
    hashes = []
    for where in ("svc/pol", "backup/deeper/pol"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "policy.toml").write_text(text)
        hashes.append(policy_hash(load_policy(tmp_path / where / "policy.toml")))
    assert hashes[0] == hashes[1]
    # the reference probes named "package:" hash so wherever the policy lies, near hguard's own data or not
    from hguard import REFERENCE_PROBES

    near = Path(REFERENCE_PROBES).parents[3] / f".tmp-policy-near-hguard-{os.getpid()}"  # beside hguard/, as a checkout's
    hashes = []
    try:
        for folder in (near, tmp_path / "far" / "away"):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "policy.toml").write_text('version = 1\nprobes = "package:smollm2-135m"\n')
            hashes.append(policy_hash(load_policy(folder / "policy.toml")))
    finally:
        import shutil

        shutil.rmtree(near, ignore_errors=True)
    assert hashes[0] == hashes[1]
    # a path changed in code after loading is hashed as it is now, not as the file named it
    changed = load_policy(tmp_path / "svc/pol/policy.toml")
    changed = changed.model_copy(update={"audit": changed.audit.model_copy(update={"anchor": tmp_path / "elsewhere"})})
    assert policy_hash(changed) != hashes[0]


def test_policy_hash_of_a_sibling_layout_holds_under_home_and_through_a_linked_folder(tmp_path, monkeypatch):
    from hguard.monitor import policy_hash
    from hguard.policy import load_policy

    monkeypatch.setenv("HOME", str(tmp_path))  # the project lies under the home folder
    shared = tmp_path / "shared-models"
    shared.mkdir()
    hashes = []
    for top in ("projA", "deeper/projB"):
        root = tmp_path / top
        (root / "my-policy").mkdir(parents=True)
        (root / "my-probes").mkdir()
        (root / "models").symlink_to(shared)  # each copy links the same shared folder in
        (root / "my-policy" / "policy.toml").write_text(
            'version = 1\nprobes = "../my-probes"\n[review]\nqueue = "../models/q.sqlite3"\n'
            '[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\n')
        hashes.append(policy_hash(load_policy(root / "my-policy" / "policy.toml")))
    assert hashes[0] == hashes[1]


def test_only_verdicts_recorded_in_the_chain_count_and_the_anchor_is_checked(tmp_path):
    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, spot_check_rate=1.0, on_breach="review")
    policy = policy.model_copy(update={"audit": policy.audit.model_copy(update={"anchor": tmp_path / "audit.anchor"})})
    log = AuditLog(policy.audit.path, anchor=policy.audit.anchor)
    pid = policy_id(policy)
    unaudited = ReviewQueue(policy.review.queue)  # a queue opened without the audit log: verdicts kept there only
    for i in range(12):
        rec = log.append({"request_id": f"d{i}", "policy_id": pid, "domain": "geo", "route": "accept", "risk": 0.1,
                          "signals": {}, "question": "q", "answer": "a"}, kind="decision")  # fmt: skip
        log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
        unaudited.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo", "spot_check": True})
        unaudited.decide(rec.id, verdict="hallucinated", reviewer="ghost")
    log.append({"request_id": "x1", "policy_id": pid, "domain": None, "route": "review", "risk": None}, kind="decision")
    log.append({"request_id": "x2", "policy_id": pid, "domain": "finance", "route": "review", "risk": 0.4}, kind="decision")
    rep = run_monitor(policy, act=False)
    s = rep["domains"]["geo"]["spot_checks"]
    assert s["selected"] == 12 and s["reviewed"] == 0 and not rep["domains"]["geo"]["breach"]
    assert rep["verdicts_not_in_chain"]["n"] == 12
    text = summary(rep)
    assert "hand-set" not in text  # this policy sets no accept_below of its own
    assert "12 verdict(s) in the review queue are not the audit chain's" in text
    assert "outside the policy's domains: 2 decision(s) (1 with no domain, 1 in 'finance'; 2 review)" in text
    # the same verdicts given through the audited queue count (the breach is seen)
    audited = ReviewQueue(tmp_path / "q2.sqlite3", audit=log)
    for i in range(12):
        audited.enqueue({"audit_id": f"d{i}", "question": "q", "answer": "a", "domain": "geo", "spot_check": True})
        audited.decide(f"d{i}", verdict="hallucinated", reviewer="ops")
    rep = run_monitor(policy, queue_path=tmp_path / "q2.sqlite3", act=False)
    assert rep["domains"]["geo"]["spot_checks"]["reviewed"] == 12 and rep["verdicts_not_in_chain"]["n"] == 0
    # records cut off the end: the chain alone verifies, the policy's anchor does not, and the monitor refuses
    lines = Path(policy.audit.path).read_bytes().splitlines(keepends=True)
    Path(policy.audit.path).write_bytes(b"".join(lines[:-3]))
    with pytest.raises(AuditIntegrityError, match="fails verification .*in the anchor"):
        run_monitor(policy, act=False)


def test_a_verdict_decided_without_the_audit_log_is_put_on_record_by_deciding_it_again_with_the_log(tmp_path):
    """A compliance team's trial: a spot-check decided 'hallucinated' with --no-audit was refused when decided again
    with the log ("already decided"), and with --supersede too; the monitor left it out for good."""
    from hguard.cli.review import main as review_cli
    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, spot_check_rate=1.0)
    log = AuditLog(policy.audit.path)
    pid = policy_id(policy)
    unaudited = ReviewQueue(policy.review.queue)
    ids = []
    for i in range(3):
        rec = log.append({"request_id": f"d{i}", "policy_id": pid, "domain": "geo", "route": "accept", "risk": 0.1,
                          "signals": {}, "question": f"q{i}", "answer": "a"}, kind="decision")  # fmt: skip
        log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
        unaudited.enqueue({"audit_id": rec.id, "question": f"q{i}", "answer": "a", "domain": "geo", "spot_check": True})
        unaudited.decide(rec.id, verdict="hallucinated", reviewer="alice", note="Istanbul is not the capital")
        ids.append(rec.id)
    rep = run_monitor(policy, act=False)
    assert rep["verdicts_not_in_chain"]["n"] == 3 and rep["domains"]["geo"]["spot_checks"]["reviewed"] == 0
    assert (f"`hguard review decide {ids[0]} --verdict V --reviewer NAME --policy {policy.source or 'FILE'}`"
            in summary(rep))  # the way to put it on record is named
    first = unaudited.get(ids[0]).verdict
    audited = ReviewQueue(policy.review.queue, audit=log)
    v = audited.decide(ids[0], verdict="hallucinated", reviewer="bob")  # the same verdict: put on record
    (rec,) = [r for r in log if r["kind"] == "review_verdict"]
    assert rec["id"] == v.audit_record_id and rec["reviewer"] == "bob" and rec["label"] == "hallucinated"
    assert rec["queue_verdict"] == {"verdict": "hallucinated", "reviewer": "alice", "decided_at": first.decided_at,
                                    "corrected_answer": None, "note": "Istanbul is not the capital"}  # not lost
    assert audited.get(ids[0]).verdict == v
    # another verdict is refused, naming the queue's and the way to record it; --supersede records it as the later one
    with pytest.raises(VerdictRefused, match=f"holds the verdict hallucinated by alice at .* in the queue only.*"
                                             f"`hguard review decide {ids[1]} --verdict hallucinated --reviewer NAME`"):
        audited.decide(ids[1], verdict="correct", reviewer="bob")
    assert audited.get(ids[1]).verdict.audit_record_id is None
    src = ["--queue", str(policy.review.queue), "--audit", str(policy.audit.path)]
    assert review_cli(["decide", ids[1], "--verdict", "correct", "--reviewer", "bob", "--supersede", *src]) == 0
    later = [r for r in log if r["kind"] == "review_verdict"][-1]
    assert later["verdict"] == "correct" and later["queue_verdict"]["verdict"] == "hallucinated"
    # on record now, an item takes no other verdict, with or without --supersede
    for sup in (False, True):
        with pytest.raises(AlreadyDecided):
            audited.decide(ids[0], verdict="correct", reviewer="carol", supersede=sup)
    assert len([r for r in log if r["kind"] == "review_verdict"]) == 2
    rep = run_monitor(policy, act=False)
    s = rep["domains"]["geo"]["spot_checks"]
    # ids[1]: alice's 'hallucinated' (the queue's, kept in bob's record) and bob's 'correct' disagree: hallucinated
    assert rep["verdicts_not_in_chain"]["n"] == 1 and (s["reviewed"], s["hallucinated"]) == (2, 2)
    assert rep["hallucinated_verdicts_contradicted"] == {"n": 1, "records": [later["id"]]}


def test_a_queue_only_hallucinated_verdict_superseded_with_the_log_still_counts_and_is_not_exported(tmp_path):
    """A reviewer's trial: alice said 'hallucinated' with --no-audit, bob 'correct' with the log and --supersede; the
    record kept alice's verdict (queue_verdict), yet the monitor counted the decision correct and the export wrote a
    'correct' row: a disagreement read leniently, where the same two verdicts in two records count hallucinated."""
    from hguard.monitor import SPOT, spot_check_decision
    from hguard.review.export import export_reviewed

    policy = _pol(tmp_path, spot_check_rate=1.0)
    log = AuditLog(policy.audit.path)
    rec = log.append({"request_id": "d0", "policy_id": policy_id(policy), "domain": "geo", "route": "accept",
                      "risk": 0.1, "signals": {}, "question": "q", "answer": "a"}, kind="decision")  # fmt: skip
    log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
    ReviewQueue(policy.review.queue).enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo",
                                              "spot_check": True})
    ReviewQueue(policy.review.queue).decide(rec.id, verdict="hallucinated", reviewer="alice")  # --no-audit
    audited = ReviewQueue(policy.review.queue, audit=log)
    v = audited.decide(rec.id, verdict="correct", reviewer="bob", supersede=True)
    rep = run_monitor(policy, act=False)
    s = rep["domains"]["geo"]["spot_checks"]
    assert (s["reviewed"], s["hallucinated"]) == (1, 1)
    assert rep["hallucinated_verdicts_contradicted"] == {"n": 1, "records": [v.audit_record_id]}
    assert rep["verdict_records_not_committed_in_queue"]["n"] == 0  # bob's record is the queue's
    out = export_reviewed(audited, tmp_path / "rows.jsonl")
    assert out.n_items == 0 and (out.n_spot_checks, out.n_spot_hallucinated) == (1, 1)
    ((item, why),) = out.skipped
    assert item == rec.id and "reviewers disagree" in why and "alice's 'hallucinated'" in why
    assert f"kept as queue_verdict in record {v.audit_record_id}" in why


def test_clean_spot_checks_do_not_tighten(tmp_path):
    policy = _pol(tmp_path, spot_check_rate=0.5)
    log, queue = _deploy(tmp_path, policy, 120, halluc_rate=0.0)
    for i, verdict in enumerate(["hallucinated", "hallucinated", "correct"]):  # answers routed to review
        rec = log.append({"domain": "geo", "route": "review", "risk": 0.6, "policy_id": policy_id(policy),
                          "question": f"q{i}", "answer": "a"}, kind="decision")
        queue.enqueue({"audit_id": rec.id, "question": f"q{i}", "answer": "a", "domain": "geo"})
        queue.decide(rec.id, verdict=verdict, reviewer="r")
    rep = run_monitor(policy)
    e = rep["domains"]["geo"]
    assert _routed_counts(e) == {"reviewed": 3, "hallucinated": 2, "correct": 1}
    # a rate with its exact interval, as the spot-checks have theirs (a finance team's trial: counts alone)
    rr = e["review_routed"]
    assert rr["rate"] == pytest.approx(2 / 3) and rr["ci95"] == pytest.approx(clopper_pearson_interval(2, 3))
    lo, hi = rr["ci95"]
    assert f"review-routed: 3 reviewed, 2 hallucinated, 1 correct (rate 0.667, 95% interval {lo:.3f}-{hi:.3f}; " in summary(rep)
    assert e["spot_checks"]["hallucinated"] == 0 and e["spot_checks"]["upper_bound"] < 0.2
    assert not e["breach"] and e["state"]["state"] == "normal"


def test_similarity_drift_is_tested_on_requests_that_named_their_domain(tmp_path):
    """Requests with domain= (as the adapters' README advises) record their similarity to the named domain, not the
    router's similarities: the monitor read only the latter, so such traffic left the drift untested for ever."""
    policy = _pol(tmp_path, drift_window=20)
    ReviewQueue(policy.review.queue)  # the guard's queue: the monitor refuses a log promising items without it
    log = AuditLog(policy.audit.path)
    for i in range(40):  # the second window's questions lie much further from the domain
        log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5,
                    "domain_choice": {"method": "given", "given": True, "chosen": "geo",
                                      "similarity": 0.6 + 0.001 * i if i < 20 else 0.2 + 0.001 * i}}, kind="decision")
    log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5,  # another's: not geo's
                "domain_choice": {"method": "given", "given": True, "chosen": "other", "similarity": 0.9}}, kind="decision")
    d = run_monitor(policy, act=False)["domains"]["geo"]["drift"]["similarity"]
    assert d["drift"] is True and d["n_live"] == 20, d


def test_similarity_drift_reads_only_numbers_a_router_of_ones_own_recorded(tmp_path):
    """A router of one's own records its similarities as it likes: "0.6" or True were read as numbers by the drift
    test (float() of them); only real numbers are similarities, the rest is not measured."""
    policy = _pol(tmp_path, drift_window=20)
    ReviewQueue(policy.review.queue)  # the guard's queue: the monitor refuses a log promising items without it
    log = AuditLog(policy.audit.path)
    for i in range(40):
        sims = {"geo": 0.6 + 0.001 * i if i < 20 else ("0.2" if i % 2 else True)}
        log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5,
                    "domain_choice": {"method": "MyRouter.choose_domain", "chosen": "geo", "similarities": sims}},
                   kind="decision")
    d = run_monitor(policy, act=False)["domains"]["geo"]["drift"]["similarity"]
    assert d["n_live"] == 0 and d["drift"] is not True, d


def test_the_monitor_says_which_probe_decides_a_domain_now_and_which_decided_before(tmp_path, monkeypatch):
    """An auditor's trial: the geography probe file replaced after the fact (the guard refuses it, so every answer
    goes to review) and the monitor's text said nothing; `drift risk: untested (n 0 vs 0)` for 25 decisions."""
    import hguard.monitor as monitor
    from hguard.domain import CalibratedDomain

    policy = _pol(tmp_path, spot_check_rate=0.5)
    ReviewQueue(policy.review.queue)  # the guard's queue: the monitor refuses a log promising items without it
    log = AuditLog(policy.audit.path)
    for pid in ("p-old",) * 3 + ("p-new",) * 2:
        log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "probe_id": pid, "risk": 0.5},
                   kind="decision")
    def refused(policy, problems=None):  # as the guard reads it: the file refused, and why
        problems.update(geo="geo.json: its signature does not match (signed with another key)")
        return {}

    monkeypatch.setattr(monitor, "_probe_meta", refused)
    rep = run_monitor(policy, act=False)
    assert rep["domains"]["geo"]["probes"] == {
        "probe_ids": [], "unreadable": "geo.json: its signature does not match (signed with another key)",
        "decisions_by_other_probes": 5, "other_probe_ids": ["p-old", "p-new"]}
    text = summary(rep)
    assert "probe: none the policy names can be read (geo.json: its signature does not match" in text
    assert "a guard routes every answer of this domain to review" in text
    assert "probe: 5 of the 5 decisions were made by a probe the policy does not name now (p-old, p-new; now: none)" in text
    now = CalibratedDomain(probe=None, name="geo", probe_id="p-new", prompt_mode="closed_book")
    monkeypatch.setattr(monitor, "_probe_meta", lambda policy, problems=None: {"geo": [now]})
    text = summary(run_monitor(policy, act=False))
    assert "none the policy names" not in text
    assert "probe: 3 of the 5 decisions were made by a probe the policy does not name now (p-old; now: p-new)" in text


def test_a_domain_calibrated_closed_book_and_with_context_is_watched_per_calibration(tmp_path, monkeypatch):
    """Two probes for one domain: each calibration's risks against the live risks of its own probe, and
    one tightened threshold that holds for both (the stricter of the two certified ones)."""
    from types import SimpleNamespace

    import hguard.monitor as monitor
    from hguard.policy import fit_thresholds

    rng = random.Random(3)

    from hguard.domain import CalibratedDomain, CalibrationScores

    def probe(pid, mode, cut):
        risk = [rng.random() for _ in range(400)]
        return CalibratedDomain(probe=None, name="geo", probe_id=pid, prompt_mode=mode, calibration_scores=CalibrationScores(
            tuple(risk), tuple(int(x > cut) for x in risk)))  # fmt: skip

    closed, rag = probe("p-closed", "closed_book", 0.5), probe("p-rag", "rag", 0.2)
    monkeypatch.setattr(monitor, "_probe_meta", lambda policy, problems=None: {"geo": [closed, rag]})
    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="stricter", breach_rule="upper_bound", drift_window=30)
    ReviewQueue(policy.review.queue)  # the guard's queue: the monitor refuses a log promising items without it
    log = AuditLog(policy.audit.path)
    for i in range(60):  # closed-book answers as in their first window; answers with context far riskier later on
        log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "probe_id": "p-closed",
                    "risk": 0.9 + 0.1 * rng.random()}, kind="decision")  # fmt: skip
        log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "probe_id": "p-rag",
                    "risk": rng.random() if i < 30 else 0.9 + 0.1 * rng.random()}, kind="decision")  # fmt: skip
    rep = run_monitor(policy, act=False)
    e = rep["domains"]["geo"]
    assert [(mode, len(cal), len(live)) for mode, cal, live in e["_risk_panels"]] == [
        (", closed-book", 400, 60), (", rag", 400, 60)]
    assert "data:image/png;base64" in write_html(rep, tmp_path / "r.html").read_text()
    assert set(e["drift"]) == {"risk (closed-book)", "risk (rag)", "similarity", "ood_distance"}
    assert e["drift"]["risk (closed-book)"]["n_live"] == e["drift"]["risk (rag)"]["n_live"] == 30
    assert e["drift"]["risk (rag)"]["drift"] is True and e["drift"]["risk (closed-book)"]["drift"] is False
    assert e["drifted"] == ["risk (rag)"]
    # against the probe file's out-of-fold risks, the closed-book answers differ from the start: said, not acted on
    vs_cal = e["risk_against_calibration"]["risk (closed-book)"]
    assert vs_cal["drift"] is True and "never acted on" in vs_cal["reference"]

    dp = policy.domains["geo"]
    each = [fit_thresholds(list(p.calibration_scores.risk), list(p.calibration_scores.hallucinated), target=0.1,
                           confidence=dp.confidence, abstain_precision=dp.abstain_precision).accept_below
            for p in (closed, rag)]  # fmt: skip
    assert 0 < each[1] < each[0]
    action, accept, how = monitor._stricter(dp, [closed, rag], None)
    assert (action, accept) == ("stricter", each[1]) and "400 closed-book, 400 rag calibration answers" in how
    assert monitor._stricter(dp, [closed, SimpleNamespace(calibration_scores=None)], None)[:2] == ("review", 0.0)

    # the drift tightens; a person who lifts it has seen those answers: the next run counts drift afresh, and
    # tightens again only on answers given after the lift
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    lift(policy, "geo", by="ops", reason="the passages changed on purpose")
    e = run_monitor(policy)["domains"]["geo"]
    assert e["state"]["state"] == "normal" and e["drift"]["risk (rag)"]["n_live"] == 0 and e["drifted"] == []
    for i in range(60):  # a new first window after the lift, and a shift after it
        log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "probe_id": "p-rag",
                    "risk": rng.random() if i < 30 else 0.9 + 0.1 * rng.random()}, kind="decision")  # fmt: skip
    e = run_monitor(policy)["domains"]["geo"]
    assert e["drift"]["risk (rag)"]["n_live"] == 30 and e["state"]["state"] == "tightened"


def test_too_few_checks_are_not_judged(tmp_path):
    policy = _pol(tmp_path, spot_check_rate=0.5, breach_rule="upper_bound")
    _deploy(tmp_path, policy, 6, halluc_rate=1.0)
    e = run_monitor(policy, act=False)["domains"]["geo"]
    assert e["spot_checks"]["reviewed"] < min_checks(0.2, 0.9) and not e["breach"]


def test_cherry_picked_or_forged_selection_is_reported(tmp_path):
    from hguard.monitor import SPOT

    policy = _pol(tmp_path, spot_check_rate=0.3)
    log = AuditLog(policy.audit.path)
    recs = [log.append({"domain": "geo", "route": "accept", "policy_id": policy_id(policy)}, kind="decision") for _ in range(40)]
    us = [selection_u("s", r.id) for r in recs]
    skipped = [r for r, u in zip(recs, us) if u < 0.3]
    picked = [r for r, u in zip(recs, us) if u >= 0.3][0]
    log.append({"decision_audit_id": picked.id, "domain": "geo", "u": selection_u("s", picked.id), "rate": 0.3,
                "selected_because": "chosen"}, kind=SPOT)  # fmt: skip
    sel = check_selection(policy, list(log))["geo"]
    assert len(sel["mismatches"]) == len(skipped) + 1
    assert any("< rate 0.3 (the policy's rate now) but no spot-check" in m for m in sel["mismatches"])


def test_a_spot_check_written_with_a_rate_or_daily_minimum_of_its_own_is_a_mismatch(tmp_path):
    """An auditor appended spot_check records to pick answers by hand: one with rate 1.0 for a decision accepted
    under 0.4, one claiming the daily minimum in a domain without one; "0 mismatches" was reported."""
    from hguard.monitor import SPOT

    policy = _pol(tmp_path, spot_check_rate=0.3, spot_check_min_per_day=2)
    log = AuditLog(policy.audit.path)
    recs = [log.append({"domain": "geo", "route": "accept", "policy_id": policy_id(policy), "spot_check_rate": 0.3},
                       kind="decision") for _ in range(40)]  # fmt: skip
    for r in recs:
        if (u := selection_u("s", r.id)) < 0.3:
            log.append({"decision_audit_id": r.id, "domain": "geo", "u": u, "rate": 0.3, "min_per_day": 2,
                        "selected_because": "u"}, kind=SPOT)
    high = [r for r in recs if selection_u("s", r.id) >= 0.3]
    taken = {"decision_audit_id": high[0].id, "domain": "geo", "u": selection_u("s", high[0].id), "min_per_day": 2,
             "selected_because": "minimum per day: 0 of spot_check_min_per_day 2 selected so far today"}
    log.append({**taken, "rate": 0.3}, kind=SPOT)  # a daily minimum of 2: a selection it allows
    assert check_selection(policy, list(log))["geo"]["mismatches"] == []
    log.append({**taken, "decision_audit_id": high[1].id, "u": selection_u("s", high[1].id), "rate": 1.0,
                "selected_because": "u < spot_check_rate 1.0"}, kind=SPOT)
    log.append({**taken, "decision_audit_id": high[2].id, "u": selection_u("s", high[2].id), "rate": 0.3,
                "min_per_day": 0}, kind=SPOT)
    sel = check_selection(policy, list(log))["geo"]
    assert len(sel["mismatches"]) == 2, sel["mismatches"]
    assert f"records rate 1.0, but its decision {high[1].id} was accepted under spot_check_rate 0.3" in sel["mismatches"][0]
    assert "no daily minimum to take it for (min_per_day 0)" in sel["mismatches"][1]


def test_a_changed_spot_check_rate_is_checked_against_the_rate_each_answer_was_accepted_at(tmp_path):
    """Raising spot_check_rate is no cherry-picking: each decision records the rate its selection used."""
    from hguard.monitor import SPOT

    policy = _pol(tmp_path, spot_check_rate=0.3)
    log = AuditLog(policy.audit.path)
    recs = [log.append({"domain": "geo", "route": "accept", "policy_id": policy_id(policy), "spot_check_rate": 0.3},
                       kind="decision") for _ in range(40)]  # fmt: skip
    for r in recs:
        if (u := selection_u("s", r.id)) < 0.3:
            log.append({"decision_audit_id": r.id, "domain": "geo", "u": u, "rate": 0.3, "selected_because": "u"}, kind=SPOT)
    raised = _pol(tmp_path, spot_check_rate=1.0)
    assert check_selection(raised, list(log))["geo"]["mismatches"] == []
    log.append({"domain": "geo", "route": "accept", "policy_id": policy_id(raised), "spot_check_rate": 1.0}, kind="decision")
    (m,) = check_selection(raised, list(log))["geo"]["mismatches"]  # one accepted at 1.0 and not checked
    assert "< rate 1 (recorded with it) but no spot-check" in m


def test_monitor_refuses_a_log_or_queue_from_another_policy(tmp_path):
    policy = _pol(tmp_path, spot_check_rate=0.5)
    _deploy(tmp_path, policy, 10, halluc_rate=0.0)
    other = _pol(tmp_path, spot_check_rate=0.5, target_hallucination_rate=0.1)
    with pytest.raises(PolicyError, match="last written under policy"):
        run_monitor(other)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    stranger = ReviewQueue(other_dir / "q.sqlite3")
    stranger.enqueue({"audit_id": "not-in-this-log", "question": "q", "answer": "a", "domain": "geo"})
    with pytest.raises(PolicyError, match="another deployment"):
        run_monitor(policy, queue_path=other_dir / "q.sqlite3")
    with pytest.raises(InputError, match="no audit log"):
        run_monitor(policy, audit_path=tmp_path / "missing.jsonl")


def test_spot_checked_items_export_as_accepted_calibration_rows(tmp_path):
    from hguard.calibrate.data import load_examples
    from hguard.review.export import export_reviewed

    policy = _pol(tmp_path, spot_check_rate=0.5)
    # one question per decision: one question asked again is one row (its answer "a" labelled both ways, none)
    _, queue = _deploy(tmp_path, policy, 20, halluc_rate=0.5, asked="What is the capital of land {i}?")
    s = export_reviewed(queue, tmp_path / "reviewed.jsonl")
    rows = load_examples(tmp_path / "reviewed.jsonl")
    assert s.n_items == len(rows) == len(queue.decided()) > 0
    assert all(r.meta["spot_check"] is True and r.meta["probe_route"] == "accept" for r in rows)


def test_a_version_1_queue_gains_the_spot_check_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    q = ReviewQueue(path)
    q.enqueue({"audit_id": "a1", "question": "q", "answer": "a", "domain": "geo"})
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE t AS SELECT * FROM review_items; DROP TABLE review_items;"
    )
    conn.close()
    # rebuild the version-1 table without the column
    conn = sqlite3.connect(path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(t)") if r[1] != "spot_check"]
    conn.execute(f"CREATE TABLE review_items AS SELECT {', '.join(cols)} FROM t")
    conn.execute("DROP TABLE t")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    item = ReviewQueue(path).get("a1")
    assert item is not None and item.spot_check is False


# ------------------------------------------------------------------------------------------ the guard


def _guard_policy(root, tmp_path, **alpha):
    """A policy over the tiny calibration whose domain alpha accepts every answer (``alpha``: its other keys)."""
    return Policy.model_validate(
        {
            "version": 1, "probes": str(root / "probes"),
            "audit": {"path": str(tmp_path / "audit.jsonl")}, "review": {"queue": str(tmp_path / "q.sqlite3")},
            "monitor": {"seed": "s", "state": str(tmp_path / "state.json")},
            "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
            "domains": {"alpha": {"accept_below": 1.0, "abstain_above": 1.0, **alpha}},
        }
    )  # fmt: skip


def test_a_replaced_seed_does_not_turn_earlier_selections_into_mismatches(tiny_calibrated, tmp_path):
    """The README tells operators to keep the seed secret (so to replace a known one): the decisions selected under
    the old seed are counted apart, not reported as cherry-picked; the new seed's decisions are checked as before."""
    from hguard.guard import Guard

    lm, root = tiny_calibrated
    policy = _guard_policy(root, tmp_path, spot_check_rate=0.5, spot_check_min_per_day=0)
    questions = ["who is the author ?", "what is the capital ?", "which element ?", "what is the symbol ?"] * 3
    Guard.from_policy(policy, lm=lm).batch(questions, domains=["alpha"] * len(questions))
    records = list(AuditLog(tmp_path / "audit.jsonl"))
    sel = check_selection(policy, records)["alpha"]
    assert sel["accepted"] == 12 and sel["other_seed"] == 0 and sel["mismatches"] == [] and 0 < sel["selected"] < 12

    replaced = policy.model_copy(update={"monitor": policy.monitor.model_copy(update={"seed": "a new secret"})})
    old = check_selection(replaced, records)["alpha"]
    assert old["mismatches"] == [] and old["other_seed"] == 12 and old["selected"] == sel["selected"]
    Guard.from_policy(replaced, lm=lm).batch(questions, domains=["alpha"] * len(questions))
    both = check_selection(replaced, list(AuditLog(tmp_path / "audit.jsonl")))["alpha"]
    assert both["accepted"] == 24 and both["other_seed"] == 12 and both["mismatches"] == []
    # decisions from before seeds were recorded (hguard 0.2.0): checked against the policy's seed, which still gives
    # the u their spot-checks hold; once it is replaced none of those u's is its own, so they count apart too (an
    # upgrade trial: following the advice to replace a known seed made every old selection a mismatch)
    unrecorded = [{k: v for k, v in r.items() if k != "spot_check_seed_id"} for r in records]
    same = check_selection(policy, unrecorded)["alpha"]
    assert same["mismatches"] == [] and same["other_seed"] == 0 and same["selected"] == sel["selected"]
    after = check_selection(replaced, unrecorded)["alpha"]
    assert after["mismatches"] == [] and after["other_seed"] == 12
    # inferred, not recorded: counted so, and the report says what the inference rests on (a forged selection among
    # few spot-checks would read the same); a recorded seed id infers nothing
    assert after["other_seed_inferred"] == 12 and "other_seed_inferred" not in old
    # an altered selection under the unchanged seed is still a mismatch: one spot-check's u forged, the others match
    forged = [dict(r, u=0.001) if r.get("kind") == "spot_check" and i == 0 else r
              for i, r in enumerate(sorted(unrecorded, key=lambda r: r.get("kind") != "spot_check"))]
    assert len(check_selection(policy, forged)["alpha"]["mismatches"]) == 1
    rep = run_monitor(replaced, act=False)
    assert rep["domains"]["alpha"]["selection_audit"]["other_seed"] == 12
    assert "12 accepted under another spot-check seed, not checked with this one" in summary(rep)
    assert "record no seed" not in summary(rep)
    rep["domains"]["alpha"]["selection_audit"]["other_seed_inferred"] = 12
    assert ("12 of them record no seed (before 0.3.0): read as another seed's because none of their spot-checks is "
            "what this seed selects; with few spot-checks a forged selection under this seed reads the same") in summary(rep)
    import hashlib

    from hguard.monitor import seed_id

    # an auditor recomputes the id as the README says
    accepted = next(r for r in records if r.get("route") == "accept")
    assert accepted["spot_check_seed_id"] == seed_id("s") == hashlib.scrypt(
        b"s", salt=b"hguard spot-check seed id", n=2**14, r=8, p=1, dklen=8).hex()


def test_guard_spot_checks_accepted_answers_and_honours_a_tightening(tiny_calibrated, tmp_path):
    from hguard.guard import Guard

    lm, root = tiny_calibrated
    policy = _guard_policy(root, tmp_path, spot_check_rate=0.0, spot_check_min_per_day=2)
    g = Guard.from_policy(policy, lm=lm)
    rs = g.batch(["who is the author ?", "what is the capital ?", "which element ?"], domains=["alpha"] * 3)
    assert [r.route for r in rs] == ["accept"] * 3
    q = ReviewQueue(tmp_path / "q.sqlite3")
    spots = q.pending(limit=None)
    assert len(spots) == 2 and all(s.spot_check for s in spots)  # the daily minimum, then none at rate 0
    assert all("spot-check" in s.reasons[0] for s in spots)
    sel = check_selection(policy, list(AuditLog(tmp_path / "audit.jsonl")))["alpha"]
    assert sel["accepted"] == 3 and sel["by_minimum"] == 2 and sel["mismatches"] == []
    # the monitor's tightening reaches the guard before routing
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"domain": "alpha", "action": "review", "accept_below": 0.0, "reason": "test"}, kind="monitor_tighten")
    from hguard.monitor import write_state

    write_state(tmp_path / "state.json", replay(log), policy_id(policy))
    r = g.invoke("who is the author ?", domain="alpha")
    assert r.route != "accept" and "tightened by the monitor" in r.reasons[0]
    # deleting the state file does not lift it: a new guard replays the chain
    (tmp_path / "state.json").unlink()
    r = Guard.from_policy(policy, lm=lm).invoke("who is the author ?", domain="alpha")
    assert r.route != "accept" and "tightened by the monitor" in r.reasons[0]
    assert verify(tmp_path / "audit.jsonl").ok


def test_decisions_of_another_model_are_left_out_of_the_domains_evidence(tiny_calibrated, tmp_path):
    """`--model` overrides the policy's model without changing its guarantee: what another model answered (and
    reviewers said of it) is not evidence about the calibrated model's accepted answers."""
    from hguard.guard import Guard
    from hguard.monitor import SPOT, guarantee_of, spot_check_decision

    lm, root = tiny_calibrated
    policy = _guard_policy(root, tmp_path, spot_check_rate=1.0)
    g = Guard.from_policy(policy, lm=lm)
    assert [r.route for r in g.batch(["who is the author ?", "which element ?"], domains=["alpha"] * 2)] == ["accept"] * 2
    queue = ReviewQueue(tmp_path / "q.sqlite3", audit=g.audit)
    for item in queue.pending(limit=None):
        queue.decide(item.id, verdict="correct", reviewer="tester")
    before = run_monitor(policy, act=False)
    assert before["domains"]["alpha"]["spot_checks"]["reviewed"] == 2
    assert before["other_model_decisions_left_out"]["n"] == 0
    for i in range(4):  # the same policy run with another model: accepted, spot-checked, all wrong
        rec = g.audit.append({"request_id": f"o{i}", "policy_id": policy_id(policy), "domain": "alpha", "route": "accept",
                              "risk": 0.1, "signals": {}, "question": "q", "answer": "a", "guarantee": guarantee_of(policy, "alpha"),
                              "model_fingerprint": "folder-sha256:another"}, kind="decision")  # fmt: skip
        g.audit.append(spot_check_decision(policy, "alpha", rec.id, 10**9) or {"decision_audit_id": rec.id}, kind=SPOT)
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "alpha", "spot_check": True})
        queue.decide(rec.id, verdict="hallucinated", reviewer="tester")
    after = run_monitor(policy, act=False)
    assert after["other_model_decisions_left_out"] == {"n": 4, "models": {"folder-sha256:another": 4}}
    assert after["domains"]["alpha"]["spot_checks"] == before["domains"]["alpha"]["spot_checks"]


def test_a_policy_with_sequential_bounds_reads_them_in_the_monitor_run(tmp_path):
    policy = _pol(tmp_path, spot_check_rate=0.5, live_bounds="sequential", breach_rule="lower_bound")
    _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    s = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    assert s["bounds"] == "sequential" and s["reviewed"] > 20
    assert (s["lower_bound"], s["upper_bound"]) == pytest.approx(sequential_bounds(s["hallucinated"], s["reviewed"], 0.9))
    assert s["lower_bound"] < clopper_pearson_lower(s["hallucinated"], s["reviewed"], 0.9)


def test_lower_bound_and_the_two_breach_rules():
    from scipy.stats import binom

    lb = clopper_pearson_lower(3, 20, 0.9)
    assert binom.sf(2, 20, lb) == pytest.approx(0.1, abs=1e-9)  # P(X >= 3) at the bound
    assert clopper_pearson_lower(0, 20, 0.9) == 0.0
    assert clopper_pearson_lower(10, 10, 0.9) == pytest.approx(0.1 ** (1 / 10))
    # 1 of 11 at target 0.2, one-look bounds (the default): no longer certified (upper 0.30) but not shown
    # broken (lower 0.01)
    assert breached(1, 11, 0.2, 0.9, "upper_bound") and not breached(1, 11, 0.2, 0.9, "lower_bound")
    assert not breached(1, 10, 0.2, 0.9, "upper_bound")  # below min_checks: not judged
    assert breached(12, 20, 0.2, 0.9, "lower_bound")
    # the sequential bounds ask for more: 12 of 20 shows the target broken, 8 of 20 does only for one look
    # (lower 0.25 per run, 0.17 sequential); a clean record certifies from 25 checks, not 11
    assert breached(12, 20, 0.2, 0.9, "lower_bound", "sequential") and not breached(8, 20, 0.2, 0.9, "lower_bound", "sequential")
    assert breached(8, 20, 0.2, 0.9, "lower_bound")
    assert not breached(1, 11, 0.2, 0.9, "upper_bound", "sequential") and breached(1, 25, 0.2, 0.9, "upper_bound", "sequential")
    with pytest.raises(InputError, match="live bounds"):
        breached(1, 10, 0.2, 0.9, "lower_bound", "sometimes")
    with pytest.raises(InputError, match="live bounds"):
        min_checks(0.2, 0.9, "sometimes")
    with pytest.raises(InputError, match="breach rule"):
        breached(1, 10, 0.2, 0.9, "sometimes")


def test_a_recalibration_lifts_a_tightening_only_when_it_changes_how_answers_are_routed(tiny_calibrated, tmp_path):
    import dataclasses
    import shutil

    from hguard.domain import CalibratedDomain

    lm, root = tiny_calibrated
    probes = tmp_path / "probes"
    probes.mkdir()
    shutil.copy(root / "probes" / "alpha.json", probes / "alpha.json")
    policy = Policy.model_validate({
        "version": 1, "probes": str(probes), "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")}, "monitor": {"seed": "s", "state": str(tmp_path / "state.json")},
        "domains": {"alpha": {"target_hallucination_rate": 0.2, "confidence": 0.9, "spot_check_rate": 0.5,
                              "on_breach": "review", "description": "alpha questions"}}})  # fmt: skip
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    pid = policy_id(policy)
    from hguard.monitor import SPOT, spot_check_decision

    rng = random.Random(1)
    for i in range(80):  # accepted answers, 60% of the spot-checked ones wrong: a breach
        rec = log.append({"request_id": f"r{i}", "policy_id": pid, "domain": "alpha", "route": "accept",
                          "risk": 0.1, "signals": {}, "question": "q", "answer": "a"}, kind="decision")  # fmt: skip
        spot = spot_check_decision(policy, "alpha", rec.id, 10**9)
        if spot:
            log.append(spot, kind=SPOT)
            queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "alpha", "spot_check": True})
            queue.decide(rec.id, verdict="hallucinated" if rng.random() < 0.6 else "correct", reviewer="t")
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "tightened"
    cd = CalibratedDomain.load(probes / "alpha.json")
    tight = [r for r in log if r["kind"] == "monitor_tighten"][-1]
    assert tight["calibration_id"] == cd.calibration_id and tight["probe_id"] == cd.probe_id
    # the same calibration made again (another time, other timings): the same probe id (it hashes what was fitted),
    # routing unchanged
    again = dataclasses.replace(cd, extra={**cd.extra, "created": "2031-01-01T00:00:00Z"})
    again = again.save(probes / "alpha.json")
    assert again.probe_id == cd.probe_id and again.calibration_id == cd.calibration_id
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "tightened"
    assert not [r for r in log if r["kind"] == "monitor_lift"]
    assert tight["data_hash"] == cd.data_hash and cd.data_hash
    # a calibration that routes differently (another merger) fitted on the same answers: kept, and said
    merger = {**cd.merger, "intercept": cd.merger["intercept"] + 1.0}
    refit = dataclasses.replace(cd, merger=merger).save(probes / "alpha.json")
    assert refit.calibration_id != cd.calibration_id and refit.data_hash == cd.data_hash
    same = run_monitor(policy)["domains"]["alpha"]
    assert same["state"]["state"] == "tightened" and same["lift_on_run"] is None
    assert "on the same answers" in same["kept_despite_recalibration"] and "hguard review export" in same["kept_despite_recalibration"]
    assert not [r for r in log if r["kind"] == "monitor_lift"]
    # ... and on other answers (the reviewed spot-checks added): lifted by the recalibration, recorded
    dataclasses.replace(cd, merger=merger, extra={**cd.extra, "data_hash": "f" * 16}).save(probes / "alpha.json")
    dry = run_monitor(policy, act=False)["domains"]["alpha"]  # a dry run says what the run will do
    assert dry["state"]["state"] == "tightened" and dry["lift_on_run"].startswith("recalibrated: probe")
    # ... unless the policy hand-sets the domain's accept_below, which no calibration certifies: a person lifts it
    hand = policy.model_copy(update={"domains": {"alpha": policy.domains["alpha"].model_copy(update={"accept_below": 0.5})}})
    kept = run_monitor(hand)["domains"]["alpha"]
    assert kept["state"]["state"] == "tightened" and "hand-set" in kept["kept_despite_recalibration"]
    assert not [r for r in log if r["kind"] == "monitor_lift"]
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "normal"
    (lifted,) = [r for r in log if r["kind"] == "monitor_lift"]
    assert lifted["by"] == "recalibration" and lifted["calibration_id"] != cd.calibration_id and lifted["data_hash"] == "f" * 16


_Q = "who is the author ?"  # a question the tiny calibration of alpha accepts


def _probe_folder_policy(tmp_path, root):
    """A policy whose probe folder holds alpha's tiny calibration alone (a recalibration is saved over it there),
    spot-checking nothing: (policy, probe folder, the calibration)."""
    import shutil

    from hguard.domain import CalibratedDomain

    probes = tmp_path / "probes"
    probes.mkdir()
    shutil.copy(root / "probes" / "alpha.json", probes / "alpha.json")
    policy = Policy.model_validate({
        "version": 1, "probes": str(probes), "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")}, "monitor": {"seed": "s", "state": str(tmp_path / "state.json")},
        "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
        "domains": {"alpha": {"target_hallucination_rate": 0.9, "confidence": 0.5, "spot_check_rate": 0.0,
                              "on_breach": "review"}}})  # fmt: skip
    return policy, probes, CalibratedDomain.load(probes / "alpha.json")


def test_a_domain_whose_calibration_certifies_no_accept_threshold_is_said_to_accept_nothing(tiny_calibrated, tmp_path):
    """A finance team's trial: every domain read "state=normal" and nothing said that one certified no accept
    threshold (0 accepted: the live guarantee on accepted answers holds of none). The monitor says it per domain, in
    the text and in --json, with the threshold fitted as the guard fits it; not where one is certified."""
    lm, root = tiny_calibrated
    policy, probes, cd = _probe_folder_policy(tmp_path, root)
    assert cd.fit_thresholds(policy.domain("alpha")).accept_below > 0  # target 0.9 at confidence 0.5: one certified
    AuditLog(policy.audit.path).append({"domain": "alpha", "route": "review", "risk": 0.5,  # under no policy: any reads it
                                        "question": "q", "answer": "a"}, kind="decision")
    rep = run_monitor(policy, act=False)
    assert rep["domains"]["alpha"]["no_accept_threshold"] is None and "    accept: " not in summary(rep)
    strict = policy.model_copy(update={"domains": {"alpha": policy.domain("alpha").model_copy(
        update={"target_hallucination_rate": 0.01, "confidence": 0.99})}})
    assert not cd.fit_thresholds(strict.domain("alpha")).accept_below
    rep = run_monitor(strict, act=False)
    said = rep["domains"]["alpha"]["no_accept_threshold"]
    assert said.startswith("no accept threshold is certified at target 0.01 with confidence 0.99 (closed-book "
                           "calibration): nothing is accepted")
    assert f"\n    accept: {said}" in summary(rep) and "state=normal" in summary(rep)
    # a hand-set accept_below is said apart (no calibration certifies it), not as nothing accepted
    hand = strict.model_copy(update={"domains": {"alpha": strict.domain("alpha").model_copy(update={"accept_below": 0.3})}})
    assert run_monitor(hand, act=False)["domains"]["alpha"]["no_accept_threshold"] is None


def _tighten_under(policy, cd) -> None:
    """alpha tightened to accept nothing under the calibration ``cd``, as the monitor records it, the state file
    rewritten from the chain."""
    from hguard.monitor import write_state

    log = AuditLog(policy.audit.path)
    log.append({"domain": "alpha", "action": "review", "accept_below": 0.0, "probe_id": cd.probe_id,
                "calibration_id": cd.calibration_id, "data_hash": cd.data_hash, "reason": "a breach"},
               kind="monitor_tighten")
    write_state(Path(policy.monitor.state), replay(log), policy_id(policy))


def _recalibrated(cd, probes, delta: float, tag: str):
    """``cd`` recalibrated on other answers (its merger's intercept moved by ``delta``, data_hash ``tag`` * 16),
    saved in the probe folder ``probes``."""
    import dataclasses

    return dataclasses.replace(cd, merger={**cd.merger, "intercept": cd.merger["intercept"] + delta},
                               extra={**cd.extra, "data_hash": tag * 16}).save(probes / "alpha.json")


def test_a_lift_by_recalibration_frees_only_guards_scoring_with_the_recalibrated_probe(tiny_calibrated, tmp_path):
    """An operations trial: a worker kept serving the probe whose accepted answers breached the target while the
    operator put a recalibrated probe into the policy's folder and ran the monitor, which lifted the tightening
    "recalibrated: probe OLD replaced by NEW"; the worker replayed the lift and accepted again, its records naming the
    breached probe. The lift frees only a guard scoring with the recalibrated probe, in either order: a guard that
    loaded it before the monitor ran is freed by the run, one still scoring with the old probe stays held (naming
    both probes and the fix) until it is restarted or a person lifts it."""
    from hguard.guard import Guard
    from hguard.monitor import lift

    lm, root = tiny_calibrated
    policy, probes, a = _probe_folder_policy(tmp_path, root)
    log = AuditLog(policy.audit.path)
    old = Guard.from_policy(policy, lm=lm)
    assert old.invoke(_Q, domain="alpha").route == "accept"  # the calibration accepts it
    _tighten_under(policy, a)
    assert old.invoke(_Q, domain="alpha").route == "review"
    # recalibrated on other answers, put in the policy's folder; a guard started now loads it, still held: tightened
    b = _recalibrated(a, probes, 0.1, "f")
    assert b.probe_id != a.probe_id and b.calibration_id != a.calibration_id
    early = Guard.from_policy(policy, lm=lm)
    assert early.invoke(_Q, domain="alpha").route == "review"
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "normal"  # lifted by the recalibration
    (lifted,) = [r for r in log if r["kind"] == "monitor_lift"]
    assert lifted["probe_id"] == b.probe_id and lifted["replaced_probe_id"] == a.probe_id
    # the guard that loaded the new probe before the monitor ran is freed by it; one started after it too
    assert early.invoke(_Q, domain="alpha").route == "accept"
    assert Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha").route == "accept"
    # the guard still scoring with the breached probe stays held, saying why and how to go on
    held = old.invoke(_Q, domain="alpha")
    assert held.route == "review" and held.probe_id == a.probe_id
    assert a.probe_id in held.reasons[0] and b.probe_id in held.reasons[0] and "restarted" in held.reasons[0]
    assert (f"lifted by recalibration for probe {b.probe_id}: a guard scoring with a probe a tightening was decided "
            f"on ({a.probe_id}) holds its answers for review until it loads another probe or a person lifts "
            "it") in summary(run_monitor(policy, act=False))
    # neither the state file rewritten as an older hguard wrote it (no replaced probe), nor deleted, frees it: the
    # chain holds the lift's probes (and a lift record written before they were recorded names the new one alone)
    state = json.loads((tmp_path / "state.json").read_text())
    state["domains"]["alpha"].pop("replaced_probe_id")
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert old.invoke(_Q, domain="alpha").route == "review"
    (tmp_path / "state.json").unlink()
    assert old.invoke(_Q, domain="alpha").route == "review"
    older = replay([r for r in log if r["kind"] == "monitor_tighten"]
                   + [{k: v for k, v in lifted.items() if k not in ("replaced_probe_id", "lifted_record")}])
    assert (older["alpha"].probe_id, older["alpha"].replaced_probe_id) == (b.probe_id, a.probe_id)
    # a person's lift frees every probe (the evidence still counts from the recalibration's lift)
    lift(policy, "alpha", by="ops", reason="old workers drained")
    assert old.invoke(_Q, domain="alpha").route == "accept"
    assert run_monitor(policy, act=False)["domains"]["alpha"]["spot_checks"]["counted_since"] == lifted["time"]


def test_a_routine_recalibration_after_a_lift_by_recalibration_is_served(tiny_calibrated, tmp_path):
    """A review's trial: after a lift by recalibration (OLD replaced by NEW), the domain was recalibrated again as
    routine (NEW2, no tightening since) and every guard restarted: each held every answer for review ("this guard
    scores with probe NEW2, which was not recalibrated since the tightening"), restarting freed nothing, and only a
    person's --lift did. The hold is of the probe the tightening was decided on alone: NEW2 is served, and so is
    NEW in a guard not restarted; OLD stays held."""
    from hguard.guard import Guard

    lm, root = tiny_calibrated
    policy, probes, a = _probe_folder_policy(tmp_path, root)
    old = Guard.from_policy(policy, lm=lm)
    _tighten_under(policy, a)
    b = _recalibrated(a, probes, 0.1, "f")
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "normal"  # lifted by the recalibration
    on_new = Guard.from_policy(policy, lm=lm)
    c = _recalibrated(b, probes, 0.05, "e")  # months later, on more answers
    assert c.probe_id not in (a.probe_id, b.probe_id)
    rep = run_monitor(policy)["domains"]["alpha"]
    assert rep["state"]["state"] == "normal" and rep["events"] == []
    fresh = Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha")
    assert (fresh.route, fresh.probe_id) == ("accept", c.probe_id), fresh.reasons
    assert on_new.invoke(_Q, domain="alpha").route == "accept"
    held = old.invoke(_Q, domain="alpha")
    assert held.route == "review" and f"scores with probe {a.probe_id}, one a tightening was decided on" in held.reasons[0]


def test_no_recalibration_frees_a_probe_a_tightening_was_decided_under(tiny_calibrated, tmp_path):
    """A review's trial: alpha tightened under probe OLD, a recalibration NEW lifted it, NEW breached too and was
    tightened, and the operator rolled the probe folder back to OLD: `hguard monitor` lifted the tightening "by
    recalibration" (probe NEW replaced by OLD), and a guard scoring with OLD, whose accepted answers breached the
    target first, accepted again. The domain keeps every probe its tightenings were decided under (state file and
    chain) until a person lifts it: a rollback lifts nothing, and a recalibration on other answers frees neither."""
    import shutil

    from hguard.guard import Guard
    from hguard.monitor import lift

    lm, root = tiny_calibrated
    policy, probes, a = _probe_folder_policy(tmp_path, root)
    log = AuditLog(policy.audit.path)
    _tighten_under(policy, a)
    b = _recalibrated(a, probes, 0.1, "f")
    shutil.copy(probes / "alpha.json", tmp_path / "new.json")
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "normal"  # lifted by the recalibration
    _tighten_under(policy, b)  # NEW breaches too
    state = json.loads(Path(policy.monitor.state).read_text())["domains"]["alpha"]
    assert (state["state"], state["probe_id"], state["replaced_probe_id"]) == ("tightened", b.probe_id, a.probe_id)
    shutil.copy(root / "probes" / "alpha.json", probes / "alpha.json")  # rolled back to OLD
    dry = run_monitor(policy, act=False)["domains"]["alpha"]
    assert dry["lift_on_run"] is None
    assert f"holds probe {a.probe_id} again, which a tightening of this domain was decided under" in dry["kept_despite_recalibration"]
    rep = run_monitor(policy)["domains"]["alpha"]
    assert rep["state"]["state"] == "tightened" and rep["events"] == []
    assert len([r for r in log if r["kind"] == "monitor_lift"]) == 1
    on_old = Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha")
    assert (on_old.route, on_old.probe_id) == ("review", a.probe_id)
    # a recalibration on other answers lifts it; a guard scoring with either breached probe stays held, also from the
    # chain alone (the state file deleted)
    c = _recalibrated(a, probes, 0.05, "e")
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "normal"
    lifted = [r for r in log if r["kind"] == "monitor_lift"][-1]
    assert (lifted["probe_id"], lifted["replaced_probe_id"]) == (c.probe_id, "+".join(sorted((a.probe_id, b.probe_id))))
    assert Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha").route == "accept"
    Path(policy.monitor.state).unlink()
    for cd, file in ((a, root / "probes" / "alpha.json"), (b, tmp_path / "new.json")):
        shutil.copy(file, probes / "alpha.json")
        held = Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha")
        assert (held.route, held.probe_id) == ("review", cd.probe_id)
    # a person's lift frees them
    lift(policy, "alpha", by="ops", reason="probe NEW checked by hand")
    assert Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha").route == "accept"


def test_a_log_moved_aside_keeps_what_a_lift_by_recalibration_holds(tiny_calibrated, tmp_path):
    """A review's trial: after a lift by recalibration (the state file: normal, holding probe OLD), the audit log and
    queue were moved aside; the next `hguard monitor` run carried nothing over (only tightened domains were) and
    rewrote the state file as plain normal, and a guard scoring with OLD accepted again. The hold is carried into the
    fresh chain as a tightening is, and so are the breached probes a tightening carried over holds."""
    import shutil

    from hguard.guard import Guard

    lm, root = tiny_calibrated
    policy, probes, a = _probe_folder_policy(tmp_path, root)
    _tighten_under(policy, a)
    b = _recalibrated(a, probes, 0.1, "f")
    assert run_monitor(policy)["domains"]["alpha"]["state"]["state"] == "normal"  # lifted by the recalibration

    def moved_aside(to: str) -> None:
        (tmp_path / to).mkdir()
        for path in (Path(policy.audit.path), Path(policy.review.queue)):
            if path.exists():
                shutil.move(path, tmp_path / to / path.name)

    moved_aside("old")
    assert Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha").route == "accept"  # NEW, on a fresh log
    dry = run_monitor(policy, act=False)
    assert dry["tightenings_carried_from_state_file"] == ["alpha"]
    assert dry["domains"]["alpha"]["state"]["replaced_probe_id"] == a.probe_id
    rep = run_monitor(policy)
    assert rep["tightenings_carried_from_state_file"] == ["alpha"]
    assert (rep["domains"]["alpha"]["state"]["state"], rep["domains"]["alpha"]["state"]["replaced_probe_id"]) == ("normal", a.probe_id)
    (carried,) = [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_lift"]
    assert "carried over from the monitor state file" in carried["reason"] and carried["replaced_probe_id"] == a.probe_id
    # now in the chain: a guard on OLD is held without the state file, one on NEW served; a second run carries nothing
    Path(policy.monitor.state).unlink()
    assert Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha").route == "accept"
    shutil.copy(probes / "alpha.json", tmp_path / "new.json")
    shutil.copy(root / "probes" / "alpha.json", probes / "alpha.json")
    held = Guard.from_policy(policy, lm=lm).invoke(_Q, domain="alpha")
    assert (held.route, held.probe_id) == ("review", a.probe_id)
    assert run_monitor(policy)["tightenings_carried_from_state_file"] == []
    # NEW tightened in turn, the log moved aside again: the carried tightening still holds OLD as breached
    shutil.copy(tmp_path / "new.json", probes / "alpha.json")
    _tighten_under(policy, b)
    moved_aside("older")
    AuditLog(policy.audit.path).append({"domain": "alpha", "route": "abstain"}, kind="decision")
    st = run_monitor(policy)["domains"]["alpha"]["state"]
    assert (st["state"], st["probe_id"], st["replaced_probe_id"]) == ("tightened", b.probe_id, a.probe_id)


def test_recalibration_on_old_and_reviewed_rows_reports_what_changed(tiny_calibrated, tmp_path):
    from hguard.calibrate.changes import changes_markdown, load_report, report_changes
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.pipeline import calibrate
    from hguard.review.export import export_reviewed

    lm, root = tiny_calibrated
    old = load_report(root / "probes")
    queue = ReviewQueue(tmp_path / "q.sqlite3")
    alpha = [e for e in load_examples(root / "data.jsonl") if e.domain == "alpha"][:8]
    for i, e in enumerate(alpha):  # reviewed spot-checks and review-routed answers, half of them wrong
        queue.enqueue({"audit_id": f"d{i}", "question": e.question + " (field)", "answer": e.answers[0] if i % 2 else "no idea",
                       "domain": "alpha", "risk": 0.3, "spot_check": i < 4})  # fmt: skip
        queue.decide(f"d{i}", verdict="correct" if i % 2 else "hallucinated", reviewer="r")
    assert export_reviewed(queue, tmp_path / "reviewed.jsonl").n_items == 8
    new = calibrate([root / "data.jsonl", tmp_path / "reviewed.jsonl"], tmp_path / "new", lm=lm, system_prompt="answer",
                    max_new_tokens=4, progress=False, plots=False)  # fmt: skip
    ch = report_changes(old, new)
    rows = {r["what"]: r for r in ch["domains"]["alpha"]}
    assert rows["reviewed items used"]["before"] == 0 and rows["reviewed items used"]["after"] == 8
    assert "reviewed items used | 0 | 8" in changes_markdown(ch)
    assert "reviewed items used" not in {r["what"] for r in ch["domains"]["beta"]}
    # the reviewed rows (live traffic the guard picked) are all in training, and said to be: the held-out set is the
    # calibration's own, so the two reports' held-out figures compare the same answers (a trial's went 14 -> 16)
    alpha = new["domains"]["alpha"]
    assert alpha["reviewed_split"].startswith("8 reviewed rows, all in training")
    assert (alpha["n"], alpha["held_out_set"]) == (old["domains"]["alpha"]["n"], old["domains"]["alpha"]["held_out_set"])
    assert "held-out answers" not in {r["what"] for r in ch["domains"]["alpha"]}
    md = changes_markdown(ch)
    assert "- The held-out set is the same rows with the same answers and labels in both" in md
    assert "- 8 reviewed rows, all in training" in md
    reviewed_family = alpha["families"]["families"]["reviewed"]
    assert "never what a held-out figure is measured on" in reviewed_family["no_figure"]
    assert "8 reviewed rows, all in training" in (tmp_path / "new" / "report.md").read_text()
    differs = report_changes({"domains": {"alpha": {"n": 14, "held_out_set": "a"}}},
                             {"domains": {"alpha": {"n": 16, "held_out_set": "b"}}})
    assert "- The held-out set differs (14 -> 16 answers)" in changes_markdown(differs)
    with pytest.raises(InputError, match="no calibration report"):
        load_report(tmp_path / "nowhere")


def test_changes_say_the_same_rows_with_other_answers_are_not_like_with_like():
    """A review: recalibrating the same rows with other generation settings changed 90 of 96 answers, and changes.md
    said "the same answers in both: its figures compare like with like" (the digest was of the row ids alone). The
    digest of the answers and labels scored tells the same rows answered otherwise apart."""
    from hguard.calibrate._pipeline_fit import held_out_digests
    from hguard.calibrate.changes import changes_markdown, report_changes

    rows = [{"id": f"r{i}", "answer": "Paris.", "label": "correct"} for i in range(3)]
    same, relabelled = held_out_digests(rows), held_out_digests([*rows[:2], {**rows[2], "label": "hallucinated"}])
    answered = held_out_digests([*rows[:2], {**rows[2], "answer": "Lyon."}])
    assert same["held_out_set"] == relabelled["held_out_set"] == answered["held_out_set"]
    assert len({same["held_out_answers"], relabelled["held_out_answers"], answered["held_out_answers"]}) == 3
    assert held_out_digests(rows[::-1]) == same  # the order of the rows aside
    before, after = {"n": 3, **same}, {"n": 3, **answered}
    md = changes_markdown(report_changes({"domains": {"alpha": before}}, {"domains": {"alpha": after}}))
    assert "- The held-out set is the same rows in both (3), but their answers or labels differ" in md
    assert "like with like" not in md
    md = changes_markdown(report_changes({"domains": {"alpha": {**before, "held_out_answers": None}}},
                                         {"domains": {"alpha": after}}))
    assert "the previous report records no digest of their answers: they may differ" in md
    md = changes_markdown(report_changes({"domains": {"alpha": before}}, {"domains": {"alpha": dict(before)}}))
    assert "- The held-out set is the same rows with the same answers and labels in both (3)" in md


def test_changes_say_the_previous_calibration_was_of_another_model():
    """A trial: recalibrating on Gemma with --previous naming the SmolLM2 reference calibration wrote "Changes since the
    previous calibration" (AUROC 0.904 -> 0.885, 1166 -> 60 answers), with no word that the model changed. Two
    calibrations of different models are not comparable: changes.md says so first, naming both, and never says their
    figures compare like with like (even where the held-out digests happen to agree)."""
    from hguard.calibrate.changes import changes_markdown, report_changes

    alpha = {"n": 3, "held_out_set": "s", "held_out_answers": "a", "auroc": {"probe": 0.9}}
    smol = {"model": "SmolLM2-135M-Instruct", "fingerprints": {"model_fingerprint": "hf-sha256:aaa"}}
    gemma = {"model": "gemma-3-270m", "fingerprints": {"model_fingerprint": "gguf-sha256:bbb"}}
    ch = report_changes({**smol, "domains": {"alpha": alpha}},
                        {**gemma, "domains": {"alpha": {**alpha, "auroc": {"probe": 0.8}}}})
    assert "SmolLM2-135M-Instruct, model fingerprint hf-sha256:aaa" in ch["other_model"]
    assert "gemma-3-270m, model fingerprint gguf-sha256:bbb" in ch["other_model"]
    md = changes_markdown(ch)
    assert "Changes since" not in md and md.startswith("# This calibration beside a previous one of another model")
    assert "not comparable" in md and "like with like" not in md
    assert "| AUROC probe | 0.900 | 0.800 |" in md and "| | previous (another model) | this calibration |" in md
    same = report_changes({**gemma, "domains": {"alpha": alpha}}, {**gemma, "domains": {"alpha": alpha}})
    assert same["other_model"] is None and "like with like" in changes_markdown(same)
    # a report recording no model fingerprint (an older one) is not judged by it
    assert report_changes({"domains": {"alpha": alpha}}, {**gemma, "domains": {"alpha": alpha}})["other_model"] is None


def _policy_file(tmp_path, n, extra=""):
    """A policy file beside its log, queue and state, and ``n`` accepted decisions (70% hallucinated) in them."""
    from hguard.policy import load_policy

    (tmp_path / "policy.toml").write_text(
        'version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = "queue.sqlite3"\n'
        '[monitor]\nseed = "s"\nstate = "state.json"\n'
        f'[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\nspot_check_rate = 0.5\n{extra}'
    )
    policy = load_policy(tmp_path / "policy.toml")
    _deploy(tmp_path, policy, n, halluc_rate=0.7)
    return policy


def _anchored_deployment(tmp_path):
    """A policy whose log's heads go to an anchor, deployed with 60 decisions of geo, 70% of them hallucinated."""
    from hguard.policy import load_policy

    (tmp_path / "policy.toml").write_text(
        'version = 1\n[audit]\npath = "audit.jsonl"\nanchor = "anchor/heads.jsonl"\n[review]\nqueue = "queue.sqlite3"\n'
        '[monitor]\nseed = "s"\nstate = "state.json"\n'
        '[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\nspot_check_rate = 0.5\non_breach = "review"\n'
    )
    (tmp_path / "anchor").mkdir()
    policy = load_policy(tmp_path / "policy.toml")
    _deploy(tmp_path, policy, 60, halluc_rate=0.7, log=AuditLog.from_policy(policy))
    return policy


def test_the_monitors_records_reach_the_anchor_so_cutting_a_tightening_off_is_caught(tmp_path):
    from hguard.audit import verify

    policy = _anchored_deployment(tmp_path)
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    records = list(AuditLog(policy.audit.path))
    tighten = next(r for r in records if r["kind"] == "monitor_tighten")
    anchored = [json.loads(x) for x in policy.audit.anchor.read_text().splitlines()]
    assert {"seq": tighten["seq"], "hash": tighten["hash"]} in anchored
    assert verify(policy.audit.path, anchor=policy.audit.anchor).ok
    lines = policy.audit.path.read_bytes().splitlines(keepends=True)
    policy.audit.path.write_bytes(b"".join(lines[: tighten["seq"]]))  # the tightening (and what followed) cut off
    assert not verify(policy.audit.path, anchor=policy.audit.anchor).ok


def test_a_tightening_on_record_whose_anchoring_failed_is_still_mirrored_in_the_state_file(tmp_path, anchor_full_after):
    """The monitor's tightening record written, then its head not anchored (the anchor's disk full): the run raised,
    the state file a guard reads was not written, and the domain went on accepting though the chain holds the
    tightening. The record is on disk: the run goes on, the state file says tightened, and a warning says what failed."""
    policy = _anchored_deployment(tmp_path)
    anchor_full_after("monitor_tighten")
    with pytest.warns(UserWarning, match=r"the monitor's monitor_tighten record is written to the audit log .*"
                                         r"append raised after writing it \(AuditError: cannot write the audit anchor"):
        rep = run_monitor(policy)
    assert rep["domains"]["geo"]["state"]["state"] == "tightened"
    assert MonitorState(policy.monitor.state).get("geo").state == "tightened"
    assert [r["kind"] for r in AuditLog(policy.audit.path)].count("monitor_tighten") == 1


def test_a_tightening_on_record_whose_anchoring_failed_is_mirrored_under_warnings_as_errors(tmp_path, anchor_full_after):
    """Under warnings as errors (python -W error, pytest's filterwarnings = error) the warning that the tightening
    record is written though its anchoring failed was raised in place of the run, before the state file was written:
    a guard kept accepting in a domain the chain holds tightened. The run goes on and the state file says tightened."""
    import warnings


    policy = _anchored_deployment(tmp_path)
    anchor_full_after("monitor_tighten")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = run_monitor(policy)
    assert rep["domains"]["geo"]["state"]["state"] == "tightened"
    assert MonitorState(policy.monitor.state).get("geo").state == "tightened"


def test_without_matplotlib_the_monitor_still_estimates_and_leaves_the_html_report_out(tmp_path, capsys, monkeypatch):
    import importlib.util

    from hguard.cli import main

    _policy_file(tmp_path, 60, 'on_breach = "review"\naccept_below = 0.3\n')
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["html_report"] is None and out["domains"]["geo"]["spot_checks"]["reviewed"] > 0
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run", "--exit-code"]) == 3  # 70% wrong
    text = capsys.readouterr().out
    assert "report: none (matplotlib is not installed; pip install 'hguard[plots]'" in text
    assert "accept_below 0.3 is hand-set in the policy: no calibration certifies it" in text
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--report", str(tmp_path / "r.html")]) == 2
    assert "--report needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "monitor-report.html").exists()


def test_monitor_help_says_every_exit_status_the_command_gives(tmp_path, capsys):
    """An ops trial: `hguard monitor --help` said --exit-code exits 3 on an alarm, "0 otherwise", but a log that does
    not verify exits 1 and an invalid policy 2, so a cron wrapper keyed on 3 missed a tampered log. The help says each
    status, as the command gives it, and that a scheduled job must alarm on any non-zero one."""
    from hguard.cli import main
    from hguard.cli.monitor import build_parser

    said = " ".join(build_parser().format_help().split())
    assert "0 otherwise" not in said
    for words in ("0 the run completed and, with --exit-code, found nothing to alarm on",
                  "1 the audit log does not verify", "2 a usage error (a bad flag, an invalid policy",
                  "3 the alarm above", "A scheduled job must alarm on any non-zero status, not on 3 alone"):
        assert words in said, words
    policy = _policy_file(tmp_path, 60, 'on_breach = "review"\n')
    path = str(tmp_path / "policy.toml")
    assert main(["monitor", "--policy", path, "--dry-run", "--exit-code"]) == 3
    log = Path(policy.audit.path)
    whole = log.read_text()
    log.write_text(whole.replace('"hallucinated"', '"correct"', 1) if '"hallucinated"' in whole
                   else whole.replace('"kind":"decision"', '"kind":"note"', 1))
    for flags in ([], ["--exit-code"]):  # 1 with or without --exit-code: a status a cron job keyed on 3 misses
        assert main(["monitor", "--policy", path, "--dry-run", *flags]) == 1
        assert "hguard monitor: " in capsys.readouterr().err
    log.write_text(whole)
    (tmp_path / "bad.toml").write_text("version = 1\n[monitor]\nreview_backlog_max_age_hours = 0\n")
    assert main(["monitor", "--policy", str(tmp_path / "bad.toml"), "--exit-code"]) == 2
    with pytest.raises(SystemExit) as bad_flag:  # argparse's own exit
        main(["monitor", "--policy", path, "--exit-code", "--bogus"])
    assert bad_flag.value.code == 2
    assert main(["monitor", "--policy", path, "--dry-run"]) == 0  # in breach, without --exit-code


def test_a_folder_given_as_the_audit_log_is_said_to_be_one(tmp_path, capsys):
    """A bad-input trial: `[audit] path = "logs"` (the folder the log is in) was reported as "no audit log at logs";
    the monitor and `hguard audit` say it is a folder and to name the log file in it."""
    from hguard.cli import main

    _policy_file(tmp_path, 0)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "guard.jsonl").write_text("")
    (tmp_path / "folder.toml").write_text((tmp_path / "policy.toml").read_text().replace('"audit.jsonl"', '"logs"'))
    for argv in (["monitor", "--policy", str(tmp_path / "folder.toml"), "--dry-run"],
                 ["monitor", "--policy", str(tmp_path / "policy.toml"), "--audit", str(tmp_path / "logs"), "--dry-run"],
                 ["audit", "show", str(tmp_path / "logs")], ["audit", "verify", str(tmp_path / "logs")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"audit log path {tmp_path / 'logs'} is a folder, not a log file; name the log file in it (e.g. " \
               f"{tmp_path / 'logs' / 'guard.jsonl'})" in err and err.count("\n") == 1, err
        assert "no audit log" not in err


def test_an_empty_audit_log_is_said_to_hold_no_records_yet(tmp_path, capsys):
    """A bad-input trial: `hguard monitor --exit-code` on a 0-byte log (a guard that has written nothing yet, or the
    wrong path) exited 0 without a word of it. One line says so; the run completes (0, as the README's table says)."""
    from hguard.cli import main

    policy = _policy_file(tmp_path, 0)
    Path(policy.audit.path).write_text("")
    said = f"hguard monitor: {policy.audit.path} holds no records yet (none but the monitor's own): a guard that has " \
           "written nothing, or the wrong path"
    for flags in (["--exit-code"], ["--exit-code", "--json"], ["--exit-code"]):  # the third: after the monitor's own
        assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), *flags]) == 0
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    _policy_file(tmp_path, 60, 'on_breach = "review"\n')  # a guard's decisions: not said
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run"]) == 0
    assert "holds no records yet" not in capsys.readouterr().err


def test_cli_prints_the_estimate_writes_the_report_and_lifts(tmp_path, capsys):
    from hguard.cli import main

    _policy_file(tmp_path, 60, 'on_breach = "review"\n')
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    geo = out["domains"]["geo"]
    assert geo["state"]["state"] == "tightened" and geo["spot_checks"]["reviewed"] > 0
    assert Path(out["html_report"]).is_file() and "_risk_panels" not in geo
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml")]) == 0
    text = capsys.readouterr().out
    assert "state=tightened" in text and "upper bound" in text
    # a scheduled job hears of the alarm without parsing --json (a compliance team's trial: exit 0 on a breach)
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run", "--exit-code"]) == 3
    assert "hguard monitor: alarm (exit 3): geo in breach, drifted or tightened" in capsys.readouterr().err
    routes = geo["decisions"]
    said = ", ".join(f"{n} {r}" for r, n in sorted(routes.items()))
    assert f"decisions={geo['n_decisions']} ({said})" in text and "{" not in text  # words, not a Python dict
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--lift", "geo", "--by", "ops", "--reason", "ok"]) == 0
    assert "lifted" in capsys.readouterr().out
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run"]) == 0
    text = capsys.readouterr().out  # the count restarts at the lift, and says so; every drift signal has a line
    assert "; counted since the lift at " in text
    assert all(f"    drift {sig}: " in text for sig in ("risk", "similarity", "ood_distance"))
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--lift", "geo"]) == 2
    assert "--by" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text('version = 1\n[domains.geo]\nspot_check_rate = 2.0\n')
    assert main(["monitor", "--policy", str(tmp_path / "bad.toml")]) == 2
    assert "domains.geo.spot_check_rate" in capsys.readouterr().err


def test_review_page_marks_spot_checks_and_shows_the_domain_state(tmp_path):
    from starlette.testclient import TestClient

    from hguard.monitor import write_state
    from hguard.review import create_app

    q = ReviewQueue(tmp_path / "q.sqlite3")
    q.enqueue({"audit_id": "s1", "question": "Spot?", "answer": "A.", "domain": "geo", "risk": 0.1, "spot_check": True,
               "reasons": ["spot-check of an accepted answer: u < rate"]})  # fmt: skip
    q.enqueue({"audit_id": "r1", "question": "Routed?", "answer": "B.", "domain": "lit", "risk": 0.6})
    write_state(tmp_path / "state.json", {"geo": DomainState("tightened", "review", 0.0, "2026-01-01T00:00:00", "x", None,
                                                            "lower bound 0.4 exceeds target 0.2")}, "pid")  # fmt: skip
    app = create_app(q, token=None, read_only_open=True, monitor_state=tmp_path / "state.json")
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    page = client.get("/").text
    assert page.count('class="spot-check"') == 1 and "tightened since 2026-01-01T00:00:00" in page
    assert "lower bound 0.4 exceeds target 0.2" in page and ">normal<" in page
    item = client.get("/items/s1").text
    assert "spot-check of an accepted answer (the user got it)" in item
    assert "routed to review" in client.get("/items/r1").text


def test_monitor_takes_no_decision_on_a_log_that_fails_verification(tmp_path):

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    _deploy(tmp_path, policy, 60, halluc_rate=0.7)
    lines = Path(policy.audit.path).read_text().splitlines()
    lines[3] = lines[3].replace('"route":"accept"', '"route":"review"')  # an edited decision
    Path(policy.audit.path).write_text("\n".join(lines) + "\n")
    before = Path(policy.audit.path).read_text()
    for act in (True, False):
        with pytest.raises(AuditIntegrityError, match=r"fails verification .*line 4: .*hguard audit verify"):
            run_monitor(policy, act=act)
    assert Path(policy.audit.path).read_text() == before and not Path(policy.monitor.state).exists()


def test_monitor_report_and_review_export_never_replace_the_log_queue_or_state(tmp_path, capsys):
    from hguard.cli import main

    _policy_file(tmp_path, 40)
    kept = {n: (tmp_path / n).read_bytes() for n in ("audit.jsonl", "policy.toml")}
    n_decided = len(ReviewQueue(tmp_path / "queue.sqlite3").decided())
    for name, what in (("audit.jsonl", "audit log"), ("queue.sqlite3", "review queue"), ("state.json", "monitor state"),
                       ("policy.toml", "policy file")):
        assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--report", str(tmp_path / name)]) == 2
        assert f"is the {what}; writing there would destroy it" in capsys.readouterr().err
    for name, what in (("audit.jsonl", "audit log"), ("queue.sqlite3", "review queue")):
        assert main(["review", "export", "--policy", str(tmp_path / "policy.toml"), "--out", str(tmp_path / name)]) == 2
        assert f"is the {what}; writing there would destroy it" in capsys.readouterr().err
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--report", str(tmp_path / "nodir" / "r.html")]) == 2
    assert main(["review", "export", "--policy", str(tmp_path / "policy.toml"), "--out", str(tmp_path / "nodir" / "x.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "nodir").exists()
    # an audit archive, another policy's log, a data file: --report replaced any of them (an archive's records lost)
    (tmp_path / "audit.0-89.jsonl").write_text('{"archived": 1}\n')
    (tmp_path / "ctx.txt").write_text("a passage")
    kept.update({n: (tmp_path / n).read_bytes() for n in ("audit.0-89.jsonl", "ctx.txt")})
    for name in ("audit.0-89.jsonl", "ctx.txt"):
        for dry in ([], ["--dry-run"]):
            assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--report", str(tmp_path / name), *dry]) == 2
            assert "already exists and is not a .html or .htm file" in capsys.readouterr().err
    # a hard link to the log named like a report: a dry run wrote its HTML over the log through it
    os.link(tmp_path / "audit.jsonl", tmp_path / "hard.html")
    for dry in ([], ["--dry-run"]):
        assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--report", str(tmp_path / "hard.html"), *dry]) == 2
        assert "hard.html is the audit log; writing there would destroy it" in capsys.readouterr().err
    assert {n: (tmp_path / n).read_bytes() for n in kept} == kept and not (tmp_path / "state.json").exists()
    assert len(ReviewQueue(tmp_path / "queue.sqlite3").decided()) == n_decided > 0
    # a dry run says what a real run would do, with the bound the breach rule reads
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "lower bound" in text and "the breach rule's bound)" in text and "WOULD TIGHTEN (breach)" in text
    assert "DRY RUN: nothing appended, no state changed" in text.splitlines()[0]
    # labelled as audit verify labels its policy_hash, and told apart from it: a bank trial read the two as one
    # policy's two names (policy_id hashes the guarantee alone, policy_hash every setting)
    assert re.search(r"\), policy_id [0-9a-f]+ \(the guarantee: each domain's target and confidence; not `audit "
                     r"verify`'s policy_hash, which hashes every setting\);", text.splitlines()[0])
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and "(dry run)" in Path(dry["html_report"]).read_text()
    # review list --json: stdout holds only JSON lines, the counts go to stderr
    assert main(["review", "list", "--policy", str(tmp_path / "policy.toml"), "--decided", "--json"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() and all(json.loads(line) for line in out.out.splitlines()) and "decided" in out.err
    assert main(["review", "list", "--policy", str(tmp_path / "missing.toml")]) == 2


def test_a_verdict_record_never_committed_to_the_queue_counts_as_the_chain_holds_it(tmp_path):
    policy = _pol(tmp_path, spot_check_rate=0.5)
    log, queue = _deploy(tmp_path, policy, 10, halluc_rate=0.0)
    rec = log.append({"domain": "geo", "route": "review", "risk": 0.6, "policy_id": policy_id(policy),
                      "question": "q", "answer": "a"}, kind="decision")  # fmt: skip
    queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo"})
    orphan = log.append({"item_id": rec.id, "decision_audit_id": rec.id, "verdict": "hallucinated", "label": "hallucinated",
                         "reviewer": "sre", "decided_at": "T"}, kind="review_verdict")  # its decide stopped here
    rep = run_monitor(policy, act=False)
    assert rep["verdict_records_not_committed_in_queue"] == {"n": 1, "records": [orphan.id]}
    assert _routed_counts(rep["domains"]["geo"]) == {"reviewed": 1, "hallucinated": 1, "correct": 0}  # the chain's
    assert "1 verdict(s) in the audit chain are not the queue's committed verdict of their item" in summary(rep)
    queue.decide(rec.id, verdict="correct", reviewer="sre2", supersede=True)
    again = run_monitor(policy, act=False)  # a later "correct" does not erase the reviewer's "hallucinated"
    assert again["hallucinated_verdicts_contradicted"]["n"] == 1
    assert _routed_counts(again["domains"]["geo"]) == {"reviewed": 1, "hallucinated": 1, "correct": 0}
    assert rep["review_decisions_not_in_queue"]["n"] == 0
    held = log.append({"domain": "geo", "route": "review", "risk": 0.6, "policy_id": policy_id(policy),
                       "question": "q2", "answer": "a"}, kind="decision")  # the process stopped before the queue
    rep = run_monitor(policy, act=False)
    assert rep["review_decisions_not_in_queue"] == {"n": 1, "items": [held.id]}
    assert "1 decision(s) held for review or picked for a spot-check are not in the review queue" in summary(rep)


def test_a_redacted_decision_missing_from_the_queue_with_no_copy_kept_is_not_promised_back(tmp_path):
    """A redacting log's record holds hashes: with no copy kept beside the queue, no guard start can put the answer
    back (the start says so), while the monitor said nobody reviews it "until a guard started on this policy puts
    them back" (an operator's upgrade trial). The two are told apart, with the guard's advice for the second."""
    policy = _pol(tmp_path)
    log, queue = _deploy(tmp_path, policy, 4, halluc_rate=0.0)
    redacting = AuditLog(policy.audit.path, redact=True)
    fields = {"domain": "geo", "route": "review", "risk": 0.6, "policy_id": policy_id(policy), "answer": "a"}
    kept = redacting.append({**fields, "question": "q1"}, kind="decision")
    lost = redacting.append({**fields, "question": "q2"}, kind="decision")
    queue.keep_pending({"audit_id": kept.id, "question": "q1", "answer": "a", "domain": "geo"})
    rep = run_monitor(policy, act=False)
    assert rep["review_decisions_not_in_queue"] == {"n": 1, "items": [kept.id]}
    assert rep["review_decisions_not_in_queue_for_good"] == {"n": 1, "items": [lost.id]}
    (back,) = [x for x in summary(rep).splitlines() if kept.id in x]
    (gone,) = [x for x in summary(rep).splitlines() if lost.id in x]
    assert "until a guard started on this policy puts them back" in back
    assert "cannot be put back" in gone and "review them from the application's own copy" in gone
    assert "until a guard started" not in gone

def test_the_monitor_state_replays_only_what_the_chain_gained_since_it_last_verified(tmp_path, monkeypatch):
    import hguard.audit as audit_module

    key = b"k" * 32
    log = AuditLog(tmp_path / "audit.jsonl", key=key)
    for _ in range(3):
        log.append({"domain": "geo", "route": "review"})
    state = tmp_path / "state.json"
    ms = MonitorState(state, log.path, key=key)
    starts = []
    real = audit_module.verify
    monkeypatch.setattr(audit_module, "verify", lambda *a, **k: starts.append(k.get("start")) or real(*a, **k))
    assert ms.get("geo") is None and starts == [None]  # the first replay reads the whole chain
    log.append({"domain": "geo", "accept_below": 0.1, "action": "stricter", "reason": "breach"}, kind="monitor_tighten")
    state.write_text('{"format": "hguard-monitor-state", "domains": {}}')  # the monitor rewrote its file
    st = ms.get("geo")
    assert st.state == "tightened" and st.accept_below == 0.1  # the tightening appended since is replayed
    assert starts[-1] is not None and starts[-1].seq == 2  # from where the last replay ended, not from line 1
    # a lift appended by someone without the key is not replayed: the domain is held
    with open(log.path, "a", encoding="utf-8") as f:
        head = real(log.path, key=key)
        rec = {"domain": "geo", "id": "f" * 32, "kind": "monitor_lift", "seq": head.head_seq + 1, "time": "t",
               "prev_hash": head.head_hash, "reason": "forged"}
        rec["hash"] = audit_module.record_hash(rec)
        f.write(audit_module.canonical_json(rec) + "\n")
    state.write_text('{"format": "hguard-monitor-state", "domains": {"geo": {"state": "normal"}}}')
    held = ms.get("geo")
    assert held.state == "tightened" and held.accept_below == 0.0 and "cannot be replayed" in held.reason


def test_a_policy_edit_keeps_the_evidence_of_domains_whose_guarantee_stands(tmp_path):
    """Adding a domain changes the policy's id, not geo's guarantee: geo's decisions, spot-checks and verdicts
    still count. Changing geo's target makes them evidence of another claim: left out, and neither reported
    as missing from the queue nor as spot-check selection mismatches."""
    from hguard.monitor import guarantee_of

    policy = _pol(tmp_path, spot_check_rate=0.5)
    _deploy(tmp_path, policy, 40, halluc_rate=0.1, guarantee=True)
    before = run_monitor(policy, act=False)
    grown = policy.model_copy(update={"domains": {**policy.domains, "hr": policy.domains["geo"]}})
    assert policy_id(grown) != policy_id(policy) and guarantee_of(grown, "geo") == guarantee_of(policy, "geo")
    after = run_monitor(grown, act=False)
    assert after["foreign_decisions_left_out"] == 0
    assert after["domains"]["geo"]["spot_checks"] == before["domains"]["geo"]["spot_checks"]
    assert after["domains"]["geo"]["spot_checks"]["reviewed"] > 5
    stricter = policy.model_copy(update={"domains": {
        **policy.domains, "geo": policy.domains["geo"].model_copy(update={"target_hallucination_rate": 0.1})}})
    with pytest.raises(PolicyError, match="guarantee for domain 'geo'"):
        run_monitor(stricter, act=False)  # the log was last written under geo's other guarantee
    log = AuditLog(policy.audit.path)
    log.append({"request_id": "new", "policy_id": policy_id(stricter), "domain": "geo", "route": "review", "risk": 0.5,
                "signals": {}, "question": "q", "answer": "a", "guarantee": guarantee_of(stricter, "geo")}, kind="decision")
    ReviewQueue(policy.review.queue, audit=log).recover()
    moved = run_monitor(stricter, act=False)
    assert moved["foreign_decisions_left_out"] == 40
    assert moved["review_decisions_not_in_queue"]["n"] == 0
    assert moved["domains"]["geo"]["spot_checks"]["reviewed"] == 0
    assert moved["domains"]["geo"]["selection_audit"]["mismatches"] == []  # its spot-checks are not "cherry-picked"
    assert before["domains"]["geo"]["selection_audit"]["selected"] > 5


def test_the_monitor_reads_spot_checks_and_domains_from_the_chain_not_the_queue_columns(tmp_path):
    import sqlite3

    policy = _pol(tmp_path, spot_check_rate=0.5)
    log, queue = _deploy(tmp_path, policy, 30, halluc_rate=0.0)
    before = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    held = []
    for i in range(3):  # answers routed to review, queued and judged hallucinated
        rec = log.append({"request_id": f"h{i}", "policy_id": policy_id(policy), "domain": "geo", "route": "review",
                          "risk": 0.5, "signals": {}, "question": "q", "answer": "a"}, kind="decision")
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo"})
        held.append(rec.id)
    for h in held[1:]:
        queue.decide(h, verdict="hallucinated", reviewer="tester")
    with sqlite3.connect(queue.path) as conn:  # someone makes them look like spot-checks of accepted answers
        conn.executemany("UPDATE review_items SET spot_check = 1 WHERE audit_id = ?", [(h,) for h in held])
    with pytest.raises(VerdictRefused, match="marked a spot-check, but its decision record .* was routed to 'review'"):
        queue.decide(held[0], verdict="hallucinated", reviewer="tester")  # before the verdict: refused
    rep = run_monitor(policy, act=False)
    assert rep["domains"]["geo"]["spot_checks"] == before  # the forged flags add no spot-check evidence
    assert rep["queue_items_differing_from_log"]["n"] == 3
    other = next(it for it in queue.decided() + queue.pending(limit=None) if it.audit_id not in held)
    with sqlite3.connect(queue.path) as conn:  # a risk edited in the queue alone is named too
        conn.execute("UPDATE review_items SET risk = 0.01 WHERE id = ?", (other.id,))
    rep = run_monitor(policy, act=False)
    assert rep["queue_items_differing_from_log"]["n"] == 4 and other.id in rep["queue_items_differing_from_log"]["items"]
    # an answer edited in the queue (a compliance team's trial: `review list` said NO VERDICT CAN BE RECORDED, the
    # monitor named nothing), with the way to restore the item from its decision record
    edited = next(it for it in queue.decided() + queue.pending(limit=None) if it.audit_id not in held and it.id != other.id)
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'The capital of France is Lyon.' WHERE id = ?", (edited.id,))
    rep = run_monitor(policy, act=False)
    assert rep["queue_items_differing_from_log"]["n"] == 5
    text = summary({**rep, "queue_items_differing_from_log": {"n": 1, "items": [edited.id]}})
    assert "(question, context, answer, domain, risk or spot-check flag" in text
    assert (f"delete its row (sqlite3 {policy.review.queue} \"DELETE FROM review_items WHERE id = '{edited.id}'\") and "
            "start a guard on this policy, which puts it back from the record") in text


def test_the_monitor_advises_deleting_an_edited_row_only_where_a_guard_start_puts_it_back_whole(tmp_path):
    """A review's trial of the monitor's advice for an edited item ("delete its row and start a guard"): a verdict only
    the queue held was lost with the row, the "decide it again with the log" line beside it was refused (the item is
    edited), a redacting log's item was lost for good, and a rotated log's never came back (a guard start reads the
    newest file alone)."""
    import sqlite3

    from hguard.monitor import SPOT, spot_check_decision

    def deployed(name, redact=False):
        policy = _pol(tmp_path / name, spot_check_rate=1.0)
        log = AuditLog(policy.audit.path, redact=redact)
        rec = log.append({"request_id": "d0", "policy_id": policy_id(policy), "domain": "geo", "route": "accept",
                          "risk": 0.1, "signals": {}, "question": "Capital of Turkey?", "answer": "Istanbul"},
                         kind="decision")  # fmt: skip
        log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
        ReviewQueue(policy.review.queue).enqueue({"audit_id": rec.id, "question": "Capital of Turkey?",
                                                  "answer": "Istanbul", "domain": "geo", "spot_check": True})
        return policy, log, rec.id

    def edit(policy, item, answer="Istanbul."):
        with sqlite3.connect(policy.review.queue) as conn:
            conn.execute("UPDATE review_items SET answer = ? WHERE id = ?", (answer, item))

    # a plain log, the verdict on record: deleting the row and starting a guard puts it back whole, decided
    policy, log, a = deployed("plain")
    queue = ReviewQueue(policy.review.queue, audit=log)
    v = queue.decide(a, verdict="hallucinated", reviewer="alice")
    edit(policy, a)
    rep = run_monitor(policy, act=False)
    entry = rep["queue_items_differing_from_log"]
    assert entry["restored_by_a_guard_start"] == [a] and entry["not_restored"] == []
    text = summary(rep)
    delete = re.search(r'\(sqlite3 \S+ "(DELETE FROM review_items WHERE id = \'\w+\')"\) and start a guard', text)
    with sqlite3.connect(policy.review.queue) as conn:  # as the advice says
        conn.execute(delete.group(1))
    assert queue.recover().decided == {a: next(r for r in log if r["id"] == v.audit_record_id)}  # a guard start's
    assert queue.get(a).verdict == v and queue.get(a).answer == "Istanbul"
    assert run_monitor(policy, act=False)["queue_items_differing_from_log"]["n"] == 0

    # a verdict only the queue holds (--no-audit): deleting would lose it; the advice restores the text, then puts it on
    # record, and the 'decide it again' line of the other notice is not given for the edited item
    policy, log, b = deployed("queue-only")
    ReviewQueue(policy.review.queue).decide(b, verdict="hallucinated", reviewer="alice", note="it is Ankara")
    edit(policy, b)
    rep = run_monitor(policy, act=False)
    ((lost,),) = [rep["queue_items_differing_from_log"]["not_restored"]]
    assert lost["item"] == b and "hallucinated by alice is in the queue only" in lost["lost"]
    assert rep["queue_items_differing_from_log"]["restored_by_a_guard_start"] == []
    assert rep["verdicts_not_in_chain"]["n"] == 1 and rep["verdicts_not_in_chain"]["to_put_on_record"] == []
    text = summary(rep)
    assert "DELETE FROM" not in text and f"Do not delete the row of {b}" in text
    assert f"`hguard audit show {policy.audit.path} --id {b}`" in text and f"`hguard review decide {b} --verdict V" in text
    assert text.count("hguard review decide") == 1  # one instruction for the item, not two contradicting ones
    edit(policy, b, "Istanbul")  # as the advice says: its fields set back to the record's, then decided again
    ReviewQueue(policy.review.queue, audit=log).decide(b, verdict="hallucinated", reviewer="bob")
    (rec,) = [r for r in log if r["kind"] == "review_verdict"]
    assert rec["queue_verdict"]["reviewer"] == "alice" and rec["queue_verdict"]["note"] == "it is Ankara"
    assert run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]["hallucinated"] == 1

    # a redacting log's record holds hashes, and a rotated log's is in an archive: no delete advice either
    policy, log, c = deployed("redacting", redact=True)
    edit(policy, c)
    rep = run_monitor(policy, act=False)
    assert "holds hashes, not text" in rep["queue_items_differing_from_log"]["not_restored"][0]["lost"]
    assert "DELETE FROM" not in summary(rep)
    policy, log, d = deployed("rotated")
    ReviewQueue(policy.review.queue, audit=log).decide(d, verdict="hallucinated", reviewer="alice")
    log.rotate()
    edit(policy, d)
    rep = run_monitor(policy, act=False)
    assert "in an archive of the rotated log" in rep["queue_items_differing_from_log"]["not_restored"][0]["lost"]
    assert "DELETE FROM" not in summary(rep)
    with sqlite3.connect(policy.review.queue) as conn:  # what the advice no longer says: the item would be gone
        conn.execute("DELETE FROM review_items")
    assert ReviewQueue(policy.review.queue, audit=log).recover().put_back == []


def test_the_monitor_gives_no_decide_again_advice_for_a_verdict_whose_record_was_cut(tmp_path):
    """A second review: an item decided WITH the log whose verdict record was cut off the log's end was listed under
    'to_put_on_record' and told "decide it again with the log" (an edited one: "then put its verdict on record by
    deciding it again"), which `decide` refuses; only a verdict without a record id is in the queue only."""
    import sqlite3

    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, spot_check_rate=1.0)
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    ids = []
    for i, (q, a) in enumerate([("Capital of Turkey?", "Istanbul"), ("Capital of Peru?", "Cusco")]):
        rec = log.append({"request_id": f"d{i}", "policy_id": policy_id(policy), "domain": "geo", "route": "accept",
                          "risk": 0.1, "signals": {}, "question": q, "answer": a}, kind="decision")  # fmt: skip
        log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
        queue.enqueue({"audit_id": rec.id, "question": q, "answer": a, "domain": "geo", "spot_check": True})
        ids.append(rec.id)
    a, b = ids
    va, vb = (queue.decide(i, verdict="hallucinated", reviewer="alice") for i in ids)
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(lines[:-2]))  # both verdict records cut off the end
    with sqlite3.connect(queue.path) as conn:  # b's row edited too
        conn.execute("UPDATE review_items SET answer = 'Cusco.' WHERE id = ?", (b,))
    rep = run_monitor(policy, act=False)
    entry = rep["verdicts_not_in_chain"]
    assert entry["to_put_on_record"] == [] and [m["item"] for m in entry["records_missing"]] == [a]
    ((lost,),) = [rep["queue_items_differing_from_log"]["not_restored"]]
    assert lost["item"] == b and f"its record {vb.audit_record_id} is not in the chain" in lost["lost"]
    text = summary(rep)
    assert "hguard review decide" not in text and "in the queue only" not in text
    assert f"its record {va.audit_record_id} is not in the chain: records cut, or another log" in text
    assert "hguard audit verify" in text
    with pytest.raises(VerdictRefused, match="records cut off the log"):  # why no decide advice is given
        ReviewQueue(policy.review.queue, audit=AuditLog(policy.audit.path)).decide(a, verdict="hallucinated",
                                                                                  reviewer="bob")


def test_the_monitor_advises_supersede_where_the_log_holds_an_uncommitted_verdict_on_the_decision(tmp_path):
    """A second review: "deciding it again with the log (the same verdict is recorded)" was refused where the log
    already held a verdict on the decision that the queue never committed (a decide stopped before its commit)."""
    import sqlite3

    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, spot_check_rate=1.0)
    log = AuditLog(policy.audit.path)
    audited = ReviewQueue(policy.review.queue, audit=log)
    rec = log.append({"request_id": "d0", "policy_id": policy_id(policy), "domain": "geo", "route": "accept",
                      "risk": 0.1, "signals": {}, "question": "Capital of Turkey?", "answer": "Istanbul"},
                     kind="decision")  # fmt: skip
    log.append(spot_check_decision(policy, "geo", rec.id, 10**9), kind=SPOT)
    audited.enqueue({"audit_id": rec.id, "question": "Capital of Turkey?", "answer": "Istanbul", "domain": "geo",
                     "spot_check": True})
    audited.decide(rec.id, verdict="hallucinated", reviewer="carol")
    with sqlite3.connect(audited.path) as conn:  # carol's decide stopped between the log and the queue's commit
        conn.execute("UPDATE review_items SET status='pending', verdict=NULL, reviewer=NULL, decided_at=NULL, "
                     "verdict_audit_id=NULL, verdict_audit_hash=NULL")
    ReviewQueue(policy.review.queue).decide(rec.id, verdict="hallucinated", reviewer="alice")  # --no-audit
    rep = run_monitor(policy, act=False)
    assert rep["verdicts_not_in_chain"]["to_put_on_record_superseding"] == [rec.id]
    text = summary(rep)
    assert f"`hguard review decide {rec.id} --verdict V --reviewer NAME --policy FILE --supersede`" in text
    assert "(the same verdict is recorded; another needs --supersede)" not in text
    with pytest.raises(VerdictRefused, match="already holds a verdict"):  # why: without it, refused
        audited.decide(rec.id, verdict="hallucinated", reviewer="bob")
    audited.decide(rec.id, verdict="hallucinated", reviewer="bob", supersede=True)  # as the advice says
    assert run_monitor(policy, act=False)["verdicts_not_in_chain"]["n"] == 0


def test_the_monitor_says_a_deleted_item_whose_decision_is_in_an_archive_is_not_put_back(tmp_path):
    """A second review: a held decision in a rotated log's archive whose row was deleted was counted as put back by a
    guard start (which reads the newest file alone); it is counted with those no guard start puts back."""
    import sqlite3

    policy = _pol(tmp_path)
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    rec = log.append({"request_id": "r0", "policy_id": policy_id(policy), "domain": "geo", "route": "review",
                      "risk": 0.6, "signals": {}, "question": "Capital of Peru?", "answer": "Lima"}, kind="decision")
    queue.enqueue({"audit_id": rec.id, "question": "Capital of Peru?", "answer": "Lima", "domain": "geo", "risk": 0.6})
    queue.decide(rec.id, verdict="correct", reviewer="alice")
    log.rotate()
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items")
    rep = run_monitor(policy, act=False)
    assert rep["review_decisions_not_in_queue"]["n"] == 0
    assert rep["review_decisions_not_in_queue_for_good"]["items"] == [rec.id]
    assert "in an archive of the rotated log" in summary(rep)
    assert queue.recover(list(log)).put_back == []  # what a guard start reads: the newest file alone


def test_the_monitors_figures_are_the_same_after_the_decided_items_are_archived(tmp_path):
    """An SRE's soak trial: the queue grows for the life of the deployment. Archived (`hguard review archive`), the
    decided items leave it; the monitor's figures (reviewed spot-checks, verdicts on held answers) still count their
    verdicts, and it reads neither as decisions missing from the queue nor as verdicts the queue never committed."""
    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, spot_check_rate=0.5)
    log, queue = _deploy(tmp_path, policy, 40, halluc_rate=0.3, seed=2)
    _review_routed(policy, log, queue, 4, "hallucinated")
    _review_routed(policy, log, queue, 3, "correct")
    spot, i = None, 0
    while spot is None:  # a spot-check selected, still pending
        i += 1
        rec = log.append({"request_id": f"p{i}", "policy_id": policy_id(policy), "domain": "geo", "route": "accept",
                          "risk": 0.1, "signals": {}, "question": "q", "answer": "a"}, kind="decision")
        spot = spot_check_decision(policy, "geo", rec.id, 10**9)
    log.append(spot, kind=SPOT)
    queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo", "spot_check": True})
    at = "2100-01-02T00:00:00+00:00"  # both runs at one time: the review queue's backlog counts its ages up to it
    before = run_monitor(policy, act=False, now=at)
    n_decided = len(queue.decided())
    assert n_decided > 10 and before["domains"]["geo"]["spot_checks"]["pending"] == 1
    done = queue.archive("2100-01-01", tmp_path / "archive.jsonl")
    assert done.n_archived == n_decided and done.held == [] and len(queue.decided()) == 0
    after = run_monitor(policy, act=False, now=at)
    for rep in (before, after):
        rep.pop("time")
    # the chain holds one record more, the archive's (review_archive); every figure is the same
    assert after["chain"] == {**before["chain"], "n_records": before["chain"]["n_records"] + 1}
    assert {**after, "chain": None} == {**before, "chain": None}
    assert after["review_decisions_not_in_queue"]["n"] == 0 and after["verdict_records_not_committed_in_queue"]["n"] == 0
    assert _routed_counts(after["domains"]["geo"]) == {"reviewed": 7, "hallucinated": 4, "correct": 3}
    # archived items are decided, not pending: the backlog is the same too (decided, all of them, one pending)
    assert after["review_backlog"]["overall"]["decided"]["total"] == n_decided
    assert after["review_backlog"]["overall"]["pending"]["total"] == 1
    n = before["chain"]["n_records"]
    assert summary(after) == summary(before).replace(f"({n} records,", f"({n + 1} records,")


@pytest.mark.parametrize("attack", ["cut back", "older copy", "deleted"])
def test_a_running_guards_monitor_state_fails_closed_when_the_log_no_longer_continues_what_it_verified(tmp_path, attack):
    """With a key and no anchor a log cut back before a tightening still verifies; the state that verified the
    tightening must not take the shorter chain's word for it."""
    key = b"k" * 32
    log = AuditLog(tmp_path / "audit.jsonl", key=key)
    log.append({"domain": "geo", "route": "review"})
    before = log.path.read_bytes()
    log.append({"domain": "geo", "accept_below": 0.1, "action": "stricter", "reason": "breach"}, kind="monitor_tighten")
    state = tmp_path / "state.json"
    ms = MonitorState(state, log.path, key=key)
    assert ms.get("geo").state == "tightened"
    if attack == "cut back":
        log.path.write_bytes(before)
    elif attack == "older copy":
        (tmp_path / "old.jsonl").write_bytes(before)
        os.replace(tmp_path / "old.jsonl", log.path)
    else:
        log.path.unlink()
    state.write_text('{"format": "hguard-monitor-state", "domains": {}}')  # and the mirror says normal
    held = ms.get("geo")
    assert held.state == "tightened" and held.accept_below == 0.0 and "this guard verified" in held.reason and "up to seq 1" in held.reason


def test_threads_sharing_a_guards_monitor_state_never_read_a_growing_log_as_cut_back(tmp_path):
    # a replay moved the verified point while another thread resumed from it: every domain was held as
    # "cut back or replaced" for the rest of the process (found serving from a thread pool: the first
    # answers of a fresh guard, and each after the monitor rewrote its state file, replay at once)
    import threading
    import time

    from hguard.monitor import write_state

    log = AuditLog(tmp_path / "audit.jsonl", key=None)
    for i in range(100):
        log.append({"x": i, "pad": "y" * 500})
    state_path = tmp_path / "state.json"
    seen: list[str] = []
    stop = threading.Event()

    def answer(state, start):
        start.wait()
        for _ in range(5 if not stop.is_set() else 0):
            log.append({"x": 1, "pad": "z" * 500})
            s = state.get("geo")
            if s is not None:
                seen.append(s.reason or s.state)

    def monitor():
        while not stop.is_set():  # the monitor rewrites the state file (atomically): each guard thread replays
            write_state(state_path, {}, "p")
            time.sleep(0.005)

    rewriter = threading.Thread(target=monitor)
    for round_ in range(40):
        if round_ == 20:
            rewriter.start()
        state, start = MonitorState(state_path, tmp_path / "audit.jsonl"), threading.Barrier(4)
        threads = [threading.Thread(target=answer, args=(state, start)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    stop.set()
    rewriter.join()
    assert seen == [], seen[:1]
    assert verify(tmp_path / "audit.jsonl").ok


def test_a_log_moved_aside_by_hand_does_not_lift_a_tightening_the_state_file_holds(tmp_path):
    # ops trial: log and queue moved aside, the next monitor run rewrote the state file as normal from the
    # fresh log, and the guard accepted again, with no lift on record
    import shutil

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    (tmp_path / "old").mkdir()
    shutil.move(tmp_path / "audit.jsonl", tmp_path / "old" / "audit.jsonl")
    AuditLog(policy.audit.path).append({"domain": "geo", "route": "abstain"}, kind="decision")  # a guard started afresh
    # the queue kept: the run refuses it (its items' decisions left with the log), but records the tightening first
    with pytest.raises(PolicyError, match="whose decisions are not in audit log"):
        run_monitor(policy)
    assert [r["kind"] for r in AuditLog(policy.audit.path)].count("monitor_tighten") == 1
    Path(policy.audit.path).unlink()
    AuditLog(policy.audit.path).append({"domain": "geo", "route": "abstain"}, kind="decision")
    shutil.move(tmp_path / "queue.sqlite3", tmp_path / "old" / "queue.sqlite3")
    dry = run_monitor(policy, act=False)
    assert dry["tightenings_carried_from_state_file"] == ["geo"] and dry["domains"]["geo"]["state"]["state"] == "tightened"
    rep = run_monitor(policy)
    assert rep["tightenings_carried_from_state_file"] == ["geo"]
    assert rep["domains"]["geo"]["state"]["state"] == "tightened"
    carried = [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_tighten"]
    assert len(carried) == 1 and "carried over from the monitor state file" in carried[0]["reason"]
    # now in the chain: a guard holds it without the file, a second run carries nothing more, a person lifts it
    Path(policy.monitor.state).unlink()
    assert MonitorState(policy.monitor.state, policy.audit.path).get("geo").state == "tightened"
    assert run_monitor(policy)["tightenings_carried_from_state_file"] == []
    assert lift(policy, "geo", by="ops", reason="log archived by hand, checked").state == "normal"
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "normal"


@pytest.mark.parametrize("edit", ["nan", "reason_number", "another_domain_bad", "not_json"])
def test_a_state_file_only_tightening_survives_the_file_turning_unreadable(tmp_path, edit):
    """A reviewer's trial: with a tightening only the state file held (its log moved aside), a file the state
    validation refuses (a NaN, a reason that is a number, another domain's bad entry) was rewritten from the chain
    alone by the next monitor run, and the guard accepted again with no lift on record."""
    import shutil

    from hguard.errors import HGuardError

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    (tmp_path / "old").mkdir()
    for name in ("audit.jsonl", "queue.sqlite3"):
        shutil.move(tmp_path / name, tmp_path / "old" / name)
    AuditLog(policy.audit.path).append({"domain": "geo", "route": "abstain"}, kind="decision")  # a guard started afresh
    state = Path(policy.monitor.state)
    data = json.loads(state.read_text())
    if edit == "nan":
        data["domains"]["geo"]["accept_below"] = float("nan")
    elif edit == "reason_number":
        data["domains"]["geo"]["reason"] = 7
    elif edit == "another_domain_bad":
        data["domains"]["hr"] = {"state": "bogus"}
    state.write_text("{not json" if edit == "not_json" else json.dumps(data))
    if edit == "not_json":  # nothing can be read of it: it is not rewritten, and the guard holds meanwhile
        with pytest.raises(HGuardError, match=r"cannot be read .* the monitor does not rewrite it"):
            run_monitor(policy)
        assert state.read_text() == "{not json"
        assert MonitorState(policy.monitor.state, policy.audit.path).get("geo").accept_below == 0.0
        return
    rep = run_monitor(policy)
    assert rep["tightenings_carried_from_state_file"] == ["geo"] and rep["domains"]["geo"]["state"]["state"] == "tightened"
    st = MonitorState(policy.monitor.state, policy.audit.path).get("geo")
    assert st.state == "tightened" and st.accept_below == 0.0


def test_lifting_one_domain_keeps_another_domains_tightening_only_the_state_file_held(tmp_path):
    """A reviewer's trial: `hguard monitor --lift hr` rewrote the state file from the chain alone, so geo's tightening,
    held only in the file (its log moved aside), was gone with no lift on record, and the guard accepted again."""
    import shutil

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    policy = policy.model_copy(update={"domains": {**policy.domains, "hr": policy.domains["geo"]}})  # frozen in place
    _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    (tmp_path / "old").mkdir()
    for name in ("audit.jsonl", "queue.sqlite3"):
        shutil.move(tmp_path / name, tmp_path / "old" / name)
    log = AuditLog(policy.audit.path)
    log.append({"domain": "hr", "action": "review", "accept_below": 0.0, "reason": "test"}, kind="monitor_tighten")
    assert lift(policy, "hr", by="ops", reason="checked").state == "normal"
    assert MonitorState(policy.monitor.state, policy.audit.path).get("geo").state == "tightened"
    kinds = [(r["kind"], r.get("domain")) for r in AuditLog(policy.audit.path)]
    assert ("monitor_tighten", "geo") in kinds and ("monitor_lift", "geo") not in kinds


def test_an_answer_held_while_the_monitor_reads_the_log_is_no_foreign_item(tmp_path, monkeypatch):
    # verification trial: under live traffic the monitor read the log, then the queue, and refused the item of a
    # decision recorded in between as "not in the audit log" (3 runs of 4)
    import hguard.audit as audit_mod

    policy = _pol(tmp_path, spot_check_rate=0.5)
    log, queue = _deploy(tmp_path, policy, 20, halluc_rate=0.0)
    real = audit_mod.verify

    def live_traffic(*a, **k):  # a guard holds an answer for review while the monitor reads
        report = real(*a, **k)
        rec = log.append({"domain": "geo", "route": "review", "question": "q", "answer": "a", "risk": 0.5}, kind="decision")
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo", "risk": 0.5})
        return report

    monkeypatch.setattr(audit_mod, "verify", live_traffic)
    rep = run_monitor(policy)
    assert rep["domains"]["geo"]["spot_checks"]["reviewed"] > 0


def test_queue_rows_copied_reset_or_edited_change_no_figure(tmp_path):
    """The monitor counts the chain's verdict on each decision: rows copied into the queue (more reviewed
    spot-checks), verdicts set back to pending (fewer hallucinated) or relabelled in the file change nothing,
    and the report names the rows."""
    import sqlite3

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    log, queue = _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    before = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    assert before["reviewed"] > 10 and before["hallucinated"] > 3
    db = sqlite3.connect(policy.review.queue)
    cols = [r[1] for r in db.execute("PRAGMA table_info(review_items)")]
    good = dict(zip(cols, db.execute("SELECT * FROM review_items WHERE verdict = 'correct' LIMIT 1").fetchone()))
    for i in range(20):  # one correct verdict copied under new item ids
        row = {**good, "id": f"{good['id']}-copy{i}"}
        db.execute(f"INSERT INTO review_items ({','.join(row)}) VALUES ({','.join('?' * len(row))})", tuple(row.values()))
    bad = [r[0] for r in db.execute("SELECT id FROM review_items WHERE verdict = 'hallucinated' LIMIT 2")]
    db.execute("UPDATE review_items SET status='pending', verdict=NULL, reviewer=NULL, decided_at=NULL, "
               f"verdict_audit_id=NULL, verdict_audit_hash=NULL WHERE id IN ('{bad[0]}', '{bad[1]}')")
    db.commit()
    db.close()
    rep = run_monitor(policy, act=False)
    assert rep["domains"]["geo"]["spot_checks"] == before
    assert rep["queue_items_sharing_a_decision"]["n"] == 21 and rep["verdict_records_not_committed_in_queue"]["n"] == 2
    text = summary(rep)
    assert "judge a decision another item judges too" in text and "check the queue file" in text


def test_a_verdict_cannot_be_overturned_through_the_queue_file(tmp_path):
    """A decided row copied (or set back to pending) and decided again: the copy's verdict is refused without
    supersede, and with it a later "correct" does not erase a reviewer's "hallucinated" in the monitor's count;
    the copy's verdict is not exported or counted as another item's."""
    import sqlite3

    from hguard.review.queue import VerdictRefused

    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    log, queue = _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    before = run_monitor(policy, act=False)["domains"]["geo"]["spot_checks"]
    db = sqlite3.connect(policy.review.queue)
    cols = [r[1] for r in db.execute("PRAGMA table_info(review_items)")]
    bad = dict(zip(cols, db.execute("SELECT * FROM review_items WHERE verdict = 'hallucinated' LIMIT 1").fetchone()))
    reset = {**bad, "id": bad["id"] + "-copy", "status": "pending", "verdict": None, "reviewer": None, "decided_at": None,
             "verdict_audit_id": None, "verdict_audit_hash": None, "corrected_answer": None, "note": None}
    db.execute(f"INSERT INTO review_items ({','.join(reset)}) VALUES ({','.join('?' * len(reset))})", tuple(reset.values()))
    db.commit()
    db.close()
    q = ReviewQueue(policy.review.queue, audit=AuditLog(policy.audit.path))
    with pytest.raises(VerdictRefused, match="already holds a verdict on the decision"):
        q.decide(reset["id"], verdict="correct", reviewer="mallory")
    q.decide(reset["id"], verdict="correct", reviewer="mallory", supersede=True)  # recorded, naming the earlier one
    rep = run_monitor(policy, act=False)
    assert rep["domains"]["geo"]["spot_checks"] == before  # still hallucinated
    assert rep["hallucinated_verdicts_contradicted"]["n"] == 1 and "counts as hallucinated" in summary(rep)


def test_a_state_file_that_cannot_be_written_is_named_with_what_stands(tmp_path, monkeypatch):
    """A read-only state file failed as "Operation not permitted ('.../monitor-state.json.tmp')" after the run's
    records were appended: the state file is named, and so is what was already recorded."""
    import errno

    from hguard._monitor_state import DomainState, write_state
    from hguard.errors import HGuardError

    def refused(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))

    monkeypatch.setattr("hguard._monitor_state.os.replace", refused)
    state = tmp_path / "monitor-state.json"
    with pytest.raises(HGuardError, match=r"could not write the monitor state .*monitor-state.json \(Operation not "
                                          r"permitted.*the records this run appended to the audit log stand"):
        write_state(state, {"alpha": DomainState()}, "pid")
    assert not state.exists()


def test_a_lift_takes_no_decision_on_a_log_that_fails_verification(tmp_path, capsys):
    """A trial of the live guarantee: `hguard monitor --lift` appended its record to a log `hguard monitor` refuses,
    and rewrote the state file, exit 0."""
    from hguard.cli.monitor import main as monitor_main

    policy = _policy_file(tmp_path, 60, 'on_breach = "review"\n')
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    lines = Path(policy.audit.path).read_text().splitlines()
    lines[3] = lines[3].replace('"route":"accept"', '"route":"review"')  # an edited decision
    Path(policy.audit.path).write_text("\n".join(lines) + "\n")
    log, state = Path(policy.audit.path).read_text(), Path(policy.monitor.state).read_text()
    with pytest.raises(AuditIntegrityError, match=r"fails verification .*line 4: .*the monitor takes no decision on it"):
        lift(policy, "geo", by="ops", reason="checked")
    args = ["--policy", str(tmp_path / "policy.toml"), "--lift", "geo", "--by", "ops", "--reason", "checked"]
    assert monitor_main(args) == 1
    err = capsys.readouterr().err
    assert "fails verification" in err and f"hguard audit verify {policy.audit.path} --policy {policy.source}" in err
    assert Path(policy.audit.path).read_text() == log and Path(policy.monitor.state).read_text() == state


def test_the_monitor_advises_a_repair_that_runs_on_a_torn_last_line(tmp_path, capsys):
    """A review: the monitor advised a bare `hguard audit repair` for a torn last line, which repair refuses (it needs
    the log and the anchor choice); it advises `hguard audit repair --policy FILE`, which repairs it."""
    from hguard.cli.audit import main as audit_main

    policy = _policy_file(tmp_path, 10)
    with open(policy.audit.path, "ab") as f:
        f.write(b'{"seq":10,"ha')  # a write cut short
    with pytest.raises(AuditIntegrityError) as raised:
        run_monitor(policy)
    said = str(raised.value)
    assert f"a torn last line that verify does not call cut: `hguard audit repair --policy {policy.source}`)" in said, said
    assert "`hguard audit repair`" not in said
    assert audit_main(["repair", "--policy", str(policy.source)]) == 0, capsys.readouterr().err
    assert verify(policy.audit.path).ok


def test_the_policys_own_log_named_another_way_is_checked_against_its_anchor(tmp_path, monkeypatch):
    """A review of the lift fix: `--audit audit.jsonl` (the policy's own log, named relative to the working folder)
    was compared with the policy's path as written, the anchor was skipped, and a log with records cut off its end
    read as "chain verified"."""
    from hguard.policy import load_policy

    (tmp_path / "anchor").mkdir()
    (tmp_path / "policy.toml").write_text(
        'version = 1\n[audit]\npath = "audit.jsonl"\nanchor = "anchor/heads.jsonl"\n[review]\nqueue = "queue.sqlite3"\n'
        '[monitor]\nseed = "s"\nstate = "state.json"\n'
        '[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\nspot_check_rate = 0.5\n')
    policy = load_policy(tmp_path / "policy.toml")
    _deploy(tmp_path, policy, 30, halluc_rate=0.5, log=AuditLog.from_policy(policy))
    lines = policy.audit.path.read_bytes().splitlines(keepends=True)
    policy.audit.path.write_bytes(b"".join(lines[:-3]))  # what the anchor is there to catch
    monkeypatch.chdir(tmp_path)
    for named in ("audit.jsonl", str(tmp_path / "anchor" / ".." / "audit.jsonl"), str(policy.audit.path)):
        with pytest.raises(AuditIntegrityError, match=r"head\(s\) in the anchor .* are not in the log") as err:
            run_monitor(policy, audit_path=named, act=False)
        assert f"`hguard audit verify {named} --policy {policy.source}`" in str(err.value)  # the log read, named
    # an auditor's trial: the anchor deleted too, the monitor read the cut log as "chain verified" and its writer
    # started a new anchor at the log's end, after which verify said OK
    Path(policy.audit.anchor).unlink()
    for act in (False, True):
        with pytest.raises(AuditIntegrityError, match=r"anchor .* does not exist, but audit log .* holds \d+ records"):
            run_monitor(policy, act=act)
    assert not Path(policy.audit.anchor).exists()


def test_the_monitor_says_a_keyed_logs_macs_went_unchecked_without_the_key(tmp_path, monkeypatch):
    """An auditor's trial: the key given by HGUARD_KEY_FILE, a cron run without it, and an insider's re-chained
    forgery counted, under "(61 records, chain verified)": nothing said the MACs were not checked."""
    monkeypatch.delenv("HGUARD_KEY_FILE", raising=False)
    policy = _pol(tmp_path, spot_check_rate=0.5)
    _deploy(tmp_path, policy, 20, halluc_rate=0.1, log=AuditLog(policy.audit.path, key=b"k" * 32))
    rep = run_monitor(policy, act=False)
    assert rep["chain"]["macs_checked"] is False and rep["chain"]["n_macs"] == rep["chain"]["n_records"] > 20
    first = summary(rep).splitlines()[0]
    assert "hash chain verified; " in first and "MACs NOT checked: no key" in first and "HGUARD_KEY_FILE" in first
    unkeyed = tmp_path / "plain"
    unkeyed.mkdir()
    plain = _pol(unkeyed, spot_check_rate=0.5)
    _deploy(unkeyed, plain, 20, halluc_rate=0.1)
    assert "NOT checked" not in summary(run_monitor(plain, act=False)).splitlines()[0]  # no MAC to check


def test_a_lift_takes_none_of_a_runs_options(tmp_path, capsys):
    """A review of the lift fix: `hguard monitor --dry-run --lift geo` lifted the tightening for real (exit 0, a
    monitor_lift record, state normal), though --dry-run "appends nothing and changes no state"."""
    from hguard.cli.monitor import main as monitor_main

    policy = _policy_file(tmp_path, 60, 'on_breach = "review"\n')
    assert run_monitor(policy)["domains"]["geo"]["state"]["state"] == "tightened"
    log, state = Path(policy.audit.path).read_text(), Path(policy.monitor.state).read_text()
    base = ["--policy", str(tmp_path / "policy.toml"), "--lift", "geo", "--by", "ops", "--reason", "just looking"]
    for extra, named in ((["--dry-run"], "--dry-run goes"), (["--json", "--report", "r.html"], "--json, --report go"),
                         (["--exit-code"], "--exit-code goes")):  # a review: --exit-code was ignored, exit 0
        with pytest.raises(InputError, match=f"--lift records the lift at once; {named} with a monitor run"):
            monitor_main(base + extra)
        assert Path(policy.audit.path).read_text() == log and Path(policy.monitor.state).read_text() == state
    assert monitor_main(base) == 0 and "lifted" in capsys.readouterr().out


def test_the_monitor_command_exits_1_on_a_log_that_fails_verification_and_names_the_check_with_the_policy(tmp_path, capsys):
    """New-user trial: exit 2 (the code of a mistyped command) where `hguard audit verify` exits 1, and a verify command
    without the policy, which skips its key and anchor."""
    from hguard.cli.monitor import main as monitor_main

    policy = _policy_file(tmp_path, 20)
    lines = Path(policy.audit.path).read_text().splitlines()
    lines[3] = lines[3].replace('"route":"accept"', '"route":"review"')  # an edited decision
    Path(policy.audit.path).write_text("\n".join(lines) + "\n")
    assert monitor_main(["--policy", str(tmp_path / "policy.toml"), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "fails verification" in err and f"hguard audit verify {policy.audit.path} --policy {policy.source}" in err



@pytest.mark.parametrize("u, rate", [("abc", 0.5), (None, 0.5), ("10**400", 0.5), (True, 0.5), ("as text", 0.5),
                                     ("seed's", "abc"), ("seed's", None), ("seed's", "10**400"), ("seed's", True)])
def test_a_forged_spot_check_s_u_or_rate_is_a_mismatch_not_a_crash(u, rate):
    """A spot-check record (in a log without a key, anyone's to write) whose ``u`` or rate is no number stopped the
    selection check with ValueError, TypeError or OverflowError, or was read as one (True, the seed's u as text)."""
    from types import SimpleNamespace

    from hguard.monitor import SPOT, check_selection, seed_id, selection_u

    policy = SimpleNamespace(domains={"alpha": SimpleNamespace(spot_check_rate=0.5)}, monitor=SimpleNamespace(seed="s"))
    rid = next(f"d{i}" for i in range(1000) if selection_u("s", f"d{i}") < 0.5)  # one the seed selects
    seeds = selection_u("s", rid)
    u = seeds if u == "seed's" else str(seeds) if u == "as text" else 10**400 if u == "10**400" else u
    rate = 10**400 if rate == "10**400" else rate
    records = [{"kind": "decision", "id": rid, "route": "accept", "domain": "alpha", "spot_check_rate": 0.5,
                "spot_check_seed_id": seed_id("s")},
               {"kind": SPOT, "id": "s1", "decision_audit_id": rid, "domain": "alpha", "u": u, "rate": rate}]
    got = check_selection(policy, records)["alpha"]
    assert got["selected"] == 1 and got["by_rate"] == 0 and len(got["mismatches"]) == 1, got
    said = "but the seed gives" if rate == 0.5 else "but its decision"
    assert said in got["mismatches"][0], got
    records[1].update(u=seeds, rate=0.5)  # the same record, as the guard writes it
    assert check_selection(policy, records)["alpha"] == {**got, "by_rate": 1, "mismatches": []}
    # a decision whose own rate is no number cannot be checked against it: a mismatch, not a rate of the spot-check's
    # choosing (a review)
    records[0]["spot_check_rate"] = "abc"
    assert any("records spot_check_rate 'abc', no rate" in m for m in check_selection(policy, records)["alpha"]["mismatches"])


def test_decisions_on_given_answers_are_left_out_of_every_live_figure(tmp_path):
    """A review: Guard.check decisions (answer_source "given": answers kept in a log and scored again, never served by
    the guard) were read as live traffic: 20 of them filled the domain's first drift window (the reference), their
    accepted spot-checks and review-routed verdicts counted in the estimate. They are left out of every figure, said
    with their count; a given answer held for review is still queued (its item is no foreign one)."""
    from hguard.monitor import SPOT, spot_check_decision

    policy = _pol(tmp_path, drift_window=20, spot_check_rate=1.0)
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    rng = random.Random(0)

    def decide(i, route, ood, verdict, **given):
        rec = log.append({"request_id": f"r{i}", "policy_id": policy_id(policy), "domain": "geo", "route": route,
                          "risk": 0.1, "signals": {"ood_distance": ood}, "question": "q", "answer": "a", **given},
                         kind="decision")
        spot = spot_check_decision(policy, "geo", rec.id, 10**9) if route == "accept" else None
        if spot:
            log.append(spot, kind=SPOT)
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo", "spot_check": bool(spot),
                       "signals": {"ood_distance": ood}})
        queue.decide(rec.id, verdict=verdict, reviewer="tester")

    given = {"answer_source": "given", "given_answer": {"tokens": 1, "own_tokens": 1, "ends_as_own": True, "served": False}}
    for i in range(20):  # an evaluation over stored answers first: far from the domain, all wrong
        decide(i, "accept" if i % 2 else "review", 5.0 + rng.random(), "hallucinated", **given)
    for i in range(20, 60):  # then the live traffic, one distribution, all right
        decide(i, "accept", 0.5 + rng.random(), "correct")
    rep = run_monitor(policy, act=False)
    e = rep["domains"]["geo"]
    assert e["drift"]["ood_distance"]["drift"] is False and e["drift"]["ood_distance"]["n_reference"] == 20, e["drift"]
    assert (e["spot_checks"]["selected"], e["spot_checks"]["reviewed"], e["spot_checks"]["hallucinated"]) == (40, 40, 0)
    assert e["review_routed"]["reviewed"] == 0 and e["n_decisions"] == 40 and e["decisions"] == {"accept": 40}
    assert e["given_answer_decisions_left_out"] == 20 and not e["breach"]
    assert rep["given_answer_decisions_left_out"] == {"n": 20, "domains": {"geo": 20}}
    assert rep["given_answer_decisions_served"] == {"n": 0, "domains": {}}
    assert "20 decision(s) on answers given to Guard.check" in summary(rep)
    assert rep["review_decisions_not_in_queue"]["n"] == 0  # the given ones held for review are queued and known
    run_monitor(policy)  # acting on it: nothing tightened
    assert not [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_tighten"]


def test_given_answers_served_to_users_are_live_traffic_to_the_monitor(tmp_path):
    """Guard.check(served=True): the same model served by another server, guarded here, its answers shown as they
    route. Left out as an evaluation is, that deployment's every answer would be missing from the live figures (no
    spot-check estimate, no drift test): they count as generated answers do. Only a record whose ``served`` is
    literally false is an evaluation: any other shape ("true", 1, missing, no mapping) counts as live (a review: left
    out, a served answer's hallucination was hidden from the estimate and the selection audit)."""
    policy = _pol(tmp_path, drift_window=20, spot_check_rate=1.0)
    ReviewQueue(policy.review.queue)  # the guard's queue: the monitor refuses a log promising items without it
    log = AuditLog(policy.audit.path)
    odd = [{"tokens": 1, "served": "true"}, {"tokens": 1, "served": 1}, {"tokens": 1}, [1, 1], None]
    for i, given in enumerate([{"tokens": 1, "own_tokens": 1, "served": s} for s in [True] * 30 + [False] * 5] + odd):
        log.append({"request_id": f"r{i}", "policy_id": policy_id(policy), "domain": "geo", "route": "review",
                    "risk": 0.5, "signals": {"ood_distance": 1.0}, "question": "q", "answer": "a",
                    "answer_source": "given", "given_answer": given}, kind="decision")
    rep = run_monitor(policy, act=False)
    e = rep["domains"]["geo"]
    assert e["n_decisions"] == 35 and e["given_answer_decisions_left_out"] == 5
    # said in the summary, both ways, with their domains: a deployment guarding another server's answers sees them
    assert rep["given_answer_decisions_served"] == {"n": 35, "domains": {"geo": 35}}
    text = summary(rep)
    assert "35 decision(s) on answers given to Guard.check with served=True (in geo) were counted as live" in text
    assert "5 decision(s) on answers given to Guard.check and not served (answer_source \"given\", an evaluation or " \
           "a log scored again; in geo) were left out" in text


# ------------------------------------------------------------------------------------------ the review queue's backlog


def _backlog_deployment(tmp_path, monkeypatch, **monitor):
    """Two domains (geo, law) and a queue built item by item at set times: geo holds answers decided 100 h, 30 h and
    2 h before NOW and a spot-check of 10 h; law one of 1 h; one answer outside the policy's domains (5 h); verdicts
    given 2 h, 3 days and 10 days before NOW (the oldest archived with `hguard review archive`)."""
    from datetime import datetime, timedelta

    import hguard.review.queue as queue_module

    policy = Policy.model_validate({
        "version": 1, "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "monitor": {"seed": "s", "state": str(tmp_path / "state.json"), **monitor},
        "domains": {d: {"target_hallucination_rate": 0.2, "confidence": 0.9} for d in ("geo", "law")}})  # fmt: skip
    now = datetime.fromisoformat(NOW)
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)

    def held(domain, hours_ago, spot_check=False, decided_hours_ago=None):
        rec = log.append({"policy_id": policy_id(policy), "domain": domain, "route": "accept" if spot_check else "review",
                          "risk": 0.5, "signals": {}, "question": "q", "answer": "a"}, kind="decision")  # fmt: skip
        if spot_check:
            log.append({"decision_audit_id": rec.id, "domain": domain, "u": 0.0, "rate": 0.02, "min_per_day": 0,
                        "selected_because": "test"}, kind="spot_check")  # fmt: skip
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": domain, "spot_check": spot_check,
                       "time": (now - timedelta(hours=hours_ago)).isoformat()})  # fmt: skip
        if decided_hours_ago is not None:
            at = (now - timedelta(hours=decided_hours_ago)).isoformat(timespec="microseconds")
            monkeypatch.setattr(queue_module, "_now", lambda: at)
            queue.decide(rec.id, verdict="correct", reviewer="tester")
            monkeypatch.undo()
        return rec.id

    held("geo", 400, decided_hours_ago=240)  # decided 10 days ago, then archived
    assert queue.archive((now - timedelta(days=9)).isoformat(), tmp_path / "archive.jsonl").n_archived == 1
    held("geo", 100)
    held("geo", 30)
    held("geo", 2)
    held("geo", 10, spot_check=True)
    held("law", 1)
    held("law", 80, decided_hours_ago=72)
    held("law", 5, decided_hours_ago=2)
    held("elsewhere", 5)
    return policy


NOW = "2026-12-01T12:00:00+00:00"


def test_the_monitor_reports_the_review_queues_backlog_per_domain_and_overall(tmp_path, monkeypatch):
    """A compliance lead's trial: users who show that risky answers are held back must show that held answers are
    reviewed; `hguard monitor` said nothing of the review queue's backlog (pending items, how long they wait, how many
    were decided lately). Archived items are decided, not pending."""
    policy = _backlog_deployment(tmp_path, monkeypatch)
    rep = run_monitor(policy, act=False, now=NOW)
    b = rep["review_backlog"]
    assert (b["max_age_hours"], b["age_unit"], b["until"]) == (72.0, "hours", NOW)
    geo, law, out, every = b["domains"]["geo"], b["domains"]["law"], b["outside_domains"], b["overall"]
    assert geo["pending"] == {"total": 4, "held_for_review": 3, "spot_checks": 1}
    assert geo["oldest_pending_age_hours"] == pytest.approx(100) and geo["median_pending_age_hours"] == pytest.approx(20)
    assert geo["decided"] == {"total": 1, "last_24h": 0, "last_7d": 0, "time_unknown": 0}  # the archived item
    assert law["pending"] == {"total": 1, "held_for_review": 1, "spot_checks": 0}
    assert law["oldest_pending_age_hours"] == law["median_pending_age_hours"] == pytest.approx(1)
    assert law["decided"] == {"total": 2, "last_24h": 1, "last_7d": 2, "time_unknown": 0}
    assert out["pending"]["total"] == 1 and out["oldest_pending_age_hours"] == pytest.approx(5)
    assert every["pending"] == {"total": 6, "held_for_review": 5, "spot_checks": 1}
    assert every["oldest_pending_age_hours"] == pytest.approx(100)
    assert every["median_pending_age_hours"] == pytest.approx(7.5)  # of 100, 30, 10, 5, 2, 1
    assert every["decided"] == {"total": 3, "last_24h": 1, "last_7d": 2, "time_unknown": 0}
    assert (geo["over_max_age"], law["over_max_age"], every["over_max_age"]) == (True, False, True)
    text = summary(rep)
    assert ("  review queue: 6 pending (5 held for review, 1 spot-check); oldest waited 100.0 h, median 7.5 h"
            in text)
    assert "decided 1 in the last 24 h, 2 in the last 7 days (3 in all)" in text
    assert ("  WARNING: the oldest pending review item has waited 100.0 h, longer than [monitor] "
            "review_backlog_max_age_hours 72 (in geo)") in text
    # the ages count to the run's time: a day later every item has waited 24 h more, and one decided 2 h before NOW
    # is no longer of the last 24 h
    later = run_monitor(policy, act=False, now="2026-12-02T12:00:00+00:00")["review_backlog"]["overall"]
    assert later["oldest_pending_age_hours"] == pytest.approx(124) and later["decided"]["last_24h"] == 0
    with pytest.raises(InputError, match=r"now 'yesterday' is not a date; pass an ISO date or time"):
        run_monitor(policy, now="yesterday")
    assert not any(r["kind"].startswith("monitor") for r in AuditLog(policy.audit.path))  # refused before appending


def test_an_evaluations_review_items_are_counted_apart_from_the_backlog(tmp_path, monkeypatch):
    """A new user's trial: answers given to Guard.check for an evaluation (served=False) and held for review are
    queued, and the backlog counted them: an offline evaluation alone warned of a backlog in a deployment whose live
    items were all reviewed. They are counted apart, in no figure nor the warning; a served given answer is live."""
    from datetime import datetime, timedelta

    policy = _backlog_deployment(tmp_path, monkeypatch, review_backlog_max_age_hours=120)
    log, queue = AuditLog(policy.audit.path), ReviewQueue(policy.review.queue, audit=AuditLog(policy.audit.path))
    before = run_monitor(policy, act=False, now=NOW)["review_backlog"]
    for served, hours_ago in ((False, 500), (False, 300), (True, 3)):
        rec = log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5, "signals": {},
                          "question": "q", "answer": "a", "answer_source": "given",
                          "given_answer": {"tokens": 1, "own_tokens": 0, "served": served}}, kind="decision")
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo",
                       "time": (datetime.fromisoformat(NOW) - timedelta(hours=hours_ago)).isoformat()})
    rep = run_monitor(policy, act=False, now=NOW)
    b = rep["review_backlog"]
    assert b["evaluation_items"] == {"pending": 2, "decided": 0}
    assert b["overall"]["pending"]["total"] == before["overall"]["pending"]["total"] + 1  # the served one only
    assert b["overall"]["oldest_pending_age_hours"] == pytest.approx(100) and not b["overall"]["over_max_age"]
    assert "WARNING" not in summary(rep) and "2 pending and 0 decided evaluation item(s)" in summary(rep)


def test_the_review_backlog_warning_follows_the_policys_max_age(tmp_path, monkeypatch):
    policy = _backlog_deployment(tmp_path, monkeypatch, review_backlog_max_age_hours=120)
    rep = run_monitor(policy, act=False, now=NOW)
    assert rep["review_backlog"]["overall"]["over_max_age"] is False
    assert "review queue: 6 pending" in summary(rep) and "WARNING" not in summary(rep)
    # an item whose time cannot be read is not shown to have waited less than the key: warned of
    import sqlite3

    with sqlite3.connect(policy.review.queue) as conn:
        conn.execute("UPDATE review_items SET time = 'yesterday' WHERE domain = 'law' AND status = 'pending'")
    rep = run_monitor(policy, act=False, now=NOW)
    law = rep["review_backlog"]["domains"]["law"]
    assert law["pending_age_unknown"] == 1 and law["over_max_age"] is True
    assert ("  WARNING: 1 pending review item(s) have a time that cannot be read (the queue file was edited?), so "
            "their wait is not shown within [monitor] review_backlog_max_age_hours 120 (in law)") in summary(rep)


def _one_item_deployment(tmp_path, minutes_ago: float, **monitor):
    """A policy of one domain (geo) and a queue holding one answer held for review ``minutes_ago`` before NOW."""
    from datetime import datetime, timedelta

    policy = Policy.model_validate({
        "version": 1, "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "monitor": {"seed": "s", "state": str(tmp_path / "state.json"), **monitor},
        "domains": {"geo": {"target_hallucination_rate": 0.2, "confidence": 0.9}}})  # fmt: skip
    log = AuditLog(policy.audit.path)
    rec = log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5, "signals": {},
                      "question": "q", "answer": "a"}, kind="decision")
    ReviewQueue(policy.review.queue, audit=log).enqueue(
        {"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo",
         "time": (datetime.fromisoformat(NOW) - timedelta(minutes=minutes_ago)).isoformat()})
    return policy


def test_the_backlog_warning_writes_the_wait_so_that_the_comparison_shown_holds(tmp_path):
    """A trial: under a key of 0.01 h the warning read "has waited 0.0 h, longer than [monitor]
    review_backlog_max_age_hours 0.01" (the wait rounded to one decimal), a comparison that reads false."""
    policy = _one_item_deployment(tmp_path, 2, review_backlog_max_age_hours=0.01)  # 2 minutes: 0.0333 h
    (warning,) = [x for x in summary(run_monitor(policy, act=False, now=NOW)).splitlines() if "WARNING" in x]
    assert "the oldest pending review item has waited 2 min (0.03 h), longer than [monitor] " \
           "review_backlog_max_age_hours 0.01 (in geo)" in warning
    waited, limit = re.search(r"waited 2 min \(([0-9.e-]+) h\), longer than \[monitor\] review_backlog_max_age_hours ([0-9.e-]+)",
                              warning).groups()
    assert float(waited) > float(limit)
    from hguard._monitor_report import _longer_than

    # every wait longer than its limit is written longer than it, the limit rounded up by :g included
    rng = random.Random(0)
    for h, lim in [(0.0123456801, 0.0123456789), (72.04, 72.0), (72.00001, 72.0), *(
            (lim * (1 + rng.random() * 10 ** -rng.randint(1, 9)), lim)
            for lim in (rng.choice([0.01, 1 / 3, 72.0, 1e-5, 123.456789012]) for _ in range(200)))]:
        w, shown = _longer_than(h, lim)
        assert float(w.removesuffix(" h")) > float(shown), (h, lim, w, shown)
    assert _longer_than(100.0, 72.0) == ("100.0 h", "72")  # as before where one decimal holds


def test_the_backlog_warning_writes_the_wait_in_the_backlog_lines_unit_beside_the_keys_hours(tmp_path):
    """An ops trial: one output read "oldest waited 3 min" and then "WARNING: ... has waited 0.1 h, longer than ...
    0.05". Under an hour the warning writes the line's minutes, with the hours beside them that the key is compared
    with (the comparison shown true); from an hour on, hours alone, as the line writes them."""
    for minutes_ago, limit, waited in ((3.4, 0.05, "3 min (0.06 h)"), (0.5, 0.005, "under 1 min (0.01 h)"),
                                       (0.8, 0.012, "1 min (0.013 h)"), (6, 0.05, "6 min (0.10 h)"),
                                       (90, 1.0, "1.5 h")):
        folder = tmp_path / f"{minutes_ago}-{limit}"
        folder.mkdir()
        text = summary(run_monitor(_one_item_deployment(folder, minutes_ago, review_backlog_max_age_hours=limit),
                                   act=False, now=NOW))
        (line,) = [x for x in text.splitlines() if x.startswith("  review queue:")]
        (warning,) = [x for x in text.splitlines() if "WARNING" in x]
        assert f"oldest waited {waited.split(' (')[0]}," in line, line
        assert (f"the oldest pending review item has waited {waited}, longer than [monitor] "
                f"review_backlog_max_age_hours {limit:g} (in geo)") in warning, warning


def test_the_backlog_line_writes_a_wait_under_an_hour_in_minutes(tmp_path):
    """A trial: an item held 2 minutes ago read "oldest waited 0.0 h, median 0.0 h", as if none had waited. Under an
    hour the summary line writes minutes, else hours with one decimal; the report's JSON keeps hours."""
    for minutes_ago, shown in ((2, "2 min"), (0.2, "under 1 min"), (59.4, "59 min"), (59.8, "1.0 h"), (90, "1.5 h")):
        folder = tmp_path / str(minutes_ago)
        folder.mkdir()
        rep = run_monitor(_one_item_deployment(folder, minutes_ago), act=False, now=NOW)
        assert rep["review_backlog"]["overall"]["oldest_pending_age_hours"] == pytest.approx(minutes_ago / 60)
        (line,) = [x for x in summary(rep).splitlines() if x.startswith("  review queue:")]
        assert f"oldest waited {shown}, median {shown} (since the guard decided each)" in line, line
        assert f"pending by domain: geo 1 (oldest {shown})" in line, line


def test_the_backlog_warning_alarms_exit_code_and_is_in_the_check_record_and_the_html_report(tmp_path, capsys):
    """A trial: `hguard monitor --exit-code` exited 0 on the backlog warning (a scheduled job never heard of held
    answers waiting past the key), and the monitor_check record held no backlog. An evaluation's item (served to no
    user) is no alarm; a verdict on the live one ends it."""
    from hguard.cli import main
    from hguard.policy import load_policy

    (tmp_path / "policy.toml").write_text(
        'version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = "queue.sqlite3"\n'
        '[monitor]\nseed = "s"\nstate = "state.json"\nreview_backlog_max_age_hours = 72\n'
        '[domains.geo]\ntarget_hallucination_rate = 0.2\nconfidence = 0.9\n')
    policy = load_policy(tmp_path / "policy.toml")
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    ids = {}
    for name, given in (("eval", {"served": False}), ("live", None)):
        rec = log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5,
                          "signals": {}, "question": "q", "answer": "a",
                          **({"answer_source": "given", "given_answer": {"tokens": 1, **given}} if given else {})},
                         kind="decision")
        ids[name] = rec.id
        # decided by the guard long before any run's clock
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo",
                       "time": "2000-01-01T00:00:00+00:00"})
        args = ["monitor", "--policy", str(tmp_path / "policy.toml"), "--exit-code", "--report", str(tmp_path / "r.html")]
        if name == "eval":  # the evaluation's item alone: counted apart, no alarm
            assert main([*args, "--dry-run"]) == 0
            assert "alarm" not in capsys.readouterr().err
    assert main(args) == 3
    out, err = capsys.readouterr()
    assert "WARNING: the oldest pending review item has waited" in out
    assert ("hguard monitor: alarm (exit 3): the review backlog is past [monitor] review_backlog_max_age_hours 72 "
            "(in geo)") in err
    assert "WARNING: the oldest pending review item has waited" in (tmp_path / "r.html").read_text()
    (check,) = [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_check"]
    b = check["review_backlog"]
    assert b["over_max_age"] is True and b["max_age_hours"] == 72 and b["pending"]["total"] == 1  # the live one
    assert b["oldest_pending_age_hours"] > 72 * 365 and b["until"]
    queue.decide(ids["live"], verdict="correct", reviewer="ann")
    assert main(args) == 0
    assert "alarm" not in capsys.readouterr().err
    last = [r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_check"][-1]["review_backlog"]
    assert last["over_max_age"] is False and last["pending"]["total"] == 0 and last["decided"]["total"] == 1


def test_an_item_put_back_in_the_queue_waits_from_when_it_was_put_back(tmp_path):
    """A trial: an answer the queue could not take when it was decided, put back days later (a ``review_requeued``
    record names it), read as waiting since its decision: reviewers who could not see it were warned of it at once.
    It waits from when it first entered the queue; an item whose row was deleted and put back still from its decision
    (a put-back resets no wait, else deleting rows and starting a guard cleared the warning)."""
    from datetime import datetime, timedelta, timezone

    policy = Policy.model_validate({
        "version": 1, "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "monitor": {"seed": "s", "state": str(tmp_path / "state.json")},
        "domains": {"geo": {"target_hallucination_rate": 0.2, "confidence": 0.9}}})  # fmt: skip
    log = AuditLog(policy.audit.path)
    queue = ReviewQueue(policy.review.queue, audit=log)
    clock = datetime.now(timezone.utc)  # the log stamps its records with the clock's time
    ids = []
    for hours_ago in (100, 50):
        rec = log.append({"policy_id": policy_id(policy), "domain": "geo", "route": "review", "risk": 0.5,
                          "signals": {}, "question": "q", "answer": "a"}, kind="decision")
        ids.append(rec.id)
        queue.enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo",
                       "time": (clock - timedelta(hours=hours_ago)).isoformat()})
    def put_back(item_id):  # as a guard writes it
        log.append({"item_ids": [item_id], "from_decision_records": [], "from_pending_copies": [],
                    "from_held_answers": [item_id], "decided_from_verdict_records": [], "queue": str(queue.path),
                    "reason": "test"}, kind="review_requeued")

    # the first was refused by the queue when decided, and put back now; the second's row was deleted and put back
    log.append({"decision_audit_id": ids[0], "error": "database is locked"}, kind="review_queue_error")
    put_back(ids[0])
    put_back(ids[1])
    at = (clock + timedelta(hours=1)).isoformat()
    rep = run_monitor(policy, act=False, now=at)
    geo = rep["review_backlog"]["domains"]["geo"]
    assert geo["oldest_pending_age_hours"] == pytest.approx(51, abs=0.1)  # in the queue since its decision
    # the one put back has waited 1 h since, not 101 h since its decision: the median of 51 and 1
    assert geo["median_pending_age_hours"] == pytest.approx(26, abs=0.1)
    assert geo["pending_put_back"] == 1 and geo["over_max_age"] is False
    assert "(since the guard decided each; 1 put back in the queue since, from then)" in summary(rep)
    # a later put-back (its row deleted, a guard started) resets no wait: from its first put-back on
    put_back(ids[0])
    later = run_monitor(policy, act=False, now=(clock + timedelta(hours=5)).isoformat())["review_backlog"]["domains"]["geo"]
    assert later["median_pending_age_hours"] == pytest.approx((55 + 5) / 2, abs=0.1)


@pytest.mark.parametrize("value", [0, -1, "72", float("inf"), True])
def test_a_bad_review_backlog_max_age_is_refused_naming_the_value(tmp_path, value):
    from hguard.policy import _validate

    data = json.loads(_pol(tmp_path).model_dump_json())
    data["monitor"]["review_backlog_max_age_hours"] = value
    with pytest.raises(PolicyError) as err:
        _validate(data, source="test", base_dir=None)
    (line,) = [x for x in str(err.value).splitlines() if "review_backlog_max_age_hours" in x]
    assert f"(got {value!r})" in line and "a number of hours > 0, e.g. 72" in line


def test_cli_json_carries_the_review_backlog(tmp_path, capsys):
    from hguard.cli import main

    _policy_file(tmp_path, 60)
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--json", "--dry-run"]) == 0
    b = json.loads(capsys.readouterr().out)["review_backlog"]
    assert b["overall"]["pending"]["total"] == 0 and b["overall"]["oldest_pending_age_hours"] is None
    assert b["domains"]["geo"]["decided"]["total"] == len(ReviewQueue(tmp_path / "queue.sqlite3").decided()) > 0
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--dry-run"]) == 0
    assert "  review queue: 0 pending (0 held for review, 0 spot-checks); oldest waited -, median -" in capsys.readouterr().out


def test_a_mistyped_review_queue_path_is_an_alarm_and_the_log_is_still_acted_on(tmp_path, capsys):
    """A bad-input trial: a typo in `[review] queue` gave "review queue: 0 pending" and `--exit-code` 0 while the log
    held live items (the right path alarms). Refused then before the log was replayed, a breach in it was not
    tightened and `--exit-code` gave 2 (a usage error), not 3. The monitor runs all the log decides (estimate,
    tightening, drift), reports the backlog unreadable naming the path and the fix, and alarms on it; no queue is
    created."""
    from hguard.cli import main
    from hguard.policy import load_policy

    _policy_file(tmp_path, 60, 'on_breach = "review"\naccept_below = 0.3\n')
    text = (tmp_path / "policy.toml").read_text()
    (tmp_path / "typo.toml").write_text(text.replace('queue = "queue.sqlite3"', 'queue = "qeueu.sqlite3"'))
    typo, said = str(tmp_path / "typo.toml"), f"no review queue at {tmp_path / 'qeueu.sqlite3'}, but the audit log"
    fix = f"check the [review] queue path (in {typo})"
    assert main(["monitor", "--policy", typo, "--dry-run", "--json"]) == 0
    backlog = json.loads(capsys.readouterr().out)["review_backlog"]
    assert said in backlog["unreadable"] and fix in backlog["unreadable"] and backlog["overall"]["over_max_age"]
    assert main(["monitor", "--policy", typo, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"review queue: UNREADABLE: {said}" in out and "0 pending" not in out and "WOULD TIGHTEN" in out
    assert main(["monitor", "--policy", typo, "--exit-code"]) == 3
    (alarm,) = capsys.readouterr().err.splitlines()
    assert alarm.startswith("hguard monitor: alarm (exit 3): geo in breach") and said in alarm and fix in alarm
    records = list(AuditLog(tmp_path / "audit.jsonl"))
    assert [r["domain"] for r in records if r["kind"] == "monitor_tighten"] == ["geo"]  # the breach acted on
    check = next(r for r in records if r["kind"] == "monitor_check")
    assert said in check["review_backlog"]["unreadable"]
    assert json.loads((tmp_path / "state.json").read_text())["domains"]["geo"]["state"] == "tightened"
    assert main(["monitor", "--policy", str(tmp_path / "policy.toml"), "--queue", str(tmp_path / "q.sqlite3"),
                 "--dry-run", "--exit-code"]) == 3
    assert "check the [review] queue path (--queue)" in capsys.readouterr().err
    assert not (tmp_path / "qeueu.sqlite3").exists() and not (tmp_path / "q.sqlite3").exists()  # none created
    # the right path: the queue's own backlog, no word of an unreadable one
    assert run_monitor(load_policy(tmp_path / "policy.toml"), act=False)["review_backlog"]["unreadable"] is None


def test_a_mistyped_review_queue_path_is_refused_by_review_list_and_show(tmp_path, capsys):
    """A bad-input trial: with a typo in `[review] queue`, `hguard review list` created an empty queue there, "holds
    no items". A reading command refuses a queue file that does not exist while the log promises review items; it
    creates none."""
    from hguard.cli.review import main as review_main

    _policy_file(tmp_path, 60, 'on_breach = "review"\naccept_below = 0.3\n')
    text = (tmp_path / "policy.toml").read_text()
    (tmp_path / "typo.toml").write_text(text.replace('queue = "queue.sqlite3"', 'queue = "qeueu.sqlite3"'))
    typo, said = str(tmp_path / "typo.toml"), f"no review queue at {tmp_path / 'qeueu.sqlite3'}, but the audit log"
    for argv in (["list"], ["list", "--json"], ["show", "some-item"]):
        assert review_main([argv[0], "--policy", typo, *argv[1:]]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "qeueu.sqlite3").exists()  # none created
    # the policy copied to another folder (its relative paths resolve there): neither the queue nor the log exists,
    # said so (it said the log "holds no decision routed to review"), naming both; nothing refused, nothing created
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "policy.toml").write_text(text)
    assert review_main(["list", "--policy", str(fresh / "policy.toml")]) == 0
    out = capsys.readouterr().out
    assert (f"no review queue at {fresh / 'queue.sqlite3'} and no audit log at {fresh / 'audit.jsonl'} either" in out
            and f"from its own folder, {fresh.resolve()}" in out and "holds no decision" not in out)
    # a log that holds no item promised to review: nothing to refuse, said so, and still no queue created
    AuditLog(fresh / "audit.jsonl").append({"route": "accept", "domain": "geo"}, kind="decision")
    assert review_main(["list", "--policy", str(fresh / "policy.toml")]) == 0
    assert f"its audit log {fresh / 'audit.jsonl'} holds no decision routed to review" in capsys.readouterr().out
    assert not (fresh / "queue.sqlite3").exists()


def test_a_folder_given_as_an_output_file_is_answered_with_a_file_of_the_kind_written(tmp_path, capsys):
    """A bad-input trial: a folder as `hguard monitor --report`, `hguard review export --out` or `hguard audit export
    --csv` was answered "pass a file path in it, e.g. DIR/report.out" (review export's as `out_path`, its Python
    name): the file suggested is one of the kind the command writes, and review export names its flag."""
    import importlib.util

    from hguard.cli import main

    _policy_file(tmp_path, 20)
    out = tmp_path / "out"
    out.mkdir()
    policy = str(tmp_path / "policy.toml")
    cases = [(["review", "export", "--policy", policy, "--out", str(out)],
              f"hguard review: error: out_path (--out) {out} is a folder; pass a file path in it, e.g. {out / 'reviewed.jsonl'}"),
             (["audit", "export", str(tmp_path / "audit.jsonl"), "--csv", str(out)],
              f"hguard audit: error: export target {out} is a folder; pass a file path in it, e.g. {out / 'audit.csv'}")]
    if importlib.util.find_spec("matplotlib") is not None:  # without it --report is refused as needing it
        cases.append((["monitor", "--policy", policy, "--report", str(out), "--dry-run"],
                      f"hguard monitor: error: --report {out} is a folder; pass a file path in it, e.g. "
                      f"{out / 'monitor-report.html'}"))
    for argv, said in cases:
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == said + "\n"
    assert not any(out.iterdir())


def test_a_mistyped_review_queue_path_is_refused_by_review_serve_decide_export_and_archive(tmp_path, capsys, monkeypatch):
    """`review list` and `show` refused a queue file that does not exist while the log promises review items, but
    `serve`, `decide`, `export` and `archive` still created an empty one at the mistyped path (and served, exported or
    archived nothing, exit 0). They refuse it alike, in one line, creating nothing; a fresh project whose log holds no
    held item still gets its queue."""
    from hguard.cli.review import main as review_main
    from hguard.review import make_server

    monkeypatch.setenv("HGUARD_REVIEW_TOKEN", "test-token-0123456789abcdef")
    monkeypatch.setattr("uvicorn.Server.run", lambda self: pytest.fail("served a queue made at the mistyped path"))
    _policy_file(tmp_path, 60, 'on_breach = "review"\naccept_below = 0.3\n')
    text = (tmp_path / "policy.toml").read_text()
    (tmp_path / "typo.toml").write_text(text.replace('queue = "queue.sqlite3"', 'queue = "qeueu.sqlite3"'))
    typo, said = str(tmp_path / "typo.toml"), f"no review queue at {tmp_path / 'qeueu.sqlite3'}, but the audit log"
    fix = f"check the [review] queue path (in {typo})"
    for argv in (["serve"], ["decide", "some-item", "--verdict", "correct", "--reviewer", "r"],
                 ["export", "--out", str(tmp_path / "out.jsonl")], ["archive", "--decided-before", "2030-01-01"]):
        assert review_main([argv[0], "--policy", typo, *argv[1:]]) == 2, argv
        (line,) = capsys.readouterr().err.splitlines()
        assert said in line and fix in line, argv
    with pytest.raises(InputError, match=re.escape(said)):
        make_server(typo)
    assert not (tmp_path / "qeueu.sqlite3").exists() and not (tmp_path / "out.jsonl").exists()  # none created
    # a fresh project (the log holds no held item, or there is no log yet): the queue is created as before
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "policy.toml").write_text(text)
    make_server(fresh / "policy.toml")
    assert (fresh / "queue.sqlite3").is_file()
    (fresh / "queue.sqlite3").unlink()
    AuditLog(fresh / "audit.jsonl").append({"route": "accept", "domain": "geo"}, kind="decision")
    assert review_main(["archive", "--policy", str(fresh / "policy.toml"), "--decided-before", "2030-01-01"]) == 0
    assert (fresh / "queue.sqlite3").is_file()
