"""Audit records: their canonical form and hash, and the preparation of a caller's record for the log
(reserved fields, JSON-safe values, redaction). See :mod:`hguard.audit`."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from ._json import canonical_json, json_safe
from ._privacy import redacted
from .errors import InputError

GENESIS_HASH = "0" * 64
# The first record of a log that continues an archived one (hguard.audit.AuditLog.rotate): it chains onto the
# archive's last record (its prev_hash and seq follow on) and names the archive; only the log writes it.
CONTINUATION = "log_continued"
# history: a conversation's earlier turns; error: a failure's message, which names the bad value it was given (a
# history turn, a context) so that the caller can fix it; its ``error_type`` stays readable; system_prompt: a call's
# own instruction, which may name the person asked about (its fingerprint stays readable); file_name: a retrieved
# document's, often a person's name
REDACTED_FIELDS = frozenset({"question", "answer", "context", "history", "error", "system_prompt", "file_name"})
# The log owns these; letting callers set them would let a caller forge chain positions.
_RESERVED_FIELDS = ("id", "seq", "time", "kind", "prev_hash", "hash", "mac", "nonfinite")
_CHAIN_FIELDS = ("id", "seq", "time", "kind", "prev_hash", "hash")
_MAX_REQUEST_ID = 200
#: the keys of a caller's ``run`` (``Guard.invoke(run=...)``): the framework's ids of the call that asked (a LangChain
#: chat model's run id, the run that made it, the outermost run of the chain), written as they are into the call's
#: decision record (or its error record: ``run_id``), so an auditor joins the decisions of one chain run, and each to
#: the adapter's ``llm_call`` record of its call (which carries the same ``run_id``; ``hguard audit show --id`` finds the
#: decisions of a run by any of them)
RUN_KEYS = ("run_id", "parent_run_id", "root_run_id")


def run_id_of(run: Any) -> str | None:
    """The ``run_id`` of a caller's ``run`` (a mapping of :data:`RUN_KEYS`), when it is a string: an ``error``
    record's, for a call refused or cancelled before its decision."""
    v = run.get("run_id") if isinstance(run, Mapping) else None
    return v if isinstance(v, str) else None


# --------------------------------------------------------------------------------------------------------------
# canonical form and hashing


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the record's canonical JSON without its own ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity by default; we never write them, so a line holding one was not written by us.
    raise ValueError(f"{name} is not valid JSON")


def _parse_line(raw: bytes, canonical: bool = True) -> tuple[dict[str, Any], bytes | None]:
    """The record on one line and its canonical bytes (None unless ``canonical``: a reader that only needs
    the record skips the serialisation); ValueError when the line is not a JSON object."""
    try:
        rec = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(rec, dict):
            raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        # 1e999 parses as inf, which canonical_json refuses: that too is a line we did not write.
        return rec, canonical_json(rec).encode("utf-8") if canonical else None
    except RecursionError:  # "[[[[...]]]]" a hundred thousand deep: a damaged line, not a crash of every reader
        raise ValueError("nested more deeply than Python's JSON reader can follow") from None


# --------------------------------------------------------------------------------------------------------------
# preparing a caller's record


def _redact(value: Any) -> Any:
    # Any depth: a question nested under e.g. an llm_call payload is as private as a top-level one. A field of
    # hashes (a verdict's ``reviewed_sha256``: the hash of the question, context and answer shown) is what
    # redaction writes already: hashed again, it no longer matched what was shown, so no verdict could be exported.
    if isinstance(value, dict):
        return {
            k: (v if k.endswith("_sha256") else redacted(v) if k in REDACTED_FIELDS and v is not None else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _prepare(record: Any, kind: Any, redact: bool, *, own: bool = False) -> tuple[str, dict[str, Any], list[str]]:
    """(id, body, nonfinite) for a caller's record, validated; chain fields are added under the lock. ``own``: the
    log's own record (a rotation's ``log_continued``), whose kind callers may not write."""
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
    if kind == CONTINUATION and not own:
        raise InputError(
            f"audit record kind {kind!r} is the log's own (the first record after a rotation); pass another kind"
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
    body = {
        k: json_safe(v, k, what="audit record field", nonfinite_paths=nonfinite)
        for k, v in record.items()
        if k != "request_id"
    }
    if redact:
        body = _redact(body)
    return record_id, body, nonfinite


def _mac_body(record: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in record.items() if k not in ("hash", "mac")}).encode("utf-8")


def _mac_holds(key: bytes, record: Mapping[str, Any]) -> bool:
    """Whether the record's ``mac`` is the HMAC of its body under ``key`` (False when it has none)."""
    from .integrity import mac_matches

    return mac_matches(key, _mac_body(record), record.get("mac"))


def _unsealed(record: Mapping[str, Any], key: bytes | None) -> str | None:
    """Why one record fails its own seal: its hash, and with ``key`` its MAC; None when both hold."""
    if record.get("hash") != record_hash(dict(record)):
        return "its hash does not match its content: the record was edited after it was written"
    if key is not None and not _mac_holds(key, record):
        return "its MAC does not match this log's key: the record was edited or forged by someone without the key"
    return None


def _whole_record(raw: bytes, prev: tuple[str, int] | None) -> dict[str, Any] | None:
    """The record a line's bytes hold when they are one whole record, in canonical form, whose hash matches and
    which chains onto ``prev`` (the hash and seq the next record must name, as :func:`_chain_fields` gives them);
    else None (a last line without its newline that is such a record only lost the newline)."""
    if prev is None:
        return None
    try:
        rec, canon = _parse_line(raw)
    except ValueError:
        return None
    whole = canon == raw and rec.get("hash") == record_hash(rec) and (rec.get("prev_hash"), rec.get("seq")) == prev
    return rec if whole else None


def _chain_fields(rec: Mapping[str, Any]) -> tuple[str, int]:
    """(hash, seq + 1) of a parsed record; ValueError when it lacks them."""
    last_hash, last_seq = rec.get("hash"), rec.get("seq")
    if not isinstance(last_hash, str) or type(last_seq) is not int:
        raise ValueError(f"hash={last_hash!r:.80} and seq={last_seq!r:.40}, so no record can be chained onto it")
    return last_hash, last_seq + 1
