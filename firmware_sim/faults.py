"""Fault injection for any emulator (SENSORS.md §6): wrap it, then switch faults on and off.

    emu = Faulty(PmsEmulator(source), "pms5003")
    emu.garbage(b"\\x42\\x4d\\x00")  # bytes on the wire before the next output
    emu.garbage(n=20)              # ... or 20 random bytes (seeded)
    emu.drop(5)                    # the next 5 bytes the sensor sends are lost
    emu.corrupt(2)                 # the next 2 frames carry a wrong checksum
    emu.stuck = True               # the sensor repeats the value it has now
    emu.dead = True                # silent both ways until its wake command arrives
    emu.unplugged = True           # silent both ways; the sensor itself runs on

:class:`Faulty` is itself an emulator (``poll``/``receive``), so it runs on a
:class:`~luftnett.firmware_sim.pty.PtyHost` like the sensor it wraps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any, Protocol

from luftnett.edge.drivers import pms, sds011, sht31, sps30

__all__ = ["CORRUPTORS", "WAKE_PATTERNS", "Faulty"]


class _Emulator(Protocol):
    source: Callable[[float], Any]

    def poll(self, now: float) -> bytes: ...

    def receive(self, data: bytes, now: float) -> bytes: ...


def _flip(out: bytes, i: int) -> bytes:
    return out[:i] + bytes([out[i] ^ 0x01]) + out[i + 1 :]


def _corrupt_sds011(out: bytes) -> bytes | None:
    for i in range(len(out) - 9):
        if out[i] == sds011.HEAD and out[i + 1] in (sds011.DATA, sds011.REPLY):
            return _flip(out, i + 8)
    return None


def _corrupt_pms(out: bytes) -> bytes | None:
    i = out.find(pms.HEAD)
    while 0 <= i <= len(out) - 4:
        end = i + 4 + int.from_bytes(out[i + 2 : i + 4], "big")
        if end <= len(out):
            return _flip(out, end - 1)
        i = out.find(pms.HEAD, i + 1)
    return None


def _corrupt_sps30(out: bytes) -> bytes | None:
    i = out.find(sps30.FLAG)
    j = out.find(sps30.FLAG, i + 1)
    if i < 0 or j < 0 or (frame := sps30.unstuff(out[i + 1 : j])) is None or not frame:
        return None
    bad = frame[:-1] + bytes([frame[-1] ^ 0x01])
    return out[: i + 1] + sps30.stuff(bad) + out[j:]


def _corrupt_dgs(out: bytes) -> bytes | None:
    """No checksum on a DGS line: spoil a digit of the serial (bad_field_value)."""
    i = out.find(b", ")
    if i < 1:
        return None
    return out[: i - 1] + b"?" + out[i:]


def _corrupt_sht31(out: bytes) -> bytes | None:
    i = out.find(sht31.HEAD)
    if i < 0 or len(out) < i + 14:
        return None
    crc = out[i + 11 : i + 13]  # the temperature word's CRC, 2 hex digits
    return out[: i + 11] + b"%02X" % (int(crc, 16) ^ 0x01) + out[i + 13 :]


#: per model: a function that spoils the first complete frame in a chunk (None: none in it)
CORRUPTORS: dict[str, Callable[[bytes], bytes | None]] = {
    "sds011": _corrupt_sds011,
    "pms5003": _corrupt_pms,
    "pms7003": _corrupt_pms,
    "sps30": _corrupt_sps30,
    "dgs-no2": _corrupt_dgs,
    "sht31": _corrupt_sht31,
}
#: per model: the command that revives a dead sensor; it is passed on to the sensor
WAKE_PATTERNS: dict[str, bytes] = {
    "sds011": sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x01")[:5],
    "pms5003": pms.WAKE[:5],
    "pms7003": pms.WAKE[:5],
    "sps30": sps30.WAKE,
    "dgs-no2": b"r",  # a watchdog reset
    "sht31": b"P1\r",
}


class Faulty:
    """An emulator with switchable faults; with none switched on it is transparent."""

    def __init__(self, inner: _Emulator, model: str, seed: int = 0) -> None:
        self.inner = inner
        self.model = model
        self.dead = False
        self.unplugged = False
        self._corruptor = CORRUPTORS[model]
        self._wake = WAKE_PATTERNS[model]
        self._rng = random.Random(seed)
        self._garbage = bytearray()
        self._drop = 0
        self._corrupt = 0
        self._dead_rx = b""
        self._source = inner.source
        self._lock = threading.Lock()  # switches are flipped from another thread than a PtyHost's

    # -- switches ---------------------------------------------------------------------------
    def garbage(self, data: bytes | None = None, n: int = 16) -> None:
        with self._lock:
            self._garbage += data if data is not None else self._rng.randbytes(n)

    def drop(self, n: int) -> None:
        with self._lock:
            self._drop += n

    def corrupt(self, frames: int = 1) -> None:
        with self._lock:
            self._corrupt += frames

    @property
    def stuck(self) -> bool:
        return self.inner.source is not self._source

    @stuck.setter
    def stuck(self, on: bool) -> None:
        if not on:
            self.inner.source = self._source
            return
        if self.stuck:
            return
        held: list[Any] = []

        def repeat(t: float) -> Any:
            if not held:
                held.append(self._source(t))
            return held[0]

        self.inner.source = repeat

    # -- the emulator interface -------------------------------------------------------------
    def poll(self, now: float) -> bytes:
        return self._wire(self.inner.poll(now))

    def receive(self, data: bytes, now: float) -> bytes:
        if self.unplugged:
            return b""
        if self.dead:
            buf = self._dead_rx + data
            at = buf.find(self._wake)
            if at < 0:
                self._dead_rx = buf[len(buf) - len(self._wake) + 1 :]
                return b""
            self.dead, self._dead_rx, data = False, b"", buf[at:]
        return self._wire(self.inner.receive(data, now))

    def _wire(self, out: bytes) -> bytes:
        """What reaches the host of what the sensor sends."""
        if self.unplugged or self.dead:
            return b""
        with self._lock:
            return self._spoil(out)

    def _spoil(self, out: bytes) -> bytes:
        if out and self._corrupt and (spoilt := self._corruptor(out)) is not None:
            out, self._corrupt = spoilt, self._corrupt - 1
        if out and self._drop:
            k = min(self._drop, len(out))
            out, self._drop = out[k:], self._drop - k
        if self._garbage:
            out, self._garbage = bytes(self._garbage) + out, bytearray()
        return out
