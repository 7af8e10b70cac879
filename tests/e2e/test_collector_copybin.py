"""The numpy-laid binary COPY records of readings store exactly what psycopg's write_row stores,
for every shape a row can take: NULL values in any column, no serial, empty and non-ASCII
serials, ``extra`` (jsonb spliced into the records), device ids of several lengths, times before
1970."""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest

from luftnett.collector.columns import BatchColumns, ReadingColumns
from luftnett.collector.copybin import reading_records
from luftnett.collector.writer import _COPY_COLUMNS, _TYPES, _JsonbText
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

pytestmark = pytest.mark.e2e

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_I = {c: READING_COLUMNS.index(c) for c in READING_COLUMNS}


def _rows(prefix: str, non_ascii: bool = False) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(5)
    t0 = dt.datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=dt.UTC)
    serials = [None, "abc", "ØÆÅ-77", "", "s" * 64]
    rows = []
    for i in range(200):
        vals: list[float | None] = [float(v) for v in rng.normal(20, 10, len(VALUE_COLUMNS))]
        for j in range(len(vals)):
            if rng.random() < 0.3:
                vals[j] = None
        extra = (
            json.dumps({"co2_ppm": 400 + i, "note": "Ø" * (i % 3)}, ensure_ascii=not non_ascii)
            if i % 7 == 0
            else None
        )
        ts = (
            t0 + dt.timedelta(seconds=61 * i) if i % 11 else dt.datetime(1969, 7, 20, tzinfo=dt.UTC)
        )
        rows.append((
            f"{prefix}{'x' * (i % 3)}", i, ts, 60.0 + i % 5 / 3, 60 + i,
            "sds011" if i % 2 else "pms5003",
            serials[i % len(serials)], *vals, extra, i % 4, 1,
        ))  # fmt: skip
    return rows


def _as_real(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` with its values as ``real`` stores them (the batch holds them so)."""
    return tuple(
        float(np.float32(x)) if c in VALUE_COLUMNS and x is not None else x
        for c, x in zip(READING_COLUMNS, row, strict=True)
    )


def _batch(rows: list[tuple[Any, ...]]) -> BatchColumns:
    """The rows as the writer's batch: one message each, in row order."""
    b = BatchColumns.join([((r[0], "x", None, "t"), ReadingColumns.from_rows([r])) for r in rows])
    assert [b.row(i, r[_I["flags"]]) for i, r in enumerate(rows)] == [_as_real(r) for r in rows]
    return b


@pytest.mark.parametrize("non_ascii", [False, True])
def test_numpy_records_store_what_write_row_stores(pg_url: str, non_ascii: bool) -> None:
    prefix = f"cb-{uuid.uuid4().hex[:8]}-"
    rows = _rows(prefix, non_ascii)
    flags = np.array([r[_I["flags"]] * 3 for r in rows], dtype=np.int64)
    checks = np.arange(len(rows), dtype=np.int64) * 5
    recs, left = reading_records(_batch(rows), flags, checks, 2)
    assert any(r[_I["extra"]] for r in rows) and any(not r[_I["extra"]] for r in rows)
    assert left.size == 0  # numpy laid out every row, those with extra too

    cols = ", ".join(_COPY_COLUMNS)
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TEMP TABLE twin (LIKE readings INCLUDING DEFAULTS)")
        with conn.cursor() as cur:
            cur.adapters.register_dumper(None, _JsonbText)
            with cur.copy(f"COPY twin ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_TYPES)
                for i, r in enumerate(rows):
                    copy.write_row((*r[: _I["flags"]], r[_I["schema_version"]], int(flags[i]),
                                    int(checks[i]), 2))  # fmt: skip
            with cur.copy(f"COPY readings ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_TYPES)
                copy.write(_HEADER + recs)
                copy.write(_TRAILER)
        # the numpy records hold every row but those left over, column for column
        got = conn.execute(
            f"SELECT {cols} FROM readings WHERE device_id LIKE %s ORDER BY seq", (prefix + "%",)
        ).fetchall()
        want = conn.execute(
            f"SELECT {cols} FROM twin WHERE NOT seq = ANY(%s) ORDER BY seq", (left.tolist(),)
        ).fetchall()
        assert len(got) == len(rows)
        assert got == want
        conn.rollback()


def test_a_nul_in_a_text_field_is_left_to_write_row() -> None:
    """numpy's S type drops NULs, so such a row goes row by row (and PostgreSQL refuses it)."""
    rows = _rows("cb-nul-")[:4]
    rows[1] = (*rows[1][:6], "a\x00b", *rows[1][7:])
    z = np.zeros(len(rows), dtype=np.int64)
    _recs, left = reading_records(_batch(rows), z, z, 1)
    assert left.tolist() == [1]  # row 1 has the NUL (row 0 has extra: laid out by numpy)
    assert _rows("cb-nul-")[0][_I["extra"]]
