"""Review items and verdicts: their types, the errors of deciding one, and the validation of an item before it
is queued (required fields, JSON-safe signals, UTC times, lengths). See :mod:`hguard.review.queue`."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .._json import json_safe
from .._text import hidden_character
from ..errors import AuditError, AuditIntegrityError, ReviewQueueError
from ..errors import shown as _show

#: "not_in_context": the answer was given with a passage that does not answer the question (the right reply says so)
VERDICTS = ("correct", "hallucinated", "corrected", "not_in_context")
VerdictName = Literal["correct", "hallucinated", "corrected", "not_in_context"]


def verdict_label(verdict: str) -> Literal["correct", "hallucinated"]:
    """The reviewer's label of the model's answer: every verdict but "correct" says the answer was wrong (a
    corrected answer, or an answer the passage it was given does not support)."""
    return "correct" if verdict == "correct" else "hallucinated"
ITEM_FIELDS = (
    "audit_id", "question", "context", "answer", "domain", "risk", "signals", "reasons",
    "model_fingerprint", "probe_id", "time", "spot_check",
)  # fmt: skip
_REQUIRED_FIELDS = ("audit_id", "question", "answer")
_MAX_ID = 200
_MAX_REVIEWER = 200
_MAX_TEXT = 1_000_000  # a corrected answer or note longer than this is a paste accident, not a review


def shown_domain(domain: str | None, none: str = "(no domain)") -> str:
    """A domain name as a reviewer reads it: quoted, with escapes, where spaces around it or hidden characters would
    make it look like another ("policy " beside "policy"); ``none`` for an item without one."""
    if domain is None:
        return none
    if not domain or domain != domain.strip() or any(hidden_character(c) for c in domain):
        return json.dumps(domain)
    return domain


#: how a listing (``hguard review list``, the review page) marks an item of an evaluation, and why no user waits on it
EVALUATION_MARK = "[evaluation: served to no user]"
#: what a listing filtered by ``evaluation`` (``hguard review list --evaluation``, the page's ``?evaluation=``) shows
EVALUATION_FILTER_SAID = {"only": "an evaluation's items only", "exclude": "an evaluation's items left out"}


def evaluation_said(for_evaluation: bool | None, has_audit: bool) -> str:
    """Whether a user waits on an item (:meth:`ReviewQueue.for_evaluation`), as ``hguard review show`` and the item
    page say it; ``has_audit``: whether the queue was given its audit log (None then means its decision record is not
    in it)."""
    if for_evaluation:
        return ("yes, an answer given to Guard.check with served=False (an evaluation, or a log scored again): shown to "
                "no user, so no one waits on it; the monitor counts it apart from the review backlog")
    if for_evaluation is False:
        return "no, live traffic (an answer a user asked for)"
    return ("cannot be told " + ("(its decision record is not in the audit log)" if has_audit
            else "without the audit log (give --policy FILE or --audit LOG)") + "; take it as live: a user may wait")


class _NoDomain:
    """Filter value for items that have no domain (``domain=None`` already means "every domain")."""

    _instance: _NoDomain | None = None

    def __new__(cls) -> _NoDomain:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DOMAIN"


NO_DOMAIN = _NoDomain()


class AlreadyDecided(ReviewQueueError):
    """The item was decided before this verdict arrived; the earlier verdict stands unchanged."""

    def __init__(self, message: str, *, item_id: str, reviewer: str, decided_at: str, verdict: str) -> None:
        super().__init__(message)
        self.item_id = item_id
        self.reviewer = reviewer
        self.decided_at = decided_at
        self.verdict = verdict


class VerdictRefused(ReviewQueueError):
    """The verdict cannot be recorded beside its decision: the decision is not in the audit log, the item
    differs from it, or the log holds an uncommitted verdict on it (see ``ReviewQueue.decide``)."""


class AuditLogUnavailable(ReviewQueueError):
    """The queue's audit log could not be read or written (a damaged line, a file this process cannot read, a disk
    error): nothing was recorded; the message names the log and what to do (the review page answers 503)."""

    @staticmethod
    def of(cause: BaseException, message: str) -> AuditLogUnavailable:
        """The error for ``cause``: an :class:`~hguard.errors.AuditIntegrityError` (a damaged line, an archive taken
        away) or another :class:`~hguard.errors.AuditError` stays one too, so that a caller catching the log's own
        error (as before the queue named it) still does."""
        kind = (AuditLogDamaged if isinstance(cause, AuditIntegrityError) else
                AuditLogFailed if isinstance(cause, AuditError) else AuditLogUnavailable)
        return kind(message)


class AuditLogDamaged(AuditLogUnavailable, AuditIntegrityError):
    """:class:`AuditLogUnavailable` where the log failed its integrity check (an AuditIntegrityError too)."""


class AuditLogFailed(AuditLogUnavailable, AuditError):
    """:class:`AuditLogUnavailable` where the log raised its own error (an AuditError too)."""


class ItemNotFound(ReviewQueueError):
    """No item with that id is in the queue."""

    def __init__(self, message: str, *, item_id: str) -> None:
        super().__init__(message)
        self.item_id = item_id


@dataclass(frozen=True)
class Verdict:
    """A reviewer's decision on one item, as committed."""

    item_id: str
    audit_id: str  # the guard's decision record
    verdict: VerdictName
    reviewer: str
    corrected_answer: str | None
    note: str | None
    decided_at: str
    audit_record_id: str | None = None  # the review_verdict record; None when the queue has no audit log
    audit_hash: str | None = None

    @property
    def label(self) -> Literal["correct", "hallucinated"]:
        """The reviewer's label of the model's answer (:func:`verdict_label`)."""
        return verdict_label(self.verdict)


