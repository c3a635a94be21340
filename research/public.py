"""Loaders for the public datasets kept outside the project in `../shared/data/`.

The datasets are read in place, never copied into the project (their licences differ from ours:
see each folder's MANIFEST.md). The folder is `$HGUARD_SHARED_DATA` when set, otherwise
`<repo root>/../shared/data`. Each file is checked against the sha256 in its MANIFEST.md, so results
computed on these sets refer to known bytes.

Question sets come back as `Example` rows with a fixed domain and ids derived from the upstream id
(or the row position where upstream has none), so the same row always has the same id. `n` takes the
first n rows in file order. HaluEval and ConflictNQ, whose answers are sentences rather than short
aliases, come back as plain dict rows.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hguard.calibrate.data import Example
from hguard.errors import DataError, InputError

__all__ = [
    "ENV_VAR",
    "shared_data_dir",
    "load_triviaqa",
    "load_nq_open",
    "load_popqa",
    "load_arc_da",
    "load_selfaware",
    "load_halueval",
    "load_halueval_rows",
    "load_conflictnq",
]

ENV_VAR = "HGUARD_SHARED_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The folder holding the public datasets; DataError with the fix if it is missing."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"{ENV_VAR}={env!r} is not a directory; point it at the folder that holds triviaqa/, nq_open/, ..."
                f" or unset it to use {_REPO_ROOT.parent / 'shared' / 'data'}"
            )
        return path
    path = (_REPO_ROOT.parent / "shared" / "data").resolve()
    if not path.is_dir():
        raise DataError(
            f"public datasets not found at {path}; put them there (one folder per dataset, each with MANIFEST.md)"
            f" or set {ENV_VAR} to their folder"
        )
    return path


_SHA_LINE = re.compile(r"^-\s+(\S+)\s+\d+\s+bytes\s+([0-9a-f]{64})\s*$", re.MULTILINE)
# Some manifests list files in a table whose first cell is the file name and last cell its sha256.
_SHA_ROW = re.compile(r"^\|\s*([^|\s]+)\s*\|.*\|\s*([0-9a-f]{64})\s*\|\s*$", re.MULTILINE)


def _verified_bytes(folder: str, name: str) -> bytes:
    root = shared_data_dir() / folder
    path = root / name
    if not path.is_file():
        raise DataError(f"{path}: dataset file not found; restore it from the source named in {root / 'MANIFEST.md'}")
    manifest = root / "MANIFEST.md"
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest not found; it must list '{name}' with its sha256")
    st = path.stat()
    return _read_checked(str(path), str(manifest), name, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _read_checked(path: str, manifest: str, name: str, _mtime_ns: int, _size: int) -> bytes:
    # Keyed on the full path and the file's mtime and size, so each file is hashed once per process
    # but a changed file or another HGUARD_SHARED_DATA is read afresh.
    text = Path(manifest).read_text(encoding="utf-8")
    expected = {**dict(_SHA_ROW.findall(text)), **dict(_SHA_LINE.findall(text))}
    if name not in expected:
        raise DataError(f"{manifest}: no sha256 line for '{name}'; add '- {name} <bytes> bytes <sha256>' under '## sha256'")
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected[name]:
        raise DataError(
            f"{path}: sha256 {actual} does not match {expected[name]} in {manifest};"
            " the file was changed or truncated, restore it from the source named in the manifest"
        )
    return data


def _jsonl(folder: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    text = _verified_bytes(folder, name).decode("utf-8")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{folder}/{name} line {lineno}: not valid JSON ({e.msg}); restore the file") from None
    return rows


def _csv(folder: str, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_verified_bytes(folder, name).decode("utf-8"), newline="")))


def _check_n(n: int | None) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InputError(f"n must be None (all rows) or a positive int (got {n!r})")


def _head(rows: list[Any], n: int | None) -> list[Any]:
    _check_n(n)
    return rows if n is None else rows[:n]


def _example(where: str, **fields: Any) -> Example | None:
    """The row as an Example; None (with a warning naming it) for an upstream row whose answers hold no
    word the judge could match (NQ-Open has one answered '---'): it can be neither right nor wrong."""
    try:
        return Example(**fields)
    except ValidationError as e:
        if any(err["type"] == "hguard_answers_unjudgeable" for err in e.errors()):
            warnings.warn(
                f"{where}: answers {fields.get('answers')!r} hold no word the judge can match; row left out",
                UserWarning,
                stacklevel=3,
            )
            return None
        raise DataError(f"{where}: row does not fit the calibration format ({e}); the upstream file changed?") from None


def _kept(rows: list[Example | None]) -> list[Example]:
    return [r for r in rows if r is not None]


def _uncsv(question: str) -> str:
    # Some TriviaQA questions arrive still CSV-quoted: '"What play is about ""star-crossed lovers""?"'.
    if len(question) >= 2 and question[0] == question[-1] == '"' and '""' in question:
        return question[1:-1].replace('""', '"')
    return question


def load_triviaqa(n: int | None = None) -> list[Example]:
    """TriviaQA (1,000-row sample of the unfiltered dev set): domain 'triviaqa', ids 'triviaqa-<upstream id>'."""
    _check_n(n)
    out = []
    for lineno, row in _head(_jsonl("triviaqa", "triviaqa_test_1k.jsonl"), n):
        q = _uncsv(row["question"])
        meta: dict[str, Any] = {"source_id": row["id"]}
        if q != row["question"]:
            meta["raw_question"] = row["question"]
        out.append(
            _example(
                f"triviaqa/triviaqa_test_1k.jsonl line {lineno}",
                id=f"triviaqa-{row['id']}", question=q, answers=list(row["golden_answers"]),
                domain="triviaqa", meta=meta,
            )
        )
    return _kept(out)


def load_nq_open(n: int | None = None) -> list[Example]:
    """NQ-Open dev set: domain 'nq_open', ids 'nq_open-<row index, 5 digits>' (upstream has no ids)."""
    _check_n(n)
    rows = _jsonl("nq_open", "NQ-open.dev.jsonl")
    return _kept([
        _example(
            f"nq_open/NQ-open.dev.jsonl line {lineno}",
            id=f"nq_open-{i:05d}", question=row["question"], answers=list(row["answer"]),
            domain="nq_open", meta={"row": i},
        )
        for i, (lineno, row) in enumerate(_head(rows, n))
    ])


def load_popqa(n: int | None = None) -> list[Example]:
    """PopQA (1,000 rows): domain 'popqa'; meta keeps subject/relation/popularity (s_pop, o_pop)."""
    _check_n(n)
    out = []
    for lineno, row in _head(_jsonl("popqa", "popqa_1k_with_metadata.jsonl"), n):
        md = row.get("metadata", {})
        meta = {"source_id": row["id"], **{k: md[k] for k in ("subj", "prop", "obj", "s_pop", "o_pop") if k in md}}
        out.append(
            _example(
                f"popqa/popqa_1k_with_metadata.jsonl line {lineno}",
                id=f"popqa-{row['id']}", question=row["question"], answers=list(row["golden_answers"]),
                domain="popqa", meta=meta,
            )
        )
    return _kept(out)


_ARC_FILES = {"train": "train_arc-da.csv", "valid": "valid_arc-da.csv", "test": "arc_da_test_multi_answer.csv"}


def load_arc_da(split: str = "valid", n: int | None = None) -> list[Example]:
    """ARC-DA science questions with open answers: domain 'arc_da', ids 'arc_da-<split>-<row index>'.

    train/valid have one reference answer; test lists several acceptable answers. Answers are
    free-text phrases, so exact alias matching under-counts correct replies on this set.
    """
    if split not in _ARC_FILES:
        raise InputError(f"split must be one of {sorted(_ARC_FILES)} (got {split!r})")
    _check_n(n)
    name = _ARC_FILES[split]
    out = []
    for i, row in enumerate(_head(_csv("arc_da", name), n)):
        where = f"arc_da/{name} row {i}"
        if split == "test":
            try:
                answers = ast.literal_eval(row["answer"])
            except (ValueError, SyntaxError):
                raise DataError(f"{where}: answer is not a Python list literal (got {row['answer'][:80]!r}); restore the file") from None
        else:
            answers = [row["answer"]]
        out.append(
            _example(where, id=f"arc_da-{split}-{i:05d}", question=row["question"], answers=answers,
                     domain="arc_da", meta={"split": split, "row": i})
        )
    return _kept(out)


def load_selfaware(n: int | None = None, unanswerable_only: bool = False) -> list[Example]:
    """SelfAware: unanswerable questions become kind 'unanswerable' (answers []), the rest 'qa'.

    Domain 'selfaware', ids 'selfaware-<question_id>'. With unanswerable_only=True only the 1,032
    unanswerable questions are returned (n applies after that filter).
    """
    _check_n(n)
    data = json.loads(_verified_bytes("selfaware", "SelfAware.json").decode("utf-8"))
    rows = [r for r in data["example"] if not (unanswerable_only and r["answerable"])]
    out = []
    for row in _head(rows, n):
        answerable = bool(row["answerable"])
        out.append(
            _example(
                f"selfaware/SelfAware.json question_id {row['question_id']}",
                id=f"selfaware-{row['question_id']}", question=row["question"],
                answers=list(row["answer"]) if answerable else [],
                domain="selfaware", kind="qa" if answerable else "unanswerable",
                meta={"source": row["source"]},
            )
        )
    return _kept(out)


def load_halueval_rows(n: int | None = None) -> list[dict[str, str]]:
    """HaluEval QA (first 500 rows) as dicts: id, question, context, right_answer, hallucinated_answer.

    context is HaluEval's 'knowledge' passage; ids are 'halueval-<row index>'.
    """
    _check_n(n)
    return [
        {
            "id": f"halueval-{i:05d}",
            "question": row["question"],
            "context": row["knowledge"],
            "right_answer": row["right_answer"],
            "hallucinated_answer": row["hallucinated_answer"],
        }
        for i, (_, row) in enumerate(_head(_jsonl("halueval", "qa_one-turn_data.json"), n))
    ]


def load_halueval(n: int | None = None) -> list[Example]:
    """HaluEval QA as RAG examples: context = knowledge, answers = [right_answer], domain 'halueval'.

    The hallucinated reference answer is kept in meta['hallucinated_answer'].
    """
    return _kept([
        _example(
            f"halueval/qa_one-turn_data.json {r['id']}",
            id=r["id"], question=r["question"], answers=[r["right_answer"]], context=r["context"],
            domain="halueval", meta={"hallucinated_answer": r["hallucinated_answer"]},
        )
        for r in load_halueval_rows(n)
    ])


def load_conflictnq(split: str = "val") -> list[dict[str, Any]]:
    """ConflictNQ rows: a question with the real passage and LLM-written misleading passages.

    Keys: id, question (as asked in NQ), cleaned_question (a well-formed rewrite), context (the real
    passages joined by blank lines), real_answer, real_short_answer, fake_answer, fake_short_answer,
    fake_context (the misleading passages joined), fake_passages (list of str). Short answers are
    often whole sentences, so they suit grounding checks better than alias matching.
    """
    if split not in ("val", "test"):
        raise InputError(f"split must be 'val' or 'test' (got {split!r})")
    out = []
    for lineno, row in _jsonl("conflictnq", f"conflict_nq_{split}.jsonl"):
        try:
            real = [p["passage"] for p in row["real_passages"]]
            fake = [p["passage"] for p in row["fake_passages"]]
            out.append(
                {
                    "id": f"conflictnq-{split}-{row['id']}",
                    "question": row["question"],
                    "cleaned_question": row["cleaned_question"],
                    "context": "\n\n".join(real),
                    "real_answer": row["real_answer"],
                    "real_short_answer": row["real_short_answer"],
                    "fake_answer": row["fake_answer"],
                    "fake_short_answer": row["fake_short_answer"],
                    "fake_context": "\n\n".join(fake),
                    "fake_passages": fake,
                }
            )
        except (KeyError, TypeError) as e:
            raise DataError(f"conflictnq/conflict_nq_{split}.jsonl line {lineno}: missing or malformed field {e}; restore the file") from None
    return out
