"""``hguard monitor``: spot-check estimate, drift and tightening per domain (see :mod:`hguard.monitor`)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from .._resources import policy_arg, public_seed_warning
from ..errors import AuditIntegrityError, InputError, install_extra
from ..monitor import lift, public_report, run_monitor, summary, write_html

__all__ = ["ALARM", "build_parser", "main"]

#: ``--exit-code``'s status when a domain is in breach, has drifted or is tightened, or the review backlog is warned
#: of (1 is a log that does not verify or an unexpected error, 2 misuse: the --exit-code help says each)
ALARM = 3


def _alarmed(report: dict) -> list[str]:
    """The domains a scheduled job must hear of: in breach or drifted on this run, or tightened (now or before)."""
    return sorted(name for name, e in report["domains"].items()
                  if e.get("breach") or e.get("drifted") or e["state"]["state"] != "normal")


def _backlog_alarm(report: dict) -> str | None:
    """What a scheduled job must hear of the review queue's backlog: its warning (the oldest pending live item has
    waited longer than ``[monitor] review_backlog_max_age_hours``, or a pending item's wait cannot be read; or the
    queue cannot be read: its file missing while the log holds items routed to review), else None."""
    backlog = report.get("review_backlog") or {}
    if backlog.get("unreadable"):  # the queue file is missing while the log holds items routed to review
        return f"the review backlog cannot be read: {backlog['unreadable']}"
    overall = backlog.get("overall") or {}
    if not overall.get("over_max_age"):
        return None
    late = [d for d, f in (backlog.get("domains") or {}).items() if f["over_max_age"]]
    if (backlog.get("outside_domains") or {}).get("over_max_age"):
        late.append("outside the policy's domains")
    return (f"the review backlog is past [monitor] review_backlog_max_age_hours {backlog['max_age_hours']:g}"
            + (f" (in {', '.join(late)})" if late else ""))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hguard monitor", description="Spot-check estimate, drift and tightening per domain.")
    p.add_argument("--policy", required=True, type=policy_arg, help="the policy the guard runs under (`default`: the "
                   "packaged default policy)")
    p.add_argument("--audit", help="audit log (default: the policy's)")
    p.add_argument("--queue", help="review queue (default: the policy's)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--report", help="HTML report path (default: monitor-report.html beside the audit log)")
    p.add_argument("--dry-run", action="store_true", help="report only: append nothing, change no state")
    p.add_argument("--exit-code", action="store_true",
                   help=f"exit {ALARM} when a domain is in breach, has drifted or is tightened, or the review backlog "
                        "is warned of (an item pending longer than [monitor] review_backlog_max_age_hours, or no "
                        "queue file while the audit log holds items routed to review): a scheduled "
                        "job's alarm without parsing --json. Every exit status, with or without it: 0 the run "
                        "completed and, with --exit-code, found nothing to alarm on; 1 the audit log does not verify "
                        "(an edited, removed or forged record: no decision taken) or an unexpected error; 2 a usage "
                        "error (a bad flag, an invalid policy, a file that cannot be read); "
                        f"{ALARM} the alarm above. A scheduled job must alarm on any non-zero status, not on "
                        f"{ALARM} alone")
    p.add_argument("--lift", metavar="DOMAIN", help="lift a domain's tightening (audited; needs --by and --reason)")
    p.add_argument("--by", help="who lifts it")
    p.add_argument("--reason", help="why")
    return p


def _unverified(exc: AuditIntegrityError) -> int:
    """The log does not verify: said, and 1, as `hguard audit verify` says it (2 is misuse)."""
    print(f"hguard monitor: {exc}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    """``hguard monitor`` entry point."""
    from ..policy import load_policy

    args = build_parser().parse_args(argv)
    policy = load_policy(args.policy)
    if args.lift:
        # a lift is a person's act, recorded at once: none of a run's options previews or reports it (a dry run
        # that lifted for real relaxed the domain's accept threshold)
        ignored = [f for f, on in (("--dry-run", args.dry_run), ("--json", args.json), ("--queue", args.queue),
                                   ("--report", args.report), ("--exit-code", args.exit_code)) if on]
        if ignored:
            raise InputError(f"--lift records the lift at once; {', '.join(ignored)} "
                             f"{'goes' if len(ignored) == 1 else 'go'} with a monitor run, not a lift: leave "
                             f"{'it' if len(ignored) == 1 else 'them'} out (`hguard monitor --policy FILE --dry-run` "
                             "shows the domain's state and evidence without changing anything)")
        try:
            st = lift(policy, args.lift, by=args.by or "", reason=args.reason or "", audit_path=args.audit)
        except AuditIntegrityError as exc:  # refused as a run is: nothing appended, no state changed
            return _unverified(exc)
        print(f"hguard monitor: domain {args.lift!r} lifted (record {st.record_id}); state {st.state}")
        return 0
    plots = importlib.util.find_spec("matplotlib") is not None
    if args.report:  # checked before anything is appended
        from ..policy import refuse_own_file

        if not plots:
            raise InputError(f"--report needs matplotlib for its figures; {install_extra('plots')}, or leave --report "
                             "out (the estimate is printed without the HTML report)")
        refuse_own_file(args.report, {**policy.own_files(), "audit log read": Path(args.audit) if args.audit else None,
                                      "review queue read": Path(args.queue) if args.queue else None}, "--report",
                        replaces=(".html", ".htm"), example="monitor-report.html")  # an earlier report; never an archive, a log, a data file
    seed_warning = public_seed_warning(policy)
    if seed_warning:
        print(f"hguard monitor: warning: {seed_warning}", file=sys.stderr)
    try:
        report = run_monitor(policy, audit_path=args.audit, queue_path=args.queue, act=not args.dry_run)
    except AuditIntegrityError as exc:
        return _unverified(exc)
    # without matplotlib the estimate is still printed (and acted on); only the HTML report is left out
    out = write_html(report, args.report or Path(report["audit_log"]).with_name("monitor-report.html")) if plots else None
    if args.json:
        print(json.dumps({**public_report(report), "html_report": str(out) if out else None}, indent=2, default=float))
    else:
        print(summary(report))
        print(f"report: {out}" if out else f"report: none (matplotlib is not installed; {install_extra('plots')})")
    if report["chain"]["no_records_yet"]:  # a 0-byte log (or the monitor's records alone) was reported silently
        print(f"hguard monitor: {report['audit_log']} holds no records yet (none but the monitor's own): a guard that "
              "has written nothing, or the wrong path (the policy's [audit] path, or --audit); nothing to estimate",
              file=sys.stderr)
    alarmed = _alarmed(report) if args.exit_code else []
    backlog = _backlog_alarm(report) if args.exit_code else None
    if alarmed or backlog:
        said = ([f"{', '.join(alarmed)} in breach, drifted or tightened"] if alarmed else []) + ([backlog] if backlog else [])
        print(f"hguard monitor: alarm (exit {ALARM}): {'; '.join(said)}", file=sys.stderr)
        return ALARM
    return 0
