"""The calibration pipeline end to end on a tiny random model: collection (resumable), labels,
probes on disk, report, and the `evaluate` JSON contract."""

from __future__ import annotations

import json

import math
import numpy as np
import pytest

from hguard.calibrate import collect as collect_mod
from hguard.calibrate.data import write_examples
from hguard.calibrate.pipeline import auroc, calibrate, evaluate, load_probe_dir
from hguard.errors import DataError, ProbeMismatchError
from hguard.generation import Generator
from hguard.testing import tiny_examples as _examples
from hguard.testing import tiny_model

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    lm = tiny_model("llama", seed=3)
    root = tmp_path_factory.mktemp("cal")
    # alpha's rows carry a family (three question "templates"); beta's fall back to their fact group
    exs = [e.model_copy(update={"meta": {**e.meta, "family": f"t{k % 3}"}}) if e.domain == "alpha" else e
           for k, e in enumerate(_examples(lm))]
    data = root / "data.jsonl"
    write_examples(data, exs)
    out = root / "probes"
    report = calibrate([data], out, lm=lm, system_prompt="answer", max_new_tokens=4, progress=False, plots=True, batch_size=16)
    return lm, exs, data, out, report


def test_calibrate_writes_probes_report_and_plots(setup):
    lm, exs, data, out, report = setup
    assert set(report["domains"]) == {"alpha", "beta"}
    for d, m in report["domains"].items():
        assert (out / f"{d}.json").is_file()
        assert m["n"] > 0 and 0 <= m["hallucination_rate"] <= 1
        assert set(m["auroc"]) >= {"probe", "merged", "mean_logprob", "min_logprob", "entropy", "length", "random_neurons"}
        assert m["n_selected_neurons"] >= 1
    for name in ("report.md", "report.json", "risk_coverage.png", "transfer.png", "auroc.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "held-out" in md and "Cross-domain transfer" in md
    for d, m in report["domains"].items():  # every figure with its n and class counts
        assert m["correct"] + m["hallucinated"] == m["n_scored"] and f"| {d} | {m['n']} | {m['correct']} / {m['hallucinated']} |" in md
        t = m["at_target"]
        accepted = t["n_accepted"]
        assert 0 <= t["accepted_hallucinated"] <= accepted and (accepted == 0) == (t["accepted_hallucination_ci95"] is None)
        if accepted:
            assert f"({t['accepted_hallucinated']} of {accepted}; " in md
    # the split is by group: no fact on both sides
    s = report["split"]
    assert s["n_train"] + s["n_test"] == len(exs)
    assert set(report["transfer"]["auroc"]) == {"alpha", "beta"}
    # the transfer table's columns and the other targets' accepted answers carry their counts (a new user's trial:
    # a column of one right answer read as a figure)
    for d, c in report["transfer"]["counts"].items():
        m = report["domains"][d]
        assert (c["n"], c["correct"], c["hallucinated"]) == (m["n"], m["correct"], m["hallucinated"])
        assert f"{d} (n {c['n']}: {c['correct']} right / {c['hallucinated']} halluc.)" in md
    assert "mean_across_enough" in report["transfer"]
    for m in report["domains"].values():
        assert m["train"]["n"] == m["train"]["n_scored"] + m["train"]["refusals"]
        assert m["train"]["n_scored"] == m["train"]["correct"] + m["train"]["hallucinated"]
        for t in m["at_targets"]:
            assert 0 <= t["accepted_hallucinated"] <= t["n_accepted"]
            if t["n_accepted"]:
                assert f"({t['accepted_hallucinated']} of {t['n_accepted']}; " in md
    # where the automatic domain choice sends each domain's held-out questions, every one counted once
    for d, r in report["router"]["domains"].items():
        assert r["n"] == report["domains"][d]["n"], (r, report["domains"][d]["n"])
        assert r["to_domain"] + r["to_none"] + sum(r["to_other"].values()) == r["n"]
    assert set(report["router"]["domains"]) == {"alpha", "beta"} and "Automatic domain choice" in md


def test_the_report_gives_the_probes_neurons_and_its_paired_difference_to_the_random_neuron_control(setup):
    """Each domain's metrics carry the share of the model's FFN neurons its probe reads and the paired bootstrap
    interval of the probe's AUROC minus the random-neuron control's (None with too few of a class); report.md's
    table gives the neurons read beside the H-neurons among them."""
    from hguard.calibrate.report import neurons_cells

    lm, exs, data, out, report = setup
    md = (out / "report.md").read_text()
    for d, m in report["domains"].items():
        probe = load_probe_dir(out)[d].probe
        assert m["neuron_share_per_mille"] == pytest.approx(1000 * m["n_selected_neurons"] / probe.n_features_in_)
        assert f"| {neurons_cells(m)} |" in md and str(m["n_selected_neurons"]) in neurons_cells(m)
        diff = m["probe_minus_random_ci95"]
        if min(m["correct"], m["hallucinated"]) >= 10:
            a = m["auroc"]
            assert diff[0] <= a["probe"] - a["random_neurons"] <= diff[1]
        else:
            assert diff is None


def test_without_matplotlib_the_report_is_written_and_says_the_plots_were_left_out(setup, tmp_path, monkeypatch):
    import importlib.util

    from hguard.calibrate.report import write_report

    report = json.loads((setup[3] / "report.json").read_text())
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.warns(UserWarning, match=r"plots left out: matplotlib is not installed; pip install 'hguard\[plots\]'"):
        write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["plots_left_out"].startswith("matplotlib is not installed")
    md = (tmp_path / "report.md").read_text()
    assert "Plots left out: matplotlib is not installed" in md and "held-out" in md
    assert not list(tmp_path.glob("*.png"))


def test_leave_one_family_out_is_reported_per_family(setup):
    lm, exs, data, out, report = setup
    fam = report["domains"]["alpha"]["families"]
    assert set(fam["families"]) == {"t0", "t1", "t2"}
    n_by_family = {f: sum(1 for e in exs if e.domain == "alpha" and e.meta["family"] == f) for f in ("t0", "t1", "t2")}
    for f, e in fam["families"].items():
        # tested on every answer of the family (both splits), with class counts that add up
        assert e["n"] == n_by_family[f]
        assert e["correct"] + e["hallucinated"] + e["refusals"] == e["n"]
        assert set(e["auroc"]) >= {"probe", "merged", "random_neurons", "mean_logprob", "min_logprob", "entropy", "length"}
        assert e["at_target"]["target"] == 0.10 and 0.0 <= e["at_target"]["coverage"] <= 1.0
        if e.get("one_class"):
            assert all(v is None for v in e["auroc"].values())
        else:
            lo, hi = e["auroc_ci95"]["probe"]
            assert lo <= e["auroc"]["probe"] <= hi
    s = fam["summary"]
    assert s["n_families"] == 3 and s["at_target"]["n_scored"] == sum(e["n_scored"] for e in fam["families"].values())
    # rows without meta.family fall back to their fact group: beta has one family per fact, held out in folds
    beta = report["domains"]["beta"]["families"]
    assert set(beta["families"]) <= {f"fact:{e.meta['fact']}" for e in exs if e.domain == "beta"}
    assert len(beta["families"]) > 10 and any(e["held_out_with"] for e in beta["families"].values())
    assert all(f.startswith("fact:") for f in beta["families"])
    # the thresholds were fitted on cross-family out-of-fold scores, and the report says so
    for d in ("alpha", "beta"):
        assert report["domains"][d]["thresholds_fitted_on"].startswith("cross-family out-of-fold")
    meta = load_probe_dir(out)["alpha"].metadata()
    assert meta["thresholds_fitted_on"].startswith("cross-family") and meta["families_summary"]["n_families"] == 3
    # each calibration score records its answer's family, for a per-family certificate
    cs = meta["calibration_scores"]
    assert len(cs["family"]) == len(cs["risk"]) and set(cs["family"]) == {"t0", "t1", "t2"}
    # the AUROC of those scores, with n and class counts (the report gave only the fact folds' one, before the
    # cross-family refit of the merger: not the scores the thresholds rest on)
    ts = report["domains"]["alpha"]["threshold_scores"]
    assert (ts["n"], ts["hallucinated"]) == (len(cs["risk"]), sum(cs["hallucinated"])) and ts["correct"] + ts["hallucinated"] == ts["n"]
    assert ts["auroc"] == pytest.approx(auroc(cs["hallucinated"], cs["risk"]))
    assert ts["auroc_ci95"] is None or ts["auroc_ci95"][0] <= ts["auroc"] <= ts["auroc_ci95"][1]
    md = (out / "report.md").read_text()
    assert f"({ts['n']} answers: {ts['correct']} right, {ts['hallucinated']} hallucinated; AUROC " in md
    assert "Leave-one-family-out" in md and "| alpha | t0 |" in md
    assert report["prompt_frame"] == "asked through the model's chat template" and report["prompt_frame"] in md
    # whether each domain's accept threshold is certified, and why not, is said in words
    cs_of = {d: load_probe_dir(out)[d].metadata()["calibration_scores"] for d in ("alpha", "beta")}
    for d in ("alpha", "beta"):
        e = report["domains"][d]
        said = "**no accept threshold is certified**" if not e["at_target"]["accept_below"] else "certified:"
        assert any(line.startswith(f"- {d}: ") and said in line for line in md.splitlines()), d
        assert e["thresholds_method"] in md
        # and what a per-family certificate would give from the same scores, fitted as the guard fits it
        from hguard.policy import fit_thresholds

        pf = fit_thresholds(cs_of[d]["risk"], cs_of[d]["hallucinated"], target=e["at_target"]["target"],
                            confidence=e["at_target"]["confidence"], families=cs_of[d]["family"])
        assert e["thresholds_per_family"]["accept_below"] == pf.accept_below
        assert 'With `certify = "per_family"` in the policy:' in md and e["thresholds_per_family"]["method"] in md
    saved = json.loads((out / "report.json").read_text())
    assert set(saved["domains"]["alpha"]["families"]["families"]) == {"t0", "t1", "t2"}


def test_probe_files_carry_fingerprints_and_refuse_another_model(setup):
    lm, exs, data, out, report = setup
    probes = load_probe_dir(out)
    meta = probes["alpha"].metadata()
    assert meta["model_fingerprint"] == lm.fingerprint
    assert meta["domain"] == "alpha" and meta["data_hash"] and meta["merger"]["features"]
    with pytest.raises(ProbeMismatchError, match="model_fingerprint"):
        load_probe_dir(out, expect={"model_fingerprint": "another-model"})


def test_evaluate_refuses_probes_of_another_model_and_warns_on_another_setup(setup):
    lm, exs, data, out, report = setup
    with pytest.raises(ProbeMismatchError, match=r"calibrated for another model .*3 layers.*--model PATH"):
        evaluate(out, [data], lm=tiny_model("qwen2"), limit=4)  # two layers of 44: the neurons are another model's
    with pytest.warns(UserWarning, match="evaluated under another setup than its calibration: model_fingerprint"):
        res = evaluate(out, [data], lm=tiny_model("llama", seed=4), limit=4)  # same layout, other weights
    assert any("model_fingerprint" in p for m in res["domains"].values() for p in m["fingerprint_problems"])


def test_evaluate_prints_the_documented_json_shape(setup):
    lm, exs, data, out, report = setup
    res = evaluate(out, [data], lm=lm)
    json.dumps(res)
    for d in ("alpha", "beta"):
        m = res["domains"][d]
        assert {"n", "hallucination_rate", "refusal_rate", "auroc"} <= set(m)
        assert set(m["auroc"]) >= {"probe", "merged", "mean_logprob", "min_logprob", "entropy", "length", "random_neurons"}
        assert m["n"] == sum(e.domain == d for e in exs)
        th = m["thresholds"]  # what the routing figures rest on, with the guarantee's terms
        assert {"accept_below", "target", "confidence", "n_calibration"} <= set(th) and "out-of-fold" in th["fitted_on"]
    fam = res["domains"]["alpha"]["families"]["families"]
    assert set(fam) == {"t0", "t1", "t2"}
    for f, e in fam.items():
        assert e["n"] == sum(1 for x in exs if x.domain == "alpha" and x.meta["family"] == f)
        assert e["correct"] + e["hallucinated"] + e["refusals"] == e["n"]
        assert e["one_class"] if e["auroc"]["probe"] is None else 0 <= e["auroc"]["probe"] <= 1
        assert 0 <= e["ood"]["trigger_rate"] <= 1


def test_evaluate_routes_an_older_in_sample_file_as_the_guard_does(setup, tmp_path):
    """A review: `hguard evaluate` routed and counted by an older release's in-sample accept threshold, which the
    guard no longer uses (it accepts nothing under it)."""
    import shutil
    from dataclasses import replace

    from hguard.domain import CalibratedDomain

    lm, exs, data, out, report = setup
    probes = tmp_path / "probes"
    shutil.copytree(out, probes)
    cd = CalibratedDomain.load(probes / "alpha.json")
    th = replace(cd.thresholds, accept_below=0.99)
    replace(cd, thresholds=th, thresholds_fitted_on="... merged by the shipped merger, which was fitted on those "
            "same cross-family scores").save(probes / "alpha.json")
    res = evaluate(probes, [data], lm=lm)["domains"]["alpha"]
    assert res["thresholds"]["accept_below"] == 0.0 and "accepts nothing until" in res["thresholds"]["method"]
    assert res["answers"] and not [a for a in res["answers"] if a["route_at_probe_thresholds"] == "accept"]


def test_collection_resumes_without_redoing_finished_rows(tmp_path, setup, monkeypatch):
    lm, exs, *_ = setup
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    calls = []
    real = gen.generate

    def counting(questions, *a, **k):
        calls.append(len(questions))
        if len(calls) == 3:
            raise KeyboardInterrupt  # a Ctrl-C in the third batch
        return real(questions, *a, **k)

    monkeypatch.setattr(gen, "generate", counting)
    with pytest.raises(KeyboardInterrupt):
        collect_mod.collect(gen, exs[:40], tmp_path, batch_size=8, progress=False)
    entries = sorted((tmp_path / "shards").glob("shard-*.json"))
    assert [len(json.loads(p.read_text())["row_ids"]) for p in entries] == [8, 8]
    # a kill between the two writes leaves a data file without its entry (and maybe a temporary file):
    # neither counts as done, and the next shard is not written over a committed one
    (tmp_path / "shards" / "shard-000002.safetensors").write_bytes(b"torn")
    (tmp_path / "shards" / ".shard-000003.safetensors.1.tmp").write_bytes(b"torn")
    before = {p.name: p.stat().st_mtime_ns for p in entries}
    calls.clear()
    monkeypatch.setattr(gen, "generate", lambda q, *a, **k: (calls.append(len(q)), real(q, *a, **k))[1])
    col = collect_mod.collect(gen, exs[:40], tmp_path, batch_size=8, progress=False)
    assert col.features.shape == (40, 3 * 48) and col.features.dtype == np.float32
    assert [r["id"] for r in col.rows] == [e.id for e in exs[:40]]
    assert calls == [8, 8, 8]  # only the 24 unfinished rows were answered
    # and it says so: 24 answered now, 16 read back from the two shards the interrupted run committed
    assert col.origin == {"answers_collected": 24, "answers_reused": 16, "reused_shards": 2}
    assert {p.name: p.stat().st_mtime_ns for p in entries} == before
    fresh = Generator(lm, system_prompt="answer", max_new_tokens=4).generate([e.question for e in exs[:40]], batch_size=8)
    np.testing.assert_allclose(col.features, np.stack([g.cett for g in fresh]), rtol=1e-4, atol=1e-6)


def test_a_resumed_calibration_says_how_many_answers_it_collected_and_how_many_it_reused(tmp_path, setup):
    """A trial's run killed after 6 Ray shards and resumed: its report said '69 questions; collection 52 s', though 48
    of the answers came from the killed run, whose time was not counted, and did not say it resumed."""
    lm, exs, data, out, report = setup
    assert {k: report["timing"][k] for k in ("answers_collected", "answers_reused", "reused_shards")} == {
        "answers_collected": len(exs), "answers_reused": 0, "reused_shards": 0}
    assert f"{len(exs)} questions, all answered in this run; collection " in (out / "report.md").read_text()
    earlier = collect_mod.collect(Generator(lm, system_prompt="answer", max_new_tokens=4), exs[:24], tmp_path / "work",
                                  batch_size=8, progress=False)  # an earlier run: three shards of 8
    assert earlier.origin == {"answers_collected": 24, "answers_reused": 0, "reused_shards": 0}
    resumed = calibrate([data], tmp_path / "p", lm=lm, system_prompt="answer", max_new_tokens=4, progress=False,
                        plots=False, batch_size=16, work_dir=tmp_path / "work")
    t = resumed["timing"]
    assert (t["n_questions"], t["answers_collected"], t["answers_reused"], t["reused_shards"]) == (len(exs), len(exs) - 24, 24, 3)
    assert json.loads((tmp_path / "p" / "report.json").read_text())["timing"]["answers_reused"] == 24
    md = (tmp_path / "p" / "report.md").read_text()
    assert (f"{len(exs)} questions, **resumed**: {len(exs) - 24} answered in this run and 24 reused from 3 shards of an "
            "earlier run in the work folder; collection ") in md
    assert f"the collection time covers this run's {len(exs) - 24} answers only, the earlier run's time is not counted." in md


def test_collection_refuses_a_folder_from_other_settings(tmp_path, setup):
    lm, exs, *_ = setup
    collect_mod.collect(Generator(lm, system_prompt="answer", max_new_tokens=4), exs[:4], tmp_path, progress=False)
    with pytest.raises(DataError, match="system_prompt_fingerprint"):
        collect_mod.collect(Generator(lm, system_prompt="other", max_new_tokens=4), exs[:4], tmp_path, progress=False)


def test_a_model_edited_in_memory_is_not_calibrated_under_its_files_fingerprint(tmp_path):
    """A user trial: calibrating a model whose weights were edited after load_model (a LoRA merged in) recorded the
    fingerprint of the files, whose weights did not answer: refused, with what changed and the fix."""
    import torch

    from hguard.calibrate.data import Example
    from hguard.errors import UnsupportedModelError
    from hguard.testing import tiny_model

    lm = tiny_model("llama", seed=3)
    with torch.no_grad():
        lm.model.model.layers[1].self_attn.v_proj.weight.add_(0.01)
    rows = [Example(id=f"r{i}", question=f"capital city {w} ?", answers=[w], domain="alpha")
            for i, w in enumerate(["paris", "rome"])]
    for run in (lambda: calibrate(rows, tmp_path / "p", lm=lm, progress=False, plots=False),
                lambda: evaluate(tmp_path / "p", rows, lm=lm)):
        with pytest.raises(UnsupportedModelError, match=r"not those loaded from tiny:llama \(other values in: "
                                                        r"self_attn.v_proj.weight of layer\(s\) 1: .*calibrate on it"):
            run()
    assert not (tmp_path / "p").exists()


def test_collection_refuses_answers_given_to_an_edited_row(tmp_path, setup):
    lm, exs, *_ = setup
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    collect_mod.collect(gen, exs[:4], tmp_path, progress=False)
    collect_mod.collect(gen, exs[:4], tmp_path, progress=False)  # unchanged rows: reused
    edited = [exs[0].model_copy(update={"question": exs[0].question + " exactly"}), *exs[1:4]]
    with pytest.raises(DataError, match=rf"1 row\(s\) were answered in .* another question or passage .*'{exs[0].id}'"):
        collect_mod.collect(gen, edited, tmp_path, progress=False)
    with_passage = [exs[0], exs[1].model_copy(update={"context": "A passage the answer was not given from."}), *exs[2:4]]
    with pytest.raises(DataError, match=rf"'{exs[1].id}'.*new --work folder"):
        collect_mod.collect(gen, with_passage, tmp_path, progress=False)
    renamed = [*exs[:4], edited[0].model_copy(update={"id": exs[0].id + "-v2"})]  # an edited row under a new id
    assert len(collect_mod.collect(gen, renamed, tmp_path, progress=False).rows) == 5


def test_a_domain_renamed_since_collection_is_calibrated_under_its_new_name(tmp_path, setup):
    """A trial reused its --work folder for the same rows under another domain name: the probe was written as the
    old domain's (a second file claiming a bundled domain), with the data hash of no rows."""
    lm, exs, data, out, report = setup
    places = [e.model_copy(update={"domain": "places"}) if e.domain == "alpha" else e for e in exs]
    write_examples(tmp_path / "places.jsonl", places)
    calibrate([data], tmp_path / "before", lm=lm, system_prompt="answer", max_new_tokens=4, progress=False,
              plots=False, work_dir=tmp_path / "work")
    again = calibrate([tmp_path / "places.jsonl"], tmp_path / "after", lm=lm, system_prompt="answer", max_new_tokens=4,
                      progress=False, plots=False, work_dir=tmp_path / "work")
    assert sorted(p.name for p in (tmp_path / "after").glob("*.json") if p.name != "report.json") == ["beta.json", "places.json"]
    assert set(again["domains"]) == {"places", "beta"}
    written = json.loads((tmp_path / "after" / "places.json").read_text())
    fresh = calibrate([tmp_path / "places.jsonl"], tmp_path / "fresh", lm=lm, system_prompt="answer", max_new_tokens=4,
                      progress=False, plots=False)
    assert written["metadata"]["data_hash"] == json.loads((tmp_path / "fresh" / "places.json").read_text())["metadata"]["data_hash"]
    assert again["domains"]["places"]["n_scored"] == fresh["domains"]["places"]["n_scored"]


def test_auroc_intervals_hold_the_estimate_and_shrink_with_more_answers():
    from hguard.calibrate.pipeline import auroc, auroc_ci

    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 2, n)
        return y, y + rng.normal(0, 1.2, n)  # a noisy but real signal (AUROC about 0.7)

    y, s = sample(80)
    ci = auroc_ci(y, {"signal": s, "noise": rng.normal(size=80)})
    lo, hi = ci["signal"]
    assert lo < auroc(y, s) < hi
    assert ci["noise"][0] < 0.5 < ci["noise"][1]
    y2, s2 = sample(2000)
    lo2, hi2 = auroc_ci(y2, {"signal": s2})["signal"]
    assert hi2 - lo2 < (hi - lo) / 3
    assert auroc_ci(np.ones(5, int), {"signal": np.arange(5.0)}) == {"signal": None}


