"""The benchmarks run: run_all.py's registry lists every script in benchmarks/, the commands that
benchmarks/README.md names parse with their script's options, and each benchmark's smoke run (tiny
settings, the real default model, as a subprocess) exits 0 and writes its files outside
benchmarks/results/. The twelve smoke runs took 262 s of CPU in all before audit_scale was added (its smoke run: about 10 s) (one thread each; of the engines run's local Ray,
only the processes the driver reaps are counted)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
README = BENCH / "README.md"
# A command as benchmarks/README.md writes it, in backticks (it may wrap onto the next line), perhaps after
# environment settings (`HGUARD_THREADS=1 .venv/bin/python ...`).
README_COMMAND = re.compile(r"`(?:[A-Z_]+=[^\s`]* )*(?:\.venv/bin/)?python benchmarks/(\w+)\.py([^`]*)`")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run_all = _script("run_all")
NAMES = sorted(run_all.BENCHMARKS)


def _readme_commands() -> list[tuple[str, tuple[str, ...]]]:
    return [(m.group(1), tuple(shlex.split(m.group(2)))) for m in README_COMMAND.finditer(README.read_text(encoding="utf-8"))]


def _parse_error(name: str, args: tuple[str, ...]) -> str | None:
    """argparse's message when ``args`` do not parse with the script's options, else None."""
    parser = _script(name).build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(list(args))
        except SystemExit:
            return err.getvalue().strip().splitlines()[-1]
    return None


def test_every_script_in_benchmarks_is_in_the_registry():
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")} - {"run_all"}  # _common: shared code
    assert sorted(scripts - set(run_all.BENCHMARKS)) == [], "add these scripts to BENCHMARKS in benchmarks/run_all.py"
    assert sorted(set(run_all.BENCHMARKS) - scripts) == [], "the registry names scripts that do not exist"


def test_the_readme_names_each_registered_command():
    readme = set(_readme_commands())
    missing = [shlex.join([f"benchmarks/{n}.py", *args]) for n in NAMES for args in run_all.BENCHMARKS[n].full
               if (n, args) not in readme]
    assert missing == [], "run_all.py runs these, but benchmarks/README.md does not name them"


def test_every_readme_command_parses():
    commands = _readme_commands()
    assert {n for n, _ in commands} == {*NAMES, "run_all"}  # every benchmark has its command in the README
    bad = {shlex.join([f"benchmarks/{n}.py", *a]): _parse_error(n, a) for n, a in commands}
    assert {c: e for c, e in bad.items() if e} == {}


@pytest.mark.parametrize("name", NAMES)
def test_the_smoke_commands_parse_and_write_outside_the_results(name):
    b = run_all.BENCHMARKS[name]
    assert b.smoke and b.writes
    for args in b.smoke:
        assert _parse_error(name, tuple(a.replace(run_all.OUT, "/nowhere") for a in args)) is None
        outs = [a for a in args if run_all.OUT in a]
        assert outs and all(a.startswith(run_all.OUT + "/") for a in outs), "a smoke run writes under its folder only"


def test_run_all_lists_the_commands_and_refuses_an_unknown_name():
    r = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--list"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [run_all.shown(c) for n in run_all.BENCHMARKS for c in run_all.commands(n, False)]
    r = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--smoke", "--only", "nope"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "--only names nope, which is not a benchmark" in r.stderr


def test_the_benchmarks_record_threads_and_load_and_write_their_results_one_way(tmp_path, monkeypatch):
    """An operators' finding: five scripts (audit_scale, domain_calibration, engines, review_page, screening) each
    read the load average and the thread setting and wrote their result file their own way (a final newline or
    none, threads as text or as a number). benchmarks/_common.py does it for all of them, their keys kept."""
    import numpy as np

    common = _script("_common")
    monkeypatch.setenv("HGUARD_THREADS", "2")
    assert common.threads() == 2 and common.threads(1) == 2
    monkeypatch.delenv("HGUARD_THREADS")
    assert common.threads() == "default" and common.threads(1) == 1
    load = common.load_average()
    assert len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)
    out = common.write_result(tmp_path / "new" / "r.json", {"threads": 1, "load_average": load, "auroc": np.float32(0.5),
                                                             "rows": [{"n": 2}]}, indent=2)
    text = out.read_text()
    assert out == tmp_path / "new" / "r.json" and text.endswith("}\n") and "\n  \"threads\": 1," in text
    assert json.loads(text) == {"threads": 1, "load_average": load, "auroc": 0.5, "rows": [{"n": 2}]}
    own = [p.name for p in BENCH.glob("*.py") if p.stem != "_common" and "getloadavg" in p.read_text(encoding="utf-8")]
    assert own == [], "read the load average with benchmarks._common.load_average"
    for name in ("audit_scale", "domain_calibration", "engines", "review_page", "screening"):
        assert _script(name).write_result.__module__ == "benchmarks._common", name  # the file it writes by


def _results_state() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in (BENCH / "results").iterdir()}


@pytest.mark.slow
@pytest.mark.default_model
@pytest.mark.parametrize("name", NAMES)
def test_smoke_run(name, tmp_path):
    b = run_all.BENCHMARKS[name]
    if b.shared_data and (why := run_all.shared_data_missing()):
        pytest.skip(f"{name} reads the public data sets: {why}")
    before = _results_state()
    r = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--smoke", "--only", name, "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
        env={**os.environ, "HGUARD_THREADS": os.environ.get("HGUARD_TEST_THREADS", "1")},
    )
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    for f in b.writes:
        assert json.loads((tmp_path / f).read_text(encoding="utf-8")), f"{f} is empty"
    assert _results_state() == before, "a smoke run touched benchmarks/results/"


def test_the_calibration_benchmark_tables_carry_class_counts_and_intervals():
    """A benchmark trial: benchmarks/calibration.py printed the held-out AUROCs with n alone ("| geography | 494 |
    0.645 | 0.904 | 0.902 |"), and the out-of-distribution shares without intervals, though report.json holds both."""
    from hguard import REFERENCE_PROBES
    from hguard.calibrate.report import ood_markdown

    report = json.loads((REFERENCE_PROBES / "report.json").read_text())
    _, table = _script("calibration").check_targets(report)
    geo = next(line for line in table.splitlines() if line.startswith("| geography "))
    ci = report["domains"]["geography"]["auroc_ci95"]["probe"]
    assert "| 494 (1 refusal) | 175 / 318 |" in geo and f"({ci[0]:.2f}-{ci[1]:.2f})" in geo
    chem = next(line for line in ood_markdown(report) if line.startswith("| chemistry "))
    assert "(29/1631; 0.012-0.025)" in chem and "(0/451; 0.000-0.008)" in chem
