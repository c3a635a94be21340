"""Fault injection: no fault in any stage of a guarded answer reaches ``accept``.

Each case uses a policy that accepts every scored answer (accept_below 1.0), checks that the
unfaulted control accepts, then injects one fault (an exception, a NaN, an infinity, a missing value)
into one stage and checks the answer goes to review with a reason that names the fault, or that the
caller gets the error and nothing is recorded as accepted. Stages: generation, recording (CETT),
confidence, probe, merger, grounding, embedder, thresholds, audit, review queue.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from hguard.audit import AuditLog
from hguard.errors import AuditError, InputError, ReviewQueueError
from hguard.guard import Guard
from hguard.policy import Policy, decide

Q = "who is the author of the book ?"
CTX = "the book was written by an author in paris"


def _policy(root, tmp_path, **domain):
    return Policy.model_validate(
        {
            "version": 1,
            "probes": str(root / "probes"),
            "audit": {"path": str(tmp_path / "audit.jsonl")},
            "review": {"queue": str(tmp_path / "queue.sqlite3")},
            "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
            # the tiny probes are closed-book: requests with context are scored with them on purpose here
            "domains": {"alpha": {"accept_below": 1.0, "abstain_above": 1.0, "context_with_closed_book_probe": "allow", **domain},
                        "beta": {}},
        }
    )


class _Unreadable(RuntimeError):
    """A model's or embedder's own error type whose message cannot be read (its ``str()`` raises)."""

    def __str__(self):
        raise ValueError("no message")


class _Grounding:
    """A grounding scorer returning a fixed result (or raising)."""

    def __init__(self, result):
        self.result = result

    def score(self, question, answer, context):
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


GOOD_GROUNDING = {"grounding": 0.9, "grounding_lexical": 0.9}


@pytest.fixture
def make_guard(tiny_calibrated, tmp_path):
    lm, root = tiny_calibrated

    def make(grounding=None, **domain):
        return Guard.from_policy(_policy(root, tmp_path, **domain), lm=lm, grounding=grounding or _Grounding(GOOD_GROUNDING))

    return make


def _accepted_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    if not path.exists():
        return []
    return [r for r in AuditLog(path) if r.get("route") == "accept"]


def test_controls_accept_without_a_fault(make_guard):
    g = make_guard()
    assert g.invoke(Q, domain="alpha").route == "accept"
    assert g.invoke(Q, context=CTX, domain="alpha").route == "accept"


@pytest.mark.parametrize(
    "result, reason",
    [
        ({"grounding": float("nan"), "grounding_lexical": 0.5}, "'grounding' is nan"),
        ({"grounding": float("inf")}, "'grounding' is inf"),
        ({"grounding": None}, "'grounding' is None"),
        ({"grounding_lexical": 0.9}, "no 'grounding' support value"),
        ({}, "no 'grounding' support value"),
        (None, "not a mapping"),
        ({"grounding": 0.9, "grounding_embedding": float("nan")}, "'grounding_embedding' is nan"),
        # float() reads these, but they are no scores (README, Extending hguard): held, naming the scorer and the value
        ({"grounding": "0.9", "grounding_lexical": 0.9}, "'grounding' is '0.9' (str) from the grounding scorer _Grounding"),
        ({"grounding": True, "grounding_lexical": 0.9}, "'grounding' is True (bool) from the grounding scorer _Grounding"),
        ({"grounding": 0.9, "grounding_lexical": np.array(0.9)}, "'grounding_lexical' is array(0.9) (ndarray)"),
        # float() raises OverflowError on it: held as no number, naming it, not as a failure of the scorer
        ({"grounding": 10**400, "grounding_lexical": 0.9}, "(int) from the grounding scorer _Grounding"),
        (RuntimeError("embedder gone"), "grounding failed: RuntimeError: embedder gone"),
        (_Unreadable("embedder gone"), "grounding failed: _Unreadable: _Unreadable('embedder gone') (its message could "
                                       "not be read: str() raised ValueError)"),
    ],
)
def test_grounding_faults_with_context_go_to_review(make_guard, result, reason):
    r = make_guard(grounding=_Grounding(result)).invoke(Q, context=CTX, domain="alpha")
    assert r.route == "review", r.reasons
    assert any(reason in x for x in r.reasons), r.reasons


def test_grounding_fault_with_min_grounding_and_weight_still_reviews(make_guard):
    # the original fail-open: NaN grounding was read as "no context", skipping min_grounding and the merge
    g = make_guard(grounding=_Grounding({"grounding": float("nan")}), min_grounding=0.5, grounding_weight=1.0)
    r = g.invoke(Q, context=CTX, domain="alpha")
    assert r.route == "review" and r.signals["grounding"] is None


def test_decide_fails_closed_when_context_was_given_without_grounding(tiny_calibrated, tmp_path):
    from hguard.policy import Thresholds

    pol = _policy(tiny_calibrated[1], tmp_path)
    t = Thresholds(1.0, 1.0, 0.1, 0.9, 0, None, None, None, "manual")
    kw = dict(domain_policy=pol.domain("alpha"), thresholds=t, policy=pol, domain="alpha")
    assert decide(0.1, grounding=None, context_given=False, **kw).route == "accept"
    d = decide(0.1, grounding=None, context_given=True, **kw)
    assert d.route == "review" and any("context was given" in x for x in d.reasons)


def _patch_generations(g: Guard, monkeypatch, change):
    real = g.generator.generate

    def faulty(*a, **k):
        return [change(x) for x in real(*a, **k)]

    monkeypatch.setattr(g.generator, "generate", faulty)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("signal", ["mean_logprob", "min_logprob", "mean_entropy"])
def test_confidence_faults_go_to_review(make_guard, monkeypatch, signal, value):
    g = make_guard()
    _patch_generations(g, monkeypatch, lambda x: replace(x, confidence={**x.confidence, signal: value}))
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any(f"confidence signal {signal!r}" in x for x in r.reasons), r.reasons


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda x: replace(x, cett=None), "neuron contributions are missing"),
        (lambda x: replace(x, cett=np.full_like(x.cett, np.nan)), "not finite"),
        (lambda x: replace(x, cett=np.full_like(x.cett, np.inf)), "not finite"),
        (lambda x: replace(x, token_ids=[]), "the answer is empty"),
    ],
)
def test_recording_faults_go_to_review(make_guard, monkeypatch, change, reason):
    g = make_guard()
    _patch_generations(g, monkeypatch, change)
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any(reason in x for x in r.reasons), r.reasons


@pytest.mark.parametrize("logit", [float("nan"), float("inf"), float("-inf")])
def test_probe_non_finite_logit_goes_to_review(make_guard, monkeypatch, logit):
    g = make_guard()
    monkeypatch.setattr(g.probes["alpha"].probe, "decision_function_subset", lambda *a, **k: np.array([logit]))
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any("logit" in x and "not a finite number" in x for x in r.reasons), r.reasons


@pytest.mark.parametrize("logit", ["-5", True], ids=["str", "bool"])
def test_probe_logit_that_is_no_number_goes_to_review(make_guard, monkeypatch, logit):
    # float() reads "-5" (a tiny risk: accepted) and True; a probe's logit is a number or the answer is held
    g = make_guard()
    monkeypatch.setattr(g.probes["alpha"].probe, "decision_function_subset", lambda *a, **k: [logit])
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any(f"the probe's logit is {logit!r} ({type(logit).__name__}), not a finite number"
                                       in x for x in r.reasons), r.reasons


def test_probe_very_negative_logit_is_scored_not_overflowed(make_guard, monkeypatch):
    # a logit of -1000 is a real (tiny) risk: the sigmoid must not overflow and send it to review
    g = make_guard()
    monkeypatch.setattr(g.probes["alpha"].probe, "decision_function_subset", lambda *a, **k: np.array([-1000.0]))
    r = g.invoke(Q, domain="alpha")
    assert r.signals["neuron_risk"] == 0.0 and not any("scoring failed" in x for x in r.reasons)


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("intercept", float("nan"), "intercept"),
        ("intercept", "x", "intercept"),
        ("coef", None, "coef"),
        ("scale", 0, "scale"),
        ("features", [], "features"),
        ("features", ["no_such_signal"], "no_such_signal"),
    ],
)
def test_merger_faults_go_to_review(make_guard, field, value, reason):
    g = make_guard()
    cd = g.probes["alpha"]
    merger = dict(cd.merger)
    if field in ("coef", "scale") and value is not None:
        value = [value] * len(merger[field])
    if value == ["no_such_signal"]:
        value = ["no_such_signal", *merger["features"][1:]]
    merger[field] = value
    g.add_domain(replace(cd, merger=merger))
    r = g.invoke(Q, domain="alpha")
    # a signal the merger names but nothing computes is a hold on that signal ("cannot merge risk"), the rest failures
    said = "cannot merge risk" if reason == "no_such_signal" else "scoring failed"
    assert r.route == "review" and any(said in x and reason in x for x in r.reasons), r.reasons


def test_scoring_fault_whose_message_cannot_be_read_goes_to_review(make_guard, monkeypatch):
    g = make_guard()
    monkeypatch.setattr(g.probes["alpha"].probe, "decision_function_subset",
                        lambda *a, **k: (_ for _ in ()).throw(_Unreadable("boom")))
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any("scoring failed: _Unreadable" in x and "could not be read" in x
                                       for x in r.reasons), r.reasons


def test_embedder_fault_in_domain_choice_goes_to_review(make_guard):
    class BrokenEmbedder:
        def encode(self, texts):
            raise RuntimeError("embedder weights unreadable")

    g = make_guard()
    g._embedder = BrokenEmbedder()
    r = g.invoke(Q)  # no domain given: the embedder chooses
    assert r.route in ("review", "abstain") and r.route != "accept"
    assert any("embedder weights unreadable" in x for x in r.reasons), r.reasons


def test_embedder_returning_nan_in_domain_choice_does_not_accept(make_guard):
    class NanEmbedder:
        def encode(self, texts):
            return np.full((len(texts), 4), np.nan, dtype=np.float32)

    g = make_guard()
    g._embedder = NanEmbedder()
    r = g.invoke(Q)
    assert r.route != "accept" and r.domain is None, (r.route, r.reasons)


@pytest.mark.parametrize("how", ["raise", "none"])
def test_threshold_faults_go_to_review(tiny_calibrated, tmp_path, monkeypatch, how):
    # thresholds are fitted once, when the guard loads the domain: faults there fail the domain closed
    from hguard.domain import CalibratedDomain

    lm, root = tiny_calibrated
    pol = _policy(root, tmp_path).model_dump(mode="json")
    pol["domains"]["alpha"] = {"target_hallucination_rate": 0.5, "confidence": 0.6}  # fitted thresholds only
    if how == "raise":
        monkeypatch.setattr(CalibratedDomain, "fit_thresholds", lambda self, dp: (_ for _ in ()).throw(ValueError("scores corrupt")))
        g = Guard.from_policy(Policy.model_validate(pol), lm=lm, grounding=_Grounding(GOOD_GROUNDING))
        r = g.invoke(Q, domain="alpha")
        assert r.route == "review" and any("scores corrupt" in x for x in r.reasons), r.reasons
    else:
        monkeypatch.setattr(CalibratedDomain, "fit_thresholds", lambda self, dp: None)
        g = Guard.from_policy(Policy.model_validate(pol), lm=lm, grounding=_Grounding(GOOD_GROUNDING))
        r = g.invoke(Q, domain="alpha")
        assert r.route == "review" and any("no calibrated probe thresholds" in x for x in r.reasons), r.reasons


def test_generation_fault_reaches_the_caller_and_nothing_is_accepted(make_guard, tmp_path, monkeypatch):
    g = make_guard()
    monkeypatch.setattr(g.generator, "generate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CUDA error")))
    with pytest.raises(RuntimeError, match="CUDA error"):
        g.invoke(Q, domain="alpha")
    assert _accepted_records(tmp_path) == []


def _failing_on_call(real, n, exc):
    """``real``, raising ``exc`` on its ``n``-th call (counting from 1)."""
    calls = {"n": 0}

    def wrapped(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*a, **k)

    return wrapped


def _kinds(tmp_path):
    return [r for r in AuditLog(tmp_path / "audit.jsonl")]


def test_a_generation_fault_is_an_error_record_naming_the_request_and_its_stage(make_guard, tmp_path, monkeypatch):
    """A model that raises while it generates (CUDA out of memory) left no record of the request: the README
    promises every request one. It gets an error record (its id on the raised error), and the error is raised."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    oom = RuntimeError("CUDA out of memory (simulated)")
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, oom))
    with pytest.raises(RuntimeError, match="CUDA out of memory") as info:
        g.invoke(Q, domain="alpha", request_id="req-1")
    assert info.value is oom  # the error itself, not a wrapper
    (rec,) = _kinds(tmp_path)
    assert rec["kind"] == "error" and rec["id"] == info.value.audit_id and info.value.audit_ids == [rec["id"]]
    assert rec["stage"] == "generation" and rec["error_type"] == "RuntimeError" and "CUDA out of memory" in rec["error"]
    assert rec["caller_request_id"] == "req-1" and rec["domain"] == "alpha" and rec["question"] == Q
    # scoring raising after the answer was generated: the same, its stage "scoring"
    monkeypatch.setattr(g, "_finish", _failing_on_call(g._finish, 1, ValueError("scorer bug")))
    with pytest.raises(ValueError, match="scorer bug"):
        g.invoke(Q, context=CTX, domain="alpha")
    rec = _kinds(tmp_path)[-1]
    assert rec["kind"] == "error" and rec["stage"] == "scoring" and rec["context"] == CTX


