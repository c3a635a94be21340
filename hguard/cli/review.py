"""``hguard review``: serve the review page, list the queue, record a verdict, export reviewed items or archive decided
ones (see :mod:`hguard.review`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .._resources import policy_arg
from .._text import listed, shown_lines, shown_plainly
from ..audit import AuditLog
from ..errors import HGuardError, InputError
from ..review.queue import VERDICTS, ArchivedItem, ReviewItem, ReviewQueue, not_in_chain
from ..review._items import EVALUATION_FILTER_SAID, EVALUATION_MARK, evaluation_said, shown_domain
from ..review._pages import _fmt_risk, _fmt_value
from ..review.web import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, _open_source, make_server

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["build_parser", "main"]


def _add_source(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--policy", metavar="FILE", type=policy_arg,
        help="policy file whose review.queue (and audit log) to use (default, or `default`: the packaged default policy, as "
        "`hguard ask` and `hguard demo` use it)",
    )  # fmt: skip
    group.add_argument("--queue", metavar="DB", help="an existing review queue (SQLite file)")


def _add_audit(p: argparse.ArgumentParser, what: str, no_audit: str | None = None) -> None:
    """--audit LOG or --no-audit; ``no_audit``: what --no-audit does, where it is not keeping ``what`` in the queue."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--audit", metavar="LOG", help=f"audit log for {what}: the one holding the guard's decisions "
                       "(default with --policy: the policy's; with --queue, give it or --no-audit)")
    group.add_argument("--no-audit", action="store_true", help="with --queue: " + (
        no_audit or f"keep {what} in the queue only (no audit record; the monitor does not count it)"))


