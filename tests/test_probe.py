"""HNeuronProbe, its JSON file format, and the random-neuron baseline, on synthetic CETT-like data.

The data: 3 "layers" x 1,000 "neurons" of skewed, non-negative noise (like mean CETT values), with
a few planted neurons that shift with the label. Nothing here loads a model.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from hguard.errors import InputError, ProbeError, ProbeMismatchError
from hguard.probe import (
    FORMAT_NAME,
    FORMAT_VERSION,
    HNeuronProbe,
    check_fingerprints,
    random_neuron_probe,
)

N_LAYERS, D_FF = 3, 1000
N_FEATURES = N_LAYERS * D_FF
POS = [(0, 17), (1, 512), (2, 999)]  # planted H-Neurons: higher when hallucinated
NEG = [(1, 3)]  # planted "faithfulness" neuron: higher when faithful
PLANTED = {l * D_FF + j for l, j in POS + NEG}

FINGERPRINTS = {
    "model_fingerprint": "model-aaaa",
    "chat_template_fingerprint": "tmpl-bbbb",
    "system_prompt_fingerprint": "template-default",
}


def make_data(n: int, seed: int, shift: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    X = rng.gamma(2.0, 0.5, size=(n, N_FEATURES)).astype(np.float32)
    for l, j in POS:
        X[:, l * D_FF + j] += shift * y
    for l, j in NEG:
        X[:, l * D_FF + j] += shift * (1 - y)
    lengths = rng.integers(3, 30, n)
    return X, y, lengths


def make_length_confound(n: int, seed: int):
    """Hallucinated answers are longer; neuron (2, 5) tracks length only; neuron (0, 17) tracks truth."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    lengths = np.round(np.exp(rng.normal(2.0 + 0.8 * y, 0.4)))
    X = rng.gamma(2.0, 0.5, size=(n, N_FEATURES)).astype(np.float32)
    X[:, 0 * D_FF + 17] += 0.8 * y
    loglen = np.log1p(lengths)
    X[:, 2 * D_FF + 5] += (0.8 * (loglen - loglen.mean()) / loglen.std()).astype(np.float32)
    return X, y, lengths


@pytest.fixture(scope="module")
def train():
    return make_data(300, seed=0)


@pytest.fixture(scope="module")
def test_set():
    return make_data(300, seed=1)


@pytest.fixture(scope="module")
def probe(train):
    X, y, lengths = train
    return HNeuronProbe(n_layers=N_LAYERS, d_ff=D_FF).fit(X, y, lengths=lengths)


@pytest.fixture()
def saved(probe, tmp_path):
    path = tmp_path / "capitals.probe.json"
    metadata = {
        **FINGERPRINTS,
        "domain": "capitals",
        "data_hash": "d" * 64,
        "metrics": {"auroc": np.float64(0.93), "n_rows": np.int64(300), "per_fold": np.array([0.9, 0.95])},
        "created": "2025-01-01T00:00:00Z",
        "merger": {"weights": [0.5, 0.25, 0.25], "kind": "logistic"},
        "thresholds": {"accept_below": 0.2, "abstain_above": 0.8},
    }
    probe_id = probe.save(path, metadata=metadata)
    return path, probe_id


# ------------------------------------------------------------------------------------ learning


def test_recovers_planted_neurons(probe):
    top = {(l, j) for l, j, _ in probe.neurons_[: len(POS) + len(NEG)]}
    assert top == set(POS + NEG)
    assert {(l, j) for l, j, _ in probe.h_neurons_} >= set(POS)
    weights = {(l, j): w for l, j, w in probe.neurons_}
    assert all(weights[n] > 0 for n in POS)
    assert all(weights[n] < 0 for n in NEG)
    assert all(w > 0 for _, _, w in probe.h_neurons_)
    # Sorted by |weight|, largest first.
    mags = [abs(w) for _, _, w in probe.neurons_]
    assert mags == sorted(mags, reverse=True)


def test_heldout_auroc_is_high(probe, test_set):
    X, y, lengths = test_set
    proba = probe.predict_proba(X, lengths=lengths)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.93
    assert set(np.unique(probe.predict(X, lengths=lengths))) <= {0, 1}