def test_a_batch_failing_part_way_says_its_decided_answers_undelivered_and_the_rest_failed(make_guard, tmp_path,
                                                                                          monkeypatch):
    """abatch over two domains: the first domain's answers were decided (accepted) and recorded, the second's
    generation raised, and the log held an accept nobody received and nothing of the failed request."""
    import asyncio

    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 2, RuntimeError("CUDA OOM")))
    with pytest.raises(RuntimeError, match="CUDA OOM") as info:
        asyncio.run(g.abatch([Q, Q, Q], domains=["alpha", "beta", "beta"], request_ids=["req-A", "req-B", "req-C"]))
    decision, undelivered, *errors = _kinds(tmp_path)
    assert decision["kind"] == "decision" and decision["route"] == "accept" and decision["caller_request_id"] == "req-A"
    assert undelivered["kind"] == "answer_not_delivered" and undelivered["decision_audit_id"] == decision["id"]
    assert "its batch failed on another request after this answer was decided (RuntimeError: CUDA OOM)" in undelivered["why"]
    assert [(e["kind"], e["caller_request_id"], e["domain"], e["stage"]) for e in errors] == [
        ("error", "req-B", "beta", "generation"), ("error", "req-C", "beta", "generation")]
    assert info.value.audit_ids == [e["id"] for e in errors]
    # a group never reached (the batch failed on an earlier one) is on record too, as not started
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, RuntimeError("CUDA OOM")))
    with pytest.raises(RuntimeError):
        g.batch([Q, Q], domains=["alpha", "beta"], request_ids=["req-D", "req-E"])
    assert [(r["kind"], r["caller_request_id"], r["stage"]) for r in _kinds(tmp_path)[-2:]] == [
        ("error", "req-D", "generation"), ("error", "req-E", "not_started")]


