"""The tamper-evident audit log: an append-only JSONL file in which every record carries the hash of the one before.

What the guard was asked, what it answered, which signals it saw and where it routed the answer is evidence.
This module keeps that evidence from being lost or quietly altered:

* Each record's ``hash`` is sha256 over its canonical JSON (sorted keys, no spaces, UTF-8) without the ``hash``
  field, and its ``prev_hash`` is the ``hash`` of the record before it (:data:`GENESIS_HASH` for the first). An
  edited, removed, moved or inserted record breaks the chain where it happened, and :func:`verify` names the
  line and ``seq``.
* :meth:`AuditLog.append` locks the log file itself (``flock``, plus a thread lock keyed by device and inode, so
  hard links and symlinks to one log share one lock), re-reads the last record under it, writes the line with
  one ``os.write`` on an ``O_APPEND`` descriptor and ``fsync`` s it before returning a receipt. Threads and
  processes can share one file, and a record whose receipt came back survives a killed process.
* A last line without its newline was torn by a writer killed mid-write and never acknowledged: the next
  ``append`` (or :func:`repair`) moves its bytes into ``<path>.torn-<timestamp>`` and writes a ``recovery``
  record saying so, then goes on. A complete line that is not a record was damaged after it was written: it
  is reported as damaged and kept where it is; a ``recovery`` record chained after it names it.
* With a key (:mod:`hguard.integrity`) every record carries ``mac``, HMAC-SHA256 over the record without
  ``hash`` and ``mac``; :func:`verify` given the key then catches edited, re-chained and forged records.

* :meth:`AuditLog.rotate` (``hguard audit rotate``, :func:`rotate` with the monitor's states and the review
  queue's check) archives the records so far beside the log and continues the chain in a fresh file whose
  first record (``log_continued``) links to the archive; :func:`verify` with ``archives=True`` checks them all.

Limits: without a key, someone who can write the file can recompute every hash after an edit; with or
without one, cutting records off the end leaves a valid chain. Keep the latest receipt's ``hash`` elsewhere
(``verify(..., expect_head=...)``) or let the log append heads to an anchor file kept out of that person's
reach (``AuditLog(..., anchor=...)``, ``verify(..., anchor=...)``).

Imports only the standard library, so auditors' machines need no torch to read a log. This module holds
the writer (:class:`AuditLog`), :func:`repair` and :func:`rotate` (its policy-aware part in ``_audit_rotate``);
the record format lives in ``_audit_records``, file
access and locking in ``_audit_files``, :func:`verify` in ``_audit_verify`` and :func:`show` /
:func:`export_csv` in ``_audit_export``, all importable from here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._audit_export import export_csv, show
from ._audit_files import (
    AppendedRecords,
    Problem,
    _exclusive_fd,
    _existing,
    _flock,
    _fsync_dir,
    _continued_archives,
    _first_record,
    _iter_records,
    _last_line,
    _line_number_at,
    _open_for_append,
    _pread_exact,
    _save_aside,
    folder_as_log,
    write_synced,
)
from ._audit_records import (
    CONTINUATION,
    GENESIS_HASH,
    REDACTED_FIELDS,
    _chain_fields,
    _mac_body,
    _parse_line,
    _prepare,
    _unsealed,
    _whole_record,
    canonical_json,
    record_hash,
)
from ._audit_verify import VerifyReport, verify
from ._numerics import finite_number
from ._privacy import FILE_MODE
from .errors import (AuditError, AuditIntegrityError, AuditKeyMismatch, AuditKeyRequired, InputError, NothingToArchive,
                     error_text, shown, strict_bool, warn_aside)

__all__ = [
    "CONTINUATION",
    "GENESIS_HASH",
    "REDACTED_FIELDS",
    "AuditLog",
    "AuditReceipt",
    "Problem",
    "Rotation",
    "VerifyReport",
    "canonical_json",
    "cli_main",
    "export_csv",
    "record_hash",
    "repair",
    "rotate",
    "show",
    "verify",
]

DEFAULT_LOCK_TIMEOUT_S = 60.0


_KEY_FROM_ENVIRONMENT = "environment"


def _resolve_key(key: Any) -> bytes | None:
    from .integrity import load_key

    if isinstance(key, str) and key == _KEY_FROM_ENVIRONMENT:
        return load_key()
    if key is None or isinstance(key, bytes):
        return key
    raise InputError(
        f"key must be bytes, None or 'environment', got {type(key).__name__}; load it with hguard.integrity.load_key"
    )


# --------------------------------------------------------------------------------------------------------------
# the log


@dataclass(frozen=True)
class AuditReceipt:
    """Proof that a record was written and fsync'ed: keep ``hash`` to detect later truncation of the log."""

    id: str
    seq: int
    hash: str
    path: str
    time: str | None = None  # the record's own time (what a later event citing it should name)


# how many of the receipts of the records it wrote last an AuditLog keeps, by id (AuditLog.receipt_of)
_RECEIPTS_KEPT = 1024
# how many lines from the log's end AuditLog.written_record reads back for a record this object wrote (other writers'
# records come after it too)
_WRITTEN_LOOKBACK = 4 * _RECEIPTS_KEPT
# records without a MAC a keyed writer looks past for the newest one with a MAC before it chains on
_KEY_LOOKBACK = 64


# an archived segment is read, never written: hguard leaves it read-only
ARCHIVE_MODE = 0o440
# how many rotations back a writer looks for the record it wrote last (it was away that long)
_ROTATION_HOPS = 16
_MAX_ARCHIVES = 100_000


