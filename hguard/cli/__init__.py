"""The ``hguard`` command line. Scripts rely on its commands, options and JSON shapes (see README).

Every argument parser of the package lives here: this module parses the top-level commands and hands
``audit``, ``review`` and ``monitor`` to :mod:`hguard.cli.audit`, :mod:`hguard.cli.review` and
:mod:`hguard.cli.monitor`."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .._policy_fit import accept_threshold_warnings, check_levels
from ..errors import AuditError, HGuardError, InputError, cut_text, install_extra, one_line
from .._text import blank, looks_utf16, shown_lines, shown_plainly
from ..settings import CALIBRATION_MAX_NEW_TOKENS, CALIBRATION_SYSTEM_PROMPT

if TYPE_CHECKING:
    from .._guard_result import GuardResult

_MODEL_HELP = ('the model: "default" (the embedded SmolLM2-135M-Instruct), a Hugging Face model folder, a .gguf file '
               "or a hub id (owner/name, or owner/name@revision to pin a branch, tag or commit)")

def _dump(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=float)


def _torch_threads() -> None:
    from ..devices import env_threads

    if (n := env_threads()) is not None:
        import torch

        torch.set_num_threads(n)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read_text_file(path: str, what: str) -> str:
    """A UTF-8 text file given on the command line (without the byte-order mark a Windows editor writes first: it
    was kept in the context and its record), or InputError naming the path and the fix."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} file {path!r} does not exist; pass the path of a UTF-8 text file")
    if p.is_dir():
        raise InputError(f"{what} file {path!r} is a folder; pass the path of a UTF-8 text file")
    if not p.is_file():
        raise InputError(f"{what} file {path!r} is not a regular file; pass the path of a UTF-8 text file")
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        head = bytes(exc.object[:4])
        # a UTF-16 file (Windows "Unicode") opens with its byte-order mark or NUL bytes; a Windows "ANSI" file is
        # Windows-1252 (Latin-1 would read its "€" and "’" as control characters, which the guard refuses)
        source = ("utf-16" if looks_utf16(head) else "cp1252" if _decodes(exc.object, "cp1252") else None)
        byte = f"byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}"
        if source is None:  # a byte Windows-1252 has no character for: another encoding
            raise InputError(f"{what} file {path!r} is neither UTF-8 nor Windows-1252 text ({byte}); find its encoding "
                             "(`file -i FILE`) and convert it, e.g. `iconv -f ENCODING -t utf-8`") from None
        raise InputError(
            f"{what} file {path!r} is not UTF-8 text ({byte}"
            + ("; it reads as UTF-16" if source == "utf-16" else "") + f"); convert it, e.g. `iconv -f {source} -t utf-8`"
        ) from None
    except OSError as exc:
        raise InputError(f"{what} file {path!r} cannot be read ({exc.strerror}); check its permissions") from None


# ------------------------------------------------------------------------------------- commands


def _keep_previous(out: Path) -> Path:
    """Copy the calibration in ``out`` (report, changes and probe files) into ``out/previous-<its time>`` before a
    recalibration into the same folder replaces them: a step back stays possible."""
    import shutil
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp((out / "report.json").stat().st_mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept = out / f"previous-{stamp}"
    kept.mkdir(exist_ok=True)
    for f in sorted(out.iterdir()):
        if f.is_file() and (f.suffix == ".json" or f.name in ("report.md", "changes.md")):
            shutil.copy2(f, kept / f.name)
    return kept


@contextmanager
def _progress_lines(command: str, quiet: bool) -> Iterator[None]:
    """A calibration's progress and phases (the ``hguard.calibrate`` logger's INFO lines: answers collected every
    tenth, each fit as it starts) printed on stderr as ``hguard COMMAND: ...`` while it runs, unless ``--quiet``:
    stdout stays the summary (or the JSON) alone."""
    if quiet:
        yield
        return
    import logging

    log = logging.getLogger("hguard.calibrate")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"hguard {command}: %(message)s"))
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # once, not again through a root handler a caller configured
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def cmd_calibrate(args) -> int:
    from .._resources import expand_home
    from ..calibrate.pipeline import calibrate

    data = list(args.data or [])
    out = args.out
    if not data or not out:
        raise InputError("pass --data FILE.jsonl (repeatable) and --out DIR; in a source checkout, "
                         "`python calibration/reference.py` rebuilds the reference probes")
    # as calibrate() reads them ('--out=~/probes' reaches here unexpanded): the previous calibration in the same
    # folder is kept aside and its changes written beside the new one
    out = str(expand_home(out, "--out"))
    if args.previous:  # read before calibrating: --out may be the same folder
        args.previous = str(expand_home(args.previous, "--previous"))
        from ..calibrate.changes import changes_markdown, load_report, report_changes

        previous = load_report(args.previous)
        kept = _keep_previous(Path(out)) if Path(args.previous).resolve() in (
            Path(out).resolve(), (Path(out) / "report.json").resolve()) else None
    with warnings.catch_warnings(record=True) as caught, _progress_lines("calibrate", args.quiet):
        warnings.simplefilter("always", UserWarning)  # one line per kind, said after the summary
        report = calibrate(
            data,
            out,
            model=args.model,
            max_new_tokens=args.max_new_tokens,
            system_prompt=args.system_prompt,
            test_fraction=args.test_fraction,
            seed=args.seed,
            work_dir=args.work,
            batch_size=args.batch_size,
            target=args.target,
            confidence=args.confidence,
            progress=not args.quiet,
            domains=args.domain or None,
            engine=args.engine,
            ray_options=_ray_options(args),
            device=args.device,
            **_fit_options(args),
        )
    if args.previous:
        report["changes"] = report_changes(previous, report)
        Path(out, "changes.md").write_text(changes_markdown(report["changes"]), encoding="utf-8")
        if not args.json:
            print(changes_markdown(report["changes"]))
            if kept is not None:
                print(f"the previous calibration (its report and probe files) is kept in {kept}")
    if args.json:
        print(_dump(report))
    else:
        print(f"wrote {len(report['domains'])} probe(s) and the report to {out}/report.md")
        for d, m in report["domains"].items():
            print(f"  {d}: " + "\n    ".join(_calibration_summary(m)))
        for d, why in report["skipped"].items():
            print(f"  {d}: skipped: {why}")
        pf = report["probe_fit"]
        print(f"  probe fit: {pf['method']}" + (f" (top {pf['k']} features by {pf['statistic']})" if pf["method"] == "screened" else "")
              + f": {pf['reason']}")
    for line in calibration_warnings(report, caught):
        print(f"hguard calibrate: warning: {line}", file=sys.stderr)
    if (report.get("changes") or {}).get("other_model"):  # --previous named another model's calibration
        print(f"hguard calibrate: warning: {report['changes']['other_model']}", file=sys.stderr)
    if report["skipped"]:  # a job checking the exit code must see that a domain got no probe
        print(f"hguard calibrate: {len(report['skipped'])} domain(s) got no probe ({', '.join(report['skipped'])}): "
              "see the reasons above; the others were written (exit 1)", file=sys.stderr)
        return 1
    return 0


