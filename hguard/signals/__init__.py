"""Signals that hguard combines into a hallucination risk.

Submodules are imported on demand (they pull in torch or sentence-transformers):

- :mod:`hguard.signals.embedding` -- the bundled all-MiniLM-L6-v2 sentence embedder.
- :mod:`hguard.signals.grounding` -- does an answer follow from the retrieved context?
"""