def test_feature_indices_and_sparse_coefficients_agree(probe):
    idx = probe.feature_indices_
    assert np.all(np.diff(idx) > 0)
    assert probe.selected_ is idx
    assert idx.size == probe.weights_.size == probe.center_.size == probe.scale_.size
    assert np.all(probe.scale_ > 0)
    assert probe.coef_.shape == (1, N_FEATURES)
    assert np.count_nonzero(probe.coef_) == idx.size
    np.testing.assert_array_equal(probe.coef_[0, idx], probe.weights_)
    assert sorted(l * D_FF + j for l, j, _ in probe.neurons_) == idx.tolist()
    assert probe.n_features_in_ == N_FEATURES and probe.n_layers_ == N_LAYERS and probe.d_ff_ == D_FF


def test_cv_results_describe_the_grid(probe):
    res = probe.cv_results_
    k = len(probe.Cs_)
    assert k == 10 and np.all(np.diff(probe.Cs_) > 0)
    for key in ("C", "mean_auroc", "std_auroc", "se_auroc", "mean_n_neurons", "n_neurons"):
        assert len(res[key]) == k, key
    assert np.array(res["fold_auroc"]).shape == (k, 5)
    np.testing.assert_allclose(res["mean_auroc"], np.mean(res["fold_auroc"], axis=1))
    assert probe.C_ in probe.Cs_.tolist()
    # Larger C, weaker penalty: the full-data path only gains neurons along this grid.
    assert res["n_neurons"][-1] > res["n_neurons"][0]
    assert res["n_neurons"][probe.Cs_.tolist().index(probe.C_)] == probe.feature_indices_.size


def test_one_standard_error_rule_is_sparser_than_best():
    # Many weak neurons: CV prefers a dense probe; the 1se rule must back off towards fewer.
    rng = np.random.default_rng(5)
    n = 300
    y = rng.permutation(np.arange(n) % 2)
    X = rng.gamma(2.0, 0.5, size=(n, N_FEATURES)).astype(np.float32)
    weak = rng.choice(N_FEATURES, 40, replace=False)
    X[:, weak] += (0.35 * y[:, None]).astype(np.float32)
    kw = dict(length_control=False, n_layers=N_LAYERS, d_ff=D_FF)
    one_se = HNeuronProbe(selection="1se", **kw).fit(X, y)
    best = HNeuronProbe(selection="best", **kw).fit(X, y)
    assert one_se.cv_results_ == best.cv_results_
    assert one_se.best_C_ == best.C_ and best.one_se_C_ == one_se.C_
    assert one_se.C_ < best.C_
    assert one_se.feature_indices_.size < best.feature_indices_.size
    mean, se = np.array(one_se.cv_results_["mean_auroc"]), np.array(one_se.cv_results_["se_auroc"])
    i_best, i_1se = one_se.Cs_.tolist().index(best.C_), one_se.Cs_.tolist().index(one_se.C_)
    assert mean[i_best] == mean.max()
    assert mean[i_1se] >= mean[i_best] - se[i_best]
    # No smaller C is within one standard error and keeps a neuron.
    counts = np.array(one_se.cv_results_["mean_n_neurons"])
    assert not np.any((mean[:i_1se] >= mean[i_best] - se[i_best]) & (counts[:i_1se] > 0))


