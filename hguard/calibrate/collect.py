"""Collecting answers and their neuron contributions for calibration, resumably.

The model answers every question once (greedy, batched, all neurons recorded). Each finished batch is
written as one float32 shard (``.npy``, loaded without pickle and memory-mapped) and only then are its
rows appended, with fsync, to ``rows.jsonl``. A crash or Ctrl-C therefore loses at most the batch in
flight: on the next run finished rows are read back and skipped, and a shard without its rows (the
crash came between the two writes) is simply written again.

A collection folder belongs to one model, system prompt and generation length (``collection.json``);
reusing it under other settings is refused rather than mixing answers of two set-ups.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from .data import Example
from .judge import judge_row

ROWS = "rows.jsonl"
SETTINGS = "collection.json"


@dataclass
class Collected:
    """Rows (dicts, one per example, in the order of the examples given) and their CETT matrix."""

    rows: list[dict]
    features: np.ndarray  # (n, n_features) float32; a stack of memory-mapped shards

    def subset(self, mask: Sequence[bool] | np.ndarray) -> "Collected":
        mask = np.asarray(mask, dtype=bool)
        return Collected([r for r, m in zip(self.rows, mask) if m], self.features[mask])


def _settings(generator) -> dict:
    return {
        **generator.fingerprints,
        "max_new_tokens": generator.max_new_tokens,
        "n_features": generator.n_features,
        "format": 1,
    }


def _read_rows(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        # A torn last line from a killed run: cut it off; its batch is redone.
        with open(path, "r+b") as fh:
            fh.truncate(len(data) - len(tail))
    for raw in complete:
        if raw.strip():
            row = json.loads(raw)
            done[row["id"]] = row
    return done


def _append_rows(path: Path, rows: Iterable[dict]) -> None:
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_shard(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def label_row(example: Example, answer: str) -> dict:
    """The judge's verdict as calibration fields; ``meta.label`` (from human review) overrides it."""
    forced = (example.meta or {}).get("label") if example.meta else None
    if forced in ("correct", "hallucinated"):
        return {"label": forced, "judge_reason": "label set by a human reviewer", "matched": None}
    j = judge_row(answer, list(example.answers), example.kind, example.meta, example.question)
    return {"label": j.label, "judge_reason": j.reason, "matched": j.matched}


def collect(
    generator,
    examples: Sequence[Example],
    work_dir: str | os.PathLike,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> Collected:
    """Answer ``examples`` with all neurons recorded, resuming from ``work_dir`` where possible."""
    from tqdm.auto import tqdm

    work = Path(work_dir)
    (work / "shards").mkdir(parents=True, exist_ok=True)
    settings = _settings(generator)
    settings_path = work / SETTINGS
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise DataError(
                f"{work} holds answers collected under other settings ({', '.join(diff)} differ); "
                f"use another --work folder or delete this one"
            )
    else:
        settings_path.write_text(json.dumps(settings, indent=2))
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"example id {dup!r} appears more than once across the data files; ids must be unique")
    rows_path = work / ROWS
    done = _read_rows(rows_path)
    todo = [e for e in examples if e.id not in done or not (work / "shards" / done[e.id]["shard"]).exists()]
    next_shard = 1 + max((int(r["shard"].split("-")[1].split(".")[0]) for r in done.values()), default=-1)
    bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc="collecting", unit="q", disable=not progress)
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            gens = generator.generate(
                [e.question for e in batch], [e.context for e in batch], neurons="all", batch_size=len(batch)
            )
            shard = f"shard-{next_shard:06d}.npy"
            next_shard += 1
            _write_shard(work / "shards" / shard, np.stack([g.cett for g in gens]))
            new_rows = []
            for i, (e, g) in enumerate(zip(batch, gens)):
                new_rows.append(
                    {
                        "id": e.id,
                        "domain": e.domain,
                        "kind": e.kind,
                        "question": e.question,
                        "answer": g.text,
                        "finished": g.finished,
                        "n_cett_tokens": g.n_cett_tokens,
                        **g.confidence,
                        **label_row(e, g.text),
                        "source": (e.meta or {}).get("source", "dataset") if e.meta else "dataset",
                        "review_risk": (e.meta or {}).get("risk") if e.meta else None,
                        "group": _group_key(e),
                        "shard": shard,
                        "index": i,
                    }
                )
            _append_rows(rows_path, new_rows)
            for r in new_rows:
                done[r["id"]] = r
            bar.update(len(batch))
    finally:
        bar.close()
    return load_collected(work, ids)


def _group_key(example: Example) -> str:
    """Questions made from one fact (several templates) must fall on one side of the split."""
    meta = example.meta or {}
    for key in ("group", "fact"):
        if meta.get(key) is not None:
            return f"{example.domain}:{meta[key]}"
    return example.id


def load_collected(work_dir: str | os.PathLike, ids: Sequence[str] | None = None) -> Collected:
    work = Path(work_dir)
    done = _read_rows(work / ROWS)
    if ids is None:
        ids = list(done)
    missing = [i for i in ids if i not in done]
    if missing:
        raise DataError(f"{work} has no answers for {len(missing)} ids (first: {missing[0]!r}); run the collection again")
    shards: dict[str, np.ndarray] = {}
    rows = [done[i] for i in ids]
    for r in rows:
        if r["shard"] not in shards:
            shards[r["shard"]] = np.load(work / "shards" / r["shard"], mmap_mode="r", allow_pickle=False)
    features = np.stack([shards[r["shard"]][r["index"]] for r in rows]).astype(np.float32, copy=False) if rows else np.zeros((0, 0), np.float32)
    return Collected(rows, features)


__all__ = ["Collected", "collect", "label_row", "load_collected"]
