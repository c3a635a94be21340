"""JSON for data hguard stores: the one JSON-safe copy of caller data (audit records, review items,
framework data from the adapters, probe files) and the one canonical serialisation hashes are
computed over."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal
from uuid import UUID

from .errors import InputError

__all__ = ["canonical_json", "json_safe"]

_REPR_LIMIT = 200


def canonical_json(obj: Any) -> str:
    """The one serialisation hashes are computed over: sorted keys, no spaces, UTF-8 text kept, and
    no NaN or infinity (ValueError)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_safe(
    value: Any,
    path: str = "value",
    *,
    what: str = "value",
    nonfinite: Literal["null", "raise", "keep"] = "null",
    nonfinite_paths: list[str] | None = None,
    lenient: bool = False,
    max_depth: int = 6,
) -> Any:
    """A copy of ``value`` made of plain JSON types: dicts with str keys, lists (from lists and
    tuples), str, int, float, bool and None.

    numpy and torch scalars and arrays become plain numbers and lists (duck-typed, neither library is
    imported); a str subclass (a str enum) becomes a plain str.

    ``nonfinite`` says what a NaN or infinite number becomes: ``"null"`` (None, its path appended to
    ``nonfinite_paths`` when given), ``"raise"`` (InputError) or ``"keep"`` (left as it is, for data
    that a later ``json_safe`` call reports).

    Strict (the default), anything JSON cannot hold raises InputError naming ``what`` and the value's
    path (``signals.trace[1]``): a value of another type, a key that is not a str, a string that is not
    valid Unicode (a lone surrogate), or a container that contains itself.

    ``lenient=True`` never raises, for framework data recorded as it is: keys become ``str(key)``, a UUID
    its string, any other value and any container nested deeper than ``max_depth`` or containing itself
    its repr cut to 200 characters; strings are kept as they are, a lone surrogate written as its escape
    (``\\udcff``).
    """
    if nonfinite not in ("null", "raise", "keep"):
        raise InputError(f"nonfinite must be 'null', 'raise' or 'keep', got {nonfinite!r}")
    seen: set[int] = set()

    def fail(where: str, problem: str) -> InputError:
        return InputError(f"{what} {where!r} {problem}")

    def walk(v: Any, where: str, depth: int) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            if lenient:  # a lone surrogate (undecodable input) kept visible as an escape, so the record can be written
                return v.encode("utf-8", "backslashreplace").decode("utf-8")
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                raise fail(
                    where,
                    f"holds a string that is not valid Unicode ({e.reason} at position {e.start}: "
                    f"{v[max(0, e.start - 20):e.start + 20]!r}); remove the lone surrogate, "
                    "e.g. with s.encode('utf-8', 'replace').decode()",
                ) from None
            return str.__str__(v)  # a plain str, so str enums serialise as their value
        if type(v).__module__.split(".")[0] in ("numpy", "torch") and hasattr(v, "tolist"):
            return walk(v.tolist(), where, depth)
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            f = float(v)
            if math.isfinite(f) or nonfinite == "keep":
                return f
            if nonfinite == "raise":
                raise fail(where, f"= {f!r} is not finite and JSON cannot hold it; store None or a string")
            if nonfinite_paths is not None:
                nonfinite_paths.append(where)
            return None
        if isinstance(v, (Mapping, list, tuple)):
            if id(v) in seen or (lenient and depth > max_depth):
                if lenient:
                    return repr(v)[:_REPR_LIMIT]
                raise fail(where, "contains itself; pass a tree of plain values, not a cycle")
            seen.add(id(v))
            try:
                if isinstance(v, Mapping):
                    out: dict[str, Any] = {}
                    for k, item in v.items():
                        if not isinstance(k, str):
                            if not lenient:
                                raise fail(
                                    where,
                                    f"has a key {k!r} of type {type(k).__name__}; JSON keys must be strings, "
                                    "so convert the key with str() first",
                                )
                            k = str(k)
                        out[k] = walk(item, f"{where}.{k}", depth + 1)
                    return out
                return [walk(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(v)]
            finally:
                seen.discard(id(v))
        if lenient:
            return str(v) if isinstance(v, UUID) else repr(v)[:_REPR_LIMIT]
        raise fail(
            where,
            f"holds a {type(v).__name__} ({v!r:.80}) that JSON cannot store; "
            "convert it to a str, number, bool, None, list or dict first",
        )

    return walk(value, path, 0)
