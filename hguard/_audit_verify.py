"""Verifying an audit log: hash chain, seq, keyed MACs, expected head and anchor. See :mod:`hguard.audit`."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ._audit_files import (
    Problem, _continued_archives, _existing, _flock, _iter_lines, _opening, _repair_advice, _scan,
    _torn_message,
)
from ._audit_records import (
    _CHAIN_FIELDS, CONTINUATION, GENESIS_HASH, _mac_holds, _parse_line, _unsealed, _whole_record, record_hash,
)
from .errors import AuditError, AuditIntegrityError, InputError

# problems a summary lists one by one (the rest are counted, the last shown)
SHOWN_PROBLEMS = 10
# verify only needs the lock for a consistent file size; a hung writer must not stall an auditor for long.
_VERIFY_LOCK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ChainPoint:
    """Where a verified stretch of a log ends, to verify only what was appended since
    (``verify(..., start=point)``): the byte offset after its last record, that record's line, seq and hash,
    the count of MACed records so far, and the file's inode (a replaced file is verified from its start)."""

    offset: int
    line: int
    seq: int
    hash: str
    n_macs: int
    inode: int


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
    n_macs: int = 0  # records that carry a MAC (checked only with the key)
    checked_against: list[str] = field(default_factory=list)  # "each of the n heads in the anchor F is in it", ...
    resume: ChainPoint | None = None  # the end of the last record (a torn tail left out), when nothing else failed
    resumed: bool = False  # only the records after the ``start`` point were read
    n_lines: int = 0  # the lines the check covered (1..n_lines): a line appended after it was not checked
    continues: dict[str, Any] | None = None  # the log_continued record opening a rotated log (it names the archive)
    archives: list[str] = field(default_factory=list)  # the archives checked with it (archives=True), oldest first
    anchored: bool = False  # checked against an anchor file

    @property
    def torn(self) -> bool:
        """The last line is torn (the next append, or ``hguard audit repair``, moves it aside)."""
        return any(p.torn for p in self.problems)

    def summary(self) -> str:
        where = self.path or "audit log"
        if self.key_id:
            macs = f"MACs checked with key {self.key_id}"
        elif self.n_macs:
            macs = (f"no key: {self.n_macs} record(s) carry a MAC that was NOT checked (a re-chained or forged "
                    "record passes without it; pass --key-file or set HGUARD_KEY_FILE)")
        else:
            macs = ("no key, and no record carries a MAC: MACs not checked (an unkeyed log; a keyed log whose MACs "
                    "were stripped reads the same without its key)")
        head = f"head seq {self.head_seq} hash {self.head_hash}" if self.head_hash else "no records"
        if self.ok:
            against = "".join(f"; {c}" for c in self.checked_against)
            # an unkeyed, unanchored chain is only self-consistent: whoever can write the file can recompute it
            weak = ("" if self.key_id or self.anchored else
                    "; NOT tamper-evident: without a key or an anchor this checks only that the hashes agree with each "
                    "other, and a rewrite that recomputes them is not detected (set [integrity] key_file and [audit] "
                    "anchor in the policy, or pass --key-file / --anchor)")
            return f"{where}: OK, {self.n_records} records, hash chain intact, {macs}{against}{weak}; {head}"
        first = (
            f"{where}: FAILED, {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} "
            f"in {self.n_records} readable records ({macs})"
        )
        lines = [first]
        for p in self.problems[:SHOWN_PROBLEMS]:
            seq = f", seq {p.seq}" if p.seq is not None else ""
            lines.append(f"  line {p.line}{seq}: {p.message}" if p.line else f"  {p.message}")
        rest = self.problems[SHOWN_PROBLEMS:]
        if rest:  # a re-chained log fails on every record: the first lines say where, the count says how far
            last = rest[-1]
            lines.append(f"  ... and {len(rest)} more, the last at line {last.line}" + (f", seq {last.seq}" if last.seq is not None else "")
                         + f": {last.message}")
        return "\n".join(lines)


