"""Guarded streaming, shared by the LangChain and LlamaIndex adapters (framework-free).

Two modes, chosen by the caller:

``"hold"``
    Tokens are held until the guard has decided; the stream then yields the routed display text
    once (the answer on accept, the abstain message on abstain, the marked answer on review).
    Nothing the guard has not checked reaches the user. With ``early_stop=True`` generation ends
    as soon as the running risk passes the domain's abstain threshold (hguard's own criterion).

``"passthrough"``
    Tokens are yielded as the model generates them (through transformers' ``TextIteratorStreamer``)
    and the decision comes with the last chunk. The user sees unchecked text: the application must
    act on the final route (e.g. retract or mark an answer that was routed to abstain or review).

Both adapters (``langchain_hguard``, ``llama_index.llms.hguard``) stream through this module, and
share its decision helpers: :func:`decision_metadata`, :class:`GuardedText` (a ``str`` that carries the
decision through string-typed steps), ``raise_on`` (:func:`raise_if_routed`) and the
"context not identified" rule (:func:`mentions_context`, :func:`appears_in`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import decimal
import functools
import inspect
import json
import math
import numbers
import queue
import re
import threading
import unicodedata
import warnings
from contextlib import aclosing, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator, Literal, Mapping, Sequence, TypeVar, cast

from hguard._decoding import _check_stop, cut_at_stop
from hguard._json import json_safe
from hguard.models import PLAIN_STOP
from hguard._text import blank, listed
from hguard._guard_scoring import _near
from hguard.errors import InputError, RouteError, error_text, one_line, route_error
from hguard._guard_result import CUT_MARK, REVIEW_MARK
from hguard.policy import ACCEPT
from hguard.guard import Guard, GuardResult

StreamMode = Literal["hold", "passthrough"]
STREAM_MODES: tuple[str, ...] = ("hold", "passthrough")


# an agent's format: ReAct's "Action:" and "Action Input:" lines (LlamaIndex's ReActAgent, LangChain's
# create_react_agent), "Tool:" and "Tool Input:" lines, or a JSON blob's "action" and "action_input" (LangChain's
# structured-chat and JSON-chat agents), in any case
_ACTION_FORMATS = (
    (re.compile(r"(?i)\baction\s*:"), re.compile(r"(?i)\baction[ _]input\s*:")),
    (re.compile(r"(?i)\btool\s*:"), re.compile(r"(?i)\btool[ _]input\s*:")),
    (re.compile(r"(?i)[\"']action[\"']\s*:"), re.compile(r"(?i)[\"']action_input[\"']\s*:")),
)


def asks_for_actions(texts: Sequence[Any]) -> bool:
    """Whether a chat is an agent's step: one of its ``texts`` (its instructions, its turns, a prompt) asks for or
    shows an agent's action format (``_ACTION_FORMATS``: "Action:" and "Action Input:" lines, "Tool:" and "Tool
    Input:", a JSON "action" and "action_input"). The agent parses the reply and acts on it (a tool call runs, the
    text after "Answer:" is returned): a "[needs review]" mark is dropped and a held step's tool would still run, so
    the adapters hold such a step whatever the stream mode and give a held one ``GuardResult.withheld_text``. A
    question or passage that merely names the format is held the same way (unstreamed; the hold text in place of
    a marked answer): the safe side of a text that cannot be told from an agent's."""
    return any(isinstance(t, str) and any(a.search(t) and b.search(t) for a, b in _ACTION_FORMATS) for t in texts)

def check_stream_mode(mode: str, raise_on=frozenset()) -> StreamMode:
    """``mode`` checked, and refused as ``"passthrough"`` beside a ``raise_on``: a passthrough stream gives
    its tokens before the decision, so an exception (and any fallback) would come after the user saw them."""
    if mode not in STREAM_MODES:
        raise ValueError(f"stream_mode must be one of {STREAM_MODES}, got {mode!r}")
    if mode == "passthrough" and raise_on:
        raise ValueError(
            f"stream_mode='passthrough' streams the answer before it is decided, so raise_on={set(raise_on)} (and a "
            "fallback) could not hold it back; use stream_mode='hold' (the default) with raise_on, or drop raise_on"
        )
    return cast(StreamMode, mode)


#: the keys :func:`decision_metadata` writes into a framework's response metadata
DECISION_KEYS = ("route", "risk", "signals", "reasons", "audit_id", "request_id", "domain", "probe_id", "thresholds", "seconds",
                 "cut_at_max_new_tokens", "answer_source")


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of framework data for an audit record: plain values kept, containers walked,
    UUIDs as strings, anything else as its repr (cut short); never raises (see :func:`hguard._json.json_safe`)."""
    return json_safe(value, lenient=True, nonfinite="keep")


def decision_metadata(result: GuardResult) -> dict[str, Any]:
    """The guard's decision as plain JSON-ready data (no answer text): what the adapters attach to a
    framework's response metadata."""
    return {
        "route": result.route,
        "risk": result.risk,
        "signals": dict(result.signals),
        "reasons": list(result.reasons),
        "audit_id": result.audit_id,
        "request_id": result.request_id,
        "domain": result.domain,
        "probe_id": result.probe_id,
        "thresholds": result.thresholds,
        "seconds": result.seconds,
        "cut_at_max_new_tokens": result.cut_at_max_new_tokens,
        "answer_source": result.answer_source,
    }


def error_fields(exc: BaseException) -> dict[str, Any]:
    """What an adapter's audit handler records of a failed call: the error, for a ``raise_on`` error
    (a RouteError) the id of the decision it was raised for (also for the error of a request decided before its batch
    failed, carrying ``decision_audit_id``), and for a request the guard refused or that failed before a decision (an
    error carrying ``audit_id``) the id of the ``error`` record that says so."""
    fields: dict[str, Any] = {"event": "error", "status": "error", "error_type": type(exc).__name__,
                              "error": error_text(exc)[:2000]}
    # a RouteError's decision, or one decided before its batch failed (said undelivered: Guard.record_failed_requests)
    decided = getattr(getattr(exc, "result", None), "audit_id", None) or getattr(exc, "decision_audit_id", None)
    if isinstance(decided, str) and decided:
        fields["decision_audit_id"] = decided
    if getattr(exc, "decision_streamed", False) is True:  # raised after the caller took the decided chunk
        fields["decision_streamed"] = True  # (hguard.streaming.delivering_stream): the answer reached it
    refused = getattr(exc, "audit_id", None)  # a refused request's own ``error`` record (Guard.record_failure)
    if isinstance(refused, str) and refused and refused != decided:  # a RouteError's audit_id is its decision's
        fields["error_audit_id"] = refused
    return fields


ROUTES = ("accept", "abstain", "review")

#: the reason an answer goes to review when its prompt refers to context hguard could not read
CONTEXT_NOT_IDENTIFIED = "context not identified"
_SOURCE = r"(?:context|passages?|documents?|excerpts?|snippets?|sources?)"
# what a block of pasted material is called, in a label ("Sources:", "Relevant policy sections:") or a tag
_MATERIAL = (r"(?:context|contexts|passages?|documents?|docs?|excerpts?|snippets?|sources?|information|material|"
             r"sections?|articles?|text|chunks?|results?|knowledge(?:[ \t]+base)?|background|references?|search[ \t_-]?results?|"
             r"retrieved[\w-]*|kontext|contexte|contexto|contesto|quellen|fuentes|fonti|informationen|informations)")
# a label's number or a note that its material is a part: "Document 1", "Passage [1]", "#2", "Sources (2)", "Context (1
# of 3)", "Kontext (Auszug)", "Documents (excerpt)"; only such words in parentheses: "Context (answer in German):"
# carries the app's instruction, no bare label (a second review: any 40 characters in parentheses were a label's)
_PART_WORD = (r"(?:excerpts?|extracts?|auszug|ausz\u00fcge|ausschnitt|extraits?|extractos?|estratt[oi]|part|parts|teil"
              r"|partial|page|p\.|continued|cont\.)")
_NUMBERING = r"\d+(?:[ \t]*(?:of|/|von|de|di)[ \t]*\d+)?"
_NUMBERED = (r"(?:[ \t]*(?:\[?\d+\]?|#\d+|\([ \t]*(?:" + _NUMBERING + r"|" + _PART_WORD + r"(?:[ \t]*" + _NUMBERING
             + r")?)[ \t]*\)))?")
