"""HGuardLLM on a tiny calibrated model: completion, chat, streaming (hold / passthrough), async, and
metadata; the decision rides in additional_kwargs and matches the guard's audit record."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from hguard.audit import AuditLog
from hguard.errors import InputError, NeedsReviewError
from llama_index.core.base.llms.types import AudioBlock, ImageBlock, TextBlock
from hguard.guard import REVIEW_MARK
from hguard.testing import shown_answer, undelivered_call
from llama_index.llms.hguard import HGuardLLM

Q = "who is the author of the book ?"
DECISION = ("route", "risk", "signals", "reasons", "audit_id", "domain")


def _record(guard, kwargs: dict) -> dict:
    rec = AuditLog(guard.audit.path).find(kwargs["audit_id"])
    assert rec is not None and rec["kind"] == "decision"
    return rec


@pytest.mark.parametrize("route", ["accept", "review", "abstain"])
def test_complete_text_is_the_display_text_and_the_decision_is_attached(make_guard, route):
    guard = make_guard(route)
    r = HGuardLLM(guard, domain="alpha").complete(Q)
    meta = r.additional_kwargs
    assert all(k in meta for k in DECISION) and meta["route"] == route and meta["domain"] == "alpha"
    rec = _record(guard, meta)
    expected = {"accept": shown_answer(rec), "review": REVIEW_MARK + rec["answer"], "abstain": guard.policy.abstain_message}
    assert r.text == expected[route] and rec["question"] == Q


def test_metadata_context_and_domain(make_guard):
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    md = llm.metadata
    assert (md.context_window, md.num_output, md.model_name, md.is_chat_model) == (256, 4, "tiny-llama", False)
    r = llm.complete(Q, context=["paris is the capital of france", "gold is a metal"], domain="beta")
    rec = _record(guard, r.additional_kwargs)
    assert rec["context"] == "paris is the capital of france\n\ngold is a metal" and rec["domain"] == "beta"
    assert r.additional_kwargs["signals"]["grounding"] is not None
    with pytest.raises(TypeError, match="temperature"):
        llm.complete(Q, temperature=0.1)
    with pytest.raises(InputError):
        llm.complete("   ")


def test_chat_takes_the_last_user_message_and_system_context(make_guard):
    guard = make_guard("review")
    llm = HGuardLLM(guard, domain="alpha", system_as_context=True)
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="paris is the capital of france"),
        ChatMessage(role=MessageRole.USER, content="what is gold ?"),
        ChatMessage(role=MessageRole.ASSISTANT, content="a metal"),
        ChatMessage(role=MessageRole.USER, content=Q),
    ]
    r = llm.chat(messages)
    assert r.message.role == MessageRole.ASSISTANT and r.message.content.startswith(REVIEW_MARK)
    rec = _record(guard, r.message.additional_kwargs)
    assert rec["question"] == Q and rec["context"] == "paris is the capital of france"
    with pytest.raises(InputError, match="user message"):
        llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="no question")])


def test_stream_hold_yields_the_routed_text_once(make_guard):
    guard = make_guard("abstain")
    out = list(HGuardLLM(guard, domain="alpha").stream_complete(Q))
    assert len(out) == 1 and out[0].text == out[0].delta == guard.policy.abstain_message
    assert out[0].additional_kwargs["route"] == "abstain"


def test_stream_passthrough_yields_tokens_then_the_decision(make_guard):
    guard = make_guard("abstain")
    out = list(HGuardLLM(guard, domain="alpha", stream_mode="passthrough").stream_complete(Q))
    assert len(out) >= 3 and all(not r.additional_kwargs for r in out[:-1])
    last = out[-1]
    rec = _record(guard, last.additional_kwargs)
    # a held answer's stream ends saying so, in the text too: a chat engine keeps the streamed text as the
    # assistant's turn and drops the decision (a hospital's trial: a held dose kept in memory as if accepted)
    notice = "\n\n[" + guard.policy.abstain_message + "]"
    assert last.additional_kwargs["route"] == "abstain" and last.delta == notice
    assert last.text.removesuffix(notice).strip() == rec["answer"] == "".join(r.delta for r in out[:-1]).strip()
    assert last.text == "".join(r.delta for r in out)
    assert all(b.text.startswith(a.text) for a, b in zip(out, out[1:]))  # text accumulates


def test_stream_chat_and_async_forms(make_guard):
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha", stream_mode="passthrough")
    msgs = [ChatMessage(role=MessageRole.USER, content=Q)]
    chat_chunks = list(llm.stream_chat(msgs))
    assert chat_chunks[-1].message.additional_kwargs["route"] == "accept" and len(chat_chunks) > 1

    async def main():
        a = await llm.acomplete(Q, context="gold is a metal")
        b = await llm.achat(msgs)
        c = [r async for r in await llm.astream_complete(Q, stream_mode="hold")]
        d = [r async for r in await llm.astream_chat(msgs)]
        return a, b, c, d

    a, b, c, d = asyncio.run(main())
    assert _record(guard, a.additional_kwargs)["context"] == "gold is a metal"
    assert b.message.additional_kwargs["route"] == "accept"
    assert len(c) == 1 and c[0].additional_kwargs["route"] == "accept"
    assert len(d) > 1 and d[-1].message.additional_kwargs["route"] == "accept"



def test_a_react_agents_step_gets_a_held_answer_replaced_never_marked_or_streamed(make_guard):
    """A ReActAgent parses the reply: it kept the text after "Answer:" of a "[needs review] ..." step (the mark
    gone, the held answer returned as final) and ran the tool of a held "Action:" step, in hold mode without a
    review message and in passthrough."""
    from llama_index.core.agent.react.formatter import ReActChatFormatter
    from llama_index.core.agent.react.output_parser import ReActOutputParser
    from llama_index.core.tools import FunctionTool

    from hguard._guard_result import HELD_FOR_REVIEW

    def send_email(to: str) -> str:
        """Send an email."""
        return "sent"

    guard = make_guard("accept")  # the agent's own system prompt is not the calibration's: every step is held
    header = "Tools: {tool_desc}\nReply with Thought:, then Action: ({tool_names}) and Action Input:, or Answer:."
    messages = ReActChatFormatter(system_header=header).format(  # the stock header is longer than the tiny model reads
        [FunctionTool.from_defaults(fn=send_email)], [ChatMessage(role=MessageRole.USER, content=Q)])
    for mode in ("hold", "passthrough"):
        llm = HGuardLLM(guard, domain="alpha", stream_mode=mode)
        r = llm.chat(messages)
        assert r.message.additional_kwargs["route"] == "review" and r.message.content == HELD_FOR_REVIEW
        assert _record(guard, r.message.additional_kwargs)["answer"] not in HELD_FOR_REVIEW
        chunks = list(llm.stream_chat(messages))  # held whatever the stream mode: an agent parses what it is streamed
        assert len(chunks) == 1 and chunks[0].message.content == chunks[0].delta == HELD_FOR_REVIEW
        step = ReActOutputParser().parse(r.message.content)  # the agent's final answer: no tool runs
        assert step.is_done and step.response == HELD_FOR_REVIEW
    # an agent driving the LLM by completion (its prompt formatted whole) is held the same way
    prompt = "Reply with Action: and Action Input: lines, or Answer:.\nQuestion: " + Q
    out = list(HGuardLLM(guard, domain="alpha", stream_mode="passthrough").stream_complete(prompt, formatted=True))
    assert len(out) == 1  # held, not streamed token by token, though passthrough was asked for
    route, answer = out[0].additional_kwargs["route"], _record(guard, out[0].additional_kwargs)["answer"]
    assert out[0].text == {"accept": answer, "review": HELD_FOR_REVIEW}.get(route, guard.policy.abstain_message)
    # a chat that is no agent's step keeps the policy's way of showing a held answer: marked
    plain = HGuardLLM(guard, domain="alpha").chat(
        [ChatMessage(role=MessageRole.SYSTEM, content="Answer briefly."), ChatMessage(role=MessageRole.USER, content=Q)])
    assert plain.message.additional_kwargs["route"] == "review" and plain.message.content.startswith(REVIEW_MARK)


def test_raise_on_raises_from_a_stream_when_the_decision_comes_before_any_text(make_guard):
    guard = make_guard("review")
    llm = HGuardLLM(guard, domain="alpha", raise_on={"review"})
    seen = []
    with pytest.raises(NeedsReviewError) as err:
        for r in llm.stream_complete(Q):
            seen.append(r)
    assert err.value.result.route == "review" and _record(guard, {"audit_id": err.value.result.audit_id})
    assert seen == []  # no text escapes
    with pytest.raises(NeedsReviewError):
        list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content=Q)]))

    async def consume():
        return [r async for r in await llm.astream_complete(Q)]

    with pytest.raises(NeedsReviewError):
        asyncio.run(consume())
    assert list(HGuardLLM(guard, domain="alpha", raise_on={"abstain"}).stream_complete(Q))[-1] \
        .additional_kwargs["route"] == "review"  # a route not in raise_on streams as before


def test_passthrough_streaming_beside_raise_on_is_refused(make_guard):
    guard = make_guard("review")
    with pytest.raises(ValueError, match="stream_mode='hold'"):
        HGuardLLM(guard, stream_mode="passthrough", raise_on={"review"})
    with pytest.raises(ValueError, match="passthrough"):
        HGuardLLM(guard, raise_on={"abstain"}).stream_complete(Q, stream_mode="passthrough")

@pytest.mark.timeout(300)
def test_from_policy_builds_the_guard(tiny_probes, policy_for, tmp_path):
    lm, probes = tiny_probes
    llm = HGuardLLM.from_policy(policy_for(probes, tmp_path), lm=lm, domain="alpha")
    assert set(llm.guard.probes) == {"alpha", "beta"} and llm.metadata.model_name == "tiny-llama"
    r = llm.complete(Q, context="gold is a metal")
    assert r.additional_kwargs["route"] == "accept" and r.additional_kwargs["signals"]["grounding"] is not None


def test_a_misspelt_setting_is_refused_not_ignored(make_guard):
    """HGuardLLM(guard, domian=...) was ignored, so the domain was chosen by similarity."""
    guard = make_guard("accept")
    with pytest.raises(ValueError, match=r"HGuardLLM has no setting\(s\) \['domian'\]; did you mean 'domain' for 'domian'\?"):
        HGuardLLM(guard, domian="alpha")
    assert HGuardLLM(guard, domain="alpha").domain == "alpha"


@pytest.mark.parametrize("guard, settings, words", [
    ("ok", {"domain": 5}, "HGuardLLM: domain=5: Input should be a valid string; name a domain of the policy"),
    (None, {}, "HGuardLLM: guard=None is not an hguard Guard; pass the hguard Guard"),
    ("ok", {"system_as_context": "maybe"}, "HGuardLLM: system_as_context='maybe': Input should be a valid boolean; "
                                           "pass True or False"),
    # a bool setting given as text was coerced (early_stop="yes" taken as True, "false" as False): strict
    ("ok", {"early_stop": "yes"}, "HGuardLLM: early_stop='yes': Input should be a valid boolean; pass True or False"),
    ("ok", {"system_as_context": "false"}, "HGuardLLM: system_as_context='false': Input should be a valid boolean; pass True"),
])
def test_a_bad_setting_is_refused_in_one_line_naming_it_and_the_fix(make_guard, guard, settings, words):
    """A bad-input trial: `HGuardLLM(guard, domain=5)` raised pydantic's four-line ValidationError with a URL and no
    fix, and `HGuardLLM(None)` was taken (it failed at the first question)."""
    with pytest.raises(ValueError) as err:  # an InputError, a ValueError still (existing `except ValueError` code)
        HGuardLLM(make_guard("accept") if guard == "ok" else guard, **settings)
    assert isinstance(err.value, InputError) and str(err.value).startswith(words) and "\n" not in str(err.value)


def test_a_stream_left_early_names_its_span_beside_the_decision_it_never_delivered(make_guard):
    """A passthrough stream closed after its first tokens: the audit handler writes the call's llm_call record as
    failed (GeneratorExit) before the guard has decided, so it cannot name the decision; the answer_not_delivered
    record names the call's span id, which that record carries, and joins the two (it named neither)."""
    from llama_index.core.instrumentation import get_dispatcher

    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    dispatcher = get_dispatcher()
    handler = HGuardAuditEventHandler.from_guard(guard)
    dispatcher.add_event_handler(handler)
    try:
        llm = HGuardLLM(guard, domain="alpha", stream_mode="passthrough")
        for start in (lambda: llm.stream_complete(Q), lambda: llm.stream_chat([ChatMessage(role=MessageRole.USER, content=Q)])):
            stream = start()
            next(stream)
            stream.close()
    finally:
        dispatcher.event_handlers.remove(handler)
    records = list(AuditLog(guard.audit.path))
    calls = [r for r in records if r["kind"] == "llm_call"]
    decisions = [r for r in records if r["kind"] == "decision"]
    said = [r for r in records if r["kind"] == "answer_not_delivered"]
    assert [c["status"] for c in calls] == ["error", "error"] and all(c["error"].startswith("GeneratorExit") for c in calls)
    assert [s["decision_audit_id"] for s in said] == [d["id"] for d in decisions]
    assert [s["run_id"] for s in said] == [c["span_id"] for c in calls]
    assert calls[0]["span_id"].startswith("HGuardLLM.stream_complete") and calls[1]["span_id"].startswith("HGuardLLM.stream_chat")


