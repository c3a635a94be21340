"""Detectors people use instead of hguard's single-pass signals, for benchmarking against them.

Each scorer returns a *risk* (higher = more likely hallucinated) for an answer the guarded model
already gave, and each module's docstring names the published method and what differs here:

- :mod:`research.baselines.consistency` -- SelfCheckGPT-style sampling consistency (answer agreement
  and the n-gram score) and discrete semantic entropy; they need N extra sampled answers, drawn
  with :func:`research.baselines.sampling.sample_answers`.
- :mod:`research.baselines.p_true` -- P(True): the model asked whether its own answer is true.
- :mod:`research.baselines.provenance` -- Guardrails-AI-style embedding provenance for RAG answers.
- :mod:`research.baselines.metrics` -- AUROC with paired bootstrap, best-threshold accuracy,
  hallucination rate at a coverage.

``benchmarks/detectors.py`` runs them all against hguard on the same greedy answers.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "same_answer": "consistency",
    "cluster_answers": "consistency",
    "semantic_entropy": "consistency",
    "sample_disagreement": "consistency",
    "selfcheck_ngram": "consistency",
    "sample_answers": "sampling",
    "Samples": "sampling",
    "p_true": "p_true",
    "ProvenanceEmbeddings": "provenance",
    "chunk_sentences": "provenance",
    "auroc": "metrics",
    "bootstrap_aurocs": "metrics",
    "best_accuracy": "metrics",
    "risk_at_coverage": "metrics",
    "detector_summary": "metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
