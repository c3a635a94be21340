"""The lowest versions hguard and its adapters declare they accept, as pins (``name==version``), one a line.

``bash scripts/check_floors.sh`` installs the wheels under these pins into a fresh environment and runs the demo
and both RAG examples there, so that a lower bound in a ``pyproject.toml`` is one that was seen to work. Read from
the three ``pyproject.toml`` files: the core's dependencies and the extras the README installs (``embeddings``,
``review``, ``langchain``, ``llama-index``), and the adapters' dependencies. torch is left out (the set-up pins
the build for the machine) and so is hguard itself.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

try:
    from packaging.specifiers import SpecifierSet
except ImportError:  # a bare Python: pip's own copy (check_floors.sh runs this before any venv exists)
    from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("embeddings", "review", "langchain", "llama-index")
SKIP = {"torch", "hguard"}


def requirements() -> list[str]:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(core["dependencies"]) + [r for e in EXTRAS for r in core["optional-dependencies"][e]]
    for adapter in ("langchain", "llama_index"):
        reqs += tomllib.loads((ROOT / "integrations" / adapter / "pyproject.toml").read_text(encoding="utf-8"))[
            "project"]["dependencies"]
    return reqs


def floors(reqs: list[str]) -> dict[str, str]:
    """``name -> lowest version`` of each requirement with a ``>=`` bound (the highest bound when named twice)."""
    out: dict[str, str] = {}
    for req in reqs:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", req)
        if m is None:
            raise SystemExit(f"cannot read the requirement {req!r}")
        name, spec = m.group(1).lower().replace("_", "-"), m.group(2)
        low = re.search(r">=\s*([0-9][0-9A-Za-z.]*)", spec)
        if name in SKIP or low is None:
            continue
        version = low.group(1)
        if name not in out or _key(version) > _key(out[name]):
            out[name] = version
    for req in reqs:  # a floor another clause excludes ("x>=1.0,!=1.0") would be a pin its own requirement refuses
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", req)
        name, spec = m.group(1).lower().replace("_", "-"), m.group(2).split(";")[0].strip()  # type: ignore[union-attr]
        if name in out and spec and not SpecifierSet(spec).contains(out[name], prereleases=True):
            raise SystemExit(f"the floor {name}=={out[name]} is one that {req!r} excludes: raise its lower bound to a "
                             "release it allows")
    return out


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


if __name__ == "__main__":
    for name, version in sorted(floors(requirements()).items()):
        sys.stdout.write(f"{name}=={version}\n")