def _check_audit_choice(args) -> None:
    """A verdict given on a bare queue file goes to an audit log only when one is named: refuse to guess."""
    if args.queue is not None and args.audit is None and not args.no_audit:
        raise InputError(f"--queue {args.queue} names no audit log, so verdicts would be recorded in the queue only "
                         "(no audit record, not counted by the monitor, and an item once decided cannot be decided "
                         "again); pass --audit LOG (the log the guard writes its decisions to), --policy FILE "
                         "instead of --queue, or --no-audit to keep verdicts in the queue only")
    if args.no_audit and args.queue is None:
        raise InputError("--no-audit goes with --queue DB; with --policy, verdicts go to the policy's audit log")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hguard review", description="Human review of answers the guard routed to review."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("serve", help=f"serve the review web page (reading and verdicts need {TOKEN_ENV})")
    _add_source(p)
    _add_audit(p, "verdicts")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (shows private text)")
    p.add_argument("--allowed-host", action="append", metavar="NAME", help="Host name the site answers to (repeatable)")
    p.add_argument("--public-url", metavar="URL", help="the address reviewers open when a TLS proxy sits in front "
                   "(e.g. https://review.example.org): logins and verdicts must come from it, cookies are Secure")
    p.add_argument(
        "--read-only-open", action="store_true",
        help="let ANY local process read every queued question and answer without the token (verdicts still "
        f"need {TOKEN_ENV}; without it none can be recorded)",
    )  # fmt: skip
    p = sub.add_parser("list", help="print the counts and the pending items")
    _add_source(p)
    p.add_argument("--audit", metavar="LOG", help="with --queue: the audit log holding the guard's decisions, to mark "
                   "pending items the queue file changed since the guard wrote them (default with --policy: the policy's)")
    p.add_argument("--domain", metavar="D", help="only this domain")
    p.add_argument(
        "--order", choices=("risk", "time"), default="risk", help="risk (highest first) or time (oldest first)"
    )
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N items (default 50)")
    p.add_argument("--decided", action="store_true", help="list decided items instead of pending ones")
    p.add_argument("--evaluation", choices=("exclude", "only"),
                   help="leave out the items of an evaluation (answers given to Guard.check with served=False: no user "
                   "waits on them), or list only those; every listed item is marked either way (needs the audit log)")
    p.add_argument("--json", action="store_true", help="one JSON object per item")
    p = sub.add_parser("show", help="print one item in full, as the review page shows it: question, answer, domain, "
                       "risk and thresholds, every reason, the passage, the verdict if any")
    _add_source(p)
    p.add_argument("--audit", metavar="LOG", help="with --queue: the audit log holding the guard's decisions, for the "
                   "thresholds and to say whether a verdict can be recorded (default with --policy: the policy's)")
    p.add_argument("item", metavar="ITEM_ID", help="the item's id (`hguard review list` prints it)")
    p = sub.add_parser("decide", help="record a verdict on one pending item (as the review page does; audited)")
    _add_source(p)
    _add_audit(p, "the verdict")
    p.add_argument("item", metavar="ITEM_ID", help="the item's id (`hguard review list` prints it)")
    p.add_argument("--verdict", required=True, choices=VERDICTS,
                   help="correct, hallucinated (right answer unknown), corrected (give --corrected-answer) or "
                        "not_in_context (answered with a passage that does not answer the question)")
    p.add_argument("--reviewer", required=True, metavar="NAME", help="who decided (recorded in the audit log)")
    p.add_argument("--corrected-answer", metavar="TEXT", help="the right answer, with --verdict corrected")
    p.add_argument("--note", metavar="TEXT", help="a note kept with the verdict")
    p.add_argument("--supersede", action="store_true",
                   help="record the verdict although the audit log holds an earlier one on the item that the queue "
                   "never committed (its process stopped), or the item holds another verdict decided without the log "
                   "(--no-audit); the new record names the earlier one and the queue holds the new. The earlier verdict "
                   "still stands beside it: a decision any reviewer said hallucinated, in the log or in the queue's "
                   "verdict the new record keeps, still counts as such in the monitor, and a decision whose verdicts "
                   "differ in verdict or corrected answer is disputed and left out of the export. Deciding "
                   "a --no-audit item again with its own verdict records it without this")
    p = sub.add_parser("export", help="write reviewed items as calibration JSONL")
    _add_source(p)
    _add_audit(p, "checking the verdicts (only those in its chain, on unedited items, are exported)",
               no_audit="export every verdict the queue holds, unchecked: none is matched against an audit log, so one "
               "decided without the log, or on an item edited after its verdict, is exported too")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="the calibration file to write (an earlier review export is replaced; any other existing file is refused)")
    p.add_argument("--domain", metavar="D", help="only this domain")
    p.add_argument("--skip-archived", action="store_true",
                   help="leave out the items `hguard review archive` moved to archive files (default: read them back "
                   "from those files; a file missing or changed is refused); with the audit log their verdicts still "
                   "count in the figures")
    p = sub.add_parser("archive", help="move decided items out of the live queue into a JSONL archive file (the queue "
                       "grows by an item for each answer held for review or spot-checked; nothing else retires them)")
    _add_source(p)
    _add_audit(p, "checking the verdicts (an item whose verdict is not in its chain, or whose row differs from its "
               "decision record, stays in the queue, where the monitor names it)",
               no_audit="archive every decided item unchecked: one decided without the log, or edited, is archived too")
    p.add_argument("--decided-before", required=True, metavar="DATE",
                   help="archive the items decided before this ISO date (midnight UTC) or date and time (UTC unless it "
                   "names a zone), e.g. 2026-01-01; pending items are never archived")
    p.add_argument("--out", metavar="FILE.jsonl", help="the archive file to write, a new file (default: beside the "
                   "queue, QUEUE.archive-<time>.jsonl); keep it: `hguard review export` reads the items back from it")
    return parser


def _again(args: argparse.Namespace, command: str) -> str:
    """The options this command was given that ``command`` (``review show``, ``review decide``, ``monitor``) needs to
    reach the same queue and audit log, quoted, for a hint naming it to run next (pasted without them, it ran on the
    default policy's queue, exit 2, where this one was given ``--policy FILE``). The default policy is reached by
    default (the monitor names it); ``--queue DB`` with no log leaves ``LOG`` to fill in where the next command records
    a verdict (decide refuses to guess it), and ``FILE`` for the monitor's policy."""
    import shlex

    from .._resources import DEFAULT_POLICY

    if args.policy is not None:
        if args.policy == str(DEFAULT_POLICY):
            return " --policy default" if command == "monitor" else ""
        return f" --policy {shlex.quote(args.policy)}"
    audit = getattr(args, "audit", None)
    return (" --policy FILE" if command == "monitor" else "") + f" --queue {shlex.quote(args.queue)}" + (
        f" --audit {shlex.quote(audit)}" if audit is not None
        else "" if command != "review decide"
        else " --no-audit" if getattr(args, "no_audit", False) else " --audit LOG")


