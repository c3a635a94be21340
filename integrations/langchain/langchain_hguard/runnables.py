"""``GuardedRAG``: retrieved documents in, a routed answer out, as a composable LangChain runnable."""

from __future__ import annotations

from functools import partial

from typing import Any, AsyncIterator, Iterator, Optional, Union

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers.transform import BaseTransformOutputParser
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSerializable,
)
from langchain_core.runnables.config import patch_config
from pydantic import model_validator
from hguard.errors import InputError
from hguard.generation import check_question
from hguard.streaming import (GuardedText, adelivering_stream_lazy, blanks_emptied, delivering, delivering_stream,
                              nothing_retrieved, refuse_unknown_settings, until_delivered)

from .chat_models import _PROBLEMS, ChatHGuard

RAGInput = Union[str, dict[str, Any]]


class GuardedAnswer(GuardedText):
    """The routed answer of a :class:`GuardedRAG` call: a string (what the user should see: the answer,
    the abstain message, or the answer marked for review), so it flows into string-typed steps such as
    ``StrOutputParser``, that also carries ``route``, ``risk``, ``reasons``, ``audit_id``, ``domain``,
    ``signals`` and ``sources`` (where the grounding passages came from). :attr:`answer` is that display
    text; the model's own answer stays in the guard's decision record (``audit_id``), so an abstained one
    cannot reach a user by accident."""

    sources: list[str]

    def __new__(
        cls, answer: str = "", route: Optional[str] = None, risk: Optional[float] = None, *,
        reasons: Optional[list[str]] = None, audit_id: str = "", domain: Optional[str] = None,
        sources: Optional[list[str]] = None, signals: Optional[dict] = None, decision: Optional[dict] = None,
    ):
        d = dict(decision or {})
        given = {"route": route, "risk": risk, "reasons": reasons, "audit_id": audit_id or None, "domain": domain, "signals": signals}
        d.update({k: v for k, v in given.items() if v is not None})
        obj = super().__new__(cls, answer, d)
        obj.sources = list(sources or [])
        return obj

    @property
    def answer(self) -> str:
        return self.text

    def __reduce__(self):
        return (_rebuild_answer, (self.text, self.decision, self.sources))

    def _joined(self, text: str, other: str) -> "GuardedAnswer":
        sources = list(dict.fromkeys(self.sources + list(getattr(other, "sources", None) or [])))
        return GuardedAnswer(text, sources=sources, decision=self._joined_decision(other))

    @classmethod
    def from_message(cls, message: AIMessage, sources: list[str]) -> "GuardedAnswer":
        content = message.content if isinstance(message.content, str) else str(message.content)
        return cls(content, sources=sources, decision=dict(message.response_metadata))


def _rebuild_answer(text: str, decision: dict, sources: list[str]) -> GuardedAnswer:
    return GuardedAnswer(text, sources=sources, decision=decision)


