"""The outbox bound and a full disk: the oldest are shed, counted exactly; the count survives."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
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


def _seqs(box: Outbox) -> list[int]:
    return [r[0] for r in box._db.execute("SELECT seq FROM outbox ORDER BY seq")]


def _assert_accounted(box: Outbox) -> None:
    """Every seq ever given is either still in the outbox or shed; lost readings got none."""
    seqs = _seqs(box)
    assert seqs == list(range(box.next_seq - len(box), box.next_seq))  # the newest, no gap
    assert box.shed_total - box.lost_total == box.next_seq - len(box)


def test_a_full_outbox_with_a_small_backlog_still_makes_room(tmp_path: Path) -> None:
    """The old policy shed a tenth of the backlog, i.e. one row of three: no page freed."""
    box = Outbox(tmp_path / "o.sqlite", reserve_bytes=0)
    for i in range(3):
        box.append(reading(i, 300))
    (pages,) = box._db.execute("PRAGMA page_count").fetchone()
    box._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite answers SQLITE_FULL from now on
    got = [box.append(reading(i, 300)) for i in range(3, 203)]
    assert None not in got  # every reading stored: the oldest made room
    assert box.capped
    assert box.lost_total == 0
    assert box.shed_total == 203 - len(box) > 0
    _assert_accounted(box)
    box.close()


def test_a_reading_that_fits_nowhere_is_lost_counted_and_takes_no_seq(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, reserve_bytes=0)
    for i in range(5):
        box.append(reading(i, 300))
    box.delete([0, 1, 2, 3, 4])  # acknowledged: the outbox is empty
    (pages,) = box._db.execute("PRAGMA page_count").fetchone()
    box._db.execute(f"PRAGMA max_page_count={pages}")
    assert box.append(reading(5, 200_000)) is None  # larger than the whole capped file
    assert (box.lost, box.lost_total, box.shed_total, box.next_seq) == (1, 1, 1, 5)
    assert box.append(reading(6, 100)) == 5  # no gap: the lost reading got no seq
    box.close()
    again = Outbox(path, reserve_bytes=0)
    assert (again.lost_total, again.shed_total, again.next_seq) == (1, 1, 6)  # kept in the file
    again.close()


@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    """A real 512 kB file system (tmpfs): ENOSPC, as on a full SD card."""
    return tmpfs("512k")


def test_a_really_full_disk_releases_the_reserve_and_keeps_the_newest(small_disk: Path) -> None:
    now = [1_800_000_000.0]
    path = small_disk / "o.sqlite"
    box = Outbox(path, reserve_bytes=64 * 1024, clock=lambda: now[0])
    assert box.reserve_path.stat().st_size == 64 * 1024
    got = [box.append(reading(i, 300)) for i in range(3000)]  # ~1.1 MB of readings
    assert None not in got  # never lost while there was something older to shed
    assert box.capped and not box.reserve_path.exists()
    assert box.lost_total == 0
    assert 100 < len(box) < 3000
    assert box.shed_total == 3000 - len(box)
    _assert_accounted(box)
    with pytest.raises(OSError, match="No space left"):  # the disk is still full to the brim
        (small_disk / "other").write_bytes(b"x" * 200_000)
    (small_disk / "other").unlink()

    # room again (a log rotated, a file deleted): after a minute the reserve is remade
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    box.append(reading(3000, 300))
    assert box.capped  # not before the minute is up
    now[0] += 61
    box.append(reading(3001, 300))
    assert not box.capped and box.reserve_path.stat().st_size == 64 * 1024
    for i in range(3002, 3500):
        assert box.append(reading(i, 300)) is not None
    depth, shed = len(box), box.shed_total
    assert shed < 3000  # no more shedding: the outbox grows again
    _assert_accounted(box)
    box.close()
    again = Outbox(path, reserve_bytes=64 * 1024)
    assert (len(again), again.shed_total, again.next_seq) == (depth, shed, 3500)
    again.close()


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


_WRITER = """
import sys
from pathlib import Path
from luftnett.edge.outbox import Outbox
box = Outbox(Path(sys.argv[1]), reserve_bytes=0)
pad = "x" * int(sys.argv[2])
i = 0
while True:
    sys.stdout.write("begin\\n")
    sys.stdout.flush()
    seq = box.append({"i": i, "pad": pad})
    sys.stdout.write(f"{seq}\\n")  # append returned: the reading is committed and fsync'd
    sys.stdout.flush()
    i += 1
