"""The decision policy: what the guard does with an answer once it has been scored.

This module is pure. It takes plain data (signal values, a policy file, fitted
thresholds) and returns a decision with human-readable reasons; it never
touches a model, a tensor or the disk outside :func:`load_policy`.

This module holds the policy file schema (:class:`Policy`, :class:`DomainPolicy`
and their sections) and re-exports the rest of the policy, which lives in one
private module per job:

* ``hguard._policy_load``: :func:`load_policy`, which reads TOML or YAML and
  reports every mistake with its key path and file;
* ``hguard._policy_risk``: risk merging, :func:`merge_risk` (the logistic merger
  fitted at calibration) and :func:`apply_grounding` (how RAG support moves the risk);
* ``hguard._policy_thresholds``: :class:`Thresholds` and :func:`effective_thresholds`
  (manual overrides from the policy over fitted thresholds);
* ``hguard._policy_route``: routing, :func:`decide`, which fails closed: anything
  missing, broken or unexpected ends in ``review`` or ``abstain``, never
  ``accept``; and :func:`choose_domain`;
* ``hguard._policy_fit``: threshold fitting, :func:`fit_thresholds`, a
  Learn-then-Test procedure (Angelopoulos et al. 2021) that gives a
  finite-sample guarantee on the hallucination rate among accepted answers,
  and :func:`risk_coverage_curve`.

numpy and scipy are imported only inside the fitting functions so the routing
path stays importable and fast without them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hguard._policy_fit import fit_thresholds, risk_coverage_curve
from hguard._policy_load import _validate as _validate
from hguard._policy_load import load_policy
from hguard._policy_risk import apply_grounding, merge_risk
from hguard.review.queue import DEFAULT_BUSY_TIMEOUT_S, MAX_BUSY_TIMEOUT_S
from hguard._policy_route import ABSTAIN, ACCEPT, REVIEW, Decision, choose_domain, decide
from hguard._policy_route import Route as Route
from hguard._policy_thresholds import Thresholds, effective_thresholds
from hguard._resources import PACKAGED_PREFIX as PACKAGED_PREFIX
from hguard._resources import DEFAULT_SEED, expand_home, same_file
from hguard._resources import refuse_own_file as refuse_own_file
from hguard._text import blank

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
    "refuse_own_file",
    "risk_coverage_curve",
]


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


# a file name to suggest for each path field that names a folder
_FILE_FOR = {"path": "hguard-audit.jsonl", "anchor": "audit.anchor", "key_file": "hguard.key",
             "queue": "hguard-review.sqlite3", "state": "hguard-monitor-state.json"}


def _no_empty_path(value: Any, info: ValidationInfo) -> Any:
    # Path("") is the current folder: an empty value would make the policy's folder the log (or queue, ...)
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty; name a file (an empty path is the policy's own folder)")
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value).strip()
        last = re.split(r"[/\\]", text)[-1]
        if last in ("", ".", "..", "~"):  # "logs/", "logs/.", "~": a folder, which pathlib's name does not show
            folder = re.sub(r"([/\\]+\.?)+$", "", text) or text.rstrip("/\\") or text
            raise ValueError(f"{text!r} names a folder; name a file in it (e.g. "
                             f"{os.path.join(folder, _FILE_FOR.get(info.field_name or '', 'hguard-audit.jsonl'))})")
    return value


def _resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    value = expand_home(value, "the path")
    base = (info.context or {}).get("base_dir") if isinstance(info.context, Mapping) else None
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


#: a file path in a policy: never empty, relative to the policy file's folder (``~`` expanded)
PolicyPath = Annotated[Path, BeforeValidator(_no_empty_path), AfterValidator(_resolve_path)]


def _visible(value: str | None) -> str | None:
    if value is not None and blank(value):  # an abstained answer shown as nothing at all (review_message refused "")
        raise ValueError("the message users see instead of the answer is empty or only whitespace; write it, or leave "
                         "the key out for the default")
    return value


#: a message shown in an answer's place (abstain_message, review_message): text a reader can see
ShownMessage = Annotated[str, AfterValidator(_visible)]


#: what a change in place of a policy's mapping or list says: a guard's thresholds were fitted to the policy it
#: started on, and its records carry that policy's hash (a domain swapped in g.policy.domains kept the start-up
#: threshold, under the calibrated certificate's reason, and the start-up hash)
_CHANGED_IN_PLACE = ("a Policy is frozen, and a guard keeps the policy it started on (its thresholds were fitted to it and "
                     "its records carry its policy_hash); build the changed policy with policy.model_copy(update="
                     "{{'{field}': ...}}) (or edit the file) and start a new guard on it with Guard.from_policy(policy)")


class _ReadOnlyDict(dict):
    """A frozen policy's mapping (``Policy.domains``): read as a dict, refused in place with the fix."""

    _field = "domains"

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        from hguard.errors import PolicyError

        raise PolicyError(f"Policy.{self._field} cannot be changed in place: " + _CHANGED_IN_PLACE.format(field=self._field))

    __setitem__ = __delitem__ = __ior__ = pop = popitem = clear = update = setdefault = _refuse

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # once: p.domains.__init__(z=dp) added a domain in place
        if getattr(self, "_built", False):
            self._refuse()
        super().__init__(*args, **kwargs)
        self._built = True

    def __reduce__(self) -> Any:  # copied and pickled as a read-only dict again (not item by item)
        return type(self), (dict(self),)


