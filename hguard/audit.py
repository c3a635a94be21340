"""The tamper-evident audit log: an append-only JSONL file in which every record carries the hash of the one before.

What the guard was asked, what it answered, which signals it saw and where it routed the answer is evidence.
This module keeps that evidence from being lost or quietly altered:

* Each record's ``hash`` is sha256 over its canonical JSON (sorted keys, no spaces, UTF-8) without the ``hash``
  field, and its ``prev_hash`` is the ``hash`` of the record before it (:data:`GENESIS_HASH` for the first). An
  edited, removed, moved or inserted record breaks the chain where it happened, and :func:`verify` names the
  line and ``seq``.
* :meth:`AuditLog.append` takes a file lock on ``<path>.lock``, re-reads the last record under it, writes the
  line with one ``os.write`` on an ``O_APPEND`` descriptor and ``fsync`` s it before returning a receipt. Threads
  and processes can share one file, and a record whose receipt came back survives a killed process.
* A last line torn by a writer killed mid-write is reported by :func:`verify`, refused by ``append`` (which
  will not chain onto it) and moved aside into ``<path>.torn-<timestamp>`` by :func:`repair`: never deleted.

Limits of a bare hash chain: someone who can write the file can recompute every hash after an edit, and
cutting records off the end leaves a valid chain. Keep the latest receipt's ``hash`` somewhere else (or ship
receipts off the machine) to catch that.

Imports only the standard library and filelock, so auditors' machines need no torch to read a log.
"""

from __future__ import annotations

import argparse
import collections
import csv
import errno
import hashlib
import json
import math
import os
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

from .errors import AuditError, AuditIntegrityError, HGuardError, InputError

__all__ = [
    "GENESIS_HASH",
    "REDACTED_FIELDS",
    "AuditLog",
    "AuditReceipt",
    "Problem",
    "VerifyReport",
    "canonical_json",
    "cli_main",
    "export_csv",
    "record_hash",
    "repair",
    "show",
    "verify",
]

GENESIS_HASH = "0" * 64
REDACTED_FIELDS = frozenset({"question", "answer", "context"})
# The log owns these; letting callers set them would let a caller forge chain positions.
_RESERVED_FIELDS = ("id", "seq", "time", "kind", "prev_hash", "hash", "nonfinite")
_CHAIN_FIELDS = ("id", "seq", "time", "kind", "prev_hash", "hash")
DEFAULT_LOCK_TIMEOUT_S = 60.0
# verify only needs the lock for a consistent file size; a hung writer must not stall an auditor for long.
_VERIFY_LOCK_TIMEOUT_S = 5.0
# filelock waits by polling; its 50 ms default would cap contended writers at ~20 appends/s each.
_LOCK_POLL_S = 0.002
_TAIL_CHUNK = 64 * 1024
_FILE_MODE = 0o640  # questions and answers can be private: no world read
_MAX_REQUEST_ID = 200


# --------------------------------------------------------------------------------------------------------------
# canonical form and hashing


def canonical_json(obj: Any) -> str:
    """The one serialisation hashes are computed over (and lines are written in)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the record's canonical JSON without its own ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity by default; we never write them, so a line holding one was not written by us.
    raise ValueError(f"{name} is not valid JSON")


def _parse_line(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The record on one line and its canonical bytes; ValueError when the line is not a JSON object."""
    rec = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    if not isinstance(rec, dict):
        raise ValueError(f"a JSON {type(rec).__name__}, not an object")
    # 1e999 parses as inf, which canonical_json refuses: that too is a line we did not write.
    return rec, canonical_json(rec).encode("utf-8")


# --------------------------------------------------------------------------------------------------------------
# preparing a caller's record


