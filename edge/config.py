"""What one edge agent runs: its device, its sensors, its outbox and its broker.

:class:`EdgeConfig` is the agent's own frozen description, built from :class:`Settings` by
:func:`from_settings` (``luftnett edge run``) or directly (the demo, the tests). A device has one
or more sensors; each is a driver (``model``, see :mod:`luftnett.edge.drivers`) on a serial port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from luftnett.edge import drivers
from luftnett.edge.clock import ClockCheck
from luftnett.edge.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DEFAULT_RESERVE_BYTES
from luftnett.errors import ConfigError

if TYPE_CHECKING:  # the agent's own process never imports the settings (see edge/lean.py)
    from luftnett.settings import Settings

__all__ = ["ConfirmMode", "EdgeConfig", "SensorConfig", "duty_commands", "from_settings"]

#: end-to-end acknowledgement: ``auto`` waits for the database's confirmation once the collector
#: side has sent one (ever, on this outbox); ``on`` always; ``off`` forgets on the broker's PUBACK
ConfirmMode = Literal["auto", "on", "off"]


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """One sensor. ``window_s`` None: the device's window.

    ``warmup_s``: frames in the first seconds after the port opens or the sensor wakes are left
    out of the mean. ``awake_s``: duty cycle — the sensor sleeps and is woken ``awake_s`` before
    each window's end (warm-up included); None keeps it running.
    """

    model: str
    port: str
    window_s: float | None = None
    warmup_s: float = 0.0
    awake_s: float | None = None
    name: str = ""  # unique per device; default "<model>" or "<model>-<n>"


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    device_id: str
    outbox_path: Path
    mqtt_url: str
    sensor_model: str = "sds011"  # the single sensor of a 0.1 config, when ``sensors`` is empty
    serial_port: str = ""
    window_s: float = 60.0
    sensors: tuple[SensorConfig, ...] = ()
    topic_root: str = "luftnett"
    publish_batch: int = 100
    keepalive_s: int = 30
    replay_rate: float = 0.0  # readings/s when catching up; 0 = unbounded
    max_inflight: int = 20  # messages awaiting PUBACK
    outbox_max_rows: int = DEFAULT_MAX_ROWS
    outbox_max_bytes: int = DEFAULT_MAX_BYTES
    outbox_reserve_bytes: int = DEFAULT_RESERVE_BYTES  # released when the disk is full
    clock_check: ClockCheck = "year"
    health_interval_s: float = 60.0
    confirm: ConfirmMode = "auto"
    confirm_timeout_s: float = 600.0  # acknowledged but unconfirmed this long: sent again
    username: str | None = None  # else from the URL
    password: str | None = field(default=None, repr=False)
    tls_ca_file: Path | None = None  # trust this CA (mqtts://); None: the system's

    def sensor_list(self) -> tuple[SensorConfig, ...]:
        """The sensors, named uniquely, validated against the driver registry."""
        base = self.sensors or (SensorConfig(self.sensor_model, self.serial_port),)
        seen: dict[str, int] = {}
        out = []
        for s in base:
            drivers.get(s.model)  # raises ConfigError for an unknown model
            name = s.name or s.model
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                if s.name:
                    raise ConfigError(f"sensor name {s.name!r} is used twice; names must differ")
                name = f"{s.model}-{seen[name]}"
            window = s.window_s or self.window_s
            if s.awake_s is not None and duty_commands(drivers.get(s.model)) is None:
                raise ConfigError(
                    f"sensor {name}: a {s.model} has no sleep the agent uses, so it cannot "
                    "have a duty cycle; remove awake_s (see docs/edge.md)"
                )
            if s.awake_s is not None and not s.warmup_s < s.awake_s < window:
                raise ConfigError(
                    f"sensor {name}: awake_s must lie between warmup_s ({s.warmup_s:g}) and "
                    f"the window ({window:g} s), got {s.awake_s:g}"
                )
            out.append(SensorConfig(s.model, s.port, window, s.warmup_s, s.awake_s, name=name))
        ports = [s.port for s in out]
        if len(set(ports)) != len(ports):
            raise ConfigError(f"two sensors share a serial port: {ports}")
        return tuple(out)


def duty_commands(driver: ModuleType) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | None:
    """``(sleep, wake)`` command sequences of a driver, None if it has no duty cycle.

    A driver that can sleep exports both ``SLEEP_COMMANDS`` and ``WAKE_COMMANDS``.
    """
    sleep = getattr(driver, "SLEEP_COMMANDS", None)
    wake = getattr(driver, "WAKE_COMMANDS", None)
    if sleep is None or wake is None:
        return None
    return tuple(sleep), tuple(wake)


def from_settings(settings: Settings, mqtt_url: str) -> EdgeConfig:
    """The agent's config from the settings (``[edge]`` and ``[[edge.sensors]]``)."""
    e = settings.edge
    sensors = tuple(
        SensorConfig(
            model=s.model,
            port=s.port,
            window_s=s.window_s,
            warmup_s=s.warmup_s,
            awake_s=s.awake_s,
            name=s.name or "",
        )
        for s in e.sensors
    )
    cfg = EdgeConfig(
        device_id=e.device_id,
        outbox_path=e.outbox_path or settings.home / "edge" / f"{e.device_id}.outbox",
        mqtt_url=mqtt_url,
        sensor_model=e.sensor_model,
        serial_port=e.serial_port,
        window_s=e.window_s,
        sensors=sensors,
        topic_root=settings.mqtt.topic_root,
        publish_batch=e.publish_batch,
        keepalive_s=settings.mqtt.keepalive_s,
        replay_rate=e.replay_rate,
        outbox_max_rows=e.outbox_max_rows,
        outbox_max_bytes=e.outbox_max_bytes,
        outbox_reserve_bytes=e.outbox_reserve_bytes,
        clock_check=e.clock_check,
        health_interval_s=e.health_interval_s,
        confirm=e.confirm,
        confirm_timeout_s=e.confirm_timeout_s,
        username=e.mqtt_username or (e.device_id if e.mqtt_password else None),
        password=e.mqtt_password.get_secret_value() if e.mqtt_password else None,
        tls_ca_file=e.tls_ca_file,
    )
    cfg.sensor_list()  # validate now, with a clear message
    return cfg
