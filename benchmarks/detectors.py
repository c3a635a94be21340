"""Benchmark: hguard's single-pass signals against the detectors people use instead.

Every detector scores the SAME greedy answers of the default model (SmolLM2-135M-Instruct):

- hguard: the domain's neuron probe, its merged risk (the probe file's ``merger`` over probe logit
  and confidence), the random-neuron control stored in the probe file, and the raw confidence
  signals (mean / min token log-probability, mean entropy, length). All come from the one greedy
  generation, with the probe's neurons recorded by hooks.
- Sampling consistency in the style of SelfCheckGPT with N = 5 and 10 extra answers sampled at
  temperature 1: disagreement with the greedy answer, and SelfCheckGPT's unigram score (max).
- Discrete semantic entropy over the clusters of greedy answer + N samples.
- P(True): the model asked whether its own answer is true (one forward pass).
- RAG (HaluEval QA, the 60 rows whose right and hallucinated answers differ by at most one word:
  held out from the fit of the grounding merge weights, and answer length cannot give the label
  away): hguard's grounding signals against a Guardrails-style embedding provenance check, scoring
  the dataset's right and hallucinated answers, as ``research.grounding_eval.evaluate_grounding``.

Datasets: the bundled domains' held-out questions (calibration/data/<domain>.jsonl plus that domain's
fabricated rows; the test split by fact group with the seed and test fraction stored in the probe
file, so no question the probe was fitted on is scored), then TriviaQA, NQ-Open and PopQA from the
shared data (scored with the geography probe: no probe was calibrated for them, so the neuron rows
there measure transfer, not a calibrated detector; the model is right on few of them).

Figures per detector: AUROC with a 95% bootstrap interval (1000 paired resamples of the answers),
accuracy at the best threshold (chosen on the same answers: an upper bound), the hallucination rate
among the accepted answers at 50% and 80% coverage, and cost per answer as a ratio to one plain
greedy generation of the same questions: wall time measured in this run, and forward passes of the
LM. Refusals ("I don't know") are neither right nor hallucinated and are left out, as in calibration.

    .venv/bin/python benchmarks/detectors.py [--n N] [--domains D,..] [--public SET,..|''] [--skip-halueval] [--out F]

Writes benchmarks/results/detectors.json (or --out; figures) and detectors-answers.json beside it (every answer, its
samples and every risk), and prints one Markdown table per dataset. One torch thread (faster than
two on a shared 2-core machine). About 25 minutes with the defaults on one idle core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hguard import REFERENCE_PROBES  # noqa: E402

from research.baselines.consistency import sample_disagreement, selfcheck_ngram, semantic_entropy  # noqa: E402
from research.baselines.metrics import bootstrap_aurocs, detector_summary  # noqa: E402
from research.baselines.p_true import p_true  # noqa: E402
from research.baselines.sampling import forward_passes, sample_answers  # noqa: E402

BUNDLED = ("geography", "chemistry", "literature")
PUBLIC = ("triviaqa", "nq_open", "popqa")
PUBLIC_PROBE = "geography"
DEFAULT_N = {"bundled": 50, "public": 30, "halueval": 60}
SAMPLE_COUNTS = (5, 10)
COVERAGES = (0.5, 0.8)
COST_TARGET = 1.1
RESULTS = REPO / "benchmarks" / "results"

# family: "hguard" (single pass), "confidence" (same pass, raw), "sampling", "p_true", "grounding", "provenance", "control"
LABELS = {
    "hguard_merged": ("hguard merged risk (probe + confidence)", "hguard"),
    "hguard_probe": ("hguard neuron probe", "hguard"),
    "random_neurons": ("random neurons, same count (control)", "control"),
    "mean_logprob": ("mean token log-prob", "confidence"),
    "min_logprob": ("min token log-prob", "confidence"),
    "entropy": ("mean token entropy", "confidence"),
    "length": ("answer length", "control"),
    "p_true": ("P(True), 1 forward pass", "p_true"),
}
_SAMPLING_LABELS = {
    "disagreement": "sample disagreement",
    "unigram_max": "SelfCheck unigram (max)",
    "semantic_entropy": "semantic entropy (discrete)",
}


def label_of(key: str) -> tuple[str, str]:
    """(table label, family) of a method key; sampling keys end in _<N>."""
    if key in LABELS:
        return LABELS[key]
    base, _, n = key.rpartition("_")
    if base in _SAMPLING_LABELS and n.isdigit():
        return f"{_SAMPLING_LABELS[base]}, N={n}", "sampling"
    return key, "other"


def _now() -> np.ndarray:
    """(wall, CPU) clock: CPU time of this process is less sensitive to other load on a shared machine."""
    return np.array([time.perf_counter(), time.process_time()])


def _tj(t: np.ndarray) -> dict:
    return {"wall": float(t[0]), "cpu": float(t[1])}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ data


def held_out_examples(domain: str, cd, paths: Sequence[Path], n: int | None, seed: int = 0):
    """The domain's rows (from ``paths``) whose fact group is in the probe's test split; n of them
    at most (a seeded random subset, kept in file order). Also returns a note on the data hash."""
    from hguard.calibrate.collect import _group_key
    from hguard.calibrate.data import data_hash, load_examples
    from hguard.calibrate.pipeline import split_groups

    exs = [e for e in load_examples(list(paths)) if e.domain == domain]
    split = cd.split
    mask = split_groups([{"group": _group_key(e)} for e in exs], split["test_fraction"], split["seed"])
    test = [e for e, m in zip(exs, mask) if m]
    n_test = len(test)
    if n is not None and n < len(test):
        pick = sorted(np.random.default_rng(seed).choice(len(test), n, replace=False))
        test = [test[i] for i in pick]
    same = data_hash(exs) == cd.data_hash
    note = {
        "n_domain_rows": len(exs),
        "n_test_split": n_test,
        "test_fraction": split["test_fraction"],
        "split_seed": split["seed"],
        "data_matches_probe": same,
    }
    return test, note


# ------------------------------------------------------------------------------------ QA datasets


def _merged_and_probe(cd, rows: list[dict], V: np.ndarray, pos: dict[int, int]):
    from hguard.calibrate.pipeline import apply_merger, merger_features, random_baseline_score

    probe = cd.probe
    idx = [int(i) for i in probe.feature_indices_]
    rb = cd.random_baseline
    ridx = [int(i) for i in rb["feature_indices"]]
    lengths = np.array([r["length"] for r in rows], dtype=float)
    logit = probe.decision_function_subset(V[:, [pos[i] for i in idx]], lengths=lengths)
    merged = apply_merger(cd.merger, merger_features(rows, logit))
    rnd = random_baseline_score(rb, V[:, [pos[i] for i in ridx]], lengths)
    return merged, 1 / (1 + np.exp(-logit)), rnd


def run_qa_dataset(
    name: str,
    lm,
    examples,
    cd,
    *,
    probe_domain: str,
    sample_counts: Sequence[int] = SAMPLE_COUNTS,
    batch_size: int = 16,
    seed: int = 0,
    n_boot: int = 1000,
    ptrue_words: tuple[str, str] = ("True", "False"),
    target: bool = True,
    extra: dict | None = None,
) -> tuple[dict, list[dict]]:
    """Answer ``examples`` greedily once and score those answers with every QA detector."""
    from hguard.calibrate.collect import label_row
    from hguard.calibrate.pipeline import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator

    from hguard.settings import GenerationSettings

    settings = cd.generation or GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS, system_prompt=DEFAULT_SYSTEM_PROMPT)
    gen = Generator(lm, settings=settings)  # the probe's own generation settings
    probe = cd.probe
    idx = [int(i) for i in probe.feature_indices_]
    ridx = [int(i) for i in cd.random_baseline["feature_indices"]]
    union = sorted(set(idx) | set(ridx))
    pos = {g: k for k, g in enumerate(union)}
    qs = [e.question for e in examples]
    cs = [e.context for e in examples]
    t_start = _now()

    # Greedy answers: plain (the cost unit) and with the probe's neurons recorded (what is scored),
    # batch by batch on the same batches, the order alternating so drifting machine load hits both.
    gen.generate(qs[:2], cs[:2], neurons=union, batch_size=2)  # warm-up, not timed
    plain, rec = [], []
    t_plain, t_rec = np.zeros(2), np.zeros(2)
    for k, start in enumerate(range(0, len(qs), batch_size)):
        sl = slice(start, start + batch_size)
        for which in (("plain", "rec") if k % 2 == 0 else ("rec", "plain")):
            t0 = _now()
            out = gen.generate(qs[sl], cs[sl], neurons=None if which == "plain" else union, batch_size=batch_size)
            dt = _now() - t0
            if which == "plain":
                plain.extend(out)
                t_plain += dt
            else:
                rec.extend(out)
                t_rec += dt
    mismatch = sum(a.text != b.text for a, b in zip(plain, rec))
    passes_plain = np.array([forward_passes(g) for g in plain], dtype=float)
    answers = [g.text for g in rec]
    log(f"{name}: {len(qs)} greedy answers, plain {t_plain[0]:.1f}s, recorded {t_rec[0]:.1f}s (wall)")

    # hguard's scores from the recorded pass.
    rows = [dict(g.confidence) for g in rec]
    t0 = _now()
    V = np.stack([g.cett for g in rec]).astype(float)
    merged, probe_p, rnd = _merged_and_probe(cd, rows, V, pos)
    t_hguard = _now() - t0

    risks: dict[str, np.ndarray] = {
        "hguard_merged": merged,
        "hguard_probe": probe_p,
        "random_neurons": rnd,
        "mean_logprob": -np.array([r["mean_logprob"] for r in rows]),
        "min_logprob": -np.array([r["min_logprob"] for r in rows]),
        "entropy": np.array([r["mean_entropy"] for r in rows]),
        "length": np.array([r["length"] for r in rows]),
    }
    seconds = {k: t_rec + t_hguard for k in ("hguard_merged", "hguard_probe", "random_neurons")}
    seconds.update({k: t_plain for k in ("mean_logprob", "min_logprob", "entropy", "length")})
    passes = {k: passes_plain for k in risks}

    # Samples: drawn in increments so that N=5 is timed on its own and N=10 adds five more.
    parts = []
    prev = 0
    for j, N in enumerate(sorted(sample_counts)):
        s = sample_answers(gen, qs, cs, n=N - prev, seed=seed + 1000 * (j + 1), batch_size=batch_size)
        parts.append((N, s))
        prev = N
        log(f"{name}: samples up to N={N} ({s.seconds:.1f}s)")
    for N, _ in parts:
        upto = [s for M, s in parts if M <= N]
        texts = [sum((s.texts[i] for s in upto), []) for i in range(len(qs))]
        t_samp = sum(np.array([s.seconds, s.cpu_seconds]) for s in upto)
        p_samp = passes_plain + np.sum([s.passes for s in upto], axis=0)
        scorers: dict[str, Callable[[int], float]] = {
            f"disagreement_{N}": lambda i, t=texts: sample_disagreement(answers[i], t[i], qs[i]),
            f"unigram_max_{N}": lambda i, t=texts: selfcheck_ngram(answers[i], t[i], n=1)["max"],
            f"semantic_entropy_{N}": lambda i, t=texts: semantic_entropy([answers[i], *t[i]], qs[i]),
        }
        for key, f in scorers.items():
            t0 = _now()
            risks[key] = np.array([f(i) for i in range(len(qs))], dtype=float)
            seconds[key] = t_plain + t_samp + (_now() - t0)
            passes[key] = p_samp
    all_samples = [sum((s.texts[i] for _, s in parts), []) for i in range(len(qs))]

    t0 = _now()
    pt = p_true(gen, qs, answers, batch_size=batch_size, words=ptrue_words)
    t_pt = _now() - t0
    risks["p_true"] = 1.0 - pt
    seconds["p_true"] = t_plain + t_pt
    passes["p_true"] = passes_plain + 1
    log(f"{name}: P(True) {t_pt[0]:.1f}s")

    # Labels; refusals are neither class.
    labels = [label_row(e, a)["label"] for e, a in zip(examples, answers)]
    keep = np.array([lab != "refusal" for lab in labels])
    finite = np.all([np.isfinite(v) for v in risks.values()], axis=0)
    use = keep & finite
    y = np.array([1 if lab == "hallucinated" else 0 for lab in labels])[use]
    result = _summarise(
        {k: v[use] for k, v in risks.items()}, y, seconds, passes, t_plain, passes_plain, n_boot=n_boot, seed=seed
    )
    result.update(
        {
            "kind": "qa",
            "n_questions": len(qs),
            "n_scored": int(use.sum()),
            "n_refusals": int((~keep).sum()),
            "n_unscored_nan": int((keep & ~finite).sum()),
            "n_correct": int((y == 0).sum()),
            "n_hallucinated": int((y == 1).sum()),
            "hallucination_rate": float(y.mean()) if len(y) else None,
            "probe_domain": probe_domain,
            "probe_id": cd.probe_id,
            "n_probe_neurons": len(idx),
            "plain_vs_recorded_answer_mismatches": int(mismatch),
            "timing_seconds": {
                "plain_greedy": _tj(t_plain),
                "recorded_greedy": _tj(t_rec),
                "hguard_scoring": _tj(t_hguard),
                "samples_increment": {str(N): _tj(np.array([s.seconds, s.cpu_seconds])) for N, s in parts},
                "p_true": _tj(t_pt),
                "dataset_total": _tj(_now() - t_start),
            },
            "mean_forward_passes_plain": float(passes_plain.mean()),
            **(extra or {}),
        }
    )
    if target:
        result["target"] = _target_check(result)
    records = [
        {
            "id": e.id,
            "question": e.question,
            "answer": a,
            "label": lab,
            "samples": all_samples[i],
            "risks": {k: (None if not np.isfinite(v[i]) else float(v[i])) for k, v in risks.items()},
        }
        for i, (e, a, lab) in enumerate(zip(examples, answers, labels))
    ]
    return result, records


def _summarise(risks, y, seconds, passes, t_plain, passes_plain, *, n_boot, seed) -> dict:
    boot = bootstrap_aurocs(y, risks, n_boot=n_boot, seed=seed) if len(set(y.tolist())) == 2 else {}
    methods = {}
    for k, r in risks.items():
        label, family = label_of(k)
        m = detector_summary(y, r, boot=boot.get(k), coverages=COVERAGES) if len(y) else {}
        m.update(
            {
                "label": label,
                "family": family,
                "cost_wall_ratio": float(seconds[k][0] / t_plain[0]),
                "cost_cpu_ratio": float(seconds[k][1] / t_plain[1]),
                "forward_passes_per_answer": float(np.mean(passes[k])),
                "forward_pass_ratio": float(np.mean(passes[k]) / np.mean(passes_plain)),
            }
        )
        methods[k] = m
    return {
        "methods": methods,
        "bootstrap": {"n_requested": n_boot, "n_used": int(len(next(iter(boot.values())))) if boot else 0, "seed": seed},
        "_boot": boot,
    }


def _target_check(result: dict) -> dict:
    """hguard's merged risk vs the best sampling method: AUROC at least as good, cost at most 1.1x."""
    m = result["methods"]
    sampling = {k: v for k, v in m.items() if v["family"] == "sampling" and v.get("auroc") is not None}
    merged = m["hguard_merged"]
    if not sampling or merged.get("auroc") is None:
        return {"evaluable": False}
    best = max(sampling, key=lambda k: sampling[k]["auroc"])
    boot = result.get("_boot", {})
    diff = None
    if "hguard_merged" in boot and best in boot:
        d = boot["hguard_merged"] - boot[best]
        diff = {
            "mean": float(d.mean()),
            "ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
            "share_merged_ge_best": float((d >= 0).mean()),
        }
    auroc_ok = merged["auroc"] >= sampling[best]["auroc"]
    cost_ok = merged["cost_wall_ratio"] is not None and merged["cost_wall_ratio"] <= COST_TARGET
    return {
        "evaluable": True,
        "best_sampling_method": best,
        "best_sampling_auroc": sampling[best]["auroc"],
        "best_sampling_cost_wall_ratio": sampling[best]["cost_wall_ratio"],
        "best_sampling_cost_cpu_ratio": sampling[best]["cost_cpu_ratio"],
        "merged_cost_cpu_ratio": merged["cost_cpu_ratio"],
        "merged_auroc": merged["auroc"],
        "merged_cost_wall_ratio": merged["cost_wall_ratio"],
        "auroc_difference_paired_bootstrap": diff,
        "auroc_at_least_as_good": bool(auroc_ok),
        "cost_at_most_1_1x": bool(cost_ok),
        "met": bool(auroc_ok and cost_ok),
    }


