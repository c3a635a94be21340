"""Reviewed answers back into calibration data: one JSONL row (a valid :class:`~hguard.calibrate.data.Example`)
per decided review item, so human verdicts sharpen the next calibration.

Row format (written with :func:`~hguard.calibrate.data.write_examples`, so the file loads with
``load_examples``)::

    {"id": "review-<item id>", "question": ..., "answers": [...], "domain": ..., "kind": "qa"|"unanswerable",
     "context": ... (only when the item had retrieved context),
     "meta": {"source": "review", "family": "reviewed", "verdict": "correct"|"hallucinated"|"corrected"|"not_in_context", "label": "correct"|"hallucinated",
              "model_answer": <the answer the reviewer judged>, "risk": <the guard's risk, or null>,
              "probe_route": "review" | "accept" (a spot-check), "spot_check": ..., "reviewer": ..., "decided_at": ..., "decision_audit_id": ...,
              "verdict_audit_id": <the review_verdict audit record, or null>,
              "model_fingerprint": ..., "probe_id": ..., "judge": "yesno" (only on a yes/no row)}}

By verdict:

* ``correct``: ``kind "qa"``, ``answers [model_answer]``, ``meta.label "correct"``; on an answer that declines (read
  as the guard reads it, :func:`hguard.calibrate.judge.declines` with the question: "The policy does not say that
  data is shared with advertisers." to "Does the policy say whether my data is shared with advertisers?" is a plain
  no, an answer) or denies the question's premise ("there is no country called ..."), ``kind "unanswerable"`` and
  ``answers []``, since that is the right reply. To a question that asks for yes or no and nothing else, an answer
  that takes a side plainly (:func:`hguard.calibrate.judge.yes_no_taken`: it opens with yes or no, or says the
  question's own claim back, negated or not) makes a yes/no row: ``answers ["yes"]`` or ``["no"]`` and
  ``meta.judge "yesno"``, so another reply is read by its polarity ("No." answers as "The policy does not allow
  children under 13 to sign up." does). "William Shakespeare wrote Hamlet." to "Can you tell me who wrote Hamlet?"
  keeps its answer: a row read wrongly as yes would label every affirmative reply right. Judged afresh (another model's answer), a row's whole-sentence answer accepts an answer
  that says the same in fewer words (:func:`hguard.calibrate.judge.says_what_reviewed`).
* ``corrected``: ``kind "qa"``, ``answers [corrected_answer]``, ``meta.label "hallucinated"`` (the reviewer
  said the model's answer was wrong and supplied the right one).
* ``hallucinated``: the answer is known to be wrong but the right one is not, and a ``qa`` row must list an
  accepted answer. Such rows are written as ``kind "unanswerable"`` with ``answers []``: for calibration no
  answer is known to be right, so anything but abstaining counts as a hallucination, which is what the
  reviewer said about the model's answer. ``meta.answers_unknown`` is ``true`` to tell these rows from real
  unanswerable questions (the model's accuracy counts them as questions with an answer, so declining one
  is not right: :func:`hguard.calibrate.judge.asked_kind`). On an item answered with context it is skipped
  instead: an unanswerable row with a passage says that the passage does not answer the question.
* ``not_in_context`` (an answer given with context): ``kind "unanswerable"``, ``answers []``, the context kept,
  ``meta.label "hallucinated"``: the passage does not answer the question, so the right reply says so, as on the
  RAG calibration sets' off-topic rows.

``meta.label`` is the reviewer's label of ``meta.model_answer`` and overrides the judge
(``hguard.calibrate.collect.label_row`` honours it) when the calibrated model answers the question with that
same answer (as a reader sees it: case, spacing, invisible characters and end punctuation aside); where another model, chat template or system prompt answers otherwise,
the label is not this answer's and the judge compares the new answer with ``answers`` (said in the row's
``judge_reason``).

Items are skipped (and listed in :attr:`ExportSummary.skipped`, with the reason) when they cannot make a valid
row: no domain, a domain name that is not a calibration slug (lowercase letters, digits, ``_``, ``-``), or a
"correct" verdict on an empty answer. Items asking one question (one domain, question and passage, or no passage,
whitespace aside: :func:`~hguard.calibrate.data.asked_key`, as ``load_examples`` keys rows) make one row, since the
model answers it once: the latest verdict's that names a right answer (a "hallucinated" with no correction names
none; the latest of all where none does), the others skipped naming it ("repeats the question and passage of
review-b (spaces aside), exported as one row: the latest verdict ('correct' by bob)"), and none where reviewers gave
one answer two labels (see :func:`_one_row_per_question`; :attr:`ExportSummary.n_merged` counts the first kind).
When no row is left, the output file is not written (an empty calibration file would make ``load_examples`` refuse
its whole directory); ``ExportSummary.written`` says so.

:class:`ExportSummary` also reports how often reviewers' labels disagreed with the risk read at 0.5 (not the
policy's thresholds): a "correct" verdict on an item whose risk was >= 0.5, or any other verdict
on one whose risk was < 0.5, over every decided item of the domain (skipped ones too; items without a risk are not
counted), and how many spot-checked accepted answers (the guard's own decisions to accept) reviewers said were
hallucinated. With the audit log both count the chain's verdict on each decision by what its record says (the domain
``domain`` selects, the risk, the spot-check flag; the queue's columns only for a record older than a field), whatever
the queue's rows say: an item whose columns differ is skipped and named (also by the export of its record's domain),
and a verdict on a decision the queue holds no item of (its row deleted) is not exported and is named in
:attr:`ExportSummary.skipped`. Items archived from the queue (``hguard review archive``) are its items still: read back
from their archive files (a file missing, or changed since it was written, is refused) and exported, checked and
counted as they were in the queue, in the same order; ``archived=False`` (``--skip-archived``) leaves them out of the
rows (with the audit log, the figures still count their verdicts by their records).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ..calibrate.data import Example, asked_key, write_examples
from ..calibrate.judge import declines, denies_premise, judge_row, yes_no_taken
from .._numerics import finite_number
from .._privacy import FILE_MODE, redacted
from .._text import seen_form
from .._audit_records import CONTINUATION
from .._resources import refuse_own_file
from ..errors import DataError, InputError
from ._archive import ArchivedItem
from .queue import (
    VERDICTS,
    ReviewItem,
    ReviewQueue,
    chain_verdicts,
    committed_verdict,
    holds_text,
    newest_file_from,
    not_put_back,
    not_in_chain,
    queue_verdict_said,
    same_risk,
    shown_sha256,
    where_recorded,
)

__all__ = ["DISAGREEMENT_RISK", "ExportSummary", "example_for", "export_reviewed"]

# The risk at which the probe "says" hallucinated: the point where a reviewer's label and the probe disagree.
DISAGREEMENT_RISK = 0.5
_DOMAIN_RE = re.compile(r"[a-z0-9_-]+\Z")


@dataclass
class ExportSummary:
    """What :func:`export_reviewed` wrote."""

    path: str
    n_items: int  # rows written
    by_verdict: dict[str, int]
    n_disagreements: int
    n_scored: int  # decided items that had a risk, skipped ones included (the base of the disagreement rate)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item id, why)
    written: bool = True  # False when there was nothing to write (the file is then left as it was)
    n_spot_checks: int = 0  # decided spot-checks: answers the guard accepted (and the user got)
    n_spot_hallucinated: int = 0  # of which a reviewer said hallucinated: where the guard was wrong
    n_not_in_queue: int = 0  # the audit chain's verdicts on decisions the queue holds no item of: counted, named in skipped
    n_archived: int = 0  # decided items read from the queue's archive files (`hguard review archive`)
    n_archived_left_out: int = 0  # archived items not read (archived=False, --skip-archived)
    # of those, with a domain asked for: archived by an older hguard that kept no domain, with no verdict record to say
    # it (no audit log): whether they are of that domain is unknown, so they are not in n_archived_left_out
    n_archived_domain_unknown: int = 0
    # items not written because another item asked the same question (and passage): its row carries the latest verdict
    # that names a right answer (or the latest, where none does)
    n_merged: int = 0

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def disagreement_rate(self) -> float | None:
        return self.n_disagreements / self.n_scored if self.n_scored else None

    def summary(self) -> str:
        verdicts = ", ".join(f"{v} {self.by_verdict.get(v, 0)}" for v in VERDICTS)
        rate = self.disagreement_rate
        agree = (
            f"reviewers' labels disagreed with the risk read at {DISAGREEMENT_RISK:g} (hallucinated at or above it; not "
            f"the policy's thresholds) on {self.n_disagreements} of {self.n_scored} decided items with a risk, skipped "
            f"ones included ({rate:.0%})"
            if rate is not None
            else "no scored items to compare with the risk"
        )
        if self.n_spot_checks:  # the guard's own mistakes: accepted answers a reviewer said were hallucinated
            agree += (f"; {self.n_spot_hallucinated} of the {self.n_spot_checks} spot-checked accepted answers were "
                      "hallucinated")
        if self.n_not_in_queue:  # counted by their records, which the queue's rows no longer say (a row deleted)
            agree += (f" (these figures count {self.n_not_in_queue} verdict(s) of the audit chain on decisions the queue "
                      "holds no item of, by their records: not exported, named below)")
        if self.n_archived_left_out:
            agree += f"; {self.n_archived_left_out} archived item(s) not read (--skip-archived): not exported"
        if self.n_archived_domain_unknown:
            agree += (f"; {self.n_archived_domain_unknown} archived item(s) of unknown domain not read (--skip-archived; "
                      "archived by an older hguard, which kept their domain in the archive file only): some may be of "
                      "this domain, so the count of its archived items is unknown; export without --skip-archived to "
                      "read them")
        merged = (f"; {self.n_merged} of them repeat the question (and passage) of an item exported, whose row carries "
                  "the latest verdict (that names a right answer, where one does): one question is one row"
                  if self.n_merged else "")
        skipped = f", {self.n_skipped} decided item(s) skipped (below{merged})" if self.skipped else ""
        if self.n_archived:
            skipped += f"; {self.n_archived} of the decided items read from the queue's archive files"
        head = (
            f"wrote {self.n_items} reviewed rows to {self.path} (rows by verdict: {verdicts}{skipped})" if self.written
            else f"no reviewed rows to export; {self.path} was not written"
        )  # fmt: skip
        lines = [f"{head}; {agree}"]
        for item_id, why in self.skipped:
            lines.append(f"  skipped {item_id}: {why}")
        return "\n".join(lines)


def _disagrees(risk: Any, label: str | None) -> bool | None:
    x = finite_number(risk)
    if x is None or label is None:
        return None
    probe_says_hallucinated = x >= DISAGREEMENT_RISK
    return probe_says_hallucinated != (label == "hallucinated")


def example_for(item: ReviewItem) -> Example:
    """The calibration row for one decided item; DataError (with the reason) when it cannot make one."""
    v = item.verdict
    if v is None:
        raise DataError(f"review item {item.id!r} has no verdict yet; only decided items can be exported")
    if item.domain is None:
        raise DataError("it has no domain; calibration rows need one")
    if not _DOMAIN_RE.match(item.domain):
        raise DataError(
            f"its domain {item.domain!r} is not a calibration slug (lowercase letters, digits, '_' or '-')"
        )
    answers: list[str]
    kind: Literal["qa", "unanswerable"]
    judge: str | None = None
    if v.verdict == "correct":
        if not item.answer.strip():
            raise DataError("it is an empty answer marked correct, which gives no accepted answer")
        if declines(item.answer, item.question) is not None or denies_premise(item.answer):
            # "I'm not aware of any country called ...", "there is no such country", said right: the question has no
            # answer to name, and a row of kind "unanswerable" says declining (or denying the premise) is right. A
            # decline is read as the guard reads it: "The policy does not say that data is shared with advertisers."
            # to "Does the policy say whether ...?" is a plain no the guard scored, so its row is an answer row
            answers, kind = [], "unanswerable"
        elif (said := yes_no_taken(item.answer, item.question)) is not None:
            # read by its polarity, as calibration's yes/no rows are: "No." and "Children under 13 are not allowed
            # to sign up." say what "The policy does not allow children under 13 to sign up." says. Only a plain yes
            # or no: a row read wrongly labels every reply of that polarity right ("Can you tell me who wrote
            # Hamlet?" is no yes/no question, and "William Shakespeare wrote Hamlet." no yes)
            answers, kind, judge = [said], "qa", "yesno"
        else:
            answers, kind = [item.answer], "qa"
    elif v.verdict == "corrected":
        answers, kind = [v.corrected_answer or ""], "qa"
    elif v.verdict == "not_in_context":  # the right reply to the passage says that it does not answer the question
        answers, kind = [], "unanswerable"
    elif item.context is not None:
        raise DataError(
            "a 'hallucinated' verdict on an answer given with context names no right answer, and as a calibration row "
            "without one (kind 'unanswerable') it would say that the passage does not answer the question, so that "
            "declining is the right reply; a verdict 'corrected' with the right answer makes a row (or "
            "'not_in_context', where the passage does not answer the question)"
        )
    else:
        answers, kind = [], "unanswerable"
    meta: dict[str, Any] = {
        "source": "review",
        # one kind of question: the live traffic reviewers saw, held out as a whole in leave-one-family-out
        # (its own rows would otherwise each be a family of one, their fact groups)
        "family": "reviewed",
        "verdict": v.verdict,
        "label": v.label,
        "model_answer": item.answer,
        "risk": item.risk,
        "probe_route": "accept" if item.spot_check else "review",
        "spot_check": item.spot_check,
        "reviewer": v.reviewer,
        "decided_at": v.decided_at,
        "decision_audit_id": item.audit_id,
        "verdict_audit_id": v.audit_record_id,
        "model_fingerprint": item.model_fingerprint,
        "probe_id": item.probe_id,
    }
    if v.verdict == "hallucinated":
        meta["answers_unknown"] = True
    if judge is not None:
        meta["judge"] = judge
    try:
        return Example(
            id=f"review-{item.id}",
            question=item.question,
            answers=answers,
            domain=item.domain,
            context=item.context,
            kind=kind,
            meta=meta,
        )
    except ValidationError as e:
        raise DataError(f"it does not make a valid calibration row: {e.errors()[0].get('msg')}") from None


def _one_row_per_question(rows: list[Example]) -> tuple[list[Example], list[tuple[str, str]]]:
    """``rows`` (in the export's order: decided_at, then item id) with one row per question as calibration asks it
    (:func:`hguard.calibrate.data.asked_key`: domain, question and passage, whitespace folded; a closed-book question
    too), and the items not written, each with why, for :attr:`ExportSummary.skipped`.

    The model answers such rows once (greedy), so two would count one answer twice, and ``load_examples`` refuses
    two with a passage. Which row is written:

    * the latest verdict's (the last decided) that names a right answer: any but a "hallucinated" with no correction
      (``meta.answers_unknown``), or the latest of all where none does. Its ``meta.model_answer`` is the one the
      set-up serving users gave last, the likeliest to be what the next calibration's model answers, and the
      reviewer's label applies exactly when it is (``label_row``); any other answer is judged by the row's
      ``answers``. A later "hallucinated" verdict is not kept over one that names a right answer: "Paris" judged
      correct, then "Lyon" hallucinated, kept as the "Lyon" row (kind "unanswerable", no answers), taught the next
      calibration that "Paris" is a hallucination too; the "Paris" row judges "Lyon" hallucinated, as its reviewer did. Each
      other verdict is named with the row kept, e.g. "repeats the question and passage of review-b (spaces aside),
      exported as one row: the latest verdict ('correct' by bob)" ("the latest verdict that names a right answer"
      where a later one was passed over), and, where its row said something else (another answer, label or kind),
      that what it said is not in the file. Two answers with two labels are both information, but one question
      gets one answer and one row: keeping another too would count that one answer twice.
    * none, where reviewers gave one answer (as a reader sees it, :func:`hguard._text.same_words`) two labels: a
      disputed label is not calibration data (as for two verdicts on one decision), and each item is named with the
      two verdicts; and none where the row kept would judge another verdict's answer otherwise than its reviewer did
      (:func:`_judged`: "Frank Herbert" kept, "Frank Herbert, with his son Brian Herbert", labelled hallucinated,
      would be judged correct by it), each item named with why."""
    groups: dict[tuple[str, str, str | None], list[Example]] = {}
    for ex in rows:
        groups.setdefault(asked_key(ex), []).append(ex)
    left: set[str] = set()
    why: list[tuple[str, str]] = []

    def item_of(ex: Example) -> str:
        return ex.id[len("review-"):]

    def said(ex: Example) -> str:
        m = ex.meta or {}
        return f"{m.get('verdict')!r} by {m.get('reviewer')}"

    for key, same in groups.items():
        if len(same) < 2:
            continue
        asked = "the question and passage" if key[2] is not None else "the question (no passage)"
        left.update(ex.id for ex in same)
        disputed = _disputed(same)
        if disputed is not None:
            a, b = disputed
            for ex in same:
                why.append((item_of(ex), f"reviewers disagree on one answer to {asked} of {len(same)} items (spaces "
                                         f"aside): {said(a)} on {a.id} and {said(b)} on {b.id}, the same answer "
                                         f"{str((a.meta or {})['model_answer'])!r:.80}; a disputed label is not "
                                         "calibration data, so none of them is exported"))
            continue
        # the latest row that names a right answer; the latest, where none does (every verdict "hallucinated")
        kept = next((ex for ex in reversed(same) if not (ex.meta or {}).get("answers_unknown")), same[-1])
        unlike = next((ex for ex in same if ex is not kept and _judged(ex, kept) != (ex.meta or {})["label"]), None)
        if unlike is not None:  # the row would teach another label than a reviewer gave: none of them is exported
            for ex in same:
                why.append((item_of(ex), f"reviewers' verdicts on {asked} of {len(same)} items (spaces aside) cannot "
                                         f"stand in one row: {kept.id}'s row would judge the answer "
                                         f"{str((unlike.meta or {})['model_answer'])!r:.80} of {unlike.id} "
                                         f"{_judged(unlike, kept)}, which {said(unlike)} labelled "
                                         f"{(unlike.meta or {})['label']}; so none of them is exported"))
            continue
        left.discard(kept.id)
        naming = " that names a right answer" if kept is not same[-1] else ""
        for ex in (ex for ex in same if ex is not kept):
            lost = ""
            if (ex.kind, ex.answers, (ex.meta or {})["label"]) != (kept.kind, kept.answers, (kept.meta or {})["label"]):
                lost = (f"; its own verdict, {(ex.meta or {})['verdict']!r} of the answer "
                        f"{str((ex.meta or {})['model_answer'])!r:.80}, is not in the file (the model answers the "
                        "question once, and an answer other than the row's is judged by the row's answers)")
            why.append((item_of(ex), f"repeats {asked} of {kept.id} (spaces aside), exported as one row: the latest "
                                     f"verdict{naming} ({said(kept)}){lost}"))
    return [ex for ex in rows if ex.id not in left], why


def _judged(ex: Example, row: Example) -> str:
    """The label the next calibration would give ``ex``'s answer by ``row`` (its answers, kind and judge): what a
    merged row must agree with for each reviewer's verdict ("Frank Herbert, with his son Brian Herbert" labelled
    hallucinated is right by a row whose answer is "Frank Herbert": a third review)."""
    meta = {k: v for k, v in (row.meta or {}).items() if k not in ("label", "model_answer")}
    return judge_row(str((ex.meta or {})["model_answer"]), list(row.answers), row.kind, meta, row.question).label


def _disputed(same: list[Example]) -> tuple[Example, Example] | None:
    """Two rows of ``same`` (one question's) that give one answer (as a reader sees it, :func:`hguard._text.same_words`:
    its :func:`~hguard._text.seen_form`) two labels, the earlier first, or None. One dictionary lookup an answer
    (comparing every pair took 7.8 s for 1,000 items of one FAQ question with alternating labels; buckets of letters
    still compared within, 85 s for 2,000 answers hyphenated apart)."""
    first_of: dict[str, Example] = {}
    for ex in same:
        first = first_of.setdefault(seen_form(str((ex.meta or {})["model_answer"])), ex)
        if (first.meta or {})["label"] != (ex.meta or {})["label"]:  # each answer seen holds one label until here
            return first, ex
    return None


def _verified_verdicts(audit, decisions: dict[str, dict[str, Any]] | None = None,
                       opened: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The review_verdict records of the log and its archives, read in the pass that verifies them (hashes, the
    log's key's MACs): a log that does not verify is refused, since an edited verdict would become calibration
    data (a verification trial turned a 'hallucinated' into 'correct' in an archive, and it was exported).
    ``decisions`` is filled with each decision record's id, seq and whether it holds text (what :func:`not_put_back`
    reads, not the text), ``opened`` with the rotation records that open each file."""
    from ..audit import verify

    found: dict[str, Any] = {}
    if not audit.path.exists():
        return found

    def keep(rec: dict[str, Any]) -> None:
        if rec.get("kind") == "review_verdict" and isinstance(rec.get("id"), str):
            found[rec["id"]] = rec
        elif rec.get("kind") == "decision" and isinstance(rec.get("id"), str) and decisions is not None:
            text = "" if holds_text(rec) else None
            decisions[rec["id"]] = {"id": rec["id"], "seq": rec.get("seq"), "question": text, "answer": text}
        elif rec.get("kind") == CONTINUATION and opened is not None:
            opened.append({"kind": CONTINUATION, "seq": rec.get("seq")})

    report = verify(audit.path, key=audit._key, archives=True, on_record=keep)  # noqa: SLF001
    breaks = [p for p in report.problems if not p.torn]
    if breaks:
        where = f"line {breaks[0].line}: " if breaks[0].line else ""
        raise DataError(f"audit log {audit.path} does not verify ({where}{breaks[0].message}): its verdicts cannot be "
                        f"trusted as calibration data, nothing was exported; see `hguard audit verify {audit.path}`")
    return found


