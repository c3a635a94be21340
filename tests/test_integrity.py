"""Keyed integrity (hguard.integrity): key loading, signed probes, MACed audit records, truncation checks,
one lock per log file, and the tamper cases of the reliability benchmark (run on tiny settings)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from hguard.audit import AuditLog, verify
from hguard.cli.audit import main as cli_main
from hguard.errors import AuditError, AuditIntegrityError, InputError, ProbeError
from hguard.guard import Guard
from hguard.integrity import KEY_ENV, KEY_FILE_ENV, MIN_KEY_BYTES, load_key, probe_load_options
from hguard.policy import IntegrityConfig, Policy
from hguard.probe import HNeuronProbe

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
try:
    import reliability  # the attacks, defined once for the benchmark and these tests
finally:
    sys.path.remove(str(REPO / "benchmarks"))

KEY = reliability.KEY


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def _key_file(tmp_path: Path, data: bytes = KEY, mode: int = 0o600, name: str = "hguard.key") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    p.chmod(mode)
    return p


# ------------------------------------------------------------------------------------------------ keys


def test_key_from_file_environment_or_none(tmp_path, monkeypatch):
    assert load_key() is None
    kf = _key_file(tmp_path, KEY + b"\n")
    assert load_key(kf) == KEY  # surrounding whitespace is not part of the key
    monkeypatch.setenv(KEY_FILE_ENV, str(kf))
    assert load_key() == KEY
    monkeypatch.delenv(KEY_FILE_ENV)
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert load_key() == KEY
    other = _key_file(tmp_path, b"z" * 40, name="policy.key")
    assert load_key(other) == b"z" * 40  # the policy's key file wins over the environment


@pytest.mark.parametrize(
    "data, mode, words",
    [
        (b"", 0o600, "is empty"),
        (b"  \n", 0o600, "is empty"),
        (b"short", 0o600, f"fewer than the {MIN_KEY_BYTES} required"),
        (KEY, 0o644, "chmod 600"),
    ],
)
def test_bad_key_file_is_one_clear_line(tmp_path, data, mode, words):
    kf = _key_file(tmp_path, data, mode)
    with pytest.raises(InputError) as exc:
        load_key(kf)
    msg = str(exc.value)
    assert words in msg and str(kf) in msg and "\n" not in msg


def test_missing_unreadable_and_conflicting_keys(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        load_key(tmp_path / "nope.key")
    with pytest.raises(InputError, match="not a regular file"):
        load_key(tmp_path)
    monkeypatch.setenv(KEY_ENV, "too short")
    with pytest.raises(InputError, match=r"\$HGUARD_KEY has 9 bytes"):
        load_key()
    monkeypatch.setenv(KEY_FILE_ENV, str(_key_file(tmp_path)))
    with pytest.raises(InputError, match="unset one of them"):
        load_key()
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, "")
    with pytest.raises(InputError, match="set but empty"):
        load_key()
    with pytest.raises(InputError, match="set but empty"):
        AuditLog(tmp_path / "a.jsonl")  # a log opened with a broken key configuration refuses to start


# ------------------------------------------------------------------------------------------------ audit MACs


def _log(tmp_path: Path, n: int = 5, key: bytes | None = KEY, anchor: Path | None = None):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=key, anchor=anchor)
    return path, [log.append({"i": i, "route": "review"}) for i in range(n)]


def test_keyed_records_verify_only_with_their_key(tmp_path):
    path, receipts = _log(tmp_path)
    recs = list(AuditLog(path, key=None))
    assert all(len(r["mac"]) == 64 for r in recs)
    assert verify(path).ok  # the plain chain still verifies without the key ...
    assert "5 record(s) carry a MAC that was NOT checked" in verify(path).summary()  # ... and says what it left out
    report = verify(path, key=KEY)
    assert report.ok and report.head_hash == receipts[-1].hash and report.head_seq == 4
    wrong = verify(path, key=b"w" * 40)
    assert not wrong.ok and len(wrong.problems) == 5 and "MAC does not match" in wrong.problems[0].message
    unkeyed, _ = _log(tmp_path / "plain", key=None)
    assert "no key, and no record carries a MAC: MACs not checked" in verify(unkeyed).summary()
    report = verify(unkeyed, key=KEY)
    assert not report.ok and "no MAC" in report.problems[0].message


def test_unkeyed_unanchored_ok_says_a_rechained_rewrite_passes(tmp_path):
    """A bank trial rewrote a decision in an unkeyed log, recomputed the hashes, and read only "OK, hash chain intact":
    the OK line says what an unkeyed, unanchored check cannot see, and names the fix (the exit status stays 0)."""
    from hguard._audit_records import canonical_json, record_hash

    path, _ = _log(tmp_path, key=None)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[2]["route"] = "accept"
    prev = recs[1]["hash"]
    for r in recs[2:]:
        r["prev_hash"] = prev
        r["hash"] = prev = record_hash(r)
    path.write_text("".join(canonical_json(r) + "\n" for r in recs))
    report = verify(path)
    assert report.ok  # a re-chained rewrite of an unkeyed log is not detected ...
    assert "NOT tamper-evident" in report.summary() and "[integrity] key_file" in report.summary()  # ... and it says so
    keyed, _ = _log(tmp_path / "keyed")
    anchored, _ = _log(tmp_path / "anchored", key=None, anchor=tmp_path / "anchored" / "audit.anchor")
    assert "NOT tamper-evident" not in verify(keyed, key=KEY).summary()
    assert "NOT tamper-evident" not in verify(anchored, anchor=tmp_path / "anchored" / "audit.anchor").summary()


@pytest.mark.parametrize("attack", list(reliability.LOG_ATTACKS))
def test_every_tamper_case_fails_keyed_verification_with_the_head_kept(tmp_path, attack):
    anchor = tmp_path / "audit.anchor"
    path, receipts = _log(tmp_path, 6, anchor=anchor)
    path.write_bytes(b"".join(reliability.LOG_ATTACKS[attack](path.read_bytes().splitlines(keepends=True))))
    assert not verify(path, key=KEY, expect_head=receipts[-1].hash).ok
    assert not verify(path, key=KEY, anchor=anchor).ok


def test_what_each_check_catches(tmp_path):
    rows = {r["case"]: r for r in reliability.tamper_table(tmp_path)}
    # a plain hash chain misses every attack that recomputes hashes; the key catches all but truncation
    for case in ("edit a record and re-chain", "delete a record and re-chain", "append a forged record with correct hashes"):
        assert rows[case]["no key: verify"] is False and rows[case]["key: verify"] is True
    assert rows["drop the last record"]["key: verify"] is False
    assert rows["drop the last record"]["key: verify --expect-head"] is True
    assert rows["drop the last record"]["no key: verify --anchor"] is True
    # without a key a forger can extend the log: neither the kept head nor the anchor notices
    assert rows["append a forged record with correct hashes"]["no key: verify --expect-head"] is False


def test_truncation_is_caught_by_expect_head_and_anchor(tmp_path, capsys):
    anchor = tmp_path / "audit.anchor"
    path, receipts = _log(tmp_path, 4, anchor=anchor)
    assert [json.loads(x)["seq"] for x in anchor.read_text().splitlines()] == [0, 1, 2, 3]
    ok = verify(path, key=KEY, expect_head=receipts[-1].hash, anchor=anchor)
    assert ok.ok and (f"; each of the 4 heads in the anchor {anchor} is in it; the expected head "
                      f"{receipts[-1].hash[:16]}... is in it;") in ok.summary()
    # an anchor that covers only the first records says how many it leaves uncovered; an empty one says so
    AuditLog(path, key=KEY).append({"i": 9, "route": "review"})  # written without the anchor
    assert "(its last head is seq 3: the 1 record(s) after it are not covered by it)" in verify(path, key=KEY, anchor=anchor).summary()
    empty = tmp_path / "empty.anchor"
    empty.write_text("")
    assert f"the anchor {empty} holds no head: it covers none of the log's records" in verify(path, key=KEY, anchor=empty).summary()
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    assert "every head" not in verify(path, key=KEY).summary()  # says what it checked, and only that
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    assert verify(path, key=KEY).ok  # a MAC cannot see records cut off the end
    report = verify(path, key=KEY, expect_head=receipts[-1].hash)
    assert not report.ok and "cut off the end" in report.summary()
    assert not verify(path, key=KEY, anchor=anchor).ok
    assert cli_main(["verify", str(path), "--no-key", "--expect-head", receipts[-1].hash]) == 1
    assert "cut off the end" in capsys.readouterr().out
    assert cli_main(["verify", str(path), "--no-key", "--expect-head", receipts[-2].hash, "--anchor", str(anchor)]) == 1
    assert cli_main(["verify", str(path), "--no-key", "--expect-head", "abc"]) == 2
    assert "64 lowercase hex" in capsys.readouterr().err


def test_a_writer_with_an_anchor_refuses_to_write_over_cut_or_replaced_records(tmp_path):
    """The anchor holds what was acknowledged: a writer does not start a new chain over a deleted log, nor
    move an anchored record aside as a write cut short, nor chain onto a replaced last record."""
    anchor = tmp_path / "audit.anchor"
    path, receipts = _log(tmp_path, 3, anchor=anchor)
    whole = path.read_bytes()
    path.unlink()  # deleted
    with pytest.raises(AuditIntegrityError, match=r"holds no record, but its anchor .* holds the head of seq 2"):
        AuditLog(path, key=KEY, anchor=anchor).check_writable()  # what a guard checks when it starts
    with pytest.raises(AuditIntegrityError, match=r"holds no record, but its anchor .* holds the head of seq 2"):
        AuditLog(path, key=KEY, anchor=anchor).append({"i": 9})
    assert not path.exists()  # refused: no empty log left behind
    path.write_bytes(whole[:-20])  # the last record cut short: acknowledged, so not a write cut short
    with pytest.raises(AuditIntegrityError, match="acknowledged records were cut off"):
        AuditLog(path, key=KEY, anchor=anchor).check_writable()
    with pytest.raises(AuditIntegrityError, match="acknowledged records were cut off"):
        AuditLog(path, key=KEY, anchor=anchor).append({"i": 9})
    assert path.read_bytes() == whole[:-20] and not list(tmp_path.glob("*.torn-*"))  # nothing moved aside
    assert cli_main(["repair", str(path), "--anchor", str(anchor), "--key-file", str(_key_file(tmp_path))]) == 1
    assert path.read_bytes() == whole[:-20] and not list(tmp_path.glob("*.torn-*"))  # repair reads the anchor too
    lines = whole.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # the last record removed whole
    with pytest.raises(AuditIntegrityError, match="holds the head of seq 2"):
        AuditLog(path, key=KEY, anchor=anchor).append({"i": 9})
    edited = json.loads(lines[-1])
    edited["hash"] = "0" * 64
    path.write_bytes(b"".join(lines[:-1]) + (json.dumps(edited) + "\n").encode())
    with pytest.raises(AuditIntegrityError, match="does not have the hash its anchor"):
        AuditLog(path, key=KEY, anchor=anchor).append({"i": 9})
    path.write_bytes(whole)  # restored: the writer goes on, and a write cut short is still repaired
    AuditLog(path, key=KEY, anchor=anchor).check_writable()
    AuditLog(path, key=KEY, anchor=anchor).append({"i": 9})
    with open(path, "ab") as f:
        f.write(b'{"seq": 4, "ha')
    AuditLog(path, key=KEY, anchor=anchor).append({"i": 10})
    assert verify(path, key=KEY, anchor=anchor).ok


def test_a_record_without_a_mac_after_keyed_ones_fails_even_without_the_key(tmp_path):
    from hguard._audit_records import record_hash
    from hguard.audit import canonical_json

    path, receipts = _log(tmp_path, 3)
    forged = {"i": 99, "route": "accept", "id": "f", "kind": "decision", "seq": 3, "time": "2026-01-01T00:00:00+00:00",
              "prev_hash": receipts[-1].hash}  # fmt: skip
    forged["hash"] = record_hash(forged)
    with open(path, "a", encoding="utf-8") as f:
        f.write(canonical_json(forged) + "\n")
    report = verify(path)  # no key: the chain is intact, the missing MAC after keyed records is not
    assert not report.ok and report.problems[0].line == 4
    assert "carries no MAC although a record before it does" in report.problems[0].message
    (tmp_path / "plain").mkdir()
    plain, _ = _log(tmp_path / "plain", 3, key=None)
    assert verify(plain).ok  # an unkeyed log is not flagged


def test_cli_verify_reads_the_key_from_the_environment(tmp_path, monkeypatch, capsys):
    path, _ = _log(tmp_path)
    monkeypatch.setenv(KEY_FILE_ENV, str(_key_file(tmp_path)))
    assert cli_main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "MACs checked with key" in out and "head seq 4" in out
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(reliability.edit_and_rechain(lines)))
    assert cli_main(["verify", str(path)]) == 1
    assert cli_main(["verify", str(path), "--no-key"]) == 0  # the plain chain was recomputed: only the key sees it
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "missing.key"))
    assert cli_main(["verify", str(path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_verify_reads_log_key_and_anchor_from_the_policy(tmp_path, capsys):
    anchor = tmp_path / "audit.anchor"
    path, _ = _log(tmp_path, 4, anchor=anchor)
    kf = _key_file(tmp_path)
    pol = tmp_path / "policy.toml"
    pol.write_text(f'version = 1\n[audit]\npath = "{path.name}"\nanchor = "{anchor.name}"\n'
                   f'[integrity]\nkey_file = "{kf.name}"\n')
    assert cli_main(["verify", "--policy", str(pol)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: OK, 4 records") and "MACs checked with key" in out and f"anchor {anchor}" in out
    assert "decisions made under this policy file (policy_hash " in out and "): 0 of 4; under other settings: none recorded (written by an hguard that did not record policy_hash yet) (4)" in out
    from hguard.monitor import policy_hash
    from hguard.policy import load_policy

    mine = policy_hash(load_policy(pol))
    AuditLog(path, key=KEY, anchor=anchor).append({"policy_hash": mine, "route": "accept"})
    assert cli_main(["verify", "--policy", str(pol)]) == 0
    assert f"decisions made under this policy file (policy_hash {mine}): 1 of 5; under other settings: none recorded (written by an hguard that did not record policy_hash yet) (4)" in capsys.readouterr().out
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:4]))  # back to the four records
    anchor.write_bytes(b"".join(anchor.read_bytes().splitlines(keepends=True)[:4]))
    assert cli_main(["verify", str(path)]) == 0  # without the policy (or a key) the MACs are not checked, and it says so
    assert "carry a MAC that was NOT checked" in capsys.readouterr().out
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(reliability.edit_and_rechain(lines)))
    assert cli_main(["verify", "--policy", str(pol)]) == 1  # the policy's key sees the re-chained record
    capsys.readouterr()
    assert cli_main(["verify"]) == 2
    assert "pass the audit log to verify" in capsys.readouterr().err


def test_a_long_list_of_problems_is_summarised_after_the_first_ten(tmp_path):
    from hguard._audit_verify import SHOWN_PROBLEMS

    path, _ = _log(tmp_path, 25)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(reliability.edit_and_rechain(lines)))
    report = verify(path, key=KEY)
    assert len(report.problems) > SHOWN_PROBLEMS + 1
    text = report.summary().splitlines()
    assert len(text) == 1 + SHOWN_PROBLEMS + 1  # the head line, ten problems, then the count and the last
    last = report.problems[-1]
    assert text[-1] == (f"  ... and {len(report.problems) - SHOWN_PROBLEMS} more, the last at line {last.line}, "
                        f"seq {last.seq}: {last.message}")


def test_unkeyed_writer_refuses_to_break_a_keyed_chain(tmp_path):
    path, _ = _log(tmp_path)
    with pytest.raises(AuditIntegrityError, match="no key is configured"):
        AuditLog(path, key=None).append({"i": 5})
    assert verify(path, key=KEY).ok


def test_a_writer_with_another_key_refuses_to_break_a_keyed_chain(tmp_path):
    """A second server with a stale key_file: its records would fail verification for good (trial)."""
    from hguard.errors import AuditKeyMismatch

    path, _ = _log(tmp_path)
    before = path.read_bytes()
    other = b"another key of a second server, 32+ bytes long....."
    for check in (lambda log: log.check_writable(), lambda log: log.append({"i": 5})):
        with pytest.raises(AuditKeyMismatch, match=r"seq 4\) carries a MAC this process's key .* does not reproduce"):
            check(AuditLog(path, key=other))
    with open(path, "ab") as f:  # behind a torn end too
        f.write(b'{"seq":5,"ha')
    with pytest.raises(AuditKeyMismatch):
        AuditLog(path, key=other).append({"i": 5})
    assert path.read_bytes() == before + b'{"seq":5,"ha'  # nothing written, nothing moved aside
    path.write_bytes(before + b'{"not a record"}\n')  # behind a damaged (complete) last line too
    for check in (lambda log: log.check_writable(), lambda log: log.append({"i": 5})):
        with pytest.raises(AuditKeyMismatch):
            check(AuditLog(path, key=other))
    assert path.read_bytes() == before + b'{"not a record"}\n'
    lines = before.splitlines(keepends=True)  # the last record's MAC removed: the one before it still says whose log
    bare = json.loads(lines[-1])
    del bare["mac"]
    path.write_bytes(b"".join(lines[:-1]) + (json.dumps(bare) + "\n").encode())
    for check in (lambda log: log.check_writable(), lambda log: log.append({"i": 5})):
        with pytest.raises(AuditKeyMismatch, match=r"seq 3\)"):
            check(AuditLog(path, key=other))
    path.write_bytes(before + b'{"seq":5,"ha')
    AuditLog(path, key=KEY).append({"i": 6})  # the log's own key goes on (and repairs the torn end)
    assert verify(path, key=KEY).ok


def test_an_anchor_in_a_missing_folder_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key=KEY, anchor=tmp_path / "anchr" / "audit.anchor")
    for check in (log.check_writable, lambda: log.append({"i": 1})):
        with pytest.raises(AuditError, match="folder of the audit anchor .* does not exist"):
            check()
    assert not path.exists()
    log = AuditLog(path, key=KEY, anchor=tmp_path)  # a folder named where a file belongs
    for check in (log.check_writable, lambda: log.append({"i": 1})):
        with pytest.raises(AuditError, match="is a folder; name a file in it"):
            check()
    assert not path.exists()


def test_an_unkeyed_writer_or_repair_changes_nothing_on_a_keyed_log_with_a_torn_end(tmp_path, capsys):
    from hguard.audit import repair

    path, _ = _log(tmp_path)
    with open(path, "ab") as f:
        f.write(b'{"seq":5,"ha')
    before = path.read_bytes()
    with pytest.raises(AuditIntegrityError, match="no key is configured .*nothing was changed"):
        AuditLog(path, key=None).append({"i": 5})
    with pytest.raises(AuditIntegrityError, match="no key is configured"):
        repair(path, key=None)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.torn-*"))  # the torn tail is where it was
    assert cli_main(["repair", str(path), "--no-anchor"]) == 2  # a usage error: the command's own option is the fix
    assert "no key was given: pass --key-file FILE" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert repair(path, key=KEY) is not None  # the key holder moves it aside, with a recovery record
    assert verify(path, key=KEY).ok and [r["kind"] for r in AuditLog(path, key=None)][-1] == "recovery"


def test_keyed_recovery_record_verifies(tmp_path):
    path, _ = _log(tmp_path)
    with open(path, "ab") as f:
        f.write(b'{"seq":5,"ha')
    AuditLog(path, key=KEY).append({"i": 6})
    assert verify(path, key=KEY).ok
    assert [r["kind"] for r in AuditLog(path, key=None)][-2:] == ["recovery", "decision"]


def test_hard_links_share_one_lock_and_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=None).append({"start": True})
    link = tmp_path / "other-name.jsonl"
    os.link(path, link)
    logs = [AuditLog(path, key=None), AuditLog(link, key=None)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                logs[t % 2].append({"t": t, "i": i})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    report = verify(link)
    assert report.ok, report.summary()
    assert report.n_records == 101 and report.head_seq == 100


def test_anchor_must_be_another_file(tmp_path):
    with pytest.raises(InputError, match="is the audit log itself"):
        AuditLog(tmp_path / "a.jsonl", key=None, anchor=tmp_path / "a.jsonl")


# ------------------------------------------------------------------------------------------------ probes


def _tiny_probe():
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = rng.gamma(2.0, 0.5, size=(60, 16)) + y[:, None] * np.eye(16)[0] * 3
    return HNeuronProbe(n_layers=2, d_ff=8, cv=3, length_control=False).fit(X, y)


META = {"domain": "alpha", "merger": {"intercept": 0.0, "coef": [1.0], "mean": [0.0], "scale": [1.0]}}


def test_signed_probe_loads_and_a_forged_one_is_refused(tmp_path):
    probe = _tiny_probe()
    path = tmp_path / "alpha.json"
    probe.save(path, metadata=META, key=KEY)
    assert json.loads(path.read_text())["signature"]["alg"] == "hmac-sha256"
    HNeuronProbe.load(path, key=KEY, require_signature=True)
    HNeuronProbe.load(path)  # without a key: as before (the self-hash is still checked)
    with pytest.raises(ProbeError, match="another key"):
        HNeuronProbe.load(path, key=b"w" * 40)
    reliability.tamper_probe(path)
    HNeuronProbe.load(path)  # the self-hash was recomputed: without a key nothing can tell
    with pytest.raises(ProbeError, match="fails its signature"):
        HNeuronProbe.load(path, key=KEY)


def test_unsigned_probe_under_a_key(tmp_path):
    probe = _tiny_probe()
    path = tmp_path / "alpha.json"
    probe.save(path, metadata=META)
    kf = _key_file(tmp_path)
    # with a key, signatures are required unless the policy says otherwise
    with pytest.raises(ProbeError, match="is not signed"):
        HNeuronProbe.load(path, **probe_load_options(IntegrityConfig(key_file=kf)))
    HNeuronProbe.load(path, **probe_load_options(IntegrityConfig(key_file=kf, require_signed_probes=False)))
    with pytest.raises(ProbeError, match="no key is configured"):
        HNeuronProbe.load(path, **probe_load_options(IntegrityConfig(require_signed_probes=True)))
    assert probe_load_options(IntegrityConfig()) == {"key": None, "require_signature": False}


def _policy(root: Path, tmp_path: Path, key_file: Path | None) -> Policy:
    return Policy.model_validate(
        {
            "version": 1,
            "probes": str(root),
            "audit": {"path": str(tmp_path / "audit.jsonl"), "anchor": str(tmp_path / "audit.anchor")},
            "review": {"queue": str(tmp_path / "queue.sqlite3")},
            "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
            "integrity": {"key_file": str(key_file)} if key_file else {},
            "domains": {"alpha": {"accept_below": 1.0, "abstain_above": 1.0}, "beta": {}},
        }
    )


def test_guard_with_a_key_routes_a_forged_probe_to_review(tiny_calibrated, tmp_path, monkeypatch):
    lm, root = tiny_calibrated
    probes = tmp_path / "probes"
    shutil.copytree(root / "probes", probes)
    kf = _key_file(tmp_path)
    monkeypatch.setenv(KEY_FILE_ENV, str(kf))
    for name in ("alpha", "beta"):  # re-signed as calibration with HGUARD_KEY_FILE set writes them
        probe, meta = HNeuronProbe.load(probes / f"{name}.json")
        probe.save(probes / f"{name}.json", metadata=meta, key=KEY)
    monkeypatch.delenv(KEY_FILE_ENV)
    q = "who is the author of the book ?"

    guard = Guard.from_policy(_policy(probes, tmp_path, kf), lm=lm)
    assert guard.audit.keyed and not guard.probe_errors
    r = guard.invoke(q, domain="alpha")
    assert r.route == "accept"
    # the decision's receipt; an accepted answer may be followed by its spot-check record (2%, by id), so the
    # guard's last receipt is the decision's or the one right after it
    records = list(AuditLog(tmp_path / "audit.jsonl", key=None))
    (rec,) = [x for x in records if x["hash"] == r.audit_hash]
    assert rec["kind"] == "decision" and guard.last_receipt is not None
    after = [x for x in records if x["seq"] > rec["seq"]]
    assert guard.last_receipt.hash == (after[0]["hash"] if after else r.audit_hash)
    assert [x["kind"] for x in after] in ([], ["spot_check"])
    assert verify(tmp_path / "audit.jsonl", key=KEY, expect_head=r.audit_hash, anchor=tmp_path / "audit.anchor").ok

    reliability.tamper_probe(probes / "alpha.json")
    guard = Guard.from_policy(_policy(probes, tmp_path, kf), lm=lm)
    r = guard.invoke(q, domain="alpha")
    assert r.route == "review"
    assert any("fails its signature" in x for x in r.reasons), r.reasons
    assert "beta" in guard.probes  # one forged probe disables its own domain only

    # without a key the same forged file is accepted: what the README warns about
    guard = Guard.from_policy(_policy(probes, tmp_path / "nokey", None), lm=lm)
    assert "alpha" in guard.probes


def test_calibration_signs_with_the_environment_key(tmp_path, monkeypatch):
    from hguard.calibrate.data import write_examples
    from hguard.calibrate.pipeline import calibrate
    from hguard.testing import tiny_examples, tiny_model

    monkeypatch.setenv(KEY_ENV, "q" * 8)
    lm = tiny_model("llama", seed=3)
    with pytest.raises(InputError, match="fewer than"):
        calibrate([tmp_path / "none.jsonl"], tmp_path / "p", lm=lm, progress=False, plots=False)
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    write_examples(tmp_path / "data.jsonl", tiny_examples(lm))
    calibrate([tmp_path / "data.jsonl"], tmp_path / "p", lm=lm, system_prompt="answer", max_new_tokens=4,
              progress=False, plots=False, domains=["alpha"])
    HNeuronProbe.load(tmp_path / "p" / "alpha.json", key=KEY, require_signature=True)


def test_reliability_benchmark_smoke(tmp_path):
    result = reliability.main(["--smoke", "--out", str(tmp_path / "r.json")])
    assert result["kill"]["lost"] == 0 and result["kill"]["acknowledged"] > 0
    assert result["kill"]["verified_after_next_append"] == result["kill"]["n_trials"]
    for c in result["concurrency"].values():
        assert c["records"] == c["expected_records"] and c["verify_ok_with_key"] and c["seqs_contiguous"]
    assert all(r["key: refused"] and not r["no key: refused"] for r in result["tamper_probe"])


def test_show_and_export_check_the_macs_with_the_key_and_say_when_they_could_not(tmp_path, capsys, monkeypatch):
    path, _ = _log(tmp_path, 4)
    kf = _key_file(tmp_path)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(reliability.edit_and_rechain(lines)))  # hashes recomputed: only the key sees it
    assert cli_main(["show", str(path)]) == 0
    assert "carry a MAC that was NOT checked" in capsys.readouterr().err
    assert cli_main(["show", str(path), "--key-file", str(kf)]) == 1
    assert "does not verify" in capsys.readouterr().err
    assert cli_main(["export", str(path), "--csv", str(tmp_path / "o.csv"), "--key-file", str(kf)]) == 1
    assert "does not verify" in capsys.readouterr().err


def test_cli_verify_counts_decisions_made_by_another_model_apart(tmp_path, capsys):
    """`--model` overrides the policy's model without changing its policy_hash: verify counted such decisions as made
    under the policy file (20 of 20, four by other models), where the monitor leaves them out."""
    from hguard.monitor import _probe_meta, calibrated_models, policy_hash
    from hguard.policy import load_policy

    path = tmp_path / "audit.jsonl"
    pol = tmp_path / "policy.toml"
    import hguard

    shipped = Path(hguard.__file__).parent / "_data" / "probes" / "smollm2-135m"
    pol.write_text(f'version = 1\nprobes = "{shipped}"\n[audit]\npath = "{path.name}"\n')
    mine = policy_hash(load_policy(pol))
    (calibrated,) = calibrated_models(_probe_meta(load_policy(pol)))["geography"]
    log = AuditLog(path)
    for made_by in (calibrated, "another model", None):  # a record without a fingerprint is not judged by it
        log.append({"policy_hash": mine, "route": "review", "domain": "geography", "model_fingerprint": made_by})
    assert cli_main(["verify", "--policy", str(pol)]) == 0
    out = capsys.readouterr().out
    assert (f"decisions made under this policy file (policy_hash {mine}): 3 of 3, of which 1 by another model than "
            "their domain's calibration") in out


def _readme_snippet(after: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_recomputes_a_probe_id_and_a_signed_and_an_unsigned_file_share_it(tmp_path, monkeypatch):
    """An auditor's trial: the README said probe_id hashes the file without probe_id; the code also leaves out the
    signature, ``created`` and every ``*_seconds`` timing, so the README's recipe gave another id."""
    probe = _tiny_probe()
    meta = {**META, "created": "2025-01-01T00:00:00Z", "metrics": {"train": {"probe_fit_seconds": 1.5}},
            "fitted_with": {"batch_size": 16, "threads": 1}}
    probe.save(tmp_path / "signed.json", metadata=meta, key=KEY)
    # a review: a rerun that read every answer back under another batch size got another id for the same probe
    probe.save(tmp_path / "unsigned.json", metadata={**meta, "created": "2026-01-01T00:00:00Z",
                                                     "fitted_with": {"batch_size": 4, "threads": 1}})
    signed, unsigned = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("signed", "unsigned"))
    assert "signature" in signed and "signature" not in unsigned and signed["probe_id"] == unsigned["probe_id"]
    snippet = _readme_snippet("**A probe file's `probe_id`**")
    monkeypatch.chdir(tmp_path)
    for name in ("signed", "unsigned"):
        shutil.copy(tmp_path / f"{name}.json", tmp_path / "geography.json")
        printed: list = []
        exec(snippet, {"print": printed.append})  # noqa: S102 (the README's own code)
        assert printed == [True], name
    from hguard._resources import REFERENCE_PROBES

    shutil.copy(Path(REFERENCE_PROBES) / "geography.json", tmp_path / "geography.json")
    printed = []
    exec(snippet, {"print": printed.append})  # noqa: S102
    assert printed == [True]


def test_the_readme_recomputes_the_reference_probes_data_hash():
    from hguard._resources import REFERENCE_PROBES
    from hguard.calibrate.data import data_hash, load_examples

    text = (REPO / "README.md").read_text(encoding="utf-8")
    said = text[text.index("**A probe file's `data_hash`**"):text.index("**Reproducing a probe file.**")]
    assert "`hguard.calibrate.data.data_hash([e for e in load_examples(FILES) if e.domain == DOMAIN and not e.context])`" in said
    files = [REPO / "calibration" / "data" / f"{n}.jsonl" for n in ("geography", "chemistry", "literature", "fabricated")]
    assert all(f"`{f.stem}`" in said for f in files)
    rows = load_examples(files)
    for domain in ("geography", "chemistry", "literature"):
        stored = json.loads((Path(REFERENCE_PROBES) / f"{domain}.json").read_text())["metadata"]["data_hash"]
        assert data_hash([e for e in rows if e.domain == domain and not e.context]) == stored
