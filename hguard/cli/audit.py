"""``hguard audit``: verify, show, export, repair or rotate an audit log from the command line (see :mod:`hguard.audit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Collection, Mapping

from .._audit_export import last_checked, periods
from .._numerics import finite_number
from .._resources import policy_arg
from ..audit import Problem, VerifyReport, _repair, canonical_json, export_csv, show, verify
from .._text import shown_plainly
from ..errors import AuditKeyRequired, HGuardError, InputError, NothingToArchive, PolicyError, cut_text, shown

__all__ = ["build_parser", "main"]


def _format_record(rec: dict[str, Any]) -> str:
    reasons = rec.get("reasons")
    if isinstance(reasons, list):
        reasons = "; ".join(str(r) for r in reasons)
    parts = [
        f"{rec.get('seq', '?')!s:>6}",
        str(rec.get("time", "?")),
        f"{rec.get('kind', '?')!s:<14}",
        str(rec.get("id", "?")),
    ]
    # verdict, reviewer, decision_audit_id: review verdicts; action, accept_below, by: the monitor's records
    for key in ("domain", "route", "verdict", "reviewer", "decision_audit_id", "action", "accept_below", "by"):
        if rec.get(key) is not None:
            parts.append(f"{key}={rec[key]}")
    if (risk := finite_number(rec.get("risk"))) is not None:
        parts.append(f"risk={risk:.4f}")
    elif rec.get("risk") is not None:  # no number (true, 10**400 raised OverflowError): shown as written
        parts.append(f"risk={shown(rec['risk'], 40)}")
    # what was asked and said, on one line each way (--json has them whole): quoted as JSON, so a line break, tab or
    # leading space shows as written ("\t=1+1" and "=1+1" are two questions), never folded into another text
    for key in ("question", "answer"):
        if isinstance(rec.get(key), str):
            parts.append(f"{key}={json.dumps(cut_text(rec[key], 80), ensure_ascii=False)}")
    # a probe swap (domain_added, domain_removed): which probes served the domain before and after, by prompt mode
    for key in ("probe_ids_before", "probe_ids_after"):
        if isinstance(rec.get(key), dict):
            parts.append(f"{key}={','.join(f'{m}:{i}' for m, i in rec[key].items()) or 'none'}")
    if isinstance(rec.get("not_scored"), str):
        parts.append(f"not_scored={json.dumps(cut_text(rec['not_scored'], 200), ensure_ascii=False)}")
    # review_requeued: where each item put back came from, before the reason (which a long queue path cuts short)
    for key in ("from_decision_records", "from_pending_copies", "from_held_answers", "decided_from_verdict_records"):
        if isinstance(rec.get(key), list) and rec[key]:
            ids = [str(i) for i in rec[key]]
            parts.append(f"{key}={len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})")
    if reasons:
        parts.append(f"reasons={reasons}")
    if isinstance(rec.get("reason"), str):  # why the monitor tightened or lifted, or a spot-check was taken
        parts.append(f"reason={json.dumps(cut_text(rec['reason'], 200), ensure_ascii=False)}")
    if isinstance(rec.get("error"), str):  # an error record's message, or a failed framework call's
        parts.append(f"error={json.dumps(cut_text(rec['error'], 200), ensure_ascii=False)}")
    # every field escaped where it would break the line or turn it around: one record, one line, read as written
    # (a caller's request_id is the record's id)
    return shown_plainly("  ".join(parts))


def _add_key_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--key-file", metavar="FILE", help="the integrity key (default: $HGUARD_KEY_FILE or $HGUARD_KEY when set)"
    )
    g.add_argument("--no-key", action="store_true", help="ignore a key set in the environment")


def _add_period_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DATE", help="only records written at or after DATE (ISO date or time; UTC "
                   "unless it names a zone), e.g. 2026-12-01")
    p.add_argument("--until", metavar="DATE", help="only records written before DATE, e.g. 2027-01-01")


def _add_check_options(p: argparse.ArgumentParser, no_anchor: bool = False) -> None:
    """The key and anchor a command that reads records checks the log with, as verify does (``no_anchor``: also
    ``--no-anchor``, by which LOG without --policy says that its writers keep none)."""
    _add_key_options(p)
    anchored = p.add_mutually_exclusive_group() if no_anchor else p
    anchored.add_argument("--anchor", metavar="FILE", help="the anchor the writer appended heads to, checked too" + (
        " (LOG without --policy needs it, or --no-anchor)" if no_anchor else ""))
    if no_anchor:
        anchored.add_argument("--no-anchor", action="store_true", help="the log's writers keep no anchor (LOG without "
                              "--policy: said, so that an anchored log is never repaired without its anchor)")
    p.add_argument("--policy", metavar="FILE", type=policy_arg, help="check with the key ([integrity] key_file) and anchor ([audit] "
                   "anchor) of this policy file, as the guard that wrote the log does (--key-file, --anchor win)")


def _cli_key(args: argparse.Namespace) -> bytes | None:
    from ..integrity import load_key, load_key_file

    if args.no_key:
        return None
    if args.key_file:
        return load_key_file(args.key_file)
    return load_key(_policy_of(args).integrity.key_file) if getattr(args, "policy", None) else load_key()


def _policy_of(args: argparse.Namespace):
    from ..policy import load_policy

    return load_policy(args.policy)


def _cli_anchor(args: argparse.Namespace):
    anchor = getattr(args, "anchor", None)
    if anchor is None and getattr(args, "policy", None):
        anchor = _policy_of(args).audit.anchor
    return anchor


# why rotate and repair need to know the log's anchor, and what they left unchanged when refused for want of it
_WITHOUT_ANCHOR = {
    "rotate": ("rotated without its anchor, the fresh file's first record is never anchored and verify reads the anchor "
               "as covering none of the log", "nothing was rotated"),
    "repair": ("repaired without its anchor, a last record the anchor shows was written and acknowledged, then cut, is "
               "moved aside and recorded in the chain as a write cut short, never acknowledged (verify with the anchor "
               "says which it is)", "nothing was changed"),
}


def _check_anchor_said(path: str, args: argparse.Namespace, policy) -> None:
    """Refuse a rotation or repair (``args.command``) that may leave out the log's anchor: the log does not say
    whether its writers keep one. Rotated without it, the fresh file's first record is never anchored (verify then
    reads the anchor as covering none of the log, and says OK); repaired without it, an acknowledged record cut short
    is moved aside as a write that never returned, and a record saying so joins the chain. ``policy``: the one given
    with --policy, which names its anchor or none."""
    why, unchanged = _WITHOUT_ANCHOR[args.command]
    if policy is not None:
        if args.no_anchor and policy.audit.anchor is not None:
            raise InputError(f"--no-anchor, but the policy {args.policy} names the anchor {policy.audit.anchor} ([audit] "
                             f"anchor): leave --no-anchor out to {args.command} with it; {unchanged}")
        return
    if args.anchor is None and not args.no_anchor:
        raise InputError(f"say whether the writers of {path} append its heads to an anchor ([audit] anchor): pass "
                         f"--anchor FILE (or --policy FILE, which names it and the key), or --no-anchor when they keep "
                         f"none; {why}; {unchanged}")


def _rotate_alone(path: str, args: argparse.Namespace, policy, anchor) -> str:
    """The command that rotates the log without the review queue's check, with the key and anchor used here (the
    policy's, unless given): named where the queue can never hold what the log promised."""
    import shlex

    key_file = args.key_file or (policy.integrity.key_file if policy is not None else None)
    key = " --no-key" if args.no_key else f" --key-file {shlex.quote(str(key_file))}" if key_file else ""
    where = f" --anchor {shlex.quote(str(anchor))}" if anchor is not None else " --no-anchor"
    return f"`hguard audit rotate {shlex.quote(str(path))}{key}{where}`"


