"""The README's install steps and snippets: what a snippet imports is installed by a step it names, and the pip
section's torch line gets the build it says it gets."""

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


def test_the_pip_sections_cpu_torch_comes_from_pytorchs_cpu_index():
    """A legal team's trial: the README's `pip install torch==2.13.0  # the CPU build` got the CPU build only because
    that machine held a local CPU wheel; on PyPI for Linux x86_64 the same command takes the CUDA build (GBs). A line
    that says it installs the CPU build names PyTorch's CPU index (pytorch.org's own pip command for Compute Platform
    CPU), at the version make setup installs."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Installing with pip"):]
    (block,) = re.findall(r"```sh\n(.*?)```", section[:section.index("\n### ", 5)], flags=re.S)
    torch_lines = [line for line in block.splitlines() if re.match(r"pip install .*\btorch==", line)]
    cpu = [line for line in torch_lines if "CPU build" in line]
    assert cpu and all("--index-url https://download.pytorch.org/whl/cpu" in line for line in cpu), torch_lines
    (pinned,) = re.findall(r'install -q "torch==([\d.]+)"', (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8"))
    assert all(f"torch=={pinned} " in line for line in torch_lines), (pinned, torch_lines)
