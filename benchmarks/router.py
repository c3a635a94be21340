"""Benchmark of the automatic domain choice on the reference calibrations' held-out questions.

The figure a calibration report now prints ("Automatic domain choice on held-out questions"), computed for
the shipped reference probes without answering anything again: the bundled closed-book sets
(calibration/data) and RAG sets (research/rag_data.py, from the public data), split as the reference
calibrations split them (the seed and test fraction in their report.json), a router built from each
domain's training-split questions, and every held-out question routed as the guard routes one asked
without naming a domain (the mean cosine of its 5 nearest router questions, the default
domain_min_similarity), for each domain the calibration fitted. A RAG domain's questions are its passages' own questions, each once.

Shared data: $HGUARD_SHARED_DATA, else <repo>/../shared/data (the RAG sets only; ``--closed-book-only``
skips them).

    python benchmarks/router.py [--closed-book-only] [--limit N] [--out F]

Writes benchmarks/results/router.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _Memo:
    """The default embedder, each text encoded once (held-out and router questions repeat across the runs)."""

    def __init__(self) -> None:
        from hguard.signals.embedding import get_embedder

        self.inner = get_embedder()
        self.seen: dict[str, object] = {}

    def windows(self, text: str) -> list[str]:
        return self.inner.windows(text)

    def encode(self, texts: list[str]):
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if todo:
            self.seen.update(zip(todo, self.inner.encode(todo)))
        return np.stack([self.seen[t] for t in texts])


_TEMPLATED = re.compile(r'^Does the policy text answer the question "(.+)"\?$', re.S)


def _split(examples, report_json: Path, passages: bool):
    from hguard.calibrate.collect import _group_key
    from hguard.calibrate.pipeline import split_groups

    split = json.loads(report_json.read_text())["split"]
    rows = [{"id": e.id, "domain": e.domain, "question": e.question, "group": _group_key(e),
             "condition": (e.meta or {}).get("condition") or "supporting"} for e in examples]
    test = split_groups(rows, split["test_fraction"], split["seed"], passages=[e.context for e in examples] if passages else None)
    return rows, test, split


def _sides(rows, test, supporting_only: bool) -> tuple[dict, dict]:
    sides: tuple[dict, dict] = ({}, {})
    for r, t in zip(rows, test):
        if not supporting_only or r["condition"] == "supporting":
            sides[int(bool(t))].setdefault(r["domain"], {})[r["question"]] = None
    return ({d: list(q) for d, q in sides[0].items()}, {d: list(q) for d, q in sides[1].items()})


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--closed-book-only", action="store_true", help="skip the RAG sets (no public data needed)")
    ap.add_argument("--limit", type=int, default=None, help="at most N held-out questions per domain (a quick look)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "router.json")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hguard._resources import REFERENCE_PROBES
    from hguard.calibrate._pipeline_report import router_coverage
    from hguard.calibrate.data import load_examples, rows_for_mode
    from hguard.calibrate.report import router_markdown

    threads = os.environ.get("HGUARD_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    embedder, t0 = _Memo(), time.perf_counter()
    out: dict = {"threads": threads}
    runs = [("closed_book", [ROOT / "calibration" / "data" / f"{n}.jsonl" for n in ("geography", "chemistry", "literature", "fabricated")],
             REFERENCE_PROBES / "report.json", False)]
    if not args.closed_book_only:
        runs.append(("rag", None, REFERENCE_PROBES / "rag-report" / "report.json", True))
    for name, files, report_json, rag in runs:
        if rag:
            from hguard.calibrate.rag import _reference_rag_sets

            examples = rows_for_mode([e for rows in _reference_rag_sets().values() for e in rows], rag=True)
        else:
            examples = rows_for_mode(load_examples(files), rag=False)
        rows, test, split = _split(examples, report_json, passages=rag)
        train, held = _sides(rows, test, supporting_only=rag)
        shipped = set(json.loads(report_json.read_text())["domains"])  # a domain the calibration skipped has no router
        train, held = ({d: q for d, q in side.items() if d in shipped} for side in (train, held))
        if args.limit:
            held = {d: qs[: args.limit] for d, qs in held.items()}
        out[name] = {"split": split, **router_coverage(train, held, embedder=embedder)}
        print(f"\n### {name}\n" + "\n".join(router_markdown({"router": out[name]})[3:]))
        if rag and "policy" in held:  # the calibration asks "Does the policy text answer the question "..."?"; a user
            # asks the question itself: the same held-out questions in the users' own wording
            own = {"policy": list(dict.fromkeys(m.group(1) for q in held["policy"] if (m := _TEMPLATED.match(q))))}
            out["rag_users_wording"] = router_coverage(train, own, embedder=embedder)
            print("\n### rag, policy's held-out questions in the users' own wording\n"
                  + "\n".join(router_markdown({"router": out["rag_users_wording"]})[3:]))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{out['seconds']} s on {threads} thread(s); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
