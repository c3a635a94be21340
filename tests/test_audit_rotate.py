"""Rotating the audit log: one chain across the archive and the fresh file, writers that go on without a
restart, the monitor's tightenings carried over, the review queue checked first, and tampering still caught."""

from __future__ import annotations

import multiprocessing
import os
import re
import shlex
import stat
from pathlib import Path

import pytest

from hguard.audit import CONTINUATION, AuditLog, rotate, verify
from hguard.errors import AuditError, AuditIntegrityError, InputError
from hguard.monitor import MonitorState, policy_id, run_monitor, write_state
from hguard.review.queue import ReviewQueue

from test_monitor import _deploy, _pol

KEY = b"k" * 32


def _append_from_another_process(path: str, n: int) -> None:
    log = AuditLog(path, key=KEY)
    for i in range(n):
        log.append({"x": i, "pid": os.getpid()})


def test_rotation_archives_beside_the_log_and_one_chain_verifies_across(tmp_path):
    (tmp_path / "anc").mkdir()
    path, anchor = tmp_path / "audit.jsonl", tmp_path / "anc" / "a.anchor"
    a, b = AuditLog(path, key=KEY, anchor=anchor), AuditLog(path, key=KEY, anchor=anchor)
    for i in range(3):
        a.append({"x": i})
    b.append({"y": 0})
    done = rotate(path, key=KEY, anchor=anchor)
    arch = Path(done.archive)
    assert arch.name == "audit.0-3.jsonl" and (done.first_seq, done.last_seq, done.receipt.seq) == (0, 3, 4)
    assert stat.S_IMODE(arch.stat().st_mode) == 0o440  # read-only
    first = next(iter(AuditLog(path)))
    assert first["kind"] == CONTINUATION and first["archive"] == arch.name and first["monitor_states"] == {}
    # writers of the archived file go on in the fresh one, no restart: their last record is found in the archive
    b.append({"y": 1})
    a.append({"x": 3})
    rotate(path, key=KEY, anchor=anchor)
    a.append({"x": 4})
    assert sorted(p.name for p in tmp_path.glob("audit*")) == ["audit.0-3.jsonl", "audit.4-6.jsonl", "audit.jsonl"]
    whole = verify(path, key=KEY, anchor=anchor, archives=True)
    assert whole.ok and whole.n_records == 9 and whole.head_seq == 8, whole.summary()
    assert "head(s) of seq below 7 were checked in its archives" in whole.summary(), whole.summary()
    # the anchor's heads counted whole (an auditor's trial: "each of the 1 heads in the anchor" of 65)
    assert f"each of the 9 heads in the anchor {anchor} is in it or its archives;" in whole.summary(), whole.summary()
    assert [Path(x).name for x in whole.archives] == ["audit.0-3.jsonl", "audit.4-6.jsonl"]
    # an archive read on its own with the anchor (as `audit show/export --policy` do): the later heads are the
    # files' that continue it, not records cut off its end
    for name, later in (("audit.0-3.jsonl", "audit.4-6.jsonl"), ("audit.4-6.jsonl", "audit.jsonl")):
        own = verify(tmp_path / name, key=KEY, anchor=anchor)
        assert own.ok and f"are those of {later}, which continues it" in own.summary(), own.summary()
    alone = verify(path, key=KEY, anchor=anchor)
    assert alone.ok and alone.n_records == 2 and "not checked here" in alone.summary()
    assert f"each of the 2 heads of the anchor {anchor} (of the 9 it holds) checked here is in it" in alone.summary()
    # a record seen through the history comes in chain order
    seen: list[int] = []
    verify(path, key=KEY, archives=True, on_record=lambda r: seen.append(r["seq"]))
    assert seen == list(range(9))
    # an archive edited (even rewritten with the key's MAC) or taken away fails the whole chain, naming it
    os.chmod(arch, 0o640)
    arch.write_text(arch.read_text().replace('"x":1', '"x":7'))
    with pytest.raises(AuditIntegrityError, match="audit.0-3.jsonl.*changed since"):  # nor rotated on
        rotate(path, key=KEY, anchor=anchor)
    rep = verify(path, key=KEY, archives=True)
    assert not rep.ok and any("archive audit.0-3.jsonl" in p.message and "edited" in p.message for p in rep.problems)
    assert any("changed since" in p.message for p in rep.problems)
    arch.unlink()
    rep = verify(path, key=KEY, archives=True)
    assert not rep.ok and "audit.0-3.jsonl" in rep.summary() and "not beside it" in rep.summary()
    # nothing to archive, a kind only the log writes, a stale key: refused, nothing changed
    AuditLog(tmp_path / "new.jsonl", key=KEY).append({"x": 0})
    rotate(tmp_path / "new.jsonl", key=KEY)
    with pytest.raises(InputError, match="nothing to archive"):  # only the record that opens the fresh file
        rotate(tmp_path / "new.jsonl", key=KEY)
    with pytest.raises(InputError, match="the log's own"):
        a.append({"x": 0}, kind=CONTINUATION)
    with pytest.raises(AuditError):
        rotate(path, key=b"z" * 32)
    assert verify(path, key=KEY).ok


