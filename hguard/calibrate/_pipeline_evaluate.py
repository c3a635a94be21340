"""Evaluating calibrated probes on new data: read a probe folder, answer the data, report per domain
(see :mod:`hguard.calibrate.pipeline`)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .._numerics import sigmoid_array
from .._stats import auroc, auroc_ci
from ..errors import DataError, ProbeError, ProbeMismatchError
from ..settings import CLOSED_BOOK, RAG, GenerationSettings
from ._pipeline_fit import (
    BASELINES,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SYSTEM_PROMPT,
    _examples,
    _lengths,
    _load_lm,
    _y,
    apply_merger,
    merger_features,
    random_baseline_score,
)
from .collect import label_row
from .judge import asked_kind, right_reply
from .data import Example, rows_for_mode

if TYPE_CHECKING:
    from ..domain import CalibratedDomain


def load_probe_dir(probes_dir: str | os.PathLike, expect: dict | None = None,
                   mode: str | None = CLOSED_BOOK) -> dict[str, CalibratedDomain]:
    """The calibrated domains (:class:`hguard.domain.CalibratedDomain`) in a probe folder, by name: those calibrated
    in prompt ``mode`` (closed-book by default; None: any, a domain's RAG file read after its closed-book one)."""
    from ..domain import CalibratedDomain

    d = Path(probes_dir)
    if not d.is_dir():
        from .._guard_plan import folder_missing

        raise ProbeError(f"the probe folder {str(d)!r} {folder_missing(d)}; pass the folder `hguard calibrate --out` wrote")
    files = sorted(p for p in d.glob("*.json") if p.name not in ("report.json",))
    out: dict[str, CalibratedDomain] = {}
    for p in files:
        cd = CalibratedDomain.load(p, expect=expect)
        if mode is None or cd.prompt_mode == mode:
            out[cd.name or p.stem] = cd  # CalibratedDomain.load names a domain without a name after its file
    if not files:
        raise ProbeError(f"no probe files (*.json) in {str(d)!r}; run `hguard calibrate --data FILE --out {d}` first")
    return out


def refuse_foreign_layout(cd: "CalibratedDomain", gen) -> None:
    """Refuse, before any answer, a probe whose neurons are another model's: scoring them would measure nothing."""
    foreign = cd.foreign_layout(gen)
    if foreign:
        raise ProbeMismatchError(f"{foreign}; pass the model it was calibrated with, `--model PATH`")


def evaluate(
    probes_dir: str | os.PathLike,
    data: Sequence[str | os.PathLike] | Sequence[Example],
    *,
    model: str = "default",
    lm=None,
    batch_size: int = 16,
    progress: bool = False,
    limit: int | None = None,
) -> dict:
    """Answer ``data`` with the model, score with the domain probes, and report per domain (JSON-able)."""
    from ..generation import Generator

    examples = rows_for_mode(_examples(data), rag=False)  # rows with context: `evaluate --rag`
    if limit:
        examples = examples[:limit]
    lm = _load_lm(model, lm)
    probes = load_probe_dir(probes_dir)  # closed-book ones: a RAG probe read these answers as another prompt's
    rag_only = {n for n in load_probe_dir(probes_dir, mode=RAG)} - set(probes)
    if not probes:
        raise ProbeError(f"no closed-book probe in {str(probes_dir)!r} (only RAG ones: {', '.join(sorted(rag_only))}); "
                         "evaluate rows with context with `hguard evaluate --rag`")
    first = next(iter(probes.values()))
    # answer as the probes' calibration did (older files without settings: the calibration defaults)
    settings = first.generation.replace(prompt_mode="closed_book") if first.generation else GenerationSettings(
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS, system_prompt=DEFAULT_SYSTEM_PROMPT)
    gen = Generator(lm, settings=settings)

    result: dict[str, Any] = {"model": lm.name, "domains": {}, "skipped": {}}
    by_domain: dict[str, list[Example]] = {}
    for e in examples:
        by_domain.setdefault(e.domain, []).append(e)
    for domain, exs in sorted(by_domain.items()):
        if domain not in probes:
            result["skipped"][domain] = (
                f"domain {domain!r} has only a RAG probe in {str(probes_dir)!r} (calibrated on answers given with "
                "context): evaluate rows with context with `hguard evaluate --rag`" if domain in rag_only
                else f"no probe for domain {domain!r} in {str(probes_dir)!r}")
            continue
        cd = probes[domain]
        probe = cd.probe
        refuse_foreign_layout(cd, gen)
        problems = cd.check_fingerprints(gen.fingerprints)
        if problems:
            warnings.warn(f"domain {domain!r} is evaluated under another setup than its calibration: "
                          f"{'; '.join(problems)}", stacklevel=2)
        rb, merger = cd.random_baseline, cd.merger
        if rb is None or merger is None:
            raise ProbeError(
                f"the probe file of domain {domain!r} carries no {'random baseline' if rb is None else 'merger'}; "
                "recalibrate it with `hguard calibrate`"
            )
        idx = [int(i) for i in probe.feature_indices_]
        ridx = [int(i) for i in rb["feature_indices"]]
        union = sorted(set(idx) | set(ridx))
        pos = {g: k for k, g in enumerate(union)}
        gens = gen.generate([e.question for e in exs], [e.context for e in exs], neurons=union, batch_size=batch_size)
        rows = []
        for e, g in zip(exs, gens):
            rows.append({**g.confidence, **label_row(e, g.text), "answer": g.text, "id": e.id})
        keep = np.array([r["label"] != "refusal" for r in rows])
        cetts = [g.cett for g in gens if g.cett is not None]
        if len(cetts) != len(gens):
            raise DataError(f"domain {domain!r}: the model returned no neuron contributions for an answer; the probe cannot score it")
        V = np.stack(cetts) if gens else np.zeros((0, len(union)))
        rows_k = [r for r, k in zip(rows, keep) if k]
        V = V[keep]
        y = _y(rows_k)
        lengths = _lengths(rows_k)
        logit = probe.decision_function_subset(V[:, [pos[i] for i in idx]], lengths=lengths) if len(rows_k) else np.zeros(0)
        scores = {
            "probe": sigmoid_array(logit),
            "merged": apply_merger(merger, merger_features(rows_k, logit)) if len(rows_k) else np.zeros(0),
            "random_neurons": random_baseline_score(rb, V[:, [pos[i] for i in ridx]], lengths) if len(rows_k) else np.zeros(0),
        }
        for name, f in BASELINES.items():
            scores[name] = np.array([f(r) for r in rows_k], dtype=float)
        result["domains"][domain] = {
            "n": len(rows),
            "n_scored": int(len(rows_k)),
            "correct": int((y == 0).sum()), "hallucinated": int((y == 1).sum()), "refusals": int((~keep).sum()),
            "hallucination_rate": float(y.mean()) if len(y) else None,
            "refusal_rate": float((~keep).mean()) if len(rows) else None,
            "accuracy_of_model": float(np.mean([right_reply(r["label"], asked_kind(e.kind, e.meta)) for r, e in zip(rows, exs)])) if rows else None,
            "auroc": {k: auroc(y, v) for k, v in scores.items()},
            "auroc_ci95": auroc_ci(y, scores),
            "n_h_neurons": len(probe.h_neurons_),
            "fingerprint_problems": problems,
            "probe_id": cd.probe_id,
        }
        from ..ood import beyond, feature_distance
        from .families import family_of, figures_by_family

        th = cd.fit_thresholds(None)  # the file's own, as the guard holds them (an in-sample one accepts nothing)
        dist = feature_distance(probe, V[:, [pos[i] for i in idx]]) if len(rows_k) else np.zeros(0)
        ood_at = cd.ood["threshold"] if cd.ood else None
        # each answer with the judge's label and why, its merged risk and out-of-distribution distance
        # (refusals are not scored), and where the probe file's thresholds route it (a reply that declines
        # abstains by rule; one beyond the out-of-distribution threshold reviews): so the judge can be
        # checked on the user's own rows, and which of them would be held back
        # every signal's score of each answer too, so that each AUROC above (per family, per baseline) can be
        # recomputed from the answers alone (the merged risk alone allowed only its own)
        each = [dict(zip(scores, map(float, vals))) for vals in zip(*scores.values())]
        scored = iter(zip(scores["merged"].tolist(), dist.tolist(), beyond(dist, ood_at).tolist(), each))
        answers = []
        for r, e, k in zip(rows, exs, keep):
            risk, d, far, signals = next(scored) if k else (None, None, False, None)
            route = ("abstain" if not k else "review" if far or th is None else th.route_of(risk))
            answers.append({"id": r["id"], "question": e.question, "answer": r["answer"], "label": r["label"],
                            "judge_reason": r.get("judge_reason"), "family": family_of(e), "merged_risk": risk,
                            "scores": signals, "ood_distance": d, "out_of_distribution": far if k else None,
                            "route_at_probe_thresholds": route})
        result["domains"][domain]["answers"] = answers
        # what the routing figures rest on: the probe file's thresholds, their guarantee and its scores
        result["domains"][domain]["thresholds"] = (
            {**th.to_dict(), "fitted_on": cd.thresholds_fitted_on} if th is not None else None)
        result["domains"][domain]["families"] = figures_by_family(
            [family_of(e) for e in exs], [r["label"] for r in rows], scores,
            accept_below=th.accept_below if th else None, target=th.target if th else None,
            distance=dist, ood_threshold=ood_at, kinds=[e.kind for e in exs],
        )
    return result
