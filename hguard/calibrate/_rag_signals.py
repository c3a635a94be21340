"""RAG calibration, its signals: the grounding, closed-book and relevance signals of each collected
answer, stored beside the collection so a rerun computes only what is missing (see :mod:`hguard.calibrate.rag`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence


from .._privacy import FILE_MODE
from .collect import Collected, label_row
from .data import Example
from .pipeline import (
    MERGER_FEATURES,
)


GROUNDING_FEATURES = ("grounding_lexical", "grounding_phrase", "grounding_proximity", "grounding_embedding", "grounding")
SIGNALS_FILE = "rag_signals.jsonl"
RELEVANCE_FILE = "rag_relevance.jsonl"
REPORT_TARGET, REPORT_CONFIDENCE = 0.10, 0.90
MERGER_CS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)



def _read_rows(path: Path) -> dict[str, dict]:
    """Rows already written to a resumable JSONL side file, by id; a torn last line (a killed run) is cut off."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        with open(path, "r+b") as fh:
            fh.truncate(len(data) - len(tail))
    for raw in complete:
        if raw.strip():
            row = json.loads(raw)
            done[row["id"]] = row
    return done


def _append_rows(path: Path, rows: Sequence[dict]) -> None:
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)  # questions and answers in clear
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)

def _rag_merger_features() -> tuple[str, ...]:
    from ..signals.conflict import CONFLICT_FEATURES
    from ..signals.relevance import RELEVANCE_FEATURES

    return tuple(MERGER_FEATURES) + GROUNDING_FEATURES + tuple(CONFLICT_FEATURES) + tuple(RELEVANCE_FEATURES)


RAG_MERGER_FEATURES = _rag_merger_features()


# ------------------------------------------------------------------------------------ signals


def row_condition(e: Example) -> str:
    """A RAG row's condition: ``meta.condition``; your own rows need not say it (a row is its own passage's, or,
    unanswerable, no passage's)."""
    return (e.meta or {}).get("condition") or ("unanswerable" if e.kind == "unanswerable" else "supporting")


def add_rag_signals(generator, col: Collected, examples: Sequence[Example], work_dir: str | os.PathLike, *,
                    scorer=None, progress: bool = True) -> list[dict]:
    """Per row of ``col``: the grounding and closed-book signals (and ``log_length``), computed once
    and kept in ``work_dir/rag_signals.jsonl``. Rows also get the judge's label afresh (so a judge
    fix needs no new answers), and their example's passage (``context``) and question."""
    from tqdm.auto import tqdm

    from ..signals.conflict import closed_book_scores

    if scorer is None:
        from ..signals.embedding import get_embedder
        from ..signals.grounding import GroundingScorer

        scorer = GroundingScorer(embedder=get_embedder())
    by_id = {e.id: e for e in examples}
    path = Path(work_dir) / SIGNALS_FILE
    done = _read_rows(path)
    todo = [r for r in col.rows if r["id"] not in done]
    for r in tqdm(todo, desc="grounding + closed-book signals", unit="a", disable=not progress):
        e = by_id[r["id"]]
        sig: dict[str, Any] = {"id": r["id"]}
        if r["answer"].strip():
            sig.update(scorer.score(e.question, r["answer"], e.context))
            sig.update(closed_book_scores(generator, [e.question], [r["answer"]], [r["mean_logprob"]])[0])
        _append_rows(path, [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in sig.items()}])
        done[r["id"]] = sig
    rel = _relevance_rows(col, by_id, done, Path(work_dir), scorer, progress)
    out = []
    for r in col.rows:
        e = by_id[r["id"]]
        row = {**r, **{k: v for k, v in done[r["id"]].items() if k != "id"},
               **{k: v for k, v in rel[r["id"]].items() if k != "id"}, **label_row(e, r["answer"])}
        row["log_length"] = math.log1p(r["length"])
        # the passage it was asked with: the report reads the answer against it and the question as the guard does
        # (:func:`hguard.calibrate._rag_report.answer_holds_of`)
        row["context"] = e.context
        row.setdefault("question", e.question)
        row["condition"] = row_condition(e)  # your own rows need not say these: a row is its domain's dataset
        row["dataset"] = (e.meta or {}).get("dataset") or e.domain
        out.append(row)
    return out


def _relevance_rows(col: Collected, by_id: dict, signals: dict, work: Path, scorer, progress: bool) -> dict[str, dict]:
    """The relevance signals (:mod:`hguard.signals.relevance`) of each row, kept in their own side file
    (``rag_relevance.jsonl``) so they can be added to a collection whose grounding signals are done."""
    from tqdm.auto import tqdm

    from ..signals.relevance import RELEVANCE_FEATURES, relevance_scores

    path = work / RELEVANCE_FILE
    done = _read_rows(path)
    # a row stored before a signal was added is computed again (the later line wins when read back)
    todo = [r for r in col.rows if r["id"] not in done or (r["answer"].strip() and not set(RELEVANCE_FEATURES) <= set(done[r["id"]]))]
    for r in tqdm(todo, desc="relevance signals", unit="a", disable=not progress):
        e = by_id[r["id"]]
        sig: dict[str, Any] = {"id": r["id"]}
        if r["answer"].strip():
            sig.update(relevance_scores(e.question, r["answer"], e.context, signals[r["id"]].get("grounding"),
                                        grounding_scorer=scorer))
        _append_rows(path, [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in sig.items()}])
        done[r["id"]] = sig
    return done
