"""Benchmark of the reversed-claim hold (``hguard.signals.grounding.reversed_claims``): an answer sentence that says
the opposite of the passage sentence it restates (one of the two negated) is held for review.

Two measurements. (1) benchmarks/cases/reversed_claims.jsonl: 20 passages of policy and benefits text, each with one
faithful paraphrase and two answers that reverse it while reusing its words (negation dropped or added, "may" /
"may not", quantifiers, comparatives, before / after, opt in / out, required / optional, parties swapped), written by
a user's trial; the hold's rule was chosen on these cases, so its figures here are not held out. (2) The default
model's own held-out answers of the RAG benchmark (``benchmarks/results/rag.json``: answers to the held-out passages
of the bundled RAG sets, labelled by the judge; passages rebuilt by ``research.rag_data``), which chose nothing: how
many right answers the hold sends to review, and how many hallucinated ones it catches, per condition. Answers that
decline are left out (the guard abstains on them before this hold). Reported apart, so that (1) stays comparable:
(3) benchmarks/cases/reversed_claims_legal.jsonl, negatively worded contract clauses (non-compete, non-solicit,
confidentiality, damages waiver, assignment, governing law) of the bundled contract_qa rows, with faithful answers (four
from a legal team's trial, the rest) and reversals written while fixing the hold for them: not blind, not held out.
(4) benchmarks/cases/reversed_claims_review.jsonl, a review's 151 new cases of the legal fix (74 reversals of negated or
qualified clauses, "without approval" against "only after approval", "unless", "non-" words, "prohibited"; 77 faithful
answers, "neither / nor", "NDA", "banned"; English, German, French), reported apart with the figures of the rule before
the legal fix and of its first version: seen while narrowing that version, so not blind either.
(5) benchmarks/cases/reversed_claims_pairing.jsonl, cases written while fixing the hold, per class: "pairing", an answer
sentence whose words a passage sentence stating something else shares more than the sentence stating its subject and
predicate (a PubMedQA-style passage on CT after blunt abdominal trauma among them); "reply_no", a leading "No" that is
the subject's ("No refunds are given."), not the reply; "time_bound", a negation with a time bound on the other side
("No refunds are given after 30 days." of "... within 30 days"); "cap", a cap against a bound not to exceed ("capped
at" of "shall not exceed", "is not capped"): not blind, not held out.

    python benchmarks/reversed_claims.py [--out F]

Writes benchmarks/results/reversed_claims.json (or --out) and prints Markdown tables with n and exact 95% intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = ROOT / "benchmarks" / "cases" / "reversed_claims.jsonl"
LEGAL_CASES = ROOT / "benchmarks" / "cases" / "reversed_claims_legal.jsonl"
#: the legal cases under the rule before they were read (commit 771d278: every negation of a sentence counted, its
#: carve-outs' too), measured by this script then; recorded beside each run's figures
LEGAL_BEFORE_FIX = {"faithful / all": "16 / 31", "faithful / trial": "4 / 4", "faithful / written": "12 / 27",
                    "reversed / all": "13 / 23", "rule": "commit 771d278"}
REVIEW_CASES = ROOT / "benchmarks" / "cases" / "reversed_claims_review.jsonl"
#: the review's cases under the rule before the legal fix (commit 771d278) and under its first version (751add0, which
#: read a qualifier one-sided: 14 of these reversals held at 771d278 passed), measured by the review's harness then
REVIEW_BEFORE = {
    "commit 771d278": {"reversed / all": "44 / 74", "reversed / en": "42 / 66", "reversed / de": "1 / 4",
                       "reversed / fr": "1 / 4", "faithful / all": "20 / 77", "faithful / en": "13 / 69",
                       "faithful / de": "4 / 4", "faithful / fr": "3 / 4"},
    "commit 751add0": {"reversed / all": "51 / 74", "reversed / en": "49 / 66", "reversed / de": "1 / 4",
                       "reversed / fr": "1 / 4", "faithful / all": "34 / 77", "faithful / en": "27 / 69",
                       "faithful / de": "4 / 4", "faithful / fr": "3 / 4"}}
PAIRING_CASES = ROOT / "benchmarks" / "cases" / "reversed_claims_pairing.jsonl"
RAG_ANSWERS = ROOT / "benchmarks" / "results" / "rag.json"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reversed_claims.json")
    return ap


def _figure(k: int, n: int) -> dict:
    from hguard._stats import clopper_pearson_interval

    return {"n": n, "held": k, "rate": k / n if n else None, "interval": clopper_pearson_interval(k, n)}


def _cases(path: Path = CASES, field: str = "class") -> dict:
    """Held per kind and class (the legal cases: per source) of a case file."""
    from hguard.signals.grounding import reversed_claims

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        held = bool(reversed_claims(r["answer"], r["context"]))
        for cls in (r[field], "all"):
            counts[(r["kind"], cls)][0] += 1
            counts[(r["kind"], cls)][1] += held
    return {f"{kind} / {cls}": _figure(k, n) for (kind, cls), (n, k) in sorted(counts.items())}


def _model_answers() -> dict:
    """Held per domain, condition and label of the RAG benchmark's held-out answers."""
    from hguard.calibrate.judge import declines
    from hguard.signals.grounding import reversed_claims
    from research.rag_data import build_rag_sets

    passages = {e.id: e.context for rows in build_rag_sets().values() for e in rows}
    report = json.loads(RAG_ANSWERS.read_text(encoding="utf-8"))
    out: dict[str, dict] = {}
    for domain, m in report["domains"].items():
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for a in m["answers"]:
            context = passages.get(a["id"])
            if not context or declines(a["answer"], a["question"]) is not None:
                continue
            held = bool(reversed_claims(a["answer"], context))
            for key in (f"{a['condition']} / {a['label']}", f"all / {a['label']}"):
                counts[key][0] += 1
                counts[key][1] += held
        out[domain] = {key: _figure(k, n) for key, (n, k) in sorted(counts.items())}
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = {"cases": _cases(), "model_answers": _model_answers(), "legal_cases": _cases(LEGAL_CASES, "source"),
              "legal_cases_before_fix": LEGAL_BEFORE_FIX,
              "review_cases": _cases(REVIEW_CASES, "lang"), "review_cases_before": REVIEW_BEFORE,
              "pairing_cases": _cases(PAIRING_CASES),
              "note": "cases: the rule was chosen on them (not held out); model_answers: held out, chose nothing; "
                      "legal_cases: written while fixing the hold for negatively worded clauses (not blind, not held "
                      "out; source 'trial': a legal team's trial's faithful answers); review_cases: a review's new cases of the "
                      "legal fix, seen while narrowing it (not blind), per language; pairing_cases: written while fixing the "
                      "hold's pairing and reading (not blind, not held out), per class"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\nthe trial's cases (the rule was chosen on them)\n\n| kind / class | held (of n) | 95% interval |\n|---|---|---|")
    for key, f in result["cases"].items():
        print(f"| {key} | {f['held']} / {f['n']} | [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] |")
    for domain, figures in result["model_answers"].items():
        print(f"\nthe default model's held-out RAG answers, {domain}\n\n| condition / label | held (of n) | 95% interval |"
              "\n|---|---|---|")
        for key, f in figures.items():
            print(f"| {key} | {f['held']} / {f['n']} | [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] |")
    print("\nnegatively worded contract clauses (written while fixing the hold for them: not blind)\n\n"
          "| kind / source | held (of n) | 95% interval |\n|---|---|---|")
    for key, f in result["legal_cases"].items():
        print(f"| {key} | {f['held']} / {f['n']} | [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] |")
    print("\na review's new cases of the legal fix (seen while narrowing it: not blind)\n\n"
          "| kind / language | held (of n) | 95% interval | at 771d278 | at 751add0 |\n|---|---|---|---|---|")
    for key, f in result["review_cases"].items():
        print(f"| {key} | {f['held']} / {f['n']} | [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] | "
              f"{REVIEW_BEFORE['commit 771d278'][key]} | {REVIEW_BEFORE['commit 751add0'][key]} |")
    print("\ncases written while fixing the hold's pairing and reading (not blind)\n\n"
          "| kind / class | held (of n) | 95% interval |\n|---|---|---|")
    for key, f in result["pairing_cases"].items():
        print(f"| {key} | {f['held']} / {f['n']} | [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