def test_working_set_path_matches_a_full_width_fit(train):
    """The KKT working-set solver must give the same optimum as liblinear on all features."""
    from hguard.probe import _INTERCEPT_SCALING, _Scaler

    X, y, _ = train
    C = 0.2
    probe = HNeuronProbe(Cs=[C], cv=3, length_control=False, tol=1e-6).fit(X, y)
    scaler = _Scaler(X, True)
    Z = scaler.transform(X).astype(np.float64)
    ref = LogisticRegression(
        C=C, solver="liblinear", class_weight="balanced", intercept_scaling=_INTERCEPT_SCALING, tol=1e-8,
        max_iter=10000, random_state=0,
        **({"l1_ratio": 1.0} if "deprecated" == LogisticRegression().penalty else {"penalty": "l1"}),
    ).fit(Z, y)
    ref_w = dict(zip(scaler.keep.tolist(), ref.coef_[0]))
    ours = np.zeros(Z.shape[1])
    ours[np.searchsorted(scaler.keep, probe.feature_indices_)] = probe.weights_

    sw = np.where(y == 1, len(y) / (2.0 * y.sum()), len(y) / (2.0 * (len(y) - y.sum())))

    def objective(w, b):
        d = Z @ w + b
        return np.abs(w).sum() + abs(b) / _INTERCEPT_SCALING + C * np.sum(sw * np.logaddexp(0, np.where(y == 1, -d, d)))

    assert objective(ours, probe.intercept_) == pytest.approx(objective(ref.coef_[0], ref.intercept_[0]), rel=1e-5)
    # Same support, up to neurons the reference keeps at a negligible weight (the KKT slack).
    assert set(probe.feature_indices_.tolist()) <= {i for i, w in ref_w.items() if w != 0}
    assert {i for i, w in ref_w.items() if abs(w) > 0.01} <= set(probe.feature_indices_.tolist())
    np.testing.assert_allclose(probe.decision_function(X), ref.decision_function(Z), atol=0.02)


def test_fitting_is_deterministic(train):
    X, y, lengths = train
    a = HNeuronProbe(Cs=5, cv=3).fit(X, y, lengths=lengths)
    b = HNeuronProbe(Cs=5, cv=3).fit(X, y, lengths=lengths)
    assert a.cv_results_ == b.cv_results_
    np.testing.assert_array_equal(a.feature_indices_, b.feature_indices_)
    np.testing.assert_array_equal(a.weights_, b.weights_)


def test_constant_features_are_never_selected_and_scaling_can_be_off(train):
    X, y, _ = train
    X = X.copy()
    X[:, POS[0][0] * D_FF + POS[0][1]] = 0.25  # the strongest planted neuron, now dead
    raw = HNeuronProbe(Cs=5, cv=3, standardize=False, length_control=False).fit(X, y)
    assert POS[0][0] * D_FF + POS[0][1] not in raw.feature_indices_.tolist()
    np.testing.assert_array_equal(raw.center_, 0.0)
    np.testing.assert_array_equal(raw.scale_, 1.0)
    assert raw.neurons_[0][1] in PLANTED
    # Without n_layers/d_ff the features are one layer.
    assert all(layer == 0 for layer, _, _ in raw.neurons_)


# ------------------------------------------------------------------------------ length control


def test_length_control_absorbs_a_length_tracking_neuron():
    X, y, lengths = make_length_confound(300, seed=0)
    length_neuron, truth_neuron = (2, 5), (0, 17)
    plain = HNeuronProbe(length_control=False, n_layers=N_LAYERS, d_ff=D_FF).fit(X, y)
    controlled = HNeuronProbe(length_control=True, n_layers=N_LAYERS, d_ff=D_FF).fit(X, y, lengths=lengths)

    plain_w = {(l, j): w for l, j, w in plain.neurons_}
    ctrl_w = {(l, j): w for l, j, w in controlled.neurons_}
    assert plain.length_weight_ is None
    assert plain_w.get(length_neuron, 0.0) > 0.3  # without control, length masquerades as an H-Neuron
    assert abs(ctrl_w.get(length_neuron, 0.0)) < 0.1 * plain_w[length_neuron]
    assert controlled.length_weight_ > 1.0
    assert ctrl_w[truth_neuron] > 0.3
    # Length is reported apart from the neurons.
    assert len(controlled.neurons_) == controlled.feature_indices_.size
    # And it moves the score: longer answers, higher risk, neurons held fixed.
    row = np.repeat(X[:1], 2, axis=0)
    p = controlled.predict_proba(row, lengths=[3, 60])[:, 1]
    assert p[1] > p[0]


