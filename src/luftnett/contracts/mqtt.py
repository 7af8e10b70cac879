"""The MQTT contract: topic layout, payload schema, QoS. Edge and collector both import this.

Topics (``<root>`` defaults to ``luftnett``)::

    <root>/v1/<device_id>/readings   QoS 1, not retained: a ReadingsPayload (a batch of readings)
    <root>/v1/<device_id>/status     QoS 1, retained: a StatusPayload; the last will says "offline"
    <root>/v1/<device_id>/stored     QoS 1, retained, published by the collector side: a
                                     StoredPayload, the seqs of the device committed to the
                                     database (end-to-end acknowledgement, docs/reliability.md)

The ``v1`` in the topic is the topic layout version; ``schema_version`` inside a payload is the
payload version. Collectors accept every payload version they know and quarantine the rest.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.errors import PayloadError

__all__ = [
    "DEVICE_ID_PATTERN",
    "MAX_BATCH",
    "QOS",
    "SCHEMA_VERSION",
    "TOPIC_VERSION",
    "Reading",
    "ReadingsPayload",
    "SensorHealth",
    "SensorInfo",
    "StatusPayload",
    "StoredPayload",
    "decode_readings",
    "encode",
    "parse_topic",
    "readings_subscription",
    "readings_topic",
    "status_topic",
    "stored_topic",
]

SCHEMA_VERSION: Final = 1
TOPIC_VERSION = "v1"
QOS = 1
MAX_BATCH = 1000
MAX_PAYLOAD_BYTES = 1_000_000
MAX_STORED_RANGES = 1000  # a StoredPayload lists at most this many (the newest) seq ranges
DEVICE_ID_PATTERN = r"^[a-z0-9-]{3,40}$"

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
_KNOWN_QUANTITIES = frozenset(QUANTITIES)
_KNOWN_FLAGS = frozenset(f.lower() for f in ReadingFlag.__members__)


def readings_topic(root: str, device_id: str) -> str:
    return f"{root}/{TOPIC_VERSION}/{device_id}/readings"


def status_topic(root: str, device_id: str) -> str:
    return f"{root}/{TOPIC_VERSION}/{device_id}/status"


def stored_topic(root: str, device_id: str) -> str:
    return f"{root}/{TOPIC_VERSION}/{device_id}/stored"


def readings_subscription(root: str, shared_group: str | None = None) -> str:
    """The collector's subscription; with a group, an MQTT v5 shared subscription."""
    topic = f"{root}/{TOPIC_VERSION}/+/readings"
    return f"$share/{shared_group}/{topic}" if shared_group else topic


def parse_topic(root: str, topic: str) -> tuple[str, str] | None:
    """``(device_id, kind)`` of a topic in our layout, or None."""
    parts = topic.split("/")
    head = root.split("/")
    if len(parts) != len(head) + 3 or parts[: len(head)] != head:
        return None
    if parts[len(head)] != TOPIC_VERSION:
        return None
    return parts[len(head) + 1], parts[len(head) + 2]


class SensorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = Field(pattern=r"^[a-z0-9-]{2,20}$", description="driver name, e.g. sds011")
    serial: str | None = Field(default=None, max_length=64, description="sensor's own id")


class Reading(BaseModel):
    """One averaged reading: the mean of the frames received in one window."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int = Field(ge=0, lt=2**63, description="per-device, strictly increasing, never reused")
    ts: AwareDatetime = Field(description="end of the averaging window, device clock, UTC")
    window_s: float = Field(gt=0, le=86_400, description="averaging window, seconds")
    n_samples: int = Field(ge=0, le=1_000_000, description="frames averaged into this reading")
    values: dict[str, FiniteFloat] = Field(
        description="quantity name (see units registry) -> value"
    )
    flags: list[str] = Field(default_factory=list, description="edge-raised flag names")
    # optional additions (schema_version stays 1; the collector keeps the statistics in `extra`)
    sensor: SensorInfo | None = Field(
        default=None, description="the sensor of this reading when a device has several"
    )
    n: dict[str, int] | None = Field(default=None, description="quantity -> frames averaged")
    min: dict[str, FiniteFloat] | None = Field(
        default=None, description="quantity -> window minimum"
    )
    max: dict[str, FiniteFloat] | None = Field(
        default=None, description="quantity -> window maximum"
    )
    n_warmup: int | None = Field(
        default=None, ge=0, description="frames left out of the mean as warm-up"
    )

    @model_validator(mode="after")
    def _known_names(self) -> Reading:
        # one set difference per reading (the hot path of the collector), not a call per value
        unknown = self.values.keys() - _KNOWN_QUANTITIES
        for stat in (self.min, self.max, self.n):
            if stat:
                unknown |= stat.keys() - _KNOWN_QUANTITIES
        if unknown:
            raise ValueError(f"unknown quantity {sorted(unknown)[0]!r}")
        if self.flags and (bad := set(self.flags) - _KNOWN_FLAGS):
            raise ValueError(f"unknown flag {sorted(bad)[0]!r}")
        return self


class ReadingsPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    agent_version: str = Field(max_length=40)
    sensor: SensorInfo
    readings: list[Reading] = Field(min_length=1, max_length=MAX_BATCH)


class SensorHealth(BaseModel):
    """One sensor of a device, as its agent sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = Field(description="driver name")
    port: str = Field(description="serial device")
    frames: int = Field(ge=0, description="data frames decoded since the agent started")
    errors: dict[str, int] = Field(
        default_factory=dict, description="error category (SENSORS.md §6) -> count since start"
    )
    awake: bool | None = Field(default=None, description="false while duty-cycled asleep")


