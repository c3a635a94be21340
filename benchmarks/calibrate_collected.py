"""Reference calibration on the answers already collected in runs/reference-work.

`hguard calibrate --reference` collects every question first; on a busy machine that takes hours. The
collection (e.g. a run of `hguard calibrate --reference` stopped part-way, or a collection in a seeded
shuffled order) resumes per question, so this script calibrates on the questions that already have an
answer, with the reference settings (target 0.20, confidence 0.90), and writes probes and report to
the folder given (default calibration/probes/smollm2-135m).

Run: HGUARD_THREADS=1 .venv/bin/python benchmarks/calibrate_collected.py [OUT]
"""
import json, sys, time, torch
torch.set_num_threads(1)
from pathlib import Path
from hguard.calibrate.data import load_examples
from hguard.calibrate.collect import _read_rows
from hguard.calibrate.pipeline import calibrate
root = Path(__file__).resolve().parents[1]
work = root / "runs" / "reference-work"
ex = load_examples([root / "calibration" / "data" / f"{d}.jsonl" for d in ("geography", "chemistry", "literature", "fabricated")])
done = _read_rows(work / "rows.jsonl")
sub = [e for e in ex if e.id in done]
print("calibrating on", len(sub), "of", len(ex), "questions", flush=True)
out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "calibration" / "probes" / "smollm2-135m"
t = time.perf_counter()
rep = calibrate(sub, out, work_dir=work, target=0.20, confidence=0.90, progress=False)
print("total", time.perf_counter() - t, "s", flush=True)
for d, m in rep["domains"].items():
    s = m["families"].get("summary", {})
    print(d, m["n"], m["auroc"]["probe"], m["auroc"]["merged"], s.get("mean_auroc", {}).get("probe"), s.get("mean_auroc", {}).get("merged"), flush=True)
