"""Bad input on the command line: one line naming the value and the fix, a non-zero exit code, no
traceback unless --debug; a request that fails after the guard is up is audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "hguard", *args], capture_output=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "HGUARD_THREADS": "1", **(env or {})},
    )


def _one_clear_line(r, *needles):
    out = r.stderr.decode("utf-8", "replace").strip()
    assert r.returncode == 2, (r.returncode, out)
    # the model loader's progress bar may precede it; the error itself is one line of its own
    lines = [x for x in out.splitlines() if x.startswith("hguard ")]
    assert "Traceback" not in out and len(lines) == 1, out
    err = lines[0]
    for n in needles:
        assert n in err, (n, err)
    return err


def test_missing_context_file(tmp_path):
    _one_clear_line(run("ask", "q?", "--context", str(tmp_path / "nope.txt")), "nope.txt", "does not exist")


def test_context_file_is_a_folder(tmp_path):
    _one_clear_line(run("ask", "q?", "--context", str(tmp_path)), str(tmp_path), "is a folder")


def test_context_file_not_utf8(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("caf\xe9 au lait".encode("latin-1"))
    _one_clear_line(run("ask", "q?", "--context", str(f)), "latin1.txt", "not UTF-8", "iconv")


def test_threads_not_a_number():
    _one_clear_line(run("ask", "q?", env={"HGUARD_THREADS": "abc"}), "HGUARD_THREADS", "'abc'", "HGUARD_THREADS=1")


def test_missing_policy_file(tmp_path):
    _one_clear_line(run("ask", "q?", "--policy", str(tmp_path / "p.toml")), "p.toml")


def test_debug_shows_the_traceback(tmp_path):
    r = run("ask", "q?", "--context", str(tmp_path / "nope.txt"), "--debug")
    assert r.returncode != 0 and b"Traceback" in r.stderr


def test_lone_surrogate_is_an_input_error_not_a_type_error(tiny_calibrated, tmp_path):
    from hguard.errors import InputError
    from hguard.guard import Guard
    from hguard.policy import Policy

    lm, root = tiny_calibrated
    pol = Policy.model_validate({"version": 1, "probes": str(root / "probes"), "audit": {"path": str(tmp_path / "a.jsonl")},
                                 "review": {"queue": str(tmp_path / "q.sqlite3")},
                                 "generation": {"max_new_tokens": 4, "system_prompt": "answer"}, "domains": {"alpha": {}}})
    g = Guard.from_policy(pol, lm=lm)
    with pytest.raises(InputError, match="not valid text: character 4"):
        g.invoke("who \udcff ?", domain="alpha")
    with pytest.raises(InputError, match="context is not valid text"):
        g.invoke("who ?", context="ab\ud800", domain="alpha")
    rid = g.record_failure("who \udcff ?", InputError("bad"), source="test")
    rec = g.audit.find(rid)
    assert rec["kind"] == "error" and "\\udcff" in rec["question"]


@pytest.mark.default_model
def test_invalid_utf8_question_is_one_line_and_audited(tmp_path):
    from hguard import policy_copy

    pol = policy_copy(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "hguard", "ask", b"What is the capital of \xff?", "--policy", str(pol)],
        capture_output=True, timeout=600, cwd=ROOT, env={**os.environ, "HGUARD_THREADS": "1"},
    )
    _one_clear_line(r, "question is not valid text", "UTF-8")
    from hguard.audit import AuditLog, verify

    recs = list(AuditLog(tmp_path / "audit.jsonl"))
    assert [x["kind"] for x in recs] == ["error"] and "InputError" in recs[0]["error"]
    assert verify(tmp_path / "audit.jsonl").ok


def test_rag_commands_reach_their_own_checks():
    # the RAG commands load their module before checking their options: a wrong import path reads as a missing package
    _one_clear_line(run("calibrate-rag"), "--out DIR")
    _one_clear_line(run("evaluate", "--rag", "--probes", str(ROOT / "hguard")), "--work")
