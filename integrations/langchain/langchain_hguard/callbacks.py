"""``HGuardAuditCallbackHandler``: one hguard audit record (kind ``"llm_call"``) per LLM call of a chain."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Sequence
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from hguard._privacy import redacted
from hguard.audit import AuditLog, append_warned
from hguard.errors import strict_bool
from hguard.streaming import after_delivery, error_fields, jsonable

from .chat_models import DECISION_KEYS, any_text, read_chat
from .retrieval import CAPTURE


KIND = "llm_call"
_log = logging.getLogger(__name__)


def _decision(generation: Any) -> dict[str, Any] | None:
    if not isinstance(generation, ChatGeneration):
        return None
    meta = generation.message.response_metadata or {}
    if "route" not in meta or "audit_id" not in meta:
        return None  # not an hguard answer
    return {k: meta[k] for k in DECISION_KEYS if k in meta}


def _step(generation: Any) -> dict[str, Any] | None:
    """A retrieval step's call (``response_metadata["hguard_step"]``): the step and its ``retrieval_query`` record."""
    meta = (generation.message.response_metadata or {}) if isinstance(generation, ChatGeneration) else {}
    if meta.get("hguard_step") != "retrieval_query":
        return None
    return {"hguard_step": meta["hguard_step"], "retrieval_query_audit_id": meta.get("retrieval_query_audit_id")}