MERGER_LOSS_WARNING = 0.05  # AUROC the merged risk may lose to the probe alone before calibrate and evaluate warn


def merger_loss_warning(domain: str, scope: str, auroc: Mapping, counts: str) -> str | None:
    """The warning line of a domain whose merged risk, which routes answers, scores an AUROC more than
    ``MERGER_LOSS_WARNING`` below the probe alone on ``scope`` (calibrate's held-out facts or families, evaluate's
    rows); ``counts`` says where n and the class counts are. None where it does not, or a figure is missing."""
    p, mg = auroc.get("probe"), auroc.get("merged")
    if p is None or mg is None or not mg < p - MERGER_LOSS_WARNING:
        return None
    return (f"domain {domain!r}: on {scope} the merged risk, which routes answers, scores AUROC {mg:.3f} against "
            f"{p:.3f} for the probe alone: the confidence signals it adds do not carry over there (or the "
            f"merger overfits); add labelled answers and kinds of question ({counts})")


def _calibration_summary(m: dict) -> list[str]:
    """A domain's calibration in three lines: held-out facts (n, classes, AUROCs), held-out families (the
    means over them, or why none), and whether an accept threshold is certified; with reviewed rows, a line saying
    that they are all in training."""
    a = m["auroc"]
    f = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    from ..calibrate.report import class_counts

    halluc = round((m.get("hallucination_rate") or 0) * m["n_scored"])
    right, halluc = class_counts(m) or (m["n_scored"] - halluc, halluc)
    # n and its classes as `hguard evaluate` says them, (few) under the same rule
    counts = {"n": m["n"], "correct": right, "hallucinated": halluc, "refusals": m["n"] - m["n_scored"]}
    lines = [f"held-out facts: {_classes(counts)} AUROC probe={f(a.get('probe'))} merged={f(a.get('merged'))} random "
             f"neurons={f(a.get('random_neurons'))} mean_logprob={f(a.get('mean_logprob'))}"]
    if m.get("reviewed_split"):
        lines.append(m["reviewed_split"])
    fam = m.get("families") or {}
    mean = (fam.get("summary") or {}).get("mean_auroc")
    if mean:
        s = fam["summary"]
        from ..calibrate.families import in_mean
        from ..calibrate.report import family_count

        # the answers the means rest on: those of the families in them, counted as the held-out facts' line counts
        pooled = {k: sum(e[k] for e in in_mean(fam.get("families") or {}).values())
                  for k in ("n", "correct", "hallucinated", "refusals")}
        lines.append(f"held-out families (mean over {s['n_families_in_mean']} of {family_count(fam)}, on their "
                     f"{_classes(pooled)}): probe={f(mean['probe'])} "
                     f"merged={f(mean['merged'])} random neurons={f(mean['random_neurons'])}: what a new kind of question gets")
    else:
        why = fam.get("no_figure") or "; ".join(
            f"{name}: {e.get('no_figure') or e.get('one_class') or 'fewer than 5 answers of a class'}"
            for name, e in (fam.get("families") or {}).items()) or "no family was held out"
        lines.append("held-out families: no figure: " + cut_text(why, 300) + " (report.md: each family)")
    t = m.get("at_target") or {}
    if t.get("withdrawn"):
        lines.append(f"no accept threshold: accept below {t['accept_below']:.3f}, certified at target {t['target']} with "
                     f"confidence {t['confidence']} on the training split's scores, is withdrawn: {t['withdrawn']}")
    elif t.get("accept_below"):
        from ..calibrate.report import families_over_target

        far = t.get("review_out_of_distribution")
        lines.append(f"accept below {t['accept_below']:.3f} certified at target {t['target']} with confidence {t['confidence']} "
                     f"(coverage {t['coverage']:.0%} of held-out answers" + (
                         f"; {far} more below it went to review as out of distribution" if far else "") + ")")
        lofo = (fam.get("summary") or {}).get("at_target") or {}
        over = families_over_target(m)
        if lofo.get("within_target") is False:  # the certificate's own test: families it was not fitted on
            lines.append(f"  but on held-out families (each fitted without it) {_accepted_said(lofo)}, over the "
                         f"target {t['target']}" + (f"; families over it: {over}" if over else "")
                         + ": a new kind of question may get that (report.md: each family)")
        # pooled within the target, a family over it is a warning (calibration_warnings)
    elif t:
        lines.append(f"no accept threshold certified at target {t['target']} with confidence {t['confidence']}: "
                     "the domain accepts nothing (report.md says why)")
    return lines


def _not_shown(auroc: float, ci: Sequence[float], correct: int, hallucinated: int) -> str:
    """How a calibration warning says that a risk's AUROC interval reaches chance: the AUROC itself may be high
    (1.000 on 8 answers), so the words say it is not shown to separate them, not that it does not."""
    return (f"is not shown to separate held-out answers better than chance: the 95% interval of its AUROC {auroc:.3f} "
            f"is {ci[0]:.2f}-{ci[1]:.2f}, which reaches 0.5 (n={correct + hallucinated}: {correct} correct, "
            f"{hallucinated} hallucinated)")


