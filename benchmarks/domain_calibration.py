"""Time one whole domain's calibration on the default model, and its leave-one-family-out figures.

The issue's budget: calibrating one domain of 1,500 questions stays under 15 minutes on this machine.
This runs the calibration `hguard calibrate` runs (collection, probe with its CV, merger, fact folds,
leave-one-family-out folds, thresholds, report) on the first N questions of a deterministic shuffle
of the domain stratified by family (`random.Random(seed)`; every family in proportion, so a prefix of
the collection order is a sample of every family), and times collection and fitting apart, with the
torch threads and the load average before and after (the machine is shared: the load says what else ran).

Collection is resumable (answers go to --work per batch). A collection stopped part-way can be fitted
with --collected-only (the questions already answered in --work): the fit is then timed, and the
collection rate is read from the shards' write times (steady rate after the first batch), so any
figure for 1,500 questions is an extrapolation and is labelled so.

Writes --out (JSON) and prints the leave-one-family-out tables of the report the calibration writes.
Run: HGUARD_THREADS=1 .venv/bin/python benchmarks/domain_calibration.py --domain geography --questions 1500
     [--collected-only] [--work DIR] [--probes DIR] [--batch-size 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_average, write_result  # noqa: E402  (after the repository is on sys.path)

DATA = ROOT / "calibration" / "data"
BUDGET_SECONDS = 900  # the issue's: 15 minutes per domain of 1,500 questions


def stratified_sample(domain: str, n: int | None, seed: int = 0) -> list:
    """The domain's bundled questions (its file and its fabricated rows) in a deterministic order that
    spreads every family evenly (each family shuffled, then interleaved by rank / family size); the
    first ``n`` (all when None)."""
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.families import family_of

    files = [p for p in (DATA / f"{domain}.jsonl", DATA / "fabricated.jsonl") if p.exists()]
    examples = [e for e in load_examples(files) if e.domain == domain]
    by_family: dict[str, list] = {}
    for e in examples:
        by_family.setdefault(family_of(e), []).append(e)
    rng = random.Random(seed)
    keyed = []
    for fam in sorted(by_family):
        rows = by_family[fam]
        rng.shuffle(rows)
        offset = rng.random()
        keyed += [((k + offset) / len(rows), fam, k, e) for k, e in enumerate(rows)]
    keyed.sort(key=lambda t: t[:3])
    ordered = [t[3] for t in keyed]
    return ordered if n is None else ordered[:n]


def shard_rate(work: Path) -> dict | None:
    """Answers per second from the shards' write times: each shard's answers over the time since the
    shard before it. A gap over ten times the median (the collection stopped and resumed, or the fit ran
    in between) is a pause: neither it nor its shard counts. None with fewer than two shards."""
    entries = sorted((p.stat().st_mtime, len(json.loads(p.read_text()).get("row_ids", [])))
                     for p in (work / "shards").glob("shard-*.json"))
    if len(entries) < 2:
        return None
    gaps = [(b[0] - a[0], b[1]) for a, b in zip(entries, entries[1:])]
    median = sorted(g for g, _ in gaps)[len(gaps) // 2]
    kept = [(g, k) for g, k in gaps if g <= 10 * median]
    span, answers = sum(g for g, _ in kept), sum(k for _, k in kept)
    return {"answers": answers, "seconds": span, "answers_per_second": answers / span if span > 0 else None,
            "shards": len(entries), "pauses_left_out": len(gaps) - len(kept),
            "measured_on": "shard write times (each shard after the one before it; pauses left out)"}


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.questions is not None and args.questions < 1:
        ap.error(f"--questions {args.questions} is out of range; pass at least 1, or leave it out for the whole domain")
    os.environ.setdefault("HGUARD_THREADS", str(args.threads))
    import torch

    from hguard.calibrate.collect import load_collected
    from hguard.calibrate.pipeline import calibrate
    from hguard.calibrate.report import families_markdown

    torch.set_num_threads(args.threads)
    examples = stratified_sample(args.domain, args.questions, args.seed)
    if not examples:
        ap.error(f"--domain {args.domain!r} has no bundled questions; use geography, chemistry or literature")
    work, probes = args.work.resolve(), args.probes.resolve()
    requested = len(examples)
    if args.collected_only:
        done = {r["id"] for r in load_collected(work).rows} if (work / "shards").exists() else set()
        examples = [e for e in examples if e.id in done]
        if not examples:
            ap.error(f"{work} holds no answers to these questions; run without --collected-only first")
    answered = {i for p in (work / "shards").glob("shard-*.json") for i in json.loads(p.read_text()).get("row_ids", [])}
    new = sum(e.id not in answered for e in examples)
    load_before = load_average()
    t0 = time.perf_counter()
    report = calibrate(examples, probes, work_dir=work, target=args.target, confidence=args.confidence,
                       batch_size=args.batch_size, progress=not args.quiet)
    total = time.perf_counter() - t0
    load_after = load_average()
    collect = report["timing"]["collect_seconds"]
    result = {
        "domain": args.domain,
        "questions_requested": requested,
        "questions_calibrated": len(examples),
        "collected_only": args.collected_only,
        "torch_threads": args.threads,
        "batch_size": args.batch_size,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds_total": total,
        "answered_before_this_run": len(examples) - new,
        "collected_this_run": new,
        "seconds_collect_this_run": collect,
        "seconds_fit": total - collect,  # the model's loading included (a few seconds)
        "budget_seconds_per_1500": BUDGET_SECONDS,
        "collection_rate": shard_rate(work),
    }
    rate = (result["collection_rate"] or {}).get("answers_per_second")
    if new and collect > 0:
        result["answers_per_second_this_run"] = new / collect
    if new == len(examples):  # from scratch: the whole calibration measured
        result["seconds_per_1500_measured"] = total * 1500 / len(examples)
    if rate:
        # collection at the shard rate, fitting as measured (its cost grows with the answers: a floor)
        result["seconds_per_1500_extrapolated"] = 1500 / rate + result["seconds_fit"]
    result["families"] = report["domains"].get(args.domain, {}).get("families")
    result["fact_held_out"] = {k: report["domains"].get(args.domain, {}).get(k) for k in ("n", "auroc", "auroc_ci95")}
    print("\n".join(families_markdown(report)))
    print(f"\n{args.domain}: {len(examples)} questions calibrated in {total:.0f} s "
          f"(collection this run {collect:.0f} s, fit {result['seconds_fit']:.0f} s), {args.threads} torch thread(s), "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    if "seconds_per_1500_measured" in result:
        print(f"Measured from scratch: {result['answers_per_second_this_run']:.2f} answers/s; "
              f"{result['seconds_per_1500_measured']:.0f} s per 1,500 questions, budget {BUDGET_SECONDS} s.")
    if rate:
        print(f"Collection rate {rate:.2f} answers/s ({result['collection_rate']['answers']} answers over "
              f"{result['collection_rate']['seconds']:.0f} s of shard writes); 1,500 questions: "
              f"{result['seconds_per_1500_extrapolated']:.0f} s (collection extrapolated at that rate + fit measured), "
              f"budget {BUDGET_SECONDS} s.")
    write_result(args.out, result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", default="geography", help="bundled domain to calibrate (geography, chemistry, literature)")
    ap.add_argument("--questions", type=int, default=1500, help="first N of the family-stratified order (the issue's 1,500)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the family-stratified order")
    ap.add_argument("--collected-only", action="store_true", help="fit on the questions already answered in --work")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "domain-work", help="folder for collected features (resumable)")
    ap.add_argument("--probes", type=Path, default=ROOT / "runs" / "domain-probe", help="folder for the probes and report")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the README figure: 1)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--target", type=float, default=0.20, help="policy target (the reference calibration's)")
    ap.add_argument("--confidence", type=float, default=0.90)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "domain_calibration.json")
    return ap


if __name__ == "__main__":
    raise SystemExit(main())
