"""Bad input, as a user meets it: runs each case against the real command line (or the Python API where
the case only exists there) and records the exit code, whether a traceback appeared, and the message.

    .venv/bin/python benchmarks/bad_input.py [--out benchmarks/results/bad_input.json] [--markdown]

The probe-folder cases copy the reference probes into a scratch folder, add the bad file and ask a
geography question with `--json`, so the table shows the route and the reason the user gets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hguard import REFERENCE_PROBES as PROBES
from hguard import policy_copy

ROOT = Path(__file__).resolve().parent.parent


def hguard(args, env=None, timeout=600):
    r = subprocess.run([sys.executable, "-m", "hguard", *args], capture_output=True, timeout=timeout, cwd=ROOT,
                       env={**os.environ, "HGUARD_THREADS": "1", **(env or {})})
    err = r.stderr.decode("utf-8", "replace")
    lines = [x for x in err.splitlines() if x.startswith("hguard ")]
    return {"exit": r.returncode, "traceback": "Traceback" in err, "message": lines[-1] if lines else err.strip()[-300:],
            "stdout": r.stdout.decode("utf-8", "replace")}


def policy(tmp: Path, probes: Path) -> Path:
    """The default policy with its log and queue in ``tmp`` and its probes from ``probes``."""
    p = policy_copy(tmp, overwrite=True)
    p.write_text(p.read_text().replace('probes = "package:smollm2-135m"', f"probes = {json.dumps(str(probes))}"))
    return p


def probe_case(tmp: Path, name: str, make) -> dict:
    folder = tmp / name
    shutil.copytree(PROBES, folder)
    make(folder)
    run_dir = tmp / f"{name}-run"
    run_dir.mkdir()
    r = hguard(["ask", "What is the capital of Peru?", "--domain", "geography", "--policy", str(policy(run_dir, folder)), "--json"])
    if r["exit"] == 0:
        res = json.loads(r["stdout"])
        r["message"] = f"route={res['route']}: " + next((x for x in res["reasons"] if "probe" in x), res["reasons"][0])
    return r


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bad_input.json"))
    ap.add_argument("--markdown", action="store_true", help="print the README table")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        (tmp / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
        cli_cases = [
            ("`--context` file missing", ["ask", "q?", "--context", str(tmp / "missing.txt")], None),
            ("`--context` is a folder", ["ask", "q?", "--context", str(tmp)], None),
            ("`--context` not UTF-8", ["ask", "q?", "--context", str(tmp / "latin1.txt")], None),
            ("`HGUARD_THREADS=abc`", ["ask", "q?"], {"HGUARD_THREADS": "abc"}),
            ("policy file missing", ["ask", "q?", "--policy", str(tmp / "nope.toml")], None),
            ("question with invalid UTF-8", ["ask", b"capital of \xff?".decode("utf-8", "surrogateescape"),
                                            "--policy", str(policy(tmp, PROBES))], None),
        ]
        for case, args, env in cli_cases:
            rows.append({"case": case, **hguard(args, env)})

        def overflow(f):
            (f / "geography.json").write_text((f / "geography.json").read_text().replace('"intercept": ', '"intercept": 1e999, "x": ', 1))

        def duplicate(f):
            shutil.copy(f / "geography.json", f / "geography-old.json")

        def fifo(f):
            os.mkfifo(f / "zz.json")

        def link_out(f):
            (f / "geography.json").rename(tmp / "outside.json")
            (f / "geography.json").symlink_to(tmp / "outside.json")

        for case, make in (("probe holding 1e999", overflow), ("two probes claim one domain", duplicate),
                           ("FIFO zz.json beside the real probes (no hang; zz disabled)", fifo), ("probe symlinked from outside the folder", link_out)):
            rows.append({"case": case, **probe_case(tmp, case.replace(" ", "_"), make)})
    for r in rows:
        r.pop("stdout", None)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    if a.markdown:
        print("| input | exit | traceback | what the user gets |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['case']} | {r['exit']} | {'yes' if r['traceback'] else 'no'} | {r['message'].replace('|', '/')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