def calibration_warnings(report: dict, caught) -> list[str]:
    """What a calibration's user must not miss, one line each: a domain whose merged risk does not
    separate its held-out answers (the 95% interval reaches chance), a certified accept threshold of 1.0 (it accepts
    every answer) and held-out families over the target beside one (:func:`hguard._policy_fit.
    accept_threshold_warnings`, which a guard refitting the thresholds for its policy's target says them by), a
    held-out family it ranks backwards (the interval lies below chance), a probe not distinguishable from as many random
    neurons on held-out facts (:func:`hguard.calibrate.report.probe_not_above_random`, which report.md says it by), and
    each kind of fit warning once per domain it names, with how many fits raised it."""
    from ..calibrate.report import over_target_counts, probe_not_above_random

    lines = []
    for d, m in report["domains"].items():
        lo_hi = (m.get("auroc_ci95") or {}).get("merged")
        a = (m.get("auroc") or {}).get("merged")
        if a is not None and lo_hi is not None and lo_hi[0] <= 0.5:
            halluc = round((m.get("hallucination_rate") or 0) * m["n_scored"])
            lines.append(
                f"domain {d!r}: the merged risk {_not_shown(a, lo_hi, m['n_scored'] - halluc, halluc)}; do not rely on "
                "its scores: add labelled answers (more questions, more kinds) and calibrate again"
            )
        t = m.get("at_target") or {}
        if t and not t.get("withdrawn"):  # the guard says the same of thresholds it refits (Guard.refit_warnings)
            lofo = ((m.get("families") or {}).get("summary") or {}).get("at_target") or {}
            lines += accept_threshold_warnings(
                f"domain {d!r}", accept_below=t.get("accept_below"), target=t["target"], rate=m.get("hallucination_rate"),
                n=m.get("n_scored") or 0, set_target="`--target`",
                fitted=(ts["hallucinated"], ts["n"]) if (ts := m.get("threshold_scores")) else None,
                # pooled over the target, the summary line under the threshold names them
                families_over=() if lofo.get("within_target") is False else over_target_counts(m))
        if t.get("abstained_below_promise_shown"):  # report.md says it beside the abstained answers' counts
            from ..calibrate.report import abstain_promise_said

            lines.append(f"domain {d!r}: {str(abstain_promise_said(t)).replace('**', '')} (report.md: routing at the target)")
        summary = (m.get("families") or {}).get("summary") or {}
        for scope, au in (("held-out facts", m.get("auroc") or {}), ("held-out families (mean)", summary.get("mean_auroc") or {})):
            p, rnd = au.get("probe"), au.get("random_neurons")
            if (loss := merger_loss_warning(d, scope, au, "report.md has n and class counts")) is not None:
                lines.append(loss)
            if scope == "held-out facts":  # the probe's interval against the control's: one line, named figures
                if (why := probe_not_above_random(m)) is not None:
                    lines.append(f"domain {d!r}: {why} (report.md: the AUROC intervals)")
            elif p is not None and rnd is not None and p <= rnd:
                lines.append(f"domain {d!r}: on {scope} the probe (AUROC {p:.3f}) does no better than as many random "
                             f"neurons ({rnd:.3f}): its neurons carry no hallucination signal of their own here")
        for f in summary.get("inverted_families", []):
            e = m["families"]["families"][f]
            lo, hi = e["auroc_ci95"]["merged"]
            lines.append(
                f"domain {d!r}, family {f!r}: held out, the merged risk ranks its right answers as riskier than its "
                f"hallucinated ones (AUROC {e['auroc']['merged']:.3f}, 95% interval {lo:.2f}-{hi:.2f}, n={e['n_scored']}: "
                f"{e['correct']} correct, {e['hallucinated']} hallucinated); questions of this kind are scored backwards: "
                "check the family's labels, or add more families like it so the probe learns them"
            )
    kinds: dict[tuple[str, str], list[str]] = {}
    for w in caught:
        if not issubclass(w.category, UserWarning):  # a library's own warning is shown as it came
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            continue
        msg = str(w.message)
        # a fit's warning names its domain in front ("domain 'x': the probe ..."): its kind is what follows
        named = re.match(r"domain '[^']*': ", msg)
        head = named.group(0) if named else ""
        kinds.setdefault((head, msg[len(head):].split(":")[0]), []).append(msg)
    for msgs in kinds.values():
        lines.append(msgs[0] + (f" (and {len(msgs) - 1} more fit(s) like it)" if len(msgs) > 1 else ""))
    return lines


def _fit_options(args) -> dict:
    from ..calibrate.screen import check_k, choose_fit

    if args.screen_top is not None:
        check_k(args.screen_top)
    if args.fit_memory_gb is not None:
        choose_fit(1, 1, fit_memory_gb=args.fit_memory_gb)  # refuses a bad budget before the model is loaded
    return {"screen_top": args.screen_top, "fit_memory_gb": args.fit_memory_gb}


RAY_ONLY = (("--address", "address", "address"), ("--actors", "actors", "actors"),  # flag, argparse dest, RayOptions field
            ("--gpus-per-actor", "gpus_per_actor", "num_gpus"), ("--cpus-per-actor", "cpus_per_actor", "num_cpus"))


def _ray_options(args):
    """RayOptions from the Ray-only options given (unset ones keep RayOptions' defaults); None without
    --engine ray, where any of them given is refused."""
    given = [(flag, field, getattr(args, dest)) for flag, dest, field in RAY_ONLY if getattr(args, dest) is not None]
    if args.engine != "ray":
        if given:
            flags = [flag for flag, _, _ in given]
            raise InputError(f"{', '.join(flags)} {'is' if len(flags) == 1 else 'are'} for --engine ray; add --engine ray "
                             f"or drop {'it' if len(flags) == 1 else 'them'}")
        return None
    from ..calibrate.ray_engine import RayOptions, _import_ray, joined_address

    _import_ray()  # Ray installed, said before the model is loaded (it was said after loading it)
    joined_address(args.address)  # --address or RAY_ADDRESS, before the model is loaded: a wrong one fails in seconds
    return RayOptions(**{field: value for _, field, value in given}, device=args.device)


def _fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a target rate, a confidence, a test share)."""
    try:
        value = float(text)
        check_levels(value=value)
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1 (e.g. 0.1), got {text!r}") from None
    return value


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a batch size, a number of tokens, actors, rows)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _not_negative(text: str) -> float:
    """An argparse type: a finite number of at least 0 (CPUs or GPUs an actor reserves, e.g. 0.5)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0 (e.g. 1 or 0.5), got {text!r}")
    return value


def _classes(m: dict) -> str:
    """n with its classes, as an evaluation's per-domain entry counts them ("refusals", as its JSON and the reports
    say), marked (few) where a class has fewer answers than a family needs to count in a mean: its AUROCs are shown,
    but rest on too few answers (report.md's "(few)")."""
    from ..calibrate.families import MIN_CLASS_FOR_MEAN
    from ..calibrate.report import few_of_a_class

    few = (f" (few: under {MIN_CLASS_FOR_MEAN} answers of a class)"
           if m["correct"] and m["hallucinated"] and few_of_a_class(m, MIN_CLASS_FOR_MEAN) else "")
    return f"n={m['n']} ({m['correct']} right, {m['hallucinated']} hallucinated, {m['refusals']} refusals){few}"