# as a label of material in a prompt, parentheses may say anything of it: "Context (answer in German):" still labels
# the material that follows
_QUALIFIED = r"(?:[ \t]*(?:\[?\d+\]?|#\d+|\([^()\n]{0,40}\)))?"
_CONTEXT_WORDS = re.compile(
    r"\bcontext\s*(?::|information\b|is below\b|is above\b)"  # "Context:", "Context information is below."
    r"|\b(?:following|provided|retrieved|supplied|attached|relevant|extracted|above|below)\s+" + _SOURCE + r"\b"
    r"|\b(?:" + _SOURCE + r"|text|information)\s+(?:below|above)\b"
    # "use the context", "from this passage", "based on the text"; not "in this context, ..." (an idiom), "the
    # Passage of the Stamp Act", "the source of the Nile", "the source code", "sail through the passage"
    r"|\b(?!in\s+this\s+context\b)(?:use|using|read|answer|given|consult|check|see|with|per|from|in|on|according\s+to|based\s+on|by)"
    r"\s+(?:the|this|these)\s+(?:" + _SOURCE + r"|text)\b(?!\s+(?:of|code)\b)"
    r"|\b(?:the|this|these)\s+(?:context|passages?|excerpts?|text)\s+(?:says?|states?|mentions?|provided|given)\b"
    # a tag around pasted material: "<context>", "</documents>", "<doc>", "<search_results>"
    r"|<\s*/?\s*" + _MATERIAL + r"(?:[_-]\w+)?\b[^<>\n]{0,80}>"
    # a label before material: "Sources:", "Relevant policy sections:", "Document 1:", "Source 1 -", "[CONTEXT]"
    r"|^[ \t#*>_-]*(?:[\w'’-]+[ \t]+){0,5}" + _MATERIAL + _QUALIFIED
    + r"(?:[ \t]+(?:from|of|in|on|about|for|to)\b(?:[ \t]+[\w'’-]+){0,3})?[ \t*_]*(?::|[-–—][ \t])"
    r"|^[ \t]*(?:#{1,6}[ \t]*(?:[\w'’-]+[ \t]+){0,3}" + _MATERIAL + r"|\[[ \t]*/?" + _MATERIAL + r"[ \t]*\]|"
    + _MATERIAL + r")[ \t]*$"  # a heading ("### Context"), a bracket, or the word alone on its line
    r"|^[ \t]*\[\d+\][ \t]+\S"  # a numbered source: "[1] Leave is 25 days."
    # a label whose line is a statement, not a question: "Facts: ...", "Policy: ..." (not "Quick facts: what is ...?")
    r"|^[ \t]*(?:facts?|polic(?:y|ies)|data|clauses?|rules?|notes?)(?:[ \t]+\d+)?[ \t]*:[^?\n]*$"
    r"|```|^[ \t]*\|[^\n]*\|[ \t]*\n[ \t]*\|"  # a fenced block, a table
    r"|^[ \t]*[\"“][^\"”\n]{15,}[\"”]"  # a quoted passage opening the prompt
    # "Here is some information:", "Below is the context", "The following is from our policy", "Read this:"
    r"|\b(?:here|below|above)(?:'s|\s+(?:is|are))\s+(?:some\s+|the\s+)?(?:relevant\s+|additional\s+|background\s+)?"
    + _MATERIAL + r"\b"
    # "The following is from our policy" (not "The following is a conversation with an AI assistant")
    r"|\bthe\s+following\s+(?:(?:is|are|was)\s+(?:from|taken|quoted|an?\s+(?:excerpt|extract|passage))|text|information)\b"
    r"|\b(?:read|given|consider)\s+(?:this|these|the\s+following)\b[^?\n]{0,40}:"
    r"|\bsays?:\s*[\"“]",  # 'Our handbook says: "..."'
    re.IGNORECASE | re.MULTILINE,
)
# a line that only labels or fences material: "Context:", "Retrieved context:", "<context>", "</documents>", "Sources
# (2):", "[CONTEXT]", "----", "```"
_LABEL_LINE = re.compile(r"[\W_]*(?:(?:(?:the|retrieved|relevant|following|provided|supporting|additional|background)"
                         r"[ \t]+){0,2}" + _MATERIAL + _NUMBERED + r"[\W_]*)?", re.IGNORECASE)


def label_only(line: str) -> bool:
    """Whether a line of a prompt only labels or fences the material around it ("Context:", "<context>", "Sources:",
    "---"), saying nothing else: what is left of a RAG template's message once its passages are taken out, when it
    held no instruction."""
    return bool(_LABEL_LINE.fullmatch(line.strip()))


# a line that only labels a RAG template's question or answer slot once its question is taken out: "Question:",
# "**Question:**", "<question>", "Helpful Answer:", "User question:", "Q:", "A:", "Query:", "Frage:", "Answer the
# following question:", a refine template's "Existing answer:" / "New context:"; not a sentence ("Short answer." is an instruction)
_QA_LABEL_LINE = re.compile(r"[\W_]*(?:(?:please[ \t]+)?answer[ \t]+the[ \t]+following[ \t]+|(?:the|user'?s?|helpful|your|final|original|existing|new|refined|previous|current)[ \t]+){0,2}"
                            r"(?:questions?|query|answer|response|q|a|input|output|context|frage|antwort|pregunta|respuesta|"
                            r"r\u00e9ponse|domanda|risposta)[ \t]*\d*[\W_]*", re.IGNORECASE)
# the turn marks of a chat format written into a template's text ("[INST]", "<<SYS>>", "<s>", "<|user|>"): the
# hub's rlm/rag-prompt-llama and -mistral wrap the stock framing in them; they frame it, say nothing
CHAT_FORMAT_MARKS = re.compile(r"\[/?INST\]|<</?SYS>>|</?s>|<\|[^|<>\n]{1,40}\|>")


def question_label_only(line: str) -> bool:
    """Whether a line of a RAG template, its question taken out, only labelled the question or the answer's slot
    ("Question:", "Helpful Answer:", "<question></question>"), saying nothing else; a sentence ("Short answer.") is
    no label."""
    line = CHAT_FORMAT_MARKS.sub(" ", line).strip()
    return bool(_QA_LABEL_LINE.fullmatch(line)) and not line.rstrip("*_ \t").endswith(".")


# where a prompt's sentences and clauses end: a closed-book question is its last question sentence alone
# a sentence ends at . ! ? ; with any closing bracket or quote after it: "(A passage; more of it.) Question?"
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[.!?;][)\]}\"'”’»])\s+|\n+")
#: words a question sentence of its own may hold before it counts as material too
QUESTION_WORDS = 25
#: words of material besides its question from which a prompt holds pasted material (see :func:`holds_material`)
MATERIAL_WORDS = 20


# A small table pasted as text (besides a markdown table and a fenced block, read by `_CONTEXT_WORDS`): TABLE_LINES
# lines or more in a row split alike by one delimiter (CSV's "," or ";", a tab, "|"), each field of a few words and
# no line a sentence's (ending ".", "?" or "!": "Yesterday, I paid.");
# "label: value" lines, as many, their labels short and all different, none a chat's or an agent format's own label
# ("User:", "Q:", "Thought:", "Action Input:": a transcript or an output format, not material); or a JSON object or
# array holding TABLE_LINES keys or more with plain values (not a tool's JSON schema, "type", "title", ...; not an
# agent's two-key action blob).
TABLE_LINES = 3
_DELIMITERS = (",", ";", "\t", "|")
_FIELD_WORDS = 6  # the most words a delimited table's field holds (prose split by commas holds more)
_LABEL = re.compile(r"^[ \t]*([^\W\d_][\w'’&/.() -]{0,40}?)[ \t]*:[ \t]*(\S[^\n]*)$")
_FORMAT_LABELS = frozenset({
    "user", "assistant", "system", "human", "ai", "bot", "model", "question", "answer", "q", "a", "query", "response",
    "thought", "action", "action input", "observation", "final answer", "tool", "tool input", "input", "output",
    "instruction", "instructions", "example", "context", "reasoning", "step",
})
_SCHEMA_KEYS = frozenset({"type", "title", "description", "default", "format", "$schema", "$ref", "$id", "enum",
                          "required", "additionalProperties", "minimum", "maximum", "pattern", "items", "properties"})


# a line of code, not a table's row ("x = f(a, b)", "total += g(c, d);", "print(a, b)", "} else {"): an assignment,
# a call ending its line, or a line ending in a block's brace or a statement's ";" after ")"
_CODE_LINE = re.compile(r"^[ \t]*[A-Za-z_][\w.\[\]'\"]*[ \t]*[-+*/%|&^]?=(?!=)|[A-Za-z_]\w*\([^()\n]*\)[ \t]*[;:{]?[ \t]*$"
                        r"|[{}][ \t]*$|\)[ \t]*;[ \t]*$")


def _delimited(lines: list[str]) -> bool:
    """Whether ``lines`` hold TABLE_LINES lines or more in a row split alike by one of `_DELIMITERS`, each with two
    non-empty fields or more (a verse's lines ending in a comma are no rows) and none a line of code (`_CODE_LINE`)."""
    for d in _DELIMITERS:
        run, count = 0, 0
        for line in lines:
            k = line.count(d)
            fields = line.strip().strip("|").split(d)
            short = (k > 0 and not line.rstrip().endswith((".", "?", "!"))  # a sentence is no row
                     and sum(bool(f.strip()) for f in fields) >= 2 and not _CODE_LINE.search(line)
                     and all(len(f.split()) <= _FIELD_WORDS for f in fields))
            run = run + 1 if short and k == count else (1 if short else 0)
            count = k if short else 0
            if run >= TABLE_LINES:
                return True
    return False


def _labelled(lines: list[str]) -> bool:
    """Whether ``lines`` hold TABLE_LINES "label: value" lines or more in a row, all labels different (see above)."""
    labels: list[str] = []
    for line in lines:
        m = _LABEL.match(line)
        label = m.group(1).strip().lower() if m is not None and "?" not in line else None
        # a single letter is a multiple-choice question's option ("A: Mars\nB: Jupiter"), no table's label
        if label is None or label in _FORMAT_LABELS or len(label.split()) > 5 or len(label) == 1:
            labels = []
        elif label in labels:  # a label again: a transcript's speakers, or the next record
            labels = [label]
        else:
            labels.append(label)
            if len(labels) >= TABLE_LINES:
                return True
    return False


