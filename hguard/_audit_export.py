"""Reading an audit log out: filtered records (``show``) and CSV export, each row marked with what
verification found on its line. See :mod:`hguard.audit`."""

from __future__ import annotations

import collections
import csv
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable

from ._privacy import FILE_MODE
from ._audit_files import Problem, _continued_archives, _existing, _scan
from ._audit_records import GENESIS_HASH, RUN_KEYS, _chain_fields, _whole_record, canonical_json
from ._audit_verify import VerifyReport, verify
from ._resources import refuse_own_file
from .errors import AuditIntegrityError, InputError


def _lines(p: Path, check: VerifyReport | None) -> Iterator[tuple[int, dict[str, Any] | None, Problem | None]]:
    """(line number, record or None, problem or None) of each line of the log ``p`` as :func:`_scan` reads it, but a
    last line that lost only its trailing newline comes with its record as well as its problem: a complete record
    chained onto the line before, which ``check`` (the log's verify report, with its key and anchor) read so and
    counted. Left out, show hid a record verify counts, and export wrote a row of empty fields for it."""
    whole = {q.line for q in check.problems if q.whole} if check is not None else set()
    begin = 0
    prev: tuple[str, int] | None = (GENESIS_HASH, 0)  # the hash and seq the next record names
    for line, rec, _, problem, end in _scan(p, canonical=False):
        if problem is not None and problem.torn and line in whole:  # as verify read it, and still so
            with open(p, "rb") as f:
                f.seek(begin)
                rec = _whole_record(f.read(end - begin), prev)
        begin = end
        try:
            prev = _chain_fields(rec) if rec is not None else None
        except ValueError:
            prev = None
        yield line, rec, problem


def show(
    path: str | os.PathLike[str],
    *,
    last: int | None = None,
    domain: str | None = None,
    route: str | None = None,
    problems: list[Problem] | None = None,
    kind: str | None = None,
    without_domain: bool = False,
    record_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    check: VerifyReport | None = None,
) -> list[dict[str, Any]]:
    """Records matching domain, route and kind (``decision``, ``error``, ``llm_call``, ``review_verdict``, ...;
    each when given; ``without_domain``: only records with no domain, such as decisions no domain was chosen
    for; ``record_id``: only the record with that id and the records that name it as their
    ``decision_audit_id``, such as its spot-check and verdicts, or as their ``caller_request_id``, the id a caller
    gave a guarded request, or as one of their framework run ids, ``run_id`` / ``parent_run_id`` / ``root_run_id``:
    a LangChain chain run's id finds the decisions made in it, with the records naming them), written in ``[since, until)`` when given (:func:`period`), the last ``last`` of them
    when given, in file order.

    A line that is not a record (torn or damaged) raises AuditIntegrityError naming it, unless a ``problems``
    list is given: then each such line is added to it and reading goes on (with ``check``, a last line that lost
    only its trailing newline, a complete record verify counts, is added and its record kept). ``check``: the report of verifying this log
    (with its key and anchor, as :func:`export_csv` takes it): such a line of the log is then said as verification
    said it (a last line the anchor holds the head of was acknowledged and cut, not a write cut short).
    """
    p = _existing(path)
    said = _line_problems(_report_of(p, check))[0] if check is not None else {}
    last_checked(last)
    kept: collections.deque[dict[str, Any]] | list[dict[str, Any]]
    kept = collections.deque(maxlen=last) if last is not None else []
    named = {record_id}  # the id asked for, and the records a caller's id found (records naming them come later)
    # one record and those naming it: a decision made before the log was rotated is in an archive beside it, its
    # verdict perhaps in the log (only the log's own part of the story was shown)
    files = [p] if record_id is None else [
        *reversed([a for a, _ in _continued_archives(p) if a.is_file()]), p]  # each opens below the next: no loop
    scanned = ((f, item) for f in files for item in _lines(f, check if f == p else None))
    for f, (_, rec, problem) in scanned:
        if problem is not None:
            if f == p and problem.line in said:  # as verify said it, with the anchor the reader has
                problem = replace(problem, message="; ".join(said[problem.line]))
            if problems is None:
                raise AuditIntegrityError(f"{f} line {problem.line}: {problem.message}")
            problems.append(problem)
            if rec is None:  # a record that lost only its newline is shown, its problem said
                continue
        assert rec is not None
        if record_id is not None and (rec.get("caller_request_id") == record_id
                                      or any(rec.get(k) == record_id for k in RUN_KEYS)):
            named.add(rec.get("id"))
        if domain is not None and rec.get("domain") != domain:
            continue
        if without_domain and rec.get("domain") is not None:
            continue
        if route is not None and rec.get("route") != route:
            continue
        if kind is not None and rec.get("kind") != kind:
            continue
        if not _in_period(rec, since, until):
            continue
        if record_id is not None and rec.get("id") not in named and not named & linked_decisions(rec):
            continue
        kept.append(rec)
    return list(kept)


