"""A domain's routing thresholds (:class:`Thresholds`, fitted or manual) and how the policy's manual
overrides combine with fitted ones (:func:`effective_thresholds`)."""

from __future__ import annotations

import math

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from hguard._numerics import is_real
from hguard._policy_values import _fmt
from hguard._stats import clopper_pearson_upper
from hguard.errors import InputError, ProbeError
from hguard.errors import shown as _short

if TYPE_CHECKING:
    from hguard.policy import DomainPolicy


# A fitted abstain threshold that abstains on at least this share of the calibration answers is named as such
# (by the fit's method and each abstain reason): the risk then singles out no answer.
ABSTAINS_ON_NEARLY_ALL = 0.95


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
    # a hand-set accept_below measured on the calibration's out-of-fold answers (see measure_hand_set): what it
    # accepted there and the upper bound of their hallucination rate; a measurement, not a certificate
    hand_set_measured: Mapping[str, Any] | None = None
    # the abstain threshold the fit certified (abstain_above, abstained_share, abstained_precision_lcb) when it raised
    # abstain_above above it to stay at or above accept_below; withdrawing the accept threshold restores it
    certified_abstain: Mapping[str, Any] | None = None
    # the target and confidence the calibration certified (its stored thresholds'), when these thresholds were refitted
    # from its scores for another (the policy's, when the guard loaded the probe): each accept reason says so
    refitted_from: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        for name in ("accept_below", "abstain_above"):
            value = getattr(self, name)
            if not is_real(value) or not (0.0 <= value <= 1.0):
                raise InputError(f"Thresholds.{name} must be a number in [0, 1], got {_short(value)}")
        if self.accept_below > self.abstain_above:
            raise InputError(
                f"Thresholds.accept_below ({self.accept_below}) is greater than abstain_above "
                f"({self.abstain_above}); accept_below must be <= abstain_above"
            )
        for name in ("target", "confidence"):
            value = getattr(self, name)
            if not is_real(value) or not (0.0 < value < 1.0):
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
            if value is not None and (not is_real(value) or not (0.0 <= value <= 1.0)):
                raise InputError(f"Thresholds.{name} must be None or a number in [0, 1], got {_short(value)}")
        if not isinstance(self.method, str):
            raise InputError(f"Thresholds.method must be a string, got {_short(self.method)}")
        m = self.hand_set_measured
        if m is not None and (not isinstance(m, Mapping) or set(m) != set(_MEASURED_KEYS)):
            raise InputError(f"Thresholds.hand_set_measured must be None or a mapping of {', '.join(_MEASURED_KEYS)}, "
                             f"got {_short(m)}")
        c = self.certified_abstain
        if c is not None and (not isinstance(c, Mapping) or set(c) != set(_CERTIFIED_ABSTAIN_KEYS)
                              or not is_real(c["abstain_above"]) or not 0.0 <= c["abstain_above"] <= self.abstain_above):
            raise InputError(f"Thresholds.certified_abstain must be None or a mapping of "
                             f"{', '.join(_CERTIFIED_ABSTAIN_KEYS)} (an abstain_above in [0, abstain_above]), got {_short(c)}")
        r = self.refitted_from
        if r is not None and (not isinstance(r, Mapping) or set(r) != {"target", "confidence"}
                              or not all(is_real(v) and 0.0 < v < 1.0 for v in r.values())):
            raise InputError(f"Thresholds.refitted_from must be None or a mapping of target and confidence (numbers "
                             f"strictly between 0 and 1), got {_short(r)}")

    def accepting_nothing(self, why: str) -> Thresholds:
        """These thresholds with the accept threshold withdrawn (accept nothing), ``why`` said after the method; the
        abstain threshold stands, or goes back to the certified one where the fit raised it to stay at or above the
        accept threshold now withdrawn (:attr:`certified_abstain`)."""
        back: dict[str, Any] = {}
        if self.certified_abstain is not None:
            back = {**self.certified_abstain, "certified_abstain": None}
            why += f"; abstain_above back to its certified {_fmt(back['abstain_above'])}"
        return replace(self, accept_below=0.0, coverage=0.0, accepted_error_rate=None, accepted_error_ucb=None,
                       method=f"{self.method}; {why}", **back)

    def route_of(self, risk: float) -> str:
        """The route these thresholds alone give ``risk`` ("accept", "review" or "abstain"; a risk that is
        not a number reviews). The guard's :func:`hguard.policy.decide` adds every other rule."""
        if not is_real(risk) or not math.isfinite(risk):
            return "review"
        return "abstain" if risk >= self.abstain_above else "accept" if risk < self.accept_below else "review"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; :meth:`from_dict` reads it back."""
        out = asdict(self)
        for key in ("hand_set_measured", "certified_abstain", "refitted_from"):
            if getattr(self, key) is None:
                del out[key]  # thresholds without it (a probe file's) read as before
            else:
                out[key] = dict(getattr(self, key))
        return out

    def hand_set_sentence(self) -> str | None:
        """What the hand-set accept_below did on the calibration's answers, in one clause (None when it was
        not measured)."""
        m = self.hand_set_measured
        if m is None:
            return None
        if not m["accepted"]:
            return (f"on the calibration's {m['n']} out-of-fold answers it accepts none, so they bound nothing")
        met = "within" if m["upper_bound"] <= m["target"] else "above"
        return (f"on the calibration's {m['n']} out-of-fold answers it accepts {m['accepted']}, {m['hallucinated']} of "
                f"them hallucinated ({_fmt(100 * m['rate'])}%; at most {_fmt(100 * m['upper_bound'])}% at confidence "
                f"{_fmt(m['confidence'])}, {met} the target {_fmt(m['target'])}), a measurement on the scores the "
                "threshold may have been chosen from, not a certificate")

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


_CERTIFIED_ABSTAIN_KEYS = ("abstain_above", "abstained_share", "abstained_precision_lcb")
_MEASURED_KEYS = ("accept_below", "n", "accepted", "hallucinated", "rate", "upper_bound", "confidence", "target")


def measure_hand_set(accept_below: float, risk: Sequence[float], hallucinated: Sequence[int], *, target: float,
                     confidence: float) -> dict[str, Any]:
    """What a hand-set ``accept_below`` accepts among a calibration's out-of-fold answers (``risk``,
    ``hallucinated``): how many, how many of them hallucinated, and the exact (Clopper-Pearson) upper bound of
    that rate at ``confidence``. For one fixed threshold the bound is a binomial test like the fitted one's; a
    threshold chosen by looking at these scores (the report's risk-coverage curve) is not certified by them."""
    accepted = [int(y) for r, y in zip(risk, hallucinated) if r < accept_below]
    n_acc, k = len(accepted), sum(accepted)
    return {"accept_below": accept_below, "n": len(risk), "accepted": n_acc, "hallucinated": k, "rate": k / n_acc if n_acc else None,
            "upper_bound": clopper_pearson_upper(k, n_acc, confidence), "confidence": confidence, "target": target}


def accepts_uncertified(domain_policy: DomainPolicy | None, thresholds: Thresholds | None) -> bool:
    """Whether the domain accepts under the policy's own ``accept_below`` with no certified bound behind it
    (:func:`effective_thresholds` keeps the fitted bound only for the fitted threshold)."""
    return (
        domain_policy is not None and domain_policy.accept_below is not None and domain_policy.accept_below > 0
        and thresholds is not None and thresholds.accepted_error_ucb is None
    )


def effective_thresholds(domain_policy: DomainPolicy, fitted: Thresholds | None,
                         scores: Any = None) -> Thresholds | None:
    """The thresholds a domain routes with: manual overrides in the policy win over fitted ones.

    ``scores`` (the calibration's out-of-fold ``risk`` and ``hallucinated``) measure a hand-set accept_below
    that differs from the fitted one (``hand_set_measured``): no certificate, but the evidence the calibration
    holds about it.

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
    # the fitted abstain side; the certified one where the fit raised it only to stay at or above its own accept_below
    fitted_abstain = {k: getattr(fitted, k) for k in _CERTIFIED_ABSTAIN_KEYS}
    note = []
    if accept != fitted.accept_below and fitted.certified_abstain is not None:
        fitted_abstain = dict(fitted.certified_abstain)
        if manual_abstain is None:
            note.append(f"abstain_above back to its certified {_fmt(fitted_abstain['abstain_above'])}, raised only to "
                        "stay at or above the fitted accept_below")
    abstain = manual_abstain if manual_abstain is not None else fitted_abstain["abstain_above"]
    if accept > abstain:
        # Keep the operator's explicit number and move the other side, in the
        # direction that accepts less.
        if manual_accept is not None and manual_abstain is None:
            # raised only to a threshold the walk certified (a review: raised to the manual accept_below itself, it
            # abstained on answers no test had passed): the fit's own, where it lies at or above, else 1
            if accept <= fitted.abstain_above:
                fitted_abstain = {k: getattr(fitted, k) for k in _CERTIFIED_ABSTAIN_KEYS}
                abstain = fitted.abstain_above
                note.append(f"abstain_above at the fit's certified {_fmt(abstain)}, at or above the manual accept_below")
            else:
                abstain = 1.0
                note.append("abstain_above 1 (abstain only on answers that decline): no certified abstain threshold "
                            "lies at or above the manual accept_below")
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
    same_abstain = abstain == fitted_abstain["abstain_above"]
    measured = None
    if not same_accept and accept > 0 and scores is not None and len(scores.risk):
        measured = measure_hand_set(accept, scores.risk, scores.hallucinated, target=fitted.target,
                                    confidence=fitted.confidence)
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
        abstained_share=fitted_abstain["abstained_share"] if same_abstain else None,
        abstained_precision_lcb=fitted_abstain["abstained_precision_lcb"] if same_abstain else None,
        hand_set_measured=measured,
        certified_abstain=fitted.certified_abstain if same_accept and same_abstain else None,
        refitted_from=fitted.refitted_from,
    )
