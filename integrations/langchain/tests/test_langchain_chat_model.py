"""ChatHGuard on a tiny calibrated model: content and metadata per route, context and domain plumbing,
batch (one batched generation), async, and the guard's audit records behind every message."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from hguard.audit import AuditLog
from hguard.errors import InputError
from hguard.guard import REVIEW_MARK
from hguard.testing import shown_answer
from langchain_hguard import ChatHGuard, HGuardAuditCallbackHandler

Q = "who is the author of the book ?"
DECISION = ("route", "risk", "signals", "reasons", "audit_id", "domain")


def _record(guard, message: AIMessage) -> dict:
    rec = AuditLog(guard.audit.path).find(message.response_metadata["audit_id"])
    assert rec is not None and rec["kind"] == "decision"
    return rec


def test_an_agents_held_step_gets_the_hold_text_never_the_marked_answer_nor_a_stream(make_guard):
    """An agent's trial: a ReAct loop's parser ran the tool of a held "[needs review] ... Action: lookup" step and
    returned a held "Final Answer:" as final, without the mark (no review message); in passthrough the chain's final
    output was the held step unmarked, with a review message set."""
    from hguard._guard_result import HELD_FOR_REVIEW

    guard = make_guard("accept")  # the agent's few-shot turns are not the calibration's: its steps are held
    chat = [SystemMessage("Use the tools. Reply with Action: and Action Input: lines, or Final Answer:."),
            HumanMessage("capital of france ?"), AIMessage("Thought: look it up.\nAction: lookup\nAction Input: france"),
            HumanMessage(Q)]
    action = re.compile(r"Action\s*\d*\s*:[\s]*(.*?)[\s]*Action\s*\d*\s*Input\s*\d*\s*:[\s]*(.*)", re.DOTALL)
    for mode in ("hold", "passthrough"):
        model = ChatHGuard(guard=guard, domain="alpha", stream_mode=mode)
        msg = model.invoke(chat)
        assert msg.response_metadata["route"] == "review" and msg.content == HELD_FOR_REVIEW
        assert not action.search(msg.content) and "Final Answer" not in msg.content
        chunks = list(model.stream(chat))  # held whatever the stream mode: the agent parses what it is streamed
        assert "".join(c.content for c in chunks) == HELD_FOR_REVIEW
        assert [c.response_metadata.get("route") for c in chunks if c.content] == ["review"]
    # a chat that is no agent's keeps the policy's way of showing a held answer: marked
    plain = ChatHGuard(guard=guard, domain="alpha").invoke([HumanMessage("capital of france ?"), AIMessage("paris"),
                                                             HumanMessage(Q)])
    assert plain.response_metadata["route"] == "review" and plain.content.startswith(REVIEW_MARK)


@pytest.mark.parametrize("route", ["accept", "review", "abstain"])
def test_content_is_the_display_text_and_metadata_the_decision(make_guard, route):
    guard = make_guard(route)
    msg = ChatHGuard(guard=guard, domain="alpha").invoke(Q)
    assert isinstance(msg, AIMessage)
    meta = msg.response_metadata
    assert all(k in meta for k in DECISION) and meta["route"] == route and meta["domain"] == "alpha"
    assert 0.0 <= meta["risk"] <= 1.0 and meta["signals"]["neuron_risk"] is not None and meta["reasons"]
    assert meta["model_name"] == "tiny-llama"
    rec = _record(guard, msg)
    assert rec["route"] == route and rec["question"] == Q
    if route == "accept":
        assert msg.content == shown_answer(rec)
    elif route == "review":
        assert msg.content == REVIEW_MARK + rec["answer"]
    else:
        assert msg.content == guard.policy.abstain_message and rec["answer"] not in ("", msg.content)


def test_context_from_kwarg_system_message_or_named_message(make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    passages = ["paris is the capital of france", "rome is the capital of italy"]

    by_kwarg = chat.invoke(Q, context=passages)
    assert _record(guard, by_kwarg)["context"] == "\n\n".join(passages)
    assert by_kwarg.response_metadata["signals"]["grounding"] is not None  # grounding was scored

    by_system = ChatHGuard(guard=guard, domain="alpha", system_as_context=True).invoke([SystemMessage(passages[0]), HumanMessage(Q)])
    assert _record(guard, by_system)["context"] == passages[0]

    named = chat.invoke([HumanMessage(passages[1], name="context"), HumanMessage(Q)])
    rec = _record(guard, named)
    assert rec["context"] == passages[1] and rec["question"] == Q

    # the kwarg wins over messages; system messages are instructions when system_as_context=False
    both = chat.invoke([SystemMessage(passages[0]), HumanMessage(Q)], context=passages[1])
    assert _record(guard, both)["context"] == passages[1]
    plain = ChatHGuard(guard=guard, domain="alpha", system_as_context=False).invoke([SystemMessage("be brief"), HumanMessage(Q)])
    assert _record(guard, plain)["context"] is None


def test_last_human_message_is_the_question_and_domain_kwarg_wins(make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    msg = chat.invoke([HumanMessage("what is gold ?"), AIMessage("gold is a metal"), HumanMessage(Q)], domain="beta")
    rec = _record(guard, msg)
    assert rec["question"] == Q and msg.response_metadata["domain"] == "beta" == rec["domain"]


def test_bad_calls_raise_before_anything_is_generated(make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    with pytest.raises(InputError, match="stop must be"):
        chat.invoke(Q, stop=[""])
    with pytest.raises(InputError, match="decodes greedily .* temperature=0.3 is not supported"):
        chat.invoke(Q, temperature=0.3)  # per call as a field (it was an unexpected keyword, even at 0)
    with pytest.raises(NotImplementedError, match="does not call tools"):
        chat.bind(tools=[{"type": "function", "function": {"name": "f"}}]).invoke(Q)
    with pytest.raises(NotImplementedError, match="no structured output .JSON mode"):
        chat.bind(response_format={"type": "json_object"}).invoke(Q)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['domian'\]"):
        chat.invoke(Q, domian="alpha")
    with pytest.raises(InputError, match="human message"):
        chat.invoke([SystemMessage("only a system message")])
    with pytest.raises(ValueError, match="stream_mode"):
        chat.invoke(Q, stream_mode="sometimes")
    image = {"type": "image", "url": "https://example.com/x.png"}
    for content in ([image], [{"type": "text", "text": Q}, image]):  # the image was dropped without a word
        with pytest.raises(InputError, match="reads text only: a human message holds a 'image' content block"):
            chat.invoke([HumanMessage(content=content)])
    with pytest.raises(InputError, match="max_tokens must be a whole number of at least 1, got nan"):
        chat.invoke(Q, max_tokens=float("nan"))
    # nothing was answered; every refused call is on record (error records: the stop sequence, checked by ChatHGuard
    # as the guard checks it, so recorded as ChatHGuard's, not "api"), the wrong keyword, stream mode, tools and JSON
    # mode too: a chain's with_fallbacks catches every error, and such a call sent each question to the fallback model
    # with no trace in the guard's log (a finance firm's trial)
    records = list(AuditLog(guard.audit.path))
    assert [(r["kind"], r["source"]) for r in records] == [("error", "ChatHGuard")] * 10
    assert [r["error_type"] for r in records[2:5]] == ["NotImplementedError", "NotImplementedError", "TypeError"]
    assert records[6]["error_type"] == "ValueError" and "stream_mode" in records[6]["error"]
    assert chat.invoke([HumanMessage(content=[{"type": "text", "text": Q}])]).response_metadata["route"] == "accept"
    # LangChain's standard per-call params a local model has no use for, and greedy decoding asked for, are taken
    assert chat.invoke(Q, temperature=0, timeout=5, max_retries=2).response_metadata["route"] == "accept"


def test_batch_is_one_batched_generation_with_one_run_per_input(make_guard, monkeypatch):
    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha")
    calls = []
    real = guard.lm.model.generate
    monkeypatch.setattr(guard.lm.model, "generate", lambda *a, **k: calls.append(k["input_ids"].shape[0]) or real(*a, **k))
    questions = [Q, "what is gold ?", "where is rome ?"]
    out = chat.batch(questions)
    assert calls == [3]  # the three questions share one generate call
    assert [m.response_metadata["route"] for m in out] == ["review"] * 3
    assert len({m.response_metadata["audit_id"] for m in out}) == 3
    assert [_record(guard, m)["question"] for m in out] == questions
    assert not chat._precomputed  # nothing left behind


def test_batch_with_a_bad_input_returns_its_error_when_asked(make_guard):
    chat = ChatHGuard(guard=make_guard("accept"), domain="alpha")
    out = chat.batch([Q, [SystemMessage("no question")]], return_exceptions=True)
    assert isinstance(out[0], AIMessage) and out[0].response_metadata["route"] == "accept"
    assert isinstance(out[1], InputError)


@pytest.mark.parametrize("how", ["batch", "abatch"])
def test_batch_with_return_exceptions_records_a_bad_input_once_and_batches_the_others(make_guard, monkeypatch, how):
    """The refused input was recorded by the batch's check and again by its own run, so the log held two errors
    for one request; the others are still generated together."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    sizes = []
    real = guard.lm.model.generate
    monkeypatch.setattr(guard.lm.model, "generate", lambda *a, **k: sizes.append(k["input_ids"].shape[0]) or real(*a, **k))
    before = len(list(AuditLog(guard.audit.path))) if guard.audit.path.exists() else 0
    questions = [Q, "", "what is gold ?"]
    out = chat.batch(questions, return_exceptions=True) if how == "batch" else asyncio.run(
        chat.abatch(questions, return_exceptions=True))
    assert isinstance(out[1], InputError) and "question 1 of 3 (counting from 0): the question is empty" in str(out[1])
    assert [m.response_metadata["route"] for m in (out[0], out[2])] == ["accept", "accept"]
    new = list(AuditLog(guard.audit.path))[before:]
    assert sorted(r["kind"] for r in new) == ["decision", "decision", "error"], [(r["kind"], r.get("question")) for r in new]
    assert sizes == [2]
    assert not chat._precomputed