def _torn_tail(path: Path, problem: Problem, begin: int, end: int, before: tuple[str | None, int | None, int],
               heads: Mapping[int, tuple[int, str]], key: bytes | None,
               anchor: str | os.PathLike[str] | None) -> tuple[Problem, dict[str, Any] | None]:
    """The problem of a last line without its newline, said with what is known of it: a complete, correctly chained
    record that lost only its newline (returned too: it is counted, nothing is missing), a record the anchor holds
    the head of (acknowledged, then cut: evidence, which a repair without the anchor would move aside), or a write
    cut short as far as the file and the anchor tell."""
    prev_hash, prev_seq, prev_line = before
    with open(path, "rb") as f:
        f.seek(begin)
        raw = f.read(end - begin)
    repair = _repair_advice(path, anchor, key is not None)
    rec = _whole_record(raw, (prev_hash, prev_seq + 1) if prev_hash is not None and prev_seq is not None else None)
    if rec is not None and _unsealed(rec, key) is None and (rec["seq"] not in heads or heads[rec["seq"]][1] == rec["hash"]):
        checks = "its hash" + (" and MAC" if key is not None else "") + f" and its link to line {prev_line} hold" + (
            ", and the anchor holds its head" if rec["seq"] in heads else "")
        return Problem(problem.line, rec["seq"], (
            f"it lost only its trailing newline: its {len(raw)} bytes are a complete record ({checks}), so nothing is "
            f"missing; a write that returned never leaves a record so, the file was cut after it (or a disk fault). "
            f"{repair} restores the newline and records that in the chain"), torn=True, whole=True), rec
    acknowledged = prev_seq + 1 if prev_seq is not None and prev_seq + 1 in heads else None
    if acknowledged is not None:
        return Problem(problem.line, None, (
            f"cut: its {len(raw)} bytes have no trailing newline where the anchor holds the head of seq {acknowledged} "
            f"(anchor line {heads[acknowledged][0]}), the record this line was: it was written and acknowledged, then "
            "cut short (the file truncated, or a disk fault). Keep the file as evidence and restore the log from a "
            "copy; `hguard audit repair` with the anchor refuses it (with --no-anchor it would move it aside as a "
            "write that never returned)"), torn=True), None
    message = _torn_message(path, problem.line, raw, repair)
    if anchor is None:  # the file alone cannot tell a write cut short from an acknowledged record cut afterwards
        message += ("; verify with the writer's anchor (--anchor, or --policy) first: a head it holds for this line "
                    "means the record was acknowledged and cut afterwards, which repair must not move aside")
    return Problem(problem.line, None, message, torn=True), None


