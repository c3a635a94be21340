"""Benchmark of the RAG number hold (``hguard.calibrate.judge.unstated_numbers``) on cases it was not fitted on.

Two sets of cases, each written by an evaluator who had read neither the rules nor their tests. Set 1,
benchmarks/cases/number_hold.jsonl, holds 271 faithful answers (the passage's figures restated as a chat model
restates them) and 218 wrong ones (exactly one figure, unit, currency, scale, date or rate changed), over seven
fields, written by an evaluator who had not read the rules or their tests (stop 41). Its held-out figure is the one
measured before four rate rules were changed from the patterns it reported (benchmarks/README.md); what this
script prints now is tuned on it. A faithful answer held is a needless review; a wrong answer not held is a
changed figure the hold let through (grounding and the probe still score it). Set 2,
benchmarks/cases/number_hold_blind2.jsonl (249 faithful, 183 wrong, eight other fields), was written after those
changes; the rules changed since came from other trials' cases, never from its own (which are not read to change
them): its figure is held out. Set 3, benchmarks/cases/number_hold_finance_trial.jsonl (81 right answers, 87 wrong
figures over annual reports, fee schedules and loan terms), is a bank's trial's blind cases, written from the
README's promises before any run; the rules of the stop after it were written after reading them, so its figure is
not held out.

    python benchmarks/number_hold.py [--out F]

Writes benchmarks/results/number_hold.json (or --out) and prints a Markdown table: per field and overall, the
share held among faithful answers and the share missed among wrong ones, with n and exact 95% intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = {"set 1 (tuned on)": ROOT / "benchmarks" / "cases" / "number_hold.jsonl",
         "set 2 (held out)": ROOT / "benchmarks" / "cases" / "number_hold_blind2.jsonl",
         "set 3 (a bank's trial, tuned on)": ROOT / "benchmarks" / "cases" / "number_hold_finance_trial.jsonl"}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "number_hold.json")
    return ap


def main(argv: list[str] | None = None) -> int:
    from hguard._stats import clopper_pearson_interval
    from hguard.calibrate.judge import unstated_numbers

    args = build_parser().parse_args(argv)
    result = {name: _measure(path, unstated_numbers, clopper_pearson_interval) for name, path in CASES.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, r in result.items():
        print(f"\n{name}: {r['cases']}\n")
        print("| field | faithful held (of n) | 95% interval | wrong missed (of n) | 95% interval |")
        print("|---|---|---|---|---|")
        for f in r["faithful_held"]:
            a, b = r["faithful_held"][f], r["wrong_missed"][f]
            ia, ib = a["interval"], b["interval"]
            print(f"| {f} | {a['count']} / {a['n']} ({a['rate']:.1%}) | [{ia[0]:.1%}, {ia[1]:.1%}] "
                  f"| {b['count']} / {b['n']} ({b['rate']:.1%}) | [{ib[0]:.1%}, {ib[1]:.1%}] |")
    return 0


def _measure(path: Path, unstated_numbers, clopper_pearson_interval) -> dict:
    """Needless holds among the faithful answers and misses among the wrong ones of one case file."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (kind, field) -> [n, counted]
    examples: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        held = unstated_numbers(r["answer"], r["context"], r["question"])
        counted = bool(held) if r["kind"] == "faithful" else not held  # a needless hold; a miss
        for field in (r["field"], "all"):
            counts[(r["kind"], field)][0] += 1
            counts[(r["kind"], field)][1] += counted
        if counted and len(examples[r["kind"]]) < 40:
            examples[r["kind"]].append({**r, "held": held})

    def figure(kind: str, field: str) -> dict:
        n, k = counts[(kind, field)]
        return {"n": n, "count": k, "rate": k / n if n else None, "interval": clopper_pearson_interval(k, n)}

    fields = sorted({f for _, f in counts if f != "all"}) + ["all"]
    return {"cases": str(path.relative_to(ROOT)), "n_cases": len(rows),
            "faithful_held": {f: figure("faithful", f) for f in fields},
            "wrong_missed": {f: figure("wrong", f) for f in fields},
            "examples": dict(examples)}


if __name__ == "__main__":
    raise SystemExit(main())
