"""Multi-turn history, per-call system instructions, stop sequences and caller problems, on a tiny
random model: how they reach the chat template, the fingerprints and the decision."""

from __future__ import annotations

import pytest

from hguard.errors import InputError
from hguard.generation import Generator, check_history, cut_at_stop, history_fingerprint
from hguard.guard import Guard
from hguard.policy import Policy
from hguard.testing import tiny_model

HISTORY = [{"role": "user", "content": "what is the capital of france"}, {"role": "assistant", "content": "it is paris"}]


@pytest.fixture(scope="module")
def lm():
    return tiny_model("llama", seed=3)


def test_history_and_system_reach_the_chat_template_and_the_fingerprints(lm):
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    msgs = gen.messages("what is the capital of italy", history=HISTORY, system="be brief")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"] and msgs[0]["content"] == "be brief"
    text = lm.tokenizer.decode(gen.prompt_ids("what is the capital of italy", history=HISTORY))
    assert "user what is the capital of france" in text and "assistant it is paris" in text
    single = gen.call_fingerprints()
    assert single == lm.fingerprints("answer") and "history_fingerprint" not in single
    multi = gen.call_fingerprints(history=HISTORY)
    assert multi["history_fingerprint"] == history_fingerprint(HISTORY) and multi["history_fingerprint"].startswith("2-turns:")
    assert gen.call_fingerprints(system="be brief")["system_prompt_fingerprint"] != single["system_prompt_fingerprint"]
    (g,) = gen.generate(["what is the capital of italy"], neurons=None, histories=[HISTORY])
    assert g.extra["history_turns"] == 2 and g.extra["fingerprints"] == multi


def test_bad_history_is_refused_with_the_fix(lm):
    with pytest.raises(InputError, match="history must be a list"):
        check_history("hello")
    with pytest.raises(InputError, match=r"history\[0\]"):
        check_history([{"role": "tool", "content": "x"}])
    with pytest.raises(InputError, match="stop must be"):
        Generator(lm, max_new_tokens=4).generate(["what is the capital"], neurons=None, stop=[""])


def test_stop_sequences_end_the_answer_before_them(lm):
    gen = Generator(lm, system_prompt="answer", max_new_tokens=8)
    (free,) = gen.generate(["what is the capital ?"], neurons=None)
    words = free.text.split()
    assert len(words) >= 3
    (cut,) = gen.generate(["what is the capital ?"], neurons="all", stop=[words[2]])
    assert cut.extra["stop"] == words[2] and cut.finished and words[2] not in cut.text.split()
    assert free.text.startswith(cut.text) and len(cut.token_ids) < len(free.token_ids)
    assert cut_at_stop("a b c", ["b", "c"]) == ("a ", "b") and cut_at_stop("a", None) == ("a", None)


def test_caller_problems_route_to_review_with_their_reason(lm, tmp_path):
    pol = Policy.model_validate({"version": 1, "generation": {"max_new_tokens": 4, "system_prompt": "answer"}, "domains": {}})
    guard = Guard(lm, pol)
    r = guard.invoke("what is the capital ?", domain="alpha", problems=["context not identified: test"])
    assert r.route == "review" and any("context not identified: test" in x for x in r.reasons)
