"""Which probe settings generalise to kinds of question the calibration never saw (leave-one-family-out).

Reads answers already collected (a calibration work folder, e.g. runs/reference-work written by
`python calibration/reference.py`), labels and families from calibration/data, and for each variant runs
the calibration's leave-one-family-out procedure (hguard.calibrate.families) on each domain's training
split (the same fact-grouped split as calibration, seed 0).

Tuning is kept apart from reporting: in each domain the two families whose SHA-256 of the name is
smallest are FINAL families; variants are compared on the other (SELECTION) families only, and the
final families' figures are printed for every variant but chose nothing.

Writes benchmarks/results/generalization.json (variants run apart are added to it; a variant run again
replaces its own entry) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.generalization [--work runs/reference-work] [--variants v0,v1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOMAINS = ("geography", "chemistry", "literature")
_FOLD = {"cv": 3, "Cs": 6}  # what calibration's leave-one-family-out uses (hguard.calibrate.families)
VARIANTS = {
    "v0 shipped: C by 3-fold CV over answers (6 values), 1-SE rule, standardised, length feature": (dict(_FOLD), False),
    "v1 C by 3-fold CV over whole families": (dict(_FOLD), True),
    "v2 C with the best CV AUROC (denser probe)": ({**_FOLD, "selection": "best"}, False),
    "v3 raw CETT (no standardisation)": ({**_FOLD, "standardize": False}, False),
    "v4 no length feature": ({**_FOLD, "length_control": False}, False),
    # layer subsets: the probe (and its random-neuron control) sees only these layers' neurons
    "v5 layers 0-9 only (first third)": ({**_FOLD, "layers": (0, 10)}, False),
    "v6 layers 10-19 only (middle third)": ({**_FOLD, "layers": (10, 20)}, False),
    "v7 layers 20-29 only (last third)": ({**_FOLD, "layers": (20, 30)}, False),
    # sparser probes: each fold's probe sees only the features with the largest |Welch t| on its own rows
    "v8 screened to the top 2,000 features by |Welch t| in each fold": ({**_FOLD, "screen_top": 2000}, False),
    "v9 screened to the top 500 features by |Welch t| in each fold": ({**_FOLD, "screen_top": 500}, False),
    # stability selection across families: inside each fold, the neurons an L1 probe (C by CV over answers, as
    # v0) selects in at least half of the refits that each leave out one more family, then a probe on those
    "v10 stability selection across families (neurons kept in >= 50% of leave-one-more-family-out refits)":
        ({**_FOLD, "stability": 0.5}, True),
    # pooling across domains: each held-out family's probe is fitted on the training answers of all three
    # domains without that family (the H-Neurons paper fits one probe on many topics); the merger, the
    # thresholds and the OOD threshold stay per domain, fitted on the domain's own cross-family scores
    "v11 probe pooled across the three domains (merger and thresholds per domain)": ({**_FOLD, "pooled": True}, False),
    # an open-domain pool (TriviaQA, NQ-Open, PopQA answered closed-book; research.open_pool collects it) in every
    # fold's training answers, as the H-Neurons paper finds its neurons on broad trivia; never scored
    "v14 probe fitted with an open-domain pool (TriviaQA, NQ-Open, PopQA) beside the domain": ({**_FOLD, "pooled": "open"}, False),
    # family-invariant probes: what tells the training families apart is taken out of the features before
    # the probe is fitted (C by CV over answers, as v0; the families only shape the features)
    "v12 family means projected out (the standardised CETT loses the directions of its training families' means)":
        ({**_FOLD, "invariant": "project"}, True),
    "v13 family-balanced fit (each training family's answers weighted to equal class weight per family)":
        ({**_FOLD, "invariant": "balance"}, True),
}


def stable_fit_probe(threshold: float):
    """A stand-in for the calibration's ``fit_probe`` that selects neurons by stability across the families
    it is given as ``groups`` (``c_by_family=True`` passes them), then fits the probe on those neurons and
    expresses it in the full feature space (as a screened probe is)."""
    from sklearn.base import clone

    from hguard.probe import HNeuronProbe

    def fit(X, y, *, fit=None, lengths=None, groups=None, **params):
        X = np.asarray(X)
        base = HNeuronProbe(**params).fit(X, y, lengths=lengths)  # C by CV over answers, as v0
        if groups is None:
            return base
        fams = np.unique(groups)
        counts = np.zeros(X.shape[1])
        for g in fams:
            keep = np.asarray(groups) != g
            p = clone(base).set_params(Cs=[base.C_], cv=None).fit(X[keep], y[keep], lengths=lengths[keep])
            counts[p.feature_indices_] += 1
        cols = np.flatnonzero(counts >= threshold * len(fams))
        if cols.size == 0:  # nothing stable: the fold's probe stands
            return base
        n_layers, d_ff = params.pop("n_layers", None), params.pop("d_ff", None)
        probe = HNeuronProbe(**params).fit(X[:, cols], y, lengths=lengths)
        nl, df = HNeuronProbe(n_layers=n_layers, d_ff=d_ff)._resolve_shape(X.shape[1])
        probe.set_params(n_layers=nl, d_ff=df)
        probe.feature_indices_ = cols[probe.feature_indices_].astype(np.int64)
        probe.n_features_in_ = int(X.shape[1])
        probe.n_layers_, probe.d_ff_ = nl, df
        return probe

    return fit


_INVARIANT = {"n_selected": 1}  # the last projected probe's neuron count: its random control draws as many


class InvariantProbe:
    """A probe fitted on features from which the training families' mean directions were projected out, read
    on full CETT rows: every neuron enters through the projection, so it reads all of them (its
    random-neuron control is then a probe on all neurons without the projection)."""

    def __init__(self, probe, mean, scale, basis):
        self.probe, self.center_, self.scale_, self.basis = probe, mean, scale, basis
        self.C_ = probe.C_
        self.feature_indices_ = np.arange(len(mean), dtype=np.int64)

    def transform(self, X):
        Z = (np.asarray(X, dtype=np.float64) - self.center_) / self.scale_
        return Z - (Z @ self.basis) @ self.basis.T

    def decision_function_subset(self, values, lengths=None):
        return self.probe.decision_function(self.transform(values), lengths=lengths)


def invariant_fit_probe(how: str):
    """A stand-in for the calibration's ``fit_probe`` that keeps family identity out of the probe, given the
    training families as ``groups`` (``c_by_family=True`` passes them); C by CV over answers, as v0.

    ``project``: the standardised features lose the span of the families' centred means (F - 1 directions),
    at fit and at scoring. ``balance``: each (family, class) cell gets equal total weight, so a family's
    base rate tells the probe nothing; fitted by resampling rows to that weight (the probe takes no weights)."""
    from hguard.probe import HNeuronProbe

    def fit(X, y, *, fit=None, lengths=None, groups=None, **params):
        X, y = np.asarray(X), np.asarray(y)
        if groups is None:
            return HNeuronProbe(**params).fit(X, y, lengths=lengths)
        groups = np.asarray(groups)
        if how == "balance":
            rng = np.random.default_rng(params.get("random_state", 0))
            cells = [np.flatnonzero((groups == g) & (y == c)) for g in np.unique(groups) for c in (0, 1)]
            cells = [c for c in cells if c.size]
            per = int(np.median([c.size for c in cells]))
            idx = np.concatenate([rng.choice(c, per, replace=c.size < per) for c in cells])
            return HNeuronProbe(**params).fit(X[idx], y[idx], lengths=None if lengths is None else lengths[idx])
        mean, scale = X.mean(axis=0, dtype=np.float64), X.std(axis=0, dtype=np.float64)
        scale[scale == 0] = 1.0
        Z = (X - mean) / scale
        M = np.stack([Z[groups == g].mean(axis=0) for g in np.unique(groups)])
        u, sv, _ = np.linalg.svd((M - M.mean(axis=0)).T, full_matrices=False)
        basis = u[:, sv > 1e-8 * sv.max()]
        probe = HNeuronProbe(**params).fit(Z - (Z @ basis) @ basis.T, y, lengths=lengths)
        _INVARIANT["n_selected"] = len(probe.feature_indices_)
        return InvariantProbe(probe, mean, scale, basis)

    return fit


def with_merger_signals(signals, run):
    """Run ``run()`` with the rows' ``signals`` (names of row fields) added to the merger's inputs."""
    from hguard.calibrate import pipeline

    shipped = pipeline.merger_features

    def merger_features(rows, neuron_logit):
        return np.column_stack([shipped(rows, neuron_logit)] + [[r[k] for r in rows] for k in signals])

    pipeline.merger_features = merger_features
    try:
        return run()
    finally:
        pipeline.merger_features = shipped


def study_generator(work: str):
    """The generator the answers of ``work`` were given with (the calibration's system prompt, the default
    model), refused if the collection's fingerprints say otherwise."""
    from hguard.calibrate.pipeline import DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator
    from hguard.models import load_model
    from hguard.settings import GenerationSettings

    gen = Generator(load_model("default"), settings=GenerationSettings(system_prompt=DEFAULT_SYSTEM_PROMPT))
    stored = json.loads((Path(work) / "collection.json").read_text())
    for k, v in gen.fingerprints.items():  # the prompt the answers were given with
        if stored.get(k) != v:
            raise SystemExit(f"{work} was collected with {k} {stored.get(k)!r}, this generator has {v!r}")
    return gen


