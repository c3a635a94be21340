"""The one file format for labelled calibration questions, and deterministic splits.

A calibration file is JSON Lines, one question per line:

    {"id": "geography-capital-france-t1", "question": "What is the capital of France?",
     "answers": ["Paris"], "domain": "geography", "kind": "qa", "meta": {"fact": "capital:france"}}

Fields: `id` (unique), `question`, `answers` (accepted aliases), `domain` (slug), optional `context`
(retrieved text for RAG), optional `kind` ("qa", the default, or "unanswerable": the right behaviour
is to abstain, e.g. questions about fabricated entities; such rows may have no answers) and optional
`meta` (free-form JSON object; builders keep the underlying fact there so splits can be made by fact).

Loading is strict on purpose: a calibration set with one malformed row would silently shift a
threshold, so a bad row stops the load; every row is checked first, and the error names each bad one
(up to 20) with its file, line, field and reason, so the file is mended in one pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from hguard._numerics import is_real
from hguard._privacy import private_mode
from hguard._text import blank, looks_utf16
from hguard.errors import DataError, InputError, cut_text

__all__ = [
    "FIELDS",
    "KINDS",
    "Example",
    "ExampleKind",
    "asked_key",
    "load_examples",
    "rows_for_mode",
    "rag_family_unused",
    "warn_rag_meta",
    "CONDITIONS",
    "write_examples",
    "split_ids",
    "split_examples",
    "data_hash",
    "row_order_hash",
    "canonical_line",
]

#: what an example asks: a question with a known answer, or one the context cannot answer
ExampleKind = Literal["qa", "unanswerable"]
KINDS: tuple[ExampleKind, ...] = ("qa", "unanswerable")
FIELDS = ("id", "question", "answers", "domain", "context", "kind", "meta")
_REQUIRED = ("id", "question", "answers", "domain")
_DOMAIN_RE = re.compile(r"[a-z0-9_-]+\Z")

# One wording per field, shared by direct construction and file loading, so a message found in a
# traceback can be grepped for here.
_RULES = {
    "id": "must be a string with something other than whitespace in it",
    "question": "must be a string with something other than whitespace in it",
    "answers": "must be a list of non-empty strings",
    "domain": "must be a slug of lowercase letters, digits, '_' or '-' (e.g. \"geography\")",
    "context": "must be a string when present",
    "kind": "must be \"qa\" or \"unanswerable\"",
    "meta": "must be a JSON object with string keys when present",
}
_ANSWERS_REQUIRED = 'must be a non-empty list of strings unless kind is "unanswerable"'
_CONTEXT_EMPTY = (
    "the context is empty or only whitespace; remove the field for a closed-book row, or give the passage the "
    "question is answered from"
)
_ANSWERS_UNJUDGEABLE = (
    "needs at least one alias with a word other than a/an/the for a 'qa' row, or the judge could never "
    "match a reply; write the alias with context (e.g. 'vitamin A'), or mark the row kind 'unanswerable'"
)


def domain_slug(name: str) -> str:
    """``name`` as a domain name calibration takes (a slug: lowercase letters, digits, '_' or '-'), e.g. "Finance
    Desk" as "finance_desk"; the name itself when it is one."""
    if _DOMAIN_RE.match(name):
        return name
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_-") or "my_domain"


def _bad(field: str) -> PydanticCustomError:
    return PydanticCustomError("hguard_field", _RULES[field])


def _nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


