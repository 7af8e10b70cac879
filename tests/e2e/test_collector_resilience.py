"""The collector loses nothing: SIGKILL, a database restart, two collectors sharing the load,
and every kind of bad payload. Exact counts each time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from luftnett.collector import qc
from luftnett.collector.processes import orphan_sessions
from luftnett.collector.quarantine import replay
from luftnett.collector.service import Collector, CollectorConfig
from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import ReadingFlag
from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedPostgres

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _payload(
    device_id: str,
    seqs: range | list[int],
    values: Callable[[int], dict[str, float]] = lambda s: {
        "pm25_ugm3": 1.0 + s % 50,
        "pm10_ugm3": 2.0,
    },
) -> bytes:
    return contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011"),
            readings=[
                contract.Reading(
                    seq=s,
                    ts=T0 + timedelta(minutes=s),
                    window_s=60,
                    n_samples=60,
                    values=values(s),
                )
                for s in seqs
            ],
        )
    )


class Publisher:
    """A QoS 1 publisher that waits for every PUBACK."""

    def __init__(self, url: str) -> None:
        t = parse_mqtt_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect(t.host, t.port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def send(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def close(self) -> None:
        for info in self.infos:
            info.wait_for_publish(30)
            assert info.is_published()
        self.client.loop_stop()
        self.client.disconnect()


def _stats(url: str, device_prefix: str) -> tuple[int, int]:
    """(rows, distinct (device, seq)) of devices whose id starts with the prefix."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM readings "
            "WHERE device_id LIKE %s",
            (device_prefix + "%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _one(url: str, query: str, device_prefix: str) -> int:
    """One number over the devices whose id starts with the prefix."""
    with psycopg.connect(url) as conn:
        row = conn.execute(query, (device_prefix + "%",)).fetchone()
    return int(row[0]) if row else 0


def _calibrated(url: str, device_prefix: str) -> int:
    return _one(
        url, "SELECT count(*) FROM calibrated_values WHERE device_id LIKE %s", device_prefix
    )


def _owed(url: str, device_prefix: str) -> int:
    """Readings whose calibrated values are still owed (calibration_pending)."""
    return _one(
        url,
        "SELECT coalesce(sum(seq_hi - seq_lo), 0) FROM calibration_pending WHERE device_id LIKE %s",
        device_prefix,
    )


def _collector_env(pg_url: str, mqtt_url: str, topic_root: str, client_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}
    env.update(
        LUFTNETT_DATABASE_URL=pg_url,
        LUFTNETT_MQTT_URL=mqtt_url,
        LUFTNETT_MQTT__TOPIC_ROOT=topic_root,
        LUFTNETT_COLLECTOR__CLIENT_ID=client_id,
        LUFTNETT_COLLECTOR__BATCH_SIZE="200",
        # debts a killed collector left are settled from the database after 3 x this
        LUFTNETT_COLLECTOR__CALIBRATION_MAX_LAG_S="1",
        LUFTNETT_LOG_LEVEL="INFO",
    )
    return env


def test_sigkill_with_10000_readings_in_flight_loses_nothing(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until
) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}-"
    devices = [f"{prefix}{i}" for i in range(4)]
    client_id = f"col-{uuid.uuid4().hex[:8]}"
    env = _collector_env(pg_url, mqtt_url, topic_root, client_id)
    cmd = [sys.executable, "-m", "luftnett.cli", "collector", "run"]
    # 1. the persistent session: the collector subscribes, then stops cleanly
    first = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(first.stderr or []), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any('"subscribed"' in ln for ln in lines),
            timeout=20,
            what="the collector's subscription",
        )
    finally:
        first.send_signal(signal.SIGTERM)  # systemd's stop; SIGINT is ignored in background jobs
        first.wait(20)
        reader.join(5)
        if first.stderr:
            first.stderr.close()
    # 2. all 10,000 readings wait in the broker for that session (a collector running while
    # they are published can store them all before a kill lands: it is that fast)
    pub = Publisher(mqtt_url)
    for d in devices:  # 4 devices x 500 messages x 5 readings = 10,000 readings
        for m in range(500):
            pub.send(contract.readings_topic(topic_root, d), _payload(d, range(m * 5, m * 5 + 5)))
    pub.close()
    # 3. a collector starts on them and is killed as soon as its first transaction commits
    killed = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            probe = "SELECT EXISTS (SELECT 1 FROM readings WHERE device_id LIKE %s)"
            while conn.execute(probe, (prefix + "%",)).fetchone() != (True,):
                assert time.monotonic() < deadline, "the collector stored nothing"
                time.sleep(0.002)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        killed_at = _stats(pg_url, prefix)[0]
        owed_at_kill = _owed(pg_url, prefix)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    assert killed_at < 10_000, "the kill came too late to prove anything"
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: _stats(pg_url, prefix)[0] >= 10_000,
            timeout=120,
            what="all 10,000 readings after the restart",
        )
        wait_until(
            lambda: _calibrated(pg_url, prefix) >= 20_000 and _owed(pg_url, prefix) == 0,
            timeout=60,
            what="the calibrated values of all of them",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    rows, distinct = _stats(pg_url, prefix)
    assert (rows, distinct) == (10_000, 10_000)
    with psycopg.connect(pg_url) as conn:
        per_device = conn.execute(
            "SELECT device_id, min(seq), max(seq), count(*) FROM readings WHERE device_id LIKE %s "
            "GROUP BY device_id ORDER BY device_id",
            (prefix + "%",),
        ).fetchall()
    assert [tuple(r[1:]) for r in per_device] == [(0, 2499, 2500)] * 4
    # calibration after the commit: what the killed collector owed (its writers settle from
    # memory) is settled by the next one from the stored readings; two values per reading
    assert _calibrated(pg_url, prefix) == 20_000, f"{owed_at_kill} readings owed at the kill"
    assert _owed(pg_url, prefix) == 0


@pytest.fixture
def private_pg() -> Iterator[EmbeddedPostgres]:
    base = Path(tempfile.mkdtemp(prefix="luftnett-test-restart-"))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base, fast=True)
    with psycopg.connect(pg.start()) as conn:
        apply_migrations(conn)
    yield pg
    pg.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_database_restart_mid_stream_loses_nothing(
    private_pg: EmbeddedPostgres, mqtt_url: str, topic_root: str, wait_until
) -> None:
    url = private_pg.url
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    col = Collector(
        CollectorConfig(
            database_url=url,
            mqtt_url=mqtt_url,
            topic_root=topic_root,
            client_id=f"col-{uuid.uuid4().hex[:8]}",
            batch_size=50,
            flush_interval_s=0.1,
        )
    ).start()
    assert col.wait_ready(10)
    pub = Publisher(mqtt_url)
    stop = threading.Event()

    def stream() -> None:  # 3,000 readings over a few seconds, across the restart
        for m in range(600):
            if stop.is_set():
                return
            pub.send(
                contract.readings_topic(topic_root, f"{prefix}a"),
                _payload(f"{prefix}a", range(m * 5, m * 5 + 5)),
            )
            stop.wait(0.005)

    t = threading.Thread(target=stream)
    try:
        t.start()
        wait_until(lambda: _stats(url, prefix)[0] >= 200, timeout=30, what="first readings")
        private_pg.stop()  # the collector now fails, backs off and acknowledges nothing
        stop.wait(0.5)
        # backing off (and reconnecting) is no Python for the validator to give way to
        samples = []
        for _ in range(50):
            samples.append(col._writers_first.running)
            stop.wait(0.02)
        assert samples.count(0) >= 45, samples
        stop.wait(0.5)
        private_pg.start()
        t.join(60)
        pub.close()
        wait_until(lambda: _stats(url, prefix)[0] >= 3000, timeout=90, what="3,000 stored")
    finally:
        stop.set()
        col.stop()
    assert _stats(url, prefix) == (3000, 3000)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_two_collectors_share_the_load_without_loss_or_duplicates(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until, protocol: str
) -> None:
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    group = f"g{uuid.uuid4().hex[:6]}"
    cols = [
        Collector(
            CollectorConfig(
                database_url=pg_url,
                mqtt_url=mqtt_url,
                topic_root=topic_root,
                client_id=f"col-{uuid.uuid4().hex[:8]}",
                shared_group=group,
                mqtt_protocol=protocol,
                batch_size=100,
                flush_interval_s=0.1,
            )
        ).start()
        for _ in range(2)
    ]
    try:
        for c in cols:
            assert c.wait_ready(10)
        pub = Publisher(mqtt_url)
        for d in range(5):
            dev = f"{prefix}{d}"
            for m in range(200):  # 5 devices x 200 messages x 5 readings = 5,000
                pub.send(
                    contract.readings_topic(topic_root, dev), _payload(dev, range(m * 5, m * 5 + 5))
                )
        pub.close()
        wait_until(lambda: _stats(pg_url, prefix)[0] >= 5000, timeout=60, what="5,000 stored")
        wait_until(
            lambda: sum(c.counts["messages"] for c in cols) >= 1000,
            timeout=10,
            what="every message acknowledged",
        )
    finally:
        for c in cols:
            c.stop()
    assert _stats(pg_url, prefix) == (5000, 5000)
    per_collector = [c.counts["stored"] for c in cols]
    assert sum(per_collector) == 5000
    assert all(n > 0 for n in per_collector), f"one collector got nothing: {per_collector}"
    assert sum(c.counts["duplicates"] for c in cols) == 0


