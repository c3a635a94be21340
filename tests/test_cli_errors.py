"""Bad input on the command line: one line naming the value and the fix, a non-zero exit code, no
traceback unless --debug; a request that fails after the guard is up is audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hguard.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "hguard", *args], capture_output=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "HGUARD_THREADS": "1", **(env or {})},
    )


def _one_clear_line(r, *needles):
    out = r.stderr.decode("utf-8", "replace").strip()
    assert r.returncode == 2, (r.returncode, out)
    # the model loader's progress bar may precede it; the error itself is one line of its own
    lines = [x for x in out.splitlines() if x.startswith("hguard ")]
    assert "Traceback" not in out and len(lines) == 1, out
    err = lines[0]
    for n in needles:
        assert n in err, (n, err)
    return err


def test_missing_context_file(tmp_path):
    _one_clear_line(run("ask", "q?", "--context", str(tmp_path / "nope.txt")), "nope.txt", "does not exist")


def test_an_unknown_domain_is_refused_before_the_model_loads(tmp_path):
    pol = tmp_path / "p" / "policy.toml"
    from hguard import policy_copy

    policy_copy(pol.parent)
    r = run("ask", "q?", "--domain", "hr", "--policy", str(pol))
    err = _one_clear_line(r, "--domain 'hr' is not a domain of the policy (its domains: ",
                          "); leave --domain out to let the guard choose")
    assert b"Loading weights" not in r.stderr and not (pol.parent / "audit.jsonl").exists(), err


def test_an_empty_context_file_is_refused_before_the_model_loads(tmp_path):
    ctx = tmp_path / "ws.txt"
    ctx.write_text("  \n\t\n")
    pol = tmp_path / "p" / "policy.toml"
    from hguard import policy_copy

    policy_copy(pol.parent)
    r = run("ask", "q?", "--context", str(ctx), "--policy", str(pol))
    _one_clear_line(r, "ws.txt", "only whitespace")
    assert b"Loading weights" not in r.stderr and not (pol.parent / "audit.jsonl").exists()  # nothing loaded or recorded


def test_context_file_is_a_folder(tmp_path):
    _one_clear_line(run("ask", "q?", "--context", str(tmp_path)), str(tmp_path), "is a folder")


def test_context_file_not_utf8(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("caf\xe9 au lait".encode("latin-1"))
    _one_clear_line(run("ask", "q?", "--context", str(f)), "latin1.txt", "not UTF-8", "iconv")


def test_threads_not_a_number():
    _one_clear_line(run("ask", "q?", env={"HGUARD_THREADS": "abc"}), "HGUARD_THREADS", "'abc'", "HGUARD_THREADS=1")


def test_threads_past_what_the_machine_can_use():
    """HGUARD_THREADS=100000 died in "unexpected error: MemoryError" and a segmentation fault (a red team's trial)."""
    _one_clear_line(run("ask", "q?", env={"HGUARD_THREADS": "100000"}), "HGUARD_THREADS", "'100000'", "HGUARD_THREADS=1")
    from hguard.devices import env_threads

    for odd in ("\u00b2", "\u0664"):  # a superscript two (a "digit" int() refuses), an Arabic-Indic four
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HGUARD_THREADS", odd)
            with pytest.raises(InputError, match=f"HGUARD_THREADS must be a whole number from 1 to .*got {odd!r}"):
                env_threads()


def test_missing_policy_file(tmp_path):
    _one_clear_line(run("ask", "q?", "--policy", str(tmp_path / "p.toml")), "p.toml")


def test_debug_shows_the_traceback(tmp_path):
    r = run("ask", "q?", "--context", str(tmp_path / "nope.txt"), "--debug")
    assert r.returncode != 0 and b"Traceback" in r.stderr


def test_lone_surrogate_is_an_input_error_not_a_type_error(tiny_calibrated, tmp_path):
    from hguard.errors import InputError
    from hguard.guard import Guard
    from hguard.policy import Policy

    lm, root = tiny_calibrated
    pol = Policy.model_validate({"version": 1, "probes": str(root / "probes"), "audit": {"path": str(tmp_path / "a.jsonl")},
                                 "review": {"queue": str(tmp_path / "q.sqlite3")},
                                 "generation": {"max_new_tokens": 4, "system_prompt": "answer"}, "domains": {"alpha": {}}})
    g = Guard.from_policy(pol, lm=lm)
    with pytest.raises(InputError, match="not valid text: character 4"):
        g.invoke("who \udcff ?", domain="alpha")
    with pytest.raises(InputError, match="context is not valid text") as err:
        g.invoke("who ?", context="ab\ud800", domain="alpha")
    with pytest.raises(InputError, match="question 1 of 2 .*question is empty|question 1 of 2"):
        g.batch(["who ?", "   "])
    refused = [r for r in g.audit if r["kind"] == "error"]  # every refused request, with its error
    assert len(refused) == 3 and refused[1]["id"] == err.value.audit_id and "\\ud800" in refused[1]["context"]
    assert all(r["source"] == "api" and "InputError" in r["error"] for r in refused) and refused[2]["question"] == "   "
    rid = g.record_failure("who \udcff ?", InputError("bad"), source="test")
    rec = g.audit.find(rid)
    assert rec["kind"] == "error" and "\\udcff" in rec["question"]


@pytest.mark.default_model
def test_invalid_utf8_question_is_one_line_and_audited(tmp_path):
    from hguard import policy_copy

    pol = policy_copy(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "hguard", "ask", b"What is the capital of \xff?", "--policy", str(pol)],
        capture_output=True, timeout=600, cwd=ROOT, env={**os.environ, "HGUARD_THREADS": "1"},
    )
    _one_clear_line(r, "question is not valid text", "UTF-8")
    from hguard.audit import AuditLog, verify

    recs = list(AuditLog(tmp_path / "audit.jsonl"))
    assert [x["kind"] for x in recs] == ["error"] and "InputError" in recs[0]["error"]
    assert verify(tmp_path / "audit.jsonl").ok