@pytest.mark.timeout(60)
@pytest.mark.parametrize("edited", ["audit.jsonl", "audit.4-6.jsonl"])
def test_archives_naming_each_other_in_a_loop_are_a_broken_chain_not_a_hang(tmp_path, edited):
    """Each walker of the archives (verify, the archives' hash check, the history, a writer, rotation) stops at a
    first record that names a file at or above its own seq: edited first records cannot make them go round."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(4):
        log.append({"x": i})
    rotate(path, key=KEY)
    log.append({"x": 4})
    log.append({"x": 5})
    rotate(path, key=KEY)
    victim = tmp_path / edited  # the log's first record names itself, or the older archive's names the log
    os.chmod(victim, 0o640)
    lines = victim.read_text().splitlines(keepends=True)
    named = "audit.4-6.jsonl" if edited == "audit.jsonl" else "audit.0-3.jsonl"
    victim.write_text(lines[0].replace(f'"archive":"{named}"', '"archive":"audit.jsonl"') + "".join(lines[1:]))
    rep = verify(path, key=KEY, archives=True)
    assert not rep.ok and ("not below" in rep.summary() or "edited" in rep.summary()), rep.summary()
    from hguard._audit_verify import archive_problems

    assert archive_problems(path)
    with pytest.raises(AuditIntegrityError):
        list(AuditLog(path).history())
    with pytest.raises(AuditError):
        rotate(path, key=KEY)


def test_show_by_id_reads_the_archives_a_rotated_log_continues(tmp_path):
    """A decision made before the rotation, its verdict after: `show --id` printed only the verdict, and nothing
    said that the decision was in an archive."""
    from hguard.audit import show

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    decision = log.append({"route": "review", "question": "q"}, kind="decision").id
    log.append({"x": 1})
    rotate(path)
    log.append({"x": 2})
    rotate(path)
    AuditLog(path).append({"decision_audit_id": decision, "verdict": "correct"}, kind="review_verdict")
    assert [r["kind"] for r in show(path, record_id=decision)] == ["decision", "review_verdict"]
    assert [r.get("x") for r in show(path)] == [None, None]  # the rest reads the log alone, as before


def test_processes_writing_through_a_rotation_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=KEY).append({"start": 1})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_from_another_process, args=(str(path), 60)) for _ in range(2)]
    for p in procs:
        p.start()
    rotated = 0
    while any(p.is_alive() for p in procs) and rotated < 3:
        try:
            rotate(path, key=KEY)
            rotated += 1
        except InputError:  # nothing new since the last rotation yet
            pass
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rep = verify(path, key=KEY, archives=True)
    assert rep.ok and rep.n_records == 1 + 120 + rotated, rep.summary()
    assert len(rep.archives) == rotated >= 1


def test_a_tightening_survives_the_rotation_and_the_monitor_counts_the_archives(tmp_path):
    policy = _pol(tmp_path, spot_check_rate=0.5, on_breach="review")
    log, queue = _deploy(tmp_path, policy, 80, halluc_rate=0.6)
    before = run_monitor(policy)["domains"]["geo"]
    assert before["state"]["state"] == "tightened"
    state = MonitorState(policy.monitor.state, policy.audit.path)
    assert state.get("geo").state == "tightened"  # a running guard's view, replayed up to here
    done = rotate(policy.audit.path, key=None, queue=policy.review.queue)
    assert next(iter(AuditLog(policy.audit.path)))["monitor_states"]["geo"]["state"] == "tightened"
    # the running guard follows the rotation (the state file rewritten makes it replay): still tightened, and
    # a guard started now reads the fresh file alone, the state file gone: still tightened
    write_state(Path(policy.monitor.state), {}, policy_id(policy))
    held = state.get("geo")
    assert held.state == "tightened" and "cannot be replayed" not in (held.reason or ""), held.reason
    # two rotations between two replays of a running guard: it follows both (it held everything for review)
    for i in range(2):
        AuditLog(policy.audit.path).append({"x": i})
        rotate(policy.audit.path, key=None)
    write_state(Path(policy.monitor.state), {}, policy_id(policy))
    held = state.get("geo")
    assert held.state == "tightened" and "cannot be replayed" not in (held.reason or ""), held.reason
    Path(policy.monitor.state).unlink()
    assert MonitorState(policy.monitor.state, policy.audit.path).get("geo").state == "tightened"
    # the monitor reads the archive too: the same evidence as before the rotation, queue items found there
    after = run_monitor(policy)["domains"]["geo"]
    assert after["spot_checks"]["reviewed"] == before["spot_checks"]["reviewed"] > 20
    assert after["state"]["state"] == "tightened" and verify(policy.audit.path, archives=True).ok
    assert Path(done.archive).exists()


def test_rotation_waits_for_the_review_queue_to_hold_what_the_log_promised(tmp_path):
    policy = _pol(tmp_path)
    log = AuditLog(policy.audit.path)
    rec = log.append({"domain": "geo", "route": "review", "question": "q", "answer": "a"}, kind="decision")
    with pytest.raises(AuditError, match=f"not in the review queue .*{rec.id}.*start a guard on this policy"):
        rotate(policy.audit.path, key=None, queue=policy.review.queue)
    assert not list(tmp_path.glob("audit.*-*.jsonl"))  # nothing rotated
    ReviewQueue(policy.review.queue).enqueue({"audit_id": rec.id, "question": "q", "answer": "a", "domain": "geo"})
    assert rotate(policy.audit.path, key=None, queue=policy.review.queue).last_seq == 0


def test_rotations_leave_no_lock_behind_per_archived_file(tmp_path):
    """The per-file thread locks (keyed by device and inode) gained an entry per rotation, each a new file, and
    kept every one for the life of the process."""
    from hguard import _audit_files

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=None)
    before = len(_audit_files._THREAD_LOCKS)
    for i in range(5):
        log.append({"x": i})
        rotate(path, key=None)
    assert len(_audit_files._THREAD_LOCKS) <= before
    assert verify(path, key=None).ok


def test_a_log_that_does_not_verify_is_not_rotated(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=None)
    for i in range(3):
        log.append({"x": i})
    path.write_text(path.read_text().replace('"x":1', '"x":5'))
    with pytest.raises(AuditIntegrityError, match="does not verify"):
        rotate(path, key=None)
    assert not list(tmp_path.glob("audit.*-*.jsonl"))


def test_cli_rotates_and_verifies_with_the_archives(tmp_path, capsys):
    from hguard.cli.audit import main

    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('version = 1\n[audit]\npath = "audit.jsonl"\n[review]\nqueue = "q.sqlite3"\n')
    log = AuditLog(tmp_path / "audit.jsonl", key=None)
    log.append({"x": 1})
    assert main(["rotate", "--policy", str(policy_file), "--no-key"]) == 0
    out = capsys.readouterr().out
    assert "archived seq 0..0" in out and "audit.0-0.jsonl" in out
    # the verify it names checks as this run did: with the policy (its key and anchor) and --no-key given (a legal
    # team's trial: a hint a review or audit command printed left out --policy, and ran on other files pasted)
    (hint,) = re.findall(r"`(hguard audit verify [^`]+)`", out)
    assert shlex.split(hint)[3:] == [str(tmp_path / "audit.jsonl"), "--policy", str(policy_file), "--no-key"]
    assert main(shlex.split(hint)[2:]) == 0
    capsys.readouterr()
    # a quiet period: nothing to archive is said, and is not a failure (exit 0, which a cron job does not alert on)
    assert main(["rotate", "--policy", str(policy_file), "--no-key"]) == 0
    assert "nothing to archive; the log is left as it is" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("audit.*-*.jsonl")) == ["audit.0-0.jsonl"]
    log.append({"x": 2})
    assert main(["verify", str(tmp_path / "audit.jsonl"), "--no-key"]) == 0
    assert "1 archive(s): audit.0-0.jsonl" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "audit.jsonl"), "--csv", str(tmp_path / "a.csv"), "--no-key"]) == 0
    capsys.readouterr()
    (tmp_path / "audit.0-0.jsonl").unlink()
    assert main(["verify", str(tmp_path / "audit.jsonl"), "--no-key"]) == 1
    assert main(["verify", str(tmp_path / "audit.jsonl"), "--no-key", "--this-file-only"]) == 0
    # show and export check the chain with its archives too: the rows are written, each saying what is missing
    capsys.readouterr()
    assert main(["export", str(tmp_path / "audit.jsonl"), "--csv", str(tmp_path / "b.csv"), "--no-key"]) == 1
    assert "audit.0-0.jsonl" in capsys.readouterr().err and "not beside it" in (tmp_path / "b.csv").read_text()
    assert main(["show", str(tmp_path / "audit.jsonl"), "--no-key"]) == 1
    assert "not beside it" in capsys.readouterr().err


def test_an_answer_held_before_the_rotation_is_reviewed_and_exported_after_it(tmp_path):
    from hguard.review import export_reviewed

    log = AuditLog(tmp_path / "audit.jsonl", key=None)
    queue = ReviewQueue(tmp_path / "q.sqlite3", audit=log)
    rec = log.append({"domain": "geo", "route": "review", "question": "Capital of Peru?", "answer": "Lima"},
                     kind="decision")
    item = queue.enqueue({"audit_id": rec.id, "question": "Capital of Peru?", "answer": "Lima", "domain": "geo"})
    rotate(log.path, key=None, queue=queue.path)
    log.append({"x": 1})
    queue.decide(item, verdict="correct", reviewer="ana")  # its decision is in the archive
    assert [r["kind"] for r in log][-1] == "review_verdict"
    summary = export_reviewed(queue, tmp_path / "rows.jsonl")
    assert summary.n_items == 1 and not summary.skipped, summary
    # a verdict edited in the log (or an archive) is not exported: the log must verify
    text = log.path.read_text()
    log.path.write_text(text.replace('"verdict":"correct"', '"verdict":"hallucinated"'))
    assert log.path.read_text() != text
    from hguard.errors import DataError

    with pytest.raises(DataError, match="does not verify.*nothing was exported"):
        export_reviewed(queue, tmp_path / "rows2.jsonl")
    log.path.write_text(text)
    # an archive taken away: the verdict cannot be checked against its decision, and says where to look
    item2 = queue.enqueue({"audit_id": rec.id + "x", "question": "q", "answer": "a", "domain": "geo"})
    Path(tmp_path / "audit.0-0.jsonl").unlink()
    with pytest.raises(AuditIntegrityError, match="audit.0-0.jsonl.*not beside it"):
        queue.decide(item2, verdict="correct", reviewer="ana")


def test_a_guard_fails_closed_on_an_archive_taken_away_or_cut(tmp_path):
    """A guard reads a rotated log's fresh file alone (the states are carried), but the archives it continues
    must be beside it as archived: one taken away (or cut) fails closed, as a log cut back does."""
    path, state = tmp_path / "audit.jsonl", tmp_path / "monitor-state.json"
    log = AuditLog(path, key=KEY)
    for i in range(3):
        log.append({"x": i})
    arch = Path(rotate(path, key=KEY).archive)
    assert MonitorState(state, path, key=KEY).get("geo") is None  # nothing held
    moved = arch.rename(tmp_path / "elsewhere.jsonl")
    held = MonitorState(state, path, key=KEY).get("geo")
    assert held.state == "tightened" and held.accept_below == 0.0 and "not beside it" in held.reason, held.reason
    moved.rename(arch)
    assert MonitorState(state, path, key=KEY).get("geo") is None
    os.chmod(arch, 0o640)
    with open(arch, "r+b") as f:
        f.truncate(arch.stat().st_size - 10)
    held = MonitorState(state, path, key=KEY).get("geo")
    assert held.state == "tightened" and "changed since" in held.reason, held.reason
    # a guard already running when an archive is taken away holds too, within a second (no replay is needed)
    import time

    os.chmod(arch, 0o640)
    arch.unlink()
    log2 = AuditLog(tmp_path / "b.jsonl", key=KEY)
    log2.append({"x": 0})
    arch2 = Path(rotate(tmp_path / "b.jsonl", key=KEY).archive)
    running = MonitorState(tmp_path / "b-state.json", tmp_path / "b.jsonl", key=KEY)
    assert running.get("geo") is None
    arch2.rename(tmp_path / "away.jsonl")
    time.sleep(1.1)
    held = running.get("geo")
    assert held is not None and held.state == "tightened" and "not beside it" in held.reason, held


def test_a_rotation_on_a_full_disk_says_nothing_was_rotated_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    log = AuditLog(tmp_path / "audit.jsonl", key=None)
    log.append({"x": 1})
    before = sorted(p.name for p in tmp_path.iterdir())
    real_write = os.write

    def full(fd, data):  # the fresh log's first record finds no room
        if ".rotating-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(AuditError, match=r"cannot archive audit log .*No space left on device.*nothing was rotated"):
        log.rotate()
    monkeypatch.setattr(os, "write", real_write)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .rotating- file left behind
    assert verify(log.path).ok and log.rotate().first_seq == 0


def test_the_rotate_refusal_names_the_policys_key_and_anchor_and_a_log_alone_is_not_rotated_without_its_anchor(
        tmp_path, capsys, monkeypatch):
    """A keyed, anchored, redacting policy whose log holds a held answer no copy kept beside the queue: `rotate
    --policy` advised `hguard audit rotate LOG`, which, followed with the key it asks for, rotated without the anchor:
    the fresh file's first record was never anchored and `verify --policy` said OK, the anchor "covering none of the
    log's records" (an operator's upgrade trial). The advice is the command with the policy's key file and anchor,
    and a log given alone is rotated only with --anchor FILE or --no-anchor."""
    import shlex

    from hguard.cli.audit import main

    for var in ("HGUARD_KEY", "HGUARD_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "anc").mkdir()
    path, anchor, key_file = tmp_path / "audit.jsonl", tmp_path / "anc" / "a.anchor", tmp_path / "hguard.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(f'version = 1\n[audit]\npath = "audit.jsonl"\nredact = true\nanchor = "{anchor}"\n'
                           f'[integrity]\nkey_file = "{key_file}"\n[review]\nqueue = "q.sqlite3"\n')
    log = AuditLog(path, key=KEY, anchor=anchor, redact=True)
    log.append({"domain": "geo", "route": "review", "question": "q", "answer": "a"}, kind="decision")
    ReviewQueue(tmp_path / "q.sqlite3").queued_ids()  # the queue lacks it, and no copy was kept beside it
    assert main(["rotate", "--policy", str(policy_file)]) == 1
    err = capsys.readouterr().err
    advised = err.split("rotate the log alone: `")[1].split("`")[0]
    assert advised == f"hguard audit rotate {path} --key-file {key_file} --anchor {anchor}", err
    # the log alone, as the old advice said (with the key it asks for): refused, naming the ways on
    assert main(["rotate", str(path), "--key-file", str(key_file)]) == 2
    assert "pass --anchor FILE (or --policy FILE, which names it and the key), or --no-anchor" in capsys.readouterr().err
    assert main(["rotate", "--policy", str(policy_file), "--no-anchor"]) == 2  # the policy names one
    assert f"names the anchor {anchor}" in capsys.readouterr().err
    assert not list(tmp_path.glob("audit.*-*.jsonl"))  # nothing rotated
    # the advice followed as written: the fresh file's first record is anchored
    assert main(shlex.split(advised)[2:]) == 0
    capsys.readouterr()
    assert main(["verify", "--policy", str(policy_file)]) == 0
    out = capsys.readouterr().out
    assert "holds no head" not in out and f"each of the 2 heads in the anchor {anchor} is in it or its archives" in out, out
    # a log whose writers keep no anchor is rotated when that is said
    plain = AuditLog(tmp_path / "plain.jsonl", key=None)
    plain.append({"x": 1})
    assert main(["rotate", str(tmp_path / "plain.jsonl"), "--no-key"]) == 2
    capsys.readouterr()
    assert main(["rotate", str(tmp_path / "plain.jsonl"), "--no-key", "--no-anchor"]) == 0
    assert "archived seq 0..0" in capsys.readouterr().out


def test_an_archive_replaced_by_another_chain_of_the_same_seqs_is_said_as_such(tmp_path):
    """An auditor's trial: an archive swapped for another server's (same seqs) read "its last record (seq 56) is not
    the one the log's first record chains onto (seq 56)", as if the seqs differed."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY)
    for i in range(4):
        log.append({"x": i})
    arch = Path(rotate(path, key=KEY).archive)
    other = AuditLog(tmp_path / "other.jsonl", key=KEY)  # another server's log of as many records
    for i in range(4):
        other.append({"x": 10 + i})
    os.chmod(arch, 0o640)
    arch.write_bytes(other.path.read_bytes())
    msg = verify(path, key=KEY, archives=True).summary()
    assert "its last record (seq 3) has another hash than the one the log's first record chains onto" in msg, msg
    assert "is not the one the log's first record chains onto" not in msg


