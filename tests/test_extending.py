"""The README's "Extending hguard" section runs as written, on the tiny model, and what it says of each piece of one's
own that fails holds: the answer goes to review (or the call raises), never to accept."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hguard.audit import AuditLog
from hguard.errors import ReviewQueueError
from hguard.testing import tiny_policy

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Extending hguard"
Q = "who is the author of the book ?"


def _example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):text.index("\n## ", text.index(SECTION) + 1)]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


@pytest.fixture
def example(tiny_calibrated, tmp_path):
    """The README's example run in a namespace of its own (``policy``: a tiny policy accepting every scored answer)."""
    lm, root = tiny_calibrated
    policy = tiny_policy(root / "probes", tmp_path, "accept")
    printed: list[str] = []
    space = {"policy": policy, "lm": lm, "print": lambda *a: printed.append(" ".join(map(str, a)))}
    exec(_example(), space)  # noqa: S102 (the README's own code)
    space["printed"] = printed
    return space


def test_the_readmes_example_runs_as_written(example):
    guard, log = example["guard"], example["log"]
    assert example["printed"] == ["alpha keywords asks about an author"]
    assert log.copies == [r["id"] for r in AuditLog(log.path)] and len(log.copies) == 1  # the decision, copied
    # the bundled router for the rest, on the embedder of one's own (its vectors 3 long: scaled to 1)
    r = guard.invoke("what is the capital of france ?")
    assert r.domain_choice["method"] == "embedding" and all(-1 <= s <= 1 for s in r.domain_choice["similarities"].values())
    # the grounding of one's own reads answers given with context, and the held answers get a ticket
    grounded = guard.invoke(Q, context="The author of the book is Jane Austen.", domain="alpha")
    assert "grounding" in grounded.signals and grounded.signals["grounding"] in (0.0, 1.0)
    assert example["TicketQueue"].tickets == [x.audit_id for x in guard.review_queue.pending()]


def _guard(example, **pieces):
    start = {"lm": example["lm"], "embedder": example["MyEmbedder"](), "grounding": example["MyGrounding"]()}
    return example["MyRouter"].from_policy(example["policy"], **{**start, **pieces})


@pytest.mark.parametrize("vector", [0.0, np.nan])
def test_an_embedder_that_fails_holds_the_answer_naming_it(example, vector):
    class Flat(example["MyEmbedder"]):
        def encode(self, texts):
            return np.full((len(texts), 4), vector)

    g = _guard(example, embedder=Flat())
    for domain in (None, "alpha"):
        r = g.invoke("what is the capital of france ?", domain=domain)
        assert r.route == "review" and any("the embedder Flat returned a vector" in x for x in r.reasons), r.reasons


@pytest.mark.parametrize("returned", [RuntimeError("grounder down"), None, {"lexical": 0.9}, {"grounding": float("nan")}])
def test_a_grounding_that_fails_holds_the_answer(example, returned):
    class Failing:
        def score(self, question, answer, context):
            if isinstance(returned, Exception):
                raise returned
            return returned

    r = _guard(example, grounding=Failing()).invoke(Q, context="The author is Jane Austen.", domain="alpha")
    assert r.route == "review" and any("grounding" in x for x in r.reasons), r.reasons


@pytest.mark.parametrize("returned", [RuntimeError("router down"), (3, {}), ("alpha", None)])
def test_a_router_that_fails_holds_the_answer_naming_choose_domain(example, returned):
    class Failing(example["MyRouter"]):
        def choose_domain(self, question, rag=None):
            if isinstance(returned, Exception):
                raise returned
            return returned

    r = Failing.from_policy(example["policy"], lm=example["lm"]).invoke(Q)
    assert r.route == "review" and r.domain is None and "Failing.choose_domain" in r.reasons[0], r.reasons


def test_an_audit_sink_that_fails_makes_the_call_raise(example):
    class Failing(example["MirroredLog"]):
        def append(self, record, **kwargs):
            super().append(record, **kwargs)
            raise ConnectionError("sink down")

    with pytest.raises(Exception) as raised:
        _guard(example, audit=Failing.from_policy(example["policy"])).invoke(Q)
    assert "sink down" in str(raised.value)


def test_a_ticket_system_that_fails_makes_the_call_raise_and_a_queue_failure_holds_the_answer(example):
    policy = example["policy"]
    log = AuditLog.from_policy(policy)

    class Failing(example["TicketQueue"]):
        error: Exception = ConnectionError("tickets down")

        def enqueue(self, item):
            super().enqueue(item)
            raise self.error

    g = _guard(example, audit=log, review_queue=Failing(policy.review.queue, audit=log), embedder=None)
    with pytest.raises(ConnectionError, match="tickets down"):
        g.invoke("How do I bake sourdough bread at home?")  # no domain: held for review
    kinds = [r["kind"] for r in AuditLog(policy.audit.path)]
    assert kinds[-2:] == ["decision", "answer_not_delivered"], kinds

    class Locked(example["TicketQueue"]):
        def enqueue(self, item):
            raise ReviewQueueError("the queue is locked")

    with pytest.warns(UserWarning, match="the review queue could not take this answer now"):
        r = _guard(example, audit=log, review_queue=Locked(policy.review.queue, audit=log)).invoke(
            "How do I bake sourdough bread at home?")
    assert r.route == "review"
