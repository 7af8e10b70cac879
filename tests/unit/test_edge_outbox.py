"""The outbox bound: the oldest readings are shed, counted exactly, and the count survives."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from luftnett.edge.outbox import Outbox


def reading(i: int, pad: int = 0) -> dict[str, object]:
    return {"ts": "2026-01-01T00:00:00+00:00", "values": {"pm25_ugm3": float(i)}, "pad": "x" * pad}


def test_row_bound_sheds_exactly_the_oldest_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_rows=5)
    with caplog.at_level(logging.WARNING, logger="luftnett.edge.outbox"):
        seqs = [box.append(reading(i)) for i in range(12)]
    assert seqs == list(range(12))
    assert len(box) == 5
    assert [r["seq"] for r in box.pending(100)] == [7, 8, 9, 10, 11]
    assert box.shed_total == 7
    assert box.next_seq == 12
    assert any(r.getMessage() == "outbox full: oldest readings shed" for r in caplog.records)
    box.close()
    again = Outbox(tmp_path / "o.sqlite", max_rows=5)  # the count is on disk
    assert (again.shed_total, len(again), again.next_seq) == (7, 5, 12)
    again.close()


def test_byte_bound_sheds_oldest_until_the_rest_fits(tmp_path: Path) -> None:
    size = len(json.dumps({**reading(0, 100), "seq": 0}, separators=(",", ":")))
    box = Outbox(tmp_path / "o.sqlite", max_bytes=3 * size + 10)
    for i in range(10):
        box.append(reading(i % 10, 100))
    assert len(box) == 3
    assert box.nbytes <= 3 * size + 10
    assert box.shed_total == 7
    box.delete([8, 9])
    assert (len(box), box.nbytes) == (1, size)
    box.close()


def test_full_disk_sheds_a_tenth_and_keeps_writing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(300):
        box.append(reading(i, 200))
    # make the database "full" where it stands: SQLite answers SQLITE_FULL from now on
    (pages,) = box._db.execute("PRAGMA page_count").fetchone()
    box._db.execute(f"PRAGMA max_page_count={pages}")
    assert box.shed_total == 0
    ok = sum(box.append(reading(i, 200)) is not None for i in range(300, 400))
    assert ok > 50  # shedding made room: the agent keeps recording
    assert box.shed_total > 0  # a counted loss, never a silent one
    assert box.next_seq == 300 + ok  # a reading that could not be written got no seq
    assert len(box) + box.shed_total - box.lost == box.next_seq  # every seq accounted for
    box.close()


def test_an_outbox_of_agent_0_1_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.outbox"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, reading TEXT NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('next_seq', 3);"
        "INSERT INTO outbox VALUES (2, '{\"seq\": 2}');"
    )
    db.commit()
    db.close()
    box = Outbox(path)
    assert (len(box), box.next_seq, box.shed_total) == (1, 3, 0)
    assert box.oldest_age_s() is None  # stored before ages were kept
    assert box.append(reading(3)) == 3
    box.close()


def test_oldest_age_uses_the_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])
    assert box.oldest_age_s() is None
    box.append(reading(0))
    now[0] = 1042.5
    box.append(reading(1))
    assert box.oldest_age_s() == pytest.approx(42.5)
    box.delete([0])
    assert box.oldest_age_s() == pytest.approx(0.0)
    box.close()
