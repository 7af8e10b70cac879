"""A durable outbox on the device's disk (SQLite, WAL): no reading is lost to a flaky link.

A reading gets its sequence number when it is stored here, in the same transaction, so numbers
are never reused, even across restarts. Every commit is fsync'd (``synchronous=FULL``): once
:meth:`Outbox.append` returns, a power cut cannot take the reading back. It is deleted after the
broker's PUBACK for the message that carried it (paho keeps unacknowledged messages in memory
only) — or, with the end-to-end acknowledgement (docs/reliability.md), only once the collector
side says the database holds it (:meth:`Outbox.confirm`): after its PUBACK it is marked
``acked_at`` and no longer sent, and if no confirmation comes within a timeout it is sent again
(:meth:`Outbox.requeue_unconfirmed`).

**A new outbox for a device the database knows.** Numbers are never reused by one outbox file,
but a box that comes back with a new SD card (or whose outbox was deleted) starts again at 0,
under seqs the database already holds for the device. A confirmation alone cannot tell whose
readings those are, so: the readings numbered before the outbox's first confirmation, or before
a confirmation that holds seqs it never issued, are deleted by a confirmation only once the
broker acknowledged them (the collector has them: stored, or in quarantine as ``seq_reused``),
never unsent; and a confirmation holding seqs at or beyond ``next_seq`` moves ``next_seq``
past them, taking the readings not yet sent along (renumbered, in order), so that they and
the readings after them are stored as usual.

**A damaged file** (SQLite says ``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``, at open or at any later
call): it is moved aside (``<outbox>.damaged-<UTC time>``, one such copy kept), and a new file
takes every reading that can still be read, under its own seq and acknowledgement, and the old
counters; the call then runs again on it (:meth:`Outbox.recover`).

**Bound: shed the oldest, count it, say it.** The outbox holds at most ``max_rows`` readings and
``max_bytes`` bytes of reading JSON. When a new reading would break the bound, the *oldest*
readings are deleted in the same transaction.

**Full disk: a reserve, then a ring buffer of the size the outbox had.** Beside the outbox lies
``<outbox>.reserve``, ``reserve_bytes`` of allocated disk (1 MiB by default; made when there is room
for twice that). The first ``SQLITE_FULL`` — the file system has no room left, whoever filled it —
deletes the reserve, moves the WAL into the database file (``wal_checkpoint(RESTART)``: the WAL file
keeps its space for reuse) and caps the database (``max_page_count``) at the pages it has plus a
quarter of the released reserve. The WAL is checkpointed every quarter-reserve of pages, so the
checkpoint, the WAL and the cap fit in the reserve together. From then on the outbox does not grow
past the cap: a reading that finds no free page sheds the oldest readings, 16 first, then twice as
many each time, until it fits — deleted rows free their pages for the next ones. Only when the
outbox is empty and the reading still does not fit is it lost: it gets no ``seq`` (no gap) and is
counted as ``lost``. Once a minute the outbox looks at the free space; with room for twice the
reserve again it remakes the reserve and lifts the cap. Without a reserve (it could never be made)
the same steps are tried and may lose readings sooner.

**Never silent.** ``shed`` and ``lost`` are kept in the outbox file (they survive restarts),
go out together as ``readings_shed`` on the status topic, and are logged (at most once a minute
for shedding; at once for the reserve and every lost reading). Why the oldest: after a long
outage the recent past is what a city reacts to (alerts, the live map), old readings of a
buffer that overflowed are already a gap the network knows about, and a ring buffer keeps the
write path identical when full. Shed readings leave a gap in ``seq`` that the status topic
explains (``readings_shed``); nothing else ever does.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar, cast

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_RESERVE_BYTES",
    "Outbox",
    "is_damaged",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 500_000
DEFAULT_MAX_BYTES = 200_000_000
DEFAULT_RESERVE_BYTES = 1 << 20
SHED_FIRST = 16  # rows shed at the first try on a full disk; doubled at each further try
_LOG_EVERY_S = 60.0
_SPACE_CHECK_S = 60.0
_NO_CAP = 1_073_741_823  # SQLite's default max_page_count

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq       INTEGER PRIMARY KEY,
    reading   TEXT NOT NULL,
    stored_at REAL,
    acked_at  REAL              -- the broker's PUBACK, awaiting the database's confirmation
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('shed', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('lost', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('confirmed', 0);
-- readings below this seq were numbered before the outbox knew what the database holds
INSERT OR IGNORE INTO meta (key, value) VALUES ('unverified_below', 0);
"""