def _slow_guard(make_guard):
    """A guard whose every answer takes 0.6 s more: long enough for a caller's timeout to leave it. Its ``started``
    event is set when an answer's call has begun."""
    import threading
    import time

    guard = make_guard("accept")
    real = guard.invoke
    guard.started = threading.Event()

    def slow(*a, **kw):
        guard.started.set()
        time.sleep(0.6)
        return real(*a, **kw)

    guard.invoke = slow
    return guard


def _undelivered(guard) -> list:
    """The answer_not_delivered records, once the left call's work has ended and written one (up to 10 s)."""
    import time

    for _ in range(100):
        said = [r for r in AuditLog(guard.audit.path) if r["kind"] == "answer_not_delivered"]
        if said:
            return said
        time.sleep(0.1)
    return []


def test_an_acomplete_left_by_its_caller_names_its_span(make_guard):
    guard = _slow_guard(make_guard)
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(HGuardLLM(guard, domain="alpha").acomplete(Q), 0.1))
    said = _undelivered(guard)
    (decision,) = [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]
    assert [s["decision_audit_id"] for s in said] == [decision["id"]] and said[0]["run_id"].startswith("HGuardLLM.acomplete")


def test_a_query_left_by_its_caller_has_its_llm_call_and_query_records_written_as_failed(make_guard, tmp_path):
    """A trial's timed-out aquery: the answer_not_delivered record named the call's span, but no llm_call record (nor a
    query record) carried it, so the join the README promises found nothing."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.instrumentation import get_dispatcher

    from llama_index.llms.hguard import HGuardAuditEventHandler, HGuardEmbedding, HGuardQueryEngine

    guard = _slow_guard(make_guard)
    handler = HGuardAuditEventHandler.from_guard(guard)
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        index = VectorStoreIndex.from_documents([Document(text="Canberra is the capital of Australia.")],
                                                embed_model=HGuardEmbedding())
        engine = HGuardQueryEngine(index.as_retriever(), HGuardLLM(guard, domain="alpha"), audit_handler=handler)
        async def left_by_its_caller():
            # the caller's timeout runs out once the guard's call has begun (a timeout from the start ran out before
            # it, in the retrieval, on a loaded machine)
            task = asyncio.ensure_future(engine.aquery(Q))
            while not guard.started.is_set() and not task.done():
                await asyncio.sleep(0.02)
            await asyncio.wait_for(task, 0.1)

        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(left_by_its_caller())
        said = _undelivered(guard)
    finally:
        dispatcher.event_handlers.remove(handler)
    records = list(AuditLog(guard.audit.path))
    (call,) = [r for r in records if r["kind"] == "llm_call"]
    (query,) = [r for r in records if r["kind"] == "query"]
    assert call["status"] == query["status"] == "error" and call["error"].startswith("CancelledError")
    assert said[0]["run_id"] == call["span_id"]


def test_a_passthrough_stream_complete_ends_before_its_stop_sequence(make_guard):
    """stream_complete(..., stop=) in passthrough: the deltas and the last chunk's text held the stop sequence and
    what followed, while the decision record's answer ended before it."""
    guard = make_guard("review", max_new_tokens=12)
    llm = HGuardLLM(guard, domain="alpha", stream_mode="passthrough")
    notice = "\n\n[needs review]"  # a policy without review_message
    whole = list(llm.stream_complete(Q))[-1].text.removesuffix(notice)
    words = whole.split()
    assert len(words) >= 4, whole
    stop = " " + words[2][:3]
    out = list(llm.stream_complete(Q, stop=[stop]))
    assert out[-1].delta == notice  # held for review (a stop cut it), and said so
    shown = "".join(r.delta or "" for r in out[:-1])
    rec = AuditLog(guard.audit.path).find(out[-1].additional_kwargs["audit_id"])
    assert stop not in shown and stop not in out[-1].text and shown.strip() == rec["answer"].strip()


