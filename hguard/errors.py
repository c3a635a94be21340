"""The one exception tree of hguard.

    HGuardError
    ├── ModelNotFoundError      a model (the default one included) cannot be found or loaded
    ├── CacheError              a cached model is corrupt (raised only where it cannot be rebuilt)
    ├── UnsupportedModelError   no FFN down-projection known for this architecture
    ├── InputError              bad input from the caller: empty prompt, too long, wrong type
    ├── DataError               a calibration file with a bad row (names line and field)
    ├── ProbeError              a probe file that cannot be read
    │   └── ProbeMismatchError  a probe calibrated for another model, template or prompt
    ├── PolicyError             a malformed policy file (names the key and the file)
    ├── AuditError              the audit log cannot be written
    │   └── AuditIntegrityError a chain that fails verification (names the line)
    ├── ReviewQueueError        a review item could not be stored
    └── UsageError              an object used out of order (a recorder nested or read before it ran)

Every message says what was wrong, echoes the value, and says what to do.
"""

from __future__ import annotations


class HGuardError(Exception):
    """Base class of every error hguard raises on purpose."""


class ModelNotFoundError(HGuardError):
    pass


class CacheError(HGuardError):
    pass


class UnsupportedModelError(HGuardError):
    pass


class InputError(HGuardError, ValueError):
    pass


class DataError(HGuardError, ValueError):
    pass


class ProbeError(HGuardError):
    pass


class ProbeMismatchError(ProbeError):
    pass


class PolicyError(HGuardError, ValueError):
    pass


class AuditError(HGuardError):
    pass


class AuditIntegrityError(AuditError):
    pass


class ReviewQueueError(HGuardError):
    pass


class UsageError(HGuardError, RuntimeError):
    pass
