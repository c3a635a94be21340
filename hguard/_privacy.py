"""Private text on disk: the file mode of the files that hold questions and answers (the audit log,
its anchor, the review queue) and the one redacted form of a text (its sha256)."""

from __future__ import annotations

import hashlib
from typing import Any

from ._json import canonical_json

__all__ = ["FILE_MODE", "private_mode", "redacted", "umask"]

FILE_MODE = 0o640  # questions and answers can be private: no world read


def umask() -> int:
    """The process's umask (read by setting it and back: there is no other way to read it)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def private_mode(mode: int = FILE_MODE) -> int:
    """``mode`` as a file created with it gets it: narrowed by the umask, never widened (a file written through a
    temporary one and chmod'ed took 0640 where the umask asked for 0600)."""
    return mode & ~umask()


def redacted(value: Any) -> dict[str, str] | None:
    """``{"sha256": hex}`` of a text (of its canonical JSON for any other value) in place of the value
    itself; None stays None."""
    if value is None:
        return None
    data = value if isinstance(value, str) else canonical_json(value)
    return {"sha256": hashlib.sha256(data.encode("utf-8")).hexdigest()}
