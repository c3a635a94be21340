"""The audit callback handler (records per LLM call, linked to the guard's decision; a failing write
is raised, not swallowed) and guarded streaming in hold and passthrough modes."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage

from hguard import audit as audit_mod
from hguard.audit import AuditLog
from hguard.errors import HGuardError, InputError
from hguard.testing import shown_answer, undelivered_call
from langchain_hguard import ChatHGuard, GuardedRAG, HGuardAuditCallbackHandler, guard_stream
from langchain_hguard.retrieval import CAPTURE

Q = "who is the author of the book ?"
NOTICE = "\n\n[needs review]"  # the end of a passthrough stream held for review under a policy without review_message


def _kinds(path) -> list[str]:
    return [r["kind"] for r in AuditLog(path)]


# ------------------------------------------------------------------------------------ audit handler


def test_handler_writes_one_llm_call_record_linked_to_the_decision(make_guard):
    guard = make_guard("review")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    assert handler.raise_error is True
    rag = GuardedRAG.from_guard(guard, domain="alpha")
    ans = rag.invoke({"question": Q, "context": ["paris is the capital of france"]}, config={"callbacks": [handler], "tags": ["t1"]})
    records = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in records] == ["decision", "llm_call"]
    decision, call = records
    assert call["decision_audit_id"] == decision["id"] == ans.audit_id
    assert call["hguard"]["route"] == "review" == decision["route"] and call["status"] == "ok"
    assert call["question"] == Q and call["context"] == ["paris is the capital of france"]
    assert call["answer"] == ans.answer and call["model_name"] == "tiny-llama" and call["llm_type"] == "hguard"
    assert call["parent_run_id"] is not None and "t1" in call["tags"] and call["seconds"] >= 0
    assert audit_mod.verify(guard.audit.path).ok  # one hash chain for decisions and calls


def test_handler_records_failed_calls_and_optional_starts(make_guard, tmp_path):
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler(tmp_path / "calls.jsonl", record_starts=True)
    chat = ChatHGuard(guard=guard, domain="alpha")
    with pytest.raises(ValueError, match="another-model"):
        chat.invoke(Q, model="another-model", config={"callbacks": [handler]})
    start, end = AuditLog(tmp_path / "calls.jsonl")
    assert start["event"] == "start" and end["event"] == "error" and end["status"] == "error"
    assert "another-model" in end["error"] and end["run_id"] == start["run_id"] and end["question"] == Q


def test_handler_records_a_question_that_is_not_valid_unicode_and_the_caller_gets_the_guards_error(make_guard, tmp_path):
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler(tmp_path / "calls.jsonl")
    bad = "what is the capital \udcff ?"  # a lone surrogate: an undecodable byte from a bad decode
    with pytest.raises(InputError, match="question is not valid text"):
        ChatHGuard(guard=guard, domain="alpha").invoke(bad, config={"callbacks": [handler]})
    (end,) = AuditLog(tmp_path / "calls.jsonl")
    assert end["status"] == "error" and end["question"] == "what is the capital \\udcff ?" and "InputError" in end["error"]


def test_handler_redacts_question_context_and_answer_when_asked(make_guard, tmp_path):
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler(tmp_path / "calls.jsonl", redact=True)
    # a run's tags and metadata, which often name the user, too (a data-protection officer's trial: in clear)
    ChatHGuard(guard=guard, domain="alpha").invoke([HumanMessage(Q)], context="gold is a metal", config={
        "callbacks": [handler], "metadata": {"patient": "Johanna Pfeiffer"}, "tags": ["patient:Johanna Pfeiffer"]})
    (call,) = AuditLog(tmp_path / "calls.jsonl")
    assert set(call["question"]) == {"sha256"} and set(call["answer"]) == {"sha256"} and set(call["context"]) == {"sha256"}
    assert set(call["metadata"]) == {"sha256"} and set(call["tags"]) == {"sha256"}
    assert "Pfeiffer" not in (tmp_path / "calls.jsonl").read_text()
    assert call["hguard"]["route"] == "accept"


def test_a_failing_audit_write_reaches_the_caller_sync_and_async(make_guard, tmp_path):
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler(tmp_path / "torn.jsonl")
    (tmp_path / "torn.jsonl").mkdir()  # the log's path turns into a folder: every write fails
    chat = ChatHGuard(guard=guard, domain="alpha")
    with pytest.raises(HGuardError):
        chat.invoke(Q, config={"callbacks": [handler]})
    with pytest.raises(HGuardError):
        GuardedRAG(llm=chat).invoke({"question": Q}, config={"callbacks": [handler]})
    with pytest.raises(HGuardError):
        asyncio.run(chat.ainvoke(Q, config={"callbacks": [handler]}))
    # the same handler with LangChain's default raise_error=False would only log a warning
    quiet = HGuardAuditCallbackHandler(tmp_path / "quiet.jsonl")
    (tmp_path / "quiet.jsonl").mkdir()
    quiet.raise_error = False
    assert chat.invoke(Q, config={"callbacks": [quiet]}).response_metadata["route"] == "accept"


class _MirroredLog(AuditLog):
    """A user's audit sink: each record written to the log, then copied to a database that is down."""

    def append(self, record, *, kind="decision"):
        super().append(record, kind=kind)
        raise ConnectionError("acme-db: connection refused")


