"""The decision policy: what the guard does with an answer once it has been scored.

This module is pure. It takes plain data (signal values, a policy file, fitted
thresholds) and returns a decision with human-readable reasons; it never
touches a model, a tensor or the disk outside :func:`load_policy`.

It holds four things:

* the policy file schema (:class:`Policy`, :class:`DomainPolicy`) and
  :func:`load_policy`, which reads TOML or YAML and reports every mistake with
  its key path and file;
* risk merging: :func:`merge_risk` (the logistic merger fitted at calibration)
  and :func:`apply_grounding` (how RAG support moves the risk);
* routing: :func:`decide`, which fails closed: anything missing, broken or
  unexpected ends in ``review`` or ``abstain``, never ``accept``;
* threshold fitting: :func:`fit_thresholds`, a Learn-then-Test procedure
  (Angelopoulos et al. 2021) that gives a finite-sample guarantee on the
  hallucination rate among accepted answers, and :func:`risk_coverage_curve`.

numpy and scipy are imported only inside the fitting functions so the routing
path stays importable and fast without them.
"""

from __future__ import annotations

import math
import numbers
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hguard._numerics import sigmoid
from hguard.errors import InputError, PolicyError, ProbeError

__all__ = [
    "ABSTAIN",
    "ACCEPT",
    "REVIEW",
    "AuditConfig",
    "IntegrityConfig",
    "Decision",
    "DomainPolicy",
    "GenerationConfig",
    "MonitorConfig",
    "Policy",
    "ReviewConfig",
    "SteeringConfig",
    "Thresholds",
    "apply_grounding",
    "choose_domain",
    "decide",
    "effective_thresholds",
    "fit_thresholds",
    "load_policy",
    "merge_risk",
    "risk_coverage_curve",
]

PACKAGED_PREFIX = "package:"

ACCEPT: Literal["accept"] = "accept"
REVIEW: Literal["review"] = "review"
ABSTAIN: Literal["abstain"] = "abstain"
Route = Literal["accept", "abstain", "review"]

DEFAULT_ABSTAIN_MESSAGE = "I can't answer that reliably."
# The grounding weight applied when a domain allows a closed-book probe to score a request with context
# and sets no grounding_weight of its own (there is no fitted merge of grounding in that case).
CLOSED_BOOK_GROUNDING_WEIGHT = 0.5

# Domain names end up in probe file names and audit records, so keep them to
# characters that are safe in both.
_DOMAIN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DomainName = Annotated[str, StringConstraints(pattern=_DOMAIN_NAME_PATTERN)]


# --------------------------------------------------------------------------
# Policy file schema
# --------------------------------------------------------------------------


def _unit(default: float | None, description: str) -> Any:
    # strict: a quoted "0.3" or a YAML `yes` in a threshold is almost always a
    # mistake, and silently coercing it would hide the typo.
    return Field(default, ge=0.0, le=1.0, strict=True, allow_inf_nan=False, description=description)


def _open_unit(default: float, description: str) -> Any:
    return Field(default, gt=0.0, lt=1.0, strict=True, allow_inf_nan=False, description=description)


def _resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    base = (info.context or {}).get("base_dir") if isinstance(info.context, Mapping) else None
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuditConfig(_Section):
    path: Path = Field(
        Path("hguard-audit.jsonl"),
        validate_default=True,
        description="a file path for the JSONL audit log, relative to the policy file",
    )
    redact: bool = Field(
        False, strict=True, description="true or false: store hashes instead of prompt and answer text"
    )
    anchor: Path | None = Field(
        None,
        description="a file path, relative to the policy file, to which every record's seq and hash are appended "
        "(keep it where whoever can write the log cannot); `hguard audit verify LOG --anchor FILE` then "
        "detects records cut off the end",
    )

    _resolve = field_validator("path", "anchor", mode="after")(_resolve_path)


class IntegrityConfig(_Section):
    key_file: Path | None = Field(
        None,
        description="a file holding the secret key (32+ bytes) that signs probes and MACs audit records, "
        "relative to the policy file; when unset, $HGUARD_KEY_FILE or $HGUARD_KEY",
    )
    require_signed_probes: bool | None = Field(
        None,
        strict=True,
        description="true or false: refuse unsigned probe files (unset: true exactly when a key is configured)",
    )

    _resolve = field_validator("key_file", mode="after")(_resolve_path)


class ReviewConfig(_Section):
    queue: Path = Field(
        Path("hguard-review.sqlite3"),
        validate_default=True,
        description="a file path for the SQLite review queue, relative to the policy file",
    )

    _resolve = field_validator("queue", mode="after")(_resolve_path)


class GenerationConfig(_Section):
    max_new_tokens: int = Field(
        48, ge=1, le=32768, strict=True, description="an integer in [1, 32768]: answer length limit in tokens"
    )
    system_prompt: str | None = Field(
        None, strict=True, description="a string, or leave the key out for the model's default"
    )


class SteeringConfig(_Section):
    alpha: float = Field(
        1.0,
        ge=0.0,
        strict=True,
        allow_inf_nan=False,
        description="a finite number >= 0: factor on the H-Neurons' input (1 = off, < 1 damps, 0 silences, > 1 amplifies)",
    )


