"""The detectors hguard is benchmarked against (research.baselines) on crafted inputs, and a smoke run of
benchmarks/detectors.py on the tiny calibrated model (a few questions, real code paths)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from research.baselines.consistency import (
    cluster_answers,
    key_words,
    same_answer,
    sample_disagreement,
    selfcheck_ngram,
    semantic_entropy,
)
from research.baselines.metrics import auroc, best_accuracy, bootstrap_aurocs, detector_summary, risk_at_coverage
from research.baselines.provenance import ProvenanceEmbeddings, chunk_sentences
from hguard.errors import InputError

REPO = Path(__file__).resolve().parent.parent
Q = "What is the capital of France?"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def detectors():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import detectors as mod
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return mod


# ------------------------------------------------------------------------------ answer matching


def test_same_answer_matches_paraphrases_by_key_words():
    assert same_answer("Paris.", "The capital of France is Paris.", Q)
    assert same_answer("Paris is the capital and largest city of France.", "paris", Q)
    assert same_answer("São Paulo", "Sao Paulo", None)  # normalised: accents, case
    assert not same_answer("Paris", "Lyon", Q)
    assert not same_answer("The capital of France is Paris.", "The capital of France is Lyon.", Q)


def test_answer_without_key_words_matches_only_an_identical_one():
    # Only words of the question (and stop words): no content of its own.
    assert key_words("The capital of France.", Q) == frozenset()
    assert not same_answer("The capital of France.", "Paris", Q)
    assert same_answer("The capital of France.", "the capital of France", Q)
    # Without the question, "capital" and "france" are key words again.
    assert same_answer("capital France", "The capital of France is Paris", None)


def test_cluster_answers_compares_with_first_member_of_each_cluster():
    answers = ["Paris.", "Lyon", "The capital of France is Paris.", "Lyon, France", "Marseille"]
    assert cluster_answers(answers, Q) == [0, 1, 0, 1, 2]
    # Containment is not transitive: "paris" ~ "paris lyon" ~ "lyon", but "lyon" is compared with the
    # first member "paris" only, so it opens a cluster of its own.
    assert cluster_answers(["paris", "paris lyon", "lyon"]) == [0, 0, 1]
    with pytest.raises(InputError):
        cluster_answers("Paris")


def test_semantic_entropy_counts_clusters():
    assert semantic_entropy(["Paris"] * 6, Q) == 0.0
    assert semantic_entropy(["Paris", "Lyon", "Nice", "Metz"], Q) == pytest.approx(math.log(4))
    assert semantic_entropy(["Paris", "It is Paris.", "Lyon", "Lyon!"], Q) == pytest.approx(math.log(2))
    # 3 of 4 agree: -(3/4 log 3/4 + 1/4 log 1/4)
    assert semantic_entropy(["Paris", "Paris", "paris", "Lyon"], Q) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )
    with pytest.raises(InputError):
        semantic_entropy([])


def test_sample_disagreement_is_the_share_of_samples_that_disagree():
    assert sample_disagreement("Paris", ["It is Paris.", "Paris", "paris"], Q) == 0.0
    assert sample_disagreement("Paris", ["Lyon", "Paris", "Nice", "Paris is it"], Q) == 0.5
    assert sample_disagreement("Paris", ["Lyon"], Q) == 1.0
    with pytest.raises(InputError):
        sample_disagreement("Paris", [], Q)
    with pytest.raises(InputError):
        sample_disagreement("Paris", "Paris", Q)


# ----------------------------------------------------------------------------------- n-gram


def test_selfcheck_unigram_matches_a_hand_computation():
    # Tokens: main "paris ." ; samples "paris ." and "lyon ." -> counts paris 2, "." 3, lyon 1 (6 in all).
    s = selfcheck_ngram("Paris.", ["Paris.", "Lyon."], n=1)
    assert s["avg"] == pytest.approx((math.log(3) + math.log(2)) / 2)
    assert s["max"] == pytest.approx(math.log(3))  # -log(2/6), the rarest token of the one sentence


def test_selfcheck_unigram_max_averages_over_sentences():
    # main: two sentences "a b." and "c."; samples add nothing.
    s = selfcheck_ngram("a b. c.", [], n=1)
    # counts a 1, b 1, . 2, c 1 -> total 5; sentence maxima: -log(1/5) and -log(1/5)
    assert s["max"] == pytest.approx(math.log(5))
    assert s["avg"] == pytest.approx((3 * math.log(5) + 2 * math.log(5 / 2)) / 5)


def test_selfcheck_ngram_ranks_a_contradicted_answer_riskier():
    samples = ["Paris is the capital.", "The capital is Paris.", "Paris."]
    right = selfcheck_ngram("Paris is the capital.", samples)
    wrong = selfcheck_ngram("Lyon is the capital.", samples)
    assert wrong["max"] > right["max"] and wrong["avg"] > right["avg"]
    bi_right = selfcheck_ngram("Paris is the capital.", samples, n=2)
    bi_wrong = selfcheck_ngram("Lyon is the capital.", samples, n=2)
    assert bi_wrong["max"] > bi_right["max"]
    assert selfcheck_ngram("", samples) == {"avg": 0.0, "max": 0.0}
    with pytest.raises(InputError):
        selfcheck_ngram("Paris", samples, n=0)


# ---------------------------------------------------------------------------------- metrics


def test_auroc_and_bootstrap():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert auroc(y, [0, 1, 2, 3, 4, 5]) == 1.0
    assert auroc(y, [5, 4, 3, 2, 1, 0]) == 0.0
    assert auroc(y, [1] * 6) == 0.5
    assert auroc([1, 1], [0.2, 0.3]) is None
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    good = y + rng.normal(0, 0.7, 80)
    noise = rng.normal(0, 1, 80)
    boot = bootstrap_aurocs(y, {"good": good, "noise": noise}, n_boot=300, seed=0)
    assert boot["good"].shape == boot["noise"].shape and 250 <= len(boot["good"]) <= 300
    lo, hi = np.percentile(boot["good"], [2.5, 97.5])
    assert lo < auroc(y, good) < hi and lo > 0.6
    assert (boot["good"] - boot["noise"]).mean() > 0.2  # paired: the same resamples for both


def test_best_accuracy_and_risk_at_coverage():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    r = np.arange(8.0)
    acc, thr = best_accuracy(y, r)
    assert acc == 1.0 and thr == 4.0
    # A constant risk cannot beat "flag nothing" (the share of right answers).
    assert best_accuracy([0, 0, 0, 1], [0.5] * 4) == (0.75, float("inf"))
    assert risk_at_coverage(y, r, 0.5) == 0.0
    assert risk_at_coverage(y, r, 0.75) == pytest.approx(2 / 6)
    assert risk_at_coverage(y, r, 1.0) == 0.5
    # Ties at the cut are split in proportion: a constant risk gives the base rate at any coverage.
    assert risk_at_coverage(y, np.ones(8), 0.5) == pytest.approx(0.5)
    assert risk_at_coverage([0, 1, 1, 1], [0, 1, 1, 1], 0.5) == pytest.approx(0.5)
    with pytest.raises(InputError):
        risk_at_coverage(y, r, 0.0)
    with pytest.raises(InputError):
        auroc([0, 1], [0.1, float("nan")])
    s = detector_summary(y, r, boot=np.array([0.9, 1.0, 1.0]))
    assert s["auroc"] == 1.0 and s["hallucination_rate_at_coverage"] == {"0.5": 0.0, "0.8": pytest.approx(2.4 / 6.4)}
    assert s["auroc_ci95"][1] == 1.0
    # a small class widens the interval as the calibration report's does (a benchmark trial: 2 right and 2 wrong
    # ranked perfectly printed 1.000 [1.00, 1.00] where hguard's auroc_ci gives [0.16, 1.00])
    from hguard._stats import auroc_ci

    y4, r4 = [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]
    small = detector_summary(y4, r4, boot=np.ones(100))["auroc_ci95"]
    assert small == pytest.approx(auroc_ci(y4, {"r": r4})["r"]) and small[0] < 0.2


# ------------------------------------------------------------------------------- provenance


def test_chunk_sentences_windows_with_overlap():
    text = " ".join(f"Sentence number {i} is here." for i in range(7))
    chunks = chunk_sentences(text, size=5, overlap=2)
    assert len(chunks) == 2
    assert chunks[0].startswith("Sentence number 0") and chunks[0].endswith("number 4 is here.")
    assert chunks[1].startswith("Sentence number 3") and chunks[1].endswith("number 6 is here.")
    assert chunk_sentences("One sentence.", 5, 2) == ["One sentence."]
    assert chunk_sentences(["A first source.", "A second source."], 5, 2) == ["A first source.", "A second source."]
    with pytest.raises(InputError):
        chunk_sentences(text, size=2, overlap=2)


@pytest.fixture(scope="module")
def embedder():
    from hguard.signals.embedding import get_embedder

    return get_embedder()


def test_provenance_prefers_the_supported_answer(embedder):
    ctx = (
        "Beowulf is a 2007 British-American motion capture fantasy film. It was directed by Robert Zemeckis. "
        "The screenplay was written by Neil Gaiman and Roger Avary."
    )
    prov = ProvenanceEmbeddings(embedder)
    near = prov.distance("The film was directed by Robert Zemeckis.", ctx)
    far = prov.distance("Photosynthesis turns sunlight into chemical energy in plants.", ctx)
    assert 0.0 <= near < far <= 2.0
    assert near < 0.8 and prov.validate("The film was directed by Robert Zemeckis.", ctx)
    # sentence mode takes the worst sentence: an unsupported second sentence fails the answer
    mixed = "The film was directed by Robert Zemeckis. Photosynthesis turns sunlight into chemical energy."
    assert prov.distance(mixed, ctx) == pytest.approx(far, abs=0.05)
    strict = ProvenanceEmbeddings(embedder, threshold=near / 2)
    assert not strict.validate("The film was directed by Robert Zemeckis.", ctx)
    full = ProvenanceEmbeddings(embedder, validation_method="full")
    assert len(full.sentence_distances(mixed, ctx)) == 1
    assert prov.distance("", ctx) == 1.0 and not prov.validate("", ctx)
    with pytest.raises(InputError):
        ProvenanceEmbeddings(embedder, validation_method="paragraph")


# ----------------------------------------------------------------------- model-based scorers


@pytest.fixture(scope="module")
def tiny_gen():
    from hguard.generation import Generator
    from hguard.testing import tiny_model

    lm = tiny_model("llama", seed=3)
    return Generator(lm, system_prompt="answer", max_new_tokens=4)


def test_p_true_is_the_renormalised_next_token_probability(tiny_gen):
    import torch

    from research.baselines.p_true import answer_token_ids, p_true, p_true_prompt_ids

    qs = ["capital of france ?", "what is gold ?", "who wrote the book ?"]
    ans = ["paris", "gold is silver and iron", "no"]
    batched = p_true(tiny_gen, qs, ans, words=("yes", "no"))
    single = p_true(tiny_gen, qs, ans, words=("yes", "no"), batch_size=1)
    assert np.allclose(batched, single, atol=1e-5)  # left padding does not change the result
    assert ((batched > 0) & (batched < 1)).all()
    tok = tiny_gen.lm.tokenizer
    t_ids, f_ids = answer_token_ids(tok, "yes"), answer_token_ids(tok, "no")
    with torch.no_grad():
        logits = tiny_gen.lm.model(input_ids=torch.tensor([p_true_prompt_ids(tiny_gen, qs[1], ans[1])])).logits[0, -1]
    p = torch.softmax(logits.float(), -1)
    want = float(p[t_ids].sum() / (p[t_ids].sum() + p[f_ids].sum()))
    assert batched[1] == pytest.approx(want, abs=1e-5)
    with pytest.raises(InputError, match="cannot spell"):
        p_true(tiny_gen, qs, ans)  # the tiny vocabulary has no "True"
    with pytest.raises(InputError):
        p_true(tiny_gen, qs, ans[:2], words=("yes", "no"))


def test_sample_answers_are_seeded_and_counted(tiny_gen):
    from research.baselines.sampling import forward_passes, sample_answers

    qs = ["capital of france ?", "what is gold ?", "who wrote the book ?"]
    a = sample_answers(tiny_gen, qs, n=4, seed=5, batch_size=5)
    b = sample_answers(tiny_gen, qs, n=4, seed=5, batch_size=5)
    c = sample_answers(tiny_gen, qs, n=4, seed=900, batch_size=5)
    assert [len(t) for t in a.texts] == [4, 4, 4]
    assert a.texts == b.texts and a.texts != c.texts
    assert all(4 <= p <= 4 * 5 for p in a.passes)  # 1..max_new_tokens(+EOS) passes per sample
    assert a.seconds > 0 and a.seeds == [5, 6, 7]
    g = tiny_gen.generate(qs[:1], neurons=None)[0]
    assert forward_passes(g) == len(g.token_ids) + (1 if g.finished else 0)


# ---------------------------------------------------------------------------- smoke benchmark


@pytest.mark.slow
def test_benchmark_smoke_on_tiny_model(tiny_calibrated, detectors):
    from hguard.calibrate.pipeline import load_probe_dir

    lm, root = tiny_calibrated
    cd = load_probe_dir(root / "probes")["alpha"]
    exs, note = detectors.held_out_examples("alpha", cd, [root / "data.jsonl"], None)
    # exactly the domain's test split of calibration: as many rows as its held-out report counted
    assert note["data_matches_probe"] and note["n_test_split"] == cd.extra["metrics"]["n"] == len(exs)
    exs10, _ = detectors.held_out_examples("alpha", cd, [root / "data.jsonl"], 10)
    assert len(exs10) == 10 and {e.id for e in exs10} <= {e.id for e in exs}
    res, recs = detectors.run_qa_dataset(
        "alpha", lm, exs10, cd, probe_domain="alpha", sample_counts=(2, 3), batch_size=4,
        n_boot=200, ptrue_words=("yes", "no"),
    )
    m = res["methods"]
    expected = {"hguard_merged", "hguard_probe", "random_neurons", "mean_logprob", "min_logprob", "entropy",
                "length", "p_true"} | {f"{k}_{n}" for k in ("disagreement", "unigram_max", "semantic_entropy") for n in (2, 3)}
    assert set(m) == expected
    assert res["n_scored"] + res["n_refusals"] + res["n_unscored_nan"] == 10
    assert res["plain_vs_recorded_answer_mismatches"] == 0  # recording neurons leaves greedy answers alone
    for v in m.values():
        assert v["auroc"] is None or 0.0 <= v["auroc"] <= 1.0
        assert 0.0 <= v["accuracy_best_threshold"] <= 1.0
        assert v["cost_wall_ratio"] > 0
    # forward passes: hguard adds none, P(True) one, N samples about N generations
    assert m["hguard_merged"]["forward_pass_ratio"] == 1.0 and m["mean_logprob"]["cost_wall_ratio"] == 1.0
    assert m["p_true"]["forward_passes_per_answer"] == pytest.approx(res["mean_forward_passes_plain"] + 1)
    assert m["disagreement_3"]["forward_pass_ratio"] > m["disagreement_2"]["forward_pass_ratio"] > 1.5
    assert m["disagreement_3"]["cost_wall_ratio"] > m["disagreement_2"]["cost_wall_ratio"] > 1.0
    assert res["target"]["evaluable"] in (True, False)
    assert len(recs) == 10 and len(recs[0]["samples"]) == 3 and set(recs[0]["risks"]) == expected
    table = detectors.markdown_table("alpha", res)
    assert "hguard merged risk" in table and "semantic entropy (discrete), N=3" in table


@pytest.mark.slow
def test_grounding_smoke_on_tiny_model(embedder, detectors):
    from hguard.testing import tiny_model

    lm = tiny_model("llama", seed=3)
    rows = [
        {"question": "what is the capital of france ?", "context": "paris is the capital city of france . it is in europe .",
         "right_answer": "paris", "hallucinated_answer": "rome"},
        {"question": "what is gold ?", "context": "gold is an element . its symbol is au .",
         "right_answer": "an element", "hallucinated_answer": "a river"},
        {"question": "who wrote the book ?", "context": "the book was written by an author in england .",
         "right_answer": "an author in england", "hallucinated_answer": "a city in spain"},
    ]
    res, recs = detectors.run_grounding_dataset("crafted", lm, rows, batch_size=4, n_boot=100, embedder=embedder)
    m = res["methods"]
    assert {"grounding_merged_lm", "grounding_merged", "provenance_distance", "provenance_verdict"} <= set(m)
    assert res["n_scored"] == 6 and res["n_hallucinated"] == 3
    assert m["grounding_merged"]["auroc"] >= 0.8  # lexical support alone separates these rows
    assert m["grounding_merged_lm"]["forward_pass_ratio"] > m["provenance_distance"]["forward_pass_ratio"] == 1.0
    assert [r["label"] for r in recs] == ["correct", "hallucinated"] * 3
    assert "Guardrails-style provenance" in detectors.markdown_table("crafted", res)
