"""RAG calibration: probe, confidence, grounding and knowledge-conflict signals fitted together on
answers given with context, per domain, and reported per condition on held-out passages.

The answers are collected exactly as the guard generates them for a request with context (same
:class:`~hguard.generation.Generator` prompt, system prompt and length), with their CETT and
confidence. Each answer then gets the signals the guard computes in RAG mode: the grounding signals
(:class:`~hguard.signals.grounding.GroundingScorer`, the guard's own scorer), the closed-book
signals (:func:`~hguard.signals.conflict.closed_book_scores`) and the relevance signals
(:func:`~hguard.signals.relevance.relevance_scores`). They are stored beside the collection
(``rag_signals.jsonl``, ``rag_relevance.jsonl``) so a rerun computes only what is missing.

Fitting (training passages only, split by passage, see :mod:`research.rag_data`):

1. the sparse neuron probe on every answer of the domain (all conditions), its C chosen on folds grouped by
   passage as the split is (of rows only where passages cannot give such folds, and the report says why);
2. its out-of-fold logits (the same folds), which with the confidence, grounding,
   closed-book and relevance signals (:mod:`~hguard.signals.relevance`: does the passage address the
   question, does the answer, does it abstain, and grounding interactions with them) make the merger's
   features: one logistic merger, its regularisation chosen out-of-fold too (the report adds the same
   merger without the relevance signals, as an ablation);
3. Learn-then-Test thresholds on the out-of-fold merged risk (stored, so a policy's own target is
   fitted at load time);
4. a knowledge-conflict detector on the misleading-passage contrast rows (answers that followed a
   misleading passage against the truth, versus right answers from a supporting passage), pooled over
   the domains, with the threshold of best balanced accuracy out-of-fold.

The report gives, per domain and per condition on the held-out passages, the AUROC (95% bootstrap
interval) of the probe, each grounding signal, confidence and the merged risk, and what the policy
target does: coverage and hallucinations among accepted answers, and how often off-topic and
misleading answers are accepted, each with a Clopper-Pearson interval.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, InputError
from ..signals.embedding import router_sample
from .collect import _group_key, collect
from .data import Example, data_hash, rag_family_unused, rows_for_mode, warn_rag_meta
from ._pipeline_evaluate import refuse_foreign_layout
from .pipeline import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SYSTEM_PROMPT,
    check_run_options,
    domain_fitted_with,
    fitted_with,
    kept_earlier,
    held_out_digests,
    probe_signing_key,
    reviewed_in_training,
    split_groups,
    warnings_of_domain,
)
from ._pipeline_fit import linked_by_passage
from ._rag_fit import _REPORTED, conflict_scores, fit_conflict_detector, fit_rag_domain, score_rag_rows
from .._policy_fit import withdrawn_on_held_out
from ._rag_report import (
    held_out_scores,
    held_out_unchecked,
    rag_markdown,
    rag_report,
    unscorable_rows,
    write_rag_report,
)
from ._rag_signals import (
    GROUNDING_FEATURES,
    RAG_MERGER_FEATURES,
    RELEVANCE_FILE,
    REPORT_CONFIDENCE,
    REPORT_TARGET,
    SIGNALS_FILE,
    add_rag_signals,
    row_condition,
)

__all__ = [
    "GROUNDING_FEATURES",
    "RAG_MERGER_FEATURES",
    "RELEVANCE_FILE",
    "REPORT_CONFIDENCE",
    "REPORT_TARGET",
    "SIGNALS_FILE",
    "add_rag_signals",
    "calibrate_rag",
    "conflict_scores",
    "evaluate_rag",
    "fit_conflict_detector",
    "fit_rag_domain",
    "rag_markdown",
    "rag_report",
    "score_rag_rows",
    "write_rag_report",
]


def _passages(rows: Sequence[dict], examples: Sequence[Example]) -> list[str | None]:
    """Each row's passage, as its example gives it (what :func:`split_groups` keeps on one side)."""
    by_id = {e.id: e.context for e in examples}
    return [by_id.get(r["id"]) for r in rows]


