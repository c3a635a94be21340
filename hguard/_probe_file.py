"""The probe file: its JSON document, content hash, signature and the checks made when it is read.

The document is ``{"format", "version", "params", "model", "metadata", "probe_id"[, "signature"]}``;
``metadata`` is the calibrated domain's record (:class:`hguard.domain.CalibratedDomain` reads and
writes it), and everything else is the fitted probe.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ._json import canonical_json
from ._numerics import finite_number
from ._privacy import private_mode
from .errors import InputError, ProbeError, ProbeMismatchError, cut_text

FORMAT_NAME = "hguard.h_neuron_probe"
FORMAT_VERSION = 1

_FINGERPRINT_FIXES = {
    "model_fingerprint": "for this model",
    "chat_template_fingerprint": "for this chat template",
    "system_prompt_fingerprint": "with this system prompt",
}


# ---------------------------------------------------------------------------------- fingerprints


def _differs(metadata: Mapping[str, Any], key: str, expected) -> bool:
    return expected is not None and (key not in metadata or metadata[key] != expected)


def check_fingerprints(metadata: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between a probe's metadata and the running setup.

    ``expected`` maps keys (``model_fingerprint``, ``chat_template_fingerprint``,
    ``system_prompt_fingerprint``, or any other metadata key) to the running values; a value of None
    means "unknown here" and is not checked. A key the probe lacks is a difference. An empty list
    means the probe matches.
    """
    problems = []
    for key, want in expected.items():
        if want is None:
            continue
        fix = f" ({FINGERPRINT_FIXES[key]})" if key in FINGERPRINT_FIXES else ""
        if key not in metadata:
            problems.append(f"{key}: the probe records none, this setup has {want!r}{fix}")
        elif metadata[key] != want:
            problems.append(f"{key}: the probe was calibrated with {metadata[key]!r}, this setup has {want!r}{fix}")
    return problems


# What to do about each kind of fingerprint difference (a hash alone says only that something differs).
FINGERPRINT_FIXES = {
    "system_prompt_fingerprint": "the answer was asked under another system prompt than the calibration's (the "
    "record's generation.system_prompt: a call's system message, or an app's instruction read from the RAG template "
    "around the passages and the question): use the calibration's ([generation] system_prompt, or none in the call) "
    "or recalibrate with `--system-prompt`",
    "chat_template_fingerprint": "the model's chat template differs from the calibration's: serve the model the probe "
    "was calibrated on, or recalibrate",
    "model_fingerprint": "another model file than the calibration's: serve that model, or recalibrate for this one",
    "history_fingerprint": "a conversation history, which a single-turn calibration does not cover",
    "context_prompt_fingerprint": "another prompt for requests with context than the calibration's: recalibrate",
}


# ------------------------------------------------------------------------------------------- JSON


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text} overflows to {value}")
    return value


#: metadata the probe_id leaves out: when and on what run the probe was fitted, not what was fitted
_NOT_HASHED = ("created", "fitted_with")


def _probe_id(doc: Mapping[str, Any], *, legacy: bool = False) -> str:
    """The probe's content hash: what was fitted (params, model, metadata), not when, how fast or on what run
    (``created``, the timings, ``fitted_with``: two calibrations of the same shards with the same seed get one id,
    whatever batch size a rerun that read every answer back was given). ``legacy``: the hash of hguard 0.3.0 and
    before, over the timings too, which a file written then still carries."""
    # Python's float repr round-trips, so the hash of the re-read document equals the saved one.
    body = {k: doc[k] for k in ("format", "version", "params", "model", "metadata")}
    if not legacy:
        body["metadata"] = _without_timings({k: v for k, v in body["metadata"].items() if k not in _NOT_HASHED})
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:16]


