"""SHT31 temperature / humidity forwarded by a small MCU over a serial line: docs/sensors.md.

The SHT31 itself speaks I²C (SENSORS.md §5); the serial format is ours. The MCU forwards the
sensor's raw words with the sensor's own CRC-8 (poly 0x31, init 0xFF), so the host checks
the data end to end, sensor to edge::

    SHT31,<T_raw 4 hex>,<T crc 2 hex>,<RH_raw 4 hex>,<RH crc 2 hex>\\r\\n   a reading
    SHT31,ERR,<code>\\r\\n                                                  sensor not read
    SHT31,OK,<command>\\r\\n                                                command done

T = −45 + 175·raw/65535 °C, RH = 100·raw/65535 %. Example: ``SHT31,6666,93,8000,A2\\r\\n`` →
25.00 °C, 50.00 %RH. Host commands are ASCII lines ended by CR: ``Q`` one reading now,
``P1``/``P0`` periodic output (1 line/s) on/off, ``H1``/``H0`` heater on/off.
"""

from __future__ import annotations

import re
from collections import Counter

from luftnett.edge.framing import Item, Measurement, Rejected, Reply, junk_before

__all__ = [
    "BAUD",
    "INIT_COMMANDS",
    "INTERVAL_S",
    "MODEL",
    "Framer",
    "command",
    "crc8",
    "error_line",
    "measurement_line",
    "ok_line",
    "raw_line",
]

MODEL = "sht31"
BAUD = 9600
INTERVAL_S = 1.0
HEAD = b"SHT31,"
MAX_LINE = 32  # a reading is 23 bytes
T_SPEC = (-40.0, 125.0)
COMMANDS = ("Q", "P0", "P1", "H0", "H1")
_HEX4, _HEX2 = re.compile(rb"[0-9A-Fa-f]{4}"), re.compile(rb"[0-9A-Fa-f]{2}")
_CODE = re.compile(rb"[A-Za-z0-9_]{1,16}")


def crc8(data: bytes) -> int:
    """Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection (``BE EF`` → 0x92)."""
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def command(name: str) -> bytes:
    """A host command line: ``Q``, ``P0``, ``P1``, ``H0`` or ``H1``."""
    if name not in COMMANDS:
        raise ValueError(f"unknown SHT31 forwarder command {name!r}; known: {COMMANDS}")
    return name.encode() + b"\r"


INIT_COMMANDS: tuple[bytes, ...] = (command("P1"),)


def raw_line(t_raw: int, rh_raw: int) -> bytes:
    t, rh = t_raw.to_bytes(2, "big"), rh_raw.to_bytes(2, "big")
    return b"SHT31,%s,%02X,%s,%02X\r\n" % (
        t.hex().upper().encode(),
        crc8(t),
        rh.hex().upper().encode(),
        crc8(rh),
    )


def measurement_line(temperature_c: float, rh_pct: float) -> bytes:
    """The line for these values (clipped to what the sensor can report)."""
    t_raw = round((temperature_c + 45) * 65535 / 175)
    rh_raw = round(rh_pct * 65535 / 100)
    return raw_line(max(0, min(0xFFFF, t_raw)), max(0, min(0xFFFF, rh_raw)))


def error_line(code: str = "NACK") -> bytes:
    return HEAD + b"ERR," + code.encode() + b"\r\n"


def ok_line(name: str) -> bytes:
    return HEAD + b"OK," + name.encode() + b"\r\n"


def _decode(line: bytes) -> Item:
    parts = line[len(HEAD) : -2].split(b",")
    if len(parts) == 2 and parts[0] in (b"ERR", b"OK"):
        if not _CODE.fullmatch(parts[1]):
            return Rejected("bad_field_value", line, "status code")
        if parts[0] == b"ERR":
            return Reply("error", {"code": parts[1].decode()}, line)
        return Reply("ok", {"command": parts[1].decode()}, line)
    if len(parts) != 4:
        return Rejected("bad_field_count", line, f"{len(parts)} fields")
    t_hex, t_crc, rh_hex, rh_crc = parts
    if not (
        _HEX4.fullmatch(t_hex)
        and _HEX2.fullmatch(t_crc)
        and _HEX4.fullmatch(rh_hex)
        and _HEX2.fullmatch(rh_crc)
    ):
        return Rejected("bad_field_value", line, "not 4+2 hex digits")
    t_bytes, rh_bytes = bytes.fromhex(t_hex.decode()), bytes.fromhex(rh_hex.decode())
    if crc8(t_bytes) != int(t_crc, 16) or crc8(rh_bytes) != int(rh_crc, 16):
        return Rejected("bad_checksum", line)
    t_raw, rh_raw = int.from_bytes(t_bytes, "big"), int.from_bytes(rh_bytes, "big")
    t = round(-45 + 175 * t_raw / 65535, 2)
    flags = frozenset() if T_SPEC[0] <= t <= T_SPEC[1] else frozenset({"out_of_spec"})
    return Measurement(
        values={"temperature_c": t, "rh_pct": round(100 * rh_raw / 65535, 2)},
        raw=line,
        flags=flags,
        fields={"t_raw": t_raw, "rh_raw": rh_raw},
    )


class Framer:
    """Stream parser for the SHT31 forwarder lines; resyncs one byte at a time, never raises.

    Output depends only on the bytes, never on how they were chunked.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.counts: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        out: list[Item] = []
        buf = self._buf
        while buf:
            n = junk_before(buf, HEAD[0])
            if n is None:
                break
            if n:
                out.append(self._count(Rejected("no_frame", bytes(buf[:n]))))
                del buf[:n]
                continue
            have = min(len(buf), len(HEAD))
            bad = next((i for i in range(have) if buf[i] != HEAD[i]), None)
            if bad is not None:
                out.append(self._count(Rejected("bad_header", bytes(buf[: bad + 1]))))
                del buf[:1]
                continue
            if have < len(HEAD):
                break
            nl = buf.find(b"\n", 0, MAX_LINE)
            if nl < 0:
                if len(buf) < MAX_LINE:
                    break
                raw = bytes(buf[:MAX_LINE])
                out.append(self._count(Rejected("bad_length", raw, "no line end")))
                del buf[:1]
                continue
            line = bytes(buf[: nl + 1])
            if line[-2:-1] != b"\r":
                out.append(self._count(Rejected("bad_tail", line, "LF without CR")))
                del buf[:1]
                continue
            item = _decode(line)
            if isinstance(item, Rejected):
                del buf[:1]
            else:
                del buf[: len(line)]
            out.append(self._count(item))
        return out

    def flush(self) -> list[Item]:
        """End of stream: an unfinished candidate is truncated; lines after it still count."""
        out = self.feed(b"")
        while self._buf:
            nxt = self._buf.find(HEAD[0], 1)
            n = len(self._buf) if nxt < 0 else nxt
            category = "truncated" if self._buf[0] == HEAD[0] else "no_frame"
            out.append(self._count(Rejected(category, bytes(self._buf[:n]))))
            del self._buf[:n]
            out += self.feed(b"")
        return out

    def _count(self, item: Item) -> Item:
        if isinstance(item, Rejected):
            self.counts[item.category] += 1
        else:
            self.counts["measurement" if isinstance(item, Measurement) else "reply"] += 1
        return item