def test_length_control_needs_lengths(probe, train, test_set):
    X, y, lengths = train
    with pytest.raises(InputError, match="lengths=None"):
        HNeuronProbe(Cs=3, cv=3).fit(X, y)
    with pytest.raises(InputError, match="lengths=None"):
        probe.predict_proba(test_set[0])
    with pytest.raises(InputError, match=r"lengths has shape \(3,\)"):
        probe.predict_proba(test_set[0], lengths=[1, 2, 3])
    bad = lengths.astype(float).copy()
    bad[7] = -1
    with pytest.raises(InputError, match=r"lengths\[7\] = -1.0"):
        HNeuronProbe(Cs=3, cv=3).fit(X, y, lengths=bad)


# ----------------------------------------------------------------------------- subset inference


def test_subset_prediction_equals_full_prediction(probe, test_set):
    X, _, lengths = test_set
    values = X[:, probe.feature_indices_]
    np.testing.assert_array_equal(probe.predict_proba_subset(values, lengths), probe.predict_proba(X, lengths))
    np.testing.assert_array_equal(probe.decision_function_subset(values, lengths), probe.decision_function(X, lengths))
    with pytest.raises(InputError, match="record exactly probe.feature_indices_"):
        probe.predict_proba_subset(values[:, :-1], lengths)
    with pytest.raises(ValueError, match=f"expecting {N_FEATURES} features"):
        probe.predict_proba(X[:, :-1], lengths)


# ------------------------------------------------------------------------- sklearn conventions


def test_clone_and_params(probe):
    params = probe.get_params()
    assert params["n_layers"] == N_LAYERS and params["selection"] == "1se" and params["Cs"] == 10
    fresh = clone(probe)
    assert fresh.get_params() == params
    assert not hasattr(fresh, "feature_indices_")
    fresh.set_params(selection="best", cv=3)
    assert fresh.selection == "best" and probe.selection == "1se"


def test_unfitted_probe_refuses_to_predict(train, tmp_path):
    X, _, lengths = train
    p = HNeuronProbe()
    for call in (
        lambda: p.predict_proba(X, lengths),
        lambda: p.predict(X, lengths),
        lambda: p.decision_function(X, lengths),
        lambda: p.predict_proba_subset(X[:, :3], lengths),
        lambda: p.neurons_,
        lambda: p.save(tmp_path / "x.json", metadata={}),
    ):
        with pytest.raises(NotFittedError):
            call()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"selection": "median"}, "selection='median'"),
        ({"cv": 1}, "cv=1"),
        ({"Cs": [0.1, -1.0]}, r"Cs=\[0.1, -1.0\]"),
        ({"Cs": 0}, "Cs=0"),
        ({"class_weight": "auto"}, "class_weight='auto'"),
        ({"n_layers": 7}, "not a multiple of n_layers=7"),
        ({"n_layers": 2, "d_ff": 1000}, "n_layers=2 x d_ff=1000 = 2000"),
    ],
)
def test_bad_parameters_are_named(train, params, match):
    X, y, lengths = train
    with pytest.raises(InputError, match=match):
        HNeuronProbe(**params).fit(X, y, lengths=lengths)


def test_bad_training_data_is_named(train):
    X, y, lengths = train
    with pytest.raises(InputError, match="only one class"):
        HNeuronProbe().fit(X, np.ones_like(y), lengths=lengths)
    few = y.copy()
    few[few == 1] = 0
    few[:3] = 1
    with pytest.raises(InputError, match="only 3 answer"):
        HNeuronProbe(cv=5).fit(X, few, lengths=lengths)
    Xn = X.copy()
    Xn[4, 9] = np.nan
    with pytest.raises(InputError, match="NaN"):
        HNeuronProbe().fit(Xn, y, lengths=lengths)
    with pytest.raises(InputError, match="y has 299 labels but X has 300 rows"):
        HNeuronProbe().fit(X, y[:-1], lengths=lengths)


def test_chance_level_probe_warns():
    rng = np.random.default_rng(4)
    X = rng.gamma(2.0, 0.5, size=(120, 500)).astype(np.float32)
    y = rng.permutation(np.arange(120) % 2)
    with pytest.warns(UserWarning, match="does not beat chance"):
        HNeuronProbe(Cs=4, cv=3, length_control=False).fit(X, y)


