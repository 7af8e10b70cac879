"""The one settings object of luftnett.

Sources, strongest first: keyword arguments, ``LUFTNETT_``-prefixed environment variables
(nested with ``__``: ``LUFTNETT_COLLECTOR__BATCH_SIZE=1000``), a TOML config file
(``--config FILE`` or ``LUFTNETT_CONFIG``), then the defaults, which run ``luftnett demo``
on a laptop. Build it in the entry point with :func:`load_settings` and pass it down.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from luftnett.errors import ConfigError

__all__ = [
    "DEMO_API_KEY",
    "ApiSettings",
    "CollectorSettings",
    "EdgeSensorSettings",
    "EdgeSettings",
    "MqttSettings",
    "PublishSettings",
    "Settings",
    "default_home",
    "load_settings",
]

DEMO_API_KEY = "luftnett-demo-key"
_CONFIG_FILE: Path | None = None  # set by load_settings only, for the TOML source


def default_home() -> Path:
    """Where embedded servers keep their data: readable by the ``postgres`` user when root."""
    if os.geteuid() == 0:
        return Path("/var/lib/luftnett")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "luftnett"


class MqttSettings(BaseModel):
    topic_root: str = Field(
        default="luftnett",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="first topic level(s); topics are <root>/v1/<device>/...",
    )
    qos: Literal[1, 2] = Field(default=1, description="MQTT QoS of readings and status")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive, seconds")


class EdgeSensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="driver name: sds011, pms5003, sps30, dgs-no2, sht31, ...")
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    name: str | None = Field(default=None, description="unique name; default the model")
    window_s: float | None = Field(
        default=None, gt=0, description="averaging window; default edge.window_s"
    )
    warmup_s: float = Field(
        default=30.0, ge=0, description="frames after start or wake left out of the mean"
    )
    awake_s: float | None = Field(
        default=None,
        gt=0,
        description="duty cycle: wake this long before each window end, sleep otherwise",
    )


class EdgeSettings(BaseModel):
    device_id: str = Field(
        default="demo-001", pattern=r"^[a-z0-9-]{3,40}$", description="this device's id"
    )
    sensor_model: str = Field(default="sds011", description="driver name (see docs/sensors.md)")
    serial_port: str = Field(default="/dev/ttyUSB0", description="serial device of the sensor")
    window_s: float = Field(default=60.0, gt=0, description="averaging window, seconds")
    outbox_path: Path | None = Field(
        default=None, description="SQLite outbox file; default <home>/edge/<device_id>.outbox"
    )
    publish_batch: int = Field(
        default=100, ge=1, le=1000, description="max readings per MQTT message when catching up"
    )
    sensors: list[EdgeSensorSettings] = Field(
        default_factory=list,
        description="[[edge.sensors]] tables; empty: one sensor from sensor_model/serial_port",
    )
    replay_rate: float = Field(
        default=1000.0, ge=0, description="max readings/s sent when catching up; 0 = unbounded"
    )
    outbox_max_rows: int = Field(
        default=500_000, ge=1, description="outbox bound; beyond it the oldest readings are shed"
    )
    outbox_max_bytes: int = Field(
        default=200_000_000, ge=1, description="outbox bound in bytes of reading JSON"
    )
    outbox_reserve_bytes: int = Field(
        default=1 << 20,
        ge=0,
        description="disk kept in reserve beside the outbox, released when the disk is full "
        "so the oldest readings can be shed and the newest kept; 0 = no reserve",
    )
    clock_check: Literal["kernel", "year", "off"] = Field(
        default="kernel",
        description="when readings get clock_suspect: kernel (adjtimex unsynced or year "
        "< 2024), year (year < 2024 only), off",
    )
    health_interval_s: float = Field(
        default=60.0, gt=0, description="retained status (health) published this often, seconds"
    )
    confirm: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="end-to-end acknowledgement: keep each reading after the broker's PUBACK "
        "until the collector side confirms the database holds it (`<root>/v1/<device>/stored`). "
        "auto: once such a confirmation has arrived on this outbox; on: always; off: forget on "
        "PUBACK (a broker crash can then lose acknowledged readings)",
    )
    confirm_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="a reading the broker acknowledged but the database has not confirmed "
        "within this many seconds is sent again (the collector drops copies)",
    )
    mqtt_username: str | None = Field(
        default=None, description="broker user; default the device_id when a password is set"
    )
    mqtt_password: SecretStr | None = Field(
        default=None, description="this device's broker password (`luftnett device add`)"
    )
    tls_ca_file: Path | None = Field(
        default=None, description="CA certificate that signed the broker's (mqtts://)"
    )


class CollectorSettings(BaseModel):
    client_id: str = Field(
        default="luftnett-collector",
        description="MQTT client id; the persistent session is kept under it (unique per process)",
    )
    batch_size: int = Field(
        default=2000,
        ge=1,
        le=50_000,
        description="most messages per transaction (under load; at low load a batch is what "
        "arrived within a few milliseconds). Keep it below the broker's max_inflight_messages "
        "(deploy/: 10000), which caps the messages waiting for their acknowledgement",
    )
    batch_readings: int = Field(
        default=50_000,
        ge=1,
        le=1_000_000,
        description="most readings per transaction (multi-reading messages)",
    )
    flush_interval_s: float = Field(
        default=1.0, gt=0, description="max wait before a partial batch is written, seconds"
    )
    shared_group: str | None = Field(
        default=None, description="subscribe through $share/<group>/... to scale out"
    )
    register_unknown_devices: bool = Field(
        default=True,
        description="false: readings of devices not in `devices` go to quarantine "
        "(reason unknown_device) until the device is registered",
    )
    rollup_interval_s: float = Field(
        default=2.0,
        ge=0,
        description="refresh the rollups of freshly stored device-hours this often, seconds "
        "(0: in every batch's transaction)",
    )
    writers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="writer threads, each with a database connection of its own and a share of "
        "the devices (by a hash of the device id), so that one writer's client work overlaps "
        "the other's transaction on the server",
    )
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="collector processes of this service: `luftnett collector run` starts "
        "processes - 1 workers beside itself, all on one shared subscription "
        "($share/<shared_group or client_id>/...), each with its own writers; one process's "
        "pipeline runs under one interpreter lock, so a machine with cores to spare stores more "
        "with 2 or more (docs/storage.md; not more than cores); quality control gives the same "
        "flags in any order of arrival. Lowered, the next start stores "
        "what the dropped workers' sessions (<client_id>-w<k>) still hold and deletes them",
    )
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        default="3.1.1",
        description="MQTT version of the collector's session (3.1.1 decodes faster in paho; "
        "both keep a persistent session and take $share subscriptions on Mosquitto)",
    )
    calibration: Literal["auto", "deferred", "inline"] = Field(
        default="auto",
        description="when the collector writes calibrated values: inline, in the readings' own "
        "transaction; deferred, in a transaction of its own moments after the readings are "
        "committed and acknowledged (what it owes is recorded with the readings, so a crash "
        "loses nothing): a backlog is stored at the rate of the readings alone; auto: inline "
        "while no other message waits for the writer, deferred while messages wait or waited "
        "within the last second (a burst, a backlog), settled once the writer is idle",
    )
    calibration_max_lag_s: float = Field(
        default=5.0,
        gt=0,
        description="deferred calibration waits while the writers are busy, but never lets "
        "stored readings go uncalibrated longer than this, seconds",
    )
    gc_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="`luftnett collector run` turns Python's automatic garbage collection off "
        "and collects cyclic garbage itself this often, seconds (the automatic one ran ~150 times "
        "a second during a burst, ~10 % of the collector's time: docs/benchmarks.md); 0: "
        "automatic",
    )
    confirm_interval_s: float = Field(
        default=2.0,
        ge=0,
        description="publish each device's stored seq ranges (retained, "
        "`<root>/v1/<device>/stored`) this often when they changed, so edge agents forget a "
        "reading only once the database holds it; 0: off",
    )


class ApiSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="bind address of `luftnett api serve`")
    port: int = Field(default=8000, ge=0, le=65535, description="port of the API")
    read_open: bool = Field(
        default=True, description="read endpoints open without a key (municipal open data)"
    )
    api_keys: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr(DEMO_API_KEY)],
        description="keys accepted for write and admin endpoints",
    )
    maps_dir: Path | None = Field(
        default=None,
        description="directory whose subdirectories are maps written by `luftnett map build "
        "--out`, served at /api/v1/maps and drawn on the dashboard; default <home>/maps",
    )


class PublishSettings(BaseModel):
    """`luftnett publish`: the open-data archive and its DCAT-AP catalogue records."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(
        default=None,
        description="archive location (a path or a pyarrow filesystem URL: file://, s3://, "
        "gs://, ...) used when `luftnett publish` gets no --to (the nightly unit)",
    )
    licence: Literal["NLOD-2.0", "CC-BY-4.0"] = Field(
        default="CC-BY-4.0",
        description="licence of the published data: NLOD-2.0 (Norwegian Licence for Open "
        "Government Data) or CC-BY-4.0; both only ask for attribution (docs/publish.md)",
    )
    publisher_name: str = Field(
        default="luftnett demo municipality", description="publisher (foaf:name) in the catalogue"
    )
    publisher_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{9}$",
        description="publisher's Norwegian organisation number (9 digits; DCAT-AP-NO "
        "identifies publishers by it)",
    )
    contact_name: str = Field(
        default="luftnett data team", description="contact point (vcard:fn) in the catalogue"
    )
    contact_email: str = Field(
        default="data@example.org",
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="contact point e-mail (vcard:hasEmail) in the catalogue",
    )
    base_url: str | None = Field(
        default=None,
        description="public URL where the archive is served (dcat:accessURL / downloadURL of "
        "its files); unset: the archive location itself",
    )
    identifier_base: str = Field(
        default="https://luftnett.example.org/catalogue",
        description="base of the catalogue's URIs (catalogue, datasets, distributions)",
    )
    timezone: str = Field(
        default="Europe/Oslo", description="local time zone of the ts_local columns"
    )
    nightly_at: str = Field(
        default="03:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="UTC time of day (HH:MM) at which `publish --schedule nightly` runs",
    )
    lookback_days: int = Field(
        default=7,
        ge=0,
        le=366,
        description="the nightly run also re-checks this many days before yesterday, so late "
        "readings and recalibrations there are published",
    )
    workers: int = Field(
        default=2, ge=1, le=32, description="parallel database connections of a publish run"
    )
    compression: Literal["zstd", "lz4", "snappy", "gzip", "none"] = Field(
        default="zstd",
        description="Parquet compression codec: zstd is the smallest, lz4 and snappy cost less "
        "CPU for larger files (docs/publish.md has the measured trade-off)",
    )
    keep_versions: int | None = Field(
        default=None,
        ge=1,
        description="dataset versions whose replaced files stay in _history/ (the newest N); "
        "unset keeps every version",
    )


