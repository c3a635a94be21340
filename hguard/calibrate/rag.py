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

1. the sparse neuron probe on every answer of the domain (all conditions);
2. its out-of-fold logits (folds grouped by passage), which with the confidence, grounding,
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

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._numerics import sigmoid_array
from ..errors import DataError, InputError
from .collect import Collected, collect, label_row
from .data import Example, data_hash
from .pipeline import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SYSTEM_PROMPT,
    MERGER_FEATURES,
    MIN_PER_CLASS,
    apply_merger,
    auroc,
    auroc_ci,
    fit_merger,
    split_groups,
)

__all__ = [
    "GROUNDING_FEATURES",
    "RAG_MERGER_FEATURES",
    "add_rag_signals",
    "calibrate_rag",
    "evaluate_rag",
    "rag_report",
]

GROUNDING_FEATURES = ("grounding_lexical", "grounding_phrase", "grounding_proximity", "grounding_embedding", "grounding")
SIGNALS_FILE = "rag_signals.jsonl"
RELEVANCE_FILE = "rag_relevance.jsonl"
REPORT_TARGET, REPORT_CONFIDENCE = 0.10, 0.90
MERGER_CS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)



def _read_rows(path: Path) -> dict[str, dict]:
    """Rows already written to a resumable JSONL side file, by id; a torn last line (a killed run) is cut off."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        with open(path, "r+b") as fh:
            fh.truncate(len(data) - len(tail))
    for raw in complete:
        if raw.strip():
            row = json.loads(raw)
            done[row["id"]] = row
    return done


def _append_rows(path: Path, rows: Sequence[dict]) -> None:
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)

def _rag_merger_features() -> tuple[str, ...]:
    from ..signals.conflict import CONFLICT_FEATURES
    from ..signals.relevance import RELEVANCE_FEATURES

    return tuple(MERGER_FEATURES) + GROUNDING_FEATURES + tuple(CONFLICT_FEATURES) + tuple(RELEVANCE_FEATURES)


RAG_MERGER_FEATURES = _rag_merger_features()


# ------------------------------------------------------------------------------------ signals


def add_rag_signals(generator, col: Collected, examples: Sequence[Example], work_dir: str | os.PathLike, *,
                    scorer=None, progress: bool = True) -> list[dict]:
    """Per row of ``col``: the grounding and closed-book signals (and ``log_length``), computed once
    and kept in ``work_dir/rag_signals.jsonl``. Rows also get the judge's label afresh (so a judge
    fix needs no new answers)."""
    from tqdm.auto import tqdm

    from ..signals.conflict import closed_book_scores

    if scorer is None:
        from ..signals.embedding import get_embedder
        from ..signals.grounding import GroundingScorer

        scorer = GroundingScorer(embedder=get_embedder())
    by_id = {e.id: e for e in examples}
    path = Path(work_dir) / SIGNALS_FILE
    done = _read_rows(path)
    todo = [r for r in col.rows if r["id"] not in done]
    for r in tqdm(todo, desc="grounding + closed-book signals", unit="a", disable=not progress):
        e = by_id[r["id"]]
        sig: dict[str, Any] = {"id": r["id"]}
        if r["answer"].strip():
            sig.update(scorer.score(e.question, r["answer"], e.context))
            sig.update(closed_book_scores(generator, [e.question], [r["answer"]], [r["mean_logprob"]])[0])
        _append_rows(path, [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in sig.items()}])
        done[r["id"]] = sig
    rel = _relevance_rows(col, by_id, done, Path(work_dir), scorer, progress)
    out = []
    for r in col.rows:
        e = by_id[r["id"]]
        row = {**r, **{k: v for k, v in done[r["id"]].items() if k != "id"},
               **{k: v for k, v in rel[r["id"]].items() if k != "id"}, **label_row(e, r["answer"])}
        row["log_length"] = math.log1p(r["length"])
        row["condition"] = (e.meta or {}).get("condition")
        row["dataset"] = (e.meta or {}).get("dataset")
        out.append(row)
    return out


def _relevance_rows(col: Collected, by_id: dict, signals: dict, work: Path, scorer, progress: bool) -> dict[str, dict]:
    """The relevance signals (:mod:`hguard.signals.relevance`) of each row, kept in their own side file
    (``rag_relevance.jsonl``) so they can be added to a collection whose grounding signals are done."""
    from tqdm.auto import tqdm

    from ..signals.relevance import RELEVANCE_FEATURES, relevance_scores

    path = work / RELEVANCE_FILE
    done = _read_rows(path)
    embedder = getattr(scorer, "embedder", None)
    # a row stored before a signal was added is computed again (the later line wins when read back)
    todo = [r for r in col.rows if r["id"] not in done or (r["answer"].strip() and not set(RELEVANCE_FEATURES) <= set(done[r["id"]]))]
    for r in tqdm(todo, desc="relevance signals", unit="a", disable=not progress):
        e = by_id[r["id"]]
        sig: dict[str, Any] = {"id": r["id"]}
        if r["answer"].strip():
            sig.update(relevance_scores(e.question, r["answer"], e.context, signals[r["id"]].get("grounding"), embedder=embedder))
        _append_rows(path, [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in sig.items()}])
        done[r["id"]] = sig
    return done


def _finite(rows: Sequence[dict], names: Sequence[str]) -> np.ndarray:
    return np.array([all(r.get(k) is not None and math.isfinite(float(r[k])) for k in names) for r in rows], dtype=bool)


def _matrix(rows: Sequence[dict], names: Sequence[str], neuron_logit: np.ndarray | None = None) -> np.ndarray:
    cols = []
    for k in names:
        if k == "neuron_logit":
            cols.append(np.asarray(neuron_logit, dtype=float))
        else:
            cols.append(np.array([float(r[k]) for r in rows], dtype=float))
    return np.column_stack(cols) if cols else np.zeros((len(rows), 0))


def _y(rows: Sequence[dict]) -> np.ndarray:
    return np.array([1 if r["label"] == "hallucinated" else 0 for r in rows], dtype=int)


def _folds(y: np.ndarray, groups: Sequence[str], k: int, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold

    return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


# --------------------------------------------------------------------------------- conflict


def _conflict_target(rows: Sequence[dict]) -> np.ndarray:
    """1: followed a misleading passage against the truth; 0: right answer from a supporting passage;
    -1: neither (not used by the detector)."""
    out = []
    for r in rows:
        if r["condition"] == "misleading" and r["label"] == "hallucinated" and "misleading" in r.get("judge_reason", ""):
            out.append(1)
        elif r["condition"] == "supporting" and r["label"] == "correct":
            out.append(0)
        else:
            out.append(-1)
    return np.array(out, dtype=int)


def fit_conflict_detector(rows: Sequence[dict], *, seed: int, cv: int = 5) -> dict:
    """Logistic detector over the closed-book signals, and the threshold of best balanced accuracy
    on its out-of-fold scores. ``{"detector": None, "why": ...}`` when there are too few rows."""
    from sklearn.linear_model import LogisticRegression

    from ..signals.conflict import CONFLICT_FEATURES

    t = _conflict_target(rows)
    ok = (t >= 0) & _finite(rows, CONFLICT_FEATURES)
    rs = [r for r, k in zip(rows, ok) if k]
    y = t[ok]
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        return {"detector": None, "why": f"{counts[1]} answers followed a misleading passage and {counts[0]} supporting "
                                          f"answers were right; at least {MIN_PER_CLASS} of each are needed"}
    X = _matrix(rs, CONFLICT_FEATURES)
    mean, scale = X.mean(0), X.std(0)
    scale[scale == 0] = 1.0

    def fit(a):
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit((X[a] - mean) / scale, y[a])

    oof = np.zeros(len(y))
    for a, b in _folds(y, [r["group"] for r in rs], min(cv, int(counts.min())), seed):
        oof[b] = fit(a).predict_proba((X[b] - mean) / scale)[:, 1]
    best, best_bacc = 0.5, -1.0
    for th in np.unique(oof):
        flag = oof >= th
        bacc = 0.5 * (flag[y == 1].mean() + (~flag[y == 0]).mean())
        if bacc > best_bacc:
            best, best_bacc = float(th), float(bacc)
    lr = fit(np.arange(len(y)))
    return {
        "detector": {"features": list(CONFLICT_FEATURES), "mean": mean.tolist(), "scale": scale.tolist(),
                     "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])},
        "threshold": best,
        "train": {"followed_misleading": int(counts[1]), "right_supporting": int(counts[0]),
                  "oof_auroc": auroc(y, oof), "oof_balanced_accuracy": best_bacc},
        "fitted_on": "training passages: answers that followed a ConflictNQ misleading passage against the truth "
                     "versus right answers from a supporting passage, all RAG domains pooled",
    }


def conflict_scores(det: dict, rows: Sequence[dict]) -> np.ndarray:
    from ..signals.conflict import conflict_score

    if not det.get("detector"):
        return np.zeros(len(rows))
    return np.array([conflict_score(r, det["detector"]) for r in rows])


# ------------------------------------------------------------------------------------ fitting


def fit_rag_domain(domain: str, rows: Sequence[dict], features: np.ndarray, *, seed: int, n_layers: int, d_ff: int,
                   target: float, confidence: float, cv: int = 5, fit=None,
                   merger_features: Sequence[str] = RAG_MERGER_FEATURES) -> dict:
    """Probe, merger (over ``merger_features``) and thresholds of one RAG domain on its training
    answers (refusals left out).

    ``fit``: a :class:`hguard.calibrate.screen.ProbeFit` (None: in memory); a screened fit screens
    again inside each out-of-fold refit."""
    from ..policy import fit_thresholds
    from .screen import fit_probe, probe_logit, refit_at_C

    merger_features = tuple(merger_features)
    keep = np.array([r["label"] != "refusal" for r in rows]) & _finite(rows, [f for f in merger_features if f != "neuron_logit"])
    tr = [r for r, k in zip(rows, keep) if k]
    X = features[keep]
    y = _y(tr)
    lengths = np.array([r["length"] for r in tr], dtype=float)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(f"RAG domain {domain!r}: {counts[0]} right and {counts[1]} hallucinated training answers; "
                        f"at least {MIN_PER_CLASS} of each are needed")
    t0 = time.perf_counter()
    probe = fit_probe(X, y, fit=fit, lengths=lengths, cv=cv, n_layers=n_layers, d_ff=d_ff, random_state=seed)
    fit_seconds = time.perf_counter() - t0
    folds = _folds(y, [r["group"] for r in tr], cv, seed)
    oof = np.zeros(len(y))
    for a, b in folds:
        p = refit_at_C(probe, X[a], y[a], fit=fit, lengths=lengths[a])
        oof[b] = probe_logit(p, X[b], lengths=lengths[b])
    merger, merged_oof, best_c, by_c = _fit_merger_oof(_matrix(tr, merger_features, oof), y, folds, merger_features)
    # The same merger without the relevance signals, fitted the same way: the report's ablation.
    from ..signals.relevance import RELEVANCE_FEATURES

    ablations = {}
    without = tuple(f for f in merger_features if f not in RELEVANCE_FEATURES)
    if without != merger_features:
        ablations["merged_without_relevance"] = _fit_merger_oof(_matrix(tr, without, oof), y, folds, without)
    thresholds = fit_thresholds(merged_oof, y, target=target, confidence=confidence)
    return {
        "probe": probe, "merger": merger, "thresholds": thresholds, "oof_merged": merged_oof.tolist(), "oof_y": y.tolist(),
        "ablations": {k: v[0] for k, v in ablations.items()},
        "train": {"n": int(len(rows)), "n_scored": int(len(y)), "refusals": int(sum(r["label"] == "refusal" for r in rows)),
                  "correct": int(counts[0]), "hallucinated": int(counts[1]),
                  "cv_auroc_oof_probe": auroc(y, oof), "cv_auroc_oof_merged": auroc(y, merged_oof),
                  "merger_C": best_c, "cv_auroc_oof_merged_by_C": {str(c): by_c[c][0] for c in MERGER_CS},
                  **{f"cv_auroc_oof_{k}": auroc(y, v[1]) for k, v in ablations.items()},
                  "probe_fit_seconds": fit_seconds},
    }


def _fit_merger_oof(Z: np.ndarray, y: np.ndarray, folds, features: Sequence[str]):
    """The merger over ``features`` with its regularisation chosen on the training answers alone
    (out-of-fold AUROC, folds by passage: with about a dozen signals and a few hundred answers, C = 1
    overfits): (merger fitted on all of them, its out-of-fold risks, C, {C: (AUROC, risks)})."""
    by_c = {}
    for c in MERGER_CS:
        m = np.zeros(len(y))
        for a, b in folds:
            m[b] = apply_merger(fit_merger(Z[a], y[a], features, C=c), Z[b])
        by_c[c] = (auroc(y, m) or 0.0, m)
    best_c = max(MERGER_CS, key=lambda c: by_c[c][0])
    return fit_merger(Z, y, features, C=best_c), by_c[best_c][1], best_c, by_c


# the single signals the report scores besides the merged risk and the probe
_REPORTED = GROUNDING_FEATURES + ("mean_logprob", "min_logprob", "mean_entropy", "closed_book_logprob")


def score_rag_rows(fitted: dict, rows: Sequence[dict], features: np.ndarray) -> dict[str, np.ndarray]:
    """Every risk of the report (higher = riskier) for ``rows``; rows must have finite signals."""
    from .screen import probe_logit

    probe = fitted["probe"]
    lengths = np.array([r["length"] for r in rows], dtype=float)
    logit = probe_logit(probe, features, lengths=lengths) if len(rows) else np.zeros(0)
    out = {
        "merged": apply_merger(fitted["merger"], _matrix(rows, fitted["merger"]["features"], logit)) if len(rows) else np.zeros(0),
        "probe": sigmoid_array(np.asarray(logit, dtype=float)),
    }
    for name, merger in fitted.get("ablations", {}).items():
        out[name] = apply_merger(merger, _matrix(rows, merger["features"], logit)) if len(rows) else np.zeros(0)
    for k in GROUNDING_FEATURES:
        out[k] = 1.0 - np.array([float(r[k]) for r in rows])
    out["confidence_mean_logprob"] = -np.array([float(r["mean_logprob"]) for r in rows])
    out["confidence_min_logprob"] = -np.array([float(r["min_logprob"]) for r in rows])
    out["confidence_entropy"] = np.array([float(r["mean_entropy"]) for r in rows])
    out["closed_book_logprob"] = -np.array([float(r["closed_book_logprob"]) for r in rows])
    return out


# ------------------------------------------------------------------------------------- report


def _cp(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """Clopper-Pearson interval of k/n."""
    from scipy.stats import beta

    if n == 0:
        return None
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return [lo, hi]


def _share(mask: np.ndarray, among: np.ndarray) -> dict:
    n, k = int(among.sum()), int((mask & among).sum())
    return {"n": n, "k": k, "rate": (k / n) if n else None, "ci95": _cp(k, n)}


def rag_report(fitted: dict, rows: Sequence[dict], features: np.ndarray, conflict: dict) -> dict:
    """Held-out figures of one RAG domain, overall and per condition."""
    ok = _finite(rows, list(dict.fromkeys([f for f in fitted["merger"]["features"] if f != "neuron_logit"] + list(_REPORTED))))
    rs = [r for r, k in zip(rows, ok) if k]
    F = features[ok]
    sc = score_rag_rows(fitted, rs, F)
    y = _y(rs)
    scored = np.array([r["label"] != "refusal" for r in rs], dtype=bool)
    th = fitted["thresholds"]
    risk = sc["merged"]
    accepted_by_risk = risk < th.accept_below
    cflag = conflict_scores(conflict, rs) >= conflict.get("threshold", math.inf) if conflict.get("detector") else np.zeros(len(rs), bool)
    accepted = accepted_by_risk & ~cflag  # knowledge_conflict = "review", the default
    halluc = y == 1
    follows = np.array([r["condition"] == "misleading" and r["label"] == "hallucinated" and "misleading" in r.get("judge_reason", "")
                        for r in rs], dtype=bool)

    def block(mask: np.ndarray) -> dict:
        m = mask & scored
        yy = y[m]
        scores = {k: v[m] for k, v in sc.items()}
        return {
            "n": int(mask.sum()),
            "refusals": int((mask & ~scored).sum()),
            "correct": int((yy == 0).sum()),
            "hallucinated": int((yy == 1).sum()),
            "auroc": {k: auroc(yy, v) for k, v in scores.items()},
            "auroc_ci95": auroc_ci(yy, scores, n_boot=500),
            "accepted": _share(accepted, mask),
            "accepted_by_risk_alone": _share(accepted_by_risk, mask),
            "hallucinated_among_accepted": _share(halluc, accepted & mask),
            "knowledge_conflict_flagged": _share(cflag, mask),
        }

    conds = sorted({r["condition"] for r in rs})
    out = {
        "n_unscorable": int((~ok).sum()),
        "thresholds": th.to_dict(),
        "all": block(np.ones(len(rs), bool)),
        "conditions": {c: block(np.array([r["condition"] == c for r in rs])) for c in conds},
        "datasets": {d: block(np.array([r["dataset"] == d for r in rs])) for d in sorted({r["dataset"] for r in rs})},
    }
    out["targets"] = {
        "merged_auroc": {"value": out["all"]["auroc"].get("merged"), "ci95": out["all"]["auroc_ci95"].get("merged"),
                         "target": ">= 0.90 and above grounding alone and probe alone",
                         "grounding": out["all"]["auroc"].get("grounding"), "probe": out["all"]["auroc"].get("probe")},
        "supporting_accepted": {**_share(accepted, np.array([r["condition"] == "supporting" for r in rs])), "target": ">= 0.40"},
        "offtopic_accepted": {**_share(accepted, np.array([r["condition"] == "offtopic" for r in rs])), "target": "<= 0.05"},
        "offtopic_wrong_accepted": {**_share(accepted, np.array([r["condition"] == "offtopic" and r["label"] == "hallucinated" for r in rs])),
                                    "target": "(off-topic answers that did not abstain)"},
        "misleading_followed_accepted": {**_share(accepted, follows), "target": "<= 0.10"},
        "misleading_followed_flagged": _share(cflag, follows),
        "supporting_right_flagged": _share(cflag, np.array([r["condition"] == "supporting" and r["label"] == "correct" for r in rs])),
    }
    return out


# ----------------------------------------------------------------------------------- pipeline


def _reference_rag_sets() -> dict:
    """The bundled RAG calibration sets, built from the public data by the research harness (a source
    checkout with ``../shared/data``); an installed package calibrates from the rows it is given."""
    try:
        from research.rag_data import build_rag_sets
    except ImportError:
        raise InputError(
            "the reference RAG sets are built from the public data by the source checkout's research/rag_data.py; "
            "run this from the checkout, or pass your own rows with context (examples=...)"
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
) -> dict:
    """Fit one RAG probe per domain of ``examples`` (default: the bundled RAG sets) into
    ``out_dir/<domain>.rag.json`` and write the report to ``report_dir`` (default ``out_dir/rag-report``).

    ``screen_top`` / ``fit_memory_gb``: as for :func:`hguard.calibrate.pipeline.calibrate`, the probes
    fitted from the shards on the top K features (recorded as ``probe_fit``)."""
    from ..domain import CalibratedDomain
    from ..generation import RAG
    from ..neurons import find_ffn_sites

    if examples is None:
        examples = [e for rows in _reference_rag_sets().values() for e in rows]
    examples = list(examples)
    work = Path(work_dir) if work_dir else Path(out_dir) / ".work-rag"
    if collected_only:
        examples = _collected(examples, work)
    missing = [e.id for e in examples if e.context is None]
    if missing:
        raise DataError(f"{len(missing)} rows have no context (first: {missing[0]!r}); RAG calibration needs a passage per row")
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
    test = split_groups(rows, test_fraction, seed)
    conflict = fit_conflict_detector([r for r, t in zip(rows, test) if not t], seed=seed)
    fingerprints = gen.mode_fingerprints(RAG)
    report: dict[str, Any] = {
        "model": lm.name, "fingerprints": fingerprints, "system_prompt": system_prompt, "max_new_tokens": max_new_tokens,
        "split": {"by": "passage (meta.group: the question's own passage), hashed with the seed",
                  "test_fraction": test_fraction, "seed": seed, "n_train": int((~test).sum()), "n_test": int(test.sum())},
        "policy_target": {"target": target, "confidence": confidence},
        "knowledge_conflict": {k: v for k, v in conflict.items() if k != "detector"},
        "merger_features": list(RAG_MERGER_FEATURES), "domains": {}, "skipped": {},
        "probe_fit": probe_fit.describe(),
    }
    for domain in sorted({r["domain"] for r in rows}):
        dm = np.array([r["domain"] == domain for r in rows])
        tr_idx, te_idx = np.flatnonzero(dm & ~test), np.flatnonzero(dm & test)
        try:
            f = fit_rag_domain(domain, [rows[i] for i in tr_idx], col.features[tr_idx], seed=seed,
                               n_layers=len(sites), d_ff=sites[0].d_ff, target=target, confidence=confidence, fit=probe_fit)
        except DataError as exc:
            report["skipped"][domain] = str(exc)
            continue
        m = rag_report(f, [rows[i] for i in te_idx], col.features[te_idx], conflict)
        m["train"] = f["train"]
        m["n_h_neurons"] = len(f["probe"].h_neurons_)
        m["grounding_weight_override"] = "none: the merger weighs grounding as fitted; a policy's grounding_weight is a manual override and the guard says so in its reasons"
        report["domains"][domain] = m
        dom_ex = [e for e in examples if e.domain == domain]
        questions = [e.question for e in dom_ex if (e.meta or {}).get("condition") == "supporting"] or [e.question for e in dom_ex]
        CalibratedDomain.create(
            f["probe"], name=domain, settings=settings, fingerprints=fingerprints,
            merger=f["merger"], thresholds=f["thresholds"],
            calibration_scores={"risk": f["oof_merged"], "hallucinated": f["oof_y"]},
            knowledge_conflict={"detector": conflict["detector"], "threshold": conflict["threshold"]} if conflict.get("detector") else None,
            router_questions=tuple(questions[:: max(1, len(questions) // 120)][:120]),
            extra={"model": lm.name, "data_hash": data_hash(dom_ex), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "metrics": {k: v for k, v in m.items() if k not in ("datasets",)}, "split": report["split"],
                   "probe_fit": probe_fit.describe()},
        ).save(out / f"{domain}.rag.json")
    report["timing"] = {"total_seconds": time.perf_counter() - t_start, "n_answers": len(rows)}
    rdir = Path(report_dir) if report_dir else out / "rag-report"
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


def write_rag_report(report: dict, folder: str | os.PathLike) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False, default=str) + "\n")
    (folder / "report.md").write_text(rag_markdown(report))


def _f(x, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _rate(s: dict) -> str:
    return "-" if not s or s.get("n", 0) == 0 else f"{s['k']}/{s['n']} = {s['rate']:.2f}{_ci(s['ci95'])}"


def rag_markdown(report: dict) -> str:
    t = report["policy_target"]
    lines = [
        "# RAG calibration report", "",
        f"Model {report['model']}; answers given with context through the guard's context prompt "
        f"(prompt mode `rag`, context prompt fingerprint `{report['fingerprints'].get('context_prompt_fingerprint')}`). "
        f"Split by passage: {report['split']['n_train']} training answers, {report['split']['n_test']} held out. "
        f"Everything fitted (probe, merger of probe + confidence + grounding + closed-book + relevance signals, thresholds, "
        f"knowledge-conflict detector) saw the training passages only; every figure below is on held-out passages. "
        f"Policy target: at most {t['target']:.0%} hallucinations among accepted answers at {t['confidence']:.0%} confidence. "
        "No hand-set grounding weight is in force: a policy's `grounding_weight` is a manual override the guard reports in its reasons.",
        "", "Intervals: AUROC, 95% percentile bootstrap (500 resamples within class); shares, 95% Clopper-Pearson.", "",
    ]
    kc = report.get("knowledge_conflict", {})
    lines += ["## Knowledge-conflict detector", "", f"{json.dumps(kc.get('train') or kc.get('why'))}; threshold {kc.get('threshold')}", ""]
    for d, m in report["domains"].items():
        tg = m["targets"]
        ma = tg["merged_auroc"]
        lines += [
            f"## {d}", "",
            f"Training answers {m['train']['n']} ({m['train']['correct']} right, {m['train']['hallucinated']} hallucinated, "
            f"{m['train']['refusals']} refusals); held out {m['all']['n']} ({m['all']['correct']} right, "
            f"{m['all']['hallucinated']} hallucinated, {m['all']['refusals']} refusals). "
            f"accept_below {_f(m['thresholds']['accept_below'])}, abstain_above {_f(m['thresholds']['abstain_above'])}.", "",
            "| target | measured (held out) | met |", "|---|---|---|",
            f"| merged AUROC >= 0.90, above grounding and probe | merged {_f(ma['value'])}{_ci(ma['ci95'])}; grounding {_f(ma['grounding'])}; probe {_f(ma['probe'])} | "
            f"{'yes' if ma['value'] is not None and ma['value'] >= 0.9 and ma['value'] > (ma['grounding'] or 0) and ma['value'] > (ma['probe'] or 0) else 'no'} |",
            f"| supporting answers accepted >= 40% | {_rate(tg['supporting_accepted'])} | {_met(tg['supporting_accepted'], 0.40, True)} |",
            f"| off-topic answers accepted <= 5% | {_rate(tg['offtopic_accepted'])} | {_met(tg['offtopic_accepted'], 0.05, False)} |",
            f"| misleading-passage answers against the truth accepted <= 10% | {_rate(tg['misleading_followed_accepted'])} | {_met(tg['misleading_followed_accepted'], 0.10, False)} |",
            "",
            f"Hallucinations among accepted answers (all conditions): {_rate(m['all']['hallucinated_among_accepted'])}. "
            f"Knowledge conflict flagged: {_rate(tg['misleading_followed_flagged'])} of answers that followed a misleading passage, "
            f"{_rate(tg['supporting_right_flagged'])} of right supporting answers.", "",
        ]
        sigs = list(m["all"]["auroc"])
        lines += ["| condition | n | right/halluc./refusal | " + " | ".join(sigs) + " | accepted | halluc. among accepted |",
                  "|---|---|---|" + "---|" * len(sigs) + "---|---|"]
        for name, b in [("all", m["all"]), *m["conditions"].items(), *[(f"dataset {k}", v) for k, v in m["datasets"].items()]]:
            lines.append(
                f"| {name} | {b['n']} | {b['correct']}/{b['hallucinated']}/{b['refusals']} | "
                + " | ".join(_f(b["auroc"][s], 2) + (_ci(b['auroc_ci95'][s]) if s == "merged" else "") for s in sigs)
                + f" | {_rate(b['accepted'])} | {_rate(b['hallucinated_among_accepted'])} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def _met(s: dict, bound: float, at_least: bool) -> str:
    if not s or s.get("rate") is None:
        return "not measurable (no rows)"
    ok = s["rate"] >= bound if at_least else s["rate"] <= bound
    return "yes" if ok else "no"


# ---------------------------------------------------------------------------------- evaluation


def evaluate_rag(probes_dir: str | os.PathLike, work_dir: str | os.PathLike, *, model: str = "default", lm=None,
                 test_fraction: float = 0.3, seed: int = 0, batch_size: int = 8, progress: bool = False,
                 collected_only: bool = False) -> dict:
    """Score the held-out passages of the bundled RAG sets with the RAG probes in ``probes_dir``
    (answers collected in ``work_dir``, reused when already there); JSON-able, per domain and condition."""
    from ..domain import CalibratedDomain
    from ..generation import RAG
    from ..settings import GenerationSettings

    probes = {}
    for p in sorted(Path(probes_dir).glob("*.rag.json")):
        cd = CalibratedDomain.load(p)
        probes[cd.name] = cd
    if not probes:
        raise DataError(f"no RAG probe files (*.rag.json) in {str(probes_dir)!r}; run `hguard calibrate-rag` first")
    first = next(iter(probes.values()))
    # answer as the calibration did (older files without settings: the calibration defaults)
    settings = first.generation or GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, prompt_mode=RAG)
    lm, gen = _setup(model, lm, settings)
    examples = [e for rows in _reference_rag_sets().values() for e in rows if e.domain in probes]
    if collected_only:
        examples = _collected(examples, Path(work_dir))
    col = collect(gen, examples, work_dir, batch_size=batch_size, progress=progress)
    rows = add_rag_signals(gen, col, examples, work_dir, progress=progress)
    test = split_groups(rows, test_fraction, seed)
    result: dict[str, Any] = {"model": lm.name, "prompt_mode": RAG, "held_out": "passages on the test side of the split", "domains": {}}
    for domain, cd in probes.items():
        idx = np.flatnonzero(np.array([r["domain"] == domain for r in rows]) & test)
        fitted = {"probe": cd.probe, "merger": cd.merger, "thresholds": cd.thresholds}
        det = cd.knowledge_conflict or {}
        m = rag_report(fitted, [rows[i] for i in idx], col.features[idx], det)
        m["fingerprint_problems"] = cd.check_fingerprints(gen.mode_fingerprints(RAG))
        m["probe_id"] = cd.probe_id
        result["domains"][domain] = m
    return result
