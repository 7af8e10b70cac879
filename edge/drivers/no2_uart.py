"""SPEC Sensors DGS-NO2 968-043 (NO2, T, RH) ASCII lines: SENSORS.md §4.

A measurement is one line of exactly 11 integer fields separated by comma + space, ended by
CR LF: serial (12 digits), ppb (signed), °C, %RH, raw gas ADC, raw T, raw RH, uptime days,
hours, minutes, seconds. There is no checksum, so a line is validated field by field
(``bad_field_count`` / ``bad_field_value``). Prompts (``Enter ...: `` without a line end),
EEPROM ``key= value`` lines, the firmware date (``15SEP17``) and other text are
:class:`Reply` items, never measurements. DGS2 (970 series) 7-field lines are rejected.

Junk before a measurement on the same line is cut off (the first valid suffix wins), so a
good line survives noise between lines.
"""

from __future__ import annotations

import re
from collections import Counter

from luftnett.edge.framing import Item, Measurement, Rejected, Reply

__all__ = [
    "BAUD",
    "INIT_COMMANDS",
    "INTERVAL_S",
    "MODEL",
    "POLL_COMMAND",
    "POLL_INTERVAL_S",
    "Framer",
    "firmware_line",
    "measurement_line",
]

MODEL = "dgs-no2"
BAUD = 9600
INTERVAL_S = 1.0  # continuous mode (`c`) or one poll per second
POLL_COMMAND = b"\r"  # one measurement line per CR
POLL_INTERVAL_S = 1.0
# Sent after opening the port: one measurement, to see the sensor is there. Continuous mode is
# not switched on here because `c` toggles it: a unit left in continuous mode would stop.
INIT_COMMANDS: tuple[bytes, ...] = (POLL_COMMAND,)

CMD_MEASURE, CMD_CONTINUOUS, CMD_EEPROM, CMD_FIRMWARE = b"\r", b"c", b"e", b"f"
CMD_ZERO, CMD_SPAN, CMD_AVERAGE, CMD_TOFFSET, CMD_SLEEP, CMD_RESET = (
    b"Z",
    b"S",
    b"A",
    b"T",
    b"s",
    b"r",
)

LINE_CAP = 256  # no line end within this many bytes: drop ...
LINE_DROP = 128  # ... this many as bad_length (so a line up to 128 bytes is never cut)
STABILISE_S = 3600  # readings in the first hour after power-on are flagged warming_up
PPB_SPEC = (-200, 5000)  # range 0–5 ppm; negative near zero is normal
T_SPEC, RH_SPEC = (-40, 85), (0, 100)

PROMPT = re.compile(rb"(?:Enter|Remove) [^\r\n:]{1,40}: ")
_FIRMWARE = re.compile(rb"\d{2}[A-Z]{3}\d{2}")
_EEPROM = re.compile(rb"([A-Za-z][A-Za-z0-9_ ]{0,40}?) ?= ?([ -~]*)")
_INT = re.compile(rb"-?\d{1,9}")
_SERIAL = re.compile(rb"\d{12}")
_FIELDS = (
    "serial",
    "no2_ppb",
    "temperature_c",
    "rh_pct",
    "adc_gas",
    "adc_temperature",
    "adc_rh",
    "days",
    "hours",
    "minutes",
    "seconds",
)
_LIMITS = {
    "adc_gas": (0, 0xFFFF),
    "adc_temperature": (0, 0xFFFF),
    "adc_rh": (0, 0xFFFF),
    "days": (0, 100_000),
    "hours": (0, 23),
    "minutes": (0, 59),
    "seconds": (0, 59),
    "temperature_c": (-100, 200),
    "rh_pct": (-50, 200),
}


