"""What the API does at start-up: prewarming the rollups, memory settings."""

from __future__ import annotations

import asyncio
import os
import sys

import psycopg
from psycopg_pool import AsyncConnectionPool

from luftnett.api import startup


def test_prewarm_asks_the_rollups_into_the_page_cache(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        (ext,) = conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_prewarm'"
        ).fetchone() or (0,)
        (blocks,) = conn.execute(
            "SELECT sum(pg_relation_size(to_regclass(r)) / current_setting('block_size')::int)"
            " FROM unnest(%s::text[]) AS r",
            (list(startup.PREWARM),),
        ).fetchone() or (0,)
    assert ext == 1  # migration 0041: Debian's PostgreSQL ships contrib

    async def run() -> int:
        async with AsyncConnectionPool(pg_url, min_size=1, max_size=1) as pool:
            return await startup.prewarm(pool)

    assert asyncio.run(run()) == blocks  # every block of the tables and their indexes


def test_prewarm_without_the_extension_does_nothing(fresh_db_url: str) -> None:
    """A database without pg_prewarm (fresh_db_url has no migrations): 0, no error."""

    async def run() -> int:
        async with AsyncConnectionPool(fresh_db_url, min_size=1, max_size=1) as pool:
            return await startup.prewarm(pool)

    assert asyncio.run(run()) == 0


def test_tune_memory_selects_the_system_allocator_for_arrow() -> None:
    saved = os.environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    try:
        startup.tune_memory()
        if "pyarrow" in sys.modules:
            import pyarrow as pa  # type: ignore[import-untyped]

            assert pa.default_memory_pool().backend_name == "system"
        else:
            assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"
    finally:
        os.environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
        if saved is not None:
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = saved
