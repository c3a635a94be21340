"""Fixtures shared by the langchain-hguard and llama-index-llms-hguard tests: a tiny calibrated model
for the adapter tests and the real default model (SmolLM2-135M-Instruct) for the end-to-end RAG tests.
No model, store or retriever is mocked. The tiny probes are built once per pytest session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "examples" / "docs"
from hguard import DEFAULT_POLICY as EXAMPLE_POLICY  # noqa: E402

# alpha's manual thresholds that force each route for any risk below 1.0
from hguard.testing import ROUTES  # noqa: E402


def pytest_configure(config):
    import torch

    # one thread: on a shared 2-core machine oversubscribed OpenMP threads are many times slower
    torch.set_num_threads(int(os.environ.get("HGUARD_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_probes(tmp_path_factory):
    """(tiny LoadedModel, probes folder) for domains "alpha"/"beta" (system prompt "answer", 4 tokens), calibrated
    once by hguard.testing.tiny_probes (under its lock: one calibration for workers that share the folder)."""
    from hguard.testing import tiny_model, tiny_probes

    probes = tiny_probes(tmp_path_factory.getbasetemp() / "hguard-integrations-tiny", "llama", seed=3)
    return tiny_model("llama", seed=3), probes


@pytest.fixture(scope="session")
def embedder():
    from hguard.signals.embedding import get_embedder

    return get_embedder()


def tiny_policy(probes: Path, runs: Path, route: str = "accept", max_new_tokens: int = 4):
    from hguard.policy import Policy

    # answers longer than the 4-token calibration are asked for on purpose: warned about, not reviewed
    longer = {} if max_new_tokens == 4 else {"generation_mismatch": "warn"}
    return Policy.model_validate(
        {
            "version": 1,
            "probes": str(probes),
            "audit": {"path": str(runs / "audit.jsonl")},
            "review": {"queue": str(runs / "queue.sqlite3")},
            "generation": {"max_new_tokens": max_new_tokens, "system_prompt": "answer"},
            # the tiny probes are closed-book; the adapters' RAG shapes are scored with them on purpose.
            # No spot-checks: they select about 2% of accepted answers at random (by record id), and these
            # tests count the exact audit records a call writes (spot-checks are tested in tests/test_monitor*).
            "domains": {
                "alpha": {**ROUTES[route], "context_with_closed_book_probe": "allow", "out_of_distribution": "warn",
                          "spot_check_rate": 0.0, **longer},
                "beta": {"abstain_message": "beta cannot say", "context_with_closed_book_probe": "allow",
                         "out_of_distribution": "warn", "spot_check_rate": 0.0, **longer},
            },
        }
    )


@pytest.fixture(scope="session")
def policy_for():
    """policy_for(probes, runs, route="accept", max_new_tokens=4) -> the tiny Policy."""
    return tiny_policy


@pytest.fixture
def models_from_policy(monkeypatch):
    """models_from_policy(adapter) -> the ``model`` that ``adapter.from_policy`` hands to ``Guard.from_policy``,
    without and with ``model=`` (the guard is not built: its from_policy is replaced by a recorder)."""
    from hguard.guard import Guard

    def asked(adapter) -> list:
        seen = []

        def from_policy(cls, policy=None, *, model=None, lm=None, **kw):
            seen.append(model)
            raise RuntimeError("stop here")

        monkeypatch.setattr(Guard, "from_policy", classmethod(from_policy))
        for kw in ({}, {"model": "other.gguf"}):
            with pytest.raises(RuntimeError, match="stop here"):
                adapter.from_policy("policy.toml", **kw)
        return seen

    return asked


@pytest.fixture
def make_guard(tiny_probes, embedder, tmp_path):
    """make_guard(route) -> a Guard on the tiny model whose domain "alpha" routes every answer to ``route``."""
    from hguard.guard import Guard

    lm, probes = tiny_probes

    def make(route: str = "accept", max_new_tokens: int = 4, runs: Path | None = None):
        return Guard.from_policy(tiny_policy(probes, runs or tmp_path / route, route, max_new_tokens), lm=lm, embedder=embedder)

    return make


@pytest.fixture(scope="session")
def default_lm():
    from hguard.models import load_model

    return load_model("default")


@pytest.fixture
def real_guard(default_lm, embedder, tmp_path):
    """The default model under the default policy (its 32 new tokens, what the reference probes were
    calibrated with, so answers are routed as scored), audit and review queue in tmp_path."""
    from hguard.guard import Guard
    from hguard.policy import load_policy

    pol = load_policy(EXAMPLE_POLICY)
    pol = pol.model_copy(
        update={
            "audit": pol.audit.model_copy(update={"path": tmp_path / "audit.jsonl"}),
            "review": pol.review.model_copy(update={"queue": tmp_path / "queue.sqlite3"}),
        }
    )
    return Guard.from_policy(pol, lm=default_lm, embedder=embedder)