def test_a_hold_stream_left_once_its_decision_arrived_is_joined_to_that_decision(make_guard):
    """A client that reads a hold stream's only chunk (the routed answer) and breaks: the llm_call record read as a
    failed call (GeneratorExit) that named no decision, although the decision was delivered (LangChain's joins it)."""
    from llama_index.core.instrumentation import get_dispatcher

    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    dispatcher = get_dispatcher()
    handler = HGuardAuditEventHandler.from_guard(guard)
    dispatcher.add_event_handler(handler)
    try:
        llm = HGuardLLM(guard, domain="alpha")
        for start in (lambda: llm.stream_complete(Q), lambda: llm.stream_chat([ChatMessage(role=MessageRole.USER, content=Q)])):
            for _chunk in start():
                break
    finally:
        dispatcher.event_handlers.remove(handler)
    records = list(AuditLog(guard.audit.path))
    calls = [r for r in records if r["kind"] == "llm_call"]
    decisions = [r for r in records if r["kind"] == "decision"]
    assert len(calls) == 2 and [c["decision_audit_id"] for c in calls] == [d["id"] for d in decisions]
    assert all(c["decision_streamed"] is True and c["hguard"]["route"] == "accept" for c in calls)
    assert not any(r["kind"] == "answer_not_delivered" for r in records) and all("_streamed" not in r for r in records)


