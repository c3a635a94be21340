"""Retiring decided review items: :meth:`ReviewQueue.archive <hguard.review.queue.ReviewQueue.archive>` and
``hguard review archive``.

The queue gains a row (about 2 KB) for every answer held for review or spot-checked, for the life of the deployment.
Archiving moves the items decided before a date, whole (every column the queue held: question, context, answer,
signals, reasons, the verdict, reviewer, corrected answer and note, the ids of the decision and verdict records), to
a JSONL file (one item a line, mode 0640, written once and never rewritten), and removes their rows. What the rest of
hguard needs of an archived item stays in the queue, in the table ``review_archived`` (its id, its decision's id,
its verdict record's id, its domain and which file holds it, some 150 bytes): a guard start does not put it back from its
decision record (:meth:`ReviewQueue.absent` counts it as queued), the monitor counts it as queued and its verdict as
committed (its figures read the audit chain's verdict records, which archiving does not touch), and
``hguard review export`` reads the archived items back from their files (:meth:`ReviewQueue.archived_items`).

Open (pending) items are never archived. With the queue's audit log, neither is a decided item whose verdict is not
the audit chain's (decided without the log, its record cut, the row edited: :func:`~hguard.review.queue.not_in_chain`)
or whose row no longer holds what its decision record does (:meth:`ReviewQueue.unlike_its_decision`): the monitor
names those with what to do, so they stay where it reads them.

Crash safety. The archive is first entered in ``review_archives`` (committed), then written to ``FILE.partial``
(fsync'ed) and linked to its name (never over an existing file), then one transaction removes the rows the file holds
(each only if it is still what the file says), enters them in ``review_archived`` and marks the archive done with the
file's sha256. A process killed (or stopped by a Ctrl-C) before the link leaves every item in the queue; one stopped
after it leaves the file and every row: the next archive run finishes that archive first (from the file), so nothing
is lost and nothing is held twice. A run stopped after its archive is done, before its ``review_archive`` audit record
is written, leaves the archive unrecorded: each run writes the records the log (with its rotated archives) holds none
of, by file and sha256, with ``recorded_late`` true. Only one archive runs on a queue at a time (an ``flock`` on ``QUEUE.archive.lock``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._audit_export import period
from .._audit_files import _fsync_dir
from .._json import canonical_json
from .._privacy import FILE_MODE
from .._resources import expand_home, refuse_own_file
from ..audit import append_written, sink_failed_after
from ..errors import InputError, ReviewQueueError, error_text
from ._items import ReviewItem, _now, _show
from ._store import _COLUMNS, _item

if TYPE_CHECKING:
    from .queue import ReviewQueue

COLUMNS = tuple(c.strip() for c in _COLUMNS.split(","))
_JSON_COLUMNS = ("signals", "reasons")  # stored as JSON text in the queue; written as JSON values in the archive
_DECIDED_BEFORE = "decided_before (--decided-before)"


class ArchivedItem(NamedTuple):
    """What the queue keeps of an archived item (``review_archived``)."""

    id: str
    audit_id: str
    verdict_audit_id: str | None  # the review_verdict record of its verdict (None: decided without the audit log)
    archive: Path  # the file that holds it whole
    domain: str | None = None  # its domain (None: none, or not kept: see domain_kept)
    domain_kept: bool = False  # False for an item archived by an hguard that kept no domain (in its file only)


@dataclass
class ArchiveSummary:
    """What :meth:`ReviewQueue.archive` did."""

    queue: str
    decided_before: str  # the cut-off, UTC
    path: str | None  # the archive written; None when no item was archived (no file is written then)
    n_archived: int
    held: list[tuple[str, str]] = field(default_factory=list)  # decided before the cut-off, kept in the queue: (id, why)
    finished: list[tuple[str, int]] = field(default_factory=list)  # interrupted archives finished first: (file, items)
    dropped: list[str] = field(default_factory=list)  # interrupted before their file was written: items left queued
    size_before: int = 0  # bytes of the queue file and its WAL
    size_after: int = 0
    vacuumed: bool = False  # the freed pages returned to the file system (else reused by new items)
    audit_records: list[str] = field(default_factory=list)  # the review_archive records written, one per archive
    audit_failed: list[str] = field(default_factory=list)  # why an archive's record could not be written
    # of audit_records, those of archives done earlier whose record was missing (their run stopped before it): (id, file)
    recorded_late: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, monitor: str = "hguard monitor --policy FILE") -> str:
        """What the run did, in lines; ``monitor``: the monitor command its hint names (with the CLI's own options)."""
        lines = [f"hguard review: finished an archive an earlier run left half done: {n} item(s) in {p}"
                 for p, n in self.finished]
        lines += [f"hguard review: an earlier archive run stopped before writing {p}: its items stayed in the queue"
                  for p in self.dropped]
        if self.path is not None:
            lines.append(f"hguard review: archived {self.n_archived} decided item(s) (decided before {self.decided_before}) "
                         f"to {self.path}; a guard start does not put them back, the monitor still counts their "
                         "verdicts, `hguard review export` reads them from the file (keep it)")
        else:
            lines.append(f"hguard review: no decided item to archive (decided before {self.decided_before})")
        lines.append(f"hguard review: the queue {self.queue} (with its WAL) went from {self.size_before:,} to "
                     f"{self.size_after:,} bytes" + ("" if self.vacuumed or self.path is None else
                                                    " (not compacted: another process held it; the freed space is "
                                                    "reused for new items)"))
        if self.audit_records:
            lines.append(f"hguard review: recorded in the audit log: {', '.join(self.audit_records)} (review_archive)")
        lines += [f"hguard review: recorded late: {rid} of {p} (done earlier, its record missing: a run stopped before "
                  "writing it, a log that refused it, or an hguard that wrote none)" for rid, p in self.recorded_late]
        lines += [f"hguard review: warning: {why}" for why in self.audit_failed]
        if self.held:
            lines.append(f"hguard review: {len(self.held)} decided item(s) stay in the queue (`{monitor}` "
                         "names each with what to do):")
            lines += [f"  {item_id}: {why}" for item_id, why in self.held[:20]]
            if len(self.held) > 20:
                lines.append(f"  ... and {len(self.held) - 20} more")
        return "\n".join(lines)


def cutoff(value: Any) -> datetime:
    """``decided_before`` as a UTC time: an ISO date (midnight UTC) or date and time (UTC unless it names a zone), or a
    datetime (naive: UTC). A bad value is one line naming it and the fix."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str):
        raise InputError(f"{_DECIDED_BEFORE} must be an ISO date or time, got {type(value).__name__}: {_show(value)}; "
                         "pass e.g. 2026-01-01")
    when = period(value, _DECIDED_BEFORE)
    assert when is not None
    return when


def _decided_at(value: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def default_path(queue_path: Path) -> Path:
    """Where an archive goes without ``out``: beside the queue, named by the time of the run."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return queue_path.with_name(f"{queue_path.name}.archive-{stamp}.jsonl")


def _check_out(queue: ReviewQueue, out: Any) -> Path:
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise InputError(f"out (--out) must be a file path, got {type(out).__name__}: {_show(out)}; e.g. "
                         f"{default_path(queue.path).name}")
    path = expand_home(out, "out (--out)")
    refuse_own_file(path, {"review queue": queue.path, "audit log": queue.audit.path if queue.audit else None},
                    "out (--out)", example=default_path(queue.path).name)
    own = queue.path.absolute()
    for name in _OWN_FILES:  # sqlite removes its -wal / -shm files, a guard start rewrites .pending.jsonl
        if path.absolute() == own.with_name(own.name + name) or path.resolve() == own.resolve().with_name(own.resolve().name + name):
            raise InputError(f"out (--out) {out} is the review queue's own {name} file, which the queue (or a guard "
                             f"start) rewrites or removes: the archive would be lost; pick another name, e.g. "
                             f"{default_path(queue.path)}; nothing was archived")
    return path.absolute()


#: the files beside a review queue that are the queue's own (its write-ahead log and shared memory, which sqlite
#: removes; the answers a guard start puts back and rewrites; the archive lock): never an archive's name
_OWN_FILES = ("-wal", "-shm", "-journal", ".pending.jsonl", ".archive.lock")


def _exists(path: Path, queue: ReviewQueue, summary: ArchiveSummary) -> InputError:
    finished = [p for p, _ in summary.finished if p == str(path)]
    return InputError(f"out (--out) {path} already exists" + (
        " (the archive an earlier run left half done, finished now)" if finished else "")
        + "; an archive is written to a new file only (nothing is written over an earlier archive or any other file): "
        f"pass a new name, e.g. {default_path(queue.path)}, or leave --out out to write one beside the queue; "
        + ("nothing else was archived" if finished else "nothing was archived"))


@contextmanager
def _one_at_a_time(queue: ReviewQueue) -> Iterator[None]:
    lock = queue.path.with_name(queue.path.name + ".archive.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    except OSError as e:
        raise ReviewQueueError(f"review queue {queue.path}: could not open {lock} to archive ({e}); check the "
                               "folder's permissions") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReviewQueueError(f"review queue {queue.path}: another archive run holds {lock}; wait for it to end, "
                                   "then run this one again (nothing was archived)") from None
        yield
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _as_line(row: Sequence[Any], archived_at: str) -> bytes:
    item = dict(zip(COLUMNS, row))
    for name in _JSON_COLUMNS:
        item[name] = json.loads(item[name])
    item["archived_at"] = archived_at
    return (canonical_json(item) + "\n").encode("utf-8")


def _row_of(item: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(json.dumps(item[c], ensure_ascii=False) if c in _JSON_COLUMNS else item[c] for c in COLUMNS)


def read_file(path: Path) -> tuple[dict[str, ReviewItem], str]:
    """The items an archive file holds (by id) and the file's sha256; ReviewQueueError naming the file and the line
    when it cannot be read as one."""
    digest = hashlib.sha256()
    items: dict[str, ReviewItem] = {}
    try:
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, 1):
                digest.update(raw)
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))
                    it = _item(_row_of(rec))
                except (ValueError, KeyError, TypeError) as e:
                    raise ReviewQueueError(f"review queue archive {path} line {lineno} is not an archived item ({e}); "
                                           "put back the file `hguard review archive` wrote") from None
                items[it.id] = it
    except OSError as e:
        raise ReviewQueueError(f"review queue archive {path} cannot be read ({e}); put it back where it was written "
                               "(the queue names it), or export with --skip-archived") from e
    return items, digest.hexdigest()


