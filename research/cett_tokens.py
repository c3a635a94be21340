"""Which answer tokens the CETT should be read on: first, last, mean or max over the answer tokens, or the
answer's own span.

The recorder (hguard.neurons) averages the CETT over the generated answer tokens. This study reads the
other choices from the answers already collected (a calibration work folder, e.g. runs/reference-work):
each answer is re-tokenised and run once, teacher-forced, through the model with the collection's
prompt, and the per-token CETT of every neuron is reduced to its first answer token, its last, the mean
and the max, and to the mean and max over the answer's span: the answer tokens that carry a word the
question does not (its new content, as the H-Neurons paper reads the answer's entity tokens; punctuation
and function words are left out, and an answer with no such token keeps all of them). The mean computed this way is checked against the stored (generation-time) vectors, then
each reduction goes through the same leave-one-family-out protocol as research/generalization.py (the
shipped probe settings, v0; FINAL families chose nothing, SELECTION families compare the reductions).

Writes benchmarks/results/cett_tokens.json (or --out) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.cett_tokens [--work runs/reference-work] [--batch-size 8]
     [--reductions span,span_max] (reductions run apart are added to the results file)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REDUCTIONS = ("first", "last", "mean", "max", "span", "span_max", "centred")
NAMES = {
    "first": "first answer token",
    "last": "last answer token",
    "mean": "mean over the answer tokens (teacher-forced)",
    "max": "max over the answer tokens (teacher-forced)",
    "span": "mean over the answer's span (words the question lacks)",
    "span_max": "max over the answer's span (words the question lacks)",
    "centred": "mean over the answer tokens minus the mean over the question's tokens",
}
FUNCTION_WORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been it its this that these those as "
    "which who whom whose what where when how i you he she they we his her their our my your not no yes".split()
)


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"[a-z0-9]+", text.lower()))


def text_mask(gen, prompt: list[int], part: str, what: str, question: str, context: str | None = None) -> list[int]:
    """1 for the tokens of ``prompt`` (the generator's prompt for ``question`` and ``context``) that spell
    ``part`` (its last occurrence), not the system prompt, the chat template or the rest of the turn."""
    tok = gen.lm.tokenizer
    text = tok.apply_chat_template(gen.messages(question, context), add_generation_prompt=True, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != list(prompt):
        raise SystemExit(f"the chat template's text does not re-tokenise to the prompt; cannot place the {what}")
    start = text.rfind(part.strip())
    end = start + len(part.strip())
    keep = [1 if a < end and b > start else 0 for a, b in enc["offset_mapping"]]
    if start < 0 or not any(keep):
        raise SystemExit(f"{what} {part!r:.60} not found in its prompt")
    return keep


def question_mask(gen, question: str, prompt: list[int]) -> list[int]:
    """1 for the prompt tokens that spell the question (not the system prompt or the chat template)."""
    return text_mask(gen, prompt, question, "question", question)


def span_mask(tok, question: str, answer: str) -> tuple[list[int], list[int]]:
    """The answer's token ids, and 1 for those inside a word the question lacks (not a function word; a
    question word split into sub-word tokens stays out as a whole); all 1 if no token is."""
    import re

    asked = _words(question) | FUNCTION_WORDS
    enc = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
    new = [m.span() for m in re.finditer(r"[A-Za-z0-9]+", answer) if m.group().lower() not in asked]
    keep = [1 if any(a < e and b > s for s, e in new) else 0 for a, b in enc["offset_mapping"]]
    ids = list(enc["input_ids"])
    return ids, (keep if any(keep) else [1] * len(ids))


class TeacherForced(NamedTuple):
    """One left-padded batch of prompt + answer: ids, attention, positions, and (B, S) float masks of the
    answer tokens, the answer's span (``span_mask``) and, when asked for, the question's tokens."""

    ids: Any
    attention: Any
    positions: Any
    mask: Any
    span: Any
    ask: Any


def teacher_forced(gen, rows, batch_size: int, with_question: bool = False):
    """``(start, TeacherForced)`` per batch of ``rows`` (question and answer text), each answer after the
    collection's prompt for its question, as generated (an empty answer is the end-of-sequence token);
    progress is printed every 50 batches."""
    import torch

    from hguard.generation import left_pad

    tok = gen.lm.tokenizer
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        seqs, masks, spans, asks = [], [], [], []
        for r in batch:
            prompt = gen.prompt_ids(r["question"])
            if with_question:
                asks.append(question_mask(gen, r["question"], prompt))
            answer, keep = span_mask(tok, r["question"], r["answer"])
            if not answer:
                answer, keep = [tok.eos_token_id], [1]
            seqs.append(prompt + answer)
            masks.append([0] * len(prompt) + [1] * len(answer))
            spans.append([0] * len(prompt) + keep)
            if asks:
                asks[-1] = asks[-1] + [0] * len(answer)
        ids, att = left_pad(seqs, tok.pad_token_id)
        pos = (att.long().cumsum(-1) - 1).clamp_min(0)
        yield start, TeacherForced(ids, att, pos, left_pad(masks, 0, dtype=torch.float32)[0],
                                   left_pad(spans, 0, dtype=torch.float32)[0],
                                   left_pad(asks, 0, dtype=torch.float32)[0] if asks else None)
        if start % (batch_size * 50) == 0:
            print(f"  {start + len(batch)} of {len(rows)} answers", flush=True)


def token_cett(gen, rows, batch_size: int = 8, reductions=REDUCTIONS) -> dict[str, np.ndarray]:
    """{reduction: (n, n_features) float32} for ``rows`` (question and answer text)."""
    import torch

    from hguard.neurons import _weight_and_bias, column_norms, find_ffn_sites

    model = gen.lm.model
    sites = find_ffn_sites(model)
    width = sum(s.d_ff for s in sites)
    out = {k: np.zeros((len(rows), width), np.float32) for k in reductions}
    norms = [column_norms(s) for s in sites]
    biases = [_weight_and_bias(s)[1] for s in sites]
    captured: dict[int, tuple] = {}

    def hook_for(k):
        def hook(module, args, output):
            captured[k] = (args[0].detach(), output.detach())
        return hook

    handles = [s.module.register_forward_hook(hook_for(k)) for k, s in enumerate(sites)]
    try:
        for start, tf in teacher_forced(gen, rows, batch_size, with_question="centred" in out):
            batch, mask, span, ask = rows[start:start + batch_size], tf.mask, tf.span, tf.ask
            n_span = span.sum(1).clamp_min(1)
            with torch.no_grad():
                model(input_ids=tf.ids, attention_mask=tf.attention, position_ids=tf.positions)
            first = mask.argmax(1)  # left padding: the answer is at the end
            last = torch.full_like(first, mask.shape[1] - 1)
            n = mask.sum(1).clamp_min(1)
            rows_i = torch.arange(len(batch))
            for k, s in enumerate(sites):
                z, h = captured[k]
                if biases[k] is not None:
                    h = h - biases[k]
                c = z.float().abs() * norms[k] / torch.linalg.vector_norm(h.float(), dim=-1, keepdim=True).clamp_min(1e-12)
                sl = slice(s.offset, s.offset + s.d_ff)
                rs = slice(start, start + len(batch))
                if "first" in out:
                    out["first"][rs, sl] = c[rows_i, first].numpy()
                if "last" in out:
                    out["last"][rs, sl] = c[rows_i, last].numpy()
                if "mean" in out:
                    out["mean"][rs, sl] = ((c * mask[..., None]).sum(1) / n[:, None]).numpy()
                if "max" in out:
                    out["max"][rs, sl] = c.masked_fill(mask[..., None] == 0, float("-inf")).amax(1).numpy()
                if "span" in out:
                    out["span"][rs, sl] = ((c * span[..., None]).sum(1) / n_span[:, None]).numpy()
                if ask is not None:
                    out["centred"][rs, sl] = ((c * mask[..., None]).sum(1) / n[:, None]
                                              - (c * ask[..., None]).sum(1) / ask.sum(1).clamp_min(1)[:, None]).numpy()
                if "span_max" in out:
                    out["span_max"][rs, sl] = c.masked_fill(span[..., None] == 0, float("-inf")).amax(1).numpy()
            captured.clear()
    finally:
        for h in handles:
            h.remove()
    return out


def run_reductions(argv, doc: str, out_name: str, names: dict[str, str], compute, *, check=None,
                   cett_baseline: bool = False) -> int:
    """The command line of a per-answer feature study: ``--reductions`` (keys of ``names``) are computed by
    ``compute(gen, rows, batch_size, chosen) -> {key: (n, n_features)}`` on the answers of ``--work`` and each
    takes the CETT's place in the leave-one-family-out protocol (v0 settings); ``check(col, features, results)``
    may add to the results first, and ``cett_baseline`` runs the shipped CETT probe on the same answers beside
    them. Reductions run apart add to the results file (``--out``, default benchmarks/results/OUT_NAME); one
    run again replaces its entry."""
    import torch

    from hguard.calibrate.collect import Collected

    from .generalization import VARIANTS, load_study, markdown, run_variant, study_generator

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "reference-work"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / out_name))
    ap.add_argument("--reductions", default=",".join(names), help=f"comma-separated, of {', '.join(names)}")
    args = ap.parse_args(argv)
    chosen = [k for k in args.reductions.split(",") if k]
    if not chosen or set(chosen) - set(names):
        raise SystemExit(f"--reductions {args.reductions!r}: choose from {', '.join(names)}")
    torch.set_num_threads(1)
    col, _, test = load_study(args.work)
    gen = study_generator(args.work)
    t0 = time.perf_counter()
    red = compute(gen, col.rows, args.batch_size, chosen)
    seconds = time.perf_counter() - t0
    print(f"teacher-forced pass: {seconds:.0f} s")
    results: dict = {"variants": {}, "final_families": {}}
    if Path(args.out).is_file():
        results.update(json.loads(Path(args.out).read_text()))
    results.update(n_answers=len(col.rows), seconds_forward=seconds, reductions_last_run=chosen)
    if check is not None:
        check(col, red, results)
    v0 = next(v for v in VARIANTS if v.startswith("v0"))
    spec, n_layers = VARIANTS[v0], gen.lm.model.config.num_hidden_layers
    runs = ([(v0, col, "v0")] if cett_baseline and v0 not in results["variants"] else []) + \
        [(names[k], Collected(col.rows, red[k]), k) for k in chosen]
    for name, features, log in runs:
        results["variants"][name], finals = run_variant(features, test, spec, n_layers=n_layers, log=log)
        results["final_families"].update(finals)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


def _check_mean(col, red: dict, results: dict) -> None:
    """The teacher-forced mean against the CETT stored at generation time (the same reading, so r ~ 1)."""
    if "mean" not in red:
        return
    X = np.asarray(col.features, dtype=np.float32)
    r = [float(np.corrcoef(X[i], red["mean"][i])[0, 1]) for i in range(0, len(X), max(1, len(X) // 200))]
    results["mean_vs_stored_correlation"] = {"median": float(np.median(r)), "min": float(np.min(r)), "n": len(r)}
    print(f"mean CETT vs stored: median r {np.median(r):.4f}, min {np.min(r):.4f}")


def main(argv=None) -> int:
    return run_reductions(argv, __doc__, "cett_tokens.json", NAMES, token_cett, check=_check_mean)


if __name__ == "__main__":
    raise SystemExit(main())