def _auroc_shown(m: dict, k: str) -> str:
    """Signal ``k``'s AUROC with its 95% interval, from an evaluation's per-domain entry (n/a where one class leaves
    none)."""
    a, ci = m["auroc"], m.get("auroc_ci95") or {}
    if a.get(k) is None:
        return "n/a"
    lo, hi = (ci.get(k) or (None, None))[:2]
    return f"{a[k]:.3f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")


def _no_auroc(m: dict) -> str:
    """What a set of one class, or of declines alone, shows in place of its AUROCs ('' for a set of both classes)."""
    if m["correct"] and m["hallucinated"]:
        return ""
    if not m["n"]:
        return " no held-out answers: nothing scored"
    return (" one class: no AUROC (it needs answers of both classes)" if m["correct"] + m["hallucinated"] else
            " nothing scored: every answer a refusal")


def _rag_line(m: dict) -> str:
    """One line of RAG figures (a report entry: a domain's ``all``, one of its ``conditions``): n with its classes,
    then the AUROCs, or what a set of one class shows instead, as report.md says it."""
    return _classes(m) + (_no_auroc(m) or (
        f" AUROC (95% interval) merged={_auroc_shown(m, 'merged')} probe={_auroc_shown(m, 'probe')} "
        f"grounding={_auroc_shown(m, 'grounding')}"))


def rag_calibration_warnings(report: dict, target: float) -> list[str]:
    """What a RAG calibration's user must not miss, one line each: a domain whose merged risk does not separate
    its held-out answers (the 95% interval reaches chance), and one whose certified accept threshold lets
    through more hallucinations on the held-out passages than the target (the guarantee is over the draw of
    the calibration set: a held-out rate above it, with n, says how far that draw may be from your data), and one
    with no scored held-out answer, whose thresholds nothing held out checked (``held_out_unchecked``)."""
    def at_chance(entry: dict) -> tuple[float | None, list | None, bool]:
        """(merged AUROC, its 95% interval, whether the interval reaches chance) of a report entry."""
        merged, ci = (entry.get("auroc") or {}).get("merged"), (entry.get("auroc_ci95") or {}).get("merged")
        return merged, ci, merged is not None and ci is not None and ci[0] <= 0.5

    from ..calibrate._rag_report import conflict_at_chance, unscorable_said

    lines = [line for line in [conflict_at_chance(report.get("knowledge_conflict") or {})] if line]
    for d, m in report["domains"].items():
        if m.get("held_out_unchecked"):
            lines.append(f"domain {d!r}: {m['held_out_unchecked']}")
        if m.get("unscorable"):
            lines.append(f"domain {d!r}: {unscorable_said(m['unscorable'])}")
        a = m.get("all") or {}
        merged, lo_hi, chance = at_chance(a)
        if chance:
            assert merged is not None and lo_hi is not None
            lines.append(
                f"domain {d!r}: the merged risk {_not_shown(merged, lo_hi, a.get('correct', 0), a.get('hallucinated', 0))}; "
                "do not rely on its scores: add labelled answers (more passages, more kinds of question) and calibrate again")
        else:  # the overall figure can come from the contrast conditions alone (off-topic answers are easy to tell)
            sup = (m.get("conditions") or {}).get("supporting") or {}
            s_merged, s_ci, s_chance = at_chance(sup)
            if s_chance and merged is not None:
                assert s_merged is not None and s_ci is not None
                lines.append(
                    f"domain {d!r}: on answers given with their own passage (the supporting condition) the merged risk "
                    f"{_not_shown(s_merged, s_ci, sup.get('correct', 0), sup.get('hallucinated', 0))}; "
                    f"the overall {merged:.3f} comes from the contrast conditions (off-topic, misleading passages): "
                    "the risk tells a wrong passage from a right one, not a wrong answer from a right one, on the "
                    "questions users ask with the passage that answers them")
        among = a.get("hallucinated_among_accepted") or {}
        if (m.get("thresholds") or {}).get("accept_below") and among.get("n") and among.get("rate") is not None \
                and among["rate"] > target:
            lo, hi = among.get("ci95") or (None, None)
            ci = f", 95% interval {lo:.0%}-{hi:.0%}" if lo is not None else ""
            lines.append(
                f"domain {d!r}: on the held-out passages {among['k']} of the {among['n']} accepted answers were "
                f"hallucinated ({among['rate']:.0%}{ci}), above the target {target:g} the accept threshold is certified "
                "for: the certificate rests on the calibration draw and few answers; add labelled answers, or set the "
                "threshold by hand only with that in view")
        targets = m.get("targets") or {}
        for key, limit, what in (("offtopic_accepted", 0.05, "answers from an off-topic passage"),
                                 ("misleading_followed_accepted", 0.10, "answers that followed a misleading passage")):
            t = targets.get(key) or {}
            if t.get("rate") is not None and t["rate"] > limit:
                lo, hi = t.get("ci95") or (0.0, 1.0)
                lines.append(f"domain {d!r}: on the held-out passages {t['k']} of {t['n']} {what} were accepted "
                             f"({t['rate']:.0%}, 95% interval {lo:.0%}-{hi:.0%}), above the report's bound {limit:.0%}: "
                             "add contrast rows of that kind, or hold such answers for review")
    return lines


