"""HGuardCheck: an answer produced elsewhere in a chain (the same weights served by another server, a stored answer)
scored by Guard.check as a runnable, its output what ChatHGuard's gives a chain (the text shown, the decision in
response_metadata), with the tiny calibrated model."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda, RunnableParallel

from hguard.audit import AuditLog
from hguard.errors import InputError
from langchain_hguard import GuardedOutputParser, HGuardAuditCallbackHandler, HGuardCheck

Q = "who is the author of the book ?"


def _other(answer: str) -> str:
    """An answer that is not the model's own (its first two words changed), as test_given_answer builds one."""
    words = answer.split()
    return " ".join(["paris" if w != "paris" else "rome" for w in words[:2]] + words[2:])


def test_a_given_answer_is_routed_and_shown_as_chathguard_shows_one(make_guard):
    """The model's own answer (served elsewhere) is accepted and shown; another answer goes to review, shown as
    ChatHGuard shows a held one, its decision in response_metadata; each record says answer_source "given" and
    served True (the Runnable's default: a chain's output is shown to users)."""
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    check = HGuardCheck(guard=guard, domain="alpha")
    msg = check.invoke({"question": Q, "answer": own.answer})
    log = AuditLog(guard.audit.path)
    rec = log.find(msg.response_metadata["audit_id"])
    assert isinstance(msg, AIMessage) and msg.response_metadata["route"] == "accept" == rec["route"]
    assert rec["answer"] == own.answer and msg.content == own.display_text  # shown as the guard's own answer was
    assert rec["answer_source"] == "given" and rec["given_answer"]["served"] is True
    assert msg.response_metadata["answer_source"] == "given" and msg.response_metadata["risk"] == rec["risk"]
    other = check.invoke({"question": Q, "answer": _other(own.answer)})
    held = log.find(other.response_metadata["audit_id"])
    assert other.response_metadata["route"] == "review" == held["route"], other.response_metadata["reasons"]
    assert any("not this model's own" in r for r in other.response_metadata["reasons"])
    assert other.response_metadata["reasons"] == held["reasons"] and held["answer"] == _other(own.answer)
    assert held["answer_source"] == "given" and held["given_answer"]["served"] is True
    # exactly the text ChatHGuard shows for this decision (the policy's review text, or the answer marked)
    review = guard.policy.domain("alpha").review_message or guard.policy.review_message
    assert other.content == (review if review is not None else "[needs review] " + _other(own.answer))
    # the parsers after a chat model follow it as they follow ChatHGuard's message
    parsed = (check | GuardedOutputParser()).invoke({"question": Q, "answer": _other(own.answer)})
    assert parsed.route == "review" and str(parsed) == other.content
    assert (check | StrOutputParser()).invoke({"question": Q, "answer": own.answer}) == own.display_text
    [chunk] = list(check.stream({"question": Q, "answer": _other(own.answer)}))  # one chunk: the decided message
    assert chunk.content == other.content and chunk.response_metadata["route"] == "review"


def test_an_evaluation_passes_served_false_and_a_served_that_is_not_a_bool_is_refused(make_guard):
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    msg = HGuardCheck(guard=guard, domain="alpha", served=False).invoke({"question": Q, "answer": own.answer})
    assert AuditLog(guard.audit.path).find(msg.response_metadata["audit_id"])["given_answer"]["served"] is False
    with pytest.raises(ValueError, match="served"):
        HGuardCheck(guard=guard, served="true")
    with pytest.raises(ValueError, match="domain"):
        HGuardCheck(guard=guard, domian="alpha")