def _plain_keys(value: object) -> int:
    """How many keys of the JSON ``value`` (at any depth) hold a plain value, a JSON schema's own keys left out."""
    if isinstance(value, list):
        return sum(_plain_keys(v) for v in value)
    if isinstance(value, dict):
        return sum(_plain_keys(v) if isinstance(v, (dict, list)) else int(k not in _SCHEMA_KEYS) for k, v in value.items())
    return 0


def _json_table(text: str) -> bool:
    """Whether ``text`` holds a JSON object or array with TABLE_LINES plain keys or more (`_plain_keys`)."""
    decoder = json.JSONDecoder()
    for m in list(re.finditer(r"[{\[]", text))[:20]:  # a bounded number of tries: a prompt may hold many brackets
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if _plain_keys(value) >= TABLE_LINES:
            return True
    return False


def _pasted_table(text: str | None) -> bool:
    """Whether ``text`` holds a small table pasted as text: CSV, tab- or "|"-separated lines, "label: value" lines or
    a JSON object or array (see `TABLE_LINES` above; a markdown table is read by :func:`mentions_context` too)."""
    if not text:
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    return _delimited(lines) or _labelled(lines) or _json_table(text)


def mentions_context(*texts: str | None) -> bool:
    """Whether a prompt refers to context it was given: "Context:", "the following pieces of retrieved
    context", "using the documents", "the passage below", a tag around material ("<context>", "<doc>"), a
    line that labels it ("Sources:", "Relevant policy sections:", "Document 1:", "Kontext:", "### Context"),
    "Here is some information", "Our handbook says: ...", a fenced block or a table (markdown, CSV, tab-separated,
    "label: value" lines, JSON: `_pasted_table`); a word alone is not enough ("What is the nasal
    passage?", "In what context is aspirin prescribed?", "Which organ is retrieved in a transplant?", "How
    far is the lake from the source of the Nile?", "In welchem Kontext ...?")."""
    return any(t and (_CONTEXT_WORDS.search(t) or _pasted_table(t)) for t in texts)


def holds_material(text: str | None) -> bool:
    """Whether a prompt carries material of its own beside its question: at least ``MATERIAL_WORDS`` words
    outside its last question sentence or clause (passages pasted in without a label, a user's own account), or
    a question sentence of more than ``QUESTION_WORDS`` words (material run into the question). A
    closed-book question is asked alone; such a prompt is no question the closed-book calibration saw, and
    what it says is context nobody identified. A table pasted as text is material however few its words
    (`_pasted_table`: "fee,amount" lines hold one word each)."""
    if not text:
        return False
    if _pasted_table(text):
        return True
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    asked = max((i for i, p in enumerate(parts) if "?" in p), default=len(parts) - 1)
    besides = sum(len(p.split()) for i, p in enumerate(parts) if i != asked)
    return besides >= MATERIAL_WORDS or len(parts[asked].split()) > QUESTION_WORDS if parts else False


def unread_context(question: str | None, *instructions: str | None) -> str | None:
    """What shows that a prompt carries context nobody identified, or None: it refers to context
    (:func:`mentions_context`, in the question or the instructions), or its question comes with material of
    its own (:func:`holds_material`). The adapters send such an answer to review (:func:`context_not_identified`)."""
    if mentions_context(question, *instructions):
        return "the prompt refers to context"
    if holds_material(question):
        return f"the prompt holds {MATERIAL_WORDS} or more words beside its question (pasted material?)"
    return None


def context_not_identified(detail: str) -> str:
    """The problem an adapter hands to the guard (it routes the answer to review)."""
    return f"{CONTEXT_NOT_IDENTIFIED}: {detail}; the answer could not be scored against it"


NOTHING_RETRIEVED = "nothing retrieved"


def nothing_retrieved(what: str = "the retriever") -> str:
    """The problem an adapter hands to the guard when its retrieval returned no passage (review: an answer
    from the model's own memory is not what a RAG chain promises, and has nothing to be grounded in)."""
    return (f"{NOTHING_RETRIEVED}: {what} returned no passage with text, so the answer comes from the model's "
            "memory and has nothing to be grounded in")


#: an earlier answer of another engine (another call) of the request, of at least this many words, found anywhere in a
#: later call's passages makes them that engine's answers (a shorter one, "Canberra.", may stand in a passage by chance)
ANSWER_WORDS_IN_CONTEXT = 3


def built_from_answers(context: str, own: Sequence[str], others: Sequence[str] = ()) -> bool:
    """Whether ``context`` is built from earlier answers of the same request, not retrieved passages: made of
    nothing but them (a combining synthesizer, ``tree_summarize``, and ``compact``/``refine`` repacking them,
    ``own`` and ``others`` alike), or holding one of another engine's answers of :data:`ANSWER_WORDS_IN_CONTEXT`
    words or more inside other text (``SubQuestionQueryEngine``'s "Sub question: ...\nResponse: <answer>" nodes:
    held sub-answers came back accepted inside its summary). A synthesizer's own earlier step found inside a later
    chunk's passage is the passage repeating it (overlapping chunks), not a summary."""
    rest = " ".join(context.split())
    found = False
    engines = {" ".join(a.split()) for a in others if a.strip()}
    for text in sorted({" ".join(a.split()) for a in [*own, *others] if a.strip()}, key=len, reverse=True):
        if text in rest:
            if text in engines and len(text.split()) >= ANSWER_WORDS_IN_CONTEXT:
                return True
            rest, found = rest.replace(text, " "), True
    return found and not rest.strip()


# what opens a line a reduce step writes an earlier answer on, once or twice: a list's bullet or number ("- ", "* ",
# "1. ", "2) ", "[3]"), or a short numbered label ("Summary 1:", "Answer 2:", "**Summary 1:**"); not an unnumbered
# one: "Q:" / "A:" lines of a FAQ and a transcript's "Customer:" / "Bot:" turns are material (a review: a support
# ticket quoting the abstain message, given with context=, was held as the run's own earlier answers)
_ITEM_OPENING = re.compile(r"(?:[ \t]*(?:[-*+\u2022>][ \t]+|\(?\d{1,3}[.)\]][ \t]+|\[\d{1,3}\][ \t]*"
                           r"|[*_]{0,2}[^\W\d_][\w'\u2019 -]{0,30}?[ \t]+#?\d{1,3}[*_]{0,2}[ \t]*:[*_]{0,2}[ \t]*)){1,2}")
_QUOTES = "\"'\u201c\u201d\u2018\u2019"


def lists_answers(context: str, answers: Sequence[str]) -> bool:
    """Whether the passage ``context`` is what a reduce step builds from earlier ``answers`` (or held texts): nothing
    but them (:func:`built_from_answers`), or list items or labelled lines that are one of them once their opening is
    taken off ("Summary 1: <answer>", "- <answer>", "2. <answer>", an item's text running on to the next item): one
    of :data:`ANSWER_WORDS_IN_CONTEXT` words or more, or every item one. Not an answer found inside prose: a document
    that quotes an earlier answer, or the abstain message in a support transcript, is material, not a summary."""
    known = {" ".join(a.split()) for a in answers if a.strip()}
    if not known or blank(context):
        return False
    if built_from_answers(context, sorted(known)):
        return True
    items: list[list[str]] = []
    for line in context.splitlines():
        opening = _ITEM_OPENING.match(line)
        if opening is not None and opening.end() > 0 or not items:
            items.append([])
        text = " ".join(line[opening.end():].split()) if opening is not None else " ".join(line.split())
        items[-1].append(text)
        if _is_answer(text, known) and len(text.split()) >= ANSWER_WORDS_IN_CONTEXT:
            return True  # a line: a labelled or bulleted answer
    texts = [" ".join(" ".join(item).split()) for item in items]
    texts = [t for t in texts if t]  # a label alone ("Summaries:") opens no item
    return any(_is_answer(t, known) and len(t.split()) >= ANSWER_WORDS_IN_CONTEXT for t in texts) or (
        bool(texts) and all(_is_answer(t, known) for t in texts))


def _is_answer(text: str, known: set[str]) -> bool:
    """Whether ``text`` (blanks collapsed) is one of ``known``, quoted or not."""
    return text in known or (len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES and text[1:-1].strip() in known)


#: what an answer's reasons say when its context is the request's own earlier answers (:func:`answers_as_context`)
ANSWERS_AS_CONTEXT = "the context is this request's own earlier answers"


def answers_as_context(how: str, instead: str) -> str:
    """The problem an adapter hands to the guard when a call's passages are built from earlier answers of the same
    request (:func:`built_from_answers`): ``how`` they came to be passages, and what to do ``instead``. Nothing
    retrieved grounds such an answer, and a held earlier answer must not come back accepted inside it."""
    return context_not_identified(f"{ANSWERS_AS_CONTEXT} ({how}), not retrieved passages: nothing grounds the summary; "
                                  f"{instead}")


def held_texts(guard: Guard) -> list[str]:
    """The texts ``guard`` shows in a held answer's place: its policy's abstain and review messages (each domain's
    own too) and the hold text of a review without one. A passage that is one of them is no retrieved passage."""
    from hguard._guard_result import HELD_FOR_REVIEW

    policy = guard.policy
    texts = [policy.abstain_message, policy.review_message, HELD_FOR_REVIEW]
    for d in policy.domains.values():
        texts += [d.own_abstain_message, d.review_message]
    return list(dict.fromkeys(t for t in texts if isinstance(t, str) and not blank(t)))


