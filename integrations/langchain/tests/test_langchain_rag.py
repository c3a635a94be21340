"""GuardedRAG over a real InMemoryVectorStore (hguard's sentence embedder) on the documents in
examples/docs, answering with the tiny calibrated model: retrieval, grounding context, sources, and
composition with `|`, RunnableParallel and with_fallbacks."""

from __future__ import annotations

import asyncio
import uuid
from operator import itemgetter
from pathlib import Path

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from hguard.audit import AuditLog
from hguard.errors import HGuardError, InputError
from hguard.streaming import lists_answers
from langchain_hguard import ChatHGuard, GuardedAnswer, GuardedRAG, HGuardEmbeddings, create_guarded_rag_chain
from langchain_hguard.retrieval import ANSWERS_KEPT, CAPTURE

DOCS = Path(__file__).resolve().parents[3] / "examples" / "docs"

AUSTRALIA = "what is the capital of australia ?"


@pytest.fixture(scope="module")
def store():
    docs = [Document(page_content=p.read_text().strip(), metadata={"source": p.name}, id=p.stem) for p in sorted(DOCS.glob("*.txt"))]
    vs = InMemoryVectorStore(HGuardEmbeddings())
    vs.add_documents(docs)
    return vs


@pytest.fixture
def retriever(store):
    return store.as_retriever(search_kwargs={"k": 2})


def test_embeddings_are_unit_vectors_that_rank_the_right_document_first(store):
    emb = HGuardEmbeddings()
    vecs = np.array(emb.embed_documents(["Paris is the capital of France.", "Gold has the symbol Au."]))
    assert vecs.shape == (2, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.embed_documents([]) == [] and len(asyncio.run(emb.aembed_query("gold"))) == 384
    assert [d.metadata["source"] for d in store.similarity_search("Which element has the symbol Au?", k=1)] == ["gold.txt"]
    assert [d.metadata["source"] for d in store.similarity_search(AUSTRALIA, k=1)] == ["australia.txt"]


@pytest.mark.parametrize("method", ["aembed_query", "aembed_documents"])
def test_an_interrupt_reaches_an_async_embedding_while_it_is_computed(interrupted_while_encoding, method):
    """A Jupyter kernel's interrupt while the embedder loads or encodes (await store.aadd_texts(...)) reaches the
    caller at once: awaited with asyncio.to_thread, it was seen only once the work had ended."""
    text = "gold" if method == "aembed_query" else ["gold"]
    assert interrupted_while_encoding(lambda embedder: getattr(HGuardEmbeddings(embedder), method)(text))


def test_retrieved_documents_are_the_grounding_context_and_the_sources(make_guard, retriever):
    guard = make_guard("review")
    chain = create_guarded_rag_chain(retriever, ChatHGuard(guard=guard, domain="alpha"))
    ans = chain.invoke(AUSTRALIA)
    assert isinstance(ans, GuardedAnswer) and ans.route == "review" and ans.answer.startswith("[needs review] ")
    assert ans.sources[0] == "australia.txt" and len(ans.sources) == 2
    assert ans.signals["grounding"] is not None and ans.domain == "alpha" and ans.reasons
    rec = AuditLog(guard.audit.path).find(ans.audit_id)
    assert "Canberra is the capital city of Australia." in rec["context"] and rec["question"] == AUSTRALIA


def test_dict_inputs_context_strings_and_domain_override(make_guard):
    guard = make_guard("accept")
    rag = GuardedRAG.from_guard(guard, domain="alpha")
    ans = rag.invoke({"question": "what is gold ?", "context": "gold is a metal", "domain": "beta"})
    rec = AuditLog(guard.audit.path).find(ans.audit_id)
    assert rec["context"] == "gold is a metal" and ans.domain == "beta" and ans.sources == []
    bare = rag.invoke("what is gold ?")  # a plain question: no context
    assert AuditLog(guard.audit.path).find(bare.audit_id)["context"] is None and bare.route == "accept"
    with pytest.raises(InputError, match="question"):
        rag.invoke({"documents": []})
    with pytest.raises(InputError, match="Documents or strings"):
        rag.invoke({"question": "what is gold ?", "documents": [3]})


def test_composes_with_pipe_and_parallel(make_guard, retriever):
    guard = make_guard("abstain")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard), domain="alpha")
    piped = {"question": RunnablePassthrough(), "documents": retriever} | rag | RunnableLambda(lambda a: (a.route, a.answer))
    assert piped.invoke(AUSTRALIA) == ("abstain", guard.policy.abstain_message)

    parallel = RunnableParallel(
        guarded=rag,
        question=itemgetter("question"),
        n_docs=itemgetter("documents") | RunnableLambda(len),
    )
    out = ({"question": RunnablePassthrough(), "documents": retriever} | parallel).invoke(AUSTRALIA)
    assert out["question"] == AUSTRALIA and out["n_docs"] == 2 and out["guarded"].route == "abstain"
    assert out["guarded"].sources[0] == "australia.txt"


