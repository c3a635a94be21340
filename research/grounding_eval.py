"""Evaluation of the grounding signals: AUROC of each signal (and the merged support) for telling right
from hallucinated answers on rows with ``question``, ``context``, ``right_answer`` and
``hallucinated_answer`` (HaluEval QA style), overall and on a length-matched subset.

Research harness, not part of the installed runtime: ``benchmarks/grounding.py`` runs it, and
``python -m research.grounding_eval --data FILE.jsonl --json`` prints the JSON shape the README gives.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import Any


from hguard._stats import auroc
from hguard.errors import DataError, HGuardError, InputError
from hguard.signals.grounding import GroundingScorer

# ------------------------------------------------------------------------------------- evaluation


_ROW_FIELDS = ("question", "context", "right_answer", "hallucinated_answer")


def _normalise_row(row: Any, where: str) -> dict[str, Any]:
    """A row in hguard's form; HaluEval (``knowledge``) and ConflictNQ rows are converted."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be a JSON object, got {type(row).__name__}: {row!r:.80}")
    row = dict(row)
    if "context" not in row and "knowledge" in row:  # HaluEval QA
        row["context"] = row["knowledge"]
    if "context" not in row and "real_passages" in row:  # ConflictNQ: real passages, real vs fake answer
        passages = row["real_passages"]
        if not isinstance(passages, list) or not all(
            isinstance(p, dict) and isinstance(p.get("passage"), str) for p in passages
        ):
            raise DataError(
                f"{where}: field 'real_passages' must be a list of {{\"passage\": str}} objects, got "
                f"{passages!r:.80}; fix the row"
            )
        row["context"] = [p["passage"] for p in passages]
        row.setdefault("right_answer", row.get("real_short_answer"))
        row.setdefault("hallucinated_answer", row.get("fake_short_answer"))
    for f in _ROW_FIELDS:
        if f not in row or row[f] is None:
            raise DataError(
                f"{where}: missing field {f!r} (the row has {sorted(row)}); every row needs "
                f"{list(_ROW_FIELDS)} (HaluEval's 'knowledge' is accepted for 'context')"
            )
        v = row[f]
        if f == "context" and isinstance(v, list):
            if not v or not all(isinstance(p, str) for p in v):
                raise DataError(f"{where}: field 'context' must be a str or a non-empty list of str, got {v!r:.80}")
            continue
        if not isinstance(v, str):
            raise DataError(f"{where}: field {f!r} must be a string, got {type(v).__name__}: {v!r:.80}")
        if not v.strip():
            raise DataError(f"{where}: field {f!r} is empty; give it text or drop the row")
    return {f: row[f] for f in _ROW_FIELDS}


def read_grounding_jsonl(path: str | Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Read labelled grounding rows from a JSON-lines file (a JSON array is accepted too).

    Each row needs ``question``, ``context`` (str or list of str), ``right_answer`` and
    ``hallucinated_answer``; HaluEval QA rows (``knowledge``) and ConflictNQ rows (``real_passages``,
    ``real_short_answer``, ``fake_short_answer``) are converted. Blank lines are skipped. Raises
    DataError naming the file, the line and the field.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive int, got {limit!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"grounding data file not found: {str(path)!r}; pass an existing .jsonl file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read grounding data file {str(path)!r}: {exc}; pass a UTF-8 .jsonl file") from exc
    rows: list[dict[str, Any]] = []
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); write one JSON object per line") from exc
        for i, r in enumerate(data):
            rows.append(_normalise_row(r, f"{path}: item {i}"))
            if limit and len(rows) >= limit:
                break
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg}): {line.strip()!r:.80}; "
                    "write one JSON object per line"
                ) from None
            rows.append(_normalise_row(r, f"{path}:{lineno}"))
            if limit and len(rows) >= limit:
                break
    if not rows:
        raise DataError(f"{path}: no rows; the file is empty")
    return rows


def _signal_name(key: str) -> str:
    return key[len("grounding_") :] if key.startswith("grounding_") else key


def _risks(scores: list[dict[str, float]], lengths: list[int]) -> dict[str, list[float]]:
    """Each signal's risk per answer (1 - support), the merged one and the answer-length baseline."""
    out = {_signal_name(key): [1.0 - s[key] for s in scores] for key in (scores[0] if scores else []) if key != "grounding"}
    if scores:
        out["merged"] = [1.0 - s["grounding"] for s in scores]
    out["length"] = [float(n) for n in lengths]
    return out


def _aurocs(scores: list[dict[str, float]], labels: list[int], lengths: list[int]) -> dict[str, float | None]:
    return {k: auroc(labels, v) for k, v in _risks(scores, lengths).items()}


def _auroc_cis(scores: list[dict[str, float]], labels: list[int], lengths: list[int]) -> dict[str, list[float] | None]:
    """The 95% interval of each AUROC of :func:`_aurocs`: the calibration report's bootstrap (within each class,
    widened below ten answers of a class)."""
    from hguard._stats import auroc_ci

    return auroc_ci(labels, _risks(scores, lengths)) if len(set(labels)) == 2 else {}


