"""Which answer tokens the CETT should be read on: first, last, mean or max over the answer tokens.

The recorder (hguard.neurons) averages the CETT over the generated answer tokens. This study reads the
other choices from the answers already collected (a calibration work folder, e.g. runs/reference-work):
each answer is re-tokenised and run once, teacher-forced, through the model with the collection's
prompt, and the per-token CETT of every neuron is reduced to its first answer token, its last, the mean
and the max. The mean computed this way is checked against the stored (generation-time) vectors, then
each reduction goes through the same leave-one-family-out protocol as research/generalization.py (the
shipped probe settings, v0; FINAL families chose nothing, SELECTION families compare the reductions).

Writes benchmarks/results/cett_tokens.json (or --out) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.cett_tokens [--work runs/reference-work] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REDUCTIONS = ("first", "last", "mean", "max")


def token_cett(gen, rows, batch_size: int = 8) -> dict[str, np.ndarray]:
    """{reduction: (n, n_features) float32} for ``rows`` (question and answer text)."""
    import torch

    from hguard.generation import left_pad
    from hguard.neurons import _weight_and_bias, column_norms, find_ffn_sites

    model, tok = gen.lm.model, gen.lm.tokenizer
    sites = find_ffn_sites(model)
    width = sum(s.d_ff for s in sites)
    out = {k: np.zeros((len(rows), width), np.float32) for k in REDUCTIONS}
    norms = [column_norms(s) for s in sites]
    biases = [_weight_and_bias(s)[1] for s in sites]
    captured: dict[int, tuple] = {}

    def hook_for(k):
        def hook(module, args, output):
            captured[k] = (args[0].detach(), output.detach())
        return hook

    handles = [s.module.register_forward_hook(hook_for(k)) for k, s in enumerate(sites)]
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            seqs, masks = [], []
            for r in batch:
                prompt = gen.prompt_ids(r["question"])
                answer = tok(r["answer"], add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
                seqs.append(prompt + answer)
                masks.append([0] * len(prompt) + [1] * len(answer))
            ids, att = left_pad(seqs, tok.pad_token_id)
            mask = left_pad(masks, 0, dtype=torch.float32)[0]  # (B, S)
            pos = (att.long().cumsum(-1) - 1).clamp_min(0)
            with torch.no_grad():
                model(input_ids=ids, attention_mask=att, position_ids=pos)
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
                out["first"][start:start + len(batch), sl] = c[rows_i, first].numpy()
                out["last"][start:start + len(batch), sl] = c[rows_i, last].numpy()
                out["mean"][start:start + len(batch), sl] = ((c * mask[..., None]).sum(1) / n[:, None]).numpy()
                out["max"][start:start + len(batch), sl] = c.masked_fill(mask[..., None] == 0, float("-inf")).amax(1).numpy()
            captured.clear()
            if start % (batch_size * 50) == 0:
                print(f"  {start + len(batch)} of {len(rows)} answers", flush=True)
    finally:
        for h in handles:
            h.remove()
    return out


def main(argv=None) -> int:
    import torch

    from hguard.calibrate.collect import Collected
    from hguard.generation import Generator
    from hguard.models import load_model
    from hguard.settings import GenerationSettings

    from hguard.calibrate.pipeline import DEFAULT_SYSTEM_PROMPT

    from .generalization import VARIANTS, load_study, markdown, run_variant

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "reference-work"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cett_tokens.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    col, _, test = load_study(args.work)
    gen = Generator(load_model("default"), settings=GenerationSettings(system_prompt=DEFAULT_SYSTEM_PROMPT))
    stored = json.loads((Path(args.work) / "collection.json").read_text())
    for k, v in gen.fingerprints.items():  # the prompt the answers were given with
        if stored.get(k) != v:
            raise SystemExit(f"{args.work} was collected with {k} {stored.get(k)!r}, this generator has {v!r}")
    t0 = time.perf_counter()
    red = token_cett(gen, col.rows, args.batch_size)
    seconds = time.perf_counter() - t0
    X = np.asarray(col.features, dtype=np.float32)
    r = [float(np.corrcoef(X[i], red["mean"][i])[0, 1]) for i in range(0, len(X), max(1, len(X) // 200))]
    results: dict = {"n_answers": len(col.rows), "seconds_forward": seconds,
                     "mean_vs_stored_correlation": {"median": float(np.median(r)), "min": float(np.min(r)), "n": len(r)},
                     "variants": {}, "final_families": {}}
    print(f"teacher-forced pass: {seconds:.0f} s; mean CETT vs stored: median r {np.median(r):.4f}, min {np.min(r):.4f}")
    del X
    spec = VARIANTS[next(v for v in VARIANTS if v.startswith("v0"))]
    for k in REDUCTIONS:
        name = f"{k} answer token" if k in ("first", "last") else f"{k} over the answer tokens (teacher-forced)"
        results["variants"][name], finals = run_variant(Collected(col.rows, red[k]), test, spec, log=k)
        results["final_families"].update(finals)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