def cmd_calibrate_rag(args) -> int:
    from ..calibrate.rag import calibrate_rag

    if not args.out:
        raise InputError("pass --out DIR for the RAG probes; in a source checkout, "
                         "`python calibration/reference.py --rag` rebuilds the reference RAG probes")
    out = args.out
    examples = None
    if args.data:  # read and checked before the model is loaded
        from ..calibrate.data import load_examples

        examples = load_examples(args.data)
    with _progress_lines("calibrate-rag", args.quiet):
        report = calibrate_rag(
            examples, out, model=args.model, system_prompt=args.system_prompt, max_new_tokens=args.max_new_tokens,
            test_fraction=args.test_fraction, seed=args.seed,
            work_dir=args.work, report_dir=args.report, batch_size=args.batch_size,
            target=args.target, confidence=args.confidence, progress=not args.quiet, collected_only=args.collected_only,
            **_fit_options(args),
        )
    if args.json:
        print(_dump(report))
    else:
        print(f"wrote {len(report['domains'])} RAG probe(s) to {out} and the report to {args.report or out + '/rag-report'}/report.md")
        for d, m in report["domains"].items():
            print(f"  {d:10s} held out {_rag_line(m['all'])}")
            th = m["thresholds"]
            print(f"  {'':10s} " + (f"accept_below {th['accept_below']:.3f} certified at target {args.target:g} / confidence "
                                    f"{args.confidence:g}" if th.get("accept_below") else
                                    f"no accept threshold certified at target {args.target:g} / confidence {args.confidence:g}: "
                                    "the domain reviews every answer it does not abstain on")
                  + (f"; abstain_above {th['abstain_above']:.3f}" if th["abstain_above"] < 1.0 else
                     "; no abstain threshold certified (abstains only on answers that decline)"))
        for d, why in report["skipped"].items():
            print(f"  {d}: skipped: {why}")
        kc = report.get("knowledge_conflict") or {}
        if kc.get("why"):  # no detector: what that means for a policy that asks for the check
            print(f"  no knowledge-conflict detector: {kc['why']}; with knowledge_conflict = 'review' (the default) "
                  "every answer with context in these domains is held for review, 'trust_context' routes them as scored")
    for line in rag_calibration_warnings(report, args.target):
        print(f"hguard calibrate-rag: warning: {line}", file=sys.stderr)
    if report["skipped"]:
        print(f"hguard calibrate-rag: {len(report['skipped'])} domain(s) got no RAG probe ({', '.join(report['skipped'])}): "
              "see the reasons above; the others were written (exit 1)", file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args) -> int:
    from .._resources import probe_folder
    from ..calibrate.pipeline import evaluate, load_probe_dir

    args.probes = str(probe_folder(args.probes))  # a folder, or package:NAME as in a policy
    if not Path(args.probes).is_dir():
        load_probe_dir(args.probes)  # says that the folder does not exist, before the model loads
    if args.rag:
        from ..calibrate.rag import evaluate_rag

        if not args.work:
            raise InputError("--rag needs --work DIR, the folder for the answers collected on the held-out passages "
                             "(the calibration's own, e.g. runs/rag-work, reuses its answers)")
        examples = None
        if args.data:  # read and checked before the model is loaded
            from ..calibrate.data import load_examples

            examples = load_examples(args.data)
        res = evaluate_rag(args.probes, args.work, model=args.model, examples=examples,
                           batch_size=args.batch_size, collected_only=args.collected_only, held_out_only=args.held_out_only)
        warned = [line for d, m in res["domains"].items()  # as calibrate-rag warns: the overall figure can flatter
                  for line in rag_calibration_warnings({"domains": {d: m}}, float(m["thresholds"]["target"]))]
        if args.json:
            print(_dump(res))
        for line in warned:
            print(f"hguard evaluate: warning: {line}", file=sys.stderr)
        if args.json:
            return 0
        print(f"scored: {res['held_out']}")
        for d, m in res["domains"].items():
            print(f"  {d:10s} {_rag_line(m['all'])}")
            for c, b in m.get("conditions", {}).items():  # the overall figure can hide a condition at chance
                print(f"  {'':10s} {c}: {_rag_line(b)}")
            if m.get("n_training_side") and not args.held_out_only:
                print(f"  {'':10s} {m['n_training_side']} of these rows lie on the calibration's training side by its "
                      "recorded split (by each row's group, whether or not the calibration saw the row): if they are "
                      "its own rows, it trained on them and they score optimistically, and --held-out-only scores the "
                      "others")
            if m.get("training_side_unknown"):
                print(f"  {'':10s} {m['training_side_unknown']}")
        for d, why in res["skipped"].items():
            print(f"  {d}: skipped: {why}")
        return 0
    if not args.data:
        raise InputError("pass --data FILE.jsonl (repeatable), or --rag for the RAG probes' held-out passages")
    res = evaluate(args.probes, args.data, model=args.model, batch_size=args.batch_size, limit=args.limit)
    # as calibrate warns: the merged risk, which routes, losing to the probe alone on these rows (text and --json)
    warned = [loss for d, m in res["domains"].items()
              if (loss := merger_loss_warning(d, "these rows", m.get("auroc") or {}, f"n={m['n']}: {m['correct']} right, "
                                             f"{m['hallucinated']} hallucinated, {m['refusals']} refusals")) is not None]
    if args.json:
        print(_dump(res))
    for line in warned:
        print(f"hguard evaluate: warning: {line}", file=sys.stderr)
    if args.json:
        return 0
    for d, m in res["domains"].items():
        print(f"  {d:10s} {_closed_book_line(m)}")
        at = _at_target_line(m)
        if at:  # what --json says of the target, not left to it alone
            print(f"  {'':10s} {at}")
    for d, why in res["skipped"].items():
        print(f"  {d}: skipped: {why}")
    if not res["domains"]:  # nothing measured: a script reading the exit status must not take it for a figure
        print("hguard evaluate: no domain was scored (see the skipped lines): name the domains the probe folder "
              "calibrates in the rows' \"domain\"", file=sys.stderr)
        return 1
    return 0


def _accepted_said(t: dict) -> str:
    """How many of the accepted answers were hallucinated, with the rate and its 95% interval, from an ``at_target``
    entry of a report or an evaluation (``n_accepted`` > 0)."""
    lo, hi = t["accepted_hallucination_ci95"]
    return (f"{t['accepted_hallucinated']} of {t['n_accepted']} accepted answers were hallucinated "
            f"({t['accepted_hallucination_rate']:.3f}, 95% CI {lo:.2f}-{hi:.2f})")


