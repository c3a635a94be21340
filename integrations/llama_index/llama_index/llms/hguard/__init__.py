"""LlamaIndex integration for hguard, the hallucination guardrail for local Hugging Face chat models.

- :class:`HGuardLLM` -- a ``CustomLLM`` whose answers are routed (accept / abstain / review) by a Guard.
- :class:`HGuardQueryEngine` -- retrieve with any retriever, answer through the guard grounded in the nodes.
- :class:`HGuardEvaluator` -- a ``BaseEvaluator``: the guard's decision on a response it did not generate (``Guard.check``).
- :class:`HGuardAuditEventHandler` -- hguard audit records from LlamaIndex instrumentation events.
- :class:`HGuardEmbedding` -- the bundled all-MiniLM-L6-v2 sentence embeddings, offline.
- :func:`guard_stream` -- hold / passthrough streaming of one guarded answer.
"""

from llama_index.llms.hguard.base import HGuardLLM, split_chat
from llama_index.llms.hguard.embeddings import HGuardEmbedding
from llama_index.llms.hguard.evaluation import HGuardEvaluator
from llama_index.llms.hguard.events import HGuardAuditEventHandler
from llama_index.llms.hguard.query_engine import HGuardQueryEngine
from hguard.streaming import GuardStreamChunk, aguard_stream, guard_stream

__all__ = [
    "GuardStreamChunk",
    "HGuardAuditEventHandler",
    "HGuardEmbedding",
    "HGuardEvaluator",
    "HGuardLLM",
    "HGuardQueryEngine",
    "aguard_stream",
    "guard_stream",
    "split_chat",
]
