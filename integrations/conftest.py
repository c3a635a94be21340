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


@pytest.fixture
def interrupted_while_encoding():
    """interrupted_while_encoding(call) -> whether a Jupyter kernel's interrupt reached an async caller while the
    worker thread it awaits was still busy in a sentence embedder's ``encode`` (as in its first load, seconds).
    ``call(embedder)`` is the awaitable, given an embedder (384-dimensional unit vectors) whose ``encode`` calls
    ``busy()`` before it answers. ipykernel turns "Interrupt kernel" (SIGINT) into a cancel of the cell's task from a
    Python signal handler, which runs only when the loop's (main) thread runs Python code: a loop awaiting a worker
    with nothing to wake it saw the interrupt only when the work ended. Here ``busy()`` sends the signal to its own thread once the loop has gone to sleep in its
    selector (so it breaks no wait), then waits up to 5 s for the caller to be cancelled (as tests/test_guard.py's
    test of ``Guard.ainvoke``)."""
    import asyncio
    import selectors
    import signal
    import threading

    import numpy as np

    class Busy:
        def __init__(self, busy):
            self.busy = busy

        def encode(self, texts):
            self.busy()
            return np.ones((len(texts), 384)) / np.sqrt(384)

    def run(call) -> bool:
        asleep, cancelled, seen = threading.Event(), threading.Event(), []

        class Watched(selectors.DefaultSelector):
            """The loop's selector, saying when the loop is about to sleep in it."""

            def select(self, timeout=None):
                if timeout is None or timeout > 0:
                    asleep.set()
                return super().select(timeout)

        def busy() -> None:
            asleep.clear()
            if asleep.wait(10):  # the loop's next sleep: its wait time is chosen
                signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
                seen.append(cancelled.wait(5))  # set once the handler has cancelled the caller
            else:  # the loop sleeps on until the work ends (as asyncio.to_thread's await): nothing wakes it
                seen.append(False)

        async def caller():
            try:
                return await call(Busy(busy))
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def interrupt():
            task = asyncio.ensure_future(caller())
            old = signal.signal(signal.SIGUSR1, lambda *_: task.cancel())  # what ipykernel's SIGINT handler does
            try:
                return await task
            finally:
                signal.signal(signal.SIGUSR1, old)

        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(Watched())) as runner:
            try:
                runner.run(interrupt())
            except asyncio.CancelledError:
                pass
        return seen == [True]

    return run


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
