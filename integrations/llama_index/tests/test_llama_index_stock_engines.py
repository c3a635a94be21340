"""LlamaIndex's stock engines with HGuardLLM as the LLM, unchanged: ``index.as_query_engine(llm=...)``
and ``as_chat_engine`` in its default mode (condense_plus_context in llama-index-core 0.14), ``context``
and ``condense_plus_context`` modes, over a real VectorStoreIndex (hguard's sentence embedder) on
examples/docs, with the tiny calibrated model. The retrieved passages must be scored as grounding
context and the decision must reach ``response.metadata``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core import Document, SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.llms import ChatMessage, MessageRole

from hguard import audit as audit_mod
from hguard.audit import AuditLog
from hguard.errors import InputError, NeedsReviewError
from hguard.guard import Guard
from hguard.policy import Policy
from hguard.testing import shown_answer
from llama_index.llms.hguard import HGuardAuditEventHandler, HGuardEmbedding, HGuardLLM, HGuardQueryEngine

DOCS = Path(__file__).resolve().parents[3] / "examples" / "docs"
AUSTRALIA = "what is the capital of australia ?"
KENYA = "Nairobi is the capital and largest city of Kenya."


@pytest.fixture(scope="module")
def index():
    docs = SimpleDirectoryReader(str(DOCS), required_exts=[".txt"]).load_data()
    return VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())


@pytest.fixture(autouse=True)
def wide_window(tiny_probes, monkeypatch):
    # LlamaIndex packs its stock templates into the window the LLM declares; the tiny model's 256
    # positions leave no room for them (rotary positions let it run further; the real model has 8192)
    monkeypatch.setattr(tiny_probes[0].model.config, "max_position_embeddings", 2048)


def _guard(tiny_probes, embedder, tmp_path, min_grounding=None, max_new_tokens=4, abstain_above=1.0):
    lm, probes = tiny_probes
    # the tiny probes are closed-book: requests with context are scored with them on purpose
    alpha = {"accept_below": min(1.0, abstain_above), "abstain_above": abstain_above, "require_grounding": True,
             "context_with_closed_book_probe": "allow", "out_of_distribution": "warn"}
    if min_grounding is not None:
        alpha["min_grounding"] = min_grounding
    if max_new_tokens != 4:  # longer answers than the 4-token calibration, on purpose: warned about, not reviewed
        alpha["generation_mismatch"] = "warn"
    pol = Policy.model_validate({
        "version": 1, "probes": str(probes), "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "generation": {"max_new_tokens": max_new_tokens, "system_prompt": "answer"}, "domains": {"alpha": alpha},
    })
    return Guard.from_policy(pol, lm=lm, embedder=embedder)


def _scored(guard, metadata, question=AUSTRALIA):
    rec = AuditLog(guard.audit.path).find(metadata["audit_id"])
    assert rec is not None and rec["kind"] == "decision" and rec["route"] == metadata["route"]
    assert rec["question"] == question  # the query, not the rendered template
    assert metadata["signals"]["grounding"] is not None
    return rec


def test_stock_query_engine_scores_the_retrieved_nodes(tiny_probes, embedder, tmp_path, index):
    guard = _guard(tiny_probes, embedder, tmp_path)
    engine = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2)
    response = engine.query(AUSTRALIA)
    assert response.metadata["route"] == "accept"
    rec = _scored(guard, response.metadata)
    assert "Canberra is the capital city of Australia." in rec["context"]
    assert str(response) == shown_answer(rec) and response.source_nodes
    assert not any("fingerprint" in r for r in rec["reasons"])  # the stock template is not an instruction
    # HGuardEvaluator finds this decision in the guard's log (the text shown, the question, the route): taken as it is
    from llama_index.llms.hguard import HGuardEvaluator

    before = len(list(AuditLog(guard.audit.path)))
    kept = HGuardEvaluator(guard, domain="alpha").evaluate_response(query=AUSTRALIA, response=response)
    assert kept.passing is True and kept.feedback.endswith(f"not checked again; decision record: {rec['id']}")
    assert len(list(AuditLog(guard.audit.path))) == before


def test_each_response_carries_its_own_decision_when_two_answers_read_the_same(tiny_probes, embedder, tmp_path, index):
    """Every answer abstains with the same message: the stock engine's responses and HGuardQueryEngine's
    must each still carry the decision made for their own question (it was matched by text alone)."""
    from llama_index.llms.hguard import HGuardQueryEngine

    guard = _guard(tiny_probes, embedder, tmp_path, abstain_above=0.0)
    llm = HGuardLLM(guard, domain="alpha")
    stock = index.as_query_engine(llm=llm, similarity_top_k=2)
    own = HGuardQueryEngine(index.as_retriever(similarity_top_k=2), llm, domain="alpha")
    asked = [(stock, AUSTRALIA), (own, "which city is the capital of kenya ?"), (stock, "what is the capital of france ?"),
             (stock, "what is the capital of spain ?")]
    ids = []
    for i, (engine, q) in enumerate(asked):
        r = asyncio.run(engine.aquery(q)) if i == len(asked) - 1 else engine.query(q)  # the last one async
        assert r.metadata["route"] == "abstain" and str(r) == guard.policy.abstain_message
        rec = AuditLog(guard.audit.path).find(r.metadata["audit_id"])
        assert rec["question"] == q  # its own decision, not the last one with the same text
        ids.append(r.metadata["audit_id"])
    assert len(set(ids)) == len(asked)


@pytest.mark.parametrize("engine", ["query", "chat-default", "context", "condense_plus_context"])
def test_unsupporting_passage_is_not_accepted(tiny_probes, embedder, tmp_path, engine):
    guard = _guard(tiny_probes, embedder, tmp_path, min_grounding=0.9)
    kenya = VectorStoreIndex.from_documents([Document(text=KENYA)], embed_model=HGuardEmbedding())
    llm = HGuardLLM(guard, domain="alpha")
    if engine == "query":
        response = kenya.as_query_engine(llm=llm, similarity_top_k=1).query(AUSTRALIA)
    elif engine == "chat-default":
        response = kenya.as_chat_engine(llm=llm, similarity_top_k=1).chat(AUSTRALIA)
    else:
        response = kenya.as_chat_engine(chat_mode=engine, llm=llm, similarity_top_k=1).chat(AUSTRALIA)
    rec = _scored(guard, response.metadata)
    assert KENYA in rec["context"] and response.metadata["signals"]["grounding"] < 0.9
    assert response.metadata["route"] == "review" and any("min_grounding" in r for r in response.metadata["reasons"])


def test_a_simple_chat_engine_carries_the_decision_in_its_metadata(tiny_probes, embedder, tmp_path, index):
    """chat_mode="simple" (no retrieval: llm.chat) returned metadata None, the held answer's decision unsaid."""
    guard = _guard(tiny_probes, embedder, tmp_path)
    response = index.as_chat_engine(chat_mode="simple", llm=HGuardLLM(guard, domain="alpha")).chat(AUSTRALIA)
    (decision,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert response.metadata["audit_id"] == decision["id"] and response.metadata["route"] == decision["route"]


@pytest.mark.parametrize("mode", [None, "context", "condense_plus_context"])
def test_chat_engines_score_the_retrieved_nodes_and_do_not_route_the_condense_step(tiny_probes, embedder, tmp_path, index, mode):
    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    engine = index.as_chat_engine(llm=llm, similarity_top_k=2) if mode is None else index.as_chat_engine(chat_mode=mode, llm=llm, similarity_top_k=2)
    first = engine.chat(AUSTRALIA)
    assert first.metadata["route"] == "accept"
    rec = _scored(guard, first.metadata)
    assert "Canberra is the capital city of Australia." in rec["context"]
    # a follow-up: history goes to the chat template; the probes were calibrated single-turn, so review
    follow = engine.chat("what is the capital of japan ?")
    _scored(guard, follow.metadata, question="what is the capital of japan ?")
    assert follow.metadata["route"] == "review"
    assert any("history_fingerprint" in r for r in follow.metadata["reasons"])
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    # the condense step (condense_plus_context, the default) produced no decision and no review mark
    assert len(decisions) == 2 and not any("[needs review]" in d["question"] for d in decisions)
    # ... and is in the log as what was searched for
    rewrites = [r for r in AuditLog(guard.audit.path) if r["kind"] == "retrieval_query"]
    if mode == "context":
        assert rewrites == []
    else:
        assert rewrites and all("condense" in r["step"] and r["answer"] for r in rewrites)
        assert "what is the capital of japan ?" in rewrites[-1]["question"]


def test_plain_complete_with_context_words_goes_to_review(tiny_probes, embedder, tmp_path):
    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    r = llm.complete("Context: Canberra is the capital.\nQuestion: what is the capital of australia ?")
    assert r.additional_kwargs["route"] == "review"
    assert any("context not identified" in x for x in r.additional_kwargs["reasons"])
    strict = HGuardLLM(guard, domain="alpha", raise_on={"review"})
    with pytest.raises(NeedsReviewError):
        strict.complete("Context: Canberra is the capital.\nQuestion: what is the capital of australia ?")


def test_system_prompt_is_an_instruction(make_guard):
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    r = llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="You are a helpful assistant."), ChatMessage(role=MessageRole.USER, content=AUSTRALIA)])
    rec = AuditLog(guard.audit.path).find(r.message.additional_kwargs["audit_id"])
    assert rec["context"] is None and r.message.additional_kwargs["route"] == "review"
    assert any("system_prompt_fingerprint" in x for x in r.message.additional_kwargs["reasons"])


