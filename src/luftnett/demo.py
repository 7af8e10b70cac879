"""``luftnett demo``: a small synthetic fleet through the real path, on embedded defaults.

serial (pty, firmware_sim) -> edge agent (pyserial, outbox) -> Mosquitto -> collector ->
PostgreSQL -> API. Servers not configured by the environment are started privately from the
system binaries and keep their data in ``Settings.home`` for the next run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from luftnett.db.migrate import apply_migrations, timescale_enabled
from luftnett.firmware_sim.city import DemoSite
from luftnett.servers import EmbeddedMosquitto, EmbeddedPostgres, free_port, port_open
from luftnett.settings import DEMO_API_KEY, Settings
from luftnett.signals import sigterm_as_interrupt

if TYPE_CHECKING:
    from luftnett.mapping.synthetic import CitySource

__all__ = ["DemoBox", "city_fleet", "progress_wait", "run_demo"]

Echo = Callable[[str], None]

_SITE_UPSERT = """
INSERT INTO sites (site_id, name, site_type, lat, lon) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (site_id) DO NOTHING
"""
_DEVICE_UPSERT = """
INSERT INTO devices (device_id, sensor_model, sensor_serial) VALUES (%s, 'sds011', %s)
ON CONFLICT (device_id) DO NOTHING
"""
_DEPLOY = """
INSERT INTO deployments (site_id, device_id, valid_from)
SELECT %s, %s, now() WHERE NOT EXISTS (
    SELECT 1 FROM deployments WHERE device_id = %s AND valid_to IS NULL)
"""


PmSource = Callable[[float], tuple[float, float]]
#: (NO2 ppb, temperature °C, RH %) at a time the emulator gives (ignored: now)
No2Source = Callable[[float], tuple[float, float, float]]


@dataclass(frozen=True, slots=True)
class DemoBox:
    """A box of the demo fleet at a site of the synthetic town: an SDS011 for PM and a
    DGS-NO2 module for NO2 (with temperature and RH), each reading the town's true field
    through this box's own low-cost errors."""

    site: DemoSite
    pm: PmSource
    no2: No2Source
    no2_serial: str


def city_fleet(n: int, seed: int = 8) -> list[DemoBox]:
    """``n`` boxes at sites of the synthetic town (firmware_sim.city)."""
    from luftnett.firmware_sim.city import CITY_EPSG, SyntheticCity
    from luftnett.mapping.crs import to_wgs84
    from luftnett.mapping.synthetic import CitySource

    city = SyntheticCity(seed=seed)
    sensors = city.place_sensors(n, reference=0)
    lons, lats = to_wgs84([s.x_m for s in sensors], [s.y_m for s in sensors], CITY_EPSG)
    fleet: list[DemoBox] = []
    for i, (sensor, lon, lat) in enumerate(zip(sensors, lons, lats, strict=True)):
        site = DemoSite(
            site_id=f"site-{i + 1:03d}",
            device_id=f"demo-{i + 1:03d}",
            name=f"{sensor.site_type.replace('-', ' ').title()} site {i + 1}",
            site_type=sensor.site_type,
            lat=float(lat),
            lon=float(lon),
            serial=bytes([0xA0 + (i >> 8) % 16, i % 256]),
        )
        fleet.append(DemoBox(site, *_sources(CitySource(city, sensor)),
                             f"{110816020000 + i + 1:012d}"))  # fmt: skip
    return fleet


def _sources(source: CitySource) -> tuple[PmSource, No2Source]:
    """The box's two emulators' sources: now, whatever time the emulator passes."""

    def pm(_t: float) -> tuple[float, float]:
        return source()

    def no2(_t: float) -> tuple[float, float, float]:
        return source.no2()

    return pm, no2


PROGRESS_EVERY_S = 5.0


def progress_wait(elapsed: float, duration_s: float | None) -> float:
    """Seconds until the demo's next progress line: every ``PROGRESS_EVERY_S``, and the last
    one at the end of ``duration_s`` (at least 0.1 s)."""
    wait = PROGRESS_EVERY_S
    if duration_s is not None:
        wait = min(wait, duration_s - elapsed)
    return max(0.1, wait)


