"""The LangChain RAG tutorial's chain shapes, unchanged, with ChatHGuard as the model: a retriever over a
real InMemoryVectorStore (hguard's sentence embedder) on examples/docs, the tiny calibrated model.
The retrieved passages must be scored as the grounding context and the decision must reach the
caller; a shape whose context cannot be read goes to review ("context not identified")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.runnables.config import patch_config
from langchain_core.vectorstores import InMemoryVectorStore

from hguard.audit import AuditLog
from hguard.errors import AbstainedError, InputError, NeedsReviewError, RouteError
from hguard.guard import Guard
from hguard.policy import Policy
from hguard.testing import shown_answer
from langchain_hguard import ChatHGuard, GuardedOutputParser, GuardedRAG, GuardedText, HGuardAuditCallbackHandler, HGuardEmbeddings
from langchain_hguard.retrieval import CAPTURE

DOCS = Path(__file__).resolve().parents[3] / "examples" / "docs"
AUSTRALIA = "what is the capital of australia ?"
KENYA = "Nairobi is the capital and largest city of Kenya."

# the LangChain RAG tutorial's prompt (hub "rlm/rag-prompt"): context inside the human message
RAG_HUMAN = ChatPromptTemplate.from_messages([(
    "human",
    "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
    "answer the question. If you don't know the answer, just say that you don't know. Use three sentences "
    "maximum and keep the answer concise.\nQuestion: {question} \nContext: {context} \nAnswer:",
)])
# the same with the context in a system message
RAG_SYSTEM = ChatPromptTemplate.from_messages([
    ("system", "Use the following pieces of retrieved context to answer the question.\n\n{context}"),
    ("human", "{question}"),
])


def format_docs(docs):
    return "\n\n".join(d.page_content for d in docs)


@pytest.fixture(scope="module")
def store():
    vs = InMemoryVectorStore(HGuardEmbeddings())
    vs.add_documents([Document(page_content=p.read_text().strip(), metadata={"source": p.name}) for p in sorted(DOCS.glob("*.txt"))])
    return vs


@pytest.fixture
def retriever(store):
    return store.as_retriever(search_kwargs={"k": 2})


def _grounded_guard(tiny_probes, embedder, tmp_path, min_grounding=None):
    """Domain alpha accepts any risk below 1.0, but never without context, nor below min_grounding."""
    lm, probes = tiny_probes
    # the tiny probes are closed-book: requests with context are scored with them on purpose
    # no spot-checks: the tests read the last audit record as the decision (a spot-check record would follow it)
    alpha = {"accept_below": 1.0, "abstain_above": 1.0, "require_grounding": True, "context_with_closed_book_probe": "allow",
             "out_of_distribution": "warn", "spot_check_rate": 0.0}
    if min_grounding is not None:
        alpha["min_grounding"] = min_grounding
    pol = Policy.model_validate({
        "version": 1, "probes": str(probes), "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "generation": {"max_new_tokens": 4, "system_prompt": "answer"}, "domains": {"alpha": alpha},
    })
    return Guard.from_policy(pol, lm=lm, embedder=embedder)


def _decision(guard, meta):
    rec = AuditLog(guard.audit.path).find(meta["audit_id"])
    assert rec is not None and rec["kind"] == "decision" and rec["route"] == meta["route"]
    return rec


def _assert_scored_against_retrieval(guard, meta):
    rec = _decision(guard, meta)
    assert "Canberra is the capital city of Australia." in rec["context"]  # the retrieved passages
    assert rec["question"] == AUSTRALIA  # the retriever's query, not the rendered prompt
    assert meta["signals"]["grounding"] is not None and rec["signals"]["grounding"] == meta["signals"]["grounding"]
    return rec


@pytest.mark.parametrize("prompt", [RAG_HUMAN, RAG_SYSTEM], ids=["context-in-human-message", "context-in-system-message"])
def test_tutorial_chain_scores_the_retrieved_passages(tiny_probes, embedder, tmp_path, retriever, prompt):
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat
    msg = chain.invoke(AUSTRALIA)
    assert isinstance(msg, AIMessage) and msg.response_metadata["route"] == "accept"
    rec = _assert_scored_against_retrieval(guard, msg.response_metadata)
    assert msg.content == shown_answer(rec)
    assert msg.usage_metadata["input_tokens"] > 0 and msg.usage_metadata["output_tokens"] == int(rec["signals"]["length"])
    # the RAG template is replaced by hguard's own framing: not an instruction, so the probe still matches
    assert not any("fingerprint" in r for r in rec["reasons"])
    # the tutorial's tail, StrOutputParser: a plain string; GuardedOutputParser keeps the route
    text = (chain | StrOutputParser()).invoke(AUSTRALIA)
    assert isinstance(text, str) and text == shown_answer(list(AuditLog(guard.audit.path))[-1])
    kept = (chain | GuardedOutputParser()).invoke(AUSTRALIA)
    assert isinstance(kept, GuardedText) and kept.route == "accept" and kept.signals["grounding"] is not None
    # the callback handler's record holds the question and passages the guard read, not the rendered template
    from langchain_hguard import HGuardAuditCallbackHandler

    msg = chain.invoke(AUSTRALIA, config={"callbacks": [HGuardAuditCallbackHandler.from_guard(guard)]})
    call = [r for r in AuditLog(guard.audit.path) if r["kind"] == "llm_call"][-1]
    assert call["decision_audit_id"] == msg.response_metadata["audit_id"] and call["question"] == AUSTRALIA
    assert any("Canberra is the capital city of Australia." in c for c in call["context"])
    assert CAPTURE.open_runs() == 0  # the captured retrievals are forgotten when the chain ends
    # an empty question is refused as empty (and recorded), not replaced by the whole rendered template
    with pytest.raises(InputError, match="the question is empty"):
        chain.invoke("")
    last = list(AuditLog(guard.audit.path))[-1]
    assert last["kind"] == "error" and last["question"] == ""


def test_a_retriever_searching_with_other_text_than_the_question_goes_to_review(tiny_probes, embedder, tmp_path, retriever):
    """Keyword search or a rewritten query: the retriever's text is not the question the prompt asks, so it is
    neither answered nor recorded in the question's place (new-user trial: an answer to the search text was
    accepted)."""
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chain = {"context": (lambda x: x["search"]) | retriever | format_docs, "question": lambda x: x["question"]} \
        | RAG_HUMAN | ChatHGuard(guard=guard, domain="alpha")
    asked = "is the kenyan capital its largest city ?"
    msg = chain.invoke({"search": AUSTRALIA, "question": asked})
    rec = _decision(guard, msg.response_metadata)
    assert msg.response_metadata["route"] == "review"
    # the search text is not quoted: a reason is never redacted, and the search text may be a patient's record (a
    # data-protection officer's trial: a name and a policy number in clear in a redacting log)
    said = [r for r in rec["reasons"] if "question not identified" in r]
    assert said and f"searched with text ({len(AUSTRALIA)} characters)" in said[0] and AUSTRALIA not in said[0]
    assert asked in rec["question"] and AUSTRALIA not in rec["question"]
    assert "Canberra is the capital city of Australia." in rec["context"]  # still scored against what was found
    assert "Canberra is the capital city of Australia." not in rec["question"]
    # a keyword found in the passages, or inside the question, is not the question either (a power user's trial:
    # searching "Nile" answered and accepted "Nile" in the place of the question pasted beside it)
    for keyword, question in (("Canberra", asked), ("kenyan capital", asked), ("Canberra", 'what does "Canberra" mean ?'),
                              ("Canberra", "Canberra, is it the largest city ?"), ("largest city ?", asked)):
        msg = chain.invoke({"search": keyword, "question": question})
        rec = _decision(guard, msg.response_metadata)
        assert msg.response_metadata["route"] == "review" and question in rec["question"], keyword
        assert any("question not identified" in r for r in rec["reasons"]) and rec["question"] != keyword
    # searching with the question itself keeps the question (the tutorial's shape)
    msg = chain.invoke({"search": asked, "question": asked})
    rec = _decision(guard, msg.response_metadata)
    assert rec["question"] == asked and not any("question not identified" in r for r in rec["reasons"])


def test_a_variable_used_inside_the_templates_sentence_is_not_the_question(tiny_probes, embedder, tmp_path, retriever):
    """A review: a retriever searching a template variable used inside a sentence ("... about {topic} using only
    this context") was taken for the question because it was one of the template's values."""
    from langchain_core.prompts import ChatPromptTemplate

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    prompt = ChatPromptTemplate.from_messages([("human", "Answer the user's question about {topic} using only this "
                                                         "context.\nContext: {context}\nQuestion: {question}")])
    chain = {"context": (lambda x: x["topic"]) | retriever | format_docs, "topic": lambda x: x["topic"],
             "question": lambda x: x["question"]} | prompt | ChatHGuard(guard=guard, domain="alpha")
    rec = _decision(guard, chain.invoke({"topic": "australia", "question": AUSTRALIA}).response_metadata)
    assert rec["question"] != "australia" and any("question not identified" in r for r in rec["reasons"])


def test_each_prompt_a_step_formats_for_a_batch_keeps_its_own_question(tiny_probes, embedder, tmp_path, retriever):
    """A review: a step that formats several prompts and then answers them as a batch gave every call the last
    prompt's values, so the first went to review ("question not identified")."""
    from langchain_core.runnables import RunnableLambda

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    rag = {"context": retriever | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN
    questions = [AUSTRALIA, "is the kenyan capital its largest city ?"]
    out = RunnableLambda(lambda qs: chat.batch(rag.batch(qs))).invoke(questions)
    for q, msg in zip(questions, out):
        rec = _decision(guard, msg.response_metadata)
        assert rec["question"] == q and not any("question not identified" in r for r in rec["reasons"]), q


@pytest.mark.parametrize("template", ["**Question:** {question}\n\n{context}", "[QUESTION] {question}\n{context}",
                                      "Contexte : {context}\nQuestion : \u00ab {question} \u00bb",
                                      "\u8cea\u554f\uff1a{question}\n{context}", "{context}\n\n{question}"])
def test_a_retriever_searching_with_the_question_itself_is_read_as_asked_in_any_template(tiny_probes, embedder, tmp_path,
                                                                                       retriever, template):
    """The query is the question where the prompt template was formatted with it as a variable: a review of the first
    fix found templates it no longer read ("**Question:** ...", "[QUESTION] ...", guillemets, a full-width colon)."""
    from langchain_core.prompts import ChatPromptTemplate

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} \
        | ChatPromptTemplate.from_messages([("human", template)]) | ChatHGuard(guard=guard, domain="alpha")
    rec = _decision(guard, chain.invoke(AUSTRALIA).response_metadata)
    assert rec["question"] == AUSTRALIA and not any("question not identified" in r for r in rec["reasons"])


@pytest.mark.parametrize("mode", ["hold", "passthrough"])
def test_tutorial_chain_streamed_scores_the_retrieved_passages(tiny_probes, embedder, tmp_path, retriever, mode):
    import asyncio

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN | ChatHGuard(
        guard=guard, domain="alpha", stream_mode=mode)
    chunks = list(chain.stream(AUSTRALIA))
    assert chunks[-1].response_metadata["route"] == "accept"
    _assert_scored_against_retrieval(guard, chunks[-1].response_metadata)

    async def astream():
        return [c async for c in chain.astream(AUSTRALIA)]

    chunks = asyncio.run(astream())
    assert chunks[-1].response_metadata["route"] == "accept"
    _assert_scored_against_retrieval(guard, chunks[-1].response_metadata)
    assert "".join(c.content for c in chunks) == shown_answer(list(AuditLog(guard.audit.path))[-1])
    assert CAPTURE.open_runs() == 0


class _Tap(BaseCallbackHandler):
    """A streaming callback handler (langchain-core's ``_StreamingCallbackHandler`` protocol, as LangGraph's
    ``stream_mode="messages"`` handler is one): with it listening, langchain-core streams an ``invoke``."""

    def tap_output_iter(self, run_id, output):
        return output

    def tap_output_aiter(self, run_id, output):
        return output


@pytest.mark.parametrize("how", ["invoke", "streaming-handler", "ainvoke", "async-streaming-handler", "astream_events"])
def test_an_invoke_that_a_streaming_handler_streams_is_decided_and_recorded_as_a_plain_invoke(tiny_probes, embedder,
                                                                                             tmp_path, retriever, how):
    """A node of a graph (a step of a chain) calls ``chat.invoke``: under LangGraph's ``stream_mode="messages"`` or
    ``astream_events`` langchain-core streams that invoke and runs ``_stream`` without its run manager. The decision
    lost its run ids, the tutorial prompt's retrieved passages were not identified ("context not identified"), and
    a reduce step whose context is the model's own earlier answer was accepted (held under a plain invoke)."""
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")

    def summarize(draft):
        return chat.invoke(AUSTRALIA, context=[str(draft.content)])

    async def asummarize(draft):
        return await chat.ainvoke(AUSTRALIA, context=[str(draft.content)])

    chain = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN
             | RunnableLambda(lambda prompt: chat.invoke(prompt), afunc=lambda prompt: chat.ainvoke(prompt))
             | RunnableLambda(summarize, afunc=asummarize))
    config = {"callbacks": [HGuardAuditCallbackHandler.from_guard(guard), *([_Tap()] if "handler" in how else [])]}
    if how in ("invoke", "streaming-handler"):
        final = chain.invoke(AUSTRALIA, config=config)
    elif how == "astream_events":
        async def events():
            return [e async for e in chain.astream_events(AUSTRALIA, config=config, version="v2")]

        got = asyncio.run(events())
        assert [e for e in got if e["event"] == "on_chat_model_stream"]  # the invokes were streamed
        final = [e for e in got if e["event"] == "on_chain_end" and not e["parent_ids"]][-1]["data"]["output"]
    else:
        final = asyncio.run(chain.ainvoke(AUSTRALIA, config=config))
    records = list(AuditLog(guard.audit.path))
    draft, held = [r for r in records if r["kind"] == "decision"]
    calls = {r["decision_audit_id"]: r for r in records if r["kind"] == "llm_call"}
    assert draft["route"] == "accept" and "Canberra is the capital city of Australia." in draft["context"]
    assert draft["question"] == AUSTRALIA and not any("not identified" in r for r in draft["reasons"])
    assert held["id"] == final.response_metadata["audit_id"] and final.response_metadata["route"] == "review"
    assert any("own earlier answers" in r for r in held["reasons"]), held["reasons"]
    for d in (draft, held):  # each names its run, as its llm_call record does, and the chain's root run
        assert d.get("run_id") == calls[d["id"]]["run_id"] and d.get("parent_run_id") == calls[d["id"]]["parent_run_id"]
        assert d.get("root_run_id") is not None and d["root_run_id"] == draft["root_run_id"] != d["parent_run_id"]
    assert CAPTURE.open_runs() == 0


