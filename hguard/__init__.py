"""hguard: a hallucination guardrail for local Hugging Face chat models.

The public API is re-exported here lazily, so that ``import hguard`` stays cheap (no torch) for the
parts that do not need a model: the policy, the audit log, the review queue.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._resources import DEFAULT_POLICY, REFERENCE_PROBES, policy_copy
from .errors import (
    AuditError,
    AuditIntegrityError,
    CacheError,
    DataError,
    HGuardError,
    InputError,
    ModelNotFoundError,
    PolicyError,
    ProbeError,
    ProbeMismatchError,
    ReviewQueueError,
    UnsupportedModelError,
    UsageError,
)

__version__ = "0.3.0"

_LAZY = {
    "Guard": "hguard.guard",
    "GuardResult": "hguard.guard",
    "load_model": "hguard.models",
    "LoadedModel": "hguard.models",
    "NeuronRecorder": "hguard.neurons",
    "Generator": "hguard.generation",
    "HNeuronProbe": "hguard.probe",
    "CalibratedDomain": "hguard.domain",
    "GenerationSettings": "hguard.settings",
    "load_policy": "hguard.policy",
    "Policy": "hguard.policy",
    "AuditLog": "hguard.audit",
    "ReviewQueue": "hguard.review.queue",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hguard' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "DEFAULT_POLICY",
    "REFERENCE_PROBES",
    "policy_copy",
    "AuditError",
    "AuditIntegrityError",
    "CacheError",
    "DataError",
    "HGuardError",
    "InputError",
    "ModelNotFoundError",
    "PolicyError",
    "ProbeError",
    "ProbeMismatchError",
    "ReviewQueueError",
    "UnsupportedModelError",
    "UsageError",
    "__version__",
]
