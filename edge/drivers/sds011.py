"""Nova Fitness SDS011 (PM2.5, PM10): SENSORS.md §1.

Data frame ``AA C0 pm25_lo pm25_hi pm10_lo pm10_hi id1 id2 chk AB``; replies ``AA C5 ...`` have
the same layout. Checksum: low byte of sum(2..7). Commands are 19 bytes ``AA B4 ...``.
"""

from __future__ import annotations

from collections import Counter

from luftnett.edge.framing import Item, Measurement, Rejected, Reply, skip_rejected

__all__ = [
    "BAUD",
    "INIT_COMMANDS",
    "MODEL",
    "SLEEP_COMMANDS",
    "WAKE_COMMANDS",
    "Framer",
    "command",
    "data_frame",
    "reply_frame",
]

MODEL = "sds011"
BAUD = 9600
FRAME_LEN = 10
HEAD, TAIL = 0xAA, 0xAB
DATA, REPLY, HOST = 0xC0, 0xC5, 0xB4
MAX_SPEC_UGM3 = 999.9

CMD_REPORTING_MODE, CMD_QUERY, CMD_SET_ID, CMD_SLEEP_WORK, CMD_FIRMWARE, CMD_PERIOD = (
    0x02,
    0x04,
    0x05,
    0x06,
    0x07,
    0x08,
)
_REPLY_NAMES = {
    CMD_REPORTING_MODE: "reporting_mode",
    CMD_SET_ID: "set_id",
    CMD_SLEEP_WORK: "sleep_work",
    CMD_FIRMWARE: "firmware",
    CMD_PERIOD: "working_period",
}


def command(cmd: int, data: bytes = b"", device_id: bytes = b"\xff\xff") -> bytes:
    """A 19-byte host command; ``data`` fills bytes 3..14; checksum includes the ID."""
    body = bytes([cmd]) + data.ljust(12, b"\x00")[:12] + device_id
    return bytes([HEAD, HOST]) + body + bytes([sum(body) & 0xFF, TAIL])


def _frame(kind: int, payload6: bytes) -> bytes:
    return bytes([HEAD, kind]) + payload6 + bytes([sum(payload6) & 0xFF, TAIL])


def data_frame(pm25_ugm3: float, pm10_ugm3: float, device_id: bytes = b"\xa1\x60") -> bytes:
    """The frame a sensor sends for these values (rounded to 0.1 µg/m³, clipped to 16 bits)."""
    p25 = max(0, min(0xFFFF, round(pm25_ugm3 * 10)))
    p10 = max(0, min(0xFFFF, round(pm10_ugm3 * 10)))
    return _frame(DATA, p25.to_bytes(2, "little") + p10.to_bytes(2, "little") + device_id)


def reply_frame(cmd: int, result: bytes, device_id: bytes = b"\xa1\x60") -> bytes:
    return _frame(REPLY, bytes([cmd]) + result.ljust(3, b"\x00")[:3] + device_id)


# Sent after opening the port: active reporting, continuous, awake.
INIT_COMMANDS: tuple[bytes, ...] = (
    command(CMD_SLEEP_WORK, b"\x01\x01"),
    command(CMD_REPORTING_MODE, b"\x01\x00"),
    command(CMD_PERIOD, b"\x01\x00"),
)
# Duty cycle: "set sleep" (acked while awake; asleep the sensor answers only sleep/work);
# waking is the same as starting up ("set work" first, then the modes again).
SLEEP_COMMANDS: tuple[bytes, ...] = (command(CMD_SLEEP_WORK, b"\x01\x00"),)
WAKE_COMMANDS: tuple[bytes, ...] = INIT_COMMANDS


def _decode(frame: bytes) -> Item:
    serial = frame[6:8].hex().upper()
    if frame[1] == DATA:
        pm25 = int.from_bytes(frame[2:4], "little") / 10
        pm10 = int.from_bytes(frame[4:6], "little") / 10
        flags: set[str] = set()
        if frame[2:6] == b"\x00\x00\x00\x00":
            flags.add("warming_up")
        if pm25 > MAX_SPEC_UGM3 or pm10 > MAX_SPEC_UGM3:
            flags.add("out_of_spec")
        return Measurement(
            values={"pm25_ugm3": pm25, "pm10_ugm3": pm10},
            raw=frame,
            serial=serial,
            flags=frozenset(flags),
            fields={"device_id": serial},
        )
    cmd = frame[2]
    name = _REPLY_NAMES.get(cmd, f"0x{cmd:02x}")
    fields: dict[str, object] = {"device_id": serial}
    if cmd == CMD_REPORTING_MODE:
        fields.update(op="set" if frame[3] else "query", mode="query" if frame[4] else "active")
    elif cmd == CMD_SLEEP_WORK:
        fields.update(op="set" if frame[3] else "query", state="work" if frame[4] else "sleep")
    elif cmd == CMD_PERIOD:
        fields.update(op="set" if frame[3] else "query", period_min=frame[4])
    elif cmd == CMD_FIRMWARE:
        fields.update(firmware=f"20{frame[3]:02d}-{frame[4]:02d}-{frame[5]:02d}")
    return Reply(command=name, fields=fields, raw=frame)


class Framer:
    """Stream parser for SDS011 output; resyncs one byte at a time, never raises."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.counts: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        out: list[Item] = []
        buf = self._buf
        while buf:
            start = buf.find(HEAD)
            if start != 0:
                junk = bytes(buf) if start < 0 else bytes(buf[:start])
                out.append(self._reject("no_frame", junk))
                del buf[: len(junk)]
                continue
            if len(buf) >= 2 and buf[1] not in (DATA, REPLY):
                out.append(self._reject("bad_header", bytes(buf[:2])))
                del buf[:1]
                continue
            if len(buf) < FRAME_LEN:
                break
            frame = bytes(buf[:FRAME_LEN])
            if frame[9] != TAIL:
                out.append(self._reject("bad_tail", frame))
                del buf[: skip_rejected(buf, FRAME_LEN, HEAD)]
            elif sum(frame[2:8]) & 0xFF != frame[8]:
                out.append(self._reject("bad_checksum", frame))
                del buf[: skip_rejected(buf, FRAME_LEN, HEAD)]
            else:
                del buf[:FRAME_LEN]
                item = _decode(frame)
                self.counts["measurement" if isinstance(item, Measurement) else "reply"] += 1
                out.append(item)
        return out

    def flush(self) -> list[Item]:
        if not self._buf:
            return []
        rest, self._buf = bytes(self._buf), bytearray()
        return [self._reject("truncated", rest)]

    def _reject(self, category: str, raw: bytes) -> Rejected:
        self.counts[category] += 1
        return Rejected(category, raw)