def _reference_rag_sets() -> dict:
    """The bundled RAG calibration sets, built from the public data by the research harness (a source
    checkout with ``../shared/data``); an installed package calibrates from the rows it is given."""
    import sys

    root = Path(__file__).resolve().parents[2]  # the checkout an editable install runs from
    if (root / "research" / "rag_data.py").is_file() and str(root) not in sys.path:
        sys.path.append(str(root))  # the `hguard` command does not put the checkout on the path, `python -m` does
    try:
        from research.rag_data import build_rag_sets
    except ImportError:
        raise InputError(
            "the reference RAG sets are built from the public data by the source checkout's research/rag_data.py; "
            "run this from the checkout, or pass your own rows with context (`--data FILE.jsonl`, examples=...)"
        ) from None
    return build_rag_sets()


def _setup(model: str, lm, settings):
    from ..generation import Generator
    from .pipeline import _load_lm

    lm = _load_lm(model, lm)
    return lm, Generator(lm, settings=settings)


def calibrate_rag(
    examples: Sequence[Example] | None,
    out_dir: str | os.PathLike,
    *,
    model: str = "default",
    lm=None,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    test_fraction: float = 0.3,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    batch_size: int = 8,
    target: float = REPORT_TARGET,
    confidence: float = REPORT_CONFIDENCE,
    progress: bool = True,
    collected_only: bool = False,
    screen_top: int | None = None,
    fit_memory_gb: float | None = None,
    signing_key: bytes | None | str = "environment",
) -> dict:
    """Fit one RAG probe per domain of ``examples`` (default: the bundled RAG sets) into
    ``out_dir/<domain>.rag.json`` and write the report to ``report_dir`` (default ``out_dir/rag-report``).

    ``screen_top`` / ``fit_memory_gb``: as for :func:`hguard.calibrate.pipeline.calibrate`, the probes
    fitted from the shards on the top K features (recorded as ``probe_fit``). ``signing_key``: as for
    :func:`~hguard.calibrate.pipeline.calibrate`, the key configured in the environment by default.

    When no domain can be calibrated, nothing is written (DataError): the probe files and the report of an
    earlier calibration in ``out_dir`` stay as they were. A skipped domain's earlier probe file is kept, and
    the report says so."""
    from ..domain import CalibratedDomain
    from ..generation import RAG
    from ..neurons import find_ffn_sites

    key = probe_signing_key(signing_key)
    check_run_options(out_dir, target=target, confidence=confidence, batch_size=batch_size)

    if examples is None:
        examples = [e for rows in _reference_rag_sets().values() for e in rows]
    examples = list(examples)
    from .._resources import expand_home

    out_dir = expand_home(out_dir, "the output folder")  # '~/probes' is the home folder's, not a folder named '~'
    work = expand_home(work_dir, "the work folder") if work_dir else out_dir / ".work-rag"
    if collected_only:
        examples = _collected(examples, work)
    examples = rows_for_mode(examples, rag=True)  # rows without context are the closed-book calibration's
    warn_rag_meta(examples)
    t_start = time.perf_counter()
    from ..settings import GenerationSettings

    settings = GenerationSettings(max_new_tokens=max_new_tokens, system_prompt=system_prompt, prompt_mode=RAG)
    lm, gen = _setup(model, lm, settings)
    sites = find_ffn_sites(lm.model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from .screen import choose_fit

    probe_fit = choose_fit(len(examples), gen.n_features, screen_top=screen_top, fit_memory_gb=fit_memory_gb)
    col = collect(gen, examples, work, batch_size=batch_size, progress=progress, lazy=probe_fit.screened)
    rows = add_rag_signals(gen, col, examples, work, progress=progress)
    test = split_groups(rows, test_fraction, seed, passages=_passages(rows, examples))
    reviewed_note = reviewed_in_training(rows, test, test_fraction, seed, passages=_passages(rows, examples))
    conflict = fit_conflict_detector([r for r, t in zip(rows, test) if not t], seed=seed)
    fingerprints = gen.mode_fingerprints(RAG)
    report: dict[str, Any] = {
        "model": lm.name, "fingerprints": fingerprints, "system_prompt": system_prompt, "max_new_tokens": max_new_tokens,
        "split": {"by": "passage (meta.group: the question's own passage), hashed with the seed; groups whose rows "
                        "show the same passage text (an off-topic row shows another's) kept on one side; a group "
                        "holding a reviewed row (meta.source 'review') in training",
                  "test_fraction": test_fraction, "seed": seed, "n_train": int((~test).sum()), "n_test": int(test.sum()),
                  **({"family": family} if (family := rag_family_unused(examples)) else {})},
        "policy_target": {"target": target, "confidence": confidence},
        "knowledge_conflict": {k: v for k, v in conflict.items() if k != "detector"},
        "merger_features": list(RAG_MERGER_FEATURES), "domains": {}, "skipped": {},
        "probe_fit": probe_fit.describe(),
        "fitted_with": fitted_with(rows, batch_size=batch_size,
                                   device=str(next(iter(lm.model.parameters())).device) if hasattr(lm.model, "parameters") else None),
    }
    passages = _passages(rows, examples)
    for domain in sorted({r["domain"] for r in rows}):
        dm = np.array([r["domain"] == domain for r in rows])
        tr_idx, te_idx = np.flatnonzero(dm & ~test), np.flatnonzero(dm & test)
        linked = linked_by_passage([rows[i] for i in np.flatnonzero(dm)], [passages[i] for i in np.flatnonzero(dm)])
        try:
            with warnings_of_domain(domain):
                f = fit_rag_domain(domain, [rows[i] for i in tr_idx], col.features[tr_idx], seed=seed, n_layers=len(sites),
                                   d_ff=sites[0].d_ff, target=target, confidence=confidence, fit=probe_fit, linked=linked,
                                   passages=[passages[i] for i in tr_idx])
        except DataError as exc:
            report["skipped"][domain] = str(exc) + kept_earlier(out / f"{domain}.rag.json")
            continue
        m = rag_report(f, [rows[i] for i in te_idx], col.features[te_idx], conflict)
        unscorable = unscorable_rows([rows[i] for i in tr_idx], f["merger"]["features"]) + unscorable_rows(
            [rows[i] for i in te_idx], [*f["merger"]["features"], *_REPORTED])
        if unscorable:
            m["unscorable"] = {"n": len(unscorable), "first_id": unscorable[0][0], "signal": unscorable[0][1],
                               "ids": [i for i, _ in unscorable[:20]]}
        held = held_out_scores(f, [rows[i] for i in te_idx], col.features[te_idx])
        kept = withdrawn_on_held_out(f["thresholds"], held["risk"], held["hallucinated"])
        if kept is not f["thresholds"]:  # the held-out passages reject it: the figures show what it would accept
            m["thresholds"]["withdrawn"] = kept.method.rsplit("; withdrawn: ", 1)[1]
            f["thresholds"] = kept
        m["train"] = f["train"]
        # no scored held-out answer (the hallucinated count the judge's refusals the guard scores, as `_y` does): the
        # thresholds stand on the training answers alone
        if not m["all"]["correct"] + m["all"]["hallucinated"]:
            m["held_out_unchecked"] = held_out_unchecked(m, linked, test_fraction=test_fraction, seed=seed)
        if domain in reviewed_note:
            m["reviewed_split"] = reviewed_note[domain]
        m.update(held_out_digests([rows[i] for i in te_idx]))
        m["n_h_neurons"] = len(f["probe"].h_neurons_)
        m["grounding_weight_override"] = "none: the merger weighs grounding as fitted; a policy's grounding_weight is a manual override and the guard says so in its reasons"
        report["domains"][domain] = m
        dom_ex = [e for e in examples if e.domain == domain]
        questions = [e.question for e in dom_ex if (e.meta or {}).get("condition") == "supporting"] or [e.question for e in dom_ex]
        CalibratedDomain.create(
            f["probe"], name=domain, settings=settings, fingerprints=fingerprints,
            merger=f["merger"], thresholds=f["thresholds"],
            calibration_scores={"risk": f["oof_merged"], "hallucinated": f["oof_y"]},
            held_out_scores=held,  # what withdraws an accept threshold they reject, at any target
            knowledge_conflict={"detector": conflict["detector"], "threshold": conflict["threshold"]} if conflict.get("detector") else None,
            router_questions=router_sample(questions),
            extra={"model": lm.name, "data_hash": data_hash(dom_ex), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "metrics": {k: v for k, v in m.items() if k not in ("datasets",)}, "split": report["split"],
                   "probe_fit": probe_fit.describe(), "fitted_with": domain_fitted_with(report["fitted_with"], domain)},
        ).save(out / f"{domain}.rag.json", key=key)
    from ._pipeline_report import ROUTER_COUNTS_RAG, router_coverage

    def asked(held_out: bool) -> tuple[dict[str, list[str]], Counter[str]]:
        # each passage's own question, once (the router's kind), and how many rows asked them
        by: dict[str, dict[str, None]] = {}
        n_rows = Counter[str]()
        for r, t in zip(rows, test):
            if bool(t) == held_out and r["domain"] in report["domains"] and r.get("condition") == "supporting":
                by.setdefault(r["domain"], {})[r["question"]] = None
                n_rows[r["domain"]] += 1
        return {d: list(qs) for d, qs in by.items()}, n_rows

    rdir = expand_home(report_dir, "the report folder") if report_dir else out / "rag-report"
    if not report["domains"]:  # a script must not carry on with an empty probe folder; an earlier report stays
        raise DataError("no RAG domain could be calibrated, so nothing was written (the probe files and report of an "
                        f"earlier calibration in {out} stay as they were): "
                        + "; ".join(f"{d}: {why}" for d, why in report["skipped"].items()))
    held_out_asked, held_out_rows = asked(True)
    report["router"] = router_coverage(asked(False)[0], held_out_asked, counts=ROUTER_COUNTS_RAG, rows=held_out_rows)
    report["timing"] = {"total_seconds": time.perf_counter() - t_start, "n_answers": len(rows)}
    write_rag_report(report, rdir)
    return report


def _collected(examples: Sequence[Example], work: Path) -> list[Example]:
    """The examples already answered in ``work`` (in their order)."""
    from .shards import ShardStore

    done = set(ShardStore(work).finished()) if work.is_dir() else set()
    out = [e for e in examples if e.id in done]
    if not out:
        raise DataError(f"{work} holds no answers for these rows; run without collected_only first")
    return out




def _on_training_side(examples: Sequence[Example], probes: dict, test_fraction: float, seed: int) -> set[str]:
    """The ids of the rows their domain's calibration trained on: where the split its probe file records puts
    them (as calibrate_rag splits, all rows at once: by group, a passage on one side)."""
    rows: list[dict[str, Any]] = [{"id": e.id, "domain": e.domain, "group": _group_key(e), "condition": row_condition(e),
             "source": (e.meta or {}).get("source")} for e in examples]
    passages = [e.context for e in examples]
    sides: dict[tuple[float, int], np.ndarray] = {}  # one split per (test_fraction, seed) the probe files record
    trained: set[str] = set()
    for domain, cd in probes.items():
        sp = cd.split or {}
        recorded = (float(sp.get("test_fraction", test_fraction)), int(sp.get("seed", seed)))
        if recorded not in sides:
            sides[recorded] = split_groups(rows, *recorded, passages=passages)
        trained |= {r["id"] for r, test in zip(rows, sides[recorded]) if r["domain"] == domain and not test}
    return trained


def evaluate_rag(probes_dir: str | os.PathLike, work_dir: str | os.PathLike, *, model: str = "default", lm=None,
                 test_fraction: float = 0.3, seed: int = 0, batch_size: int = 8, progress: bool = False,
                 collected_only: bool = False, examples: Sequence[Example] | None = None,
                 held_out_only: bool = False) -> dict:
    """Score rows with context with the RAG probes in ``probes_dir`` (answers collected in ``work_dir``, reused
    when already there); JSON-able, per domain and condition.

    ``examples``: every one of them is scored (rows the calibration did not see: its own held-out figures are
    in its report); rows of a domain without a RAG probe are listed under ``skipped``. Each domain says how many
    of them lie on its calibration's training side by the split the probe file records (``n_training_side``:
    if they are the calibration's own rows, those were trained on and score optimistically);
    ``held_out_only`` scores only the others. Default: the held-out passages of the bundled RAG sets (a source
    checkout), split as their calibration split them."""
    from .._resources import expand_home
    from ..domain import CalibratedDomain
    from ..generation import RAG
    from ..settings import GenerationSettings

    work_dir = expand_home(work_dir, "the work folder")  # as calibrate-rag reads it: '~/w' is the home folder's

    probes = {}
    for p in sorted(Path(probes_dir).glob("*.rag.json")):
        cd = CalibratedDomain.load(p)
        probes[cd.name] = cd
    if not probes:
        raise DataError(f"no RAG probe files (*.rag.json) in {str(probes_dir)!r}; run `hguard calibrate-rag` first")
    first = next(iter(probes.values()))
    # answer as the calibration did (older files without settings: the calibration defaults)
    settings = first.generation or GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, prompt_mode=RAG)
    given = examples is not None
    skipped: dict[str, str] = {}
    given_rows: list[Example] = []
    if examples is not None:
        examples = rows_for_mode(examples, rag=True)
        skipped = {d: f"no RAG probe for domain {d!r} in {str(probes_dir)!r}"
                   for d in sorted({e.domain for e in examples} - set(probes))}
        examples = given_rows = [e for e in examples if e.domain in probes]
        if not examples:
            raise DataError(f"none of the rows is of a domain with a RAG probe in {str(probes_dir)!r} "
                            f"(probes: {', '.join(sorted(map(str, probes)))}; rows: {', '.join(skipped)})")
    else:
        examples = [e for rows in _reference_rag_sets().values() for e in rows if e.domain in probes]
    if collected_only:
        examples = _collected(examples, Path(work_dir))
    trained: set[str] = set()  # given rows on their calibration's training side
    # the recorded split is a split of the calibration's rows: of other rows (a part of them, or new questions on its
    # passages) it says nothing (a trial's subset had 6 of its 11 "held-out" rows on the training side)
    foreign = sorted(str(d) for d, cd in probes.items() if any(e.domain == d for e in given_rows)
                     and data_hash([e for e in given_rows if e.domain == d]) != cd.data_hash)
    if given and held_out_only and foreign:
        raise DataError(f"--held-out-only reads the split the probe file records, which is a split of the rows it was "
                        f"calibrated on; the rows given for {', '.join(map(repr, foreign))} are not those rows (their "
                        "data hash differs: a part of them, or others), so which passages it trained on cannot be told; "
                        "pass the calibration's own data file whole, or leave out --held-out-only and give only rows "
                        "whose passages it never saw")
    if given:
        trained = _on_training_side(examples, probes, test_fraction, seed)
        if held_out_only:  # only the others are answered: answering these too would only be thrown away
            examples = [e for e in examples if e.id not in trained]
            if not examples:
                raise DataError(f"all {len(trained)} rows given lie on the training side of their domain's calibration "
                                "(the split its probe file records), so --held-out-only leaves none to score; give rows "
                                "the calibration did not see, or leave out --held-out-only to score these (optimistically)")
    lm, gen = _setup(model, lm, settings)  # after the rows are read and checked
    for cd in probes.values():
        refuse_foreign_layout(cd, gen)
    col = collect(gen, examples, work_dir, batch_size=batch_size, progress=progress)
    rows = add_rag_signals(gen, col, examples, work_dir, progress=progress)
    passages = _passages(rows, examples)
    test = np.ones(len(rows), dtype=bool) if given else split_groups(rows, test_fraction, seed, passages=passages)
    held_out = (("the rows given on their calibration's test side (its recorded split)" if held_out_only else
                 "every row given (each domain's n_training_side counts the rows whose group falls on its calibration's "
                 "training side by the split its probe file records, whether or not the calibration saw them: only rows "
                 "it trained on score optimistically; of rows other than the calibration's it can say nothing, and a "
                 "new question on a passage the calibration used is not held out either)") if given
                else "passages on the test side of the split")
    result: dict[str, Any] = {"model": lm.name, "prompt_mode": RAG, "held_out": held_out, "domains": {}, "skipped": skipped}
    for domain, cd in probes.items():
        if given and not any(e.domain == domain for e in given_rows):
            continue
        mine = np.array([r["domain"] == domain for r in rows])
        idx = np.flatnonzero(mine & test)
        fitted = {"probe": cd.probe, "merger": cd.merger, "thresholds": cd.thresholds,
                  "train": (cd.extra.get("metrics") or {}).get("train")}  # the folds its calibration recorded
        det = cd.knowledge_conflict or {}
        m = rag_report(fitted, [rows[i] for i in idx], col.features[idx], det, answers=True)
        m["fingerprint_problems"] = cd.check_fingerprints(gen.mode_fingerprints(RAG))
        m["probe_id"] = cd.probe_id
        if given:
            m["n_training_side"] = (None if domain in foreign else
                                    sum(1 for e in given_rows if e.domain == domain and e.id in trained))
            if domain in foreign:
                m["training_side_unknown"] = (
                    "the rows given are not the rows this domain was calibrated on (their data hash differs), so its "
                    "recorded split cannot say which it trained on: rows on passages the calibration used score "
                    "optimistically")
        result["domains"][domain] = m
    return result
