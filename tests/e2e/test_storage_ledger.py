"""The completeness ledger and device health on a real database: gaps, duplicates, late
readings, a gap across midnight; the CLI and the API give the same numbers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from luftnett.cli import main
from luftnett.collector.health import device_health
from luftnett.collector.ledger import ledger, ledger_day
from luftnett.collector.quarantine import replay
from luftnett.collector.rollups import DayConvention, day_bounds
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import ReadingFlag

pytestmark = pytest.mark.e2e

DAY = date(2026, 6, 10)
MINUTE = timedelta(minutes=1)


def message(device_id: str, readings: list[tuple[int, datetime, float]]) -> Accepted:
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011"),
            readings=[
                contract.Reading(seq=s, ts=ts, window_s=60, n_samples=60, values={"pm25_ugm3": v})
                for s, ts, v in readings
            ],
        )
    )
    item = validate_message("t", contract.readings_topic("t", device_id), payload)
    assert isinstance(item, Accepted)
    return item


def one_reading(
    box: str, sensor: contract.SensorInfo, seq: int, ts: datetime, values: dict[str, float]
) -> Accepted:
    """A message of one reading of ``sensor``, which the payload names (the edge agent names a
    message's first reading's sensor)."""
    reading = contract.Reading(seq=seq, ts=ts, window_s=60, n_samples=60, values=values)
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=box, agent_version="test", sensor=sensor, readings=[reading]
        )
    )
    item = validate_message("t", contract.readings_topic("t", box), payload)
    assert isinstance(item, Accepted), item
    return item


def value(seq: int) -> float:
    return 10.0 + (seq * 7) % 11


@pytest.fixture
def story(pg_url: str, device_id: str) -> str:
    """Seqs 0-98 on DAY (Oslo), 100-104 the day after; 10-14, 50 and 99 never arrive;
    20-29 are redelivered, 30 twice more in a later batch; 60-64 arrive late."""
    start, end = day_bounds(DAY, DayConvention.DISPLAY)
    day1 = [(s, start + (s + 1) * MINUTE, value(s)) for s in range(99)]
    day1 = [r for r in day1 if not (10 <= r[0] <= 14 or r[0] == 50)]
    day2 = [(s, end + (s - 99) * MINUTE, value(s)) for s in range(100, 105)]
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        r1 = w.write([message(device_id, day1[:40]), message(device_id, day1[40:])])
        r2 = w.write([message(device_id, [r for r in day1 if 20 <= r[0] <= 29])])
        thirty = next(r for r in day1 if r[0] == 30)
        r3 = w.write([message(device_id, [*day2, thirty, thirty])])
        assert (r1.stored, r1.duplicates) == (93, 0)
        assert (r2.stored, r2.duplicates) == (0, 10)
        assert (r3.stored, r3.duplicates) == (5, 2)
        # delivered on time, except seqs 60-64 (received now, months after their ts)
        conn.execute(
            "UPDATE reading_keys SET received_at = ts + interval '10 seconds' "
            "WHERE device_id = %s AND seq NOT BETWEEN 60 AND 64",
            (device_id,),
        )
        conn.commit()
    return device_id


EXPECTED_DAY1 = {
    "first_seq": 0,
    "last_seq": 98,
    "sent": 99,
    "stored": 93,
    "missing": 6,
    "missing_ranges": [[10, 14], [50, 50]],
    # 20-29 redelivered, and 30 twice (sent with 100-104, counted on the day of its ts)
    "duplicates": 12,
    "received": 105,
    "late": 5,
    "hours": 24,
    "day_convention": "Europe/Oslo",
}
EXPECTED_DAY2 = {"sent": 6, "stored": 5, "missing": 1, "missing_ranges": [[99, 99]]}


def test_ledger_counts_gaps_duplicates_and_late_readings(pg_url: str, story: str) -> None:
    with psycopg.connect(pg_url) as conn:
        d1 = ledger_day(conn, story, DAY).as_dict()
        d2 = ledger_day(conn, story, DAY + timedelta(days=1)).as_dict()
        strict = ledger_day(conn, story, DAY, late_after=timedelta(seconds=5))
        every = ledger(conn, DAY)
    assert {k: d1[k] for k in EXPECTED_DAY1} == EXPECTED_DAY1
    assert {k: d2[k] for k in EXPECTED_DAY2} == EXPECTED_DAY2
    assert d2["duplicates"] == 0
    assert d1["sent"] + d2["sent"] == 104 - 0 + 1  # max seq - min seq + 1
    assert strict.late == 93  # every reading is more than 5 s late
    assert d1["start"] == "2026-06-09T22:00:00+00:00"
    assert d1["start_local"] == "2026-06-10T00:00:00+02:00"
    assert story in {e.device_id for e in every}


def test_ledger_on_compliance_days(pg_url: str, story: str) -> None:
    with psycopg.connect(pg_url) as conn:
        c = ledger_day(conn, story, DAY, DayConvention.COMPLIANCE)
    # the UTC+01:00 day runs an hour behind the Oslo (CEST) day: seqs 0-58 fall the day
    # before, and 100-104 (22:01-22:05 UTC) still count on DAY
    assert (c.first_seq, c.last_seq) == (59, 104)
    assert c.stored == 45
    assert c.sent == 46
    assert c.missing_ranges == ((99, 99),)


def test_ledger_cli_and_api_agree(pg_url: str, story: str, api_url: str) -> None:
    env = {"LUFTNETT_DATABASE_URL": pg_url}
    res = CliRunner().invoke(
        main, ["ledger", "--device", story, "--day", DAY.isoformat(), "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    cli = json.loads(res.output)
    table = CliRunner().invoke(main, ["ledger", "--device", story, "--day", "2026-06-10"], env=env)
    assert "Europe/Oslo" in table.output
    assert "10-14, 50" in table.output
    with httpx.Client(base_url=api_url) as client:
        body = client.get("/api/v1/ledger", params={"device": story, "day": "2026-06-10"}).json()
        assert body["day_convention"] == "Europe/Oslo"
        assert body["devices"] == [cli]
        assert cli["missing_ranges"] == [[10, 14], [50, 50]]
        utc1 = client.get(
            "/api/v1/ledger",
            params={"device": story, "day": "2026-06-10", "day_convention": "utc+01"},
        ).json()
        assert utc1["devices"][0]["start"] == "2026-06-09T23:00:00+00:00"
        assert client.get("/api/v1/ledger", params={"device": "no-such-dev"}).status_code == 404
        bad = client.get("/api/v1/ledger", params={"day_convention": "CET"})
        assert bad.status_code == 422


def test_a_span_of_days_in_one_call_matches_day_by_day(pg_url: str, story: str) -> None:
    other = f"{story}-b"
    start, _ = day_bounds(DAY, DayConvention.DISPLAY)
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write([message(other, [(s, start + s * MINUTE, value(s)) for s in (0, 1, 5)])])
        conn.commit()
        week = ledger(conn, DAY + timedelta(days=3), story, days=7)
        by_day = [ledger_day(conn, story, e.day) for e in week]
        fleet = ledger(conn, DAY + timedelta(days=1), days=2)
    assert [e.day for e in week] == [DAY - timedelta(days=3 - i) for i in range(7)]
    assert week == by_day  # the span's entries are the single days', empty days included
    assert [e.stored for e in week] == [0, 0, 0, 93, 5, 0, 0]
    assert sum(e.sent for e in week) == 105 and sum(e.missing for e in week) == 7
    mine = [
        (e.device_id, e.day, e.stored, e.missing_ranges)
        for e in fleet
        if e.device_id in {story, other}
    ]
    assert mine == [
        (story, DAY, 93, ((10, 14), (50, 50))),
        (story, DAY + timedelta(days=1), 5, ((99, 99),)),
        (other, DAY, 3, ((2, 4),)),  # no entry for the day it was silent: not a named device
    ]


def test_a_neighbour_stamped_on_another_day_is_no_gap(pg_url: str, device_id: str) -> None:
    """Seq 5's clock jumped back a day: on DAY, seq 6 follows a stored seq all the same."""
    start, _ = day_bounds(DAY, DayConvention.DISPLAY)
    rows = [(s, start + (s + 1) * MINUTE, value(s)) for s in range(10)]
    rows[5] = (5, start - timedelta(hours=3), value(5))
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write([message(device_id, rows)])
        conn.commit()
        (before,) = ledger(conn, DAY - timedelta(days=1), device_id)
        (day,) = ledger(conn, DAY, device_id)  # seq 5 is outside this span
        both = ledger(conn, DAY, device_id, days=2)
    assert both == [before, day]
    assert (before.stored, before.sent, before.missing_ranges) == (1, 1, ())
    assert (day.stored, day.sent, day.missing_ranges) == (9, 9, ())


