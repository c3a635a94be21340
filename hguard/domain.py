"""A calibrated domain: the probe with everything calibration decided for it, as one frozen object.

A probe file holds the fitted probe and, under ``metadata``, the calibration's record: the domain's
name, the fingerprints of the setup it was calibrated under, the generation settings its answers were
generated with, the risk merger, the thresholds and what they were fitted on, the out-of-fold
calibration scores, the router questions, and the out-of-distribution and knowledge-conflict checks.
:class:`CalibratedDomain` is the one reader and writer of that record: the guard, the calibration
writers and the evaluations go through it, and nothing else reads metadata keys.

Files written before generation settings were fingerprinted carry ``max_new_tokens`` and
``system_prompt`` as plain keys; their settings are read from those (greedy decoding, the only one
calibration uses), and a file without them has unknown settings (``generation`` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from ._numerics import finite_number
from .errors import InputError, ProbeError
from .settings import CLOSED_BOOK, PROMPT_MODES, RAG, GenerationSettings

# how a probe file's thresholds_fitted_on opens when they were fitted on cross-family scores
# (hguard.calibrate.families.CROSS_FAMILY_SCORES), which also fits the out-of-distribution check
_CROSS_FAMILY = "cross-family out-of-fold"
# how calibrations that fitted the merger on the very scores they certified thresholds on said so
_IN_SAMPLE_MERGER = "merged by the shipped merger, which was fitted on those same cross-family scores"

FINGERPRINT_KEYS = (
    "model_fingerprint", "chat_template_fingerprint", "system_prompt_fingerprint", "context_prompt_fingerprint",
)
# Keys the typed fields own; every other metadata key travels unchanged in ``extra``.
_OWN = {
    "domain", "prompt_mode", "generation", "generation_fingerprint", "system_prompt", "max_new_tokens", "merger",
    "thresholds", "thresholds_fitted_on", "calibration_scores", "held_out_scores", "family_scores", "router_questions", "ood",
    "knowledge_conflict", "random_baseline", *FINGERPRINT_KEYS,
}


def _unusable_threshold(key: str, entry: Mapping[str, Any]) -> str | None:
    """Why the ``threshold`` of a calibration's ``ood`` or ``knowledge_conflict`` entry (``key``) is none the guard
    can test against, said after the entry's name; None when it is one. It must be a finite number
    (:func:`hguard._numerics.finite_number`: true, "3.5" or 10**400 are none), and the knowledge-conflict one a
    probability in [0, 1]: the detector's score is one, and under a threshold of infinity, of true (1.0) or of 2 no
    answer was ever flagged, so a conflicting answer was routed as scored; an out-of-distribution threshold of
    infinity let every distance through."""
    value = entry.get("threshold")
    x = finite_number(value)
    if x is None:
        return f"['threshold'] is {value!r:.40} ({type(value).__name__}), not a finite number"
    if key == "knowledge_conflict" and not 0.0 <= x <= 1.0:
        return (f"['threshold'] is {x!r:.40}, not in [0, 1]: the knowledge-conflict score is a probability, so it "
                "would flag no answer or every one")
    return None


def _frozen(value):
    """A read-only copy: mappings become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value):
    """Plain JSON types again (dicts and lists) from :func:`_frozen`'s copy."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class CalibrationScores:
    """Out-of-fold merged risks of the training answers, their labels (1 = hallucinated) and, in files written
    since families were recorded, each answer's family (for a per-family certificate). Held-out scores written
    since also say of each answer whether the out-of-distribution check sends it to review (1), so the held-out
    check counts only the answers a guard accepts."""

    risk: tuple[float, ...]
    hallucinated: tuple[int, ...]
    family: tuple[str, ...] | None = None
    out_of_distribution: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, list]:
        out: dict[str, list] = {"risk": [float(x) for x in self.risk], "hallucinated": [int(v) for v in self.hallucinated]}
        if self.family is not None:
            out["family"] = list(self.family)
        if self.out_of_distribution is not None:
            out["out_of_distribution"] = [int(v) for v in self.out_of_distribution]
        return out

    @classmethod
    def from_dict(cls, cs: Mapping[str, Any]) -> "CalibrationScores":
        """From a probe file's ``calibration_scores``; raises ValueError naming what is wrong."""
        risk, y, fam, far = cs.get("risk"), cs.get("hallucinated"), cs.get("family"), cs.get("out_of_distribution")
        if not isinstance(risk, Sequence) or not isinstance(y, Sequence) or len(risk) != len(y):
            raise ValueError("an object of equally long 'risk' and 'hallucinated' lists")
        if fam is not None and (not isinstance(fam, Sequence) or isinstance(fam, str) or len(fam) != len(risk)
                                or not all(isinstance(f, str) for f in fam)):
            raise ValueError("a 'family' list of strings as long as 'risk', or no 'family'")
        if far is not None and (not isinstance(far, Sequence) or isinstance(far, str) or len(far) != len(risk)
                                or not all(v in (0, 1) and not isinstance(v, float) for v in far)):
            raise ValueError("an 'out_of_distribution' list of 0/1 as long as 'risk', or no 'out_of_distribution'")
        try:
            return cls(tuple(float(x) for x in risk), tuple(int(v) for v in y), tuple(fam) if fam is not None else None,
                       tuple(int(v) for v in far) if far is not None else None)
        except (TypeError, ValueError):
            raise ValueError("an object of numeric 'risk' and 0/1 'hallucinated' lists") from None