def test_a_failure_after_the_decision_is_recorded_says_it_undelivered_never_undecided(make_guard, tmp_path,
                                                                                     monkeypatch):
    """The decision was written, then the rest of its recording raised (the review queue's enqueue raising a foreign
    error, a spot-check bug): the log held the decision and an error record saying the request failed before one,
    and nothing said the decided answer never reached the caller."""
    import sqlite3

    g = make_guard(accept_below=0.0, spot_check_rate=0.0, spot_check_min_per_day=0)  # every answer held for review

    def enqueue(item):
        raise sqlite3.InterfaceError("Error binding parameter 3: type 'numpy.float32' is not supported")

    monkeypatch.setattr(g.review_queue, "enqueue", enqueue)
    with pytest.raises(sqlite3.InterfaceError) as info:
        g.invoke(Q, domain="alpha", request_id="req-1")
    decision, undelivered = _kinds(tmp_path)  # no error record
    assert decision["kind"] == "decision" and decision["caller_request_id"] == "req-1"
    assert undelivered["kind"] == "answer_not_delivered" and undelivered["decision_audit_id"] == decision["id"]
    assert "after this answer's decision was recorded" in undelivered["why"] and "InterfaceError" in undelivered["why"]
    assert info.value.audit_id == info.value.decision_audit_id == decision["id"]  # named, not recorded again
    assert info.value.audit_id_by_index == {0: decision["id"]}
    # a batch: the first accept's spot-check raises; the second request, never decided, gets its error record
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    monkeypatch.setattr(g, "_spot_check", lambda result: (_ for _ in ()).throw(RuntimeError("spot-check bug")))
    with pytest.raises(RuntimeError, match="spot-check bug") as info:
        g.batch([Q, Q], domains=["alpha", "alpha"], request_ids=["A", "B"])
    decision, undelivered, error = _kinds(tmp_path)[-3:]
    assert (decision["kind"], decision["route"], decision["caller_request_id"]) == ("decision", "accept", "A")
    assert undelivered["kind"] == "answer_not_delivered" and undelivered["decision_audit_id"] == decision["id"]
    assert (error["kind"], error["caller_request_id"]) == ("error", "B")
    assert info.value.audit_ids == [error["id"]] and info.value.audit_id_by_index == {0: decision["id"], 1: error["id"]}


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(1)], ids=["KeyboardInterrupt", "SystemExit"])
def test_a_batch_interrupted_part_way_is_on_record_and_the_interrupt_raised_as_it_is(make_guard, tmp_path, monkeypatch,
                                                                                    stop):
    """Ctrl-C in ``hguard ask``, or a web server's worker timeout calling sys.exit in the request's thread, while the
    second group of a batch was generated: only Exception was caught, so the log held the first group's accept, which
    nobody received, and nothing of the interrupted request."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 2, stop))
    with pytest.raises(type(stop)) as info:
        g.batch([Q, Q], domains=["alpha", "beta"], request_ids=["req-A", "req-B"])
    assert info.value is stop
    decision, undelivered, error = _kinds(tmp_path)
    assert decision["kind"] == "decision" and decision["route"] == "accept"
    assert undelivered["kind"] == "answer_not_delivered" and undelivered["decision_audit_id"] == decision["id"]
    assert (error["kind"], error["caller_request_id"], error["stage"], error["error_type"]) == (
        "error", "req-B", "generation", type(stop).__name__)
    assert stop.audit_ids == [error["id"]]

    class FullDisk:  # the interrupt is raised as it is, not replaced by the log's AuditError: a warning says it
        def append(self, record, kind="decision"):
            raise AuditError("[Errno 28] No space left on device")

    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, stop))
    g.audit = FullDisk()
    with pytest.warns(UserWarning, match=r"interrupted .* failed \(1 of 1: AuditError: \[Errno 28\]"):
        with pytest.raises(type(stop)):
            g.invoke(Q, domain="alpha")


class _StoppingEmbedder:
    """A sentence embedder (choosing the domain) that raises ``stop`` when asked to embed ``at`` (a question), as a
    Ctrl-C lands while the embedder loads or embeds on a guard's first question; other texts get fixed vectors."""

    def __init__(self, stop, at):
        self.stop, self.at = stop, at

    def encode(self, texts):
        if self.at in texts:
            raise self.stop
        return np.ones((len(texts), 4), dtype=np.float32)


def _fail_on_odd_input(g, monkeypatch, stop) -> None:
    """Make the prompt of an input containing "odd" fail to build: ``stop`` None, the model's own chat template refuses
    it (jinja's TemplateError, no InputError); else ``stop`` is raised while the tokenizer builds it (a Ctrl-C)."""
    from hguard.testing import CHAT_TEMPLATE

    tok = g.lm.tokenizer
    if stop is None:
        monkeypatch.setattr(tok, "chat_template", "{% for m in messages %}{% if 'odd' in m['content'] %}"
                            "{{ raise_exception('cannot render ' + m['content']) }}{% endif %}{% endfor %}" + CHAT_TEMPLATE)
    else:
        real = tok.apply_chat_template

        def apply_chat_template(messages, *a, **k):
            if any("odd" in m["content"] for m in messages):
                raise stop
            return real(messages, *a, **k)

        monkeypatch.setattr(tok, "apply_chat_template", apply_chat_template)


