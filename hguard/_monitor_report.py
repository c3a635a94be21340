"""The monitor's report for people: the public part of a run's report, a text summary and an HTML page
with plots. See :mod:`hguard.monitor`."""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any, Mapping

from ._monitor_stats import live_bounds


def public_report(report: Mapping[str, Any]) -> dict:
    """The report without the series kept for the figures."""
    out = dict(report)
    out["domains"] = {d: {k: v for k, v in e.items() if not k.startswith("_")} for d, e in report["domains"].items()}
    return out


# (report key, its list of examples, the line said when its count is not 0): what the run found beside the figures
_NOTICES = (
    ("verdicts_not_in_chain", "items",
     "{n} verdict(s) in the review queue are not the audit chain's (decided without the audit log, records cut, or "
     "rows copied or relabelled; e.g. {eg}): not counted; each decision counts by the chain's verdict on it, if any"),
    ("verdict_records_not_committed_in_queue", "records",
     "{n} verdict(s) in the audit chain are not the queue's committed verdict of their item (a decide stopped between "
     "the log and the queue, or the queue file was edited; e.g. {eg}): counted, as the chain holds them; check the "
     "queue file"),
    ("hallucinated_verdicts_contradicted", "records",
     "{n} later verdict(s) say correct of a decision a reviewer had said hallucinated (e.g. {eg}): the decision counts "
     "as hallucinated; a person who checked it lifts a tightening with `hguard monitor --lift`"),
    ("queue_items_sharing_a_decision", "items",
     "{n} review queue item(s) judge a decision another item judges too (e.g. {eg}): each decision counts once, by "
     "the chain's verdict; check the queue file"),
    ("review_decisions_not_in_queue", "items",
     "{n} decision(s) held for review or picked for a spot-check are not in the review queue (a process stopped, or "
     "the queue was locked, between the two; e.g. {eg}): nobody reviews them until a guard started on this policy puts "
     "them back"),
    ("review_decisions_not_in_queue_for_good", "items",
     "{n} decision(s) held for review are not in the review queue and cannot be put back (their records hold hashes, "
     "not text: a redacting log, and no copy was kept beside the queue; or they are in an archive of the rotated log, "
     "which a guard start does not read; e.g. {eg}): no guard start puts them back; "
     "review them from the application's own copy"),
    ("given_answer_decisions_left_out", "domains",
     "{n} decision(s) on answers given to Guard.check and not served (answer_source \"given\", an evaluation or a log "
     "scored again; in {eg}) were left out of every estimate, tally and drift test: they are no live traffic (those "
     "held for review are still in the review queue, counted apart from its backlog)"),
    ("given_answer_decisions_served", "domains",
     "{n} decision(s) on answers given to Guard.check with served=True (in {eg}) were counted as live traffic, as "
     "generated answers are"),
    ("other_model_decisions_left_out", "models",
     "{n} decision(s) made by another model than their domain's calibration were left out (e.g. {eg}): a model given "
     "with --model or model= is not the one the guarantee is about; monitor each model under its own policy"),
    ("queue_items_differing_from_log", "items",
     "{n} review queue item(s) say otherwise than their decision records (question, context, answer, domain, risk or "
     "spot-check flag; e.g. {eg}): the queue file was edited or written by something else; the figures above read the "
     "audit chain, and no verdict can be recorded on an item whose text differs"),
)


