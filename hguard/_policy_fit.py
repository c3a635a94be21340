"""Threshold fitting: :func:`fit_thresholds`, a Learn-then-Test procedure (Angelopoulos et al. 2021)
with a finite-sample guarantee on the hallucination rate among accepted answers, and
:func:`risk_coverage_curve`. numpy and scipy are imported inside the functions so the routing path
stays importable without them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hguard._policy_thresholds import ABSTAINS_ON_NEARLY_ALL, Thresholds
from hguard._numerics import is_real
from hguard._policy_values import _fmt
from hguard._stats import clopper_pearson_lower, clopper_pearson_upper
from hguard.errors import InputError
from hguard.errors import shown as _short

if TYPE_CHECKING:
    import numpy as np


def _calibration_arrays(risks: "Sequence[float] | np.ndarray", hallucinated: "Sequence[Any] | np.ndarray"):
    import numpy as np

    r = np.asarray(list(risks), dtype=float) if not hasattr(risks, "dtype") else np.asarray(risks, dtype=float)
    if r.ndim != 1 or r.size == 0:
        raise InputError(f"risks must be a non-empty 1-D sequence of numbers, got shape {r.shape}; pass one risk per answer")
    labels = list(hallucinated) if not hasattr(hallucinated, "dtype") else np.asarray(hallucinated).tolist()
    if len(labels) != r.size:
        raise InputError(
            f"risks has {r.size} values but hallucinated has {len(labels)}; pass one label per risk"
        )
    bad = np.flatnonzero(~np.isfinite(r) | (r < 0) | (r > 1))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"risks[{i}] is {r[i]!r}, not a number in [0, 1]; drop or rescore that answer")
    y_raw = np.asarray(labels, dtype=object)
    is_label = np.array([isinstance(v, (bool, np.bool_)) or (is_real(v) and v in (0, 1)) for v in labels], dtype=bool)
    if not is_label.all():
        i = int(np.flatnonzero(~is_label)[0])
        raise InputError(f"hallucinated[{i}] is {_short(labels[i])}; labels must be True/False (or 0/1)")
    y = y_raw.astype(bool)
    return r, y


def _sorted_groups(r, y):
    """Unique risk values ascending, and for each: #answers with risk below it, #hallucinations among them."""
    import numpy as np

    order = np.argsort(r, kind="stable")
    rs, ys = r[order], y[order]
    uniq, below = np.unique(rs, return_index=True)
    cum_err = np.concatenate([[0], np.cumsum(ys, dtype=np.int64)])
    return uniq, below.astype(np.int64), cum_err


def _accept_candidates(r, y):
    """Candidate accept thresholds (strict -> lenient) with accepted counts and errors."""
    import numpy as np

    uniq, below, cum_err = _sorted_groups(r, y)
    t = uniq[1:]
    n_acc = below[1:]
    if uniq[-1] < 1.0:
        # Beyond the largest calibration risk every answer is accepted.
        t = np.append(t, 1.0)
        n_acc = np.append(n_acc, r.size)
    return t, n_acc, cum_err[n_acc]


def _family_pvalues(r, y, families, thresholds, target):
    """Per family and candidate threshold, ``P(Binom(n_f, target) <= k_f)`` for the family's ``n_f`` answers
    below it (``k_f`` hallucinated; 0 where the family has none): ``(names, p, k, n)``, arrays of shape
    (families, thresholds). The intersection-union test reads the largest p over families."""
    import numpy as np
    from scipy.special import bdtr

    fam = np.asarray(list(families), dtype=object)
    if fam.shape != r.shape:
        raise InputError(f"fit_thresholds: families has {fam.size} names for {r.size} answers; pass one per answer")
    names = sorted(set(fam.tolist()))
    p = np.zeros((len(names), len(thresholds)))
    k = np.zeros((len(names), len(thresholds)), dtype=np.int64)
    n = np.zeros((len(names), len(thresholds)), dtype=np.int64)
    for i, f in enumerate(names):
        rf, yf = r[fam == f], y[fam == f]
        order = np.argsort(rf, kind="stable")
        cum_err = np.concatenate([[0], np.cumsum(yf[order], dtype=np.int64)])
        n[i] = np.searchsorted(rf[order], thresholds, side="left")  # answers with risk < threshold
        k[i] = cum_err[n[i]]
        p[i] = np.where(n[i] > 0, bdtr(k[i], n[i], target), 0.0)
    return names, p, k, n


