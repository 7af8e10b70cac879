"""calibration_spans (migrations 0050, 0056) on a real PostgreSQL: after any sequence of
activations (own and fleet defaults, ties on valid_from), deletions of activations, changes of a
device's sensor model and new sensors on a device, the spans say exactly what
``luftnett_active_version(device, pollutant, t, model)`` resolves at every time for a reading of
each of the device's sensor models (hypothesis); and ``calibrated_current`` returns the same
rows after migration 0050 as before it, on a database with several versions of values."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luftnett.db.migrate import apply_migrations, available_migrations

pytestmark = pytest.mark.e2e

T0 = datetime(2024, 1, 1, tzinfo=UTC)
POLLUTANTS = ("pm25", "no2")
DAYS = 4  # activation dates are T0 + 0..DAYS days, so ties are frequent


@pytest.fixture(scope="module")
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        apply_migrations(c)
        yield c


def _version(conn: psycopg.Connection[Any], pollutant: str, device: str | None,
             model: str | None) -> int:  # fmt: skip
    kind = "colocation" if device else "fleet-default"
    row = conn.execute(
        "INSERT INTO calibration_versions (device_id, sensor_model, pollutant, kind, model_id, "
        "model, created_by) VALUES (%s, %s, %s, %s, 'm', '{}', 'test') RETURNING version_id",
        (device, model, pollutant, kind),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _activate(conn: psycopg.Connection[Any], version: int, device: str | None,
              model: str | None, pollutant: str, day: int) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO calibration_activations (device_id, sensor_model, pollutant, version_id, "
        "valid_from, created_by) VALUES (%s, %s, %s, %s, %s, 'test')",
        (device, model, pollutant, version, T0 + timedelta(days=day)),
    )


def _times() -> list[datetime]:
    """Every activation date, a second before and after it, and far before and after."""
    times = [T0 - timedelta(days=400), T0 + timedelta(days=400)]
    for k in range(DAYS + 1):
        t = T0 + timedelta(days=k)
        times += [t - timedelta(seconds=1), t, t + timedelta(seconds=1)]
    return times


def _check_spans(conn: psycopg.Connection[Any], devices: list[str]) -> None:
    """For a reading of each of a device's sensor models (those it reported through, and
    devices.sensor_model) at every time of :func:`_times`: exactly one span covering t applies
    to it (the device's own, or its model's) and has the version luftnett_active_version gives
    (none where it gives none). Spans of one version never overlap, spans of one model and
    version are merged, a model's spans hold fleet defaults of that model only, and a device
    has spans only of its own models."""
    rows = conn.execute(
        """
        WITH m AS (SELECT device_id AS d, sensor_model AS model FROM devices
                   WHERE device_id = ANY(%(d)s)
                   UNION SELECT device_id, sensor_model FROM device_sensors
                   WHERE device_id = ANY(%(d)s))
        SELECT d, model, p, t, luftnett_active_version(d, p, t, model),
               (SELECT array_agg(s.version_id) FROM calibration_spans s
                WHERE s.device_id = d AND s.pollutant = p AND s.valid_from <= t
                  AND t < s.valid_to AND (s.sensor_model IS NULL OR s.sensor_model = model))
        FROM m, unnest(%(p)s::text[]) p, unnest(%(t)s::timestamptz[]) t
        """,
        {"d": devices, "p": list(POLLUTANTS), "t": _times()},
    ).fetchall()
    for d, model, p, t, want, got in rows:
        assert got == ([want] if want is not None else None), (d, model, p, t, want, got)
    bad = conn.execute(
        """
        SELECT
          (SELECT count(*) FROM calibration_spans a JOIN calibration_spans b
           ON a.device_id = b.device_id AND a.pollutant = b.pollutant
          AND a.version_id = b.version_id AND a.valid_from < b.valid_from
          AND b.valid_from <= a.valid_to   -- overlapping, or adjacent and not merged
           WHERE a.device_id = ANY(%(d)s)),
          (SELECT count(*) FROM calibration_spans s
           JOIN calibration_versions v ON v.version_id = s.version_id
           WHERE s.device_id = ANY(%(d)s)
             AND NOT (s.sensor_model IS NULL AND v.device_id = s.device_id
                      OR v.device_id IS NULL AND v.sensor_model = s.sensor_model)),
          (SELECT count(*) FROM calibration_spans s
           WHERE s.device_id = ANY(%(d)s) AND s.sensor_model IS NOT NULL
             AND s.sensor_model NOT IN (
                 SELECT sensor_model FROM devices WHERE device_id = s.device_id
                 UNION SELECT sensor_model FROM device_sensors WHERE device_id = s.device_id))
        """,
        {"d": devices},
    ).fetchone()
    assert bad == (0, 0, 0)


def _check_spans_0050(conn: psycopg.Connection[Any], devices: list[str]) -> None:
    """Migration 0050's rule (one sensor model per device, devices.sensor_model): the one span
    covering t has the version its luftnett_active_version gives."""
    rows = conn.execute(
        """
        SELECT d, p, t, luftnett_active_version(d, p, t),
               (SELECT array_agg(s.version_id) FROM calibration_spans s
                WHERE s.device_id = d AND s.pollutant = p AND s.valid_from <= t
                  AND t < s.valid_to)
        FROM unnest(%s::text[]) d, unnest(%s::text[]) p, unnest(%s::timestamptz[]) t
        """,
        (devices, list(POLLUTANTS), _times()),
    ).fetchall()
    for d, p, t, want, got in rows:
        assert got == ([want] if want is not None else None), (d, p, t, want, got)


op = st.one_of(
    st.tuples(st.just("own"), st.integers(0, 2), st.sampled_from(POLLUTANTS), st.integers(0, DAYS)),
    st.tuples(
        st.just("fleet"), st.integers(0, 2), st.sampled_from(POLLUTANTS), st.integers(0, DAYS)
    ),
    st.tuples(st.just("model"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("reactivate"), st.integers(0, 30), st.integers(0, DAYS)),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("new-device"), st.integers(0, 1)),
    st.tuples(st.just("sensor"), st.integers(0, 2), st.integers(0, 2)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, min_size=1, max_size=14))
def test_spans_equal_the_active_version(conn: psycopg.Connection[Any], ops: list[Any]) -> None:
    tag = uuid.uuid4().hex[:8]
    models = [f"m{i}-{tag}" for i in range(3)]  # m2: only ever a second sensor
    devices = [f"d{i}-{tag}" for i in range(3)]
    conn.execute(
        "INSERT INTO devices (device_id, sensor_model) SELECT d, m FROM unnest(%s::text[], "
        "%s::text[]) AS x(d, m)", (devices, [models[0], models[0], models[1]]),
    )  # fmt: skip
    activations: list[int] = []  # activation ids made here
    versions: list[int] = []
    for o in ops:
        if o[0] == "own":
            v = _version(conn, o[2], devices[o[1]], None)
            _activate(conn, v, devices[o[1]], None, o[2], o[3])
        elif o[0] == "fleet":
            v = _version(conn, o[2], None, models[o[1]])
            _activate(conn, v, None, models[o[1]], o[2], o[3])
        elif o[0] == "model":
            conn.execute("UPDATE devices SET sensor_model = %s WHERE device_id = %s",
                         (models[o[2]], devices[o[1]]))  # fmt: skip
        elif o[0] == "sensor":  # the device reports through a sensor (maybe a new model)
            conn.execute(
                "INSERT INTO device_sensors (device_id, sensor_model, first_ts, last_ts, "
                "window_s) VALUES (%s, %s, %s, %s, 60) ON CONFLICT DO NOTHING",
                (devices[o[1] % len(devices)], models[o[2]], T0, T0),
            )
        elif o[0] == "new-device":
            devices.append(f"d{len(devices)}-{tag}")
            conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)",
                         (devices[-1], models[o[1]]))  # fmt: skip
        elif activations and o[0] == "reactivate":  # an activation moved to another date
            moved, to = activations[o[1] % len(activations)], T0 + timedelta(days=o[2])
            conn.execute("UPDATE calibration_activations SET valid_from = %s "
                         "WHERE activation_id = %s", (to, moved))  # fmt: skip
        elif activations and o[0] == "delete":
            conn.execute("DELETE FROM calibration_activations WHERE activation_id = %s",
                         (activations.pop(o[1] % len(activations)),))  # fmt: skip
        activations = [int(r[0]) for r in conn.execute(
            "SELECT activation_id FROM calibration_activations WHERE device_id = ANY(%s) "
            "OR sensor_model = ANY(%s) ORDER BY 1", (devices, models)).fetchall()]  # fmt: skip
        versions = [int(r[0]) for r in conn.execute(
            "SELECT version_id FROM calibration_versions WHERE device_id = ANY(%s) "
            "OR sensor_model = ANY(%s)", (devices, models)).fetchall()]  # fmt: skip
        _check_spans(conn, devices)
    assert versions or not any(o[0] in ("own", "fleet") for o in ops)


def test_spans_follow_a_deleted_device(conn: psycopg.Connection[Any]) -> None:
    """A device deleted (it has no activations of its own) leaves no spans behind."""
    tag = uuid.uuid4().hex[:8]
    dev, model = f"gone-{tag}", f"m-{tag}"
    conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)", (dev, model))
    _activate(conn, _version(conn, "pm25", None, model), None, model, "pm25", 0)
    assert conn.execute("SELECT count(*) FROM calibration_spans WHERE device_id = %s",
                        (dev,)).fetchone() == (1,)  # fmt: skip
    conn.execute("DELETE FROM devices WHERE device_id = %s", (dev,))
    assert conn.execute("SELECT count(*) FROM calibration_spans WHERE device_id = %s",
                        (dev,)).fetchone() == (0,)  # fmt: skip


def test_device_upsert_refreshes_spans_only_when_the_model_changes(
    conn: psycopg.Connection[Any],
) -> None:
    """The collector upserts every device of every batch (setting sensor_model, mostly to the
    value it has): that leaves the device's spans untouched (same row versions, migration
    0051), while an upsert with another model moves them to that model's fleet default."""
    from luftnett.collector.writer import _UPSERT_DEVICES

    tag = uuid.uuid4().hex[:8]
    dev, m1, m2 = f"up-{tag}", f"m1-{tag}", f"m2-{tag}"
    conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)", (dev, m1))
    v1, v2 = _version(conn, "pm25", None, m1), _version(conn, "pm25", None, m2)
    _activate(conn, v1, None, m1, "pm25", 0)
    _activate(conn, v2, None, m2, "pm25", 0)
    spans = "SELECT xmin::text, version_id FROM calibration_spans WHERE device_id = %s"
    before = conn.execute(spans, (dev,)).fetchall()
    assert [v for _, v in before] == [v1]
    for _ in range(3):
        conn.execute(_UPSERT_DEVICES, ([dev], [m1], ["s1"], ["agent"]))
    assert conn.execute(spans, (dev,)).fetchall() == before
    conn.execute(_UPSERT_DEVICES, ([dev], [m2], ["s1"], ["agent"]))
    assert [v for _, v in conn.execute(spans, (dev,)).fetchall()] == [v2]
    _check_spans(conn, [dev])


