"""``HGuardEvaluator``: a LlamaIndex evaluator whose verdict is the guard's decision on an answer it did not generate
(``Guard.check``): a query engine's responses, evaluated offline."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from llama_index.core.evaluation.base import BaseEvaluator, EvaluationResult
from llama_index.core.prompts.mixin import PromptDictType

from hguard._guard_result import CUT_MARK, REVIEW_MARK, without_cut_mark
from hguard._guard_scoring import given_answer_problem
from hguard.errors import InputError
from hguard.guard import Guard, GuardResult, _is_domain_name
from hguard.review.queue import same_risk, same_text
from hguard.streaming import blanks_emptied, held_texts, in_thread, nothing_retrieved

_SOURCE = "HGuardEvaluator"
_ROUTES = ("accept", "abstain", "review")
#: why an answer that is not the model's own has no score (said in its feedback)
NOT_SCORED = ("score: none: the answer is not the guarded model's own greedy answer to the guard's prompt, so its risk "
              "is not calibrated (recorded for information only) and is no score to average")


class HGuardEvaluator(BaseEvaluator):
    """Evaluate a response with the guard: its answer's tokens are forced through the guarded model
    (:meth:`hguard.guard.Guard.check`) and routed accept / abstain / review as a generated answer is, the decision
    recorded in the guard's audit log (``answer_source: "given"``, ``given_answer.served: false``: an evaluation, which
    the monitor leaves out of its live figures).

    ``evaluate(query, response, contexts)`` (and ``aevaluate``; ``domain=`` overrides :attr:`domain`) returns an
    ``EvaluationResult``: ``passing`` is whether the answer was accepted, ``score`` is ``1 - risk`` for the model's own
    answer (None where the risk is absent, and for an answer that is not the model's own, whose risk is not
    calibrated: an average of scores would mix them in, said in the feedback), ``feedback`` the decision's reasons and
    its record id. ``evaluate_response(query, response)`` is LlamaIndex's own: the ``Response``'s text, its source
    nodes' text as the contexts; a ``Response`` this guard already decided (``HGuardQueryEngine``'s, or a query
    engine's over ``HGuardLLM``: the decision in ``response.metadata``) is given that decision, not checked again (its
    text is the one shown, the review text of a held answer, and a second check queued it for review), once the
    guard's audit log confirms it: a decision record this guard wrote lately (:meth:`hguard.audit.AuditLog.
    written_record`) for that question, the text shown, the domain and the decision. Metadata it cannot confirm (copied
    onto another response, the text edited, another process's or guard's, a log without it) is no decision: the
    response is checked anew as any other, its feedback saying why. An answer that is
    not token for token the guarded model's own greedy answer (another model's, an edited one) goes to review: not
    passing. ``contexts=[]`` (a retrieval that found nothing) goes to review too, never read as a closed-book answer.
    Every evaluation held for review is queued for reviewers, marked as an evaluation's (``hguard review list
    --evaluation exclude`` leaves them out): a ``BatchEvalRunner`` sweep fills the queue.

    .. code-block:: python

        evaluator = HGuardEvaluator(guard, domain="mine")
        result = evaluator.evaluate_response(query=q, response=engine.query(q))
        result.passing, result.score, result.feedback
    """

    def __init__(self, guard: Guard, domain: Optional[str] = None) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"HGuardEvaluator needs an hguard Guard, got {type(guard).__name__}: HGuardEvaluator(guard)")
        if domain is not None and not _is_domain_name(domain):  # refused here, not at each evaluation
            raise InputError(f"HGuardEvaluator domain must be a domain name or None, got {type(domain).__name__}: "
                             f"{domain!r:.80}; name a domain of the policy (domain='mine'), or leave it out to choose "
                             "one by similarity")
        self._guard = guard
        self._domain = domain

    @property
    def guard(self) -> Guard:
        return self._guard

    def _get_prompts(self) -> PromptDictType:
        return {}  # no prompt: the verdict is the guard's, not an LLM judge's

    def _update_prompts(self, prompts_dict: PromptDictType) -> None:
        if prompts_dict:
            raise ValueError(f"HGuardEvaluator has no prompts to update (got {sorted(prompts_dict)}): the guard scores "
                             "the answer itself, no judge is prompted")

    # ----------------------------------------------------------------------------------- reading

    def _read(self, query: Any, response: Any, contexts: Any, kwargs: dict[str, Any]
              ) -> tuple[str, str, Optional[list[str]], Optional[str], list[str]]:
        """(question, answer, passages, domain, problems); a refused call is written to the guard's audit log (an
        ``error`` record, its id on the InputError as ``audit_id``, the answer given in it)."""
        domain = kwargs.get("domain") or self._domain
        try:
            unknown = sorted(k for k in kwargs if k != "domain")
            if unknown:  # a misspelt "domian" would be dropped, the domain chosen by similarity
                raise InputError(f"HGuardEvaluator takes query, response, contexts and domain=, got {unknown}; leave "
                                 "them out (with BatchEvalRunner, pass other evaluators' arguments per evaluator)")
            if not isinstance(query, str):
                raise InputError(f"HGuardEvaluator 'query' must be the question as a string, got "
                                 f"{type(query).__name__}: {query!r:.80}")
            if not isinstance(response, str):
                raise InputError(f"HGuardEvaluator 'response' must be the answer's text, got {type(response).__name__}: "
                                 f"{response!r:.80}; pass response.response, or the Response to evaluate_response()")
            problems: list[str] = []
            passages: Optional[list[str]] = None
            if contexts is not None:
                if isinstance(contexts, str) or not isinstance(contexts, Sequence):
                    raise InputError(f"HGuardEvaluator 'contexts' must be a list of strings, got "
                                     f"{type(contexts).__name__}; pass [node.get_content() for node in nodes]")
                bad = next(((i, c) for i, c in enumerate(contexts) if not isinstance(c, str)), None)
                if bad is not None:
                    raise InputError(f"HGuardEvaluator 'contexts' item {bad[0]} is {type(bad[1]).__name__}, not text; "
                                     "pass [node.get_content() for node in nodes]")
                passages = blanks_emptied(list(contexts)) or None  # a blank one among others is named by the guard
                if passages is None:  # retrieval found nothing: never read as a closed-book answer
                    problems.append(nothing_retrieved("the contexts given"))
            # an accepted answer cut at max_new_tokens is shown ending in the guard's cut mark: no word of the answer
            # (taken for words, it put a cut answer over max_new_tokens, refused; within it, "[...]" would be scored)
            return query, without_cut_mark(response), passages, domain, problems
        except InputError as exc:
            self._guard.record_failure(query if isinstance(query, str) else repr(query), exc, domain=domain,
                                       source=_SOURCE, given={"answer": response})
            raise

    # ------------------------------------------------------------------------------- evaluation

    def _evaluate(self, query: Any, response: Any, contexts: Any, kwargs: dict[str, Any]) -> EvaluationResult:
        question, answer, passages, domain, problems = self._read(query, response, contexts, kwargs)
        [result] = self._guard.check_batch([question], [answer], [passages], [domain], served=False, problems=[problems])
        return evaluation_result(result, contexts)

    def evaluate(self, query: Optional[str] = None, response: Optional[str] = None,
                 contexts: Optional[Sequence[str]] = None, **kwargs: Any) -> EvaluationResult:
        """The guard's decision on ``response`` to ``query`` grounded in ``contexts``, as an ``EvaluationResult``."""
        return self._evaluate(query, response, contexts, kwargs)

    def evaluate_response(self, query: Optional[str] = None, response: Any = None, **kwargs: Any) -> EvaluationResult:
        """LlamaIndex's ``evaluate_response``; a ``Response`` whose ``metadata`` holds this guard's decision (a guarded
        engine's), confirmed by the guard's audit log, gets that decision without a new check; unconfirmed metadata is
        no decision (checked anew)."""
        decided, unconfirmed = self._decided(query, response)
        return decided if decided is not None else _noted(unconfirmed, super().evaluate_response(
            query, self._response(query, response, kwargs), **kwargs))

    async def aevaluate_response(self, query: Optional[str] = None, response: Any = None,
                                 **kwargs: Any) -> EvaluationResult:
        decided, unconfirmed = self._decided(query, response)
        return decided if decided is not None else _noted(unconfirmed, await super().aevaluate_response(
            query, self._response(query, response, kwargs), **kwargs))

    def _decided(self, query: Any, response: Any) -> tuple[Optional[EvaluationResult], Optional[str]]:
        """(the evaluation of a response this guard already decided, why its metadata's decision is not taken): the
        decision, read from its record in the guard's audit log, where ``response.metadata`` names one this guard wrote
        for this question, the text shown, the domain and the decision (a held answer's text is the text shown in its
        place); else (None, why), and the response is checked anew. (None, None) for a response without one."""
        meta = getattr(response, "metadata", None)
        if not isinstance(meta, Mapping) or not meta.get("audit_id") or "route" not in meta:
            return None, None
        rid = meta["audit_id"]
        log = self._guard.audit
        rec = log.written_record(rid) if log is not None and isinstance(rid, str) else None
        text = getattr(response, "response", None)
        differs: Optional[str] = "no decision record this guard wrote lately"
        if rec is not None and rec.get("kind") == "decision":
            unlike = next((name for name, same in (
                ("route", meta.get("route") == rec.get("route")),
                ("domain", meta.get("domain") == rec.get("domain")),
                ("risk", same_risk(meta.get("risk"), rec.get("risk"))),
                ("answer_source", meta.get("answer_source", "generated") == rec.get("answer_source", "generated")),
                ("question", query is None or same_text(query, rec.get("question"))),
                ("text", isinstance(text, str) and self._shown(text, rec))) if not same), None)
            differs = None if unlike is None else f"its {unlike} is not the decision record's"
        if differs is not None or rec is None:
            return None, (f"the decision in the response's metadata (record {str(rid)!r:.80}) is not confirmed by this "
                          f"guard's audit log ({differs}): checked anew")
        return _recorded(query, response, rec), None

    def _shown(self, text: str, rec: Mapping[str, Any]) -> bool:
        """Whether ``text`` is what the decision ``rec`` showed: its answer where accepted (marked where cut), else
        the text shown in a held answer's place."""
        answer = rec.get("answer")
        if rec.get("route") == "accept":
            return same_text(text, answer) or (text.endswith(CUT_MARK) and same_text(without_cut_mark(text), answer))
        return text in held_texts(self._guard) or (text.startswith(REVIEW_MARK) and
                                                   same_text(text[len(REVIEW_MARK):], answer))

    def _response(self, query: Any, response: Any, kwargs: dict[str, Any]) -> Any:
        """``response`` when it is a query engine's ``Response`` (its text and source nodes, as LlamaIndex reads them);
        anything else (the answer's text: LlamaIndex raised AttributeError on it) refused in one line and recorded as
        :meth:`_read` records a refused call."""
        if hasattr(response, "response") and hasattr(response, "source_nodes"):
            return response
        kind = type(response).__name__
        # a streaming engine's query() returned it: "pass engine.query(q)" named the call that gave it
        fix = ("its text is read by response.get_response(), a Response, which pass here (`await "
               "response.get_response()` of an AsyncStreamingResponse), or build the engine without streaming"
               if kind in ("StreamingResponse", "AsyncStreamingResponse") else "pass engine.query(q)")
        exc = InputError(f"HGuardEvaluator.evaluate_response needs the query engine's Response, got "
                         f"{kind}: {response!r:.80}; {fix}, or the answer's text as "
                         "evaluate(query=q, response=text, contexts=[...])")
        self._guard.record_failure(query if isinstance(query, str) else repr(query), exc,
                                   domain=kwargs.get("domain") or self._domain, source=_SOURCE, given={"answer": response})
        raise exc

    async def aevaluate(self, query: Optional[str] = None, response: Optional[str] = None,
                        contexts: Optional[Sequence[str]] = None, **kwargs: Any) -> EvaluationResult:
        """:meth:`evaluate` in a worker thread (the event loop free meanwhile: ``BatchEvalRunner`` runs several)."""
        return await in_thread(self._guard, self._evaluate, query, response, contexts, kwargs,
                               decided=lambda out: [])  # an evaluation delivers to no user: nothing to say undelivered