def test_the_probe_fit_warnings_name_their_domain(setup, tmp_path):
    import re
    import warnings

    lm, _, data, *_ = setup
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calibrate([data], tmp_path / "p", lm=lm, system_prompt="answer", max_new_tokens=4, progress=False, plots=False,
                  batch_size=16)
    fits = [str(w.message) for w in caught if "the probe does not beat chance" in str(w.message)
            or "the probe selected no neuron" in str(w.message)]
    # the tiny model's labels carry little signal: both domains' fits (main, folds, families) warn, each fit that is
    # not the probe written saying which it is (a family fold's read as the shipped probe's)
    fold = r"(in the fit without family [^(]+ \(one of the \d+ leave-one-family-out fits|in \d+ of the \d+ (out-of-fold refits|leave-one-family-out fits))"
    assert fits and all(re.match(rf"domain '(alpha|beta)': ({fold}.*not the probe written\): |)the probe (does not beat|selected no)", m)
                        for m in fits), fits
    assert {m.split("'")[1] for m in fits} == {"alpha", "beta"}
    assert any("leave-one-family-out" in m for m in fits)


def test_a_family_that_cannot_be_held_out_keeps_its_answers_in_the_threshold_fit(setup, tmp_path):
    """Without family "rare" (which holds nearly every right answer) no probe can be fitted, so its answers
    have no cross-family score; they keep their score from the folds of answers, so the thresholds' base
    rate still counts them (dropped, the domain looked almost all wrong and a new user's domain abstained on
    every answer)."""
    lm, exs, *_ = setup
    right = [e for e in exs if e.answers != ["zzzz"]]  # both domains' rows, as one domain: 48 right, 48 wrong
    keep_right = {e.id for e in right[:10]}
    fam = {e.id: ("rare" if e.answers != ["zzzz"] and e.id not in keep_right else f"w{k % 2}") for k, e in enumerate(exs)}
    rows = [e.model_copy(update={"domain": "alpha", "meta": {**e.meta, "family": fam[e.id]}}) for e in exs]
    write_examples(tmp_path / "d.jsonl", rows)
    report = calibrate([tmp_path / "d.jsonl"], tmp_path / "p", lm=lm, system_prompt="answer", max_new_tokens=4,
                       progress=False, plots=False, batch_size=16)
    m = report["domains"]["alpha"]
    assert "without rare" in m["families"]["families"]["rare"]["no_figure"]  # it could not be held out
    assert "answers of rare" in m["thresholds_fitted_on"] and "which saw their family" in m["thresholds_fitted_on"]
    scores = load_probe_dir(tmp_path / "p")["alpha"].metadata()["calibration_scores"]
    assert len(scores["risk"]) == m["train"]["n"] - m["train"]["refusals"]  # no training answer left out


