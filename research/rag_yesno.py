"""Does the side a yes/no answer takes, read against how well its passage matches the question, separate
hallucinated RAG answers?

The policy domain's calibration asks "Does the policy text answer the question X?": the right reply is "yes" when
the segment is about X and "no" when it is not. Grounding cannot read that (a right "Yes." shares no words with the
passage) and the shipped relevance signals say how well the passage matches the question but not which side the
answer took, so one linear merger cannot tell a "yes" to a matching passage (likely right) from a "no" to it (likely
wrong). The study adds ``says_yes`` (+1 for an answer opening yes/true, -1 for no/false, 0 otherwise) and its
products with the two context-relevance signals and with grounding, and compares the merger's out-of-fold AUROC on
the TRAINING passages only (the calibration's split and folds). The held-out passages are scored once, for the
variants printed, after the choice.

Run (after `hguard calibrate-rag --work runs/rag-work` collected the answers):
HGUARD_THREADS=1 .venv/bin/python -m research.rag_yesno [--work runs/rag-work] [--held-out]
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np

from hguard.calibrate.collect import load_collected
from hguard.calibrate._rag_signals import add_rag_signals, RAG_MERGER_FEATURES
from hguard.calibrate._rag_fit import fit_rag_domain, score_rag_rows
from hguard.calibrate.pipeline import split_groups, auroc
from research.rag_data import build_rag_sets

LEAD = re.compile(r"^\W*(yes|no|true|false)\b", re.I)
ROOT = Path(__file__).resolve().parent.parent

EXTRA = {
    "says_yes": lambda r: r["_side"],
    "yes_x_relevance": lambda r: r["_side"] * r["context_relevance"],
    "yes_x_relevance_embedding": lambda r: r["_side"] * r["context_relevance_embedding"],
    "yes_x_grounding": lambda r: r["_side"] * r["grounding"],
}
VARIANTS = {
    "base": (),
    "+says_yes": ("says_yes",),
    "+side x relevance": ("says_yes", "yes_x_relevance", "yes_x_relevance_embedding"),
    "+side x relevance, grounding": ("says_yes", "yes_x_relevance", "yes_x_relevance_embedding", "yes_x_grounding"),
}


def side(answer: str, question: str) -> float:
    """+1 / -1 for the side the judge reads the answer as taking (``_polarity``: a leading yes/no, or a statement
    read as yes unless negated), 0 for an answer that does not open with yes/no to a question that is not yes/no."""
    from hguard._text import asks_yes_no
    from hguard.calibrate.judge import _polarity

    m = LEAD.match(answer)
    if not (m or asks_yes_no(question)):
        return 0.0
    said = _polarity(answer, question)[0]
    return {"yes": 1.0, "no": -1.0}.get(said or "", 0.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "rag-work"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rag_yesno.json"))
    ap.add_argument("--held-out", action="store_true", help="also score the held-out passages (once, after the choice)")
    args = ap.parse_args(argv)
    col = load_collected(args.work)
    by = {e.id: e for rows in build_rag_sets().values() for e in rows}
    rows = add_rag_signals(None, col, [by[r["id"]] for r in col.rows], args.work, progress=False)
    for r in rows:
        r["_side"] = side(r["answer"], by[r["id"]].question)
        for k, f in EXTRA.items():
            r[k] = float(f(r))
    test = split_groups(rows, 0.3, 0)
    out: dict = {}
    for d in ("general", "policy"):
        dom = np.array([r["domain"] == d for r in rows])
        idx = np.flatnonzero(dom & ~test)
        tr = [rows[i] for i in idx]
        sc = [r for r in tr if r["label"] != "refusal"]
        y = np.array([r["label"] == "hallucinated" for r in sc], int)
        s = np.array([r["_side"] for r in sc])
        out[d] = {"train": {"n": len(sc), "right": int((y == 0).sum()), "hallucinated": int(y.sum()),
                            "says_yes": int((s > 0).sum()), "says_no": int((s < 0).sum()), "neither": int((s == 0).sum())},
                  "single_auroc_train": {k: auroc(y, np.array([r[k] for r in sc])) for k in EXTRA}, "variants": {}}
        print(d, out[d]["train"], {k: round(v, 3) for k, v in out[d]["single_auroc_train"].items()}, flush=True)
        hi = np.flatnonzero(dom & test)
        ho = [rows[i] for i in hi if rows[i]["label"] != "refusal"]
        hix = np.array([i for i in hi if rows[i]["label"] != "refusal"], int)
        for name, extra in VARIANTS.items():
            f = fit_rag_domain(d, tr, col.features[idx], seed=0, n_layers=30, d_ff=col.features.shape[1] // 30,
                               target=0.1, confidence=0.9, merger_features=RAG_MERGER_FEATURES + extra)
            res = {"train_oof_merged": f["train"]["cv_auroc_oof_merged"], "merger_C": f["train"]["merger_C"]}
            if args.held_out:
                yh = np.array([r["label"] == "hallucinated" for r in ho], int)
                res["held_out_merged"] = auroc(yh, score_rag_rows(f, ho, col.features[hix])["merged"])
                res["held_out_n"] = [int((yh == 0).sum()), int(yh.sum())]
            out[d]["variants"][name] = res
            print(d, name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}, flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
