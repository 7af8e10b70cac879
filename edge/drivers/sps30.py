"""Sensirion SPS30 over UART (SHDLC): SENSORS.md §3.

MOSI (host → sensor) ``7E ADR CMD L data CHK 7E``; MISO (sensor → host)
``7E ADR CMD STATE L data CHK 7E``. CHK is the inverted low byte of the sum of the bytes between
the flags, computed before stuffing. Between the flags, 7E 7D 11 13 travel as ``7D`` + byte XOR
0x20; :func:`unstuff` undoes that with a byte-by-byte state machine (substring replacement is
wrong: ``7D 5D 31`` is 7D 31, not 11).

The host polls: send :data:`POLL_COMMAND` every :data:`POLL_INTERVAL_S`; an early poll gets an
empty reply, which is a :class:`Reply`, not an error. A flag that closes one valid frame may
also open the next (HDLC flag sharing), so a lost start flag costs nothing; bytes between a
closing flag and the next frame are reported as ``no_frame``.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Mapping
from itertools import pairwise

from luftnett.contracts.units import MODEL_QUANTITIES
from luftnett.edge.framing import Item, Measurement, Rejected, Reply, junk_before

__all__ = [
    "BAUD",
    "INIT_COMMANDS",
    "INTERVAL_S",
    "MODEL",
    "POLL_COMMAND",
    "POLL_INTERVAL_S",
    "SLEEP_COMMANDS",
    "VALUES",
    "WAKE_COMMANDS",
    "WAKE_PULSE",
    "Framer",
    "command",
    "measurement_frame",
    "miso_frame",
    "stuff",
    "unstuff",
]

MODEL = "sps30"
BAUD = 115200
INTERVAL_S = 1.0  # a new value every 1 ± 0.04 s while measuring
POLL_INTERVAL_S = 1.0  # poll no faster than this

FLAG, ESC = 0x7E, 0x7D
_UNSTUFF = {0x5E: 0x7E, 0x5D: 0x7D, 0x31: 0x11, 0x33: 0x13}
_STUFF = {v: k for k, v in _UNSTUFF.items()}
MAX_DATA = 255
MAX_FRAME = 2 * (4 + MAX_DATA + 1) + 2  # every byte stuffed, plus both flags

CMD_START, CMD_STOP, CMD_READ, CMD_SLEEP, CMD_WAKE, CMD_CLEAN = 0x00, 0x01, 0x03, 0x10, 0x11, 0x56
CMD_AUTO_CLEAN, CMD_INFO, CMD_VERSION, CMD_STATUS, CMD_RESET = 0x80, 0xD0, 0xD1, 0xD2, 0xD3
COMMAND_NAMES = {
    CMD_START: "start_measurement",
    CMD_STOP: "stop_measurement",
    CMD_READ: "read_measured_values",
    CMD_SLEEP: "sleep",
    CMD_WAKE: "wake_up",
    CMD_CLEAN: "start_fan_cleaning",
    CMD_AUTO_CLEAN: "auto_cleaning_interval",
    CMD_INFO: "device_information",
    CMD_VERSION: "read_version",
    CMD_STATUS: "read_device_status",
    CMD_RESET: "device_reset",
}
STATE_OK, STATE_BAD_LENGTH, STATE_UNKNOWN, STATE_BAD_PARAM, STATE_WRONG_STATE = (
    0x00,
    0x01,
    0x02,
    0x04,
    0x43,
)
STATE_ERRORS = {
    0x01: "wrong data length for this command",
    0x02: "unknown command",
    0x03: "no access right for command",
    0x04: "illegal command parameter or out of range",
    0x28: "internal function argument out of range",
    0x43: "command not allowed in current state",
}
FORMAT_FLOAT, FORMAT_UINT16 = 0x03, 0x05
STATUS_SPEED, STATUS_LASER, STATUS_FAN = 1 << 21, 1 << 5, 1 << 4

#: the ten measured quantities in frame order; in uint16 format the size travels in nm
VALUES = MODEL_QUANTITIES["sps30"]
MAX_SPEC_UGM3, MAX_SPEC_CM3 = 1000.0, 3000.0


def checksum(body: bytes) -> int:
    """Inverted low byte of the sum (of the unstuffed bytes between the flags)."""
    return ~sum(body) & 0xFF


def stuff(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in _STUFF:
            out += bytes([ESC, _STUFF[b]])
        else:
            out.append(b)
    return bytes(out)


def unstuff(data: bytes) -> bytes | None:
    """Undo byte stuffing, one byte at a time; ``None`` on a bad or dangling escape."""
    out = bytearray()
    escaped = False
    for b in data:
        if escaped:
            orig = _UNSTUFF.get(b)
            if orig is None:
                return None
            out.append(orig)
            escaped = False
        elif b == ESC:
            escaped = True
        else:
            out.append(b)
    return None if escaped else bytes(out)


def command(cmd: int, data: bytes = b"", adr: int = 0) -> bytes:
    """A MOSI frame, stuffed and flagged."""
    body = bytes([adr, cmd, len(data)]) + data
    return bytes([FLAG]) + stuff(body + bytes([checksum(body)])) + bytes([FLAG])


def miso_frame(cmd: int, state: int = STATE_OK, data: bytes = b"", adr: int = 0) -> bytes:
    """A MISO frame (what the sensor sends), stuffed and flagged."""
    body = bytes([adr, cmd, state, len(data)]) + data
    return bytes([FLAG]) + stuff(body + bytes([checksum(body)])) + bytes([FLAG])


def encode_values(values: Mapping[str, float], fmt: int = FORMAT_FLOAT) -> bytes:
    """The 40-byte (float) or 20-byte (uint16) payload of a read reply; missing values are 0."""
    seq = [float(values.get(name, 0.0)) for name in VALUES]
    if fmt == FORMAT_FLOAT:
        return struct.pack(">10f", *seq)
    seq[-1] *= 1000  # µm -> nm
    return struct.pack(">10H", *(max(0, min(0xFFFF, round(v))) for v in seq))


def measurement_frame(
    values: Mapping[str, float], fmt: int = FORMAT_FLOAT, state: int = STATE_OK
) -> bytes:
    return miso_frame(CMD_READ, state, encode_values(values, fmt))


START_FLOAT = command(CMD_START, bytes([0x01, FORMAT_FLOAT]))
START_UINT16 = command(CMD_START, bytes([0x01, FORMAT_UINT16]))
STOP = command(CMD_STOP)
READ = command(CMD_READ)
SLEEP = command(CMD_SLEEP)
WAKE = command(CMD_WAKE)
FAN_CLEAN = command(CMD_CLEAN)
READ_VERSION = command(CMD_VERSION)
RESET = command(CMD_RESET)
#: a low pulse that re-enables a sleeping sensor's UART; send WAKE within 100 ms after it
WAKE_PULSE = b"\xff"
POLL_COMMAND = READ

# Sent after opening the port: wake (STATE 0x43 if already awake), start float output
# (STATE 0x43 if already measuring: "already running", not a failure).
INIT_COMMANDS: tuple[bytes, ...] = (WAKE_PULSE + WAKE, START_FLOAT)
# Duty cycle: sleep is only allowed from Idle, so stop measurement first; the UART is off while
# asleep, so waking is the FF pulse + wake-up, then start measurement (as at start-up).
SLEEP_COMMANDS: tuple[bytes, ...] = (STOP, SLEEP)
WAKE_COMMANDS: tuple[bytes, ...] = (WAKE_PULSE + WAKE, START_FLOAT)


def _reply_fields(cmd: int, data: bytes) -> dict[str, object]:
    """Decoded payload of a reply (the read command's empty reply is handled by the caller)."""
    if cmd == CMD_AUTO_CLEAN and len(data) == 4:
        return {"interval_s": int.from_bytes(data, "big")}
    if cmd == CMD_INFO and data:
        return {"text": data.split(b"\x00")[0].decode("ascii", "replace")}
    if cmd == CMD_VERSION and len(data) == 7:
        return {
            "firmware": f"{data[0]}.{data[1]}",
            "hardware": data[3],
            "shdlc": f"{data[5]}.{data[6]}",
        }
    if cmd == CMD_STATUS and len(data) == 5:
        reg = int.from_bytes(data[:4], "big")
        return {
            "status_register": reg,
            "speed_warning": bool(reg & STATUS_SPEED),
            "laser_error": bool(reg & STATUS_LASER),
            "fan_error": bool(reg & STATUS_FAN),
        }
    return {"data": data.hex(" ").upper()} if data else {}


def _monotonic(seq: list[float]) -> bool:
    return all(a <= b + 0.01 for a, b in pairwise(seq))


def _measurement(data: bytes, fields: dict[str, object], raw: bytes) -> Item:
    if len(data) == 40:
        nums = list(struct.unpack(">10f", data))
        fields["format"] = "float"
    else:
        nums = [float(v) for v in struct.unpack(">10H", data)]
        nums[-1] /= 1000  # nm -> µm
        fields["format"] = "uint16"
    if not all(math.isfinite(v) and v >= 0 for v in nums):
        return Rejected("bad_field_value", raw, "negative or non-finite value")
    values = {name: round(v, 3) for name, v in zip(VALUES, nums, strict=True)}
    flags: set[str] = set()
    if not any(data):
        flags.add("warming_up")
    if max(nums[:4]) > MAX_SPEC_UGM3 or max(nums[4:9]) > MAX_SPEC_CM3:
        flags.add("out_of_spec")
    if not (_monotonic(nums[:4]) and _monotonic(nums[4:9])):
        flags.add("inconsistent")  # cumulative quantities must not decrease with size
    return Measurement(values=values, raw=raw, flags=frozenset(flags), fields=fields)


def _decode_miso(frame: bytes, raw: bytes) -> Item:
    adr, cmd, state, length = frame[:4]
    data = frame[4 : 4 + length]
    fields: dict[str, object] = {"state": state}
    if state & 0x7F:
        fields["error"] = STATE_ERRORS.get(state & 0x7F, f"0x{state & 0x7F:02x}")
    if state & 0x80:
        fields["device_status_flag"] = True  # read the status register (D2) for details
    if adr:
        fields["adr"] = adr
    if cmd == CMD_READ and length in (20, 40):
        return _measurement(data, fields, raw)
    if cmd == CMD_READ and length:
        return Rejected("bad_length", raw, f"read reply with {length} data bytes")
    if cmd == CMD_READ and not state & 0x7F:
        fields["empty"] = True  # polled before a new value was ready: not an error
    fields.update(_reply_fields(cmd, data))
    return Reply(COMMAND_NAMES.get(cmd, f"0x{cmd:02x}"), fields, raw)


def _decode_mosi(frame: bytes, raw: bytes) -> Item:
    adr, cmd, length = frame[:3]
    data = frame[3 : 3 + length]
    fields: dict[str, object] = {"cmd": cmd}
    if adr:
        fields["adr"] = adr
    if data:
        fields["data"] = data.hex(" ").upper()
    return Reply(COMMAND_NAMES.get(cmd, f"0x{cmd:02x}"), fields, raw)


class Framer:
    """Stream parser for SHDLC; never raises, resyncs at the next flag after any failure.

    ``host=True`` parses MOSI frames (what a host sends; used by the emulator) instead of
    MISO frames. Output depends only on the bytes, never on how they were chunked.
    """

    def __init__(self, host: bool = False) -> None:
        self.host = host
        self._head = 3 if host else 4  # ADR CMD [STATE] L
        self._buf = bytearray()
        self._after_frame = False  # buf[0] is the closing flag of a valid frame
        self.counts: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        out: list[Item] = []
        buf = self._buf
        while buf:
            n = junk_before(buf, FLAG)
            if n is None:
                break
            if n:
                out.append(self._reject("no_frame", bytes(buf[:n])))
                del buf[:n]
                self._after_frame = False
                continue
            end = buf.find(FLAG, 1, MAX_FRAME)
            if end < 0:
                if len(buf) < MAX_FRAME:
                    break
                out.append(self._reject("bad_length", bytes(buf[:MAX_FRAME]), "no stop flag"))
                del buf[:MAX_FRAME]  # no flag in there but the first
                self._after_frame = False
                continue
            if end == 1:  # two flags in a row: the first closed a frame or is idle fill
                del buf[:1]
                self._after_frame = False
                continue
            raw = bytes(buf[: end + 1])
            frame = self._unframe(raw)
            if isinstance(frame, Rejected):
                # after a good frame's closing flag, a failed candidate is inter-frame junk
                item: Item = (
                    Rejected("no_frame", raw[1:-1], frame.category) if self._after_frame else frame
                )
            else:
                item = _decode_mosi(frame, raw) if self.host else _decode_miso(frame, raw)
            if isinstance(item, Rejected):
                self.counts[item.category] += 1
            else:
                self.counts["measurement" if isinstance(item, Measurement) else "reply"] += 1
            self._after_frame = not isinstance(frame, Rejected)
            out.append(item)
            del buf[:end]  # keep the closing flag: it may open the next frame
        return out

    def flush(self) -> list[Item]:
        out = self.feed(b"")
        rest, self._buf = bytes(self._buf), bytearray()
        if rest and rest != bytes([FLAG]):  # a lone flag closed the last frame or candidate
            out.append(self._reject("truncated" if rest[0] == FLAG else "no_frame", rest))
        self._after_frame = False
        return out

    def _unframe(self, raw: bytes) -> bytes | Rejected:
        """The unstuffed bytes between the flags, if length and checksum hold."""
        frame = unstuff(raw[1:-1])
        if frame is None:
            return Rejected("bad_escape", raw)
        if len(frame) < self._head + 1 or len(frame) != self._head + 1 + frame[self._head - 1]:
            return Rejected("bad_length", raw, f"{len(frame)} bytes after unstuffing")
        if checksum(frame[:-1]) != frame[-1]:
            return Rejected("bad_checksum", raw)
        return frame

    def _reject(self, category: str, raw: bytes, detail: str = "") -> Rejected:
        self.counts[category] += 1
        return Rejected(category, raw, detail)