def test_a_family_only_in_the_held_out_split_is_reported_and_rows_without_one_are_said(tmp_path, monkeypatch):
    from hguard.calibrate.collect import _group_key
    from hguard.calibrate.data import split_ids

    lm = tiny_model("llama", seed=3)
    exs = [e for e in _examples(lm) if e.domain == "alpha"]
    _, test_groups = split_ids(sorted({_group_key(e) for e in exs}), test_fraction=0.3, seed=0)
    test_groups = set(test_groups)
    # rows of held-out facts get a family of their own; every other row a template family, but 5 rows none
    late = [e.id for e in exs if _group_key(e) in test_groups][:6]
    bare = [e.id for e in exs if _group_key(e) not in test_groups][:5]
    rows = []
    for k, e in enumerate(exs):
        meta = {**e.meta, "family": "late" if e.id in late else f"t{k % 2}"}
        if e.id in bare:
            meta.pop("family")
        rows.append(e.model_copy(update={"meta": meta}))
    write_examples(tmp_path / "data.jsonl", rows)
    from hguard.calibrate import families
    from hguard.ood import fit_ood

    floors = []  # every threshold a family is routed with has the floor of its probe's own answers, as the guard's has
    monkeypatch.setattr(families, "fit_ood", lambda *a, own=None, **k: floors.append(own is not None) or fit_ood(*a, own=own, **k))
    with pytest.warns(UserWarning, match=r"5 of \d+ rows have no meta.family \(first: .*falls back to its fact group"):
        report = calibrate([tmp_path / "data.jsonl"], tmp_path / "probes", lm=lm, system_prompt="answer", max_new_tokens=4,
                           progress=False, plots=False, batch_size=16)  # fmt: skip
    fam = report["domains"]["alpha"]["families"]
    entry = fam["families"]["late"]
    assert entry["n"] == len(late) and "held-out split" in entry["held_out_only"]
    assert entry["correct"] + entry["hallucinated"] + entry["refusals"] == entry["n"]
    assert entry.get("auroc") is not None or entry.get("no_figure") or entry.get("one_class")  # a figure or why not
    assert "late has no training answer (all in the held-out split)" in report["domains"]["alpha"]["thresholds_fitted_on"]
    assert "late (held-out split only)" in (tmp_path / "probes" / "report.md").read_text()
    # routed with the out-of-distribution threshold the guard applies with the shipped probe (a review found it routed
    # with a lower one, without the floor of the probe's own answers)
    shipped = load_probe_dir(tmp_path / "probes")["alpha"].metadata()["ood"]
    assert entry["ood"]["threshold"] == pytest.approx(shipped["threshold"]) and "own_quantile" in shipped
    assert len(floors) >= 3 and all(floors), floors