# what a recalibration of the same answers changes without changing how answers are routed
VOLATILE_METADATA = ("created", "metrics", "probe_fit")  # probe_fit: its reason names the machine's memory


@dataclass(frozen=True, eq=False)
class CalibratedDomain:
    """One domain's calibration in one prompt mode (closed-book or with context), read-only.

    ``generation`` is None when the file records no generation settings; ``generation_recorded`` says
    whether it carries them with their fingerprint (files written since) or as plain keys (older ones).
    """

    probe: Any
    name: str | None = None
    probe_id: str | None = None
    prompt_mode: str = CLOSED_BOOK
    generation: GenerationSettings | None = None
    generation_recorded: bool = False
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    merger: Mapping[str, Any] | None = None
    thresholds: Any = None  # hguard.policy.Thresholds, or None when the file stores none
    thresholds_fitted_on: Any = None
    calibration_scores: CalibrationScores | None = None
    # the held-out split's merged risks and labels: an accept threshold they reject is withdrawn (fit_thresholds)
    held_out_scores: CalibrationScores | None = None
    # each family's answers scored by a probe and merger fitted without it (the leave-one-family-out evaluation): an
    # accept threshold that the others' thresholds, routing each family, show failing is withdrawn (fit_thresholds)
    family_scores: CalibrationScores | None = None
    router_questions: tuple[str, ...] = ()
    ood: Mapping[str, Any] | None = None
    knowledge_conflict: Mapping[str, Any] | None = None
    random_baseline: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # the rest of the record (metrics, split, ...)

    def __post_init__(self) -> None:
        if self.prompt_mode not in PROMPT_MODES:
            raise InputError(f"prompt mode must be {CLOSED_BOOK!r} or {RAG!r}, got {self.prompt_mode!r}")
        for key in ("ood", "knowledge_conflict"):  # built in code: one read from a file was checked by from_metadata
            if isinstance(getattr(self, key), Mapping) and (why := _unusable_threshold(key, getattr(self, key))):
                raise InputError(f"{key}{why}; pass the threshold its calibration fitted")
        for name in ("fingerprints", "merger", "ood", "knowledge_conflict", "random_baseline", "extra",
                     "thresholds_fitted_on", "router_questions"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def split(self) -> Mapping[str, Any] | None:
        """How calibration split its questions into training and held-out (test fraction, seed, counts)."""
        return self.extra.get("split")

    @property
    def data_hash(self) -> str | None:
        """The hash of the calibration data of this domain."""
        return self.extra.get("data_hash")

    @property
    def rag(self) -> bool:
        """Whether this calibration is of answers given with context."""
        return self.prompt_mode == RAG

    # ------------------------------------------------------------------------------------ record

    @classmethod
    def from_metadata(cls, probe, metadata: Mapping[str, Any], *, name: str | None = None,
                      probe_id: str | None = None, where: str = "probe metadata") -> "CalibratedDomain":
        """Read a probe file's ``metadata`` record; ProbeError naming the entry when one is malformed.
        ``name`` is used when the record names no domain (e.g. the file's stem)."""
        from ._policy_fit import stored_abstain_recertified
        from .policy import Thresholds

        if not isinstance(metadata, Mapping):
            raise ProbeError(f"{where} is a {type(metadata).__name__}, not an object; restore the file or recalibrate")
        m = metadata

        def bad(key: str, what: str):
            raise ProbeError(f"{where}[{key!r}] is not {what} (found {m.get(key)!r:.60}); restore the file or recalibrate")

        def mapping(key):
            if m.get(key) is not None and not isinstance(m[key], Mapping):
                bad(key, "an object")
            return m.get(key)

        domain = m.get("domain", name)
        if domain is not None and not isinstance(domain, str):
            bad("domain", "a string")
        mode = m.get("prompt_mode", CLOSED_BOOK)  # a file that records no prompt mode is closed-book
        if mode not in PROMPT_MODES:
            bad("prompt_mode", f"{CLOSED_BOOK!r} or {RAG!r}")
        generation, recorded = cls._read_generation(m, mode, where)
        thresholds = None
        if m.get("thresholds"):
            thresholds = Thresholds.from_dict(m["thresholds"])
        scores = None
        cs = mapping("calibration_scores")
        if cs and cs.get("risk"):
            try:
                scores = CalibrationScores.from_dict(cs)
            except ValueError as exc:
                bad("calibration_scores", str(exc))
        thresholds = stored_abstain_recertified(thresholds, *((scores.risk, scores.hallucinated) if scores else (None, None)))
        held, left_out = None, None
        hs, fs = mapping("held_out_scores"), mapping("family_scores")
        if hs is not None:
            try:
                held = CalibrationScores.from_dict(hs)
            except ValueError as exc:
                bad("held_out_scores", str(exc))
        if fs is not None:
            try:
                left_out = CalibrationScores.from_dict(fs)
            except ValueError as exc:
                bad("family_scores", str(exc))
            if left_out is None or left_out.family is None:
                bad("family_scores", "a 'family' list naming each answer's family")
        questions = m.get("router_questions") or []
        if not isinstance(questions, Sequence) or not all(isinstance(q, str) for q in questions):
            bad("router_questions", "a list of strings")
        ood = mapping("ood")
        kc = mapping("knowledge_conflict")
        if kc and not isinstance(kc.get("detector"), Mapping):
            bad("knowledge_conflict", "an object with a detector and a threshold")
        for key, entry in (("ood", ood), ("knowledge_conflict", kc)):
            if entry and (why := _unusable_threshold(key, entry)):
                raise ProbeError(f"{where}[{key!r}]{why}; restore the file or recalibrate")
        # What every calibration that records how its thresholds were fitted (or that answered with context) writes:
        # taken out, the guard scored by the probe alone, under thresholds fitted on merged risks, or skipped the
        # out-of-distribution check, with no word (a fault-injection trial's edit flipped a route to accept)
        fitted_on = m.get("thresholds_fitted_on")
        if m.get("merger") is None and (fitted_on is not None or mode == RAG):
            bad("merger", "the merger its thresholds were fitted with (the file says how they were fitted, so it had one)")
        if ood is None and isinstance(fitted_on, str) and fitted_on.startswith(_CROSS_FAMILY):
            bad("ood", "the out-of-distribution check its cross-family calibration fitted")
        return cls(
            probe=probe,
            name=domain,
            probe_id=probe_id or getattr(probe, "probe_id_", None),
            prompt_mode=mode,
            generation=generation,
            generation_recorded=recorded,
            fingerprints={k: m[k] for k in FINGERPRINT_KEYS if k in m},
            merger=mapping("merger"),
            thresholds=thresholds,
            thresholds_fitted_on=m.get("thresholds_fitted_on"),
            calibration_scores=scores,
            held_out_scores=held,
            family_scores=left_out,
            router_questions=tuple(questions),
            ood=ood or None,
            knowledge_conflict=kc or None,
            random_baseline=mapping("random_baseline"),
            extra={k: v for k, v in m.items() if k not in _OWN},
        )

    @staticmethod
    def _read_generation(m: Mapping[str, Any], mode: str, where: str) -> tuple[GenerationSettings | None, bool]:
        if "generation" in m:
            settings = GenerationSettings.from_dict(m["generation"], f"{where}['generation']")
            if m.get("generation_fingerprint") != settings.fingerprint:
                raise ProbeError(
                    f"{where}: generation_fingerprint {m.get('generation_fingerprint')!r} does not match the recorded "
                    f"settings ({settings.fingerprint!r}); the file is damaged: restore it or recalibrate"
                )
            if settings.prompt_mode != mode:
                raise ProbeError(f"{where}: generation prompt mode {settings.prompt_mode!r} is not the file's {mode!r}; recalibrate")
            return settings, True
        n = m.get("max_new_tokens")
        if n is None:
            return None, False  # unknown: the policy's generation_mismatch decides
        sp = m.get("system_prompt")
        try:
            return GenerationSettings(max_new_tokens=n, system_prompt=sp, prompt_mode=mode), False
        except InputError as exc:
            raise ProbeError(f"{where}: recorded generation settings are invalid ({exc}); restore the file or recalibrate") from None

    def metadata(self) -> dict[str, Any]:
        """The record as the probe file stores it (plain JSON types)."""
        out: dict[str, Any] = dict(_thawed(self.extra))
        out.update(_thawed(self.fingerprints))
        if self.name is not None:
            out["domain"] = self.name
        out["prompt_mode"] = self.prompt_mode
        if self.generation is not None:
            out["system_prompt"] = self.generation.system_prompt
            out["max_new_tokens"] = self.generation.max_new_tokens
            out["generation"] = self.generation.to_dict()
            out["generation_fingerprint"] = self.generation.fingerprint
        for key in ("merger", "thresholds_fitted_on", "ood", "knowledge_conflict", "random_baseline"):
            value = getattr(self, key)
            if value is not None:
                out[key] = _thawed(value)
        if self.thresholds is not None:
            out["thresholds"] = self.thresholds.to_dict()
        if self.calibration_scores is not None:
            out["calibration_scores"] = self.calibration_scores.to_dict()
        for key in ("held_out_scores", "family_scores"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key).to_dict()
        out["router_questions"] = list(self.router_questions)
        return out

    @property
    def calibration_id(self) -> str:
        """A hash of what this calibration routes answers with: the probe, and the record without when it
        was made, the figures it reported and the machine's memory budget (``created``, ``metrics``,
        ``probe_fit``; the probe's weights say how it was fitted). Two calibrations of the same
        answers with the same settings share it, while their ``probe_id`` (a hash of the whole file, the
        time included) differs: the monitor lifts a tightening only when this changes."""
        import hashlib

        from ._json import canonical_json, json_safe

        record = {k: v for k, v in self.metadata().items() if k not in VOLATILE_METADATA}
        payload = getattr(self.probe, "_payload", None)  # a stand-in probe without weights: its id stands for it
        probe = payload() if payload is not None else {"probe_id": self.probe_id}
        body = json_safe({"probe": probe, "record": record}, "calibration", nonfinite="raise")
        return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()[:16]

    # -------------------------------------------------------------------------------------- files

    @classmethod
    def load(cls, path, *, expect: Mapping[str, Any] | None = None, key: bytes | None = None,
             require_signature: bool = False) -> "CalibratedDomain":
        """Read a probe file (see :meth:`hguard.probe.HNeuronProbe.load` for ``expect``, ``key`` and
        ``require_signature``); a domain without a name in its record is named after the file."""
        from ._probe_file import probe_path
        from .probe import HNeuronProbe

        path = probe_path(path)
        probe, metadata = HNeuronProbe.load(path, expect=expect, key=key, require_signature=require_signature)
        stem = path.name[: -len(".rag.json")] if path.name.endswith(".rag.json") else path.stem
        return cls.from_metadata(probe, metadata, name=stem, where=f"probe file {str(path)!r} metadata")

    def save(self, path, *, key: bytes | None = None) -> "CalibratedDomain":
        """Write the probe with this record to ``path`` (signed with ``key``); returns the domain with
        the file's ``probe_id``."""
        probe_id = self.probe.save(Path(path), metadata=self.metadata(), key=key)
        return replace(self, probe_id=probe_id)

    # ------------------------------------------------------------------------------------- checks

    def check_fingerprints(self, expected: Mapping[str, Any]) -> list[str]:
        """Differences between the setup this domain was calibrated under and ``expected``."""
        from ._probe_file import check_fingerprints

        return check_fingerprints({**self.fingerprints, "prompt_mode": self.prompt_mode}, expected)

    def foreign_layout(self, generator) -> str | None:
        """Why this probe cannot read ``generator``'s model at all (its neurons are laid out for another model:
        other layers or widths), or None; the caller adds its own fix. A probe of the same layout but another
        fingerprint can be read (:meth:`check_fingerprints` says how it differs)."""
        n, layers = getattr(self.probe, "n_features_in_", None), getattr(self.probe, "n_layers_", None)
        if n is None or (n == generator.n_features and layers in (None, len(generator.sites))):
            return None
        return (
            f"domain {self.name!r} was calibrated for another model ({self.extra.get('model') or 'unnamed'}: {layers} "
            f"layers, {n} neurons), not {generator.lm.name} ({len(generator.sites)} layers, {generator.n_features} "
            "neurons): its probe cannot read this model"
        )

    def generation_problem(self, running: GenerationSettings) -> str | None:
        """Why answers generated under ``running`` are not what this calibration certifies (None when
        they are); the reason names the calibration's value and the running one."""
        who = f"domain {self.name!r}" if self.name else "this domain"
        if self.generation is None:
            return (
                f"generation settings unknown: the calibration of {who} records no max_new_tokens, this guard generates "
                f"with max_new_tokens {running.max_new_tokens!r}; recalibrate the domain"
            )
        diffs = running.differences(self.generation)
        if not diffs:
            return None
        return (
            f"generation settings differ from the calibration of {who}: {'; '.join(diffs)}; set the policy's "
            "[generation] to the calibration's settings or recalibrate the domain"
        )

    @property
    def in_sample_thresholds(self) -> str | None:
        """Why this file's accept threshold certifies nothing, or None: it was fitted on merged risks of a merger
        fitted on those same answers (calibrations before the merged risks were made family by family say so in
        ``thresholds_fitted_on``), so the bound is in-sample; recalibrated, the same answers certified nothing where
        the old file accepted below 0.24 (an upgrading team's trial)."""
        fitted_on = self.thresholds_fitted_on
        if isinstance(fitted_on, str) and _IN_SAMPLE_MERGER in fitted_on:
            return ("its accept threshold was certified on merged risks from a merger fitted on those same answers "
                    "(a calibration before the cross-family mergers: in-sample, no guarantee), so it accepts nothing "
                    "until the domain is recalibrated")
        return None

    def fit_thresholds(self, domain_policy, *, target: float | None = None) -> Any:
        th = self._fit_thresholds(domain_policy, target=target)
        why = self.in_sample_thresholds
        if why is None or th is None or not th.accept_below:
            return th
        return th.accepting_nothing(why)

    def _fit_thresholds(self, domain_policy, *, target: float | None = None) -> Any:
        """Thresholds for the policy's own target (or ``target``, e.g. the monitor's stricter one) and
        confidence, fitted on the calibration scores this domain carries, pooled or per family as the
        policy's ``certify`` says; the stored thresholds when it carries none (or without a domain policy).
        A per-family certificate on scores that record no families accepts nothing, and says why; an accept
        threshold that the calibration's families, each left out in turn, reject (:func:`hguard._policy_fit.
        withdrawn_on_new_families`) or that the file's held-out scores reject (:func:`hguard._policy_fit.
        withdrawn_on_held_out`) is withdrawn."""
        if domain_policy is None or self.calibration_scores is None:
            return self.thresholds
        from ._policy_fit import withdrawn_on_held_out, withdrawn_on_new_families
        from .policy import fit_thresholds

        cs = self.calibration_scores
        per_family = getattr(domain_policy, "certify", "pooled") == "per_family"
        fitted = fit_thresholds(
            list(cs.risk), list(cs.hallucinated),
            target=domain_policy.target_hallucination_rate if target is None else target,
            confidence=domain_policy.confidence, abstain_precision=domain_policy.abstain_precision,
            families=list(cs.family) if per_family and cs.family is not None else None,
        )
        stored = self.thresholds
        if stored is not None and (stored.target, stored.confidence) != (fitted.target, fitted.confidence):
            fitted = replace(fitted, refitted_from={"target": stored.target, "confidence": stored.confidence})
        if per_family and cs.family is None:
            return fitted.accepting_nothing("certify = 'per_family', but this probe file records no family per "
                                            "calibration answer (calibrated before families were recorded): accept "
                                            "nothing; recalibrate")
        fitted = withdrawn_on_new_families(fitted, cs.risk, cs.hallucinated, cs.family, per_family=per_family,
                                           left_out=self._left_out(domain_policy),
                                           figure=lambda: self._new_family_figure(fitted, domain_policy))
        held = self.held_out_scores
        if held is None:
            return fitted
        return withdrawn_on_held_out(fitted, held.risk, held.hallucinated,
                                     held.out_of_distribution if self._review_far(domain_policy) else None)

    @staticmethod
    def _review_far(domain_policy) -> bool:
        """Whether the answers the out-of-distribution check sends to review are not accepted: unless the policy lets
        the risk route them (out_of_distribution = "warn")."""
        return getattr(domain_policy, "out_of_distribution", "review") != "warn"

    def _left_out(self, domain_policy) -> tuple | None:
        """What routes each calibration family as a new kind of question (its leave-one-family-out scores, as
        :func:`hguard._policy_fit.withdrawn_on_new_families` takes them), or None where the file carries none."""
        left_out = self.family_scores
        if left_out is None or left_out.family is None:
            return None
        return (left_out.risk, left_out.hallucinated, left_out.family,
                left_out.out_of_distribution if self._review_far(domain_policy) else None)

    def _new_family_figure(self, thresholds, domain_policy) -> dict[str, Any] | None:
        """:func:`hguard._policy_fit.new_family_figure` of this file's calibration scores for ``thresholds`` fitted
        for ``domain_policy``, kept for the last thresholds asked: the guard's refit withdraws by it
        (:meth:`fit_thresholds`), then warns by it (:meth:`refit_warnings`), and with 400 kinds of question each
        took 7 s. Keyed by all it reads of the thresholds and the policy (the scores are this frozen record's)."""
        from ._policy_fit import new_family_figure

        cs = self.calibration_scores
        assert cs is not None and cs.family is not None
        per_family = getattr(domain_policy, "certify", "pooled") == "per_family"
        key = (thresholds.target, thresholds.confidence, thresholds.abstain_precision, thresholds.accept_below,
               per_family, self._review_far(domain_policy))
        kept = self.__dict__.get("_family_figure")
        if kept is None or kept[0] != key:
            kept = (key, new_family_figure(thresholds, cs.risk, cs.hallucinated, cs.family, per_family=per_family,
                                           left_out=self._left_out(domain_policy)))
            object.__setattr__(self, "_family_figure", kept)
        return kept[1]

    def refit_warnings(self, domain_policy, thresholds, label: str) -> list[str]:
        """What ``hguard calibrate`` says of a certified accept threshold (:func:`hguard._policy_fit.
        accept_threshold_warnings`: one of 1.0, which accepts every answer; held-out families over the target), said
        of ``thresholds``, fitted from this file's scores for ``domain_policy``, when they were refitted for another
        target or confidence than the calibration's (``refitted_from``); [] otherwise. Each line opens with ``label``
        ("domain 'x'") and the refit."""
        from ._policy_fit import accept_threshold_warnings

        if thresholds is None or thresholds.refitted_from is None or not thresholds.accept_below \
                or thresholds.hand_set_measured is not None or self.calibration_scores is None:
            return []
        cs, held = self.calibration_scores, self.held_out_scores
        over: list = []
        if cs.family is not None:
            fig = self._new_family_figure(thresholds, domain_policy)
            over = fig["families_over_target"] if fig is not None else []
        rate = sum(held.hallucinated) / len(held.hallucinated) if held is not None and len(held.hallucinated) else None
        was = thresholds.refitted_from
        who = (f"{label}, its thresholds refitted when the guard loaded the probe for the policy's target "
               f"{thresholds.target:g} at confidence {thresholds.confidence:g} (calibrated for target {was['target']:g} "
               f"at confidence {was['confidence']:g})")
        return accept_threshold_warnings(
            who, accept_below=thresholds.accept_below, target=thresholds.target, rate=rate,
            n=len(held.hallucinated) if held is not None else 0, fitted=(int(sum(cs.hallucinated)), len(cs.hallucinated)),
            families_over=over,
            set_target="the policy's target_hallucination_rate", details="the calibration's report.md: each family")

    @classmethod
    def create(cls, probe, *, name: str, settings: GenerationSettings, fingerprints: Mapping[str, str],
               **fields) -> "CalibratedDomain":
        """A new calibration's record (before it is saved): ``fingerprints`` of the setup (model, chat
        template, system prompt, context prompt), ``settings`` the answers were generated with, and the
        fitted objects as keyword arguments (``merger``, ``thresholds``, ``calibration_scores``, ...);
        ``extra`` carries the rest of the record (metrics, split, data hash, ...)."""
        scores = fields.pop("calibration_scores", None)
        if scores is not None and not isinstance(scores, CalibrationScores):
            scores = CalibrationScores.from_dict(scores)
        for key in ("held_out_scores", "family_scores"):
            if isinstance(fields.get(key), Mapping):
                fields[key] = CalibrationScores.from_dict(fields[key])
        fps = {k: v for k, v in fingerprints.items() if k in FINGERPRINT_KEYS}
        return cls(probe=probe, name=name, prompt_mode=settings.prompt_mode, generation=settings, generation_recorded=True,
                   fingerprints=fps, calibration_scores=scores, **fields)


__all__ = ["CalibratedDomain", "CalibrationScores", "FINGERPRINT_KEYS"]