@pytest.mark.parametrize("stop", [None, KeyboardInterrupt()], ids=["TemplateError", "KeyboardInterrupt"])
def test_a_batch_whose_input_check_raises_on_one_input_is_on_record(make_guard, tmp_path, monkeypatch, stop):
    """A chat template that raises on one odd input (as a model's template refuses turns it cannot render), or a
    Ctrl-C while a batch's inputs were checked: only InputError was caught there, so the batch ended with no record of
    any of its requests. Now every request is on record, nothing is generated, and the error is raised as it is."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    _fail_on_odd_input(g, monkeypatch, stop)
    odd = "an odd question ?"
    with pytest.raises(Exception if stop is None else type(stop)) as info:
        g.batch([Q, "  ", odd, Q], [None, None, CTX, None], domains=["alpha"] * 4, request_ids=["A", "B", "C", "D"])
    err = info.value
    assert stop is None and type(err).__name__ == "TemplateError" and "cannot render" in str(err) or err is stop
    records = _kinds(tmp_path)
    assert [(r["kind"], r["caller_request_id"], r.get("stage"), r["error_type"]) for r in records] == [
        ("error", "B", None, "InputError"),  # refused as before, its own error record
        ("error", "A", "not_started", type(err).__name__), ("error", "C", "input_check", type(err).__name__),
        ("error", "D", "not_started", type(err).__name__)]  # nothing generated, no decision
    assert records[2]["question"] == odd and records[2]["context"] == CTX and records[2]["domain"] == "alpha"
    by_request = {r["caller_request_id"]: r["id"] for r in records}
    assert err.audit_id_by_index == {0: by_request["A"], 1: by_request["B"], 2: by_request["C"], 3: by_request["D"]}
    assert err.audit_ids == list(err.audit_id_by_index.values()) and err.audit_id == by_request["A"]
    # asked alone, it is on record too, and the others are answered as before
    with pytest.raises(type(err)) as info:
        g.invoke(odd, request_id="E")
    rec = _kinds(tmp_path)[-1]
    assert (rec["caller_request_id"], rec["stage"], info.value.audit_id) == ("E", "input_check", rec["id"])
    ok = g.invoke(Q, domain="alpha")  # (held under the changed template: not the one the probe was calibrated with)
    assert _kinds(tmp_path)[-1]["kind"] == "decision" and (stop is None or ok.route == "accept"), ok.reasons


def test_the_requests_behind_a_failed_input_check_are_recorded_with_their_passages_joined(make_guard, tmp_path,
                                                                                         monkeypatch):
    """The requests after the one whose input check raised were recorded with their passages as a Python list's repr
    ("['first passage .', ...]", a LangChain Document's metadata too), the requests before it with the context the
    guard reads. Each error record now keeps the context as read: passages joined, blank and repeated ones left out."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    _fail_on_odd_input(g, monkeypatch, None)
    passages = ["first passage .", " ", "second passage .", "first  passage ."]
    with pytest.raises(Exception, match="cannot render"):
        g.batch([Q, "an odd question ?", Q], [passages, None, passages], domains=["alpha"] * 3)
    records = _kinds(tmp_path)
    assert [(r["stage"], r["context"]) for r in records] == [
        ("not_started", "first passage .\n\nsecond passage ."), ("input_check", None),
        ("not_started", "first passage .\n\nsecond passage .")]
    # a request cancelled before it started (an async caller's timeout while it waited for a worker) alike; passages
    # the guard cannot read (no strings) are kept as they were given
    g.record_cancelled_batch([Q, Q], [passages, [1, "x"]])
    assert [r["context"] for r in _kinds(tmp_path)[-2:]] == ["first passage .\n\nsecond passage .", "[1, 'x']"]


@pytest.mark.parametrize("stop", [None, KeyboardInterrupt()], ids=["TemplateError", "KeyboardInterrupt"])
def test_text_to_search_with_whose_input_check_raises_is_on_record(make_guard, tmp_path, monkeypatch, stop):
    """Guard.rewrite_query (a chain's condense / history-aware / multi-query step, both adapters') caught only
    InputError while it built the prompt: a chat template that cannot render the input, or a Ctrl-C there, left no
    record of the step. Now it gets an error record at stage input_check, its id on the error raised as it is."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    _fail_on_odd_input(g, monkeypatch, stop)
    monkeypatch.setattr(g.generator, "generate", lambda *a, **k: pytest.fail("generated after a failed check"))
    odd = "an odd question ?"
    with pytest.raises(Exception if stop is None else type(stop)) as info:
        g.rewrite_query(odd, step="condense_question")
    err = info.value
    assert stop is None and type(err).__name__ == "TemplateError" and "cannot render" in str(err) or err is stop
    (rec,) = _kinds(tmp_path)
    assert (rec["kind"], rec["stage"], rec["error_type"], rec["question"], rec["source"]) == (
        "error", "input_check", type(err).__name__, odd, "retrieval_query: condense_question")
    assert err.audit_id == rec["id"] and err.audit_ids == [rec["id"]]
    # input refused as bad is on record once, as before (no second record for the same failure)
    with pytest.raises(InputError, match="empty"):
        g.rewrite_query("  ", step="condense_question")
    assert [(r["kind"], r.get("stage"), r["error_type"]) for r in _kinds(tmp_path)[1:]] == [("error", None, "InputError")]


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(1)], ids=["KeyboardInterrupt", "SystemExit"])
def test_a_request_interrupted_while_its_domain_is_chosen_is_on_record(make_guard, tmp_path, stop):
    """A Ctrl-C (a Jupyter kernel interrupt, a worker timeout's SystemExit) while the embedder chose the domain (25 s
    on a kernel's first question: it loads, and embeds every domain's calibration questions) left no record at all and
    no audit_id on the interrupt: domain choice ran before the guard's try, which only caught Exception there."""
    import asyncio

    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    g._embedder = _StoppingEmbedder(stop, Q)
    with pytest.raises(type(stop)) as info:
        g.invoke(Q, request_id="req-1")
    assert info.value is stop
    (rec,) = _kinds(tmp_path)
    assert (rec["kind"], rec["stage"], rec["error_type"], rec["caller_request_id"], rec["question"], rec["domain"]) == (
        "error", "domain_choice", type(stop).__name__, "req-1", Q, None)
    assert stop.audit_id == rec["id"] and stop.audit_ids == [rec["id"]]
    # a named domain: its similarity to the question is measured by the same embedder
    with pytest.raises(type(stop)):
        g.invoke(Q, context=CTX, domain="alpha")
    rec = _kinds(tmp_path)[-1]
    assert (rec["kind"], rec["stage"], rec["domain"], rec["context"]) == ("error", "domain_choice", "alpha", CTX)
    # a batch: the request whose domain was being chosen, and the one behind it, each on record
    q2 = "what is the capital of france ?"
    g._embedder = _StoppingEmbedder(stop, q2)
    with pytest.raises(type(stop)):
        g.batch([Q, q2, Q], request_ids=["A", "B", "C"])
    assert [(r["kind"], r["caller_request_id"], r["stage"]) for r in _kinds(tmp_path)[-3:]] == [
        ("error", "A", "not_started"), ("error", "B", "domain_choice"), ("error", "C", "not_started")]
    assert stop.audit_id_by_index == {i: r["id"] for i, r in enumerate(_kinds(tmp_path)[-3:])}
    # the async forms: the worker thread records it, and the interrupt reaches the caller
    for call, n in ((g.ainvoke(q2, request_id="D"), 1), (g.abatch([Q, q2], request_ids=["E", "F"]), 2)):
        with pytest.raises(type(stop)):
            asyncio.run(call)
        assert [(r["kind"], r["stage"]) for r in _kinds(tmp_path)[-n:]][-1] == ("error", "domain_choice")
    assert [r["caller_request_id"] for r in _kinds(tmp_path)[-3:]] == ["D", "E", "F"]
    # the later early stages were on record already: the grounding scorer (loading its embedder) is the scoring stage
    g = make_guard(grounding=_Grounding(stop), spot_check_rate=0.0, spot_check_min_per_day=0)
    with pytest.raises(type(stop)):
        g.invoke(Q, context=CTX, domain="alpha")
    rec = _kinds(tmp_path)[-1]
    assert (rec["kind"], rec["stage"], rec["error_type"]) == ("error", "scoring", type(stop).__name__)
    assert len([r for r in _kinds(tmp_path) if r["kind"] == "decision"]) == 0  # nothing decided, nothing accepted


def test_a_model_error_whose_message_cannot_be_read_is_recorded_and_raised_itself(make_guard, tmp_path, monkeypatch):
    """An exception whose str() raises, from the model: recording it read str() first, so the str() error replaced
    the model's own and nothing was recorded."""
    from hguard.streaming import error_fields

    class OddError(RuntimeError):
        def __str__(self):
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    odd = OddError()
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 2, odd))
    with pytest.raises(OddError) as info:
        g.batch([Q, Q], domains=["alpha", "beta"], request_ids=["A", "B"])
    assert info.value is odd
    decision, undelivered, error = _kinds(tmp_path)
    assert undelivered["decision_audit_id"] == decision["id"] and "OddError: OddError() (its message could not be " \
        "read: str() raised UnicodeDecodeError)" in undelivered["why"]
    assert error["kind"] == "error" and error["error_type"] == "OddError" and error["id"] == odd.audit_id
    assert error["error"].startswith("OddError: OddError() (its message could not be read")
    assert error_fields(odd)["error"] == error["error"]  # an adapter's handler records it too


def test_an_error_record_that_cannot_be_written_raises_the_audit_error_chained_to_the_failure(make_guard, tmp_path,
                                                                                             monkeypatch):
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    oom = RuntimeError("CUDA out of memory")
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, oom))

    class FullDisk:
        def append(self, record, kind="decision"):
            raise AuditError("[Errno 28] No space left on device")

    g.audit = FullDisk()
    with pytest.raises(AuditError, match=r"the request failed \(RuntimeError: CUDA out of memory\) and writing its error "
                                         r"record to the audit log failed too .*Errno 28") as info:
        g.invoke(Q, domain="alpha")
    assert info.value.__cause__ is oom  # the model's failure is not lost