def signal_study(col, test, signals: dict, names: tuple[str, str]) -> dict:
    """The shipped probe settings (v0) with ``signals`` (row fields, oriented riskier-higher) reported beside
    calibration's baselines, then with them added to the merger's inputs; ``names`` label the two variants."""
    from hguard.calibrate import pipeline

    spec = VARIANTS[next(v for v in VARIANTS if v.startswith("v0"))]
    results: dict = {"variants": {}, "final_families": {}}
    pipeline.BASELINES.update(signals)
    try:
        base, finals = run_variant(col, test, spec, log="v0")
        results["variants"][names[0]] = base
        results["final_families"].update(finals)
        results["variants"][names[1]], _ = with_merger_signals(signals, lambda: run_variant(col, test, spec, log=names[1][:2]))
    finally:
        for k in signals:
            pipeline.BASELINES.pop(k, None)
    return results


def signal_means(results: dict, signals) -> str:
    """Per variant and domain, each signal's mean AUROC over the families with >= 5 answers of each class,
    then each such family's probe, merged and ``signals`` figures."""
    lines = []
    for name, v in results["variants"].items():
        lines.append(f"\n{name[:3]} mean over families with >= 5 of each class:")
        for d, res in v.items():
            per = {f: a for f, a in res.get("auroc", {}).items() if a and min(res["counts"][f]) >= 5}
            lines.append(f"  {d}: " + ", ".join(
                f"{k} {np.mean([a[k] for a in per.values() if a.get(k) is not None]):.3f}"
                for k in ("probe", "merged", "mean_logprob", "min_logprob", "entropy", *signals)))
            lines += [f"    {f} {res['counts'][f]}: " + ", ".join(f"{k} {a[k]:.3f}" for k in ("probe", "merged", *signals))
                      for f, a in per.items()]
    return "\n".join(lines)