def test_with_fallbacks_takes_over_when_the_guard_refuses_the_input(make_guard):
    guard = make_guard("accept")
    rag = GuardedRAG.from_guard(guard, domain="alpha")
    too_long = {"question": "what is the capital ?", "context": " ".join(["paris is the capital of france ."] * 60)}
    with pytest.raises(InputError, match="context"):
        rag.invoke(too_long)  # over the tiny model's 256-token window
    shorten = RunnableLambda(lambda x: {**x, "context": x["context"][:200]})
    safe = rag.with_fallbacks([shorten | rag], exceptions_to_handle=(HGuardError,))
    ans = safe.invoke(too_long)
    assert ans.route == "accept"
    assert AuditLog(guard.audit.path).find(ans.audit_id)["context"] == too_long["context"][:200]


def test_batch_and_async(make_guard, retriever):
    guard = make_guard("accept")
    chain = create_guarded_rag_chain(retriever, ChatHGuard(guard=guard, domain="alpha"))
    out = chain.batch([AUSTRALIA, "which element has the symbol au ?"])
    assert [a.route for a in out] == ["accept", "accept"] and out[1].sources[0] == "gold.txt", [(a.answer, a.reasons) for a in out]
    ans = asyncio.run(chain.ainvoke("what is the capital of japan ?"))
    assert ans.sources[0] == "japan.txt" and ans.route == "accept"


@pytest.mark.parametrize("key", ["documents", "context"])
def test_a_blank_passage_among_others_is_named_in_the_reasons(make_guard, key):
    """GuardedRAG dropped a blank passage without a word, where ChatHGuard and Guard.invoke name it."""
    guard = make_guard("review")
    rag = GuardedRAG.from_guard(guard, domain="alpha")
    ans = rag.invoke({"question": "who is the author of the book ?", key: ["  \u200b", "paris is the capital of france"]})
    said = [r for r in ans.reasons if "empty and left out" in r]
    assert said and "1 of the 2 retrieved passages (number 0" in said[0], ans.reasons
    assert "paris is the capital of france" in str(AuditLog(guard.audit.path).find(ans.audit_id)["context"])


MAP_DOCS = [Document(page_content="Canberra is the capital city of Australia."),
            Document(page_content="Nairobi is the capital and largest city of Kenya.")]


def _map_reduce(rag):
    """A map-reduce in LCEL: answer per document (GuardedRAG.batch), then answer from the map answers as context, in
    one chain run (a RAG team's trial)."""
    mapper = RunnableLambda(lambda x: rag.batch([{"question": x["question"], "documents": [d]} for d in x["docs"]]))
    reduce_ = RunnableLambda(lambda x: {"question": x["question"], "context": [str(a) for a in x["answers"]]}) | rag
    return RunnablePassthrough.assign(answers=mapper) | RunnablePassthrough.assign(final=reduce_)


def test_a_map_reduce_whose_reduce_step_reads_the_map_answers_as_passages_goes_to_review(make_guard):
    """The reduce step's "passages" were the model's own map answers: its answer was accepted, grounded in
    nothing retrieved (the LlamaIndex adapter holds the same shape: "the context is this request's own earlier
    answers")."""
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    out = _map_reduce(rag).invoke({"question": AUSTRALIA, "docs": MAP_DOCS})
    assert [a.route for a in out["answers"]] == ["accept", "accept"]
    assert not any("earlier answers" in r for a in out["answers"] for r in a.reasons)
    final = out["final"]
    assert final.route == "review", final.reasons
    assert any("the context is this request's own earlier answers" in r for r in final.reasons)
    # a second chain run is another request: its retrieved passages are read as ever
    again = create_guarded_rag_chain(RunnableLambda(lambda q: MAP_DOCS), ChatHGuard(guard=guard, domain="alpha"))
    assert again.invoke(AUSTRALIA).route == "accept"


def _langgraph_config(thread: str) -> dict:
    """The config LangGraph hands each node of a thread's run: the thread in ``configurable`` and in ``metadata``
    (LangGraph copies it there, so every run of the graph invocation, and each callback, sees it)."""
    return {"configurable": {"thread_id": thread}, "metadata": {"thread_id": thread}}