def risk_coverage_curve(risks: Sequence[float], hallucinated: Sequence[Any]) -> list[tuple[float, float, float]]:
    """Points ``(coverage, error_rate, threshold)`` for every distinct accept threshold.

    ``threshold`` is an ``accept_below`` value; ``coverage`` is the share of
    answers with ``risk < threshold`` and ``error_rate`` the hallucination rate
    among them. Points are ordered by increasing coverage; thresholds that
    accept nothing are left out (their error rate is undefined).
    """
    r, y = _calibration_arrays(risks, hallucinated)
    t, n_acc, k_acc = _accept_candidates(r, y)
    n = r.size
    return [
        (float(na) / n, float(ka) / float(na), float(th))
        for th, na, ka in zip(t.tolist(), n_acc.tolist(), k_acc.tolist())
        if na > 0
    ]


def _min_n(rate: float, delta: float) -> int:
    # Smallest n where even a perfect sample (0 of n bad, or n of n bad) can
    # reject at level delta: rate**n <= delta.
    return int(math.ceil(math.log(delta) / math.log(rate) - 1e-12))


def check_levels(where: str = "", **levels: Any) -> None:
    """InputError unless each of ``levels`` (a target rate, a confidence) is a number strictly between 0 and 1;
    ``where`` opens the message (the function or command it was given to)."""
    for name, value in levels.items():
        if not is_real(value) or not (0.0 < value < 1.0):
            raise InputError(f"{where}{name} must be a number strictly between 0 and 1, got {_short(value)}")