def test_a_probe_below_chance_beyond_noise_is_said_to_rank_the_wrong_way_round():
    """A best mean AUROC of 0.287 (standard error 0.074) was said to carry "no signal": it ranks them reversed."""
    probe = HNeuronProbe(Cs=[1.0], cv=3, length_control=False)
    rng = np.random.default_rng(4)
    X = rng.gamma(2.0, 0.5, size=(60, 50)).astype(np.float32)
    with pytest.warns(UserWarning):
        probe.fit(X, rng.permutation(np.arange(60) % 2))
    probe.cv_results_ = {"C": [probe.best_C_], "mean_auroc": [0.287], "se_auroc": [0.074]}
    assert "below 0.5 by more than two standard errors: it ranks" in probe.chance_warning()
    probe.cv_results_ = {"C": [probe.best_C_], "mean_auroc": [0.45], "se_auroc": [0.074]}
    assert probe.chance_warning().endswith("its scores carry no signal")


def test_no_signal_warns_when_no_neuron_survives():
    rng = np.random.default_rng(3)
    X = rng.gamma(2.0, 0.5, size=(60, 200)).astype(np.float32)
    y = np.arange(60) % 2
    with pytest.warns(UserWarning) as record:
        p = HNeuronProbe(Cs=[1e-4], cv=3, length_control=False).fit(X, y)
    messages = " | ".join(str(w.message) for w in record)
    assert "selected no neuron" in messages and "does not beat chance" in messages
    assert p.feature_indices_.size == 0 and p.neurons_ == []
    np.testing.assert_allclose(p.predict_proba(X)[:, 1], 0.5)
    np.testing.assert_allclose(p.predict_proba_subset(np.zeros((2, 0)))[:, 1], 0.5)


_EXPECTED_FAILED = {
    "check_class_weight_classifiers": "class_weight is 'balanced' or None, so the probe file stays plain JSON",
}

if tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 6):
    from sklearn.utils.estimator_checks import parametrize_with_checks

    @parametrize_with_checks(
        [HNeuronProbe(Cs=3, cv=3, length_control=False)],
        expected_failed_checks=lambda est: _EXPECTED_FAILED,
    )
    # sklearn's checks fit on random labels, where the probe rightly warns that it has no signal.
    @pytest.mark.filterwarnings("ignore:the probe does not beat chance:UserWarning")
    @pytest.mark.filterwarnings("ignore:the probe selected no neuron:UserWarning")
    def test_sklearn_estimator_checks(estimator, check):
        # Length control needs a lengths= argument sklearn's checks cannot pass; the rest of the
        # contract is checked with it off.
        check(estimator)


# ----------------------------------------------------------------------------------- the file


