"""Apply the numbered SQL migrations in ``luftnett/db/migrations`` (idempotent)."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from luftnett.errors import StorageError

__all__ = ["Migration", "apply_migrations", "available_migrations", "timescale_enabled"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6C7566746E657474  # "luftnett": serialises concurrent migrators

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def available_migrations() -> list[Migration]:
    out = []
    for entry in resources.files("luftnett.db.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m.version)


def apply_migrations(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply every migration not yet recorded, one transaction each; return those applied.

    Raises :class:`StorageError` if a recorded migration's file has changed since.
    """
    applied: list[Migration] = []
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(_CREATE_TABLE)
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        done: dict[int, str] = {int(v): str(c) for v, c in rows}
        for mig in available_migrations():
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise StorageError(
                        f"migration {mig.version:04d}_{mig.name} changed after it was applied "
                        f"(checksum {done[mig.version]} -> {mig.checksum}); add a new migration "
                        "instead of editing an applied one"
                    )
                continue
            with conn.transaction():
                conn.execute(mig.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
            log.info("migration applied", extra={"version": mig.version, "migration": mig.name})
            applied.append(mig)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def timescale_enabled(conn: psycopg.Connection[Any]) -> bool:
    """True when the timescaledb extension is installed in this database."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None
