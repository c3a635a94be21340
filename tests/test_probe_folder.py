"""The probe folder: regular files only, no links out of it, one file per domain, and one bad probe
disables its own domain (review with the reason), not the guard."""

from __future__ import annotations

import os
import shutil

import pytest

from hguard.guard import Guard
from hguard.policy import Policy

Q = "who is the author of the book ?"


def _guard(lm, probes, tmp_path):
    pol = Policy.model_validate(
        {
            "version": 1,
            "probes": [str(p) for p in probes] if isinstance(probes, list) else str(probes),
            "audit": {"path": str(tmp_path / "audit.jsonl")},
            "review": {"queue": str(tmp_path / "queue.sqlite3")},
            "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
            "domains": {"alpha": {"accept_below": 1.0, "abstain_above": 1.0}, "beta": {"accept_below": 1.0, "abstain_above": 1.0}},
        }
    )
    return Guard.from_policy(pol, lm=lm)


@pytest.fixture
def folder(tiny_calibrated, tmp_path):
    lm, root = tiny_calibrated
    probes = tmp_path / "probes"
    probes.mkdir()
    for name in ("alpha.json", "beta.json"):
        shutil.copy(root / "probes" / name, probes / name)
    return lm, probes


def test_control_both_domains_load(folder, tmp_path):
    lm, probes = folder
    g = _guard(lm, probes, tmp_path)
    assert set(g.probes) == {"alpha", "beta"} and not g.probe_errors
    assert g.invoke(Q, domain="alpha").route == "accept"


def test_an_overflowing_number_disables_its_domain_only(folder, tmp_path):
    lm, probes = folder
    text = (probes / "beta.json").read_text()
    (probes / "beta.json").write_text(text.replace('"intercept": ', '"intercept": 1e999, "x": ', 1))
    g = _guard(lm, probes, tmp_path)
    assert "alpha" in g.probes and "beta" not in g.probes
    assert "1e999" in g.probe_errors["beta"]
    r = g.invoke(Q, domain="beta")
    assert r.route == "review" and any("1e999" in x for x in r.reasons), r.reasons
    assert g.invoke(Q, domain="alpha").route == "accept"


def test_a_fifo_named_like_a_probe_does_not_hang_and_is_refused(folder, tmp_path):
    lm, probes = folder
    os.mkfifo(probes / "gamma.json")
    g = _guard(lm, probes, tmp_path)  # would block forever reading the FIFO
    assert "not a regular file" in g.probe_errors["gamma"]
    assert set(g.probes) == {"alpha", "beta"}


def test_links_out_of_the_folder_are_not_followed(folder, tmp_path):
    lm, probes = folder
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (probes / "beta.json").rename(outside / "beta.json")
    (probes / "beta.json").symlink_to(outside / "beta.json")
    g = _guard(lm, probes, tmp_path)
    assert "beta" not in g.probes and "outside the probe folder" in g.probe_errors["beta"]
    r = g.invoke(Q, domain="beta")
    assert r.route == "review" and any("outside the probe folder" in x for x in r.reasons)


def test_two_files_claiming_one_domain_disable_it_naming_both(folder, tmp_path):
    lm, probes = folder
    shutil.copy(probes / "alpha.json", probes / "alpha-copy.json")
    g = _guard(lm, probes, tmp_path)
    assert "alpha" not in g.probes
    msg = g.probe_errors["alpha"]
    assert "alpha.json" in msg and "alpha-copy.json" in msg and "remove all but one" in msg
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any("alpha-copy.json" in x for x in r.reasons)
    # the policy sets alpha's thresholds by hand: the reasons say why they do not apply, not that there are none
    assert not any("no manual accept_below" in x for x in r.reasons), r.reasons
    assert any("manual accept_below = 1 and abstain_above = 1 can only be set against a probe's risk score, and no usable probe" in x
               for x in r.reasons), r.reasons
    assert g.invoke(Q, domain="beta").route == "accept"


def test_broken_probes_are_named_in_the_reason_when_no_domain_can_be_chosen(folder, tmp_path):
    lm, probes = folder
    for name in ("alpha.json", "beta.json"):  # both broken: nothing is left to choose from
        text = (probes / name).read_text()
        (probes / name).write_text(text.replace('"intercept": ', '"intercept": 1e999, "x": ', 1))
    g = _guard(lm, probes, tmp_path)
    r = g.invoke(Q)
    assert r.route == "review" and r.domain is None
    assert any("no calibrated domain is loaded" in x and "probe problems: alpha:" in x and "1e999" in x
               for x in r.reasons), r.reasons