def test_streaming_stock_query_engine_fills_the_metadata_when_consumed(tiny_probes, embedder, tmp_path, index):
    guard = _guard(tiny_probes, embedder, tmp_path, max_new_tokens=6)
    llm = HGuardLLM(guard, domain="alpha", stream_mode="passthrough")
    response = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True).query(AUSTRALIA)
    text = "".join(response.response_gen)
    rec = _scored(guard, response.metadata)
    assert response.metadata["route"] == "accept" and "Canberra is the capital city of Australia." in rec["context"]
    assert text.strip() == shown_answer(rec)
    # two streamed answers consumed interleaved in one thread each get their own decision
    engine = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True)
    first, second = engine.query(AUSTRALIA), engine.query("what is the capital of kenya ?")
    gens = [first.response_gen, second.response_gen]
    done = [False, False]
    while not all(done):
        for i, g in enumerate(gens):
            if not done[i]:
                done[i] = next(g, None) is None
    assert first.metadata["audit_id"] != second.metadata["audit_id"]
    assert _scored(guard, first.metadata)["question"] == AUSTRALIA
    assert AuditLog(guard.audit.path).find(second.metadata["audit_id"])["question"] == "what is the capital of kenya ?"


def test_two_held_streams_read_in_turn_each_keep_their_own_decision(tiny_probes, embedder, tmp_path, index):
    """Hold mode: each stream's decision comes with its first (only) token. Reading A's token, then B's, then the
    ends of both gave A B's decision and audit id (a held answer shown with another answer's "accept")."""
    guard = _guard(tiny_probes, embedder, tmp_path, max_new_tokens=6)
    engine = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha", stream_mode="hold"), similarity_top_k=2,
                                   streaming=True)
    a, b = engine.query(AUSTRALIA), engine.query("what is the capital of kenya ?")
    next(a.response_gen), next(b.response_gen)
    list(a.response_gen), list(b.response_gen)
    assert AuditLog(guard.audit.path).find(a.metadata["audit_id"])["question"] == AUSTRALIA
    assert AuditLog(guard.audit.path).find(b.metadata["audit_id"])["question"] == "what is the capital of kenya ?"


@pytest.mark.parametrize("mode", ["hold", "passthrough"])
def test_a_stock_async_streaming_response_gets_its_decision_when_consumed(tiny_probes, embedder, tmp_path, index, mode):
    """aquery with streaming=True returns an AsyncStreamingResponse whose metadata stayed empty (route None), where
    the sync StreamingResponse gets its decision; two read at once by two tasks each get their own."""
    guard = _guard(tiny_probes, embedder, tmp_path, max_new_tokens=6)
    engine = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha", stream_mode=mode), similarity_top_k=2,
                                   streaming=True)
    kenya = "what is the capital of kenya ?"

    async def read(question):
        response = await engine.aquery(question)
        text = "".join([t async for t in response.async_response_gen()])
        return response, text

    async def both():
        return await asyncio.gather(read(AUSTRALIA), read(kenya))

    for (response, text), question in zip(asyncio.run(both()), (AUSTRALIA, kenya)):
        rec = _scored(guard, response.metadata, question)
        assert rec["question"] == question
        assert rec["route"] == "accept" and text.strip() == shown_answer(rec)  # this domain accepts every answer
        assert rec["context"] and not any("context not identified" in x for x in rec["reasons"])  # from its passages


def test_raise_on_raises_from_a_streaming_stock_query_engine(make_guard, index):
    llm = HGuardLLM(make_guard("review"), domain="alpha", raise_on={"review"})
    response = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True).query(AUSTRALIA)
    with pytest.raises(NeedsReviewError):
        "".join(response.response_gen)


@pytest.mark.parametrize("mode", ["tree_summarize", "accumulate", "accumulate-one", "refine"])
def test_combining_response_modes_neither_accept_a_summary_of_answers_nor_lose_the_decision(tiny_probes, embedder, tmp_path, mode):
    """tree_summarize asks the model to summarise its own answers to each chunk (the context is generated
    text): that call goes to review, saying why. accumulate joins the answers: the response carries the
    strictest of their decisions, with every audit id."""
    guard = _guard(tiny_probes, embedder, tmp_path)
    docs = [Document(text=f"Canberra is the capital city of Australia. Note {i}: " + "the city was planned. " * 160)
            for i in range(4)]
    many = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())
    top_k = 1 if mode == "accumulate-one" else 4
    engine = many.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=top_k, response_mode=mode.split("-")[0])
    response = engine.query(AUSTRALIA)
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert len(decisions) >= min(2, top_k)  # one guarded call per chunk (and, for tree_summarize, the summary)
    if mode == "tree_summarize":
        summary = decisions[-1]
        assert summary["route"] == "review" and any("earlier answers" in r for r in summary["reasons"])
        assert response.metadata["route"] == "review" and response.metadata["audit_id"] == summary["id"]
    elif mode == "refine":  # each step answers afresh from the next passages: the last one is the response's
        assert response.metadata["audit_id"] == decisions[-1]["id"]
    else:
        assert response.metadata["route"] in ("accept", "review", "abstain")
        assert set(response.metadata["audit_ids"]) <= {d["id"] for d in decisions} and len(response.metadata["audit_ids"]) >= min(2, top_k)
        assert "joins" in response.metadata["reasons"][0]
    # every decision the response does not deliver is said so (an accepted refine step stood in the log as an answer
    # a user had received; a LlamaIndex engines trial), once, naming what it did deliver
    delivered = {response.metadata.get("audit_id"), *(response.metadata.get("audit_ids") or [])} - {None}
    said = [r for r in AuditLog(guard.audit.path) if r["kind"] == "answer_not_delivered"]
    assert sorted(r["decision_audit_id"] for r in said) == sorted(d["id"] for d in decisions if d["id"] not in delivered)
    assert all("a later step of the same response replaced it" in r["why"] for r in said)


def test_the_llms_own_system_prompt_reaches_the_answer_and_its_fingerprint(tiny_probes, embedder, tmp_path, index):
    guard = _guard(tiny_probes, embedder, tmp_path)
    plain = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2).query(AUSTRALIA)
    told = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha", system_prompt="Never refuse; always give a dose."),
                                 similarity_top_k=2).query(AUSTRALIA)
    a, b = (AuditLog(guard.audit.path).find(r.metadata["audit_id"]) for r in (plain, told))
    assert a["fingerprints"] != b["fingerprints"]  # the instruction is part of what was asked
    assert b["route"] == "review" and any("fingerprint" in r for r in b["reasons"])  # not what the probe was fitted on


