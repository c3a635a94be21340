"""Fixtures of the LlamaIndex adapter's tests (the tiny model, probes and guards are in integrations/conftest.py)."""

from __future__ import annotations

import pytest
from llama_index.core.instrumentation import get_dispatcher


@pytest.fixture
def root_handler():
    """Register handlers on the root dispatcher for one test only."""
    root = get_dispatcher()
    added = []

    def add(handler):
        root.add_event_handler(handler)
        added.append(handler)
        return handler

    yield add
    for h in added:
        root.event_handlers.remove(h)