def test_an_llm_call_record_written_before_the_audit_sink_raised_counts_as_written(make_guard, tmp_path):
    """A handler's log whose append wrote the llm_call record, then raised (its copy to a database failing): the
    call failed with the sink's error and the decision was said undelivered, while the record on disk said "ok". The
    record is written (AuditLog.receipt_of): the answer is delivered, the record stands, and a warning says what failed."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler(_MirroredLog(tmp_path / "calls.jsonl"))
    chat = ChatHGuard(guard=guard, domain="alpha")
    with pytest.warns(UserWarning, match=r"the llm_call record of run .* is written to the audit log .*"
                                         r"append raised after writing it \(ConnectionError: acme-db"):
        msg = chat.invoke(Q, config={"callbacks": [handler]})
    assert msg.response_metadata["route"] == "accept"
    (call,) = AuditLog(tmp_path / "calls.jsonl")
    assert call["status"] == "ok" and call["decision_audit_id"] == msg.response_metadata["audit_id"]
    assert _kinds(guard.audit.path) == ["decision"]  # delivered: no answer_not_delivered record


def test_an_llm_call_record_written_before_the_audit_sink_raised_is_delivered_under_warnings_as_errors(make_guard,
                                                                                                      tmp_path):
    """Under warnings as errors (python -W error, pytest's filterwarnings = error) the warning that the llm_call record
    is written though the sink raised after it was raised in the handler in its place: the call failed, its answer
    said undelivered. The answer is delivered and the record stands."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler(_MirroredLog(tmp_path / "calls.jsonl"))
    chat = ChatHGuard(guard=guard, domain="alpha")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msg = chat.invoke(Q, config={"callbacks": [handler]})
    assert msg.response_metadata["route"] == "accept"
    (call,) = AuditLog(tmp_path / "calls.jsonl")
    assert call["status"] == "ok" and call["decision_audit_id"] == msg.response_metadata["audit_id"]
    assert _kinds(guard.audit.path) == ["decision"]  # delivered: no answer_not_delivered record


# ---------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("route", ["accept", "abstain"])
def test_hold_streams_only_the_routed_text_once_decided(make_guard, route):
    guard = make_guard(route)
    chunks = list(ChatHGuard(guard=guard, domain="alpha").stream(Q))
    assert len(chunks) == 1 and isinstance(chunks[0], AIMessageChunk)
    meta = chunks[0].response_metadata
    rec = AuditLog(guard.audit.path).find(meta["audit_id"])
    assert meta["route"] == route == rec["route"]
    assert chunks[0].content == (shown_answer(rec) if route == "accept" else guard.policy.abstain_message)


def test_passthrough_streams_tokens_then_the_decision(make_guard):
    guard = make_guard("abstain")
    chunks = list(ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough").stream(Q))
    assert len(chunks) >= 3  # several tokens, then the decision
    # the tokens, then the decision; a held answer's stream ends saying so, in the text too (a chat history keeps the
    # streamed text as the assistant's turn: a hospital's trial found a held answer kept as if it had been accepted)
    assert all(not c.response_metadata for c in chunks[:-1])
    assert chunks[-1].content == "\n\n[" + guard.policy.abstain_message + "]"
    meta = chunks[-1].response_metadata
    assert meta["route"] == "abstain"
    rec = AuditLog(guard.audit.path).find(meta["audit_id"])
    assert "".join(c.content for c in chunks[:-1]).strip() == rec["answer"]  # the raw tokens reached the user
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.response_metadata["route"] == "abstain" and merged.response_metadata["audit_id"] == rec["id"]


def test_a_passthrough_invoke_that_langchain_streams_still_returns_what_the_user_should_see(make_guard):
    """LangChain streams an invoke under astream_events (a web UI's event stream) or with stream=True, and returns
    the chunks joined: in passthrough mode that was the model's own abstained answer, handed on as if accepted."""
    guard = make_guard("abstain")
    chat = ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough")
    plain = chat.invoke(Q)
    assert plain.content == guard.policy.abstain_message and plain.response_metadata["route"] == "abstain"
    assert chat.invoke(Q, stream=True).content == guard.policy.abstain_message

    async def inside_events():
        from langchain_core.runnables import RunnableLambda

        got = {}

        async def step(q):
            got["message"] = await chat.ainvoke(q)
            return got["message"].content

        ends = [e async for e in RunnableLambda(step).astream_events(Q, version="v2") if e["event"] == "on_chat_model_end"]
        return got["message"], ends

    message, ends = asyncio.run(inside_events())
    assert message.content == guard.policy.abstain_message and message.response_metadata["route"] == "abstain"
    assert ends and ends[-1]["data"]["output"].content == guard.policy.abstain_message
    # stream() itself still passes the tokens through, then the decision
    chunks = list(chat.stream(Q))
    assert len(chunks) > 2 and chunks[-1].response_metadata["route"] == "abstain"


def test_a_passthrough_rag_streamed_under_astream_events_ends_with_its_decision(make_guard):
    """astream_events joins a chain's streamed chunks into on_chain_end's output: GuardedAnswer chunks added up to a
    plain string, which dropped the route an app saves with the chat history."""
    guard = make_guard("review")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, stream_mode="passthrough"), domain="alpha")

    async def events():
        return [e async for e in rag.astream_events({"question": Q, "context": ["paris is the capital of france"]},
                                                    version="v2")]

    ends = [e for e in asyncio.run(events()) if e["event"] == "on_chain_end" and e["name"] == rag.get_name()]
    out = ends[-1]["data"]["output"]
    assert out.route == "review" and out.audit_id and AuditLog(guard.audit.path).find(out.audit_id)["route"] == "review"
    via_invoke = rag.invoke({"question": Q, "context": ["paris is the capital of france"]})
    assert via_invoke.startswith("[needs review] ") and via_invoke.route == "review"


