"""The RAG examples' own logic, without their model: where ``--runs`` puts the files, and what they say of probes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from hguard import policy_copy
from hguard.policy import load_policy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["langchain_rag", "llamaindex_rag"])
def test_both_examples_build_their_guard_with_the_shared_set_up(name):
    import sys

    example = _example(name)
    shared = sys.modules["_guard_setup"]  # what the example imported, from examples/_guard_setup.py
    assert Path(shared.__file__) == EXAMPLES / "_guard_setup.py"
    assert example.load_guard is shared.load_guard and example.probes_note is shared.probes_note


def _shared():
    _example("langchain_rag")  # puts examples/ on the path and imports the shared set-up
    import _guard_setup

    return _guard_setup


def test_runs_moves_the_log_with_its_anchor_and_the_queue(tmp_path):
    """A trial: with a policy that keeps an anchor, --runs moved the log but not the anchor, whose heads are the
    policy's own log's, so the guard would refuse to write to the new log."""
    example = _shared()
    path = Path(policy_copy(tmp_path / "pol"))
    path.write_text(path.read_text().replace("[audit]\n", "[audit]\nanchor = \"audit.anchor\"\n", 1))
    policy = load_policy(path)
    assert policy.audit.anchor is not None
    moved = example.runs_policy(policy, tmp_path / "runs", 16)
    assert moved.audit.path == tmp_path / "runs" / "hguard-audit.jsonl"
    assert moved.audit.anchor == tmp_path / "runs" / "hguard-audit.anchor"
    assert moved.review.queue == tmp_path / "runs" / "hguard-review.sqlite3"
    assert moved.generation.max_new_tokens == 16 and moved.audit.redact == policy.audit.redact
    assert example.runs_policy(policy, None, None) is policy
    unanchored = policy.model_copy(update={"audit": policy.audit.model_copy(update={"anchor": None})})
    assert example.runs_policy(unanchored, tmp_path / "runs", None).audit.anchor is None


def test_probes_note_names_the_refused_domains_only():
    """A trial: one bad probe file beside the reference probes printed "no calibrated probes found (run `make
    calibrate`); every answer goes to review", though every other domain was scored."""
    example = _shared()
    assert example.probes_note(SimpleNamespace(probes={"geography": 1}, probe_errors={})) is None
    assert "no calibrated probes found" in example.probes_note(SimpleNamespace(probes={}, probe_errors={}))
    note = example.probes_note(SimpleNamespace(probes={"geography": 1}, probe_errors={"hr": "bad json"}))
    assert "no calibrated probes" not in note and note.endswith("hr")
