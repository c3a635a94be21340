"""Calibration: answers -> labels -> one sparse probe, merger and thresholds per domain -> report.

The split comes first: questions are split into train and test by group (all templates of one fact
stay together) before anything is fitted. Everything that is fitted (the probe and its C, the
merger of probe and confidence, the thresholds) sees the training split only; the thresholds and the
merger are fitted on out-of-fold scores so that they see scores of answers the probe was not fitted on.
The folds that choose C and give those scores are grouped by fact as the split is.
The test split is used once, for the report.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._policy_fit import withdrawn_on_held_out, withdrawn_on_new_families
from .._stats import auroc, auroc_ci  # noqa: F401 (importable from here)
from ..errors import DataError, InputError
from ..settings import GenerationSettings
from ..signals.embedding import router_sample
from ._pipeline_evaluate import evaluate, load_probe_dir  # noqa: F401 (importable from here)
from ._pipeline_fit import (  # noqa: F401 (importable from here)
    BASELINES,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SYSTEM_PROMPT,
    MERGER_FEATURES,
    MIN_PER_CLASS,
    _examples,
    _lengths,
    _load_lm,
    _logit,
    _rank01,
    _y,
    accepted_by_guard,
    accuracy_at,
    apply_merger,
    best_threshold,
    domain_metrics,
    fit_domain,
    fit_merger,
    held_out_digests,
    merger_features,
    random_baseline_score,
    reviewed,
    reviewed_in_training,
    score_rows,
    split_groups,
    warnings_of_domain,
)
from ._pipeline_report import (  # noqa: F401 (importable from here)
    REPORT_TARGETS,
    _disagreements,
    coverage_at_targets,
    ood_rates,
    router_coverage,
    transfer_matrix,
)
from .collect import Collected, collect, label_row  # noqa: F401 (importable from here)
from .data import Example, data_hash, load_examples, row_order_hash, rows_for_mode  # noqa: F401 (importable from here)

_log = logging.getLogger("hguard.calibrate")  # progress and phases: `hguard calibrate` prints them on stderr


def _phase(t_start: float, what: str) -> None:
    """A calibration phase as it starts, with the minutes since the calibration began (``hguard.calibrate``, INFO)."""
    _log.info("%s (%.1f min)", what, (time.perf_counter() - t_start) / 60)

# ------------------------------------------------------------------------------------ pipeline


def kept_earlier(probe_file: Path) -> str:
    """What a skipped domain's reason adds when an earlier calibration's probe file for it is in the output
    folder: the file stays, and the guard goes on using it."""
    if not probe_file.is_file():
        return ""
    return (f"; the earlier {probe_file.name} in {probe_file.parent} was kept (the guard goes on using it; its "
            "held-out figures are in its metadata, `metrics`)")


def fitted_with(rows: Sequence[dict], *, batch_size: int, device: str | None) -> dict[str, Any]:
    """What a calibration's fit depended on beyond its rows and options (report.json and each probe file record it,
    ``fitted_with``): the order of the rows (``row_order_hash`` over their ids as fitted, per domain; ``data_hash``
    ignores the order), torch's thread count, the batch size, the device and the hguard code. A refit reproduces
    a probe file (its C, neurons, thresholds, probe_id) only with all of them the same: the same rows reversed
    gave another probe, and 2 threads instead of 1 moved thresholds in the 7th digit."""
    import torch

    from .. import __version__
    from .._resources import source_digest

    ids: dict[str, list[str]] = {}
    for r in rows:
        ids.setdefault(r["domain"], []).append(r["id"])
    return {"row_order_hash": {d: row_order_hash(v) for d, v in sorted(ids.items())}, "threads": torch.get_num_threads(),
            "batch_size": batch_size, "device": device, "hguard_version": __version__, "hguard_source": source_digest()}


def domain_fitted_with(run: dict[str, Any], domain: str) -> dict[str, Any]:
    """A probe file's ``fitted_with``: the run's, with the row order of its own domain only."""
    return {**run, "row_order_hash": run["row_order_hash"].get(domain)}


def check_run_options(out_dir: str | os.PathLike[str], *, target: float, confidence: float, batch_size: int) -> None:
    """A calibration's options checked before the model loads and answers (they were found wrong only after)."""
    from .._policy_fit import check_levels

    from .._resources import expand_home

    if expand_home(out_dir, "the output folder").is_file():  # a probe file's path given for the folder: "File exists" said nothing
        raise InputError(f"the output folder {str(out_dir)!r} is a file; pass the folder the probe files go to (e.g. "
                         f"{str(Path(out_dir).parent / 'probes')!r}), not a probe file")
    check_levels(target=target, confidence=confidence)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")