class Settings(BaseSettings):
    """Everything configurable; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="LUFTNETT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    env: Literal["development", "production"] = Field(
        default="development", description="production refuses demo secrets"
    )
    home: Path = Field(
        default_factory=default_home, description="data of the embedded servers and outboxes"
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://... ; unset: the embedded server of `luftnett demo`",
    )
    mqtt_url: str | None = Field(
        default=None, description="mqtt://[user:pass@]host:port ; unset: the embedded broker"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING, ERROR"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "LUFTNETT_DATABASE_URL must start with postgresql:// "
                f"(got {v.get_secret_value()[:20]!r})"
            )
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("mqtt://", "mqtts://")):
            raise ValueError(f"LUFTNETT_MQTT_URL must start with mqtt:// or mqtts:// (got {v!r})")
        return v

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.env == "production":
            if any(k.get_secret_value() == DEMO_API_KEY for k in self.api.api_keys):
                raise ValueError(
                    "LUFTNETT_API__API_KEYS still holds the demo key; set your own keys "
                    "when LUFTNETT_ENV=production"
                )
            if self.database_url is None:
                raise ValueError("LUFTNETT_DATABASE_URL must be set when LUFTNETT_ENV=production")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _CONFIG_FILE is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_CONFIG_FILE))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from a TOML file, the environment and ``overrides``.

    Raises :class:`ConfigError` with a message naming the bad key.
    """
    global _CONFIG_FILE
    path = config_file or (Path(p) if (p := os.environ.get("LUFTNETT_CONFIG")) else None)
    if path is not None:
        try:
            tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist; check --config") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _CONFIG_FILE = Path(path) if path is not None else None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "settings"
        raise ConfigError(f"setting {where}: {first['msg']}") from exc
