"""Find the database and the broker: configured ones, else the demo's embedded servers.

``luftnett demo`` keeps its servers' data in ``Settings.home``. While the demo runs, every
other command uses its servers; afterwards, a command that needs the database starts the
embedded PostgreSQL from that data directory for its own duration and stops it again.

:func:`parse_mqtt_url` is all the edge agent's own process needs: the settings and the
embedded servers are imported only by the functions that use them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from luftnett.errors import ConfigError

if TYPE_CHECKING:
    from luftnett.settings import Settings

__all__ = ["MqttTarget", "broker_url", "database_is_transient", "database_url", "parse_mqtt_url"]


def database_is_transient(settings: Settings) -> bool:
    """True when :func:`database_url` would start the demo's embedded PostgreSQL for one
    command only (none is configured and the demo's is not running): it stops when the
    command exits, so nothing may be left to work in the background."""
    if settings.database_url is not None:
        return False
    from luftnett.servers import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.home)
    return pg.exists() and pg.running_port() is None


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    from luftnett.servers import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.home)
    if not pg.exists():
        raise ConfigError(
            "no database configured: set LUFTNETT_DATABASE_URL=postgresql://... "
            f"or run `luftnett demo` first (it keeps its data in {settings.home})"
        )
    was_running = pg.running_port() is not None
    url = pg.start()
    try:
        yield url
    finally:
        if not was_running:
            pg.stop()


@contextlib.contextmanager
def broker_url(settings: Settings) -> Iterator[str]:
    if settings.mqtt_url is not None:
        yield settings.mqtt_url
        return
    from luftnett.servers import EmbeddedMosquitto

    mq = EmbeddedMosquitto(settings.home)
    was_running = mq.running_port() is not None
    if not was_running and not (settings.home / "mosquitto").exists():
        raise ConfigError(
            "no broker configured: set LUFTNETT_MQTT_URL=mqtt://host:port "
            "or run `luftnett demo` first"
        )
    url = mq.start()
    try:
        yield url
    finally:
        if not was_running:
            mq.stop()


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> MqttTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"MQTT URL must look like mqtt://host:1883 (got {url!r})")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
