"""Tests of the decision policy: policy files, risk merging, fail-closed routing and threshold fitting."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pydantic import ValidationError

from hguard.errors import InputError, PolicyError, ProbeError
from hguard.policy import (
    Decision,
    DomainPolicy,
    Policy,
    Thresholds,
    apply_grounding,
    choose_domain,
    decide,
    effective_thresholds,
    fit_thresholds,
    load_policy,
    merge_risk,
    risk_coverage_curve,
)

REPO = Path(__file__).resolve().parents[1]
from hguard import DEFAULT_POLICY as EXAMPLE  # noqa: E402


# ---------------------------------------------------------------- helpers


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def make_policy(**top) -> Policy:
    data = {
        "version": 1,
        "domains": {
            "geo": {"target_hallucination_rate": 0.1, "confidence": 0.95},
            "rag": {"min_grounding": 0.4},
            "strict": {"require_grounding": True},
        },
    }
    data.update(top)
    return Policy.model_validate(data)


def manual(accept=0.3, abstain=0.8, target=0.1, confidence=0.95) -> Thresholds:
    return Thresholds(
        accept_below=accept,
        abstain_above=abstain,
        target=target,
        confidence=confidence,
        n_calibration=500,
        coverage=0.4,
        accepted_error_rate=0.05,
        accepted_error_ucb=0.08,
        method="test",
    )


def route(risk, policy=None, domain="geo", thresholds="default", **kw) -> Decision:
    policy = policy or make_policy()
    dp = policy.domain(domain)
    th = manual() if thresholds == "default" else thresholds
    return decide(risk, domain_policy=dp, thresholds=th, policy=policy, domain=domain, **kw)


# ---------------------------------------------------------------- policy files

MINIMAL_TOML = """
version = 1
probes = "probes/here"
[audit]
path = "logs/audit.jsonl"
[domains.finance]
target_hallucination_rate = 0.05
accept_below = 0.2
"""

MINIMAL_YAML = """
version: 1
probes: probes/here
audit:
  path: logs/audit.jsonl
domains:
  finance:
    target_hallucination_rate: 0.05
    accept_below: 0.2
"""


def test_the_packaged_abstain_messages_claim_nothing_about_the_passages():
    """A bank trial: the model declined although the passage stated the limit ("$10,000 per customer") and the user
    read "The passages I was given do not answer that reliably.", a claim about the passages that was false. The
    packaged messages say only that hguard cannot answer reliably (a user's own message is shown as set)."""
    policy = load_policy(EXAMPLE)
    for name in [None, *policy.domains]:
        shown = policy.abstain_message_of(name)
        assert shown.startswith("I can't answer that reliably"), (name, shown)
        assert "not answer" not in shown and "not say" not in shown, (name, shown)
    assert "passages" in policy.abstain_message_of("general")
    own = make_policy(domains={"geo": {"abstain_message": "The passages do not say."}})
    assert own.abstain_message_of("geo") == "The passages do not say."


def test_example_policy_loads_with_its_domains_and_resolved_paths(monkeypatch):
    monkeypatch.delenv("HGUARD_STATE_DIR", raising=False)  # its files in the default state folder
    policy = load_policy(EXAMPLE)
    assert set(policy.domains) == {"geography", "chemistry", "literature", "policy", "general"}
    assert policy.domain("policy").knowledge_conflict == "trust_context"
    assert policy.domain("general").knowledge_conflict == "review"
    assert policy.domain("geography").context_with_closed_book_probe == "review"
    assert policy.source == EXAMPLE.resolve()
    base = EXAMPLE.resolve().parent
    assert policy.probes == base / "probes/smollm2-135m"
    assert policy.audit.path == Path("~/.local/state/hguard/audit.jsonl").expanduser()
    assert policy.review.queue == Path("~/.local/state/hguard/review.sqlite3").expanduser()
    lit = policy.domain("literature")
    assert lit is not None and lit.name == "literature"
    assert (lit.accept_below, lit.abstain_above) == (None, None)  # fitted at load from the probe's scores
    assert (lit.target_hallucination_rate, lit.confidence) == (0.20, 0.90)
    assert policy.domain("geography").steering is None
    assert policy.domain("chemistry").min_grounding == 0.2
    assert policy.domain("policy").min_grounding == policy.domain("general").min_grounding == 0.2  # the RAG domains' floor
    assert policy.domain("finance") is None
    assert policy.domain(None) is None


def test_defaults_and_relative_paths_resolve_against_the_policy_file(tmp_path):
    policy = load_policy(write(tmp_path, "p.toml", MINIMAL_TOML))
    base = tmp_path.absolute()
    assert policy.probes == base / "probes/here"
    assert policy.audit.path == base / "logs/audit.jsonl"
    # Defaults are paths too, and also land next to the policy file.
    assert policy.review.queue == base / "hguard-review.sqlite3"
    assert policy.default_route == "review" and policy.unknown_domain == "review"
    assert policy.fingerprint_mismatch == "review"
    assert policy.generation.max_new_tokens == 48 and policy.generation.system_prompt is None
    finance = policy.domain("finance")
    assert finance.confidence == 0.95 and finance.abstain_above is None and finance.grounding_weight is None


def test_yaml_and_toml_equivalents_load_identically(tmp_path):
    from_toml = load_policy(write(tmp_path, "p.toml", MINIMAL_TOML))
    from_yaml = load_policy(write(tmp_path, "p.yaml", MINIMAL_YAML))
    from_yml = load_policy(write(tmp_path, "p.yml", MINIMAL_YAML))
    assert from_toml.model_dump() == from_yaml.model_dump() == from_yml.model_dump()
    # saved by Windows Notepad: a byte-order mark and CRLF line ends
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + MINIMAL_TOML.replace("\n", "\r\n").encode("utf-8"))
    assert load_policy(tmp_path / "bom.toml").model_dump() == from_toml.model_dump()


def test_example_policy_round_trips_through_yaml(tmp_path):
    import yaml

    data = load_policy(EXAMPLE).model_dump(mode="json")
    path = write(tmp_path, "copy.yaml", yaml.safe_dump(data))
    assert load_policy(path).model_dump() == load_policy(EXAMPLE).model_dump()


def test_model_validate_without_a_file_keeps_relative_paths_and_can_take_a_base_dir(tmp_path):
    data = {"version": 1, "probes": "p", "domains": {"a": {}}}
    assert Policy.model_validate(data).probes == Path("p")
    assert Policy.model_validate(data, context={"base_dir": tmp_path}).probes == tmp_path / "p"
    assert Policy.model_validate(data).source is None