def test_a_refused_setting_is_recorded_whatever_the_message_holds_with_the_calls_context(make_guard):
    """seed= beside a message holding an image: the record's question was read with message_text, which raised on
    the image, so neither the record nor the TypeError reached anyone; a refusal's record left out context= (a
    reviewer's trial of the refusals on record)."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    with pytest.raises(TypeError, match="seed"):
        chat.invoke([HumanMessage(content=[{"type": "text", "text": Q}, image])], seed=1)
    with pytest.raises(TypeError, match="seed"):
        chat.invoke(Q, seed=1, context="gold is a metal")
    first, second = list(AuditLog(guard.audit.path))
    assert first["error_type"] == second["error_type"] == "TypeError" and Q in first["question"]
    assert second["context"] == "gold is a metal"


@pytest.mark.parametrize("how", ["batch", "abatch"])
def test_a_batch_refused_by_its_settings_or_a_chat_records_each_refusal_once(make_guard, how):
    """A refused setting (temperature=0.5) or a chat the guard cannot read was recorded by the batch's reading of its
    inputs and again by each input's own run: two InputErrors, three error records (a finance firm's trial)."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    before = len(list(AuditLog(guard.audit.path))) if guard.audit.path.exists() else 0

    def run(inputs, **kw):
        return chat.batch(inputs, return_exceptions=True, **kw) if how == "batch" else asyncio.run(
            chat.abatch(inputs, return_exceptions=True, **kw))

    out = run([Q, "what is gold ?"], temperature=0.5)
    assert all(isinstance(o, InputError) for o in out)
    out = run([Q, [SystemMessage("no question")]])
    assert isinstance(out[1], InputError) and out[0].response_metadata["route"] == "accept"
    new = list(AuditLog(guard.audit.path))[before:]
    assert sorted(r["kind"] for r in new) == ["decision", "error", "error", "error"], [(r["kind"], r.get("question")) for r in new]