def fit_thresholds(
    risks: Sequence[float] | np.ndarray,
    hallucinated: Sequence[Any] | np.ndarray,
    *,
    target: float = 0.10,
    confidence: float = 0.95,
    abstain_precision: float = 0.9,
    min_coverage: float = 0.10,
    families: Sequence[str] | None = None,
) -> Thresholds:
    """Fit accept/abstain thresholds with a finite-sample guarantee (Learn then Test).

    ``families`` (one name per answer): the accept threshold must then hold in *every* family at once, an
    intersection-union test: at each candidate the largest of the families' binomial p-values is tested
    (a family with no answer below the candidate has none to bound). It certifies "at most ``target``
    hallucinations among the accepted answers of each calibrated family", not of the pool alone.

    Guarantee: with probability at least ``confidence`` over the draw of the
    calibration set (i.i.d. with future answers), the hallucination rate among
    answers with ``risk < accept_below`` is at most ``target``.

    Procedure (Angelopoulos et al. 2021, fixed-sequence testing): candidate
    thresholds are the distinct calibration risks (plus 1.0), ordered from
    strict to lenient. For each, H0 "error rate among {risk < t} > target" is
    tested with the exact binomial tail ``P(Binom(n_t, target) <= k_t)`` at
    level ``delta = 1 - confidence``. The walk stops at the first candidate
    that fails; the last one that passed is ``accept_below``. If none passes,
    ``accept_below = 0.0`` (accept nothing) and ``method`` says so.

    Candidates whose accepted set is too small to ever pass (fewer than
    ``log(delta) / log(1 - target)`` answers, where even zero errors cannot
    reject) are skipped rather than allowed to end the walk; which ones they
    are depends only on the risks, not on the labels, and a threshold at an
    order statistic still sees an i.i.d. sample below it.

    ``accept_below`` is always a calibration risk (the one just above the
    accepted answers), so the answers below it are an i.i.d. sample of
    {risk < accept_below} and the binomial test is exact.

    The walk starts at the first candidate that accepts at least
    ``min_coverage`` of the calibration answers (and enough of them to be
    testable). Like the skipping above, where it starts depends on the risks
    only, never on the labels, so the fixed sequence keeps its guarantee; it
    spares the walk from ending on the handful of lowest-risk answers, where
    a single hallucination fails a test that has almost no power (measured on
    the default model: starting at the strictest threshold, every bundled
    domain accepted nothing even at a 30% target). With few calibration
    answers, or risks that separate poorly, it still often accepts nothing:
    that is the price of the guarantee; more calibration answers buy coverage.

    ``abstain_above`` mirrors this from the top: the lowest threshold such
    that, walking down from the first candidate that abstains on at least
    ``min_coverage`` of the answers, every {risk >= t} passes ``lower bound of
    the hallucination share >= abstain_precision``; ``1.0`` (abstain
    practically never) when none does. Starting at the smallest testable set
    instead let one right answer among the top few dozen end the walk (on the
    default model, geography's abstain threshold moved from 0.67 to 0.96 when
    two of 1,165 calibration labels changed). Where it lies below ``accept_below`` it is raised, the accept
    guarantee taking precedence and abstaining less being safe, but only to a threshold the walk certified (the
    lowest at or above ``accept_below``), else to ``1.0``; ``certified_abstain`` then keeps the walk's own, which
    :meth:`Thresholds.accepting_nothing` restores when the accept threshold is withdrawn. (Raised to
    ``accept_below`` itself, 15 answers at or above it where its test needed 16, an abstain threshold stayed in
    force after the accept threshold was withdrawn with a lower bound of 0.898 < the 0.9 required.)
    """
    check_levels("fit_thresholds: ", target=target, confidence=confidence, abstain_precision=abstain_precision)
    if not is_real(min_coverage) or not (0.0 <= min_coverage < 1.0):
        raise InputError(f"fit_thresholds: min_coverage must be a number in [0, 1), got {_short(min_coverage)}")
    import numpy as np

    # scipy.special holds the same exact binomial / beta functions that
    # scipy.stats.binom and scipy.stats.beta wrap, and imports several times faster.
    from scipy.special import bdtr, bdtrc

    r, y = _calibration_arrays(risks, hallucinated)
    n = int(r.size)
    delta = 1.0 - confidence
    notes: list[str] = [f"learn-then-test, fixed-sequence, exact binomial (Clopper-Pearson), delta={_fmt(delta)}"]
    if families is not None:
        notes.append(f"the accept threshold must hold in each of the {len(set(families))} families at once "
                     "(intersection-union: the largest family p-value is tested)")

    # --- accept side ---
    t, n_acc, k_acc = _accept_candidates(r, y)
    need = max(_min_n(1.0 - target, delta), int(math.ceil(min_coverage * n)))
    testable = np.flatnonzero(n_acc >= need)
    accept_below = 0.0
    acc_n = acc_k = 0
    if testable.size == 0:
        notes.append(
            f"no accept threshold: {n} calibration answers, at least {need} needed below a threshold "
            f"for target {_fmt(target)} at confidence {_fmt(confidence)}; accept nothing"
        )
    else:
        start = int(testable[0])
        pooled = bdtr(k_acc[start:], n_acc[start:], target)  # P(Binom(n, target) <= k)
        pvals = pooled
        if families is not None:
            names, fam_p, fam_k, fam_n = _family_pvalues(r, y, families, t[start:], target)
            pvals = np.maximum(pooled, fam_p.max(axis=0))
        failed = np.flatnonzero(pvals > delta)
        n_pass = int(failed[0]) if failed.size else int(pvals.size)
        if n_pass == 0:
            why = ""
            if families is not None and pooled[0] <= delta:  # the pooled answers pass; a family does not
                w = int(np.argmax(fam_p[:, 0]))
                k_w, n_w = int(fam_k[w, 0]), int(fam_n[w, 0])
                why = (f"; pooled it would pass, but family {names[w]!r} cannot be certified: {k_w} of its {n_w} "
                       "answers below it are hallucinations" + (", over the target" if n_w and k_w / n_w > target else
                                                                 ", too few answers to show the target at this confidence"))
            notes.append(
                f"no accept threshold passed (the strictest testable one, {_fmt(float(t[start]))}, has "
                f"{int(k_acc[start])}/{int(n_acc[start])} hallucinations{why}); accept nothing"
            )
        else:
            best = start + n_pass - 1
            accept_below = float(t[best])
            acc_n, acc_k = int(n_acc[best]), int(k_acc[best])
            notes.append(f"accept_below passed {n_pass} of {t.size - start} testable candidates")
            if families is not None:  # a family with no answer below it was not tested, only left out of what is accepted
                below = [name for name, m in zip(names, fam_n[:, n_pass - 1]) if m > 0]
                untested = len(names) - len(below)
                if untested:
                    notes.append(f"{len(below)} of the {len(names)} families have calibration answers below it "
                                 f"({', '.join(below)}); the other {untested} have none, so nothing of theirs was accepted "
                                 "or tested: an answer of such a kind the threshold does accept carries no evidence")

    coverage = acc_n / n
    error_rate = acc_k / acc_n if acc_n else None
    ucb = clopper_pearson_upper(acc_k, acc_n, float(confidence)) if acc_n else None

    # --- abstain side ---
    uniq, below, cum_err = _sorted_groups(r, y)
    n_ab = n - below  # answers with risk >= uniq[j]
    k_ab = int(cum_err[-1]) - cum_err[below]
    need_ab = max(_min_n(abstain_precision, delta), int(math.ceil(min_coverage * n)))
    passed = np.zeros(0)  # the abstain thresholds the walk certified (each {risk >= t} passed), highest first
    order = np.arange(uniq.size)[::-1]  # from the top down
    order = order[n_ab[order] >= need_ab]  # the walk starts where it abstains on min_coverage (risks only)
    if order.size == 0:
        notes.append(f"no abstain threshold: fewer than {need_ab} answers at the top; abstain_above = 1: abstain only on answers that decline")
    else:
        # P(Binom(n, p0) >= k) <= delta  <=>  Clopper-Pearson lower bound >= p0
        pvals = bdtrc(k_ab[order] - 1, n_ab[order], abstain_precision)
        failed = np.flatnonzero(pvals > delta)
        n_pass = int(failed[0]) if failed.size else int(pvals.size)
        if n_pass == 0:
            notes.append("no abstain threshold passed; abstain_above = 1: abstain only on answers that decline")
        else:
            passed = uniq[order[:n_pass]]
            notes.append(f"abstain_above passed {n_pass} of {order.size} testable candidates")
    abstain_above = float(passed[-1]) if passed.size else 1.0

    def abstain_figures(threshold: float) -> dict[str, Any]:
        abstained = r >= threshold
        ab_n, ab_k = int(np.count_nonzero(abstained)), int(np.count_nonzero(y & abstained))
        return {"abstain_above": threshold, "abstained_share": ab_n / n,
                "abstained_precision_lcb": clopper_pearson_lower(ab_k, ab_n, float(confidence)) if ab_n else None}

    certified = abstain_figures(abstain_above)
    raised_from = None
    if abstain_above < accept_below:
        # only to a threshold the walk certified (any of them is: fixed-sequence testing), else to 1 (abstain
        # practically never): a value above the walk's start was never tested, however near accept_below
        higher = passed[passed >= accept_below]
        abstain_above = float(higher[-1]) if higher.size else 1.0
        raised_from = certified
        notes.append(f"abstain_above raised from its certified {_fmt(certified['abstain_above'])} to "
                     + (f"{_fmt(abstain_above)}, the lowest certified one at or above accept_below" if higher.size else
                        "1 (no certified abstain threshold lies at or above accept_below): abstain only on answers that decline")
                     + "; withdrawing the accept threshold restores the certified one")
    figures = abstain_figures(abstain_above)
    ab_n, ab_k = int(np.count_nonzero(r >= abstain_above)), int(np.count_nonzero(y & (r >= abstain_above)))
    if n and ab_n / n >= ABSTAINS_ON_NEARLY_ALL:
        notes.append(f"abstain_above abstains on {ab_n} of the {n} calibration answers ({ab_k} hallucinated): "
                     "the model is wrong on nearly every answer, so the domain abstains on nearly all, right ones included")

    return Thresholds(
        accept_below=accept_below,
        abstain_above=abstain_above,
        target=float(target),
        confidence=float(confidence),
        n_calibration=n,
        coverage=coverage,
        accepted_error_rate=error_rate,
        accepted_error_ucb=ucb,
        method="; ".join(notes),
        abstain_precision=float(abstain_precision),
        abstained_share=figures["abstained_share"],
        abstained_precision_lcb=figures["abstained_precision_lcb"],
        certified_abstain=raised_from,
    )