class HGuardAuditCallbackHandler(BaseCallbackHandler):
    """Writes one audit record of kind ``"llm_call"`` for every LLM or chat-model call it sees.

    The record (written when the call ends or fails) holds the run ids, the model, the run's tags and metadata
    (hashed in a redacting log: they often name the user), the question and
    context (``question`` / ``context`` / ``answer`` fields, so a redacting ``AuditLog`` hashes them),
    the answer text, the duration, the status and, when the model is :class:`ChatHGuard`, the guard's
    decision under ``"hguard"`` with ``decision_audit_id`` pointing at the guard's own ``decision``
    record, or, for a retrieval step's call that made no decision (a question rewrite, a retriever's queries or
    filter), ``hguard_step`` and ``retrieval_query_audit_id`` pointing at its ``retrieval_query`` record. ``record_starts=True`` also writes a record when each call starts (``"event": "start"``).

    ``raise_error`` is True: LangChain logs and swallows handler exceptions otherwise, and a failed
    audit write must reach the caller rather than be lost silently.

    .. code-block:: python

        handler = HGuardAuditCallbackHandler.from_guard(chat.guard)   # same hash chain as the decisions
        chain.invoke(question, config={"callbacks": [handler]})
    """

    raise_error: bool = True

    def __init__(self, audit: AuditLog | str | os.PathLike[str], *, redact: bool = False, record_starts: bool = False) -> None:
        self.audit = audit if isinstance(audit, AuditLog) else AuditLog(audit, redact=redact)
        self.record_starts = strict_bool("HGuardAuditCallbackHandler", "record_starts", record_starts)  # "no" was True
        self._runs: dict[UUID, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_guard(cls, guard: Any, **kwargs: Any) -> "HGuardAuditCallbackHandler":
        """A handler writing into the guard's own audit log (one hash chain for decisions and calls)."""
        if guard.audit is None:
            raise ValueError("this guard has no audit log (the policy sets no [audit] path); pass an AuditLog or a path")
        return cls(guard.audit, **kwargs)

    # ------------------------------------------------------------------------------------ starts

    def _start(self, run_id: UUID, record: dict[str, Any]) -> None:
        record["started_at"] = time.time()
        with self._lock:
            self._runs[run_id] = record
        # a call that raises after its start (a handler before this one failing in its on_llm_end, so this one never
        # sees the end) is written as failed, joined to the decision it never delivered
        self._after_delivery(lambda exc: self._close_open(run_id, exc))
        if self.record_starts:
            self._append(jsonable({**record, "event": "start"}))

    def _base(self, serialized: dict[str, Any] | None, run_id: UUID, parent_run_id: UUID | None, tags, metadata, kwargs) -> dict[str, Any]:
        params = {k: v for k, v in (kwargs.get("invocation_params") or {}).items() if not str(k).startswith("_hguard")}
        name = kwargs.get("name") or (serialized or {}).get("name") or ((serialized or {}).get("id") or [None])[-1]
        return {
            "run_id": str(run_id),
            "parent_run_id": str(parent_run_id) if parent_run_id else None,
            "llm": name,
            "llm_type": params.get("_type"),
            "model_name": params.get("model_name") or params.get("model"),
            "invocation_params": jsonable({k: v for k, v in params.items() if k not in ("context",)}),
            # a run's tags and metadata often carry the user or session (a patient's name): hashed in a redacting log
            "tags": redacted(jsonable(list(tags or []))) if self.audit.redact and tags else list(tags or []),
            "metadata": (redacted(jsonable(dict(metadata))) if self.audit.redact and metadata
                         else jsonable(dict(metadata or {}))),
        }

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        record = self._base(serialized, run_id, parent_run_id, tags, metadata, kwargs)
        params = kwargs.get("invocation_params") or {}
        questions, contexts = [], []
        # the documents a retriever returned earlier in the chain and pasted into the prompt: the question and
        # context the guard will read (ChatHGuard's default reading), not the rendered template
        retrievals = CAPTURE.retrievals_for(parent_run_id) if params.get("context") is None else []
        for chat in messages:
            try:
                read = read_chat(chat, system_as_context=False, retrievals=retrievals,
                                 prompt_values=CAPTURE.prompt_values_for(parent_run_id) if retrievals else None)
                q, passages = read.question, list(read.context or [])
            except Exception:  # not a single-question chat: keep the last message as the question
                q, passages = (any_text(chat[-1]) if chat else ""), []
            questions.append(q)
            contexts.append(params.get("context") if params.get("context") is not None else (passages or None))
        record["messages"] = [[{"role": m.type, "chars": len(any_text(m))} for m in chat] for chat in messages]
        record["question"] = questions[0] if len(questions) == 1 else questions
        record["context"] = jsonable(contexts[0] if len(contexts) == 1 else contexts)
        self._start(run_id, record)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        record = self._base(serialized, run_id, parent_run_id, tags, metadata, kwargs)
        record["question"] = prompts[0] if len(prompts) == 1 else list(prompts)
        self._start(run_id, record)

    # -------------------------------------------------------------------------------------- ends

    def _after_delivery(self, write: Any) -> bool:
        """:func:`hguard.streaming.after_delivery`, a failed write raised or logged as LangChain would have done with
        it in the callback itself (``raise_error``)."""
        def run(exc: BaseException | None) -> None:
            try:
                write(exc)
            except Exception as failed:
                if self.raise_error:
                    raise
                _log.warning("Error in %s callback: %r", type(self).__name__, failed)

        return after_delivery(run)

    def _close_open(self, run_id: UUID, exc: BaseException | None) -> None:
        with self._lock:
            still_open = run_id in self._runs
        if exc is not None and still_open:
            self.on_llm_error(exc, run_id=run_id)

    def _take(self, run_id: UUID) -> dict[str, Any]:
        with self._lock:
            record = self._runs.pop(run_id, None)
        return record if record is not None else {"run_id": str(run_id)}  # the start was not seen (attached mid-run)

    def _finish(self, run_id: UUID, fields: dict[str, Any]) -> None:
        self._write(self._take(run_id), fields)

    def _write(self, record: dict[str, Any], fields: dict[str, Any]) -> None:
        started = record.pop("started_at", None)
        record.pop("_streamed", None)  # the handler's own note (see on_llm_new_token)
        record["seconds"] = time.time() - started if started is not None else None
        record.update(fields)
        self._append(jsonable(record))  # framework text as it came (a bad character escaped)

    def _append(self, record: dict[str, Any]) -> None:
        """Write one ``llm_call`` record. One the log holds though its ``append`` raised after writing it (the anchor,
        or an ``AuditLog`` subclass's own copy elsewhere, failing) is written: said as a warning, not raised as a
        failed write (:func:`hguard.audit.append_written`)."""
        append_warned(self.audit, record, kind=KIND, what=f"the {KIND} record of run {record.get('run_id')}",
                      stacklevel=2)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        generations: Sequence[Any] = [g for gens in response.generations for g in gens]
        answers = [g.text for g in generations]
        decisions = [_decision(g) for g in generations]
        fields: dict[str, Any] = {
            "event": "end",
            "status": "ok",
            "answer": answers[0] if len(answers) == 1 else answers,
            "hguard": decisions[0] if len(decisions) == 1 else decisions,
        }
        linked = [d["audit_id"] for d in decisions if d]
        fields["decision_audit_id"] = linked[0] if len(linked) == 1 else (linked or None)
        steps = [_step(g) for g in generations]
        if any(steps):  # an auditor read a rewrite's false "fact" as an answer given with no decision
            fields.update(steps[0] if len(steps) == 1 else {  # type: ignore[arg-type]
                "hguard_step": [s and s["hguard_step"] for s in steps],
                "retrieval_query_audit_id": [s and s["retrieval_query_audit_id"] for s in steps]})
        record = self._take(run_id)
        # a decided answer's record waits for ChatHGuard's call to end: a handler after this one that fails (a
        # tracer's exporter) raises instead of returning the answer, and the record then says error, not ok
        if any(decisions) and self._after_delivery(
                lambda exc: self._write(record, fields if exc is None else {**fields, **error_fields(exc)})):
            return
        self._write(record, fields)

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], *, chunk: Any = None, run_id: UUID,
                         parent_run_id: UUID | None = None, tags: list[str] | None = None, **kwargs: Any) -> None:
        """Note the decision a streamed chunk carries (the last chunk of ChatHGuard's stream): a stream closed once
        it was handed over (the client left, a timeout cancelled the chain) is joined to that decision."""
        decision = _decision(chunk)
        if decision is not None:
            with self._lock:
                if run_id in self._runs:
                    self._runs[run_id]["_streamed"] = decision

    def on_llm_error(self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        record = self._take(run_id)

        def write(_: BaseException | None) -> None:  # read when written: ChatHGuard's call names its decision on the
            fields = error_fields(error)  # error (decision_audit_id) when it ends, after LangChain said it failed
            streamed = record.pop("_streamed", None)
            if streamed is not None:  # closed after its decided chunk was handed to the caller (the chain's next
                # step, not necessarily the end user): joined to that decision, and said so
                fields.update({"hguard": streamed, "decision_audit_id": streamed["audit_id"], "decision_streamed": True})
            self._write(record, fields)

        if not self._after_delivery(write):
            write(None)


__all__ = ["HGuardAuditCallbackHandler", "KIND"]
