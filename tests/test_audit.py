"""Tests of the tamper-evident audit log (hguard.audit): chain, tamper detection, concurrency, crashes, CLI."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import multiprocessing
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import hguard
from hguard.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditReceipt,
    canonical_json,
    export_csv,
    record_hash,
    repair,
    show,
    verify,
)
from hguard.cli.audit import main as cli_main
from hguard.errors import AuditError, AuditIntegrityError, InputError

REPO_ROOT = Path(hguard.__file__).resolve().parent.parent


def _decision(i: int, **extra) -> dict:
    rec = {
        "domain": "medical" if i % 2 else "legal",
        "model_fingerprint": "sha256:abc",
        "probe_id": "probe-1",
        "thresholds": {"h_neuron": 0.7, "entropy": 2.5},
        "signals": {"h_neuron": 0.1 * i, "entropy": 1.0 + i},
        "route": "allow" if i % 3 else "review",
        "reasons": [f"reason {i}"],
        "question": f"question {i}?",
        "answer": f"answer {i}.",
    }
    rec.update(extra)
    return rec


def _make_log(path: Path, n: int) -> list[AuditReceipt]:
    log = AuditLog(path)
    return [log.append(_decision(i)) for i in range(n)]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _line_of(rec: dict) -> bytes:
    return (canonical_json(rec) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------------ chain


def test_chain_links_every_record_and_verifies(tmp_path):
    path = tmp_path / "logs" / "audit.jsonl"  # parent dir does not exist yet
    receipts = _make_log(path, 5)
    records = list(AuditLog(path))

    assert [r.seq for r in receipts] == [0, 1, 2, 3, 4]
    assert [rec["seq"] for rec in records] == [0, 1, 2, 3, 4]
    assert records[0]["prev_hash"] == GENESIS_HASH
    for i, rec in enumerate(records):
        assert rec["hash"] == receipts[i].hash == record_hash(rec)
        assert rec["id"] == receipts[i].id and len(rec["id"]) == 32
        assert rec["kind"] == "decision"
        assert rec["time"].endswith("+00:00")
        if i:
            assert rec["prev_hash"] == records[i - 1]["hash"]
    assert receipts[0].path == str(path)
    # Lines are exactly the canonical form hashes are computed over.
    assert _lines(path)[2] == _line_of(records[2])

    report = verify(path)
    assert report.ok and report.n_records == 5 and report.problems == []
    assert "OK, 5 records" in report.summary()


def test_request_id_kind_and_find(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    r1 = log.append(_decision(1, request_id="req-42"))
    r2 = log.append({"request_id": "req-42", "verdict": "correct"}, kind="review_verdict")
    assert r1.id == r2.id == "req-42"
    found = log.find("req-42")
    assert found is not None and found["kind"] == "decision" and found["seq"] == 0
    assert "request_id" not in found
    assert list(log)[1]["kind"] == "review_verdict"
    assert log.find("nope") is None


def test_writers_reread_the_tail_instead_of_trusting_memory(tmp_path):
    path = tmp_path / "a.jsonl"
    a, b = AuditLog(path), AuditLog(path)
    seqs = [(a if i % 2 else b).append({"i": i}).seq for i in range(6)]
    assert seqs == list(range(6))
    assert verify(path).ok


@pytest.mark.parametrize("attack", ["cut back", "older copy", "deleted", "record replaced"])
def test_a_writer_refuses_a_log_that_no_longer_holds_its_last_record(tmp_path, attack):
    """A log cut back, swapped for an older copy or deleted under a running writer still verifies (no key, no
    anchor): chaining on would hide the loss. The writer remembers where its newest record lies and refuses."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"i": 0})
    before = path.read_bytes()
    other = AuditLog(path)
    other.append({"i": 1})  # another writer appending is no loss
    log.append({"i": 2})
    if attack == "cut back":
        path.write_bytes(before)
    elif attack == "older copy":
        (tmp_path / "old.jsonl").write_bytes(before + _lines(path)[1])
        os.replace(tmp_path / "old.jsonl", path)
    elif attack == "deleted":
        path.unlink()
    else:  # the same length, another record in its place
        lines = _lines(path)
        forged = json.loads(lines[2])
        forged["i"] = 3
        forged["hash"] = record_hash(forged)
        path.write_bytes(b"".join(lines[:2]) + canonical_json(forged).encode() + b"\n")
    kept = path.read_bytes() if path.exists() else None
    with pytest.raises(AuditIntegrityError, match=r"no longer holds record seq 2, which this writer wrote .*restart the guard"):
        log.append({"i": 4})
    assert (path.read_bytes() if path.exists() else None) == kept  # nothing written, no empty log left behind
    expected = {"cut back": 1, "older copy": 2, "deleted": 0, "record replaced": 3}[attack]
    assert AuditLog(path).append({"i": 5}).seq == expected  # a new writer (a restarted guard) goes on on purpose


def test_last_record_longer_than_one_tail_chunk(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    log.append({"answer": "é" * 200_000})  # multi-byte chars, far past the 64 KiB backwards-read chunk
    r = log.append({"answer": "short"})
    assert r.seq == 1
    assert list(log)[1]["prev_hash"] == list(log)[0]["hash"]
    assert verify(log.path).ok


def test_append_fsyncs_the_file_and_a_new_files_directory(tmp_path, monkeypatch):
    real_fsync = os.fsync
    synced: list[str] = []

    def recording_fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    log = AuditLog(tmp_path / "a.jsonl")
    log.append({"i": 0})
    assert sorted(synced) == ["dir", "file"]
    synced.clear()
    log.append({"i": 1})
    assert synced == ["file"]


def test_failed_write_leaves_no_half_record(tmp_path, monkeypatch):
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    log.append({"i": 0})
    good = path.read_bytes()
    real_write = os.write

    def disk_full_halfway(fd, data):
        if b"fail-me" in bytes(data):
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full_halfway)
    with pytest.raises(AuditError, match="not stored"):
        log.append({"note": "fail-me"})
    assert path.read_bytes() == good
    assert log.append({"i": 1}).seq == 1
    assert verify(path).ok


# ------------------------------------------------------------------------------------------------ tampering


def _edit_keep_hash(lines, i):
    rec = json.loads(lines[i])
    rec["route"] = "allow-forged"
    lines[i] = _line_of(rec)


def _edit_recompute_hash(lines, i):
    rec = json.loads(lines[i])
    rec["route"] = "allow-forged"
    rec["hash"] = record_hash(rec)
    lines[i] = _line_of(rec)


def _reformat(lines, i):
    lines[i] = (json.dumps(json.loads(lines[i]), ensure_ascii=False) + "\n").encode()


def _delete(lines, i):
    del lines[i]


def _swap(lines, i):
    lines[i], lines[i + 1] = lines[i + 1], lines[i]


def _insert_naive_forgery(lines, i):
    rec = json.loads(lines[i - 1])
    rec["route"] = "block"
    lines.insert(i, _line_of(rec))


def _insert_chained_forgery(lines, i):
    before = json.loads(lines[i - 1])
    rec = dict(before, route="allow", seq=before["seq"] + 1, prev_hash=before["hash"], id="forged")
    rec["hash"] = record_hash(rec)
    lines.insert(i, _line_of(rec))


@pytest.mark.parametrize(
    ("tamper", "index", "line", "seq", "words"),
    [
        (_edit_keep_hash, 2, 3, 2, "edited"),
        # A recomputed hash passes on its own line; the next record's link exposes it.
        (_edit_recompute_hash, 2, 4, 3, "line 3 was rewritten"),
        (_reformat, 2, 3, 2, "canonical"),
        (_delete, 2, 3, 3, "seq 3 follows seq 1"),
        (_delete, 0, 1, 1, "genesis"),
        (_swap, 2, 3, 3, "prev_hash does not match the hash of line 2"),
        (_insert_naive_forgery, 3, 4, 2, "prev_hash does not match"),
        (_insert_chained_forgery, 3, 5, 3, "seq 3 follows seq 3"),
    ],
)
def test_tampering_is_detected_at_the_right_line(tmp_path, tamper, index, line, seq, words):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 6)
    lines = _lines(path)
    tamper(lines, index)
    _write_lines(path, lines)

    report = verify(path)
    assert not report.ok and not report.torn
    first = report.problems[0]
    assert (first.line, first.seq) == (line, seq)
    assert words in first.message
    assert f"line {line}, seq {seq}:" in report.summary()


def test_swap_reports_every_broken_link(tmp_path):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 6)
    lines = _lines(path)
    _swap(lines, 2)
    _write_lines(path, lines)
    assert [p.line for p in verify(path).problems] == [3, 4, 5]


def test_garbage_line_in_the_middle_is_not_mistaken_for_a_torn_tail(tmp_path):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 4)
    lines = _lines(path)
    lines[1] = b'{"half a record\n'
    _write_lines(path, lines)
    report = verify(path)
    assert [(p.line, p.torn) for p in report.problems] == [(2, False)]
    assert report.n_records == 3
    with pytest.raises(AuditIntegrityError, match="line 2"):
        list(AuditLog(path))
    assert repair(path) is None  # only a torn tail is repairable; this is evidence for a human


# ------------------------------------------------------------------------------------------------ redaction


