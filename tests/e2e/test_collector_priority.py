"""Writers first at the interpreter lock (luftnett.collector.priority), on a real PostgreSQL:
a writer thread counts as running Python except while its connection waits on the server, and
the validator's ``give_way`` waits exactly while some writer runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from luftnett.collector.priority import WriterConnection, WritersFirst

SLEEP_S = 0.6  # the server-side wait the tests look into


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def _connect(url: str, gate: WritersFirst) -> WriterConnection:
    conn = WriterConnection.connect(url, autocommit=True)
    conn.gate = gate
    return conn


def test_a_writer_runs_except_while_it_waits_on_the_server(pg_url: str) -> None:
    gate = WritersFirst()
    started, queried, release = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def writer() -> None:
        with _connect(pg_url, gate) as conn, gate.writing():
            started.set()
            conn.execute("SELECT pg_sleep(%s)", (SLEEP_S,))
            with conn.cursor() as cur, cur.copy("COPY (SELECT 1) TO STDOUT") as copy:
                seen["copied"] = [bytes(b) for b in copy]
            queried.set()
            release.wait(5)

    t, errors = _in_thread(writer)
    assert started.wait(5)
    time.sleep(0.1)  # the query has been sent: the writer waits on the server
    assert gate.running == 0
    t0 = time.monotonic()
    assert gate.give_way(timeout=2.0)
    assert time.monotonic() - t0 < 0.05  # no writer runs Python: no wait at all

    assert queried.wait(5)
    assert gate.running == 1  # back in Python after the query, and after the COPY
    t0 = time.monotonic()
    assert not gate.give_way(timeout=0.1)  # the validator waits for it, up to its timeout
    assert time.monotonic() - t0 >= 0.1

    t1, errors1 = _in_thread(lambda: seen.setdefault("gave_way", gate.give_way(timeout=5.0)))
    time.sleep(0.1)
    assert "gave_way" not in seen  # still waiting for the writer
    release.set()
    t1.join(5)
    t.join(5)
    assert seen["gave_way"] is True and gate.running == 0
    assert seen["copied"] == [b"1\n"]
    assert not errors and not errors1


def test_a_failed_statement_or_a_wait_outside_writing_leaves_the_count_right(
    pg_url: str,
) -> None:
    gate = WritersFirst()
    with _connect(pg_url, gate) as conn:
        # outside writing(): the waits are not counted, before, during or after
        started = threading.Event()

        def outside() -> None:
            started.set()
            conn.execute("SELECT pg_sleep(%s)", (SLEEP_S / 2,))

        t, errors = _in_thread(outside)
        assert started.wait(5)
        time.sleep(0.1)
        assert gate.running == 0
        t.join(5)
        assert not errors and gate.running == 0

        with gate.writing():
            assert gate.running == 1
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
            assert gate.running == 1  # the failed wait gave the count back
        assert gate.running == 0
