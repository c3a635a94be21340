"""Collection throughput: the local engine against the Ray engine with 1 and 2 actors, on this machine.

    HGUARD_THREADS=1 .venv/bin/python benchmarks/engines.py --n 64

The first ``--n`` questions of the reference geography data, answered by the default model at the
pipeline's settings (default system prompt, 32 new tokens) in batches of ``--batch-size``, each mode
into a fresh shard folder. Every mode uses one torch thread per process (the local engine one process,
each Ray actor one). Times: ``setup`` is what a mode pays before the first answer (loading the model
in the driver; for Ray also starting a local Ray with ``ray.init(num_cpus=2)``; the actors load their
own model inside the collection time), ``collect`` the collection call. The shards of every mode are
compared with the local engine's (same answers, features within float tolerance).
Writes benchmarks/results/engines.json (``--out``: another file name there, or an absolute path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import load_average, write_result  # noqa: E402  (after the repository is on sys.path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--modes", nargs="+", default=["local", "ray-1", "ray-2"], help="run in this order (the first is the reference)")
    p.add_argument("--out", default="engines.json",
                   help="file name under benchmarks/results/, or an absolute path to write elsewhere")
    return p


def main() -> None:
    args = build_parser().parse_args()
    os.environ.setdefault("HGUARD_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["HGUARD_THREADS"]))
    from hguard.calibrate.collect import collect
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.pipeline import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator
    from hguard.models import load_model

    exs = load_examples([ROOT / "calibration" / "data" / "geography.jsonl"])[: args.n]
    tmp = Path(tempfile.mkdtemp(prefix="hguard-engines-"))
    results: dict = {"order": args.modes, "n": len(exs), "batch_size": args.batch_size, "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
                     "threads_per_process": int(os.environ["HGUARD_THREADS"]), "cpu_count": os.cpu_count(), "modes": {}}
    ref = None
    try:
        for mode in args.modes:
            load0 = load_average()[0]
            t0 = time.perf_counter()
            gen = Generator(load_model("default"), system_prompt=DEFAULT_SYSTEM_PROMPT, max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
            work = tmp / mode
            if mode == "local":
                setup = time.perf_counter() - t0
                t1 = time.perf_counter()
                col = collect(gen, exs, work, batch_size=args.batch_size, progress=False)
            else:
                import ray

                from hguard.calibrate.ray_engine import RayOptions, collect_ray

                actors = int(mode.split("-")[1])
                # address="local": always a new local Ray of this process's own, never a running cluster
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                setup = time.perf_counter() - t0
                t1 = time.perf_counter()
                try:
                    col = collect_ray(gen, exs, work, model="default", batch_size=args.batch_size,
                                      options=RayOptions(actors=actors, num_cpus=1), progress=False)
                finally:
                    ray.shutdown()
            seconds = time.perf_counter() - t1
            same = None
            if ref is None:
                ref = col
            else:
                same = bool([r["answer"] for r in ref.rows] == [r["answer"] for r in col.rows]
                            and np.allclose(ref.features, col.features, rtol=1e-4, atol=1e-6))
            results["modes"][mode] = {
                "setup_seconds": setup, "collect_seconds": seconds, "answers_per_second": len(exs) / seconds,
                "answers_per_second_with_setup": len(exs) / (seconds + setup), "same_as_local": same,
                "load_average_before": load0, "load_average_after": load_average()[0],
            }
            print(mode, json.dumps(results["modes"][mode]), flush=True)
            del col
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / args.out  # an absolute --out stays as it is
    write_result(out, results, echo=True)


if __name__ == "__main__":
    main()