def test_redaction_hides_text_but_keeps_its_hash(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, redact=True)
    context = ["passage one: secret-ctx", "passage two"]
    log.append(
        _decision(
            0, question="what is secret-q?", answer="secret-a", context=context, llm_call={"question": "secret-n"}
        )
    )
    log.append({"question": None, "route": "allow"})

    text = path.read_text(encoding="utf-8")
    for secret in ("secret-q", "secret-a", "secret-ctx", "secret-n"):
        assert secret not in text
    rec, rec2 = list(log)
    assert rec["question"] == {"sha256": hashlib.sha256(b"what is secret-q?").hexdigest()}
    assert rec["answer"] == {"sha256": hashlib.sha256(b"secret-a").hexdigest()}
    assert rec["context"] == {"sha256": hashlib.sha256(canonical_json(context).encode()).hexdigest()}
    assert rec["llm_call"]["question"]["sha256"] == hashlib.sha256(b"secret-n").hexdigest()
    assert rec["signals"] == {"h_neuron": 0.0, "entropy": 1.0}  # the rest is untouched
    assert rec2["question"] is None
    assert verify(path).ok

    plain = AuditLog(tmp_path / "plain.jsonl")
    plain.append({"question": "visible?"})
    assert list(plain)[0]["question"] == "visible?"
    # a LlamaIndex query record's source file names (a patient's name, often) are hashed too
    log.append({"kind_of": "query", "sources": [{"node_id": "n1", "score": 0.5, "file_name": "Snailsworth_clinic.txt"}]})
    assert "Snailsworth" not in path.read_text(encoding="utf-8")
    assert list(log)[-1]["sources"][0]["node_id"] == "n1"


# ------------------------------------------------------------------------------------------------ concurrency


def test_threads_share_one_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    receipts: list[AuditReceipt] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def work(t: int) -> None:
        try:
            for i in range(50):
                r = log.append({"thread": t, "i": i})
                with guard:
                    receipts.append(r)
        except BaseException as e:  # a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    report = verify(path)
    assert report.ok, report.summary()
    assert report.n_records == 400
    records = list(log)
    assert sorted(r.seq for r in receipts) == list(range(400))
    assert {r.id for r in receipts} == {rec["id"] for rec in records}
    assert {(rec["thread"], rec["i"]) for rec in records} == {(t, i) for t in range(8) for i in range(50)}


def _append_from_process(path: str, worker: int, n: int) -> list[str]:
    log = AuditLog(path)
    return [log.append({"worker": worker, "i": i}).id for i in range(n)]


def test_processes_share_one_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        ids = pool.starmap(_append_from_process, [(str(path), w, 50) for w in range(4)])

    report = verify(path)
    assert report.ok, report.summary()
    assert report.n_records == 200
    records = list(AuditLog(path))
    assert [rec["seq"] for rec in records] == list(range(200))
    assert {i for worker_ids in ids for i in worker_ids} == {rec["id"] for rec in records}
    assert {(rec["worker"], rec["i"]) for rec in records} == {(w, i) for w in range(4) for i in range(50)}


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from hguard.audit import AuditLog
    log = AuditLog(sys.argv[1])
    filler = "x" * int(sys.argv[2])
    i = 0
    while True:
        receipt = log.append({"domain": "kill", "i": i, "answer": filler})
        sys.stdout.write(receipt.id + "\\n")
        sys.stdout.flush()
        i += 1
    """
)


def test_sigkill_mid_append_loses_no_acknowledged_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    # 2 MB records take milliseconds to copy into the file, so a kill sent as soon as the file starts to grow
    # lands inside write() most of the time and leaves a genuinely torn line.
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path), "2000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    acked: list[str] = []
    try:
        while len(acked) < 10:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.decode().strip())
        size_acked = path.stat().st_size if path.exists() else 0
        deadline = time.monotonic() + 10
        while path.exists() and path.stat().st_size == size_acked and proc.poll() is None:
            if time.monotonic() > deadline:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        # through the same buffered reader: communicate() would skip lines readline() already buffered
        rest, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=30)
    assert len(acked) == 10, err.decode()
    assert proc.returncode == -signal.SIGKILL
    acked += [line.decode() for line in rest.split(b"\n")[:-1]]  # printed before the kill: acknowledged too

    report = verify(path)
    assert all(p.torn for p in report.problems), report.summary()
    assert len(report.problems) <= 1
    records = list(AuditLog(path))
    assert [rec["i"] for rec in records] == list(range(len(records)))
    assert set(acked) <= {rec["id"] for rec in records}
    assert len(records) - len(acked) in (0, 1)  # at most the one whose receipt was not printed yet

    before = path.read_bytes()
    receipt = AuditLog(path).append({"after": "crash"})  # recovers by itself
    assert verify(path).ok
    after = list(AuditLog(path))
    if report.torn:
        assert report.problems[0].line == len(records) + 1
        note = after[len(records)]
        assert note["action"] == "torn_tail_moved_aside"
        saved = Path(note["saved_to"]).read_bytes()
        assert before == b"".join(_line_of(r) for r in records) + saved  # moved aside, not lost
        assert receipt.seq == len(records) + 1
    else:
        assert receipt.seq == len(records)


# ------------------------------------------------------------------------------------------------ torn tail


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(None, id="half-a-line"),
        pytest.param(b"\0" * 300, id="zero-filled"),
    ],
)
def test_torn_tail_is_reported_then_moved_aside_by_the_next_append(tmp_path, tail):
    path = tmp_path / "audit.jsonl"
    receipts = _make_log(path, 3)
    good = path.read_bytes()
    if tail is None:
        tail = _lines(path)[1][:57]
    with open(path, "ab") as f:
        f.write(tail)

    report = verify(path)
    assert not report.ok and report.torn and report.n_records == 3
    assert [(p.line, p.torn, p.damaged) for p in report.problems] == [(4, True, False)]
    assert "never acknowledged" in report.problems[0].message

    log = AuditLog(path)
    assert [rec["id"] for rec in log] == [r.id for r in receipts]  # readers skip the unacknowledged tail
    receipt = log.append({"i": 3})  # answers go on: no refusal, no human needed
    assert receipt.seq == 4
    records = list(log)
    assert path.read_bytes().startswith(good)
    recovery = records[3]
    assert recovery["kind"] == "recovery" and recovery["action"] == "torn_tail_moved_aside"
    assert recovery["seq"] == 3 and recovery["line"] == 4 and recovery["bytes"] == len(tail)
    assert recovery["sha256"] == hashlib.sha256(tail).hexdigest()
    assert Path(recovery["saved_to"]).read_bytes() == tail  # moved aside, not lost
    assert Path(recovery["saved_to"]).name.startswith("audit.jsonl.torn-")
    assert records[4]["i"] == 3
    assert verify(path).ok


def test_a_line_nested_too_deeply_to_parse_is_a_damaged_line_not_a_crash(tmp_path):
    """One appended line of '[' * 100000 made every reader (the guard, verify, show, export, monitor, repair) stop
    with a RecursionError; it is a damaged line like any other, named and kept."""
    path = tmp_path / "audit.jsonl"
    _make_log(path, 2)
    deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    with path.open("ab") as f:
        f.write(deep)
    report = verify(path)
    assert [(p.line, p.damaged) for p in report.problems] == [(3, True)]
    assert "nested more deeply" in report.problems[0].message
    assert repair(path) is None and _lines(path)[2] == deep  # kept as evidence
    note = json.loads(_lines(path)[3])
    assert note["action"] == "damaged_lines_kept" and note["lines"] == [3]
    assert AuditLog(path).append({"after": "damage"}).seq == note["seq"] + 1  # the log goes on after it


@pytest.mark.parametrize("content", [
    b"precious data, not a log\n", b'{"name": "a dataset row"}\n{"name": "b"}\n',
    b"precious data, not a log", b'{"db": "prod", "rows": 3}', b'{"name": "a dataset row"}\n{"name": "b"}'])
def test_a_file_that_holds_no_record_is_not_written_into(tmp_path, content):
    """An audit path naming another file (a wrong path, a symlink to it) had the guard append its records to that
    file after a "damaged lines kept" note that spoke of tampering, or, without a last newline, move its last line
    aside as a torn write and write over it (a red team's trial, and a review of the first fix)."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(content)
    (tmp_path / "audit.jsonl").symlink_to(victim)
    log = AuditLog(tmp_path / "audit.jsonl")
    for attempt in (log.check_writable, lambda: log.append({"q": "x"}), lambda: repair(tmp_path / "audit.jsonl")):
        with pytest.raises(AuditError, match="is not an hguard audit log: no line of it is or looks like an audit record"):
            attempt()
    assert victim.read_bytes() == content and not list(tmp_path.glob("*.torn-*"))


@pytest.mark.parametrize("content", [b"\n", b"\n\n  \n", b'{"answer":"Paris","context":null,"domain":"geo', None])
def test_a_log_whose_only_record_is_damaged_or_cut_is_still_recovered(tmp_path, content):
    """What a log's damage leaves (a blank line, a first record cut short, a record with a byte rotted) is recovered
    as before, not refused as another file."""
    path = tmp_path / "audit.jsonl"
    if content is None:  # a record whose bytes rotted, "prev_hash" still readable
        _make_log(path, 1)
        content = path.read_bytes().replace(b'"seq":0', b'"seq":#', 1)
    path.write_bytes(content)
    log = AuditLog(path)
    log.check_writable()
    assert log.append({"after": "damage"}).seq >= 1
    assert json.loads(_lines(path)[-2])["kind"] == "recovery"
    kept = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("audit.jsonl.torn-*"))
    assert content in kept  # kept in place, or moved aside as a write cut short


def test_a_device_or_a_pipe_is_no_audit_log(tmp_path):
    """A FIFO hung the writer without a word; /dev/null failed with "Invalid argument ... check free space"."""
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/null"):
        with pytest.raises(InputError, match="is not a regular file"):
            AuditLog(path)


def test_damaged_complete_last_line_is_kept_and_not_called_torn(tmp_path):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 3)
    lines = _lines(path)
    damaged = b"#" + lines[2][1:]  # one byte overwritten, newline intact
    lines[2] = damaged
    _write_lines(path, lines)

    report = verify(path)
    assert not report.ok and not report.torn
    assert [(p.line, p.torn, p.damaged) for p in report.problems] == [(3, False, True)]
    assert "damaged" in report.problems[0].message and "torn" not in report.problems[0].message

    assert repair(path) is None  # evidence: never moved aside
    assert _lines(path)[2] == damaged
    assert not list(tmp_path.glob("audit.jsonl.torn-*"))
    # repair chained a record naming the damage after it; appends go on after that
    receipt = AuditLog(path).append({"after": "damage"})
    after = _lines(path)
    assert after[2] == damaged and len(after) == 5
    note = json.loads(after[3])
    assert note["kind"] == "recovery" and note["action"] == "damaged_lines_kept" and note["lines"] == [3]
    assert note["sha256"] == [hashlib.sha256(damaged[:-1]).hexdigest()]
    assert note["seq"] == 3 and receipt.seq == 4
    problems = verify(path).problems
    assert [(p.line, p.damaged) for p in problems] == [(3, True)]  # only the damaged line itself