def test_audit_fault_reaches_the_caller_not_an_unrecorded_answer(make_guard, tmp_path):
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)  # decisions only (a spot-check's own fault: below)

    class FullDisk:
        def append(self, record, kind="decision"):
            raise AuditError("no space left on device")

    g.audit = FullDisk()
    with pytest.raises(AuditError, match="no space"):
        g.invoke(Q, domain="alpha")

    # a batch whose log fills part-way: the answers already recorded are handed over on the error, not lost
    real = AuditLog(tmp_path / "batch.jsonl")

    class FillsUp:
        def append(self, record, kind="decision"):
            if sum(1 for _ in real) >= 2:
                raise AuditError("[Errno 27] File too large")
            return real.append(record, kind=kind)

    g.audit = FillsUp()
    g.review_queue = None
    with pytest.raises(AuditError, match=r"File too large; 2 of the batch's 4 answers had been recorded") as info:
        g.batch([Q] * 4, domains=["alpha"] * 4)
    held = info.value.results
    assert [r.audit_id for r in held] == [rec["id"] for rec in real] and all(r.answer for r in held)


def test_an_accept_written_but_not_anchored_is_on_record_as_never_delivered(make_guard, tmp_path, monkeypatch):
    """The decision reached the log and its head could not reach the anchor (a full disk there): the caller gets
    the error, with the decision's id, and the log says the answer was never delivered."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    g.audit = AuditLog(tmp_path / "anchored.jsonl", anchor=tmp_path / "anchor.jsonl")
    real_write = AuditLog._write_anchor
    monkeypatch.setattr(AuditLog, "_write_anchor", lambda self, seq, digest: (_ for _ in ()).throw(
        AuditError(f"record seq {seq} is in {self.path}, but its head cannot be appended to the anchor: [Errno 28]")))
    with pytest.raises(AuditError, match="Errno 28") as info:
        g.invoke(Q, domain="alpha")
    records = list(AuditLog(tmp_path / "anchored.jsonl"))
    decision, undelivered = records[-2:]
    assert decision["kind"] == "decision" and decision["route"] == "accept"
    assert info.value.audit_id == decision["id"]
    assert undelivered["kind"] == "answer_not_delivered" and undelivered["decision_audit_id"] == decision["id"]
    assert "the decision was written to the audit log, but the call failed" in undelivered["why"]
    # in a batch the log still takes records (the anchor fails after each): the other request gets its error record,
    # where the batch read it as a log that had stopped and left it off the record
    with pytest.raises(AuditError, match="Errno 28") as info:
        g.batch([Q, Q], domains=["alpha", "alpha"], request_ids=["A", "B"])
    decision, undelivered, error = list(AuditLog(tmp_path / "anchored.jsonl"))[-3:]
    assert (decision["kind"], decision["caller_request_id"], undelivered["kind"]) == ("decision", "A", "answer_not_delivered")
    assert (error["kind"], error["caller_request_id"]) == ("error", "B")
    assert info.value.audit_id_by_index == {0: decision["id"], 1: error["id"]}
    monkeypatch.setattr(AuditLog, "_write_anchor", real_write)  # space again: the guard answers on
    assert g.invoke(Q, domain="alpha").route == "accept"


def test_a_spot_check_record_written_before_its_anchoring_failed_is_said_written_and_queued(make_guard, tmp_path,
                                                                                        anchor_full_after):
    """The spot-check selection of an accept written, then its head not anchored (a full disk there): the error said
    the selection "could not be" recorded, and the answer was not queued until a later guard start put it back. The
    record stands: the error says only what failed after it, and the answer is queued as selected."""
    g = make_guard(spot_check_rate=1.0)
    g.audit = AuditLog(tmp_path / "anchored.jsonl", anchor=tmp_path / "anchor.jsonl")
    anchor_full_after("spot_check")
    with pytest.raises(AuditError) as info:
        g.invoke(Q, domain="alpha")
    said = str(info.value)
    decision = next(r for r in AuditLog(g.audit.path) if r["kind"] == "decision")
    (spot,) = [r for r in AuditLog(g.audit.path) if r["kind"] == "spot_check"]
    assert spot["decision_audit_id"] == decision["id"]
    assert (f"the spot-check selection of the decision {decision['id']} (accept, domain 'alpha') is written to the "
            f"audit log {g.audit.path} (record {spot['id']})") in said
    assert "No space left on device" in said and "the selection stands" in said and "could not be" not in said
    (result,) = info.value.results
    assert result.route == "accept" and result.audit_id == decision["id"]
    item = g.review_queue.get(decision["id"])
    assert item is not None and item.spot_check


def test_a_retrieval_query_record_written_before_its_anchoring_failed_hands_the_text_over(make_guard, tmp_path,
                                                                                       anchor_full_after):
    """A retrieval step's record written, then its head not anchored: rewrite_query raised the anchor's error over a
    record on disk. The record stands: the text is returned with its record's id, and a warning says what failed."""
    g = make_guard()
    g.audit = AuditLog(tmp_path / "anchored.jsonl", anchor=tmp_path / "anchor.jsonl")
    anchor_full_after("retrieval_query")
    with pytest.warns(UserWarning, match=r"the retrieval_query record of step 'condense_question' is written to the "
                                         r"audit log .*No space left on device"):
        q = g.rewrite_query(Q, step="condense_question")
    (rec,) = AuditLog(g.audit.path)
    assert (rec["kind"], rec["id"], rec["answer"]) == ("retrieval_query", q.audit_id, q.text)


class _MirroredLog(AuditLog):
    """A platform's audit sink: each record written to the log, then mirrored to a database that is down."""

    down = False
    before = False  # the mirror fails before the record is written (nothing in the log)
    note = False  # the sink writes a record of its own about the failure, then raises
    down_for: str | None = None  # the mirror fails (after the write) on records of this kind only

    def append(self, record, *, kind="decision"):
        if self.down and self.before:
            raise ConnectionError("acme-db: connection refused")
        receipt = super().append(record, kind=kind)
        if self.down or kind == self.down_for:
            if self.note:
                super().append({"mirror": "down"}, kind="mirror_failed")
            raise ConnectionError("acme-db: connection refused")
        return receipt