def test_passthrough_assign_shape_and_batch(tiny_probes, embedder, tmp_path, retriever):
    from operator import itemgetter

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chain = (
        RunnablePassthrough.assign(context=itemgetter("question") | retriever | format_docs)
        | RAG_HUMAN | ChatHGuard(guard=guard, domain="alpha")
    )
    msg = chain.invoke({"question": AUSTRALIA})
    _assert_scored_against_retrieval(guard, msg.response_metadata)
    out = chain.batch([{"question": AUSTRALIA}, {"question": "which element has the symbol au ?"}])
    _assert_scored_against_retrieval(guard, out[0].response_metadata)
    gold = _decision(guard, out[1].response_metadata)
    assert "Au" in gold["context"] and gold["question"] == "which element has the symbol au ?"
    assert "Canberra" not in gold["context"]  # each input is scored against its own retrieval
    import asyncio

    amsg = asyncio.run(chain.ainvoke({"question": AUSTRALIA}))  # async callbacks capture the retrieval too
    _assert_scored_against_retrieval(guard, amsg.response_metadata)
    assert CAPTURE.open_runs() == 0


@pytest.mark.parametrize("shape", ["human", "system", "assign"])
def test_a_passage_that_does_not_support_the_answer_is_not_accepted(tiny_probes, embedder, tmp_path, shape):
    from operator import itemgetter

    guard = _grounded_guard(tiny_probes, embedder, tmp_path, min_grounding=0.9)
    store = InMemoryVectorStore(HGuardEmbeddings())
    store.add_texts([KENYA])
    retriever = store.as_retriever(search_kwargs={"k": 1})
    chat = ChatHGuard(guard=guard, domain="alpha")
    if shape == "assign":
        chain = RunnablePassthrough.assign(context=itemgetter("question") | retriever | format_docs) | RAG_HUMAN | chat
        msg = chain.invoke({"question": AUSTRALIA})
    else:
        chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | (RAG_HUMAN if shape == "human" else RAG_SYSTEM) | chat
        msg = chain.invoke(AUSTRALIA)
    meta = msg.response_metadata
    rec = _decision(guard, meta)
    assert rec["context"] == KENYA and rec["question"] == AUSTRALIA and meta["signals"]["grounding"] is not None
    assert meta["signals"]["grounding"] < 0.9 and meta["route"] == "review"
    assert any("min_grounding" in r for r in meta["reasons"])


def test_context_pasted_without_a_retriever_run_goes_to_review(tiny_probes, embedder, tmp_path, store):
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    # a LangGraph-style step that searches the store directly: no retriever run to read the passages from
    search = RunnableLambda(lambda q: format_docs(store.similarity_search(q, k=2)))
    chain = {"context": search, "question": RunnablePassthrough()} | RAG_HUMAN | chat
    msg = chain.invoke(AUSTRALIA)
    meta = msg.response_metadata
    assert meta["route"] == "review" and any("context not identified" in r for r in meta["reasons"])
    assert meta["signals"].get("grounding") is None  # nothing was scored, so nothing could accept
    # the same prompt called directly, outside any chain
    direct = chat.invoke(RAG_HUMAN.invoke({"question": AUSTRALIA, "context": "Canberra is the capital."}).to_messages())
    assert direct.response_metadata["route"] == "review"
    assert any("context not identified" in r for r in direct.response_metadata["reasons"])


