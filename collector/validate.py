"""Turn a received MQTT message into reading columns, or a quarantine record with its reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from luftnett.collector.columns import Device, ReadingColumns, Readings, as_columns, count
from luftnett.collector.decode import REAL_MAX, fast_columns
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import ReadingFlag
from luftnett.db.schema import READING_COLUMNS, READING_META_COLUMNS, VALUE_COLUMNS
from luftnett.errors import PayloadError

__all__ = ["Accepted", "Quarantined", "validate_message"]


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs a message; never changed
class Accepted:
    device: Device  # device_id, model, serial, agent_version
    readings: Readings
    topic: str
    payload: bytes

    @property
    def count(self) -> int:
        """How many readings the message holds."""
        return count(self.readings)

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """The readings as rows in READING_COLUMNS order (not the hot path)."""
        return as_columns(self.readings).rows(self.device)


@dataclass(frozen=True, slots=True)
class Quarantined:
    topic: str
    payload: bytes
    reason: str
    detail: str


_FLAG_BITS = {f.name.lower(): int(f.value) for f in ReadingFlag if f.name}
_COLUMNS = frozenset(VALUE_COLUMNS)
_STATS = ("min", "max", "n", "n_warmup")
_ROW_ORDER = (*READING_META_COLUMNS, *VALUE_COLUMNS, "extra", "flags", "schema_version")
assert _ROW_ORDER == READING_COLUMNS, "payload_rows builds rows in READING_COLUMNS order"


def payload_rows(p: contract.ReadingsPayload) -> list[tuple[Any, ...]]:
    """Rows in READING_COLUMNS order (the hot path: plain tuples, no per-row dicts).

    ``extra`` (JSON) holds the quantities without a column of their own and the optional
    window statistics: ``{"min": {...}, "max": {...}, "n": {...}, "n_warmup": k}``. A reading's
    own ``sensor`` (devices with several sensors) overrides the payload's.
    """
    rows = []
    version = p.schema_version
    dumps = json.dumps
    for r in p.readings:
        vals = r.values
        extra: dict[str, Any] | None = None
        if vals.keys() - _COLUMNS:
            extra = {k: vals[k] for k in vals.keys() - _COLUMNS}
        if r.min is not None or r.max is not None or r.n is not None or r.n_warmup is not None:
            extra = extra or {}
            for key in _STATS:
                stat = getattr(r, key)
                if stat is not None:
                    extra[key] = stat
        sensor = r.sensor or p.sensor
        flags = 0
        for name in r.flags:
            flags |= _FLAG_BITS[name]
        rows.append(
            (
                p.device_id,
                r.seq,
                r.ts,
                r.window_s,
                r.n_samples,
                sensor.model,
                sensor.serial,
                *map(vals.get, VALUE_COLUMNS),
                dumps(extra) if extra else None,
                flags,
                version,
            )
        )
    return rows


def validate_message(root: str, topic: str, payload: bytes) -> Accepted | Quarantined:
    parsed = contract.parse_topic(root, topic)
    if parsed is None or parsed[1] != "readings":
        return Quarantined(
            topic, payload, "bad_topic", f"topic {topic!r} is not <root>/v1/<device>/readings"
        )
    fast = fast_columns(payload, parsed[0])
    if fast is not None:
        return Accepted(device=fast[0], readings=fast[1], topic=topic, payload=payload)
    try:
        p = contract.decode_readings(payload, topic_device=parsed[0])
    except PayloadError as exc:
        return Quarantined(topic, payload, exc.reason, str(exc))
    for i, r in enumerate(p.readings):
        for name, v in r.values.items():
            if name in _COLUMNS and abs(v) > REAL_MAX:
                return Quarantined(
                    topic,
                    payload,
                    "db_rejected",
                    f"readings.{i}.values.{name}: {v!r} does not fit the column (real, "
                    f"magnitude at most {REAL_MAX:.7g})",
                )
    return Accepted(
        device=(p.device_id, p.sensor.model, p.sensor.serial, p.agent_version),
        readings=ReadingColumns.from_rows(payload_rows(p)),
        topic=topic,
        payload=payload,
    )