#: how fits before ``Thresholds.certified_abstain`` said they raised abstain_above to accept_below itself (a value the
#: abstain walk may never have tested, and which stayed in force when the accept threshold was withdrawn)
_RAISED_UNTESTED = "; abstain_above raised to accept_below"


def stored_abstain_recertified(thresholds, risk: Sequence[float] | None, hallucinated: Sequence[int] | None):
    """Stored ``thresholds`` (a probe file's) whose abstain threshold an older release raised to accept_below itself,
    with a certified one instead: refitted on the file's calibration ``risk`` and ``hallucinated`` (the scores they
    were fitted on) at their own target, confidence and abstain precision, the walk's certified threshold where the
    accept threshold is withdrawn or lies below it, else the raised one of the refit when it reproduces the stored
    accept_below, else ``1.0`` (abstain only on answers that decline; so also without scores). Unchanged otherwise."""
    if thresholds is None or _RAISED_UNTESTED not in thresholds.method:
        return thresholds
    from dataclasses import replace

    figures: dict[str, Any] = {"abstain_above": 1.0, "abstained_share": None, "abstained_precision_lcb": None}
    keep = None
    if risk is not None and hallucinated is not None and len(risk):
        refit = fit_thresholds(list(risk), list(hallucinated), target=thresholds.target, confidence=thresholds.confidence,
                               abstain_precision=thresholds.abstain_precision or 0.9)
        own = {k: getattr(refit, k) for k in ("abstain_above", "abstained_share", "abstained_precision_lcb")}
        certified = dict(refit.certified_abstain) if refit.certified_abstain is not None else own
        if thresholds.accept_below <= certified["abstain_above"]:
            figures = certified
        elif refit.accept_below == thresholds.accept_below:
            figures, keep = own, refit.certified_abstain
        else:
            n_top = sum(1 for v in risk if v >= 1.0)
            figures["abstained_share"] = n_top / len(risk)
    if figures["abstain_above"] == thresholds.abstain_above:
        return thresholds
    return replace(thresholds, **figures, certified_abstain=keep, method=(
        f"{thresholds.method}; abstain_above {_fmt(thresholds.abstain_above)} (raised to accept_below by the release "
        f"that wrote this file, a threshold its test may never have reached) replaced at load by the certified "
        f"{_fmt(figures['abstain_above'])}"))


