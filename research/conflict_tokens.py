"""Which closed-book reading of a RAG answer tells "followed a misleading passage" from "right from its own passage"?

The shipped knowledge-conflict detector reads three *means* over the answer's tokens under the closed-book
prompt (``closed_book_logprob``, ``closed_book_gap``, ``context_lift``). In "The capital of Australia is
Sydney." the one false token (" Sydney": -1.85 closed-book, against -0.24 for " Canberra") is diluted by six
shared ones, so the detector misses the demo's misleading answer. This study adds token-level readings of the
same teacher-forced pass (worst token, largest gap, largest gap after the first token, the gap where the answer
first leaves the model's own choice, worst word) and, optionally, the model's own closed-book answer
(``--generate``: one greedy generation per question, compared by content words), and fits the detector on each
feature set.

Features are chosen on the TRAINING passages' out-of-fold AUROC only (the same passage split and folds as
``hguard calibrate-rag``); the held-out passages are scored once, for the chosen set and the shipped one.

Run (after `hguard calibrate-rag --work runs/rag-work` or `calibration/reference.py --rag` collected the answers):
HGUARD_THREADS=1 .venv/bin/python -m research.conflict_tokens [--work runs/rag-work] [--generate]
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

from hguard._stats import auroc, auroc_ci, clopper_pearson_interval
from hguard.calibrate._rag_fit import _conflict_target, conflict_scores, fit_conflict_detector
from hguard.calibrate._rag_signals import add_rag_signals
from hguard.calibrate.collect import load_collected
from hguard.calibrate.pipeline import split_groups
from hguard.signals._grounding_lexical import content_tokens
from hguard.signals.conflict import CONFLICT_FEATURES
from research.rag_data import build_rag_sets

ROOT = Path(__file__).resolve().parent.parent
TOKEN_FEATURES = ("closed_book_min_logprob", "closed_book_max_gap", "closed_book_max_gap_tail",
                  "closed_book_first_departure_gap", "closed_book_min_word_logprob")


def token_readings(generator, question: str, answer: str) -> dict[str, float]:
    """Per-token closed-book readings of one answer (one teacher-forced pass)."""
    import torch

    tok, model = generator.lm.tokenizer, generator.lm.model
    ids = list(tok(answer.strip(), add_special_tokens=False)["input_ids"]) if answer.strip() else []
    if not ids:
        return {k: float("nan") for k in TOKEN_FEATURES}
    prompt = generator.prompt_ids(question, None)
    x = torch.tensor([prompt + ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, len(prompt) - 1: len(prompt) - 1 + len(ids)].float()
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1).numpy()
    top, top_id = logp.max(dim=-1)
    gap = top.numpy() - chosen
    departed = [i for i in range(len(ids)) if int(top_id[i]) != ids[i]]
    # words: a token that starts with a space (or the first) opens a word
    pieces = tok.convert_ids_to_tokens(ids)
    words, cur = [], 0.0
    for i, p in enumerate(pieces):
        opens = i == 0 or p.startswith(("Ġ", "▁", " "))
        if opens and i:
            words.append(cur)
            cur = 0.0
        cur += float(chosen[i])
    words.append(cur)
    return {
        "closed_book_min_logprob": float(chosen.min()),
        "closed_book_max_gap": float(gap.max()),
        "closed_book_max_gap_tail": float(gap[1:].max()) if len(ids) > 1 else float(gap[0]),
        "closed_book_first_departure_gap": float(gap[departed[0]]) if departed else 0.0,
        "closed_book_min_word_logprob": float(min(words)),
    }


def agreement(closed: str, answer: str, question: str) -> float:
    """Share of the answer's new content words (not in the question) that the closed-book answer also has."""
    q = set(content_tokens(question))
    a = set(content_tokens(answer)) - q
    if not a:
        return float("nan")
    return len(a & set(content_tokens(closed))) / len(a)