class DomainPolicy(_Section):
    """How one domain routes. ``name`` is filled in from the key under ``[domains]``."""

    name: str | None = Field(None, description="the domain's key; leave it out")
    description: str | None = Field(
        None, strict=True, description="a string describing the domain (for people and domain choice)"
    )
    target_hallucination_rate: float = _open_unit(
        0.10, "a number strictly between 0 and 1: allowed hallucination rate among accepted answers"
    )
    confidence: float = _open_unit(
        0.95, "a number strictly between 0 and 1: probability that the target holds (1 - delta)"
    )
    abstain_precision: float = _open_unit(
        0.90,
        "a number strictly between 0 and 1: share of abstained answers that must be hallucinations "
        "(used when fitting abstain_above)",
    )
    accept_below: float | None = _unit(
        None, "a number in [0, 1], or leave the key out to use the calibrated threshold"
    )
    abstain_above: float | None = _unit(
        None, "a number in [0, 1], or leave the key out to use the calibrated threshold"
    )
    abstain_message: str = Field(
        DEFAULT_ABSTAIN_MESSAGE, strict=True, description="a string shown instead of an abstained answer"
    )
    grounding_weight: float | None = _unit(
        None,
        "a number in [0, 1], or leave the key out: a manual override that raises the calibrated risk by "
        "missing grounding support (a RAG probe's merger already weighs grounding as fitted)",
    )
    context_with_closed_book_probe: Literal["review", "allow"] = Field(
        "review",
        description='"review" or "allow": a request with context in a domain calibrated closed-book only '
        "goes to review, or is scored with the closed-book probe (no RAG guarantee)",
    )
    out_of_distribution: Literal["review", "warn"] = Field(
        "review",
        description='"review" or "warn": a question whose probe features lie further from the calibration than '
        "the held-out families did goes to review, or routes as scored with a warning in the reasons",
    )
    generation_mismatch: Literal["review", "warn"] = Field(
        "review",
        description='"review" or "warn": when the guard generates under other settings than the domain was '
        "calibrated with (e.g. another max_new_tokens), its answers go to review, or route as scored with a warning",
    )
    knowledge_conflict: Literal["review", "trust_context"] = Field(
        "review",
        description='"review" or "trust_context": an answer that follows the context against what the model '
        "itself holds goes to review (untrusted retrieval), or routes as scored (approved sources)",
    )
    min_grounding: float | None = _unit(
        None, "a number in [0, 1], or leave the key out: grounding support below it never accepts"
    )
    require_grounding: bool = Field(
        False,
        strict=True,
        description="true or false: never accept in this domain when no context (grounding) is given",
    )
    steering: SteeringConfig | None = Field(
        None, description="a table with `alpha`, or leave it out to keep steering off"
    )
    spot_check_rate: float = _unit(
        0.02, "a number in [0, 1]: share of accepted answers also sent to review as spot-checks"
    )
    spot_check_min_per_day: int = Field(
        0, ge=0, strict=True, description="an integer >= 0: least spot-checks a day, taken from the day's first accepts"
    )
    drift_window: int = Field(
        200, ge=20, strict=True, description="an integer >= 20: live answers compared with the reference by the drift test"
    )
    drift_p_value: float = _open_unit(
        0.001, "a number strictly between 0 and 1: a drift test p-value below it is drift"
    )
    on_breach: Literal["stricter", "review"] = Field(
        "stricter",
        description='"stricter" (accept_below certified for tightened_target) or "review" (accept nothing): '
        "what the monitor does when the live bound passes the target or drift passes its bound",
    )
    breach_rule: Literal["upper_bound", "lower_bound"] = Field(
        "lower_bound",
        description='"lower_bound" (tighten once the live lower bound on accepted hallucinations exceeds the '
        'target: the target is shown broken) or "upper_bound" (once the upper bound does: the target is no '
        "longer certified; with few spot-checks this tightens healthy domains too, see benchmarks/README.md)",
    )
    tightened_target: float | None = Field(
        None, gt=0.0, lt=1.0, strict=True, allow_inf_nan=False,
        description="a number strictly between 0 and 1, or leave it out for half the target",
    )

    @field_validator("abstain_above", mode="after")
    @classmethod
    def _ordered(cls, value: float | None, info: ValidationInfo) -> float | None:
        accept = info.data.get("accept_below")
        if value is not None and accept is not None and accept > value:
            raise ValueError(
                f"abstain_above ({value}) is below accept_below ({accept}); "
                "set abstain_above >= accept_below (answers between them go to review)"
            )
        return value


class MonitorConfig(_Section):
    seed: str = Field(
        "hguard-spot-check", strict=True, min_length=1,
        description="a non-empty string: the key of the seeded spot-check selection (give it to auditors)",
    )
    state: Path = Field(
        Path("hguard-monitor-state.json"),
        validate_default=True,
        description="a file path for the monitor's domain states (read by the guard), relative to the policy file",
    )

    _resolve = field_validator("state", mode="after")(_resolve_path)


