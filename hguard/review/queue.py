"""The human review queue: answers the guard routed to ``review``, kept in SQLite until a person decides.

Storage. One SQLite file (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``: readers (the web page)
never block the guard's writes, and a verdict whose call returned survives a power cut. Every call opens its
own connection, so one :class:`ReviewQueue` object can be shared by threads and processes; a writer waits up
to ``busy_timeout`` seconds for another one and then fails loudly. The file is created with mode 0640, since
questions and answers can be private.

Enqueueing is part of the guard's decision: :meth:`ReviewQueue.enqueue` raises :class:`ReviewQueueError`
(naming the queue file and the cause) on any failure, including a malformed item, and never drops an item
silently. An item's id is the id of the decision's audit record (``audit_id``).

Verdicts. :meth:`ReviewQueue.decide` is a compare-and-set: ``UPDATE ... WHERE id = ? AND status = 'pending'``
inside a ``BEGIN IMMEDIATE`` transaction. Of two reviewers deciding the same item at once exactly one wins;
the other gets :class:`AlreadyDecided` naming who decided and when, and nothing is overwritten.

Ordering with the audit log. When the queue has an :class:`~hguard.audit.AuditLog`, each verdict is also
appended to it (kind ``"review_verdict"``). The order is: take the write lock and compare-and-set, append the
audit record (fsync'ed), then commit. If the append fails the transaction is rolled back and the item stays
pending, so **no verdict exists in the queue without its audit record**. The opposite can happen: the
process dies (or the commit fails) after the audit record was written; the item then stays pending and a
later verdict appends a second record. The item row stores the id and hash of the audit record that belongs
to its committed verdict (``Verdict.audit_record_id``, ``Verdict.audit_hash``), so a ``review_verdict``
record that no item points to is one whose verdict was never committed.

A ``review_verdict`` record holds ``item_id``, ``decision_audit_id`` (the guard's decision record),
``domain``, ``risk``, ``verdict``, ``label`` (``correct`` or ``hallucinated``), ``reviewer``,
``corrected_answer``, ``note``, ``decided_at`` and ``reviewed_sha256`` (the SHA-256 of the question, context
and answer the reviewer was shown). A verdict is logged only beside its decision: with a log, ``decide`` first
finds the item's decision record there and refuses when it is missing or its question, context or answer
differ from the item's (the queue file was changed after the guard wrote it). With a redacting log (``AuditLog(..., redact=True)``)
the log's ``review_verdict`` record stores the corrected answer and the note as ``{"sha256": ...}`` like its own
redacted fields, because either can repeat the private answer; the queue itself keeps them in clear, as it keeps
the question and the answer the reviewer reads.

Retiring decided items. The queue keeps every item it is given for the life of the deployment; :meth:`ReviewQueue.archive`
(``hguard review archive``) moves the items decided before a date, whole, to a JSONL archive file and keeps of each
only its ids and its file, so that a guard start does not put it back (:meth:`ReviewQueue.absent`), the monitor counts
it and the export reads it back (:meth:`ReviewQueue.archived_items`). See ``_archive``.

Items and verdicts (:class:`ReviewItem`, :class:`Verdict`, the errors) and the validation of an item are in
``_items``; their public names are importable from here. The SQLite schema, its migration and the row mapping are
in ``_store``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .._numerics import finite_number, is_real
from .._policy_route import SPOT_CHECK_REASON
from .._privacy import FILE_MODE, redacted
from .._text import hidden_characters_in, same_words
from .._audit_files import AppendedRecords
from .._audit_records import CONTINUATION
from ..audit import AuditLog, append_written, sink_failed_after
from ..errors import HGuardError, InputError, ReviewQueueError, error_text, warn_aside
from . import _archive, _pending
from ._archive import ArchivedItem, ArchiveSummary
from ._store import _COLUMNS, _item, migrate
from ._items import (
    _MAX_REVIEWER,
    _MAX_TEXT,
    ITEM_FIELDS,
    NO_DOMAIN,
    VERDICTS,
    AlreadyDecided,
    AuditLogUnavailable,
    ItemNotFound,
    ReviewItem,
    Verdict,
    VerdictRefused,
    VerdictName,
    _NoDomain,
    _normalise_item,
    _now,
    _show,
    verdict_label,
)

__all__ = [
    "ITEM_FIELDS",
    "ArchiveSummary",
    "ArchivedItem",
    "NO_DOMAIN",
    "VERDICTS",
    "AlreadyDecided",
    "AuditLogUnavailable",
    "ItemNotFound",
    "Recovered",
    "ReviewItem",
    "ReviewQueue",
    "Verdict",
    "VerdictRefused",
]
DEFAULT_BUSY_TIMEOUT_S = 10.0  # also the policy's [review] busy_timeout default
MAX_BUSY_TIMEOUT_S = 3600.0  # also the policy's [review] busy_timeout bound
DEFAULT_LIMIT = 500
SHOWN = ("question", "context", "answer")  # what a reviewer judges, as the decision record holds it


def shown_sha256(question: Any, context: Any, answer: Any) -> dict[str, str | None]:
    """The SHA-256 of what a reviewer is shown, as a redacting log writes each of these fields."""
    return {k: (redacted(v) or {}).get("sha256") for k, v in zip(SHOWN, (question, context, answer))}


class ItemRefused(ReviewQueueError):
    """The queue refuses an item for what it holds (``why``: the field and its value), not for a failure of its own."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class Recovered(NamedTuple):
    """What :meth:`ReviewQueue.recover` did, by the source each item was put back from."""

    from_records: list[str]  # rebuilt from their decision records (a log that holds the text)
    from_pending: list[str]  # taken from the copies kept beside the queue (a redacting log's: its records hold hashes)
    lost: list[str]  # cannot be put back: redacted, and no copy was kept
    decided: dict[str, Mapping[str, Any]]  # of those put back, the ones put back decided: the verdict record committed
    # of those put back pending, the ones whose decision the chain holds verdict records on (a copied row's): those
    # records, which a verdict on the item then supersedes (``--supersede``)
    held_pending: dict[str, list[Mapping[str, Any]]]
    # not put back: the queue refuses the item its decision record gives (a field it cannot hold, such as a domain that
    # is no string, from a router of one's own), by decision id, with why; the others are put back all the same
    refused: dict[str, str]

    @property
    def put_back(self) -> list[str]:
        return self.from_records + self.from_pending


def holds_text(record: Mapping[str, Any]) -> bool:
    """Whether a decision's record holds the question and answer a review item is rebuilt from (a redacting log's
    holds their hashes: only a copy kept beside the queue can put its item back)."""
    return all(isinstance(record.get(k), str) for k in ("question", "answer"))


def newest_file_from(records: Iterable[Mapping[str, Any]]) -> int:
    """The seq the newest file of a rotated log starts at (its ``log_continued`` record's; -1 for a log never
    rotated): a guard start reads that file alone, so a decision recorded below it is in an archive."""
    return max((r["seq"] for r in records if r.get("kind") == CONTINUATION and type(r.get("seq")) is int), default=-1)


def not_put_back(record: Mapping[str, Any], kept: set[str], newest: int) -> str | None:
    """Why a guard start (:meth:`ReviewQueue.recover` on the log's newest file) would not put back the review item of
    the decision ``record`` if its row were gone; None where it would. ``kept``: the ids of the copies kept beside the
    queue (:meth:`ReviewQueue.kept_ids`); ``newest``: :func:`newest_file_from` of the log's records."""
    if not holds_text(record) and record.get("id") not in kept:
        return "its decision record holds hashes, not text, as a redacting log's do, and no copy is kept beside the queue"
    if type(record.get("seq")) is int and record["seq"] < newest:
        return "its decision record is in an archive of the rotated log, which a guard start does not read"
    return None


class ItemKey(NamedTuple):
    """What the evaluation marks and counts read of an item (:meth:`ReviewQueue.item_keys`), without its text."""

    id: str
    audit_id: str
    domain: str | None
    status: str