def _clean(value: Any, path: str, nonfinite: list[str], seen: set[int]) -> Any:
    """A JSON-safe copy of value: non-finite floats become None (noted in nonfinite), tuples lists."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(
                f"audit record field {path!r} holds a string that is not valid Unicode ({e.reason} at "
                f"position {e.start}: {value[max(0, e.start - 20):e.start + 20]!r}); remove the lone surrogate, "
                "e.g. with s.encode('utf-8', 'replace').decode()"
            ) from None
        return str.__str__(value)  # a plain str, so str-enums serialise as their value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            nonfinite.append(path)
            return None
        return float(value)
    if type(value).__module__.split(".")[0] in ("numpy", "torch") and hasattr(value, "tolist"):
        # Signals are often numpy/torch scalars; duck-typing converts them without importing either library.
        return _clean(value.tolist(), path, nonfinite, seen)
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in seen:
            raise InputError(f"audit record field {path!r} contains itself; pass a tree of plain values, not a cycle")
        seen.add(id(value))
        try:
            if isinstance(value, Mapping):
                out: dict[str, Any] = {}
                for k, v in value.items():
                    if not isinstance(k, str):
                        raise InputError(
                            f"audit record field {path!r} has a key {k!r} of type {type(k).__name__}; "
                            "JSON keys must be strings, so convert the key with str() first"
                        )
                    out[k] = _clean(v, f"{path}.{k}", nonfinite, seen)
                return out
            return [_clean(v, f"{path}[{i}]", nonfinite, seen) for i, v in enumerate(value)]
        finally:
            seen.discard(id(value))
    raise InputError(
        f"audit record field {path!r} holds a {type(value).__name__} ({value!r:.80}) that JSON cannot store; "
        "convert it to a str, number, bool, None, list or dict first"
    )


def _redacted(value: Any) -> dict[str, str]:
    data = value if isinstance(value, str) else canonical_json(value)
    return {"sha256": hashlib.sha256(data.encode("utf-8")).hexdigest()}


def _redact(value: Any) -> Any:
    # Any depth: a question nested under e.g. an llm_call payload is as private as a top-level one.
    if isinstance(value, dict):
        return {
            k: (_redacted(v) if k in REDACTED_FIELDS and v is not None else _redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _prepare(record: Any, kind: Any, redact: bool) -> tuple[str, dict[str, Any], list[str]]:
    """(id, body, nonfinite) for a caller's record, validated; chain fields are added under the lock."""
    if not isinstance(record, Mapping):
        raise InputError(
            f"an audit record must be a dict, got a {type(record).__name__}: {record!r:.100}; "
            "pass a dict of JSON-serialisable values"
        )
    if not isinstance(kind, str) or not kind.strip():
        raise InputError(
            f"audit record kind must be a non-empty string, got {kind!r}; "
            "pass e.g. kind='decision', 'review_verdict' or 'llm_call'"
        )
    for key in record:
        if not isinstance(key, str):
            raise InputError(
                f"audit record key {key!r} is a {type(key).__name__}; JSON keys must be strings, so convert it"
            )
    clash = [k for k in _RESERVED_FIELDS if k in record]
    if clash:
        k = clash[0]
        raise InputError(
            f"audit record sets {k!r} (= {record[k]!r:.80}), which the log sets itself; remove it "
            "(give a request id as 'request_id' and the kind as append(..., kind=...))"
        )
    request_id = record.get("request_id")
    if request_id is None:
        record_id = uuid.uuid4().hex
    elif isinstance(request_id, str) and request_id.strip() and len(request_id) <= _MAX_REQUEST_ID:
        record_id = request_id
    else:
        raise InputError(
            f"audit record request_id must be a non-empty string of at most {_MAX_REQUEST_ID} characters, "
            f"got {request_id!r:.100}; pass a string id, or leave request_id out to get a fresh uuid4"
        )
    nonfinite: list[str] = []
    body = {k: _clean(v, k, nonfinite, set()) for k, v in record.items() if k != "request_id"}
    if redact:
        body = _redact(body)
    return record_id, body, nonfinite


