"""Does how familiar the question is to the model carry over to kinds of question the calibration never saw?

Models hallucinate more about entities they rarely saw in training (Mallen et al. 2023, "When not to
trust language models"). The prompt's own tokens already pass through the model before it answers, so
the log-probability the model gives the question's tokens is a free signal of how familiar the question
(above all its entity) is. This study reads it from the answers already collected (a calibration work
folder, e.g. runs/reference-work): each question is run once through the model with the collection's
prompt, and the log-probabilities of the tokens that spell the question (not the system prompt or the
chat template) give three signals: their mean, their minimum, and the mean of the three lowest (the rare
tokens, mostly the entity's). Each is reported as a confidence baseline, and the merger (probe +
confidence) is refitted with them added, through the same leave-one-family-out protocol as
research/generalization.py (the shipped probe settings, v0; FINAL families chose nothing, SELECTION
families compare).

Writes benchmarks/results/question_familiarity.json (or --out) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.question_familiarity [--work runs/reference-work] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIGNALS = {  # oriented so that a higher value means a riskier answer, as calibration's baselines are
    "question_mean_logprob": lambda r: -r["question_mean_logprob"],
    "question_min_logprob": lambda r: -r["question_min_logprob"],
    "question_low3_logprob": lambda r: -r["question_low3_logprob"],
}


def question_logprobs(gen, rows, batch_size: int = 16) -> np.ndarray:
    """(n, 3): mean, min and mean of the three lowest log-probabilities of the question's tokens."""
    import torch

    from hguard.generation import left_pad

    from .cett_tokens import question_mask

    model, tok = gen.lm.model, gen.lm.tokenizer
    out = np.zeros((len(rows), 3))
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        seqs = [gen.prompt_ids(r["question"]) for r in batch]
        asks = [question_mask(gen, r["question"], s) for r, s in zip(batch, seqs)]
        ids, att = left_pad(seqs, tok.pad_token_id)
        ask = left_pad(asks, 0, dtype=torch.float32)[0]
        pos = (att.long().cumsum(-1) - 1).clamp_min(0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=att, position_ids=pos).logits.float()
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]  # log p(token t | < t)
        ask = ask[:, 1:]
        for i in range(len(batch)):
            v = lp[i][ask[i] > 0].numpy()
            low = np.sort(v)[:3]
            out[start + i] = (v.mean(), v.min(), low.mean())
        if start % (batch_size * 50) == 0:
            print(f"  {start + len(batch)} of {len(rows)} questions", flush=True)
    return out


def main(argv=None) -> int:
    import torch

    from .generalization import load_study, markdown, signal_means, signal_study, study_generator

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "reference-work"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "question_familiarity.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    col, _, test = load_study(args.work)
    gen = study_generator(args.work)
    t0 = time.perf_counter()
    q = question_logprobs(gen, col.rows, args.batch_size)
    seconds = time.perf_counter() - t0
    print(f"question pass: {seconds:.0f} s for {len(col.rows)} questions")
    for r, (mean, low, low3) in zip(col.rows, q):
        r.update(question_mean_logprob=float(mean), question_min_logprob=float(low), question_low3_logprob=float(low3))
        assert all(math.isfinite(x) for x in (mean, low, low3))
    results = signal_study(col, test, SIGNALS, (
        "v0 shipped merger (probe + answer confidence); question familiarity as baselines",
        "qf merger with the question's familiarity (mean, min, lowest-3 log-prob) added"))
    results.update(n_answers=len(col.rows), seconds_forward=seconds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    print(signal_means(results, SIGNALS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
