"""Run every benchmark in benchmarks/, as benchmarks/README.md runs it.

Without options this runs the README's commands: the real, long runs (about four hours on one CPU
thread in all, more on a busy machine), which overwrite the committed results in benchmarks/results/.
Each command is printed before it runs; a failed one is reported and the others still run. The
reference calibration that calibration.py reads (`make calibrate`) is not rerun: it rewrites the
shipped probes. screening.py keeps the answers it collects in runs/screening-* (about 1.3 GB).

    .venv/bin/python benchmarks/run_all.py                  # the README runs (`make bench`)
    .venv/bin/python benchmarks/run_all.py --smoke          # each benchmark at tiny settings (minutes)
    .venv/bin/python benchmarks/run_all.py --list [--smoke] # print the commands, run nothing
    .venv/bin/python benchmarks/run_all.py --only recording,early_stop

``--smoke`` runs each benchmark with the smallest settings that still go through its code paths,
writing into a temporary folder (or ``--out DIR``), never into benchmarks/results/; its figures mean
nothing. Benchmarks marked as needing the public data sets read them from $HGUARD_SHARED_DATA, else
<repo>/../shared/data.

Adding a benchmark: one entry in BENCHMARKS below (the tests fail for a script in benchmarks/ that has
none, and for a README command that does not parse or is not in benchmarks/README.md). A module whose name
starts with "_" is shared code, not a benchmark: _common.py records the threads and load average a run was
measured under and writes its result file, for every script.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = "{out}"  # in smoke arguments: the smoke run's output folder


@dataclass(frozen=True)
class Benchmark:
    """How to run one script: its README commands (arguments after the script's name, run in
    order), its smoke commands (OUT stands for the output folder), and the files a smoke run writes
    there."""

    full: tuple[tuple[str, ...], ...]
    smoke: tuple[tuple[str, ...], ...]
    writes: tuple[str, ...]
    shared_data: bool = False  # reads the public data sets


# One entry per script in benchmarks/. `full` is what benchmarks/README.md runs.
BENCHMARKS: dict[str, Benchmark] = {
    "audit_scale": Benchmark(
        full=((),),
        smoke=(("--records", "1", "200", "--rotated", "200", "--out", f"{OUT}/audit_scale.json"),),
        writes=("audit_scale.json",),
    ),
    "bad_input": Benchmark(
        full=(("--markdown",),),
        smoke=(("--out", f"{OUT}/bad_input.json"),),
        writes=("bad_input.json",),
    ),
    "calibration": Benchmark(
        full=((), ("--public", "400")),
        # No --public: the model is right on 5-11% of those sets, so a probe needs a few hundred questions per set.
        smoke=(("--out", f"{OUT}/calibration.json"),),
        writes=("calibration.json",),
    ),
    "domain_calibration": Benchmark(
        full=(("--domain", "geography", "--questions", "1500", "--work", "runs/geo-work", "--probes", "runs/geo-probe"),),
        # 96 questions of the family-stratified order: enough right answers in the training split for a probe
        smoke=(("--domain", "geography", "--questions", "96", "--quiet", "--work", f"{OUT}/domain-work",
                "--probes", f"{OUT}/domain-probe", "--out", f"{OUT}/domain_calibration.json"),),
        writes=("domain_calibration.json",),
    ),
    "detectors": Benchmark(
        full=((),),
        smoke=(("--n", "4", "--domains", "geography", "--public", "triviaqa", "--bootstrap", "20",
                "--out", f"{OUT}/detectors.json"),),
        writes=("detectors.json", "detectors-answers.json"),
        shared_data=True,
    ),
    "early_stop": Benchmark(
        full=(("--n", "10"),),
        smoke=(("--n", "1", "--out", f"{OUT}/early_stop.json"),),
        writes=("early_stop.json",),
    ),
    "engines": Benchmark(
        full=(("--n", "64", "--batch-size", "8"),
              ("--n", "64", "--batch-size", "8", "--modes", "ray-2", "ray-1", "local", "--out", "engines_reversed.json")),
        # 4 questions in 2 shards, the local engine then a local Ray (started and shut down by the script) with one actor
        smoke=(("--n", "4", "--batch-size", "2", "--modes", "local", "ray-1", "--out", f"{OUT}/engines.json"),),
        writes=("engines.json",),
    ),
    "first_answer": Benchmark(
        full=(("--n", "12"),),
        smoke=(("--n", "1", "--max-new-tokens", "4", "--out", f"{OUT}/first_answer.json"),),
        writes=("first_answer.json",),
    ),
    "grounding": Benchmark(
        full=((),),
        smoke=(("--limit", "5", "--out", f"{OUT}/grounding.json"),),  # 2 length-matched HaluEval rows
        writes=("grounding.json",),
        shared_data=True,
    ),
    "monitor": Benchmark(
        full=(("--sims", "2000"),),
        smoke=(("--sims", "200", "--out", f"{OUT}/monitor.json"),),
        writes=("monitor.json",),
    ),
    "number_hold": Benchmark(
        full=((),),
        smoke=(("--out", f"{OUT}/number_hold.json"),),
        writes=("number_hold.json",),
    ),
    "reversed_claims": Benchmark(
        full=((),),
        smoke=(("--out", f"{OUT}/reversed_claims.json"),),
        writes=("reversed_claims.json",),
    ),
    "recording": Benchmark(
        full=(("--rounds", "3"),),
        smoke=(("--rounds", "1", "--skip-load", "--prompts", "2", "--max-new-tokens", "8",
                "--out", f"{OUT}/recording.json"),),
        writes=("recording.json",),
    ),
    "reliability": Benchmark(
        full=((),),
        smoke=(("--smoke", "--out", f"{OUT}/reliability.json"),),
        writes=("reliability.json",),
    ),
    "review_page": Benchmark(
        full=((),),
        smoke=(("--items", "200", "--repeat", "1", "--out", f"{OUT}/review_page.json"),),
        writes=("review_page.json",),
    ),
    "router": Benchmark(
        full=((),),
        smoke=(("--limit", "3", "--out", f"{OUT}/router.json"),),
        writes=("router.json",),
        shared_data=True,
    ),
    "screening": Benchmark(
        full=(("collect-wide", "--n", "256", "--work", "runs/screening-wide256"),
              ("fit", "--work", "runs/screening-wide256", "--mode", "memory"),
              ("fit", "--work", "runs/screening-wide256", "--mode", "screen", "--k", "2000"),
              ("fit", "--work", "runs/screening-wide256", "--mode", "screen", "--k", "8000"),
              ("shard-size", "--work", "runs/screening-wide256"),
              ("collect-wide", "--n", "512", "--work", "runs/screening-wide512"),
              ("fit", "--work", "runs/screening-wide512", "--mode", "memory"),
              ("fit", "--work", "runs/screening-wide512", "--mode", "screen", "--k", "2000"),
              ("collect-default", "--work", "runs/screening-default"),
              ("auroc", "--work", "runs/screening-default", "--k", "500", "2000", "8000"),
              ("shard-size", "--work", "runs/screening-default"),
              # `hguard calibrate` itself on the 8B-shaped model, screened then in memory (each its own process)
              ("calibrate-wide", "--n", "256", "--work", "runs/cal-wide256", "--screen-top", "2000"),
              ("calibrate-wide", "--n", "256", "--work", "runs/cal-wide256")),
        # the 8B-shaped random model (no default-model collection, 22 min): collection, both fits, the held-out
        # AUROC and the shard sizes on 32 answers
        smoke=(("collect-wide", "--n", "32", "--work", f"{OUT}/screening/work", "--out", f"{OUT}/screening"),
               ("fit", "--work", f"{OUT}/screening/work", "--mode", "memory", "--out", f"{OUT}/screening"),
               ("fit", "--work", f"{OUT}/screening/work", "--mode", "screen", "--k", "200", "--out", f"{OUT}/screening"),
               ("auroc", "--work", f"{OUT}/screening/work", "--k", "200", "--out", f"{OUT}/screening"),
               ("shard-size", "--work", f"{OUT}/screening/work", "--out", f"{OUT}/screening")),
        writes=("screening/screening_collect_wide_n32.json", "screening/screening_fit_memory_458752_n32.json",
                "screening/screening_fit_screen_k200_458752_n32.json", "screening/screening_auroc_default.json",
                "screening/shard_size_458752.json"),
    ),
    "steering": Benchmark(
        full=(("--part", "h_neurons"), ("--part", "random"), ("--merge",)),
        smoke=(("--part", "all", "--alphas", "0,1", "--n", "false_premise=2,context=2,sycophancy=2,helpfulness=2",
                "--pool", "4", "--out", f"{OUT}/steering"),),
        writes=("steering/steering.json", "steering/steering_answers.json"),
        shared_data=True,
    ),
}


def script(name: str) -> Path:
    return HERE / f"{name}.py"


def commands(name: str, smoke: bool, out: Path | None = None) -> list[list[str]]:
    """The command lines of one benchmark (full or smoke; OUT replaced by ``out``)."""
    b = BENCHMARKS[name]
    runs = b.smoke if smoke else b.full
    return [[sys.executable, str(script(name)), *(a.replace(OUT, str(out)) for a in args)] for args in runs]


def shown(cmd: list[str]) -> str:
    """A command as one would type it from the repository root."""
    py = ".venv/bin/python" if Path(cmd[0]) == Path(sys.executable) else cmd[0]
    rel = os.path.relpath(cmd[1], HERE.parent)
    return shlex.join([py, rel, *cmd[2:]])


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (and theirs): a run's cost apart from other load."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def shared_data_missing() -> str | None:
    """Why the public data sets cannot be read, or None when they can."""
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))  # research/ sits beside hguard/ and is not installed
    from hguard.errors import DataError
    from research.public import shared_data_dir

    try:
        shared_data_dir()
    except DataError as e:
        return str(e)
    return None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Without --smoke: the README's real, long runs (about four "
        "hours on one thread), each command printed as it starts; they overwrite benchmarks/results/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Benchmarks: " + ", ".join(BENCHMARKS),
    )
    ap.add_argument("--smoke", action="store_true", help="tiny settings, into a temporary folder (or --out)")
    ap.add_argument("--out", type=Path, help="with --smoke: keep the outputs in this folder")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument("--list", action="store_true", help="print the commands and run nothing")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"--only names {', '.join(unknown)}, which is not a benchmark; pick from {', '.join(BENCHMARKS)}")
    if args.out is not None and not args.smoke:
        ap.error("--out works with --smoke only; the README runs write to benchmarks/results/")

    with tempfile.TemporaryDirectory(prefix="hguard-bench-") as tmp:
        out = (args.out or Path(tmp)).resolve()
        if args.list:
            for n in names:
                for cmd in commands(n, args.smoke, out):
                    print(shown(cmd))
            return 0
        missing = shared_data_missing() if any(BENCHMARKS[n].shared_data for n in names) else None
        if missing:
            need = [n for n in names if BENCHMARKS[n].shared_data]
            print(f"run_all: {', '.join(need)} need the public data sets: {missing}", file=sys.stderr)
            return 2
        if args.smoke:
            out.mkdir(parents=True, exist_ok=True)
            print(f"smoke run (tiny settings, figures meaningless) into {out}", flush=True)
        else:
            print("full run: the README's commands, about four hours on one thread; "
                  "results go to benchmarks/results/", flush=True)
        env = {**os.environ, "HGUARD_THREADS": os.environ.get("HGUARD_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false"}
        failed = []
        for n in names:
            ok = True
            for cmd in commands(n, args.smoke, out):
                print(f"\n$ {shown(cmd)}", flush=True)
                t, cpu = time.perf_counter(), _children_cpu()
                rc = subprocess.run(cmd, cwd=HERE.parent, env=env).returncode
                print(f"[{n}: exit {rc} after {time.perf_counter() - t:.0f} s, {_children_cpu() - cpu:.0f} s CPU]", flush=True)
                if rc != 0:
                    failed.append(f"{shown(cmd)} (exit {rc})")
                    ok = False
                    break  # the later commands of a benchmark build on the earlier ones
            if args.smoke and ok:
                absent = [f for f in BENCHMARKS[n].writes if not (out / f).is_file()]
                if absent:
                    failed.append(f"{n}: wrote no {', '.join(absent)} in {out}")
        if failed:
            print("\nfailed:\n  " + "\n  ".join(failed), file=sys.stderr)
            return 1
        print(f"\nall {len(names)} benchmark(s) ran" + (f"; outputs in {out}" if args.out else ""))
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