def test_record_that_only_lost_its_newline_is_restored_not_moved(tmp_path):
    path = tmp_path / "audit.jsonl"
    receipts = _make_log(path, 3)
    path.write_bytes(path.read_bytes()[:-1])
    assert verify(path).torn
    AuditLog(path).append({"i": 3})
    records = list(AuditLog(path))
    assert [r["id"] for r in records[:3]] == [r.id for r in receipts]
    assert records[3]["action"] == "newline_restored" and records[3]["saved_to"] is None
    assert verify(path, expect_head=receipts[-1].hash).ok


def test_show_reports_bad_lines(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 4)
    lines = _lines(path)
    lines[1] = b"not json\n"
    _write_lines(path, lines + [b'{"seq":4,"ha'])
    with pytest.raises(AuditIntegrityError, match="line 2: damaged"):
        show(path)
    problems: list = []
    assert [r["seq"] for r in show(path, problems=problems)] == [0, 2, 3]
    assert [(p.line, p.damaged, p.torn) for p in problems] == [(2, True, False), (5, False, True)]
    assert cli_main(["show", str(path)]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert "line 2: damaged" in captured.err and "line 5: torn" in captured.err


# ------------------------------------------------------------------------------------------------ values


def test_nonfinite_floats_become_null_and_are_named(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"score": math.nan, "signals": {"a": math.inf, "b": 0.5, "trace": [1.0, -math.inf]}})

    raw = path.read_text(encoding="utf-8")
    rec = json.loads(raw, parse_constant=lambda name: pytest.fail(f"{name} written to the log"))
    assert rec["score"] is None and rec["signals"] == {"a": None, "b": 0.5, "trace": [1.0, None]}
    assert rec["nonfinite"] == ["score", "signals.a", "signals.trace[1]"]
    assert verify(path).ok
    log.append({"score": 1.0})
    assert "nonfinite" not in list(log)[1]


def test_numpy_scalars_and_arrays_are_stored_as_plain_values(tmp_path):
    np = pytest.importorskip("numpy")
    log = AuditLog(tmp_path / "a.jsonl")
    log.append({"signals": {"p": np.float32(0.25), "n": np.int64(3), "v": np.array([1.5, np.nan])}})
    rec = list(log)[0]
    assert rec["signals"] == {"p": 0.25, "n": 3, "v": [1.5, None]}
    assert rec["nonfinite"] == ["signals.v[1]"]


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"signals": {"x": object()}}, "'signals.x'"),
        ({"tags": {1, 2}}, "'tags'"),
        ({"signals": {3: 1.0}}, "key 3"),
        ({"seq": 7}, "'seq'"),
        ({"hash": "0" * 64}, "'hash'"),
        ({"request_id": ""}, "request_id"),
        ({"answer": "bad \ud800 surrogate"}, "'answer'"),
        ("not a dict", "must be a dict"),
    ],
)
def test_bad_values_raise_input_error_and_write_nothing(tmp_path, record, words):
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    with pytest.raises(InputError) as exc:
        log.append(record)
    assert words in str(exc.value)
    assert not path.exists()


def test_cyclic_record_is_refused(tmp_path):
    rec: dict = {"a": {}}
    rec["a"]["self"] = rec["a"]
    with pytest.raises(InputError, match="contains itself"):
        AuditLog(tmp_path / "a.jsonl").append(rec)


# ------------------------------------------------------------------------------------------------ reading out


def test_show_filters_by_domain_route_and_last(tmp_path):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 9)  # domains alternate legal/medical; route "review" when i % 3 == 0
    assert [r["seq"] for r in show(path)] == list(range(9))
    assert [r["seq"] for r in show(path, domain="medical")] == [1, 3, 5, 7]
    assert [r["seq"] for r in show(path, route="review")] == [0, 3, 6]
    assert [r["seq"] for r in show(path, domain="medical", route="review")] == [3]
    assert [r["seq"] for r in show(path, last=2)] == [7, 8]
    assert [r["seq"] for r in show(path, domain="legal", last=2)] == [6, 8]
    assert show(path, last=0) == []
    with pytest.raises(InputError, match="-1"):
        show(path, last=-1)
    with pytest.raises(InputError, match="does not exist"):
        show(tmp_path / "missing.jsonl")