def test_a_merger_input_that_did_not_vary_gets_no_weight_and_a_unit_scale():
    """Every calibration answer of 32 tokens: numpy's std of the equal log-lengths is float rounding (4e-16 at
    n = 105), not 0; as the scale it made a 31-token answer's risk 0 at request time."""
    from hguard.calibrate.pipeline import fit_merger
    from hguard.policy import merge_risk

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 52 + [1])
    Z = np.column_stack([y + rng.normal(0, 1.0, 105), [math.log1p(32)] * 105])
    assert 0 < Z[:, 1].std() < 1e-12
    merger = fit_merger(Z, y, ["neuron_logit", "log_length"])
    assert merger["scale"][1] == 1.0 and merger["coef"][1] == 0.0 and merger["coef"][0] > 0
    at = {"neuron_logit": 0.5}
    risks = [merge_risk({**at, "log_length": math.log1p(n)}, merger) for n in (31, 32, 33)]
    assert risks[0] == risks[1] == risks[2] and 0.05 < risks[0] < 0.95


def test_the_router_figure_sends_held_out_questions_where_the_guard_would():
    """The report's automatic-choice figure routes as the guard does (5 nearest, the default minimum): new
    questions of a domain's kind reach it, a question of no calibrated kind reaches none."""
    from hguard.calibrate._pipeline_report import router_coverage

    countries = ["France", "Peru", "Kenya", "Japan", "Norway", "Chile", "Egypt", "India", "Spain", "Ghana", "Nepal", "Cuba"]
    elements = ["iron", "gold", "sodium", "neon", "zinc", "argon", "copper", "silver", "lead", "tin", "helium", "carbon"]
    geo = [f"What is the capital of {c}?" for c in countries]
    chem = [f"What is the chemical symbol of {e}?" for e in elements]
    rep = router_coverage({"geo": geo[:8], "chem": chem[:8]},
                          {"geo": [*geo[8:], "How long should sourdough bread proof before baking?"], "chem": chem[8:]})
    assert rep["min_similarity"] == 0.35
    g, c = rep["domains"]["geo"], rep["domains"]["chem"]
    assert (g["n"], g["to_domain"], g["to_none"], g["to_other"]) == (5, 4, 1, {}), g
    assert (c["n"], c["to_domain"], c["to_none"]) == (4, 4, 0) and c["interval"][0] < 1.0 == c["interval"][1]
    assert g["similarity"]["p10"] < 0.35 < g["similarity"]["median"]