def test_from_policy_answers_with_the_policys_model_unless_another_is_named(models_from_policy):
    """HGuardLLM.from_policy passed model="default" on, which overrides the policy's `model`."""
    assert models_from_policy(HGuardLLM) == [None, "other.gguf"]


def test_acomplete_cancelled_stops_its_generation_or_is_recorded_unstarted(make_guard):
    """HGuardLLM.acomplete cancelled while generating generated to the end for nobody; cancelled while waiting for a
    worker thread, it left no record at all."""
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from hguard._guard_scoring import CANCELLED_HOLD

    guard = make_guard("accept", max_new_tokens=24)
    llm = HGuardLLM(guard, domain="alpha")
    real = guard.generator.generate

    def wait(input_ids, scores, **k):  # each token takes a while, so that a cancel lands mid-answer
        time.sleep(0.05)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    guard.generator.generate = lambda *a, **kw: real(*a, **{**kw, "stopping_criteria": [wait, *(kw.get("stopping_criteria") or ())]})

    def records(kind):
        return [r for r in AuditLog(guard.audit.path) if r["kind"] == kind]

    async def cancelled():
        task = asyncio.ensure_future(llm.acomplete("who is the author of the book ?"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    for _ in range(100):
        if records("answer_not_delivered"):
            break
        time.sleep(0.05)
    (decision,) = records("decision")
    assert decision["route"] == "review" and CANCELLED_HOLD in decision["reasons"] and decision["signals"]["length"] < 24

    async def queued():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        blocker = asyncio.ensure_future(asyncio.to_thread(time.sleep, 1.0))
        await asyncio.sleep(0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(llm.acomplete("who is the author of the book ?"), 0.2)
        await blocker

    asyncio.run(queued())
    (error,) = records("error")
    assert error["error_type"] == "CancelledError" and error["source"] == "HGuardLLM" and len(records("decision")) == 1
    assert error["run_id"].startswith("HGuardLLM.acomplete")  # the call's span, as an answer_not_delivered names it


def test_structured_output_is_refused_saying_so(make_guard):
    """structured_predict failed with LlamaIndex's "Could not extract json string" from a hold message, and
    as_structured_llm wrote three llm_call records for one call."""
    import asyncio

    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    class Capital(BaseModel):
        city: str

    llm = HGuardLLM(make_guard("review"), domain="alpha")
    prompt = PromptTemplate("What is the capital of {country}?")
    for call in (lambda: llm.structured_predict(Capital, prompt, country="Japan"),
                 lambda: asyncio.run(llm.astructured_predict(Capital, prompt, country="Japan")),
                 lambda: llm.stream_structured_predict(Capital, prompt, country="Japan"),
                 lambda: llm.as_structured_llm(Capital)):
        with pytest.raises(NotImplementedError, match="HGuardLLM has no structured output"):
            call()


@pytest.mark.parametrize("chat, says", [
    ([ChatMessage(role=MessageRole.ASSISTANT, content="Canberra.")], "needs a user message holding the question"),
    # a trailing assistant turn was left out of the prompt and the record without a word
    ([ChatMessage(role=MessageRole.USER, content="Where is it?"), ChatMessage(role=MessageRole.ASSISTANT, content="Sydney")],
     r"message\(s\) 1 \(assistant\) come after it"),
    # a picture or a recording was dropped and the text answered (and accepted) as if it were the whole question
    ([ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="Is the city in this photo the capital of Japan?"),
                                                 ImageBlock(url="https://example.com/osaka.png")])],
     r"reads text only: message 0 \(user\) holds ImageBlock; the guarded model cannot read it"),
    ([ChatMessage(role=MessageRole.SYSTEM, content="be brief"),
      ChatMessage(role=MessageRole.USER, blocks=[AudioBlock(audio=b"RIFF0000", format="wav")])],
     r"message 1 \(user\) holds AudioBlock"),
])
def test_a_chat_hguardllm_refuses_is_on_record_with_its_id_on_the_error(make_guard, chat, says):
    guard = make_guard("review")
    with pytest.raises(InputError, match=says) as err:
        HGuardLLM(guard, domain="alpha").chat(chat)
    (rec,) = list(AuditLog(guard.audit.path))
    assert rec["kind"] == "error" and rec["id"] == err.value.audit_id and rec["source"] == "HGuardLLM"