def probe_signing_key(signing_key: bytes | None | str = "environment") -> bytes | None:
    """The key a calibration signs its probe files with: ``"environment"`` (``HGUARD_KEY_FILE`` or ``HGUARD_KEY``,
    :mod:`hguard.integrity`; None when neither is set), the key's bytes, or None (unsigned). Read before the slow
    part, so a bad key fails in a second rather than after the answers are collected."""
    from ..integrity import load_key

    key = load_key() if isinstance(signing_key, str) and signing_key == "environment" else signing_key
    if key is not None and not isinstance(key, bytes):
        raise InputError(f"signing_key must be bytes, None or 'environment', got {type(key).__name__}; pass the key's bytes")
    return key


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
    from ..neurons import find_ffn_sites

    key = probe_signing_key(signing_key)
    check_run_options(out_dir, target=target, confidence=confidence, batch_size=batch_size)

    examples = _examples(data)
    if domains:
        unknown = sorted(set(domains) - {e.domain for e in examples})
        if unknown:
            raise DataError(f"domain(s) {unknown} are not in the data; the data has {sorted({e.domain for e in examples})}")
        examples = [e for e in examples if e.domain in set(domains)]
    if not examples:
        raise DataError("no examples to calibrate on; pass --data FILE.jsonl with rows")
    examples = rows_for_mode(examples, rag=False)  # rows with context are calibrate-rag's
    t_start = time.perf_counter()
    if engine == "local":  # the device checked before the model loads
        from ..devices import choose_device, move_model

        target_device = choose_device(device)
        lm = move_model(_load_lm(model, lm), target_device)
    else:
        lm = _load_lm(model, lm)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, system_prompt=system_prompt)
    gen = Generator(lm, settings=settings)
    sites = find_ffn_sites(lm.model)
    n_layers, d_ff = len(sites), sites[0].d_ff
    from .._resources import expand_home

    out = expand_home(out_dir, "the output folder")  # '~/probes' is the home folder's, not a folder named '~'
    out.mkdir(parents=True, exist_ok=True)
    work = expand_home(work_dir, "the work folder") if work_dir else out / ".work"
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
    from .families import LEFT_OUT_SCORES, attach_families, cross_family_calibration

    attach_families(col.rows, examples)
    test_mask = split_groups(col.rows, test_fraction, seed)
    reviewed_note = reviewed_in_training(col.rows, test_mask, test_fraction, seed)
    by_domain: dict[str, np.ndarray] = {}
    for i, r in enumerate(col.rows):
        by_domain.setdefault(r["domain"], np.zeros(len(col.rows), bool))[i] = True
    report: dict[str, Any] = {
        "model": lm.name,
        "fingerprints": gen.fingerprints,
        "system_prompt": system_prompt,
        "max_new_tokens": max_new_tokens,
        "prompt_frame": "asked through the model's chat template" if lm.has_chat_template else (
            "the model has no chat template: asked in the plain frame (the system prompt, then 'Question: ...' and "
            "'Answer:'), its answer ending at its first line break"),
        "split": {
            "by": "group (meta.group or meta.fact, else id), hashed with the seed; a group holding a reviewed row "
                  "(meta.source 'review') in training",
            "test_fraction": test_fraction,
            "seed": seed,
            "n_train": int((~test_mask).sum()),
            "n_test": int(test_mask.sum()),
        },
        # a resumed run's collection time is of the answers it gave, not of those it read back from earlier shards
        "timing": {"collect_seconds": collect_seconds, "n_questions": len(col.rows), **(col.origin or {})},
        "probe_fit": probe_fit.describe(),
        "fitted_with": fitted_with(col.rows, batch_size=batch_size,
                                   device=target_device if engine == "local" else getattr(ray_options, "device", None)),
        "domains": {},
        "skipped": {},
    }
    fitted: dict[str, dict] = {}
    for domain, dmask in sorted(by_domain.items()):
        train = col.subset(dmask & ~test_mask)
        test = col.subset(dmask & test_mask)
        _phase(t_start, f"domain {domain!r}: fitting the probe on {len(train.rows)} training answers")
        try:
            with warnings_of_domain(domain):
                f = fit_domain(domain, train, seed=seed, n_layers=n_layers, d_ff=d_ff, fit=probe_fit)
        except DataError as exc:
            report["skipped"][domain] = str(exc) + kept_earlier(out / f"{domain}.json")
            continue
        _phase(t_start, f"domain {domain!r}: leave-one-family-out fits (probe, merger and thresholds without each family)")
        with warnings_of_domain(domain):
            families = cross_family_calibration(f, train, col.subset(dmask), seed=seed, n_layers=n_layers, d_ff=d_ff,
                                                target=target, confidence=confidence, fit=probe_fit)
        f["family_scores"] = families.pop(LEFT_OUT_SCORES, None)
        left_out = None if f["family_scores"] is None else tuple(f["family_scores"][k] for k in (
            "risk", "hallucinated", "family", "out_of_distribution"))
        _phase(t_start, f"domain {domain!r}: thresholds and held-out figures on {len(test.rows)} held-out answers")
        thresholds = f["fit_thresholds"](f["oof_merged"], f["oof_y"], target=target, confidence=confidence)
        f["thresholds"] = thresholds
        fitted[domain] = f
        m = domain_metrics(f, test, target=target, confidence=confidence, thresholds=thresholds)
        f["held_out_scores"] = m.pop("held_out_scores")
        kept = withdrawn_on_held_out(withdrawn_on_new_families(thresholds, f["oof_merged"], f["oof_y"], f["oof_family"],
                                                               left_out=left_out),
                                     *(f["held_out_scores"][k] for k in ("risk", "hallucinated", "out_of_distribution")))
        if kept is not thresholds:  # the families left out in turn, or the held-out split, reject the certificate:
            # the report says so beside its evidence, as the guard withdraws it at load (CalibratedDomain.fit_thresholds)
            m["at_target"]["withdrawn"] = kept.method.rsplit("; withdrawn: ", 1)[1]
            thresholds = f["thresholds"] = kept
        m["at_targets"] = coverage_at_targets(f, test, confidence=confidence)
        m["thresholds_fitted_on"] = f["thresholds_fitted_on"]
        ys, rs = [int(v) for v in f["oof_y"]], f["oof_merged"]
        m["threshold_scores"] = {  # how well the scores the thresholds rest on separate the classes
            "n": len(ys), "correct": len(ys) - sum(ys), "hallucinated": sum(ys), "auroc": auroc(ys, rs),
            "auroc_ci95": auroc_ci(ys, {"merged": rs})["merged"]}
        m["thresholds_method"] = thresholds.method  # says why when no accept threshold is certified
        # what a policy with certify = "per_family" would get from the same scores (the report's target)
        per_family = withdrawn_on_new_families(
            f["fit_thresholds"](f["oof_merged"], f["oof_y"], target=target, confidence=confidence, families=f["oof_family"]),
            f["oof_merged"], f["oof_y"], f["oof_family"], per_family=True, left_out=left_out)
        m["thresholds_per_family"] = {"accept_below": per_family.accept_below, "coverage": per_family.coverage,
                                      "n_calibration": per_family.n_calibration, "method": per_family.method}
        m["families"] = families
        m["train"] = {
            "n": f["n_train"] + f["n_train_refusals"],  # the questions, as the held-out split's n counts them
            "n_scored": f["n_train"],
            "refusals": f["n_train_refusals"],
            **f["train_counts"],
            "cv_auroc_oof_probe": f["oof_neuron_auroc"],
            "cv_auroc_oof_merged": f["oof_merged_auroc"],  # under the merger before the cross-family refit
            # the folds these two were measured and C chosen on: "fact", or "row" (and why, in "folds")
            "folds_by": "fact" if f["folds_grouped"] else "row",
            "folds": f["folds"],
            "probe_fit_seconds": f["fit_seconds"],
            "probe_fit": probe_fit.describe(),
        }
        m["reviewed_items_used"] = sum(1 for r in train.rows + test.rows if reviewed(r))
        if domain in reviewed_note:
            m["reviewed_split"] = reviewed_note[domain]
        m.update(held_out_digests(test.rows))
        m["reviewer_disagreements"] = _disagreements(train.rows + test.rows)
        m["h_neurons"] = [
            {"layer": int(l), "index": int(j), "weight": float(w)} for l, j, w in f["probe"].h_neurons_
        ]
        report["domains"][domain] = m
    if not fitted:
        raise DataError("no domain could be calibrated: " + "; ".join(str(why) for why in report["skipped"].values()))
    _phase(t_start, "cross-domain transfer, out-of-distribution and domain-choice figures")
    report["transfer"] = transfer_matrix(fitted, col, by_domain, test_mask)
    report["ood"] = ood_rates(fitted, col, by_domain, test_mask, report["domains"])
    report["router"] = router_coverage(
        {d: [r["question"] for r, t in zip(col.rows, test_mask) if r["domain"] == d and not t] for d in fitted},
        {d: [r["question"] for r, t in zip(col.rows, test_mask) if r["domain"] == d and t] for d in fitted})
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
    _phase(t_start, f"writing {len(fitted)} probe file(s) and the report to {out}")
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
            calibration_scores={"risk": f["oof_merged"], "hallucinated": f["oof_y"], "family": f["oof_family"]},
            held_out_scores=f["held_out_scores"],  # what withdraws an accept threshold they reject, at any target
            family_scores=f.get("family_scores"),  # each family scored without it: so do the families left out in turn
            random_baseline=f["random_baseline"],
            # For choosing a domain when none is given: nearest calibration questions.
            router_questions=router_sample(questions),
            extra={
                "model": lm.name,
                "data_hash": data_hash(dom_examples),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "metrics": {k: v for k, v in report["domains"][domain].items() if k not in ("h_neurons", "families")},
                "families_summary": report["domains"][domain]["families"].get("summary"),
                "probe_fit": probe_fit.describe(),
                "split": report["split"],
                "fitted_with": domain_fitted_with(report["fitted_with"], domain),
            },
        ).save(out / f"{domain}.json", key=key)
    report["timing"]["total_seconds"] = time.perf_counter() - t_start
    report["timing"]["per_domain_seconds"] = {
        d: report["timing"]["total_seconds"] * by_domain[d].sum() / len(col.rows) for d in fitted
    }
    from .report import write_report

    write_report(report, out, plots=plots)
    return report


__all__ = ["DEFAULT_SYSTEM_PROMPT", "auroc", "auroc_ci", "calibrate", "check_run_options", "domain_fitted_with",
           "evaluate", "fitted_with", "kept_earlier",
           "load_probe_dir", "probe_signing_key", "transfer_matrix"]
