"""Host an emulator on a real pseudo-terminal, so pyserial reads it like a USB-serial adapter.

An emulator implements :class:`Emulator`: ``poll(now)`` returns the bytes the sensor sends by
itself up to time ``now`` (monotonic seconds) and ``receive(data, now)`` the bytes it answers to
what the host wrote. :class:`PtyHost` runs one in a thread and exposes ``path`` (``/dev/pts/N``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import termios
import threading
import time
import tty
from typing import Protocol

__all__ = ["Emulator", "PtyHost"]

log = logging.getLogger(__name__)


class Emulator(Protocol):
    def poll(self, now: float) -> bytes: ...

    def receive(self, data: bytes, now: float) -> bytes: ...


class PtyHost:
    """Run ``emulator`` on a pty until :meth:`stop`; write its output byte for byte."""

    def __init__(self, emulator: Emulator, tick_s: float = 0.02) -> None:
        self.emulator = emulator
        self.tick_s = tick_s
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pty-{self.path}", daemon=True)
        self.bytes_out = 0

    def start(self) -> PtyHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            view = view[n:]
            self.bytes_out += n

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._master], [], [], self.tick_s)
                now = time.monotonic()
                if ready:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._write(self.emulator.receive(data, now))
                out = self.emulator.poll(now)
                if out:
                    self._write(out)
        except OSError:
            if not self._stop.is_set():
                log.exception("pty host failed", extra={"path": self.path})
