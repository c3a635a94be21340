"""HGuardEvaluator: a LlamaIndex BaseEvaluator whose verdict is the guard's decision on a response it did not
generate (Guard.check, an evaluation: served False), with the tiny calibrated model."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.evaluation import BaseEvaluator, BatchEvalRunner
from llama_index.core.schema import NodeWithScore, TextNode

from hguard._guard_result import CUT_MARK, REVIEW_MARK
from hguard.audit import AuditLog
from hguard.errors import InputError
from llama_index.llms.hguard import HGuardEvaluator

Q = "who is the author of the book ?"


def _other(answer: str) -> str:
    """An answer that is not the model's own (its first two words changed), as test_given_answer builds one."""
    words = answer.split()
    return " ".join(["paris" if w != "paris" else "rome" for w in words[:2]] + words[2:])


def test_the_models_own_answer_passes_and_another_is_held_for_review(make_guard):
    guard = make_guard("accept")
    own = guard.invoke(Q, ["gold is a metal ."], domain="alpha")  # its own answer from these passages
    ev = HGuardEvaluator(guard, domain="alpha")
    assert isinstance(ev, BaseEvaluator) and ev.get_prompts() == {}
    log = AuditLog(guard.audit.path)
    ok = ev.evaluate(query=Q, response=own.answer, contexts=["gold is a metal ."])
    rid = ok.feedback.rsplit("decision record: ", 1)[1]
    rec = log.find(rid)
    assert ok.passing is True and rec["route"] == "accept" and ok.score == pytest.approx(1 - rec["risk"])
    assert rec["answer_source"] == "given" and rec["given_answer"]["served"] is False  # an evaluation
    assert rec["context"] == "gold is a metal ." and ok.contexts == ["gold is a metal ."] and ok.query == Q
    held = ev.evaluate(query=Q, response=_other(own.answer), contexts=["gold is a metal ."])
    rec = log.find(held.feedback.rsplit("decision record: ", 1)[1])
    assert held.passing is False and rec["route"] == "review" and rec["answer"] == _other(own.answer)
    assert rec["answer_source"] == "given" and rec["given_answer"]["served"] is False
    assert held.feedback.startswith("route: review\n") and all(r in held.feedback for r in rec["reasons"])
    assert any("not this model's own" in r for r in rec["reasons"])
    # not the model's own: its risk is for information only, no score to average with the own answers' scores
    assert held.score is None and "is no score to average" in held.feedback


def test_evaluate_response_reads_the_source_nodes_text_as_contexts(make_guard):
    """LlamaIndex's own evaluate_response: the Response's text is the answer, its source nodes' text the contexts."""
    guard = make_guard("accept")
    own = guard.invoke(Q, ["gold is a metal .", "paris is in france ."], domain="alpha")
    nodes = [NodeWithScore(node=TextNode(text="gold is a metal ."), score=0.9),
             NodeWithScore(node=TextNode(text="paris is in france ."), score=0.5)]
    ev = HGuardEvaluator(guard, domain="alpha")
    r = ev.evaluate_response(query=Q, response=Response(response=own.answer, source_nodes=nodes))
    rec = AuditLog(guard.audit.path).find(r.feedback.rsplit("decision record: ", 1)[1])
    assert "gold is a metal ." in rec["context"] and "paris is in france ." in rec["context"]
    assert r.passing is True and rec["answer"] == own.answer
    again = asyncio.run(ev.aevaluate_response(query=Q, response=Response(response=_other(own.answer), source_nodes=nodes)))
    assert again.passing is False and "paris is in france ." in again.contexts
    # a response whose retrieval found nothing: held (nothing retrieved), never read as closed-book
    closed = guard.invoke(Q, domain="alpha")  # the model's own closed-book answer, held all the same
    empty = ev.evaluate_response(query=Q, response=Response(response=closed.answer, source_nodes=[]))
    assert empty.passing is False and "nothing retrieved" in empty.feedback


def test_batch_eval_runner_runs_it_as_any_evaluator(make_guard):
    guard = make_guard("accept")
    own = guard.invoke(Q, ["gold is a metal ."], domain="alpha")
    runner = BatchEvalRunner({"hguard": HGuardEvaluator(guard, domain="alpha")}, workers=2)
    out = runner.evaluate_response_strs(queries=[Q, Q], response_strs=[own.answer, _other(own.answer)],
                                        contexts_list=[["gold is a metal ."], ["gold is a metal ."]])
    assert [r.passing for r in out["hguard"]] == [True, False]