def test_save_load_round_trip(probe, saved, test_set):
    path, probe_id = saved
    # a probe file holds its calibration's questions (router_questions), reviewed live ones among them where a team
    # recalibrates from its review export: owner and group, as the audit log, not everyone (a security review: 0644
    # whatever the umask)
    import stat

    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    import os

    old = os.umask(0o077)  # a stricter umask narrows it (a review: the chmod widened 0600 to 0640)
    try:
        probe.save(path.with_name("strict.json"), metadata=json.loads(path.read_text())["metadata"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.with_name("strict.json").stat().st_mode) == 0o600
    X, _, lengths = test_set
    loaded, metadata = HNeuronProbe.load(path, expect=FINGERPRINTS)
    np.testing.assert_array_equal(loaded.predict_proba(X, lengths), probe.predict_proba(X, lengths))
    np.testing.assert_array_equal(loaded.feature_indices_, probe.feature_indices_)
    assert loaded.neurons_ == probe.neurons_
    assert loaded.length_weight_ == probe.length_weight_
    assert loaded.cv_results_ == probe.cv_results_
    assert (loaded.C_, loaded.best_C_, loaded.one_se_C_) == (probe.C_, probe.best_C_, probe.one_se_C_)
    assert {k: v for k, v in loaded.get_params().items()} == {**probe.get_params(), "Cs": 10}
    assert loaded.probe_id_ == probe_id == probe.probe_id_ and len(probe_id) == 16
    assert metadata["domain"] == "capitals"
    assert metadata["metrics"] == {"auroc": 0.93, "n_rows": 300, "per_fold": [0.9, 0.95]}
    assert metadata["merger"] == {"weights": [0.5, 0.25, 0.25], "kind": "logistic"}
    assert metadata["thresholds"] == {"accept_below": 0.2, "abstain_above": 0.8}
    # Plain JSON with the format name, not pickle.
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert (doc["format"], doc["version"]) == (FORMAT_NAME, FORMAT_VERSION)
    assert doc["model"]["feature_indices"] == probe.feature_indices_.tolist()
    assert doc["model"]["length"]["weight"] == probe.length_weight_
    # A loaded probe is an ordinary estimator again.
    assert clone(loaded).get_params()["n_layers"] == N_LAYERS


def test_probe_id_depends_on_content(probe, tmp_path):
    a = probe.save(tmp_path / "a.json", metadata={**FINGERPRINTS, "domain": "capitals"})
    b = probe.save(tmp_path / "b.json", metadata={**FINGERPRINTS, "domain": "capitals"})
    c = probe.save(tmp_path / "c.json", metadata={**FINGERPRINTS, "domain": "elements"})
    assert a == b != c
    # not when, nor how fast: two calibrations of the same shards with one seed got two ids (created, the timings)
    meta = {**FINGERPRINTS, "domain": "capitals", "metrics": {"train": {"n": 40}}}
    d = probe.save(tmp_path / "d.json", metadata={**meta, "created": "2026-12-01T00:00:00Z",
                                                  "metrics": {"train": {"n": 40, "probe_fit_seconds": 1.5}}})
    e = probe.save(tmp_path / "e.json", metadata={**meta, "created": "2026-12-05T00:00:00Z",
                                                  "metrics": {"train": {"n": 40, "probe_fit_seconds": 9.0}}})
    assert d == e == probe.save(tmp_path / "f.json", metadata=meta) != a
    assert HNeuronProbe.load(tmp_path / "e.json")[0].probe_id_ == e


def test_a_probe_file_of_the_earlier_hash_still_loads(saved):
    """Files written by hguard 0.3.0 and before carry an id hashed over the timings too: they load as they are."""
    from hguard._probe_file import _probe_id

    path, _ = saved
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["metadata"]["created"] = "2026-11-01T00:00:00Z"
    doc["probe_id"] = _probe_id(doc, legacy=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert HNeuronProbe.load(path)[0].probe_id_ == doc["probe_id"]
    doc["metadata"]["created"] = "2026-11-02T00:00:00Z"  # an edit after it was saved is still found
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProbeError, match="modified after it was saved"):
        HNeuronProbe.load(path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["model"]["weights"].__setitem__(0, d["model"]["weights"][0] * 1.5),
        lambda d: d["model"].__setitem__("intercept", d["model"]["intercept"] + 1.0),
        lambda d: d["metadata"].__setitem__("model_fingerprint", "model-zzzz"),
        lambda d: d["metadata"]["thresholds"].__setitem__("accept_below", 0.9),
        lambda d: d.__setitem__("probe_id", "0" * 16),
    ],
    ids=["weight", "intercept", "fingerprint", "threshold", "probe_id"],
)
def test_hand_edited_file_is_detected(saved, edit):
    path, probe_id = saved
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProbeError, match="modified after it was saved") as info:
        HNeuronProbe.load(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, ProbeMismatchError)


def test_damaged_or_foreign_files_raise_probe_error(saved, tmp_path):
    path, _ = saved
    text = path.read_text(encoding="utf-8")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ProbeError, match="not valid JSON") as info:
        HNeuronProbe.load(truncated)
    assert str(truncated) in str(info.value)

    with pytest.raises(ProbeError, match="does not exist"):
        HNeuronProbe.load(tmp_path / "missing.json")

    doc = json.loads(text)
    doc["version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProbeError, match=f"format version {FORMAT_VERSION + 1}"):
        HNeuronProbe.load(newer)

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}), encoding="utf-8")
    with pytest.raises(ProbeError, match="format is 'something-else'"):
        HNeuronProbe.load(other)