#: the key of a history turn (``{"role": "assistant", "content": ..., HISTORY_DECISION: {...}}``) carrying the
#: decision hguard made on that answer, as the adapters read it from a message's metadata (``route``, ``audit_id``)
HISTORY_DECISION = "hguard"


#: how many held history turns a follow-up's reason names (with its record) before "and N more"
NAMED_HELD_TURNS = 3


def held_history_turn(history: Any, held: Sequence[str]) -> str | None:
    """The hold of a follow-up whose ``history`` (``Guard.invoke(history=...)``'s turns) holds an answer hguard held,
    never reviewed: an assistant turn carrying a decision (:data:`HISTORY_DECISION`, as the adapters pass an
    ``AIMessage``'s ``response_metadata`` or a LlamaIndex message's ``additional_kwargs``) whose route is not accept,
    or whose text shows a held answer: one ending in its passthrough notice (:func:`held_notice`), or one opening
    with the review mark. A turn that is a held or abstain message alone (``held``: :func:`held_texts`; hold mode)
    asserts nothing a follow-up could build on, and holds none (held, it sent every later turn of a chat to review). A
    chat history keeping the shown text keeps that it was held, and the follow-up built on it ("Part-time employees
    receive 28 days" after the held "Sick leave: 10 days.", an HR trial) was given no reason. None when there is no
    such turn (a malformed history is the guard's to refuse). Every held turn is counted, the first
    :data:`NAMED_HELD_TURNS` named with their records (naming the first alone, the others went unchecked)."""
    if not isinstance(history, (list, tuple)):
        return None
    notices = {" ".join(t.split()) for t in held} | {REVIEW_MARK.strip(" []")}
    turns: list[tuple[int, str]] = []  # each held turn: its index, and " (record <id>)" where the turn names one
    for i, turn in enumerate(history):
        if not isinstance(turn, Mapping) or turn.get("role") != "assistant":
            continue
        decision = turn.get(HISTORY_DECISION)
        route = decision.get("route") if isinstance(decision, Mapping) else None
        text = turn.get("content")
        shown = " ".join(text.split()) if isinstance(text, str) else ""
        if shown in notices or route == ACCEPT:
            continue  # the held or abstain message alone: the turn asserts nothing a follow-up could build on
        if route is None and not (shown.startswith(REVIEW_MARK.strip()) or any(shown.endswith(f"[{n}]") for n in notices)):
            continue
        aid = decision.get("audit_id") if isinstance(decision, Mapping) else None
        turns.append((i, f" (record {listed(aid, 40)})" if isinstance(aid, str) and aid else ""))
    if not turns:
        return None
    if len(turns) == 1:
        [(i, record)] = turns
        return (f"the history holds an answer hguard held for review{record} (history turn {i}); a follow-up may "
                "build on it, so this answer is held for review too")
    more = len(turns) - NAMED_HELD_TURNS
    named = ", ".join(f"{i}{record}" for i, record in turns[:NAMED_HELD_TURNS]) + (f" and {more} more" if more > 0 else "")
    return (f"the history holds {len(turns)} answers hguard held for review (history turns {named}); a follow-up may "
            "build on them, so this answer is held for review too")


def refuse_unknown_settings(cls: Any, data: Any, unused: Sequence[str] = ()) -> Any:
    """``data`` (an adapter's constructor keyword arguments, ``cls`` a pydantic model) with ``unused`` ones dropped;
    a name that is not a field of ``cls`` raises ValueError naming the near one (``ChatHGuard(domian=...)`` was
    ignored, and the domain chosen by similarity instead)."""
    if not isinstance(data, dict):
        return data
    fields = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
    unknown = sorted(str(k) for k in data if k not in fields and k not in unused)
    if unknown:
        near = {k: _near(k, fields) for k in unknown}
        hints = "; ".join(f"did you mean {near[k]!r} for {k!r}?" for k in unknown if near[k])
        raise ValueError(f"{cls.__name__} has no setting(s) {unknown}" + (f"; {hints}" if hints else "")
                         + f" (its settings: {', '.join(sorted(n for n in cls.model_fields if not n.startswith('_')))})")
    return {k: v for k, v in data.items() if k not in unused}


def settings_error(cls_name: str, exc: Any, fixes: Mapping[str, str]) -> InputError:
    """An adapter's construction refused by pydantic (``exc``, a ValidationError: four lines, a URL, no fix) as one
    line naming each bad setting, its value and the fix (``fixes``: by setting name) -- as a call's own settings are
    refused (``invoke(..., served=1)``)."""
    said = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "missing":  # pydantic's input of a missing setting is all the others: not its value
            head, msg = "", f"{field} is required"
        else:
            head = f"{field}={err['input']!r:.60}: " if field != "settings" and "input" in err else ""
        said.append(head + msg + (f"; {fixes[field]}" if field in fixes else ""))
    text = "; ".join(one_line(s, 400) for s in said)
    return InputError(text if text.startswith(cls_name) else f"{cls_name}: {text}")


def with_text(passages: Sequence[str]) -> list[str]:
    """The passages that show any text. A passage of whitespace or invisible characters alone (a zero-width
    space, a byte-order mark: :func:`hguard._text.blank`) is none: the generator refuses such a context, and an
    adapter reports a retrieval of only those as :func:`nothing_retrieved`."""
    return [p for p in passages if not blank(p)]


def blanks_emptied(passages: Sequence[str]) -> list[str]:
    """The passages, blank ones (as :func:`with_text` reads them) made empty, or ``[]`` when none shows text: an
    adapter hands them on so, and the guard leaves the empty ones out and names them in a reason (dropped by the
    adapter, the record did not say that a retrieved passage was empty)."""
    return [("" if blank(p) else p) for p in passages] if with_text(passages) else []


#: how much of a passage's opening must be found in a prompt for the passage to count as pasted there, when less
#: than ``probe_chars`` of it is (a chain that cuts each document to 120 characters: it went to review as
#: "context not identified", and its record held the whole prompt as the question and no context)
MIN_PASTED_CHARS = 60


def appears_in(passage: str, texts: Sequence[str], probe_chars: int = 200) -> bool:
    """Whether the passage's text (its first ``probe_chars`` characters, whitespace-normalised; or, cut shorter by
    a chain, its first :data:`MIN_PASTED_CHARS`) was pasted into one of ``texts``."""
    norm = " ".join(passage.split())
    joined = [" ".join(t.split()) for t in texts]
    return any(bool(key) and any(key in t for t in joined) for key in (norm[:probe_chars], norm[:MIN_PASTED_CHARS]))


def pasted_part(passage: str, texts: Sequence[str], probe_chars: int = 200, stops: Sequence[str] = ()) -> str | None:
    """What of ``passage`` was pasted into one of ``texts`` (when :func:`appears_in` says it was), as the model
    read it. A chain that cuts a document (to a length, or before an internal section) puts only that part before
    the model: its longest opening found there, in the passage's own characters. A chain that cleans the text it
    pastes (joins words a PDF hyphenated at a line's end, drops a page's header, straightens quotes) puts the
    cleaned text there: the prompt's own text of it, found by aligning the two word by word, up to no further than
    where one of ``stops`` begins (the other documents' openings, the question) and only when the alignment runs to
    the passage's end. The answer is generated from, scored against and recorded with that, never with text the
    model did not read as the passage's."""
    if not appears_in(passage, texts, probe_chars):
        return None
    norm = " ".join(passage.split())
    joined = [" ".join(t.split()) for t in texts]
    lo, hi = min(len(norm), MIN_PASTED_CHARS), len(norm)  # norm[:lo] is in a text; find the longest such opening
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if any(norm[:mid] in t for t in joined):
            lo = mid
        else:
            hi = mid - 1
    if lo == len(norm):
        return passage
    # a stop too short to tell (a keyword search, "refund") could lie inside the passage itself
    changed = _cleaned_span(norm, lo, texts, joined, [k for k in (" ".join(x.split()) for x in stops) if len(k) >= 20])
    if changed is not None:
        return changed
    seen = 0  # the passage's own characters up to the lo-th character of its whitespace-normalised form
    for m in re.finditer(r"\S+", passage):
        start = seen + (1 if seen else 0)
        if start + len(m.group()) >= lo:
            return passage[: m.start() + (lo - start)].rstrip()
        seen = start + len(m.group())
    return passage


def unescaped_prompt(texts: Sequence[str], passages: Sequence[str], queries: Sequence[str] = ()) -> list[str]:
    """``texts`` (the prompt's messages that may hold ``passages``) with HTML escaping undone (``html.unescape``) where
    a chain escaped what it pasted: a mustache template escapes "&", "<", ">" and '"' in every value it fills in (the
    passages, the question), and a ``format_docs`` may call ``html.escape``. Then a passage holding any of those was
    not found ("Service Level Agreement &amp; Support"), and its text was read as the app's instruction (a legal
    team's trial). The reading kept is the one that finds more of the passages pasted (:func:`appears_in`), then more
    of their text as it is (:func:`pasted_part`, document by document: mustache pasted a document holding "&sect;" of
    its own as "&amp;sect;", which only the unescaped reading gives back as it is), then more of the retrievers'
    ``queries`` (mustache escaped the question; a plain chain's question holding "R&amp;D", as a web form escaped it,
    unescaped was no longer the query: the whole template became the question); else the unescaped one where no
    passage holds a character reference itself. A document quoting "&amp;", pasted as it is, keeps ``texts``."""
    import html

    plain = [html.unescape(t) for t in texts]
    if plain == list(texts):
        return plain
    readings = (list(texts), plain)
    found, found_plain = (sum(appears_in(p, ts) for p in passages) for ts in readings)
    if found_plain != found:
        return plain if found_plain > found else list(texts)
    kept, kept_plain = (sum(_as_it_is(p, ts) for p in passages) for ts in readings)
    if kept_plain != kept:
        return plain if kept_plain > kept else list(texts)
    asked, asked_plain = (sum(_stands_in(q, ts) for q in queries if not blank(q)) for ts in readings)
    if asked_plain != asked:
        return plain if asked_plain > asked else list(texts)
    return plain if all(html.unescape(p) == p for p in passages) else list(texts)


