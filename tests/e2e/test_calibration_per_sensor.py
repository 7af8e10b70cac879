"""A fleet default calibrates the readings of its own sensor model, on a real PostgreSQL
(migration 0056): a box with a PM sensor and the NO2 module gets both models' fleet defaults,
at ingest, in the API's device page and in downloads; a box whose PM sensor was replaced keeps
the old sensor's calibration for the old readings, through reprocessing and a job; and the
migration removes what the old rule (one sensor model per device) gave a reading from another
model's fleet default.

The sensor models are this module's own (copies of real fleet defaults with other
coefficients), so that no other test's device finds their fleet defaults in force."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest

from luftnett.calibration.fleet import fleet_default
from luftnett.calibration.store import activate, insert_version
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.db.migrate import available_migrations

pytestmark = pytest.mark.e2e

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fleet_version(
    conn: psycopg.Connection[Any], model: str, pollutant: str, coefs: tuple[float, float],
    since: datetime = EPOCH,
) -> int:  # fmt: skip
    """A fleet default of ``model``: value = coefs[0] + coefs[1] * raw, active from ``since``
    (the SDS011's PM2.5 default, a line, on the pollutant's raw column)."""
    base = fleet_default("sds011", "pm25")
    assert base is not None
    sensor = {"pm25": "pm25_ugm3", "pm10": "pm10_ugm3", "no2": "no2_ppb"}[pollutant]
    m = replace(base.model, sensor=sensor, coefficients=coefs, notes=f"{model} {pollutant}")
    vid = insert_version(conn, m, pollutant=pollutant, created_by="test", kind="fleet-default",
                         sensor_model=model)  # fmt: skip
    activate(conn, vid, since, "test")
    return vid


def _send(box: str, readings: list[contract.Reading]) -> Accepted:
    """A message as the edge agent sends it: the payload names its first reading's sensor."""
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=box, agent_version="test", sensor=readings[0].sensor, readings=readings
        )
    )
    item = validate_message("t", contract.readings_topic("t", box), payload)
    assert isinstance(item, Accepted), item
    return item


def _current(conn: psycopg.Connection[Any], box: str) -> dict[tuple[int, str], tuple[int, float]]:
    """(seq, pollutant) -> (version, value) of calibrated_current; no reading twice."""
    rows = conn.execute(
        "SELECT seq, pollutant, version_id, value FROM calibrated_current WHERE device_id = %s",
        (box,),
    ).fetchall()
    out = {(int(s), str(p)): (int(v), float(x)) for s, p, v, x in rows}
    assert len(out) == len(rows), "a reading has two values in force"
    return out


