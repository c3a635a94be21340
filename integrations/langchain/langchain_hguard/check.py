"""``HGuardCheck``: an answer produced elsewhere in the chain (another server of the same weights, a stored answer)
scored by the guard (``Guard.check``), as a composable LangChain runnable."""

from __future__ import annotations

import uuid
from typing import Any, Optional, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import get_config_list
from pydantic import ConfigDict, Field, ValidationError, model_validator

from hguard.errors import InputError
from hguard.guard import Guard, GuardResult, _join_context
from hguard.streaming import (decided_here, delivering, in_thread, refuse_unknown_settings, settings_error,
                              until_delivered)

from .chat_models import (_as_kind, batch_failed_why, decided_by, message_text, response_metadata, run_ids,
                          say_undelivered, usage_metadata)
from .retrieval import parent_run_of
from .runnables import read_passages

#: the keys an HGuardCheck input dict may hold
_INPUT_KEYS = ("question", "answer", "context", "documents", "domain")
#: the keyword arguments a call takes (``invoke(x, domain=...)``, ``batch(xs, served=False)``, ``.bind(...)``)
_CALL_KEYWORDS = ("domain", "served")
_SOURCE = "HGuardCheck"
#: the fix named when a setting is refused at construction
_SETTING_FIXES = {"guard": "pass the hguard Guard that scores the answers (Guard.from_policy(...))",
                  "domain": "name a domain of the policy, or leave it out (None) to choose one by similarity",
                  "served": "pass True where the answers are shown to users, False for an evaluation"}

#: (question, answer, passages, domain, problems, sources, usage) of one input; usage: the answer message's own
#: ``usage_metadata`` (the counts of the server that wrote it), None for an answer given as text or without one
Parsed = tuple[str, str, Optional[list[str]], Optional[str], list[str], list[str], Optional[UsageMetadata]]


def checked_message(guard: Guard, result: GuardResult, passages: Optional[Sequence[str]] = None,
                    sources: Sequence[str] = (), usage: Optional[UsageMetadata] = None) -> AIMessage:
    """What a chain gets for a checked answer, as it gets a :class:`~langchain_hguard.ChatHGuard` answer: the text
    a user should see (the answer when accepted, else the abstain or review text), the decision in
    ``response_metadata`` (``route``, ``risk``, ``reasons``, ``audit_id``, ``answer_source``, ...) with ``sources``
    (where the passages came from, as :class:`~langchain_hguard.GuardedRAG`'s answer names them), and the token
    counts in ``usage_metadata``: ``usage``, the answer message's own (what the server that wrote it counted: the
    chain's real usage), where it carried one; else the guard's (its prompt from ``passages``, and the answer it
    scored)."""
    return AIMessage(content=result.display_text,
                     response_metadata={**response_metadata(guard, result), "sources": list(sources)},
                     usage_metadata=usage if usage is not None else usage_metadata(guard, result.question, passages,
                                                                                   result))


def _blocks_other_than_text(message: BaseMessage) -> Optional[str]:
    """The kind of a message's first content block that is not text (an image), if any."""
    for block in message.content if isinstance(message.content, list) else []:
        if not isinstance(block, str) and not (isinstance(block, dict) and block.get("type") == "text"):
            return str(block.get("type") if isinstance(block, dict) else type(block).__name__)
    return None