def test_structurally_broken_file_with_valid_id_is_rejected(saved, tmp_path):
    """A file rewritten by a buggy tool (and re-hashed) is still checked field by field."""
    from hguard.probe import _probe_id

    path, _ = saved
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["model"]["weights"] = doc["model"]["weights"][:-1]
    doc["probe_id"] = _probe_id(doc)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProbeError, match=r"model\['weights'\]"):
        HNeuronProbe.load(broken)


def test_mismatched_fingerprint_is_refused(saved):
    path, _ = saved
    with pytest.raises(ProbeMismatchError) as info:
        HNeuronProbe.load(path, expect={**FINGERPRINTS, "model_fingerprint": "model-cccc"})
    msg = str(info.value)
    assert "model-aaaa" in msg and "model-cccc" in msg and str(path) in msg
    assert "hguard calibrate --domain capitals" in msg and "for this model" in msg
    # Matching fingerprints, or unknown (None) ones, load.
    HNeuronProbe.load(path, expect=FINGERPRINTS)
    HNeuronProbe.load(path, expect={"model_fingerprint": "model-aaaa", "chat_template_fingerprint": None})


def test_check_fingerprints_lists_every_difference():
    metadata = {**FINGERPRINTS, "domain": "capitals"}
    assert check_fingerprints(metadata, FINGERPRINTS) == []
    problems = check_fingerprints(
        metadata,
        {"model_fingerprint": "m2", "system_prompt_fingerprint": "s2", "chat_template_fingerprint": None},
    )
    assert len(problems) == 2
    assert "model_fingerprint" in problems[0] and "'model-aaaa'" in problems[0] and "'m2'" in problems[0]
    assert "system_prompt_fingerprint" in problems[1] and "'s2'" in problems[1]
    assert "recalibrate with `--system-prompt`" in problems[1]  # a hash difference comes with what to do
    missing = check_fingerprints({"domain": "capitals"}, {"model_fingerprint": "m"})
    assert missing == ["model_fingerprint: the probe records none, this setup has 'm' (another model file than the "
                       "calibration's: serve that model, or recalibrate for this one)"]


def test_metadata_must_be_json(probe, tmp_path):
    with pytest.raises(InputError, match=r"probe file entry 'metadata\.metrics\.auroc' = nan is not finite"):
        probe.save(tmp_path / "p.json", metadata={"metrics": {"auroc": math.nan}})
    with pytest.raises(InputError, match=r"probe file entry 'metadata\.when' holds a object"):
        probe.save(tmp_path / "p.json", metadata={"when": object()})
    with pytest.raises(InputError, match="not a dict"):
        probe.save(tmp_path / "p.json", metadata=[("a", 1)])
    assert not (tmp_path / "p.json").exists()


# ------------------------------------------------------------------------------------ baseline


def test_random_neuron_baseline(probe, train, test_set):
    X, y, lengths = train
    Xt, yt, Lt = test_set
    n = probe.feature_indices_.size
    base = random_neuron_probe(X, y, n_neurons=n, seed=7)
    again = random_neuron_probe(X, y, n_neurons=n, seed=7)
    other = random_neuron_probe(X, y, n_neurons=n, seed=8)
    assert base.feature_indices_.size == n and np.all(np.diff(base.feature_indices_) > 0)
    np.testing.assert_array_equal(base.feature_indices_, again.feature_indices_)
    assert base.feature_indices_.tolist() != other.feature_indices_.tolist()
    assert not PLANTED & set(base.feature_indices_.tolist())
    assert base.C_ in base.Cs_.tolist()

    proba = base.predict_proba(Xt)
    assert proba.shape == (300, 2)
    np.testing.assert_array_equal(base.predict_proba_subset(Xt[:, base.feature_indices_]), proba)
    base_auroc = roc_auc_score(yt, proba[:, 1])
    probe_auroc = roc_auc_score(yt, probe.predict_proba(Xt, Lt)[:, 1])
    assert base_auroc < 0.65 < 0.93 < probe_auroc

    with_len = random_neuron_probe(X, y, n_neurons=n, seed=7, lengths=lengths)
    proba = with_len.predict_proba(Xt, lengths=Lt)
    assert proba.shape == (300, 2)
    # The JSON form scores the same as the object.
    d = json.loads(json.dumps(with_len.to_dict()))
    z = (Xt[:, d["feature_indices"]] - np.array(d["center"])) / np.array(d["scale"])
    z = np.column_stack([z, (np.log1p(Lt) - d["length"][0]) / d["length"][1]])
    np.testing.assert_allclose(1 / (1 + np.exp(-(z @ np.array(d["coef"]) + d["intercept"]))), proba[:, 1], rtol=1e-12)
    assert with_len.length_weight_ == d["coef"][-1] and len(with_len.weights_) == n
    with pytest.raises(InputError, match="lengths=None"):
        with_len.predict_proba(Xt)
    with pytest.raises(InputError, match="n_neurons=0"):
        random_neuron_probe(X, y, n_neurons=0, seed=7)


