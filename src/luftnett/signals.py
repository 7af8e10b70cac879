"""SIGTERM as Ctrl-C: systemd and docker stop a service with SIGTERM; turned into
KeyboardInterrupt, it runs the same clean-up as Ctrl-C. No dependencies (the lean edge process
imports it)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["sigterm_as_interrupt"]


def _raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt in the main thread; the previous
    handler comes back after it."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