def _as_it_is(passage: str, texts: Sequence[str]) -> int:
    """How many characters of ``passage`` (whitespace-normalised) ``texts`` hold pasted as they are: its part
    :func:`pasted_part` finds there, when that is the passage's own text (a cut), else none (a text the chain changed:
    escaped, cleaned)."""
    part = pasted_part(passage, texts)
    norm = " ".join((part or "").split())
    return len(norm) if norm and norm in " ".join(passage.split()) else 0


def _stands_in(text: str, texts: Sequence[str]) -> bool:
    """Whether ``text`` stands in one of ``texts`` as it is, whitespace aside."""
    norm = " ".join(text.split())
    return any(norm in " ".join(t.split()) for t in texts)


#: a passage :func:`pasted_part` did not find counts as pasted all the same, changed by the chain, when at least this
#: share of its runs of three words stands in the prompt outside the passages found there, and it has this many words
_CHANGED_SHARE, _CHANGED_MIN_WORDS = 0.5, 8
#: ... or that share of the runs of an opening of it this many runs long or longer (a chain that changed a document and
#: cut it to a length: "SLA" for its title, then its first 300 characters, held under half its runs, and its text was
#: read as the app's instruction; a review), or this many of its runs in a row (14 words: a stretch of it anywhere).
#: Measured on the documents a chain left unpasted beside pasted ones (retrieve 5, paste the first 2; 710 questions over
#: privacy-policy segments, contract clauses and BoolQ passages; the hub's RAG prompt and a system message with an
#: app's instruction): none flagged, as before; of documents whose opening the chain rewrote and that it cut to 120
#: characters, 681 of 686 flagged or found (326 before; the 5 others stand inside another retrieved document)
_CHANGED_OPENING, _CHANGED_RUN = 20, 12


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


def _word_triples(text: str) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def pasted_changed(passage: str, texts: Sequence[str]) -> bool:
    """Whether ``passage``, which :func:`pasted_part` did not find in ``texts``, stands in one of them all the same,
    its text changed where the chain pasted it (its opening rewritten, words or characters replaced, maybe cut to a
    length), or part of it stands there outside the passages: at least :data:`_CHANGED_SHARE` of its runs of three
    words (case and punctuation aside) are there, or as much of an opening of it :data:`_CHANGED_OPENING` runs long or
    longer, or :data:`_CHANGED_RUN` runs in a row. Give ``texts`` with the passages found there, the question and the
    retrievers' queries taken out: a document repeating a pasted one's text, or the question's words, is not pasted
    for that. Such a passage cannot be matched, so an answer would be scored without it while the model read it (as
    part of the app's instruction, where its text stands outside the passages)."""
    words = _words(passage)
    if len(words) < _CHANGED_MIN_WORDS:
        return False
    runs = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    for text in texts:
        there = _word_triples(text)
        if len(set(runs) & there) >= _CHANGED_SHARE * len(set(runs)):
            return True
        found = in_a_row = 0
        for k, run in enumerate(runs, 1):
            found, in_a_row = (found + 1, in_a_row + 1) if run in there else (found, 0)
            if in_a_row >= _CHANGED_RUN or (k >= _CHANGED_OPENING and found >= _CHANGED_SHARE * k):
                return True
    return False


#: how far apart two runs of a passage's words may lie in its pasted text and still be one pasted passage: words
#: a cleaning chain dropped (a page's header and footer) and words it wrote in their place (a hyphenated word joined)
_DROPPED_WORDS, _WRITTEN_WORDS = 40, 4
#: the share of a passage's words its cleaned text must keep, in order, to be taken as that passage
_KEPT_SHARE = 0.75
#: what a cleaning chain writes for typographic characters, read as them when words are aligned
_PLAIN_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"',
                                   "\u2013": "-", "\u2014": "-", "\u00a0": " "})


def _plain_word(word: str) -> str:
    return unicodedata.normalize("NFKC", word).translate(_PLAIN_TYPOGRAPHY)


def _cleaned_span(norm: str, opening: int, texts: Sequence[str], joined: Sequence[str], stops: Sequence[str]) -> str | None:
    """The text of one of ``texts`` that holds the whitespace-normalised passage ``norm`` as a chain cleaned it: a
    run of its words, in order, that starts at the opening (``opening`` characters) found verbatim, ends before
    any of ``stops``, keeps :data:`_KEPT_SHARE` of the passage's words and reaches to within
    :data:`_DROPPED_WORDS` of its end. None when there is none (the chain cut the passage at the opening's end:
    what follows it is other text, such as the question, even where it repeats the passage's words)."""
    from difflib import SequenceMatcher

    words = norm.split(" ")
    keys = [_plain_word(w) for w in words]
    verbatim = len(norm[:opening].split(" "))  # the words of the opening found as they are
    best: tuple[int, str] | None = None
    for text, flat in zip(texts, joined):
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        at = flat.find(norm[:opening])
        while at >= 0:
            first = flat.count(" ", 0, at)  # the word the opening starts in
            limit = first + len(words) + max(50, len(words) // 2)
            for stop in stops:  # the next document's opening, the question: the passage ends before them
                where = flat.find(stop, at + opening)
                if where >= 0:
                    limit = min(limit, flat.count(" ", 0, where))
            window = [_plain_word(text[a:b]) for a, b in spans[first:limit]]
            blocks = [b for b in SequenceMatcher(None, keys, window, autojunk=False).get_matching_blocks() if b.size]
            end_p = end_w = 0  # words of the passage and of the window the aligned run covers
            for b in blocks:
                if b.a - end_p > _DROPPED_WORDS or b.b - end_w > _WRITTEN_WORDS or (end_w and b.size < 2):
                    break
                end_p, end_w = b.a + b.size, b.b + b.size
            covered = sum(b.size for b in blocks if b.a + b.size <= end_p)
            # more than the verbatim opening (else that is all the prompt holds: a cut), most words, to near the end
            if end_w and covered > verbatim and len(words) - end_p <= _DROPPED_WORDS and covered >= _KEPT_SHARE * len(words):
                span = text[spans[first][0] + at - flat.rfind(" ", 0, at) - 1: spans[first + end_w - 1][1]]
                if best is None or covered > best[0]:
                    best = (covered, span)
            at = flat.find(norm[:opening], at + 1)
    return best[1] if best is not None else None


def check_raise_on(raise_on) -> frozenset[str]:
    """``raise_on`` as a set of routes; only ``"abstain"`` and ``"review"`` may raise."""
    values = {raise_on} if isinstance(raise_on, str) else set(raise_on or ())
    bad = values - {"abstain", "review"}
    if bad:
        raise ValueError(f"raise_on may hold 'abstain' and 'review', got {sorted(bad)}; e.g. raise_on={{'abstain', 'review'}}")
    return frozenset(values)


def raise_if_routed(result: GuardResult, raise_on) -> GuardResult:
    """Raise :class:`hguard.errors.AbstainedError` / ``NeedsReviewError`` when ``result.route`` is in
    ``raise_on`` (the decision is already recorded); return ``result`` otherwise."""
    if result.route in raise_on:
        raise route_error(result)
    return result


class GuardedText(str):
    """A string (what the user should see) that carries the guard's decision, so the route survives
    string-typed steps: ``route``, ``risk``, ``reasons``, ``audit_id``, ``domain``, ``signals`` and the
    whole ``decision`` dict (:func:`decision_metadata`). ``route`` is None on a passthrough token."""

    decision: dict[str, Any]

    def __new__(cls, text: str, decision: dict[str, Any] | None = None):
        obj = super().__new__(cls, text)
        obj.decision = dict(decision or {})
        return obj

    @property
    def text(self) -> str:
        return str.__str__(self)

    @property
    def route(self) -> str | None:
        return self.decision.get("route")

    @property
    def risk(self) -> float | None:
        return self.decision.get("risk")

    @property
    def reasons(self) -> list[str]:
        return list(self.decision.get("reasons") or [])

    @property
    def audit_id(self) -> str:
        return self.decision.get("audit_id") or ""

    @property
    def domain(self) -> str | None:
        return self.decision.get("domain")

    @property
    def signals(self) -> dict[str, Any]:
        return dict(self.decision.get("signals") or {})

    def __reduce__(self):
        return (type(self), (self.text, self.decision))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r}, route={self.route!r}, risk={self.risk!r})"

    def __add__(self, other: object) -> "GuardedText":
        """Chunks add up with their decision (LangChain joins a stream's chunks so, e.g. a chain's output under
        ``astream_events``): the texts joined, and the decision of the part that carries one (a passthrough
        stream's last chunk); a plain ``str`` would drop the route."""
        if not isinstance(other, str):
            return NotImplemented
        return self._joined(self.text + str.__str__(other), other)

    def __radd__(self, other: object) -> "GuardedText":
        if not isinstance(other, str):
            return NotImplemented
        return self._joined(str.__str__(other) + self.text, other)

    def _joined(self, text: str, other: str) -> "GuardedText":
        return GuardedText(text, self._joined_decision(other))

    def _joined_decision(self, other: str) -> dict[str, Any]:
        """The decision of two joined parts: the other's when it carries one (a later chunk), else this one's."""
        theirs = getattr(other, "decision", None) or {}
        return theirs if "route" in theirs else self.decision


