"""The guarantee, watched in production: spot-checks of accepted answers, drift, and fail-safe tightening.

The thresholds promise "at most ``target`` hallucinations among accepted answers, with probability
``confidence``" for the calibration distribution. This module measures whether that still holds on live
traffic, from the audit log and the review queue alone:

* **Spot-checks.** A seeded share of accepted answers (``spot_check_rate``, at least
  ``spot_check_min_per_day`` a day) also goes to the review queue, marked as a spot-check; the user still gets
  the accepted answer. Selection is ``u < rate`` with ``u = HMAC-SHA256(seed, decision audit id)`` read as a
  number in [0, 1) (:func:`selection_u`). The audit log assigns the id, so the guard cannot pick it, and an
  auditor holding the seed recomputes every selection (:func:`check_selection`).
* **Live estimate.** Per domain, reviewed spot-checks give the hallucination rate among accepted answers and
  its bounds at the policy's confidence (``live_bounds``): by default the exact Clopper-Pearson bounds, which
  hold for one look, so that run after run on the growing record the breach rules err toward tightening; or
  a confidence sequence (``sequential``, :func:`hguard._stats.sequential_bounds`), which holds however often
  the monitor runs, so a healthy domain tightens no more often than ``1 - confidence`` says, at the price of
  more spot-checks before a rise is caught. Verdicts on answers the guard routed to review are reported
  beside it.
* **Drift.** Two-sample Kolmogorov-Smirnov tests of the latest ``drift_window`` live risks (per probe), domain
  similarities (and an ``ood_distance`` signal, when decisions record one) against the domain's first window
  of live traffic. Not against the risks stored in the probe file: those are out-of-fold scores, each from a
  probe fitted without that answer's family or fold, not the shipped probe's, and they differed from its live
  risks on answers like the calibration's own (a statistician's trial: p = 0.00035 on 493 held-out answers, and
  one window in eleven flagged at p < 0.001). That comparison is reported (``risk_against_calibration``) and
  triggers nothing.
* **Fail-safe.** When the live bound crosses the target (``breach_rule``: the lower bound, i.e. the target is
  shown broken, by default; or the upper bound, i.e. the target is no longer certified, judged once there are
  as many reviewed spot-checks as a clean record needs to certify it) or drift passes ``drift_p_value``, the
  domain tightens: to the accept
  threshold certified for ``tightened_target`` on its calibration scores (``on_breach = "stricter"``), or
  accepting nothing (``"review"``). The change and its evidence are appended to the audit chain
  (``monitor_tighten``); the guard reads the state file that mirrors the chain before routing. It stays until
  a person lifts it (``hguard monitor --lift``, audited as ``monitor_lift``) or the domain is recalibrated in a
  way that routes its answers otherwise (a new ``calibration_id``; also audited) on other answers than it was
  calibrated on when tightened (a new ``data_hash``: the same answers refitted, with other settings or by
  another version, are no answer to the live evidence), unless the policy hand-sets the domain's
  ``accept_below``, which no calibration certifies: then only a person lifts it. A lift by recalibration holds
  the guards scoring with a probe a tightening was decided under (the record names the new probe and those it
  replaced): such a guard (not restarted since) accepts nothing until it loads another probe or a person lifts it;
  any other probe is served. No recalibration lifts a domain back onto such a probe (a probe folder rolled back).

A monitor run appends one ``monitor_check`` record per domain (estimate, counts, drift tests, review backlog), so the chain
holds every step. The pure parts (bounds, selection, drift test, state transitions) take plain data.

This module holds the run (:func:`run_monitor`, :func:`lift`, the spot-check selection and its check) and
re-exports the rest: the statistics from ``hguard._monitor_stats``, the domain states and the state file from
``hguard._monitor_state``, the report for people from ``hguard._monitor_report``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._audit_export import linked_decisions, period
from ._monitor_report import public_report, summary, write_html
from .audit import append_warned
from ._monitor_state import (
    CHECK,
    LIFT,
    SPOT,
    STATE_FORMAT,
    TIGHTEN,
    DomainState,
    MonitorState,
    breached_probe_ids,
    joined_probe_ids,
    probe_ids,
    read_state_file,
    replay,
    tightened_thresholds,
    transition,
    write_state,
)
from ._monitor_stats import breached, drift_test, live_bounds, min_checks, seed_id, selection_u
from ._numerics import finite_number
from ._stats import clopper_pearson_interval, clopper_pearson_lower, clopper_pearson_upper
from ._text import hidden_characters_in
from .errors import AuditIntegrityError, HGuardError, InputError, PolicyError
from .errors import shown as _short

__all__ = [
    "SPOT",
    "STATE_FORMAT",
    "DomainState",
    "MonitorState",
    "check_selection",
    "breached",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "drift_test",
    "lift",
    "min_checks",
    "policy_id",
    "public_report",
    "replay",
    "run_monitor",
    "seed_id",
    "selection_u",
    "spot_check_decision",
    "summary",
    "tightened_thresholds",
    "transition",
    "write_html",
    "write_state",
]


# ------------------------------------------------------------------------------------------ policy identity



def _similarity_to(choice: Mapping[str, Any], name: str) -> float | None:
    """A decision's question similarity to domain ``name``, as the router measures it: among the similarities of
    an automatic choice, or the named domain's own when the request named it (``domain=``, as the adapters'
    README advises: such traffic left the similarity drift untested for ever)."""
    sims = choice.get("similarities")  # a router of one's own may have put anything there: numbers only
    if isinstance(sims, Mapping) and sims.get(name) is not None:
        return finite_number(sims[name])
    if choice.get("given") and choice.get("chosen") == name:
        return finite_number(choice.get("similarity"))
    return None

def policy_id(policy) -> str:
    """What the guarantee is: every domain's target and confidence (sha256, 16 hex). Logs and queues written
    under another guarantee are evidence of another claim, so the monitor counts them apart (per guarantee), never
    as evidence of this one."""
    body = {d: [dp.target_hallucination_rate, dp.confidence] for d, dp in sorted(policy.domains.items())}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def guarantee_of(policy, domain: str | None) -> dict[str, float] | None:
    """The guarantee a decision of ``domain`` was made under (its target and confidence), recorded with it, so
    that the monitor counts it as long as that domain's guarantee stands, whatever else of the policy changed
    (a domain added, a rate tuned); None for a domain the policy does not list."""
    dp = policy.domains.get(domain) if isinstance(domain, str) else None
    return {"target": dp.target_hallucination_rate, "confidence": dp.confidence} if dp is not None else None


def policy_hash(policy) -> str:
    """Which policy was in force, exactly (sha256, 16 hex): of its settings as loaded (a file's, or one built
    or changed in code). Unlike :func:`policy_id` (the guarantee: targets and confidences), it changes with
    any setting, a hand-set threshold or a spot-check rate included. Paths count as the file names them, not
    where it lies: one in the policy's folder or beside it (at most two levels up: ``../models``) relative to
    it, else one in hguard's own data as ``package:`` and one in the home folder from ``~``; as named, symlinks
    not followed; one the file names absolutely, as it names it. So a policy folder moved or copied elsewhere
    (with its sibling folders) keeps its hash, and a policy file copied anywhere keeps it.
    ``hguard audit verify --policy FILE`` says which of a log's decisions were made under FILE."""
    import os

    from ._resources import DATA_DIR, home

    # paths as named (normalised, symlinks not followed: a folder linked in names the same path wherever it points)
    folder = os.path.normpath(os.path.abspath(policy.source)) if getattr(policy, "source", None) else None
    folder = os.path.dirname(folder) if folder is not None else None
    others = [(os.path.normpath(str(DATA_DIR)), "package:")]
    # the packaged policy's log, queue and monitor state, wherever $HGUARD_STATE_DIR put them: named as in the default
    # state folder, so that the policy keeps one hash whatever the variable says (and the hash of before it was read)
    state = getattr(policy, "_state_dir", None)
    state = os.path.normpath(str(state)) if state is not None else None
    user = home()
    if user is not None:  # without one (a container run with --user) no path of the policy came from '~'
        others.append((os.path.normpath(str(user)), "~/"))

    def portable(v, named=None):
        # ``named``: the file's own value at this place, when it has one
        if isinstance(v, dict):
            return {k: portable(x, named.get(k) if isinstance(named, dict) else None) for k, x in v.items()}
        if isinstance(v, list):
            same = isinstance(named, list) and len(named) == len(v)
            return [portable(x, named[i] if same else None) for i, x in enumerate(v)]
        if isinstance(v, str) and os.path.isabs(v):
            path = os.path.normpath(v)
            if isinstance(named, str) and os.path.isabs(named) and os.path.normpath(named) == path:
                return path  # the file names it absolutely: the same wherever the file is copied
            base, name = others[0]  # hguard's own data first: a policy folder near the install names it "package:" too
            if path == base or path.startswith(base.rstrip("/") + "/"):
                return name + Path(os.path.relpath(path, base)).as_posix()
            if state is not None and path.startswith(state.rstrip("/") + "/"):  # the packaged policy's own files
                return "~/.local/state/hguard/" + Path(os.path.relpath(path, state)).as_posix()
            if folder is not None:  # in the policy folder ("./x"), or beside it ("./../models/x.gguf", "./../my-probes")
                rel = Path(os.path.relpath(path, folder)).as_posix()
                if not rel.startswith("../../../") and rel != "../../..":
                    return "./" + rel
            for base, name in others:
                if path == base or path.startswith(base.rstrip("/") + "/"):
                    return name + Path(os.path.relpath(path, base)).as_posix()
        return v

    body = json.dumps(portable(policy.model_dump(mode="json"), getattr(policy, "_named", None)), sort_keys=True,
                      default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def spot_check_decision(policy, domain: str, record_id: str, day_count: int) -> dict | None:
    """The spot-check selection for one accepted answer: None when not selected, else what to record.

    ``day_count`` is how many spot-checks the domain took today; below ``spot_check_min_per_day`` the answer
    is taken whatever its ``u`` (the guard counts per process and UTC day, so a restart can take a few more)."""
    dp = policy.domain(domain)
    if dp is None:
        return None
    u = selection_u(policy.monitor.seed, record_id)
    if u < dp.spot_check_rate:
        why = f"u {u:.6f} < spot_check_rate {dp.spot_check_rate}"
    elif day_count < dp.spot_check_min_per_day:
        why = f"minimum per day: {day_count} of spot_check_min_per_day {dp.spot_check_min_per_day} selected so far today"
    else:
        return None
    return {"decision_audit_id": record_id, "domain": domain, "u": u, "rate": dp.spot_check_rate,
            "min_per_day": dp.spot_check_min_per_day, "selected_because": why}  # fmt: skip


def under_other_seed(decision: Mapping[str, Any], ours: str, replaced_before_ids: bool) -> bool:
    """Whether an accepted decision was selected under another spot-check seed than the policy's (``ours``: its
    :func:`seed_id`): it records another seed's id, or it records none (written before 0.3.0) and the seed was replaced
    since such decisions were selected (``replaced_before_ids``: :func:`_seed_replaced_before_ids`). The policy's seed
    cannot recompute its selection: the monitor does not check it (:func:`check_selection`), and a guard start does not
    take it for a spot-check whose record a stopped process lost."""
    return decision.get("spot_check_seed_id", None if replaced_before_ids else ours) != ours


def _seed_replaced_before_ids(policy, records: Sequence[Mapping[str, Any]], spots: Mapping[Any, Mapping[str, Any]]) -> bool:
    """Whether the seed was replaced since the accepted decisions that record no seed id (hguard before 0.3.0) were
    selected: their spot-check records hold the ``u`` the seed of the time gave, and not one of them is what the
    policy's seed gives (an altered selection under an unchanged seed leaves the others matching, and is a
    mismatch)."""
    idless = {r["id"] for r in records if r.get("kind") == "decision" and r.get("route") == "accept"
              and "spot_check_seed_id" not in r and r.get("domain") in policy.domains}
    read = ((rid, finite_number(s.get("u"))) for rid, s in spots.items() if rid in idless)
    stored = [(rid, u) for rid, u in read if u is not None]  # a u that is no number is a mismatch, no sign of a seed
    return bool(stored) and all(abs(u - selection_u(policy.monitor.seed, rid)) > 1e-12 for rid, u in stored)


def check_selection(policy, records: Sequence[Mapping[str, Any]]) -> dict:
    """Recompute every accepted decision's selection from the seed: counts and the mismatches, per domain.

    A mismatch is an accepted decision with ``u < rate`` and no spot_check record, or a spot_check record
    whose decision is not an accepted one, or whose ``u`` is not the recomputed one, or whose rate is not the one
    its decision records, or that is neither below the rate nor taken for a daily minimum above 0 (a record
    written to pick an answer by hand fails one of these; how many each process took for its minimum cannot be
    checked: the count is per guard process, which decision records do not name). A decision that records the id
    of another seed than the policy's (``spot_check_seed_id``: the seed was replaced since) is counted in
    ``other_seed`` and not checked: this seed cannot recompute its selection. So are the decisions that record no
    seed id (written before 0.3.0) when not one of their spot-checks' ``u`` is what this seed gives: the seed was
    replaced after them (with some matching, the others are mismatches as before). Those are counted in
    ``other_seed_inferred`` too: the inference rests on their spot-checks alone, and with few of them a forged
    selection under the unchanged seed reads the same (the report says so)."""
    # keyed by whatever the record names; only ids of accepted decisions reach selection_u
    spots: dict[Any, Mapping[str, Any]] = {r.get("decision_audit_id"): r for r in records if r.get("kind") == SPOT}
    out: dict[str, dict] = defaultdict(lambda: {"accepted": 0, "selected": 0, "by_rate": 0, "by_minimum": 0,
                                                "other_seed": 0, "mismatches": []})
    ours = seed_id(policy.monitor.seed)
    accepted = {}
    other = set()
    replaced_before_ids = _seed_replaced_before_ids(policy, records, spots)
    for r in records:
        # an evaluation's given answers are never spot-check candidates (the guard selects none of them)
        if r.get("kind") == "decision" and r.get("route") == "accept" and r.get("domain") in policy.domains \
                and not evaluation_decision(r):
            accepted[r["id"]] = r
            d = out[r["domain"]]
            d["accepted"] += 1
            if under_other_seed(r, ours, replaced_before_ids):
                d["other_seed"] += 1
                if "spot_check_seed_id" not in r:  # inferred, not recorded: the report says what it rests on
                    d["other_seed_inferred"] = d.get("other_seed_inferred", 0) + 1
                other.add(r["id"])
                continue
            u = selection_u(policy.monitor.seed, r["id"])
            # the rate in force when the answer was accepted (recorded since it could change); else today's
            logged_rate = finite_number(r.get("spot_check_rate"))
            logged = logged_rate is not None
            if not logged and r.get("spot_check_rate") is not None:  # written, and no rate: a selection unchecked
                d["mismatches"].append(f"decision {r['id']} records spot_check_rate {_short(r.get('spot_check_rate'))}, "
                                       "no rate: its selection cannot be checked against the rate it was accepted under")
            rate = logged_rate if logged_rate is not None else policy.domains[r["domain"]].spot_check_rate
            if u < rate and r["id"] not in spots:
                said = "recorded with it" if logged else "the policy's rate now"
                d["mismatches"].append(f"decision {r['id']} has u {u:.6f} < rate {rate:g} ({said}) but no spot-check")
    for rid, s in spots.items():
        dec = accepted.get(rid)
        d = out[s.get("domain") or "(none)"]
        if dec is None:
            d["mismatches"].append(f"spot-check {s.get('id')} names {rid!r}, not an accepted decision")
            continue
        d["selected"] += 1
        if rid in other:
            continue
        u = selection_u(policy.monitor.seed, rid)
        accepted_at = finite_number(dec.get("spot_check_rate"))  # the rate its decision was accepted under, if recorded
        minimum = s.get("min_per_day")
        # (a forged record's "abc", None or 10**400 stopped the monitor with ValueError, TypeError or OverflowError)
        recorded_u, recorded_rate = finite_number(s.get("u")), finite_number(s.get("rate"))
        if recorded_u is None or abs(recorded_u - u) > 1e-12:
            d["mismatches"].append(f"spot-check {s.get('id')} records u {_short(s.get('u'))} but the seed gives {u:.6f}")
        elif accepted_at is not None and recorded_rate != accepted_at:  # a rate of its own choosing
            d["mismatches"].append(f"spot-check {s.get('id')} records rate {_short(s.get('rate'))}, but its decision "
                                   f"{rid} was accepted under spot_check_rate {accepted_at:g}")
        elif recorded_rate is not None and u < recorded_rate:
            d["by_rate"] += 1
        elif str(s.get("selected_because", "")).startswith("minimum per day") and isinstance(minimum, int) \
                and not isinstance(minimum, bool) and minimum > 0:
            d["by_minimum"] += 1  # counted per guard process and day: several processes may each take their minimum
        else:
            d["mismatches"].append(f"spot-check {s.get('id')} has u {u:.6f} >= rate {s.get('rate')!r} and no daily "
                                   f"minimum to take it for (min_per_day {minimum!r})")
    return dict(out)


# ------------------------------------------------------------------------------------------ the monitor run


def calibrated_models(meta: Mapping[str, Sequence[Any]]) -> dict[str, set]:
    """Each domain's calibrated model fingerprints (``meta``: :func:`_probe_meta`)."""
    return {name: {cd.fingerprints.get("model_fingerprint") for cd in cds} for name, cds in meta.items()}


def made_by_another_model(record: Mapping[str, Any], calibrated: Mapping[str, set]) -> bool:
    """Whether a decision was made by another model than its domain's calibrations were (``--model`` overrides the
    policy's model and is not part of its guarantee). A record without a model fingerprint (hand-written, older),
    or a domain with none recorded, is not judged by it."""
    models = calibrated.get(str(record.get("domain"))) or set()
    made_by = record.get("model_fingerprint")
    return bool(models) and None not in models and made_by is not None and made_by not in models


def evaluation_decision(record: Mapping[str, Any]) -> bool:
    """Whether a decision scored an answer given to :meth:`hguard.guard.Guard.check` (``answer_source: "given"``) for
    an evaluation or a log scored again (``given_answer.served`` false), not one shown to users as it routed (true: the same
    model served by another server, guarded here, which is live traffic as a generated answer is): no user was served
    it, so it is no live evidence. The monitor leaves it out of every live figure (spot-check estimate, review-routed
    verdicts, drift windows, routes and accepted per day); it is still queued for review, and its queue item checked,
    as any decision's; the guard picks none of them for a spot-check."""
    return record.get("answer_source") == "given" and for_evaluation(record.get("given_answer"))


def for_evaluation(given: Any) -> bool:
    """Whether a decision's ``given_answer`` (what :meth:`hguard.guard.Guard.check` records) says its answer served no
    one: only where it says so, literally (``served`` false); any other shape (a "served" of "true", 1, missing; no
    mapping) counts as live traffic, since leaving out a served answer would hide its hallucination from the estimate.
    The guard picks spot-checks by it too."""
    return isinstance(given, Mapping) and given.get("served") is False


def _probe_meta(policy, problems: dict[str, str] | None = None) -> dict[str, list[Any]]:
    """Each domain's calibrations (closed-book, RAG or both: probe_id, calibration scores) in the policy's
    probe folders, read as the guard reads them; files that cannot be read are left out (the guard
    routes their domains to review), and why each was is put in ``problems`` when given."""
    from ._guard_plan import read_probe_folders
    from .integrity import probe_load_options

    found, errors = read_probe_folders(policy.probe_folders, probe_load_options(policy.integrity))
    if problems is not None:
        problems.update(errors)
    out: dict[str, list[Any]] = {}
    for (name, _mode), (_folder, cd) in sorted(found.items()):
        out.setdefault(name, []).append(cd)
    return out


def _probes_now(name: str, cds: list[Any], decisions: list[dict], unreadable: Mapping[str, str]) -> dict[str, Any]:
    """The probes the policy names for domain ``name`` now, why none could be read (the guard then routes every
    answer of it to review), and how many of its ``decisions`` were made by a probe it does not name now."""
    now = sorted(cd.probe_id for cd in cds)
    made = Counter(str(r.get("probe_id")) for r in decisions if r.get("probe_id") and r.get("probe_id") not in now)
    return {"probe_ids": now, "unreadable": unreadable.get(name) if not cds else None,
            "decisions_by_other_probes": sum(made.values()), "other_probe_ids": [p for p, _ in made.most_common(5)]}


def _none_certified(dp, cds: list[Any]) -> str | None:
    """Why a domain's calibration accepts no answer: none of its probes certifies an accept threshold for the
    policy's target and confidence (each fitted as the guard fits it), so every answer goes to review or abstains
    and a live figure on accepted answers holds of none (a finance team's trial: "state=normal" beside 0 accepted,
    never said). None where one is certified, where the policy hand-sets accept_below (said apart), or where no probe
    can be read (said apart: every answer to review)."""
    if dp.accept_below is not None or not cds:
        return None
    fitted = [(cd, cd.fit_thresholds(dp)) for cd in cds]
    if any(t is not None and t.accept_below > 0 for _, t in fitted):
        return None
    modes = " and ".join("RAG" if cd.prompt_mode == "rag" else str(cd.prompt_mode).replace("_", "-") for cd, _ in fitted)
    return (f"no accept threshold is certified at target {dp.target_hallucination_rate} with confidence "
            f"{dp.confidence} ({modes} calibration): nothing is accepted (every answer goes to review or abstains), so "
            "the guarantee on accepted answers is vacuous: it holds of none; recalibrate with more or better-separated "
            "answers, or hand-set accept_below")


def _stricter(dp, cds: list[Any], current: float | None) -> tuple[str, float, str]:
    """(action, accept_below, how) for a tightening under ``dp.on_breach``. A domain calibrated closed-book
    and with context has one tightened threshold: the stricter of the two, each certified on its own
    calibration answers, so it holds for both."""
    if dp.on_breach == "review":
        return "review", 0.0, "on_breach = 'review': accept nothing, every answer to review"
    target = dp.tightened_target if dp.tightened_target is not None else dp.target_hallucination_rate / 2
    if not cds or any(cd.calibration_scores is None for cd in cds):
        return "review", 0.0, "no calibration scores in the probe file to certify a stricter threshold: accept nothing"
    fitted = [(cd, cd.fit_thresholds(dp, target=target)) for cd in cds]  # pooled or per family, as the guard
    accept = min(t.accept_below for _, t in fitted)
    if current is not None:
        accept = min(accept, current)
    on = ", ".join(f"{t.n_calibration} {cd.prompt_mode.replace('_', '-')}" if len(fitted) > 1 else str(t.n_calibration)
                   for cd, t in fitted)  # fmt: skip
    how = (
        f"on_breach = 'stricter': no accept_below is certified for target {target:.4g} at confidence {dp.confidence} "
        f"on {on} calibration answers: accept nothing" if accept == 0 else
        f"on_breach = 'stricter': accept_below {accept:.4g} certified for target {target:.4g} at confidence "
        f"{dp.confidence} on {on} calibration answers"
    )
    return "stricter", float(accept), how


def _review_routed(labels: Sequence[str]) -> dict[str, Any]:
    """The verdicts on answers the guard routed to review: counts, the hallucination rate among them and its exact
    (Clopper-Pearson) 95% interval, as the spot-checks have theirs (None of each with no verdict). Answers held, not
    accepted: no estimate of the accepted answers' rate."""
    n, k = len(labels), sum(label == "hallucinated" for label in labels)
    return {"reviewed": n, "hallucinated": k, "correct": sum(label == "correct" for label in labels),
            "rate": k / n if n else None, "ci95": clopper_pearson_interval(k, n)}


def _not_queued(records: list[dict], items, queue, archived=()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decisions held for review, or picked for a spot-check, that the review queue lacks (a process stopped,
    or the queue was locked, between the decision and the queue): those a guard start puts back (from the decision
    record, or the copy kept beside the queue), and those it cannot (:func:`not_put_back`: a redacting log's record holds
    hashes, and no copy was kept; or the record is in an archive of the rotated log), which nobody reviews from the
    queue. ``archived``: what the queue keeps of its archived items (decided, then moved to an archive file by
    ``hguard review archive``): queued, as a guard start reads them."""
    from .review.queue import item_wanted, newest_file_from, not_put_back

    if queue is None:
        return {"n": 0, "items": []}, {"n": 0, "items": []}
    queued = {it.audit_id for it in items} | {a.audit_id for a in archived}
    wanted = dict.fromkeys(w[0] for r in records if (w := item_wanted(r)) is not None)
    missing = [i for i in wanted if i not in queued]
    decisions = {r["id"]: r for r in records if r.get("kind") == "decision" and r.get("id") in wanted}
    kept = queue.kept_ids() if missing else set()
    newest = newest_file_from(records) if missing else -1
    lost = {i for i in missing if i in decisions and not_put_back(decisions[i], kept, newest) is not None}
    back = [i for i in missing if i not in lost]
    gone = [i for i in missing if i in lost]  # in the log's order, as the others
    return {"n": len(back), "items": back[:5]}, {"n": len(gone), "items": gone[:5]}


def _outside(decisions: list[dict], verdict_of: Mapping[str, Mapping[str, Any]], policy) -> dict[str, Any]:
    """Decisions under this policy whose domain it does not list (no domain chosen, or a name the caller
    gave), by route, with the chain's verdicts on them: the per-domain estimates leave them out."""
    out = [r for r in decisions if r.get("domain") not in policy.domains]
    verdicts = Counter(str(verdict_of[r["id"]]["label"]) for r in out if r["id"] in verdict_of)
    return {"n_decisions": len(out), "by_domain": dict(Counter(str(r.get("domain")) for r in out)),
            "routes": dict(Counter(str(r.get("route")) for r in out)), "verdicts": dict(verdicts)}


#: the periods the review queue's decided items are counted over (a monitor run has no window of its own), in hours
BACKLOG_PERIODS = {"last_24h": 24.0, "last_7d": 7 * 24.0}


def _backlog_figures(pending: Sequence[Any], decided_at: Sequence[datetime | None], now: datetime,
                     max_age_hours: float, put_back: Mapping[str, datetime] | None = None) -> dict[str, Any]:
    """The review queue's backlog of ``pending`` (its pending items) and ``decided_at`` (the verdict times of its
    decided items, archived ones included; None where none can be read): how many wait, by kind (held for review, or a
    spot-check of an accepted answer), how long the oldest and the median have waited, in hours since the guard
    decided (the item's ``time``; one stamped after ``now`` has waited 0), or, for an item put back in the queue
    (``put_back``: item id -> the time of the first ``review_requeued`` record naming it, :func:`_put_back_times`), since it re-entered the
    queue (``pending_put_back`` counts those), and how many were decided in each of
    :data:`BACKLOG_PERIODS` up to ``now`` (one decided after it is in none). ``over_max_age``: the oldest has waited
    longer than ``max_age_hours``, or a pending item's time cannot be read (its wait is not shown to be within it)."""
    from statistics import median

    from .review._archive import _decided_at as _utc_time

    put_back = put_back or {}
    times = [(max(t, put_back[it.id]) if t is not None and it.id in put_back else t)
             for it, t in ((it, _utc_time(it.time)) for it in pending)]
    ages = sorted(max(0.0, (now - t).total_seconds() / 3600) for t in times if t is not None)
    unknown = sum(t is None for t in times)
    spot = sum(bool(it.spot_check) for it in pending)
    known = [t for t in decided_at if t is not None]
    return {
        "pending": {"total": len(pending), "held_for_review": len(pending) - spot, "spot_checks": spot},
        "oldest_pending_age_hours": ages[-1] if ages else None,
        "median_pending_age_hours": median(ages) if ages else None,
        "pending_age_unknown": unknown,
        "pending_put_back": sum(it.id in put_back for it in pending),
        "decided": {"total": len(decided_at),
                    **{k: sum(now - timedelta(hours=h) <= t <= now for t in known) for k, h in BACKLOG_PERIODS.items()},
                    "time_unknown": len(decided_at) - len(known)},
        "over_max_age": bool(unknown) or (bool(ages) and ages[-1] > max_age_hours),
    }


def _put_back_times(records: Sequence[Mapping[str, Any]]) -> dict[str, datetime]:
    """When each item the queue refused when it was decided (a ``review_queue_error`` record names its decision) was
    first put back in it (item id -> the earliest ``review_requeued`` record naming it): out of every reviewer's sight
    before, it waits for one from then on. Only those: an item put back after its row was deleted (no refusal on
    record) was in the queue since its decision, and a later put-back resets no wait (deleting rows and starting a
    guard would otherwise clear the backlog's warning); one whose process stopped between the log and the queue (no
    refusal recorded either) waits from its decision."""
    from .review._archive import _decided_at as _utc_time

    refused = {d for r in records if r.get("kind") == "review_queue_error" for d in linked_decisions(r)}
    times: dict[str, datetime] = {}
    for r in records:
        at = _utc_time(r.get("time")) if r.get("kind") == "review_requeued" and r.get("time") else None
        ids = r.get("item_ids")
        if at is None or not isinstance(ids, list):
            continue
        for iid in ids:
            if isinstance(iid, str) and iid in refused and (iid not in times or at < times[iid]):
                times[iid] = at
    return times


def _review_backlog(policy, items: Sequence[Any], archived: Sequence[Any], recorded: Mapping[str, Mapping[str, Any]],
                    now: datetime, evaluation: frozenset[str] = frozenset(),
                    put_back: Mapping[str, datetime] | None = None, unreadable: str | None = None) -> dict[str, Any]:
    """The review queue's backlog (:func:`_backlog_figures`) over the whole queue and per domain of the policy (and of
    the items outside its domains, when there are any), as the queue holds it: ``items`` its pending and decided items
    (all of them: an answer of another model, or held after the log was read, waits for a reviewer too), ``archived``
    what it keeps of its archived items (decided: their verdict times are read from their ``review_verdict`` records
    in ``recorded``, the chain's by id, the domain too where the queue kept none), against
    ``[monitor] review_backlog_max_age_hours``. Items whose decisions are in ``evaluation`` (answers given to
    Guard.check for an evaluation, :func:`evaluation_decision`) are counted apart (``evaluation_items``), in no figure nor
    the warning: they served no one, and an evaluation alone warned of a backlog in a deployment whose live items were
    all reviewed. ``put_back``: when items were put back in the queue (:func:`_put_back_times`), which they wait from.
    ``unreadable``: why the queue could not be read (its file missing while the log holds items routed to review): its
    figures are then not the backlog's, which is warned of (``over_max_age``) as unknown."""
    from .review._archive import _decided_at as _utc_time

    max_age = policy.monitor.review_backlog_max_age_hours
    apart = [it for it in items if it.audit_id in evaluation]
    items = [it for it in items if it.audit_id not in evaluation]
    archived_apart = [a for a in archived if a.audit_id in evaluation]
    archived = [a for a in archived if a.audit_id not in evaluation]
    pending: dict[Any, list[Any]] = defaultdict(list)
    decided: dict[Any, list[datetime | None]] = defaultdict(list)
    for it in items:
        if it.status == "pending":
            pending[it.domain].append(it)
        else:
            decided[it.domain].append(_utc_time(it.verdict.decided_at) if it.verdict is not None else None)
    for a in archived:
        rec = recorded.get(a.verdict_audit_id) if a.verdict_audit_id else None
        domain = a.domain if a.domain_kept or rec is None else rec.get("domain")
        decided[domain].append(_utc_time(rec.get("decided_at")) if rec is not None else None)

    def figures(names) -> dict[str, Any]:
        return _backlog_figures([it for d in names for it in pending.get(d, [])],
                                [t for d in names for t in decided.get(d, [])], now, max_age, put_back)

    outside = [d for d in {*pending, *decided} if d not in policy.domains]
    overall = figures([*pending.keys() | decided.keys()])
    if unreadable is not None:  # its wait is not shown within the key: warned of, as a pending item's unread time is
        overall["over_max_age"] = True
    return {"max_age_hours": max_age, "age_unit": "hours", "unreadable": unreadable,
            "age_from": "the time the guard decided each item, or put it back in the queue (a review_requeued record)",
            "decided_periods_hours": dict(BACKLOG_PERIODS), "until": now.isoformat(),
            "evaluation_items": {"pending": sum(it.status == "pending" for it in apart),
                                 "decided": sum(it.status != "pending" for it in apart) + len(archived_apart)},
            "overall": overall,
            "domains": {name: figures([name]) for name in policy.domains},
            "outside_domains": figures(outside) if outside else None}


def _domain_backlog(backlog: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Domain ``name``'s review backlog (:func:`_review_backlog`) as its ``monitor_check`` record holds it: its figures,
    with the key they were judged against and the time they were counted up to (the warning is ``over_max_age``)."""
    return {**backlog["domains"][name], "max_age_hours": backlog["max_age_hours"], "until": backlog["until"],
            **({"unreadable": backlog["unreadable"]} if backlog.get("unreadable") else {})}


def _record_not_in_chain(record_id: str | None) -> str:
    """Why a verdict decided with the audit log counts for nothing: its record is not in the verified chain (cut off
    the log, or written to another log); deciding it again is refused there, so the log is what to look at."""
    return (f"its record {record_id} is not in the chain: records cut, or another log; run `hguard audit verify` on "
            "the log")


def _day(ts: str | None) -> str:
    return (ts or "")[:10]


def run_monitor(policy, *, audit_path=None, queue_path=None, act: bool = True, now: str | None = None) -> dict:
    """Estimate, drift and state for every policy domain; appends ``monitor_check`` (and any
    ``monitor_tighten`` / ``monitor_lift``) records and rewrites the state file when ``act``. ``now``: the report's
    time (ISO, UTC unless it names a zone; default the clock's), up to which the review queue's backlog
    (``review_backlog``: pending items and their ages, items decided lately) is counted."""
    from .review.queue import (SHOWN, ReviewQueue, chain_verdicts, missing_queue, newest_file_from, not_put_back,
                               same_risk, same_text, verdict_in_chain)

    audit_path = Path(audit_path or policy.audit.path)
    given_queue = queue_path is not None
    queue_path = Path(queue_path or policy.review.queue)
    given_now = period(now, "now")  # checked before anything is read or appended
    if audit_path.is_dir():  # said as "no audit log at FOLDER"
        from ._audit_files import folder_as_log

        raise folder_as_log(audit_path)
    if not audit_path.is_file():
        raise InputError(f"no audit log at {audit_path}; pass the log the guard writes (the policy's audit.path)")
    from .integrity import load_key

    key = load_key(policy.integrity.key_file)  # the guard's key: the monitor's records join its chain
    # the queue first: the guard records each decision before it queues the answer, so every item listed now has
    # its decision in the log read next (read the other way round, an answer held meanwhile read as a foreign item)
    queue = ReviewQueue(queue_path) if queue_path.exists() else None
    listed = {it.id: it.audit_id for it in (queue.decided() + queue.pending(limit=None))} if queue is not None else {}
    # the estimate, the drift test and any tightening would rest on evidence that does not verify
    records, ver = _verified_records(policy, audit_path, key)
    pid = policy_id(policy)
    decisions = [r for r in records if r.get("kind") == "decision"]

    def foreign_to(r: Mapping[str, Any]) -> bool:
        # made under another guarantee for its domain: evidence of another claim. A decision records its domain's
        # guarantee (one written before that was recorded is judged by the whole policy's id)
        if isinstance(r.get("guarantee"), Mapping):
            return r.get("domain") in policy.domains and r["guarantee"] != guarantee_of(policy, r.get("domain"))
        return bool(r.get("policy_id")) and r["policy_id"] != pid

    with_pid = [r for r in decisions if r.get("policy_id")]
    if with_pid and foreign_to(with_pid[-1]):
        raise PolicyError(
            f"audit log {audit_path} was last written under policy {with_pid[-1]['policy_id']}, whose guarantee for "
            f"domain {with_pid[-1].get('domain')!r} is not this policy's ({pid}, {policy.source}); monitor a log with "
            "the policy it was written under"
        )
    # a mistyped path, read as an empty queue ("0 pending", no alarm) while items wait in the real one: the backlog is
    # said unreadable (an alarm), and all the log alone decides (estimate, tightening, drift) is still done
    unread_queue = None if queue is not None else missing_queue(
        queue_path, records, audit_path, "--queue" if given_queue else f"in {policy.source or 'the policy'}")
    # a tightening only the state file holds is recorded in this chain before anything below may refuse the run
    lifts: dict[str, str] = {}  # each domain's latest lift: its evidence counts from then on, whatever its state now
    lift_seqs: dict[str, int] = {}  # ... and where each stands in the chain: the evidence is what comes after it
    states = replay(records, lifts=lifts, lift_seqs=lift_seqs)
    audit = _writer(policy, audit_path, key) if act else None
    carried = _carry_file_only_tightenings(policy, states, audit, pid)
    foreign = {r["id"] for r in decisions if foreign_to(r)}
    # made by another model than the domain's calibrations were (`--model` overrides the policy's model and is
    # not part of its guarantee): their spot-checks and verdicts say nothing of the calibrated model's answers
    unreadable: dict[str, str] = {}
    meta = _probe_meta(policy, unreadable)
    calibrated = calibrated_models(meta)
    other_models: Counter[str] = Counter()
    for r in decisions:
        if r["id"] not in foreign and made_by_another_model(r, calibrated):
            foreign.add(r["id"])
            other_models[str(r.get("model_fingerprint"))] += 1
    decisions = [r for r in decisions if r["id"] not in foreign]
    # what the foreign decisions promised (review items, spot-checks) is not this policy's to report either
    # (an adapter's query or llm_call record may name several decisions, as a list)
    records = [r for r in records if r.get("id") not in foreign and not linked_decisions(r) & foreign]
    by_id = {r["id"]: r for r in decisions}  # every decision: the queue's items (a given answer held too) are checked
    # the decisions whose answers users were served by this guard: every live figure below reads these alone
    evaluation = frozenset(r["id"] for r in decisions if evaluation_decision(r))
    given = Counter(str(r.get("domain")) for r in decisions if r["id"] in evaluation)
    served = [r for r in decisions if r["id"] not in evaluation]
    served_given = [r for r in served if r.get("answer_source") == "given"]  # Guard.check(served=True): live traffic
    items = (queue.decided() + queue.pending(limit=None)) if queue is not None else []  # with the verdicts given since
    queued = items  # the whole queue as it stands: its backlog (the figures below read only this log's decisions)
    # decided items moved to an archive file (`hguard review archive`): their verdicts count as the chain holds them, as
    # every verdict does; the queue keeps their ids, so they are neither missing from it nor uncommitted verdicts
    archived = list(queue.archived().values()) if queue is not None else []
    unknown = [iid for iid, aid in listed.items() if aid not in by_id and aid not in foreign]
    if unknown:
        raise PolicyError(
            f"review queue {queue_path} holds {len(unknown)} item(s) whose decisions are not in audit log "
            f"{audit_path} (e.g. {unknown[0]!r}): the queue belongs to another deployment or policy, the log was "
            "moved aside by hand (rotate it with `hguard audit rotate`, which keeps its archives readable beside it; "
            "an archive missing fails verification first) or the policy's [audit] path changed while the queue stayed, or records "
            "were cut off the end of the log (check it: hguard audit verify LOG --anchor FILE or --expect-head HASH); "
            "pass the queue and the log written under this policy"
        )
    items = [it for it in items if it.audit_id in by_id]  # one queued after the log was read waits for the next run
    # only verdicts recorded in the verified chain count: one decided without the audit log (or whose record
    # was cut) is evidence nobody can check, so its item counts as not reviewed
    recorded = {r["id"]: r for r in records if r.get("kind") == "review_verdict"}
    unrecorded = [it for it in items if it.verdict is not None and not verdict_in_chain(it, recorded)]
    unrecorded_ids = {it.id for it in unrecorded}
    items = [replace(it, verdict=None) if it.id in unrecorded_ids else it for it in items]
    # what counts is the chain's verdict on each decision (chain_verdicts: reviewers disagreeing, the decision
    # counts as hallucinated, and the report names the contradicting records). The queue's rows are the
    # reviewers' copy: rows copied, set back to pending or edited change no figure here; they are named below so
    # that someone looks at the queue file
    verdict_of, overturned = chain_verdicts(r for r in records if linked_decisions(r) & by_id.keys())
    committed = {it.verdict.audit_record_id for it in items if it.verdict is not None} | {
        a.verdict_audit_id for a in archived if a.audit_id in by_id}
    not_committed = [r["id"] for r in verdict_of.values() if r["id"] not in committed]
    shared = Counter(it.audit_id for it in items)
    sharing = sorted(it.id for it in items if shared[it.audit_id] > 1)
    spotted = {r.get("decision_audit_id") for r in records if r.get("kind") == SPOT}
    # queue rows whose own columns (what the reviewer reads: question, context, answer; spot-check flag, domain, risk) say
    # otherwise than the chain (edited, or written by something else): the figures read the chain; the rows are named so
    # that someone looks at the queue file (no verdict can be recorded on one whose text differs)
    differing = [it.id for it in items if bool(it.spot_check) != (it.audit_id in spotted)
                 or it.domain != by_id[it.audit_id].get("domain")
                 or (it.risk is not None and not same_risk(it.risk, by_id[it.audit_id].get("risk")))
                 or not all(same_text(getattr(it, k), by_id[it.audit_id].get(k)) for k in SHOWN)]
    # which of them a deleted row and a guard start put back whole (from the log's newest file, which a guard's start
    # reads alone; from a decision record that holds text; with no verdict only the queue holds), and why not the others
    newest = newest_file_from(records)
    copies = queue.kept_ids() if queue is not None and differing else set()
    as_listed = {it.id: it for it in unrecorded}
    not_restored: list[dict[str, str]] = []
    for iid in differing:
        it = as_listed.get(iid) or next(x for x in items if x.id == iid)
        rec = by_id[it.audit_id]
        v = it.verdict
        lost = (f"its verdict {v.verdict} by {v.reviewer} is in the queue only, in no record of the chain"
               if iid in as_listed and v is not None and v.audit_record_id is None else
               _record_not_in_chain(v.audit_record_id)
               if iid in as_listed and v is not None and v.audit_record_id not in recorded else
               not_put_back(rec, copies, newest))
        if lost is not None:
            not_restored.append({"item": iid, "decision": it.audit_id, "lost": lost})
    unrestorable = {d["item"] for d in not_restored}
    # only a verdict decided without the log is put on record by deciding it again: one whose record was cut (or is in
    # another log) is refused there, and named apart
    to_decide_again = [it.id for it in unrecorded if it.id not in set(differing)
                       and (it.verdict is None or it.verdict.audit_record_id is None)]
    # ... with --supersede where the chain already holds a verdict on the decision (one the queue never committed:
    # a decide stopped between the log and the queue): `decide` refuses even the same verdict there
    judged_in_chain = {r.get("decision_audit_id") for r in recorded.values()}
    superseding = [iid for iid in to_decide_again if as_listed[iid].audit_id in judged_in_chain]
    records_missing = [{"item": it.id, "record": it.verdict.audit_record_id,
                        "lost": _record_not_in_chain(it.verdict.audit_record_id)} for it in unrecorded
                       if it.id not in set(differing) and it.verdict is not None
                       and it.verdict.audit_record_id is not None and it.verdict.audit_record_id not in recorded]
    selection = check_selection(policy, [r for r in records if r.get("kind") == SPOT or r.get("id") in by_id])
    not_queued, lost_to_queue = _not_queued(records, items, queue, archived)
    at = given_now or datetime.now(timezone.utc)  # the review queue's backlog is counted up to it
    now = now or at.isoformat(timespec="microseconds")
    report: dict[str, Any] = {
        "policy": str(policy.source) if policy.source else None, "policy_id": pid, "audit_log": str(audit_path),
        "review_queue": str(queue_path), "time": now, "chain": {"ok": ver.ok, "n_records": ver.n_records,
                                                       # no record but the monitor's own: a guard has written nothing
                                                       "no_records_yet": all(r.get("kind") in (CHECK, TIGHTEN, LIFT)
                                                                             for r in records),
                                                       # a keyed log read without its key: its MACs went unchecked
                                                       "macs_checked": ver.key_id is not None, "n_macs": ver.n_macs},
        "foreign_decisions_left_out": len(foreign), "dry_run": not act, "domains": {},
        # by domain, a mapping (an answer of no domain under "(no domain)"); and the served ones, which count as live
        # traffic, said too, so that a deployment guarding another server's answers can see them counted
        "given_answer_decisions_left_out": {"n": sum(given.values()), "domains": {
            ("(no domain)" if d == "None" else d): n for d, n in given.most_common()}},
        "given_answer_decisions_served": {"n": len(served_given), "domains": dict(Counter(
            "(no domain)" if r.get("domain") is None else str(r.get("domain")) for r in served_given).most_common())},
        "other_model_decisions_left_out": {"n": sum(other_models.values()), "models": dict(other_models.most_common(5))},
        "verdicts_not_in_chain": {"n": len(unrecorded), "items": [it.id for it in unrecorded[:5]],
                                  "to_put_on_record": to_decide_again[:5],
                                  "to_put_on_record_superseding": superseding[:5], "records_missing": records_missing[:5]},
        "verdict_records_not_committed_in_queue": {"n": len(not_committed), "records": not_committed[:5]},
        "queue_items_sharing_a_decision": {"n": len(sharing), "items": sharing[:5]},
        "hallucinated_verdicts_contradicted": {"n": len(overturned), "records": overturned[:5]},
        "review_decisions_not_in_queue": not_queued, "review_decisions_not_in_queue_for_good": lost_to_queue,
        "queue_items_differing_from_log": {"n": len(differing), "items": differing[:5],
                                           "restored_by_a_guard_start": [i for i in differing if i not in unrestorable][:5],
                                           "not_restored": not_restored[:5]},
        "outside_domains": _outside(served, verdict_of, policy),
        "tightenings_carried_from_state_file": carried,
        "review_backlog": _review_backlog(policy, queued, archived, recorded, at,
                                          evaluation, _put_back_times(records), unread_queue),
    }  # fmt: skip
    for name, dp in policy.domains.items():
        m = meta.get(name, [])
        st = states.get(name, DomainState())
        probe_id = "+".join(cd.probe_id for cd in m) if m else None
        calibration_id = "+".join(cd.calibration_id for cd in m) if m else None
        data_hash = "+".join(str(cd.data_hash) for cd in m) if m and all(cd.data_hash for cd in m) else None
        events = []
        # a recalibration lifts a tightening when it changed how answers are routed: the same answers
        # calibrated again (a new probe_id, made at another time) leave it (tightenings recorded before
        # calibration_id existed compare probe ids)
        recalibrated = (st.calibration_id != calibration_id) if st.calibration_id else (st.probe_id != probe_id)
        recalibrated = st.state == "tightened" and bool(st.probe_id and probe_id and recalibrated)
        # ... and it was fitted on other answers: the live hallucinations that tightened the domain are no
        # evidence about a calibration of the same answers with other settings or another version (tightenings
        # recorded before data_hash was kept compare calibration ids only)
        same_answers = recalibrated and bool(st.data_hash) and st.data_hash == data_hash
        # ... and onto a probe no tightening was decided under: a probe folder rolled back to one whose accepted
        # answers breached the target (this tightening's or an earlier one's) frees it only by a person's lift
        breached_ids = breached_probe_ids(st)
        rolled_back = recalibrated and not same_answers and not probe_ids(probe_id) - breached_ids
        recalibrated = recalibrated and not same_answers and not rolled_back
        # a hand-set accept_below is certified by no calibration: a new one says nothing of the answers it accepts
        # (a package upgrade's refitted probes, the same answers calibrated by a newer version): a person lifts it
        would_lift = recalibrated and dp.accept_below is None
        if would_lift and act:
            # the probe it frees, and the one it replaced: a guard still scoring with that one (not restarted
            # since) stays held (it compares its own probe with these)
            # (every probe a tightening since a person's last lift was decided under: none is freed by a recalibration)
            held = joined_probe_ids(breached_ids) or ""
            events.append(_append(audit, LIFT, {"domain": name, "by": "recalibration", "probe_id": probe_id,
                                                "calibration_id": calibration_id, "data_hash": data_hash,
                                                "replaced_probe_id": held, "lifted_record": st.record_id,
                                                "reason": f"recalibrated: probe {st.probe_id} replaced by {probe_id}; "
                                                          f"a guard still scoring with probe {held} stays held until "
                                                          "restarted onto another"}))  # fmt: skip
            st = transition(st, events[-1])
            lifts[name] = str(st.since)
            lift_seqs[name] = max((r["seq"] for r in records if type(r.get("seq")) is int), default=-1)  # all before it
        # evidence counts from the latest lift on (a person's lift starts a fresh record), also once the domain is
        # tightened again on it: the verdicts the lift set aside do not come back with the new tightening
        since = lifts.get(name)
        dom = [r for r in served if r.get("domain") == name]
        # after it in the chain, not by the clock: answers stamped before the lift by a clock set back after it
        # (a VM restored, an NTP step) were left out, and the hallucinations among them never counted
        after_seq = lift_seqs.get(name)
        fresh = [r for r in dom if after_seq is None or (type(r.get("seq")) is int and r["seq"] > after_seq)]
        # what the chain says, not the queue's columns: a spot-check is an accepted decision with its spot_check record
        spot_ids = [r["id"] for r in fresh if r["id"] in spotted and r.get("route") == "accept"]
        reviewed = [(str(by_id[i].get("time") or ""), verdict_of[i]["label"]) for i in spot_ids if i in verdict_of]
        # verdicts on spot-checks accepted before the lift: not counted, but said (three hallucinated ones vanished)
        counted = {r["id"] for r in fresh}
        before_lift = sum(1 for r in dom if r["id"] not in counted and r["id"] in spotted
                          and r.get("route") == "accept" and r["id"] in verdict_of)
        k = sum(label == "hallucinated" for _, label in reviewed)
        n = len(reviewed)
        # the accept thresholds the reviewed spot-checks were accepted under (a hand-set number changed, a
        # recalibration): pooled into one estimate, said so with the count under each
        under = Counter(str((by_id[i].get("thresholds") or {}).get("accept_below")) for i in spot_ids if i in verdict_of)
        lcb, ucb = live_bounds(k, n, dp.confidence, dp.live_bounds)
        # "within target" is shown on every selected spot-check, the unreviewed ones counted hallucinated: a reviewer
        # who labels only the easy ones (13 of 22, the 9 wrong-looking left pending) showed the target held
        pending = len(spot_ids) - n
        worst_ucb = live_bounds(k + pending, n + pending, dp.confidence, dp.live_bounds)[1] if pending else ucb
        n_min = min_checks(dp.target_hallucination_rate, dp.confidence, dp.live_bounds)
        w = dp.drift_window
        # the verdicts on answers routed to review and the drift tests too are read on the answers after the latest
        # lift: the person lifted it having seen those before
        routed = [verdict_of[r["id"]]["label"] for r in fresh if r.get("route") == "review" and r["id"] in verdict_of]
        routes = Counter(r.get("route") for r in dom)
        sims = [_similarity_to(r.get("domain_choice") or {}, name) for r in fresh]
        sims = [s for s in sims if s is not None]
        oods = [(r.get("signals") or {}).get("ood_distance") for r in fresh]
        oods = [x for x in oods if x is not None]
        drift: dict[str, dict[str, Any]] = {}
        panels = []
        against_calibration: dict[str, dict[str, Any]] = {}
        for probe in m:  # each probe's live risks, its first window against its latest (a domain may have two)
            cal = list(probe.calibration_scores.risk) if probe.calibration_scores is not None else []
            live = [r["risk"] for r in fresh if r.get("risk") is not None and r.get("probe_id") == probe.probe_id]
            mode = str(probe.prompt_mode).replace("_", "-")
            signal = "risk" if len(m) == 1 else f"risk ({mode})"
            drift[signal] = drift_test(live[:w], live[w:][-w:], dp.drift_p_value)
            drift[signal]["reference"] = "this probe's first live window"
            against_calibration[signal] = drift_test(cal, live[-w:], dp.drift_p_value)
            against_calibration[signal]["reference"] = (
                "calibration answers (probe file): out-of-fold scores of probes fitted without each answer's family "
                "or fold, not this probe's; shown, never acted on")
            panels.append(("" if len(m) == 1 else f", {mode}", cal, live))
        if not m:
            drift["risk"] = drift_test([], [], dp.drift_p_value)
            drift["risk"]["reference"] = "no probe file for this domain"
        drift["similarity"] = drift_test(sims[:w], sims[w:][-w:], dp.drift_p_value)
        drift["ood_distance"] = drift_test(oods[:w], oods[w:][-w:], dp.drift_p_value)
        drift["similarity"]["reference"] = drift["ood_distance"]["reference"] = "the domain's first live window"
        breach = breached(k, n, dp.target_hallucination_rate, dp.confidence, dp.breach_rule, dp.live_bounds)
        drifted = [s for s, t in drift.items() if t["drift"]]
        per_day: dict[str, Counter] = defaultdict(Counter)
        for r in dom:
            per_day[_day(r.get("time"))][r.get("route")] += 1
        kept = None  # why a recalibration did not lift the tightening
        if recalibrated and not would_lift:
            kept = (f"recalibrated (probe {st.probe_id} replaced by {probe_id}), but the policy's accept_below "
                    f"{dp.accept_below} for it is hand-set, which no calibration certifies: the tightening stays until a "
                    "person lifts it (hguard monitor --lift)")
        elif same_answers:
            kept = (f"recalibrated (probe {st.probe_id} replaced by {probe_id}) on the same answers (data_hash "
                    f"{data_hash}) as when the domain was tightened: the live hallucinations are no evidence about those; "
                    "the tightening stays until a calibration with newly labelled answers (the reviewed spot-checks: "
                    "hguard review export) or a person lifts it (hguard monitor --lift)")
        elif rolled_back:
            kept = (f"the probe folder holds probe {probe_id} again, which a tightening of this domain was decided under "
                    f"(its accepted answers breached the target; breached: {'+'.join(sorted(breached_ids))}): no "
                    "recalibration lifts a domain back onto such a probe; the tightening stays until a recalibration on "
                    "other answers is put in the folder or a person lifts it (hguard monitor --lift)")
        est = {
            "state": st.to_dict(),
            # a dry run says what the run would do about a recalibration (a real one has lifted it above)
            "lift_on_run": (f"recalibrated: probe {st.probe_id} replaced by {probe_id}" if would_lift and not act else None),
            "kept_despite_recalibration": kept,
            "target": dp.target_hallucination_rate, "confidence": dp.confidence,
            "hand_set_accept_below": dp.accept_below,  # the policy's own number, certified by no calibration
            "no_accept_threshold": _none_certified(dp, m),  # why nothing is accepted, or None
            "decisions": dict(routes), "n_decisions": len(dom), "given_answer_decisions_left_out": given.get(name, 0),
            "spot_checks": {"selected": len(spot_ids), "reviewed": n, "hallucinated": k,
                            "pending": pending, "rate": k / n if n else None,
                            "upper_bound": ucb, "lower_bound": lcb, "breach_rule": dp.breach_rule,
                            "upper_bound_pending_hallucinated": worst_ucb,
                            "bounds": dp.live_bounds,
                            "min_reviewed_to_judge": n_min if dp.breach_rule == "upper_bound" else 0,
                            "accepted_under": dict(sorted(under.items())),
                            "counted_since": since, "reviewed_before_lift": before_lift,
                            # whether the live evidence shows the target held (the upper bound within it, the pending
                            # spot-checks counted hallucinated), which "no breach" under the lower_bound rule, or with
                            # few checks, does not say
                            "within_target_shown": worst_ucb is not None and worst_ucb <= dp.target_hallucination_rate},
            "review_routed": _review_routed(routed),
            "selection_audit": selection.get(name, {"accepted": 0, "selected": 0, "mismatches": []}),
            # which probe decides the domain's answers now, and how many of its decisions another did (a probe file
            # replaced or unreadable after the fact was said in --json alone, as a drift test "untested")
            "probes": _probes_now(name, m, dom, unreadable),
            "drift": drift, "breach": breach, "drifted": drifted, "risk_against_calibration": against_calibration,
            "accepted_per_day": {d: {"accepted": c.get("accept", 0), "total": sum(c.values())} for d, c in sorted(per_day.items())},
        }  # fmt: skip
        if act:
            check = _append(audit, CHECK, {"domain": name, "policy_id": pid, "probe_id": probe_id,
                                           # what it was judged against, for an auditor reading the record alone
                                           "target": dp.target_hallucination_rate, "confidence": dp.confidence,
                                           "selection_mismatches": len(est["selection_audit"].get("mismatches") or []),
                                           "estimate": {k2: est[k2] for k2 in ("spot_checks", "review_routed", "decisions", "breach", "drifted")},
                                           "drift": drift, "state": st.state,
                                           # the domain's review backlog, as the report gives it, and its warning
                                           "review_backlog": _domain_backlog(report["review_backlog"], name)})  # fmt: skip
            events.append(check)
            if (breach or drifted) and st.state == "normal":
                why = []
                if breach:
                    b = ucb if dp.breach_rule == "upper_bound" else lcb
                    why.append(f"{dp.breach_rule.replace('_', ' ')} {b:.4g} on accepted hallucinations ({k}/{n} "
                               f"reviewed spot-checks, {dp.live_bounds.replace('_', ' ')} bounds at confidence {dp.confidence}) "
                               f"exceeds target {dp.target_hallucination_rate}")  # fmt: skip
                for s in drifted:
                    why.append(f"{s} drift: KS p-value {drift[s]['p_value']:.3g} < drift_p_value {dp.drift_p_value}")
                current = None
                action, accept, how = _stricter(dp, m, current)
                ev = _append(audit, TIGHTEN, {"domain": name, "action": action, "accept_below": accept,
                                              "probe_id": probe_id, "calibration_id": calibration_id,
                                              "data_hash": data_hash, "reason": "; ".join(why), "how": how,
                                              "evidence_record": check["id"], "policy_id": pid})  # fmt: skip
                events.append(ev)
                st = transition(st, ev)
                est["state"] = st.to_dict()
        est["events"] = [{"kind": e["kind"], "id": e["id"], "reason": e.get("reason")} for e in events if e["kind"] != CHECK]
        states[name] = st
        est["_risk_panels"] = panels
        est["_spot_results"] = [(t, label == "hallucinated") for t, label in sorted(reviewed, key=lambda p: p[0])]
        est["_accept_series"] = [r.get("route") == "accept" for r in dom]
        report["domains"][name] = est
    if act:
        write_state(Path(policy.monitor.state), {d: s for d, s in states.items() if d in policy.domains}, pid)
    return report


def _carry_file_only_tightenings(policy, states: dict[str, DomainState], audit, pid: str) -> list[str]:
    """Domains the state file holds tightened, or held for the probes a lift by recalibration replaced, of which the
    audit chain holds no monitor record at all (the log it was recorded in was moved aside or replaced by hand):
    kept so, and, when acting, recorded in this chain (``monitor_tighten``; ``monitor_lift`` by recalibration, naming
    the same probes), so that only a person's lift (or, of a tightening, a recalibration) ends them; the file alone
    would otherwise be rewritten as normal by this run. Updates ``states``; returns the domains."""
    path = Path(policy.monitor.state)
    try:
        mirror = read_state_file(path) if path.exists() else {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # unreadable as a whole: the domains it names in any state but normal are kept tightened, to accept nothing
        # (rewritten from the chain alone, a tightening only the file held was lifted with no record of it)
        mirror = _held_in_unreadable(path, exc)
    carried = []
    for name, held in sorted(mirror.items()):
        if name not in policy.domains or (held.state != "tightened" and not breached_probe_ids(held)) or name in states:
            continue
        what = ("tightening" if held.state == "tightened" else
                f"lift by recalibration, which holds the guards scoring with probe {held.replaced_probe_id}")
        reason = (f"carried over from the monitor state file {path}: the audit log holds no record of this "
                  f"{what} (since {held.since}, record {held.record_id}: {held.reason}); the log it was recorded "
                  "in was moved aside or replaced. A person lifts it with `hguard monitor --lift`")
        if audit is not None:
            if held.state == "tightened":
                accept = held.accept_below if held.accept_below is not None else 0.0
                ev = _append(audit, TIGHTEN, {"domain": name, "action": held.action, "accept_below": accept,
                                              "probe_id": held.probe_id, "calibration_id": held.calibration_id,
                                              "data_hash": held.data_hash, "replaced_probe_id": held.replaced_probe_id,
                                              "reason": reason, "carried_record": held.record_id, "policy_id": pid})
            else:  # as the lift was recorded: the probe it freed, and those it holds
                ev = _append(audit, LIFT, {"domain": name, "by": "recalibration",
                                           "probe_id": held.probe_id or "(not recorded)",
                                           "calibration_id": held.calibration_id, "data_hash": held.data_hash,
                                           "replaced_probe_id": held.replaced_probe_id, "reason": reason,
                                           "carried_record": held.record_id, "policy_id": pid})
            states[name] = transition(DomainState(), ev)
        else:
            states[name] = held
        carried.append(name)
    return carried


def _held_in_unreadable(path: Path, exc: BaseException) -> dict[str, DomainState]:
    """The domains a state file that does not read as one (``exc``) names in a state other than normal, each as
    tightened to accept nothing, with the reason; HGuardError when not even that can be read: its tightenings cannot
    be told, so the monitor does not rewrite it."""
    import json

    why = f"{type(exc).__name__}: {exc}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["domains"].items()
        held = {str(d): e for d, e in entries if not (isinstance(e, dict) and e.get("state") == "normal")}
    except Exception as err:  # noqa: BLE001 - any shape it may have been left in
        raise HGuardError(
            f"the monitor state {path} cannot be read ({why}; {type(err).__name__}), and it may hold tightenings the "
            "audit log does not (a log moved aside): the monitor does not rewrite it, and the guard holds every domain "
            "meanwhile; check it, then restore it or move it aside (the next run then writes it from the log)") from None
    return {d: DomainState("tightened", "review", 0.0, None, None, None,
                           f"the state file's entry for it is unreadable ({why}): accepting nothing") for d in held}


def _verified_records(policy, audit_path: Path, key: bytes | None) -> tuple[list[dict], Any]:
    """The whole record of ``audit_path``, a rotated log's archives (beside it) included, and its verification
    report: their decisions, spot-checks, verdicts and monitor records are what every decision of the monitor's (a
    run's estimate, drift test and tightening, a person's lift) rests on, and the review queue's items name them.
    AuditIntegrityError when it does not verify with the policy's key and anchor: the monitor then appends
    nothing and changes no state."""
    from ._audit_verify import verify_command
    from .audit import verify

    # the policy's anchor holds its own log's heads: records cut off the end of that log fail here too
    anchor = policy.audit.anchor
    own = anchor is not None and _policys_own_log(policy, audit_path)
    own_anchor = own and Path(anchor).is_file()
    records: list[dict] = []
    ver = verify(audit_path, key=key, anchor=anchor if own_anchor else None, archives=True, on_record=records.append)
    if own and not own_anchor and ver.n_records:  # the guard's writer refuses this log too: the anchor went missing
        raise AuditIntegrityError(
            f"the policy's audit anchor {anchor} does not exist, but audit log {audit_path} holds {ver.n_records} "
            "records: the anchor was deleted or moved, or its volume is not mounted, and records cut off the log's end "
            "would go unseen; the monitor takes no decision on it: restore the anchor")
    if not ver.ok:
        first = ver.problems[0]
        where = f"line {first.line}: " if first.line else ""
        verify_cmd = verify_command(audit_path, policy=policy.source)  # with the policy's key and anchor, as read here
        raise AuditIntegrityError(
            f"audit log {audit_path} fails verification ({len(ver.problems)} problem(s); {where}{first.message}); "
            f"the monitor takes no decision on it: see `{verify_cmd}` (a torn last line that verify does not call cut: "
            f"{_repair_command(policy, audit_path, key)}), and restore the log from its backup if records were edited "
            "or removed"
        )
    return records, ver


def _repair_command(policy, audit_path: Path, key: bytes | None) -> str:
    """The ``hguard audit repair`` command for the monitor's log, quoted as code: with the policy's file when it is
    the policy's own log (repair reads its key and anchor there); a bare `hguard audit repair` is refused, since
    repair needs the anchor, or --no-anchor, to tell a write cut short from an acknowledged record cut afterwards."""
    import shlex

    from ._audit_files import _repair_advice

    if policy.source is not None and _policys_own_log(policy, audit_path):
        return f"`hguard audit repair --policy {shlex.quote(str(policy.source))}`"
    own = _policys_own_log(policy, audit_path)
    return _repair_advice(audit_path, policy.audit.anchor if own else None, key is not None)


def _writer(policy, audit_path: Path, key: bytes | None):
    """The log the monitor appends its records to: keyed as the policy says, and, when it is the policy's own
    log, appending each record's seq and hash to the policy's anchor as the guard does (a monitor record cut
    off the end is then caught as any other)."""
    from .audit import AuditLog

    own = _policys_own_log(policy, audit_path)
    return AuditLog(audit_path, redact=policy.audit.redact, key=key, anchor=policy.audit.anchor if own else None)


def _policys_own_log(policy, audit_path) -> bool:
    """Whether ``audit_path`` is the policy's own log, however it is named (relative, through ``..`` or a link, a
    hard link): its anchor then holds its heads, for the check of what it reads and the heads of what it appends
    (compared as written, `--audit audit.jsonl` skipped the anchor and a cut log read as verified)."""
    from ._resources import same_file

    if policy.audit.path is None:
        return False
    mine, given = Path(policy.audit.path), Path(audit_path)
    return given.resolve() == mine.resolve() or same_file(given, mine)


def _append(audit, kind: str, record: dict) -> dict:
    # on record though its anchoring failed after: what the state file mirrors holds it (a tightening on record is the
    # guard's, not one a rerun may find missing), and the failure is said beside the run, never in its place (under
    # warnings as errors the run stopped before writing the state file)
    receipt = append_warned(audit, dict(record), kind=kind, what=f"the monitor's {kind} record", stacklevel=3)
    # the record's own time: the state file (and each held answer's reason) names the tightening as the chain does
    return {**record, "kind": kind, "id": receipt.id, "hash": receipt.hash,
            "time": receipt.time or datetime.now(timezone.utc).isoformat(timespec="microseconds")}  # fmt: skip


def lift(policy, domain: str, *, by: str, reason: str, audit_path=None) -> DomainState:
    """A person lifts a domain's tightening: audited (``monitor_lift``), then the state file is rewritten. Also a
    domain a recalibration lifted, whose guards still scoring with the replaced probe it holds: they are freed too."""
    if domain not in policy.domains:
        raise InputError(f"domain {domain!r} is not in the policy (known: {', '.join(sorted(policy.domains))})")
    if not isinstance(by, str) or not by.strip():
        raise InputError("say who lifts the tightening: pass --by NAME")
    hidden = hidden_characters_in(by)
    if hidden:  # as a reviewer's name: a line break or direction override would show as another person's lift
        raise InputError(f"--by {_short(by)} holds control or formatting character(s) {hidden}; type the name as plain text")
    if not isinstance(reason, str) or not reason.strip():
        raise InputError("say why the tightening is lifted: pass --reason TEXT")
    audit_path = Path(audit_path or policy.audit.path)
    from .integrity import load_key

    key = load_key(policy.integrity.key_file)
    # a lift is the monitor's decision as a run's is: taken on a chain that verifies, or not at all (it appended its
    # record to a log `hguard monitor` refuses, and rewrote the state file from records that may be forged)
    records = _verified_records(policy, audit_path, key)[0] if audit_path.exists() else []
    log = _writer(policy, audit_path, key)
    states = replay(records)
    # the state file is rewritten below: tightenings only it holds are carried into the chain first, as a monitor run
    # carries them (lifting one domain rewrote it from the chain alone, and another's such tightening was gone)
    _carry_file_only_tightenings(policy, states, log, policy_id(policy))
    st = states.get(domain, DomainState())
    if st.state != "tightened" and st.replaced_probe_id is None:  # a recalibration's lift still holds the old probe's
        raise InputError(f"domain {domain!r} is not tightened (state {st.state}); nothing to lift")
    ev = _append(log, LIFT, {"domain": domain, "by": by.strip(), "reason": reason.strip(), "lifted_record": st.record_id})
    states[domain] = transition(st, ev)
    write_state(Path(policy.monitor.state), {d: s for d, s in states.items() if d in policy.domains}, policy_id(policy))
    return states[domain]


def cli_main(argv: list[str]) -> int:
    """The ``hguard monitor`` command; it lives in :mod:`hguard.cli.monitor` (kept here for old imports)."""
    from .cli.monitor import main

    return main(argv)
