"""The embedding grounding signal: what the answer adds to the question's similarity to the best context
sentence. See :mod:`hguard.signals.grounding`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from hguard.errors import InputError
from hguard.signals._grounding_lexical import _check_text, _context_text, split_sentences

def _statement(question: str | None, answer: str) -> str:
    return f"{question.strip()} {answer.strip()}" if question else answer.strip()


class _ContextCache:
    """A small LRU of (embedder, context) -> embeddings of the context's sentences and sentence pairs."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        # the entry keeps its embedder, so an id() reused by a later embedder never hits a stale entry, and the
        # units it embedded, for a context that shares them (:meth:`get`'s ``reuse``)
        self._d: OrderedDict[tuple[int, str], tuple[Any, list[str], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def _hit(self, ctx: str, embedder) -> tuple[list[str], np.ndarray] | None:
        key = (id(embedder), ctx)
        with self._lock:
            hit = self._d.get(key)
            if hit is not None and hit[0] is embedder:
                self._d.move_to_end(key)
                return hit[1], hit[2]
        return None

    def get(self, ctx: str, embedder, reuse: str | None = None) -> np.ndarray:
        """The embeddings of ``ctx``'s units (its sentences, then each two neighbouring ones), embedded on a miss;
        ``reuse``: a context whose units are cached (some of the passages ``ctx`` joins), whose embeddings of the
        units the two share are taken, not embedded again (the language hold scores an answer against a list's
        passages in the question's language, then against them all)."""
        hit = self._hit(ctx, embedder)
        if hit is not None:
            return hit[1]
        sents = split_sentences(ctx) or [ctx]
        # windows of two neighbouring sentences catch answers that combine them
        units = sents + [f"{a} {b}" for a, b in zip(sents, sents[1:])]
        known = self._hit(reuse, embedder) if reuse is not None else None
        if known is None:
            vecs = embedder.encode(units)
        else:
            rows = dict(zip(*known))
            new = list(dict.fromkeys(u for u in units if u not in rows))
            if new:
                rows.update(zip(new, embedder.encode(new)))
            vecs = np.stack([np.asarray(rows[u]) for u in units])
        with self._lock:
            self._d[(id(embedder), ctx)] = (embedder, units, vecs)
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return vecs


_default_ctx_cache = _ContextCache()


def sentence_vectors(ctx: str, embedder, cache: _ContextCache | None = None) -> np.ndarray:
    """Embeddings of the context's sentences (the first rows of the cached context units, so a context
    the grounding signal has embedded is not embedded again)."""
    n = len(split_sentences(ctx) or [ctx])
    return (cache or _default_ctx_cache).get(ctx, embedder)[:n]


def _embedding_parts(answer, context, question, embedder, cache=None) -> tuple[float, float]:
    """(best cosine of statement, best cosine of the question alone) against the context units."""
    from hguard.signals.embedding import get_embedder

    answer = _check_text(answer, "answer")
    ctx = _context_text(context)
    if question is not None:
        _check_text(question, "question")
    embedder = embedder or get_embedder()
    if not ctx.strip() or not answer.strip():
        return 0.0, 0.0
    ctx_vecs = (cache or _default_ctx_cache).get(ctx, embedder)
    queries = [_statement(question, answer)] + ([question] if question else [])
    q_vecs = embedder.encode(queries)
    sims = q_vecs @ ctx_vecs.T
    stmt = float(sims[0].max())
    base = float(sims[1].max()) if question else 0.0
    return stmt, base


# Statement-vs-question lift -> [0, 1]: 0.5 + EMB_LIFT_SCALE * lift, clipped.
# A lift of +-0.25 (much larger than typical) saturates; see benchmarks/grounding.py.
EMB_LIFT_SCALE = 2.0


def embedding_support(
    answer: str,
    context: str | Sequence[str],
    question: str | None = None,
    embedder=None,
    *,
    mode: str = "lift",
) -> float:
    """Embedding support in [0, 1] from all-MiniLM-L6-v2 cosines against context sentences.

    ``mode="lift"`` (default): ``0.5 + 2 * (max_cos(question + answer) - max_cos(question))``,
    clipped -- how much appending the answer moves the question *towards* the context (an answer
    the context states moves it closer; an unrelated one pulls it away). ``mode="cosine"``: the
    plain best cosine of the statement, clipped to [0, 1]. Without a question both are the plain
    cosine. ``embedder`` defaults to :func:`hguard.signals.embedding.get_embedder`.
    """
    if mode not in ("lift", "cosine"):
        raise InputError(f"embedding_support mode must be 'lift' or 'cosine', got {mode!r}")
    stmt, base = _embedding_parts(answer, context, question, embedder)
    if mode == "cosine" or not question:
        return float(min(1.0, max(0.0, stmt)))
    return float(min(1.0, max(0.0, 0.5 + EMB_LIFT_SCALE * (stmt - base))))