class Policy(_Section):
    """A whole policy file. Build it with :func:`load_policy` or ``Policy.model_validate``.

    Relative paths resolve against ``context={"base_dir": ...}`` when given
    (``load_policy`` passes the policy file's directory) and are left relative
    otherwise.
    """

    version: Literal[1] = Field(description="the integer 1")
    default_route: Literal["review", "abstain"] = Field(
        "review", description='"review" or "abstain": route when no domain can be chosen'
    )
    unknown_domain: Literal["review", "abstain"] = Field(
        "review",
        description='"review" or "abstain": route for a domain that is not in the policy or has no probe',
    )
    fingerprint_mismatch: Literal["review", "warn"] = Field(
        "review",
        description='"review" or "warn": what to do when a probe was calibrated under another '
        "model, chat template or system prompt",
    )
    domain_min_similarity: float = Field(
        0.35,
        ge=-1.0,
        le=1.0,
        strict=True,
        allow_inf_nan=False,
        description="a number in [-1, 1]: least cosine similarity for automatic domain choice",
    )
    abstain_message: str = Field(
        DEFAULT_ABSTAIN_MESSAGE,
        strict=True,
        description="a string shown when abstaining outside any domain",
    )
    probes: Path | None = Field(
        None,
        description="a directory of probe files, relative to the policy file, or `package:NAME` for the reference "
        "probes shipped with hguard (e.g. package:smollm2-135m)",
    )
    audit: AuditConfig = Field(
        default_factory=dict, validate_default=True, description="a table with `path`, `redact` and `anchor`"
    )
    review: ReviewConfig = Field(default_factory=dict, validate_default=True, description="a table with `queue`")
    integrity: IntegrityConfig = Field(
        default_factory=dict, validate_default=True, description="a table with `key_file` and `require_signed_probes`"
    )
    generation: GenerationConfig = Field(
        default_factory=dict, validate_default=True, description="a table with `max_new_tokens` and `system_prompt`"
    )
    monitor: MonitorConfig = Field(
        default_factory=dict, validate_default=True, description="a table with `seed` and `state`"
    )
    domains: dict[DomainName, DomainPolicy] = Field(
        default_factory=dict,
        description="tables named [domains.<name>], names of letters, digits, '_' and '-'",
    )

    _source: Path | None = PrivateAttr(default=None)
    @field_validator("probes", mode="before")
    @classmethod
    def _packaged_probes(cls, value: Any) -> Any:
        # `package:NAME` names the reference probes inside the installed package, so a copied policy
        # still finds them wherever it is saved
        if isinstance(value, str) and value.startswith(PACKAGED_PREFIX):
            from hguard._resources import packaged_probes

            return packaged_probes(value[len(PACKAGED_PREFIX):])
        return value

    _resolve = field_validator("probes", mode="after")(_resolve_path)

    @model_validator(mode="before")
    @classmethod
    def _name_domains(cls, data: Any) -> Any:
        # The key is the name; copying it into each DomainPolicy lets a
        # DomainPolicy travel alone (into decide, into reasons) without its key.
        if not isinstance(data, Mapping):
            return data
        domains = data.get("domains")
        if not isinstance(domains, Mapping):
            return data
        named: dict[Any, Any] = {}
        for key, value in domains.items():
            if isinstance(value, Mapping) and "name" not in value:
                value = {**value, "name": key}
            elif isinstance(value, DomainPolicy) and value.name is None:
                value = value.model_copy(update={"name": key})
            named[key] = value
        return {**data, "domains": named}

    @model_validator(mode="after")
    def _names_match_keys(self) -> Policy:
        for key, domain in self.domains.items():
            if domain.name != key:
                raise ValueError(
                    f"domains.{key}.name is {domain.name!r} but the table is named {key!r}; "
                    "remove the name key (the table name is the domain name)"
                )
        return self

    @property
    def source(self) -> Path | None:
        """The file this policy was loaded from, if any."""
        return self._source

    def domain(self, name: str | None) -> DomainPolicy | None:
        """The policy of domain ``name``, or None when the policy has no such domain."""
        if name is None:
            return None
        return self.domains.get(name)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys, which YAML would silently merge."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc_text(loc: Sequence[Any]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part == "[key]":
            continue
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _model_in(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model', M) for M or Optional[M], ('dict', M) for dict[str, M], else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    origin = get_origin(annotation)
    if origin is dict:
        inner = _model_in(get_args(annotation)[1])
        return ("dict", inner[1]) if inner else None
    if origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            inner = _model_in(arg)
            if inner:
                return inner
    return None


def _model_at(loc: Sequence[Any]) -> tuple[type[BaseModel], str | None] | None:
    """The model holding the last element of ``loc`` and that element's field name."""
    model: type[BaseModel] = Policy
    i = 0
    while i < len(loc) - 1:
        field = model.model_fields.get(str(loc[i]))
        if field is None:
            return None
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        kind, sub = inner
        i += 2 if kind == "dict" else 1
        model = sub
    if i == len(loc) - 1:
        return model, str(loc[-1])
    return model, None


def _explain(error: Mapping[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    where = _loc_text(loc)
    kind = error.get("type", "")
    msg = str(error.get("msg", ""))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        found = _model_at(loc)
        allowed = sorted(k for k in found[0].model_fields if k != "name") if found else []
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key (value {_short(error.get('input'))}){hint}"
    if kind == "missing":
        found = _model_at(loc)
        desc = found[0].model_fields[found[1]].description if found and found[1] in found[0].model_fields else None
        return f"{where}: required key is missing" + (f"; expected {desc}" if desc else "")
    if loc and loc[-1] == "[key]":
        return (
            f"{where}: name {_short(error.get('input'))} is not allowed; "
            "domain names use letters, digits, '_' and '-' (at most 64, not starting with '_' or '-')"
        )
    if kind == "value_error":
        # Our own checks already echo the values and say what to do.
        return f"{where}: {msg}"
    text = f"{where}: {msg} (got {_short(error.get('input'))})"
    found = _model_at(loc)
    if found and found[1] in found[0].model_fields:
        desc = found[0].model_fields[found[1]].description
        if desc:
            text += f"; expected {desc}"
    return text


def _policy_error(error: ValidationError, source: str) -> PolicyError:
    lines = [_explain(e) for e in error.errors(include_url=False)]
    return PolicyError(
        f"invalid policy {source}:\n  - "
        + "\n  - ".join(lines)
        + "\nFix these keys and load the policy again."
    )


def _validate(data: Any, *, source: str, base_dir: Path | None) -> Policy:
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"invalid policy {source}: the top level must be a table of keys (version, domains, ...), "
            f"got {type(data).__name__} {_short(data)}; start the file with `version = 1`"
        )
    try:
        return Policy.model_validate(dict(data), context={"base_dir": base_dir} if base_dir else None)
    except ValidationError as exc:
        raise _policy_error(exc, source) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (``.toml``, ``.yaml`` or ``.yml``).

    Relative paths inside the file resolve against the file's directory.
    Every problem raises :class:`PolicyError` naming the file and, for schema
    problems, each offending key path.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise PolicyError(
            f"policy file {str(path)!r} has suffix {suffix or '(none)'!r}; "
            "name it *.toml, *.yaml or *.yml so its format is known"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            f"policy file {str(path)!r} does not exist; pass the path of an existing .toml or .yaml policy file"
        ) from None
    except OSError as exc:
        raise PolicyError(f"policy file {str(path)!r} cannot be read ({exc}); check the path and its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"policy file {str(path)!r} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None

    source = f"file {str(path)!r}"
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # The message carries "(at line N, column M)".
            raise PolicyError(f"policy file {str(path)!r} is not valid TOML: {exc}; fix the syntax there") from None
    else:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError(
                f"policy file {str(path)!r} is not valid YAML{where}: {problem}; fix the syntax there"
            ) from None
        if data is None:
            data = {}
    # absolute(), not resolve(): paths are relative to where the file was
    # referenced, even when that is a symlink into another directory.
    policy = _validate(data, source=source, base_dir=path.absolute().parent)
    policy._source = path.absolute()
    return policy


# --------------------------------------------------------------------------
# Risk merging
# --------------------------------------------------------------------------


def _real(value: Any) -> bool:
    # numbers.Real admits numpy scalars (a probe may hand over float32);
    # bool is excluded because True as a risk or threshold is always a bug.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _merger_vector(merger: Mapping[str, Any], key: str, n: int) -> list[float]:
    values = merger.get(key)
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or len(values) != n:
        raise ProbeError(
            f"risk merger field {key!r} must be a list of {n} numbers (one per feature), got {_short(values)}; "
            "the probe file is damaged or from another hguard version: recalibrate the domain"
        )
    out = []
    for i, v in enumerate(values):
        if not _real(v) or not math.isfinite(v):
            raise ProbeError(
                f"risk merger field {key}[{i}] must be a finite number, got {_short(v)}; recalibrate the domain"
            )
        out.append(float(v))
    return out


def merge_risk(signals: Mapping[str, float | None], merger: Mapping[str, Any]) -> float:
    """Combine an answer's signals into one risk in [0, 1] with the calibrated merger.

    ``merger`` is ``{"features", "mean", "scale", "coef", "intercept"}``:
    ``risk = sigmoid(coef . ((x - mean) / scale) + intercept)``.
    Signals the merger does not use are ignored.

    Raises InputError when a feature the merger needs is missing, None or not
    finite, so the caller can fail closed; raises ProbeError when the merger
    itself is malformed.
    """
    if not isinstance(merger, Mapping):
        raise ProbeError(f"risk merger must be a mapping, got {_short(merger)}; recalibrate the domain")
    features = merger.get("features")
    if (
        not isinstance(features, Sequence)
        or isinstance(features, (str, bytes))
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise ProbeError(
            f"risk merger 'features' must be a non-empty list of signal names, got {_short(features)}; "
            "recalibrate the domain"
        )
    n = len(features)
    mean = _merger_vector(merger, "mean", n)
    scale = _merger_vector(merger, "scale", n)
    coef = _merger_vector(merger, "coef", n)
    intercept = merger.get("intercept")
    if not _real(intercept) or not math.isfinite(intercept):
        raise ProbeError(f"risk merger 'intercept' must be a finite number, got {_short(intercept)}; recalibrate the domain")
    for name, s in zip(features, scale):
        if s <= 0:
            raise ProbeError(f"risk merger scale for {name!r} must be > 0, got {s}; recalibrate the domain")

    missing = [name for name in features if signals.get(name) is None]
    if missing:
        raise InputError(
            f"cannot merge risk: signal(s) {', '.join(missing)} missing (given: {', '.join(sorted(signals)) or 'none'}); "
            "compute every signal the probe was calibrated with, or route the answer to review"
        )
    z = float(intercept)
    for name, m, s, c in zip(features, mean, scale, coef):
        x = signals[name]
        if not _real(x) or not math.isfinite(x):
            raise InputError(
                f"cannot merge risk: signal {name!r} is {_short(x)}, not a finite number; "
                "route the answer to review"
            )
        z += c * (float(x) - m) / s
    return sigmoid(z)


def apply_grounding(risk: float, grounding_support: float | None, weight: float) -> float:
    """Raise ``risk`` by how poorly the answer is supported by the given context.

    ``risk' = 1 - (1 - risk) * (1 - weight * (1 - support))``

    Read it as: the answer is trusted only if the model is right *and* the
    context does not undercut it; ``weight * (1 - support)`` is the chance we
    give to the context undercutting it. So support 1 leaves the risk
    unchanged, support 0 raises it by ``weight`` of the remaining headroom
    (``risk + weight * (1 - risk)``), and the result is monotone: increasing
    in risk and weight, decreasing in support, and always within [risk, 1].

    Grounding never lowers the risk below the probe's: a high support score
    can come from lexical overlap with a passage that does not actually say
    the same thing, so it may block an answer but not rescue one.

    ``grounding_support=None`` (no context given) returns ``risk`` unchanged.
    """
    for name, value in (("risk", risk), ("weight", weight)):
        if not _real(value) or not (0.0 <= value <= 1.0):
            raise InputError(f"apply_grounding: {name} must be a number in [0, 1], got {_short(value)}")
    if grounding_support is None:
        return float(risk)
    if not _real(grounding_support) or not (0.0 <= grounding_support <= 1.0):
        raise InputError(
            f"apply_grounding: grounding support must be a number in [0, 1] or None, got {_short(grounding_support)}; "
            "route the answer to review"
        )
    return 1.0 - (1.0 - risk) * (1.0 - weight * (1.0 - grounding_support))


# --------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Where one domain splits accept / review / abstain, and how that was decided.

    ``risk < accept_below`` accepts, ``risk >= abstain_above`` abstains,
    anything between goes to review. ``accept_below = 0.0`` accepts nothing;
    ``abstain_above = 1.0`` abstains only at risk 1.0, i.e. practically never.
    """

    accept_below: float
    abstain_above: float
    target: float
    confidence: float
    n_calibration: int
    coverage: float | None  # share of calibration answers accepted
    accepted_error_rate: float | None  # empirical hallucination rate among them
    accepted_error_ucb: float | None  # its Clopper-Pearson upper bound at `confidence`
    method: str
    abstain_precision: float | None = None  # required share of hallucinations among abstained
    abstained_share: float | None = None
    abstained_precision_lcb: float | None = None

    def __post_init__(self) -> None:
        for name in ("accept_below", "abstain_above"):
            value = getattr(self, name)
            if not _real(value) or not (0.0 <= value <= 1.0):
                raise InputError(f"Thresholds.{name} must be a number in [0, 1], got {_short(value)}")
        if self.accept_below > self.abstain_above:
            raise InputError(
                f"Thresholds.accept_below ({self.accept_below}) is greater than abstain_above "
                f"({self.abstain_above}); accept_below must be <= abstain_above"
            )
        for name in ("target", "confidence"):
            value = getattr(self, name)
            if not _real(value) or not (0.0 < value < 1.0):
                raise InputError(f"Thresholds.{name} must be a number strictly between 0 and 1, got {_short(value)}")
        if not isinstance(self.n_calibration, int) or isinstance(self.n_calibration, bool) or self.n_calibration < 0:
            raise InputError(f"Thresholds.n_calibration must be an integer >= 0, got {_short(self.n_calibration)}")
        for name in (
            "coverage",
            "accepted_error_rate",
            "accepted_error_ucb",
            "abstain_precision",
            "abstained_share",
            "abstained_precision_lcb",
        ):
            value = getattr(self, name)
            if value is not None and (not _real(value) or not (0.0 <= value <= 1.0)):
                raise InputError(f"Thresholds.{name} must be None or a number in [0, 1], got {_short(value)}")
        if not isinstance(self.method, str):
            raise InputError(f"Thresholds.method must be a string, got {_short(self.method)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """Rebuild thresholds stored by :meth:`to_dict` (e.g. in a probe file).

        Raises ProbeError naming the field when the data is incomplete or
        invalid, since such data comes from a damaged or foreign probe file.
        """
        if not isinstance(data, Mapping):
            raise ProbeError(f"stored thresholds must be a mapping, got {_short(data)}; recalibrate the domain")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ProbeError(
                f"stored thresholds have unknown field(s) {', '.join(map(str, unknown))}; "
                f"known fields are {', '.join(names)}; the probe file is from another hguard version: recalibrate"
            )
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ProbeError(
                f"stored thresholds lack field(s) {', '.join(missing)}; the probe file is damaged: recalibrate the domain"
            )
        try:
            return cls(**{k: data[k] for k in names if k in data})
        except InputError as exc:
            raise ProbeError(f"stored thresholds are invalid: {exc}; recalibrate the domain") from None


def effective_thresholds(domain_policy: DomainPolicy, fitted: Thresholds | None) -> Thresholds | None:
    """The thresholds a domain routes with: manual overrides in the policy win over fitted ones.

    Returns None when there is nothing to route with (no fitted thresholds and
    no manual ``accept_below`` / ``abstain_above``), so :func:`decide` fails closed.
    Without fitted thresholds, a missing manual side takes its safe extreme:
    accept nothing (``accept_below = 0``) or abstain practically never
    (``abstain_above = 1``).
    """
    manual_accept, manual_abstain = domain_policy.accept_below, domain_policy.abstain_above
    if manual_accept is None and manual_abstain is None:
        return fitted
    if fitted is None:
        accept = manual_accept if manual_accept is not None else 0.0
        abstain = manual_abstain if manual_abstain is not None else 1.0
        return Thresholds(
            accept_below=accept,
            abstain_above=max(abstain, accept),
            target=domain_policy.target_hallucination_rate,
            confidence=domain_policy.confidence,
            n_calibration=0,
            coverage=None,
            accepted_error_rate=None,
            accepted_error_ucb=None,
            method="manual thresholds from the policy file (no calibration guarantee)",
        )
    accept = manual_accept if manual_accept is not None else fitted.accept_below
    abstain = manual_abstain if manual_abstain is not None else fitted.abstain_above
    note = []
    if accept > abstain:
        # Keep the operator's explicit number and move the other side, in the
        # direction that accepts less.
        if manual_accept is not None and manual_abstain is None:
            abstain = accept
            note.append("abstain_above raised to the manual accept_below")
        else:
            accept = abstain
            note.append("accept_below lowered to the manual abstain_above")
    overridden = [k for k, v in (("accept_below", manual_accept), ("abstain_above", manual_abstain)) if v is not None]
    method = f"{fitted.method}; manual override of {', '.join(overridden)} from the policy file"
    if note:
        method += f" ({'; '.join(note)})"
    # The fitted coverage and bounds describe the fitted accept_below only;
    # for any other value they would be claims nobody computed.
    same_accept = accept == fitted.accept_below
    same_abstain = abstain == fitted.abstain_above
    return Thresholds(
        accept_below=accept,
        abstain_above=abstain,
        target=fitted.target,
        confidence=fitted.confidence,
        n_calibration=fitted.n_calibration,
        coverage=fitted.coverage if same_accept else None,
        accepted_error_rate=fitted.accepted_error_rate if same_accept else None,
        accepted_error_ucb=fitted.accepted_error_ucb if same_accept else None,
        method=method,
        abstain_precision=fitted.abstain_precision,
        abstained_share=fitted.abstained_share if same_abstain else None,
        abstained_precision_lcb=fitted.abstained_precision_lcb if same_abstain else None,
    )


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What to do with one answer, and why (one human-readable reason per fact used)."""

    route: Route
    risk: float | None
    reasons: tuple[str, ...]
    thresholds: dict | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "risk": self.risk,
            "reasons": list(self.reasons),
            "thresholds": dict(self.thresholds) if self.thresholds is not None else None,
        }


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _finite_unit(x: Any) -> bool:
    return _real(x) and math.isfinite(x) and 0.0 <= x <= 1.0


def decide(
    risk: float | None,
    *,
    domain_policy: DomainPolicy | None,
    thresholds: Thresholds | None,
    problems: Sequence[str] = (),
    grounding: float | None = None,
    context_given: bool = False,
    fingerprint_problems: Sequence[str] = (),
    policy: Policy,
    domain: str | None = None,
    domain_chosen: bool = True,
) -> Decision:
    """Route one scored answer to accept, review or abstain, failing closed.

    ``risk`` is the final merged risk (grounding already applied).
    ``context_given`` says the request carried context: then ``grounding``
    must be a number, and a missing one fails closed instead of reading as
    "no context".
    ``thresholds`` are the domain's effective thresholds (see
    :func:`effective_thresholds`). ``problems`` are anything that went wrong
    while scoring. ``domain`` is the requested domain name, used in reasons
    when ``domain_policy`` is None; ``domain_chosen=False`` says no domain
    could be chosen at all (routes by ``policy.default_route`` instead of
    ``policy.unknown_domain``).

    The answer is accepted only when everything needed is present and valid
    and the risk is below ``accept_below``. Every other case routes to review
    or abstain with the reasons; when several fail-closed causes apply and any
    of them is configured to abstain, the decision abstains (the stricter
    outcome for the end user), otherwise it goes to review.
    """
    reasons: list[str] = []
    closed_routes: list[Route] = []

    def close(route: Route, reason: str) -> None:
        closed_routes.append(route)
        reasons.append(reason)

    name = domain_policy.name if domain_policy is not None and domain_policy.name else domain
    label = f"domain {name!r}" if name else "this answer"

    for problem in problems:
        close(REVIEW, f"scoring problem: {problem}")

    risk_ok = _real(risk) and math.isfinite(risk) and 0.0 <= risk <= 1.0
    if risk is None:
        close(REVIEW, "no risk score: the answer could not be scored")
    elif not risk_ok:
        close(REVIEW, f"risk {_short(risk)} is not a number in [0, 1]: the score is unusable")

    if domain_policy is None:
        if domain_chosen:
            shown = f"domain {domain!r}" if domain else "the requested domain"
            close(
                policy.unknown_domain,
                f"{shown} is not in the policy (known: {', '.join(sorted(policy.domains)) or 'none'}); "
                f"routing by unknown_domain = {policy.unknown_domain!r}",
            )
        else:
            close(
                policy.default_route,
                f"no domain could be chosen for this answer; routing by default_route = {policy.default_route!r}",
            )
    elif thresholds is None:
        close(
            policy.unknown_domain,
            f"{label} has no calibrated probe thresholds and no manual accept_below/abstain_above; "
            f"routing by unknown_domain = {policy.unknown_domain!r}",
        )
    elif domain_policy.accept_below is None and (
        thresholds.target > domain_policy.target_hallucination_rate + 1e-12
        or thresholds.confidence < domain_policy.confidence - 1e-12
    ):
        # The guarantee was fitted for a looser requirement than the policy now
        # asks; accepting would claim a guarantee nobody computed.
        close(
            REVIEW,
            f"{label}: thresholds were fitted for target {_fmt(thresholds.target)} at confidence "
            f"{_fmt(thresholds.confidence)} but the policy asks target "
            f"{_fmt(domain_policy.target_hallucination_rate)} at confidence {_fmt(domain_policy.confidence)}; "
            "recalibrate the domain or set accept_below in the policy",
        )

    for problem in fingerprint_problems:
        if policy.fingerprint_mismatch == "warn":
            reasons.append(f"warning: probe fingerprint mismatch: {problem} (fingerprint_mismatch = 'warn')")
        else:
            close(REVIEW, f"probe fingerprint mismatch: {problem}")

    if grounding is not None and not _finite_unit(grounding):
        close(REVIEW, f"grounding support {_short(grounding)} is not a number in [0, 1]: unusable")
    elif grounding is None and context_given:
        close(REVIEW, "context was given but no grounding support could be computed for the answer")

    thresholds_dict = thresholds.to_dict() if thresholds is not None else None
    shown_risk = float(risk) if risk_ok else None

    if closed_routes:
        route: Route = ABSTAIN if ABSTAIN in closed_routes else REVIEW
        return Decision(route, shown_risk, tuple(reasons), thresholds_dict)

    assert domain_policy is not None and thresholds is not None and risk_ok  # all checked above
    r = float(risk)
    accept_below, abstain_above = thresholds.accept_below, thresholds.abstain_above

    if r >= abstain_above:
        reasons.append(f"risk {_fmt(r)} >= abstain_above {_fmt(abstain_above)} for {label}: abstain")
        return Decision(ABSTAIN, r, tuple(reasons), thresholds_dict)

    if r < accept_below:
        blockers: list[str] = []
        if grounding is None and domain_policy.require_grounding:
            blockers.append(f"{label} requires grounding but no context was given")
        if (
            grounding is not None
            and domain_policy.min_grounding is not None
            and grounding < domain_policy.min_grounding
        ):
            blockers.append(
                f"grounding support {_fmt(grounding)} < min_grounding {_fmt(domain_policy.min_grounding)} "
                f"for {label}"
            )
        if not blockers:
            reasons.append(
                f"risk {_fmt(r)} < accept_below {_fmt(accept_below)} for {label} "
                f"(target hallucination rate {_fmt(thresholds.target)} at confidence {_fmt(thresholds.confidence)})"
                ": accept"
            )
            return Decision(ACCEPT, r, tuple(reasons), thresholds_dict)
        reasons.append(f"risk {_fmt(r)} < accept_below {_fmt(accept_below)} for {label}, but:")
        reasons.extend(blockers)
        reasons.append("accept blocked: review")
        return Decision(REVIEW, r, tuple(reasons), thresholds_dict)

    reasons.append(
        f"risk {_fmt(r)} is between accept_below {_fmt(accept_below)} and abstain_above "
        f"{_fmt(abstain_above)} for {label}: review"
    )
    return Decision(REVIEW, r, tuple(reasons), thresholds_dict)


def choose_domain(similarities: Mapping[str, float], policy: Policy) -> tuple[str | None, str]:
    """Pick the policy domain most similar to a prompt, or None with the reason why not.

    ``similarities`` maps domain names to a similarity score (e.g. cosine
    similarity of the prompt to the domain's calibration prompts). Names not
    in the policy and non-finite scores are ignored. An exact tie for the best
    score is ambiguous and returns None, so :func:`decide` uses
    ``default_route`` rather than guessing.
    """
    scored = {
        name: float(s)
        for name, s in similarities.items()
        if name in policy.domains and _real(s) and math.isfinite(s)
    }
    if not scored:
        return None, "no policy domain has a similarity score for this prompt"
    best = max(scored.values())
    top = sorted(name for name, s in scored.items() if s == best)
    if best < policy.domain_min_similarity:
        return None, (
            f"best domain {top[0]!r} has similarity {_fmt(best)} < domain_min_similarity "
            f"{_fmt(policy.domain_min_similarity)}"
        )
    if len(top) > 1:
        return None, f"domains {', '.join(map(repr, top))} tie at similarity {_fmt(best)}"
    return top[0], f"domain {top[0]!r} chosen with similarity {_fmt(best)}"


# --------------------------------------------------------------------------
# Threshold fitting (numpy/scipy imported lazily)
# --------------------------------------------------------------------------


def _calibration_arrays(risks: Sequence[float], hallucinated: Sequence[Any]):
    import numpy as np

    r = np.asarray(list(risks), dtype=float) if not hasattr(risks, "dtype") else np.asarray(risks, dtype=float)
    if r.ndim != 1 or r.size == 0:
        raise InputError(f"risks must be a non-empty 1-D sequence of numbers, got shape {r.shape}; pass one risk per answer")
    labels = list(hallucinated) if not hasattr(hallucinated, "dtype") else np.asarray(hallucinated).tolist()
    if len(labels) != r.size:
        raise InputError(
            f"risks has {r.size} values but hallucinated has {len(labels)}; pass one label per risk"
        )
    bad = np.flatnonzero(~np.isfinite(r) | (r < 0) | (r > 1))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"risks[{i}] is {r[i]!r}, not a number in [0, 1]; drop or rescore that answer")
    y_raw = np.asarray(labels, dtype=object)
    is_label = np.array([isinstance(v, (bool, np.bool_)) or (_real(v) and v in (0, 1)) for v in labels], dtype=bool)
    if not is_label.all():
        i = int(np.flatnonzero(~is_label)[0])
        raise InputError(f"hallucinated[{i}] is {_short(labels[i])}; labels must be True/False (or 0/1)")
    y = y_raw.astype(bool)
    return r, y


def _sorted_groups(r, y):
    """Unique risk values ascending, and for each: #answers with risk below it, #hallucinations among them."""
    import numpy as np

    order = np.argsort(r, kind="stable")
    rs, ys = r[order], y[order]
    uniq, below = np.unique(rs, return_index=True)
    cum_err = np.concatenate([[0], np.cumsum(ys, dtype=np.int64)])
    return uniq, below.astype(np.int64), cum_err


def _accept_candidates(r, y):
    """Candidate accept thresholds (strict -> lenient) with accepted counts and errors."""
    import numpy as np

    uniq, below, cum_err = _sorted_groups(r, y)
    t = uniq[1:]
    n_acc = below[1:]
    if uniq[-1] < 1.0:
        # Beyond the largest calibration risk every answer is accepted.
        t = np.append(t, 1.0)
        n_acc = np.append(n_acc, r.size)
    return t, n_acc, cum_err[n_acc]


def risk_coverage_curve(risks: Sequence[float], hallucinated: Sequence[Any]) -> list[tuple[float, float, float]]:
    """Points ``(coverage, error_rate, threshold)`` for every distinct accept threshold.

    ``threshold`` is an ``accept_below`` value; ``coverage`` is the share of
    answers with ``risk < threshold`` and ``error_rate`` the hallucination rate
    among them. Points are ordered by increasing coverage; thresholds that
    accept nothing are left out (their error rate is undefined).
    """
    r, y = _calibration_arrays(risks, hallucinated)
    t, n_acc, k_acc = _accept_candidates(r, y)
    n = r.size
    return [
        (float(na) / n, float(ka) / float(na), float(th))
        for th, na, ka in zip(t.tolist(), n_acc.tolist(), k_acc.tolist())
        if na > 0
    ]


def _min_n(rate: float, delta: float) -> int:
    # Smallest n where even a perfect sample (0 of n bad, or n of n bad) can
    # reject at level delta: rate**n <= delta.
    return int(math.ceil(math.log(delta) / math.log(rate) - 1e-12))


def fit_thresholds(
    risks: Sequence[float],
    hallucinated: Sequence[Any],
    *,
    target: float = 0.10,
    confidence: float = 0.95,
    abstain_precision: float = 0.9,
    min_coverage: float = 0.10,
) -> Thresholds:
    """Fit accept/abstain thresholds with a finite-sample guarantee (Learn then Test).

    Guarantee: with probability at least ``confidence`` over the draw of the
    calibration set (i.i.d. with future answers), the hallucination rate among
    answers with ``risk < accept_below`` is at most ``target``.

    Procedure (Angelopoulos et al. 2021, fixed-sequence testing): candidate
    thresholds are the distinct calibration risks (plus 1.0), ordered from
    strict to lenient. For each, H0 "error rate among {risk < t} > target" is
    tested with the exact binomial tail ``P(Binom(n_t, target) <= k_t)`` at
    level ``delta = 1 - confidence``. The walk stops at the first candidate
    that fails; the last one that passed is ``accept_below``. If none passes,
    ``accept_below = 0.0`` (accept nothing) and ``method`` says so.

    Candidates whose accepted set is too small to ever pass (fewer than
    ``log(delta) / log(1 - target)`` answers, where even zero errors cannot
    reject) are skipped rather than allowed to end the walk; which ones they
    are depends only on the risks, not on the labels, and a threshold at an
    order statistic still sees an i.i.d. sample below it.

    ``accept_below`` is always a calibration risk (the one just above the
    accepted answers), so the answers below it are an i.i.d. sample of
    {risk < accept_below} and the binomial test is exact.

    The walk starts at the first candidate that accepts at least
    ``min_coverage`` of the calibration answers (and enough of them to be
    testable). Like the skipping above, where it starts depends on the risks
    only, never on the labels, so the fixed sequence keeps its guarantee; it
    spares the walk from ending on the handful of lowest-risk answers, where
    a single hallucination fails a test that has almost no power (measured on
    the default model: starting at the strictest threshold, every bundled
    domain accepted nothing even at a 30% target). With few calibration
    answers, or risks that separate poorly, it still often accepts nothing:
    that is the price of the guarantee; more calibration answers buy coverage.

    ``abstain_above`` mirrors this from the top: the lowest threshold such
    that, walking down, every {risk >= t} passes ``lower bound of the
    hallucination share >= abstain_precision``; ``1.0`` (abstain practically
    never) when none does. It is then raised to ``accept_below`` if needed:
    the accept guarantee takes precedence, and abstaining less is safe.
    """
    for name, value in (("target", target), ("confidence", confidence), ("abstain_precision", abstain_precision)):
        if not _real(value) or not (0.0 < value < 1.0):
            raise InputError(f"fit_thresholds: {name} must be a number strictly between 0 and 1, got {_short(value)}")
    if not _real(min_coverage) or not (0.0 <= min_coverage < 1.0):
        raise InputError(f"fit_thresholds: min_coverage must be a number in [0, 1), got {_short(min_coverage)}")
    import numpy as np

    # scipy.special holds the same exact binomial / beta functions that
    # scipy.stats.binom and scipy.stats.beta wrap, and imports several times faster.
    from scipy.special import bdtr, bdtrc, betaincinv

    r, y = _calibration_arrays(risks, hallucinated)
    n = int(r.size)
    delta = 1.0 - confidence
    notes: list[str] = [f"learn-then-test, fixed-sequence, exact binomial (Clopper-Pearson), delta={_fmt(delta)}"]

    # --- accept side ---
    t, n_acc, k_acc = _accept_candidates(r, y)
    need = max(_min_n(1.0 - target, delta), int(math.ceil(min_coverage * n)))
    testable = np.flatnonzero(n_acc >= need)
    accept_below = 0.0
    acc_n = acc_k = 0
    if testable.size == 0:
        notes.append(
            f"no accept threshold: {n} calibration answers, at least {need} needed below a threshold "
            f"for target {_fmt(target)} at confidence {_fmt(confidence)}; accept nothing"
        )
    else:
        start = int(testable[0])
        pvals = bdtr(k_acc[start:], n_acc[start:], target)  # P(Binom(n, target) <= k)
        failed = np.flatnonzero(pvals > delta)
        n_pass = int(failed[0]) if failed.size else int(pvals.size)
        if n_pass == 0:
            notes.append(
                f"no accept threshold passed (the strictest testable one, {_fmt(float(t[start]))}, has "
                f"{int(k_acc[start])}/{int(n_acc[start])} hallucinations); accept nothing"
            )
        else:
            best = start + n_pass - 1
            accept_below = float(t[best])
            acc_n, acc_k = int(n_acc[best]), int(k_acc[best])
            notes.append(f"accept_below passed {n_pass} of {t.size - start} testable candidates")

    coverage = acc_n / n
    error_rate = acc_k / acc_n if acc_n else None
    ucb = (float(betaincinv(acc_k + 1, acc_n - acc_k, confidence)) if acc_k < acc_n else 1.0) if acc_n else None

    # --- abstain side ---
    uniq, below, cum_err = _sorted_groups(r, y)
    n_ab = n - below  # answers with risk >= uniq[j]
    k_ab = int(cum_err[-1]) - cum_err[below]
    need_ab = _min_n(abstain_precision, delta)
    abstain_above = 1.0
    order = np.arange(uniq.size)[::-1]  # from the top down
    order = order[n_ab[order] >= need_ab]
    if order.size == 0:
        notes.append(f"no abstain threshold: fewer than {need_ab} answers at the top; abstain practically never")
    else:
        # P(Binom(n, p0) >= k) <= delta  <=>  Clopper-Pearson lower bound >= p0
        pvals = bdtrc(k_ab[order] - 1, n_ab[order], abstain_precision)
        failed = np.flatnonzero(pvals > delta)
        n_pass = int(failed[0]) if failed.size else int(pvals.size)
        if n_pass == 0:
            notes.append("no abstain threshold passed; abstain practically never")
        else:
            abstain_above = float(uniq[int(order[n_pass - 1])])
            notes.append(f"abstain_above passed {n_pass} of {order.size} testable candidates")
    if abstain_above < accept_below:
        abstain_above = accept_below
        notes.append("abstain_above raised to accept_below")
    abstained = r >= abstain_above
    ab_n, ab_k = int(np.count_nonzero(abstained)), int(np.count_nonzero(y & abstained))
    lcb = (float(betaincinv(ab_k, ab_n - ab_k + 1, delta)) if ab_k > 0 else 0.0) if ab_n else None

    return Thresholds(
        accept_below=accept_below,
        abstain_above=abstain_above,
        target=float(target),
        confidence=float(confidence),
        n_calibration=n,
        coverage=coverage,
        accepted_error_rate=error_rate,
        accepted_error_ucb=ucb,
        method="; ".join(notes),
        abstain_precision=float(abstain_precision),
        abstained_share=ab_n / n,
        abstained_precision_lcb=lcb,
    )
