"""What the guard returns for one answer, and the checks of a request's text."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ._text import blank, misdecoded
from .errors import InputError
from .policy import ABSTAIN, ACCEPT

REVIEW_MARK = "[needs review] "
# what stands in for an answer held for review where no one reads a mark (an agent parses the text and acts on it)
HELD_FOR_REVIEW = "This answer is held until a reviewer has checked it."
#: how an accepted answer cut at max_new_tokens ends when shown (a domain's ``cut_answer = "mark"``)
CUT_MARK = " [...]"


@dataclass
class GuardResult:
    """What the guard decided about one answer."""

    question: str
    answer: str  # the model's answer, whatever the route
    route: str  # "accept" | "abstain" | "review"
    risk: float | None
    signals: dict[str, float | None]
    reasons: list[str]
    domain: str | None
    audit_id: str
    request_id: str
    abstain_message: str
    review_message: str | None = None  # shown instead of an answer routed to review; None shows it marked
    domain_choice: dict = field(default_factory=dict)
    thresholds: dict | None = None
    probe_id: str | None = None
    steering: dict | None = None
    context: str | None = None
    seconds: float = 0.0
    audit_hash: str | None = None  # the audit record's hash: keep it elsewhere to detect a cut-off log
    cut_at_max_new_tokens: bool = False  # the answer reached the length limit and was cut there: it may be incomplete

    @property
    def display_text(self) -> str:
        """What an end user should see: the answer, the abstain message, or for review the policy's review
        message (the answer held for the reviewer) or, without one, the answer marked for review. An answer cut at
        ``max_new_tokens`` (accepted under the domain's ``cut_answer = "mark"``) ends in :data:`CUT_MARK`."""
        if self.route == ACCEPT:
            return self.answer + CUT_MARK if self.cut_at_max_new_tokens else self.answer
        if self.route == ABSTAIN:
            return self.abstain_message
        return self.review_message if self.review_message is not None else REVIEW_MARK + self.answer

    @property
    def withheld_text(self) -> str:
        """What stands in for the answer where a marked answer would still be acted on (an agent's step, which a
        program parses: a mark is dropped, and a held step's tool call would run): the answer when accepted,
        else the abstain message or the review message (:data:`HELD_FOR_REVIEW` when the policy has none)."""
        if self.route == ACCEPT:
            return self.answer
        if self.route == ABSTAIN:
            return self.abstain_message
        return self.review_message if self.review_message is not None else HELD_FOR_REVIEW

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["display_text"] = self.display_text
        return d


def _join_context(context) -> str | None:
    """The passages as one context; empty or blank passages among others are left out, and a passage that repeats an
    earlier one is used once (:func:`left_out_passages` says which), and passages that are all blank join to a blank
    context, which is refused as one."""
    if context is None:
        return None
    if isinstance(context, str):
        return context
    if isinstance(context, (list, tuple)):
        bad = next((i for i, c in enumerate(context) if not isinstance(c, str)), None)
        if bad is None:
            kept: dict[str, str] = {}  # blank: invisible characters alone too (a PDF's zero-width space)
            for c in context:
                if not blank(c):
                    kept.setdefault(_same_passage(c), c)  # a repeat adds nothing to ground on
            return "\n\n".join(kept.values() or context)
        raise InputError(
            f"context item {bad} (counting from 0) is {type(context[bad]).__name__} {context[bad]!r:.60}, not a string; "
            "pass each retrieved passage's text (e.g. [doc.page_content for doc in docs])"
        )
    raise InputError(
        f"context must be a string or a list of strings (retrieved passages), got {type(context).__name__}; "
        f"pass the passages' text"
    )


def _same_passage(text: str) -> str:
    """What two passages share when one repeats the other: their words, whatever the whitespace between them (two
    extractions of one chunk differ in line breaks and trailing spaces)."""
    return " ".join(text.split())


def left_out_passages(context) -> list[str]:
    """Notes naming the passages :func:`_join_context` leaves out of a list of passages that has one with text: the
    empty or blank ones, and those that repeat an earlier one (a retriever returning a chunk twice, two searches
    finding the same document), so that the record says how many were retrieved and how many were used."""
    if not isinstance(context, (list, tuple)) or not all(isinstance(c, str) for c in context):
        return []
    empty = [i for i, c in enumerate(context) if blank(c)]
    if len(empty) == len(context):
        return []
    first: dict[str, int] = {}
    repeated = [i for i, c in enumerate(context) if not blank(c) and first.setdefault(_same_passage(c), i) != i]
    return [f"{len(which)} of the {len(context)} retrieved passages (number {', '.join(map(str, which))}, counting "
            f"from 0) {'was' if len(which) == 1 else 'were'} {what}"
            for which, what in ((empty, "empty and left out of the context"),
                                (repeated, "the same text as an earlier one and used once")) if which]


def _check_text(name: str, value) -> None:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {type(value).__name__}; pass text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: undecodable bytes from argv or a bad decode
        raise InputError(
            f"{name} is not valid text: character {exc.start} is {value[exc.start]!r}, a byte that was not UTF-8; "
            f"pass UTF-8 text (re-encode the input)"
        ) from None
    wrong = misdecoded(name, value)
    if wrong:
        raise InputError(wrong)


def context_given(context: str | None) -> bool:
    """Whether a request carries context to ground on (then a grounding value must exist)."""
    return context is not None and bool(context.strip())


def _finite_or_none(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