def _under_policy(seen, policy, models: Mapping[tuple[Any, Any, Any], int] | None = None) -> str:
    """Which of the log's decisions (``seen``: a Counter of their policy_hash, the archives' included) name this
    policy file (its policy_hash) and which name others: the policy in force, as an auditor holding the file can
    check it. ``models``: the decisions counted by (policy_hash, domain, model_fingerprint); those under this file made by
    another model than their domain's calibration (a ``--model`` override, which the policy_hash does not show)
    are counted apart, as the monitor leaves them out."""
    from ..monitor import _probe_meta, calibrated_models, made_by_another_model, policy_hash

    mine = policy_hash(policy)
    others = ", ".join(f"{h} ({n})" for h, n in seen.most_common() if h != mine)
    calibrated = calibrated_models(_probe_meta(policy)) if models else {}
    other_model = sum(n for (h, d, m), n in (models or {}).items()
                      if h == mine and made_by_another_model({"domain": d, "model_fingerprint": m}, calibrated))
    return (f"decisions made under this policy file (policy_hash {mine}): {seen.get(mine, 0)} of {sum(seen.values())}"
            + (f", of which {other_model} by another model than their domain's calibration (a model override: not "
               "covered by the policy's guarantee; the monitor leaves them out)" if other_model else "")
            + (f"; under other settings: {others}" if others else ""))