def run_demo(
    settings: Settings, devices: int, duration_s: float | None, window_s: float, echo: Echo
) -> int:
    """Run until ``duration_s`` passes or Ctrl-C; return readings stored during the run."""
    import uvicorn

    from luftnett.api.app import create_app
    from luftnett.collector.service import Collector, CollectorConfig
    from luftnett.edge.agent import EdgeAgent, EdgeConfig
    from luftnett.edge.config import SensorConfig
    from luftnett.firmware_sim.no2_uart import DgsEmulator
    from luftnett.firmware_sim.pty import PtyHost
    from luftnett.firmware_sim.sds011 import Sds011Emulator

    stack = contextlib.ExitStack()
    with sigterm_as_interrupt(), stack:
        # 1. servers
        if settings.database_url is None:
            pg = EmbeddedPostgres(settings.home)
            echo(f"starting private PostgreSQL in {pg.datadir} ...")
            was = pg.running_port() is not None
            db_url = pg.start()
            if not was:
                stack.callback(pg.stop)
        else:
            db_url = settings.database_url.get_secret_value()
        if settings.mqtt_url is None:
            mq = EmbeddedMosquitto(settings.home)
            echo("starting private Mosquitto ...")
            was = mq.running_port() is not None
            mqtt_url = mq.start()
            if not was:
                stack.callback(mq.stop)
        else:
            mqtt_url = settings.mqtt_url
        echo(f"database {db_url}\nbroker   {mqtt_url}")

        # 2. schema and fleet registry
        fleet = city_fleet(devices)
        sites = [box.site for box in fleet]
        with psycopg.connect(db_url) as conn:
            applied = apply_migrations(conn)
            backend = "TimescaleDB" if timescale_enabled(conn) else "plain PostgreSQL"
            echo(f"schema ready ({len(applied)} migrations applied now; storage: {backend})")
            with conn.transaction():
                for s in sites:
                    conn.execute(_SITE_UPSERT, (s.site_id, s.name, s.site_type, s.lat, s.lon))
                    conn.execute(_DEVICE_UPSERT, (s.device_id, s.serial.hex().upper()))
                    conn.execute(_DEPLOY, (s.site_id, s.device_id, s.device_id))
            (before,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)

        # 3. collector
        collector = Collector(
            CollectorConfig(
                database_url=db_url,
                mqtt_url=mqtt_url,
                topic_root=settings.mqtt.topic_root,
                client_id="luftnett-demo-collector",
                flush_interval_s=0.5,
            )
        ).start()
        stack.callback(collector.stop)
        collector.wait_ready(10)
        if settings.collector.confirm_interval_s > 0:  # end-to-end acknowledgement to the edge
            from luftnett.collector.confirm import Confirmer

            confirmer = Confirmer(
                db_url, mqtt_url, settings.mqtt.topic_root, settings.collector.confirm_interval_s
            ).start()
            stack.callback(confirmer.stop)

        # 3b. reprocessing jobs queued by `luftnett calibrate activate`: worked here while the
        # demo runs (its database stops with the demo; a part cut short is redone next time)
        from luftnett.calibration.jobs import run_workers

        stop_jobs = threading.Event()
        jobs_thread = threading.Thread(
            target=run_workers,
            args=(db_url, 1),
            kwargs={"until_idle": False, "stop": stop_jobs, "poll_s": 2.0},
            name="calibrate-jobs",
            daemon=True,
        )
        jobs_thread.start()

        def _stop_jobs() -> None:
            stop_jobs.set()
            jobs_thread.join(30)

        stack.callback(_stop_jobs)

        # 4. simulated boxes: an SDS011 and a DGS-NO2 module each, on ptys, one edge agent
        # per box reading both
        agents = []
        for box in fleet:
            pm_host = PtyHost(Sds011Emulator(box.pm, device_id=box.site.serial)).start()
            stack.callback(pm_host.stop)
            # modules in the field for days: past the first hour a DGS-NO2 flags warming_up
            no2_emu = DgsEmulator(box.no2, serial=box.no2_serial, powered_for_s=3 * 86400)
            no2_host = PtyHost(no2_emu).start()
            stack.callback(no2_host.stop)
            agent = EdgeAgent(
                EdgeConfig(
                    device_id=box.site.device_id,
                    sensors=(
                        SensorConfig("sds011", pm_host.path),
                        SensorConfig("dgs-no2", no2_host.path),
                    ),
                    window_s=window_s,
                    outbox_path=settings.home / "edge" / f"{box.site.device_id}.outbox",
                    mqtt_url=mqtt_url,
                    topic_root=settings.mqtt.topic_root,
                )
            ).start()
            stack.callback(agent.stop)
            agents.append(agent)
        echo(f"{len(sites)} simulated boxes on ptys, each an SDS011 (PM2.5, PM10) and a DGS-NO2 "
             f"module (NO2, temperature, RH), averaging over {window_s:g} s")  # fmt: skip
        echo("calibration reprocessing jobs are worked while the demo runs (`luftnett calibrate "
             "jobs` shows them)")  # fmt: skip

        # 5. API
        port = settings.api.port if not port_open(settings.api.port) else free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, db_url),
                host=settings.api.host,
                port=port,
                log_level="warning",
                lifespan="on",
            )
        )
        api_thread = threading.Thread(target=server.run, name="api", daemon=True)
        api_thread.start()

        def _stop_api() -> None:
            server.should_exit = True
            api_thread.join(10)

        stack.callback(_stop_api)
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline and api_thread.is_alive():
            time.sleep(0.05)
        echo(f"\nopen http://{settings.api.host}:{port}/  (API docs: /docs)  — Ctrl-C stops")
        if any(k.get_secret_value() == DEMO_API_KEY for k in settings.api.api_keys):
            # staff actions (annotations in the site panel) need a key: the demo's is public
            echo(f"API key for staff actions in the demo: {DEMO_API_KEY} (production refuses it)")
        echo("")

        # 6. progress
        start = time.monotonic()
        stored = 0
        try:
            while duration_s is None or time.monotonic() - start < duration_s:
                time.sleep(progress_wait(time.monotonic() - start, duration_s))
                frames = sum(a.counts["frames"] for a in agents)
                stored = collector.counts["stored"]
                echo(
                    f"[{time.monotonic() - start:5.0f} s] frames read {frames}, "
                    f"readings stored {stored}, quarantined {collector.counts['quarantined']}"
                )
        except KeyboardInterrupt:
            echo("\nstopping ...")
        echo(
            f"readings in the database: {before + stored} ({stored} from this run); "
            f"data kept in {settings.home}"
        )
        return stored
    return 0