def test_a_calibrated_domain_the_policy_does_not_list_is_named_as_unused(folder, tmp_path):
    lm, probes = folder
    pol = Policy.model_validate({
        "version": 1, "probes": str(probes), "audit": {"path": str(tmp_path / "audit.jsonl")},
        "review": {"queue": str(tmp_path / "queue.sqlite3")},
        "generation": {"max_new_tokens": 4, "system_prompt": "answer"},
        "domains": {"beta": {"accept_below": 1.0, "abstain_above": 1.0}},
    })
    g = Guard.from_policy(pol, lm=lm)
    assert "policy does not list" in g.probe_errors["alpha"] and "[domains.alpha]" in g.probe_errors["alpha"]
    assert "beta" not in g.probe_errors and "misspelt" not in g.probe_errors["alpha"]
    # a policy table with the domain's name misspelt is pointed at
    typo = Policy.model_validate({**pol.model_dump(mode="json"), "domains": {
        "beta": {"accept_below": 1.0, "abstain_above": 1.0}, "alpah": {"description": "alpha questions"}}})
    with pytest.warns(UserWarning, match=r"\[domains.alpah\] may be it, misspelt"):
        Guard.from_policy(typo, lm=lm)


def test_a_policy_may_name_several_probe_folders_and_a_domain_two_of_them_calibrate_is_disabled(folder, tmp_path):
    lm, probes = folder
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.move(probes / "beta.json", mine / "beta.json")  # your own domain beside the others
    g = _guard(lm, [probes, mine], tmp_path)
    assert set(g.probes) == {"alpha", "beta"} and not g.probe_errors
    assert g.policy.probe_folders == [probes, mine]
    shutil.copy(probes / "alpha.json", mine / "alpha.json")  # claimed twice: which one was meant is not guessed
    g = _guard(lm, [str(probes), str(mine)], tmp_path)
    assert set(g.probes) == {"beta"}
    assert str(probes) in g.probe_errors["alpha"] and str(mine) in g.probe_errors["alpha"]
    r = g.invoke(Q, domain="alpha")
    assert r.route == "review" and any("all calibrate domain 'alpha'" in x for x in r.reasons), r.reasons
    assert not any("no manual accept_below" in x for x in r.reasons), r.reasons
    with pytest.raises(Exception, match="empty list"):
        _guard(lm, [], tmp_path)


def test_a_refused_rag_probe_file_is_said_under_its_domain_once(folder, tmp_path):
    lm, probes = folder
    (probes / "alpha.json").unlink()
    (probes / "alpha.rag.json").write_text("{not a probe")  # the only file of alpha, unreadable
    with pytest.warns(UserWarning) as caught:
        g = _guard(lm, probes, tmp_path)
    said = [str(w.message) for w in caught if "is not scored" in str(w.message)]
    assert any(m.startswith("domain 'alpha' is not scored: its probe file was refused (alpha.rag: ") for m in said)
    assert not any("'alpha.rag'" in m for m in said) and "no probe folder" not in " ".join(said)
    assert g.invoke(Q, domain="alpha").route == "review"


def test_a_probe_file_given_for_the_probe_folder_is_said_to_be_a_file_naming_its_folder(tmp_path, capsys):
    """A bad-input trial: `hguard evaluate --probes probes/geo.json` and a policy's `probes = "probes/geo.json"` (a probe
    file for its folder) were refused as "the probe folder ... does not exist", a path that is there. Each says it is a
    file and names the folder it is in."""
    from hguard.cli import main

    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "geo.json").write_text("{}")
    (tmp_path / "policy.toml").write_text('version = 1\nprobes = "probes/geo.json"\n[audit]\npath = "audit.jsonl"\n'
                                          '[review]\nqueue = "queue.sqlite3"\n[domains.geo]\n')
    said = f"is a file, not a folder (a probe file? its folder is {str(tmp_path / 'probes')!r})"
    assert main(["evaluate", "--probes", str(tmp_path / "probes" / "geo.json")]) == 2
    assert capsys.readouterr().err == (f"hguard evaluate: error: the probe folder {str(tmp_path / 'probes' / 'geo.json')!r} "
                                       f"{said}; pass the folder `hguard calibrate --out` wrote\n")
    assert main(["ask", "q?", "--policy", str(tmp_path / "policy.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the probe folder {str(tmp_path / 'probes' / 'geo.json')!r} (probes in " in err
    assert said in err and "does not exist" not in err and not (tmp_path / "audit.jsonl").exists()