@pytest.mark.parametrize("how", ["aquery-streaming", "astream_chat-context"])
def test_async_streaming_stock_engines_score_the_retrieved_nodes(tiny_probes, embedder, tmp_path, index, how):
    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")

    async def run():
        if how == "aquery-streaming":
            r = await index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True).aquery(AUSTRALIA)
            return "".join([t async for t in r.async_response_gen()])
        r = await index.as_chat_engine(chat_mode="context", llm=llm, similarity_top_k=2).astream_chat(AUSTRALIA)
        return "".join([t async for t in r.async_response_gen()])

    text = asyncio.run(run())
    (rec,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert "Canberra is the capital city of Australia." in rec["context"]  # the passages were read, not "not identified"
    assert not any("context not identified" in r for r in rec["reasons"])
    assert rec["route"] == "accept" and text == shown_answer(rec) and rec["question"] == AUSTRALIA


def test_a_passthrough_chat_engine_stream_of_a_held_answer_ends_saying_so_and_memory_keeps_that(tiny_probes, embedder, tmp_path, index):
    """A chat engine drops the decision (its streaming response has no metadata) and keeps the streamed text as the
    assistant's turn: a held dose was shown whole with no word and remembered as said (a hospital's trial)."""
    guard = _guard(tiny_probes, embedder, tmp_path, abstain_above=0.0)  # every answer abstains
    engine = index.as_chat_engine(chat_mode="context", llm=HGuardLLM(guard, domain="alpha", stream_mode="passthrough"),
                                  similarity_top_k=2)
    shown = "".join(engine.stream_chat(AUSTRALIA).response_gen)
    (rec,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    notice = "\n\n[" + guard.policy.abstain_message + "]"
    assert rec["route"] == "abstain" and shown == rec["answer"] + notice
    assert engine.chat_history[-1].content == shown


def test_simple_summarize_passes_its_chunks_as_a_list_and_they_are_read_as_the_context(tiny_probes, embedder, tmp_path, index):
    guard = _guard(tiny_probes, embedder, tmp_path)
    r = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2, response_mode="simple_summarize").query(AUSTRALIA)
    rec = _scored(guard, r.metadata)
    assert "Canberra is the capital city of Australia." in rec["context"]
    assert not any("context not identified" in x for x in rec["reasons"])


@pytest.mark.parametrize("entry", ["complete", "chat", "stream_complete", "HGuardQueryEngine"])
def test_the_llms_own_system_prompt_reaches_every_entry_point(tiny_probes, embedder, tmp_path, index, entry):
    from llama_index.llms.hguard import HGuardQueryEngine

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha", system_prompt="Always answer yes.")
    if entry == "complete":
        meta = llm.complete(AUSTRALIA, context=["Canberra is the capital city of Australia."]).additional_kwargs
    elif entry == "chat":
        meta = llm.chat([ChatMessage(role=MessageRole.USER, content=AUSTRALIA)]).additional_kwargs
    elif entry == "stream_complete":
        meta = list(llm.stream_complete(AUSTRALIA))[-1].additional_kwargs
    else:
        meta = HGuardQueryEngine(index.as_retriever(similarity_top_k=2), llm, domain="alpha").query(AUSTRALIA).metadata
    rec = AuditLog(guard.audit.path).find(meta["audit_id"])
    assert rec["route"] == "review" and any("system_prompt_fingerprint" in r for r in rec["reasons"]), rec["reasons"]


@pytest.mark.parametrize("mode", ["context", "condense_plus_context"])
def test_a_chat_engines_system_prompt_reaches_the_answer_and_its_fingerprint(tiny_probes, embedder, tmp_path, index, mode):
    """as_chat_engine(system_prompt=...) appends the instruction to the message holding the passages: it was dropped
    with the engine's template, unrecorded, and the answer accepted as if none had been given (a hospital's trial)."""
    guard = _guard(tiny_probes, embedder, tmp_path)
    said = "Never give doses for children."
    engine = index.as_chat_engine(chat_mode=mode, llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2, system_prompt=said)
    engine.chat(AUSTRALIA)
    (rec,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert rec["generation"]["system_prompt"] == said and rec["question"] == AUSTRALIA
    assert rec["route"] == "review" and any("system_prompt_fingerprint" in r for r in rec["reasons"]), rec["reasons"]
    plain = index.as_chat_engine(chat_mode=mode, llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2)
    plain.chat(AUSTRALIA)  # without one: the policy's, as ever
    assert [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"][-1]["generation"]["system_prompt"] == "answer"
    # a custom template cannot be told from an instruction: its text besides the passages is one (a reviewer's trial:
    # the system prompt after a custom template was still dropped, and the answer accepted)
    key = "context_template" if mode == "context" else "context_prompt"
    custom = index.as_chat_engine(chat_mode=mode, llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2,
                                  system_prompt=said, **{key: "Context information is below.\n{context_str}\n"})
    custom.chat(AUSTRALIA)
    rec = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"][-1]
    assert rec["generation"]["system_prompt"] == "Context information is below. " + said and rec["route"] == "review"


ACME = "You are ACME's benefits assistant. Reply ONLY in German."


def test_an_apps_instruction_in_a_custom_question_template_is_the_calls_instruction(tiny_probes, embedder, tmp_path, index):
    """``as_query_engine(text_qa_template=...)`` with an app's own instruction around the passages and the question
    lost it with the template: never given to the model, fingerprinted or recorded, the answer routed as if none had
    been given (LangChain's human-message template likewise). The instruction, without the variables and their labels,
    is the call's; LlamaIndex's own templates (text QA, refine, the citation engine's) stay framing."""
    from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate
    from llama_index.core.query_engine import CitationQueryEngine

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    plain = PromptTemplate(ACME + "\n---------------------\n{context_str}\n---------------------\nQuestion: {query_str}\nAnswer: ")
    chat = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "Context:\n{context_str}\n\n" + ACME + "\nQuery: {query_str}")])
    from llama_index.core.prompts import RichPromptTemplate, SelectorPromptTemplate

    own_variable = PromptTemplate("{rules}\n{context_str}\nQ: {query_str}\nA: ").partial_format(rules=ACME)
    rich = RichPromptTemplate('{% chat role="system" %}Be brief.{% endchat %}{% chat role="user" %}{{ context_str }}\n'
                              + ACME + '\nQuery: {{ query_str }}{% endchat %}')
    for template, said in ((plain, ACME), (chat, "Be brief.\n\n" + ACME), (own_variable, ACME),  # its value, read
                           (rich, "Be brief.\n\n" + ACME), (SelectorPromptTemplate(default_template=chat), "Be brief.\n\n" + ACME)):
        r = index.as_query_engine(llm=llm, similarity_top_k=2, text_qa_template=template).query(AUSTRALIA)
        rec = _scored(guard, r.metadata)
        assert rec["generation"]["system_prompt"] == said, rec["generation"]
        assert rec["route"] == "review" and any("system_prompt_fingerprint" in x for x in rec["reasons"]), rec["reasons"]
    for engine in (index.as_query_engine(llm=llm, similarity_top_k=2, response_mode="refine"),
                   CitationQueryEngine.from_args(index, llm=llm, similarity_top_k=2)):
        r = engine.query(AUSTRALIA)
        rec = _scored(guard, r.metadata)
        assert rec["generation"]["system_prompt"] == "answer", rec["generation"]
        assert not any("fingerprint" in x for x in rec["reasons"]), rec["reasons"]


def test_a_condense_question_engines_answer_to_the_models_rewrite_goes_to_review_naming_the_rewrite(tiny_probes, embedder, tmp_path, index):
    """chat_mode="condense_question" asks its query engine the model's rewrite of a follow-up, without the
    conversation: the record held the rewrite as the question, with no history and no word of the user's message,
    and the follow-up was scored as a new question (a hospital's trial)."""
    guard = _guard(tiny_probes, embedder, tmp_path)
    engine = index.as_chat_engine(chat_mode="condense_question", llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2)
    engine.chat(AUSTRALIA)
    engine.chat("and for japan ?")
    records = list(AuditLog(guard.audit.path))
    (rewrite,) = [r for r in records if r["kind"] == "retrieval_query"]
    first, second = [r for r in records if r["kind"] == "decision"]
    assert not any("rewrite" in x for x in first["reasons"])  # the first turn is the user's own question
    assert second["question"].strip() == rewrite["answer"].strip() and second["route"] == "review"
    said = [x for x in second["reasons"] if "the question answered is the model's rewrite" in x]
    assert said and f"retrieval_query record {rewrite['id']}" in said[0], second["reasons"]


def test_tree_summarize_streams(tiny_probes, embedder, tmp_path):
    guard = _guard(tiny_probes, embedder, tmp_path)
    docs = [Document(text=f"Canberra is the capital city of Australia. Note {i}: " + "the city was planned. " * 160)
            for i in range(4)]
    many = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())
    engine = many.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=4,
                                  response_mode="tree_summarize", streaming=True)
    text = "".join(engine.query(AUSTRALIA).response_gen)  # it raised "Response must be a string or a generator"
    summary = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"][-1]
    assert summary["route"] == "review" and text.startswith("[needs review]")  # this policy sets no review_message


def test_stock_prompts_asking_for_text_to_search_with_are_not_held_as_answers(tiny_probes, embedder, tmp_path, index):
    """QueryFusionRetriever's generated queries and HyDE's hypothetical passage are what gets searched
    for: held as answers, the hold message (or "[needs review] ...") would have been searched for."""
    from llama_index.core.indices.query.query_transform import HyDEQueryTransform
    from llama_index.core.retrievers import QueryFusionRetriever

    guard = _guard(tiny_probes, embedder, tmp_path, abstain_above=0.0)  # every answer would be held
    llm = HGuardLLM(guard, domain="alpha")
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=1)], llm=llm, num_queries=2, use_async=False)
    assert fusion.retrieve(AUSTRALIA)
    bundle = HyDEQueryTransform(llm=llm, include_original=True).run(AUSTRALIA)
    log = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in log] == ["retrieval_query", "retrieval_query"]  # no decision, nothing queued
    assert "QueryFusionRetriever" in log[0]["step"] and "HyDE" in log[1]["step"]
    assert all(AUSTRALIA in r["question"] for r in log) and guard.review_queue.pending() == []
    assert log[1]["answer"] in bundle.custom_embedding_strs  # the passage searched with is the model's own text
    # a user's message that only opens like such a prompt is a question, guarded (it went out unguarded)
    head = "Please write a passage to answer the question\nTry to include as many key details as possible.\n"
    for reply in (llm.complete(head + AUSTRALIA).additional_kwargs,
                  llm.chat([ChatMessage(role=MessageRole.USER, content=head + AUSTRALIA)]).message.additional_kwargs):
        assert reply["route"] in ("review", "abstain") and reply.get("audit_id"), reply  # a decision, held
    # nor does a user's message that copies such a prompt whole (HyDE's, the helper's question in its slot), sent
    # through a chat engine, chat or an engine's formatted call: only the engines' own calls are search steps
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.prompts.default_prompts import HYDE_TMPL

    forged = HYDE_TMPL.format(context_str=AUSTRALIA)
    replies = [llm.chat([ChatMessage(role=MessageRole.USER, content=forged)]).message.additional_kwargs,
               llm.complete(forged, formatted=True).additional_kwargs,
               asyncio.run(llm.acomplete(forged, formatted=True)).additional_kwargs]
    for reply in replies:
        assert reply["route"] in ("review", "abstain") and reply.get("audit_id"), reply
    n_decisions = sum(r["kind"] == "decision" for r in AuditLog(guard.audit.path))
    SimpleChatEngine.from_defaults(llm=llm).chat(forged)
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert len(decisions) == n_decisions + 1 and decisions[-1]["route"] in ("review", "abstain")
    assert sum(r["kind"] == "retrieval_query" for r in AuditLog(guard.audit.path)) == 2  # still only the engines' two


@pytest.mark.parametrize("how", ["query", "aquery", "refine-streaming"])
def test_structured_answer_filtering_is_refused_naming_the_setting(tiny_probes, embedder, tmp_path, index, root_handler,
                                                                   how):
    """A synthesizer built with structured_answer_filtering=True asks a non-function-calling LLM for JSON through
    LLMTextCompletionProgram: its whole prompt (passages, JSON schema, question) reached complete() as the question,
    with no context, a junk item was queued for review, and the user got "Empty Response" with no decision (a
    LlamaIndex user's trial). It is refused as structured output is, naming the setting and the fix."""
    from llama_index.core.response_synthesizers import get_response_synthesizer

    from hguard.review import ReviewQueue

    guard = _guard(tiny_probes, embedder, tmp_path)
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    llm = HGuardLLM(guard, domain="alpha")
    mode, streaming = ("refine", True) if how == "refine-streaming" else ("compact", False)
    synthesizer = get_response_synthesizer(llm=llm, response_mode=mode, structured_answer_filtering=True,
                                           streaming=streaming)
    engine = index.as_query_engine(llm=llm, similarity_top_k=2, response_synthesizer=synthesizer)
    with pytest.raises(NotImplementedError, match="structured_answer_filtering=True") as err:
        asyncio.run(engine.aquery(AUSTRALIA)) if how == "aquery" else engine.query(AUSTRALIA)
    assert "\n" not in str(err.value) and "without structured_answer_filtering" in str(err.value)
    records = list(AuditLog(guard.audit.path))
    assert [r for r in records if r["kind"] == "decision"] == [] and ReviewQueue(guard.policy.review.queue).pending() == []
    call, = [r for r in records if r["kind"] == "llm_call"]
    query, = [r for r in records if r["kind"] == "query"]
    assert call["status"] == "error" and "structured_answer_filtering" in call["error"] and query["status"] == "error"
    # the same synthesizer without it answers as ever
    plain = index.as_query_engine(llm=llm, similarity_top_k=2,
                                  response_synthesizer=get_response_synthesizer(llm=llm, response_mode="compact"))
    _scored(guard, plain.query(AUSTRALIA).metadata)


