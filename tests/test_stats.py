"""The one AUROC and its bootstrap (hguard._stats): edge cases and agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hguard._stats import auroc, auroc_ci, auroc_difference_ci, bootstrap_aurocs, labels_and_scores
from hguard.errors import InputError


def test_auroc_orders_ties_and_missing_classes():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts half
    assert auroc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875)
    assert auroc([True, False, True], [3.0, 1.0, 2.0]) == 1.0  # booleans are labels too
    assert auroc([1, 1], [0.1, 0.2]) is None  # one class: undefined
    assert auroc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert auroc([], []) is None
    assert auroc([0, 1], [-np.inf, np.inf]) == 1.0  # infinite scores still order


def test_auroc_matches_scikit_learn():
    rng = np.random.default_rng(5)
    for n in (7, 60, 500):
        y = rng.integers(0, 2, n)
        s = np.round(y + rng.normal(0, 1, n), 1)  # rounded: many ties
        if 0 < y.sum() < n:
            assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_bad_labels_and_scores_name_the_problem():
    with pytest.raises(InputError, match="NaN"):
        auroc([0, 1], [0.1, float("nan")])
    with pytest.raises(InputError, match="0 \\(right\\) or 1"):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(InputError, match="one score per answer"):
        auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(InputError, match="1-d"):
        auroc([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(InputError, match=r"scores\['b'\]"):
        bootstrap_aurocs([0, 1], {"a": [0.1, 0.2], "b": [0.3]})
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_aurocs([0, 1], {"a": [0.1, 0.2]}, n_boot=0)
    with pytest.raises(InputError, match="level"):
        auroc_ci([0, 1], {"a": [0.1, 0.2]}, level=1.0)
    y, s = labels_and_scores([True, False], [1, 2])
    assert y.dtype.kind == "i" and s.dtype.kind == "f"


def test_bootstrap_resamples_within_class_and_pairs_the_scores():
    rng = np.random.default_rng(1)
    y = np.array([1] * 6 + [0] * 30)  # few positives: a free resample would often hold none
    good = y + rng.normal(0, 0.7, y.size)
    noise = rng.normal(0, 1, y.size)
    boot = bootstrap_aurocs(y, {"good": good, "noise": noise}, n_boot=400, seed=0)
    assert boot["good"].shape == boot["noise"].shape == (400,)  # none dropped
    assert np.all((boot["good"] >= 0) & (boot["good"] <= 1))
    # the same resamples for every score: a score's difference with itself is exactly zero
    twice = bootstrap_aurocs(y, {"a": good, "b": good.copy()}, n_boot=50, seed=3)
    assert np.array_equal(twice["a"], twice["b"])
    # seeded: the same seed gives the same resamples; a Generator is drawn from
    again = bootstrap_aurocs(y, {"good": good}, n_boot=400, seed=0)["good"]
    assert np.array_equal(again, boot["good"])
    from_rng = bootstrap_aurocs(y, {"good": good}, n_boot=400, seed=np.random.default_rng(0))["good"]
    assert np.array_equal(from_rng, boot["good"])
    # each resample's AUROC equals the AUROC of that resample computed directly
    r = np.random.default_rng(0)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    first = np.concatenate([r.choice(pos, pos.size), r.choice(neg, neg.size)])
    assert boot["good"][0] == pytest.approx(auroc(y[first], good[first]), abs=1e-12)
    empty = bootstrap_aurocs([1, 1, 1], {"a": [0.1, 0.2, 0.3]}, n_boot=10)
    assert empty["a"].size == 0


def test_interval_holds_the_estimate_and_is_none_for_one_class():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    s = y + rng.normal(0, 1.2, 120)
    ci = auroc_ci(y, {"signal": s, "noise": rng.normal(size=120)}, n_boot=500)
    lo, hi = ci["signal"]
    assert lo < auroc(y, s) < hi and hi - lo < 0.3
    assert ci["noise"][0] < 0.5 < ci["noise"][1]
    narrow = auroc_ci(y, {"signal": s}, n_boot=500, level=0.5)["signal"]
    assert lo < narrow[0] < narrow[1] < hi
    assert auroc_ci(np.ones(5, int), {"signal": np.arange(5.0)}) == {"signal": None}
    assert auroc_ci([], {"signal": []}) == {"signal": None}


def test_a_tiny_class_gets_the_wide_interval_so_few_answers_allow_not_a_point():
    """One wrong answer above five right ones: the within-class bootstrap gives [1, 1] every time."""
    y, s = [1, 0, 0, 0, 0, 0], [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert bootstrap_aurocs(y, {"s": s}, n_boot=200)["s"].min() == 1.0  # the collapse being mended
    lo, hi = auroc_ci(y, {"s": s})["s"]
    assert hi == 1.0 and lo == pytest.approx(0.025)  # the exact interval of 1 success in 1 trial
    lo, hi = auroc_ci([1, 1, 0, 0, 0], {"s": [0.9, 0.8, 0.1, 0.2, 0.3]})["s"]
    assert lo < 0.5 and hi == 1.0
    rng = np.random.default_rng(1)  # with enough of each class the bootstrap stands as it was
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(0, 1, 200)
    boot = bootstrap_aurocs(y, {"s": s})["s"]
    assert auroc_ci(y, {"s": s})["s"] == [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def test_the_paired_difference_interval_tells_a_real_gap_from_a_shared_one():
    """AUROC(a) - AUROC(b) on the same resamples: a score against a noisier copy of itself clears 0, two scores of
    the same signal do not (the probe against its random-neuron control, a finance team's trial: 0.833 [0.70-0.95]
    vs 0.790 [0.66-0.91], nothing said); too few of a class gives none, as the bootstrap collapses there."""
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    signal = y + rng.normal(0, 0.8, y.size)
    noisy = signal + rng.normal(0, 2.0, y.size)
    lo, hi = auroc_difference_ci(y, signal, noisy)
    assert 0 < lo <= auroc(y, signal) - auroc(y, noisy) <= hi
    same = y + rng.normal(0, 0.8, y.size)  # as good, other noise
    lo, hi = auroc_difference_ci(y, signal, same)
    assert lo <= 0 <= hi
    assert auroc_difference_ci(y, signal, signal) == [0.0, 0.0]
    assert auroc_difference_ci(y[:69], signal[:69], noisy[:69]) is None  # 9 hallucinated: no interval
    assert auroc_difference_ci(np.zeros(30, int), signal[:30], noisy[:30]) is None


def test_clopper_pearson_bounds_invert_the_binomial_tails():
    from scipy.stats import binom

    from hguard._stats import clopper_pearson_lower, clopper_pearson_upper

    for k, n in ((0, 10), (3, 10), (10, 10), (7, 200)):
        up, lo = clopper_pearson_upper(k, n, 0.9), clopper_pearson_lower(k, n, 0.9)
        assert lo <= k / n <= up
        if k < n:
            assert binom.cdf(k, n, up) == pytest.approx(0.1, abs=1e-9)
        if k > 0:
            assert binom.sf(k - 1, n, lo) == pytest.approx(0.1, abs=1e-9)
    assert clopper_pearson_upper(0, 0, 0.9) == 1.0 and clopper_pearson_lower(0, 0, 0.9) == 0.0
    assert clopper_pearson_lower(0, 10, 0.9) == 0.0 and clopper_pearson_upper(10, 10, 0.9) == 1.0
    with pytest.raises(InputError, match="cannot exceed"):
        clopper_pearson_upper(11, 10, 0.9)
    with pytest.raises(InputError, match="strictly between"):
        clopper_pearson_lower(1, 10, 1.0)


@pytest.mark.parametrize("k,n", [(0, 5), (3, 10), (10, 10), (1, 1), (17, 240)])
def test_two_sided_interval_is_the_exact_beta_quantiles(k, n):
    from scipy.stats import beta

    from hguard._stats import clopper_pearson_interval

    lo, hi = clopper_pearson_interval(k, n)
    assert lo == pytest.approx(0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1), abs=1e-12)
    assert hi == pytest.approx(1.0 if k == n else beta.ppf(0.975, k + 1, n - k), abs=1e-12)
    assert lo <= k / n <= hi


def test_two_sided_interval_of_nothing_is_none():
    from hguard._stats import clopper_pearson_interval

    assert clopper_pearson_interval(0, 0) is None


def test_the_shipped_reports_family_intervals_are_widened_where_a_class_is_small():
    """A statistician's trial: families with 1, 2 and 6 answers of a class printed bootstrap intervals such as
    0.08 [0.04, 0.12] from one right answer, from before auroc_ci widened them."""
    import json

    from hguard import REFERENCE_PROBES
    from hguard._stats import SMALL_CLASS, widened_for_small_class

    report = json.loads((REFERENCE_PROBES / "report.json").read_text())
    small = 0
    for dom in report["domains"].values():
        for e in ((dom.get("families") or {}).get("families") or {}).values():
            m = min(e["correct"], e["hallucinated"])
            for k, ci in (e.get("auroc_ci95") or {}).items():
                if ci is not None and 0 < m < SMALL_CLASS:
                    small += 1
                    assert widened_for_small_class(ci, e["auroc"][k], m) == ci, (e, k)
    assert small >= 3 * 7  # three such families, seven signals each


def test_a_confidence_too_large_for_a_float_is_refused_in_one_line():
    """10**400 raised OverflowError from float(); it is refused as any other value outside (0, 1)."""
    from hguard._stats import clopper_pearson_upper

    with pytest.raises(InputError, match=r"confidence must be a number strictly between 0 and 1, got 1000"):
        clopper_pearson_upper(1, 10, 10**400)
    assert clopper_pearson_upper(1, 10, np.float32(0.9)) == pytest.approx(clopper_pearson_upper(1, 10, 0.9))