def withdrawn_on_held_out(thresholds, risk: Sequence[float], hallucinated: Sequence[int],
                          out_of_distribution: Sequence[int] | None = None):
    """``thresholds`` with a certified accept threshold withdrawn (accept nothing, ``method`` saying why) when the
    calibration's held-out answers, which chose none of it, reject it: among those it accepts, the hallucination rate's
    one-sided lower bound at the thresholds' confidence lies above their target. Certified on 16 easy answers of one
    family, an accept threshold accepted 4 of 7 held-out answers hallucinated (a new user's own domain), and a guard
    then accepted invented answers under it. Unchanged otherwise (no accept threshold, or no held-out answer
    accepted). ``out_of_distribution`` (1 per answer the out-of-distribution check sends to review): those are not
    accepted, whatever their risk, as a guard routes them."""
    if not thresholds.accept_below or thresholds.hand_set_measured is not None:
        return thresholds
    far = out_of_distribution if out_of_distribution is not None else [0] * len(risk)
    accepted = [int(y) for r, y, o in zip(risk, hallucinated, far) if r < thresholds.accept_below and not o]
    n, k = len(accepted), sum(accepted)
    if not n:
        return thresholds
    low = clopper_pearson_lower(k, n, thresholds.confidence)
    if low <= thresholds.target:
        return thresholds
    return thresholds.accepting_nothing(
        f"withdrawn: accept_below {thresholds.accept_below:.4g} accepts {k} hallucinated of {n} held-out answers (the "
        f"calibration's held-out split, which did not choose it): at confidence {thresholds.confidence} their rate is at "
        f"least {low:.3f}, above the target {thresholds.target}, so nothing is accepted; calibrate with more questions, "
        "of the kinds your users ask (meta.family)")


#: how a row without ``meta.family`` is given a family of its own fact group or row (calibrate.families.family_of); a
#: meta.family spelt with one of them is refused at load (it would pass for a fallback group in the report's counts)
FALLBACK_FAMILY_PREFIXES = ("group:", "fact:", "id:")
#: with more families than this (typically rows without meta.family, one fallback group per fact), they are dealt
#: into this many folds, each held out as a whole: by the calibration's leave-one-family-out probes all families, by
#: the new-family check (:func:`held_out_folds`) the fallback groups only
MAX_FOLDS = 10


def is_fallback_family(name: str) -> bool:
    """Whether ``name`` is the fallback group of a row without ``meta.family`` (its fact group or its id), not a kind
    of question: for the report's counts only; every check counts its answers like any other family's."""
    return str(name).startswith(FALLBACK_FAMILY_PREFIXES)


def _stable(key: str) -> int:
    import hashlib

    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16)


def family_folds(families: Sequence[str], max_folds: int = MAX_FOLDS) -> list[list[str]]:
    """Families to hold out together: one per fold, or dealt by hash into ``max_folds`` folds."""
    names = sorted(set(families))
    if len(names) <= max_folds:
        return [[n] for n in names]
    folds: list[list[str]] = [[] for _ in range(max_folds)]
    for i, n in enumerate(sorted(names, key=lambda n: (_stable(n), n))):
        folds[i % max_folds].append(n)
    return [sorted(f) for f in folds]


