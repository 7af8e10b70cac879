"""A Sensirion SPS30 emulator on UART (SHDLC): states, polling, stuffing and sleep (SENSORS.md §3).

The sensor never talks by itself: each MOSI frame gets one MISO frame. Idle → Start →
Measurement (a new value every second; a poll before it is ready gets the empty reply, which is
not an error); commands in the wrong state get STATE 0x43; Sleep only from Idle, and then the
UART is **off**: the first byte that arrives (the ``FF`` pulse, or the first byte of a wake-up
frame) only re-enables it for 100 ms, so the host sends ``FF`` + wake-up or wake-up twice. Fan
cleaning runs 10 s, during which no new values appear. Replies are stuffed as the real sensor
does, so floats regularly carry 7D/7E/11/13 on the wire.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from luftnett.edge.drivers import sps30 as proto
from luftnett.edge.framing import Reply

__all__ = ["Sps30Emulator", "sps30_values"]

#: (pm25, pm10) in µg/m³ at monotonic time t
Source = Callable[[float], tuple[float, float]]

INTERFACE_WINDOW_S = 0.1
CLEANING_S = 10.0


def sps30_values(pm25: float, pm10: float) -> dict[str, float]:
    """Ten plausible, cumulative SPS30 quantities for this PM2.5 and PM10 (µg/m³)."""
    pm25 = max(0.0, pm25)
    pm10 = max(pm10, pm25)
    nc = [2.78, 3.91, 4.38, 4.48, 4.49]  # #/cm³ per µg/m³ PM2.5 (PyPMS capture, §3.2)
    return {
        "pm1_ugm3": 0.55 * pm25,
        "pm25_ugm3": pm25,
        "pm4_ugm3": pm25 + 0.6 * (pm10 - pm25),
        "pm10_ugm3": pm10,
        **{name: k * pm25 for name, k in zip(proto.VALUES[4:9], nc, strict=True)},
        "typical_size_um": 0.6 + 0.3 * (pm10 - pm25) / (pm10 + 1),
    }


class Sps30Emulator:
    interval_s = proto.INTERVAL_S

    def __init__(
        self,
        source: Source,
        serial: str = "E2A7A6D3DE0F8FB6",
        product_type: str = "00080000",
        firmware: tuple[int, int] = (2, 2),
        warmup_values: int = 1,
    ) -> None:
        self.source = source
        self.serial = serial
        self.product_type = product_type
        self.firmware = firmware
        self.warmup_values = warmup_values
        self.state = "idle"  # idle | measuring | sleeping
        self.fmt = proto.FORMAT_FLOAT
        self.auto_clean_s = 604_800
        self.status_register = 0
        self.frames_sent = 0
        self._framer = proto.Framer(host=True)
        self._uart_until = -math.inf  # while sleeping: the UART listens until then
        self._started = 0.0
        self._delivered = 0  # index of the last value read since Start
        self._reads = 0  # values delivered since Start
        self._clean_until = -math.inf

    def poll(self, now: float) -> bytes:
        return b""  # the SPS30 only answers

    def receive(self, data: bytes, now: float) -> bytes:
        if self.state == "sleeping" and now > self._uart_until and data:
            self._uart_until = now + INTERFACE_WINDOW_S  # this byte was the wake-up pulse
            self._framer = proto.Framer(host=True)
            data = data[1:]
        out = b""
        for item in self._framer.feed(data):
            if isinstance(item, Reply):
                frame = proto.unstuff(item.raw[1:-1]) or b"\x00\x00\x00\x00"
                out += self._execute(frame[1], frame[3:-1], now)
        return out

    def _values(self, now: float) -> dict[str, float]:
        self._reads += 1
        if self._reads <= self.warmup_values:
            return {}  # all zeros: the first values after Start
        return sps30_values(*self.source(now))

    def _execute(self, cmd: int, data: bytes, now: float) -> bytes:
        def reply(state: int = proto.STATE_OK, payload: bytes = b"") -> bytes:
            self.frames_sent += 1
            return proto.miso_frame(cmd, state, payload)

        def wrong_state() -> bytes:
            return reply(proto.STATE_WRONG_STATE)

        if self.state == "sleeping":
            if cmd != proto.CMD_WAKE:
                return wrong_state()
            self.state = "idle"
            return reply()
        if cmd == proto.CMD_START:
            if len(data) != 2:
                return reply(proto.STATE_BAD_LENGTH)
            if data[0] != 0x01 or data[1] not in (proto.FORMAT_FLOAT, proto.FORMAT_UINT16):
                return reply(proto.STATE_BAD_PARAM)
            if self.state != "idle":
                return wrong_state()
            self.state, self.fmt, self._started = "measuring", data[1], now
            self._delivered = self._reads = 0
            return reply()
        if cmd == proto.CMD_READ:
            if self.state != "measuring":
                return wrong_state()
            ready = int((now - self._started) / self.interval_s)
            if ready <= self._delivered or now < self._clean_until:
                return reply()  # polled early (or cleaning): the empty frame
            self._delivered = ready
            return reply(payload=proto.encode_values(self._values(now), self.fmt))
        if cmd in (proto.CMD_STOP, proto.CMD_CLEAN):
            if self.state != "measuring":
                return wrong_state()
            if cmd == proto.CMD_STOP:
                self.state = "idle"
            else:
                self._clean_until = now + CLEANING_S
            return reply()
        if cmd == proto.CMD_SLEEP:
            if self.state != "idle":
                return wrong_state()
            self.state, self._uart_until = "sleeping", now
            return reply()
        if cmd == proto.CMD_WAKE:
            return wrong_state()  # awake already
        return self._any_state(cmd, data, reply)

    def _any_state(self, cmd: int, data: bytes, reply: Callable[..., bytes]) -> bytes:
        if cmd == proto.CMD_AUTO_CLEAN:
            if data == b"\x00":
                return reply(payload=self.auto_clean_s.to_bytes(4, "big"))
            if len(data) == 5 and data[0] == 0:
                self.auto_clean_s = int.from_bytes(data[1:], "big")
                return reply()
            return reply(proto.STATE_BAD_LENGTH)
        if cmd == proto.CMD_INFO:
            text = {b"\x00": self.product_type, b"\x03": self.serial}.get(data)
            if text is None:
                return reply(proto.STATE_BAD_PARAM)
            return reply(payload=text.encode() + b"\x00")
        if cmd == proto.CMD_VERSION:
            return reply(payload=bytes([*self.firmware, 0, 7, 0, 2, 0]))
        if cmd == proto.CMD_STATUS:
            payload = self.status_register.to_bytes(4, "big") + b"\x00"
            if data == b"\x01":
                self.status_register = 0
            return reply(payload=payload)
        if cmd == proto.CMD_RESET:
            self.state = "idle"
            return reply()
        return reply(proto.STATE_UNKNOWN)