class _ReadOnlyList(list):
    """A frozen policy's list (``Policy.probes``): read as a list, refused in place with the fix."""

    _field = "probes"
    _refuse = _ReadOnlyDict._refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = pop = remove = clear = sort = \
        reverse = _refuse

    def __init__(self, *args: Any) -> None:  # once: p.probes.__init__([path]) replaced the folders in place
        if getattr(self, "_built", False):
            self._refuse()  # type: ignore[misc]  # shared with _ReadOnlyDict: it reads only _field
        super().__init__(*args)
        self._built = True

    def __reduce__(self) -> Any:
        return type(self), (list(self),)


class _Section(BaseModel):
    # revalidate_instances: a section changed with model_copy(update=...) (which does not validate) is checked again
    # when validated (hguard._policy_load.checked_policy: a NaN min_grounding compared false, and accepted)
    model_config = ConfigDict(extra="forbid", frozen=True, revalidate_instances="always")


#: where a policy without an [audit] table logs, and without a [review] table queues (beside the policy file)
DEFAULT_AUDIT_LOG = "hguard-audit.jsonl"
DEFAULT_REVIEW_QUEUE = "hguard-review.sqlite3"


def unnamed_files_warning(policy: "Policy", *, audit: bool = True, queue: bool = True) -> str | None:
    """What to say when a guard opens the audit log (``audit``) or review queue (``queue``) of a policy built in code
    (no file, no ``base_dir``) that does not name it (no ``audit`` / ``review`` key): their default names stay
    relative, so they are written in the working folder of the process, wherever it runs (a test suite's: one log
    shared by every test and worker). None for a policy with a file, one given a ``base_dir`` (``"."`` included: the
    working folder chosen), and for a file the policy names (its default name included)."""
    if policy.source is not None or policy._base_dir is not None:
        return None
    unnamed = [(what, key, path) for what, field, key, path, default, opened in (
        ("audit log", "audit", '"audit": {"path": FILE}', policy.audit.path, DEFAULT_AUDIT_LOG, audit),
        ("review queue", "review", '"review": {"queue": FILE}', policy.review.queue, DEFAULT_REVIEW_QUEUE, queue),
    ) if opened and field not in policy.model_fields_set and Path(path) == Path(default)]
    if not unnamed:
        return None
    return (f"the policy was built in code and names no {' and no '.join(what for what, _, _ in unnamed)}, so the "
            f"guard keeps {' and '.join(f'its {what} in {str(Path(path).absolute())!r}' for what, _, path in unnamed)}:"
            " the working folder of the process, shared by whatever else runs there (every test of a test suite); "
            f"name {'them' if len(unnamed) > 1 else 'it'} in the policy ({', '.join(key for _, key, _ in unnamed)}), or "
            "build it with Policy.from_mapping(data, base_dir=FOLDER) to keep the policy's files in FOLDER")