def linked_decisions(rec: Mapping[str, Any]) -> set[str]:
    """The decision ids a record names (``decision_audit_id``: one, or a list where one LLM run gave several)."""
    v = rec.get("decision_audit_id")
    return {x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)}


def last_checked(last: Any) -> None:
    """InputError unless ``last`` (``--last``) is None or a non-negative integer; a command checks it before it
    verifies the log (a usage error waited for 50,000 records to verify)."""
    if last is not None and (type(last) is not int or last < 0):
        raise InputError(f"last (--last) must be a non-negative integer, got {last!r}; pass e.g. 20")


def period(value: str | None, flag: str) -> datetime | None:
    """A ``--since`` / ``--until`` value as a time: an ISO date (midnight UTC) or date and time (UTC when it names
    no zone); None for None. A bad value is one line naming it."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise InputError(f"{flag} {value!r} is not a date; pass an ISO date or time, e.g. 2026-12-01 or "
                         "2026-12-01T09:30 (UTC unless it names a zone)") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def periods(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` as times (:func:`period`); a ``--since`` at or after the ``--until`` is refused in
    one line naming both (records are those written in ``[since, until)``: none can be, and "no records" was said of
    a log that holds them)."""
    start, end = period(since, "--since"), period(until, "--until")
    if start is not None and end is not None and start >= end:
        raise InputError(f"--since {since} is not before --until {until}: no record can be written in that period "
                         "(--since is when it starts, --until when it ends); swap them, or pass a --since before "
                         "--until")
    return start, end


def _in_period(rec: Mapping[str, Any], since: datetime | None, until: datetime | None) -> bool:
    """Whether a record was written in ``[since, until)`` (always, with neither; never, with a time it lacks)."""
    if since is None and until is None:
        return True
    try:
        t = datetime.fromisoformat(str(rec.get("time")))
    except ValueError:
        return False
    t = t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)
    return (since is None or t >= since) and (until is None or t < until)


_LEADING_COLUMNS = (
    "seq", "time", "id", "kind", "domain", "route", "reasons", "model_fingerprint", "probe_id", "question", "answer",
)  # fmt: skip
_TRAILING_COLUMNS = ("nonfinite", "prev_hash", "hash")
# the column that says, in the file itself, whether a row's line verified: an auditor handed only the CSV
# cannot run the check
CHAIN_CHECK = "chain_check"


def _report_of(p: Path, check: Any) -> VerifyReport:
    """``check``, refused unless it is the report of verifying the log at ``p``."""
    if not isinstance(check, VerifyReport) or Path(check.path).resolve() != p.resolve():
        raise InputError(
            f"check must be the VerifyReport of {p}, got {getattr(check, 'path', check)!r:.120}; pass "
            f"check=verify({str(p)!r}, key=...) or leave it out to verify the log here"
        )
    return check


