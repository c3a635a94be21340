"""How often early stopping fires in the holding stream mode, and how much time it saves.

Each question is answered twice by the guard under the default policy: once in full, once with
``early_stop=True`` (generation ends when the running merged risk reaches the domain's abstain
threshold). Reports the share of answers stopped early, the tokens and seconds saved, and whether the
route changed. Questions: held-out rows of the bundled domains (fixed seed).

Writes benchmarks/results/early_stop.json (or --out) and prints a Markdown table.
Run: .venv/bin/python benchmarks/early_stop.py [--n 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="questions per domain")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "early_stop.json")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from hguard.calibrate.data import load_examples
    from hguard.guard import Guard

    guard = Guard.from_policy(audit=None)
    guard.audit = None  # a measurement, not decisions to keep
    guard.review_queue = None
    data = ROOT / "calibration" / "data"
    rows = []
    rng = random.Random(0)
    for domain in ("geography", "chemistry", "literature"):
        exs = [e for e in load_examples([data / f"{domain}.jsonl", data / "fabricated.jsonl"]) if e.domain == domain]
        rows += [(domain, e.question) for e in rng.sample(exs, args.n)]
    out = []
    for domain, q in rows:
        t = time.perf_counter()
        full = guard.invoke(q, domain=domain)
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        early = guard.invoke(q, domain=domain, early_stop=True)
        t_early = time.perf_counter() - t
        out.append(
            {
                "domain": domain,
                "question": q,
                "stopped_early": any("stopped early" in r for r in early.reasons),
                "tokens_full": full.signals["length"],
                "tokens_early": early.signals["length"],
                "seconds_full": t_full,
                "seconds_early": t_early,
                "route_full": full.route,
                "route_early": early.route,
            }
        )
    stopped = [r for r in out if r["stopped_early"]]
    summary = {
        "n": len(out),
        "stopped_early": len(stopped),
        "share_stopped": len(stopped) / len(out),
        "seconds_full": sum(r["seconds_full"] for r in out),
        "seconds_early": sum(r["seconds_early"] for r in out),
        "tokens_saved": sum(r["tokens_full"] - r["tokens_early"] for r in out),
        "tokens_full": sum(r["tokens_full"] for r in out),
        "routes_changed": sum(r["route_full"] != r["route_early"] for r in out),
        "full_route_of_stopped": {k: sum(r["route_full"] == k for r in stopped) for k in ("accept", "review", "abstain")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": out}, indent=1))
    s = summary
    print("| measure | value |\n|---|---|")
    print(f"| answers | {s['n']} ({args.n} per bundled domain) |")
    print(f"| stopped early | {s['stopped_early']} ({100 * s['share_stopped']:.0f}%) |")
    print(f"| tokens generated, full / with early stop | {s['tokens_full']:.0f} / {s['tokens_full'] - s['tokens_saved']:.0f} |")
    print(f"| seconds, full / with early stop | {s['seconds_full']:.1f} / {s['seconds_early']:.1f} |")
    print(f"| routes changed by stopping early | {s['routes_changed']} (full-answer routes of the stopped ones: {s['full_route_of_stopped']}) |")


if __name__ == "__main__":
    main()