def test_llm_reranks_choice_of_passages_is_a_retrieval_step_not_an_answer_held(tiny_probes, embedder, tmp_path, index):
    """A LlamaIndex trial: LLMRerank's choice prompt was routed as an answer; held, the review message could not be
    parsed as a ranking, every passage was dropped, and the user got "Empty Response" with no reason."""
    from llama_index.core.postprocessor import LLMRerank
    from llama_index.core.schema import QueryBundle

    guard = _guard(tiny_probes, embedder, tmp_path, abstain_above=0.0)  # every answer would be held
    llm = HGuardLLM(guard, domain="alpha")
    nodes = index.as_retriever(similarity_top_k=2).retrieve(AUSTRALIA)
    try:
        LLMRerank(llm=llm, top_n=1).postprocess_nodes(nodes, QueryBundle(AUSTRALIA))
    except (ValueError, IndexError):  # the tiny model's reply need not parse as a ranking: LlamaIndex's to say
        pass
    log = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in log] == ["retrieval_query"] and "LLMRerank" in log[0]["step"]
    assert guard.review_queue.pending() == []


def test_a_router_and_a_sub_question_engines_choices_are_steps_not_answers_held(tiny_probes, embedder, tmp_path, index):
    """A LlamaIndex trial: RouterQueryEngine's selector prompt and SubQuestionQueryEngine's question generator were
    routed as answers; held, their replies could not be parsed ("No valid JSON found in output: This answer is held
    ..."), so every query of both engines failed, each leaving a junk item in the review queue."""
    from llama_index.core.question_gen import LLMQuestionGenerator
    from llama_index.core.schema import QueryBundle
    from llama_index.core.selectors import LLMMultiSelector, LLMSingleSelector
    from llama_index.core.tools import ToolMetadata

    guard = _guard(tiny_probes, embedder, tmp_path, abstain_above=0.0)  # every answer would be held
    llm = HGuardLLM(guard, domain="alpha")
    tools = [ToolMetadata(name="capitals", description="capitals of countries"),
             ToolMetadata(name="rivers", description="rivers of the world")]
    for call in (lambda: LLMSingleSelector.from_defaults(llm=llm).select(tools, QueryBundle(AUSTRALIA)),
                 lambda: LLMMultiSelector.from_defaults(llm=llm).select(tools, QueryBundle(AUSTRALIA)),
                 lambda: LLMQuestionGenerator.from_defaults(llm=llm).generate(tools, QueryBundle(AUSTRALIA))):
        try:
            call()
        except (ValueError, IndexError, KeyError, AttributeError):  # the tiny model's reply need not parse: LlamaIndex's to say
            pass
    # the query rewrites of MultiStepQueryEngine and TransformQueryEngine (a reviewer's trial: held, they searched
    # with the hold message)
    from llama_index.core.indices.query.query_transform.base import DecomposeQueryTransform, StepDecomposeQueryTransform

    DecomposeQueryTransform(llm=llm).run(AUSTRALIA, {"index_summary": "capitals of countries"})
    StepDecomposeQueryTransform(llm=llm).run(AUSTRALIA, {"index_summary": "capitals of countries", "prev_reasoning": ""})
    log = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in log] == ["retrieval_query"] * 5, [r["kind"] for r in log]
    assert [r["step"].split(":")[0] for r in log] == [f"LlamaIndex {s}" for s in (
        "LLMSingleSelector", "LLMMultiSelector", "LLMQuestionGenerator", "DecomposeQueryTransform", "StepDecomposeQueryTransform")]
    assert guard.review_queue.pending() == []


def test_a_stock_engine_whose_nodes_hold_no_text_goes_to_review_as_nothing_retrieved(make_guard):
    """Retrieved nodes of whitespace or invisible characters alone (a zero-width space, a byte-order mark): the
    stock synthesizer still calls the LLM with them as its context. The call is held as nothing retrieved (it
    raised the generator's empty-context InputError, breaking the query), never answered as closed-book."""
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    class Invisible(BaseRetriever):
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(text=t), score=1.0) for t in ("\u200b", "\ufeff ")]

    guard = make_guard("accept")
    engine = RetrieverQueryEngine.from_args(Invisible(), llm=HGuardLLM(guard, domain="alpha"))
    for r in (engine.query(AUSTRALIA), asyncio.run(engine.aquery(AUSTRALIA))):
        assert r.metadata["route"] == "review", r.metadata  # the domain accepts everything
        assert any("nothing retrieved: the retriever returned no passage" in x for x in r.metadata["reasons"]), r.metadata
        rec = AuditLog(guard.audit.path).find(r.metadata["audit_id"])
        assert rec["context"] is None and rec["question"] == AUSTRALIA


def test_a_stock_engines_passages_are_its_nodes_own_text_and_a_blank_one_is_said(make_guard):
    """The stock synthesizer renders each node under its metadata lines ("file_name: ..."): a node whose own text is
    blank became a passage of its file name, kept and unsaid, and metadata counted as passage text for grounding and
    the off-topic check (a legal team's blank footer page of "Schedule_7_Arbitration.pdf"). The passages are the
    nodes' own text; a blank node is left out and said as the API says it; nodes all blank are nothing retrieved."""
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    texts = ["Canberra is the capital city of Australia.", " \n\t", KENYA]

    class Pages(BaseRetriever):
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(text=t, metadata={"file_name": "Schedule_7_Arbitration.pdf",
                                                                  "page_label": str(i + 1)}), score=1.0)
                    for i, t in enumerate(texts)]

    guard = make_guard("accept")
    engine = RetrieverQueryEngine.from_args(Pages(), llm=HGuardLLM(guard, domain="alpha"))
    for r in (engine.query(AUSTRALIA), asyncio.run(engine.aquery(AUSTRALIA))):
        rec = AuditLog(guard.audit.path).find(r.metadata["audit_id"])
        assert rec["context"] == f"{texts[0]}\n\n{KENYA}", rec["context"]  # no file names: the nodes' own text
        assert "1 of the 3 retrieved passages (number 1, counting from 0) was empty and left out of the context" \
            in r.metadata["reasons"], r.metadata["reasons"]
    # streamed alike (a hospital's trial: a streaming engine's passages were its nodes under their metadata lines)
    streaming = RetrieverQueryEngine.from_args(Pages(), llm=HGuardLLM(guard, domain="alpha"), streaming=True)

    async def astreamed():
        r = await streaming.aquery(AUSTRALIA)
        return r, "".join([t async for t in r.async_response_gen()])

    def streamed():
        r = streaming.query(AUSTRALIA)
        return r, "".join(r.response_gen)

    for r, _ in (streamed(), asyncio.run(astreamed())):
        rec = AuditLog(guard.audit.path).find(r.metadata["audit_id"])
        assert rec["context"] == f"{texts[0]}\n\n{KENYA}", rec["context"]
        assert any("was empty and left out of the context" in x for x in r.metadata["reasons"]), r.metadata["reasons"]
    texts[:] = [" ", "\u200b"]  # under their metadata lines, nothing but blank pages
    for r in (engine.query(AUSTRALIA), streamed()[0], asyncio.run(astreamed())[0]):
        assert r.metadata["route"] == "review", r.metadata  # the domain accepts everything
        assert any("nothing retrieved: the retriever returned no passage" in x for x in r.metadata["reasons"]), r.metadata
        assert AuditLog(guard.audit.path).find(r.metadata["audit_id"])["context"] is None


def test_a_joined_response_takes_every_figure_from_its_strictest_answer():
    """accumulate's combined decision took the highest risk of all its answers beside the signals, reasons and request
    id of another (the first of the strictest route): the record contradicted itself (a LlamaIndex user's trial)."""
    from llama_index.llms.hguard.templates import combined_decision

    def d(aid, route, risk):
        return {"audit_id": aid, "request_id": aid, "route": route, "risk": risk, "signals": {"risk": risk},
                "reasons": [f"risk {risk} of {aid}"]}

    noted = [("first answer", d("a", "accept", 0.9)), ("second answer", d("b", "review", 0.3)),
             ("third answer", d("c", "review", 0.5)), ("fourth answer", d("e", "accept", 0.95))]
    joined = combined_decision("Response 1: first answer\nResponse 2: second answer\nResponse 3: third answer\n"
                               "Response 4: fourth answer", noted)
    assert joined is not None and joined["route"] == "review" and joined["audit_id"] is None
    assert joined["audit_ids"] == ["a", "b", "c", "e"]
    assert (joined["risk"], joined["request_id"], joined["signals"]) == (0.5, "c", {"risk": 0.5})
    assert joined["reasons"][1:] == ["risk 0.5 of c"] and "decision c" in joined["reasons"][0]
    # a missing (or NaN) risk is the guard not telling: the strictest of its route
    noted.append(("fifth answer", d("f", "review", float("nan"))))
    assert combined_decision("second answer third answer fifth answer", noted)["request_id"] == "f"