def test_a_step_resumed_in_a_later_run_of_its_thread_given_the_draft_as_context_goes_to_review(make_guard, retriever,
                                                                                                monkeypatch):
    """LangGraph starts a new root run when a thread resumes after an ``interrupt()`` (``Command(resume=...)``): a
    summarize step given the draft answered before the interrupt as its context was accepted (held without the
    interrupt). Answers are kept per thread too; another thread, or no thread, is another conversation as before, and
    a follow-up answered from documents is no reduce step."""
    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())  # no other test's threads
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    answer = {"question": RunnablePassthrough(), "documents": retriever} | RunnableLambda(
        lambda x: chat.invoke(x["question"], context=[d.page_content for d in x["documents"]]))
    summarize = RunnableLambda(lambda draft: chat.invoke(AUSTRALIA, context=[str(draft.content)]))
    draft = answer.invoke(AUSTRALIA, config=_langgraph_config("thread-1"))  # the run before the interrupt
    assert draft.response_metadata["route"] == "accept"
    resumed = summarize.invoke(draft, config=_langgraph_config("thread-1"))  # the resumed run: another root run
    assert resumed.response_metadata["route"] == "review"
    assert any("own earlier answers" in r for r in resumed.response_metadata["reasons"]), resumed.response_metadata
    for config in (_langgraph_config("thread-2"), None):  # another conversation: its passages are read as ever
        other = summarize.invoke(draft, config=config)
        assert other.response_metadata["route"] == "accept", other.response_metadata["reasons"]
    # ordinary multi-turn in the same thread: a follow-up answered from documents, retrieved or given, is not held
    followups = [
        answer.invoke("what is the capital of kenya ?", config=_langgraph_config("thread-1")),
        RunnableLambda(lambda q: chat.invoke(q, context=[MAP_DOCS[1].page_content])).invoke(
            "what is the capital of kenya ?", config=_langgraph_config("thread-1")),
        RunnableLambda(lambda q: chat.invoke([HumanMessage(AUSTRALIA), AIMessage(str(draft.content)), HumanMessage(q)],
                                             context=[MAP_DOCS[1].page_content])).invoke(
            "and of kenya ?", config=_langgraph_config("thread-1")),
    ]
    for msg in followups:
        assert not any("own earlier answers" in r for r in msg.response_metadata["reasons"]), msg.response_metadata
    assert [m.response_metadata["route"] for m in followups[:2]] == ["accept", "accept"]
    assert CAPTURE.open_runs() == 0 and not CAPTURE._thread_of  # runs forgotten, threads' answers kept


async def _ainvoke_step(chat, draft):
    return await chat.ainvoke(AUSTRALIA, context=[str(draft.content)])


_THREAD_STEPS = {  # a step given the draft as its context, as the app calls the model
    "invoke": lambda chat: RunnableLambda(lambda d: chat.invoke(AUSTRALIA, context=[str(d.content)])).invoke,
    "ainvoke": lambda chat: lambda d, config: asyncio.run(
        RunnableLambda(lambda d: d, afunc=lambda d: _ainvoke_step(chat, d)).ainvoke(d, config=config)),
    "stream": lambda chat: RunnableLambda(lambda d: [c for c in chat.stream(AUSTRALIA, context=[str(d.content)])
                                                     if "route" in c.response_metadata][-1]).invoke,
    "batch": lambda chat: RunnableLambda(lambda d: chat.batch([AUSTRALIA, AUSTRALIA], context=[str(d.content)])[0]).invoke,
    "outside-a-chain": lambda chat: lambda d, config: chat.invoke(AUSTRALIA, context=[str(d.content)], config=config),
}


@pytest.mark.parametrize("how", list(_THREAD_STEPS))
def test_a_thread_named_only_in_the_configs_configurable_is_checked_too(make_guard, monkeypatch, how):
    """A plain LangChain app (no LangGraph) names its thread with ``config={"configurable": {"thread_id": ...}}`` only:
    langchain-core puts it in no run's metadata (LangGraph does), so a step given the thread's earlier draft as its
    context, in a later run, was accepted. The adapter reads it from the config of the call; another thread, or none,
    is another conversation as before."""
    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())
    chat = ChatHGuard(guard=make_guard("accept"), domain="alpha")
    thread = {"configurable": {"thread_id": "plain-1"}}
    if how == "outside-a-chain":
        draft = chat.invoke(AUSTRALIA, context=[MAP_DOCS[0].page_content], config=thread)
    else:
        draft = RunnableLambda(lambda q: chat.invoke(q, context=[MAP_DOCS[0].page_content])).invoke(AUSTRALIA, config=thread)
    assert draft.response_metadata["route"] == "accept"
    step = _THREAD_STEPS[how](chat)
    resumed = step(draft, config={"configurable": {"thread_id": "plain-1"}})
    assert resumed.response_metadata["route"] == "review", resumed.response_metadata["reasons"]
    assert any("own earlier answers" in r for r in resumed.response_metadata["reasons"]), resumed.response_metadata
    for config in ({"configurable": {"thread_id": "plain-2"}}, None):  # another conversation: read as ever
        other = step(draft, config=config)
        assert other.response_metadata["route"] == "accept", other.response_metadata["reasons"]
    follow = RunnableLambda(lambda q: chat.invoke(q, context=[MAP_DOCS[1].page_content])).invoke(
        "what is the capital of kenya ?", config=thread)  # a follow-up answered from documents: not held
    assert follow.response_metadata["route"] == "accept", follow.response_metadata["reasons"]
    assert CAPTURE.open_runs() == 0 and not CAPTURE._thread_of


