"""What the guard returns for one answer, and the checks of a request's text."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

from ._numerics import finite_number
from ._text import blank, listed, misdecoded
from .errors import InputError, one_line
from .policy import ABSTAIN, ACCEPT

REVIEW_MARK = "[needs review] "
# what stands in for an answer held for review where no one reads a mark (an agent parses the text and acts on it)
HELD_FOR_REVIEW = "This answer is held until a reviewer has checked it."
#: how an accepted answer cut at max_new_tokens ends when shown (a domain's ``cut_answer = "mark"``)
CUT_MARK = " [...]"


def without_cut_mark(text: str) -> str:
    """``text`` without a closing :data:`CUT_MARK` (the answer an accepted, cut answer's display text shows): the
    mark is the guard's, no word of the answer, and an answer scored again is scored without it."""
    return text.removesuffix(CUT_MARK)


#: how many of a result's reasons its notebook display lists (all are in ``result.reasons``), and how long each text
SHOWN_REASONS, SHOWN_CHARS = 5, 300


@dataclass(repr=False)  # its own short repr: the dataclass one was one ~3,000-character line in a notebook
class GuardResult:
    """What the guard decided about one answer. Shown short (its ``repr``, and in Jupyter/IPython a few lines or a
    table: route, risk, domain, the text shown, the first reasons, audit id); every field is on the object."""

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
    # "generated" (this guard's model wrote it) or "given" (Guard.check scored an answer produced elsewhere), as the
    # decision record's answer_source says (a generated answer's record has none)
    answer_source: str = "generated"
    # a given answer's readings (``tokens``, ``own_tokens``, ``ends_as_own``, ``decodes_as_given``, ``served``), as its
    # decision record's ``given_answer`` says; None for a generated answer
    given_answer: dict | None = None

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

    def __repr__(self) -> str:
        """One line: route, risk, domain, the answer shortened, how many reasons and the first, audit id."""
        first = f" (first: {_short(self.reasons[0], 100)})" if self.reasons else ""
        return (f"GuardResult(route={self.route!r}, risk={_risk(self.risk)}, domain={self.domain!r}, "
                f"answer={_short(self.answer, 80)}, reasons={len(self.reasons)}{first}, audit_id={self.audit_id!r})")

    def _shown_rows(self) -> list[tuple[str, str | list[str]]]:
        """What a notebook shows of this result, by label: texts on one line each (hidden characters escaped), cut to
        :data:`SHOWN_CHARS`; at most :data:`SHOWN_REASONS` reasons."""
        rows: list[tuple[str, str | list[str]]] = [("route", str(self.route)), ("risk", _risk(self.risk)),
                                                   ("domain", str(self.domain)),
                                                   ("shown", listed(self.display_text, SHOWN_CHARS))]
        if self.display_text != self.answer:
            rows.append(("answer", listed(self.answer, SHOWN_CHARS)))
        n = len(self.reasons)
        rows.append((f"reasons ({n})", [listed(str(r), SHOWN_CHARS) for r in self.reasons[:SHOWN_REASONS]]
                     + ([f"... and {n - SHOWN_REASONS} more (.reasons)"] if n > SHOWN_REASONS else [])))
        rows.append(("audit_id", str(self.audit_id)))
        return rows

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's display (a notebook cell's last expression, ``print`` aside): a few labelled lines."""
        lines = ["GuardResult"]
        for label, value in self._shown_rows():
            if isinstance(value, list):
                lines += [f"  {label}:"] + [f"    - {v}" for v in value]
            else:
                lines.append(f"  {label + ':':<10}{value}")
        p.text("\n".join(lines))

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a small table, every text HTML-escaped."""
        cells = []
        for label, value in self._shown_rows():
            shown = ("<ul style='margin:0'>" + "".join(f"<li>{html.escape(v)}</li>" for v in value) + "</ul>"
                     if isinstance(value, list) else html.escape(value))
            cells.append(f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>{shown}</td></tr>")
        return "<table><caption style='text-align:left'>GuardResult</caption>" + "".join(cells) + "</table>"


def _short(text: Any, limit: int) -> str:
    """``text`` for a one-line repr: quoted, its whitespace folded, cut to ``limit`` characters and its length said."""
    text = str(text)
    cut = one_line(text, limit)
    return repr(cut) + (f" ({len(text):,} chars)" if cut != " ".join(text.split()) else "")


def _risk(risk: Any) -> str:
    """A result's risk as shown: 4 decimals, or what it is when no finite number (None: unscored)."""
    if (x := finite_number(risk)) is not None:
        return f"{x:.4f}"
    return repr(risk)


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
            return "\n\n".join(kept_passages(context).values() or context)
        raise InputError(
            f"context item {bad} (counting from 0) is {type(context[bad]).__name__} {context[bad]!r:.60}, not a string; "
            "pass each retrieved passage's text (e.g. [doc.page_content for doc in docs])"
        )
    raise InputError(
        f"context must be a string or a list of strings (retrieved passages), got {type(context).__name__}; "
        f"pass the passages' text"
    )


def kept_passages(context) -> dict[int, str]:
    """The passages of a list that :func:`_join_context` joins, by their number in it (counting from 0): the blank
    ones left out (invisible characters alone too: a PDF's zero-width space), and a repeat of an earlier one (it adds
    nothing to ground on); none for a context that is no list of strings (a string is one passage, read whole)."""
    if not isinstance(context, (list, tuple)) or not all(isinstance(c, str) for c in context):
        return {}
    kept: dict[str, int] = {}
    for i, c in enumerate(context):
        if not blank(c):
            kept.setdefault(_same_passage(c), i)
    return {i: context[i] for i in kept.values()}


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
    kept = kept_passages(context)
    repeated = [i for i, c in enumerate(context) if not blank(c) and i not in kept]
    return [f"{len(which)} of the {len(context)} retrieved passages (number {', '.join(map(str, which))}, counting "
            f"from 0) {'was' if len(which) == 1 else 'were'} {what}"
            for which, what in ((empty, "empty and left out of the context"),
                                (repeated, "the same text as an earlier one and used once")) if which]


def _check_text(name: str, value) -> None:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {type(value).__name__} {value!r:.60}; pass text")  # the value named
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