def _score(risk: Any, own: bool) -> Optional[float]:
    """``1 - risk`` of the model's own answer; None without a finite risk in [0, 1], or for an answer not its own."""
    if not own or isinstance(risk, bool) or not isinstance(risk, (int, float)) or not math.isfinite(risk):
        return None
    return 1.0 - float(risk) if 0.0 <= risk <= 1.0 else None


def evaluation_result(result: GuardResult, contexts: Optional[Sequence[str]] = None) -> EvaluationResult:
    """A decision as LlamaIndex's ``EvaluationResult``: passing where accepted, score ``1 - risk`` (None without a
    risk, and for a given answer that is not the model's own: its risk is for information only), feedback the route,
    the reasons and the decision record's id."""
    own = result.answer_source != "given" or given_answer_problem(result.given_answer) is None
    feedback = "\n".join([f"route: {result.route}", *result.reasons, *([] if own else [NOT_SCORED]),
                          f"decision record: {result.audit_id}"])
    return EvaluationResult(
        query=result.question, response=result.answer, contexts=None if contexts is None else list(contexts),
        passing=result.route == "accept", score=_score(result.risk, own), feedback=feedback)


def _recorded(query: Any, response: Any, rec: Mapping[str, Any]) -> EvaluationResult:
    """The evaluation of a response this guard already decided, from its decision record ``rec``: that decision,
    not a new check of the text shown (a held answer's review text, checked again, was queued for review as an
    answer). Passing only where its route is ``accept``; a score only for a generated answer's finite risk (a given
    one's record is scored as :func:`evaluation_result` scores it)."""
    route = rec.get("route")
    reasons = rec.get("reasons")
    own = rec.get("answer_source", "generated") == "generated" or given_answer_problem(rec.get("given_answer")) is None
    feedback = "\n".join([f"route: {route}", *(str(r) for r in (reasons if isinstance(reasons, list) else [])),
                          *([] if own else [NOT_SCORED]),
                          f"decided when the response was answered, not checked again; decision record: {rec['id']}"])
    return EvaluationResult(
        query=query, response=getattr(response, "response", None),
        contexts=[n.get_content() for n in getattr(response, "source_nodes", None) or []],
        passing=route == "accept", score=_score(rec.get("risk"), own and route in _ROUTES),
        feedback=feedback)


def _noted(why: Optional[str], result: EvaluationResult) -> EvaluationResult:
    """``result`` of a response checked anew, its feedback saying ``why`` the decision in its metadata was not taken
    (before the closing ``decision record:`` line)."""
    if why is None or not result.feedback:
        return result
    head, sep, tail = result.feedback.rpartition("\n")
    feedback = f"{head}\n{why}{sep}{tail}" if sep else f"{why}\n{tail}"
    return result.model_copy(update={"feedback": feedback})


__all__ = ["HGuardEvaluator", "evaluation_result"]