@pytest.mark.parametrize("place, key", [("configurable", "session_id"), ("configurable", "conversation_id"),
                                        ("metadata", "session_id"), ("metadata", "conversation_id")])
def test_a_conversation_named_by_session_id_or_conversation_id_is_a_thread(make_guard, monkeypatch, place, key):
    """A review: only ``thread_id`` named a thread, so a conversation named by RunnableWithMessageHistory's default
    ``configurable.session_id``, or in the run metadata by LangSmith's other thread keys (``session_id``,
    ``conversation_id``), had none, and a later run given the conversation's earlier draft as its only passage was
    accepted. Another conversation, or none, is another conversation."""
    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())
    chat = ChatHGuard(guard=make_guard("accept"), domain="alpha")
    step = RunnableLambda(lambda passages: chat.invoke(AUSTRALIA, context=passages))
    draft = step.invoke([MAP_DOCS[0].page_content], config={place: {key: "conv-1"}})
    assert draft.response_metadata["route"] == "accept"
    later = step.invoke([str(draft.content)], config={place: {key: "conv-1"}})
    assert later.response_metadata["route"] == "review", later.response_metadata["reasons"]
    assert any("own earlier answers" in r for r in later.response_metadata["reasons"]), later.response_metadata
    for config in ({place: {key: "conv-2"}}, None):  # another conversation: read as ever
        other = step.invoke([str(draft.content)], config=config)
        assert other.response_metadata["route"] == "accept", other.response_metadata["reasons"]
    assert CAPTURE.open_runs() == 0 and not CAPTURE._thread_of


_METADATA_STEPS = {  # a call given its config (the thread in its metadata) directly, as the app calls the model
    "invoke": lambda chat: lambda ctx, config: chat.invoke(AUSTRALIA, context=ctx, config=config),
    "ainvoke": lambda chat: lambda ctx, config: asyncio.run(chat.ainvoke(AUSTRALIA, context=ctx, config=config)),
    "stream": lambda chat: lambda ctx, config: [c for c in chat.stream(AUSTRALIA, context=ctx, config=config)
                                                if "route" in c.response_metadata][-1],
    "batch": lambda chat: lambda ctx, config: chat.batch([AUSTRALIA], context=ctx, config=config)[0],
    "the-chat-call-in-a-chain": lambda chat: lambda ctx, config: RunnableLambda(
        lambda q: chat.invoke(q, context=ctx, config=config)).invoke(AUSTRALIA),
}


@pytest.mark.parametrize("how, key", [*((how, "thread_id") for how in _METADATA_STEPS), ("invoke", "session_id"),
                                      ("invoke", "conversation_id")])
def test_a_thread_named_in_the_calls_own_metadata_is_checked_too(make_guard, monkeypatch, how, key):
    """A review: a thread named in a direct call's ``config={"metadata": ...}``, or given only to the chat call inside
    a chain, was read from no run (the adapter records the metadata of chain, tool and retriever runs only), so a later
    call given the thread's earlier draft as its context was accepted. The call's own config metadata is read too;
    another thread, or none, is another conversation."""
    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())
    chat = ChatHGuard(guard=make_guard("accept"), domain="alpha")
    step = _METADATA_STEPS[how](chat)
    draft = step([MAP_DOCS[0].page_content], {"metadata": {key: "direct-1"}})
    assert draft.response_metadata["route"] == "accept"
    later = step([str(draft.content)], {"metadata": {key: "direct-1"}})
    assert later.response_metadata["route"] == "review", later.response_metadata["reasons"]
    assert any("own earlier answers" in r for r in later.response_metadata["reasons"]), later.response_metadata
    for config in ({"metadata": {key: "direct-2"}}, None):  # another conversation: read as ever
        other = step([str(draft.content)], config)
        assert other.response_metadata["route"] == "accept", other.response_metadata["reasons"]
    assert CAPTURE.open_runs() == 0 and not CAPTURE._thread_of