class Example(BaseModel):
    """One labelled question. Construct directly or via `load_examples`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    question: str
    answers: list[str]
    domain: str
    context: str | None = None
    kind: ExampleKind = "qa"
    meta: dict[str, Any] | None = None

    # "before" validators run ahead of pydantic's own type checks, so every failure carries the
    # field rule above rather than pydantic's generic wording.
    @field_validator("id", "question", mode="before")
    @classmethod
    def _check_text(cls, v: Any, info: Any) -> Any:
        if not _nonempty_str(v):
            raise _bad(info.field_name)
        return v

    @field_validator("answers", mode="before")
    @classmethod
    def _check_answers(cls, v: Any) -> Any:
        if not isinstance(v, list) or not all(_nonempty_str(a) for a in v):
            raise _bad("answers")
        return v

    @field_validator("domain", mode="before")
    @classmethod
    def _check_domain(cls, v: Any) -> Any:
        if not isinstance(v, str) or not _DOMAIN_RE.match(v):
            raise _bad("domain")
        return v

    @field_validator("context", mode="before")
    @classmethod
    def _check_context(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, str):
            raise _bad("context")
        if isinstance(v, str) and blank(v):  # refused here, not after the model loads and every prompt fails
            raise _row_rule("context", _CONTEXT_EMPTY)
        return v

    @field_validator("kind", mode="before")
    @classmethod
    def _check_kind(cls, v: Any) -> Any:
        if v not in KINDS or not isinstance(v, str):
            raise _bad("kind")
        return v

    @field_validator("meta", mode="before")
    @classmethod
    def _check_meta(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise _bad("meta")
        for key in ("fact", "group"):
            x = v.get(key)
            if isinstance(x, float):  # pandas writes an integer column as floats (2.0) once one value is missing
                if not x.is_integer():
                    raise _row_rule(f"meta.{key}", _FACT_RULE + f"; {x!r} is no whole number (2.0 is read as 2): "
                                    f"write it as a string ({str(x)!r}) if it names a fact, or null on a row without one")
                v = {**v, key: int(x)}  # the same fact as 2, in the split and the report
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            # Rows must survive a write/load round trip; NaN and arbitrary objects do not (a NaN was refused as no
            # "JSON object with string keys", which it was)
            raise _row_rule("meta", "must hold only JSON values: no NaN or infinite number, no object other than "
                            "strings, numbers, true/false/null, lists and objects; write null or a number instead") from None
        return v

    @model_validator(mode="after")
    def _check_answers_for_kind(self) -> Example:
        meta = self.meta or {}
        if self.kind == "qa":
            from .judge import judgeable

            if not self.answers:
                raise PydanticCustomError("hguard_answers_required", _ANSWERS_REQUIRED)
            if not any(judgeable(a) for a in self.answers):
                raise PydanticCustomError("hguard_answers_unjudgeable", _ANSWERS_UNJUDGEABLE)
        elif self.answers:
            raise _row_rule("answers", 'must be [] on an "unanswerable" row (its right reply declines, so no alias is '
                            'read); give the answers a "qa" row, or empty the list')
        if "judge" in meta and meta["judge"] != "yesno":  # "yes_no", "YesNo": read by the alias judge, mislabelled
            raise _row_rule("meta.judge", f'is {meta["judge"]!r}; the one judge a row can ask for is "yesno" (the reply '
                            "read by its polarity, answers [\"yes\"] or [\"no\"]); write that, or leave the key out to "
                            "judge the answer by its aliases")
        if meta.get("judge") == "yesno" and self.answers not in (["yes"], ["no"]):
            maybe = [str(a).strip().lower() for a in self.answers] in (["maybe"], ["unknown"], ["uncertain"])
            raise _row_rule("answers", 'must be ["yes"] or ["no"] on a meta.judge "yesno" row (the reply is read by its '
                            'polarity); write True/False upstream labels as "yes"/"no"' + (
                                f'; {self.answers[0]!r} has no side a reply could take: leave such rows out of the '
                                'set (PubMedQA labels 110 of its 1,000 questions "maybe")' if maybe else ""))
        cond = meta.get("condition")
        spelled = "".join(ch for ch in cond.casefold() if ch.isalnum()) if isinstance(cond, str) else None
        known = next((c for c in CONDITIONS if c == spelled), None)
        if known is not None and cond != known:  # "off-topic", "Offtopic": read as no condition, and judged as an answer
            raise _row_rule("meta.condition", f"is spelled {cond!r}; write {known!r} (one of {', '.join(CONDITIONS)})")
        if cond in ("offtopic", "unanswerable") and self.kind != "unanswerable":
            raise _row_rule("kind", f'must be "unanswerable" (with answers []) on a meta.condition '
                            f'{cond!r} row: its passage does not answer the question, so the right reply '
                            "says so; as a \"qa\" row it would teach that answering from it is right")
        if "label" in meta and meta["label"] not in ("correct", "hallucinated"):
            raise _row_rule("meta.label", 'must be "correct" or "hallucinated" (a reviewer\'s verdict, which replaces '
                            "the judge's), or leave the key out to let the judge label the answer")
        if "family" in meta and (not isinstance(meta["family"], str) or not meta["family"].strip()):
            raise _row_rule("meta.family", "must be a string naming the row's kind of question (e.g. \"capital\"), or "
                            "leave the key out (the row then falls back to its fact group)")
        from .._policy_fit import FALLBACK_FAMILY_PREFIXES

        # read stripped: " fact:x" was told to drop its spaces, then refused for its prefix
        if isinstance(meta.get("family"), str) and meta["family"].strip().startswith(FALLBACK_FAMILY_PREFIXES):
            rest = meta["family"].strip()
            prefix = next(p for p in FALLBACK_FAMILY_PREFIXES if rest.startswith(p))
            while rest.startswith(FALLBACK_FAMILY_PREFIXES):  # "fact:fact:x" is not written as "fact:x"
                rest = rest[len(next(p for p in FALLBACK_FAMILY_PREFIXES if rest.startswith(p))):].strip()
            spaced = meta["family"] != meta["family"].strip()
            raise _row_rule("meta.family", f"{meta['family']!r} starts with {prefix!r}"
                            + (" after its spaces" if spaced else "") + ", which names the fallback group of "
                            f"a row without meta.family ({', '.join(FALLBACK_FAMILY_PREFIXES)}), so the report would "
                            "count it as one; " + (f"write it without the prefix{' and spaces' if spaced else ''} "
                                                   f"(e.g. {rest!r})" if rest else
                                                   "name the row's kind of question (e.g. \"capital\") or leave the "
                                                   "key out (the row then falls back to its fact group)"))
        for key in ("fact", "group"):
            v = meta.get(key)
            if isinstance(v, str) and not v.strip():
                # a blank one put every such row in one fallback family and one side of the split
                raise _row_rule(f"meta.{key}", f"is blank, which names no fact: write the row's fact (rows sharing it "
                                "stay on one side of the held-out split), or leave the key out (the row is then split "
                                f"by its meta.{'fact' if key == 'group' else 'group'}, else its id)")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
                raise _row_rule(f"meta.{key}", _FACT_RULE)
        if isinstance(meta.get("family"), str) and meta["family"].strip() and meta["family"] != meta["family"].strip():
            raise _row_rule("meta.family", f"{meta['family']!r} starts or ends with a space, which the report does not "
                            f"show, so it would read as family {meta['family'].strip()!r}; write it without")
        return self


#: what a row's meta.fact or meta.group must be
_FACT_RULE = ("must be a string or an integer naming the row's fact (rows sharing it stay on one side of the held-out "
              "split), or leave the key out")


def _row_rule(field: str, rule: str) -> PydanticCustomError:
    """A row-level rule broken by ``field`` ("answers", "meta.family"), for :func:`_describe`."""
    return PydanticCustomError("hguard_row_rule", "{field}: {rule}", {"field": field, "rule": rule})


def canonical_line(example: Example) -> str:
    """The JSON line `write_examples` writes for `example` (fixed key order, meta keys sorted)."""
    return json.dumps(_canonical_row(example), ensure_ascii=False, allow_nan=False)


def _canonical_row(ex: Example) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": ex.id,
        "question": ex.question,
        "answers": list(ex.answers),
        "domain": ex.domain,
        "kind": ex.kind,
    }
    if ex.context is not None:
        row["context"] = ex.context
    if ex.meta is not None:
        row["meta"] = json.loads(json.dumps(ex.meta, sort_keys=True))
    return row


def _show(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return cut_text(text, limit)


def _describe(err: ErrorDetails, row: dict[str, Any]) -> str:
    """Turn pydantic's first error into `field 'x': rule (got value)`."""
    loc = err.get("loc") or ()
    kind = err.get("type")
    if kind == "hguard_answers_required":
        return f"field 'answers': {_ANSWERS_REQUIRED} (got {_show(row.get('answers'))})"
    if kind == "hguard_answers_unjudgeable":
        return f"field 'answers': {_ANSWERS_UNJUDGEABLE} (got {_show(row.get('answers'))})"
    if kind == "hguard_row_rule":
        ctx = err.get("ctx") or {}
        name = str(ctx.get("field"))
        got = (row.get("meta") or {}).get(name[5:]) if name.startswith("meta.") else row.get(name)
        return f"field '{name}': {ctx.get('rule')} (got {_show(got)})"
    field = str(loc[0]) if loc else "?"
    if kind == "missing":
        import difflib

        near = difflib.get_close_matches(field, [k for k in row if isinstance(k, str) and k not in FIELDS], n=1, cutoff=0.75)
        return (
            f"field '{field}': missing; every row needs {', '.join(_REQUIRED)}"
            f" (got fields {_show(sorted(row))})" + (f"; did you mean '{field}' for '{near[0]}'? Rename it" if near else "")
        )
    if kind == "extra_forbidden":
        return (
            f"field '{field}': not a known field (allowed: {', '.join(FIELDS)};"
            f" put free-form data under 'meta') (got {_show(row.get(field))})"
        )
    rule = _RULES.get(field, err.get("msg", "invalid"))
    return f"field '{field}': {rule} (got {_show(row.get(field))})"