@pytest.mark.parametrize("how", ["batch", "abatch"])
def test_batch_with_a_bad_input_answers_nothing_without_return_exceptions(make_guard, how):
    """A batch is answered whole or not at all: the other questions were answered one by one after the refusal, so
    the log held decisions nobody received (and the bad input twice); the error names the bad input's index."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    before = len(list(AuditLog(guard.audit.path))) if guard.audit.path.exists() else 0
    with pytest.raises(InputError, match=r"question 1 of 3 \(counting from 0\): the question is empty"):
        if how == "batch":
            chat.batch([Q, "", "what is gold ?"])
        else:
            asyncio.run(chat.abatch([Q, "", "what is gold ?"]))
    new = list(AuditLog(guard.audit.path))[before:]
    assert [r["kind"] for r in new] == ["error"], [(r["kind"], r.get("question")) for r in new]


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
def test_a_refusal_the_guard_makes_of_a_single_call_is_recorded_as_chathguards(make_guard, how):
    """A single call the guard itself refuses (a stop sequence it refuses, an empty question, a prompt longer than the
    model's window) was recorded with source "api", as if the guard had been called directly, where a batch's same
    refusal reads "ChatHGuard"; its record names the call's run. Nothing is generated."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    long = " ".join(["gold"] * (guard.generator.context_limit + 1))

    def call(q: str, **kw: Any) -> Any:
        if how == "invoke":
            return chat.invoke(q, **kw)
        if how == "ainvoke":
            return asyncio.run(chat.ainvoke(q, **kw))
        if how == "stream":
            return list(chat.stream(q, **kw))

        async def chunks() -> list[Any]:
            return [c async for c in chat.astream(q, **kw)]
        return asyncio.run(chunks())

    for q, kw, words in ((Q, {"stop": [""]}, "stop must be a list of non-empty strings"),
                         ("", {}, "the question is empty"), (long, {}, "over the model's context")):
        rid = uuid.uuid4()
        before = len(list(AuditLog(guard.audit.path)))
        with pytest.raises(InputError, match=words) as err:
            call(q, config={"run_id": rid}, **kw)
        new = list(AuditLog(guard.audit.path))[before:]
        assert [(r["kind"], r["source"]) for r in new] == [("error", "ChatHGuard")], new
        assert new[0]["id"] == err.value.audit_id and new[0]["run_id"] == str(rid)


@pytest.mark.parametrize("how", ["batch", "abatch"])
def test_a_refusal_the_guard_makes_in_a_batch_is_recorded_as_chathguards(make_guard, how):
    """A refusal made inside Guard.batch (an empty question, a prompt longer than the model's window) was recorded
    with source "api", as if the guard had been called directly, where the same refusal of an invoke reads
    "ChatHGuard" (a bad-input trial); its record names the input's run. Otherwise as before: with
    return_exceptions the others are answered, without it nothing is."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    long = " ".join(["gold"] * (guard.generator.context_limit + 1))
    inputs, rid = [Q, "", long], uuid.uuid4()
    configs = [{}, {"run_id": rid}, {}]
    out = chat.batch(inputs, configs, return_exceptions=True) if how == "batch" else asyncio.run(
        chat.abatch(inputs, configs, return_exceptions=True))
    assert out[0].response_metadata["route"] == "accept"
    log = AuditLog(guard.audit.path)
    for i, words in ((1, "question 1 of 3 (counting from 0): the question is empty"),
                     (2, "question 2 of 3 (counting from 0): ")):
        assert isinstance(out[i], InputError) and words in str(out[i]) and "\n" not in str(out[i])
        rec = log.find(out[i].audit_id)
        assert rec["kind"] == "error" and rec["source"] == "ChatHGuard", rec
    assert "over the model's context" in str(out[2]) and log.find(out[1].audit_id)["run_id"] == str(rid)
    before = len(list(log))
    with pytest.raises(InputError, match=r"question 1 of 2 \(counting from 0\): the question is empty") as err:
        chat.batch([Q, ""]) if how == "batch" else asyncio.run(chat.abatch([Q, ""]))
    new = list(AuditLog(guard.audit.path))[before:]
    assert [(r["kind"], r["source"]) for r in new] == [("error", "ChatHGuard")] and new[0]["id"] == err.value.audit_id


@pytest.mark.parametrize("how", ["batch", "abatch"])
def test_a_batch_that_raises_on_one_answer_says_its_other_decided_answers_were_never_delivered(make_guard, how):
    """raise_on in a batch: every answer is decided in one generation, then the first held one raises and the caller
    gets none of the others (new-user trial: an accept nobody received stood in the log as an ordinary decision)."""
    from hguard.errors import NeedsReviewError

    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha", raise_on={"review"})
    rid = uuid.uuid4()
    with pytest.raises(NeedsReviewError) as err:
        if how == "batch":
            chat.batch([Q, "what is gold ?", "what is iron ?"], [{}, {"run_id": rid}, {}])
        else:
            asyncio.run(chat.abatch([Q, "what is gold ?", "what is iron ?"], [{}, {"run_id": rid}, {}]))
    records = list(AuditLog(guard.audit.path))
    decisions = [r for r in records if r["kind"] == "decision"]
    said = [r for r in records if r["kind"] == "answer_not_delivered"]
    assert len(decisions) == 3 and decisions[0]["id"] == err.value.audit_id  # the raised one carries its decision
    assert [r["decision_audit_id"] for r in said] == [d["id"] for d in decisions[1:]]
    assert all("input 0 of the same batch raised NeedsReviewError" in r["why"] for r in said)
    assert said[0]["run_id"] == str(rid) == decisions[1]["run_id"]
    # each input was given its run id before the batch decided (the run never started for the one after the raise)
    assert said[1]["run_id"] == decisions[2]["run_id"] not in (None, str(rid))
    # with return_exceptions every answer reaches the caller (as its error): nothing is said undelivered
    out = chat.batch([Q, "what is gold ?"], return_exceptions=True)
    assert all(isinstance(x, NeedsReviewError) for x in out)
    assert sum(r["kind"] == "answer_not_delivered" for r in AuditLog(guard.audit.path)) == 2


def test_async_invoke_and_batch(make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")

    async def main():
        one = await chat.ainvoke(Q, context="paris is the capital of france")
        many = await chat.abatch([Q, "what is gold ?"])
        return one, many

    one, many = asyncio.run(main())
    assert one.response_metadata["route"] == "accept" and _record(guard, one)["context"] == "paris is the capital of france"
    assert [m.response_metadata["route"] for m in many] == ["accept", "accept"]


@pytest.mark.timeout(300)
def test_from_policy_builds_the_guard(tiny_probes, policy_for, tmp_path):
    lm, probes = tiny_probes
    chat = ChatHGuard.from_policy(policy_for(probes, tmp_path), lm=lm, domain="alpha", stream_mode="passthrough")
    assert chat.stream_mode == "passthrough" and set(chat.guard.probes) == {"alpha", "beta"}
    assert chat._identifying_params["model_name"] == "tiny-llama" and chat._llm_type == "hguard"
    # a given domain and a context: grounding is scored without the guard creating its embedder itself
    assert chat.invoke(Q, context="gold is a metal").response_metadata["signals"]["grounding"] is not None


def test_prompt_template_pipeline_puts_the_system_message_in_context(make_guard):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    guard = make_guard("review")
    prompt = ChatPromptTemplate.from_messages([("system", "{context}"), ("human", "{question}")])
    chain = prompt | ChatHGuard(guard=guard, domain="alpha", system_as_context=True) | StrOutputParser()
    text = chain.invoke({"context": "gold is a metal", "question": Q})
    rec = list(AuditLog(guard.audit.path))[-1]
    assert text == REVIEW_MARK + rec["answer"] and rec["context"] == "gold is a metal" and rec["question"] == Q


def test_every_call_is_decided_anew_even_with_a_global_cache(make_guard):
    """A LangChain cache (set_llm_cache) must not hand back an earlier accept: each answer is decided under the
    policy, log and monitor state of its own call; a cache passed to ChatHGuard is refused."""
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import set_llm_cache

    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    set_llm_cache(InMemoryCache())
    try:
        first, second = chat.invoke(Q), chat.invoke(Q)
    finally:
        set_llm_cache(None)
    assert first.response_metadata["audit_id"] != second.response_metadata["audit_id"]
    assert sum(r["kind"] == "decision" for r in AuditLog(guard.audit.path)) == 2
    for cache in (True, None, InMemoryCache()):
        with pytest.raises(ValueError, match="cannot use a LangChain cache"):
            ChatHGuard(guard=guard, cache=cache)
    # set afterwards (an assignment, model_copy skip validation): refused when called, nothing answered
    set_llm_cache(InMemoryCache())
    try:
        for late in (chat.model_copy(update={"cache": True}), chat.model_copy()):
            late.cache = True
            with pytest.raises(ValueError, match="cannot use a LangChain cache"):
                late.invoke(Q)
            with pytest.raises(ValueError, match="cannot use a LangChain cache"):
                asyncio.run(late.ainvoke(Q))
    finally:
        set_llm_cache(None)
    assert sum(r["kind"] == "decision" for r in AuditLog(guard.audit.path)) == 2


def test_with_retry_keeps_each_inputs_own_outcome_and_does_not_retry_a_route(make_guard):
    """langchain-core's RunnableRetry.batch handed a held input another input's accepted answer
    (langchain-ai/langchain#35475); ChatHGuard.with_retry keeps each input's own outcome, does not retry the guard's
    routes (the same greedy answer, queued again), says a raising batch's other answers undelivered, and still
    retries other errors."""
    from hguard.errors import NeedsReviewError

    guard = make_guard("accept")
    held = [SystemMessage(content="answer in one word"), HumanMessage(content=Q)]  # another system prompt: review
    raising = ChatHGuard(guard=guard, domain="alpha", raise_on={"review"})
    retry = raising.with_retry(stop_after_attempt=3, wait_exponential_jitter=False)

    def records(kind):
        return [r for r in AuditLog(guard.audit.path) if r["kind"] == kind]

    for out in (retry.batch([Q, held], return_exceptions=True),
                asyncio.run(retry.abatch([Q, held], return_exceptions=True))):
        assert out[0].response_metadata["route"] == "accept" and isinstance(out[1], NeedsReviewError)
    assert [r["route"] for r in records("decision")] == ["accept", "review"] * 2  # the route was not retried
    assert not records("answer_not_delivered")
    once = raising.with_retry(stop_after_attempt=1).batch([Q, held], return_exceptions=True)
    assert isinstance(once[1], NeedsReviewError)  # LangChain's returned the accepted answer in both slots
    with pytest.raises(NeedsReviewError):
        retry.batch([Q, held])
    (said,) = records("answer_not_delivered")
    assert said["decision_audit_id"] == records("decision")[-2]["id"] and said["route"] == "accept"
    with pytest.raises(NeedsReviewError):
        asyncio.run(retry.abatch([Q, held]))
    assert len(records("answer_not_delivered")) == 2
    # a held input the raising batch never raised is undelivered too (only answers returned as messages were said)
    held2 = [SystemMessage(content="answer in one word"), HumanMessage(content=Q + " again")]
    with pytest.raises(NeedsReviewError):
        retry.batch([held, held2])
    said = records("answer_not_delivered")[-1]
    assert len(records("answer_not_delivered")) == 3 and said["route"] == "review"
    assert said["decision_audit_id"] == records("decision")[-1]["id"]
    # another error is retried, as LangChain's with_retry does
    real, failures = guard.batch, []

    def flaky(*a, **kw):
        if not failures:
            failures.append(1)
            raise RuntimeError("transient")
        return real(*a, **kw)

    guard.batch = flaky
    assert retry.invoke(Q).response_metadata["route"] == "accept" and failures == [1]
    with pytest.raises(NeedsReviewError):
        retry.invoke(held)
    assert [r["route"] for r in records("decision")][-2:] == ["accept", "review"]  # one review, not three
    with pytest.raises(InputError):  # a refusal is not retried either: one error record, not three
        retry.invoke("")
    assert len(records("error")) == 1
    # nor a wrong keyword or a missing feature; and one exception class given alone is read as that class (a class is
    # callable: it was called as a predicate, so every error was retried)
    one = raising.with_retry(retry_if_exception_type=ValueError)
    assert one._retryable(ValueError("x")) and not one._retryable(RuntimeError("x"))
    listed = raising.with_retry(retry_if_exception_type=[ValueError, KeyError])  # a list, as pydantic read it before
    assert listed._retryable(KeyError("x")) and not listed._retryable(RuntimeError("x"))
    assert raising.with_retry(retry_if_exception_type=lambda e: "transient" in str(e))._retryable(RuntimeError("transient"))
    for bad in (None, "ValueError", [], [ValueError, "x"]):  # refused when the retry is built, not at the first error
        with pytest.raises(ValueError, match="retry_if_exception_type must be an exception class"):
            raising.with_retry(retry_if_exception_type=bad)
    assert not retry._retryable(TypeError("domian")) and not retry._retryable(NotImplementedError("tools"))
    for bad in (0, -1, 2.5, True):  # 0 retried for ever (tenacity never stops before attempt 0)
        with pytest.raises(ValueError, match=f"stop_after_attempt={bad!r}: give the number of attempts, 1 or more"):
            raising.with_retry(stop_after_attempt=bad)


def test_an_async_call_cancelled_stops_its_generation_or_is_recorded_unstarted(make_guard):
    """ChatHGuard.ainvoke/abatch cancelled while generating generated to the end for nobody; cancelled while waiting
    for a worker thread, they left no record at all (Guard.ainvoke did)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from hguard._guard_scoring import CANCELLED_HOLD

    guard = make_guard("accept", max_new_tokens=24)
    chat = ChatHGuard(guard=guard, domain="alpha")
    real = guard.generator.generate

    def slow(*a, **kw):  # each token takes a while, so that a cancel lands mid-answer
        crit = list(kw.get("stopping_criteria") or ())

        def wait(input_ids, scores, **k):
            time.sleep(0.05)
            import torch

            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

        return real(*a, **{**kw, "stopping_criteria": [wait, *crit]})

    guard.generator.generate = slow

    async def cancelled(call, after):
        task = asyncio.ensure_future(call)
        await asyncio.sleep(after)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    def records(kind):
        return [r for r in AuditLog(guard.audit.path) if r["kind"] == kind]

    asyncio.run(cancelled(chat.ainvoke(Q), 0.3))
    for _ in range(100):
        if records("answer_not_delivered"):
            break
        time.sleep(0.05)
    (decision,) = records("decision")
    assert decision["route"] == "review" and CANCELLED_HOLD in decision["reasons"]
    assert decision["signals"]["length"] < 24
    # under raise_on the cut answer comes back as a NeedsReviewError inside the worker: it was never said undelivered
    asyncio.run(cancelled(ChatHGuard(guard=guard, domain="alpha", raise_on={"review"}).ainvoke(Q + " held"), 0.3))
    for _ in range(100):
        if len(records("answer_not_delivered")) == 2:
            break
        time.sleep(0.05)
    assert [r["decision_audit_id"] for r in records("answer_not_delivered")] == [d["id"] for d in records("decision")]
    asyncio.run(cancelled(chat.abatch([Q, Q + " now"]), 0.3))
    for _ in range(100):
        if len(records("decision")) == 4 and len(records("answer_not_delivered")) == 4:
            break
        time.sleep(0.05)
    assert len(records("decision")) == 4 and all(CANCELLED_HOLD in d["reasons"] for d in records("decision"))

    async def queued(call):
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        blocker = asyncio.ensure_future(asyncio.to_thread(time.sleep, 1.0))  # the one worker is busy
        await asyncio.sleep(0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call, 0.2)
        await blocker

    async def read(stream):
        return [c async for c in stream]

    before = len(records("decision"))
    run_id = uuid.uuid4()
    asyncio.run(queued(chat.ainvoke(Q, config={"run_id": run_id}, context="gold is a metal")))
    (error,) = records("error")  # named by the call's run id, as its answer_not_delivered record would be (a bank's trial)
    assert error["run_id"] == str(run_id) and error["context"] == "gold is a metal"
    asyncio.run(queued(chat.abatch([Q, Q + " again"])))
    errors = records("error")
    assert [e["error_type"] for e in errors] == ["CancelledError"] * 3 and {e["source"] for e in errors} == {"ChatHGuard"}
    assert [e["question"] for e in errors] == [Q, Q, Q + " again"] and len(records("decision")) == before
    streamed_id = uuid.uuid4()  # a stream whose first step waited: it left no record, then none naming its run
    asyncio.run(queued(read(chat.astream(Q + " streamed", config={"run_id": streamed_id}))))
    assert [e["question"] for e in records("error")][-1] == Q + " streamed" and len(records("decision")) == before
    assert records("error")[-1]["run_id"] == str(streamed_id)


@pytest.mark.parametrize("how", ["chat.ainvoke", "rag.ainvoke", "chat.abatch"])
def test_a_call_cancelled_after_the_guard_decided_is_said_undelivered(make_guard, how):
    """Cancelled while LangChain runs its callbacks after the guard returned (a slow async tracer's on_llm_end under a
    timeout), or an abatch cancelled between its runs: every decided answer, none of which reached the caller, gets
    one answer_not_delivered record."""
    from langchain_core.callbacks import AsyncCallbackHandler

    from langchain_hguard import GuardedRAG

    guard = make_guard("accept")
    decided = asyncio.Event()

    class SlowTracer(AsyncCallbackHandler):
        async def on_llm_end(self, response, **kwargs):
            decided.set()
            await asyncio.sleep(30)

    class CancelAtSecondRun(AsyncCallbackHandler):
        runs = 0

        async def on_chat_model_start(self, serialized, messages, **kwargs):
            CancelAtSecondRun.runs += 1
            if CancelAtSecondRun.runs == 2:
                asyncio.current_task().cancel()

    chat = ChatHGuard(guard=guard, domain="alpha")

    async def main():
        if how == "chat.abatch":
            await chat.abatch([Q, Q + " now", Q + " again"], config={"callbacks": [CancelAtSecondRun()]})
            return
        config = {"callbacks": [SlowTracer()]}
        call = (chat.ainvoke(Q, config) if how == "chat.ainvoke" else
                GuardedRAG(llm=chat).ainvoke({"question": Q, "context": ["the author is x ."]}, config))
        task = asyncio.ensure_future(call)
        await decided.wait()
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    records = list(AuditLog(guard.audit.path))
    decisions = [r["id"] for r in records if r["kind"] == "decision"]
    said = [r for r in records if r["kind"] == "answer_not_delivered"]
    assert len(decisions) == (3 if how == "chat.abatch" else 1)
    assert sorted(r["decision_audit_id"] for r in said) == sorted(decisions)  # each once
    assert all("cancelled the request" in r["why"] for r in said)


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
def test_an_async_call_left_by_its_caller_is_said_undelivered(make_guard, how):
    """ainvoke, or astream in hold mode: a caller that times out before the answer arrives never gets the
    decision, and the log says so (the answer is generated in a worker thread, the event loop stays free); a
    call read to its end says nothing more, and a passthrough astream streams the text before its decision."""
    import time

    guard = make_guard("accept")
    real = guard.invoke

    def slow(*a, **kw):
        time.sleep(0.6)
        return real(*a, **kw)

    rid = uuid.uuid4()

    async def call(chat, config=None):
        return [await chat.ainvoke(Q, config)] if how == "ainvoke" else [c async for c in chat.astream(Q, config)]

    guard.invoke = slow
    chat = ChatHGuard(guard=guard, domain="alpha").with_config(callbacks=[HGuardAuditCallbackHandler.from_guard(guard)])
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(call(chat, {"run_id": rid}), 0.1))
    for _ in range(100):
        said = [r for r in AuditLog(guard.audit.path) if r["kind"] == "answer_not_delivered"]
        if said and (how == "ainvoke" or any(r["kind"] == "llm_call" for r in AuditLog(guard.audit.path))):
            break
        time.sleep(0.1)
    (decision,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    # cancelled before its answer began, the generation stopped at once: the cut answer is held, not accepted
    assert [r["decision_audit_id"] for r in said] == [decision["id"]] and said[0]["route"] == "review"
    assert "cancelled the request" in said[0]["why"]
    # the call's llm_call record, written as failed before the guard decided, is joined to it by the run id (a
    # cancelled ainvoke's too: langchain-core's agenerate does not report a cancel to the callbacks, ChatHGuard does)
    calls = [r for r in AuditLog(guard.audit.path) if r["kind"] == "llm_call"]
    assert len(calls) == 1 and said[0]["run_id"] == str(rid)
    for failed in calls:
        assert failed["status"] == "error" and failed.get("decision_audit_id") is None and said[0]["run_id"] == failed["run_id"]
    chat = ChatHGuard(guard=guard, domain="alpha")
    guard.invoke = real
    assert asyncio.run(call(chat))[-1].response_metadata["route"] == "accept"  # delivered: nothing more said
    if how == "astream":
        passthrough = asyncio.run(call(ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough")))
        assert len(passthrough) >= 2 and passthrough[-1].response_metadata["route"] == "accept"
        assert "".join(c.content for c in passthrough[:-1]).strip()
    assert sum(r["kind"] == "answer_not_delivered" for r in AuditLog(guard.audit.path)) == 1


def test_a_passthrough_stream_closed_early_names_its_run_beside_the_decision_it_never_delivered(make_guard):
    """A reader that stops a passthrough stream after its first tokens: LangChain writes the call's llm_call
    record as failed (GeneratorExit) at once, before the guard has decided; the decision follows, then the
    answer_not_delivered record, which names the call's run id so an auditor can join the three."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough", max_tokens=6)
    stream = chat.stream(Q, config={"callbacks": [handler]})
    assert next(stream).content
    stream.close()
    records = list(AuditLog(guard.audit.path))
    (call,) = [r for r in records if r["kind"] == "llm_call"]
    (decision,) = [r for r in records if r["kind"] == "decision"]
    (said,) = [r for r in records if r["kind"] == "answer_not_delivered"]
    assert call["status"] == "error" and call["error"].startswith("GeneratorExit")
    assert said["decision_audit_id"] == decision["id"] and said["run_id"] == call["run_id"]
    assert "chunk(s) of passthrough text" in said["why"]


def test_a_hold_stream_left_once_its_decision_arrived_is_joined_to_that_decision(make_guard):
    """A client that leaves right after the routed answer closes the stream: its llm_call record read as a failed
    call (GeneratorExit) that named no decision, although the decision had been delivered."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard, domain="alpha")
    stream = chat.stream(Q, config={"callbacks": [handler]})
    got = next(stream)
    stream.close()
    records = list(AuditLog(guard.audit.path))
    (call,) = [r for r in records if r["kind"] == "llm_call"]
    (decision,) = [r for r in records if r["kind"] == "decision"]
    assert got.response_metadata["audit_id"] == decision["id"]
    assert call["error"].startswith("GeneratorExit") and call["decision_audit_id"] == decision["id"]
    assert call["decision_streamed"] is True and call["hguard"]["route"] == "accept"
    assert not [r for r in records if r["kind"] == "answer_not_delivered"]
    whole = chat.invoke(Q, config={"callbacks": [handler]})  # a call that ends as usual carries no note of the handler's
    (last,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "llm_call" and r["decision_audit_id"] ==
               whole.response_metadata["audit_id"]]
    assert last["status"] == "ok" and "_streamed" not in last and "decision_streamed" not in last


@pytest.mark.parametrize("settings, words", [
    ({"domain": 5}, "ChatHGuard: domain=5: Input should be a valid string; name a domain of the policy"),
    ({"guard": None}, "ChatHGuard: guard=None: Input should be an instance of Guard; pass the hguard Guard"),
    ({"raise_on": "reviews"}, "ChatHGuard: raise_on='reviews': raise_on may hold 'abstain' and 'review', got ['reviews']"),
    ({"stream_mode": "held"}, "ChatHGuard: stream_mode='held': Input should be 'hold' or 'passthrough'; pass 'hold'"),
    # a bool setting given as text was coerced (early_stop="yes" taken as True, "1" too): strict, as HGuardCheck's served
    ({"early_stop": "yes"}, "ChatHGuard: early_stop='yes': Input should be a valid boolean; pass True or False"),
    ({"early_stop": 1}, "ChatHGuard: early_stop=1: Input should be a valid boolean; pass True or False"),
    ({"system_as_context": "false"}, "ChatHGuard: system_as_context='false': Input should be a valid boolean; pass True"),
])
def test_a_bad_setting_is_refused_in_one_line_naming_it_and_the_fix(make_guard, settings, words):
    """A bad-input trial: `ChatHGuard(guard=g, domain=5)`, `guard=None`, `raise_on="reviews"` raised pydantic's
    four-line ValidationError with a URL and no fix, where HGuardCheck's settings get hguard's one line."""
    with pytest.raises(ValueError) as err:  # an InputError, a ValueError still (existing `except ValueError` code)
        ChatHGuard(**{"guard": make_guard("accept"), **settings})
    assert isinstance(err.value, InputError) and str(err.value).startswith(words) and "\n" not in str(err.value)


def test_a_misspelt_setting_is_refused_not_ignored(make_guard):
    """ChatHGuard(domian=...) was ignored (the domain then chosen by similarity), raise_ons= left raise_on empty, and
    model="gpt-4o" was taken; the settings hosted models take and a local one does not use are still accepted."""
    from pydantic import ValidationError

    from langchain_hguard import GuardedRAG

    guard = make_guard("accept")
    for kwargs, said in (({"domian": "alpha"}, "ChatHGuard has no setting(s) ['domian']; did you mean 'domain' for 'domian'?"),
                         ({"raise_ons": {"review"}}, "did you mean 'raise_on' for 'raise_ons'?"),
                         ({"model": "gpt-4o"}, "got model='gpt-4o'; leave model out")):
        with pytest.raises(InputError, match=re.escape(said)):  # one line (a ValueError still), not pydantic's four
            ChatHGuard(guard=guard, **kwargs)
    with pytest.raises(ValidationError, match=re.escape("GuardedRAG has no setting(s) ['domian']; did you mean 'domain'")):
        GuardedRAG(llm=ChatHGuard(guard=guard), domian="alpha")
    chat = ChatHGuard(guard=guard, domain="alpha", timeout=60, max_retries=2, api_key="unused", model=guard.lm.name)
    assert chat.invoke(Q).response_metadata["route"] == "accept"


@pytest.mark.parametrize("chat, says", [
    ([AIMessage(content="Canberra.")], "needs a human message holding the question"),
    ([], "needs a human message holding the question"),
    ([HumanMessage(content="hi"), {"role": "tool", "content": "42", "tool_call_id": "t1"}, HumanMessage(content="and?")],
     "message 1 has role 'tool'"),
    # a trailing AI turn was left out of the prompt and the record without a word
    ([HumanMessage(content="Where is it?"), AIMessage(content="Sydney")], r"message\(s\) 1 \(ai\) come after it"),
])
@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_a_chat_chathguard_refuses_is_on_record_with_its_id_on_the_error(make_guard, chat, says, how):
    """A chat refused before the guard was asked (no question, a tool turn, a turn after the question) left nothing
    in the guard's audit log, while an empty question gets an error record; now each has one."""
    from langchain_core.messages import ToolMessage

    guard = make_guard("review")
    messages = [ToolMessage(content=m["content"], tool_call_id=m["tool_call_id"]) if isinstance(m, dict) else m for m in chat]
    model = ChatHGuard(guard=guard, domain="alpha")
    with pytest.raises(InputError, match=says) as err:
        model.invoke(messages) if how == "invoke" else list(model.stream(messages))
    (rec,) = list(AuditLog(guard.audit.path))
    assert rec["kind"] == "error" and rec["id"] == err.value.audit_id and rec["source"] == "ChatHGuard"
    assert rec["error_type"] == "InputError" and re.search(says, rec["error"])


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke"])
def test_a_call_chathguard_refuses_keeps_its_run_id_on_its_error_record(make_guard, how):
    """A review's finding: the guard's own refusals kept the run_id of the run that asked, but the calls ChatHGuard
    refuses before the guard (a setting it does not support, another model, an unknown keyword, a chat it cannot read)
    wrote error records without it, so `hguard audit show --id RUN` found none of them."""

    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha")
    calls = [((Q,), {"temperature": 0.7}), ((Q,), {"max_tokens": 0}), ((Q,), {"model": "gpt-4o"}), ((Q,), {"seed": 1}),
             (([AIMessage(content="Canberra.")],), {})]
    runs = []
    for args, kw in calls:
        run = uuid.uuid4()
        runs.append(str(run))
        with pytest.raises((InputError, TypeError, ValueError)):
            if how == "invoke":
                chat.invoke(*args, config={"run_id": run}, **kw)
            elif how == "stream":
                list(chat.stream(*args, config={"run_id": run}, **kw))
            else:
                asyncio.run(chat.ainvoke(*args, config={"run_id": run}, **kw))
    recs = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in recs] == ["error"] * len(calls)
    assert [r.get("run_id") for r in recs] == runs


def test_from_policy_answers_with_the_policys_model_unless_another_is_named(models_from_policy):
    """ChatHGuard.from_policy passed model="default" on, which overrides the policy's `model`: a team's Gemma policy
    was answered by the default model (every answer to review as calibrated for another model)."""
    assert models_from_policy(ChatHGuard) == [None, "other.gguf"]


def test_a_query_is_the_question_only_where_the_template_asks_it():
    """``asks`` (messages built by hand, no prompt template's values known): the retriever's query is the question
    where it stands as a field of its own; a keyword inside a passage or inside the user's sentence is not."""
    from langchain_hguard.chat_models import asks

    rag = "Use the context.\nQuestion: {q} \nContext: \n \nAnswer:"
    for template in (rag, "**Question:** {q}\nAnswer:", "[QUESTION] {q}", "`{q}`", "Question : « {q} »",
                     "\u8cea\u554f\uff1a{q}", "<question>{q}</question>", 'Q: "{q}"', "Answer the question. {q}"):
        assert asks("Which river flows through Khartoum?", template.format(q="Which river flows through Khartoum?")), template
    assert asks("capital of Kenya", rag.format(q="capital   of\nKenya"))  # spacing as the template wrote it
    assert asks("capital of Kenya", 'Answer "capital of Kenya" from the context') is False  # mid-sentence
    for keyword, sentence in (("Nile", "Where do the two branches of the Nile meet?"), ("Kenya", "What is the capital of Kenya?"),
                              ("Canberra", 'what does "Canberra" mean ?'), ("Canberra", "Canberra, is it the largest city ?"),
                              ("Nairobi", "Nairobi's population, how large is it ?"),
                              ("largest city?", "is the kenyan capital its largest city?"), ("Nile", "(Nile) meet?")):
        assert not asks(keyword, rag.format(q=sentence)), (keyword, sentence)
    assert not asks("", rag.format(q="")) and not asks("Nile", "")


@pytest.mark.parametrize("how", ["batch", "abatch"])
def test_a_batch_failing_as_a_whole_returns_its_error_in_each_slot_when_asked(make_guard, monkeypatch, how):
    """A platform team's trial: with the audit log's folder read-only, batch(..., return_exceptions=True) raised the
    AuditError instead of returning a list (LangChain's contract; the adapter's README recommends the flag)."""
    from hguard.errors import AuditError

    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")

    def refused(*a, **k):
        raise AuditError("cannot open audit log: Read-only file system")

    monkeypatch.setattr(guard, "batch", refused)
    questions = [Q, "what is gold ?"]
    out = chat.batch(questions, return_exceptions=True) if how == "batch" else asyncio.run(
        chat.abatch(questions, return_exceptions=True))
    assert len(out) == 2 and all(isinstance(o, AuditError) for o in out), out
    with pytest.raises(AuditError):
        chat.batch(questions) if how == "batch" else asyncio.run(chat.abatch(questions))
    assert not chat._precomputed


@pytest.mark.parametrize("raise_it", [False, True])
def test_a_batch_recorded_part_way_delivers_or_says_undelivered_each_recorded_answer(make_guard, monkeypatch, raise_it):
    """A review: the audit log refused the second decision of two; the first, recorded as accept, was put in no slot
    and never said undelivered (the log showed an accept nobody received)."""
    from hguard.errors import AuditError

    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    real, seen = guard.audit.append, []

    def second_fails(record, *, kind="decision"):
        if kind == "decision":
            seen.append(1)
            if len(seen) == 2:
                raise AuditError("audit log locked past its timeout")
        return real(record, kind=kind)

    monkeypatch.setattr(guard.audit, "append", second_fails)
    if raise_it:
        with pytest.raises(AuditError, match="1 of the batch's 2 answers had been recorded"):
            chat.batch([Q, "what is gold ?"])
    else:
        out = chat.batch([Q, "what is gold ?"], return_exceptions=True)
        assert out[0].response_metadata["route"] == "accept" and isinstance(out[1], AuditError), out
    records = list(AuditLog(guard.audit.path))
    decisions = [r for r in records if r["kind"] == "decision"]
    undelivered = [r for r in records if r["kind"] == "answer_not_delivered"]
    assert len(decisions) == 1
    assert [u["decision_audit_id"] for u in undelivered] == ([decisions[0]["id"]] if raise_it else [])
    if not raise_it:  # a review: with a refused input beside them, the others' batch is answered again
        seen.clear()
        out = chat.batch(["", Q, "what is gold ?"], return_exceptions=True)  # refused first: the others' indices move
        assert isinstance(out[0], InputError) and out[1].response_metadata["route"] == "accept", out
        assert isinstance(out[2], AuditError), out


def test_a_model_failing_mid_answer_leaves_an_error_record_for_every_async_call(make_guard, monkeypatch):
    """The model raised while it generated (a CUDA out-of-memory error) under ainvoke, a passthrough astream and an
    abatch: the calls raised, and the guard's log held no record of the requests (only the handler's llm_call)."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough")
    real = guard.generator.generate

    def failing(*a, streamer=None, **k):  # two tokens reach the stream, then the model fails
        if streamer is not None:
            streamer.on_finalized_text("at ")
            streamer.on_finalized_text("italy ")
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(guard.generator, "generate", failing)
    got: list[str] = []

    async def stream():
        async for m in chat.astream(Q, config={"callbacks": [handler]}):
            got.append(m.content)

    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        asyncio.run(chat.ainvoke(Q, config={"callbacks": [handler]}))
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        asyncio.run(stream())
    out = asyncio.run(chat.abatch([Q, "what is gold ?"], config={"callbacks": [handler]}, return_exceptions=True))
    assert got and all(isinstance(o, RuntimeError) for o in out), (got, out)
    assert out[0] is not out[1] and [o.audit_id for o in out] != [out[0].audit_id] * 2  # each input its own error
    records = list(AuditLog(guard.audit.path))
    errors = [r for r in records if r["kind"] == "error"]
    assert [(e["stage"], e["domain"], e["error_type"]) for e in errors] == [("generation", "alpha", "RuntimeError")] * 4
    assert [e["question"] for e in errors] == [Q, Q, Q, "what is gold ?"]
    calls = [r for r in records if r["kind"] == "llm_call"]  # the handler's record of each failed call names its own
    # (the abatch's two: every input's named the first input's error record, the one error object in every slot)
    assert [c["error_audit_id"] for c in calls] == [e["id"] for e in errors], calls
    assert [c["question"] for c in calls[2:]] == [Q, "what is gold ?"]
    assert not [r for r in records if r["kind"] in ("decision", "answer_not_delivered")]
    monkeypatch.setattr(guard.generator, "generate", real)


def test_a_call_interrupted_while_the_guard_chooses_its_domain_is_on_record(make_guard):
    """A Jupyter kernel interrupt (KeyboardInterrupt) while the guard's embedder chose the domain of a ChatHGuard call
    (25 s on a kernel's first question) left no error record: the guard's domain choice ran outside its try."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard)  # no domain: the guard chooses it
    real = guard.embedder

    class Interrupted:
        def encode(self, texts):
            if Q in texts:
                raise KeyboardInterrupt
            return real.encode(texts)

    guard._embedder = Interrupted()
    run = uuid.uuid4()
    with pytest.raises(KeyboardInterrupt) as info:
        chat.invoke(Q, config={"callbacks": [handler], "run_id": run})
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(chat.ainvoke(Q, config={"callbacks": [handler]}))
    with pytest.raises(KeyboardInterrupt):
        chat.batch(["what is gold ?", Q], config={"callbacks": [handler]})
    errors = [r for r in AuditLog(guard.audit.path) if r["kind"] == "error"]
    assert [(e["stage"], e["error_type"], e["question"]) for e in errors] == [
        ("domain_choice", "KeyboardInterrupt", Q), ("domain_choice", "KeyboardInterrupt", Q),
        ("not_started", "KeyboardInterrupt", "what is gold ?"), ("domain_choice", "KeyboardInterrupt", Q)]
    assert errors[0]["run_id"] == str(run) and info.value.audit_id == errors[0]["id"]
    assert not [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    guard._embedder = real


def test_a_batch_failing_after_one_answer_is_decided_names_each_inputs_own_record(make_guard, monkeypatch):
    """ChatHGuard.batch(return_exceptions=True) whose scoring raised on the second answer: both slots held the one
    error, naming the second input's error record, so the first input's llm_call record named another request's
    error instead of its own decision (said undelivered)."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard, domain="alpha")
    real, n = guard._finish, {"calls": 0}

    def finish(*a, **k):
        n["calls"] += 1
        if n["calls"] == 2:
            raise RuntimeError("scorer bug")
        return real(*a, **k)

    monkeypatch.setattr(guard, "_finish", finish)
    out = chat.batch([Q, "what is gold ?"], config={"callbacks": [handler]}, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in out) and out[0] is not out[1], out
    records = list(AuditLog(guard.audit.path))
    (decision,) = [r for r in records if r["kind"] == "decision"]
    (undelivered,) = [r for r in records if r["kind"] == "answer_not_delivered"]
    (error,) = [r for r in records if r["kind"] == "error"]
    assert undelivered["decision_audit_id"] == decision["id"] and error["question"] == "what is gold ?"
    first, second = [r for r in records if r["kind"] == "llm_call"]
    assert first["question"] == Q and first["decision_audit_id"] == decision["id"] and "error_audit_id" not in first
    assert second["question"] == "what is gold ?" and second["error_audit_id"] == error["id"]


def test_a_blank_system_message_is_refused_as_guard_invoke_refuses_a_blank_system(make_guard):
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    for content in ("", " \n "):
        with pytest.raises(InputError, match=r"ChatHGuard: system message 0 is blank .*leave it out"):
            chat.invoke([SystemMessage(content), HumanMessage(Q)])
    assert list(AuditLog(guard.audit.path))[-1]["kind"] == "error"


def test_a_blank_system_message_beside_named_context_is_refused_though_a_retriever_ran():
    """A second review: with a retriever in the run, a blank system message was checked only where the retriever's
    documents were found pasted, so beside passages given as a message named 'context' it was dropped silently. It is
    left unchecked only where no passage was given at all (a template around no passage)."""
    from langchain_core.documents import Document

    from langchain_hguard.chat_models import read_chat
    from langchain_hguard.retrieval import Retrieval

    doc = "Canberra is the capital of Australia. It was chosen as a compromise between Sydney and Melbourne."
    ran = (Retrieval(uuid.uuid4(), Q, (Document(page_content=doc),)),)
    for retrievals in ((), ran):
        with pytest.raises(InputError, match=r"ChatHGuard: system message 0 is blank .*leave it out"):
            read_chat([SystemMessage(" \n "), HumanMessage(doc, name="context"), HumanMessage(Q)], retrievals=retrievals)
    read = read_chat([SystemMessage(" \n "), HumanMessage(Q)], retrievals=ran)  # its documents pasted nowhere
    assert read.context_from is None and read.problems, read


def test_a_chat_message_is_named_by_its_own_role_and_read_as_its_kind_and_text_blocks_are_not_run_together(make_guard):
    """A trial: ChatMessage(role="developer") was refused as "has role 'chat'", a ChatMessage(role="user") question
    as "got roles ['chat']", and two text blocks were read as one run-together word ("capitalof")."""
    from langchain_core.messages import ChatMessage

    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    with pytest.raises(InputError, match="message 0 has role 'developer'"):
        chat.invoke([ChatMessage(role="developer", content="be brief"), HumanMessage(Q)])
    with pytest.raises(InputError, match=r"got roles \['developer'\]"):
        chat.invoke([ChatMessage(role="developer", content=Q)])
    out = chat.invoke([ChatMessage(role="user", content="what is gold ?"), ChatMessage(role="assistant", content="a metal"),
                       ChatMessage(role="user", content=Q)])
    rec = AuditLog(guard.audit.path).find(out.response_metadata["audit_id"])
    assert rec["question"] == Q and rec["history"] == [{"role": "user", "content": "what is gold ?"},
                                                       {"role": "assistant", "content": "a metal"}]
    out = chat.invoke([ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content=Q)])
    assert AuditLog(guard.audit.path).find(out.response_metadata["audit_id"])["generation"]["system_prompt"] == "be brief"
    out = chat.invoke([HumanMessage(content=[{"type": "text", "text": "who is the"}, {"type": "text", "text": "author ?"}])])
    assert AuditLog(guard.audit.path).find(out.response_metadata["audit_id"])["question"] == "who is the\nauthor ?"


@pytest.mark.parametrize("question", [
    "Which planet is the largest?\nA: Mars\nB: Jupiter\nC: Venus\nD: Earth",
    "Who wrote this verse?\nRoses are red,\nViolets are blue,\nSugar is sweet,\nAnd so are you.",
    "Why does this raise?\nx = f(a, b)\ny = g(c, d)\nz = h(e, k)",
])
def test_a_closed_book_question_with_options_a_verse_or_code_is_no_pasted_table(make_guard, question):
    """A review: a multiple-choice question's "A:"-"D:" options, a verse's lines ending in commas and a code snippet
    were read as a pasted table, so a closed-book answer went to review as "context not identified"."""
    meta = ChatHGuard(guard=make_guard("accept"), domain="alpha").invoke([HumanMessage(question)]).response_metadata
    assert meta["route"] == "accept", meta["reasons"]


def test_a_streamed_turn_kept_in_the_history_is_an_ai_message(make_guard):
    """RunnableWithMessageHistory keeps a stream() turn's AIMessageChunk: the next turn was refused ("message 4 has
    role 'AIMessageChunk' (tool calls are not supported ...)"). A chunk without tool calls is the AI's turn."""
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    guard = make_guard("accept", max_new_tokens=8)
    prompt = ChatPromptTemplate.from_messages([("system", "answer"), MessagesPlaceholder("history"), ("human", "{input}")])
    store: dict = {}
    chain = RunnableWithMessageHistory(prompt | ChatHGuard(guard=guard, domain="alpha"),
                                       lambda sid: store.setdefault(sid, InMemoryChatMessageHistory()),
                                       input_messages_key="input", history_messages_key="history")
    cfg = {"configurable": {"session_id": "s"}}
    chain.invoke({"input": Q}, cfg)
    list(chain.stream({"input": Q}, cfg))
    out = chain.invoke({"input": Q}, cfg)  # the history now holds a streamed chunk
    assert out.response_metadata["route"] in ("accept", "review")
    decisions = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert len(decisions) == 3 and decisions[-1]["generation"]["history_turns"] == 4


@pytest.mark.parametrize("return_exceptions", [False, True])
def test_a_batch_whose_spot_check_sink_raised_after_writing_records_each_input(tiny_probes, embedder, policy_for, tmp_path,
                                                                               return_exceptions):
    """A review: an AuditLog subclass whose mirror failed after super().append of the first accept's spot-check
    record. The guard read it as a log that had stopped: the other input got no record, and with return_exceptions
    the first input's slot delivered the accept while its error named no record. Each input is on record: the
    accept said undelivered (its slot's error names its decision), the other an error record (its slot's error names
    it)."""
    from hguard.errors import AuditError
    from hguard.guard import Guard

    class Mirrored(AuditLog):
        def append(self, record, *, kind="decision"):
            receipt = super().append(record, kind=kind)
            if kind == "spot_check":
                raise ConnectionError("acme-db: connection refused")
            return receipt

    lm, probes = tiny_probes
    pol = policy_for(probes, tmp_path)
    pol = pol.model_copy(update={"domains": {**pol.domains, "alpha": pol.domains["alpha"].model_copy(
        update={"spot_check_rate": 1.0})}})
    guard = Guard.from_policy(pol, lm=lm, embedder=embedder)
    guard.audit = Mirrored(guard.audit.path)
    chat = ChatHGuard(guard=guard, domain="alpha")
    if return_exceptions:
        out = chat.batch([Q, "what is gold ?"], return_exceptions=True)
        assert all(isinstance(o, AuditError) for o in out), out
    else:
        with pytest.raises(AuditError, match="the selection stands"):
            chat.batch([Q, "what is gold ?"])
    records = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in records] == ["decision", "spot_check", "answer_not_delivered", "error"], records
    decision, _, undelivered, error = records
    assert undelivered["decision_audit_id"] == decision["id"] and error["question"] == "what is gold ?"
    if return_exceptions:
        assert out[0].decision_audit_id == decision["id"] and out[1].audit_id == error["id"]


@pytest.mark.parametrize("value", ["no", 1, None])
def test_a_calls_early_stop_that_is_not_a_bool_is_refused_in_one_line(make_guard, value):
    """invoke(q, early_stop="no") was read with bool(): "no" ran as early_stop=True (the setting is strict, the call's
    keyword was not). Refused in one line naming the value and the fix, on record, before anything is generated; a
    bound one (chat.bind(early_stop=...)) too; True and False are taken as before."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha")
    for call in (lambda: chat.invoke(Q, early_stop=value), lambda: chat.bind(early_stop=value).invoke(Q)):
        with pytest.raises(InputError) as err:
            call()
        said = str(err.value)
        assert said.startswith(f"ChatHGuard: early_stop={value!r} is not True or False ({type(value).__name__}); pass "
                               "early_stop=True or early_stop=False, or leave it out for the setting's")
        assert "\n" not in said
        rec = AuditLog(guard.audit.path).find(err.value.audit_id)
        assert rec["kind"] == "error" and rec["source"] == "ChatHGuard"
    assert not [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]  # nothing generated
    assert chat.invoke(Q, early_stop=False).response_metadata["route"] == "accept"


def test_a_follow_up_after_a_held_turn_kept_in_the_history_is_held_naming_it(make_guard):
    """An HR trial kept the held "Sick leave: 10 days." in the chat history (as the passthrough notice is there for)
    and the follow-up built on it got no reason. The held turn's decision (``response_metadata``) or its shown text
    (the passthrough notice) is read: the follow-up is held for review, naming the held answer's record."""
    guard = make_guard("accept")
    chat = ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough")
    first = chat.invoke("capital of france ?")
    held = AIMessage("Sick leave: 10 days.", response_metadata={"route": "review", "audit_id": first.response_metadata["audit_id"]})
    said = "the history holds an answer hguard held for review"

    def follow_up(turn: AIMessage) -> AIMessage:
        return chat.invoke([HumanMessage("How many days of annual leave?"), turn, HumanMessage(Q)])

    msg = follow_up(held)
    reasons = msg.response_metadata["reasons"]
    assert msg.response_metadata["route"] == "review"
    assert any(r.startswith(f"{said} (record {first.response_metadata['audit_id']}) (history turn 1)") for r in reasons)
    reviewing = ChatHGuard(guard=make_guard("review"), domain="alpha", stream_mode="passthrough")
    streamed = "".join(c.content for c in reviewing.stream([HumanMessage("How many days of annual leave?")]))
    assert streamed.endswith("]") and "\n\n[" in streamed  # held: the stream ends in its notice
    msg = follow_up(AIMessage(streamed))  # the text the user was shown, kept without its metadata
    assert any(r.startswith(f"{said} (history turn 1)") for r in msg.response_metadata["reasons"])
    plain = follow_up(AIMessage("Sick leave: 10 days."))  # an answer not hguard's held one: no such reason
    assert not any(r.startswith(said) for r in plain.response_metadata["reasons"])
    accepted = follow_up(AIMessage("30 days.", response_metadata={"route": "accept", "audit_id": "x"}))
    assert not any(r.startswith(said) for r in accepted.response_metadata["reasons"])
