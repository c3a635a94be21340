"""What a page load of ``hguard review serve`` costs as the queue and its audit log grow.

    .venv/bin/python benchmarks/review_page.py                            # the figures in benchmarks/README.md
    .venv/bin/python benchmarks/review_page.py --items 200 --out /tmp/r.json  # seconds (the smoke run)

The pending (``/``) and decided (``/decided``) pages read the audit log to mark an evaluation's items (each item's
decision record says whether its answer was served). For each size, a queue of N held items is filled as the guard
fills one (each item's decision record in the log, plus one accepted decision per item that holds none: a log holds
more than the queue), half of them decided (without the log, to save time); then, through Starlette's test client, logged in, it times the first load
of each page, a load with nothing appended since, and a load after one more held answer (its decision appended);
then a pending item's page (``/items/ID``: its decision record, the verdicts on it) the same two ways, and a verdict
posted on each of ``--repeat`` other pending items (each reads the log for the item's decision record and the verdicts
on it, and appends its own verdict, with fsync, as the page does; the redirect after it is not followed).
Records and items are written without fsync to save time (a guard writes each with fsync; the timed verdicts are
written with it). Needs no model.

Writes ``benchmarks/results/review_page.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import load_average, threads, write_result  # noqa: E402  (after the repository is on sys.path)

TOKEN = "bench-token-0123456789abcdef"
BASE = "http://127.0.0.1:8765"
PASSAGE = "The river rises in the northern hills and flows south through three provinces. " * 12  # ~1 KB


def _item(i: int) -> dict:
    return {"audit_id": f"d{i:06d}", "question": f"Which province does the river reach at kilometre {i}?",
            "answer": f"It reaches province {i % 3}.", "context": PASSAGE, "domain": ("geography", "medicine")[i % 2],
            "risk": 0.3 + (i % 60) / 100, "signals": {"h_neuron": 0.5, "entropy": 2.1, "grounding": 0.4},
            "reasons": ["between thresholds: review"], "time": "2026-03-01T10:00:00+00:00"}  # fmt: skip


def _timed(client, url: str, repeat: int) -> float:
    """The median of ``repeat`` loads of ``url``, in ms (each answered 200)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text[-500:]
    return round(statistics.median(times), 1)


def measure(n: int, folder: Path, repeat: int) -> dict:
    from starlette.testclient import TestClient

    from hguard.audit import AuditLog
    from hguard.review import ReviewQueue, create_app
    from hguard.testing import guard_queue

    audit = AuditLog(folder / "audit.jsonl", key=None)
    queue = guard_queue(folder / "review.sqlite3", audit=audit)
    fsync, os.fsync, connect = os.fsync, (lambda fd: None), ReviewQueue._connect  # filling only

    def unsynced(self):  # the queue's own fsyncs (synchronous = FULL) too: 50,000 items took some 25 minutes
        conn = connect(self)
        conn.execute("PRAGMA synchronous = OFF")
        return conn

    ReviewQueue._connect = unsynced  # type: ignore[method-assign]
    try:
        for i in range(n):
            queue.enqueue(_item(i))
            audit.append({"route": "accept", "question": f"q{i}", "answer": "a", "context": PASSAGE,
                          "domain": "geography", "risk": 0.01}, kind="decision")  # fmt: skip
        bare = ReviewQueue(queue.path)  # decided without the log: a verdict with it reads the whole log, each
        for i in range(0, n, 2):
            bare.decide(f"d{i:06d}", verdict="correct", reviewer="bench")
    finally:
        os.fsync, ReviewQueue._connect = fsync, connect  # type: ignore[method-assign]
    client = TestClient(create_app(queue, token=TOKEN), base_url=BASE, follow_redirects=False)
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "/"},
                       headers={"Origin": BASE}).status_code == 303
    row: dict = {"items": n, "log_records": sum(1 for _ in open(audit.path, "rb")),
                 "log_mb": round(audit.path.stat().st_size / 1e6, 1)}
    for name, url in (("pending", "/"), ("decided", "/decided")):
        row[f"{name}_first_ms"] = _timed(client, url, 1)
        row[f"{name}_unchanged_ms"] = _timed(client, url, repeat)
        appended = []
        for k in range(repeat):  # one more held answer before each load: its decision is read
            queue.enqueue(_item(n + len(row) * 1000 + k))
            appended.append(_timed(client, url, 1))
        row[f"{name}_after_append_ms"] = round(statistics.median(appended), 1)
    # the item page of a pending item, and a verdict on one (each reading what the one before appended: its verdict)
    pending = [f"d{i:06d}" for i in range(1, n, 2)]
    url = f"/items/{pending[0]}"
    row["item_unchanged_ms"] = _timed(client, url, repeat)
    appended = []
    for k in range(repeat):
        queue.enqueue(_item(n + 9000 + k))
        appended.append(_timed(client, url, 1))
    row["item_after_append_ms"] = round(statistics.median(appended), 1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text).group(1)  # type: ignore[union-attr]
    decided = []
    for item_id in pending[1 : repeat + 1]:
        t = time.perf_counter()
        r = client.post(f"/items/{item_id}", data={"csrf_token": csrf, "verdict": "correct", "reviewer": "bench"},
                        headers={"Origin": BASE})
        decided.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 303, r.text[-500:]
    row["decide_ms"] = round(statistics.median(decided), 1)
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--items", type=int, nargs="+", default=[5_000, 50_000])
    ap.add_argument("--repeat", type=int, default=5, help="loads timed per figure (the median is kept)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "review_page.json")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    for n in args.items:
        with tempfile.TemporaryDirectory(prefix="hguard-review-page-") as tmp:
            rows.append(measure(n, Path(tmp), args.repeat))
            print(json.dumps(rows[-1]), flush=True)
    write_result(args.out, {"threads": threads(), "load_average": load_average(), "rows": rows}, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