class GuardedOutputParser(BaseTransformOutputParser[GuardedText]):
    """``StrOutputParser`` that keeps the decision: parses a :class:`ChatHGuard` message into a
    :class:`hguard.streaming.GuardedText` (a ``str`` carrying ``route``, ``risk``, ``reasons``, ...).
    Streaming: token chunks carry no route; the last chunk carries the decision."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    @property
    def _type(self) -> str:
        return "hguard_guarded_output"

    def parse_result(self, result: list[Any], *, partial: bool = False) -> GuardedText:
        g = result[0]
        meta = getattr(getattr(g, "message", None), "response_metadata", None) or {}
        return GuardedText(g.text, meta if "route" in meta else None)

    def parse(self, text: str) -> GuardedText:
        return GuardedText(text)

    # a GuardedText (a GuardedRAG's answer, or its streamed chunks) passes with its decision: LangChain wraps a
    # string input in a Generation, whose text is a plain str, and the route was lost (`rag | parser` gave None)
    def invoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> GuardedText:
        if isinstance(input, GuardedText):
            return self._call_with_config(_same, input, config, run_type="parser")
        return super().invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> GuardedText:
        if isinstance(input, GuardedText):
            return self.invoke(input, config, **kwargs)
        return await super().ainvoke(input, config, **kwargs)

    def _transform(self, input: Iterator[Any]) -> Iterator[GuardedText]:
        for chunk in input:
            if isinstance(chunk, GuardedText):
                yield chunk
            else:
                yield from super()._transform(iter([chunk]))

    async def _atransform(self, input: AsyncIterator[Any]) -> AsyncIterator[GuardedText]:
        async for chunk in input:
            if isinstance(chunk, GuardedText):
                yield chunk
            else:
                async for out in super()._atransform(_one(chunk)):
                    yield out


def _same(value: Any) -> Any:
    return value


async def _one(value: Any) -> AsyncIterator[Any]:
    yield value


def read_passages(value: dict[str, Any], who: str, source_key: str = "source", *,
                  documents_in_context: bool = False) -> tuple[Optional[list[str]], list[str], list[str]]:
    """(passages or None, their sources, problems) from a runnable's input dict: its ``"documents"`` (Documents or
    strings, a retriever's output) and its ``"context"`` (a string or a list of strings; with ``documents_in_context``
    Documents too). A dict that carries either asks for an answer from passages: when none holds text, the problem is
    :func:`~hguard.streaming.nothing_retrieved` (review), never a closed-book request, which a domain may accept.
    ``who`` names the runnable in the InputError that refuses a malformed one."""
    passages: list[str] = []
    sources: list[str] = []

    def add(doc: Any, i: int, key: str) -> None:
        if isinstance(doc, Document):
            if not isinstance(doc.page_content, str):  # a retriever may build Documents without validation
                raise InputError(f"{who} {key!r} item {i} has page_content of type "
                                 f"{type(doc.page_content).__name__}, not text; fix the retriever that built it")
            passages.append(doc.page_content)
            src = str(doc.metadata.get(source_key) or doc.id or f"document {i}")
        else:
            passages.append(doc)
            src = f"document {i}"
        if key == "documents" or isinstance(doc, Document):
            if src not in sources:
                sources.append(src)

    documents = value.get("documents")
    if documents is not None and not isinstance(documents, (list, tuple)):
        raise InputError(
            f"{who} 'documents' must be a list of Documents or strings (a retriever's output), got "
            f"{type(documents).__name__}; pass a single passage as 'context' or wrap it in a list"
        )
    for i, doc in enumerate(documents or []):
        if not isinstance(doc, (Document, str)):
            raise InputError(f"{who} 'documents' must hold Documents or strings, got {type(doc).__name__} at {i}")
        add(doc, i, "documents")
    context = value.get("context")
    if context is not None:
        if isinstance(context, str):
            passages.append(context)
        elif isinstance(context, (list, tuple)):
            kinds = (str, Document) if documents_in_context else (str,)
            bad = next(((i, c) for i, c in enumerate(context) if not isinstance(c, kinds)), None)
            if bad is not None:
                raise InputError(
                    f"{who} 'context' must be a string or a list of strings"
                    + (" or Documents" if documents_in_context else "") + f"; item {bad[0]} is {type(bad[1]).__name__}"
                    + ("; pass Documents under 'documents'" if isinstance(bad[1], Document) else "")
                )
            for i, c in enumerate(context):
                add(c, i, "context")
        else:
            raise InputError(f"{who} 'context' must be a string or a list of strings"
                             + (" or Documents" if documents_in_context else "") + f", got {type(context).__name__}"
                             + ((": pass a single Document in a list, [doc]" if documents_in_context else
                                 ": pass a single Document in a list under 'documents', [doc]")
                                if isinstance(context, Document) else ""))
    passages = blanks_emptied(passages)  # a blank one among others is named by the guard, as for ChatHGuard
    # a dict that carries 'documents' or 'context' asks for an answer from passages, even when retrieval
    # found none (None, [], ""): never read as a closed-book request, which a domain may accept
    wanted = "documents" in value or "context" in value
    what = "the retriever" if "documents" in value else "the 'context' given"
    problems = [nothing_retrieved(what)] if wanted and not passages else []
    return (passages or None), sources, problems


#: the keys a GuardedRAG input dict may hold
_INPUT_KEYS = ("question", "documents", "context", "domain")


class GuardedRAG(RunnableSerializable[RAGInput, GuardedAnswer]):
    """Answer a question from retrieved documents through the guard, and return the routed answer.

    Input: ``{"question": str, "documents": list[Document]}`` (the output of any retriever),
    ``{"question": str, "context": str | list[str]}``, or a bare question string (no context: a closed-book
    answer, as is a dict with ``"question"`` alone). An optional ``"domain"`` key overrides :attr:`domain`;
    any other key is refused (InputError), so misnamed passages ("docs") are never dropped unread. The documents' text is the grounding context
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

    @model_validator(mode="before")
    @classmethod
    def _known_settings(cls, data: Any) -> Any:
        return refuse_unknown_settings(cls, data)  # GuardedRAG(domian=...) was ignored, the domain chosen by similarity

    @classmethod
    def from_guard(cls, guard: Any, **kwargs: Any) -> "GuardedRAG":
        return cls(llm=ChatHGuard(guard=guard), **kwargs)

    # -------------------------------------------------------------------------------- parsing

    def _parse(self, value: RAGInput) -> tuple[str, Optional[list[str]], list[str], Optional[str], list[str]]:
        """The request read from the chain's input; a refused input is written to the guard's audit log (an
        ``error`` record, its id on the InputError as ``audit_id``), as the guard records its own refusals."""
        try:
            return self._read(value)
        except InputError as exc:
            question = value.get("question") if isinstance(value, dict) else value
            domain = value.get("domain") if isinstance(value, dict) else None
            self.llm.guard.record_failure(question, exc, domain=domain or self.domain, source="GuardedRAG")
            raise

    def _read(self, value: RAGInput) -> tuple[str, Optional[list[str]], list[str], Optional[str], list[str]]:
        if isinstance(value, str):
            return value, None, [], self.domain, []
        if not isinstance(value, dict):
            raise InputError(
                f"GuardedRAG takes a question string or a dict with 'question' and 'documents' or 'context', "
                f"got {type(value).__name__}"
            )
        if "question" not in value:
            raise InputError(f"GuardedRAG input needs a 'question' key; got keys {sorted(map(str, value))}")
        unknown = sorted(str(k) for k in value if k not in _INPUT_KEYS)
        if unknown:  # "docs", "Documents", "contexts": the passages would be dropped and the answer read as closed-book
            raise InputError(
                f"GuardedRAG does not read the input key(s) {unknown}; it reads {', '.join(map(repr, _INPUT_KEYS))}: name "
                "the retrieved passages 'documents' (a retriever's output) or 'context', and leave other keys out "
                "(e.g. with operator.itemgetter)"
            )
        question = value["question"]
        if not isinstance(question, str):
            raise InputError(f"GuardedRAG 'question' must be a string, got {type(question).__name__}: {question!r:.80}")
        domain = value.get("domain") or self.domain
        passages, sources, problems = read_passages(value, "GuardedRAG", self.source_key)
        return question, passages, sources, domain, problems

    # ----------------------------------------------------------------------------- invocation

    def _run(self, value: RAGInput, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> GuardedAnswer:
        question, context, sources, domain, problems = self._parse(value)
        message = self.llm.invoke(
            [HumanMessage(content=question)],
            patch_config(config, callbacks=run_manager.get_child()),
            context=context,
            domain=domain,
            **{_PROBLEMS: problems},
        )
        return GuardedAnswer.from_message(message, sources)

    async def _arun(self, value: RAGInput, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig) -> GuardedAnswer:
        question, context, sources, domain, problems = self._parse(value)
        message = await self.llm.ainvoke(
            [HumanMessage(content=question)],
            patch_config(config, callbacks=run_manager.get_child()),
            context=context,
            domain=domain,
            **{_PROBLEMS: problems},
        )
        return GuardedAnswer.from_message(message, sources)

    @staticmethod
    def _add_up(value: Any, chunk: Any) -> Any:
        """A streamed input arrives in parts (e.g. a RunnableParallel's keys): add them up."""
        if value is None:
            return chunk
        try:
            return value + chunk
        except TypeError:
            return chunk

    @staticmethod
    def _answer_chunk(piece: Any, sources: list[str]) -> Optional[GuardedAnswer]:
        """The chunk to yield for one streamed message chunk of :attr:`llm` (None for an empty token)."""
        meta = piece.response_metadata or {}
        text = piece.content if isinstance(piece.content, str) else str(piece.content)
        if "route" in meta:
            return GuardedAnswer(text, sources=sources, decision=dict(meta))
        return GuardedAnswer(text, sources=sources) if text else None

    def _stream_run(self, inputs: Iterator[RAGInput], run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Iterator[GuardedAnswer]:
        value: Any = None
        for chunk in inputs:
            value = self._add_up(value, chunk)
        question, context, sources, domain, problems = self._parse(value)
        for piece in self.llm.stream(
            [HumanMessage(content=question)], patch_config(config, callbacks=run_manager.get_child()),
            context=context, domain=domain, **{_PROBLEMS: problems},
        ):
            if (out := self._answer_chunk(piece, sources)) is not None:
                yield out

    async def _astream_run(self, inputs: AsyncIterator[RAGInput], run_manager: AsyncCallbackManagerForChainRun,
                           config: RunnableConfig) -> AsyncIterator[GuardedAnswer]:
        value: Any = None
        async for chunk in inputs:
            value = self._add_up(value, chunk)
        question, context, sources, domain, problems = self._parse(value)
        async for piece in self.llm.astream(
            [HumanMessage(content=question)], patch_config(config, callbacks=run_manager.get_child()),
            context=context, domain=domain, **{_PROBLEMS: problems},
        ):
            if (out := self._answer_chunk(piece, sources)) is not None:
                yield out

    def transform(self, input: Iterator[RAGInput], config: Optional[RunnableConfig] = None, **kwargs: Any) -> Iterator[GuardedAnswer]:
        """Stream the answer as the :attr:`llm` streams it: in ``"passthrough"`` mode the tokens as
        generated (chunks with ``route`` None), then a last chunk carrying the decision (text ``""`` after an
        accepted answer, the held notice after a held one, :func:`hguard.streaming.held_notice`);
        in ``"hold"`` mode one chunk, the routed answer, after the decision."""
        yield from self._transform_stream_with_config(input, self._stream_run, config, run_type="chain")

    def stream(self, input: RAGInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> Iterator[GuardedAnswer]:
        """Raising after the guard decided (a handler failing in ``on_chain_end``), as :meth:`invoke`."""
        return delivering_stream(self.llm.guard, lambda: self.transform(iter([input]), config, **kwargs))

    async def atransform(self, input: AsyncIterator[RAGInput], config: Optional[RunnableConfig] = None,
                         **kwargs: Any) -> AsyncIterator[GuardedAnswer]:
        """:meth:`transform`, asynchronously: passthrough streams the tokens, then the decision chunk."""
        async for chunk in self._atransform_stream_with_config(input, self._astream_run, config, run_type="chain"):
            yield chunk

    async def astream(self, input: RAGInput, config: Optional[RunnableConfig] = None,
                      **kwargs: Any) -> AsyncIterator[GuardedAnswer]:
        async def one() -> AsyncIterator[RAGInput]:
            yield input

        async for chunk in adelivering_stream_lazy(self.llm.guard, lambda: self.atransform(one(), config, **kwargs)):
            yield chunk

    def invoke(self, input: RAGInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> GuardedAnswer:
        """Raising after the guard decided (a handler with ``raise_error`` failing in its ``on_chain_end``), the log
        says the answer never reached the caller and the audit handler's ``llm_call`` record says error
        (:func:`hguard.streaming.delivering`)."""
        with delivering(self.llm.guard):
            return self._call_with_config(self._run, input, config, run_type="chain")

    async def ainvoke(self, input: RAGInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> GuardedAnswer:
        """Cancelled or raising after the guard decided (in the chain's callbacks), the log says the answer never
        reached the caller."""
        return await until_delivered(self.llm.guard, lambda: self._acall_with_config(self._arun, input, config,
                                                                                      run_type="chain"))


def create_guarded_rag_chain(
    retriever: Runnable, llm: ChatHGuard, *, domain: Optional[str] = None, source_key: str = "source"
) -> Runnable[str, GuardedAnswer]:
    """``question -> {question, documents: retriever(question)} -> GuardedRAG``: a question string in, a
    :class:`GuardedAnswer` out. A retriever that returns nothing sends the answer to review (nothing to
    ground it in)."""
    return (
        RunnableLambda(partial(_question_string, llm=llm, domain=domain), name="question")
        | RunnableParallel(question=RunnablePassthrough(), documents=retriever)
        | GuardedRAG(llm=llm, domain=domain, source_key=source_key)
    )


def _question_string(value: Any, *, llm: ChatHGuard, domain: Optional[str] = None) -> str:
    """The chain's input, checked before it reaches the retriever (whose own error would not say why); a
    refused one is written to the guard's audit log as an ``error`` record (its id on the error)."""
    try:
        if not isinstance(value, str):
            raise InputError(
                f"create_guarded_rag_chain takes the question as a string, got {type(value).__name__}: {value!r:.80}; "
                "e.g. chain.invoke('What is the notice period?') (GuardedRAG itself takes {'question', 'documents'})"
            )
        return check_question(value)
    except InputError as exc:
        llm.guard.record_failure(value, exc, domain=domain, source="create_guarded_rag_chain")
        raise


__all__ = ["GuardedAnswer", "GuardedOutputParser", "GuardedRAG", "create_guarded_rag_chain", "read_passages"]