# --------------------------------------------------------------------------------------------------------------
# low-level file access


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    parts = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _last_line(fd: int, end: int) -> tuple[int, bytes, bool]:
    """(start offset, bytes without newline, ends with newline) of the last line of fd[:end], reading backwards."""
    if end <= 0:
        return 0, b"", False
    terminated = _pread_exact(fd, 1, end - 1) == b"\n"
    pos = end - 1 if terminated else end
    chunks: list[bytes] = []  # newest first; joined once, since a long line would make repeated concatenation quadratic
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        chunk = _pread_exact(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl != -1:
            chunks.append(chunk[nl + 1 :])
            return start + nl + 1, b"".join(reversed(chunks)), terminated
        chunks.append(chunk)
        pos = start
    return 0, b"".join(reversed(chunks)), terminated


def _line_number_at(fd: int, offset: int) -> int:
    """1-based number of the line starting at offset (only on error paths: it reads everything before)."""
    count, pos = 0, 0
    while pos < offset:
        chunk = _pread_exact(fd, min(1 << 20, offset - pos), pos)
        if not chunk:
            break
        count += chunk.count(b"\n")
        pos += len(chunk)
    return count + 1


def _iter_lines(path: Path, size: int | None = None) -> Iterator[tuple[int, bytes, bool, bool]]:
    """(line number, bytes without newline, ends with newline, is last) for each line of path[:size]."""
    with open(path, "rb") as f:
        if size is None:
            size = os.fstat(f.fileno()).st_size
        offset, lineno = 0, 0
        while offset < size:
            raw = f.readline(size - offset)
            if not raw:
                break
            lineno += 1
            offset += len(raw)
            terminated = raw.endswith(b"\n")
            yield lineno, (raw[:-1] if terminated else raw), terminated, offset >= size


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise AuditError(
            f"cannot open directory {directory} to make the new audit log's name durable: {e}; check its permissions"
        ) from e
    try:
        os.fsync(fd)
    except OSError as e:
        # Some filesystems cannot fsync a directory; there is nothing more we can do for them.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise AuditError(f"cannot fsync directory {directory}: {e}; check the disk") from e
    finally:
        os.close(fd)


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _reset_thread_locks_in_child() -> None:
    # A fork taken while another thread held a lock would leave it held forever in the child.
    global _THREAD_LOCKS_GUARD
    _THREAD_LOCKS.clear()
    _THREAD_LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_thread_locks_in_child)


def _lock_path(path: Path) -> str:
    # Resolved, so writers reaching the log through a symlink still meet on one lock file.
    return f"{os.path.realpath(path)}.lock"


@contextmanager
def _exclusive(path: Path, timeout: float) -> Iterator[None]:
    """Hold the log for writing: a per-process thread lock first (cheap), then flock on ``<path>.lock``."""
    key = os.path.realpath(path)
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    if not tlock.acquire(timeout=timeout if timeout >= 0 else -1):
        raise AuditError(
            f"could not lock audit log {path} within {timeout:g} s: another thread of this process holds it; "
            "look for a hung append, or pass a larger lock_timeout"
        )
    try:
        lock = FileLock(_lock_path(path), timeout=timeout, poll_interval=_LOCK_POLL_S)
        try:
            lock.acquire()
        except Timeout as e:
            raise AuditError(
                f"could not lock audit log {path} within {timeout:g} s: another process holds "
                f"{_lock_path(path)}; look for a hung hguard process, or pass a larger lock_timeout"
            ) from e
        except OSError as e:
            raise AuditError(
                f"cannot create the lock file {_lock_path(path)} for audit log {path}: {e}; "
                "the directory must be writable by every process that writes the log"
            ) from e
        try:
            yield
        finally:
            lock.release()
    finally:
        tlock.release()


def _existing(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"an audit log path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}")
    p = Path(path)
    if not p.exists():
        raise InputError(f"no audit log at {p}: the file does not exist; check the path (logs are .jsonl files)")
    if not p.is_file():
        raise InputError(f"audit log path {p} is not a regular file; pass the .jsonl file itself")
    return p


