"""Each domain's plan, built once when the guard loads its probes.

A plan says which calibration scores a request without context and which one a request with context
(the domain's RAG calibration, or its closed-book one where the policy allows it), the thresholds each
routes by (fitted for the policy's own target and confidence on the calibration scores the file
carries, with the policy's fixed thresholds over them), and whether the guard's generation settings
are the ones the calibration certifies. Nothing is fitted per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .domain import CalibratedDomain
from .errors import ProbeError, error_text
from .policy import Thresholds, effective_thresholds
from .settings import CLOSED_BOOK, RAG, GenerationSettings, calibrate_hint


@dataclass(frozen=True)
class Route:
    """What scores one kind of request (with context or not) in one domain."""

    domain: CalibratedDomain | None  # None: no calibration can score it (``problem`` says why, if anything)
    thresholds: Thresholds | None = None  # fitted for the policy, with its fixed thresholds applied
    fitted: Thresholds | None = None  # fitted for the policy (or stored), before the policy's fixed ones
    problem: str | None = None  # why no calibration scores it, or why a closed-book one does
    generation_problem: str | None = None  # the policy's generation settings against the calibration's


@dataclass(frozen=True)
class DomainPlan:
    """One domain's closed-book and RAG calibrations and how each kind of request is scored."""

    name: str
    closed_book: CalibratedDomain | None
    rag: CalibratedDomain | None
    without_context: Route
    with_context: Route

    def route(self, rag: bool) -> Route:
        return self.with_context if rag else self.without_context


def _route(cd: CalibratedDomain, dp, settings: GenerationSettings, problem: str | None = None) -> Route:
    fitted = cd.fit_thresholds(dp)
    thresholds = effective_thresholds(dp, fitted, cd.calibration_scores) if dp is not None else fitted
    return Route(cd, thresholds, fitted, problem, cd.generation_problem(settings))


def build_plan(name: str, closed_book: CalibratedDomain | None, rag: CalibratedDomain | None, policy,
               settings: GenerationSettings, refused: Mapping[str, str] | None = None, lm: Any = None) -> DomainPlan:
    """The plan of domain ``name`` under ``policy`` for a guard on ``lm`` generating with ``settings`` (the
    calibration its reasons name is for them: :func:`~hguard.settings.calibrate_hint`); ``refused`` says, by
    prompt mode, why the domain's probe of that mode cannot serve this guard (another model's layout): its requests
    go to review with that reason while the other mode's probe serves."""
    dp = policy.domain(name)
    refused = refused or {}

    def refused_route(mode: str) -> Route:
        served = "without context are scored by its closed-book probe" if mode == RAG else "with context by its RAG probe"
        return Route(None, problem=f"the {'RAG' if mode == RAG else 'closed-book'} probe of domain {name!r} cannot serve: {refused[mode]} "
                                   f"(requests {served})")

    without = Route(None)
    if closed_book is not None:
        without = _route(closed_book, dp, settings)
    elif CLOSED_BOOK in refused:
        without = refused_route(CLOSED_BOOK)
    elif rag is not None:
        without = Route(None, problem=(
            f"domain {name!r} is calibrated for requests with context only, and this request has none (no context "
            f"passed, or nothing retrieved); pass the retrieved passages, or calibrate the domain closed-book for "
            f"questions asked without them{_how(lm, settings, name, rag=False)}"
        ))
    with_ctx = Route(None)
    if rag is not None:
        with_ctx = _route(rag, dp, settings)
    elif RAG in refused:  # its RAG calibration is refused, not absent: context_with_closed_book_probe does not apply
        with_ctx = refused_route(RAG)
    elif closed_book is not None:
        if dp is not None and dp.context_with_closed_book_probe == "allow":
            with_ctx = without
        else:
            with_ctx = Route(None, problem=(
                f"domain {name!r} is calibrated closed-book only, and a request with context needs a RAG "
                f"calibration; calibrate it with {_how(lm, settings, name, rag=True, bare=True)}, or set context_with_closed_book_probe "
                f"= \"allow\" in the policy to score it with the closed-book probe"
            ))
    return DomainPlan(name, closed_book, rag, without, with_ctx)


def _how(lm: Any, settings: GenerationSettings, name: str, *, rag: bool, bare: bool = False) -> str:
    """:func:`~hguard.settings.calibrate_hint` for a plan's reasons (`` (HINT)``, or ``bare``: the hint alone); the
    bare command where no model is given (a plan built without a guard)."""
    if lm is None:
        return f"`hguard calibrate{'-rag' if rag else ''}`" if bare else ""
    hint = calibrate_hint(lm, settings, name, rag=rag)
    return hint if bare else f" ({hint})"


