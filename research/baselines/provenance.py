"""Embedding-similarity provenance check in the style of Guardrails AI's ``ProvenanceEmbeddings``.

Published method (Guardrails hub validator ``guardrails/provenance_embeddings``, "provenance v0"):
the sources are cut into chunks of ``chunk_size`` sentences overlapping by ``chunk_overlap``
(defaults 5 and 2); every sentence of the LLM output is embedded and its cosine *distance*
(``1 - cosine``) to the nearest chunk is taken; with ``validation_method="sentence"`` the output
fails when any sentence's distance is at least ``threshold`` (default 0.8), with ``"full"`` the
whole output is compared at once.

What differs: the embedder is hguard's bundled all-MiniLM-L6-v2 (the validator's default is
paraphrase-MiniLM-L6-v2, fetched from a hub), and sentences are split with
:func:`hguard.signals.grounding.split_sentences` instead of NLTK's punkt (which needs a separate
data download). For ranking answers (AUROC) :meth:`ProvenanceEmbeddings.distance` gives the
continuous score the validator thresholds: the largest per-sentence distance (``"sentence"``) or
the full-text distance (``"full"``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hguard.errors import InputError

__all__ = ["chunk_sentences", "ProvenanceEmbeddings"]


def _split(text: str) -> list[str]:
    from hguard.signals.grounding import split_sentences

    return split_sentences(text) or ([text.strip()] if text.strip() else [])


def chunk_sentences(text: str | Sequence[str], size: int = 5, overlap: int = 2) -> list[str]:
    """Chunks of ``size`` consecutive sentences, consecutive chunks sharing ``overlap`` sentences.

    A list of sources is chunked source by source. The last chunk may be shorter; no chunk is empty.
    """
    if not isinstance(size, int) or size < 1 or not isinstance(overlap, int) or not 0 <= overlap < size:
        raise InputError(f"need size >= 1 and 0 <= overlap < size, got size={size!r}, overlap={overlap!r}")
    sources = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for src in sources:
        if not isinstance(src, str):
            raise InputError(f"sources must be strings, got {type(src).__name__}")
        sents = _split(src)
        step = size - overlap
        for start in range(0, len(sents), step):
            out.append(" ".join(sents[start : start + size]))
            if start + size >= len(sents):
                break
    return out


class ProvenanceEmbeddings:
    """Is an answer close, in embedding space, to some chunk of the sources? (see the module doc)"""

    def __init__(
        self,
        embedder=None,
        *,
        threshold: float = 0.8,
        validation_method: str = "sentence",
        chunk_size: int = 5,
        chunk_overlap: int = 2,
    ):
        if validation_method not in ("sentence", "full"):
            raise InputError(f"validation_method must be 'sentence' or 'full', got {validation_method!r}")
        if not 0.0 <= float(threshold) <= 2.0:
            raise InputError(f"threshold is a cosine distance in [0, 2], got {threshold!r}")
        self._embedder = embedder
        self.threshold = float(threshold)
        self.validation_method = validation_method
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}

    @property
    def embedder(self):
        if self._embedder is None:
            from hguard.signals.embedding import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def _chunks(self, sources: str | Sequence[str]) -> tuple[list[str], np.ndarray]:
        key = sources if isinstance(sources, str) else "\x00".join(sources)
        if key not in self._cache:
            chunks = chunk_sentences(sources, self.chunk_size, self.chunk_overlap)
            vecs = self.embedder.encode(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (chunks, vecs)
        return self._cache[key]

    def sentence_distances(self, answer: str, sources: str | Sequence[str]) -> list[tuple[str, float]]:
        """(sentence, cosine distance to the nearest chunk) for each unit the validator checks."""
        if not isinstance(answer, str):
            raise InputError(f"answer must be a str, got {type(answer).__name__}")
        chunks, vecs = self._chunks(sources)
        units = _split(answer) if self.validation_method == "sentence" else ([answer.strip()] if answer.strip() else [])
        if not units:
            return []
        if not chunks:
            return [(u, 1.0) for u in units]
        q = self.embedder.encode(units)
        dist = 1.0 - (q @ vecs.T).max(axis=1)
        return [(u, float(d)) for u, d in zip(units, dist)]

    def distance(self, answer: str, sources: str | Sequence[str]) -> float:
        """The risk score: largest distance of an answer sentence to its nearest chunk (1 if empty)."""
        d = self.sentence_distances(answer, sources)
        return max(x for _, x in d) if d else 1.0

    def validate(self, answer: str, sources: str | Sequence[str]) -> bool:
        """The validator's verdict: True (pass) when every checked unit is nearer than ``threshold``."""
        d = self.sentence_distances(answer, sources)
        return bool(d) and all(x < self.threshold for _, x in d)