@dataclass(frozen=True)
class GuardStreamChunk:
    """One piece of a guarded stream: ``text`` to show now; ``result`` only on the last chunk."""

    text: str
    result: GuardResult | None = None

    @property
    def final(self) -> bool:
        return self.result is not None


def _invoke_kwargs(early_stop: bool) -> dict[str, Any]:
    return {"early_stop": True} if early_stop else {}


def _call_kwargs(call: dict[str, Any]) -> dict[str, Any]:
    # history / system / stop / problems of one call, passed only when given
    return {k: v for k, v in call.items() if v is not None and v != [] and v != ()}


def guarded_invoke(guard: Guard, question: str, context=None, domain: str | None = None, *, early_stop: bool = False, **call: Any) -> GuardResult:
    """``guard.invoke`` with ``early_stop`` (and ``history``, ``system``, ``stop``, ``problems``) passed
    only when asked for."""
    return guard.invoke(question, context, domain, **_invoke_kwargs(early_stop), **_call_kwargs(call))


#: how long closing an abandoned passthrough stream waits for its generation to stop before leaving the decision's
#: ``answer_not_delivered`` record to a thread of its own (a closer holding a lock the generation needs would wait
#: for ever)
SETTLE_WAIT_S = 10.0

#: the passthrough streams still open: each one's ``settle``, run at exit for a stream nobody closed (the process
#: would otherwise end inside its generation thread: an abort, and neither the decision nor the
#: ``answer_not_delivered`` record of text the user saw)
_OPEN_STREAMS: set[Callable[..., None]] = set()


@atexit.register
def _settle_open_streams() -> None:
    for settle in list(_OPEN_STREAMS):
        settle("the process exited with the stream open", bounded=False)


def guard_stream(
    guard: Guard,
    question: str,
    context=None,
    domain: str | None = None,
    mode: StreamMode = "hold",
    *,
    early_stop: bool = False,
    timeout: float | None = None,
    run_id: str | None = None,
    **call: Any,
) -> Generator[GuardStreamChunk, None, None]:
    """Stream one guarded answer; the last chunk carries the :class:`GuardResult`.

    ``hold``: one chunk, the routed display text, after the decision. ``passthrough``: the tokens
    as generated, then a chunk with the decision, empty after an accepted answer and :func:`held_notice` after a
    held one. ``early_stop`` (hold mode only) ends
    generation once the running risk passes the abstain threshold. ``timeout`` (passthrough) is the
    longest wait in seconds for the next token before ``queue.Empty`` is raised (a number > 0 and at most
    ``threading.TIMEOUT_MAX``, a numpy one too, or None for no limit; anything else is refused before generating, an
    ``InputError`` on record); hold mode has no such wait and ignores it. ``run_id``: the caller's
    own id of the call (a LangChain run id, a LlamaIndex span id), named by the ``answer_not_delivered`` record of
    an abandoned stream.
    Errors from the guard (bad input, a failed audit write) are raised from the iterator. ``call``:
    ``history``, ``system``, ``stop``, ``problems`` as for ``Guard.invoke``.
    """
    yield from _guard_stream(guard, question, context, domain, mode, early_stop, timeout, run_id, None, call)


def _guard_stream(guard: Guard, question: str, context: Any, domain: str | None, mode: StreamMode, early_stop: bool,
                  timeout: float | None, run_id: str | None, unreceived: Sequence[GuardStreamChunk] | None,
                  call: dict[str, Any]) -> Generator[GuardStreamChunk, None, None]:
    """:func:`guard_stream`. ``unreceived``: :func:`aguard_stream`'s chunks taken from this stream that have not
    reached its caller (a worker thread takes each before the caller is handed it): the ``answer_not_delivered``
    record of a stream left early counts only the text the caller received."""
    check_stream_mode(mode)
    if mode == "hold":  # (``cancel`` in ``call``: an async stream's, set when its caller leaves)
        result = guarded_invoke(guard, question, context, domain, early_stop=early_stop, **call)
        yield GuardStreamChunk(result.display_text, result)
        return
    if early_stop:
        raise ValueError(
            "early_stop applies to stream_mode='hold' only: in passthrough the tokens already reached the "
            "user, so stopping early would only cut the answer short"
        )
    if timeout is not None:
        seconds = _timeout_seconds(timeout)
        if seconds is None:
            # checked before anything is generated (the queue's own TypeError or ValueError came from the stream, after
            # an answer was generated and decided), and refused on record as the guard's own call settings are
            raise guard._refused(question, InputError(  # noqa: SLF001
                f"timeout must be a number of seconds > 0 and at most {threading.TIMEOUT_MAX:g} (the longest wait for "
                f"the next token of a passthrough stream) or None for no limit, got {type(timeout).__name__} "
                f"{timeout!r:.60}" + _timeout_hint(timeout)),
                context=context, domain=domain, request_id=call.get("request_id"), run=call.get("run")) from None
        timeout = seconds
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(guard.lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)
    box: dict[str, Any] = {}
    cancel = threading.Event()  # set when the stream is left before its end: the generation stops at its next token

    def run() -> None:
        try:
            box["result"] = guard.invoke(question, context, domain, streamer=streamer, cancel=cancel,
                                         **_call_kwargs(call))
        except BaseException as exc:  # re-raised in the consumer below
            box["error"] = exc
            streamer.end()  # unblock the consumer when generation never started or failed midway

    worker = threading.Thread(target=run, name="hguard-stream", daemon=True)
    n_text, shown, finished = 0, 0, False  # chunks and characters of text shown to the caller
    once = threading.Lock()

    def settle(how: str, bounded: bool = True) -> None:
        """Also on an abandoned stream: the generation stops, the guard records its decision on the answer so far
        (held: cut short), and then that the caller, who read some of its text, never got the decision. Once, whichever comes first: the stream's end
        or close, or the process exiting with the stream still open (a web worker restarting mid-answer)."""
        if not once.acquire(blocking=False):
            return
        _OPEN_STREAMS.discard(settle)
        if not finished:
            cancel.set()  # nobody reads on: the answer is decided on what was generated, held, never accepted

        def undelivered() -> None:
            worker.join()
            if not finished and "result" in box:
                lost = [c.text for c in unreceived or () if c.result is None]  # taken, never handed to the caller
                chunks, chars = n_text - len(lost), shown - sum(map(len, lost))
                guard.record_undelivered(box["result"], f"the stream ended after {chunks} chunk(s) of passthrough "
                                                        f"text ({chars} characters), before its decision reached the "
                                                        f"caller ({how})", run_id=run_id, shown_chars=chars)

        # a stream dropped without being closed is closed by the garbage collector, in whichever thread it runs:
        # the guard's own worker (which cannot join itself: the record was lost), or one holding a lock the worker
        # waits for (the embedder's: a deadlock in a soak). An abandoned stream's rest is left, past a wait, to a
        # thread of its own; one read to its end (its decision is read next) and the process's exit (no thread
        # would be waited for) wait for the worker whatever it takes.
        if threading.current_thread() is worker:
            threading.Thread(target=undelivered, name="hguard-stream-settle").start()
            return
        worker.join(SETTLE_WAIT_S if bounded and not finished else None)
        if worker.is_alive():
            threading.Thread(target=undelivered, name="hguard-stream-settle").start()
        else:
            undelivered()

    _OPEN_STREAMS.add(settle)
    worker.start()
    # the answer ends before a stop sequence (the caller's, and a plain-frame model's): the text that could begin
    # one is held back until it does not, and nothing from one on is shown (the decision's answer, and the
    # adapters' records, end there; the stream showed the stop sequence and what followed). A malformed stop is
    # the worker's guard.invoke to refuse, on record (raised below with its audit_id).
    try:
        caller_stops = _check_stop(call.get("stop")) or []
    except InputError:
        caller_stops = []
    stops = [*caller_stops, *(() if guard.lm.has_chat_template else PLAIN_STOP)]
    hold = max((len(x) for x in stops), default=1) - 1
    said, cut, timed_out = "", False, False
    try:
        for piece in streamer:
            if cut or not piece:
                continue  # generation ends at the stop on its own; its last tokens are read, not shown
            said += piece
            head, hit = cut_at_stop(said, stops)
            cut = hit is not None
            upto = len(head) if cut else len(said) - hold
            if upto > shown:  # counted before it is handed over: a caller who leaves now has read it
                n_text, piece, shown = n_text + 1, said[shown:upto], upto
                yield GuardStreamChunk(piece)
        if not cut and len(said) > shown:
            n_text, piece, shown = n_text + 1, said[shown:], len(said)
            yield GuardStreamChunk(piece)
        finished = True
    except queue.Empty:  # no token within ``timeout``: raised at once, and a thread waits for the guard's decision
        # and records it as not delivered (the process waits for that thread at exit); it waited for the whole answer
        threading.Thread(target=settle, args=(f"no token came within the stream's timeout of {timeout} s",),
                         name="hguard-stream-settle").start()
        timed_out = True
        raise
    finally:
        if not timed_out:
            settle("abandoned or cancelled")
    if "error" in box:
        raise box["error"]
    yield GuardStreamChunk(held_notice(box["result"]), box["result"])