class _Service:
    """``luftnett collector run`` as a process, its JSON log lines collected."""

    def __init__(self, env: dict[str, str]) -> None:
        cmd = [sys.executable, "-m", "luftnett.cli", "collector", "run"]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(self.proc.stderr or []), daemon=True
        )
        self._reader.start()

    def logged(self, msg: str) -> list[dict[str, object]]:
        return [json.loads(ln) for ln in list(self.lines) if f'"msg": "{msg}"' in ln]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self._reader.join(5)
        # a worker that outlived the service still holds the pipe, and closing it under the
        # reader would wait for the reader: the test fails on the worker instead
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()
        return code


def _publish_rounds(mqtt_url: str, topic_root: str, prefix: str, messages: range) -> None:
    """Message m of each of 4 devices (5 readings, seq 5m..5m+4), device after device, for
    every m in ``messages``; returns once the broker has acknowledged them all."""
    pub = Publisher(mqtt_url)
    for m in messages:
        for d in range(4):
            dev = f"{prefix}{d}"
            pub.send(
                contract.readings_topic(topic_root, dev), _payload(dev, range(m * 5, m * 5 + 5))
            )
    pub.close()


def _gone(pid: int) -> bool:
    """The process has ended (a zombie that nobody reaps has ended too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_collector_processes_share_one_subscription_and_restart_a_killed_worker(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until
) -> None:
    prefix = f"w{uuid.uuid4().hex[:6]}-"
    client_id = f"col-{uuid.uuid4().hex[:8]}"
    env = _collector_env(pg_url, mqtt_url, topic_root, client_id)
    env["LUFTNETT_COLLECTOR__PROCESSES"] = "2"
    svc = _Service(env)
    worker_pids: list[int] = []
    try:
        wait_until(
            lambda: (
                {r.get("client_id") for r in svc.logged("subscribed")}
                == {client_id, f"{client_id}-w1"}
            ),
            timeout=30,
            what="the service and its worker subscribed",
        )
        (started,) = svc.logged("collector worker started")
        worker_pids.append(int(str(started["pid"])))
        _publish_rounds(mqtt_url, topic_root, prefix, range(250))  # 5,000 readings
        # the worker is killed with whatever it holds unacknowledged; the service starts it
        # again under the same client id, and its session gets those messages again
        os.kill(worker_pids[0], signal.SIGKILL)
        wait_until(
            lambda: len(svc.logged("collector worker started")) == 2,
            timeout=20,
            what="the killed worker started again",
        )
        worker_pids.append(int(str(svc.logged("collector worker started")[1]["pid"])))
        assert worker_pids[1] != worker_pids[0]
        assert svc.logged("collector worker exited; starting it again")[0]["code"] == -9
        _publish_rounds(mqtt_url, topic_root, prefix, range(250, 500))
        wait_until(lambda: _stats(pg_url, prefix)[0] >= 10_000, timeout=90, what="10,000 stored")
    finally:
        code = svc.stop()
    assert code == 0
    assert all(_gone(p) for p in worker_pids), "a worker outlived the service"
    assert _stats(pg_url, prefix) == (10_000, 10_000)
    writers = {str(r["client_id"]) for r in svc.logged("batch written") if r["rows"]}
    assert writers == {client_id, f"{client_id}-w1"}, f"stored only by {writers}"


def _stuck_and_spiky(s: int) -> float:
    """pm2.5 of reading s: 35 equal values in every 60 (stuck), the rest varied with a spike
    every 17th."""
    if s % 60 < 35:
        return 12.0
    return 10.0 + (s * 7) % 13 + (80.0 if s % 17 == 0 else 0.0)


def test_two_processes_give_each_reading_the_flags_of_its_whole_series(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until
) -> None:
    """A device's two-reading messages dealt to the two processes of a service, published a
    few at a time so that stuck runs and spikes straddle batches (and the processes' batches
    interleave): every stored reading ends with the stuck and spike results of the device's
    whole series, as one batch of everything would give them."""
    device_id = f"f{uuid.uuid4().hex[:6]}-0"
    client_id = f"col-{uuid.uuid4().hex[:8]}"
    env = _collector_env(pg_url, mqtt_url, topic_root, client_id)
    env.update(LUFTNETT_COLLECTOR__PROCESSES="2", LUFTNETT_COLLECTOR__FLUSH_INTERVAL_S="0.1")
    topic = contract.readings_topic(topic_root, device_id)

    def message(seqs: range) -> bytes:
        return _payload(
            device_id, seqs, lambda s: {"pm25_ugm3": _stuck_and_spiky(s), "pm10_ugm3": 20.0 + s % 7}
        )

    svc = _Service(env)
    try:
        wait_until(lambda: len(svc.logged("subscribed")) == 2, timeout=30, what="2 subscribed")
        for chunk in range(12):  # 12 x 50 readings, each chunk stored before the next
            pub = Publisher(mqtt_url)
            for m in range(chunk * 25, chunk * 25 + 25):
                pub.send(topic, message(range(2 * m, 2 * m + 2)))
            pub.close()
            n = 50 * (chunk + 1)
            wait_until(lambda n=n: _stats(pg_url, device_id)[0] >= n, timeout=30, what=f"{n}")
    finally:
        assert svc.stop() == 0
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, ts, qc_checks, flags, pm25_ugm3, pm10_ugm3 FROM readings"
            " WHERE device_id = %s ORDER BY seq",
            (device_id,),
        ).fetchall()
    writers = {str(r["client_id"]) for r in svc.logged("batch written") if r["rows"]}
    assert writers == {client_id, f"{client_id}-w1"}, f"stored only by {writers}"
    assert [r[0] for r in rows] == list(range(600))
    checks, flags = qc.batch_quality(
        [], [(device_id, r[0], r[1], 0, r[4], r[5]) for r in rows], ("pm25_ugm3", "pm10_ugm3"),
        datetime.now(UTC),
    )  # fmt: skip
    series = qc.SERIES_BITS
    got = [(r[2] & series, r[3] & series) for r in rows]
    assert got == [
        (c & series, f & series) for c, f in zip(checks.tolist(), flags.tolist(), strict=True)
    ]
    stuck = sum(1 for _, f in got if f & int(ReadingFlag.STUCK))
    spikes = sum(1 for _, f in got if f & int(ReadingFlag.SPIKE))
    # the data exercise both checks: ten runs of 35 (a neighbour may equal 12.0 by chance)
    assert stuck >= 350
    assert spikes == len([s for s in range(600) if s % 60 >= 35 and s % 17 == 0])


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_lowering_processes_retires_the_dropped_workers_session(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until, protocol: str
) -> None:
    prefix = f"o{uuid.uuid4().hex[:6]}-"
    client_id = f"col-{uuid.uuid4().hex[:8]}"
    env = _collector_env(pg_url, mqtt_url, topic_root, client_id)
    env["LUFTNETT_COLLECTOR__MQTT_PROTOCOL"] = protocol
    svc = _Service({**env, "LUFTNETT_COLLECTOR__PROCESSES": "2"})
    try:
        wait_until(lambda: len(svc.logged("subscribed")) == 2, timeout=30, what="2 subscribed")
    finally:
        assert svc.stop() == 0

    # while the service is down both sessions get their turns (Mosquitto queues a shared
    # subscription's messages for a disconnected member too); then it comes back as 1 process
    _publish_rounds(mqtt_url, topic_root, prefix, range(100))  # 2,000 readings
    svc = _Service(env)
    try:
        wait_until(lambda: _stats(pg_url, prefix)[0] >= 2000, timeout=60, what="2,000 stored")
        wait_until(
            lambda: svc.logged("collector worker retired"), timeout=30, what="the retirement"
        )
        (retired,) = svc.logged("session retired")
        assert retired["client_id"] == f"{client_id}-w1"
        assert int(str(retired["messages"])) > 0, "the dropped worker's session held nothing"
        # nothing of these may wait in the dropped worker's session
        _publish_rounds(mqtt_url, topic_root, prefix, range(100, 200))
        wait_until(lambda: _stats(pg_url, prefix)[0] >= 4000, timeout=60, what="4,000 stored")
    finally:
        code = svc.stop()
    assert code == 0
    assert _stats(pg_url, prefix) == (4000, 4000)
    assert orphan_sessions(mqtt_url, client_id, 1, protocol) == []  # type: ignore[arg-type]


def test_collector_retire_stores_a_removed_collectors_queue_and_deletes_its_session(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until
) -> None:
    prefix = f"q{uuid.uuid4().hex[:6]}-"
    group = f"g{uuid.uuid4().hex[:6]}"
    client_id = f"col-{uuid.uuid4().hex[:8]}"
    cfg = CollectorConfig(
        database_url=pg_url,
        mqtt_url=mqtt_url,
        topic_root=topic_root,
        client_id=client_id,
        shared_group=group,
    )
    col = Collector(cfg).start()
    try:
        assert col.wait_ready(10)
    finally:
        col.stop()
    # the collector is gone for good; its session still takes the group's messages
    _publish_rounds(mqtt_url, topic_root, prefix, range(25))  # 4 x 25 messages, 500 readings
    assert _stats(pg_url, prefix) == (0, 0)
    env = _collector_env(pg_url, mqtt_url, topic_root, "unused")
    cmd = [sys.executable, "-m", "luftnett.cli", "collector", "retire", client_id]
    done = subprocess.run([*cmd, "--group", group], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"retired {client_id}: 100 messages (500 readings stored" in done.stdout
    assert _stats(pg_url, prefix) == (500, 500)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"no session for {client_id}" in again.stdout


def test_collector_workers_end_with_a_killed_service(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until
) -> None:
    env = _collector_env(pg_url, mqtt_url, topic_root, f"col-{uuid.uuid4().hex[:8]}")
    env["LUFTNETT_COLLECTOR__PROCESSES"] = "3"
    svc = _Service(env)
    try:
        wait_until(
            lambda: len(svc.logged("subscribed")) == 3, timeout=30, what="three subscriptions"
        )
        pids = [int(str(r["pid"])) for r in svc.logged("collector worker started")]
        assert len(pids) == 2
    finally:
        assert svc.stop(signal.SIGKILL) == -signal.SIGKILL
    # the kernel sends each worker SIGTERM (PR_SET_PDEATHSIG); each stops as a service does
    wait_until(lambda: all(_gone(p) for p in pids), timeout=20, what="the workers ended")


def test_every_kind_of_bad_payload_is_quarantined_and_unknown_devices_replay(
    pg_url: str, mqtt_url: str, topic_root: str, wait_until
) -> None:
    known = f"q{uuid.uuid4().hex[:6]}-known"
    stranger = f"q{uuid.uuid4().hex[:6]}-new"
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (known,)
        )
    col = Collector(
        CollectorConfig(
            database_url=pg_url,
            mqtt_url=mqtt_url,
            topic_root=topic_root,
            client_id=f"col-{uuid.uuid4().hex[:8]}",
            flush_interval_s=0.1,
            register_unknown_devices=False,
        )
    ).start()
    good = json.loads(_payload(known, [1]))
    wrong_type = json.loads(_payload(known, [2]))
    wrong_type["readings"][0]["seq"] = "two"
    bad = {
        "not_json": b"{nope",
        "invalid": json.dumps(wrong_type).encode(),
        "schema_version": json.dumps(dict(good, schema_version=7)).encode(),
        "too_large": b'{"schema_version": 1, "pad": "' + b"x" * 1_100_000 + b'"}',
        "unknown_device": _payload(stranger, [1, 2, 3]),
    }
    try:
        assert col.wait_ready(10)
        pub = Publisher(mqtt_url)
        for reason, raw in bad.items():
            dev = stranger if reason == "unknown_device" else known
            pub.send(contract.readings_topic(topic_root, dev), raw)
        pub.send(contract.readings_topic(topic_root, known), json.dumps(good).encode())
        pub.close()
        topics = [contract.readings_topic(topic_root, d) for d in (known, stranger)]

        def quarantined() -> dict[str, bytes]:
            with psycopg.connect(pg_url) as conn:
                rows = conn.execute(
                    "SELECT reason, payload FROM quarantine WHERE topic = ANY(%s)", (topics,)
                ).fetchall()
            return {r[0]: bytes(r[1]) for r in rows}

        wait_until(lambda: len(quarantined()) == 5, timeout=40, what="5 quarantine records")
        assert quarantined() == bad  # each verbatim, each with its reason
        assert _stats(pg_url, known) == (1, 1)  # the good one went through
        assert col.alive()
    finally:
        col.stop()
    # once the device is registered (here: by replaying deliberately), its readings are stored
    with psycopg.connect(pg_url) as conn:  # the quarantine is shared: select this test's records
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT quarantine_id FROM quarantine WHERE topic = ANY(%s)", (topics,)
            ).fetchall()
        ]
        res = replay(conn, topic_root, reason="unknown_device", ids=ids)
        assert (res.replayed, res.stored) == (1, 3)
        assert _stats(pg_url, stranger) == (3, 3)  # committed as replayed, seen from elsewhere
        again = replay(conn, topic_root, reason="unknown_device", ids=ids)
        assert (again.replayed, again.stored) == (0, 0)  # already replayed: nothing pending
        res_bad = replay(conn, topic_root, reason="schema_version", ids=ids)
        assert res_bad.replayed == 0
        assert list(res_bad.still_rejected.values()) == ["schema_version"]
    assert _stats(pg_url, stranger) == (3, 3)


def test_quarantine_cli_lists_in_utc_and_oslo_and_replays(pg_url: str) -> None:
    """`luftnett quarantine list` and `replay` as staff run them: each record with its reason,
    its time in UTC and Oslo time whatever the database session's time zone (here Oslo's, as on
    a server set up in Norway: PGTZ), a dry run that stores nothing, a replay that stores the
    readings once, and a clear error when no record is chosen."""
    from click.testing import CliRunner

    from luftnett.cli import main
    from luftnett.collector.validate import validate_message
    from luftnett.collector.writer import Writer
    from luftnett.timefmt import LOCAL_TZ

    root = f"q{uuid.uuid4().hex[:6]}"
    stranger = f"{root}-new"
    topic = contract.readings_topic(root, stranger)
    with psycopg.connect(pg_url) as conn:
        Writer(conn, register_unknown=False).write(
            [
                validate_message(root, topic, _payload(stranger, [1, 2, 3])),
                validate_message(root, topic, b"{nope"),
            ]
        )
        rows = conn.execute(
            "SELECT quarantine_id, reason, received_at FROM quarantine WHERE topic = %s "
            "ORDER BY quarantine_id",
            (topic,),
        ).fetchall()
    by_reason = {r[1]: r for r in rows}
    assert sorted(by_reason) == ["not_json", "unknown_device"]
    unknown, _, at = by_reason["unknown_device"]
    broken = by_reason["not_json"][0]
    env = {"LUFTNETT_DATABASE_URL": pg_url, "LUFTNETT_MQTT__TOPIC_ROOT": root,
           "PGTZ": "Europe/Oslo"}  # fmt: skip
    run = CliRunner().invoke

    res = run(main, ["quarantine", "list", "--limit", "100000"], env=env)
    assert res.exit_code == 0, res.output
    (line,) = [x for x in res.output.splitlines() if x.split()[:1] == [str(unknown)]]
    utc, oslo = at.astimezone(UTC), at.astimezone(LOCAL_TZ)
    assert f"{utc:%Y-%m-%d %H:%M:%S}Z ({oslo:%H:%M:%S}" in line, line
    assert "unknown_device" in line
    res = run(main, ["quarantine", "list", "--json", "--limit", "100000"], env=env)
    docs = {d["id"]: d for d in map(json.loads, res.output.splitlines())}
    assert docs[unknown]["received_at"] == utc.isoformat()
    assert docs[unknown]["received_at_local"] == oslo.isoformat()
    assert docs[broken]["payload"] == "{nope"

    res = run(main, ["quarantine", "replay"], env=env)
    assert res.exit_code == 2 and "--id N, --reason R or --all" in res.output
    res = run(main, ["quarantine", "replay", "--id", str(unknown), "--dry-run"], env=env)
    assert res.exit_code == 0, res.output
    assert "would replay 1 payloads" in res.output
    assert _stats(pg_url, stranger) == (0, 0)
    ids = ["--id", str(unknown), "--id", str(broken)]
    res = run(main, ["quarantine", "replay", *ids], env=env)
    assert res.exit_code == 0, res.output
    assert "replayed 1 payloads; 3 new readings stored; 1 still rejected" in res.output
    assert f"#{broken}: not_json" in res.output
    assert _stats(pg_url, stranger) == (3, 3)
    res = run(main, ["quarantine", "replay", *ids], env=env)
    assert "replayed 0 payloads; 0 new readings stored" in res.output
    assert _stats(pg_url, stranger) == (3, 3)