# ---------------------------------------------------------------------------------------- HaluEval


def halueval_rows(n: int | None) -> list[dict]:
    """HaluEval QA rows whose two answers differ by at most one word (held out from the grounding fit)."""
    from research.public import load_halueval_rows

    rows = [
        r
        for r in load_halueval_rows()
        if abs(len(r["right_answer"].split()) - len(r["hallucinated_answer"].split())) <= 1
    ]
    return rows if n is None else rows[:n]


def run_grounding_dataset(
    name: str, lm, rows: list[dict], *, batch_size: int = 16, seed: int = 0, n_boot: int = 1000, embedder=None
) -> tuple[dict, list[dict]]:
    """hguard's grounding signals vs Guardrails-style embedding provenance on right/hallucinated answers."""
    from research.baselines.provenance import ProvenanceEmbeddings
    from hguard.calibrate.pipeline import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator
    from hguard.signals.embedding import get_embedder
    from hguard.signals import grounding as gmod
    from hguard.signals.grounding import GroundingScorer
    from research.grounding_eval import score_grounding_rows

    embedder = embedder or get_embedder()
    embedder.encode(["warm up"])  # load outside the timed parts
    t_start = _now()
    gen = Generator(lm, system_prompt=DEFAULT_SYSTEM_PROMPT, max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    qs = [r["question"] for r in rows]
    cs = [r["context"] for r in rows]
    gen.generate(qs[:2], cs[:2], neurons=None, batch_size=2)  # warm-up
    t0 = _now()
    plain = gen.generate(qs, cs, neurons=None, batch_size=batch_size)
    t_plain_q = (_now() - t0) / len(rows)
    passes_plain_q = float(np.mean([forward_passes(g) for g in plain]))
    log(f"{name}: plain RAG generation {t_plain_q[0] * len(rows):.1f}s for {len(rows)} questions")

    t0 = _now()
    with_lm = score_grounding_rows(rows, scorer=GroundingScorer(embedder=embedder, model=lm.model, tokenizer=lm.tokenizer))
    t_lm = _now() - t0
    t0 = _now()
    no_lm = score_grounding_rows(rows, scorer=GroundingScorer(embedder=embedder))
    t_nolm = _now() - t0
    log(f"{name}: grounding with LM {t_lm[0]:.1f}s, without {t_nolm[0]:.1f}s")

    prov = ProvenanceEmbeddings(embedder)
    answers = [a for r in rows for a in (r["right_answer"], r["hallucinated_answer"])]
    ctx_of = [r["context"] for r in rows for _ in range(2)]
    t0 = _now()
    dist = np.array([prov.distance(a, c) for a, c in zip(answers, ctx_of)])
    t_prov = _now() - t0
    verdict_fail = (dist >= prov.threshold).astype(float)

    y = np.array([r["label"] for r in with_lm])
    assert [r["label"] for r in no_lm] == y.tolist() and y.tolist() == [0, 1] * len(rows)
    na = len(answers)
    risks = {
        "grounding_merged_lm": np.array([1 - r["signals"]["grounding"] for r in with_lm]),
        "grounding_merged": np.array([1 - r["signals"]["grounding"] for r in no_lm]),
        "grounding_model": np.array([1 - r["signals"]["grounding_model"] for r in with_lm]),
        "grounding_embedding": np.array([1 - r["signals"]["grounding_embedding"] for r in no_lm]),
        "provenance_distance": dist,
        "provenance_verdict": verdict_fail,
        "length_words": np.array([r["words"] for r in with_lm], dtype=float),
    }
    per = {
        "grounding_merged_lm": t_lm / na,
        "grounding_merged": t_nolm / na,
        "grounding_model": t_lm / na,
        "grounding_embedding": t_nolm / na,
        "provenance_distance": t_prov / na,
        "provenance_verdict": t_prov / na,
        "length_words": np.zeros(2),
    }
    labels = {
        "grounding_merged_lm": ("hguard grounding, merged (with LM signal)", "grounding"),
        "grounding_merged": ("hguard grounding, merged (no LM)", "grounding"),
        "grounding_model": ("hguard LM context lift alone", "grounding"),
        "grounding_embedding": ("hguard embedding lift alone", "grounding"),
        "provenance_distance": ("Guardrails-style provenance: cosine distance", "provenance"),
        "provenance_verdict": (f"Guardrails-style provenance: verdict at {prov.threshold:g}", "provenance"),
        "length_words": ("answer length (words)", "control"),
    }
    # Extra LM forward passes per scored answer: each row's two prompt passes (with and without the
    # context) are shared by its two answers, and each answer gets one pass per prompt.
    lm_passes = {"grounding_merged_lm": 3.0, "grounding_model": 3.0}
    boot = bootstrap_aurocs(y, risks, n_boot=n_boot, seed=seed)
    methods = {}
    for k, r in risks.items():
        m = detector_summary(y, r, boot=boot.get(k), coverages=COVERAGES)
        m.update(
            {
                "label": labels[k][0],
                "family": labels[k][1],
                "cost_wall_ratio": float((t_plain_q[0] + per[k][0]) / t_plain_q[0]),
                "cost_cpu_ratio": float((t_plain_q[1] + per[k][1]) / t_plain_q[1]),
                "forward_passes_per_answer": passes_plain_q + lm_passes.get(k, 0.0),
                "forward_pass_ratio": (passes_plain_q + lm_passes.get(k, 0.0)) / passes_plain_q,
            }
        )
        methods[k] = m
    result = {
        "kind": "grounding",
        "rows": "HaluEval QA rows whose right and hallucinated answers differ by at most one word "
        "(held out from the fit of hguard's grounding merge weights)",
        "n_rows": len(rows),
        "n_scored": na,
        "n_correct": int((y == 0).sum()),
        "n_hallucinated": int((y == 1).sum()),
        "hallucination_rate": float(y.mean()),
        "methods": methods,
        "bootstrap": {"n_requested": n_boot, "n_used": int(len(next(iter(boot.values())))), "seed": seed},
        "provenance_threshold": prov.threshold,
        "grounding_merge_weights": {"without_lm": dict(gmod.MERGE_WEIGHTS), "with_lm": dict(gmod.MERGE_WEIGHTS_MODEL)},
        "provenance_pass_rate": {"right": float(1 - verdict_fail[y == 0].mean()), "hallucinated": float(1 - verdict_fail[y == 1].mean())},
        "timing_seconds": {
            "plain_generation_per_question": _tj(t_plain_q),
            "grounding_with_lm": _tj(t_lm),
            "grounding_without_lm": _tj(t_nolm),
            "provenance": _tj(t_prov),
            "dataset_total": _tj(_now() - t_start),
        },
        "mean_forward_passes_plain": passes_plain_q,
        "cost_note": "cost = (one plain RAG generation of the question + scoring one answer) / one plain RAG generation",
        "_boot": boot,
    }
    best_other = max((k for k, v in methods.items() if v["family"] == "provenance"), key=lambda k: methods[k]["auroc"])
    result["comparison"] = {"best_provenance": best_other, "auroc_difference_paired_bootstrap": {}}
    for hg in ("grounding_merged", "grounding_merged_lm"):
        d = boot[hg] - boot[best_other]
        result["comparison"]["auroc_difference_paired_bootstrap"][hg] = {
            "mean": float(d.mean()),
            "ci95": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))],
        }
    records = [
        {
            "row": r["row"],
            "question": rows[r["row"]]["question"],
            "answer": answers[i],
            "label": "hallucinated" if r["label"] else "correct",
            "risks": {k: float(v[i]) for k, v in risks.items()},
        }
        for i, r in enumerate(with_lm)
    ]
    return result, records