def _at_target_line(m: dict) -> str | None:
    """What an evaluation's answers, routed by the probe file's thresholds, say of its target, in one line, where they
    do not simply meet it: thresholds that accept nothing (accept_below 0, as a withdrawn or uncertified accept
    threshold leaves it); over the target (how many accepted, how many hallucinated, the rate and its interval, the
    families over it); within it pooled but with families over it, or over it on the meta.family kinds of question
    alone (``at_target_meta_family``, as report.md says it); within it by the point estimate but not shown by the
    interval (``within_target_shown`` False: 0 of 2 accepted hallucinated reaches 0.84); or met only because nothing
    was accepted. None when the target is met (or the evaluation has no routing figures)."""
    from ..calibrate.report import families_over_target

    summary = ((m.get("families") or {}).get("summary") or {})
    t = summary.get("at_target") or {}
    if not t or not t.get("n_scored"):
        return None
    below = (m.get("thresholds") or {}).get("accept_below")
    if below is not None and not below:  # nothing to measure: not "met", and not the evaluation's doing
        return (f"the probe's thresholds accept nothing (target {t['target']:g}): every answer goes to review or "
                "abstain")
    head = (f"at the probe's thresholds (accept below {below:.3f}, target {t['target']:g}): " if below is not None
            else f"at the probe's thresholds (target {t['target']:g}): ")
    over = families_over_target(m)
    kinds = summary.get("at_target_meta_family") or {}
    alone = (f"on its {kinds['n_families']} meta.family kinds of question alone it is not met: {_accepted_said(kinds)}"
             if kinds.get("within_target") is False else "")
    far = t.get("review_out_of_distribution") or 0
    if t.get("within_target") is None:  # nothing accepted: nothing measured of the accepted answers' rate
        return (head + f"none of the {t['n_scored']} answers was accepted" + (
            f" ({far} below the threshold went to review as out of distribution)" if far else "")
            + ", so the target is met only vacuously: these answers measure nothing of what the threshold accepts")
    if t["within_target"] is False:
        return (head + f"{_accepted_said(t)}, over the target {t['target']:g}: not met on these answers"
                + (f"; families over it: {over}" if over else "") + (f"; {alone}" if alone else ""))
    # the point estimate within the target, its interval not showing it (as the monitor says it)
    reaches = (f"{t['accepted_hallucination_ci95'][1]:.2f}" if t.get("within_target_shown") is False else None)
    if over or alone:
        return (head + f"{_accepted_said(t)}, within the target {t['target']:g} pooled"
                + (f" (not shown: the interval reaches {reaches})" if reaches else "") + ", but "
                + "; ".join(([f"families over it: {over}"] if over else []) + ([alone] if alone else [])))
    if reaches:
        return (head + f"{_accepted_said(t)}, within the target {t['target']:g} on these {t['n_accepted']} accepted "
                f"answers but not shown (the interval reaches {reaches})")
    return None


def _closed_book_line(m: dict) -> str:
    """One line of closed-book figures: n with its classes, then the AUROCs with their 95% intervals, the best
    confidence baseline and the random-neuron control; a one-class set says so instead of a number."""
    from ..calibrate._pipeline_fit import BASELINES

    head, none = _classes(m), _no_auroc(m)
    if none:
        return head + none
    a = m["auroc"]
    base = max((k for k in BASELINES if a.get(k) is not None), key=lambda k: a[k], default=None)
    return (f"{head} AUROC (95% interval) probe={_auroc_shown(m, 'probe')} merged={_auroc_shown(m, 'merged')} "
            f"random neurons={_auroc_shown(m, 'random_neurons')}"
            + (f" best baseline {base}={_auroc_shown(m, base)}" if base else ""))


def cmd_audit(args) -> int:
    from .audit import main

    return main(args.rest)


def cmd_review(args) -> int:
    from .review import main

    return main(args.rest)


def cmd_monitor(args) -> int:
    from .monitor import main

    return main(args.rest)


def cmd_ask(args) -> int:
    from ..guard import Guard

    context = read_text_file(args.context, "--context") if args.context else None
    if context is not None and blank(context):  # refused before the model loads; nothing is generated
        raise InputError(f"--context file {args.context!r} is empty or only whitespace; pass a file with the "
                         "retrieved passages' text, or leave --context out for a question without one")
    # an answer given to be scored (Guard.check), not generated; the file's own line ends are no part of it (the
    # guard's answers are stripped text too)
    answer = read_text_file(args.answer, "--answer").strip() if args.answer else None
    if args.served and answer is None:
        raise InputError("--served says how an --answer is used; pass --answer FILE with it, or leave --served out")
    if answer is not None and blank(answer):
        raise InputError(f"--answer file {args.answer!r} is empty or only whitespace; pass a file with the text of the "
                         "answer to score, or leave --answer out to have the guard answer")
    if args.domain is not None:  # a mistyped name is refused before the model loads and answers
        from .._guard_scoring import _near
        from .._resources import DEFAULT_POLICY
        from ..policy import load_policy

        domains = load_policy(args.policy or DEFAULT_POLICY).domains
        if args.domain not in domains:
            near = _near(args.domain, set(domains))
            raise InputError(f"--domain {args.domain!r} is not a domain of the policy"
                             + (f"; did you mean {near!r}?" if near else f" (its domains: {', '.join(sorted(domains))})")
                             + "; leave --domain out to let the guard choose")
    with warnings.catch_warnings(record=True) as said:  # hguard's own start-up warnings, as one line each
        warnings.simplefilter("always", UserWarning)
        guard = Guard.from_policy(args.policy, model=args.model)
    show = _one_line_warnings("ask", warnings.showwarning)
    for w in said:  # among them each domain that fails closed (Guard.from_policy says it once)
        show(w.message, w.category, w.filename, w.lineno)
    try:
        res = (guard.invoke(args.question, context=context, domain=args.domain) if answer is None
               else guard.check(args.question, answer, context=context, domain=args.domain, served=args.served))
    except Exception as exc:
        if getattr(exc, "results", None):  # decided and recorded, then a later record of the request failed
            raise not_shown_error(guard, exc, "hguard ask") from exc
        if getattr(exc, "audit_id", None) is None:  # a refused input is recorded by the guard itself
            guard.record_failure(args.question, exc, context=context, domain=args.domain, source="hguard ask")
        raise
    if args.json:
        print(_dump(res.to_dict()))
    else:
        # a given or generated answer is printed as `hguard review list` prints it: an escape sequence in it erased
        # its line and drew a forged "[route=accept]" (its line breaks are kept; JSON output is as it was)
        print("\n".join(shown_lines(res.display_text)))
        if res.route != "accept" and res.answer.strip() and res.answer not in res.display_text:
            # the operator reads what was held (the reasons may refer to it: "the answer states 12.3, which ...")
            print("held answer, not shown to users: " + shown_plainly(" ".join(res.answer.split())))
        print(status_line(res))
        for r in res.reasons:
            print(f"  - {shown_plainly(r)}")
    return 0