def test_view_rows_before_and_after_the_migration(fresh_db_url: str) -> None:
    """A database at migration 0041 with values of several versions (own activations at
    different dates, a fleet default, a second default activated later, a device with no
    activation of its own, values of versions never in force): calibrated_current has the
    same rows after 0050 as before it, and the spans were filled from the activations."""
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        after = [m for m in available_migrations() if m.version >= 50]
        assert after and after[0].version == 50
        for m in available_migrations():
            if m.version < 50:
                c.execute(m.sql.encode())
        devices = ["a", "b", "c"]
        c.execute("INSERT INTO devices (device_id, sensor_model) VALUES "
                  "('a', 'pms'), ('b', 'pms'), ('c', 'sds')")  # fmt: skip
        fleet1 = _version(c, "pm25", None, "pms")
        fleet2 = _version(c, "pm25", None, "pms")
        own_a1 = _version(c, "pm25", "a", None)
        own_a2 = _version(c, "pm25", "a", None)
        own_b = _version(c, "no2", "b", None)
        never = _version(c, "pm25", "c", None)  # stored values, never activated
        _activate(c, fleet1, None, "pms", "pm25", -400)
        _activate(c, fleet2, None, "pms", "pm25", 2)
        _activate(c, own_a1, "a", None, "pm25", 1)
        _activate(c, own_a2, "a", None, "pm25", 3)
        _activate(c, own_a1, "a", None, "pm25", 3)  # a tie: the later activation wins
        _activate(c, own_b, "b", None, "no2", 1)
        # one value a minute over 5 days, every version of the device's pollutant
        vers = {"a": [("pm25", fleet1), ("pm25", fleet2), ("pm25", own_a1), ("pm25", own_a2)],
                "b": [("pm25", fleet1), ("pm25", fleet2), ("no2", own_b)],
                "c": [("pm25", never)]}  # fmt: skip
        for d in devices:
            for p, v in vers[d]:
                c.execute(
                    "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, "
                    "value, u) SELECT %s, i, %s, %s, %s + i * interval '1 minute', i + %s, 1 "
                    "FROM generate_series(0, 5 * 1440 - 1) i",
                    (d, p, v, T0 - timedelta(hours=12), v),
                )
        q = "SELECT * FROM calibrated_current ORDER BY device_id, seq, pollutant"
        before = c.execute(q).fetchall()
        c.execute(after[0].sql.encode())
        after_rows = c.execute(q).fetchall()
        # a and b pm25 all 5 days (the fleet default from day -400), b no2 from day 1 (3.5 days)
        assert len(before) == 2 * 5 * 1440 + 7 * 720
        assert after_rows == before
        _check_spans_0050(c, devices)
        for m in after[1:]:  # up to now: 0056 gives these one-model devices the same spans
            c.execute(m.sql.encode())
        assert c.execute(q).fetchall() == before
        _check_spans(c, devices)
        key = c.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'calibrated_values'::regclass AND indisprimary"
        ).fetchone()
        assert key is not None and "(device_id, seq, version_id)" in key[0]  # as 0031 made it