def test_an_answer_as_another_chat_model_returns_it_and_documents_as_a_retriever_returns_them(make_guard):
    """The answer an AIMessage (text content blocks read as ChatHGuard reads a message), the context Documents or
    strings: the passages reach the check (the record's context) and the answer scored is the message's text."""
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    docs = [Document(page_content="gold is a metal .", metadata={"source": "gold.txt"}),
            Document(page_content="paris is in france .")]
    check = HGuardCheck(guard=guard, domain="alpha")
    msg = check.invoke({"question": Q, "answer": AIMessage(content=[{"type": "text", "text": own.answer}]),
                        "context": docs})
    rec = AuditLog(guard.audit.path).find(msg.response_metadata["audit_id"])
    assert rec["answer"] == own.answer and "gold is a metal ." in rec["context"] and "paris is in france ." in rec["context"]
    for context in ("gold is a metal .", ["gold is a metal ."]):
        m = check.invoke({"question": Q, "answer": own.answer, "context": context})
        assert AuditLog(guard.audit.path).find(m.response_metadata["audit_id"])["context"] == "gold is a metal ."
    # a chain: the retriever's Documents and another model's message, as RunnableParallel hands them on
    chain = RunnableParallel(question=lambda x: x, answer=RunnableLambda(lambda x: AIMessage(content=own.answer)),
                             context=RunnableLambda(lambda x: docs)) | check
    out = chain.invoke(Q)
    assert "gold is a metal ." in AuditLog(guard.audit.path).find(out.response_metadata["audit_id"])["context"]
    # retrieval found nothing: review (nothing retrieved), never read as a closed-book answer
    empty = check.invoke({"question": Q, "answer": own.answer, "context": []})
    assert empty.response_metadata["route"] == "review"
    assert any("nothing retrieved" in r for r in empty.response_metadata["reasons"])


@pytest.mark.parametrize("role", ["assistant", "Assistant", "ai"])
def test_an_answer_as_an_assistant_chat_message_is_taken_as_an_ai_message_is(make_guard, role):
    """An answer given as ChatMessage(role="assistant") (a chat history kept as role/content pairs, another model's
    generic message) was refused as "not the model's answer"; it is the model's answer, scored as its AIMessage is."""
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    check = HGuardCheck(guard=guard, domain="alpha")
    as_ai = check.invoke({"question": Q, "answer": AIMessage(content=own.answer)})
    msg = check.invoke({"question": Q, "answer": ChatMessage(role=role, content=own.answer)})
    rec = AuditLog(guard.audit.path).find(msg.response_metadata["audit_id"])
    assert rec["kind"] == "decision" and rec["answer"] == own.answer and rec["answer_source"] == "given"
    assert msg.response_metadata["route"] == as_ai.response_metadata["route"] and msg.content == as_ai.content


@pytest.mark.parametrize("value, words", [
    ({"answer": "x"}, "needs the key(s) ['question']"),
    ({"question": Q}, "needs the key(s) ['answer']"),
    ({"question": Q, "answer": 3}, "'answer' must be a string or a chat model's message, got int"),
    ({"question": Q, "answer": "x", "docs": []}, "does not read the input key(s) ['docs']"),
    ({"question": Q, "answer": "x", "context": [3]}, "'context' must be a string or a list of strings or Documents; item 0 is int"),
    ({"question": Q, "answer": AIMessage(content="", tool_calls=[{"name": "f", "args": {}, "id": "1"}])}, "tool calls"),
    ("just a question", "takes a dict with 'question' and 'answer'"),
    ({"question": Q, "answer": HumanMessage("x")}, "'answer' is a HumanMessage, not the model's answer; pass the chat "
                                                   "model's AIMessage"),
    ({"question": Q, "answer": ChatMessage(role="user", content="x")},
     "'answer' is a ChatMessage with role 'user', not the model's answer; pass the chat model's AIMessage"),
    ({"question": Q, "answer": ChatMessage(role="tool", content="x")}, "'answer' is a ChatMessage with role 'tool', not"),
    ({"question": Q, "answer": "x", "context": Document(page_content="gold")},
     "got Document: pass a single Document in a list, [doc]"),
])
def test_bad_input_is_refused_in_one_line_naming_the_key_and_on_record(make_guard, value, words):
    guard = make_guard("accept")
    with pytest.raises(InputError) as err:
        HGuardCheck(guard=guard).invoke(value)
    assert words in str(err.value) and "\n" not in str(err.value)
    rec = AuditLog(guard.audit.path).find(err.value.audit_id)
    assert rec["kind"] == "error" and rec["source"] == "HGuardCheck" and rec["answer_source"] == "given"