def _snapshot(path: Path) -> os.stat_result:
    # Under the writers' lock every line before the size we read is complete; a torn line found then is real.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return path.stat()
    try:
        # A shared flock waits for a writer in progress; a hung writer must not stall an auditor for long.
        _flock(fd, path, fcntl.LOCK_SH, time.monotonic() + _VERIFY_LOCK_TIMEOUT_S)
        return os.fstat(fd)
    except AuditError:
        return os.fstat(fd)
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
    start: ChainPoint | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    archives: bool = False,
    _below: int | None = None,
) -> VerifyReport:
    """Check every line: its own hash, its link to the line before, its seq; report where each break is.

    ``key``: every record must carry a matching keyed MAC (see :mod:`hguard.integrity`). ``expect_head``: a
    record hash kept from a receipt; the log must still hold that record (else records were cut off the end).
    ``anchor``: a file the writer appended heads to; every head in it must be in the log.
    ``start``: the ``resume`` point of an earlier report on this file: only the records appended since are
    checked, chained to that point (the file replaced, or shorter than the point: checked from its start;
    anchor heads up to the point were checked then). ``on_record`` is called with each readable record in
    order (a caller replaying the log in the same pass discards what it built unless the report is ok).
    A rotated log opens with a ``log_continued`` record chained onto its archive's last record: without
    ``archives`` the chain is checked from it (anchor heads of earlier seqs are the archives', named, not
    checked); with ``archives`` the archives it names (beside it) are checked first, oldest first, each link
    (the archive's last hash and seq, its size and sha256) too, and ``on_record`` sees their records first.
    """
    p = _existing(path)
    if key is not None and not isinstance(key, bytes):
        raise InputError(f"key must be bytes or None, got {type(key).__name__}; load it with hguard.integrity.load_key")
    if expect_head is not None:
        expect_head = _check_head(expect_head, "expect_head")
    heads, problems = _read_anchor(Path(anchor)) if anchor is not None else ({}, [])
    n_anchor = len(heads)  # every head the anchor holds: those this pass checks may be fewer (archives, a resume)
    if _below is not None:  # an archive: heads of later seqs are the files after it
        heads = {seq: head for seq, head in heads.items() if seq < _below}
    opening = _opening(p) if start is None else None
    continued = opening is not None and opening.get("kind") == CONTINUATION and type(opening.get("seq")) is int
    first_seq = opening["seq"] if continued and opening is not None else 0
    earlier = {seq: head for seq, head in heads.items() if seq < first_seq}  # the archives' heads
    heads = {seq: head for seq, head in heads.items() if seq >= first_seq}
    archived = VerifyReport(ok=True, n_records=0)
    if continued and _below is not None and first_seq >= _below:  # each archive opens below the file after it
        problems.append(Problem(0, None, f"it opens with a log_continued record at seq {first_seq}, not below the seq "
                                         f"{_below} of the record naming it: the archives' first records were edited "
                                         "or an archive was replaced"))
    elif continued and archives and opening is not None:
        archived = _verify_archive(p, opening, key, anchor, on_record, problems)
    st = _snapshot(p)
    size = st.st_size
    if start is not None and (start.inode != st.st_ino or start.offset > size):
        start = None
    file_first_head = min(heads) if heads else None  # this file's, a resume's verified stretch included
    if start is not None:
        heads = {seq: head for seq, head in heads.items() if seq > start.seq}
    n_records = start.seq + 1 if start is not None else 0  # a verified stretch holds seqs 0..start.seq
    n_macs = start.n_macs if start is not None else 0
    prev_hash: str | None = start.hash if start is not None else GENESIS_HASH
    prev_seq: int | None = start.seq if start is not None else -1
    prev_line = start.line if start is not None else 0
    resume = start
    head_seq: int | None = start.seq if start is not None else None
    head_hash: str | None = start.hash if start is not None else None
    found_expected = False
    anchored_seen: set[int] = set()
    last_head = max(heads) if heads else None
    beyond_anchor = 0  # records after the anchor's last head: it does not cover them
    # decisions between the anchor's first and last heads without a head of their own: the guard anchors each of its
    # records under the log's lock once it is written, so these were written and never acknowledged to it (records of
    # writers that do not hold the anchor, a review verdict given with --audit, a framework callback's llm_call, are
    # not counted)
    unacknowledged: list[tuple[int, str]] = []
    # time stamps that run backwards: no break of the chain (the writer's clock was set back: a VM restored, an NTP
    # step), but said, since a reader who orders records by time misreads them (the monitor reads the chain's order)
    last_time: tuple[str, int] | None = None
    backwards: list[tuple[int, str, int, str]] = []
    if key is not None:
        from .integrity import key_id
    scanned = _scan(p, size, (start.offset, start.line) if start is not None else (0, 0))
    n_lines = start.line if start is not None else 0
    line_start = start.offset if start is not None else 0
    for lineno, rec, canonical, problem, end in scanned:
        n_lines = lineno
        begin, line_start = line_start, end
        if problem is not None and problem.torn:  # the last line: read with what the chain and the anchor say of it
            problem, whole = _torn_tail(p, problem, begin, end, (prev_hash, prev_seq, prev_line), heads, key, anchor)
            if whole is not None:  # a complete record that lost only its newline: nothing is missing
                n_records += 1
                n_macs += "mac" in whole
                head_seq, head_hash = whole["seq"], whole["hash"]
                if whole["seq"] in heads:
                    anchored_seen.add(whole["seq"])
        if problem is not None:
            problems.append(problem)
            prev_hash, prev_seq, prev_line = None, None, lineno
            continue
        assert rec is not None
        if on_record is not None:
            on_record(rec)
        n_records += 1
        n_macs += "mac" in rec
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
        if key is None and "mac" not in rec and n_macs:
            # hguard's writer refuses to append without the key to a log whose records carry MACs
            msgs.append("it carries no MAC although a record before it does: it was written by someone without "
                        "the key, or forged (verify with the key to check the MACs)")
        if key is not None:
            if "mac" not in rec:
                msgs.append("it carries no MAC: it was written without the key, or forged")
            elif not _mac_holds(key, rec):
                msgs.append(
                    "its MAC does not match: the record was edited or forged by someone without the key "
                    "(or written under another key)"
                )
        if lineno == 1 and rec.get("kind") == CONTINUATION and type(seq) is int:
            prev_hash, prev_seq = rec.get("prev_hash"), seq - 1  # it chains onto its archive (checked there)
        elif rec.get("kind") == CONTINUATION:
            msgs.append("a log_continued record stands anywhere but on a log's first line: it was inserted")
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
        elif digest is not None and type(seq) is int:
            resume = ChainPoint(end, lineno, seq, digest, n_macs, st.st_ino)
        prev_hash = digest
        prev_seq = seq if seq_ok else None
        prev_line = lineno
        head_seq, head_hash = (seq if seq_ok else None), digest
        if last_head is not None and type(seq) is int and seq > last_head:
            beyond_anchor += 1
        elif (file_first_head is not None and type(seq) is int and seq > file_first_head and seq not in heads
              and rec.get("kind") == "decision"):
            unacknowledged.append((seq, str(rec.get("route"))))
        when = rec.get("time")
        if isinstance(when, str) and when:
            if last_time is not None and when < last_time[0]:
                backwards.append((lineno, when, last_time[1], last_time[0]))
            last_time = (when, lineno)
    if expect_head is not None and not found_expected:
        problems.append(
            Problem(
                0, None, f"no record has the expected head hash {expect_head}: records were cut off the end of the "
                "log, or the chain was rewritten"
            )
        )
    missing_heads = sorted(set(heads) - anchored_seen)
    later: tuple[str, int, int] | None = None
    if missing_heads and _below is None:  # an archive verified on its own: heads of later seqs are the files' after it
        after = _continued_by(p)  # looked for only then: a directory read, not on every verify
        if after is not None:
            later = (after[0], after[1], sum(seq >= after[1] for seq in missing_heads))
            missing_heads = [seq for seq in missing_heads if seq < after[1]]
            heads = {seq: head for seq, head in heads.items() if seq < after[1]}
    if missing_heads:
        problems.append(
            Problem(
                0, missing_heads[0], f"{len(missing_heads)} head(s) in the anchor {anchor} are not in the log (seq "
                f"{missing_heads[0]}..{missing_heads[-1]}): records were cut off the end of the log or removed"
            )
        )
    if anchor is not None:  # what the anchor covers: records after its last head could be cut unseen
        if not heads:
            cover = f"the anchor {anchor} holds no head: it covers none of the log's records"
        elif len(heads) == n_anchor:
            cover = f"each of the {n_anchor} heads in the anchor {anchor} is in it"
        elif archived.archives and len(heads) + len(earlier) == n_anchor:  # it said "each of the 1 heads" of 65
            cover = f"each of the {n_anchor} heads in the anchor {anchor} is in it or its archives"
        else:  # the rest are the archives', a later file's or checked before a resume: said below
            cover = f"each of the {len(heads)} heads of the anchor {anchor} (of the {n_anchor} it holds) checked here is in it"
        if beyond_anchor:
            cover += f" (its last head is seq {last_head}: the {beyond_anchor} record(s) after it are not covered by it)"
        if unacknowledged:  # a process killed between writing a record and anchoring it: the record reads as any other
            shown = ", ".join(f"seq {seq} ({route})" for seq, route in unacknowledged[:10])
            cover += (f"; {len(unacknowledged)} decision record(s) between its heads have no head in it ({shown}"
                      f"{', ...' if len(unacknowledged) > 10 else ''}): written, never acknowledged to the guard that "
                      "wrote them (its process stopped between writing and anchoring them, or the anchor write failed: "
                      "an answer_not_delivered record then names the decision; or a guard without the policy's anchor "
                      "wrote them), so no caller received such a decision as decided")
        below = (file_first_head - max(first_seq, start.seq + 1 if start is not None else 0)
                 if file_first_head is not None else 0)
        if below > 0:  # an anchor started after the log (new in the policy, or deleted and started afresh)
            cover += (f"; its first head is seq {file_first_head}: the {below} record(s) of this file before it are not "
                      "covered by it (the anchor was started after them, or its earlier heads were removed)")
        if earlier and not archives:
            cover += (f"; {len(earlier)} head(s) of seq below {first_seq} are its archives' (not checked here: "
                      "verify with the archives)")
        elif earlier and archived.archives:
            cover += f"; the {len(earlier)} head(s) of seq below {first_seq} were checked in its archives"
        if later is not None and later[2]:
            cover += (f"; {later[2]} head(s) from seq {later[1]} on are those of {later[0]}, which continues it, and of "
                      f"any file after that (not checked here: verify the log with its archives)")
    checked = ([cover] if anchor is not None else []) + (
        [f"the expected head {expect_head[:16]}... is in it"] if expect_head else [])
    if backwards:
        line, when, before_line, before = backwards[0]
        checked.append(f"note: time stamps run backwards at {len(backwards)} record(s), first at line {line} ({when}, "
                       f"after {before} on line {before_line}): the writer's clock was set back; the chain's order, "
                       "not the time stamps, is the order the records were written in")
    if continued and opening is not None:
        checked.insert(0, f"it continues the archive {opening.get('archive')} (seq {opening.get('archive_first_seq')}.."
                          f"{opening.get('archive_last_seq')})" + (", checked with it" if archives else
                                                                   ", not checked here (verify with the archives)"))
    if archived.archives:
        checked.insert(1, f"{len(archived.archives)} archive(s): {', '.join(Path(a).name for a in archived.archives)}")
    return VerifyReport(
        ok=not problems, n_records=n_records + archived.n_records, problems=problems, path=str(p), head_seq=head_seq,
        head_hash=head_hash, key_id=key_id(key) if key is not None else None, n_macs=n_macs + archived.n_macs,
        checked_against=checked, anchored=anchor is not None,
        resume=resume if not any(not p.torn for p in problems) else None,
        resumed=start is not None, n_lines=n_lines, continues=dict(opening) if continued and opening else None,
        archives=archived.archives,
    )