def test_an_audit_sink_raising_after_the_record_is_written_is_decided_and_undelivered(make_guard, tmp_path,
                                                                                    monkeypatch):
    """An AuditLog subclass whose append wrote the record (super().append) and then raised (its mirror to a database
    failing): the accept on disk read as delivered, and the caller got "writing its error record to the audit log
    failed too" though the error record had been written, naming no decision. The log tells that the
    record is on disk (AuditLog.receipt_of): the decision is said undelivered, the sink's error raised naming it, and no error record."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    g.audit = log = _MirroredLog(tmp_path / "audit.jsonl")
    assert g.invoke(Q, domain="alpha").route == "accept"
    log.down = True
    with pytest.raises(ConnectionError, match="acme-db") as info:
        g.invoke(Q, domain="alpha", request_id="req-1")
    decision, undelivered = _kinds(tmp_path)[-2:]  # no error record: the request was decided
    assert (decision["kind"], decision["route"], decision["caller_request_id"]) == ("decision", "accept", "req-1")
    assert undelivered["kind"] == "answer_not_delivered" and undelivered["decision_audit_id"] == decision["id"]
    assert "the log's append raised after writing it (ConnectionError: acme-db" in undelivered["why"]
    assert info.value.audit_id == info.value.decision_audit_id == decision["id"]
    assert not [r for r in _kinds(tmp_path) if r["kind"] == "error"]
    # the sink writing a record of its own about the failure before it raises: the decision is still found written
    log.note = True
    with pytest.raises(ConnectionError):
        g.invoke(Q, domain="alpha")
    decision, _, undelivered, _ = recs = _kinds(tmp_path)[-4:]
    assert [r["kind"] for r in recs] == ["decision", "mirror_failed", "answer_not_delivered", "mirror_failed"]
    assert undelivered["decision_audit_id"] == decision["id"]
    # a request that failed before a decision: its error record is written, then the sink raises; the caller gets the
    # original error naming that record, not an AuditError saying the record could not be written
    log.note = False
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, RuntimeError("CUDA OOM")))
    with pytest.raises(RuntimeError, match="CUDA OOM") as info:
        g.invoke(Q, domain="alpha", request_id="req-2")
    error = _kinds(tmp_path)[-1]
    assert (error["kind"], error["caller_request_id"], error["id"]) == ("error", "req-2", info.value.audit_id)
    # the sink failing before the record is written: nothing in the log, and the caller told so, as before
    log.before = True
    n = len(_kinds(tmp_path))
    with pytest.raises(AuditError, match="writing its error record to the audit log failed too"):
        g.invoke(Q, domain="alpha")
    assert len(_kinds(tmp_path)) == n


def test_a_sink_raising_after_the_spot_check_record_says_the_accept_undelivered_and_records_the_batch(make_guard,
                                                                                                     tmp_path):
    """An AuditLog subclass whose mirror failed after super().append of an accept's spot-check record: invoke and batch
    raised the AuditError with the log holding [decision, spot_check] only, no answer_not_delivered for the accept
    the caller never got, and in a batch the other requests had no record at all, though the log took records (the
    batch read the error as a log that had stopped). As for a decision record whose sink raised after writing it: the
    accept is said undelivered, the batch's undecided requests get their error records; the selection stands."""
    g = make_guard(spot_check_rate=1.0)
    g.audit = log = _MirroredLog(tmp_path / "audit.jsonl")
    log.down_for = "spot_check"
    with pytest.raises(AuditError, match=r"the spot-check selection of the decision .* the selection stands") as info:
        g.invoke(Q, domain="alpha", request_id="req-1")
    decision, spot, undelivered = _kinds(tmp_path)
    assert (decision["kind"], decision["route"], decision["caller_request_id"]) == ("decision", "accept", "req-1")
    assert (spot["kind"], spot["decision_audit_id"]) == ("spot_check", decision["id"])
    assert (undelivered["kind"], undelivered["decision_audit_id"]) == ("answer_not_delivered", decision["id"])
    assert "spot-check selection was written" in undelivered["why"] and "acme-db" in undelivered["why"]
    assert info.value.undelivered_audit_id == undelivered["id"]
    assert info.value.audit_id == info.value.decision_audit_id == decision["id"]
    (result,) = info.value.results  # the answer, to deliver or drop, and queued as selected (what 7202512 fixed)
    assert result.route == "accept" and result.audit_id == decision["id"] and g.review_queue.get(decision["id"]).spot_check
    # a batch: the first accept's spot-check sink raises; the two others, never decided, get their error records
    n = len(_kinds(tmp_path))
    with pytest.raises(AuditError, match="the selection stands") as info:
        g.batch([Q] * 3, domains=["alpha"] * 3, request_ids=["A", "B", "C"])
    decision, spot, undelivered, *errors = _kinds(tmp_path)[n:]
    assert (decision["kind"], decision["caller_request_id"], spot["kind"]) == ("decision", "A", "spot_check")
    assert (undelivered["kind"], undelivered["decision_audit_id"]) == ("answer_not_delivered", decision["id"])
    assert [(e["kind"], e["caller_request_id"], e["error_type"]) for e in errors] == [("error", "B", "AuditError"),
                                                                                   ("error", "C", "AuditError")]
    assert info.value.audit_id_by_index == {0: decision["id"], 1: errors[0]["id"], 2: errors[1]["id"]}
    assert [r.audit_id for r in info.value.results] == [decision["id"]]
    assert g.review_queue.get(decision["id"]).spot_check


def test_spot_check_write_fault_after_an_accept_is_recorded_hands_the_answer_over(make_guard, tmp_path):
    # the accept is on record, its spot-check selection could not be written: the caller is told, with the answer
    g = make_guard(spot_check_rate=1.0)
    real = g.audit

    class SpotFails:
        keyed = False

        def append(self, record, kind="decision"):
            if kind == "spot_check":
                raise AuditError("[Errno 28] No space left on device")
            return real.append(record, kind=kind)

    g.audit = SpotFails()
    with pytest.raises(AuditError, match=r"is recorded, but its spot-check selection could not be .*No space") as info:
        g.invoke(Q, domain="alpha")
    (r,) = info.value.results
    assert r.route == "accept" and r.answer and r.audit_id == list(real)[-1]["id"]
    # in a batch the recorded answers, this one included, are on the batch's error
    with pytest.raises(AuditError, match=r"1 of the batch's 3 answers had been recorded") as info:
        g.batch([Q] * 3, domains=["alpha"] * 3)
    recorded = {rec["id"] for rec in real if rec.get("kind") == "decision"}
    assert [x.route for x in info.value.results] == ["accept"]
    assert all(x.audit_id in recorded for x in info.value.results)


@pytest.mark.parametrize("takes_undelivered", [True, False])
def test_the_cli_says_an_answer_recorded_but_not_shown_and_the_log_says_it_was_not_delivered(
        make_guard, tmp_path, monkeypatch, capsys, takes_undelivered):
    """`hguard ask` and `hguard demo` whose accept was recorded and whose spot-check selection then could not be
    (a trial: a log at its size limit): the command shows no answer, so the log must not read as if it had (an
    answer_not_delivered record, or a warning when the log takes none), and the error says so in the command's
    words, not as the Python API's "on this error's .results, to deliver or drop"."""
    from hguard import cli

    g = make_guard(spot_check_rate=1.0)
    real = g.audit

    class SpotFails:
        keyed = False
        redact = False

        def append(self, record, kind="decision"):
            if kind == "spot_check" or (kind != "decision" and not takes_undelivered):
                raise AuditError(f"could not write to audit log {real.path}: [Errno 27] File too large; the record "
                                 "was not stored. Check free space and permissions")
            return real.append(record, kind=kind)

    g.audit = SpotFails()
    monkeypatch.setattr(Guard, "from_policy", lambda *a, **k: g)
    policy = tmp_path / "policy.toml"
    policy.write_text("version = 1\n[domains.alpha]\n")
    real_invoke = g.invoke
    monkeypatch.setattr(g, "invoke", lambda q, context=None, domain=None: real_invoke(Q, domain="alpha"))
    for argv in (["ask", Q, "--domain", "alpha", "--policy", str(policy)], ["demo", "--out", str(tmp_path / "demo")]):
        capsys.readouterr()
        assert cli.main(argv) == 2
        out, err = capsys.readouterr()
        decision = [r for r in real if r["kind"] == "decision"][-1]
        assert decision["route"] == "accept" and decision["answer"] not in out
        error = [line for line in err.splitlines() if line.startswith(f"hguard {argv[0]}: error: ")]
        assert len(error) == 1 and ".results" not in error[0], err
        assert (f"the answer was decided (accept, audit id {decision['id']}) and recorded in the audit log, but is not "
                "shown: a later record of the request could not be written (could not write to audit log ") in error[0]
        assert "File too large" in error[0] and "run the command again" in error[0]
        undelivered = [r for r in real if r["kind"] == "answer_not_delivered" and r["decision_audit_id"] == decision["id"]]
        if takes_undelivered:
            assert "the log records the answer as not delivered" in error[0] and len(undelivered) == 1
            assert f"hguard {argv[0]} did not show the answer" in undelivered[0]["why"]
        else:
            assert "the log could not record that it was not delivered either" in error[0] and not undelivered
            assert f"hguard {argv[0]}: warning: could not record that the answer of decision {decision['id']}" in err
        assert not [r for r in real if r["kind"] == "error"]  # decided: no record of a request failed before a decision


