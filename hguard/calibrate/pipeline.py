"""Calibration: answers -> labels -> one sparse probe, merger and thresholds per domain -> report.

The split comes first: questions are split into train and test by group (all templates of one fact
stay together) before anything is fitted. Everything that is fitted (the probe and its C, the
merger of probe and confidence, the thresholds) sees the training split only; the thresholds and the
merger are fitted on out-of-fold scores so that they see scores of answers the probe was not fitted on.
The test split is used once, for the report.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

import numpy as np

from .._numerics import sigmoid_array
from .._stats import auroc, auroc_ci
from ..errors import DataError, InputError, ProbeError
from ..settings import CALIBRATION_MAX_NEW_TOKENS, CALIBRATION_SYSTEM_PROMPT, GenerationSettings
from .collect import Collected, collect, label_row
from .data import Example, data_hash, load_examples

if TYPE_CHECKING:
    from ..domain import CalibratedDomain

_log = logging.getLogger("hguard.calibrate")

DEFAULT_SYSTEM_PROMPT = CALIBRATION_SYSTEM_PROMPT
DEFAULT_MAX_NEW_TOKENS = CALIBRATION_MAX_NEW_TOKENS
MERGER_FEATURES = ("neuron_logit", "mean_logprob", "min_logprob", "mean_entropy", "log_length")
# Raw confidence baselines, each oriented so that a higher value means a riskier answer.
BASELINES = {
    "mean_logprob": lambda r: -r["mean_logprob"],
    "min_logprob": lambda r: -r["min_logprob"],
    "entropy": lambda r: r["mean_entropy"],
    "length": lambda r: r["length"],
}
MIN_PER_CLASS = 8


# ------------------------------------------------------------------------------------- helpers


def best_threshold(y, score) -> float:
    """The threshold on ``score`` (risk: higher = hallucinated) with the best accuracy on (y, score)."""
    y = np.asarray(y)
    s = np.asarray(score, dtype=float)
    cands = np.unique(s)
    best, best_acc = float(cands[0]) if cands.size else 0.0, -1.0
    for t in cands:
        acc = float(((s >= t).astype(int) == y).mean())
        if acc > best_acc:
            best, best_acc = float(t), acc
    return best


def accuracy_at(y, score, threshold) -> float | None:
    y = np.asarray(y)
    if y.size == 0:
        return None
    return float(((np.asarray(score, dtype=float) >= threshold).astype(int) == y).mean())


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def merger_features(rows: Sequence[dict], neuron_logit: np.ndarray) -> np.ndarray:
    return np.column_stack(
        [
            neuron_logit,
            [r["mean_logprob"] for r in rows],
            [r["min_logprob"] for r in rows],
            [r["mean_entropy"] for r in rows],
            [math.log1p(r["length"]) for r in rows],
        ]
    ).astype(float)


def fit_merger(Z: np.ndarray, y: np.ndarray, features: Sequence[str] = MERGER_FEATURES, C: float = 1.0) -> dict:
    """A small logistic model over probe logit and confidence (or the named ``features``, one per
    column of ``Z``), as plain data for :func:`policy.merge_risk`."""
    from sklearn.linear_model import LogisticRegression

    mean = Z.mean(0)
    scale = Z.std(0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit((Z - mean) / scale, y)
    return {
        "features": list(features),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
    }


def apply_merger(merger: Mapping[str, Any], Z: np.ndarray) -> np.ndarray:
    z = (Z - np.asarray(merger["mean"])) / np.asarray(merger["scale"])
    return sigmoid_array(z @ np.asarray(merger["coef"]) + merger["intercept"])


def random_baseline_score(d: Mapping[str, Any], values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Risk from the random-neuron baseline stored in a probe file; ``values`` in its index order."""
    Z = (np.asarray(values, dtype=float) - np.asarray(d["center"])) / np.asarray(d["scale"])
    if d["length"] is not None:
        Z = np.column_stack([Z, (np.log1p(lengths) - d["length"][0]) / d["length"][1]])
    return sigmoid_array(Z @ np.asarray(d["coef"]) + d["intercept"])


def _rank01(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x) / max(len(x), 1)


def _y(rows: Sequence[dict]) -> np.ndarray:
    return np.array([1 if r["label"] == "hallucinated" else 0 for r in rows], dtype=int)


def _lengths(rows: Sequence[dict]) -> np.ndarray:
    return np.array([r["length"] for r in rows], dtype=float)


