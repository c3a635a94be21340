"""Rebuild the reference probes for the default model from the bundled calibration data.

    .venv/bin/python calibration/reference.py [extra `hguard calibrate` options]
    .venv/bin/python calibration/reference.py --rag [extra `hguard calibrate-rag` options]
    .venv/bin/python calibration/reference.py --collected-only   # only the questions already answered

Writes the probes and their report into the package data (`hguard/_data/probes/smollm2-135m`), which
the default policy and the demo use. Collected features go to `runs/reference-work` (resumable). The
targets are the default policy's (20% at 90% confidence: 10% at 95% cannot be certified on this
model's data, see the report).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ("geography", "chemistry", "literature", "fabricated")


def main(argv: list[str]) -> int:
    from hguard._resources import REFERENCE_PROBES
    from hguard.cli import main as hguard

    if argv[:1] == ["--rag"]:  # the RAG probes, from the RAG sets research/rag_data.py builds
        if str(ROOT) not in sys.path:  # research/ is importable from the checkout's root
            sys.path.insert(0, str(ROOT))
        return hguard(["calibrate-rag", "--out", str(REFERENCE_PROBES), "--work", str(ROOT / "runs" / "rag-work"),
                       *argv[1:]])
    if argv[:1] == ["--collected-only"]:
        return collected_only(REFERENCE_PROBES, ROOT / "runs" / "reference-work")
    args = ["calibrate", "--out", str(REFERENCE_PROBES), "--work", str(ROOT / "runs" / "reference-work"),
            "--target", "0.20", "--confidence", "0.90"]
    for name in DATA:
        args += ["--data", str(ROOT / "calibration" / "data" / f"{name}.jsonl")]
    return hguard(args + argv)


def collected_only(out: Path, work: Path) -> int:
    """Calibrate on the questions that already have an answer in ``work`` (a collection stopped part-way
    resumes per question; on a busy machine the whole collection takes hours), same settings."""
    from hguard.calibrate.collect import load_collected
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.pipeline import calibrate

    examples = load_examples([ROOT / "calibration" / "data" / f"{name}.jsonl" for name in DATA])
    done = {r["id"] for r in load_collected(work).rows}
    subset = [e for e in examples if e.id in done]
    print(f"calibrating on the {len(subset)} of {len(examples)} questions already answered in {work}", flush=True)
    calibrate(subset, out, work_dir=work, target=0.20, confidence=0.90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