def verify_command(path: str | os.PathLike[str], *, policy=None, key_file=None, anchor=None) -> str:
    """The ``hguard audit verify`` command that checks ``path`` as it was read: the log, always (with ``--policy``
    alone verify reads the policy's own log), with the policy, key file or anchor given; each part quoted, so that it
    runs as printed (a log in "my logs/")."""
    import shlex

    extra = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in (
        ("--policy", policy), ("--key-file", key_file), ("--anchor", anchor)) if value)
    return f"hguard audit verify {shlex.quote(str(path))}{extra}"


def _continued_by(p: Path) -> tuple[str, int] | None:
    """(name, seq of its first record) of the file beside ``p`` whose first record says it continues ``p`` (the
    log or a later archive, when ``p`` is an archive), or None."""
    for q in sorted(p.parent.glob(f"*{p.suffix}")):
        if q.name == p.name or not q.is_file():
            continue
        try:
            opening = _opening(q)
        except OSError:
            continue
        if opening is not None and opening.get("kind") == CONTINUATION and type(opening.get("seq")) is int \
                and Path(str(opening.get("archive"))).name == p.name:
            return q.name, opening["seq"]
    return None


def _verify_archive(p: Path, opening: dict[str, Any], key: bytes | None, anchor: Any,
                    on_record: Callable[[dict[str, Any]], None] | None, problems: list[Problem]) -> VerifyReport:
    """Verify the archive a rotated log's first record names (and the archives before it) and its link to that
    record; its problems are added to ``problems``, named by the archive. Returns its report with ``archives``."""
    name = opening.get("archive")
    arch = p.parent / Path(str(name)).name
    span = f"seq {opening.get('archive_first_seq')}..{opening.get('archive_last_seq')}"
    if not isinstance(name, str) or not arch.is_file():
        problems.append(Problem(0, None, f"the archive {arch} ({span}) this log continues is not beside it: put it "
                                         "back beside the log to check the whole chain, or verify this file alone"))
        return VerifyReport(ok=False, n_records=0)
    sub = verify(arch, key=key, anchor=anchor, on_record=on_record, archives=True, _below=opening["seq"])
    for q in sub.problems:
        where = f"line {q.line}: " if q.line else ""
        said = q.message if q.message.startswith("archive ") else f"archive {arch.name}: {where}{q.message}"
        problems.append(Problem(0, q.seq, said))  # an earlier archive's problem names that archive
    link = []
    if sub.head_seq != opening["seq"] - 1:
        link.append(f"its last record (seq {sub.head_seq}) is not the one the log's first record chains onto "
                    f"(seq {opening['seq'] - 1}): records were cut off its end or the archive was replaced")
    elif sub.head_hash != opening.get("prev_hash"):  # the seqs agree: say what does not (it read "seq 56 ... seq 56")
        link.append(f"its last record (seq {sub.head_seq}) has another hash than the one the log's first record chains "
                    f"onto ({str(sub.head_hash)[:16]}... against {str(opening.get('prev_hash'))[:16]}...): the record was "
                    "rewritten or the archive was replaced")
    changed = _changed_since_archived(arch, opening)
    if changed:
        link.append(changed)
    if link:
        problems.append(Problem(0, None, f"archive {arch.name}: " + "; ".join(link)))
    sub.archives = [*sub.archives, str(arch)]
    return sub


