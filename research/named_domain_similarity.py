"""How often the named-domain similarity rule sends a question to review: on the bundled domains' own
questions, on their kinds of question held out from the router (a family none of whose questions the
domain's router holds), and on the other domains' questions.

A question sent to a named domain goes to review when its similarity to the domain's calibration
questions (the mean cosine of its 5 nearest router questions, as automatic choice computes it) is below
the policy's ``domain_min_similarity``. This study reads the shipped reference probes' router questions
and the bundled calibration questions (``calibration/data``): for each domain, its own questions that
are not router questions themselves; the same questions against the router with their own family's
questions taken out (a kind of question the calibration did not contain, as leave-one-family-out
reads it); and every other domain's questions. Shares come with 95% Clopper-Pearson intervals.

Writes benchmarks/results/named_domain_similarity.json (or --out) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.named_domain_similarity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("geography", "chemistry", "literature")


def _share(below: np.ndarray) -> dict:
    from hguard._stats import clopper_pearson_interval

    k, n = int(below.sum()), int(below.size)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci95": clopper_pearson_interval(k, n)}


def _near(router: np.ndarray, q: np.ndarray) -> float:
    """The similarity automatic choice reads: the mean cosine of the 5 nearest router questions."""
    return float(np.sort(router @ q)[::-1][:5].mean())


def main(argv=None) -> int:
    from hguard._resources import REFERENCE_PROBES
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.families import family_of
    from hguard.domain import CalibratedDomain
    from hguard.guard import DEFAULT_POLICY
    from hguard.policy import load_policy
    from hguard.signals.embedding import get_embedder

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "named_domain_similarity.json"))
    args = ap.parse_args(argv)
    minimum = load_policy(DEFAULT_POLICY).domain_min_similarity
    examples = load_examples([ROOT / "calibration" / "data" / f"{d}.jsonl" for d in (*DOMAINS, "fabricated")])
    emb = get_embedder()
    vec = {e.id: v for e, v in zip(examples, emb.encode([e.question for e in examples]))}
    fam = {e.question: family_of(e) for e in examples}
    out: dict = {"domain_min_similarity": minimum, "domains": {}}
    lines = [f"Share of questions below domain_min_similarity {minimum} (sent to review when named), 95% CI:", "",
             "| domain named | its own questions | its questions, own family out of the router | other domains' questions |",
             "|---|---|---|---|"]
    for d in DOMAINS:
        router = list(CalibratedDomain.load(Path(REFERENCE_PROBES) / f"{d}.json").router_questions)
        R, rfam = emb.encode(router), np.array([fam.get(q, "?") for q in router])
        own = [e for e in examples if e.domain == d and e.question not in set(router)]
        other = [e for e in examples if e.domain != d]

        own_s = np.array([_near(R, vec[e.id]) for e in own])
        lofo_s = np.array([_near(R[rfam != family_of(e)], vec[e.id]) for e in own])
        other_s = np.array([_near(R, vec[e.id]) for e in other])
        per_family = {f: _share(lofo_s[[family_of(e) == f for e in own]] < minimum) for f in sorted({family_of(e) for e in own})}
        res = {"router_questions": len(router), "own": _share(own_s < minimum), "own_family_held_out": _share(lofo_s < minimum),
               "other_domains": _share(other_s < minimum), "own_family_held_out_per_family": per_family,
               "similarity_medians": {"own": float(np.median(own_s)), "own_family_held_out": float(np.median(lofo_s)),
                                      "other_domains": float(np.median(other_s))}}
        out["domains"][d] = res
        f = lambda s: f"{s['k']}/{s['n']} = {s['rate']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]"  # noqa: E731
        lines.append(f"| {d} | {f(res['own'])} | {f(res['own_family_held_out'])} | {f(res['other_domains'])} |")
    lines.append("")
    for d, res in out["domains"].items():
        lines.append(f"{d}, own family out of the router, per family: " + ", ".join(
            f"{k} {v['k']}/{v['n']}" for k, v in res["own_family_held_out_per_family"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
