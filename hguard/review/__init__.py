"""Human review: the queue of answers routed to ``review``, the web page where people decide them, and the
export of their verdicts back into calibration data.

Only the standard library (and hguard's audit and calibration modules) is imported here: the web app imports
starlette, uvicorn and jinja2 when it is started, so ``hguard review list`` and ``export`` work without the
``review`` extra.
"""

from __future__ import annotations

from .export import DISAGREEMENT_RISK, ExportSummary, example_for, export_reviewed
from .queue import (
    ITEM_FIELDS,
    NO_DOMAIN,
    VERDICTS,
    AlreadyDecided,
    ArchivedItem,
    ArchiveSummary,
    ItemNotFound,
    ReviewItem,
    ReviewQueue,
    Verdict,
)
from .web import TOKEN_ENV, cli_main, create_app, make_server, serve

__all__ = [
    "DISAGREEMENT_RISK",
    "ITEM_FIELDS",
    "NO_DOMAIN",
    "TOKEN_ENV",
    "VERDICTS",
    "AlreadyDecided",
    "ArchiveSummary",
    "ArchivedItem",
    "ExportSummary",
    "ItemNotFound",
    "ReviewItem",
    "ReviewQueue",
    "Verdict",
    "cli_main",
    "create_app",
    "example_for",
    "export_reviewed",
    "make_server",
    "serve",
]
