"""The collector's calibration at ingest (numpy columns, binary COPY) stores exactly what the
reference rule, ``calibrate_rows``, computes for the same readings: the same version per device,
pollutant and time (device activations from a date, fleet defaults by sensor model, nothing where
no version is in force), the same value and uncertainty, and no value where an input is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import replace
from typing import Any

import numpy as np
import psycopg
import pytest
from numpy.testing import assert_allclose

from luftnett.calibration.apply_db import POLLUTANT_COLUMNS, CalibrationCache, calibrate_rows
from luftnett.calibration.fleet import FLEET_DEFAULTS
from luftnett.calibration.store import activate, insert_version
from luftnett.collector.calibrate import calibrate_at_ingest
from luftnett.collector.columns import BatchColumns, ReadingColumns
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

pytestmark = pytest.mark.e2e

T0 = dt.datetime(2025, 3, 29, 12, tzinfo=dt.UTC)
SWITCH = T0 + dt.timedelta(hours=20)  # the device's second version starts here
_I = {c: READING_COLUMNS.index(c) for c in READING_COLUMNS}


def _rows(devices: dict[str, str], n: int) -> list[tuple[Any, ...]]:
    """``n`` readings per device every 10 min from an hour before T0; some values missing."""
    rng = np.random.default_rng(11)
    rows = []
    for device_id, model in devices.items():
        for i in range(n):
            vals: list[float | None] = [float(v) for v in rng.gamma(3, 6, len(VALUE_COLUMNS))]
            vals[VALUE_COLUMNS.index("rh_pct")] = float(rng.uniform(20, 99))
            for j in range(len(vals)):
                if rng.random() < 0.1:
                    vals[j] = None
            ts = T0 - dt.timedelta(hours=1) + dt.timedelta(minutes=10 * i)
            # a Plantower's CF=1 PM2.5 (the Barkjohn default's input) comes in `extra`
            extra = None
            if model == "pms5003" and i % 9:
                extra = json.dumps({"pm25_cf1": round(float(rng.gamma(3, 6)), 2)})
            rows.append((device_id, i, ts, 600.0, 60, model, None, *vals, extra, 0, 1))
    return rows


def test_ingest_calibration_equals_the_reference_rule(pg_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    devices = {  # ids of different byte lengths: the COPY records are grouped by it
        f"cr-{tag}-a": "sds011",
        f"cr-{tag}-pms": "pms5003",
        f"cr-{tag}-sds-no-own": "sds011",
        f"cr-{tag}-z": "sht31",  # a model without any fleet default
    }
    rows = _rows(devices, 180)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for device_id, model in devices.items():
            conn.execute(
                "INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)",
                (device_id, model),
            )
        own = f"cr-{tag}-a"
        base = FLEET_DEFAULTS[("sds011", "pm25")].model
        m_a = replace(base, coefficients=(1.5, 0.7), notes="A")
        m_b = replace(base, coefficients=(-2.0, 0.55), notes="B")
        va = insert_version(conn, m_a, pollutant="pm25", created_by="t", device_id=own)
        vb = insert_version(conn, m_b, pollutant="pm25", created_by="t", device_id=own)
        activate(conn, va, T0, "t")  # readings before T0: the fleet default
        activate(conn, vb, SWITCH, "t")

        expected = {
            (c.device_id, c.seq, c.pollutant): c
            for c in calibrate_rows(conn, rows, CalibrationCache())
        }
        names = sorted(devices)
        # one message per device, as the writer joins them
        batch = BatchColumns.join(
            [
                ((d, m, None, "t"), ReadingColumns.from_rows([r for r in rows if r[0] == d]))
                for d, m in devices.items()
            ]
        )
        assert batch.names == names
        cache = CalibrationCache()
        with conn.transaction():
            written = calibrate_at_ingest(conn, batch, cache)
        # the batch's resolvers came in one query: the same as one query per device/pollutant
        one_by_one = CalibrationCache()
        assert len(cache.resolvers) == len(names) * len(POLLUTANT_COLUMNS)
        for (d, p), r in cache.resolvers.items():
            assert repr(r) == repr(one_by_one.resolver(conn, d, p)), (d, p)
        stored = conn.execute(
            "SELECT device_id, seq, pollutant, version_id, value, u FROM calibrated_values "
            "WHERE device_id = ANY(%s)",
            (names,),
        ).fetchall()

    assert written == len(stored) == len(expected)
    got = {(d, s, p): (v, val, u) for d, s, p, v, val, u in stored}
    assert got.keys() == expected.keys()
    # the rule's branches are all exercised: both own versions, fleet defaults, and a model
    # with nothing in force
    versions = {(d, p): set() for d, _, p in got}
    for (d, _, p), (v, _, _) in got.items():
        versions[(d, p)].add(v)
    assert {va, vb} < versions[(own, "pm25")]  # plus the fleet default before T0
    assert (f"cr-{tag}-pms", "pm25") in versions
    assert not any(d == f"cr-{tag}-z" for d, _ in versions)
    for key, c in expected.items():
        v, val, u = got[key]
        assert v == c.version_id, key
        # stored as real (float32)
        assert_allclose([val, u], [c.value, c.u], rtol=1e-6, atol=1e-5, err_msg=str(key))
