"""Does certifying the accept threshold in every calibrated family at once (an intersection-union test,
``fit_thresholds(families=...)``) keep the answers of a family the calibration never saw within the
target, where the pooled certificate does not?

For each domain, the calibration's leave-one-family-out folds (hguard.calibrate.families: probe and
merger fitted without the held-out family, on the same fact-grouped training split, seed 0); each held-out
family is routed with thresholds fitted on the other families' cross-family scores, pooled (what
calibration ships) or per family. Reported: accepted answers of the held-out families and their
hallucination rate (95% Clopper-Pearson), pooled over families. Nothing here chose a setting.

Writes benchmarks/results/family_certificate.json (one entry per --work). Run:
HGUARD_THREADS=1 .venv/bin/python -m research.family_certificate --work runs/gemma/work --layers 18
HGUARD_THREADS=1 .venv/bin/python -m research.family_certificate --work runs/reference-work --layers 30
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from research.generalization import DOMAINS, load_study

HERE = Path(__file__).resolve().parent


def run(work: str, n_layers: int, target: float, confidence: float) -> dict:
    from hguard._stats import clopper_pearson_interval
    from hguard.calibrate.families import FOLD_CV, FOLD_PROBE, cross_family_fit
    from hguard.calibrate.pipeline import _y, apply_merger, fit_merger, merger_features
    from hguard.policy import fit_thresholds

    col, _, test = load_study(work)
    d_ff = col.features.shape[1] // n_layers
    out: dict = {"work": work, "target": target, "confidence": confidence, "domains": {}}
    for domain in DOMAINS:
        dmask = np.array([r["domain"] == domain for r in col.rows])
        train = col.subset(dmask & ~test)
        tr = train.subset([r["label"] != "refusal" for r in train.rows])
        every = col.subset(dmask)
        cf = cross_family_fit(tr, seed=0, n_layers=n_layers, d_ff=d_ff, cv=FOLD_CV, probe_params=FOLD_PROBE)
        fam, y_tr, oof = cf["families"], cf["y"], cf["oof_logit"]
        Z = merger_features(tr.rows, np.nan_to_num(oof))
        rows = {"pooled": [], "per_family": []}
        per_family = {}
        for fold in cf["folds"]:
            if "probe" not in fold:
                continue
            others = ~np.isin(fam, fold["families"]) & np.isfinite(oof)
            if np.bincount(y_tr[others], minlength=2).min() < 2:
                continue
            merger = fit_merger(Z[others], y_tr[others])
            risk_cal = apply_merger(merger, Z[others])
            ths = {
                "pooled": fit_thresholds(risk_cal, y_tr[others], target=target, confidence=confidence),
                "per_family": fit_thresholds(risk_cal, y_tr[others], target=target, confidence=confidence,
                                             families=fam[others].tolist()),
            }
            for f in fold["families"]:
                sub = every.subset([r["family"] == f and r["label"] != "refusal" for r in every.rows])
                if not sub.rows:
                    continue
                y = _y(sub.rows)
                from hguard.calibrate.screen import probe_logit
                from hguard.calibrate.pipeline import _lengths

                logit = probe_logit(fold["probe"], sub.features, lengths=_lengths(sub.rows))
                risk = apply_merger(merger, merger_features(sub.rows, logit))
                entry = {"n": int(len(y)), "hallucinated": int(y.sum())}
                for name, th in ths.items():
                    acc = risk < th.accept_below
                    k, n_acc = int(y[acc].sum()), int(acc.sum())
                    entry[name] = {"accept_below": th.accept_below, "accepted": n_acc, "accepted_hallucinated": k}
                    rows[name].append((n_acc, k, len(y)))
                per_family[f] = entry
        summary = {}
        for name, rs in rows.items():
            n_acc, k, n = (sum(x[i] for x in rs) for i in range(3))
            summary[name] = {"n_scored": n, "accepted": n_acc, "coverage": n_acc / n if n else None,
                             "accepted_hallucination_rate": k / n_acc if n_acc else None,
                             "ci95": clopper_pearson_interval(k, n_acc),
                             "families_over_target": sorted(f for f, e in per_family.items()
                                                            if e[name]["accepted"] and e[name]["accepted_hallucinated"]
                                                            / e[name]["accepted"] > target)}
        out["domains"][domain] = {"families": per_family, "summary": summary}
        print(domain, json.dumps(summary), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="runs/reference-work")
    ap.add_argument("--layers", type=int, default=30, help="the model's layers (SmolLM2-135M 30, Gemma-3-270M 18)")
    ap.add_argument("--target", type=float, default=0.20)
    ap.add_argument("--confidence", type=float, default=0.90)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    res = run(args.work, args.layers, args.target, args.confidence)
    out = args.out or HERE.parent / "benchmarks" / "results" / "family_certificate.json"
    runs = json.loads(out.read_text()) if out.is_file() else {}
    runs[args.work] = res  # one entry per collection (model); a run again replaces its own
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(runs, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