@dataclass(frozen=True)
class ReviewItem:
    """One answer waiting for (or having had) human review."""

    id: str
    audit_id: str
    question: str
    context: str | None
    answer: str
    domain: str | None
    risk: float | None
    signals: dict[str, Any]
    reasons: list[str]
    model_fingerprint: str | None
    probe_id: str | None
    time: str  # when the guard decided (UTC, ISO 8601)
    enqueued_at: str
    status: Literal["pending", "decided"]
    verdict: Verdict | None = field(default=None)
    spot_check: bool = False  # an accepted answer sent for review by the seeded spot-check selection

    @property
    def why(self) -> str:
        """The first reason that says why the answer was held (the domain-choice line says only where it went);
        a line that introduces others ("risk 0.858 < accept_below 0.9 for domain 'claims', but:") comes with the
        one that held it. The note on an answer cut at max_new_tokens and routed as scored held nothing: skipped too."""
        from .._policy_route import CHOSEN_WITH_SIMILARITY, CUT_NOTE_END

        held = [r for r in self.reasons if CHOSEN_WITH_SIMILARITY not in r and not r.endswith(CUT_NOTE_END)
                ] or list(self.reasons) or [""]
        return f"{held[0]} {held[1]}" if held[0].rstrip().endswith(":") and len(held) > 1 else held[0]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------------------------------------------
# validating an item


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {type(value).__name__}: {_show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode (it holds a lone surrogate): {_show(value)}") from None
    return str.__str__(value)


def _optional_text(value: Any, name: str) -> str | None:
    return None if value is None else _check_text(value, name)


def _to_utc_iso(value: Any, name: str) -> str:
    if value is None:
        return _now()
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an ISO 8601 string, a datetime or epoch seconds, got {value!r}")
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be finite epoch seconds, got {value!r}")
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    elif isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO 8601 time such as 2025-01-31T12:00:00+00:00") from None
    else:
        raise ValueError(f"{name} must be an ISO 8601 string, a datetime or epoch seconds, got {_show(value)}")
    if dt.tzinfo is None:
        # A naive time sorts wrongly against the others as soon as two machines or a DST change are involved.
        raise ValueError(f"{name} {value!r} has no time zone; give it one, e.g. datetime.now(timezone.utc)")
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _normalise_item(item: Any) -> dict[str, Any]:
    """The columns for one item; ValueError (turned into ReviewQueueError by the caller) on anything wrong."""
    if not isinstance(item, Mapping):
        raise ValueError(f"a review item must be a mapping, got {type(item).__name__}: {_show(item)}")
    unknown = [k for k in item if k not in ITEM_FIELDS]
    if unknown:
        raise ValueError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"a review item has only {', '.join(ITEM_FIELDS)}"
        )
    missing = [k for k in _REQUIRED_FIELDS if item.get(k) is None]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (got keys {sorted(map(str, item))})")
    audit_id = _check_text(item["audit_id"], "audit_id")
    if not audit_id.strip() or len(audit_id) > _MAX_ID:
        raise ValueError(f"audit_id must be a non-empty string of at most {_MAX_ID} characters, got {_show(audit_id)}")
    domain = _optional_text(item.get("domain"), "domain")
    if domain is not None and not domain.strip():
        raise ValueError("domain is an empty string; pass None for an answer outside every domain")
    risk = item.get("risk")
    if risk is not None:
        if type(risk).__module__.split(".")[0] in ("numpy", "torch") and hasattr(risk, "item"):
            risk = risk.item()
        if isinstance(risk, bool) or not isinstance(risk, numbers.Real):
            raise ValueError(f"risk must be a number or None, got {type(risk).__name__}: {_show(risk)}")
        # A risk that could not be computed is exactly what review is for: store it as unscored, don't refuse it.
        risk = float(risk) if math.isfinite(float(risk)) else None
    signals = item.get("signals", {})
    if signals is None:
        signals = {}
    if not isinstance(signals, Mapping):
        raise ValueError(
            f"signals must be a dict of signal name to value, got {type(signals).__name__}: {_show(signals)}"
        )
    reasons = item.get("reasons", [])
    if reasons is None:
        reasons = []
    if isinstance(reasons, str) or not isinstance(reasons, (list, tuple)):
        raise ValueError(f"reasons must be a list of strings, got {type(reasons).__name__}: {_show(reasons)}")
    reasons = [_check_text(r, f"reasons[{i}]") for i, r in enumerate(reasons)]
    return {
        "id": audit_id,
        "audit_id": audit_id,
        "question": _check_text(item["question"], "question"),
        "context": _optional_text(item.get("context"), "context"),
        "answer": _check_text(item["answer"], "answer"),
        "domain": domain,
        "risk": risk,
        "signals": json.dumps(json_safe(signals, "signals", what="review item field"), ensure_ascii=False, allow_nan=False),
        "reasons": json.dumps(reasons, ensure_ascii=False),
        "model_fingerprint": _optional_text(item.get("model_fingerprint"), "model_fingerprint"),
        "probe_id": _optional_text(item.get("probe_id"), "probe_id"),
        "time": _to_utc_iso(item.get("time"), "time"),
        "spot_check": _check_flag(item.get("spot_check", False), "spot_check"),
    }


def _check_flag(value: Any, name: str) -> int:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {_show(value)}")
    return int(value)