@pytest.mark.parametrize("value", [{"query": Q, "response": "paris"}, {"answer": "paris"}, "paris"])
def test_a_refused_input_is_recorded_as_given(make_guard, value):
    """A bad-input trial: `invoke({"query": q, "response": "paris"})` was refused but its `error` record held the
    question 'None' and no answer: the input was lost. An input with no 'question' is recorded whole, as given."""
    guard = make_guard("accept")
    check = HGuardCheck(guard=guard)
    for call in (lambda: check.invoke(value), lambda: check.batch([value])):
        with pytest.raises(InputError) as err:
            call()
        rec = AuditLog(guard.audit.path).find(err.value.audit_id)
        assert rec["question"] == (repr(value) if isinstance(value, dict) else value)
        assert rec.get("answer") == (value.get("answer") if isinstance(value, dict) else None)


@pytest.mark.parametrize("settings, words", [
    ({"served": "false"}, "HGuardCheck: served='false': Input should be a valid boolean; pass True where the answers "
                          "are shown to users, False for an evaluation"),
    ({"domain": 5}, "HGuardCheck: domain=5: Input should be a valid string; name a domain of the policy"),
    ({"guard": None}, "HGuardCheck: guard=None: Input should be an instance of Guard; pass the hguard Guard"),
    ({"domian": "alpha"}, "HGuardCheck has no setting(s) ['domian']; did you mean 'domain'"),
    ({"guard": ...}, "HGuardCheck: guard is required; pass the hguard Guard"),  # left out
])
def test_a_bad_setting_is_refused_in_one_line_naming_it_and_the_fix(make_guard, settings, words):
    """A bad-input trial: `HGuardCheck(guard=g, served="false")`, `domain=5`, `guard=None` raised pydantic's four-line
    ValidationError with a URL and no fix, where a call's `served=1` gets hguard's one line. A guard left out was
    said as "guard={'domain': 'alpha', ...}: Field required" (pydantic's input of a missing field is all the others)."""
    given = {k: v for k, v in {"guard": make_guard("accept"), **settings}.items() if v is not ...}
    with pytest.raises(InputError) as err:
        HGuardCheck(**given, **({"domain": "alpha"} if "guard" not in given else {}))
    assert str(err.value).startswith(words) and "\n" not in str(err.value)
    assert "alpha" not in str(err.value) or "domian" in settings  # no other setting's value shown as the guard's