def test_an_accumulated_responses_query_record_names_every_decision_it_joins(tiny_probes, embedder, tmp_path,
                                                                            root_handler):
    """The audit handler's query record of an accumulate response had decision_audit_id None and no audit_ids: nothing
    in the log tied the query, and the text the user saw, to the decisions it was made of (a LlamaIndex user's
    trial)."""
    guard = _guard(tiny_probes, embedder, tmp_path)
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    docs = [Document(text=f"Canberra is the capital city of Australia. Note {i}: " + "the city was planned. " * 160)
            for i in range(3)]
    many = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())
    engine = many.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=3, response_mode="accumulate")
    response = engine.query(AUSTRALIA)
    records = list(AuditLog(guard.audit.path))
    decisions = {r["id"]: r for r in records if r["kind"] == "decision"}
    ids = response.metadata["audit_ids"]
    assert len(ids) == 3 and set(ids) <= set(decisions) and response.metadata["audit_id"] is None
    query, = [r for r in records if r["kind"] == "query"]
    assert query["decision_audit_id"] == ids and query["hguard"]["audit_ids"] == ids
    assert len(audit_mod.show(guard.audit.path, record_id=ids[1], kind="query")) == 1  # found by any of them
    strictest = decisions[response.metadata["request_id"]]
    assert response.metadata["risk"] == strictest["risk"] and response.metadata["reasons"][1:] == strictest["reasons"]
    assert response.metadata["route"] == strictest["route"]


def test_a_stock_engine_that_swallows_a_refused_request_says_so_in_its_query_record(make_guard, index, root_handler):
    """LlamaIndex's compact/refine synthesizers catch ValueError from the LLM (hguard's InputError is one) and answer
    "Empty Response" (new-user trial: the query record said "ok", with no link to the refusal)."""
    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    r = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha")).query("   ")
    assert str(r.response) == "Empty Response"  # LlamaIndex's, not hguard's: nothing was answered
    records = list(AuditLog(guard.audit.path))
    error, = [x for x in records if x["kind"] == "error"]
    call, = [x for x in records if x["kind"] == "llm_call"]
    query, = [x for x in records if x["kind"] == "query"]
    assert call["status"] == "error" and call["error_audit_id"] == error["id"] and "InputError" in call["error"]
    assert query["status"] == "llm_error" and query["answer"] == "Empty Response"
    assert query["llm_errors"] == [{"span_id": call["span_id"], "error": call["error"], "error_audit_id": error["id"]}]
    # a query whose calls went well is still "ok", with no llm_errors
    index.as_query_engine(llm=HGuardLLM(guard, domain="alpha")).query(AUSTRALIA)
    last = list(AuditLog(guard.audit.path))[-1]
    assert last["kind"] == "query" and last["status"] == "ok" and "llm_errors" not in last


@pytest.mark.parametrize("engine", ["HGuardQueryEngine", "stock"])
def test_a_raise_on_route_closes_the_llm_call_and_query_records_as_failed(make_guard, index, root_handler, engine):
    """raise_on raised after the call's record could be closed (new-user trial: no llm_call record, and through a stock
    engine no query record either)."""
    from hguard.errors import NeedsReviewError

    guard = make_guard("review")
    handler = root_handler(HGuardAuditEventHandler.from_guard(guard))
    llm = HGuardLLM(guard, domain="alpha", raise_on={"review"})
    run = (HGuardQueryEngine(index.as_retriever(similarity_top_k=2), llm, audit_handler=handler) if engine == "HGuardQueryEngine"
           else index.as_query_engine(llm=llm, similarity_top_k=2))
    with pytest.raises(NeedsReviewError) as err:
        run.query(AUSTRALIA)
    records = list(AuditLog(guard.audit.path))
    assert [x["kind"] for x in records] == ["decision", "llm_call", "query"], [x["kind"] for x in records]
    decision, call, query = records
    assert decision["id"] == err.value.audit_id and decision["route"] == "review"
    assert call["status"] == "error" and call["decision_audit_id"] == decision["id"] and "NeedsReviewError" in call["error"]
    assert query["status"] == "error" and query["llm_errors"][0]["decision_audit_id"] == decision["id"]
    assert audit_mod.verify(guard.audit.path).ok and handler.errors == []


def _every_engine():
    """A selector choosing every engine (a user's own: the stock multi-selector needs a function-calling LLM)."""
    from llama_index.core.base.base_selector import BaseSelector, SelectorResult, SingleSelection

    class Every(BaseSelector):
        def _select(self, choices, query):
            return SelectorResult(selections=[SingleSelection(index=i, reason="every") for i in range(len(choices))])

        async def _aselect(self, choices, query):
            return self._select(choices, query)

        def _get_prompts(self):
            return {}

        def _update_prompts(self, prompts):
            pass

    return Every()


def _fixed(texts):
    """A retriever of fixed passages (a chunk that repeats another's words, as overlapping chunks do)."""
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(text=t), score=1.0) for t in texts]

    return Fixed()


def _fixed_questions(*questions):
    from llama_index.core.question_gen.types import BaseQuestionGenerator, SubQuestion

    class Fixed(BaseQuestionGenerator):  # a user's own generator (the stock one needs a function-calling LLM)
        def generate(self, tools, query):
            return [SubQuestion(sub_question=q, tool_name="geo") for q in questions]

        async def agenerate(self, tools, query):
            return self.generate(tools, query)

        def _get_prompts(self):
            return {}

        def _update_prompts(self, prompts):
            pass

    return Fixed()


@pytest.mark.parametrize("sub", ["stock", "hguard", "hguard-streaming"])
def test_a_sub_question_engine_does_not_accept_a_summary_of_its_sub_answers(tiny_probes, embedder, tmp_path, index, sub):
    """SubQuestionQueryEngine hands its synthesizer nodes "Sub question: ...\\nResponse: <answer>": the request's own
    answers, held ones with their review mark, came back accepted as if retrieved (a LlamaIndex power user's trial)."""
    from llama_index.core.query_engine import SubQuestionQueryEngine
    from llama_index.core.response_synthesizers import get_response_synthesizer
    from llama_index.core.tools import QueryEngineTool, ToolMetadata

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    engine = (index.as_query_engine(llm=llm, similarity_top_k=2) if sub == "stock"
              else HGuardQueryEngine(index.as_retriever(similarity_top_k=2), llm, domain="alpha",
                                     streaming=sub.endswith("streaming")))
    tool = QueryEngineTool(query_engine=engine, metadata=ToolMetadata(name="geo", description="capital cities"))
    subq = SubQuestionQueryEngine(question_gen=_fixed_questions(AUSTRALIA, "what is the capital of kenya ?"),
                                  query_engine_tools=[tool], response_synthesizer=get_response_synthesizer(llm=llm))
    response = subq.query("what are the capitals of australia and kenya ?")
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert [d["route"] for d in decisions[:2]] == ["accept", "accept"]  # each sub-answer scored on its passages
    final = decisions[-1]
    assert final["question"] == "what are the capitals of australia and kenya ?" and final["route"] == "review"
    assert any("earlier answers" in r for r in final["reasons"])
    assert response.metadata["route"] == "review" and response.metadata["audit_id"] == final["id"]
    # the accepted sub-answers the held summary replaced are said undelivered, as a router's engines' answers are (the
    # log read as if two accepted answers had reached the user; a LlamaIndex user's trial)
    said = [r for r in AuditLog(guard.audit.path) if r["kind"] == "answer_not_delivered"]
    assert sorted(r["decision_audit_id"] for r in said) == sorted(d["id"] for d in decisions[:-1])
    assert all("a later step of the same response replaced it" in r["why"] and final["id"] in r["why"] for r in said)


def test_a_router_summarising_guarded_engines_does_not_accept_their_answers_as_passages(tiny_probes, embedder, tmp_path, index):
    """A multi-selection RouterQueryEngine summarises its engines' answers: HGuardQueryEngine's answers were not known
    for the request's own, so held ones came back accepted inside the summary (stock engines' were)."""
    from llama_index.core.query_engine import RouterQueryEngine
    from llama_index.core.response_synthesizers import TreeSummarize
    from llama_index.core.tools import QueryEngineTool, ToolMetadata

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    tools = [QueryEngineTool(query_engine=HGuardQueryEngine(index.as_retriever(similarity_top_k=k), llm, domain="alpha"),
                             metadata=ToolMetadata(name=f"docs{k}", description=f"documents, top {k}")) for k in (1, 2)]
    router = RouterQueryEngine(selector=_every_engine(), query_engine_tools=tools, llm=llm, summarizer=TreeSummarize(llm=llm))
    response = router.query(AUSTRALIA)
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert len(decisions) == 3 and response.metadata["audit_id"] == decisions[-1]["id"]
    assert decisions[-1]["route"] == "review" and any("earlier answers" in r for r in decisions[-1]["reasons"])
    # the engines' answers the summary replaced are said undelivered, as a stock engine's replaced steps are
    said = {r["decision_audit_id"] for r in AuditLog(guard.audit.path) if r["kind"] == "answer_not_delivered"}
    assert said == {decisions[0]["id"], decisions[1]["id"]}


def test_a_short_earlier_answer_inside_a_passage_is_not_taken_for_a_summary():
    """An answer of fewer than three words ("Canberra.") may stand in a retrieved passage by chance; a longer one, or
    a context made of nothing but answers, is the request's own answers."""
    from hguard.streaming import built_from_answers

    passage = "Canberra. The city was planned as the capital in 1908."
    assert not built_from_answers(passage, [], ["Canberra."])
    assert built_from_answers("Canberra.\n\nNairobi.", ["Canberra.", "Nairobi."])  # nothing but answers
    sub = "Sub question: capital?\nResponse: The capital is Canberra."
    assert built_from_answers(sub, [], ["The capital is Canberra."])  # another engine's answer inside
    assert not built_from_answers(sub, ["The capital is Canberra."])  # the synthesizer's own step: a passage repeating it
    assert not built_from_answers(passage, [], ["The capital is Nairobi."]) and not built_from_answers(passage, [])




AUS_PASSAGE = "Canberra is the capital city of Australia. It was chosen as a compromise between Sydney and Melbourne."