def test_a_passthrough_stream_left_open_at_exit_is_settled_with_its_decision_and_what_the_user_saw(make_guard):
    """A script (a web worker restarting) that read two chunks and exited with the stream open aborted inside the
    generation thread ("terminate called without an active exception", exit 134): no decision, no record that the
    user saw unchecked text. The exit hook waits for the decision and records it as not delivered, once."""
    from hguard import streaming

    guard = make_guard("review", max_new_tokens=12)
    it = guard_stream(guard, Q, domain="alpha", mode="passthrough")
    seen = [next(it), next(it)]
    assert all(c.result is None for c in seen)
    streaming._settle_open_streams()  # what the interpreter runs at exit
    kinds = _kinds(guard.audit.path)
    assert kinds == ["decision", "answer_not_delivered"], kinds
    said = list(AuditLog(guard.audit.path))[-1]
    assert "after 2 chunk(s) of passthrough text" in said["why"] and "the process exited with the stream open" in said["why"]
    it.close()  # closed later (or collected): nothing is recorded twice
    streaming._settle_open_streams()
    assert _kinds(guard.audit.path) == ["decision", "answer_not_delivered"] and not streaming._OPEN_STREAMS


def test_a_passthrough_stream_shows_nothing_from_a_stop_sequence_on(make_guard):
    """With stop=, the stream showed the stop sequence and what followed while the decision recorded the answer cut
    before it: the user saw text the audit record does not hold."""
    guard = make_guard("review", max_new_tokens=12)
    whole = "".join(c.text for c in guard_stream(guard, Q, domain="alpha", mode="passthrough")).removesuffix(NOTICE)
    words = whole.split()
    assert len(words) >= 4, whole
    stop = " " + words[2][:3]  # a stop sequence inside the answer, perhaps across two tokens
    chunks = list(guard_stream(guard, Q, domain="alpha", mode="passthrough", stop=[stop]))
    assert chunks[-1].text == NOTICE  # held for review (a stop cut it), and said so
    shown = "".join(c.text for c in chunks[:-1])
    result = chunks[-1].result
    assert stop not in shown and whole.startswith(shown) and len(shown) < len(whole)
    assert shown.strip() == result.answer.strip() == AuditLog(guard.audit.path).find(result.audit_id)["answer"].strip()
    streamed = "".join(c.content for c in ChatHGuard(guard=guard, domain="alpha", stream_mode="passthrough").stream(Q, stop=[stop]))
    assert streamed == shown + NOTICE


