"""Sampling-based detectors: SelfCheckGPT-style consistency and discrete semantic entropy.

All of them score one *main* answer (the greedy one the user would see) against ``N`` extra answers
sampled from the same model at temperature 1, and all of them are oriented as a **risk**: higher
means more likely hallucinated. They cost ``N`` extra generations per answer, which is what hguard's
single-pass signals are compared against (``benchmarks/detectors.py``).

Answer matching (shared by :func:`sample_disagreement` and :func:`semantic_entropy`): two answers
are the same when their :func:`hguard.calibrate.judge.normalize`\\d forms are equal, or when the key
content words of one (normalised words that are not stop words and, when the question is given, not
words of the question) are all among the other's. "Paris." and "The capital of France is Paris."
match for "What is the capital of France?"; "Paris" and "Lyon" do not. Containment is not
transitive, so clustering compares each answer with the *first* member of every cluster, as the
semantic-entropy paper does with its entailment test.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

from hguard.calibrate.judge import normalize
from hguard.errors import InputError

__all__ = [
    "STOP_WORDS",
    "key_words",
    "same_answer",
    "cluster_answers",
    "semantic_entropy",
    "sample_disagreement",
    "selfcheck_ngram",
    "ngram_tokens",
]

#: words that carry no answer content (normalize() already drops a/an/the)
STOP_WORDS = frozenset(
    """
    about above after again against all also am and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not
    now of off on once only or other our out over own same she should so some such than that their
    theirs them then there these they this those through to too under until up very was we were what
    when where which while who whom whose why will with would you your yes known called named located
    answer answers s t
    """.split()
)


def _check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a str, got {type(value).__name__}: {value!r:.80}; pass the answer text")
    return value


def key_words(answer: str, question: str | None = None) -> frozenset[str]:
    """The answer's key content words: normalised words minus stop words and the question's words."""
    _check_str(answer, "answer")
    q = set(normalize(question).split()) if question else set()
    return frozenset(w for w in normalize(answer).split() if w not in STOP_WORDS and w not in q)


def same_answer(a: str, b: str, question: str | None = None) -> bool:
    """True when ``a`` and ``b`` give the same answer (see the module docstring)."""
    na, nb = normalize(_check_str(a, "a")), normalize(_check_str(b, "b"))
    if na == nb:
        return True
    ka, kb = key_words(a, question), key_words(b, question)
    if not ka or not kb:  # an answer with no content of its own matches only an identical one
        return False
    return ka <= kb or kb <= ka


def cluster_answers(answers: Sequence[str], question: str | None = None) -> list[int]:
    """Cluster id (0, 1, ...) for every answer: each joins the first cluster whose first member it matches."""
    if isinstance(answers, str):
        raise InputError("answers must be a list of strings, not one string; wrap it in a list")
    reps: list[str] = []
    ids: list[int] = []
    for a in answers:
        for k, r in enumerate(reps):
            if same_answer(a, r, question):
                ids.append(k)
                break
        else:
            reps.append(a)
            ids.append(len(reps) - 1)
    return ids


def semantic_entropy(answers: Sequence[str], question: str | None = None) -> float:
    """Discrete semantic entropy (nats) of the answers' clusters: ``-sum p_c log p_c``, p_c = share in c.

    Published method: Kuhn et al. (ICLR 2023) and Farquhar et al. (Nature 2024) cluster sampled
    answers by *bidirectional entailment* under an NLI model (DeBERTa-large-MNLI) or an LLM, then take
    the entropy over clusters, weighting by sequence likelihood or (the "discrete" variant, used here)
    by counts. What differs: answers are clustered by normalised string match and key-word
    containment (:func:`same_answer`) instead of entailment, so paraphrases without shared key words
    ("the Big Apple" / "New York") fall in different clusters. Pass the greedy answer together with
    the samples. 0 when all answers agree; ``log(len(answers))`` when all differ.
    """
    ids = cluster_answers(answers, question)
    if not ids:
        raise InputError("semantic_entropy needs at least one answer")
    n = len(ids)
    return float(-sum((c / n) * math.log(c / n) for c in Counter(ids).values())) + 0.0


def sample_disagreement(main: str, samples: Sequence[str], question: str | None = None) -> float:
    """Share of the samples that do *not* give the main answer's answer (risk in [0, 1]).

    The sampling-consistency idea of SelfCheckGPT (Manakul et al., EMNLP 2023): a fact the model
    knows comes back when it is sampled again, a hallucination does not. SelfCheckGPT measures
    agreement per sentence with BERTScore, question answering, n-grams, NLI or an LLM prompt; for
    short factual answers this uses answer matching (:func:`same_answer`), i.e. exact-match
    consistency as in the "five-sample consistency" baseline of docs/method.md.
    """
    _check_str(main, "main")
    if isinstance(samples, str) or len(samples) == 0:
        raise InputError("samples must be a non-empty list of sampled answers")
    agree = sum(same_answer(main, s, question) for s in samples)
    return 1.0 - agree / len(samples)


# ------------------------------------------------------------------------------------- n-gram

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_SENT_RE = re.compile(r"(?<=[.!?])\s+")


def ngram_tokens(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens (stand-in for spaCy's English tokenizer)."""
    return _TOKEN_RE.findall(text.lower())


def _sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENT_RE.split(text.strip())) if s and ngram_tokens(s)]


def selfcheck_ngram(main: str, samples: Sequence[str], n: int = 1) -> dict[str, float]:
    """SelfCheckGPT's n-gram score of ``main`` against ``samples``: ``{"avg", "max"}`` (risk, nats).

    Published method (SelfCheckGPT, Manakul et al. 2023, ``SelfCheckNgram`` in the ``selfcheckgpt``
    package): fit an n-gram model with maximum likelihood (no smoothing) on the main passage plus
    the samples, then score the main passage's tokens: ``avg`` is the mean negative log-probability
    over all tokens, ``max`` the mean over sentences of the largest negative log-probability in the
    sentence (the paper's best n-gram variant is Unigram-max). A token the samples repeat is
    probable; a token only the main answer says is improbable.

    What differs: the package tokenises and splits sentences with spaCy's ``en_core_web_sm``, a
    model downloaded separately (not from PyPI), and imports ``bert_score`` and ``openai`` at module
    level; this re-implementation uses a regex tokeniser (words and punctuation, lower-cased) and a
    regex sentence splitter, with the same counting and scoring. An empty main answer scores 0.
    """
    _check_str(main, "main")
    if isinstance(samples, str):
        raise InputError("samples must be a list of sampled answers, not one string")
    if not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive int (1 = unigram), got {n!r}")

    def grams(sentence: str) -> list[tuple[str, ...]]:
        toks = ngram_tokens(sentence)
        padded = ["<s>"] * (n - 1) + toks
        return [tuple(padded[i : i + n]) for i in range(len(toks))]

    counts: Counter = Counter()
    for passage in [main, *samples]:
        for s in _sentences(_check_str(passage, "sample")):
            counts.update(grams(s))
    total = sum(counts.values())
    sents = _sentences(main)
    if not sents or total == 0:
        return {"avg": 0.0, "max": 0.0}
    all_nlp: list[float] = []
    max_nlp: list[float] = []
    for s in sents:
        # every n-gram of the main answer was counted, so no probability is 0
        nlp = [-math.log(counts[g] / total) for g in grams(s)]
        all_nlp.extend(nlp)
        max_nlp.append(max(nlp))
    return {"avg": float(sum(all_nlp) / len(all_nlp)), "max": float(sum(max_nlp) / len(max_nlp))}
