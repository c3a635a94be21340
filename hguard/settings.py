"""Generation settings: the one frozen object that says how answers are generated.

The guard builds it from the policy's ``[generation]`` table, calibration from its arguments, and
:class:`hguard.generation.Generator` generates under it. A calibrated domain records the settings its
answers were generated with, with their fingerprint, so that a guard generating differently (another
``max_new_tokens``, sampling instead of greedy decoding) can say so: a probe and thresholds fitted on
32-token answers do not certify 48-token ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from ._numerics import finite_number
from .errors import InputError, ProbeError

CLOSED_BOOK, RAG = "closed_book", "rag"
PROMPT_MODES = (CLOSED_BOOK, RAG)
# What `hguard calibrate` generates with unless told otherwise (the reference probes were made so).
CALIBRATION_SYSTEM_PROMPT = "You are a concise assistant. Answer in one short sentence."
CALIBRATION_MAX_NEW_TOKENS = 32
# The Generator's default answer length when nothing else is given.
GENERATOR_MAX_NEW_TOKENS = 48
# The fields a guard's generation is compared on with a calibration's. The system prompt has its own
# fingerprint (``system_prompt_fingerprint``, with the per-call system instruction), and the prompt
# mode picks the probe, so neither is compared here.
COMPARED = ("max_new_tokens", "do_sample", "temperature")



def calibrate_flags(settings: "GenerationSettings") -> str:
    """The options of ``hguard calibrate`` and ``hguard calibrate-rag`` that generate as ``settings`` do, quoted for
    the shell, each left out where it is the command's default (``--system-prompt TEXT``, ``--max-new-tokens N``;
    leading spaces). A system prompt of None (the model's own) has no option, and one holding a line break is quoted
    over several lines: for those the caller names the Python call."""
    import shlex

    return "".join(f" {flag} {shlex.quote(str(value))}" for flag, value, default in (
        ("--system-prompt", settings.system_prompt, CALIBRATION_SYSTEM_PROMPT),
        ("--max-new-tokens", settings.max_new_tokens, CALIBRATION_MAX_NEW_TOKENS)) if value is not None and value != default)


def calibrate_hint(lm: Any, settings: "GenerationSettings", domain: str, *, rag: bool, note: str = "") -> str:
    """How to calibrate ``domain`` (a slug) for a guard on ``lm`` generating under ``settings``, for a fix hint, in
    backticks: the ``hguard calibrate`` command line (``rag``: ``hguard calibrate-rag``, rows with context) with the
    guard's model (``--model``) and settings (:func:`calibrate_flags`), or, where no command line gives back the model
    as the guard runs it (built in memory; loaded or cast to another dtype than float32, or a chat template set since
    loading: :func:`hguard.models.not_as_loaded`) or its system prompt (none, or one over several lines), the Python
    call on the guard's own model and settings (``lm=guard.lm``), saying why. ``note`` follows the command (a word on
    the domain's name). Every hint that says how to (re)calibrate is worded here, so each names what the guard runs
    with: probes made otherwise are refused by it (another fingerprint, another answer length)."""
    import shlex

    from .models import model_argument, not_as_loaded

    again = model_argument(lm)
    unlike = not_as_loaded(lm) if again is not None else None
    sp = settings.system_prompt
    if again is not None and unlike is None and sp is not None and sp.isprintable():
        model = ("" if again == "default" else f" --model {shlex.quote(again)}") + calibrate_flags(settings)
        return (f"`hguard calibrate-rag --data FILE.jsonl --out DIR{model}` (rows with context, domain {domain!r}){note}"
                if rag else f"`hguard calibrate --data FILE.jsonl --out DIR --domain {domain}{model}`{note}")
    # built in memory (tiny:llama): no command loads it; loaded or cast to bfloat16, or its chat template set since:
    # `--model` loads another setup (no `--dtype`); a guard with no system prompt (the model's own): `--system-prompt`
    # cannot ask for none; one of several lines: no command line on one line carries it. The fix is Python's, on this
    # model and its settings
    made = (f" (in Python: {lm.source} is a model built in memory, which `hguard calibrate --model` cannot load)"
            if again is None else f" (in Python, on this guard's model as it is: {unlike}, so probes calibrated by "
            "`hguard calibrate --model` would be refused by this guard)" if unlike is not None
            else " (in Python: this guard generates with no system prompt, which `hguard calibrate --system-prompt` "
            "cannot ask for)" if sp is None else " (in Python: this guard's system prompt holds line breaks or other "
            "characters a one-line command cannot carry)")
    # the guard's own settings by name: a prompt shown cut was no call to run, nor the prompt it answers with
    asked = "lm=guard.lm, system_prompt=guard.settings.system_prompt, max_new_tokens=guard.settings.max_new_tokens)"
    return ("`from hguard.calibrate.data import load_examples; from hguard.calibrate.rag import calibrate_rag; "
            f"calibrate_rag(load_examples('FILE.jsonl'), 'DIR', {asked}` (rows with context, domain {domain!r})"
            f"{note}{made}" if rag else "`from hguard.calibrate.pipeline import calibrate; "
            f"calibrate(['FILE.jsonl'], 'DIR', domains=[{domain!r}], {asked}`{note}{made}")


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated: length limit, system prompt, prompt mode (closed-book or with
    context) and decoding (greedy unless ``do_sample``)."""

    max_new_tokens: int = GENERATOR_MAX_NEW_TOKENS
    system_prompt: str | None = None
    prompt_mode: str = CLOSED_BOOK
    do_sample: bool = False
    temperature: float = 1.0

    def __post_init__(self) -> None:
        m = self.max_new_tokens
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise InputError(f"max_new_tokens must be an integer of at least 1, got {m!r}; pass e.g. 32")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise InputError(f"system_prompt must be a string or None, got {type(self.system_prompt).__name__}")
        if self.prompt_mode not in PROMPT_MODES:
            raise InputError(f"prompt mode must be {CLOSED_BOOK!r} or {RAG!r}, got {self.prompt_mode!r}")
        if not isinstance(self.do_sample, bool):
            raise InputError(f"do_sample must be True or False, got {self.do_sample!r}")
        t = self.temperature
        if finite_number(t) is None or t <= 0:  # 10**400 too: float() raised OverflowError
            raise InputError(f"temperature must be a finite number > 0, got {t!r}")

    @classmethod
    def from_policy(cls, generation, prompt_mode: str = CLOSED_BOOK) -> "GenerationSettings":
        """The settings of a policy's ``[generation]`` table (greedy decoding, as the guard generates)."""
        return cls(max_new_tokens=generation.max_new_tokens, system_prompt=generation.system_prompt, prompt_mode=prompt_mode)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "temperature": float(self.temperature)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "generation settings") -> "GenerationSettings":
        names = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or set(data) - names:
            raise ProbeError(
                f"{where} are not an object of {sorted(names)} (found {data!r:.80}); the probe file is damaged or "
                "from a newer hguard: restore it or recalibrate"
            )
        try:
            return cls(**dict(data))
        except InputError as exc:
            raise ProbeError(f"{where} are invalid: {exc}; restore the probe file or recalibrate") from None

    def replace(self, **changes) -> "GenerationSettings":
        return replace(self, **changes)

    @property
    def fingerprint(self) -> str:
        """A hash of every setting; equal settings give equal fingerprints on any machine."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def differences(self, calibrated: "GenerationSettings") -> list[str]:
        """One phrase per compared setting where this generation differs from ``calibrated``'s."""
        return [
            f"{name} {getattr(calibrated, name)!r} at calibration, {getattr(self, name)!r} here"
            for name in COMPARED
            if getattr(self, name) != getattr(calibrated, name)
        ]


CALIBRATION_SETTINGS = GenerationSettings(max_new_tokens=CALIBRATION_MAX_NEW_TOKENS, system_prompt=CALIBRATION_SYSTEM_PROMPT)

__all__ = [
    "CALIBRATION_MAX_NEW_TOKENS", "CALIBRATION_SETTINGS", "CALIBRATION_SYSTEM_PROMPT", "CLOSED_BOOK",
    "GENERATOR_MAX_NEW_TOKENS", "GenerationSettings", "PROMPT_MODES", "RAG",
]