def _item_json(item: ReviewItem, unlike_its_decision: str | None = None, for_evaluation: bool | None = None) -> str:
    """One item as a JSON line; ``unlike_its_decision``: why no verdict can be recorded on it (the queue file was
    changed after the guard wrote it), null when none is known; ``for_evaluation``: whether it judges an evaluation's
    answer (:meth:`ReviewQueue.for_evaluation`), null when that cannot be told."""
    from dataclasses import asdict

    return json.dumps({**asdict(item), "unlike_its_decision": unlike_its_decision, "for_evaluation": for_evaluation},
                      ensure_ascii=False, sort_keys=True)


def _counted(counts: dict[str, int], evaluation: dict[str, int] | None) -> str:
    """A domain's counts as ``hguard review list`` prints them, with those of an evaluation's items (``evaluation``, of
    :meth:`ReviewQueue.evaluation_counts`: no user waits on them) apart."""
    said = f"{counts['pending']} pending, {counts['decided']} decided"
    if not evaluation:
        return said
    return (f"{said}; of them an evaluation's, served to no user: {evaluation['pending']} pending, "
            f"{evaluation['decided']} decided")


def _block(text: str) -> str:
    """Multi-line text for a terminal, indented, its line breaks kept and every other hidden character escaped (a
    question holding terminal escape sequences cannot rewrite what the reviewer reads)."""
    return "\n".join("    " + line for line in shown_lines(text))


def _shown_item(queue: ReviewQueue, item_id: str, again: str = "") -> str:
    """``hguard review show``: one item in full, as the review page shows it, in plain text; ``again``: the options
    the decide command its hint names needs (:func:`_again`)."""
    item = queue.get(item_id)
    if item is None:
        raise queue.no_item(item_id)
    record, verdicts = queue._decision_and_verdicts(item) if queue.audit is not None else (None, [])
    th = (record or {}).get("thresholds") if (record or {}).get("kind") == "decision" else None
    if isinstance(th, dict):
        thresholds = ", ".join(f"{k} {_fmt_value(th[k])}" for k in ("accept_below", "abstain_above") if k in th)
        thresholds = f" ({thresholds}, from its decision record)"
    else:
        thresholds = " (thresholds: not in its decision record)" if queue.audit is not None else \
            " (thresholds: in its decision record; give the audit log, --policy FILE or --audit LOG, to show them)"
    refusal, history = queue.opened(item.id)
    evaluation = queue.for_evaluation([item], {item.audit_id: record} if record is not None else {})[item.id]
    lines = [
        f"item {item.id} ({item.status})" + (f" {EVALUATION_MARK}" if evaluation else ""),
        f"decision record: {item.audit_id}" + (f" in {queue.audit.path}" if queue.audit is not None else ""),
        f"domain: {shown_domain(item.domain)}",
        f"risk: {_fmt_risk(item.risk)}{thresholds}",
        "kind: " + ("spot-check of an accepted answer (the user got it)" if item.spot_check else "routed to review"),
        "evaluation: " + evaluation_said(evaluation, queue.audit is not None),
        f"decided by the guard: {item.time}; model {item.model_fingerprint or '(not recorded)'}; probe "
        f"{item.probe_id or '(none)'}",
    ]
    lines = [shown_plainly(line) for line in lines]  # every field as plain text, the ids and fingerprint too
    for turn in history or []:
        lines += [f"earlier turn ({shown_plainly(str(turn.get('role')))}):", _block(str(turn.get("content")))]
    lines += ["question:", _block(item.question), "answer:", _block(item.answer),
              f"why it was sent to review ({len(item.reasons)} reason(s)):"]
    lines += [f"  - {shown_plainly(r)}" for r in item.reasons] or ["  (no reasons recorded)"]
    lines += ["signals: " + (", ".join(f"{shown_plainly(str(k))} {shown_plainly(_fmt_value(v))}"
                                       for k, v in sorted(item.signals.items()))
                             or "(none recorded)")]
    lines += ([f"passage ({len(item.context)} chars):", _block(item.context)] if item.context is not None
              else ["passage: none (answered without context)"])
    v = item.verdict
    if v is not None:
        lines.append(shown_plainly(f"verdict: {v.verdict} by {v.reviewer} at {v.decided_at} ("
                     + (f"audit record {v.audit_record_id}" if v.audit_record_id else "in the queue only, no audit record")
                     + ")"))
        if v.corrected_answer is not None:
            lines += ["corrected answer:", _block(v.corrected_answer)]
        if v.note:
            lines += ["note:", _block(v.note)]
        # a verdict the chain does not hold as shown (relabelled in the queue file, its record cut or in another log):
        # not the verdict the monitor and the export count
        off_record = (not_in_chain(item, {str(r.get("id")): r for r in verdicts}, str(queue.audit.path))
                      if queue.audit is not None and v.audit_record_id else None)
        if off_record is not None:
            lines.append(shown_plainly(f"WARNING: {off_record}; the monitor and the export count the audit chain's "
                                       "verdict on the decision, not this one"))
        edited = queue.unlike_its_decision(item, record) if queue.audit is not None else None
        if edited is not None:  # edited after its verdict: what is shown above is not what the record holds
            lines.append(shown_plainly(f"WARNING: {edited}"))
    elif refusal:
        lines.append(shown_plainly(f"verdict: none, and NO VERDICT CAN BE RECORDED: {refusal}"))
    else:
        lines.append(shown_plainly(f"verdict: none yet (`hguard review decide {item.id} --verdict "
                                   "correct|hallucinated|corrected" + ("|not_in_context" if item.context is not None
                                                                        else "") + f" --reviewer NAME{again}`)"))
    return "\n".join(lines)


