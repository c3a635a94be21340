"""Does the model's attention to the passage (the Lookback Lens signal) separate hallucinated RAG answers?

Chuang et al. (2024, "Lookback Lens") detect contextual hallucinations from attention maps alone: for each
layer and head, the *lookback ratio* of an answer token is its mean attention on the passage's tokens over
that plus its mean attention on the answer's own tokens so far; averaged over the answer and fed to a
logistic regression, it reached about 0.85 AUROC on 7B models. No signal of hguard reads attention: the
probe reads the feed-forward neurons, grounding reads the text. This study computes the ratios (30 layers x
9 heads for SmolLM2-135M-Instruct) for every collected RAG answer, teacher-forced through the guard's own
context prompt, and runs them through the RAG calibration in place of, and beside, the CETT features: the
same sparse probe fit, merger, folds by passage and held-out split as `hguard calibrate-rag`.

Protocol: the variants are compared on the TRAINING passages' out-of-fold figures; the held-out passages
(the calibration's 30% split) are scored once for every variant and reported beside them, and decide
nothing here (a variant would be shipped only if it leads on training and the held-out figures agree).

Run (after `calibration/reference.py --rag` collected runs/rag-work; about 15 min on one thread):
HGUARD_THREADS=1 .venv/bin/python -m research.lookback [--work runs/rag-work] [--batch-size 2]
Writes benchmarks/results/lookback.json and the ratios to WORK/lookback.npy (reused when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def lookback_ratios(gen, items: list[tuple[str, str, str]], batch_size: int = 2) -> np.ndarray:
    """(n, layers * heads) mean lookback ratio over each answer's tokens, for (question, context, answer)."""
    import torch

    from hguard.generation import left_pad
    from research.cett_tokens import text_mask

    model, tok = gen.lm.model, gen.lm.tokenizer
    model.set_attn_implementation("eager")  # attention weights are returned by the eager kernel only
    cfg = model.config
    out = np.zeros((len(items), cfg.num_hidden_layers * cfg.num_attention_heads), np.float32)
    t0 = time.perf_counter()
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        seqs, ctx, ans = [], [], []
        for q, c, a in batch:
            prompt = gen.prompt_ids(q, c)
            answer = tok(a, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
            seqs.append(prompt + answer)
            ctx.append(text_mask(gen, prompt, c, "passage", q, c) + [0] * len(answer))
            ans.append([0] * len(prompt) + [1] * len(answer))
        ids, att = left_pad(seqs, tok.pad_token_id)
        pos = (att.long().cumsum(-1) - 1).clamp_min(0)
        cm = left_pad(ctx, 0, dtype=torch.float32)[0]
        am = left_pad(ans, 0, dtype=torch.float32)[0]
        with torch.no_grad():
            res = model(input_ids=ids, attention_mask=att, position_ids=pos, output_attentions=True)
        n_ctx = cm.sum(1).clamp_min(1)[:, None, None]  # (B, 1, 1)
        # answer keys up to and including each query position: the tokens generated so far
        n_new = am.cumsum(1)[:, None, :]  # (B, 1, S)
        n_ans = am.sum(1).clamp_min(1)[:, None]
        for layer, a in enumerate(res.attentions):  # (B, H, S, S): query x key
            a = a.float()
            on_ctx = (a * cm[:, None, None, :]).sum(-1) / n_ctx  # (B, H, S)
            on_new = (a * am[:, None, None, :]).sum(-1) / n_new.clamp_min(1)
            ratio = on_ctx / (on_ctx + on_new).clamp_min(1e-12)
            mean = (ratio * am[:, None, :]).sum(-1) / n_ans  # (B, H)
            h = mean.shape[1]
            out[start:start + len(batch), layer * h:(layer + 1) * h] = mean.numpy()
        if start % (batch_size * 100) == 0:
            print(f"  {start + len(batch)} of {len(items)} answers, {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def main(argv=None) -> int:
    from hguard.calibrate._rag_fit import fit_rag_domain, score_rag_rows
    from hguard.calibrate._rag_signals import add_rag_signals
    from hguard.calibrate.collect import load_collected
    from hguard.calibrate.pipeline import auroc, split_groups
    from hguard._stats import auroc_ci
    from research.generalization import study_generator
    from research.rag_data import build_rag_sets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "rag-work"))
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lookback.json"))
    args = ap.parse_args(argv)
    col = load_collected(args.work)
    by = {e.id: e for rows in build_rag_sets().values() for e in rows}
    rows = add_rag_signals(None, col, [by[r["id"]] for r in col.rows], args.work, progress=False)
    cache = Path(args.work) / "lookback.npy"
    if cache.exists():
        lb = np.load(cache)
    else:
        gen = study_generator(args.work)
        t0 = time.perf_counter()
        lb = lookback_ratios(gen, [(by[r["id"]].question, by[r["id"]].context, r["answer"]) for r in rows], args.batch_size)
        print(f"lookback ratios of {len(rows)} answers in {time.perf_counter() - t0:.0f} s", flush=True)
        np.save(cache, lb)
    layers, heads = 30, lb.shape[1] // 30
    test = split_groups(rows, 0.3, 0)
    variants = {
        "v0 shipped (CETT probe)": (col.features, 30, col.features.shape[1] // 30),
        "lookback ratios in the probe's place": (lb, layers, heads),
        "CETT and lookback ratios in one probe": (np.hstack([col.features, lb]), layers, col.features.shape[1] // 30 + heads),
    }
    results: dict = {"n_answers": len(rows), "variants": {}}
    for d in ("general", "policy"):
        dom = np.array([r["domain"] == d for r in rows])
        tr_i, te_i = np.flatnonzero(dom & ~test), np.flatnonzero(dom & test)
        te = [rows[i] for i in te_i if rows[i]["label"] != "refusal"]
        te_keep = np.array([i for i in te_i if rows[i]["label"] != "refusal"])
        y_te = np.array([r["label"] == "hallucinated" for r in te], int)
        sup = np.array([r.get("condition") == "supporting" for r in te])
        for name, (X, nl, dff) in variants.items():
            t0 = time.perf_counter()
            f = fit_rag_domain(d, [rows[i] for i in tr_i], X[tr_i], seed=0, n_layers=nl, d_ff=dff,
                               target=0.1, confidence=0.9)
            s = score_rag_rows(f, te, X[te_keep])
            entry = {
                "train_n": f["train"]["n_scored"], "train_right": f["train"]["correct"], "train_hallucinated": f["train"]["hallucinated"],
                "train_oof_probe": f["train"]["cv_auroc_oof_probe"], "train_oof_merged": f["train"]["cv_auroc_oof_merged"],
                "merger_C": f["train"]["merger_C"],
                "held_out_n": int(len(y_te)), "held_out_right": int((y_te == 0).sum()), "held_out_hallucinated": int(y_te.sum()),
                "held_out_probe": auroc(y_te, s["probe"]), "held_out_merged": auroc(y_te, s["merged"]),
                "held_out_ci": auroc_ci(y_te, {"probe": s["probe"], "merged": s["merged"]}),
                "held_out_supporting_merged": auroc(y_te[sup], s["merged"][sup]),
                "held_out_supporting_n": [int((y_te[sup] == 0).sum()), int(y_te[sup].sum())],
                "seconds": round(time.perf_counter() - t0, 1),
            }
            results["variants"].setdefault(name, {})[d] = entry
            print(d, name, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()}), flush=True)
        # the ratios one by one on the training answers: how much any single head carries
        tr = [rows[i] for i in tr_i if rows[i]["label"] != "refusal"]
        y_tr = np.array([r["label"] == "hallucinated" for r in tr], int)
        X_tr = lb[[i for i in tr_i if rows[i]["label"] != "refusal"]]
        single = sorted(((max(auroc(y_tr, X_tr[:, j]), 1 - auroc(y_tr, X_tr[:, j])), j) for j in range(X_tr.shape[1])), reverse=True)
        results.setdefault("best_single_heads_train", {})[d] = [
            {"layer": j // heads, "head": j % heads, "auroc_either_sign": round(a, 3)} for a, j in single[:5]]
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
