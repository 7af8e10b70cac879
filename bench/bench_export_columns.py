"""What a download's columns cost: one device-year through the API's own streaming code.

Loads one device with a year of one-minute readings (525,600) into a private PostgreSQL and
streams its download with :func:`luftnett.api.export.stream_csv` (libpq COPY, chunking: the
API's path without HTTP), alternating, ``--rounds`` rounds each:

- the wide shape as it is, and without its ``ts_local`` column (the local-time text costs
  PostgreSQL a timestamp conversion and output per row);
- the openair shape (one row per site and time: a ``GROUP BY ts``) on the same data.

Prints rows per second, each round and the median. docs/benchmarks.md ("API", session 18)
quotes a run.

    python bench/bench_export_columns.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from luftnett.api import export
from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedPostgres

START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


def load(url: str) -> None:
    with psycopg.connect(url) as c:
        apply_migrations(c)
        c.execute("INSERT INTO devices (device_id, sensor_model) VALUES ('y1', 'sds011')")
        c.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, flags, schema_version) SELECT 'y1', i, "
            "%s::timestamptz + i * interval '1 minute', 60, 60, 'sds011', (i %% 97) / 3.0, "
            "(i %% 89) / 2.0, 0, 1 FROM generate_series(0, 525599) i",
            (START,),
        )
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("VACUUM ANALYZE readings")


async def measure(url: str, rounds: int) -> dict[str, list[float]]:
    async def configure(conn: Any) -> None:  # as the API's pool sessions
        await conn.execute("SET TimeZone = 'UTC'")
        await conn.execute("SET DateStyle = 'ISO, YMD'")
        await conn.commit()

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=3, max_size=6, open=False, kwargs={"row_factory": dict_row},
        configure=configure,
    )  # fmt: skip
    await pool.open()
    wide = export.columns("wide", False, 1.9125)
    variants = {
        "wide": ("wide", wide),
        "wide without ts_local": ("wide", [c for c in wide if c.name != "ts_local"]),
        "openair": ("openair", export.columns("openair", False, 1.9125)),
    }
    async with pool.connection() as c:
        segs = await export.segments(c, ["y1"], START, END, False)
    out: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for rnd in range(rounds):
            order = list(variants.items())
            for name, (shape, cols) in order if rnd % 2 == 0 else order[::-1]:
                q = export.Queries(export.select(shape, cols, False, False, False))  # type: ignore[arg-type]
                t0, n = time.time(), 0
                async for chunk in export.stream_csv(pool, q, segs):
                    n += chunk.count(b"\n")
                out[name].append((n - 1) / (time.time() - t0))
    finally:
        await pool.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="luftnett-export-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    pg = EmbeddedPostgres(base, fast=True)
    pg.start()
    try:
        load(pg.url)
        res = asyncio.run(measure(pg.url, args.rounds))
    finally:
        pg.stop()
    for name, rates in res.items():
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{name}: median {statistics.median(rates):,.0f} rows/s ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