def _without_timings(value: Any) -> Any:
    """``value`` without its ``*_seconds`` entries, at any depth."""
    if isinstance(value, Mapping):
        return {k: _without_timings(v) for k, v in value.items() if not str(k).endswith("_seconds")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _signature(doc: Mapping[str, Any], key: bytes) -> dict:
    from .integrity import SIGNATURE_ALG, key_id, mac_hex

    body = {k: v for k, v in doc.items() if k != "signature"}
    return {"alg": SIGNATURE_ALG, "key_id": key_id(key), "mac": mac_hex(key, canonical_json(body).encode("utf-8"))}


def _check_signature(doc: Mapping[str, Any], path: Path, key: bytes | None, required: bool) -> None:
    """ProbeError unless the document's signature checks under key (or no key is given and none is required)."""
    from .integrity import KEY_FILE_ENV, SIGNATURE_ALG, key_id, mac_matches

    where = f"probe file {str(path)!r}"
    sig = doc.get("signature")
    if key is None:
        if required:
            raise ProbeError(
                f"{where} cannot be checked: signed probes are required ([integrity] require_signed_probes) but no "
                f"key is configured; set {KEY_FILE_ENV} or [integrity] key_file to the key calibration signed with"
            )
        return
    if sig is None:
        if required:
            raise ProbeError(
                f"{where} is not signed, and signed probes are required; recalibrate with {KEY_FILE_ENV} set "
                "(calibration signs with it), or set [integrity] require_signed_probes = false"
            )
        return
    if not isinstance(sig, dict) or sig.get("alg") != SIGNATURE_ALG or not isinstance(sig.get("mac"), str):
        raise ProbeError(f"{where} has a malformed signature ({sig!r:.80}); restore the file or recalibrate")
    body = {k: v for k, v in doc.items() if k != "signature"}
    if not mac_matches(key, canonical_json(body).encode("utf-8"), sig["mac"]):
        if sig.get("key_id") != key_id(key):
            raise ProbeError(
                f"{where} was signed with another key (key id {sig.get('key_id')!r:.40}, the configured key's is "
                f"{key_id(key)!r}); configure the key it was calibrated with, or recalibrate"
            )
        raise ProbeError(
            f"{where} fails its signature: it was changed after calibration signed it; restore the original "
            "file or recalibrate (never edit probe files by hand)"
        )


def _from_document(doc, path: Path, cls):
    where = f"probe file {str(path)!r}"

    def fail(what: str):
        raise ProbeError(f"{where}: {what}; the file is damaged or from another tool: restore it or recalibrate")

    if not isinstance(doc, dict):
        fail(f"top level is a {type(doc).__name__}, not an object")
    if doc.get("format") != FORMAT_NAME:
        fail(f"format is {doc.get('format')!r}, expected {FORMAT_NAME!r}")
    if doc.get("version") != FORMAT_VERSION:
        raise ProbeError(
            f"{where} has format version {doc.get('version')!r}; this hguard reads version {FORMAT_VERSION}: "
            "upgrade hguard or recalibrate the domain"
        )
    for key, typ in (("params", dict), ("model", dict), ("metadata", dict), ("probe_id", str)):
        if not isinstance(doc.get(key), typ):
            fail(f"{key!r} is missing or not a {typ.__name__}")
    actual = _probe_id(doc)
    if actual != doc["probe_id"] and _probe_id(doc, legacy=True) != doc["probe_id"]:
        raise ProbeError(
            f"{where} was modified after it was saved: it says probe_id {doc['probe_id']!r} but its content hashes "
            f"to {actual!r}; restore the original file or recalibrate (never edit probe files by hand)"
        )
    m = doc["model"]

    def get(key, check, what):
        if key not in m or not check(m[key]):
            fail(f"model[{key!r}] is missing or not {what} (found {m.get(key)!r:.60})")
        return m[key]

    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    is_num = lambda v: finite_number(v) is not None  # noqa: E731
    nums = lambda v: isinstance(v, list) and all(is_num(x) for x in v)  # noqa: E731

    n_features = get("n_features_in", lambda v: is_int(v) and v > 0, "a positive int")
    n_layers = get("n_layers", lambda v: is_int(v) and v > 0, "a positive int")
    d_ff = get("d_ff", lambda v: is_int(v) and v > 0, "a positive int")
    if n_layers * d_ff != n_features:
        fail(f"n_layers {n_layers} x d_ff {d_ff} != n_features_in {n_features}")
    classes = get("classes", lambda v: isinstance(v, list) and len(v) == 2, "a list of two labels")
    idx = get("feature_indices", lambda v: isinstance(v, list) and all(is_int(i) for i in v), "a list of ints")
    k = len(idx)
    weights = get("weights", lambda v: nums(v) and len(v) == k, f"{k} numbers")
    center = get("center", lambda v: nums(v) and len(v) == k, f"{k} numbers")
    scale = get("scale", lambda v: nums(v) and len(v) == k and all(s > 0 for s in v), f"{k} numbers > 0")
    if any(not 0 <= i < n_features for i in idx) or any(a >= b for a, b in zip(idx, idx[1:])):
        fail(f"feature_indices are not strictly increasing within 0..{n_features - 1}")
    intercept = get("intercept", is_num, "a number")
    n_iter = get("n_iter", lambda v: is_int(v) and v >= 0, "an int >= 0")
    Cs = get("Cs", lambda v: nums(v) and len(v) > 0, "a list of numbers")
    C = get("C", is_num, "a number")
    best_C = get("best_C", is_num, "a number")
    one_se_C = get("one_se_C", is_num, "a number")
    cv_results = get("cv_results", lambda v: isinstance(v, dict), "an object")
    length = m.get("length")
    if length is not None and not (
        isinstance(length, dict) and all(is_num(length.get(x)) for x in ("center", "scale", "weight"))
        and length["scale"] > 0
    ):
        fail(f"model['length'] is not null or an object with numeric center, scale > 0, weight (found {length!r:.60})")

    try:
        probe = cls(**doc["params"])
        probe._validate_params()
    except (TypeError, InputError) as e:
        fail(f"params are not valid for {cls.__name__} ({e})")
    if probe.length_control != (length is not None):
        fail(f"length_control={probe.length_control!r} but the length section is {length!r:.60}")
    probe.classes_ = np.asarray(classes)
    probe.n_features_in_ = n_features
    probe.n_layers_, probe.d_ff_ = n_layers, d_ff
    probe.Cs_ = np.asarray(Cs, dtype=np.float64)
    probe.C_, probe.best_C_, probe.one_se_C_ = float(C), float(best_C), float(one_se_C)
    probe.cv_results_ = cv_results
    probe.feature_indices_ = np.asarray(idx, dtype=np.int64)
    probe.weights_ = np.asarray(weights, dtype=np.float64)
    probe.center_ = np.asarray(center, dtype=np.float64)
    probe.scale_ = np.asarray(scale, dtype=np.float64)
    probe.intercept_ = float(intercept)
    probe.n_iter_ = np.array([n_iter])
    if length is None:
        probe.length_center_ = probe.length_scale_ = probe.length_weight_ = None
    else:
        probe.length_center_ = float(length["center"])
        probe.length_scale_ = float(length["scale"])
        probe.length_weight_ = float(length["weight"])
    probe.probe_id_ = doc["probe_id"]
    probe.metadata_ = doc["metadata"]
    return probe


def probe_path(path: Any) -> Path:
    """``path`` of a probe file as a Path, or ProbeError naming a value that is not a path (load(5) failed in pathlib
    with a bare TypeError)."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ProbeError(f"a probe file path must be a non-empty str or os.PathLike, got {type(path).__name__} "
                         f"{cut_text(repr(path), 60)}; pass the path of a probe file `hguard calibrate --out` wrote")
    return Path(path)


def read_document(path: Path) -> dict:
    """The parsed JSON of a probe file, or ProbeError saying why it cannot be read."""
    try:
        if path.is_dir():  # the probe folder given for one of its files: "not a regular file" named no fix
            names = sorted(p.name for p in path.glob("*.json") if p.name != "report.json")
            eg = str(path / names[0]) if names else str(path / "<domain>.json")
            raise ProbeError(f"probe file {str(path)!r} is a folder; name a probe file in it (e.g. {eg!r}), or give the "
                             "folder to the policy's probes")
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            raise ProbeError(f"probe file {str(path)!r} is not a regular file; put the probe's JSON file there")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ProbeError(f"probe file {str(path)!r} does not exist; calibrate the domain with `hguard calibrate`") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ProbeError(f"probe file {str(path)!r} cannot be read ({e}); restore it or recalibrate the domain") from e
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as e:
        raise ProbeError(
            f"probe file {str(path)!r} is not valid JSON ({e}); it is truncated or damaged: restore it or recalibrate"
        ) from e


def write_document(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path``, replacing it atomically, readable by its owner and group (``FILE_MODE``, narrowed by the umask): a probe
    file holds its calibration's questions in clear (``router_questions``), live questions among them where a team
    recalibrates from its review export."""
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.chmod(tmp, private_mode())  # mkstemp's 0600 would keep a shared probe from its group; 0644 showed it to all
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mismatch_error(path: Path, metadata: Mapping[str, Any], expect: Mapping[str, Any]) -> ProbeMismatchError | None:
    """The error for a probe calibrated under another setup than ``expect`` (None when it matches)."""
    problems = check_fingerprints(metadata, expect)
    if not problems:
        return None
    domain = metadata.get("domain")
    how = " and ".join(
        _FINGERPRINT_FIXES[k] for k in expect if k in _FINGERPRINT_FIXES and _differs(metadata, k, expect[k])
    )
    cmd = f"hguard calibrate --domain {domain}" if isinstance(domain, str) else "hguard calibrate"
    return ProbeMismatchError(
        f"probe file {str(path)!r} was calibrated under another setup: {'; '.join(problems)}; "
        f"recalibrate with `{cmd}` {how or 'for this setup'}, or load the probe made for it"
    )
