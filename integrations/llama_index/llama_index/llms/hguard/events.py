"""``HGuardAuditEventHandler``: hguard audit records for LlamaIndex LLM calls and queries, from the
instrumentation events (``llama_index.core.instrumentation``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextvars import ContextVar
from typing import Any, Dict, List, Optional, Tuple

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.events.query import QueryEndEvent, QueryStartEvent
from llama_index.core.instrumentation.events.span import SpanDropEvent
from pydantic import PrivateAttr

from hguard.audit import AuditLog, append_warned
from hguard.errors import strict_bool
from hguard.streaming import DECISION_KEYS, after_delivery, error_fields, jsonable

from .base import split_chat

logger = logging.getLogger(__name__)

LLM_KIND = "llm_call"
QUERY_KIND = "query"
#: the status of a query record whose engine answered after one of its LLM calls failed (see the class doc)
LLM_ERROR = "llm_error"


def _decision(meta: Optional[dict]) -> Optional[Dict[str, Any]]:
    meta = meta or {}
    if "route" not in meta or "audit_id" not in meta:
        return None  # not an hguard answer
    # audit_ids: a response joining several guarded answers (accumulate), whose audit_id is None
    return {k: jsonable(meta[k]) for k in (*DECISION_KEYS, "audit_ids") if k in meta}


def _decision_id(decision: Optional[Dict[str, Any]]) -> Any:
    """The ``decision_audit_id`` of a record: the decision's id, or the list of them of a response joining several
    (``accumulate``: its own ``audit_id`` is None), as the LangChain handler names several; None for no decision."""
    if decision is None:
        return None
    if decision.get("audit_id") is None and isinstance(decision.get("audit_ids"), list):
        return list(decision["audit_ids"]) or None
    return decision["audit_id"]


def _query_text(query: Any) -> str:
    return getattr(query, "query_str", None) or str(query)


class HGuardAuditEventHandler(BaseEventHandler):
    """Writes one audit record per LLM call (kind ``"llm_call"``) and per query (kind ``"query"``).

    Records are written when a call ends or fails (an ``ExceptionEvent`` in its span, or the span dropped by
    the exception that ended it) and hold the
    span id, the model, the question and context (``question`` / ``context`` / ``answer`` fields, so
    a redacting ``AuditLog`` hashes them), the answer, the duration, the status and, for
    :class:`HGuardLLM` answers, the guard's decision under ``"hguard"`` with ``decision_audit_id``
    pointing at the guard's own ``decision`` record (a query whose response joins several guarded answers,
    ``accumulate``'s: the list of their ids, also under ``"hguard"`` as ``audit_ids``); a failed call's record holds the error, with
    ``decision_audit_id`` for a ``raise_on`` route and ``error_audit_id`` for a request the guard refused (its
    ``error`` record). Query records also list the source nodes.

    LlamaIndex's refine and compact synthesizers (a stock ``as_query_engine()``'s) catch ``ValueError`` and
    ``TypeError`` from the LLM, hguard's ``InputError`` among them, and answer "Empty Response" as if nothing
    failed. A query record whose LLM calls failed therefore has status ``"llm_error"`` and lists them under
    ``llm_errors`` (each with its error and ids), whatever the engine answered.

    LlamaIndex's dispatcher catches and drops every exception an event handler raises. A failed
    write is therefore logged at ERROR, kept in :attr:`errors`, and raised by
    :meth:`raise_if_failed` -- which :class:`HGuardQueryEngine` calls after each query when given
    this handler as ``audit_handler``.

    .. code-block:: python

        from llama_index.core.instrumentation import get_dispatcher
        handler = HGuardAuditEventHandler.from_guard(guard)
        get_dispatcher().add_event_handler(handler)
    """

    audit: Any
    record_starts: bool = False

    _open: Dict[Tuple[str, Optional[str]], List[Dict[str, Any]]] = PrivateAttr(default_factory=dict)
    _errors: List[BaseException] = PrivateAttr(default_factory=list)
    _queries: Any = PrivateAttr(default_factory=lambda: ContextVar("hguard_open_queries", default=()))
    _llm_failures: Dict[Optional[str], List[Dict[str, Any]]] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, audit: AuditLog | str | os.PathLike[str], *, redact: bool = False, record_starts: bool = False) -> None:
        log = audit if isinstance(audit, AuditLog) else AuditLog(audit, redact=redact)
        super().__init__(audit=log, record_starts=strict_bool("HGuardAuditEventHandler", "record_starts", record_starts))

    @classmethod
    def from_guard(cls, guard: Any, **kwargs: Any) -> "HGuardAuditEventHandler":
        """A handler writing into the guard's own audit log (one hash chain for decisions and calls)."""
        if guard.audit is None:
            raise ValueError("this guard has no audit log (the policy sets no [audit] path); pass an AuditLog or a path")
        return cls(guard.audit, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "HGuardAuditEventHandler"

    # ------------------------------------------------------------------------------- failures

    @property
    def errors(self) -> List[BaseException]:
        """Audit writes that failed (and were swallowed by the dispatcher), oldest first."""
        with self._lock:
            return list(self._errors)

    def raise_if_failed(self) -> None:
        """Raise the first audit write failure seen since the last call (and forget them all)."""
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------------------- handling

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        try:
            self._handle(event)
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            logger.error("hguard audit handler could not record %s: %s: %s", event.class_name(), type(exc).__name__, exc)
            raise  # dropped by LlamaIndex's dispatcher today; kept for dispatchers that honour it

    def _push(self, family: str, event: BaseEvent, record: Dict[str, Any]) -> None:
        record = {"span_id": event.span_id, "started_at": time.time(), **record}
        with self._lock:
            self._open.setdefault((family, event.span_id), []).append(record)
        if family == "llm":  # HGuardLLM's call raising after its start with no event to say so (a legacy callback
            # handler's on_event_end failing after the guard decided): written failed, joined to its decision
            span = event.span_id
            after_delivery(lambda exc: self._close_failed(span, error_fields(exc)) if exc is not None else None)
        if self.record_starts:
            start = {k: v for k, v in record.items() if k != "started_at"}
            self._append(jsonable({**start, "event": "start"}), LLM_KIND if family == "llm" else QUERY_KIND)

    def _pop(self, family: str, span_id: Optional[str]) -> Dict[str, Any]:
        with self._lock:
            stack = self._open.get((family, span_id))
            record = stack.pop() if stack else {"span_id": span_id}
            if stack is not None and not stack:
                del self._open[(family, span_id)]
        return record

    def _write(self, family: str, record: Dict[str, Any], fields: Dict[str, Any]) -> None:
        record.pop("_streamed", None)  # noted for a stream closed early, not a field of the record
        if family == "query":  # closed: its LLM calls' failures, if any, are said in it
            span = record.get("span_id")
            self._queries.set(tuple(q for q in self._queries.get() if q != span))
            with self._lock:
                failed = self._llm_failures.pop(span, None)
            if failed:
                fields = {**fields, "llm_errors": failed}
                if fields.get("status") == "ok":
                    fields["status"] = LLM_ERROR
        elif fields.get("status") == "error" and self._queries.get():  # an LLM call of the open query failed
            failure: Dict[str, Any] = {k: fields[k] for k in ("error", "decision_audit_id", "error_audit_id") if k in fields}
            with self._lock:
                self._llm_failures.setdefault(self._queries.get()[-1], []).append({"span_id": record.get("span_id"), **failure})
        started = record.pop("started_at", None)
        record["seconds"] = time.time() - started if started is not None else None
        record.update(fields)
        decided = (fields.get("hguard") or {}).get("domain")
        if decided:  # the domain the guard answered in (the start knew only the one asked for, often none)
            record["domain"] = decided
        self._append(jsonable(record), LLM_KIND if family == "llm" else QUERY_KIND)

    def _append(self, record: Dict[str, Any], kind: str) -> None:
        """Write one record. One the log holds though its ``append`` raised after writing it (the anchor, or an
        ``AuditLog`` subclass's own copy elsewhere, failing) is written: said as a warning, not kept as a failed write
        for :meth:`raise_if_failed` (:func:`hguard.audit.append_written`)."""
        append_warned(self.audit, record, kind=kind, what=f"the {kind} record of span {record.get('span_id')}",
                      stacklevel=2)

    def _handle(self, event: BaseEvent) -> None:
        if isinstance(event, LLMCompletionStartEvent):
            kw = event.additional_kwargs or {}
            self._push("llm", event, {
                "api": "complete",
                "llm": event.model_dict.get("class_name"),
                "model_name": event.model_dict.get("model_name"),
                "question": event.prompt,
                "context": jsonable(kw.get("context")),
                "domain": kw.get("domain"),
            })
        elif isinstance(event, LLMChatStartEvent):
            try:
                question, passages = split_chat(event.messages, system_as_context=False)  # HGuardLLM's default
            except Exception:
                question, passages = ((event.messages[-1].content or "") if event.messages else ""), []
            kw = event.additional_kwargs or {}
            self._push("llm", event, {
                "api": "chat",
                "llm": event.model_dict.get("class_name"),
                "model_name": event.model_dict.get("model_name"),
                "question": question,
                "context": jsonable(kw.get("context") or passages or None),
                "domain": kw.get("domain"),
                "messages": [{"role": str(m.role.value), "chars": len(m.content or "")} for m in event.messages],
            })
        elif isinstance(event, LLMCompletionEndEvent):
            completion = event.response
            decision = _decision(completion.additional_kwargs if completion is not None else None)
            self._write("llm", self._pop("llm", event.span_id), {
                "event": "end", "status": "ok", "answer": completion.text if completion is not None else None,
                "hguard": decision, "decision_audit_id": _decision_id(decision),
            })
        elif isinstance(event, LLMChatEndEvent):
            chat = event.response
            decision = _decision(chat.message.additional_kwargs if chat is not None else None)
            self._write("llm", self._pop("llm", event.span_id), {
                "event": "end", "status": "ok", "answer": (chat.message.content if chat is not None else None),
                "hguard": decision, "decision_audit_id": _decision_id(decision),
            })
        elif isinstance(event, QueryStartEvent):
            self._push("query", event, {"question": _query_text(event.query)})
            self._queries.set(self._queries.get() + (event.span_id,))
        elif isinstance(event, QueryEndEvent):
            r = event.response
            decision = _decision(getattr(r, "metadata", None))
            sources = [
                {"node_id": n.node.node_id, "score": n.score, "file_name": n.node.metadata.get("file_name")}
                for n in (getattr(r, "source_nodes", None) or [])
            ]
            answer = getattr(r, "response", None)
            if answer is None:  # a StreamingResponse: its text is what was consumed so far
                answer = getattr(r, "response_txt", None)
            self._write("query", self._pop("query", event.span_id), {
                "event": "end", "status": "ok", "answer": answer, "sources": jsonable(sources),
                "hguard": decision, "decision_audit_id": _decision_id(decision),
            })
        elif isinstance(event, (LLMCompletionInProgressEvent, LLMChatInProgressEvent)):
            # a streamed chunk carrying the decision (a hold stream's only one, a passthrough stream's last): a
            # stream closed once it was handed over (the client left) is joined to that decision, as LangChain's is
            chunk = event.response
            decision = _decision(chunk.additional_kwargs if chunk is not None else None)
            if decision is not None:
                with self._lock:
                    stack = self._open.get(("llm", event.span_id))
                    if stack:
                        stack[-1]["_streamed"] = decision
        elif isinstance(event, ExceptionEvent):
            self._close_failed(event.span_id, error_fields(event.exception))
        elif isinstance(event, SpanDropEvent):  # an exception ended a call or query that no ExceptionEvent closed
            # (a stock engine's failed query, a stream left by its error)
            self._close_failed(event.span_id, {"event": "error", "status": "error", "error": event.err_str[:2000]})

    def _close_failed(self, span_id: Optional[str], fields: Dict[str, Any]) -> None:
        """Write the call or query still open in this span as failed, with ``fields``."""
        for family in ("llm", "query"):
            with self._lock:
                pending = (family, span_id) in self._open
            if pending:
                record = self._pop(family, span_id)
                streamed = record.pop("_streamed", None)
                if streamed is not None:  # closed after its decided chunk was handed to the caller: said so
                    fields = {**fields, "hguard": streamed, "decision_audit_id": streamed["audit_id"], "decision_streamed": True}
                self._write(family, record, dict(fields))


__all__ = ["HGuardAuditEventHandler", "LLM_ERROR", "LLM_KIND", "QUERY_KIND"]
