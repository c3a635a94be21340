"""Benchmark of H-Neuron steering on the default model (research.steering.steer_eval).

Scales the union of the reference probes' H-Neurons (hguard/_data/probes/smollm2-135m, one probe per
bundled domain) by each alpha, and the same number of random neurons per layer as a control, and
measures false-premise acceptance, following misleading context (ConflictNQ val), flipping when
challenged ("Are you sure?") and helpfulness (accuracy, refusal) on the bundled domains. The rules
are in research/steering.py's docstring.

Speed on one CPU thread shared with other work: 0.6-1.3 short questions/s at batch 16 with 32 new
tokens, about half that with a context passage or a chat history; alpha 1 is run once for both
conditions, so 11 settings are generated, plus the first turns of the sycophancy pool. On a busy
2-core machine that is about 25 minutes for the default sizes, so the run is split into two parts of
about 12-15 minutes each (the random control's part skips alpha 1, which is the same unsteered model),
merged afterwards; greedy decoding makes the parts reproducible, and the merge checks that they
agree on the rows. Larger sizes: --n.

    python benchmarks/steering.py --part h_neurons     # -> results/steering_part_h_neurons.json
    python benchmarks/steering.py --part random        # -> results/steering_part_random.json
    python benchmarks/steering.py --merge              # -> results/steering.json, .png, table
    python benchmarks/steering.py --part all           # both conditions in one run

Options: --probes DIR, --alphas 0,0.5,1,1.5,2,3, --n task=N,..., --threads 1. Writes
benchmarks/results/steering.json (rates, intervals, slopes, per-row outcomes),
steering_answers.json (every answer, for reading by hand) and steering.png, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hguard import REFERENCE_PROBES  # noqa: E402

DEFAULT_SIZES = {"false_premise": 24, "context": 12, "sycophancy": 16, "helpfulness": 20}
SYCOPHANCY_POOL = 48


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probes", default=str(REFERENCE_PROBES))
    p.add_argument("--domain", default=None)
    p.add_argument("--alphas", default="0,0.5,1,1.5,2,3")
    p.add_argument("--n", default=",".join(f"{k}={v}" for k, v in DEFAULT_SIZES.items()))
    p.add_argument("--pool", type=int, default=SYCOPHANCY_POOL, help="questions asked to find correct first answers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the steering*.json files and steering.png")
    p.add_argument("--part", choices=("all", "h_neurons", "random"), default="all")
    p.add_argument("--merge", action="store_true", help="merge the two parts' files into steering.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    from research import steering as st

    if args.merge:
        parts = [json.loads((out / f"steering_part_{c}.json").read_text(encoding="utf-8")) for c in ("h_neurons", "random")]
        res = st.merge_results(*parts)
        res["environment"] = {**parts[0].get("environment", {}), "parts": [p.get("environment") for p in parts]}
        res["environment"]["wall_seconds"] = round(sum(p["environment"]["wall_seconds"] for p in parts), 1)
        return _write(res, out, args.threads)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    from hguard.models import load_model

    t0 = time.perf_counter()
    lm = load_model("default")
    alphas = st._parse_alphas(args.alphas)
    conditions = st.CONDITIONS if args.part == "all" else (args.part,)
    if args.part == "random":
        alphas = [a for a in alphas if a != 1.0]  # alpha 1 comes from the H-Neuron part
    res = st.steer_eval(
        lm, args.probes, alphas, st._parse_n(args.n), args.seed, True, domain=args.domain,
        batch_size=args.batch_size, sycophancy_pool=args.pool, progress=True, conditions=conditions,
    )
    res["environment"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.machine(),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if args.part != "all":
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"steering_part_{args.part}.json"
        path.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path} ({res['seconds']:.0f} s); run the other part, then --merge")
        return 0
    return _write(res, out, args.threads)


def _write(res: dict, out: Path, threads: int) -> int:
    from research import steering as st

    answers = res.pop("answers", None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "steering.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if answers is not None:
        (out / "steering_answers.json").write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    png = st.plot(res, out / "steering.png")
    n = res["neurons"]
    print(f"## Steering {n['n']} H-Neurons of {', '.join(p['domain'] for p in n['probes'])} on {res['model']}\n")
    print(f"Control: {res['control']['n']} random neurons (same layers). Sizes: {res['settings']['sizes']}; "
          f"sycophancy pool {res['settings'].get('sycophancy_pool')}. {res['seconds']:.0f} s on {threads} thread(s).\n")
    print(st.summary_table(res))
    print(f"\nwrote {out / 'steering.json'}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
