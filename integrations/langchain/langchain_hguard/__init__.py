"""LangChain integration for hguard, the hallucination guardrail for local Hugging Face chat models.

- :class:`ChatHGuard` -- a chat model whose answers are routed (accept / abstain / review) by a Guard.
- :class:`HGuardCheck` -- a runnable: question + an answer produced elsewhere (+ context) in, the routed message out.
- :class:`GuardedRAG` -- a runnable: question + retrieved documents in, :class:`GuardedAnswer` out.
- :class:`GuardedOutputParser` -- ``StrOutputParser`` that keeps the route: a ``str`` with ``.route``, ``.risk``.
- :class:`HGuardAuditCallbackHandler` -- one hguard audit record per LLM call of a chain.
- :class:`HGuardEmbeddings` -- the bundled all-MiniLM-L6-v2 sentence embeddings, offline.
- :func:`guard_stream` -- hold / passthrough streaming of one guarded answer.
"""

from importlib import metadata

from langchain_hguard.callbacks import HGuardAuditCallbackHandler
from langchain_hguard.chat_models import ChatHGuard
from langchain_hguard.check import HGuardCheck
from langchain_hguard.embeddings import HGuardEmbeddings
from langchain_hguard.runnables import GuardedAnswer, GuardedOutputParser, GuardedRAG, create_guarded_rag_chain
from hguard.errors import AbstainedError, NeedsReviewError, RouteError
from hguard.streaming import GuardedText, GuardStreamChunk, aguard_stream, guard_stream

try:
    __version__ = metadata.version(__package__)
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = ""
del metadata

__all__ = [
    "AbstainedError",
    "ChatHGuard",
    "GuardedOutputParser",
    "GuardedText",
    "NeedsReviewError",
    "RouteError",
    "GuardStreamChunk",
    "GuardedAnswer",
    "GuardedRAG",
    "HGuardAuditCallbackHandler",
    "HGuardCheck",
    "HGuardEmbeddings",
    "__version__",
    "aguard_stream",
    "create_guarded_rag_chain",
    "guard_stream",
]
