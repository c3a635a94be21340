"""Rebuild the reference probes for the default model from the bundled calibration data.

    .venv/bin/python calibration/reference.py [extra `hguard calibrate` options]
    .venv/bin/python calibration/reference.py --rag [extra `hguard calibrate-rag` options]

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
        return hguard(["calibrate-rag", "--out", str(REFERENCE_PROBES), "--work", str(ROOT / "runs" / "rag-work"),
                       *argv[1:]])
    args = ["calibrate", "--out", str(REFERENCE_PROBES), "--work", str(ROOT / "runs" / "reference-work"),
            "--target", "0.20", "--confidence", "0.90"]
    for name in DATA:
        args += ["--data", str(ROOT / "calibration" / "data" / f"{name}.jsonl")]
    return hguard(args + argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