def score_grounding_rows(
    rows: Sequence[dict], *, scorer: GroundingScorer, progress: bool = False, length_tolerance: int = 1
) -> list[dict[str, Any]]:
    """Score both answers of every row: one record per answer with ``row``, ``label`` (0 right,
    1 hallucinated), ``words`` (answer length), ``length_matched`` (the row's two answers differ by at
    most ``length_tolerance`` words) and ``signals`` (what :meth:`GroundingScorer.score` returns)."""
    if not isinstance(scorer, GroundingScorer):
        raise InputError(
            f"scorer must be a GroundingScorer, got {type(scorer).__name__}; build one with GroundingScorer()"
        )
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise InputError(
            f"rows must be a list of dicts, got {type(rows).__name__}; read them with read_grounding_jsonl"
        )
    rows = [_normalise_row(r, f"row {i}") for i, r in enumerate(rows)]
    it: Iterable = rows
    if progress:
        from tqdm import tqdm

        it = tqdm(rows, desc="evaluate-grounding", unit="row", file=sys.stderr)
    records: list[dict[str, Any]] = []
    for i, r in enumerate(it):
        answers = [r["right_answer"], r["hallucinated_answer"]]
        pair = scorer.score_answers(r["question"], answers, r["context"])
        n_words = [len(a.split()) for a in answers]
        same = abs(n_words[0] - n_words[1]) <= length_tolerance
        for label, sig, n in zip((0, 1), pair, n_words):
            records.append({"row": i, "label": label, "words": n, "length_matched": same, "signals": sig})
    return records


def summarise_grounding(records: Sequence[dict[str, Any]], *, length_tolerance: int = 1) -> dict[str, Any]:
    """The AUROC summary of :func:`evaluate_grounding` from :func:`score_grounding_rows` records."""

    def part(recs, how=_aurocs):
        if not recs:
            return {}
        return how([r["signals"] for r in recs], [r["label"] for r in recs], [r["words"] for r in recs])

    sub = [r for r in records if r["length_matched"]]
    return {
        "n": len({r["row"] for r in records}),
        "n_answers": len(records),
        "auroc": part(list(records)),
        "auroc_ci95": part(list(records), _auroc_cis),
        "length_matched": {
            "n": len({r["row"] for r in sub}),
            "n_answers": len(sub),
            "max_word_difference": length_tolerance,
            "auroc": part(sub),
            "auroc_ci95": part(sub, _auroc_cis),
        },
    }


def evaluate_grounding(
    rows: Sequence[dict], *, scorer: GroundingScorer, progress: bool = False, length_tolerance: int = 1
) -> dict[str, Any]:
    """AUROC of every grounding signal at telling right answers (label 0) from hallucinated ones (1).

    Each row gives two scored answers; the risk is ``1 - support``. ``length`` is the baseline of the
    answer's length in words. ``length_matched`` repeats the figures on the rows whose two answers
    differ by at most ``length_tolerance`` words, where length cannot give the answer away.
    Returns ``{"n", "n_answers", "auroc": {signal: AUROC, "merged", "length"}, "length_matched":
    {"n", "n_answers", "max_word_difference", "auroc"}}``; an AUROC is None where it is undefined.
    """
    records = score_grounding_rows(rows, scorer=scorer, progress=progress, length_tolerance=length_tolerance)
    return summarise_grounding(records, length_tolerance=length_tolerance)


# -------------------------------------------------------------------------------------------- CLI


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _format_table(result: dict[str, Any]) -> str:
    lm = result["length_matched"]
    names = list(result["auroc"])
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        f"| signal | AUROC all ({result['n']} rows) | AUROC length-matched ({lm['n']} rows) |",
        "|---|---|---|",
    ]
    for k in names:
        lines.append(f"| {k} | {fmt(result['auroc'][k])} | {fmt(lm['auroc'].get(k))} |")
    return "\n".join(lines)


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``python -m research.grounding_eval --data FILE.jsonl [--json] [--limit N] [--no-model]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m research.grounding_eval",
        description="AUROC of the grounding signals on labelled rows (question, context, right_answer, "
        "hallucinated_answer; HaluEval QA and ConflictNQ files are read as they are).",
    )
    parser.add_argument("--data", required=True, help="JSON-lines file of labelled rows")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--limit", type=_positive_int, default=None, help="use the first N rows only")
    parser.add_argument(
        "--no-model", action="store_true", help="skip the model-based signal (no LM is loaded; much faster)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        rows = read_grounding_jsonl(args.data, limit=args.limit)
        model = tokenizer = None
        if not args.no_model:
            from hguard.models import load_model

            loaded = load_model("default")
            model, tokenizer = loaded.model, loaded.tokenizer
        scorer = GroundingScorer(model=model, tokenizer=tokenizer)
        result = evaluate_grounding(rows, scorer=scorer, progress=sys.stderr.isatty())
    except HGuardError as exc:
        print(f"research.grounding_eval: error: {exc}", file=sys.stderr)
        return 2
    result["data"] = str(args.data)
    result["model"] = not args.no_model
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main())