def _left_behind(policy) -> str | None:
    """For the packaged default policy: the line saying its files are still in ``~/.local/state/hguard`` and not in
    the folder ``$HGUARD_STATE_DIR`` names (:func:`hguard._resources.left_behind`); None otherwise."""
    from .._resources import STATE_FILES, left_behind

    folder = getattr(policy, "_state_dir", None)
    return None if folder is None else left_behind(folder, [name for _, _, name in STATE_FILES])


def _absent_queue(policy, policy_file: str, audit: str | None) -> str | None:
    """``hguard review list`` and ``show`` with a policy whose queue file does not exist (in a folder that does: a
    missing folder is refused on opening): why nothing is listed, when its audit log holds no item promised to review;
    refused when it holds some (a mistyped ``[review] queue`` path was created as a new, empty queue and listed "holds
    no items"). None when the queue file exists. A reading command creates no queue (the guard does)."""
    from ..review.queue import refuse_folder, refuse_missing_queue

    queue_path = Path(policy.review.queue)
    refuse_folder(queue_path, f"review.queue in {policy_file}")  # not a queue yet to be created: a wrong path
    if queue_path.exists() or not queue_path.parent.is_dir():
        return None
    log = AuditLog(audit if audit is not None else policy.audit.path, key=None)  # read only: no key needed
    moved = _left_behind(policy)
    if moved is not None and not log.path.is_file():  # the default policy's files where an earlier hguard kept them
        return f"no review queue at {queue_path}: {moved}"
    if not log.path.is_file():  # it holds nothing: said so, not that it holds no decision routed to review
        return (f"no review queue at {queue_path} and no audit log at {log.path} either: nothing has been held for "
                "review under this policy yet, or these are not the deployment's files (a policy's relative paths "
                f"resolve from its own folder, {Path(policy_file).resolve().parent}, so a copied policy names files "
                f"beside the copy): check review.queue and audit.path in {policy_file}")
    refuse_missing_queue(queue_path, log.history(), log.path, f"in {policy_file}")
    return (f"no review queue at {queue_path} yet, and its audit log {log.path} holds no decision routed to review: "
            "nothing has been held for review under this policy (the guard creates the queue on the first answer it "
            "holds)")


def _known_domain(domain: str | None, counts: dict, archived: Iterable[ArchivedItem] = ()) -> None:
    """--domain checked against the queue's domains: its items' (``counts``) and those the queue kept of its
    ``archived`` items (a domain whose items are all archived is still the queue's: the export reads them, or with
    --skip-archived counts them left out). A near miss ("Pharma", "pharmacy") is refused naming the one meant (it listed
    nothing, exit 0, as if the domain had no items); a name with no items is said on stderr. Items archived by an
    earlier hguard kept no domain in the queue: with any, a name not found is said, never refused (theirs is unseen)."""
    if domain is None or domain in counts:
        return
    archived = list(archived)
    names = {d for d in counts if d is not None} | {a.domain for a in archived if a.domain_kept and a.domain is not None}
    if domain in names:
        return
    from .._guard_scoring import _near

    near = _near(domain, names)
    unknown = sum(not a.domain_kept for a in archived)
    if near is not None and not unknown:
        raise InputError(f"--domain {domain!r}: the queue has no items of that domain; did you mean {near!r}?")
    print(f"hguard review: no items of domain {domain!r} in this queue (its domains: {', '.join(sorted(names)) or 'none'})"
          + (f", unless among its {unknown} item(s) archived by an earlier hguard, which kept no domain in the queue"
             if unknown else "")
          + (f"; did you mean {near!r}?" if near is not None else ""), file=sys.stderr)


