"""The README's install steps and snippets: what a snippet imports is installed by a step it names."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_readme_snippet_names_the_install_of_a_package_hguard_does_not_bring():
    """A legal team's trial: the README's "audit log in a DataFrame" snippet imports pandas, which no install step
    or extra provides (`import pandas` failed in the README's own environment). Each Python block of the README
    imports the standard library, hguard, or what pyproject.toml lists (its dependencies and extras), else it says
    `pip install NAME` itself."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    provided = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("-", "_") for r in listed}
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    unlisted = []
    for block in blocks:
        for name in re.findall(r"^\s*(?:import|from)\s+(\w+)", block, flags=re.M):
            if name in sys.stdlib_module_names or name == "hguard" or name.lower() in provided:
                continue
            if f"pip install {name}" not in block:
                unlisted.append(name)
    assert "pandas" not in provided  # else the snippet need not say it: drop the note, or this test's premise
    assert blocks and unlisted == []