def _write(path: Path, data: bytes) -> None:
    """The archive file (``data``: its lines), whole or not at all: written to ``path.partial``, fsync'ed, then linked
    to ``path`` (never over an existing file)."""
    partial = path.with_name(path.name + ".partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     FILE_MODE)
    except FileExistsError:
        raise InputError(f"{partial} exists: another archive run is writing it, or one stopped while it did; remove it "
                         "if no `hguard review archive` is running, then run again; nothing was archived") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(partial, path)  # FileExistsError if the name was taken meanwhile: nothing is written over
    finally:
        partial.unlink(missing_ok=True)
    _fsync_dir(path.parent, what=f"the review queue archive {path.name}", error=ReviewQueueError)


def _is_written(path: Path, data: bytes) -> bool:
    """Whether ``path`` holds the archive ``data`` whole (linked by :func:`_write` before it stopped)."""
    try:
        with path.open("rb") as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def _complete(queue: ReviewQueue, n: int, path: Path) -> int:
    """Remove from the queue the rows archive ``n``'s file holds (each only while it still is what the file holds),
    enter them in ``review_archived`` and mark the archive done: one transaction. Returns how many it holds."""
    items, sha = read_file(path)
    held = 0
    with queue._connection(f"archive the items in {path}") as conn:  # noqa: SLF001
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item_id, it in items.items():
                row = conn.execute(f"SELECT {_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone()
                if row is not None and _item(row) != it:  # changed since it was read: it stays, and the file's copy
                    continue  # is not read (only the items entered in review_archived are)
                if row is None and conn.execute("SELECT 1 FROM review_archived WHERE id = ?", (item_id,)).fetchone():
                    continue
                conn.execute("DELETE FROM review_items WHERE id = ?", (item_id,))
                conn.execute("INSERT INTO review_archived (id, audit_id, verdict_audit_id, archive, domain, domain_kept) "
                             "VALUES (?, ?, ?, ?, ?, 1)",
                             (item_id, it.audit_id, it.verdict.audit_record_id if it.verdict else None, n, it.domain))
                held += 1
            conn.execute("UPDATE review_archives SET n_items = ?, sha256 = ?, done_at = ? WHERE n = ?",
                         (held, sha, _now(), n))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return held


def _record(queue: ReviewQueue, n: int, summary: ArchiveSummary, *, finished_interrupted: bool | None,
            late: bool = False) -> None:
    """Write archive ``n``'s ``review_archive`` record to the queue's audit log (none without one): the file, its
    sha256, how many items it took out of the queue, the cut-off, whether it finishes a run that was stopped (None:
    not known, for a record written ``late``) and ``recorded_late``, so an auditor reading the chain sees where the
    decided items went (the verdict records stay; the queue's rows do not). The archive is done either way: a record
    that cannot be written is said in :attr:`ArchiveSummary.audit_failed`, and the archive stays entered in the
    queue's ``review_archives`` with its sha256 (the next archive run writes it late: :func:`_record_missing`)."""
    if queue.audit is None:
        return
    with queue._connection("read the archive") as conn:  # noqa: SLF001
        path, decided_before, n_items, sha = conn.execute(
            "SELECT path, decided_before, n_items, sha256 FROM review_archives WHERE n = ?", (n,)).fetchone()
    record = {"queue": str(queue.path), "archive": path, "sha256": sha, "n_items": n_items,
              "decided_before": decided_before, "finished_interrupted": finished_interrupted, "recorded_late": late}
    what = f"the review_archive record of {path}"
    try:
        receipt, failed = append_written(queue.audit, record, kind="review_archive")
    except Exception as exc:  # noqa: BLE001 - the archive is done: say it, do not hide the result
        summary.audit_failed.append(f"{n_items} item(s) were archived to {path}, but its review_archive record could "
                                    f"not be written to the audit log {queue.audit.path} ({error_text(exc, 200)}); the "
                                    "queue's review_archives table holds the archive with its sha256")
        return
    summary.audit_records.append(receipt.id)
    if late:
        summary.recorded_late.append((receipt.id, path))
    if failed is not None:
        summary.audit_failed.append(sink_failed_after(what, receipt, failed))


def _finish_interrupted(queue: ReviewQueue, summary: ArchiveSummary) -> None:
    """Finish the archives an earlier run entered but did not mark done (it was killed): from the file when it was
    written, else forget the archive (its items never left the queue)."""
    with queue._connection("read the archives") as conn:  # noqa: SLF001
        open_ = conn.execute("SELECT n, path FROM review_archives WHERE done_at IS NULL ORDER BY n").fetchall()
    for n, name in open_:
        path = Path(name)
        partial = path.with_name(path.name + ".partial")
        if path.exists():  # linked whole (a copy left under .partial too, if it stopped before removing that)
            summary.finished.append((name, _complete(queue, n, path)))
            _record(queue, n, summary, finished_interrupted=True)
            partial.unlink(missing_ok=True)
            continue
        partial.unlink(missing_ok=True)
        with queue._connection("forget an archive never written") as conn:  # noqa: SLF001
            conn.execute("DELETE FROM review_archives WHERE n = ? AND done_at IS NULL", (n,))
        summary.dropped.append(name)


def _record_missing(queue: ReviewQueue, summary: ArchiveSummary) -> None:
    """Write the ``review_archive`` record of each done archive the audit log (with its rotated archives) holds none of,
    keyed by the archive's file and sha256, with ``recorded_late`` true: a run stopped (Ctrl-C, kill) between
    committing its archive and writing its record, a record the log refused (a full disk), or an archive made by an
    hguard that wrote no such record. The archive is done, so no later run came back to it, and the chain never said
    where its items went. A log that cannot be read (a rotated archive it names missing) is said in
    :attr:`ArchiveSummary.audit_failed`, and nothing is written: a record written again would say so twice."""
    if queue.audit is None:
        return
    with queue._connection("read the archives") as conn:  # noqa: SLF001
        done = conn.execute("SELECT n, path, sha256 FROM review_archives WHERE done_at IS NOT NULL ORDER BY n").fetchall()
    if not done:
        return
    try:
        recorded = {(rec.get("archive"), rec.get("sha256")) for rec in queue.audit.history()
                    if rec.get("kind") == "review_archive"}
    except Exception as exc:  # noqa: BLE001 - the archive run goes on: say it
        summary.audit_failed.append(f"the audit log {queue.audit.path} could not be read to find the archives it holds "
                                    f"no review_archive record of ({error_text(exc, 200)}); none was written late")
        return
    for n, path, sha in done:
        if (path, sha) not in recorded:
            _record(queue, n, summary, finished_interrupted=None, late=True)


def _held_back(queue: ReviewQueue, items: list[ReviewItem]) -> dict[str, str]:
    """The decided items to keep in the queue (id -> why): with an audit log, those whose verdict is not the chain's
    or whose row differs from its decision record, which the monitor names where it reads them (the live queue)."""
    from .queue import not_in_chain

    if queue.audit is None or not items:
        return {}
    wanted = {it.audit_id for it in items}
    verdict_ids = {it.verdict.audit_record_id for it in items if it.verdict is not None}
    decisions: dict[str, Mapping[str, Any]] = {}
    recorded: dict[str, Mapping[str, Any]] = {}
    for rec in queue.audit.history():  # the log and its archives: a decision made before a rotation is in one
        rid = rec.get("id")
        if not isinstance(rid, str):
            continue
        if rec.get("kind") == "review_verdict" and rid in verdict_ids:
            recorded[rid] = rec
        elif rid in wanted and rid not in decisions:
            decisions[rid] = rec
    out: dict[str, str] = {}
    for it in items:
        why = not_in_chain(it, recorded, str(queue.audit.path)) or queue.unlike_its_decision(it, decisions.get(it.audit_id))
        if why is not None:
            out[it.id] = why
    return out


def archive(queue: ReviewQueue, decided_before: Any, out: Any = None) -> ArchiveSummary:
    """See :meth:`ReviewQueue.archive`."""
    before = cutoff(decided_before).astimezone(timezone.utc)
    path = _check_out(queue, out) if out is not None else default_path(queue.path).absolute()
    summary = ArchiveSummary(queue=str(queue.path), decided_before=before.isoformat(), path=None, n_archived=0,
                             size_before=_size(queue.path))
    with _one_at_a_time(queue):
        _finish_interrupted(queue, summary)  # a rerun of a killed run (the same --out too) finishes it first
        _record_missing(queue, summary)  # ... and writes the records a run stopped before (or an older hguard)
        taken = path.exists() or path.is_symlink()
        if taken and not any(p == str(path) for p, _ in summary.finished):
            raise _exists(path, queue, summary)
        with queue._connection("list the decided items to archive") as conn:  # noqa: SLF001
            rows = [r for r in conn.execute(f"SELECT {_COLUMNS} FROM review_items WHERE status = 'decided' "
                                            "ORDER BY decided_at, id")
                    if (t := _decided_at(r[COLUMNS.index("decided_at")])) is not None and t < before]
        held = _held_back(queue, [_item(r) for r in rows])
        rows = [r for r in rows if r[0] not in held]
        summary.held = sorted(held.items())
        if rows:
            if taken:  # the archive an earlier run left half done, finished above: the others need a new file
                raise _exists(path, queue, summary)
            with queue._connection("enter the archive") as conn:  # noqa: SLF001
                earlier = conn.execute("SELECT n_items FROM review_archives WHERE path = ?", (str(path),)).fetchone()
                if earlier is not None:  # the name of an earlier archive, moved away since: export reads it there
                    raise InputError(f"out (--out) {path} is the name of an earlier archive of this queue ({earlier[0]} "
                                     "item(s)), no longer there: put that file back (`hguard review export` reads the "
                                     "items from it) and pass a new name; nothing was archived")
                n = conn.execute("INSERT INTO review_archives (path, decided_before, started_at) VALUES (?, ?, ?)",
                                 (str(path), summary.decided_before, _now())).lastrowid
            assert n is not None
            archived_at = _now()
            data = b"".join(_as_line(row, archived_at) for row in rows)
            try:
                _write(path, data)
            except BaseException as e:
                if _is_written(path, data):  # linked whole, stopped after (a Ctrl-C): the next run finishes it, as a
                    raise  # killed one's (the archive stays entered; forgotten, a rerun wrote its items again)
                # the file was not written: the archive is forgotten, its items stay queued
                with queue._connection("forget an archive never written") as conn:  # noqa: SLF001
                    conn.execute("DELETE FROM review_archives WHERE n = ? AND done_at IS NULL", (n,))
                if isinstance(e, OSError):
                    raise ReviewQueueError(f"review queue {queue.path}: could not write the archive {path} ({e}); check "
                                           "the folder's permissions and free space; nothing was archived") from e
                raise
            summary.n_archived = _complete(queue, n, path)
            summary.path = str(path)
            _record(queue, n, summary, finished_interrupted=False)
            summary.vacuumed = _compact(queue)
    summary.size_after = _size(queue.path)
    return summary


def _compact(queue: ReviewQueue) -> bool:
    """Give the freed pages back to the file system (VACUUM, then the WAL truncated); False when another process
    held the queue past its busy_timeout (the pages are then reused for new items)."""
    try:
        with queue._connection("compact the queue") as conn:  # noqa: SLF001
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except (ReviewQueueError, sqlite3.Error):
        return False
    return True


def archived(queue: ReviewQueue) -> dict[str, ArchivedItem]:
    """What the queue keeps of each archived item, by item id."""
    with queue._connection("list the archived items") as conn:  # noqa: SLF001
        rows = conn.execute("SELECT a.id, a.audit_id, a.verdict_audit_id, f.path, a.domain, a.domain_kept "
                            "FROM review_archived a JOIN review_archives f ON f.n = a.archive").fetchall()
    return {r[0]: ArchivedItem(r[0], r[1], r[2], Path(r[3]), r[4], bool(r[5])) for r in rows}


def archived_items(queue: ReviewQueue) -> list[ReviewItem]:
    """The archived items, whole, read from their files (oldest verdict first). ReviewQueueError when a file is missing,
    changed since it was written (its sha256) or lacks an item the queue says it holds."""
    with queue._connection("list the archives") as conn:  # noqa: SLF001
        files = conn.execute("SELECT n, path, sha256 FROM review_archives WHERE done_at IS NOT NULL ORDER BY n").fetchall()
        ids: dict[int, list[str]] = {}
        for item_id, n in conn.execute("SELECT id, archive FROM review_archived"):
            ids.setdefault(n, []).append(item_id)
    out: list[ReviewItem] = []
    for n, name, sha in files:
        if not ids.get(n):
            continue
        items, digest = read_file(Path(name))
        if digest != sha:
            raise ReviewQueueError(f"review queue archive {name} changed since it was written (sha256 {digest}, written "
                                   f"{sha}): put back the file `hguard review archive` wrote, or export with "
                                   "--skip-archived")
        lacking = [i for i in ids[n] if i not in items]
        if lacking:  # unreachable while the sha256 holds; said rather than assumed
            raise ReviewQueueError(f"review queue archive {name} lacks {len(lacking)} item(s) the queue archived there "
                                   f"(e.g. {lacking[0]!r}): put back the file `hguard review archive` wrote")
        out += [items[i] for i in ids[n]]
    return sorted(out, key=lambda it: ((it.verdict.decided_at if it.verdict else "") or "", it.id))