def test_thread_id_names_the_thread_before_session_id_and_conversation_id():
    """Where several keys are set, the first of THREAD_KEYS names the thread (LangGraph's ``thread_id`` first), each
    key looked up in a config's ``configurable`` before its ``metadata``; a blank one names none."""
    from langchain_hguard.retrieval import THREAD_KEYS, config_thread, thread_in

    assert THREAD_KEYS == ("thread_id", "session_id", "conversation_id")
    assert thread_in({"conversation_id": "c", "session_id": "s", "thread_id": "t"}) == "t"
    assert thread_in({"conversation_id": "c", "session_id": "s"}) == "s"
    assert thread_in({"conversation_id": "c", "session_id": " "}) == "c"
    assert thread_in({"conversation_id": 7}) == "7" and thread_in({}) is None and thread_in(None) is None
    assert config_thread({"configurable": {"session_id": "s", "thread_id": "t"}}) == "t"
    assert config_thread({"configurable": {"session_id": "s"}, "metadata": {}}) == "s"
    assert config_thread({"configurable": {"session_id": "s"}, "metadata": {"thread_id": "t"}}) == "t"
    assert config_thread({"configurable": {"thread_id": "c"}, "metadata": {"thread_id": "m"}}) == "c"
    assert config_thread({"metadata": {"conversation_id": "m"}}) == "m"
    assert config_thread({"configurable": None}) is None and config_thread(None) is None


def test_runnable_with_message_history_names_the_conversation_by_its_default_session_id(make_guard, retriever,
                                                                                          monkeypatch):
    """The review's app: RunnableWithMessageHistory with its default key (``configurable.session_id``), a later run
    given the conversation's earlier draft as its passage, was accepted; it goes to review as with ``thread_id``. A
    stock RAG chat wrapped the same way is not held: the history turns are never passages."""
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())
    chat = ChatHGuard(guard=make_guard("accept"), domain="alpha")
    stores: dict = {}

    def history(session_id: str) -> InMemoryChatMessageHistory:
        return stores.setdefault(session_id, InMemoryChatMessageHistory())

    answer = RunnableLambda(lambda x: chat.invoke(x["question"], context=x["context"]))
    app = RunnableWithMessageHistory(answer, history, input_messages_key="question", history_messages_key="history")
    conv = {"configurable": {"session_id": "conv-1"}}
    draft = app.invoke({"question": AUSTRALIA, "context": [MAP_DOCS[0].page_content]}, config=conv)
    assert draft.response_metadata["route"] == "accept"
    later = app.invoke({"question": AUSTRALIA, "context": [str(draft.content)]}, config=conv)
    assert later.response_metadata["route"] == "review", later.response_metadata["reasons"]
    assert any("own earlier answers" in r for r in later.response_metadata["reasons"]), later.response_metadata
    other = app.invoke({"question": AUSTRALIA, "context": [str(draft.content)]},
                       config={"configurable": {"session_id": "conv-2"}})
    assert other.response_metadata["route"] == "accept", other.response_metadata["reasons"]
    # a stock RAG chat with history in the same conversation: no turn is held as its own earlier answers (they go to
    # review for the tiny probe's fingerprint, calibrated without history turns: no thread's doing)
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Use the following pieces of retrieved context to answer the question.\n\n{context}"),
        MessagesPlaceholder("history"), ("human", "{question}")])
    rag = RunnablePassthrough.assign(
        context=itemgetter("question") | retriever | (lambda docs: "\n\n".join(d.page_content for d in docs))) | prompt | chat
    chat_app = RunnableWithMessageHistory(rag, history, input_messages_key="question", history_messages_key="history")
    turns = [chat_app.invoke({"question": q}, config=conv) for q in (AUSTRALIA, "what is the capital of kenya ?", AUSTRALIA)]
    for msg in turns:
        assert not any("own earlier answers" in r for r in msg.response_metadata["reasons"]), msg.response_metadata
    assert len(stores["conv-1"].messages) == 10 and CAPTURE.open_runs() == 0