def _share(flags: np.ndarray) -> dict:
    k, n = int(flags.sum()), int(flags.size)
    return {"k": k, "n": n, "share": k / n if n else None, "ci95": clopper_pearson_interval(k, n) if n else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "rag-work"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "conflict_tokens.json"))
    ap.add_argument("--generate", action="store_true", help="also generate each question's closed-book answer")
    args = ap.parse_args(argv)

    from hguard.calibrate.rag import _passages, _setup
    from hguard.settings import GenerationSettings, RAG

    col = load_collected(args.work)
    ex = [e for rows in build_rag_sets().values() for e in rows]
    by = {e.id: e for e in ex}
    examples = [by[r["id"]] for r in col.rows]
    _, gen = _setup("default", None, GenerationSettings(prompt_mode=RAG))
    rows = add_rag_signals(gen, col, examples, args.work, progress=False)
    test = split_groups(rows, 0.3, 0, passages=_passages(rows, examples))
    t = _conflict_target([r for r, te in zip(rows, test) if not te])
    # the contrast rows of both sides (the target is defined per side, as calibrate-rag does)
    t_all = np.full(len(rows), -1)
    t_all[~test] = t
    t_all[test] = _conflict_target([r for r, te in zip(rows, test) if te])
    used = np.flatnonzero(t_all >= 0)
    print(f"contrast rows: {len(used)} (train {int((~test[used]).sum())}, held out {int(test[used].sum())})", flush=True)
    for i in used:
        r = rows[i]
        r.update(token_readings(gen, r["question"], r["answer"]))
    extra = ()
    if args.generate:
        qs = [rows[i]["question"] for i in used]
        closed = gen.generate(qs, None, neurons=None, batch_size=8)
        for i, g in zip(used, closed):
            rows[i]["closed_book_answer"] = g.text
            rows[i]["closed_book_agreement"] = agreement(g.text, rows[i]["answer"], rows[i]["question"])
            rows[i]["closed_book_disagreement"] = 1.0 - rows[i]["closed_book_agreement"]
        extra = ("closed_book_disagreement",)

    train = [rows[i] for i in used if not test[i]]
    held = [rows[i] for i in used if test[i]]
    sets = {
        "shipped (3 means)": CONFLICT_FEATURES,
        **{f"+{k}": CONFLICT_FEATURES + (k,) for k in TOKEN_FEATURES + extra},
        "+min_logprob +max_gap": CONFLICT_FEATURES + ("closed_book_min_logprob", "closed_book_max_gap"),
        "+all token readings": CONFLICT_FEATURES + TOKEN_FEATURES,
        **({"+all token readings +disagreement": CONFLICT_FEATURES + TOKEN_FEATURES + extra} if extra else {}),
    }
    out: dict = {"train_rows": len(train), "held_out_rows": len(held), "sets": {}}
    for name, feats in sets.items():
        det = fit_conflict_detector(train, seed=0, features=feats)
        out["sets"][name] = {"features": list(feats), "train": det.get("train"), "why": det.get("why")}
        tr = det.get("train") or {}
        print(f"{name:40s} train OOF AUROC {tr.get('oof_auroc') or float('nan'):.3f}  balanced acc {tr.get('oof_balanced_accuracy') or float('nan'):.3f}", flush=True)
        out["sets"][name]["_det"] = det
    best = max((n for n in out["sets"] if out["sets"][n]["train"]), key=lambda n: out["sets"][n]["train"]["oof_auroc"])
    print(f"chosen on training out-of-fold AUROC: {best}", flush=True)
    yh = np.array([int(_conflict_target(held)[i]) for i in range(len(held))])
    for name in dict.fromkeys(["shipped (3 means)", best]):
        det = out["sets"][name].pop("_det")
        ok = np.array([all(r.get(k) is not None and math.isfinite(float(r[k])) for k in det["detector"]["features"]) for r in held])
        s = conflict_scores(det, [r for r, o in zip(held, ok) if o])
        y = yh[ok]
        flag = s >= det["threshold"]
        au = {"auroc": auroc(y, s), "ci95": auroc_ci(y, {"conflict": s})["conflict"]}
        out["sets"][name]["held_out"] = {
            "n": int(ok.sum()), "followed_misleading": int(y.sum()), "right_supporting": int((y == 0).sum()),
            "auroc": au, "flagged_followed": _share(flag[y == 1]), "flagged_right_supporting": _share(flag[y == 0]),
        }
        print(f"held out, {name}: {json.dumps(out['sets'][name]['held_out'])}", flush=True)
    for v in out["sets"].values():
        v.pop("_det", None)
    out["chosen"] = best
    if args.generate:
        out["closed_book_answers"] = [{"id": rows[i]["id"], "answer": rows[i]["answer"], "closed": rows[i].get("closed_book_answer"),
                                       "target": int(t_all[i]), "held_out": bool(test[i])} for i in used]
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
