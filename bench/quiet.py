"""One machine, several benchmarks: take the machine for the timed part of a run.

Benchmarks hold ``/tmp/luftnett-bench.lock`` exclusively while they time something; test runs
and other heavy jobs may hold it shared (``flock -s /tmp/luftnett-bench.lock pytest ...``), so
a timed section waits for them to finish and they wait for it. Nothing else changes: on a
machine of its own the lock is free and costs nothing.

    from quiet import exclusive

    with exclusive("api latency"):
        ...  # timed part
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from luftnett.servers import EmbeddedPostgres

LOCK_PATH = os.environ.get("LUFTNETT_BENCH_LOCK", "/tmp/luftnett-bench.lock")


@contextmanager
def exclusive(what: str) -> Iterator[float]:
    """Hold the bench lock exclusively; yields the seconds spent waiting for it."""
    t0 = time.monotonic()
    with open(LOCK_PATH, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[quiet] {what}: waiting for other jobs on {LOCK_PATH} ...", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        waited = time.monotonic() - t0
        try:
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_section(name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in
    docs/benchmarks.md (appended with its markers when they are not there yet)."""
    from pathlib import Path

    doc_path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    doc = doc_path.read_text(encoding="utf-8") if doc_path.exists() else "# Benchmarks\n"
    body = start + "\n" + text.rstrip("\n") + "\n" + end
    if start in doc and end in doc:
        head, rest = doc.split(start, 1)
        doc = head + body + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + body + "\n"
    doc_path.write_text(doc, encoding="utf-8")


def bench_database(pg_dir: Path | None, prefix: str) -> tuple[str, EmbeddedPostgres | None, bool]:
    """The benchmark's database: ``$LUFTNETT_BENCH_DATABASE_URL``, else a private PostgreSQL in
    ``pg_dir`` (started or reused, left running for the next run) or in a new temporary dir.
    Returns ``(url, server or None, stop it at the end)``."""
    import tempfile
    from pathlib import Path

    from luftnett.servers import EmbeddedPostgres

    url = os.environ.get("LUFTNETT_BENCH_DATABASE_URL")
    if url is not None:
        return url, None, False
    base = pg_dir if pg_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    pg = EmbeddedPostgres(base, fast=True)
    return pg.start(), pg, pg_dir is None