@dataclass(frozen=True)
class Rotation:
    """What :meth:`AuditLog.rotate` did: the archived file (records ``first_seq``..``last_seq``) and the receipt of
    the ``log_continued`` record that now opens the log, chained onto the archive's last record."""

    archive: str
    first_seq: int
    last_seq: int
    receipt: AuditReceipt


class AuditLog:
    """An append-only, hash-chained JSONL audit log shared safely by threads and processes.

    ``redact=True`` stores ``{"sha256": ...}`` in place of every ``question``, ``answer``, ``context``,
    ``history``, ``error``, ``system_prompt`` and ``file_name`` value (at any depth), so the log proves what was said without holding it. The hash is of the UTF-8
    text (or of the canonical JSON for non-strings) and is unsalted: a short, guessable answer can be
    confirmed by hashing guesses.

    ``key`` (bytes; by default the key configured in the environment, see :mod:`hguard.integrity`) adds a
    ``mac`` to every record, so that without the key no record can be edited, re-chained or forged
    unnoticed. ``anchor`` names a file to which each record's seq and hash are appended once it is on disk;
    kept where whoever can write the log cannot, it shows records cut off the end. ``last_receipt`` is the
    receipt of the newest record this object wrote; :meth:`receipt_of` finds that of one of the latest it wrote by id.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        redact: bool = False,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
        key: bytes | None | str = _KEY_FROM_ENVIRONMENT,
        anchor: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InputError(
                f"an audit log path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}"
            )
        self.path = Path(path)
        if str(path) == "":
            raise InputError("audit log path is empty (''); pass a file path such as audit.jsonl")
        if self.path.is_dir():  # the one line `hguard audit` and the monitor say of a folder
            raise folder_as_log(self.path, "the policy's [audit] path or AuditLog's path")
        if self.path.exists() and not self.path.is_file():  # a FIFO hung the writer, /dev/null failed "Invalid argument"
            raise InputError(
                f"audit log path {str(path)!r} is not a regular file (a device, a pipe or a socket); pass a file path "
                "such as audit.jsonl")
        self.redact = strict_bool("AuditLog", "redact", redact)  # bool("no") redacted
        seconds = finite_number(lock_timeout)  # "x" failed as a bare ValueError; NaN or -1 were taken (no wait at all)
        if seconds is None or seconds < 0:
            raise InputError(f"lock_timeout must be a number of seconds, 0 or more, got {shown(lock_timeout, 60)}; "
                             f"e.g. {DEFAULT_LOCK_TIMEOUT_S:g}")
        self.lock_timeout = seconds
        self._key = _resolve_key(key)
        if anchor is not None and (not isinstance(anchor, (str, os.PathLike)) or str(anchor) == ""):
            raise InputError(f"anchor must be a file path or None, got {anchor!r:.80}; pass e.g. 'audit.anchor'")
        self.anchor = Path(anchor) if anchor is not None else None
        if self.anchor is not None and os.path.realpath(self.anchor) == os.path.realpath(self.path):
            raise InputError(f"anchor {self.anchor} is the audit log itself; name another file, on other storage")
        self.last_receipt: AuditReceipt | None = None
        self._receipts: OrderedDict[str, AuditReceipt] = OrderedDict()  # the latest written, by id (receipt_of)
        self._saved: str | None = None  # where the latest recovery put a torn tail
        self.last_recovery: dict[str, Any] | None = None  # the note of the latest recovery record this object wrote
        self._last_line: tuple[int, bytes, int] | None = None  # (offset, bytes, seq) of the newest line written here
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AuditError(
                f"cannot create the directory {self.path.parent} for audit log {self.path}: {e}; "
                "choose a writable location"
            ) from e

    @classmethod
    def from_policy(cls, policy: Any) -> "AuditLog":
        """The log a policy's ``[audit]`` table names, keyed by its ``[integrity]`` key (or the environment's)."""
        from .integrity import load_key

        cfg = policy.audit
        return cls(cfg.path, redact=cfg.redact, key=load_key(policy.integrity.key_file), anchor=cfg.anchor)

    @property
    def keyed(self) -> bool:
        """Whether records written here carry a keyed MAC."""
        return self._key is not None

    def unsealed(self, record: Mapping[str, Any]) -> str | None:
        """Why ``record`` (as read from this log) fails its own seal: its hash, and with this log's key its MAC;
        None when both hold. One record's check, for a reader acting on it (a verdict on a decision) without
        verifying the whole chain."""
        return _unsealed(record, self._key)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, redact={self.redact}, keyed={self.keyed})"

    def append(self, record: dict[str, Any], *, kind: str = "decision") -> AuditReceipt:
        """Write one record at the end of the chain and return once it is on disk.

        A torn last line (a write that was cut short, so never acknowledged) is first moved aside and a
        ``recovery`` record says so in the chain; answers go on.
        """
        receipt = self._append(record, kind)
        assert receipt is not None
        return receipt

    def receipt_of(self, record_id: str) -> AuditReceipt | None:
        """The receipt of the record ``record_id`` when this object wrote it to the log, among the latest 1024 it
        wrote (in any thread), else None. How a caller whose ``append`` raised tells whether the record is on disk all
        the same: an anchor that could not be written after it, or a subclass's own ``append`` that mirrors each record
        elsewhere and raised after ``super().append`` (the guard then reads its decision as decided, not delivered)."""
        return self._receipts.get(record_id)

    def written_record(self, record_id: str) -> dict[str, Any] | None:
        """The record ``record_id`` as the log holds it, when this object wrote it among the latest it wrote
        (:meth:`receipt_of`) and it is still that record: read back from the log's end (past the records written after
        it only, not the whole log), its hash the receipt's and its seal whole. None otherwise: another object's or
        process's record, one written too long ago, rotated into an archive, edited since, or no record of this log.
        A cheap look-up for a caller handed one of this log's record ids with a copy of what it says (an adapter's
        response metadata) that acts on it only when the log confirms it (:meth:`find` reads the whole log)."""
        receipt = self._receipts.get(record_id) if isinstance(record_id, str) else None
        if receipt is None:
            return None
        try:
            with open(self.path, "rb") as f:
                end = os.fstat(f.fileno()).st_size
                for _ in range(_WRITTEN_LOOKBACK):
                    if end <= 0:
                        return None
                    end, raw, _ = _last_line(f.fileno(), end)
                    try:
                        rec, _ = _parse_line(raw, canonical=False)
                    except ValueError:  # a torn or damaged line: not the record, look on
                        continue
                    seq = rec.get("seq")
                    if type(seq) is int and seq < receipt.seq:  # past it: the record is no longer here
                        return None
                    if seq == receipt.seq:
                        same = rec.get("id") == record_id and rec.get("hash") == receipt.hash
                        return rec if same and _unsealed(rec, self._key) is None else None
        except OSError:  # unreadable now: nothing confirmed
            return None
        return None

    def append_unless_written(self, record: dict[str, Any], *, kind: str, since: int,
                              written: Callable[[Mapping[str, Any]], bool]) -> AuditReceipt | None:
        """:meth:`append`, unless a record for which ``written`` holds was appended at or after byte ``since`` (the
        log's size when the caller began reading it): checked under the log's lock, so processes that read the log
        at once and each found a record missing write it once (several workers starting together each wrote the
        same late spot-check record). None when it was there."""

        def found(fd: int) -> bool:
            size = os.fstat(fd).st_size
            tail = _pread_exact(fd, size - since, since) if since < size else b""
            for raw in tail.split(b"\n"):
                try:
                    rec, _ = _parse_line(raw, canonical=False)
                except ValueError:
                    continue
                if written(rec):
                    return True
            return False

        return self._append(record, kind, unless=found)

    def _append(self, record: dict[str, Any], kind: str, unless: Callable[[int], bool] | None = None) -> AuditReceipt | None:
        record_id, body, nonfinite = _prepare(record, kind, self.redact)
        with _exclusive_fd(self.path, self.lock_timeout, create=True) as (fd, created):
            if created:
                _fsync_dir(self.path.parent, what=f"the new audit log {self.path.name}")
            self._saved = None
            try:
                self._check_own_last_line(fd)
                prev_hash, seq = self._recover(fd)
            except AuditError:  # AuditIntegrityError, or an anchor that could not be written
                if created:  # refused before anything was written: leave no empty log behind
                    self.path.unlink(missing_ok=True)
                raise
            if unless is not None and unless(fd):
                return None
            receipt = self._write_record(fd, record_id, kind, body, nonfinite, prev_hash, seq)
            self.last_receipt = receipt
        return receipt

    def check_writable(self) -> None:
        """Raise AuditIntegrityError (or AuditError), writing nothing, when this writer would be refused: the
        log cannot be opened for appending by this process (a read-only file or file system, its permissions; with no
        log yet, a folder it may not write in), the log's newest record carries a MAC this process's key does not
        reproduce (or no key is configured), the log's end does not hold the anchor's last head, or the anchor's
        folder does not exist (the checks every append makes; a guard makes them when it starts, before it answers
        anything, and the review site before it serves)."""
        if self.path.exists():  # opened as an append opens it, and closed: nothing is written
            os.close(_open_for_append(self.path, create=False)[0])
        elif not os.access(self.path.parent, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
            raise AuditError(
                f"cannot create audit log {self.path}: this process may not write in its folder "
                f"{self.path.parent}; check that folder's permissions, or put the log on writable storage"
            )
        if self.path.exists() and self.path.stat().st_size > 0:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                size = os.fstat(fd).st_size
                _, raw, terminated = _last_line(fd, size)
                try:
                    if not terminated:
                        raise ValueError("torn")
                    _chain_fields(_parse_line(raw, canonical=False)[0])
                except ValueError:  # recovered at the first append, unless the file is no log at all: refused now
                    self._check_is_log(fd, size)
                self._check_key_before(fd, size)  # past a torn or damaged last line, as append reads it
            finally:
                os.close(fd)
        if self.anchor is None:
            return
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._check_anchor(GENESIS_HASH, 0)
            return
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            start, raw, terminated = _last_line(fd, size)
            if not terminated:  # a torn tail: the record before it is the log's end
                prev = self._previous_tail(fd, start)
                if prev is not None:
                    self._check_anchor(*prev)
                return
            try:
                tail = _chain_fields(_parse_line(raw)[0])
            except ValueError:
                return  # a damaged last line: verify reports it, the next append records it
            self._check_anchor(*tail)
        finally:
            os.close(fd)

    def rotate(self, *, carry: Callable[[int], Mapping[str, Any]] | None = None,
               hashed: tuple[int, int, Any] | None = None) -> Rotation:
        """Archive the records written so far and go on in a fresh file, one chain across both.

        Under the log's lock (writers wait, then write to the fresh file): the log's end is checked as an append
        checks it (key, anchor; a torn tail is moved aside first), its bytes are kept under the name
        ``<stem>.<first seq>-<last seq><suffix>`` beside it (read-only; a hard link, so the log's name never
        goes missing), and the log's name then holds one ``log_continued`` record whose ``prev_hash`` and
        ``seq`` follow the archive's last record and which names the archive, its size and its sha256.
        ``carry(size)`` is called under the lock with the archived length and returns fields to add to that
        record (the monitor's states, which a guard replays from the newest file alone). ``hashed`` = (inode,
        n, a ``hashlib.sha256`` of the file's first n bytes) lets a caller hash the bulk before the lock. ``verify(...,
        archives=True)`` checks the archives and their links; a writer of another process that wrote to the
        archive finds its last record there and goes on. Raises NothingToArchive (an InputError) on a log holding
        nothing to archive.
        """
        if not self.path.exists():
            raise InputError(f"no audit log at {self.path} to rotate; check the path")
        with _exclusive_fd(self.path, self.lock_timeout, create=False) as (fd, _):
            self._saved = None
            self._check_own_last_line(fd)
            prev_hash, seq = self._recover(fd)
            size = os.fstat(fd).st_size
            first = _first_record(fd) or {}
            first_seq: int = first["seq"] if type(first.get("seq")) is int else 0
            if seq == 0 or (first.get("kind") == CONTINUATION and seq == first_seq + 1):
                raise NothingToArchive(f"audit log {self.path} holds no record since it was started or last rotated: "
                                       "nothing to archive")
            archive = self.path.with_name(f"{self.path.stem}.{first_seq}-{seq - 1}{self.path.suffix}")
            if archive.exists():
                raise AuditError(f"cannot archive {self.path} as {archive}: that file exists; move it away first")
            digest_bytes, done = hashlib.sha256(), 0
            if hashed is not None and hashed[0] == os.fstat(fd).st_ino and 0 <= hashed[1] <= size:
                done, digest_bytes = hashed[1], hashed[2].copy()  # only what was appended since is read here
            for pos in range(done, size, 1 << 20):
                digest_bytes.update(_pread_exact(fd, min(1 << 20, size - pos), pos))
            body = {"archive": archive.name, "archive_first_seq": first_seq, "archive_last_seq": seq - 1,
                    "archive_bytes": size, "archive_sha256": digest_bytes.hexdigest(),
                    **(dict(carry(size)) if carry is not None else {})}
            record_id, body, nonfinite = _prepare(body, CONTINUATION, self.redact, own=True)
            line, digest = self._line(record_id, CONTINUATION, body, nonfinite, prev_hash, seq)
            tmp = self.path.with_name(f".{self.path.name}.rotating-{uuid.uuid4().hex}")
            try:
                tfd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
                try:
                    self._write(tfd, line, 0)
                finally:
                    os.close(tfd)
                os.link(self.path, archive)  # the archive first: the log's own name always holds a log
            except (OSError, AuditError) as e:  # AuditError: the fresh log's first record could not be written (disk full)
                tmp.unlink(missing_ok=True)
                raise AuditError(f"cannot archive audit log {self.path} as {archive}: {e}; nothing was rotated and "
                                 "nothing was changed (the folder must allow hard links and new files, with room for "
                                 "the fresh log's first record)") from e
            try:
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent, what=f"the fresh audit log {self.path.name} and its archive {archive.name}")
            except OSError as e:
                raise AuditError(f"audit log {self.path} was archived as {archive} but the fresh log could not be "
                                 f"put in its place ({e}); the log is still whole under both names: rerun the rotation "
                                 f"after removing {archive}") from e
            try:
                os.chmod(archive, ARCHIVE_MODE)
            except OSError:
                pass  # read-only is a courtesy: the archive's sha256 in the chain is what holds it
            self._last_line = (0, line, seq)
            if self.anchor is not None:
                self._write_anchor(seq, digest)
            receipt = AuditReceipt(id=record_id, seq=seq, hash=digest, path=str(self.path))
            self.last_receipt = receipt
            return Rotation(str(archive), first_seq, seq - 1, receipt)

    def recover(self) -> str | None:
        """Bring a torn or damaged end of the log back to a state records can chain onto (as ``append`` does).

        Returns the file the torn bytes were saved into, or None when nothing was moved aside.
        """
        if not self.path.exists():
            return None
        with _exclusive_fd(self.path, self.lock_timeout, create=False) as (fd, _):
            self._saved = None
            self._recover(fd)
            return self._saved

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The records in file order (a torn last line, never acknowledged, is skipped; hashes are not checked)."""
        if self.path.exists():
            yield from _iter_records(self.path)

    def history(self, since: AppendedRecords | None = None) -> Iterator[Any]:
        """The records of the archives this log continues (beside it, oldest first; see :meth:`rotate`), then its
        own, as ``iter`` reads them: nothing is verified (:func:`verify` checks the chain; :func:`export_csv` marks
        each record with what it found). Raises AuditIntegrityError when an archive it names is not there.
        ``since``: an :class:`AppendedRecords` kept by a reader that asks again and again, which reads only what was
        appended since it last did (a rotated, truncated or edited file anew) and yields what its ``keep`` kept."""
        archives: list[Path] = []
        if self.path.exists():
            for archive, after in _continued_archives(self.path, limit=_MAX_ARCHIVES):
                if not archive.is_file():
                    raise AuditIntegrityError(
                        f"audit log {self.path} continues the archive {archive} (seq {after.get('archive_first_seq')}.."
                        f"{after.get('archive_last_seq')}), which is not beside it: put the archive back to read the "
                        "records before the rotation")
                archives.append(archive)
        if since is None:
            for archive in reversed(archives):
                yield from _iter_records(archive)
            yield from self
            return
        for archive in reversed(archives):
            yield from since.records(archive)
        if self.path.exists():
            yield from since.records(self.path)
        since.forget_unseen()

    def find(self, record_id: str) -> dict[str, Any] | None:
        """The first record whose ``id`` is record_id, or None."""
        for rec in self:
            if rec.get("id") == record_id:
                return rec
        return None

    # ------------------------------------------------------------------------------------------ internals

    def _write_record(
        self, fd: int, record_id: str, kind: str, body: dict[str, Any], nonfinite: list[str], prev_hash: str, seq: int
    ) -> AuditReceipt:
        when = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        line, digest = self._line(record_id, kind, body, nonfinite, prev_hash, seq, when)
        offset = os.fstat(fd).st_size
        self._write(fd, line, offset)
        self._last_line = (offset, line, seq)
        receipt = AuditReceipt(id=record_id, seq=seq, hash=digest, path=str(self.path), time=when)
        self._receipts[record_id] = receipt  # under the log's lock: on disk now, whatever follows
        while len(self._receipts) > _RECEIPTS_KEPT:
            self._receipts.popitem(last=False)
        if self.anchor is not None:
            try:
                self._write_anchor(seq, digest)
            except AuditError as exc:  # the record is in the log, only its head is not anchored: say which it is
                exc.receipt = receipt  # type: ignore[attr-defined]
                raise
        return receipt

    def _line(self, record_id: str, kind: str, body: dict[str, Any], nonfinite: list[str], prev_hash: str,
              seq: int, when: str | None = None) -> tuple[bytes, str]:
        """The record's line (canonical JSON, MAC and hash added) and its hash."""
        full = dict(body)
        full.update(
            id=record_id,
            kind=kind,
            seq=seq,
            time=when or datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            prev_hash=prev_hash,
        )
        if nonfinite:
            full["nonfinite"] = nonfinite
        if self._key is not None:
            from .integrity import mac_hex

            full["mac"] = mac_hex(self._key, _mac_body(full))
        digest = record_hash(full)
        full["hash"] = digest
        return (canonical_json(full) + "\n").encode("utf-8"), digest

    def _check_own_last_line(self, fd: int) -> None:
        """Refuse to write when the newest record this object wrote is no longer where it wrote it: the log was
        cut back, replaced by an older copy or deleted while this writer ran. Writing on would chain new records
        onto the shorter log as if nothing had been lost (with a key and no anchor, it would still verify)."""
        if self._last_line is None:
            return
        offset, line, seq = self._last_line
        size = os.fstat(fd).st_size
        if size >= offset + len(line) and _pread_exact(fd, len(line), offset) == line:
            return
        if self._in_archive(fd, offset, line, seq):  # the log was rotated since: the chain goes on in this file
            self._last_line = None
            return
        what = "holds no record" if size == 0 else f"is {size} bytes long"
        raise AuditIntegrityError(
            f"audit log {self.path} {what} and no longer holds record seq {seq}, which this writer wrote at byte "
            f"{offset}: it was cut back, replaced or deleted while the writer ran; nothing was written. "
            f"`hguard audit verify {self.path}` says what it holds: restore the log from a copy, or, to start "
            "a new log on purpose, start a new writer (restart the guard)")

    def _in_archive(self, fd: int, offset: int, line: bytes, seq: int) -> bool:
        """Whether the line this writer wrote last stands where it wrote it in an archive the log (opened as
        ``fd``) continues, following ``log_continued`` records back through up to ``_ROTATION_HOPS`` rotations."""
        first = _first_record(fd)
        if first is None:
            return False
        try:
            for archive, after in _continued_archives(self.path, first, limit=_ROTATION_HOPS):
                if seq >= after["seq"]:
                    return False
                try:
                    afd = os.open(archive, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:
                    return False
                try:
                    if _pread_exact(afd, len(line), offset) == line:
                        return True
                finally:
                    os.close(afd)
        except (AuditIntegrityError, OSError):
            return False
        return False

    def _recover(self, fd: int) -> tuple[str, int]:
        """(hash, seq + 1) of the last record, first moving a torn tail aside or noting a damaged one."""
        size = os.fstat(fd).st_size
        if size == 0:
            self._check_anchor(GENESIS_HASH, 0)
            return GENESIS_HASH, 0
        start, raw, terminated = _last_line(fd, size)
        if not terminated:
            self._check_is_log(fd, size)  # before the torn tail is moved: another file is left as it is
            self._check_key_before(fd, start)  # before the torn tail is moved: a refused writer changes nothing
            return self._recover_torn(fd, start, raw, size)
        try:
            rec, _ = _parse_line(raw)
            tail = _chain_fields(rec)
        except ValueError as e:
            self._check_is_log(fd, size)
            self._check_key_before(fd, start)  # the newest readable record decides whether this writer may chain on
            return self._note_damage(fd, start, raw, str(e))
        if "mac" in rec or self._key is None:  # the record just read says whose log this is
            self._check_key(rec)
        else:  # a keyed writer looks past records without a MAC for the newest one with one
            self._check_key_before(fd, start)
        self._check_anchor(*tail)
        return tail

    def _check_is_log(self, fd: int, size: int) -> None:
        """AuditError, before anything is changed, when the file whose last line is torn or damaged holds nothing an
        audit log would: no line that is or looks like a record (every record holds "prev_hash"), and not merely
        blank or a first record cut short. The audit path then names another file (a wrong path, a symlink to it):
        recovering it as a log moved its last line aside and appended records to it (a red team's trial)."""
        marker, overlap, pos, blank_only = b'"prev_hash"', len(b'"prev_hash"') - 1, 0, True
        while pos < size:
            chunk = _pread_exact(fd, min(1 << 20, size - pos), pos)
            if marker in chunk:
                return
            blank_only = blank_only and not chunk.strip()
            pos += max(len(chunk) - overlap, 1) if pos + len(chunk) < size else len(chunk)
        if blank_only:
            return
        content = _pread_exact(fd, size, 0).strip() if size <= (1 << 20) else b""
        if content.startswith(b'{"') and b"\n" not in content:  # one line, cut short: a first record, if not whole JSON
            try:
                json.loads(content)
            except ValueError:
                return
        raise AuditError(
            f"{self.path} is not an hguard audit log: no line of it is or looks like an audit record; nothing was "
            "changed or written. Name a new file (or the log itself) as the audit path; if it was a log whose every "
            "record was overwritten, move it aside as evidence")

    def _create_anchor(self) -> None:
        """The anchor, empty, made durable in its folder before a new log's first record; AuditError if it cannot."""
        assert self.anchor is not None
        try:
            os.close(os.open(self.anchor, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE))
            _fsync_dir(self.anchor.parent, what=f"the new audit anchor {self.anchor.name}")
        except OSError as e:
            raise AuditError(f"cannot create the audit anchor {self.anchor} before the log's first record: {e}; check "
                             "that folder's space and permissions; nothing was written") from e

    def _check_anchor(self, tail_hash: str, next_seq: int) -> None:
        """Refuse to write when the anchor holds a head the log's end does not: records acknowledged (their
        heads anchored) were cut off, or the log was deleted or replaced. Writing on would start a chain that
        hides it (a new chain at seq 0, or a recovery record calling an acknowledged record a write cut short)."""
        if self.anchor is None:
            return
        if self.anchor.is_dir():
            raise AuditError(f"the audit anchor {self.anchor} is a folder; name a file in it (e.g. "
                             f"{self.anchor / 'audit.anchor'}) in the policy's [audit] anchor; nothing was written")
        try:
            fd = os.open(self.anchor, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            if not self.anchor.parent.is_dir():  # the head could not be written after the record: refuse now
                raise AuditError(
                    f"the folder of the audit anchor {self.anchor} does not exist, so no record's head could be "
                    f"anchored; create {self.anchor.parent} or fix the policy's [audit] anchor; nothing was written"
                ) from None
            if next_seq > 0:  # a log with records and no anchor: recreated silently, it hid every cut made meanwhile
                raise AuditIntegrityError(
                    f"the audit anchor {self.anchor} does not exist, but audit log {self.path} holds records (up to seq "
                    f"{next_seq - 1}): the anchor was deleted or moved, or its volume is not mounted; restore it "
                    f"(nothing was written). To anchor this log from its next record on, on purpose (the anchor is "
                    f"new in the policy), create the anchor empty first (`touch {self.anchor}`): `hguard audit verify` "
                    "then says which records it does not cover") from None
            # a new log: its anchor is made before its first record, so that a log with records and no anchor always
            # means the anchor went missing (made with the first head, a head that failed left a log no writer took)
            self._create_anchor()
            return
        except OSError as e:
            raise AuditError(f"cannot read the anchor {self.anchor} to check {self.path} against it: {e}; "
                             "check that file's permissions") from e
        try:
            start, raw, terminated = _last_line(fd, os.fstat(fd).st_size)
            if not terminated and start > 0:  # a torn head was never acknowledged: the one before it counts
                start, raw, terminated = _last_line(fd, start)
        finally:
            os.close(fd)
        try:
            head = json.loads(raw) if raw.strip() and terminated else None
            seq, digest = (int(head["seq"]), str(head["hash"])) if head is not None else (None, None)
        except (ValueError, KeyError, TypeError, RecursionError):
            return  # an edited last head: verify --anchor reports it
        if seq is None:
            return
        fix = (f"nothing was written; `hguard audit verify {self.path} --anchor {self.anchor}` says what is missing: "
               "restore the log from a copy, or, to start a new log on purpose, move the anchor aside with it")
        if seq >= next_seq:
            ends = "holds no record" if next_seq == 0 else f"ends at seq {next_seq - 1}"
            raise AuditIntegrityError(
                f"audit log {self.path} {ends}, but its anchor {self.anchor} holds the head of seq {seq}: "
                f"acknowledged records were cut off, or the log was deleted or replaced; {fix}")
        if seq == next_seq - 1 and digest != tail_hash:
            raise AuditIntegrityError(
                f"the last record of audit log {self.path} (seq {seq}) does not have the hash its anchor "
                f"{self.anchor} holds for it: the record was replaced; {fix}")

    def _unkeyed_error(self) -> AuditKeyRequired:
        return AuditKeyRequired(
            f"the records of {self.path} carry a keyed MAC but no key is configured in this process; set "
            "HGUARD_KEY_FILE (or the policy's [integrity] key_file) to the log's key: an unkeyed record would "
            "break the keyed chain (nothing was changed)"
        )

    def _check_key(self, rec: Mapping[str, Any]) -> None:
        """Refuse to chain onto ``rec`` (the log's newest record) when it carries a keyed MAC that this writer
        cannot reproduce: without a key, an unkeyed record would break the keyed chain; with another key (a
        stale ``key_file`` on a second server), every record it wrote would fail verification for good."""
        if "mac" not in rec:
            return
        if self._key is None:
            raise self._unkeyed_error()
        from .integrity import key_id, mac_matches

        if not mac_matches(self._key, _mac_body(rec), rec.get("mac")):
            raise AuditKeyMismatch(
                f"the newest record of {self.path} (seq {rec.get('seq')}) carries a MAC this process's key "
                f"(key id {key_id(self._key)}) does not reproduce: the log is written with another key (a second "
                "server with another key_file or HGUARD_KEY_FILE?), or that record was forged; nothing was "
                "written. Point the policy's [integrity] key_file at the log's key; `hguard audit verify` with "
                "the log's key says whether the record is genuine"
            )

    def _check_key_before(self, fd: int, end: int) -> None:
        """Raise when the newest record before ``end`` that carries a MAC (skipping lines that are no records,
        and, for a keyed writer, up to ``_KEY_LOOKBACK`` records without one: a MAC removed from the last record
        does not make a stale key welcome) has one this writer cannot reproduce."""
        pos, looked = end, 0
        while pos > 0 and looked < _KEY_LOOKBACK:
            prev_start, prev_raw, _ = _last_line(fd, pos)
            pos = prev_start
            try:
                rec, _ = _parse_line(prev_raw)
            except ValueError:
                continue
            if "mac" in rec or self._key is None:
                self._check_key(rec)
                return
            looked += 1

    def _recover_torn(self, fd: int, start: int, raw: bytes, size: int) -> tuple[str, int]:
        lineno = _line_number_at(fd, start)
        prev = self._previous_tail(fd, start)
        complete = _whole_record(raw, prev) is not None
        if not complete and prev is not None:  # an anchored record is no write cut short: refuse, change nothing
            self._check_anchor(*prev)
        if complete:
            # A whole, correctly chained record that only lost its newline (an acknowledged write never does):
            # restoring the newline keeps it in the chain rather than moving a possibly acknowledged record out.
            self._write(fd, b"\n", size)
            action, saved = "newline_restored", None
        else:
            saved = str(_save_aside(self.path, _pread_exact(fd, size - start, start)))
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            except OSError as e:
                raise AuditError(
                    f"cannot cut the torn tail off audit log {self.path} (its bytes are saved in {saved}): {e}; "
                    "check the disk"
                ) from e
            self._saved = saved
            action = "torn_tail_moved_aside"
        prev_hash, seq = self._recover(fd)  # the line before may itself need recovery
        note = {
            "action": action,
            "line": lineno,
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "saved_to": saved,
            "reason": (
                "the last line, a complete and correctly chained record, had lost its newline; it was restored"
                if saved is None
                else "the last line had no trailing newline: a write cut short, never acknowledged" + (
                    "" if self.anchor is not None else
                    " (no anchor was checked: had the file been cut after the write was acknowledged, only the "
                    "writers' anchor would show it)")
            ),
            # whether the writers' anchor was read before the line was moved aside (repair --no-anchor: the operator's word)
            "anchor_checked": self.anchor is not None,
        }
        receipt = self._write_record(fd, uuid.uuid4().hex, "recovery", note, [], prev_hash, seq)
        self.last_recovery = note
        self.last_receipt = receipt
        return receipt.hash, receipt.seq + 1

    def _previous_tail(self, fd: int, end: int) -> tuple[str, int] | None:
        """(hash, seq + 1) of the complete record ending at end, GENESIS for none, None when it is unreadable."""
        if end == 0:
            return GENESIS_HASH, 0
        _, raw, terminated = _last_line(fd, end)
        try:
            rec, _ = _parse_line(raw)
            return _chain_fields(rec) if terminated else None
        except ValueError:
            return None

    def _note_damage(self, fd: int, start: int, raw: bytes, why: str) -> tuple[str, int]:
        """Chain past damaged complete lines at the end, keeping them, with a record that names them."""
        damaged = [(start, raw, why)]
        pos, tail = start, None
        while pos > 0 and tail is None:
            prev_start, prev_raw, _ = _last_line(fd, pos)
            try:
                tail = _chain_fields(_parse_line(prev_raw)[0])
            except ValueError as e:
                damaged.append((prev_start, prev_raw, str(e)))
            pos = prev_start
        prev_hash, seq = tail or (GENESIS_HASH, 0)
        first_line = _line_number_at(fd, damaged[-1][0])
        note = {
            "action": "damaged_lines_kept",
            "lines": [first_line + i for i in range(len(damaged))],
            "sha256": [hashlib.sha256(r).hexdigest() for _, r, _ in reversed(damaged)],
            "reason": f"complete line(s) that are not valid records ({damaged[0][2]}); kept in place as evidence",
        }
        receipt = self._write_record(fd, uuid.uuid4().hex, "recovery", note, [], prev_hash, seq + len(damaged))
        self.last_recovery = note
        self.last_receipt = receipt
        return receipt.hash, receipt.seq + 1

    def _write(self, fd: int, line: bytes, size_before: int) -> None:
        try:
            write_synced(fd, line)
        except OSError as e:
            # Leave no half record for the next writer to trip over: this one was never acknowledged.
            try:
                os.ftruncate(fd, size_before)
                os.fsync(fd)
            except OSError:
                pass
            raise AuditError(
                f"could not write to audit log {self.path}: {e}; the record was not stored. "
                f"Check free space and permissions in {self.path.parent}"
            ) from e

    def _write_anchor(self, seq: int, digest: str) -> None:
        anchor = self.anchor
        assert anchor is not None
        line = (canonical_json({"hash": digest, "seq": seq}) + "\n").encode("utf-8")
        try:
            fd = os.open(anchor, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except OSError as e:
            raise AuditError(
                f"record seq {seq} is in {self.path}, but its head cannot be appended to the anchor {anchor}: {e}; "
                "check that file's permissions"
            ) from e
        try:
            if not _flock(fd, anchor, fcntl.LOCK_EX, time.monotonic() + self.lock_timeout):
                raise AuditError(f"could not lock the anchor {anchor} within {self.lock_timeout:g} s; look for a hung writer")
            size = os.fstat(fd).st_size
            if size and _pread_exact(fd, 1, size - 1) != b"\n":
                # A head whose write was cut short: it was never acknowledged, and the log holds the record.
                start, _, _ = _last_line(fd, size)
                os.ftruncate(fd, start)
                size = start
            write_synced(fd, line)
        except OSError as e:
            raise AuditError(
                f"record seq {seq} is in {self.path}, but its head could not be written to the anchor {anchor}: "
                f"{e}; check free space"
            ) from e
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------------------------
# repair


def append_written(audit: Any, record: dict[str, Any], *, kind: str,
                   append: Callable[..., Any] | None = None) -> tuple[Any, Exception | None]:
    """``audit.append(record, kind=kind)`` (or ``append(record, kind=kind)``, another of the log's writes, e.g. its
    :meth:`AuditLog.append_unless_written`) as ``(its receipt, None)``; when the append raised after the record reached
    the log, ``(the record's receipt, the error)``: the record is written, only what followed failed (its head could not
    be written to the anchor; an ``AuditLog`` subclass's own ``append`` that mirrors each record elsewhere raised after
    ``super().append``), which the caller says as such, never as a record missing. Told by a receipt of THIS record
    (the record's id is set here beforehand, as ``request_id``, when the record has none): the log's
    :meth:`AuditLog.receipt_of` for that id, or the ``receipt`` the log put on its own anchor error, either counted
    only when it names that id and is not the receipt the log held for it before this append (a sink that re-raises an
    error it kept from an earlier record, or a request id written before, is never read as this record written). The
    error is raised as it is, and left as it is, when nothing shows the record in the log (a sink raising before
    ``super().append``, a log of another kind without ``receipt_of``).

    The one way hguard's writers (the guard, the review queue, the monitor, the adapters' audit handlers) tell a
    record written from one that is not."""
    record_id = record.setdefault("request_id", uuid.uuid4().hex)  # the record's id: what the log's receipt is found by

    def receipt_of() -> Any:
        try:
            return audit.receipt_of(record_id)
        except Exception:  # a log of another kind, without receipt_of: read as not written
            return None

    before = receipt_of()  # a receipt already held for this id (an id written before) is no proof of this append
    try:
        return (audit.append if append is None else append)(record, kind=kind), None
    except Exception as exc:
        for written in (receipt_of(), getattr(exc, "receipt", None)):
            if written is not None and getattr(written, "id", None) == record_id and written != before:
                return written, exc
        raise


def append_warned(audit: Any, record: dict[str, Any], *, kind: str, what: str, stacklevel: int = 1,
                  append: Callable[..., Any] | None = None) -> Any:
    """:func:`append_written`, for a record that is no decision (a retrieval step, an adapter's call record, the
    monitor's): its receipt; one written whose append then raised stands, and what failed after it is said as a
    warning beside the caller's result, never in its place (:func:`hguard.errors.warn_aside`). ``what`` names the
    record in the warning; ``stacklevel`` as for ``warnings.warn``, counted from the caller."""
    receipt, failed = append_written(audit, record, kind=kind, append=append)
    if failed is not None:
        warn_aside(sink_failed_after(what, receipt, failed), stacklevel=stacklevel + 1)
    return receipt


def sink_failed_after(what: str, receipt: Any, exc: BaseException) -> str:
    """The one line that says a record is in the log though its ``append`` raised after writing it
    (:func:`append_written` returned the error)."""
    where = getattr(receipt, "path", None)
    return (f"{what} is written to the audit log{f' {where}' if where else ''} (record {receipt.id}), but the log's "
            f"append raised after writing it ({error_text(exc)}): the record stands; what failed is the step after it "
            "(the anchor, or an AuditLog subclass's own work after super().append)")


def repair(path: str | os.PathLike[str], *, key: bytes | None | str = _KEY_FROM_ENVIRONMENT,
           anchor: str | os.PathLike[str] | None = None) -> str | None:
    """Do now what the next append would: move a torn last line aside (recorded in the chain).

    Returns the saved file's path, or None when there was no torn line. A damaged complete line is kept
    where it is (it is evidence) and a record naming it is chained after it; edited or missing records are
    for a human to look at with ``hguard audit verify``. With ``anchor`` (the writer's), a torn line whose
    head the anchor holds was acknowledged, not a write cut short: it is refused, as the writer refuses it. A file
    with no line that is or looks like a record is no audit log: refused, left as it is.
    """
    return _repair(path, key=key, anchor=anchor)[0]


def _repair(path: str | os.PathLike[str], *, key: bytes | None | str = _KEY_FROM_ENVIRONMENT,
            anchor: str | os.PathLike[str] | None = None) -> tuple[str | None, dict[str, Any] | None]:
    """:func:`repair`, with the note of the recovery record it wrote (None when it wrote none): a restored
    newline moves nothing aside and still writes one."""
    p = _existing(path)
    log = AuditLog(p, key=key, anchor=anchor)
    try:
        return log.recover(), log.last_recovery
    except OSError as e:
        raise AuditError(f"cannot repair audit log {p}: {e}; check permissions of the file and its directory") from e


def rotate(path: str | os.PathLike[str], *, key: bytes | None | str = _KEY_FROM_ENVIRONMENT,
           anchor: str | os.PathLike[str] | None = None, queue: str | os.PathLike[str] | None = None) -> Rotation:
    """Archive the log beside it and go on in a fresh file, carrying the monitor's states (see
    :func:`hguard._audit_rotate.rotate`; ``hguard audit rotate``)."""
    from ._audit_rotate import rotate as rotate_log

    return rotate_log(path, key=key, anchor=anchor, queue=queue)


def cli_main(argv: list[str]) -> int:
    """The ``hguard audit`` command; it lives in :mod:`hguard.cli.audit` (kept here for old imports)."""
    from .cli.audit import main

    return main(argv)