def test_a_box_with_a_pm_sensor_and_the_no2_module_gets_both_fleet_defaults(
    pg_url: str, device_id: str, api_url: str
) -> None:
    """30 windows of a box with a PM sensor (model A) and the NO2 module (model B), a reading
    of each per window in one message; for 5 windows the PM sensor sends nothing, so those
    messages name the NO2 module (devices.sensor_model follows them: it is not a companion).
    Every PM reading gets A's PM2.5 default and every NO2 reading B's NO2 default, at ingest;
    the device page shows both, and the download carries each reading's. Under the old rule
    (the fleet defaults of devices.sensor_model) the NO2 readings got none."""
    tag = uuid.uuid4().hex[:8]
    pm_model, no2_model = f"pma-{tag}", f"no2m-{tag}"
    pm = contract.SensorInfo(model=pm_model, serial="P1")
    no2 = contract.SensorInfo(model=no2_model, serial="N1")
    t0 = datetime(2026, 5, 10, 6, tzinfo=UTC)
    box = f"{device_id}-2s"
    with psycopg.connect(pg_url) as conn:
        v_pm = _fleet_version(conn, pm_model, "pm25", (1.0, 0.5))
        v_no2 = _fleet_version(conn, no2_model, "no2", (0.0, 2.0))
        conn.commit()
        w = Writer(conn)
        raw: dict[int, float] = {}
        for i in range(30):
            ts = t0 + (i + 1) * MINUTE
            readings = []
            if not 20 <= i < 25:  # the PM sensor's empty windows
                readings.append(contract.Reading(
                    seq=2 * i, ts=ts, window_s=60, n_samples=60, sensor=pm,
                    values={"pm25_ugm3": 10.0 + i, "pm10_ugm3": 20.0 + i}))  # fmt: skip
                raw[2 * i] = 10.0 + i
            readings.append(contract.Reading(
                seq=2 * i + 1, ts=ts, window_s=60, n_samples=60, sensor=no2,
                values={"no2_ppb": 30.0 + i, "temperature_c": 5.0, "rh_pct": 80.0}))  # fmt: skip
            raw[2 * i + 1] = 30.0 + i
            w.write([_send(box, readings)])
        got = _current(conn, box)
    pm_seqs = [2 * i for i in range(30) if not 20 <= i < 25]
    no2_seqs = [2 * i + 1 for i in range(30)]
    want = {(s, "pm25"): (v_pm, 1.0 + 0.5 * raw[s]) for s in pm_seqs}
    want |= {(s, "no2"): (v_no2, 2.0 * raw[s]) for s in no2_seqs}
    assert got.keys() == want.keys()
    assert len(got) == 25 + 30
    for k, (v, x) in want.items():
        assert got[k][0] == v, k
        assert got[k][1] == pytest.approx(x, rel=1e-6), k

    page = httpx.get(f"{api_url}/api/v1/devices/{box}", timeout=30).json()
    assert page["calibration"]["pm25_ugm3"]["calibration_id"] == v_pm
    assert page["calibration"]["no2_ppb"]["calibration_id"] == v_no2
    # the box's sensors, each with its first and last reading
    assert sorted((x["model"], x["serial"], x["first_reading"], x["last_reading"])
                  for x in page["sensors"]) == sorted([
        (pm_model, "P1", (t0 + MINUTE).isoformat(), (t0 + 30 * MINUTE).isoformat()),
        (no2_model, "N1", (t0 + MINUTE).isoformat(), (t0 + 30 * MINUTE).isoformat()),
    ])  # fmt: skip

    r = httpx.get(f"{api_url}/api/v1/downloads/readings.csv", timeout=60, params={
        "device": box, "start": "2026-05-10T00:00:00Z", "end": "2026-05-11T00:00:00Z"})  # fmt: skip
    assert r.status_code == 200, r.text
    df = pd.read_csv(io.BytesIO(r.content)).set_index("seq")
    assert sorted(df.index) == sorted(pm_seqs + no2_seqs)
    assert (df.loc[pm_seqs, "pm25_ugm3_calibration_id"] == v_pm).all()
    assert (df.loc[no2_seqs, "no2_ppb_calibration_id"] == v_no2).all()
    assert df.loc[no2_seqs, "pm25_ugm3_cal"].isna().all()
    assert df.loc[pm_seqs, "no2_ppb_cal"].isna().all()
    for s in pm_seqs:
        assert df.loc[s, "pm25_ugm3_cal"] == pytest.approx(1.0 + 0.5 * raw[s], rel=1e-6)
    for s in no2_seqs:
        assert df.loc[s, "no2_ppb_cal"] == pytest.approx(2.0 * raw[s], rel=1e-6)


def test_a_replaced_pm_sensor_keeps_its_calibration_through_reprocessing_and_jobs(
    pg_url: str, device_id: str
) -> None:
    """A box's PM sensor of model A is replaced by one of model C after 20 readings. Each
    reading has its own model's fleet default in force (the old rule put C's on all 40 once
    the box named C). `reprocess` gives the same values again; a new fleet default of A,
    activated with a job, reaches A's 20 readings on the box and none of C's."""
    from luftnett.calibration.apply_db import reprocess
    from luftnett.calibration.jobs import enqueue, plan_next, work_next_part

    tag = uuid.uuid4().hex[:8]
    a_model, c_model = f"pma-{tag}", f"pmc-{tag}"
    a = contract.SensorInfo(model=a_model, serial="A1")
    c = contract.SensorInfo(model=c_model, serial="C1")
    t0 = datetime(2026, 5, 12, tzinfo=UTC)
    box = f"{device_id}-sw"

    def reading(seq: int) -> contract.Reading:
        return contract.Reading(seq=seq, ts=t0 + seq * MINUTE, window_s=60, n_samples=60,
                                sensor=a if seq < 20 else c,
                                values={"pm25_ugm3": 5.0 + seq})  # fmt: skip

    with psycopg.connect(pg_url) as conn:
        v_a = _fleet_version(conn, a_model, "pm25", (0.0, 1.0))
        v_c = _fleet_version(conn, c_model, "pm25", (1.0, 0.5))
        conn.commit()
        w = Writer(conn)
        for s in range(0, 40, 5):
            w.write([_send(box, [reading(k) for k in range(s, s + 5)])])

        def expect(va: int, fa: float) -> dict[tuple[int, str], tuple[int, float]]:
            return {(s, "pm25"): (va, fa * (5.0 + s)) if s < 20 else (v_c, 1.0 + 0.5 * (5.0 + s))
                    for s in range(40)}  # fmt: skip

        assert _current(conn, box) == expect(v_a, 1.0)
        res = reprocess(conn, box)
        assert (res.readings, res.values, res.versions) == (40, 40, tuple(sorted((v_a, v_c))))
        assert _current(conn, box) == expect(v_a, 1.0)

        v_a2 = _fleet_version(conn, a_model, "pm25", (0.0, 3.0), since=t0 - timedelta(days=1))
        job = enqueue(conn, v_a2, "test", None)
        conn.commit()
        assert plan_next(conn) == job
        written = 0
        while (part := work_next_part(conn)) is not None:
            assert part.device_id == box
            written += part.values
        assert written == 20
        assert _current(conn, box) == expect(v_a2, 3.0)
        (n,) = conn.execute(
            "SELECT count(*) FROM calibrated_values WHERE device_id = %s AND version_id = %s "
            "AND seq >= 20", (box, v_a2)).fetchone() or (None,)  # fmt: skip
        assert n == 0


