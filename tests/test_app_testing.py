"""What an application's own tests get from hguard.testing (an application team's trial): the README's recipe runs as
written, the test guard takes the route asked for while still scoring every answer on the tiny model only, and its
probes are calibrated once into a folder shared by concurrent workers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import hguard.testing as testing
from hguard.errors import InputError
from hguard.testing import tiny_guard, tiny_probes

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Testing an application that uses hguard"


def _readme_files() -> dict[str, str]:
    """The files the README's section writes, by the name its first line gives ("# conftest.py")."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):text.index("\n## ", text.index(SECTION) + 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {block.splitlines()[0].removeprefix("# "): block for block in blocks}


def test_every_public_helper_is_in_all():
    """log_decision and guard_queue were defined in hguard.testing but left out of its __all__."""
    public = {name for name, value in vars(testing).items()
              if not name.startswith("_") and callable(value) and getattr(value, "__module__", "") == testing.__name__}
    assert public <= set(testing.__all__), public - set(testing.__all__)
    assert {"log_decision", "guard_queue", "tiny_guard", "tiny_probes", "tiny_policy", "ROUTES"} <= set(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)


def test_the_readmes_recipe_runs_as_written(tiny_calibrated, tmp_path):
    """The README's conftest.py and test module, run by pytest in a project of their own with a CI key in the
    environment (which would refuse the unsigned tiny probes without the test policy's setting). The probe folder is
    the session's (made by the same tiny_probes), put where the recipe keeps it: reused, not calibrated again."""
    files = _readme_files()
    assert set(files) == {"conftest.py", "test_service.py"}, set(files)
    app = tmp_path / "app"
    app.mkdir()
    for name, code in files.items():
        (app / name).write_text(code, encoding="utf-8")
    (app / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    cached = app / ".pytest_cache" / "d" / "hguard-tiny"
    shutil.copytree(tiny_calibrated[1], cached)
    made = (cached / "probes" / "alpha.json").stat().st_mtime_ns
    env = {**os.environ, "HGUARD_KEY": "k" * 40, "OMP_NUM_THREADS": "1"}
    env.pop("HGUARD_KEY_FILE", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"],
                         cwd=app, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    assert (cached / "probes" / "alpha.json").stat().st_mtime_ns == made  # reused
    assert not list(app.glob("hguard-*"))  # nothing written where the tests ran


def test_the_test_guard_scores_on_the_tiny_model_only_and_routes_as_asked(tiny_calibrated, tmp_path):
    """A forced route is no way to accept unscored answers: the answer is scored by the tiny probe, the record names
    the tiny model, a request it cannot score still goes to review, and no other model can be given."""
    folder = tiny_calibrated[1]
    for route in ("accept", "review", "abstain"):
        g = tiny_guard(folder, tmp_path / route, route)
        r = g.invoke("what is the capital of france ?", domain="alpha")
        assert r.route == route and r.signals.get("neuron_risk") is not None, (route, r.reasons)
        record = json.loads((tmp_path / route / "audit.jsonl").read_text().splitlines()[-1])
        assert record["model"] == "tiny-llama" and record["model_source"] == "tiny:llama", record
        assert record.get("spot_check_rate", 0.0) == 0.0 and (route != "accept" or "spot_check_rate" in record)
    with warnings.catch_warnings(record=True) as said:  # what every tiny guard would say at start is not said
        warnings.simplefilter("always")
        g = tiny_guard(folder, tmp_path / "accept", "accept")
    assert [str(w.message) for w in said] == []
    assert g.invoke("what is the capital of france ?", domain="gamma").route == "review"  # unscored: never accepted
    assert g.invoke("what is the capital of france ?", domain="alpha", system="another prompt").route == "review"
    for key in ("lm", "model"):
        with pytest.raises(InputError, match=rf"tiny_guard runs only hguard.testing.tiny_model\(arch, seed\), not a {key}"):
            tiny_guard(folder, tmp_path / "other", **{key: "default"})
    with pytest.raises(InputError, match=r"route 'acept' is not one a test guard forces; pass one of accept, review, abstain"):
        tiny_guard(folder, tmp_path / "typo", "acept")


def test_tiny_probes_never_empties_a_folder_of_yours(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match=r"holds files tiny_probes did not write \(notes.txt\); give it a folder of its own"):
        tiny_probes(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    # a review's finding: what `hguard calibrate --data data.jsonl --out probes` leaves has tiny_probes' own names, and
    # was deleted; a folder without tiny_probes' mark is the user's, whatever its files are named
    (tmp_path / "cal" / "probes").mkdir(parents=True)
    (tmp_path / "cal" / "data.jsonl").write_text('{"id": "mine"}')
    (tmp_path / "cal" / "probes" / "finance.json").write_text("{}")
    with pytest.raises(InputError, match=r"holds files tiny_probes did not write \(data.jsonl, probes\)"):
        tiny_probes(tmp_path / "cal")
    assert (tmp_path / "cal" / "data.jsonl").read_text() == '{"id": "mine"}'
    assert (tmp_path / "cal" / "probes" / "finance.json").read_text() == "{}"
    with pytest.raises(InputError, match=r"no tiny model of architecture 'llama3'"):
        tiny_probes(tmp_path / "new", arch="llama3")


CALIBRATE = """
import os, sys, warnings
warnings.simplefilter("ignore")
from hguard.testing import tiny_probes
probes = tiny_probes(sys.argv[1])
print(os.stat(os.path.join(sys.argv[1], "hguard-tiny.json")).st_mtime_ns, sorted(os.listdir(probes)))
"""


@pytest.mark.slow
def test_workers_starting_at_once_share_one_calibration(tmp_path):
    """Two pytest-xdist workers (processes) asking for one empty folder at once: one calibrates while the other waits,
    and both get the same finished probes (the marker written once); a third, later, reuses them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    folder = str(tmp_path / "shared")
    runs = [subprocess.Popen([sys.executable, "-c", CALIBRATE, folder], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in runs]
    assert all(p.returncode == 0 for p in runs), [e[-2000:] for _, e in outs]
    said = {out.strip() for out, _ in outs}
    assert len(said) == 1 and "alpha.json" in said.pop(), outs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = tiny_guard(folder, tmp_path / "runs", "review")
    assert g.invoke("what is the capital of france ?", domain="alpha").route == "review"
