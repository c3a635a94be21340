"""Guard.check: an answer produced elsewhere (the same model served by another server, an answer in a log) scored by
the one pipeline invoke runs, its tokens forced after the confidence tracker; one that is not the model's own greedy
answer is never accepted, and the record says the answer was given."""

from __future__ import annotations

import copy
import re
from dataclasses import replace

import numpy as np
import pytest

from hguard.audit import AuditLog, verify
from hguard.errors import InputError
from hguard.generation import Generator
from hguard.guard import Guard
from hguard.testing import tiny_model

from test_guard import _policy

QUESTIONS = ["who is the author of the book ?", "what is the capital of france ?", "who ?", "where is the river ?",
             "which element is gold ?", "what year was it ?", "who wrote the book ?", "what is iron ?"]


def _round_trips(lm, g) -> bool:
    """Whether the answer's text tokenises back into the tokens generated (the tiny word-level tokenizer drops a
    generated line break, and a special token is not decoded)."""
    return bool(g.token_ids) and lm.tokenizer(g.text, add_special_tokens=False)["input_ids"] == g.token_ids


@pytest.mark.parametrize("arch, seed, plain", [("qwen2", 0, False), ("llama", 3, True)])
def test_a_forced_answer_is_read_as_the_same_generated_answer_is(arch, seed, plain):
    """The generator "generates" a given answer: its tokens, then end-of-sequence, forced after the confidence
    tracker, so that the CETT, the log-probabilities and the entropies are those of the generated answer at the same
    positions, whether it ended by end-of-sequence or reached the token limit, with a chat template or in the plain
    frame (whose answer ends at a line break)."""
    lm = tiny_model(arch, seed=seed)
    if plain:
        lm = replace(lm, tokenizer=copy.copy(lm.tokenizer))
        lm.tokenizer.chat_template = None
    gen = Generator(lm, system_prompt=None if plain else "answer", max_new_tokens=10)
    generated = [g for g in gen.generate(QUESTIONS, neurons="all") if _round_trips(lm, g)]
    assert len(generated) >= 3 and any(g.finished for g in generated) and any(not g.finished for g in generated)
    given = gen.generate([g.question for g in generated], neurons="all", answers=[g.text for g in generated])
    for g, c in zip(generated, given):
        assert c.text == g.text and c.token_ids == g.token_ids and c.finished == g.finished
        assert c.n_cett_tokens == g.n_cett_tokens and np.allclose(c.cett, g.cett, rtol=1e-5, atol=1e-6)
        assert c.confidence == pytest.approx(g.confidence, rel=1e-5, abs=1e-6)
        n = len(g.token_ids)
        # every token is the model's own; one that ended is ended where the model ends it; a cut one's end is unseen
        assert c.extra["given_answer"] == {"tokens": n, "own_tokens": n, "ends_as_own": True if g.finished else None,
                                           "decodes_as_given": True}
        assert "given_answer" not in g.extra


