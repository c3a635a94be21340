"""The one JSON-safe copy (hguard._json.json_safe) and the redacted form of private text (hguard._privacy)."""

from __future__ import annotations

import enum
import hashlib
import json
import math
import uuid

import numpy as np
import pytest
import torch

from hguard._json import canonical_json, json_safe
from hguard._privacy import redacted
from hguard.errors import InputError


class Colour(str, enum.Enum):
    RED = "red"


def test_plain_values_and_array_types_become_plain_json():
    data = {
        "f32": np.float32(0.25),
        "i64": np.int64(3),
        "b": np.bool_(True),
        "arr": np.arange(3),
        "grid": np.ones((2, 2), dtype=np.float16),
        "t": torch.tensor([0.5, 1.5]),
        "t0": torch.tensor(2),
        "tuple": (1, "a", None, False),
        "enum": Colour.RED,
    }
    out = json_safe(data)
    assert out == {
        "f32": 0.25, "i64": 3, "b": True, "arr": [0, 1, 2], "grid": [[1.0, 1.0], [1.0, 1.0]],
        "t": [0.5, 1.5], "t0": 2, "tuple": [1, "a", None, False], "enum": "red",
    }  # fmt: skip
    assert type(out["enum"]) is str and type(out["i64"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)  # really JSON


def test_nonfinite_values_are_nulled_and_named_or_refused_or_kept():
    paths: list[str] = []
    value = {"score": math.nan, "s": {"a": np.float64("inf"), "trace": [1.0, -math.inf]}, "arr": np.array([np.nan])}
    assert json_safe(value, "rec", nonfinite_paths=paths) == {
        "score": None, "s": {"a": None, "trace": [1.0, None]}, "arr": [None]
    }
    assert paths == ["rec.score", "rec.s.a", "rec.s.trace[1]", "rec.arr[0]"]
    assert json_safe([math.nan]) == [None]  # nulled also when nobody collects the paths
    with pytest.raises(InputError, match=r"probe file entry 'metadata.x\[1\]' = nan is not finite"):
        json_safe({"x": [0.0, np.float32("nan")]}, "metadata", what="probe file entry", nonfinite="raise")
    kept = json_safe({"x": math.inf}, nonfinite="keep")
    assert kept["x"] == math.inf


def test_cycles_bad_keys_unknown_types_and_bad_unicode_name_their_path():
    loop: dict = {"a": {}}
    loop["a"]["self"] = loop["a"]
    with pytest.raises(InputError, match=r"audit record field 'rec.a.self' contains itself"):
        json_safe(loop, "rec", what="audit record field")
    shared = [1]
    assert json_safe({"x": shared, "y": shared}) == {"x": [1], "y": [1]}  # shared, not cyclic
    with pytest.raises(InputError, match=r"'v' has a key 3 of type int; JSON keys must be strings"):
        json_safe({3: 1.0}, "v")
    with pytest.raises(InputError, match=r"'v.obj' holds a object .* that JSON cannot store"):
        json_safe({"obj": object()}, "v")
    with pytest.raises(InputError, match=r"'v' holds a set"):
        json_safe({1, 2}, "v")
    with pytest.raises(InputError, match=r"'v\[0\]' holds a string that is not valid Unicode"):
        json_safe(["bad \ud800 surrogate"], "v")
    with pytest.raises(InputError, match="nonfinite must be"):
        json_safe(1.0, nonfinite="drop")


def test_lenient_copy_never_raises():
    u = uuid.UUID(int=7)
    loop: list = []
    loop.append(loop)
    deep: dict = {}
    node = deep
    for _ in range(10):
        node["n"] = {}
        node = node["n"]
    out = json_safe({1: u, "obj": object(), "loop": loop, "deep": deep, "nan": math.nan}, lenient=True, nonfinite="keep")
    assert out["1"] == str(u)
    assert out["obj"].startswith("<object object")
    assert out["loop"] == ["[[...]]"]  # the cycle is cut at its repr
    cut = out["deep"]  # depth 1 (the top dict is depth 0)
    for _ in range(5):
        cut = cut["n"]
    assert isinstance(cut, dict)  # depth 6 = max_depth: still walked
    assert isinstance(cut["n"], str) and len(cut["n"]) <= 200  # deeper: its repr
    assert math.isnan(out["nan"])


def test_canonical_json_and_redaction():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    with pytest.raises(ValueError):
        canonical_json({"a": math.nan})
    assert redacted("q") == {"sha256": hashlib.sha256(b"q").hexdigest()}
    assert redacted(["q"]) == {"sha256": hashlib.sha256(b'["q"]').hexdigest()}
    assert redacted(None) is None
