"""Items the review queue could not take, kept beside it until a guard start puts them back.

In a redacting audit log a decision's record holds hashes, so an answer held for review that a locked queue could
not take cannot be rebuilt from the log: the guard keeps the item itself in ``<queue>.pending.jsonl`` (one JSON line
each, mode 0640 when created, in clear as the queue is) and :meth:`ReviewQueue.recover` puts it back from there.

Every access holds ``flock`` on the file itself (appends and the rewrite exclusively, reads shared; the rewrite is
a new file renamed over the old one, so a crash mid-write loses nothing), and a writer that finds the name now
leads to another file (rewritten, or emptied and removed, by another process) opens it again: a copy one
process appends while another puts items back is never rewritten away. A line cut short by a crash stays a line of
its own (the next append starts on a new line) and is dropped, unreadable, at the next rewrite. The name is opened
without following a symlink. Reading problems (a directory in its place, bytes that do not decode) are said in a
warning and never stop a guard from starting.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Iterator

from .._audit_files import write_synced
from .._json import canonical_json, json_safe
from .._privacy import FILE_MODE
from ..errors import HGuardError


@contextmanager
def _locked(path: Path, flags: int, lock: int, create: bool = False) -> Iterator[int | None]:
    """``path`` opened with ``flags`` (never through a symlink) and flocked with ``lock``; None when it does not
    exist (and ``create`` is False). Retries when another process removed or replaced the name meanwhile."""
    for _ in range(20):
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | (os.O_CREAT if create else 0), FILE_MODE)
        except FileNotFoundError:
            if create:
                continue
            yield None
            return
        try:
            fcntl.flock(fd, lock)
            st = os.fstat(fd)
            try:
                now = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                yield fd
                return
        finally:
            os.close(fd)
    raise OSError(f"{path} kept changing while it was opened; try again")


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _lines(data: bytes) -> list[tuple[str | None, bytes]]:
    """(audit id, the line) of each line; None for one that does not decode or parse (cut short by a crash)."""
    out: list[tuple[str | None, bytes]] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            out.append((None, raw))
            continue
        aid = item.get("audit_id") if isinstance(item, dict) else None
        out.append((aid if isinstance(aid, str) else None, raw))
    return out


def append(path: Path, item: Mapping[str, Any]) -> None:
    """Keep ``item`` (one synced JSON line; on a new line when the file's last one was cut short). Raises OSError
    when it cannot be written."""
    line = (canonical_json(json_safe(dict(item))) + "\n").encode("utf-8")
    with _locked(path, os.O_RDWR | os.O_APPEND, fcntl.LOCK_EX, create=True) as fd:
        assert fd is not None
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        write_synced(fd, line)


def read(path: Path) -> dict[str, dict]:
    """The items kept, by audit id (unreadable lines skipped; a file that cannot be read is said, and reads empty)."""
    try:
        with _locked(path, os.O_RDONLY, fcntl.LOCK_SH) as fd:
            if fd is None:
                return {}
            data = _read_all(fd)
    except OSError as exc:
        warnings.warn(f"could not read the answers kept beside the review queue in {path} ({type(exc).__name__}: "
                      f"{exc}); none was put back from it: fix the file (one JSON item a line) and start a guard again",
                      UserWarning, stacklevel=3)
        return {}
    return {aid: json.loads(raw.decode("utf-8")) for aid, raw in _lines(data) if aid is not None}


def drop(path: Path, queued: Callable[[Iterable[str]], set[str]]) -> None:
    """Remove from the file the items ``queued`` says are in the queue, and the lines that cannot be read (removing
    the file when nothing is left); a line appended meanwhile by another process is kept. ``queued(ids)``: those of
    ``ids`` that are in the queue (asked before the file is locked for the rewrite)."""
    try:
        ids = [aid for aid in read(path)]
        done = queued(ids) if ids else set()
        with _locked(path, os.O_RDWR, fcntl.LOCK_EX) as fd:
            if fd is None:
                return
            for stale in path.parent.glob(f"{glob_escape(path.name)}.*.tmp"):  # a rewrite a crash cut short (the lock
                stale.unlink(missing_ok=True)  # is held: no other rewrite is under way), with its copies in clear
            keep = [raw + b"\n" for aid, raw in _lines(_read_all(fd)) if aid is not None and aid not in done]
            if not keep:
                os.unlink(path)  # under the lock: a writer waiting on it finds the name gone and opens a new file
                return
            # a new file renamed over the old one, under the old one's lock (a writer waiting on it then finds the name
            # leads elsewhere and opens the new one): truncated in place, a crash mid-write lost every copy left
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
            try:
                try:
                    write_synced(out, b"".join(keep))
                finally:
                    os.close(out)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    except (OSError, HGuardError) as exc:  # HGuardError: the queue refused to say which items it holds
        warnings.warn(f"could not drop the answers put back from {path} ({type(exc).__name__}: {exc}); the next guard "
                      "start tries again", UserWarning, stacklevel=3)