def test_the_cli_names_the_undelivered_record_the_guard_wrote_for_a_spot_check_sink_raising_after_it(
        make_guard, tmp_path, monkeypatch, capsys):
    """`hguard ask` whose accept's spot-check record was written and its sink then raised: the guard says the answer
    undelivered itself, so the command's own record_undelivered found it said and the error read "the log could not
    record that it was not delivered either", with no warning above it. It names the guard's record."""
    from hguard import cli

    g = make_guard(spot_check_rate=1.0)
    g.audit = log = _MirroredLog(tmp_path / "audit.jsonl")
    log.down_for = "spot_check"
    monkeypatch.setattr(Guard, "from_policy", lambda *a, **k: g)
    policy = tmp_path / "policy.toml"
    policy.write_text("version = 1\n[domains.alpha]\n")
    assert cli.main(["ask", Q, "--domain", "alpha", "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "the log records the answer as not delivered" in err and "could not record" not in err, err
    assert [r["kind"] for r in _kinds(tmp_path)] == ["decision", "spot_check", "answer_not_delivered"]


def test_queue_fault_after_the_decision_is_audited_keeps_the_answer_held_and_on_record(make_guard, tmp_path):
    g = make_guard()

    class Broken:
        path = tmp_path / "queue.sqlite3"

        def enqueue(self, item):
            raise ReviewQueueError("queue locked")

    g.review_queue = Broken()
    with pytest.warns(UserWarning, match="could not take this answer now"):
        r = g.invoke(Q, domain="gamma")  # unknown domain: review, so it is enqueued
    assert r.route == "review" and "queue locked" in r.reasons[-1]  # held, never accepted
    recs = list(AuditLog(tmp_path / "audit.jsonl"))
    assert recs[-2]["route"] == "review" and recs[-1]["kind"] == "review_queue_error"
    assert recs[-1]["decision_audit_id"] == r.audit_id
    g.audit = None  # without a log nothing could put it back: the caller gets the error
    with pytest.raises(ReviewQueueError):
        g.invoke(Q, domain="gamma")


def test_an_answer_another_guard_put_back_while_this_one_waited_is_queued_not_an_error(make_guard, tmp_path):
    """A web service's trial: while one worker's enqueue waited for the queue's lock, a worker starting up put the
    held answer back from its decision record; the first then recorded a review_queue_error and warned that the
    answer was not queued, for an item queued exactly once."""
    import warnings

    from hguard.testing import guard_queue

    g = make_guard()
    queue = guard_queue(tmp_path / "queue.sqlite3", audit=g.audit)
    real = queue.enqueue

    def put_back_meanwhile(item):
        real(item)  # what the starting guard did from the decision record
        raise ReviewQueueError(f"review queue {queue.path}: an item with audit_id {item['audit_id']!r} is already queued")

    queue.enqueue = put_back_meanwhile
    g.review_queue = queue
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "could not take this answer now"
        r = g.invoke(Q, domain="gamma")
    assert r.route == "review" and not any("could not take" in x for x in r.reasons)
    assert not queue.absent([r.audit_id])
    assert not [x for x in AuditLog(tmp_path / "audit.jsonl") if x["kind"] == "review_queue_error"]


def test_no_fault_combination_accepts(make_guard, monkeypatch):
    """Every single-signal NaN on the finished answer, one at a time, with context: never accept."""
    g = make_guard()
    base = g.invoke(Q, context=CTX, domain="alpha")
    assert base.route == "accept"
    for name in ("mean_logprob", "min_logprob", "mean_entropy", "length"):
        gg = make_guard()
        _patch_generations(gg, monkeypatch, lambda x, n=name: replace(x, confidence={**x.confidence, n: math.nan}))
        r = gg.invoke(Q, context=CTX, domain="alpha")
        assert r.route == "review", (name, r.reasons)


def test_an_empty_passage_among_others_is_left_out_and_said(make_guard, tmp_path):
    """A retriever's empty chunk: answered from the others, as before, but the reasons and the record say so."""
    g = make_guard()
    r = g.invoke(Q, context=[CTX, "   ", ""], domain="alpha")
    assert r.context == CTX
    note = "2 of the 3 retrieved passages (number 1, 2, counting from 0) were empty and left out of the context"
    assert note in r.reasons
    assert AuditLog(tmp_path / "audit.jsonl").find(r.audit_id)["reasons"] == r.reasons
    assert note not in g.invoke(Q, context=[CTX], domain="alpha").reasons
    with pytest.raises(InputError):  # nothing but blank passages: refused, as an empty context is
        g.invoke(Q, context=["", " "], domain="alpha")
    # a passage of invisible characters alone (a PDF's zero-width spaces) went into the prompt without a word
    r = g.invoke(Q, context=[CTX, "\u200b\u200b", " "], domain="alpha")
    assert r.context == CTX and note in r.reasons
    with pytest.raises(InputError):
        g.invoke(Q, context=["\u200b", "\ufeff"], domain="alpha")
    # ... and other characters that show nothing: a blank Braille cell, the Hangul filler, a variation selector
    r = g.invoke(Q, context=[CTX, "\u2800\u2800", "\u3164\u034f\ufe0f"], domain="alpha")
    assert r.context == CTX and note in r.reasons


def test_a_repeated_passage_is_used_once_and_said(make_guard, tmp_path):
    """A retriever returning the same chunk twice (or two searches finding one document): the text is generated from
    and scored once, and the reasons say how many retrieved passages were used (the record showed the repeat, or with
    an adapter that dropped it, fewer passages than were retrieved, with no word why)."""
    g = make_guard()
    r = g.invoke(Q, context=[CTX, "", CTX, "Another passage.", CTX], domain="alpha")
    assert r.context == f"{CTX}\n\nAnother passage."
    note = "2 of the 5 retrieved passages (number 2, 4, counting from 0) were the same text as an earlier one and used once"
    assert note in r.reasons
    assert "1 of the 5 retrieved passages (number 1, counting from 0) was empty and left out of the context" in r.reasons
    assert AuditLog(tmp_path / "audit.jsonl").find(r.audit_id)["reasons"] == r.reasons
    assert not any("same text" in x for x in g.invoke(Q, context=[CTX, "Another passage."], domain="alpha").reasons)
    # two extractions of one chunk differ in whitespace alone (a reviewer's trial: used twice, with no note)
    ws = g.invoke(Q, context=[CTX, CTX + "\n", "  " + " \n".join(CTX.split(" "))], domain="alpha")
    assert ws.context == CTX
    assert "2 of the 3 retrieved passages (number 1, 2, counting from 0) were the same text as an earlier one and used once" in ws.reasons
    with pytest.raises(InputError):
        g.invoke(Q, context="\u2800\u2800", domain="alpha")


def test_each_request_of_a_failed_batch_gets_its_own_copy_of_the_error_naming_its_own_record():
    """LangChain's batch with return_exceptions put the one error of a failed batch in every input's slot, so every
    input's llm_call record named the first input's error record: each gets a copy naming its own."""
    from hguard._guard_records import request_error

    class Coded(RuntimeError):  # a constructor that does not take its own args back (copy.copy fails on it)
        def __init__(self, message, code):
            super().__init__(message)
            self.code = code

    for exc in (RuntimeError("CUDA OOM"), Coded("CUDA OOM", 2)):
        try:
            raise exc
        except RuntimeError:
            pass
        exc.audit_id, exc.audit_ids = "e1", ["e1", "e2"]
        exc.audit_id_by_index, exc.decision_audit_ids = {0: "d0", 1: "e1", 2: "e2"}, ["d0"]
        decided, first, second = (request_error(exc, i) for i in range(3))
        assert all(type(e) is type(exc) and str(e) == "CUDA OOM" and e is not exc for e in (decided, first, second))
        assert (decided.audit_id, decided.decision_audit_id) == ("d0", "d0") and not hasattr(decided, "audit_ids")
        assert (first.audit_id, first.audit_ids, second.audit_id) == ("e1", ["e1"], "e2")
        assert not hasattr(first, "decision_audit_id") and first.__traceback__ is exc.__traceback__
        assert getattr(first, "code", 2) == 2
        assert request_error(exc, 3) is exc  # no record of its own: the error itself


def test_a_request_s_copy_of_the_error_keeps_its_message_when_its_constructor_builds_the_message():
    """A model server's error whose constructor builds its message from a code: copying it called the constructor
    again with the finished message, and each LangChain batch slot said "model server error model server error 503"."""
    import pickle

    from hguard._guard_records import request_error

    class ModelServerError(RuntimeError):
        def __init__(self, code):
            self.code = code
            super().__init__(f"model server error {code}")

    class WithDefault(RuntimeError):
        def __init__(self, detail="out of memory"):
            super().__init__(f"CUDA failure: {detail}")

    class OwnNew(RuntimeError):  # a __new__ that takes other arguments than its args: not copied, the error itself
        def __new__(cls, code, *, retry):
            return super().__new__(cls)

        def __init__(self, code, *, retry):
            super().__init__(f"error {code}, retry in {retry} s")

    refused = ConnectionRefusedError(111, "Connection refused")
    for exc in (ModelServerError(503), WithDefault(), refused, OwnNew(7, retry=3)):
        exc.audit_id, exc.audit_ids = "e1", ["e1", "e2"]
        exc.audit_id_by_index, exc.decision_audit_ids = {0: "e1", 1: "e2"}, []
        own = request_error(exc, 1)
        if isinstance(exc, OwnNew):
            assert own is exc and str(exc) == "error 7, retry in 3 s"
            continue
        assert own is not exc and type(own) is type(exc) and str(own) == str(exc) and own.args == exc.args
        assert own.audit_id == "e2" and own.audit_ids == ["e2"] and getattr(own, "code", None) == getattr(exc, "code", None)
    own = request_error(refused, 1)
    assert (own.errno, own.strerror) == (111, "Connection refused")
    assert str(pickle.loads(pickle.dumps(own))) == str(refused)


class _RefusingLog:
    """The real log for decisions; every other record refused, as a log whose lock a hung writer holds refuses it
    (after waiting lock_timeout, 60 s by default, for each)."""

    def __init__(self, log):
        self.log, self.refused = log, []

    def append(self, record, kind="decision"):
        if kind == "decision":
            return self.log.append(record, kind=kind)
        self.refused.append(kind)
        raise AuditError(f"could not lock the audit log {self.log.path} within 2 s; look for a hung writer")

    def __getattr__(self, name):
        return getattr(self.log, name)


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), RuntimeError("CUDA OOM")], ids=["KeyboardInterrupt", "error"])
def test_after_a_record_of_a_failed_batch_cannot_be_written_no_other_is_tried(make_guard, tmp_path, monkeypatch, stop):
    """Ctrl-C in a batch while a hung writer held the audit log's lock: each request's record waited for the lock in
    turn (10.1 s with lock_timeout 2 and 5 requests; 5 minutes at the default 60 s) before the interrupt reached the
    caller. The first write that fails stops the rest, which the warning (the AuditError) counts."""
    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    g.audit = log = _RefusingLog(g.audit)
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 2, stop))
    said = r"\(3 of 3: AuditError: could not lock .*; 2 of 2 answer_not_delivered records too; none was tried after"
    if isinstance(stop, Exception):
        with pytest.raises(AuditError, match=r"the request failed \(RuntimeError: CUDA OOM\) .* failed too " + said) as info:
            g.batch([Q] * 5, domains=["alpha", "alpha", "beta", "beta", "beta"])
        assert info.value.__cause__ is stop
    else:
        with pytest.warns(UserWarning, match=r"the request was interrupted \(KeyboardInterrupt\) .* failed " + said):
            with pytest.raises(KeyboardInterrupt) as info:
                g.batch([Q] * 5, domains=["alpha", "alpha", "beta", "beta", "beta"])
        assert info.value is stop
    assert log.refused == ["answer_not_delivered"]  # one wait, not five
    log.refused.clear()  # only error records (nothing decided): one tried, the rest counted
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, stop))
    if isinstance(stop, Exception):
        with pytest.raises(AuditError, match=r"\(4 of 4: AuditError: could not lock .*; none was tried after"):
            g.batch([Q] * 4, domains=["alpha"] * 4)
    else:
        with pytest.warns(UserWarning, match=r"\(4 of 4: AuditError: could not lock .*; none was tried after"):
            with pytest.raises(KeyboardInterrupt):
                g.batch([Q] * 4, domains=["alpha"] * 4)
    assert log.refused == ["error"]


