"""Rotating an audit log: its records so far archived beside it, the chain going on in a fresh file whose first
record carries what a guard replays from the log (the monitor's domain states). See :mod:`hguard.audit`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._audit_files import Problem, _scan
from ._audit_records import _mac_holds, record_hash
from ._audit_verify import archive_problems, verify
from ._monitor_state import REPLAYED, carried_states, replay
from .audit import _KEY_FROM_ENVIRONMENT
from .errors import AuditError, AuditIntegrityError

if TYPE_CHECKING:
    from .audit import Rotation

# a decision recorded just before a rotation may be a moment from its review item: asked again once after this
_QUEUE_RECHECK_S = 2.0


def rotate(path: str | os.PathLike[str], *, key: Any = _KEY_FROM_ENVIRONMENT, anchor: str | os.PathLike[str] | None = None,
           queue: str | os.PathLike[str] | None = None, alone: str | None = None) -> Rotation:
    """Archive the audit log at ``path`` beside it and continue its chain in a fresh file
    (:meth:`hguard.audit.AuditLog.rotate`), carrying the monitor's domain states into the fresh file's first
    record, so that a guard reading the fresh file alone keeps every tightening. The log must verify (with
    ``key`` and ``anchor``: the writer's). With ``queue`` (the review queue the log's guard fills), every answer
    the log holds for review, or picked for a spot-check, must be in the queue: a guard puts missing ones back
    from the log when it starts, and after the rotation it reads only the fresh file. ``alone``: how to rotate this
    log without the queue's check (the command line passes the command with the key file and anchor it used), named
    when the queue can never hold what the log promised. Returns the :class:`~hguard.audit.Rotation`; raises,
    changing nothing, when any of that fails."""
    from .audit import AuditLog

    log = AuditLog(path, key=key, anchor=anchor)
    log_key = log._key  # noqa: SLF001
    if not log.path.exists():
        from .errors import InputError

        raise InputError(f"no audit log at {log.path} to rotate; check the path")
    events: list[dict[str, Any]] = []
    wanted: list[str] = []

    def read(rec: dict[str, Any]) -> None:
        if rec.get("kind") in REPLAYED:
            events.append(rec)
        if queue is not None:
            from .review.queue import item_wanted

            if (want := item_wanted(rec)) is not None:
                wanted.append(want[0])

    report = verify(log.path, key=log_key, anchor=anchor, on_record=read)
    breaks = [p for p in report.problems if not p.torn]
    breaks += [Problem(0, None, msg) for msg in archive_problems(log.path)]  # the archives before it, by their hashes
    if breaks:
        where = f"line {breaks[0].line}: " if breaks[0].line else ""
        raise AuditIntegrityError(f"audit log {log.path} does not verify ({where}{breaks[0].message}); an archive "
                                  f"must hold a chain that verifies: see `hguard audit verify {log.path}`; nothing "
                                  "was rotated")
    if queue is not None and wanted:
        _check_queued(Path(queue), wanted, log.path, alone or f"`rotate({str(log.path)!r})` with the same key and "
                                                               "anchor, without queue")
    states = replay(events)
    point = report.resume

    def carry(size: int) -> dict[str, Any]:
        # under the log's lock: the records appended since the pass above, checked as verify checks them
        tail: list[dict[str, Any]] = []
        if point is not None:
            if os.stat(log.path).st_ino != point.inode:
                raise AuditError(f"audit log {log.path} was rotated by someone else meanwhile; nothing was rotated")
            prev = point.hash
            for lineno, rec, _, problem, _ in _scan(log.path, size, (point.offset, point.line), canonical=False):
                if problem is not None or rec is None or rec.get("prev_hash") != prev or rec.get("hash") != record_hash(rec) \
                        or (log_key is not None and not _mac_holds(log_key, rec)):
                    raise AuditIntegrityError(f"audit log {log.path} line {lineno}, written during the rotation, does not "
                                              "chain on; nothing was rotated: see `hguard audit verify`")
                prev = rec["hash"]
                if rec.get("kind") in REPLAYED:
                    tail.append(rec)
        return {"monitor_states": carried_states(replay(tail, states))}

    hashed = None
    if point is not None:  # the bulk of the archive's sha256, before the lock (writers wait only for the rest)
        import hashlib

        digest = hashlib.sha256()
        with open(log.path, "rb") as f:
            if os.fstat(f.fileno()).st_ino == point.inode:
                left = point.offset
                while left > 0 and (chunk := f.read(min(1 << 20, left))):
                    digest.update(chunk)
                    left -= len(chunk)
                hashed = (point.inode, point.offset - left, digest)
    return log.rotate(carry=carry, hashed=hashed)


def _check_queued(queue: Path, wanted: list[str], log: Path, alone: str) -> None:
    from .review.queue import ReviewQueue

    if not queue.exists():
        missing = set(wanted)
    else:
        q = ReviewQueue(queue)
        missing = q.absent(wanted)
        if missing:
            time.sleep(_QUEUE_RECHECK_S)
            missing = q.absent(missing)
    if missing:
        raise AuditError(
            f"{len(missing)} answer(s) the audit log {log} holds for review (or picked for a spot-check) are not in the "
            f"review queue {queue} (e.g. {sorted(missing)[0]}): a guard started on the policy puts them back from the "
            "log, which it no longer reads once the log is rotated; start a guard on this policy, then rotate (one a "
            "redacting log cannot put back, with no copy kept beside the queue, never will be: the guard's start names "
            f"it; review it from the application's own copy, then rotate the log alone: {alone}); nothing was rotated")
