"""scripts/floors.py: the lower bounds that scripts/check_floors.sh pins, read from the three pyproject files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _floors_module():
    spec = importlib.util.spec_from_file_location("floors", ROOT / "scripts" / "floors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_floors_reads_the_highest_lower_bound_of_each_requirement_and_leaves_torch_to_the_set_up():
    floors = _floors_module().floors
    got = floors(["a>=1.2,<2", "A_b[x]>=0.3", "a>=1.10.1", "c<3", "torch>=2.2,<3", "hguard>=0.3.0", "d==1.0"])
    assert got == {"a": "1.10.1", "a-b": "0.3"}


def test_every_declared_dependency_has_a_lower_bound_written_as_a_release():
    """A bound such as "regex>=2022.1" names no release: pinned at it, pip found nothing to install."""
    mod = _floors_module()
    reqs = mod.requirements()
    floors = mod.floors(reqs)
    named = {re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower().replace("_", "-") for r in reqs} - mod.SKIP
    assert named == set(floors), named - set(floors)  # each has a >= bound
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in floors.values()), floors


def test_a_floor_another_clause_excludes_is_refused_naming_it():
    """A review: "x>=0.14.21,!=0.14.21" pinned ==0.14.21, which its own requirement refuses (check_floors.sh would
    fail to resolve rather than say why)."""
    import pytest

    floors = _floors_module().floors
    assert floors(["x>=0.14.21,!=0.14.22,<0.15"]) == {"x": "0.14.21"}
    with pytest.raises(SystemExit, match=r"the floor x==0.14.21 is one that 'x>=0.14.21,!=0.14.21,<0.15' excludes"):
        floors(["x>=0.14.21,!=0.14.21,<0.15"])
    with pytest.raises(SystemExit, match="excludes"):
        floors(["y>=1.0,!=1.0.*"])
