"""Does a probe fitted with many kinds of open-domain question carry over to a domain's new kinds of question?

The H-Neurons method finds its neurons on broad trivia (TriviaQA), not on one topic's templates; the shipped
probes are fitted per domain, on a few templates each, and lose 0.1-0.2 AUROC on a family they never saw
(benchmarks/README.md, "Generalisation"). This study adds an open-domain pool (TriviaQA, NQ-Open and PopQA
from ../shared/data, answered closed-book with the calibration's prompt) to every leave-one-family-out fold's
training answers; the pool is never scored, the merger, thresholds and the OOD threshold stay per domain and
see the domain's own cross-family scores only, and the protocol (SELECTION / FINAL families) is
research.generalization's.

    HGUARD_THREADS=1 .venv/bin/python -m research.open_pool collect --which domains   # runs/reference-work
    HGUARD_THREADS=1 .venv/bin/python -m research.open_pool collect --which pool      # runs/open-pool-work
    HGUARD_THREADS=1 .venv/bin/python -m research.open_pool study [--variants v0,v14,v15,v16] [--domains chemistry]

Writes benchmarks/results/open_pool.json: v0 (the shipped settings) and v14 (pool + domain: each fold's probe is
fitted on the pool and the domain's other families) from research.generalization, and v15 (the pool alone: one
probe fitted on the pool answers only, which never saw a question of the domain; each family's merger and
thresholds fitted on the other families' scores, as in every fold) and v16 (v0, with v15's pool-probe logit added to
the merger's inputs), on the same answers. Results and what followed: benchmarks/README.md ("open-domain trivia").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from research import generalization
from research.generalization import DOMAINS, ROOT, load_study, markdown, run_variant, study_generator

POOL_SOURCES = ("triviaqa", "nq_open", "popqa")
POOL_DOMAIN = "open"


def pool_examples(per_source: int = 1000):
    """The first ``per_source`` rows of each open-domain set, as one domain whose families are the sets."""
    from hguard.calibrate.data import Example
    from research import public

    rows = []
    for name, load in (("triviaqa", public.load_triviaqa), ("nq_open", public.load_nq_open), ("popqa", public.load_popqa)):
        for e in load(n=per_source):
            meta = {**(e.meta or {}), "family": name}
            rows.append(Example(id=e.id, question=e.question, answers=list(e.answers), domain=POOL_DOMAIN, meta=meta))
    return rows


def domain_examples():
    from hguard.calibrate.data import load_examples

    return load_examples([ROOT / "calibration" / "data" / f"{d}.jsonl" for d in (*DOMAINS, "fabricated")])


def collect_cmd(which: str, work: str, per_source: int) -> int:
    from hguard.calibrate.collect import collect
    from hguard.calibrate.pipeline import DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator
    from hguard.models import load_model
    from hguard.settings import GenerationSettings

    examples = pool_examples(per_source) if which == "pool" else domain_examples()
    gen = Generator(load_model("default"), settings=GenerationSettings(system_prompt=DEFAULT_SYSTEM_PROMPT))
    col = collect(gen, examples, work, lazy=True)
    labels = [r["label"] for r in col.rows]
    print(f"{which}: {len(labels)} answers: " + ", ".join(f"{k} {labels.count(k)}" for k in sorted(set(labels))))
    return 0


def load_with_pool(work: str, pool_work: str, per_source: int):
    """The domains' study answers (as research.generalization loads them) followed by the pool's answers,
    judged afresh; the pool is never in the held-out split."""
    from hguard.calibrate.collect import Collected, load_collected, relabel

    col, _examples, test = load_study(work)
    study_generator(pool_work)  # the pool was answered with the same prompt and model
    pool_ex = pool_examples(per_source)
    pool = load_collected(pool_work)  # what is collected so far (a collection stopped part-way is used as it is)
    wanted = {e.id for e in pool_ex}
    pool = relabel(pool.subset([r["id"] in wanted for r in pool.rows]), pool_ex)
    fam = {e.id: e.meta["family"] for e in pool_ex}
    for r in pool.rows:
        r["family"] = fam[r["id"]]
    merged = Collected(col.rows + pool.rows, np.concatenate([np.asarray(col.features), np.asarray(pool.features)]))
    return merged, np.concatenate([test, np.zeros(len(pool.rows), bool)])


V15 = "v15 probe fitted on the open-domain pool alone (never sees the domain; merger and thresholds per domain)"


def fit_pool_probe(col, log: str, n_layers: int = 30):
    """One probe (the shipped settings, C by 3-fold CV) and its random-neuron control on the pool's answers."""
    import time

    from hguard.calibrate import families
    from hguard.calibrate.pipeline import _lengths, _y
    from research.generalization import _FOLD

    params = dict(_FOLD)
    cv = params.pop("cv")
    d_ff = col.features.shape[1] // n_layers
    pool = col.subset(np.array([r["domain"] == POOL_DOMAIN and r["label"] != "refusal" for r in col.rows]))
    t0 = time.perf_counter()
    yp, lp = _y(pool.rows), _lengths(pool.rows)
    probe = families.fit_probe(pool.features, yp, fit=None, lengths=lp, cv=cv, n_layers=n_layers, d_ff=d_ff, random_state=0,
                               **params)
    rnd = families.random_baseline(pool.features, yp, max(1, len(probe.feature_indices_)), seed=0, lengths=lp, fit=None)
    print(f"{log} pool probe: {len(probe.feature_indices_)} neurons, C {probe.C_:.4g}, {time.perf_counter() - t0:.0f} s",
          flush=True)
    return probe, rnd