class StatusPayload(BaseModel):
    """Retained device status. Health fields are optional (absent in the last will)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    state: Literal["online", "offline"]
    ts: AwareDatetime | None = None
    agent_version: str = Field(default="", max_length=40)
    uptime_s: float | None = Field(default=None, ge=0, description="seconds since agent start")
    outbox_depth: int | None = Field(
        default=None,
        ge=0,
        description="readings in the outbox: not yet acked by the broker, "
        "or (end-to-end acknowledgement) not yet confirmed stored",
    )
    oldest_unsent_age_s: float | None = Field(
        default=None, ge=0, description="age of the oldest reading in the outbox, seconds"
    )
    readings_shed: int | None = Field(
        default=None, ge=0, description="readings dropped by the outbox bound, ever (on disk)"
    )
    last_seq: int | None = Field(default=None, ge=-1, description="newest seq assigned")
    clock_synced: bool | None = Field(
        default=None, description="false: readings carry clock_suspect (see docs/edge.md)"
    )
    link_quality_pct: float | None = Field(
        default=None, ge=0, le=100, description="radio link quality where the modem reports it"
    )
    sensors: dict[str, SensorHealth] | None = Field(
        default=None, description="sensor name -> health"
    )


class StoredPayload(BaseModel):
    """Retained, per device: which of its seqs are committed to the database.

    ``stored`` holds half-open ``[first, end)`` ranges in ascending order, the newest
    :data:`MAX_STORED_RANGES` of them; ``complete`` is false when older ranges were left out.
    An edge agent forgets a reading only once its seq lies in one of these ranges.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    ts: AwareDatetime = Field(description="when the database was read")
    stored: list[tuple[int, int]] = Field(max_length=MAX_STORED_RANGES)
    complete: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> StoredPayload:
        last = None
        for lo, hi in self.stored:
            if not 0 <= lo < hi or (last is not None and lo < last):
                raise ValueError("stored ranges must be [first, end) with first < end, ascending")
            last = hi
        return self


def encode(payload: BaseModel) -> bytes:
    return payload.model_dump_json(exclude_none=True).encode()


def decode_readings(data: bytes, topic_device: str | None = None) -> ReadingsPayload:
    """Parse and validate a readings payload; raise :class:`PayloadError` with a reason code.

    Reason codes: ``too_large``, ``not_json``, ``schema_version``, ``invalid``,
    ``device_mismatch``.
    """
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError("too_large", f"payload of {len(data)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        payload = ReadingsPayload.model_validate_json(data)  # JSON parsed and checked in Rust
    except ValidationError as exc:
        raise _payload_error(exc) from exc
    if topic_device is not None and payload.device_id != topic_device:
        raise PayloadError(
            "device_mismatch",
            f"payload device_id {payload.device_id!r} published on topic of {topic_device!r}",
        )
    return payload


def _payload_error(exc: ValidationError) -> PayloadError:
    """Map pydantic's errors onto our reason codes."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] in ("json_invalid", "json_type"):
        return PayloadError("not_json", f"payload is not JSON: {first['msg']}")
    for e in errors:
        if e["loc"][:1] == ("schema_version",):
            shown = "missing" if e["type"] == "missing" else repr(e.get("input"))
            return PayloadError(
                "schema_version",
                f"schema_version {shown} not supported (known: {SCHEMA_VERSION})",
            )
    where = ".".join(str(x) for x in first["loc"]) or "payload"
    return PayloadError("invalid", f"{where}: {first['msg']}")
