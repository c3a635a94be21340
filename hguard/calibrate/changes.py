"""What changed between two calibration reports (``report.json``), e.g. before and after adding reviewed
rows from the field (``hguard review export``): per domain the data, the probe's quality and the routing at
the report's target. Held-out figures of two runs come from different held-out sets when the data changed:
each domain's notes say whether the two held-out sets are the same rows (reports record a digest of their ids,
``held_out_set``) with the same answers and labels (``held_out_answers``: the same rows answered with other
generation settings are other answers) and where the reviewed rows went (always to training); read differences
between different held-out sets with the intervals in each report. Two calibrations of different models (another
model fingerprint) are not comparable at all: the changes say so first (``other_model``), and their figures are shown
side by side under each model's name, not as what changed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError

__all__ = ["FIELDS", "changes_markdown", "load_report", "other_model", "report_changes"]

# (label, path into a domain's entry in report.json)
FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("training answers", ("train", "n")),
    ("held-out answers", ("n",)),
    ("reviewed items used", ("reviewed_items_used",)),
    ("reviewer disagreed with the probe", ("reviewer_disagreements",)),
    ("held-out hallucination rate", ("hallucination_rate",)),
    ("AUROC probe", ("auroc", "probe")),
    ("AUROC merged", ("auroc", "merged")),
    ("accept_below at the target", ("at_target", "accept_below")),
    ("held-out coverage at the target", ("at_target", "coverage")),
    ("held-out accepted hallucination rate", ("at_target", "accepted_hallucination_rate")),
)


def load_report(folder: str | os.PathLike[str]) -> dict:
    """``folder/report.json`` (or the file itself), with a clear error when it is missing or not a report."""
    path = Path(folder)
    path = path / "report.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no calibration report at {path}; pass the folder an earlier `hguard calibrate --out` wrote") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"calibration report {path} cannot be read ({exc}); pass a report.json written by hguard calibrate") from None
    if not isinstance(data, dict) or not isinstance(data.get("domains"), dict):
        raise InputError(f"{path} is not a calibration report (no 'domains' table); pass a report.json written by hguard calibrate")
    return data


def _get(entry: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(entry, Mapping):
            return None
        entry = entry.get(key)  # type: ignore[assignment]
    return entry


def report_changes(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict:
    """``{"domains": {name: [{"what", "before", "after"}...]}, "notes": {name: [sentence, ...]}, "added": [...],
    "removed": [...], "other_model": sentence or None}``; a domain's list holds only the fields whose value changed,
    its notes whether the held-out sets are the same rows with the same answers and where the reviewed rows went;
    ``other_model`` says when the previous calibration was of another model (its figures are not comparable)."""
    before, after = previous.get("domains") or {}, current.get("domains") or {}
    other = other_model(previous, current)
    out: dict[str, Any] = {"domains": {}, "notes": {}, "added": sorted(set(after) - set(before)),
                           "removed": sorted(set(before) - set(after)), "other_model": other}
    for name in sorted(set(before) & set(after)):
        rows = []
        for label, path in FIELDS:
            a, b = _get(before[name], path), _get(after[name], path)
            if a != b:
                rows.append({"what": label, "before": a, "after": b})
        out["domains"][name] = rows
        out["notes"][name] = _notes(before[name], after[name]) if other is None else [
            "the previous calibration was of another model: its figures are measured on another model's answers and "
            "neurons, not comparable with these"] + ([str(after[name]["reviewed_split"])]
                                                     if after[name].get("reviewed_split") else [])
    return out


def _model(report: Mapping[str, Any]) -> tuple[str, str | None]:
    """A report's model name and model fingerprint (None where it records none: an older or hand-written one)."""
    fp = (report.get("fingerprints") or {}).get("model_fingerprint") if isinstance(report.get("fingerprints"), Mapping) else None
    return str(report.get("model") or "an unnamed model"), fp if isinstance(fp, str) else None


def other_model(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """A sentence saying the two calibrations are of different models (each named, with its fingerprint), or None
    when they are of the same one (or a report records no model fingerprint: nothing to tell them apart by)."""
    (name_a, fp_a), (name_b, fp_b) = _model(previous), _model(current)
    if fp_a is None or fp_b is None or fp_a == fp_b:
        return None
    return (f"the previous calibration was of another model ({name_a}, model fingerprint {fp_a}) than this one "
            f"({name_b}, model fingerprint {fp_b}): its figures are measured on another model's answers and neurons, so "
            "they are not comparable with these and say nothing of what changed; pass --previous the folder of an "
            "earlier calibration of this model")


def _notes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Whether the two held-out figures are measured on the same rows with the same answers and labels, and where
    the reviewed rows went."""
    a, b = before.get("held_out_set"), after.get("held_out_set")
    answers_a, answers_b = before.get("held_out_answers"), after.get("held_out_answers")
    n = f"{_fmt(_get(before, ('n',)))} -> {_fmt(_get(after, ('n',)))} answers"
    read = "so read their differences with the intervals in each report"
    if a is not None and a == b and answers_a is not None and answers_a == answers_b:
        notes = [f"the held-out set is the same rows with the same answers and labels in both "
                 f"({_fmt(_get(after, ('n',)))}): its figures compare like with like"]
    elif a is not None and a == b:
        notes = [f"the held-out set is the same rows in both ({_fmt(_get(after, ('n',)))}), but "
                 + ("their answers or labels differ (other generation settings, another model or other labels): its "
                    f"figures are measured on different answers, {read}" if answers_a is not None and answers_b is not None
                    else f"the {'previous' if answers_a is None else 'new'} report records no digest of their answers: "
                         f"they may differ, {read}")]
    elif a is not None and b is not None or _get(before, ("n",)) != _get(after, ("n",)):
        notes = [f"the held-out set differs ({n}): its figures are measured on different answers, {read}"]
    else:
        notes = [f"the previous report records no digest of its held-out answers ({n}): they may differ"]
    if after.get("reviewed_split"):
        notes.append(str(after["reviewed_split"]))
    return notes


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "-" if v is None else str(v)


def changes_markdown(changes: Mapping[str, Any]) -> str:
    other = changes.get("other_model")
    lines = ["# Changes since the previous calibration", ""] if not other else [
        "# This calibration beside a previous one of another model", "", f"{other[:1].upper()}{other[1:]}.", ""]
    before, after = ("before", "after") if not other else ("previous (another model)", "this calibration")
    for name, rows in changes["domains"].items():
        lines.append(f"## {name}")
        notes = [f"- {n[:1].upper()}{n[1:]}." for n in changes.get("notes", {}).get(name, [])]
        if not rows:
            lines += ["", "No reported figure differs." if other else "No reported figure changed.", "", *notes] + (
                [""] if notes else [])
            continue
        lines += ["", f"| | {before} | {after} |", "|---|---|---|"]
        lines += [f"| {r['what']} | {_fmt(r['before'])} | {_fmt(r['after'])} |" for r in rows]
        lines.append("")
        if notes:
            lines += [*notes, ""]
    for key, word in ((("added", "new domains"), ("removed", "domains no longer calibrated")) if not other else
                      (("added", "domains only this calibration has"), ("removed", "domains only the previous one has"))):
        if changes[key]:
            lines.append(f"{word}: {', '.join(changes[key])}")
    return "\n".join(lines) + "\n"