def test_the_threads_whose_answers_are_kept_are_the_latest_few(monkeypatch):
    """A thread never ends: the answers of the THREADS_KEPT threads answered last are kept, the latest ANSWERS_KEPT
    of each."""
    from langchain_hguard import retrieval

    monkeypatch.setattr(retrieval, "THREADS_KEPT", 2)
    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())
    runs = {}
    for thread in ("a", "b", "a", "c"):  # "b" is the one answered least recently when "c" comes
        root = uuid.uuid4()
        CAPTURE._start(root, None, {"thread_id": thread})
        CAPTURE.note_answer(root, [f"answer of thread {thread} number {len(runs)}"])
        runs[root] = thread
        CAPTURE._end(root, None)
    assert list(CAPTURE._thread_answers) == ["a", "c"]
    root = uuid.uuid4()
    CAPTURE._start(root, None, {"thread_id": "a"})
    try:
        assert CAPTURE.answers_for(root) == ["answer of thread a number 0", "answer of thread a number 2"]
        for i in range(ANSWERS_KEPT + 3):
            CAPTURE.note_answer(root, [f"answer number {i} of the thread"])
        assert len(CAPTURE.answers_for(root)) == ANSWERS_KEPT
    finally:
        CAPTURE._end(root, None)


def test_the_threads_answers_are_bounded_in_bytes_the_latest_threads_kept(make_guard, monkeypatch):
    """The count bounds let 1,024 threads of 256 answers of 1.5 KB take 390 MiB (a review): past THREAD_ANSWER_BYTES
    of text the threads answered least recently are forgotten first, then the oldest answers of the one answered last
    (its latest kept), and a step of a thread still kept, given its draft as context, still goes to review."""
    import sys

    from langchain_hguard import retrieval

    big = 1500
    budget = 3 * 4 * sys.getsizeof("x" * big)  # three threads of four 1.5 KB answers
    monkeypatch.setattr(retrieval, "THREAD_ANSWER_BYTES", budget)
    monkeypatch.setattr(CAPTURE, "_thread_answers", type(CAPTURE._thread_answers)())

    def answered(thread: str, texts: list[str]) -> None:
        root = uuid.uuid4()
        CAPTURE._start(root, None, {"thread_id": thread})
        CAPTURE.note_answer(root, texts)
        CAPTURE._end(root, None)

    for thread in ("a", "b", "c", "a", "d"):  # "a" answered again: "b", then "c", are the least recently answered
        answered(thread, [f"{thread}{i} " + "x" * (big - 3) for i in range(4)])
    kept = CAPTURE._thread_answers
    assert list(kept) == ["a", "d"] and kept.nbytes <= budget and len(kept.get("a")) == 8
    answered("e", [f"e{i} " + "x" * (big - 3) for i in range(20)])  # one thread over the budget: its latest kept
    assert list(kept) == ["e"] and kept.nbytes <= budget and kept.get("e")[-1].startswith("e19 ")
    answered("f", ["y" * (2 * budget)])  # one answer over the budget alone: kept, the only thing kept
    assert list(kept) == ["f"] and len(kept.get("f")) == 1
    # the check still works for a thread kept: a step given the thread's draft as its context goes to review
    chat = ChatHGuard(guard=make_guard("accept"), domain="alpha")
    draft = RunnableLambda(lambda q: chat.invoke(q, context=[MAP_DOCS[0].page_content])).invoke(
        AUSTRALIA, config=_langgraph_config("thread-kept"))
    resumed = RunnableLambda(lambda d: chat.invoke(AUSTRALIA, context=[str(d.content)])).invoke(
        draft, config=_langgraph_config("thread-kept"))
    assert resumed.response_metadata["route"] == "review", resumed.response_metadata["reasons"]
    assert list(kept)[-1] == "thread-kept" and kept.nbytes <= budget


def test_a_passage_that_is_the_guards_abstain_message_is_no_retrieved_passage(make_guard):
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    held = rag.invoke({"question": AUSTRALIA, "context": [guard.policy.abstain_message]})
    assert held.route == "review" and any("own earlier answers" in r for r in held.reasons)
    fine = rag.invoke({"question": AUSTRALIA, "context": ["Canberra is the capital city of Australia."]})
    assert fine.route == "accept"


@pytest.mark.parametrize("fmt", [
    lambda a: ["\n".join(f"Summary {i + 1}: {x}" for i, x in enumerate(a))],
    lambda a: ["\n".join(f"- {x}" for x in a)],
    lambda a: [f"Answer {i + 1}: {x}" for i, x in enumerate(a)],
], ids=["summary-labels", "bullets", "labelled-list"])
def test_a_reduce_step_that_labels_or_bullets_the_map_answers_goes_to_review(make_guard, fmt):
    """A reduce prompt wraps its map answers ("Summary 1: <answer>", "- <answer>"): they were accepted as retrieved
    passages. An earlier answer of 3 words or more anywhere in a passage holds it, as in the LlamaIndex adapter."""
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    mapper = RunnableLambda(lambda x: rag.batch([{"question": x["question"], "documents": [d]} for d in x["docs"]]))
    reduce_ = RunnableLambda(lambda x: {"question": x["question"], "context": fmt([str(a) for a in x["answers"]])}) | rag
    out = (RunnablePassthrough.assign(answers=mapper) | RunnablePassthrough.assign(final=reduce_)).invoke(
        {"question": AUSTRALIA, "docs": MAP_DOCS})
    assert all(len(str(a).split()) >= 3 for a in out["answers"])  # the tiny model's answers: long enough to count
    final = out["final"]
    assert final.route == "review" and any("own earlier answers" in r for r in final.reasons), final.reasons


