"""What a long audit log costs a guard: start-up time, first and later answers, and memory, by log length.

    .venv/bin/python benchmarks/audit_scale.py                          # the figures in benchmarks/README.md
    .venv/bin/python benchmarks/audit_scale.py --records 1 200 --rotated 200 --out /tmp/a.json   # seconds (the smoke run)

A guard reads its audit log when it starts (answers held for review that a crash kept out of the review
queue are put back; the monitor state is checked against the chain, which must verify first) and again
whenever the monitor rewrites its state file (only the records appended since the last check). This
measures it on a tiny random model (the log, not the model, is what is timed; its probes are calibrated once, by
``hguard.testing.tiny_probes``, and shared by the runs): for each length, a fresh process fills a log with that many accepted decision records copied from one real one (written without
fsync to save time; a guard writes each with fsync), then times ``Guard.from_policy``, a first answer, a
state file rewritten by the monitor followed by an answer, and a later answer, and reports its peak RSS.
``--rotated N``: the same for a log of N records rotated (``hguard audit rotate``) before the guard starts,
with the rotation's own time: a guard then reads the fresh file only.

Writes ``benchmarks/results/audit_scale.json`` (``--out``). Needs no model download.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import load_average, threads, write_result  # noqa: E402  (after the repository is on sys.path)

Q = "who is the author of the book ?"


def _child(n: int, folder: Path, probe_folder: Path, rotated: bool = False) -> dict:
    from hguard.audit import AuditLog, rotate
    from hguard.guard import Guard
    from hguard.policy import Policy
    from hguard.testing import TINY_MAX_NEW_TOKENS, TINY_SYSTEM_PROMPT, tiny_model, tiny_probes

    warnings.simplefilter("ignore")
    lm = tiny_model("llama", seed=3)
    probes = tiny_probes(probe_folder, "llama", seed=3)  # calibrated by the first child, reused by the others
    policy = Policy.model_validate({
        "version": 1, "probes": str(probes), "audit": {"path": str(folder / "audit.jsonl")},
        "review": {"queue": str(folder / "queue.sqlite3")}, "monitor": {"state": str(folder / "state.json")},
        "generation": {"max_new_tokens": TINY_MAX_NEW_TOKENS, "system_prompt": TINY_SYSTEM_PROMPT},
        "domains": {"alpha": {"accept_below": 1.0, "abstain_above": 1.0, "spot_check_rate": 0.0}, "beta": {}},
    })  # fmt: skip
    Guard.from_policy(policy, lm=lm).invoke(Q, domain="alpha")  # one real decision record to copy
    proto = [r for r in AuditLog(policy.audit.path) if r.get("kind") == "decision"][-1]
    body = {k: v for k, v in proto.items() if k not in ("id", "seq", "time", "kind", "prev_hash", "hash", "mac", "nonfinite")}
    fsync, os.fsync = os.fsync, (lambda fd: None)  # filling only: the guard's own appends below fsync
    try:
        log = AuditLog(policy.audit.path)
        for _ in range(max(0, n - 1)):
            log.append(dict(body))
    finally:
        os.fsync = fsync
    size = policy.audit.path.stat().st_size
    rotate_s = None
    if rotated:
        t = time.perf_counter()
        rotate(policy.audit.path, key=None, queue=policy.review.queue)
        rotate_s = round(time.perf_counter() - t, 2)
    t0 = time.perf_counter()
    guard = Guard.from_policy(policy, lm=lm)
    t1 = time.perf_counter()
    guard.invoke(Q, domain="alpha")
    t2 = time.perf_counter()
    policy.monitor.state.write_text('{"format": "hguard-monitor-state", "domains": {}}')  # the monitor ran
    guard.invoke(Q, domain="alpha")
    t3 = time.perf_counter()
    guard.invoke(Q, domain="alpha")
    t4 = time.perf_counter()
    return {
        "records": max(n, 1), "log_mb": round(size / 1e6, 1), "rotated": rotated, "rotate_s": rotate_s,
        "start_s": round(t1 - t0, 2),
        "first_answer_s": round(t2 - t1, 2), "answer_after_state_rewrite_s": round(t3 - t2, 3),
        "later_answer_s": round(t4 - t3, 3), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--records", type=int, nargs="+", default=[1, 20_000, 100_000, 200_000])
    ap.add_argument("--rotated", type=int, nargs="*", default=[200_000],
                    help="log lengths to measure again rotated before the guard starts")
    ap.add_argument("--rotate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "audit_scale.json")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--probe-folder", type=Path, help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.folder, args.probe_folder, args.rotate)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="hguard-audit-scale-probes-") as probes:
        for n, rotated in [(n, False) for n in args.records] + [(n, True) for n in args.rotated]:
            with tempfile.TemporaryDirectory(prefix="hguard-audit-scale-") as tmp:
                proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--folder", tmp,
                                       "--probe-folder", str(Path(probes) / "tiny")] + (["--rotate"] if rotated else []),
                                      capture_output=True, text=True, check=False)  # fmt: skip
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return 1
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    write_result(args.out, {"threads": threads(), "load_average": load_average(), "rows": rows}, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
