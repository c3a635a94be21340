"""``GuardedRAG``: retrieved documents in, a routed answer out, as a composable LangChain runnable."""

from __future__ import annotations

from typing import Any, Optional, Union

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableParallel, RunnablePassthrough, RunnableSerializable
from langchain_core.runnables.config import patch_config
from pydantic import BaseModel, Field

from hguard.errors import InputError

from .chat_models import ChatHGuard

RAGInput = Union[str, dict[str, Any]]


class GuardedAnswer(BaseModel):
    """The routed answer of a :class:`GuardedRAG` call."""

    answer: str
    """What the user should see: the answer, the abstain message, or the answer marked for review."""
    route: str
    """``"accept"``, ``"abstain"`` or ``"review"``."""
    risk: Optional[float] = None
    reasons: list[str] = Field(default_factory=list)
    audit_id: str = ""
    domain: Optional[str] = None
    sources: list[str] = Field(default_factory=list)
    """Where the grounding passages came from (each document's ``metadata[source_key]`` or its id)."""
    signals: dict[str, Optional[float]] = Field(default_factory=dict)

    @classmethod
    def from_message(cls, message: AIMessage, sources: list[str]) -> "GuardedAnswer":
        meta = message.response_metadata
        content = message.content if isinstance(message.content, str) else str(message.content)
        return cls(
            answer=content,
            route=meta["route"],
            risk=meta.get("risk"),
            reasons=list(meta.get("reasons") or []),
            audit_id=meta.get("audit_id") or "",
            domain=meta.get("domain"),
            sources=sources,
            signals=dict(meta.get("signals") or {}),
        )


class GuardedRAG(RunnableSerializable[RAGInput, GuardedAnswer]):
    """Answer a question from retrieved documents through the guard, and return the routed answer.

    Input: ``{"question": str, "documents": list[Document]}`` (the output of any retriever),
    ``{"question": str, "context": str | list[str]}``, or a bare question string (no context). An
    optional ``"domain"`` key overrides :attr:`domain`. The documents' text is the grounding context
    the guard scores the answer against. Output: a :class:`GuardedAnswer`.

    The model call goes through :attr:`llm` (a :class:`ChatHGuard`) as a child run, so callbacks
    such as :class:`HGuardAuditCallbackHandler` see it. Composes like any runnable:

    .. code-block:: python

        chain = {"question": RunnablePassthrough(), "documents": retriever} | GuardedRAG(llm=chat)
        chain.invoke("What is the capital of France?").route
    """

    llm: ChatHGuard
    domain: Optional[str] = None
    source_key: str = "source"
    """Document metadata key naming a document's source (the document id is used when missing)."""

    @classmethod
    def from_guard(cls, guard: Any, **kwargs: Any) -> "GuardedRAG":
        return cls(llm=ChatHGuard(guard=guard), **kwargs)

    # -------------------------------------------------------------------------------- parsing

    def _parse(self, value: RAGInput) -> tuple[str, Optional[list[str]], list[str], Optional[str]]:
        if isinstance(value, str):
            return value, None, [], self.domain
        if not isinstance(value, dict):
            raise InputError(
                f"GuardedRAG takes a question string or a dict with 'question' and 'documents' or 'context', "
                f"got {type(value).__name__}"
            )
        if "question" not in value:
            raise InputError(f"GuardedRAG input needs a 'question' key; got keys {sorted(value)}")
        question = value["question"]
        domain = value.get("domain") or self.domain
        passages: list[str] = []
        sources: list[str] = []
        for i, doc in enumerate(value.get("documents") or []):
            if isinstance(doc, Document):
                passages.append(doc.page_content)
                src = doc.metadata.get(self.source_key) or doc.id or f"document {i}"
            elif isinstance(doc, str):
                passages.append(doc)
                src = f"document {i}"
            else:
                raise InputError(f"GuardedRAG 'documents' must hold Documents or strings, got {type(doc).__name__} at {i}")
            if str(src) not in sources:
                sources.append(str(src))
        context = value.get("context")
        if context is not None:
            if isinstance(context, str):
                passages.append(context)
            elif isinstance(context, (list, tuple)) and all(isinstance(c, str) for c in context):
                passages.extend(context)
            else:
                raise InputError(f"GuardedRAG 'context' must be a string or a list of strings, got {type(context).__name__}")
        passages = [p for p in passages if p.strip()]
        return question, (passages or None), sources, domain

    # ----------------------------------------------------------------------------- invocation

    def _run(self, value: RAGInput, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> GuardedAnswer:
        question, context, sources, domain = self._parse(value)
        message = self.llm.invoke(
            [HumanMessage(content=question)],
            patch_config(config, callbacks=run_manager.get_child()),
            context=context,
            domain=domain,
        )
        return GuardedAnswer.from_message(message, sources)

    async def _arun(self, value: RAGInput, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig) -> GuardedAnswer:
        question, context, sources, domain = self._parse(value)
        message = await self.llm.ainvoke(
            [HumanMessage(content=question)],
            patch_config(config, callbacks=run_manager.get_child()),
            context=context,
            domain=domain,
        )
        return GuardedAnswer.from_message(message, sources)

    def invoke(self, input: RAGInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> GuardedAnswer:
        return self._call_with_config(self._run, input, config, run_type="chain")

    async def ainvoke(self, input: RAGInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> GuardedAnswer:
        return await self._acall_with_config(self._arun, input, config, run_type="chain")


def create_guarded_rag_chain(
    retriever: Runnable, llm: ChatHGuard, *, domain: Optional[str] = None, source_key: str = "source"
) -> Runnable[str, GuardedAnswer]:
    """``question -> {question, documents: retriever(question)} -> GuardedRAG``: a question string in, a
    :class:`GuardedAnswer` out."""
    return RunnableParallel(question=RunnablePassthrough(), documents=retriever) | GuardedRAG(
        llm=llm, domain=domain, source_key=source_key
    )


__all__ = ["GuardedAnswer", "GuardedRAG", "create_guarded_rag_chain"]
