"""What the benchmarks share (not a benchmark: run_all.py's registry skips a module whose name starts with "_"):
the conditions a run was measured under and the writing of its result file, one way for every script.

The machine is shared: the load average says what else ran beside a measurement, and the thread setting how many
threads torch was given. A script imports these after putting the repository on ``sys.path``
(``from benchmarks._common import ...``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def threads(default: int | str = "default") -> int | str:
    """The thread setting a run was measured under: ``$HGUARD_THREADS`` (a whole number as a number), or ``default``
    where it is unset (``"default"``: torch's own count; a script that sets torch's threads to 1 without it passes 1)."""
    value = os.environ.get("HGUARD_THREADS", "").strip()
    if not value:
        return default
    return int(value) if value.isdigit() else value


def load_average() -> list[float]:
    """The machine's load average now, over 1, 5 and 15 minutes."""
    return list(os.getloadavg())


def write_result(path: str | os.PathLike[str], result: dict[str, Any], *, indent: int = 1, echo: bool = False) -> Path:
    """Write a benchmark's ``result`` as JSON (numpy numbers as floats, a final newline) to ``path``, its folder
    created; ``echo``: print it too. Returns the path."""
    path = Path(path)
    text = json.dumps(result, indent=indent, default=float) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if echo:
        print(text, end="")
    return path