def test_guarded_text_adds_up_with_its_decision():
    from hguard.streaming import GuardedText
    from langchain_hguard.runnables import GuardedAnswer

    joined = GuardedText("The ") + GuardedText("answer") + GuardedText("", {"route": "review", "audit_id": "a1"})
    assert joined == "The answer" and joined.route == "review" and joined.audit_id == "a1"
    assert ("x" + GuardedText("y", {"route": "accept"})).route == "accept"
    assert (GuardedText("y", {"route": "accept"}) + "z").route == "accept"
    a = GuardedAnswer("Yes", sources=["doc 1"]) + GuardedAnswer("", sources=["doc 1"], decision={"route": "abstain"})
    assert isinstance(a, GuardedAnswer) and a.route == "abstain" and a.sources == ["doc 1"] and a == "Yes"


def test_async_stream_both_modes(make_guard):
    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha")

    async def collect(**kw):
        return [c async for c in chat.astream(Q, **kw)]

    hold = asyncio.run(collect())
    passthrough = asyncio.run(collect(stream_mode="passthrough"))
    assert len(hold) == 1 and hold[0].content.startswith("[needs review] ")
    assert len(passthrough) > 1 and passthrough[-1].response_metadata["route"] == "review"
    assert passthrough[-1].content == NOTICE
    assert hold[0].content == "[needs review] " + "".join(c.content for c in passthrough[:-1]).strip()


def test_guard_stream_errors_and_early_stop(make_guard):
    guard = make_guard("abstain")
    with pytest.raises(InputError):  # the worker's error is raised in the consumer, not a hang
        list(guard_stream(guard, " ".join(["capital"] * 300), mode="passthrough", domain="alpha"))
    with pytest.raises(ValueError, match="hold"):
        list(guard_stream(guard, Q, domain="alpha", mode="passthrough", early_stop=True))
    with pytest.raises(ValueError, match="stream_mode"):
        list(guard_stream(guard, Q, mode="later"))
    long_guard = make_guard("abstain", max_new_tokens=12)
    (chunk,) = guard_stream(long_guard, Q, domain="alpha", mode="hold", early_stop=True)
    assert chunk.final and chunk.result.route == "abstain" and chunk.text == guard.policy.abstain_message
    assert any("stopped early" in r for r in chunk.result.reasons) and chunk.result.signals["length"] < 12


def test_handler_sees_every_input_of_a_batch(make_guard):
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    out = ChatHGuard(guard=guard, domain="alpha").batch([Q, "what is gold ?"], config={"callbacks": [handler]})
    records = list(AuditLog(guard.audit.path))
    assert [r["kind"] for r in records] == ["decision", "decision", "llm_call", "llm_call"]
    calls = records[2:]
    assert [c["decision_audit_id"] for c in calls] == [m.response_metadata["audit_id"] for m in out]
    assert [c["question"] for c in calls] == [Q, "what is gold ?"]
    assert all("_hguard_precomputed" not in c["invocation_params"] for c in calls)


