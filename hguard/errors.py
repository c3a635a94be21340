"""The one exception tree of hguard.

    HGuardError
    ├── ModelNotFoundError      a model (the default one included) cannot be found or loaded
    ├── CacheError              a cached model is corrupt (raised only where it cannot be rebuilt)
    ├── UnsupportedModelError   no FFN down-projection known for this architecture
    ├── InputError              bad input from the caller: empty prompt, too long, wrong type
    │   └── NothingToArchive    a log rotated with no record since its start or last rotation
    ├── DataError               a calibration file with a bad row (names line and field)
    ├── ProbeError              a probe file that cannot be read
    │   └── ProbeMismatchError  a probe calibrated for another model, template or prompt
    ├── PolicyError             a malformed policy file (names the key and the file)
    ├── AuditError              the audit log cannot be written
    │   └── AuditIntegrityError a chain that fails verification (names the line)
    ├── ReviewQueueError        a review item could not be stored
    ├── UsageError              an object used out of order (a recorder nested or read before it ran)
    └── RouteError              an answer routed to abstain or review, raised only when the caller
        ├── AbstainedError      asked for it (the adapters' ``raise_on``), so fallbacks and retries
        └── NeedsReviewError    fire; ``.result`` is the recorded GuardResult

Every message says what was wrong, echoes the value, and says what to do.
"""

from __future__ import annotations

import warnings
from typing import Any


class HGuardError(Exception):
    """Base class of every error hguard raises on purpose."""


class ModelNotFoundError(HGuardError):
    pass


class CacheError(HGuardError):
    pass


class UnsupportedModelError(HGuardError):
    pass


class InputError(HGuardError, ValueError):
    pass


class NothingToArchive(InputError):
    """``rotate`` of a log that holds no record since it was started or last rotated (``hguard audit rotate``
    says so and exits 0: a quiet period is not a failure)."""


class DataError(HGuardError, ValueError):
    pass


class ProbeError(HGuardError):
    pass


class ProbeMismatchError(ProbeError):
    pass


class PolicyError(HGuardError, ValueError):
    pass


class AuditError(HGuardError):
    pass


class AuditIntegrityError(AuditError):
    pass


class AuditKeyRequired(AuditIntegrityError):
    """The log's records carry keyed MACs and this process has no key: nothing was written."""


class AuditKeyMismatch(AuditIntegrityError):
    """The log's newest record carries a keyed MAC this process's key does not reproduce: nothing was written."""


class ReviewQueueError(HGuardError):
    pass


class UsageError(HGuardError, RuntimeError):
    pass


class RouteError(HGuardError):
    """The guard routed an answer away from accept and the caller asked for an exception. The decision
    was recorded (audit log, review queue) before this was raised; ``result`` holds it, ``audit_id`` its
    record's id (as on an InputError the guard recorded). ``result.answer`` is the held answer itself, the text the
    route kept from the user (the message does not quote it): an error reporter that serialises an exception's
    attributes would send it on, so report ``audit_id`` or ``str(error)`` instead."""

    route = ""

    def __init__(self, result) -> None:
        self.result = result
        self.audit_id = result.audit_id
        risk = "none" if result.risk is None else f"{result.risk:.3f}"
        reasons = "; ".join(result.reasons[:3]) or "no reason given"
        super().__init__(
            f"the guard routed this answer to {result.route} (risk {risk}, audit id {result.audit_id}): {reasons}; "
            f"catch {type(self).__name__} (in LangChain: with_fallbacks(..., exceptions_to_handle=({type(self).__name__},))) "
            f"or drop {result.route!r} from raise_on"
        )


class AbstainedError(RouteError):
    route = "abstain"


class NeedsReviewError(RouteError):
    route = "review"


def route_error(result) -> RouteError:
    """The exception for a result routed to abstain or review."""
    return AbstainedError(result) if result.route == "abstain" else NeedsReviewError(result)


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "..." when it was longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(exc: BaseException, limit: int | None = None) -> str:
    """``"Type: message"`` of ``exc`` for a record or a message (its type alone when the message is empty), never
    raising: an exception whose ``str()`` raises (a model's own error type) is named by its ``repr()``, or by its type
    alone, so that recording it cannot replace it. ``limit``: the message cut to so many characters."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception as unread:
        try:
            message = f"{repr(exc)} (its message could not be read: str() raised {type(unread).__name__})"
        except Exception:
            message = f"(its message could not be read: str() raised {type(unread).__name__})"
    if limit is not None:
        message = cut_text(message, limit)
    return f"{name}: {message}" if message else name


def warn_aside(message: str, stacklevel: int = 1) -> None:
    """A UserWarning said beside what its caller returns or raises next, never in its place: under warnings as errors
    (``python -W error``, pytest's ``filterwarnings = error``) ``warnings.warn`` raised the warning, which replaced the
    caller's result (a verdict committed read as failed, the monitor stopped before writing its state file) or the
    error it was about to raise (a KeyboardInterrupt reached the caller as that UserWarning); it is then not said.
    ``stacklevel`` as for ``warnings.warn``, counted from the caller."""
    try:
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
    except Exception:
        pass


def one_line(text: str, limit: int) -> str:
    """``text`` with its whitespace (line breaks included) folded to single spaces, cut to ``limit`` characters."""
    return cut_text(" ".join(text.split()), limit)


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters (ending in "...") so a huge value does
    not drown the message."""
    return cut_text(repr(value), limit)


def install_extra(extra: str) -> str:
    """How to add one of hguard's optional extras, from a package index or, installed from a wheel, with that
    wheel (an index that does not hold hguard cannot resolve ``hguard[...]``)."""
    return (f"pip install 'hguard[{extra}]' (installed from a wheel: pip install "
            f"'hguard-<version>-py3-none-any.whl[{extra}]', the same wheel with the extra)")


def strict_bool(owner: str, name: str, value: Any, fix: str = "") -> bool:
    """A bool setting or keyword (``early_stop=``, ``redact=``, an adapter's ``streaming=``), as given: anything but
    True or False (``"no"`` is truthy, ``1``, None, a numpy bool) raises InputError in one line naming it and the fix
    (``fix``: said after it), as the adapters' strict pydantic bool settings are refused. The one check of a bool
    argument: ``bool(value)`` took "no" as True."""
    if type(value) is not bool:
        raise InputError(f"{owner}: {name}={value!r:.40} is not True or False ({type(value).__name__}); pass "
                         f"{name}=True or {name}=False{fix}")
    return value
