"""The review queue (SQLite), its audit records and the export of verdicts as calibration rows."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from hguard.audit import AuditLog, verify
from hguard.calibrate.data import load_examples
from hguard.cli.review import main as cli_main
from hguard.errors import InputError, ReviewQueueError
from hguard._privacy import redacted
from hguard.testing import guard_queue
from hguard.review import (
    NO_DOMAIN,
    AlreadyDecided,
    ItemNotFound,
    ReviewQueue,
    export_reviewed,
)
from hguard.review.queue import AuditLogUnavailable, VerdictRefused


def make_item(audit_id: str, **over):
    item = {
        "audit_id": audit_id,
        "question": f"What is the capital of {audit_id}?",
        "context": None,
        "answer": f"The capital of {audit_id} is Foo.",
        "domain": "geography",
        "risk": 0.42,
        "signals": {"h_neuron": 0.42, "entropy": 1.25},
        "reasons": ["risk 0.420 between accept_below 0.200 and abstain_above 0.800 for geography: review"],
        "model_fingerprint": "sha256:abc",
        "probe_id": "probe-1",
        "time": "2025-03-01T10:00:00+00:00",
    }
    item.update(over)
    return item


@pytest.fixture
def audit(tmp_path):
    return AuditLog(tmp_path / "audit.jsonl")


@pytest.fixture
def queue(tmp_path, audit):
    return guard_queue(tmp_path / "review.sqlite3", audit=audit)  # each item's decision logged first, as the guard does


def verdict_records(audit):
    return [r for r in audit if r["kind"] == "review_verdict"]


# ------------------------------------------------------------------------------------------------- enqueue


def test_enqueue_round_trips_every_field_and_normalises_values(queue):
    item_id = queue.enqueue(
        make_item(
            "a1",
            context="Foo is the capital.",
            risk=np.float32(0.75),
            signals={"h_neuron": np.float64(0.75), "missing": float("nan"), "nested": {"k": [1, 2.5]}},
            time=datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        )
    )
    assert item_id == "a1"
    item = queue.get("a1")
    assert item.status == "pending" and item.verdict is None
    assert item.audit_id == "a1"
    assert item.context == "Foo is the capital."
    assert item.risk == pytest.approx(0.75)
    # NaN is not JSON: stored as None, the way the audit log stores it.
    assert item.signals == {"h_neuron": 0.75, "missing": None, "nested": {"k": [1, 2.5]}}
    assert item.reasons == make_item("x")["reasons"]
    assert item.time == "2025-03-01T10:00:00.000000+00:00"  # converted to UTC
    assert item.model_fingerprint == "sha256:abc" and item.probe_id == "probe-1"
    assert queue.get("nope") is None


def test_unscorable_risk_is_stored_as_unscored_not_refused(queue):
    queue.enqueue(make_item("nan", risk=float("nan")))
    assert queue.get("nan").risk is None


def test_queue_file_is_wal_and_not_world_readable(queue):
    with sqlite3.connect(queue.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert queue.path.stat().st_mode & 0o007 == 0


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({"question": "q", "answer": "a"}, "missing audit_id"),
        (make_item("x", reason=["typo"]), "unknown key 'reason'"),
        (make_item("x", risk="high"), "risk must be a number"),
        (make_item("x", reasons="one reason"), "reasons must be a list"),
        (make_item("x", time="2025-03-01T10:00:00"), "has no time zone"),
        (make_item("x", signals={1: 0.5}), "keys must be strings"),
        (make_item("x", signals={"obj": object()}), "JSON cannot store"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_malformed_item_raises_review_queue_error_naming_the_problem(queue, bad, expected):
    with pytest.raises(ReviewQueueError, match=expected) as info:
        queue.enqueue(bad)
    assert str(queue.path) in str(info.value)
    assert queue.counts() == {}


def test_enqueue_same_audit_id_twice_is_refused(queue):
    queue.enqueue(make_item("dup"))
    with pytest.raises(ReviewQueueError, match="already queued"):
        queue.enqueue(make_item("dup", answer="other"))
    assert queue.get("dup").answer == make_item("dup")["answer"]


def test_queue_path_that_is_a_directory_raises(tmp_path):
    with pytest.raises(ReviewQueueError, match="is a folder; name the queue file") as info:
        ReviewQueue(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("content", [b"x", b"\n", b"notes: call back on monday\n"])
def test_a_file_that_is_not_a_queue_is_refused_and_left_as_it_is(tmp_path, content):
    """A bad-input trial: `hguard monitor --queue notes.txt` (or ReviewQueue("notes.txt")) on a 1-byte file: sqlite
    took it for a new database and overwrote it with a queue (32 KiB, the byte gone); a longer one failed as "could
    not open the queue: file is not a database". A non-empty file that is not a SQLite database is refused, untouched."""
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ReviewQueueError) as info:
        ReviewQueue(path)
    assert str(info.value) == (f"review queue path {path} is a file that is not an hguard review queue (not a SQLite "
                               "database), left as it is; name the queue file (e.g. hguard-review.sqlite3) or a new "
                               "path where the guard creates it")
    assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "empty.sqlite3").write_bytes(b"")  # an empty file (touched beforehand) is still made a queue
    ReviewQueue(tmp_path / "empty.sqlite3").enqueue(make_item("a"))
    assert ReviewQueue(tmp_path / "empty.sqlite3").get("a") is not None