def test_a_plain_question_and_a_persona_system_prompt(tiny_probes, embedder, tmp_path, make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    plain = chat.invoke(AUSTRALIA)
    assert plain.response_metadata["route"] == "accept"  # no context asked for, none missing
    persona = chat.invoke([SystemMessage("You are a helpful assistant."), HumanMessage(AUSTRALIA)])
    rec = _decision(guard, persona.response_metadata)
    assert rec["context"] is None  # an instruction, not context
    # the probe was calibrated under another system prompt: the mismatch is named and routes to review
    assert persona.response_metadata["route"] == "review"
    assert any("system_prompt_fingerprint" in r for r in persona.response_metadata["reasons"])


def test_history_goes_to_the_chat_template_and_the_fingerprint(make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    msgs = [HumanMessage("what is the capital of france"), AIMessage("it is paris"), HumanMessage("what is the capital of italy")]
    out = chat.invoke(msgs)
    rec = _decision(guard, out.response_metadata)
    assert rec["question"] == "what is the capital of italy"
    ids = guard.generator.prompt_ids("what is the capital of italy", history=[
        {"role": "user", "content": "what is the capital of france"}, {"role": "assistant", "content": "it is paris"}])
    prompt = guard.lm.tokenizer.decode(ids)
    assert "user what is the capital of france" in prompt and "assistant it is paris" in prompt
    assert out.usage_metadata["input_tokens"] == len(ids)
    # single-turn probes do not cover multi-turn prompts: named, and routed to review
    assert out.response_metadata["route"] == "review"
    assert any("history_fingerprint" in r for r in out.response_metadata["reasons"])


def test_raise_on_makes_fallbacks_fire(make_guard):
    guard = make_guard("review")
    strict = ChatHGuard(guard=guard, domain="alpha", raise_on={"abstain", "review"})
    with pytest.raises(NeedsReviewError) as err:
        strict.invoke(AUSTRALIA)
    assert err.value.result.route == "review" and AuditLog(guard.audit.path).find(err.value.result.audit_id)
    assert err.value.audit_id == err.value.result.audit_id  # where an InputError the guard recorded has it too
    fallback = RunnableLambda(lambda _: AIMessage("I cannot answer that reliably."))
    assert strict.with_fallbacks([fallback], exceptions_to_handle=(RouteError,)).invoke(AUSTRALIA).content == "I cannot answer that reliably."
    with pytest.raises(AbstainedError):
        ChatHGuard(guard=make_guard("abstain"), domain="alpha", raise_on="abstain").invoke(AUSTRALIA)
    with pytest.raises(ValueError, match="raise_on"):
        ChatHGuard(guard=guard, raise_on={"accept"})
    with pytest.raises(ValueError, match="stream_mode='hold'"):  # its tokens would reach the user before the fallback
        ChatHGuard(guard=guard, raise_on={"abstain"}, stream_mode="passthrough")
    with pytest.raises(ValueError, match="passthrough"):
        list(strict.stream(AUSTRALIA, stream_mode="passthrough"))


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_a_chains_own_retry_raises_the_same_held_decision_again_without_a_new_one(make_guard, how):
    """(prompt | ChatHGuard(raise_on=...) | parser).with_retry(): each attempt generated the held answer again, and the
    log held three decisions and the queue three review items for one question (a finance firm's trial)."""
    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha", raise_on={"review"})
    chain = (ChatPromptTemplate.from_messages([("human", "{q}")]) | chat | StrOutputParser()).with_retry(
        stop_after_attempt=3, wait_exponential_jitter=False)
    with pytest.raises(NeedsReviewError) as err:
        chain.invoke({"q": AUSTRALIA}) if how == "invoke" else asyncio.run(chain.ainvoke({"q": AUSTRALIA}))
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert len(decisions) == 1 and err.value.audit_id == decisions[0]["id"]
    assert len(guard.review_queue.queued_ids()) == 1
    with pytest.raises(NeedsReviewError):  # a new request is decided anew
        chain.invoke({"q": AUSTRALIA})
    assert len([r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]) == 2

    def serve(requests):  # one outer run holding several users' requests (a server's wrapper chain): each decided
        out = []
        for q in requests:
            try:
                chain.invoke({"q": q})
            except NeedsReviewError as exc:
                out.append(exc.audit_id)
        return out

    ids = RunnableLambda(serve).invoke([AUSTRALIA, AUSTRALIA])  # (a reviewer's trial: bob got alice's decision)
    assert len(set(ids)) == 2 and len([r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]) == 4


def _langgraph_task(node, task: str):
    """A LangGraph node run as LangGraph runs a task (without LangGraph): each attempt, and each re-run on resume,
    invokes the node with the task's config, whose metadata names the task (``langgraph_checkpoint_ns``,
    ``"node:task_id"``, the same for every attempt); a RetryPolicy runs it again on an error (langgraph
    pregel/_retry.py: run_with_retry, its default retry_on retrying any error but a few builtin ones)."""
    def run(state, config):
        task_config = patch_config(config, run_name=task.split(":")[0])
        task_config["metadata"] = {**task_config.get("metadata", {}), "langgraph_checkpoint_ns": task,
                                   "langgraph_node": task.split(":")[0]}
        for attempt in range(3):
            try:
                return RunnableLambda(node).invoke(state, task_config)
            except Exception:
                if attempt == 2:
                    raise
    return RunnableLambda(run, name="LangGraph")


def test_a_chain_retry_of_a_call_held_by_the_adapters_own_check_raises_the_same_decision_again(make_guard):
    """A review's finding: a hold the adapter itself found (context= given with no passage: "nothing retrieved") was
    read as a failure's hold, for a retry to lift, so a chain's .with_retry() generated, decided and queued it again at
    each attempt (3 decisions, 3 review items); the call brings that problem each time, so it is the same decision."""
    from hguard.errors import NeedsReviewError
    from langchain_core.runnables import RunnableLambda

    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha", raise_on={"review"})
    chain = RunnableLambda(lambda q: chat.invoke(q, context=[])).with_retry(stop_after_attempt=3,
                                                                           wait_exponential_jitter=False)
    with pytest.raises(NeedsReviewError, match="nothing retrieved"):
        chain.invoke("what is the capital of australia ?")
    assert [r["route"] for r in AuditLog(guard.audit.path) if r["kind"] == "decision"] == ["review"]
    assert len(guard.review_queue.queued_ids()) == 1


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_a_langgraph_retry_policy_raises_the_same_held_decision_again_without_a_new_one(make_guard, how):
    """A LangGraph node with a RetryPolicy over ChatHGuard(raise_on=...): each attempt generated the held answer again,
    three decisions and three review items for one question (a LangGraph team's trial); a later attempt of the same
    task gets the same held decision raised again, and so does the task run again when its thread resumes."""
    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha", raise_on={"review"})
    asked = []

    def generate(state):
        asked.append(state["q"])
        if how == "stream":
            return {"answer": "".join(c.content for c in chat.stream(state["q"]))}
        return {"answer": chat.invoke(state["q"]).content}

    def decisions():
        return [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]

    with pytest.raises(NeedsReviewError) as err:
        _langgraph_task(generate, "generate:1f0e").invoke({"q": AUSTRALIA})
    assert len(asked) == 3 and len(decisions()) == 1 and err.value.audit_id == decisions()[0]["id"]
    assert len(guard.review_queue.queued_ids()) == 1
    with pytest.raises(NeedsReviewError) as again:  # the thread resumed: a new root run, the same task
        _langgraph_task(generate, "generate:1f0e").invoke({"q": AUSTRALIA})
    assert again.value.audit_id == err.value.audit_id and len(decisions()) == 1
    with pytest.raises(NeedsReviewError) as other:  # another task (the next question's step) is decided anew
        _langgraph_task(generate, "generate:2a9c").invoke({"q": AUSTRALIA})
    assert other.value.audit_id != err.value.audit_id and len(decisions()) == 2

    def serve(state):  # one attempt serving several users' requests: each decided
        out = []
        for q in state["qs"]:
            try:
                chat.invoke(q)
            except NeedsReviewError as exc:
                out.append(exc.audit_id)
        return out

    ids = _langgraph_task(serve, "serve:3b7d").invoke({"qs": [AUSTRALIA, AUSTRALIA]})
    assert len(set(ids)) == 2 and len(decisions()) == 4
    # a call outside any task is unaffected: decided anew each time
    for _ in range(2):
        with pytest.raises(NeedsReviewError):
            RunnableLambda(lambda q: chat.invoke(q)).invoke(AUSTRALIA)
    assert len(decisions()) == 6
    assert CAPTURE.open_runs() == 0


def test_guarded_rag_composes_with_str_output_parser_and_streams(make_guard, retriever):
    guard = make_guard("accept")
    rag = GuardedRAG.from_guard(guard, domain="alpha")
    chain = {"question": RunnablePassthrough(), "documents": retriever} | rag
    text = (chain | StrOutputParser()).invoke(AUSTRALIA)
    assert isinstance(text, str) and text == shown_answer(list(AuditLog(guard.audit.path))[-1])
    passthrough = GuardedRAG(llm=ChatHGuard(guard=make_guard("accept", max_new_tokens=6), domain="alpha", stream_mode="passthrough"))
    chunks = list(({"question": RunnablePassthrough(), "documents": retriever} | passthrough).stream(AUSTRALIA))
    assert len(chunks) >= 2 and all(c.route is None for c in chunks[:-1]) and chunks[-1].route == "accept"
    rec = AuditLog(passthrough.llm.guard.audit.path).find(chunks[-1].audit_id)
    assert "".join(chunks).strip() == shown_answer(rec) and chunks[-1].sources[0] == "australia.txt"
    # astream streams the same way (it fell back to one held chunk)
    import asyncio

    from langchain_hguard import create_guarded_rag_chain

    async def collect(runnable, value):
        return [c async for c in runnable.astream(value)]

    for runnable, value in ((passthrough, {"question": AUSTRALIA, "documents": retriever.invoke(AUSTRALIA)}),
                            (create_guarded_rag_chain(retriever, passthrough.llm), AUSTRALIA)):
        achunks = asyncio.run(collect(runnable, value))
        assert len(achunks) >= 2 and all(c.route is None for c in achunks[:-1]) and achunks[-1].route == "accept"
        assert "".join(achunks).strip() == shown_answer(AuditLog(passthrough.llm.guard.audit.path).find(achunks[-1].audit_id))


def test_guarded_rag_bad_input_is_named_and_an_empty_retrieval_goes_to_review(make_guard, retriever):
    from langchain_core.retrievers import BaseRetriever

    from langchain_hguard import create_guarded_rag_chain

    guard = make_guard("accept")
    rag = GuardedRAG.from_guard(guard, domain="alpha")
    n_records = len(list(AuditLog(guard.audit.path))) if guard.audit.path.exists() else 0
    with pytest.raises(InputError, match="'documents' must be a list of Documents or strings .* got str"):
        rag.invoke({"question": AUSTRALIA, "documents": "not a list"})  # was split into one passage per letter
    with pytest.raises(InputError, match="'question' must be a string, got int"):
        rag.invoke({"question": 42, "documents": []})
    with pytest.raises(InputError, match="item 0 is Document; pass Documents under 'documents'"):
        rag.invoke({"question": AUSTRALIA, "context": [Document(page_content="Canberra.")]})
    with pytest.raises(InputError, match="'documents' item 0 has page_content of type int, not text"):
        rag.invoke({"question": AUSTRALIA, "documents": [Document.model_construct(page_content=12345)]})
    # misnamed passages were dropped unread and the answer accepted as a closed-book one
    with pytest.raises(InputError, match=r"does not read the input key\(s\) \['docs'\]; it reads 'question', 'documents'"):
        rag.invoke({"question": AUSTRALIA, "docs": [Document(page_content="Canberra is the capital.")]})
    chain = create_guarded_rag_chain(retriever, ChatHGuard(guard=guard), domain="alpha")
    with pytest.raises(InputError, match="takes the question as a string, got dict") as last:
        chain.invoke({"question": AUSTRALIA})
    # nothing answered, every refusal on record: an error record each, its id on the error
    new = list(AuditLog(guard.audit.path))[n_records:]
    assert [r["kind"] for r in new] == ["error"] * 6 and new[-1]["id"] == last.value.audit_id
    assert [r["source"] for r in new] == ["GuardedRAG"] * 5 + ["create_guarded_rag_chain"]
    assert new[1]["question"] == "42" and "page_content of type int" in new[3]["error"]

    class Nothing(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return []

    class Blank(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content="  \n "), Document(page_content="\u200b\ufeff")]

    for template in ("Background:\n{context}\n\nQ: {question}", "{context}\n\n{question}"):  # no word about context
        tutorial = ({"context": Nothing() | format_docs, "question": RunnablePassthrough()}
                    | ChatPromptTemplate.from_messages([("human", template)]) | ChatHGuard(guard=guard, domain="alpha"))
        meta = tutorial.invoke(AUSTRALIA).response_metadata
        assert meta["route"] == "review", meta["reasons"]  # the domain accepts everything, but nothing was retrieved
        assert any("nothing retrieved: the chain's retrievers returned no passage" in r for r in meta["reasons"]), meta["reasons"]
        # the question on record (and routed) is the user's, not the template around an empty context
        assert _decision(guard, meta)["question"] == AUSTRALIA
    for out in (rag.invoke({"question": AUSTRALIA, "documents": []}),
                create_guarded_rag_chain(Nothing(), ChatHGuard(guard=guard), domain="alpha").invoke(AUSTRALIA),
                create_guarded_rag_chain(Blank(), ChatHGuard(guard=guard), domain="alpha").invoke(AUSTRALIA)):
        assert out.route == "review"  # the domain accepts everything, but nothing was retrieved to ground it in
        assert any("nothing retrieved: the retriever returned no passage" in r for r in out.reasons), out.reasons
        assert not any("document(s) but none of their text" in r for r in out.reasons), out.reasons  # one reason
        assert sum("nothing retrieved" in r for r in out.reasons) == 1, out.reasons  # said once, not per layer
    assert rag.invoke({"question": AUSTRALIA, "context": "Canberra is the capital of Australia."}).route == "accept"
    # a service that formats an empty retrieval ("", [], None) asks for an answer from passages all the same
    for context in ("", " \n", [], [""], None, "\u200b", ["\ufeff"]):
        out = rag.invoke({"question": AUSTRALIA, "context": context})
        assert out.route == "review" and any("nothing retrieved: the 'context' given returned no passage" in r
                                             for r in out.reasons), (context, out.reasons)
    chat = ChatHGuard(guard=guard, domain="alpha")
    for messages in ([SystemMessage(content="", name="context"), HumanMessage(content=AUSTRALIA)],
                     [HumanMessage(content=" ", name="context"), HumanMessage(content=AUSTRALIA)],
                     [HumanMessage(content="\u200b", name="context"), HumanMessage(content=AUSTRALIA)],
                     [SystemMessage(content="", name="Context"), HumanMessage(content=AUSTRALIA)]):  # any case
        meta = chat.invoke(messages).response_metadata
        assert meta["route"] == "review" and any("nothing retrieved: the messages named 'context'" in r
                                                 for r in meta["reasons"]), meta["reasons"]


def test_framework_conventions(make_guard):
    guard = make_guard("accept", max_new_tokens=8)
    chat = ChatHGuard(guard=guard, domain="alpha")
    ids = chat.get_token_ids("what is the capital of australia ?")
    assert ids == guard.lm.tokenizer.encode("what is the capital of australia ?", add_special_tokens=False)
    assert chat.get_num_tokens("what is the capital") == 4
    # a counter is asked of history fragments and of prompts too long to answer (trim_messages): both were refused
    from langchain_core.messages import trim_messages

    turns = [HumanMessage("what is gold ?"), AIMessage("gold is a metal ."), HumanMessage(AUSTRALIA), AIMessage("canberra .")]
    assert 0 < chat.get_num_tokens_from_messages(turns[1:2]) < chat.get_num_tokens_from_messages(turns)
    long = [HumanMessage(" ".join(["gold is a metal ."] * 80))]  # over the tiny model's 256-token window
    assert chat.get_num_tokens_from_messages(long) > 256
    trim = lambda n: trim_messages(turns, max_tokens=n, token_counter=chat, strategy="last", start_on="human")  # noqa: E731
    assert trim(10_000) == turns
    kept = trim(chat.get_num_tokens_from_messages(turns) - 1)
    assert kept and kept == turns[-len(kept):] and len(kept) < len(turns), kept
    assert chat._get_ls_params(model="other")["ls_model_name"] == "other"
    assert chat._get_ls_params()["ls_model_name"] == "tiny-llama"
    with pytest.raises(NotImplementedError, match="tool"):
        chat.bind_tools([])
    with pytest.raises(NotImplementedError, match="structured"):
        chat.with_structured_output(dict)
    free = chat.invoke(AUSTRALIA)
    words = _decision(guard, free.response_metadata)["answer"].split()
    stop_word = words[1] if len(words) > 1 else words[0]
    cut = chat.invoke(AUSTRALIA, stop=[stop_word])
    rec = _decision(guard, cut.response_metadata)
    assert stop_word not in rec["answer"].split() and free.content.startswith(rec["answer"])
    assert cut.response_metadata["signals"]["length"] <= free.response_metadata["signals"]["length"]
    # what is shown ends before what was scored: the reasons say so
    assert any(f"stop sequence {stop_word!r}" in x for x in rec["reasons"]), rec["reasons"]
    assert not any("stop sequence" in x for x in _decision(guard, free.response_metadata)["reasons"])
    # max_tokens per call, as a hosted chat model takes it (invoke or bind), caps this answer only
    for short in (chat.invoke(AUSTRALIA, max_tokens=1), chat.bind(max_tokens=1).invoke(AUSTRALIA)):
        assert short.response_metadata["signals"]["length"] == 1 < free.response_metadata["signals"]["length"]
        assert _decision(guard, short.response_metadata)["generation"]["max_new_tokens"] == 1
    assert chat.invoke(AUSTRALIA).response_metadata["signals"]["length"] == free.response_metadata["signals"]["length"]
    with pytest.raises(ValueError, match="max_tokens must be a whole number of at least 1, got 0"):
        chat.invoke(AUSTRALIA, max_tokens=0)
    for bad in (0, True, 2.5):  # the field and a call's own max_tokens= are checked alike
        with pytest.raises(ValueError, match=f"max_tokens must be a whole number of at least 1, got {bad!r}"):
            ChatHGuard(guard=guard, max_tokens=bad)


def test_text_asked_for_to_search_with_is_not_held_as_an_answer(make_guard, store, tiny_probes, embedder, tmp_path):
    """A retriever that asks the model for its queries (MultiQueryRetriever's way) and
    create_history_aware_retriever's rewrite of a follow-up: the model's text is what gets searched for,
    recorded as a retrieval_query; a hold message in its place would have been searched for."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.prompts import MessagesPlaceholder, PromptTemplate
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableBranch

    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha")
    searched: list[str] = []

    def search(q: str):
        searched.append(q)
        return store.similarity_search(q, k=1)

    class QueryWriting(BaseRetriever):  # as MultiQueryRetriever: the model's call is a child of the retriever run
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            asked = (PromptTemplate.from_template("Write a search query for: {q}") | chat | StrOutputParser())
            return search(asked.invoke({"q": query}, config={"callbacks": run_manager.get_child()}))

    docs = QueryWriting().invoke(AUSTRALIA)
    assert docs and searched[-1] and "held" not in searched[-1] and "[needs review]" not in searched[-1]
    log = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in log] == ["retrieval_query"]  # no decision, nothing queued for a reviewer
    assert log[0]["answer"] == searched[-1] and "QueryWriting" in log[0]["step"] and AUSTRALIA in log[0]["question"]
    assert guard.review_queue.pending() == []

    # create_history_aware_retriever (langchain-classic), as it builds its chain, then the answer
    rephrase = ChatPromptTemplate.from_messages([
        ("system", "Given a chat history and the latest user question, formulate a standalone question."),
        MessagesPlaceholder("chat_history"), ("human", "{input}"),
    ])
    history_aware = RunnableBranch(
        (lambda x: not x.get("chat_history", False), (lambda x: x["input"]) | RunnableLambda(search)),
        rephrase | chat | StrOutputParser() | RunnableLambda(search),
    ).with_config(run_name="chat_retriever_chain")
    answer = ChatPromptTemplate.from_messages([("system", "Context: {context}"), ("human", "{input}")]) | chat
    chain = RunnablePassthrough.assign(context=history_aware | RunnableLambda(format_docs)) | answer
    out = chain.invoke({"input": "and of kenya ?", "chat_history": [HumanMessage(AUSTRALIA), AIMessage("canberra")]})
    rewrite = [r for r in AuditLog(guard.audit.path) if r["kind"] == "retrieval_query"][-1]
    assert rewrite["answer"] == searched[-1] and "chat_retriever_chain" in rewrite["step"]
    assert rewrite["question"] == "and of kenya ?" and rewrite["history_turns"] == 2
    # the answer given from what was found is still guarded, and held
    assert out.response_metadata["route"] == "review"
    assert _decision(guard, out.response_metadata)["question"] == "and of kenya ?"
    # create_retrieval_chain renames the retriever it is given ("retrieve_documents"), the history-aware one too
    chain = RunnablePassthrough.assign(
        context=history_aware.with_config(run_name="retrieve_documents") | RunnableLambda(format_docs)) | answer
    before = len(searched)
    out = chain.invoke({"input": "and of kenya ?", "chat_history": [HumanMessage(AUSTRALIA), AIMessage("canberra")]})
    assert len(searched) == before + 1 and "[needs review]" not in searched[-1] and "held" not in searched[-1]
    assert [r for r in AuditLog(guard.audit.path) if r["kind"] == "retrieval_query"][-1]["answer"] == searched[-1]
    assert out.response_metadata["route"] == "review"
    # streamed, the rewrite is a step of the stream too
    before = len(searched)
    chunks = list(chain.stream({"input": "and of kenya ?", "chat_history": [HumanMessage(AUSTRALIA), AIMessage("canberra")]}))
    assert chunks and len(searched) == before + 1 and "[needs review]" not in searched[-1] and "held" not in searched[-1]
    assert [r for r in AuditLog(guard.audit.path) if r["kind"] == "retrieval_query"][-1]["answer"] == searched[-1]
    assert CAPTURE.open_runs() == 0

    # a retriever that has retrieved and then asks the model about what it found (a ContextualCompressionRetriever):
    # the step's own prompt, as written, is what the model answers, with no decision; framed as an answer, an
    # LLMChainFilter's YES/NO instruction was dropped (the model answered the question, its parser failed) and each
    # call was decided, queued and counted as an answer nobody was shown
    filter_prompt = PromptTemplate.from_template(
        "Given the following question and context, return YES if the context is relevant to the question and NO if "
        "it isn't.\n\n> Question: {q}\n> Context:\n>>>\n{d}\n>>>\n> Relevant (YES / NO):")
    verdicts: list[str] = []

    class Filtering(BaseRetriever):  # LLMChainFilter's way: the documents found, kept or dropped by the model's reply
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            found = store.as_retriever(search_kwargs={"k": 1}).invoke(query, config={"callbacks": run_manager.get_child()})
            judge = filter_prompt | chat | StrOutputParser()
            verdicts.extend(judge.invoke({"q": query, "d": d.page_content}, config={"callbacks": run_manager.get_child()})
                            for d in found)
            return found

    class Compressing(BaseRetriever):  # LLMChainExtractor's way: the documents are what the model wrote
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            found = store.as_retriever(search_kwargs={"k": 1}).invoke(query, config={"callbacks": run_manager.get_child()})
            extract = PromptTemplate.from_template("Extract what answers {q} from: {d}") | chat | StrOutputParser()
            return [Document(page_content=extract.invoke({"q": query, "d": d.page_content},
                                                         config={"callbacks": run_manager.get_child()})) for d in found]

    # a retriever of another kind that answers inside its run (a review's): its answer is decided, as before
    answering = Compressing().invoke(AUSTRALIA)[0].page_content
    last = list(AuditLog(guard.audit.path))[-1]
    assert last["kind"] == "decision" and last["route"] == "review" and answering != last["answer"]
    # langchain-classic's ContextualCompressionRetriever, or one of yours under its run name
    Filtering = Filtering().with_config(run_name="ContextualCompressionRetriever")  # noqa: N806
    Compressing = Compressing().with_config(run_name="ContextualCompressionRetriever")  # noqa: N806
    n_logged, n_queued = len(list(AuditLog(guard.audit.path))), len(guard.review_queue.pending())
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    (kept,) = Filtering.invoke(AUSTRALIA, config={"callbacks": [handler]})
    new = list(AuditLog(guard.audit.path))[n_logged:]
    assert [r["kind"] for r in new] == ["retrieval_query", "llm_call"], [r["kind"] for r in new]
    step, call = new
    assert "Relevant (YES / NO):" in step["question"] and kept.page_content in step["question"]  # the prompt as written
    assert step["answer"] == verdicts[0] and "document compressor" in step["step"] and "ContextualCompressionRetriever" in step["step"]
    # the call's own record names the step it served (an auditor read a rewrite's text as an answer without a decision)
    assert call["hguard_step"] == "retrieval_query" and call["retrieval_query_audit_id"] == step["id"]
    assert call["decision_audit_id"] is None and len(guard.review_queue.pending()) == n_queued
    (doc,) = Compressing.invoke(AUSTRALIA)
    last = list(AuditLog(guard.audit.path))[-1]
    assert last["kind"] == "retrieval_query" and doc.page_content == last["answer"] and "Extract what answers" in last["question"]
    # ... and an answer grounded on what it wrote is not scored as grounded: held, whatever its risk; one grounded on
    # the documents a filter kept is scored on them
    accepting = ChatHGuard(guard=_grounded_guard(tiny_probes, embedder, tmp_path / "acc"), domain="alpha")
    compressing = Compressing
    rag = {"context": compressing | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN | accepting
    meta = rag.invoke(AUSTRALIA).response_metadata
    assert meta["route"] == "review" and any("the model's own rewrite of what a retriever found" in r
                                             for r in meta["reasons"]), meta["reasons"]
    filtering = {"context": Filtering | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN | accepting
    meta = filtering.invoke(AUSTRALIA).response_metadata
    assert not any("the model's own rewrite" in r or "context not identified" in r for r in meta["reasons"]), meta["reasons"]
    assert kept.page_content in _decision(accepting.guard, meta)["context"]
    # a review: a retriever that searches the store itself (no retriever run under it), then has the model extract,
    # handed on the model's text as found documents, and the answer was grounded on it
    class Extracting(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            extract = PromptTemplate.from_template("Extract what answers {q} from: {d}") | chat | StrOutputParser()
            return [Document(page_content=extract.invoke({"q": query, "d": d.page_content},
                                                         config={"callbacks": run_manager.get_child()}))
                    for d in store.similarity_search(query, k=1)]

    extracting = {"context": Extracting() | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN | accepting
    meta = extracting.invoke(AUSTRALIA).response_metadata
    assert meta["route"] == "review" and any("the model's own rewrite of what a retriever found" in r
                                             for r in meta["reasons"]), meta["reasons"]


@pytest.mark.parametrize("how", ["astream", "astream_events"])
def test_a_search_steps_text_streamed_async_is_generated_off_the_event_loop(make_guard, how):
    """create_history_aware_retriever's rewrite under astream / astream_events: the text is generated in a worker
    thread, the event loop free meanwhile (on the loop's thread a slowed rewrite stalled every other task of the loop
    for its whole length), and recorded as the synchronous stream records it."""
    import threading

    from langchain_core.prompts import MessagesPlaceholder
    from langchain_core.runnables import RunnableBranch

    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha")
    rephrase = ChatPromptTemplate.from_messages([
        ("system", "Given a chat history and the latest user question, formulate a standalone question."),
        MessagesPlaceholder("chat_history"), ("human", "{input}"),
    ])
    history_aware = RunnableBranch(
        (lambda x: not x.get("chat_history", False), lambda x: x["input"]), rephrase | chat | StrOutputParser(),
    ).with_config(run_name="chat_retriever_chain")
    inp = {"input": "and of kenya ?", "chat_history": [HumanMessage(AUSTRALIA), AIMessage("canberra")]}
    synced = "".join(history_aware.stream(inp))
    loop_ran: list[bool] = []
    rewrite = guard.rewrite_query

    def rewrite_while_the_loop_runs(*args, **kwargs):
        if threading.get_ident() == loop_thread:  # the loop is blocked: waiting for it here would never end
            loop_ran.append(False)
        else:  # the loop runs a task of its own meanwhile
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=60)
            loop_ran.append(True)
        return rewrite(*args, **kwargs)

    guard.rewrite_query = rewrite_while_the_loop_runs

    async def run():
        nonlocal loop, loop_thread
        loop, loop_thread = asyncio.get_running_loop(), threading.get_ident()
        if how == "astream":
            return "".join([c async for c in history_aware.astream(inp)])
        ends = [e async for e in history_aware.astream_events(inp, version="v2") if e["event"] == "on_chain_end"]
        return ends[-1]["data"]["output"]

    loop, loop_thread = None, None
    text = asyncio.run(run())
    assert loop_ran == [True]
    assert text == synced and "[needs review]" not in text  # (the tiny model is greedy: the same text)
    records = [r for r in AuditLog(guard.audit.path)]
    assert [r["kind"] for r in records] == ["retrieval_query"] * 2 and guard.review_queue.pending() == []
    same = ("step", "question", "answer", "history_turns")
    assert {k: records[1][k] for k in same} == {k: records[0][k] for k in same}
    assert "chat_retriever_chain" in records[1]["step"] and records[1]["answer"] == text
    assert CAPTURE.open_runs() == 0


def test_the_context_is_what_the_chain_pasted_not_the_whole_document(tiny_probes, embedder, tmp_path):
    """A formatter that cuts each document (before its internal notes, or to a length), and two files that
    open alike of which one was pasted: the answer is generated from, scored against and recorded with the
    text the prompt holds, never what the chain left out."""
    from langchain_core.retrievers import BaseRetriever

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    head = ("Claim file. Policyholder details follow. Water damage claims must be reported within 30 days of "
            "discovery, with photos and receipts for every repair, and are assessed by an adjuster within ten "
            "working days of the report. ")
    mine = Document(page_content=head + "Policyholder: Jane Roe.\nINTERNAL NOTES: recommend denying; reserve 12,000.")
    other = Document(page_content=head + "Policyholder: John Doe, 4 Elm Street.")

    class Both(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [mine, other]

    def public_part(docs):  # the app pastes the first file, without its internal notes
        return docs[0].page_content.split("INTERNAL NOTES")[0]

    chat = ChatHGuard(guard=guard, domain="alpha")
    chain = {"context": Both() | public_part, "question": RunnablePassthrough()} | RAG_HUMAN | chat
    rec = _decision(guard, chain.invoke(AUSTRALIA).response_metadata)
    assert "Jane Roe" in rec["context"] and "INTERNAL NOTES" not in rec["context"] and "John Doe" not in rec["context"]
    cut = {"context": Both() | (lambda docs: docs[0].page_content[:250]), "question": RunnablePassthrough()} | RAG_HUMAN | chat
    rec = _decision(guard, cut.invoke(AUSTRALIA).response_metadata)
    assert rec["context"] == mine.page_content[:250].rstrip()
    # cut shorter than the 200 characters the match first reads (a law firm's chain cut each clause to 120): it went
    # to review as "context not identified", the whole prompt recorded as the question and no context
    for n in (120, 70):
        short = {"context": Both() | (lambda docs, n=n: docs[0].page_content[:n]), "question": RunnablePassthrough()} | RAG_HUMAN | chat
        rec = _decision(guard, short.invoke(AUSTRALIA).response_metadata)
        assert rec["context"] == mine.page_content[:n].rstrip() and rec["question"] == AUSTRALIA, rec
        assert not any("context not identified" in x for x in rec["reasons"])


def test_a_chain_that_cleans_the_text_it_pastes_is_scored_on_the_cleaned_text(tiny_probes, embedder, tmp_path):
    """A legal team's trial: a formatter joining words a PDF hyphenated at a line's end cut each clause at its first
    joined word (the longest opening found verbatim), so the model answered from "... shall be gov" and never read
    the governing law the prompt held, and no reason said so."""
    from langchain_core.retrievers import BaseRetriever

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    law = Document(page_content=(
        "ACME CORP. MASTER SERVICES AGREEMENT          Page 19 of 23\n18.4 Governing Law. This Agreement and any "
        "dispute arising out of or relating to it shall be gov-\nerned by and construed in accordance with the laws "
        "of the State of New York, without giving effect to any choice of law rules.\nCONFIDENTIAL"))
    term = Document(page_content=(
        "12.1 Either party may terminate this Agreement at any time upon thirty (30) days\u2019 writ-\nten notice "
        "to the other party, and 12.2 each party shall return the other\u2019s Confidential Information."))

    class Clauses(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [law, term]

    def cleaned(docs):  # joined words, straight quotes
        return "\n\n".join(d.page_content.replace("-\n", "").replace("\u2019", "'") for d in docs)

    chain = {"context": Clauses() | cleaned, "question": RunnablePassthrough()} | RAG_HUMAN | ChatHGuard(
        guard=guard, domain="alpha")
    rec = _decision(guard, chain.invoke("Which law governs this agreement?").response_metadata)
    assert rec["context"] == cleaned([law, term]), rec["context"]
    assert rec["question"] == "Which law governs this agreement?"
    assert not any("context not identified" in x for x in rec["reasons"])


def test_blank_and_repeated_documents_of_a_retrieval_are_said_in_the_reasons(tiny_probes, embedder, tmp_path):
    """A retriever over messy extracted pages returns a blank page and the same clause twice: the answer is
    generated from and scored against each text once, and the reasons say what was left out (a legal team's audit
    showed 2 passages used where 4 documents were retrieved, with no word why). Notes, not holds."""
    from langchain_core.retrievers import BaseRetriever

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    law = "Governing law. This Agreement is governed by the laws of the State of New York."
    docs = [Document(page_content=law), Document(page_content=law), Document(page_content="   \n\t "),
            Document(page_content=KENYA)]

    class Messy(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return docs

    chat = ChatHGuard(guard=guard, domain="alpha")
    chain = {"context": Messy() | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN | chat
    meta = chain.invoke(AUSTRALIA).response_metadata
    rec = _decision(guard, meta)
    assert rec["context"] == f"{law}\n\n{KENYA}" and meta["route"] == "accept"
    assert "1 of the 4 retrieved passages (number 2, counting from 0) was empty and left out of the context" in rec["reasons"]
    assert "1 of the 4 retrieved passages (number 1, counting from 0) was the same text as an earlier one and used once" \
        in rec["reasons"]


def test_an_empty_context_given_to_the_chat_model_is_nothing_retrieved_not_an_error(make_guard):
    """chat.invoke(q, context=formatted_retrieval) where the retrieval found nothing: held for review as
    GuardedRAG holds it (it raised InputError and broke the chain), never answered as a closed-book question."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    for empty in ("", "  \n", [], ["", " "], "\u200b", ["\ufeff", " "]):  # invisible characters alone: no text either
        meta = chat.invoke(AUSTRALIA, context=empty).response_metadata
        assert meta["route"] == "review", (empty, meta["reasons"])
        assert any("nothing retrieved: the context= given returned no passage" in r for r in meta["reasons"]), meta["reasons"]
        assert _decision(guard, meta)["context"] is None


ACME = ("You are ACME's benefits assistant. Reply ONLY in German. Never answer questions that are not about ACME "
        "benefits.")


def test_an_apps_instruction_beside_the_passages_in_a_system_message_is_the_calls_instruction(tiny_probes, embedder,
                                                                                               tmp_path, retriever):
    """A product team's trial: ``[("system", INSTR + "\\n\\nContext:\\n{context}"), ("human", "{question}")]`` (the
    tutorial's shape with the app's own instructions) lost INSTR with the RAG template: never given to the model,
    fingerprinted or recorded, and off-topic answers were accepted. The instruction, without its "Context:" label, is
    the call's (recorded, and a fingerprint mismatch holds it); the stock tutorial prompts alone stay framing."""
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    for instr in (ACME + "\n\nContext:\n{context}", "<context>\n{context}\n</context>\n\n" + ACME):
        prompt = ChatPromptTemplate.from_messages([("system", instr), ("human", "{question}")])
        meta = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat).invoke(AUSTRALIA).response_metadata
        rec = _assert_scored_against_retrieval(guard, meta)
        assert rec["generation"]["system_prompt"] == ACME, rec["generation"]
        assert meta["route"] == "review" and any("system_prompt_fingerprint" in r for r in meta["reasons"]), meta["reasons"]
    tutorial = ("You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
                "answer the question. If you don't know the answer, say that you don't know. Use three sentences "
                "maximum and keep the answer concise.\n\n{context}")
    retrieval_chain = ("Use the given context to answer the question. If you don't know the answer, say you don't know. "
                       "Use three sentence maximum and keep the answer concise. Context: {context}")  # its docstring's
    politely = ("Use the following pieces of context to answer the users question. If you don't know the answer, "
                "politely say you don't know.\n{context}")
    for framing in (tutorial, retrieval_chain, politely, "Context: {context}",
                    "Answer the question based only on the following context:\n{context}"):
        prompt = ChatPromptTemplate.from_messages([("system", framing), ("human", "{question}")])
        meta = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat).invoke(AUSTRALIA).response_metadata
        rec = _assert_scored_against_retrieval(guard, meta)
        assert meta["route"] == "accept" and rec["generation"]["system_prompt"] == "answer", (framing, meta["reasons"])