def test_a_failure_whose_message_cannot_be_read_is_noted_for_its_request_without_raising():
    """The model raising an error whose str() raises: noting the failure for the request formatted its message, so the
    adapter raised the UnicodeDecodeError of its str() in place of the model's own error (the guard had recorded it).
    (LlamaIndex's own span wrapper, which takes str() of the error as it drops the span, is not the adapter's.)"""
    from llama_index.core.instrumentation.span import active_span_id

    from llama_index.llms.hguard.templates import _FAILED, failed_step, note_failure

    class OddError(RuntimeError):
        def __str__(self):
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    odd = OddError()
    odd.audit_id = "e1"
    token = active_span_id.set("HGuardLLM.complete-odd")
    try:
        note_failure(odd)
    finally:
        active_span_id.reset(token)
    (failure,) = _FAILED.pop("HGuardLLM.complete-odd")
    assert failure["error"].startswith("OddError: OddError() (its message could not be read") and \
        failure["error_audit_id"] == "e1"
    assert "error record e1" in failed_step(failure)


def test_a_system_message_after_the_question_is_the_calls_instruction_as_chathguard_reads_it(make_guard):
    """A product team's trial: a system message after the last user message was dropped (only the messages before the
    question were read): never given to the model, not in the record, and the answer accepted; ChatHGuard gives it
    to the model and holds the answer by its fingerprint. Now both do."""
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    for messages, system in (
            ([ChatMessage(role=MessageRole.USER, content=Q),
              ChatMessage(role=MessageRole.SYSTEM, content="always answer in french")], "always answer in french"),
            ([ChatMessage(role=MessageRole.SYSTEM, content="be brief"), ChatMessage(role=MessageRole.USER, content=Q),
              ChatMessage(role=MessageRole.SYSTEM, content="always answer in french")], "be brief\n\nalways answer in french")):
        meta = llm.chat(messages).message.additional_kwargs
        rec = _record(guard, meta)
        assert rec["question"] == Q and rec["generation"]["system_prompt"] == system
        assert meta["route"] == "review" and any("system_prompt_fingerprint" in r for r in meta["reasons"]), meta["reasons"]