def split_groups(rows: Sequence[dict], test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask, by group, deterministic (hash of the group key and seed)."""
    from .data import split_ids

    groups = sorted({r["group"] for r in rows})
    _, test_ids = split_ids(groups, test_fraction=test_fraction, seed=seed)
    test = set(test_ids)
    return np.array([r["group"] in test for r in rows], dtype=bool)


# ------------------------------------------------------------------------------------ fitting


def fit_domain(domain: str, train: Collected, *, seed: int, n_layers: int, d_ff: int, cv: int = 5, fit=None) -> dict:
    """Fit probe, random-neuron baseline, merger and thresholds on one domain's training answers.

    ``fit``: a :class:`hguard.calibrate.screen.ProbeFit` (None: in memory); a screened fit screens
    again inside each out-of-fold refit."""
    from sklearn.model_selection import StratifiedKFold

    from ..policy import fit_thresholds
    from .screen import fit_probe, probe_logit, random_baseline, refit_at_C

    keep = np.array([r["label"] != "refusal" for r in train.rows])
    tr = train.subset(keep)
    y = _y(tr.rows)
    lengths = _lengths(tr.rows)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(
            f"domain {domain!r}: the training split has {counts[0]} correct and {counts[1]} hallucinated answers; "
            f"at least {MIN_PER_CLASS} of each are needed to fit a probe; add questions to the domain"
        )
    t0 = time.perf_counter()
    probe = fit_probe(tr.features, y, fit=fit, lengths=lengths, cv=cv, n_layers=n_layers, d_ff=d_ff, random_state=seed)
    fit_seconds = time.perf_counter() - t0
    # Out-of-fold probe scores with C fixed, so the merger and the thresholds see honest scores.
    oof = np.zeros(len(y))
    folds = list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(np.zeros((len(y), 1)), y))
    for a, b in folds:
        p = refit_at_C(probe, tr.features[a], y[a], fit=fit, lengths=lengths[a])
        oof[b] = probe_logit(p, tr.features[b], lengths=lengths[b])
    Z = merger_features(tr.rows, oof)
    merger = fit_merger(Z, y)
    merged_oof = np.zeros(len(y))
    for a, b in folds:
        merged_oof[b] = apply_merger(fit_merger(Z[a], y[a]), Z[b])
    n_random = max(1, len(probe.feature_indices_))
    rnd = random_baseline(tr.features, y, n_random, seed=seed, lengths=lengths, fit=fit)
    return {
        "probe": probe,
        "merger": merger,
        "random_baseline": rnd.to_dict(),
        "oof_neuron_auroc": auroc(y, oof),
        "oof_merged_auroc": auroc(y, merged_oof),
        "oof_merged": merged_oof.tolist(),
        "oof_y": y.tolist(),
        "n_train": int(len(y)),
        "n_train_refusals": int((~keep).sum()),
        "train_counts": {"correct": int(counts[0]), "hallucinated": int(counts[1])},
        "fit_seconds": fit_seconds,
        "fit_thresholds": fit_thresholds,
        "baseline_thresholds": {
            name: best_threshold(y, [f(r) for r in tr.rows]) for name, f in BASELINES.items()
        },
        "probe_threshold": best_threshold(y, sigmoid_array(probe_logit(probe, tr.features, lengths=lengths))),
        "merged_threshold": best_threshold(y, merged_oof),
    }


def score_rows(fitted: dict, col: Collected) -> dict[str, np.ndarray]:
    """Every risk score of the report for ``col``'s rows under one domain's fitted objects."""
    from .screen import probe_logit

    probe = fitted["probe"]
    lengths = _lengths(col.rows)
    logit = probe_logit(probe, col.features, lengths=lengths)
    rb = fitted["random_baseline"]
    out = {
        "probe": sigmoid_array(logit),
        "merged": apply_merger(fitted["merger"], merger_features(col.rows, logit)),
        "random_neurons": random_baseline_score(rb, col.features[:, rb["feature_indices"]], lengths),
    }
    for name, f in BASELINES.items():
        out[name] = np.array([f(r) for r in col.rows], dtype=float)
    return out


def domain_metrics(fitted: dict, test: Collected, *, target: float, confidence: float, thresholds) -> dict:
    keep = np.array([r["label"] != "refusal" for r in test.rows])
    te = test.subset(keep)
    y = _y(te.rows)
    scores = score_rows(fitted, te) if len(te.rows) else {}
    au = {k: auroc(y, v) for k, v in scores.items()}
    ci = auroc_ci(y, scores)
    thr = {
        "probe": fitted["probe_threshold"],
        "merged": fitted["merged_threshold"],
        "random_neurons": 0.5,
        **fitted["baseline_thresholds"],
    }
    acc = {k: accuracy_at(y, v, thr[k]) for k, v in scores.items()}
    n_all = len(test.rows)
    probe = fitted["probe"]
    merged = scores.get("merged", np.zeros(0))
    accepted = merged < thresholds.accept_below if len(merged) else np.zeros(0, bool)
    abstained = merged >= thresholds.abstain_above if len(merged) else np.zeros(0, bool)
    return {
        "n": n_all,
        "n_scored": int(len(y)),
        "hallucination_rate": float(y.mean()) if len(y) else None,
        "refusal_rate": float((~keep).mean()) if n_all else None,
        "refusals": int((~keep).sum()),
        "auroc": au,
        "auroc_ci95": ci,
        "accuracy": acc,
        "n_h_neurons": len(probe.h_neurons_),
        "n_selected_neurons": int(len(probe.feature_indices_)),
        "h_neuron_share_per_mille": 1000.0 * len(probe.h_neurons_) / probe.n_features_in_,
        "C": float(probe.C_),
        "at_target": {
            "target": target,
            "confidence": confidence,
            "accept_below": thresholds.accept_below,
            "abstain_above": thresholds.abstain_above,
            "coverage": float(accepted.mean()) if len(accepted) else None,
            "accepted_hallucination_rate": float(y[accepted].mean()) if accepted.any() else None,
            "abstain_share": float(abstained.mean()) if len(abstained) else None,
        },
    }


# ------------------------------------------------------------------------------------ pipeline


def _examples(data: Sequence[str | os.PathLike] | Sequence[Example]) -> list[Example]:
    """``data`` as examples: given as examples, or read from the files it names."""
    if data and isinstance(data[0], Example):
        return list(cast("Sequence[Example]", data))
    return load_examples(list(cast("Sequence[str | os.PathLike[str]]", data)))


def _load_lm(model: str | None, lm):
    if lm is not None:
        return lm
    from ..models import load_model

    return load_model(model or "default")


def calibrate(
    data: Sequence[str | os.PathLike] | Sequence[Example],
    out_dir: str | os.PathLike,
    *,
    model: str = "default",
    lm=None,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    test_fraction: float = 0.3,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    target: float = 0.10,
    confidence: float = 0.95,
    progress: bool = True,
    plots: bool = True,
    domains: Sequence[str] | None = None,
    signing_key: bytes | None | str = "environment",
    engine: str = "local",
    ray_options=None,
    screen_top: int | None = None,
    fit_memory_gb: float | None = None,
    device: str = "auto",
) -> dict:
    """Fit one probe per domain found in ``data`` into ``out_dir`` and write the report there.

    ``engine``: "local" answers in this process; "ray" on a Ray cluster
    (:mod:`hguard.calibrate.ray_engine`, ``ray_options`` a :class:`~hguard.calibrate.ray_engine.RayOptions`);
    both write the same shards to the work folder and give the same answers and probes.

    ``screen_top``: fit every probe from the shards on the top K features by a univariate screen
    (:mod:`hguard.calibrate.screen`), never holding all features in memory; without it, the fit is
    screened only when the in-memory matrix would exceed ``fit_memory_gb`` (default: half the
    machine's memory; the rule is :func:`hguard.calibrate.screen.choose_fit`). The report and each
    probe file record which fit was used (``probe_fit``).

    ``device``: where the local engine's model answers (:func:`hguard.devices.choose_device`); the Ray
    engine's actors take theirs from ``ray_options.device``.

    Probe files are signed with ``signing_key``; by default the key configured in the environment
    (``HGUARD_KEY_FILE`` or ``HGUARD_KEY``, see :mod:`hguard.integrity`), and unsigned when there is none.
    """
    from ..generation import Generator
    from ..integrity import load_key
    from ..neurons import find_ffn_sites

    # Read before the slow part, so a bad key fails in a second rather than after the answers are collected.
    key = load_key() if isinstance(signing_key, str) and signing_key == "environment" else signing_key
    if key is not None and not isinstance(key, bytes):
        raise InputError(f"signing_key must be bytes, None or 'environment', got {type(key).__name__}; pass the key's bytes")

    examples = _examples(data)
    if domains:
        unknown = sorted(set(domains) - {e.domain for e in examples})
        if unknown:
            raise DataError(f"domain(s) {unknown} are not in the data; the data has {sorted({e.domain for e in examples})}")
        examples = [e for e in examples if e.domain in set(domains)]
    if not examples:
        raise DataError("no examples to calibrate on; pass --data FILE.jsonl with rows")
    t_start = time.perf_counter()
    lm = _load_lm(model, lm)
    if engine == "local":
        from ..devices import choose_device, move_model

        lm = move_model(lm, choose_device(device))
    settings = GenerationSettings(max_new_tokens=max_new_tokens, system_prompt=system_prompt)
    gen = Generator(lm, settings=settings)
    sites = find_ffn_sites(lm.model)
    n_layers, d_ff = len(sites), sites[0].d_ff
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir) if work_dir else out / ".work"
    from .screen import choose_fit

    probe_fit = choose_fit(len(examples), gen.n_features, screen_top=screen_top, fit_memory_gb=fit_memory_gb)
    _log.info("probe fit: %s (%s)", f"screened to the top {probe_fit.screen_top} features" if probe_fit.screened else "in memory",
              probe_fit.reason)
    t0 = time.perf_counter()
    if engine == "ray":
        from .ray_engine import collect_ray

        col = collect_ray(gen, examples, work, model=model, batch_size=batch_size, options=ray_options, progress=progress,
                          lazy=probe_fit.screened)
    elif engine == "local":
        col = collect(gen, examples, work, batch_size=batch_size, progress=progress, lazy=probe_fit.screened)
    else:
        raise DataError(f"engine {engine!r} is not known; use 'local' or 'ray'")
    collect_seconds = time.perf_counter() - t0
    from .families import attach_families, cross_family_calibration

    attach_families(col.rows, examples)
    test_mask = split_groups(col.rows, test_fraction, seed)
    by_domain: dict[str, np.ndarray] = {}
    for i, r in enumerate(col.rows):
        by_domain.setdefault(r["domain"], np.zeros(len(col.rows), bool))[i] = True
    report: dict[str, Any] = {
        "model": lm.name,
        "fingerprints": gen.fingerprints,
        "system_prompt": system_prompt,
        "max_new_tokens": max_new_tokens,
        "split": {
            "by": "group (meta.group or meta.fact, else id), hashed with the seed",
            "test_fraction": test_fraction,
            "seed": seed,
            "n_train": int((~test_mask).sum()),
            "n_test": int(test_mask.sum()),
        },
        "timing": {"collect_seconds": collect_seconds, "n_questions": len(col.rows)},
        "probe_fit": probe_fit.describe(),
        "domains": {},
        "skipped": {},
    }
    fitted: dict[str, dict] = {}
    for domain, dmask in sorted(by_domain.items()):
        train = col.subset(dmask & ~test_mask)
        test = col.subset(dmask & test_mask)
        try:
            f = fit_domain(domain, train, seed=seed, n_layers=n_layers, d_ff=d_ff, fit=probe_fit)
        except DataError as exc:
            report["skipped"][domain] = str(exc)
            continue
        families = cross_family_calibration(f, train, col.subset(dmask), seed=seed, n_layers=n_layers, d_ff=d_ff,
                                            target=target, confidence=confidence, fit=probe_fit)
        thresholds = f["fit_thresholds"](f["oof_merged"], f["oof_y"], target=target, confidence=confidence)
        f["thresholds"] = thresholds
        fitted[domain] = f
        m = domain_metrics(f, test, target=target, confidence=confidence, thresholds=thresholds)
        m["at_targets"] = coverage_at_targets(f, test, confidence=confidence)
        m["thresholds_fitted_on"] = f["thresholds_fitted_on"]
        m["families"] = families
        m["train"] = {
            "n": f["n_train"],
            "refusals": f["n_train_refusals"],
            **f["train_counts"],
            "cv_auroc_oof_probe": f["oof_neuron_auroc"],
            "cv_auroc_oof_merged": f["oof_merged_auroc"],
            "probe_fit_seconds": f["fit_seconds"],
            "probe_fit": probe_fit.describe(),
        }
        m["reviewed_items_used"] = sum(1 for r in train.rows + test.rows if r.get("source") == "review")
        m["reviewer_disagreements"] = _disagreements(train.rows + test.rows)
        m["h_neurons"] = [
            {"layer": int(l), "index": int(j), "weight": float(w)} for l, j, w in f["probe"].h_neurons_
        ]
        report["domains"][domain] = m
    if not fitted:
        raise DataError(f"no domain could be calibrated: {report['skipped']}")
    report["transfer"] = transfer_matrix(fitted, col, by_domain, test_mask)
    report["ood"] = ood_rates(fitted, col, by_domain, test_mask, report["domains"])
    report["risk_coverage"] = {}
    for domain, f in fitted.items():
        test = col.subset(by_domain[domain] & test_mask)
        te = test.subset([r["label"] != "refusal" for r in test.rows])
        from ..policy import risk_coverage_curve

        sc = score_rows(f, te)
        if te.rows:
            # baselines are not probabilities: their ranks give the same curve on a [0, 1] scale
            report["risk_coverage"][domain] = {
                k: risk_coverage_curve(_rank01(sc[k]).tolist(), _y(te.rows).tolist()) for k in ("merged", "probe", "mean_logprob")
            }
    # Write probes.
    from ..domain import CalibratedDomain

    for domain, f in fitted.items():
        questions = [r["question"] for r in col.rows if r["domain"] == domain]
        dom_examples = [e for e in examples if e.domain == domain]
        CalibratedDomain.create(
            f["probe"], name=domain, settings=settings, fingerprints=gen.fingerprints,
            merger=f["merger"],
            thresholds=f["thresholds"],
            thresholds_fitted_on=f["thresholds_fitted_on"],
            # Answers whose probe-feature distance exceeds this go to review (hguard.ood).
            ood=f.get("ood"),
            # Out-of-fold merged risks and labels of the training split, so that a policy with another
            # target or confidence gets thresholds fitted for it at load time, without recalibrating.
            calibration_scores={"risk": f["oof_merged"], "hallucinated": f["oof_y"]},
            random_baseline=f["random_baseline"],
            # For choosing a domain when none is given: nearest calibration questions.
            router_questions=tuple(questions[:: max(1, len(questions) // 120)][:120]),
            extra={
                "model": lm.name,
                "data_hash": data_hash(dom_examples),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "metrics": {k: v for k, v in report["domains"][domain].items() if k not in ("h_neurons", "families")},
                "families_summary": report["domains"][domain]["families"].get("summary"),
                "probe_fit": probe_fit.describe(),
                "split": report["split"],
            },
        ).save(out / f"{domain}.json", key=key)
    report["timing"]["total_seconds"] = time.perf_counter() - t_start
    report["timing"]["per_domain_seconds"] = {
        d: report["timing"]["total_seconds"] * by_domain[d].sum() / len(col.rows) for d in fitted
    }
    from .report import write_report

    write_report(report, out, plots=plots)
    return report


REPORT_TARGETS = (0.05, 0.10, 0.20, 0.30)


def coverage_at_targets(fitted: dict, test: Collected, *, confidence: float) -> list[dict]:
    """For several targets: the accept threshold fitted on training scores, and what it does on the
    held-out split (coverage and hallucination rate among accepted answers)."""
    keep = [r["label"] != "refusal" for r in test.rows]
    te = test.subset(keep)
    if not te.rows:
        return []
    y = _y(te.rows)
    merged = score_rows(fitted, te)["merged"]
    out = []
    for t in REPORT_TARGETS:
        th = fitted["fit_thresholds"](fitted["oof_merged"], fitted["oof_y"], target=t, confidence=confidence)
        acc = merged < th.accept_below
        out.append(
            {
                "target": t,
                "accept_below": th.accept_below,
                "coverage": float(acc.mean()),
                "accepted_hallucination_rate": float(y[acc].mean()) if acc.any() else None,
                "n_accepted": int(acc.sum()),
            }
        )
    return out


def _disagreements(rows: Sequence[dict]) -> int:
    """Reviewed items where the reviewer's label disagrees with the probe's side of 0.5."""
    n = 0
    for r in rows:
        if r.get("source") == "review" and r.get("review_risk") is not None:
            said_bad = r["label"] == "hallucinated"
            if said_bad != (float(r["review_risk"]) >= 0.5):
                n += 1
    return n


def transfer_matrix(fitted: dict, col: Collected, by_domain: dict, test_mask: np.ndarray) -> dict:
    """AUROC of each domain's probe (rows) on each domain's held-out answers (columns)."""
    from .screen import probe_logit

    names = sorted(fitted)
    matrix: dict[str, dict[str, float | None]] = {}
    for a in names:
        matrix[a] = {}
        for b in sorted(by_domain):
            te = col.subset(by_domain[b] & test_mask)
            te = te.subset([r["label"] != "refusal" for r in te.rows])
            if not te.rows:
                matrix[a][b] = None
                continue
            p = probe_logit(fitted[a]["probe"], te.features, lengths=_lengths(te.rows))
            matrix[a][b] = auroc(_y(te.rows), p)
    diag = [v for a in names if (v := matrix[a].get(a)) is not None]
    off = [v for a in names for b, v in matrix[a].items() if b != a and v is not None]
    return {
        "auroc": matrix,
        "mean_within": float(np.mean(diag)) if diag else None,
        "mean_across": float(np.mean(off)) if off else None,
    }


def ood_rates(fitted: dict, col: Collected, by_domain: dict, test_mask: np.ndarray, domains: dict) -> dict:
    """How often each domain's out-of-distribution check fires: on its held-out families (from the
    leave-one-family-out run), on its own held-out split, and on every other domain's held-out answers."""
    from ..ood import full_distance

    out = {}
    for a, f in sorted(fitted.items()):
        ood = f.get("ood")
        if not ood:
            out[a] = {"no_figure": "no cross-family distances (fewer than two families)"}
            continue
        entry = {"threshold": ood["threshold"], "quantile": ood["quantile"], "fitted_on": ood["fitted_on"],
                 "held_out_families": (domains[a].get("families") or {}).get("summary", {}).get("ood_held_out_families"),
                 "domains": {}}
        for b in sorted(by_domain):
            te = col.subset(by_domain[b] & test_mask)
            if not te.rows:
                continue
            d = full_distance(f["probe"], te.features)
            entry["domains"][b] = {"n": len(te.rows), "triggered": int((d > ood["threshold"]).sum()),
                                   "rate": float((d > ood["threshold"]).mean())}
        out[a] = entry
    return out


# ----------------------------------------------------------------------------------- evaluation


def load_probe_dir(probes_dir: str | os.PathLike, expect: dict | None = None) -> dict[str, CalibratedDomain]:
    """The calibrated domains (:class:`hguard.domain.CalibratedDomain`) in a probe folder, by name."""
    from ..domain import CalibratedDomain

    d = Path(probes_dir)
    files = sorted(p for p in d.glob("*.json") if p.name not in ("report.json",))
    out: dict[str, CalibratedDomain] = {}
    for p in files:
        cd = CalibratedDomain.load(p, expect=expect)
        out[cd.name or p.stem] = cd  # CalibratedDomain.load names a domain without a name after its file
    if not out:
        raise ProbeError(f"no probe files (*.json) in {str(d)!r}; run `hguard calibrate --data FILE --out {d}` first")
    return out


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

    examples = _examples(data)
    if limit:
        examples = examples[:limit]
    lm = _load_lm(model, lm)
    probes = load_probe_dir(probes_dir)
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
            result["skipped"][domain] = f"no probe for domain {domain!r} in {str(probes_dir)!r}"
            continue
        cd = probes[domain]
        probe = cd.probe
        problems = cd.check_fingerprints(gen.fingerprints)
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
            "hallucination_rate": float(y.mean()) if len(y) else None,
            "refusal_rate": float((~keep).mean()) if len(rows) else None,
            "accuracy_of_model": float(np.mean([r["label"] == "correct" for r in rows])) if rows else None,
            "auroc": {k: auroc(y, v) for k, v in scores.items()},
            "auroc_ci95": auroc_ci(y, scores),
            "n_h_neurons": len(probe.h_neurons_),
            "fingerprint_problems": problems,
            "probe_id": cd.probe_id,
        }
        from ..ood import feature_distance
        from .families import family_of, figures_by_family

        th = cd.thresholds
        result["domains"][domain]["families"] = figures_by_family(
            [family_of(e) for e in exs], [r["label"] for r in rows], scores,
            accept_below=th.accept_below if th else None, target=th.target if th else None,
            distance=feature_distance(probe, V[:, [pos[i] for i in idx]]) if len(rows_k) else np.zeros(0),
            ood_threshold=cd.ood["threshold"] if cd.ood else None,
        )
    return result


__all__ = ["DEFAULT_SYSTEM_PROMPT", "auroc", "auroc_ci", "calibrate", "evaluate", "load_probe_dir", "transfer_matrix"]
