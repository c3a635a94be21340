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

Limits: without a key, someone who can write the file can recompute every hash after an edit; with or
without one, cutting records off the end leaves a valid chain. Keep the latest receipt's ``hash`` elsewhere
(``verify(..., expect_head=...)``) or let the log append heads to an anchor file kept out of that person's
reach (``AuditLog(..., anchor=...)``, ``verify(..., anchor=...)``).

Imports only the standard library, so auditors' machines need no torch to read a log.
"""

from __future__ import annotations

import collections
import csv
import errno
import fcntl
import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any


from .errors import AuditError, AuditIntegrityError, InputError

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
_RESERVED_FIELDS = ("id", "seq", "time", "kind", "prev_hash", "hash", "mac", "nonfinite")
_CHAIN_FIELDS = ("id", "seq", "time", "kind", "prev_hash", "hash")
DEFAULT_LOCK_TIMEOUT_S = 60.0
# verify only needs the lock for a consistent file size; a hung writer must not stall an auditor for long.
_VERIFY_LOCK_TIMEOUT_S = 5.0
# Waiting writers poll the lock; a coarse interval would cap contended writers at a few appends/s each.
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


_THREAD_LOCKS: dict[tuple[int, int], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _reset_thread_locks_in_child() -> None:
    # A fork taken while another thread held a lock would leave it held forever in the child.
    global _THREAD_LOCKS_GUARD
    _THREAD_LOCKS.clear()
    _THREAD_LOCKS_GUARD = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_thread_locks_in_child)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _flock(fd: int, path: Path, mode: int, deadline: float | None) -> bool:
    """flock fd, polling until deadline (None: wait for ever); False when the deadline passed."""
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL_S)
        except OSError as e:
            raise AuditError(f"cannot lock audit log {path}: {e}; the filesystem must support flock") from e


@contextmanager
def _exclusive_fd(path: Path, timeout: float, *, create: bool) -> Iterator[tuple[int, bool]]:
    """Open the log for appending and hold it exclusively; yields (fd, created).

    The lock belongs to the file, not to the name: a per-process thread lock keyed by (device, inode), then
    flock on the log file itself. Hard links, symlinks and relative paths to one log therefore meet on one
    lock, and two names can never fork the chain. When the name was moved to another file while we waited
    (log rotation), the new file is opened and locked instead.
    """
    deadline = None if timeout < 0 else time.monotonic() + timeout
    while True:
        fd, created = _open_for_append(path, create)
        try:
            ident = _identity(os.fstat(fd))
            with _THREAD_LOCKS_GUARD:
                tlock = _THREAD_LOCKS.setdefault(ident, threading.Lock())
            wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            if not tlock.acquire(timeout=wait):
                raise AuditError(
                    f"could not lock audit log {path} within {timeout:g} s: another thread of this process holds "
                    "it; look for a hung append, or pass a larger lock_timeout"
                )
            try:
                if not _flock(fd, path, fcntl.LOCK_EX, deadline):
                    raise AuditError(
                        f"could not lock audit log {path} within {timeout:g} s: another process holds it; "
                        "look for a hung hguard process, or pass a larger lock_timeout"
                    )
                try:
                    now = _identity(os.stat(path))
                except FileNotFoundError:
                    now = None
                if now == ident:
                    yield fd, created
                    return
            finally:
                tlock.release()
        finally:
            os.close(fd)  # also releases the flock


def _open_for_append(path: Path, create: bool) -> tuple[int, bool]:
    flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        if create:
            try:
                return os.open(path, flags | os.O_CREAT | os.O_EXCL, _FILE_MODE), True
            except FileExistsError:
                pass
        return os.open(path, flags), False
    except OSError as e:
        raise AuditError(f"cannot open audit log {path} for appending: {e}; check its permissions") from e


def _existing(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"an audit log path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}")
    p = Path(path)
    if not p.exists():
        raise InputError(f"no audit log at {p}: the file does not exist; check the path (logs are .jsonl files)")
    if not p.is_file():
        raise InputError(f"audit log path {p} is not a regular file; pass the .jsonl file itself")
    return p


def _torn_message(path: Path, lineno: int, raw: bytes) -> str:
    return (
        f"torn: its {len(raw)} bytes have no trailing newline, a write cut short (a "
        "writer killed mid-write, or a full disk) and never acknowledged; the next append moves it aside into "
        f"{path.name}.torn-<time> and records that in the chain (or run `hguard audit repair {path}`)"
    )


def _damaged_message(lineno: int, raw: bytes, why: str) -> str:
    return (
        f"damaged: its {len(raw)} bytes end in a newline but are not a valid JSON record ({why}); "
        "a complete line was overwritten or edited after it was written. It is kept as evidence: compare it "
        "with a backup"
    )


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


def _mac_body(record: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in record.items() if k not in ("hash", "mac")}).encode("utf-8")


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

    ``key`` (bytes; by default the key configured in the environment, see :mod:`hguard.integrity`) adds a
    ``mac`` to every record, so that without the key no record can be edited, re-chained or forged
    unnoticed. ``anchor`` names a file to which each record's seq and hash are appended once it is on disk;
    kept where whoever can write the log cannot, it shows records cut off the end. ``last_receipt`` is the
    receipt of the newest record this object wrote.
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
        if str(path) == "" or self.path.is_dir():
            raise InputError(
                f"audit log path {str(path)!r} is a directory or empty; pass a file path such as audit.jsonl"
            )
        self.redact = bool(redact)
        self.lock_timeout = float(lock_timeout)
        self._key = _resolve_key(key)
        if anchor is not None and (not isinstance(anchor, (str, os.PathLike)) or str(anchor) == ""):
            raise InputError(f"anchor must be a file path or None, got {anchor!r:.80}; pass e.g. 'audit.anchor'")
        self.anchor = Path(anchor) if anchor is not None else None
        if self.anchor is not None and os.path.realpath(self.anchor) == os.path.realpath(self.path):
            raise InputError(f"anchor {self.anchor} is the audit log itself; name another file, on other storage")
        self.last_receipt: AuditReceipt | None = None
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

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, redact={self.redact}, keyed={self.keyed})"

    def append(self, record: dict[str, Any], *, kind: str = "decision") -> AuditReceipt:
        """Write one record at the end of the chain and return once it is on disk.

        A torn last line (a write that was cut short, so never acknowledged) is first moved aside and a
        ``recovery`` record says so in the chain; answers go on.
        """
        record_id, body, nonfinite = _prepare(record, kind, self.redact)
        with _exclusive_fd(self.path, self.lock_timeout, create=True) as (fd, created):
            if created:
                _fsync_dir(self.path.parent)
            self._saved = None
            prev_hash, seq = self._recover(fd)
            receipt = self._write_record(fd, record_id, kind, body, nonfinite, prev_hash, seq)
            self.last_receipt = receipt
        return receipt

    def recover(self) -> str | None:
        """Bring a torn or damaged end of the log back to a state records can chain onto (as ``append`` does).

        Returns the file the torn bytes were saved into, or None when nothing was moved aside.
        """
        if not self.path.exists():
            return None
        with _exclusive_fd(self.path, self.lock_timeout, create=False) as (fd, _):
            self._saved: str | None = None
            self._recover(fd)
            return self._saved

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

    # ------------------------------------------------------------------------------------------ internals

    def _write_record(
        self, fd: int, record_id: str, kind: str, body: dict[str, Any], nonfinite: list[str], prev_hash: str, seq: int
    ) -> AuditReceipt:
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
        if self._key is not None:
            from .integrity import mac_hex

            full["mac"] = mac_hex(self._key, _mac_body(full))
        digest = record_hash(full)
        full["hash"] = digest
        self._write(fd, (canonical_json(full) + "\n").encode("utf-8"), os.fstat(fd).st_size)
        if self.anchor is not None:
            self._write_anchor(seq, digest)
        return AuditReceipt(id=record_id, seq=seq, hash=digest, path=str(self.path))

    def _recover(self, fd: int) -> tuple[str, int]:
        """(hash, seq + 1) of the last record, first moving a torn tail aside or noting a damaged one."""
        size = os.fstat(fd).st_size
        if size == 0:
            return GENESIS_HASH, 0
        start, raw, terminated = _last_line(fd, size)
        if not terminated:
            return self._recover_torn(fd, start, raw, size)
        try:
            rec, _ = _parse_line(raw)
            tail = _chain_fields(rec)
        except ValueError as e:
            return self._note_damage(fd, start, raw, str(e))
        if self._key is None and "mac" in rec:
            raise AuditIntegrityError(
                f"the records of {self.path} carry a keyed MAC but no key is configured in this process; set "
                "HGUARD_KEY_FILE (or the policy's [integrity] key_file) to the log's key: an unkeyed record would "
                "break the keyed chain"
            )
        return tail

    def _recover_torn(self, fd: int, start: int, raw: bytes, size: int) -> tuple[str, int]:
        lineno = _line_number_at(fd, start)
        prev = self._previous_tail(fd, start)
        try:
            rec, canon = _parse_line(raw)
            complete = (
                canon == raw
                and rec.get("hash") == record_hash(rec)
                and prev is not None
                and (rec.get("prev_hash"), rec.get("seq")) == prev
            )
        except ValueError:
            complete = False
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
                else "the last line had no trailing newline: a write cut short, never acknowledged"
            ),
        }
        receipt = self._write_record(fd, uuid.uuid4().hex, "recovery", note, [], prev_hash, seq)
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
        self.last_receipt = receipt
        return receipt.hash, receipt.seq + 1

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

    def _write_anchor(self, seq: int, digest: str) -> None:
        anchor = self.anchor
        assert anchor is not None
        line = (canonical_json({"hash": digest, "seq": seq}) + "\n").encode("utf-8")
        try:
            fd = os.open(anchor, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
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
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            raise AuditError(
                f"record seq {seq} is in {self.path}, but its head could not be written to the anchor {anchor}: "
                f"{e}; check free space"
            ) from e
        finally:
            os.close(fd)


def _chain_fields(rec: Mapping[str, Any]) -> tuple[str, int]:
    """(hash, seq + 1) of a parsed record; ValueError when it lacks them."""
    last_hash, last_seq = rec.get("hash"), rec.get("seq")
    if not isinstance(last_hash, str) or type(last_seq) is not int:
        raise ValueError(f"hash={last_hash!r:.80} and seq={last_seq!r:.40}, so no record can be chained onto it")
    return last_hash, last_seq + 1


def _scan(path: Path, size: int | None = None) -> Iterator[tuple[int, dict[str, Any] | None, bool, Problem | None]]:
    """(line number, record or None, line is canonical, problem or None) for every line of path[:size]."""
    for lineno, raw, terminated, _ in _iter_lines(path, size):
        if not terminated:
            yield lineno, None, False, Problem(lineno, None, _torn_message(path, lineno, raw), torn=True)
            continue
        try:
            rec, canon = _parse_line(raw)
        except ValueError as e:
            yield lineno, None, False, Problem(lineno, None, _damaged_message(lineno, raw, str(e)), damaged=True)
            continue
        yield lineno, rec, canon == raw, None


def _iter_records(path: Path) -> Iterator[dict[str, Any]]:
    for _, rec, _, problem in _scan(path):
        if problem is not None:
            if problem.torn:
                return  # a torn tail, never acknowledged
            raise AuditIntegrityError(
                f"{path} line {problem.line}: {problem.message}; run `hguard audit verify {path}` to see what else is damaged"
            )
        yield rec  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------------------
# verify and repair


@dataclass(frozen=True)
class Problem:
    """One place where the chain is broken: ``line`` is 1-based, ``seq`` the record's own seq when readable.

    ``torn``: a last line without its newline (a write cut short, never acknowledged); ``damaged``: a complete
    line that is not a record (overwritten or edited: evidence, never moved).
    """

    line: int
    seq: int | None
    message: str
    torn: bool = False
    damaged: bool = False


@dataclass
class VerifyReport:
    """What :func:`verify` found: ``ok`` only when every line is a complete record correctly chained."""

    ok: bool
    n_records: int
    problems: list[Problem] = field(default_factory=list)
    path: str = ""
    head_seq: int | None = None
    head_hash: str | None = None
    key_id: str | None = None

    @property
    def torn(self) -> bool:
        """The last line is torn (the next append, or ``hguard audit repair``, moves it aside)."""
        return any(p.torn for p in self.problems)

    def summary(self) -> str:
        where = self.path or "audit log"
        macs = f"MACs checked with key {self.key_id}" if self.key_id else "no key: MACs not checked"
        head = f"head seq {self.head_seq} hash {self.head_hash}" if self.head_hash else "no records"
        if self.ok:
            return f"{where}: OK, {self.n_records} records, hash chain intact, {macs}; {head}"
        first = (
            f"{where}: FAILED, {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} "
            f"in {self.n_records} readable records ({macs})"
        )
        lines = [first]
        for p in self.problems:
            seq = f", seq {p.seq}" if p.seq is not None else ""
            lines.append(f"  line {p.line}{seq}: {p.message}" if p.line else f"  {p.message}")
        return "\n".join(lines)


def _snapshot_size(path: Path) -> int:
    # Under the writers' lock every line before the size we read is complete; a torn line found then is real.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return path.stat().st_size
    try:
        # A shared flock waits for a writer in progress; a hung writer must not stall an auditor for long.
        _flock(fd, path, fcntl.LOCK_SH, time.monotonic() + _VERIFY_LOCK_TIMEOUT_S)
        return os.fstat(fd).st_size
    except AuditError:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


_HEX64 = frozenset("0123456789abcdef")


def _check_head(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX64:
        raise InputError(
            f"{what} must be a record hash (64 lowercase hex digits), got {value!r:.80}; copy it from a receipt "
            "or from the 'head' that `hguard audit verify` prints"
        )
    return value


def _read_anchor(anchor: Path) -> tuple[dict[int, tuple[int, str]], list[Problem]]:
    """{seq: (anchor line, hash)} of an anchor file, and its unreadable lines as problems."""
    if not anchor.is_file():
        raise InputError(f"anchor file {anchor} does not exist or is not a file; pass the [audit] anchor file")
    heads: dict[int, tuple[int, str]] = {}
    problems: list[Problem] = []
    for lineno, raw, terminated, _ in _iter_lines(anchor):
        if not terminated:
            continue  # a head whose write was cut short: never acknowledged, the next write drops it
        try:
            rec, _ = _parse_line(raw)
            seq, digest = rec.get("seq"), _check_head(rec.get("hash"), "hash")
            if type(seq) is not int or seq < 0:
                raise ValueError(f"seq is {seq!r:.40}")
        except (ValueError, InputError) as e:
            problems.append(Problem(0, None, f"anchor {anchor} line {lineno} is not a head ({e}): it was edited"))
            continue
        if seq in heads and heads[seq][1] != digest:
            problems.append(
                Problem(0, seq, f"anchor {anchor} lines {heads[seq][0]} and {lineno} give seq {seq} two hashes")
            )
        heads[seq] = (lineno, digest)
    return heads, problems


def verify(
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    expect_head: str | None = None,
    anchor: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Check every line: its own hash, its link to the line before, its seq; report where each break is.

    ``key``: every record must carry a matching keyed MAC (see :mod:`hguard.integrity`). ``expect_head``: a
    record hash kept from a receipt; the log must still hold that record (else records were cut off the end).
    ``anchor``: a file the writer appended heads to; every head in it must be in the log.
    """
    p = _existing(path)
    if key is not None and not isinstance(key, bytes):
        raise InputError(f"key must be bytes or None, got {type(key).__name__}; load it with hguard.integrity.load_key")
    if expect_head is not None:
        expect_head = _check_head(expect_head, "expect_head")
    heads, problems = _read_anchor(Path(anchor)) if anchor is not None else ({}, [])
    size = _snapshot_size(p)
    n_records = 0
    prev_hash: str | None = GENESIS_HASH
    prev_seq: int | None = -1
    prev_line = 0
    head_seq: int | None = None
    head_hash: str | None = None
    found_expected = False
    anchored_seen: set[int] = set()
    if key is not None:
        from .integrity import key_id, mac_matches
    for lineno, rec, canonical, problem in _scan(p, size):
        if problem is not None:
            problems.append(problem)
            prev_hash, prev_seq, prev_line = None, None, lineno
            continue
        assert rec is not None
        n_records += 1
        seq = rec.get("seq")
        seq_ok = type(seq) is int
        msgs: list[str] = []
        missing = [f for f in _CHAIN_FIELDS if f not in rec]
        if missing:
            msgs.append(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if rec.get("hash") != record_hash(rec):
            msgs.append("its hash does not match its content: the record was edited after it was written")
        elif not canonical:
            msgs.append(
                "its hash matches but the line is not in canonical form (spacing, key order or duplicate keys "
                "changed): it was edited by hand"
            )
        if key is not None:
            if "mac" not in rec:
                msgs.append("it carries no MAC: it was written without the key, or forged")
            elif not mac_matches(key, _mac_body(rec), rec["mac"]):
                msgs.append(
                    "its MAC does not match: the record was edited or forged by someone without the key "
                    "(or written under another key)"
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
        digest = rec.get("hash") if isinstance(rec.get("hash"), str) else None
        if seq_ok and seq in heads:
            anchored_seen.add(seq)
            if heads[seq][1] != digest:
                msgs.append(
                    f"the anchor holds another hash for seq {seq} (anchor line {heads[seq][0]}): the record was "
                    "rewritten after it was written"
                )
        if expect_head is not None and digest == expect_head:
            found_expected = True
        if msgs:
            problems.append(Problem(lineno, seq if seq_ok else None, "; ".join(msgs)))
        prev_hash = digest
        prev_seq = seq if seq_ok else None
        prev_line = lineno
        head_seq, head_hash = (seq if seq_ok else None), digest
    if expect_head is not None and not found_expected:
        problems.append(
            Problem(
                0, None, f"no record has the expected head hash {expect_head}: records were cut off the end of the "
                "log, or the chain was rewritten"
            )
        )
    missing_heads = sorted(set(heads) - anchored_seen)
    if missing_heads:
        problems.append(
            Problem(
                0, missing_heads[0], f"{len(missing_heads)} head(s) in the anchor {anchor} are not in the log (seq "
                f"{missing_heads[0]}..{missing_heads[-1]}): records were cut off the end of the log or removed"
            )
        )
    return VerifyReport(
        ok=not problems, n_records=n_records, problems=problems, path=str(p), head_seq=head_seq, head_hash=head_hash,
        key_id=key_id(key) if key is not None else None,
    )


def _save_aside(path: Path, data: bytes) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    base = Path(f"{path}.torn-{stamp}")
    for i in range(1000):
        target = base if i == 0 else Path(f"{base}-{i}")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
        except FileExistsError:
            continue
        except OSError as e:
            raise AuditError(f"cannot save the torn tail of {path} into {target}: {e}; check the directory") from e
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


def repair(path: str | os.PathLike[str], *, key: bytes | None | str = _KEY_FROM_ENVIRONMENT) -> str | None:
    """Do now what the next append would: move a torn last line aside (recorded in the chain).

    Returns the saved file's path, or None when there was no torn line. A damaged complete line is kept
    where it is (it is evidence) and a record naming it is chained after it; edited or missing records are
    for a human to look at with ``hguard audit verify``.
    """
    p = _existing(path)
    try:
        return AuditLog(p, key=key).recover()
    except OSError as e:
        raise AuditError(f"cannot repair audit log {p}: {e}; check permissions of the file and its directory") from e


# --------------------------------------------------------------------------------------------------------------
# reading out


def show(
    path: str | os.PathLike[str],
    *,
    last: int | None = None,
    domain: str | None = None,
    route: str | None = None,
    problems: list[Problem] | None = None,
) -> list[dict[str, Any]]:
    """Records matching domain and route (when given), the last ``last`` of them when given, in file order.

    A line that is not a record (torn or damaged) raises AuditIntegrityError naming it, unless a ``problems``
    list is given: then each such line is added to it and reading goes on.
    """
    p = _existing(path)
    if last is not None and (type(last) is not int or last < 0):
        raise InputError(f"last must be a non-negative integer, got {last!r}; pass e.g. last=20")
    kept: collections.deque[dict[str, Any]] | list[dict[str, Any]]
    kept = collections.deque(maxlen=last) if last is not None else []
    for _, rec, _, problem in _scan(p):
        if problem is not None:
            if problems is None:
                raise AuditIntegrityError(f"{p} line {problem.line}: {problem.message}")
            problems.append(problem)
            continue
        assert rec is not None
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



def cli_main(argv: list[str]) -> int:
    """The ``hguard audit`` command; it lives in :mod:`hguard.cli.audit` (kept here for old imports)."""
    from .cli.audit import main

    return main(argv)