def test_history_since_reads_only_what_was_appended_and_agrees_with_a_full_read(tmp_path):
    """AuditLog.history(since=AppendedRecords()) (the review page's reader, asked on each load) yields what history()
    yields, across rotations, reading each file only past where it last ended: a torn last line is left for the next
    read (read once completed); a file cut shorter, or a rotated log's fresh file, is read from its start; a line damaged
    in place before where the last read ended is refused as a full read refuses it."""
    from hguard._audit_files import AppendedRecords

    log = AuditLog(tmp_path / "a.jsonl", key=None)
    since = AppendedRecords()
    seqs = lambda: [r["seq"] for r in log.history(since=since)]  # noqa: E731
    full = lambda: [r["seq"] for r in log.history()]  # noqa: E731
    for i in range(3):
        log.append({"i": i})
    assert seqs() == full() == [0, 1, 2]
    with open(log.path, "ab") as f:
        f.write(b'{"torn": ')  # a write cut short: not a record yet
    assert seqs() == full() == [0, 1, 2]
    with open(log.path, "ab") as f:
        f.write(b'1, "seq": 3}\n')  # completed (not a record the log wrote, but a line read as one)
    assert seqs() == full() == [0, 1, 2, 3]
    log.path.write_bytes(b"".join(log.path.read_bytes().splitlines(keepends=True)[:2]))  # cut shorter, same file
    assert seqs() == full() == [0, 1]
    log = AuditLog(tmp_path / "a.jsonl", key=None)  # a new writer (the one before refuses a log cut back)
    log.append({"i": 9})
    log.rotate()
    log.append({"i": 10})
    assert seqs() == full() == [0, 1, 2, 3, 4]  # the archive (the file read before), the rotation's record, the one after
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(lines[0] + b"[" + lines[1][1:])  # damaged in place, the same size
    with pytest.raises(AuditIntegrityError, match="a.jsonl line 2: damaged"):
        seqs()
    with pytest.raises(AuditIntegrityError, match="a.jsonl line 2: damaged"):
        full()
