"""What the API process does once at start-up: memory settings and warming the rollups.

- :func:`tune_memory`: large buffers go back to the operating system when freed. glibc's malloc
  serves blocks >= 128 KiB with mmap, but raises that threshold dynamically to the largest
  block freed so far, after which a download's 256 KiB chunks come from the heap and its high
  water mark stays in the process; the threshold is fixed at 128 KiB here. Arrow (Parquet
  downloads) uses the system allocator instead of its own pool, which keeps freed pages for
  reuse. Measured in docs/benchmarks.md (server peak RSS after a Parquet download).
- :func:`prewarm`: asks PostgreSQL to read the rollup tables the series endpoints use into the
  operating system's page cache (``pg_prewarm(..., 'prefetch')``, asynchronous), so that the
  first requests after a restart do not each wait for the disk. Only with the ``pg_prewarm``
  extension (migration 0041 creates it where the server has it and the user may); otherwise
  nothing happens. It warms the cache, it does not change any result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import Any

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["PREWARM", "prewarm", "tune_memory"]

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD = 128 * 1024

#: relations read by the series endpoints (tables and the indexes their queries walk)
PREWARM = (
    "rollup_daily_means",
    "rollup_daily_means_pkey",
    "rollup_hourly",
    "rollup_hourly_pkey",
)


def tune_memory() -> None:
    """Fix glibc's mmap threshold; make Arrow use the system allocator (unless the user chose
    one with ARROW_DEFAULT_MEMORY_POOL)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is not None and not mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD):
            log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    except OSError:  # not glibc: nothing to tune
        pass
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    if "pyarrow" in sys.modules:  # imported already: switch its default pool
        import pyarrow as pa  # type: ignore[import-untyped]

        pa.set_memory_pool(pa.system_memory_pool())
    else:  # read by pyarrow when it is first imported (by a Parquet download)
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"


_HAS_PREWARM = "SELECT to_regproc('pg_prewarm') IS NOT NULL AS ok"
_PREWARM = """
SELECT coalesce(sum(pg_prewarm(c.oid, 'prefetch')), 0) AS blocks
FROM unnest(%s::text[]) AS r(name) JOIN pg_class c ON c.oid = to_regclass(r.name)
"""


async def prewarm(pool: AsyncConnectionPool[Any]) -> int:
    """Prefetch :data:`PREWARM` into the page cache; return the blocks asked for (0 when the
    extension is missing or the call fails: warming is never worth failing a start-up)."""
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(_HAS_PREWARM)
            row = await cur.fetchone()
            if row is None or not row[0]:
                return 0
            await cur.execute(_PREWARM, (list(PREWARM),))
            row = await cur.fetchone()
            blocks = int(row[0]) if row else 0
    except Exception as exc:  # noqa: BLE001 - logged; the API works without it
        log.warning("prewarming the rollups failed: %s", exc)
        return 0
    log.info("prewarm: %d blocks of the rollups asked into the page cache", blocks)
    return blocks
