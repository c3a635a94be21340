"""Grounding signals: does an answer follow from the retrieved context?

Every signal is a *support* score in [0, 1]; higher means the answer is better supported by the
context (the hallucination risk a caller wants is ``1 - support``).

- :func:`lexical_support` -- share of the answer's evidence tokens (content words that are not
  already in the question) found in the context; a token of digits matches only the same digits
  (never fuzzily), words may match fuzzily (light stemming, a shared long prefix, or a close
  spelling). A number's unit, scale, currency and sign are not compared here: the guard holds an
  answer whose numbers its context does not state (``calibrate.judge.unstated_numbers``).
- :func:`phrase_support` -- share of the answer's word bigrams found verbatim in the context (the
  answer as a phrase: "Lord Black of London" is not "Lord Black of Crossharbour" plus "London").
- :func:`proximity_support` -- share of the question's content words that stand within a few tokens
  of where the context mentions the answer (a distractor named elsewhere in the context scores low).
- :func:`embedding_support` -- cosine similarity between the statement "question + answer" and the
  best-matching context sentence, minus the same similarity for the question alone, so the score
  measures what the *answer* adds, not how on-topic the question is.
- :func:`model_support` -- how much the context raises the answer's mean token log-likelihood under
  the guarded causal LM itself (teacher-forced, chat template, one pass with and one without the
  context), mapped to [0, 1] with a logistic.
- :class:`GroundingScorer` -- all of the above plus ``grounding``, their logistic combination.

``research.grounding_eval`` (``python -m research.grounding_eval --data FILE.jsonl --json`` in a checkout) evaluates
the signals on labelled rows (HaluEval QA style: ``question``, ``context``, ``right_answer``,
``hallucinated_answer``).

This module holds the merge and :class:`GroundingScorer` and re-exports the signals, which live in
``hguard.signals._grounding_lexical`` (tokens, sentences, lexical, phrase and proximity support),
``hguard.signals._grounding_embedding`` and ``hguard.signals._grounding_model``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from hguard._numerics import finite_number, sigmoid
from hguard.errors import InputError
from hguard.signals._grounding_embedding import (
    EMB_LIFT_SCALE,
    _ContextCache,
    _embedding_parts,
    embedding_support,
    sentence_vectors,
)
from hguard.signals._grounding_lexical import (
    PROXIMITY_WINDOW,
    QUESTION_WORDS,
    STOP_WORDS,
    _check_text,
    _context_text,
    content_tokens,
    lexical_support,
    phrase_support,
    proximity_support,
    reversed_claims,
    split_sentences,
    tokens,
)
from hguard.signals._grounding_lexical import _evidence_tokens as _evidence_tokens
from hguard.signals._grounding_model import _prompt_ids as _prompt_ids
from hguard.signals._grounding_model import (
    MAX_CONTEXT_TOKENS,
    MODEL_LIFT_OFFSET,
    MODEL_LIFT_SCALE,
    answer_loglik,
    answer_logliks,
    model_lift,
    model_lifts,
    model_support,
)

__all__ = [
    "lexical_support",
    "embedding_support",
    "model_support",
    "answer_loglik",
    "GroundingScorer",
    "phrase_support",
    "proximity_support",
    "model_lift",
    "model_lifts",
    "answer_logliks",
    "reversed_claims",
    "split_sentences",
    "tokens",
    "content_tokens",
    "STOP_WORDS",
    "QUESTION_WORDS",
    "PROXIMITY_WINDOW",
    "MAX_CONTEXT_TOKENS",
    "SIGNALS",
]

#: every signal key GroundingScorer.score can return besides the merged "grounding"
SIGNALS = (
    "grounding_lexical",
    "grounding_phrase",
    "grounding_proximity",
    "grounding_embedding",
    "grounding_model",
)


# ------------------------------------------------------------------------------------------ merge

# Merged support = sigmoid(bias + sum_k w_k * support_k); a signal without a weight is ignored.
# Fitted by `python benchmarks/grounding.py --fit` (logistic regression of "right answer" on the
# signals, C=1) on the fit split: the 440 HaluEval QA rows (of the first 500) whose two answers differ
# by more than one word + the 225 ConflictNQ val rows, 1330 answers. log(1 + answer words) was a
# covariate during the fit only (its mean effect folded into the bias), so the weights do not learn
# "short answers are right" from the length-biased HaluEval rows. Never fitted on the held-out rows
# that benchmarks/results/grounding.json reports: the 60 length-matched HaluEval rows and ConflictNQ
# test. Model signal: SmolLM2-135M-Instruct (the default model).
MERGE_WEIGHTS: dict[str, float] = {
    "bias": -4.126,
    "grounding_lexical": 3.216,
    "grounding_phrase": 2.399,
    "grounding_proximity": 2.428,
    "grounding_embedding": 0.965,
}
MERGE_WEIGHTS_MODEL: dict[str, float] = {
    "bias": -4.631,
    "grounding_lexical": 2.565,
    "grounding_phrase": 2.178,
    "grounding_proximity": 2.768,
    "grounding_embedding": 0.283,
    "grounding_model": 2.712,
}

_SIGNAL_KEYS = SIGNALS


def _check_weights(weights: Any) -> dict[str, float]:
    if not isinstance(weights, dict):
        raise InputError(
            f"weights must be a dict of signal name -> float, got {type(weights).__name__}: {weights!r:.80}; "
            f"use keys from {list(_SIGNAL_KEYS) + ['bias']}"
        )
    out = {}
    for k, v in weights.items():
        if k not in _SIGNAL_KEYS and k != "bias":
            raise InputError(
                f"unknown weight {k!r} in weights; use keys from {list(_SIGNAL_KEYS) + ['bias']}"
            )
        x = finite_number(v)
        if x is None:
            raise InputError(f"weight {k!r} must be a finite number, got {v!r}; fix the value")
        out[k] = x
    return out


class GroundingScorer:
    """Scores how well answers are supported by a context; see the module docstring for the signals.

    ``embedder`` defaults to the bundled all-MiniLM-L6-v2 (loaded on first use); one of your own (``encode(list of
    str)`` returning one vector per text) has its rows scaled to unit length (:func:`~hguard.signals.embedding.unit_rows`:
    a zero or non-finite vector fails the scoring, naming it). With ``model`` and
    ``tokenizer`` (a transformers causal LM and its tokenizer) the model-based signal is added and the
    merge uses :data:`MERGE_WEIGHTS_MODEL`, else :data:`MERGE_WEIGHTS`. ``weights`` overrides the
    merge: ``{"bias": b, "grounding_lexical": w, ...}``; a signal without a weight is ignored.
    """

    def __init__(self, embedder=None, model=None, tokenizer=None, weights: dict[str, float] | None = None):
        if (model is None) != (tokenizer is None):
            raise InputError(
                "GroundingScorer needs both model and tokenizer for the model-based signal, got "
                f"model={type(model).__name__}, tokenizer={type(tokenizer).__name__}; pass both or neither"
            )
        from hguard.signals.embedding import unit_embedder

        self._embedder = unit_embedder(embedder)  # its rows scaled to unit length: the signal reads cosines
        self.model = model
        self.tokenizer = tokenizer
        default = MERGE_WEIGHTS_MODEL if model is not None else MERGE_WEIGHTS
        self.weights = _check_weights(dict(default) if weights is None else weights)
        self._ctx_cache = _ContextCache()

    @property
    def fingerprint(self) -> str:
        """What its values depend on, hashed (sha256, 16 hex): its merge weights, the model of the model-based signal
        (its name or path) and its sentence embedder (:func:`hguard.signals.component_name`; the bundled one when none
        was given). A RAG calibration fits its merger on ``GroundingScorer()``'s (:func:`bundled_grounding_name`)."""
        import hashlib
        import json

        from hguard.signals import component_name
        from hguard.signals.embedding import bundled_embedder_name

        embedder = bundled_embedder_name() if self._embedder is None else component_name(self._embedder)
        model = None if self.model is None else str(
            getattr(getattr(self.model, "config", None), "_name_or_path", None) or type(self.model).__name__)
        blob = json.dumps({"weights": self.weights, "model": model, "embedder": embedder}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def embedder(self):
        if self._embedder is None:
            from hguard.signals.embedding import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def sentence_vectors(self, context: str | Sequence[str]) -> np.ndarray:
        """Embeddings of the context's sentences, from the scorer's cache of embedded contexts."""
        return sentence_vectors(_context_text(context), self.embedder, self._ctx_cache)

    def embed_from(self, context: str | Sequence[str], cached: str | Sequence[str]) -> None:
        """Embed ``context``'s sentences for :meth:`score`, taking those it shares with ``cached`` (a context this
        scorer embedded: some of the passages ``context`` joins) from their cached embeddings: the language hold
        scores an answer against a list's passages in the question's language, then against them all, and embedded
        each sentence twice (two thirds more time an answer)."""
        self._ctx_cache.get(_context_text(context), self.embedder, _context_text(cached))

    @property
    def signals(self) -> tuple[str, ...]:
        """The signal keys :meth:`score` returns (besides ``grounding``)."""
        keys = [k for k in _SIGNAL_KEYS if k != "grounding_model"]
        return tuple(keys + (["grounding_model"] if self.model is not None else []))

    def merge(self, signals: dict[str, float]) -> float:
        """The merged support: ``sigmoid(bias + sum of weight * signal)`` over the weighted signals."""
        z = self.weights.get("bias", 0.0)
        for k, w in self.weights.items():
            if k != "bias" and k in signals:
                z += w * signals[k]
        return sigmoid(z)

    def score(self, question: str, answer: str, context: str | Sequence[str]) -> dict[str, float]:
        """Support of ``answer`` to ``question`` by ``context``: every signal and the merged ``grounding``."""
        return self.score_answers(question, [answer], context)[0]

    def score_answers(
        self, question: str, answers: Sequence[str], context: str | Sequence[str]
    ) -> list[dict[str, float]]:
        """:meth:`score` for several answers to one question and context (shares the model's prompt pass)."""
        _check_text(question, "question")
        if isinstance(answers, str) or not isinstance(answers, Sequence):
            raise InputError(
                f"answers must be a list of str, got {type(answers).__name__}: {answers!r:.80}; "
                "use score() for a single answer"
            )
        for a in answers:
            _check_text(a, "answer")
        ctx = _context_text(context)
        out = []
        for a in answers:
            stmt, base = _embedding_parts(a, ctx, question, self.embedder, self._ctx_cache)
            emb = min(1.0, max(0.0, 0.5 + EMB_LIFT_SCALE * (stmt - base)))
            out.append(
                {
                    "grounding_lexical": lexical_support(a, ctx, question),
                    "grounding_phrase": phrase_support(a, ctx, question),
                    "grounding_proximity": proximity_support(a, ctx, question),
                    "grounding_embedding": float(emb),
                }
            )
        if self.model is not None:
            scorable = [i for i, a in enumerate(answers) if a.strip()]
            lifts = (
                model_lifts(self.model, self.tokenizer, question, [answers[i] for i in scorable], ctx)
                if scorable
                else []
            )
            for d in out:
                d["grounding_model"] = 0.5  # an empty answer: the model has nothing to score
            for i, lift in zip(scorable, lifts):
                out[i]["grounding_model"] = sigmoid(MODEL_LIFT_SCALE * (lift - MODEL_LIFT_OFFSET))
        for d in out:
            d["grounding"] = self.merge(d)
        return out


@functools.lru_cache(maxsize=1)
def bundled_grounding_name() -> str:
    """The grounding scorer every RAG merger was fitted on (``hguard calibrate-rag`` scores with hguard's
    ``GroundingScorer`` on the bundled embedder, default weights, no model), as
    :func:`hguard.signals.component_name` names it; probe files do not name it, since no other is fitted on."""
    from hguard.signals import component_name

    return component_name(GroundingScorer())