# Each case: (key path that must be named, TOML text, YAML text).
BAD_FILES = [
    # an abstained answer shown as nothing at all (review_message was refused empty, abstain_message was not: a risk
    # officer's trial); a blank one too
    ("abstain_message", 'version = 1\nabstain_message = ""\n', 'version: 1\nabstain_message: ""\n'),
    ("domains.finance.abstain_message", 'version = 1\n[domains.finance]\nabstain_message = "  "\n',
     'version: 1\ndomains:\n  finance:\n    abstain_message: "  "\n'),
    ("review_message", 'version = 1\nreview_message = " "\n', 'version: 1\nreview_message: " "\n'),
    # one probe folder listed twice: every domain it holds was claimed twice and switched off at start-up
    ("probes", 'version = 1\nprobes = ["package:smollm2-135m", "package:smollm2-135m"]\n',
     'version: 1\nprobes: ["package:smollm2-135m", "package:smollm2-135m"]\n'),
    (
        "domains.finance.accept_below",
        "version = 1\n[domains.finance]\naccept_below = 1.5\n",
        "version: 1\ndomains:\n  finance:\n    accept_below: 1.5\n",
    ),
    (
        "domains.finance.accept_bellow",
        "version = 1\n[domains.finance]\naccept_bellow = 0.2\n",
        "version: 1\ndomains:\n  finance:\n    accept_bellow: 0.2\n",
    ),
    (
        "domains.finance.abstain_above",
        "version = 1\n[domains.finance]\naccept_below = 0.9\nabstain_above = 0.2\n",
        "version: 1\ndomains:\n  finance:\n    accept_below: 0.9\n    abstain_above: 0.2\n",
    ),
    (
        "domains.finance.target_hallucination_rate",
        "version = 1\n[domains.finance]\ntarget_hallucination_rate = 0.0\n",
        "version: 1\ndomains:\n  finance:\n    target_hallucination_rate: 0\n",
    ),
    (
        "domains.finance.confidence",
        "version = 1\n[domains.finance]\nconfidence = 1.0\n",
        "version: 1\ndomains:\n  finance:\n    confidence: 1.0\n",
    ),
    (
        "domains.finance.min_grounding",
        'version = 1\n[domains.finance]\nmin_grounding = "0.3"\n',
        'version: 1\ndomains:\n  finance:\n    min_grounding: "0.3"\n',
    ),
    (
        "domains.finance.steering.alpha",
        "version = 1\n[domains.finance.steering]\nalpha = -1.0\n",
        "version: 1\ndomains:\n  finance:\n    steering:\n      alpha: -1.0\n",
    ),
    (
        "domains.finance.steering.alpha",
        "version = 1\n[domains.finance.steering]\nalpha = inf\n",
        "version: 1\ndomains:\n  finance:\n    steering:\n      alpha: .inf\n",
    ),
    (
        "default_route",
        'version = 1\ndefault_route = "accept"\n',
        "version: 1\ndefault_route: accept\n",
    ),
    (
        "fingerprint_mismatch",
        'version = 1\nfingerprint_mismatch = "ignore"\n',
        "version: 1\nfingerprint_mismatch: ignore\n",
    ),
    (
        "audit.redact",
        "version = 1\n[audit]\nredact = 1\n",
        "version: 1\naudit:\n  redact: 1\n",
    ),
    (  # an edit that lost the line: an error, not a new log beside the policy
        "audit.path",
        'version = 1\n[audit]\nanchor = "audit.anchor"\n',
        "version: 1\naudit:\n  anchor: audit.anchor\n",
    ),
    (
        "review.queue",
        "version = 1\n[review]\n",
        "version: 1\nreview: {}\n",
    ),
    (  # an empty path is the policy's own folder
        "audit.path",
        'version = 1\n[audit]\npath = ""\n',
        'version: 1\naudit:\n  path: ""\n',
    ),
    (  # "." is the policy's own folder too (passed validation; a red team's trial)
        "audit.path",
        'version = 1\n[audit]\npath = "."\n',
        'version: 1\naudit:\n  path: "."\n',
    ),
    (
        "review.queue",
        'version = 1\n[review]\nqueue = "queues/"\n',
        'version: 1\nreview:\n  queue: "queues/"\n',
    ),
    (  # pathlib reads "logs/." as "logs": a folder too
        "audit.path",
        'version = 1\n[audit]\npath = "logs/."\n',
        'version: 1\naudit:\n  path: "logs/."\n',
    ),
    (
        "monitor.state",
        'version = 1\n[monitor]\nstate = "~"\n',
        'version: 1\nmonitor:\n  state: "~"\n',
    ),
    (
        "generation.max_new_tokens",
        "version = 1\n[generation]\nmax_new_tokens = 0\n",
        "version: 1\ngeneration:\n  max_new_tokens: 0\n",
    ),
    ("version", "default_route = 'review'\n", "default_route: review\n"),
    ("version", "version = 2\n", "version: 2\n"),
    (
        "domains",
        'version = 1\n[domains."bad name"]\n',
        "version: 1\ndomains:\n  bad name: {}\n",
    ),
    (
        "domains.finance.name",
        'version = 1\n[domains.finance]\nname = "other"\n',
        "version: 1\ndomains:\n  finance:\n    name: other\n",
    ),
]


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
@pytest.mark.parametrize("key, toml_text, yaml_text", BAD_FILES, ids=[c[0] + "-" + str(i) for i, c in enumerate(BAD_FILES)])
def test_schema_errors_name_the_key_and_the_file(tmp_path, fmt, key, toml_text, yaml_text):
    path = write(tmp_path, f"policy.{fmt}", toml_text if fmt == "toml" else yaml_text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert key in message
    assert str(path) in message
    assert "Fix these keys" in message or "remove the name key" in message


def test_unknown_key_error_lists_the_allowed_keys(tmp_path):
    path = write(tmp_path, "p.toml", "version = 1\n[domains.finance]\naccept_bellow = 0.2\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "unknown key" in message and "0.2" in message
    assert "allowed keys here:" in message and "accept_below" in message and "min_grounding" in message


def test_a_key_written_in_the_wrong_table_is_told_where_it_belongs(tmp_path):
    """A risk officer's trial: `fingerprint_mismatch = "warn"` written after `[generation]` (TOML reads it as that
    table's) was only "unknown key ...; allowed keys here: max_new_tokens, system_prompt", with no word that it is a
    top-level key. Where it belongs is read from the policy's own fields."""
    path = write(tmp_path, "p.toml", 'version = 1\n[generation]\nmax_new_tokens = 32\nfingerprint_mismatch = "warn"\n'
                 "min_grounding = 0.3\n[domains.geo]\nalpha = 0.5\nseed = \"x\"\n[domains.geo.steering]\n"
                 "min_grounding = 0.2\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    said = str(info.value)
    assert ("generation.fingerprint_mismatch: unknown key (value 'warn'); fingerprint_mismatch belongs at the top "
            "level: in TOML, above the first [table] line") in said, said
    assert "generation.min_grounding: unknown key (value 0.3); min_grounding belongs in a [domains.NAME] table" in said
    assert "domains.geo.alpha: unknown key (value 0.5); alpha belongs in the [domains.geo.steering] table" in said
    assert "domains.geo.seed: unknown key (value 'x'); seed belongs in the [monitor] table" in said
    assert "domains.geo.steering.min_grounding: unknown key (value 0.2); min_grounding belongs in the [domains.geo] table" in said
    with pytest.raises(PolicyError, match=r"max_new_tokens belongs in the mapping under 'generation'; allowed keys here"):
        Policy.from_mapping({"version": 1, "max_new_tokens": 32})
    # a key no table holds is still guessed at, and a domain's name is no key to move
    with pytest.raises(PolicyError) as info:
        Policy.from_mapping({"version": 1, "generation": {"max_new_token": 3}, "name": "x"})
    assert "did you mean 'max_new_tokens'" in str(info.value) and "belongs" not in str(info.value)


def test_a_table_in_the_wrong_place_and_a_yaml_or_mapping_policy_are_told_where_it_belongs_in_their_own_words(tmp_path):
    """A review's trial: [domains.geo.generation] got "did you mean 'generation_mismatch'?" and no word that
    [generation] is a top-level table (table-valued fields were not recorded), and a YAML file or a mapping given in
    code was told about TOML's "[table] line"s."""
    path = write(tmp_path, "p.toml", "version = 1\n[domains.geo.generation]\nmax_new_tokens = 3\n[steering]\nalpha = 0.5\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    said = str(info.value)
    assert ("domains.geo.generation: unknown key (value {'max_new_tokens': 3}); [generation] is a top-level table: "
            "write its header as [generation]; allowed keys here") in said, said
    assert "did you mean" not in said
    assert "[domains.NAME.steering] is a table inside [domains.NAME]" in said, said
    path = write(tmp_path, "p.yaml", "version: 1\ngeneration:\n  fingerprint_mismatch: warn\n  path: x.jsonl\n"
                 "domains:\n  geo:\n    generation:\n      max_new_tokens: 3\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    said = str(info.value)
    assert "TOML" not in said and "[table]" not in said and "[audit]" not in said, said
    assert "fingerprint_mismatch belongs at the top level: in YAML, unindented" in said, said
    assert "path belongs nested under audit:" in said, said
    assert "generation: is a top-level key, unindented" in said, said
    with pytest.raises(PolicyError) as info:
        Policy.from_mapping({"version": 1, "generation": {"fingerprint_mismatch": "warn"},
                             "domains": {"geo": {"generation": {"max_new_tokens": 3}}}})
    said = str(info.value)
    assert "TOML" not in said and "[table]" not in said and "[generation]" not in said, said
    assert "fingerprint_mismatch belongs at the top level of the mapping" in said, said
    assert "'generation' is a key of the top level of the mapping" in said, said


def test_a_policy_error_as_the_cli_says_it_keeps_its_items_apart(tmp_path):
    from hguard.cli import error_line

    path = write(tmp_path, "p.toml", "version = 1\n[domains.finance]\ntarget_hallucination_rate = 2\naccept_bellow = 0.2\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    said = error_line(info.value)  # as the CLI says it: one item a line, each ended, the closing sentence last
    lines = said.splitlines()
    assert lines[1].startswith("  - domains.finance.target_hallucination_rate") and lines[1].endswith(";"), said
    assert lines[2].startswith("  - domains.finance.accept_bellow: unknown key") and lines[2].endswith("."), said
    assert lines[3] == "  Fix these keys and load the policy again.", said
    assert "among accepted answers; - domains.finance.accept_bellow" in " ".join(str(info.value).split())  # folded too


def test_a_misspelt_key_a_wrong_probes_value_and_a_looser_tightened_target_are_named(tmp_path):
    """A misspelt key got the allowed keys but no guess; a probes value of the wrong type got pydantic's schema text
    (lax-or-strict[...]); a tightened_target above the target loaded without a word."""
    path = write(tmp_path, "p.toml", "version = 1\n[domains.finance]\ntarget_hallucinaton_rate = 0.2\n")
    with pytest.raises(PolicyError, match="did you mean 'target_hallucination_rate'"):
        load_policy(path)
    for value in ("5", '["package:smollm2-135m", 5]'):
        path = write(tmp_path, "p.toml", f"version = 1\nprobes = {value}\n")
        with pytest.raises(PolicyError) as info:
            load_policy(path)
        message = str(info.value)
        assert "probes takes a folder path or package:NAME, or a list of them; got 5 (int)" in message, message
        assert "lax-or-strict" not in message and "PosixPath" not in message
    path = write(tmp_path, "p.toml", "version = 1\n[domains.finance]\ntarget_hallucination_rate = 0.2\n"
                 "tightened_target = 0.6\n")
    with pytest.raises(PolicyError, match=r"tightened_target \(0.6\) is not below target_hallucination_rate \(0.2\)"):
        load_policy(path)


def test_a_policy_from_a_mapping_gets_the_file_loaders_messages(tmp_path):
    """Policy.model_validate, which the docstring offered, raised pydantic's ValidationError without the allowed keys."""
    with pytest.raises(PolicyError, match=r"invalid policy given as a mapping:\n  - acept: unknown key .*allowed keys here"):
        Policy.from_mapping({"version": 1, "acept": 1})
    pol = Policy.from_mapping({"version": 1, "audit": {"path": "a.jsonl"}}, base_dir=tmp_path)
    assert pol.audit.path == tmp_path / "a.jsonl"


def test_range_error_echoes_the_value_and_says_what_is_allowed(tmp_path):
    path = write(tmp_path, "p.yaml", "version: 1\ndomains:\n  finance:\n    accept_below: 1.5\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "got 1.5" in message and "a number in [0, 1]" in message


def test_all_errors_of_a_file_are_reported_together(tmp_path):
    path = write(
        tmp_path,
        "p.toml",
        "version = 1\nbogus = 1\n[domains.a]\naccept_below = 2.0\n[domains.b]\nconfidence = 0\n",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    for key in ("bogus", "domains.a.accept_below", "domains.b.confidence"):
        assert key in message


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "p.toml", "version = 1\n[domains.finance\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(path) in str(info.value) and "line 2" in str(info.value) and "TOML" in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "p.yaml", "version: 1\ndomains:\n  finance: [0.1\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(path) in str(info.value) and "line " in str(info.value) and "YAML" in str(info.value)


@pytest.mark.parametrize("name, text", [("p.toml", "version = 1\nx = " + "[" * 50_000 + "]" * 50_000 + "\n"),
                                        ("p.yaml", "version: 1\nx: " + "[" * 20_000 + "]" * 20_000 + "\n")])
def test_a_policy_nested_too_deeply_to_parse_is_a_policy_error(tmp_path, name, text):
    with pytest.raises(PolicyError, match=r"nests its values more deeply.*fix the file"):
        load_policy(write(tmp_path, name, text))


def test_yaml_exponent_without_a_point_and_a_folder_are_explained(tmp_path):
    path = write(tmp_path, "p.yaml", "version: 1\ndomains:\n  f:\n    accept_below: 1e-1\n")
    with pytest.raises(PolicyError, match=r"accept_below.*'1e-1'.*YAML 1.1 reads a number such as 1e-1"):
        load_policy(path)
    assert load_policy(write(tmp_path, "q.yaml", "version: 1\ndomains:\n  f:\n    accept_below: 1.0e-1\n")
                       ).domains["f"].accept_below == 0.1
    with pytest.raises(PolicyError, match="is a folder; pass the policy file in it"):
        load_policy(tmp_path)


def test_yaml_duplicate_keys_are_an_error_not_a_silent_overwrite(tmp_path):
    path = write(tmp_path, "p.yaml", "version: 1\ndomains:\n  f:\n    accept_below: 0.2\n    accept_below: 0.9\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "duplicate key 'accept_below'" in str(info.value) and "line 5" in str(info.value)


def test_yaml_cannot_construct_python_objects(tmp_path):
    path = write(tmp_path, "p.yaml", "version: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(PolicyError):
        load_policy(path)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("p.json", "{}", "suffix '.json'"),
        ("p.yaml", "- 1\n- 2\n", "top level must be a table"),
        ("p.yaml", "", "version: required key is missing"),
        ("p.toml", "", "version: required key is missing"),
    ],
)
def test_file_level_errors(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert expected in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("table, key, value, first, second", [
    ("monitor", "state", "audit.jsonl", "audit.path", "monitor.state"),
    ("review", "queue", "./logs/../audit.jsonl", "audit.path", "review.queue"),
    ("monitor", "state", "p.toml", "the policy file", "monitor.state"),
    ("audit", "anchor", "review.sqlite3", "audit.anchor", "review.queue"),
    ("monitor", "state", "link-to-log", "audit.path", "monitor.state"),
])
def test_two_settings_naming_one_file_are_refused(tmp_path, table, key, value, first, second):
    """The monitor wrote its state over the audit log (every record lost), the review queue its database into it."""
    (tmp_path / "audit.jsonl").write_text("")
    (tmp_path / "link-to-log").symlink_to(tmp_path / "audit.jsonl")
    tables = {"audit": {"path": "audit.jsonl"}, "review": {"queue": "review.sqlite3"}, "monitor": {"state": "state.json"}}
    tables[table][key] = value
    text = "version = 1\n" + "".join(f"[{t}]\n" + "".join(f"{k} = {v!r}\n" for k, v in kv.items()) for t, kv in tables.items())
    path = write(tmp_path, "p.toml", text.replace("'", '"'))
    with pytest.raises(PolicyError, match=rf"{first} and {second} name the same file .*give each its own file"):
        load_policy(path)
    assert (tmp_path / "audit.jsonl").read_text() == "" and (tmp_path / "p.toml").read_text().startswith("version")


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes("version = 1\nabstain_message = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path)


def test_policy_is_immutable():
    policy = make_policy()
    with pytest.raises(ValidationError):
        policy.default_route = "abstain"
    with pytest.raises(ValidationError):
        policy.domain("geo").accept_below = 0.9


# ---------------------------------------------------------------- merging

MERGER = {
    "features": ["neuron_risk", "mean_logprob"],
    "mean": [0.5, -1.0],
    "scale": [0.2, 0.5],
    "coef": [2.0, -1.0],
    "intercept": -0.5,
}


def test_merge_risk_is_the_standardised_logistic_model():
    signals = {"neuron_risk": 0.7, "mean_logprob": -2.0, "length": 12.0, "grounding": None}
    z = 2.0 * (0.7 - 0.5) / 0.2 - 1.0 * (-2.0 + 1.0) / 0.5 - 0.5
    assert merge_risk(signals, MERGER) == pytest.approx(1 / (1 + math.exp(-z)))


def test_merge_risk_is_stable_at_extremes_and_never_lowered_by_extrapolation():
    assert merge_risk({"neuron_risk": 1e6, "mean_logprob": 0.0}, MERGER) == 1.0  # raises the risk: it stands
    assert merge_risk({"neuron_risk": -1.4, "mean_logprob": -1.0}, MERGER) < 1e-7  # 9.5 sd: within the limit
    # beyond the limit where it would lower the risk: not the merger's to say (a length every calibration answer
    # shared, scale ~1e-15, made a 31-token answer's risk exactly 0)
    with pytest.raises(InputError, match=r"signal 'neuron_risk' is -1e\+06, 5e\+06 standard deviations .* lower the risk"):
        merge_risk({"neuron_risk": -1e6, "mean_logprob": 0.0}, MERGER)
    constant = {"features": ["log_length"], "mean": [math.log1p(32)], "scale": [1.78e-15], "coef": [0.6], "intercept": 0.0}
    with pytest.raises(InputError, match="'log_length'"):
        merge_risk({"log_length": math.log1p(31)}, constant)
    assert merge_risk({"log_length": math.log1p(33)}, constant) == 1.0


@pytest.mark.parametrize(
    "signals, named",
    [
        ({"mean_logprob": -1.0}, "neuron_risk"),
        ({"neuron_risk": None, "mean_logprob": -1.0}, "neuron_risk"),
        ({"neuron_risk": float("nan"), "mean_logprob": -1.0}, "neuron_risk"),
        ({"neuron_risk": 0.5, "mean_logprob": float("-inf")}, "mean_logprob"),
        ({"neuron_risk": True, "mean_logprob": -1.0}, "neuron_risk"),
        ({"neuron_risk": "0.5", "mean_logprob": -1.0}, "neuron_risk"),
        ({}, "neuron_risk, mean_logprob"),
    ],
)
def test_merge_risk_fails_on_missing_or_non_finite_features(signals, named):
    with pytest.raises(InputError) as info:
        merge_risk(signals, MERGER)
    assert named in str(info.value)
    if signals.get("neuron_risk", 0) is None:  # a signal not read is missing, not given (it was said to be both)
        assert "missing (given: mean_logprob)" in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        {"mean": [0.5]},
        {"scale": [0.2, 0.0]},
        {"coef": [1.0, float("nan")]},
        {"intercept": None},
        {"features": []},
        {"features": "neuron_risk"},
    ],
)
def test_malformed_merger_is_a_probe_error(change):
    with pytest.raises(ProbeError):
        merge_risk({"neuron_risk": 0.5, "mean_logprob": -1.0}, {**MERGER, **change})


def test_apply_grounding_endpoints():
    assert apply_grounding(0.2, 1.0, 0.5) == pytest.approx(0.2)
    assert apply_grounding(0.2, 0.0, 0.5) == pytest.approx(0.2 + 0.5 * 0.8)
    assert apply_grounding(0.2, 0.0, 0.0) == pytest.approx(0.2)
    assert apply_grounding(0.2, 0.0, 1.0) == pytest.approx(1.0)
    assert apply_grounding(0.2, None, 1.0) == 0.2


def test_apply_grounding_is_monotone_and_never_lowers_risk():
    grid = [i / 10 for i in range(11)]
    for risk, support, weight in itertools.product(grid, grid, grid):
        out = apply_grounding(risk, support, weight)
        assert risk - 1e-12 <= out <= 1.0
        if risk < 1.0:
            assert apply_grounding(min(risk + 0.1, 1.0), support, weight) >= out - 1e-12
        if support < 1.0:
            assert apply_grounding(risk, min(support + 0.1, 1.0), weight) <= out + 1e-12
        if weight < 1.0:
            assert apply_grounding(risk, support, min(weight + 0.1, 1.0)) >= out - 1e-12


@pytest.mark.parametrize("args", [(1.2, 0.5, 0.5), (0.2, -0.1, 0.5), (0.2, float("nan"), 0.5), (0.2, 0.5, 2.0)])
def test_apply_grounding_rejects_out_of_range(args):
    with pytest.raises(InputError):
        apply_grounding(*args)


# ---------------------------------------------------------------- routing


def test_basic_routes_and_boundaries():
    assert route(0.1).route == "accept"
    assert route(0.3).route == "review"  # accept is strictly below
    assert route(0.5).route == "review"
    assert route(0.8).route == "abstain"  # abstain is at or above
    assert route(0.95).route == "abstain"
    assert route(0.0).route == "accept"


def test_accept_reason_states_risk_and_threshold():
    decision = route(0.123)
    assert decision.route == "accept" and decision.risk == pytest.approx(0.123)
    assert any("0.123" in r and "0.3" in r and "accept" in r for r in decision.reasons)
    assert decision.thresholds["accept_below"] == 0.3


def test_review_and_abstain_reasons_carry_numbers():
    assert any("0.5" in r and "0.3" in r and "0.8" in r for r in route(0.5).reasons)
    assert any("0.9" in r and "0.8" in r for r in route(0.9).reasons)


def test_decision_is_frozen_and_json_ready():
    decision = route(0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.route = "abstain"
    assert json.loads(json.dumps(decision.to_dict()))["route"] == "accept"


def test_route_is_monotone_in_risk():
    order = {"accept": 0, "review": 1, "abstain": 2}
    routes = [order[route(i / 100).route] for i in range(101)]
    assert routes == sorted(routes)
    assert set(routes) == {0, 1, 2}


NAN, INF = float("nan"), float("inf")

# Every case would accept (risk 0.01) if it were not for the one thing wrong.
FAIL_CLOSED = {
    "scoring problem": dict(problems=["neuron probe failed"]),
    "risk None": dict(risk=None),
    "risk nan": dict(risk=NAN),
    "risk +inf": dict(risk=INF),
    "risk -inf": dict(risk=-INF),
    "risk negative": dict(risk=-0.01),
    "risk above 1": dict(risk=1.5),
    "risk bool": dict(risk=True),
    "risk string": dict(risk="0.01"),
    "unknown domain": dict(domain="finance"),
    "no thresholds": dict(thresholds=None),
    "fingerprint mismatch": dict(fingerprint_problems=["model sha differs"]),
    "thresholds fitted for a looser target": dict(thresholds=manual(target=0.2)),
    "thresholds fitted at lower confidence": dict(thresholds=manual(confidence=0.8)),
    "grounding nan": dict(grounding=NAN),
    "grounding above 1": dict(grounding=1.2),
    "min_grounding violated": dict(domain="rag", grounding=0.39),
    "grounding required but absent": dict(domain="strict", grounding=None),
}


@pytest.mark.parametrize("case", list(FAIL_CLOSED), ids=list(FAIL_CLOSED))
def test_fail_closed_cases_never_accept(case):
    kw = dict(FAIL_CLOSED[case])
    risk = kw.pop("risk", 0.01)
    decision = route(risk, **kw)
    assert decision.route == "review"
    assert decision.reasons
    if decision.risk is not None:
        assert math.isfinite(decision.risk)
    assert route(0.01).route == "accept"  # the control case does accept


@pytest.mark.parametrize("case", list(FAIL_CLOSED), ids=list(FAIL_CLOSED))
def test_fail_closed_cases_never_accept_under_lenient_settings(case):
    lenient = make_policy(fingerprint_mismatch="warn")
    kw = dict(FAIL_CLOSED[case])
    risk = kw.pop("risk", 0.01)
    decision = route(risk, policy=lenient, **kw)
    if case == "fingerprint mismatch":
        assert decision.route == "accept"
        assert any(r.startswith("warning:") and "model sha differs" in r for r in decision.reasons)
    else:
        assert decision.route != "accept"


def test_min_grounding_met_accepts_and_blocked_accept_explains():
    assert route(0.01, domain="rag", grounding=0.4).route == "accept"
    assert route(0.01, domain="rag", grounding=None).route == "accept"  # no context, nothing to check
    blocked = route(0.01, domain="rag", grounding=0.1)
    assert any("0.1" in r and "min_grounding 0.4" in r for r in blocked.reasons)
    # A high-risk answer still abstains; low grounding does not soften that.
    assert route(0.9, domain="rag", grounding=0.1).route == "abstain"
    assert route(0.01, domain="strict", grounding=0.9).route == "accept"


def test_unknown_domain_and_default_route_follow_the_policy():
    policy = make_policy(unknown_domain="abstain", default_route="review")
    unknown = route(0.01, policy=policy, domain="finance")
    assert unknown.route == "abstain"
    assert any("'finance'" in r and "unknown_domain" in r for r in unknown.reasons)
    none_chosen = decide(0.01, domain_policy=None, thresholds=None, policy=policy, domain_chosen=False)
    assert none_chosen.route == "review" and any("default_route" in r for r in none_chosen.reasons)
    policy = make_policy(default_route="abstain")
    assert decide(0.01, domain_policy=None, thresholds=None, policy=policy, domain_chosen=False).route == "abstain"
    # A domain without a probe routes by unknown_domain too.
    assert route(0.01, policy=make_policy(unknown_domain="abstain"), thresholds=None).route == "abstain"


def test_several_causes_list_every_reason_and_abstain_wins():
    policy = make_policy(unknown_domain="abstain")
    decision = route(NAN, policy=policy, domain="finance", problems=["p1", "p2"], fingerprint_problems=["f"])
    assert decision.route == "abstain" and decision.risk is None
    text = " | ".join(decision.reasons)
    for needle in ("p1", "p2", "nan", "finance", "f"):
        assert needle in text


FLAGS = {
    "problems": [(), ("broken",)],
    "risk": [0.01, None, NAN, 2.0],
    "domain": ["geo", "finance"],
    "thresholds": ["ok", None],
    "fingerprint": [(), ("mismatch",)],
    "grounding": [None, 0.9, NAN],
    "unknown_domain": ["review", "abstain"],
    "default_route": ["review", "abstain"],
    "fingerprint_mismatch": ["review", "warn"],
}


def test_exhaustive_routing_table_accepts_only_when_everything_is_clean():
    seen = set()
    for combo in itertools.product(*FLAGS.values()):
        c = dict(zip(FLAGS, combo))
        policy = make_policy(
            unknown_domain=c["unknown_domain"],
            default_route=c["default_route"],
            fingerprint_mismatch=c["fingerprint_mismatch"],
        )
        decision = decide(
            c["risk"],
            domain_policy=policy.domain(c["domain"]),
            thresholds=manual() if c["thresholds"] == "ok" else None,
            problems=c["problems"],
            grounding=c["grounding"],
            fingerprint_problems=c["fingerprint"],
            policy=policy,
            domain=c["domain"],
        )
        clean = (
            not c["problems"]
            and c["risk"] == 0.01
            and c["domain"] == "geo"
            and c["thresholds"] == "ok"
            and (not c["fingerprint"] or c["fingerprint_mismatch"] == "warn")
            and (c["grounding"] is None or c["grounding"] == 0.9)
        )
        assert (decision.route == "accept") == clean, c
        assert decision.reasons, c
        if not clean:
            configured_abstain = (c["domain"] == "finance" or c["thresholds"] is None) and c["unknown_domain"] == "abstain"
            assert decision.route == ("abstain" if configured_abstain else "review"), c
        seen.add(decision.route)
    assert seen == {"accept", "review", "abstain"}


# ---------------------------------------------------------------- thresholds data


def test_thresholds_round_trip_through_json():
    th = fit_thresholds([0.1] * 60 + [0.9] * 60, [0] * 60 + [1] * 60)
    again = Thresholds.from_dict(json.loads(json.dumps(th.to_dict())))
    assert again == th


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"accept_below": 1.2}, "accept_below"),
        ({"accept_below": 0.9, "abstain_above": 0.5}, "accept_below"),
        ({"target": 0.0}, "target"),
        ({"coverage": float("nan")}, "coverage"),
        ({"n_calibration": -1}, "n_calibration"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_thresholds_from_dict_rejects_bad_data_naming_the_field(change, needle):
    data = {**manual().to_dict(), **change}
    with pytest.raises(ProbeError) as info:
        Thresholds.from_dict(data)
    assert needle in str(info.value)


def test_thresholds_from_dict_requires_the_core_fields():
    data = manual().to_dict()
    del data["accept_below"]
    with pytest.raises(ProbeError, match="accept_below"):
        Thresholds.from_dict(data)
    data = manual().to_dict()
    del data["abstained_share"]  # optional: older probe files may lack it
    assert Thresholds.from_dict(data).abstained_share is None


def test_an_answer_without_a_domain_says_why_it_has_no_risk():
    policy = make_policy()
    d = decide(None, domain_policy=None, thresholds=None, policy=policy, domain=None, domain_chosen=False)
    assert d.route == policy.default_route and d.reasons[0] == "no risk score: no domain was chosen, so no probe scored the answer"
    assert "no domain could be chosen for this answer" in d.reasons[1]
    d = decide(None, domain_policy=policy.domain("geo"), thresholds=manual(), policy=policy, domain="geo")
    assert d.route == "review" and d.reasons[0] == "no risk score: the answer could not be scored"


def test_the_reason_for_routing_without_thresholds_says_whether_the_policy_sets_them_by_hand():
    policy = Policy.model_validate({"version": 1, "unknown_domain": "abstain", "domains": {
        "hr": {"accept_below": 0.2}, "both": {"accept_below": 0.2, "abstain_above": 0.7}, "fitted": {}}})
    # no usable probe (refused, contested, another model's): the manual thresholds have no risk to apply to
    d = decide(None, domain_policy=policy.domain("hr"), thresholds=None, policy=policy, domain="hr")
    assert d.route == "abstain" and "no manual" not in " ".join(d.reasons), d.reasons
    assert d.reasons[1] == ("domain 'hr': the policy's manual accept_below = 0.2 can only be set against a probe's risk score, and no "
                             "usable probe scored this answer (reason above); routing by unknown_domain = 'abstain'")
    d = decide(None, domain_policy=policy.domain("both"), thresholds=None, policy=policy, domain="both")
    assert "manual accept_below = 0.2 and abstain_above = 0.7 can only be set against" in d.reasons[1]
    # a risk routed without thresholds (a caller of decide that passed none): the manual ones were not used
    d = decide(0.1, domain_policy=policy.domain("hr"), thresholds=None, policy=policy, domain="hr")
    assert d.route == "abstain" and d.reasons[0].startswith(
        "domain 'hr' was routed without thresholds, so nothing set the policy's manual accept_below = 0.2 against its risk")
    d = decide(None, domain_policy=policy.domain("fitted"), thresholds=None, policy=policy, domain="fitted")
    assert d.reasons[1].startswith("domain 'fitted' has no calibrated probe thresholds and no manual accept_below")


def test_manual_override_in_the_policy_wins_over_fitted():
    fitted = fit_thresholds([0.1] * 60 + [0.9] * 60, [0] * 60 + [1] * 60)
    both = DomainPolicy(accept_below=0.2, abstain_above=0.7)
    eff = effective_thresholds(both, fitted)
    assert (eff.accept_below, eff.abstain_above) == (0.2, 0.7)
    assert "manual override" in eff.method and eff.coverage is None  # fitted stats no longer apply
    only_accept = effective_thresholds(DomainPolicy(accept_below=0.05), fitted)
    assert (only_accept.accept_below, only_accept.abstain_above) == (0.05, fitted.abstain_above)
    only_abstain = effective_thresholds(DomainPolicy(abstain_above=0.95), fitted)
    assert (only_abstain.accept_below, only_abstain.abstain_above) == (fitted.accept_below, 0.95)
    assert only_abstain.coverage == fitted.coverage
    assert effective_thresholds(DomainPolicy(), fitted) is fitted
    # And decide uses the override: 0.5 accepts under the fitted 0.9 but not under the manual 0.2.
    policy = Policy.model_validate({"version": 1, "domains": {"d": {"accept_below": 0.2, "abstain_above": 0.7}}})
    dp = policy.domain("d")
    assert decide(0.5, domain_policy=dp, thresholds=fitted, policy=policy).route == "accept"
    assert decide(0.5, domain_policy=dp, thresholds=effective_thresholds(dp, fitted), policy=policy).route == "review"
    # an answer accepted under the manual number says so: the target's guarantee was certified for another one
    d = decide(0.1, domain_policy=dp, thresholds=effective_thresholds(dp, fitted), policy=policy)
    assert d.route == "accept" and "manual accept_below from the policy file: no calibration guarantee" in d.reasons[-1]
    assert "target hallucination rate" not in d.reasons[-1]
    d = decide(0.1, domain_policy=DomainPolicy(), thresholds=fitted, policy=policy)
    assert d.route == "accept" and "target hallucination rate 0.1 at confidence 0.95" in d.reasons[-1]


def test_a_hand_set_accept_threshold_is_measured_on_the_calibration_scores():
    from types import SimpleNamespace

    from hguard._stats import clopper_pearson_upper

    rng = np.random.default_rng(5)
    risk = rng.uniform(size=400)
    y = (rng.uniform(size=400) < risk).astype(int)
    scores = SimpleNamespace(risk=tuple(risk), hallucinated=tuple(y))
    fitted = fit_thresholds(risk, y, target=0.1, confidence=0.9)
    eff = effective_thresholds(DomainPolicy(accept_below=0.3), fitted, scores)
    m = eff.hand_set_measured
    accepted = y[risk < 0.3]
    assert (m["n"], m["accepted"], m["hallucinated"]) == (400, len(accepted), int(accepted.sum()))
    assert m["rate"] == pytest.approx(accepted.mean())
    assert m["upper_bound"] == pytest.approx(clopper_pearson_upper(int(accepted.sum()), len(accepted), 0.9))
    assert (m["confidence"], m["target"], m["accept_below"]) == (0.9, 0.1, 0.3)  # names the number it measured
    assert eff.accepted_error_ucb is None  # a measurement, not the certificate's field
    # the record carries it, and a probe file's thresholds read it back
    assert Thresholds.from_dict(eff.to_dict()) == eff
    # each accepted answer's reason says what it accepted there, and that it certifies nothing
    policy = Policy.model_validate({"version": 1, "domains": {"d": {"accept_below": 0.3}}})
    d = decide(0.1, domain_policy=policy.domain("d"), thresholds=eff, policy=policy)
    assert d.route == "accept" and "no calibration guarantee holds for it" in d.reasons[-1]
    assert (f"on the calibration's 400 out-of-fold answers it accepts {len(accepted)}, {int(accepted.sum())} of them "
            "hallucinated") in d.reasons[-1]
    assert "above the target 0.1" in d.reasons[-1] and "not a certificate" in d.reasons[-1]
    # the fitted threshold itself, a threshold that accepts nothing, and no scores: nothing measured
    assert effective_thresholds(DomainPolicy(accept_below=fitted.accept_below), fitted, scores).hand_set_measured is None
    assert effective_thresholds(DomainPolicy(accept_below=0.0), fitted, scores).hand_set_measured is None
    assert effective_thresholds(DomainPolicy(accept_below=0.3), fitted).hand_set_measured is None
    none_accepted = effective_thresholds(DomainPolicy(accept_below=1e-9), fitted, scores)
    assert none_accepted.hand_set_measured["accepted"] == 0
    assert none_accepted.hand_set_sentence() == ("on the calibration's 400 out-of-fold answers it accepts none, so "
                                                 "they bound nothing")
    with pytest.raises(InputError, match="hand_set_measured must be None or a mapping"):
        dataclasses.replace(eff, hand_set_measured={"n": 1})
    with pytest.raises(ProbeError, match="hand_set_measured must be None or a mapping"):
        Thresholds.from_dict({**eff.to_dict(), "hand_set_measured": "high"})


def test_manual_override_conflicting_with_fitted_moves_the_other_side_safely():
    fitted = manual(accept=0.3, abstain=0.5)
    raised = effective_thresholds(DomainPolicy(accept_below=0.6), fitted)
    # raised only to a certified abstain threshold, and none lies at or above 0.6: abstain only on declines (a review:
    # it was raised to 0.6 itself, a threshold no test had passed)
    assert (raised.accept_below, raised.abstain_above) == (0.6, 1.0)
    assert "no certified abstain threshold lies at or above the manual accept_below" in raised.method
    kept = effective_thresholds(DomainPolicy(accept_below=0.4), fitted)  # below the fitted 0.5: that one stays
    assert (kept.accept_below, kept.abstain_above) == (0.4, 0.5)
    lowered = effective_thresholds(DomainPolicy(abstain_above=0.2), fitted)
    assert (lowered.accept_below, lowered.abstain_above) == (0.2, 0.2)


def test_manual_thresholds_without_calibration():
    assert effective_thresholds(DomainPolicy(), None) is None
    only_accept = effective_thresholds(DomainPolicy(accept_below=0.25), None)
    assert (only_accept.accept_below, only_accept.abstain_above, only_accept.n_calibration) == (0.25, 1.0, 0)
    only_abstain = effective_thresholds(DomainPolicy(abstain_above=0.6), None)
    assert (only_abstain.accept_below, only_abstain.abstain_above) == (0.0, 0.6)  # accepts nothing


# ---------------------------------------------------------------- fitting


def test_separable_data_accepts_the_clean_group_only():
    risks = [0.1] * 60 + [0.9] * 60
    labels = [False] * 60 + [True] * 60
    th = fit_thresholds(risks, labels, target=0.1, confidence=0.95)
    assert 0.1 < th.accept_below <= 0.9
    assert th.coverage == 0.5 and th.accepted_error_rate == 0.0
    # Clopper-Pearson upper bound for 0 of 60 at 95%: 1 - 0.05 ** (1/60)
    assert th.accepted_error_ucb == pytest.approx(1 - 0.05 ** (1 / 60))
    assert th.abstain_above == 0.9 and th.abstained_share == 0.5
    assert th.accept_below <= th.abstain_above
    assert th.n_calibration == 120 and "learn-then-test" in th.method


def test_fitted_statistics_match_a_direct_count():
    rng = np.random.default_rng(3)
    r = rng.uniform(size=800)
    y = rng.uniform(size=800) < r**2
    th = fit_thresholds(r, y, target=0.1, confidence=0.9, abstain_precision=0.7)
    assert 0.0 < th.accept_below <= th.abstain_above < 1.0
    accepted = r < th.accept_below
    assert th.coverage == pytest.approx(accepted.mean())
    assert th.accepted_error_rate == pytest.approx(y[accepted].mean())
    assert th.accepted_error_rate <= th.accepted_error_ucb <= th.target + 1e-9
    abstained = r >= th.abstain_above
    assert th.abstained_share == pytest.approx(abstained.mean())
    assert y[abstained].mean() >= th.abstained_precision_lcb >= th.abstain_precision - 1e-9
    assert fit_thresholds(r, y, target=0.1, confidence=0.9, abstain_precision=0.7) == th  # deterministic


def _guarantee_draws(n_cal, draws, target, confidence, seed):
    """Share of calibration draws whose accept threshold breaks the target (exactly and on a big test set)."""
    rng = np.random.default_rng(seed)
    exact = empirical = 0
    for _ in range(draws):
        r = rng.uniform(size=n_cal)
        y = rng.uniform(size=n_cal) < r**2
        t = fit_thresholds(r, y, target=target, confidence=confidence).accept_below
        # With risk ~ U(0,1) and P(hallucinated | r) = r^2, the error rate among {r < t} is t^2 / 3.
        exact += t * t / 3 > target
        rt = rng.uniform(size=20_000)
        yt = rng.uniform(size=20_000) < rt**2
        acc = rt < t
        empirical += acc.any() and yt[acc].mean() > target
    return exact / draws, empirical / draws


def test_finite_sample_guarantee_holds_over_repeated_calibration_draws():
    delta = 0.1
    exact, empirical = _guarantee_draws(n_cal=400, draws=200, target=0.1, confidence=1 - delta, seed=11)
    # Binomial noise over 200 draws has sd ~0.02 at delta=0.1; allow 3 sd.
    assert exact <= delta + 0.065
    assert empirical <= delta + 0.065


def test_the_guarantee_is_not_trivial():
    # The fitted threshold should get reasonably close to the oracle t* = sqrt(0.3) ~ 0.55.
    rng = np.random.default_rng(5)
    ts = []
    for _ in range(30):
        r = rng.uniform(size=2000)
        y = rng.uniform(size=2000) < r**2
        ts.append(fit_thresholds(r, y, target=0.1, confidence=0.9).accept_below)
    assert 0.35 < float(np.median(ts)) < math.sqrt(0.3)


def test_uninformative_risks_accept_nothing_when_the_base_rate_is_too_high():
    rng = np.random.default_rng(7)
    accepted_any = 0
    for _ in range(100):
        r = rng.uniform(size=400)
        y = rng.uniform(size=400) < 0.3
        th = fit_thresholds(r, y, target=0.1, confidence=0.95)
        accepted_any += th.accept_below > 0.0
        if th.accept_below == 0.0:
            assert th.coverage == 0.0 and th.accepted_error_rate is None and "accept nothing" in th.method
    assert accepted_any / 100 <= 0.05


def test_uninformative_risks_accept_everything_when_the_base_rate_is_low():
    rng = np.random.default_rng(8)
    r = rng.uniform(size=1000)
    y = rng.uniform(size=1000) < 0.02
    th = fit_thresholds(r, y, target=0.1, confidence=0.95)
    assert th.accept_below == 1.0 and th.coverage == 1.0
    assert th.abstain_above == 1.0  # nothing is reliably a hallucination


def test_too_few_calibration_answers_accept_nothing_and_say_why():
    th = fit_thresholds([0.01] * 20, [False] * 20, target=0.1, confidence=0.95)
    assert th.accept_below == 0.0 and th.coverage == 0.0
    assert "at least 29 needed" in th.method
    # 29 perfect answers are just enough: 0.9 ** 29 < 0.05.
    assert fit_thresholds([0.01] * 29, [False] * 29, target=0.1, confidence=0.95).accept_below == 1.0


def test_looser_requirements_accept_more_on_average():
    rng = np.random.default_rng(9)
    coverage = {0.05: [], 0.2: []}
    for _ in range(40):
        r = rng.uniform(size=600)
        y = rng.uniform(size=600) < r**2
        for target in coverage:
            coverage[target].append(fit_thresholds(r, y, target=target, confidence=0.9).coverage)
    assert np.mean(coverage[0.2]) > np.mean(coverage[0.05])


def test_better_separated_risks_accept_more():
    rng = np.random.default_rng(10)
    r = rng.uniform(size=2000)
    u = rng.uniform(size=2000)
    weak = fit_thresholds(r, u < r, target=0.1, confidence=0.9)
    strong = fit_thresholds(r, u < r**4, target=0.1, confidence=0.9)
    assert strong.coverage > weak.coverage


def test_accept_never_exceeds_abstain_even_on_odd_data():
    rng = np.random.default_rng(12)
    for _ in range(50):
        r = rng.uniform(size=300)
        y = rng.uniform(size=300) < 0.5 + 0.5 * np.sin(20 * r)
        th = fit_thresholds(r, y, target=0.2, confidence=0.8, abstain_precision=0.6)
        assert th.accept_below <= th.abstain_above


def test_one_right_answer_among_the_riskiest_few_does_not_end_the_abstain_walk():
    n = 1000
    r = np.linspace(0.0, 1.0, n)  # rank = risk
    y = np.zeros(n, dtype=bool)
    y[-300:] = True  # the riskiest 300 are hallucinated ...
    y[-5] = False  # ... but the fifth riskiest, which a walk starting at the smallest testable set fails on
    y[:700:2] = True  # half of the rest
    th = fit_thresholds(r, y, target=0.2, confidence=0.9)
    assert 0.6 < th.abstain_above < 0.8, th.method  # the walk starts at the top 10% (min_coverage) and goes down
    assert th.abstained_precision_lcb >= 0.9
    assert fit_thresholds(r, y, target=0.2, confidence=0.9, min_coverage=0.0).abstain_above == 1.0


def test_fit_rejects_bad_input():
    with pytest.raises(InputError, match="one label per risk"):
        fit_thresholds([0.1, 0.2], [True])
    with pytest.raises(InputError, match=r"risks\[1\]"):
        fit_thresholds([0.1, float("nan")], [True, False])
    with pytest.raises(InputError, match=r"hallucinated\[0\]"):
        fit_thresholds([0.1], [2])
    with pytest.raises(InputError, match="target"):
        fit_thresholds([0.1], [True], target=0.0)
    with pytest.raises(InputError, match="non-empty"):
        fit_thresholds([], [])


def test_risk_coverage_curve_matches_a_brute_force_count():
    rng = np.random.default_rng(4)
    r = np.round(rng.uniform(size=200), 2)  # ties on purpose
    y = rng.uniform(size=200) < r
    curve = risk_coverage_curve(r, y)
    coverages = [c for c, _, _ in curve]
    thresholds = [t for _, _, t in curve]
    assert coverages == sorted(coverages) and len(set(coverages)) == len(coverages)
    assert thresholds == sorted(thresholds)
    assert coverages[-1] == 1.0 or r.max() == 1.0
    for coverage, error, t in curve:
        acc = r < t
        assert coverage == pytest.approx(acc.mean())
        assert error == pytest.approx(y[acc].mean())


def test_fitted_thresholds_route_end_to_end():
    policy = Policy.model_validate({"version": 1, "domains": {"d": {}}})
    th = fit_thresholds([0.1] * 60 + [0.9] * 60, [0] * 60 + [1] * 60)
    dp = policy.domain("d")
    assert decide(0.1, domain_policy=dp, thresholds=effective_thresholds(dp, th), policy=policy).route == "accept"
    assert decide(0.9, domain_policy=dp, thresholds=effective_thresholds(dp, th), policy=policy).route == "abstain"


# ---------------------------------------------------------------- domain choice and imports


def test_choose_domain():
    policy = make_policy(domain_min_similarity=0.35)
    assert choose_domain({"geo": 0.8, "rag": 0.5, "other": 0.99}, policy)[0] == "geo"
    name, why = choose_domain({"geo": 0.2}, policy)
    assert name is None and "0.2" in why and "0.35" in why
    assert choose_domain({"geo": 0.6, "rag": 0.6}, policy)[0] is None  # a tie is ambiguous
    # the reason names the runner-up, so a near tie shows in the record
    assert choose_domain({"geo": 0.4234, "rag": 0.4099}, policy)[1] == "domain 'geo' chosen with similarity 0.4234 (next: 'rag' 0.4099)"
    assert choose_domain({"geo": float("nan")}, policy)[0] is None
    # a router of one's own handing back an int too large for a float: no score (it raised OverflowError)
    assert choose_domain({"geo": 10**400, "rag": 0.5}, policy)[0] == "rag"
    assert choose_domain({}, policy)[0] is None


def test_a_printed_comparison_never_reads_false():
    """A legal team's trial: a hold reason printed "similarity 0.35 ... < domain_min_similarity 0.35" for 0.3486. A
    value and the thresholds it is compared with get the digits that tell them apart (4 significant at least), so the
    printed comparison holds as printed; equal numbers print alike."""
    import re

    from hguard._policy_values import _fmt_apart
    from hguard.ood import ood_problem

    assert _fmt_apart(0.3486, 0.35, digits=2) == ("0.349", "0.35")
    assert _fmt_apart(0.34996, 0.35) == ("0.34996", "0.35")
    assert _fmt_apart(0.9, 0.9) == ("0.9", "0.9") and _fmt_apart(0.1234, 0.5) == ("0.1234", "0.5")
    assert _fmt_apart(0.29999999, 0.3, 0.8) == ("0.29999999", "0.3", "0.8")
    assert _fmt_apart(0.1 + 0.2, 0.3) == (repr(0.1 + 0.2), "0.3")  # apart only at the last digit
    assert _fmt_apart(-0.0, 0.0) == ("0", "0")  # equal, so alike (a review: "-0.0" against "0.0")
    policy = make_policy(domain_min_similarity=0.35)
    assert choose_domain({"geo": 0.34996}, policy)[1] == "best domain 'geo' has similarity 0.34996 < domain_min_similarity 0.35"

    def holds(text: str) -> None:  # every comparison the text prints is true of the numbers printed
        between = re.fullmatch(r"risk (\S+) is between accept_below (\S+) and abstain_above (\S+) for .*", text)
        if between:
            r, low, high = map(float, between.groups())
            assert low <= r < high, text
            return
        pairs = re.findall(r"(-?\d[\d.e+-]*) (<|>=|>) (?:[a-z_]+ )?(-?\d[\d.e+-]*)", text)
        assert pairs, text
        for x, op, y in pairs:
            assert {"<": float(x) < float(y), ">=": float(x) >= float(y), ">": float(x) > float(y)}[op], text

    th = manual(accept=0.3, abstain=0.8)
    for risk in (0.29999, 0.30001, 0.79999, 0.8, 0.80001):
        for reason in route(risk, thresholds=th).reasons:
            if "risk " in reason:
                holds(reason)
    assert route(0.79999, thresholds=th).reasons[-1].startswith(
        "risk 0.79999 is between accept_below 0.3 and abstain_above 0.8 for")
    (blocked,) = [r for r in route(0.29, domain="rag", thresholds=th, grounding=0.39996).reasons if "grounding " in r]
    assert blocked == "grounding support 0.39996 < min_grounding 0.4 for domain 'rag'"
    holds(ood_problem(2.00001, {"threshold": 2.0, "quantile": 0.99}))


def test_routing_path_imports_neither_torch_nor_numpy():
    code = (
        "import sys, hguard\n"
        "before = set(sys.modules)\n"
        "import hguard.policy as p\n"
        "pol = p.load_policy(sys.argv[1])\n"
        "dp = pol.domain('literature')\n"
        "th = p.effective_thresholds(dp, None)\n"
        "risk = p.apply_grounding(p.merge_risk({'a': 1.0}, {'features': ['a'], 'mean': [0.0], 'scale': [1.0],"
        " 'coef': [1.0], 'intercept': 0.0}), 0.5, 0.5)\n"
        "p.decide(risk, domain_policy=dp, thresholds=th, policy=pol)\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new & {'torch', 'numpy', 'scipy', 'sklearn'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"


def test_walk_starts_at_min_coverage_so_a_few_early_errors_do_not_end_it():
    # 200 answers sorted by risk: 3 hallucinations among the 8 lowest, 2 more up to 60% coverage,
    # then only hallucinations. Starting where the sample is smallest (11 answers) fails at once;
    # starting at 20% coverage the walk reaches about 60-75% coverage.
    risks = [i / 200 for i in range(200)]
    y = [1 if i in (0, 3, 7, 50, 90) or i >= 120 else 0 for i in range(200)]
    strict = fit_thresholds(risks, y, target=0.2, confidence=0.9, min_coverage=0.0)
    assert strict.accept_below == 0.0 and strict.coverage == 0.0
    started = fit_thresholds(risks, y, target=0.2, confidence=0.9, min_coverage=0.2)
    assert 0.6 <= started.coverage <= 0.75 and started.accepted_error_ucb <= 0.2 + 1e-9
    with pytest.raises(InputError, match="min_coverage"):
        fit_thresholds(risks, y, min_coverage=1.0)


def test_an_answer_that_declines_abstains_whatever_its_risk():
    # A low risk would accept; the model's own "I don't know" asserts nothing the thresholds certify.
    assert route(0.01).route == "accept"
    d = route(0.01, declined="i dont know")
    assert d.route == "abstain" and any("declined to answer ('i dont know')" in r for r in d.reasons)
    empty = route(0.01, declined="")
    assert empty.route == "abstain" and any("an answer without a word in it" in r for r in empty.reasons)
    # a failed score does not turn it into review: abstain is the stricter outcome, every reason kept,
    # and the last one says which holds (the review reason above it does not)
    broken = route(None, declined="context does not say")
    assert broken.route == "abstain" and any("no risk score" in r for r in broken.reasons)
    assert broken.reasons[-1] == "abstain: of the routes the reasons above give, abstaining is the stricter and holds"


def test_a_request_no_calibration_can_score_routes_to_review_with_that_one_reason():
    why = "domain 'geo' is calibrated closed-book only, and a request with context needs a RAG calibration"
    for policy in (make_policy(), make_policy(unknown_domain="abstain")):
        d = decide(None, domain_policy=policy.domain("strict"), thresholds=None, policy=policy, unscored=why)
        assert d.route == "review" and d.reasons == (why,)


def test_the_reason_no_calibration_scores_the_request_comes_before_the_findings_on_the_answer():
    """A finance team's trial: `hguard review list` showed "out of distribution ... similarity 0.32" truncated and
    hid the reason that decided the route ("calibrated closed-book only ... needs calibrate-rag") as "(+1 more)". The
    unscored reason is the first (after a declined answer's, which abstains), so the list's reason column shows it."""
    from hguard.review.queue import ReviewItem

    why = "domain 'geo' is calibrated closed-book only, and a request with context needs a RAG calibration"
    far = "out of distribution: question far from domain 'geo': similarity 0.32 < 0.35"
    hold = "knowledge conflict: without the context the model finds this answer unlikely"
    policy = make_policy()
    d = decide(None, domain_policy=policy.domain("strict"), thresholds=None, policy=policy, unscored=why,
               problems=[far], holds=[hold])
    assert d.route == "review" and d.reasons == (why, far, hold)
    item = ReviewItem(**{**{f: None for f in ReviewItem.__dataclass_fields__}, "reasons": [
        "domain 'geo' chosen with similarity 0.79 (next: 'chem' 0.41)", *d.reasons]})
    assert item.why == why
    declined = decide(None, domain_policy=policy.domain("strict"), thresholds=None, policy=policy, unscored=why,
                      problems=[far], declined="i dont know")
    assert declined.route == "abstain" and declined.reasons[0].startswith("the model declined") and declined.reasons[1] == why


def test_a_review_says_in_words_when_no_accept_threshold_was_certified():
    none_certified = route(0.2, thresholds=manual(accept=0.0))
    assert none_certified.route == "review"
    assert any("no accept threshold is certified" in r and "0.1" in r and "0.95" in r for r in none_certified.reasons)
    # the way out it names is not offered as a fix: a bank trial set accept_below = 0.1 and got a wrong answer accepted
    said = next(r for r in none_certified.reasons if "no accept threshold is certified" in r)
    assert "or the policy sets accept_below" not in said and "without a guarantee" in said
    assert not any("no accept threshold" in r for r in route(0.5).reasons)  # a certified one: the numbers say it
    by_hand = make_policy(domains={"geo": {"accept_below": 0.0, "abstain_above": 0.9}})
    assert not any("no accept threshold" in r for r in route(0.2, policy=by_hand, thresholds=manual(accept=0.0)).reasons)


def test_a_hold_never_accepts_but_keeps_the_risk_against_the_thresholds():
    hold = "knowledge conflict: ...; knowledge_conflict = 'review' (untrusted retrieval)"
    low, high = manual().accept_below / 2, (manual().abstain_above + 1.0) / 2
    d = route(low, holds=[hold])
    assert d.route == "review" and d.risk == low and d.reasons[0] == hold  # no "scoring problem" prefix
    assert any("review for the reason above (never accepted)" in r for r in d.reasons), d.reasons
    d = route(high, holds=[hold])
    assert d.route == "abstain" and any(">= abstain_above" in r for r in d.reasons), d.reasons
    # with a scoring problem as well, the risk is not read: review, both reasons kept
    d = route(high, holds=[hold], problems=["probe failed"])
    assert d.route == "review" and hold in d.reasons and "scoring problem: probe failed" in d.reasons


def test_the_policy_names_its_model_and_a_path_resolves_against_the_policy_file(tmp_path):
    from hguard.policy import load_policy

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base.gguf").write_bytes(b"")
    for value, expected in (("default", "default"), ("models/base.gguf", str(tmp_path / "models" / "base.gguf")),
                            ("./models", str(tmp_path / "models")), ("HuggingFaceTB/SmolLM2-360M-Instruct",
                                                                     "HuggingFaceTB/SmolLM2-360M-Instruct")):
        (tmp_path / "policy.toml").write_text(f'version = 1\nmodel = "{value}"\n')
        assert load_policy(tmp_path / "policy.toml").model == expected
    (tmp_path / "policy.toml").write_text("version = 1\nmodel = 3\n")
    with pytest.raises(PolicyError, match="model"):
        load_policy(tmp_path / "policy.toml")


def test_the_guard_loads_the_policy_model_unless_told_another(tmp_path, monkeypatch):
    import hguard.guard as guard_module
    from hguard.guard import Guard
    from hguard.policy import load_policy
    from hguard.testing import tiny_model

    asked = []
    monkeypatch.setattr(guard_module, "load_model", lambda source: asked.append(source) or tiny_model("llama"))
    (tmp_path / "policy.toml").write_text('version = 1\nmodel = "mine.gguf"\n')
    pol = load_policy(tmp_path / "policy.toml")
    Guard.from_policy(pol)
    Guard.from_policy(pol, model="default")
    assert asked == [str(tmp_path / "mine.gguf"), "default"]


def test_a_policy_built_in_code_says_where_its_unnamed_log_and_queue_go(tmp_path, monkeypatch):
    """An application team's trial: a Policy built in code without [audit] / [review] wrote hguard-audit.jsonl and
    hguard-review.sqlite3 into the working folder (a test suite's: the repository, shared by every test and worker),
    without a word. A guard says so at start, naming both files and the fix; a policy that names them, one given a
    base_dir, a policy file's, and a log and queue given to the guard are not warned about."""
    import warnings

    from hguard.audit import AuditLog
    from hguard.guard import Guard
    from hguard.policy import Policy, load_policy
    from hguard.review.queue import ReviewQueue
    from hguard.testing import tiny_model

    monkeypatch.chdir(tmp_path)
    lm = tiny_model("llama")

    def said(policy, **kw) -> list[str]:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            Guard.from_policy(policy, lm=lm, **kw)
        return [str(x.message) for x in w if "built in code and names no" in str(x.message)]

    [one] = said(Policy.model_validate({"version": 1}))
    assert (f"keeps its audit log in {str(tmp_path / 'hguard-audit.jsonl')!r} and its review queue in "
            f"{str(tmp_path / 'hguard-review.sqlite3')!r}: the working folder of the process") in one, one
    assert ('name them in the policy ("audit": {"path": FILE}, "review": {"queue": FILE}), or build it with '
            "Policy.from_mapping(data, base_dir=FOLDER)") in one, one
    [one] = said(Policy.from_mapping({"version": 1, "audit": {"path": "mine.jsonl"}}))  # named: as any path in Python
    assert "names no review queue, so the guard keeps its review queue in" in one and "audit log" not in one, one
    assert said(Policy.from_mapping({"version": 1}, base_dir=tmp_path / "b")) == []
    # the default names named (as a log's name is kept in a policy of one's own), or the working folder chosen as the
    # base_dir: named, so no word saying they are not (a review: it fired for both, its words untrue)
    assert said(Policy.from_mapping({"version": 1, "audit": {"path": "hguard-audit.jsonl"},
                                     "review": {"queue": "hguard-review.sqlite3"}})) == []
    assert said(Policy.from_mapping({"version": 1}, base_dir=".")) == []
    assert said(Policy.model_validate({"version": 1}, context={"base_dir": Path(".")})) == []
    [one] = said(Policy.from_mapping({"version": 1, "review": {"queue": "hguard-review.sqlite3"}}))
    assert "names no audit log, so the guard keeps its audit log in" in one and "review queue" not in one, one
    [one] = said(Policy.from_mapping({"version": 1}).model_copy(update={"review": {"queue": "hguard-review.sqlite3"}}))
    assert "names no audit log," in one and "review queue" not in one, one
    assert said(Policy.from_mapping({"version": 1, "audit": {"path": "a.jsonl"}, "review": {"queue": "q.sqlite3"}})) == []
    (tmp_path / "policy.toml").write_text("version = 1\n")
    assert said(load_policy(tmp_path / "policy.toml")) == []
    assert said(Policy.model_validate({"version": 1}), audit=AuditLog(tmp_path / "given.jsonl"),
                review_queue=ReviewQueue(tmp_path / "given.sqlite3")) == []


def test_a_domain_wrong_on_nearly_every_answer_says_it_abstains_on_nearly_all():
    # 97% of the calibration answers hallucinated: abstaining on every one meets the abstain precision, and
    # the method and each abstain reason say what that means
    risks = [i / 200 for i in range(200)]
    labels = [0 if i < 6 else 1 for i in range(200)]
    th = fit_thresholds(risks, labels, target=0.1, confidence=0.95, abstain_precision=0.9)
    assert th.abstained_share >= 0.95 and "abstains on" in th.method and "right ones included" in th.method
    why = route(0.5, thresholds=th).reasons
    assert any("abstain_above" in r and "the domain abstains on nearly every answer" in r for r in why), why
    # a threshold that abstains on few answers keeps the plain reason
    sep = fit_thresholds([0.1] * 60 + [0.9] * 60, [0] * 60 + [1] * 60, target=0.1, confidence=0.95)
    plain = route(0.95, thresholds=sep).reasons
    assert any("abstain_above" in r for r in plain) and not any("nearly every answer" in r for r in plain), plain


def test_a_policy_model_that_does_not_exist_is_named_with_the_policy_file(tmp_path):
    from hguard.errors import ModelNotFoundError
    from hguard.guard import Guard

    (tmp_path / "policy.toml").write_text('version = 1\nmodel = "models/gema.gguf"\n')
    with pytest.raises(ModelNotFoundError, match=r"gema\.gguf.*does not exist.*from `model` in the policy file"):
        Guard.from_policy(tmp_path / "policy.toml")


def test_a_threshold_certified_per_family_must_hold_in_every_family():
    # family "a": 300 answers, low risks, 5% hallucinated; family "b": 40 answers at the same low risks,
    # half hallucinated. Pooled, the accepted rate stays near 10%; in family "b" it is 50%.
    import random

    rng = random.Random(0)
    risks, labels, fams = [], [], []
    for fam, n, p in (("a", 300, 0.05), ("b", 40, 0.5)):
        for _ in range(n):
            risks.append(rng.uniform(0.0, 0.5))
            labels.append(int(rng.random() < p))
            fams.append(fam)
    for _ in range(200):  # high-risk answers of a third family, all hallucinated: never below the thresholds
        risks.append(rng.uniform(0.8, 1.0))
        labels.append(1)
        fams.append("c")
    pooled = fit_thresholds(risks, labels, target=0.2, confidence=0.9)
    per = fit_thresholds(risks, labels, target=0.2, confidence=0.9, families=fams)
    assert pooled.accept_below > 0.3  # the pool passes
    assert per.accept_below < pooled.accept_below and "intersection-union" in per.method
    # where it does accept, family b's accepted answers are within what the test allows
    import numpy as np

    r, y, f = np.array(risks), np.array(labels), np.array(fams)
    acc_b = (r < per.accept_below) & (f == "b")
    assert acc_b.sum() == 0 or y[acc_b].mean() <= 0.5
    # a family with no answer below a candidate ("c") does not block it: without "b", every answer of "a" is
    # accepted, and none of "c" (the pool alone goes on to accept some of c's, all wrong)
    keep = f != "b"
    ac = fit_thresholds(r[keep], y[keep], target=0.2, confidence=0.9, families=f[keep].tolist())
    assert r[f == "a"].max() < ac.accept_below <= r[f == "c"].min()
    assert fit_thresholds(r[keep], y[keep], target=0.2, confidence=0.9).accept_below > r[f == "c"].min()
    with pytest.raises(InputError, match="families has 3 names"):
        fit_thresholds(risks, labels, families=["a", "b", "c"])
    # where the pool passes and a family cannot, the method names the family and its count
    few = fit_thresholds([0.01 * i for i in range(1, 12)], [0] * 11, target=0.2, confidence=0.9,
                         families=["a"] * 10 + ["b"])
    assert few.accept_below == 0.0 and "family 'b' cannot be certified: 0 of its 1 answers below it are hallucinations, too few answers to show the target" in few.method
    assert fit_thresholds([0.01 * i for i in range(1, 12)], [0] * 11, target=0.2, confidence=0.9).accept_below > 0


def test_a_risk_past_the_abstain_threshold_under_a_fingerprint_mismatch_reviews_and_says_so():
    high = (manual().abstain_above + 1.0) / 2
    d = route(high, fingerprint_problems=["history_fingerprint: the probe records none"])
    assert d.route == "review" and d.risk == high
    assert any(">= abstain_above" in r and "not certified for this answer" in r and "review, not abstain" in r
               for r in d.reasons), d.reasons
    d = route(manual().accept_below / 2, fingerprint_problems=["history_fingerprint: the probe records none"])
    assert d.route == "review" and not any("abstain_above" in r for r in d.reasons)


@pytest.mark.parametrize("seed", ['""', '"   "', '"\\t"'])
def test_a_blank_spot_check_seed_is_refused(tmp_path, seed):
    """The seed keys which answers are spot-checked: blanks are no secret and look like a value left out."""
    with pytest.raises(PolicyError, match=r"monitor\.seed"):
        load_policy(write(tmp_path, "p.toml", f"version = 1\n[monitor]\nseed = {seed}\n"))


def test_a_per_family_certificate_says_which_families_it_tested():
    """A new user's domain: "the accept threshold must hold in each of the 4 families at once" passed because three
    families had no answer below it at all; nothing said only one was tested."""
    from hguard.policy import fit_thresholds

    r = [0.05] * 12 + [0.5] * 18 + [0.6] * 14 + [0.7] * 10 + [0.9] * 30
    y = [0] * 12 + [0] * 9 + [1] * 9 + [0] * 7 + [1] * 7 + [1] * 10 + [1] * 30
    fam = ["capital"] * 30 + ["term"] * 14 + ["general"] * 10 + ["invented"] * 30
    t = fit_thresholds(r, y, target=0.2, confidence=0.9, families=fam)
    assert t.accept_below == 0.5
    assert ("1 of the 4 families have calibration answers below it (capital); the other 3 have none, so nothing of "
            "theirs was accepted or tested") in t.method
    pooled = fit_thresholds(r, y, target=0.2, confidence=0.9)
    assert "families have calibration answers below it" not in pooled.method


def _accept_above_the_abstain_walk():
    """Risks and labels where the certified accept threshold (0.89) lies above where the abstain walk starts (its
    11 answers at or above it are fewer than the 16 the abstain test needs at 0.9 / confidence 0.8), the walk itself
    certifying 0.75 (25 answers, all hallucinated)."""
    r = np.linspace(0, 0.99, 100)
    y = np.zeros(100, dtype=bool)
    y[[40, 50, 60, 70]] = True
    y[75:] = True
    return r, y


def test_an_abstain_threshold_raised_past_accept_below_is_one_the_walk_certified_and_comes_back_when_accept_goes():
    """An auditor's trial: abstain_above was raised to accept_below (a value the abstain walk never tested: 15 answers
    at or above it, 16 needed), the accept threshold was then withdrawn, and the raised value stayed in force with a
    lower bound of 0.898 < the required 0.9."""
    from hguard._policy_fit import withdrawn_on_held_out

    r, y = _accept_above_the_abstain_walk()
    th = fit_thresholds(r, y, target=0.25, confidence=0.8, abstain_precision=0.9)
    assert th.accept_below == pytest.approx(0.89)
    assert th.abstain_above == 1.0, th.method  # no certified threshold at or above 0.89: abstain practically never
    assert th.certified_abstain == {"abstain_above": 0.75, "abstained_share": 0.25,
                                    "abstained_precision_lcb": pytest.approx(0.9377, abs=1e-4)}
    assert "raised from its certified 0.75 to 1" in th.method
    # where a certified one lies at or above accept_below, it is raised to that one (16 answers, tested and passed)
    th2 = fit_thresholds(r, y, target=0.2, confidence=0.8, abstain_precision=0.9)
    assert th2.accept_below == pytest.approx(0.84) and th2.abstain_above == pytest.approx(0.84)
    assert th2.abstained_precision_lcb >= 0.9
    for t in (th, th2):
        for withdrawn in (t.accepting_nothing("withdrawn: by hand"),
                          withdrawn_on_held_out(t, [0.1] * 10, [1] * 10)):  # the held-out split rejects it
            assert withdrawn.accept_below == 0.0 and withdrawn.abstain_above == 0.75, withdrawn.method
            assert withdrawn.abstained_precision_lcb >= 0.9 and withdrawn.abstained_share == 0.25
            assert withdrawn.certified_abstain is None and "abstain_above back to its certified 0.75" in withdrawn.method
        # a manual accept_below other than the fitted one: the abstain side it was raised for goes back too
        manual_accept = effective_thresholds(DomainPolicy(accept_below=0.5), t)
        assert (manual_accept.accept_below, manual_accept.abstain_above) == (0.5, 0.75)
        assert manual_accept.abstained_precision_lcb >= 0.9 and manual_accept.certified_abstain is None
        assert effective_thresholds(DomainPolicy(abstain_above=t.abstain_above), t).certified_abstain == t.certified_abstain
        # a manual accept_below above the certified abstain threshold: raised only to a certified one (a review: it
        # was raised to the manual number itself, abstaining on 14 answers whose lower bound was 0.891 < 0.9)
        for manual in (0.86, 0.95):
            m = effective_thresholds(DomainPolicy(accept_below=manual), t)
            assert m.accept_below == manual and m.abstain_above in (t.abstain_above, 1.0), m.method
            assert m.abstain_above >= manual
            if m.abstain_above < 1.0:
                assert m.abstained_precision_lcb >= 0.9 and m.abstain_above == t.abstain_above
        assert Thresholds.from_dict(t.to_dict()) == t  # the probe file keeps it
    assert "certified_abstain" not in fit_thresholds(r, y, target=0.1, confidence=0.8).to_dict()  # read as before
    with pytest.raises(InputError, match="certified_abstain must be None or a mapping"):
        dataclasses.replace(th, certified_abstain={"abstain_above": 0.75})


def test_a_stored_abstain_threshold_an_older_release_raised_to_accept_below_is_replaced_by_the_certified_one():
    from hguard._policy_fit import stored_abstain_recertified

    r, y = _accept_above_the_abstain_walk()
    fitted = fit_thresholds(r, y, target=0.25, confidence=0.8, abstain_precision=0.9)
    # as the older release stored it: raised to accept_below itself, then the accept threshold withdrawn
    old = dataclasses.replace(fitted, abstain_above=fitted.accept_below, certified_abstain=None, method=(
        "learn-then-test; abstain_above raised to accept_below")).accepting_nothing("withdrawn: held-out")
    assert old.abstain_above == pytest.approx(0.89)
    back = stored_abstain_recertified(old, r.tolist(), y.astype(int).tolist())
    assert back.accept_below == 0.0 and back.abstain_above == 0.75 and back.abstained_precision_lcb >= 0.9
    assert "replaced at load by the certified 0.75" in back.method
    kept = dataclasses.replace(fitted, abstain_above=fitted.accept_below, certified_abstain=None,
                               method="learn-then-test; abstain_above raised to accept_below")
    assert stored_abstain_recertified(kept, r.tolist(), y.astype(int).tolist()) == dataclasses.replace(
        fitted, method=stored_abstain_recertified(kept, r.tolist(), y.astype(int).tolist()).method)
    assert stored_abstain_recertified(old, None, None).abstain_above == 1.0  # no scores to certify one with
    assert stored_abstain_recertified(fitted, None, None) is fitted


def test_a_built_policys_domains_and_probes_refuse_init_called_again(tmp_path):
    """A review's trial: p.domains.__init__(z=dp) added a domain and p.probes.__init__([path]) replaced the folders
    of a frozen policy in place (the other ways to change them in place were refused). Copies are still built."""
    import copy
    import pickle

    (tmp_path / "p1").mkdir()
    p = Policy.model_validate({"version": 1, "probes": [str(tmp_path / "p1")], "domains": {"geo": {}}})
    dp = p.domains["geo"]
    with pytest.raises(PolicyError, match=r"Policy.domains cannot be changed in place"):
        p.domains.__init__(z=dp)
    with pytest.raises(PolicyError, match=r"Policy.probes cannot be changed in place"):
        p.probes.__init__([tmp_path])
    assert list(p.domains) == ["geo"] and p.probes == [tmp_path / "p1"]
    for again in (copy.deepcopy(p), copy.copy(p), pickle.loads(pickle.dumps(p)), p.model_copy(deep=True)):
        assert again == p
        with pytest.raises(PolicyError):
            again.domains.__init__(z=dp)


@pytest.mark.parametrize("body, words", [
    ('[generation]\nmax_new_tokens = 32\nsystem_prompt = "a"\nmax_new_tokens = "32"\n',
     "the key max_new_tokens at line 5 is set twice in its table (first at line 3); keep one of them"),
    ('[domains.geo]\naccept_below = 0.1\n[domains.geo]\nabstain_above = 0.9\n',
     "the table [domains.geo] is written twice (again at line 4); keep one [domains.geo] and put its keys under it"),
])
def test_a_key_or_table_set_twice_is_named(tmp_path, body, words):
    """A bad-input trial: a second `max_new_tokens = "32"` was refused as "Cannot overwrite a value (at line 64,
    column 20)": the line, not the key, nor that it is set twice."""
    from hguard.errors import PolicyError
    from hguard.policy import load_policy

    (tmp_path / "policy.toml").write_text("version = 1\n" + body)
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "policy.toml")
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("given, fix", [
    ({"version": 1}, "got dict {'version': 1}; build a Policy from it with hguard.Policy.from_mapping(...)"),
    (b"policy.toml", "got bytes b'policy.toml'; pass the path of a .toml or .yaml policy file as a str or pathlib.Path"),
    (None, "got NoneType None; pass the path of a .toml or .yaml policy file as a str or pathlib.Path"),
])
def test_load_policy_given_something_other_than_a_path_says_what_it_takes(given, fix):
    """A bad-input trial: load_policy({...}) and load_policy(b"...") failed inside pathlib with a bare TypeError."""
    with pytest.raises(PolicyError) as info:
        load_policy(given)
    assert str(info.value) == f"load_policy takes a policy file's path, {fix}"
