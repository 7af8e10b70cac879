"""A SPEC DGS-NO2 968-043 emulator: ASCII commands, measurement lines, prompts (SENSORS.md §4).

``\\r`` → one line; ``c`` toggles continuous output (1 line/s); ``e`` → EEPROM dump; ``f`` →
firmware date; ``Z`` → ``Setting zero...done``; ``S``/``A``/``T`` print a prompt without a line
end and take a value ended by CR (echoed, then ``done``); older firmware (``14FEB17``) asks for
the unlock code ``12345`` first. ``s`` sleeps until the next byte; ``r`` resets (deaf ~1 s,
uptime restarts). Concentrations near zero come out negative, as on real units.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from luftnett.edge.drivers import no2_uart as proto

__all__ = ["DgsEmulator"]

#: (no2_ppb, temperature_c, rh_pct) at monotonic time t
Source = Callable[[float], tuple[float, float, float]]

UNLOCK_CODE = b"12345"
RESET_S = 1.0
_PROMPTS = {
    b"S": b"\r\nEnter span gas value in PPM: ",
    b"A": b"\r\nEnter Average Total: ",
    b"T": b"\r\nEnter Temperature_Offset: ",
}
_LOCKED = (b"Z", b"S", b"T")  # commands that ask for the unlock code on old firmware


class DgsEmulator:
    interval_s = 1.0

    def __init__(
        self,
        source: Source,
        serial: str = "110816020533",
        firmware: str = "15SEP17",
        sensitivity: int = 4010,  # nA per ppm ×100, as the EEPROM stores it
        powered_for_s: float = 0.0,  # uptime at the first byte: a module long in the field
    ) -> None:
        self.source = source
        self.serial = serial
        self.firmware = firmware
        self.sensitivity = sensitivity
        self.continuous = False
        self.asleep = False
        self.average_total = 1
        self.frames_sent = 0
        self._t0: float | None = None  # power-on time (uptime zero)
        self.powered_for_s = powered_for_s
        self._next: float | None = None
        self._deaf_until = -math.inf
        self._prompt: bytes | None = None  # command waiting for a typed value
        self._after_unlock: bytes | None = None
        self._typed = bytearray()

    def line_at(self, now: float) -> bytes:
        if self._t0 is None:
            self._t0 = now - self.powered_for_s
        ppb, t, rh = self.source(now)
        adc_t = max(0, min(0xFFFF, round((t + 46.85) / 175.72 * 65536)))
        adc_rh = max(0, min(0xFFFF, round((rh + 6) / 125 * 65536)))
        adc_gas = max(0, min(0xFFFF, round(28_000 + ppb * 2)))
        uptime = int(now - self._t0)
        self.frames_sent += 1
        return proto.measurement_line(
            self.serial, round(ppb), round(t), round(rh), (adc_gas, adc_t, adc_rh), uptime
        )

    def poll(self, now: float) -> bytes:
        if self._t0 is None:
            self._t0 = now - self.powered_for_s
        if not self.continuous or self.asleep or now < self._deaf_until:
            self._next = None
            return b""
        if self._next is None:
            self._next = now + self.interval_s
        out = b""
        while now >= self._next:
            out += self.line_at(self._next)
            self._next += self.interval_s
        return out

    def receive(self, data: bytes, now: float) -> bytes:
        out = b""
        for c in (data[i : i + 1] for i in range(len(data))):
            if now < self._deaf_until:
                continue
            if self.asleep:
                self.asleep = False  # any byte wakes it and is otherwise lost
                continue
            out += self._typed_char(c) if self._prompt else self._command(c, now)
        return out

    def _typed_char(self, c: bytes) -> bytes:
        if c != b"\r":
            if c.isdigit() or c in b".-":
                self._typed += c
            return b""
        value, self._typed = bytes(self._typed), bytearray()
        prompt, self._prompt = self._prompt, None
        if prompt == b"unlock":
            if value != UNLOCK_CODE or self._after_unlock is None:
                return b"\r\n"
            cmd, self._after_unlock = self._after_unlock, None
            return b"\r\n" + self._start(cmd)
        if prompt == b"A":
            self.average_total = max(1, min(300, int(float(value or b"1"))))
        return value + b"\r\ndone\r\n"

    def _start(self, cmd: bytes) -> bytes:
        if cmd == b"Z":
            return b"\r\nSetting zero...done\r\n"
        self._prompt = cmd
        return _PROMPTS[cmd]

    def _command(self, c: bytes, now: float) -> bytes:
        if c == proto.CMD_MEASURE:
            return self.line_at(now)
        if c == proto.CMD_CONTINUOUS:
            self.continuous = not self.continuous
            return b""
        if c == proto.CMD_FIRMWARE:
            return proto.firmware_line(self.firmware)
        if c == proto.CMD_EEPROM:
            return self._eeprom()
        if c in _PROMPTS or c == proto.CMD_ZERO:
            if c in _LOCKED and self.firmware != "15SEP17":
                self._prompt, self._after_unlock = b"unlock", c
                return b"Enter Unlock Code: "
            return self._start(c)
        if c == proto.CMD_SLEEP:
            self.asleep, self.continuous = True, False
            return b""
        if c == proto.CMD_RESET:
            self._t0, self._deaf_until, self.continuous = now + RESET_S, now + RESET_S, False
            return b""
        return b""

    def _eeprom(self) -> bytes:
        rows = [
            ("nA_per_PPM_x100", self.sensitivity),
            ("ADC_OC", 32768),
            ("ADC_Zero", 28000),
            ("ADC_Span", 36020),
            ("Temperature_Offset_x1000", 0),
            ("T_Zero", 25),
            ("RH_Zero", 50),
            ("T_Span", 0),
            ("RH_Span", 0),
            ("LMP91000_R1", 3),
            ("LMP91000_R2", 3),
            ("LMP91000_R3", 3),
            ("Average_Total", self.average_total),
            ("Barcode", f"{self.serial} 110816 NO2 1609 {self.sensitivity / 100:.2f}"),
            ("Serial_Number", self.serial),
            ("Part_Number", 110816),
            ("Gas", "NO2"),
            ("Date_Code", 1609),
            ("Sensitivity_Code", f"{self.sensitivity / 100:.2f}"),
        ]
        return b"EEPROM contents\r\n" + b"".join(f"{k}= {v}\r\n".encode() for k, v in rows)