def test_handler_links_a_raise_on_error_to_the_decision_it_raised_for(make_guard, tmp_path):
    from hguard.errors import NeedsReviewError

    guard = make_guard("review")
    handler = HGuardAuditCallbackHandler(tmp_path / "calls.jsonl")
    with pytest.raises(NeedsReviewError) as err:
        ChatHGuard(guard=guard, domain="alpha", raise_on={"review"}).invoke(Q, config={"callbacks": [handler]})
    (end,) = AuditLog(tmp_path / "calls.jsonl")
    assert end["status"] == "error" and end["decision_audit_id"] == err.value.result.audit_id


def test_a_passthrough_timeout_is_raised_at_once_and_the_decision_still_recorded(make_guard, monkeypatch):
    """timeout= is the longest wait for the next token: queue.Empty came only after the whole answer (the stream
    waited for the guard before raising). Now it is raised at once; the decision and its answer_not_delivered
    record follow from a thread."""
    import queue
    import threading
    import time

    guard = make_guard("review", max_new_tokens=6)
    slow = guard.invoke
    started = threading.Event()

    def late_invoke(*a, **kw):  # a first token that takes its time (a long prompt, a busy machine)
        started.set()
        time.sleep(1.0)
        return slow(*a, **kw)

    monkeypatch.setattr(guard, "invoke", late_invoke)
    it = guard_stream(guard, Q, domain="alpha", mode="passthrough", timeout=0.05)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        next(it)
    assert started.is_set() and time.monotonic() - t0 < 0.9  # before the answer was even begun
    for t in [t for t in threading.enumerate() if t.name == "hguard-stream-settle"]:
        t.join(timeout=60)
    assert _kinds(guard.audit.path) == ["decision", "answer_not_delivered"]
    said = list(AuditLog(guard.audit.path))[-1]
    assert "no token came within the stream's timeout of 0.05 s" in said["why"] and "after 0 chunk(s)" in said["why"]


def test_the_decision_record_says_whether_its_tokens_were_streamed_as_generated(make_guard):
    """A passthrough review and a hold review wrote the same record: a reviewer could not tell that the held answer
    had already been shown."""
    from hguard.guard import STREAMED_NOTE

    guard = make_guard("review")
    passthrough = list(guard_stream(guard, Q, domain="alpha", mode="passthrough"))[-1].result
    hold = list(guard_stream(guard, Q, domain="alpha", mode="hold"))[-1].result
    log = AuditLog(guard.audit.path)
    assert STREAMED_NOTE in log.find(passthrough.audit_id)["reasons"]
    assert STREAMED_NOTE not in log.find(hold.audit_id)["reasons"]


def test_a_passthrough_stream_with_a_malformed_stop_is_refused_on_record_with_its_id(make_guard):
    """stop=123 in passthrough raised from the consumer before the guard had refused it: no audit_id on the error,
    and its error record written later, during the next call."""
    guard = make_guard("review")
    for stop in (123, [""]):
        with pytest.raises(InputError, match="stop must be a list of non-empty strings") as err:
            list(guard_stream(guard, Q, domain="alpha", mode="passthrough", stop=stop))
        rec = list(AuditLog(guard.audit.path))[-1]
        assert rec["kind"] == "error" and rec["id"] == err.value.audit_id
    with pytest.raises(InputError, match="stop must be a list of non-empty strings") as err:  # a bare TypeError
        ChatHGuard(guard=guard, domain="alpha").invoke(Q, stop=123)
    assert list(AuditLog(guard.audit.path))[-1]["id"] == err.value.audit_id


def test_the_guarded_parser_keeps_a_guarded_rag_answers_decision(make_guard):
    """`GuardedRAG | GuardedOutputParser()` gave route None: LangChain wraps a string input in a Generation, whose
    text is a plain str."""
    from langchain_hguard import GuardedOutputParser

    guard = make_guard("review")
    chain = GuardedRAG.from_guard(guard, domain="alpha") | GuardedOutputParser()
    inp = {"question": Q, "context": ["paris is the capital of france"]}
    out = chain.invoke(inp)
    assert out.route == "review" and out.audit_id and out.startswith("[needs review] ")
    assert asyncio.run(chain.ainvoke(inp)).route == "review"
    streamed = list(chain.stream(inp))
    assert streamed[-1].route == "review"

    async def astream():
        return [c async for c in chain.astream(inp)]

    assert asyncio.run(astream())[-1].route == "review"