def _torn_message(path: Path, lineno: int, raw: bytes, terminated: bool) -> str:
    why = "is not valid JSON" if terminated else "has no trailing newline"
    return (
        f"line {lineno} of {path} is torn: its {len(raw)} bytes {why}, a write cut short (a writer killed "
        f"mid-write, or a full disk); run `hguard audit verify {path}` to check the rest of the chain, "
        f"then `hguard audit repair {path}` to move the torn bytes aside"
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


class AuditLog:
    """An append-only, hash-chained JSONL audit log shared safely by threads and processes.

    ``redact=True`` stores ``{"sha256": ...}`` in place of every ``question``, ``answer`` and ``context``
    value (at any depth), so the log proves what was said without holding it. The hash is of the UTF-8
    text (or of the canonical JSON for non-strings) and is unsalted: a short, guessable answer can be
    confirmed by hashing guesses.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, redact: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InputError(
                f"an audit log path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}"
            )
        self.path = Path(path)
        if str(path) == "" or self.path.is_dir():
            raise InputError(
                f"audit log path {str(path)!r} is a directory or empty; pass a file path such as audit.jsonl"
            )
        self.redact = bool(redact)
        self.lock_timeout = float(lock_timeout)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AuditError(
                f"cannot create the directory {self.path.parent} for audit log {self.path}: {e}; "
                "choose a writable location"
            ) from e

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, redact={self.redact})"

    def append(self, record: dict[str, Any], *, kind: str = "decision") -> AuditReceipt:
        """Write one record at the end of the chain and return once it is on disk."""
        record_id, body, nonfinite = _prepare(record, kind, self.redact)
        with _exclusive(self.path, self.lock_timeout):
            fd, created = self._open()
            try:
                if created:
                    _fsync_dir(self.path.parent)
                size = os.fstat(fd).st_size
                prev_hash, seq = self._chain_tail(fd, size)
                full = dict(body)
                full.update(
                    id=record_id,
                    kind=kind,
                    seq=seq,
                    time=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                    prev_hash=prev_hash,
                )
                if nonfinite:
                    full["nonfinite"] = nonfinite
                digest = record_hash(full)
                full["hash"] = digest
                self._write(fd, (canonical_json(full) + "\n").encode("utf-8"), size)
            finally:
                os.close(fd)
        return AuditReceipt(id=record_id, seq=seq, hash=digest, path=str(self.path))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The records in file order (a torn last line, never acknowledged, is skipped; hashes are not checked)."""
        if self.path.exists():
            yield from _iter_records(self.path)

    def find(self, record_id: str) -> dict[str, Any] | None:
        """The first record whose ``id`` is record_id, or None."""
        for rec in self:
            if rec.get("id") == record_id:
                return rec
        return None

    def _open(self) -> tuple[int, bool]:
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, _FILE_MODE), True
            except FileExistsError:
                return os.open(self.path, flags), False
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path} for appending: {e}; check its permissions") from e

    def _chain_tail(self, fd: int, size: int) -> tuple[str, int]:
        """(hash, seq + 1) of the last record on disk; refuses a torn tail rather than chain onto it."""
        if size == 0:
            return GENESIS_HASH, 0
        start, raw, terminated = _last_line(fd, size)
        try:
            if not terminated:
                raise ValueError("no trailing newline")
            rec, _ = _parse_line(raw)
        except ValueError:
            raise AuditIntegrityError(_torn_message(self.path, _line_number_at(fd, start), raw, terminated)) from None
        last_hash, last_seq = rec.get("hash"), rec.get("seq")
        if not isinstance(last_hash, str) or type(last_seq) is not int:
            lineno = _line_number_at(fd, start)
            raise AuditIntegrityError(
                f"the last record of {self.path} (line {lineno}) has hash={last_hash!r:.80} and "
                f"seq={last_seq!r:.40}, so no record can be chained onto it; run `hguard audit verify {self.path}` "
                "and restore the line from a backup"
            )
        return last_hash, last_seq + 1

    def _write(self, fd: int, line: bytes, size_before: int) -> None:
        try:
            view = memoryview(line)
            while view:
                # One write normally takes the whole line; looping only covers a short write (e.g. a signal).
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "write returned 0 bytes")
                view = view[n:]
            os.fsync(fd)
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


def _iter_records(path: Path) -> Iterator[dict[str, Any]]:
    for lineno, raw, terminated, is_last in _iter_lines(path):
        if not terminated:
            return  # a torn tail, never acknowledged
        try:
            rec, _ = _parse_line(raw)
        except ValueError as e:
            if is_last:
                return
            raise AuditIntegrityError(
                f"line {lineno} of {path} is not a valid JSON record ({e}); "
                f"run `hguard audit verify {path}` to see what is damaged"
            ) from None
        yield rec


