"""Files the installed package ships and where hguard writes by default.

The default policy and the reference probes for the embedded default model are package data
(``hguard/_data``), so an installed wheel runs ``hguard demo`` and ``Guard.from_policy()`` without a
source checkout. Logs, queues and demo output go to a per-user state folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "_data"
DEFAULT_POLICY = DATA_DIR / "policy.toml"
REFERENCE_PROBES = DATA_DIR / "probes" / "smollm2-135m"


def state_dir() -> Path:
    """Where hguard writes by default (demo runs): ``$HGUARD_STATE_DIR`` or ``~/.local/state/hguard``."""
    env = os.environ.get("HGUARD_STATE_DIR")
    return Path(env).expanduser() if env else Path("~/.local/state/hguard").expanduser()


def policy_copy(folder: str | os.PathLike[str], *, source: str | os.PathLike[str] = DEFAULT_POLICY) -> Path:
    """Write ``source`` (the default policy) into ``folder`` as YAML, its probe folder absolute and its
    audit log and review queue inside ``folder``; returns the new file. For trying the policy, tests
    and benchmarks without touching the default state folder."""
    import yaml

    from .policy import load_policy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = load_policy(source).model_dump(mode="json")
    data["audit"]["path"] = str(folder / "audit.jsonl")
    data["review"]["queue"] = str(folder / "review.sqlite3")
    out = folder / "policy.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


__all__ = ["DATA_DIR", "DEFAULT_POLICY", "REFERENCE_PROBES", "policy_copy", "state_dir"]
