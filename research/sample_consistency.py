"""Does the agreement of sampled answers carry over to kinds of question the calibration never saw?

A signal that no training chooses cannot learn a family's habits: sampling-based consistency
(SelfCheckGPT, Manakul et al. 2023; semantic entropy, Farquhar et al. 2024) asks the model the same
question K more times with sampling (temperature 1) and measures how far the samples agree with the
answer it gave. Agreement here: the Jaccard overlap of the answer's content words (words the question
lacks, function words left out, as research/cett_tokens.py reads the answer's span) with each sample's,
averaged over the K samples; risk = 1 - agreement. The study samples every collected answer of the
chosen domains (a calibration work folder, e.g. runs/reference-work; the samples are cached in --cache so
that a stopped run resumes), reports the signal as a confidence baseline, and refits the merger (probe +
confidence) with it added, through the leave-one-family-out protocol of research/generalization.py (the
shipped probe settings, v0; FINAL families chose nothing, SELECTION families compare).

Writes benchmarks/results/sample_consistency.json (or --out) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.sample_consistency [--work runs/reference-work] [--domains geography] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIGNALS = {"sample_disagreement": lambda r: r["sample_disagreement"]}  # higher = riskier


def content_words(question: str, text: str) -> set[str]:
    from .cett_tokens import FUNCTION_WORDS, _words

    asked = _words(question) | FUNCTION_WORDS
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in asked}


def disagreement(question: str, answer: str, samples: list[str]) -> float:
    """1 - mean Jaccard overlap of the answer's content words with each sample's."""
    a = content_words(question, answer)
    overlaps = []
    for s in samples:
        b = content_words(question, s)
        overlaps.append(len(a & b) / len(a | b) if a | b else 1.0)
    return 1.0 - float(np.mean(overlaps))


def sample(gen, rows, k: int, cache: Path, batch_size: int = 8, seed: int = 0) -> dict[str, list[str]]:
    """{row id: k sampled answers}, read from and appended to ``cache`` (JSON lines)."""
    import torch

    from hguard.generation import left_pad

    done: dict[str, list[str]] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            done[rec["id"]] = rec["samples"]
    todo = [r for r in rows if r["id"] not in done]
    model, tok = gen.lm.model, gen.lm.tokenizer
    t0 = time.perf_counter()
    with cache.open("a") as fh:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            torch.manual_seed(seed + start)
            ids, att = left_pad([gen.prompt_ids(r["question"]) for r in batch], tok.pad_token_id)
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=att, do_sample=True, temperature=1.0, top_p=1.0,
                                     top_k=0, num_return_sequences=k, max_new_tokens=32, pad_token_id=tok.pad_token_id)
            texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
            for i, r in enumerate(batch):
                done[r["id"]] = texts[i * k:(i + 1) * k]
                fh.write(json.dumps({"id": r["id"], "samples": done[r["id"]]}) + "\n")
            fh.flush()
            if start % (batch_size * 25) == 0:
                print(f"  {start + len(batch)} of {len(todo)} questions sampled, {time.perf_counter() - t0:.0f} s", flush=True)
    return done


def main(argv=None) -> int:
    import torch

    from . import generalization
    from .generalization import load_study, markdown, signal_means, signal_study, study_generator

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "reference-work"))
    ap.add_argument("--domains", default="geography", help="comma-separated, of geography, chemistry, literature")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cache", default=str(ROOT / "runs" / "sample_consistency.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sample_consistency.json"))
    args = ap.parse_args(argv)
    domains = tuple(d for d in args.domains.split(",") if d)
    if not domains or set(domains) - set(generalization.DOMAINS):
        raise SystemExit(f"--domains {args.domains!r}: choose from {', '.join(generalization.DOMAINS)}")
    torch.set_num_threads(1)
    col, _, test = load_study(args.work)
    keep = np.array([r["domain"] in domains for r in col.rows])
    col, test = col.subset(keep), test[keep]
    gen = study_generator(args.work)
    t0 = time.perf_counter()
    samples = sample(gen, col.rows, args.k, Path(args.cache), args.batch_size)
    seconds = time.perf_counter() - t0
    for r in col.rows:
        r["sample_disagreement"] = disagreement(r["question"], r["answer"], samples[r["id"]][:args.k])
    generalization.DOMAINS, shipped_domains = domains, generalization.DOMAINS
    try:
        results = signal_study(col, test, SIGNALS, (
            "v0 shipped merger (probe + answer confidence); sample disagreement as a baseline",
            f"sc merger with the disagreement of {args.k} sampled answers added"))
    finally:
        generalization.DOMAINS = shipped_domains
    results.update(n_answers=len(col.rows), k=args.k, seconds_sampling_this_run=seconds, domains=list(domains))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    print(signal_means(results, SIGNALS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