def test_calibrate_rag_reaches_its_own_checks():
    # the command imports its calibration module before checking its arguments: a wrong import path
    # read as "hguard is not installed"
    err = _one_clear_line(run("calibrate-rag"), "--out DIR")
    assert "not installed" not in err


def test_evaluate_rag_reaches_its_own_checks(tmp_path):
    err = _one_clear_line(run("evaluate", "--rag", "--probes", str(tmp_path)), "--rag needs --work DIR")
    assert "not installed" not in err


def test_evaluate_says_a_missing_probe_folder_before_loading_the_model(tmp_path, monkeypatch, capsys):
    """evaluate loaded the model (15 s) before saying that --probes names no folder."""
    from hguard.calibrate import pipeline
    from hguard.cli import main

    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["evaluate", "--probes", str(tmp_path / "nodir"), "--data", str(tmp_path / "d.jsonl")]) == 2
    assert "the probe folder" in capsys.readouterr().err


def test_evaluate_that_scores_no_domain_exits_1_saying_so(tmp_path, monkeypatch, capsys):
    """A new user's trial: rows of a domain the probes do not calibrate were all skipped and evaluate exited 0."""
    from hguard.calibrate import pipeline
    from hguard.cli import main

    (tmp_path / "probes").mkdir()
    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: {"domains": {}, "skipped": {"astro": "no probe for it"}})
    assert main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")]) == 1
    out, err = capsys.readouterr()
    assert "astro: skipped: no probe for it" in out and "no domain was scored" in err


def test_evaluate_text_says_a_target_its_answers_do_not_meet(tmp_path, monkeypatch, capsys):
    """A data scientist's trial: on 30 answers of new kinds of question, --json said 24 of the 30 accepted were
    hallucinated (0.80, over the target 0.7; fabricated_hormone over it), and the text output said nothing of it."""
    import copy

    from hguard.calibrate import pipeline
    from hguard.cli import main

    def at(n_acc, k, n=30):
        from hguard.calibrate.families import _against_target

        return {"target": 0.7, "n_scored": n, "n_accepted": n_acc, "accepted_hallucinated": k,
                **_against_target(k, n_acc, 0.7), "review_out_of_distribution": 0,
                "families_over_target": ["fabricated_hormone"] if n_acc else []}

    m = {"n": 30, "n_scored": 30, "correct": 6, "hallucinated": 24, "refusals": 0,
         "auroc": {"probe": 0.68, "merged": 0.84, "random_neurons": 0.39}, "auroc_ci95": {},
         "thresholds": {"accept_below": 1.0, "target": 0.7},
         "families": {"summary": {"at_target": at(30, 24)},
                      "families": {"fabricated_hormone": {"at_target": at(10, 10, 10)}}}}
    res = {"domains": {"anatomy": m}, "skipped": {}}
    (tmp_path / "probes").mkdir()
    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: res)
    assert main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].strip() == (
        "at the probe's thresholds (accept below 1.000, target 0.7): 24 of 30 accepted answers were hallucinated (0.800, "
        "95% CI 0.61-0.92), over the target 0.7: not met on these answers; families over it: fabricated_hormone (10 of 10 "
        "accepted hallucinated, 1.00)")
    # pooled within the target, the families over it are still named
    m["families"]["summary"]["at_target"] = at(30, 20)
    m["families"]["summary"]["at_target"]["families_over_target"] = ["fabricated_hormone"]
    main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")])
    assert ("within the target 0.7 pooled (not shown: the interval reaches 0.83), but families over it: fabricated_hormone "
            "(10 of 10") in capsys.readouterr().out
    # pooled within the target, the meta.family kinds of question alone over it (as report.md says): said too
    m["families"]["summary"]["at_target_meta_family"] = {**at(12, 10, 12), "n_families": 3}
    main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")])
    assert capsys.readouterr().out.splitlines()[1].strip().endswith(
        "; on its 3 meta.family kinds of question alone it is not met: 10 of 12 accepted answers were hallucinated "
        "(0.833, 95% CI 0.52-0.98)")
    del m["families"]["summary"]["at_target_meta_family"]
    # within the target by the point estimate, not by its interval (as --json's within_target_shown): said so
    m["families"]["summary"]["at_target"] = {**at(2, 0), "families_over_target": []}
    main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")])
    assert capsys.readouterr().out.splitlines()[1].strip() == (
        "at the probe's thresholds (accept below 1.000, target 0.7): 0 of 2 accepted answers were hallucinated (0.000, "
        "95% CI 0.00-0.84), within the target 0.7 on these 2 accepted answers but not shown (the interval reaches 0.84)")
    # nothing accepted: met only vacuously, and said so
    m["thresholds"]["accept_below"] = 0.2
    m["families"]["summary"]["at_target"] = at(0, 0)
    main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")])
    assert capsys.readouterr().out.splitlines()[1].strip() == (
        "at the probe's thresholds (accept below 0.200, target 0.7): none of the 30 answers was accepted, so the target "
        "is met only vacuously: these answers measure nothing of what the threshold accepts")
    # thresholds that accept nothing (every shipped closed-book probe's accept_below 0): said as such
    m["thresholds"]["accept_below"] = 0.0
    main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")])
    assert capsys.readouterr().out.splitlines()[1].strip() == (
        "the probe's thresholds accept nothing (target 0.7): every answer goes to review or abstain")
    # met: the domain's line alone, as before
    met = copy.deepcopy(m)
    met["thresholds"]["accept_below"] = 0.5
    met["families"]["summary"]["at_target"] = {**at(10, 2), "families_over_target": []}
    res["domains"]["anatomy"] = met
    main(["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")])
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_evaluate_rag_reads_and_checks_your_rows_before_loading_the_model(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"id": "r1", "question": "How long is leave?", "answers": ["20 days"], "domain": "policy"}\n')
    err = _one_clear_line(run("evaluate", "--rag", "--probes", "package:smollm2-135m", "--work", str(tmp_path / "w"),
                              "--data", str(data)), "1 rows have no context", "'r1'", "context")
    assert "reference RAG sets" not in err and not (tmp_path / "w").exists()
    _one_clear_line(run("evaluate", "--rag", "--probes", "package:smollm2-135m", "--work", str(tmp_path / "w"),
                        "--data", str(tmp_path / "none.jsonl")), "none.jsonl")