def _as_recorded(rec: Mapping[str, Any], items: list[ReviewItem]) -> tuple[Any, Any, bool | None]:
    """The domain, risk and spot-check flag the verdict record ``rec`` says its decision had (what its decide
    checked against the decision record); for a record older than one of these fields, the column of the queue's
    item that holds this verdict (or of its first item, ``items``, of that decision); None where neither says."""
    item = next((it for it in items if it.verdict is not None and it.verdict.audit_record_id == rec.get("id")),
                items[0] if items else None)
    said_domain = rec["domain"] if "domain" in rec else (item.domain if item is not None else None)
    risk = rec["risk"] if "risk" in rec else (item.risk if item is not None else None)
    spot = (bool(rec["spot_check"]) if "spot_check" in rec
            else bool(item.spot_check) if item is not None else None)
    return said_domain, risk, spot


# said where a queue row's domain, risk or spot-check flag is not its verdict record's: the figures read the record
_BY_RECORD = " (the figures above count the audit chain's verdict on it by the record's domain, risk and flag)"


def _on(flag: Any) -> str:
    return "on" if flag else "off"


def _check_in_chain(item: ReviewItem, recorded: dict[str, Any], log: str,
                    verdict_of: Mapping[str, Mapping[str, Any]],
                    on_decision: Mapping[str, list[Mapping[str, Any]]]) -> None:
    """DataError when the item's verdict has no review_verdict record in the chain, or the item's question,
    context or answer are no longer what that record says the reviewer was shown, or the chain's verdict on the
    decision (``verdict_of``, from ``chain_verdicts``) is "hallucinated" where this verdict is not, or any verdict
    on the decision (``on_decision``: the records and the queue's verdicts they keep) differs from this one in its
    verdict or corrected answer (reviewers disagreeing)."""
    assert item.verdict is not None
    why = not_in_chain(item, recorded, log)
    if why is not None:  # a record that says otherwise is named by it; without one, nobody can check the verdict
        raise DataError(why if item.verdict.audit_record_id in recorded
                        else f"{why}: a verdict nobody can check is not calibration data")
    rec = recorded[item.verdict.audit_record_id or ""]
    chain = verdict_of.get(item.audit_id)
    if item.verdict.label != "hallucinated" and chain is not None and chain["label"] == "hallucinated":
        # reviewers disagreeing (a verdict superseded): the monitor counts the decision as hallucinated
        raise DataError(f"reviewers disagree on it: its verdict {item.verdict.verdict!r} by {item.verdict.reviewer} "
                        f"and {chain.get('reviewer')}'s 'hallucinated' ({where_recorded(chain)} in {log}); "
                        "the monitor counts the decision as hallucinated, and a disputed label is not calibration data")
    v = item.verdict
    if "domain" in rec and rec.get("domain") != item.domain:  # the row would calibrate another domain
        raise DataError(f"its domain {item.domain!r} is not the {rec.get('domain')!r} its verdict record {rec['id']} in "
                        f"{log} names: the queue file was edited after the verdict{_BY_RECORD}")
    if "spot_check" in rec and bool(rec["spot_check"]) != bool(item.spot_check):  # accepted vs held answer
        raise DataError(f"its spot-check flag is {_on(item.spot_check)}, not {_on(rec['spot_check'])} as its verdict "
                        f"record {rec['id']} in {log} holds: the queue file was edited after the verdict{_BY_RECORD}")
    if "risk" in rec and not same_risk(rec["risk"], item.risk):
        raise DataError(f"its risk {item.risk!r} is not the {rec['risk']!r} its verdict record {rec['id']} in {log} holds: "
                        f"the queue file was edited after the verdict{_BY_RECORD}")
    for key, said in (("verdict", v.verdict), ("reviewer", v.reviewer), ("corrected_answer", v.corrected_answer),
                        ("note", v.note)):  # what the row exports is what the reviewer said, as the chain holds it
        held = rec.get(key)
        if key in rec and held != said and not (isinstance(held, dict) and held == redacted(said)):
            raise DataError(f"its {key.replace('_', ' ')} {said!r:.80} is not what its verdict record {rec['id']} in "
                            f"{log} holds: the queue file was edited after the verdict")
    shown = rec.get("reviewed_sha256")
    if isinstance(shown, dict):
        expected = shown_sha256(item.question, item.context, item.answer)
        rehashed = {k: redacted(v) for k, v in expected.items()}  # a redacting log of
        if shown not in (expected, rehashed):  # hguard 0.2.0 hashed these hashes again; they still identify it
            raise DataError(f"its question, context or answer differ from what the reviewer was shown (record "
                            f"{rec['id']} in {log}): the queue file was edited after the verdict")
    for other in on_decision.get(item.audit_id, ()):  # two corrected answers, or corrected over not_in_context: disputed
        if other is rec:  # its own record, checked above
            continue
        theirs = other.get("corrected_answer")
        if other.get("verdict") != v.verdict or not (theirs == v.corrected_answer or (
                isinstance(theirs, dict) and theirs == redacted(v.corrected_answer))):
            answer = f" (answer {other.get('corrected_answer')!r:.80})" if other.get("corrected_answer") else ""
            raise DataError(f"reviewers disagree on it: its verdict {v.verdict!r}"
                            + (f" (answer {v.corrected_answer!r:.80})" if v.corrected_answer else "")
                            + f" by {v.reviewer} and {other.get('verdict')!r}{answer} by {other.get('reviewer')} "
                            f"({where_recorded(other)} in {log}): a disputed label is not calibration data")