def test_check_of_the_answer_invoke_gave_decides_as_invoke_did_and_the_record_says_it_was_given(calibrated_guard, tmp_path):
    guard = calibrated_guard
    log = AuditLog(tmp_path / "audit.jsonl")
    for q in QUESTIONS[:2]:
        r = guard.invoke(q, domain="alpha")
        assert guard.lm.tokenizer(r.answer, add_special_tokens=False)["input_ids"]  # a non-empty answer to check
        c = guard.check(q, r.answer, domain="alpha")
        assert (c.answer, c.route, c.domain, c.probe_id, c.cut_at_max_new_tokens) == (
            r.answer, r.route, r.domain, r.probe_id, r.cut_at_max_new_tokens)
        assert c.risk == pytest.approx(r.risk, rel=1e-5, abs=1e-6)
        assert c.signals.keys() == r.signals.keys()
        for k, v in r.signals.items():
            assert c.signals[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
        assert c.reasons == r.reasons
        generated, given = log.find(r.audit_id), log.find(c.audit_id)
        assert "answer_source" not in generated and "given_answer" not in generated
        n = len(guard.lm.tokenizer(r.answer, add_special_tokens=False)["input_ids"])
        assert given["answer_source"] == "given" and given["answer"] == r.answer
        assert given["given_answer"] == {"tokens": n, "own_tokens": n, "ends_as_own": None,  # cut at 4 tokens
                                         "decodes_as_given": True, "served": False}
    # an answer the same model served elsewhere, shown to users as it routes: live traffic, said in its record
    served = log.find(guard.check(QUESTIONS[0], guard.invoke(QUESTIONS[0], domain="alpha").answer, domain="alpha",
                                  served=True).audit_id)
    assert served["answer_source"] == "given" and served["given_answer"]["served"] is True
    batched = guard.check_batch(QUESTIONS[:2], [guard.invoke(q, domain="alpha").answer for q in QUESTIONS[:2]],
                                domains=["alpha", "alpha"])
    singles = [guard.invoke(q, domain="alpha") for q in QUESTIONS[:2]]
    for b, s in zip(batched, singles):
        assert b.route == s.route and b.risk == pytest.approx(s.risk, rel=1e-5, abs=1e-6)
    assert verify(tmp_path / "audit.jsonl").ok


def test_the_result_says_where_its_answer_came_from_as_the_record_does(calibrated_guard, tmp_path):
    """GuardResult.answer_source: "generated" for invoke's answer, "given" for check's, as the decision record's
    answer_source says (a caller holding only the result, or an adapter's metadata, could not tell them apart), and in
    its to_dict (what `hguard ask --json` prints) and the adapters' decision metadata."""
    import json

    from hguard.streaming import DECISION_KEYS, decision_metadata

    guard = calibrated_guard
    r = guard.invoke(QUESTIONS[0], domain="alpha")
    c = guard.check(QUESTIONS[0], r.answer, domain="alpha")
    [b] = guard.check_batch(QUESTIONS[:1], [r.answer], domains=["alpha"], served=True)
    assert (r.answer_source, c.answer_source, b.answer_source) == ("generated", "given", "given")
    log = AuditLog(tmp_path / "audit.jsonl")
    for res in (r, c, b):
        assert log.find(res.audit_id).get("answer_source", "generated") == res.answer_source
        assert json.loads(json.dumps(res.to_dict()))["answer_source"] == res.answer_source
        assert decision_metadata(res)["answer_source"] == res.answer_source and "answer_source" in DECISION_KEYS


def test_check_batch_takes_an_adapters_problems_as_batch_does(tiny_calibrated, tmp_path):
    """An adapter's "nothing retrieved" (a retrieval that found no passage) holds a given answer as it holds a generated
    one: the model's own answer, which these thresholds accept, goes to review with the problem as a reason."""
    lm, root = tiny_calibrated
    guard = Guard.from_policy(_policy(root, tmp_path, accept_below=1.0, abstain_above=1.0), lm=lm)
    own = guard.invoke(QUESTIONS[0], domain="alpha")
    plain, held = guard.check_batch([QUESTIONS[0]] * 2, [own.answer] * 2, domains=["alpha"] * 2,
                                    problems=[[], ["nothing retrieved: the retriever returned no passage"]])
    assert plain.route == "accept" and held.route == "review"
    assert "scoring problem: nothing retrieved: the retriever returned no passage" in held.reasons, held.reasons


def test_the_whitespace_around_a_given_answer_is_no_part_of_it(calibrated_guard):
    """A new user's trial: a stored log line's "\n" or "\r", or a trailing space, read as tokens the model would not
    write, sent the model's own answer to review with a reason speaking of unknown words (`hguard ask --answer FILE`
    stripped the file's line ends, the API did not). The guard's own answers are stripped text; so is a given one."""
    guard = calibrated_guard
    r = guard.invoke(QUESTIONS[0], domain="alpha")
    for padded in (r.answer + "\n", r.answer + " \r\n", "  " + r.answer + "\t"):
        c = guard.check(QUESTIONS[0], padded, domain="alpha")
        assert (c.answer, c.route, c.reasons) == (r.answer, r.route, r.reasons), padded
        assert c.risk == pytest.approx(r.risk, rel=1e-5, abs=1e-6)


@pytest.fixture
def calibrated_guard(tiny_calibrated, tmp_path):
    lm, root = tiny_calibrated
    return Guard.from_policy(_policy(root, tmp_path), lm=lm)


def test_an_answer_that_is_not_the_models_own_goes_to_review_even_where_its_risk_would_accept(tiny_calibrated, tmp_path):
    """Thresholds that accept every risk: the model's own answer is accepted, another answer (a word changed, or the
    model's own cut short, where it would go on) goes to review, the reason naming how many tokens differ."""
    lm, root = tiny_calibrated
    guard = Guard.from_policy(_policy(root, tmp_path, accept_below=1.0, abstain_above=1.0), lm=lm)
    q = QUESTIONS[0]
    own = guard.invoke(q, domain="alpha")
    assert own.route == "accept" and guard.check(q, own.answer, domain="alpha").route == "accept"
    words = own.answer.split()
    other = " ".join(["paris" if w != "paris" else "rome" for w in words[:2]] + words[2:])
    r = guard.check(q, other, domain="alpha")
    assert r.route == "review"
    said = [x for x in r.reasons if "the given answer is not this model's own" in x]
    m = re.search(rf"own \((\d+) of {len(words)} tokens differ from its greedy choice\): its risk is not calibrated",
                  said[0] if said else "")
    assert m and int(m[1]) >= 1, r.reasons  # the first token at least (the prefix after it changed too)
    cut = guard.check(q, " ".join(words[:-1]), domain="alpha")
    assert cut.route == "review" and cut.risk is not None and cut.risk < 1.0  # a risk these thresholds would accept
    assert any(f"its {len(words) - 1} tokens are its greedy choices, but it would not end the answer there" in x
               for x in cut.reasons), cut.reasons
    rec = AuditLog(tmp_path / "audit.jsonl").find(r.audit_id)
    assert rec["answer_source"] == "given" and rec["given_answer"]["own_tokens"] == len(words) - int(m[1])
    assert rec["route"] == "review"


def test_a_given_answer_whose_comparison_is_missing_is_held():
    from hguard._guard_scoring import given_answer_problem

    own = {"tokens": 3, "own_tokens": 3, "decodes_as_given": True}
    assert given_answer_problem({**own, "ends_as_own": True}) is None
    assert given_answer_problem({**own, "ends_as_own": None}) is None
    for broken in (None, {}, {"tokens": 3, "own_tokens": None}, {"tokens": 3, "own_tokens": 4}):
        assert "could not be compared" in given_answer_problem(broken)
    for unsure in (None, False, "yes"):  # whether its tokens decode back to its text: unknown or not, it is held
        assert "do not decode back to its text" in given_answer_problem({**own, "ends_as_own": True,
                                                                          "decodes_as_given": unsure})


@pytest.mark.parametrize("call, words", [
    ({"answer": 123}, "answer must be a string, got int 123; pass the answer's text"),
    ({"answer": ""}, "the answer is empty"),
    ({"answer": " \n\t "}, "the answer is empty"),
    ({"answer": "paris <|im_end|> rome"}, "the answer holds the model's control token '<|im_end|>'"),
    ({"answer": "paris rome berlin madrid gold"}, r"the answer is 5 tokens long, over max_new_tokens = 4, the most this "
                                                  "guard generates .* raise \\[generation\\] max_new_tokens"),
])
def test_a_bad_given_answer_is_refused_in_one_line_on_record(calibrated_guard, tmp_path, monkeypatch, call, words):
    def no_generation(*a, **k):
        raise AssertionError("generated before the input was checked")

    monkeypatch.setattr(calibrated_guard.generator, "generate", no_generation)
    with pytest.raises(InputError, match=words) as err:
        calibrated_guard.check("who ?", domain="alpha", **call)
    assert "\n" not in str(err.value)
    (rec,) = list(AuditLog(tmp_path / "audit.jsonl"))
    assert rec["kind"] == "error" and rec["id"] == err.value.audit_id and rec["question"] == "who ?"
    # the answer refused is on record beside the question, and that it was a given one
    given = call["answer"]
    assert rec["answer_source"] == "given" and rec["answer"] == (given if isinstance(given, str) else repr(given))


@pytest.mark.parametrize("call, words", [
    (lambda g: g.check_batch(["who ?", "what ?"], ["paris"]), "got 2 questions and 1 answers; pass one of each"),
    (lambda g: g.check_batch(["who ?"], "paris"), "answers must be a list with one entry per question, got the string"),
    (lambda g: g.check_batch(["who ?"], None), "answers must be a list of strings, one per question, got None"),
    (lambda g: g.check_batch(["who ?"], 7), "answers must be a list of strings, one per question, got int 7"),
    (lambda g: g.batch(["who ?"], answers=["paris"], early_stop=True),
     "early_stop apply to an answer being generated, not to one given to be scored"),
    (lambda g: g.batch(["who ?"], answers=["paris"], stop=["x"], max_new_tokens=3),
     "stop, max_new_tokens apply to an answer being generated"),
    (lambda g: g.check_batch(["who ?", "what ?"], ["paris", ""]), r"question 1 of 2 \(counting from 0\): the answer is empty"),
    (lambda g: g.check("who ?", "paris", served="false"), "served must be True or False, got str 'false'"),
    # batch takes answers and served too (a review: "true" or 1 there was recorded as given, and the monitor, reading
    # only a literal true as served, left a served answer out of the live figures)
    (lambda g: g.batch(["who ?"], answers=["paris"], served="true"), "served must be True or False, got str 'true'"),
    (lambda g: g.batch(["who ?"], answers=["paris"], served=1), "served must be True or False, got int 1"),
    (lambda g: g.batch(["who ?"], answers=["paris"], served=np.True_), "served must be True or False, got bool np.True_"),
])
def test_bad_check_batch_arguments_are_refused_on_record(calibrated_guard, tmp_path, monkeypatch, call, words):
    monkeypatch.setattr(calibrated_guard.generator, "generate", lambda *a, **k: pytest.fail("generated"))
    with pytest.raises(InputError, match=words) as err:
        call(calibrated_guard)
    recs = list(AuditLog(tmp_path / "audit.jsonl"))
    assert recs and all(r["kind"] == "error" for r in recs) and err.value.audit_id == recs[0]["id"]
    assert all(r["answer_source"] == "given" for r in recs), recs


@pytest.mark.parametrize("call, answer", [
    (lambda g: g.check("who ?", "paris", served="yes"), "paris"),
    (lambda g: g.check("who ?", "paris", served=1), "paris"),
    (lambda g: g.batch(["who ?"], answers=["paris"], served="true"), "paris"),
    (lambda g: g.batch(["who ?"], answers=["paris"], runs={"run_id": "r1"}), "paris"),
    (lambda g: g.check_batch(["who ?"], ["paris"], contexts="a passage"), "paris"),
    (lambda g: g.check_batch(["who ?"], ["paris"], domains=["alpha", "alpha"]), "paris"),
    (lambda g: g.check_batch(["who ?"], None), None),
])
def test_a_refused_one_question_check_records_the_question_and_answer_as_given(calibrated_guard, tmp_path, call,
                                                                               answer):
    """An ops trial: check("q?", "a", served="yes") was refused, but its error record held the question as "['q?']"
    (a list's text), while a blank answer's refusal held "q?". One question is recorded as its text, its answer too."""
    with pytest.raises(InputError) as err:
        call(calibrated_guard)
    (rec,) = list(AuditLog(tmp_path / "audit.jsonl"))
    assert rec["id"] == err.value.audit_id and rec["kind"] == "error"
    assert (rec["question"], rec.get("answer"), rec["answer_source"]) == ("who ?", answer, "given"), rec


def test_a_refused_check_in_a_redacting_log_holds_the_answer_hashed_as_a_decision_does(tiny_calibrated, tmp_path):
    """A review: a refused check's error record held the question only (no answer, no answer_source), so the log could
    not say which answer was refused. A batch's refused row names its own answer; a redacting log hashes it."""
    import hashlib

    lm, root = tiny_calibrated
    policy = _policy(root, tmp_path)
    plain = Guard.from_policy(policy, lm=lm)
    with pytest.raises(InputError, match="question 1 of 2"):
        plain.check_batch(["who ?", "what ?"], ["paris", "paris <|im_end|> rome"], domains=["alpha", "alpha"])
    (rec,) = [r for r in AuditLog(tmp_path / "audit.jsonl") if r["kind"] == "error"]
    assert (rec["question"], rec["answer"], rec["answer_source"]) == ("what ?", "paris <|im_end|> rome", "given")
    data = policy.model_dump(mode="json")
    data["audit"] = {**data["audit"], "path": str(tmp_path / "redacted.jsonl"), "redact": True}
    redacting = Guard.from_policy(type(policy).model_validate(data), lm=lm)
    with pytest.raises(InputError, match="the answer is empty"):
        redacting.check("who ?", " ", domain="alpha")
    (rec,) = list(AuditLog(tmp_path / "redacted.jsonl"))
    assert rec["answer"] == {"sha256": hashlib.sha256(b" ").hexdigest()} and rec["answer_source"] == "given"


def test_a_given_answer_with_context_runs_the_answer_holds(calibrated_guard):
    """With context, the given answer is grounded and held as a generated one is: a figure the passage does not
    state is held for review, named."""
    r = calibrated_guard.check("what year was it ?", "it was 1999", context="paris is the capital of france",
                               domain="alpha")
    assert r.route == "review" and 0.0 <= r.signals["grounding"] <= 1.0
    assert any("the answer states 1999, which neither the passage nor the question states" in x
               for x in r.reasons), r.reasons


def test_a_given_answer_to_a_model_without_an_end_of_sequence_token_is_refused():
    from hguard.errors import UsageError

    gen = Generator(tiny_model("llama", seed=3), max_new_tokens=4)
    gen.eos_token_ids = []  # a model naming none: nothing would end the answer where it ends
    with pytest.raises(UsageError, match="names no end-of-sequence token .* set model.generation_config.eos_token_id"):
        gen.generate(["who ?"], answers=["paris"])


def test_an_answer_whose_tokens_do_not_decode_back_to_its_text_goes_to_review_naming_both(tiny_calibrated, tmp_path):
    """A review: where the model's greedy token is <unk>, any unknown word there was counted as the model's own, so
    'at this sydney three' was accepted (4 of 4 tokens own) and recorded, though what was scored reads 'at this
    three'. The tokens are decoded as the generator turns its own into text and compared with the text given: one
    that differs goes to review, the reason naming both (never accepted, whatever its risk)."""
    lm, root = tiny_calibrated
    guard = Guard.from_policy(_policy(root, tmp_path, accept_below=1.0, abstain_above=1.0), lm=lm)
    tok = lm.tokenizer
    qs = ["where is the city of gold ?", "where is the river of gold ?", "where is the book of rome ?"]
    g = next(g for g in guard.generator.generate(qs) if tok.unk_token_id in g.token_ids)
    answer = " ".join("sydney" if t == tok.unk_token_id else tok.convert_ids_to_tokens(t) for t in g.token_ids)
    assert guard.invoke(g.question, domain="alpha").answer == g.text != answer  # the <unk> is not shown
    r = guard.check(g.question, answer, domain="alpha")
    assert r.route == "review" and r.answer == answer
    assert any(f"do not decode back to its text ({answer!r} read as {g.text!r})" in x for x in r.reasons), r.reasons
    rec = AuditLog(tmp_path / "audit.jsonl").find(r.audit_id)
    assert rec["answer"] == answer and rec["given_answer"]["decodes_as_given"] is False and rec["route"] == "review"


def _plain_byte_level_model(seed: int = 0):
    """A tiny random llama without a chat template (a base model's plain frame) whose tokenizer writes a word's leading
    space into its token, as byte-level BPE vocabularies do: " paris" is 'Ġparis', another token than 'paris'."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from hguard.models import _finish
    from hguard.testing import SPECIAL, _WORDS, tiny_config

    words = [*_WORDS, "Question", "Answer", ".", ":", "?"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*SPECIAL, "Ċ", *words, *("Ġ" + w for w in words)]))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
                                  bos_token="<|im_start|>")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", len(tok)))
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    lm = _finish(model, tok, name="tiny-plain-bytelevel", source="tiny:plain-bytelevel", loaded_fingerprint="tiny:pbl")
    assert not lm.has_chat_template and tok.convert_ids_to_tokens(tok(" paris")["input_ids"]) == ["Ġparis"]
    return lm


class _Scripted:
    """A logits processor placed before the tracker: the model's greedy answer is ``script`` (token strings)."""

    def __init__(self, tok, script):
        self.ids, self.width = tok.convert_tokens_to_ids(script), None

    def __call__(self, input_ids, scores):
        self.width = input_ids.shape[1] if self.width is None else self.width
        out = scores.clone()
        out[:, self.ids[min(input_ids.shape[1] - self.width, len(self.ids) - 1)]] += 1000.0
        return out


def test_in_the_plain_frame_check_of_the_answer_invoke_gave_is_the_models_own():
    """A review: after the plain frame's "Answer:" the model writes its first word with the space before it
    ('Ġparis'); the guard strips that space from the answer's text, so the given copy was tokenised 'paris' and
    every answer invoke gave went to review as not the model's own (5 of 5, the default model without its chat
    template). The given answer is tokenised as the frame's continuation."""
    lm = _plain_byte_level_model()
    gen = Generator(lm, max_new_tokens=8)
    for script in (["Ġparis", "Ġis", "Ġthe", "Ġcapital", ".", "Ċ"], ["Ġtwo", "Ġbook", "Ċ"]):
        own = gen.generate(["what is it ?"], logits_processors=[_Scripted(lm.tokenizer, script)])[0]
        assert own.text == lm.tokenizer.convert_tokens_to_string(script).strip() and own.finished
        given = gen.generate(["what is it ?"], logits_processors=[_Scripted(lm.tokenizer, script)],
                             answers=[own.text])[0]
        n = len(own.token_ids)
        assert given.token_ids == own.token_ids and given.extra["given_answer"] == {
            "tokens": n, "own_tokens": n, "ends_as_own": True, "decodes_as_given": True}, given.extra


def test_in_the_plain_frame_a_stop_that_starts_inside_the_given_answer_is_not_where_the_model_ends_it():
    """A review: the model says "paris." and goes on "Question: what"; the given "paris. Question" and the model's next
    token ":" hold the frame's stop "Question:", which was taken for the model ending the answer there (3 of 3 own,
    ends_as_own true, nothing raised). The stop must start at the given answer's end."""
    from hguard._guard_scoring import given_answer_problem

    lm = _plain_byte_level_model()
    gen = Generator(lm, max_new_tokens=8)
    script = ["Ġparis", ".", "ĠQuestion", ":", "Ġwhat", "Ċ"]
    own = gen.generate(["what is it ?"], logits_processors=[_Scripted(lm.tokenizer, script)])[0]
    assert own.text == "paris."
    given = gen.generate(["what is it ?"], logits_processors=[_Scripted(lm.tokenizer, script)],
                         answers=["paris. Question"])[0]
    assert given.extra["given_answer"]["own_tokens"] == 3 and given.extra["given_answer"]["ends_as_own"] is False
    assert "would not end the answer there" in given_answer_problem(given.extra["given_answer"])
    from hguard._decoding import stop_starts_at_end

    stops = ["\n", "Question:", "Answer:"]
    assert stop_starts_at_end(" paris.", " paris.\n", stops) and stop_starts_at_end("paris.", "paris. Question:", stops)
    assert not stop_starts_at_end("paris. Question", "paris. Question:", stops)  # inside the answer
    assert not stop_starts_at_end("paris", "paris.\n", stops)  # after text the next token says
    assert not stop_starts_at_end("paris", "paris two", stops)  # no stop at all


def test_an_evaluations_accepted_answers_are_not_spot_checked_and_served_ones_are(tiny_calibrated, tmp_path):
    """Spot-checks estimate hallucinations among the answers users were served. An evaluation's given answers
    (served=False) served no one: none is picked (each would take a reviewer's time and a day's minimum from served
    answers); a served one is picked as a generated answer is, and the monitor's selection audit finds no mismatch."""
    from hguard.monitor import run_monitor

    lm, root = tiny_calibrated
    guard = Guard.from_policy(_policy(root, tmp_path, accept_below=1.0, abstain_above=1.0, spot_check_rate=1.0), lm=lm)
    own = guard.invoke(QUESTIONS[0], domain="alpha")
    evaluated = guard.check(QUESTIONS[0], own.answer, domain="alpha")
    served = guard.check(QUESTIONS[0], own.answer, domain="alpha", served=True)
    assert own.route == evaluated.route == served.route == "accept"
    records = list(AuditLog(tmp_path / "audit.jsonl"))
    spots = {r["decision_audit_id"] for r in records if r["kind"] == "spot_check"}
    assert spots == {own.audit_id, served.audit_id}
    assert "spot_check_rate" not in AuditLog(tmp_path / "audit.jsonl").find(evaluated.audit_id)
    e = run_monitor(guard.policy, act=False)["domains"]["alpha"]
    assert e["selection_audit"]["mismatches"] == [] and e["selection_audit"]["accepted"] == 2


def test_prompt_messages_is_what_another_server_must_be_sent_for_its_answer_to_be_the_models_own(calibrated_guard):
    """Another server of the same weights (here the model itself, called as a chat server calls it: the chat template
    applied to the messages, greedy, capped at the policy's max_new_tokens) sent Guard.prompt_messages: its answer is
    the model's own for the guard's prompt, token for token, and check decides it as invoke did."""
    import torch

    guard = calibrated_guard
    lm, limit = guard.lm, guard.generator.max_new_tokens
    q, passages = QUESTIONS[0], ["gold is a metal .", "gold is a metal .", "paris is in france ."]
    assert guard.prompt_messages(q, passages) == guard.generator.messages(q, "gold is a metal .\n\nparis is in france .")

    def served(messages):
        ids = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"]
        with torch.no_grad():
            out = lm.model.generate(ids, max_new_tokens=limit, do_sample=False)
        return lm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    own = guard.invoke(q, passages, domain="alpha")
    assert served(guard.prompt_messages(q, passages)) == own.answer
    r = guard.check(q, own.answer, passages, domain="alpha")
    assert r.route == own.route and not any("not this model's own" in x for x in r.reasons), r.reasons


def test_an_answer_over_max_new_tokens_is_refused_naming_the_cap_for_a_server_answering_for_the_guard(calibrated_guard):
    with pytest.raises(InputError) as err:
        calibrated_guard.check("who ?", " ".join(["paris"] * 40), domain="alpha")
    limit = calibrated_guard.generator.max_new_tokens
    assert f"cap it at max_tokens={limit} and send it Guard.prompt_messages(...)" in str(err.value)


def test_ask_prints_a_given_answer_escaped_as_review_list_does(tiny_calibrated, tmp_path, monkeypatch, capsys):
    """A bad-input trial: `hguard ask --answer FILE` printed the answer raw: "Paris ESC[2K CR [route=accept] fine"
    erased the line and drew a forged route line, a NUL came through. Its escape sequences are shown escaped, as
    `hguard review list` shows them, its line breaks kept; the JSON output is unchanged."""
    import json

    from hguard.cli import main
    from hguard.testing import tiny_guard

    guard = tiny_guard(tiny_calibrated[1], tmp_path / "runs", "accept")
    monkeypatch.setattr(Guard, "from_policy", classmethod(lambda cls, *a, **k: guard))
    answer = tmp_path / "answer.txt"
    answer.write_text("a\x1b\rb\x00\nc", encoding="utf-8")  # within the tiny guard's 4 tokens
    q = ["ask", "what is the capital of france ?", "--answer", str(answer)]
    assert main(q) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\r\x00"), repr(out)
    assert "a\\x1b" in out and "b\\x00" in out  # (a held answer's line folds its whitespace, \r too)
    lines = out.splitlines()  # the answer's line breaks kept (the file's "\r" is read as one), then the route line
    assert lines[:4] == ["[needs review] a\\x1b", "b\\x00", "c", lines[3]] and lines[3].startswith("[route=review ")
    assert main([*q, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == answer.read_text(encoding="utf-8").strip()


def test_ask_shows_a_tab_in_an_answer_as_a_tab_and_escapes_other_control_characters(tiny_calibrated, tmp_path,
                                                                                    monkeypatch, capsys):
    """A bad-input trial: `hguard ask` showed a tab in the answer as "\\t" (a table's columns, code's indentation):
    a tab is text, as a line break is, and is shown as one; ESC and the other control characters stay escaped."""
    from hguard.cli import main
    from hguard.testing import tiny_guard

    guard = tiny_guard(tiny_calibrated[1], tmp_path / "runs", "accept")
    monkeypatch.setattr(Guard, "from_policy", classmethod(lambda cls, *a, **k: guard))
    answer = tmp_path / "answer.txt"
    answer.write_text("a\tb\x1b\nc", encoding="utf-8")  # within the tiny guard's 4 tokens
    assert main(["ask", "what is the capital of france ?", "--answer", str(answer)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["[needs review] a\tb\\x1b", "c"], lines
    assert "\\t" not in "\n".join(lines[:2]) and "\x1b" not in "\n".join(lines)


@pytest.mark.parametrize("value", ["no", 1, None, np.True_])
@pytest.mark.parametrize("call", [lambda g, v: g.invoke("who ?", early_stop=v),
                                  lambda g, v: g.batch(["who ?"], early_stop=v)], ids=["invoke", "batch"])
def test_an_early_stop_that_is_not_a_bool_is_refused_on_record_before_generating(calibrated_guard, tmp_path, monkeypatch,
                                                                                 call, value):
    """Guard.invoke(early_stop="no") ran with early stopping on (the adapters refuse a call's "no" since this stop; the
    guard read it with a truth test). Refused in one line naming it, on record, before anything is generated."""
    monkeypatch.setattr(calibrated_guard.generator, "generate", lambda *a, **k: pytest.fail("generated"))
    with pytest.raises(InputError) as err:
        call(calibrated_guard, value)
    assert str(err.value).startswith(f"Guard: early_stop={value!r} is not True or False ({type(value).__name__}); pass ")
    recs = list(AuditLog(tmp_path / "audit.jsonl"))
    assert [r["kind"] for r in recs] == ["error"] and err.value.audit_id == recs[0]["id"]
