"""A simulated deployment on the real default model and the bundled geography probe: traffic shifts from the
capital questions the calibration contained to "largest city" questions it did not (tests/data/largest_city.jsonl,
where the model often names the capital, with low risk). Reviewers' verdicts come from the gold answers through
the judge. Spot-checks catch the rise in accepted hallucinations, the bound crosses the target, the domain
tightens, the guard stops accepting there, a person lifts it, and the audit chain holds every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hguard.audit import AuditLog, verify
from hguard.calibrate.data import load_examples
from hguard.calibrate.judge import judge
from hguard.guard import DEFAULT_POLICY, Guard
from hguard.monitor import check_selection, lift, run_monitor, summary
from hguard.policy import Policy, load_policy
from hguard.review.export import export_reviewed
from hguard.review.queue import ReviewQueue

pytestmark = pytest.mark.default_model

ROOT = Path(__file__).resolve().parent.parent
SHIFTED = ROOT / "tests" / "data" / "largest_city.jsonl"
BATCH = 8


def _review_spot_checks(queue: ReviewQueue, gold: dict[str, list[str]]) -> int:
    """Every pending spot-check gets the verdict the judge gives against the gold answers."""
    n = 0
    for item in queue.pending(limit=None):
        if not item.spot_check:
            continue
        label = judge(item.answer, gold[item.question]).label
        queue.decide(item.id, verdict="hallucinated" if label == "hallucinated" else "correct", reviewer="judge")
        n += 1
    return n


def test_shifted_traffic_is_caught_by_spot_checks_and_tightens_the_domain(default_lm, tmp_path):
    base = json.loads(load_policy(DEFAULT_POLICY).model_dump_json())
    base["audit"]["path"] = str(tmp_path / "audit.jsonl")
    base["review"]["queue"] = str(tmp_path / "queue.sqlite3")
    base["monitor"] = {"seed": "deployment-test", "state": str(tmp_path / "monitor-state.json")}
    # every accepted answer spot-checked, so a few minutes of traffic suffice (benchmarks/monitor.py measures
    # the default rate)
    base["domains"]["geography"]["spot_check_rate"] = 1.0
    # The reference probes, certified on cross-family scores, accept nothing at the default target: a
    # deployment that accepts answers needs thresholds, so this one sets them by hand (what an operator
    # who accepts the calibration's risk ranking without its guarantee would do).
    base["domains"]["geography"]["accept_below"] = 0.29
    base["domains"]["geography"]["abstain_above"] = 0.95
    base["domains"]["geography"]["out_of_distribution"] = "warn"
    policy = Policy.model_validate(base)
    guard = Guard.from_policy(policy, lm=default_lm)
    queue = guard.review_queue
    assert queue is not None and guard.audit is not None

    before = [e for e in load_examples(ROOT / "calibration" / "data" / "geography.jsonl") if e.meta["relation"] == "capital"][:4]
    shifted = load_examples(SHIFTED)
    gold = {e.question: e.answers for e in before + shifted}

    # 1. calibration-like traffic: too few checks to judge, the domain stays normal
    guard.batch([e.question for e in before], domains=["geography"] * len(before))
    _review_spot_checks(queue, gold)
    rep = run_monitor(policy)
    assert rep["domains"]["geography"]["state"]["state"] == "normal"

    # 2. the shift, in batches until the monitor tightens the domain
    asked = 0
    while asked < len(shifted):
        batch = shifted[asked : asked + BATCH]
        guard.batch([e.question for e in batch], domains=["geography"] * len(batch))
        asked += len(batch)
        _review_spot_checks(queue, gold)
        rep = run_monitor(policy)
        if rep["domains"]["geography"]["state"]["state"] == "tightened":
            break
    geo = rep["domains"]["geography"]
    s = geo["spot_checks"]
    print(f"\nshifted questions asked: {asked}\n{summary(rep)}")
    assert geo["state"]["state"] == "tightened", geo
    assert geo["breach"] and s["upper_bound"] > geo["target"] and s["reviewed"] >= s["min_reviewed_to_judge"]
    # the rise is real: the accepted hallucination rate is above the calibration's (0.146 on 41 answers)
    assert s["rate"] > 0.2
    tighten = next(r for r in AuditLog(policy.audit.path) if r["kind"] == "monitor_tighten")
    assert "exceeds target" in tighten["reason"] and tighten["domain"] == "geography"

    # 3. the guard consults the tightened state before routing: the same questions no longer accept
    again = shifted[:3]
    results = guard.batch([e.question for e in again], domains=["geography"] * len(again))
    assert all(r.route != "accept" for r in results)
    assert all(any("tightened by the monitor" in why for why in r.reasons) for r in results)

    # 4. a person lifts it, audited
    assert lift(policy, "geography", by="on-call", reason="shift investigated").state == "normal"

    # the chain verifies and holds every step, and the selection is recomputable from the seed
    report = verify(policy.audit.path)
    assert report.ok, report.summary()
    records = list(AuditLog(policy.audit.path))
    kinds = {r["kind"] for r in records}
    assert {"decision", "spot_check", "review_verdict", "monitor_check", "monitor_tighten", "monitor_lift"} <= kinds
    ids = {r["id"]: r for r in records}
    assert len(ids) == len(records)  # every record its own id (a spot-check's names its decision by decision_audit_id)
    assert all(ids[r["decision_audit_id"]]["kind"] == "decision" for r in records if r["kind"] == "spot_check")
    assert ids[tighten["evidence_record"]]["kind"] == "monitor_check"
    sel = check_selection(policy, records)["geography"]
    assert sel["mismatches"] == [] and sel["selected"] == sel["accepted"] > 0

    # recalibration from the field: the reviewed spot-checks export as calibration rows
    exported = export_reviewed(queue, tmp_path / "reviewed.jsonl")
    rows = load_examples(tmp_path / "reviewed.jsonl")
    assert exported.n_items == len(rows) >= s["reviewed"]
    assert any(r.meta["spot_check"] and r.meta["label"] == "hallucinated" for r in rows)