def test_batch_is_one_check_batch_and_each_input_its_own_run(make_guard, monkeypatch):
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    calls = []
    real = guard.check_batch
    monkeypatch.setattr(guard, "check_batch", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    check = HGuardCheck(guard=guard, domain="alpha")
    handler = HGuardAuditCallbackHandler.from_guard(guard)
    out = check.batch([{"question": Q, "answer": own.answer}, {"question": Q, "answer": _other(own.answer)}],
                      {"callbacks": [handler]})
    assert calls == [2] and [m.response_metadata["route"] for m in out] == ["accept", "review"]
    log = AuditLog(guard.audit.path)
    recs = [log.find(m.response_metadata["audit_id"]) for m in out]
    assert all(r["answer_source"] == "given" and r["given_answer"]["served"] is True for r in recs)
    assert recs[0]["run_id"] != recs[1]["run_id"] and all(r["run_id"] for r in recs)
    # a refused input: raised before anything is scored, or in its place with return_exceptions
    bad = [{"question": Q, "answer": own.answer}, {"question": Q, "answer": "   "}]
    with pytest.raises(InputError):
        check.batch(bad)
    assert calls == [2]  # refused as the guard refuses it, before the batch reaches it
    got = check.batch(bad, return_exceptions=True)
    assert got[0].response_metadata["route"] == "accept" and isinstance(got[1], InputError)
    assert asyncio.run(check.abatch(bad[:1]))[0].response_metadata["route"] == "accept"


def test_ainvoke_scores_as_invoke(make_guard):
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    msg = asyncio.run(HGuardCheck(guard=guard, domain="alpha").ainvoke({"question": Q, "answer": _other(own.answer)}))
    rec = AuditLog(guard.audit.path).find(msg.response_metadata["audit_id"])
    assert msg.response_metadata["route"] == "review" and rec["answer_source"] == "given" and rec["run_id"]


def test_a_calls_domain_and_served_are_taken_and_any_other_keyword_is_refused(make_guard):
    """invoke/batch/ainvoke/abatch (and .bind) take domain= and served= per call, as ChatHGuard takes domain=: a
    batch(..., served=False) evaluation was recorded as live traffic, an invoke(..., domain=...) chose its domain by
    similarity. Any other keyword, a served that is not a bool and a blank domain are refused in one line, on
    record: never dropped."""
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    x = {"question": Q, "answer": own.answer}
    check = HGuardCheck(guard=guard)  # no domain: the call's
    log = AuditLog(guard.audit.path)

    def rec(m):
        return log.find(m.response_metadata["audit_id"])

    for d in ("alpha", "beta"):
        assert rec(check.invoke(x, domain=d))["domain"] == d
        assert [rec(m)["domain"] for m in check.batch([x, x], domain=d)] == [d, d]
    assert rec(check.invoke(x, served=False))["given_answer"]["served"] is False
    assert [rec(m)["given_answer"]["served"] for m in check.batch([x], served=False)] == [False]
    assert rec(asyncio.run(check.ainvoke(x, served=False, domain="beta")))["given_answer"]["served"] is False
    [m] = asyncio.run(check.abatch([x], served=False, domain="beta"))
    assert rec(m)["given_answer"]["served"] is False and rec(m)["domain"] == "beta"
    assert rec(check.bind(served=False).invoke(x))["given_answer"]["served"] is False
    assert rec(check.invoke(x))["given_answer"]["served"] is True  # the field's, without the keyword
    assert rec(check.invoke({**x, "domain": "beta"}, domain="alpha"))["domain"] == "beta"  # the input's own wins
    for call, words in ((lambda: check.invoke(x, domian="alpha"), "['domian']"),
                        (lambda: check.batch([x, x], stop=["."], return_exceptions=True), "['stop']"),
                        (lambda: check.invoke(x, served="false"), "served= must be True or False, got str"),
                        (lambda: check.batch([x], served=0), "served= must be True or False, got int"),
                        (lambda: check.invoke(x, domain=""), "domain='' names no domain"),
                        (lambda: check.invoke({**x, "domain": ""}), "'domain' is '', which names no domain"),
                        (lambda: check.invoke({**x, "domain": " "}, domain="alpha"), "'domain' is ' '")):
        with pytest.raises(InputError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value)
        assert log.find(err.value.audit_id)["source"] == "HGuardCheck"


def test_a_refusal_in_a_batch_names_the_callers_input_and_the_adapter(make_guard):
    """With return_exceptions, a refusal the guard makes (a blank answer, one over max_new_tokens, a domain that is
    no name) names the caller's index and count, not its place among the inputs kept ("question 1 of 2" for the third
    of three), in the error and its record, and the record names HGuardCheck as who asked (it said "api")."""
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    ok = {"question": Q, "answer": own.answer}
    bad = [{**ok, "docs": []}, ok, {**ok, "answer": "   "}, {**ok, "answer": " ".join(["word"] * 40)},
           {**ok, "domain": 5}]
    got = HGuardCheck(guard=guard, domain="alpha").batch(bad, return_exceptions=True)
    assert got[1].response_metadata["route"] == "accept"
    log = AuditLog(guard.audit.path)
    for i, words in ((0, "['docs']"), (2, "the answer is empty"), (3, "over max_new_tokens = 4"),
                     (4, "domain must be a domain name or None, got 5")):
        assert isinstance(got[i], InputError) and str(got[i]).startswith(f"input {i} of 5 (counting from 0): ")
        assert words in str(got[i]) and "\n" not in str(got[i])
        rec = log.find(got[i].audit_id)
        assert rec["source"] == "HGuardCheck" and rec["error"].endswith(str(got[i])) and rec["answer_source"] == "given"
    with pytest.raises(InputError) as err:  # invoke: the guard's refusal, recorded as the adapter's
        HGuardCheck(guard=guard).invoke(bad[3])
    assert "over max_new_tokens = 4" in str(err.value) and log.find(err.value.audit_id)["source"] == "HGuardCheck"


def test_an_answer_holding_an_image_is_refused_as_an_answer(make_guard):
    guard = make_guard("accept")
    image = AIMessage(content=[{"type": "text", "text": "paris"},
                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}])
    with pytest.raises(InputError) as err:
        HGuardCheck(guard=guard).invoke({"question": Q, "answer": image})
    msg = str(err.value)
    assert "'answer' is a message holding a 'image_url' content block" in msg and "question" not in msg
    assert AuditLog(guard.audit.path).find(err.value.audit_id)["source"] == "HGuardCheck"