def test_cv_none_fits_the_single_C_without_folds_and_matches_the_cv_fit(train):
    X, y, lengths = train
    with_cv = HNeuronProbe(Cs=[0.2], cv=3).fit(X, y, lengths=lengths)
    without = HNeuronProbe(Cs=[0.2], cv=None).fit(X, y, lengths=lengths)
    np.testing.assert_array_equal(with_cv.feature_indices_, without.feature_indices_)
    np.testing.assert_allclose(with_cv.weights_, without.weights_)
    assert without.cv_results_["mean_auroc"] == [None] and without.cv_results_["fold_auroc"] == [[]]
    with pytest.raises(InputError, match="needs a single C"):
        HNeuronProbe(Cs=[0.1, 0.2], cv=None).fit(X, y, lengths=lengths)
    with pytest.raises(InputError, match="needs a single C"):
        HNeuronProbe(Cs=5, cv=None).fit(X, y, lengths=lengths)


def test_groups_keep_each_group_in_one_fold(train):
    X, y, lengths = train
    groups = np.arange(len(y)) // 2  # pairs of rows, like two phrasings of one fact
    p = HNeuronProbe(Cs=3, cv=3).fit(X, y, lengths=lengths, groups=groups)
    assert len(p.cv_results_["fold_auroc"][0]) == 3
    with pytest.raises(InputError, match="one group key per row"):
        HNeuronProbe(Cs=3, cv=3).fit(X, y, lengths=lengths, groups=groups[:-1])


def test_a_number_too_large_for_a_float_in_a_rehashed_file_is_refused_naming_it(saved, tmp_path):
    """An intercept written as a 400-digit JSON integer (the file re-hashed) raised OverflowError from math.isfinite
    at load, not the ProbeError naming the field that any other bad number gets."""
    from hguard.probe import _probe_id

    path, _ = saved
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["model"]["intercept"] = 10**400
    doc["probe_id"] = _probe_id(doc)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProbeError, match=r"model\['intercept'\] is missing or not a number \(found 1000"):
        HNeuronProbe.load(broken)


def test_a_probe_folder_or_a_value_that_is_not_a_path_given_for_a_probe_file_is_said_so(tmp_path):
    """Bad-input trials: CalibratedDomain.load(folder) (the probe folder for one of its files) said "is not a regular
    file; put the probe's JSON file there", and CalibratedDomain.load(5) / HNeuronProbe.load(5) failed in pathlib with a
    bare TypeError. The folder is said to be one, naming a probe file in it; a value that is not a path is named."""
    from hguard.domain import CalibratedDomain
    from hguard.errors import ProbeError
    from hguard.probe import HNeuronProbe

    (tmp_path / "report.json").write_text("{}")
    (tmp_path / "geo.json").write_text("{}")
    for load in (CalibratedDomain.load, HNeuronProbe.load):
        with pytest.raises(ProbeError) as info:
            load(tmp_path)
        assert str(info.value) == (f"probe file {str(tmp_path)!r} is a folder; name a probe file in it (e.g. "
                                   f"{str(tmp_path / 'geo.json')!r}), or give the folder to the policy's probes")
        for bad in (5, None, ""):
            with pytest.raises(ProbeError, match=r"^a probe file path must be a non-empty str or os\.PathLike, got "
                                                 + type(bad).__name__):
                load(bad)
