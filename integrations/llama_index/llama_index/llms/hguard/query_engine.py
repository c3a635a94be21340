"""``HGuardQueryEngine``: retrieve nodes with any retriever, answer through the guard with the nodes'
text as grounding context, return a ``Response`` carrying the decision."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import RESPONSE_TYPE, AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.query import QueryEndEvent, QueryStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle, QueryType

from hguard.errors import InputError
from hguard.generation import check_question
from hguard.guard import Guard, _is_domain_name
from hguard.errors import strict_bool
from hguard.streaming import GuardedText, blanks_emptied, nothing_retrieved

from .base import _SETTING_FIXES, HGuardLLM
from .templates import note_decision

dispatcher = get_dispatcher(__name__)


def _bundle(query: QueryType) -> QueryBundle:
    """The query as a bundle; an empty or non-text query is refused before anything is retrieved."""
    bundle = QueryBundle(query) if isinstance(query, str) else query
    text = getattr(bundle, "query_str", None)
    if not isinstance(text, str):
        raise InputError(f"the query must be a string or a QueryBundle, got {type(query).__name__}: {query!r:.80}")
    check_question(text)
    return bundle


class HGuardQueryEngine(BaseQueryEngine):
    """A query engine over any retriever whose answers are routed by an hguard ``Guard``.

    ``query(question)`` retrieves nodes, passes their text to :class:`HGuardLLM` as the context the
    answer is grounded in and scored against, and returns a ``Response`` whose ``response`` is the
    display text, whose ``metadata`` holds the decision (``route``, ``risk``, ``signals``,
    ``reasons``, ``audit_id``, ``domain``, ...) and whose ``source_nodes`` are the retrieved nodes.

    With ``streaming=True`` it returns a ``StreamingResponse`` (tokens per the LLM's ``stream_mode``; ``aquery``: an
    ``AsyncStreamingResponse``, read with ``async_response_gen()``); its ``metadata`` dict is filled with the decision
    when the stream has been consumed.

    ``audit_handler`` (an :class:`HGuardAuditEventHandler`): after each query, raise the audit error
    the handler met, if any. LlamaIndex's dispatcher swallows every handler exception, so this is
    how a failed audit write reaches the caller.

    .. code-block:: python

        index = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())
        engine = HGuardQueryEngine(index.as_retriever(similarity_top_k=2), HGuardLLM(guard))
        response = engine.query("What is the capital of France?")
        response.response, response.metadata["route"]
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        llm: HGuardLLM,
        *,
        domain: Optional[str] = None,
        streaming: bool = False,
        node_postprocessors: Optional[Sequence[BaseNodePostprocessor]] = None,
        audit_handler: Any = None,
        callback_manager: Optional[CallbackManager] = None,
    ) -> None:
        if not isinstance(llm, HGuardLLM):
            raise TypeError(f"HGuardQueryEngine needs an HGuardLLM, got {type(llm).__name__}; wrap the Guard: HGuardLLM(guard)")
        if domain is not None and not _is_domain_name(domain):  # domain=5 was refused at the first query, after its
            # retrieval, and a blank one was read as none (the LLM's domain, or one chosen by similarity)
            raise InputError(f"HGuardQueryEngine: domain={domain!r:.60} is not a domain name (a non-blank string); "
                             f"{_SETTING_FIXES['domain']}")
        self._retriever = retriever
        self._llm = llm
        self._domain = domain
        self._streaming = strict_bool("HGuardQueryEngine", "streaming", streaming)  # "no" streamed
        self._postprocessors = list(node_postprocessors or [])
        self._audit_handler = audit_handler
        super().__init__(callback_manager=callback_manager or llm.callback_manager)

    @classmethod
    def from_guard(cls, retriever: BaseRetriever, guard: Guard, *, stream_mode: str = "hold", **kwargs: Any) -> "HGuardQueryEngine":
        return cls(retriever, HGuardLLM(guard, stream_mode=stream_mode), **kwargs)

    @property
    def llm(self) -> HGuardLLM:
        return self._llm

    @property
    def retriever(self) -> BaseRetriever:
        return self._retriever

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    # ------------------------------------------------------------------------------- retrieval

    def _postprocess(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> List[NodeWithScore]:
        for p in self._postprocessors:
            nodes = p.postprocess_nodes(nodes, query_bundle=query_bundle)
        return nodes

    def retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return self._postprocess(self._retriever.retrieve(query_bundle), query_bundle)

    async def aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return self._postprocess(await self._retriever.aretrieve(query_bundle), query_bundle)

    @staticmethod
    def _context(nodes: List[NodeWithScore]) -> Optional[List[str]]:
        return blanks_emptied([n.node.get_content() for n in nodes]) or None  # a blank node is named by the guard

    # ---------------------------------------------------------------------------------- answers

    @staticmethod
    def _problems(context) -> dict[str, Any]:
        # nothing retrieved: the answer would come from the model's memory, with nothing to ground it in
        return {} if context is not None else {"problems": [nothing_retrieved("the retriever (after the node postprocessors)")]}

    @staticmethod
    def _delta(r: Any, metadata: Dict[str, Any]) -> str:
        """A streamed response's new text; the decision it carries (the last one does) goes into ``metadata``."""
        if r.additional_kwargs.get("route") is not None:
            metadata.update(r.additional_kwargs)
        return r.delta or ""

    def _stream(self, query: str, context, nodes: List[NodeWithScore]) -> StreamingResponse:
        metadata: Dict[str, Any] = {}
        responses = self._llm.stream_complete(query, context=context, domain=self._domain, **self._problems(context))

        def gen():
            said = []
            for r in responses:
                if delta := self._delta(r, metadata):
                    said.append(delta)
                    yield delta
            self._note(said, metadata)

        return StreamingResponse(response_gen=gen(), source_nodes=nodes, metadata=metadata)

    async def _astream(self, query: str, context, nodes: List[NodeWithScore]) -> AsyncStreamingResponse:
        """:meth:`_stream` for ``aquery``: an ``AsyncStreamingResponse``, as the stock engines' ``aquery`` returns, whose
        tokens are generated in a worker thread (a synchronous stream held the event loop for the whole answer)."""
        metadata: Dict[str, Any] = {}
        responses = await self._llm.astream_complete(query, context=context, domain=self._domain, **self._problems(context))

        async def gen():
            said = []
            async for r in responses:
                if delta := self._delta(r, metadata):
                    said.append(delta)
                    yield delta
            self._note(said, metadata)

        return AsyncStreamingResponse(response_gen=gen(), source_nodes=nodes, metadata=metadata)

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        nodes = self.retrieve(query_bundle)
        context = self._context(nodes)
        if self._streaming:
            return self._stream(query_bundle.query_str, context, nodes)
        r = self._llm.complete(query_bundle.query_str, context=context, domain=self._domain, **self._problems(context))
        return self._response(r, nodes)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        nodes = await self.aretrieve(query_bundle)
        context = self._context(nodes)
        if self._streaming:
            return await self._astream(query_bundle.query_str, context, nodes)
        r = await self._llm.acomplete(query_bundle.query_str, context=context, domain=self._domain, **self._problems(context))
        return self._response(r, nodes)

    def _note(self, said: List[str], metadata: Dict[str, Any]) -> None:
        """A streamed answer's decision, noted where the stream is read to its end (a sub-question engine reads its
        engines' streams inside its own query), as :meth:`_response` notes an answer's."""
        if metadata.get("route") is not None:
            note_decision(GuardedText("".join(said), metadata), self._llm.guard, engine=True)

    def _response(self, r: Any, nodes: List[NodeWithScore]) -> Response:
        """The answer's response, its decision noted on the enclosing span as a stock engine's is: a router or
        sub-question engine that summarises this engine's answers then knows its context for the request's own
        answers (held ones came back accepted inside the summary), and says the answers it replaced undelivered."""
        note_decision(GuardedText(r.text, r.additional_kwargs), self._llm.guard, engine=True)
        return Response(response=r.text, source_nodes=nodes, metadata=dict(r.additional_kwargs))

    # BaseQueryEngine.query, plus an ExceptionEvent in the same span when the query fails (so audit
    # handlers can record the failure) and the audit handler's check afterwards.

    def _checked(self, query: QueryType) -> QueryBundle:
        """The query as a bundle; a bad one is refused before anything runs, with an ``error`` record in the
        guard's audit log whose id the ``InputError`` carries (as ``Guard.invoke`` refuses a bad question)."""
        try:
            return _bundle(query)
        except InputError as exc:
            text = getattr(query, "query_str", query)
            self._llm.guard.record_failure(text, exc, domain=self._domain or self._llm.domain, source="HGuardQueryEngine")
            raise

    def query(self, str_or_query_bundle: QueryType) -> RESPONSE_TYPE:
        bundle = self._checked(str_or_query_bundle)
        dispatcher.event(QueryStartEvent(query=str_or_query_bundle))
        try:
            with self.callback_manager.as_trace("query"):
                response = self._query(bundle)
        except BaseException as exc:  # cancelled (a timeout) too: the query's record is closed as failed
            dispatcher.event(ExceptionEvent(exception=exc))
            raise
        dispatcher.event(QueryEndEvent(query=bundle, response=response))
        if self._audit_handler is not None:
            self._audit_handler.raise_if_failed()
        return response

    async def aquery(self, str_or_query_bundle: QueryType) -> RESPONSE_TYPE:
        bundle = self._checked(str_or_query_bundle)
        dispatcher.event(QueryStartEvent(query=str_or_query_bundle))
        try:
            with self.callback_manager.as_trace("query"):
                response = await self._aquery(bundle)
        except BaseException as exc:  # cancelled (a timeout) too: the query's record is closed as failed
            dispatcher.event(ExceptionEvent(exception=exc))
            raise
        dispatcher.event(QueryEndEvent(query=bundle, response=response))
        if self._audit_handler is not None:
            self._audit_handler.raise_if_failed()
        return response


__all__ = ["HGuardQueryEngine"]