@pytest.mark.parametrize("call, words", [
    (dict(query=None, response="x"), "'query' must be the question as a string, got NoneType"),
    (dict(query=Q, response=None), "'response' must be the answer's text, got NoneType"),
    (dict(query=Q, response="x", contexts="gold"), "'contexts' must be a list of strings, got str"),
    (dict(query=Q, response="x", contexts=[TextNode(text="gold")]), "'contexts' item 0 is TextNode, not text"),
    (dict(query=Q, response="x", domian="alpha"), "got ['domian']"),
])
def test_bad_input_is_refused_in_one_line_naming_it_and_on_record(make_guard, call, words):
    guard = make_guard("accept")
    with pytest.raises(InputError) as err:
        HGuardEvaluator(guard).evaluate(**call)
    assert words in str(err.value) and "\n" not in str(err.value)
    rec = AuditLog(guard.audit.path).find(err.value.audit_id)
    assert rec["kind"] == "error" and rec["source"] == "HGuardEvaluator" and rec["answer_source"] == "given"


@pytest.mark.parametrize("response", ["paris", None, ["paris"]])
def test_evaluate_response_of_text_is_refused_in_one_line_and_on_record(make_guard, response):
    """A bad-input trial: `evaluate_response(query=Q, response="paris")` raised LlamaIndex's AttributeError ('str'
    object has no attribute 'response'), and no `error` record was written, as for every other refused call."""
    guard = make_guard("accept")
    for call in (lambda ev: ev.evaluate_response(query=Q, response=response, domain="alpha"),
                 lambda ev: asyncio.run(ev.aevaluate_response(query=Q, response=response, domain="alpha"))):
        with pytest.raises(InputError) as err:
            call(HGuardEvaluator(guard))
        said = str(err.value)
        assert "\n" not in said and f"needs the query engine's Response, got {type(response).__name__}: " in said
        assert "evaluate(query=q, response=text, contexts=[...])" in said
        rec = AuditLog(guard.audit.path).find(err.value.audit_id)
        assert (rec["kind"], rec["source"], rec["question"], rec["domain"]) == ("error", "HGuardEvaluator", Q, "alpha")


@pytest.mark.parametrize("streamed", ["StreamingResponse", "AsyncStreamingResponse"])
def test_evaluate_response_of_a_streamed_response_names_get_response_not_the_query(make_guard, streamed):
    """A review of the bad-input fixes: a StreamingResponse was refused with "pass engine.query(q)", the very call
    that returned it (an engine built with streaming=True). The fix said: its text by response.get_response() (a
    Response; awaited for an AsyncStreamingResponse), or an engine without streaming."""
    from llama_index.core.base.response import schema

    async def agen():
        yield "paris"

    response = getattr(schema, streamed)(response_gen=iter(["paris"]) if streamed == "StreamingResponse" else agen())
    guard = make_guard("accept")
    with pytest.raises(InputError) as err:
        HGuardEvaluator(guard).evaluate_response(query=Q, response=response, domain="alpha")
    said = str(err.value)
    assert "\n" not in said and f"got {streamed}: " in said and "engine.query(q)" not in said
    assert "response.get_response(), a Response, which pass here" in said and "without streaming" in said
    assert AuditLog(guard.audit.path).find(err.value.audit_id)["kind"] == "error"
    if streamed == "StreamingResponse":  # the fix given works: its Response is evaluated
        got = HGuardEvaluator(guard).evaluate_response(query=Q, response=response.get_response(), domain="alpha")
        assert got.response == "paris" and got.passing is not None


@pytest.mark.parametrize("domain", [["alpha"], 5, "", " "])
def test_a_domain_that_names_none_is_refused_when_the_evaluator_is_made(make_guard, domain):
    """A bad-input trial: `HGuardEvaluator(g, domain=["alpha"])` was made, and refused only at each evaluation."""
    with pytest.raises(InputError, match=r"HGuardEvaluator domain must be a domain name or None, got "
                                         rf"{type(domain).__name__}: .*; name a domain of the policy"):
        HGuardEvaluator(make_guard("accept"), domain=domain)


