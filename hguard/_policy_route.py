"""Routing one scored answer: :func:`decide` (accept, review or abstain, failing closed, with one reason
per fact used) and :func:`choose_domain` (the policy domain most similar to a prompt)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hguard._policy_thresholds import ABSTAINS_ON_NEARLY_ALL, Thresholds, accepts_uncertified
from hguard._numerics import finite_number
from hguard._numerics import is_real
from hguard._policy_values import _finite_unit, _fmt, _fmt_apart
from hguard.errors import shown as _short

if TYPE_CHECKING:
    from hguard.policy import DomainPolicy, Policy

ACCEPT: Literal["accept"] = "accept"
REVIEW: Literal["review"] = "review"
ABSTAIN: Literal["abstain"] = "abstain"
Route = Literal["accept", "abstain", "review"]


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



def _abstains(risk: float, thresholds: Thresholds, label: str) -> str:
    """The abstain reason; when the threshold abstains on nearly every calibration answer it says so, since
    then the risk does not single this answer out: the model is wrong on nearly every answer of the domain."""
    shown, above = _fmt_apart(risk, thresholds.abstain_above)
    why = f"risk {shown} >= abstain_above {above} for {label}: abstain"
    share, lcb = thresholds.abstained_share, thresholds.abstained_precision_lcb
    if share is not None and share >= ABSTAINS_ON_NEARLY_ALL:
        why += (f" (this threshold abstains on {share:.0%} of the calibration answers"
                + (f", of which at least {lcb:.0%} were hallucinated" if lcb is not None else "")
                + ": the domain abstains on nearly every answer, right ones included)")
    return why

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
    declined: str | None = None,
    unscored: str | None = None,
    holds: Sequence[str] = (),
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
    ``policy.unknown_domain``). ``declined`` is the wording with which the answer itself declines
    (:func:`hguard.calibrate.judge.declines`: "I don't know", "the context does not say", "" for an
    empty answer): such an answer abstains by rule, since it asserts nothing for the risk to certify
    (calibration leaves these answers out of the risk model for the same reason). ``unscored`` says why
    the domain's calibrations cannot score this kind of request (a request with context in a domain
    calibrated closed-book only, or the reverse): it routes to review with that one reason, in place
    of the generic "no risk score" and "no thresholds" ones, and first after a declined answer's (it decides the route
    whatever else is found: review lists show the first reason). ``holds`` are reasons to review an answer
    whose scores stand (a knowledge conflict under ``knowledge_conflict = "review"``): they never
    accept, the risk is still set against the thresholds in the reasons, and one at or above
    ``abstain_above`` abstains.

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

    if declined is not None:
        shown_wording = f"declined to answer ({declined!r})" if declined else "gave an answer without a word in it"
        close(ABSTAIN, f"the model {shown_wording}: it asserts nothing the risk could certify; abstain")
    if unscored is not None:  # no calibration scores this kind of request: it decides the route, so it comes first
        close(REVIEW, unscored)  # (the first reason is what a review list shows; it was behind an out-of-distribution one)
    for problem in problems:  # a finding that the question or answer lies outside the calibration is no fault: said as it is
        close(REVIEW, problem if problem.startswith((OUT_OF_DISTRIBUTION, OUTSIDE_CALIBRATION))
              else f"scoring problem: {problem}")
    for hold in holds:
        close(REVIEW, hold)

    usable_risk = float(risk) if is_real(risk) and math.isfinite(risk) and 0.0 <= risk <= 1.0 else None
    risk_ok = usable_risk is not None
    if unscored is None and risk is None:  # (an unscored request's one reason is said above)
        no_domain = domain_policy is None and not domain_chosen
        close(REVIEW, "no risk score: no domain was chosen, so no probe scored the answer" if no_domain
              else "no risk score: the answer could not be scored")
    elif unscored is None and not risk_ok:
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
        if unscored is None:  # else the reason why nothing scores this request is already given
            manual = " and ".join(f"{k} = {_fmt(v)}" for k, v in (("accept_below", domain_policy.accept_below),
                                  ("abstain_above", domain_policy.abstain_above)) if v is not None)
            if not manual:
                why = f"{label} has no calibrated probe thresholds and no manual accept_below/abstain_above"
            elif not risk_ok:  # the guard's case: the domain's probe is unusable (refused, contested, another model's)
                why = (f"{label}: the policy's manual {manual} can only be set against a probe's risk score, and no usable probe "
                       "scored this answer (reason above)")
            else:
                why = f"{label} was routed without thresholds, so nothing set the policy's manual {manual} against its risk"
            close(policy.unknown_domain, f"{why}; routing by unknown_domain = {policy.unknown_domain!r}")
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
    shown_risk = usable_risk

    if closed_routes and len(closed_routes) == len(holds) and usable_risk is not None and thresholds is not None:
        # only holds: the risk was scored as usual and is set against the thresholds
        if usable_risk >= thresholds.abstain_above:
            reasons.append(_abstains(usable_risk, thresholds, label))
            closed_routes.append(ABSTAIN)
        else:
            shown, above = _fmt_apart(usable_risk, thresholds.abstain_above)
            reasons.append(f"risk {shown} < abstain_above {above} for {label}: review for the reason above (never "
                           "accepted)")
    elif closed_routes and ABSTAIN not in closed_routes and usable_risk is not None and thresholds is not None \
            and usable_risk >= thresholds.abstain_above:
        # the risk would abstain, but the reason above means no certificate holds for it: said, not hidden
        shown, above = _fmt_apart(usable_risk, thresholds.abstain_above)
        reasons.append(f"risk {shown} >= abstain_above {above} for {label}, but the thresholds are not certified for "
                       "this answer (reason above): review, not abstain")
    if closed_routes:
        route: Route = ABSTAIN if ABSTAIN in closed_routes else REVIEW
        if route == ABSTAIN and REVIEW in closed_routes:  # the reasons name both: say which one holds
            reasons.append("abstain: of the routes the reasons above give, abstaining is the stricter and holds")
        return Decision(route, shown_risk, tuple(reasons), thresholds_dict)

    assert domain_policy is not None and thresholds is not None and usable_risk is not None  # all checked above
    r = usable_risk
    accept_below, abstain_above = thresholds.accept_below, thresholds.abstain_above

    if r >= abstain_above:
        reasons.append(_abstains(r, thresholds, label))
        return Decision(ABSTAIN, r, tuple(reasons), thresholds_dict)

    shown, below, above = _fmt_apart(r, accept_below, abstain_above)
    if r < accept_below:
        blockers: list[str] = []
        if grounding is None and domain_policy.require_grounding:
            blockers.append(f"{label} requires grounding but no context was given")
        if (
            grounding is not None
            and domain_policy.min_grounding is not None
            and grounding < domain_policy.min_grounding
        ):
            support, least = _fmt_apart(grounding, domain_policy.min_grounding)
            blockers.append(f"grounding support {support} < min_grounding {least} for {label}")
        if not blockers:
            if accepts_uncertified(domain_policy, thresholds):
                basis = "a manual accept_below from the policy file: no calibration guarantee holds for it"
                measured = thresholds.hand_set_sentence()
                if measured:
                    basis += f"; {measured}"
            else:
                basis = f"target hallucination rate {_fmt(thresholds.target)} at confidence {_fmt(thresholds.confidence)}"
                was = thresholds.refitted_from
                if was is not None:  # the guard's start-up warnings say what calibrate would have said of it
                    basis += (f", refitted for target {_fmt(thresholds.target)} when the guard loaded the probe (its "
                              f"calibration certified target {_fmt(was['target'])} at confidence "
                              f"{_fmt(was['confidence'])})" + (": a threshold of 1 accepts every answer"
                                                               if accept_below >= 1.0 else ""))
            reasons.append(f"risk {shown} < accept_below {below} for {label} ({basis}): accept")
            return Decision(ACCEPT, r, tuple(reasons), thresholds_dict)
        reasons.append(f"risk {shown} < accept_below {below} for {label}, but:")
        reasons.extend(blockers)
        reasons.append("accept blocked: review")
        return Decision(REVIEW, r, tuple(reasons), thresholds_dict)

    reasons.append(f"risk {shown} is between accept_below {below} and abstain_above {above} for {label}: review")
    # a fitted 0 reads like a number that could be met (a monitor's tightening to 0 says so in its own reason)
    if accept_below <= 0.0 and domain_policy.accept_below is None and "tightened by the monitor" not in thresholds.method:
        reasons.append(
            f"no accept threshold is certified for {label} at target {_fmt(thresholds.target)} with confidence "
            f"{_fmt(thresholds.confidence)}: no answer of it is accepted until the domain is recalibrated "
            "with more or better-separated answers (or, without a guarantee, the policy hand-sets accept_below: see "
            "the warning the guard logs at start-up of what it accepts among the calibration's answers)"
        )
    return Decision(REVIEW, r, tuple(reasons), thresholds_dict)


# How a problem passed to decide() says the question lies outside the domain's calibration (not a fault in scoring)
OUT_OF_DISTRIBUTION = "out of distribution: "
# How a problem passed to decide() says a signal of the answer lies beyond the merger's calibration
# (:class:`hguard._policy_risk.OutsideCalibration`): a finding about the answer, not a fault in scoring
OUTSIDE_CALIBRATION = "outside the calibration: "

# How a reason says where an answer was routed (not why it was held): the review page skips it.
CHOSEN_WITH_SIMILARITY = "chosen with similarity"
#: how the note on an answer cut at max_new_tokens and routed as scored (cut_answer = "mark") ends: it held nothing,
#: so a review list skips it too (an item queued before the deciding reason came first had it first)
CUT_NOTE_END = "where accepted (cut_answer = 'mark'; 'review' holds it)"
#: opens the reasons of a review item that is a spot-check of an accepted answer (the queue's line, not the guard's)
SPOT_CHECK_REASON = "spot-check of an accepted answer: "


def choose_domain(similarities: Mapping[str, float], policy: Policy) -> tuple[str | None, str]:
    """Pick the policy domain most similar to a prompt, or None with the reason why not.

    ``similarities`` maps domain names to a similarity score (e.g. cosine
    similarity of the prompt to the domain's calibration prompts). Names not
    in the policy and non-finite scores are ignored. An exact tie for the best
    score is ambiguous and returns None, so :func:`decide` uses
    ``default_route`` rather than guessing.
    """
    return pick_domain(similarities, policy.domains, policy.domain_min_similarity)


def pick_domain(similarities: Mapping[str, float], domains: Collection[str],
                min_similarity: float) -> tuple[str | None, str]:
    """:func:`choose_domain` among ``domains`` at ``min_similarity`` (a calibration report's router, before any
    policy exists, picks as the guard does)."""
    read = {name: finite_number(s) for name, s in similarities.items() if name in domains}  # "0.9", True: none
    scored = {name: s for name, s in read.items() if s is not None}
    if not scored:
        return None, "no policy domain has a similarity score for this prompt"
    best = max(scored.values())
    top = sorted(name for name, s in scored.items() if s == best)
    if best < min_similarity:
        similarity, least = _fmt_apart(best, min_similarity)
        return None, f"best domain {top[0]!r} has similarity {similarity} < domain_min_similarity {least}"
    if len(top) > 1:
        return None, f"domains {', '.join(map(repr, top))} tie at similarity {_fmt(best)}"
    runner_up = max(((s, name) for name, s in scored.items() if name != top[0]), default=None)
    nearest = f" (next: {runner_up[1]!r} {_fmt(runner_up[0])})" if runner_up is not None else ""  # a near tie shows
    return top[0], f"domain {top[0]!r} {CHOSEN_WITH_SIMILARITY} {_fmt(best)}{nearest}"