def _how_to_go_on(key: str, entry: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """What to do about a notice's items, where there is one thing to do: put a verdict decided without the log on
    record (on an item whose text is the record's), restore an edited item from its decision record by deleting its
    row and starting a guard where that puts it back whole, and, where it would not, what deleting would lose and what
    to do instead (never both for one item)."""
    policy = report.get("policy") or "FILE"
    if key == "verdicts_not_in_chain":
        over = entry.get("to_put_on_record_superseding") or []
        again = [i for i in entry.get("to_put_on_record", entry.get("items") or []) if i not in over]
        said = (f". One decided without the log is put on record by deciding it again with the log: `hguard review "
                f"decide {again[0]} --verdict V --reviewer NAME --policy {policy}` (the same verdict is recorded; another "
                "needs --supersede)" if again else "")
        said += (f". {over[0]}'s decision already has a verdict in the log that the queue never committed (a decide "
                 f"stopped before its commit): put it on record with `hguard review decide {over[0]} --verdict V "
                 f"--reviewer NAME --policy {policy} --supersede` (refused without --supersede, even for the same "
                 "verdict)" if over else "")
        for it in entry.get("records_missing") or []:
            said += f". {it['item']} was decided with the log, but {it['lost']}"
        return said
    if key != "queue_items_differing_from_log":
        return ""
    said = ""
    whole = entry.get("restored_by_a_guard_start", entry.get("items") or [])
    if whole:
        said += (f". Restore {'it' if len(whole) == 1 else f'each of {len(whole)}'} from its decision record (e.g. "
                 f"{', '.join(whole)}): delete its row (sqlite3 {report.get('review_queue')} \"DELETE FROM review_items "
                 f"WHERE id = '{whole[0]}'\") and start a guard on this policy, which puts it back from the record "
                 "(decided, with the verdict the queue committed, if the chain holds one)")
    for it in entry.get("not_restored") or []:
        queue_only = "in the queue only" in it["lost"]
        said += (f". Do not delete the row of {it['item']}: a guard start would not put it back whole ({it['lost']}); "
                 f"set its question, context, answer, domain, risk and spot-check flag back to what its decision record "
                 f"holds (`hguard audit show {report.get('audit_log')} --id {it['decision']}`, which reads the archives "
                 "of a rotated log too; a redacting log's record holds hashes: take the text from the application's "
                 "own copy)" + (f", then put its verdict on record by deciding it again with the log (`hguard review "
                                f"decide {it['item']} --verdict V --reviewer NAME --policy {policy}`)" if queue_only else ""))
    return said


def _wait(h: float | None) -> str:
    """A wait of ``h`` hours as the backlog line writes it: in whole minutes under an hour ("0.0 h" read as no wait,
    "under 1 min" where it rounds to none), else in hours with one decimal; "-" for none. The report's JSON keeps
    hours."""
    if h is None:
        return "-"
    if math.isfinite(h) and round(h * 60) < 60:
        minutes = max(round(h * 60), 0)
        return f"{minutes} min" if minutes else "under 1 min"
    return f"{h:.1f} h"


def _longer_than(h: float, limit: float, digits_from: int = 1) -> tuple[str, str]:
    """A wait ``h`` longer than ``limit`` (hours) and the limit, as the warning writes them: the wait with as many
    decimals as it takes for the comparison shown to be true ("waited 0.0 h, longer than 0.01" read as false), at
    least ``digits_from``, the limit as the policy's key is written (``:g``), or in full where that rounds it up past
    the wait."""
    shown = f"{limit:g}"
    for digits in range(digits_from, 16):
        wait = f"{h:.{digits}f}"
        if float(wait) > float(shown):
            return f"{wait} h", shown
    return f"{h!r} h", repr(limit)


def _backlog_lines(backlog: Mapping[str, Any] | None) -> list[str]:
    """The review queue's backlog in one line, and a warning line when its oldest pending item has waited longer than
    ``[monitor] review_backlog_max_age_hours`` (or a pending item's wait cannot be read). Nothing for a report
    without it (one written before it was reported)."""
    if not backlog:
        return []
    if backlog.get("unreadable"):  # its figures are an empty queue's, not the backlog's
        return [f"  review queue: UNREADABLE: {backlog['unreadable']}",
                "  WARNING: the review backlog cannot be read: held answers may wait unreviewed (an alarm under "
                "--exit-code)"]
    o = backlog["overall"]
    p, dec = o["pending"], o["decided"]
    by = [(d, f) for d, f in backlog["domains"].items() if f["pending"]["total"]]
    if backlog.get("outside_domains") and backlog["outside_domains"]["pending"]["total"]:
        by.append(("outside the policy's domains", backlog["outside_domains"]))
    line = (f"  review queue: {p['total']} pending ({p['held_for_review']} held for review, {p['spot_checks']} "
            f"spot-check{'' if p['spot_checks'] == 1 else 's'}); oldest waited {_wait(o['oldest_pending_age_hours'])}, median "
            f"{_wait(o['median_pending_age_hours'])} (since the guard decided each"
            + (f"; {o['pending_put_back']} put back in the queue since, from then" if o.get("pending_put_back") else "")
            + ")"
            + (f", {o['pending_age_unknown']} with a time that cannot be read" if o["pending_age_unknown"] else "")
            + f"; decided {dec['last_24h']} in the last 24 h, {dec['last_7d']} in the last 7 days ({dec['total']} in all)"
            + ("; pending by domain: " + ", ".join(f"{d} {f['pending']['total']} (oldest "
                                                    f"{_wait(f['oldest_pending_age_hours'])})" for d, f in by)
               if by else "")
            + (f"; {ev['pending']} pending and {ev['decided']} decided evaluation item(s) (answers given to Guard.check, "
               "not served) counted apart" if (ev := backlog.get("evaluation_items") or {}).get("pending")
               or ev.get("decided") else ""))  # fmt: skip
    if not o["over_max_age"]:
        return [line]
    late = [d for d, f in by if f["over_max_age"]]
    oldest, limit = o["oldest_pending_age_hours"], backlog["max_age_hours"]
    waited, max_age = (None, f"{limit:g}")
    if oldest is not None and oldest > limit:
        said = _wait(oldest)
        if said.endswith(" h"):  # an hour or more: in hours, as the backlog line writes it
            waited, max_age = _longer_than(oldest, limit)
        else:  # the line's minutes, beside the hours the key is compared with (to the minute: "3 min (0.06 h)")
            waited, max_age = _longer_than(oldest, limit, digits_from=2)
            waited = f"{said} ({waited})"
    why = f"the oldest pending review item has waited {waited}, longer than " if waited is not None else ""
    if o["pending_age_unknown"]:
        why += (("; " if why else "") + f"{o['pending_age_unknown']} pending review item(s) have a time that cannot be "
                "read (the queue file was edited?), so their wait is not shown within ")
    return [line, f"  WARNING: {why}[monitor] review_backlog_max_age_hours {max_age}"
                  + (f" (in {', '.join(late)})" if late else "")
                  + ": held answers wait unreviewed; review them (`hguard review list`), or set the key to the wait "
                    "your review process allows"]


def summary(report: Mapping[str, Any]) -> str:
    chain = report["chain"]
    unchecked = (f"; {chain['n_macs']} MACs NOT checked: no key (a re-chained or forged record passes without it; set "
                 "[integrity] key_file in the policy or HGUARD_KEY_FILE)"
                 if chain.get("n_macs") and not chain.get("macs_checked") else "")
    lines = [f"monitor: {report['audit_log']} ({chain['n_records']} records, hash chain "
             f"{'verified' if chain['ok'] else 'BROKEN'}{unchecked}), policy_id {report['policy_id']} (the guarantee: each "
             "domain's target and confidence; not `audit verify`'s policy_hash, which hashes every setting)"
             + ("; DRY RUN: nothing appended, no state changed" if report.get("dry_run") else "")]  # fmt: skip
    for key, listed, said in _NOTICES:  # each a count, a few ids, and what it means
        entry = report.get(key) or {}
        if entry.get("n"):
            lines.append("  " + said.format(n=entry["n"], eg=", ".join(entry[listed])) + _how_to_go_on(key, entry, report))
    out = report.get("outside_domains") or {}
    if out.get("n_decisions"):
        where = ", ".join(f"{n} {'with no domain' if d == 'None' else f'in {d!r}'}" for d, n in sorted(out["by_domain"].items()))
        routes = ", ".join(f"{n} {r}" for r, n in sorted(out["routes"].items()))
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(out["verdicts"].items())) or "none"
        lines.append(f"  outside the policy's domains: {out['n_decisions']} decision(s) ({where}; {routes}); "
                     f"verdicts on them: {verdicts} (no domain's estimate counts them)")
    lines += _backlog_lines(report.get("review_backlog"))
    for d, e in report["domains"].items():
        s = e["spot_checks"]
        rate = "-" if s["rate"] is None else f"{s['rate']:.3f}"
        judged = "" if s["reviewed"] >= s["min_reviewed_to_judge"] else f" (not judged before {s['min_reviewed_to_judge']} reviewed)"
        lines.append(
            f"  {d:12s} state={e['state']['state']}"
            + (f" ({e['state']['action']}, accept_below {e['state']['accept_below']:.4g})" if e["state"]["state"] == "tightened" else "")
            + (f" (lifted by recalibration for probe {e['state']['probe_id']}: a guard scoring with a probe a "
               f"tightening was decided on ({e['state']['replaced_probe_id']}) holds its answers for review until it "
               "loads another probe or a person lifts it; any other probe is served)"
               if e["state"]["state"] == "normal" and e["state"].get("replaced_probe_id") else "")
            + (f" [a run without --dry-run lifts it: {e['lift_on_run']}]" if e.get("lift_on_run") else "")
            + (f" [{e['kept_despite_recalibration']}]" if e.get("kept_despite_recalibration") else "")
            + f" decisions={e['n_decisions']}"
            + (f" ({', '.join(f'{n} {route}' for route, n in sorted(e['decisions'].items(), key=lambda t: str(t[0])))})"
               if e["decisions"] else "")
        )
        if e.get("no_accept_threshold"):
            lines.append(f"    accept: {e['no_accept_threshold']}")
        probes = e.get("probes") or {}
        if not probes.get("probe_ids", [None]):  # the guard routes every answer of the domain to review
            lines.append("    probe: none the policy names can be read"
                         + (f" ({probes['unreadable']})" if probes.get("unreadable") else "")
                         + ": a guard routes every answer of this domain to review; the risk's drift is not tested")
        if probes.get("decisions_by_other_probes"):
            lines.append(f"    probe: {probes['decisions_by_other_probes']} of the {e['n_decisions']} decisions were made by "
                         f"a probe the policy does not name now ({', '.join(p[:12] for p in probes['other_probe_ids'])}"
                         f"; now: {', '.join(p[:12] for p in probes['probe_ids']) or 'none'}): replaced since, or "
                         "another deployment's")
        rule = s.get("breach_rule", "upper_bound")
        bound = s["upper_bound"] if rule == "upper_bound" else s.get("lower_bound")
        shown = "-" if bound is None else f"{bound:.3f}"
        lines.append(
            f"    spot-checks: {s['selected']} selected, {s['reviewed']} reviewed, {s['hallucinated']} hallucinated "
            f"(rate {rate}, {rule.replace('_', ' ')} {shown} at {e['confidence']} ({s.get('bounds', 'per_run').replace('_', ' ')}; "
            f"the breach rule's bound), "
            f"upper bound {s['upper_bound']:.3f}, target {e['target']}){judged}"
            + (f"; accept_below {e['hand_set_accept_below']:g} is hand-set in the policy: no calibration certifies it (each "
               "accepted answer's reason gives what it accepted among the calibration's answers), "
               "these spot-checks are its live evidence" if e.get("hand_set_accept_below") is not None else "")
            + (f"; pooled across accept thresholds: {', '.join(f'{n} accepted under accept_below {t}' for t, n in s['accepted_under'].items())}"
               if len(s.get("accepted_under") or {}) > 1 else "")
            + (f"; counted since the lift at {s['counted_since']}" if s.get("counted_since") else "")
            + (f" ({s['reviewed_before_lift']} reviewed spot-check(s) accepted before it are not counted)"
               if s.get("reviewed_before_lift") else "")
        )
        if (e.get("breach") or e.get("drifted")) and e["state"]["state"] == "normal":  # a dry run: nothing was done
            why = ["breach"] if e.get("breach") else []
            why += [f"{d} drift" for d in e.get("drifted", [])]
            lines.append(f"    WOULD TIGHTEN ({', '.join(why)}): a run without --dry-run tightens this domain")
        elif e.get("breach"):
            lines.append("    breach: the live bound passes the target")
        elif not s.get("within_target_shown", True):  # said whenever --json says false, with why
            worst = s.get("upper_bound_pending_hallucinated")
            n_accepted = (e.get("decisions") or {}).get("accept", 0)
            if not s.get("selected"):
                lines.append("    not shown within target: " + (
                    "no answer was accepted, so no spot-check can show it" if not n_accepted else
                    f"none of the {n_accepted} accepted answer(s) was selected for a spot-check (the policy's "
                    "spot_check_rate and spot_check_min_per_day), so nothing shows that accepted answers hold the "
                    "target"))
            elif not s.get("reviewed"):
                lines.append(f"    not shown within target: 0 of the {s['selected']} selected spot-check(s) reviewed "
                             "(hguard review list): review them before claiming the target holds")
            elif s.get("pending") and worst is not None and s["upper_bound"] <= e["target"] < worst:
                lines.append(f"    not shown within target: {s['pending']} selected spot-check(s) not reviewed yet; counted "
                             f"hallucinated, the upper bound is {worst:.3f}, above the target {e['target']} (the "
                             f"{s['reviewed']} reviewed alone give {s['upper_bound']:.3f}): review every selected "
                             "spot-check, not a chosen few, before claiming the target holds")
            else:
                lines.append(f"    not shown within target: the upper bound {s['upper_bound']:.3f} passes the target "
                             f"{e['target']} (no breach by the {rule.replace('_', ' ')} rule); the spot-checks do not yet "
                             "show that accepted answers hold the target")
        rr = e["review_routed"]
        ci = rr.get("ci95")
        lines.append(f"    review-routed: {rr['reviewed']} reviewed, {rr['hallucinated']} hallucinated, {rr['correct']} correct"
                     + (f" (rate {rr['rate']:.3f}, 95% interval {ci[0]:.3f}-{ci[1]:.3f}; answers held for review, not "
                        "the accepted ones the target is on)" if ci else ""))
        for sig, t in e["drift"].items():
            if t["p_value"] is not None:
                lines.append(f"    drift {sig}: KS {t['statistic']:.3f} p={t['p_value']:.3g} (n {t['n_reference']} vs {t['n_live']})"
                             + (" DRIFT" if t["drift"] else ""))  # fmt: skip
            else:
                lines.append(f"    drift {sig}: {t.get('note') or 'untested'} (n {t['n_reference']} vs {t['n_live']})")
        sel = e["selection_audit"]
        lines.append(f"    selection: {sel.get('selected', 0)} of {sel.get('accepted', 0)} accepted spot-checked, "
                     f"{len(sel.get('mismatches', []))} mismatches"
                     + (f"; {sel['other_seed']} accepted under another spot-check seed, not checked with this one"
                        if sel.get("other_seed") else "")
                     + (f" ({sel['other_seed_inferred']} of them record no seed (before 0.3.0): read as another seed's "
                        "because none of their spot-checks is what this seed selects; with few spot-checks a forged "
                        "selection under this seed reads the same)" if sel.get("other_seed_inferred") else ""))  # fmt: skip
        for ev in e.get("events", []):
            lines.append(f"    {ev['kind']} ({ev['id']}): {ev['reason']}")
    return "\n".join(lines)


