"""What a framer yields, and the helpers every framer shares.

A framer takes any bytes, in any chunking, and yields one item per frame or rejected stretch:
:class:`Measurement` (a data frame), :class:`Reply` (an answer to a host command) or
:class:`Rejected` (with an error category from SENSORS.md §6). It never raises on input; it
hunts for the start pattern and, on any failure, advances one byte and tries again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ERROR_CATEGORIES",
    "JUNK_CAP",
    "Framer",
    "Item",
    "Measurement",
    "Rejected",
    "Reply",
    "junk_before",
    "skip_rejected",
]

ERROR_CATEGORIES = (
    "no_frame",
    "truncated",
    "bad_header",
    "bad_tail",
    "bad_length",
    "bad_checksum",
    "bad_escape",
    "bad_field_count",
    "bad_field_value",
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """A framing-valid data frame: values keyed by quantity name (units registry)."""

    values: dict[str, float]
    raw: bytes
    serial: str | None = None
    flags: frozenset[str] = frozenset()
    fields: dict[str, object] = field(default_factory=dict)  # sensor-specific extras


@dataclass(frozen=True, slots=True)
class Reply:
    """A sensor's answer to a host command."""

    command: str
    fields: dict[str, object]
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    category: str
    raw: bytes
    detail: str = ""


Item = Measurement | Reply | Rejected


class Framer(Protocol):
    counts: Counter[str]

    def feed(self, data: bytes) -> list[Item]:
        """Consume bytes; return the items completed by them."""
        ...

    def flush(self) -> list[Item]:
        """End of stream: report what is left in the buffer as truncated."""
        ...


#: junk without a start byte is reported in pieces of at most this many bytes, so a framer's
#: output does not depend on how the stream was chunked
JUNK_CAP = 64


def junk_before(buf: bytearray, start: int) -> int | None:
    """How many bytes before the next ``start`` byte to report as ``no_frame``.

    0 when the buffer begins with a start byte; None when it holds fewer than :data:`JUNK_CAP`
    bytes and none of them is a start byte (wait for more).
    """
    at = buf.find(start, 0, JUNK_CAP)
    if at == 0:
        return 0
    if at < 0:
        return None if len(buf) < JUNK_CAP else JUNK_CAP
    return at


def skip_rejected(buf: bytearray, n: int, start: int) -> int:
    """How many bytes to drop after rejecting the ``n``-byte candidate at the start of
    ``buf``: up to the next ``start`` byte inside it, where a real frame may begin (a start
    byte in the data makes a false candidate), else all ``n``: its bytes were reported once,
    with the candidate, and are not reported again as ``no_frame``."""
    at = buf.find(start, 1, n)
    return n if at < 0 else at
