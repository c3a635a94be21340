"""Signals that hguard combines into a hallucination risk.

Submodules are imported on demand (they pull in torch or sentence-transformers):

- :mod:`hguard.signals.embedding` -- the bundled all-MiniLM-L6-v2 sentence embedder.
- :mod:`hguard.signals.grounding` -- does an answer follow from the retrieved context?
"""

from __future__ import annotations

from typing import Any

#: the attributes :func:`component_name` reads, first found first: what a scorer or embedder offers to say its version
VERSION_ATTRIBUTES = ("fingerprint", "version", "__version__")


def component_name(obj: Any) -> str:
    """Which object computes a signal, as a decision record names it (its ``fingerprints``: ``embedder``,
    ``grounding_scorer``): its class, module and name (``acme.nli.AcmeGrounding``), and the first of a
    ``fingerprint``, ``version`` or ``__version__`` attribute it offers that is a string or a number, as
    ``acme.nli.AcmeGrounding (version 2.1)``. hguard's own say theirs (the bundled embedder its model package and
    version, a ``GroundingScorer`` a hash of what its values depend on)."""
    from .embedding import UnitEmbedder  # here: that module imports this package

    while isinstance(obj, UnitEmbedder):  # the guard's wrapper that scales an embedder's rows: name the embedder
        obj = obj.embedder
    cls = type(obj)
    name = f"{cls.__module__}.{cls.__qualname__}"
    for attr in VERSION_ATTRIBUTES:
        try:
            value = getattr(obj, attr, None)
        except Exception:  # a property of the user's own that raises: not offered
            continue
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return f"{name} ({attr} {str(value).strip()[:200]})"
    return name
