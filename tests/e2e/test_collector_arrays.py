"""The writer's array literals read back in PostgreSQL as the lists they stand for."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from luftnett.collector.arrays import int_array, text_array, time_array

pytestmark = pytest.mark.e2e

TEXTS = [
    ["dev-001", "dev-002"],
    ["", "NULL", None, "a,b", "{x}", 'say "hi"', "back\\slash", " lead", "Ø-7", 'a","b'],
    [None],
    [],
]


def test_array_literals_round_trip(pg_url: str) -> None:
    times = [
        dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 7, 20, 20, 17, 40, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 29, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ]
    with psycopg.connect(pg_url) as conn:
        for texts in TEXTS:
            (got,) = conn.execute("SELECT %s::text[]", (text_array(texts),)).fetchone() or (None,)
            assert got == texts
        (got,) = conn.execute("SELECT %s::timestamptz[]", (time_array(times),)).fetchone() or (
            None,
        )
        assert got == times
        ints = [0, -1, 2**63 - 1, 42]
        (got,) = conn.execute("SELECT %s::int8[]", (int_array(ints),)).fetchone() or (None,)
        assert got == ints