def status_line(res: GuardResult) -> str:
    """``hguard ask``'s line under the answer: an unscored answer's risk and a missing domain in the words
    ``hguard review list`` uses ("unscored", "none"), not Python's ``None``."""
    from ..review._items import shown_domain

    risk = "unscored" if res.risk is None else round(res.risk, 3)
    return f"[route={res.route} risk={risk} domain={shown_domain(res.domain, none='none')} audit={res.audit_id}]"


def not_shown_error(guard, exc: BaseException, source: str) -> HGuardError:
    """The error a command raises in place of answers the guard decided and recorded but that it does not show: a
    later record of the request (an accept's spot-check selection, the next answer of a batch) could not be written,
    and the guard's error carries them (``exc.results``, worded for Python callers, who deliver or drop them). Each
    gets its ``answer_not_delivered`` record (:meth:`Guard.record_undelivered`, unless the guard's error names the one
    it wrote, ``undelivered_audit_id``; a warning when the log takes none either), so the log no longer reads as if the user saw the answer; the message says so in the command's words."""
    cause: BaseException = exc
    while isinstance(cause.__cause__, HGuardError):  # the write that failed, with its fix (free space, permissions)
        cause = cause.__cause__
    held = list(exc.results)  # type: ignore[attr-defined]
    why = f"{source} did not show the answer: a later record of its request could not be written ({one_line(str(cause), 300)})"
    # the guard said it already (a spot-check selection written whose append then raised): its record stands
    said = [getattr(exc, "undelivered_audit_id", None) or guard.record_undelivered(r, why) for r in held]
    decided = ", ".join(f"{r.route}, audit id {r.audit_id}" for r in held)
    return AuditError(
        f"the answer was decided ({decided}) and recorded in the audit log, but is not shown: a later record of the "
        f"request could not be written ({' '.join(str(cause).split())}); "
        + ("the log records the answer as not delivered (answer_not_delivered)" if all(said) else
           "the log could not record that it was not delivered either (the warning above says why)")
        + "; once the audit log takes records again, run the command again (a guard start records what is missing)")


def cmd_demo(args) -> int:
    from ..demo import run_demo

    return run_demo(policy=args.policy, model=args.model, out=args.out)


_SYSTEM_PROMPT_HELP = ("the system prompt the answers are given with: the same text as the policy's generation.system_prompt "
                       f"(a probe is checked against it; default {CALIBRATION_SYSTEM_PROMPT!r}, the default policy's)")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from .._resources import policy_arg, source_digest

    p = argparse.ArgumentParser(prog="hguard", description="Hallucination guardrail for local Hugging Face chat models.")
    p.add_argument("--version", action="version", version=f"hguard {__version__} (source {source_digest()})")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="answer a scripted mix of questions under the guard, audit and verify")
    d.add_argument("--policy", default=None, type=policy_arg, help="policy file (default, or `default`: the packaged "
                   "default policy)")
    d.add_argument("--model", default=None, help=_MODEL_HELP + " (default: the policy's model)")
    d.add_argument("--out", default=None, help="folder for the audit log and review queue (default: ~/.local/state/hguard/demo)")
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("ask", help="answer one question under the guard")
    a.add_argument("question")
    a.add_argument("--context", help="file with retrieved context (text)")
    a.add_argument("--answer", help="file with an answer produced elsewhere (text): scored as Guard.check scores it, "
                   "not generated; an answer that is not this model's own greedy answer goes to review; an evaluation "
                   "(the monitor leaves it out) unless --served")
    a.add_argument("--served", action="store_true", help="with --answer: the answer is shown to users as it routes "
                   "(live traffic the monitor counts, a spot-check candidate)")
    a.add_argument("--domain")
    a.add_argument("--policy", default=None, type=policy_arg, help="policy file (default, or `default`: the "
                   "packaged default policy)")
    a.add_argument("--model", default=None, help=_MODEL_HELP + " (default: the policy's model)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_ask)

    c = sub.add_parser("calibrate", help="fit one probe per domain and write the report")
    c.add_argument("--data", action="append", help="calibration JSONL (repeatable)")
    c.add_argument("--out", help="folder for the probes and the report")
    c.add_argument("--domain", action="append", help="only these domains (repeatable)")
    c.add_argument("--model", default="default", help=_MODEL_HELP + " (default: default)")
    c.add_argument("--max-new-tokens", type=_count, default=CALIBRATION_MAX_NEW_TOKENS)
    c.add_argument("--system-prompt", default=CALIBRATION_SYSTEM_PROMPT, metavar="TEXT", help=_SYSTEM_PROMPT_HELP)
    c.add_argument("--test-fraction", type=_fraction, default=0.3)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--target", type=_fraction, default=0.10, help="hallucination rate allowed among accepted answers (default 0.10)")
    c.add_argument("--confidence", type=_fraction, default=0.95, help="confidence of that bound (default 0.95)")
    c.add_argument("--work", help="folder for collected features (resumable; default OUT/.work)")
    c.add_argument("--batch-size", type=_count, default=16)
    c.add_argument("--previous", metavar="DIR", help="an earlier calibration's folder: report what changed (DIR/report.json)")
    c.add_argument("--engine", choices=("local", "ray"), default="local", help="where answers are collected: this process, or a Ray cluster (same shards, same probes)")
    c.add_argument("--address", help="--engine ray: the cluster's address (host:6379 or auto, on a node of the cluster; Ray Client's ray:// is not supported); default: the RAY_ADDRESS the environment names, else a local Ray for this run")
    c.add_argument("--actors", type=_count, help="--engine ray: actors, each loading the model once (one per GPU; default 1)")
    c.add_argument("--gpus-per-actor", type=_not_negative, help="--engine ray: GPUs each actor reserves (default 0; 1 on a GPU cluster)")
    c.add_argument("--cpus-per-actor", type=_not_negative, help="--engine ray: CPUs each actor reserves (its torch threads; default 1)")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model answers: auto = the GPU when one is visible (on Ray: the actor's assigned GPU), else the CPU")
    c.add_argument("--screen-top", type=int, metavar="K",
                   help="fit the probes from the shards on the top K features by |Welch t| (never all features in memory)")
    c.add_argument("--fit-memory-gb", type=float, metavar="GB",
                   help="memory the in-memory probe fit may use (default: half of this machine's); above it the fit is screened")
    c.add_argument("--quiet", action="store_true")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_calibrate)

    e = sub.add_parser("evaluate", help="answer and score a data set with calibrated probes")
    e.add_argument("--probes", required=True, help="the probe folder, or package:NAME for probes shipped with hguard "
                   "(package:smollm2-135m, the default policy's)")
    e.add_argument("--data", action="append", help="data to answer and score (repeatable); with --rag, rows with context, "
                   "every one scored")
    e.add_argument("--rag", action="store_true", help="score with the RAG probes (*.rag.json): the rows of --data, or "
                   "without it, in a source checkout, the held-out passages of the bundled RAG sets")
    e.add_argument("--work", help="with --rag (required): folder of collected RAG answers, reused when there "
                   "(the calibration's own, e.g. runs/rag-work, reuses its answers)")
    e.add_argument("--collected-only", action="store_true", help="with --rag: only the answers already in --work")
    e.add_argument("--held-out-only", action="store_true", help="with --rag and --data: answer and score only the rows "
                   "on the calibration's test side of its recorded split (for the calibration's own file: its held-out "
                   "figures; the split goes by each row's group, so rows it never saw are dropped too when their group "
                   "falls on the training side: leave it out for new rows)")
    e.add_argument("--model", default="default", help=_MODEL_HELP + " (default: default)")
    e.add_argument("--batch-size", type=_count, default=16)
    e.add_argument("--limit", type=_count)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("calibrate-rag", help="fit the RAG probes (answers given with context) and write their report")
    r.add_argument("--out", help="folder for the <domain>.rag.json probes")
    r.add_argument("--data", action="append", metavar="FILE.jsonl",
                   help="your calibration rows, each with its context (repeatable); default: the bundled RAG sets "
                        "(a source checkout)")
    r.add_argument("--report", help="folder for the report (default OUT/rag-report)")
    r.add_argument("--work", help="folder for collected answers and signals (resumable; default OUT/.work-rag)")
    r.add_argument("--model", default="default", help=_MODEL_HELP + " (default: default)")
    r.add_argument("--test-fraction", type=_fraction, default=0.3)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--target", type=_fraction, default=0.10)
    r.add_argument("--confidence", type=_fraction, default=0.90)
    r.add_argument("--batch-size", type=_count, default=8)
    r.add_argument("--max-new-tokens", type=_count, default=CALIBRATION_MAX_NEW_TOKENS)
    r.add_argument("--system-prompt", default=CALIBRATION_SYSTEM_PROMPT, metavar="TEXT", help=_SYSTEM_PROMPT_HELP)
    r.add_argument("--collected-only", action="store_true",
                   help="fit on the answers already in --work (a subset of the sets) instead of answering the rest")
    r.add_argument("--screen-top", type=int, metavar="K", help="as for calibrate: probes fitted from the shards on the top K features")
    r.add_argument("--fit-memory-gb", type=float, metavar="GB", help="as for calibrate: above this the fit is screened")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_calibrate_rag)

    for name, (func, help_) in PASSTHROUGH.items():
        # parsed by the command's own module (main() hands them over before argparse runs)
        sub.add_parser(name, help=help_, add_help=False).set_defaults(func=func)
    return p