def _boom(where: str):
    """A tracing handler with raise_error=True whose on_llm_end (an exporter down), on_llm_new_token or on_chain_end
    raises."""
    from langchain_core.callbacks import BaseCallbackHandler

    class Boom(BaseCallbackHandler):
        raise_error = True

        def on_llm_end(self, *args, **kwargs):
            if where == "end":
                raise RuntimeError("exporter down")

        def on_llm_new_token(self, *args, **kwargs):
            if where == "token":
                raise RuntimeError("exporter down")

        def on_chain_end(self, *args, **kwargs):
            if where == "chain_end":
                raise RuntimeError("exporter down")

    return Boom()


async def _astream_all(runnable, inp, config):
    return [c async for c in runnable.astream(inp, config)]


@pytest.mark.parametrize("how,where", [("invoke", "end"), ("stream", "token"), ("astream", "token")])
@pytest.mark.parametrize("audit_first", [True, False])
def test_a_handler_failing_after_the_decision_leaves_it_undelivered_and_the_call_failed(make_guard, how, where,
                                                                                         audit_first):
    """An observability team's trial: a tracing handler with raise_error=True whose on_llm_end (an exporter down) or,
    streaming, on_llm_new_token raised after the guard decided. The caller got the exception, and the log held the
    decision, an llm_call with status ok and no answer_not_delivered: a dashboard counted an accepted answer the user
    never got. Now the decision is said undelivered and the call's llm_call record says error, joined to it, whichever
    of the two handlers LangChain calls first; astream as stream (it had no delivery scope: the review's finding)."""
    guard = make_guard("accept")
    audit = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard, domain="alpha")  # hold mode
    boom = _boom(where)
    config = {"callbacks": [audit, boom] if audit_first else [boom, audit]}
    with pytest.raises(RuntimeError, match="exporter down"):
        if how == "invoke":
            chat.invoke(Q, config)
        elif how == "stream":
            list(chat.stream(Q, config))
        else:
            asyncio.run(_astream_all(chat, Q, config))
    decision, said, call = undelivered_call(guard.audit.path)
    assert said["run_id"] == call["run_id"] and "raised RuntimeError after the guard decided" in said["why"]
    assert call["status"] == "error" and "exporter down" in call["error"]
    # a call that returns writes its record as before, ok and joined to its decision, and says nothing undelivered
    chat.invoke(Q, {"callbacks": [audit]})
    list(chat.stream(Q, {"callbacks": [audit]}))
    asyncio.run(_astream_all(chat, Q, {"callbacks": [audit]}))
    later = list(AuditLog(guard.audit.path))[3:]  # after the three records of the failed call
    assert [r["kind"] for r in later] == ["decision", "llm_call"] * 3
    assert all(r["status"] == "ok" and r["decision_audit_id"] == d["id"] for d, r in zip(later[::2], later[1::2]))


# ------------------------------------------------------------------------------- run ids on decisions


def _two_step(chat, how: str):
    """A two-step chain (answer, then answer again from the first answer) calling ``chat`` as ``how`` asks."""
    from langchain_core.runnables import RunnableLambda

    def step(q: str, config) -> str:
        if how == "stream":
            return "".join(str(c.content) for c in chat.stream(q, config))
        if how == "batch":
            return " ".join(str(m.content) for m in chat.batch([q, "what is gold ?"], config))
        return str(chat.invoke(q, config).content)

    async def astep(q: str, config) -> str:
        if how == "astream":
            return "".join([str(c.content) async for c in chat.astream(q, config)])
        if how == "abatch":
            return " ".join(str(m.content) for m in await chat.abatch([q, "what is gold ?"], config))
        return str((await chat.ainvoke(q, config)).content)

    one = RunnableLambda(step, afunc=astep)
    return one | RunnableLambda(lambda a: f"what does {a[:20]!r} mean ?") | one


