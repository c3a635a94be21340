"""The guard: one place that wires model, recorder, probe, signals, policy, audit and review queue.

One guarded answer is one generation: the domain's probe neurons are recorded and the confidence
signals read while the model answers. Grounding (when context is given) is scored on the finished
answer. Whatever goes wrong while scoring becomes a reason and a ``review`` route, never an accept.
Every decision is appended to the audit log before the result is returned, and answers routed to
review are enqueued; if either write fails the caller gets the error, not an unrecorded answer.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._numerics import sigmoid
from ._resources import DEFAULT_POLICY
from .errors import InputError, PolicyError, ProbeError
from .generation import CLOSED_BOOK, RAG, Generation, Generator
from .models import LoadedModel, load_model
from .policy import (
    ABSTAIN,
    ACCEPT,
    CLOSED_BOOK_GROUNDING_WEIGHT,
    REVIEW,
    Decision,
    Policy,
    Thresholds,
    apply_grounding,
    choose_domain,
    decide,
    effective_thresholds,
    load_policy,
    merge_risk,
)

REVIEW_MARK = "[needs review] "


@dataclass
class GuardResult:
    """What the guard decided about one answer."""

    question: str
    answer: str  # the model's answer, whatever the route
    route: str  # "accept" | "abstain" | "review"
    risk: float | None
    signals: dict[str, float | None]
    reasons: list[str]
    domain: str | None
    audit_id: str
    request_id: str
    abstain_message: str
    domain_choice: dict = field(default_factory=dict)
    thresholds: dict | None = None
    probe_id: str | None = None
    steering: dict | None = None
    context: str | None = None
    seconds: float = 0.0
    audit_hash: str | None = None  # the audit record's hash: keep it elsewhere to detect a cut-off log

    @property
    def display_text(self) -> str:
        """What an end user should see: the answer, the abstain message, or the answer marked for review."""
        if self.route == ACCEPT:
            return self.answer
        if self.route == ABSTAIN:
            return self.abstain_message
        return REVIEW_MARK + self.answer

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["display_text"] = self.display_text
        return d


def _join_context(context) -> str | None:
    if context is None:
        return None
    if isinstance(context, str):
        return context
    if isinstance(context, (list, tuple)) and all(isinstance(c, str) for c in context):
        return "\n\n".join(context)
    raise InputError(
        f"context must be a string or a list of strings (retrieved passages), got {type(context).__name__}; "
        f"pass the passages' text"
    )


def _check_text(name: str, value) -> None:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {type(value).__name__}; pass text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: undecodable bytes from argv or a bad decode
        raise InputError(
            f"{name} is not valid text: character {exc.start} is {value[exc.start]!r}, a byte that was not UTF-8; "
            f"pass UTF-8 text (re-encode the input)"
        ) from None


def context_given(context: str | None) -> bool:
    """Whether a request carries context to ground on (then a grounding value must exist)."""
    return context is not None and bool(context.strip())


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite_or_none(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class Guard:
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
        probes: Mapping[str, tuple[Any, dict]] | None = None,
        audit=None,
        review_queue=None,
        embedder=None,
        grounding=None,
    ):
        self.lm = lm
        self.policy = policy
        gen_cfg = policy.generation
        self.generator = Generator(lm, system_prompt=gen_cfg.system_prompt, max_new_tokens=gen_cfg.max_new_tokens)
        self.probes: dict[str, tuple[Any, dict]] = {}  # closed-book calibrations, by domain
        self.rag_probes: dict[str, tuple[Any, dict]] = {}  # calibrations on answers given with context
        for name, entry in (probes or {}).items():
            self._add_probe(name, entry)
        self.probe_errors: dict[str, str] = {}
        self.audit = audit
        self.review_queue = review_queue
        self._embedder = embedder
        self._grounding = grounding
        self._router: dict[str, dict[str, np.ndarray]] | None = None  # per prompt mode
        self._fitted: dict[str, Thresholds | None] = {}
        self._lazy_lock = threading.RLock()  # grounding takes it, then reads embedder
        from .monitor import MonitorState, policy_id

        # the monitor's tightenings, read before routing (the chain is replayed if the state file is missing)
        self.monitor_state = MonitorState(policy.monitor.state, audit.path if audit is not None else policy.audit.path)
        self._policy_id = policy_id(policy)
        self._spot_days: dict[tuple[str, str], int] = {}  # (domain, UTC day) -> spot-checks taken (daily minimum)
        self._spot_lock = threading.Lock()

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_policy(cls, policy: str | Path | Policy | None = None, *, model: str = "default", lm: LoadedModel | None = None, **kw) -> "Guard":
        from .audit import AuditLog

        pol = policy if isinstance(policy, Policy) else load_policy(policy or DEFAULT_POLICY)
        if pol.probes is not None and not Path(pol.probes).is_dir():
            # a wrong folder would send every answer to review with no word about why: refuse to start
            where = f" (probes in {pol.source})" if pol.source is not None else ""
            raise PolicyError(
                f"the probe folder {str(pol.probes)!r}{where} does not exist; point probes at the folder "
                "`hguard calibrate --out` wrote, or use probes = \"package:smollm2-135m\" for the reference probes"
            )
        lm = lm or load_model(model)
        guard = cls(lm, pol, **kw)
        if pol.probes is not None:
            guard.load_probes(pol.probes)
        if guard.audit is None and pol.audit.path is not None:
            guard.audit = AuditLog.from_policy(pol)
        if guard.review_queue is None and pol.review.queue is not None:
            guard.review_queue = _open_queue(pol.review.queue, guard.audit)
        return guard

    def load_probes(self, folder: str | Path) -> None:
        """Read every probe file in ``folder``; unreadable ones are remembered and fail their domain closed."""
        from .integrity import probe_load_options
        from .probe import HNeuronProbe

        signing = probe_load_options(self.policy.integrity)
        folder = Path(folder)
        if not folder.is_dir():
            self.probe_errors["*"] = f"probe folder {str(folder)!r} does not exist; point the policy's probes at the folder `hguard calibrate --out` wrote"
            return
        root = folder.resolve()
        claims: dict[tuple[str, str], list[Path]] = {}
        loaded: dict[tuple[str, str], tuple[Any, dict]] = {}
        for p in sorted(folder.glob("*.json")):
            if p.name == "report.json":
                continue
            try:
                target = p.resolve()
                if target.parent != root:
                    raise ProbeError(
                        f"probe file {str(p)!r} links to {str(target)!r}, outside the probe folder; "
                        "copy the probe into the folder instead of linking it"
                    )
                probe, meta = HNeuronProbe.load(target, **signing)
            except Exception as exc:  # one bad file disables its domain, not the guard
                reason = str(exc) if isinstance(exc, ProbeError) else f"probe file {str(p)!r} cannot be loaded: {type(exc).__name__}: {exc}"
                self.probe_errors[p.stem] = reason
                continue
            # a domain may hold one closed-book and one RAG probe: a claim is a domain in a prompt mode
            key = (meta.get("domain", p.stem), meta.get("prompt_mode", CLOSED_BOOK))
            claims.setdefault(key, []).append(p)
            loaded[key] = (probe, meta)
        for (name, mode), files in claims.items():
            if len(files) > 1:
                self.probe_errors[name] = (
                    f"probe files {', '.join(repr(str(f)) for f in files)} all claim domain {name!r} "
                    f"({mode.replace('_', '-')}); remove all but one of them from the probe folder"
                )
                loaded.pop((name, mode))
        for (name, _mode), entry in loaded.items():
            self._add_probe(name, entry)

    def _add_probe(self, domain: str, entry: tuple[Any, dict]) -> None:
        # The prompt mode is part of the probe's fingerprints; a probe that records none is closed-book.
        (self.rag_probes if entry[1].get("prompt_mode") == RAG else self.probes)[domain] = entry

    def probe_for(self, domain: str | None, rag: bool) -> tuple[tuple[Any, dict] | None, str | None]:
        """The probe that scores a request of this prompt mode in ``domain``, and why there is none
        (or why a closed-book probe scores a request with context)."""
        if domain is None:
            return None, None
        if rag:
            if domain in self.rag_probes:
                return self.rag_probes[domain], None
            if domain in self.probes:
                dp = self.policy.domain(domain)
                if dp is not None and dp.context_with_closed_book_probe == "allow":
                    return self.probes[domain], None
                return None, (
                    f"domain {domain!r} is calibrated closed-book only, and a request with context needs a RAG "
                    f"calibration; calibrate it with `hguard calibrate-rag`, or set context_with_closed_book_probe "
                    f"= \"allow\" in the policy to score it with the closed-book probe"
                )
            return None, None
        if domain in self.probes:
            return self.probes[domain], None
        if domain in self.rag_probes:
            return None, (
                f"domain {domain!r} is calibrated for requests with context only; pass the retrieved passages "
                f"or calibrate the domain closed-book"
            )
        return None, None

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

    def _router_vectors(self, rag: bool | None = None) -> dict[str, np.ndarray]:
        """Router questions' embeddings per domain: of the probes of one prompt mode (``rag`` True or
        False) when any domain has such a probe, else of all probes (``rag`` None: all)."""
        if self._router is None:
            self._router = {}
        key = "all" if rag is None else ("rag" if rag else "closed_book")
        if key not in self._router:
            tables = [self.probes, self.rag_probes]
            if rag is not None and (self.rag_probes if rag else self.probes):
                tables = [self.rag_probes if rag else self.probes]
            questions: dict[str, list[str]] = {}
            for table in tables:
                for name, (_, meta) in table.items():
                    questions.setdefault(name, []).extend(meta.get("router_questions") or [])
            self._router[key] = {
                name: self.embedder.encode(list(qs)) for name, qs in questions.items() if qs and name in self.policy.domains
            }
        return self._router[key]

    def choose_domain(self, question: str, rag: bool | None = None) -> tuple[str | None, dict]:
        """Nearest calibrated domain by the mean of the 5 closest calibration questions' cosine similarity,
        among the domains calibrated for the request's prompt mode (``rag``: with context or not) when any are."""
        router = self._router_vectors(rag)
        if not router:
            return None, {"method": "embedding", "reason": "no calibrated domain has router questions", "similarities": {}}
        q = self.embedder.encode([question])[0]
        sims = {}
        for name, M in router.items():
            s = np.sort(M @ q)[::-1][:5]
            sims[name] = float(s.mean())
        name, why = choose_domain(sims, self.policy)
        return name, {"method": "embedding", "similarities": sims, "reason": why, "chosen": name}

    def fitted_thresholds(self, domain: str, rag: bool = False) -> Thresholds | None:
        """Thresholds for the policy's own target and confidence, fitted on the calibration scores the
        probe file carries (cached); the probe's stored thresholds when it carries none. ``rag`` picks
        the domain's RAG calibration."""
        cache = self._fitted
        key = (domain, rag)
        if key in cache:
            return cache[key]
        probe, meta = (self.rag_probes if rag else self.probes)[domain]
        dp = self.policy.domain(domain)
        scores = meta.get("calibration_scores")
        if dp is not None and scores and scores.get("risk"):
            from .policy import fit_thresholds

            fitted = fit_thresholds(
                scores["risk"], scores["hallucinated"], target=dp.target_hallucination_rate,
                confidence=dp.confidence, abstain_precision=dp.abstain_precision,
            )
        else:
            fitted = Thresholds.from_dict(meta["thresholds"]) if meta.get("thresholds") else None
        cache[key] = fitted
        return fitted

    def _steering(self, domain: str | None) -> tuple[dict[int, float] | None, dict | None]:
        dp = self.policy.domain(domain) if domain else None
        st = getattr(dp, "steering", None) if dp else None
        if st is None or domain not in self.probes:
            return None, None
        alpha = float(st.alpha)
        probe, meta = self.probes[domain]
        h = [int(l) * int(probe.d_ff_) + int(j) for l, j, _ in probe.h_neurons_]
        probe_id = meta.get("probe_id") or getattr(probe, "probe_id_", None)
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
    ) -> GuardResult:
        """Guard one question. ``streamer`` receives the tokens as they are generated (the caller decides
        whether to show them before the decision); ``early_stop`` ends generation as soon as the running
        risk passes the domain's abstain threshold (the answer then abstains). ``history`` (earlier
        turns) and ``system`` (a system instruction replacing the policy's) go into the chat template
        and into the fingerprints the probe is checked against; ``stop`` ends the answer at the first
        of these strings; ``problems`` are the caller's reasons the answer cannot be trusted (each
        routes it to review); ``max_new_tokens`` replaces the policy's for this call."""
        return self.batch(
            [question], [context], [domain], request_ids=[request_id], streamer=streamer, early_stop=early_stop,
            histories=[history], systems=[system], stop=stop, problems=[list(problems)], max_new_tokens=max_new_tokens,
        )[0]

    async def ainvoke(self, question: str, context=None, domain: str | None = None, **kw) -> GuardResult:
        return await asyncio.to_thread(self.invoke, question, context, domain, **kw)

    async def abatch(self, questions, contexts=None, domains=None) -> list[GuardResult]:
        return await asyncio.to_thread(self.batch, questions, contexts, domains)

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
    ) -> list[GuardResult]:
        """Guard several questions; answers that share a domain share one batched generation.
        ``histories``, ``systems`` and ``problems`` hold one entry per question (see :meth:`invoke`)."""
        if isinstance(questions, str):
            raise InputError("questions must be a list of strings; use invoke() for a single question")
        n = len(questions)
        contexts = [None] * n if contexts is None else list(contexts)
        domains = [None] * n if domains is None else list(domains)
        request_ids = [None] * n if request_ids is None else list(request_ids)
        histories = [None] * n if histories is None else list(histories)
        systems = [None] * n if systems is None else list(systems)
        extra_problems = [[] for _ in range(n)] if problems is None else [list(p or ()) for p in problems]
        if not (len(contexts) == len(domains) == len(request_ids) == len(histories) == len(systems) == len(extra_problems) == n):
            raise InputError(f"got {n} questions, {len(contexts)} contexts and {len(domains)} domains; pass one of each per question")
        ctxs = [_join_context(c) for c in contexts]
        for q, c, h, s in zip(questions, ctxs, histories, systems):  # every input is checked before any generation or record
            _check_text("question", q)
            if c is not None:
                _check_text("context", c)
            self.generator.prompt_ids(q, c, history=h, system=s)
        started = time.perf_counter()
        plans = []
        for q, d, c in zip(questions, domains, ctxs):
            if d is not None and not isinstance(d, str):
                raise InputError(f"domain must be a string or None, got {type(d).__name__}")
            if d is None:
                try:
                    chosen, info = self.choose_domain(q, rag=c is not None)
                except Exception as exc:  # no domain: routed by default_route, never accepted
                    chosen, info = None, {
                        "method": "embedding",
                        "reason": f"domain choice failed: {type(exc).__name__}: {exc}",
                        "similarities": {},
                    }
                plans.append((chosen, {**info, "given": False}))
            else:
                plans.append((d, {"method": "given", "given": True, "chosen": d}))
        results: list[GuardResult | None] = [None] * n
        groups: dict[tuple[str | None, bool], list[int]] = {}
        for i, (d, _) in enumerate(plans):
            groups.setdefault((d, ctxs[i] is not None), []).append(i)
        for (d, rag), idx in groups.items():
            probe_entry, mode_problem = self.probe_for(d, rag)
            neurons = [int(i) for i in probe_entry[0].feature_indices_] if probe_entry else None
            steer, steer_info = self._steering(d)
            stopper = _EarlyAbstain(self, d, probe_entry) if early_stop and probe_entry else None
            gens = self.generator.generate(
                [questions[i] for i in idx], [ctxs[i] for i in idx], neurons=neurons, steering=steer,
                batch_size=len(idx), streamer=streamer, stopping_criteria=[stopper] if stopper else (),
                histories=[histories[i] for i in idx], systems=[systems[i] for i in idx], stop=stop,
                max_new_tokens=max_new_tokens,
            )
            if stopper is not None:
                for row, g in enumerate(gens):
                    g.extra["stopped_early"] = bool(stopper.stopped[row]) if row < len(stopper.stopped) else False
            for i, g in zip(idx, gens):
                if mode_problem:
                    g.extra["mode_problem"] = mode_problem
                results[i] = self._finish(
                    g, plans[i][0], plans[i][1], probe_entry, steer_info, request_ids[i], started, extra_problems[i]
                )
        return results  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------- scoring

    def _score(self, g: Generation, domain: str | None, probe_entry, problems: list[str]) -> tuple[dict, float | None, Thresholds | None, list[str]]:
        signals: dict[str, float | None] = {}
        for k, v in g.confidence.items():
            signals[k] = _finite_or_none(v)
            if signals[k] is None:  # None in the record; the reason says what the value was
                problems.append(f"confidence signal {k!r} is {_shown(v)}, not a finite number")
        signals["log_length"] = math.log1p(signals["length"]) if signals.get("length") is not None else None
        fingerprint_problems: list[str] = []
        risk = None
        thresholds = None
        dp = self.policy.domain(domain) if domain else None
        if context_given(g.context):
            try:
                scored = self.grounding.score(g.question, g.text, g.context)
                if not isinstance(scored, Mapping):
                    raise TypeError(f"the grounding scorer returned {type(scored).__name__}, not a mapping of signals")
                for k, v in scored.items():
                    signals[k] = _finite_or_none(v)
                    if signals[k] is None:
                        problems.append(f"grounding signal {k!r} is {_shown(v)}, not a finite number")
                if "grounding" not in scored:
                    problems.append("grounding returned no 'grounding' support value for an answer given with context")
            except Exception as exc:  # fail closed: the reason travels with the decision
                problems.append(f"grounding failed: {type(exc).__name__}: {exc}")
        notes: list[str] = g.extra.setdefault("notes", [])
        if domain is not None and probe_entry is None and g.extra.get("mode_problem"):
            problems.append(g.extra["mode_problem"])
        elif domain is not None and probe_entry is None:
            why = self.probe_errors.get(domain) or self.probe_errors.get("*")
            problems.append(
                f"domain {domain!r} has no calibrated probe"
                + (f" ({why})" if why else "")
                + f"; calibrate it with `hguard calibrate --data FILE.jsonl --out DIR --domain {domain}` "
                "and point the policy's probes at DIR, or route it by policy"
            )
        if probe_entry is not None:
            probe, meta = probe_entry
            from .probe import check_fingerprints

            probe_mode = meta.get("prompt_mode", CLOSED_BOOK)
            expected = g.extra.get("fingerprints") or self.generator.fingerprints  # the call's own (history, system)
            if probe_mode == RAG:
                from .generation import prompt_fingerprints

                expected = {**expected, **prompt_fingerprints(RAG)}
            fingerprint_problems = check_fingerprints(meta, expected)
            try:
                if g.cett is None or not np.all(np.isfinite(g.cett)):
                    raise ValueError("neuron contributions are missing or not finite")
                if not g.token_ids:
                    raise ValueError("the answer is empty")
                logit = float(probe.decision_function_subset(g.cett[None, :], lengths=[g.confidence["length"]])[0])
                if not math.isfinite(logit):
                    raise ValueError(f"the probe's logit is {logit!r}, not a finite number")
                signals["neuron_logit"] = logit
                signals["neuron_risk"] = sigmoid(logit)
                if meta.get("ood"):
                    from .ood import feature_distance, ood_problem

                    signals["ood_distance"] = _finite_or_none(feature_distance(probe, g.cett[None, :])[0])
                    signals["ood_threshold"] = float(meta["ood"]["threshold"])
                    far = ood_problem(signals["ood_distance"], meta["ood"])
                    if far and dp is not None and dp.out_of_distribution == "warn":
                        notes.append(f"warning: {far} (out_of_distribution = 'warn')")
                    elif far:
                        problems.append(far)
                if probe_mode == RAG:
                    from .signals.conflict import closed_book_scores

                    signals.update(closed_book_scores(self.generator, [g.question], [g.text], [g.confidence["mean_logprob"]])[0])
                    from .signals.relevance import add_relevance

                    signals.update(add_relevance(signals, g.question, g.text, g.context, embedder=getattr(self.grounding, "embedder", None)))
                merger = meta.get("merger")
                base = merge_risk(signals, merger) if merger else signals["neuron_risk"]
                support = signals.get("grounding")
                if g.context is not None and support is None:
                    raise ValueError("the grounding support of an answer given with context could not be computed")
                override = dp.grounding_weight if dp is not None else None
                if g.context is not None and probe_mode == CLOSED_BOOK:
                    weight = override if override is not None else CLOSED_BOOK_GROUNDING_WEIGHT
                    risk = apply_grounding(base, support, weight)
                    notes.append(
                        f"a closed-book probe scores this request with context (context_with_closed_book_probe = "
                        f"'allow'): grounding_weight {weight} applied by hand, no RAG calibration guarantee"
                    )
                elif g.context is not None and override is not None:
                    risk = apply_grounding(base, support, override)
                    notes.append(f"manual grounding_weight override {override} in force on top of the calibrated RAG risk")
                else:
                    risk = base
                signals["merged_risk_before_grounding"] = base
                if probe_mode == RAG and meta.get("knowledge_conflict"):
                    self._knowledge_conflict(signals, meta["knowledge_conflict"], dp, problems, notes)
                fitted = self.fitted_thresholds(domain, rag=probe_mode == RAG)
                thresholds = effective_thresholds(dp, fitted) if dp is not None else fitted
            except Exception as exc:
                problems.append(f"scoring failed: {type(exc).__name__}: {exc}")
                risk = None
        return signals, risk, thresholds, fingerprint_problems

    @staticmethod
    def _knowledge_conflict(signals: dict, detector: dict, dp, problems: list[str], notes: list[str]) -> None:
        """Flag an answer that follows the context against what the model holds without it, and route
        it per the domain's ``knowledge_conflict`` policy (review by default, or trust the context)."""
        from .signals.conflict import conflict_score

        score = conflict_score(signals, detector["detector"])
        signals["knowledge_conflict"] = score
        if score < float(detector["threshold"]):
            return
        how = dp.knowledge_conflict if dp is not None else "review"
        what = (
            f"knowledge conflict: the answer follows the context against what the model holds without it "
            f"(score {score:.3g} >= {float(detector['threshold']):.3g})"
        )
        if how == "trust_context":
            notes.append(f"{what}; knowledge_conflict = 'trust_context': routed as scored")
        else:
            problems.append(f"{what}; knowledge_conflict = 'review' (untrusted retrieval)")

    def _finish(self, g: Generation, domain, choice: dict, probe_entry, steer_info, request_id, started, given=()) -> GuardResult:
        problems: list[str] = list(given)
        try:
            signals, risk, thresholds, fp = self._score(g, domain, probe_entry, problems)
        except Exception as exc:  # anything unforeseen still ends in review
            signals, risk, thresholds, fp = dict(g.confidence), None, None, []
            problems.append(f"scoring failed: {type(exc).__name__}: {exc}")
        dp = self.policy.domain(domain) if domain else None
        from .monitor import tightened_thresholds

        thresholds, tightened = tightened_thresholds(self.monitor_state.get(domain), thresholds)
        decision: Decision = decide(
            risk,
            domain_policy=dp,
            thresholds=thresholds,
            problems=problems,
            grounding=signals.get("grounding"),
            context_given=context_given(g.context),
            fingerprint_problems=fp,
            policy=self.policy,
            domain=domain,
            domain_chosen=domain is not None,
        )
        reasons = list(decision.reasons) + list(g.extra.get("notes") or [])
        if tightened:
            reasons.insert(0, tightened)
        if g.extra.get("stopped_early"):
            reasons.append("generation stopped early: the running risk passed the abstain threshold")
        if not choice.get("given") and choice.get("reason"):
            reasons.insert(0, choice["reason"])
        abstain_message = (dp.abstain_message if dp is not None and dp.abstain_message else None) or self.policy.abstain_message
        request_id = request_id or uuid.uuid4().hex
        probe_id = probe_entry[1].get("probe_id") if probe_entry else None
        if probe_entry and probe_id is None:
            probe_id = getattr(probe_entry[0], "probe_id_", None)
        result = GuardResult(
            question=g.question,
            answer=g.text,
            route=decision.route,
            risk=_finite_or_none(decision.risk),
            signals=signals,
            reasons=reasons,
            domain=domain,
            audit_id="",
            request_id=request_id,
            abstain_message=abstain_message,
            domain_choice=choice,
            thresholds=decision.thresholds,
            probe_id=probe_id,
            steering=steer_info,
            context=g.context,
            seconds=time.perf_counter() - started,
        )
        self._record(result, g.extra.get("fingerprints"))
        return result

    def record_failure(self, question, exc: BaseException, *, context=None, domain=None, source: str = "api") -> str | None:
        """Write a request that failed before a decision (bad input, a generation or audit error) to the
        audit log as an ``error`` record; returns its id, or None without a log or when writing fails too
        (the caller is already handling the original error)."""
        if self.audit is None:
            return None

        def text(v):
            return v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else repr(v)

        record = {
            "source": source,
            "error": f"{type(exc).__name__}: {exc}",
            "question": text(question),
            "context": None if context is None else text(context if isinstance(context, str) else repr(context)),
            "domain": domain if isinstance(domain, str) else None,
            "model": self.lm.name,
            "model_fingerprint": self.lm.fingerprint,
        }
        try:
            return self.audit.append(record, kind="error").id
        except Exception:
            return None

    def _record(self, result: GuardResult, fingerprints: dict | None = None) -> None:
        record = {
            "request_id": result.request_id,
            "policy_id": self._policy_id,
            "domain": result.domain,
            "domain_choice": result.domain_choice,
            "model": self.lm.name,
            "model_fingerprint": self.lm.fingerprint,
            "fingerprints": fingerprints or self.generator.fingerprints,  # the call's own when it had history or a system prompt
            "probe_id": result.probe_id,
            "thresholds": result.thresholds,
            "signals": result.signals,
            "risk": result.risk,
            "route": result.route,
            "reasons": result.reasons,
            "steering": result.steering,
            "question": result.question,
            "answer": result.answer,
            "context": result.context,
        }
        if self.audit is not None:
            receipt = self.audit.append(record, kind="decision")
            result.audit_id = receipt.id
            result.audit_hash = receipt.hash
        else:
            result.audit_id = result.request_id
        spot = self._spot_check(result) if result.route == ACCEPT else None
        if (result.route == REVIEW or spot) and self.review_queue is not None:
            self.review_queue.enqueue(
                {
                    "spot_check": bool(spot),
                    "audit_id": result.audit_id,
                    "question": result.question,
                    "context": result.context,
                    "answer": result.answer,
                    "domain": result.domain,
                    "risk": result.risk,
                    "signals": result.signals,
                    "reasons": ([f"spot-check of an accepted answer: {spot['selected_because']}"] if spot else [])
                    + result.reasons,
                    "model_fingerprint": self.lm.fingerprint,
                    "probe_id": result.probe_id,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )

    def _spot_check(self, result: GuardResult) -> dict | None:
        """The seeded spot-check selection of one accepted answer (see hguard.monitor); recorded when selected."""
        from .monitor import SPOT, spot_check_decision

        if result.domain is None:
            return None
        day = time.strftime("%Y-%m-%d", time.gmtime())
        with self._spot_lock:
            taken = self._spot_days.get((result.domain, day), 0)
            spot = spot_check_decision(self.policy, result.domain, result.audit_id, taken)
            if spot is None:
                return None
            self._spot_days[(result.domain, day)] = taken + 1
        if self.audit is not None:
            self.audit.append({**spot, "request_id": result.request_id}, kind=SPOT)
        return spot


class _EarlyAbstain:
    """A stopping criterion: ends a row once its running merged risk (probe on the tokens so far and
    the confidence so far) reaches the domain's abstain threshold, after ``min_tokens`` tokens."""

    def __init__(self, guard: "Guard", domain: str | None, probe_entry, min_tokens: int = 3):
        import torch

        self.guard, self.domain, self.min_tokens = guard, domain, min_tokens
        self.probe, self.meta = probe_entry
        dp = guard.policy.domain(domain) if domain else None
        rag = self.meta.get("prompt_mode") == RAG
        fitted = guard.fitted_thresholds(domain, rag=rag) if domain in (guard.rag_probes if rag else guard.probes) else None
        t = effective_thresholds(dp, fitted) if dp is not None else fitted
        self.abstain_above = t.abstain_above if t is not None else None
        self.stopped = torch.zeros(0, dtype=torch.bool)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        bsz = input_ids.shape[0]
        if self.stopped.numel() != bsz:
            self.stopped = torch.zeros(bsz, dtype=torch.bool)
        state = self.guard.generator.running
        if state is None or self.abstain_above is None or self.abstain_above >= 1.0:
            return self.stopped.clone()
        counts = state.n_tokens()
        cett = state.cett()
        for row in range(bsz):
            if self.stopped[row] or counts[row] < self.min_tokens:
                continue
            conf = state.confidence(row)
            try:
                logit = float(self.probe.decision_function_subset(cett[row : row + 1], lengths=[conf["length"]])[0])
                signals = {**conf, "log_length": math.log1p(conf["length"]), "neuron_logit": logit}
                merger = self.meta.get("merger")
                risk = merge_risk(signals, merger) if merger else sigmoid(logit)
            except Exception:
                continue  # no early decision; the full answer is scored (and fails closed) as usual
            if risk >= self.abstain_above:
                self.stopped[row] = True
        return self.stopped.clone()


def _open_queue(path, audit):
    from .review.queue import ReviewQueue

    # verdicts given later through this queue land in the same audit chain as the decisions
    return ReviewQueue(path, audit=audit)


__all__ = ["DEFAULT_POLICY", "Guard", "GuardResult", "REVIEW_MARK"]
