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
  its exact Clopper-Pearson upper bound at the policy's confidence (:func:`clopper_pearson_upper`); verdicts
  on answers the guard routed to review are reported beside it.
* **Drift.** A two-sample Kolmogorov-Smirnov test of the latest ``drift_window`` live risks against the risks
  of the domain's calibration answers (stored in the probe file), and of live domain similarity (and an
  ``ood_distance`` signal, when decisions record one) against the domain's first window of live traffic,
  since probe files carry no calibration distribution of those.
* **Fail-safe.** When the live bound crosses the target (``breach_rule``: the lower bound, i.e. the target is
  shown broken, by default; or the upper bound, i.e. the target is no longer certified, judged once there are
  as many reviewed spot-checks as a clean record needs to certify it) or drift passes ``drift_p_value``, the
  domain tightens: to the accept
  threshold certified for ``tightened_target`` on its calibration scores (``on_breach = "stricter"``), or
  accepting nothing (``"review"``). The change and its evidence are appended to the audit chain
  (``monitor_tighten``); the guard reads the state file that mirrors the chain before routing. It stays until
  a person lifts it (``hguard monitor --lift``, audited as ``monitor_lift``) or the domain is recalibrated (a
  new probe id lifts it, also audited).

A monitor run appends one ``monitor_check`` record per domain (estimate, counts, drift tests), so the chain
holds every step. The pure parts (bounds, selection, drift test, state transitions) take plain data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import InputError, PolicyError

__all__ = [
    "MonitorState",
    "check_selection",
    "breached",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "drift_test",
    "lift",
    "min_checks",
    "policy_id",
    "run_monitor",
    "selection_u",
    "tightened_thresholds",
    "transition",
]

TIGHTEN, LIFT, CHECK, SPOT = "monitor_tighten", "monitor_lift", "monitor_check", "spot_check"
STATE_FORMAT = "hguard-monitor-state"


# ------------------------------------------------------------------------------------------ pure statistics


def _check_unit_open(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < float(value) < 1.0):
        raise InputError(f"{name} must be a number strictly between 0 and 1, got {value!r}; e.g. 0.9")
    return float(value)


def clopper_pearson_upper(k: int, n: int, confidence: float) -> float:
    """Exact one-sided upper bound on a binomial rate after ``k`` events in ``n`` trials: the ``p`` with
    ``P(Binom(n, p) <= k) = 1 - confidence``. 1.0 when ``n == 0`` (nothing is known) or ``k == n``."""
    confidence = _check_unit_open("confidence", confidence)
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"{name} must be a non-negative integer, got {v!r}")
    if k > n:
        raise InputError(f"k ({k}) cannot exceed n ({n}): there are at most n hallucinations in n answers")
    if n == 0 or k == n:
        return 1.0
    from scipy.special import betaincinv

    return float(betaincinv(k + 1, n - k, confidence))


def clopper_pearson_lower(k: int, n: int, confidence: float) -> float:
    """Exact one-sided lower bound: the ``p`` with ``P(Binom(n, p) >= k) = 1 - confidence``; 0 when k == 0."""
    upper = clopper_pearson_upper(k, n, confidence)  # validates the input
    if k == 0 or n == 0:
        return 0.0
    if upper == 1.0 and k == n:
        return float((1.0 - confidence) ** (1.0 / n))
    from scipy.special import betaincinv

    return float(betaincinv(k, n - k + 1, 1.0 - confidence))


def breached(k: int, n: int, target: float, confidence: float, rule: str = "upper_bound") -> bool:
    """Whether ``k`` hallucinations in ``n`` reviewed spot-checks breach the target under ``rule``:
    ``upper_bound``: the upper bound exceeds the target, once n reaches :func:`min_checks` (before that even a
    clean record could not certify it); ``lower_bound``: the lower bound exceeds the target."""
    if rule == "upper_bound":
        return n >= min_checks(target, confidence) and clopper_pearson_upper(k, n, confidence) > target
    if rule == "lower_bound":
        return clopper_pearson_lower(k, n, confidence) > target
    raise InputError(f"breach rule must be 'upper_bound' or 'lower_bound', got {rule!r}")


def min_checks(target: float, confidence: float) -> int:
    """Least number of reviewed spot-checks at which a clean record (0 hallucinations) brings the upper bound
    to the target or below; before that the bound cannot certify anything and is not acted on."""
    target, confidence = _check_unit_open("target", target), _check_unit_open("confidence", confidence)
    return int(math.ceil(math.log(1.0 - confidence) / math.log(1.0 - target) - 1e-12))