def _looked_up(record: dict[str, Any]) -> dict[str, Any]:
    """What the queue keeps of a record it read (:meth:`ReviewQueue.decision_records`, and an item opened or decided:
    its decision and the verdicts on it): a decision or a verdict whole, another its id and kind (the first record of
    an id is the one an item is checked against, and one that is not a decision is refused as such), so the log's
    logins and monitor checks are not all kept in memory."""
    return record if record.get("kind") in ("decision", "review_verdict") else {"id": record.get("id"),
                                                                                  "kind": record.get("kind")}


def item_wanted(record: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """``(decision id, spot-check reason)`` when this audit record promises a review item: a decision routed to
    review (reason None) or a spot-check record of an accepted one; None for any other record."""
    if record.get("kind") == "decision" and record.get("route") == "review" and isinstance(record.get("id"), str):
        return record["id"], None
    if record.get("kind") == "spot_check" and isinstance(record.get("decision_audit_id"), str):
        return record["decision_audit_id"], str(record.get("selected_because") or "selected")
    return None


def refuse_folder(queue_path: str | os.PathLike[str], where: str | None = None) -> None:
    """Refuse a review queue path that is a folder, in one line naming it (``where``: the setting it came from) and a
    file inside it: read as no queue yet, it was listed as "nothing has been held"."""
    path = Path(queue_path)
    if path.is_dir():
        raise ReviewQueueError(f"review queue path {path}{f' ({where})' if where else ''} is a folder; name the queue "
                               f"file, e.g. {path / 'hguard-review.sqlite3'}")


def missing_queue(queue_path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]], log: Any,
                  where: str) -> str | None:
    """What is wrong when a review queue file does not exist while the audit log ``log`` holds records promising
    review items (:func:`item_wanted`): a mistyped ``[review] queue`` path, read as an empty queue ("0 pending", no
    alarm) while answers wait in the real one. None when the file exists or the log promises none. ``where``: the
    fix (the policy file, or the flag) named. A reading command never creates the queue: the guard does, on the
    first answer it holds."""
    path = Path(queue_path)
    if path.is_file():
        return None
    n = len(dict.fromkeys(w[0] for r in records if (w := item_wanted(r)) is not None))
    if not n:
        return None
    return (f"no review queue at {path}, but the audit log {log} holds {n} decision(s) routed to review or picked "
            f"for a spot-check: check the [review] queue path ({where}); the guard's queue holds those items")


def refuse_missing_queue(queue_path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]], log: Any,
                         where: str) -> None:
    """Refuse to read a review queue file that does not exist while the audit log holds records promising review
    items (:func:`missing_queue`, which says why)."""
    said = missing_queue(queue_path, records, log, where)
    if said is not None:
        raise InputError(said)


def same_risk(a: Any, b: Any) -> bool:
    """Whether two recorded risks are the same (both unscored, or numbers within float rounding)."""
    if a is None or b is None:
        return a is None and b is None
    x, y = finite_number(a), finite_number(b)  # True is no risk, nor 10**400 (float() raised OverflowError)
    return x is not None and y is not None and abs(x - y) < 1e-9


def same_value(a: Any, b: Any) -> bool:
    """Whether two recorded values (signals, reasons) are the same: numbers within float rounding, containers
    item by item, the rest equal."""
    if not (is_real(a) and is_real(b)):
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
        return a == b
    return a == b or same_risk(a, b)  # equal ints beyond float range (no risk to same_risk) are the same value


def same_text(shown: Any, logged: Any) -> bool:
    """Whether a queue item's text field (question, context, answer, domain) is what its decision record holds: the
    same value, or in a redacting log the hash of it."""
    return (redacted(shown) == logged) if isinstance(logged, Mapping) and "sha256" in logged else shown == logged


def verdict_in_chain(item: ReviewItem, recorded: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether ``item``'s verdict has its ``review_verdict`` record in ``recorded`` (the chain's, by id), for
    this decision and label."""
    return not_in_chain(item, recorded, "the audit log") is None


def not_in_chain(item: ReviewItem, recorded: Mapping[str, Mapping[str, Any]], log: str) -> str | None:
    """Why ``item``'s verdict is not its ``review_verdict`` record in ``recorded`` (the chain's, by id; ``log``
    names the log in the reason), or None when it is: for this decision, label and item."""
    v = item.verdict
    rec = recorded.get(v.audit_record_id) if v is not None and v.audit_record_id else None
    if v is not None and v.audit_record_id and rec is None:  # decided with a log: not this chain's record
        return (f"its verdict record {v.audit_record_id} is not in the audit log {log} (records cut, or another log; "
                "run `hguard audit verify`)")
    if v is None or rec is None:
        return (f"its verdict has no review_verdict record in the audit log {log} (decided without the log, or the "
                "queue file was edited)")
    if rec.get("decision_audit_id") != item.audit_id:
        return (f"its verdict record {rec.get('id')} in {log} judges the decision {rec.get('decision_audit_id')}, not "
                f"this item's {item.audit_id}: the queue file was edited")
    if rec.get("label") != v.label:  # relabelled in the queue: the record and its label named, not "no record"
        def said(verdict: Any, label: Any) -> str:
            return f"{verdict!r}" + (f" (label {label!r})" if verdict != label else "")

        return (f"its verdict {said(v.verdict, v.label)} is not the {said(rec.get('verdict'), rec.get('label'))} by "
                f"{rec.get('reviewer')} that its verdict record {rec.get('id')} in {log} holds: the queue file was "
                "edited after the verdict")
    if rec.get("item_id", item.id) != item.id:  # a row copied under another id holds another item's verdict
        return (f"its verdict record {rec.get('id')} in {log} is the verdict on item {rec.get('item_id')}: the queue "
                "row was copied under another id")
    return None


def queue_verdict_said(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The verdict a ``review_verdict`` record put on record from the queue (``queue_verdict``: decided without the
    log, then decided again with it), as a verdict of its own on the same decision: the record's fields, with the
    queue's verdict, reviewer, time, corrected answer and note, its label, and ``queue_verdict_of`` naming the record
    that holds it. None when the record holds none (or one that is no verdict)."""
    qv = record.get("queue_verdict")
    if not isinstance(qv, Mapping) or qv.get("verdict") not in VERDICTS:
        return None
    return {**record, **{k: qv.get(k) for k in ("verdict", "reviewer", "decided_at", "corrected_answer", "note")},
            "label": verdict_label(str(qv["verdict"])), "queue_verdict_of": record.get("id")}


def where_recorded(record: Mapping[str, Any]) -> str:
    """Where a verdict :func:`chain_verdicts` counts is recorded: its record, or for a queue's verdict put on record
    (:func:`queue_verdict_said`) the record that holds it."""
    if record.get("queue_verdict_of") is not None:
        return f"decided without the log; kept as queue_verdict in record {record['queue_verdict_of']}"
    return f"record {record.get('id')}"


