"""Reliability of the audit log and keyed integrity: crashes, concurrency, tampering.

    .venv/bin/python benchmarks/reliability.py                 # the figures in benchmarks/README.md
    .venv/bin/python benchmarks/reliability.py --smoke         # seconds; what the test suite runs

1. kill -9 trials: a child process appends records and prints each receipt once ``append`` returned; it
   is killed at a random moment. Afterwards every acknowledged record must be in the log, the next
   append must recover a torn tail by itself, and the chain must verify.
2. Concurrency: threads (half of them through a hard link to the log, which must share the lock) and
   processes append to one log; the chain must verify with every record present once and seqs 0..n-1.
3. Tampering: each attack of the hardening issue, on a log written without and with a key, and whether
   ``verify`` (plain, with the key, with ``--expect-head``, with the anchor) catches it; an edited probe
   with a recomputed self-hash, and whether the guard's probe loading refuses it.

Writes ``benchmarks/results/reliability.json`` (``--out``). Needs no model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hguard.audit import AuditLog, canonical_json, record_hash, verify  # noqa: E402

KEY = b"k" * 16 + b"0123456789abcdef0123"  # a fixed test key (36 bytes); never a real one


# ------------------------------------------------------------------------------------------------ attacks
# What someone who can write the files, but has no key, can do. Each takes the log's lines and returns new ones.


def _recs(lines: list[bytes]) -> list[dict]:
    return [json.loads(x) for x in lines]


def _rechain(recs: list[dict], start: int) -> list[bytes]:
    """Recompute prev_hash, seq and hash from ``start`` on, as a forger without the key would (``mac`` kept)."""
    for i in range(start, len(recs)):
        recs[i]["prev_hash"] = recs[i - 1]["hash"] if i else "0" * 64
        recs[i]["seq"] = i
        recs[i]["hash"] = record_hash(recs[i])
    return [(canonical_json(r) + "\n").encode() for r in recs]


def drop_last(lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


def edit_and_rechain(lines: list[bytes]) -> list[bytes]:
    recs = _recs(lines)
    recs[1]["route"] = "accept" if recs[1].get("route") != "accept" else "review"
    return _rechain(recs, 1)


def delete_and_rechain(lines: list[bytes]) -> list[bytes]:
    recs = _recs(lines)
    del recs[1]
    return _rechain(recs, 1)


def append_forged(lines: list[bytes]) -> list[bytes]:
    recs = _recs(lines)
    forged = dict(recs[-1], id="forged", route="accept", reasons=["forged"])
    return _rechain(recs + [forged], len(recs))


def edit_without_rehash(lines: list[bytes]) -> list[bytes]:
    recs = _recs(lines)
    recs[1]["route"] = "forged"
    return [(canonical_json(r) + "\n").encode() for r in recs]


LOG_ATTACKS = {
    "edit a record, no re-hash": edit_without_rehash,
    "drop the last record": drop_last,
    "edit a record and re-chain": edit_and_rechain,
    "delete a record and re-chain": delete_and_rechain,
    "append a forged record with correct hashes": append_forged,
}


def tamper_probe(path: Path, *, strip_signature: bool = False) -> None:
    """Make a probe accept everything (merger intercept -50) and recompute its self-hash (probe_id)."""
    from hguard.probe import _probe_id

    doc = json.loads(path.read_text())
    merger = doc["metadata"].get("merger")
    if isinstance(merger, dict):
        merger["intercept"] = -50.0
    else:
        doc["model"]["intercept"] = -50.0
    doc["probe_id"] = _probe_id(doc)
    if strip_signature:
        doc.pop("signature", None)
    path.write_text(json.dumps(doc, indent=1))


# ------------------------------------------------------------------------------------------------ 1. kill -9

_WRITER = textwrap.dedent(
    """
    import sys
    from hguard.audit import AuditLog
    log = AuditLog(sys.argv[1], key=None)
    filler = "x" * int(sys.argv[2])
    i = 0
    while True:
        r = log.append({"i": i, "answer": filler})
        sys.stdout.write(r.id + "\\n")
        sys.stdout.flush()
        i += 1
    """
)


def kill_trials(n_trials: int, seed: int, workdir: Path) -> dict:
    rng = random.Random(seed)
    env = _env()
    rows = []
    for t in range(n_trials):
        path = workdir / f"kill-{t}.jsonl"
        # Odd trials kill at a random moment; even ones write 2 MB records and kill as soon as the file starts
        # to grow past the acknowledged records, which lands inside write() most of the time (a torn tail).
        mid_write = t % 2 == 0
        filler = 2_000_000 if mid_write else rng.choice([200, 20_000, 1_000_000])
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(filler)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env,
        )
        acked: list[str] = []
        target = rng.randint(1, 8)
        while len(acked) < target:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.decode().strip())
        if mid_write:
            size_acked = path.stat().st_size if path.exists() else 0
            deadline = time.monotonic() + 10
            while path.exists() and path.stat().st_size == size_acked and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
        else:
            time.sleep(rng.uniform(0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        # read() through the same buffered reader: communicate() would skip lines readline() already buffered
        rest, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=60)
        acked += [x.decode() for x in rest.split(b"\n")[:-1]]  # printed before the kill: acknowledged too
        report = verify(path)
        found = {r["id"] for r in AuditLog(path, key=None)}
        lost = len(set(acked) - found)
        AuditLog(path, key=None).append({"after": "kill"})  # recovers a torn tail by itself
        after = verify(path)
        records_after = list(AuditLog(path, key=None))
        found_after = {r["id"] for r in records_after}
        recovered = any(r.get("action") == "torn_tail_moved_aside" for r in records_after)
        rows.append(
            {
                "kill": "as the file grows" if mid_write else "random",
                "filler_bytes": filler,
                "acknowledged": len(acked),
                "found": len(found),
                "lost": lost,
                "lost_after_recovery": len(set(acked) - found_after),
                "torn_tail": report.torn,
                "recovered": recovered,
                "other_problems": sum(1 for p in report.problems if not p.torn),
                "verifies_after_next_append": after.ok,
                "child_error": err.decode()[-300:] if proc.returncode != -signal.SIGKILL else "",
            }
        )
        for p in workdir.glob(f"kill-{t}.jsonl*"):
            p.unlink()
    return {
        "n_trials": n_trials,
        "acknowledged": sum(r["acknowledged"] for r in rows),
        "found": sum(r["found"] for r in rows),
        "lost": sum(r["lost"] for r in rows),
        # written but not yet acknowledged when killed: at most the one append in flight
        "max_found_not_acknowledged": max((r["found"] - r["acknowledged"] for r in rows), default=0),
        "lost_after_recovery": sum(r["lost_after_recovery"] for r in rows),
        "torn_tails": sum(r["torn_tail"] for r in rows),
        "moved_aside_and_recorded": sum(r["recovered"] for r in rows),
        "other_problems": sum(r["other_problems"] for r in rows),
        "verified_after_next_append": sum(r["verifies_after_next_append"] for r in rows),
        "trials": rows,
    }


# ------------------------------------------------------------------------------------------------ 2. concurrency


_PROCESS_WRITER = textwrap.dedent(
    """
    import sys
    from hguard.audit import AuditLog
    log = AuditLog(sys.argv[1], key=sys.argv[2].encode())
    for i in range(int(sys.argv[4])):
        log.append({"worker": int(sys.argv[3]), "i": i})
    """
)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def concurrency(n_threads: int, n_processes: int, per_writer: int, workdir: Path) -> dict:
    out = {}
    path = workdir / "threads.jsonl"
    AuditLog(path, key=KEY).append({"start": True})
    link = workdir / "threads-hardlink.jsonl"
    os.link(path, link)
    logs = [AuditLog(path, key=KEY), AuditLog(link, key=KEY)]  # two names of one file: one lock
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_writer):
                logs[t % 2].append({"thread": t, "i": i})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.perf_counter() - t0
    out["threads"] = _count(path, KEY, 1 + n_threads * per_writer, secs, errors, n_threads, per_writer)

    path = workdir / "processes.jsonl"
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS_WRITER, str(path), KEY.decode(), str(w), str(per_writer)],
            stderr=subprocess.PIPE, env=_env(),
        )
        for w in range(n_processes)
    ]
    failed = [p.communicate(timeout=600)[1].decode()[-300:] for p in procs]
    secs = time.perf_counter() - t0
    failed = [err for p, err in zip(procs, failed) if p.returncode != 0]
    out["processes"] = _count(path, KEY, n_processes * per_writer, secs, failed, n_processes, per_writer)
    return out


def _count(path: Path, key: bytes, expected: int, secs: float, errors: list, writers: int, per_writer: int) -> dict:
    report = verify(path, key=key)
    recs = list(AuditLog(path, key=None))
    return {
        "writers": writers,
        "appends_per_writer": per_writer,
        "expected_records": expected,
        "records": len(recs),
        "seqs_contiguous": [r["seq"] for r in recs] == list(range(len(recs))),
        "unique_ids": len({r["id"] for r in recs}),
        "verify_ok_with_key": report.ok,
        "errors": [repr(e) for e in errors],
        "seconds": round(secs, 2),
        "appends_per_second": round(len(recs) / secs, 1) if secs else None,
    }


# ------------------------------------------------------------------------------------------------ 3. tampering


def tamper_table(workdir: Path, n_records: int = 6) -> list[dict]:
    rows = []
    for name, attack in LOG_ATTACKS.items():
        row: dict = {"case": name}
        for keyed in (False, True):
            path = workdir / f"tamper-{keyed}.jsonl"
            anchor = workdir / f"tamper-{keyed}.anchor"
            for p in (path, anchor):
                p.unlink(missing_ok=True)
            log = AuditLog(path, key=KEY if keyed else None, anchor=anchor)
            head = [log.append({"i": i, "route": "review"}) for i in range(n_records)][-1].hash
            path.write_bytes(b"".join(attack(path.read_bytes().splitlines(keepends=True))))
            key = KEY if keyed else None
            tag = "key" if keyed else "no key"
            row[f"{tag}: verify"] = not verify(path, key=key).ok
            row[f"{tag}: verify --expect-head"] = not verify(path, key=key, expect_head=head).ok
            row[f"{tag}: verify --anchor"] = not verify(path, key=key, anchor=anchor).ok
        rows.append(row)
    return rows


def probe_tamper(workdir: Path) -> list[dict]:
    import numpy as np

    from hguard.errors import ProbeError
    from hguard.integrity import probe_load_options
    from hguard.policy import IntegrityConfig
    from hguard.probe import HNeuronProbe

    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    X = rng.gamma(2.0, 0.5, size=(80, 32)) + y[:, None] * np.eye(32)[0] * 3
    probe = HNeuronProbe(n_layers=2, d_ff=16, cv=3, length_control=False).fit(X, y)
    meta = {"domain": "alpha", "merger": {"intercept": 0.0, "coef": [1.0], "mean": [0.0], "scale": [1.0]}}
    key_path = workdir / "hguard.key"
    key_path.write_bytes(KEY)
    key_path.chmod(0o600)
    rows = []
    cases = {
        "edited probe, self-hash recomputed": {},
        "edited probe, self-hash recomputed, signature removed": {"strip_signature": True},
    }
    for case, kw in cases.items():
        row: dict = {"case": case}
        for label, cfg, signed in (
            ("no key", IntegrityConfig(), False),
            ("key", IntegrityConfig(key_file=key_path), True),
        ):
            path = workdir / "alpha.json"
            probe.save(path, metadata=meta, key=KEY if signed else None)
            tamper_probe(path, **kw)
            try:
                HNeuronProbe.load(path, **probe_load_options(cfg))  # what Guard.load_probes does
                row[f"{label}: refused"] = False
            except ProbeError as e:
                row[f"{label}: refused"] = True
                row[f"{label}: reason"] = str(e)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kill-trials", type=int, default=60)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--per-writer", type=int, default=250, help="appends per thread and per process")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny settings (2 kill trials, 10 appends per writer)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "reliability.json"))
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.kill_trials, args.per_writer = 2, 10
    with tempfile.TemporaryDirectory(prefix="hguard-reliability-") as tmp:
        work = Path(tmp)
        result = {
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "kill": kill_trials(args.kill_trials, args.seed, work),
            "concurrency": concurrency(args.threads, args.processes, args.per_writer, work),
            "tamper_log": tamper_table(work),
            "tamper_probe": probe_tamper(work),
        }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    k = result["kill"]
    print(
        f"kill -9: {k['n_trials']} trials, {k['acknowledged']} acknowledged, {k['lost']} lost, "
        f"{k['torn_tails']} torn tails ({k['moved_aside_and_recorded']} moved aside and recorded), "
        f"{k['verified_after_next_append']}/{k['n_trials']} verify after the next append"
    )
    for name, c in result["concurrency"].items():
        print(f"{name}: {c['records']}/{c['expected_records']} records, chain ok={c['verify_ok_with_key']}")
    for row in result["tamper_log"] + result["tamper_probe"]:
        print(json.dumps({k: v for k, v in row.items() if "reason" not in k}))
    return result


if __name__ == "__main__":
    main()