def selection_u(seed: str, record_id: str) -> float:
    """A number in [0, 1) from HMAC-SHA256 keyed by ``seed`` over the decision's audit record id."""
    if not isinstance(seed, str) or not seed:
        raise InputError(f"the spot-check seed must be a non-empty string, got {seed!r}; set [monitor] seed")
    if not isinstance(record_id, str) or not record_id:
        raise InputError(f"record_id must be a non-empty string, got {record_id!r}")
    digest = hmac.new(seed.encode("utf-8"), record_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def drift_test(reference: Sequence[float | None], live: Sequence[float | None], p_value: float, *, min_n: int = 20) -> dict:
    """Two-sample KS test of ``live`` against ``reference`` (finite values only). ``drift`` is True when its
    p-value is below ``p_value``; None (untested) when either side has fewer than ``min_n`` values."""
    p_value = _check_unit_open("drift_p_value", p_value)
    ref = [float(x) for x in reference if x is not None and math.isfinite(float(x))]
    liv = [float(x) for x in live if x is not None and math.isfinite(float(x))]
    out: dict[str, Any] = {"n_reference": len(ref), "n_live": len(liv), "statistic": None, "p_value": None, "drift": None}
    if len(ref) < min_n or len(liv) < min_n:
        out["note"] = f"untested: fewer than {min_n} values on a side"
        return out
    from scipy.stats import ks_2samp

    res = ks_2samp(ref, liv)
    out.update(statistic=float(res.statistic), p_value=float(res.pvalue), drift=bool(res.pvalue < p_value))
    return out


# ------------------------------------------------------------------------------------------ state machine


@dataclass(frozen=True)
class DomainState:
    """One domain's monitor state: ``normal`` or ``tightened`` (with the action and its threshold)."""

    state: str = "normal"
    action: str | None = None  # "stricter" | "review"
    accept_below: float | None = None  # the tightened accept threshold (0 accepts nothing)
    since: str | None = None
    record_id: str | None = None  # the monitor_tighten / monitor_lift record
    probe_id: str | None = None  # probe the tightening was decided under
    reason: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def transition(state: DomainState, event: Mapping[str, Any]) -> DomainState:
    """The next state after one audit event (``kind`` monitor_tighten or monitor_lift); other kinds and a
    tightening of an already tightened domain by an equal or looser threshold change nothing."""
    kind = event.get("kind")
    if kind == TIGHTEN:
        new = float(event["accept_below"])
        if state.state == "tightened" and state.accept_below is not None and state.accept_below <= new:
            return state
        return DomainState("tightened", event.get("action"), new, event.get("time"), event.get("id"),
                           event.get("probe_id"), event.get("reason"))  # fmt: skip
    if kind == LIFT:
        if state.state != "tightened":
            return state
        return DomainState("normal", None, None, event.get("time"), event.get("id"), None, event.get("reason"))
    return state


def replay(records: Iterable[Mapping[str, Any]]) -> dict[str, DomainState]:
    """Every domain's state after the monitor events in ``records`` (audit log order)."""
    states: dict[str, DomainState] = {}
    for rec in records:
        if rec.get("kind") in (TIGHTEN, LIFT) and rec.get("domain"):
            states[rec["domain"]] = transition(states.get(rec["domain"], DomainState()), rec)
    return states


def tightened_thresholds(entry: DomainState | None, thresholds):
    """``thresholds`` with the accept threshold lowered to the tightened one (None stays None: no route then)."""
    if entry is None or entry.state != "tightened" or thresholds is None:
        return thresholds, None
    from dataclasses import replace

    accept = min(float(entry.accept_below or 0.0), thresholds.accept_below)
    why = (
        f"domain tightened by the monitor since {entry.since} ({entry.reason}); accept_below lowered to {accept:.4g}"
        f" ({'accept nothing: everything to review' if accept == 0 else entry.action}) until a person lifts it"
    )
    if accept == thresholds.accept_below:
        return thresholds, why
    return replace(
        thresholds, accept_below=accept, coverage=None, accepted_error_rate=None, accepted_error_ucb=None,
        method=f"{thresholds.method}; tightened by the monitor (record {entry.record_id})",
    ), why  # fmt: skip


class MonitorState:
    """The state file the guard consults before routing (a mirror of the audit chain, written by the monitor).

    Re-read when the file changes. A file that exists but cannot be read fails closed: every domain is then
    treated as tightened to accept nothing, with the reason. When the file is missing, the audit chain
    (``audit_path``) is replayed once instead, so deleting the mirror does not lift a tightening."""

    def __init__(self, path: str | os.PathLike[str] | None, audit_path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else None
        self.audit_path = Path(audit_path) if audit_path is not None else None
        self._stamp: tuple | None = None
        self._states: dict[str, DomainState] = {}
        self._broken: str | None = None
        self._chain: dict[str, DomainState] | None = None

    def get(self, domain: str | None) -> DomainState | None:
        if self.path is None or domain is None:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._states, self._broken = None, {}, None
            return self._from_chain(domain)
        except OSError as exc:
            return self._closed(f"monitor state {self.path} cannot be read ({exc})")
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("format") != STATE_FORMAT:
                    raise ValueError(f"format is {data.get('format')!r}, not {STATE_FORMAT!r}")
                self._states = {d: DomainState(**s) for d, s in data["domains"].items()}
                self._broken = None
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                self._broken = f"monitor state {self.path} is unreadable ({type(exc).__name__}: {exc})"
            self._stamp = stamp
        if self._broken:
            return self._closed(self._broken)
        return self._states.get(domain)

    def _from_chain(self, domain: str) -> DomainState | None:
        if self.audit_path is None or not self.audit_path.exists():
            return None
        if self._chain is None:
            from .audit import AuditLog

            try:
                self._chain = replay(AuditLog(self.audit_path))
            except Exception as exc:  # an unreadable chain cannot say the domain is not tightened
                return self._closed(f"monitor state {self.path} is missing and audit log {self.audit_path} "
                                    f"cannot be replayed ({type(exc).__name__}: {exc})")  # fmt: skip
        return self._chain.get(domain)

    @staticmethod
    def _closed(why: str) -> DomainState:
        return DomainState("tightened", "review", 0.0, None, None, None, f"{why}; fix or rerun `hguard monitor`")


def write_state(path: Path, states: Mapping[str, DomainState], pid: str) -> None:
    """Atomically replace the state file with ``states``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = {"format": STATE_FORMAT, "policy_id": pid, "domains": {d: s.to_dict() for d, s in sorted(states.items())}}
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ policy identity


def policy_id(policy) -> str:
    """What the guarantee is: every domain's target and confidence (sha256, 16 hex). Logs and queues written
    under another guarantee are evidence of another claim, so the monitor refuses them."""
    body = {d: [dp.target_hallucination_rate, dp.confidence] for d, dp in sorted(policy.domains.items())}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


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


def check_selection(policy, records: Sequence[Mapping[str, Any]]) -> dict:
    """Recompute every accepted decision's selection from the seed: counts and the mismatches, per domain.

    A mismatch is an accepted decision with ``u < rate`` and no spot_check record, or a spot_check record
    whose decision is not an accepted one, or whose ``u`` is not the recomputed one, or that is neither below
    the rate nor taken for the daily minimum."""
    # keyed by whatever the record names; only ids of accepted decisions reach selection_u
    spots: dict[Any, Mapping[str, Any]] = {r.get("decision_audit_id"): r for r in records if r.get("kind") == SPOT}
    out: dict[str, dict] = defaultdict(lambda: {"accepted": 0, "selected": 0, "by_rate": 0, "by_minimum": 0, "mismatches": []})
    accepted = {}
    for r in records:
        if r.get("kind") == "decision" and r.get("route") == "accept" and r.get("domain") in policy.domains:
            accepted[r["id"]] = r
            d = out[r["domain"]]
            d["accepted"] += 1
            u = selection_u(policy.monitor.seed, r["id"])
            below = u < policy.domains[r["domain"]].spot_check_rate
            if below and r["id"] not in spots:
                d["mismatches"].append(f"decision {r['id']} has u {u:.6f} < rate but no spot-check")
    for rid, s in spots.items():
        dec = accepted.get(rid)
        d = out[s.get("domain") or "(none)"]
        if dec is None:
            d["mismatches"].append(f"spot-check {s.get('id')} names {rid!r}, not an accepted decision")
            continue
        d["selected"] += 1
        u = selection_u(policy.monitor.seed, rid)
        if abs(float(s.get("u", -1)) - u) > 1e-12:
            d["mismatches"].append(f"spot-check {s.get('id')} records u {s.get('u')} but the seed gives {u:.6f}")
        elif u < float(s.get("rate", 0)):
            d["by_rate"] += 1
        elif str(s.get("selected_because", "")).startswith("minimum per day"):
            d["by_minimum"] += 1
        else:
            d["mismatches"].append(f"spot-check {s.get('id')} has u {u:.6f} >= rate and no daily-minimum reason")
    return dict(out)


# ------------------------------------------------------------------------------------------ the monitor run


def _probe_meta(policy) -> dict[str, Any]:
    """Each domain's calibration (probe_id, calibration scores) in the policy's probe folder; files
    that cannot be read are left out (the guard routes their domains to review)."""
    from .domain import CalibratedDomain
    from .errors import ProbeError

    out: dict[str, Any] = {}
    folder = policy.probes
    if folder is None or not Path(folder).is_dir():
        return out
    for p in sorted(Path(folder).glob("*.json")):
        if p.name == "report.json":
            continue
        try:
            cd = CalibratedDomain.load(p)
        except (OSError, ValueError, ProbeError):
            continue
        out[cd.name] = cd
    return out


def _stricter(dp, cd, current: float | None) -> tuple[str, float, str]:
    """(action, accept_below, how) for a tightening under ``dp.on_breach``."""
    if dp.on_breach == "review":
        return "review", 0.0, "on_breach = 'review': accept nothing, every answer to review"
    target = dp.tightened_target if dp.tightened_target is not None else dp.target_hallucination_rate / 2
    scores = cd.calibration_scores if cd is not None else None
    if scores is None:
        return "review", 0.0, "no calibration scores in the probe file to certify a stricter threshold: accept nothing"
    from .policy import fit_thresholds

    t = fit_thresholds(list(scores.risk), list(scores.hallucinated), target=target, confidence=dp.confidence,
                       abstain_precision=dp.abstain_precision)  # fmt: skip
    accept = min(t.accept_below, current) if current is not None else t.accept_below
    how = (
        f"on_breach = 'stricter': accept_below {accept:.4g} certified for target {target:.4g} at confidence "
        f"{dp.confidence} on {t.n_calibration} calibration answers"
        + ("; none certifies: accept nothing" if accept == 0 else "")
    )
    return "stricter", float(accept), how


def _day(ts: str | None) -> str:
    return (ts or "")[:10]


def run_monitor(policy, *, audit_path=None, queue_path=None, act: bool = True, now: str | None = None) -> dict:
    """Estimate, drift and state for every policy domain; appends ``monitor_check`` (and any
    ``monitor_tighten`` / ``monitor_lift``) records and rewrites the state file when ``act``."""
    from .audit import AuditLog, verify
    from .review.queue import ReviewQueue

    audit_path = Path(audit_path or policy.audit.path)
    queue_path = Path(queue_path or policy.review.queue)
    if not audit_path.is_file():
        raise InputError(f"no audit log at {audit_path}; pass the log the guard writes (the policy's audit.path)")
    from .integrity import load_key

    key = load_key(policy.integrity.key_file)  # the guard's key: the monitor's records join its chain
    ver = verify(audit_path, key=key)
    records = list(AuditLog(audit_path))
    pid = policy_id(policy)
    decisions = [r for r in records if r.get("kind") == "decision"]
    with_pid = [r for r in decisions if r.get("policy_id")]
    if with_pid and with_pid[-1]["policy_id"] != pid:
        raise PolicyError(
            f"audit log {audit_path} was last written under policy {with_pid[-1]['policy_id']}, not this policy "
            f"({pid}, {policy.source}); monitor a log with the policy it was written under"
        )
    foreign = {r["id"] for r in with_pid if r["policy_id"] != pid}
    decisions = [r for r in decisions if r["id"] not in foreign]
    by_id = {r["id"]: r for r in decisions}
    queue = ReviewQueue(queue_path) if queue_path.exists() else None
    items = (queue.decided() + queue.pending(limit=None)) if queue is not None else []
    unknown = [it.id for it in items if it.audit_id not in by_id and it.audit_id not in foreign]
    if unknown:
        raise PolicyError(
            f"review queue {queue_path} holds {len(unknown)} item(s) whose decisions are not in audit log "
            f"{audit_path} (e.g. {unknown[0]!r}): the queue belongs to another deployment or policy; "
            "pass the queue and the log written under this policy"
        )
    items = [it for it in items if it.audit_id in by_id]
    meta = _probe_meta(policy)
    states = replay(records)
    selection = check_selection(policy, [r for r in records if r.get("kind") == SPOT or r.get("id") in by_id])
    now = now or datetime.now(timezone.utc).isoformat(timespec="microseconds")
    audit = AuditLog(audit_path, redact=policy.audit.redact, key=key) if act else None
    report: dict[str, Any] = {
        "policy": str(policy.source) if policy.source else None, "policy_id": pid, "audit_log": str(audit_path),
        "review_queue": str(queue_path), "time": now, "chain": {"ok": ver.ok, "n_records": ver.n_records},
        "foreign_decisions_left_out": len(foreign), "domains": {},
    }  # fmt: skip
    for name, dp in policy.domains.items():
        m = meta.get(name)
        st = states.get(name, DomainState())
        probe_id = m.probe_id if m is not None else None
        events = []
        if st.state == "tightened" and st.probe_id and probe_id and st.probe_id != probe_id and act:
            events.append(_append(audit, LIFT, {"domain": name, "by": "recalibration", "probe_id": probe_id,
                                                "reason": f"recalibrated: probe {st.probe_id} replaced by {probe_id}"}))  # fmt: skip
            st = transition(st, events[-1])
        # evidence counts from the latest lift on (a person's lift starts a fresh record)
        since = st.since if st.state == "normal" and st.since else None
        dom = [r for r in decisions if r.get("domain") == name]
        fresh = [r for r in dom if since is None or (r.get("time") or "") > since]
        fresh_ids = {r["id"] for r in fresh}
        spot_items = [it for it in items if it.spot_check and it.audit_id in fresh_ids]
        reviewed = [(it, it.verdict.label) for it in spot_items if it.verdict is not None]
        k = sum(label == "hallucinated" for _, label in reviewed)
        n = len(reviewed)
        ucb = clopper_pearson_upper(k, n, dp.confidence)
        n_min = min_checks(dp.target_hallucination_rate, dp.confidence)
        routed = [it.verdict.label for it in items if not it.spot_check and it.domain == name and it.verdict is not None]
        routes = Counter(r.get("route") for r in dom)
        risks = [r.get("risk") for r in dom]
        cal = list(m.calibration_scores.risk) if m is not None and m.calibration_scores is not None else []
        w = dp.drift_window
        sims = [((r.get("domain_choice") or {}).get("similarities") or {}).get(name) for r in dom]
        sims = [s for s in sims if s is not None]
        oods = [(r.get("signals") or {}).get("ood_distance") for r in dom]
        oods = [x for x in oods if x is not None]
        drift = {
            "risk": drift_test(cal, [x for x in risks if x is not None][-w:], dp.drift_p_value),
            "similarity": drift_test(sims[:w], sims[w:][-w:], dp.drift_p_value),
            "ood_distance": drift_test(oods[:w], oods[w:][-w:], dp.drift_p_value),
        }
        drift["risk"]["reference"] = "calibration answers (probe file)"
        drift["similarity"]["reference"] = drift["ood_distance"]["reference"] = "the domain's first live window"
        lcb = clopper_pearson_lower(k, n, dp.confidence)
        breach = breached(k, n, dp.target_hallucination_rate, dp.confidence, dp.breach_rule)
        drifted = [s for s, t in drift.items() if t["drift"]]
        per_day: dict[str, Counter] = defaultdict(Counter)
        for r in dom:
            per_day[_day(r.get("time"))][r.get("route")] += 1
        est = {
            "state": st.to_dict(),
            "target": dp.target_hallucination_rate, "confidence": dp.confidence,
            "decisions": dict(routes), "n_decisions": len(dom),
            "spot_checks": {"selected": len(spot_items), "reviewed": n, "hallucinated": k,
                            "pending": len(spot_items) - n, "rate": k / n if n else None,
                            "upper_bound": ucb, "lower_bound": lcb, "breach_rule": dp.breach_rule,
                            "min_reviewed_to_judge": n_min if dp.breach_rule == "upper_bound" else 0,
                            "counted_since": since},
            "review_routed": {"reviewed": len(routed),
                              "hallucinated": sum(label == "hallucinated" for label in routed),
                              "correct": sum(label == "correct" for label in routed)},
            "selection_audit": selection.get(name, {"accepted": 0, "selected": 0, "mismatches": []}),
            "drift": drift, "breach": breach, "drifted": drifted,
            "accepted_per_day": {d: {"accepted": c.get("accept", 0), "total": sum(c.values())} for d, c in sorted(per_day.items())},
        }  # fmt: skip
        if act:
            check = _append(audit, CHECK, {"domain": name, "policy_id": pid, "probe_id": probe_id,
                                           "estimate": {k2: est[k2] for k2 in ("spot_checks", "review_routed", "decisions", "breach", "drifted")},
                                           "drift": drift, "state": st.state})  # fmt: skip
            events.append(check)
            if (breach or drifted) and st.state == "normal":
                why = []
                if breach:
                    b = ucb if dp.breach_rule == "upper_bound" else lcb
                    why.append(f"{dp.breach_rule.replace('_', ' ')} {b:.4g} on accepted hallucinations ({k}/{n} "
                               f"reviewed spot-checks, confidence {dp.confidence}) exceeds target {dp.target_hallucination_rate}")  # fmt: skip
                for s in drifted:
                    why.append(f"{s} drift: KS p-value {drift[s]['p_value']:.3g} < drift_p_value {dp.drift_p_value}")
                current = None
                action, accept, how = _stricter(dp, m, current)
                ev = _append(audit, TIGHTEN, {"domain": name, "action": action, "accept_below": accept,
                                              "probe_id": probe_id, "reason": "; ".join(why), "how": how,
                                              "evidence_record": check["id"], "policy_id": pid})  # fmt: skip
                events.append(ev)
                st = transition(st, ev)
                est["state"] = st.to_dict()
        est["events"] = [{"kind": e["kind"], "id": e["id"], "reason": e.get("reason")} for e in events if e["kind"] != CHECK]
        states[name] = st
        est["_live_risks"] = [x for x in risks if x is not None]
        est["_calibration_risks"] = cal
        est["_spot_results"] = [(it.time, label == "hallucinated") for it, label in sorted(reviewed, key=lambda p: p[0].time)]
        est["_accept_series"] = [r.get("route") == "accept" for r in dom]
        report["domains"][name] = est
    if act:
        write_state(Path(policy.monitor.state), {d: s for d, s in states.items() if d in policy.domains}, pid)
    return report


def _append(audit, kind: str, record: dict) -> dict:
    receipt = audit.append(dict(record), kind=kind)
    return {**record, "kind": kind, "id": receipt.id, "hash": receipt.hash,
            "time": datetime.now(timezone.utc).isoformat(timespec="microseconds")}  # fmt: skip


def lift(policy, domain: str, *, by: str, reason: str, audit_path=None) -> DomainState:
    """A person lifts a domain's tightening: audited (``monitor_lift``), then the state file is rewritten."""
    from .audit import AuditLog

    if domain not in policy.domains:
        raise InputError(f"domain {domain!r} is not in the policy (known: {', '.join(sorted(policy.domains))})")
    if not isinstance(by, str) or not by.strip():
        raise InputError("say who lifts the tightening: pass --by NAME")
    if not isinstance(reason, str) or not reason.strip():
        raise InputError("say why the tightening is lifted: pass --reason TEXT")
    audit_path = Path(audit_path or policy.audit.path)
    from .integrity import load_key

    log = AuditLog(audit_path, redact=policy.audit.redact, key=load_key(policy.integrity.key_file))
    states = replay(log)
    st = states.get(domain, DomainState())
    if st.state != "tightened":
        raise InputError(f"domain {domain!r} is not tightened (state {st.state}); nothing to lift")
    ev = _append(log, LIFT, {"domain": domain, "by": by.strip(), "reason": reason.strip(), "lifted_record": st.record_id})
    states[domain] = transition(st, ev)
    write_state(Path(policy.monitor.state), {d: s for d, s in states.items() if d in policy.domains}, policy_id(policy))
    return states[domain]


# ------------------------------------------------------------------------------------------ output


def public_report(report: Mapping[str, Any]) -> dict:
    """The report without the series kept for the figures."""
    out = dict(report)
    out["domains"] = {d: {k: v for k, v in e.items() if not k.startswith("_")} for d, e in report["domains"].items()}
    return out


def summary(report: Mapping[str, Any]) -> str:
    lines = [f"monitor: {report['audit_log']} ({report['chain']['n_records']} records, chain "
             f"{'verified' if report['chain']['ok'] else 'BROKEN'}), policy {report['policy_id']}"]  # fmt: skip
    for d, e in report["domains"].items():
        s = e["spot_checks"]
        rate = "-" if s["rate"] is None else f"{s['rate']:.3f}"
        judged = "" if s["reviewed"] >= s["min_reviewed_to_judge"] else f" (not judged before {s['min_reviewed_to_judge']} reviewed)"
        lines.append(
            f"  {d:12s} state={e['state']['state']}"
            + (f" ({e['state']['action']}, accept_below {e['state']['accept_below']:.4g})" if e["state"]["state"] == "tightened" else "")
            + f" decisions={e['n_decisions']} {dict(e['decisions'])}"
        )
        lines.append(
            f"    spot-checks: {s['selected']} selected, {s['reviewed']} reviewed, {s['hallucinated']} hallucinated "
            f"(rate {rate}, upper bound {s['upper_bound']:.3f} at {e['confidence']}, target {e['target']}){judged}"
        )
        rr = e["review_routed"]
        lines.append(f"    review-routed: {rr['reviewed']} reviewed, {rr['hallucinated']} hallucinated, {rr['correct']} correct")
        for sig, t in e["drift"].items():
            if t["p_value"] is not None:
                lines.append(f"    drift {sig}: KS {t['statistic']:.3f} p={t['p_value']:.3g} (n {t['n_reference']} vs {t['n_live']})"
                             + (" DRIFT" if t["drift"] else ""))  # fmt: skip
        sel = e["selection_audit"]
        lines.append(f"    selection: {sel.get('selected', 0)} of {sel.get('accepted', 0)} accepted spot-checked, "
                     f"{len(sel.get('mismatches', []))} mismatches")  # fmt: skip
        for ev in e.get("events", []):
            lines.append(f"    {ev['kind']} ({ev['id']}): {ev['reason']}")
    return "\n".join(lines)


def write_html(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """A one-file HTML report: per domain the live vs calibration risk histogram, the accepted share over
    time and the cumulative spot-check results with their upper bound."""
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ["<html><head><meta charset='utf-8'><title>hguard monitor</title></head><body>",
             f"<h1>hguard monitor</h1><pre>{html.escape(summary(report))}</pre>"]  # fmt: skip
    for d, e in report["domains"].items():
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.2))
        bins = [i / 20 for i in range(21)]
        if e["_calibration_risks"]:
            ax[0].hist(e["_calibration_risks"], bins=bins, density=True, alpha=0.5, label=f"calibration (n={len(e['_calibration_risks'])})")
        if e["_live_risks"]:
            ax[0].hist(e["_live_risks"], bins=bins, density=True, alpha=0.5, label=f"live (n={len(e['_live_risks'])})")
        ax[0].set_title(f"{d}: risk"); ax[0].legend(fontsize=7)  # noqa: E702
        acc = e["_accept_series"]
        step = max(1, len(acc) // 20)
        xs = list(range(step, len(acc) + 1, step))
        ax[1].plot(xs, [sum(acc[x - step:x]) / step for x in xs], marker=".")
        ax[1].set_ylim(0, 1); ax[1].set_title(f"accepted share per {step} decisions"); ax[1].set_xlabel("decisions")  # noqa: E702
        res = e["_spot_results"]
        if res:
            ks = [sum(h for _, h in res[:i + 1]) for i in range(len(res))]
            ub = [clopper_pearson_upper(k, i + 1, e["confidence"]) for i, k in enumerate(ks)]
            ax[2].plot(range(1, len(res) + 1), [k / (i + 1) for i, k in enumerate(ks)], label="rate")
            ax[2].plot(range(1, len(res) + 1), ub, label=f"upper bound ({e['confidence']})")
        ax[2].axhline(e["target"], color="red", linestyle="--", label="target")
        ax[2].set_ylim(0, 1); ax[2].set_title("reviewed spot-checks"); ax[2].set_xlabel("n"); ax[2].legend(fontsize=7)  # noqa: E702
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        parts.append(f"<h2>{html.escape(d)}: {html.escape(e['state']['state'])}</h2>"
                     f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")  # fmt: skip
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path



def cli_main(argv: list[str]) -> int:
    """The ``hguard monitor`` command; it lives in :mod:`hguard.cli.monitor` (kept here for old imports)."""
    from .cli.monitor import main

    return main(argv)
