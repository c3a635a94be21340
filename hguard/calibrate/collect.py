"""Collecting answers and their neuron contributions for calibration, resumably.

The model answers every question once (greedy, batched, all neurons recorded). Each finished batch is
written as one shard in the format of :mod:`hguard.calibrate.shards` (a float32 safetensors file, then
its manifest entry, which commits it). A crash or Ctrl-C therefore loses at most the batch in flight:
on the next run the rows of committed shards are read back and skipped.

A collection folder belongs to one model, system prompt and generation length (``collection.json``);
reusing it under other settings is refused rather than mixing answers of two set-ups. This module is
the local engine; :mod:`hguard.calibrate.ray_engine` writes the same folder from Ray actors.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .._text import same_words
from ..errors import DataError, InputError, UnsupportedModelError
from .data import Example
from .judge import asked_kind, declines, judge_row
from .shards import ShardPlan, ShardStore, collection_settings, input_hash, write_shard

if TYPE_CHECKING:
    from .screen import ShardFeatures


@dataclass
class Collected:
    """Rows (dicts, one per example, in the order of the examples given) and their CETT matrix."""

    rows: list[dict]
    features: np.ndarray | ShardFeatures  # (n, n_features) float32: memory-mapped shards, or read on demand
    # How many of the rows this run answered and how many it read back from shards an earlier run committed (see
    # :func:`this_run`): set by the collection engines, so a resumed run's report does not count those as its own.
    origin: dict | None = None

    def subset(self, mask: Sequence[bool] | np.ndarray) -> "Collected":
        mask = np.asarray(mask, dtype=bool)
        return Collected([r for r, m in zip(self.rows, mask) if m], self.features[mask])


def label_row(example: Example, answer: str) -> dict:
    """The judge's verdict as calibration fields; ``meta.label`` (from human review) overrides it, except
    on an answer that declines (always "refusal": the guard abstains on it, see :func:`declines`)."""
    meta = example.meta or {}
    forced = meta.get("label")
    judged = meta.get("model_answer")  # the answer the reviewer labelled, when the row came from review
    same = not isinstance(judged, str) or same_words(judged, answer)
    if forced in ("correct", "hallucinated") and same and declines(answer, example.question) is None:
        return {"label": forced, "judge_reason": "label set by a human reviewer", "matched": None}
    j = judge_row(answer, list(example.answers), example.kind, example.meta, example.question)
    if forced in ("correct", "hallucinated") and not same:  # another model or prompt answered otherwise
        return {"label": j.label, "judge_reason": f"{j.reason} (the reviewer's label {forced!r} was of another "
                f"answer, {str(judged)[:80]!r}: judged afresh)", "matched": j.matched}
    return {"label": j.label, "judge_reason": j.reason, "matched": j.matched}


def relabel(col: Collected, examples: Sequence[Example]) -> Collected:
    """``col`` with every row given the judge's label afresh from its stored answer, so a judge fixed
    after the answers were collected applies without answering again, and its split group from the row as the
    data gives it now (a ``meta.group`` corrected since collection moves the row; answers are kept by row id)
    (the rows are changed in place)."""
    by_id = {e.id: e for e in examples}
    for r in col.rows:
        e = by_id.get(r["id"])
        if e is not None:
            r.update(_given(e, r["answer"]))
    return col


def _given(e: Example, answer: str) -> dict:
    """What a collected row takes from its example rather than from the model's answer: read afresh whenever
    answers are reused by row id (a row moved to another domain since was fitted, and its probe written, under
    the old one)."""
    return {
        "domain": e.domain,
        "kind": asked_kind(e.kind, e.meta),  # for the model's accuracy; the judge reads the example's own kind
        **label_row(e, answer),
        "source": (e.meta or {}).get("source", "dataset") if e.meta else "dataset",
        "review_risk": (e.meta or {}).get("risk") if e.meta else None,
        "group": _group_key(e),
    }


def _row(e: Example, g) -> dict:
    return {
        "id": e.id,
        "question": e.question,
        "input_hash": input_hash(e),
        "answer": g.text,
        "finished": g.finished,
        "n_cett_tokens": g.n_cett_tokens,
        **g.confidence,
        **_given(e, g.text),
    }


def answer_batch(generator, batch: Sequence[Example]) -> tuple[list[dict], np.ndarray, list[dict]]:
    """Answer, judge and record one batch: (rows, features (n, n_features), failed rows).

    A batch that raises is tried again; if it raises again, each row is tried on its own, twice, and a
    row that fails both times is returned in ``failed`` (``id``, ``error``) instead of being dropped.
    Shared by both collection engines, so a batch gives the same rows wherever it runs.
    """

    def run(exs):
        gens = generator.generate([e.question for e in exs], [e.context for e in exs], neurons="all", batch_size=len(exs))
        unread = next((g.extra["neurons_unread"] for g in gens if g.extra.get("neurons_unread")), None)
        if unread:  # the model's FFN modules were replaced while collecting: no row of it would carry its neurons
            raise UnsupportedModelError(unread)
        return [_row(e, g) for e, g in zip(exs, gens)], [g.cett for g in gens]

    for _ in range(2):
        try:
            rows, cett = run(batch)
            return rows, np.stack(cett).astype(np.float32, copy=False), []
        except Exception:  # noqa: BLE001 - retried, then narrowed down to the rows that fail
            pass
    rows, cett, failed = [], [], []
    for e in batch:
        error = None
        for _ in range(2):
            try:
                r, c = run([e])
                rows += r
                cett += c
                break
            except Exception as exc:  # noqa: BLE001 - reported in `failed`
                error = f"{type(exc).__name__}: {exc}"
        else:
            failed.append({"id": e.id, "error": error})
    width = generator.n_features
    return rows, (np.stack(cett).astype(np.float32, copy=False) if cett else np.zeros((0, width), np.float32)), failed


def this_run(col: Collected, plans: Sequence[ShardPlan]) -> Collected:
    """``col`` with its ``origin``: a row in a shard this run planned (``plans``) was answered now; any other was read
    back from a shard committed before it (a killed or earlier run's, with either engine), which this run's
    collection time does not cover. Counted from the shard each row is read from, so a resumed run cannot
    claim another run's answers."""
    planned = {p.name for p in plans}
    earlier = [r["shard"] for r in col.rows if r["shard"] not in planned]
    col.origin = {"answers_collected": len(col.rows) - len(earlier), "answers_reused": len(earlier),
                  "reused_shards": len(set(earlier))}
    return col


def warn_held_rows(generator, examples: Sequence[Example]) -> None:
    """Say which rows hold what the guard reads as a marker, not as text (a control token; for a model without a chat
    template, a label of its plain prompt): the guard holds every such request for review whatever its risk, so
    their answers are calibrated on a prompt it never scores (a review). Named, not dropped."""
    control_in = getattr(generator, "control_in", None)
    if control_in is None:  # a stand-in generator (tests) reads no markers
        return
    held = [e.id for e in examples if control_in(e.question, e.context)]
    if held:
        shown = ", ".join(repr(i) for i in held[:5]) + (", ..." if len(held) > 5 else "")
        warnings.warn(f"{len(held)} of {len(examples)} row(s) hold a control token or a plain-prompt label the guard "
                      f"reads as a marker (id {shown}): it holds such requests for review, whatever their risk, so "
                      "their answers calibrate on turns it never scores; rewrite or leave them out", UserWarning,
                      stacklevel=3)


def refuse_unanswerable_rows(generator, examples: Sequence[Example], *, answered: int = 0,
                             kept_in: str | os.PathLike | None = None) -> None:
    """Refuse, before the first row is answered, rows whose prompt the guard's prompt builder cannot answer
    (:meth:`hguard.generation.Generator.prompt_ids`, the guard's own check: a question and passage whose tokens and
    the answer's ``max_new_tokens`` exceed the model's context window), in one line naming the first, what the check
    says (its token count, the window, the fix) and how many there are. Each of them failed only in its own batch,
    twice, then alone, twice, and was reported when the whole collection had run (a user's 20,000-token passage,
    hours in). ``examples``: the rows this run would answer; ``answered``: how many rows earlier runs' shards in
    ``kept_in`` hold answers of (a resumed run), which the line says are kept, e.g. "...; nothing was answered by this
    run (the 8 answers earlier runs committed are kept in work/, and the next run answers only the rows without
    one)", not "nothing was answered"."""
    prompt_ids = getattr(generator, "prompt_ids", None)
    if prompt_ids is None:  # a stand-in generator (tests) builds no prompt
        return
    bad: list[tuple[str, str]] = []
    for e in examples:
        try:
            prompt_ids(e.question, e.context)
        except InputError as exc:
            bad.append((e.id, str(exc)))
    if bad:
        more = (f" ({len(bad)} rows in all, checked before {'this run' if answered else 'any was'} answered"
                f"{' any' if answered else ''})" if len(bad) > 1 else "")
        done = (f" by this run (the {answered} answers earlier runs committed are kept in {kept_in}, and the next run "
                "answers only the rows without one)" if answered else "")
        raise DataError(f"row {bad[0][0]!r} cannot be answered: {bad[0][1]}, or leave the row out{more}; nothing was "
                        f"answered{done}")


def check_ids(examples: Sequence[Example]) -> list[str]:
    ids = [e.id for e in examples]
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise DataError(f"example id {i!r} appears more than once across the data files; ids must be unique")
        seen.add(i)
    return ids


def raise_failed(store: ShardStore, ids: Sequence[str]) -> None:
    """Rows that failed twice are reported by id (with their error), never silently left out."""
    failed = store.failed()
    bad = [failed[i] for i in ids if i in failed]
    if bad:
        first = bad[0]
        raise DataError(
            f"{len(bad)} row(s) failed twice and have no answer (first: {first['id']!r} in shard {first['shard']}: "
            f"{first['error']}); the other rows are kept in {store.work}: fix the cause or remove these rows from the "
            "data, then run again (only the missing rows are answered)"
        )


# the calibration's progress and phases, as lines (INFO): `hguard calibrate` prints them on stderr unless --quiet
_log = logging.getLogger("hguard.calibrate")


class Progress:
    """A collection's progress: tqdm's bar (it redraws one line, which a log file or a pipe shows as nothing new for
    minutes) and a line on the ``hguard.calibrate`` logger after each batch (:meth:`update`) that reaches a further
    tenth of the rows, and at the last (a batch spanning several tenths says one line), with the minutes
    this run has taken and about how many are left. The lines pass through the bar's ``write`` while it is open, so a
    terminal shows both; nothing is said when ``enabled`` is False."""

    def __init__(self, total: int, initial: int, *, desc: str, enabled: bool) -> None:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.total, self.initial, self.done, self.enabled = total, initial, initial, enabled
        self.step = max(1, math.ceil(total / 10))
        self.next_at = (initial // self.step + 1) * self.step
        self.t0 = time.perf_counter()
        self._stack = ExitStack()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="q", disable=not enabled)
        if enabled:
            self._stack.enter_context(logging_redirect_tqdm(loggers=[_log]))

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.done += n
        if self.enabled and (self.done >= self.next_at or self.done >= self.total):
            self.next_at = (self.done // self.step + 1) * self.step
            _log.info(self.line())

    def line(self) -> str:
        """"answers 120/280 (43%), 2.1 min, about 2.8 min left" (with the rows earlier runs answered, if any)."""
        minutes = (time.perf_counter() - self.t0) / 60
        answered, left = self.done - self.initial, self.total - self.done
        eta = f", about {minutes / answered * left:.1f} min left" if answered and left else ""
        reused = f" ({self.initial} answered by earlier runs)" if self.initial else ""
        return (f"answers {self.done}/{self.total} ({self.done / max(self.total, 1):.0%}), {minutes:.1f} min{eta}"
                + reused)

    def close(self) -> None:
        self.bar.close()
        self._stack.close()


def collect(
    generator,
    examples: Sequence[Example],
    work_dir: str | os.PathLike,
    *,
    batch_size: int = 16,
    progress: bool = True,
    lazy: bool = False,
) -> Collected:
    """Answer ``examples`` with all neurons recorded, resuming from ``work_dir`` where possible.

    ``lazy``: the features stay in the shards (see :func:`load_collected`)."""
    ids = check_ids(examples)
    from ..generation import refuse_model_decoding  # torch only where a model answers

    refuse_model_decoding(generator)
    warn_held_rows(generator, examples)
    store = ShardStore(work_dir, collection_settings(generator))
    plans = store.plan(examples, batch_size)
    todo = sum(len(p.examples) for p in plans)
    # before hours of answering the others
    refuse_unanswerable_rows(generator, [e for p in plans for e in p.examples], answered=len(examples) - todo,
                             kept_in=store.work)
    bar = Progress(len(examples), len(examples) - todo, desc="collecting", enabled=progress)
    try:
        for plan in plans:
            rows, feats, failed = answer_batch(generator, plan.examples)
            write_shard(store.work, plan.name, store.settings, rows, feats, failed)
            bar.update(len(plan.examples))
    finally:
        bar.close()
        store.write_manifest()
    raise_failed(store, ids)
    return this_run(relabel(load_collected(work_dir, ids, lazy=lazy), examples), plans)


def _group_key(example: Example) -> str:
    """Questions made from one fact (several templates) must fall on one side of the split."""
    meta = example.meta or {}
    for key in ("group", "fact"):
        if meta.get(key) is not None:
            return f"{example.domain}:{meta[key]}"
    return example.id


def load_collected(work_dir: str | os.PathLike, ids: Sequence[str] | None = None, *, lazy: bool = False) -> Collected:
    """The rows of ``ids`` (all when None) and their features, each shard checked against its sha256.

    ``lazy``: the features are a :class:`hguard.calibrate.screen.ShardFeatures` that reads columns from
    the shards when asked, for a fit that must not hold every feature in memory."""
    store = ShardStore(work_dir)
    done = store.finished()
    if ids is None:
        ids = list(done)
    if lazy:
        from .screen import ShardFeatures

        return Collected([done[i] for i in ids], ShardFeatures(work_dir, ids, _store=store, _done=done))
    missing = [i for i in ids if i not in done]
    if missing:
        raise DataError(f"{store.work} has no answers for {len(missing)} ids (first: {missing[0]!r}); run the collection again")
    rows = [done[i] for i in ids]
    wanted = {r["shard"] for r in rows}
    shards = {e["shard"]: f for e, f in store.iter_shards(ids) if e["shard"] in wanted}
    width = store.settings["n_features"]
    features = np.stack([shards[r["shard"]][r["index"]] for r in rows]).astype(np.float32, copy=False) if rows else np.zeros((0, width), np.float32)
    return Collected(rows, features)


__all__ = ["Collected", "Progress", "answer_batch", "collect", "label_row", "load_collected", "refuse_unanswerable_rows", "relabel",
           "this_run"]
