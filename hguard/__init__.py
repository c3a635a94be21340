"""hguard: a hallucination guardrail for local Hugging Face chat models.

The public API is re-exported here lazily, so that ``import hguard`` stays cheap (no torch) for the
parts that do not need a model: the policy, the audit log, the review queue.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._resources import DEFAULT_POLICY, REFERENCE_PROBES, policy_copy
from .errors import (
    AbstainedError,
    AuditError,
    AuditIntegrityError,
    CacheError,
    DataError,
    HGuardError,
    InputError,
    ModelNotFoundError,
    NeedsReviewError,
    NothingToArchive,
    PolicyError,
    ProbeError,
    ProbeMismatchError,
    ReviewQueueError,
    RouteError,
    UnsupportedModelError,
    UsageError,
)

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors (imported on first use at run time)
    from .audit import AuditLog
    from .domain import CalibratedDomain
    from .generation import Generator
    from .guard import Guard, GuardResult
    from .models import LoadedModel, load_model
    from .neurons import NeuronRecorder
    from .policy import Policy, load_policy
    from .probe import HNeuronProbe
    from .review.queue import ReviewQueue
    from .settings import GenerationSettings

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
    if name.isidentifier() and not name.startswith("_"):  # a public submodule, as after `import hguard.models`: the
        # README's `hguard.models.load_model(...)` after a plain `import hguard` raised AttributeError
        from importlib.util import find_spec

        if find_spec(f"hguard.{name}") is not None:
            return import_module(f"hguard.{name}")
    raise AttributeError(f"module 'hguard' has no attribute {name!r}")


def __dir__() -> list[str]:  # the lazy names too (help(), completion)
    return sorted(set(globals()) | set(__all__))


__all__ = [  # the lazy names written out (a type checker and a linter read a literal list)
    "Guard",
    "GuardResult",
    "load_model",
    "LoadedModel",
    "NeuronRecorder",
    "Generator",
    "HNeuronProbe",
    "CalibratedDomain",
    "GenerationSettings",
    "load_policy",
    "Policy",
    "AuditLog",
    "ReviewQueue",
    "DEFAULT_POLICY",
    "REFERENCE_PROBES",
    "policy_copy",
    "AbstainedError",
    "AuditError",
    "AuditIntegrityError",
    "CacheError",
    "DataError",
    "HGuardError",
    "InputError",
    "ModelNotFoundError",
    "NeedsReviewError",
    "NothingToArchive",
    "PolicyError",
    "ProbeError",
    "ProbeMismatchError",
    "ReviewQueueError",
    "RouteError",
    "UnsupportedModelError",
    "UsageError",
    "__version__",
]