def _timeout_seconds(timeout: Any) -> float | None:
    """A passthrough stream's ``timeout`` as seconds: any real number (a numpy one, a Decimal too), not a bool, finite,
    > 0 and at most ``threading.TIMEOUT_MAX`` (above it the queue's wait raised OverflowError inside the stream, after
    the answer was generated); None when it is none of these."""
    if isinstance(timeout, bool) or not isinstance(timeout, (numbers.Real, decimal.Decimal)):  # a Decimal is no Real
        return None
    try:
        seconds = float(timeout)
    except (TypeError, ValueError, OverflowError):  # an int too large for a float, a signalling NaN Decimal
        return None
    return seconds if math.isfinite(seconds) and 0 < seconds <= threading.TIMEOUT_MAX else None


def _timeout_hint(timeout: Any) -> str:
    """The fix for a bad stream ``timeout``: the number a string spells, or a positive number."""
    try:
        seconds = float(timeout)
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if isinstance(timeout, str) and math.isfinite(seconds) and seconds > 0:
        return f"; pass timeout={seconds:g}"
    return "; pass a number of seconds such as timeout=30, or timeout=None"


def held_notice(result: Any) -> str:
    """What a passthrough stream ends with: nothing after an accepted answer (the cut mark after one cut at
    ``max_new_tokens``, as its ``display_text`` ends); after a held one, the message its route shows in brackets on a
    line of its own ("[needs review]" without a review message). The text already reached the reader, and a chat
    engine keeps the streamed text as the assistant's turn and drops the decision: a held answer read, and
    remembered, as if it had been accepted."""
    if result.route == "accept":
        return CUT_MARK if getattr(result, "cut_at_max_new_tokens", False) else ""
    message = result.abstain_message if result.route == "abstain" else result.review_message
    return "\n\n[" + (" ".join(str(message).split()) if message and message.strip() else REVIEW_MARK.strip(" []")) + "]"


#: why an answer decided for an async caller that was cancelled meanwhile never reached it
CANCELLED = "the caller cancelled the request (a timeout, or its task was cancelled) before the answer reached it"


#: how often, in seconds, an async caller's event loop wakes while it awaits a worker thread of the guard
#: (:func:`to_thread_awake`)
WAKE_S = 0.1