# ------------------------------------------------------------------------------------------ output


def _f(v, fmt="{:.3f}"):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def markdown_table(name: str, res: dict) -> str:
    lines = []
    if res["kind"] == "qa":
        head = (
            f"**{name}** ({res['n_scored']} answers scored of {res['n_questions']} questions; "
            f"{res['n_correct']} right, {res['n_hallucinated']} hallucinated, {res['n_refusals']} refusals left out; "
            f"hallucination rate {_f(res['hallucination_rate'], '{:.0%}')}; probe: {res['probe_domain']})"
        )
    else:
        head = (
            f"**{name}** ({res['n_rows']} rows, {res['n_scored']} reference answers: "
            f"{res['n_correct']} right, {res['n_hallucinated']} hallucinated)"
        )
    lines.append(head)
    lines.append("")
    lines.append(
        "| detector | AUROC [95% CI] | acc. at best threshold | halluc. among accepted @50% | @80% | cost, wall (CPU) x1 gen | LM forward passes / answer |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    order = sorted(res["methods"].items(), key=lambda kv: -(kv[1].get("auroc") if kv[1].get("auroc") is not None else -1))
    for _, m in order:
        ci = m.get("auroc_ci95")
        au = _f(m.get("auroc")) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        cov = m.get("hallucination_rate_at_coverage", {})
        lines.append(
            f"| {m['label']} | {au} | {_f(m.get('accuracy_best_threshold'))} | {_f(cov.get('0.5'), '{:.0%}')} | "
            f"{_f(cov.get('0.8'), '{:.0%}')} | {_f(m['cost_wall_ratio'], '{:.2f}x')} ({_f(m.get('cost_cpu_ratio'), '{:.2f}x')}) | "
            f"{_f(m['forward_passes_per_answer'], '{:.1f}')} ({_f(m['forward_pass_ratio'], '{:.2f}x')}) |"
        )
    t = res.get("target")
    if t and t.get("evaluable"):
        d = t.get("auroc_difference_paired_bootstrap") or {}
        ci = d.get("ci95")
        lines.append("")
        lines.append(
            f"Target: merged AUROC {t['merged_auroc']:.3f} vs best sampling ({label_of(t['best_sampling_method'])[0]}) "
            f"{t['best_sampling_auroc']:.3f}"
            + (f", paired difference {d['mean']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
            + f"; cost {t['merged_cost_wall_ratio']:.2f}x vs {t['best_sampling_cost_wall_ratio']:.2f}x (wall): "
            + ("**met**" if t["met"] else "**not met**")
            + "."
        )
    c = res.get("comparison")
    if c:
        parts = [
            f"{res['methods'][k]['label']} {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            for k, d in c["auroc_difference_paired_bootstrap"].items()
        ]
        lines.append("")
        lines.append(
            f"Paired AUROC difference against the better provenance variant ({res['methods'][c['best_provenance']]['label']}): "
            + "; ".join(parts) + "."
        )
    return "\n".join(lines)


TITLES = {
    "geography": "Geography (held-out)",
    "chemistry": "Chemistry (held-out)",
    "literature": "Literature (held-out)",
    "triviaqa": "TriviaQA",
    "nq_open": "NQ-Open",
    "popqa": "PopQA",
    "halueval": "HaluEval QA, length-matched rows (RAG)",
}


def markdown_report(out: dict) -> str:
    """Every dataset's table, in the order bundled, public, HaluEval."""
    order = [*BUNDLED, *PUBLIC, "halueval"]
    names = sorted(out["datasets"], key=lambda k: (order.index(k) if k in order else len(order), k))
    return "\n\n".join(markdown_table(TITLES.get(k, k), out["datasets"][k]) for k in names) + "\n"


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for d in ("torch", "transformers", "numpy", "scikit-learn", "sentence-transformers"):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return out


# -------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help="questions per dataset (overrides the per-set defaults)")
    ap.add_argument("--n-bundled", type=int, default=DEFAULT_N["bundled"], help="held-out questions per bundled domain")
    ap.add_argument("--n-public", type=int, default=DEFAULT_N["public"], help="questions per public QA set")
    ap.add_argument("--n-halueval", type=int, default=DEFAULT_N["halueval"], help="HaluEval rows (length-matched)")
    ap.add_argument("--domains", default=",".join(BUNDLED))
    ap.add_argument("--public", default=",".join(PUBLIC), help="public QA sets ('' for none)")
    ap.add_argument("--skip-halueval", action="store_true")
    ap.add_argument("--probes", default=str(REFERENCE_PROBES))
    ap.add_argument("--public-probe", default=PUBLIC_PROBE, help="the domain probe used on the public QA sets")
    ap.add_argument("--update", action="store_true",
                    help="keep the other datasets already in --out and replace only those run now")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--out", default=str(RESULTS / "detectors.json"))
    ap.add_argument("--render", action="store_true",
                    help="run nothing: widen the stored results' AUROC intervals below ten answers in the smaller class "
                         "as the current code draws them (an interval already drawn so is unchanged), save them to --out "
                         "and print the tables")
    return ap


def render_stored(path: Path) -> str:
    """The stored results' tables, each AUROC interval widened for a small class (:func:`widened_for_small_class`,
    which leaves one drawn by the current code as it is); the results file is rewritten with them."""
    from hguard._stats import widened_for_small_class

    out = json.loads(path.read_text())
    for res in out["datasets"].values():
        m = min(int(res.get("n_correct") or 0), int(res.get("n_hallucinated") or 0))
        for method in res["methods"].values():
            if method.get("auroc_ci95") and method.get("auroc") is not None:
                method["auroc_ci95"] = widened_for_small_class(method["auroc_ci95"], method["auroc"], m)
    out["intervals"] = ("AUROC intervals: within-class bootstrap, widened to the exact binomial interval below ten "
                        "answers in the smaller class (hguard._stats.auroc_ci)")
    path.write_text(json.dumps(_strip(out), indent=1) + "\n")
    return markdown_report(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.render:
        print(render_stored(Path(args.out)))
        return 0
    n_b = args.n if args.n is not None else args.n_bundled
    n_p = args.n if args.n is not None else args.n_public
    n_h = args.n if args.n is not None else args.n_halueval

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from hguard.calibrate.pipeline import load_probe_dir
    from hguard.models import load_model

    t_all = time.perf_counter()
    lm = load_model("default")
    probes = load_probe_dir(args.probes, expect=None)

    out: dict[str, Any] = {
        "model": lm.name,
        "probes": str(Path(args.probes).resolve().relative_to(REPO)) if Path(args.probes).resolve().is_relative_to(REPO) else args.probes,
        "settings": {
            "n_bundled": n_b, "n_public": n_p, "n_halueval": n_h, "sample_counts": list(SAMPLE_COUNTS),
            "temperature": 1.0, "batch_size": args.batch_size, "bootstrap": args.bootstrap, "seed": args.seed,
            "torch_threads": torch.get_num_threads(), "coverages": list(COVERAGES), "cost_target": COST_TARGET,
        },
        "environment": _versions(),
        "datasets": {},
    }
    answers: dict[str, list] = {}
    path = Path(args.out)
    apath = path.with_name(path.stem + "-answers.json")
    if args.update and path.exists():
        old = json.loads(path.read_text())
        out["datasets"] = old.get("datasets", {})
        out["runs"] = old.get("runs", []) + [
            {"settings": old.get("settings"), "datasets": sorted(old.get("datasets", {})), "total_seconds": old.get("total_seconds")}
        ]
        if apath.exists():
            answers = json.loads(apath.read_text())
    def save(complete: bool = False) -> None:
        """Write the results so far (after every dataset, so an interrupted run keeps what it did)."""
        for res in out["datasets"].values():
            res["run_settings"] = res.get("run_settings") or dict(out["settings"])
        targets = {k: v["target"] for k, v in out["datasets"].items() if v.get("target", {}).get("evaluable")}
        out["target_summary"] = {
            "met_everywhere": bool(targets) and all(t["met"] for t in targets.values()),
            "per_domain": {k: t["met"] for k, t in targets.items()},
        }
        out["complete"] = complete
        out["total_seconds"] = time.perf_counter() - t_all
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_strip(out), indent=1) + "\n")
        apath.write_text(json.dumps(_strip(answers), indent=1, ensure_ascii=False) + "\n")

    data_dir = REPO / "calibration" / "data"
    for domain in [d for d in args.domains.split(",") if d]:
        cd = probes[domain]
        exs, note = held_out_examples(domain, cd, [data_dir / f"{domain}.jsonl", data_dir / "fabricated.jsonl"], n_b, args.seed)
        note["fingerprint_problems"] = cd.check_fingerprints(lm.fingerprints(cd.generation.system_prompt if cd.generation else None))
        log(f"{domain}: {len(exs)} held-out questions (of {note['n_test_split']} in the test split)")
        res, recs = run_qa_dataset(domain, lm, exs, cd, probe_domain=domain, batch_size=args.batch_size,
                                   seed=args.seed, n_boot=args.bootstrap, extra={"split": note})
        out["datasets"][domain] = res
        answers[domain] = recs
        save()
    if args.public:
        from research import public

        cd = probes[args.public_probe]
        for name in [p for p in args.public.split(",") if p]:
            exs = getattr(public, f"load_{name}")(n_p)
            log(f"{name}: {len(exs)} questions ({args.public_probe} probe)")
            res, recs = run_qa_dataset(name, lm, exs, cd, probe_domain=f"{args.public_probe} (not calibrated for {name})",
                                       batch_size=args.batch_size, seed=args.seed, n_boot=args.bootstrap, target=False)
            out["datasets"][name] = res
            answers[name] = recs
            save()
    if not args.skip_halueval:
        rows = halueval_rows(n_h)
        res, recs = run_grounding_dataset("halueval", lm, rows, batch_size=args.batch_size, seed=args.seed, n_boot=args.bootstrap)
        out["datasets"]["halueval"] = res
        answers["halueval"] = recs
    save(complete=True)
    log(f"wrote {path} and {apath} in {out['total_seconds'] / 60:.1f} min")
    print(markdown_report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
