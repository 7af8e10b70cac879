"""Turn a received MQTT message into reading rows, or a quarantine record with its reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS
from luftnett.errors import PayloadError

__all__ = ["Accepted", "Quarantined", "validate_message"]


@dataclass(frozen=True, slots=True)
class Accepted:
    device: tuple[str, str, str | None, str]  # device_id, model, serial, agent_version
    rows: list[tuple[Any, ...]]  # in READING_COLUMNS order
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Quarantined:
    topic: str
    payload: bytes
    reason: str
    detail: str


def _flag_bits(names: list[str]) -> int:
    bits = 0
    for n in names:
        bits |= ReadingFlag[n.upper()]
    return bits


def payload_rows(p: contract.ReadingsPayload) -> list[tuple[Any, ...]]:
    """Rows in READING_COLUMNS order.

    ``extra`` (JSON) holds the quantities without a column of their own and the optional
    window statistics: ``{"min": {...}, "max": {...}, "n": {...}, "n_warmup": k}``. A reading's
    own ``sensor`` (devices with several sensors) overrides the payload's.
    """
    rows = []
    for r in p.readings:
        extra: dict[str, Any] = {
            k: v for k, v in r.values.items() if k not in VALUE_COLUMNS and k in QUANTITIES
        }
        for key in ("min", "max", "n", "n_warmup"):
            stat = getattr(r, key)
            if stat is not None:
                extra[key] = stat
        sensor = r.sensor or p.sensor
        row = {
            "device_id": p.device_id,
            "seq": r.seq,
            "ts": r.ts,
            "window_s": r.window_s,
            "n_samples": r.n_samples,
            "sensor_model": sensor.model,
            "sensor_serial": sensor.serial,
            **{c: r.values.get(c) for c in VALUE_COLUMNS},
            "extra": json.dumps(extra) if extra else None,
            "flags": _flag_bits(r.flags),
            "schema_version": p.schema_version,
        }
        rows.append(tuple(row[c] for c in READING_COLUMNS))
    return rows


def validate_message(root: str, topic: str, payload: bytes) -> Accepted | Quarantined:
    parsed = contract.parse_topic(root, topic)
    if parsed is None or parsed[1] != "readings":
        return Quarantined(
            topic, payload, "bad_topic", f"topic {topic!r} is not <root>/v1/<device>/readings"
        )
    try:
        p = contract.decode_readings(payload, topic_device=parsed[0])
    except PayloadError as exc:
        return Quarantined(topic, payload, exc.reason, str(exc))
    return Accepted(
        device=(p.device_id, p.sensor.model, p.sensor.serial, p.agent_version),
        rows=payload_rows(p),
        topic=topic,
        payload=payload,
    )