def write_html(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """A one-file HTML report: per domain the live vs calibration risk histogram, the accepted share over
    time and the cumulative spot-check results with their live bounds."""
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = "hguard monitor" + (" (dry run)" if report.get("dry_run") else "")
    parts = [f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>",
             f"<h1>{title}</h1><pre>{html.escape(summary(report))}</pre>"]  # fmt: skip
    for d, e in report["domains"].items():
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.2))
        bins = [i / 20 for i in range(21)]
        for mode, cal, live in e["_risk_panels"]:  # one pair per calibration (closed-book, with context)
            if cal:
                ax[0].hist(cal, bins=bins, density=True, alpha=0.4, label=f"calibration{mode} (n={len(cal)})")
            if live:
                ax[0].hist(live, bins=bins, density=True, alpha=0.4, label=f"live{mode} (n={len(live)})")
        ax[0].set_title(f"{d}: risk")
        if ax[0].get_legend_handles_labels()[0]:  # no risks recorded yet: no histogram to name
            ax[0].legend(fontsize=7)
        acc = e["_accept_series"]
        step = max(1, len(acc) // 20)
        xs = list(range(step, len(acc) + 1, step))
        ax[1].plot(xs, [sum(acc[x - step:x]) / step for x in xs], marker=".")
        ax[1].set_ylim(0, 1); ax[1].set_title("accepted share, each decision" if step == 1 else f"accepted share per {step} decisions"); ax[1].set_xlabel("decisions")  # noqa: E702
        res = e["_spot_results"]
        if res:
            ks = [sum(h for _, h in res[:i + 1]) for i in range(len(res))]
            kind = e["spot_checks"].get("bounds", "per_run")
            lo, hi = zip(*(live_bounds(k, i + 1, e["confidence"], kind) for i, k in enumerate(ks)))
            ax[2].plot(range(1, len(res) + 1), [k / (i + 1) for i, k in enumerate(ks)], label="rate")
            ax[2].fill_between(range(1, len(res) + 1), lo, hi, alpha=0.25,
                               label=f"bounds ({kind.replace('_', ' ')}, {e['confidence']})")
        ax[2].axhline(e["target"], color="red", linestyle="--", label="target")
        ax[2].set_ylim(0, 1); ax[2].set_title("reviewed spot-checks"); ax[2].set_xlabel("n"); ax[2].legend(fontsize=7)  # noqa: E702
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        alt = (f"{d}: risk of calibration and live answers; share of decisions accepted; reviewed spot-check rate with "
               f"its bounds against the target {e['target']}")
        parts.append(f"<h2>{html.escape(d)}: {html.escape(e['state']['state'])}</h2>"
                     f"<img alt='{html.escape(alt, quote=True)}' "
                     f"src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")  # fmt: skip
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