class AuditConfig(_Section):
    # No default inside the table: an [audit] table whose path line was lost in an edit would otherwise write a
    # new log beside the policy without a word. A policy with no [audit] table gets DEFAULT_AUDIT_LOG.
    path: PolicyPath = Field(
        description="a file path for the JSONL audit log, relative to the policy file (required in an [audit] "
        f"table; a policy without the table logs to {DEFAULT_AUDIT_LOG!r} beside it; a table without it, which "
        f"hguard 0.1 read as that file: add path = {DEFAULT_AUDIT_LOG!r} to go on with the same log)",
    )
    redact: bool = Field(
        False, strict=True, description="true or false: store hashes instead of prompt and answer text"
    )
    anchor: PolicyPath | None = Field(
        None,
        description="a file path, relative to the policy file, to which every record's seq and hash are appended "
        "(keep it where whoever can write the log cannot); `hguard audit verify LOG --anchor FILE` then "
        "detects records cut off the end",
    )


class IntegrityConfig(_Section):
    key_file: PolicyPath | None = Field(
        None,
        description="a file holding the secret key (32+ bytes) that signs probes and MACs audit records, "
        "relative to the policy file; when unset, $HGUARD_KEY_FILE or $HGUARD_KEY",
    )
    require_signed_probes: bool | None = Field(
        None,
        strict=True,
        description="true or false: refuse unsigned probe files (unset: true exactly when a key is configured)",
    )


class ReviewConfig(_Section):
    queue: PolicyPath = Field(
        description="a file path for the SQLite review queue, relative to the policy file (required in a [review] "
        f"table; a policy without the table queues to {DEFAULT_REVIEW_QUEUE!r} beside it; a table without it, "
        f"which hguard 0.1 read as that file: add queue = {DEFAULT_REVIEW_QUEUE!r} to go on with the same queue)",
    )
    # how the deployment waits, not what it decides: left out of the policy's hash (a guard started while a backup
    # held the queue failed after 10 s, and the fix the message named could not be set from a policy)
    busy_timeout: float = Field(
        DEFAULT_BUSY_TIMEOUT_S, ge=0.0, le=MAX_BUSY_TIMEOUT_S, strict=True, allow_inf_nan=False, exclude=True,
        description="seconds, in [0, 3600], that opening the queue and each write wait for another process holding it "
        "(a backup, a reviewer's tool) before failing",
    )


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
        le=3.4e38,  # a larger factor is infinite in the model's float32: every request to the domain failed unrecorded
        strict=True,
        allow_inf_nan=False,
        description="a number from 0 to 3.4e38 (float32's largest): factor on the H-Neurons' input (1 = off, < 1 damps, "
                    "0 silences, > 1 amplifies)",
    )