def _expand(path_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        items = [path_or_paths]
    else:
        try:
            items = list(path_or_paths)
        except TypeError:
            raise InputError(
                f"load_examples needs a path or a list of paths (got {path_or_paths!r});"
                " pass e.g. 'calibration/data/geography.jsonl'"
            ) from None
    if not items:
        raise InputError("load_examples got an empty list of paths; pass at least one .jsonl file")
    paths: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(f"load_examples got {item!r} where a path was expected; pass str or Path objects")
        p = Path(item)
        if p.is_dir():
            # A directory stands for its .jsonl files, in name order so the result is reproducible.
            found = sorted(p.glob("*.jsonl"))
            if not found:
                raise DataError(f"{p}: directory has no .jsonl files; pass a directory of .jsonl files or the files themselves")
            paths.extend(found)
        else:
            paths.append(p)
    first: dict[Path, Path] = {}
    for p in paths:  # the same file twice would read as every row a duplicate id of itself
        real = p.resolve()
        if real in first:
            raise InputError(f"{p} is given twice (also as {first[real]}, or inside a directory given); pass each "
                             "calibration file once")
        first[real] = p
    return paths


def load_examples(path_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Example]:
    """Read and validate every row of one or more JSONL files (a directory means its *.jsonl files).

    Blank lines are allowed. Bad rows raise one DataError after every row was checked: it names the
    file, line, field and reason of each (one line per row, the first 20, then how many more), so a file
    is mended in one pass; nothing is skipped. Ids must be unique across everything loaded in one
    call, because splits and stored results are keyed by id; two rows with context of one domain asking the
    same question with the same passage, spaces aside, are refused too, with both rows named.
    """
    examples: list[Example] = []
    seen: dict[str, tuple[Path, int]] = {}
    bad: list[tuple[str, str]] = []  # (where, what) of each bad row
    for path in _expand(path_or_paths):
        if not path.is_file():
            raise DataError(f"{path}: data file not found; check the path (cwd is {Path.cwd()})")
        n_rows = 0
        with path.open("rb") as fh:
            head = fh.read(4)
            if head.startswith(b"\x1f\x8b"):  # said as "not valid UTF-8 (byte 1: b'\x8b\x08...')"
                raise DataError(f"{path}: gzip-compressed, not JSON Lines text; decompress it first (`gunzip -k {path}`)")
            if looks_utf16(head):  # each line was "not valid UTF-8", then "not valid JSON (got "\u0000")"
                raise DataError(f"{path}: UTF-16 text, not UTF-8; convert it, e.g. `iconv -f utf-16 -t utf-8 {path} > "
                                f"{path.with_name(path.stem + '.utf8' + path.suffix)}`")
            fh.seek(0)
            for lineno, raw in enumerate(fh, start=1):
                try:
                    ex = _read_row(path, lineno, raw, seen)
                except DataError as e:
                    bad.append((f"{path} line {lineno}", str(e)))
                    n_rows += 1
                    continue
                if ex is not None:
                    seen[ex.id] = (path, lineno)
                    examples.append(ex)
                    n_rows += 1
        if n_rows == 0:
            raise DataError(f"{path}: file has no rows; add examples or leave the file out")
        mine = [what for where, what in bad if where.startswith(f"{path} line ")]
        if mine and len(mine) == n_rows and all(": not valid JSON (" in what for what in mine):
            # not one line is JSON: a CSV or a spreadsheet's export, not a row's mistake (it got a line per row)
            raise DataError(f"{path}: no line is a JSON object ({mine[0].split(': ', 1)[1].split(' (got')[0]} on line "
                            "1): calibration data is JSON Lines, one object per line with id, question, answers and "
                            "domain (README, 'Calibration data'); convert a CSV, e.g. with pandas: "
                            "pandas.read_csv(F).to_json(OUT, orient='records', lines=True) (answers as a list)")
    if len(bad) == 1:
        raise DataError(bad[0][1])
    if bad:
        rest = bad[_BAD_SHOWN:]
        more = [f"  and {len(rest)} more bad row{'s' if len(rest) > 1 else ''}, the last at {rest[-1][0]}"] if rest else []
        raise DataError("\n".join([f"{len(bad)} bad rows, nothing loaded; fix or remove each:"]
                                  + [f"  {what}" for _, what in bad[:_BAD_SHOWN]] + more))
    _check_family_spellings(examples, seen)
    _refuse_duplicate_rows(examples, seen)
    _warn_mistyped_meta(examples, seen)
    _warn_other_languages(examples)
    return examples


def _warn_other_languages(examples: list[Example]) -> None:
    """Say when rows ask in another language than English: the judge reads a reply's declining, negation and
    hedges in English (and yes/no as a reply's first word in a few others), so such replies may be labelled wrong."""
    from collections import Counter

    from .._text import language_of, reads_english, words_of

    # a margin of two function words: an English title of a few short words ("Cat on a Hot Tin Roof") is not read
    # as another language's (1 of the 5,011 bundled questions was, by one word)
    foreign = [e for e in examples if not reads_english(e.question, 2)]
    # named by the language most of its function words are (one word is enough to name a row already read as foreign)
    other = Counter(language_of(words_of(e.question)) for e in foreign)
    if other:
        langs = ", ".join(f"{n} in {lang.title() if lang != 'english' else 'another script'}"
                          for lang, n in other.most_common())
        ids = ", ".join(repr(e.id) for e in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        warnings.warn(f"{sum(other.values())} of {len(examples)} row(s) ask in another language than English ({langs}; "
                      f"id {ids}): "
                      "the judge reads a reply's declining ('the passage does not say'), negation and hedges in English "
                      "only, so a reply in that language may be labelled wrong; check the per-answer labels "
                      "(`hguard evaluate --json`, the calibration's answers), or write answers the model gives in English",
                      UserWarning, stacklevel=2)


def asked_key(example: Example) -> tuple[str, str, str | None]:
    """What a row asks the model, as two rows are told to be one: its domain, its question and its passage (None for a
    closed-book row), each with its whitespace folded, e.g. ("hr", "How long is leave?", "Leave is 20 days a year.")
    for a row whose passage reads "Leave is  20 days a year.\n". Rows with one key get one answer from the model
    (greedy), so calibration would count it once per row: :func:`load_examples` refuses such rows with context, and
    the review export (:func:`hguard.review.export.export_reviewed`) writes one row per key."""
    fold = " ".join
    return (example.domain, fold(example.question.split()),
            None if example.context is None else fold(example.context.split()))


def _refuse_duplicate_rows(examples: list[Example], seen: Mapping[str, tuple[Path, int]]) -> None:
    """Refuse rows with context of one domain that ask the same question with the same passage, spaces aside: the
    model gives them one answer, which RAG calibration would count twice in every figure (n inflated). Named by the
    first pair's files and lines, e.g. "hr.jsonl line 9 (id 'q9') repeats hr.jsonl line 2 (id 'q2'): ...". Nothing
    is dropped silently: the rows are the user's to remove."""
    first: dict[tuple[str, str, str | None], Example] = {}
    pairs: list[tuple[Example, Example]] = []
    for ex in examples:
        if ex.context is None:
            continue
        key = asked_key(ex)
        if key in first:
            pairs.append((first[key], ex))
        else:
            first[key] = ex
    if not pairs:
        return
    was, again = pairs[0]
    (pa, la), (pb, lb) = seen[was.id], seen[again.id]
    more = f" ({len(pairs)} duplicate rows in all)" if len(pairs) > 1 else ""
    raise DataError(f"{pb} line {lb} (id {again.id!r}) repeats {pa} line {la} (id {was.id!r}): the same question "
                    f"{_show(again.question, 60)} with the same passage (spaces aside) in domain {again.domain!r}, which "
                    f"the model answers once and calibration would count twice{more}; remove the duplicate rows, keeping "
                    "one of each")


def _check_family_spellings(examples: list[Example], seen: Mapping[str, tuple[Path, int]]) -> None:
    """Refuse families of one domain that differ only by case or inner spaces ("Definitions", "definitions"): each
    would be its own family in the leave-one-family-out figures and certificate, split by a typo."""
    spellings: dict[tuple[str, str], dict[str, str]] = {}
    for ex in examples:
        family = (ex.meta or {}).get("family")
        if isinstance(family, str) and family:
            where = seen[ex.id]
            spellings.setdefault((ex.domain, " ".join(family.split()).casefold()), {}).setdefault(
                family, f"{where[0]} line {where[1]}")
    clashes = [(domain, found) for (domain, _), found in spellings.items() if len(found) > 1]
    if clashes:
        domain, found = clashes[0]
        named = ", ".join(f"{f!r} (first at {w})" for f, w in found.items())
        more = f"; and {len(clashes) - 1} more such group(s)" if len(clashes) > 1 else ""
        raise DataError(f"domain {domain!r}: families {named} differ only by case or spaces, so each would be its own "
                        f"family in the figures; write each family one way{more}")


_BAD_SHOWN = 20  # bad rows given with their reason, one line each; the rest are counted


class _RowProblem(ValueError):
    """What is wrong with a line that parses as JSON but cannot be read as one row."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each written once: JSON readers keep the last of a repeated key, so an edited or
    merged export silently calibrated on the second "question" of a row."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RowProblem(f"the key {key!r} is written twice ({_show(out[key])} and {_show(value)}), and a JSON "
                              "reader keeps only the last: keep the one you mean")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _RowProblem(f"{name} is no JSON value (Python writes it for a float that is not a number): write null or a number")


def _read_row(path: Path, lineno: int, raw: bytes, seen: dict[str, tuple[Path, int]]) -> Example | None:
    """One line of a calibration file as an Example (None for a blank line); DataError names what is wrong."""
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} line {lineno}: not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 4]!r});"
            " re-save the file as UTF-8"
        ) from None
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        row = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _RowProblem as e:
        raise DataError(f"{path} line {lineno}: {e}; fix the row or remove it") from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path} line {lineno}: not valid JSON ({e.msg} at column {e.colno}) (got {_show(text.strip())});"
            " fix the row or remove it"
        ) from None
    except RecursionError:
        raise DataError(f"{path} line {lineno}: nested more deeply than Python's JSON reader can follow (got "
                        f"{_show(text.strip())}); fix the row or remove it") from None
    if not isinstance(row, dict):
        raise DataError(
            f"{path} line {lineno}: expected a JSON object with fields {', '.join(_REQUIRED)}"
            f" (got {_show(row)}); fix the row or remove it"
        )
    try:
        ex = Example.model_validate(row)
    except ValidationError as e:
        raise DataError(f"{path} line {lineno}: {_describe(e.errors()[0], row)}; fix the row or remove it") from None
    if ex.id in seen:
        other_path, other_line = seen[ex.id]
        where = f"line {other_line}" if other_path == path else f"{other_path} line {other_line}"
        raise DataError(
            f"{path} line {lineno}: field 'id': duplicate id {_show(ex.id)} (first at {where});"
            " ids must be unique, rename one row or remove it"
        )
    return ex


# The meta keys calibration reads (README "Calibration data"); any other key travels unread.
META_KEYS = ("family", "group", "fact", "condition", "judge", "label", "misleading_answer", "right_answer", "dataset")
# meta.condition of a row with context: what its passage is to its question
CONDITIONS = ("supporting", "offtopic", "misleading", "unanswerable")


def rag_family_unused(examples: Sequence[Example]) -> str | None:
    """What RAG calibration makes of the ``meta.family`` of rows with context, where any sets one (None otherwise):
    nothing. It splits by passage (``meta.group``) and certifies its thresholds on passages it never saw; the
    closed-book calibration's leave-one-family-out figures and per-family certificate (:mod:`hguard.calibrate.
    families`) have no RAG counterpart. Warned once by :func:`warn_rag_meta` and said in the RAG report's split (a user
    calibrating their own domain set meta.family on every row and nothing said it went unread), e.g.
    "40 row(s) with context set meta.family (2 families, first row 'q1'): RAG calibration splits by passage ...".
    A review export's own ``family "reviewed"`` (``meta.source "review"``) is not the user's, and is not named; a
    family a user wrote over it is."""
    rows = [e for e in examples if e.context is not None and isinstance((e.meta or {}).get("family"), str)
            and not ((e.meta or {}).get("source") == "review" and (e.meta or {})["family"] == "reviewed")]
    if not rows:
        return None
    k = len({(e.meta or {})["family"] for e in rows})
    return (f"{len(rows)} row(s) with context set meta.family ({k} {'family' if k == 1 else 'families'}, first row "
            f"{rows[0].id!r}): RAG calibration splits by passage (meta.group) and does not use meta.family, so it gives "
            "no leave-one-family-out figures or per-family certificate as closed-book calibration does: its thresholds "
            "are checked on passages it never saw, not on kinds of question it never saw (to check one family, "
            "calibrate without its rows and score them with `hguard evaluate --rag --data`)")


def warn_rag_meta(examples: Sequence[Example]) -> None:
    """One warning per kind of RAG row calibration would misread: an unknown ``meta.condition`` (its rows are
    reported under it but no target reads them), a misleading row without ``meta.misleading_answer`` (the
    judge cannot tell an answer that followed the passage from any other wrong one, so the knowledge-conflict
    detector gets no contrast from it), a row answering "yes" or "no" alone without ``meta.judge = "yesno"``, and
    rows that set ``meta.family``, which RAG calibration does not read (:func:`rag_family_unused`)."""

    unknown: dict[str, list[str]] = {}
    bare = []
    for e in examples:
        cond = (e.meta or {}).get("condition")
        if cond is not None and cond not in CONDITIONS:
            unknown.setdefault(str(cond), []).append(e.id)
        if cond == "misleading" and not (e.meta or {}).get("misleading_answer"):
            bare.append(e.id)
    for cond, ids in sorted(unknown.items()):
        warnings.warn(f"{len(ids)} row(s) have meta.condition {cond!r} (first: {ids[0]!r}), which calibration does not "
                      f"know: use one of {', '.join(CONDITIONS)}", UserWarning, stacklevel=2)
    if bare:
        warnings.warn(f"{len(bare)} misleading row(s) have no meta.misleading_answer (first: {bare[0]!r}): the judge cannot "
                      "tell an answer that follows the passage, so the knowledge-conflict detector learns nothing from "
                      "them; give the passage's false answer in meta.misleading_answer (the true one in meta.right_answer "
                      "or answers)", UserWarning, stacklevel=2)
    # answers of yes or no alone, judged by the words of the reply (a health insurer's trial: "Quilting suture prevents
    # seroma." was labelled hallucinated for "yes", with no word)
    plain = [e.id for e in examples if e.context is not None and (e.meta or {}).get("judge") != "yesno"
             and {a.strip().strip(".!").casefold() for a in e.answers} in ({"yes"}, {"no"})]  # ["Yes."], ["no", "No"]
    if plain:
        warnings.warn(f"{len(plain)} row(s) with context answer only \"yes\" or \"no\" but set no meta.judge = \"yesno\" "
                      f"(first: {plain[0]!r}): the answer judge then looks for the word itself, so a reply that says "
                      "it in a sentence (\"Quilting suture prevents seroma.\") is labelled wrong; set meta.judge = "
                      "\"yesno\" on them", UserWarning, stacklevel=2)
    family = rag_family_unused(examples)
    if family:
        warnings.warn(family, UserWarning, stacklevel=2)


def _warn_mistyped_meta(examples: Sequence[Example], where: dict[str, tuple[Path, int]]) -> None:
    """One warning per meta key that looks like a mistyped one calibration reads (``famly``): such a row
    is still loaded, but its value is never read (a row without ``family`` falls back to its fact group)."""
    import difflib

    typos: dict[tuple[str, str], list[str]] = {}
    for ex in examples:
        for key in ex.meta or ():
            if key in META_KEYS:
                continue
            close = difflib.get_close_matches(key.lower(), META_KEYS, n=1, cutoff=0.75)
            if close and close[0] not in (ex.meta or {}):
                typos.setdefault((key, close[0]), []).append(ex.id)
    for (key, meant), ids in sorted(typos.items()):
        path, line = where[ids[0]]
        warnings.warn(
            f"{len(ids)} row(s) have meta key {key!r} (first: {path} line {line}), which calibration does not read; "
            f"did you mean 'meta.{meant}'? Rename the key, or ignore this if {key!r} is your own",
            UserWarning, stacklevel=3,
        )


def rows_for_mode(examples: Sequence[Example], *, rag: bool) -> list[Example]:
    """The rows a calibration or evaluation of one prompt mode answers: with ``rag``, rows with a ``context``
    (answered through the context prompt), else rows without one (closed-book). The others are left out with
    one warning naming their count, the first id and the command for them, so one file (e.g. a review export)
    can feed both; when none is left, DataError says so."""

    keep = [e for e in examples if (e.context is not None) == rag]
    other = [e for e in examples if (e.context is not None) != rag]
    if not other:
        return keep
    if rag:
        said = (f"{len(other)} rows have no context (first: {other[0].id!r}); RAG probes are fitted and scored on answers "
                "given from a passage: give each row its `context`, or calibrate rows without one closed-book "
                "(`hguard calibrate`)")
    else:
        said = (f"{len(other)} rows have a context (first: {other[0].id!r}); closed-book probes are fitted and scored "
                "on answers given without a passage: calibrate rows with context with `hguard calibrate-rag` "
                "(evaluate them with `hguard evaluate --rag`)")
    if not keep:
        raise DataError(said + "; no row is left for this command")
    warnings.warn(f"left out: {said}", UserWarning, stacklevel=2)
    return keep


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example], mode: int | None = None) -> Path:
    """Write examples as canonical JSONL (UTF-8, '\\n' line ends), replacing the file atomically.

    The same examples always give the same bytes, so committed data files can be checked for drift. ``mode``: the
    file's permissions from its first byte, narrowed by the umask (reviewed live answers: ``hguard._privacy.FILE_MODE``);
    by default an existing file's, else the umask's.
    """
    rows = list(examples)
    seen: set[str] = set()
    for i, ex in enumerate(rows):
        if not isinstance(ex, Example):
            raise InputError(f"write_examples item {i} is {type(ex).__name__}, not Example; build it with Example(...)")
        if ex.id in seen:
            raise InputError(f"write_examples: duplicate id {ex.id!r} (item {i}); ids must be unique in a file")
        seen.add(ex.id)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(canonical_line(ex) + "\n" for ex in rows).encode("utf-8")
    # Write beside the target and rename, so a crash never leaves a half-written calibration file.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        # mkstemp creates the file private (0600); a data file should get the usual permissions.
        os.chmod(tmp, _file_mode(target) if mode is None else private_mode(mode))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _file_mode(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o777
    return private_mode(0o666)


def data_hash(examples: Iterable[Example]) -> str:
    """sha256 (hex) of the canonical rows, sorted so that row and file order do not matter."""
    lines = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, Example):
            raise InputError(f"data_hash item {i} is {type(ex).__name__}, not Example; load rows with load_examples")
        lines.append(json.dumps(_canonical_row(ex), ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def row_order_hash(ids: Iterable[str]) -> str:
    """sha256 (hex) of the row ids in the order given (one per line): the order a calibration fitted its rows in,
    which :func:`data_hash` leaves out by design but the fit depends on (its folds and solver: the same rows in
    another order gave another C, other neurons and thresholds, another probe_id)."""
    digest = hashlib.sha256()
    for i in ids:
        digest.update(str(i).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _unit(key: str, seed: int) -> float:
    # Each key gets its own uniform draw, so adding or removing rows never moves other rows
    # between train and test (a shuffled-list split would).
    h = hashlib.sha256(f"hguard-split\x00{seed}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _check_split_args(test_fraction: float, seed: int) -> None:
    if not is_real(test_fraction) or not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be a number strictly between 0 and 1 (got {test_fraction!r}); e.g. 0.3")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an int (got {seed!r}); e.g. 0")


def split_ids(ids: Iterable[str], test_fraction: float = 0.3, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split ids into (train, test), each in input order.

    An id goes to test when the hash of (seed, id) falls below test_fraction, so the split is the
    same on every machine, stable when rows are added, and monotone in test_fraction. The test
    share is test_fraction only on average: small sets can come out uneven (or one side empty).
    """
    _check_split_args(test_fraction, seed)
    train: list[str] = []
    test: list[str] = []
    seen: set[str] = set()
    for i in ids:
        if not isinstance(i, str):
            raise InputError(f"split_ids: ids must be strings (got {i!r}); pass example ids")
        if i in seen:
            raise InputError(f"split_ids: duplicate id {i!r}; ids must be unique")
        seen.add(i)
        (test if _unit(i, seed) < test_fraction else train).append(i)
    return train, test


def split_examples(
    examples: Sequence[Example],
    test_fraction: float = 0.3,
    seed: int = 0,
    group_by: str | None = None,
) -> tuple[list[Example], list[Example]]:
    """Split examples into (train, test), each in input order.

    With group_by=None each example is placed by its id (the same split as `split_ids`). With
    group_by="fact" (or another meta key) all examples sharing that meta value within a domain land
    on the same side, so several phrasings of one fact never sit on both sides of the split.
    """
    _check_split_args(test_fraction, seed)
    train: list[Example] = []
    test: list[Example] = []
    seen: set[str] = set()
    for ex in examples:
        if not isinstance(ex, Example):
            raise InputError(f"split_examples: got {type(ex).__name__}, not Example; load rows with load_examples")
        if ex.id in seen:
            raise InputError(f"split_examples: duplicate id {ex.id!r}; ids must be unique")
        seen.add(ex.id)
        if group_by is None:
            key = ex.id
        else:
            if not ex.meta or group_by not in ex.meta:
                raise DataError(
                    f"split_examples: example {ex.id!r} has no meta[{group_by!r}] to group by"
                    f" (meta is {_show(ex.meta)}); add it to every row or use group_by=None"
                )
            key = f"{ex.domain}\x00{json.dumps(ex.meta[group_by], sort_keys=True)}"
        (test if _unit(key, seed) < test_fraction else train).append(ex)
    return train, test