def final_families(names) -> list[str]:
    return sorted(sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())[:2])


def load_study(work: str):
    """The collected answers of ``work`` judged afresh, with their families, and the fact-grouped
    held-out mask calibration uses (seed 0)."""
    from hguard.calibrate.collect import load_collected, relabel
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.families import attach_families
    from hguard.calibrate.pipeline import split_groups

    data = ROOT / "calibration" / "data"
    examples = load_examples([data / f"{d}.jsonl" for d in (*DOMAINS, "fabricated")])
    col = relabel(load_collected(work), examples)  # every answer collected so far, judged afresh
    ids = {r["id"] for r in col.rows}
    attach_families(col.rows, [e for e in examples if e.id in ids])
    return col, examples, split_groups(col.rows, 0.3, 0)


def run_variant(col, test, spec: tuple[dict, bool], n_layers: int = 30, log: str = "") -> tuple[dict, dict]:
    """Leave-one-family-out figures of one variant in each domain: ({domain: figures}, {domain: FINAL families})."""
    from hguard.calibrate import families
    from hguard.calibrate.screen import ProbeFit

    params, by_family = dict(spec[0]), spec[1]
    d_ff = col.features.shape[1] // n_layers
    cv = params.pop("cv", 5)
    lo, hi = params.pop("layers", (0, n_layers))
    screen = params.pop("screen_top", None)
    fit = ProbeFit(screen, reason="research variant") if screen else None
    stability = params.pop("stability", None)
    pooled = params.pop("pooled", False)
    invariant = params.pop("invariant", None)
    cols = slice(lo * d_ff, hi * d_ff)  # features are laid out layer by layer
    out, finals = {}, {}
    shipped_fit_probe, shipped_folds, shipped_random = families.fit_probe, families.family_folds, families.random_baseline
    if stability is not None:
        families.fit_probe = stable_fit_probe(stability)
    if invariant is not None:
        families.fit_probe = invariant_fit_probe(invariant)
        if invariant == "project":  # the random control draws as many neurons as the projected probe selected
            families.random_baseline = lambda X, y, n, **kw: shipped_random(X, y, min(n, _INVARIANT["n_selected"]), **kw)
    if pooled == "open" and not any(r["domain"] == "open" for r in col.rows):
        return {d: {"failed": "no open-domain pool in these answers: run it with research.open_pool study"} for d in DOMAINS}, {}
    if pooled:  # one fold per family of the domain, however many families the pool holds
        families.family_folds = lambda names, max_folds=0: shipped_folds(names, max_folds=len(set(names)))
    try:
        _domains(col, test, params, by_family, fit, cv, cols, lo, hi, d_ff, out, finals, log, pooled)
    finally:
        families.fit_probe, families.family_folds, families.random_baseline = shipped_fit_probe, shipped_folds, shipped_random
    return out, finals