class DomainPolicy(_Section):
    """How one domain routes. ``name`` is filled in from the key under ``[domains]``."""

    name: str | None = Field(None, description="the domain's key; leave it out")
    description: str | None = Field(
        None, strict=True, description="a string describing the domain, for people (domain choice reads the questions the domain was "
        "calibrated on, not this)"
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
    certify: Literal["pooled", "per_family"] = Field(
        "pooled",
        description='"pooled" (the accept threshold holds for the calibration answers as one pool) or "per_family" '
        "(it must hold in every calibrated family at once: far less coverage, but a kind of question the pool "
        "hides cannot pass it; see benchmarks/README.md)",
    )
    accept_below: float | None = _unit(
        None, "a number in [0, 1], or leave the key out to use the calibrated threshold"
    )
    abstain_above: float | None = _unit(
        None, "a number in [0, 1], or leave the key out to use the calibrated threshold"
    )
    abstain_message: ShownMessage = Field(
        DEFAULT_ABSTAIN_MESSAGE, strict=True, description="a string shown instead of an abstained answer, or leave "
        "the key out to use the policy's abstain_message (Policy.abstain_message_of(name) says which is shown)"
    )
    @property
    def own_abstain_message(self) -> str | None:
        """The domain's ``abstain_message`` when its table sets one, else None (the field then holds the built-in
        default, and the policy's own message is shown: :meth:`Policy.abstain_message_of`)."""
        return self.abstain_message if "abstain_message" in self.model_fields_set else None

    review_message: ShownMessage | None = Field(
        None, strict=True, description="a string shown instead of an answer held for review, or leave the key "
        "out to use the policy's review_message"
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
    cut_answer: Literal["mark", "review"] = Field(
        "mark",
        description='"mark" or "review": an answer that reached max_new_tokens, cut there (a list, a table or a '
        'sentence may be incomplete), routes as scored (the calibration scored such answers too) and is shown ending '
        'in " [...]" with the cut said in its reasons, or goes to review',
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
    live_bounds: Literal["per_run", "sequential"] = Field(
        "per_run",
        description='"per_run" (Clopper-Pearson bounds, exact for one look; run after run on a growing record '
        'they err toward tightening) or "sequential" (bounds that hold however often the monitor runs: a '
        "confidence sequence, slower to catch a rise; both measured in benchmarks/README.md)",
    )
    tightened_target: float | None = Field(
        None, gt=0.0, lt=1.0, strict=True, allow_inf_nan=False,
        description="a number strictly between 0 and 1, or leave it out for half the target",
    )

    @field_validator("tightened_target", mode="after")
    @classmethod
    def _stricter(cls, value: float | None, info: ValidationInfo) -> float | None:
        target = info.data.get("target_hallucination_rate")
        if value is not None and target is not None and value >= target:
            raise ValueError(f"tightened_target ({value}) is not below target_hallucination_rate ({target}): it is the "
                             "stricter target a breached domain is held to; set it below the target, or leave it out "
                             "for half the target")
        return value

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
        DEFAULT_SEED, strict=True, min_length=1,
        description="a non-empty string: the key of the seeded spot-check selection (give it to auditors)",
    )

    @field_validator("seed")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"the seed {value!r} is only blanks; set a random string (python -c \"import secrets; "
                             "print(secrets.token_hex(16))\") and give it to your auditors")
        return value

    state: PolicyPath = Field(
        Path("hguard-monitor-state.json"),
        validate_default=True,
        description="a file path for the monitor's domain states (read by the guard), relative to the policy file",
    )
    review_backlog_max_age_hours: float = Field(
        72.0, gt=0.0, strict=True, allow_inf_nan=False,
        description="a number of hours > 0, e.g. 72: `hguard monitor` warns when the review queue's oldest pending "
        "item is older than this",
    )


def refuse_shared_files(files: Mapping[str, Path]) -> None:
    """ValueError when two of ``files`` (key path -> file) are one file (the same path, or a link to it): the
    monitor's state written over the audit log, or the review queue's database into it, lost every record."""
    seen: list[tuple[str, Path]] = []
    for key, path in files.items():
        p = Path(os.path.normpath(expand_home(path, key).absolute()))
        for other, q in seen:
            if p == q or same_file(p, q):
                raise ValueError(f"{other} and {key} name the same file ({str(p)!r}): hguard would write one over the "
                                 f"other; give each its own file")
        seen.append((key, p))


class Policy(_Section):
    """A whole policy file. Build it with :func:`load_policy` (a file) or :meth:`from_mapping` (a dict): each
    problem is then a :class:`~hguard.errors.PolicyError` naming the key, the value and the fix.
    ``Policy.model_validate`` works too, but raises pydantic's own ``ValidationError``.

    Relative paths resolve against ``context={"base_dir": ...}`` when given
    (``load_policy`` passes the policy file's directory) and are left relative
    otherwise: relative to the working folder, as any path in Python. So a policy built in code without
    ``audit`` / ``review`` keeps its audit log and review queue as ``hguard-audit.jsonl`` and
    ``hguard-review.sqlite3`` in the working folder (a guard starting on it warns, naming both); name them, or
    pass ``base_dir``.
    """

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: str | os.PathLike[str] | None = None) -> "Policy":
        """The policy ``data`` holds (as a policy file's TOML would read), relative paths resolved against
        ``base_dir`` when given (the audit log and review queue ``data`` does not name are then kept there too), else
        against the working folder; a :class:`~hguard.errors.PolicyError` names each problem as :func:`load_policy`
        does."""
        return _validate(data, source="given as a mapping", base_dir=Path(base_dir) if base_dir is not None else None)

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
    context_fallback_domain: DomainName | None = Field(
        None,
        description="a domain name of this policy: scores a request with context when no domain reaches "
        "domain_min_similarity (its out-of-distribution check still applies)",
    )
    abstain_message: ShownMessage = Field(
        DEFAULT_ABSTAIN_MESSAGE,
        strict=True,
        description="a string shown when abstaining outside any domain",
    )
    review_message: ShownMessage | None = Field(
        None,
        strict=True,
        description='a string shown instead of an answer routed to review (the answer is held for the reviewer); '
        'leave the key out to show the answer itself marked "[needs review] " (for staff-facing tools)',
    )
    model: str = Field(
        "default",
        strict=True,
        min_length=1,
        description='the model the guard answers with: "default" (the embedded SmolLM2-135M-Instruct), a Hugging '
        "Face model folder or a .gguf file (relative to the policy file), or a hub id (owner/name, or "
        "owner/name@revision to pin a branch, tag or commit)",
    )
    probes: Path | list[Path] | None = Field(
        None,
        description="a directory of probe files, relative to the policy file, or `package:NAME` for the reference "
        "probes shipped with hguard (e.g. package:smollm2-135m), or a list of them (e.g. the reference probes "
        'and your own: ["package:smollm2-135m", "my-probes"])',
    )
    audit: AuditConfig = Field(
        default_factory=lambda: {"path": DEFAULT_AUDIT_LOG}, validate_default=True,
        description="a table with `path`, `redact` and `anchor`",
    )
    review: ReviewConfig = Field(
        default_factory=lambda: {"queue": DEFAULT_REVIEW_QUEUE}, validate_default=True,
        description="a table with `queue`",
    )
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
    _named: Any = PrivateAttr(default=None)  # the file's values as written (its paths as it names them)
    _base_dir: Path | None = PrivateAttr(default=None)  # the base_dir it was built with (relative paths resolve there)
    # the packaged policy's: the state folder its own files were placed in (hguard._policy_load._in_state_dir)
    _state_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _keep_base_dir(self, info: ValidationInfo) -> Policy:
        # a policy built with a base_dir ("." too) has chosen where its unnamed files go: see unnamed_files_warning
        base = (info.context or {}).get("base_dir") if isinstance(info.context, Mapping) else None
        if base is not None:
            self._base_dir = Path(base)
        return self

    @field_validator("model", mode="after")
    @classmethod
    def _model_path(cls, value: str, info: ValidationInfo) -> str:
        # a path resolves against the policy file's folder; "default" and a hub id (owner/name) stay as they are
        if value == "default":
            return value
        base = (info.context or {}).get("base_dir") if isinstance(info.context, Mapping) else None
        path = expand_home(value, "the model path")
        looks_like_path = value.startswith((".", "/", "~")) or value.endswith(".gguf") or (
            base is not None and (Path(base) / path).exists())
        if looks_like_path and base is not None and not path.is_absolute():
            path = Path(base) / path
        if not looks_like_path:  # a hub id's revision checked here, not first when the model loads (a monitor run)
            from hguard.models import hub_revision_problem

            problem = hub_revision_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return str(path) if looks_like_path else value

    @field_validator("probes", mode="before")
    @classmethod
    def _packaged_probes(cls, value: Any) -> Any:
        # `package:NAME` names the reference probes inside the installed package, so a copied policy
        # still finds them wherever it is saved
        def packaged(v: Any) -> Any:
            if isinstance(v, str) and v.startswith(PACKAGED_PREFIX):
                from hguard._resources import probe_folder

                return probe_folder(v)
            return v

        paths = value if isinstance(value, list) else [value]
        bad = next((v for v in paths if not isinstance(v, (str, os.PathLike)) or (isinstance(v, str) and not v.strip())), None)
        if value is not None and (bad is not None or not isinstance(value, (str, os.PathLike, list))):
            shown = value if bad is None else bad
            raise ValueError(f"probes takes a folder path or package:NAME, or a list of them; got {shown!r:.80} "
                             f"({type(shown).__name__}): write e.g. probes = \"package:smollm2-135m\" or "
                             "probes = [\"package:smollm2-135m\", \"my-probes\"]")
        if isinstance(value, list):
            if not value:
                raise ValueError("probes is an empty list; name at least one probe folder or remove the key")
            return [packaged(v) for v in value]
        return packaged(value)

    @field_validator("probes", mode="after")
    @classmethod
    def _resolve_probes(cls, value: Path | list[Path] | None, info: ValidationInfo) -> Path | list[Path] | None:
        if isinstance(value, list):
            folders = [p for p in (_resolve_path(v, info) for v in value) if p is not None]
            twice = next((p for i, p in enumerate(folders) if any(p == q or same_file(p, q) for q in folders[:i])), None)
            if twice is not None:  # loaded twice, every domain it holds was calibrated by two folders, and switched off
                raise ValueError(f"probes names the folder {str(twice)!r} twice; list each probe folder once")
            return _ReadOnlyList(folders)
        return _resolve_path(value, info)

    @field_validator("domains", mode="after")
    @classmethod
    def _read_only_domains(cls, value: dict[str, DomainPolicy]) -> dict[str, DomainPolicy]:
        return _ReadOnlyDict(value)  # frozen as the policy is: refused in place, naming the fix

    def own_files(self) -> dict[str, Path]:
        """The files this policy's deployment keeps (audit log and its anchor, review queue, monitor state,
        key file, the policy file itself), by what they are: no output of a command may replace them."""
        files = {"audit log": self.audit.path, "audit anchor": self.audit.anchor, "review queue": self.review.queue,
                 "monitor state": self.monitor.state, "key file": self.integrity.key_file, "policy file": self.source}
        return {what: Path(f) for what, f in files.items() if f is not None}

    @property
    def probe_folders(self) -> list[Path]:
        """The probe folders, in the order the policy names them (``probes`` is one folder or a list)."""
        if self.probes is None:
            return []
        return list(self.probes) if isinstance(self.probes, list) else [self.probes]

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
        if self.context_fallback_domain is not None and self.context_fallback_domain not in self.domains:
            raise ValueError(
                f"context_fallback_domain is {self.context_fallback_domain!r}, which is not a domain of this policy; "
                f"name one of {sorted(self.domains)} or remove the key"
            )
        return self

    @model_validator(mode="after")
    def _files_apart(self) -> Policy:
        refuse_shared_files(self.files())
        return self

    def files(self) -> dict[str, Path]:
        """The files this policy names for hguard to write or read (key path -> file), each its own."""
        named = {"audit.path": self.audit.path, "audit.anchor": self.audit.anchor,
                 "integrity.key_file": self.integrity.key_file, "review.queue": self.review.queue,
                 "monitor.state": self.monitor.state}
        return {k: v for k, v in named.items() if v is not None}

    @property
    def source(self) -> Path | None:
        """The file this policy was loaded from, if any."""
        return self._source

    def domain(self, name: str | None) -> DomainPolicy | None:
        """The policy of domain ``name``, or None when the policy has no such domain."""
        if name is None:
            return None
        return self.domains.get(name)

    def abstain_message_of(self, name: str | None) -> str:
        """What an abstained answer of domain ``name`` shows: the domain's own ``abstain_message`` where it sets
        one, else the policy's (a domain's field holds the built-in default when it sets none)."""
        dp = self.domain(name)
        return (dp.own_abstain_message if dp is not None else None) or self.abstain_message
