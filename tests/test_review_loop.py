"""Review feedback end to end: answers routed to review, decided by reviewers, exported as
calibration data, and used by a recalibration whose report counts them."""

from __future__ import annotations

from hguard.audit import AuditLog, verify
from hguard.calibrate.data import load_examples
from hguard.calibrate.pipeline import calibrate
from hguard.guard import Guard
from hguard.policy import Policy
from hguard.review.export import export_reviewed


def test_reviewed_items_flow_back_into_calibration(tiny_calibrated, tmp_path):
    lm, root = tiny_calibrated
    policy = Policy.model_validate(
        {
            "version": 1,
            "probes": str(root / "probes"),
            "audit": {"path": str(tmp_path / "audit.jsonl")},
            "review": {"queue": str(tmp_path / "queue.sqlite3")},
            "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
            # accept nothing, abstain on nothing: every answer goes to a person
            "domains": {"alpha": {"accept_below": 0.0, "abstain_above": 1.0}},
        }
    )
    guard = Guard.from_policy(policy, lm=lm)
    words = "capital city country river element symbol author book paris london rome berlin".split()
    questions = [f"what {a} of the {b} ?" for a, b in zip(words, reversed(words))]
    results = guard.batch(questions, domains=["alpha"] * len(questions))
    assert {r.route for r in results} == {"review"}
    queue = guard.review_queue
    assert len(queue.pending()) == len(questions)
    verdicts = ["correct", "hallucinated", "corrected"] * 4
    for r, v in zip(results, verdicts):
        queue.decide(r.audit_id, verdict=v, reviewer="ana", corrected_answer="paris" if v == "corrected" else None)
    assert not queue.pending()
    log = list(AuditLog(tmp_path / "audit.jsonl"))
    assert sum(rec["kind"] == "review_verdict" for rec in log) == 12 and verify(tmp_path / "audit.jsonl").ok

    summary = export_reviewed(queue, tmp_path / "reviewed.jsonl")
    assert summary.n_items == 12
    reviewed = load_examples(tmp_path / "reviewed.jsonl")
    assert {e.meta["label"] for e in reviewed} == {"correct", "hallucinated"}

    report = calibrate(
        [root / "data.jsonl", tmp_path / "reviewed.jsonl"], tmp_path / "probes2", lm=lm, system_prompt="answer",
        max_new_tokens=4, progress=False, plots=False,
    )
    alpha = report["domains"]["alpha"]
    assert alpha["reviewed_items_used"] == 12
    assert alpha["reviewer_disagreements"] == summary.n_disagreements
    assert "Human review feedback" in (tmp_path / "probes2" / "report.md").read_text()


def test_the_guard_queues_an_item_at_its_time_to_the_microsecond_as_review_show_prints_it(tiny_calibrated, tmp_path):
    """An ops trial: `hguard review show` printed "decided by the guard: ...:32:29.000000": the guard queued the item
    at a time cut to the second, its decision record's to the microsecond, so the queue's time read as before the
    decision's. The item's time is the guard's to the microsecond, not before its decision record's, and printed so."""
    from datetime import datetime

    from hguard.cli.review import _shown_item

    lm, root = tiny_calibrated
    policy = Policy.model_validate({
        "version": 1, "probes": str(root / "probes"), "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")}, "generation": {"max_new_tokens": 4},
        "domains": {"alpha": {"accept_below": 0.0, "abstain_above": 1.0}},
    })
    guard = Guard.from_policy(policy, lm=lm)
    r = guard.invoke("what capital of the book ?", domain="alpha")
    assert r.route == "review"
    item = guard.review_queue.get(r.audit_id)
    decided = datetime.fromisoformat(AuditLog(tmp_path / "audit.jsonl").find(r.audit_id)["time"])
    assert datetime.fromisoformat(item.time) >= decided, (item.time, decided)
    assert f"decided by the guard: {item.time};" in _shown_item(guard.review_queue, r.audit_id)