def test_enqueue_into_a_file_that_stopped_being_a_database_raises_with_path_and_cause(tmp_path):
    q = ReviewQueue(tmp_path / "q.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        p = tmp_path / f"q.sqlite3{suffix}"
        if p.exists():
            p.unlink()
    (tmp_path / "q.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReviewQueueError) as info:
        q.enqueue(make_item("a"))
    msg = str(info.value)
    assert str(tmp_path / "q.sqlite3") in msg and "not a database" in msg
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


@pytest.mark.parametrize("seconds", [float("inf"), 10**400, -1, float("nan"), True, "10", 3601])
def test_a_busy_timeout_the_queue_cannot_wait_is_refused_in_one_line(tmp_path, seconds):
    # an infinity or 10**400 stopped with OverflowError when the queue was first opened
    with pytest.raises(InputError, match=r"busy_timeout must be a number of seconds in \[0, 3600\], got .*; e\.g\. 10"):
        ReviewQueue(tmp_path / "q.sqlite3", busy_timeout=seconds)
    assert not (tmp_path / "q.sqlite3").exists()


def test_enqueue_while_another_writer_holds_the_queue_fails_after_the_busy_timeout(tmp_path):
    q = ReviewQueue(tmp_path / "q.sqlite3", busy_timeout=0.2)
    blocker = sqlite3.connect(q.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(ReviewQueueError, match="locked") as info:
            q.enqueue(make_item("a"))
        assert "busy_timeout" in str(info.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert q.enqueue(make_item("a")) == "a"


def test_a_database_of_something_else_is_refused(tmp_path):
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(ReviewQueueError, match="something else"):
        ReviewQueue(path)


# ------------------------------------------------------------------------------------------------- reading


def test_pending_orders_by_risk_with_unscored_first_and_filters_by_domain(queue):
    queue.enqueue(make_item("low", risk=0.1, time="2025-03-01T10:00:00+00:00"))
    queue.enqueue(make_item("high", risk=0.9, time="2025-03-01T11:00:00+00:00"))
    queue.enqueue(make_item("none", risk=None, time="2025-03-01T12:00:00+00:00"))
    queue.enqueue(make_item("med", risk=0.6, domain="medicine", time="2025-03-01T09:00:00+00:00"))
    queue.enqueue(make_item("nodomain", risk=0.5, domain=None, time="2025-03-01T08:00:00+00:00"))
    assert [i.id for i in queue.pending()] == ["none", "high", "med", "nodomain", "low"]
    assert [i.id for i in queue.pending(order="time")] == ["nodomain", "med", "low", "high", "none"]
    assert [i.id for i in queue.pending(domain="geography")] == ["none", "high", "low"]
    assert [i.id for i in queue.pending(domain=NO_DOMAIN)] == ["nodomain"]
    assert [i.id for i in queue.pending(limit=2)] == ["none", "high"]
    assert queue.counts() == {
        "geography": {"pending": 3, "decided": 0},
        "medicine": {"pending": 1, "decided": 0},
        None: {"pending": 1, "decided": 0},
    }
    with pytest.raises(InputError, match="order must be"):
        queue.pending(order="alpha")


# ------------------------------------------------------------------------------------------------- deciding


def test_decide_records_verdict_and_its_audit_record(queue, audit):
    queue.enqueue(make_item("a", risk=0.8))
    v = queue.decide("a", verdict="corrected", reviewer=" alice ", corrected_answer="Bar", note="checked atlas")
    assert (v.verdict, v.reviewer, v.corrected_answer, v.note, v.label) == (
        "corrected", "alice", "Bar", "checked atlas", "hallucinated",
    )  # fmt: skip
    item = queue.get("a")
    assert item.status == "decided" and item.verdict == v
    assert queue.pending() == [] and [i.id for i in queue.decided()] == ["a"]
    assert queue.counts() == {"geography": {"pending": 0, "decided": 1}}

    (rec,) = verdict_records(audit)
    assert rec["id"] == v.audit_record_id and rec["hash"] == v.audit_hash
    assert rec["item_id"] == "a" and rec["decision_audit_id"] == "a"
    assert (rec["verdict"], rec["label"], rec["reviewer"], rec["corrected_answer"], rec["note"]) == (
        "corrected", "hallucinated", "alice", "Bar", "checked atlas",
    )  # fmt: skip
    assert rec["decided_at"] == v.decided_at and rec["risk"] == 0.8 and rec["domain"] == "geography"
    item_fields = make_item("a")
    assert rec["reviewed_sha256"] == {k: (redacted(item_fields[k]) or {}).get("sha256") for k in ("question", "context", "answer")}
    assert verify(audit.path).ok


@pytest.mark.parametrize("command", ["decide", "show", "list"])
def test_an_audit_log_that_cannot_be_read_is_said_in_one_line_naming_it_and_nothing_is_recorded(queue, audit,
                                                                                                 monkeypatch, capsys,
                                                                                                 command):  # fmt: skip
    """Deciding, showing and listing read the log (the item's decision record, the verdicts on it): a reader's raw
    OSError (a disk error, a permission) surfaced as a traceback (and on the review page as a bare 500). It is
    AuditLogUnavailable, a ReviewQueueError naming the log, the cause and what to do; nothing is recorded."""
    queue.enqueue(make_item("a"))
    before = audit.path.read_bytes()

    def history(self, since=None):
        raise OSError(errno.EIO, "Input/output error")
        yield  # a generator, as AuditLog.history is

    monkeypatch.setattr(AuditLog, "history", history)
    if command == "decide":
        with pytest.raises(AuditLogUnavailable) as info:
            queue.decide("a", verdict="correct", reviewer="alice")
        assert str(info.value) == (
            f"review queue {queue.path}: could not record the verdict on item 'a': the audit log {audit.path} could "
            "not be read (OSError: [Errno 5] Input/output error; check that this process may read it and the disk it "
            "is on); nothing was recorded; fix the audit log and decide again")  # fmt: skip
        assert isinstance(info.value, ReviewQueueError) and isinstance(info.value.__cause__, OSError)
    args = {"decide": ["decide", "a", "--verdict", "correct", "--reviewer", "alice"], "show": ["show", "a"],
            "list": ["list"]}[command]  # fmt: skip
    assert cli_main([*args, "--queue", str(queue.path), "--audit", str(audit.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the audit log {audit.path} could not be read (OSError: [Errno 5]" in err
    assert "Traceback" not in err
    assert queue.get("a").status == "pending" and audit.path.read_bytes() == before


def test_a_verdict_is_refused_when_the_queue_no_longer_holds_what_the_model_answered(queue, audit):
    """The queue is what the reviewer reads, the log what an auditor checks: an item edited in the queue file
    after the guard wrote its decision, or one whose decision is not in the log, gets no verdict."""
    queue.enqueue(make_item("a"))
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'about 27 mg of iron per day' WHERE id = 'a'")
    with pytest.raises(ReviewQueueError, match="the answer of item 'a' differs from its decision record 'a'"):
        queue.decide("a", verdict="correct", reviewer="alice")
    assert queue.get("a").status == "pending" and verdict_records(audit) == []
    ReviewQueue(queue.path).enqueue(make_item("b"))  # no decision record for it in this log
    with pytest.raises(ReviewQueueError, match="'b' judges decision 'b', which is not a decision record of the audit log"):
        queue.decide("b", verdict="correct", reviewer="alice")
    assert queue.get("b").status == "pending" and verdict_records(audit) == []
    ReviewQueue(queue.path).decide("b", verdict="correct", reviewer="alice")  # a queue without a log: its own record only


def test_second_decision_raises_already_decided_and_changes_nothing(queue, audit):
    queue.enqueue(make_item("a"))
    first = queue.decide("a", verdict="correct", reviewer="alice")
    with pytest.raises(AlreadyDecided) as info:
        queue.decide("a", verdict="hallucinated", reviewer="bob")
    e = info.value
    assert isinstance(e, ReviewQueueError)
    assert e.reviewer == "alice" and e.decided_at == first.decided_at and e.verdict == "correct"
    assert "already decided by alice at " + first.decided_at in str(e) and "--supersede" not in str(e)
    assert queue.get("a").verdict == first
    assert len(verdict_records(audit)) == 1
    # --supersede does not replace a committed verdict, and says what it is for (it was silently the same refusal)
    with pytest.raises(AlreadyDecided, match="--supersede records a verdict over one the audit log holds but the queue "
                                             "never committed"):
        queue.decide("a", verdict="hallucinated", reviewer="bob", supersede=True)
    assert queue.get("a").verdict == first and len(verdict_records(audit)) == 1


def test_two_threads_deciding_the_same_item_exactly_one_wins(tmp_path, audit):
    path = tmp_path / "race.sqlite3"
    feeder = guard_queue(path, audit=audit)
    ids = [f"item{i}" for i in range(8)]
    for i in ids:
        feeder.enqueue(make_item(i))
    outcomes: dict[str, list] = {i: [] for i in ids}
    lock = threading.Lock()

    def reviewer(name: str, verdict: str, barrier: threading.Barrier, item_id: str) -> None:
        q = ReviewQueue(path, audit=AuditLog(audit.path))  # each reviewer its own object and connections
        barrier.wait()
        try:
            result = q.decide(item_id, verdict=verdict, reviewer=name)
        except AlreadyDecided as e:
            result = e
        with lock:
            outcomes[item_id].append(result)

    for item_id in ids:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=reviewer, args=("alice", "correct", barrier, item_id)),
            threading.Thread(target=reviewer, args=("bob", "hallucinated", barrier, item_id)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    q = ReviewQueue(path)
    records = verdict_records(audit)
    for item_id in ids:
        wins = [r for r in outcomes[item_id] if not isinstance(r, Exception)]
        losses = [r for r in outcomes[item_id] if isinstance(r, AlreadyDecided)]
        assert len(wins) == 1 and len(losses) == 1, outcomes[item_id]
        stored = q.get(item_id).verdict
        assert stored == wins[0]
        assert losses[0].reviewer == stored.reviewer
        assert [r["reviewer"] for r in records if r["item_id"] == item_id] == [stored.reviewer]
    assert verify(audit.path).ok


def test_verdict_is_rolled_back_when_the_audit_log_cannot_be_written(queue, audit, monkeypatch):
    queue.enqueue(make_item("a"))
    audit.append({"note": "first"}, kind="test")
    real_fsync = os.fsync

    def disk_failing(fd):
        if os.fstat(fd).st_ino == audit.path.stat().st_ino:
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_failing)  # the log's disk fails: the record is not stored
    with pytest.raises(ReviewQueueError, match="still pending") as info:
        queue.decide("a", verdict="correct", reviewer="alice")
    assert str(audit.path) in str(info.value)
    item = queue.get("a")
    assert item.status == "pending" and item.verdict is None


class _MirroredLog(AuditLog):
    """A user's audit sink: each record written to the log, then copied to a database that is down (for verdicts)."""

    def append(self, record, *, kind="decision"):
        receipt = super().append(record, kind=kind)
        if kind == "review_verdict":
            raise ConnectionError("acme-db: connection refused")
        return receipt


def test_a_verdict_written_before_the_audit_sink_raised_is_committed_not_left_pending(tmp_path):
    """A sink whose append wrote the verdict record and then raised (its network copy failing) left the item pending,
    its verdict in the log and not in the queue: deciding again was refused as an uncommitted verdict. The record is
    on disk (AuditLog.receipt_of): the queue commits the verdict, and a warning says what failed after it."""
    log = _MirroredLog(tmp_path / "audit.jsonl")
    q = guard_queue(tmp_path / "review.sqlite3", audit=log)
    q.enqueue(make_item("a"))
    with pytest.warns(UserWarning, match=r"the verdict correct on review item 'a' is written to the audit log .*"
                                         r"append raised after writing it \(ConnectionError: acme-db.*the item is decided"):
        v = q.decide("a", verdict="correct", reviewer="alice")
    (rec,) = verdict_records(log)
    item = q.get("a")
    assert item.status == "decided" and item.verdict == v
    assert (v.audit_record_id, v.audit_hash) == (rec["id"], rec["hash"])
    assert q.verdict_refusal("a") is None and verify(log.path).ok


def test_a_verdict_written_before_the_audit_sink_raised_is_committed_under_warnings_as_errors(tmp_path):
    """Under warnings as errors (python -W error, pytest's filterwarnings = error) the warning that a verdict's record
    is written though the sink raised after it was raised in place of the verdict, after the commit: the caller (the
    CLI, the web app) read the decided item as failed, and deciding again was refused as already decided. The verdict
    is returned, a decide and a put-on-record of a --no-audit verdict alike."""
    log = _MirroredLog(tmp_path / "audit.jsonl")
    q = guard_queue(tmp_path / "review.sqlite3", audit=log)
    q.enqueue(make_item("a"))
    q.enqueue(make_item("b"))
    ReviewQueue(q.path).decide("b", verdict="correct", reviewer="alice")  # --no-audit: in the queue only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = q.decide("a", verdict="correct", reviewer="alice")
        w = q.decide("b", verdict="correct", reviewer="bob")  # the same verdict, put on record
    by_item = {r["item_id"]: r for r in verdict_records(log)}
    assert q.get("a").verdict == v and (v.audit_record_id, v.audit_hash) == (by_item["a"]["id"], by_item["a"]["hash"])
    assert q.get("b").verdict == w and w.audit_record_id == by_item["b"]["id"] and w.reviewer == "bob"


class _BreakerLog(AuditLog):
    """A user's audit sink with a circuit breaker: the first verdict written, then its copy to a database failing (the
    error kept); while open, the kept error raised again before anything is written."""

    kept: Exception | None = None

    def append(self, record, *, kind="decision"):
        if kind == "review_verdict" and self.kept is not None:
            raise self.kept
        receipt = super().append(record, kind=kind)
        if kind == "review_verdict":
            self.kept = ConnectionError("acme-db: connection refused")
            raise self.kept
        return receipt


def test_a_verdict_whose_sink_raised_a_kept_error_before_writing_it_stays_pending(tmp_path):
    """A sink raising again the error of an earlier verdict (written then raised) before writing this one: the
    queue read the error's receipt (the earlier record's) as this verdict written, committed it with the other
    item's record hash, and said it was in the log. Nothing of it is: the error is raised (as the queue's "not
    recorded", naming it), the item stays pending."""
    log = _BreakerLog(tmp_path / "audit.jsonl")
    q = guard_queue(tmp_path / "review.sqlite3", audit=log)
    q.enqueue(make_item("a"))
    q.enqueue(make_item("b"))
    with pytest.warns(UserWarning, match="the verdict correct on review item 'a' is written"):
        q.decide("a", verdict="correct", reviewer="alice")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning saying b's verdict is written
        with pytest.raises(ReviewQueueError, match=r"the verdict on item 'b' was not recorded because the audit log "
                           r".* could not be written \(ConnectionError: acme-db: connection refused\); the item is "
                           "still pending") as info:  # fmt: skip
            q.decide("b", verdict="hallucinated", reviewer="bob")
    assert info.value.__cause__ is log.kept
    (rec,) = verdict_records(log)
    assert rec["item_id"] == "a"
    b = q.get("b")
    assert b.status == "pending" and b.verdict is None
    log.kept = None  # the breaker closed again (its copy failing after this record once more): b is decided now
    with pytest.warns(UserWarning, match="the verdict hallucinated on review item 'b' is written"):
        assert q.decide("b", verdict="hallucinated", reviewer="bob").verdict == "hallucinated"


def test_redacting_audit_log_gets_hashes_of_corrected_answer_and_note(tmp_path):
    audit = AuditLog(tmp_path / "a.jsonl", redact=True)
    q = guard_queue(tmp_path / "q.sqlite3", audit=audit)
    q.enqueue(make_item("a"))
    q.decide("a", verdict="corrected", reviewer="alice", corrected_answer="Secret", note="private")
    (rec,) = verdict_records(audit)
    assert set(rec["corrected_answer"]) == {"sha256"} and set(rec["note"]) == {"sha256"}
    assert "Secret" not in audit.path.read_text()


def test_a_verdict_in_a_redacting_audit_log_is_exported(tmp_path):
    """The hashes of what the reviewer was shown were hashed again by the redacting log, so the export took every
    verdict for one on an edited queue and exported nothing."""
    audit = AuditLog(tmp_path / "a.jsonl", redact=True)
    q = guard_queue(tmp_path / "q.sqlite3", audit=audit)
    q.enqueue(make_item("a"))
    q.decide("a", verdict="corrected", reviewer="alice", corrected_answer="Bar")
    (rec,) = verdict_records(audit)
    assert rec["reviewed_sha256"] == {k: (redacted(make_item("a")[k]) or {}).get("sha256") for k in ("question", "context", "answer")}
    summary = export_reviewed(q, tmp_path / "reviewed.jsonl")
    assert [ex.answers for ex in load_examples(tmp_path / "reviewed.jsonl")] == [["Bar"]], summary


def test_a_verdict_whose_shown_hashes_an_earlier_redacting_log_hashed_again_is_exported(tmp_path, monkeypatch):
    """Logs written before the fix hold the hashes hashed again: they still identify what the reviewer was shown."""
    import hguard._audit_records as records

    def hashed_again(value):  # hguard 0.2.0's walk: every question, context and answer field, hashes included
        if isinstance(value, dict):
            return {k: redacted(v) if k in records.REDACTED_FIELDS and v is not None else hashed_again(v)
                    for k, v in value.items()}
        return [hashed_again(v) for v in value] if isinstance(value, list) else value

    monkeypatch.setattr(records, "_redact", hashed_again)
    audit = AuditLog(tmp_path / "a.jsonl", redact=True)
    q = guard_queue(tmp_path / "q.sqlite3", audit=audit)
    q.enqueue(make_item("a"))
    q.enqueue(make_item("b"))
    q.decide("a", verdict="correct", reviewer="alice")
    q.decide("b", verdict="correct", reviewer="alice")
    (rec, _) = verdict_records(audit)
    assert rec["reviewed_sha256"]["question"] == redacted(redacted(make_item("a")["question"])["sha256"])
    monkeypatch.undo()
    with sqlite3.connect(q.path) as conn:  # an item edited after its verdict is still told apart
        conn.execute("UPDATE review_items SET answer = 'edited' WHERE id = 'b'")
    summary = export_reviewed(q, tmp_path / "reviewed.jsonl")
    assert [ex.answers for ex in load_examples(tmp_path / "reviewed.jsonl")] == [[make_item("a")["answer"]]]
    assert [i for i, _ in summary.skipped] == ["b"]


def test_why_an_item_was_held_names_the_reason_that_held_it():
    from hguard.review.queue import ReviewItem

    item = ReviewItem(**{**{f: None for f in ReviewItem.__dataclass_fields__}, "reasons": [
        "domain 'claims' chosen with similarity 0.61 (next: 'policy' 0.55)",
        "risk 0.858 < accept_below 0.9 for domain 'claims', but:", "grounding support 0.0335 < min_grounding 0.2"]})
    assert item.why == "risk 0.858 < accept_below 0.9 for domain 'claims', but: grounding support 0.0335 < min_grounding 0.2"


def test_queue_without_audit_log_still_records_verdicts(tmp_path):
    q = ReviewQueue(tmp_path / "q.sqlite3")
    q.enqueue(make_item("a"))
    v = q.decide("a", verdict="hallucinated", reviewer="alice")
    assert v.audit_record_id is None and q.get("a").verdict == v


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"verdict": "maybe", "reviewer": "a"}, "verdict must be one of"),
        ({"verdict": "correct", "reviewer": "  "}, "reviewer must be a non-empty name"),
        # a second name on its own line, or shown right to left, in one-line listings (audit show)
        ({"verdict": "correct", "reviewer": "mallory\nreviewer=alice"}, "control or formatting character.*U\\+000A"),
        ({"verdict": "correct", "reviewer": "bob\u202eecila"}, "U\\+202E"),
        # a name that shows as blank, or as another's ("alice" with an invisible mark): a Hangul filler, a blank
        # Braille cell, the combining grapheme joiner, a variation selector
        ({"verdict": "correct", "reviewer": "\u3164"}, "U\\+3164"),
        ({"verdict": "correct", "reviewer": "\u2800"}, "U\\+2800"),
        ({"verdict": "correct", "reviewer": "alice\u034f"}, "U\\+034F"),
        ({"verdict": "correct", "reviewer": "alice\ufe0f"}, "U\\+FE0F"),
        # a zero-width non-joiner or joiner inside a Latin name ("Ann\u200ca" shows as "Anna"; a trial's), or at an end
        ({"verdict": "correct", "reviewer": "Ann\u200ca"}, "U\\+200C"),
        ({"verdict": "correct", "reviewer": "\u200dbob"}, "U\\+200D"),
        ({"verdict": "corrected", "reviewer": "a"}, "needs the right answer"),
        ({"verdict": "corrected", "reviewer": "a", "corrected_answer": "  "}, "needs the right answer"),
        ({"verdict": "correct", "reviewer": "a", "corrected_answer": "Bar"}, "takes no corrected_answer"),
        # the model's own answer (case and spacing aside) given as the correction: it would export as wrong
        ({"verdict": "corrected", "reviewer": "a", "corrected_answer": " the capital of a is  foo."}, "model's own answer"),
        # ... however it is typed: a zero-width space, a fullwidth letter, the final period left off
        ({"verdict": "corrected", "reviewer": "a", "corrected_answer": "The capital of a is F\u200boo."}, "model's own answer"),
        ({"verdict": "corrected", "reviewer": "a", "corrected_answer": "The capital of a is \uff26oo"}, "model's own answer"),
    ],
)
def test_bad_verdicts_are_refused_and_leave_the_item_pending(queue, kwargs, expected):
    queue.enqueue(make_item("a"))
    with pytest.raises(InputError, match=expected):
        queue.decide("a", **kwargs)
    assert queue.get("a").status == "pending"


def test_deciding_an_unknown_item_raises_item_not_found(queue):
    with pytest.raises(ItemNotFound, match=r"no item 'ghost'; list the pending items with `hguard review list` \(with the same --policy, or --queue "):
        queue.decide("ghost", verdict="correct", reviewer="alice")


# ------------------------------------------------------------------------------------------------- export


def _decided_queue(queue):
    queue.enqueue(make_item("ok", risk=0.7, context="Foo is the capital of ok."))
    queue.enqueue(make_item("bad", risk=0.3))
    queue.enqueue(make_item("fixed", risk=0.9))
    queue.enqueue(make_item("unscored", risk=None, domain="medicine"))
    queue.enqueue(make_item("nodomain", risk=0.2, domain=None))
    queue.enqueue(make_item("waiting", risk=0.5))
    queue.decide("ok", verdict="correct", reviewer="alice")
    queue.decide("bad", verdict="hallucinated", reviewer="bob")
    queue.decide("fixed", verdict="corrected", reviewer="carol", corrected_answer="Baz")
    queue.decide("unscored", verdict="correct", reviewer="alice")
    queue.decide("nodomain", verdict="correct", reviewer="alice")
    return queue


def test_export_writes_valid_calibration_rows_with_reviewer_labels(queue, tmp_path, monkeypatch):
    import os
    import stat

    _decided_queue(queue)
    out = tmp_path / "reviewed.jsonl"
    modes = []  # the file's mode as it gets its name: a chmod after the rename left it world-readable for a moment
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: modes.append(stat.S_IMODE(os.stat(a).st_mode)) or real_replace(a, b))
    summary = export_reviewed(queue, out)
    monkeypatch.setattr(os, "replace", real_replace)
    assert modes == [0o640] and stat.S_IMODE(out.stat().st_mode) == 0o640
    rows = {ex.id: ex for ex in load_examples(out)}  # the strict loader accepts every row
    assert set(rows) == {"review-ok", "review-bad", "review-fixed", "review-unscored"}

    ok, bad, fixed = rows["review-ok"], rows["review-bad"], rows["review-fixed"]
    assert ok.answers == [make_item("ok")["answer"]] and ok.kind == "qa" and ok.meta["label"] == "correct"
    assert ok.context == "Foo is the capital of ok." and ok.domain == "geography"
    assert fixed.answers == ["Baz"] and fixed.kind == "qa" and fixed.meta["label"] == "hallucinated"
    assert fixed.meta["model_answer"] == make_item("fixed")["answer"]
    # The right answer is unknown, so no answer counts as right: only abstaining would be.
    assert bad.answers == [] and bad.kind == "unanswerable" and bad.meta["label"] == "hallucinated"
    assert bad.meta["answers_unknown"] is True
    assert {ex.meta["family"] for ex in rows.values()} == {"reviewed"}  # one family, not one per row
    assert os.stat(out).st_mode & 0o777 == 0o640  # reviewed questions and answers: not world-readable
    for ex in rows.values():
        assert ex.meta["source"] == "review" and ex.meta["probe_route"] == "review"
        assert ex.meta["verdict_audit_id"] == queue.get(ex.id[len("review-"):]).verdict.audit_record_id
    assert rows["review-unscored"].meta["risk"] is None and ok.meta["risk"] == 0.7

    assert summary.n_items == 4
    assert summary.by_verdict == {"correct": 2, "hallucinated": 1, "corrected": 1, "not_in_context": 0}
    # correct at 0.7 and hallucinated at 0.3 disagree; corrected at 0.9 and the skipped correct at 0.2 agree.
    assert (summary.n_disagreements, summary.n_scored) == (2, 4)
    assert summary.skipped == [("nodomain", "it has no domain; calibration rows need one")]
    assert "disagreed with the risk read at 0.5 (hallucinated at or above it; not the policy's thresholds) on 2 of 4" \
        in summary.summary() and (summary.n_spot_checks, summary.n_spot_hallucinated) == (0, 0)
    # the counts read against the file: the verdicts are those of the rows written, the skipped item said apart
    assert ("(rows by verdict: correct 2, hallucinated 1, corrected 1, not_in_context 0, 1 decided item(s) skipped "
            "(below))") in summary.summary() and "decided items with a risk, skipped ones included" in summary.summary()

    only_med = export_reviewed(queue, tmp_path / "med.jsonl", domain="medicine")
    assert [ex.id for ex in load_examples(tmp_path / "med.jsonl")] == ["review-unscored"]
    assert only_med.n_scored == 0 and only_med.disagreement_rate is None

    nothing = export_reviewed(queue, tmp_path / "none.jsonl", domain="astronomy")
    assert (nothing.n_items, nothing.written) == (0, False)
    assert not (tmp_path / "none.jsonl").exists() and "not written" in nothing.summary()

    # a verdict, corrected answer, reviewer or note edited in the queue file is not exported as said
    for column, value in (("verdict", "hallucinated"), ("corrected_answer", "Qux"), ("reviewer", "chief"), ("note", "sure")):
        with sqlite3.connect(queue.path) as conn:
            saved = conn.execute(f"SELECT {column} FROM review_items WHERE id = 'fixed'").fetchone()[0]
            conn.execute(f"UPDATE review_items SET {column} = ? WHERE id = 'fixed'", (value,))
        edited = export_reviewed(queue, tmp_path / "edited.jsonl")
        assert "fixed" in dict(edited.skipped), (column, edited.skipped)
        assert "is not what its verdict record" in dict(edited.skipped)["fixed"]  # "hallucinated": the same label
        with sqlite3.connect(queue.path) as conn:
            conn.execute(f"UPDATE review_items SET {column} = ? WHERE id = 'fixed'", (saved,))
    assert "fixed" not in dict(export_reviewed(queue, tmp_path / "again.jsonl").skipped)
    # a decided row copied under another id is not a second verdict: skipped, not written twice
    with sqlite3.connect(queue.path) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(review_items)")]
        row = dict(zip(cols, conn.execute("SELECT * FROM review_items WHERE id = 'ok'").fetchone()))
        row["id"] = "okcp"
        conn.execute(f"INSERT INTO review_items ({','.join(row)}) VALUES ({','.join('?' * len(row))})", tuple(row.values()))
    copied = export_reviewed(queue, tmp_path / "copied.jsonl")
    assert "okcp" in dict(copied.skipped) and copied.n_items == summary.n_items
    # an earlier export is replaced; any other file (the team's own calibration rows) is refused, untouched
    again = export_reviewed(queue, out)
    assert again.n_items == summary.n_items and len(load_examples(out)) == summary.n_items
    mine = tmp_path / "pharma.jsonl"
    mine.write_text('{"id": "p1", "question": "q?", "answers": ["a"], "domain": "pharma"}\n')
    kept = mine.read_bytes()
    with pytest.raises(InputError, match=r"pharma.jsonl already exists and is not an earlier review export .*nothing was written"):
        export_reviewed(queue, mine)
    assert mine.read_bytes() == kept


def test_export_counts_the_spot_checked_accepted_answers_reviewers_said_were_hallucinated(queue, tmp_path):
    """A trial's one spot-checked accepted answer (risk 0.53) judged hallucinated read as "disagreed on 0 of 1": the
    fixed 0.5 said nothing of the guard's own mistake."""
    queue.enqueue(make_item("acc", risk=0.53, spot_check=True))
    queue.enqueue(make_item("acc2", risk=0.1, spot_check=True))
    queue.decide("acc", verdict="hallucinated", reviewer="alice")
    queue.decide("acc2", verdict="correct", reviewer="alice")
    summary = export_reviewed(queue, tmp_path / "r.jsonl")
    assert (summary.n_spot_checks, summary.n_spot_hallucinated) == (2, 1)
    assert "; 1 of the 2 spot-checked accepted answers were hallucinated" in summary.summary()
    # an auditor's trial: a verdict edited in the queue file (the chain still says hallucinated) changed the figures
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET verdict = 'correct' WHERE id = 'acc'")
    edited = export_reviewed(queue, tmp_path / "r.jsonl")
    assert "acc" in dict(edited.skipped)  # not exported as said
    # ... naming the record that says otherwise (it said "no review_verdict record in the audit log": an auditor's trial)
    (rid,) = [r["id"] for r in verdict_records(queue.audit) if r["item_id"] == "acc"]
    assert dict(edited.skipped)["acc"].startswith(f"its verdict 'correct' is not the 'hallucinated' by alice that its "
                                                  f"verdict record {rid} in {queue.audit.path} holds"), edited.skipped
    assert (edited.n_spot_checks, edited.n_spot_hallucinated) == (2, 1)  # counted by the chain's verdict
    assert (edited.n_disagreements, edited.n_scored) == (summary.n_disagreements, summary.n_scored)
    # ... and an item set back to pending in the file keeps its chain verdict in them (a review of that fix)
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET status = 'pending', verdict = NULL, reviewer = NULL, decided_at = NULL "
                     "WHERE id = 'acc'")
    reset = export_reviewed(queue, tmp_path / "r.jsonl")
    assert (reset.n_spot_checks, reset.n_spot_hallucinated) == (2, 1)
    assert (reset.n_disagreements, reset.n_scored) == (summary.n_disagreements, summary.n_scored)
    # an auditor's trial: the decided row deleted from the queue file, the export dropped its verdict silently and
    # said "0 of the 1 spot-checked accepted answers were hallucinated"; the chain's verdict is named and counted
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items WHERE id = 'acc'")
    gone = export_reviewed(queue, tmp_path / "r.jsonl")
    assert (gone.n_spot_checks, gone.n_spot_hallucinated, gone.n_not_in_queue) == (2, 1, 1)
    assert (gone.n_disagreements, gone.n_scored) == (summary.n_disagreements, summary.n_scored)
    why = dict(gone.skipped)["acc"]
    assert f"holds the verdict 'hallucinated' by alice (record {rid})" in why and "holds no item of that decision" in why
    assert "; 1 of the 2 spot-checked accepted answers were hallucinated (these figures count 1 verdict(s) of the " \
           "audit chain on decisions the queue holds no item of" in gone.summary(), gone.summary()
    assert export_reviewed(queue, tmp_path / "r.jsonl", domain="medicine").skipped == []  # another domain's export


def test_items_asking_one_question_export_as_one_row_the_latest_verdict_that_the_loader_loads(queue, tmp_path):
    """Two users asked the HR assistant one question with one passage (one with a doubled space and a trailing
    newline); both answers were reviewed, the export wrote both rows, and calibrating from the file was refused (the
    loader takes one row per question and passage). Closed-book repeats were written twice too: the model answers a
    question once, and calibration counted that answer twice. Now one row each, the latest verdict, the others named;
    two labels of one answer are a dispute, not exported."""
    leave, cap = "How many days of leave do I get?", "What is the capital of Xland?"
    for item_id, question, context, answer, domain in (
            ("a", leave, "Leave is 20 days a year.", "20 days.", "hr"),
            ("b", leave.replace(" of ", "  of "), "Leave is  20 days a year.\n", "20 days.", "hr"),
            ("c", leave, "Leave is 20 days a year.", "20 days.", "payroll"),  # another domain's: its own row
            ("d", cap, None, "Xland's capital is Foo.", "geography"),
            ("e", " " + cap, None, "Bar.", "geography"),
            ("f", "Who founded Xland?", None, "Ann Foo.", "geography"),
            ("g", "Who founded  Xland?", None, "ann foo", "geography")):  # one answer as a reader sees it
        queue.enqueue(make_item(item_id, question=question, context=context, answer=answer, domain=domain))
    for item_id, verdict in zip("abcdefg", ("correct", "correct", "correct", "hallucinated", "correct", "correct",
                                            "hallucinated")):  # decided in id order: the latest is the last id
        queue.decide(item_id, verdict=verdict, reviewer=f"r{item_id}")
    out = tmp_path / "reviewed.jsonl"
    summary = export_reviewed(queue, out)
    rows = {ex.id: ex for ex in load_examples(out)}  # loads: no question and passage twice
    assert set(rows) == {"review-b", "review-c", "review-e"}
    assert rows["review-e"].answers == ["Bar."] and rows["review-e"].meta["label"] == "correct"
    assert summary.n_items == 3 and summary.by_verdict == {"correct": 3, "hallucinated": 0, "corrected": 0,
                                                           "not_in_context": 0}
    why = dict(summary.skipped)
    assert why["a"] == ("repeats the question and passage of review-b (spaces aside), exported as one row: the latest "
                        "verdict ('correct' by rb)")
    assert why["d"] == ("repeats the question (no passage) of review-e (spaces aside), exported as one row: the latest "
                        "verdict ('correct' by re); its own verdict, 'hallucinated' of the answer \"Xland's capital is "
                        "Foo.\", is not in the file (the model answers the question once, and an answer other than the "
                        "row's is judged by the row's answers)")
    for item_id in "fg":
        assert why[item_id] == ("reviewers disagree on one answer to the question (no passage) of 2 items (spaces "
                                "aside): 'correct' by rf on review-f and 'hallucinated' by rg on review-g, the same "
                                "answer 'Ann Foo.'; a disputed label is not calibration data, so none of them is "
                                "exported")
    assert summary.n_merged == 2 and ("(rows by verdict: correct 3, hallucinated 0, corrected 0, not_in_context 0, 4 "
                                      "decided item(s) skipped (below; 2 of them repeat the question (and passage) of "
                                      "an item exported, whose row carries the latest verdict (that names a right "
                                      "answer, where one does): one question is one row))") in summary.summary(), summary.summary()
    # the figures still count every decision reviewed: the probe's risk was read on each
    assert summary.n_scored == 7


def _reviewed_row(item_id: str, answer: str, label: str, **over):
    """A review export's row for ``_one_row_per_question``: one closed-book question, ``answer`` judged ``label``."""
    from hguard.calibrate.data import Example

    meta = {"source": "review", "verdict": "correct" if label == "correct" else "hallucinated", "label": label,
            "model_answer": answer, "reviewer": f"r{item_id}"}
    row = {"id": f"review-{item_id}", "question": "What is the capital of France?", "answers": [answer],
           "domain": "geography", "kind": "qa", "meta": meta} | over
    return Example(**row)


def test_a_disputed_label_is_found_in_one_pass_over_the_items_of_one_question(within_cpu_seconds):
    """A review: the export compared every pair of items asking one question (1,000 items of one FAQ question with
    alternating labels took 7.8 s, 4x for each doubling; 3,000 take over a minute). Now one pass; an answer two
    reviewers labelled is still found as a reader sees it (full-width letters, case, end punctuation aside), and two
    answers with the same letters but not the same words are no dispute."""
    from hguard.review.export import _one_row_per_question

    rows = [_reviewed_row(str(i), f"answer number {i}", "correct" if i % 2 else "hallucinated") for i in range(3000)]
    # one pass takes about 4.4 s of CPU here (it judges each row), every pair over a minute: a bound of 15 s tells the
    # two apart on a loaded machine too (5 s failed a CI run at 5.02 s beside other jobs)
    with within_cpu_seconds(15):
        kept, why = _one_row_per_question(rows)
    # (3,000 answers two labels apart: no row can stand for them all, a third review: none is exported)
    assert kept == [] and len(why) == 3000 and "cannot stand in one row" in why[0][1]
    rows = [_reviewed_row("a", "Paris, Texas", "correct"), _reviewed_row("b", "Paris Texas", "hallucinated"),
            _reviewed_row("c", "Lyon", "correct"), _reviewed_row("d", "\uff2c\uff59\uff4f\uff4e.", "hallucinated")]
    kept, why = _one_row_per_question(rows)
    assert kept == [] and dict(why)["a"] == (
        "reviewers disagree on one answer to the question (no passage) of 4 items (spaces aside): 'correct' by rc on "
        "review-c and 'hallucinated' by rd on review-d, the same answer 'Lyon'; a disputed label is not calibration "
        "data, so none of them is exported")
    kept, _ = _one_row_per_question(rows[:2])
    assert [ex.id for ex in kept] == ["review-b"]  # "Paris, Texas" and "Paris Texas": two answers


def test_a_later_hallucinated_verdict_does_not_drop_the_right_answer_an_earlier_one_gave():
    """A review: "Paris" judged correct, then "Lyon" hallucinated (no correction), exported as the "Lyon" row alone
    (kind "unanswerable", no answers), so the next calibration labelled "Paris" hallucinated, the opposite of what a
    reviewer said. The row kept is the latest that names a right answer; "Lyon" is still judged hallucinated."""
    from hguard.calibrate.collect import label_row
    from hguard.review.export import _one_row_per_question

    lyon = _reviewed_row("b", "Lyon", "hallucinated", answers=[], kind="unanswerable")
    lyon.meta["answers_unknown"] = True
    kept, why = _one_row_per_question([_reviewed_row("a", "Paris", "correct"), lyon])
    assert [(ex.id, ex.answers) for ex in kept] == [("review-a", ["Paris"])]
    assert label_row(kept[0], "Paris")["label"] == "correct" and label_row(kept[0], "Lyon")["label"] == "hallucinated"
    assert why == [("b", "repeats the question (no passage) of review-a (spaces aside), exported as one row: the latest "
                         "verdict that names a right answer ('correct' by ra); its own verdict, 'hallucinated' of the "
                         "answer 'Lyon', is not in the file (the model answers the question once, and an answer other "
                         "than the row's is judged by the row's answers)")]
    # with no right answer named, the latest verdict is kept, as before
    other = _reviewed_row("c", "Nice", "hallucinated", answers=[], kind="unanswerable")
    other.meta["answers_unknown"] = True
    kept, why = _one_row_per_question([other, lyon])
    assert [ex.id for ex in kept] == ["review-b"] and "exported as one row: the latest verdict ('hallucinated'" in why[0][1]


def test_the_export_says_a_deleted_rows_verdict_comes_back_decided_with_a_guard_start(queue, audit, tmp_path):
    """A review: the export still said a guard start puts a deleted row's item back pending and `decide --supersede`
    records its verdict again; the item comes back decided, and that decide is refused."""
    queue.enqueue(make_item("a", spot_check=False))
    v = queue.decide("a", verdict="hallucinated", reviewer="alice")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items")
    why = dict(export_reviewed(queue, tmp_path / "r.jsonl").skipped)["a"]
    assert (f"a guard start on the policy puts the item back decided, with the verdict its row held ('hallucinated' by "
            f"alice, record {v.audit_record_id}), then export") in why
    assert "back pending" not in why and "--supersede" not in why
    queue.recover()  # as a guard start does; then export, as it says
    assert queue.get("a").verdict == v
    assert export_reviewed(queue, tmp_path / "r.jsonl").by_verdict["hallucinated"] == 1


@pytest.mark.parametrize("where", ["redacting", "rotated"])
def test_the_export_says_a_deleted_row_cannot_be_restored_where_no_guard_start_puts_it_back(tmp_path, where):
    """A second review: for a deleted row the export said "a guard start on the policy puts the item back decided" of
    a redacting log's decision with no copy kept, and of one in a rotated log's archive; none does (the monitor said
    so). The export asks the monitor's question (not_put_back)."""
    from hguard.review.queue import ReviewQueue

    audit = AuditLog(tmp_path / "audit.jsonl", redact=where == "redacting")
    q = ReviewQueue(tmp_path / "review.sqlite3", audit=audit)
    rec = audit.append({"request_id": "r0", "domain": "geography", "route": "review", "risk": 0.6, "signals": {},
                        "question": "Capital of Peru?", "answer": "Lima"}, kind="decision")  # fmt: skip
    q.enqueue({"audit_id": rec.id, "question": "Capital of Peru?", "answer": "Lima", "domain": "geography", "risk": 0.6})
    q.decide(rec.id, verdict="correct", reviewer="alice")
    if where == "rotated":
        audit.rotate()
    with sqlite3.connect(q.path) as conn:
        conn.execute("DELETE FROM review_items")
    why = dict(export_reviewed(q, tmp_path / "r.jsonl").skipped)[rec.id]
    assert "puts the item back" not in why and "its row cannot be restored: a guard start does not put it back" in why
    assert ("holds hashes, not text" if where == "redacting" else "in an archive of the rotated log") in why
    assert q.recover(list(audit)).put_back == []  # as a guard start reads: the newest file alone


def test_review_show_warns_of_a_verdict_relabelled_in_the_queue_or_whose_record_was_cut(queue, audit, capsys):
    """A second review: `hguard review show` printed a verdict relabelled in the queue file, and one whose record was
    cut off the log, as on record ("audit record <id>") with no warning."""
    for i in ("a", "b"):
        queue.enqueue(make_item(i, spot_check=False))
    va = queue.decide("a", verdict="hallucinated", reviewer="ann")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET verdict = 'correct' WHERE id = 'a'")  # relabelled in the queue file
    vb = queue.decide("b", verdict="hallucinated", reviewer="ann")
    lines = audit.path.read_bytes().splitlines(keepends=True)
    audit.path.write_bytes(b"".join(lines[:-1]))  # b's verdict record cut off the end
    said = {}
    for i in ("a", "b"):
        assert cli_main(["show", i, "--queue", str(queue.path), "--audit", str(audit.path)]) == 0
        said[i] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("WARNING")]
    assert said["a"] == [f"WARNING: its verdict 'correct' is not the 'hallucinated' by ann that its verdict record "
                         f"{va.audit_record_id} in {audit.path} holds: the queue file was edited after the verdict; the "
                         "monitor and the export count the audit chain's verdict on the decision, not this one"]
    assert len(said["b"]) == 1 and f"its verdict record {vb.audit_record_id} is not in the audit log" in said["b"][0]
    assert "records cut, or another log" in said["b"][0]