def test_calibration_warnings_name_a_domain_at_chance_and_each_kind_of_fit_warning_once():
    import warnings

    from hguard.cli import calibration_warnings

    report = {"domains": {
        "astronomy": {"auroc": {"merged": 0.276}, "auroc_ci95": {"merged": [0.06, 0.54]}, "n_scored": 22,
                      "hallucination_rate": 15 / 22},
        "geography": {"auroc": {"merged": 0.90}, "auroc_ci95": {"merged": [0.87, 0.93]}, "n_scored": 494,
                      "hallucination_rate": 0.65},
    }}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for a in (0.54, 0.51, 0.44):
            warnings.warn(f"the probe does not beat chance in cross-validation: best mean AUROC {a}", UserWarning, stacklevel=1)
        warnings.warn("the probe selected no neuron at C=1", UserWarning, stacklevel=1)
    lines = calibration_warnings(report, caught)
    assert len(lines) == 3, lines
    assert "'astronomy'" in lines[0] and "0.06-0.54" in lines[0] and "7 correct, 15 hallucinated" in lines[0]
    assert lines[1].endswith("AUROC 0.54 (and 2 more fit(s) like it)") and lines[2] == "the probe selected no neuron at C=1"


def test_a_probe_not_clear_of_its_random_neuron_control_is_warned_of_in_the_cli_and_the_report():
    """A finance team's trial: probe 0.833 [0.70-0.95] against 0.790 [0.66-0.91] for as many random neurons, and
    neither the CLI nor report.md said the probe was not distinguishable from the control. The paired interval of
    the difference decides where the report holds it; else the probe's AUROC against the control's interval."""
    import json

    from hguard import REFERENCE_PROBES
    from hguard.calibrate.report import markdown, probe_not_above_random
    from hguard.cli import calibration_warnings

    m = {"auroc": {"probe": 0.833, "merged": 0.85, "random_neurons": 0.790},
         "auroc_ci95": {"probe": [0.70, 0.95], "merged": [0.75, 0.93], "random_neurons": [0.66, 0.91]},
         "n_scored": 57, "hallucination_rate": 42 / 57}
    (line,) = calibration_warnings({"domains": {"finance": m}}, [])
    assert line.startswith("domain 'finance': the probe is not distinguishable from as many random neurons on held-out "
                           "facts: probe AUROC 0.833 [0.70-0.95] vs 0.790 [0.66-0.91] for as many random neurons; the "
                           "probe's AUROC lies inside the control's 95% interval")
    # the paired interval, where the report holds it, decides either way
    paired = {**m, "probe_minus_random_ci95": [-0.041, 0.127]}
    assert "the paired bootstrap 95% interval of their difference, -0.041 to +0.127, includes 0" in probe_not_above_random(paired)
    assert probe_not_above_random({**m, "probe_minus_random_ci95": [0.012, 0.09]}) is None
    # clear of the control's interval, and without the figures: nothing to say
    assert probe_not_above_random({**m, "auroc": {**m["auroc"], "probe": 0.93}}) is None
    assert probe_not_above_random({**m, "auroc": {"probe": 0.833}}) is None
    assert calibration_warnings({"domains": {"finance": {**m, "probe_minus_random_ci95": [0.012, 0.09]}}}, []) == []
    # report.md says it under the interval table
    report = json.loads((REFERENCE_PROBES / "report.json").read_text())
    report["domains"] = {"finance": {**report["domains"]["geography"], **paired}}
    md = markdown(report)
    assert ("- **finance: warning**: the probe is not distinguishable from as many random neurons on held-out facts: "
            "probe AUROC 0.833 [0.70-0.95] vs 0.790 [0.66-0.91]") in md


def test_the_report_states_how_many_neurons_the_probe_reads_not_only_its_h_neurons():
    """The same trial's table read "H-neurons (per mille) 0 (0.00)" beside a probe AUROC of 0.833: its 12 neurons
    all lower the risk. The table gives the neurons the probe reads, their share per mille (never a share that is not
    0 shown as 0.00), and how many of them raise the risk."""
    import json

    from hguard import REFERENCE_PROBES
    from hguard.calibrate.report import markdown, neurons_cells

    m = {"n_selected_neurons": 12, "neuron_share_per_mille": 1000 * 12 / 46080, "n_h_neurons": 0,
         "h_neuron_share_per_mille": 0.0}
    assert neurons_cells(m) == "12 (0.26) | 0"
    assert neurons_cells({**m, "neuron_share_per_mille": 1000 * 2 / 900_000}) == "12 (0.0022) | 0"
    assert neurons_cells({"n_h_neurons": 3, "h_neuron_share_per_mille": 0.5}) == "n/a | 3 (0.50)"  # an older report
    report = json.loads((REFERENCE_PROBES / "report.json").read_text())
    report["domains"] = {"finance": {**report["domains"]["geography"], **m}}
    md = markdown(report)
    assert "| probe neurons (per mille) | of them H-neurons (raise the risk) |" in md and "| 12 (0.26) | 0 |" in md
    assert "H-neurons (per mille)" not in md