def held_out_folds(families: Sequence[str], max_folds: int = MAX_FOLDS) -> list[list[str]]:
    """The folds the new-family check refits its accept threshold without (:func:`accept_below_without_family`):
    each kind of question (``meta.family``) alone, however many there are, as the check held them out before it
    counted rows without one; the fallback groups of those rows (held-out facts, not kinds of question, often
    hundreds) dealt into ``max_folds`` folds of their own (:func:`family_folds`). Dealt with the fallback groups, or
    with each other past ``max_folds``, two kinds of question would each be routed by a threshold fitted without
    both, and the check's decisions would turn on how the hash paired them."""
    names = sorted(set(families))
    return [[n] for n in names if not is_fallback_family(n)] + family_folds(
        [n for n in names if is_fallback_family(n)], max_folds)


def accept_below_without_family(risk: Sequence[float], hallucinated: Sequence[int], families: Sequence[str], *,
                                target: float, confidence: float, abstain_precision: float = 0.9,
                                per_family: bool = False) -> dict[str, float]:
    """The one definition of what routes a family the calibration is tested on as a new kind of question: for each
    family of ``families`` (one per answer of ``risk``), the accept threshold fitted the same way (target, confidence,
    certificate) on the answers of the other folds (:func:`held_out_folds`: a kind of question alone, a fallback
    group of rows without ``meta.family`` with the others of its fold). Used by the calibration report's per-family
    routing and by :func:`withdrawn_on_new_families`, so the report's figure and the withdrawal agree."""
    out: dict[str, float] = {}
    folds = held_out_folds(list(families))
    fold_of = {f: k for k, held in enumerate(folds) for f in held}
    at = [fold_of[f] for f in families]
    for k, held in enumerate(folds):
        rest = [i for i, a in enumerate(at) if a != k]
        below = fit_thresholds([risk[i] for i in rest], [hallucinated[i] for i in rest], target=target,
                               confidence=confidence, abstain_precision=abstain_precision,
                               families=[families[i] for i in rest] if per_family else None).accept_below
        out.update({f: below for f in held})
    return out


def new_family_figure(thresholds, risk: Sequence[float], hallucinated: Sequence[int], families: Sequence[str], *,
                      per_family: bool = False,
                      left_out: tuple[Sequence[float], Sequence[int], Sequence[str], Sequence[int] | None] | None = None
                      ) -> dict[str, Any] | None:
    """What the calibration's families, each routed by the accept threshold fitted without it
    (:func:`accept_below_without_family`), accept of their answers, pooled over all of them, fallback groups of rows
    without ``meta.family`` included (their answers are held-out-fold answers like any other): ``n_families``,
    ``n_fallback_groups`` (of those, fallback groups), ``n_accepted``, ``accepted_hallucinated``, ``rate`` (None when
    nothing was accepted), ``families_over_target`` ((family, hallucinated, accepted) of each family whose accepted
    answers are hallucinated over the target, as the report's per-family routing names them); and ``meta_family``,
    the same pooled over the kinds of question (``meta.family``) alone (``n_families``, ``n_accepted``,
    ``accepted_hallucinated``, ``rate``), where fallback groups are there too and at least two kinds (else None:
    without fallback groups it is the figure itself). Hundreds of fallback groups the probe separates well can dilute
    kinds of question on which the threshold fails: three kinds accepting 45 of 90 hallucinated pooled with 600
    fallback groups read 112 of 637 (0.176), within a target of 0.2. None without two
    families. ``left_out`` as :func:`withdrawn_on_new_families` takes it."""
    if left_out is None:
        left_out = (risk, hallucinated, families, None)
    l_risk, l_y, l_family, l_far = left_out
    names = sorted(set(families) | set(l_family))
    if len(set(families)) < 2 or len(names) < 2:
        return None
    without = accept_below_without_family(risk, hallucinated, families, target=thresholds.target,
                                          confidence=thresholds.confidence,
                                          abstain_precision=thresholds.abstain_precision or 0.9, per_family=per_family)
    far = l_far if l_far is not None else [0] * len(l_risk)
    by_family: dict[str, list[int]] = {}  # family -> [accepted, hallucinated among them]
    # a family with no training answer (all in the held-out split): the threshold was fitted without it
    for r, y, f, o in zip(l_risk, l_y, l_family, far):
        if (below := without.get(f, thresholds.accept_below)) and r < below and not o:
            counts = by_family.setdefault(f, [0, 0])
            counts[0] += 1
            counts[1] += int(y)
    kinds = [f for f in names if not is_fallback_family(f)]
    fig = {"n_families": len(names), "n_fallback_groups": len(names) - len(kinds),
           **_pooled(by_family.values()), "meta_family": None,
           "families_over_target": [(f, c[1], c[0]) for f, c in sorted(by_family.items())
                                    if c[1] / c[0] > thresholds.target]}
    if fig["n_fallback_groups"] and len(kinds) >= 2:
        fig["meta_family"] = {"n_families": len(kinds),
                              **_pooled(c for f, c in by_family.items() if not is_fallback_family(f))}
    return fig