@pytest.mark.parametrize("through", ["queue", "log"])
def test_the_export_leaves_out_a_decision_whose_verdicts_differ_in_their_corrected_answer(queue, audit, tmp_path,
                                                                                           through):
    """A second review: alice's 'corrected' (Ankara) superseded by bob's 'corrected' (Istanbul) was exported with bob's
    answer, as no dispute (only a 'hallucinated' label against a 'correct' one was); alice's verdict kept by bob's
    record (decided without the log), or her record the queue never committed, alike."""
    from hguard.review.queue import ReviewQueue

    queue.enqueue(make_item("a", spot_check=False))
    if through == "queue":
        ReviewQueue(queue.path).decide("a", verdict="corrected", corrected_answer="Ankara", reviewer="alice")
    else:
        queue.decide("a", verdict="corrected", corrected_answer="Ankara", reviewer="alice")
        with sqlite3.connect(queue.path) as conn:  # her decide stopped between the log and the queue's commit
            conn.execute("UPDATE review_items SET status='pending', verdict=NULL, reviewer=NULL, decided_at=NULL, "
                         "corrected_answer=NULL, verdict_audit_id=NULL, verdict_audit_hash=NULL")
    queue.decide("a", verdict="corrected", corrected_answer="Istanbul", reviewer="bob", supersede=True)
    summary = export_reviewed(queue, tmp_path / "r.jsonl")
    assert summary.n_items == 0 and not summary.written
    why = dict(summary.skipped)["a"]
    assert why.startswith("reviewers disagree on it: its verdict 'corrected' (answer 'Istanbul') by bob and "
                          "'corrected' (answer 'Ankara') by alice"), why
    # the same corrected answer again is no dispute
    queue.enqueue(make_item("b", spot_check=False))
    ReviewQueue(queue.path).decide("b", verdict="corrected", corrected_answer="Ankara", reviewer="alice")
    queue.decide("b", verdict="corrected", corrected_answer="Ankara", reviewer="bob", supersede=True)
    assert "b" not in dict(export_reviewed(queue, tmp_path / "r.jsonl").skipped)


def test_export_figures_read_the_verdict_records_domain_risk_and_flag_not_the_queue_columns(queue, tmp_path):
    """A review: with the row present, the figures read its editable columns; clearing a row's spot_check said "0 of
    the 1 spot-checked accepted answers were hallucinated" where the chain holds 1 of 2, and moving its domain hid the
    verdict from its domain's export without a word."""
    queue.enqueue(make_item("acc", risk=0.53, spot_check=True))
    queue.enqueue(make_item("acc2", risk=0.1, spot_check=True))
    queue.decide("acc", verdict="hallucinated", reviewer="alice")
    queue.decide("acc2", verdict="correct", reviewer="alice")
    base = export_reviewed(queue, tmp_path / "r.jsonl")
    assert (base.n_spot_checks, base.n_spot_hallucinated, base.n_disagreements, base.n_scored) == (2, 1, 0, 2)

    def edited(sql: str, **kw):
        with sqlite3.connect(queue.path) as conn:
            conn.execute(sql)
        s = export_reviewed(queue, tmp_path / "r.jsonl", **kw)
        with sqlite3.connect(queue.path) as conn:  # back as decided
            conn.execute("UPDATE review_items SET spot_check = 1, domain = 'geography'")
            conn.execute("UPDATE review_items SET risk = 0.53 WHERE id = 'acc'")
            conn.execute("UPDATE review_items SET risk = 0.1 WHERE id = 'acc2'")
        return s, (s.n_spot_checks, s.n_spot_hallucinated, s.n_disagreements, s.n_scored)

    flag, figures = edited("UPDATE review_items SET spot_check = 0 WHERE id = 'acc'")
    assert figures == (2, 1, 0, 2), flag.summary()
    assert dict(flag.skipped)["acc"].startswith("its spot-check flag is off, not on as its verdict record ")
    assert "the figures above count the audit chain's verdict on it by the record's" in dict(flag.skipped)["acc"]
    risk, figures = edited("UPDATE review_items SET risk = 0.9 WHERE id = 'acc2'")
    assert figures == (2, 1, 0, 2), risk.summary()  # the record's 0.1 read at 0.5 agrees with 'correct'
    assert dict(risk.skipped)["acc2"].startswith("its risk 0.9 is not the 0.1 its verdict record ")
    # a row's domain moved: its verdict counts in the record's domain, and that domain's export names the row
    moved, figures = edited("UPDATE review_items SET domain = 'medicine' WHERE id = 'acc'", domain="geography")
    assert figures == (2, 1, 0, 2), moved.summary()
    assert dict(moved.skipped)["acc"].startswith("its domain 'medicine' is not the 'geography' its verdict record ")
    there, figures = edited("UPDATE review_items SET domain = 'medicine' WHERE id = 'acc'", domain="medicine")
    assert figures == (0, 0, 0, 0) and "acc" in dict(there.skipped), there.summary()
    assert export_reviewed(queue, tmp_path / "r.jsonl").skipped == []  # as decided again: nothing to name


