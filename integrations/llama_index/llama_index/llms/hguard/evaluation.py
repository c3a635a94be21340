"""``HGuardEvaluator``: a LlamaIndex evaluator whose verdict is the guard's decision on an answer it did not generate
(``Guard.check``): a query engine's responses, evaluated offline."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from llama_index.core.evaluation.base import BaseEvaluator, EvaluationResult
from llama_index.core.prompts.mixin import PromptDictType

from hguard.errors import InputError
from hguard.guard import Guard, GuardResult
from hguard.streaming import blanks_emptied, in_thread, nothing_retrieved

_SOURCE = "HGuardEvaluator"


class HGuardEvaluator(BaseEvaluator):
    """Evaluate a response with the guard: its answer's tokens are forced through the guarded model
    (:meth:`hguard.guard.Guard.check`) and routed accept / abstain / review as a generated answer is, the decision
    recorded in the guard's audit log (``answer_source: "given"``, ``given_answer.served: false``: an evaluation, which
    the monitor leaves out of its live figures).

    ``evaluate(query, response, contexts)`` (and ``aevaluate``; ``domain=`` overrides :attr:`domain`) returns an
    ``EvaluationResult``: ``passing`` is whether the answer was accepted, ``score`` is ``1 - risk`` (None where the
    risk is absent: a failure, held), ``feedback`` the decision's reasons and its record id. ``evaluate_response(query,
    response)`` is LlamaIndex's own: the ``Response``'s text, its source nodes' text as the contexts. An answer that is
    not token for token the guarded model's own greedy answer (another model's, an edited one) goes to review: not
    passing. ``contexts=[]`` (a retrieval that found nothing) goes to review too, never read as a closed-book answer.

    .. code-block:: python

        evaluator = HGuardEvaluator(guard, domain="mine")
        result = evaluator.evaluate_response(query=q, response=engine.query(q))
        result.passing, result.score, result.feedback
    """

    def __init__(self, guard: Guard, domain: Optional[str] = None) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"HGuardEvaluator needs an hguard Guard, got {type(guard).__name__}: HGuardEvaluator(guard)")
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
            return query, response, passages, domain, problems
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

    async def aevaluate(self, query: Optional[str] = None, response: Optional[str] = None,
                        contexts: Optional[Sequence[str]] = None, **kwargs: Any) -> EvaluationResult:
        """:meth:`evaluate` in a worker thread (the event loop free meanwhile: ``BatchEvalRunner`` runs several)."""
        return await in_thread(self._guard, self._evaluate, query, response, contexts, kwargs,
                               decided=lambda out: [])  # an evaluation delivers to no user: nothing to say undelivered


def evaluation_result(result: GuardResult, contexts: Optional[Sequence[str]] = None) -> EvaluationResult:
    """A decision as LlamaIndex's ``EvaluationResult``: passing where accepted, score ``1 - risk`` (None without a
    risk), feedback the route, the reasons and the decision record's id."""
    feedback = "\n".join([f"route: {result.route}", *result.reasons, f"decision record: {result.audit_id}"])
    return EvaluationResult(
        query=result.question, response=result.answer, contexts=None if contexts is None else list(contexts),
        passing=result.route == "accept", score=None if result.risk is None else 1.0 - float(result.risk),
        feedback=feedback)


__all__ = ["HGuardEvaluator", "evaluation_result"]