def test_rag_calibration_warnings_name_a_domain_at_chance_and_held_out_accepts_above_the_target():
    from hguard.cli import rag_calibration_warnings

    # a trial's own RAG domain: merged 0.743 [0.31, 0.97] held out; certified at 0.3, and 3 of 6 accepted wrong
    claims = {"all": {"auroc": {"merged": 0.743}, "auroc_ci95": {"merged": [0.31, 0.97]}, "correct": 7, "hallucinated": 35,
                      "hallucinated_among_accepted": {"n": 6, "k": 3, "rate": 0.5, "ci95": [0.12, 0.88]}},
              "thresholds": {"accept_below": 0.254},
              "targets": {"offtopic_accepted": {"n": 13, "k": 5, "rate": 5 / 13, "ci95": [0.14, 0.68]},
                          "misleading_followed_accepted": {"n": 0, "k": 0, "rate": None, "ci95": None}}}
    fine = {"all": {"auroc": {"merged": 0.9}, "auroc_ci95": {"merged": [0.85, 0.95]}, "correct": 50, "hallucinated": 50,
                    "hallucinated_among_accepted": {"n": 40, "k": 4, "rate": 0.1, "ci95": [0.03, 0.24]}},
            "thresholds": {"accept_below": 0.3}}
    lines = rag_calibration_warnings({"domains": {"claims": claims, "policy": fine}}, target=0.3)
    assert len(lines) == 3 and all("'claims'" in x for x in lines), lines
    assert "5 of 13 answers from an off-topic passage were accepted (38%, 95% interval 14%-68%)" in lines[2]
    assert "0.31-0.97" in lines[0] and "7 correct, 35 hallucinated" in lines[0]
    # a high AUROC on few answers is not said to fail to separate them: it is not shown to (a trial read 1.000 as chance)
    assert "is not shown to separate held-out answers better than chance: the 95% interval of its AUROC 0.743 is " \
           "0.31-0.97, which reaches 0.5 (n=42" in lines[0]
    assert "3 of the 6 accepted answers were hallucinated (50%, 95% interval 12%-88%), above the target 0.3" in lines[1]
    # a clinical team's domain: 0.670 [0.53, 0.81] overall, chance on the answers given with their own passage
    clinical = {"all": {"auroc": {"merged": 0.670}, "auroc_ci95": {"merged": [0.53, 0.81]}, "correct": 20, "hallucinated": 40},
                "conditions": {"supporting": {"auroc": {"merged": 0.50}, "auroc_ci95": {"merged": [0.31, 0.66]},
                                              "correct": 20, "hallucinated": 21}},
                "thresholds": {"accept_below": 0.0}}
    (line,) = rag_calibration_warnings({"domains": {"clinical": clinical, "policy": fine}}, target=0.2)
    assert "'clinical'" in line and "supporting condition" in line and "0.31-0.66" in line and "overall 0.670" in line


def test_evaluate_rag_warns_as_calibrate_rag_does(tmp_path, monkeypatch, capsys):
    """A trial's own HR rows scored 0.52 [0.13, 0.89] merged against 0.875 for grounding alone, and evaluate said
    nothing: calibrate-rag would have warned."""
    import hguard.calibrate.rag as rag
    from hguard.cli import main

    policy = {"all": {"n": 22, "refusals": 4, "correct": 9, "hallucinated": 9, "auroc": {"merged": 0.52, "grounding": 0.875},
                      "auroc_ci95": {"merged": [0.13, 0.89]}, "accepted": {"n": 22, "k": 0, "rate": 0.0},
                      "hallucinated_among_accepted": {"n": 0, "k": 0, "rate": None}},
              "thresholds": {"accept_below": 0.0, "target": 0.1}, "conditions": {}}
    monkeypatch.setattr(rag, "evaluate_rag", lambda *a, **k: {"held_out": "every row given", "domains": {"policy": policy},
                                                              "skipped": {}})
    for json_out in ([], ["--json"]):
        assert main(["evaluate", "--rag", "--probes", str(tmp_path), "--work", str(tmp_path / "w"), *json_out]) == 0
        err = capsys.readouterr().err
        assert "hguard evaluate: warning: domain 'policy': the merged risk is not shown to separate held-out answers " \
               "better than chance: the 95% interval of its AUROC 0.520 is 0.13-0.89" in err, err