def _pooled(counts) -> dict[str, Any]:
    """``n_accepted``, ``accepted_hallucinated`` and ``rate`` of families' [accepted, hallucinated] counts."""
    n = k = 0
    for accepted, halluc in counts:
        n, k = n + accepted, k + halluc
    return {"n_accepted": n, "accepted_hallucinated": k, "rate": k / n if n else None}


def withdrawn_on_new_families(thresholds, risk: Sequence[float], hallucinated: Sequence[int],
                              families: Sequence[str] | None, *, per_family: bool = False,
                              left_out: tuple[Sequence[float], Sequence[int], Sequence[str], Sequence[int] | None] | None = None,
                              figure: Callable[[], dict[str, Any] | None] | None = None):
    """``thresholds`` with a certified accept threshold withdrawn (accept nothing, ``method`` saying why) when the
    calibration's own kinds of question reject it as a certificate for a kind it lacks: each family routed by the
    accept threshold fitted the same way without it (same target, confidence and certificate, on the other families'
    scores), the accepted answers of all families pooled are hallucinated above the target (:func:`new_family_figure`,
    the figure the calibration report gives). A finance team's trial:
    certified at 20% on four families (its held-out families, each fitted without it, accepted 7 of 26 hallucinated),
    the threshold accepted 37% hallucinated on two kinds of question it had not seen. The rate is read as measured,
    not bounded: a threshold meant for kinds of question the calibration did not contain is kept only where those it
    did contain, each left out in turn, do not contradict it.

    ``risk``, ``hallucinated``, ``families``: the cross-family out-of-fold scores the thresholds are fitted on, one
    family per answer. ``left_out`` (risk, hallucinated, family, out_of_distribution or None): what routes each family,
    its answers of both splits scored by a probe and merger fitted without it (the calibration's leave-one-family-out
    evaluation; an answer the out-of-distribution check sends to review is not accepted); without it, each family's
    own answers among ``risk``. A family only there (no training answer) is routed by ``thresholds`` themselves. The
    fallback groups of rows without ``meta.family`` count like any family (a user's trial: left out, they hid 143 of
    223 accepted answers hallucinated behind a threshold the report said was not met); where there are fallback groups
    and two kinds of question or more, the kinds' own answers pooled (``meta_family`` of the figure, what the check read
    before fallback groups counted) withdraw it too when hallucinated above the target, so that fallback groups the
    probe separates well cannot outvote them. Unchanged without a certified accept threshold, for a hand-set one, or
    without two families. ``figure``: where given, what gives :func:`new_family_figure` of these arguments (a caller
    that says it again, as :meth:`hguard.domain.CalibratedDomain.refit_warnings`, keeps it), called only when needed."""
    if not thresholds.accept_below or thresholds.hand_set_measured is not None or families is None:
        return thresholds
    fig = figure() if figure is not None else new_family_figure(thresholds, risk, hallucinated, families,
                                                                per_family=per_family, left_out=left_out)
    if fig is None:
        return thresholds
    t = thresholds.target
    kinds = fig["meta_family"]
    over = [g is not None and g["rate"] is not None and g["rate"] > t for g in (fig, kinds)]
    if not any(over):
        return thresholds

    def said(g: dict, over: bool, the: str = "") -> str:
        return f"{g['accepted_hallucinated']} of {the}{g['n_accepted']}" + (
            f" answers accepted are hallucinated ({g['rate']:.3f}{f', above the target {t}' if over else ''})"
            if g["n_accepted"] else " answers accepted")

    why = f"each of the calibration's {_families_said(fig)} routed by the accept threshold fitted without it, " + (
        said(fig, over[0], "the "))
    if kinds is not None:
        why += f"; of its {kinds['n_families']} meta.family kinds of question alone, {said(kinds, over[1])}"
    return thresholds.accepting_nothing(
        f"withdrawn: {why}: it does not hold for a kind of question the calibration lacked, so nothing is accepted; "
        "calibrate with more families, of the kinds your users ask (meta.family)")