def test_export_names_every_verdict_the_chain_holds_on_a_decision_reviewed_twice_whose_row_is_deleted(queue, tmp_path):
    """A review: a decision reviewed twice (--supersede) whose queue row was deleted was named with its last verdict
    record only."""
    queue.enqueue(make_item("acc2", risk=0.1, spot_check=True))
    first = queue.decide("acc2", verdict="correct", reviewer="alice")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET status = 'pending', verdict = NULL, reviewer = NULL, decided_at = NULL, "
                     "verdict_audit_id = NULL WHERE id = 'acc2'")
    second = queue.decide("acc2", verdict="hallucinated", reviewer="bob", supersede=True)
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items WHERE id = 'acc2'")
    s = export_reviewed(queue, tmp_path / "r.jsonl")
    assert (s.n_spot_checks, s.n_spot_hallucinated, s.n_not_in_queue) == (1, 1, 1)
    (why,) = [w for i, w in s.skipped if i == "acc2"]
    assert why.startswith(f"the audit log holds the verdict 'hallucinated' by bob (record {second.audit_record_id}) "
                          f"on its decision acc2 (the verdict the figures count; it also holds 'correct' by alice "
                          f"(record {first.audit_record_id}) on it), and the queue holds no item"), why


def test_a_hallucinated_verdict_on_an_answer_given_with_context_is_not_exported_as_unanswerable(queue, tmp_path):
    """With a passage, "no answer is right" (kind unanswerable) would say the passage does not answer the question,
    teaching that declining is the right reply where the passage may well hold the answer."""
    queue.enqueue(make_item("ragbad", risk=0.6, context="Foo is the capital of ragbad."))
    queue.enqueue(make_item("ragfixed", risk=0.6, context="Foo is the capital of ragfixed."))
    queue.decide("ragbad", verdict="hallucinated", reviewer="bob")
    queue.decide("ragfixed", verdict="corrected", reviewer="bob", corrected_answer="Foo")
    summary = export_reviewed(queue, tmp_path / "r.jsonl")
    assert [ex.id for ex in load_examples(tmp_path / "r.jsonl")] == ["review-ragfixed"]
    assert [i for i, _ in summary.skipped] == ["ragbad"] and "names no right answer" in summary.skipped[0][1]
    assert "a verdict 'corrected' with the right answer makes a row" in summary.skipped[0][1]


def test_a_passage_that_does_not_answer_makes_the_off_topic_row(queue, audit, tmp_path):
    """The main RAG failure flows back into calibration: the row says the passage does not answer the question, so
    the right reply declines and the model's answer was a hallucination."""
    from hguard.calibrate.collect import label_row

    passage = "Our offices are in Lyon and Berlin."
    queue.enqueue(make_item("offtopic", risk=0.3, context=passage, question="How long is my data kept?",
                            answer="Your data is kept for 30 days."))
    queue.decide("offtopic", verdict="not_in_context", reviewer="bob")
    (rec,) = verdict_records(audit)
    assert (rec["verdict"], rec["label"]) == ("not_in_context", "hallucinated")
    summary = export_reviewed(queue, tmp_path / "r.jsonl")
    assert summary.skipped == [] and summary.by_verdict["not_in_context"] == 1
    (row,) = load_examples(tmp_path / "r.jsonl")
    assert (row.kind, list(row.answers), row.context) == ("unanswerable", [], passage)
    assert row.meta["label"] == "hallucinated" and "answers_unknown" not in row.meta
    assert label_row(row, "Your data is kept for 30 days.")["label"] == "hallucinated"
    assert label_row(row, "The passage does not say how long data is kept.")["label"] == "refusal"


def test_a_passage_verdict_on_an_answer_given_without_one_is_refused(queue, audit):
    queue.enqueue(make_item("closed"))
    with pytest.raises(InputError, match="answered without context; choose 'hallucinated' or 'corrected'"):
        queue.decide("closed", verdict="not_in_context", reviewer="bob")
    assert queue.get("closed").status == "pending" and verdict_records(audit) == []


def test_a_version_2_queue_takes_the_new_verdict_and_keeps_its_items(tmp_path, audit):
    from hguard.review._store import _COLUMNS, _SCHEMA, _SCHEMA_VERSION

    path = tmp_path / "v2.sqlite3"
    q = guard_queue(path, audit=audit)
    q.enqueue(make_item("rag", context="Our offices are in Lyon."))
    q.enqueue(make_item("done"))
    q.decide("done", verdict="corrected", reviewer="ann", corrected_answer="Bar", note="n")
    before = {i.id: i for i in q.pending(limit=None) + q.decided(limit=None)}
    conn = sqlite3.connect(path)  # the table as version 2 wrote it: its CHECK lists three verdicts
    conn.execute("ALTER TABLE review_items RENAME TO t")
    conn.executescript(_SCHEMA.replace(", 'not_in_context'", ""))
    conn.execute(f"INSERT INTO review_items SELECT {_COLUMNS} FROM t")
    conn.execute("DROP TABLE t")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError):  # what version 2 refuses
        conn.execute("UPDATE review_items SET verdict = 'not_in_context', status = 'decided' WHERE id = 'rag'")
    conn.close()

    q = guard_queue(path, audit=audit)
    assert {i.id: i for i in q.pending(limit=None) + q.decided(limit=None)} == before
    q.decide("rag", verdict="not_in_context", reviewer="bob")
    assert q.get("rag").verdict.verdict == "not_in_context"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"review_items", "review_items_pending", "review_items_decided"} <= names and "review_items_old" not in names


def test_exported_label_overrides_the_judge_in_calibration(queue, tmp_path):
    from hguard.calibrate.collect import label_row

    _decided_queue(queue)
    export_reviewed(queue, tmp_path / "r.jsonl")
    rows = {ex.id: ex for ex in load_examples(tmp_path / "r.jsonl")}
    for ex in rows.values():
        assert label_row(ex, ex.meta["model_answer"])["label"] == ex.meta["label"]
        assert label_row(ex, "  " + ex.meta["model_answer"].upper())["label"] == ex.meta["label"]  # case, spacing aside
    # another model (or prompt) answering otherwise: the reviewer's label is not this answer's; judged afresh
    right = next(ex for ex in rows.values() if ex.meta["verdict"] == "correct")
    other = label_row(right, "solvers cathode straps")
    assert other["label"] == "hallucinated" and "the reviewer's label 'correct' was of another answer" in other["judge_reason"]
    assert label_row(right, right.answers[0])["label"] == "correct"
    # the same said in fewer words: the reviewed answer is a whole sentence, which a reworded right answer lacks
    said = label_row(right, "Foo.")
    assert said["label"] == "correct" and "says what the reviewed answer says" in said["judge_reason"], said
    assert label_row(right, "Foo is the capital of ok.")["label"] == "correct"
    assert label_row(right, "The answer is Foo.")["label"] == "correct"
    for wrong in ("Bar.", "Foo or Bar.", "The capital of ok is not Foo.", "ok."):
        assert label_row(right, wrong)["label"] == "hallucinated", wrong
    # a 'hallucinated' verdict names no right answer (kind 'unanswerable', answers unknown): the question has one, so
    # denying its premise is not right (it read as a right denial of an unanswerable question)
    bad = rows["review-bad"]
    for denial in ("There is no country called bad.", "bad does not exist."):
        j = label_row(bad, denial)
        assert j["label"] == "hallucinated" and "a reviewer said the question has an answer" in j["judge_reason"], j


def test_a_correct_verdict_on_a_denied_premise_exports_a_row_where_denying_is_right(queue, tmp_path):
    """A right refusal ("there is no country called ...") marked correct became a question with that sentence as
    its answer (kind 'qa'): another wording of the same denial was then labelled hallucinated."""
    from hguard.calibrate.collect import label_row

    queue.enqueue(make_item("zantoria", answer="I'm not aware of any country called Zantoria."))
    queue.decide("zantoria", verdict="correct", reviewer="alice")
    export_reviewed(queue, tmp_path / "r.jsonl")
    (row,) = load_examples(tmp_path / "r.jsonl")
    assert row.kind == "unanswerable" and row.answers == [] and row.meta["label"] == "correct"
    assert label_row(row, "There is no country called Zantoria.")["label"] == "correct"
    assert label_row(row, "The capital of Zantoria is Foo.")["label"] == "hallucinated"


def test_a_correct_verdict_on_a_plain_no_about_the_passage_exports_an_answer_row(queue, tmp_path):
    """A trial: "The policy does not say that data is shared with advertisers." (given with the passage, scored by the
    guard as an answer) matched the wording "policy does not say" and became an unanswerable row, under which a right
    answer was labelled hallucinated. The export reads a decline as the guard does; a real decline stays unanswerable."""
    from hguard.calibrate.collect import label_row
    from hguard.calibrate.judge import declines

    question = "Does the policy say whether my data is shared with advertisers?"
    passage = "We do not sell or share your personal information with advertisers."
    plain_no = "The policy does not say that data is shared with advertisers."
    assert declines(plain_no, question) is None  # what the guard reads: an answer, scored
    queue.enqueue(make_item("ads", question=question, context=passage, answer=plain_no))
    queue.enqueue(make_item("dunno", question="How long is my data kept?", context=passage,
                            answer="The passage does not say how long data is kept."))
    queue.decide("ads", verdict="correct", reviewer="alice")
    queue.decide("dunno", verdict="correct", reviewer="alice")
    export_reviewed(queue, tmp_path / "r.jsonl")
    rows = {ex.id: ex for ex in load_examples(tmp_path / "r.jsonl")}
    ads, dunno = rows["review-ads"], rows["review-dunno"]
    assert ads.kind == "qa" and ads.answers and ads.context == passage and ads.meta["label"] == "correct"
    assert label_row(ads, plain_no)["label"] == "correct"
    assert (dunno.kind, list(dunno.answers)) == ("unanswerable", [])  # the reply declines: declining is right there


def test_a_correct_verdict_on_a_yes_or_no_reply_exports_a_yes_no_row(queue, tmp_path):
    """A trial: "The policy does not allow children under 13 to sign up." marked correct became a row accepting that
    sentence only, so "No." was labelled hallucinated when the row was collected again. A reply to a yes/no question
    that reads as yes or no exports as the README's yes/no rows do; one that reads as neither stays as it was."""
    from hguard.calibrate.collect import label_row

    passage = "Our service is not directed to children under 13."
    queue.enqueue(make_item("kids", question="Does the policy allow children under 13 to sign up?", context=passage,
                            answer="The policy does not allow children under 13 to sign up."))
    queue.enqueue(make_item("ads", question="Does the policy say whether my data is shared with advertisers?",
                            context=passage, answer="The policy does not say that data is shared with advertisers."))
    queue.enqueue(make_item("either", question="Is the office open on Monday?",
                            answer="The answer is not yes or no: it opens on some Mondays."))
    for item_id in ("kids", "ads", "either"):
        queue.decide(item_id, verdict="correct", reviewer="alice")
    export_reviewed(queue, tmp_path / "r.jsonl")
    rows = {ex.id: ex for ex in load_examples(tmp_path / "r.jsonl")}  # the loader's yes/no rules hold
    kids, ads, either = rows["review-kids"], rows["review-ads"], rows["review-either"]
    assert (kids.kind, list(kids.answers), kids.meta.get("judge")) == ("qa", ["no"], "yesno")
    assert (ads.kind, list(ads.answers), ads.meta.get("judge")) == ("qa", ["no"], "yesno")
    for right in ("No.", "Children under 13 are not allowed to sign up.", kids.meta["model_answer"]):
        assert label_row(kids, right)["label"] == "correct", right
    assert label_row(kids, "Yes, children under 13 can sign up.")["label"] == "hallucinated"
    assert label_row(ads, "No, the policy says your data is not shared with advertisers.")["label"] == "correct"
    assert list(either.answers) == [either.meta["model_answer"]] and "judge" not in either.meta



def test_a_correct_verdict_exports_a_yes_no_row_only_for_a_plain_yes_or_no(queue, tmp_path):
    """A review: questions that only look yes/no ("Can you tell me who wrote Hamlet?", "Is it Sydney or Canberra?",
    "Does the policy say which providers ...?") exported answers ["yes"] for a correct answer, and calibration then
    labelled "Christopher Marlowe wrote Hamlet." and "Sydney." correct. Such a question, or a reply that takes no side
    plainly ("It has no side effects in children." read as no), exports the reviewed answer itself."""
    from hguard.calibrate.collect import label_row

    passage = "We share your data with analytics providers."
    cases = {
        "hamlet": ("Can you tell me who wrote Hamlet?", "William Shakespeare wrote Hamlet.", None,
                   "Christopher Marlowe wrote Hamlet."),
        "know": ("Do you know the capital of Australia?", "The capital of Australia is Canberra.", None,
                 "The capital of Australia is Sydney."),
        "which": ("Does the policy say which providers get my data?", "It shares your data with analytics providers.",
                  passage, "It shares your data with advertisers."),
        "choice": ("Is the capital of Australia Sydney or Canberra?", "Canberra.", None, "Sydney."),
        "safe": ("Is the medicine safe for children?", "It has no side effects in children.", None,
                 "No, it is not safe for children."),
    }
    for item_id, (question, answer, context, _) in cases.items():
        queue.enqueue(make_item(item_id, question=question, context=context, answer=answer))
        queue.decide(item_id, verdict="correct", reviewer="alice")
    export_reviewed(queue, tmp_path / "r.jsonl")
    rows = {ex.id: ex for ex in load_examples(tmp_path / "r.jsonl")}
    for item_id, (_, answer, _, wrong) in cases.items():
        row = rows[f"review-{item_id}"]
        assert (row.kind, list(row.answers), row.meta.get("judge")) == ("qa", [answer], None), item_id
        assert label_row(row, wrong)["label"] == "hallucinated", item_id


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_list_marks_a_spot_check_of_an_accepted_answer(queue, capsys):
    queue.enqueue(make_item("held", risk=0.5))
    queue.enqueue(make_item("spot", risk=0.05, spot_check=True))
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(x.endswith("[spot-check of an accepted answer] What is the capital of spot?") for x in lines), lines
    assert any(x.endswith("  What is the capital of held?") for x in lines), lines
    held = next(i for i, x in enumerate(lines) if x.endswith("  What is the capital of held?"))
    assert lines[held + 1].strip() == "answer: The capital of held is Foo."  # what the reviewer decides on


def test_cli_list_escapes_what_would_rewrite_the_reviewers_terminal(queue, capsys):
    """A red team's trial: a question holding "ESC[1G ESC[2K" moved the cursor and erased the item's line, so the
    reviewer read a forged "0.010 ... checked-ok" over the real risk; ESC[8m hid what followed."""
    forged = "Capital of Peru?\x1b[1G\x1b[2K 0.010 geography checked-ok\x1b[8m"
    queue.enqueue(make_item("held", question=forged, answer="Lima\u202e03\u202c\nis it"))
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "Capital of Peru?\\x1b[1G\\x1b[2K 0.010" in out and "answer: Lima\\u202e03\\u202c is it" in out