def test_an_apps_instruction_in_the_human_message_holding_the_passages_is_the_calls_instruction(tiny_probes, embedder,
                                                                                                 tmp_path, retriever):
    """The hub's "rlm/rag-prompt" shape with an app's own instructions (one human message: instructions, "Question:
    {question}", "Context: {context}", "Answer:") lost them with the template, as the system message's shape did:
    never given to the model, fingerprinted or recorded, the answer routed as if none had been given. The instruction,
    without the question, the passages and their labels, is the call's; the stock framing alone stays framing."""
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    for template, said in ((ACME + "\nQuestion: {question}\nContext: {context}\nAnswer:", ACME),
                           ("<context>\n{context}\n</context>\n\n" + ACME + "\n\n**Question:** {question}\nHelpful Answer:", ACME),
                           ("Context: {context}\nQuestion: {question}\nShort answer.", "Short answer.")):  # a sentence, no label
        prompt = ChatPromptTemplate.from_messages([("human", template)])
        meta = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat).invoke(AUSTRALIA).response_metadata
        rec = _assert_scored_against_retrieval(guard, meta)
        assert rec["generation"]["system_prompt"] == said, rec["generation"]
        assert meta["route"] == "review" and any("system_prompt_fingerprint" in r for r in meta["reasons"]), meta["reasons"]
    # beside a system message of its own, both are the call's, the system message's first
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", ACME + "\n{context}\nQ: {question}")])
    meta = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat).invoke(AUSTRALIA).response_metadata
    assert _assert_scored_against_retrieval(guard, meta)["generation"]["system_prompt"] == "Be brief.\n\n" + ACME
    for framing in ("Use the following pieces of context to answer the question at the end. If you don't know the "
                    "answer, just say that you don't know, don't try to make up an answer.\n\n{context}\n\n"
                    "Question: {question}\nHelpful Answer:",  # RetrievalQA's stuff prompt
                    "Answer the question based only on the following context:\n{context}\n\nQuestion: {question}\n",
                    "Context: {context}\n\nQ: {question}\nA:", "<context>{context}</context>\n<question>{question}</question>",
                    # LangChain's v0.1 quickstart (create_stuff_documents_chain), its local-model tutorial's RAG_TEMPLATE,
                    # the hub's rlm/rag-prompt-llama (a chat format's marks written in the text)
                    "Answer the following question based only on the provided context:\n\n<context>\n{context}\n"
                    "</context>\n\nQuestion: {question}",
                    "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
                    "answer the question. If you don't know the answer, just say that you don't know. Use three sentences "
                    "maximum and keep the answer concise.\n\n<context>\n{context}\n</context>\n\nAnswer the following "
                    "question:\n\n{question}",
                    "[INST]<<SYS>> You are an assistant for question-answering tasks. Use the following pieces of retrieved "
                    "context to answer the question. If you don't know the answer, just say that you don't know. Use three "
                    "sentences maximum and keep the answer concise.<</SYS>> \nQuestion: {question} \nContext: {context} "
                    "\nAnswer: [/INST]"):
        prompt = ChatPromptTemplate.from_messages([("human", framing)])
        meta = ({"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat).invoke(AUSTRALIA).response_metadata
        rec = _assert_scored_against_retrieval(guard, meta)
        assert meta["route"] == "accept" and rec["generation"]["system_prompt"] == "answer", (framing, meta["reasons"])


def test_the_instruction_beside_the_passages_leaves_out_labels_and_stock_framing():
    from langchain_hguard.chat_models import instruction_beside_passages

    passages = ["Canberra is the capital city of Australia.", "Nairobi is the capital and largest city of Kenya."]
    pasted = "\n\n".join(passages)
    assert instruction_beside_passages(f"{ACME}\n\nContext:\n{pasted}", passages) == ACME
    assert instruction_beside_passages(f"Use the following pieces of context to answer the user\u2019s question.\n"
                                       f"----------------\n{pasted}", passages) is None
    for framing in ("Context:", "Retrieved context (2):", "[CONTEXT]", "### Sources", "```", ""):
        assert instruction_beside_passages(f"{framing}\n{pasted}", passages) is None, framing
    mixed = f"Use the following pieces of retrieved context to answer the question. Reply in German.\n{pasted}"
    assert instruction_beside_passages(mixed, passages) == ("Use the following pieces of retrieved context to answer "
                                                            "the question. Reply in German.")


def test_an_instruction_in_a_labels_parentheses_is_kept():
    """A second review: any 40 characters in parentheses after "Context" made a bare label, so beside a stock sentence
    "Context (answer in German):" was dropped with it, the app's instruction lost. Only a number or a part's word
    ("(2)", "(1 of 3)", "(Auszug)", "(excerpt)") leaves a label bare."""
    from langchain_hguard.chat_models import instruction_beside_passages

    passages = ["Canberra is the capital city of Australia.", "Nairobi is the capital and largest city of Kenya."]
    pasted = "\n\n".join(passages)
    stock = "Use the given context to answer the question."
    for label in ("Context (answer in German):", "Sources (cite them):", "Context (German):"):
        assert instruction_beside_passages(f"{stock}\n{label}\n{pasted}", passages) == f"{stock}\n{label}", label
    for label in ("Sources (2):", "Context (1 of 3):", "Kontext (Auszug):", "Documents (excerpt):", "Context (part 2):"):
        assert instruction_beside_passages(f"{stock}\n{label}\n{pasted}", passages) is None, label


def test_a_blank_system_message_beside_passages_pasted_in_the_human_message_is_refused(tiny_probes, embedder,
                                                                                        tmp_path, retriever):
    """A review: with retrievers in the run, a blank system message was dropped silently (answered under the policy's
    system prompt) though the passages sat in the human message; it is refused as elsewhere, naming it."""
    from langchain_core.messages import SystemMessage

    from hguard.errors import InputError

    chat = ChatHGuard(guard=_grounded_guard(tiny_probes, embedder, tmp_path), domain="alpha")
    prompt = ChatPromptTemplate.from_messages([SystemMessage(" \n "),
                                               ("human", "Context:\n{context}\n\nQuestion: {question}")])
    with pytest.raises(InputError, match=r"ChatHGuard: system message 0 is blank .*leave it out"):
        ({"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | chat).invoke(AUSTRALIA)


SLA = ("Service Level Agreement & Support, schedule B. The Provider guarantees a monthly uptime of 99.9 percent for "
       "the \"Platform\". Priority 1 incidents get a first response within 15 minutes, at any hour, and Priority 2 "
       "incidents within 4 business hours.")
RETENTION = ("Records Retention Policy, section 4. Customer contracts are retained for seven (7) years after the "
             "contract ends, then destroyed under the records officer's supervision.")


def _sla_and_retention():
    from langchain_core.retrievers import BaseRetriever

    class Both(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content=SLA), Document(page_content=RETENTION)]

    return Both()


@pytest.mark.parametrize("how", ["mustache", "html.escape"])
def test_documents_a_template_html_escaped_are_the_passages_not_the_instruction(tiny_probes, embedder, tmp_path, how):
    """A legal team's trial: a mustache template escapes "&" and '"' ("Service Level Agreement &amp; Support"), as a
    format_docs calling html.escape does; the escaped document was not found in the prompt, so its text became the
    call's system instruction (given to the model, fingerprinted), the answer was grounded on the other document alone,
    and the reasons blamed the passages' relevance. The escaping is undone where documents are matched: both are the
    passages, the instruction is the app's own words, and the question is the user's (mustache escapes it too)."""
    import html

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    instr = "Use the following pieces of retrieved context to answer the question."
    if how == "mustache":
        prompt = ChatPromptTemplate.from_messages(
            [("human", instr + "\nQuestion: {{question}}\nContext: {{context}}\nAnswer:")], template_format="mustache")
        fmt = format_docs
    else:
        prompt = ChatPromptTemplate.from_messages([("human", instr + "\nQuestion: {question}\nContext: {context}\nAnswer:")])
        fmt = lambda docs: "\n\n".join(html.escape(d.page_content) for d in docs)  # noqa: E731
    question = 'What is the response time for "Priority 1" incidents?'
    chain = {"context": _sla_and_retention() | fmt, "question": RunnablePassthrough()} | prompt | ChatHGuard(
        guard=guard, domain="alpha")
    rec = _decision(guard, chain.invoke(question).response_metadata)
    assert SLA in rec["context"] and RETENTION in rec["context"] and "&amp;" not in rec["context"], rec["context"]
    assert rec["question"] == question
    assert rec["generation"]["system_prompt"] == "answer", rec["generation"]  # the stock framing only, as unescaped
    assert not any("not identified" in r for r in rec["reasons"]), rec["reasons"]


@pytest.mark.parametrize("question", ["What is the response time for Priority 1 incidents?",
                                      'What is the response time for "Priority 1" incidents?'])
def test_a_mustache_prompt_is_read_unescaped_beside_a_document_holding_a_character_reference(tiny_probes, embedder,
                                                                                              tmp_path, question):
    """A review: a mustache template over two documents, one of them scraped HTML holding "&sect;" of its own: every
    document was found either way and one held a reference, so the prompt stayed escaped: the passages were recorded
    and given to the model escaped ("Support &amp; Maintenance", "&amp;sect;"), and a question with '"' stayed
    escaped, so the whole template became the question. The readings are compared document by document."""
    from langchain_core.retrievers import BaseRetriever

    sla = ("Service Level Agreement, schedule B. The Provider guarantees a monthly uptime of 99.9 percent for the "
           "Platform, measured each calendar month by the Provider's monitoring and reported to the Customer in writing "
           "within ten days. Support & Maintenance: Priority 1 incidents get a first response within 15 minutes.")
    scraped = ("Records Retention Policy, section 4, as published on the intranet page of the records office for all "
               "staff and contractors of the company, in force from 1 January and reviewed every year by the records "
               "officer. &sect; 4.2 Customer contracts are retained for seven (7) years after the contract ends.")

    class Both(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content=sla), Document(page_content=scraped)]

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    prompt = ChatPromptTemplate.from_messages([("human", "Use the following pieces of retrieved context to answer the "
                                                "question.\nQuestion: {{question}}\nContext: {{context}}\nAnswer:")],
                                              template_format="mustache")
    chain = {"context": Both() | format_docs, "question": RunnablePassthrough()} | prompt | ChatHGuard(guard=guard,
                                                                                                        domain="alpha")
    meta = chain.invoke(question).response_metadata
    rec = _decision(guard, meta)
    assert sla in rec["context"] and scraped in rec["context"] and "&amp;" not in rec["context"], rec["context"]
    assert rec["question"] == question and not any("not identified" in r for r in meta["reasons"]), meta["reasons"]


@pytest.mark.parametrize("question", ["What is the response time for &quot;Priority 1&quot; incidents?",
                                      "What does R&amp;D mean for the retention of contracts?"])
def test_a_question_holding_a_character_reference_in_a_chain_that_escapes_nothing_is_the_users(tiny_probes, embedder,
                                                                                                 tmp_path, question):
    """A review: a plain chain (nothing escaped) whose user's question holds a character reference (a web form that
    escaped its input) was read unescaped, as a mustache prompt is, so the question in it was no longer the retriever's
    query: "question not identified", the whole template recorded and answered as the question. The prompt is read
    unescaped only where that makes the documents or the query stand in it."""
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chain = {"context": _sla_and_retention() | format_docs, "question": RunnablePassthrough()} | RAG_HUMAN | ChatHGuard(
        guard=guard, domain="alpha")
    meta = chain.invoke(question).response_metadata
    rec = _decision(guard, meta)
    assert rec["question"] == question and meta["route"] == "accept", meta["reasons"]
    assert not any("not identified" in r for r in meta["reasons"]), meta["reasons"]
    assert SLA in rec["context"] and RETENTION in rec["context"], rec["context"]


def test_a_retrieved_document_the_chain_changed_beside_one_it_pasted_holds_the_answer_naming_it(tiny_probes, embedder,
                                                                                                tmp_path):
    """The README says a document whose opening the chain changed is not found ("context not identified"), but beside
    a document that was found it was left out unsaid: its text read as the app's instruction and the answer scored
    on the other document. A retrieved document whose words stand in the prompt though it cannot be matched as a
    passage now holds the answer, naming it; one the chain did not paste at all (it pastes the first only) is not."""
    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    changed = lambda docs: "\n\n".join(d.page_content.replace("Service Level Agreement", "SLA") for d in docs)  # noqa: E731
    chain = {"context": _sla_and_retention() | changed, "question": RunnablePassthrough()} | RAG_HUMAN | chat
    meta = chain.invoke("What is the response time for Priority 1 incidents?").response_metadata
    rec = _decision(guard, meta)
    said = [r for r in meta["reasons"] if "context not identified" in r]
    assert meta["route"] == "review" and said, meta["reasons"]
    assert "document 1 of the 2" in said[0] and SLA[:30] not in said[0], said  # named, not quoted
    assert rec["context"] in (RETENTION, [RETENTION]), rec["context"]  # scored on the other one alone
    first_only = {"context": _sla_and_retention() | (lambda docs: docs[1].page_content),
                  "question": RunnablePassthrough()} | RAG_HUMAN | chat
    meta = first_only.invoke("How long are customer contracts retained?").response_metadata
    assert meta["route"] == "accept" and not any("not identified" in r for r in meta["reasons"]), meta["reasons"]


TRAVEL = ("Travel Policy, section 3. Taxis are reimbursed for business travel when public transport is not available, "
          "against an itemised receipt, up to 60 EUR a ride.")
FAQ_HOTEL = "Q: Can I expense a hotel minibar? A: No, minibar items are personal expenses."
FAQ_TAXI = "Q: Can I expense a taxi to the airport? A: Yes."


@pytest.mark.parametrize("shape", ["human", "system", "system, searched with keywords"])
def test_a_document_not_pasted_is_not_pasted_changed_for_the_question_repeating_its_words(tiny_probes, embedder,
                                                                                        tmp_path, shape):
    """A review: in the README's "retrieve N, paste the first two" chain, a short FAQ entry the chain did not paste was
    held as "in the prompt with its text changed" when the user's question repeated it: the rule counted the
    question's words (the retriever's query) as the document's. The question and the queries are not the chain's text
    (a question asked in a message of its own is the question, whatever the retriever searched with)."""
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda

    class Three(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content=t) for t in (TRAVEL, FAQ_HOTEL, FAQ_TAXI)]

    guard = _grounded_guard(tiny_probes, embedder, tmp_path)
    first_two = lambda docs: "\n\n".join(d.page_content for d in docs[:2])  # noqa: E731
    prompt = RAG_HUMAN if shape == "human" else ChatPromptTemplate.from_messages(
        [("system", "Use the following pieces of retrieved context to answer the question.\n\nContext:\n{context}"),
         ("human", "{question}")])
    search = RunnableLambda(lambda q: "taxi airport expense policy") if "keywords" in shape else RunnablePassthrough()
    chain = {"context": search | Three() | first_two, "question": RunnablePassthrough()} | prompt | ChatHGuard(
        guard=guard, domain="alpha")
    question = "Can I expense a taxi to the airport at night?"
    meta = chain.invoke(question).response_metadata
    rec = _decision(guard, meta)
    assert meta["route"] == "accept" and not any("not identified" in r for r in meta["reasons"]), meta["reasons"]
    assert rec["question"] == question and FAQ_TAXI not in rec["context"], rec["context"]


LONG_SLA = ("Service Level Agreement, schedule B. Priority 1 incidents get a first response within 15 minutes, at any "
            "hour, and Priority 2 incidents within 4 business hours. " + " ".join(
                f"Clause B.{i}: the Provider shall report incident category {i} to the Customer in writing within {i + 2} "
                "business days of its resolution, with the root cause and the remedy." for i in range(1, 9)))


@pytest.mark.parametrize("how", ["changed, cut to 300", "changed, cut to 120", "a stretch from its middle"])
@pytest.mark.parametrize("mismatch", ["warn", "review"])
def test_a_document_the_chain_changed_and_cut_holds_the_answer_naming_it(tiny_probes, embedder, tmp_path, how,
                                                                         mismatch):
    """A review: a format_docs that rewrote a document's title and cut it to 300 characters
    (`.replace("Service Level Agreement", "SLA")[:300]`) left under half its runs of three words in the prompt, so the
    document was not flagged: its text was the call's system instruction, the answer scored on the other document,
    and under fingerprint_mismatch = "warn" accepted with no reason saying so (the default held it, by fingerprint).
    An opening of the document standing half in the prompt, or 14 of its words in a row, now hold it as "context not
    identified", naming the document."""
    from langchain_core.retrievers import BaseRetriever

    class Both(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content=LONG_SLA), Document(page_content=RETENTION)]

    grounded = _grounded_guard(tiny_probes, embedder, tmp_path)
    guard = Guard.from_policy(grounded.policy.model_copy(update={"fingerprint_mismatch": mismatch}), lm=tiny_probes[0],
                              embedder=embedder)
    cut = {"changed, cut to 300": lambda t: t.replace("Service Level Agreement", "SLA")[:300],
           "changed, cut to 120": lambda t: t.replace("Service Level Agreement", "SLA")[:120],
           "a stretch from its middle": lambda t: t[400:700]}[how]
    fmt = lambda docs: "\n\n".join(cut(d.page_content) if d.page_content == LONG_SLA else d.page_content  # noqa: E731
                                   for d in docs)
    chain = {"context": Both() | fmt, "question": RunnablePassthrough()} | RAG_HUMAN | ChatHGuard(guard=guard,
                                                                                                   domain="alpha")
    meta = chain.invoke("What is the response time for Priority 1 incidents?").response_metadata
    rec = _decision(guard, meta)
    said = [r for r in meta["reasons"] if "context not identified" in r]
    assert meta["route"] == "review" and said and "document 1 of the 2" in said[0], meta["reasons"]
    assert rec["context"] in (RETENTION, [RETENTION]), rec["context"]