def _changed_since_archived(arch: Path, opening: Mapping[str, Any], hashes: bool = True) -> str | None:
    """How the archive differs from the size and sha256 (``hashes=False``: the size alone, a stat) the record after
    it holds, or None."""
    if not hashes:
        size = arch.stat().st_size
        if size == opening.get("archive_bytes"):
            return None
        return (f"it is {size} bytes, not the {opening.get('archive_bytes')} bytes recorded when it was archived: it "
                "was changed since")
    digest = hashlib.sha256()
    size = 0
    with open(arch, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    if (size, digest.hexdigest()) == (opening.get("archive_bytes"), opening.get("archive_sha256")):
        return None
    return (f"it is {size} bytes with sha256 {digest.hexdigest()[:16]}..., not the {opening.get('archive_bytes')} bytes "
            f"and sha256 {str(opening.get('archive_sha256'))[:16]}... recorded when it was archived: it was changed since")


def archive_problems(path: str | os.PathLike[str], *, hashes: bool = True) -> list[str]:
    """What is missing or changed among the archives a rotated log continues (walking back from ``path``), read by
    their size and sha256 against the record after each (hashes only: quicker than ``verify(archives=True)``;
    ``hashes=False``: by their size alone, a stat each)."""
    out: list[str] = []
    try:
        holder = Path(path)  # the file whose first record names the archive
        for archive, after in _continued_archives(holder):
            if not archive.is_file():
                return [*out, f"the archive {archive} (seq {after.get('archive_first_seq')}.."
                              f"{after.get('archive_last_seq')}) that {holder.name} continues is not beside it"]
            changed = _changed_since_archived(archive, after, hashes)
            if changed:
                out.append(f"archive {archive.name}: {changed}")
            holder = archive
    except AuditIntegrityError as e:
        out.append(str(e))
    return out