def test_the_router_figure_says_what_n_counts_and_flags_held_out_questions_worded_as_training_ones():
    """A legal team's trial: the RAG report's routing row read "contracts | 34 | 34 (1.00 [0.90, 1.00])" for 38
    held-out supporting rows, n not said, and 12 of the 34 questions were worded as training questions (the split is by
    passage, so a templated wording sits on both sides): a routing figure on them is not held out."""
    from hguard.calibrate._pipeline_report import ROUTER_COUNTS_ROWS, question_form, router_coverage
    from hguard.calibrate.report import router_markdown

    assert question_form("What is the capital of  FRANCE?") == question_form("what is the capital of france")
    assert question_form("What's the capital of France?") != question_form("What is the capital of Peru?")
    countries = ["France", "Peru", "Kenya", "Japan", "Norway", "Chile", "Egypt", "India", "Spain", "Ghana", "Nepal", "Cuba"]
    geo = [f"What is the capital of {c}?" for c in countries]
    # two held-out questions worded as training ones (case, spacing, punctuation aside), three new ones
    held_out = ["what is the capital of  FRANCE", "What is the capital of Peru ?!", *geo[9:]]
    rep = router_coverage({"geo": geo[:9]}, {"geo": held_out}, rows={"geo": 7})
    g = rep["domains"]["geo"]
    assert rep["n_counts"] == ROUTER_COUNTS_ROWS and (g["n"], g["n_rows"]) == (5, 7)
    assert g["in_training"] == 2 and g["in_training_first"] == held_out[:2]
    new = g["without_training_questions"]
    assert (new["n"], new["to_domain"]) == (3, 3) and new["interval"][0] < g["interval"][0]
    md = "\n".join(router_markdown({"router": rep}))
    assert f"n counts {ROUTER_COUNTS_ROWS}." in md and "case, spacing and punctuation aside" in md
    assert "| also a training question | to this domain without those (95% CI) |" in md
    lo, hi = new["interval"]
    assert "| geo | 5 (of 7 rows) | 5 (1.00 [" in md and f"| **2** | 3 (1.00 [{lo:.2f}, {hi:.2f}]) of 3 |" in md
    # every held-out question worded as a training one: no figure without them, said so
    every = router_coverage({"geo": geo[:9]}, {"geo": [q.upper() for q in geo[:3]]})["domains"]["geo"]
    assert every["in_training"] == 3 and every["without_training_questions"]["rate"] is None
    assert "- (every one is a training question)" in "\n".join(router_markdown({"router": {
        "min_similarity": 0.35, "router": "x", "n_counts": "y", "domains": {"geo": every}}}))


def test_the_held_out_figures_count_as_accepted_only_what_the_guard_accepts(monkeypatch):
    """An evaluation engineer's trial: the report's coverage and hallucinations among accepted counted an answer under
    accept_below that the out-of-distribution check sends to review (the guard accepted 4 where it said 5); the
    held-out check that withdraws an accept threshold counted it too."""
    from types import SimpleNamespace

    from hguard.calibrate import _pipeline_fit, _pipeline_report
    from hguard.calibrate.collect import Collected

    risk = np.array([0.1, 0.1, 0.1, 0.8])
    monkeypatch.setattr(_pipeline_fit, "score_rows", lambda fitted, col: {"probe": risk, "merged": risk})
    monkeypatch.setattr(_pipeline_report, "score_rows", lambda fitted, col: {"probe": risk, "merged": risk})
    probe = SimpleNamespace(feature_indices_=np.array([0]), center_=np.array([0.0]), scale_=np.array([1.0]),
                            h_neurons_=[], n_features_in_=2, C_=1.0)
    thresholds = SimpleNamespace(accept_below=0.5, abstain_above=0.95)
    fitted = {"probe": probe, "ood": {"threshold": 1.0}, "probe_threshold": 0.5, "merged_threshold": 0.5,
              "baseline_thresholds": {}, "oof_merged": [], "oof_y": [],
              "fit_thresholds": lambda *a, **k: thresholds}
    rows = [{"label": lab, "length": 3} for lab in ("correct", "hallucinated", "correct", "hallucinated")]
    test = Collected(rows, np.array([[0.5, 0.0], [3.0, 0.0], [0.2, 0.0], [0.5, 0.0]]))  # the second lies far out
    m = _pipeline_fit.domain_metrics(fitted, test, target=0.2, confidence=0.9, thresholds=thresholds)
    t = m["at_target"]
    assert (t["n_accepted"], t["accepted_hallucinated"], t["review_out_of_distribution"]) == (2, 0, 1)
    assert t["coverage"] == 0.5 and t["accepted_hallucination_rate"] == 0.0
    assert m["held_out_scores"]["out_of_distribution"] == [0, 1, 0, 0]
    at = _pipeline_report.coverage_at_targets(fitted, test, confidence=0.9)
    assert all((a["n_accepted"], a["accepted_hallucinated"], a["review_out_of_distribution"]) == (2, 0, 1) for a in at)


def _plotted_report():
    """A report as the pipeline writes it, of three domains: one of 20 held-out answers, one with 3 of a class, one
    with one class (no AUROC); the plots draw on these figures alone."""
    from hguard.calibrate.report import SIGNALS

    def domain(correct, hallucinated, refusals, auroc):
        return {"n": correct + hallucinated + refusals, "n_scored": correct + hallucinated, "correct": correct,
                "hallucinated": hallucinated, "refusals": refusals, "at_target": {"target": 0.2},
                "auroc": {k: auroc for k in SIGNALS},
                "auroc_ci95": {k: None if auroc is None else [auroc - 0.3, auroc + 0.2] for k in SIGNALS}}

    doms = {"astronomy": domain(11, 9, 0, 0.64), "beta": domain(12, 3, 1, 0.7), "gamma": domain(0, 6, 0, None)}
    curve = [[0.5, 0.2, 0.3], [1.0, 0.45, 0.6]]
    return {
        "split": {"by": "group", "test_fraction": 0.3, "seed": 0, "n_train": 49, "n_test": 42},
        "domains": doms,
        "risk_coverage": {d: {"merged": curve} for d in doms},
        "transfer": {"auroc": {a: {b: doms[b]["auroc"]["probe"] for b in doms} for a in doms},
                     "counts": {d: {k: m[k] for k in ("n", "correct", "hallucinated", "refusals")} for d, m in doms.items()},
                     "min_class_for_mean": 5},
    }


def test_every_plot_says_its_split_n_and_classes_and_the_auroc_bars_carry_their_intervals():
    """A trial pasted auroc.png alone: bare bars (probe 0.64, random neurons 0.70) with nothing of the 20 answers
    (11 right, 9 hallucinated) or the intervals report.md gives beside them."""
    import matplotlib.pyplot as plt
    from matplotlib.container import BarContainer
    from matplotlib.text import Text

    from hguard.calibrate.report import SIGNALS, figures

    report = _plotted_report()
    figs = figures(report)
    try:
        assert set(figs) == {"risk_coverage.png", "transfer.png", "auroc.png"}
        for name, fig in figs.items():
            text = " ".join(t.get_text() for t in fig.findobj(Text)).replace("\n", " ")
            assert "held-out split: 42 of 91 questions" in text and "seed 0" in text, (name, text)
            for counts in ("n 20: 11 right / 9 halluc.", "n 16: 12 right / 3 halluc.", "n 6: 0 right / 6 halluc."):
                assert counts in text, (name, counts, text)
            assert "(few)" in text, (name, text)  # beta has 3 hallucinated answers
            if name != "transfer.png":
                assert "one class only: no AUROC" in text and "1 refusal (not scored)" in text, (name, text)
        # each bar's whisker spans the interval report.json gives, not one computed again
        bars = [c for c in figs["auroc.png"].axes[0].containers if isinstance(c, BarContainer)]
        assert len(bars) == len(SIGNALS)
        for c in bars:
            segments = c.errorbar.lines[2][0].get_segments()
            spans = [(round(seg[0][1], 6), round(seg[1][1], 6)) for seg in segments if len(seg)]
            assert spans == [(0.34, 0.84), (0.4, 0.9)], spans  # gamma, of one class, has no bar and no whisker
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_a_home_path_given_for_the_output_is_the_home_folders(setup, tmp_path, monkeypatch):
    """A review: `calibrate --out '~/probes'` checked ~/probes but wrote into a folder named '~' in the working folder
    (whose clean-up, `rm -rf ~`, removes the home folder)."""
    lm, _, data, *_ = setup
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    calibrate([data], "~/probes", lm=lm, system_prompt="answer", max_new_tokens=4, progress=False, plots=False,
              batch_size=16, work_dir="~/work")
    assert (tmp_path / "home" / "probes" / "report.json").is_file() and (tmp_path / "home" / "work").is_dir()
    assert not (tmp_path / "~").exists()