def chain_verdicts(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """The audit chain's verdict on each decision, from its ``review_verdict`` records in chain order: the last
    one, except that a later "correct" does not erase a reviewer's "hallucinated" (a verdict superseded, or a
    queue row copied or reset and decided again): reviewers disagreeing, the decision counts as hallucinated.
    A queue's verdict a record put on record (``queue_verdict``, decided without the log) is read as a verdict made
    before that record (:func:`queue_verdict_said`): a "hallucinated" one that a "correct" record superseded is a
    disagreement too, and the decision counts as hallucinated by it.
    Returns the verdict record by decision id, and the ids of the "correct" records that did not count. The
    monitor's figures and the calibration export both read the verdicts this way."""
    verdict_of: dict[str, Mapping[str, Any]] = {}
    contradicting: list[str] = []
    for r in records:
        if r.get("kind") != "review_verdict" or r.get("label") not in ("correct", "hallucinated") \
                or not isinstance(r.get("decision_audit_id"), str):  # a record naming no decision judges none
            continue
        prev = verdict_of.get(r["decision_audit_id"])
        earlier = queue_verdict_said(r)
        if earlier is not None and earlier["label"] == "hallucinated" and (prev is None or prev["label"] != "hallucinated"):
            prev = verdict_of[r["decision_audit_id"]] = earlier  # the queue's verdict, said before this record
        if prev is not None and prev["label"] == "hallucinated" and r["label"] != "hallucinated":
            contradicting.append(r["id"])
            continue
        verdict_of[r["decision_audit_id"]] = r
    return verdict_of, contradicting


def committed_verdict(records: Sequence[Mapping[str, Any]], item_id: str) -> Mapping[str, Any] | None:
    """Of the ``review_verdict`` records on an item's decision (chain order), the one the queue committed on the item:
    its last on the item itself when that one names every earlier one in ``supersedes`` (a ``decide --supersede``
    records it so; one alone names none), else the one :func:`chain_verdicts` counts, if it is on the item (a
    queue's verdict a record keeps: that record). None when none is on the item (records on copied rows are theirs)."""
    own = [r for r in records if r.get("kind") == "review_verdict" and r.get("label") in ("correct", "hallucinated")
           and isinstance(r.get("decision_audit_id"), str) and r.get("item_id", item_id) == item_id]
    if not own:
        return None
    if {r.get("id") for r in own[:-1]} <= set(own[-1].get("supersedes") or ()):
        return own[-1]
    counted = next(iter(chain_verdicts(own)[0].values()))
    held = counted.get("queue_verdict_of")
    return next((r for r in own if r.get("id") == held), None) if held is not None else counted


def _fits_item(item_id: str, verdict: str, corrected_answer: str | None, row: Sequence[Any]) -> None:
    """Refuse a verdict that cannot be said of the item (``row``: audit_id, domain, risk, question, context, answer,
    spot_check, as :meth:`ReviewQueue.decide` reads it under its lock)."""
    if verdict == "not_in_context" and row[4] is None:
        raise InputError(
            f"verdict 'not_in_context' says the passage the answer was given with does not answer the "
            f"question, and item {item_id!r} was answered without context; choose 'hallucinated' or "
            "'corrected'"
        )
    if verdict == "corrected" and corrected_answer is not None and same_words(corrected_answer, row[5]):
        raise InputError(  # it would say the answer was wrong and that the same answer is right
            f"verdict 'corrected' gives the model's own answer {_show(corrected_answer)} as the right one; "
            "choose 'correct' if the answer is right, or type a different answer"
        )


# --------------------------------------------------------------------------------------------------------------
# the queue


class ReviewQueue:
    """Answers routed to review, in a SQLite file at ``path``; see the module docstring for the guarantees.

    ``audit``: where verdicts are logged (kind ``review_verdict``); without one, verdicts live only in the
    queue. ``busy_timeout``: seconds a write waits for another writer before failing.
    """

    path: Path
    audit: AuditLog | None
    busy_timeout: float
    _init_lock: threading.Lock
    _log_read: AppendedRecords

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        audit: AuditLog | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)) or str(path) == "":
            raise InputError(
                f"a review queue path must be a non-empty str or os.PathLike, got {type(path).__name__}: "
                f"{_show(path)}; pass a file path such as hguard-review.sqlite3"
            )
        if audit is not None and not isinstance(audit, AuditLog):
            raise InputError(
                f"audit must be an hguard.audit.AuditLog or None, got {type(audit).__name__}: {_show(audit)}; "
                "pass AuditLog('hguard-audit.jsonl')"
            )
        seconds = finite_number(busy_timeout)  # an infinity or 10**400 stopped with OverflowError when first opened
        if seconds is None or not 0 <= seconds <= MAX_BUSY_TIMEOUT_S:
            raise InputError(f"busy_timeout must be a number of seconds in [0, {MAX_BUSY_TIMEOUT_S:g}], got "
                             f"{_show(busy_timeout)}; e.g. 10")
        self.path = Path(path)
        self.audit = audit
        self.busy_timeout = seconds
        self._init_lock = threading.Lock()
        # the log's records read so far, for a reader that asks again and again (the page: each list, item opened or
        # verdict reads only what was appended since; decision_records, _decision_and_verdicts)
        self._log_read = AppendedRecords(keep=_looked_up)
        self._initialise()

    def __repr__(self) -> str:
        return f"ReviewQueue({str(self.path)!r}, audit={self.audit!r})"

    # ---------------------------------------------------------------------------------------------------------
    # connections

    def _fail(self, doing: str, cause: BaseException | str) -> ReviewQueueError:
        what = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        hint = "check that the file is an hguard review queue, that its directory is writable, and the free space"
        if isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
            hint = (
                f"another process held the queue for more than {self.busy_timeout:g} s; look for a hung writer "
                "(a process holding a transaction on the file: `fuser` names it), or wait longer: busy_timeout = S in the "
                "policy's [review] table (ReviewQueue(..., busy_timeout=S) in code)"
            )
        return ReviewQueueError(f"review queue {self.path}: could not {doing}: {what}; {hint}")

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly, so the compare-and-set and the audit append
        # share one transaction whose boundaries are visible in the code.
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=True
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # FULL: a verdict or an enqueued item whose call returned must survive a power cut.
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self, doing: str) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._connect()
        except sqlite3.Error as e:
            raise self._fail(doing, e) from e
        try:
            yield conn
        except sqlite3.Error as e:
            raise self._fail(doing, e) from e
        finally:
            conn.close()

    def _initialise(self) -> None:
        refuse_folder(self.path)
        try:
            with open(self.path, "rb") as f:
                head = f.read(16)
        except OSError:  # none yet (created below), or one it may not read: said below as the open that fails
            head = b""
        if head and head != b"SQLite format 3\x00":  # a 1-byte file was taken by sqlite as a new database and overwritten
            raise ReviewQueueError(f"review queue path {self.path} is a file that is not an hguard review queue (not a "
                                   "SQLite database), left as it is; name the queue file (e.g. hguard-review.sqlite3) "
                                   "or a new path where the guard creates it")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created here rather than by sqlite so the mode is ours (sqlite copies it to -wal and -shm).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            os.close(fd)
        except OSError as e:  # an existing file that cannot be opened for writing is not one that could not be created
            raise self._fail("open the queue file for writing (check its permissions)" if self.path.is_file()
                             else "create the queue file", e) from e
        with self._init_lock, self._connection("open the queue") as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise self._fail("switch the queue to WAL mode", f"journal_mode stayed {mode!r}")
            migrate(conn, self.path)

    # ---------------------------------------------------------------------------------------------------------
    # writing

    def enqueue(self, item: Mapping[str, Any]) -> str:
        """Store one answer routed to review and return its id (the decision's ``audit_id``).

        Raises ReviewQueueError on any failure, a malformed item included: the caller's decision must not
        pretend the answer is waiting for a human when it is not.
        """
        return self._enqueue(item)

    def _enqueue(self, item: Mapping[str, Any], verdict: Mapping[str, Any] | None = None) -> str:
        """:meth:`enqueue`; with ``verdict`` (the audit chain's ``review_verdict`` record on the item's decision, with
        its ``id`` and ``hash``), the item is stored decided with that verdict, in the same statement."""
        try:
            row = _normalise_item(item)
        except ValueError as e:
            raise ItemRefused(
                f"review queue {self.path}: could not enqueue the item: {e}; fix the item passed to enqueue()", str(e)
            ) from None
        row["enqueued_at"] = _now()
        if verdict is not None:  # as decide() would have stored it, pointing at its record
            said = verdict.get("verdict") if verdict.get("verdict") in VERDICTS else verdict_label(str(verdict.get("label")))

            def text(v: Any) -> str | None:  # a redacting log's record holds a hash of the corrected answer and note
                return v if isinstance(v, str) else None

            row.update(status="decided", verdict=said, reviewer=str(verdict.get("reviewer")),
                       corrected_answer=text(verdict.get("corrected_answer")), note=text(verdict.get("note")),
                       decided_at=str(verdict.get("decided_at")), verdict_audit_id=verdict.get("id"),
                       verdict_audit_hash=verdict.get("hash"))
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._connection(f"enqueue item {row['id']!r}") as conn:
            try:  # one statement: an item archived (decided, then moved to an archive file) is not queued again
                cur = conn.execute(f"INSERT INTO review_items ({columns}) SELECT {marks} WHERE NOT EXISTS "
                                   "(SELECT 1 FROM review_archived WHERE id = ?)", (*row.values(), row["id"]))
                if cur.rowcount == 0:
                    raise ReviewQueueError(f"{self.no_item(row['id'])}; each decision has its own audit id, so pass the "
                                           "id of this decision's audit record")
            except sqlite3.IntegrityError as e:
                if conn.execute("SELECT 1 FROM review_items WHERE id = ?", (row["id"],)).fetchone():
                    raise ReviewQueueError(
                        f"review queue {self.path}: an item with audit_id {row['id']!r} is already queued; "
                        "each decision has its own audit id, so pass the id of this decision's audit record"
                    ) from e
                raise
        return row["id"]

    def queued_ids(self) -> set[str]:
        """The id of every item in the queue, pending or decided, and of every item archived (:meth:`archive`)."""
        with self._connection("list the queued items") as conn:
            return {row[0] for row in conn.execute("SELECT id FROM review_items UNION SELECT id FROM review_archived")}

    def absent(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` no item of the queue has (pending, decided or archived: a guard start does not put back an
        archived item); asked in chunks, so a long audit log can be checked against a long queue without holding
        either in memory."""
        ids = list(dict.fromkeys(ids))
        found: set[str] = set()
        with self._connection("look up queued items") as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for table in ("review_items", "review_archived"):
                    found.update(row[0] for row in conn.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk))
        return set(ids) - found

    # ---------------------------------------------------------------------------------------------------------
    # retiring decided items (see hguard.review._archive)

    def archive(self, decided_before: str | datetime, out: str | os.PathLike[str] | None = None) -> ArchiveSummary:
        """Move the items decided before ``decided_before`` (an ISO date, midnight UTC, or date and time, UTC unless it
        names a zone; or a datetime) out of the queue, whole, into the JSONL file ``out`` (a new file; default: beside
        the queue, ``QUEUE.archive-<time>.jsonl``), and compact the queue file. Pending items are never archived; with
        the audit log, neither is a decided item whose verdict is not the chain's or whose row differs from its decision
        record (listed in :attr:`ArchiveSummary.held` with why). The queue keeps each archived item's ids and its file
        (:meth:`archived`): a guard start does not put it back, the monitor counts it, and :func:`export_reviewed
        <hguard.review.export.export_reviewed>` reads it back (:meth:`archived_items`). A run killed midway is finished
        by the next (nothing lost, nothing held twice). InputError for a date that does not parse or an ``out`` that
        exists."""
        return _archive.archive(self, decided_before, out)

    def archived(self) -> dict[str, ArchivedItem]:
        """What the queue keeps of each archived item (its ids, its verdict record's, its file), by item id."""
        return _archive.archived(self)

    def archived_items(self) -> list[ReviewItem]:
        """The archived items, whole, read from their archive files; ReviewQueueError when a file is missing or was
        changed since it was written."""
        return _archive.archived_items(self)

    @property
    def pending_path(self) -> Path:
        """Where items the queue could not take are kept (:meth:`keep_pending`): beside the queue, in clear as it is."""
        return self.path.with_name(self.path.name + ".pending.jsonl")

    def keep_pending(self, item: Mapping[str, Any]) -> None:
        """Keep ``item``, which the queue could not take (locked past ``busy_timeout``), in :attr:`pending_path`
        for :meth:`recover` to put back where the decision's record cannot give its text: in a redacting log it holds
        hashes, and an answer held for review was lost to every reviewer when the process ended (a data-protection
        officer's trial). Raises OSError when it cannot be written. See :mod:`hguard.review._pending`."""
        _pending.append(self.pending_path, item)

    def forget_pending(self) -> None:
        """Drop from :attr:`pending_path` the items now in the queue (the file goes when none is left)."""
        _pending.drop(self.pending_path, lambda ids: set(ids) - self.absent(ids))

    def kept_ids(self) -> set[str]:
        """The audit ids of the items kept in :attr:`pending_path` (a guard start puts them back)."""
        return set(_pending.read(self.pending_path))

    def recover(self, records=None) -> Recovered:
        """Put back the items a decision's record promises but the queue lacks: the guard appends a decision
        routed to review (or a spot-check of an accepted one) to the audit log first, then enqueues it, and a
        process killed between the two (or a queue locked past ``busy_timeout``) leaves the answer in the log
        and out of every reviewer's sight. ``records``: the audit log's records (default: this queue's log).

        Returns a :class:`Recovered`: the ids put back from their decision records (rebuilt from the record, so each
        is what the model answered), those put back from the copy :meth:`keep_pending` kept when it was decided (a
        redacting log's records hold hashes, not text), and those that cannot be put back (redacted, no copy kept).
        An item whose decision has a verdict in the chain (its ``review_verdict`` records among ``records``) is put back
        decided with the one the queue committed (:func:`committed_verdict`: the last, which supersedes any earlier;
        verdict, reviewer, time, pointing at that record), as the queue held it: put back pending, a verdict on it was
        refused (the log holds one) and ``--supersede`` wrote a second. The monitor and the export still read every
        record (reviewers disagreeing, the decision counts as hallucinated and is not exported). ``decided`` names
        those, with their record; ``held_pending`` those put back pending whose decision the chain holds verdicts on
        (on a copied row), with those records; ``refused`` those the queue refuses for what their record holds (a
        field it cannot take, such as a domain that is not a string), each with why: the others are put back all the
        same."""
        if records is None:
            if self.audit is None:
                return Recovered([], [], [], {}, {}, {})
            records = self.audit  # read once, record by record
        queued = self.queued_ids()
        decisions: dict[str, Mapping[str, Any]] = {}
        wanted: dict[str, str | None] = {}  # decision id -> spot-check reason (None: routed to review)
        verdicts: dict[str, list[Mapping[str, Any]]] = {}  # by decision, in chain order
        for rec in records:
            if rec.get("kind") == "decision" and isinstance(rec.get("id"), str):
                decisions[rec["id"]] = rec
            elif rec.get("kind") == "review_verdict" and isinstance(rec.get("decision_audit_id"), str) \
                    and rec["decision_audit_id"] not in queued:
                verdicts.setdefault(rec["decision_audit_id"], []).append(rec)
            if (want := item_wanted(rec)) is not None:
                rid, spot = want
                wanted[rid] = spot if spot is not None else wanted.get(rid)
        done = Recovered([], [], [], {}, {}, {})
        kept = _pending.read(self.pending_path)
        for rid, spot in wanted.items():
            rec = decisions.get(rid)
            if rid in queued or rec is None:
                continue
            # the verdict the queue committed on the item itself (one on a copied row under another id is left to the
            # reviewers: the item comes back pending, and those records are named)
            verdict = committed_verdict(verdicts.get(rid, []), rid)
            if not holds_text(rec) and rid not in kept:
                done.lost.append(rid)  # redacted (or not a guard's decision): its text cannot be rebuilt
                continue
            if verdict is not None:
                done.decided[rid] = verdict
            elif verdicts.get(rid):
                done.held_pending[rid] = verdicts[rid]
            reasons = list(rec.get("reasons") or [])
            try:  # one item the queue refuses (a field it cannot hold) keeps none of the others out
                if not holds_text(rec):  # redacted: the copy kept beside the queue when it was decided
                    self._enqueue(kept[rid], verdict)
                    done.from_pending.append(rid)
                    continue
                self._enqueue({
                    "audit_id": rid, "question": rec["question"], "context": rec.get("context"), "answer": rec["answer"],
                    "domain": rec.get("domain"), "risk": rec.get("risk"), "signals": rec.get("signals") or {},
                    "reasons": ([f"{SPOT_CHECK_REASON}{spot}"] if spot is not None else []) + reasons,
                    "model_fingerprint": rec.get("model_fingerprint"), "probe_id": rec.get("probe_id"),
                    "time": rec.get("time"), "spot_check": spot is not None,
                }, verdict)  # fmt: skip
            except ItemRefused as exc:
                done.decided.pop(rid, None)
                done.held_pending.pop(rid, None)
                done.refused[rid] = exc.why
                continue
            done.from_records.append(rid)
        if kept:
            self.forget_pending()
        return done

    def decide(
        self,
        item_id: str,
        *,
        verdict: VerdictName,
        reviewer: str,
        corrected_answer: str | None = None,
        note: str | None = None,
        supersede: bool = False,
    ) -> Verdict:
        """Record a reviewer's verdict, once: a second verdict on the same item raises AlreadyDecided.

        ``verdict``: "correct" (the answer is right), "hallucinated" (wrong, right answer unknown),
        "corrected" (wrong, and ``corrected_answer`` is the right one, required then and only then) or
        "not_in_context" (for an answer given with context: the passage does not answer the question, so the
        right reply was to say so; refused on an item without context).
        A verdict the audit log holds for this item but the queue never committed (the deciding process
        stopped between the two) is refused too, naming it, unless ``supersede``: then this verdict is
        recorded with ``supersedes`` naming the earlier record(s), and it is the one the queue holds (the monitor
        still counts the decision as hallucinated if any reviewer said so, and the export then leaves it out).
        An item decided without the audit log (``--no-audit``: its verdict is the queue's only, which the monitor does
        not count) is decided again with the log to put it on record: the same verdict is recorded, by ``reviewer``
        now; another is refused naming the queue's, unless ``supersede``, which records it as the later one. Either
        record holds the queue's verdict (``queue_verdict``), so none is lost.
        """
        item_id, verdict, reviewer, corrected_answer, note = self._check_verdict(
            item_id, verdict, reviewer, corrected_answer, note
        )
        uncommitted: list[Mapping[str, Any]] = []
        if self.audit is not None:  # a verdict is logged only beside the decision it judges, as it was made
            unrecorded = self._unrecorded(item_id)  # either reads the log: AuditLogUnavailable, nothing recorded
            if unrecorded is not None:  # decided without the log: this verdict puts it on record (or is refused)
                return self._put_on_record(*unrecorded, verdict, reviewer, corrected_answer, note, supersede)
            uncommitted = self._check_decision(item_id)
        decided_at = _now()
        # The audit record's id is chosen before the append so the row can point at it in the same transaction.
        record_id = uuid.uuid4().hex if self.audit is not None else None
        with self._connection(f"record the verdict on item {item_id!r}") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "UPDATE review_items SET status = 'decided', verdict = ?, reviewer = ?, corrected_answer = ?, "
                    "note = ?, decided_at = ?, verdict_audit_id = ? WHERE id = ? AND status = 'pending'",
                    (verdict, reviewer, corrected_answer, note, decided_at, record_id, item_id),
                )
                if cur.rowcount != 1:
                    raise self._not_pending(conn, item_id, supersede)
                if uncommitted and not supersede:  # still pending under our lock: those verdicts were never committed
                    raise self._uncommitted_error(item_id, uncommitted)
                earlier = [str(r.get("id")) for r in uncommitted]
                row = conn.execute(
                    "SELECT audit_id, domain, risk, question, context, answer, spot_check FROM review_items WHERE id = ?",
                    (item_id,),
                ).fetchone()
                _fits_item(item_id, verdict, corrected_answer, row)
                audit_hash = after = None
                if self.audit is not None:
                    audit_hash, after = self._append_verdict(
                        record_id, item_id, row, verdict, reviewer, corrected_answer, note, decided_at, earlier
                    )
                    conn.execute(
                        "UPDATE review_items SET verdict_audit_hash = ? WHERE id = ?", (audit_hash, item_id)
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if after is not None:  # said beside the committed verdict, never in its place (warnings as errors)
            warn_aside(after, stacklevel=2)
        return Verdict(
            item_id=item_id,
            audit_id=row[0],
            verdict=verdict,
            reviewer=reviewer,
            corrected_answer=corrected_answer,
            note=note,
            decided_at=decided_at,
            audit_record_id=record_id,
            audit_hash=audit_hash,
        )

    def _unrecorded(self, item_id: str) -> tuple[ReviewItem, list[Mapping[str, Any]]] | None:
        """``(item, the log's verdict records on its decision)`` when ``item_id`` is decided without a log (``--no-audit``:
        its row names no verdict record): the item's decision checked as for a pending one. None for any other item
        (pending, missing, or its verdict on record). VerdictRefused when its row names a verdict record the log lacks
        (records cut, or another log): that verdict is on record elsewhere, not the queue's only."""
        assert self.audit is not None
        item = self.get(item_id)
        if item is None or item.verdict is None:
            return None
        record, verdicts = self._decision_and_verdicts(item, deciding=True)
        if any(r.get("id") == item.verdict.audit_record_id for r in verdicts):
            return None
        v = item.verdict
        if v.audit_record_id is not None:  # decided with a log, whose record this one lacks: not a --no-audit verdict
            raise VerdictRefused(
                f"review item {item.id!r} holds the verdict {v.verdict} by {v.reviewer} at {v.decided_at}, decided with "
                f"an audit log: its record {v.audit_record_id} is not in {self.audit.path} (as a verdict on decision "
                f"{item.audit_id!r}): records cut off the log's end, or the item was decided with another log; nothing "
                f"was recorded. Run `hguard audit verify {self.audit.path}` (with the policy's key and anchor: `hguard "
                "audit verify --policy FILE`) and decide with the log that holds the record")
        edited = self._edited_refusal(item, record)
        if edited is not None:
            raise VerdictRefused(edited)
        return item, verdicts

    def _put_on_record(
        self,
        item: ReviewItem,
        verdicts: list[Mapping[str, Any]],
        verdict: VerdictName,
        reviewer: str,
        corrected_answer: str | None,
        note: str | None,
        supersede: bool,
    ) -> Verdict:
        """Record in the audit log a verdict on ``item``, decided without the log (its verdict is the queue's only,
        which the monitor and the export do not count): the same verdict puts it on record, by ``reviewer`` now; another
        is refused unless ``supersede``, which records it as the later one. Either record names the queue's verdict
        (``queue_verdict``: verdict, reviewer, time, note), which the row then no longer holds."""
        assert self.audit is not None and item.verdict is not None
        old = item.verdict
        same = old.verdict == verdict and old.corrected_answer == corrected_answer
        said = (f"{old.verdict}" + (f" ({old.corrected_answer!r})" if old.corrected_answer else "")
                + f" by {old.reviewer} at {old.decided_at}")
        if not same and not supersede:
            raise VerdictRefused(
                f"review item {item.id!r} holds the verdict {said} in the queue only (decided without the audit log "
                f"{self.audit.path}; the monitor does not count it); nothing was recorded. To put that verdict on record, "
                f"decide again with it (`hguard review decide {item.id} --verdict {old.verdict}"
                + (" --corrected-answer TEXT" if old.verdict == "corrected" else "") + " --reviewer NAME` with the "
                "policy or --audit LOG); to record yours as the later verdict, naming that one, add --supersede")
        if verdicts and not supersede:  # the log holds verdicts on this decision that are not the queue's
            raise self._uncommitted_error(item.id, verdicts)
        decided_at = _now()
        record_id = uuid.uuid4().hex
        queue_verdict = {"verdict": old.verdict, "reviewer": old.reviewer, "decided_at": old.decided_at,
                         "corrected_answer": old.corrected_answer, "note": old.note}
        with self._connection(f"record the verdict on item {item.id!r}") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(  # compare-and-set on the verdict read: another decide meanwhile wins
                    "UPDATE review_items SET verdict = ?, reviewer = ?, corrected_answer = ?, note = ?, decided_at = ?, "
                    "verdict_audit_id = ? WHERE id = ? AND status = 'decided' AND verdict = ? AND reviewer = ? AND "
                    "decided_at = ? AND verdict_audit_id IS ?",
                    (verdict, reviewer, corrected_answer, note, decided_at, record_id, item.id, old.verdict,
                     old.reviewer, old.decided_at, old.audit_record_id),
                )
                if cur.rowcount != 1:
                    raise self._not_pending(conn, item.id, supersede)
                row = conn.execute(
                    "SELECT audit_id, domain, risk, question, context, answer, spot_check FROM review_items WHERE id = ?",
                    (item.id,),
                ).fetchone()
                _fits_item(item.id, verdict, corrected_answer, row)
                audit_hash, after = self._append_verdict(
                    record_id, item.id, row, verdict, reviewer, corrected_answer, note, decided_at,
                    [str(r.get("id")) for r in verdicts], queue_verdict=queue_verdict,
                )
                conn.execute("UPDATE review_items SET verdict_audit_hash = ? WHERE id = ?", (audit_hash, item.id))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if after is not None:  # said beside the committed verdict, never in its place (warnings as errors)
            warn_aside(after, stacklevel=3)
        return Verdict(item_id=item.id, audit_id=row[0], verdict=verdict, reviewer=reviewer,
                       corrected_answer=corrected_answer, note=note, decided_at=decided_at, audit_record_id=record_id,
                       audit_hash=audit_hash)

    def verdict_refusal(self, item_id: str) -> str | None:
        """Why a verdict on this pending item would be refused now, before a reviewer spends time on it: its
        decision record is missing from the audit log or differs from what the queue shows, or the log holds a
        verdict on it the queue never committed. None when nothing stands in the way (or without a log)."""
        return self.opened(item_id)[0]

    def _check_verdict(
        self, item_id: Any, verdict: Any, reviewer: Any, corrected_answer: Any, note: Any
    ) -> tuple[str, VerdictName, str, str | None, str | None]:
        if not isinstance(item_id, str) or not item_id:
            raise InputError(f"item_id must be a non-empty string, got {_show(item_id)}; pass an id from pending()")
        if verdict not in VERDICTS:
            raise InputError(f"verdict must be one of {', '.join(VERDICTS)}, got {_show(verdict)}")
        if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > _MAX_REVIEWER:
            raise InputError(
                f"reviewer must be a non-empty name of at most {_MAX_REVIEWER} characters, got {_show(reviewer)}; "
                "say who made the decision"
            )
        reviewer = reviewer.strip()
        hidden = hidden_characters_in(reviewer)
        if hidden:  # a line break or a direction override lets a name show as another in one-line listings
            raise InputError(
                f"reviewer {_show(reviewer)} holds control or formatting character(s) {hidden}; type the name as plain text"
            )
        if corrected_answer is not None and not isinstance(corrected_answer, str):
            raise InputError(f"corrected_answer must be a str or None, got {type(corrected_answer).__name__}")
        if isinstance(corrected_answer, str) and not corrected_answer.strip():
            corrected_answer = None
        if verdict == "corrected" and corrected_answer is None:
            raise InputError(
                "verdict 'corrected' needs the right answer in corrected_answer (got nothing); "
                "type the right answer, or choose 'hallucinated' if it is not known (for an answer given with a passage "
                "that does not answer the question, 'not_in_context', which, unlike 'hallucinated', becomes a calibration row)"
            )
        if verdict != "corrected" and corrected_answer is not None:
            raise InputError(
                f"verdict {verdict!r} takes no corrected_answer (got {_show(corrected_answer)}); "
                "choose 'corrected' to record a better answer, or leave the answer empty"
            )
        if note is not None and not isinstance(note, str):
            raise InputError(f"note must be a str or None, got {type(note).__name__}: {_show(note)}")
        note = (note.strip() or None) if isinstance(note, str) else None
        for name, text in (("reviewer", reviewer), ("corrected_answer", corrected_answer), ("note", note)):
            if text is None:
                continue
            if len(text) > _MAX_TEXT:
                raise InputError(f"{name} is {len(text)} characters long; keep it under {_MAX_TEXT}")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"{name} is not valid Unicode (lone surrogate): {_show(text)}") from None
        return item_id, verdict, reviewer, corrected_answer, note

    def unlike_its_decision(self, item: ReviewItem, record: Mapping[str, Any] | None) -> str | None:
        """Why a verdict on ``item`` would not be a verdict on the model's answer, its decision ``record`` in the
        queue's audit log (None: not found) given: not a decision record of that log, or the queue no longer holds
        what the record does (the question, context and answer the reviewer reads, the domain and risk where the
        verdict counts, why it was held, whether it is a spot-check). None when it matches."""
        assert self.audit is not None
        if record is None or record.get("kind") != "decision":
            return (f"review queue {self.path}: item {item.id!r} judges decision {item.audit_id!r}, which is not a "
                    f"decision record of the audit log {self.audit.path}. Record the verdict with the log the guard "
                    "wrote that decision to (the policy's audit.path: `--policy FILE`, or `--audit LOG`)")
        unsealed = self.audit.unsealed(record)
        if unsealed is not None:  # the reviewer would judge a forged decision (its thresholds, route or risk edited)
            return (f"review queue {self.path}: the decision record {item.audit_id!r} that item {item.id!r} judges, in "
                    f"{self.audit.path}, fails its own check: {unsealed}; run `hguard audit verify --policy FILE` and "
                    "have the log looked at before any verdict is recorded on it")
        if bool(item.spot_check) != (record.get("route") == "accept"):  # a held answer is no spot-check, nor the reverse
            return (f"review queue {self.path}: item {item.id!r} is marked {'a' if item.spot_check else 'no'} spot-check, "
                    f"but its decision record {item.audit_id!r} in {self.audit.path} was routed to {record.get('route')!r}: "
                    "the queue was changed after the guard wrote it")
        for name in (*SHOWN, "domain", "risk", "reasons", "signals"):  # what the reviewer reads, where the verdict counts
            shown, logged = getattr(item, name), record.get(name)
            if name == "risk":  # shown to the reviewer when the queue holds one: it must be the decision's
                same = shown is None or same_risk(shown, logged)
            elif name in ("reasons", "signals"):  # why it was held, as the page shows it (a record of an older
                if name not in record:  # hguard may lack them); the queue's own spot-check line is not the guard's
                    continue
                if name == "reasons" and item.spot_check and shown and str(shown[0]).startswith(SPOT_CHECK_REASON):
                    shown = shown[1:]
                same = same_value(shown, logged if logged is not None else type(shown)())
            else:
                same = same_text(shown, logged)
            if not same:
                return (f"review queue {self.path}: the {name} of item {item.id!r} differs from its decision record "
                        f"{item.audit_id!r} in {self.audit.path}: the queue was changed after the guard wrote it, so a "
                        "verdict on it would not be a verdict on the model's answer")
        return None

    def decision_records(self, items: Sequence[ReviewItem | ItemKey]) -> dict[str, Mapping[str, Any]]:
        """The records ``items`` judge in the queue's audit log (decision id -> record; one not found is not in it),
        reading the log once, its archives too."""
        assert self.audit is not None
        wanted = {it.audit_id for it in items}
        found: dict[str, Mapping[str, Any]] = {}
        for rec in self._log_records("check the items against their decision records", "fix the audit log and try again",
                                     since=self._log_read):
            if rec.get("id") in wanted and rec["id"] not in found:
                found[rec["id"]] = rec
        return found

    def unlike_their_decisions(self, items: Sequence[ReviewItem],
                               records: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
        """:meth:`unlike_its_decision` for many items (item id -> why), reading the audit log once (or taking its
        :meth:`decision_records`): what a listing marks, as the page does when an item is opened."""
        found = self.decision_records(items) if records is None else records
        return {it.id: why for it in items if (why := self.unlike_its_decision(it, found.get(it.audit_id))) is not None}

    def for_evaluation(self, items: Sequence[ReviewItem | ItemKey],
                       records: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, bool | None]:
        """Whether each item (item id -> answer) judges an answer of an evaluation: given to Guard.check with
        ``served=False``, shown to no user, so no one waits on it; as the monitor tells it
        (:func:`hguard.monitor.evaluation_decision`), which counts such items apart from the review backlog. None where it
        cannot be told: the queue has no audit log, or its decision record is not a decision of it (a reviewer then
        takes it as live: a user may wait). ``records``: the log's :meth:`decision_records`, when read already."""
        from ..monitor import evaluation_decision

        if self.audit is None:
            return {it.id: None for it in items}
        found = self.decision_records(items) if records is None else records
        said: dict[str, bool | None] = {}
        for it in items:
            rec = found.get(it.audit_id)
            said[it.id] = evaluation_decision(rec) if rec is not None and rec.get("kind") == "decision" else None
        return said

    def evaluation_counts(self, records: Mapping[str, Mapping[str, Any]] | None = None,
                          items: Sequence[ReviewItem | ItemKey] | None = None) -> dict[str | None, dict[str, int]] | None:
        """Of :meth:`counts`, the items of an evaluation (:meth:`for_evaluation`; one that cannot be told is counted
        live: a user may wait), ``{domain: {"pending": n, "decided": m}}`` for each domain holding any; None without
        the audit log, where it cannot be told. ``records``: the log's :meth:`decision_records` of every item of the
        queue, and ``items``: every item of the queue (pending and decided; :meth:`item_keys` will do), each when read
        already."""
        if self.audit is None:
            return None
        items = self.item_keys() if items is None else items
        evaluation = self.for_evaluation(items, records)
        out: dict[str | None, dict[str, int]] = {}
        for it in items:
            if evaluation[it.id]:
                out.setdefault(it.domain, {"pending": 0, "decided": 0})[it.status] += 1
        return out

    def _check_decision(self, item_id: str) -> list[Mapping[str, Any]]:
        """Refuse a verdict whose decision is not in the queue's audit log, or whose item (the question,
        context and answer the reviewer is shown) differs from that decision record: the queue is a copy the
        reviewer reads, and the log is what an auditor checks. Returns the verdict records the log holds for the
        item while it is pending: if the compare-and-set then finds it still pending, no process is deciding it
        (a concurrent one commits or fails before the lock is ours) and those were never committed. An item
        that is missing or already decided is left to the compare-and-set, which says so."""
        assert self.audit is not None
        item = self.get(item_id)
        if item is None or item.status != "pending":
            return []
        # pending: none of those verdicts was committed
        record, uncommitted = self._decision_and_verdicts(item, deciding=True)
        edited = self._edited_refusal(item, record)
        if edited is not None:
            raise VerdictRefused(edited)
        return uncommitted

    def _edited_refusal(self, item: ReviewItem, record: Mapping[str, Any] | None) -> str | None:
        """The refusal of a verdict on ``item`` when it is :meth:`unlike_its_decision` ``record``, else None."""
        assert self.audit is not None
        edited = self.unlike_its_decision(item, record)
        if edited is None:
            return None
        return f"{edited}; nothing was recorded" + (
            "" if record is None or record.get("kind") != "decision" else
            f". The record holds what the model answered (`hguard audit show {self.audit.path} --id {item.audit_id}`)")

    def _decision_and_verdicts(
        self, item: ReviewItem, *, deciding: bool = False
    ) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
        """(the item's decision record, or None; the verdict records on that decision), read in one pass over the
        audit log and its archives (a decision made before the log was rotated is in one), as read so far: only what was
        appended since the queue last read it is read now (a rotated, truncated or edited file anew; a line damaged
        anywhere refused, as the lists read it). ``deciding``: read for a verdict, which a log that cannot be read
        leaves unrecorded (:meth:`_log_records`), else to show the item."""
        assert self.audit is not None
        record = None
        verdicts: list[Mapping[str, Any]] = []
        doing, then = (
            (f"record the verdict on item {item.id!r}", "nothing was recorded; fix the audit log and decide again")
            if deciding else (f"check item {item.id!r} against its decision record", "fix the audit log and try again")
        )  # fmt: skip
        for rec in self._log_records(doing, then, since=self._log_read):
            if rec.get("id") == item.audit_id and record is None:
                record = rec
            elif rec.get("kind") == "review_verdict" and rec.get("decision_audit_id") == item.audit_id:
                verdicts.append(rec)  # on this item, or on a copy of it
        return record, verdicts

    def _log_records(self, doing: str, then: str, since: AppendedRecords | None = None) -> Iterator[dict[str, Any]]:
        """The audit log's records, its archives' first (:meth:`AuditLog.history`; ``since``: as read so far, only what
        was appended since read now). AuditLogUnavailable when they cannot
        be read (a damaged line or a missing archive, said with its fix; a file this process may not read, a disk
        error), naming the log, ``doing`` and ``then`` (what to do once the log is fixed): a raw OSError reached the
        review page as a bare 500."""
        assert self.audit is not None
        try:
            yield from (self.audit.history() if since is None else self.audit.history(since=since))
        except Exception as e:  # noqa: BLE001 - whatever it was, the log was not read: said, naming it
            cause = str(e) if isinstance(e, HGuardError) else (
                f"{error_text(e)}; check that this process may read it and the disk it is on")
            raise AuditLogUnavailable.of(e,
                f"review queue {self.path}: could not {doing}: the audit log {self.audit.path} could not be read "
                f"({cause}); {then}") from e

    def opened(self, item_id: str) -> tuple[str | None, list[dict] | None]:
        """What the page shows beside an item, from one read of the audit log: why a verdict on it would be refused
        (pending items; see :meth:`verdict_refusal`), and the conversation's earlier turns its decision record holds
        (a follow-up such as "And for children?" is judged on what it refers to; None: none, or no log; in a
        redacting log, which holds their hash, one entry saying so and how many: a reviewer judged "her" not knowing
        that earlier turns existed)."""
        item = self.get(item_id)
        if self.audit is None or item is None:
            return None, None
        record, verdicts = self._decision_and_verdicts(item, deciding=False)
        turns = (record or {}).get("history") if (record or {}).get("kind") == "decision" else None
        history = [dict(t) for t in turns if isinstance(t, Mapping)] if isinstance(turns, list) else None
        if isinstance(turns, Mapping) and "sha256" in turns:  # a redacting log: say the turns exist, and how many
            fp = str(((record or {}).get("fingerprints") or {}).get("history_fingerprint") or "")
            n = fp.split("-turns:", 1)[0] if "-turns:" in fp else "some"
            history = [{"role": "not shown", "content": (
                f"This question follows {n} earlier turn(s) of the conversation, which the redacting audit log keeps "
                "only as a hash: read them in the application's own copy before judging a follow-up such as "
                "\"And for her?\".")}]
        if item.status != "pending":
            return None, history
        edited = self._edited_refusal(item, record)
        why = edited if edited is not None else str(self._uncommitted_error(item_id, verdicts)) if verdicts else None
        return why and why.replace("; nothing was recorded", ""), history  # said before any verdict was submitted

    def _uncommitted_error(self, item_id: str, uncommitted: list[Mapping[str, Any]]) -> ReviewQueueError:
        assert self.audit is not None
        last = uncommitted[-1]
        return VerdictRefused(
            f"review queue {self.path}: the audit log {self.audit.path} already holds a verdict on the decision item "
            f"{item_id!r} judges ({last.get('verdict')} by {last.get('reviewer')} at {last.get('decided_at')}, record "
            f"{last.get('id')}, item {last.get('item_id')!r}) that the queue does not show as this item's: its deciding "
            "process stopped between the log and the queue, or the queue file was edited (a row copied, or set back to "
            "pending); nothing was recorded. To record this verdict too, naming the earlier one, decide again with "
            "supersede (`hguard review decide ... --supersede`); the monitor counts a decision as hallucinated once "
            "any reviewer said so"
        )

    def no_item(self, item_id: str) -> ItemNotFound:
        """The error for an id no item of the queue has (one archived is named with its archive file)."""
        with self._connection(f"look up item {item_id!r}") as conn:
            where = conn.execute("SELECT f.path FROM review_archived a JOIN review_archives f ON f.n = a.archive "
                                 "WHERE a.id = ?", (item_id,)).fetchone()
        if where is not None:
            return ItemNotFound(f"review queue {self.path}: item {item_id!r} was decided and archived to {where[0]} "
                                "(`hguard review archive`), where it is kept whole, its verdict with it", item_id=item_id)
        return ItemNotFound(
            f"review queue {self.path} has no item {item_id!r}; list the pending items with `hguard review list` "
            f"(with the same --policy, or --queue {self.path})",
            item_id=item_id,
        )

    def _not_pending(self, conn: sqlite3.Connection, item_id: str, supersede: bool = False) -> ReviewQueueError:
        row = conn.execute("SELECT reviewer, decided_at, verdict FROM review_items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return self.no_item(item_id)
        reviewer, decided_at, verdict = row
        return AlreadyDecided(
            f"review item {item_id!r} was already decided by {reviewer} at {decided_at} (verdict: {verdict}); "
            "nothing was changed; the items still pending are in `hguard review list` or a reload of the review page"
            + ("; --supersede records a verdict over one the audit log holds but the queue never committed (its "
               "process stopped), or over one decided without the log, not over a verdict on record: an item takes one "
               "recorded verdict, so a second reviewer's disagreement goes in your own records" if supersede else ""),
            item_id=item_id,
            reviewer=reviewer,
            decided_at=decided_at,
            verdict=verdict,
        )

    def _append_verdict(
        self,
        record_id: str | None,
        item_id: str,
        row: tuple[Any, ...],
        verdict: str,
        reviewer: str,
        corrected_answer: str | None,
        note: str | None,
        decided_at: str,
        supersedes: list[str] | None = None,
        queue_verdict: Mapping[str, Any] | None = None,
    ) -> tuple[str, str | None]:
        """Write the verdict's ``review_verdict`` record: its hash, and what to warn of once the queue committed it
        (None, or the record's append raised after writing it: :func:`hguard.audit.append_written`)."""
        assert self.audit is not None and record_id is not None
        redact = self.audit.redact
        record = {
            "request_id": record_id,
            "item_id": item_id,
            "decision_audit_id": row[0],
            "domain": row[1],
            "risk": row[2],
            "verdict": verdict,
            "label": verdict_label(verdict),
            "reviewer": reviewer,
            "corrected_answer": redacted(corrected_answer) if redact else corrected_answer,
            "note": redacted(note) if redact else note,
            "decided_at": decided_at,
            # what the reviewer was shown, hashed as the decision record's redacted fields are
            "reviewed_sha256": shown_sha256(*row[3:6]),
            "spot_check": bool(row[6]),  # judged as a spot-check of an accepted answer, or as a held one
        }
        if supersedes:  # verdicts on this item the log holds but the queue never committed
            record["supersedes"] = supersedes
        if queue_verdict is not None:  # the verdict the queue held without a record, which this one puts on record
            record["queue_verdict"] = {k: (redacted(v) if redact and k in ("corrected_answer", "note") else v)
                                       for k, v in queue_verdict.items()}
        try:
            receipt, failed = append_written(self.audit, record, kind="review_verdict")
        except Exception as e:  # an AuditError, or whatever else an append raised (a disk error surfacing raw, a sink's)
            raise AuditLogUnavailable.of(e,
                f"review queue {self.path}: the verdict on item {item_id!r} was not recorded because the audit "
                f"log {self.audit.path} could not be written ({e if isinstance(e, HGuardError) else error_text(e)}); "
                "the item is "
                + ("still pending" if queue_verdict is None else "as it was (its verdict in the queue only)")
                + ", fix the audit log and decide again"
            ) from e
        # on record though the append raised after writing it (the anchor, or a sink's own copy elsewhere, failed):
        # the queue commits the verdict, and the caller says what failed once it is committed
        return receipt.hash, None if failed is None else (
            sink_failed_after(f"the verdict {verdict} on review item {item_id!r}", receipt, failed) + "; the item is decided")

    # ---------------------------------------------------------------------------------------------------------
    # reading

    def get(self, item_id: str) -> ReviewItem | None:
        """The item with this id, pending or decided, or None."""
        if not isinstance(item_id, str):
            raise InputError(f"item_id must be a string, got {type(item_id).__name__}: {_show(item_id)}")
        with self._connection(f"read item {item_id!r}") as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else _item(row)

    def pending(
        self,
        domain: str | _NoDomain | None = None,
        order: Literal["risk", "time"] = "risk",
        limit: int | None = DEFAULT_LIMIT,
    ) -> list[ReviewItem]:
        """Items waiting for a verdict: ``order="risk"`` puts the riskiest first (unscored ones before all,
        since the guard could not judge them), ``order="time"`` the oldest first. ``domain=None`` means every
        domain, ``NO_DOMAIN`` only items without one."""
        if order == "risk":
            order_by = "risk IS NOT NULL, risk DESC, time, id"
        elif order == "time":
            order_by = "time, id"
        else:
            raise InputError(f"order must be 'risk' or 'time', got {_show(order)}")
        where, params = self._domain_filter(domain)
        return self._select(f"status = 'pending'{where}", params, order_by, limit, "list pending items")

    def decided(
        self, domain: str | _NoDomain | None = None, limit: int | None = None, *, newest_first: bool = False
    ) -> list[ReviewItem]:
        """Items with a verdict (``item.verdict`` is set), oldest verdict first unless ``newest_first``."""
        where, params = self._domain_filter(domain)
        order_by = "decided_at DESC, id DESC" if newest_first else "decided_at, id"
        return self._select(f"status = 'decided'{where}", params, order_by, limit, "list decided items")

    def item_keys(self) -> list[ItemKey]:
        """Every item's id, decision id, domain and status (pending and decided), without its text: what
        :meth:`for_evaluation` and :meth:`evaluation_counts` read of the whole queue (a page load read every item
        whole for its counts: most of a 3.4 s load at 50,000 items)."""
        with self._connection("list the items") as conn:
            rows = conn.execute("SELECT id, audit_id, domain, status FROM review_items").fetchall()
        return [ItemKey(*row) for row in rows]

    def counts(self) -> dict[str | None, dict[str, int]]:
        """``{domain: {"pending": n, "decided": m}}``; items without a domain are under None."""
        out: dict[str | None, dict[str, int]] = {}
        with self._connection("count items") as conn:
            for domain, status, n in conn.execute(
                "SELECT domain, status, COUNT(*) FROM review_items GROUP BY domain, status"
            ):
                out.setdefault(domain, {"pending": 0, "decided": 0})[status] = n
        return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))

    @staticmethod
    def _domain_filter(domain: Any) -> tuple[str, tuple[Any, ...]]:
        if domain is None:
            return "", ()
        if domain is NO_DOMAIN:
            return " AND domain IS NULL", ()
        if not isinstance(domain, str) or not domain:
            raise InputError(f"domain must be a non-empty string, None or NO_DOMAIN, got {_show(domain)}")
        return " AND domain = ?", (domain,)

    def _select(
        self, where: str, params: tuple[Any, ...], order_by: str, limit: int | None, doing: str
    ) -> list[ReviewItem]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InputError(f"limit must be a non-negative integer or None, got {_show(limit)}; e.g. 100")
        sql = f"SELECT {_COLUMNS} FROM review_items WHERE {where} ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connection(doing) as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_item(r) for r in rows]