_DELETE = "DELETE FROM outbox WHERE seq >= ? AND seq < ? RETURNING length(reading)"
_DELETE_ACKED = (
    "DELETE FROM outbox WHERE seq >= ? AND seq < ? AND acked_at IS NOT NULL "
    "RETURNING length(reading)"
)


#: SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged (not busy, full or read-only)
_DAMAGED = (11, 26)
_MAX_SEQ = 1 << 62


def is_damaged(exc: BaseException) -> bool:
    """Whether ``exc`` says the outbox file is damaged: :meth:`Outbox.recover` it."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and (code & 0xFF) in _DAMAGED


def _salvage(path: Path) -> tuple[dict[str, int], list[tuple[int, str, Any, Any]], int]:
    """What can still be read of a damaged outbox file: its counters, its readings (seq,
    reading, stored_at, acked_at; valid JSON objects only, by seq) and how many rows could not
    be read (JSON that does not parse, plus one for each damaged stretch skipped)."""
    meta: dict[str, int] = {}
    rows: list[tuple[int, str, Any, Any]] = []
    unreadable = 0
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error:
        return meta, rows, 1
    try:
        with contextlib.suppress(sqlite3.Error, ValueError, TypeError):
            meta = {str(k): int(v) for k, v in db.execute("SELECT key, value FROM meta")}
        lo, step = -1, 1
        while lo < _MAX_SEQ:
            try:
                for seq, reading, stored_at, acked_at in db.execute(
                    "SELECT seq, reading, stored_at, acked_at FROM outbox WHERE seq > ? "
                    "ORDER BY seq",
                    (lo,),
                ):
                    lo, step = int(seq), 1
                    try:
                        ok = isinstance(json.loads(reading), dict)
                    except (ValueError, TypeError):
                        ok = False
                    if ok:
                        rows.append((lo, str(reading), stored_at, acked_at))
                    else:
                        unreadable += 1
                break
            except sqlite3.Error:  # a damaged stretch: start past it, further each time
                unreadable += step == 1
                lo, step = lo + step, step * 2
    finally:
        db.close()
    return meta, rows, unreadable


_F = TypeVar("_F", bound=Callable[..., Any])


def _heals(method: _F) -> _F:
    """An :class:`Outbox` method that, when it finds the file damaged, recovers it
    (:meth:`Outbox.recover`) and runs once more on the new file."""

    @functools.wraps(method)
    def run(self: Outbox, *args: Any, **kwargs: Any) -> Any:
        seen = self.recovered  # another thread may recover the file first: not twice
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            self.recover(exc, seen)
            return method(self, *args, **kwargs)

    return cast(_F, run)


def _doc(reading: dict[str, Any], seq: int) -> str:
    """A reading as the outbox stores and the publisher splices it: compact JSON with its seq."""
    return json.dumps(dict(reading, seq=seq), separators=(",", ":"))


def _is_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:  # SQLite has rolled back by itself after SQLITE_FULL
        db.execute("ROLLBACK")


class Outbox:
    """Readings waiting for the broker's acknowledgement, oldest first.

    Thread-safe (one lock). ``clock`` gives UNIX seconds for ``stored_at`` and for the
    once-a-minute look at the free space (injectable). ``reserve_bytes`` = 0: no reserve.
    """

    def __init__(
        self,
        path: Path,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Any = time.time,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError(f"outbox bounds must be positive (got {max_rows}, {max_bytes})")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.reserve_bytes = reserve_bytes
        #: times this process found the file damaged and started a new one (:meth:`recover`)
        self.recovered = 0
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            self._recover_locked(exc)
        self.lost = 0  # readings that could not be written at all (disk full), this process
        self._lost_unsaved = 0  # of those, not yet counted in the file
        self._logged_shed = self.shed_total
        self._last_log = -_LOG_EVERY_S
        self.reserve_path = path.with_name(path.name + ".reserve")
        #: (from, to, moved): the last confirmation moved ``next_seq`` from ``from`` to ``to``
        #: (the database holds seqs this outbox never issued) and ``moved`` unsent readings
        #: with it; the agent logs it and clears it
        self.renumbered: tuple[int, int, int] | None = None
        self.capped = False  # the disk was full: the database may not grow (see module doc)
        self._next_space_check = 0.0
        self._make_reserve()

    def _open(self) -> None:
        """Connect to the file (made if missing): WAL, fsync'd commits, the schema."""
        db = self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        self._page_size = int(page_size)
        # a quarter of the reserve each: WAL, checkpoint into the file, growth under the cap
        reserve = self.reserve_bytes
        quarter = max(4, reserve // 4 // self._page_size) if reserve else 64
        self._quarter_pages = quarter
        db.execute(f"PRAGMA wal_autocheckpoint={quarter}")
        db.execute(f"PRAGMA journal_size_limit={2 * quarter * self._page_size}")
        db.executescript(_SCHEMA)
        columns = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
        if "stored_at" not in columns:  # an outbox written by agent 0.1
            db.execute("ALTER TABLE outbox ADD COLUMN stored_at REAL")
        if "acked_at" not in columns:  # an outbox written before the end-to-end acknowledgement
            db.execute("ALTER TABLE outbox ADD COLUMN acked_at REAL")
        # what is still to send, found without walking past readings awaiting confirmation
        db.execute(
            "CREATE INDEX IF NOT EXISTS outbox_unacked ON outbox (seq) WHERE acked_at IS NULL"
        )
        self._count()

    def _count(self) -> None:
        depth, nbytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(reading)), 0) FROM outbox"
        ).fetchone()
        self._depth, self._bytes = int(depth), int(nbytes)

    def recover(self, exc: BaseException, seen: int | None = None) -> int:
        """The file is damaged (``exc``, see :func:`is_damaged`): move it aside, start a new one
        with every reading that could still be read, under its own seq, and number on from
        where the old file had got to (module doc). Return how many readings were kept.
        ``seen``: :attr:`recovered` when the caller met the damage; if another thread has
        recovered the file since, nothing is done (0)."""
        with self._lock:
            if seen is not None and self.recovered != seen:
                return 0
            return self._recover_locked(exc)

    def _recover_locked(self, exc: BaseException) -> int:
        with contextlib.suppress(sqlite3.Error, AttributeError):
            self._db.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for old in self.path.parent.glob(f"{self.path.name}.damaged-*"):
            old.unlink(missing_ok=True)  # one damaged copy at most: the disk is small
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        meta, rows, unreadable = _salvage(aside)
        self._open()
        top = max(meta.get("next_seq", 0), rows[-1][0] + 1 if rows else 0)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO outbox (seq, reading, stored_at, acked_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            for key in ("shed", "lost", "confirmed"):
                db.execute("UPDATE meta SET value = ? WHERE key = ?", (meta.get(key, 0), key))
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (top,))
            # what it numbered may share seqs with readings the database holds (a file whose
            # counter was lost numbers again): deleted by a confirmation only once sent
            db.execute("UPDATE meta SET value = ? WHERE key = 'unverified_below'", (top,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._count()
        self.recovered += 1
        self.capped = False  # a new file, not capped (a full disk caps it again)
        log.error(
            "outbox file damaged: moved aside, a new one started with what could be read",
            extra={
                "error": str(exc)[:200],
                "damaged_copy": str(aside),
                "readings_kept": len(rows),
                "unreadable": unreadable,
                "next_seq": top,
                "counter_read": "next_seq" in meta,
            },
        )
        return len(rows)

    # -- writing ---------------------------------------------------------------------------
    @_heals
    def append(self, reading: dict[str, Any]) -> int | None:
        """Store a reading (without ``seq``); return its sequence number, None if it was lost.

        Committed and fsync'd on return. May shed the oldest readings to stay in bounds or to
        make room on a full disk (module doc).
        """
        with self._lock:
            if self.capped:
                self._maybe_uncap()
            try:
                seq: int | None = self._append(reading)
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                seq = self._append_when_full(reading)
            self._maybe_log_shed()
            return seq

    @_heals
    def count_lost(self, n: int = 1) -> None:
        """Count readings the agent could not store at all (kept in the file when it can be)."""
        with self._lock:
            self.lost += n
            self._lost_unsaved += n

    # -- full disk -------------------------------------------------------------------------
    def _append_when_full(self, reading: dict[str, Any]) -> int | None:
        if not self.capped:
            self._cap()
            seq = self._try_append(reading)
            if seq is not None:
                return seq
        n = SHED_FIRST
        while self._depth:
            try:
                # the WAL restarts from its beginning: a delete reuses its space, needs none more
                self._db.execute("PRAGMA wal_checkpoint(RESTART)")
                self._shed_locked(min(n, self._depth))
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                break  # not even a delete fits
            seq = self._try_append(reading)
            if seq is not None:
                return seq
            n *= 2
        self.lost += 1
        self._lost_unsaved += 1
        log.error(
            "outbox disk full; reading lost",
            extra={"path": str(self.path), "lost": self.lost, "depth": self._depth},
        )
        return None

    def _try_append(self, reading: dict[str, Any]) -> int | None:
        try:
            return self._append(reading)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            return None

    def _cap(self) -> None:
        """First full disk: release the reserve, checkpoint the WAL, stop the file growing."""
        released = self._remove_reserve()
        try:
            self._db.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.OperationalError as exc:
            log.error("outbox checkpoint failed on a full disk", extra={"error": str(exc)})
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        pages = int(pages) + (self._quarter_pages if released else 0)
        self._db.execute(f"PRAGMA max_page_count={pages}")
        self.capped = True
        self._next_space_check = float(self._clock()) + _SPACE_CHECK_S
        log.error(
            "outbox disk full: reserve released, outbox kept at its size, oldest readings shed "
            "as needed",
            extra={
                "path": str(self.path),
                "reserve_released": released,
                "max_pages": pages,
                "depth": self._depth,
            },
        )

    def _maybe_uncap(self) -> None:
        now = float(self._clock())
        if now < self._next_space_check:
            return
        self._next_space_check = now + _SPACE_CHECK_S
        if self.reserve_bytes and not self._make_reserve():
            return
        if not self.reserve_bytes and self._free_bytes() < 2 * DEFAULT_RESERVE_BYTES:
            return
        self._db.execute(f"PRAGMA max_page_count={_NO_CAP}")
        self.capped = False
        log.warning("outbox disk has room again: reserve remade", extra={"path": str(self.path)})

    def _free_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def _make_reserve(self) -> bool:
        """Make the reserve if there is room for twice its size; True if it is in place."""
        if not self.reserve_bytes:
            return False
        with contextlib.suppress(OSError):
            if self.reserve_path.stat().st_size >= self.reserve_bytes:
                return True
        try:
            if self._free_bytes() < 2 * self.reserve_bytes:
                return False
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot make the outbox reserve", extra={"error": str(exc)})
            self._remove_reserve()
            return False
        return True

    def _remove_reserve(self) -> bool:
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _append(self, reading: dict[str, Any]) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            (seq,) = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            doc = _doc(reading, seq)
            db.execute(
                "INSERT INTO outbox (seq, reading, stored_at) VALUES (?, ?, ?)",
                (seq, doc, self._clock()),
            )
            db.execute("UPDATE meta SET value = value + 1 WHERE key='next_seq'")
            if self._lost_unsaved:
                db.execute(
                    "UPDATE meta SET value = value + ? WHERE key='lost'", (self._lost_unsaved,)
                )
            depth, nbytes = self._depth + 1, self._bytes + len(doc)
            shed_n, shed_b = self._over_bound(depth, nbytes)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._depth, self._bytes = depth - shed_n, nbytes - shed_b
        self._lost_unsaved = 0
        return int(seq)

    def _over_bound(self, depth: int, nbytes: int) -> tuple[int, int]:
        """Inside a transaction: delete the oldest rows until both bounds hold."""
        if depth <= self.max_rows and nbytes <= self.max_bytes:
            return 0, 0
        shed_n = shed_b = 0
        last = None
        for seq, size in self._db.execute(
            "SELECT seq, length(reading) FROM outbox ORDER BY seq LIMIT ?",
            (max(1, depth - self.max_rows) + 64,),
        ):
            if depth - shed_n <= self.max_rows and nbytes - shed_b <= self.max_bytes:
                break
            shed_n, shed_b, last = shed_n + 1, shed_b + int(size), seq
        if last is not None:
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (last,))
            self._db.execute("UPDATE meta SET value = value + ? WHERE key='shed'", (shed_n,))
        return shed_n, shed_b

    def _shed_locked(self, n: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT max(seq), count(*), coalesce(sum(length(reading)), 0) FROM "
                "(SELECT seq, reading FROM outbox ORDER BY seq LIMIT ?)",
                (n,),
            ).fetchone()
            if row[0] is not None:
                db.execute("DELETE FROM outbox WHERE seq <= ?", (row[0],))
                db.execute("UPDATE meta SET value = value + ? WHERE key='shed'", (row[1],))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        if row[0] is not None:
            self._depth -= int(row[1])
            self._bytes -= int(row[2])

    def _maybe_log_shed(self) -> None:
        total = self._meta("shed")
        now = time.monotonic()
        if total > self._logged_shed and now - self._last_log >= _LOG_EVERY_S:
            log.warning(
                "outbox full: oldest readings shed",
                extra={
                    "shed": total - self._logged_shed,
                    "shed_total": total,
                    "depth": self._depth,
                    "max_rows": self.max_rows,
                    "max_bytes": self.max_bytes,
                },
            )
            self._logged_shed, self._last_log = total, now

    @_heals
    def mark_acked(self, seqs: list[int]) -> None:
        """The broker acknowledged these: stop sending them, keep them until :meth:`confirm`."""
        if not seqs:
            return
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET acked_at = ? WHERE seq IN (SELECT value FROM json_each(?)) "
                "AND acked_at IS NULL",
                (self._clock(), json.dumps(seqs)),
            )

    @_heals
    def confirm(
        self,
        ranges: list[tuple[int, int]] | tuple[tuple[int, int], ...],
        in_flight: Collection[int] = (),
    ) -> int:
        """Forget the readings whose seq lies in one of the half-open ``[first, end)`` ranges
        the database holds (acknowledged or not: a copy may have arrived without its PUBACK;
        but of those numbered before the outbox knew what the database holds, only the
        acknowledged ones: see the module doc). Ranges holding seqs at or beyond ``next_seq``
        move it past them, and the readings not yet sent (not acknowledged, not ``in_flight``:
        the publisher's messages awaiting their PUBACK) move with it, in order
        (:attr:`renumbered`). Return how many were deleted. Remembers, on disk, that
        confirmations arrive."""
        deleted = moved = 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                nxt, below = self._meta("next_seq"), self._meta("unverified_below")
                top = max((int(hi) for _, hi in ranges), default=0)
                if top > nxt or not self._meta("confirmed"):
                    below = nxt  # everything numbered so far may share a seq with the database
                    db.execute("UPDATE meta SET value = ? WHERE key='unverified_below'", (below,))
                if top > nxt:  # seqs this outbox never issued: its numbering started again
                    flying = set(in_flight)
                    unsent = [
                        (seq, doc)
                        for seq, doc in db.execute(
                            "SELECT seq, reading FROM outbox WHERE seq < ? AND acked_at IS NULL "
                            "ORDER BY seq",
                            (nxt,),
                        ).fetchall()
                        if seq not in flying
                    ]
                    for new_seq, (seq, doc) in enumerate(unsent, start=top):
                        db.execute(
                            "UPDATE outbox SET seq = ?, reading = ? WHERE seq = ?",
                            (new_seq, _doc(json.loads(doc), new_seq), seq),
                        )
                    moved = len(unsent)
                    db.execute("UPDATE meta SET value = ? WHERE key='next_seq'", (top + moved,))
                for lo, hi in ranges:
                    lo, hi = int(lo), int(hi)
                    parts = []
                    if lo < below:
                        parts.append((_DELETE_ACKED, lo, min(hi, below)))
                    if hi > below:
                        parts.append((_DELETE, max(lo, below), hi))
                    for stmt, a, b in parts:
                        sizes = db.execute(stmt, (a, b)).fetchall()
                        deleted += len(sizes)
                        self._depth -= len(sizes)
                        self._bytes -= sum(int(x[0]) for x in sizes)
                db.execute("UPDATE meta SET value = 1 WHERE key='confirmed'")
                db.execute("COMMIT")
                if top > nxt:
                    self.renumbered = (nxt, top, moved)
                    self._count()  # the moved readings' JSON holds their new seq
            except BaseException:
                _rollback(db)
                self._count()
                raise
        return deleted

    @_heals
    def requeue_unconfirmed(self, older_than_s: float) -> int:
        """Send again what the broker acknowledged more than ``older_than_s`` ago and the
        database has not confirmed (the broker may have lost it). Return how many."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET acked_at = NULL WHERE acked_at IS NOT NULL AND acked_at < ?",
                (float(self._clock()) - older_than_s,),
            )
            return int(cur.rowcount)

    @property
    @_heals
    def confirmations_seen(self) -> bool:
        """True once this outbox received a confirmation from the collector side (ever)."""
        with self._lock:
            return self._meta("confirmed") > 0

    @property
    @_heals
    def unconfirmed(self) -> int:
        """Readings acknowledged by the broker and awaiting the database's confirmation."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT count(*) FROM outbox WHERE acked_at IS NOT NULL"
            ).fetchone()
        return int(n)

    @_heals
    def delete(self, seqs: list[int]) -> None:
        """Forget readings the broker acknowledged (without the end-to-end acknowledgement)."""
        if not seqs:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                sizes = db.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) "
                    "RETURNING length(reading)",
                    (json.dumps(seqs),),
                ).fetchall()
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            self._depth -= len(sizes)
            self._bytes -= sum(int(s[0]) for s in sizes)

    # -- reading ---------------------------------------------------------------------------
    @_heals
    def pending(self, limit: int, after: int = -1) -> list[dict[str, Any]]:
        """Oldest readings still to send (not acknowledged by the broker) with ``seq > after``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT reading FROM outbox WHERE seq > ? AND acked_at IS NULL ORDER BY seq "
                "LIMIT ?",
                (after, limit),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    @_heals
    def pending_raw(self, limit: int, after: int = -1) -> list[tuple[int, str]]:
        """Like :meth:`pending`, as ``(seq, reading JSON)``: what the publisher splices."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, reading FROM outbox WHERE seq > ? AND acked_at IS NULL "
                "ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    @_heals
    def oldest_age_s(self) -> float | None:
        """Seconds since the oldest unsent reading was stored; None when empty."""
        with self._lock:
            row = self._db.execute("SELECT stored_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(self._clock()) - float(row[0]))

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    @property
    @_heals
    def next_seq(self) -> int:
        """The seq the next reading gets: readings ever produced on this outbox."""
        with self._lock:
            return self._meta("next_seq")

    @property
    @_heals
    def shed_total(self) -> int:
        """Readings shed (bound or full disk) and lost (never stored), ever: ``readings_shed``."""
        with self._lock:
            return self._meta("shed") + self._meta("lost") + self._lost_unsaved

    @property
    @_heals
    def lost_total(self) -> int:
        """Readings never stored (full disk and empty outbox, or a failed write), ever."""
        with self._lock:
            return self._meta("lost") + self._lost_unsaved

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._depth

    def close(self) -> None:
        with self._lock:
            self._db.close()
