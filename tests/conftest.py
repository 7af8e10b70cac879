"""Fixtures: private PostgreSQL and Mosquitto started from the system binaries, once per run.

Set LUFTNETT_TEST_DATABASE_URL (a database the tests may migrate and write to) and/or
LUFTNETT_TEST_MQTT_URL to use running servers instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedMosquitto, EmbeddedPostgres

REPO = Path(__file__).resolve().parent.parent


def _tmp_base(prefix: str) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    return base


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a migrated database, shared by the whole run (tests isolate by device id)."""
    if url := os.environ.get("LUFTNETT_TEST_DATABASE_URL"):
        with psycopg.connect(url) as conn:
            apply_migrations(conn)
        yield url
        return
    base = _tmp_base("luftnett-test-pg-")
    pg = EmbeddedPostgres(base, fast=True)
    try:
        url = pg.start()
    except Exception as exc:
        pytest.fail(
            f"cannot start PostgreSQL ({exc}); install it with `apt-get install postgresql` "
            "or set LUFTNETT_TEST_DATABASE_URL"
        )
    # the server in Oslo time, as a PostgreSQL set up on a server in Norway runs (Debian's
    # initdb takes the system's zone): what luftnett reads back or prints must not depend on it
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET timezone = 'Europe/Oslo'")
        conn.execute("SELECT pg_reload_conf()")
    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    yield url
    pg.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(pg_url: str) -> str:
    """The same server's maintenance database, for creating throw-away databases."""
    return pg_url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture
def fresh_db_url(pg_admin_url: str) -> Iterator[str]:
    """An empty database of its own (not migrated)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    if url := os.environ.get("LUFTNETT_TEST_MQTT_URL"):
        yield url
        return
    base = _tmp_base("luftnett-test-mqtt-")
    mq = EmbeddedMosquitto(base)
    try:
        url = mq.start()
    except Exception as exc:
        pytest.fail(
            f"cannot start mosquitto ({exc}); install it with `apt-get install mosquitto` "
            "or set LUFTNETT_TEST_MQTT_URL"
        )
    yield url
    mq.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def topic_root() -> str:
    """A topic root of this test's own, so tests on one broker do not see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def device_id() -> str:
    return f"dev-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def api_url(pg_url: str) -> Iterator[str]:
    """The real API served by uvicorn on a free loopback port, for the whole run."""
    import threading

    import uvicorn

    from luftnett.api.app import create_app
    from luftnett.servers import free_port
    from luftnett.settings import Settings

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(database_url=pg_url), pg_url),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("API server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def publish(mqtt_url: str) -> Iterator[Callable[[str, bytes], None]]:
    """``publish(topic, payload)``: QoS 1, returns once the broker acknowledged it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from luftnett.connect import parse_mqtt_url

    t = parse_mqtt_url(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(t.host, t.port)
    client.loop_start()

    def _publish(topic: str, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), f"broker did not acknowledge a message on {topic}"

    yield _publish
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def start_collector(pg_url: str, mqtt_url: str, topic_root: str) -> Iterator[Callable[..., Any]]:
    """``start_collector(**settings)``: a collector on this test's database, broker and topic
    root (a client id of its own), started and subscribed; stopped after the test."""
    from luftnett.collector.service import Collector, CollectorConfig

    started: list[Collector] = []

    def _start(**settings: Any) -> Collector:
        settings = {"client_id": f"col-{uuid.uuid4().hex[:8]}", **settings}
        col = Collector(
            CollectorConfig(
                database_url=pg_url, mqtt_url=mqtt_url, topic_root=topic_root, **settings
            )
        ).start()
        started.append(col)
        assert col.wait_ready(10), "collector did not subscribe"
        return col

    yield _start
    for col in started:
        col.stop()


WaitUntil = Callable[..., None]


@pytest.fixture
def wait_until() -> WaitUntil:
    """``wait_until(predicate, timeout=5, what="...")``: poll, and name what never happened
    (``what`` may be a function: called at the timeout, it can say how things stood)."""

    def _wait(
        predicate: Callable[[], object],
        timeout: float = 5.0,
        what: str | Callable[[], str] = "",
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        said = what() if callable(what) else what
        raise AssertionError(f"timed out after {timeout} s waiting for {said or predicate}")

    return _wait


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("512k")``: a real small file system under tmp_path, to fill up (ENOSPC as on a
    full SD card); unmounted afterwards. Skips where mounting is not possible (needs root)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(disk)],
            capture_output=True,
            text=True,
        )
        if res.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=True)