def test_export_csv_flattens_signals_and_thresholds(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append(_decision(1))
    log.append(_decision(2, signals={"h_neuron": 0.9, "grounding": 0.3}))
    log.append(_decision(3, thresholds=None, domain=None))  # no domain chosen: no thresholds
    out = tmp_path / "out.csv"

    assert export_csv(path, out) == 3
    with open(out, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    assert header[:6] == ["seq", "time", "id", "kind", "domain", "route"]
    assert header[-3:] == ["prev_hash", "hash", "chain_check"]
    assert [r["chain_check"] for r in rows] == ["ok"] * 3
    assert {"signals.h_neuron", "signals.entropy", "signals.grounding", "thresholds.entropy"} <= set(header)
    assert "signals" not in header and "thresholds" not in header  # no always-empty column for the null table
    assert rows[0]["signals.entropy"] == "2.0" and rows[1]["signals.entropy"] == ""
    assert rows[1]["signals.grounding"] == "0.3"
    assert rows[0]["thresholds.h_neuron"] == "0.7"
    assert json.loads(rows[1]["reasons"]) == ["reason 2"]

    picked = tmp_path / "picked.csv"
    assert export_csv(path, picked, columns=["id", "signals.h_neuron"]) == 3
    with open(picked, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f))[0] == ["id", "signals.h_neuron", "chain_check"]  # the mark is never left out

    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # private text: not world-readable
    # text anyone can type (a question, an answer) never reaches a spreadsheet as a formula
    typed = tmp_path / "typed.jsonl"
    AuditLog(typed).append({"question": '=HYPERLINK("http://x.invalid","ROI?")', "answer": "+SUM(1,2)", "note": "@cmd",
                            "risk": -0.5, "reasons": ["- fine"]}, kind="decision")  # fmt: skip
    export_csv(typed, tmp_path / "typed.csv")
    with open(tmp_path / "typed.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["question"] == '\'=HYPERLINK("http://x.invalid","ROI?")' and row["answer"] == "'+SUM(1,2)"
    assert row["note"] == "'@cmd" and row["risk"] == "-0.5" and json.loads(row["reasons"]) == ["- fine"]
    # nor through a column's name (a record's key), a formula after blanks or a line break, or a full-width one
    keyed = tmp_path / "keyed.jsonl"
    AuditLog(keyed).append({'=HYPERLINK("http://x.invalid","open")': "x", "a": " =1+1", "b": "\n=cmd", "c": "\uff1d1+1",
                            "d": "fine = ok"}, kind="custom")  # fmt: skip
    export_csv(keyed, tmp_path / "keyed.csv")
    with open(tmp_path / "keyed.csv", newline="", encoding="utf-8") as f:
        header, values = list(csv.reader(f))
    row = dict(zip(header, values))
    assert '\'=HYPERLINK("http://x.invalid","open")' in header and not any(h.startswith("=") for h in header)
    assert (row["a"], row["b"], row["c"], row["d"]) == ("' =1+1", "'\n=cmd", "'\uff1d1+1", "fine = ok")

    with pytest.raises(InputError, match="signals.nope"):
        export_csv(path, tmp_path / "x.csv", columns=["signals.nope"])
    with pytest.raises(InputError, match="is the audit log; writing there would destroy it"):
        export_csv(path, path)
    with pytest.raises(InputError, match="the folder .*nofolder does not exist"):
        export_csv(path, tmp_path / "nofolder" / "out.csv")
    with pytest.raises(InputError, match="is a folder; pass a file path"):
        export_csv(path, tmp_path)
    # another name of the log or the queue: a hard link (same inode; the log was truncated to a CSV header through
    # it), or a symbolic link ending in .csv to a file that does not (the queue was written through one)
    before = path.read_bytes()
    os.link(path, tmp_path / "hard.csv")
    with pytest.raises(InputError, match="hard.csv is the audit log; writing there would destroy it"):
        export_csv(path, tmp_path / "hard.csv")
    queue = tmp_path / "review.sqlite3"
    queue.write_bytes(b"SQLite format 3\x00")
    os.link(queue, tmp_path / "q-hard.csv")
    with pytest.raises(InputError, match="q-hard.csv is a hard link .2 names for one file"):
        export_csv(path, tmp_path / "q-hard.csv")
    (tmp_path / "q-hard.csv").unlink()
    os.symlink(queue, tmp_path / "q.csv")
    with pytest.raises(InputError, match="q.csv already exists and is not a .csv file"):
        export_csv(path, tmp_path / "q.csv")
    assert path.read_bytes() == before and queue.read_bytes() == b"SQLite format 3\x00"
    assert verify(path).ok


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_verify_exit_codes(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 4)
    (tmp_path / "policy.toml").write_text("version = 1\n")
    for command in ("verify", "rotate", "show"):  # a policy given as the log read as a log that does not verify (1)
        assert cli_main([command, str(tmp_path / "policy.toml")]) == 2
        assert "policy.toml is a policy file, not an audit log; pass it as --policy" in capsys.readouterr().err
    assert cli_main(["verify", str(path)]) == 0
    assert "OK, 4 records" in capsys.readouterr().out

    lines = _lines(path)
    _edit_keep_hash(lines, 1)
    _write_lines(path, lines)
    assert cli_main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "line 2, seq 1:" in out

    assert cli_main(["verify", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["frobnicate"]) == 2
    assert cli_main([]) == 2


def test_cli_show_export_and_repair(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    _make_log(path, 5)

    assert cli_main(["show", str(path), "--last", "2", "--json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in shown] == [3, 4]

    assert cli_main(["show", str(path), "--domain", "medical"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("domain=medical" in line for line in out)
    assert 'question="question 1?"  answer="answer 1."' in out[0]  # what was asked and said, beside the route
    capsys.readouterr()
    AuditLog(tmp_path / "long.jsonl").append(_decision(0, question="Is the\nsky " + "very " * 40 + "blue?", risk=0.25))
    assert cli_main(["show", str(tmp_path / "long.jsonl")]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "risk=0.2500" in line and 'question="Is the\\nsky very' in line and len(line) < 400
    # questions that differ by a tab, a carriage return or a leading space show differently (they were folded alike)
    spaced = tmp_path / "spaced.jsonl"
    for q in ("=1+1", "\t=1+1", "\r=1+1", " =1+1", "a  b"):
        AuditLog(spaced).append(_decision(0, question=q))
    assert cli_main(["show", str(spaced)]) == 0
    shown = [x.split("question=")[1].split("  answer=")[0] for x in capsys.readouterr().out.splitlines()]
    assert shown == ['"=1+1"', '"\\t=1+1"', '"\\r=1+1"', '" =1+1"', '"a  b"'], shown
    # a value holding a line break or a direction override shows escaped: one record, one line, read as written
    AuditLog(tmp_path / "odd.jsonl").append({"reviewer": "mallory\nreviewer=alice", "verdict": "correct",
                                             "answer": "bob\u202eecila"}, kind="review_verdict\nFORGED")
    assert cli_main(["show", str(tmp_path / "odd.jsonl")]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "reviewer=mallory\\nreviewer=alice" in line and "bob\\u202eecila" in line
    assert "review_verdict\\nFORGED" in line
    assert cli_main(["show", str(path), "--domain", "nowhere", "--route", "accept"]) == 0
    shown = capsys.readouterr()
    assert shown.out == "" and f"no records in {path} match --domain nowhere --route accept" in shown.err
    assert "(domains in it: legal, medical)" in shown.err  # the names a user can pass
    assert cli_main(["show", str(path), "--domain", ""]) == 2
    assert "pass a domain name, or --no-domain for records without one" in capsys.readouterr().err
    assert cli_main(["show", str(path), "--last", "-3"]) == 2
    assert "last (--last) must be a non-negative integer, got -3; pass e.g. 20" in capsys.readouterr().err
    assert cli_main(["show", str(path), "--last", "0"]) == 0  # it said "no records in" a log that has them
    assert "--last 0 shows none of the records of" in capsys.readouterr().err

    out_csv = tmp_path / "out.csv"
    assert cli_main(["export", str(path), "--csv", str(out_csv), "--columns", "seq,route"]) == 0
    assert out_csv.read_text().splitlines()[0] == "seq,route,chain_check"
    assert cli_main(["export", str(path)]) == 2  # --csv is required

    with open(path, "ab") as f:
        f.write(b'{"seq":5,"ha')
    assert cli_main(["verify", str(path)]) == 1
    assert "repair" in capsys.readouterr().out
    assert cli_main(["repair", str(path)]) == 2  # as rotate: say whether the log's writers keep an anchor
    assert "--no-anchor when they keep none" in capsys.readouterr().err
    assert cli_main(["repair", str(path), "--no-anchor"]) == 0
    assert ".torn-" in capsys.readouterr().out
    assert cli_main(["verify", str(path)]) == 0
    assert "OK, 6 records" in capsys.readouterr().out  # the five and the recovery record
    assert cli_main(["repair", str(path), "--no-anchor"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    capsys.readouterr()
    AuditLog(path).append({"item_id": "i1", "decision_audit_id": "d1", "verdict": "hallucinated", "reviewer": "ann"},
                          kind="review_verdict")
    assert cli_main(["show", str(path), "--last", "1"]) == 0  # a verdict record says what was decided, by whom
    line = capsys.readouterr().out.strip()
    assert "verdict=hallucinated" in line and "reviewer=ann" in line and "decision_audit_id=d1" in line
    assert cli_main(["show", str(path), "--kind", "review_verdict"]) == 0  # records of one kind (errors, verdicts...)
    assert capsys.readouterr().out.strip() == line
    assert cli_main(["show", str(path), "--kind", "error"]) == 0
    assert "match --kind error (kinds in it: decision, recovery, review_verdict)" in capsys.readouterr().err
    AuditLog(path).append({"error": "InputError: the context is empty", "source": "hguard ask"}, kind="error")
    assert cli_main(["show", str(path), "--kind", "error"]) == 0
    assert 'error="InputError: the context is empty"' in capsys.readouterr().out  # the message, not only the kind
    assert cli_main(["show", str(path), "--no-domain", "--kind", "decision"]) == 0  # decisions none was chosen for
    assert capsys.readouterr().out == ""
    AuditLog(path).append(_decision(7, domain=None))
    assert cli_main(["show", str(path), "--no-domain", "--json"]) == 0
    nodomain = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in nodomain] == ["recovery", "review_verdict", "error", "decision"]
    assert all(r.get("domain") is None for r in nodomain)



def test_cli_show_says_a_probe_swap_and_where_items_put_back_came_from(tmp_path, capsys):
    """A review: `audit show` gave a domain_added or domain_removed record as domain=... alone, and cut a
    review_requeued reason at 200 characters halfway through naming where the items came from."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"domain": "alpha", "probe_ids_before": {"closed_book": "old1"},
                "probe_ids_after": {"closed_book": "new2", "rag": "new3"}}, kind="domain_added")
    log.append({"domain": "beta", "probe_ids_before": {"closed_book": "b1"}, "probe_ids_after": {},
                "not_scored": "removed from this guard (Guard.remove_domain)"}, kind="domain_removed")
    log.append({"item_ids": ["d1", "d2", "d3"], "from_decision_records": ["d1"], "from_pending_copies": ["d2", "d3"],
                "from_held_answers": [], "queue": "/" + "q" * 300 + ".sqlite3",
                "reason": "put back 1 from their decision records and 2 from the copies kept beside the queue in /"
                          + "q" * 300}, kind="review_requeued")
    assert cli_main(["show", str(path)]) == 0
    added, removed, requeued = capsys.readouterr().out.splitlines()
    assert "probe_ids_before=closed_book:old1  probe_ids_after=closed_book:new2,rag:new3" in added
    assert "probe_ids_after=none  not_scored=\"removed from this guard" in removed
    assert "from_decision_records=1 (d1)  from_pending_copies=2 (d2, d3)  reason=" in requeued
    assert "from_held_answers" not in requeued


def test_cli_show_and_export_of_a_log_that_does_not_verify_say_so_and_exit_1(tmp_path, capsys):
    """Records read from an edited log are shown and exported as they are, never as checked ones."""
    path = tmp_path / "audit.jsonl"
    _make_log(path, 4)
    decision = json.loads(_lines(path)[1])["id"]
    AuditLog(path).append({"decision_audit_id": decision, "verdict": "correct", "reviewer": "ann"}, kind="review_verdict")
    assert cli_main(["show", str(path), "--id", decision, "--json"]) == 0  # the decision and the verdict naming it
    assert [json.loads(x)["kind"] for x in capsys.readouterr().out.splitlines()] == ["decision", "review_verdict"]
    lines = _lines(path)
    _edit_keep_hash(lines, 1)
    _write_lines(path, lines)
    assert cli_main(["show", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path} does not verify" in err and "line 2" in err and "hguard audit verify" in err
    assert cli_main(["export", str(path), "--csv", str(tmp_path / "o.csv")]) == 1
    captured = capsys.readouterr()
    assert "wrote 5 rows" in captured.out and "does not verify" in captured.err and (tmp_path / "o.csv").exists()
    assert f"`hguard audit verify {path}` says where" in captured.err
    # read with a policy: the command it names checks the policy's key and anchor too, as the export did (an
    # auditor's trial: the hint dropped --policy, and verify run so listed fewer problems)
    policy = tmp_path / "policy.toml"
    policy.write_text(f'version = 1\n[audit]\npath = "{path}"\n[domains.geo]\ntarget_hallucination_rate = 0.2\n')
    assert cli_main(["show", "--policy", str(policy)]) == 1
    assert f"`hguard audit verify {path} --policy {policy}` says where" in capsys.readouterr().err
    # a log other than the policy's, read with it: the command names the log read (a review: `verify --policy` alone
    # checked the policy's own log, which said OK)
    other = tmp_path / "other.jsonl"
    _make_log(other, 3)
    lines = _lines(other)
    _edit_keep_hash(lines, 1)
    _write_lines(other, lines)
    assert cli_main(["show", str(other), "--policy", str(policy)]) == 1
    assert f"`hguard audit verify {other} --policy {policy}` says where" in capsys.readouterr().err


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_export_writes_utf8_and_a_byte_order_mark_for_excel_when_asked(tmp_path, capsys):
    """A multilingual agency's trial: the CSV, UTF-8 without a byte-order mark, opened in Excel by a double-click as the
    system's code page, an Arabic question as mojibake; nothing said its encoding."""
    import csv

    path = tmp_path / "audit.jsonl"
    AuditLog(path).append({"question": "\u0645\u0627 \u0647\u064a", "route": "review"}, kind="decision")
    for flag, head in (([], b"seq"), (["--bom"], b"\xef\xbb\xbfseq")):
        out = tmp_path / f"o{len(flag)}.csv"
        assert cli_main(["export", str(path), "--csv", str(out), *flag]) == 0
        assert out.read_bytes().startswith(head)
        with open(out, newline="", encoding="utf-8-sig") as f:
            assert next(csv.DictReader(f))["question"] == "\u0645\u0627 \u0647\u064a"


def test_export_to_standard_output_with_a_dash(tmp_path, capsys, monkeypatch):
    """`hguard audit export LOG --csv -` wrote a file named "-" in the working folder."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append({"question": "q", "route": "review"}, kind="decision")
    assert cli_main(["export", str(path), "--csv", "-"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("seq,") and ",q," in out.out and "wrote 1 rows to standard output" in out.err
    assert not (tmp_path / "-").exists()


def test_export_keeps_a_row_for_a_line_that_is_not_a_record(tmp_path, capsys):
    """A line damaged into invalid JSON (and a torn last line) made export refuse and write no CSV at all: the
    auditor got nothing. Each such line now has its row, saying what it is, among the records' rows."""
    path = tmp_path / "audit.jsonl"
    _make_log(path, 4)
    lines = _lines(path)
    lines[1] = b'{"seq": 1, this is not json\n'
    _write_lines(path, lines + [b'{"torn":'])
    out = tmp_path / "o.csv"
    assert cli_main(["export", str(path), "--csv", str(out)]) == 1
    assert "wrote 5 rows" in capsys.readouterr().out
    rows = _csv_rows(out)
    assert [r["seq"] for r in rows] == ["0", "", "2", "3", ""]
    assert rows[1]["chain_check"].startswith("line 2 is not a record: ")
    assert rows[4]["chain_check"].startswith("line 5 is not a record: ") and "never acknowledged" in rows[4]["chain_check"]


def test_export_marks_each_row_with_what_verification_found_on_its_line(tmp_path, capsys):
    """An auditor handed only the CSV sees which row was edited: its chain_check names the problem."""
    path = tmp_path / "audit.jsonl"
    _make_log(path, 5)
    lines = _lines(path)
    assert b'"route":"allow"' in lines[2]
    lines[2] = lines[2].replace(b'"route":"allow"', b'"route":"accept"')  # as sed -i '3s/.../.../' would
    _write_lines(path, lines)
    out = tmp_path / "o.csv"
    edited = "its hash does not match its content: the record was edited after it was written"

    assert cli_main(["export", str(path), "--csv", str(out)]) == 1  # still exit 1, with the warning
    captured = capsys.readouterr()
    assert "wrote 5 rows" in captured.out and "does not verify" in captured.err and f"line 3: {edited}" in captured.err
    assert "chain_check column" in captured.err
    rows = _csv_rows(out)
    assert [(r["seq"], r["route"]) for r in rows][2] == ("2", "accept")
    assert rows[2]["chain_check"] == edited
    assert [r["chain_check"] for i, r in enumerate(rows) if i != 2] == ["ok"] * 4
    assert cli_main(["export", str(path), "--csv", str(out), "--columns", "route,seq"]) == 1
    assert [list(r) for r in _csv_rows(out)][0] == ["route", "seq", "chain_check"]
    assert [r["chain_check"] == "ok" for r in _csv_rows(out)] == [True, True, False, True, True]

    # the Python API verifies the log itself when it is given no report, and marks the same row
    assert export_csv(path, out) == 5
    assert [r["chain_check"] for r in _csv_rows(out)] == [r["chain_check"] for r in rows]
    # a problem with the log as a whole is on every row, after the row's own
    export_csv(path, out, check=verify(path, expect_head="0" * 64))
    marks = [r["chain_check"] for r in _csv_rows(out)]
    assert all("the log: no record has the expected head hash" in m for m in marks)
    assert marks[2].startswith("its hash does not match") and marks[0].startswith("the log: ")
    # a record appended after the check was not checked, and its row says so
    report = verify(path)
    AuditLog(path).append(_decision(5))
    assert export_csv(path, out, check=report) == 6
    assert _csv_rows(out)[-1]["chain_check"] == "not checked: appended after the log was verified"
    other = tmp_path / "other.jsonl"
    _make_log(other, 1)
    with pytest.raises(InputError, match="check must be the VerifyReport of"):
        export_csv(path, out, check=verify(other))

    # a record's own chain_check field never stands in for the check
    forged = tmp_path / "forged.jsonl"
    AuditLog(forged).append(_decision(0, chain_check="ok"))
    lines = _lines(forged)
    lines[0] = lines[0].replace(b'"route":"review"', b'"route":"accept"')
    _write_lines(forged, lines)
    (row,) = (export_csv(forged, out), _csv_rows(out))[1]
    assert row["route"] == "accept" and row["chain_check"].startswith("its hash does not match")

    # a keyed log read without its key: the chain holds, the MAC was not checked, and the row says so
    keyed = tmp_path / "keyed.jsonl"
    AuditLog(keyed, key=b"k" * 32).append(_decision(0))
    export_csv(keyed, out)
    assert [r["chain_check"] for r in _csv_rows(out)] == ["ok (hash chain; its MAC was not checked: no key)"]
    export_csv(keyed, out, check=verify(keyed, key=b"k" * 32))
    assert [r["chain_check"] for r in _csv_rows(out)] == ["ok"]


@pytest.mark.parametrize("code, words", [(errno.EROFS, "mounted read-only: put the log on writable storage"),
                                         (errno.ENOSPC, "the disk is full"), (errno.EACCES, "check its permissions")])
def test_a_log_that_cannot_be_opened_says_why_in_the_words_of_its_cause(tmp_path, monkeypatch, code, words):
    import hguard._audit_files as files

    def refused(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.os, "open", refused)
    with pytest.raises(AuditError, match=words):
        AuditLog(tmp_path / "audit.jsonl").append({"i": 1})


def test_check_writable_refuses_a_log_this_process_cannot_append_to_writing_nothing(tmp_path, monkeypatch):
    """check_writable (what a guard and the review site check when they start) passed a log no append could open (a
    read-only file or file system, its permissions): the first answer, login or verdict found it."""
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"i": 0})
    whole = log.path.read_bytes()
    real_open = os.open

    def opened(file, flags, *args, **kwargs):
        if os.fspath(file) == str(log.path) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opened)
    with pytest.raises(AuditError, match=rf"cannot open audit log {re.escape(str(log.path))} for appending: \[Errno 13\] "
                                         "Permission denied.*; check its permissions"):  # fmt: skip
        log.check_writable()
    assert log.path.read_bytes() == whole
    monkeypatch.undo()
    log.check_writable()  # writable again: passes
    new = AuditLog(tmp_path / "logs" / "audit.jsonl")  # no log yet: its folder must take a new file
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(new.path.parent)
                        else real_access(p, mode, **kw))  # fmt: skip
    with pytest.raises(AuditError, match=rf"cannot create audit log .*: this process may not write in its folder "
                                         rf"{re.escape(str(new.path.parent))}; check that folder's permissions"):  # fmt: skip
        new.check_writable()
    assert not new.path.exists()


def test_verify_resumes_from_a_verified_point_and_checks_only_what_was_appended(tmp_path):
    key = b"k" * 32
    log = AuditLog(tmp_path / "a.jsonl", key=key)
    for i in range(5):
        log.append({"i": i})
    first = verify(log.path, key=key)
    assert first.ok and first.resume is not None and first.resume.seq == 4 and not first.resumed
    seen: list[int] = []
    for i in range(5, 8):
        log.append({"i": i})
    again = verify(log.path, key=key, start=first.resume, on_record=lambda r: seen.append(r["i"]))
    full = verify(log.path, key=key)
    assert again.ok and again.resumed and seen == [5, 6, 7]  # only the appended records were read
    assert (again.n_records, again.head_seq, again.head_hash) == (full.n_records, full.head_seq, full.head_hash)
    assert again.resume == full.resume
    # a record appended without the key after the point is caught, and no resume point is given past a break
    with open(log.path, "a", encoding="utf-8") as f:
        rec = {"i": 8, "id": "x" * 32, "kind": "decision", "seq": 8, "time": "t", "prev_hash": full.head_hash}
        rec["hash"] = record_hash(rec)
        f.write(canonical_json(rec) + "\n")
    forged = verify(log.path, key=key, start=full.resume)
    assert not forged.ok and forged.resume is None and "no MAC" in forged.problems[0].message
    # a replaced file (another inode) is verified from its start, not from the old point
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(log.path.read_bytes())
    os.replace(copy, log.path)
    seen.clear()
    whole = verify(log.path, key=key, start=full.resume, on_record=lambda r: seen.append(r["i"]))
    assert not whole.resumed and seen == list(range(9)) and not whole.ok


def test_show_and_export_check_with_the_policys_key_and_anchor(tmp_path, capsys):
    from hguard.cli.audit import main

    log = _anchored(tmp_path, 1)[3]
    assert main(["show", str(tmp_path / "audit.jsonl"), "--no-key"]) == 0
    assert "NOT checked" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "audit.jsonl"), "--policy", str(tmp_path / "policy.toml")]) == 0
    assert "NOT checked" not in capsys.readouterr().err
    assert main(["export", str(tmp_path / "audit.jsonl"), "--csv", str(tmp_path / "o.csv"),
                 "--policy", str(tmp_path / "policy.toml")]) == 0
    assert "MAC was not checked" not in (tmp_path / "o.csv").read_text()
    # without LOG, the policy's own log
    assert main(["show", "--policy", str(tmp_path / "policy.toml"), "--json"]) == 0
    assert '"x":1' in capsys.readouterr().out
    assert main(["export", "--csv", str(tmp_path / "p.csv"), "--policy", str(tmp_path / "policy.toml")]) == 0
    assert (tmp_path / "p.csv").read_text() == (tmp_path / "o.csv").read_text()
    assert main(["show"]) == 2 and "pass the audit log to show" in capsys.readouterr().err
    # the policy's anchor is checked: a record cut off the end fails
    lines = (tmp_path / "audit.jsonl").read_text().splitlines(keepends=True)
    log.append({"x": 2})
    (tmp_path / "audit.jsonl").write_text("".join(lines))
    assert main(["show", str(tmp_path / "audit.jsonl"), "--policy", str(tmp_path / "policy.toml")]) == 1
    assert "not in the log" in capsys.readouterr().err


def test_export_cuts_a_cell_too_long_for_a_spreadsheet_and_says_so(tmp_path):
    from hguard.audit import export_csv

    log = AuditLog(tmp_path / "audit.jsonl", key=None)
    log.append({"question": "q", "context": "=" + "x" * 150_000}, kind="error")
    export_csv(tmp_path / "audit.jsonl", tmp_path / "o.csv")
    with open(tmp_path / "o.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))  # the reader's default field limit (131,072) holds
    cell = row["context"]
    assert cell.startswith("'=") and len(cell) < 32_767 and "cut here: 150001 characters in all" in cell
    assert next(iter(log))["context"] == "=" + "x" * 150_000  # the log keeps it whole


def test_export_never_replaces_a_deployment_file_or_a_file_that_is_not_csv(tmp_path, capsys):
    """`hguard audit export --csv` onto the review queue, the policy file or a calibration file replaced it with CSV
    (the queue's pending items and verdicts lost): the policy's own files and any existing file not named .csv are
    refused, untouched; an earlier export (.csv) is replaced as before."""
    from hguard.cli.audit import main

    (tmp_path / "policy.toml").write_text('version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = "review.data"\n')
    AuditLog(tmp_path / "audit.jsonl").append({"x": 1})
    queue, policy, data = tmp_path / "review.data", tmp_path / "policy.toml", tmp_path / "rows.jsonl"
    queue.write_bytes(b"SQLite format 3\x00 pending items")
    data.write_text('{"question": "q"}\n')
    kept = {f: f.read_bytes() for f in (queue, policy, data)}
    for target, said in ((queue, "is the review queue"), (policy, "is the policy file"),
                         (data, "already exists and is not a .csv file")):
        assert main(["export", "--policy", str(policy), "--csv", str(target)]) == 2
        err = capsys.readouterr().err
        assert said in err and "wrote" not in err, err
    assert main(["export", str(tmp_path / "audit.jsonl"), "--csv", str(data)]) == 2  # without --policy too
    assert "not a .csv file" in capsys.readouterr().err
    assert {f: f.read_bytes() for f in kept} == kept
    out = tmp_path / "audit.CSV"
    out.write_text("an earlier export")
    assert main(["export", "--policy", str(policy), "--csv", str(out)]) == 0
    assert "chain_check" in out.read_text() and "an earlier export" not in out.read_text()


def test_audit_commands_exit_2_on_a_missing_or_invalid_policy_as_the_other_commands_do(tmp_path, capsys):
    """Exit 1 from `hguard audit` says the log does not verify; a policy file that is missing or not valid TOML is
    bad usage (2), as `ask`, `monitor` and `review` say it."""
    from hguard.cli.audit import main

    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n[audit\n")
    for policy, said in ((tmp_path / "none.toml", "none.toml"), (bad, "bad.toml")):
        for command in ("verify", "show", "export"):
            argv = [command, "--policy", str(policy)] + (["--csv", str(tmp_path / "o.csv")] if command == "export" else [])
            assert main(argv) == 2, command
            err = capsys.readouterr().err
            assert said in err and err.count("\n") == 1, err


def _anchored(tmp_path, n=3):
    """A keyed, anchored log of ``n`` records and the policy file naming its key and anchor: (log path, anchor path,
    policy path, the AuditLog)."""
    key = tmp_path / "k.key"
    key.write_text("k" * 64)
    key.chmod(0o600)
    (tmp_path / "policy.toml").write_text(f'version = 1\n[audit]\npath = "audit.jsonl"\nanchor = "a.anchor"\n'
                                          f'[integrity]\nkey_file = "{key}"\n')
    log = AuditLog(tmp_path / "audit.jsonl", key=b"k" * 64, anchor=tmp_path / "a.anchor")
    for i in range(n):
        log.append({"x": i + 1})
    return tmp_path / "audit.jsonl", tmp_path / "a.anchor", str(tmp_path / "policy.toml"), log


def test_an_acknowledged_record_cut_short_is_called_evidence_when_the_anchor_holds_it(tmp_path, capsys):
    """New-user trial: verify called a record the anchor held "never acknowledged" and advised `repair` without the
    anchor, which moved the record aside and blamed the recovery record for the cut."""
    path, anchor, policy, _ = _anchored(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # the last record cut in half
    report = verify(path, key=b"k" * 64, anchor=anchor)
    torn = [p for p in report.problems if p.torn]
    assert len(torn) == 1 and torn[0].message.startswith("cut:") and "acknowledged, then cut short" in torn[0].message
    assert "never acknowledged" not in torn[0].message and "Keep the file as evidence" in torn[0].message
    assert any("are not in the log (seq 2..2)" in p.message for p in report.problems)
    # without the anchor the file alone cannot tell: verify says to check with it before repairing
    alone = [p for p in verify(path, key=b"k" * 64).problems if p.torn][0].message
    assert "verify with the writer's anchor" in alone and "--key-file FILE" in alone
    # repair with the policy's anchor refuses it and changes nothing
    assert cli_main(["repair", "--policy", policy]) == 1
    assert path.read_bytes() == data[: len(data) - 40]
    capsys.readouterr()


def test_show_and_export_say_a_cut_record_as_verify_does_and_repair_asks_for_the_anchor(tmp_path, capsys):
    """An auditor's trial: `audit show --policy` and the CSV of `audit export --policy` called a record the anchor held
    "torn ... never acknowledged" and advised `hguard audit repair LOG`, which (without the anchor) moved it aside and
    chained a recovery record saying it was never acknowledged: a false record. They now say what verify says, and
    repair of a log given alone, as rotate, needs --anchor FILE or --no-anchor."""
    path, anchor, policy, _ = _anchored(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # the last record cut in half
    assert cli_main(["show", "--policy", policy]) == 1
    err = capsys.readouterr().err
    assert "line 3: cut:" in err and "acknowledged, then cut short" in err and "never acknowledged" not in err, err
    assert "are not in the log (seq 2..2)" in err  # the rest of what verify found, not only the line
    out_csv = tmp_path / "out.csv"
    assert cli_main(["export", "--policy", policy, "--csv", str(out_csv)]) == 1
    row = list(csv.DictReader(out_csv.open()))[-1]["chain_check"]
    assert row.startswith("line 3 is not a record: cut:") and "never acknowledged" not in row, row
    # without the anchor the file alone cannot tell: show says to verify with it, and repair asks for it
    assert cli_main(["show", str(path), "--key-file", str(tmp_path / "k.key")]) == 1
    err = capsys.readouterr().err
    assert "verify with the writer's anchor" in err and f"hguard audit repair {path} --anchor FILE --key-file FILE" in err
    for argv, said in ((["repair", str(path), "--key-file", str(tmp_path / "k.key")], "or --no-anchor when they keep"),
                       (["repair", "--policy", policy, "--no-anchor"], f"names the anchor {tmp_path / 'a.anchor'}")):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert said in err and "nothing was changed" in err and err.count("\n") == 1, err
    assert cli_main(["repair", str(path), "--anchor", str(anchor), "--key-file", str(tmp_path / "k.key")]) == 1
    capsys.readouterr()
    assert path.read_bytes() == data[: len(data) - 40] and not list(tmp_path.glob("*.torn-*"))  # nothing moved aside
    # the operator's --no-anchor moves it aside, and the recovery record says that no anchor was checked (a fix
    # clone's note: it still read "never acknowledged", as if the log showed it)
    assert cli_main(["repair", str(path), "--no-anchor", "--key-file", str(tmp_path / "k.key")]) == 0
    capsys.readouterr()
    note = [r for r in AuditLog(path, key=(tmp_path / "k.key").read_bytes().strip()) if r["kind"] == "recovery"][-1]
    assert note["anchor_checked"] is False and "no anchor was checked" in note["reason"], note


def test_a_record_that_lost_only_its_newline_is_not_called_missing_and_repair_says_what_it_wrote(tmp_path, capsys):
    """New-user trial: `truncate -s -1` made verify report a present record as torn and missing from the anchor; repair
    restored the newline, appended a recovery record and printed 'nothing moved aside ... no torn last line'."""
    path, anchor, policy, _ = _anchored(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    report = verify(path, key=b"k" * 64, anchor=anchor)
    assert not report.ok and report.n_records == 3 and report.head_seq == 2
    (problem,) = report.problems
    assert problem.torn and problem.seq == 2 and "lost only its trailing newline" in problem.message
    assert "nothing is missing" in problem.message and "the anchor holds its head" in problem.message
    # a review: show left the record verify counts out, and export wrote it as "line 3 is not a record: ... a
    # complete record" with empty fields; both give it, with its problem
    assert cli_main(["show", "--policy", policy, "--json"]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(x)["seq"] for x in out.splitlines()] == [0, 1, 2], out
    assert "line 3: it lost only its trailing newline" in err
    out_csv = tmp_path / "o.csv"
    assert cli_main(["export", "--policy", policy, "--csv", str(out_csv)]) == 1
    capsys.readouterr()
    with open(out_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seq"], r["hash"]) for r in rows] == [(str(r["seq"]), r["hash"]) for r in show(path, problems=[], check=report)]
    assert len(rows) == 3 and rows[-1]["chain_check"].startswith("it lost only its trailing newline"), rows[-1]
    assert cli_main(["repair", "--policy", policy]) == 0
    out = capsys.readouterr().out
    assert "wrote a recovery record" in out and "newline_restored" in out and "no torn last line" not in out
    assert verify(path, key=b"k" * 64, anchor=anchor).ok
    assert cli_main(["repair", "--policy", policy]) == 0 and "nothing changed" in capsys.readouterr().out


def test_show_and_export_take_a_period_and_export_a_domain(tmp_path, capsys):
    """An auditor's trial: the records of one period and domain had to be filtered by hand."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=None)
    for i, domain in enumerate(["geo", "chem", "geo", "geo"]):
        log.append({"domain": domain, "n": i}, kind="decision")
        time.sleep(0.002)
    times = [r["time"] for r in AuditLog(path)]
    since, until = times[1], times[3]
    assert cli_main(["show", str(path), "--since", since, "--until", until, "--json"]) == 0
    assert [json.loads(x)["n"] for x in capsys.readouterr().out.splitlines()] == [1, 2]
    out = tmp_path / "o.csv"
    assert cli_main(["export", str(path), "--csv", str(out), "--domain", "geo", "--since", since]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["n"] for r in rows] == ["2", "3"] and all(r["chain_check"] == "ok" for r in rows)
    assert cli_main(["export", str(path), "--csv", str(out), "--since", "2999-01-01"]) == 0
    assert out.read_text().count("\n") == 1  # the header only
    capsys.readouterr()
    assert cli_main(["show", str(path), "--since", "last week"]) == 2
    err = capsys.readouterr().err
    assert "--since 'last week' is not a date; pass an ISO date or time, e.g. 2026-12-01" in err and err.count("\n") == 1


def test_show_and_export_check_their_options_before_verifying_the_log(tmp_path, capsys, monkeypatch):
    """A review: `audit show --last -1` or a bad --since waited for the whole chain to verify (5.8 s on 50,000
    records) before saying the option was wrong."""
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=None).append({"n": 1}, kind="decision")
    from hguard.cli import audit as audit_cli

    verified: list[str] = []
    real = audit_cli.verify

    def counted(*a, **kw):
        verified.append(str(a[0]))
        return real(*a, **kw)

    monkeypatch.setattr(audit_cli, "verify", counted)
    out = str(tmp_path / "o.csv")
    for argv, said in ((["show", str(path), "--last", "-1"], "last (--last) must be a non-negative integer, got -1"),
                       (["show", str(path), "--since", "yesterday-ish"], "--since 'yesterday-ish' is not a date"),
                       (["show", str(path), "--until", "soon"], "--until 'soon' is not a date"),
                       (["export", str(path), "--csv", out, "--since", "2026-13-01"], "--since '2026-13-01' is not a date")):
        assert cli_main([*argv, "--no-key"]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    assert verified == []  # refused before the chain was read
    assert cli_main(["show", str(path), "--last", "1", "--no-key"]) == 0 and verified == [str(path)]


def test_a_since_not_before_the_until_is_refused_naming_both(tmp_path, capsys):
    """A bad-input trial: `hguard audit show --since 2026-12-05 --until 2026-12-01` said "no records in LOG" of a log
    that holds records of those days (the two swapped): refused in one line naming both, before the log is read."""
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=None).append({"n": 1}, kind="decision")
    out = str(tmp_path / "o.csv")
    for argv, since, until in ((["show", str(path)], "2026-12-05", "2026-12-01"),
                               (["show", str(path)], "2026-12-01T10:00", "2026-12-01T10:00"),  # [t, t) holds no time
                               (["export", str(path), "--csv", out], "2026-12-05", "2026-12-01")):
        assert cli_main([*argv, "--since", since, "--until", until, "--no-key"]) == 2
        err = capsys.readouterr().err
        assert f"--since {since} is not before --until {until}" in err and "swap them" in err and err.count("\n") == 1
        assert "no records" not in err
    assert not (tmp_path / "o.csv").exists()
    assert cli_main(["show", str(path), "--since", "2000-01-01", "--until", "2999-01-01", "--no-key", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 1


def test_verify_says_when_time_stamps_run_backwards(tmp_path, monkeypatch):
    """An SRE's trial: a clock set back (a VM restored from a snapshot) wrote records stamped before the ones above
    them, and `hguard audit verify` said only OK; a reader ordering the records by time misreads them."""
    from datetime import datetime as real_datetime
    from datetime import timedelta

    import hguard.audit as audit_mod
    from hguard.audit import AuditLog, verify

    log = AuditLog(tmp_path / "a.jsonl")
    log.append({"n": 1}, kind="decision")
    log.append({"n": 2}, kind="decision")
    assert not any("backwards" in c for c in verify(log.path).checked_against)

    class SetBack(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.now(tz) - timedelta(hours=3)

    monkeypatch.setattr(audit_mod, "datetime", SetBack)
    log.append({"n": 3}, kind="decision")
    log.append({"n": 4}, kind="decision")
    rep = verify(log.path)
    assert rep.ok  # the chain holds: no record was edited
    assert "time stamps run backwards at 1 record(s), first at line 3" in rep.summary()
    assert "after line 2" not in rep.summary() and "on line 2" in rep.summary()


def test_a_deleted_anchor_is_not_recreated_under_a_log_with_records(tmp_path):
    """An auditor's trial: records cut off the end and the anchor deleted; the next writer (the monitor, a guard's
    start) silently started a new anchor at the log's end, and `verify --policy` then said OK on the cut log."""
    from hguard.audit import AuditLog, verify
    from hguard.errors import AuditIntegrityError

    anchor = tmp_path / "audit.anchor"
    log = AuditLog(tmp_path / "a.jsonl", anchor=anchor)
    for n in range(5):
        log.append({"n": n}, kind="decision")
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(lines[:-2]))  # the last two records cut ...
    anchor.unlink()  # ... and the anchor that would show it deleted
    with pytest.raises(AuditIntegrityError, match=r"anchor .* does not exist, but audit log .* holds records \(up to seq 2\).*touch"):
        AuditLog(log.path, anchor=anchor).append({"n": 9}, kind="decision")
    assert len(log.path.read_bytes().splitlines()) == 3 and not anchor.exists()  # nothing written
    anchor.touch()  # anchored from the next record on, on purpose
    AuditLog(log.path, anchor=anchor).append({"n": 9}, kind="decision")
    rep = verify(log.path, anchor=anchor)
    assert rep.ok and "its first head is seq 3: the 3 record(s) of this file before it are not covered by it" in rep.summary()
    fresh = AuditLog(tmp_path / "new.jsonl", anchor=tmp_path / "new.anchor")  # a new log starts its anchor as before
    fresh.append({"n": 0}, kind="decision")
    assert "not covered" not in verify(fresh.path, anchor=tmp_path / "new.anchor").summary()
    # a review: a first head that failed (a full disk, a crash between the two writes) left a log with a record and no
    # anchor, and every later write, the record saying the answer was not delivered included, was refused for good.
    # The anchor is now made before a new log's first record, so a failed first head leaves it there, empty
    started = AuditLog(tmp_path / "s.jsonl", anchor=tmp_path / "s.anchor")
    started.check_writable()  # a guard's start on a new log makes its anchor
    assert (tmp_path / "s.anchor").read_bytes() == b"" and not started.path.exists()
    started._write_anchor = lambda seq, digest: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    with pytest.raises(OSError):
        started.append({"n": 0}, kind="decision")
    del started._write_anchor
    started.append({"n": 1}, kind="answer_not_delivered")  # space again: the writer goes on
    assert [r["seq"] for r in AuditLog(started.path)] == [0, 1]


def test_the_verify_command_named_runs_as_printed_for_a_path_with_a_space(tmp_path, capsys):
    """A review: a log in "my logs/" was named unquoted, and the command as printed failed ("unrecognized arguments")."""
    import shlex

    folder = tmp_path / "my logs"
    folder.mkdir()
    path = folder / "audit.jsonl"
    _make_log(path, 3)
    lines = _lines(path)
    _edit_keep_hash(lines, 1)
    _write_lines(path, lines)
    assert cli_main(["show", str(path)]) == 1
    err = capsys.readouterr().err
    command = err.split("`")[1]
    assert shlex.split(command) == ["hguard", "audit", "verify", str(path)], command


def test_verify_names_a_record_written_and_never_anchored_between_anchored_ones(tmp_path):
    """A platform team's trial: a guard killed after its accept was written and before its head reached the anchor;
    after a restart and more requests, verify said OK and "each of the 3 heads ... is in it", and the accept nobody
    received read as any other. Each head is anchored under the log's lock, so a record between anchored ones
    without a head was never acknowledged."""
    from hguard.audit import AuditLog, verify

    anchor = tmp_path / "audit.anchor"
    log = AuditLog(tmp_path / "a.jsonl", anchor=anchor)
    log.append({"route": "accept"}, kind="decision")
    assert "have no head" not in verify(log.path, anchor=anchor).summary()
    AuditLog(log.path).append({"route": "accept"}, kind="decision")  # written; its writer stopped before anchoring it
    for route in ("accept", "review"):
        log.append({"route": route}, kind="decision")
    rep = verify(log.path, anchor=anchor)
    said = rep.summary()
    assert rep.ok and "1 decision record(s) between its heads have no head in it (seq 1 (accept))" in said, said
    assert "never acknowledged" in said
    # a review: a resumed verify (the monitor's) names it too, and says nothing of records before the first head
    first = verify(log.path, anchor=anchor, start=verify(log.path, anchor=anchor).resume)
    assert "before it are not covered" not in first.summary()
    AuditLog(log.path).append({"route": "accept"}, kind="decision")
    log.append({"route": "accept"}, kind="decision")
    resumed = verify(log.path, anchor=anchor, start=rep.resume).summary()
    assert "(seq 4 (accept))" in resumed and "before it are not covered" not in resumed, resumed
    # a review: records of writers that do not hold the anchor (a verdict given with --audit, a framework
    # callback's llm_call) are no unacknowledged decisions
    AuditLog(log.path).append({"run_id": "r1"}, kind="llm_call")
    log.append({"route": "review"}, kind="decision")
    assert "2 decision record(s) between its heads have no head in it (seq 1 (accept), seq 4 (accept))" in verify(
        log.path, anchor=anchor).summary()


def test_the_readme_puts_the_audit_log_in_a_dataframe_each_row_marked_by_the_check(tmp_path, monkeypatch):
    """A Jupyter trial: a notebook user had no documented Python way to read the log into a DataFrame checked
    (`pd.DataFrame(guard.audit.history())` gives the records unverified). The README's recipe marks each row as
    `hguard audit export --policy P --csv -` does, a keyed, anchored log's MACs and anchor checked."""
    pytest.importorskip("pandas")
    from types import SimpleNamespace

    from hguard.policy import load_policy

    path, anchor, policy, log = _anchored(tmp_path)
    monkeypatch.delenv("HGUARD_KEY_FILE", raising=False)
    monkeypatch.delenv("HGUARD_KEY", raising=False)
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("**The audit log in a DataFrame**")) + len("```python\n")
    snippet = text[start:text.index("```", start)]
    guard = SimpleNamespace(audit=log, policy=load_policy(policy))

    def run() -> tuple[Any, list, Any]:
        printed: list = []
        space: dict[str, Any] = {"guard": guard, "print": printed.append}
        exec(snippet, space)  # noqa: S102 (the README's own code)
        return space["df"], printed, space["report"]

    df, printed, report = run()
    assert printed == [True] and list(df["x"]) == ["1", "2", "3"] and set(df["chain_check"]) == {"ok"}
    assert report.key_id is not None and report.n_macs == 3 and str(anchor) in " ".join(report.checked_against)
    lines = path.read_text(encoding="utf-8").splitlines()
    edited = json.loads(lines[1])
    edited["x"] = 20
    lines[1] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    df, printed, _ = run()
    assert printed == [False] and list(df["x"]) == ["1", "20", "3"]
    assert df["chain_check"][0] == "ok" and "edited" in df["chain_check"][1], list(df["chain_check"])


class _BreakerLog(AuditLog):
    """A user's audit sink with a circuit breaker: its first failure comes after the record is written (its copy to a
    database failing), the error kept; while open, the kept error is raised again before anything is written."""

    kept: BaseException | None = None
    fail_before: BaseException | None = None  # raised before writing from the start (a breaker opened elsewhere)

    def append(self, record, *, kind="decision"):
        if self.kept is not None or self.fail_before is not None:
            raise self.kept or self.fail_before  # open: nothing written
        receipt = super().append(record, kind=kind)
        if kind == "mirrored":
            self.kept = ConnectionError("acme-db: connection refused")
            raise self.kept
        return receipt


def test_append_written_counts_only_a_receipt_of_this_record(tmp_path, monkeypatch):
    """append_written took any ``receipt`` on the sink's error as this record's, and put one there itself: a sink
    raising again an error it kept from an earlier record, before writing, was read as having written the new record
    (a verdict committed, an llm_call record said written, with the earlier record's receipt). Only a receipt of this
    record, newer than any the log held for its id before, counts; the error is left as it was raised."""
    from hguard.audit import append_written

    log = _BreakerLog(tmp_path / "a.jsonl")
    first, failed = append_written(log, {"x": 1}, kind="mirrored")
    assert failed is log.kept and log.receipt_of(first.id) == first
    assert not hasattr(failed, "receipt")  # nothing a later call could read as its own
    failed.receipt = first  # a sink (or anything) putting the earlier record's receipt there: still not this record's
    with pytest.raises(ConnectionError) as info:
        append_written(log, {"x": 2}, kind="mirrored")
    assert info.value is log.kept and [r["x"] for r in AuditLog(log.path)] == [1]
    # an id written before, appended again while the sink raises before writing: the earlier receipt is no proof
    log = _BreakerLog(tmp_path / "b.jsonl")
    append_written(log, {"request_id": "req-1", "x": 1}, kind="note")
    log.fail_before = ConnectionError("acme-db: breaker open")
    with pytest.raises(ConnectionError, match="breaker open"):
        append_written(log, {"request_id": "req-1", "x": 2}, kind="note")
    assert [r["x"] for r in AuditLog(log.path)] == [1]
    # the log's own anchor error names the record it wrote: this record when raised now, no later one when kept
    (tmp_path / "anchor").mkdir()
    log = _BreakerLog(tmp_path / "c.jsonl", anchor=tmp_path / "anchor" / "heads.jsonl")
    real = AuditLog._write_anchor

    def full(self, seq, digest):
        raise AuditError(f"cannot write the audit anchor {self.anchor}: No space left on device")

    monkeypatch.setattr(AuditLog, "_write_anchor", full)
    written, anchor_error = append_written(log, {"x": 1}, kind="note")
    assert isinstance(anchor_error, AuditError) and anchor_error.receipt == written
    monkeypatch.setattr(AuditLog, "_write_anchor", real)
    log.fail_before = anchor_error
    with pytest.raises(AuditError, match="No space left"):
        append_written(log, {"x": 2}, kind="note")
    assert [r["x"] for r in AuditLog(log.path)] == [1]


def test_a_folder_fsync_that_fails_names_what_it_was_for(tmp_path, monkeypatch):
    """A folder fsync failing (EIO) while the audit anchor was created said "to make the new audit log's name durable",
    the audit log's words, for the anchor's folder: each caller names its own file."""
    real_fsync = os.fsync
    failing = {"dir": None}

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode) and os.path.samestat(os.fstat(fd), os.stat(failing["dir"])):
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    (tmp_path / "anchor").mkdir()
    failing["dir"] = tmp_path / "anchor"
    with pytest.raises(AuditError, match=r"cannot fsync directory .*anchor to make the new audit anchor heads\.jsonl "
                                         r"durable: \[Errno 5\]"):
        AuditLog(tmp_path / "audit.jsonl", anchor=tmp_path / "anchor" / "heads.jsonl").append({"x": 1}, kind="note")
    (tmp_path / "logs").mkdir()
    failing["dir"] = tmp_path / "logs"
    with pytest.raises(AuditError, match=r"to make the new audit log audit\.jsonl durable: \[Errno 5\]"):
        AuditLog(tmp_path / "logs" / "audit.jsonl").append({"x": 1}, kind="note")
    failing["dir"] = tmp_path / "elsewhere"
    failing["dir"].mkdir()
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"x": 1}, kind="note")
    with open(log.path, "ab") as f:
        f.write(b'{"torn')  # a write cut short: the next append saves it aside
    failing["dir"] = tmp_path
    with pytest.raises(AuditError, match=r"to make the torn tail of audit\.jsonl saved as audit\.jsonl\.torn-\S+ "
                                         r"durable: \[Errno 5\]"):
        log.append({"x": 2}, kind="note")


def test_the_listing_shows_a_risk_that_is_no_number_as_written():
    """`hguard audit show` printed a record's risk of true as "risk=1.0000", and stopped with OverflowError on one of
    10**400 (a hand-edited, re-chained log); each is now shown as written, a number as before."""
    from hguard.cli.audit import _format_record

    assert _format_record({"kind": "decision", "risk": 0.25}).endswith("risk=0.2500")
    assert _format_record({"kind": "decision", "risk": True}).endswith("risk=True")
    assert "risk=1000" in _format_record({"kind": "decision", "risk": 10**400})


def test_written_record_reads_back_only_a_record_this_object_wrote_and_as_written(tmp_path):
    """AuditLog.written_record: the look-up an adapter confirms a response's decision metadata with (HGuardEvaluator).
    The record as the log holds it when this object wrote it (records written after it by another writer read past);
    None for an id it did not write, one another AuditLog object wrote, and a record edited since."""
    path = tmp_path / "a.jsonl"
    log, other = AuditLog(path, key=None), AuditLog(path, key=None)
    first = log.append({"route": "accept", "answer": "paris"}, kind="decision")
    theirs = other.append({"route": "review", "answer": "rome"}, kind="decision")
    log.append({"route": "abstain", "answer": "lyon"}, kind="decision")
    rec = log.written_record(first.id)
    assert rec is not None and rec["answer"] == "paris" and rec["hash"] == first.hash and rec["seq"] == first.seq
    assert log.written_record(theirs.id) is None and other.written_record(theirs.id)["answer"] == "rome"
    assert log.written_record("no-such-id") is None and AuditLog(path, key=None).written_record(first.id) is None
    # edited after it was written (its answer changed, hash recomputed or not): no longer the record written
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if json.loads(line)["id"] == first.id)
    edited = json.loads(lines[at])
    edited["answer"] = "berlin"
    lines[at] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")
    assert log.written_record(first.id) is None


@pytest.mark.parametrize("bad", ["x", -1, float("nan"), float("inf") * -1, True, 10 ** 400],
                         ids=["str", "negative", "nan", "-inf", "bool", "huge"])
def test_a_lock_timeout_that_is_not_seconds_is_refused_naming_it(tmp_path, bad):
    """A bad-input trial: AuditLog(path, lock_timeout="x") failed with a bare "could not convert string to float", and
    -1 or NaN were taken (a write gave up on a busy log at once). One line names the value and what it takes."""
    with pytest.raises(InputError) as info:
        AuditLog(tmp_path / "audit.jsonl", lock_timeout=bad)
    assert str(info.value).startswith("lock_timeout must be a number of seconds, 0 or more, got ")
    assert str(info.value).endswith("; e.g. 60") and not (tmp_path / "audit.jsonl").exists()
    assert AuditLog(tmp_path / "audit.jsonl", lock_timeout=0).lock_timeout == 0.0


@pytest.mark.parametrize("bad", ["no", 1, None])
def test_a_redact_that_is_not_a_bool_is_refused_naming_it(tmp_path, bad):
    """AuditLog(path, redact="no") redacted (read with bool()): refused in one line naming the value and the fix."""
    with pytest.raises(InputError, match=rf"^AuditLog: redact={re.escape(repr(bad))} is not True or False"):
        AuditLog(tmp_path / "audit.jsonl", redact=bad)
    assert AuditLog(tmp_path / "audit.jsonl", redact=False).redact is False
