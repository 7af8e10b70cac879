"""A Plantower PMS5003/PMS7003 emulator: active/passive mode, sleep/wake, acks and their quirks.

Byte for byte as SENSORS.md §2: 32-byte data frames every 2.3 s ("stable") or 0.2–0.8 s when
the concentration moves ("fast"); 8-byte acks to mode and sleep commands but **no ack to wake**;
in active mode a data frame slips in before the ack of a mode command; the first frame after
power-up or wake-up is all zeros (warming up); silence while asleep except for wake.
"""

from __future__ import annotations

from collections.abc import Callable

from luftnett.edge.drivers import pms as proto

__all__ = ["PmsEmulator", "pm_words"]

#: (pm25, pm10) in µg/m³ (atmospheric) at monotonic time t
Source = Callable[[float], tuple[float, float]]

STABLE_S = 2.3
FAST_CHANGE_UGM3 = 5.0  # a PM2.5 step this large switches to fast mode
WAKE_DELAY_S = 2.6  # from reset/wake to the first frame (pimoroni's simulator)


def _cf1(atm: float) -> float:
    """CF=1 equals atmospheric at low concentration and runs higher above ~30 µg/m³."""
    return atm if atm <= 30 else 30 + (atm - 30) * 1.8


def pm_words(pm25: float, pm10: float) -> list[int]:
    """The 12 data words a PMS sends for these atmospheric values (counts roughly scaled)."""
    pm25, pm10 = max(0.0, pm25), max(0.0, pm10)
    pm10 = max(pm10, pm25)
    pm1 = 0.7 * pm25
    atm = [pm1, pm25, pm10]
    n03 = 60 * pm1 + 20 * pm25 + 5 * pm10 + (1 if pm10 > 0 else 0)
    counts = [n03, n03 * 0.3, n03 * 0.04, n03 * 0.02, 0.8 * (pm10 - pm25) + 0.01 * n03, 0.01 * n03]
    return [round(v) for v in [*(_cf1(a) for a in atm), *atm, *counts]]


class PmsEmulator:
    interval_s = STABLE_S

    def __init__(
        self,
        source: Source,
        model: str = "pms5003",
        version: int = 0x97,
        slip_before_ack: bool = True,
        warmup_frames: int = 1,
        start_delay_s: float = WAKE_DELAY_S,
    ) -> None:
        self.source = source
        self.model = model
        self.version = version
        self.slip_before_ack = slip_before_ack
        self.warmup_frames = warmup_frames
        self.start_delay_s = start_delay_s  # power-up or wake-up to the first frame
        self.active = True
        self.asleep = False
        self.frames_sent = 0
        self._zeros_left = warmup_frames
        self._last_pm25: float | None = None
        self._next: float | None = None
        self._rx = bytearray()

    def frame_at(self, now: float) -> bytes:
        self.frames_sent += 1
        pm25, pm10 = self.source(now)
        if self._zeros_left:
            self._zeros_left -= 1
            return proto.data_frame([0] * 12, self.version)
        self._last_pm25 = pm25
        return proto.data_frame(pm_words(pm25, pm10), self.version)

    def _interval(self, now: float) -> float:
        pm25, _ = self.source(now)
        if self._last_pm25 is None or abs(pm25 - self._last_pm25) < FAST_CHANGE_UGM3:
            return STABLE_S
        return max(0.2, 0.8 - pm25 / 1000)  # fast mode: shorter as concentration rises

    def poll(self, now: float) -> bytes:
        if self._next is None:
            self._next = now + self.start_delay_s
        if self.asleep or not self.active:
            self._next = max(self._next, now)
            return b""
        out = b""
        while now >= self._next:
            out += self.frame_at(self._next)
            self._next += self._interval(self._next)
        return out

    def receive(self, data: bytes, now: float) -> bytes:
        self._rx += data
        out = b""
        while True:
            start = self._rx.find(proto.HEAD)
            if start < 0:
                del self._rx[:-1]
                return out
            del self._rx[:start]
            if len(self._rx) < 7:
                return out
            cmd = bytes(self._rx[:7])
            if sum(cmd[:5]) & 0xFFFF != int.from_bytes(cmd[5:7], "big"):
                del self._rx[:1]  # a real sensor ignores a bad command
                continue
            del self._rx[:7]
            out += self._execute(cmd[2], cmd[4], now)

    def _execute(self, code: int, datal: int, now: float) -> bytes:
        if self.asleep and not (code == proto.CMD_SLEEP and datal == 1):
            return b""
        if code == proto.CMD_MODE:
            out = b""
            if self.slip_before_ack and self.active:
                out += self.frame_at(now)  # the quirk: a data frame before the ack
                self._next = now + self._interval(now)
            self.active = bool(datal)
            return out + proto.ack_frame(code, datal)
        if code == proto.CMD_READ:
            return self.frame_at(now)
        if code == proto.CMD_SLEEP and datal == 0:
            self.asleep = True
            return proto.ack_frame(code, datal)
        if code == proto.CMD_SLEEP and self.asleep:
            self.asleep = False  # wake: no ack; frames resume after the fan spins up
            self._zeros_left = self.warmup_frames
            self._next = now + self.start_delay_s
        return b""
