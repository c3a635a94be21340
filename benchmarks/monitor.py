"""How many spot-checked answers the monitor needs to detect a rise in accepted hallucinations, and how often
it tightens when nothing rose. A simulation of the monitor's own decision rule (hguard.monitor.breached) on
Bernoulli verdicts; the monitor is run after every reviewed spot-check.

Setting: the example policy's target (20% hallucinations among accepted answers, confidence 0.9) and the
default spot_check_rate (0.02), so accepted answers = spot-checks / 0.02. Scenarios:

* detection: after `history` reviewed spot-checks at a rate where the target holds (the geography probe's
  calibrated accepted rate, 0.146), the rate rises to twice the target (0.40); how many post-rise spot-checks
  until the domain tightens. history 0 is a fresh start (deployment, or just after a lift). Runs in which the
  monitor already tightened before the rise are counted apart (they are false alarms of the history phase).
* false alarms: probability of tightening within N spot-checks at rates 0.10, 0.146 and exactly the target.

Both breach rules are measured: lower_bound (the default: tighten once the target is shown broken) and
upper_bound (tighten once the target is no longer certified), each on both live bounds: per_run (the
default: Clopper-Pearson, exact for one look) and sequential (a confidence sequence, valid at every look).
Shares carry 95% Clopper-Pearson intervals.

Writes benchmarks/results/monitor.json (``--out``) and prints Markdown tables.
Run: .venv/bin/python benchmarks/monitor.py [--sims 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import random
from functools import lru_cache
from pathlib import Path

from hguard._stats import clopper_pearson_interval

HERE = Path(__file__).resolve().parent
# (breach rule, live bounds): the policy's default first
RULES = (("lower_bound", "per_run"), ("lower_bound", "sequential"), ("upper_bound", "per_run"), ("upper_bound", "sequential"))
TARGET, CONFIDENCE, RATE = 0.20, 0.90, 0.02
OK_RATE = 0.146  # geography's accepted hallucination rate on its calibration answers (6 of 41)


@lru_cache(maxsize=None)
def _breached(k: int, n: int, rule: str, bounds: str) -> bool:
    from hguard.monitor import breached

    return breached(k, n, TARGET, CONFIDENCE, rule, bounds)


def _first_alarm(rng: random.Random, p: float, cap: int, rule: tuple[str, str], k: int = 0, n: int = 0) -> tuple[int | None, int, int]:
    """Spot-checks (after the k of n already seen) until the rule (breach rule, bounds) fires; None when not
    within cap."""
    for i in range(1, cap + 1):
        n += 1
        k += rng.random() < p
        if (rule[0] == "upper_bound" or k / n > TARGET) and _breached(k, n, *rule):
            return i, k, n
    return None, k, n


def _quantiles(xs: list[int]) -> dict:
    xs = sorted(xs)
    m = len(xs)
    if not m:
        return {"n": 0}
    q = lambda f: xs[min(m - 1, int(f * m))]  # noqa: E731
    # 95% interval of the median from order statistics (normal approximation to the binomial ranks)
    lo = max(0, int(m / 2 - 1.96 * math.sqrt(m) / 2))
    hi = min(m - 1, int(math.ceil(m / 2 + 1.96 * math.sqrt(m) / 2)))
    return {"n": m, "median": q(0.5), "median_ci95": [xs[lo], xs[hi]], "p05": q(0.05), "p95": q(0.95), "mean": sum(xs) / m}


def _ci(k: int, n: int) -> list[float]:
    return clopper_pearson_interval(k, n) or [0.0, 1.0]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--cap", type=int, default=2000, help="spot-checks simulated at most per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "monitor.json", help="where the JSON goes")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    rng = random.Random(args.seed)
    out: dict = {"target": TARGET, "confidence": CONFIDENCE, "spot_check_rate": RATE, "ok_rate": OK_RATE,
                 "risen_rate": 2 * TARGET, "sims": args.sims, "cap": args.cap, "detection": [], "false_alarm": []}  # fmt: skip
    for rule in RULES:
        for history in (0, 100, 400):
            delays, before = [], 0
            for _ in range(args.sims):
                first, k, n = _first_alarm(rng, OK_RATE, history, rule) if history else (None, 0, 0)
                if first is not None:
                    before += 1
                    continue
                d, _, _ = _first_alarm(rng, 2 * TARGET, args.cap, rule, k, n)
                if d is not None:
                    delays.append(d)
            row = {"rule": rule[0], "bounds": rule[1], "history": history, "tightened_before_rise": before,
                   "tightened_before_rise_ci95": _ci(before, args.sims),
                   "spot_checks_to_detect": _quantiles(delays), "not_detected_within_cap": args.sims - before - len(delays)}  # fmt: skip
            out["detection"].append(row)
        for p in (0.10, OK_RATE, TARGET):
            for horizon in (100, 500):
                alarms = sum(_first_alarm(rng, p, horizon, rule)[0] is not None for _ in range(args.sims))
                out["false_alarm"].append({"rule": rule[0], "bounds": rule[1], "rate": p, "within": horizon, "tightened": alarms,
                                           "share": alarms / args.sims, "ci95": _ci(alarms, args.sims)})  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"| rule | bounds | history at {OK_RATE} | tightened before the rise (95% CI) | spot-checks after the rise to detect: median [95% CI] (5th-95th pct) | accepted answers at rate {RATE} (median) |")
    print("|---|---|---|---|---|---|")
    for r in out["detection"]:
        q = r["spot_checks_to_detect"]
        lo, hi = r["tightened_before_rise_ci95"]
        detect = (f"{q['median']} [{q['median_ci95'][0]}-{q['median_ci95'][1]}] ({q['p05']}-{q['p95']}), n={q['n']} | {q['median'] / RATE:,.0f}"
                  if q["n"] else ("every run had tightened before the rise" if r["tightened_before_rise"] == args.sims
                                  else "no run detected the rise") + ", n=0 | -")  # fmt: skip
        print(f"| {r['rule']} | {r['bounds']} | {r['history']} | {r['tightened_before_rise'] / args.sims:.1%} ({lo:.1%}-{hi:.1%}) | {detect} |")
    print()
    print("| rule | bounds | true rate | tightened within 100 checks (95% CI) | within 500 |")
    print("|---|---|---|---|---|")
    fa = out["false_alarm"]
    for i in range(0, len(fa), 2):
        a, b = fa[i], fa[i + 1]
        print(f"| {a['rule']} | {a['bounds']} | {a['rate']} | {a['share']:.1%} ({a['ci95'][0]:.1%}-{a['ci95'][1]:.1%}) | "
              f"{b['share']:.1%} ({b['ci95'][0]:.1%}-{b['ci95'][1]:.1%}) |")  # fmt: skip


if __name__ == "__main__":
    main()