def _check(path: str, args: argparse.Namespace) -> VerifyReport:
    """The log verified as the command's options say: hash chain (with the archives it continues, which must be
    beside it, as every other reader of a rotated log checks them); with the key from --key-file or the
    environment, its MACs; with --anchor, the anchor's heads."""
    return verify(path, key=_cli_key(args), anchor=_cli_anchor(args), archives=True)


def _verify_command(path: str, args: argparse.Namespace) -> str:
    """The verify command that checks what this one checked: with the policy's key and anchor when one was given
    (without --policy, verify checks neither and lists fewer problems), and --no-key when given (every hint an audit
    command prints to verify next is this one)."""
    from .._audit_verify import verify_command

    command = verify_command(path, policy=getattr(args, "policy", None), key_file=getattr(args, "key_file", None),
                             anchor=getattr(args, "anchor", None))
    return command + (" --no-key" if getattr(args, "no_key", False) else "")  # else the environment's key, or none


def _chain_holds(path: str, what: str, args: argparse.Namespace, report: VerifyReport | None = None,
                 said: Collection[int] = ()) -> bool:
    """Whether the log verifies (``report``, else :func:`_check`); when it does not, one line on stderr says so,
    so that records read from a tampered or damaged log are not taken as checked. Without a key on a keyed log
    it says the MACs were not. ``said``: lines whose problem was printed already (the first other one is named)."""
    report = report if report is not None else _check(path, args)
    if report.ok and report.n_macs and not report.key_id:
        print(f"hguard audit: note: {report.n_macs} record(s) of {path} carry a MAC that was NOT checked (no key: a "
              "re-chained forgery reads as intact); pass --key-file FILE or set HGUARD_KEY_FILE", file=sys.stderr)
    if not report.ok:
        others = [p for p in report.problems if not (p.line and p.line in said)]
        first = others[0] if others else None
        where = "" if first is None else (f" ({'first' if len(others) == len(report.problems) else 'besides the above'}:"
                                          f" {f'line {first.line}: ' if first.line else ''}{first.message})")
        print(f"hguard audit: warning: {path} does not verify: {len(report.problems)} problem(s){where}; {what}; "
              f"`{_verify_command(path, args)}` says where", file=sys.stderr)
    return report.ok


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hguard audit", description="Read, check and repair a tamper-evident hguard audit log."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("verify", help="check the hash chain (and MACs, with a key); exit 1 and say where it is broken")
    p.add_argument("path", nargs="?", help="the audit log (.jsonl); with --policy, default the policy's")
    p.add_argument("--policy", metavar="FILE", type=policy_arg, help="read the log, its key ([integrity] key_file) and anchor "
                   "([audit] anchor) from this policy file, as the guard that wrote it does")
    _add_key_options(p)
    p.add_argument(
        "--expect-head", metavar="HASH", help="a record hash kept from a receipt: fail when the log no longer holds it"
    )
    p.add_argument("--anchor", metavar="FILE", help="the anchor file the writer appended heads to ([audit] anchor)")
    p.add_argument("--this-file-only", action="store_true", help="a rotated log: check this file from its first "
                   "record, not the archives it continues (by default they are checked too, beside it)")
    p = sub.add_parser("rotate", help="archive the log's records beside it (LOG.<first>-<last seq>.jsonl, read-only) "
                       "and go on in a fresh file that continues the chain (the guards writing it need no restart)")
    p.add_argument("path", nargs="?", help="the audit log (.jsonl); with --policy, default the policy's")
    p.add_argument("--policy", metavar="FILE", type=policy_arg, help="the log, its key, anchor and review queue from this policy "
                   "file: every answer the log holds for review must be in the queue first")
    _add_key_options(p)
    anchored = p.add_mutually_exclusive_group()
    anchored.add_argument("--anchor", metavar="FILE", help="the anchor the writer appends heads to ([audit] anchor); "
                          "LOG without --policy needs it, or --no-anchor")
    anchored.add_argument("--no-anchor", action="store_true", help="the log's writers keep no anchor (LOG without "
                          "--policy: said, so that an anchored log is never rotated without its anchor)")
    p = sub.add_parser("show", help="print records (and, on stderr, every line that is not a record)")
    p.add_argument("path", nargs="?", help="the audit log (.jsonl); with --policy, default the policy's")
    p.add_argument("--last", type=int, metavar="N", help="only the last N matching records")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--domain", metavar="D", help="only records of this domain")
    where.add_argument("--no-domain", action="store_true",
                       help="only records without a domain (decisions no domain was chosen for, errors)")
    p.add_argument("--route", metavar="R", choices=("accept", "review", "abstain"),
                   help="only records routed this way (accept, review or abstain)")
    p.add_argument("--kind", metavar="K", help="only records of this kind (decision, error, llm_call, review_verdict, ...)")
    p.add_argument("--id", metavar="ID", dest="record_id",
                   help="only the record with this id and those that name it (its spot-check and review verdicts); "
                   "a caller's request_id or a framework run id (run_id, parent_run_id, root_run_id) finds the "
                   "decisions made under it, with theirs")
    p.add_argument("--json", action="store_true", help="one JSON record per line instead of a summary line")
    _add_period_options(p)
    _add_check_options(p)
    p = sub.add_parser("export", help="write the log as CSV (signals.* and thresholds.* become columns; a "
                       "chain_check column says ok, or what verification found wrong on the row's line)")
    p.add_argument("path", nargs="?", help="the audit log (.jsonl); with --policy, default the policy's")
    p.add_argument("--csv", required=True, metavar="OUT", help="the CSV file to write (- for standard output)")
    p.add_argument("--columns", metavar="C1,C2", help="comma-separated columns to write, in order")
    p.add_argument("--bom", action="store_true", help="open the file with a UTF-8 byte-order mark, by which Excel "
                   "reads it as UTF-8 when it is opened by a double-click (without it, Excel reads another script's "
                   "text as mojibake; other tools read either)")
    p.add_argument("--domain", metavar="D", help="only records of this domain (lines that are not records are always "
                   "written; the chain is checked whole)")
    _add_period_options(p)
    _add_check_options(p)
    p = sub.add_parser(
        "repair", help="move a torn last line aside into PATH.torn-<time> now, as the next append would (or restore "
                       "the newline of a complete record that lost only that); with the anchor, a line it holds the "
                       "head of was acknowledged and is refused (LOG without --policy needs --anchor FILE or --no-anchor)"
    )
    p.add_argument("path", nargs="?", help="the audit log (.jsonl); with --policy, default the policy's")
    _add_check_options(p, no_anchor=True)
    return parser