def test_migration_0056_drops_values_of_another_models_fleet_default(fresh_db_url: str) -> None:
    """A database at 0055 where the old rule left values: box x (devices.sensor_model pmc)
    reported through pma (seq 0-9) and then pmc (10-19); pma's default gave its first readings
    values at ingest, and a reprocessing under pmc's gave all 20 readings pmc's. Box y (pma
    only) kept its pma values. Box z reported through pma but is registered as pmc, and has
    pmc's values only. After 0056 each reading's value in force is its own model's: x's pmc
    values of pma readings are gone (10), y is untouched, z has none until `reprocess` gives
    it pma's."""
    from luftnett.calibration.apply_db import reprocess

    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        later = [m for m in available_migrations() if m.version >= 56]
        assert later[0].version == 56
        for m in available_migrations():
            if m.version < 56:
                c.execute(m.sql.encode())
        c.execute("INSERT INTO devices (device_id, sensor_model) VALUES "
                  "('x', 'pmc'), ('y', 'pma'), ('z', 'pmc')")  # fmt: skip
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        for dev, models in (("x", ["pma"] * 10 + ["pmc"] * 10), ("y", ["pma"] * 10),
                            ("z", ["pma"] * 10)):  # fmt: skip
            c.execute(
                "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
                "pm25_ugm3, flags, schema_version) SELECT %s, i - 1, %s + (i - 1) * interval "
                "'1 minute', 60, 60, m, 10 + i, 0, 1 FROM unnest(%s::text[]) WITH ORDINALITY "
                "AS u(m, i)",
                (dev, t0, models),
            )
            c.execute(
                "INSERT INTO device_sensors (device_id, sensor_model, first_ts, last_ts, "
                "window_s) SELECT device_id, sensor_model, min(ts), max(ts), 60 FROM readings "
                "WHERE device_id = %s GROUP BY 1, 2", (dev,))  # fmt: skip
        versions = {}
        for model, slope in (("pma", 1.0), ("pmc", 2.0)):
            base = fleet_default("sds011", "pm25")
            assert base is not None
            m = replace(base.model, coefficients=(0.0, slope))
            versions[model] = insert_version(c, m, pollutant="pm25", created_by="t",
                                             kind="fleet-default", sensor_model=model)  # fmt: skip
            activate(c, versions[model], EPOCH, "t")

        def values(dev: str, model: str, where: str = "true") -> None:
            c.execute(
                "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, "
                "value, u) SELECT device_id, seq, 'pm25', %s, ts, pm25_ugm3, 1 FROM readings "
                f"WHERE device_id = %s AND {where}", (versions[model], dev))  # fmt: skip

        values("x", "pma", "sensor_model = 'pma'")
        values("x", "pmc")
        values("y", "pma")
        values("z", "pmc")
        count = "SELECT count(*) FROM calibrated_values WHERE device_id = %s"
        assert [c.execute(count, (d,)).fetchone() for d in "xyz"] == [(30,), (10,), (10,)]
        for m in later:
            c.execute(m.sql.encode())
        assert [c.execute(count, (d,)).fetchone() for d in "xyz"] == [(20,), (10,), (0,)]
        pma, pmc = versions["pma"], versions["pmc"]
        assert {k: v for k, (v, _) in _current(c, "x").items()} == {
            (s, "pm25"): pma if s < 10 else pmc for s in range(20)}  # fmt: skip
        assert {v for v, _ in _current(c, "y").values()} == {pma}
        assert len(_current(c, "y")) == 10
        res = reprocess(c, "z", ("pm25",))
        assert (res.values, res.versions) == (10, (pma,))
        assert {k: v for k, (v, _) in _current(c, "z").items()} == {
            (s, "pm25"): pma for s in range(10)}  # fmt: skip
