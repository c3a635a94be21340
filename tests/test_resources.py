"""Package data and the default policy as a user copies it: `package:NAME` probes, policy_copy, and a
probe folder that does not exist."""

from __future__ import annotations

import shutil

import pytest

from hguard import DEFAULT_POLICY, REFERENCE_PROBES, policy_copy
from hguard.errors import InputError, PolicyError
from hguard.policy import load_policy


def test_default_policy_names_the_packaged_probes(tmp_path):
    pol = load_policy(DEFAULT_POLICY)
    assert pol.probes == REFERENCE_PROBES and (REFERENCE_PROBES / "geography.json").is_file()
    copied = tmp_path / "anywhere.toml"
    shutil.copy(DEFAULT_POLICY, copied)  # a plain copy still finds the probes
    assert load_policy(copied).probes == REFERENCE_PROBES


def test_unknown_packaged_probes_are_a_policy_error(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(DEFAULT_POLICY.read_text().replace("package:smollm2-135m", "package:nope"))
    with pytest.raises(PolicyError, match="package:nope.*shipped: smollm2-135m"):
        load_policy(p)


def test_policy_copy_keeps_the_toml_moves_log_queue_and_monitor_state_and_never_overwrites(tmp_path, monkeypatch):
    (tmp_path / "log.jsonl").write_text("kept")
    with pytest.raises(InputError, match="log.jsonl is a file, not a folder; pass the folder"):
        policy_copy(tmp_path / "log.jsonl")
    assert (tmp_path / "log.jsonl").read_text() == "kept"
    monkeypatch.chdir(tmp_path)
    out = policy_copy("mine")  # a relative folder is taken from the current directory
    assert out == tmp_path / "mine" / "policy.toml"
    text = out.read_text()
    assert text.startswith("# The default hguard policy") and 'probes = "package:smollm2-135m"' in text
    pol = load_policy(out)
    assert pol.audit.path == tmp_path / "mine" / "audit.jsonl"
    assert pol.review.queue == tmp_path / "mine" / "review.sqlite3"
    assert pol.monitor.state == tmp_path / "mine" / "monitor-state.json"  # two copies never share a state
    # written relative to the file, as its header says: a moved folder keeps its own log, queue and state
    (tmp_path / "mine").rename(tmp_path / "moved")
    assert load_policy(tmp_path / "moved" / "policy.toml").audit.path == tmp_path / "moved" / "audit.jsonl"
    (tmp_path / "moved").rename(tmp_path / "mine")
    default = load_policy(DEFAULT_POLICY)  # the default keeps its state with its log, never in the package
    assert default.monitor.state.parent == default.audit.path.parent
    assert pol.domains.keys() == load_policy(DEFAULT_POLICY).domains.keys()
    out.write_text(text + "\n# my edit\n")
    with pytest.raises(InputError, match="already exists"):
        policy_copy("mine")
    assert out.read_text().endswith("# my edit\n")
    again = policy_copy("mine", overwrite=True).read_text()
    # the same file but for its own spot-check seed: the example's is public, each copy draws one
    seeds = [load_policy(out).monitor.seed, pol.monitor.seed, load_policy(DEFAULT_POLICY).monitor.seed]
    assert len(set(seeds)) == 3 and len(seeds[0]) == 32 and seeds[2] == "hguard-example-spot-checks"
    assert [ln for ln in again.splitlines() if not ln.startswith("seed =")] == \
        [ln for ln in text.splitlines() if not ln.startswith("seed =")]


def test_policy_copy_of_a_policy_of_ones_own(tmp_path):
    """policy_copy crashed with a raw TOMLDecodeError on a YAML policy load_policy reads, and on a TOML one whose
    table header carries a comment (it wrote a second [audit] table); a relative probe folder named a folder beside
    the copy."""
    from hguard.errors import PolicyError

    mine = tmp_path / "src"
    (mine / "probes-hr").mkdir(parents=True)
    (mine / "policy.toml").write_text(
        'version = 1\nprobes = ["package:smollm2-135m", "probes-hr"]\n\n'
        '[audit]  # where decisions go\npath = "old.jsonl"\nanchor = "/elsewhere/old.anchor"\n\n'
        '[domains.geography]\naccept_below = 0.1\n\n[monitor]\nseed = "tenant-a-secret"\n')
    copied = load_policy(policy_copy(tmp_path / "a", source=mine / "policy.toml"))
    # a copy is another deployment: its own seed, not the source's (a tenant template gave every tenant one seed)
    again = load_policy(policy_copy(tmp_path / "a2", source=mine / "policy.toml"))
    assert len({copied.monitor.seed, again.monitor.seed, "tenant-a-secret"}) == 3
    assert copied.audit.path == tmp_path / "a" / "audit.jsonl" and copied.domains["geography"].accept_below == 0.1
    assert copied.audit.anchor == tmp_path / "a" / "audit.anchor"  # the source log's anchor made the copy's unwritable
    assert copied.probe_folders[1] == mine / "probes-hr"  # the source's folder, not one beside the copy
    (tmp_path / "sibling").mkdir()
    (mine / "up.toml").write_text('version = 1\nprobes = ["package:smollm2-135m", "../sibling"]\n')
    up = policy_copy(tmp_path / "up", source=mine / "up.toml")
    assert f'"{tmp_path / "sibling"}"' in up.read_text()  # named plainly, not ".../src/../sibling"
    assert "[audit]  # where decisions go" in (tmp_path / "a" / "policy.toml").read_text()
    (mine / "policy.yaml").write_text("version: 1\nprobes: package:smollm2-135m\nmodel: models/m.gguf\ndomains:\n"
                                      "  geography:\n    accept_below: 0.1\n")
    (mine / "models").mkdir()
    (mine / "models" / "m.gguf").write_bytes(b"GGUF")
    from_yaml = load_policy(policy_copy(tmp_path / "b", source=mine / "policy.yaml"))
    assert from_yaml.domains["geography"].accept_below == 0.1 and from_yaml.review.queue == tmp_path / "b" / "review.sqlite3"
    assert from_yaml.model == str(mine / "models" / "m.gguf")  # the source's model file (the copy looked beside itself)
    # no seed in the source: hguard's own default is as public as the example's, so the copy draws one
    from hguard._resources import PUBLIC_SEEDS, public_seed_warning

    assert from_yaml.monitor.seed not in PUBLIC_SEEDS and len(from_yaml.monitor.seed) == 32
    assert "hguard's own, used when [monitor] seed is unset" in public_seed_warning(load_policy(mine / "policy.yaml"))
    (mine / "null.yaml").write_text("version: 1\naudit:\n  path: a.jsonl\n  anchor: null\n")
    if load_policy(mine / "null.yaml"):  # a policy hguard reads, which TOML cannot write
        with pytest.raises(PolicyError, match="audit.anchor is null, which TOML cannot write"):
            policy_copy(tmp_path / "c", source=mine / "null.yaml")
    (mine / "bad.toml").write_text("version = 1\nacept = 1\n")
    with pytest.raises(PolicyError, match="acept"):
        policy_copy(tmp_path / "d", source=mine / "bad.toml")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_a_missing_probe_folder_stops_the_guard_with_the_reason(tiny_calibrated, tmp_path):
    from hguard.guard import Guard

    lm, _ = tiny_calibrated
    p = tmp_path / "p.toml"
    p.write_text('version = 1\nprobes = "no-such-folder"\n[domains.alpha]\n')
    with pytest.raises(PolicyError, match="no-such-folder.*does not exist.*package:smollm2-135m"):
        Guard.from_policy(p, lm=lm)


def test_a_hand_copied_policy_that_keeps_the_public_seed_is_warned_about(tmp_path, capsys):
    """The README says to copy the default policy to start your own; a copy made by hand keeps the public spot-check
    seed (policy_copy draws a new one), and neither the guard nor the monitor said so."""
    from hguard._resources import EXAMPLE_SEED, public_seed_warning
    from hguard.cli import main

    assert public_seed_warning(load_policy(DEFAULT_POLICY)) is None  # the demo's own policy: public by design
    own = policy_copy(tmp_path / "mine")
    assert public_seed_warning(load_policy(own)) is None
    by_hand = tmp_path / "hand" / "policy.toml"
    by_hand.parent.mkdir()
    shutil.copy(DEFAULT_POLICY, by_hand)
    said = public_seed_warning(load_policy(by_hand))
    assert said is not None and EXAMPLE_SEED in said and "set [monitor] seed to a secret of your own" in said
    main(["monitor", "--policy", str(by_hand), "--dry-run"])
    assert "hguard monitor: warning: the policy" in capsys.readouterr().err
    assert not (tmp_path / "hand" / "monitor-state.json").exists()


def test_the_default_policys_closed_book_domains_do_not_name_their_domain_when_they_abstain():
    """The domain is chosen by similarity, and a question of none ("What is 17 times 23?") can land in one: its
    abstain message called it "that chemistry question"."""
    policy = load_policy(DEFAULT_POLICY)
    for name in ("geography", "chemistry", "literature"):
        message = policy.domains[name].abstain_message or policy.abstain_message
        assert name not in message and message == policy.abstain_message, (name, message)


def test_without_a_home_folder_only_what_needs_one_fails_and_it_says_how_to_go_on(tmp_path, monkeypatch):
    """A trial in a container run with --user: HOME unset and no passwd entry, and `hguard audit verify --policy`
    died in a traceback (RuntimeError: Could not determine home directory) from a path the policy did not use."""
    import pwd

    from hguard._resources import state_dir
    from hguard.errors import CacheError
    from hguard.models import cache_dir
    from hguard.monitor import policy_hash

    def no_entry(uid):
        raise KeyError(uid)

    for var in ("HOME", "HGUARD_STATE_DIR", "HGUARD_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    own = tmp_path / "policy.toml"  # the default policy, its logs placed without '~'
    shutil.copy(DEFAULT_POLICY, own)  # its files named relative: beside the copy
    assert len(policy_hash(load_policy(own))) >= 16  # no '~' in it: no home folder needed
    with pytest.raises(PolicyError, match=r"the packaged default policy\) keeps its audit log.*no home folder .*set "
                                          r"HGUARD_STATE_DIR \(or HOME\)"):
        load_policy(DEFAULT_POLICY)
    with pytest.raises(InputError, match=r"no home folder .*set HGUARD_STATE_DIR \(or HOME\)"):
        state_dir()
    with pytest.raises(CacheError, match=r"no home folder .*set HGUARD_CACHE_DIR \(or HOME\)"):
        cache_dir()
    with pytest.raises(InputError, match=r"policy file '~/p.toml' starts with '~'.*set HOME, or name the path"):
        load_policy("~/p.toml")
    from hguard import policy_copy
    from hguard._resources import refuse_own_file

    with pytest.raises(InputError, match=r"the policy copy's folder '~/p' starts with '~'.*set HOME"):
        policy_copy("~/p")
    with pytest.raises(InputError, match=r"--csv '~/x.csv' starts with '~'.*set HOME"):  # an output file's option
        refuse_own_file("~/x.csv", {"audit log": tmp_path / "audit.jsonl"}, "--csv")
    monkeypatch.setenv("HGUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HGUARD_STATE_DIR", str(tmp_path / "state"))
    assert cache_dir() == tmp_path / "cache" and state_dir() == tmp_path / "state"


def test_the_default_policys_own_files_follow_hguard_state_dir_as_the_demos_do(tmp_path, monkeypatch):
    """An operators' finding: with HGUARD_STATE_DIR set, the demo wrote under it, and `--policy default` (the guard,
    `hguard review`, `hguard monitor`) still kept its audit log, review queue and monitor state in
    ~/.local/state/hguard, where a user who set the variable did not look."""
    from hguard._resources import policy_arg, state_dir
    from hguard.monitor import policy_hash

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HGUARD_STATE_DIR", raising=False)
    unset = load_policy(policy_arg("default"))
    home_state = tmp_path / "home" / ".local" / "state" / "hguard"
    assert (unset.audit.path, unset.review.queue, unset.monitor.state) == (
        home_state / "audit.jsonl", home_state / "review.sqlite3", home_state / "monitor-state.json")
    monkeypatch.setenv("HGUARD_STATE_DIR", str(tmp_path / "state"))
    pol = load_policy(policy_arg("default"))
    assert (pol.audit.path, pol.review.queue, pol.monitor.state) == (
        state_dir() / "audit.jsonl", state_dir() / "review.sqlite3", state_dir() / "monitor-state.json")
    assert state_dir() == tmp_path / "state" and pol.probes == REFERENCE_PROBES  # the probes stay the packaged ones
    assert policy_hash(pol) == policy_hash(unset)  # one policy, wherever the variable puts its files
    copied = tmp_path / "mine" / "policy.toml"  # a copy by hand keeps them beside it, as a policy_copy does
    copied.parent.mkdir()
    shutil.copy(DEFAULT_POLICY, copied)
    assert load_policy(copied).audit.path == tmp_path / "mine" / "audit.jsonl"


def test_a_policy_built_in_code_that_keeps_a_public_seed_is_warned_about_as_a_file_is(tmp_path):
    """A review: a policy file keeping a public spot-check seed (hguard's own when none is set, or the default
    policy's) was warned about at guard start, and the same policy built in code (Policy.from_mapping) was not,
    though whoever knows the seed knows which answers its deployment spot-checks just the same."""
    from hguard._resources import DEFAULT_SEED, EXAMPLE_SEED, public_seed_warning
    from hguard.guard import Guard
    from hguard.policy import Policy
    from hguard.testing import tiny_model

    (tmp_path / "policy.toml").write_text("version = 1\n[domains.alpha]\n")  # spot-checked at the default rate
    assert "hguard's own, used when [monitor] seed is unset" in public_seed_warning(load_policy(tmp_path / "policy.toml"))
    files = {"audit": {"path": "audit.jsonl"}, "review": {"queue": "queue.sqlite3"}, "domains": {"alpha": {}}}
    said = public_seed_warning(Policy.from_mapping({"version": 1, **files}, base_dir=tmp_path))
    assert said is not None and said.startswith(
        f"the policy built in code keeps hguard's own, used when monitor.seed is unset, public spot-check seed "
        f"({DEFAULT_SEED!r}): ") and 'set "monitor": {"seed": SECRET} in its data to a secret of your own' in said, said
    said = public_seed_warning(Policy.from_mapping({"version": 1, "monitor": {"seed": EXAMPLE_SEED},
                                                    "domains": {"alpha": {}}}))
    assert said is not None and f"keeps the default policy's public spot-check seed ({EXAMPLE_SEED!r})" in said, said
    assert public_seed_warning(Policy.from_mapping({"version": 1, "monitor": {"seed": "a secret of ours"},
                                                    "domains": {"alpha": {}}})) is None
    # the default policy changed in code is still the default policy (its file kept): public by design
    assert public_seed_warning(load_policy(DEFAULT_POLICY).model_copy(update={"abstain_message": "no."})) is None
    # and a guard says it at start, as for a file
    with pytest.warns(UserWarning, match=r"the policy built in code keeps hguard's own, used when monitor.seed is unset"):
        Guard.from_policy(Policy.from_mapping({"version": 1, **files}, base_dir=tmp_path), lm=tiny_model("llama"))


def test_a_public_seed_that_picks_no_spot_check_is_not_warned_about(tmp_path):
    """A review: a policy whose every domain sets spot_check_rate = 0 (a test policy of one's own, as the README's
    testing section builds it; the adapters' own) was warned that whoever knows its public seed knows which accepted
    answers will be spot-checked: none are, by the seed. The seed is read only by that selection; a minimum per day
    takes a day's first accepted answers whatever the seed. A policy with one domain spot-checked is warned about."""
    import warnings

    from hguard._resources import public_seed_warning
    from hguard.guard import Guard
    from hguard.policy import Policy
    from hguard.testing import tiny_model

    unchecked = {"alpha": {"spot_check_rate": 0.0}, "beta": {"spot_check_rate": 0, "spot_check_min_per_day": 5}}
    files = {"audit": {"path": "audit.jsonl"}, "review": {"queue": "queue.sqlite3"}, "monitor": {"state": "m.json"}}
    none = Policy.from_mapping({"version": 1, **files, "domains": unchecked}, base_dir=tmp_path)
    assert public_seed_warning(none) is None
    assert public_seed_warning(Policy.model_validate(none.model_dump(mode="json"))) is None
    assert public_seed_warning(Policy.from_mapping({"version": 1, **files}, base_dir=tmp_path)) is None  # no domain
    (tmp_path / "policy.toml").write_text("version = 1\n[domains.alpha]\nspot_check_rate = 0\n")
    assert public_seed_warning(load_policy(tmp_path / "policy.toml")) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="^(?!.*spot-check seed)")  # the tiny model's own start-up words
        Guard.from_policy(none, lm=tiny_model("llama"))
    # one domain spot-checked by the seed: warned about, a file and code alike
    some = {**unchecked, "gamma": {"spot_check_rate": 0.01}}
    assert "public spot-check seed" in public_seed_warning(
        Policy.from_mapping({"version": 1, **files, "domains": some}, base_dir=tmp_path))
    (tmp_path / "policy.toml").write_text("version = 1\n[domains.alpha]\nspot_check_rate = 0\n"
                                          "[domains.gamma]\nspot_check_rate = 0.01\n")
    assert "[monitor] seed is unset" in public_seed_warning(load_policy(tmp_path / "policy.toml"))


def test_the_default_policys_files_left_in_the_home_state_folder_are_said_not_lost(tmp_path, monkeypatch, capsys):
    """A review (upgrade break): the default policy's files followed $HGUARD_STATE_DIR only since this release, so an
    operator who had set it (it moved the demo's files before) lost sight of the queue and log still in
    ~/.local/state/hguard: `review list` said nothing was held, `audit verify --policy default` "no audit log".
    Loading the policy warns once, naming both folders and the fix; the two commands say the same."""
    import warnings

    from hguard._resources import policy_arg
    from hguard.cli import main

    old = tmp_path / "home" / ".local" / "state" / "hguard"
    old.mkdir(parents=True)
    (old / "audit.jsonl").write_text("")
    (old / "review.sqlite3").write_text("")
    (old / "review.sqlite3.pending.jsonl").write_text("")
    (old / "demo").mkdir()  # the demo's folder is not the policy's
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    new = tmp_path / "new state"
    monkeypatch.setenv("HGUARD_STATE_DIR", str(new))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        load_policy(policy_arg("default"))
        load_policy(policy_arg("default"))  # once a process
    lines = [str(w.message) for w in said if "HGUARD_STATE_DIR" in str(w.message)]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "\n" not in line and f"audit.jsonl, review.sqlite3 are in {old} but not in {new}" in line
    assert (f"`mkdir -p '{new}' && mv -n {old / 'audit.jsonl'} {old / 'review.sqlite3'} "
            f"{old / 'review.sqlite3.pending.jsonl'} '{new}/'`) or unset HGUARD_STATE_DIR") in line
    new.mkdir()
    assert main(["review", "list", "--policy", "default"]) == 0  # as where nothing is held: said, not refused
    assert f"no review queue at {new / 'review.sqlite3'}: the default policy's audit.jsonl" in capsys.readouterr().out
    assert main(["audit", "verify", "--policy", "default"]) == 2
    err = capsys.readouterr().err
    assert f"error: no audit log at {new / 'audit.jsonl'}: the default policy's audit.jsonl, review.sqlite3 are in " \
           f"{old}" in err
    monkeypatch.setenv("HGUARD_STATE_DIR", str(old))  # the same folder: nothing is left behind
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        load_policy(policy_arg("default"))
    assert not [w for w in said if "HGUARD_STATE_DIR" in str(w.message)]
    for name in ("audit.jsonl", "review.sqlite3", "review.sqlite3.pending.jsonl"):  # moved: nothing said
        (old / name).rename(new / name)
    monkeypatch.setenv("HGUARD_STATE_DIR", str(new))
    from hguard._resources import STATE_FILES, left_behind

    assert left_behind(new, [n for _, _, n in STATE_FILES]) is None