def _earlier_export(path: Path) -> bool:
    """Whether ``path`` holds only rows this export writes (every line a JSON row with ``meta.source`` "review"),
    so that replacing it loses nothing a reviewer's verdict does not give again."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("meta"), dict) or row["meta"].get("source") != "review":
                    return False
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


def export_reviewed(
    queue: ReviewQueue, out_path: str | os.PathLike[str], domain: str | None = None, *, archived: bool = True,
    decide_options: str = " --policy FILE",
) -> ExportSummary:
    """Write every decided item (of ``domain`` when given) as calibration JSONL to ``out_path``, replacing it.
    With the queue's audit log, an item whose verdict is not in the log's chain, or that was edited since, is
    skipped with the reason (see :attr:`ExportSummary.skipped`). ``archived``: also the items archived from the queue
    (:meth:`ReviewQueue.archive`), read back from their archive files and checked as the queue's are (an archive file
    missing or changed is refused, ReviewQueueError); ``False`` leaves them out (with the audit log their verdicts
    still count in the figures, by their records). ``decide_options``: the options naming the queue and its log in
    the ``hguard review decide`` command a skip reason names (``hguard review export`` passes those it was given)."""
    if not isinstance(queue, ReviewQueue):
        raise InputError(f"queue must be a ReviewQueue, got {type(queue).__name__}; pass ReviewQueue('review.sqlite3')")
    if not isinstance(out_path, (str, os.PathLike)) or str(out_path) == "":
        raise InputError(f"out_path must be a file path, got {out_path!r}; e.g. calibration/data/reviewed.jsonl")
    out = Path(out_path)
    refuse_own_file(out, {"review queue": queue.path, "audit log": queue.audit.path if queue.audit else None}, "out_path (--out)",
                    example="reviewed.jsonl")
    if out.exists() and not _earlier_export(out):  # a calibration file of one's own, replaced by the reviewed rows
        raise InputError(
            f"out_path {out} already exists and is not an earlier review export (not every row is a reviewed answer, "
            "meta.source 'review'): writing there would replace its rows; pass a new file, e.g. reviewed.jsonl, and "
            "give both files to calibration (--data twice); nothing was written"
        )
    kept = queue.archived()  # what the queue keeps of its archived items: they are decided, not missing
    archived_ids = {a.audit_id for a in kept.values()}
    from_archive = queue.archived_items() if archived and kept else []  # read before anything is written

    def decided_items() -> list[ReviewItem]:  # the queue's and the archived, in the queue's order (decided_at, id)
        return sorted(queue.decided() + from_archive,
                      key=lambda it: ((it.verdict.decided_at if it.verdict else "") or "", it.id))

    rows: list[Example] = []
    by_verdict: Counter[str] = Counter()
    skipped: list[tuple[str, str]] = []
    # With the audit log, a verdict becomes a calibration row only when its review_verdict record is in the chain
    # and the item still holds what that record says the reviewer was shown: the queue file alone can be edited.
    decision_recs: dict[str, dict[str, Any]] = {}  # what a guard start would put a deleted row back from, and where
    opened: list[dict[str, Any]] = []
    recorded = _verified_verdicts(queue.audit, decision_recs, opened) if queue.audit is not None else None
    verdict_of = chain_verdicts(recorded.values())[0] if recorded is not None else {}
    on_decision: dict[str, list[Mapping[str, Any]]] = {}  # every verdict on each decision, the queue's kept ones too
    for r in (recorded or {}).values():
        for said in (r, queue_verdict_said(r)):
            if said is not None and isinstance(r.get("decision_audit_id"), str):
                on_decision.setdefault(r["decision_audit_id"], []).append(said)
    # How the probe did, counted before any row is built (an item that cannot become a row still says it). With the
    # audit log, by the chain's verdict on each decision, once per decision, and by what its record says of the
    # decision (domain, risk, spot-check flag), whatever the queue's rows say: a verdict edited, an item set back to
    # pending, a row deleted, its spot-check flag cleared or its domain moved changed the figures or hid the verdict
    # from them (a review cleared a row's flag: "0 of the 1 spot-checked accepted answers" where the chain holds 1 of
    # 2). The queue's columns stand in only for a record older than the field. Without the log, by the decided items
    judged: dict[str, tuple[Any, bool, str]] = {}  # decision id: (risk, spot-checked, label), once per decision
    not_in_queue: list[Mapping[str, Any]] = []  # chain verdicts on decisions the queue holds no item of
    if recorded is not None:
        items_of: dict[str, list[ReviewItem]] = {}
        for it in decided_items() + queue.pending(limit=None):
            items_of.setdefault(it.audit_id, []).append(it)
        for did, rec in verdict_of.items():
            items = items_of.get(did, [])
            said_domain, risk, spot = _as_recorded(rec, items)
            if domain is not None and said_domain != domain:
                continue
            if not items and did not in archived_ids:  # its row deleted, or the queue replaced: named below
                not_in_queue.append(rec)
            if spot is not None:  # a record older than its flag, with no row to say it, is named, not counted
                judged[did] = (risk, spot, str(rec["label"]))
    else:
        for item in decided_items():
            if domain is not None and item.domain != domain:
                continue
            if item.verdict is not None and item.audit_id not in judged:
                judged[item.audit_id] = (item.risk, bool(item.spot_check), item.verdict.label)
    said = [_disagrees(risk, label) for risk, _, label in judged.values()]
    n_scored, n_disagree = sum(d is not None for d in said), sum(bool(d) for d in said)
    n_spot = sum(spot for _, spot, _ in judged.values())
    n_spot_bad = sum(spot and label == "hallucinated" for _, spot, label in judged.values())

    def in_domain(item: ReviewItem) -> bool:  # by its row, or by the verdict records the chain holds on it
        if domain is None or item.domain == domain:
            return True
        recs = [verdict_of.get(item.audit_id), (recorded or {}).get(item.verdict.audit_record_id or "")
                if item.verdict is not None else None]
        return any(r is not None and r.get("domain") == domain for r in recs)

    # an item the export's domain holds by its row or by its verdict record (a row whose domain was moved is named,
    # not passed over: its verdict counts in the figures by the record)
    for item in [it for it in decided_items() if in_domain(it)]:
        try:
            if recorded is not None:
                _check_in_chain(item, recorded, str(queue.audit.path), verdict_of, on_decision)  # type: ignore[union-attr]
            ex = example_for(item)
        except DataError as e:
            skipped.append((item.id, str(e)))
            continue
        rows.append(ex)
    rows, merged = _one_row_per_question(rows)
    skipped += merged
    n_merged = sum(why.startswith("repeats ") for _, why in merged)
    by_verdict.update(str((ex.meta or {})["verdict"]) for ex in rows)
    if recorded:  # a verdict the log holds on an item the queue still shows pending (the deciding process stopped
        # between the two): not exported, and said, as `review decide` and the monitor say it
        logged: dict[str, list[str]] = {}
        for rid, rec in recorded.items():
            if isinstance(rec.get("item_id"), str):
                logged.setdefault(rec["item_id"], []).append(rid)
        for item_id, rids in logged.items():
            pending = queue.get(item_id)
            if pending is not None and pending.verdict is None and (
                    in_domain(pending) or any(recorded[rid].get("domain") == domain for rid in rids)):
                skipped.append((item_id, f"the audit log holds a verdict on it ({', '.join(rids)}) that the queue never "
                                         f"committed: `hguard review decide {item_id} --verdict V --reviewer NAME"
                                         f"{decide_options} --supersede` records it again, then "
                                         "export"))
    for rec in not_in_queue:
        # every verdict the chain holds on the decision, not the one it counts alone (a decision reviewed twice)
        others = [r for r in recorded.values() if r.get("decision_audit_id") == rec["decision_audit_id"]  # type: ignore[union-attr]
                  and (r.get("id") != rec.get("id") or rec.get("queue_verdict_of") is not None)]
        also = (" (the verdict the figures count; it also holds " + ", ".join(
            f"{r.get('verdict')!r} by {r.get('reviewer')} (record {r.get('id')})" for r in others) + " on it)"
            if others else "")
        counted = ("counted in the figures above by that record's risk and spot-check flag" if "spot_check" in rec
                   else "not counted in the figures above (the record is older than the spot-check flag it would be "
                        "counted by)")
        did = rec["decision_audit_id"]
        back = committed_verdict([r for r in recorded.values() if r.get("decision_audit_id") == did], did)  # type: ignore[union-attr]
        dec = decision_recs.get(did)
        why = not_put_back(dec, queue.kept_ids(), newest_file_from(opened)) if dec is not None else None
        then = (f"its row cannot be restored: a guard start does not put it back ({why}); the verdict stays as its record "
                "holds it" if why is not None else
                f"a guard start on the policy puts the item back decided, with the verdict its row held ({back.get('verdict')!r} "
                f"by {back.get('reviewer')}, record {back.get('id')}), then export"
                + (" (which leaves it out while reviewers disagree)" if back.get("label") != rec.get("label") else "")
                if back is not None else
                "a guard start on the policy puts the item back pending (the verdict is on another item's row, a copy): "
                f"`hguard review decide {did} --supersede` records a verdict on it, naming that one, then export")
        skipped.append((str(rec.get("item_id") or did), (
            f"the audit log holds the verdict {rec.get('verdict')!r} by {rec.get('reviewer')} ({where_recorded(rec)}) "
            f"on its decision {did}{also}, and the queue holds no item of that decision (its row was "
            f"deleted, or the queue replaced): not exported, {counted}; {then}")))
    # An empty calibration file would make load_examples refuse the whole data directory, so none is written.
    if rows:
        try:
            # reviewed questions and answers: readable as the queue is, not by everyone, from the first byte (a chmod
            # after the rename left them world-readable for a moment)
            write_examples(out, rows, mode=FILE_MODE)
        except OSError as e:
            raise InputError(f"cannot write {out}: {e}; choose a writable path") from e
    return ExportSummary(
        path=str(out),
        written=bool(rows),
        n_items=len(rows),
        by_verdict={v: by_verdict.get(v, 0) for v in VERDICTS},
        n_disagreements=n_disagree,
        n_scored=n_scored,
        skipped=skipped,
        n_spot_checks=n_spot,
        n_spot_hallucinated=n_spot_bad,
        n_not_in_queue=sum("spot_check" in rec for rec in not_in_queue),
        n_merged=n_merged,
        n_archived=sum(in_domain(it) for it in from_archive),
        n_archived_left_out=0 if archived else sum(domain is None or _archived_domain(a, verdict_of) == domain
                                                   for a in kept.values()),
        n_archived_domain_unknown=0 if archived or domain is None else sum(
            _archived_domain(a, verdict_of) is _UNKNOWN for a in kept.values()),
    )


_UNKNOWN = object()  # an archived item's domain that neither the queue nor the audit chain says


def _archived_domain(kept: ArchivedItem, verdict_of: Mapping[str, Mapping[str, Any]]) -> Any:
    """The domain of an archived item as the export's figures read it: its verdict record's in the audit chain, else the
    one the queue kept (None: no domain), else ``_UNKNOWN`` (archived by an hguard that kept none, no log to say)."""
    rec = verdict_of.get(kept.audit_id)
    if rec is not None:
        return rec.get("domain")
    return kept.domain if kept.domain_kept else _UNKNOWN