PASSTHROUGH = {
    "audit": (cmd_audit, "verify, show, export, repair or rotate an audit log"),
    "review": (cmd_review, "the human review queue: serve, list, decide, export"),
    "monitor": (cmd_monitor, "spot-check estimate, drift and tightening per domain; --lift DOMAIN"),
}


def _writable_streams() -> None:
    """Standard output and error that write what their encoding lacks as escapes ("\\u0645"): under a locale of
    another encoding (de_DE.ISO-8859-1) a record with Arabic text stopped `hguard audit show` part-way with a
    UnicodeEncodeError, exiting 1 as a log that does not verify does."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if reconfigure is not None and encoding not in ("utf8", "utf8sig"):
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot change
                pass


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure is one line on stderr naming the value and the fix, with exit
    code 2 (1 for an unexpected error); ``--debug`` anywhere on the line shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _writable_streams()
    debug = "--debug" in argv or os.environ.get("HGUARD_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    if argv and argv[0] in PASSTHROUGH:
        args = argparse.Namespace(command=argv[0], rest=argv[1:], func=PASSTHROUGH[argv[0]][0])
    else:
        args = build_parser().parse_args(argv)
    try:
        _torch_threads()
        if getattr(args, "quiet", False):  # the weight-loading bars too, not only hguard's own progress
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"hguard {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if debug:
            raise
        print(f"hguard {args.command}: {error_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, (HGuardError, OSError, ModuleNotFoundError)) else 1


def _one_line_warnings(command: str, shown):
    """``warnings.showwarning`` for one command: hguard's own warnings as one line, ``hguard CMD: warning: ...``
    (a command that gathers its warnings, such as calibrate, still says them its way); another library's as
    Python shows them."""
    def show(message, category, filename, lineno, file=None, line=None):
        if _ours(filename):
            print(f"hguard {command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)
    return show


def _ours(filename: str) -> bool:
    """Whether a warning was raised in hguard's own code (the installed package's folder)."""
    try:
        return Path(filename).resolve().is_relative_to(Path(__file__).resolve().parents[1])
    except (OSError, ValueError):
        return False


# optional packages and the extra that installs them
_EXTRAS = (
    ({"starlette", "uvicorn", "jinja2", "multipart", "python_multipart"}, "review"),
    ({"sentence_transformers"}, "embeddings"),
    ({"matplotlib"}, "plots"),
    ({"ray", "pyarrow"}, "ray"),
    ({"langchain_core"}, "langchain"),
    ({"llama_index"}, "llama-index"),
)


def error_line(exc: BaseException) -> str:
    """One line for a user: the message of an hguard error, else its type and message with the way to
    see more. An hguard error written on several lines (one per bad row of a data file, or per bad key of a
    policy) keeps them, each indented under the first, so a list of problems reads as one."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, HGuardError):
        return "error: " + ("\n  ".join(" ".join(line.split()) for line in str(exc).splitlines() if line.strip()) or text)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        extra = next((e for mods, e in _EXTRAS if exc.name.split(".")[0] in mods), None)
        how = install_extra(extra) if extra else f"pip install {exc.name.split('.')[0]}"
        return f"error: this command needs the package {exc.name.split('.')[0]!r}, which is not installed; {how}"
    if isinstance(exc, OSError):
        where = f" ({exc.filename!r})" if getattr(exc, "filename", None) else ""
        return f"error: {exc.strerror or text}{where}; check the path and its permissions"
    return f"unexpected error: {type(exc).__name__}: {text} (rerun with --debug for the traceback and report it)"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