def test_under_warnings_as_errors_an_interrupt_whose_records_cannot_be_written_is_raised_as_it_is(make_guard, tmp_path,
                                                                                                 monkeypatch):
    """``python -W error`` or pytest's ``filterwarnings = error``: the warning saying an interrupted request's error
    record could not be written raised in the interrupt's place, and Ctrl-C reached the caller as a UserWarning. So
    too a failure whose only missing records are answer_not_delivered ones (said by a warning, the error raised)."""
    import warnings

    g = make_guard(spot_check_rate=0.0, spot_check_min_per_day=0)
    g.audit = _RefusingLog(g.audit)
    stop = KeyboardInterrupt()
    monkeypatch.setattr(g.generator, "generate", _failing_on_call(g.generator.generate, 1, stop))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(KeyboardInterrupt) as info:
            g.invoke(Q, domain="alpha")
        assert info.value is stop
        # decided, then its spot-check raised: its answer_not_delivered record is refused, the error raised as it is
        monkeypatch.setattr(g, "_spot_check", lambda result: (_ for _ in ()).throw(RuntimeError("spot-check bug")))
        with pytest.raises(RuntimeError, match="spot-check bug"):
            g.invoke(Q, domain="alpha")


def test_an_error_object_raised_again_names_only_the_records_of_its_latest_call(make_guard, tmp_path, monkeypatch):
    """One exception object raised by two failed calls (a model wrapper re-raising the error it cached, a circuit
    breaker): the first call, decided before its queue step raised, set decision_audit_id on it, which the second
    call, failed before any decision, kept, so its llm_call record named the first call's decision."""
    import sqlite3

    from hguard.streaming import error_fields

    g = make_guard(accept_below=0.0, spot_check_rate=0.0, spot_check_min_per_day=0)  # every answer held for review
    broken = sqlite3.OperationalError("database is locked")

    def enqueue(item):
        raise broken

    monkeypatch.setattr(g.review_queue, "enqueue", enqueue)
    with pytest.raises(sqlite3.OperationalError):
        g.invoke(Q, domain="alpha")
    assert broken.decision_audit_id == broken.audit_id
    monkeypatch.setattr(g.generator, "generate", lambda *a, **k: (_ for _ in ()).throw(broken))
    with pytest.raises(sqlite3.OperationalError):
        g.invoke("what is gold ?", domain="alpha")
    error = _kinds(tmp_path)[-1]
    assert error["kind"] == "error" and error["question"] == "what is gold ?"
    assert (broken.audit_id, broken.audit_ids, broken.audit_id_by_index) == (error["id"], [error["id"]], {0: error["id"]})
    assert not hasattr(broken, "decision_audit_id") and broken.decision_audit_ids == []
    assert "decision_audit_id" not in error_fields(broken)
