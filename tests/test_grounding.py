"""Grounding signals: lexical / phrase / proximity on crafted cases, the real bundled embedder, the
model-based signal on a tiny random Llama, the evaluation function, the JSONL reader and the CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from hguard.errors import DataError, InputError, ModelNotFoundError
from hguard.signals import grounding as g
from hguard.signals.grounding import (
    GroundingScorer,
    embedding_support,
    lexical_support,
    phrase_support,
    proximity_support,
)
from research.grounding_eval import auroc, cli_main, evaluate_grounding, read_grounding_jsonl

@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Small models run faster on one thread than fighting over shared cores; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BEOWULF = (
    "Beowulf is a 2007 British-American 3D motion capture epic fantasy film directed by Robert "
    "Zemeckis and written by Neil Gaiman and Roger Avary, based on the Old English epic poem."
)


# ------------------------------------------------------------------------------------------ lexical


def test_lexical_full_and_no_support():
    ctx = "The Oberoi Group is a hotel company with its head office in Delhi."
    q = "The Oberoi family is part of a hotel company that has a head office in what city?"
    assert lexical_support("Delhi", ctx, q) == 1.0
    assert lexical_support("Mumbai", ctx, q) == 0.0
    # partly supported: 'delhi' found, 'capital' / 'india' not
    assert lexical_support("Delhi, the capital of India", ctx, q) == pytest.approx(1 / 3)


def test_lexical_numbers_must_match_exactly():
    ctx = "The first game was released on August 8, 2014, and sold 1,000,000 copies."
    assert lexical_support("2014", ctx) == 1.0
    assert lexical_support("2015", ctx) == 0.0  # no fuzzy match for numbers
    assert lexical_support("August 8, 2015", ctx) == pytest.approx(2 / 3)
    assert lexical_support("1000000 copies", ctx) == 1.0  # thousands separators are normalised
    assert lexical_support("three", "It has 3 wheels.") == 1.0  # number words become digits


def test_lexical_question_words_are_no_evidence():
    ctx = "The film was directed by Steven Spielberg in 1993."
    q = "Who directed the film released in 1993?"
    # 'directed', 'film', '1993' come from the question and do not count as evidence ...
    assert g._evidence_tokens("The film was directed by Todd Phillips in 1993", q) == ["todd", "phillips"]
    assert lexical_support("The film was directed by Todd Phillips in 1993", ctx, q) == 0.0
    assert lexical_support("Steven Spielberg", ctx, q) == 1.0
    # ... so an answer that only repeats the question has no evidence either way
    assert lexical_support("The film directed in 1993", ctx, q) == 0.5
    # without the question the repeated words would look like support
    assert lexical_support("The film was directed by Todd Phillips in 1993", ctx) == pytest.approx(3 / 5)


def test_lexical_fuzzy_word_forms():
    ctx = "He is an American author of historical spy novels, a Catholicism scholar."
    assert lexical_support("novel", ctx) == 1.0  # stem
    assert lexical_support("America", ctx) == 1.0  # shared long prefix
    assert lexical_support("Catholic", ctx) == 1.0
    assert lexical_support("America", ctx, fuzzy=False) == 0.0


def test_lexical_per_sentence_and_list_context():
    passages = ["Paris is the capital of France.", "Berlin is the capital of Germany."]
    assert lexical_support("Paris and Berlin", passages) == 1.0
    assert lexical_support("Paris and Berlin", passages, per_sentence=True) == 0.5


def test_phrase_checks_word_order():
    ctx = (
        "The Canada Memorial in Green Park, London. Conrad Moffat Black, Lord Black of Crossharbour, "
        "is a Canadian-born British former newspaper publisher."
    )
    assert phrase_support("Lord Black of Crossharbour", ctx) == 1.0
    assert phrase_support("Lord Black of London", ctx) == pytest.approx(2 / 3)
    assert phrase_support("the Crossharbour", ctx) == 1.0  # leading article dropped
    assert phrase_support("Toronto", ctx) == 0.0


def test_proximity_prefers_the_answer_next_to_the_question_terms():
    q = "Beowulf, a 2007 film, was directed by who?"
    right = proximity_support("Robert Zemeckis", BEOWULF, q)
    distractor = proximity_support("Neil Gaiman", BEOWULF, q)
    assert lexical_support("Neil Gaiman", BEOWULF, q) == 1.0  # lexically both are in the context
    assert right > distractor
    assert proximity_support("Peter Jackson", BEOWULF, q) == 0.0
    assert proximity_support("Robert Zemeckis", BEOWULF, None) == 0.5


@pytest.mark.parametrize("bad", [None, 42, {"text": "x"}, b"bytes"])
def test_context_type_errors_name_the_type_and_the_fix(bad):
    with pytest.raises(InputError) as exc:
        lexical_support("Delhi", bad, "q?")
    msg = str(exc.value)
    assert type(bad).__name__ in msg and "str" in msg and "list" in msg


def test_context_list_with_non_str_item():
    with pytest.raises(InputError, match="passage 1 is int"):
        phrase_support("Delhi", ["Delhi is a city.", 3])
    with pytest.raises(InputError, match="answer must be a str, got int"):
        lexical_support(5, "ctx")


def test_split_sentences_handles_glued_paragraphs():
    text = "Arthur's Magazine was published in the 19th century.First for Women is published by Bauer."
    assert g.split_sentences(text) == [
        "Arthur's Magazine was published in the 19th century.",
        "First for Women is published by Bauer.",
    ]


# ---------------------------------------------------------------------------------------- embedding


@pytest.fixture(scope="module")
def embedder():
    from hguard.signals.embedding import get_embedder

    return get_embedder()


def test_embedder_shape_norm_and_singleton(embedder):
    from hguard.signals.embedding import get_embedder

    assert get_embedder() is embedder
    v = embedder.encode(["Paris is the capital of France.", "The capital of France is Paris.", "I like tea."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > 0.8 > sims[0, 2]
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(InputError, match="list of strings"):
        embedder.encode("a single string")


def test_embedder_is_thread_safe(embedder):
    texts = ["Delhi is in India.", "The Oberoi Group has its head office in Delhi."]
    ref = embedder.encode(texts)
    results, errors = [], []

    def work():
        try:
            results.append(embedder.encode(texts))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results:
        assert np.allclose(r, ref, atol=1e-5)


def test_missing_embedding_package_names_pip_install():
    from hguard.signals.embedding import Embedder, locate_model_dir

    with pytest.raises(ModelNotFoundError, match="pip install no-such-embedding-pkg"):
        locate_model_dir("no-such-embedding-pkg")
    with pytest.raises(ModelNotFoundError, match="modules.json missing"):
        Embedder(model_dir="/nonexistent/model").encode(["x"])


def test_embedding_support_prefers_the_supported_answer(embedder):
    ctx = (
        "The Oberoi family is an Indian family famous for its hotels. "
        "The Oberoi Group is a hotel company with its head office in Delhi."
    )
    q = "The Oberoi Group has its head office in what city?"
    right = embedding_support("Delhi", ctx, q, embedder=embedder)
    wrong = embedding_support("Mumbai, the financial capital of India", ctx, q, embedder=embedder)
    assert 0.0 <= wrong < right <= 1.0
    plain = embedding_support("Delhi", ctx, q, embedder=embedder, mode="cosine")
    assert 0.5 < plain <= 1.0
    with pytest.raises(InputError, match="mode"):
        embedding_support("Delhi", ctx, q, embedder=embedder, mode="dot")


# ------------------------------------------------------------------------------------ model signal


class CharTokenizer:
    """A byte-level tokenizer for the tiny test model (no download, no chat template)."""

    chat_template = None
    vocab = 260

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.encode("utf-8"))}

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="ignore")


@pytest.fixture(scope="module")
def tiny_lm():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=CharTokenizer.vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    )
    return LlamaForCausalLM(cfg).eval(), CharTokenizer()


def test_answer_loglik_matches_a_full_teacher_forced_pass(tiny_lm):
    import torch

    model, tok = tiny_lm
    q, ctx = "Who directed Beowulf?", BEOWULF
    fast = g.answer_logliks(model, tok, q, ["Robert Zemeckis", "Neil Gaiman"], ctx)
    for answer, got in zip(["Robert Zemeckis", "Neil Gaiman"], fast):
        prompt = g._prompt_ids(tok, q, ctx)
        ids = tok(answer)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + ids])).logits[0]
        logp = torch.log_softmax(logits, -1)[len(prompt) - 1 : len(prompt) - 1 + len(ids)]
        want = logp.gather(1, torch.tensor(ids).unsqueeze(1)).mean().item()
        assert got == pytest.approx(want, abs=1e-4)
    assert g.answer_loglik(model, tok, q, "Robert Zemeckis", ctx) == pytest.approx(fast[0], abs=1e-6)


def test_model_support_is_a_logistic_of_the_lift(tiny_lm):
    model, tok = tiny_lm
    q = "Who directed Beowulf?"
    lift = g.model_lift(model, tok, q, "Robert Zemeckis", BEOWULF)
    with_ctx = g.answer_loglik(model, tok, q, "Robert Zemeckis", BEOWULF)
    without = g.answer_loglik(model, tok, q, "Robert Zemeckis", None)
    assert lift == pytest.approx(with_ctx - without, abs=1e-5)
    assert lift != 0.0  # the context changes the prediction
    s = g.model_support(model, tok, q, "Robert Zemeckis", [BEOWULF])
    assert 0.0 < s < 1.0
    assert s == pytest.approx(g.sigmoid(g.MODEL_LIFT_SCALE * (lift - g.MODEL_LIFT_OFFSET)), abs=1e-5)
    with pytest.raises(InputError, match="empty"):
        g.model_support(model, tok, q, "   ", BEOWULF)


def test_scorer_with_model_adds_the_model_signal(tiny_lm, embedder):
    model, tok = tiny_lm
    scorer = GroundingScorer(embedder=embedder, model=model, tokenizer=tok)
    out = scorer.score("Who directed Beowulf?", "Robert Zemeckis", BEOWULF)
    assert set(out) == set(scorer.signals) | {"grounding"}
    assert "grounding_model" in out
    assert all(0.0 <= v <= 1.0 for v in out.values())
    with pytest.raises(InputError, match="both model and tokenizer"):
        GroundingScorer(model=model)


# ------------------------------------------------------------------------------------------ scorer


def test_scorer_signals_and_merge(embedder):
    scorer = GroundingScorer(embedder=embedder)
    q = "Beowulf, a 2007 film, was directed by who?"
    right = scorer.score(q, "Robert Zemeckis", BEOWULF)
    wrong = scorer.score(q, "Peter Jackson", BEOWULF)
    assert set(right) == {
        "grounding_lexical", "grounding_phrase", "grounding_proximity", "grounding_embedding", "grounding",
    }
    assert all(0.0 <= v <= 1.0 for v in right.values())
    assert right["grounding"] > 0.5 > wrong["grounding"]
    # explicit weights: merge is sigmoid(bias + w . signals)
    custom = GroundingScorer(embedder=embedder, weights={"bias": -1.0, "grounding_lexical": 2.0})
    s = custom.score(q, "Robert Zemeckis", BEOWULF)
    assert s["grounding"] == pytest.approx(g.sigmoid(-1.0 + 2.0 * s["grounding_lexical"]))
    with pytest.raises(InputError, match="unknown weight 'lexical'"):
        GroundingScorer(embedder=embedder, weights={"lexical": 1.0})
    with pytest.raises(InputError, match="context must be a str or a list"):
        scorer.score(q, "Robert Zemeckis", 12)



def test_an_embedder_of_ones_own_is_read_by_its_unit_vectors(embedder):
    """The embedding signal reads dot products as cosines: an embedder whose vectors are 3 long (many do not normalise)
    made its lift nine times as large, so an answer that moved the question a little toward the context saturated
    at 1.0. Its rows are scaled to unit length: it scores as the same directions at length 1."""

    class Scaled:
        def encode(self, texts):
            return 3.0 * embedder.encode(texts)

    q = "Beowulf, a 2007 film, was directed by who?"
    for answer in ("Robert Zemeckis", "Peter Jackson"):
        assert GroundingScorer(embedder=Scaled()).score(q, answer, BEOWULF) == pytest.approx(
            GroundingScorer(embedder=embedder).score(q, answer, BEOWULF), abs=1e-5)


# -------------------------------------------------------------------------------------- evaluation


def test_auroc_with_ties():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    assert auroc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875)
    assert auroc([1, 1], [0.1, 0.2]) is None
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 5, 200).astype(float)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))


ROWS = [
    {
        "question": "The Oberoi Group has its head office in what city?",
        "context": "The Oberoi Group is a hotel company with its head office in Delhi.",
        "right_answer": "Delhi",
        "hallucinated_answer": "Mumbai",
    },
    {
        "question": "Beowulf, a 2007 film, was directed by who?",
        "context": BEOWULF,
        "right_answer": "Robert Zemeckis",
        "hallucinated_answer": "Peter Jackson, the New Zealand director",
    },
    {
        "question": "When was the first Five Nights at Freddy's game released?",
        "knowledge": "The first Five Nights at Freddy's game was released via Desura on August 8, 2014.",
        "right_answer": "August 8, 2014",
        "hallucinated_answer": "December 1998",
    },
]


def test_evaluate_grounding_shape_and_values(embedder):
    res = evaluate_grounding(ROWS, scorer=GroundingScorer(embedder=embedder))
    assert res["n"] == 3 and res["n_answers"] == 6
    assert set(res["auroc"]) == {"lexical", "phrase", "proximity", "embedding", "merged", "length"}
    assert res["auroc"]["lexical"] == 1.0 and res["auroc"]["merged"] == 1.0
    lm = res["length_matched"]
    assert lm["n"] == 2 and lm["n_answers"] == 4  # the Peter Jackson row differs by 4 words
    assert lm["auroc"]["length"] == pytest.approx(0.375)
    assert lm["auroc"]["merged"] == 1.0
    # each AUROC with its interval, widened for so few answers (a benchmark trial: "met, 0.967" on 60 rows bare)
    assert set(res["auroc_ci95"]) == set(res["auroc"]) and set(lm["auroc_ci95"]) == set(lm["auroc"])
    low, high = lm["auroc_ci95"]["merged"]
    assert low < 0.5 and high == 1.0  # 2 right and 2 hallucinated answers show little
    with pytest.raises(DataError, match="row 0: missing field 'right_answer'"):
        evaluate_grounding([{"question": "q", "context": "c"}], scorer=GroundingScorer(embedder=embedder))
    with pytest.raises(InputError, match="GroundingScorer"):
        evaluate_grounding(ROWS, scorer=object())


def test_read_grounding_jsonl_formats_and_errors(tmp_path):
    p = tmp_path / "rows.jsonl"
    conflict = {
        "question": "when was fnaf made",
        "real_passages": [{"passage": "Released on August 8, 2014.", "summary": "s"}],
        "real_short_answer": "August 8, 2014",
        "fake_short_answer": "1998",
    }
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[2]) + "\n" + json.dumps(conflict) + "\n")
    rows = read_grounding_jsonl(p)
    assert len(rows) == 3
    assert rows[1]["context"].startswith("The first Five Nights")  # 'knowledge' accepted
    assert rows[2] == {
        "question": "when was fnaf made",
        "context": ["Released on August 8, 2014."],
        "right_answer": "August 8, 2014",
        "hallucinated_answer": "1998",
    }
    assert len(read_grounding_jsonl(p, limit=1)) == 1

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        read_grounding_jsonl(bad)
    bad.write_text(json.dumps({**ROWS[0], "right_answer": 7}) + "\n")
    with pytest.raises(DataError, match=r":1: field 'right_answer' must be a string, got int"):
        read_grounding_jsonl(bad)
    bad.write_text(json.dumps({**ROWS[0], "hallucinated_answer": "  "}) + "\n")
    with pytest.raises(DataError, match="'hallucinated_answer' is empty"):
        read_grounding_jsonl(bad)
    bad.write_text("")
    with pytest.raises(DataError, match="no rows"):
        read_grounding_jsonl(bad)
    with pytest.raises(DataError, match="not found"):
        read_grounding_jsonl(tmp_path / "missing.jsonl")


def test_cli_json_shape(tmp_path, capsys, embedder):
    p = tmp_path / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert cli_main(["--data", str(p), "--json", "--no-model", "--limit", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 2 and out["model"] is False
    assert {"lexical", "embedding", "merged", "length"} <= set(out["auroc"])
    assert set(out["length_matched"]) >= {"n", "auroc"}
    assert cli_main(["--data", str(p), "--no-model"]) == 0
    table = capsys.readouterr().out
    assert "| merged |" in table
    assert cli_main(["--data", str(tmp_path / "nope.jsonl"), "--no-model"]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["--data", str(p), "--limit", "0"])


def test_a_weight_too_large_for_a_float_is_refused_naming_it(embedder):
    """10**400 raised OverflowError from math.isfinite; it is refused as NaN is, naming the weight."""
    with pytest.raises(InputError, match=r"weight 'bias' must be a finite number, got 1000.*; fix the value"):
        GroundingScorer(embedder=embedder, weights={"bias": 10**400})


@pytest.mark.parametrize("answer, passage, reversed_", [
    # a policy team's trial: each grounded 1.0 or near it
    ("The company shares your personal information with third-party advertisers.",
     "We do not share your personal information with third-party advertisers. We may share aggregated statistics.", True),
    ("Two-factor authentication is not required for administrator accounts.",
     "Two-factor authentication is required for all administrator accounts. For standard accounts it is optional.", True),
    ("Employees may not carry over unused vacation days into the next calendar year.",
     "Employees may carry over up to five unused vacation days into the next calendar year.", True),
    ("Requests received after 30 days will be accepted.",
     "Refund requests must be submitted within 30 days. Requests received after 30 days won't be accepted.", True),
    # restatements, and what is no negation
    ("The company does not share your personal information with advertisers.",
     "We do not share your personal information with third-party advertisers.", False),
    ("No, the company does not share your personal information with advertisers.",
     "We do not share your personal information with third-party advertisers.", False),
    ("No, the company shares your personal information with advertisers.",  # the claim after the "No," reversed
     "We do not share your personal information with third-party advertisers.", True),
    ("Refund requests must be submitted no later than 30 days after purchase.",
     "Refund requests must be submitted within 30 days of purchase.", False),
    ("The fee covers not only the card but also the account statements.",
     "The fee covers the card and the account statements.", False),
    ("No.", "We do not share your personal information.", False),  # too few words to compare
    # a leading "No" that is the subject's ("No refunds"), not the reply, negates the claim; against a time bound on the
    # other side ("after" / "within") it restates
    ("No refunds are given.", "Refunds are given within 30 days.", True),
    ("No refunds are given after 30 days.", "Refunds are given within 30 days.", False),
    ("No, refunds are not given after 30 days.", "Refunds are given within 30 days.", False),
    ("No, refunds are given within 30 days.", "Refunds are given within 30 days.", False),
    ("No they are given within 30 days.", "Refunds are given within 30 days.", False),  # "No" the reply: "they"
    ("Refunds are not given before 30 days.", "Refunds are given within 30 days.", True),
    # a cap and a bound not to exceed say the same ("capped at" against "shall not exceed": held before); "is not capped"
    # and "may exceed" reverse either
    ("Each party's total liability is capped at the fees paid under this agreement.",
     "Each party's total liability shall not exceed the fees paid under this agreement.", False),
    ("Each party's total liability is not capped.",
     "Each party's total liability shall not exceed the fees paid under this agreement.", True),
    ("Each party's total liability may exceed the fees paid under this agreement.",
     "Each party's total liability is capped at the fees paid under this agreement.", True),
    ("In no event shall either party's total liability exceed the fees paid under this agreement.",
     "Each party's total liability is capped at the fees paid under this agreement.", False),
    ("The adult max is 4,000 mg of acetaminophen in 24 hours.",
     "Adults should not take more than 4,000 mg of acetaminophen in 24 hours.", False),
    ("Class A extinguishers must be within 75 feet of travel distance.",
     "Class A extinguishers must be located so that travel distance does not exceed 75 feet.", False),
    ("Adults may take more than 4,000 mg of acetaminophen in 24 hours.",
     "The adult maximum is 4,000 mg of acetaminophen in 24 hours.", True),
    ("The office opens at nine on weekdays.", "We do not share your personal information with advertisers.", False),
    # a review: negations are counted (two are none), "unless" and "except" among them, and a title's are not the claim's
    ("You can close your account only if the balance is zero.",
     "You cannot close your account unless the balance is zero.", False),
    ("The card cannot be used abroad without fees.", "The card can be used abroad without fees.", True),
    ("Refunds are issued within 14 days, not later.", "Refunds are issued within 14 days of the request.", False),
    ("Late payments incur a fee of $35, no exceptions.", "Late payments incur a fee of $35.", False),
    # other languages' negations, by their presence (a trial through a LangChain chain: German read no negation)
    ("Der Zuschuss wird an Teilzeitkräfte gezahlt.",
     "Der Zuschuss für das Jobticket beträgt 1.500 € pro Jahr. Der Zuschuss wird nicht an Teilzeitkräfte gezahlt.", True),
    ("Der Zuschuss wird nicht an Teilzeitkräfte gezahlt.", "Der Zuschuss wird nicht an Teilzeitkräfte gezahlt.", False),
    ("El seguro dental no está incluido en el plan de beneficios.",
     "El seguro dental está incluido en el plan de beneficios.", True),
    ("No hay ninguna cuota para el seguro dental del plan.", "No hay ninguna cuota para el seguro dental.", False),
    # a day written as an ordinal before its month is no sentence's end ("am 31. Mai": compared in halves, missed)
    ("Der Vertrag endet am 31. Mai automatisch.", "Der Vertrag endet am 31. Mai nicht automatisch.", True),
    # ... only in a sentence of their language: an English "non-affiliated" is no negation (a third review)
    ("The Company shall disclose personal data to non-affiliated third parties without consent.",
     "The Company shall not disclose personal data to non-affiliated third parties without consent.", True),
    ('The band U2 did not record "I Still Haven\'t Found What I\'m Looking For" in 1987.',
     'The band U2 recorded "I Still Haven\'t Found What I\'m Looking For" in 1987.', True),
    # a legal team's trial: a clause's carve-out or boilerplate qualifier counts only where the other sentence restates
    # it; "neither ... nor" is one negation; "including but not limited to" none; a covenant's name one
    ("You cannot close your savings account.", "You cannot close your savings account unless the balance is zero.",
     False),
    ("You can close your savings account at any time.",
     "You cannot close your savings account unless the balance is zero.", True),
    ("Members may resign from the board at any time.", "Members may not resign from the board without notice.", True),
    ("Members may resign from the board with notice.", "Members may resign from the board without notice.", True),
    ("Neither the license nor the data may be transferred to a third party.",
     "Neither the license nor the data may be transferred to a third party.", False),
    ("The license and the data may be transferred to a third party.",
     "Neither the license nor the data may be transferred to a third party.", True),
    ("The employee shall not solicit nor hire the company's staff.", "The employee may solicit and hire the company's staff.",
     True),
    ("The fee covers all cards, including the premium card.",
     "The fee covers all cards, including but not limited to the premium card.", False),
    ("The fee does not cover all cards, including the premium card.",
     "The fee covers all cards, including but not limited to the premium card.", True),
])
def test_a_sentence_saying_the_opposite_of_the_passage_sentence_it_restates_is_found(answer, passage, reversed_):
    from hguard.signals.grounding import GroundingScorer, reversed_claims

    found = reversed_claims(answer, passage)
    assert bool(found) is reversed_, found
    if reversed_:
        assert found[0][0] == answer
    if passage.startswith("We do not share") and reversed_:
        # what it catches that grounding does not: the reversal shares nearly every word
        assert GroundingScorer().score("What does the policy say?", answer, passage)["grounding_lexical"] >= 0.8


_LEGAL_CASES = [json.loads(line) for line in
                (Path(__file__).resolve().parent.parent / "benchmarks" / "cases" / "reversed_claims_legal.jsonl")
                .read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("case", _LEGAL_CASES, ids=[c["id"] for c in _LEGAL_CASES])
def test_a_faithful_answer_to_a_negatively_worded_clause_is_not_read_as_its_opposite(case):
    """A legal team's trial: faithful answers to non-compete, non-solicit, confidentiality and damages-waiver clauses
    were held as saying the opposite of the clause ("Neither party is liable for consequential damages." of "Except
    as provided herein, neither party shall be liable ..."; "The non-compete lasts one year ..."), while answers
    reversing them ("Either party is liable for consequential damages.") were not. The case file's faithful answers
    are not held, its reversals are (both written while fixing, besides the trial's four)."""
    from hguard.signals.grounding import reversed_claims

    found = reversed_claims(case["answer"], case["context"])
    assert bool(found) is (case["kind"] == "reversed"), (case["id"], found)
    assert len(_LEGAL_CASES) >= 50 and {c["source"] for c in _LEGAL_CASES} == {"trial", "written"}


_PAIRING_CASES = [json.loads(line) for line in
                  (Path(__file__).resolve().parent.parent / "benchmarks" / "cases" / "reversed_claims_pairing.jsonl")
                  .read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("case", _PAIRING_CASES, ids=[c["id"] for c in _PAIRING_CASES])
def test_a_claim_is_compared_with_the_passage_sentence_stating_its_subject_and_predicate(case):
    """Paired by the most shared words, "No, CT is not always necessary in children with a normal physical
    examination." was held against a PubMedQA-style passage's sentence on the physical examination (five words shared,
    none negated), and "Yes, CT is always necessary ..." passed; a claim is compared with the sentence stating its
    subject and predicate ("CT is not always necessary."), so the right answers pass and the reversals are held, each
    against that sentence."""
    from hguard.signals._grounding_lexical import _core, _stem, content_tokens
    from hguard.signals.grounding import reversed_claims, split_sentences

    found = reversed_claims(case["answer"], case["context"])
    assert bool(found) is (case["kind"] == "reversed"), (case["id"], found)
    if found and case["class"] == "pairing":  # held against the sentence sharing the most of the claim's core
        core = _core(found[0][0])
        overlap = {s: len(core & {_stem(t) for t in content_tokens(s)}) for s in split_sentences(case["context"])}
        assert core and overlap[found[0][1]] == max(overlap.values()) > 1, (core, found)


# a review of the cap reading (a54f2e7): right answers held because a "more than" qualifying another quantity of the
# passage's sentence was read as a negation against the answer's "within" or "maximum" (cp09-cp17), and variants
_CAP_RESTATEMENTS = [
    ("Returns are accepted within 30 days.", "Returns are accepted within 30 days for purchases of more than $50."),
    ("Claims must be filed within 90 days.",
     "Claims must be filed within 90 days; claims filed more than 90 days after service are denied."),
    ("Patients with a fever should be seen within 24 hours.",
     "Patients with a fever of more than 38 C should be seen within 24 hours."),
    ("The maximum contribution is $7,000 per year.",
     "Contributions of more than $7,000 per year are subject to a 6% excise tax."),
    ("Refunds are issued within 10 business days.",
     "Refunds are issued within 10 business days for orders of more than $20."),
    ("The maximum weight for checked bags is 23 kg.", "Checked bags weighing more than 23 kg incur an overweight fee."),
    ("Claims are paid within 30 days.",
     "Claims are paid within 30 days, and claims of more than $5,000 require a second review."),
    ("Orders ship within 2 days.", "Orders ship within 2 days, and orders of more than 20 items ship in two parcels."),
    ("Claims are paid within 30 days.", "Claims are paid within 30 days; amounts exceeding $5,000 are paid in two parts."),
    # a noun's bound in a claim negated besides, with the cap's figure, is the cap; a bound of the predicate is one
    ("Withdrawals are limited to $500 per day.", "Withdrawals of more than $500 per day are not permitted."),
    ("Overtime is capped at 10 hours per week.", "Employees may not work more than 10 hours of overtime per week."),
]
_CAP_REVERSALS = [
    ("Employees may work more than 10 hours of overtime per week.", "Overtime is capped at 10 hours per week."),
    ("Withdrawals can exceed $500 per day.", "Withdrawals are limited to $500 per day."),
    ("Returns are accepted for more than 30 days.", "Returns are accepted within 30 days."),
    # another quantity's "more than" no longer evens the answer's "not"
    ("Returns are not accepted within 30 days for purchases of more than $50.", "Returns are accepted within 30 days."),
]


@pytest.mark.parametrize(("answer", "passage", "reversed_"),
                         [(a, p, False) for a, p in _CAP_RESTATEMENTS] + [(a, p, True) for a, p in _CAP_REVERSALS])
def test_exceed_is_a_negation_against_a_cap_only_where_it_bounds_the_claim_s_predicate(answer, passage, reversed_):
    """Against a sentence wording a cap ("within 30 days", "maximum"), "exceed" and "more than" count as a negation
    where they bound the claim's predicate ("may not work more than", "can exceed"), or a noun of a claim negated besides
    with the cap's figure ("Withdrawals of more than $500 per day are not permitted."); a "more than" qualifying another
    quantity ("for purchases of more than $50", "bags weighing more than 23 kg incur a fee") is none (a review: read as
    one, these right answers were held)."""
    from hguard.signals.grounding import reversed_claims

    found = reversed_claims(answer, passage)
    assert bool(found) is reversed_, found


def test_a_claim_s_subject_and_predicate_are_read_up_to_its_qualifiers():
    from hguard.signals._grounding_lexical import _core

    assert _core("No, CT is not always necessary in children with a normal physical examination.") == {
        "ct", "alway", "necessary"}
    assert _core("The company shares your personal information with third-party advertisers.") == {
        "company", "shar", "personal", "information"}
    assert _core("Except as provided herein, neither party shall be liable for indirect damages.") == {
        "party", "liable"}
    assert _core("Travel expenses over $500 can be claimed without approval.") == {"travel", "expens", "500", "claim"}
    # the first clause that opens with no qualifier: a later clause's auxiliary is not the claim's, a contraction is one
    assert _core("In children with a normal physical examination, CT is not always necessary.") == {
        "ct", "alway", "necessary"}
    assert _core("Gift cards range from $10 to $500, never expire, and you can use up to 5 per order.") == {
        "gift", "card", "range"}
    assert _core("Don't exceed 4,000 mg of acetaminophen in 24 hours, or 2,000 mg a day if you have liver disease.") == {
        "exce", "4000", "mg", "acetaminophen"}
    assert _core("") == set() and _core("Yes.") == set() and _core(", ;") == set()
    # with its object: read on past a preposition after a bare verb once ("carry over ..."), not past a bound
    assert _core("Employees may carry over unused vacation days to the next year.") == {"employe", "carry"}
    assert _core("Employees may carry over unused vacation days to the next year.", with_object=True) == {
        "employe", "carry", "unus", "vacation", "day", "next", "year"}
    assert _core("Travel expenses over $500 can be claimed without approval.", with_object=True) == {
        "travel", "expens", "500", "claim"}
    assert _core("No, CT is not always necessary in children.", with_object=True) == {"ct", "alway", "necessary"}


_VACATION = ("Unused vacation days are carried over to the next year for full-time staff. Employees may not carry over "
             "sick leave.")
_PARKING = "Overnight parking in the visitor bays is allowed. Residents may not park in the fire lane."
_GRANTS = ("A remote work allowance can be requested once a year. Staff may not apply for a home office grant before "
           "probation ends.")


@pytest.mark.parametrize(("answer", "passage", "paired"), [
    # a review's (ml04): paired with the sick-leave sentence by subject and verb, the right answer was held
    ("Employees may carry over unused vacation days to the next year.", _VACATION, None),
    ("Employees may carry over sick leave.", _VACATION, "Employees may not carry over sick leave."),
    ("Employees may not carry over unused vacation days to the next year.", _VACATION,
     "Unused vacation days are carried over to the next year for full-time staff."),
    ("Residents may park in the visitor bays overnight.", _PARKING, None),
    ("Residents may not park in the visitor bays overnight.", _PARKING, "Overnight parking in the visitor bays is allowed."),
    ("Residents may park in the fire lane.", _PARKING, "Residents may not park in the fire lane."),
    ("Staff may apply for a remote work allowance once a year.", _GRANTS, None),
    ("Staff may apply for a home office grant before probation ends.", _GRANTS,
     "Staff may not apply for a home office grant before probation ends."),
])
def test_a_claim_is_paired_by_its_object_too(answer, passage, paired):
    """A claim is compared with the passage sentence sharing the most of its subject, predicate and the predicate's
    object ("carry over unused vacation days"), then of its subject and predicate: paired by subject and verb alone,
    "Employees may carry over unused vacation days to the next year." was compared with "Employees may not carry over
    sick leave." (two shared words) rather than the sentence it restates (six) and held (a review)."""
    from hguard.signals.grounding import reversed_claims

    found = reversed_claims(answer, passage)
    assert found == ([(answer, paired)] if paired else []), found



_EXPENSES = ("Expenses: Business travel expenses are reimbursed when submitted within 30 days with receipts. Meals while "
             "travelling are reimbursed up to 40 euros per day. Alcohol is never reimbursed.")
_HEALTH = ("Health benefits: The company pays 80 percent of the health insurance premium for employees and 50 percent "
           "for dependants. Coverage begins on the first day of the month after the start date.")
_VISITORS = "Visitors may bring laptops on site after registering at reception. Dogs are never allowed on the premises."
_DEPOSIT = "Tenants must pay the rent in cash at the office. The deposit is never accepted in cash."
_SURGERY = "Patients may not take aspirin after surgery. Ibuprofen may be taken for pain after surgery."
_BONUS = "The annual bonus is paid to all full-time staff in March. Part-time staff are not eligible."
_SMOKING = "Smoking is prohibited on the hospital premises. Pets are allowed in the hospital garden."
_CANTEEN = "Staff never pay for parking at the head office. Staff pay for meals in the canteen."
_PREMIUM = "The company does not pay the health insurance premium for part-time employees. Alcohol is never reimbursed."
_DINNERS = ("The company does not pay the health insurance premium for part-time employees. The company pays for alcohol "
            "at client dinners.")


@pytest.mark.parametrize(("answer", "passage", "paired"), [
    # an HR trial's (two retrieved passages, both orders): compared with the health-benefits sentence by its subject
    # and verb ("company", "pay"), the right answer was held
    ("The company does not pay alcohol for employees.", f"{_EXPENSES}\n\n{_HEALTH}", None),
    ("The company does not pay alcohol for employees.", f"{_HEALTH}\n\n{_EXPENSES}", None),
    ("Alcohol is reimbursed.", f"{_HEALTH}\n\n{_EXPENSES}", "Alcohol is never reimbursed."),
    ("Visitors may not bring dogs on site.", _VISITORS, None),
    ("Dogs are allowed on the premises.", _VISITORS, "Dogs are never allowed on the premises."),
    ("Tenants must not pay the deposit in cash.", _DEPOSIT, None),
    ("The deposit is accepted in cash.", _DEPOSIT, "The deposit is never accepted in cash."),
    # a review's (ml06)
    ("Patients may take ibuprofen for pain after surgery.", _SURGERY, None),
    ("Patients may not take ibuprofen after surgery.", _SURGERY, "Ibuprofen may be taken for pain after surgery."),
    # a sentence giving the verb no object (an ellipsis) restates the claim still
    ("Part-time staff are eligible for the annual bonus.", _BONUS, "Part-time staff are not eligible."),
    # the predicate's word is no object: "allowed" in another sentence does not rule the prohibition out
    ("Smoking is allowed on the hospital premises.", _SMOKING, "Smoking is prohibited on the hospital premises."),
    # a claim with no auxiliary, its verb after an adverb ("never pays"): its object is read too (it was not, so the
    # sentence sharing subject and verb was compared: the right answer held, the reversals passed)
    ("The company never pays for alcohol for employees.", f"{_EXPENSES}\n\n{_HEALTH}", None),
    ("The company never pays for alcohol for part-time employees.", _DINNERS,
     "The company pays for alcohol at client dinners."),
    ("Staff never pay for meals.", _CANTEEN, "Staff pay for meals in the canteen."),
    ("Staff never pay for parking.", _CANTEEN, None),
    # ... but an adverb that is no negation ("always") let the sentence on the object, too far to compare, hide a
    # reversal the bare verb's claim is held for (a review: "always pays" passed, "pays" held)
    ("The company always pays for alcohol for part-time employees.", _PREMIUM, _PREMIUM.split(". ")[0] + "."),
    ("The company usually pays for alcohol for part-time employees.", _PREMIUM, _PREMIUM.split(". ")[0] + "."),
    ("The company pays for alcohol for part-time employees.", _PREMIUM, _PREMIUM.split(". ")[0] + "."),
    ("The company never pays for alcohol for part-time employees.", _PREMIUM, None),
    ("The company always pays for alcohol for part-time employees.", _DINNERS, None),
    ("Staff always pay for parking.", "Staff pay for meals in the canteen. Parking is not available at weekends.", None),
])
@pytest.mark.parametrize("flipped", [False, True])
def test_a_sentence_giving_the_claim_s_verb_another_object_is_not_its_restatement(answer, passage, paired, flipped):
    """Where a passage sentence holds a claim's object, one that gives its verb another object does not restate it:
    "The company does not pay alcohol for employees." shares subject and verb with "The company pays 80 percent of
    the health insurance premium for employees ..." and was held against it (an HR trial), though "Alcohol is never
    reimbursed." is the sentence about alcohol. A sentence giving the verb no object ("... are not eligible.") and one
    wording the predicate otherwise ("prohibited" of "allowed") still restate it. Both sentence orders."""
    from hguard.signals.grounding import reversed_claims, split_sentences

    if flipped:
        passage = " ".join(reversed(split_sentences(passage)))
    found = reversed_claims(answer, passage)
    assert found == ([(answer, paired)] if paired else []), found


_REFUND = "Refunds reach your card within 10 days of the return."
_LATE = "A late fee of $30 applies if payment is not received by the 10th, plus $5 per day, not to exceed $100."


@pytest.mark.parametrize(("answer", "passage", "reversed_"), [
    # a negation of a claim the other sentence does not make was counted against it (held before)
    ("The refund reaches your card within 10 days of the return; shipping labels are free unless the item is "
     "oversized.", _REFUND, False),  # the second claim's "unless"
    ("Late fee: $30 after the 10th, then $5 a day, up to a maximum of $100.", _LATE, False),  # the condition's "not"
    # ... a reversal of the claim the two share is still found, alone or beside another claim
    ("The refund does not reach your card within 10 days of the return; shipping labels are free.", _REFUND, True),
    ("Refunds do not reach your card within 10 days of the return.", _REFUND, True),
    # a claim reversed beside another claim whose negation evened the count (passed before)
    ("A late fee of $30 does not apply if payment is not received by the 10th.", _LATE, True),
])
def test_negations_are_counted_per_claim(answer, passage, reversed_):
    """A sentence of several claims had its negations counted whole: a faithful answer was held for a negation of a
    claim its passage sentence does not make ("...; return shipping is $6.95 unless defective.") or of a condition
    ("if rent is not received by ..."), and a reversal passed where another claim's negation evened the count. The
    claims (parted by a semicolon or a condition's "if") that the other sentence does not restate are left out of
    the count, and the claims of two sentences of several are compared one by one."""
    from hguard.signals.grounding import reversed_claims

    assert bool(reversed_claims(answer, passage)) is reversed_


_TWO_NOTS = ("Vendor shall not use Customer Personal Data to train or improve machine-learning models, and shall not "
             "sell Customer Personal Data to any third party.")
_ONE_NOT = "Vendor shall not use Customer Personal Data to train or improve machine-learning models."
_BREACH = ("Vendor shall notify Customer of a personal data breach without undue delay and in any event within "
           "forty-eight (48) hours of becoming aware of it.")


@pytest.mark.parametrize(("answer", "passage", "reversed_"), [
    # a legal team's trial: two prohibitions joined by "and shall not" read as none (held, and the reversal passed)
    ("The vendor shall not use customer personal data to train machine-learning models.", _TWO_NOTS, False),
    ("The vendor cannot use customer personal data to train its machine-learning models.", _TWO_NOTS, False),
    ("The vendor may use customer personal data to train machine-learning models.", _TWO_NOTS, True),
    ("The vendor may sell customer personal data to third parties.", _TWO_NOTS, True),
    ("The vendor shall not sell customer personal data to any third party.", _TWO_NOTS, False),
    # a claim the other sentence restates in other words ("giving" for "give") is counted with the rest
    ("Members can resign at any time and do not need to give notice.",
     "Members may resign at any time without giving notice.", False),
    # ... a one-prohibition clause, as before
    ("The vendor shall not use customer personal data to train machine-learning models.", _ONE_NOT, False),
    ("The vendor may use customer personal data to train machine-learning models.", _ONE_NOT, True),
])
def test_claims_joined_by_a_conjunction_before_an_auxiliary_are_counted_apart(answer, passage, reversed_):
    """"X shall not use ..., and shall not sell ..." is two claims: its two negations were counted together (none),
    so a faithful "shall not use" was held and "may use" passed. A conjunction before an auxiliary parts claims, and
    of a sentence's claims the other restates, the one sharing the most words with it and any sharing most of their
    own are counted, whether or not the whole sentences' counts differ."""
    from hguard.signals.grounding import reversed_claims

    assert bool(reversed_claims(answer, passage)) is reversed_


_RARELY = "The company rarely approves remote work requests."
_ALWAYS = "The company always approves remote work requests."


@pytest.mark.parametrize(("answer", "passage", "reversed_"), [
    ("The company always approves remote work requests.", _RARELY, True),  # a review's: passed
    ("Remote work requests are always approved.", _RARELY, True),
    ("The company rarely approves remote work requests.", _ALWAYS, True),
    ("The company hardly ever approves remote work requests.", _ALWAYS, True),
    # "rarely" is no negation against a plain claim, another adverb or "not always"
    ("The company seldom approves remote work requests.", _RARELY, False),
    ("The company does not always approve remote work requests.", _RARELY, False),
    ("The company usually approves remote work requests.", _RARELY, False),
    ("The company approves remote work requests.", _RARELY, False),
    ("The company rarely approves remote work requests.", "The company approves remote work requests.", False),
])
def test_rarely_is_a_negation_against_always_only(answer, passage, reversed_):
    """"The company always approves remote work requests." passed against "The company rarely approves remote work
    requests." (a review): no negation on either side. "rarely", "seldom" or "hardly ever" is one where the other
    sentence says "always" and it does not."""
    from hguard.signals.grounding import reversed_claims

    assert bool(reversed_claims(answer, passage)) is reversed_


@pytest.mark.parametrize(("answer", "passage"), [
    ("The landlord never pays for heating.", "The landlord always pays for heating."),
    ("The landlord never pays for heating.", "Tenants never pay for water; the landlord always pays for heating."),
    ("The company never pays for alcohol at client dinners.", "The company pays for alcohol at client dinners."),
    ("The company always pays for alcohol.", "The company never pays for alcohol."),
    ("Service animals are not allowed.", "Pets are not allowed in the apartments; service animals are allowed."),
])
def test_never_against_always_or_a_plain_claim_is_a_reversal(answer, passage):
    """A review's cases: "never" against "always" or a plain claim, a second claim after a semicolon among them."""
    from hguard.signals.grounding import reversed_claims

    assert reversed_claims(answer, passage) == [(answer, passage)]


_DOWNLOADS = "Refunds are not given for digital downloads; physical items can be returned within 30 days."
_OVERTIME = "Overtime is paid at 1.5 times the base rate, but it is not paid to managers."
_SUBLET = "The tenant must not sublet the unit without written consent."


@pytest.mark.parametrize(("answer", "passage", "reversed_"), [
    # a review's: faithful answers of several claims, cut to those the passage sentence restates, were counted against
    # its every negation where the whole counts agree (held)
    ("Digital downloads are not refundable; physical items can be returned within 30 days.", _DOWNLOADS, False),
    ("Managers do not receive overtime pay; others get 1.5 times the base rate.", _OVERTIME, False),
    ("The tenant can sublet the unit if the landlord gives written consent.", _SUBLET, False),
    # ... their reversals are still found: claim by claim, or by the whole counts
    ("Digital downloads are refundable; physical items can be returned within 30 days.", _DOWNLOADS, True),
    ("Managers receive overtime pay; others get 1.5 times the base rate.", _OVERTIME, True),
    ("The tenant can sublet the unit if the landlord does not give written consent.", _SUBLET, True),
    ("The tenant can sublet the unit without written consent.", _SUBLET, True),
    # ... and a claim of one is counted over the passage's claims it restates whatever the whole counts
    ("The vendor may use customer personal data to train machine-learning models.", _TWO_NOTS, True),
])
def test_an_answer_of_several_claims_is_counted_in_part_only_where_the_whole_counts_differ(answer, passage, reversed_):
    """"Managers do not receive overtime pay; others get 1.5 times the base rate." was cut to its rate claim, which
    shares most words with "Overtime is paid at 1.5 times the base rate, but it is not paid to managers.", and counted
    against that sentence's "not" (a review: three faithful answers held). Where the whole counts agree, an answer
    sentence of several claims is compared claim by claim only."""
    from hguard.signals.grounding import reversed_claims

    assert bool(reversed_claims(answer, passage)) is reversed_


@pytest.mark.parametrize(("answer", "passage", "reversed_"), [
    # the trial's right answer and the repro's: "without undue delay" read as a negation (held)
    ("Within 48 hours.", _BREACH, False),
    ("The vendor must notify the customer within 48 hours.", _BREACH, False),
    ("The vendor need not notify the customer of a breach.", _BREACH, True),  # passed: "without" evened it
    ("The vendor may delay notifying the customer of a breach.", _BREACH, True),  # a delay worded otherwise
    # "without consent", "without notice" state a condition: still negations
    ("The company may share your data with your consent.", "The company may share your data without your consent.",
     True),
    ("The landlord may terminate the lease with 30 days' notice.",
     "The landlord may terminate the lease without prior notice.", True),
])
def test_without_delay_is_no_negation_unless_the_other_sentence_words_a_delay(answer, passage, reversed_):
    """"without undue delay" says when ("promptly"), not whether: it counted as a negation, so "Within 48 hours." was
    held against "shall notify ... without undue delay and in any event within forty-eight (48) hours"."""
    from hguard.signals.grounding import reversed_claims

    assert bool(reversed_claims(answer, passage)) is reversed_


def test_a_claim_s_verb_and_object_are_read_after_its_auxiliary():
    from hguard.signals._grounding_lexical import _verb_and_object, _verb_object

    assert _verb_and_object("The company does not pay alcohol for employees.") == ({"pay"}, {"alcohol"})
    assert _verb_and_object("Smoking is allowed on the premises.") == ({"allow"}, {"premis"})
    assert _verb_and_object("Employees are not eligible.") == ({"eligible"}, set())
    assert _verb_and_object("The company never pays for alcohol.") == ({"pay"}, {"alcohol"})  # an adverb for one
    assert _verb_and_object("The company pays for alcohol.") == (set(), set())  # neither: not read
    assert _verb_object("The company pays 80 percent of the premium for employees.", {"pay"}) == {"80", "percent", "premium"}
    assert _verb_object("Employees with less than six months of service are not eligible.", {"eligible"}) == set()
    assert _verb_object("Alcohol is never reimbursed.", {"pay"}) == set()

# a review of the legal fix (751add0) on new cases: wrong answers held before it and passed after it (the qualifier
# read one-sided, a lone "without" dropped, a covenant's name read in "a non-disclosure agreement", "not limited to" as
# the predicate), and wrong answers the first try at mending it passed
_REVIEW_REVERSALS = [
    ("Tenants may sublet the unit freely without consent.",
     "Tenants may not sublet the unit without the landlord's written consent."),
    ("Patients may receive the travel vaccine without a prescription.",
     "Patients may not receive the travel vaccine without a prescription from their physician."),
    ("Expenses may be reimbursed without approval.", "Expenses may not be reimbursed without approval from the finance team."),
    ("Pharmacists may dispense antibiotics without a prescription.",
     "Pharmacists may not dispense antibiotics without a valid prescription."),
    ("Minors may consent to surgery without a parent.", "Minors may not consent to surgery without a parent or guardian."),
    ("Employees can carry over unused holiday without approval.",
     "Employees cannot carry over unused holiday except with the written approval of HR."),
    ("Disputes may be taken to court without mediation.", "Disputes may not be taken to court unless mediation has failed."),
    ("Members may resign at any time, but they must give notice.", "Members may resign at any time without giving notice."),
    ("Employees may take unpaid leave only if they state a reason.",
     "Employees may take unpaid leave without stating a reason."),
    ("Contractors do not need to sign an NDA before starting work.",
     "All contractors must sign a non-disclosure agreement before starting work."),
    ("Contractors are not required to sign a confidentiality agreement before starting work.",
     "All contractors must sign a non-disclosure agreement before starting work."),
    ("Coverage is limited to in-network providers.", "Coverage is not limited to in-network providers."),
    ("The warranty is limited to defects in materials.",
     "The warranty is not limited to defects in materials and also covers workmanship."),
    ("Subscribers may stream content on a limited number of devices.",
     "Subscribers may stream content without limitation on the number of devices."),
    ("Employees are allowed to accept gifts from vendors without restriction.",
     "Employees are prohibited from accepting gifts from vendors."),
    ("Each party shall be liable for indirect or consequential damages without exception.",
     "Except as provided herein, neither party shall be liable for indirect or consequential damages."),
]
# ... and faithful answers passed before it and held after it (a condition restated without a negation, a covenant or a
# prohibition named otherwise, "prohibitively", "and neither may")
_REVIEW_RESTATEMENTS = [
    ("Tenants need the landlord's permission to sublet the unit.",
     "Tenants may not sublet the unit without the landlord's written consent."),
    ("Tenants may sublet the unit only if the landlord agrees in writing.",
     "Tenants may not sublet the unit without the landlord's written consent."),
    ("You can close your savings account only once the balance has been paid off.",
     "You cannot close your savings account unless the balance is zero."),
    ("Visitors are allowed in the intensive care unit only at scheduled times.",
     "Visitors are not allowed in the intensive care unit except during visiting hours."),
    ("A party may assign this agreement only with the other party's approval.",
     "Neither party may assign this agreement without the prior written consent of the other party."),
    ("Visitors accompanied by staff may enter the laboratory.", "Visitors may not enter the laboratory unless accompanied."),
    ("Members can resign at any time and do not need to give notice.",
     "Members may resign at any time without giving notice."),
    ("All contractors must sign an NDA before starting work.",
     "All contractors must sign a non-disclosure agreement before starting work."),
    ("The restrictive covenant binds the employee for one year after termination.",
     "The non-compete clause binds the employee for one year after termination."),
    ("Drug X acts as an allosteric inhibitor of the enzyme.", "Drug X is a non-competitive inhibitor of the enzyme."),
    ("Smoking is banned on the hospital premises.", "Smoking is prohibited on the hospital premises."),
    ("Former employees dismissed for misconduct are banned from rehire for twelve months.",
     "Former employees are barred from rehire for twelve months after dismissal for misconduct."),
    ("Staff should avoid discussing patients in public areas.",
     "Staff must refrain from discussing patients in public areas."),
    ("Treatment abroad can be very expensive for uninsured patients.",
     "Treatment abroad can be prohibitively expensive for uninsured patients."),
    ("The tenant may not terminate the lease early, and neither may the landlord.",
     "Neither the tenant nor the landlord may terminate the lease early."),
]


@pytest.mark.parametrize(("answer", "passage", "reversed_"),
                         [(a, p, True) for a, p in _REVIEW_REVERSALS] + [(a, p, False) for a, p in _REVIEW_RESTATEMENTS])
def test_a_qualifier_a_covenant_or_a_prohibition_is_read_against_the_other_sentence(answer, passage, reversed_):
    """A qualifier ("without the landlord's written consent") is left out only where it carves an exception out of a
    claim its sentence negates besides and the other sentence neither restates it nor states a qualifier or a
    condition of its own ("only if", "needs"); a covenant's name is an obligation not to only where the other sentence
    has its verb ("shall not compete"); a prohibition is one negation where the other sentence words none ("banned",
    "avoid"). Read one-sided, "may sublet freely without consent" restated "may not sublet without the landlord's
    written consent" (a review: 14 wrong answers held before the legal fix passed after it)."""
    from hguard.signals.grounding import reversed_claims

    found = reversed_claims(answer, passage)
    assert bool(found) is reversed_, found


def test_a_day_written_as_an_ordinal_before_its_month_ends_no_sentence():
    from hguard.signals.grounding import split_sentences

    assert split_sentences("Der Vertrag endet am 31. Mai nicht automatisch. Er gilt ab 1. Januar 2025.") == [
        "Der Vertrag endet am 31. Mai nicht automatisch.", "Er gilt ab 1. Januar 2025."]
    assert split_sentences("It was founded in 2019. The company grew. See section 3. May applies.") == [
        "It was founded in 2019.", "The company grew.", "See section 3.", "May applies."]