class HGuardCheck(RunnableSerializable[dict, AIMessage]):
    """Score an answer the guard did not generate (:meth:`hguard.guard.Guard.check`), routed accept / abstain / review
    as a generated one: the same model's weights served by another server (``ChatOpenAI(base_url=...)`` of a vLLM or
    llama.cpp server), or stored answers under evaluation.

    Input: ``{"question": str, "answer": str | AIMessage}`` (an answer as another chat model returns it: its text
    content blocks are read), with an optional ``"context"`` (a string, a list of strings, or a list of Documents as a
    retriever returns them) or ``"documents"`` (a retriever's output, as :class:`GuardedRAG` takes it), and an optional
    ``"domain"`` overriding :attr:`domain`. Any other key is refused, as are an answer or question that is not text
    (an :class:`~hguard.errors.InputError` naming the key and the fix, on record). A dict carrying ``"context"`` or
    ``"documents"`` with no passage of text goes to review (nothing retrieved), never read as closed-book.

    Output: an ``AIMessage`` as :class:`ChatHGuard` returns one: its content the text a user should see (the answer
    when accepted, the abstain message, or the review text), its ``response_metadata`` the decision (``route``,
    ``risk``, ``reasons``, ``audit_id``, ``answer_source``: ``"given"``, ...), so ``| GuardedOutputParser()`` or
    ``| StrOutputParser()`` follow it as they follow ``ChatHGuard``. An answer that is not token for token this model's
    own greedy answer goes to review, never accepted. ``batch`` scores its inputs in one :meth:`Guard.check_batch`.

    ``served`` defaults to True: a chain's output is shown to users, so its decisions are live traffic, which the
    monitor counts (spot-check estimate, verdicts, drift) as it counts generated answers; left False for a served
    answer, a hallucination it passes would be missing from every live figure. Pass ``served=False`` for an
    evaluation or a log scored again (the monitor leaves those out: they served no one). A call's ``domain=`` and
    ``served=`` override the fields (``batch(xs, served=False)``, ``.bind(served=False)``); any other keyword is
    refused, never dropped.

    The other server must be sent the guard's own prompt, :meth:`Guard.prompt_messages` (the policy's system prompt,
    the guard's context framing), greedy, capped at the policy's ``max_new_tokens``: an answer written from the
    chain's own prompt is not the model's own answer to the guard's prompt, and goes to review; one longer than
    ``max_new_tokens`` is refused.

    .. code-block:: python

        other = ChatOpenAI(base_url="http://localhost:8000/v1", model="HuggingFaceTB/SmolLM2-135M-Instruct",
                           temperature=0, max_tokens=guard.generator.max_new_tokens)
        asked = RunnableLambda(lambda x: guard.prompt_messages(x["question"], x["context"]))  # the guard's prompt
        chain = RunnablePassthrough.assign(answer=asked | other) | HGuardCheck(guard=guard, domain="mine")
        chain.invoke({"question": q, "context": passages}).response_metadata["route"]
    """

    guard: Guard = Field(exclude=True)
    """The hguard ``Guard`` whose model, probes, policy and audit log score the answers."""
    domain: Optional[str] = None
    """Domain of every question; ``None`` lets the guard choose by embedding similarity."""
    served: bool = Field(default=True, strict=True)
    """Whether the answers are shown to users as they route (live traffic); False for an evaluation."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _known_settings(cls, data: Any) -> Any:
        return refuse_unknown_settings(cls, data)  # HGuardCheck(domian=...) would be ignored, the domain chosen by similarity

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:  # pydantic's four lines and a URL: one line naming the setting and the fix
            raise settings_error(type(self).__name__, exc, _SETTING_FIXES) from None

    # -------------------------------------------------------------------------------- parsing

    def _settings(self, kwargs: dict[str, Any]) -> tuple[Optional[str], bool]:
        """(domain, served) of a call: its ``domain=`` and ``served=`` keywords, else the fields'. Any other keyword is
        refused, never dropped (a ``served=False`` evaluation was recorded as live traffic, a ``domain=`` chosen by
        similarity instead)."""
        unknown = sorted(str(k) for k in kwargs if k not in _CALL_KEYWORDS)
        if unknown:
            raise InputError(f"HGuardCheck got the keyword argument(s) {unknown}; a call takes domain= (a domain of the "
                             "policy) and served= (True or False) only: leave the others out")
        domain = kwargs.get("domain", self.domain)
        if isinstance(domain, str) and not domain.strip():
            raise InputError(f"HGuardCheck domain={domain!r} names no domain; name a domain of the policy, or leave "
                             "domain out (None) to choose one by similarity")
        served = kwargs.get("served", self.served)
        if type(served) is not bool:  # "false" is truthy: an evaluation would be counted as live traffic
            raise InputError(f"HGuardCheck served= must be True or False, got {type(served).__name__} {served!r:.40}; "
                             "pass True where the answers are shown to users, False for an evaluation")
        return domain, served

    def _refused(self, value: Any, exc: InputError, domain: Optional[str], run_id: Optional[str]) -> InputError:
        """``exc`` after writing the refused input to the guard's audit log (an ``error`` record of this adapter's,
        its id on the error as ``audit_id``, the answer given in it). An input with no 'question' (not a dict, or a
        dict of other keys: ``{"query": q, "response": a}``) is recorded whole as the question, as given: the record
        held 'None', the input lost."""
        got = value if isinstance(value, dict) else {}
        answer = got.get("answer")
        named = got.get("domain")
        self.guard.record_failure(
            got.get("question", value), exc,
            domain=named if isinstance(named, str) and named.strip() else domain, source=_SOURCE, run_id=run_id,
            given={"answer": answer.content if isinstance(answer, BaseMessage) else answer})
        return exc

    def _parse(self, value: Any, kwargs: dict[str, Any], run_id: Optional[str] = None, where: str = "") -> Parsed:
        """(question, answer, passages, domain, problems) read from the chain's input and the call's keywords, and
        checked as the guard checks an input (so that a refusal names this input, ``where`` in the caller's batch);
        a refused input is written to the guard's audit log as this adapter's."""
        try:
            domain, _ = self._settings(kwargs)
        except InputError as exc:
            raise self._refused(value, exc, None, run_id) from None
        try:
            return self._read(value, domain)
        except InputError as exc:
            raise self._refused(value, InputError(f"{where}{exc}") if where else exc, domain, run_id) from None

    def _read(self, value: Any, domain: Optional[str]) -> Parsed:
        if not isinstance(value, dict):
            raise InputError(f"HGuardCheck takes a dict with 'question' and 'answer' (and optionally 'context'), got "
                             f"{type(value).__name__}: {value!r:.80}")
        missing = [k for k in ("question", "answer") if k not in value]
        if missing:
            raise InputError(f"HGuardCheck input needs the key(s) {missing}; got keys {sorted(map(str, value))}: pass "
                             "{'question': ..., 'answer': ...} (e.g. with RunnableParallel or RunnablePassthrough.assign)")
        unknown = sorted(str(k) for k in value if k not in _INPUT_KEYS)
        if unknown:  # "docs", "response": the passages or the answer would be dropped unread
            raise InputError(
                f"HGuardCheck does not read the input key(s) {unknown}; it reads {', '.join(map(repr, _INPUT_KEYS))}: "
                "name the answer 'answer' and the retrieved passages 'context' or 'documents', and leave other keys "
                "out (e.g. with operator.itemgetter)")
        question = value["question"]
        if not isinstance(question, str):
            raise InputError(f"HGuardCheck 'question' must be a string, got {type(question).__name__}: {question!r:.80}")
        answer, usage = value["answer"], None
        if isinstance(answer, ChatMessage) and isinstance(_as_kind(answer), AIMessage):
            answer = _as_kind(answer)  # ChatMessage(role="assistant"), as a chat model's AIMessage (it was refused)
        if isinstance(answer, BaseMessage):
            if not isinstance(answer, AIMessage):  # a HumanMessage was scored as the model's answer
                what = type(answer).__name__ + (f" with role {answer.role!r:.40}" if isinstance(answer, ChatMessage) else "")
                raise InputError(f"HGuardCheck 'answer' is a {what}, not the model's answer; pass the "
                                 "chat model's AIMessage (its output) or the answer's text")
            if getattr(answer, "tool_calls", None):
                raise InputError("HGuardCheck 'answer' is a message with tool calls; the guard scores a free-text "
                                 "answer: pass the final answer's message or its text")
            kind = _blocks_other_than_text(answer)
            if kind is not None:  # (ChatHGuard's refusal asks for the question as text)
                raise InputError(f"HGuardCheck 'answer' is a message holding a {kind!r} content block; the guard scores "
                                 "a text answer (its probes were calibrated on text): pass the answer's text alone")
            usage = answer.usage_metadata or None  # the writing server's counts: kept on the decision's message
            answer = message_text(answer)
        if not isinstance(answer, str):
            raise InputError(f"HGuardCheck 'answer' must be a string or a chat model's message, got "
                             f"{type(answer).__name__}: {answer!r:.80}; pass the answer's text (or the AIMessage)")
        if "domain" in value and value["domain"] is not None:
            if isinstance(value["domain"], str) and not value["domain"].strip():  # an empty field is not "no domain"
                raise InputError(f"HGuardCheck 'domain' is {value['domain']!r}, which names no domain; name a domain of "
                                 "the policy, or leave the key out (or None) for the call's domain")
            domain = value["domain"]
        passages, sources, problems = read_passages(value, "HGuardCheck", documents_in_context=True)
        # the guard's own checks (a blank answer, one over max_new_tokens, a domain that is no name), here: refused
        # as this input, by this adapter (in a batch of the inputs kept, the guard numbered it among those alone)
        self.guard._check_input(question, _join_context(passages), None, None, domain, answer=answer)
        return question, answer, passages, domain, problems, sources, usage

    # ----------------------------------------------------------------------------- invocation

    def _check(self, value: Any, kwargs: dict[str, Any], run_id: Any, parent: Any) -> AIMessage:
        question, answer, context, domain, problems, sources, usage = self._parse(value, kwargs, str(run_id))
        [result] = self.guard.check_batch([question], [answer], [context], [domain], runs=[run_ids(run_id, parent)],
                                          served=self._settings(kwargs)[1], problems=[problems])
        decided_here([result], str(run_id))  # said undelivered if the call raises before it returns it
        return checked_message(self.guard, result, context, sources, usage)

    def invoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> AIMessage:
        """The decision on one answer; ``domain=`` and ``served=`` override the fields for this call. Raising after
        the guard decided (a handler failing in ``on_chain_end``), the log says the answer never reached the caller
        (:func:`hguard.streaming.delivering`)."""
        def run(value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> AIMessage:
            return self._check(value, kwargs, run_manager.run_id, run_manager.parent_run_id)

        with delivering(self.guard):
            return self._call_with_config(run, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> AIMessage:
        async def run(value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig) -> AIMessage:
            return await in_thread(self.guard, self._check, value, kwargs, run_manager.run_id,
                                   run_manager.parent_run_id, decided=lambda m: [decided_by(m.response_metadata)],
                                   run_id=str(run_manager.run_id))

        return await until_delivered(self.guard, lambda: self._acall_with_config(run, input, config, run_type="chain"))

    # ----------------------------------------------------------------------------------- batches

    def _decide(self, inputs: list[Any], configs: list[RunnableConfig], return_exceptions: bool,
                kwargs: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """(each input's decision (or, with ``return_exceptions``, its refusal, naming its index in ``inputs``) from
        one :meth:`Guard.check_batch`, each input as read (:data:`Parsed`, or its refusal)); a refused input raises
        without ``return_exceptions`` before anything is scored (a batch is answered whole or not at all), each refusal
        on record."""
        for cfg in configs:  # the runs that deliver the decisions: named in the decision records
            cfg["run_id"] = cfg.get("run_id") or uuid.uuid4()
        try:
            _, served = self._settings(kwargs)
        except InputError as exc:  # the call's, not an input's: refused whatever return_exceptions says
            raise self._refused(inputs[0] if len(inputs) == 1 else {"question": [
                x.get("question", x) if isinstance(x, dict) else x for x in inputs]}, exc, None, None) from None
        n = len(inputs)
        read: list[Any] = []
        for i, (x, cfg) in enumerate(zip(inputs, configs)):
            try:
                read.append(self._parse(x, kwargs, str(cfg["run_id"]),
                                        f"input {i} of {n} (counting from 0): " if n > 1 else ""))
            except InputError as exc:
                if not return_exceptions:
                    raise
                read.append(exc)
        kept = [i for i, r in enumerate(read) if not isinstance(r, Exception)]
        out: list[Any] = list(read)
        while kept:
            try:
                results = self.guard.check_batch(
                    [read[i][0] for i in kept], [read[i][1] for i in kept], [read[i][2] for i in kept],
                    [read[i][3] for i in kept], runs=[run_ids(configs[i]["run_id"], parent_run_of(configs[i]))
                                                      for i in kept],
                    served=served, problems=[read[i][4] for i in kept])
            except InputError as exc:  # the guard refused some after all (checked above as it checks them): on record
                refused: dict[int, InputError] = getattr(exc, "refused", None) or {}
                if not return_exceptions or not refused:
                    raise
                for j, err in refused.items():
                    out[kept[j]] = err
                kept = [i for j, i in enumerate(kept) if j not in refused]
                continue
            for i, r in zip(kept, results):
                out[i] = r
            break
        return out, read

    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """One :meth:`Guard.check_batch` for all inputs, then one LangChain run per input (callbacks and tracing see
        each check as its own chain run, whose id its decision record names)."""
        configs = get_config_list(config, len(inputs))
        decided, read = self._decide(list(inputs), configs, return_exceptions, kwargs)
        messages: list[Any] = []
        for x, cfg, d, parsed in zip(inputs, configs, decided, read):
            def deliver(_: Any, d: Any = d, parsed: Any = parsed) -> AIMessage:
                if isinstance(d, Exception):
                    raise d
                return checked_message(self.guard, d, parsed[2], parsed[5], parsed[6])

            try:
                with delivering(self.guard):
                    if isinstance(d, GuardResult):
                        decided_here([d], str(cfg["run_id"]))
                    messages.append(self._call_with_config(deliver, x, cfg, run_type="chain"))
            except Exception as exc:
                if not return_exceptions:  # none of the others reaches the caller either: said so, as ChatHGuard does
                    i = len(messages)
                    say_undelivered(self.guard, [r if j != i and isinstance(r, GuardResult) else None
                                                 for j, r in enumerate(decided)], configs, batch_failed_why(i, exc))
                    raise
                messages.append(exc)
        return messages

    async def abatch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """:meth:`batch` in a worker thread (the event loop free meanwhile)."""
        return await in_thread(
            self.guard, lambda: self.batch(inputs, config, return_exceptions=return_exceptions, **kwargs),
            decided=lambda out: [decided_by(m.response_metadata) for m in out or [] if isinstance(m, AIMessage)])


__all__ = ["HGuardCheck", "checked_message"]