def test_ledger_span_from_the_cli_and_the_api(pg_url: str, story: str, api_url: str) -> None:
    env = {"LUFTNETT_DATABASE_URL": pg_url}
    args = ["ledger", "--device", story, "--day", "2026-06-11", "--days", "3"]
    res = CliRunner().invoke(main, args, env=env)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("days 2026-06-09 to 2026-06-11 (Europe/Oslo")
    assert [ln.split()[1] for ln in lines[2:5]] == ["2026-06-09", "2026-06-10", "2026-06-11"]
    assert lines[5].split()[1:] == ["105", "98", "7", "12", "5"]  # sent stored missing dupes late
    as_json = CliRunner().invoke(main, [*args, "--json"], env=env)
    with httpx.Client(base_url=api_url) as client:
        body = client.get(
            "/api/v1/ledger", params={"device": story, "day": "2026-06-11", "days": 3}
        ).json()
        assert (body["first_day"], body["day"], body["days"]) == ("2026-06-09", "2026-06-11", 3)
        assert body["devices"] == [json.loads(x) for x in as_json.output.splitlines()]
        for bad in (0, 93, "x"):
            r = client.get("/api/v1/ledger", params={"device": story, "days": bad})
            assert r.status_code == 422, bad
        fleet = client.get("/api/v1/ledger", params={"day": "2026-06-11", "days": 7})
        assert story in {e["device_id"] for e in fleet.json()["devices"]}
        for day in ("9999-12-31", "0001-01-01"):  # the days' bounds would overflow
            r = client.get("/api/v1/ledger", params={"day": day})
            assert r.status_code == 422, day
            assert "between 1970-01-01 and 2099-12-31" in r.json()["detail"]
        r = client.get("/api/v1/ledger", params={"device": story, "day": "1970-01-01", "days": 2})
        assert r.status_code == 422  # the span would begin on 1969-12-31
        assert "first day" in r.json()["detail"] and "(got 1969-12-31)" in r.json()["detail"]
        too_long = client.get("/api/v1/ledger", params={"days": 8})
        assert too_long.status_code == 422
        assert "at most 7 days" in too_long.json()["detail"]
    far = CliRunner().invoke(main, ["ledger", "--day", "9999-12-31"], env=env)
    assert far.exit_code == 2
    assert "between 1970-01-01 and 2099-12-31" in far.output
    early = CliRunner().invoke(main, ["ledger", "--day", "1970-01-02", "--days", "3"], env=env)
    assert early.exit_code == 2
    assert "the first day (1969-12-31) is before 1970-01-01" in early.output
    unknown = CliRunner().invoke(main, ["ledger", "--device", "no-such-dev"], env=env)
    assert unknown.exit_code == 1
    assert "no device 'no-such-dev'" in unknown.output


