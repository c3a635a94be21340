"""The guard: one place that wires model, recorder, calibrated domains, signals, policy, audit and review queue.

One guarded answer is one generation: the domain's probe neurons are recorded and the confidence
signals read while the model answers. Grounding (when context is given) is scored on the finished
answer. Whatever goes wrong while scoring becomes a reason and a ``review`` route, never an accept.
Every decision is appended to the audit log before the result is returned, and answers routed to
review are enqueued; if either write fails the caller gets the error, not an unrecorded answer.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, NoReturn, Sequence

import numpy as np

from ._guard_plan import DomainPlan, Route, build_plan, folder_missing, read_probe_folders
from ._decoding import _check_stop
from ._policy_thresholds import accepts_uncertified
from ._audit_records import RUN_KEYS, run_id_of
from ._guard_records import _open_queue, _Recording
from ._guard_result import (REVIEW_MARK, GuardResult, _check_text, _join_context, context_given,  # noqa: F401
                            kept_passages, left_out_passages)
from ._guard_scoring import CANCELLED_HOLD, NO_ROUTER_QUESTIONS, REMOVED_DOMAIN, _Cancelled, _EarlyAbstain, _near, _Scoring, no_conflict_detector
from ._json import json_safe
from ._resources import DEFAULT_POLICY, public_seed_warning
from .domain import CalibratedDomain
from .audit import append_warned
from .errors import (AuditError, HGuardError, InputError, ModelNotFoundError, PolicyError, ProbeError, UsageError, cut_text,
                     error_text, install_extra, shown, strict_bool)
from .generation import Generator
from .models import LoadedModel, load_model
from ._policy_load import checked_policy
from .policy import Policy, Thresholds, choose_domain, load_policy, unnamed_files_warning
from .settings import CLOSED_BOOK, RAG, GenerationSettings, calibrate_hint
from .signals.embedding import router_similarity, unit_embedder


#: the audit record kind of :meth:`Guard.rewrite_query`
RETRIEVAL_QUERY = "retrieval_query"
#: the audit record kinds of :meth:`Guard.add_domain` and :meth:`Guard.remove_domain`: the probes serving a domain changed
DOMAIN_ADDED = "domain_added"
DOMAIN_REMOVED = "domain_removed"


@dataclass(frozen=True)
class QueryRewrite:
    """What :meth:`Guard.rewrite_query` generated, and the id of its ``retrieval_query`` audit record."""

    text: str
    audit_id: str | None
    step: str


#: the longest request_id or domain name a call may pass: each is copied into every record of the request (a 3 MB
#: domain name was answered, and written into the decision, its reasons and the review queue, 18 MB a call)
MAX_NAME_CHARS = 256
#: ``Guard._check_input``'s "no answer given" (an answer of None is given, and refused as not text)
_NO_ANSWER = object()


def unlisted_domain(name: str) -> str:
    """Why a calibrated domain the policy does not list is not scored (its requests go to ``unknown_domain``)."""
    return (f"domain {name!r} is calibrated, but the policy does not list it, so no answer is scored by its probe: a "
            f"request naming it goes to the policy's unknown_domain route, and one nearest it to review; add a "
            f"[domains.{name}] table to the policy file and start the guard on it to serve it")


def _named(domain: object) -> str:
    """The name of the calibrated domain a guard is to serve; InputError for anything else."""
    if not isinstance(domain, CalibratedDomain) or not domain.name:
        raise InputError(f"add_domain takes a named CalibratedDomain, got {domain!r:.80}; load one with CalibratedDomain.load")
    return domain.name


def batch_refused(refused: Sequence[tuple[int, InputError]], n: int) -> InputError:
    """The error a batch of ``n`` inputs raises when some are refused (``refused``: each one's index and its recorded
    error, :meth:`Guard._refused`) before anything is generated: the first refusal, naming how many and which when
    more than one, with the audit ids of all and ``refused`` (index -> its recorded error), for a caller that answers
    the others alone (LangChain's batch with return_exceptions). An adapter that checks its inputs itself before the
    batch (:meth:`Guard._check_input`) raises the same."""
    first = refused[0][1]
    if len(refused) > 1:
        first = InputError(f"{first}; {len(refused)} of the {n} inputs are refused (questions "
                           f"{', '.join(str(i) for i, _ in refused)}); nothing was generated")
    first.audit_id = refused[0][1].audit_id  # type: ignore[attr-defined]
    first.audit_ids = [e.audit_id for _, e in refused]  # type: ignore[attr-defined]
    first.refused = dict(refused)  # type: ignore[attr-defined]
    return first


class Guard(_Scoring, _Recording):
    """Guards one local chat model under a policy.

    ``Guard.from_policy("policy.toml")`` loads the default model (or ``model=``), the probes named
    by the policy, the audit log and the review queue. ``invoke`` answers one question; ``batch``,
    ``ainvoke`` and ``abatch`` are the batch and async forms.
    """

    def __init__(
        self,
        lm: LoadedModel,
        policy: Policy,
        *,
        probes: Mapping[str, CalibratedDomain | tuple[Any, dict]] | None = None,
        audit=None,
        review_queue=None,
        embedder=None,
        grounding=None,
    ):
        """A guard of ``lm`` under ``policy`` (:meth:`from_policy` loads both, and opens the policy's log and queue).
        Pieces of your own (README, "Extending hguard"); whatever they raise or return that cannot be read holds the
        answer for review, naming them, or makes the call raise, never accepts it:

        - ``probes``: calibrated domains by name (:class:`~hguard.domain.CalibratedDomain`, or ``(probe, metadata)``).
        - ``audit``: an :class:`~hguard.audit.AuditLog` (a subclass may override ``append``, calling
          ``super().append`` first); if it raises, the call raises.
        - ``review_queue``: a :class:`~hguard.review.queue.ReviewQueue` (a subclass may override ``enqueue``, calling
          ``super().enqueue`` first); a ``ReviewQueueError`` leaves the answer held and put back later, another
          exception makes the call raise.
        - ``embedder``: ``encode(list of str)`` returning one vector per text, shape ``(n, d)``; it chooses the domain
          and feeds the bundled grounding scorer. Each vector is scaled to length 1 (a zero or non-finite one fails,
          naming it); the bundled model's are already.
        - ``grounding``: ``score(question, answer, context)`` returning a mapping with ``"grounding"`` (support in
          [0, 1]) and the signals the RAG mergers read (those of :class:`~hguard.signals.grounding.GroundingScorer`).

        A router of your own overrides :meth:`choose_domain` in a subclass."""
        if not isinstance(lm, LoadedModel):
            raise InputError(f"lm must be a loaded model, got {type(lm).__name__} {lm!r:.60}; load one with "
                             "hguard.models.load_model(...), or pass model=... to Guard.from_policy")
        from .audit import AuditLog
        from .review.queue import ReviewQueue

        for name, given, what, kind in (("audit", audit, "an AuditLog (hguard.audit.AuditLog(path))", AuditLog),
                                        ("review_queue", review_queue, "a ReviewQueue (hguard.review.ReviewQueue(path))",
                                         ReviewQueue)):
            if isinstance(given, (str, Path)):  # a path here was only refused at the first answer, after its record
                raise InputError(f"{name} takes {what}, got the path {str(given)!r}; or set its path in the policy")
            if given is not None and not isinstance(given, kind):  # audit=5 failed as "'int' object has no attribute"
                raise InputError(f"{name} takes {what} or None, got {type(given).__name__} {shown(given, 60)}")
        for name, given, method in (("embedder", embedder, "encode(list of str)"), ("grounding", grounding,
                                                                                 "score(question, answer, context)")):
            # a model's name or path ("all-MiniLM-L6-v2") held every answer with "encode() argument 'encoding' must be
            # str" (str.encode), an object without the method with an AttributeError, each as a reason per answer
            if given is not None and (isinstance(given, (str, bytes, os.PathLike))
                                      or not callable(getattr(given, method.split("(")[0], None))):
                raise InputError(f"{name} takes an object with the method {method}, got {type(given).__name__} "
                                 f"{shown(given, 60)}" + ("; a name or path is not loaded here: load the model and pass "
                                                          "it" if isinstance(given, (str, bytes, os.PathLike)) else "")
                                 + "; or leave it None for the bundled one")
        if probes is not None and not isinstance(probes, Mapping):  # a list of them failed as "has no attribute 'items'"
            raise InputError(f"probes takes calibrated domains by name (a dict of name -> CalibratedDomain or "
                             f"(probe, metadata)), got {type(probes).__name__} {shown(probes, 60)}")
        for name, entry in (probes or {}).items():
            if not isinstance(entry, CalibratedDomain) and not (isinstance(entry, tuple) and len(entry) == 2):
                raise InputError(f"probes[{name!r}] takes a CalibratedDomain or a (probe, metadata) pair, got "
                                 f"{type(entry).__name__} {shown(entry, 60)}; load one with CalibratedDomain.load(...)")
        policy = checked_policy(policy)
        self._lm = lm  # read through .lm: the generator below answers with this model, and every record names it
        self._policy = policy  # its own copy (validated again above): kept as started on, read through .policy
        self.settings = GenerationSettings.from_policy(policy.generation)  # how this guard generates
        self._generator = Generator(lm, settings=self.settings)  # read through .generator: it answers with .lm
        self._domains: dict[tuple[str, str], CalibratedDomain] = {}  # by (name, prompt mode)
        self._plans: dict[str, DomainPlan] = {}  # built when a domain is loaded, read per request
        self.probe_errors: dict[str, str] = {}
        # by (name, prompt mode): why a probe the guard was given cannot read its model (another layout); a domain
        # whose other mode serves keeps serving it, and its requests in this mode go to review with this reason
        self._refused_modes: dict[tuple[str, str], str] = {}
        # the calibration questions of calibrations read but not serving (removed, another layout's): automatic
        # choice still compares a question with them, so that a domain switched off does not hand its questions on
        self._unserved_questions: dict[tuple[str, str], tuple[str, ...]] = {}
        self._change_lock = threading.Lock()  # add_domain, remove_domain: record, then swap
        for name, entry in (probes or {}).items():
            if not isinstance(entry, CalibratedDomain):
                entry = CalibratedDomain.from_metadata(entry[0], entry[1], name=name)
            self._serve(replace(entry, name=name))
        self.audit = audit
        self.review_queue = review_queue
        self._embedder = unit_embedder(embedder)  # its rows scaled to unit length, or a failure naming it
        self._grounding = grounding
        self._router: dict[str, dict[str, np.ndarray]] | None = None  # per prompt mode
        self._lazy_lock = threading.RLock()  # grounding takes it, then reads embedder
        from .monitor import MonitorState, policy_hash, policy_id

        # the monitor's tightenings, read before routing (the chain is replayed if the state file is missing)
        self.monitor_state = MonitorState(policy.monitor.state, audit.path if audit is not None else policy.audit.path)
        if audit is not None:
            self.monitor_state.use_log(audit)
        self._policy_id = policy_id(policy)
        self._policy_hash = policy_hash(policy)
        # (domain, UTC day) -> spot-checks taken (daily minimum); today's only: _spot_check drops the other days'
        self._spot_days: dict[tuple[str, str], int] = {}
        self._spot_lock = threading.Lock()
        self._unqueued: list[dict] = []  # review items the queue could not take, put back once it takes answers again
        self._unqueued_lock = threading.Lock()
        self._undelivered: OrderedDict[str, None] = OrderedDict()  # the latest decisions said never delivered: each once
        self._undelivered_lock = threading.Lock()

    @property
    def lm(self) -> LoadedModel:
        """The model this guard started on: it answers every request and every record names its fingerprint."""
        return self._lm

    @lm.setter
    def lm(self, value: LoadedModel) -> None:
        # the generator keeps answering with the model the guard started on: a model set here was named in the
        # records (name, fingerprint, source) and checked against the probes, while another one answered
        raise UsageError("Guard.lm cannot be replaced: a guard answers with the model it started on (its generator "
                         "holds it, and every record names it); start a new guard on the other model with "
                         "Guard.from_policy(policy, lm=other) or Guard(other, policy, ...)")

    @property
    def generator(self) -> Generator:
        """What answers for this guard: the model it started on, under the policy's generation settings."""
        return self._generator

    @generator.setter
    def generator(self, value: Generator) -> None:
        # another generator answers with its own model, while every record names the guard's (lm): refused as lm is
        raise UsageError("Guard.generator cannot be replaced: a guard answers with the model and generation settings it "
                         "started on, and every record names them; start a new guard on the other model with "
                         "Guard.from_policy(policy, lm=other)")

    @property
    def policy(self) -> Policy:
        """The policy this guard started on (frozen: its domains and probes cannot be changed in place either)."""
        return self._policy

    @policy.setter
    def policy(self, value: Policy) -> None:
        # the thresholds were fitted to the policy the guard started on and every record carries its policy_hash: a
        # policy swapped in was read per decision for some settings and not for others, under the old hash
        raise PolicyError("Guard.policy cannot be replaced: a guard keeps the policy it started on (its thresholds were "
                          "fitted to it and its records carry its policy_hash); start a new guard on the changed policy "
                          "with Guard.from_policy(policy) (Guard.add_domain swaps a domain's probes in a running guard)")

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_policy(cls, policy: str | Path | Policy | None = None, *, model: str | None = None, lm: LoadedModel | None = None, **kw) -> "Guard":
        """The guard a policy file describes: its model (``model`` overrides the policy's ``model``; ``lm``, an
        already loaded model, both), probes, audit log, review queue and monitor state. ``kw`` goes to :class:`Guard`
        (``audit``, ``review_queue``, ``embedder``, ``grounding``: pieces of your own, see its ``__init__``); called on
        a subclass, it starts that subclass (one overriding :meth:`choose_domain`, say)."""
        from .audit import AuditLog

        # only None is the default policy: an unset setting read as "" is refused, not served the bundled one
        pol = load_policy(DEFAULT_POLICY if policy is None else policy) if policy is None or isinstance(
            policy, (str, os.PathLike)) else checked_policy(policy)
        for folder in pol.probe_folders:
            if not Path(folder).is_dir():
                # a wrong folder would send every answer to review with no word about why: refuse to start
                where = f" (probes in {pol.source}, whose relative paths start at its folder)" if pol.source is not None else ""
                default = (pol.model if model is None else model) == "default"
                raise PolicyError(
                    f"the probe folder {str(folder)!r}{where} {folder_missing(folder)}; point probes at the folder "
                    "`hguard calibrate --out` wrote" + (", or use probes = \"package:smollm2-135m\" for the reference "
                    "probes" if default else " for this model (the reference probes are the default model's)")
                )
        if lm is None:
            try:
                lm = load_model(pol.model if model is None else model)  # model="" is refused, not the policy's
            except ModelNotFoundError as exc:
                if model is not None or pol.source is None:
                    raise
                raise ModelNotFoundError(f"{exc} (from `model` in the policy file {str(pol.source)!r})") from None
        guard = cls(lm, pol, **kw)
        if pol.probe_folders:  # what a guard starts with: each decision names its probe_id, so no record of its own
            guard._load_probes(pol.probe_folders)
        calibrated = {name for name, _ in guard._domains} | set(guard.probe_errors)
        for name in sorted(set(pol.domains) - calibrated):  # routed to, but never calibrated (or its file refused)
            # a refused file is named by its file name ("hr.rag" for the RAG probe): said under its domain
            refused = [f"{k}: {guard.probe_errors.pop(k)}" for k in sorted(guard.probe_errors) if k.startswith(f"{name}.")]
            guard.probe_errors[name] = ("its probe file was refused (" + "; ".join(refused) + ")" if refused
                                        else "no probe folder of the policy calibrates it")
        if guard.generator.weights_problem:  # edited in memory since loading: every answer is held (unread_neurons)
            warnings.warn(f"{guard.generator.weights_problem}; until then every answer is held for review, its risk "
                          "unscored", UserWarning, stacklevel=2)
        for warning in guard.fingerprint_mismatches().values():  # served, but calibrated under another setup
            warnings.warn(warning, UserWarning, stacklevel=2)
        for warning in guard.generation_mismatches().values():  # served, but calibrated on other generation settings
            warnings.warn(warning, UserWarning, stacklevel=2)
        rag_domains = sorted(name for name, plan in guard._plans.items() if plan.rag is not None and name in pol.domains)
        if rag_domains and (other := guard.foreign_grounding()) is not None:  # a scorer or embedder of the user's own
            from .signals.grounding import bundled_grounding_name

            warnings.warn(
                f"grounding is scored by {other}, but the RAG merger of domain(s) {', '.join(map(repr, rag_domains))} was "
                f"fitted on the values of hguard's bundled scorer ({bundled_grounding_name()}): its values are read as "
                "if they were that scorer's, so these domains' risk and accept thresholds carry no calibration guarantee "
                "with context (each such answer's reasons say so; each record's fingerprints name the scorer and the "
                "embedder); leave grounding= and embedder= out to use the bundled ones", UserWarning, stacklevel=2)
        for warning in guard.uncertified_accept_thresholds().values():  # said once, when the guard starts
            warnings.warn(warning, UserWarning, stacklevel=2)
        for warning in guard.refit_warnings():  # what calibrate would say at the policy's target
            warnings.warn(warning, UserWarning, stacklevel=2)
        seed_warning = public_seed_warning(pol)
        if seed_warning:
            warnings.warn(seed_warning, UserWarning, stacklevel=2)
        for name, plan in sorted(guard._plans.items()):  # a knowledge-conflict check asked for that cannot run
            dp = pol.domain(name)
            if plan.rag is not None and not plan.rag.knowledge_conflict and (dp is None or dp.knowledge_conflict == "review"):
                held = "every answer with context in it is held for review"
                if dp is None:  # a probe file the policy has no table for (a misspelt [domains.X]?): the default applies
                    held += (f" (the policy has no [domains.{name}] table, so the default knowledge_conflict = 'review' "
                             "applies)")
                warnings.warn(no_conflict_detector(name, held=held), UserWarning, stacklevel=2)
        for name in sorted(guard._plans):  # a steering setting the domain's probes cannot apply, said once
            if (unsteered := guard._unsteered(name)) is not None:
                fix = ("" if (name, CLOSED_BOOK) in guard._refused_modes else  # its load failure names its own fix
                       f"; remove [domains.{name}.steering], or calibrate the domain closed-book too "
                       f"({calibrate_hint(guard.lm, guard.settings, name, rag=False)}) to steer it")
                warnings.warn(f"{unsteered} (each record's steering says so){fix}", UserWarning, stacklevel=2)
        for name, plan in sorted(guard._plans.items()):  # a probe whose scores carry no signal, said once
            if said := guard._no_router_questions(name):
                warnings.warn(said, UserWarning, stacklevel=2)
            for cd in (plan.closed_book, plan.rag):
                # an older calibration's file whose scores would certify an accept threshold under this policy: what
                # the current code withdraws or cannot check, said once (a file that certifies nothing loses nothing)
                stale = [w for w in (cd.in_sample_thresholds, None if cd.held_out_scores is not None or cd.calibration_scores
                                     is None else "it carries no held-out answers, so an accept threshold they would "
                                     "reject is not withdrawn") if w] if cd is not None and name in pol.domains else []
                if stale and cd is not None and getattr(cd._fit_thresholds(pol.domain(name)), "accept_below", 0) > 0:  # noqa: SLF001
                    again = calibrate_hint(guard.lm, guard.settings, name, rag=cd is plan.rag)
                    warnings.warn(f"domain {name!r}{' (RAG)' if cd is plan.rag else ''}: calibrated by an older release: "
                                  f"{'; '.join(stale)}; recalibrate it with its data ({again}) to certify an accept "
                                  "threshold", UserWarning, stacklevel=2)
                why = cd.probe.chance_warning() if cd is not None else None
                if why:
                    warnings.warn(f"domain {name!r}{' (RAG)' if cd is plan.rag else ''}: {why}; its risk rests on the "
                                  "other signals and noise, so no hand-set accept_below should be trusted on it: collect "
                                  "more labelled answers and recalibrate", UserWarning, stacklevel=2)
        for name, problem in sorted(guard.probe_errors.items()):  # a domain that fails closed, said once too
            fallback = ("" if not pol.context_fallback_domain else
                        "; it is the context_fallback_domain, so a request with context that no listed domain matches "
                        "goes to review too" if pol.context_fallback_domain == name else
                        f"; a request with context that no listed domain matches is scored by context_fallback_domain "
                        f"{pol.context_fallback_domain!r}")
            compared = any(n == name and qs for (n, _), qs in guard._read_questions())
            chosen = ("a question automatic domain choice finds nearest it goes to review too, not to another domain"
                      if compared else
                      "no question can be compared with it, so every answer whose domain automatic choice picks is "
                      "held for review (name the domain with domain=..., or give it a probe file)"
                      if name in pol.domains else
                      "its calibration questions could not be read, so automatic domain choice cannot keep its questions "
                      "from the listed domains")
            warnings.warn(f"domain {name!r} is not scored: {problem}; a request naming it goes to {pol.unknown_domain}, "
                          f"and {chosen}{fallback}", UserWarning, stacklevel=2)
        for (name, mode), why in sorted(guard._refused_modes.items()):  # one mode fails closed, the other serves
            if name in guard._plans and name in pol.domains:
                held, other, served = ("RAG", "with", "closed-book") if mode == RAG else ("closed-book", "without", "RAG")
                warnings.warn(f"domain {name!r} ({held}) is not scored: {why}; requests {other} context naming it go to "
                              f"review (its {served} probe scores the others)", UserWarning, stacklevel=2)
        if kw.get("embedder") is None and importlib.util.find_spec("sentence_transformers") is None:
            warnings.warn("sentence-transformers is not installed: no question can be matched to a domain or an answer "
                          f"grounded in its context, so every answer goes to review; {install_extra('embeddings')}",
                          UserWarning, stacklevel=2)
        # a policy built in code that names no log or queue: said before they are made in the working folder
        in_working_folder = unnamed_files_warning(pol, audit=guard.audit is None, queue=guard.review_queue is None)
        if in_working_folder:
            warnings.warn(in_working_folder, UserWarning, stacklevel=2)
        if guard.audit is None and pol.audit.path is not None:
            guard.audit = AuditLog.from_policy(pol)
        if guard.audit is not None:  # a log this writer would be refused (key, anchor) is refused now, not at the first answer
            guard.audit.check_writable()
            guard.monitor_state.use_log(guard.audit)  # its key and anchor check the chain the state is replayed from
        if guard.review_queue is None and pol.review.queue is not None:
            guard.review_queue = _open_queue(pol.review.queue, guard.audit, pol.review.busy_timeout)
        guard._requeue_missing()
        return guard

    def _late_spot_check(self, decision: Mapping[str, Any], u: float, since: int) -> dict:
        """Write the spot-check record of an accepted decision the seed selected (``u`` below the rate recorded
        with it) whose own record is missing (the process stopped between the two), saying so, so that the
        monitor's selection check and the review queue hold it; returns it as the log holds it (slim). Unless
        another guard starting at once wrote it after byte ``since`` (where this start's reading began): then that
        one is returned (each of three workers starting together wrote one). Written, and then its append raised (its
        anchor could not be written after it): the record stands, as it is, and a warning says what failed."""
        from .monitor import SPOT

        rate, domain = decision["spot_check_rate"], decision["domain"]
        spot = {"decision_audit_id": decision["id"], "domain": domain, "u": u, "rate": rate,
                "min_per_day": self.policy.domain(domain).spot_check_min_per_day,  # type: ignore[union-attr]
                "selected_because": f"u {u:.6f} < spot_check_rate {rate} (recorded when a guard next started: "
                                    "the process stopped before the spot-check record)"}  # fmt: skip
        theirs: list[Mapping[str, Any]] = []

        def written(r: Mapping[str, Any]) -> bool:
            if r.get("kind") == SPOT and r.get("decision_audit_id") == decision["id"]:
                theirs.append(r)
            return bool(theirs)

        def append(record: dict, *, kind: str) -> Any:
            return self.audit.append_unless_written(record, kind=kind, since=since, written=written)

        # on record though its append raised after: the put-back goes on from it (it gave up checking the whole queue)
        receipt = append_warned(self.audit, dict(spot), kind=SPOT, append=append, stacklevel=4,
                                what=f"the late spot-check record of decision {decision['id']}")
        if receipt is None:
            return {k: theirs[0].get(k) for k in ("id", "kind", "route", "domain", "spot_check_rate",
                                                  "decision_audit_id", "selected_because")}
        return {**spot, "kind": SPOT, "id": receipt.id}

    def _signed(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` holds a valid MAC under the audit log's key (every record, without a key)."""
        from ._audit_records import _mac_holds

        key = self.audit._key if self.audit is not None else None  # noqa: SLF001
        return key is None or _mac_holds(key, record)

    def _requeue_missing(self) -> None:
        """Put back in the review queue the answers the audit log holds as routed to review (or spot-checked)
        that a crash or a locked queue kept out of it, and say so (in the log and as a warning)."""
        if self.review_queue is None or self.audit is None or not Path(self.audit.path).exists():
            return
        from .monitor import SPOT, _seed_replaced_before_ids, seed_id, selection_u, under_other_seed
        from .review.queue import Recovered, item_wanted

        queue = self.review_queue
        try:
            # One pass holding only what is missing: each stretch of promised items is looked up in the queue
            # as it is read, so neither a long log nor a long queue is held in memory.
            missing: set[str] = set()
            spots: dict[str, dict] = {}  # spot-check records of decisions the queue lacks
            spotted: set[str] = set()  # decisions with a spot-check record (a few per cent of the accepted)
            selected: dict[str, tuple[dict, float]] = {}  # accepted decisions the seed picked: (slim, u)
            spot_u: dict[str, dict] = {}  # the u each spot-check record holds, by decision
            pending: list[str] = []
            keep = ("id", "kind", "route", "domain", "spot_check_rate", "decision_audit_id", "selected_because")
            forged: set[str] = set()  # records of a keyed log without a valid MAC: nobody's to review
            since = Path(self.audit.path).stat().st_size  # what another guard starting at once writes lies after it
            for r in self.audit:
                kind = r.get("kind")
                if kind == "decision" and r.get("route") == "accept":
                    rate = r.get("spot_check_rate")
                    if isinstance(rate, (int, float)) and isinstance(r.get("id"), str) \
                            and self.policy.domain(r.get("domain")) is not None:
                        u = selection_u(self.policy.monitor.seed, r["id"])
                        if u < rate and self._signed(r):
                            slim = {k: r.get(k) for k in keep}
                            if "spot_check_seed_id" in r:
                                slim["spot_check_seed_id"] = r["spot_check_seed_id"]
                            selected[r["id"]] = (slim, u)
                    continue
                if kind == SPOT:
                    spotted.add(str(r.get("decision_audit_id")))
                    spot_u[str(r.get("decision_audit_id"))] = {"u": r.get("u")}
                if (want := item_wanted(r)) is None:
                    continue
                if kind == SPOT:
                    if not self._signed(r):
                        forged.add(str(r.get("id")))
                        continue
                    spots[want[0]] = {k: r.get(k) for k in keep}
                pending.append(want[0])
                if len(pending) >= 5000:
                    missing |= queue.absent(pending)
                    pending = []
            # one selected under another seed than the policy's (replaced since, as the README advises for a known
            # one) was not this seed's to pick: no spot-check record is missing for it (the monitor counts it apart)
            ours = seed_id(self.policy.monitor.seed)
            unspotted = {d: s for d, s in selected.items() if d not in spotted}
            replaced = False
            if any("spot_check_seed_id" not in d for d, _u in unspotted.values()):
                # some record no seed id (before 0.3.0): the seed was replaced since them when none of their
                # spot-checks' u is what it gives (read again for those alone, the log is not held in memory)
                idless = [{k: r.get(k) for k in keep} for r in self.audit if r.get("kind") == "decision"
                          and "spot_check_seed_id" not in r and r.get("id") in spot_u]
                replaced = _seed_replaced_before_ids(self.policy, idless, spot_u)
            for did, (decision, u) in unspotted.items():
                if not under_other_seed(decision, ours, replaced):
                    late = self._late_spot_check(decision, u, since)
                    spots[did] = late
                    pending.append(did)
            missing |= queue.absent(pending)
            spots = {d: r for d, r in spots.items() if d in missing}
            unsigned: list[dict] = []
            # the decisions, and the verdicts the chain holds on them (an item is put back decided with its verdict)
            found = [r for r in self.audit if (r.get("id") if r.get("kind") == "decision" else r.get("decision_audit_id")
                                               if r.get("kind") == "review_verdict" else None) in missing] if missing else []
            records: list[dict] = []  # judged record by record: a forged twin blocks nothing, and is named too
            for r in found:
                (records if self._signed(r) else unsigned).append(r)
            forged |= {r["id"] for r in unsigned}
            signed = {r["id"] for r in records if r.get("kind") == "decision"}
            records += [sp for d, sp in spots.items() if d in signed]
            done = queue.recover(records) if missing else Recovered([], [], [], {}, {}, {})
            if not missing and queue.pending_path.exists():  # copies of items queued since (a drop that failed then)
                queue.forget_pending()
        except HGuardError as exc:  # the guard still starts; the next start tries again
            warnings.warn(f"could not check the review queue against the audit log: {error_text(exc)}", UserWarning, stacklevel=3)
            return
        if forged:
            warnings.warn(f"{len(forged)} audit record(s) promising a review item carry no valid MAC under the audit key "
                          f"({', '.join(sorted(forged)[:3])}): written by someone without the key, so nothing was put back "
                          f"from them (nor decided by them); run `hguard audit verify {self.audit.path}` (with the key) to see where",
                          UserWarning, stacklevel=3)
        if done.put_back:
            # which source each came from: an auditor checks the decision records, or the copies kept beside the queue
            sources = [f"{len(ids)} from {where}" for ids, where in (
                (done.from_records, "their decision records"),
                (done.from_pending, f"the copies kept beside the queue in {queue.pending_path} (a redacting log's "
                                    "records hold hashes, not text)")) if ids]
            decided = [f"{rid} {v.get('verdict')} by {v.get('reviewer')} at {v.get('decided_at')} (record {v.get('id')})"
                       for rid, v in done.decided.items()]
            held = [f"{rid}: " + ", ".join(f"{v.get('verdict')} by {v.get('reviewer')} (record {v.get('id')}, item "
                                           f"{v.get('item_id')!r})" for v in vs) for rid, vs in done.held_pending.items()]
            with_verdict = (f"; {len(decided)} of them decided, with the verdict the queue committed on each (its last "
                            f"record in the audit chain): {'; '.join(decided[:3])}{'; ...' if len(decided) > 3 else ''}"
                            if decided else "")
            if held:  # pending, though the chain holds verdicts on their decisions: deciding them needs --supersede
                with_verdict += (f"; {len(held)} of them pending although the audit chain holds verdicts on their "
                                 f"decision, recorded on another item (a copied queue row): {'; '.join(held[:3])}"
                                 f"{'; ...' if len(held) > 3 else ''}; the monitor counts those, and a verdict on the "
                                 "item itself is recorded with `hguard review decide ITEM --supersede`, naming them")
            if len(decided) + len(held) < len(done.put_back):
                with_verdict += ("; all" if not (decided or held) else "; the others") + (
                    " pending (the audit chain holds no verdict on them)")
            self._record_requeued(queue, from_records=done.from_records, from_pending=done.from_pending,
                                  decided=list(done.decided), reason=(
                "decisions held for review (or spot-checked) were in the audit log but not in the review queue (a "
                f"process stopped, or the queue was locked, between the two, or its rows were deleted); put back "
                f"{' and '.join(sources)}{with_verdict}"))
            warnings.warn(f"{len(done.put_back)} answer(s) held for review (or picked for a spot-check) were missing from the "
                          f"review queue {queue.path} (a process stopped, or the queue was locked, between the audit "
                          f"record and the queue, or its rows were deleted): put back {' and '.join(sources)} "
                          f"({', '.join(done.put_back[:3])}{', ...' if len(done.put_back) > 3 else ''}){with_verdict}",
                          UserWarning, stacklevel=3)
        if done.refused:  # one record the queue cannot take: the others are put back all the same
            warnings.warn(f"{len(done.refused)} answer(s) held for review are missing from the review queue {queue.path} "
                          "and the queue refuses what their decision record holds, so they were not put back: "
                          + "; ".join(f"decision {rid}: {cut_text(why, 200)}" for rid, why in list(done.refused.items())[:5])
                          + ("; ..." if len(done.refused) > 5 else "")
                          + f"; review them from the audit log (hguard audit show {self.audit.path} --id ID)",
                          UserWarning, stacklevel=3)
        if done.lost:
            warnings.warn(f"{len(done.lost)} answer(s) held for review are missing from the review queue "
                          f"{queue.path} and cannot be put back (their records hold hashes, not text: a "
                          f"redacting log): {', '.join(done.lost[:5])}; review them from the application's own copy",
                          UserWarning, stacklevel=3)

    def load_probes(self, folders: str | Path | Sequence[str | Path]) -> None:
        """Read every probe file in ``folders`` (one folder or several, e.g. the reference probes and your
        own) and serve them. On a running guard each domain it serves leaves a ``domain_added`` record, and a folder
        with a file that cannot serve (unreadable, cut short, another layout's, a domain two folders calibrate) is
        refused whole (:class:`~hguard.errors.ProbeError`, naming each file and why): no probe of it is put into
        service and every domain keeps the probes serving it. Each probe put into service is said as
        :meth:`add_domain` says it (a warning for another setup, a hand-set or refitted accept threshold, a domain the
        policy does not list or one without calibration questions, as at start-up)."""
        self._load_probes(folders, record=True)

    def _load_probes(self, folders: str | Path | Sequence[str | Path], record: bool = False) -> None:
        """:meth:`load_probes`; without ``record`` (a guard's start), unreadable files and another model's probes
        are remembered and fail their domain closed, and no record is written (each decision names its probe_id)."""
        from .integrity import probe_load_options

        clashed: dict[str, list[tuple[Path, CalibratedDomain]]] = {}  # a domain two folders calibrate: left out
        error_modes: dict[str, str] = {}
        found, errors = read_probe_folders(folders, probe_load_options(self.policy.integrity), clashed=clashed,
                                           error_modes=error_modes)
        for name, candidates in clashed.items():  # the folder of another model is named, with its fix
            of_others = sorted({str(f) for f, cd in candidates if self._another_model(cd)})
            if of_others and len(of_others) < len({f for f, _ in candidates}) and name in errors:
                one = len(of_others) == 1
                errors[name] += (f"; {', '.join(map(repr, of_others))} {'holds' if one else 'hold'} probes calibrated "
                                 f"for another model than {self.lm.name}: leave {'it' if one else 'them'} out of the "
                                 + ("folders given to load_probes" if record else "policy's probes"))
        if not record:
            self._say_other_models_folders([*found.values(), *(c for cs in clashed.values() for c in cs)])
        if record:
            refused = [why for _, why in sorted(errors.items())]  # each names its file or folder
            refused += [f"the {mode.replace('_', '-')} probe of domain {name!r} in {str(folder)!r}: {foreign}"
                        for (name, mode), (folder, cd) in sorted(found.items()) if (foreign := self._other_shape(cd))]
            if refused:  # a running guard: serving part of a folder, or nothing, while the call returns is a silent no
                raise ProbeError("load_probes put no probe into service, and every domain keeps the probes serving it: "
                                 + "; ".join(refused))
        else:
            self.probe_errors.update(errors)
        for _, cd in found.values():
            if record:
                self.add_domain(cd)
            else:
                self._serve(cd)
        for key, reason in ([] if record else sorted(errors.items())):
            # a file refused in one prompt mode (unreadable, or a domain two files claim) while the other mode's probe
            # serves the domain: that mode fails closed with this reason, as a probe of another layout does (with
            # context_with_closed_book_probe = "allow", the closed-book probe scored requests with context)
            name, mode = ((key, error_modes[key]) if key in error_modes else (key.removesuffix(".rag"), RAG)
                          if key.endswith(".rag") else (key, CLOSED_BOOK))
            if name in self._plans and (name, mode) not in self._domains:
                self._refused_modes[(name, mode)] = reason
                self.probe_errors.pop(key, None)
                calibrations = self._calibrations(name)
                self._apply(name, calibrations, *self._plan_of(name, calibrations))
        where = {key[0]: folder for key, (folder, _) in found.items()}
        listed = set(self.policy.domains)
        for name in sorted(set(where) - listed):  # calibrated, but never routed to
            other = next(((why, mode) for (n, mode), (_, cd) in sorted(found.items())
                          if n == name and (why := self._another_model(cd))), None)
            if other:  # a table for it would only lead to "calibrated for another model": the folder is the mistake
                self.probe_errors[name] = (
                    f"{other[0]}; it is in the probe folder {str(where[name])!r}, and the policy does not list the "
                    "domain: remove the folder from the policy's probes (or, to serve the domain, recalibrate it for "
                    f"this model, {calibrate_hint(self.lm, self.settings, name, rag=other[1] == RAG)}, and add a "
                    f"[domains.{name}] table)")
                continue
            near = _near(name, listed - set(where))
            self.probe_errors[name] = (
                f"the probe folder {str(where[name])!r} calibrates domain {name!r}, which the policy does not "
                f"list; add a [domains.{name}] table to route questions to it"
                + (f" (the policy's [domains.{near}] may be it, misspelt)" if near else "")
            )

    def add_domain(self, domain: CalibratedDomain) -> None:
        """Serve ``domain`` (replacing the calibration of its name and prompt mode) and build its plan: new probes
        put into service in a running guard. With an audit log, a ``domain_added`` record names the domain and the
        probe ids serving it before and after; it is written before the swap, so a record that cannot be written
        leaves the old probes serving (the error raised) and no answer is scored by probes no record names. A probe
        of another model's layout is refused (:class:`~hguard.errors.ProbeError`) and the old one keeps serving. New
        probes serving the domain are said as at start-up: a warning when they were calibrated under another setup
        (:meth:`fingerprint_mismatches`) or on other generation settings (:meth:`generation_mismatches`), when the
        policy's accept threshold is hand-set
        (:meth:`uncertified_accept_thresholds`) and for a refitted accept threshold (:meth:`refit_warnings`)."""
        name = _named(domain)
        foreign = self._other_shape(domain)
        if foreign:
            raise ProbeError(f"add_domain did not serve probe {domain.probe_id} ({domain.prompt_mode.replace('_', '-')}): "
                             f"{foreign}; domain {name!r} keeps the probes serving it "
                             f"({', '.join(str(i) for i in self._serving(name).values()) or 'none: it is not scored'})")
        self._change(DOMAIN_ADDED, name, {**self._calibrations(name), (name, domain.prompt_mode): domain})
        # what start-up says of a domain, said of the probes now serving it
        for warning in (unlisted_domain(name) if name not in self.policy.domains else None,
                        self._no_router_questions(name), self.fingerprint_mismatches().get(name),
                        self.generation_mismatches().get(name), self.uncertified_accept_thresholds().get(name),
                        *self.refit_warnings(names=(name,))):
            if warning:
                warnings.warn(warning, UserWarning, stacklevel=2)

    def _no_router_questions(self, name: str) -> str | None:
        """What is said of a served domain of the policy whose probe files keep no calibration questions, else None."""
        plan = self._plans.get(name)
        if plan is None or name not in self.policy.domains or any(
                cd.router_questions for cd in (plan.closed_book, plan.rag) if cd is not None):
            return None
        return (f"{NO_ROUTER_QUESTIONS.format(domain=name)}: automatic domain choice never picks it, every request "
                "naming it goes to review, and, since a question may be its, every answer whose domain automatic choice "
                "picks is held for review")

    def _serve(self, domain: CalibratedDomain) -> None:
        """A guard's own probes as it starts (no audit record: each decision names its probe_id); one that cannot
        read this model fails its domain closed."""
        name = _named(domain)
        foreign = self._other_shape(domain)
        if foreign:  # its neurons are another model's: never recorded, and its mode fails closed
            self._refused_modes[(name, domain.prompt_mode)] = foreign
            self._unserved_questions[(name, domain.prompt_mode)] = tuple(domain.router_questions)
            self._router = None
            if name not in self._plans:  # nothing else serves the domain (yet): each refused mode's reason
                refused = [(mode, why) for (n, mode), why in sorted(self._refused_modes.items()) if n == name]
                self.probe_errors[name] = foreign if len(refused) == 1 else "; ".join(
                    f"its {'RAG' if mode == RAG else 'closed-book'} probe: {why}" for mode, why in refused)
                return
        calibrations = {**self._calibrations(name), **({} if foreign else {(name, domain.prompt_mode): domain})}
        plan, error = self._plan_of(name, calibrations)
        self._apply(name, calibrations, plan, error)
        if plan is not None and self.probe_errors.get(name) in self._refused_modes.values():  # the other mode serves it
            del self.probe_errors[name]

    def _another_model(self, domain: CalibratedDomain) -> str | None:
        """Why ``domain``'s probe was calibrated for another model than this guard's (another layout, or the same
        layout and another model fingerprint), or None (a probe recording no model fingerprint is not judged)."""
        foreign = domain.foreign_layout(self.generator)
        fp = domain.fingerprints.get("model_fingerprint")
        if foreign or fp is None or fp == self.lm.fingerprint:
            return foreign
        return (f"domain {domain.name!r} was calibrated for another model ({domain.extra.get('model') or 'unnamed'}, model "
                f"fingerprint {fp}), not {self.lm.name} ({self.lm.fingerprint})")

    def _say_other_models_folders(self, loaded: Sequence[tuple[Path, CalibratedDomain]]) -> None:
        """At start-up, before each domain's own problems: each probe folder holding probes of another model than
        this guard's while another folder of the policy holds probes of this one (the reference probes of the default
        model listed beside a team's own): the folder, not its domains, is the mistake, and the fix is to drop it."""
        other: dict[Path, list[tuple[str, str]]] = {}
        for folder, cd in loaded:
            why = self._another_model(cd)
            if why:
                other.setdefault(folder, []).append((f"{cd.name} ({cd.prompt_mode.replace('_', '-')})", why))
        # a folder holding a probe calibrated for this very model (a probe recording no fingerprint is not judged)
        fitting = sorted({str(f) for f, cd in loaded if f not in other and not cd.foreign_layout(self.generator)
                          and cd.fingerprints.get("model_fingerprint") == self.lm.fingerprint})
        for folder, whys in sorted(other.items()):
            if fitting:
                names = sorted({n for n, _ in whys[1:]} - {whys[0][0]})
                more = f" (so were its probes of {', '.join(map(repr, names))})" if names else ""
                warnings.warn(f"the probe folder {str(folder)!r} holds probes calibrated for another model than this "
                              f"guard's, not for {self.lm.name}: {whys[0][1]}{more}; the policy's probe folder "
                              f"{', '.join(repr(f) for f in fitting)} holds probes of this one; remove {str(folder)!r} from "
                              "the policy's probes, or recalibrate those domains for this model", UserWarning, stacklevel=4)

    def _other_shape(self, domain: CalibratedDomain) -> str | None:
        """Why ``domain``'s probe cannot read this guard's model at all, or None. A probe of the same layout
        but another fingerprint is read and its answers route per ``fingerprint_mismatch``."""
        foreign = domain.foreign_layout(self.generator)
        if not foreign:
            return foreign
        again = calibrate_hint(self.lm, self.settings, domain.name or "DOMAIN", rag=domain.prompt_mode == RAG)
        return f"{foreign}; calibrate the domain for this model ({again}) or take the folder that holds it out of the policy's probes"

    def remove_domain(self, name: str, prompt_mode: str | None = None) -> None:
        """Stop serving ``name``: its calibration in ``prompt_mode`` (``"closed_book"`` or ``"rag"``), or every one
        (None). Requests to it then go to review, their reason saying it was removed; :meth:`add_domain` serves it
        again. A domain with no such calibration here is refused (:class:`~hguard.errors.InputError`). With an audit
        log, a ``domain_removed`` record names the domain and the probe ids serving it before and after."""
        if prompt_mode not in (None, CLOSED_BOOK, RAG):
            raise InputError(f"prompt_mode={prompt_mode!r}: give {CLOSED_BOOK!r}, {RAG!r}, or None (every calibration of the domain)")
        modes = (CLOSED_BOOK, RAG) if prompt_mode is None else (prompt_mode,)
        if not any((name, m) in self._domains for m in modes):
            served = sorted(m for n, m in self._domains if n == name)
            raise InputError(f"domain {name!r} has no {'' if prompt_mode is None else prompt_mode + ' '}calibration in this "
                             f"guard to remove (served: {', '.join(served) or 'none'}; domains: "
                             f"{', '.join(sorted(self._plans)) or 'none'})")
        self._change(DOMAIN_REMOVED, name, {k: cd for k, cd in self._calibrations(name).items() if k[1] not in modes})

    def _serving(self, name: str) -> dict[str, str | None]:
        """The probe ids that score ``name``'s answers now, by prompt mode (none while it is not scored)."""
        return {mode: cd.probe_id for (n, mode), cd in sorted(self._domains.items()) if n == name and n in self._plans}

    def _calibrations(self, name: str) -> dict[tuple[str, str], CalibratedDomain]:
        return {k: cd for k, cd in self._domains.items() if k[0] == name}

    def _change(self, kind: str, name: str, calibrations: dict[tuple[str, str], CalibratedDomain]) -> None:
        """Serve ``calibrations`` (by (name, prompt mode)) for ``name`` in a running guard, said in the audit log
        first (``kind``: the domain, the probe ids before and after, why it is not scored when it is not): a record
        that cannot be written raises with nothing changed, so no answer is scored by probes no record names."""
        with self._change_lock:  # one change at a time: each record's "before" is what the last one left
            plan, error = self._plan_of(name, calibrations)
            if plan is None and error is None and kind == DOMAIN_REMOVED:
                error = REMOVED_DOMAIN
            if self.audit is not None:
                record: dict[str, Any] = {"domain": name, "probe_ids_before": self._serving(name), "probe_ids_after": (
                    {mode: cd.probe_id for (_, mode), cd in sorted(calibrations.items())} if plan is not None else {})}
                if plan is None and (error or self.probe_errors.get(name)):
                    record["not_scored"] = error or self.probe_errors[name]
                elif plan is not None and name not in self.policy.domains:  # served, but never routed to
                    record["not_scored"] = unlisted_domain(name)
                self.audit.append(record, kind=kind)
            self._apply(name, calibrations, plan, error)
            for key in calibrations:  # a probe of a refused mode put into service ends that refusal
                self._refused_modes.pop(key, None)
            if plan is not None and (name in self.policy.domains or self.probe_errors.get(name) == REMOVED_DOMAIN):
                # served now: a reason it was not (a file refused at start, another model's probe, a removal) is stale;
                # an unlisted domain keeps the reason it is not routed to
                self.probe_errors.pop(name, None)

    def _apply(self, name: str, calibrations: dict[tuple[str, str], CalibratedDomain], plan: DomainPlan | None,
               error: str | None) -> None:
        """Make ``calibrations`` and ``plan`` what serves ``name``, ``error`` (when given) why it is not scored."""
        for key in [k for k in self._domains if k[0] == name and k not in calibrations]:
            self._unserved_questions[key] = tuple(self._domains.pop(key).router_questions)
        self._domains.update(calibrations)
        for key in calibrations:
            self._unserved_questions.pop(key, None)
        if plan is not None:
            self._plans[name] = plan
        else:
            self._plans.pop(name, None)
        if error is not None:
            self.probe_errors[name] = error
        self._router = None

    def _plan_of(self, name: str, calibrations: Mapping[tuple[str, str], CalibratedDomain]) -> tuple[DomainPlan | None, str | None]:
        """The plan ``calibrations`` make for ``name`` (None when it has none), or why the domain cannot be planned."""
        closed, rag = calibrations.get((name, CLOSED_BOOK)), calibrations.get((name, RAG))
        if closed is None and rag is None:
            return None, None
        refused = {mode: why for (n, mode), why in self._refused_modes.items() if n == name and (n, mode) not in calibrations}
        try:
            return build_plan(name, closed, rag, self.policy, self.settings, refused, lm=self.lm), None
        except Exception as exc:  # e.g. calibration scores thresholds cannot be fitted on: the domain fails closed
            return None, f"domain {name!r} cannot be planned: {error_text(exc)}"

    @property
    def probes(self) -> Mapping[str, CalibratedDomain]:
        """The closed-book calibrations, by domain (read-only; see :meth:`add_domain`)."""
        return MappingProxyType({n: cd for (n, mode), cd in self._domains.items() if mode == CLOSED_BOOK and n in self._plans})

    @property
    def rag_probes(self) -> Mapping[str, CalibratedDomain]:
        """The calibrations on answers given with context, by domain (read-only)."""
        return MappingProxyType({n: cd for (n, mode), cd in self._domains.items() if mode == RAG and n in self._plans})

    def uncertified_accept_thresholds(self) -> dict[str, str]:
        """Domains that accept answers under the policy's own ``accept_below`` where no calibration
        certified it, with a sentence saying so (each accepted answer's reason says it too)."""
        out: dict[str, str] = {}
        for name, plan in sorted(self._plans.items()):
            dp = self.policy.domain(name)
            kinds = [kind for kind, r in (("closed-book", plan.without_context), ("with context", plan.with_context))
                     if r.domain is not None and accepts_uncertified(dp, r.thresholds)]
            if kinds:
                assert dp is not None and dp.accept_below is not None  # accepts_uncertified checked both
                raised = [r for r in (plan.without_context, plan.with_context) if r.fitted is not None
                          and dp.abstain_above is None and r.fitted.abstain_above < dp.accept_below]
                st = self.monitor_state.get(name)
                tightened = st if st is not None and st.state == "tightened" else None  # answers are reviewed again
                out[name] = (f"domain {name!r}: accept_below {dp.accept_below} is set by hand in the policy and no "
                             f"calibration certified it ({' and '.join(dict.fromkeys(kinds))} requests): the answers "
                             f"it accepts carry no guarantee of the target {dp.target_hallucination_rate}"
                             + "".join(f"; {kind}: {m}" for kind, r in (("closed-book", plan.without_context),
                                                                       ("with context", plan.with_context))
                                       if r.thresholds is not None and (m := r.thresholds.hand_set_sentence()))
                             + ("; it is above the calibrated abstain_above, which is raised to it, so this domain "
                                "routes no answer to review by its risk: each is accepted or abstained on, unless a check holds it "
                                "(out of distribution, a fingerprint, missing signals)" if raised and not tightened else
                                "; it is above the calibrated abstain_above, which stays raised to it while the domain is "
                                "tightened (answers between the two go to review, not abstain)" if raised else "")
                             + ((f" (the monitor has tightened it since {tightened.since}: " if tightened.since else
                                 f" (held: {tightened.reason}: ")
                                + ("it accepts nothing: every answer that is not abstained on goes to review"
                                   if not tightened.accept_below else f"it accepts below {tightened.accept_below:.4g}")
                                + (" until a person lifts it)" if tightened.since else ")") if tightened else "")
                             + ("; with context it has no min_grounding floor, so an answer its passage does not support "
                                "is accepted when its risk is below that number (the default policy's RAG domains set "
                                "min_grounding = 0.2)" if "with context" in kinds and dp.min_grounding is None else ""))
        return out

    def refit_warnings(self, names: Sequence[str] | None = None) -> list[str]:
        """What ``hguard calibrate`` would have said at the policy's target, for each served domain whose thresholds
        were refitted for another target (or confidence) than its calibration's when the guard loaded it: an accept
        threshold of 1.0, which accepts every answer, and held-out families over the target
        (:meth:`CalibratedDomain.refit_warnings`), for ``names`` only when given. Said once at start-up and when
        :meth:`add_domain` (or :meth:`load_probes`) puts new probes into service; each accept reason says the refit
        too."""
        out: list[str] = []
        for name, plan in sorted(self._plans.items()):
            if name not in self.policy.domains or (names is not None and name not in names):
                continue
            done: list[CalibratedDomain] = []  # a closed-book probe may score both kinds of request
            for r in (plan.without_context, plan.with_context):
                if r.domain is None or any(r.domain is d for d in done):
                    continue
                done.append(r.domain)
                out += r.domain.refit_warnings(self.policy.domain(name), r.thresholds,
                                               f"domain {name!r}" + (" (RAG)" if r.domain is plan.rag else ""))
        return out

    def fingerprint_mismatches(self) -> dict[str, str]:
        """Domains served by a probe calibrated under another setup than this guard's: another model of the same
        layout (another model fingerprint: a re-quantised or fine-tuned file), chat template or system prompt. Each
        sentence names the probe, the fingerprints it was calibrated with and this guard's, what happens to the
        domain's answers under the policy's ``fingerprint_mismatch`` and the fix. Said once at start-up (each answer's
        reasons say it too); a probe of another layout cannot serve at all (:attr:`probe_errors`), and a call's own
        system prompt or history is only known when it is made."""
        out: dict[str, str] = {}
        warn = self.policy.fingerprint_mismatch == "warn"
        for (name, mode), cd in sorted(self._domains.items()):
            # a domain the policy does not list is not routed to: its probe_errors entry says so
            served = name in self._plans and name in self.policy.domains
            problems = cd.check_fingerprints(self.generator.mode_fingerprints(mode)) if served else []
            if not problems:
                continue
            other_model = any(p.startswith("model_fingerprint:") for p in problems)
            what = ("its answers are scored by this probe all the same and may be accepted (fingerprint_mismatch = "
                    "'warn'): " + ("a probe of another model reads other neurons than it was fitted on"
                                   if other_model else "the probe was fitted on answers asked otherwise")
                    + ", so no guarantee holds for what it accepts"
                    if warn else f"every answer{' with context' if mode == RAG else ''} of the domain goes to review "
                                 "(fingerprint_mismatch = 'review')")
            fix = (f"; recalibrate the domain on this model ({calibrate_hint(self.lm, self.settings, name, rag=mode == RAG)})"
                   " or point the policy's probes at probes calibrated for it" if other_model else "")
            calibrated_on = cd.extra.get("model")
            out[name] = "; ".join(filter(None, [out.get(name), (
                f"domain {name!r}{' (RAG)' if mode == RAG else ''}: probe {cd.probe_id}"
                + (f" (calibrated on {calibrated_on})" if calibrated_on else "")
                + f" was calibrated under another setup than this guard's ({self.lm.name}): {'; '.join(problems)}; "
                f"{what}{fix}")]))
        return out

    def generation_mismatches(self) -> dict[str, str]:
        """Domains whose calibration generated under other settings than the policy's ``[generation]`` (another
        ``max_new_tokens``: 32 at calibration, 48 here), each sentence naming both values, what happens to the domain's
        answers under its ``generation_mismatch`` and the fix (its route's ``generation_problem``, the reason each
        answer gives). Said once at start-up, where every answer would otherwise go to review unexplained."""
        out: dict[str, str] = {}
        for name, plan in sorted(self._plans.items()):
            if name not in self.policy.domains:
                continue  # not routed to: its probe_errors entry says so
            dp = self.policy.domain(name)
            said_of: set[int] = set()  # a closed-book probe may score requests with context too: said once
            for rag in (False, True):
                route = plan.route(rag)
                if route.domain is None or route.generation_problem is None or id(route.domain) in said_of:
                    continue
                said_of.add(id(route.domain))
                mode = " (RAG)" if route.domain.prompt_mode == RAG else ""
                # where another calibration scores the other kind of request (a closed-book and a RAG probe), only this
                # kind goes to review; where this one scores both, or nothing scores the other, every answer does
                other = plan.route(not rag).domain
                which = "" if other is None or other is route.domain else " with context" if rag else " without context"
                what = ("its answers are scored all the same, with a warning (generation_mismatch = 'warn')"
                        if dp is not None and dp.generation_mismatch == "warn" else
                        f"every answer{which} of the domain goes to review (generation_mismatch = 'review')")
                said = f"{route.generation_problem}{mode}: {what}"
                out[name] = "; ".join(filter(None, [out.get(name), said]))
        return out

    def plan(self, domain: str) -> DomainPlan | None:
        """The domain's plan (which calibration scores which request, and its thresholds), or None."""
        return self._plans.get(domain)

    def route_for(self, domain: str | None, rag: bool) -> Route | None:
        """What scores a request of this prompt mode in ``domain`` (None: nothing is known of it)."""
        plan = self._plans.get(domain) if domain is not None else None
        return plan.route(rag) if plan is not None else None

    def probe_for(self, domain: str | None, rag: bool) -> tuple[CalibratedDomain | None, str | None]:
        """The calibration that scores a request of this prompt mode in ``domain``, and why there is none."""
        route = self.route_for(domain, rag)
        return (route.domain, route.problem) if route is not None else (None, None)

    @property
    def last_receipt(self):
        """The receipt of the newest record written to this guard's audit log (None before any, or without a log)."""
        return getattr(self.audit, "last_receipt", None)

    # ---------------------------------------------------------------------------------- helpers

    @property
    def embedder(self):
        if self._embedder is None:
            with self._lazy_lock:
                if self._embedder is None:
                    from .signals.embedding import get_embedder

                    self._embedder = get_embedder()
        return self._embedder

    @property
    def grounding(self):
        if self._grounding is None:
            with self._lazy_lock:
                if self._grounding is None:
                    from .signals.grounding import GroundingScorer

                    self._grounding = GroundingScorer(embedder=self.embedder)
        return self._grounding

    def signal_sources(self, *, rag: bool) -> dict[str, str]:
        """What computes this guard's signals beside the model, as each decision record's ``fingerprints`` name it:
        ``embedder``, the sentence embedder (automatic domain choice, and a bundled grounding scorer's embedding
        signal), and for a request with context (``rag``) ``grounding_scorer``; each its class (module and name) and
        the version or fingerprint it offers (:func:`hguard.signals.component_name`). The bundled ones, when not
        loaded yet, are named as they would be."""
        from .signals import component_name
        from .signals.embedding import bundled_embedder_name

        out = {"embedder": bundled_embedder_name() if self._embedder is None else component_name(self._embedder)}
        if rag:
            out["grounding_scorer"] = self._grounding_name()
        return out

    def _grounding_name(self) -> str:
        from .signals import component_name
        from .signals.grounding import GroundingScorer

        # not loaded yet: the one the grounding property would make (on this guard's embedder), named as it would be
        return component_name(self._grounding if self._grounding is not None else GroundingScorer(embedder=self._embedder))

    def foreign_grounding(self) -> str | None:
        """The grounding scorer in use, named (:meth:`signal_sources`; a bundled scorer on another embedder names
        that embedder too), when it is not the one every RAG merger was fitted on (hguard's bundled
        ``GroundingScorer`` on the bundled embedder, as ``hguard calibrate-rag`` scores: probe files do not name it,
        since calibration fits on no other); None when it is. Its values are read as that one's: each RAG answer's
        reasons say that no calibration guarantee holds for its risk, and the guard says so when it starts."""
        from .signals.grounding import GroundingScorer, bundled_grounding_name

        used = self._grounding_name()
        if used == bundled_grounding_name():
            return None
        scorer = self._grounding
        inner = scorer._embedder if isinstance(scorer, GroundingScorer) else self._embedder if scorer is None else None
        if inner is not None:
            from .signals import component_name
            from .signals.embedding import bundled_embedder_name

            if (name := component_name(inner)) != bundled_embedder_name():
                used += f" on the embedder {name}"
        return used

    def _router_vectors(self, rag: bool | None = None, unserved: bool = False) -> dict[str, np.ndarray]:
        """Router questions' embeddings per domain: of the probes of one prompt mode (``rag`` True or
        False) when any domain has such a probe, else of all probes (``rag`` None: all). With ``unserved``: of the
        domains this guard read and does not score in that sense (removed, calibrated for another layout, not
        listed in the policy, or whose plan failed), for :meth:`choose_domain` to keep their questions from others."""
        if self._router is None:
            self._router = {}
        key = "all" if rag is None else ("rag" if rag else "closed_book")
        if key not in self._router:
            tables = [self.probes, self.rag_probes]
            modes = {CLOSED_BOOK, RAG}
            if rag is not None and (self.rag_probes if rag else self.probes):
                tables = [self.rag_probes if rag else self.probes]
                modes = {RAG if rag else CLOSED_BOOK}
            questions: dict[str, list[str]] = {}
            for table in tables:
                for name, cd in table.items():
                    questions.setdefault(name, []).extend(cd.router_questions)
            self._router[key] = {
                name: self.embedder.encode(list(qs)) for name, qs in questions.items() if qs and name in self.policy.domains
            }
            others: dict[str, list[str]] = {}
            # a domain whose calibration in this mode was refused (an unreadable file) or removed while another mode
            # still serves it: its questions of any mode stand for it, since none of this mode's could be read
            refused_here = {n for (n, m) in [*self._refused_modes, *self._unserved_questions] if m in modes}
            for (name, mode), qs in self._read_questions():
                if (mode in modes or name in refused_here) and name not in self._router[key]:
                    others.setdefault(name, []).extend(q for q in qs if q not in others.get(name, ()))
            self._router[key + ":unserved"] = {name: self.embedder.encode(qs) for name, qs in others.items() if qs}
        return self._router[key + (":unserved" if unserved else "")]

    def _read_questions(self) -> list[tuple[tuple[str, str], Sequence[str]]]:
        """The calibration questions of every calibration this guard read, by (domain, prompt mode): those serving or
        held (``_domains``) and those it does not score (removed, another layout's: ``_unserved_questions``)."""
        return [*self._unserved_questions.items(), *((k, cd.router_questions) for k, cd in self._domains.items())]

    def _unserved_reason(self, name: str) -> str:
        """Why automatic choice does not send a question to ``name``, a domain of :meth:`_router_vectors`' unserved."""
        if name not in self.policy.domains:
            return "the policy does not list it" + (f" ({self.probe_errors[name]})" if name in self.probe_errors else "")
        return self.probe_errors.get(name) or "it is not scored in this guard"

    def domain_similarities(self, question: str, rag: bool | None = None, only: str | None = None,
                            unserved: bool = False) -> dict[str, float]:
        """Per domain (of ``rag``'s prompt mode, see :meth:`_router_vectors`; ``only``: that one, if calibrated for
        it; ``unserved``: of the domains read and not scored), the mean cosine similarity of the question to its 5
        closest calibration questions. A question longer than the embedding model reads (256 tokens) is read in
        pieces and each domain gets its lowest piece's similarity: a domain fits the question only if it fits every
        part of it."""
        router = self._router_vectors(rag, unserved=unserved)
        if only is not None:
            router = {only: router[only]} if only in router else {}
        return self._similarities(question, router)

    def _similarities(self, question: str | np.ndarray, router: Mapping[str, np.ndarray]) -> dict[str, float]:
        """:meth:`domain_similarities` against ``router``; ``question`` may be its embedded windows already."""
        if not router:
            return {}
        if isinstance(question, str):
            question = self._embedded(question)
        return {name: router_similarity(M, question) for name, M in router.items()}

    def _embedded(self, question: str) -> np.ndarray:
        return self.embedder.encode(self._pieces(question))

    def _pieces(self, question: str) -> list[str]:
        """The pieces of ``question`` the router matches one by one (:meth:`hguard.signals.embedding.Embedder.windows`;
        an embedder of one's own that only encodes: the question whole)."""
        windows = getattr(self.embedder, "windows", None)
        return list(windows(question)) if windows is not None else [question]

    def _farthest_part(self, pieces: Sequence[str], Q: np.ndarray, M: np.ndarray) -> tuple[str, float] | None:
        """The piece of a question that fits domain ``M`` (its calibration questions' vectors) least, and its
        similarity, where the question was matched in several pieces and that one alone falls short of the whole
        question's best fit (None otherwise): what a reviewer reads beside "best domain ... < domain_min_similarity"
        ("What is the capital of France, and what overdraft fee does my bank charge?" names the fee)."""
        if len(pieces) < 2 or len(Q) != len(pieces):
            return None
        each = [router_similarity(M, Q[i:i + 1]) for i in range(len(pieces))]
        i = int(np.argmin(each))
        return (pieces[i], each[i]) if each[i] < max(each) else None

    def choose_domain(self, question: str, rag: bool | None = None) -> tuple[str | None, dict]:
        """``(domain or None, how it was chosen)`` for a request without ``domain=``; a subclass may override it with
        a router of its own, returning a domain name or None and a dict (the record's ``domain_choice``: ``chosen``
        is the domain returned, ``method`` the dict's or ``"<Class>.choose_domain"``, a ``reason`` leads the answer's
        reasons). Anything else returned, or an exception: no domain, review, the reason naming it. Unlike the
        bundled router's, its choice is not held to ``domain_min_similarity``: return None when unsure.

        The bundled router: nearest calibrated domain by the mean of the 5 closest calibration questions' cosine similarity,
        among the domains calibrated for the request's prompt mode (``rag``: with context or not) when any are.
        A request with context that reaches no domain goes to the policy's ``context_fallback_domain``.

        A question nearest a domain this guard read and does not score (removed, another layout's, not listed in the
        policy) is sent to that domain, whose requests go to review, not to the next domain, whose probe and
        thresholds were never calibrated on such questions; ``unscored_similarities`` in the result names them. A
        domain of the policy whose calibration questions this guard never read (no probe file, or one that cannot be
        read) cannot be compared with: ``not_compared`` names it, and the answer is held for review."""
        router, others = self._router_vectors(rag), self._router_vectors(rag, unserved=True)
        pieces = self._pieces(question) if router or others else []
        Q = self.embedder.encode(pieces) if pieces else None
        sims = self._similarities(Q, router) if Q is not None else {}
        info: dict[str, Any] = {"method": "embedding", "similarities": sims}
        if router:
            chosen, why = choose_domain(sims, self.policy)
            finite = {n: s for n, s in sims.items() if np.isfinite(s)}
            if chosen is None and finite and max(finite.values()) < self.policy.domain_min_similarity:
                best = max(sorted(finite), key=lambda n: finite[n])
                part = self._farthest_part(pieces, np.asarray(Q), router[best])
                if part is not None:  # which part of a joined question reached no domain
                    text, similarity = part
                    if self.audit is not None and self.audit.redact:  # the question's words stay out of the record
                        where = pieces.index(text)
                        info["farthest_part"] = {"piece": where, "characters": len(text), "domain": best,
                                                 "similarity": similarity}
                        why += (f"; its part {where + 1} of {len(pieces)} ({len(text)} characters, not quoted: a "
                                f"redacting log) is the farthest from it ({similarity:.4f})")
                    else:
                        info["farthest_part"] = {"text": cut_text(text, 200), "domain": best, "similarity": similarity}
                        why += f"; its part {cut_text(text, 120)!r} is the farthest from it ({similarity:.4f})"
        else:
            chosen, why = None, "no calibrated domain is loaded, so none can be chosen for the question"
        unscored = {n: s for n, s in self._similarities(Q, others).items() if np.isfinite(s)} if Q is not None else {}
        if unscored:
            info["unscored_similarities"] = unscored
            near, s = max(unscored.items(), key=lambda kv: (kv[1], kv[0]))
            if s >= self.policy.domain_min_similarity and (chosen is None or s >= sims[chosen]):
                chosen, why = near, (f"the question is nearest domain {near!r} (similarity {s:.4f}"
                                     + (f"; next scored: {max(sims, key=lambda n: sims[n])!r} {max(sims.values()):.4f}"
                                        if sims else "")
                                     + f"), which this guard does not score ({cut_text(self._unserved_reason(near), 200)}): "
                                     "its question is not sent to another domain, whose calibration never saw such "
                                     "questions")
        fallback = self.policy.context_fallback_domain
        if chosen is None and rag and fallback is not None:
            chosen, why = fallback, f"{why}; with context, the policy's context_fallback_domain {fallback!r} scores it"
        elif chosen is None and self.probe_errors:  # a domain that could have been chosen may be disabled
            # each cut short: the whole text was said at start-up and is in guard.probe_errors
            why += "; probe problems: " + "; ".join(
                f"{k}: {cut_text(v, 160)}" for k, v in sorted(self.probe_errors.items()))
        known = {n for (n, _), qs in self._read_questions() if qs}
        missing = sorted(set(self.policy.domains) - known)
        if missing and chosen is not None and chosen not in unscored:  # a scored domain may have got its question
            info["not_compared"] = {n: cut_text(self.probe_errors.get(n) or NO_ROUTER_QUESTIONS.format(domain=n), 200)
                                    for n in missing}
        return chosen, {**info, "reason": why, "chosen": chosen}

    def fitted_thresholds(self, domain: str, rag: bool = False) -> Thresholds | None:
        """Thresholds for the policy's own target and confidence, fitted when the domain was loaded on the
        calibration scores its probe file carries; the stored thresholds when it carries none. ``rag``
        picks the domain's RAG calibration."""
        plan = self._plans.get(domain)
        if plan is None or (plan.rag if rag else plan.closed_book) is None:
            raise KeyError(domain)
        return plan.route(rag).fitted

    def _unsteered(self, name: str) -> str | None:
        """Why a served domain's ``[domains.X.steering]`` is not applied, else None (said at start-up, in each of its
        answers' reasons and in the record's ``steering``): steering scales the H-Neurons of the domain's closed-book
        probe, the neurons it was measured on, and a domain calibrated with context only has none; nor has one whose
        closed-book probe file failed to load (its load failure named, with its fix). Alpha 1 steers nothing: None."""
        dp = self.policy.domain(name)
        if (dp is None or dp.steering is None or float(dp.steering.alpha) == 1.0 or name not in self._plans
                or name in self.probes):
            return None
        said = (f"steering alpha {dp.steering.alpha:g} of domain {name!r} is not applied: steering scales the H-Neurons "
                "of a domain's closed-book probe, and ")
        refused = self._refused_modes.get((name, CLOSED_BOOK))
        if refused is not None:
            return f"{said}this domain's closed-book probe was not loaded ({refused}), so its answers are generated unsteered"
        return f"{said}this domain has only a RAG probe, so its answers are generated unsteered"

    def _steering(self, domain: str | None) -> tuple[dict[int, float] | None, dict | None]:
        dp = self.policy.domain(domain) if domain else None
        st = getattr(dp, "steering", None) if dp else None
        if st is None or domain is None:
            return None, None
        alpha = float(st.alpha)
        unsteered = self._unsteered(domain)
        if unsteered is not None:  # recorded as set, and as not applied (the answer routes as calibrated)
            return None, {"alpha": alpha, "n_neurons": 0, "neurons": "h_neurons", "probe_id": None,
                          "not_applied": unsteered}
        if domain not in self.probes:
            return None, None
        cd = self.probes[domain]
        probe = cd.probe
        h = [int(l) * int(probe.d_ff_) + int(j) for l, j, _ in probe.h_neurons_]
        probe_id = cd.probe_id
        setting = {"alpha": alpha, "n_neurons": len(h), "neurons": "h_neurons", "probe_id": probe_id}
        if alpha == 1.0 or not h:
            return None, setting
        return {i: alpha for i in h}, setting

    # -------------------------------------------------------------------------------- invocation

    def invoke(
        self,
        question: str,
        context=None,
        domain: str | None = None,
        *,
        request_id: str | None = None,
        streamer=None,
        early_stop: bool = False,
        history=None,
        system: str | None = None,
        stop: Sequence[str] | None = None,
        problems: Sequence[str] = (),
        max_new_tokens: int | None = None,
        cancel: threading.Event | None = None,
        run: Mapping[str, str | None] | None = None,
    ) -> GuardResult:
        """Guard one question. ``streamer`` receives the tokens as they are generated (the caller decides
        whether to show them before the decision); ``early_stop`` ends generation as soon as the running
        risk passes the domain's abstain threshold (the answer then abstains). ``history`` (earlier
        turns) and ``system`` (a system instruction replacing the policy's) go into the chat template
        and into the fingerprints the probe is checked against; ``stop`` ends the answer at the first
        of these strings; ``problems`` are the caller's reasons the answer cannot be trusted (each
        routes it to review); ``max_new_tokens`` replaces the policy's for this call. ``cancel`` (a
        ``threading.Event``), once set, stops the generation at the next token: the answer, cut short, is still
        decided and recorded, and held (review, or abstain when its risk already passes the abstain threshold),
        never accepted (:meth:`ainvoke` sets it when the caller is cancelled; a passthrough stream when it is left).
        ``run``: the framework's ids of the call that asks (:data:`RUN_KEYS`: ``run_id``, ``parent_run_id``,
        ``root_run_id``; strings), written as they are into its decision record, beside ``caller_request_id``: the
        LangChain adapter passes its run's, so that the decisions of one chain run share its ``root_run_id``."""
        return self.batch(
            [question], [context], [domain], request_ids=[request_id], streamer=streamer, early_stop=early_stop,
            histories=[history], systems=[system], stop=stop, problems=[problems], max_new_tokens=max_new_tokens,
            cancel=cancel, runs=None if run is None else [run],
        )[0]

    def check(
        self,
        question: str,
        answer: str,
        context=None,
        domain: str | None = None,
        *,
        request_id: str | None = None,
        history=None,
        system: str | None = None,
        run: Mapping[str, str | None] | None = None,
        served: bool = False,
    ) -> GuardResult:
        """Score ``answer``, given to the question rather than generated by this guard: an answer of the same model
        served elsewhere (the same weights, greedy), or one kept in a log to score again. Its tokens, then
        end-of-sequence, are forced through the one pipeline :meth:`invoke` runs, so that the neuron contributions,
        log-probabilities and entropies are read on them as on a generated answer, and every later step (probe,
        merger, grounding, the answer's holds, domain choice, thresholds, audit record, review queue) runs unchanged;
        the decision record says ``answer_source: "given"``. The probes were calibrated on the model's own greedy
        answers: one with a token that is not this model's greedy choice at its position (or that the model would not
        end there) goes to review, its risk not calibrated, never accepted. An answer that is not text, is blank, or
        is longer than the policy's ``max_new_tokens`` is refused (:class:`~hguard.errors.InputError`, on record).
        ``served``: True where the answer is (or will be) shown to users as this decision routes it (the same model
        served by another server, guarded here): the decision is then live traffic, which the monitor counts as it
        counts generated answers (spot-check estimate, verdicts, drift); False (the default) for an evaluation or a
        log scored again, which the monitor leaves out (it served no one). Other arguments as for :meth:`invoke`."""
        return self.check_batch([question], [answer], [context], [domain], request_ids=[request_id],
                                histories=[history], systems=[system], runs=None if run is None else [run],
                                served=served)[0]

    def prompt_messages(self, question: str, context=None, *, history=None, system: str | None = None) -> list[dict]:
        """The chat this guard's model is sent for ``question`` (``[{"role": ..., "content": ...}]``): the policy's
        system prompt (or ``system``), ``history``, then the question in the guard's context framing, the passages of
        ``context`` joined as :meth:`invoke` joins them. Another server answering for this guard (the same weights,
        greedy) must be sent exactly this, its answer capped at the policy's ``max_new_tokens``, for :meth:`check` to
        find the model's own answer: an answer written from another prompt (a chain's own template) is not the
        model's own answer to this one, and goes to review. A model without a chat template is prompted in the
        guard's plain frame instead (``generator.prompt_ids``), which a chat server does not build."""
        return self.generator.messages(question, _join_context(context), history=history, system=system)

    def check_batch(
        self,
        questions: Sequence[str],
        answers: Sequence[str],
        contexts: Sequence[Any] | None = None,
        domains: Sequence[str | None] | None = None,
        *,
        request_ids: Sequence[str | None] | None = None,
        histories: Sequence[Any] | None = None,
        systems: Sequence[str | None] | None = None,
        runs: Sequence[Mapping[str, str | None] | None] | None = None,
        served: bool = False,
        problems: Sequence[Sequence[str]] | None = None,
    ) -> list[GuardResult]:
        """:meth:`check` of several answers, one per question (those of a domain scored in one batched pass), as
        :meth:`batch` guards several questions: every input is checked before anything is scored. ``served`` (one
        value for all): as for :meth:`check`. ``problems``: as for :meth:`batch` (an adapter's "nothing retrieved":
        the answer goes to review)."""
        if answers is None:
            asked = questions if isinstance(questions, str) else list(questions or [])
            raise self._refused(asked[0] if isinstance(asked, list) and len(asked) == 1 else asked, InputError(
                "answers must be a list of strings, one per question, got None; pass the answers to score"), given={})
        return self.batch(questions, contexts, domains, request_ids=request_ids, histories=histories, systems=systems,
                          runs=runs, answers=answers, served=served, problems=problems)

    def _refused(self, question, err: InputError, *, context=None, domain=None, request_id=None, run=None,
                 source: str = "api", given: Mapping[str, Any] | None = None) -> InputError:
        """``err``, after recording the refused request as an ``error`` record (its id as ``err.audit_id``; the
        caller's ``request_id``, when it is a string, as the record's ``caller_request_id``, and the ``run_id`` of its
        ``run``, when it is one, as the record's ``run_id``; ``source``, who asked: a chain's search step names itself,
        as :meth:`rewrite_query` does; ``given``, a refused :meth:`check`'s answer, see :meth:`record_failure`)."""
        self.record_failure(question, err, context=context, domain=domain if isinstance(domain, str) else None,
                            request_id=request_id if isinstance(request_id, str) else None, run_id=run_id_of(run),
                            source=source, given=given)
        return err

    def _check_input(self, question: Any, context: str | None, history: Any, system: Any, domain: Any, *,
                     max_new_tokens: int | None = None, answer: Any = _NO_ANSWER) -> None:
        """One request checked as :meth:`batch` checks each before anything is generated or recorded (``context``
        joined as :func:`_join_context` joins it): InputError, unrecorded, naming the value and the fix. ``answer``: a
        given answer (:meth:`check`), text, not blank, no longer than the guard generates (``_NO_ANSWER``: none given).
        An adapter that reads its inputs itself checks each with it, so that a refusal names the caller's own input
        and the adapter as who asked (in a batch of the inputs it kept, the guard numbered it among those alone and
        recorded it as the API's)."""
        _check_text("question", question)
        if context is not None:
            _check_text("context", context)
        if domain is not None and not _is_domain_name(domain):
            raise InputError(f"domain must be a domain name or None, got {domain!r:.80}"
                             + (f" ({len(domain):,} characters)" if isinstance(domain, str) and len(domain) > MAX_NAME_CHARS
                                else "")
                             + "; name a domain of the policy, or leave it out to choose one by similarity")
        self.generator.prompt_ids(question, context, history=history, system=system, max_new_tokens=max_new_tokens)
        if answer is not _NO_ANSWER:  # text, not blank, and no longer than the guard generates
            self.generator.answer_ids(answer)

    def rewrite_query(
        self,
        question: str,
        *,
        step: str,
        history=None,
        system: str | None = None,
        stop: Sequence[str] | None = None,
    ) -> QueryRewrite:
        """Text a chain asks for to search with, not to show: a follow-up rewritten into a standalone
        question, or search queries generated from a question (LlamaIndex's condense step, LangChain's
        ``create_history_aware_retriever`` and ``MultiQueryRetriever``), or a retriever's own step on what it found
        (LangChain's document compressors: a filter's YES/NO, an extract). It is generated plainly, with no
        decision and nothing queued for review, since it is no answer (the answer the chain then gives
        from what was found is guarded); it is written to the audit log as a ``retrieval_query`` record
        naming ``step``, so the log shows what was searched for (a record written whose append then raised, its anchor
        or an AuditLog subclass's own copy failing after it, stands: the text is returned, and a warning says what
        failed). Bad input is refused as for
        ``invoke``; a check of
        the input that raises anything else (a chat template that cannot render it, a Ctrl-C while its prompt is
        built), or a model that raises, leaves an ``error`` record (``stage`` ``input_check`` or ``generation``), its
        id on the error raised as it is. Every ``error`` record of the step has the ``source``
        ``retrieval_query: STEP`` (``retrieval_query`` for a ``step`` that names none), a refusal's too."""
        stage = INPUT_CHECK
        named = isinstance(step, str) and bool(step.strip())
        source = f"{RETRIEVAL_QUERY}: {step}" if named else RETRIEVAL_QUERY
        try:
            try:
                _check_text("question", question)
                if not named:
                    raise InputError(f"step must name the chain step that asks for the query, got {step!r}")
                self.generator.prompt_ids(question, None, history=history, system=system)
            except InputError as exc:  # recorded as the step's, not as a call of the API's (source "api")
                raise self._refused(question, exc, source=source) from None
            stage = GENERATION
            (g,) = self.generator.generate([question], neurons=None, histories=[history], systems=[system], stop=stop)
        except BaseException as exc:  # its input check or the model raised (a template refusing an odd input, out of
            # memory, a model's own bug, an interrupt): the log says so, as for an answer's request, so that every step
            # a chain took is on record (an input refused is on record already)
            if isinstance(exc, GeneratorExit) or stage == INPUT_CHECK and isinstance(exc, InputError):
                raise
            self.record_failed_requests(exc, [{"question": question, "stage": stage, "index": 0, "source": source}], {})
            raise
        record = {
            "step": step,
            "question": question,
            "answer": g.text,
            "history_turns": len(history) if isinstance(history, Sequence) else 0,
            "model": self.lm.name,
            "model_source": self.lm.source,  # the resolved folder or file (or hub:<id>), beside its short name
            "model_fingerprint": self.lm.fingerprint,
            "note": "generated for a retrieval step (text to search with, or a retriever's filter or extract of what it "
                    "found), not shown as an answer: no decision was made",
        }
        audit_id = None
        if self.audit is not None:
            # on record though its append raised after (no answer, nothing decided): the text is handed over
            audit_id = append_warned(self.audit, record, kind=RETRIEVAL_QUERY, stacklevel=2,
                                     what=f"the {RETRIEVAL_QUERY} record of step {step!r}").id
        return QueryRewrite(text=g.text, audit_id=audit_id, step=step)

    async def ainvoke(self, question: str, context=None, domain: str | None = None, **kw) -> GuardResult:
        """:meth:`invoke` in a worker thread of the event loop's default executor (keywords as for :meth:`invoke`;
        each call in flight holds a worker for its whole generation, so size the executor, e.g.
        ``loop.set_default_executor(ThreadPoolExecutor(n))``, for the calls and the app's other ``to_thread`` work).
        Cancelled (``asyncio.wait_for``'s timeout, a cancelled task), the generation stops at the next token; the
        answer, cut short, is still decided (held, never accepted) and recorded, and the log then says it never reached
        the caller (:meth:`record_undelivered`); cancelled while it waited for a worker, it is not generated and an
        ``error`` record says so."""
        from .streaming import in_thread

        kw.setdefault("cancel", threading.Event())
        return await in_thread(self, self.invoke, question, context, domain, cancel_event=kw["cancel"],
                               unstarted=lambda: self.record_cancelled(question, context=context, domain=domain,
                                                                       request_id=kw.get("request_id"),
                                                                       run_id=run_id_of(kw.get("run"))), **kw)

    async def abatch(self, questions, contexts=None, domains=None, **kw) -> list[GuardResult]:
        """:meth:`batch` in a worker thread (keywords as for :meth:`batch`); cancelled, as :meth:`ainvoke`."""
        from .streaming import in_thread

        kw.setdefault("cancel", threading.Event())
        return await in_thread(self, self.batch, questions, contexts, domains, decided=list, cancel_event=kw["cancel"],
                               unstarted=lambda: self.record_cancelled_batch(questions, contexts, domains,
                                                                             kw.get("request_ids"), runs=kw.get("runs")),
                               **kw)

    def batch(
        self,
        questions: Sequence[str],
        contexts: Sequence[Any] | None = None,
        domains: Sequence[str | None] | None = None,
        *,
        request_ids: Sequence[str | None] | None = None,
        streamer=None,
        early_stop: bool = False,
        histories: Sequence[Any] | None = None,
        systems: Sequence[str | None] | None = None,
        stop: Sequence[str] | None = None,
        problems: Sequence[Sequence[str]] | None = None,
        max_new_tokens: int | None = None,
        cancel: threading.Event | None = None,
        runs: Sequence[Mapping[str, str | None] | None] | None = None,
        answers: Sequence[str] | None = None,
        served: bool = False,
    ) -> list[GuardResult]:
        """Guard several questions; answers that share a domain share one batched generation.
        ``histories``, ``systems``, ``problems`` and ``runs`` hold one entry per question (see :meth:`invoke`);
        ``cancel`` stops every answer not yet complete, as for :meth:`invoke`. ``answers`` (one per question) are
        scored instead of generated (:meth:`check_batch`; without ``streamer``, ``early_stop``, ``stop``, ``cancel``
        or ``max_new_tokens``, which apply to generation); ``served`` says whether they are shown to users
        (:meth:`check`)."""
        # a refused check's error record holds the answer(s) given, as it holds the question(s)
        one = answers[0] if isinstance(answers, (list, tuple)) and len(answers) == 1 else answers
        given: dict[str, Any] | None = None if answers is None else {"answer": one}
        if isinstance(questions, str):
            raise self._refused(questions, InputError("questions must be a list of strings; use invoke() for a single question"),
                                given=given)
        if not isinstance(questions, (list, tuple)):
            raise self._refused(questions, InputError(
                f"questions must be a list of strings, got {type(questions).__name__}: {questions!r:.80}"), given=given)
        n = len(questions)
        # one question is recorded as its text, as a refusal of its own input records it (not "['q?']", a list's text)
        asked: Any = questions[0] if n == 1 else list(questions)
        passed = (("contexts", contexts), ("domains", domains), ("request_ids", request_ids), ("histories", histories),
                  ("systems", systems), ("problems", problems), ("runs", runs), ("answers", answers))
        named = [name for name, v in passed if v is not None]  # for the message below: what the caller passed
        for name, v in passed:
            if name in ("contexts", "domains", "request_ids", "systems", "runs", "answers") and isinstance(v, str):
                # read as a list, a string's characters would be one entry each
                raise self._refused(asked, InputError(
                    f"{name} must be a list with one entry per question, got the string {v!r:.60}; pass "
                    + (f"[{{'run_id': {v!r:.40}}}] (one run mapping per question)" if name == "runs" else f"[{v!r:.40}]")
                    + (" (one list of passages per question, or one string each)" if name == "contexts" else "")),
                    given=given)
        if isinstance(runs, Mapping):  # one mapping, not a list of them: its keys were counted as runs
            raise self._refused(asked, InputError(
                f"runs must be a list with one run mapping (or None) per question, got one mapping {dict(runs)!r:.80}; "
                "use invoke(run=...) for one question, or pass a list of them"), given=given)
        if type(early_stop) is not bool:  # "no" ran with early stopping on
            try:
                strict_bool("Guard", "early_stop", early_stop)
            except InputError as e:
                raise self._refused(asked, e, given=given) from None
        if type(served) is not bool:  # "true", 1, numpy's True_: recorded as given, read otherwise by the monitor
            raise self._refused(asked, InputError(
                f"served must be True or False, got {type(served).__name__} {served!r:.40}; pass True where the answers "
                "are shown to users, False for an evaluation"), given=given)
        if answers is not None and not isinstance(answers, (list, tuple)):  # a generator's, a number's entries
            raise self._refused(asked, InputError(
                f"answers must be a list of strings, one per question, got {type(answers).__name__} {answers!r:.60}"),
                given=given)
        contexts = [None] * n if contexts is None else list(contexts)
        domains = [None] * n if domains is None else list(domains)
        request_ids = [None] * n if request_ids is None else list(request_ids)
        histories = [None] * n if histories is None else list(histories)
        systems = [None] * n if systems is None else list(systems)
        run_list: list[Any] = [None] * n if runs is None else list(runs)
        given_answers: list[Any] | None = None if answers is None else list(answers)
        plain = next((p for p in problems or () if isinstance(p, str)), None) if not isinstance(problems, str) else problems
        if plain is not None:  # read as a list, a string's characters became 28 "scoring problem: c" reasons
            raise self._refused(asked, InputError(
                f"problems must be a list of reasons (one list per question in batch), got the string {plain!r:.60}; "
                f"pass [{plain!r:.40}]"), request_id=request_ids[0] if n == 1 and len(request_ids) == 1 else None,
                run=run_list[0] if n == 1 and len(run_list) == 1 else None, given=given)
        if problems is not None and (not isinstance(problems, (list, tuple))
                                     or not all(p is None or isinstance(p, (list, tuple)) for p in problems)):
            raise self._refused(asked, InputError(
                f"problems must be a list with one list of reasons per question, got {problems!r:.60}"),
                request_id=request_ids[0] if n == 1 and len(request_ids) == 1 else None,
                run=run_list[0] if n == 1 and len(run_list) == 1 else None, given=given)
        extra_problems = [[] for _ in range(n)] if problems is None else [list(p or ()) for p in problems]
        if not (len(contexts) == len(domains) == len(request_ids) == len(histories) == len(systems) == len(extra_problems)
                == len(run_list) == n) or given_answers is not None and len(given_answers) != n:
            raise self._refused(asked, InputError(
                f"got {n} questions and " + ", ".join(f"{len(v)} {name}" for name, v in (
                    ("contexts", contexts), ("domains", domains), ("request_ids", request_ids), ("histories", histories),
                    ("systems", systems), ("problems", extra_problems), ("runs", run_list),
                    ("answers", given_answers or [])) if name in named)
                + "; pass one of each per question"), given=given)
        try:  # call settings, checked before anything is generated, and refused on record like bad input
            if max_new_tokens is not None:  # checked as the policy's own value is
                replace(self.settings, max_new_tokens=max_new_tokens)
            _check_stop(stop)
            bad = next(((i, p) for i, ps in enumerate(extra_problems) for p in ps if not isinstance(p, str) or not p.strip()), None)
            if bad is not None:  # read as reasons to hold the answer, a non-string one crashed after generation
                raise InputError(f"problems of question {bad[0]} must be reasons (non-empty strings), got {bad[1]!r:.60}")
            if cancel is not None and not callable(getattr(cancel, "is_set", None)):
                raise InputError(f"cancel must be a threading.Event (anything with is_set()), got "
                                 f"{type(cancel).__name__} {cancel!r:.60}")
            bad = next(((i, r) for i, r in enumerate(request_ids) if r is not None and not isinstance(r, str)), None)
            if bad is not None:  # an id the log cannot store was found only when the decision was written
                raise InputError(f"request_id must be a string or None, got {type(bad[1]).__name__} {bad[1]!r:.60} "
                                 f"(question {bad[0]}); pass str(...) of it")
            bad = next(((i, r) for i, r in enumerate(request_ids) if isinstance(r, str) and len(r) > MAX_NAME_CHARS), None)
            if bad is not None:  # copied into every record of the request (a 3 MB one grew the log by 3 MB a call)
                raise InputError(f"request_id of question {bad[0]} is {len(bad[1]):,} characters long ({bad[1]!r:.40}...); "
                                 f"pass an id of at most {MAX_NAME_CHARS} characters (a hash of a longer one)")
            for i, run in enumerate(run_list):
                _check_run(i, run)
            if given_answers is not None:  # what applies to generation only: a given answer is not generated
                generating = [name for name, v in (("streamer", streamer), ("early_stop", early_stop or None),
                                                   ("stop", stop), ("cancel", cancel), ("max_new_tokens", max_new_tokens))
                              if v is not None]
                if generating:
                    raise InputError(f"{', '.join(generating)} apply to an answer being generated, not to one given to be "
                                     "scored (answers=...); leave them out of check and check_batch")
        except (InputError, ValueError) as exc:
            err = exc if isinstance(exc, InputError) else InputError(str(exc))
            raise self._refused(asked, err,
                                request_id=request_ids[0] if n == 1 else None, run=run_list[0] if n == 1 else None,
                                given=given) from None
        ctxs: list[Any] = []
        refused: list[tuple[int, InputError]] = []
        notes: list[list[str]] = [[] for _ in range(n)]
        passages: list[list[str] | None] = [None] * n  # a list of passages, each read on its own for its language
        for i, (q, c, h, s, d) in enumerate(zip(questions, contexts, histories, systems, domains)):
            try:  # every input is checked before any generation or record
                _check_text("question", q)
                notes[i] += left_out_passages(c)
                passages[i] = list(c) if len(kept_passages(c)) > 1 else None
                c = _join_context(c)
                self._check_input(q, c, h, s, d, max_new_tokens=max_new_tokens,
                                  answer=given_answers[i] if given_answers is not None else _NO_ANSWER)
            except InputError as exc:
                err = InputError(f"question {i} of {n} (counting from 0): {exc}") if n > 1 else exc
                # each refused request is in the audit log too (an error record; the ids on the error)
                refused.append((i, self._refused(q, err, context=c, domain=d, request_id=request_ids[i], run=run_list[i],
                                                 given=None if given_answers is None else {"answer": given_answers[i]})))
            except BaseException as exc:  # the check itself failed (a tokenizer or chat template raising on an odd
                # input, a KeyboardInterrupt): the batch fails here, every request on record, as for a later failure
                if isinstance(exc, GeneratorExit):  # not a failure of the request (no generator is run here)
                    raise
                self._check_failed(exc, i, questions, [*ctxs, c, *contexts[i + 1:]], domains, request_ids, run_list,
                                   refused)
                raise
            ctxs.append(c)
        if refused:  # a batch is answered whole or not at all: nothing was generated
            raise batch_refused(refused, n) from None
        started = time.perf_counter()
        plans: list[tuple[str | None, dict]] = []
        results: list[GuardResult | None] = [None] * n
        # the rows being worked on, and their stage, for the error records of a failure: from here on every request is
        # recorded whatever stops the call (the domain choice's embedder loads and embeds every domain's calibration
        # questions on a guard's first question, 25 s on a CPU, and a Ctrl-C there left no record)
        at: dict[str, Any] = {}
        try:
            for i, (q, d, c) in enumerate(zip(questions, domains, ctxs)):
                at.update(rows=(i,), stage=DOMAIN_CHOICE)
                plans.append(self._domain_plan(q, d, c))
            at.clear()
            groups: dict[tuple[str | None, bool], list[int]] = {}
            for i, (d, _) in enumerate(plans):
                groups.setdefault((d, ctxs[i] is not None), []).append(i)
            self._answer_groups(groups, questions, ctxs, plans, histories, systems, request_ids, extra_problems,
                                notes, streamer, early_stop, stop, max_new_tokens, started, results, cancel, at, run_list,
                                passages, given_answers, served)
        except BaseException as exc:
            if isinstance(exc, AuditError) and getattr(exc, "receipt", None) is None:
                # a log that stopped taking records part-way: say which decisions it holds. (An AuditError with a
                # ``receipt`` came after its record was written, an anchor or an AuditLog subclass's own mirror
                # failing after it: the log takes records, and the batch's requests are put on record below.)
                self._log_stopped(exc, results, n)
            # the domain choice, the model or the scoring raised (a CUDA out-of-memory error;
            # any exception, a KeyboardInterrupt or the SystemExit of a web server's worker timeout too, the embedder
            # choosing the domain as much as the model generating): every request is on record, an
            # error record for each undecided one, and the decided ones said never delivered (the caller gets the
            # error, not them); then the error itself is raised. (A cancelled async caller is not seen here: its
            # worker thread runs on, stopped by ``cancel``, and the answer is decided; a CancelledError raised in it is
            # recorded as any error, which in_thread then leaves alone, since the work started and returned nothing.)
            if isinstance(exc, GeneratorExit):  # not a failure of the request (no generator is run here)
                raise
            # (a row is decided once its decision record is written, before its spot-check and review queue ran)
            self.record_failed_requests(exc, [
                {"question": questions[i], "context": ctxs[i], "domain": plans[i][0] if i < len(plans) else domains[i],
                 "request_id": request_ids[i],
                 "run_id": run_id_of(run_list[i]), "stage": at.get("stage", NOT_STARTED) if i in at.get("rows", ()) else NOT_STARTED, "index": i}
                for i in range(n) if results[i] is None], {i: r for i, r in enumerate(results) if r is not None},
                after_decision=at.get("row"))
            raise
        return results  # type: ignore[return-value]

    @staticmethod
    def _log_stopped(exc: AuditError, results: Sequence[GuardResult | None], n: int) -> NoReturn:
        """:meth:`batch` raising ``exc``, an audit log that stopped taking records part-way: as it is when no answer
        was recorded, else an error of its type naming the recorded answers (on its ``.results``, and by their
        inputs' index on ``.by_index``), chained from ``exc``."""
        done = [r for r in results if r is not None]
        if not done:
            raise exc
        partial = type(exc)(
            f"{exc}; {len(done)} of the batch's {n} answers had been recorded (audit ids "
            f"{', '.join(str(r.audit_id) for r in done)}): they are on this error's .results, to deliver or "
            "drop; the other answers were not recorded"
        )
        partial.results = done  # type: ignore[attr-defined]
        # each by its input's index, for a caller that answers per input (LangChain's return_exceptions)
        partial.by_index = {i: r for i, r in enumerate(results) if r is not None}  # type: ignore[attr-defined]
        raise partial from exc

    def _check_failed(self, exc: BaseException, at: int, questions, ctxs, domains, request_ids, runs,
                      refused: list[tuple[int, InputError]]) -> None:
        """:meth:`batch`'s input check of request ``at`` raised ``exc`` (no :class:`InputError`: a tokenizer or chat
        template failing on an odd input, a KeyboardInterrupt): nothing is generated, and every request is put on
        record before ``exc`` is raised, as for a failure after the check (:meth:`record_failed_requests`): request
        ``at`` gets an ``error`` record at stage :data:`INPUT_CHECK`, each other one not refused already one at stage
        :data:`NOT_STARTED`. ``exc.audit_id_by_index`` names each request's own record, the refused ones' too (their
        error records are in ``audit_ids``, in the order of the requests)."""
        done = {i for i, _ in refused}
        self.record_failed_requests(exc, [
            {"question": questions[i], "context": ctxs[i], "domain": domains[i] if isinstance(domains[i], str) else None,
             "request_id": request_ids[i] if isinstance(request_ids[i], str) else None, "run_id": run_id_of(runs[i]),
             "stage": INPUT_CHECK if i == at else NOT_STARTED, "index": i}
            for i in range(len(questions)) if i not in done], {})
        own = {i: e.audit_id for i, e in refused if getattr(e, "audit_id", None)}  # type: ignore[attr-defined]
        by_index = {**own, **(getattr(exc, "audit_id_by_index", None) or {})}
        if own:
            try:
                exc.audit_id_by_index = dict(sorted(by_index.items()))  # type: ignore[attr-defined]
                exc.audit_ids = list(exc.audit_id_by_index.values())  # type: ignore[attr-defined]
                exc.audit_id = exc.audit_ids[0]  # type: ignore[attr-defined]
            except AttributeError:  # an exception type that takes no attributes: the records stand
                pass

    def _domain_plan(self, question: str, domain: str | None, context: str | None) -> tuple[str | None, dict]:
        """:meth:`batch`'s domain of one request and how it was reached: chosen by similarity when ``domain`` is None
        (a failing choice leaves none, routed by ``default_route``, never accepted), else ``domain`` and how near the
        question lies to it (a question the router would not send there is far)."""
        if domain is None:
            # who chooses: the bundled router, or a subclass's choose_domain (its record and reasons name it)
            own = type(self).choose_domain is not Guard.choose_domain
            router = f"{type(self).__name__}.choose_domain" if own else "embedding"
            try:
                result = self.choose_domain(question, rag=context is not None)
                failed = _choice_problem(result, router)
            except Exception as exc:
                failed = f"{router + ' raised ' if own else ''}{error_text(exc)}"
            if failed is not None:  # no domain: routed by default_route, never accepted
                return None, {"method": router, "reason": f"domain choice failed: {failed}", "similarities": {},
                              "chosen": None, "given": False}
            chosen, info = result
            return chosen, {**info, "method": info.get("method") if isinstance(info.get("method"), str) else router,
                            "chosen": chosen, "given": False}
        try:
            near = self.domain_similarities(question, rag=context is not None, only=domain).get(domain)
            if near is None and context is not None and domain in self.probes:  # a closed-book probe may score it
                near = self.domain_similarities(question, rag=False, only=domain).get(domain)  # (context_with_closed_book_probe)
            return domain, {"method": "given", "given": True, "chosen": domain, "similarity": near}
        except Exception as exc:
            return domain, {"method": "given", "given": True, "chosen": domain, "similarity": None,
                            "similarity_error": error_text(exc)}

    def _answer_groups(self, groups, questions, ctxs, plans, histories, systems, request_ids, extra_problems, notes,
                       streamer, early_stop, stop, max_new_tokens, started, results, cancel=None,
                       at: dict[str, Any] | None = None, runs: Sequence[Any] | None = None,
                       passages: Sequence[list[str] | None] | None = None,
                       answers: Sequence[str] | None = None, served: bool = False) -> None:
        """:meth:`batch`'s generation and recording, one batched generation per (domain, with context) group,
        each answer's result put in ``results`` as soon as its decision record is written; ``at`` is kept naming the
        group being answered (``rows``), its ``stage`` (:data:`GENERATION`, then :data:`SCORING`), and the ``row`` being
        scored and recorded (None between rows). ``passages``: each row's list of passages as given, where it has two
        or more (its context is them joined), for the scoring to read each passage's language on its own. ``answers``:
        each row's answer given to be scored (:meth:`check_batch`), its tokens forced in place of generated ones;
        ``served``: whether those are shown to users (said in their records, for the monitor)."""
        from .streaming import held_history_turn, held_texts

        at = {} if at is None else at
        held = held_texts(self)  # what a held answer is shown as: a history turn holding it was held
        for (d, rag), idx in groups.items():
            at.update(rows=idx, stage=GENERATION)
            route = self.route_for(d, rag)
            cd = route.domain if route is not None else None
            neurons = [int(i) for i in cd.probe.feature_indices_] if cd is not None else None
            steer, steer_info = self._steering(d)
            stopper = _EarlyAbstain(self, d, route) if early_stop and route is not None and cd is not None else None
            cancelled = _Cancelled(cancel) if cancel is not None else None
            gens = self.generator.generate(
                [questions[i] for i in idx], [ctxs[i] for i in idx], neurons=neurons, steering=steer,
                batch_size=len(idx), streamer=streamer, stopping_criteria=[c for c in (stopper, cancelled) if c],
                histories=[histories[i] for i in idx], systems=[systems[i] for i in idx], stop=stop,
                max_new_tokens=max_new_tokens, answers=None if answers is None else [answers[i] for i in idx],
            )
            at["stage"] = SCORING
            if stopper is not None:
                for row, g in enumerate(gens):
                    if row < len(stopper.stopped) and bool(stopper.stopped[row]):  # cut short: never accepted
                        g.extra.setdefault("holds", []).append(stopper.hold(row))
                        g.extra["criterion_stopped"] = True
            for i, g in zip(idx, gens):
                if answers is not None:  # live traffic or an evaluation: the monitor counts the first only
                    g.extra["given_answer"]["served"] = served
                if cancelled is not None and cancelled.fired:  # which rows it cut is not known: none is accepted
                    g.extra.setdefault("holds", []).append(CANCELLED_HOLD)
                    g.extra["criterion_stopped"] = True
                g.extra.setdefault("notes", []).extend(notes[i])  # said in the reasons, not a problem
                if (held_turn := held_history_turn(histories[i], held)) is not None:  # built on a held answer
                    g.extra.setdefault("holds", []).append(held_turn)
                if passages is not None and passages[i] is not None:
                    g.extra["passages"] = passages[i]
                if streamer is not None:  # a reviewer must know that the caller may have shown it already
                    g.extra["notes"].append(STREAMED_NOTE)
                if max_new_tokens is not None:
                    g.extra["max_new_tokens"] = max_new_tokens  # checked against the calibration's
                at["row"] = i

                def decided(result: GuardResult, i: int = i) -> None:
                    results[i] = result

                try:
                    results[i] = self._finish(
                        g, plans[i][0], plans[i][1], route, steer_info, request_ids[i], started, extra_problems[i],
                        decided=decided, run=runs[i] if runs is not None else None,
                    )
                    at["row"] = None
                except AuditError as exc:  # recorded, then a later write failed (its spot-check): the error carries it
                    # (a decision written whose append then raised was handed over by ``decided`` already)
                    results[i] = next(iter(getattr(exc, "results", None) or []), results[i])
                    raise


def _is_domain_name(d: object) -> bool:
    """Whether ``d`` can name a domain in the records: a non-blank string of at most :data:`MAX_NAME_CHARS` characters."""
    return isinstance(d, str) and bool(d.strip()) and len(d) <= MAX_NAME_CHARS


def _choice_problem(result: Any, router: str) -> str | None:
    """Why what :meth:`Guard.choose_domain` (``router``: who ran) returned cannot be used, naming it and the fix; None
    for ``(a domain name or None, an info mapping)``. (The request then gets no domain: review, with this reason.)"""
    fix = "; it must return (a domain name or None, a dict of how it chose, e.g. {'method': 'my-router'})"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return f"{router} returned {type(result).__name__} {result!r:.80}, not a pair{fix}"
    chosen, info = result
    if chosen is not None and not _is_domain_name(chosen):
        return (f"{router} returned the domain {chosen!r:.80} ({type(chosen).__name__}"
                + (f", {len(chosen):,} characters" if isinstance(chosen, str) else "")
                + f"), not a domain name (a non-blank str of at most {MAX_NAME_CHARS} characters) or None{fix}")
    if not isinstance(info, Mapping):
        return f"{router} returned with domain {chosen!r:.80} the info {info!r:.80} ({type(info).__name__}), not a mapping{fix}"
    reason = info.get("reason")
    if reason is not None and not isinstance(reason, str):  # it leads the answer's reasons, which the queue and errors join
        return f"{router} returned the reason {reason!r:.80} ({type(reason).__name__}), not a str{fix}"
    try:  # the decision record's domain_choice holds it as given
        json_safe(dict(info), "domain_choice", what="the info of a domain choice", nonfinite="keep")
    except (InputError, TypeError, ValueError) as e:
        return f"{router} returned info the decision record cannot hold ({e}){fix}"
    return None


def _check_run(i: int, run: Any) -> None:
    """Refuse a caller's ``run`` (of question ``i``) that the record cannot hold as given: a mapping of
    :data:`RUN_KEYS` to strings of at most :data:`MAX_NAME_CHARS` characters (or None)."""
    if run is None:
        return
    if not isinstance(run, Mapping):
        raise InputError(f"run must be a mapping of {', '.join(RUN_KEYS)} to ids, got {type(run).__name__} "
                         f"{run!r:.60} (question {i})")
    unknown = sorted(str(k) for k in run if k not in RUN_KEYS)
    if unknown:  # written into the decision record as they are: another key could stand for one of its own
        raise InputError(f"run of question {i} has key(s) {unknown}; it takes {', '.join(RUN_KEYS)}")
    for key, v in run.items():
        if v is not None and (not isinstance(v, str) or len(v) > MAX_NAME_CHARS):
            raise InputError(f"run {key} of question {i} must be a string of at most {MAX_NAME_CHARS} characters or "
                             f"None, got {type(v).__name__} {v!r:.60}; pass str(...) of it")


#: the ``stage`` of an ``error`` record (:meth:`Guard.record_failed_requests`): the request's generation raised; its
#: scoring or recording (after it was generated, before its decision was recorded); nothing of it was generated (a
#: request of its batch failed first); its domain was being chosen (or its similarity to the domain it named measured:
#: the sentence embedder, which loads on a guard's first question), nothing of it generated; its input was being
#: checked (its prompt built by the tokenizer and chat template, and counted), nothing generated
GENERATION, SCORING, NOT_STARTED, DOMAIN_CHOICE = "generation", "scoring", "not_started", "domain_choice"
INPUT_CHECK = "input_check"

#: the reason of an answer whose tokens went to a streamer as generated (``guard_stream``'s passthrough mode)
STREAMED_NOTE = ("the tokens were handed to the caller's streamer as they were generated (passthrough streaming): the "
                 "caller may have shown this answer before its decision")

__all__ = ["DEFAULT_POLICY", "RETRIEVAL_QUERY", "STREAMED_NOTE", "Guard", "GuardResult", "QueryRewrite", "REVIEW_MARK"]
