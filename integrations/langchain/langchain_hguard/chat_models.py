"""``ChatHGuard``: a LangChain chat model whose every answer went through an hguard ``Guard``."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import Field, PrivateAttr

from hguard.errors import InputError
from hguard.guard import Guard, GuardResult

from hguard.streaming import (  # DECISION_KEYS: keys of AIMessage.response_metadata with the guard's decision
    DECISION_KEYS,
    STREAM_MODES,
    _invoke_kwargs,
    check_stream_mode,
    decision_metadata,
    guard_stream,
    guarded_invoke,
)
CONTEXT_NAME = "context"
# kwarg that hands a result computed by one batched generation to the per-input run (internal)
_PRECOMPUTED = "_hguard_precomputed"
_CHUNK_HAS_POSITION = "chunk_position" in AIMessageChunk.model_fields


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def split_messages(messages: Sequence[BaseMessage], *, system_as_context: bool = True) -> tuple[str, list[str]]:
    """(question, context passages) from a chat: the last human message is the question; messages
    named ``"context"`` (any role) and, with ``system_as_context``, system messages are context.
    Earlier turns and AI messages are not passed to the guard, which answers one question."""
    question = None
    for m in reversed(messages):
        if m.type == "human" and getattr(m, "name", None) != CONTEXT_NAME:
            question = message_text(m)
            break
    if question is None:
        raise InputError(
            f"ChatHGuard needs a human message holding the question; got roles {[m.type for m in messages]}"
        )
    context = [
        message_text(m)
        for m in messages
        if getattr(m, "name", None) == CONTEXT_NAME or (system_as_context and m.type == "system")
    ]
    return question, [c for c in context if c.strip()]


@dataclass
class _Call:
    question: str
    context: Any
    domain: str | None
    stream_mode: str
    early_stop: bool
    precomputed: str | None


class ChatHGuard(BaseChatModel):
    """A local Hugging Face chat model guarded by hguard, as a LangChain chat model.

    Each call is one guarded answer: the last human message is the question; context comes from the
    ``context=`` call argument (a string or a list of passages) or else from system messages and
    messages named ``"context"``. The returned message's content is what a user should see (the
    answer on accept, the abstain message on abstain, ``"[needs review] "`` + answer on review) and
    its ``response_metadata`` holds the decision: ``route``, ``risk``, ``signals``, ``reasons``,
    ``audit_id``, ``domain`` (plus ``request_id``, ``probe_id``, ``thresholds``, ``model_name``).

    Streaming follows ``stream_mode``: ``"hold"`` (default) yields the routed text once decided, so
    nothing unchecked reaches the user; ``"passthrough"`` yields tokens as generated and puts the
    decision in the last chunk's ``response_metadata``.

    .. code-block:: python

        from hguard.guard import Guard
        from langchain_hguard import ChatHGuard

        chat = ChatHGuard(guard=Guard.from_policy())
        msg = chat.invoke("What is the capital of France?", context=["Paris is the capital of France."])
        msg.content, msg.response_metadata["route"]
    """

    guard: Guard = Field(exclude=True)
    """The hguard ``Guard`` (model, policy, probes, audit log) that answers."""
    domain: str | None = None
    """Domain of every question; ``None`` lets the guard choose by embedding similarity."""
    stream_mode: Literal["hold", "passthrough"] = "hold"
    early_stop: bool = False
    """Stop generating once the running risk passes the abstain threshold (hold mode and invoke)."""
    system_as_context: bool = True
    """Treat system messages as retrieved context (the guard's own system prompt comes from the policy)."""

    _precomputed: dict[str, GuardResult] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_policy(
        cls, policy: str | Path | Any = None, *, model: str = "default", lm: Any = None, **kwargs: Any
    ) -> "ChatHGuard":
        """Build the guard from a policy file (or ``Policy``) and wrap it; ``kwargs`` set the fields."""
        from hguard.signals.embedding import get_embedder

        # the shared embedder passed up front (it loads lazily): a Guard that creates it itself while
        # creating its grounding scorer deadlocks on its non-reentrant lazy lock
        guard = Guard.from_policy(policy, model=model, lm=lm, embedder=get_embedder())
        return cls(guard=guard, **kwargs)

    # ----------------------------------------------------------------------------- identification

    @property
    def _llm_type(self) -> str:
        return "hguard"

    @property
    def model_name(self) -> str:
        return self.guard.lm.name

    @property
    def _identifying_params(self) -> dict[str, Any]:
        source = getattr(self.guard.policy, "source", None)
        return {
            "model_name": self.model_name,
            "model_fingerprint": self.guard.lm.fingerprint,
            "policy": str(source) if source is not None else None,
            "domain": self.domain,
            "stream_mode": self.stream_mode,
            "early_stop": self.early_stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "hguard"
        params["ls_model_name"] = self.model_name
        return params

    # ---------------------------------------------------------------------------------- helpers

    def _parse(self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Call:
        if stop:
            raise ValueError(
                "ChatHGuard does not support stop sequences: the guard scores the whole answer it generates"
            )
        kw = dict(kwargs)
        context = kw.pop("context", None)
        domain = kw.pop("domain", None) or self.domain
        mode = check_stream_mode(kw.pop("stream_mode", self.stream_mode))
        early_stop = bool(kw.pop("early_stop", self.early_stop))
        key = kw.pop(_PRECOMPUTED, None)
        kw.pop("stream", None)
        if kw:
            raise TypeError(
                f"ChatHGuard got unexpected keyword argument(s) {sorted(kw)}; it accepts context=, domain=, "
                f"stream_mode= ({', '.join(STREAM_MODES)}) and early_stop="
            )
        question, passages = split_messages(messages, system_as_context=self.system_as_context)
        if context is None and passages:
            context = passages
        return _Call(question, context, domain, mode, early_stop, key)

    def _take(self, key: str | None) -> GuardResult | None:
        if key is None:
            return None
        with self._lock:
            return self._precomputed.pop(key, None)

    def response_metadata(self, result: GuardResult) -> dict[str, Any]:
        """What goes into ``AIMessage.response_metadata``: the decision and the model's name."""
        return {"model_name": self.model_name, **decision_metadata(result)}

    def _chunk(self, text: str, result: GuardResult | None) -> ChatGenerationChunk:
        extra: dict[str, Any] = {}
        if result is not None and _CHUNK_HAS_POSITION:
            extra["chunk_position"] = "last"
        meta = self.response_metadata(result) if result is not None else {}
        return ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=meta, **extra))

    # ------------------------------------------------------------------------------ generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._parse(messages, stop, kwargs)
        result = self._take(call.precomputed) or guarded_invoke(
            self.guard, call.question, call.context, call.domain, early_stop=call.early_stop
        )
        message = AIMessage(content=result.display_text, response_metadata=self.response_metadata(result))
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._parse(messages, stop, kwargs)
        result = self._take(call.precomputed)
        if result is not None:  # already generated in a batch: nothing left to stream but the decision
            yield self._chunk(result.display_text, result)
            return
        for piece in guard_stream(
            self.guard, call.question, call.context, call.domain, call.stream_mode, early_stop=call.early_stop
        ):
            yield self._chunk(piece.text, piece.result)

    # ----------------------------------------------------------------------------------- batches

    def _batch_calls(self, inputs: list[Any], kwargs: dict[str, Any]) -> list[_Call] | None:
        rest = {k: v for k, v in kwargs.items() if k != "stop"}
        try:
            return [self._parse(self._convert_input(x).to_messages(), kwargs.get("stop"), rest) for x in inputs]
        except (InputError, ValueError, TypeError):
            return None  # let the per-input path raise (or return) each input's own error

    def _stash(self, results: list[GuardResult]) -> list[str]:
        keys = [uuid.uuid4().hex for _ in results]
        with self._lock:
            self._precomputed.update(zip(keys, results))
        return keys

    def _drop(self, keys: list[str]) -> None:
        with self._lock:
            for k in keys:
                self._precomputed.pop(k, None)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """One batched generation for all inputs (``Guard.batch`` groups them by domain), then one
        LangChain run per input (callbacks, tracing and audit see every call as usual)."""
        calls = self._batch_calls(list(inputs), kwargs) if len(inputs) > 1 else None
        if calls is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        try:
            results = self.guard.batch(
                [c.question for c in calls], [c.context for c in calls], [c.domain for c in calls],
                **_invoke_kwargs(calls[0].early_stop),
            )
        except InputError:  # raised before anything was generated or recorded
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        keys = self._stash(results)
        out: list[Any] = []
        try:
            for x, cfg, key in zip(inputs, configs, keys):
                try:
                    out.append(self.invoke(x, cfg, **kwargs, **{_PRECOMPUTED: key}))
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    out.append(exc)
        finally:
            self._drop(keys)
        return out

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        calls = self._batch_calls(list(inputs), kwargs) if len(inputs) > 1 else None
        if calls is None:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        try:
            results = await asyncio.to_thread(
                self.guard.batch, [c.question for c in calls], [c.context for c in calls], [c.domain for c in calls],
                **_invoke_kwargs(calls[0].early_stop),
            )
        except InputError:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        keys = self._stash(results)
        out: list[Any] = []
        try:
            for x, cfg, key in zip(inputs, configs, keys):
                try:
                    out.append(await self.ainvoke(x, cfg, **kwargs, **{_PRECOMPUTED: key}))
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    out.append(exc)
        finally:
            self._drop(keys)
        return out


__all__ = ["ChatHGuard", "DECISION_KEYS", "message_text", "split_messages"]