def _families_said(fig: dict) -> str:
    """``N families`` as a figure of :func:`new_family_figure` counts them: how many are fallback groups of rows without
    ``meta.family`` (their fact groups), not kinds of question."""
    n, fb = fig["n_families"], fig["n_fallback_groups"]
    return f"{n} families" + (f" ({n - fb} meta.family, {fb} fallback fact groups of rows without one)" if fb else "")


def families_over_said(over: Sequence[tuple[str, int | None, int | None]]) -> str:
    """Families whose accepted answers are hallucinated over the target, as (family, hallucinated, accepted) (counts
    None where not known), in words: ``cranial_nerve (35 of 36 accepted hallucinated, 0.97), ...``."""
    return ", ".join(f if k is None or not n else f"{f} ({k} of {n} accepted hallucinated, {k / n:.2f})"
                     for f, k, n in over)


#: how many held-out kinds of question over the target a warning names before "and N more"
NAMED_OVER_TARGET = 10


def accept_threshold_warnings(who: str, *, accept_below: float | None, target: float, rate: float | None = None,
                              n: int = 0, fitted: tuple[int, int] | None = None,
                              families_over: Sequence[tuple[str, int | None, int | None]] = (),
                              set_target: str = "`--target`", details: str = "report.md: each family") -> list[str]:
    """What a certified accept threshold's user must be told, one line each, by calibrate and by a guard that refits
    the thresholds for its policy's target alike: a threshold of 1.0, which accepts every answer (certified where the
    hallucination rate of the scores it was fitted on, ``fitted`` (hallucinated, n) where known, is within the target,
    so the guarantee asks nothing of the risk; ``rate``: that of the ``n`` held-out answers, as measured, said to be
    over the target where it is), and the held-out families whose accepted answers were hallucinated over the target,
    each routed by the threshold fitted without it (``families_over``: (family, hallucinated, accepted), pooled within
    the target): the kinds of question (``meta.family``) by name, at most :data:`NAMED_OVER_TARGET`, the fallback fact
    groups of rows without one (often hundreds) by their count and pooled counts. ``who`` opens each line ("domain
    'x'"); ``set_target`` says where the target is set; ``details`` where each family's figures are. None for no
    accept threshold (accept nothing)."""
    if not accept_below:
        return []
    lines = []
    if accept_below >= 1.0:
        own = f" ({fitted[0] / fitted[1]:.0%} of {fitted[1]})" if fitted is not None and fitted[1] else ""
        held = ("" if rate is None else
                f"; on {n} held-out answers it is {rate:.0%}" + (", over the target" if rate > target else ""))
        lines.append(
            f"{who}: the certified accept threshold is 1.0, which accepts every answer: the hallucination rate of the "
            f"scores it was fitted on{own} is within the target {target:g}, so the guarantee asks nothing of the "
            f"risk{held}; set the target you mean to hold ({set_target}), well below the model's error rate")
    if families_over:
        lines.append(f"{who}: held-out families over the target {target:g} (each fitted without it): "
                     f"{_over_target_said(families_over)}; pooled over the families it is met, but "
                     + ("a new kind of question like these" if any(not is_fallback_family(f) for f, _, _ in families_over)
                        else "new facts like theirs") + f" may get what they got ({details})")
    return lines


def _over_target_said(over: Sequence[tuple[str, int | None, int | None]]) -> str:
    """``families_over`` of :func:`accept_threshold_warnings` in words: the kinds of question named (at most
    :data:`NAMED_OVER_TARGET`, then "and N more"), then the fallback fact groups of rows without ``meta.family``
    counted, not named: 600 of them made a warning line of 11,000 characters, said at every start of a guard."""
    kinds = [o for o in over if not is_fallback_family(o[0])]
    groups = [o for o in over if is_fallback_family(o[0])]
    parts = []
    if kinds:
        parts.append(families_over_said(kinds[:NAMED_OVER_TARGET])
                     + (f" and {len(kinds) - NAMED_OVER_TARGET} more" if len(kinds) > NAMED_OVER_TARGET else ""))
    if groups:
        known = all(k is not None and m for _, k, m in groups)
        parts.append(f"{len(groups)} fallback fact group{'s' if len(groups) > 1 else ''} of rows without meta.family"
                     + (f" ({sum(k or 0 for _, k, _ in groups)} of their {sum(m or 0 for _, _, m in groups)} accepted "
                        "answers hallucinated)" if known else ""))
    return ", and ".join(parts)