@pytest.mark.parametrize("ctx", ["Summary 1: {msg}", "Summary 1: {msg}\nSummary 2: Canberra is the capital city of Australia."])
def test_a_passage_holding_the_abstain_message_inside_a_label_is_no_retrieved_passage(make_guard, ctx):
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    held = rag.invoke({"question": AUSTRALIA, "context": [ctx.format(msg=guard.policy.abstain_message)]})
    assert held.route == "review" and any("own earlier answers" in r for r in held.reasons), held.reasons


def test_answers_read_anywhere_in_passages_hold_no_independent_question(make_guard):
    """No false holds: two questions on one document in one chain run, and a batch of independent questions."""
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    doc = [MAP_DOCS[0]]
    two = RunnablePassthrough.assign(a=RunnableLambda(lambda x: rag.invoke({"question": AUSTRALIA, "documents": doc}))) | \
        RunnablePassthrough.assign(b=RunnableLambda(
            lambda x: rag.invoke({"question": "which city is the capital of australia ?", "documents": doc})))
    out = two.invoke({})
    assert (out["a"].route, out["b"].route) == ("accept", "accept"), out["b"].reasons
    chain = RunnableLambda(lambda q: {"question": q, "documents": MAP_DOCS}) | rag
    outs = chain.batch([AUSTRALIA, "what is the capital of kenya ?", AUSTRALIA])
    assert [o.route for o in outs] == ["accept"] * 3


def test_chains_under_a_parent_never_seen_are_roots_of_their_own(make_guard, retriever):
    """A LangSmith @traceable request handler is the parent of every chain run inside it, but no LangChain run: the
    capture never saw it start, nor end. Its chains were never forgotten, their answers piled up under it, and a
    later, separate invoke in the handler was held for the one before's answer."""
    guard = make_guard("accept", max_new_tokens=12)
    chat = ChatHGuard(guard=guard, domain="alpha")
    rag = GuardedRAG(llm=chat)
    handler = {"callbacks": CallbackManager(handlers=[], parent_run_id=uuid.uuid4())}  # as a @traceable one reaches them
    before = CAPTURE.open_runs()
    closed = RunnableLambda(lambda q: str(chat.invoke(q).content).removeprefix("[needs review] "))
    first = closed.invoke(AUSTRALIA, config=handler)
    assert len(first.split()) >= 3  # long enough to count
    retrieved = {"question": RunnablePassthrough(), "documents": retriever} | GuardedRAG(llm=chat)
    assert retrieved.invoke(AUSTRALIA, config=handler).route in ("accept", "review")  # a retrieval under it, too
    assert CAPTURE.open_runs() == before and not CAPTURE._answers and not CAPTURE._found and not CAPTURE._prompts
    later = RunnableLambda(lambda q: rag.invoke({"question": q, "context": [f"Summary 1: {first}"]}))
    out = later.invoke(AUSTRALIA, config=handler)
    assert not any("own earlier answers" in r for r in out.reasons), out.reasons


def test_the_answers_kept_per_root_run_are_the_latest_few():
    """A long-lived root run (an agent's loop) kept every answer: the check of each later call grew with them."""
    root = uuid.uuid4()
    CAPTURE._start(root, None)
    try:
        for i in range(ANSWERS_KEPT + 44):
            CAPTURE.note_answer(root, [f"answer number {i} of the run"])
        kept = CAPTURE.answers_for(root)
        assert len(kept) == ANSWERS_KEPT and kept[-1] == f"answer number {ANSWERS_KEPT + 43} of the run"
    finally:
        CAPTURE._end(root, None)
    assert CAPTURE.answers_for(root) == []


_EARLIER = ["Canberra is the capital city of Australia.", "Nairobi is the capital of Kenya.", "Yes.", "No."]
_ABSTAIN = "I can't answer that reliably."


