"""Loaders for the public datasets in ../shared/data (read in place, never copied here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from research import public
from hguard.calibrate.data import Example
from hguard.errors import DataError, InputError


def _shared_data() -> Path | None:
    try:
        return public.shared_data_dir()
    except DataError:
        return None


SHARED = _shared_data()
needs_data = pytest.mark.skipif(
    SHARED is None,
    reason="public datasets not found (../shared/data next to the repo, or $HGUARD_SHARED_DATA); "
    "these tests read them in place",
)


def check_examples(rows: list[Example], domain: str, count: int) -> None:
    assert len(rows) == count
    assert all(isinstance(r, Example) and r.domain == domain for r in rows)
    ids = [r.id for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"{domain}-") for i in ids)


@needs_data
def test_triviaqa() -> None:
    rows = public.load_triviaqa()
    check_examples(rows, "triviaqa", 1000)
    first = rows[0]
    assert first.id == "triviaqa-test_6233"
    assert "Mark Twain" in first.answers and "Samuel Clemens" in first.answers
    # the upstream CSV quoting is undone, and the raw form kept
    assert first.question == 'Who wrote "A cauliflower is nothing but a cabbage with a college education"?'
    assert first.meta["raw_question"].startswith('"Who wrote ""A cauliflower')
    assert rows[1].question == "Cleeve Hill is the highest point in which range of English hills?"
    assert "raw_question" not in rows[1].meta


@needs_data
def test_nq_open() -> None:
    with pytest.warns(UserWarning) as caught:
        rows = public.load_nq_open()
    # 3,610 upstream rows; two are answered only '---' and ')', which no reply can match: left out
    # with a warning that names each line, not silently.
    left_out = sorted(str(w.message).split(":")[0] for w in caught if "judge can match" in str(w.message))
    assert left_out == ["nq_open/NQ-open.dev.jsonl line 291", "nq_open/NQ-open.dev.jsonl line 364"]
    check_examples(rows, "nq_open", 3608)
    assert "nq_open-00290" not in {r.id for r in rows}
    assert rows[0].id == "nq_open-00000"
    assert rows[0].question == "when was the last time anyone was on the moon"
    assert rows[0].answers == ["14 December 1972 UTC", "December 1972"]


@needs_data
def test_popqa_keeps_popularity() -> None:
    rows = public.load_popqa()
    check_examples(rows, "popqa", 1000)
    first = rows[0]
    assert first.id == "popqa-test_10207"
    assert first.answers == ["Ralph Rainger", "Ralph Reichenthal"]
    assert first.meta["prop"] == "composer" and first.meta["s_pop"] == 1381


@needs_data
@pytest.mark.parametrize(("split", "count"), [("train", 1250), ("valid", 338), ("test", 1397)])
def test_arc_da(split: str, count: int) -> None:
    rows = public.load_arc_da(split)
    check_examples(rows, "arc_da", count)
    assert rows[0].id == f"arc_da-{split}-00000"
    if split == "test":
        assert rows[0].answers[:2] == ["plates shifting", "tectonic shifts"]
    else:
        assert len(rows[0].answers) == 1


def test_arc_da_rejects_unknown_split() -> None:
    with pytest.raises(InputError, match="split must be one of"):
        public.load_arc_da("dev")


@needs_data
def test_selfaware_marks_unanswerable_questions() -> None:
    rows = public.load_selfaware()
    check_examples(rows, "selfaware", 3369)
    unanswerable = [r for r in rows if r.kind == "unanswerable"]
    assert len(unanswerable) == 1032
    assert all(r.answers == [] for r in unanswerable)
    assert all(r.answers for r in rows if r.kind == "qa")
    only = public.load_selfaware(n=5, unanswerable_only=True)
    assert [r.id for r in only] == [r.id for r in unanswerable[:5]]


@needs_data
def test_halueval_rows_and_examples() -> None:
    rows = public.load_halueval_rows()
    assert len(rows) == 500
    assert set(rows[0]) == {"id", "question", "context", "right_answer", "hallucinated_answer"}
    assert rows[0]["right_answer"] == "Arthur's Magazine"
    assert rows[0]["context"].startswith("Arthur's Magazine (1844–1846)")
    examples = public.load_halueval(n=3)
    check_examples(examples, "halueval", 3)
    assert examples[0].context == rows[0]["context"]
    assert examples[0].answers == ["Arthur's Magazine"]
    assert examples[0].meta == {"hallucinated_answer": rows[0]["hallucinated_answer"]}


@needs_data
@pytest.mark.parametrize(("split", "count"), [("val", 225), ("test", 226)])
def test_conflictnq(split: str, count: int) -> None:
    rows = public.load_conflictnq(split)
    assert len(rows) == count
    assert len({r["id"] for r in rows}) == count
    r = rows[0]
    assert set(r) == {"id", "question", "cleaned_question", "context", "real_answer", "real_short_answer",
                      "fake_answer", "fake_short_answer", "fake_context", "fake_passages"}
    assert all(isinstance(p, str) and p for p in r["fake_passages"])
    assert r["fake_context"] == "\n\n".join(r["fake_passages"])
    if split == "val":
        assert r["real_short_answer"] == "August 8, 2014" and r["fake_short_answer"] == "1998"
        assert "August 8 , 2014" in r["context"]
        assert len(r["fake_passages"]) == 5


def test_conflictnq_rejects_unknown_split() -> None:
    with pytest.raises(InputError, match="split must be 'val' or 'test'"):
        public.load_conflictnq("train")


@needs_data
def test_n_takes_the_first_rows_and_loading_is_deterministic() -> None:
    assert [r.id for r in public.load_nq_open(n=3)] == ["nq_open-00000", "nq_open-00001", "nq_open-00002"]
    assert public.load_triviaqa(n=10) == public.load_triviaqa()[:10]


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "3"])
def test_bad_n_is_rejected(n: object) -> None:
    with pytest.raises(InputError, match="n must be None"):
        public.load_nq_open(n=n)  # type: ignore[arg-type]


# --- location and integrity checks, on a small stand-in folder -----------------------------------


def make_fake_triviaqa(root: Path, lines: list[dict], manifest_sha: str | None = None) -> Path:
    folder = root / "triviaqa"
    folder.mkdir(parents=True)
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    (folder / "triviaqa_test_1k.jsonl").write_bytes(data)
    sha = manifest_sha or hashlib.sha256(data).hexdigest()
    (folder / "MANIFEST.md").write_text(f"# triviaqa\n\n## sha256\n- triviaqa_test_1k.jsonl {len(data)} bytes {sha}\n")
    return folder


def test_env_var_points_to_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_triviaqa(tmp_path, [{"id": "t1", "question": "Capital of France?", "golden_answers": ["Paris"]}])
    monkeypatch.setenv(public.ENV_VAR, str(tmp_path))
    rows = public.load_triviaqa()
    assert [(r.id, r.answers) for r in rows] == [("triviaqa-t1", ["Paris"])]


def test_changed_file_fails_the_manifest_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_triviaqa(tmp_path, [{"id": "t1", "question": "Q?", "golden_answers": ["A1"]}], manifest_sha="0" * 64)
    monkeypatch.setenv(public.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="does not match 0{64}"):
        public.load_triviaqa()


def test_missing_folder_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(public.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="HGUARD_SHARED_DATA=.*is not a directory"):
        public.load_triviaqa()
    monkeypatch.setenv(public.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="dataset file not found"):
        public.load_popqa()


def test_upstream_row_that_does_not_fit_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_triviaqa(tmp_path, [{"id": "t1", "question": "Q?", "golden_answers": []}])
    monkeypatch.setenv(public.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="triviaqa_test_1k.jsonl line 1: row does not fit"):
        public.load_triviaqa()