def test_a_ledger_query_held_up_past_its_limit_is_a_clear_503(
    pg_url: str, story: str, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API in this process: its limit lowered to 0.3 s, and `readings` locked meanwhile."""
    from luftnett.api.routers import ledger as router

    monkeypatch.setattr(router, "STATEMENT_TIMEOUT_MS", 300)
    params = {"device": story, "day": "2026-06-10"}
    with psycopg.connect(pg_url) as lock, httpx.Client(base_url=api_url) as client:
        lock.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
        held = client.get("/api/v1/ledger", params=params)
        lock.rollback()
        after = client.get("/api/v1/ledger", params=params)
    assert held.status_code == 503
    assert "took too long" in held.json()["detail"]
    assert after.status_code == 200
    assert after.json()["devices"][0]["stored"] == 93


def _stuck_and_silent(pg_url: str, device_id: str) -> tuple[str, str]:
    stuck, silent = f"{device_id}-s", f"{device_id}-q"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        w.write([message(stuck, [(s, t0 + (s + 1) * MINUTE, 42.0) for s in range(30)])])
        w.write([message(silent, [(s, t0 + (s + 1) * MINUTE, value(s)) for s in range(30)])])
        conn.execute(
            "UPDATE devices SET last_seen = now() - interval '1 hour' WHERE device_id = %s",
            (silent,),
        )
        conn.commit()
    return stuck, silent


def test_a_stuck_sensor_is_listed_when_each_reading_comes_alone(
    pg_url: str, device_id: str
) -> None:
    """An SDS011 reports tenths of a µg/m³, and 12.3 has no exact ``real``: a reading stored
    as ``real`` and the next one still in the message must compare as the same value, or a
    stuck sensor whose readings arrive one a message (an edge agent in real time) is never
    flagged at its newest reading, and device health never lists it."""
    stuck = f"{device_id}-r"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        for s in range(32):
            w.write([message(stuck, [(s, t0 + (s + 1) * MINUTE, 12.3)])])
        flags = [
            f & int(ReadingFlag.STUCK)
            for (f,) in conn.execute(
                "SELECT flags FROM readings WHERE device_id = %s ORDER BY seq", (stuck,)
            )
        ]
        health = {h.device_id: h.problems for h in device_health(conn)}
    assert flags == [int(ReadingFlag.STUCK)] * 32
    assert health[stuck] == ("stuck",)


def test_device_health_lists_silent_and_stuck_devices(
    pg_url: str, device_id: str, api_url: str
) -> None:
    stuck, silent = _stuck_and_silent(pg_url, device_id)
    with httpx.Client(base_url=api_url) as client:
        body = client.get("/api/v1/devices/health", params={"silent_after_s": 600}).json()
    listed: dict[str, Any] = {d["device_id"]: d for d in body["devices"]}
    assert listed[stuck]["problems"] == ["stuck"]
    assert listed[silent]["problems"] == ["silent"]
    assert listed[silent]["silent_for_s"] >= 3600
    assert listed[silent]["last_seen_local"][-6:] in ("+01:00", "+02:00")
    with httpx.Client(base_url=api_url) as client:
        lax = client.get("/api/v1/devices/health", params={"silent_after_s": 7200}).json()
    assert silent not in {d["device_id"] for d in lax["devices"]}
    res = CliRunner().invoke(
        main,
        ["devices", "health", "--silent-after", "600", "--json"],
        env={"LUFTNETT_DATABASE_URL": pg_url},
    )
    assert res.exit_code == 0, res.output
    cli = {d["device_id"]: d["problems"] for d in map(json.loads, res.output.splitlines())}
    assert cli[stuck] == ["stuck"]
    assert cli[silent] == ["silent"]


def _stored(conn: psycopg.Connection[Any], device: str) -> list[tuple[int, datetime]]:
    return conn.execute(
        "SELECT seq, ts FROM readings WHERE device_id = %s ORDER BY seq", (device,)
    ).fetchall()


def _reused_records(conn: psycopg.Connection[Any], device: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT quarantine_id, payload, detail, replayed_at FROM quarantine"
        " WHERE reason = 'seq_reused' AND topic = %s ORDER BY quarantine_id",
        (contract.readings_topic("t", device),),
    ).fetchall()


def test_readings_under_seqs_taken_by_others_are_quarantined_not_dropped(
    pg_url: str, device_id: str
) -> None:
    """A device whose outbox starts numbering again (a new SD card) sends new readings under
    seqs already stored. They are not copies (another time): kept in quarantine as
    ``seq_reused`` with the message verbatim, not counted as duplicates, the device listed by
    health; a replay keeps them there. True copies are still dropped silently."""
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    t1 = datetime(2026, 6, 20, tzinfo=UTC)  # the box comes back with an empty outbox
    first = [(s, t0 + s * MINUTE, value(s)) for s in range(10)]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        w = Writer(conn)
        assert w.write([message(device_id, first)]).stored == 10
        # a redelivery of the same readings: copies, dropped
        again = w.write([message(device_id, first[3:6])])
        assert (again.duplicates, again.reused, again.quarantined) == (3, 0, 0)
        # seqs 8-12 after the restart: 8 and 9 are stored at other times, 10-12 are new
        restarted = message(device_id, [(s, t1 + s * MINUTE, 1.5) for s in range(8, 13)])
        res = w.write([restarted])
        assert (res.stored, res.duplicates, res.reused, res.quarantined) == (3, 0, 2, 1)
        # in one batch: seq 20 twice at two times (the second reused), seq 21 twice at one
        # time (a copy); seq 5 at a new time, then its stored reading again (a copy)
        res = w.write([
            message(device_id, [(20, t1 + 20 * MINUTE, 1.0), (21, t1 + 21 * MINUTE, 1.0)]),
            message(device_id, [(20, t1 + 30 * MINUTE, 2.0), (21, t1 + 21 * MINUTE, 1.0)]),
            message(device_id, [(5, t1 + 5 * MINUTE, 3.0)]),
            message(device_id, [first[5]]),
        ])  # fmt: skip
        assert (res.stored, res.duplicates, res.reused, res.quarantined) == (2, 2, 2, 2)
        stored = _stored(conn, device_id)
        assert stored == [(s, t0 + s * MINUTE) for s in range(10)] + [
            (s, t1 + s * MINUTE) for s in (10, 11, 12, 20, 21)
        ]
        records = _reused_records(conn, device_id)
        assert [bytes(r[1]) for r in records] == [
            restarted.payload,
            message(device_id, [(20, t1 + 30 * MINUTE, 2.0), (21, t1 + 21 * MINUTE, 1.0)]).payload,
            message(device_id, [(5, t1 + 5 * MINUTE, 3.0)]).payload,
        ]
        assert "seq 8-9 " in records[0][2] and "seq 20 " in records[1][2]
        # the ledger: copies counted as duplicates, the reused readings not at all
        dups = conn.execute(
            "SELECT sum(received), sum(stored), sum(duplicates) FROM ingest_counts"
            " WHERE device_id = %s",
            (device_id,),
        ).fetchone()
        assert dups == (10 + 3 + 3 + 4, 15, 3 + 2)
        health = {h.device_id: h.problems for h in device_health(conn)}
        assert "seq_reused" in health[device_id]
        # a replay cannot store them either: the records stay pending, none added
        out = replay(conn, "t", reason="seq_reused", ids=[r[0] for r in records])
        assert out.replayed == 0
        assert out.still_rejected == {r[0]: "seq_reused" for r in records}
        assert _reused_records(conn, device_id) == records
        assert _stored(conn, device_id) == stored
        # health shows the problem for a day after the last such reading
        conn.execute(
            "UPDATE quarantine SET received_at = received_at - interval '25 hours'"
            " WHERE quarantine_id = ANY(%s)",
            ([r[0] for r in records],),
        )
        health = {h.device_id: h.problems for h in device_health(conn)}
        assert "seq_reused" not in health[device_id]


@pytest.mark.parametrize("together", [True, False], ids=["window-a-message", "reading-a-batch"])
def test_a_stuck_sensor_beside_a_companion_is_flagged_and_listed(
    pg_url: str, device_id: str, together: bool
) -> None:
    """A box with an SDS011 and an SHT31 sends a reading of each per window, as the edge agent
    does (each with its own sensor): both in one message, or each in a batch of its own (then
    a batch holds one sensor's reading, and the window of the device's readings the writer
    loads first holds half as many of that sensor's as it needs: it loads more). The SDS011
    repeats 42.0 while the SHT31's temperature and RH move: the stuck check follows each
    sensor's readings, so every SDS011 reading is stuck and no SHT31 one (the device's mixed
    series never repeats a value 30 times in a row), device health lists the box, and
    `restate_device` brings stale flags back to the same."""
    from luftnett.collector.restate import restate_device

    box = f"{device_id}-b"
    pm = contract.SensorInfo(model="sds011", serial="S1")
    trh = contract.SensorInfo(model="sht31", serial="T1")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)
    stuck = int(ReadingFlag.STUCK)

    def window(i: int) -> list[contract.Reading]:
        ts = t0 + (i + 1) * MINUTE
        return [
            contract.Reading(seq=2 * i, ts=ts, window_s=60, n_samples=60, sensor=pm,
                             values={"pm25_ugm3": 42.0, "pm10_ugm3": 55.0}),
            contract.Reading(seq=2 * i + 1, ts=ts, window_s=60, n_samples=60, sensor=trh,
                             values={"temperature_c": 3.0 + i / 10, "rh_pct": 70.0 + i}),
        ]  # fmt: skip

    def send(readings: list[contract.Reading]) -> Accepted:
        payload = contract.encode(
            contract.ReadingsPayload(
                device_id=box, agent_version="test", sensor=pm, readings=readings
            )
        )
        item = validate_message("t", contract.readings_topic("t", box), payload)
        assert isinstance(item, Accepted), item
        return item

    def flags(conn: psycopg.Connection[Any]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {"sds011": [], "sht31": []}
        for model, f in conn.execute(
            "SELECT sensor_model, flags FROM readings WHERE device_id = %s ORDER BY seq", (box,)
        ):
            out[model].append(f & stuck)
        return out

    class Looking(Writer):
        looks = 0  # history queries

        def _history_params(self, *args: Any) -> Any:  # type: ignore[override]
            Looking.looks += 1
            return super()._history_params(*args)

    with psycopg.connect(pg_url) as conn:
        w = Looking(conn)
        for i in range(35):
            if together:
                w.write([send(window(i))])
            else:
                for r in window(i):
                    w.write([send([r])])
        assert flags(conn) == {"sds011": [stuck] * 35, "sht31": [0] * 35}
        # one look a batch; alone in a batch, a sensor's window came short once (its device
        # has 2 sensors): the writer looked again, and remembers it for the device's next
        batches = 35 if together else 70
        assert Looking.looks == batches + (0 if together else 1)
        assert w._spreads == {box: 2}
        health = {h.device_id: h.problems for h in device_health(conn)}
        assert health[box] == ("stuck",)
        conn.execute("UPDATE readings SET flags = flags & ~%s WHERE device_id = %s", (stuck, box))
        conn.commit()
        res = restate_device(conn, box)
        assert (res.readings, res.restated) == (70, 35)
        assert flags(conn) == {"sds011": [stuck] * 35, "sht31": [0] * 35}


def test_a_stuck_sensor_with_a_long_window_is_listed(pg_url: str, device_id: str) -> None:
    """A box whose NO2 module averages over two hours beside an SDS011 that reports every
    minute: the module repeats one value (stuck) and its newest reading is 90 minutes older
    than the box's newest, beyond the hour health looked back before. Listed all the same."""
    box = f"{device_id}-n"
    no2 = contract.SensorInfo(model="dgs-no2", serial="N1")
    pm = contract.SensorInfo(model="sds011", serial="S1")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=70)
    slow = [
        contract.Reading(seq=i, ts=t0 + (i + 1) * timedelta(hours=2), window_s=7200,
                         n_samples=120, sensor=no2, values={"no2_ppb": 17.0})
        for i in range(34)
    ]  # fmt: skip
    last_no2 = slow[-1].ts
    fast = [
        contract.Reading(seq=100 + i, ts=last_no2 + (i + 1) * MINUTE, window_s=60,
                         n_samples=60, sensor=pm, values={"pm25_ugm3": value(i)})
        for i in range(90)
    ]  # fmt: skip
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=box, agent_version="test", sensor=pm, readings=[*slow, *fast]
        )
    )
    item = validate_message("t", contract.readings_topic("t", box), payload)
    assert isinstance(item, Accepted), item
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write([item])
        conn.commit()
        (stuck,) = conn.execute(
            "SELECT count(*) FILTER (WHERE flags & %s > 0) FROM readings WHERE device_id = %s",
            (int(ReadingFlag.STUCK), box),
        ).fetchone() or (0,)
        health = {h.device_id: h for h in device_health(conn)}
    assert stuck == 34  # every NO2 reading, no PM one
    assert health[box].problems == ("stuck",)
    assert health[box].silent_sensors == ()  # two windows have not passed: not silent