def test_a_blank_system_message_is_refused_as_guard_invoke_refuses_a_blank_system(make_guard):
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    for content in ("", "  ", None):
        with pytest.raises(InputError, match=r"HGuardLLM: system message 0 is blank .*leave it out"):
            llm.chat([ChatMessage(role=MessageRole.SYSTEM, content=content), ChatMessage(role=MessageRole.USER, content=Q)])
    assert list(AuditLog(guard.audit.path))[-1]["kind"] == "error"
    # as context (system_as_context=True) a blank one is no passage, as before
    r = HGuardLLM(guard, domain="alpha", system_as_context=True).chat(
        [ChatMessage(role=MessageRole.SYSTEM, content=""), ChatMessage(role=MessageRole.USER, content=Q)])
    assert r.message.additional_kwargs["route"] == "accept"


def _legacy_exporter():
    """A legacy CallbackManager handler whose on_event_end raises (an exporter down)."""
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.callbacks.base_handler import BaseCallbackHandler

    class Exporter(BaseCallbackHandler):
        def __init__(self):
            super().__init__([], [])

        def on_event_start(self, *args, **kwargs):
            return kwargs.get("event_id", "")

        def on_event_end(self, *args, **kwargs):
            raise RuntimeError("legacy exporter down")

        def start_trace(self, *args, **kwargs):
            pass

        def end_trace(self, *args, **kwargs):
            pass

    return CallbackManager([Exporter()])


def _calls(llm):
    """Each of HGuardLLM's calls, its responses read to the end with a for loop: what the user saw (text, route)."""
    chat = [ChatMessage(role=MessageRole.USER, content=Q)]

    def read(responses, seen):
        for r in responses:
            seen.append((r.delta, getattr(r, "message", r).additional_kwargs.get("route")))

    async def aread(responses, seen):
        async for r in await responses:
            seen.append((r.delta, getattr(r, "message", r).additional_kwargs.get("route")))

    return {"complete": lambda seen: llm.complete(Q), "chat": lambda seen: llm.chat(chat),
            "acomplete": lambda seen: asyncio.run(llm.acomplete(Q)), "achat": lambda seen: asyncio.run(llm.achat(chat)),
            "stream_complete": lambda seen: read(llm.stream_complete(Q), seen),
            "stream_chat": lambda seen: read(llm.stream_chat(chat), seen),
            "astream_complete": lambda seen: asyncio.run(aread(llm.astream_complete(Q), seen)),
            "astream_chat": lambda seen: asyncio.run(aread(llm.astream_chat(chat), seen))}


