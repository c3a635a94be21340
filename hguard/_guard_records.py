"""What the guard writes about each answer: the audit record, the review queue item, the seeded
spot-check of accepted answers, and the record of a request that failed before a decision."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TypeVar

from ._guard_result import GuardResult, _join_context
from ._audit_records import RUN_KEYS, run_id_of
from ._resources import source_digest
from .audit import append_written, sink_failed_after
from .errors import AuditError, error_text, warn_aside
from .generation import prompt_fingerprints
from ._policy_route import SPOT_CHECK_REASON
from .policy import ACCEPT, REVIEW
from .monitor import for_evaluation, guarantee_of, seed_id
from .settings import CLOSED_BOOK, RAG

if TYPE_CHECKING:
    from .generation import Generator
    from .models import LoadedModel
    from .policy import Policy


_E = TypeVar("_E", bound=BaseException)
#: the audit record kind of :meth:`_Recording.record_undelivered`
UNDELIVERED = "answer_not_delivered"
#: most answers a guard keeps in memory to put back in a review queue that could not take them (a start puts back more)
UNQUEUED_HELD = 10_000
#: most decisions a guard remembers having said undelivered (to say each once when several layers of one call see its
#: cancel, which happens within the call): the oldest are forgotten, so a long-lived guard's memory stays bounded
UNDELIVERED_REMEMBERED = 4_096
#: how much of a refused request's question, context or error message its error record keeps (the rest is named by
#: its length and sha256); a passage the model could read whole is shorter
ERROR_TEXT_CHARS = 64_000


def _context_as_read(context) -> str:
    """A failed request's context as an ``error`` record keeps it: as the guard reads it (a list of passages joined,
    blank and repeated passages left out, as in a decision record), or, for one it cannot read (a passage that is no
    string: refused), its ``repr``."""
    try:
        joined = _join_context(context)
    except Exception:  # never raising while a failure is recorded
        return repr(context)
    return joined if isinstance(joined, str) else repr(context)


class _Recording:
    """The guard's writes (mixed into :class:`hguard.guard.Guard`); a failed write reaches the caller."""

    # set by Guard.__init__
    lm: LoadedModel
    policy: Policy
    generator: Generator
    audit: Any  # an AuditLog, or None for no log
    review_queue: Any  # a ReviewQueue, or None for no queue
    _policy_id: str
    _policy_hash: str
    _spot_days: dict[tuple[str, str], int]
    _spot_lock: threading.Lock
    _unqueued: list[dict]  # review items the queue could not take, to put back (see _enqueue)
    _unqueued_lock: threading.Lock
    _undelivered: OrderedDict[str, None]
    _undelivered_lock: threading.Lock

    if TYPE_CHECKING:

        def signal_sources(self, *, rag: bool) -> dict[str, str]: ...  # Guard's

    def record_undelivered(self, result: Any, why: str, *, run_id: str | None = None,
                           shown_chars: int | None = None) -> str | None:
        """Say in the audit log that a decided answer never reached the caller (a request cancelled or timed out
        while it was answered, a stream abandoned before its decision): an ``answer_not_delivered`` record naming
        the decision (which stands: the answer was generated and decided) and, when given, the caller's ``run_id``
        (the framework's id of the call: a LangChain run id, a LlamaIndex span id, which the adapters' ``llm_call``
        record of the call carries; that record is written as failed before the decision exists). Its id, or None without a log or a decision record, or when writing fails (said as a warning)."""
        try:
            return self._write_undelivered(result, why, run_id=run_id, shown_chars=shown_chars)
        except Exception as exc:  # the caller is gone: a warning is all that can be said
            warnings.warn(f"could not record that the answer of decision {getattr(result, 'audit_id', None)} never "
                          f"reached the caller ({why}): {error_text(exc)}", UserWarning, stacklevel=2)
            return None

    def _write_undelivered(self, result: Any, why: str, *, run_id: str | None = None,
                           shown_chars: int | None = None) -> str | None:
        """:meth:`record_undelivered`, a write that fails raised."""
        audit_id = getattr(result, "audit_id", None)  # a GuardResult, or anything naming its decision so
        if self.audit is None or not audit_id:
            return None
        with self._undelivered_lock:  # once per decision: a cancel can reach several layers that each saw it
            if audit_id in self._undelivered:
                return None
            self._undelivered[audit_id] = None
            if len(self._undelivered) > UNDELIVERED_REMEMBERED:
                self._undelivered.popitem(last=False)
        record = {"decision_audit_id": audit_id, "route": getattr(result, "route", None), "why": why}
        if run_id is not None:
            record["run_id"] = run_id
        if shown_chars is not None:
            record["shown_chars"] = shown_chars
        # in the log even when the append raised after writing it (its anchor, a subclass's own mirror), which the
        # caller's error says
        return append_written(self.audit, record, kind=UNDELIVERED)[0].id

    def record_cancelled(self, question, *, context=None, domain=None, request_id=None, source: str = "api",
                         run_id: str | None = None) -> str | None:
        """Write a request its async caller cancelled before it started (it waited for a worker thread): an
        ``error`` record, so that every request has one; nothing was generated. ``run_id``: the caller's id of the
        call (a LangChain run id, a LlamaIndex span id), as an ``answer_not_delivered`` record names it."""
        import asyncio

        return self.record_failure(question, asyncio.CancelledError(
            "the caller cancelled the request (a timeout, or its task was cancelled) while it waited for a worker "
            "thread: nothing was generated"), context=context, domain=domain, request_id=request_id, source=source,
            run_id=run_id)

    def record_cancelled_batch(self, questions, contexts=None, domains=None, request_ids=None,
                               source: str = "api", runs=None) -> None:
        """:meth:`record_cancelled` for each request of a batch (one record each, with its own id, and the ``run_id``
        of its ``runs`` entry when given)."""
        if not isinstance(questions, (list, tuple)):  # not a batch: refused as one request would have been
            self.record_cancelled(questions, source=source)
            return
        n = len(questions)

        def each(values):
            return list(values) if isinstance(values, (list, tuple)) and len(values) == n else [None] * n

        for q, c, d, r, run in zip(questions, each(contexts), each(domains), each(request_ids), each(runs)):
            self.record_cancelled(q, context=c, domain=d, request_id=r if isinstance(r, str) else None, source=source,
                                  run_id=run_id_of(run))

    def record_failure(self, question, exc: BaseException, *, context=None, domain=None, source: str = "api",
                       request_id: str | None = None, run_id: str | None = None, stage: str | None = None,
                       given: Mapping[str, Any] | None = None) -> str | None:
        """Write a request that failed before a decision (bad input, a generation or audit error) to the
        audit log as an ``error`` record (``stage``, when given: where it failed, e.g. ``"generation"``; ``context``, a
        string or a list of passages, kept as the guard reads it: see :func:`_context_as_read`); returns its id, also
        set on ``exc`` as ``audit_id``: None without a log or when writing fails too (the caller is already handling the
        original error). ``given``: a refused :meth:`~hguard.guard.Guard.check` (``{"answer": ...}``, the answer or
        answers given): the record says ``answer_source: "given"`` and holds the answer as it holds the question (a
        redacting log hashes it, as a decision's answer)."""
        rid = self._write_failure(question, exc, context=context, domain=domain, source=source, request_id=request_id,
                                  run_id=run_id, stage=stage, given=given)
        try:
            exc.audit_id = rid  # type: ignore[attr-defined]
        except AttributeError:  # an exception type that takes no attributes: the id is returned only
            pass
        return rid

    def record_failed_requests(self, exc: BaseException, failed: Sequence[dict[str, Any]], decided: Mapping[int, Any],
                               after_decision: int | None = None) -> None:
        """A call whose generation or scoring raised ``exc`` (a CUDA out-of-memory error, a model's own bug), said in
        the audit log before ``exc`` is re-raised, so that every request has a record: each request of ``failed`` (the
        keywords of :meth:`record_failure`, ``question`` and ``stage`` among them, and its ``index`` in the call) gets
        an ``error`` record; each answer of ``decided`` (by index: decided and recorded before the call failed, and never
        handed over, since the call raised) an ``answer_not_delivered`` record (:meth:`record_undelivered`), never an
        ``error`` record, its decision standing. ``after_decision``: the index of the request whose own recording
        raised after its decision was written (its spot-check, the review queue).

        On ``exc``: ``audit_ids``, the error records' ids; ``audit_id``, the first of them (or, when every request was
        decided, the first decision's id, also as ``decision_audit_id``); ``audit_id_by_index``, each request's own id
        by its index (its error record's, or its decision's, those listed in ``decision_audit_ids``), from which
        :func:`request_error` makes each request's own error; ids an earlier call set on the same error object are
        removed first. After a write that fails no other is tried (each would wait for the log's lock again). An
        ``error`` record that cannot be written raises :class:`AuditError` chained from ``exc`` (``raise ... from
        exc``), so neither failure is lost; for an ``exc`` that is no ``Exception`` (a KeyboardInterrupt, a SystemExit:
        the process is stopping), or when only ``answer_not_delivered`` records are missing, a warning says so instead
        (never raised in its place, under warnings as errors too), and the caller raises ``exc`` itself."""
        for name in ("audit_id", "audit_ids", "decision_audit_id", "decision_audit_ids", "audit_id_by_index"):
            try:  # an error object raised again (a wrapper re-raising the error it cached): this call's ids only
                delattr(exc, name)
            except AttributeError:
                pass
        failure = error_text(exc, 300)  # never raising: an error whose str() raises is recorded and raised too
        stopped: str | None = None  # the first write that failed: no other is tried, since each waits for the log's
        # lock (its lock_timeout, 60 s by default) and a Ctrl-C was held up one wait per request
        left_undelivered = left_errors = 0
        by_index: dict[int, str] = {}
        for i, result in decided.items():
            if getattr(result, "audit_id", None):
                by_index[i] = result.audit_id
            if stopped is not None:
                left_undelivered += 1
                continue
            why = (f"the call failed after this answer's decision was recorded, in the rest of its recording (spot-check, "
                   f"review queue) ({failure}), so the caller never received it" if i == after_decision else
                   f"its batch failed on another request after this answer was decided ({failure}), so the caller "
                   "never received it")
            try:
                self._write_undelivered(result, why)
            except Exception as write:
                stopped, left_undelivered = error_text(write), left_undelivered + 1
        decisions = list(by_index.values())
        ids: list[str] = []
        for request in failed:
            if stopped is not None:
                left_errors += 1
                continue
            try:
                rid = self._write_failure(request["question"], exc, context=request.get("context"),
                                          domain=request.get("domain"), source=request.get("source", "api"),
                                          request_id=request.get("request_id"), run_id=request.get("run_id"),
                                          stage=request.get("stage"), strict=True)
            except Exception as write:
                stopped, left_errors = error_text(write), left_errors + 1
                continue
            if rid is not None:
                ids.append(rid)
                if request.get("index") is not None:
                    by_index[request["index"]] = rid
        try:
            if ids:
                exc.audit_id, exc.audit_ids = ids[0], ids  # type: ignore[attr-defined]
            elif decisions and not failed:  # every request decided: the call's record is its (first) decision
                exc.audit_id = exc.decision_audit_id = decisions[0]  # type: ignore[attr-defined]
            if by_index:
                exc.audit_id_by_index = by_index  # type: ignore[attr-defined]
                exc.decision_audit_ids = decisions  # type: ignore[attr-defined]
        except AttributeError:  # an exception type that takes no attributes: the records stand
            pass
        if stopped is None:
            return
        unwritten = (f"{left_errors} of {len(failed)}: {stopped}" if left_errors else
                     f"{left_undelivered} of {len(decided)} answer_not_delivered records: {stopped}")
        if left_errors and left_undelivered:
            unwritten += f"; {left_undelivered} of {len(decided)} answer_not_delivered records too"
        if left_errors + left_undelivered > 1:
            unwritten += "; none was tried after the first that failed"
        if left_errors and isinstance(exc, Exception):
            err = AuditError(f"the request failed ({failure}) and writing its error record to the audit log failed "
                             f"too ({unwritten}); the original error is this one's __cause__")
            if ids:
                err.audit_ids = ids  # type: ignore[attr-defined]
            raise err from exc
        # a KeyboardInterrupt, a SystemExit (the process is stopping), or only answers said undelivered: ``exc`` is
        # raised as it is by the caller; the records it lacks are said as a warning, which never replaces it
        said = ("the request was interrupted" if not isinstance(exc, Exception) else "the request failed")
        warn_aside(f"{said} ({failure}) and writing its {'error' if left_errors else 'answer_not_delivered'} "
                   f"record to the audit log failed ({unwritten})", stacklevel=3)

    def _write_failure(self, question, exc: BaseException, *, context, domain, source: str,
                       request_id: str | None = None, run_id: str | None = None, stage: str | None = None,
                       strict: bool = False, given: Mapping[str, Any] | None = None) -> str | None:
        """The ``error`` record's id; a write that fails is None (or raised, with ``strict``)."""
        if self.audit is None:
            return None

        cut: dict[str, Any] = {}

        def text(v, name: str) -> str:
            t = v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else repr(v)
            if len(t) <= ERROR_TEXT_CHARS:
                return t
            # a request refused before generating (a 10 MB passage over the model's window) is named, not copied:
            # three such calls wrote 32 MB, and a loop of them fills the disk, after which nothing is recorded
            cut[f"{name}_chars"], cut[f"{name}_sha256"] = len(t), hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()
            return t[:ERROR_TEXT_CHARS] + f" [... cut here: {len(t)} characters in all, sha256 in {name}_sha256]"

        record = {
            **self._provenance(),  # which code and policy refused it, as a decision names what decided it
            "source": source,
            "error_type": type(exc).__name__,  # readable in a redacting log, which hashes the message
            "error": text(error_text(exc), "error"),
            "question": text(question, "question"),
            "context": None if context is None else text(_context_as_read(context), "context"),
            "domain": text(domain, "domain") if isinstance(domain, str) else None,
            "model": self.lm.name,
            "model_source": self.lm.source,  # the resolved folder or file (or hub:<id>), beside its short name
            "model_fingerprint": self.lm.fingerprint,
        }
        if request_id is not None:  # the caller's id of the request, as a decision record names it
            record["caller_request_id"] = text(request_id, "caller_request_id")
        if run_id is not None:  # the framework's id of the call, as an answer_not_delivered record names it
            record["run_id"] = text(str(run_id), "run_id")
        if stage is not None:  # where a request the guard took failed: its generation, its scoring
            record["stage"] = stage
        if given is not None:  # a refused check: the answer given to be scored, under "answer" (hashed when redacting)
            record["answer_source"] = "given"
            if given.get("answer") is not None:
                record["answer"] = text(given["answer"], "answer")
        record.update(cut)
        try:  # in the log even when the append raised after writing it (its anchor, a subclass's own mirror)
            return append_written(self.audit, record, kind="error")[0].id
        except Exception:
            if strict:
                raise
            return None

    def _provenance(self) -> dict[str, str]:
        """What every decision and error record names of the code and the policy that wrote it."""
        from . import __version__

        return {"hguard_version": __version__, "hguard_source": source_digest(),  # the code, also between releases
                "policy_id": self._policy_id, "policy_hash": self._policy_hash}

    def _record(self, result: GuardResult, fingerprints: dict | None = None, generation: dict | None = None,
                history: list[dict] | None = None, *, caller_request_id: str | None = None,
                record_request_id: str | None = None, decided: Callable[[GuardResult], None] | None = None,
                run: Mapping[str, str | None] | None = None, given: Mapping[str, Any] | None = None) -> None:
        # ``decided``, when given, is called with ``result`` once its decision is on record (before the spot-check and
        # the review queue, which may raise): a batch that then fails says that answer undelivered, never undecided
        # the record's id is the guard's own, never the caller's: spot-check selection is keyed on it (a caller
        # choosing it would choose which accepted answers are checked) and the queue holds one item per id; the
        # caller's id of the request is kept beside it only when the caller gave one (an auditor tells the two apart)
        record_id = record_request_id or uuid.uuid4().hex
        record: dict[str, Any] = {
            **self._provenance(),
            "request_id": record_id,
            "domain": result.domain,
            "domain_choice": result.domain_choice,
            "model": self.lm.name,
            "model_source": self.lm.source,  # the resolved folder or file (or hub:<id>), beside its short name
            "model_fingerprint": self.lm.fingerprint,
            # the call's own when it had history or a system prompt, and the prompt mode it was asked in (with the
            # context template's fingerprint for a request with context): what the probe's were checked against
            "fingerprints": {**(fingerprints or self.generator.fingerprints),
                             **prompt_fingerprints(RAG if result.context is not None else CLOSED_BOOK),
                             # the embedder and (with context) the grounding scorer: the user's own are named too
                             **self.signal_sources(rag=result.context is not None)},
            # what the model was asked with, beside the fingerprints: an auditor rebuilds the prompt from it (the
            # context template is the package's, named by its fingerprint and hguard_version)
            "generation": generation,
            "probe_id": result.probe_id,
            "thresholds": result.thresholds,
            "guarantee": guarantee_of(self.policy, result.domain),
            "signals": result.signals,
            "risk": result.risk,
            "route": result.route,
            "reasons": result.reasons,
            "steering": result.steering,
            "question": result.question,
            "answer": result.answer,
            "context": result.context,
        }
        if caller_request_id is not None:
            record["caller_request_id"] = caller_request_id
        for key in RUN_KEYS:  # the caller's run ids (checked by Guard.batch), only those given
            if run and run.get(key) is not None:
                record[key] = run[key]
        if history:  # the earlier turns a follow-up ("And for children?") refers to; hashed in a redacting log
            record["history"] = history
        if given is not None:  # scored, not generated (Guard.check): how much of it is the model's own greedy answer
            record["answer_source"] = "given"
            record["given_answer"] = dict(given)
        # an accepted answer served to users is a spot-check candidate; a given one scored for an evaluation is not (it
        # served no one, the monitor's estimate leaves it out, and it would take a day's minimum from served answers)
        live = given is None or not for_evaluation(given)
        dp = self.policy.domain(result.domain) if result.route == ACCEPT and result.domain and live else None
        if dp is not None:  # the rate and seed the spot-check selection was made with, for the monitor to check it
            record["spot_check_rate"] = dp.spot_check_rate
            record["spot_check_seed_id"] = seed_id(self.policy.monitor.seed)
        if self.audit is not None:
            receipt, failed = append_written(self.audit, record, kind="decision")
            if failed is not None:
                # in the log, but the append failed after (its anchor; a subclass's own append mirroring it elsewhere)
                # the caller gets the error, not the answer: an accept in the log must not read as delivered
                result.audit_id, result.audit_hash = receipt.id, receipt.hash
                try:  # its receipt, as the log's own anchor error carries it: the log takes records (Guard.batch)
                    failed.audit_id, failed.receipt = receipt.id, receipt  # type: ignore[attr-defined]
                except AttributeError:
                    pass
                self.record_undelivered(result, "the decision was written to the audit log, but the call failed: the "
                                        f"log's append raised after writing it ({error_text(failed)}), so the caller got "
                                        "that error, not the answer")
                if decided is not None:  # decided, not delivered: a batch failing on it names it, never says it undecided
                    decided(result)
                raise failed
            result.audit_id = receipt.id
            result.audit_hash = receipt.hash
        else:
            result.audit_id = record_id
        if decided is not None:
            decided(result)
        spot, unsettled = self._spot_check(result) if result.route == ACCEPT and live else (None, None)
        queued = True
        if (result.route == REVIEW or spot) and self.review_queue is not None:
            queued = self._enqueue(result, spot)
        if self._unqueued and queued:  # the queue takes answers (again): those it could not take go back now
            self._put_back_unqueued()
        if unsettled is not None:  # its spot-check record is written and the answer queued: what failed after it.
            # The caller gets that error, not the answer (on its .results): as for a decision whose append raised after
            # writing it, an accept in the log must not read as delivered
            unsettled.undelivered_audit_id = self.record_undelivered(  # type: ignore[attr-defined]
                result, "its spot-check selection was written to the audit log, but the log's append raised after "
                f"writing it ({error_text(unsettled.__cause__ or unsettled)}), so the caller got that error, not the "
                "answer")
            raise unsettled

    def _enqueue(self, result: GuardResult, spot: dict | None) -> bool:
        """Queue the answer for a reviewer; whether the queue took it. When the queue cannot take it (locked,
        broken) after the decision was recorded, the result is still returned (a held answer stays held), with a
        reason and a warning, and a ``review_queue_error`` record names the decision: this guard puts the answer
        back once the queue takes answers again (:meth:`_put_back_unqueued`), a guard started on the policy puts
        back any left. Without an audit log nothing could put it back, so the error is raised."""
        from .errors import ReviewQueueError

        assert self.review_queue is not None
        item = {
            "spot_check": bool(spot),
            "audit_id": result.audit_id,
            "question": result.question,
            "context": result.context,
            "answer": result.answer,
            "domain": result.domain,
            "risk": result.risk,
            "signals": result.signals,
            "reasons": ([f"{SPOT_CHECK_REASON}{spot['selected_because']}"] if spot else []) + result.reasons,
            "model_fingerprint": self.lm.fingerprint,
            "probe_id": result.probe_id,
            # to the microsecond, as the decision record and the queue's own times are (not cut to the second)
            "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        }
        try:
            self.review_queue.enqueue(item)
        except ReviewQueueError as exc:
            try:  # a guard starting meanwhile put it back from its decision record while this one waited for the lock
                if not self.review_queue.absent([str(result.audit_id)]):
                    return True  # queued once: no error record, no warning that it is not
            except Exception:
                pass
            if self.audit is None:
                raise
            later = "a guard started on this policy puts it back in the queue from it"
            if self.audit.redact:  # the log holds hashes: the text must be kept somewhere a later start can read it
                try:
                    self.review_queue.keep_pending(item)
                    later = (f"a guard started on this policy puts it back from the copy kept beside the queue "
                             f"({self.review_queue.pending_path}; the redacting log holds only hashes)")
                except OSError as spool:
                    later = (f"if this process ends first it is lost to reviewers: the redacting log holds only hashes and "
                             f"no copy could be kept beside the queue ({error_text(spool)})")
            why = (f"the review queue could not take this answer now ({error_text(exc)}); the decision is in the audit log (audit id "
                   f"{result.audit_id}): this guard puts it back in the queue once the queue takes answers again, and "
                   + later)
            try:
                self.audit.append({"decision_audit_id": result.audit_id, "error": str(exc)}, kind="review_queue_error")
            except Exception:  # the decision itself is on record; the put-back reads it
                pass
            with self._unqueued_lock:
                if len(self._unqueued) < UNQUEUED_HELD:  # beyond: the next guard start puts the rest back
                    self._unqueued.append(item)
            if not spot:  # a spot-checked answer is accepted, as its record says: the caller is not told it was
                # picked, nor that it is held (an auditor's trial read "puts it back in the queue" on an accept)
                result.reasons.append(why)
            warnings.warn(why, UserWarning, stacklevel=4)
            return False
        return True

    def _put_back_unqueued(self) -> None:
        """Put back in the review queue the answers it could not take when they were decided (see :meth:`_enqueue`),
        now that it takes answers again, oldest first, and say so in the audit log (a ``review_requeued`` record,
        as a guard start writes): a long-running guard no longer leaves them out of reviewers' sight until its
        next start. Those another process put back meanwhile are skipped; those still refused wait for the next."""
        from .errors import HGuardError

        with self._unqueued_lock:
            waiting, self._unqueued = self._unqueued, []
        if not waiting or self.review_queue is None:
            return
        put_back: list[str] = []
        done = 0
        try:
            absent = self.review_queue.absent([item["audit_id"] for item in waiting])
            for item in waiting:
                if item["audit_id"] in absent:
                    try:
                        self.review_queue.enqueue(item)
                        put_back.append(item["audit_id"])
                    except HGuardError:
                        if self.review_queue.absent([item["audit_id"]]):
                            raise
                        # else another process's guard start put it back meanwhile
                done += 1
        except HGuardError:  # refused again: kept for the next decision (and the next start)
            with self._unqueued_lock:
                self._unqueued[:0] = waiting[done:]
        if put_back and self.audit is not None and self.audit.redact:
            try:  # their copies kept beside the queue (a redacting log's) are not needed any more
                self.review_queue.forget_pending()
            except Exception:  # the queue refused again: the next start drops them
                pass
        if put_back and self.audit is not None:
            try:
                self._record_requeued(self.review_queue, from_held=put_back, reason=(
                    "the review queue could not take these answers when they were decided (each has its "
                    "review_queue_error record); put back by the guard that decided them, from the answers it held"))
            except Exception:  # the items are back in the queue; the records of their failure stand
                pass

    def _record_requeued(self, queue: Any, *, from_records: Sequence[str] = (), from_pending: Sequence[str] = (),
                         from_held: Sequence[str] = (), decided: Sequence[str] = (), reason: str) -> None:
        """The ``review_requeued`` record of the items put back in ``queue``, a guard start's and a running guard's
        in one shape: each item's source (its decision record, the copy kept beside the queue, or the answer held by
        the guard that decided it) is in its list, every list there, so an auditor reads where each came from; those
        put back decided with the verdict the queue committed (its record in the chain) are in ``decided_from_verdict_records``."""
        self.audit.append({"item_ids": [*from_records, *from_pending, *from_held],
                           "from_decision_records": list(from_records), "from_pending_copies": list(from_pending),
                           "from_held_answers": list(from_held), "decided_from_verdict_records": list(decided),
                           "queue": str(queue.path), "reason": reason},
                          kind="review_requeued")

    def _spot_check(self, result: GuardResult) -> tuple[dict | None, AuditError | None]:
        """The seeded spot-check selection of one accepted answer (see hguard.monitor), recorded when selected, and
        the error to raise once the answer is queued, when the selection's record was written and its append then
        raised (its anchor; an AuditLog subclass's own work after ``super().append``), else None: an AuditError with
        the answer on ``.results``, the selection's ``receipt`` (its record is in the log, which takes records) and
        the sink's error as its cause; :meth:`_record` says the answer undelivered before raising it. A record not
        written is raised here: the answer is not queued (a guard start puts it back from the decision)."""
        from .monitor import SPOT, spot_check_decision

        if result.domain is None:
            return None, None
        day = time.strftime("%Y-%m-%d", time.gmtime())
        with self._spot_lock:
            taken = self._spot_days.get((result.domain, day), 0)
            spot = spot_check_decision(self.policy, result.domain, result.audit_id, taken)
            if spot is None:
                return None, None
            if not taken:  # the domain's first of the day: the minimum per day reads only today's counts, so the
                # other days' go (a service running for years kept one entry per domain and day)
                for key in [k for k in self._spot_days if k[1] != day]:
                    del self._spot_days[key]
            self._spot_days[(result.domain, day)] = taken + 1
        if self.audit is None:
            return spot, None
        decision = f"the decision {result.audit_id} ({result.route}, domain {result.domain!r})"
        try:  # its own id; decision_audit_id names the decision
            receipt, failed = append_written(self.audit, dict(spot), kind=SPOT)
        except AuditError as exc:  # the accept is on record: the caller must learn that it was decided
            err = type(exc)(
                f"{decision} is recorded, but its spot-check selection could not be ({error_text(exc)}): the monitor's "
                "selection check names it as selected and not recorded; the answer is on this error's .results, to "
                "deliver or drop")
            err.results = [result]  # type: ignore[attr-defined]
            raise err from exc
        if failed is None:
            return spot, None
        # written, then its append raised: the selection stands (the monitor finds it, the answer is queued); the
        # caller learns what failed after it, on an error of its own (the sink's error is left as it was raised)
        unsettled = (type(failed) if isinstance(failed, AuditError) else AuditError)(
            sink_failed_after(f"the spot-check selection of {decision}", receipt, failed)
            + "; the selection stands (the answer goes to the review queue as any selected one), and the answer is on "
            "this error's .results, to deliver or drop (the log says it was not delivered: an answer_not_delivered "
            "record, its id on this error's undelivered_audit_id)")
        unsettled.results = [result]  # type: ignore[attr-defined]
        unsettled.receipt = receipt  # type: ignore[attr-defined]  # the selection's: the log takes records (Guard.batch)
        unsettled.__cause__ = failed
        return spot, unsettled


def request_error(exc: _E, index: int) -> _E:
    """The error of a failed batch (:meth:`_Recording.record_failed_requests`) for its request ``index`` alone: a copy of
    ``exc`` (its type, message, traceback and cause) whose ``audit_id`` names that request's own record, its ``error``
    record, or, for a request decided before the batch failed (its answer said undelivered), its decision, also as
    ``decision_audit_id``; for a framework that hands each input of a batch its own outcome (LangChain's batch with
    ``return_exceptions``), whose audit handler records per input the id its error carries. ``exc`` itself when it
    names no record for ``index`` or cannot be copied. The copy is made without its type's constructor, which need
    not take its own ``args`` back (``__init__(self, code)`` building the message from ``code``: called again with the
    finished message, it said "model server error model server error 503")."""
    rid = (getattr(exc, "audit_id_by_index", None) or {}).get(index)
    if rid is None:
        return exc
    cls = type(exc)
    try:
        try:  # BaseException.__new__ keeps the args (and an OSError's errno, strerror, filename); no __init__ runs
            own = cls.__new__(cls, *exc.args)
        except Exception:  # a __new__ of its own that takes other arguments
            own = cls.__new__(cls)
        own.args = exc.args
        own.__dict__.update(exc.__dict__)
    except Exception:
        return exc
    own.__traceback__, own.__cause__, own.__context__ = exc.__traceback__, exc.__cause__, exc.__context__
    own.__suppress_context__ = exc.__suppress_context__
    for name in ("audit_id_by_index", "audit_ids", "decision_audit_ids", "decision_audit_id"):
        own.__dict__.pop(name, None)
    try:
        own.audit_id = rid  # type: ignore[attr-defined]
        if rid in (getattr(exc, "decision_audit_ids", None) or ()):
            own.decision_audit_id = rid  # type: ignore[attr-defined]
        else:
            own.audit_ids = [rid]  # type: ignore[attr-defined]
    except AttributeError:
        return exc
    return own


def _open_queue(path, audit, busy_timeout: float):
    from .review.queue import ReviewQueue

    # verdicts given later through this queue land in the same audit chain as the decisions
    return ReviewQueue(path, audit=audit, busy_timeout=busy_timeout)