V16 = ("v16 the shipped probe (v0) with the pool probe's logit (v15's probe) added to the merger's inputs and "
       "reported as a signal of its own")


def merged_with_pool_probe(col, test) -> tuple[dict, dict]:
    """v16: v0, its merger given one more input, the logit of the probe fitted on the pool alone (which never saw
    the domain, so its score of any domain answer is out of sample)."""
    from hguard.calibrate import families
    from hguard.calibrate.pipeline import _lengths
    from research.generalization import signal_study

    probe, _ = fit_pool_probe(col, "v16")
    dom = np.array([r["domain"] != POOL_DOMAIN for r in col.rows])
    rows = [r for r, d in zip(col.rows, dom) if d]
    logit = families.probe_logit(probe, np.asarray(col.features)[dom], lengths=_lengths(rows))
    for r, v in zip(rows, logit):
        r["pool_probe_logit"] = float(v)
    res = signal_study(col, test, {"pool_probe_logit": lambda r: r["pool_probe_logit"]}, ("v0 (run beside v16)", V16))
    return res["variants"][V16], res["final_families"]


def pool_only(col, test, log: str = "v15", n_layers: int = 30) -> tuple[dict, dict]:
    """v15: one probe fitted on the pool's answers (the shipped settings, C by 3-fold CV); every family of a
    domain is scored by it, with the merger and thresholds fitted on the domain's other families (training
    split), through the calibration's own per-family evaluation."""
    from hguard.calibrate import families
    from hguard.calibrate.pipeline import _lengths, _y
    from research.generalization import family_figures, final_families

    probe, rnd = fit_pool_probe(col, log, n_layers)
    out, finals = {}, {}
    for d in generalization.DOMAINS:
        dmask = np.array([r["domain"] == d for r in col.rows])
        dom = col.subset(dmask)
        tr = dom.subset((~test[dmask]) & np.array([r["label"] != "refusal" for r in dom.rows]))
        fam = np.array([r["family"] for r in tr.rows])
        cf = {"folds": [{"families": [f], "probe": probe, "random_baseline": rnd.to_dict()} for f in sorted(set(fam))],
              "oof_logit": families.probe_logit(probe, tr.features, lengths=_lengths(tr.rows)),
              "oof_distance": families.full_distance(probe, tr.features), "families": fam, "y": _y(tr.rows)}
        res = families.evaluate_families(cf, tr, dom, target=0.2, confidence=0.9)
        finals[d] = final_families(res["families"])
        out[d] = family_figures(res)
    return out, finals


def study_cmd(args) -> int:
    import json
    import time

    import torch

    torch.set_num_threads(1)
    col, test = load_with_pool(args.work, args.pool_work, args.per_source)
    if args.domains:  # a run per domain, in parallel processes (their --out files apart), on the same split
        generalization.DOMAINS = tuple(args.domains.split(","))
    pool = [r for r in col.rows if r["domain"] == POOL_DOMAIN]
    labels = [r["label"] for r in pool]
    print(f"pool: {len(pool)} answers, " + ", ".join(f"{k} {labels.count(k)}" for k in sorted(set(labels))), flush=True)
    from research.generalization import VARIANTS

    chosen = [v for v in VARIANTS if v.split()[0] in args.variants.split(",")]
    out = Path(args.out)
    results: dict = {"n_answers": len(col.rows), "pool": {k: labels.count(k) for k in sorted(set(labels))},
                     "pool_by_source": {s: {k: sum(1 for r in pool if r["family"] == s and r["label"] == k)
                                            for k in sorted(set(labels))} for s in POOL_SOURCES},
                     "variants": {}, "final_families": {}, "seconds": {}}
    if out.is_file():  # variants run apart add to the file
        kept = json.loads(out.read_text())
        if kept.get("n_answers") == len(col.rows):
            for k in ("variants", "final_families", "seconds"):
                results[k] = kept.get(k, {})
    extra = {"v15": (V15, pool_only), "v16": (V16, merged_with_pool_probe)}
    chosen += [extra[k][0] for k in args.variants.split(",") if k in extra]
    run = {name: fn for name, fn in extra.values()}
    for v in chosen:
        t0 = time.perf_counter()
        results["variants"][v], finals = run[v](col, test) if v in run else run_variant(col, test, VARIANTS[v], log=v[:3])
        results["final_families"].update(finals)
        results["seconds"][v] = round(time.perf_counter() - t0)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--which", choices=("domains", "pool"), required=True)
    c.add_argument("--work", default=None)
    c.add_argument("--per-source", type=int, default=1000)
    s = sub.add_parser("study")
    s.add_argument("--work", default=str(ROOT / "runs" / "reference-work"))
    s.add_argument("--pool-work", default=str(ROOT / "runs" / "open-pool-work"))
    s.add_argument("--per-source", type=int, default=1000)
    s.add_argument("--variants", default="v0,v14,v15")
    s.add_argument("--domains", default="", help="comma-separated; default all three")
    s.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "open_pool.json"))
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        work = args.work or str(ROOT / "runs" / ("open-pool-work" if args.which == "pool" else "reference-work"))
        return collect_cmd(args.which, work, args.per_source)
    return study_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
