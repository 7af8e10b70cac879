"""Writers first at the interpreter lock.

One collector process runs paho's loop, the validator and the writers as threads under one
interpreter lock (GIL). In a burst the validator always has work: it decodes as fast as
messages arrive and, left alone, holds the GIL most of the time while the writers need it only
in short stretches between their waits on the database. Each time a writer's query returns it
waits for the validator to give the GIL up (the switch interval), so the writers' transactions
stretch, the database idles, and the validated messages pile up (docs/benchmarks.md, session 12:
a 200,000-reading burst stored ~100,000 readings/s while the validator ran ahead, ~260,000
after).

:class:`WritersFirst` counts the writer threads that run Python (inside :meth:`~WritersFirst.
writing`, except while they wait on the database: :class:`WriterConnection` tells it), and the
validator gives way while any does (:meth:`~WritersFirst.give_way`): the database gets each
writer's next statement as soon as it can, and the validator decodes while the writers wait.
A wait is bounded (``timeout``), and the validator gives way only while every writer has its
next work waiting: a writer that runs long (settling calibration debts, say) never starves
another of messages to write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

__all__ = ["WriterConnection", "WritersFirst"]


class WritersFirst:
    """How many writer threads run Python now; the validator waits for none to."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._running = 0
        self._local = threading.local()

    @property
    def running(self) -> int:
        """Writer threads running Python now (not waiting on the database)."""
        return self._running

    def _enter(self) -> None:
        with self._cond:
            self._running += 1

    def _leave(self) -> None:
        with self._cond:
            self._running -= 1
            if not self._running:
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The calling thread writes (runs Python) in this block, except where it waits on a
        :class:`WriterConnection` with this gate."""
        self._enter()
        self._local.inside = True
        try:
            yield
        finally:
            self._local.inside = False
            self._leave()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """The calling thread waits (on the database) in this block; a thread outside
        :meth:`writing` was not counted and is not now."""
        if not getattr(self._local, "inside", False):
            yield
            return
        self._leave()
        try:
            yield
        finally:
            self._enter()

    def give_way(self, timeout: float) -> bool:
        """Wait until no writer runs Python, at most ``timeout`` seconds; False on timeout."""
        if not self._running:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)


class WriterConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits on the server (every query, pipeline sync, COPY
    block and commit goes through :meth:`wait`) count as waiting for ``gate``."""

    gate: WritersFirst | None = None

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        gate = self.gate
        if gate is None:
            return super().wait(gen, *args, **kwargs)
        with gate.waiting():
            return super().wait(gen, *args, **kwargs)
