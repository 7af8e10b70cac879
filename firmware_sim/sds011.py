"""An SDS011 emulator: active/query reporting, sleep/work, working period, device ID, firmware.

Byte for byte as SENSORS.md §1: one ``AA C0`` frame per second in active mode, replies
``AA C5`` to commands (interleaved with data frames), silence while asleep except for the
sleep/work command.
"""

from __future__ import annotations

from collections.abc import Callable

from luftnett.edge.drivers import sds011 as proto

__all__ = ["Sds011Emulator"]

#: (pm25, pm10) in µg/m³ at monotonic time t
Source = Callable[[float], tuple[float, float]]


class Sds011Emulator:
    interval_s = 1.0

    def __init__(
        self,
        source: Source,
        device_id: bytes = b"\xa1\x60",
        firmware: tuple[int, int, int] = (15, 7, 10),
        max_frames: int | None = None,
    ) -> None:
        self.source = source
        #: go quiet after this many data frames (a finite recording); None talks forever
        self.max_frames = max_frames
        self.device_id = device_id
        self.firmware = firmware
        self.active = True
        self.asleep = False
        self.period_min = 0
        self._next: float | None = None
        self._rx = bytearray()
        self.frames_sent = 0
        self._pending: list[bytes] = []

    def frame_at(self, now: float) -> bytes:
        pm25, pm10 = self.source(now)
        return proto.data_frame(pm25, pm10, self.device_id)

    def poll(self, now: float) -> bytes:
        out = b"".join(self._pending)
        self._pending.clear()
        if self._next is None:
            self._next = now + self.interval_s
        if self.asleep or not self.active:
            self._next = max(self._next, now)
            return out
        while now >= self._next and self._may_send():
            out += self.frame_at(self._next)
            self.frames_sent += 1
            self._next += self.interval_s * (1 if self.period_min == 0 else self.period_min * 60)
        return out

    def _may_send(self) -> bool:
        # checked per frame: a host thread that stalls catches up in one burst, and the burst
        # must stop at the limit too
        return self.max_frames is None or self.frames_sent < self.max_frames

    def receive(self, data: bytes, now: float) -> bytes:
        self._rx += data
        out = b""
        while True:
            start = self._rx.find(bytes([proto.HEAD, proto.HOST]))
            if start < 0:
                del self._rx[:-1]
                return out
            del self._rx[:start]
            if len(self._rx) < 19:
                return out
            cmd = bytes(self._rx[:19])
            del self._rx[:19]
            if cmd[18] != proto.TAIL or sum(cmd[2:17]) & 0xFF != cmd[17]:
                continue  # a real sensor ignores a bad command
            target = cmd[15:17]
            if target not in (b"\xff\xff", self.device_id):
                continue
            out += self._execute(cmd, now)

    def _execute(self, cmd: bytes, now: float) -> bytes:
        code, op, arg = cmd[2], cmd[3], cmd[4]
        if self.asleep and code != proto.CMD_SLEEP_WORK:
            return b""
        if code == proto.CMD_QUERY:
            if not self._may_send():
                return b""
            self.frames_sent += 1
            return self.frame_at(now)
        if code == proto.CMD_REPORTING_MODE:
            if op:
                self.active = arg == 0
            return proto.reply_frame(code, bytes([op, 0 if self.active else 1, 0]), self.device_id)
        if code == proto.CMD_SLEEP_WORK:
            if op:
                self.asleep = arg == 0
                self._next = now + self.interval_s
            return proto.reply_frame(code, bytes([op, 0 if self.asleep else 1, 0]), self.device_id)
        if code == proto.CMD_PERIOD:
            if op:
                self.period_min = min(arg, 30)
            return proto.reply_frame(code, bytes([op, self.period_min, 0]), self.device_id)
        if code == proto.CMD_FIRMWARE:
            return proto.reply_frame(code, bytes(self.firmware), self.device_id)
        if code == proto.CMD_SET_ID:
            self.device_id = cmd[13:15]
            return proto.reply_frame(code, b"\x00\x00\x00", self.device_id)
        return b""
