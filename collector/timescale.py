"""The TimescaleDB-only part of the schema, rendered from the flag registry and the columns.

``python -m luftnett.collector.timescale`` prints migration ``0004_timescale_rollups.sql``; a
unit test checks the file equals :func:`render`, so the masks and the column lists in it
cannot drift from :mod:`luftnett.contracts.units` and :mod:`luftnett.db.schema`.

With the extension (checked in ``pg_extension``, as 0002 created it) the migration adds:

- compression of ``readings`` chunks older than 30 days (segment by device, order by ts);
- retention: raw chunks older than 5 years are dropped (rollups and ``seq_ledger`` stay);
- continuous aggregates ``readings_hourly_ca`` and, on top of it, ``readings_daily_utc01_ca``
  and ``readings_daily_oslo_ca`` with the same columns as ``rollup_hourly`` / ``rollup_daily``,
  refreshed by policies.

A continuous aggregate reads one hypertable and cannot follow range joins, so it sees the
stored flags but not staff annotations (``ANNOTATED_INVALID`` is computed at query time).
The aggregates therefore equal the rollup tables wherever no invalidating annotation is active;
the rollup tables, kept on both backends, stay the reference for statistics.
"""

from __future__ import annotations

import sys

from luftnett.collector.rollups import DayConvention
from luftnett.contracts.units import INVALIDATING_FLAGS, QUERY_TIME_FLAGS
from luftnett.db.schema import VALUE_COLUMNS

__all__ = ["CA_NAMES", "STORED_INVALIDATING", "daily_ca_select", "hourly_ca_select", "render"]

#: the invalidating flags a continuous aggregate can see (those stored in readings.flags)
STORED_INVALIDATING = int(INVALIDATING_FLAGS & ~QUERY_TIME_FLAGS)

CA_NAMES = {
    "hourly": "readings_hourly_ca",
    DayConvention.COMPLIANCE: "readings_daily_utc01_ca",
    DayConvention.DISPLAY: "readings_daily_oslo_ca",
}

#: the time zone a day convention is bucketed in (POSIX sign: Etc/GMT-1 is UTC+01:00)
_TZ = {DayConvention.COMPLIANCE: "Etc/GMT-1", DayConvention.DISPLAY: "Europe/Oslo"}


def hourly_ca_select() -> str:
    """The SELECT of the hourly continuous aggregate (rollup_hourly's columns)."""
    valid = f"flags & {STORED_INVALIDATING} = 0"
    stats = []
    for q in VALUE_COLUMNS:
        stats += [
            f"count({q}) FILTER (WHERE {valid}) AS {q}_n",
            f"sum({q}::numeric) FILTER (WHERE {valid}) AS {q}_sum",
            f"min({q}) FILTER (WHERE {valid}) AS {q}_min",
            f"max({q}) FILTER (WHERE {valid}) AS {q}_max",
        ]
    cols = ",\n       ".join(
        [
            "device_id",
            "time_bucket(INTERVAL '1 hour', ts) AS hour_start",
            "min(window_s) AS window_s",
            "greatest(1, round(3600 / min(window_s)::numeric))::int AS n_expected",
            "count(*) AS n_stored",
            f"count(*) FILTER (WHERE {valid}) AS n_valid",
            *stats,
        ]
    )
    return f"SELECT {cols}\nFROM readings\nGROUP BY device_id, time_bucket(INTERVAL '1 hour', ts)"


def daily_ca_select(conv: DayConvention) -> str:
    """The SELECT of a daily continuous aggregate on the hourly one (rollup_daily's columns)."""
    tz = _TZ[conv]
    bucket = f"time_bucket(INTERVAL '1 day', hour_start, '{tz}')"
    length = (
        f"extract(epoch FROM ((({bucket} AT TIME ZONE '{tz}')::date + 1)::timestamp "
        f"AT TIME ZONE '{tz}') - {bucket})"
    )
    stats = []
    for q in VALUE_COLUMNS:
        stats += [
            f"sum({q}_n) AS {q}_n",
            f"sum({q}_sum) AS {q}_sum",
            f"min({q}_min) AS {q}_min",
            f"max({q}_max) AS {q}_max",
        ]
    cols = ",\n       ".join(
        [
            "device_id",
            f"'{conv.value}'::text AS day_convention",
            f"({bucket} AT TIME ZONE '{tz}')::date AS day",
            f"{bucket} AS day_start",
            f"round({length} / 3600)::smallint AS hours_in_day",
            "count(*) AS hours_with_data",
            "count(*) FILTER (WHERE n_valid * 4 >= n_expected * 3) AS hours_valid",
            "min(window_s) AS window_s",
            f"greatest(1, round({length} / min(window_s)::numeric))::int AS n_expected",
            "sum(n_stored) AS n_stored",
            "sum(n_valid) AS n_valid",
            *stats,
        ]
    )
    return f"SELECT {cols}\nFROM {CA_NAMES['hourly']}\nGROUP BY device_id, {bucket}"


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.splitlines())


def render() -> str:
    """The text of migration 0004_timescale_rollups.sql."""
    views = [
        (CA_NAMES["hourly"], hourly_ca_select(), "INTERVAL '3 days'", "INTERVAL '1 hour'", "15"),
        *(
            (CA_NAMES[c], daily_ca_select(c), "INTERVAL '7 days'", "INTERVAL '1 day'", "60")
            for c in DayConvention
        ),
    ]
    body = []
    for name, select, start, end, every in views:
        body.append(
            f"EXECUTE $ts$\nCREATE MATERIALIZED VIEW {name}\n"
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS\n"
            f"{select}\nWITH NO DATA\n$ts$;\n"
            f"PERFORM add_continuous_aggregate_policy('{name}', start_offset => {start},\n"
            f"    end_offset => {end}, schedule_interval => INTERVAL '{every} minutes');"
        )
    statements = "\n".join(
        [
            "EXECUTE $ts$ALTER TABLE readings SET (timescaledb.compress,\n"
            "    timescaledb.compress_segmentby = 'device_id',\n"
            "    timescaledb.compress_orderby = 'ts DESC, seq DESC')$ts$;",
            "PERFORM add_compression_policy('readings', INTERVAL '30 days',\n"
            "    if_not_exists => true);",
            "PERFORM add_retention_policy('readings', INTERVAL '5 years', if_not_exists => true);",
            *body,
            "RAISE NOTICE 'luftnett: compression, retention and continuous aggregates set up';",
        ]
    )
    head = [
        "-- 0004: TimescaleDB only: compression, retention, continuous aggregates",
        "-- (hourly, daily).",
        "-- Generated by `python -m luftnett.collector.timescale`; do not edit by hand.",
        "-- Without the extension this is a no-op: the rollup tables of 0003, kept by the",
        "-- collector and `luftnett rollup refresh`, give the same numbers on plain PostgreSQL.",
        f"-- Continuous aggregates see stored flags only (mask {STORED_INVALIDATING}), not "
        "annotations.",
        "DO $migration$",
        "BEGIN",
        "    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN",
        "        RAISE NOTICE 'luftnett: timescaledb not installed; rollups stay plain tables';",
        "        RETURN;",
        "    END IF;",
    ]
    return "\n".join([*head, _indent(statements, 4), "END", "$migration$;", ""])


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