def main(argv: list[str]) -> int:
    """``hguard review`` entry point: 0 on success, 2 on a usage, input or hguard error, 1 on any other failure."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help and bad usage; the caller decides about exiting
        return e.code if isinstance(e.code, int) else 2
    if args.policy is None and args.queue is None:  # the policy `hguard ask` runs under by default
        from .._resources import DEFAULT_POLICY

        args.policy = str(DEFAULT_POLICY)
    source = args.policy if args.policy is not None else args.queue
    try:
        policy = None
        if args.policy is not None:  # read as a policy whatever its name ("policy.tom" was taken for a queue file)
            from ..policy import load_policy

            policy = load_policy(args.policy)
        if args.command in ("serve", "decide", "export", "archive"):
            _check_audit_choice(args)
        if args.command == "serve":
            token = os.environ.get(TOKEN_ENV) or None
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                server = make_server(
                    source, args.host, args.port, token=token, audit=args.audit,
                    allow_remote=args.allow_remote, allowed_hosts=args.allowed_host,
                    read_only_open=args.read_only_open, public_url=args.public_url,
                )  # fmt: skip
            app = cast("Starlette", server.config.app)  # make_server serves the app create_app built
            queue: ReviewQueue = app.state.queue
            if not args.read_only_open:
                mode = "reading and verdicts need the review token"
            elif token:
                mode = "--read-only-open: ANY local process can read the queue; verdicts need the review token"
            else:
                mode = f"--read-only-open: ANY local process can read the queue; read-only ({TOKEN_ENV} is not set)"
            audit_note = (
                "nothing is recorded: no login or verdict without the token" if not app.state.writable
                else f"verdicts logged to {queue.audit.path}" if queue.audit
                else "no audit log: verdicts stay in the queue only"
            )  # fmt: skip
            print(f"hguard review: serving {queue.path} on http://{args.host}:{args.port}/ ({mode}; {audit_note})",
                  file=sys.stderr)  # fmt: skip
            server.run()
            return 0
        if args.command in ("list", "show") and policy is not None:  # reading: never creates the queue
            absent = _absent_queue(policy, args.policy, args.audit)
            if absent is not None:
                if args.command == "show":
                    raise InputError(f"no item {args.item!r}: {absent}")
                print(f"hguard review: {absent}", file=sys.stderr if args.json else sys.stdout)
                return 0
        queue = _open_source(source, getattr(args, "audit", None), policy)
        if args.command == "list":
            if args.limit < 0:
                raise InputError(f"--limit must be >= 0, got {args.limit}")
            counts = queue.counts()
            # which items are an evaluation's is in the log alone: without it, "only" listed nothing and "exclude"
            # everything as live, exit 0 (checked before anything is printed). A queue with no item lists nothing
            # wrongly: listed as without the filter
            if args.evaluation is not None and counts and (queue.audit is None or not queue.audit.path.is_file()):
                raise InputError(f"--evaluation {args.evaluation} needs the audit log holding the guard's decisions (an "
                                 "item's decision says whether its answer was served)"
                                 + (f", and there is none at {queue.audit.path}: check the policy's audit.path or "
                                    "--audit LOG" if queue.audit is not None else
                                    ": pass --audit LOG with --queue, or --policy FILE"))
            archived = queue.archived()
            _known_domain(args.domain, counts, archived.values())
            shown = counts if args.domain is None else {d: c for d, c in counts.items() if d == args.domain}
            # every item's decision read once: the counts of an evaluation's items, and the listing's marks
            everything = queue.item_keys() if queue.audit else []
            records = queue.decision_records(everything) if queue.audit else {}
            apart = queue.evaluation_counts(records, everything) or {}
            for domain, c in shown.items():  # with --json, stdout holds only the JSON lines; --domain: its counts
                print(f"{shown_domain(domain)}: {_counted(c, apart.get(domain))}", file=sys.stderr if args.json else sys.stdout)
            n_archived = len(archived)
            if n_archived:  # the decided items moved out of the queue: still its items for the monitor and the export
                print(f"archived: {n_archived} decided item(s) in archive files (`hguard review archive`; "
                      "`hguard review export` reads them)", file=sys.stderr if args.json else sys.stdout)
            if not counts and not n_archived:  # said, not an empty output that reads as a failed command
                print(f"hguard review: the queue {queue.path} holds no items (nothing has been held for review "
                      "since it was started or emptied)", file=sys.stderr if args.json else sys.stdout)
            limit = None if args.evaluation is not None else args.limit  # the filter first, then the limit
            if args.decided:
                items = queue.decided(domain=args.domain, limit=limit, newest_first=True)
            else:
                items = queue.pending(domain=args.domain, order=args.order, limit=limit)
            evaluation = queue.for_evaluation(items, records)
            if args.evaluation is not None and counts:  # one that cannot be told is taken as live (a user may wait)
                matched = [it for it in items if bool(evaluation[it.id]) == (args.evaluation == "only")]
                # the per-domain lines above count the whole queue: how many items the filter leaves is said apart
                where = "" if args.domain is None else f" in {shown_domain(args.domain)}"
                print(f"{len(matched)} of {len(items)} {'decided' if args.decided else 'pending'}{where}: "
                      f"{EVALUATION_FILTER_SAID[args.evaluation]} (the counts above are unfiltered)"
                      + (f"; the {'latest' if args.decided else 'first'} {args.limit} listed" if len(matched) > args.limit else ""),
                      file=sys.stderr if args.json else sys.stdout)  # fmt: skip
                items = matched[:args.limit]
            if args.decided:
                items = items[::-1]  # the newest N, oldest first
            # a pending item the queue file changed after the guard wrote it is marked, as the page marks it
            edited = queue.unlike_their_decisions([it for it in items if it.status == "pending"], records) \
                if queue.audit else {}
            for it in items:
                if args.json:
                    print(_item_json(it, edited.get(it.id), evaluation[it.id]))
                    continue
                verdict = f"  {it.verdict.verdict} by {it.verdict.reviewer}" if it.verdict else ""
                spot = "[spot-check of an accepted answer] " if it.spot_check else ""
                spot += f"{EVALUATION_MARK} " if evaluation[it.id] else ""
                print(f"{_fmt_risk(it.risk):>8}  {shown_domain(it.domain):<14} {it.id}  "
                      f"{spot}{listed(it.question, 70)}{verdict}")  # fmt: skip
                print(f"{'':>8}  answer: {listed(it.answer, 100)}")  # what the reviewer decides on
                print(f"{'':>8}  why: {listed(it.why, 100) or '(no reason recorded)'}"
                      + (f" (+{len(it.reasons) - 1} more)" if len(it.reasons) > 1 else ""))
                print(f"{'':>8}  passage: " + (f"{len(it.context)} chars, see `hguard review show {it.id}{_again(args, 'review show')}`"
                                              if it.context is not None else "none (answered without context)"))
                if it.id in edited:
                    print(f"{'':>8}  NO VERDICT CAN BE RECORDED: {edited[it.id]}")
            return 0
        if args.command == "show":
            print(_shown_item(queue, args.item, _again(args, "review decide")))
            return 0
        if args.command == "decide":
            if (args.verdict == "corrected") != bool(args.corrected_answer):  # said in the flags' own names
                raise InputError("--verdict corrected needs --corrected-answer TEXT (the right answer)"
                                 if args.verdict == "corrected" else
                                 f"--corrected-answer goes with --verdict corrected, not {args.verdict}")
            v = queue.decide(args.item, verdict=args.verdict, reviewer=args.reviewer,
                             corrected_answer=args.corrected_answer, note=args.note, supersede=args.supersede)
            where = (f"audit record {v.audit_record_id} in {queue.audit.path}" if queue.audit and v.audit_record_id
                     else "--no-audit: kept in the queue only, and the monitor does not count it; deciding it again "
                     "with the audit log (--policy FILE, or --audit LOG) puts it on record")
            print(f"hguard review: {args.item}: {v.verdict} by {v.reviewer} ({where})")
            return 0
        if args.command == "archive":
            print(queue.archive(args.decided_before, args.out).summary(monitor="hguard monitor" + _again(args, "monitor")))
            return 0
        from ..review.export import export_reviewed

        _known_domain(args.domain, queue.counts(), queue.archived().values())
        summary = export_reviewed(queue, args.out, domain=args.domain, archived=not args.skip_archived,
                                  decide_options=_again(args, "review decide"))
        print(summary.summary())
        return 0
    except InputError as e:
        print(f"hguard review: error: {e}", file=sys.stderr)
        return 2
    except HGuardError as e:  # a missing policy, a broken queue: as every other command, exit 2
        print(f"hguard review: error: {e}", file=sys.stderr)
        return 2
