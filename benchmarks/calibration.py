"""Quality and cost of per-domain calibration on the default model (issue: calibration).

1. Reads the reference calibration report (``calibration/reference.py`` writes it to
   hguard/_data/probes/smollm2-135m/report.json) and checks, on each bundled domain's held-out split,
   the targets: neuron-probe AUROC >= 0.85, merged AUROC >= 0.88, each ahead of the best single
   baseline (mean/min log-probability, entropy, length); then the same targets on held-out families
   (leave-one-family-out: mean over families, none below 0.75) and the out-of-distribution trigger rates.
2. With ``--public N``: calibrates and reports the first N questions of each public set in
   ../shared/data (TriviaQA, NQ-Open, PopQA, ARC-DA valid, SelfAware: half answerable, half unanswerable),
   where the model is right too rarely for a target.

The time to calibrate one domain of 1,500 questions (the 15-minute budget) is measured by
benchmarks/domain_calibration.py.

Writes benchmarks/results/calibration.json (or --out) and prints Markdown tables.
Run: .venv/bin/python benchmarks/calibration.py [--public N] [--out FILE] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hguard import REFERENCE_PROBES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REFERENCE = REFERENCE_PROBES / "report.json"
BASELINES = ("mean_logprob", "min_logprob", "entropy", "length")


def _f(x):
    return "n/a" if x is None else f"{x:.3f}"


def check_targets(report: dict) -> tuple[list[dict], str]:
    rows = []
    lines = [
        "| domain | n (held-out) | right / halluc. | halluc. rate | probe AUROC (95% CI) | merged AUROC (95% CI) | best baseline (AUROC) | random neurons | probe >= 0.85 | merged >= 0.88 | both ahead of baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    from hguard.calibrate.report import _ci, class_counts

    for d, m in report["domains"].items():
        a = m["auroc"]
        base = max(BASELINES, key=lambda k: -1 if a.get(k) is None else a[k])
        row = {
            "domain": d,
            "n": m["n"],
            "probe": a["probe"],
            "merged": a["merged"],
            "best_baseline": base,
            "best_baseline_auroc": a[base],
            "random_neurons": a["random_neurons"],
            "probe_target_met": a["probe"] is not None and a["probe"] >= 0.85,
            "merged_target_met": a["merged"] is not None and a["merged"] >= 0.88,
            "ahead_of_baseline": a["probe"] is not None and a[base] is not None and a["probe"] > a[base] and a["merged"] > a[base],
        }
        rows.append(row)
        yes = lambda b: "yes" if b else "**no**"
        cc = class_counts(m)
        refusals = f" ({m['refusals']} refusal{'s' if m['refusals'] != 1 else ''})" if m.get("refusals") else ""
        lines.append(
            f"| {d} | {m['n']}{refusals} | {'n/a' if cc is None else f'{cc[0]} / {cc[1]}'} | {_f(m['hallucination_rate'])} | "
            f"{_ci(m, 'probe')} | {_ci(m, 'merged')} | "
            f"{base} ({_f(a[base])}) | {_f(a['random_neurons'])} | {yes(row['probe_target_met'])} | "
            f"{yes(row['merged_target_met'])} | {yes(row['ahead_of_baseline'])} |"
        )
    return rows, "\n".join(lines)


def public_sets(n: int, work: Path) -> dict:
    from research import public
    from hguard.calibrate.pipeline import calibrate

    examples = (
        public.load_triviaqa(n) + public.load_nq_open(n) + public.load_popqa(n)
        + public.load_arc_da("valid", n)
        # SelfAware lists its answerable questions first: half of each, so that abstaining is tested too
        + public.load_selfaware(n - n // 2) + public.load_selfaware(n // 2, unanswerable_only=True)
    )
    out = work / "public-calibration"
    rep = calibrate(examples, out, work_dir=work / "public-work", progress=True, plots=True)
    return {"report_dir": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out), "domains": rep["domains"], "skipped": rep["skipped"], "transfer": rep["transfer"]}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public", type=int, default=0, help="also calibrate N questions of each public set")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "calibration.json")
    ap.add_argument("--work", type=Path, default=ROOT / "runs", help="folder for the public sets' features and report")
    return ap


def main(argv: list[str] | None = None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    result: dict = {}
    report = json.loads(REFERENCE.read_text())
    rows, table = check_targets(report)
    result["reference"] = {"targets": rows, "transfer": report["transfer"], "split": report["split"], "timing": report["timing"]}
    print("Reference probes, held-out split:\n")
    print(table)
    tr = report["transfer"]
    print(f"\nTransfer: mean within-domain AUROC {_f(tr['mean_within'])}, across domains {_f(tr['mean_across'])}.")
    from hguard.calibrate.report import families_markdown, ood_markdown

    result["reference"]["families"] = {d: m.get("families", {}).get("summary") for d, m in report["domains"].items()}
    result["reference"]["ood"] = report.get("ood")
    print("\n".join(families_markdown(report) + ood_markdown(report)))
    if args.public:
        p = public_sets(args.public, args.work.resolve())
        result["public"] = p
        print("\nPublic sets (no target):\n")
        print("| set | n | halluc. rate | probe | merged | mean_logprob | min_logprob | entropy | length | random |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for d, m in p["domains"].items():
            a = m["auroc"]
            print(f"| {d} | {m['n']} | {_f(m['hallucination_rate'])} | " + " | ".join(_f(a.get(k)) for k in ("probe", "merged", "mean_logprob", "min_logprob", "entropy", "length", "random_neurons")) + " |")
        for d, why in p["skipped"].items():
            print(f"- {d}: skipped: {why}")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Parts not rerun this time (timing, public sets) keep their last measured values.
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **result}, indent=1, default=float))


if __name__ == "__main__":
    main()