def _line_problems(check: VerifyReport) -> tuple[dict[int, list[str]], list[str]]:
    """What verification found, by line of the log (the lines it covered), and what it found with the log as a
    whole (records cut off the end, an anchor head missing; each as "the log: ...")."""
    on_line: dict[int, list[str]] = {}
    whole = []
    for problem in check.problems:
        if problem.line:
            on_line.setdefault(problem.line, []).append(problem.message)
        else:
            whole.append(f"the log: {problem.message}")
    return on_line, whole


def _chain_check(check: VerifyReport) -> Callable[[int, dict[str, Any]], str]:
    """The ``chain_check`` cell of the record on a line: "ok", or what verification found wrong on that line,
    then what it found wrong with the log as a whole (records cut off the end, an anchor head missing)."""
    on_line, whole = _line_problems(check)

    def cell(line: int, rec: dict[str, Any]) -> str:
        if line > check.n_lines:
            return "not checked: appended after the log was verified"
        said = on_line.get(line, []) + whole
        if said:
            return "; ".join(said)
        if "mac" in rec and not check.key_id:
            return "ok (hash chain; its MAC was not checked: no key)"
        return "ok"

    return cell


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


# what a spreadsheet may run as a formula when a cell opens with it, after any blanks or line breaks (some
# trim them) and in its full-width forms (which some convert)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


# Spreadsheets hold at most 32,767 characters in a cell (Excel; LibreOffice likewise), and Python's csv reader
# refuses fields over 131,072 by default: a longer text (a whole retrieved document) is cut, and says so.
MAX_CELL_CHARS = 32_000


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula ("=HYPERLINK(...)", "+SUM(...)", "@cmd", a question or
    answer anyone can type) written with a leading apostrophe, as spreadsheets mark text; numbers unchanged.
    A text longer than :data:`MAX_CELL_CHARS` is cut there, with a note of its length (the log keeps it whole)."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_CELL_CHARS:
        value = (value[:MAX_CELL_CHARS] + f" [... cut here: {len(value)} characters in all; `hguard audit show LOG --id "
                 "ID --json` prints the record whole]")
    return "'" + value if value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START) else value


def _column_order(name: str, first_seen: int) -> tuple[int, int, int]:
    root = name.split(".")[0]
    if root in _LEADING_COLUMNS:
        return (0, _LEADING_COLUMNS.index(root), first_seen)
    if name in _TRAILING_COLUMNS:
        return (2, _TRAILING_COLUMNS.index(name), first_seen)
    return (1, 0, first_seen)