def test_fit_warnings_count_fits_not_warnings():
    """A review: one fit that warned twice (once per CV fold) and a second fit read "in 3 of the 2 ... fits"."""
    import warnings

    from hguard.calibrate.screen import FitWarnings

    said = FitWarnings("test fits")
    for name in ("family a", "family b"):
        with said.fit(name):
            warnings.warn("no neuron", UserWarning, stacklevel=1)
            if name == "family a":
                warnings.warn("no neuron", UserWarning, stacklevel=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        said.say()
    assert [str(w.message) for w in caught] == ["in 2 of the 2 test fits (not the probe written): no neuron"]


def test_the_report_and_each_probe_file_record_what_the_fit_depended_on(setup, tmp_path):
    """An auditor's trial: the same rows in another order gave another probe (C, neurons, thresholds, probe_id) with
    the same data_hash, and 2 torch threads instead of 1 moved thresholds in the 7th digit; neither the order, the
    thread count, the batch size nor the hguard version was recorded."""
    import torch

    from hguard import __version__
    from hguard._probe_file import _probe_id
    from hguard.calibrate.data import data_hash, row_order_hash
    from hguard.domain import CalibratedDomain

    lm, exs, data, out, report = setup
    run = report["fitted_with"]
    assert run["threads"] == torch.get_num_threads() and run["batch_size"] == 16 and run["hguard_version"] == __version__
    assert run["device"] == "cpu" and len(run["hguard_source"]) == 16
    assert json.loads((out / "report.json").read_text())["fitted_with"] == run
    for d in ("alpha", "beta"):
        ids = [e.id for e in exs if e.domain == d]
        assert run["row_order_hash"][d] == row_order_hash(ids) != row_order_hash(ids[::-1])
        doc = json.loads((out / f"{d}.json").read_text())
        assert doc["metadata"]["fitted_with"] == {**run, "row_order_hash": row_order_hash(ids)}
        rows = [e for e in exs if e.domain == d]
        assert data_hash(rows[::-1]) == data_hash(rows) == doc["metadata"]["data_hash"]  # the order is the other's
        # a probe file written before it records none still loads
        del doc["metadata"]["fitted_with"]
        doc["probe_id"] = _probe_id(doc)
        (tmp_path / f"{d}.json").write_text(json.dumps(doc))
        assert CalibratedDomain.load(tmp_path / f"{d}.json").name == d


def test_the_reports_held_out_family_figure_is_the_one_the_withdrawal_reads_fallback_groups_included(setup, tmp_path):
    """A user trial: rows without meta.family fall back to their fact groups; the report pooled their answers into
    "on held-out families 129 of 206 accepted were hallucinated, not met" while the guard's check left them out and
    kept the threshold (accepting invented entities). One definition now routes and pools them for both."""
    from hguard._policy_fit import accept_below_without_family, new_family_figure
    from hguard.calibrate.report import markdown
    from hguard.policy import fit_thresholds

    lm, exs, data, _, _ = setup
    out = tmp_path / "probes"  # a target the tiny model's answers certify a threshold at
    report = calibrate([data], out, lm=lm, system_prompt="answer", max_new_tokens=4, progress=False, plots=False,
                       batch_size=16, target=0.8)
    files = load_probe_dir(out)
    compared = 0
    for d in ("alpha", "beta"):
        fam, cal = report["domains"][d]["families"], files[d]
        cs, fs = cal.calibration_scores, cal.family_scores
        # the certified threshold before any withdrawal, as the report's routing was fitted
        th = fit_thresholds(list(cs.risk), list(cs.hallucinated), target=cal.thresholds.target,
                            confidence=cal.thresholds.confidence)
        fig = new_family_figure(th, list(cs.risk), list(cs.hallucinated), list(cs.family),
                                left_out=(fs.risk, fs.hallucinated, fs.family, fs.out_of_distribution))
        at = fam["summary"]["at_target"]
        assert fig["n_families"] == fam["summary"]["n_families"]
        assert (fig["n_accepted"], fig["accepted_hallucinated"]) == (at["n_accepted"], at["accepted_hallucinated"])
        # each family routed by the threshold the guard's check refits without it
        without = accept_below_without_family(list(cs.risk), list(cs.hallucinated), list(cs.family),
                                              target=th.target, confidence=th.confidence)
        for f, e in fam["families"].items():
            if e.get("at_target"):
                assert e["at_target"]["accept_below"] == without.get(f, th.accept_below)
                compared += bool(e["at_target"]["accept_below"])
    assert compared  # some family was routed by a certified threshold
    # beta's rows have no meta.family: each of its families is a fallback fact group, and the report says so
    beta = report["domains"]["beta"]["families"]
    n_beta = sum(1 for e in exs if e.domain == "beta")
    assert beta["rows_without_family"] == n_beta and report["domains"]["alpha"]["families"]["rows_without_family"] == 0
    assert beta["summary"]["n_fallback_groups"] == beta["summary"]["n_families"] > 10
    assert report["domains"]["alpha"]["families"]["summary"]["n_fallback_groups"] == 0
    assert (f"{beta['summary']['n_families']}: 0 meta.family + {beta['summary']['n_fallback_groups']} fallback fact "
            f"groups; {n_beta} rows without meta.family fell back to their fact group") in markdown(report)


def test_calibration_refuses_a_decoding_set_on_the_models_generation_config_that_the_guard_holds(tmp_path, setup):
    """A setting transformers fills from the model's generation_config whatever the guard passes (prefill_chunk_size:
    other CETT) is a generation mismatch the guard holds on every answer; calibration recorded answers under it
    without a word, so probes fitted on them could never route an answer as scored. Refused, naming the setting."""
    from hguard.errors import UsageError

    lm, exs, *_ = setup
    lm.model.generation_config.prefill_chunk_size = 4
    try:
        with pytest.raises(UsageError, match=r"prefill_chunk_size=4.*generation_config\.prefill_chunk_size = None"):
            collect_mod.collect(Generator(lm, system_prompt="answer", max_new_tokens=4), exs[:2], tmp_path, progress=False)
        assert not (tmp_path / "shards").exists()  # nothing recorded
    finally:
        lm.model.generation_config.prefill_chunk_size = None
    collect_mod.collect(Generator(lm, system_prompt="answer", max_new_tokens=4), exs[:2], tmp_path, progress=False)


def test_c_and_the_out_of_fold_scores_are_fitted_on_folds_that_never_split_a_fact(setup, tmp_path, fold_splits):
    """A methods review: the report's "fact folds" were row-level folds that put rows of one fact (the same fact
    asked by several templates) on both sides, so the probe's C was chosen, and its out-of-fold AUROC measured, on
    folds that leak facts. Each fold now keeps a fact (the held-out split's group) whole; a domain with too few facts
    for the folds falls back to row folds, and the report and a warning say so."""
    import warnings

    from hguard.calibrate.collect import _group_key
    from hguard.calibrate.data import split_ids

    lm, exs, *_ = setup
    # alpha: 12 facts of 4 rows (each fact with both labels); beta: 3 facts, too few for 5 folds
    rows = [e.model_copy(update={"meta": {**e.meta, "fact": (f"a{int(e.id.split('-')[1]) // 8}" if e.domain == "alpha"
                                                              else f"b{int(e.id.split('-')[1]) // 2 % 3}")}})
            for e in exs]
    write_examples(tmp_path / "d.jsonl", rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = calibrate([tmp_path / "d.jsonl"], tmp_path / "p", lm=lm, system_prompt="answer", max_new_tokens=4,
                           progress=False, plots=False, batch_size=16)
    alpha = {_group_key(e) for e in rows if e.domain == "alpha"}
    trained, _ = split_ids(sorted(alpha), test_fraction=0.3, seed=0)
    mine = [(g, folds) for g, folds in fold_splits if set(g) == set(trained)]
    # the probe's choice of C and the out-of-fold scores, each on folds of alpha's training facts
    assert len(mine) >= 2, [sorted(set(g)) for g, _ in fold_splits]
    for groups, folds in mine:
        fold_of = {}
        for k, te in enumerate(folds):
            for i in te:
                assert fold_of.setdefault(groups[i], k) == k, f"fact {groups[i]} in folds {fold_of[groups[i]]} and {k}"
        assert len(groups) > len(set(groups))  # several rows a fact
    a, b = report["domains"]["alpha"]["train"], report["domains"]["beta"]["train"]
    assert a["folds_by"] == "fact" and a["folds"].startswith("5 folds grouped by fact")
    assert b["folds_by"] == "row" and "come from 2 facts, fewer than the 5 folds" in b["folds"]
    md = (tmp_path / "p" / "report.md").read_text()
    assert "(fact folds" not in md and "| C | folds | OOF AUROC probe |" in md
    assert f"| {report['domains']['alpha']['C']:.3g} | by fact |" in md
    assert f"| {report['domains']['beta']['C']:.3g} | by row |" in md and f"- beta: {b['folds']}." in md
    assert [str(w.message) for w in caught if "folds of rows" in str(w.message)] == [
        f"domain 'beta': C chosen and out-of-fold scores measured on {b['folds']}; add questions of other facts"]


def test_a_row_over_the_models_window_is_refused_before_any_row_is_answered(tmp_path, monkeypatch):
    """A user's RAG file held a passage longer than the model's context window: collection answered every other
    batch for hours, tried that row's batch twice and the row alone twice, and only then said it failed. The guard's
    own prompt check now runs on every row first, and names the row, its tokens, the window and the fix."""
    from hguard.calibrate.data import Example

    lm = tiny_model()
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    long = " ".join(["river city capital"] * 200)  # far over the tiny model's 256 tokens
    exs = [Example(id=f"r{i}", question="capital city river ?", answers=["x"], domain="alpha",
                   context=long if i in (5, 7) else "river city capital is here") for i in range(10)]
    n = len(gen.prompt_ids(exs[5].question, exs[5].context, within_limit=False))
    calls = []
    monkeypatch.setattr(gen, "generate", lambda q, *a, **k: calls.append(q))
    with pytest.raises(DataError) as err:
        collect_mod.collect(gen, exs, tmp_path, batch_size=4, progress=False)
    said = str(err.value)
    assert said.startswith(f"row 'r5' cannot be answered: the question is 20 characters (4 tokens) and "
                           f"the context is {len(long):,} characters (600 tokens)")  # 256 - 4 new - the frame's 37
    assert said.endswith(f" tokens): the prompt has {n} tokens and up to 4 more are generated, over the model's "
                         "context of 256 tokens; shorten the question and the context to at most 215 tokens together "
                         "(or pass fewer passages), or leave the row out (2 rows in all, checked before any was "
                         "answered); nothing was answered")
    assert calls == [] and not list((tmp_path / "shards").glob("shard-*.json"))
    # the Ray engine checks the same rows before it connects to a cluster (none listens at this address)
    from hguard.calibrate.ray_engine import RayOptions, collect_ray

    with pytest.raises(DataError) as on_ray:
        collect_ray(gen, exs, tmp_path / "ray", options=RayOptions(address="127.0.0.1:9"), progress=False)
    assert str(on_ray.value) == said
    # a resumed run: earlier runs' shards hold the other rows' answers, which the line says are kept (it said "nothing
    # was answered", as if they were lost)
    monkeypatch.undo()
    resumed = tmp_path / "resumed"
    collect_mod.collect(gen, [e for e in exs if e.id not in ("r5", "r7")], resumed, batch_size=4, progress=False)
    for run in (lambda: collect_mod.collect(gen, exs, resumed, batch_size=4, progress=False),
                lambda: collect_ray(gen, exs, resumed, options=RayOptions(address="127.0.0.1:9"), progress=False)):
        with pytest.raises(DataError) as again:
            run()
        assert str(again.value) == said.replace("checked before any was answered", "checked before this run answered "
                                                "any").replace("nothing was answered", "nothing was answered by this run "
                                                               f"(the 8 answers earlier runs committed are kept in "
                                                               f"{resumed}, and the next run answers only the rows "
                                                               "without one)")


def test_the_accuracy_table_gives_each_accuracy_its_interval_beside_always_saying_the_larger_class(setup):
    """A bank evaluator read chemistry's probe accuracy 0.858 with no interval beside it, and no line for what always
    saying "hallucinated" scores (0.818 there): each accuracy cell carries its exact 95% interval over the scored
    held-out answers, and a column gives the larger class's share."""
    from hguard._stats import clopper_pearson_interval

    lm, exs, data, out, report = setup
    md = (out / "report.md").read_text()
    table = md[md.index("Accuracy at the threshold"):].split("\n\n")[1].splitlines()
    assert table[0].startswith("| domain | always the larger class | probe | merged |")
    for d, m in report["domains"].items():
        n, right, halluc = m["correct"] + m["hallucinated"], m["correct"], m["hallucinated"]
        row = next(line for line in table if line.startswith(f"| {d} |"))
        assert f"| {max(right, halluc) / n:.3f} (" in row
        acc = m["accuracy"]["probe"]
        lo, hi = clopper_pearson_interval(round(acc * n), n)
        assert f"{acc:.3f} [{lo:.2f}, {hi:.2f}]" in row


def test_the_report_gives_abstained_answers_with_n_and_interval_and_checks_the_abstain_promise_held_out(setup, monkeypatch):
    """A clinical team read "abstained 0.63" in report.md with no n and no interval, and the abstain threshold's promise
    (at least abstain_precision of the answers it abstains on hallucinated, certified on the training split) was never
    checked on the held-out answers: 47 of 75 abstained there, 41 of them hallucinated (0.87, 95% CI 0.74-0.95)."""
    from types import SimpleNamespace

    from hguard._stats import clopper_pearson_interval
    from hguard.calibrate import _pipeline_fit
    from hguard.calibrate.collect import Collected
    from hguard.calibrate.report import _f, abstain_promise_said
    from hguard.cli import calibration_warnings

    # the figures, on held-out answers of known risks: 4 abstained on (risk >= 0.9), 3 of them hallucinated
    risk = np.array([0.1, 0.2, 0.5, 0.9, 0.92, 0.95, 0.99])
    labels = ("correct", "correct", "hallucinated", "correct", "hallucinated", "hallucinated", "hallucinated")
    monkeypatch.setattr(_pipeline_fit, "score_rows", lambda fitted, col: {"probe": risk, "merged": risk})
    probe = SimpleNamespace(feature_indices_=np.array([0]), center_=np.array([0.0]), scale_=np.array([1.0]),
                            h_neurons_=[], n_features_in_=2, C_=1.0)
    fitted = {"probe": probe, "ood": None, "probe_threshold": 0.5, "merged_threshold": 0.5, "baseline_thresholds": {}}
    test = Collected([{"label": lab, "length": 3} for lab in labels], np.zeros((len(labels), 2)))
    thresholds = SimpleNamespace(accept_below=0.15, abstain_above=0.9, abstain_precision=0.9)
    t = _pipeline_fit.domain_metrics(fitted, test, target=0.2, confidence=0.9, thresholds=thresholds)["at_target"]
    assert (t["n_abstained"], t["abstained_hallucinated"], t["abstain_precision"]) == (4, 3, 0.9)
    assert t["abstain_share_ci95"] == clopper_pearson_interval(4, 7) and t["abstained_hallucination_rate"] == 0.75
    assert t["abstained_hallucination_ci95"] == clopper_pearson_interval(3, 4)
    assert t["coverage_ci95"] == clopper_pearson_interval(1, 7)
    # 3 of 4 is below 0.9, but its interval reaches it: not shown broken, and said so
    assert (t["abstained_within_promise"], t["abstained_below_promise_shown"]) == (False, False)
    assert str(abstain_promise_said(t)).endswith(
        "3 of 4 abstained answers were hallucinated (0.75, 95% CI 0.19-0.99): below it by the point estimate; the "
        "interval reaches it, so these answers do not show it broken")
    # 5 of 20: the interval lies below the promise: the report and calibrate's warnings say it is broken
    broken = {**t, **_pipeline_fit.abstain_promise_checked(5, 20, 0.9), "n_abstained": 20, "abstained_hallucinated": 5,
              "abstained_hallucination_ci95": clopper_pearson_interval(5, 20)}
    assert "**below it**: the interval lies wholly below it" in str(abstain_promise_said(broken))
    report = {"domains": {"pharma": {"at_target": broken, "auroc": {}, "n_scored": 30}}}
    assert any(line.startswith("domain 'pharma': the abstain threshold 0.900 promises at least 0.9") and
               "5 of 20 abstained answers were hallucinated" in line for line in calibration_warnings(report, []))
    # within the promise: met; no abstained answer or no promise: nothing to check
    assert _pipeline_fit.abstain_promise_checked(9, 10, 0.9) == {"abstained_within_promise": True,
                                                                  "abstained_below_promise_shown": False}
    assert set(_pipeline_fit.abstain_promise_checked(0, 0, 0.9).values()) == {None}
    assert set(_pipeline_fit.abstain_promise_checked(3, 4, None).values()) == {None}
    # a real calibration: report.json carries the counts and intervals, and report.md shows each share with them
    lm, exs, data, out, report = setup
    md = (out / "report.md").read_text()
    for d, m in report["domains"].items():
        t, n = m["at_target"], m["n_scored"]
        assert t["abstain_share_ci95"] == clopper_pearson_interval(t["n_abstained"], n)
        lo, hi = t["abstain_share_ci95"]
        assert f"| {_f(t['abstain_share'], 2)} ({t['n_abstained']} of {n}; {lo:.2f}-{hi:.2f}) |" in md
        lo, hi = t["coverage_ci95"]
        assert f"| {_f(t['coverage'], 2)} ({t['n_accepted']} of {n}; {lo:.2f}-{hi:.2f}) |" in md
        for a in m["at_targets"]:
            lo, hi = a["coverage_ci95"]
            assert a["n_scored"] == n and f"{_f(a['coverage'], 2)} ({a['n_accepted']} of {n}; {lo:.2f}-{hi:.2f}) / " in md
        if t["n_abstained"]:
            assert abstain_promise_said(t) is not None and f"- {d}: {abstain_promise_said(t)}." in md
    # the per-family certificate's coverage of the calibration answers: k of n with its interval too
    from hguard.calibrate.report import _certified

    pf = {"accept_below": 0.3, "coverage": 0.25, "n_calibration": 40, "method": "per family"}
    lo, hi = clopper_pearson_interval(10, 40)
    said = _certified("pharma", {"at_target": {**t, "accept_below": 0.0}, "thresholds_method": "pooled",
                                 "thresholds_per_family": pf})
    assert f"accept below 0.300 (0.25 (10 of 40; {lo:.2f}-{hi:.2f}) of the calibration answers)" in said


def test_calibrate_says_its_progress_on_stderr_while_collecting_and_as_each_phase_starts(tmp_path, setup, capsys):
    """A clinical team's calibration ran 8 minutes, 7 of them with nothing new in its log: the collection's bar redraws
    one line (a log file shows no new line for minutes), and the fits after it said nothing. The command now prints a
    line at each tenth of the answers and as each phase starts, on stderr only; --quiet prints none."""
    import re

    from hguard.calibrate.collect import Progress
    from hguard.cli import _progress_lines

    lm, exs, data, out, report = setup
    n = len(exs)
    with _progress_lines("calibrate", quiet=False):
        calibrate([data], tmp_path / "p", lm=lm, system_prompt="answer", max_new_tokens=4, progress=True, plots=False,
                  batch_size=4, work_dir=tmp_path / "work")
    said, err = capsys.readouterr()
    assert said == ""  # stdout stays for scripts
    answers = re.findall(r"hguard calibrate: answers (\d+)/(\d+) \((\d+)%\), \d+\.\d min(?:, about \d+\.\d min left)?\n", err)
    done = [int(d) for d, *_ in answers]
    assert {int(t) for _, t, _ in answers} == {n} and done == sorted(done) and done[-1] == n
    assert 9 <= len(done) <= 11 and all(int(p) == round(100 * int(d) / n) for d, _, p in answers)
    phases = ["domain 'alpha': fitting the probe on", "domain 'alpha': leave-one-family-out fits",
              "domain 'alpha': thresholds and held-out figures on", "domain 'beta': fitting the probe on",
              "cross-domain transfer, out-of-distribution and domain-choice figures",
              f"writing 2 probe file(s) and the report to {tmp_path / 'p'}"]
    at = [err.index(f"hguard calibrate: {p}") for p in phases]
    assert at == sorted(at) and at[0] > err.index(f"answers {n}/{n} (100%)")
    assert re.search(r"hguard calibrate: domain 'alpha': fitting the probe on \d+ training answers \(\d+\.\d min\)\n", err)
    # a resumed run counts the rows earlier runs answered, and says so; --quiet (or progress off) says nothing
    with _progress_lines("calibrate", quiet=False):
        bar = Progress(40, 24, desc="collecting", enabled=True)
        bar.update(8)
        bar.update(8)
        bar.close()
    err = capsys.readouterr().err
    assert re.findall(r"answers (\d+)/40 \(\d+%\), \d+\.\d min(?:, about \d+\.\d min left)? \(24 answered by earlier "
                      r"runs\)", err) == ["32", "40"]
    for quiet, enabled in ((True, True), (False, False)):
        with _progress_lines("calibrate", quiet=quiet):
            bar = Progress(40, 0, desc="collecting", enabled=enabled)
            bar.update(40)
            bar.close()
        assert "answers" not in capsys.readouterr().err


def test_calibrates_progress_lines_come_after_each_batch_that_reaches_a_tenth_as_the_readme_says(capsys):
    """A review: the README said a progress line comes "at each tenth of the answers"; a 68-answer run printed at 16,
    32, 48, 64 and 68: once a batch (of 16) that reaches a further tenth. The README says what it does."""
    import re
    from pathlib import Path

    from hguard.calibrate.collect import Progress
    from hguard.cli import _progress_lines

    def said(total: int, batches: list[int]) -> list[int]:
        with _progress_lines("calibrate", quiet=False):
            bar = Progress(total, 0, desc="collecting", enabled=True)
            for n in batches:
                bar.update(n)
            bar.close()
        return [int(d) for d in re.findall(rf"answers (\d+)/{total} ", capsys.readouterr().err)]

    assert said(68, [16, 16, 16, 16, 4]) == [16, 32, 48, 64, 68]  # the review's run: one line a batch
    assert said(100, [1] * 100) == list(range(10, 101, 10))  # batches smaller than a tenth: at each tenth
    assert said(100, [3] * 33 + [1]) == [12, 21, 30, 42, 51, 60, 72, 81, 90, 100]  # the batch that reaches one
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `hguard calibrate --data"))
    assert "after each batch of answers (`--batch-size`, 16 by default) that reaches a further tenth of them" in row
    assert "at each tenth of the answers" not in row
