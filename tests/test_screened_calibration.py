"""`hguard calibrate` fitting its probes by screening from the shards, and the device each engine answers on.

Tiny random model: a screened calibration gives a loadable probe whose neurons are among the top K of
its training rows, never asks for the full feature matrix (the shard-backed features refuse it), is
the in-memory calibration when K keeps every feature, and refuses a bad K or budget with one line.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hguard.calibrate.collect import load_collected
from hguard.calibrate.data import write_examples
from hguard.calibrate.families import attach_families
from hguard.calibrate.pipeline import _y, calibrate, split_groups
from hguard.calibrate.screen import IN_MEMORY_BYTES_PER_VALUE, ShardFeatures, choose_fit, feature_stats, top_k
from hguard.devices import choose_device
from hguard.errors import DataError, InputError
from hguard.probe import HNeuronProbe
from hguard.testing import tiny_examples, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore:.*the probe does not beat chance")

K = 12


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    lm = tiny_model("llama", seed=3)
    root = tmp_path_factory.mktemp("screen")
    # alpha's rows carry a family, so the cross-family folds are fitted (and screened) too
    exs = [e.model_copy(update={"meta": {**e.meta, "family": f"t{k % 3}"}}) for k, e in enumerate(tiny_examples(lm))
           if e.domain == "alpha"]
    data = root / "data.jsonl"
    write_examples(data, exs)
    kw = dict(lm=lm, system_prompt="answer", max_new_tokens=4, progress=False, plots=False, batch_size=16, seed=0,
              work_dir=root / "work", signing_key=None)
    screened = calibrate([data], root / "screened", screen_top=K, **kw)
    return lm, exs, data, root, kw, screened


def test_a_screened_calibration_writes_a_loadable_probe_whose_neurons_are_among_the_top_k(run):
    lm, exs, data, root, kw, report = run
    probe, meta = HNeuronProbe.load(root / "screened" / "alpha.json")
    assert meta["probe_fit"]["method"] == "screened" and meta["probe_fit"]["k"] == K
    assert meta["probe_fit"]["statistic"] == "abs Welch t per feature"
    assert report["probe_fit"] == meta["probe_fit"] == report["domains"]["alpha"]["train"]["probe_fit"]
    # the top K of the training split's answers (refusals left out), as the pipeline screened them
    col = load_collected(root / "work")
    attach_families(col.rows, exs)
    test = split_groups(col.rows, 0.3, 0)
    train = [r for r, t in zip(col.rows, test) if not t and r["label"] != "refusal"]
    top = top_k(feature_stats(root / "work", [r["id"] for r in train], _y(train)), K)
    assert len(probe.feature_indices_) >= 1 and set(probe.feature_indices_.tolist()) <= set(top.tolist())
    assert probe.n_features_in_ == col.features.shape[1]
    # the cross-family folds were screened too, each within its own rows: K features at most
    fams = report["domains"]["alpha"]["families"]["families"]
    assert fams and all(e.get("n_selected_neurons", 0) <= K for e in fams.values())
    # the probe scores full rows like any probe
    lengths = np.array([r["length"] for r in col.rows], float)
    assert np.isfinite(probe.decision_function(col.features, lengths=lengths)).all()


def test_shard_backed_features_read_columns_and_refuse_the_full_matrix(run):
    lm, exs, data, root, kw, report = run
    col = load_collected(root / "work")
    lazy = load_collected(root / "work", lazy=True).features
    assert isinstance(lazy, ShardFeatures) and lazy.shape == col.features.shape
    rows = np.arange(len(lazy))[::3]
    np.testing.assert_array_equal(lazy[rows][:, [5, 1, 40]], col.features[rows][:, [5, 1, 40]])
    with pytest.raises(DataError, match="must read columns"):
        np.asarray(lazy)


def test_a_screened_calibration_keeping_every_feature_is_the_in_memory_calibration(run):
    lm, exs, data, root, kw, screened = run
    mem = calibrate([data], root / "memory", **kw)  # the answers are read back from the same shards
    everything = calibrate([data], root / "all", screen_top=10**6, **kw)
    assert mem["probe_fit"]["method"] == "in_memory" and everything["probe_fit"]["method"] == "screened"
    a = json.loads((root / "memory" / "alpha.json").read_text())
    b = json.loads((root / "all" / "alpha.json").read_text())
    assert a["model"]["feature_indices"] == b["model"]["feature_indices"] and a["model"]["C"] == b["model"]["C"]
    np.testing.assert_allclose(a["model"]["weights"], b["model"]["weights"], rtol=1e-6, atol=1e-9)
    ma, mb = a["metadata"], b["metadata"]
    for key in ("coef", "mean", "scale"):
        np.testing.assert_allclose(ma["merger"][key], mb["merger"][key], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ma["calibration_scores"]["risk"], mb["calibration_scores"]["risk"], rtol=1e-6, atol=1e-9)
    assert ma["random_baseline"]["feature_indices"] == mb["random_baseline"]["feature_indices"]
    np.testing.assert_allclose(ma["random_baseline"]["coef"], mb["random_baseline"]["coef"], rtol=1e-6, atol=1e-9)
    assert ma["thresholds"]["accept_below"] == pytest.approx(mb["thresholds"]["accept_below"], abs=1e-9)
    for k, v in mem["domains"]["alpha"]["auroc"].items():
        assert v == pytest.approx(everything["domains"]["alpha"]["auroc"][k], abs=1e-9), k


def test_over_the_memory_budget_the_fit_is_screened_and_says_so(run, caplog):
    lm, exs, data, root, kw, _ = run
    n_features = load_collected(root / "work", lazy=True).features.shape[1]
    budget_bytes = 20 * len(exs) * IN_MEMORY_BYTES_PER_VALUE  # room for 20 features of every row
    fit = choose_fit(len(exs), n_features, fit_memory_gb=budget_bytes / 1e9)
    assert fit.screened and fit.screen_top == 20 and "over the budget" in fit.reason
    assert not choose_fit(len(exs), n_features, fit_memory_gb=1.0).screened
    with caplog.at_level(logging.INFO, logger="hguard.calibrate"):
        report = calibrate([data], root / "budget", fit_memory_gb=budget_bytes / 1e9, **kw)
    assert report["probe_fit"]["method"] == "screened" and report["probe_fit"]["k"] == 20
    assert "screened to the top 20 features" in caplog.text


def test_a_screen_wider_than_the_model_says_it_keeps_every_feature():
    fit = choose_fit(10, 36864, screen_top=100000)
    assert fit.reason == "--screen-top 100000 was given, at least the model's 36864 features: every feature kept"
    assert choose_fit(10, 36864, screen_top=500).reason == "--screen-top 500 was given"


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_a_bad_k_or_budget_is_refused_with_one_line(k, tmp_path, capsys):
    from hguard.cli import main

    with pytest.raises(InputError, match=r"--screen-top .*: pass the number of features to keep, an int >= 1"):
        choose_fit(10, 10, screen_top=k)
    with pytest.raises(InputError, match="--fit-memory-gb"):
        choose_fit(10, 10, fit_memory_gb=-1.0)
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "q1", "question": "capital of france ?", "answers": ["paris"], "domain": "geo"}\n')
    if isinstance(k, int) and not isinstance(k, bool):  # argparse itself refuses a non-integer
        rc = main(["calibrate", "--data", str(data), "--out", str(tmp_path / "o"), "--screen-top", str(k), "--model", "no-such-model"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"--screen-top {k}: pass the number of features to keep" in err[0]


# ---------------------------------------------------------------------------------------- devices


def test_the_device_follows_the_request_and_the_gpu_ray_assigned(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert choose_device("auto", cuda_available=False) == "cpu"
    assert choose_device("cpu", cuda_available=True) == "cpu"
    assert choose_device("auto", cuda_available=True) == "cuda:0"
    assert choose_device("cuda:1", cuda_available=True) == "cuda:1"
    # an actor given GPU 3 by Ray, with both GPUs visible to its process: torch's index 1
    assert choose_device("auto", gpus_reserved=1, gpu_ids=[3], cuda_available=True) == "cuda:1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # Ray's usual setting: only the assigned GPU is visible
    assert choose_device("auto", gpus_reserved=1, gpu_ids=[3], cuda_available=True) == "cuda:0"
    # torch.cuda.is_available() is what is asked when not told
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("auto") == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("auto") == "cpu"


def test_a_gpu_asked_for_where_torch_sees_none_is_refused_with_one_line():
    with pytest.raises(InputError, match=r"^--gpus-per-actor 1 but torch sees no CUDA GPU on .*Ray GPU ids \[0\]\); .*pass --device cpu --gpus-per-actor 0$"):
        choose_device("auto", gpus_reserved=1, gpu_ids=[0], cuda_available=False, in_ray=True)
    with pytest.raises(InputError, match=r"^--device cuda but torch sees no CUDA GPU") as outside_ray:
        choose_device("cuda", cuda_available=False)
    assert "Ray" not in str(outside_ray.value) and str(outside_ray.value).endswith("or pass --device cpu (or auto)")
    with pytest.raises(InputError, match="--device cpu with --gpus-per-actor 1"):
        choose_device("cpu", gpus_reserved=1, cuda_available=True)
    with pytest.raises(InputError, match="pass auto, cpu, cuda or cuda:N"):
        choose_device("gpu")


def test_the_local_engine_answers_on_the_device_asked_for(run, tmp_path):
    lm, exs, data, root, kw, _ = run
    report = calibrate([data], tmp_path / "cpu", **{**kw, "device": "cpu"})  # answers read back from the shards
    assert next(lm.model.parameters()).device.type == "cpu" and report["domains"]
    if not __import__("torch").cuda.is_available():
        with pytest.raises(InputError, match="--device cuda but torch sees no CUDA GPU"):
            calibrate([data], tmp_path / "cuda", **{**kw, "device": "cuda"})


def test_the_rag_calibration_fits_its_probes_by_screening_too(run, tmp_path):
    from hguard.calibrate.rag import calibrate_rag

    from hguard.generation import Generator

    lm, exs, data, root, kw, _ = run
    # passages for alpha's questions; every other question accepts the model's own first word given the passage
    ctxs = [" ".join(reversed(e.question.split()[:3])) + " is here" for e in exs]
    answers = Generator(lm, system_prompt="answer", max_new_tokens=4).generate([e.question for e in exs], ctxs, neurons=None,
                                                                               batch_size=32)
    rag = [e.model_copy(update={"context": c, "answers": a.text.split()[:1] if k % 2 == 0 and a.text.split() else ["zzzz"],
                                "meta": {"group": e.meta["fact"], "condition": "supporting", "dataset": "tiny"}})
           for k, (e, c, a) in enumerate(zip(exs, ctxs, answers))]
    report = calibrate_rag(rag, tmp_path / "rag", lm=lm, system_prompt="answer", max_new_tokens=4, work_dir=tmp_path / "work",
                           progress=False, screen_top=K)
    assert report["probe_fit"]["method"] == "screened" and report["probe_fit"]["k"] == K
    assert "alpha" in report["domains"], report["skipped"]
    probe, meta = HNeuronProbe.load(tmp_path / "rag" / "alpha.rag.json")
    assert meta["probe_fit"] == report["probe_fit"]
    rows = load_collected(tmp_path / "work").rows
    test = split_groups(rows, 0.3, 0)
    train = [r for r, t in zip(rows, test) if not t and r["label"] != "refusal"]
    # screened on (a subset of) the training answers: its neurons are among at most K per fit, all of the model's width
    assert 1 <= len(probe.feature_indices_) <= K and probe.n_features_in_ == load_collected(tmp_path / "work", lazy=True).features.shape[1]
    assert len(train) >= report["domains"]["alpha"]["train"]["n_scored"]