def test_an_answer_not_the_models_own_has_no_score_whatever_its_risk(make_guard, tmp_path):
    """score = 1 - risk was given to an answer that is not the model's own, whose risk is not calibrated: a cut-off
    edit held for review scored above an accepted own answer. Its score is None, said in the feedback; the model's
    own answer, held or accepted, keeps 1 - risk."""
    for route in ("accept", "review"):
        guard = make_guard(route, runs=tmp_path / route)
        own = guard.invoke(Q, ["gold is a metal ."], domain="alpha")
        ev = HGuardEvaluator(guard, domain="alpha")
        log = AuditLog(guard.audit.path)
        mine = ev.evaluate(query=Q, response=own.answer, contexts=["gold is a metal ."])
        rec = log.find(mine.feedback.rsplit("decision record: ", 1)[1])
        assert rec["risk"] is not None and mine.score == pytest.approx(1 - rec["risk"])
        assert "no score to average" not in mine.feedback
        risks = []
        for other in (_other(own.answer), own.answer.split()[0]):  # an edit, and the answer cut off
            assert other != own.answer
            r = ev.evaluate(query=Q, response=other, contexts=["gold is a metal ."])
            risks.append(log.find(r.feedback.rsplit("decision record: ", 1)[1])["risk"])
            assert r.score is None and r.passing is False, r.feedback
            assert "not the guarded model's own greedy answer" in r.feedback
        assert any(risk is not None for risk in risks)  # a risk it was given a score from


def test_a_response_hguard_already_decided_gets_that_decision_and_no_new_check(make_guard):
    """evaluate_response on a guarded engine's Response (HGuardQueryEngine over HGuardLLM): its text is the one
    shown (a held answer's review text), which a new check scored as the answer and queued for review. The decision
    on the response is used instead: no new decision record, no review item."""
    from llama_index.core.retrievers import BaseRetriever

    from llama_index.llms.hguard import HGuardLLM, HGuardQueryEngine

    nodes = [NodeWithScore(node=TextNode(text="gold is a metal ."), score=0.9)]

    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle):
            return nodes

    ev_runs = []
    for route in ("review", "accept"):
        guard = make_guard(route)
        engine = HGuardQueryEngine(Fixed(), HGuardLLM(guard, domain="alpha"))
        response = engine.query(Q)
        log = AuditLog(guard.audit.path)
        before = len(list(log))
        ev = HGuardEvaluator(guard, domain="alpha")
        for r in (ev.evaluate_response(query=Q, response=response),
                  asyncio.run(ev.aevaluate_response(query=Q, response=response))):
            assert r.passing is (route == "accept") and r.feedback.startswith(f"route: {route}\n")
            assert r.feedback.endswith(f"decision record: {response.metadata['audit_id']}")
            assert r.score == pytest.approx(1 - response.metadata["risk"]) and r.contexts == ["gold is a metal ."]
        assert len(list(log)) == before  # no second decision (nor a review item from one)
        ev_runs.append(BatchEvalRunner({"hguard": ev}, workers=1).evaluate_responses(queries=[Q], responses=[response]))
        assert len(list(log)) == before
    assert [out["hguard"][0].passing for out in ev_runs] == [False, True]
    # a plain Response (no decision in its metadata) is checked as before
    guard = make_guard("accept")
    plain = HGuardEvaluator(guard, domain="alpha").evaluate_response(query=Q, response=Response(response="paris",
                                                                                               source_nodes=nodes))
    assert AuditLog(guard.audit.path).find(plain.feedback.rsplit("decision record: ", 1)[1])["answer_source"] == "given"


