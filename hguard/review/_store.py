"""The review queue's SQLite storage: the schema, its migration and the mapping of a row to a
:class:`ReviewItem`. See :mod:`hguard.review.queue`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import ReviewQueueError
from ._items import ReviewItem, Verdict

_SCHEMA_VERSION = 5  # 2 added spot_check; 3 the verdict not_in_context; 4 the archive tables (``review archive``);
# 5 each archived item's domain (review_archived.domain, domain_kept: 0 for an item archived before)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL,
    question TEXT NOT NULL,
    context TEXT,
    answer TEXT NOT NULL,
    domain TEXT,
    risk REAL,
    signals TEXT NOT NULL,
    reasons TEXT NOT NULL,
    model_fingerprint TEXT,
    probe_id TEXT,
    time TEXT NOT NULL,
    enqueued_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'decided')),
    verdict TEXT CHECK (verdict IN ('correct', 'hallucinated', 'corrected', 'not_in_context')),
    reviewer TEXT,
    corrected_answer TEXT,
    note TEXT,
    decided_at TEXT,
    verdict_audit_id TEXT,
    verdict_audit_hash TEXT,
    spot_check INTEGER NOT NULL DEFAULT 0,
    CHECK ((status = 'pending') = (verdict IS NULL))
);
CREATE INDEX IF NOT EXISTS review_items_pending ON review_items (status, domain, risk);
CREATE INDEX IF NOT EXISTS review_items_decided ON review_items (status, decided_at);
CREATE TABLE IF NOT EXISTS review_archives (
    n INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    decided_before TEXT NOT NULL,
    started_at TEXT NOT NULL,
    n_items INTEGER,
    sha256 TEXT,
    done_at TEXT
);
CREATE TABLE IF NOT EXISTS review_archived (
    id TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL,
    verdict_audit_id TEXT,
    archive INTEGER NOT NULL REFERENCES review_archives (n),
    domain TEXT,
    domain_kept INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""
# review_archives: one row per archive file (``ReviewQueue.archive``), written before the file and marked done
# (done_at, its sha256) in the transaction that removes its items; review_archived: what stays of each archived item
# (its ids, its verdict record's id, which file holds it, its domain), so a guard start does not put it back and the
# monitor and the export know it was decided (and, without the audit log, of which domain); an item archived by a
# queue of schema 4 has no domain kept (domain_kept 0: its domain is in its archive file only)
_TABLES = ("review_items", "review_archives", "review_archived")

_COLUMNS = (
    "id, audit_id, question, context, answer, domain, risk, signals, reasons, model_fingerprint, probe_id, "
    "time, enqueued_at, status, verdict, reviewer, corrected_answer, note, decided_at, verdict_audit_id, "
    "verdict_audit_hash, spot_check"
)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema of the queue at ``path`` in one ``BEGIN IMMEDIATE`` transaction;
    ReviewQueueError for a database of something else or of a newer hguard."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and tables - set(_TABLES):
            raise ReviewQueueError(
                f"{path} is a SQLite database of something else (tables: {', '.join(sorted(tables))}); "
                "point the review queue at a new file"
            )
        if version > _SCHEMA_VERSION:
            raise ReviewQueueError(
                f"review queue {path} has schema version {version}, newer than this hguard "
                f"({_SCHEMA_VERSION}); upgrade hguard to read it"
            )
        if version == 1:  # a queue from before spot-checks: add the column (existing items are not ones)
            conn.execute("ALTER TABLE review_items ADD COLUMN spot_check INTEGER NOT NULL DEFAULT 0")
        if version in (1, 2):  # a CHECK cannot be altered: the table is rebuilt with the new verdict, rows copied
            conn.execute("ALTER TABLE review_items RENAME TO review_items_old")
            conn.execute(_SCHEMA.split(";")[0])
            conn.execute(f"INSERT INTO review_items ({_COLUMNS}) SELECT {_COLUMNS} FROM review_items_old")
            conn.execute("DROP TABLE review_items_old")  # and its indexes, made again below
        if version == 4:  # archived items kept without their domain: the column added, those items' left unknown
            conn.execute("ALTER TABLE review_archived ADD COLUMN domain TEXT")
            conn.execute("ALTER TABLE review_archived ADD COLUMN domain_kept INTEGER NOT NULL DEFAULT 0")
        # Statement by statement: executescript() would commit the open transaction first.
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _item(row: tuple[Any, ...]) -> ReviewItem:
    (
        id_, audit_id, question, context, answer, domain, risk, signals, reasons, model_fp, probe_id, time,
        enqueued_at, status, verdict, reviewer, corrected, note, decided_at, v_audit_id, v_audit_hash, spot,
    ) = row  # fmt: skip
    v = None
    if status == "decided":
        v = Verdict(
            item_id=id_,
            audit_id=audit_id,
            verdict=verdict,
            reviewer=reviewer,
            corrected_answer=corrected,
            note=note,
            decided_at=decided_at,
            audit_record_id=v_audit_id,
            audit_hash=v_audit_hash,
        )
    return ReviewItem(
        id=id_,
        audit_id=audit_id,
        question=question,
        context=context,
        answer=answer,
        domain=domain,
        risk=risk,
        signals=json.loads(signals),
        reasons=json.loads(reasons),
        model_fingerprint=model_fp,
        probe_id=probe_id,
        time=time,
        enqueued_at=enqueued_at,
        status=status,
        verdict=v,
        spot_check=bool(spot),
    )
