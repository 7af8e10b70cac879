"""Plantower PMS5003 / PMS7003 (PM1, PM2.5, PM10 and particle counts): SENSORS.md §2.

Data frame: ``42 4D 00 1C`` + 13 BE words + BE checksum (32 bytes); acknowledgement of a host
command: ``42 4D 00 04 CMD DATAL chk_hi chk_lo`` (8 bytes). Checksum: 16-bit sum of every byte
before it. Only lengths 28 and 4 are accepted: a stray "BM" (length 0x424D) or a PMS3003 /
PMS5003ST frame is rejected as ``bad_length`` and the framer resyncs one byte further on.
Host commands are 7 bytes ``42 4D CMD DATAH DATAL lrc_hi lrc_lo``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from luftnett.contracts.units import MODEL_QUANTITIES
from luftnett.edge.framing import Item, Measurement, Rejected, Reply, junk_before, skip_rejected

__all__ = [
    "BAUD",
    "COMMAND_GAP_S",
    "INIT_COMMANDS",
    "INTERVAL_S",
    "MODEL",
    "MODELS",
    "SLEEP_COMMANDS",
    "WAKE_COMMANDS",
    "Framer",
    "ack_frame",
    "command",
    "data_frame",
]

MODEL = "pms5003"
MODELS = ("pms5003", "pms7003")  # same framing and command set
BAUD = 9600
#: active "stable" sub-mode cadence; "fast" mode (0.2–0.8 s) only sends more frames
INTERVAL_S = 2.3
#: keep at least this long between two commands (mode changes < 50 ms apart break a PMS5003)
COMMAND_GAP_S = 0.1
HEAD = b"\x42\x4d"
DATA_LEN, ACK_LEN = 28, 4  # the length word: bytes after it, checksum included
MAX_SPEC_UGM3 = 1000

CMD_READ, CMD_MODE, CMD_SLEEP = 0xE2, 0xE1, 0xE4

#: value names of the 12 data words, in frame order (data 13 is version / error code)
WORDS = MODEL_QUANTITIES["pms5003"]


def _sum16(data: bytes) -> bytes:
    return (sum(data) & 0xFFFF).to_bytes(2, "big")


def command(cmd: int, data: int = 0) -> bytes:
    """A 7-byte host command; ``data`` is the 16-bit DATAH/DATAL word."""
    body = HEAD + bytes([cmd]) + data.to_bytes(2, "big")
    return body + _sum16(body)


READ = command(CMD_READ)
PASSIVE = command(CMD_MODE, 0)
ACTIVE = command(CMD_MODE, 1)
SLEEP = command(CMD_SLEEP, 0)
WAKE = command(CMD_SLEEP, 1)

# Sent after opening the port: wake (no ack), then active mode (acked).
INIT_COMMANDS: tuple[bytes, ...] = (WAKE, ACTIVE)
# Duty cycle: sleep is acked, wake is not; waking is the same as starting up.
SLEEP_COMMANDS: tuple[bytes, ...] = (SLEEP,)
WAKE_COMMANDS: tuple[bytes, ...] = INIT_COMMANDS


def data_frame(words: Sequence[int], version: int = 0x97, error: int = 0) -> bytes:
    """The 32-byte frame for 12 data words (order of :data:`WORDS`), clipped to 16 bits."""
    if len(words) != len(WORDS):
        raise ValueError(f"a PMS data frame has {len(WORDS)} words (got {len(words)})")
    body = HEAD + DATA_LEN.to_bytes(2, "big")
    body += b"".join(max(0, min(0xFFFF, int(w))).to_bytes(2, "big") for w in words)
    body += bytes([version & 0xFF, error & 0xFF])
    return body + _sum16(body)


def ack_frame(cmd: int, datal: int) -> bytes:
    """The 8-byte acknowledgement of a host command."""
    body = HEAD + ACK_LEN.to_bytes(2, "big") + bytes([cmd, datal])
    return body + _sum16(body)


def _decode(frame: bytes) -> Item:
    if len(frame) == 4 + ACK_LEN:
        cmd, datal = frame[4], frame[5]
        if cmd == CMD_MODE:
            return Reply("mode", {"mode": "active" if datal else "passive"}, frame)
        if cmd == CMD_SLEEP:
            return Reply("sleep", {"state": "wake" if datal else "sleep"}, frame)
        return Reply(f"0x{cmd:02x}", {"data": datal}, frame)
    words = [int.from_bytes(frame[i : i + 2], "big") for i in range(4, 28, 2)]
    values = {name: float(w) for name, w in zip(WORDS, words, strict=True)}
    flags: set[str] = set()
    if not any(words):
        flags.add("warming_up")
    elif max(values["pm10_cf1"], values["pm10_ugm3"]) > 0 and values["nc03_per_01l"] == 0:
        flags.add("inconsistent")
    if max(values["pm25_ugm3"], values["pm10_ugm3"]) > MAX_SPEC_UGM3:
        flags.add("out_of_spec")
    return Measurement(
        values=values,
        raw=frame,
        flags=frozenset(flags),
        fields={"version": frame[28], "error_code": frame[29]},
    )


class Framer:
    """Stream parser for PMS5003/PMS7003 output; resyncs one byte at a time, never raises.

    Its output depends only on the bytes, never on how they were chunked.
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
                out.append(self._reject("no_frame", bytes(buf[:n])))
                del buf[:n]
                continue
            if len(buf) < 2:
                break
            if buf[1] != HEAD[1]:
                out.append(self._reject("bad_header", bytes(buf[:2])))
                del buf[:1]
                continue
            if len(buf) < 4:
                break
            length = int.from_bytes(buf[2:4], "big")
            if length not in (DATA_LEN, ACK_LEN):
                out.append(self._reject("bad_length", bytes(buf[:4]), f"length {length}"))
                del buf[:1]
                continue
            if len(buf) < 4 + length:
                break
            frame = bytes(buf[: 4 + length])
            if _sum16(frame[:-2]) != frame[-2:]:
                out.append(self._reject("bad_checksum", frame))
                del buf[: skip_rejected(buf, len(frame), HEAD[0])]
                continue
            del buf[: len(frame)]
            item = _decode(frame)
            self.counts["measurement" if isinstance(item, Measurement) else "reply"] += 1
            out.append(item)
        return out

    def flush(self) -> list[Item]:
        """End of stream: an unfinished candidate is truncated; frames after it still count."""
        out = self.feed(b"")
        while self._buf:
            nxt = self._buf.find(HEAD[0], 1)
            n = len(self._buf) if nxt < 0 else nxt
            category = "truncated" if self._buf[0] == HEAD[0] else "no_frame"
            out.append(self._reject(category, bytes(self._buf[:n])))
            del self._buf[:n]
            out += self.feed(b"")
        return out

    def _reject(self, category: str, raw: bytes, detail: str = "") -> Rejected:
        self.counts[category] += 1
        return Rejected(category, raw, detail)
