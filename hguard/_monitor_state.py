"""The monitor's per-domain state: normal or tightened, its transitions from audit events, the state file
the guard reads before routing (:class:`MonitorState`, which fails closed) and how a tightening lowers a
domain's thresholds. See :mod:`hguard.monitor`."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from ._numerics import finite_number
from .errors import HGuardError

TIGHTEN, LIFT, CHECK, SPOT = "monitor_tighten", "monitor_lift", "monitor_check", "spot_check"
STATE_FORMAT = "hguard-monitor-state"
# how many rotations a running guard follows between two replays of the chain
_ROTATION_HOPS = 64


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
    calibration_id: str | None = None  # what that probe routed with
    data_hash: str | None = None  # the calibration's answers then (a recalibration lifts only on other answers)
    # normal after a lift by recalibration: the probes the tightenings since a person's last lift were decided
    # under, which the recalibration (``probe_id``, its ``calibration_id`` and ``data_hash``) replaced ("+"-joined).
    # A guard scoring with one of them (not restarted since, or the probe folder rolled back) stays held, any other is
    # served as the domain is (:func:`tightened_thresholds`). Tightened: those of the earlier tightenings, ``probe_id``
    # aside; no recalibration lifts a domain back onto one of them (:func:`breached_probe_ids`)
    replaced_probe_id: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _threshold(value: Any) -> float | None:
    """``value`` as a tightened accept threshold: a finite number in [0, 1], else None."""
    x = finite_number(value)  # true, NaN or an integer too large for a float (10**400) is no threshold either
    return x if x is not None and 0 <= x <= 1 else None


def probe_ids(joined: str | None) -> frozenset[str]:
    """The probe ids a state's ``probe_id`` or ``replaced_probe_id`` names: "+"-joined (a domain calibrated
    closed-book and with context has a probe for each)."""
    return frozenset(p for p in (joined or "").split("+") if p)


def joined_probe_ids(ids: Iterable[str]) -> str | None:
    """``ids`` as a state or a record names them: "+"-joined in sorted order (:func:`probe_ids` reads it); None for
    none."""
    return "+".join(sorted(ids)) or None


def breached_probe_ids(state: DomainState | None) -> frozenset[str]:
    """Every probe a tightening of the domain was decided under since a person last lifted it: the tightening in
    force and the earlier ones, which lifts by recalibration replaced. A guard scoring with one of them accepts
    nothing, and a recalibration lifts no tightening onto one (a probe folder rolled back): only a person does."""
    if state is None:
        return frozenset()
    now = probe_ids(state.probe_id) if state.state == "tightened" else frozenset()
    return now | probe_ids(state.replaced_probe_id)


def transition(state: DomainState, event: Mapping[str, Any]) -> DomainState:
    """The next state after one audit event (``kind`` monitor_tighten or monitor_lift); other kinds and a
    tightening of an already tightened domain by an equal or looser threshold change nothing (but for the probe it
    names, kept among the breached ones). A tightening whose threshold is no number in [0, 1] (null, as a NaN is
    written) tightens to accept nothing, saying so: it stopped every replay of the chain, and so every domain, the
    monitor, lifts and rotation, for good. The probes tightenings were decided under are kept until a person lifts
    the domain (:func:`breached_probe_ids`): a lift by recalibration frees none of them."""
    kind = event.get("kind")
    if kind == TIGHTEN:
        new = _threshold(event.get("accept_below"))
        reason = event.get("reason")
        if new is None:
            new, reason = 0.0, (f"{reason}; its accept_below, {event.get('accept_below')!r}, is no threshold: "
                                "accepting nothing until a person lifts it")
        # (a tightening carried over from a state file names the earlier ones it held too)
        breached = breached_probe_ids(state) | probe_ids(event.get("probe_id")) | probe_ids(event.get("replaced_probe_id"))
        if state.state == "tightened" and state.accept_below is not None and state.accept_below <= new:
            earlier = joined_probe_ids(breached - probe_ids(state.probe_id))
            return state if earlier == state.replaced_probe_id else replace(state, replaced_probe_id=earlier)
        return DomainState("tightened", event.get("action"), new, event.get("time"), event.get("id"),
                           event.get("probe_id"), reason, event.get("calibration_id"),
                           event.get("data_hash"), joined_probe_ids(breached - probe_ids(event.get("probe_id"))))  # fmt: skip
    if kind == LIFT:
        if event.get("by") == "recalibration" and event.get("probe_id"):
            # the monitor's lift by recalibration frees only the probe it names, never one a tightening was decided
            # under (a lift record written before the replaced probe was recorded in it replaced the tightening's)
            held = breached_probe_ids(state) | probe_ids(event.get("replaced_probe_id"))
            if state.state != "tightened" and not held:
                return state
            return DomainState("normal", None, None, event.get("time"), event.get("id"), event.get("probe_id"),
                               event.get("reason"), event.get("calibration_id"), event.get("data_hash"),
                               joined_probe_ids(held) or "(not recorded)")
        if state.state != "tightened" and state.replaced_probe_id is None:
            return state
        # a person's lift: of a tightening, or of what a recalibration's lift left: it frees every probe
        return DomainState("normal", None, None, event.get("time"), event.get("id"), None, event.get("reason"))
    return state


# the first record of a rotated audit log (hguard.audit.CONTINUATION): it carries the states its archives end in
CONTINUED = "log_continued"
REPLAYED = (TIGHTEN, LIFT, CONTINUED)  # the records a replay reads


def replay(records: Iterable[Mapping[str, Any]], states: Mapping[str, DomainState] | None = None, *,
           lifts: dict[str, str] | None = None, lift_seqs: dict[str, int] | None = None) -> dict[str, DomainState]:
    """Every domain's state after the monitor events in ``records`` (audit log order), from ``states``. A rotated
    log's first record carries the states its archives ended in: each domain takes the stricter of those and
    what was replayed before it (the same, when the archives were replayed too).

    ``lifts``, when given, receives each domain's latest lift (the time of the ``monitor_lift`` record that ended a
    tightening): the live evidence counts from it on, also once the domain is tightened again, which the state alone
    no longer says (its ``since`` is then the new tightening's). A carried state that is normal names its lift too,
    should the archives not be replayed. ``lift_seqs`` receives where in the chain each of those lifts stands (the
    lift record's seq; the opening record's for a carried one): the evidence after a lift is the records after it in
    the chain, whatever their clocks said (a clock set back after a lift stamped later answers before it)."""
    states = dict(states or {})
    for rec in records:
        if rec.get("kind") in (TIGHTEN, LIFT) and rec.get("domain"):
            before = states.get(rec["domain"], DomainState())
            states[rec["domain"]] = after = transition(before, rec)
            # a person's lift of what a recalibration's lift left (the guards scoring with the replaced probe) ends
            # no tightening: the evidence still counts from the recalibration's lift
            if rec.get("kind") == LIFT and after is not before and after.since and before.state == "tightened":
                if lifts is not None:
                    lifts[rec["domain"]] = after.since
                if lift_seqs is not None and type(rec.get("seq")) is int:
                    lift_seqs[rec["domain"]] = rec["seq"]
        elif rec.get("kind") == CONTINUED and isinstance(rec.get("monitor_states"), Mapping):
            for domain, carried in rec["monitor_states"].items():
                was = DomainState(**carried)
                held = _stricter(states.get(domain), was)
                if held is not None:
                    states[domain] = held
                if was.state == "normal" and was.since and was.since > (lifts or {}).get(domain, ""):
                    if lifts is not None:
                        lifts[domain] = was.since
                    if lift_seqs is not None and type(rec.get("seq")) is int:
                        lift_seqs[domain] = rec["seq"]
    return states


def carried_states(states: Mapping[str, DomainState]) -> dict[str, dict]:
    """``states`` as a rotation carries them into the fresh log's first record."""
    return {d: s.to_dict() for d, s in sorted(states.items())}


def tightened_thresholds(entry: DomainState | None, thresholds, probe_id: str | None = None):
    """``thresholds`` with the accept threshold lowered to the tightened one (None stays None: no route then), and
    why. ``probe_id``: the probe the guard scores the answer with. A domain a recalibration lifted (normal, with
    ``replaced_probe_id``) stays held, accepting nothing, for a guard scoring with a probe the tightening was decided
    on (one not restarted since), or with a probe it cannot name (None); a guard scoring with any other probe (the
    recalibrated one, or a later routine recalibration) is served as the domain is."""
    if thresholds is None or entry is None:
        return thresholds, None
    if entry.state != "tightened":
        held = probe_ids(entry.replaced_probe_id)
        if not held or (probe_id is not None and probe_id not in held):
            return thresholds, None
        accept = 0.0
        now = (f"probe {probe_id}, one a tightening was decided on" if probe_id is not None
               else "a probe it cannot name")
        why = (f"domain tightened by the monitor, then lifted{f' at {entry.since}' if entry.since else ''} by a "
               f"recalibration ({entry.reason}) for probe {entry.probe_id} only; this guard scores with {now} "
               f"(breached: {entry.replaced_probe_id}): accept nothing, every answer not abstained on goes to review, "
               + ("until that probe is recalibrated too (a guard that loads the recalibration from the policy's probe "
                  "folder is served), or a person lifts it (`hguard monitor --lift`)"
                  if probe_id is not None and probe_id in probe_ids(entry.probe_id) else
                  f"until the guard is restarted (or its domain reloaded with Guard.add_domain) so that it loads probe "
                  f"{entry.probe_id} from the policy's probe folder, or a person lifts it (`hguard monitor --lift`)"))
        how = f"held after a lift by recalibration for another probe (record {entry.record_id})"
    elif entry.record_id is None and entry.since is None:  # no tightening of the monitor's: a state that cannot be
        accept = 0.0  # read as it says (a state file's own threshold, with nothing to check it by, accepted under it)
        why = f"domain held for review, accepting nothing, while its monitor state cannot be checked: {entry.reason}"
        how = f"tightened by the monitor (record {entry.record_id})"
    else:
        accept = min(_threshold(entry.accept_below) or 0.0, thresholds.accept_below)
        how = f"tightened by the monitor (record {entry.record_id})"
        why = (
            f"domain tightened by the monitor{f' since {entry.since}' if entry.since else ''} ({entry.reason}); "
            f"accept_below lowered to {accept:.4g}"
            f" ({'accept nothing: every answer not abstained on goes to review' if accept == 0 else entry.action})"
            " until a person lifts it"
        )
    if accept == thresholds.accept_below:
        return thresholds, why
    return replace(  # the measurement of a hand-set accept_below is of that number, no longer in force
        thresholds, accept_below=accept, coverage=None, accepted_error_rate=None, accepted_error_ucb=None,
        hand_set_measured=None, method=f"{thresholds.method}; {how}",
    ), why  # fmt: skip


def _stricter(a: DomainState | None, b: DomainState | None) -> DomainState | None:
    """The stricter of two states: tightened over normal, the lower accept threshold among tightened; among normal
    ones, one a recalibration lifted (which still holds guards scoring with the replaced probe), ``b``'s first. The
    probes either holds as breached (:func:`breached_probe_ids`) stay so in it."""
    ta, tb = a is not None and a.state == "tightened", b is not None and b.state == "tightened"
    if ta and tb:
        held = a if (_threshold(a.accept_below) or 0.0) <= (_threshold(b.accept_below) or 0.0) else b  # type: ignore[union-attr]
    elif not ta and not tb and b is not None and b.replaced_probe_id is not None:
        held = b
    else:
        held = a if ta or not tb else b
    other = b if held is a else a
    more = breached_probe_ids(other) - breached_probe_ids(held)
    if held is None or not more:
        return held
    now = probe_ids(held.probe_id) if held.state == "tightened" else frozenset()
    return replace(held, replaced_probe_id=joined_probe_ids((breached_probe_ids(held) | more) - now))


def _tightening(state: DomainState | None) -> tuple | None:
    """What a state says of the tightening in force (the probes it holds as breached aside)."""
    return None if state is None else (state.state, state.accept_below, state.record_id)


class MonitorState:
    """The state file the guard consults before routing (a mirror of the audit chain, written by the monitor).

    Re-read when the file changes. A file that exists but cannot be read fails closed: every domain is then
    treated as tightened to accept nothing, with the reason. The file is not trusted to loosen anything:
    whenever it changes (and when it is missing) the audit chain (``audit_path``) is replayed too, and each
    domain gets the stricter of the two, so editing or deleting the mirror does not lift a tightening that
    the chain holds (only a ``monitor_lift`` record does); a chain that cannot be replayed fails closed."""

    def __init__(self, path: str | os.PathLike[str] | None, audit_path: str | os.PathLike[str] | None = None, *,
                 key: bytes | None = None, anchor: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else None
        self.audit_path = Path(audit_path) if audit_path is not None else None
        self.key, self.anchor = key, anchor  # the chain is replayed only once it verifies with them
        self._stamp: tuple | None = None
        self._states: dict[str, DomainState] = {}
        self._broken: str | None = None
        self._chain: dict[str, DomainState] | None = None
        self._chain_broken: str | None = None
        # how far the chain was verified and replayed: a later replay reads only what was appended since
        self._point: Any = None
        self._point_states: dict[str, DomainState] = {}
        # one reader at a time: a guard's threads share this object, and a replay moves the verified point
        # that another thread's replay would otherwise resume from half-way (read as a log cut back)
        self._lock = threading.Lock()
        # the archives a rotated log continues are not replayed (their states are carried) but must be there as
        # archived: looked at (a stat each) at most once a second, one taken away or cut fails closed, in a running
        # guard too (the monitor then refuses to run, so no replay would see it; edits within are verify's to find)
        self._archives_seen = float("-inf")
        self._archives_gone: str | None = None

    def get(self, domain: str | None) -> DomainState | None:
        if self.path is None or domain is None:
            return None
        with self._lock:
            return self._get(domain)

    def _get(self, domain: str) -> DomainState | None:
        assert self.path is not None
        try:
            st = self.path.stat()
            stamp: tuple = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = ("missing",)
        except OSError as exc:
            return self._closed(f"monitor state {self.path} cannot be read ({exc})")
        if stamp != self._stamp:
            self._states, self._broken, self._chain = {}, None, None  # the chain is replayed again with it
            if stamp != ("missing",):
                try:
                    self._states = read_state_file(self.path)
                except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                    self._broken = f"monitor state {self.path} is unreadable ({type(exc).__name__}: {exc})"
            self._stamp = stamp
        if self._broken:
            return self._closed(self._broken)
        mirror = self._states.get(domain)
        if self.audit_path is None:
            return mirror
        self._replay()
        if self._chain_broken:
            return self._closed(self._chain_broken)
        self._check_archives()
        if self._archives_gone:
            return self._closed(self._archives_gone)
        chain = (self._chain or {}).get(domain)
        held = _stricter(mirror, chain)
        if (held is not None and chain is not None and chain.state == "tightened"
                and _tightening(held) == _tightening(chain) != _tightening(mirror) and stamp != ("missing",)):
            said = "normal" if mirror is None or mirror.state != "tightened" else f"accept_below {mirror.accept_below}"
            return replace(held, reason=f"{chain.reason}; the state file {self.path} says {said}, which the "
                                        "audit chain does not: the chain holds (rerun `hguard monitor` to rewrite the file)")
        return held

    def use_log(self, audit) -> None:
        """Replay the chain of this :class:`~hguard.audit.AuditLog` (its path, key and anchor) from now on."""
        with self._lock:
            self._use_log(audit)

    def _use_log(self, audit) -> None:
        same = (self.audit_path, self.key, self.anchor) == (Path(audit.path), audit._key, audit.anchor)  # noqa: SLF001
        self.audit_path, self.key, self.anchor = Path(audit.path), audit._key, audit.anchor  # noqa: SLF001
        self._stamp, self._chain = None, None
        if not same:
            self._point, self._point_states = None, {}

    def _replay(self) -> None:
        if self._chain is not None or self.audit_path is None:
            return
        self._chain_broken = None
        if not self.audit_path.exists() and self._point is None:  # nothing written yet (a log its anchor
            self._chain = {}  # remembers is refused at start)
            return
        from .audit import verify

        events: list[Mapping[str, Any]] = []  # monitor events are few: kept while the chain is checked
        try:
            # a forged or edited record must not lift anything: only a chain that verifies (hashes, the key's
            # MACs, the anchor's heads) is replayed; a torn last line, never acknowledged, is no break. Verified
            # once, a stretch is not read again: what an edit of it could change was replayed when it verified.
            # And once verified, the log must go on from there: one cut back, replaced by an older copy or
            # deleted (which a key alone cannot tell from a log that never held the tightening) fails closed.
            if not self.audit_path.exists():
                raise FileNotFoundError(f"it is gone since this guard verified it up to seq {self._point.seq}")
            self._follow_rotation()
            report = verify(self.audit_path, key=self.key, anchor=self.anchor, start=self._point,
                            on_record=lambda rec: events.append(rec) if rec.get("kind") in REPLAYED else None)
            if self._point is not None and not report.resumed:
                raise ValueError(f"it no longer continues the chain this guard verified up to seq {self._point.seq} "
                                 "(the file was cut back or replaced since); restart the guard once the log is restored")
            breaks = [p for p in report.problems if not p.torn]
            if breaks:
                raise ValueError(f"it does not verify (line {breaks[0].line}: {breaks[0].message})")
            self._chain = replay(events, self._point_states if report.resumed or self._point is None else None)
            self._point, self._point_states = report.resume, self._chain
        except Exception as exc:  # an unreadable or broken chain cannot say the domain is not tightened
            self._chain = {}  # the verified point stays: a later replay must still continue it
            self._chain_broken = (f"audit log {self.audit_path} cannot be replayed to check the monitor state "
                                  f"({type(exc).__name__}: {exc}); `hguard audit verify` says where")

    def _check_archives(self) -> None:
        from ._audit_verify import archive_problems

        now = time.monotonic()
        if self.audit_path is None or now - self._archives_seen < 1.0:
            return
        self._archives_seen = now
        try:
            gone = archive_problems(self.audit_path, hashes=False) if self.audit_path.exists() else []
        except OSError as exc:
            gone = [f"its archives cannot be read ({exc})"]
        self._archives_gone = (f"audit log {self.audit_path}: {gone[0]}; put the archive back beside the log as it was "
                               "archived" if gone else None)

    def _follow_rotation(self) -> None:
        """When the log was rotated since this guard's last replay (its name now holds a fresh file that continues,
        through one or more archives, the file this guard had verified up to its point), verify and replay the rest
        of that file, each archive after it and each link, and go on from the fresh file's start. Anything else is
        left to the caller's check (which fails closed on a log that does not continue the verified chain)."""
        from ._audit_files import _continued_archives
        from .audit import verify

        point = self._point
        if point is None or self.audit_path is None or os.stat(self.audit_path).st_ino == point.inode:
            return
        links: list[tuple[Path, Mapping[str, Any]]] = []  # (archive, the opening record of the file after it)
        for archive, opening in _continued_archives(self.audit_path, limit=_ROTATION_HOPS):
            try:
                inode = os.stat(archive).st_ino
            except OSError:
                return
            links.append((archive, opening))
            if inode == point.inode:
                break
        else:
            return
        states, start = self._point_states, point
        for archive, after in reversed(links):  # the oldest first: the one holding the point, from the point on
            events: list[Mapping[str, Any]] = []

            def keep(rec: Mapping[str, Any], sink: list = events) -> None:
                if rec.get("kind") in REPLAYED:
                    sink.append(rec)

            report = verify(archive, key=self.key, start=start, on_record=keep)
            if (start is not None and not report.resumed) or report.problems or report.head_hash != after.get("prev_hash"):
                return
            states, start = replay(events, states), None
        self._point_states = states
        self._point = None  # the fresh file is verified from its start, from these states

    @staticmethod
    def _closed(why: str) -> DomainState:
        return DomainState("tightened", "review", 0.0, None, None, None, f"{why}; fix the cause (the monitor runs again once the audit log verifies)")


def read_state_file(path: Path) -> dict[str, DomainState]:
    """The domain states a state file holds; OSError, ValueError, TypeError, KeyError or AttributeError when it
    cannot be read as one: also a state other than normal or tightened, a tightened threshold that is no number in
    [0, 1] (NaN, which JSON readers take) or a field of the wrong type."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"format is {data.get('format')!r}, not {STATE_FORMAT!r}")
    states = {d: DomainState(**s) for d, s in data["domains"].items()}
    for d, st in states.items():
        if st.state not in ("normal", "tightened") or (st.state == "tightened" and _threshold(st.accept_below) is None):
            raise ValueError(f"domain {d!r} has state {st.state!r} with accept_below {st.accept_below!r}: a domain is "
                             "normal, or tightened to an accept_below in [0, 1]")
        wrong = [k for k, v in st.to_dict().items() if k != "accept_below" and v is not None and not isinstance(v, str)]
        if wrong:
            raise ValueError(f"domain {d!r}: {wrong[0]} is {getattr(st, wrong[0])!r}, not text")
    return states


def write_state(path: Path, states: Mapping[str, DomainState], pid: str) -> None:
    """Atomically replace the state file with ``states``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = {"format": STATE_FORMAT, "policy_id": pid, "domains": {d: s.to_dict() for d, s in sorted(states.items())}}
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # it named the .tmp file only, after this run's records were appended
        raise HGuardError(
            f"could not write the monitor state {path} ({exc.strerror or exc}, writing {exc.filename or tmp}): the "
            "records this run appended to the audit log stand, and a tightening or lift among them is in force (the "
            "guard reads them from the log); make the state file and its folder writable, then run the monitor again"
        ) from exc