def test_a_decision_in_metadata_is_taken_only_where_this_guards_log_confirms_it(make_guard):
    """A Response's metadata was taken as hguard's decision unchecked: metadata copied onto another response, or a
    guarded response whose text was edited, passed as accepted with no check at all. The decision is taken only
    where this guard's audit log holds that record for the question, the text shown, the domain and the route; any
    other response is checked anew (a new record of the text given), and the feedback says why."""
    from llama_index.core.retrievers import BaseRetriever

    from llama_index.llms.hguard import HGuardLLM, HGuardQueryEngine

    nodes = [NodeWithScore(node=TextNode(text="gold is a metal ."), score=0.9)]

    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle):
            return nodes

    guard = make_guard("accept")
    response = HGuardQueryEngine(Fixed(), HGuardLLM(guard, domain="alpha")).query(Q)
    assert response.metadata["route"] == "accept"
    log = AuditLog(guard.audit.path)
    ev = HGuardEvaluator(guard, domain="alpha")
    kept = ev.evaluate_response(query=Q, response=response)  # the engine's own: its decision, no second record
    assert kept.passing is True and kept.feedback.endswith(f"decision record: {response.metadata['audit_id']}")
    before = len(list(log))
    answer = response.response.removesuffix(CUT_MARK)  # the model's answer (an answer cut at max_new_tokens is marked)
    forged = [Response(response=_other(answer), source_nodes=nodes, metadata=dict(response.metadata)),
              Response(response="gold", source_nodes=nodes, metadata={**response.metadata, "audit_id": "0" * 32})]
    for i, r in enumerate(forged):
        out = ev.evaluate_response(query=Q, response=r)
        rec = log.find(out.feedback.rsplit("decision record: ", 1)[1])
        assert rec["id"] != response.metadata["audit_id"] and rec["answer"] == r.response, out.feedback
        assert rec["answer_source"] == "given" and out.passing is False and "not confirmed" in out.feedback
        assert len(list(log)) > before + i
    # its answer without the cut mark is the record's answer too; under another question it is not the decision
    plain = Response(response=answer, source_nodes=nodes, metadata=dict(response.metadata))
    assert ev.evaluate_response(query=Q, response=plain).feedback == kept.feedback
    other_q = ev.evaluate_response(query="where is paris ?", response=plain)
    assert log.find(other_q.feedback.rsplit("decision record: ", 1)[1])["answer_source"] == "given"
    assert "its question is not the decision record's" in other_q.feedback
    # another guard's response (its own log): no record of this guard's, checked anew
    theirs = make_guard("accept", runs=guard.audit.path.parent.parent / "theirs")
    anew = HGuardEvaluator(theirs, domain="alpha").evaluate_response(query=Q, response=plain)
    assert "no decision record this guard wrote" in anew.feedback
    assert AuditLog(theirs.audit.path).find(anew.feedback.rsplit("decision record: ", 1)[1])["answer"] == answer
    # a held response shown as its answer, its metadata edited to accepted: checked anew, never passed on its word
    held_guard = make_guard("review")
    held = HGuardQueryEngine(Fixed(), HGuardLLM(held_guard, domain="alpha")).query(Q)
    assert held.metadata["route"] == "review" and held.response.startswith(REVIEW_MARK)
    held.response = held.response.removeprefix(REVIEW_MARK).removesuffix(CUT_MARK)
    held.metadata["route"] = "accept"
    out = HGuardEvaluator(held_guard, domain="alpha").evaluate_response(query=Q, response=held)
    assert out.passing is False and "its route is not the decision record's" in out.feedback


def test_a_cut_answers_mark_is_not_scored_as_part_of_the_answer(make_guard):
    """An accepted answer cut at max_new_tokens is shown ending in " [...]" (the guard's cut mark), and the shown
    text is what a query engine's Response carries: evaluated, the mark was taken for words of the answer, which put
    the cut answer (max_new_tokens long) over the limit, refused as too long (within it, the grounding and number checks
    would read "[...]"). The answer is scored without it: the model's own answer, its cut said by the guard."""
    guard = make_guard("accept")
    own = guard.invoke(Q, ["gold is a metal ."], domain="alpha")
    assert own.cut_at_max_new_tokens and own.display_text == own.answer + CUT_MARK  # the tiny model is cut at 4 tokens
    log = AuditLog(guard.audit.path)
    ev = HGuardEvaluator(guard, domain="alpha")
    nodes = [NodeWithScore(node=TextNode(text="gold is a metal ."), score=0.9)]
    for r in (ev.evaluate(query=Q, response=own.display_text, contexts=["gold is a metal ."]),
              ev.evaluate_response(query=Q, response=Response(response=own.display_text, source_nodes=nodes))):
        rec = log.find(r.feedback.rsplit("decision record: ", 1)[1])
        assert rec["answer"] == own.answer and CUT_MARK.strip() not in rec["answer"] and r.response == own.answer
        own_tokens = rec["given_answer"]["own_tokens"]  # every token is the model's own greedy one
        assert rec["answer_source"] == "given" and own_tokens == rec["given_answer"]["tokens"] == 4, rec["given_answer"]
        assert r.passing is True and r.score == pytest.approx(1 - rec["risk"])
        assert any("reached the length limit" in x for x in rec["reasons"]), rec["reasons"]