async def to_thread_awake(fn: Callable[..., _T], /, *args: Any, **kw: Any) -> _T:
    """``await asyncio.to_thread(fn, *args, **kw)``, with the event loop woken every :data:`WAKE_S` seconds while it
    waits. A loop awaiting only the worker sleeps until the worker ends, and a Python signal handler runs only when the
    main thread runs Python code: so a Jupyter kernel's interrupt (ipykernel cancels the cell's task from its SIGINT
    handler) reached ``await guard.ainvoke(...)`` only after the whole answer was generated, and never stopped it.
    Cancelled, it behaves as ``asyncio.to_thread``: work that has not started never runs, and work under way runs on
    (the caller's ``cancel`` event stops a generation)."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, fn, *args, **kw))
    try:
        while not fut.done():
            await asyncio.wait((fut,), timeout=WAKE_S)
    except BaseException:  # the caller cancelled (or the loop stopped): as to_thread's await, the work is cancelled
        fut.cancel()  # (it then never runs if it waits for a worker still; one under way is not stopped by it)
        raise
    return fut.result()


async def in_thread(guard: Guard, fn: Callable[..., Any], *args: Any, decided: Callable[[Any], Any] = lambda out: [out],
                    run_id: str | None = None, cancel_event: threading.Event | None = None,
                    unstarted: Callable[[], Any] | None = None, **kw: Any) -> Any:
    """``fn(*args, **kw)`` in a worker thread for an async caller, the event loop woken every :data:`WAKE_S` seconds
    meanwhile (:func:`to_thread_awake`: a Jupyter kernel's interrupt is seen at once). Cancelled meanwhile (``asyncio.wait_for``'s
    timeout, a cancelled task), the work still ends and is recorded, and each decision ``decided(out)`` names (the
    :class:`GuardResult` itself by default; anything with ``audit_id`` and ``route``) is said never delivered
    (:meth:`Guard.record_undelivered`, naming ``run_id``, the caller's id of the call, when given): exactly one of
    delivered and said undelivered. ``cancel_event`` (the one ``fn`` was given as ``cancel``) is set on
    cancellation, so the generation stops at its next token. Cancelled before ``fn`` started (it waited for a
    worker of the loop's executor), ``fn`` never runs and ``unstarted()`` records that instead."""
    lock = threading.Lock()
    state: dict[str, Any] = {"caller_gone": False, "started": False}

    def work() -> Any:
        with lock:
            if state["caller_gone"]:  # the caller left while this waited for a worker: said by ``unstarted``
                return None
            state["started"] = True
        try:
            out = fn(*args, **kw)
        except RouteError as exc:  # a decision handed back as an error (raise_on): undelivered too if the caller left
            with lock:
                state["routed"], gone = exc, state["caller_gone"]
            if gone:
                guard.record_undelivered(exc, CANCELLED, run_id=run_id)
            raise
        with lock:
            state["out"], gone = out, state["caller_gone"]
        if gone:
            for d in decided(out):
                guard.record_undelivered(d, CANCELLED, run_id=run_id)
        return out

    try:
        return await to_thread_awake(work)
    except asyncio.CancelledError:
        if cancel_event is not None:
            cancel_event.set()
        with lock:
            state["caller_gone"] = True
            done, started, routed = "out" in state, state["started"], state.get("routed")
        if done:  # the work ended, but the caller was gone before it resumed
            for d in decided(state["out"]):
                guard.record_undelivered(d, CANCELLED, run_id=run_id)
        elif routed is not None:  # ... with a raise_on route: its decision did not reach the caller either
            guard.record_undelivered(routed, CANCELLED, run_id=run_id)
        elif not started and unstarted is not None:
            unstarted()
        raise


def raised_why(exc: BaseException) -> str:
    """Why an answer decided inside a call that then raised ``exc`` (not a cancel) never reached the caller."""
    return (f"the call raised {type(exc).__name__} after the guard decided (a callback or tracing handler failing in "
            "its end or token hook, e.g. an exporter that is down), so the caller got the error, not this answer")


class _Delivery:
    """One adapter call's outcome, awaited (see :func:`delivering`): the decisions made inside it (each with its run
    id) and the audit writes that wait to know whether its answer reached the caller."""

    def __init__(self) -> None:
        self.decided: list[tuple[Any, str | None]] = []
        self.handed = 0  # how many of ``decided`` a stream's caller took (it asked for the chunk after their chunk)
        self.waiting: list[Callable[[BaseException | None], None]] = []

    def settle(self, guard: Guard, exc: BaseException | None) -> BaseException | None:
        """Close the call: raised (``exc``), each decision is said never delivered (:meth:`Guard.record_undelivered`)
        and the error names its decision (``decision_audit_id``, as :func:`error_fields` reads it); then each waiting
        write learns the outcome. Returns the error to raise: ``exc``, or a waiting write's own on a call that
        returned (its answer then did not reach the caller either)."""
        waiting, self.waiting = self.waiting, []
        while True:
            if exc is not None:
                self._undelivered(guard, exc)
            for i, write in enumerate(waiting):
                try:
                    write(exc)
                except Exception as failed:
                    if exc is not None:  # the call's own error is the one raised: this one said as a warning
                        warnings.warn(f"could not record the outcome of a call that raised {type(exc).__name__}: "
                                      f"{error_text(failed)}", UserWarning, stacklevel=3)
                        continue
                    exc, waiting = failed, waiting[i + 1:]  # the call returned, but its record failed: raised
                    break
            else:
                return exc

    def _undelivered(self, guard: Guard, exc: BaseException) -> None:
        if not self.decided:
            return
        # a decision whose chunk the caller took (a stream's end hook failing after it) was delivered: the error is
        # joined to it and says so (``decision_streamed``), as a stream the caller left does; the others were not
        handed, left = self.decided[:self.handed], self.decided[self.handed:]
        why = CANCELLED if isinstance(exc, asyncio.CancelledError) else raised_why(exc)
        ids = [getattr(r, "audit_id", None) for r, _ in left or handed]
        if len(set(ids)) == 1 and ids[0] and getattr(exc, "decision_audit_id", None) is None:
            try:  # the adapters' llm_call record of the failed call is joined to the decision it never delivered
                exc.decision_audit_id = ids[0]  # type: ignore[attr-defined]
                if not left:
                    exc.decision_streamed = True  # type: ignore[attr-defined]
            except AttributeError:
                pass
        for result, run_id in left:
            guard.record_undelivered(result, why, run_id=run_id)

    def step(self, guard: Guard, fn: Callable[[], _T]) -> _T:
        """``fn()``, one step of a stream (:func:`delivering_stream`), inside this call; raising (not its end), the call
        is settled."""
        token = _DECIDED.set(self)
        try:
            try:
                return fn()
            finally:
                _DECIDED.reset(token)
        except (StopIteration, StopAsyncIteration):
            raise
        except BaseException as exc:
            self.settle(guard, exc)
            raise

    async def astep(self, guard: Guard, fn: Callable[[], Awaitable[_T]]) -> _T:
        """:meth:`step`, awaited (:func:`adelivering_stream`)."""
        token = _DECIDED.set(self)
        try:
            try:
                return await fn()
            finally:
                _DECIDED.reset(token)
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self.settle(guard, exc)
            raise


#: the outermost :func:`delivering` call of this task, or None
_DECIDED: ContextVar[_Delivery | None] = ContextVar("hguard_decided", default=None)
_T = TypeVar("_T")


def decided_here(results: Sequence[Any], run_id: str | None = None) -> None:
    """Note decisions an adapter's call made (each with ``audit_id`` and ``route``), for :func:`delivering` to say
    undelivered if the call raises, or is cancelled, before it returns them."""
    box = _DECIDED.get()
    if box is not None:
        box.decided.extend((r, run_id) for r in results)


def after_delivery(write: Callable[[BaseException | None], None]) -> bool:
    """Leave ``write`` (an audit handler's record of a call) to the end of the open :func:`delivering` call, which
    passes it the error the call raised, or None when its answer reached the caller: a handler that fails after the
    guard decided (a tracer's ``on_llm_end``) makes the record say error, not ok. False (nothing left) outside one."""
    box = _DECIDED.get()
    if box is None:
        return False
    box.waiting.append(write)
    return True


@contextmanager
def delivering(guard: Guard) -> Iterator[None]:
    """An adapter's call (``ChatHGuard.invoke``). Raising or cancelled after the guard decided inside it (while the
    framework ran its callbacks: a tracer's ``on_llm_end`` failing, a chain's ``on_chain_end``), each decision noted
    by :func:`decided_here` is said never delivered (:meth:`Guard.record_undelivered`), and the writes left by
    :func:`after_delivery` say so; a cancel while the guard works is said by :func:`in_thread`. Nested calls note into
    the outermost one, which says it."""
    if _DECIDED.get() is not None:
        yield
        return
    box = _Delivery()
    token = _DECIDED.set(box)
    try:
        try:
            yield
        finally:  # closed first: what settling it writes is not left to it
            _DECIDED.reset(token)
    except BaseException as exc:
        box.settle(guard, exc)
        raise
    raised = box.settle(guard, None)
    if raised is not None:
        raise raised


def delivering_stream(guard: Guard, make: Callable[[], Iterator[_T]]) -> Generator[_T, None, None]:
    """:func:`delivering` for a stream: ``make()`` (the call that starts it, run now) and each step taken from the
    stream it returns are inside it (the caller's own code between chunks is not), and a step that raises after the
    guard decided (a handler's ``on_llm_new_token``) says the decision undelivered. Once the caller took the decided
    chunk (asked for the next), its decision counts as handed over: a later step raising (a handler's ``on_llm_end``)
    says it delivered, the error joined to it with ``decision_streamed`` (:func:`error_fields`), as a stream the caller
    left does. Left by its caller (closed), the stream is closed inside it too."""
    if _DECIDED.get() is not None:
        return cast(Generator[_T, None, None], make())
    box = _Delivery()
    chunks = box.step(guard, make)

    def delivered() -> Generator[_T, None, None]:
        while True:
            try:
                chunk = box.step(guard, lambda: next(chunks))
            except StopIteration:
                break
            try:
                yield chunk
            except GeneratorExit:  # the caller left: nothing raised, whatever was handed over is its own
                box.step(guard, lambda: cast(Any, chunks).close())
                box.settle(guard, None)
                raise
            box.handed = len(box.decided)  # the caller took this chunk: what was decided by it reached the caller
        raised = box.settle(guard, None)
        if raised is not None:
            raise raised

    return delivered()


async def adelivering_stream(guard: Guard, make: Callable[[], AsyncIterator[_T] | Awaitable[AsyncIterator[_T]]]
                             ) -> AsyncGenerator[_T, None]:
    """:func:`delivering_stream` for an async stream (each ``__anext__``, and ``aclose``, inside the call): ``make()``
    (the call that starts it, run now) returns the stream, or an awaitable of it (LlamaIndex's ``astream_complete``)."""

    async def started() -> AsyncIterator[_T]:
        made = make()
        return await made if inspect.isawaitable(made) else made

    if _DECIDED.get() is not None:
        return cast(AsyncGenerator[_T, None], await started())
    box = _Delivery()
    chunks = await box.astep(guard, started)

    async def delivered() -> AsyncGenerator[_T, None]:
        while True:
            try:
                chunk = await box.astep(guard, lambda: chunks.__anext__())
            except StopAsyncIteration:
                break
            try:
                yield chunk
            except GeneratorExit:  # as delivering_stream
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await box.astep(guard, close)
                box.settle(guard, None)
                raise
            box.handed = len(box.decided)  # as delivering_stream
        raised = box.settle(guard, None)
        if raised is not None:
            raise raised

    return delivered()


def adelivering_stream_lazy(guard: Guard, make: Callable[[], AsyncIterator[_T] | Awaitable[AsyncIterator[_T]]]
                            ) -> AsyncGenerator[_T, None]:
    """:func:`adelivering_stream` for a caller that returns the stream at once (LangChain's ``astream``): started at
    its first step; closed, it closes the stream inside the call."""

    async def chunks() -> AsyncGenerator[_T, None]:
        stream: AsyncGenerator[_T, None] = await adelivering_stream(guard, make)
        async with aclosing(stream):
            async for chunk in stream:
                yield chunk

    return chunks()


async def until_delivered(guard: Guard, make: Callable[[], Awaitable[_T]]) -> _T:
    """``await make()``, an adapter's async call, inside :func:`delivering`: cancelled or raising after the guard
    decided inside it, each decision noted by :func:`decided_here` is said never delivered."""
    with delivering(guard):
        return await make()


async def aguard_stream(
    guard: Guard,
    question: str,
    context=None,
    domain: str | None = None,
    mode: StreamMode = "hold",
    *,
    early_stop: bool = False,
    timeout: float | None = None,
    run_id: str | None = None,
    **call: Any,
) -> AsyncIterator[GuardStreamChunk]:
    """:func:`guard_stream` for asyncio: the generation runs in a worker thread, the loop stays free. Left before its
    end (a timeout, a cancel, a break), the generation stops at its next token and the cut answer is held."""
    cancel = threading.Event()
    if mode == "hold":  # passthrough makes its own, set when the stream is closed
        call = {**call, "cancel": cancel}
    taken: list[GuardStreamChunk] = []  # a chunk taken from the stream that has not reached the caller yet
    it = _guard_stream(guard, question, context, domain, mode, early_stop, timeout, run_id, taken, call)
    lock = threading.Lock()  # one step of the stream at a time: a cancelled step's thread runs on
    flag = threading.Lock()
    state = {"started": False, "gone": False}  # whether a step ever ran; whether the caller left

    def step() -> GuardStreamChunk | None:
        with flag:
            if state["gone"] and not state["started"]:  # the caller left while this waited for a worker: said below
                return None
            state["started"] = True
        with lock:
            chunk = next(it, None)
            if chunk is not None:
                taken.append(chunk)
            return chunk

    def close() -> None:
        with lock:  # after the step in flight: closing a running generator raises "already executing"
            lost = [c.result for c in taken if c.result is not None]
            it.close()  # an abandoned stream still waits for the guard's record
        for result in lost:
            guard.record_undelivered(result, CANCELLED, run_id=run_id)

    ended = False
    try:
        while True:
            chunk = await to_thread_awake(step)
            taken.clear()
            if chunk is None:
                ended = True
                return
            yield chunk
    finally:
        if ended:  # read to its end: its decision is recorded, nothing is in flight
            it.close()
        else:  # left early (a timeout, a cancel, a break): the caller goes on at once; a thread waits for the
            # step in flight, closes the stream (the guard still records its decision) and says what was not delivered
            cancel.set()
            with flag:
                state["gone"], started = True, state["started"]
            if not started:  # cancelled while its first step waited for a worker thread: nothing was generated
                guard.record_cancelled(question, context=context, domain=domain, request_id=call.get("request_id"),
                                       run_id=run_id)
            threading.Thread(target=close, name="hguard-stream-close").start()


__all__ = [
    "asks_for_actions",
    "settings_error",
    "DECISION_KEYS",
    "CONTEXT_NOT_IDENTIFIED",
    "GuardedText",
    "MIN_PASTED_CHARS",
    "appears_in",
    "pasted_changed",
    "unescaped_prompt",
    "blank",
    "context_not_identified",
    "NOTHING_RETRIEVED",
    "nothing_retrieved",
    "mentions_context",
    "label_only",
    "ROUTES",
    "check_raise_on",
    "raise_if_routed",
    "refuse_unknown_settings",
    "GuardStreamChunk",
    "STREAM_MODES",
    "StreamMode",
    "aguard_stream",
    "check_stream_mode",
    "decision_metadata",
    "error_fields",
    "guard_stream",
    "guarded_invoke",
    "decided_here",
    "after_delivery",
    "delivering",
    "delivering_stream",
    "adelivering_stream",
    "adelivering_stream_lazy",
    "raised_why",
    "to_thread_awake",
    "WAKE_S",
    "until_delivered",
    "jsonable",
    "with_text",
    "blanks_emptied",
]
