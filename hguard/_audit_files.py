"""Audit log files: reading lines (forwards and backwards), locking a log by file identity, appending,
and the problems a line can have (torn, damaged). See :mod:`hguard.audit`."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._audit_records import CONTINUATION, _parse_line
from ._privacy import FILE_MODE
from .errors import AuditError, AuditIntegrityError, HGuardError, InputError

# Waiting writers poll the lock; a coarse interval would cap contended writers at a few appends/s each.
_LOCK_POLL_S = 0.002
_TAIL_CHUNK = 64 * 1024


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


def write_synced(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a short write, e.g. after a signal, goes on with the rest) and fsync it."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[n:]
    os.fsync(fd)


_FIRST_LINE_MAX = 1 << 20


def _first_record(fd: int) -> dict[str, Any] | None:
    """The record on fd's first line; None when the file is empty, when that line does not end within its first
    MiB (a rotation's ``log_continued`` record is far shorter) or is no record."""
    head = _pread_exact(fd, 1 << 12, 0)  # a first record fits in a page, a rotation's nearly always
    end = head.find(b"\n")
    if end < 0 and len(head) == 1 << 12:
        head = _pread_exact(fd, _FIRST_LINE_MAX, 0)
        end = head.find(b"\n")
    if end < 0:
        return None
    try:
        return _parse_line(head[:end], canonical=False)[0]
    except ValueError:
        return None


def _opening(path: Path) -> dict[str, Any] | None:
    """The record on the first line of the file at path (see :func:`_first_record`)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return _first_record(fd)
    finally:
        os.close(fd)


def _continued_archives(path: Path, first: Mapping[str, Any] | None = None,
                        limit: int | None = None) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """Walk back the rotations the log at path continues: for each archive, newest first, (its path beside the
    log, the ``log_continued`` record that names it, on the first line of the file after it). ``first``: that
    record of the log itself when the caller read it already (from a descriptor). Ends at a file that does not
    open with such a record, after an archive that is not there (the caller sees ``is_file()`` false), or after
    ``limit`` archives. Each archive must open below the seq of the record naming it (so no walk goes round):
    raises AuditIntegrityError when one does not."""
    opening = _opening(path) if first is None else first
    n = 0
    while limit is None or n < limit:
        if opening is None or opening.get("kind") != CONTINUATION or not isinstance(opening.get("archive"), str) \
                or type(opening.get("seq")) is not int:
            return
        archive = path.parent / Path(opening["archive"]).name
        yield archive, opening
        n += 1
        if not archive.is_file():
            return
        after, opening = opening, _opening(archive)
        if opening is not None and opening.get("kind") == CONTINUATION and \
                not (type(opening.get("seq")) is int and opening["seq"] < after["seq"]):
            raise AuditIntegrityError(
                f"the archive {archive} opens with a log_continued record at seq {opening.get('seq')!r}, not below "
                f"the seq {after['seq']} of the record naming it: the archives' first records were edited or an "
                "archive was replaced; `hguard audit verify` says where")


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


def _iter_lines(
    path: Path, size: int | None = None, start: tuple[int, int] = (0, 0)
) -> Iterator[tuple[int, bytes, bool, int]]:
    """(line number, bytes without newline, ends with newline, byte offset after it) for each line of
    path[:size], from ``start`` = (byte offset of a line's start, the number of the line before it)."""
    with open(path, "rb") as f:
        if size is None:
            size = os.fstat(f.fileno()).st_size
        offset, lineno = start
        f.seek(offset)
        while offset < size:
            raw = f.readline(size - offset)
            if not raw:
                break
            lineno += 1
            offset += len(raw)
            terminated = raw.endswith(b"\n")
            yield lineno, (raw[:-1] if terminated else raw), terminated, offset


def _fsync_dir(directory: Path, *, what: str, error: type[HGuardError] = AuditError) -> None:
    """Make a name just linked or replaced in ``directory`` durable (``what``, each caller's own, names it in the
    error: "the new audit anchor heads.jsonl"): the folder
    opened with ``O_DIRECTORY`` and fsync'ed; a filesystem that cannot fsync a directory is let be. A failure is an
    ``error`` (AuditError for the audit log's files; the review queue's archive passes ReviewQueueError)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise error(f"cannot open directory {directory} to make {what} durable: {e}; check its permissions") from e
    try:
        os.fsync(fd)
    except OSError as e:
        # Some filesystems cannot fsync a directory; there is nothing more we can do for them.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise error(f"cannot fsync directory {directory} to make {what} durable: {e}; check the disk") from e
    finally:
        os.close(fd)


# held weakly: a lock lives while a thread holds or waits for it, so the table does not gain an entry per log file
# (each rotation makes a new one) for the life of the process
_THREAD_LOCKS: weakref.WeakValueDictionary[tuple[int, int], threading.Lock] = weakref.WeakValueDictionary()
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
                tlock = _THREAD_LOCKS.get(ident)
                if tlock is None:
                    tlock = _THREAD_LOCKS[ident] = threading.Lock()
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
                return os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE), True
            except FileExistsError:
                pass
        return os.open(path, flags), False
    except OSError as e:
        fix = {errno.EROFS: "its file system is mounted read-only: put the log on writable storage",
               errno.ENOSPC: "the disk is full: free space",
               errno.ENOTDIR: "a part of its path is a file, not a folder: correct [audit] path"}.get(
            e.errno or 0, "check its permissions and its folder's")
        # the path named once: an OSError's text ends in "...: '<path>'", repeating the path this line names
        why = f"[Errno {e.errno}] {e.strerror}" if e.strerror and e.filename is not None else str(e)
        raise AuditError(f"cannot open audit log {path} for appending: {why}; {fix}") from e


def _existing(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"an audit log path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}")
    p = Path(path)
    if not p.exists():
        raise InputError(f"no audit log at {p}: the file does not exist; check the path (logs are .jsonl files)")
    if p.is_dir():
        raise folder_as_log(p)
    if not p.is_file():
        raise InputError(f"audit log path {p} is not a regular file; pass the .jsonl file itself")
    return p


def folder_as_log(p: Path, named_as: str = "the policy's [audit] path or the command's log") -> InputError:
    """A folder named as an audit log (``[audit] path``, a command's LOG, :class:`~hguard.audit.AuditLog`'s path),
    refused saying it is a folder and to name a file in it (its .jsonl files, if any: a folder was read as "no audit
    log"); ``named_as``: where the file is to be named."""
    try:
        logs = sorted(q.name for q in p.glob("*.jsonl") if q.is_file())
    except OSError:  # a folder it may not list
        logs = []
    eg = ", ".join(str(p / name) for name in logs[:3]) if logs else str(p / "audit.jsonl")
    return InputError(f"audit log path {p} is a folder, not a log file; name the log file in it (e.g. {eg}) as {named_as}")


def _repair_advice(path: Path, anchor: Any = None, keyed: bool = False) -> str:
    """The ``hguard audit repair`` command for ``path``, quoted as code: with the writer's anchor when the reader
    had it, else asking for it (``--no-anchor`` only where the writers keep none: repaired without the anchor, a
    record it shows was acknowledged and then cut would be moved aside as a write cut short)."""
    key = " --key-file FILE" if keyed else ""
    if anchor is not None:
        return f"`hguard audit repair {path} --anchor {anchor}{key}`"
    return f"`hguard audit repair {path} --anchor FILE{key}` (or `--no-anchor` where its writers keep none)"


def _torn_message(path: Path, lineno: int, raw: bytes, repair: str | None = None) -> str:
    """``repair``: the command that repairs it (:func:`_repair_advice`), with the options the reader checked the log
    with."""
    return (
        f"torn: its {len(raw)} bytes have no trailing newline, a write cut short (a "
        "writer killed mid-write, or a full disk) and never acknowledged; the next append moves it aside into "
        f"{path.name}.torn-<time> and records that in the chain; {repair or _repair_advice(path)} does it now"
    )


def _damaged_message(lineno: int, raw: bytes, why: str) -> str:
    return (
        f"damaged: its {len(raw)} bytes end in a newline but are not a valid JSON record ({why}); "
        "a complete line was overwritten or edited after it was written. It is kept as evidence: compare it "
        "with a backup"
    )


def _save_aside(path: Path, data: bytes) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    base = Path(f"{path}.torn-{stamp}")
    for i in range(1000):
        target = base if i == 0 else Path(f"{base}-{i}")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except FileExistsError:
            continue
        except OSError as e:
            raise AuditError(f"cannot save the torn tail of {path} into {target}: {e}; check the directory") from e
        try:
            write_synced(fd, data)
        finally:
            os.close(fd)
        _fsync_dir(path.parent, what=f"the torn tail of {path.name} saved as {target.name}")
        return target
    raise AuditError(f"cannot find a free name for the torn tail of {path} (tried {base} and 999 more); clean them up")


@dataclass(frozen=True)
class Problem:
    """One place where the chain is broken: ``line`` is 1-based, ``seq`` the record's own seq when readable.

    ``torn``: a last line without its newline (a write cut short, never acknowledged); ``damaged``: a complete
    line that is not a record (overwritten or edited: evidence, never moved); ``whole``: a torn last line that
    verification read as a complete, correctly chained record that lost only its newline (counted: nothing is
    missing; ``show`` and ``export`` give its record, with this problem).
    """

    line: int
    seq: int | None
    message: str
    torn: bool = False
    damaged: bool = False
    whole: bool = False


def _scan(
    path: Path, size: int | None = None, start: tuple[int, int] = (0, 0), canonical: bool = True
) -> Iterator[tuple[int, dict[str, Any] | None, bool, Problem | None, int]]:
    """(line number, record or None, line is canonical, problem or None, byte offset after the line) for every
    line of path[:size] (from ``start``, as :func:`_iter_lines`); "is canonical" is False unless ``canonical``
    (checking it serialises every record again: a reader that only needs the records passes False)."""
    for lineno, raw, terminated, end in _iter_lines(path, size, start):
        if not terminated:
            yield lineno, None, False, Problem(lineno, None, _torn_message(path, lineno, raw), torn=True), end
            continue
        try:
            rec, canon = _parse_line(raw, canonical)
        except ValueError as e:
            yield lineno, None, False, Problem(lineno, None, _damaged_message(lineno, raw, str(e)), damaged=True), end
            continue
        yield lineno, rec, canon == raw, None, end


def _iter_records(path: Path) -> Iterator[dict[str, Any]]:
    for _, rec, _, problem, _ in _scan(path, canonical=False):
        if problem is not None:
            if problem.torn:
                return  # a torn tail, never acknowledged
            raise AuditIntegrityError(
                f"{path} line {problem.line}: {problem.message}; run `hguard audit verify {path}` to see what else is damaged"
            )
        yield rec  # type: ignore[misc]


@dataclass
class _FileRead:
    """What :class:`AppendedRecords` read of one file: the stat it saw, the bytes read (their count, lines and sha256;
    up to the end of the last whole line) and what ``keep`` made of the records on them."""

    stamp: tuple[int, int, int]  # (size, mtime_ns, ctime_ns) when read
    read_at_ns: int  # when: a stamp then within _RACY_NS of it may not show a write right after it
    offset: int
    lineno: int
    digest: Any
    records: list[Any]


_RACY_NS = 2_000_000_000  # a file's times tick coarsely: one written this close to a read may look unchanged after it


class AppendedRecords:
    """The records of an audit log's files for a reader that asks again and again (the review page: each list loaded,
    item opened and verdict posted), reading only what was appended since it last asked (:meth:`AuditLog.history`
    with ``since=``). Each file is known by
    its identity (device, inode), so the file a rotation archives (a hard link to the log it was) is not read again, and
    a rotated log's fresh file, a new inode, is read from its start. A file whose size, mtime and ctime are those last
    seen (and were so well before it was read) is not read at all; one that changed is read from where the last read ended once the bytes read before still
    hash the same (sha256: read again, not parsed), and anew from its first line when they do not (edited in place,
    truncated) or it shrank: a line damaged anywhere is refused as a full read refuses it (AuditIntegrityError), and a
    torn last line, never acknowledged, is left for the next read. ``keep(record)`` is what is kept of each record (a
    reader needing a few fields of most of them keeps less than the whole log in memory)."""

    def __init__(self, keep: Any = None) -> None:
        self._keep = keep if keep is not None else (lambda rec: rec)
        self._files: dict[tuple[int, int], _FileRead] = {}
        self._seen: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def records(self, path: Path) -> list[Any]:
        """What ``keep`` made of each record of the file at ``path``, in file order, reading only what it has not."""
        with self._lock, open(path, "rb") as f:  # one descriptor: a file put in its place meanwhile is not mixed in
            st = os.fstat(f.fileno())
            ident, stamp = (st.st_dev, st.st_ino), (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            self._seen.add(ident)
            read = self._files.get(ident)
            if read is not None and read.stamp == stamp and read.read_at_ns - st.st_mtime_ns > _RACY_NS:
                return read.records
            if read is None or st.st_size < read.offset or not _same_prefix(f, read):
                read = _FileRead(stamp, 0, 0, 0, hashlib.sha256(), [])
            self._files.pop(ident, None)  # a read that fails leaves nothing half read behind
            f.seek(read.offset)
            while read.offset < st.st_size:
                raw = f.readline(st.st_size - read.offset)
                if not raw.endswith(b"\n"):
                    break  # a torn tail, never acknowledged: read again once a writer completed or moved it
                lineno = read.lineno + 1
                try:
                    rec, _ = _parse_line(raw[:-1], canonical=False)
                except ValueError as e:
                    raise AuditIntegrityError(
                        f"{path} line {lineno}: {_damaged_message(lineno, raw[:-1], str(e))}; run `hguard audit verify "
                        f"{path}` to see what else is damaged") from None
                read.records.append(self._keep(rec))
                read.digest.update(raw)
                read.offset, read.lineno = read.offset + len(raw), lineno
            read.stamp, read.read_at_ns = stamp, time.time_ns()
            self._files[ident] = read
            return read.records

    def forget_unseen(self) -> None:
        """Drop the files not asked for since the last call (a log rotated twice, an archive removed)."""
        with self._lock:
            for ident in set(self._files) - self._seen:
                del self._files[ident]
            self._seen = set()


def _same_prefix(f: Any, read: _FileRead) -> bool:
    """Whether the first ``read.offset`` bytes of the open file ``f`` still hash as they did when read."""
    digest = hashlib.sha256()
    f.seek(0)
    left = read.offset
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            return False
        digest.update(chunk)
        left -= len(chunk)
    return digest.digest() == read.digest.digest()