@pytest.mark.parametrize("how", ["complete", "chat", "acomplete", "achat"])
def test_a_legacy_callback_failing_after_the_decision_leaves_it_undelivered_and_the_call_failed(make_guard, root_handler,
                                                                                                how):
    """An observability team's trial: a legacy CallbackManager handler whose on_event_end raised (an exporter down).
    complete wrote an llm_call error with no decision_audit_id (the join lost) and did not say the accepted answer,
    which the caller never got, undelivered; a review found acomplete and achat unchanged. Now one llm_call per call,
    failed and joined to its decision, and an answer_not_delivered record naming the call's span."""
    from llama_index.core.callbacks import CallbackManager

    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    llm = HGuardLLM(guard, domain="alpha", callback_manager=_legacy_exporter())
    calls = _calls(llm)
    with pytest.raises(RuntimeError, match="legacy exporter down"):
        calls[how]([])
    decision, said, call = undelivered_call(guard.audit.path)
    assert said["run_id"] == call["span_id"] and call["status"] == "error" and "exporter down" in call["error"]
    # without the failing handler, the call is delivered: ok, joined, nothing said undelivered
    llm.callback_manager = CallbackManager([])
    calls[how]([])
    later = list(AuditLog(guard.audit.path))[3:]  # after the three records of the failed call
    assert [r["kind"] for r in later] == ["decision", "llm_call"]
    assert later[1]["status"] == "ok" and later[1]["decision_audit_id"] == later[0]["id"]


@pytest.mark.parametrize("how", ["stream_complete", "stream_chat", "astream_complete", "astream_chat"])
@pytest.mark.parametrize("mode", ["hold", "passthrough"])
def test_a_legacy_callback_failing_after_the_caller_took_the_decided_response_leaves_it_delivered(
        make_guard, root_handler, how, mode):
    """A review's finding: a consumer printed every streamed response, the decided one with its route included, then
    the legacy handler's on_event_end raised; the log said answer_not_delivered "so the caller got the error, not this
    answer" (the async streams wrote no llm_call at all). Once the caller took the decided response its decision was
    handed over: nothing said undelivered, and one llm_call, failed, joined to it with decision_streamed."""
    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    llm = HGuardLLM(guard, domain="alpha", stream_mode=mode, callback_manager=_legacy_exporter())
    seen: list = []
    with pytest.raises(RuntimeError, match="legacy exporter down"):
        _calls(llm)[how](seen)
    records = list(AuditLog(guard.audit.path))
    assert sorted(r["kind"] for r in records) == ["decision", "llm_call"]
    (decision,) = [r for r in records if r["kind"] == "decision"]
    (call,) = [r for r in records if r["kind"] == "llm_call"]
    assert seen[-1][1] == "accept" == decision["route"] and "".join(d for d, _ in seen) == shown_answer(decision)
    assert call["status"] == "error" and "exporter down" in call["error"]
    assert call["decision_audit_id"] == decision["id"] and call["decision_streamed"] is True


class _MirroredLog(AuditLog):
    """A user's audit sink: each record written to the log, then copied to a database that is down."""

    def append(self, record, *, kind="decision"):
        super().append(record, kind=kind)
        raise ConnectionError("acme-db: connection refused")


def test_an_llm_call_record_written_before_the_audit_sink_raised_counts_as_written(make_guard, root_handler, tmp_path):
    """A handler's log whose append wrote the llm_call record, then raised (its copy to a database failing): the
    handler kept it as a failed write, which raise_if_failed (HGuardQueryEngine after each query) raised though the
    record was on disk. The record is written (AuditLog.receipt_of): no failed write, and a warning says what failed."""
    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    handler = root_handler(HGuardAuditEventHandler(_MirroredLog(tmp_path / "calls.jsonl")))
    with pytest.warns(UserWarning, match=r"the llm_call record of span .* is written to the audit log .*"
                                         r"append raised after writing it \(ConnectionError: acme-db"):
        out = HGuardLLM(guard, domain="alpha").complete(Q)
    assert out.additional_kwargs["route"] == "accept"
    (call,) = AuditLog(tmp_path / "calls.jsonl")
    assert call["status"] == "ok" and call["decision_audit_id"] == out.additional_kwargs["audit_id"]
    assert handler.errors == []
    handler.raise_if_failed()