# --------------------------------------------------------------------------------------------------------------
# verify and repair


@dataclass(frozen=True)
class Problem:
    """One place where the chain is broken: ``line`` is 1-based, ``seq`` the record's own seq when readable."""

    line: int
    seq: int | None
    message: str
    torn: bool = False


@dataclass
class VerifyReport:
    """What :func:`verify` found: ``ok`` only when every line is a complete record correctly chained."""

    ok: bool
    n_records: int
    problems: list[Problem] = field(default_factory=list)
    path: str = ""

    @property
    def torn(self) -> bool:
        """The last line is torn (``hguard audit repair`` fixes that); other problems need a human."""
        return any(p.torn for p in self.problems)

    def summary(self) -> str:
        where = self.path or "audit log"
        if self.ok:
            return f"{where}: OK, {self.n_records} records, hash chain intact"
        head = (
            f"{where}: FAILED, {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} "
            f"in {self.n_records} readable records"
        )
        lines = [head]
        for p in self.problems:
            seq = f", seq {p.seq}" if p.seq is not None else ""
            lines.append(f"  line {p.line}{seq}: {p.message}")
        return "\n".join(lines)


def _snapshot_size(path: Path) -> int:
    # Under the writers' lock every line before the size we read is complete; a torn line found then is real.
    try:
        with _exclusive(path, _VERIFY_LOCK_TIMEOUT_S):
            return path.stat().st_size
    except (AuditError, OSError):
        # A read-only copy (no lock file possible) or a hung writer: read what is there.
        return path.stat().st_size


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every line: its own hash, its link to the line before, its seq; report where each break is."""
    p = _existing(path)
    size = _snapshot_size(p)
    problems: list[Problem] = []
    n_records = 0
    prev_hash: str | None = GENESIS_HASH
    prev_seq: int | None = -1
    prev_line = 0
    for lineno, raw, terminated, is_last in _iter_lines(p, size):
        try:
            if not terminated:
                raise ValueError("no trailing newline")
            rec, canon = _parse_line(raw)
        except ValueError as e:
            if is_last:
                problems.append(Problem(lineno, None, _torn_message(p, lineno, raw, terminated), torn=True))
            else:
                problems.append(
                    Problem(lineno, None, f"not a valid JSON record ({e}): the line was damaged or edited")
                )
            prev_hash, prev_seq, prev_line = None, None, lineno
            continue
        n_records += 1
        seq = rec.get("seq")
        seq_ok = type(seq) is int
        msgs: list[str] = []
        missing = [f for f in _CHAIN_FIELDS if f not in rec]
        if missing:
            msgs.append(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if rec.get("hash") != record_hash(rec):
            msgs.append("its hash does not match its content: the record was edited after it was written")
        elif canon != raw:
            msgs.append(
                "its hash matches but the line is not in canonical form (spacing, key order or duplicate keys "
                "changed): it was edited by hand"
            )
        if prev_hash is not None and rec.get("prev_hash") != prev_hash:
            if prev_line == 0:
                msgs.append("prev_hash is not the genesis value: the record(s) before it were removed")
            else:
                msgs.append(
                    f"prev_hash does not match the hash of line {prev_line}: a record was removed, inserted or "
                    f"moved here, or line {prev_line} was rewritten with a recomputed hash"
                )
        if not seq_ok:
            msgs.append(f"seq is {seq!r:.40}, not an integer")
        elif prev_seq is not None and seq != prev_seq + 1:
            if prev_line == 0:
                msgs.append(f"seq {seq} on the first line, expected 0")
            else:
                msgs.append(f"seq {seq} follows seq {prev_seq} on line {prev_line}, expected {prev_seq + 1}")
        if msgs:
            problems.append(Problem(lineno, seq if seq_ok else None, "; ".join(msgs)))
        prev_hash = rec.get("hash") if isinstance(rec.get("hash"), str) else None
        prev_seq = seq if seq_ok else None
        prev_line = lineno
    return VerifyReport(ok=not problems, n_records=n_records, problems=problems, path=str(p))


def _save_aside(path: Path, data: bytes) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    base = Path(f"{path}.torn-{stamp}")
    for i in range(1000):
        target = base if i == 0 else Path(f"{base}-{i}")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
        except FileExistsError:
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
        return target
    raise AuditError(f"cannot find a free name for the torn tail of {path} (tried {base} and 999 more); clean them up")


def repair(path: str | os.PathLike[str]) -> str | None:
    """Move a torn last line into ``<path>.torn-<timestamp>`` and cut the log back to its last complete record.

    Returns the saved file's path, or None when the log already ends in a complete record. Only the torn tail
    is touched: edited or missing records are evidence, for a human to look at with ``hguard audit verify``.
    """
    p = _existing(path)
    try:
        with _exclusive(p, DEFAULT_LOCK_TIMEOUT_S):
            fd = os.open(p, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    return None
                start, raw, terminated = _last_line(fd, size)
                if terminated:
                    try:
                        _parse_line(raw)
                        return None
                    except ValueError:
                        pass
                tail = _pread_exact(fd, size - start, start)
                # Saved and fsync'ed before the truncate: a crash in between duplicates the bytes, never loses them.
                saved = _save_aside(p, tail)
                os.ftruncate(fd, start)
                os.fsync(fd)
                return str(saved)
            finally:
                os.close(fd)
    except OSError as e:
        raise AuditError(f"cannot repair audit log {p}: {e}; check permissions of the file and its directory") from e


# --------------------------------------------------------------------------------------------------------------
# reading out


def show(
    path: str | os.PathLike[str], *, last: int | None = None, domain: str | None = None, route: str | None = None
) -> list[dict[str, Any]]:
    """Records matching domain and route (when given), the last ``last`` of them when given, in file order."""
    p = _existing(path)
    if last is not None and (type(last) is not int or last < 0):
        raise InputError(f"last must be a non-negative integer, got {last!r}; pass e.g. last=20")
    kept: collections.deque[dict[str, Any]] | list[dict[str, Any]]
    kept = collections.deque(maxlen=last) if last is not None else []
    for rec in _iter_records(p):
        if domain is not None and rec.get("domain") != domain:
            continue
        if route is not None and rec.get("route") != route:
            continue
        kept.append(rec)
    return list(kept)


_LEADING_COLUMNS = (
    "seq", "time", "id", "kind", "domain", "route", "reasons", "model_fingerprint", "probe_id", "question", "answer",
)  # fmt: skip
_TRAILING_COLUMNS = ("nonfinite", "prev_hash", "hash")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value and prefix:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out)
    elif isinstance(value, dict) and not prefix:
        for k, v in value.items():
            _flatten(v, k, out)
    elif isinstance(value, (list, dict)):
        out[prefix] = canonical_json(value)
    else:
        out[prefix] = "" if value is None else value


def _column_order(name: str, first_seen: int) -> tuple[int, int, int]:
    root = name.split(".")[0]
    if root in _LEADING_COLUMNS:
        return (0, _LEADING_COLUMNS.index(root), first_seen)
    if name in _TRAILING_COLUMNS:
        return (2, _TRAILING_COLUMNS.index(name), first_seen)
    return (1, 0, first_seen)


def export_csv(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | IO[str], *, columns: Sequence[str] | None = None
) -> int:
    """Write the log as CSV, one row per record; nested dicts (signals, thresholds) become dotted columns.

    Lists become their JSON text. ``columns`` picks and orders columns (e.g. ``["id", "signals.entropy"]``);
    by default every column that occurs is written. Returns the number of rows written.
    """
    p = _existing(path)
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns) or not columns:
            raise InputError(
                f"columns must be a non-empty list of column names, got {columns!r:.120}; "
                "pass e.g. ['id', 'route', 'signals.entropy']"
            )
    if isinstance(out, (str, os.PathLike)) and Path(out).exists() and Path(out).resolve() == p.resolve():
        raise InputError(
            f"export target {out} is the audit log itself; writing it would destroy the log, pick another file"
        )

    # Two passes rather than holding every record: logs grow without bound.
    seen: dict[str, int] = {}
    n_records = 0
    for rec in _iter_records(p):
        n_records += 1
        flat: dict[str, Any] = {}
        _flatten(rec, "", flat)
        for name in flat:
            seen.setdefault(name, len(seen))
    if columns is None:
        header = sorted(seen, key=lambda c: _column_order(c, seen[c]))
    else:
        unknown = [c for c in columns if c not in seen]
        if unknown and n_records:
            raise InputError(
                f"column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} occur in no record of "
                f"{p}; available: {', '.join(sorted(seen))}"
            )
        header = list(columns)

    def write(f: IO[str]) -> int:
        writer = csv.DictWriter(f, fieldnames=header, restval="", extrasaction="ignore")
        writer.writeheader()
        rows = 0
        for rec in _iter_records(p):
            flat: dict[str, Any] = {}
            _flatten(rec, "", flat)
            writer.writerow(flat)
            rows += 1
        return rows

    if isinstance(out, (str, os.PathLike)):
        try:
            with open(out, "w", newline="", encoding="utf-8") as f:
                return write(f)
        except OSError as e:
            raise InputError(f"cannot write CSV to {out}: {e}; choose a writable path") from e
    return write(out)


# --------------------------------------------------------------------------------------------------------------
# command line: `hguard audit ...`


def _format_record(rec: dict[str, Any]) -> str:
    reasons = rec.get("reasons")
    if isinstance(reasons, list):
        reasons = "; ".join(str(r) for r in reasons)
    parts = [
        f"{rec.get('seq', '?')!s:>6}",
        str(rec.get("time", "?")),
        f"{rec.get('kind', '?')!s:<14}",
        str(rec.get("id", "?")),
    ]
    for key in ("domain", "route"):
        if rec.get(key) is not None:
            parts.append(f"{key}={rec[key]}")
    if reasons:
        parts.append(f"reasons={reasons}")
    return "  ".join(parts)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hguard audit", description="Read, check and repair a tamper-evident hguard audit log."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("verify", help="check the hash chain; exit 1 and say where when it is broken")
    p.add_argument("path", help="the audit log (.jsonl)")
    p = sub.add_parser("show", help="print records")
    p.add_argument("path", help="the audit log (.jsonl)")
    p.add_argument("--last", type=int, metavar="N", help="only the last N matching records")
    p.add_argument("--domain", metavar="D", help="only records of this domain")
    p.add_argument("--route", metavar="R", help="only records routed this way")
    p.add_argument("--json", action="store_true", help="one JSON record per line instead of a summary line")
    p = sub.add_parser("export", help="write the log as CSV (signals.* and thresholds.* become columns)")
    p.add_argument("path", help="the audit log (.jsonl)")
    p.add_argument("--csv", required=True, metavar="OUT", help="the CSV file to write")
    p.add_argument("--columns", metavar="C1,C2", help="comma-separated columns to write, in order")
    p = sub.add_parser("repair", help="move a torn last line aside into PATH.torn-<timestamp>")
    p.add_argument("path", help="the audit log (.jsonl)")
    return parser


def cli_main(argv: list[str]) -> int:
    """``hguard audit`` entry point: 0 on success, 1 when the log is broken, 2 on a usage or input error."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help and on bad usage; the caller decides about exiting
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command == "verify":
            report = verify(args.path)
            print(report.summary())
            if report.torn:
                print(f"the torn line can be moved aside with `hguard audit repair {args.path}`")
            return 0 if report.ok else 1
        if args.command == "show":
            for rec in show(args.path, last=args.last, domain=args.domain, route=args.route):
                print(canonical_json(rec) if args.json else _format_record(rec))
            return 0
        if args.command == "export":
            columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
            n = export_csv(args.path, args.csv, columns=columns)
            print(f"wrote {n} rows to {args.csv}")
            return 0
        saved = repair(args.path)
        if saved is None:
            print(f"nothing to repair: {args.path} ends in a complete record")
        else:
            print(
                f"moved the torn last line of {args.path} to {saved}; "
                f"run `hguard audit verify {args.path}` to check the rest of the chain"
            )
        return 0
    except InputError as e:
        print(f"hguard audit: error: {e}", file=sys.stderr)
        return 2
    except HGuardError as e:
        print(f"hguard audit: error: {e}", file=sys.stderr)
        return 1