def _domains(col, test, params, by_family, fit, cv, cols, lo, hi, d_ff, out, finals, log, pooled=False) -> None:
    from hguard.calibrate.collect import Collected
    from hguard.calibrate.families import cross_family_fit, evaluate_families

    for d in DOMAINS:
        dmask = np.array([r["domain"] == d for r in col.rows])
        if not dmask.any():
            continue
        dom = col.subset(dmask)
        dom = Collected(dom.rows, np.ascontiguousarray(dom.features[:, cols]))
        train = dom.subset(~test[dmask])
        tr = train.subset([r["label"] != "refusal" for r in train.rows])
        only = None
        if pooled:  # the pool's training answers, this domain's families held out one at a time
            pool = set(DOMAINS) if pooled is True else {d, "open"}
            scope = np.array([r["domain"] in pool and r["label"] != "refusal" for r in col.rows]) & ~test
            tr = col.subset(scope)
            tr = Collected(tr.rows, np.ascontiguousarray(tr.features[:, cols]))
            only = sorted({r["family"] for r in dom.rows})
        t0 = time.perf_counter()
        try:
            cf = cross_family_fit(tr, seed=0, n_layers=hi - lo, d_ff=d_ff, cv=cv, probe_params=params,
                                  c_by_family=by_family, fit=fit, only=only)
            res = evaluate_families(cf, tr, dom, target=0.2, confidence=0.9)
        except Exception as exc:  # a variant that cannot be fitted is reported, not hidden
            out[d] = {"failed": f"{type(exc).__name__}: {exc}"}
            continue
        finals[d] = final_families(res["families"])
        out[d] = {**family_figures(res), "seconds": time.perf_counter() - t0}
        print(f"{log} {d}: done in {time.perf_counter() - t0:.0f} s", flush=True)


def family_figures(res: dict) -> dict:
    """A domain's per-family AUROCs, routing at the target and class counts, from ``evaluate_families``."""
    fams = res["families"].items()
    return {"auroc": {f: dict(e["auroc"]) if e.get("auroc") and e["auroc"].get("probe") is not None else None
                      for f, e in fams},
            "at_target": {f: e.get("at_target") for f, e in fams},
            "counts": {f: [e["correct"], e["hallucinated"]] for f, e in fams}}


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "reference-work"))
    ap.add_argument("--variants", default="", help="comma-separated prefixes (v0,v1,...); default all")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generalization.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    col, _, test = load_study(args.work)
    chosen = [v for v in VARIANTS if not args.variants or v.split()[0] in args.variants.split(",")]
    results: dict = {"n_answers": len(col.rows), "variants": {}, "final_families": {}}
    if Path(args.out).is_file():  # variants run apart add to the file; a variant run again replaces its entry
        kept = json.loads(Path(args.out).read_text())
        if kept.get("n_answers") == len(col.rows):
            results["variants"], results["final_families"] = kept.get("variants", {}), kept.get("final_families", {})
    for v in chosen:
        results["variants"][v], finals = run_variant(col, test, VARIANTS[v], log=v[:3])
        results["final_families"].update(finals)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


def _mean(per: dict, fams, key, counts=None) -> float | None:
    from hguard.calibrate.families import MIN_CLASS_FOR_MEAN

    vals = [per[f][key] for f in fams if per.get(f) and per[f][key] is not None
            and (counts is None or min(counts[f]) >= MIN_CLASS_FOR_MEAN)]
    return float(np.mean(vals)) if vals else None


def markdown(results: dict) -> str:
    lines = [f"{results['n_answers']} answers. Mean leave-one-family-out AUROC (probe / merged) over families with "
             "at least 5 answers of each class; SELECTION families chose the variant, FINAL families chose nothing.", "",
             "| variant | domain | selection: probe | selection: merged | final: probe | final: merged | final families |",
             "|---|---|---|---|---|---|---|"]
    f = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    for v, doms in results["variants"].items():
        for d, r in doms.items():
            if "failed" in r:
                lines.append(f"| {v} | {d} | failed: {r['failed']} | | | | |")
                continue
            fin = results["final_families"][d]
            sel = [x for x in r["auroc"] if x not in fin]
            c = r["counts"]
            lines.append(f"| {v} | {d} | {f(_mean(r['auroc'], sel, 'probe', c))} | {f(_mean(r['auroc'], sel, 'merged', c))} | "
                         f"{f(_mean(r['auroc'], fin, 'probe', c))} | {f(_mean(r['auroc'], fin, 'merged', c))} | {', '.join(fin)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