def folder_missing(folder: str | Path) -> str:
    """What is wrong with a probe folder that is not a folder, said after its name: it does not exist, or it is a
    file (a probe file given for its folder: "does not exist" sent the user looking for a path that is there)."""
    if Path(folder).is_file():
        return f"is a file, not a folder (a probe file? its folder is {str(Path(folder).parent)!r})"
    return "does not exist"


def read_probe_folder(folder: Path, signing: Mapping[str, Any], error_modes: dict[str, str] | None = None,
                      ) -> tuple[dict[tuple[str, str], CalibratedDomain], dict[str, str]]:
    """Every calibrated domain in ``folder`` by (name, prompt mode), and why each unreadable file or
    contested domain is left out (by domain, or by file stem when the file names none); ``error_modes`` (when
    given) gets the prompt mode of each contested domain's error."""
    errors: dict[str, str] = {}
    if not folder.is_dir():
        errors["*"] = f"probe folder {str(folder)!r} {folder_missing(folder)}; point the policy's probes at the folder `hguard calibrate --out` wrote"
        return {}, errors
    root = folder.resolve()
    claims: dict[tuple[str, str], list[Path]] = {}
    loaded: dict[tuple[str, str], CalibratedDomain] = {}
    for p in sorted(folder.glob("*.json")):
        if p.name == "report.json":
            continue
        try:
            target = p.resolve()
            if target.parent != root:
                raise ProbeError(
                    f"probe file {str(p)!r} links to {str(target)!r}, outside the probe folder; "
                    "copy the probe into the folder instead of linking it"
                )
            cd = CalibratedDomain.load(target, **signing)
        except Exception as exc:  # one bad file disables its domain, not the guard
            reason = str(exc) if isinstance(exc, ProbeError) else f"probe file {str(p)!r} cannot be loaded: {error_text(exc)}"
            errors[p.stem] = reason
            continue
        # a domain may hold one closed-book and one RAG probe: a claim is a domain in a prompt mode
        key = (cd.name or p.stem, cd.prompt_mode)
        claims.setdefault(key, []).append(p)
        loaded[key] = cd
    for (name, mode), files in claims.items():
        if len(files) > 1:
            errors[name] = (
                f"probe files {', '.join(repr(str(f)) for f in files)} all claim domain {name!r} "
                f"({mode.replace('_', '-')}); remove all but one of them from the probe folder"
            )
            if error_modes is not None:
                error_modes[name] = mode
            loaded.pop((name, mode))
    return loaded, errors


def read_probe_folders(
    folders: str | Path | Sequence[str | Path], signing: Mapping[str, Any], *,
    clashed: dict[str, list[tuple[Path, CalibratedDomain]]] | None = None, error_modes: dict[str, str] | None = None,
) -> tuple[dict[tuple[str, str], tuple[Path, CalibratedDomain]], dict[str, str]]:
    """Every calibrated domain in ``folders`` (one or several) by (name, prompt mode), with its folder,
    and why each unreadable file or contested domain is left out. A domain two folders calibrate in the
    same prompt mode is left out: which one was meant is not for hguard to guess (not even when one of them is
    another model's: a probe that records no model fingerprint cannot be told apart, and every reader of the
    folders, the monitor included, must leave out the same domains); ``clashed`` (when given) gets each such
    domain's probes, for a message that names the folders of another model; ``error_modes`` the prompt mode of each
    contested domain's error (an unreadable file's error is keyed by its stem: "x.rag" for a RAG probe)."""
    found: dict[tuple[str, str], tuple[Path, CalibratedDomain]] = {}
    clashes: dict[tuple[str, str], list[tuple[Path, CalibratedDomain]]] = {}
    errors: dict[str, str] = {}
    for folder in [folders] if isinstance(folders, (str, Path)) else list(folders):
        loaded, errs = read_probe_folder(Path(folder), signing, error_modes)
        errors.update(errs)
        for key, cd in loaded.items():
            if key in found:
                clashes.setdefault(key, [found[key]]).append((Path(folder), cd))
            found[key] = (Path(folder), cd)
    for (name, mode), candidates in clashes.items():
        if clashed is not None:
            clashed.setdefault(name, []).extend(candidates)
        folders_of = [f for f, _ in candidates]
        found.pop((name, mode))
        if error_modes is not None:
            error_modes[name] = mode
        errors[name] = (
            f"probe folders {', '.join(repr(str(f)) for f in folders_of)} all calibrate domain {name!r} "
            f"({mode.replace('_', '-')}); remove it from all but one of them"
        )
    return found, errors


__all__ = ["CLOSED_BOOK", "RAG", "DomainPlan", "Route", "build_plan", "read_probe_folder", "read_probe_folders"]
