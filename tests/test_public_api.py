"""The top-level ``hguard`` names as a user's code and type checker see them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hguard

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_and_is_listed():
    """help(hguard) and completion list the lazy names too (dir() left out 13 of __all__), and the route errors
    the README says to catch are exported (hguard.AbstainedError raised AttributeError)."""
    assert [n for n in hguard.__all__ if not hasattr(hguard, n)] == []
    assert set(hguard.__all__) <= set(dir(hguard))
    assert {"RouteError", "AbstainedError", "NeedsReviewError", "NothingToArchive"} <= set(hguard.__all__)
    assert issubclass(hguard.NeedsReviewError, hguard.RouteError)


@pytest.mark.slow
def test_a_type_checker_reads_the_top_level_names_as_their_classes(tmp_path):
    """The lazy names were ``Any`` to mypy (a module ``__getattr__``), so a user's strict type check passed
    ``Guard.invoke(123)`` and a misspelt method. The project's own mypy settings and cache (warm after
    ``make test``'s lint) read the user's file."""
    user = tmp_path / "service.py"
    user.write_text(
        "from hguard import Guard, GuardResult, NeedsReviewError\n\n\n"
        "def ask(g: Guard) -> GuardResult | None:\n"
        "    try:\n"
        "        return g.invoke(123)\n"
        "    except NeedsReviewError:\n"
        "        return g.invok('x')\n"
    )
    out = subprocess.run([sys.executable, "-m", "mypy", str(user)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'Argument 1 to "invoke" of "Guard" has incompatible type "int"; expected "str"' in out.stdout, out.stdout
    assert '"Guard" has no attribute "invok"' in out.stdout, out.stdout


def test_a_submodule_the_readme_names_is_reached_after_a_plain_import():
    """A README walk-through: `hguard.models.load_model("default")` after a plain `import hguard` raised
    AttributeError (it worked only where something had imported hguard.models already). A fresh interpreter reaches
    the public submodules; a missing name is still an AttributeError."""
    code = ("import hguard, sys; print(hguard.models.load_model.__module__, hguard.policy.load_policy.__name__); "
            "print(hasattr(hguard, 'nope'), hasattr(hguard, '_not_a_module'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["hguard.models", "load_policy", "False", "False"]