def test_a_companion_never_becomes_the_devices_sensor(pg_url: str, device_id: str) -> None:
    """The edge agent names a message's first reading's sensor as the payload's: a box with an
    SDS011 and an SHT31 sends messages of either. The companion's messages leave the device's
    sensor as the SDS011's (what the registry, the API and SensorThings show), and its PM2.5
    fleet default stays in force, whichever message came last. (The
    PM sensor's model is one of this test's own, with the SDS011's fixed fleet default, so
    that no other test's device finds it in force.)"""
    from luftnett.calibration.fleet import fleet_default

    model = f"pm-{uuid.uuid4().hex[:8]}"
    fixed = fleet_default("sds011", "pm25")
    assert fixed is not None
    pm = contract.SensorInfo(model=model, serial="S1")
    trh = contract.SensorInfo(model="sht31", serial="T1")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def send(box: str, seq: int, sensor: contract.SensorInfo, values: dict[str, float]) -> Accepted:
        return one_reading(box, sensor, seq, t0 + (seq // 2 + 1) * MINUTE, values)

    def state(conn: psycopg.Connection[Any], box: str) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT d.sensor_model, d.sensor_serial, (SELECT array_agg(s.version_id) FROM "
            "calibration_spans s WHERE s.device_id = d.device_id AND s.pollutant = 'pm25' "
            "AND s.valid_to = 'infinity') FROM devices d WHERE d.device_id = %s",
            (box,),
        ).fetchone()
        assert row is not None
        return tuple(row)

    box, late = f"{device_id}-c", f"{device_id}-l"
    with psycopg.connect(pg_url) as conn:
        (version,) = conn.execute(
            "INSERT INTO calibration_versions (sensor_model, pollutant, kind, model_id, model, "
            "created_by) VALUES (%s, 'pm25', 'fleet-default', %s, %s, 'test') "
            "RETURNING version_id",
            (model, fixed.model.model_id, fixed.model.to_json()),
        ).fetchone() or (None,)
        conn.execute(
            "INSERT INTO calibration_activations (sensor_model, pollutant, version_id, "
            "valid_from, created_by) VALUES (%s, 'pm25', %s, %s, 'test')",
            (model, version, t0 - timedelta(days=30)),
        )
        conn.commit()
        w = Writer(conn, calibration="deferred")
        pm_in_force = (model, "S1", [version])
        w.write([send(box, 0, pm, {"pm25_ugm3": 8.0}), send(box, 1, trh, {"rh_pct": 60.0})])
        assert state(conn, box) == pm_in_force
        w.write([send(box, 3, trh, {"rh_pct": 61.0})])
        assert state(conn, box) == pm_in_force
        w.write([send(box, 2, pm, {"pm25_ugm3": 9.0}), send(box, 5, trh, {"rh_pct": 62.0})])
        assert state(conn, box) == pm_in_force
        # a box heard from first through its companion starts with the companion's model,
        # until the PM sensor's first message names the device's sensor
        w.write([send(late, 0, trh, {"rh_pct": 60.0})])
        assert state(conn, late)[:2] == ("sht31", "T1")
        w.write([send(late, 1, pm, {"pm25_ugm3": 8.0})])
        assert state(conn, late) == pm_in_force


def test_a_sensor_silent_beside_a_working_companion_is_listed(
    pg_url: str, device_id: str, api_url: str
) -> None:
    """A box's SDS011 dies (an empty window sends nothing) while its SHT31 reports on: the box
    stays in contact, so only its sensors tell. Health lists it as `sensor_silent`, naming the
    SDS011 and its last reading, through the API and the CLI; a box whose SDS011 was replaced
    (a new serial since) and a box whose sensors all report are not listed."""
    dead, swapped, fine = f"{device_id}-d", f"{device_id}-s", f"{device_id}-f"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=60)

    def send(box: str, seq: int, minute: int, model: str, serial: str) -> Accepted:
        values = {"pm25_ugm3": 5.0 + seq % 7} if model == "sds011" else {"rh_pct": 50.0 + seq % 9}
        sensor = contract.SensorInfo(model=model, serial=serial)
        payload = contract.encode(
            contract.ReadingsPayload(
                device_id=box, agent_version="test", sensor=sensor,
                readings=[contract.Reading(seq=seq, ts=t0 + minute * MINUTE, window_s=60,
                                           n_samples=60, values=values)],
            )
        )  # fmt: skip
        item = validate_message("t", contract.readings_topic("t", box), payload)
        assert isinstance(item, Accepted), item
        return item

    items = []
    for m in range(1, 60):
        items.append(send(dead, 2 * m, m, "sht31", "T1"))
        items.append(send(fine, 2 * m, m, "sht31", "T2"))
        items.append(send(fine, 2 * m + 1, m, "sds011", "S2"))
        items.append(send(swapped, 2 * m, m, "sht31", "T3"))
        items.append(send(swapped, 2 * m + 1, m, "sds011", "S3" if m < 30 else "S4"))
        if m <= 40:  # then the SDS011 of `dead` stops
            items.append(send(dead, 2 * m + 1, m, "sds011", "S1"))
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write(items[: len(items) // 2])
        Writer(conn).write(items[len(items) // 2 :])
    with httpx.Client(base_url=api_url) as client:
        body = client.get("/api/v1/devices/health", params={"all": "true"}).json()
    listed: dict[str, Any] = {d["device_id"]: d for d in body["devices"]}
    assert listed[dead]["problems"] == ["sensor_silent"]
    (quiet,) = listed[dead]["silent_sensors"]
    assert (quiet["model"], quiet["serial"]) == ("sds011", "S1")
    assert quiet["last_reading_ts"] == (t0 + 40 * MINUTE).isoformat()
    assert listed[swapped]["problems"] == [] and listed[fine]["problems"] == []
    res = CliRunner().invoke(main, ["devices", "health"], env={"LUFTNETT_DATABASE_URL": pg_url})
    assert res.exit_code == 0, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith(dead)]
    assert "sensor_silent" in line
    assert f"silent sensor sds011 S1, last reading {t0 + 40 * MINUTE:%Y-%m-%d %H:%M:%S}Z" in line


def test_the_no2_module_never_names_a_box_with_a_pm_sensor(pg_url: str, device_id: str) -> None:
    """A box with an SDS011, the NO2 module and an SHT31 sends messages naming any of them
    (the edge agent names the first reading's sensor). The device keeps the SDS011's name
    whichever came last, alone or in a batch; a box first heard through its NO2 module takes
    the SDS011's at its first PM message; a PMS5003 replacing the SDS011 names the box."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    sds = contract.SensorInfo(model="sds011", serial="S1")
    no2 = contract.SensorInfo(model="dgs-no2", serial="N1")
    trh = contract.SensorInfo(model="sht31", serial="T1")
    pms = contract.SensorInfo(model="pms5003", serial="P9")
    values = {"sds011": {"pm25_ugm3": 8.0}, "dgs-no2": {"no2_ppb": 20.0},
              "sht31": {"rh_pct": 60.0}, "pms5003": {"pm25_ugm3": 9.0}}  # fmt: skip

    def send(box: str, seq: int, sensor: contract.SensorInfo) -> Accepted:
        return one_reading(box, sensor, seq, t0 + (seq + 1) * MINUTE, values[sensor.model])

    def named(conn: psycopg.Connection[Any], box: str) -> tuple[Any, ...]:
        row = conn.execute("SELECT sensor_model, sensor_serial FROM devices WHERE device_id = %s",
                           (box,)).fetchone()  # fmt: skip
        assert row is not None
        return tuple(row)

    box, late = f"{device_id}-3s", f"{device_id}-nl"
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn, calibration="deferred")
        w.write([send(box, 0, sds), send(box, 1, no2), send(box, 2, trh)])
        assert named(conn, box) == ("sds011", "S1")
        w.write([send(box, 3, no2)])
        assert named(conn, box) == ("sds011", "S1")
        w.write([send(box, 4, trh)])
        w.write([send(box, 5, no2), send(box, 6, trh)])
        assert named(conn, box) == ("sds011", "S1")
        w.write([send(late, 0, no2)])
        assert named(conn, late) == ("dgs-no2", "N1")
        w.write([send(late, 1, trh)])
        assert named(conn, late) == ("dgs-no2", "N1")
        w.write([send(late, 2, sds)])
        assert named(conn, late) == ("sds011", "S1")
        w.write([send(box, 7, pms), send(box, 8, no2)])  # the PM sensor replaced
        assert named(conn, box) == ("pms5003", "P9")