def test_evaluate_rag_prints_each_condition_with_its_classes(tmp_path, monkeypatch, capsys):
    """A compliance team's own domain: evaluate --rag printed the overall line alone, while report.md and --json had
    each condition, the off-topic one with hallucinated answers only."""
    import hguard.calibrate.rag as rag
    from hguard.cli import main

    def block(n, right, wrong, declined, merged=None):
        return {"n": n, "refusals": declined, "correct": right, "hallucinated": wrong,
                "auroc": {"merged": merged, "probe": merged, "grounding": merged},
                "auroc_ci95": {"merged": [0.27, 1.0] if merged is not None else None}}

    policy = {"all": block(18, 4, 7, 7, 0.857), "thresholds": {"accept_below": 0.0, "target": 0.2},
              "conditions": {"offtopic": block(6, 0, 4, 2), "supporting": block(12, 4, 3, 5, 0.833),
                             "misleading": block(2, 0, 0, 2)}}
    monkeypatch.setattr(rag, "evaluate_rag", lambda *a, **k: {"held_out": "every row given", "domains": {"policy": policy},
                                                              "skipped": {}})
    assert main(["evaluate", "--rag", "--probes", str(tmp_path), "--work", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("  policy     n=18 (4 right, 7 hallucinated, 7 refusals) (few: under 5 answers of a class) "
                             "AUROC (95% interval) merged=0.857")
    assert out[2:] == [
        "             offtopic: n=6 (0 right, 4 hallucinated, 2 refusals) one class: no AUROC (it needs answers of both "
        "classes)",
        "             supporting: n=12 (4 right, 3 hallucinated, 5 refusals) (few: under 5 answers of a class) "
        "AUROC (95% interval) merged=0.833 "
        "[0.27, 1.00] probe=0.833 grounding=0.833",
        "             misleading: n=2 (0 right, 0 hallucinated, 2 refusals) nothing scored: every answer a refusal"]


def test_calibration_warnings_say_each_kind_of_fit_warning_once_per_domain():
    import warnings

    from hguard.cli import calibration_warnings

    chance = "the probe does not beat chance in cross-validation: best mean AUROC"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for domain, a in (("alpha", 0.54), ("alpha", 0.51), ("beta", 0.44)):
            warnings.warn(f"domain {domain!r}: {chance} {a}", UserWarning, stacklevel=1)
        warnings.warn("domain 'alpha': the probe selected no neuron at C=1", UserWarning, stacklevel=1)
    assert calibration_warnings({"domains": {}}, caught) == [
        f"domain 'alpha': {chance} 0.54 (and 1 more fit(s) like it)", f"domain 'beta': {chance} 0.44",
        "domain 'alpha': the probe selected no neuron at C=1"]


def test_calibrate_summary_names_the_split_the_families_and_the_certificate_and_warns_on_a_losing_merger():
    import copy
    import json

    from hguard import REFERENCE_PROBES
    from hguard.cli import _calibration_summary, calibration_warnings

    report = json.loads((REFERENCE_PROBES / "report.json").read_text())
    geo = report["domains"]["geography"]
    lines = _calibration_summary(geo)
    halluc = round(geo["hallucination_rate"] * geo["n_scored"])
    assert lines[0].startswith(f"held-out facts: n={geo['n']} ({geo['n_scored'] - halluc} right, {halluc} hallucinated")
    s = geo["families"]["summary"]
    # a review: the families' line had no n or classes; it now counts the answers of the families in the mean, as the
    # held-out facts' line counts its own (one helper)
    fams = [e for e in geo["families"]["families"].values() if e.get("auroc", {}).get("probe") is not None
            and min(e["correct"], e["hallucinated"]) >= s["min_class_for_mean"]]
    assert len(fams) == s["n_families_in_mean"] > 0
    n, right, wrong, refused = (sum(e[k] for e in fams) for k in ("n", "correct", "hallucinated", "refusals"))
    assert n == right + wrong + refused and min(right, wrong) > 0
    assert lines[1].startswith(f"held-out families (mean over {s['n_families_in_mean']} of {s['n_families']}, on their "
                               f"n={n} ({right} right, {wrong} hallucinated, {refused} refusals)): "
                               f"probe={s['mean_auroc']['probe']:.3f}")
    assert lines[2].startswith("no accept threshold certified at target 0.2 with confidence 0.9")
    assert calibration_warnings(report, []) == []  # the shipped calibration: nothing to warn of
    bad = copy.deepcopy(report)
    bad["domains"]["geography"]["auroc"].update(probe=0.93, merged=0.80, random_neurons=0.95)
    lines = calibration_warnings(bad, [])
    assert len(lines) == 2 and "held-out facts the merged risk, which routes answers, scores AUROC 0.800 against 0.930" in lines[0]
    assert "probe AUROC 0.930 [0.88-0.93] vs 0.950 [0.81-0.88] for as many random neurons; the probe scores no higher" in lines[1]
    # no family with a figure: the summary gives each family's own reason, not a stock one
    none = copy.deepcopy(geo)
    none["families"]["summary"]["mean_auroc"] = None
    none["families"]["families"] = {"capital": {"no_figure": "without capital the training split has 21 correct and 7 "
                                                              "hallucinated answers; at least 8 of each are needed"},
                                     "currency": {"one_class": "all 12 scored answers are hallucinated"}}
    line = _calibration_summary(none)[1]
    assert line.startswith("held-out families: no figure: capital: without capital the training split has 21 correct")
    assert "currency: all 12 scored answers are hallucinated" in line and line.endswith("(report.md: each family)")
    # a certificate its own held-out families break: said beside it, not only in report.md
    broken = copy.deepcopy(geo)
    broken["at_target"].update(accept_below=0.244, coverage=0.37)
    broken["families"]["summary"]["at_target"] = {
        "target": 0.2, "n_scored": 288, "n_accepted": 59, "accepted_hallucinated": 25, "coverage": 0.205,
        "accepted_hallucination_rate": 25 / 59,
        "within_target": False, "accepted_hallucination_ci95": [0.30, 0.56], "families_over_target": ["fabricated_company"]}
    lines = _calibration_summary(broken)
    assert lines[2].startswith("accept below 0.244 certified at target 0.2")
    assert lines[3] == ("  but on held-out families (each fitted without it) 25 of 59 accepted answers were hallucinated "
                        "(0.424, 95% CI 0.30-0.56), over the target 0.2; families over it: fabricated_company: a new kind "
                        "of question may get that (report.md: each family)")
    from hguard.calibrate.report import _certified

    said = _certified("finance", {**broken, "thresholds_method": "LTT"})
    assert "**On held-out families (each fitted without it) it is not met**: 0.42 (25 of 59; 0.30-0.56) hallucinated among accepted" in said
    assert "(over it: fabricated_company)" in said
    # pooled within the target, a held-out family over it is still named beside the certificate (an evaluation
    # engineer's trial: 'capital' had 24 of 36 accepted answers hallucinated against 0.5, and neither said so)
    broken["families"]["summary"]["at_target"].update(within_target=True, accepted_hallucination_rate=0.2,
                                                      accepted_hallucinated=12)
    broken["families"]["families"]["fabricated_company"] = {"at_target": {
        "n_accepted": 36, "accepted_hallucinated": 24, "accepted_hallucination_rate": 24 / 36}}
    assert len(_calibration_summary(broken)) == 3  # a warning, from the code a guard refitting the thresholds says it by
    assert calibration_warnings({"domains": {"geography": broken}}, []) == [
        "domain 'geography': held-out families over the target 0.2 (each fitted without it): fabricated_company (24 of 36 "
        "accepted hallucinated, 0.67); pooled over the families it is met, but a new kind of question like these may "
        "get what they got (report.md: each family)"]
    said = _certified("finance", {**broken, "thresholds_method": "LTT"})
    assert "not met" not in said and ("**Warning: held-out families over the target 0.2** (each fitted without it): "
                                      "fabricated_company (24 of 36 accepted hallucinated, 0.67); pooled over the "
                                      "families it is met (0.20 (12 of 59; 0.30-0.56) hallucinated among accepted)") in said
    broken["families"]["summary"]["at_target"]["families_over_target"] = []
    broken["at_target"]["review_out_of_distribution"] = 2  # not accepted, and not hidden either
    assert _calibration_summary(broken)[2].endswith("(coverage 37% of held-out answers; 2 more below it went to review "
                                                     "as out of distribution)")
    assert len(_calibration_summary(broken)) == 3 and "Warning" not in _certified("finance", {**broken, "thresholds_method": "LTT"})


def test_calibrate_summary_flags_a_small_class_as_evaluate_does():
    """An operators' finding: `hguard evaluate` marks a set with under 5 answers of a class "(few: ...)", and
    `hguard calibrate`'s held-out summary printed the same counts unflagged."""
    from hguard.cli import _calibration_summary, _classes

    for right, wrong, flagged in ((12, 3, True), (3, 12, True), (12, 5, False), (12, 0, False)):
        m = {"n": right + wrong + 2, "n_scored": right + wrong, "correct": right, "hallucinated": wrong,
             "hallucination_rate": wrong / (right + wrong), "auroc": {"probe": 0.8 if wrong else None}}
        line = _calibration_summary(m)[0]
        evaluated = _classes({"n": m["n"], "correct": right, "hallucinated": wrong, "refusals": 2})
        assert line.startswith(f"held-out facts: {evaluated} AUROC probe="), (line, evaluated)  # one wording, one rule
        assert ("(few: under 5 answers of a class)" in line) is flagged, line
    # a report that gives only the rate (before the counts) is counted from it, as before
    old = {"n": 20, "n_scored": 18, "hallucination_rate": 3 / 18, "auroc": {}}
    assert _calibration_summary(old)[0].startswith("held-out facts: n=20 (15 right, 3 hallucinated, 2 refusals) (few: ")


def test_version_and_a_probe_folder_that_does_not_exist(tmp_path):
    from hguard import __version__

    r = run("--version")
    from hguard._resources import source_digest

    assert r.returncode == 0 and r.stdout.decode().strip() == f"hguard {__version__} (source {source_digest()})"
    data = tmp_path / "q.jsonl"
    data.write_text('{"id": "a", "question": "q?", "answers": ["x"], "domain": "d"}\n')
    _one_clear_line(run("evaluate", "--probes", str(tmp_path / "nope"), "--data", str(data), "--json"),
                    "the probe folder", "does not exist")


def test_calibration_warns_when_the_certified_threshold_accepts_every_answer():
    from hguard.cli import calibration_warnings

    report = {"domains": {"finance": {"auroc": {"merged": 0.7}, "auroc_ci95": {"merged": [0.6, 0.8]}, "n_scored": 57,
                                      "hallucination_rate": 0.74, "at_target": {"target": 0.8, "accept_below": 1.0}},
                          "geo": {"auroc": {"merged": 0.7}, "auroc_ci95": {"merged": [0.6, 0.8]}, "n_scored": 57,
                                  "hallucination_rate": 0.5, "at_target": {"target": 0.2, "accept_below": 0.3}}}}
    (line,) = calibration_warnings(report, [])
    assert line.startswith("domain 'finance': the certified accept threshold is 1.0, which accepts every answer")
    assert ("the hallucination rate of the scores it was fitted on is within the target 0.8, so the guarantee asks "
            "nothing of the risk; on 57 held-out answers it is 74%; set the target") in line
    # a reviewer's trial: the training scores 40% hallucinated (certified at 0.5), the held-out answers 60%, which the
    # warning said was "within the target 0.5"
    report["domains"]["finance"].update(hallucination_rate=0.6, n_scored=20, at_target={"target": 0.5, "accept_below": 1.0},
                                        threshold_scores={"n": 200, "correct": 120, "hallucinated": 80})
    (line,) = calibration_warnings(report, [])
    assert ("the hallucination rate of the scores it was fitted on (40% of 200) is within the target 0.5, so the "
            "guarantee asks nothing of the risk; on 20 held-out answers it is 60%, over the target; set the target") in line


def test_families_over_the_target_name_kinds_of_question_and_count_fallback_fact_groups():
    """A reviewer's trial: 600 fallback fact groups and 3 kinds at target 0.3 made a warning line of 10,987 characters,
    said at every `hguard ask` and `serve` start, which named every fact group and called it a new kind of question."""
    from hguard._policy_fit import NAMED_OVER_TARGET, accept_threshold_warnings

    groups = [(f"fact:{g}", 2, 3) for g in range(300)] + [(f"id:r{g}", 1, 2) for g in range(5)]
    kinds = [(f"kind{k:02d}", 4, 10) for k in range(NAMED_OVER_TARGET + 2)]
    (line,) = accept_threshold_warnings("domain 'x'", accept_below=0.4, target=0.3, families_over=groups + kinds)
    assert len(line) < 1000 and "fact:" not in line and "id:r" not in line
    assert ("kind00 (4 of 10 accepted hallucinated, 0.40)" in line and "kind09" in line and "kind10" not in line
            and "kind09 (4 of 10 accepted hallucinated, 0.40) and 2 more, and 305 fallback fact groups of rows without "
            "meta.family (605 of their 910 accepted answers hallucinated); pooled over the families it is met, but a new "
            "kind of question like these may get" in line)
    (line,) = accept_threshold_warnings("domain 'x'", accept_below=0.4, target=0.3, families_over=groups[:1])
    assert line == ("domain 'x': held-out families over the target 0.3 (each fitted without it): 1 fallback fact group of "
                    "rows without meta.family (2 of their 3 accepted answers hallucinated); pooled over the families it "
                    "is met, but new facts like theirs may get what they got (report.md: each family)")
    (line,) = accept_threshold_warnings("domain 'x'", accept_below=0.4, target=0.3,
                                        families_over=[("a", None, None), ("fact:1", None, None)])
    assert ": a, and 1 fallback fact group of rows without meta.family; pooled" in line


def test_ask_refuses_a_mistyped_domain_before_loading_the_model():
    _one_clear_line(run("ask", "q?", "--domain", "geograhpy"), "--domain 'geograhpy'", "did you mean 'geography'?")


def test_ask_refuses_an_empty_answer_file_before_loading_the_model(tmp_path):
    empty = tmp_path / "answer.txt"
    empty.write_text(" \n\n")
    _one_clear_line(run("ask", "q?", "--answer", str(empty)), f"--answer file {str(empty)!r} is empty",
                    "leave --answer out to have the guard answer")
    _one_clear_line(run("ask", "q?", "--answer", str(tmp_path / "none.txt")), "--answer file", "does not exist")
    _one_clear_line(run("ask", "q?", "--served"), "--served says how an --answer is used", "pass --answer FILE")


def test_a_model_folder_without_a_tokenizer_is_one_line_naming_it(tmp_path):
    from hguard.testing import tiny_model

    tiny_model("gpt2").model.save_pretrained(tmp_path)
    _one_clear_line(run("ask", "what is it ?", "--model", str(tmp_path)), repr(str(tmp_path)), "has no tokenizer files",
                    "copy the tokenizer")


def test_a_truncated_weight_file_is_one_line_naming_it(tmp_path):
    from hguard.testing import tiny_model

    lm = tiny_model("llama")
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    _one_clear_line(run("ask", "what is it ?", "--model", str(tmp_path)), repr(str(weights)), "damaged or incomplete",
                    "copy it again")


def test_a_recalibration_into_the_previous_folder_keeps_the_previous_calibration(tmp_path):
    # a clinical team's `--out my-probes --previous my-probes` replaced the old report with no copy left
    from hguard.cli import _keep_previous

    out = tmp_path / "my-probes"
    out.mkdir()
    for name, text in (("report.json", '{"domains": {}}'), ("report.md", "# old"), ("medical.json", "{}"),
                       ("clinical.rag.json", "{}"), ("notes.txt", "mine")):
        (out / name).write_text(text)
    kept = _keep_previous(out)
    assert kept.parent == out and kept.name.startswith("previous-")
    assert sorted(p.name for p in kept.iterdir()) == ["clinical.rag.json", "medical.json", "report.json", "report.md"]
    assert (kept / "report.md").read_text() == "# old"


@pytest.mark.parametrize(("argv", "said"), [
    (["calibrate-rag", "--out", "o", "--batch-size", "0"], "argument --batch-size: must be a whole number of at least 1, got '0'"),
    (["calibrate-rag", "--out", "o", "--target", "10"], "argument --target: must be a number strictly between 0 and 1 (e.g. 0.1), got '10'"),
    (["calibrate", "--out", "o", "--confidence", "1"], "argument --confidence: must be a number strictly between 0 and 1"),
    (["calibrate", "--out", "o", "--test-fraction", "x"], "argument --test-fraction: must be a number strictly between 0 and 1"),
    (["evaluate", "--probes", "p", "--limit", "-3"], "argument --limit: must be a whole number of at least 1, got '-3'"),
])
def test_calibration_flags_out_of_range_are_named_before_anything_runs(tmp_path, capsys, argv, said):
    """--batch-size 0 failed as `unexpected error: ValueError: range() arg 3 must not be zero`, and --target 10 only
    after every answer was collected, naming an internal function."""
    from hguard.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


def test_the_calibration_functions_check_their_options_before_the_model_loads(tmp_path):
    from hguard.calibrate.pipeline import calibrate
    from hguard.calibrate.rag import calibrate_rag
    from hguard.errors import InputError

    for kwargs, said in (({"target": 10}, "target must be a number strictly between 0 and 1, got 10"),
                         ({"confidence": 1.0}, "confidence must be a number strictly between 0 and 1"),
                         ({"batch_size": 0}, "batch_size must be a whole number of at least 1, got 0")):
        with pytest.raises(InputError, match=said):  # model="nope" would fail to load: the options fail first
            calibrate_rag([], tmp_path / "r", model="nope", **kwargs)
        with pytest.raises(InputError, match=said):
            calibrate([tmp_path / "none.jsonl"], tmp_path / "c", model="nope", **kwargs)
    probe_file = tmp_path / "contracts.rag.json"  # the probe file's path given as the folder ("File exists" before)
    probe_file.write_text("{}")
    with pytest.raises(InputError, match="is a file; pass the folder the probe files go to"):
        calibrate_rag([], probe_file, model="nope")


def test_a_recalibration_named_with_a_home_path_keeps_the_previous_one_there(tmp_path, monkeypatch):
    """A review: `--out=~/probes --previous=~/probes` (the shell leaves '~' after '=') calibrated into the home folder
    but looked for the previous calibration, kept it aside and wrote changes.md under a folder named '~'."""
    import json

    from hguard import REFERENCE_PROBES
    from hguard._resources import expand_home
    from hguard.calibrate import pipeline
    from hguard.cli import main

    report = json.loads((REFERENCE_PROBES / "report.json").read_text())

    def calibrated(data, out_dir, **kwargs):  # writes its report where the real calibration writes it
        out = expand_home(out_dir, "the output folder")
        (out / "report.json").write_text(json.dumps(report))
        return report

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home" / "probes").mkdir(parents=True)
    (tmp_path / "home" / "probes" / "report.json").write_text(json.dumps(report))
    monkeypatch.setattr(pipeline, "calibrate", calibrated)
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "question": "q?", "answers": ["x"], "domain": "geo"}\n')
    main(["calibrate", "--data", str(data), "--out=~/probes", "--previous=~/probes"])
    home = sorted(p.name for p in (tmp_path / "home" / "probes").iterdir())
    assert "changes.md" in home and any(n.startswith("previous-") for n in home), home
    assert not (tmp_path / "~").exists()


def test_engine_ray_without_ray_is_said_before_the_model_loads(tmp_path):
    """A README walk-through: `--engine ray` without Ray installed loaded the model, then said to install
    hguard[ray]. Said first now: a model path that does not exist is never reached."""
    fake = tmp_path / "site"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray (hidden by the test)')\n")
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "1", "question": "What is the capital of France?", "answers": ["Paris"], "domain": "geo"}\n')
    r = run("calibrate", "--engine", "ray", "--data", str(data), "--out", str(tmp_path / "out"), "--model",
            str(tmp_path / "no-such-model"), env={"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])})
    _one_clear_line(r, "--engine ray needs Ray Data", "hguard[ray]")


def test_every_command_taking_policy_reaches_the_packaged_default_as_default():
    """A bank trial: `review list` defaulted to the packaged policy, `monitor` required --policy, `audit verify` LOG or
    --policy, the README named no path for it, and `--policy package:default` was refused with "has suffix '(none)'"."""
    from hguard import DEFAULT_POLICY
    from hguard.cli import build_parser
    from hguard.cli.audit import build_parser as audit_parser
    from hguard.cli.monitor import build_parser as monitor_parser
    from hguard.cli.review import build_parser as review_parser

    parsed = [build_parser().parse_args(["ask", "q?", "--policy", "default"]),
              build_parser().parse_args(["demo", "--policy", "default"]),
              monitor_parser().parse_args(["--policy", "default"]),
              review_parser().parse_args(["list", "--policy", "default"]),
              *(audit_parser().parse_args([cmd, "--policy", "default"]) for cmd in ("verify", "show", "rotate"))]
    assert [a.policy for a in parsed] == [str(DEFAULT_POLICY)] * len(parsed)
    assert monitor_parser().parse_args(["--policy", "my.toml"]).policy == "my.toml"  # any other value is a path
    _one_clear_line(run("audit", "verify", "--policy", "package:default"), "has suffix '(none)'", "--policy default")


def test_review_list_of_a_fresh_default_queue_names_the_demos_queue(tmp_path):
    """After `hguard demo` with a fresh HOME, `review list` said nothing was routed under the default policy and
    suggested `hguard demo`, whose queue lies under $HGUARD_STATE_DIR/demo: it now gives the command that lists it."""
    from hguard.demo import review_command

    state = tmp_path / "state"
    env = {"HOME": str(tmp_path / "home"), "HGUARD_STATE_DIR": str(state)}
    (tmp_path / "home").mkdir()
    err = _one_clear_line(run("review", "list", env=env), "nothing has been routed to review under the default policy")
    assert f"list it with `{review_command(state / 'demo')}`" in err
    assert str(state / "demo" / "review.sqlite3") in err and "`hguard ask` or `hguard demo`" not in err


def test_ask_says_unscored_and_no_domain_in_words_not_python_none():
    """A bank trial: `hguard ask` printed Python's `risk=None domain=None` for a question no domain took, where
    `hguard review list` says "unscored"."""
    from types import SimpleNamespace

    from hguard.cli import status_line

    unscored = SimpleNamespace(route="review", risk=None, domain=None, audit_id="a1")
    assert status_line(unscored) == "[route=review risk=unscored domain=none audit=a1]"
    scored = SimpleNamespace(route="accept", risk=0.08674, domain="chemistry", audit_id="a2")
    assert status_line(scored) == "[route=accept risk=0.087 domain=chemistry audit=a2]"


def test_evaluate_warns_of_a_merger_losing_to_the_probe_as_calibrate_does(tmp_path, monkeypatch, capsys):
    """A clinical team's trial: the merged risk scored 0.771 against 0.889 for the probe alone on its evaluation rows;
    calibrate warned of the same loss on held-out facts, evaluate (text and --json) said nothing."""
    import json

    from hguard.calibrate import pipeline
    from hguard.cli import MERGER_LOSS_WARNING, main

    m = {"n": 38, "n_scored": 38, "correct": 11, "hallucinated": 27, "refusals": 0,
         "auroc": {"probe": 0.889, "merged": 0.771, "random_neurons": 0.882}, "auroc_ci95": {}}
    res = {"domains": {"pharmacology": m}, "skipped": {}}
    (tmp_path / "probes").mkdir()
    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: res)
    args = ["evaluate", "--probes", str(tmp_path / "probes"), "--data", str(tmp_path / "d.jsonl")]
    for extra in ([], ["--json"]):
        assert main(args + extra) == 0
        out, err = capsys.readouterr()
        assert err.splitlines() == [
            "hguard evaluate: warning: domain 'pharmacology': on these rows the merged risk, which routes answers, scores "
            "AUROC 0.771 against 0.889 for the probe alone: the confidence signals it adds do not carry over there (or "
            "the merger overfits); add labelled answers and kinds of question (n=38: 11 right, 27 hallucinated, 0 "
            "refusals)"]
        if extra:
            assert json.loads(out) == res  # stdout stays the JSON alone
    # within the allowance (the same constant calibrate warns by): no warning
    m["auroc"]["merged"] = m["auroc"]["probe"] - MERGER_LOSS_WARNING + 0.01
    assert main(args) == 0 and capsys.readouterr().err == ""