@pytest.mark.parametrize("how", ["invoke", "stream", "batch", "ainvoke", "astream", "abatch"])
def test_the_decisions_of_a_chain_run_name_its_root_run_and_each_its_own_run(make_guard, how):
    """A user's LCEL map-reduce left three decisions with nothing naming the chain run: which was the delivered one
    could not be told. Each decision now names its own run (the llm_call record's run_id), its parent, and the root."""
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    chain = _two_step(ChatHGuard(guard=guard, domain="alpha"), how)
    if how.startswith("a"):
        asyncio.run(chain.ainvoke(Q, config={"callbacks": [handler], "run_id": __import__("uuid").uuid4()}))
    else:
        chain.invoke(Q, config={"callbacks": [handler]})
    records = list(AuditLog(guard.audit.path))
    decisions = [r for r in records if r["kind"] == "decision"]
    calls = {c["decision_audit_id"]: c for c in records if c["kind"] == "llm_call"}
    assert len(decisions) == (4 if "batch" in how else 2) == len(calls)
    roots = {d["root_run_id"] for d in decisions}
    assert len(roots) == 1 and None not in roots  # one chain run
    assert len({d["run_id"] for d in decisions}) == len(decisions)  # each its own run
    for d in decisions:
        call = calls[d["id"]]
        assert d["run_id"] == call["run_id"] and d["parent_run_id"] == call["parent_run_id"] != d["root_run_id"]
        assert "caller_request_id" not in d and d["route"] == "accept"  # the record's own keys as they were
    assert audit_mod.verify(guard.audit.path).ok


def test_a_decision_outside_a_chain_is_its_own_root_run(make_guard):
    guard = make_guard("accept")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    msg = ChatHGuard(guard=guard, domain="alpha").invoke(Q, config={"callbacks": [handler]})
    decision, call = AuditLog(guard.audit.path)
    assert decision["id"] == msg.response_metadata["audit_id"] == call["decision_audit_id"]
    assert decision["run_id"] == decision["root_run_id"] == call["run_id"] and "parent_run_id" not in decision


def test_guard_records_a_callers_run_and_refuses_one_it_cannot_record(make_guard, monkeypatch):
    guard = make_guard("accept")
    r = guard.invoke(Q, domain="alpha", run={"run_id": "r1", "root_run_id": "r0", "parent_run_id": None})
    (decision,) = AuditLog(guard.audit.path)
    assert (decision["id"], decision["run_id"], decision["root_run_id"]) == (r.audit_id, "r1", "r0")
    assert "parent_run_id" not in decision
    with pytest.raises(InputError, match="has key"):
        guard.invoke(Q, domain="alpha", run={"run_id": "r1", "route": "accept"})
    with pytest.raises(InputError, match="string"):
        guard.batch([Q], domains=["alpha"], runs=[{"run_id": 7}])
    assert [r["kind"] for r in AuditLog(guard.audit.path)] == ["decision", "error", "error"]

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(guard.generator, "generate", oom)  # failed after it was taken: its error record names the run
    with pytest.raises(RuntimeError):
        guard.invoke(Q, domain="alpha", run={"run_id": "r2", "root_run_id": "r0"})
    failed = list(AuditLog(guard.audit.path))[-1]
    assert failed["kind"] == "error" and failed["stage"] == "generation" and failed["run_id"] == "r2"


