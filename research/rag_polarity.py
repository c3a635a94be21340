"""Does a negation mismatch between the answer and its passage separate hallucinated RAG answers?

A new user's wrong answer "The website does not collect your IP address." to a passage that says "These
Features may collect your IP address" got the lowest risk of the session: no signal reads negation. This
study computes, per collected RAG answer, whether the answer (after a leading yes/no) is negated, whether
the passage sentence sharing most content words with it is, and whether the two differ; then their AUROC
and the merger's out-of-fold AUROC with them added, on the TRAINING passages only (held-out rows are not
read: the signal would have to earn its place there first).

Run (after `calibration/reference.py --rag` collected runs/rag-work):
HGUARD_THREADS=1 .venv/bin/python -m research.rag_polarity [--work runs/rag-work]
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np

from hguard.calibrate.collect import load_collected
from hguard.calibrate._rag_signals import add_rag_signals, RAG_MERGER_FEATURES
from hguard.calibrate._rag_fit import fit_rag_domain
from hguard.calibrate.pipeline import split_groups, auroc
from hguard.signals._grounding_lexical import split_sentences
from hguard.signals.grounding import content_tokens
from research.rag_data import build_rag_sets

NEG = re.compile(r"\b(not|no|never|none|nothing|neither|nor|cannot|without)\b|n't\b", re.I)
LEAD = re.compile(r"^\s*(yes|no|true|false)\b[\s,.:;!-]*", re.I)



def polarity(question, answer, context):
    body = LEAD.sub("", answer)
    a_neg = bool(NEG.search(body))
    a_tok = set(content_tokens(body))
    best, best_s = None, -1
    for s in split_sentences(context if isinstance(context, str) else " ".join(context)):
        ov = len(a_tok & set(content_tokens(s)))
        if ov > best_s:
            best, best_s = s, ov
    c_neg = bool(best and NEG.search(best))
    return {"answer_negated": float(a_neg), "passage_negated": float(c_neg), "polarity_mismatch": float(a_neg != c_neg)}


ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "rag-work"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rag_polarity.json"))
    args = ap.parse_args(argv)
    work = args.work
    col = load_collected(work)
    ex = [e for rows in build_rag_sets().values() for e in rows]
    by = {e.id: e for e in ex}
    rows = add_rag_signals(None, col, [by[r["id"]] for r in col.rows], work, progress=False)
    for r in rows:
        e = by[r["id"]]
        r.update(polarity(e.question, r["answer"], e.context))
    test = split_groups(rows, 0.3, 0)
    out = {}
    for d in ("general", "policy"):
        idx = np.flatnonzero(np.array([r["domain"] == d for r in rows]) & ~test)
        tr = [rows[i] for i in idx]
        sc = [r for r in tr if r["label"] != "refusal"]
        y = np.array([r["label"] == "hallucinated" for r in sc], int)
        for k in ("answer_negated", "passage_negated", "polarity_mismatch"):
            v = np.array([r[k] for r in sc])
            sup = np.array([r["condition"] == "supporting" for r in sc])
            print(d, k, "mean", v.mean().round(3), "AUROC all", round(auroc(y, v), 3), "supporting", round(auroc(y[sup], v[sup]), 3), flush=True)
        res = {}
        for name, feats in (("base", RAG_MERGER_FEATURES), ("+mismatch", RAG_MERGER_FEATURES + ("polarity_mismatch",)),
                            ("+all3", RAG_MERGER_FEATURES + ("polarity_mismatch", "answer_negated", "passage_negated"))):
            f = fit_rag_domain(d, tr, col.features[idx], seed=0, n_layers=30, d_ff=col.features.shape[1] // 30,
                               target=0.1, confidence=0.9, merger_features=feats)
            res[name] = f["train"]["cv_auroc_oof_merged"]
            print(d, name, "train OOF merged", round(res[name], 4), "C", f["train"]["merger_C"], flush=True)
        out[d] = res
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