def measurement_line(
    serial: str,
    no2_ppb: int,
    temperature_c: int,
    rh_pct: int,
    adc: tuple[int, int, int],
    uptime_s: int,
) -> bytes:
    """The line a DGS-NO2 prints for these values (uptime split into d, h, m, s)."""
    d, rest = divmod(uptime_s, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    fields = [serial, no2_ppb, temperature_c, rh_pct, *adc, f"{d:02d}", f"{h:02d}"]
    fields += [f"{m:02d}", f"{s:02d}"]
    return ", ".join(str(f) for f in fields).encode() + b"\r\n"


def firmware_line(date: str = "15SEP17") -> bytes:
    return date.encode() + b"\r\n"


def _parse_measurement(line: bytes, raw: bytes) -> Measurement | Rejected:
    parts = line.split(b",")
    if len(parts) != len(_FIELDS):
        detail = f"{len(parts)} fields"
        if len(parts) == 7:
            detail += " (a DGS2 line?)"
        return Rejected("bad_field_count", raw, detail)
    texts = [p[1:] if i and p.startswith(b" ") else p for i, p in enumerate(parts)]
    if not _SERIAL.fullmatch(texts[0]):
        return Rejected("bad_field_value", raw, "serial is not 12 digits")
    nums: dict[str, int] = {}
    for name, text in zip(_FIELDS[1:], texts[1:], strict=True):
        if not _INT.fullmatch(text):
            return Rejected("bad_field_value", raw, f"{name} is not an integer")
        nums[name] = int(text)
        lo, hi = _LIMITS.get(name, (-(10**9), 10**9))
        if not lo <= nums[name] <= hi:
            return Rejected("bad_field_value", raw, f"{name} {nums[name]} out of range")
    ppb, t, rh = nums["no2_ppb"], nums["temperature_c"], nums["rh_pct"]
    uptime = ((nums["days"] * 24 + nums["hours"]) * 60 + nums["minutes"]) * 60 + nums["seconds"]
    flags: set[str] = set()
    if uptime < STABILISE_S:
        flags.add("warming_up")
    if not (
        PPB_SPEC[0] <= ppb <= PPB_SPEC[1]
        and T_SPEC[0] <= t <= T_SPEC[1]
        and RH_SPEC[0] <= rh <= RH_SPEC[1]
    ):
        flags.add("out_of_spec")
    serial = texts[0].decode()
    return Measurement(
        values={"no2_ppb": float(ppb), "temperature_c": float(t), "rh_pct": float(rh)},
        raw=raw,
        serial=serial,
        flags=frozenset(flags),
        fields={
            "serial": serial,
            "adc_gas": nums["adc_gas"],
            "adc_temperature": nums["adc_temperature"],
            "adc_rh": nums["adc_rh"],
            "uptime_s": uptime,
        },
    )


def _printable(b: bytes) -> bool:
    return all(0x20 <= c < 0x7F for c in b)


def _classify(seg: bytes) -> list[Item]:
    """Items of one segment: a line with its end, or text ending in a prompt."""
    prompt = PROMPT.search(seg)
    if prompt and prompt.end() == len(seg):
        head = _classify(seg[: prompt.start()]) if prompt.start() else []
        text = prompt.group().decode().rstrip()
        return [*head, Reply("prompt", {"text": text}, seg[prompt.start() :])]
    seg = seg.lstrip(b"\r\n")  # blank lines and the CR LF before prompts carry nothing
    line = seg.rstrip(b"\r\n")
    if not line:
        return []
    if b"," in line:
        first = _parse_measurement(line, seg)
        if isinstance(first, Measurement):
            return [first]
        for i in range(1, len(line) - 1):  # junk before the line: first valid suffix wins
            if 0x30 <= line[i] <= 0x39:
                m = _parse_measurement(line[i:], seg[i:])
                if isinstance(m, Measurement):
                    return [Rejected("no_frame", seg[:i]), m]
        return [first]
    text = line.decode("latin-1")
    if _FIRMWARE.fullmatch(line):
        return [Reply("firmware", {"firmware": text}, seg)]
    if (kv := _EEPROM.fullmatch(line)) is not None:
        key, value = kv.group(1).decode().strip(), kv.group(2).decode().strip()
        return [Reply("eeprom", {"key": key, "value": value}, seg)]
    if _printable(line):
        return [Reply("message", {"text": text.strip()}, seg)]
    return [Rejected("no_frame", seg)]


class Framer:
    """Stream parser for DGS-NO2 output; never raises.

    Cuts the stream into segments at each line feed or after a prompt, then classifies each.
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
            nl = buf.find(b"\n", 0, LINE_CAP)
            prompt = PROMPT.search(buf, 0, LINE_CAP)
            ends = [e for e in (nl + 1 if nl >= 0 else 0, prompt.end() if prompt else 0) if e]
            if not ends:
                if len(buf) < LINE_CAP:
                    break
                out.append(self._count(Rejected("bad_length", bytes(buf[:LINE_DROP]), "no EOL")))
                del buf[:LINE_DROP]
                continue
            end = min(ends)
            seg = bytes(buf[:end])
            del buf[:end]
            out.extend(self._count(item) for item in _classify(seg))
        return out

    def flush(self) -> list[Item]:
        out = self.feed(b"")
        rest, self._buf = bytes(self._buf), bytearray()
        if rest.strip(b"\r"):
            out.append(self._count(Rejected("truncated", rest)))
        return out

    def _count(self, item: Item) -> Item:
        if isinstance(item, Rejected):
            self.counts[item.category] += 1
        else:
            self.counts["measurement" if isinstance(item, Measurement) else "reply"] += 1
        return item