@pytest.mark.parametrize("how", ["stream", "astream"])
@pytest.mark.parametrize("mode", ["hold", "passthrough"])
@pytest.mark.parametrize("audit_first", [True, False])
def test_a_handler_failing_after_the_caller_took_the_decided_chunk_leaves_it_delivered(make_guard, how, mode,
                                                                                        audit_first):
    """A review's finding: a streaming UI printed every chunk, the decided one with its route included, then the
    tracer's on_llm_end raised; the log said answer_not_delivered "so the caller got the error, not this answer", a
    false record of an answer the user read. Once the caller took the decided chunk (asked for the next) its decision
    was handed over: nothing said undelivered, and the llm_call record says error, joined to it with
    decision_streamed, as a stream the caller leaves says."""
    guard = make_guard("accept")
    audit = HGuardAuditCallbackHandler.from_guard(guard)
    chat = ChatHGuard(guard=guard, domain="alpha", stream_mode=mode)
    boom = _boom("end")
    config = {"callbacks": [audit, boom] if audit_first else [boom, audit]}
    shown, routes = [], []

    async def consume():
        async for chunk in chat.astream(Q, config):
            shown.append(chunk.content)
            routes.append(chunk.response_metadata.get("route"))

    with pytest.raises(RuntimeError, match="exporter down"):
        if how == "stream":
            for chunk in chat.stream(Q, config):
                shown.append(chunk.content)  # shown to the user as it arrives
                routes.append(chunk.response_metadata.get("route"))
        else:
            asyncio.run(consume())
    records = list(AuditLog(guard.audit.path))
    assert sorted(r["kind"] for r in records) == ["decision", "llm_call"]
    (decision,) = [r for r in records if r["kind"] == "decision"]
    (call,) = [r for r in records if r["kind"] == "llm_call"]
    assert routes[-1] == "accept" == decision["route"] and "".join(shown) == shown_answer(decision)  # what the user saw
    assert call["status"] == "error" and "exporter down" in call["error"]
    assert call["decision_audit_id"] == decision["id"] and call["decision_streamed"] is True


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_guarded_rag_failing_in_on_chain_end_after_the_decision(make_guard, how):
    """A review's finding: GuardedRAG.invoke had no delivery scope (ainvoke had), so a handler failing in on_chain_end
    left accept + llm_call ok while the caller got the error. Now the decision is said undelivered and the llm_call
    record says error, joined to it; stream (the caller took the decided chunk before the chain's end) says it
    delivered, with decision_streamed."""
    guard = make_guard("accept")
    rag = GuardedRAG(llm=ChatHGuard(guard=guard, domain="alpha"))
    config = {"callbacks": [HGuardAuditCallbackHandler.from_guard(guard), _boom("chain_end")]}
    inp = {"question": Q, "context": ["the book was written by ann"]}
    roots_before = set(CAPTURE._runs_of_root)
    with pytest.raises(RuntimeError, match="exporter down"):
        rag.invoke(inp, config) if how == "invoke" else [c for c in rag.stream(inp, config)]
    # the raising handler came before the retrieval tracker, which LangChain then never told the chain ended: its
    # root is kept (bounded by ROOTS_KEPT); ended here so later tests start with none open
    for root in set(CAPTURE._runs_of_root) - roots_before:
        CAPTURE.on_chain_end(None, run_id=root)
    records = list(AuditLog(guard.audit.path))
    (decision,) = [r for r in records if r["kind"] == "decision"]
    (call,) = [r for r in records if r["kind"] == "llm_call"]
    said = [r for r in records if r["kind"] == "answer_not_delivered"]
    assert call["status"] == "error" and call["decision_audit_id"] == decision["id"]
    if how == "invoke":
        assert [r["decision_audit_id"] for r in said] == [decision["id"]] and "decision_streamed" not in call
    else:
        assert said == [] and call["decision_streamed"] is True


def test_root_runs_whose_end_was_never_seen_are_bounded(monkeypatch):
    """A handler raising in on_chain_end stops LangChain before it tells the retrieval tracker the chain ended: each
    such chain's runs were kept for the life of the process. The oldest open roots are forgotten beyond ROOTS_KEPT."""
    import uuid

    from langchain_hguard import retrieval

    monkeypatch.setattr(retrieval, "ROOTS_KEPT", 3)
    capture = retrieval.RetrievalCapture()
    roots = [uuid.uuid4() for _ in range(5)]
    for root in roots:  # each starts a chain and a child run, and never ends
        capture.on_chain_start({}, {}, run_id=root)
        capture.on_chain_start({}, {}, run_id=uuid.uuid4(), parent_run_id=root)
    assert list(capture._runs_of_root) == roots[2:] and capture.open_runs() == 6
    capture.on_chain_end(None, run_id=roots[-1])
    assert capture.open_runs() == 4


@pytest.mark.parametrize("bad", ["no", 0, None])
def test_a_record_starts_that_is_not_a_bool_is_refused(tmp_path, bad):
    """HGuardAuditCallbackHandler(record_starts="no") wrote a start record for every call (a truth test took "no")."""
    with pytest.raises(InputError, match=r"^HGuardAuditCallbackHandler: record_starts=.* is not True or False"):
        HGuardAuditCallbackHandler(tmp_path / "calls.jsonl", record_starts=bad)