def test_a_chunk_repeating_an_earlier_steps_answer_is_a_passage_not_a_summary(tiny_probes, embedder, tmp_path):
    """accumulate answers each chunk alone; a later chunk holding the words of the first chunk's answer (overlapping
    chunks) is retrieved text, not the request's own answers (a review: it went to review, "earlier answers")."""
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    RetrieverQueryEngine.from_args(_fixed([AUS_PASSAGE]), llm=llm, response_mode="accumulate").query(AUSTRALIA)
    first = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"][-1]["answer"]
    assert len(first.split()) >= 3
    chunk = "Parliament House opened in 1988. " + first + " The city lies in the Australian Capital Territory."
    RetrieverQueryEngine.from_args(_fixed([AUS_PASSAGE, chunk]), llm=llm, response_mode="accumulate").query(AUSTRALIA)
    steps = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"][-2:]
    assert steps[0]["answer"] == first and not any("earlier answers" in x for x in steps[1]["reasons"])


def test_another_query_in_the_same_outer_span_is_another_request(tiny_probes, embedder, tmp_path):
    """Two user questions answered inside one instrumented span (a workflow step, a batch handler): the second's
    passage holding the first's answer is a passage (a review: it went to review as "earlier answers")."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    first = HGuardQueryEngine(_fixed([AUS_PASSAGE]), llm, domain="alpha")
    answer = str(first.query(AUSTRALIA))
    second = RetrieverQueryEngine.from_args(_fixed(["Guide to Australian cities. " + answer + " Sydney is the largest."]), llm=llm)
    dispatcher = get_dispatcher("hguard_test_batch")

    @dispatcher.span
    def batch():
        return [first.query(AUSTRALIA), second.query("what is the largest city of australia ?")]

    _, r2 = batch()
    rec = AuditLog(guard.audit.path).find(r2.metadata["audit_id"])
    assert not any("earlier answers" in x for x in rec["reasons"]), rec["reasons"]


def test_a_router_summary_holding_a_held_answer_beside_another_engines_text_is_held(tiny_probes, embedder, tmp_path):
    """A review: a router's summarizer (TreeSummarize.get_response, no synthesize span) over a held HGuardQueryEngine
    answer and an engine that does not answer through the guard (a table lookup) was accepted."""
    from llama_index.core.query_engine import CustomQueryEngine, RouterQueryEngine
    from llama_index.core.response_synthesizers import TreeSummarize
    from llama_index.core.tools import QueryEngineTool, ToolMetadata

    class Lookup(CustomQueryEngine):
        def custom_query(self, query_str: str):
            return "Population table: Sydney 5.3 million, Melbourne 5.2 million, Canberra 0.47 million."

    guard = _guard(tiny_probes, embedder, tmp_path, abstain_above=1.0)
    held = HGuardQueryEngine(_fixed([AUS_PASSAGE]), HGuardLLM(guard, domain="beta"), domain="beta")  # beta reviews all
    tools = [QueryEngineTool(query_engine=held, metadata=ToolMetadata(name="docs", description="docs")),
             QueryEngineTool(query_engine=Lookup(), metadata=ToolMetadata(name="table", description="table"))]
    llm = HGuardLLM(guard, domain="alpha")
    response = RouterQueryEngine(selector=_every_engine(), query_engine_tools=tools, llm=llm, summarizer=TreeSummarize(llm=llm)).query(AUSTRALIA)
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert decisions[0]["route"] == "review" and response.metadata["route"] == "review"
    assert any("earlier answers" in x for x in decisions[-1]["reasons"])


def test_a_chat_turn_after_another_question_in_the_same_outer_span_is_another_request(tiny_probes, embedder, tmp_path):
    """A review: a chat engine's turn answered in the same outer span after a query engine's, its passage quoting the
    earlier answer, went to review as "earlier answers": a chat turn is a request of its own."""
    from llama_index.core.chat_engine import ContextChatEngine
    from llama_index.core.instrumentation import get_dispatcher

    guard = _guard(tiny_probes, embedder, tmp_path)
    llm = HGuardLLM(guard, domain="alpha")
    first = HGuardQueryEngine(_fixed([AUS_PASSAGE]), llm, domain="alpha")
    answer = str(first.query(AUSTRALIA))
    chat = ContextChatEngine.from_defaults(retriever=_fixed(["Guide to Australian cities. " + answer + " Sydney is the largest."]), llm=llm)
    dispatcher = get_dispatcher("hguard_test_handler")

    @dispatcher.span
    def handler():
        return [str(first.query(AUSTRALIA)), chat.chat("what is the largest city of australia ?")]

    _, turn = handler()
    rec = AuditLog(guard.audit.path).find(turn.metadata["audit_id"])
    assert not any("earlier answers" in x for x in rec["reasons"]), rec["reasons"]


def test_a_passthrough_stream_dropped_half_read_is_settled_when_dropped_and_forgets_its_guard(tiny_probes, embedder,
                                                                                             tmp_path, index):
    """A soak: a stock engine's response held its own stream in a cycle, so a stream dropped after one token was
    closed by the garbage collector at any point of any thread (in the guard's worker: its answer_not_delivered record
    lost; in a thread holding the embedder's lock: a deadlock within 11-17 requests); and every answered query left
    its guard in a map for good (1,000 entries per 1,000 queries, every replaced guard kept alive)."""
    import gc

    from llama_index.llms.hguard import templates

    guard = _guard(tiny_probes, embedder, tmp_path)
    engine = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha", stream_mode="passthrough"),
                                   similarity_top_k=2, streaming=True)
    gc.disable()  # what the reference count does, not the collector
    try:
        for i in range(3):
            response = engine.query(AUSTRALIA)
            next(response.response_gen)  # the user read one token and went away
            del response
            said = [r for r in AuditLog(guard.audit.path) if r["kind"] == "answer_not_delivered"]
            assert len(said) == i + 1  # settled as it was dropped, not whenever the collector ran
    finally:
        gc.enable()
    engine = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2)
    for _ in range(3):
        engine.query(AUSTRALIA)
    assert not templates._OWNERS  # noqa: SLF001 (nothing kept once each request's spans closed)


OTHER_PASSAGE = "Canberra lies in the Australian Capital Territory. Parliament House opened there in 1988."


def _refusing(guard, monkeypatch, marker):
    """The guard refuses (as over the model's window) every call whose passages hold ``marker``, as it refused the
    refine step holding the part of a long clause that did not fit (a legal team's trial), with its ``error`` record."""
    from hguard.errors import InputError

    real = guard.batch

    def batch(questions, contexts=None, *args, **kwargs):
        if any(marker in str(c) for c in contexts or ()):
            raise guard._refused(questions[0], InputError(
                "the prompt has 8163 tokens and up to 32 more are generated, over the model's context of 8192 tokens; "
                "shorten the question or the context"), context=contexts[0])
        return real(questions, contexts, *args, **kwargs)

    monkeypatch.setattr(guard, "batch", batch)


@pytest.mark.parametrize("how", ["query", "aquery"])
@pytest.mark.parametrize("failing", ["first", "last"])
def test_a_refine_step_the_engine_swallowed_does_not_leave_the_response_accepted(make_guard, monkeypatch, root_handler,
                                                                                  failing, how):
    """LlamaIndex's refine synthesizer catches the LLM's ValueError (hguard's InputError) and goes on: the response
    carried another step's answer and its `accept` while part of the passages never reached the model, said only in
    the query record (a legal team's trial). A step failing before the last answered one: that answer's own call names
    it and the guard holds it. The last step failing after an earlier answer: the response (the earlier answer) is
    held, naming it, and the log says that accept was not delivered as one."""
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    _refusing(guard, monkeypatch, "Canberra is the capital" if failing == "first" else "Parliament House")
    engine = RetrieverQueryEngine.from_args(_fixed([AUS_PASSAGE, OTHER_PASSAGE]), llm=HGuardLLM(guard, domain="alpha"),
                                            response_mode="refine")
    r = engine.query(AUSTRALIA) if how == "query" else asyncio.run(engine.aquery(AUSTRALIA))
    records = list(AuditLog(guard.audit.path))
    error, = [x for x in records if x["kind"] == "error"]
    call = next(x for x in records if x["kind"] == "llm_call" and x["status"] == "error")
    decision, = [x for x in records if x["kind"] == "decision"]
    query, = [x for x in records if x["kind"] == "query"]
    assert r.metadata["route"] == "review" and r.metadata["audit_id"] == decision["id"]
    named = [x for x in r.metadata["reasons"] if "a model step of this request failed" in x]
    assert named and call["span_id"] in named[0] and error["id"] in named[0] and "over the model's context" in named[0]
    assert query["status"] == "llm_error" and query["hguard"]["route"] == "review"  # the log agrees with the caller
    if failing == "first":  # the guard held the answer itself: its decision record says why
        assert decision["route"] == "review" and any(named[0] in x for x in decision["reasons"])
        assert str(r) == "[needs review] " + decision["answer"]
        assert not [x for x in records if x["kind"] == "answer_not_delivered"]
    else:  # decided (accepted) before the failure: the response is the earlier answer, held
        assert decision["route"] == "accept" and str(r) == "[needs review] " + shown_answer(decision)
        undelivered, = [x for x in records if x["kind"] == "answer_not_delivered"]
        assert undelivered["decision_audit_id"] == decision["id"] and call["span_id"] in undelivered["why"]
        assert query["answer"] == str(r)


# the failing step's marker opens the first passage or ends the second: one of the compact packer's prompts holds it
LONG_AUS = AUS_PASSAGE + " " + " ".join(["It was chosen as a compromise between Sydney and Melbourne."] * 40)
LONG_OTHER = " ".join(["Canberra lies in the Australian Capital Territory."] * 40) + " Parliament House opened in 1988."


@pytest.mark.parametrize("engine", ["context", "condense_plus_context", "streaming", "astreaming"])
@pytest.mark.parametrize("failing", ["first", "last"])
def test_a_swallowed_step_holds_the_chat_and_streamed_responses_too(make_guard, monkeypatch, root_handler, engine,
                                                                    failing):
    """The chat engines (compact: passages over one prompt are refined) and a streaming query engine: no response
    comes back accepted after a model step of its request failed, and its metadata names the step (a stream raises)."""
    from llama_index.core.chat_engine import CondensePlusContextChatEngine, ContextChatEngine
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    _refusing(guard, monkeypatch, "Canberra is the capital" if failing == "first" else "Parliament House")
    llm = HGuardLLM(guard, domain="alpha")
    # one passage per prompt: the compact synthesizer refines over the two
    monkeypatch.setattr(HGuardLLM, "_packing_window", lambda self: 1000)
    retriever = _fixed([LONG_AUS, LONG_OTHER])
    if engine in ("context", "condense_plus_context"):
        cls = ContextChatEngine if engine == "context" else CondensePlusContextChatEngine
        r = cls.from_defaults(retriever=retriever, llm=llm).chat(AUSTRALIA)
        text = str(r)
    else:  # LlamaIndex's streaming refine reads each step's stream outside its try: the refusal reaches the caller
        q = RetrieverQueryEngine.from_args(retriever, llm=llm, response_mode="refine", streaming=True)

        async def read():
            resp = await q.aquery(AUSTRALIA)
            return "".join([t async for t in resp.async_response_gen()])

        with pytest.raises(InputError, match="over the model's context"):
            "".join(q.query(AUSTRALIA).response_gen) if engine == "streaming" else asyncio.run(read())
        return
    records = list(AuditLog(guard.audit.path))
    decisions = [x for x in records if x["kind"] == "decision"]
    assert [x for x in records if x["kind"] == "error"] and r.metadata["audit_id"] in [x["id"] for x in decisions]
    assert r.metadata["route"] == "review", (r.metadata, text)
    assert any("a model step of this request failed" in x for x in r.metadata["reasons"])
    assert text.startswith("[needs review] ")


def test_the_packing_window_fits_the_model_whatever_tokenizer_llamaindex_counts_with(make_guard, monkeypatch):
    """LlamaIndex packs passages by its own tokenizer's count (Settings.tokenizer, tiktoken by default), in the window
    HGuardLLM tells it; a model counting digit-heavy text in more tokens got prompts over its context, whose steps
    were refused (a legal team's clause: 8,165 + 32 tokens of 8,192 in a window of 7,312, "less a tenth"). The window
    is now bounded by the tokenizers' measured ratio; counted with the model's own tokenizer it is nearly the whole."""
    import llama_index.core
    from llama_index.core.indices.prompt_helper import PromptHelper
    from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_QA_PROMPT

    guard = make_guard("accept")
    gen = guard.generator
    clause = " ".join(f"section {i} , schedule {i + 3} ; damages {i * 7} % ." for i in range(600))

    def steps(llm, helper=None):
        helper = helper or PromptHelper.from_llm_metadata(llm.metadata)  # what a stock synthesizer builds
        chunks = helper.repack(DEFAULT_TEXT_QA_PROMPT.partial_format(query_str=AUSTRALIA), [clause], llm=llm)
        return [len(gen.prompt_ids(AUSTRALIA, c, within_limit=False)) + gen.max_new_tokens for c in chunks]

    def coarse(text):  # no token for the punctuation the model counts (tiktoken counts 3 digits as 1, many models as 3)
        return [w for w in text.split() if any(c.isalnum() for c in w)]

    monkeypatch.setattr(llama_index.core, "global_tokenizer", coarse)
    counted = steps(HGuardLLM(guard, domain="alpha"))
    assert len(counted) > 1 and max(counted) <= gen.context_limit, (counted, gen.context_limit)
    llm = HGuardLLM(guard, domain="alpha")
    counted = steps(llm, llm.prompt_helper())  # a synthesizer's own helper, counting as the model does
    assert max(counted) <= gen.context_limit and max(counted) > 0.8 * gen.context_limit, (counted, gen.context_limit)
    monkeypatch.setattr(llama_index.core, "global_tokenizer", llm.tokenizer)  # the model's own count: the whole window
    counted = steps(llm)
    assert max(counted) <= gen.context_limit and max(counted) > 0.8 * gen.context_limit, (counted, gen.context_limit)
    # a review: a tokenizer splitting on spaces counts a sample without any (run-together digits, Chinese) as one
    # token, and that ratio set the window to its 256-token floor; such a sample bounds nothing
    monkeypatch.setattr(llama_index.core, "global_tokenizer", str.split)
    words = HGuardLLM(guard, domain="alpha")
    assert words.metadata.context_window > gen.context_limit // 4, (words.metadata.context_window, gen.context_limit)
    counted = steps(words)
    assert max(counted) <= gen.context_limit, (counted, gen.context_limit)


def test_llama_indexs_own_templates_that_ask_with_passages_hold_no_instruction():
    """A second look at the commit reading a custom template's words as the call's instruction: NLSQLTableQueryEngine's
    synthesis prompt (and the evaluators', postprocessors', query transforms') were read as custom, so their answers
    were held by fingerprint. Every LlamaIndex template of those modules that asks ``query_str`` with passages only
    frames them."""
    import importlib
    import re

    from llama_index.core.prompts import PromptTemplate
    from llama_index.llms.hguard.templates import _STOCK_TEMPLATE_MODULES, _template_texts, read_rag_prompt

    checked = 0
    for module in _STOCK_TEMPLATE_MODULES:
        for name, value in vars(importlib.import_module(module)).items():
            for text in (_template_texts(value) if name.isupper() else []):
                variables = set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
                if "query_str" not in variables or not variables & {"context_str", "context_msg"}:
                    continue
                args = {v: f"value of {v}" for v in variables} | {"query_str": AUSTRALIA, "context_str": KENYA, "context_msg": KENYA}
                rag = read_rag_prompt(PromptTemplate(text), {k: v for k, v in args.items() if k in variables})
                assert rag is not None and rag.system is None, (module, name, rag and rag.system)
                checked += 1
    assert checked >= 15, checked


@pytest.mark.parametrize("streaming", [False, True])
def test_simple_summarize_that_cut_or_left_out_passages_says_so_and_holds_the_answer(tiny_probes, embedder, tmp_path, streaming):
    """LlamaIndex's simple_summarize truncates the joined nodes to the packing window: the model saw the first
    passages whole, one cut, none of the rest, and the answer was accepted with no word of it while
    ``response.source_nodes`` listed them all (a RAG team's trial: 2 of 6 passages whole)."""
    clauses = [f"Clause {i}: " + " ".join(f"the {w} party shall notify the other party within {i + k} days"
                                            for k, w in enumerate(["first", "second", "third", "fourth"] * 12))
               for i in range(6)]
    index = VectorStoreIndex.from_documents([Document(text=c) for c in clauses], embed_model=HGuardEmbedding())
    guard = _guard(tiny_probes, embedder, tmp_path)
    engine = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=6,
                                   response_mode="simple_summarize", streaming=streaming)
    r = engine.query(AUSTRALIA)
    if streaming:
        "".join(r.response_gen)
    (rec,) = [x for x in AuditLog(guard.audit.path) if x["kind"] == "decision"]
    context = "\n".join(rec["context"]) if isinstance(rec["context"], list) else rec["context"]
    whole = sum(n.node.get_content() in context for n in r.source_nodes)
    assert len(r.source_nodes) == 6 and 0 < whole < 6, whole
    said = [x for x in rec["reasons"] if "passages not given whole" in x]
    assert said and f"given {whole} of the 6 retrieved passages whole" in said[0], rec["reasons"]
    assert rec["route"] == "review" and r.metadata["route"] == "review"


def test_simple_summarize_that_gave_every_passage_whole_says_nothing_of_a_cut(tiny_probes, embedder, tmp_path, index):
    guard = _guard(tiny_probes, embedder, tmp_path)
    r = index.as_query_engine(llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2, response_mode="simple_summarize").query(AUSTRALIA)
    assert r.metadata["route"] == "accept" and not any("not given whole" in x for x in r.metadata["reasons"])


def test_simple_summarize_counts_a_short_passage_inside_a_cut_longer_one_as_left_out(tiny_probes, embedder, tmp_path):
    """A review's trial: a short passage whose text is a sentence of the cut passage before it was counted whole
    (found inside the cut one): each passage is matched at its own place in the prompt, in the synthesizer's order."""
    from llama_index.core.response_synthesizers import get_response_synthesizer
    from llama_index.core.schema import NodeWithScore, TextNode

    first = "Canberra is the capital city of Australia."
    long = first + " " + " ".join(f"filler clause {i} about parliament house and lake burley griffin" for i in range(400))
    nodes = [NodeWithScore(node=TextNode(text=t), score=s) for t, s in
             [(long, 1.0), (first, 0.9), ("Perth is the capital of Western Australia and lies on the Swan River.", 0.8)]]
    guard = _guard(tiny_probes, embedder, tmp_path)
    synth = get_response_synthesizer(llm=HGuardLLM(guard, domain="alpha"), response_mode="simple_summarize")
    synth.synthesize(AUSTRALIA, nodes=nodes)
    (rec,) = [x for x in AuditLog(guard.audit.path) if x["kind"] == "decision"]
    context = "\n".join(rec["context"]) if isinstance(rec["context"], list) else rec["context"]
    assert "Perth" not in context and long not in context
    said = [x for x in rec["reasons"] if "passages not given whole" in x]
    assert said and "given 0 of the 3 retrieved passages whole (1 cut at the end of the prompt, 2 left out)" in said[0], said


@pytest.mark.parametrize("mode", ["refine", "compact", "tree_summarize"])
@pytest.mark.parametrize("how", ["query", "stream", "astream"])
def test_a_streamed_multi_step_response_says_the_steps_it_does_not_deliver_undelivered(make_guard, monkeypatch, mode,
                                                                                         how):
    """A streamed refine, compact refining over a long document and tree_summarize (`query(streaming=True)`, `aquery`
    read with its async stream) wrote no answer_not_delivered record for the earlier steps the user never saw, where
    the same query unstreamed writes one per step: accepted ones stood in the log as delivered (a legal team's trial)."""
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = make_guard("accept")
    monkeypatch.setattr(HGuardLLM, "_packing_window", lambda self: 700)  # one passage per prompt: several steps
    engine = RetrieverQueryEngine.from_args(_fixed([LONG_AUS, LONG_OTHER]), llm=HGuardLLM(guard, domain="alpha"),
                                            response_mode=mode, streaming=how != "query")

    async def aread():
        r = await engine.aquery(AUSTRALIA)
        return r, "".join([t async for t in r.async_response_gen()])

    if how == "query":
        r = engine.query(AUSTRALIA)
    elif how == "stream":
        r = engine.query(AUSTRALIA)
        "".join(r.response_gen)
    else:
        r, _ = asyncio.run(aread())
    records = list(AuditLog(guard.audit.path))
    decisions = [x for x in records if x["kind"] == "decision"]
    assert len(decisions) >= 2 and r.metadata["audit_id"] == decisions[-1]["id"]  # the last step is the response's
    earlier = decisions[:-1]
    assert any(d["route"] == "accept" for d in earlier)
    said = [x for x in records if x["kind"] == "answer_not_delivered"]
    assert sorted(x["decision_audit_id"] for x in said) == sorted(d["id"] for d in earlier)  # each once, not the last
    assert all("a later step of the same response replaced it" in x["why"] for x in said), [x["why"] for x in said]


@pytest.mark.parametrize("mode", ["condense_plus_context", "condense_question"])
@pytest.mark.parametrize("route", ["review", "abstain"])
def test_the_condense_step_does_not_read_a_held_turns_message_as_the_assistants_answer(tiny_probes, embedder, tmp_path,
                                                                                       policy_for, index, mode, route):
    """A legal team's trial: a stock chat engine keeps the policy's hold message as the assistant's turn, and the
    condense step rewrote the follow-up from it (3 of 6 searches were a garbled "This answer is held ..."). The
    condense prompt leaves out an assistant turn that is only a held answer's message; the user's own earlier message,
    which a follow-up refers to, stays."""
    # the default policy's shape: a held answer is shown as the review message
    pol = policy_for(tiny_probes[1], tmp_path, route).model_copy(
        update={"review_message": "This answer is held until a reviewer has checked it."})
    guard = Guard.from_policy(pol, lm=tiny_probes[0], embedder=embedder)
    engine = index.as_chat_engine(chat_mode=mode, llm=HGuardLLM(guard, domain="alpha"), similarity_top_k=2)
    first = engine.chat(AUSTRALIA)
    held = str(first)
    assert first.metadata.get("route", route) == route and held in (guard.policy.review_message,
                                                                     guard.policy.abstain_message), held
    assert any(m.content == held for m in engine.chat_history)  # the engine's memory keeps it, as LlamaIndex writes it
    engine.chat("and what about new zealand ?")
    rewrite = [r for r in AuditLog(guard.audit.path) if r["kind"] == "retrieval_query"][-1]
    assert AUSTRALIA in rewrite["question"] and "and what about new zealand ?" in rewrite["question"]
    assert held not in rewrite["question"], rewrite["question"]


@pytest.mark.parametrize("mode", ["condense_plus_context", "condense_question"])
def test_the_readmes_accepted_turns_keep_a_held_exchange_out_of_the_next_turn(make_guard, index, mode):
    """The README's advice for held turns in a chat engine's memory (pass the accepted exchanges as chat_history=):
    a follow-up after a held answer is asked without it, so neither the condense step nor the answer reads the hold
    message; an accepted exchange stays in the conversation. condense_question reads its memory when the list is empty
    (a review: the held turn reached its condense prompt), so the README's ask() resets the engine first."""
    from llama_index.core.llms import ChatMessage

    accepted: list = []

    def ask(engine, message):  # as the README writes it
        engine.reset()  # condense_question reads its own memory when chat_history is empty
        response = engine.chat(message, chat_history=accepted)
        if response.metadata.get("route") == "accept":
            accepted.extend([ChatMessage(role="user", content=message), ChatMessage(role="assistant", content=str(response))])
        return response

    held = make_guard("review")
    engine = index.as_chat_engine(chat_mode=mode, llm=HGuardLLM(held, domain="alpha"), similarity_top_k=2)
    ask(engine, AUSTRALIA)
    follow = ask(engine, "and what about new zealand ?")
    records = list(AuditLog(held.audit.path))
    assert not [r for r in records if r["kind"] == "retrieval_query"]  # nothing to condense: asked on its own
    assert not any("history_fingerprint" in r for r in follow.metadata["reasons"]) and accepted == []
    ok = make_guard("accept")
    engine = index.as_chat_engine(chat_mode=mode, llm=HGuardLLM(ok, domain="alpha"), similarity_top_k=2)
    ask(engine, AUSTRALIA)
    follow = ask(engine, "and what about new zealand ?")
    assert len(accepted) == 2  # the first exchange; the follow-up, asked with it as history, goes to review for that
    if mode == "condense_plus_context":  # the answer's call reads the history
        assert follow.metadata["route"] == "review" and any("history_fingerprint" in r for r in follow.metadata["reasons"])
    else:  # only the condense step reads it: the accepted exchange, not the engine's memory
        rewrite = [r for r in AuditLog(ok.audit.path) if r["kind"] == "retrieval_query"][-1]
        assert AUSTRALIA in rewrite["question"] and str(accepted[1].content) in rewrite["question"]


def _retry_passing(engine):
    """RetryQueryEngine over ``engine`` with an evaluator passing every answer (an app's own check: the stock ones ask
    a function-calling or judging LLM)."""
    from llama_index.core.evaluation import BaseEvaluator, EvaluationResult
    from llama_index.core.query_engine import RetryQueryEngine

    class Passing(BaseEvaluator):
        def _get_prompts(self):
            return {}

        def _update_prompts(self, prompts):
            pass

        async def aevaluate(self, query=None, response=None, contexts=None, **kwargs):
            return EvaluationResult(query=query, response=response, passing=True, score=1.0)

    return RetryQueryEngine(engine, Passing(), max_retries=1)


@pytest.mark.parametrize("how", ["retry", "handler", "ahandler"])
def test_a_stream_read_to_its_end_inside_the_span_returning_it_is_its_delivered_answer(make_guard, how):
    """A review: a span returning a streamed response said every decision made inside it undelivered, also the stream's
    own when the stream had been read there: RetryQueryEngine reads it to evaluate it and returns it, an app's
    instrumented handler streams it to the user and returns it. The accepted answer the user read stood in the log as
    answer_not_delivered. The refine's earlier step is still said undelivered; the stream's own answer is not."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = make_guard("accept")
    engine = RetrieverQueryEngine.from_args(_fixed([AUS_PASSAGE, OTHER_PASSAGE]), llm=HGuardLLM(guard, domain="alpha"),
                                            response_mode="refine", streaming=True)
    dispatcher = get_dispatcher("hguard_test_stream_handler")
    shown = []

    @dispatcher.span
    def handle(q):  # the app's request handler: streams the answer to the user, then returns the response
        r = engine.query(q)
        shown.append("".join(r.response_gen))
        return r

    @dispatcher.span
    async def ahandle(q):
        r = await engine.aquery(q)
        shown.append("".join([t async for t in r.async_response_gen()]))
        return r

    if how == "retry":
        r = _retry_passing(engine).query(AUSTRALIA)
        shown.append(str(r))
    else:
        r = handle(AUSTRALIA) if how == "handler" else asyncio.run(ahandle(AUSTRALIA))
    records = list(AuditLog(guard.audit.path))
    first, last = [x for x in records if x["kind"] == "decision"]  # the refine's two steps
    assert r.metadata["audit_id"] == last["id"] and shown == [shown_answer(last)]
    said = [x for x in records if x["kind"] == "answer_not_delivered"]
    assert [x["decision_audit_id"] for x in said] == [first["id"]], [x["why"] for x in said]  # once, the earlier step


def test_a_stream_not_read_is_no_delivered_answer_whatever_its_metadata_names(make_guard):
    """The stream's own decision counts as delivered only when the stream was read to its end before its span returned
    it: a custom handler that drafts a guarded answer, then returns an unread stream with the draft's metadata handed
    on, did not deliver the draft (the stream's answer, decided as it is read, replaces it)."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.query_engine import RetrieverQueryEngine

    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    drafting = HGuardQueryEngine(_fixed([AUS_PASSAGE]), llm, domain="alpha")
    engine = RetrieverQueryEngine.from_args(_fixed([AUS_PASSAGE]), llm=llm, streaming=True)
    dispatcher = get_dispatcher("hguard_test_stream_handler")

    @dispatcher.span
    def handle(q):
        draft = drafting.query(q)
        r = engine.query(q)
        r.metadata = {**(r.metadata or {}), **draft.metadata}  # the draft's fields handed on, the stream not read
        return r

    r = handle(AUSTRALIA)
    draft, = [x for x in AuditLog(guard.audit.path) if x["kind"] == "decision"]
    said = [x for x in AuditLog(guard.audit.path) if x["kind"] == "answer_not_delivered"]
    assert [x["decision_audit_id"] for x in said] == [draft["id"]] and "streams a later step" in said[0]["why"]
    "".join(r.response_gen)  # read later: its own decision, delivered
    decisions = [x for x in AuditLog(guard.audit.path) if x["kind"] == "decision"]
    assert len(decisions) == 2 and r.metadata["audit_id"] == decisions[-1]["id"]
    assert len([x for x in AuditLog(guard.audit.path) if x["kind"] == "answer_not_delivered"]) == 1