def test_an_llm_call_record_written_before_the_audit_sink_raised_is_no_failed_write_under_warnings_as_errors(
        make_guard, root_handler, tmp_path):
    """Under warnings as errors (python -W error, pytest's filterwarnings = error) the warning that the llm_call record
    is written though the sink raised after it was raised in the handler in its place: kept as a failed write, which
    raise_if_failed raised. The record stands, and no failed write is kept."""
    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    handler = root_handler(HGuardAuditEventHandler(_MirroredLog(tmp_path / "calls.jsonl")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = HGuardLLM(guard, domain="alpha").complete(Q)
    (call,) = AuditLog(tmp_path / "calls.jsonl")
    assert call["status"] == "ok" and call["decision_audit_id"] == out.additional_kwargs["audit_id"]
    assert handler.errors == []
    handler.raise_if_failed()


class _BreakerLog(AuditLog):
    """A user's audit sink with a circuit breaker: the first record written, then its copy to a database failing (the
    error kept); while open, the kept error raised again before anything is written."""

    kept: Exception | None = None

    def append(self, record, *, kind="decision"):
        if self.kept is not None:
            raise self.kept
        super().append(record, kind=kind)
        self.kept = ConnectionError("acme-db: connection refused")
        raise self.kept


def test_an_llm_call_record_whose_sink_raised_a_kept_error_before_writing_it_is_a_failed_write(make_guard, root_handler,
                                                                                             tmp_path):
    """A sink raising again the error of an earlier llm_call record (written, then raised) before writing the next:
    the handler read the error's receipt (the earlier record's) as the second record written, kept no failed write,
    and raise_if_failed did not raise with one llm_call record on disk for two calls. It is a failed write now."""
    from llama_index.llms.hguard import HGuardAuditEventHandler

    guard = make_guard("accept")
    handler = root_handler(HGuardAuditEventHandler(_BreakerLog(tmp_path / "calls.jsonl")))
    llm = HGuardLLM(guard, domain="alpha")
    with pytest.warns(UserWarning, match=r"the llm_call record of span .* is written to the audit log"):
        first = llm.complete(Q)
    assert handler.errors == []
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        llm.complete(Q)
    assert not [w for w in said if "is written to the audit log" in str(w.message)]
    (call,) = AuditLog(tmp_path / "calls.jsonl")
    assert call["decision_audit_id"] == first.additional_kwargs["audit_id"]
    assert [type(e) for e in handler.errors] == [ConnectionError]
    with pytest.raises(ConnectionError, match="acme-db"):
        handler.raise_if_failed()


@pytest.mark.parametrize("value", ["no", 1, None])
def test_a_calls_early_stop_that_is_not_a_bool_is_refused_in_one_line(make_guard, value):
    """complete(q, early_stop="no") was read with bool(): "no" ran as early_stop=True (the setting is strict, the
    call's keyword was not). Refused in one line naming the value and the fix, on record, before anything is
    generated; True and False are taken as before."""
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    for call in (lambda: llm.complete(Q, early_stop=value),
                 lambda: llm.chat([ChatMessage(role=MessageRole.USER, content=Q)], early_stop=value)):
        with pytest.raises(InputError) as err:
            call()
        said = str(err.value)
        assert said.startswith(f"HGuardLLM: early_stop={value!r} is not True or False ({type(value).__name__}); pass "
                               "early_stop=True or early_stop=False, or leave it out for the setting's")
        assert "\n" not in said
        rec = AuditLog(guard.audit.path).find(err.value.audit_id)
        assert rec["kind"] == "error" and rec["source"] == "HGuardLLM" and rec["question"] == Q
    assert not [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]  # nothing generated
    assert llm.complete(Q, early_stop=False).additional_kwargs["route"] == "accept"


def test_a_follow_up_after_a_held_turn_kept_in_the_chat_history_is_held_naming_it(make_guard):
    """A held answer kept in the chat history (its message's additional_kwargs hold hguard's decision) holds the
    follow-up built on it for review, naming the held answer's record (an HR trial: no reason said it)."""
    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    said = "the history holds an answer hguard held for review"

    def follow_up(**kwargs) -> list[str]:
        return llm.chat([ChatMessage(role=MessageRole.USER, content="How many days of annual leave?"),
                         ChatMessage(role=MessageRole.ASSISTANT, content="Sick leave: 10 days.", additional_kwargs=kwargs),
                         ChatMessage(role=MessageRole.USER, content=Q)]).message.additional_kwargs["reasons"]

    assert any(r.startswith(f"{said} (record rec-1) (history turn 1)") for r in follow_up(route="review", audit_id="rec-1"))
    assert not any(r.startswith(said) for r in follow_up())
    assert not any(r.startswith(said) for r in follow_up(route="accept", audit_id="rec-2"))
