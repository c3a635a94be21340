"""Cost of the default model and of recording neuron contributions (issue: foundation).

Measures, in one run on the same prompts:
- load time of the default model: cold (dequantise the GGUF and write the cache, fresh cache folder)
  and warm (read the verified cache), each in a fresh subprocess;
- greedy generation time of plain ``model.generate`` against generation with the recorder in subset
  mode (the guard's inference path: a probe's neurons) and in all-neuron mode (calibration), interleaved
  round by round so drift on a shared machine hits every mode alike;
- batched throughput (answers per second) at batch 1, 8 and 16 with the guard's generation path.

Writes benchmarks/results/recording.json (or --out) and prints a Markdown table.
Run: .venv/bin/python benchmarks/recording.py [--rounds 5] [--skip-load | --load-only] [--prompts N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hguard import REFERENCE_PROBES

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "What is the capital of France?",
    "What is the chemical symbol of gold?",
    "Who wrote Pride and Prejudice?",
    "What is the capital of Japan?",
    "What is the chemical symbol of sodium?",
    "Who wrote The Old Man and the Sea?",
    "What is the capital of Canada?",
    "What is the largest planet in the solar system?",
    "What is the capital of Kenya?",
    "What is the chemical symbol of iron?",
    "Who painted the Mona Lisa?",
    "What is the capital of Australia?",
    "What is the boiling point of water in Celsius?",
    "Who wrote Hamlet?",
    "What is the capital of Brazil?",
    "What is the chemical symbol of potassium?",
]


def load_times() -> dict:
    code = (
        "import time,json,torch; torch.set_num_threads(1); t=time.perf_counter();"
        "from hguard.models import load_model; lm=load_model('default');"
        "print(json.dumps({'seconds': time.perf_counter()-t, 'cache_hit': lm.load_info['cache_hit']}))"
    )
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HGUARD_CACHE_DIR": tmp}
        for label in ("cold", "warm"):
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[label] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--subset-size", type=int, default=64)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--skip-load", action="store_true", help="leave out the load times (the result file then has none)")
    which.add_argument("--load-only", action="store_true", help="measure the load times alone, keeping the other results")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared 2-core machine)")
    ap.add_argument("--prompts", type=int, default=len(QUESTIONS), help=f"first N of the {len(QUESTIONS)} prompts (fewer: a quick run)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "recording.json")
    return ap


def main(argv: list[str] | None = None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not 1 <= args.prompts <= len(QUESTIONS):
        ap.error(f"--prompts {args.prompts} is out of range; pass 1 to {len(QUESTIONS)}")
    questions = QUESTIONS[: args.prompts]

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from hguard.calibrate.pipeline import DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator
    from hguard.models import load_model

    result: dict = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}
    if not args.skip_load:
        result["load"] = load_times()
    out = args.out
    if args.load_only:
        previous = json.loads(out.read_text()) if out.exists() else {}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**previous, "load": result["load"]}, indent=1))
        for label in ("cold", "warm"):
            print(f"| load default model, {label} | {result['load'][label]['seconds']:.1f} s |")
        return
    lm = load_model("default")
    gen = Generator(lm, system_prompt=DEFAULT_SYSTEM_PROMPT, max_new_tokens=args.max_new_tokens)
    rng = np.random.default_rng(0)
    subset = sorted(rng.choice(gen.n_features, size=args.subset_size, replace=False).tolist())
    # The guard's real inference path: the neurons of a reference probe (few, in a few layers).
    from hguard.calibrate.pipeline import load_probe_dir

    probe = load_probe_dir(REFERENCE_PROBES)["geography"].probe
    probe_subset = [int(i) for i in probe.feature_indices_]
    probe_layers = len({i // gen.sites[0].d_ff for i in probe_subset})
    prompts = [gen.prompt_ids(q) for q in questions]
    model = lm.model

    def plain(p):
        ids = torch.tensor([p])
        with torch.no_grad():
            return model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_new_tokens,
                do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=lm.tokenizer.pad_token_id,
                eos_token_id=gen.eos_token_ids,
            )[0, len(p):].tolist()

    modes = {
        "plain generate": lambda q, p: plain(p),
        "recorder, probe subset": lambda q, p: gen.generate([q], neurons=probe_subset)[0].token_ids,
        "recorder, 64 random neurons": lambda q, p: gen.generate([q], neurons=subset)[0].token_ids,
        "recorder, all neurons": lambda q, p: gen.generate([q], neurons="all")[0].token_ids,
        "confidence only": lambda q, p: gen.generate([q], neurons=None)[0].token_ids,
    }
    for f in modes.values():  # warm-up
        f(questions[0], prompts[0])
    times = {m: [] for m in modes}
    tokens = {}
    for _ in range(args.rounds):
        for q, p in zip(questions, prompts):
            for m, f in modes.items():
                t = time.perf_counter()
                ids = f(q, p)
                times[m].append(time.perf_counter() - t)
                tokens.setdefault(m, []).append(len(ids))
    base = np.array(times["plain generate"])
    overhead = {}
    for m in modes:
        arr = np.array(times[m])
        overhead[m] = {
            "total_seconds": float(arr.sum()),
            "ratio_to_plain": float(arr.sum() / base.sum()),
            "median_ratio_per_prompt": float(np.median(arr / base)),
            "mean_answer_tokens": float(np.mean(tokens[m])),
        }
    result["overhead"] = {
        "rounds": args.rounds, "prompts": len(questions), "random_subset_size": args.subset_size,
        "probe_subset": {"domain": "geography", "neurons": len(probe_subset), "layers": probe_layers}, "modes": overhead,
    }

    thr = {}
    qs = questions * 2
    for bs in (1, 8, 16):
        gen.generate(qs[:bs], neurons=probe_subset, batch_size=bs)
        t = time.perf_counter()
        res = gen.generate(qs, neurons=probe_subset, batch_size=bs)
        dt = time.perf_counter() - t
        thr[bs] = {"answers_per_second": len(qs) / dt, "seconds": dt, "answers": len(qs), "mean_tokens": float(np.mean([len(r.token_ids) for r in res]))}
    result["throughput"] = thr
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))

    print("| measure | value |\n|---|---|")
    if "load" in result:
        print(f"| load default model, cold (dequantise + write cache) | {result['load']['cold']['seconds']:.1f} s |")
        print(f"| load default model, warm (verified cache) | {result['load']['warm']['seconds']:.1f} s |")
    print(f"| (probe subset: geography, {len(probe_subset)} neurons in {probe_layers} layers) | |")
    for m, o in overhead.items():
        print(f"| greedy generation, {m} | {o['ratio_to_plain']:.3f}x plain (median per prompt {o['median_ratio_per_prompt']:.3f}x) |")
    for bs, v in thr.items():
        print(f"| throughput, batch {bs} | {v['answers_per_second']:.2f} answers/s |")


if __name__ == "__main__":
    main()