"""


def test_sigkill_inside_a_commit_never_loses_a_committed_reading(tmp_path: Path) -> None:
    """The closest a test gets to a power cut mid-write: SIGKILL while the writer commits.

    The writer says ``begin`` before each append and the seq after it, so a kill that lands
    inside :meth:`Outbox.append` (mostly in the commit's fsync) is known, and the test goes on
    until ten have. After each kill the file must be intact, keep every reading whose append
    had returned, and number the readings 0..n-1 with no gap; the reading in flight is either
    wholly there or not at all.
    (SIGKILL keeps the page cache; a real power cut tests the disk's honesty about fsync too.)
    """
    path = tmp_path / "o.sqlite"
    rng = random.Random(4)
    reported: list[int] = []
    inside = kills = 0
    while kills < 30 or inside < 10:
        with subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), "20000"], stdout=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # it is writing
            time.sleep(rng.uniform(0.0, 0.1))
            proc.kill()
            proc.wait(10)
            lines = (first + proc.stdout.read()).split()
        kills += 1
        inside += lines[-1] == b"begin"
        reported += [int(x) for x in lines if x != b"begin"]
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        box = Outbox(path, reserve_bytes=0)
        seqs = _seqs(box)
        assert seqs == list(range(box.next_seq)), "a gap or a half-written reading"
        assert set(reported) <= set(seqs), "a reading whose append had returned is gone"
        assert len(set(seqs) - set(reported)) <= kills  # at most the one in flight per kill
        rows = box._db.execute("SELECT reading FROM outbox").fetchall()
        assert all(len(json.loads(r[0])["pad"]) == 20_000 for r in rows)  # none half-written
        box.close()
        assert kills < 200, f"only {inside} of {kills} kills landed inside an append"


def test_end_to_end_ack_keeps_acknowledged_readings_until_the_database_confirms(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite", clock=lambda: now[0])
    for i in range(10):
        box.append(reading(i))
    assert not box.confirmations_seen
    box.mark_acked([0, 1, 2, 3, 4, 5])  # the broker's PUBACKs
    assert [r["seq"] for r in box.pending(100)] == [6, 7, 8, 9]  # not sent again
    assert (len(box), box.unconfirmed) == (10, 6)  # but kept
    # the first confirmation: the database holds 0-2 and 7. The outbox numbered 7 before it
    # knew what the database holds, and 7 is not acknowledged: kept (module doc)
    assert box.confirm([(0, 3), (7, 8)]) == 3
    assert box.confirmations_seen
    assert (len(box), box.unconfirmed) == (7, 3)
    for i in range(10, 14):
        box.append(reading(i))
    # since then, a reading confirmed without our having seen its PUBACK (12) goes too
    assert box.confirm([(0, 3), (7, 8), (12, 13)]) == 1
    assert (len(box), box.unconfirmed) == (10, 3)
    now[0] += 5.0
    assert box.requeue_unconfirmed(10.0) == 0  # too young to suspect the broker
    now[0] += 10.0
    assert box.requeue_unconfirmed(10.0) == 3  # acknowledged 15 s ago, never confirmed
    assert [r["seq"] for r in box.pending(100)] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert box.unconfirmed == 0
    box.mark_acked([7])
    box.close()
    again = Outbox(tmp_path / "o.sqlite")  # the flag and the rows are on disk
    assert again.confirmations_seen and len(again) == 10 and again.nbytes > 0
    # of 0-9 (numbered before the first confirmation) only 7 (acknowledged) goes; 10-13 go
    assert again.confirm([(0, 14)]) == 4 and len(again) == 6
    again.mark_acked([3, 4, 5, 6, 8, 9])
    assert again.confirm([(0, 14)]) == 6 and len(again) == 0
    again.close()


def test_a_new_outbox_sends_what_it_numbered_under_seqs_the_database_holds(
    tmp_path: Path,
) -> None:
    """A box back with a new SD card numbers from 0 again, under seqs the database holds for
    its earlier readings. Its first confirmation says so: the numbering continues after the
    database's seqs, the readings not yet sent move along (in order, their JSON too), and
    nothing unsent is deleted; what was sent already reaches the collector under the old seqs
    (it quarantines those as seq_reused: docs/reliability.md)."""
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(6):
        box.append(reading(i))
    box.mark_acked([0, 1])  # sent and acknowledged; 2 sent, awaiting its PUBACK
    assert box.confirm([(0, 500), (600, 1000)], in_flight={2}) == 2  # the acknowledged ones
    assert box.renumbered == (6, 1000, 3)
    pending = box.pending(100)
    assert [(r["seq"], r["values"]["pm25_ugm3"]) for r in pending] == [
        (2, 2.0), (1000, 3.0), (1001, 4.0), (1002, 5.0)
    ]  # fmt: skip
    assert [s for s, _ in box.pending_raw(100, after=2)] == [1000, 1001, 1002]
    assert box.append(reading(6)) == 1003
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.next_seq == 1004 and again.renumbered is None and again.nbytes > 0
    # numbered after the move: confirmed without a PUBACK seen, they go; 2 waits for its own
    assert again.confirm([(0, 500), (600, 1004)]) == 4
    assert [r["seq"] for r in again.pending(100)] == [2]
    again.mark_acked([2])
    assert again.confirm([(0, 500), (600, 1004)]) == 1 and len(again) == 0
    again.close()


def test_a_new_outbox_past_the_database_seqs_keeps_its_unsent_readings(tmp_path: Path) -> None:
    """The same box, offline long enough to number past the database's seqs before its first
    confirmation: no jump, and still no unsent reading deleted."""
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(81):
        box.append(reading(i))
    assert box.confirm([(0, 51)]) == 0
    assert box.renumbered is None and box.next_seq == 81 and len(box) == 81
    box.mark_acked(list(range(0, 81, 2)))
    assert box.confirm([(0, 81)]) == 41
    box.close()


def test_an_outbox_from_before_the_end_to_end_ack_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, reading TEXT NOT NULL, stored_at REAL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('next_seq', 2), ('shed', 0), ('lost', 0);"
        """INSERT INTO outbox VALUES (0, '{"seq":0}', 1.0), (1, '{"seq":1}', 1.0);"""
    )
    db.commit()
    db.close()
    box = Outbox(path)
    assert [r["seq"] for r in box.pending(10)] == [0, 1]
    box.mark_acked([0])
    assert [r["seq"] for r in box.pending(10)] == [1] and not box.confirmations_seen
    assert box.append(reading(2)) == 2
    box.close()


def test_a_damaged_outbox_file_is_moved_aside_and_what_can_be_read_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A box whose SD card damaged pages of its outbox: the first read that meets them moves
    the file aside, starts a new one with every reading that can still be read (under its own
    seq, acknowledged ones still marked) and numbers on where the old file had got to."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    for i in range(300):
        box.append(reading(i, pad=200))
    box.mark_acked(list(range(0, 40)))
    box.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 16 * page
    data[8 * page : 10 * page] = random.Random(7).randbytes(2 * page)  # two pages in the middle
    path.write_bytes(bytes(data))
    box = Outbox(path)
    with caplog.at_level(logging.ERROR, logger="luftnett.edge.outbox"):
        pending = box.pending(1000)
    assert box.recovered == 1
    assert "outbox file damaged" in caplog.text
    assert len(list(tmp_path.glob("o.sqlite.damaged-*"))) == 1
    kept = [r["seq"] for r in pending]
    assert all(r["values"]["pm25_ugm3"] == r["seq"] for r in pending)  # each its own reading
    assert kept == sorted(kept) and set(kept) <= set(range(40, 300))
    # the two pages held readings (some lost, not all), acknowledged ones still marked
    assert 250 <= len(box) < 300 and box.unconfirmed + len(kept) == len(box)
    assert box.unconfirmed > 0
    assert box.next_seq == 300 and box.append(reading(300)) == 300
    # a second thread that met the same damage before the recovery does not recover again
    copy = next(tmp_path.glob("o.sqlite.damaged-*"))
    assert box.recover(sqlite3.DatabaseError("malformed"), seen=0) == 0
    assert box.recovered == 1 and list(tmp_path.glob("o.sqlite.damaged-*")) == [copy]
    box.close()


def test_an_outbox_file_that_is_not_a_database_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"not a database, " * 512)
    box = Outbox(path)
    assert box.recovered == 1 and len(box) == 0 and box.next_seq == 0
    assert box.append(reading(0)) == 0
    assert [p.name for p in tmp_path.glob("o.sqlite.damaged-*")] != []
    box.close()
    again = Outbox(path)  # the new file is sound
    assert again.recovered == 0 and again.next_seq == 1
    again.close()