def test_source_key_is_no_setting_of_hguardcheck(make_guard):
    """HGuardCheck names no source in its output or record: a source_key would have no effect, so it is refused."""
    with pytest.raises(ValueError, match="source_key"):
        HGuardCheck(guard=make_guard("accept"), source_key="id")


def test_the_message_carries_usage_metadata_and_the_sources_of_its_passages(make_guard):
    """A chain reads a chat model's token counts in ``AIMessage.usage_metadata`` and a RAG answer's sources: the
    checked message had neither (usage_metadata None, the Documents' sources dropped). Its usage counts the guard's
    prompt (chat template and passages included) and the answer it scored; ``response_metadata["sources"]`` names
    the Documents as GuardedRAG's answer does (their ``source``, else their id or position), in invoke and batch."""
    guard = make_guard("accept")
    docs = [Document(page_content="gold is a metal .", metadata={"source": "metals.md"}),
            Document(page_content="paris is in france .", id="doc-7")]
    own = guard.invoke(Q, [d.page_content for d in docs], domain="alpha")
    check = HGuardCheck(guard=guard, domain="alpha")
    answer = len(guard.lm.tokenizer.encode(own.answer, add_special_tokens=False))
    msgs = [check.invoke({"question": Q, "answer": own.answer, "documents": docs}),
            *check.batch([{"question": Q, "answer": own.answer, "context": docs},
                          {"question": Q, "answer": _other(own.answer)}])]
    log = AuditLog(guard.audit.path)
    prompts = []
    for msg, sources in zip(msgs, (["metals.md", "doc-7"],) * 2 + ([],)):
        rec = log.find(msg.response_metadata["audit_id"])
        n_in, n_out = len(guard.generator.prompt_ids(Q, rec["context"])), rec["given_answer"]["tokens"]  # the guard's prompt
        prompts.append(n_in)
        assert msg.usage_metadata == {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}
        assert msg.response_metadata["sources"] == sources
    assert msgs[0].usage_metadata["output_tokens"] == answer > 0 and msgs[0].response_metadata["route"] == "accept"
    assert prompts[0] == prompts[1] > prompts[2]  # the passages are counted in the prompt
    # the parser after it keeps them with the decision
    parsed = (check | GuardedOutputParser()).invoke({"question": Q, "answer": own.answer, "documents": docs})
    assert parsed.decision["sources"] == ["metals.md", "doc-7"]


def test_an_answer_messages_own_usage_metadata_is_kept_not_replaced_by_the_guards_counts(make_guard):
    """A review: an AIMessage answer carrying the usage_metadata of the server that wrote it (the user's real usage)
    came back with the guard's counts in its place. It is kept as it came, in invoke and batch; an answer given as
    text, or as a message without counts, still gets the guard's."""
    guard = make_guard("accept")
    own = guard.invoke(Q, domain="alpha")
    check = HGuardCheck(guard=guard, domain="alpha", served=False)
    theirs = {"input_tokens": 999, "output_tokens": 5, "total_tokens": 1004}
    given = AIMessage(content=own.answer, usage_metadata=theirs)
    bare = AIMessage(content=own.answer)
    msgs = [check.invoke({"question": Q, "answer": given}),
            *check.batch([{"question": Q, "answer": given}, {"question": Q, "answer": bare},
                          {"question": Q, "answer": own.answer}])]
    n_in = len(guard.generator.prompt_ids(Q))
    n_out = len(guard.lm.tokenizer.encode(own.answer, add_special_tokens=False))
    assert [m.usage_metadata for m in msgs] == [theirs, theirs] + [
        {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}] * 2
    assert {m.response_metadata["route"] for m in msgs} == {"accept"}  # scored alike: only the counts differ