@pytest.mark.parametrize("passage", [
    "Canberra is the capital city of Australia.",  # the whole passage
    "Canberra is the capital city of Australia.\n\nNairobi is the capital of Kenya.",
    "Summary 1: Canberra is the capital city of Australia.\nSummary 2: Nairobi is the capital of Kenya.",
    "Summaries:\n- Canberra is the capital city of Australia.\n- Something else entirely here.",
    "**Answer 2:** Nairobi is the capital\nof Kenya.",  # an item's text running on to the next line
    "1. \"Nairobi is the capital of Kenya.\"\n2. Canberra is big.",
    f"Summary 1: {_ABSTAIN}\nSummary 2: Canberra is the capital city of Australia and its seat of government.",
    "- Yes.\n- No.",  # short answers: every item one
])
def test_lists_answers_reads_what_a_reduce_step_builds(passage):
    assert lists_answers(passage, [*_EARLIER, _ABSTAIN])


@pytest.mark.parametrize("passage", [
    "Canberra is the capital city of Australia. Canberra is the capital city of Australia. It was founded in 1913.",
    f'Support transcript, ticket 4411. The old bot replied: "{_ABSTAIN}" Refunds are issued within 14 days.',
    "Facts: Canberra is the capital city of Australia, and Sydney is the largest.",
    "- Yes.\n- Parliament first met in Canberra in 1927.",  # a short answer among other items
    # a FAQ's and a support ticket's labelled lines are material, not a reduce step's items (a review: held on the
    # first and only call, for the abstain message the old bot once sent)
    f"Support ticket 4411\nCustomer: Can I get a refund?\nBot: {_ABSTAIN}\nAgent: Refunds are issued within 14 days.",
    f"Q: Can I get a refund?\nA: {_ABSTAIN}\nQ: How long do refunds take?\nA: Refunds are issued within 14 days.",
    "Q: Is Canberra the capital?\nA: Canberra is the capital city of Australia.",
])
def test_lists_answers_reads_no_answer_inside_prose(passage):
    assert not lists_answers(passage, [*_EARLIER, _ABSTAIN])


def test_a_document_that_holds_an_earlier_answer_is_read_as_a_document(make_guard):
    """A closed-book answer, then a grounded one over a document (given or retrieved) that holds it: held as "the
    run's own earlier answers" since any earlier answer of 3 words or more anywhere in a passage held it."""
    guard = make_guard("accept", max_new_tokens=12)
    chat = ChatHGuard(guard=guard, domain="alpha")
    rag = GuardedRAG(llm=chat)
    seen: dict[str, str] = {}

    def first(x):
        seen["a"] = str(chat.invoke(x["question"]).content).removeprefix("[needs review] ")
        return seen["a"]

    class Store(BaseRetriever):  # a retriever whose document is the earlier answer itself, as it returned it
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content=seen["a"])]

    given = RunnableLambda(lambda x: rag.invoke({"question": x["question"], "documents": [Document(
        page_content=f"Canberra is the capital city of Australia. {x['a']} Parliament first met there in 1927.")]}))
    retrieved = RunnableLambda(itemgetter("question")) | {"question": RunnablePassthrough(), "documents": Store()} | rag
    out = (RunnablePassthrough.assign(a=RunnableLambda(first)) | RunnablePassthrough.assign(given=given, retrieved=retrieved)
           ).invoke({"question": AUSTRALIA})
    assert len(seen["a"].split()) >= 3  # long enough to have counted anywhere
    for step in ("given", "retrieved"):
        assert not any("own earlier answers" in r for r in out[step].reasons), (step, out[step].reasons)


def test_a_passage_that_quotes_the_abstain_message_in_its_prose_is_a_passage(make_guard):
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    doc = ("Support transcript, ticket 4411. Customer asked about refunds. The old bot replied: "
           f"\"{guard.policy.abstain_message}\" Refunds are issued within 14 days of purchase.")
    out = rag.invoke({"question": "how long do refunds take ?", "context": [doc]})
    assert not any("own earlier answers" in r for r in out.reasons), out.reasons


def test_a_faq_or_ticket_given_with_context_is_no_reduce_step(make_guard):
    """A review: a support ticket or FAQ passed with context= whose bot once replied with the abstain message was held
    as "the run's own earlier answers" on its first and only call."""
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    msg = guard.policy.abstain_message
    for doc in (f"Support ticket 4411\nCustomer: Can I get a refund?\nBot: {msg}\nAgent: Refunds are issued within 14 days.",
                f"Q: Can I get a refund?\nA: {msg}\nQ: How long do refunds take?\nA: Refunds are issued within 14 days."):
        out = rag.invoke({"question": AUSTRALIA, "context": [doc]})
        assert not any("own earlier answers" in r for r in out.reasons), out.reasons