def main(argv: list[str]) -> int:
    """``hguard audit`` entry point: 0 on success, 1 when the log is broken, 2 on a usage or input error."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help and on bad usage; the caller decides about exiting
        return e.code if isinstance(e.code, int) else 2
    try:
        given = getattr(args, "path", None)
        if given and str(given).lower().endswith((".toml", ".yaml", ".yml")):  # read as a log, it "did not verify"
            raise InputError(f"{given} is a policy file, not an audit log; pass it as --policy {given} (hguard audit "
                             f"{args.command} --policy FILE reads the log that policy writes)")
        if args.command in ("verify", "rotate"):
            path, key, anchor = args.path, _cli_key(args), args.anchor
            if args.policy:  # the deployment's own files, unless given here
                from ..integrity import load_key
                from ..policy import load_policy

                pol = load_policy(args.policy)
                if not path and not Path(pol.audit.path).exists():
                    from .review import _left_behind

                    moved = _left_behind(pol)
                    if moved is not None:  # the default policy's log where an earlier hguard kept it
                        raise InputError(f"no audit log at {pol.audit.path}: {moved}")
                path = path or pol.audit.path
                anchor = anchor or pol.audit.anchor
                if not args.no_key and not args.key_file:  # as the guard: the policy's key file, else the environment's
                    key = load_key(pol.integrity.key_file)
            if not path:
                raise InputError(f"pass the audit log to {args.command} (hguard audit {args.command} LOG), or --policy "
                                 f"FILE to {args.command} the log that policy writes")
            if args.command == "rotate":
                from .._audit_rotate import rotate as rotate_log

                _check_anchor_said(path, args, pol if args.policy else None)
                try:
                    done = rotate_log(path, key=key, anchor=anchor, queue=pol.review.queue if args.policy else None,
                                      alone=_rotate_alone(path, args, pol if args.policy else None, anchor))
                except NothingToArchive as exc:  # a quiet period: nothing to do, not a failure (a cron job's alert)
                    print(f"{exc}; the log is left as it is")
                    return 0
                print(f"archived seq {done.first_seq}..{done.last_seq} of {path} as {done.archive} (read-only); {path} "
                      f"now continues the chain at seq {done.receipt.seq} (hash {done.receipt.hash}); "
                      f"`{_verify_command(path, args)}` checks it with its archives, kept beside it")
                return 0
            from collections import Counter

            seen: Counter[str] = Counter()  # the decisions' policy_hash, counted in the verifying pass
            made: Counter[tuple[Any, Any, Any]] = Counter()  # and who made them

            def count(rec: dict[str, Any]) -> None:
                if rec.get("kind") == "decision":
                    seen[rec.get("policy_hash") or "none recorded (written by an hguard that did not record policy_hash yet)"] += 1
                    made[(rec.get("policy_hash"), rec.get("domain"), rec.get("model_fingerprint"))] += 1

            report = verify(path, key=key, expect_head=args.expect_head, anchor=anchor,
                            archives=not args.this_file_only, on_record=count)
            print(report.summary())
            if args.policy:
                print(_under_policy(seen, pol, made))
            return 0 if report.ok else 1
        if args.command in ("show", "export", "repair") and not args.path:
            if not args.policy:
                raise InputError(f"pass the audit log to {args.command} (hguard audit {args.command} LOG), or --policy "
                                 f"FILE to {args.command} the log that policy writes")
            args.path = str(_policy_of(args).audit.path)
        if args.command == "show":
            if args.domain is not None and not args.domain.strip():
                raise InputError(f"--domain {args.domain!r}: pass a domain name, or --no-domain for records without one")
            problems: list[Problem] = []
            n_shown = 0
            # the options first (a usage error waited for the whole chain to verify: 5.8 s on 50,000 records)
            since, until = periods(args.since, args.until)
            last_checked(args.last)
            # verified first: a line that is not a record is said as verify says it (with the anchor: a torn last
            # line whose head it holds was acknowledged and cut, which `repair` must not move aside)
            report = _check(args.path, args)
            for rec in show(args.path, last=args.last, domain=args.domain, route=args.route, kind=args.kind,
                            problems=problems, without_domain=args.no_domain, record_id=args.record_id,
                            since=since, until=until, check=report):
                print(canonical_json(rec) if args.json else _format_record(rec))
                n_shown += 1
            if not n_shown and args.last == 0:
                print(f"hguard audit: --last 0 shows none of the records of {args.path}; pass --last N (N >= 1) or "
                      "leave it out for all", file=sys.stderr)
            elif not n_shown:  # said on stderr, so stdout stays records only
                filters = [f"--{k} {v}" for k, v in (("domain", args.domain), ("route", args.route), ("kind", args.kind),
                                                     ("id", args.record_id)) if v]
                filters += ["--no-domain"] if args.no_domain else []
                every = show(args.path, problems=[]) if args.kind or args.domain else []
                said = [f"kinds in it: {', '.join(sorted({str(r.get('kind')) for r in every}))}"] if args.kind else []
                said += [f"domains in it: {', '.join(sorted({str(r['domain']) for r in every if r.get('domain')})) or 'none'}"
                         ] if args.domain else []
                print(f"hguard audit: no records in {args.path}" + (f" match {' '.join(filters)}" if filters else "")
                      + (f" ({'; '.join(said)})" if said else ""), file=sys.stderr)
            for problem in problems:
                print(f"hguard audit: {args.path} line {problem.line}: {problem.message}", file=sys.stderr)
            holds = _chain_holds(args.path, "the records above are as the file holds them", args, report,
                                 said={p.line for p in problems})  # said always:
            return 1 if problems or not holds else 0  # a torn line printed above is not all that may be wrong with it
        if args.command == "export":
            columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
            since, until = periods(args.since, args.until)  # before the chain is verified
            report = _check(args.path, args)  # before writing: each row is marked with what it found on its line
            own = _policy_of(args).own_files() if args.policy else None  # the queue, the policy file, the key...
            to_stdout = args.csv == "-"  # standard output, as "-" names it for other tools (it wrote a file named "-")
            n = export_csv(args.path, sys.stdout if to_stdout else args.csv, columns=columns, check=report, protect=own,
                           domain=args.domain, since=since, until=until, bom=args.bom)
            print(f"wrote {n} rows to {'standard output' if to_stdout else args.csv}", file=sys.stderr if to_stdout else sys.stdout)
            what = (f"{args.csv} holds the records as the file holds them, each marked in its chain_check column "
                    "with the problem found on its line, or ok")
            return 0 if _chain_holds(args.path, what, args, report) else 1
        _check_anchor_said(args.path, args, _policy_of(args) if args.policy else None)
        key = _cli_key(args)
        try:
            saved, note = _repair(args.path, key=key, anchor=_cli_anchor(args))
        except AuditKeyRequired as e:
            raise InputError(f"the records of {args.path} carry a keyed MAC and no key was given: pass --key-file FILE "
                             "(or set HGUARD_KEY_FILE) to the log's key; nothing was changed") from e
        if note is not None and saved is None:  # a newline restored, or damaged lines named: a record says which
            print(f"nothing moved aside; wrote a recovery record to {args.path} ({note['action']}): {note['reason']}")
        elif saved is None:
            print(f"nothing changed: {args.path} had no torn last line")
        else:
            print(
                f"moved the torn last line of {args.path} to {saved} and recorded that in the chain; "
                f"run `{_verify_command(args.path, args)}` to check the rest of the chain"
            )
        return 0
    except (InputError, PolicyError) as e:  # bad usage (a missing or invalid policy file too): 2, as the other commands;
        print(f"hguard audit: error: {e}", file=sys.stderr)  # 1 says the log does not verify
        return 2
    except HGuardError as e:
        print(f"hguard audit: error: {e}", file=sys.stderr)
        return 1