def test_cli_list_says_an_empty_queue_holds_no_items(queue, capsys):
    """A trial: `hguard review list` on a queue with no items printed nothing at all, exit 0 (read as a failure)."""
    queue.enqueue(make_item("held"))
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    assert "holds no items" not in capsys.readouterr().out
    with sqlite3.connect(queue.path) as conn:  # emptied, as an operator's clean-up leaves it
        conn.execute("DELETE FROM review_items")
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    assert f"the queue {queue.path} holds no items" in capsys.readouterr().out
    assert cli_main(["list", "--queue", str(queue.path), "--json"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "holds no items" in out.err  # stdout keeps only the JSON lines


def test_cli_show_prints_an_item_in_full_and_list_names_why_and_the_passage(queue, capsys):
    """A compliance team's trial: `review list` showed only risk, domain, id, question and answer, so a CLI reviewer
    decided a RAG item never seeing its passage or why it was held; `--domain X` printed every domain's counts."""
    passage = "Refund policy: customers may request a refund within 30 days.\nRefunds take 10 business days.\x1b[2K"
    rag = make_item("rag", context=passage, domain="policy", risk=0.99,
                    reasons=["risk 0.990 >= abstain_above 0.9 for policy: review", "grounding 0.1 < 0.5"])
    ReviewQueue(queue.path).enqueue(rag)  # its decision record with the thresholds the guard decided with
    queue.audit.append({"request_id": "rag", "route": "review", "thresholds": {"accept_below": 0.2, "abstain_above": 0.9},
                        **{k: rag[k] for k in ("question", "context", "answer", "domain", "risk", "signals", "reasons")}},
                       kind="decision")
    queue.enqueue(make_item("closed", risk=0.5))
    src = ["--queue", str(queue.path), "--audit", str(queue.audit.path)]
    assert cli_main(["list", *src, "--domain", "policy"]) == 0
    out = capsys.readouterr().out
    assert "policy: 1 pending, 0 decided" in out and "geography" not in out  # the counts follow the filter
    assert "why: risk 0.990 >= abstain_above 0.9 for policy: review (+1 more)" in out
    assert f"passage: {len(passage)} chars, see `hguard review show rag {' '.join(src)}`" in out
    assert cli_main(["list", *src]) == 0
    assert "passage: none (answered without context)" in capsys.readouterr().out
    assert cli_main(["show", "rag", *src]) == 0
    out = capsys.readouterr().out
    assert "item rag (pending)" in out and "domain: policy" in out and "risk: 0.990" in out
    assert "risk: 0.990 (accept_below 0.2, abstain_above 0.9, from its decision record)" in out
    assert "  - risk 0.990 >= abstain_above 0.9 for policy: review\n  - grounding 0.1 < 0.5\n" in out  # every reason
    assert "passage (" in out and "    Refund policy: customers may request a refund within 30 days.\n" in out
    assert "    Refunds take 10 business days.\\x1b[2K" in out and "\x1b" not in out  # in full, escapes written out
    assert "verdict: none yet (`hguard review decide rag --verdict" in out and "not_in_context" in out
    queue.decide("rag", verdict="not_in_context", reviewer="ann", note="the passage says 30")
    assert cli_main(["show", "rag", *src]) == 0
    out = capsys.readouterr().out
    assert "verdict: not_in_context by ann at " in out and "(audit record " in out and "    the passage says 30" in out
    with sqlite3.connect(queue.path) as conn:  # an edited item says that no verdict can be recorded
        conn.execute("UPDATE review_items SET answer = 'Lyon' WHERE id = 'closed'")
    assert cli_main(["show", "closed", *src]) == 0
    assert "NO VERDICT CAN BE RECORDED: review queue" in capsys.readouterr().out
    assert cli_main(["show", "nope", *src]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no item 'nope'" in err and "hguard review list" in err


def test_cli_show_escapes_every_field_and_marks_a_decided_item_edited_after_its_verdict(queue, capsys):
    """A review: `review show` printed the model fingerprint, the probe id and string signal values raw (terminal
    escapes, a direction override), and a decided item whose answer was edited after its verdict without a mark."""
    bad = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e\r\x08\u2028\x85\x00"
    queue.enqueue(make_item("a", signals={"s" + bad: "v" + bad}, model_fingerprint="m" + bad, probe_id="p" + bad))
    queue.decide("a", verdict="hallucinated", reviewer="ann", note="N" + bad)
    src = ["--queue", str(queue.path), "--audit", str(queue.audit.path)]
    assert cli_main(["show", "a", *src]) == 0
    out = capsys.readouterr().out
    raw = {c for c in out if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2028"}
    assert not raw, raw
    assert "model m\\x1b[2J" in out and "probe p\\x1b[2J" in out and "v\\x1b[2J" in out
    queue.enqueue(make_item("b"))
    queue.decide("b", verdict="correct", reviewer="ann")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'Paris' WHERE id = 'b'")
    assert cli_main(["show", "b", *src]) == 0
    out = capsys.readouterr().out
    assert "verdict: correct by ann" in out
    assert "WARNING: review queue " in out and "the answer of item 'b' differs from its decision record" in out


def test_cli_export_help_says_what_no_audit_does(capsys):
    """A compliance team's trial: export's --no-audit read "keep checking the verdicts (...) in the queue only"."""
    assert cli_main(["export", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-audit with --queue: export every verdict the queue holds, unchecked" in text
    assert "keep checking" not in text
    assert cli_main(["decide", "--help"]) == 0
    assert "keep the verdict in the queue only" in " ".join(capsys.readouterr().out.split())


def test_cli_decide_records_a_verdict_once_and_says_where(tmp_path, capsys):
    from hguard.audit import AuditLog

    q = guard_queue(tmp_path / "q.sqlite3", audit=AuditLog(tmp_path / "audit.jsonl"))
    q.enqueue(make_item("a1"))
    src = ["--queue", str(q.path), "--audit", str(tmp_path / "audit.jsonl")]
    assert cli_main(["decide", "a1", "--verdict", "hallucinated", "--reviewer", "ann", *src]) == 0
    out = capsys.readouterr().out
    item = q.get("a1")
    assert item.verdict.verdict == "hallucinated" and item.verdict.reviewer == "ann"
    assert f"a1: hallucinated by ann (audit record {item.verdict.audit_record_id}" in out
    rec = [r for r in AuditLog(tmp_path / "audit.jsonl") if r["kind"] == "review_verdict"]
    assert len(rec) == 1 and rec[0]["reviewer"] == "ann"
    assert cli_main(["decide", "a1", "--verdict", "correct", "--reviewer", "bob", *src]) == 2  # once only
    assert "a1" in capsys.readouterr().err
    q.enqueue(make_item("a2"))
    assert cli_main(["decide", "a2", "--verdict", "corrected", "--reviewer", "ann", *src]) == 2  # needs the answer
    assert "needs --corrected-answer TEXT" in capsys.readouterr().err and q.get("a2").verdict is None
    assert cli_main(["decide", "nope", "--verdict", "correct", "--reviewer", "ann", *src]) == 2
    assert "nope" in capsys.readouterr().err
    # a bare queue file names no log: the verdict is not kept out of the audit chain by accident
    q.enqueue(make_item("a3"))
    bare = ["--queue", str(q.path)]
    assert cli_main(["decide", "a3", "--verdict", "correct", "--reviewer", "ann", *bare]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names no audit log" in err and "--no-audit" in err and q.get("a3").verdict is None
    assert cli_main(["decide", "a3", "--verdict", "correct", "--reviewer", "ann", *bare, "--no-audit"]) == 0
    assert "--no-audit: kept in the queue only" in capsys.readouterr().out and q.get("a3").verdict.audit_record_id is None
    assert cli_main(["decide", "a2", "--verdict", "correct", "--reviewer", "ann", "--no-audit"]) == 2  # not with a policy
    assert "--no-audit goes with --queue" in capsys.readouterr().err


def test_cli_decide_whose_audit_append_raises_a_raw_os_error_says_not_recorded_in_one_line(tmp_path, capsys,
                                                                                             monkeypatch):  # fmt: skip
    """A verdict's append raising an OSError (a disk error surfacing raw, not as an AuditError) went through
    `hguard review decide` as a traceback: the queue turned only an HGuardError into its "not recorded". Now whatever
    the append raised: one line, exit 2, the item still pending."""
    from hguard.audit import AuditLog

    q = guard_queue(tmp_path / "q.sqlite3", audit=AuditLog(tmp_path / "audit.jsonl"))
    q.enqueue(make_item("a1"))
    real = AuditLog.append

    def append(self, record, *, kind="decision"):
        if kind == "review_verdict":
            raise OSError(errno.EIO, "Input/output error")
        return real(self, record, kind=kind)

    monkeypatch.setattr(AuditLog, "append", append)
    src = ["--queue", str(q.path), "--audit", str(tmp_path / "audit.jsonl")]
    assert cli_main(["decide", "a1", "--verdict", "hallucinated", "--reviewer", "ann", *src]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the verdict on item 'a1' was not recorded because the audit log" in err
    assert "could not be written (OSError: [Errno 5] Input/output error); the item is still pending, fix the audit " \
           "log and decide again" in err
    assert q.get("a1").status == "pending" and not verdict_records(AuditLog(tmp_path / "audit.jsonl"))


def test_cli_list_and_export(queue, tmp_path, capsys):
    _decided_queue(queue)
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    out = capsys.readouterr().out
    assert "geography: 1 pending, 3 decided" in out and "waiting" in out
    assert "spot-check" not in out
    assert cli_main(["list", "--queue", str(queue.path), "--decided", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["id"] for x in lines] == ["ok", "bad", "fixed", "unscored", "nodomain"]  # oldest verdict first
    assert cli_main(["list", "--queue", str(queue.path), "--decided", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "unscored" in out and "nodomain" in out and "fixed" not in out
    # a pending item edited in the queue file is marked, as the page marks it (it listed the edited answer plainly)
    audit = ["--audit", str(queue.audit.path)]
    assert cli_main(["list", "--queue", str(queue.path), *audit]) == 0
    assert "NO VERDICT CAN BE RECORDED" not in capsys.readouterr().out
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'Accra' WHERE id = 'waiting'")
    assert cli_main(["list", "--queue", str(queue.path), *audit]) == 0
    out = capsys.readouterr().out
    assert "answer: Accra\n" in out and "NO VERDICT CAN BE RECORDED: review queue" in out
    assert "the answer of item 'waiting' differs from its decision record" in out
    assert cli_main(["list", "--queue", str(queue.path), *audit, "--json"]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert "the answer of item 'waiting' differs" in line["unlike_its_decision"]
    # a mistyped policy path was taken for a queue file ("no review queue at policy.tom")
    (tmp_path / "policy.tom").write_text("version = 1\n")
    assert cli_main(["list", "--policy", str(tmp_path / "policy.tom")]) == 2
    assert "policy file" in capsys.readouterr().err
    # a mistyped --domain listed nothing with exit 0, as if the domain had no items
    assert cli_main(["list", "--queue", str(queue.path), "--domain", "Geography"]) == 2
    assert "--domain 'Geography': the queue has no items of that domain; did you mean 'geography'?" in capsys.readouterr().err
    assert cli_main(["list", "--queue", str(queue.path), "--domain", "finance"]) == 0
    assert "no items of domain 'finance' in this queue (its domains: geography, medicine)" in capsys.readouterr().err
    out_file = tmp_path / "cli.jsonl"
    assert cli_main(["export", "--queue", str(queue.path), "--out", str(out_file), "--domain", "geography"]) == 2
    assert "names no audit log" in capsys.readouterr().err  # the verdicts are checked against the log, or not on purpose
    assert cli_main(["export", "--queue", str(queue.path), *audit, "--out", str(out_file), "--domain", "geography"]) == 0
    assert "wrote 3 reviewed rows" in capsys.readouterr().out
    assert len(load_examples(out_file)) == 3
    # a verdict the chain does not hold, or an item edited after its verdict, is no calibration data
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'Au.' WHERE id = 'ok'")
        conn.execute("UPDATE review_items SET status = 'decided', verdict = 'correct', reviewer = 'forger', "
                     "decided_at = '2026-01-01', verdict_audit_id = NULL WHERE id = 'waiting'")
    assert cli_main(["export", "--queue", str(queue.path), *audit, "--out", str(out_file), "--domain", "geography"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 reviewed rows" in out and "skipped ok: its question, context or answer differ" in out
    assert "skipped waiting: its verdict has no review_verdict record in the audit log" in out
    with sqlite3.connect(queue.path) as conn:  # a decided item moved to another domain would calibrate that one
        conn.execute("UPDATE review_items SET domain = 'chemistry' WHERE id = 'bad'")
    assert cli_main(["export", "--queue", str(queue.path), *audit, "--out", str(out_file)]) == 0
    assert "skipped bad: its domain 'chemistry' is not the 'geography' its verdict record" in capsys.readouterr().out
    with sqlite3.connect(queue.path) as conn:  # a lower risk or a spot-check flag would mislabel the row
        conn.execute("UPDATE review_items SET risk = 0.05 WHERE id = 'fixed'")
        conn.execute("UPDATE review_items SET spot_check = 1 WHERE id = 'unscored'")
    assert cli_main(["export", "--queue", str(queue.path), *audit, "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "skipped fixed: its risk 0.05 is not the 0.9 its verdict record" in out
    assert "skipped unscored: its spot-check flag is on, not off as its verdict record" in out
    assert cli_main(["export", "--queue", str(queue.path), "--no-audit", "--out", str(out_file), "--domain", "geography"]) == 0
    assert "wrote 3 reviewed rows" in capsys.readouterr().out  # unchecked, on purpose ('bad' is chemistry's now)


def test_cli_without_policy_or_queue_reads_the_default_policys_queue(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))  # the default policy keeps its queue under ~/.local/state/hguard
    monkeypatch.delenv("HGUARD_STATE_DIR", raising=False)  # (else under $HGUARD_STATE_DIR)
    state = tmp_path / ".local" / "state" / "hguard"
    assert cli_main(["list"]) == 2  # its folder does not exist yet: named, nothing created
    err = capsys.readouterr().err
    assert str(state) in err and not state.exists()
    assert "under the default policy yet" in err and "_data" not in err  # no advice to edit the installed package
    state.mkdir(parents=True)
    _decided_queue(ReviewQueue(state / "review.sqlite3"))
    assert cli_main(["list"]) == 0
    assert "geography: 1 pending, 3 decided" in capsys.readouterr().out


def test_cli_refuses_a_queue_file_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "typo.sqlite3"
    assert cli_main(["list", "--queue", str(missing)]) == 2
    assert f"no review queue at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_recover_puts_back_what_the_log_holds_for_review_and_the_queue_lacks(tmp_path):
    """A process stopped between the decision's audit record and the queue: the answer is put back."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    q = ReviewQueue(tmp_path / "q.sqlite3", audit=audit)
    held = audit.append({"question": "Q1?", "answer": "A1.", "context": "C.", "domain": "geography", "route": "review",
                         "risk": 0.5, "signals": {"h": 0.5}, "reasons": ["risk between"], "probe_id": "p"})  # fmt: skip
    accepted = audit.append({"question": "Q2?", "answer": "A2.", "domain": "geography", "route": "accept", "risk": 0.1})
    audit.append({"decision_audit_id": accepted.id, "domain": "geography", "selected_because": "u 0.01 < rate 0.02"},
                 kind="spot_check")
    audit.append({"question": "Q3?", "answer": "A3.", "route": "abstain"})  # not for review
    guard_queue(q.path, audit=audit).enqueue(make_item("already"))  # queued as usual: left alone
    assert q.recover() == ([held.id, accepted.id], [], [], {}, {}, {})
    back, spot = q.get(held.id), q.get(accepted.id)
    assert (back.question, back.answer, back.context, back.risk, back.spot_check) == ("Q1?", "A1.", "C.", 0.5, False)
    assert spot.spot_check and spot.reasons[0] == "spot-check of an accepted answer: u 0.01 < rate 0.02"
    assert q.recover() == ([], [], [], {}, {}, {})  # once
    q.decide(held.id, verdict="correct", reviewer="ann")  # what is put back is what the model answered
    redacting = AuditLog(tmp_path / "r.jsonl", redact=True)
    hidden = redacting.append({"question": "Q?", "answer": "A.", "route": "review"})
    assert ReviewQueue(tmp_path / "r.sqlite3", audit=redacting).recover() == ([], [], [hidden.id], {}, {}, {})



def test_a_record_the_queue_refuses_is_named_and_the_others_are_put_back(tmp_path):
    """A platform developer's trial: a decision recorded with an int domain (a router of one's own, in an older
    release) made recover() raise at the first item, so no other missing item was put back at any guard start."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    q = ReviewQueue(tmp_path / "q.sqlite3", audit=audit)
    bad = audit.append({"question": "Q1?", "answer": "A1.", "domain": 3, "route": "review"})
    good = audit.append({"question": "Q2?", "answer": "A2.", "domain": "geography", "route": "review"})
    done = q.recover()
    assert done.put_back == [good.id] and done.refused == {bad.id: "domain must be a str, got int: 3"}
    assert q.get(good.id) is not None and q.get(bad.id) is None

def test_an_item_whose_decision_the_chain_holds_a_verdict_on_is_put_back_decided_with_it(queue, audit):
    """A compliance team's trial: queue rows lost, a guard start put the items back pending although the chain held
    their verdicts; deciding again was refused ("already holds a verdict") and --supersede wrote a second record."""
    for i in ("a", "b", "c"):
        queue.enqueue(make_item(i, spot_check=False))
    va = queue.decide("a", verdict="corrected", reviewer="alice", corrected_answer="Bar", note="atlas")
    queue.decide("b", verdict="hallucinated", reviewer="alice")
    # b's verdict contradicted later (a copied row decided again): it stays hallucinated, as the monitor counts it
    audit.append({**{k: v for k, v in verdict_records(audit)[-1].items() if k not in ("id", "hash", "prev_hash", "seq",
                  "kind", "time", "mac", "key_id")}, "verdict": "correct", "label": "correct", "reviewer": "bob"},
                 kind="review_verdict")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items")
    done = queue.recover()
    assert sorted(done.from_records) == ["a", "b", "c"] and sorted(done.decided) == ["a", "b"]
    a, b, c = (queue.get(i) for i in ("a", "b", "c"))
    assert a.verdict == va  # as decide() stored it: verdict, reviewer, time, corrected answer, note, its record
    assert (b.verdict.verdict, b.verdict.reviewer) == ("hallucinated", "alice")  # the chain's verdict, as it counts
    assert c.status == "pending"
    with pytest.raises(AlreadyDecided):  # on record: no second verdict record
        queue.decide("a", verdict="correct", reviewer="carol", supersede=True)
    assert len(verdict_records(audit)) == 3
    summary = export_reviewed(queue, audit.path.parent / "rows.jsonl")  # the export reads it as the queue's verdict
    assert "a" not in dict(summary.skipped), summary.skipped


def test_a_lost_row_whose_verdict_superseded_another_is_put_back_with_the_verdict_the_queue_committed(queue, audit):
    """A review's trial: alice's verdict was logged but never committed, bob's recorded over it with --supersede was
    the queue's; the row deleted, the put-back restored alice's (the one the chain counts), and the export then wrote
    a disputed decision as a 'hallucinated' row."""
    queue.enqueue(make_item("a", spot_check=False))
    queue.decide("a", verdict="hallucinated", reviewer="alice")
    with sqlite3.connect(queue.path) as conn:  # alice's process stopped between the log and the queue's commit
        conn.execute("UPDATE review_items SET status = 'pending', verdict = NULL, reviewer = NULL, decided_at = NULL, "
                     "verdict_audit_id = NULL, verdict_audit_hash = NULL")
    bob = queue.decide("a", verdict="correct", reviewer="bob", supersede=True)
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items")
    done = queue.recover()
    assert list(done.decided) == ["a"] and done.decided["a"]["id"] == bob.audit_record_id and not done.held_pending
    assert queue.get("a").verdict == bob  # as the queue held it
    summary = export_reviewed(queue, audit.path.parent / "rows.jsonl")  # still disputed: not exported
    assert summary.n_items == 0 and "reviewers disagree" in dict(summary.skipped)["a"]


def test_a_lost_row_whose_decision_holds_a_verdict_only_on_a_copied_row_is_put_back_pending_naming_it(queue, audit):
    """A review's trial: the chain's only verdict on a decision was recorded on a copied row; the put-back said "all
    pending (the audit chain holds no verdict on them)", and deciding the item was then refused."""
    queue.enqueue(make_item("a", spot_check=False))
    with sqlite3.connect(queue.path) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(review_items)")]
        conn.execute(f"INSERT INTO review_items ({', '.join(cols)}) SELECT "
                     f"{', '.join(chr(39) + 'copy' + chr(39) if c == 'id' else c for c in cols)} FROM review_items")
    on_copy = queue.decide("copy", verdict="hallucinated", reviewer="alice")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("DELETE FROM review_items")
    done = queue.recover()
    assert done.from_records == ["a"] and not done.decided and queue.get("a").status == "pending"
    assert [r["id"] for r in done.held_pending["a"]] == [on_copy.audit_record_id]
    with pytest.raises(VerdictRefused, match="--supersede"):
        queue.decide("a", verdict="hallucinated", reviewer="bob")
    assert queue.decide("a", verdict="hallucinated", reviewer="bob", supersede=True).verdict == "hallucinated"


def test_a_verdict_whose_record_was_cut_off_the_log_is_not_taken_for_a_no_audit_verdict(queue, audit):
    """A review: an item decided with the log whose verdict record was then cut off the log's end was read as decided
    without the log ("in the queue only"), and deciding it again re-recorded it silently."""
    queue.enqueue(make_item("a", spot_check=False))
    v = queue.decide("a", verdict="hallucinated", reviewer="alice")
    lines = audit.path.read_bytes().splitlines(keepends=True)
    audit.path.write_bytes(b"".join(lines[:-1]))  # the verdict record cut off the end
    again = ReviewQueue(queue.path, audit=AuditLog(audit.path))
    for verdict in ("hallucinated", "correct"):
        for sup in (False, True):
            with pytest.raises(VerdictRefused, match=f"its record {v.audit_record_id} is not in {audit.path}.*records "
                                                     "cut off the log's end.*hguard audit verify"):
                again.decide("a", verdict=verdict, reviewer="bob", supersede=sup)
    assert verdict_records(AuditLog(audit.path)) == [] and again.get("a").verdict == v


def test_a_verdict_logged_but_never_committed_is_not_silently_outvoted(queue, audit, capsys):
    """A decide that died after its audit record and before its commit leaves the item pending: a second
    verdict must name the first, not quietly count instead of it."""
    queue.enqueue(make_item("a"))
    real = ReviewQueue._append_verdict

    def dies_after_logging(self, *a, **k):
        real(self, *a, **k)
        raise KeyboardInterrupt("killed before the commit")

    ReviewQueue._append_verdict = dies_after_logging
    try:
        with pytest.raises(KeyboardInterrupt):
            queue.decide("a", verdict="hallucinated", reviewer="sre")
    finally:
        ReviewQueue._append_verdict = real
    (orphan,) = verdict_records(audit)
    assert queue.get("a").status == "pending"
    summary = export_reviewed(queue, audit.path.parent / "rows.jsonl")  # not silently left out of the export
    assert summary.skipped == [("a", f"the audit log holds a verdict on it ({orphan['id']}) that the queue never committed: "
                                     "`hguard review decide a --verdict V --reviewer NAME --policy FILE --supersede` "
                                     "records it again, then export")]
    # `hguard review export` names the decide command with the queue and log it was given (a legal team's trial)
    assert cli_main(["export", "--queue", str(queue.path), "--audit", str(audit.path), "--out",
                     str(audit.path.parent / "rows.jsonl")]) == 0
    assert (f"`hguard review decide a --verdict V --reviewer NAME --queue {queue.path} --audit {audit.path} --supersede`"
            in capsys.readouterr().out)
    with pytest.raises(ReviewQueueError, match=r"already holds a verdict on the decision item 'a' judges "
                                               r"\(hallucinated by sre at .*--supersede"):
        queue.decide("a", verdict="correct", reviewer="sre2")
    src = ["--queue", str(queue.path), "--audit", str(audit.path)]
    assert cli_main(["decide", "a", "--verdict", "correct", "--reviewer", "sre2", *src]) == 2
    assert "does not show as this item's" in capsys.readouterr().err
    assert cli_main(["decide", "a", "--verdict", "correct", "--reviewer", "sre2", "--supersede", *src]) == 0
    first, second = verdict_records(audit)
    assert first["id"] == orphan["id"] and second["supersedes"] == [orphan["id"]]
    assert queue.get("a").verdict.audit_record_id == second["id"]  # the committed one is the queue's
    # a 'correct' over a reviewer's 'hallucinated': the monitor counts the decision as hallucinated, and the export
    # (which wrote it as a 'correct' row) leaves it out, saying why
    summary = export_reviewed(queue, audit.path.parent / "rows.jsonl")
    assert summary.skipped and summary.skipped[0][0] == "a", summary.skipped
    assert summary.skipped[0][1].startswith("reviewers disagree on it: its verdict 'correct' by sre2 and sre's "
                                            "'hallucinated'"), summary.skipped


def test_absent_names_the_ids_the_queue_lacks_in_chunks(queue):
    queue.enqueue(make_item("kept"))
    ids = ["kept"] + [f"gone-{i}" for i in range(1200)] + ["kept"]  # more than one chunk, a repeat
    assert queue.absent(ids) == {f"gone-{i}" for i in range(1200)}
    assert queue.absent([]) == set()


def test_an_existing_queue_that_cannot_be_written_is_named_as_such(tmp_path, monkeypatch):
    """A read-only queue file was reported as "could not create the queue file" (the file exists)."""
    path = tmp_path / "q.sqlite3"
    ReviewQueue(path)  # created
    real_open = os.open

    def refused(p, flags, *a, **k):
        if str(p).endswith(".sqlite3"):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, flags, *a, **k)

    monkeypatch.setattr("hguard.review.queue.os.open", refused)
    with pytest.raises(ReviewQueueError, match=r"could not open the queue file for writing \(check its permissions\)"):
        ReviewQueue(path)
    with pytest.raises(ReviewQueueError, match="could not create the queue file"):  # a new one: created, as before
        ReviewQueue(tmp_path / "new.sqlite3")


@pytest.mark.parametrize("keyed", [False, True])
def test_a_verdict_on_a_decision_record_edited_after_it_was_written_is_refused(tmp_path, keyed):
    """New-user trial: a decision record whose thresholds were edited failed verify, and `review decide` still signed
    a verdict on it without a word (export, rotate and the monitor refuse that log)."""
    from hguard.review.queue import VerdictRefused

    audit = AuditLog(tmp_path / "audit.jsonl", key=b"k" * 64 if keyed else None)
    q = guard_queue(tmp_path / "review.sqlite3", audit=audit)
    q.enqueue(make_item("a1"))
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["thresholds"] = {"accept_below": 0.9}  # forged: the route it "would" have had
    if keyed:  # a forger without the key recomputes the hash, not the MAC
        from hguard.audit import record_hash

        rec["hash"] = record_hash(rec)
    lines[0] = json.dumps(rec, separators=(",", ":"), sort_keys=True)
    (tmp_path / "audit.jsonl").write_text("\n".join(lines) + "\n")
    item_id = q.pending()[0].id
    why = "its MAC does not match" if keyed else "its hash does not match its content"
    assert why in (q.verdict_refusal(item_id) or "")  # the page says so before the reviewer starts
    with pytest.raises(VerdictRefused, match=f"fails its own check: {why}"):
        q.decide(item_id, verdict="hallucinated", reviewer="eve")
    assert verdict_records(audit) == [] and q.pending()[0].status == "pending"


def test_a_verdict_record_naming_no_decision_does_not_stop_the_export(queue, audit):
    """An upgrade trial: one review_verdict line without decision_audit_id, appended by anyone who can write to an
    unkeyed log, made `hguard review export` stop with a KeyError."""
    queue.enqueue(make_item("a"))
    queue.decide("a", verdict="correct", reviewer="sre")
    audit.append({"label": "correct", "verdict": "correct", "reviewer": "mallory", "item_id": "x"}, kind="review_verdict")
    summary = export_reviewed(queue, audit.path.parent / "rows.jsonl")
    assert summary.n_items == 1 and not summary.skipped, summary


def test_answers_kept_beside_the_queue_survive_a_concurrent_rewrite_a_cut_line_and_an_unreadable_file(tmp_path):
    """The copies a redacting guard keeps beside a locked queue (hguard.review._pending), as a reviewer's trial broke
    them: a start's rewrite dropped a copy another process appended meanwhile; a line cut short by a crash swallowed
    the next copy (appended onto it) and stayed on disk for ever; bytes that do not decode, or a directory in the
    file's place, stopped every guard start."""
    import warnings

    from hguard.review import _pending

    q = ReviewQueue(tmp_path / "q.sqlite3")
    path = q.pending_path
    a, b, c = (make_item(x) for x in ("a", "b", "c"))
    q.keep_pending(a)
    q.enqueue(a)  # put back: its copy is dropped ...

    def queued_then_b_appends(ids):  # ... while another process appends b, between the read and the rewrite
        q.keep_pending(b)
        return set(ids) - q.absent(ids)

    _pending.drop(path, queued_then_b_appends)
    assert list(_pending.read(path)) == ["b"]
    with open(path, "ab") as f:  # a crash cut the next copy short
        f.write(b'{"audit_id":"c","quest')
    q.keep_pending(c)
    assert sorted(_pending.read(path)) == ["b", "c"]  # c on a line of its own
    q.enqueue(b)
    q.enqueue(c)
    q.forget_pending()
    assert not path.exists()  # the cut line, unreadable, went with the rest
    path.write_bytes(b'{"audit_id":"d","question":"caf\xc3')  # cut inside a character
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert _pending.read(path) == {}
    path.unlink()
    path.mkdir()  # a directory in its place
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert _pending.read(path) == {}
    assert any("could not read the answers kept beside the review queue" in str(w.message) for w in said)
    with pytest.raises(OSError):
        q.keep_pending(make_item("e"))  # the guard says it could keep no copy
    path.rmdir()
    # a crash while the rewrite is written (here: the rename never happens) leaves every copy as it was (truncated in
    # place, the file lost the copies not yet queued: a reviewer's trial); a queue that refuses to say what it holds
    # leaves the file as it is, with a warning, instead of raising out of a guard's start
    q.keep_pending(make_item("g"))
    q.keep_pending(make_item("h"))
    q.enqueue(make_item("g"))
    real_replace = _pending.os.replace

    def crash(*a, **k):
        raise OSError("killed before the rename")

    _pending.os.replace = crash
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            q.forget_pending()
    finally:
        _pending.os.replace = real_replace
    assert sorted(_pending.read(path)) == ["g", "h"] and any("could not drop" in str(w.message) for w in said)

    def refused(ids):
        raise ReviewQueueError("review queue: another process held the queue for more than 10 s")

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _pending.drop(path, refused)
    assert sorted(_pending.read(path)) == ["g", "h"] and any("could not drop" in str(w.message) for w in said)
    q.forget_pending()
    assert list(_pending.read(path)) == ["h"] and not list(tmp_path.glob("*.tmp"))
    path.unlink()
    link = tmp_path / "elsewhere.jsonl"
    link.write_text("")
    path.symlink_to(link)
    with pytest.raises(OSError):  # never written through a link
        q.keep_pending(make_item("f"))
    assert link.read_text() == ""


# ------------------------------------------------------------------------------------------------- archive
# An SRE's soak trial: the queue gained a row (about 2 KB) for every answer held for review, for the life of the
# deployment, and nothing retired decided items (a row deleted by hand came back at the next guard start).


def _archive_queue(queue):
    _decided_queue(queue)
    queue.enqueue(make_item("noted", risk=0.6))
    queue.decide("noted", verdict="hallucinated", reviewer="dan", note="the capital moved in 1990")
    return queue


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_archive_moves_decided_items_whole_and_leaves_the_pending(queue, audit, tmp_path):
    import stat

    _archive_queue(queue)
    before = {it.id: it for it in queue.decided()}
    out = tmp_path / "archive-2025.jsonl"
    summary = queue.archive("2100-01-01", out)
    assert summary.n_archived == 6 and summary.path == str(out) and summary.held == []
    assert f"archived 6 decided item(s) (decided before 2100-01-01T00:00:00+00:00) to {out}" in summary.summary()
    # the audit chain says where the decided items went (an auditor's question: the queue's rows are gone)
    import hashlib

    [record] = [r for r in audit if r["kind"] == "review_archive"]
    assert record["archive"] == str(out) and record["n_items"] == 6 and record["finished_interrupted"] is False
    assert record["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and record["queue"] == str(queue.path)
    assert record["decided_before"] == "2100-01-01T00:00:00+00:00" and summary.audit_records == [record["id"]]
    assert f"recorded in the audit log: {record['id']} (review_archive)" in summary.summary()
    assert summary.size_after <= summary.size_before and summary.vacuumed
    assert queue.decided() == [] and [it.id for it in queue.pending()] == ["waiting"]  # open items are never archived
    assert stat.S_IMODE(out.stat().st_mode) & 0o007 == 0  # questions and answers: not world-readable
    rows = {r["id"]: r for r in _rows(out)}
    assert set(rows) == set(before)
    noted = rows["noted"]  # every column the queue held, the verdict and the note too
    assert (noted["verdict"], noted["reviewer"], noted["note"], noted["status"]) == (
        "hallucinated", "dan", "the capital moved in 1990", "decided")
    assert rows["fixed"]["corrected_answer"] == "Baz" and rows["ok"]["context"] == "Foo is the capital of ok."
    assert noted["verdict_audit_id"] == before["noted"].verdict.audit_record_id and noted["signals"] == {
        "h_neuron": 0.42, "entropy": 1.25}
    assert {it.id: it for it in queue.archived_items()} == before  # read back as they were
    kept = queue.archived()
    assert set(kept) == set(before) and kept["noted"].verdict_audit_id == before["noted"].verdict.audit_record_id
    assert queue.absent(list(before) + ["waiting", "never"]) == {"never"}  # a guard start puts none back
    assert set(before) <= queue.queued_ids()
    with pytest.raises(ReviewQueueError, match=f"item 'ok' was decided and archived to {out}"):
        queue.enqueue(make_item("ok"))
    with pytest.raises(ItemNotFound, match=f"item 'ok' was decided and archived to {out} .*kept whole, its verdict"):
        queue.decide("ok", verdict="correct", reviewer="zed")
    queue.decide("waiting", verdict="correct", reviewer="erin")  # the live queue goes on as before
    second = queue.archive("2100-01-01")  # default: beside the queue
    assert second.n_archived == 1 and second.path.startswith(str(queue.path) + ".archive-")
    assert len(queue.archived_items()) == 7 and queue.counts() == {}
    assert queue.archive("2100-01-01").path is None  # nothing left: no file written
    assert len(list(tmp_path.glob("*.archive-*.jsonl"))) == 1


def test_archive_takes_only_items_decided_before_the_date(queue, tmp_path):
    queue.enqueue(make_item("old"))
    queue.enqueue(make_item("new"))
    queue.decide("old", verdict="correct", reviewer="ann")
    queue.decide("new", verdict="correct", reviewer="ann")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET decided_at = '2025-01-10T08:00:00.000000+00:00' WHERE id = 'old'")
        conn.execute("UPDATE review_items SET decided_at = '2025-02-10T08:00:00.000000+00:00' WHERE id = 'new'")
    assert queue.archive("2025-01-10T09:00+01:00", tmp_path / "a.jsonl").n_archived == 0  # 08:00 UTC is not before
    assert queue.archive("2025-02-01", tmp_path / "b.jsonl").n_archived == 1
    assert [it.id for it in queue.decided()] == ["new"] and set(queue.archived()) == {"old"}


def test_archive_keeps_in_the_queue_a_verdict_the_audit_chain_does_not_hold(tmp_path, audit):
    """A verdict decided without the audit log is the queue's only: the monitor names it, to be put on record, from
    the live queue; archived, nobody would."""
    queue = guard_queue(tmp_path / "review.sqlite3", audit=audit)
    queue.enqueue(make_item("logged"))
    queue.enqueue(make_item("unlogged"))
    queue.decide("logged", verdict="correct", reviewer="ann")
    ReviewQueue(queue.path).decide("unlogged", verdict="correct", reviewer="bob")  # --no-audit
    summary = queue.archive("2100-01-01", tmp_path / "a.jsonl")
    assert summary.n_archived == 1 and set(queue.archived()) == {"logged"}
    ((held, why),) = summary.held
    assert held == "unlogged" and "no review_verdict record in the audit log" in why
    assert "unlogged: its verdict has no review_verdict record" in summary.summary()
    assert [it.id for it in queue.decided()] == ["unlogged"]
    # without an audit log (--no-audit), every decided item is archived, unchecked
    assert ReviewQueue(queue.path).archive("2100-01-01", tmp_path / "b.jsonl").n_archived == 1


@pytest.mark.parametrize("value", ["2026-13-01", "last week", ""])
def test_archive_refuses_a_date_that_does_not_parse_in_one_line(queue, tmp_path, capsys, value):
    _archive_queue(queue)
    with pytest.raises(InputError, match=f"decided_before \\(--decided-before\\) {value!r} is not a date; pass an ISO "
                                         "date or time, e.g. 2026-12-01"):
        queue.archive(value, tmp_path / "a.jsonl")
    rc = cli_main(["archive", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--decided-before", value])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"{value!r} is not a date" in err
    assert len(queue.decided()) == 6 and queue.archived() == {} and not list(tmp_path.glob("*.jsonl.*"))


def test_archive_refuses_an_out_file_that_exists_in_one_line(queue, tmp_path, capsys):
    _archive_queue(queue)
    out = tmp_path / "taken.jsonl"
    out.write_text("mine\n")
    with pytest.raises(InputError, match=f"out \\(--out\\) {out} already exists; an archive is written to a new file "
                                         "only .*pass a new name"):
        queue.archive("2100-01-01", out)
    rc = cli_main(["archive", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--decided-before",
                   "2100-01-01", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"{out} already exists" in err
    assert out.read_text() == "mine\n" and len(queue.decided()) == 6 and queue.archived() == {}
    with pytest.raises(InputError, match="is the review queue"):
        queue.archive("2100-01-01", queue.path)
    with pytest.raises(InputError, match="does not exist; create it first"):
        queue.archive("2100-01-01", tmp_path / "nope" / "a.jsonl")
    rc = cli_main(["archive", "--queue", str(queue.path), "--decided-before", "2100-01-01"])  # which log, unsaid
    assert rc == 2 and "names no audit log" in capsys.readouterr().err


@pytest.mark.parametrize("own", ["-wal", "-shm", ".pending.jsonl", ".archive.lock"])
def test_archive_refuses_the_queues_own_files_as_out(queue, tmp_path, capsys, own):
    """A review: ``--out QUEUE-wal`` (or -shm) was taken, reported archived, and sqlite removed the file when the queue
    closed; ``--out QUEUE.pending.jsonl`` was emptied by the next guard start: the items were lost either way."""
    _archive_queue(queue)
    out = queue.path.with_name(queue.path.name + own)
    out.unlink(missing_ok=True)
    with pytest.raises(InputError, match=f"is the review queue's own {own} file.*the archive would be lost"):
        queue.archive("2100-01-01", out)
    rc = cli_main(["archive", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--decided-before",
                   "2100-01-01", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"own {own} file" in err
    assert len(queue.decided()) == 6 and queue.archived() == {}


def test_archive_writes_to_the_home_folder_a_tilde_names(queue, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _archive_queue(queue)
    done = queue.archive("2100-01-01", "~/archived.jsonl")
    assert done.n_archived and (tmp_path / "archived.jsonl").is_file() and not Path("~").exists()


def test_the_cli_archives_and_lists_and_exports_the_archived(queue, tmp_path, capsys):
    _archive_queue(queue)
    exported = tmp_path / "before.jsonl"
    assert cli_main(["export", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--out", str(exported)]) == 0
    capsys.readouterr()
    out = tmp_path / "a.jsonl"
    assert cli_main(["archive", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--decided-before",
                     "2100-01-01", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "archived 6 decided item(s)" in said and f"to {out}" in said and "went from" in said
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    listed = capsys.readouterr().out
    assert "geography: 1 pending, 0 decided" in listed and "archived: 6 decided item(s) in archive files" in listed
    after = tmp_path / "after.jsonl"
    assert cli_main(["export", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--out", str(after)]) == 0
    assert "6 of the decided items read from the queue's archive files" in capsys.readouterr().out
    assert after.read_text() == exported.read_text()
    live = tmp_path / "live.jsonl"
    assert cli_main(["export", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--out", str(live),
                     "--skip-archived"]) == 0
    assert "6 archived item(s) not read (--skip-archived)" in capsys.readouterr().out and not live.exists()


def test_export_reads_the_archived_items_as_it_read_them_in_the_queue(queue, tmp_path):
    _archive_queue(queue)
    before = export_reviewed(queue, tmp_path / "before.jsonl")
    queue.archive("2100-01-01", tmp_path / "a.jsonl")
    after = export_reviewed(queue, tmp_path / "after.jsonl")
    assert (tmp_path / "after.jsonl").read_text() == (tmp_path / "before.jsonl").read_text()
    assert (after.n_items, after.by_verdict, after.skipped, after.n_disagreements, after.n_scored) == (
        before.n_items, before.by_verdict, before.skipped, before.n_disagreements, before.n_scored)
    assert after.n_archived == 6 and after.n_not_in_queue == 0  # not "the queue holds no item of that decision"
    geo = export_reviewed(queue, tmp_path / "geo.jsonl", domain="geography")
    assert geo.n_items == export_reviewed(queue, tmp_path / "g2.jsonl", domain="geography", archived=False).n_items + geo.n_items
    live = export_reviewed(queue, tmp_path / "live.jsonl", archived=False)
    assert live.n_items == 0 and live.n_archived_left_out == 6 and live.skipped == [] and live.n_scored == before.n_scored


def test_export_refuses_an_archive_file_missing_or_changed(queue, tmp_path):
    _archive_queue(queue)
    out = tmp_path / "a.jsonl"
    queue.archive("2100-01-01", out)
    text = out.read_text(encoding="utf-8")
    out.write_text(text.replace('"verdict":"hallucinated"', '"verdict":"correct"'), encoding="utf-8")
    with pytest.raises(ReviewQueueError, match=f"review queue archive {out} changed since it was written"):
        export_reviewed(queue, tmp_path / "r.jsonl")
    out.unlink()
    with pytest.raises(ReviewQueueError, match=f"review queue archive {out} cannot be read .*export with --skip-archived"):
        export_reviewed(queue, tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()
    out.write_text(text, encoding="utf-8")  # put back: read again
    assert export_reviewed(queue, tmp_path / "r.jsonl").n_archived == 6


_KILLED = """
import os, sys
from hguard.audit import AuditLog
from hguard.review import _archive
from hguard.review.queue import ReviewQueue
if sys.argv[4] == "after-the-file":  # killed between writing the archive and removing the rows
    _archive._complete = lambda *a, **k: os._exit(137)
else:  # killed while writing it, before it has its name
    os.link = lambda *a, **k: os._exit(137)
ReviewQueue(sys.argv[1], audit=AuditLog(sys.argv[2])).archive("2100-01-01", sys.argv[3])
"""


@pytest.mark.parametrize("when", ["after-the-file", "before-its-name"])
def test_an_archive_killed_midway_loses_nothing_and_holds_nothing_twice_when_run_again(queue, tmp_path, when):
    import subprocess
    import sys

    _archive_queue(queue)
    decided = {it.id: it for it in queue.decided()}
    export_reviewed(queue, tmp_path / "before.jsonl")
    out = tmp_path / "a.jsonl"
    done = subprocess.run([sys.executable, "-c", _KILLED, str(queue.path), str(queue.audit.path), str(out), when],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 137, done.stderr
    assert out.exists() == (when == "after-the-file")
    assert {it.id: it for it in queue.decided()} == decided and queue.archived() == {}  # every row still there
    assert queue.absent(decided) == set()  # a guard start meanwhile puts nothing back
    export_reviewed(queue, tmp_path / "meanwhile.jsonl")
    assert (tmp_path / "meanwhile.jsonl").read_text() == (tmp_path / "before.jsonl").read_text()
    summary = queue.archive("2100-01-01", out)  # the same command again
    if when == "after-the-file":
        assert summary.finished == [(str(out), 6)] and summary.n_archived == 0 and summary.path is None
        assert "finished an archive an earlier run left half done: 6 item(s)" in summary.summary()
        assert [(r["archive"], r["n_items"], r["finished_interrupted"]) for r in queue.audit
                if r["kind"] == "review_archive"] == [(str(out), 6, True)]  # recorded by the run that finished it
    else:
        assert summary.dropped == [str(out)] and summary.n_archived == 6
    assert len(_rows(out)) == 6 and not list(tmp_path.glob("*.partial"))
    assert queue.decided() == [] and {it.id: it for it in queue.archived_items()} == decided
    export_reviewed(queue, tmp_path / "after.jsonl")
    assert (tmp_path / "after.jsonl").read_text() == (tmp_path / "before.jsonl").read_text()
    assert queue.archive("2100-01-01").path is None  # nothing left to archive, nothing finished twice


def test_an_archive_whose_audit_record_cannot_be_written_is_done_and_says_so(queue, tmp_path, monkeypatch):
    """The archive is committed before its review_archive record is written: a log that refuses the record (a full
    disk) leaves the archive done, the summary saying the record is missing and where the archive is entered."""
    _archive_queue(queue)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(queue.audit, "append", full_disk)
    out = tmp_path / "a.jsonl"
    summary = queue.archive("2100-01-01", out)
    assert summary.n_archived == 6 and queue.decided() == [] and summary.audit_records == []
    assert summary.audit_failed == [
        f"6 item(s) were archived to {out}, but its review_archive record could not be written to the audit log "
        f"{queue.audit.path} (OSError: [Errno 28] No space left on device); the queue's review_archives table holds "
        "the archive with its sha256"]
    assert "hguard review: warning: 6 item(s) were archived" in summary.summary()


def test_an_archive_stopped_before_its_audit_record_is_recorded_late_by_the_next_run(queue, tmp_path, monkeypatch):
    """A review: a Ctrl-C after the archive was committed, while its review_archive record was being written, left the
    archive done and never recorded (the next run finished only archives not done), and an archive made by an hguard
    that wrote no such record was never recorded either. The next run writes each missing record, once, marked late."""
    from hguard.review import _archive

    _archive_queue(queue)
    real = _archive.append_written

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_archive, "append_written", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        queue.archive("2100-01-01", tmp_path / "a1.jsonl")
    monkeypatch.setattr(_archive, "append_written", real)
    queue.enqueue(make_item("older"))
    queue.decide("older", verdict="correct", reviewer="ann")
    monkeypatch.setattr(_archive, "_record", lambda *args, **kwargs: None)  # an hguard that wrote no record
    queue.archive("2100-01-01", tmp_path / "a2.jsonl")
    monkeypatch.undo()
    queue.enqueue(make_item("new"))
    queue.decide("new", verdict="correct", reviewer="ann")
    summary = queue.archive("2100-01-01", tmp_path / "a3.jsonl")

    def records():
        return [(Path(r["archive"]).name, r["n_items"], r["finished_interrupted"], r["recorded_late"])
                for r in queue.audit if r["kind"] == "review_archive"]

    assert records() == [("a1.jsonl", 6, None, True), ("a2.jsonl", 1, None, True), ("a3.jsonl", 1, False, False)]
    assert [p for _, p in summary.recorded_late] == [str(tmp_path / "a1.jsonl"), str(tmp_path / "a2.jsonl")]
    assert f"recorded late: {summary.recorded_late[0][0]} of {tmp_path / 'a1.jsonl'} (done earlier" in summary.summary()
    queue.archive("2100-01-01")  # nothing to archive, nothing recorded twice
    assert len(records()) == 3


def test_an_archive_stopped_by_a_ctrl_c_once_its_file_is_written_is_finished_by_the_next_run(queue, tmp_path,
                                                                                             monkeypatch):
    """A Ctrl-C after the archive file got its name, before the queue marked its items archived: the run was
    forgotten (its entry removed, the file left), and a rerun wrote the same items to a second file. The archive stays
    entered: the next run finishes it from the file, as it does a killed run's, and writes no second file."""
    _archive_queue(queue)
    decided = {it.id: it for it in queue.decided()}
    real_link = os.link

    def link_then_ctrl_c(*args, **kwargs):
        real_link(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", link_then_ctrl_c)
    out = tmp_path / "a.jsonl"
    with pytest.raises(KeyboardInterrupt):
        queue.archive("2100-01-01", out)
    monkeypatch.setattr(os, "link", real_link)
    assert len(_rows(out)) == 6 and {it.id: it for it in queue.decided()} == decided  # every row still there
    summary = queue.archive("2100-01-01")  # run again, a new file name by default
    assert summary.finished == [(str(out), 6)] and summary.n_archived == 0 and summary.path is None
    assert list(tmp_path.glob("*.archive-*.jsonl")) == [] and not list(tmp_path.glob("*.partial"))
    assert queue.decided() == [] and {it.id: it for it in queue.archived_items()} == decided


def test_an_archive_on_a_filesystem_that_cannot_fsync_a_folder_is_written(queue, tmp_path, monkeypatch):
    """The archive's folder was fsync'ed by hand: a filesystem refusing a directory fsync (EINVAL), which the audit
    log's writes let be, failed the archive. The one helper lets it be; a folder fsync that fails for another reason is
    a ReviewQueueError naming the archive, and the next run finishes that archive."""
    import errno
    import stat

    _archive_queue(queue)
    real_fsync = os.fsync
    refusal = [errno.EINVAL]

    def no_folder_fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(refusal[0], os.strerror(refusal[0]))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", no_folder_fsync)
    assert queue.archive("2100-01-01", tmp_path / "a.jsonl").n_archived == 6
    queue.enqueue(make_item("late"))
    queue.decide("late", verdict="correct", reviewer="erin")
    refusal[0] = errno.EIO
    with pytest.raises(ReviewQueueError, match=r"cannot fsync directory .* to make the review queue archive b\.jsonl "
                                               r"durable: \[Errno 5\]"):
        queue.archive("2100-01-01", tmp_path / "b.jsonl")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert queue.archive("2100-01-01").finished == [(str(tmp_path / "b.jsonl"), 1)]
    assert len(queue.archived_items()) == 7


def test_an_export_skipping_the_archived_counts_a_domains_archived_items_without_the_audit_log(tmp_path):
    """`hguard review export --skip-archived --domain D` without the audit log said 0 archived items left out: the
    queue kept no domain of an archived item, and only the log's verdict records said it. The queue keeps it now; an
    item archived by a queue that kept none (schema 4) is said as of unknown domain, not counted as another's."""
    q = ReviewQueue(tmp_path / "q.sqlite3")  # no audit log
    for i, domain in enumerate(["geography", "geography", "history", None]):
        q.enqueue(make_item(f"i{i}", domain=domain))
        q.decide(f"i{i}", verdict="correct", reviewer="alice")
    assert q.archive("2100-01-01", tmp_path / "a.jsonl").n_archived == 4
    assert {a.id: (a.domain, a.domain_kept) for a in q.archived().values()} == {
        "i0": ("geography", True), "i1": ("geography", True), "i2": ("history", True), "i3": (None, True)}
    geo = export_reviewed(q, tmp_path / "geo.jsonl", domain="geography", archived=False)
    assert (geo.n_archived_left_out, geo.n_archived_domain_unknown) == (2, 0)
    assert "2 archived item(s) not read (--skip-archived)" in geo.summary()
    assert export_reviewed(q, tmp_path / "all.jsonl", archived=False).n_archived_left_out == 4
    # a queue of schema 4, whose archived items have no domain kept: opened by this hguard, their domain is unknown
    with sqlite3.connect(q.path) as conn:
        conn.execute("ALTER TABLE review_archived DROP COLUMN domain_kept")
        conn.execute("ALTER TABLE review_archived DROP COLUMN domain")
        conn.execute("PRAGMA user_version = 4")
    old = ReviewQueue(tmp_path / "q.sqlite3")
    assert {a.domain_kept for a in old.archived().values()} == {False}
    geo = export_reviewed(old, tmp_path / "geo.jsonl", domain="geography", archived=False)
    assert (geo.n_archived_left_out, geo.n_archived_domain_unknown) == (0, 4)
    assert ("4 archived item(s) of unknown domain not read (--skip-archived; archived by an older hguard" in geo.summary()
            and "the count of its archived items is unknown" in geo.summary())
    assert len(old.archived_items()) == 4  # read from the file as before


def test_the_cli_takes_a_domain_whose_items_are_all_archived(tmp_path, capsys):
    """`hguard review export --domain D` (and `list`) checked D against the queue's live items only: with all of D's
    items archived, a name near a live domain was refused ("no items of that domain; did you mean ...") and nothing
    exported, another one said "no items of domain D" before exporting them. The queue keeps its archived items'
    domains: D is known, its archived items are exported (or, with --skip-archived, counted as left out)."""
    q = guard_queue(tmp_path / "review.sqlite3", audit=AuditLog(tmp_path / "audit.jsonl"))
    for i, domain in enumerate(["legal-eu", "legal-eu", "legal-us", "legal-us"]):
        q.enqueue(make_item(f"i{i}", domain=domain))
        q.decide(f"i{i}", verdict="correct", reviewer="alice")
    with sqlite3.connect(q.path) as conn:
        conn.execute("UPDATE review_items SET decided_at = '2100-01-01T00:00:00+00:00' WHERE domain = 'legal-us'")
    assert q.archive("2099-01-01", tmp_path / "a.jsonl").n_archived == 2
    args = ["--queue", str(q.path), "--audit", str(tmp_path / "audit.jsonl"), "--domain", "legal-eu"]
    assert cli_main(["export", *args, "--out", str(tmp_path / "x.jsonl")]) == 0
    out, err = capsys.readouterr()
    assert "wrote 2 reviewed rows" in out and "no items" not in err and "did you mean" not in err
    assert len(load_examples(tmp_path / "x.jsonl")) == 2
    assert cli_main(["export", *args, "--out", str(tmp_path / "y.jsonl"), "--skip-archived"]) == 0
    out, err = capsys.readouterr()
    assert "2 archived item(s) not read (--skip-archived)" in out and "no items" not in err
    assert cli_main(["list", *args, "--decided"]) == 0
    assert "did you mean" not in capsys.readouterr().err
    # a mistyped domain is still refused, naming an archived domain as much as a live one
    assert cli_main(["export", *args[:-1], "Legal-EU", "--out", str(tmp_path / "z.jsonl")]) == 2
    assert "did you mean 'legal-eu'?" in capsys.readouterr().err
    # a queue of schema 4 kept no domain of its archived items: a name not found is said, with them, never refused
    with sqlite3.connect(q.path) as conn:
        conn.execute("ALTER TABLE review_archived DROP COLUMN domain_kept")
        conn.execute("ALTER TABLE review_archived DROP COLUMN domain")
        conn.execute("PRAGMA user_version = 4")
    assert cli_main(["export", *args, "--out", str(tmp_path / "x.jsonl")]) == 0
    out, err = capsys.readouterr()
    assert "wrote 2 reviewed rows" in out
    assert ("no items of domain 'legal-eu' in this queue (its domains: legal-us), unless among its 2 item(s) archived "
            "by an earlier hguard, which kept no domain in the queue; did you mean 'legal-us'?") in err


def test_a_recorded_risk_that_is_no_number_is_never_the_same_risk():
    """A queue item's risk of true was "the same" as its decision record's 1.0 (True is an int), and one of 10**400
    raised OverflowError in the monitor's and the export's comparison; neither is a risk now, so neither matches."""
    from hguard.review.queue import same_risk, same_value

    assert same_risk(0.25, 0.25 + 1e-12) and same_risk(None, None) and not same_risk(None, 0.25)
    assert not same_risk(True, 1.0) and not same_risk(1.0, True)
    assert not same_risk(10**400, 1.0) and not same_risk(10**400, 10**400)
    assert same_value({"n": 10**400}, {"n": 10**400}) and not same_value({"n": 10**400}, {"n": 1.0})


def test_verdicts_one_row_cannot_reproduce_are_not_merged_into_it():
    """A third review: "Frank Herbert" judged correct, then "Frank Herbert, with his son Brian Herbert" hallucinated
    (no correction): the "Frank Herbert" row was kept, and the next calibration judged that very hallucinated answer
    correct by it. A row is exported for a question only where it gives each reviewer's answer the reviewer's label."""
    from hguard.review.export import _one_row_per_question

    right = _reviewed_row("a", "Frank Herbert", "correct")
    wrong = _reviewed_row("b", "Frank Herbert, with his son Brian Herbert", "hallucinated", answers=[], kind="unanswerable")
    wrong.meta["answers_unknown"] = True
    kept, why = _one_row_per_question([right, wrong])
    assert kept == [] and [item for item, _ in why] == ["a", "b"], why
    assert ("review-a's row would judge the answer 'Frank Herbert, with his son Brian Herbert' of review-b correct, "
            "which 'hallucinated' by rb labelled hallucinated; so none of them is exported") in why[0][1], why
    # a later wrong answer the row does judge wrong is merged as before
    lyon = _reviewed_row("c", "Lyon", "hallucinated", answers=[], kind="unanswerable")
    lyon.meta["answers_unknown"] = True
    kept, why = _one_row_per_question([_reviewed_row("p", "Paris", "correct"), lyon])
    assert [ex.id for ex in kept] == ["review-p"] and why[0][0] == "c", why


def test_cli_list_and_show_mark_an_evaluations_items(tmp_path, capsys):
    """A trial: `hguard review list` and `show` did not tell an evaluation's held answer (given to Guard.check with
    served=False: no user waits on it) from a live one (a user waits). Each is marked, in the JSON forms too, by the
    monitor's own test of a decision; `list --evaluation exclude|only` leaves them out or lists them alone; without the
    audit log it cannot be told: said, and the filter refused."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    queue = ReviewQueue(tmp_path / "q.sqlite3", audit=audit)
    ids = {}
    for name, given in (("live", None), ("served", {"served": True}), ("eval", {"served": False}),
                        ("odd", {"served": "false"})):  # a served that is not literally false is live traffic
        item = make_item(name)
        rec = {k: item[k] for k in ("question", "context", "answer", "domain", "risk", "signals", "reasons")}
        if given is not None:
            rec.update(answer_source="given", given_answer={"tokens": 1, "own_tokens": 0, **given})
        ids[name] = audit.append({"route": "review", **rec}, kind="decision").id
        queue.enqueue({**item, "audit_id": ids[name]})
    src = ["--queue", str(queue.path), "--audit", str(audit.path)]
    assert cli_main(["list", *src, "--json"]) == 0
    marked = {x["audit_id"]: x["for_evaluation"] for x in map(json.loads, capsys.readouterr().out.splitlines())}
    assert marked == {ids["live"]: False, ids["served"]: False, ids["eval"]: True, ids["odd"]: False}
    assert cli_main(["list", *src]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if "[evaluation: served to no user]" in x]
    assert ids["eval"] in line and out.count("[evaluation") == 1
    for choice, expected in (("exclude", {"live", "served", "odd"}), ("only", {"eval"})):
        assert cli_main(["list", *src, "--evaluation", choice, "--json"]) == 0
        listed_ids = {json.loads(x)["audit_id"] for x in capsys.readouterr().out.splitlines()}
        assert listed_ids == {ids[n] for n in expected}
    # the filter comes before --limit: the one evaluation item is listed though three live items rank above it
    assert cli_main(["list", *src, "--evaluation", "only", "--limit", "1", "--json"]) == 0
    assert [json.loads(x)["audit_id"] for x in capsys.readouterr().out.splitlines()] == [ids["eval"]]
    assert cli_main(["show", ids["eval"], *src]) == 0
    out = capsys.readouterr().out
    assert "[evaluation: served to no user]" in out.splitlines()[0]
    assert "evaluation: yes, an answer given to Guard.check with served=False" in out
    assert cli_main(["show", ids["odd"], *src]) == 0
    assert "evaluation: no, live traffic" in capsys.readouterr().out
    # without the audit log: not told, said; the filter refused in one line naming the fix
    assert cli_main(["show", ids["eval"], "--queue", str(queue.path)]) == 0
    assert "evaluation: cannot be told without the audit log (give --policy FILE or --audit LOG)" in capsys.readouterr().out
    assert cli_main(["list", "--queue", str(queue.path), "--json"]) == 0
    assert {json.loads(x)["for_evaluation"] for x in capsys.readouterr().out.splitlines()} == {None}
    assert cli_main(["list", "--queue", str(queue.path), "--evaluation", "exclude"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--evaluation exclude needs the audit log" in err and "--audit LOG" in err


def test_cli_list_evaluation_is_refused_when_the_audit_log_is_not_there(tmp_path, capsys):
    """A bad-input trial: `review list --evaluation only` with a policy (or --audit LOG) whose log does not exist listed
    nothing, exit 0 (`--json`: empty output), and `exclude` listed every item as live: which items are an evaluation's
    is in the log alone. Refused in one line naming the missing log, before anything is printed."""
    queue = ReviewQueue(tmp_path / "review.sqlite3")
    queue.enqueue(make_item("held"))
    (tmp_path / "policy.toml").write_text('version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = '
                                          '"review.sqlite3"\n[domains.geography]\n')
    for src in (["--policy", str(tmp_path / "policy.toml")],
                ["--queue", str(queue.path), "--audit", str(tmp_path / "audit.jsonl")]):
        for choice in ("only", "exclude"):
            for json_flag in ([], ["--json"]):
                assert cli_main(["list", *src, "--evaluation", choice, *json_flag]) == 2
                out = capsys.readouterr()
                assert out.out == "" and out.err.count("\n") == 1
                assert (f"--evaluation {choice} needs the audit log holding the guard's decisions" in out.err
                        and f"there is none at {tmp_path / 'audit.jsonl'}" in out.err)
    assert cli_main(["list", "--policy", str(tmp_path / "policy.toml")]) == 0  # without the filter: listed, unmarked
    assert "What is the capital of held?" in capsys.readouterr().out


def _queue_of_given_answers(tmp_path, eval2_domain: str):
    """A queue (and its audit log) of five held answers: one generated ("live", geography), two an evaluation's
    ("eval1" in geography, "eval2" in ``eval2_domain``, decided), one generated and one served ("law1", "law2" in law)."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    queue = ReviewQueue(tmp_path / "q.sqlite3", audit=audit)
    for name, domain, served in (("live", "geography", None), ("eval1", "geography", False),
                                 ("eval2", eval2_domain, False), ("law1", "law", None), ("law2", "law", True)):
        item = make_item(name, domain=domain)
        rec = {k: item[k] for k in ("question", "context", "answer", "domain", "risk", "signals", "reasons")}
        if served is not None:
            rec.update(answer_source="given", given_answer={"tokens": 1, "own_tokens": 0, "served": served})
        queue.enqueue({**item, "audit_id": audit.append({"route": "review", **rec}, kind="decision").id})
    ids = {it.question: it.id for it in queue.pending(limit=None)}
    queue.decide(ids[make_item("eval2")["question"]], verdict="correct", reviewer="r")
    return audit, queue


def test_cli_list_evaluation_says_how_many_items_the_filter_leaves(tmp_path, capsys):
    """An ops trial: `review list --evaluation only` printed the per-domain lines of the whole queue above the 2 items
    it listed, and nothing said how many the filter left. A line says it ("1 of 4 pending: an evaluation's items only")
    and that the counts above are unfiltered, in --json's stderr too; --decided alike."""
    audit, queue = _queue_of_given_answers(tmp_path, "law")
    src = ["--queue", str(queue.path), "--audit", str(audit.path)]
    said = "(the counts above are unfiltered)"
    assert cli_main(["list", *src, "--evaluation", "only"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"1 of 4 pending: an evaluation's items only {said}" in out
    assert out.index(f"1 of 4 pending: an evaluation's items only {said}") > out.index(
        "law: 2 pending, 1 decided; of them an evaluation's, served to no user: 0 pending, 1 decided")
    assert cli_main(["list", *src, "--evaluation", "exclude", "--limit", "1", "--json"]) == 0
    got = capsys.readouterr()
    assert f"3 of 4 pending: an evaluation's items left out {said}; the first 1 listed" in got.err.splitlines()
    assert len(got.out.splitlines()) == 1
    assert cli_main(["list", *src, "--evaluation", "only", "--decided", "--domain", "law"]) == 0
    assert f"1 of 1 decided in law: an evaluation's items only {said}" in capsys.readouterr().out.splitlines()
    assert cli_main(["list", *src]) == 0
    assert "unfiltered" not in capsys.readouterr().out


def test_cli_list_counts_an_evaluations_items_apart_per_domain(tmp_path, capsys):
    """A trial: `hguard review list` printed "geography: 3 pending, 1 decided" with an evaluation's items (no user
    waits on them) among them, so the counts read as a live backlog three long. Each domain's counts say how many of
    them are an evaluation's (by the same test as the marks); a domain without any, and a queue without the audit log
    (where it cannot be told), print as before."""
    audit, queue = _queue_of_given_answers(tmp_path, "geography")
    src = ["--queue", str(queue.path), "--audit", str(audit.path)]
    assert cli_main(["list", *src]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "geography: 2 pending, 1 decided; of them an evaluation's, served to no user: 1 pending, 1 decided" in out
    assert "law: 2 pending, 0 decided" in out  # a served given answer is live
    assert cli_main(["list", *src, "--json", "--domain", "geography"]) == 0
    said = capsys.readouterr()
    assert said.err.splitlines()[0] == ("geography: 2 pending, 1 decided; of them an evaluation's, served to no user: "
                                        "1 pending, 1 decided")
    assert cli_main(["list", "--queue", str(queue.path)]) == 0
    assert {"geography: 2 pending, 1 decided", "law: 2 pending, 0 decided"} <= set(capsys.readouterr().out.splitlines())
    assert queue.evaluation_counts() == {"geography": {"pending": 1, "decided": 1}}
    assert ReviewQueue(queue.path).evaluation_counts() is None


def test_cli_a_policys_queue_path_that_is_a_folder_is_refused_in_one_line(tmp_path, capsys):
    """A review of the bad-input fixes: a `[review] queue` path that exists as a folder was read as no queue yet, and
    `review list` said "nothing has been held", exit 0 (with held answers, refused as "no review queue"). Refused in
    one line naming the path, its setting and a file inside it; nothing is created."""
    (tmp_path / "runs" / "review.sqlite3").mkdir(parents=True)
    (tmp_path / "policy.toml").write_text('version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = '
                                          '"runs/review.sqlite3"\n[domains.geography]\n')
    policy = str(tmp_path / "policy.toml")
    for argv in (["list"], ["list", "--json"], ["list", "--evaluation", "exclude"], ["show", "some-item"]):
        assert cli_main([*argv, "--policy", policy]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1, out
        assert (f"review queue path {tmp_path / 'runs' / 'review.sqlite3'} (review.queue in {policy}) is a folder; "
                "name the queue file" in out.err) and "no review queue" not in out.err
    assert list((tmp_path / "runs" / "review.sqlite3").iterdir()) == [] and not (tmp_path / "audit.jsonl").exists()


def test_cli_list_evaluation_on_an_empty_or_absent_queue_lists_as_without_it(tmp_path, capsys):
    """A review of the bad-input fixes: `review list --evaluation only|exclude` was refused (exit 2) on a queue with no
    item, or where none exists yet (a fresh deployment, the default policy after `make demo`), where nothing can be
    listed wrongly; the refusal is for items whose log is missing. Listed as without the filter, exit 0."""
    (tmp_path / "policy.toml").write_text('version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = '
                                          '"review.sqlite3"\n[domains.geography]\n')
    policy = str(tmp_path / "policy.toml")
    for made in (False, True):  # no queue yet; then the queue a guard or `review serve` creates, empty
        if made:
            ReviewQueue(tmp_path / "review.sqlite3")
        for json_flag in ([], ["--json"]):
            assert cli_main(["list", "--policy", policy, *json_flag]) == 0
            plain = capsys.readouterr()
            for choice in ("only", "exclude"):
                assert cli_main(["list", "--policy", policy, "--evaluation", choice, *json_flag]) == 0
                out = capsys.readouterr()
                assert out.out == plain.out and out.err.startswith(plain.err) and "error" not in out.err
                assert ("no review queue at" if not made else "holds no items") in (out.err if json_flag else out.out)
    assert not (tmp_path / "audit.jsonl").exists()
    ReviewQueue(tmp_path / "review.sqlite3").enqueue(make_item("held"))  # an item, and no log: refused, as before
    assert cli_main(["list", "--policy", policy, "--evaluation", "only"]) == 2
    assert "--evaluation only needs the audit log" in capsys.readouterr().err


def test_cli_hints_carry_the_options_given_and_run_as_printed(tmp_path, monkeypatch, capsys):
    """A legal team's trial: `hguard review show ID --policy P` ended with "`hguard review decide ID --verdict ...
    --reviewer NAME`" without --policy P; pasted, it ran on the default policy's queue (exit 2). Every hint `list` and
    `show` print names the policy or queue and log they were given, and runs as printed (placeholders filled)."""
    import re
    import shlex

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my policy").mkdir()
    policy = tmp_path / "my policy" / "policy.toml"  # a folder with a space: each option quoted
    policy.write_text('version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = "review.sqlite3"\n'
                      '[domains.geography]\n')
    audit = AuditLog(tmp_path / "my policy" / "audit.jsonl")
    queue = guard_queue(tmp_path / "my policy" / "review.sqlite3", audit=audit)
    for name in ("a", "b"):
        queue.enqueue(make_item(name, context="The capital of a is Foo."))

    def hint(out: str, command: str, item: str) -> list[str]:
        (found,) = re.findall(rf"`(hguard {command} {item} [^`]+)`", out)
        argv = shlex.split(found.replace("correct|hallucinated|corrected|not_in_context", "correct")
                           .replace("NAME", "ann"))
        assert argv[:3] == ["hguard", *command.split()]
        return argv[2:]

    for src, item in ((["--policy", str(policy)], "a"),
                      (["--queue", str(queue.path), "--audit", str(audit.path)], "b")):
        assert cli_main(["list", *src]) == 0
        show = hint(capsys.readouterr().out, "review show", item)
        assert show == ["show", item, *src]
        assert cli_main(show) == 0
        decide = hint(capsys.readouterr().out, "review decide", item)
        assert decide == ["decide", item, "--verdict", "correct", "--reviewer", "ann", *src]
        assert cli_main(decide) == 0, capsys.readouterr().err
        assert f"hguard review: {item}: correct by ann (audit record " in capsys.readouterr().out
    # a queue named with no log: the decide hint leaves LOG to fill in (decide refuses to guess it)
    queue.enqueue(make_item("c"))
    assert cli_main(["show", "c", "--queue", str(queue.path)]) == 0
    assert f"--reviewer NAME --queue {shlex.quote(str(queue.path))} --audit LOG`" in capsys.readouterr().out
    assert [v["item_id"] for v in verdict_records(audit)] == ["a", "b"]
    # `archive` names the monitor, which says what to do with an item it keeps, with the policy it was given
    from hguard.cli.monitor import build_parser as monitor_parser

    with sqlite3.connect(queue.path) as conn:  # edited after its verdict: kept in the queue
        conn.execute("UPDATE review_items SET answer = 'Lyon' WHERE id = 'a'")
    assert cli_main(["archive", "--policy", str(policy), "--decided-before", "2100-01-01"]) == 0
    (monitor,) = re.findall(r"`(hguard monitor [^`]+)`", capsys.readouterr().out)
    assert shlex.split(monitor)[2:] == ["--policy", str(policy)]
    assert monitor_parser().parse_args(shlex.split(monitor)[2:]).policy == str(policy)
