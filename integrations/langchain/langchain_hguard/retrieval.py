"""The documents a chain's retrievers returned, read back from the same run by ``ChatHGuard``.

LangChain's RAG chains paste the retrieved documents into the prompt (``{"context": retriever |
format_docs, "question": RunnablePassthrough()} | prompt | llm``): the chat model receives one
rendered prompt and cannot tell the passages from the question. This module registers a callback
handler with LangChain's configure hooks, so it is attached to every run: it keeps the parent of each
chain run and the query and documents of each finished retriever run, per root run, and forgets them
when the root run ends. ``ChatHGuard`` asks it, from its own run, for the retrievals that finished in
the nearest enclosing chain: those documents are the context its answer is scored against. The answers
``ChatHGuard`` gave are kept per root run and per conversation thread (:data:`THREAD_KEYS`: named in a run's metadata,
or in the configurable or metadata of a call's config).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict, deque
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.tracers.context import register_configure_hook


#: run names of chains whose every model call makes text to search with (langchain / langchain-classic):
#: ``create_history_aware_retriever``'s chain, and ``create_retrieval_chain``'s retrieval step, which renames the
#: retriever it is given (a history-aware one included) and whose output is the documents, never the answer
QUERY_CHAINS = {
    "chat_retriever_chain": "create_history_aware_retriever",
    "retrieve_documents": "create_retrieval_chain's retrieval step",
}
#: retrievers (class or run name) whose model calls after they retrieved work on the documents found (a filter's
#: YES/NO, an extract, a rerank), not answers: langchain-classic's, or one of yours given this run name
COMPRESSING_RETRIEVERS = frozenset({"ContextualCompressionRetriever"})
#: the most answers kept per root run for a later call to be checked against (the latest): a long-lived root (an
#: agent's loop) neither grows without bound nor makes each check slower
ANSWERS_KEPT = 256
#: root runs kept open at most (oldest forgotten first): a root whose end was never seen cannot grow memory
ROOTS_KEPT = 4096
#: threads (:data:`THREAD_KEYS`) whose answers are kept (the least recently answered forgotten first, each its latest
#: ANSWERS_KEPT): a thread never ends, and a process serving many conversations cannot grow memory
THREADS_KEPT = 1024
#: the most memory the kept threads' answer texts take together (``sys.getsizeof`` of each text): past it the least
#: recently answered threads are forgotten first, then the oldest answers of the one answered last (its latest answer
#: is always kept). The count bounds alone let 1,024 threads of 256 answers of 1.5 KB take 390 MiB; the check needs
#: the texts (it finds an answer inside a passage that labels, lists or joins several), not a digest of each
THREAD_ANSWER_BYTES = 32 * 2**20
#: the keys naming a conversation thread, in a run's metadata or a call's config (``configurable`` or ``metadata``);
#: where several are set, the first of them in this order names it (:func:`thread_in`): LangGraph's ``thread_id``
#: (LangGraph puts its config's ``configurable.thread_id`` in the metadata of every run of a graph invocation, and a
#: resume after an ``interrupt()`` is a new root run of it), ``RunnableWithMessageHistory``'s default ``session_id``,
#: then ``conversation_id`` (LangSmith groups a thread's traces by any of the three in the metadata). A key's value
#: names the thread, whichever key holds it. A plain LangChain app's ``configurable`` is in no run's metadata
#: (langchain-core copies it to LangSmith's only), nor is a chat model call's own metadata seen by a handler asked
#: from its parent run: ``ChatHGuard`` reads both from the config of its call (:func:`config_thread`)
THREAD_KEYS = ("thread_id", "session_id", "conversation_id")


@dataclass(frozen=True)
class Retrieval:
    """One finished retriever run: its query and the documents it returned."""

    run_id: UUID
    query: str
    documents: tuple[Document, ...]
    rewritten: bool = False  # the model was called inside the retriever after it retrieved, and a document it returned
    # is none that was found there: model-written text (LLMChainExtractor's extract, not LLMChainFilter's choice)


class RetrievalCapture(BaseCallbackHandler):
    """Remembers, per root run, the tree of chain runs and the retrievals that finished in it."""

    run_inline = True  # the record must exist before the next step of the chain runs
    raise_error = False  # bookkeeping must never break the user's chain

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parent: dict[UUID, UUID | None] = {}
        self._root: dict[UUID, UUID] = {}
        self._runs_of_root: dict[UUID, set[UUID]] = {}
        self._queries: dict[UUID, str] = {}
        self._names: dict[UUID, str] = {}  # retriever runs and chain runs with a name: what asks for a query
        self._rewritten: set[UUID] = set()  # retriever runs that called the model after they had retrieved
        self._compressing: set[UUID] = set()  # retriever runs of a COMPRESSING_RETRIEVERS class or run name
        self._generated: dict[UUID, list[str]] = {}  # retriever run -> the text the model generated inside it
        self._retry_attempts: set[UUID] = set()  # runs that are a retry's second or later attempt
        # runs that start an attempt of a LangGraph task -> the task's checkpoint namespace ("node:task_id"), the same
        # for each attempt of the task (a RetryPolicy's next one, a re-run on resume), each attempt a run of its own
        self._tasks: dict[UUID, str] = {}
        self._found: dict[UUID, list[Retrieval]] = {}  # root -> retrievals, in the order they finished
        # root -> (prompt template run, the text values it was formatted with), in the order they ran
        self._prompts: dict[UUID, list[tuple[UUID, tuple[str, ...]]]] = {}
        # root -> the texts of the answers ChatHGuard gave in it, the latest ANSWERS_KEPT of them
        self._answers: dict[UUID, deque[str]] = {}
        self._thread_of: dict[UUID, str] = {}  # run -> the thread its metadata names (THREAD_KEYS)
        # thread -> the texts of the answers ChatHGuard gave in any of its root runs, kept after they end
        self._thread_answers = ThreadAnswers()

    # ----------------------------------------------------------------------------- bookkeeping

    def _start(self, run_id: UUID, parent_run_id: UUID | None, metadata: Any = None) -> None:
        thread = thread_in(metadata)
        with self._lock:
            if thread is not None:
                self._thread_of[run_id] = thread
            # a run whose parent this handler never saw start is a root of its own: its parent is no LangChain run
            # (a LangSmith @traceable request handler around separate invokes), which never ends here, so the
            # handler's chains were never forgotten and each one's answers were read as the next one's
            parent = parent_run_id if parent_run_id in self._root else None
            self._parent[run_id] = parent
            root = self._root[parent] if parent is not None else run_id
            self._root[run_id] = root
            self._runs_of_root.setdefault(root, set()).add(run_id)
            # a root whose end this handler never saw (another handler raising in on_chain_end stops LangChain from
            # calling the handlers after it) is kept until ROOTS_KEPT newer roots are open: memory stays bounded
            while len(self._runs_of_root) > ROOTS_KEPT:
                self._forget(next(iter(self._runs_of_root)))

    def _end(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        with self._lock:
            if self._root.get(run_id) != run_id:
                return  # a run inside a root run (or one not seen): its tree is forgotten when the root ends
            self._forget(run_id)

    def _forget(self, run_id: UUID) -> None:
        """Forget root run ``run_id``'s whole tree (under the lock)."""
        for r in self._runs_of_root.pop(run_id, set()):
            self._parent.pop(r, None)
            self._root.pop(r, None)
            self._queries.pop(r, None)
            self._names.pop(r, None)
            self._rewritten.discard(r)
            self._compressing.discard(r)
            self._generated.pop(r, None)
            self._retry_attempts.discard(r)
            self._tasks.pop(r, None)
            self._thread_of.pop(r, None)
        self._found.pop(run_id, None)
        self._prompts.pop(run_id, None)
        self._answers.pop(run_id, None)

    def on_chain_start(self, serialized, inputs, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, kwargs.get("metadata"))
        if parent_run_id is not None and any(str(t).startswith("retry:attempt:") for t in kwargs.get("tags") or ()):
            with self._lock:
                self._retry_attempts.add(run_id)
        task = (kwargs.get("metadata") or {}).get("langgraph_checkpoint_ns")
        if isinstance(task, str) and task:  # LangGraph names each task's runs by it; the first run naming it is an attempt's
            with self._lock:
                if self._task_of(parent_run_id) != task:
                    self._tasks[run_id] = task
        if kwargs.get("run_type") == "prompt" and isinstance(inputs, dict):  # a prompt template: its variables' values
            with self._lock:
                root = self._root.get(run_id)
                if root is not None:
                    values = tuple(v for v in inputs.values() if isinstance(v, str))
                    self._prompts.setdefault(root, []).append((run_id, values))
        name = kwargs.get("name")
        if name in QUERY_CHAINS:
            with self._lock:
                self._names[run_id] = f"chain {name!r} ({QUERY_CHAINS[name]})"

    def on_chain_end(self, outputs, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id, parent_run_id)

    def on_chain_error(self, error, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id, parent_run_id)

    def on_tool_start(self, serialized, input_str, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, kwargs.get("metadata"))  # a retriever inside a tool still belongs to the root run

    def on_tool_end(self, output, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id, parent_run_id)

    def on_tool_error(self, error, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id, parent_run_id)

    def on_retriever_start(self, serialized, query: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start(run_id, parent_run_id, kwargs.get("metadata"))
        with self._lock:
            self._queries[run_id] = query
            self._names[run_id] = f"retriever {kwargs.get('name') or _class_name(serialized)!r}"
            if {kwargs.get("name"), _class_name(serialized)} & COMPRESSING_RETRIEVERS:
                self._compressing.add(run_id)

    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        with self._lock:
            root = self._root.get(run_id)
            if root is not None:
                docs = tuple(d for d in documents if isinstance(d, Document))
                found = {d.page_content for r in self._found.get(root, []) if run_id in self._ancestors(r.run_id)[1:]
                         for d in r.documents}
                # a document the model wrote inside this run: after a retrieval under it, any document it did not
                # find; without one (a store searched directly, then the model asked to extract: a review's), one
                # whose text the model's output holds
                wrote = [t.strip() for t in self._generated.get(run_id, []) if t.strip()]
                rewritten = (run_id in self._rewritten and any(d.page_content not in found for d in docs)) or any(
                    d.page_content.strip() and any(d.page_content.strip() in t for t in wrote) for d in docs)
                self._found.setdefault(root, []).append(Retrieval(run_id, self._queries.get(run_id, ""), docs, rewritten))
        self._end(run_id, parent_run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        """The text a model generated inside a retriever run, which the retriever may hand on as its documents."""
        if parent_run_id is None:
            return
        texts = [g.text for gens in getattr(response, "generations", None) or [] for g in gens if isinstance(g.text, str)]
        with self._lock:
            for ancestor in self._ancestors(parent_run_id):
                if ancestor in self._queries:  # a retriever run, and every one enclosing it
                    self._generated.setdefault(ancestor, []).extend(texts)

    def on_retriever_error(self, error, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._end(run_id, parent_run_id)

    # --------------------------------------------------------------------------------- lookups

    def _ancestors(self, run_id: UUID) -> list[UUID]:
        out, seen = [], set()
        cur: UUID | None = run_id
        while cur is not None and cur not in seen:
            seen.add(cur)
            out.append(cur)
            cur = self._parent.get(cur)
        return out

    def retrievals_for(self, parent_run_id: UUID | None) -> list[Retrieval]:
        """The retrievals that finished inside the nearest run enclosing ``parent_run_id`` (the chat
        model's parent run, then its parent, ...) that holds any; empty when none did."""
        if parent_run_id is None:
            return []
        with self._lock:
            root = self._root.get(parent_run_id)
            found = list(self._found.get(root, [])) if root is not None else []
            if not found:
                return []
            lines = {r.run_id: self._ancestors(r.run_id) for r in found}
            for ancestor in self._ancestors(parent_run_id):
                inside = [r for r in found if ancestor in lines[r.run_id]]
                if inside:
                    return inside
        return []

    def prompt_values_for(self, parent_run_id: UUID | None) -> tuple[str, ...] | None:
        """The text values the prompt templates inside the nearest run enclosing a chat model's call (from
        ``parent_run_id``) that holds any were formatted with; None when no prompt template ran there (the messages
        were built by hand). A retriever's query that is one of them, and stands in the prompt as a field of its
        own, is the question the template asks."""
        if parent_run_id is None:
            return None
        with self._lock:
            root = self._root.get(parent_run_id)
            prompts = list(self._prompts.get(root, [])) if root is not None else []
            if not prompts:
                return None
            for ancestor in self._ancestors(parent_run_id):
                inside = [v for run, values in prompts if ancestor in self._ancestors(run) for v in values]
                if inside:  # every prompt formatted there (a step may format a batch's prompts, then answer them)
                    return tuple(inside)
        return None

    def query_step(self, parent_run_id: UUID | None) -> str | None:
        """The retrieval step that asks a chat model called from ``parent_run_id`` for text no user is shown: a
        retriever still running that has not retrieved yet (a ``MultiQueryRetriever`` generating its queries), a
        chain named in ``QUERY_CHAINS`` (``create_history_aware_retriever``'s rewrite of a follow-up), or a
        compressing retriever (``COMPRESSING_RETRIEVERS``) whose own retrieval has finished and that then asks the
        model about the documents it found (a ``ContextualCompressionRetriever``'s ``LLMChainFilter`` answering YES
        or NO, its ``LLMChainExtractor`` extracting); None for anything else (an answer, also from another retriever
        that has retrieved: one that answers inside its run is guarded). The model's text there is the step's to
        read, from the prompt as the step wrote it: framed as an answer, the filter's YES/NO instruction was dropped
        and its parser failed on an answer. What such a retriever returns that is no document it found is the
        model's own text, which an answer cannot be grounded on (``Retrieval.rewritten``)."""
        if parent_run_id is None:
            return None
        with self._lock:
            root = self._root.get(parent_run_id)
            found = self._found.get(root, []) if root is not None else []
            for ancestor in self._ancestors(parent_run_id):
                if ancestor not in self._names:
                    continue
                if ancestor in self._queries and any(ancestor in self._ancestors(r.run_id)[1:] for r in found):
                    self._rewritten.add(ancestor)  # the model works on what was found: its documents may be its own
                    if ancestor not in self._compressing:
                        return None  # a retriever answering inside its run (a review's): guarded as an answer
                    return f"{self._names[ancestor]} (a document compressor: the model filters or extracts what it found)"
                return self._names[ancestor]
        return None

    def documents_found(self, parent_run_id: UUID | None) -> set[str]:
        """The texts (blanks collapsed) of the documents the retrievers returned so far in the root run of
        ``parent_run_id``, as they returned them; none the model wrote inside its retriever (``Retrieval.rewritten``).
        Such a passage is material, never a reduce step's earlier answers, whatever it quotes."""
        if parent_run_id is None:
            return set()
        with self._lock:
            root = self._root.get(parent_run_id)
            found = self._found.get(root, []) if root is not None else []
            return {" ".join(d.page_content.split()) for r in found if not r.rewritten for d in r.documents
                    if isinstance(d.page_content, str)}

    def _thread(self, run_id: UUID | None, named: Any = None) -> str | None:
        """The thread (:data:`THREAD_KEYS`) named by the nearest run enclosing ``run_id`` whose metadata names one
        (LangGraph's, or a chain's given ``config={"metadata": ...}``), else ``named`` (the thread the call's config
        names, :func:`config_thread`)."""
        ancestors = self._ancestors(run_id) if run_id is not None else []
        return next((self._thread_of[r] for r in ancestors if r in self._thread_of), None) or thread_named(named)

    def note_answer(self, parent_run_id: UUID | None, texts: Sequence[str], thread: Any = None) -> None:
        """Note the texts of an answer ChatHGuard gave from ``parent_run_id`` (the model's answer, what the caller is
        shown: a held one's abstain or review message, or the answer marked), for the rest of its root run and, where
        a run enclosing it names a thread in its metadata (:data:`THREAD_KEYS`: LangGraph's) or else the call's config
        names one (``thread``: :func:`config_thread`, also outside a chain), for the thread's later runs too."""
        kept = [t for t in texts if t.strip()]
        with self._lock:
            root = self._root.get(parent_run_id) if parent_run_id is not None else None
            if root is not None:
                self._answers.setdefault(root, deque(maxlen=ANSWERS_KEPT)).extend(kept)
            named = self._thread(parent_run_id, thread)
            if named is not None:
                self._thread_answers.add(named, kept)

    def answers_for(self, parent_run_id: UUID | None, thread: Any = None) -> list[str]:
        """The texts of the answers ChatHGuard gave so far in the root run of ``parent_run_id`` (a map-reduce's map
        answers, when its reduce step asks) and in the earlier runs of its thread (a step resumed after an
        ``interrupt()`` given the draft from before it): the LangGraph thread a run enclosing it names, else
        ``thread``, the one the call's config names (:meth:`note_answer`); oldest first. Empty outside a chain and
        a thread."""
        with self._lock:
            root = self._root.get(parent_run_id) if parent_run_id is not None else None
            named = self._thread(parent_run_id, thread)
            earlier = self._thread_answers.get(named) if named is not None else ()
            return list(dict.fromkeys([*earlier, *(self._answers.get(root, ()) if root is not None else ())]))

    def ancestors(self, run_id: UUID | None) -> list[UUID]:
        """``run_id`` and the runs enclosing it, innermost first (while its root run is open)."""
        if run_id is None:
            return []
        with self._lock:
            return self._ancestors(run_id)

    def root_of(self, run_id: UUID | None) -> UUID | None:
        """The outermost run enclosing ``run_id`` (a chain, tool or retriever run; ``run_id`` itself when it is one),
        while that root run is open; None for a run not seen."""
        if run_id is None:
            return None
        with self._lock:
            return self._root.get(run_id)

    def retried_in(self, run_id: UUID | None) -> UUID | None:
        """The retry run (a chain's ``with_retry()``) whose second or later attempt encloses ``run_id``; None when
        no attempt after the first does. LangChain tags each such attempt's run ``retry:attempt:N``."""
        if run_id is None:
            return None
        with self._lock:
            for run in self._ancestors(run_id):
                if run in self._retry_attempts:
                    return self._parent.get(run)
        return None

    def task_attempt(self, run_id: UUID | None) -> tuple[str, UUID] | None:
        """The LangGraph task whose run encloses ``run_id``: its checkpoint namespace (LangGraph's
        ``langgraph_checkpoint_ns`` metadata, ``"node:task_id"``: the same for every attempt of the task, a
        ``RetryPolicy``'s next one or its re-run when the thread resumes) and the run of this attempt (a new one each
        time LangGraph runs the task); None outside a LangGraph task."""
        if run_id is None:
            return None
        with self._lock:
            for run in self._ancestors(run_id):
                if run in self._tasks:
                    return self._tasks[run], run
        return None

    def _task_of(self, run_id: UUID | None) -> str | None:
        """The namespace of the LangGraph task enclosing ``run_id`` (under the lock)."""
        if run_id is None:
            return None
        return next((self._tasks[r] for r in self._ancestors(run_id) if r in self._tasks), None)

    def open_runs(self) -> int:
        """How many runs are remembered (zero once every root run has ended)."""
        with self._lock:
            return len(self._parent)


class ThreadAnswers:
    """The answer texts kept per thread (under :class:`RetrievalCapture`'s lock), bounded by count and by
    memory: each thread's latest :data:`ANSWERS_KEPT`, of the :data:`THREADS_KEPT` threads answered last, and at most
    :data:`THREAD_ANSWER_BYTES` of text in all (the least recently answered threads forgotten first, then the oldest
    answers of the thread answered last; its latest answer is always kept). Iterating yields the threads kept, the
    least recently answered first."""

    def __init__(self) -> None:
        self._texts: OrderedDict[str, deque[str]] = OrderedDict()
        self._bytes: dict[str, int] = {}  # thread -> the memory its texts take (sys.getsizeof)
        self.nbytes = 0  # the memory all the kept texts take

    def add(self, thread: str, texts: Sequence[str]) -> None:
        """Keep ``texts`` as the latest answers of ``thread``, now the thread answered last."""
        kept = self._texts.setdefault(thread, deque())
        self._texts.move_to_end(thread)
        for text in texts:
            kept.append(text)
            self._grow(thread, sys.getsizeof(text))
            if len(kept) > ANSWERS_KEPT:
                self._grow(thread, -sys.getsizeof(kept.popleft()))
        while len(self._texts) > THREADS_KEPT or (self.nbytes > THREAD_ANSWER_BYTES and len(self._texts) > 1):
            self._drop(next(iter(self._texts)))
        while self.nbytes > THREAD_ANSWER_BYTES and len(kept) > 1:
            self._grow(thread, -sys.getsizeof(kept.popleft()))

    def get(self, thread: str) -> tuple[str, ...]:
        """The texts kept for ``thread``, oldest first (none for a thread not kept)."""
        return tuple(self._texts.get(thread, ()))

    def _grow(self, thread: str, n: int) -> None:
        self._bytes[thread] = self._bytes.get(thread, 0) + n
        self.nbytes += n

    def _drop(self, thread: str) -> None:
        self._texts.pop(thread, None)
        self.nbytes -= self._bytes.pop(thread, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._texts))

    def __len__(self) -> int:
        return len(self._texts)


def _class_name(serialized: Any) -> str:
    ids = serialized.get("id") if isinstance(serialized, dict) else None
    return str(ids[-1]) if isinstance(ids, list) and ids else "retriever"


CAPTURE = RetrievalCapture()
_capture_var: ContextVar[RetrievalCapture | None] = ContextVar("hguard_retrieval_capture", default=CAPTURE)
register_configure_hook(_capture_var, True)


def thread_named(value: Any) -> str | None:
    """The thread ``value`` names (the value of one of :data:`THREAD_KEYS`): its text; None for none or a blank one."""
    return str(value) if value is not None and str(value).strip() else None


def thread_in(*mappings: Any) -> str | None:
    """The thread ``mappings`` name (a run's metadata; a config's ``configurable`` and ``metadata``): the value of the
    first of :data:`THREAD_KEYS` set (not blank) in any of them, each key looked up in the mappings in their order;
    None where none is set (a mapping that is no dict names none)."""
    for key in THREAD_KEYS:
        for mapping in mappings:
            thread = thread_named(mapping.get(key)) if isinstance(mapping, dict) else None
            if thread is not None:
                return thread
    return None


def config_thread(config: Any) -> str | None:
    """The thread a run's config names (:func:`thread_in` of its ``configurable``, then its ``metadata``: for each of
    :data:`THREAD_KEYS` in order, ``configurable`` before ``metadata``), or None."""
    return thread_in(config.get("configurable"), config.get("metadata")) if isinstance(config, dict) else None


def parent_run_of(config_or_manager: Any) -> UUID | None:
    """The parent run id a chat model run will have: from its run manager, or from a config's callbacks."""
    if config_or_manager is None:
        return None
    pid = getattr(config_or_manager, "parent_run_id", None)
    if pid is not None:
        return pid
    if isinstance(config_or_manager, dict):
        return getattr(config_or_manager.get("callbacks"), "parent_run_id", None)
    return None


__all__ = ["ANSWERS_KEPT", "CAPTURE", "ROOTS_KEPT", "Retrieval", "RetrievalCapture", "THREADS_KEPT", "THREAD_ANSWER_BYTES",
           "THREAD_KEYS", "ThreadAnswers", "config_thread", "parent_run_of", "thread_in", "thread_named"]
