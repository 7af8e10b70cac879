"""A durable outbox on the device's disk (SQLite, WAL): no reading is lost to a flaky link.

A reading gets its sequence number when it is stored here, in the same transaction, so numbers
are never reused, even across restarts. It is deleted only after the broker's PUBACK for the
message that carried it (paho keeps unacknowledged messages in memory only).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["Outbox"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY,
    reading  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 0);
"""


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def append(self, reading: dict[str, Any]) -> int:
        """Store a reading (without ``seq``); return the sequence number it was given."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (seq,) = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
                doc = dict(reading, seq=seq)
                self._db.execute(
                    "INSERT INTO outbox (seq, reading) VALUES (?, ?)", (seq, json.dumps(doc))
                )
                self._db.execute("UPDATE meta SET value = value + 1 WHERE key='next_seq'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(seq)

    def pending(self, limit: int, after: int = -1) -> list[dict[str, Any]]:
        """Oldest stored readings with ``seq > after``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT reading FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete(self, seqs: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