def export_csv(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | IO[str],
    *,
    columns: Sequence[str] | None = None,
    check: VerifyReport | None = None,
    protect: Mapping[str, Path | None] | None = None,
    domain: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bom: bool = False,
) -> int:
    """Write the log as CSV (UTF-8), one row per record; nested dicts (signals, thresholds) become dotted columns.
    ``bom``: open a file written to a path with a UTF-8 byte-order mark, by which Excel reads it as UTF-8 when it is
    opened by a double-click (it reads a file without one in the system's code page: Arabic text as mojibake).

    Lists become their JSON text. A text cell (a column name too) that begins with ``=``, ``+``, ``-``, ``@``
    (or their full-width forms), a tab or a carriage return, also after blanks or line breaks, gets a leading
    apostrophe, so that a spreadsheet shows it instead of running it. ``columns`` picks and orders columns (e.g. ``["id", "signals.mean_entropy"]``);
    by default every column that occurs is written. Returns the number of rows written.

    Every row ends with a ``chain_check`` column (where ``columns`` does not place it): "ok", or the problem
    :func:`verify` found on the record's line (an edit, a removed or inserted record), followed by any problem
    with the log as a whole; a record whose MAC could not be checked says so, and one appended after the check
    says it was not checked. ``check`` is the report of verifying this log (with its key and anchor); without
    it the log is verified here, hash chain only. A record's own ``chain_check`` field is not exported.

    ``out`` as a path may not be the log, a file of ``protect`` (e.g. :meth:`hguard.policy.Policy.own_files`:
    the queue, the policy file, the key), nor an existing file whose name does not end in ``.csv`` (a queue, a
    calibration file): an earlier export is replaced, nothing else is.

    ``domain``, ``since``, ``until``: only the records of that domain, written in ``[since, until)`` (an audit of a
    period); the chain is still checked whole, and a line that is not a record is always written (evidence).
    """
    p = _existing(path)
    check = verify(p) if check is None else _report_of(p, check)
    chain_check = _chain_check(check)
    on_line = _line_problems(check)[0]
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns) or not columns:
            raise InputError(
                f"columns must be a non-empty list of column names, got {columns!r:.120}; "
                "pass e.g. ['id', 'route', 'signals.mean_entropy']"
            )
    if isinstance(out, (str, os.PathLike)):
        refuse_own_file(out, {"audit log": p, **(protect or {})}, "export target", replaces=(".csv",),
                        example="audit.csv")

    def wanted(rec: Mapping[str, Any]) -> bool:
        return (domain is None or rec.get("domain") == domain) and _in_period(rec, since, until)

    # Two passes rather than holding every record: logs grow without bound.
    seen: dict[str, int] = {}
    filled: set[str] = set()
    n_records = 0
    for _, rec, _ in _lines(p, check):
        if rec is None or not wanted(rec):  # a line that is not a record: its row says so (below)
            continue
        n_records += 1
        flat: dict[str, Any] = {}
        _flatten(rec, "", flat)
        for name, value in flat.items():
            seen.setdefault(name, len(seen))
            if value != "":
                filled.add(name)
    if columns is None:
        # a field that is a table in some records and null in others ("thresholds" of a decision without a
        # domain) has its dotted columns; its own, always empty, column would only look like missing data
        stray = {c for c in seen if c not in filled and any(o.startswith(c + ".") for o in seen)}
        header = sorted((c for c in seen if c not in stray and c != CHAIN_CHECK), key=lambda c: _column_order(c, seen[c]))
        header.append(CHAIN_CHECK)
    else:
        unknown = [c for c in columns if c not in seen and c != CHAIN_CHECK]
        if unknown and n_records:
            many = len(unknown) > 1
            raise InputError(
                f"column{'s' if many else ''} {', '.join(map(repr, unknown))} occur{'' if many else 's'} in no record "
                f"of {p}; available: {', '.join(sorted({*seen, CHAIN_CHECK}))}"
            )
        header = list(columns) + ([CHAIN_CHECK] if CHAIN_CHECK not in columns else [])

    def write(f: IO[str]) -> int:
        writer = csv.DictWriter(f, fieldnames=header, restval="", extrasaction="ignore")
        writer.writerow({h: _inert(h) for h in header})  # a column is a record's key, which anyone may name "=..."
        rows = 0
        for line, rec, problem in _lines(p, check):
            flat: dict[str, Any] = {}
            if rec is None:  # damaged or torn: not a record, but the CSV must not hide that the line is there
                assert problem is not None  # said as verification said it (a torn line the anchor shows was cut)
                flat[CHAIN_CHECK] = f"line {line} is not a record: {'; '.join(on_line.get(line, [problem.message]))}"
            elif not wanted(rec):
                continue
            else:  # a record that lost only its newline too: its problem is its line's, in its chain_check cell
                _flatten(rec, "", flat)
                flat[CHAIN_CHECK] = chain_check(line, rec)  # never a value the record itself carries
            writer.writerow({k: _inert(v) for k, v in flat.items()})
            rows += 1
        return rows

    if isinstance(out, (str, os.PathLike)):
        try:  # the log's private text, readable as the log is (owner and group), not by everyone
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            os.fchmod(fd, FILE_MODE)
            with open(fd, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
                return write(f)
        except OSError as e:
            raise InputError(f"cannot write CSV to {out}: {e}; choose a writable path") from e
    return write(out)
