"""The monitor's per-domain state: normal or tightened, its transitions from audit events, the state file
the guard reads before routing (:class:`MonitorState`, which fails closed) and how a tightening lowers a
domain's thresholds. See :mod:`hguard.monitor`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

TIGHTEN, LIFT, CHECK, SPOT = "monitor_tighten", "monitor_lift", "monitor_check", "spot_check"
STATE_FORMAT = "hguard-monitor-state"


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
    calibration_id: str | None = None  # what that probe routed with (a recalibration changing it lifts)

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
                           event.get("probe_id"), event.get("reason"), event.get("calibration_id"))  # fmt: skip
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
        f"domain tightened by the monitor{f' since {entry.since}' if entry.since else ''} ({entry.reason}); "
        f"accept_below lowered to {accept:.4g}"
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
