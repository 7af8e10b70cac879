"""An emulator of our SHT31 forwarder (docs/sensors.md): one line per second, a few commands.

The MCU reads the SHT31 over I²C and forwards the raw words with their CRCs. ``Q`` asks for a
reading now, ``P0``/``P1`` stop/start periodic output, ``H0``/``H1`` switch the sensor's heater
(it warms the sensor by a few degrees, as the real one does). With ``sensor_ok`` false the MCU
reports ``SHT31,ERR,NACK`` instead of readings.
"""

from __future__ import annotations

from collections.abc import Callable

from luftnett.edge.drivers import sht31 as proto

__all__ = ["Sht31Emulator"]

#: (temperature_c, rh_pct) at monotonic time t
Source = Callable[[float], tuple[float, float]]

HEATER_WARMING_C = 3.0


class Sht31Emulator:
    interval_s = proto.INTERVAL_S

    def __init__(self, source: Source) -> None:
        self.source = source
        self.periodic = True
        self.heater = False
        self.sensor_ok = True
        self.frames_sent = 0
        self._next: float | None = None
        self._rx = bytearray()

    def line_at(self, now: float) -> bytes:
        self.frames_sent += 1
        if not self.sensor_ok:
            return proto.error_line("NACK")
        t, rh = self.source(now)
        if self.heater:
            t += HEATER_WARMING_C
        return proto.measurement_line(t, rh)

    def poll(self, now: float) -> bytes:
        if self._next is None:
            self._next = now + self.interval_s
        if not self.periodic:
            self._next = max(self._next, now)
            return b""
        out = b""
        while now >= self._next:
            out += self.line_at(self._next)
            self._next += self.interval_s
        return out

    def receive(self, data: bytes, now: float) -> bytes:
        self._rx += data
        out = b""
        while (end := self._rx.find(b"\r")) >= 0:
            name = bytes(self._rx[:end]).strip(b"\n ").decode("ascii", "replace")
            del self._rx[: end + 1]
            if name == "Q":
                out += self.line_at(now)
            elif name in proto.COMMANDS:
                flag = name[1] == "1"
                if name[0] == "P":
                    self.periodic = flag
                else:
                    self.heater = flag
                out += proto.ok_line(name)
            elif name:
                out += proto.error_line("CMD")
        if len(self._rx) > 64:
            del self._rx[:-1]
        return out
