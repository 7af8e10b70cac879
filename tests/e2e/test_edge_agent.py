"""The edge agent under stress, through real ptys, a real broker and the real database.

Each story ends with exact counts: the readings the outbox numbered (its ``next_seq``) are the
readings stored, once each, with no gap in ``seq`` — except the ones the outbox bound shed,
which are exactly the oldest and exactly as many as it reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from luftnett.collector.confirm import Confirmer
from luftnett.collector.service import Collector, CollectorConfig
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract
from luftnett.edge.agent import EdgeAgent, EdgeConfig, SensorConfig
from luftnett.edge.drivers import sds011
from luftnett.edge.outbox import Outbox
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sds011 import Sds011Emulator
from luftnett.servers import EmbeddedMosquitto

pytestmark = pytest.mark.e2e


class Emulator(Sds011Emulator):
    """An SDS011 at 20 frames/s that stops after ``limit`` data frames.

    It starts talking once the host has written to it: pyserial flushes the input buffer when
    it opens the port, so frames sent before would be lost to the count.
    """

    def __init__(self, limit: int, interval_s: float = 0.05) -> None:
        self.limit = limit
        self.sleeps = 0
        self.heard = False
        super().__init__(self._value, device_id=b"\xa1\x60", max_frames=limit)
        self.interval_s = interval_s

    def receive(self, data: bytes, now: float) -> bytes:
        self.heard = True
        return super().receive(data, now)

    def _value(self, _t: float) -> tuple[float, float]:
        k = self.frames_sent + 1
        return round(5.0 + 0.1 * k, 1), round(7.0 + 0.1 * k, 1)

    def poll(self, now: float) -> bytes:
        return super().poll(now) if self.heard else b""

    def _execute(self, cmd: bytes, now: float) -> bytes:
        was_asleep = self.asleep
        out = super()._execute(cmd, now)
        if self.asleep and not was_asleep:
            self.sleeps += 1
        return out


class JunkEmulator(Emulator):
    """Writes junk and a corrupted frame copy on the wire before every data frame."""

    JUNK = bytes(range(0x30, 0x50)) + b"\x00\xff\x13"  # no 0xAA: cannot start a false frame

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.bad_checksums = 0

    def frame_at(self, now: float) -> bytes:
        good = super().frame_at(now)
        bad = good[:8] + bytes([(good[8] + 1) & 0xFF]) + good[9:]
        self.bad_checksums += 1
        return self.JUNK + bad + self.JUNK[:7] + good


def _restartable_broker(base: Path) -> EmbeddedMosquitto:
    """A broker on a port below the ephemeral range: while it is down, no outgoing connection
    (a database poll, a reconnect attempt) can borrow its port and stop it coming back."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return EmbeddedMosquitto(base, port=port)
    raise AssertionError("no free port below the ephemeral range")


def _collector(pg_url: str, url: str, root: str, client_id: str = "") -> Collector:
    c = Collector(
        CollectorConfig(
            database_url=pg_url,
            mqtt_url=url,
            topic_root=root,
            client_id=client_id or f"col-{uuid.uuid4().hex[:8]}",
            flush_interval_s=0.1,
        )
    ).start()
    assert c.wait_ready(10), "collector did not subscribe"
    return c


@pytest.fixture
def collector(pg_url: str, mqtt_url: str, topic_root: str) -> Iterator[Collector]:
    c = _collector(pg_url, mqtt_url, topic_root)
    yield c
    c.stop()


def _config(device_id: str, port: str, url: str, root: str, tmp: Path, **kw: object) -> EdgeConfig:
    sensor = SensorConfig(
        "sds011",
        port,
        window_s=float(kw.pop("window_s", 0.5)),  # type: ignore[arg-type]
        warmup_s=float(kw.pop("warmup_s", 0.0)),  # type: ignore[arg-type]
        awake_s=kw.pop("awake_s", None),  # type: ignore[arg-type]
    )
    return EdgeConfig(
        device_id=device_id,
        outbox_path=tmp / "outbox.sqlite",
        mqtt_url=url,
        sensors=(sensor,),
        topic_root=root,
        clock_check="off",
        **kw,  # type: ignore[arg-type]
    )


def _stored(pg_url: str, device_id: str) -> list[tuple[int, int, dict[str, object] | None]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, n_samples, extra FROM readings WHERE device_id = %s ORDER BY seq",
            (device_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _all_frames_averaged(agent: EdgeAgent, emu: Emulator) -> bool:
    s = agent.sensors[0]
    return emu.frames_sent == emu.limit and s.frames == emu.limit and s.averager.open_frames == 0


def _frames_state(agent: EdgeAgent, emu: Emulator) -> Callable[[], str]:
    """What a timeout on :func:`_all_frames_averaged` reports: where the frames stopped."""

    def say() -> str:
        s = agent.sensors[0]
        return (
            f"every frame averaged (emulator heard {emu.heard}, sent {emu.frames_sent} of "
            f"{emu.limit}; agent read {s.frames}, {s.averager.open_frames} in an open window, "
            f"errors {dict(s.errors)}, counts {dict(agent.counts)})"
        )

    return say


def _delivered(pg_url: str, agent: EdgeAgent, device_id: str) -> bool:
    return len(agent.outbox) == 0 and len(_stored(pg_url, device_id)) == agent.outbox.next_seq


def _assert_exact(rows: list[tuple[int, int, dict[str, object] | None]], produced: int) -> None:
    seqs = [r[0] for r in rows]
    assert len(seqs) == len(set(seqs)), "duplicates stored"
    assert seqs == list(range(produced)), "a gap in seq"


def test_broker_stopped_and_restarted_mid_stream_loses_nothing(
    pg_url: str, topic_root: str, device_id: str, tmp_path: Path, wait_until
) -> None:
    broker = _restartable_broker(tmp_path / "broker")
    url = broker.start()
    collector = _collector(pg_url, url, topic_root)
    emu = Emulator(limit=160)
    with PtyHost(emu) as host:
        agent = EdgeAgent(_config(device_id, host.path, url, topic_root, tmp_path)).start()
        try:
            wait_until(lambda: len(_stored(pg_url, device_id)) >= 2, 15, "first readings stored")
            broker.stop()
            wait_until(lambda: not agent._connected.is_set(), 10, "agent to notice the outage")
            wait_until(lambda: len(agent.outbox) >= 3, 15, "a backlog while the broker is down")
            backlog = len(agent.outbox)
            broker.start()  # the same port, the same persistence
            assert broker.url == url
            wait_until(lambda: _all_frames_averaged(agent, emu), 20, _frames_state(agent, emu))
            wait_until(lambda: _delivered(pg_url, agent, device_id), 30, "the backlog stored")
            produced = agent.outbox.next_seq
        finally:
            agent.stop()
            collector.stop()
            broker.stop()
    rows = _stored(pg_url, device_id)
    _assert_exact(rows, produced)
    assert backlog >= 3
    assert sum(r[1] for r in rows) == emu.frames_sent == 160  # every frame, in one reading


@pytest.mark.parametrize("confirm", ["on", "off"])
def test_broker_crash_after_puback_loses_nothing_with_the_end_to_end_ack(
    confirm: str, pg_url: str, topic_root: str, device_id: str, tmp_path: Path, wait_until
) -> None:
    """The broker acknowledges readings, queues them for a collector that is down, and crashes
    before saving them. With ``confirm = "on"`` the agent still holds them (acknowledged, not
    confirmed stored) and sends them again; with ``"off"`` (the control) they are gone."""
    broker = _restartable_broker(tmp_path / "broker")
    url = broker.start()
    session = f"col-{uuid.uuid4().hex[:8]}"
    _collector(pg_url, url, topic_root, session).stop()  # its session queues what comes now
    confirmer = Confirmer(pg_url, url, topic_root, interval_s=0.2).start()
    emu = Emulator(limit=60)
    cfg = _config(
        device_id,
        "",
        url,
        topic_root,
        tmp_path,
        window_s=0.2,
        confirm=confirm,
        confirm_timeout_s=2.0,
    )
    collector = None
    with PtyHost(emu) as host:
        agent = EdgeAgent(
            dataclasses.replace(cfg, sensors=(dataclasses.replace(cfg.sensors[0], port=host.path),))
        ).start()
        try:
            wait_until(lambda: _all_frames_averaged(agent, emu), 20, _frames_state(agent, emu))
            produced = agent.outbox.next_seq
            if confirm == "on":  # all acknowledged by the broker, none confirmed: all kept
                wait_until(
                    lambda: agent.outbox.unconfirmed == len(agent.outbox) == produced,
                    15,
                    "every reading acknowledged by the broker",
                )
            else:
                wait_until(lambda: len(agent.outbox) == 0, 15, "every reading acknowledged")
            assert _stored(pg_url, device_id) == []  # nothing reached the database yet
            # the crash: no SIGTERM (which saves), and no autosave since the readings came
            broker.kill(forget_unsaved=True)
            assert broker.start() == url
            collector = _collector(pg_url, url, topic_root, session)
            if confirm == "on":
                wait_until(
                    lambda: _delivered(pg_url, agent, device_id), 30, "the held readings stored"
                )
                assert agent.counts["resent"] >= produced
                assert agent.counts["confirmed"] == produced
            else:
                time.sleep(4 * cfg.confirm_timeout_s)  # what the "on" case waits for, and more
        finally:
            agent.stop()
            confirmer.stop()
            if collector is not None:
                collector.stop()
            broker.stop()
    rows = _stored(pg_url, device_id)
    assert produced >= 10
    if confirm == "on":
        _assert_exact(rows, produced)
    else:
        assert rows == [], "the control lost nothing: the crash did not lose the broker's queue"


def _earlier_life(pg_url: str, root: str, device_id: str, n: int) -> None:
    """Seqs 0..n-1 of the device stored a month ago, as its earlier outbox numbered them."""
    t0 = datetime.now(UTC) - timedelta(days=30)
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="earlier",
            sensor=contract.SensorInfo(model="sds011", serial="A1"),
            readings=[
                contract.Reading(
                    seq=s, ts=t0 + timedelta(minutes=s), window_s=60, n_samples=60,
                    values={"pm25_ugm3": 8.0, "pm10_ugm3": 12.0},
                )
                for s in range(n)
            ],
        )
    )  # fmt: skip
    item = validate_message(root, contract.readings_topic(root, device_id), payload)
    assert isinstance(item, Accepted)
    with psycopg.connect(pg_url) as conn:
        assert Writer(conn).write([item]).stored == n


def _reused(pg_url: str, root: str, device_id: str) -> list[tuple[int, int]]:
    """(seq, n_samples) of the device's readings in quarantine as ``seq_reused``."""
    with psycopg.connect(pg_url) as conn:
        payloads = conn.execute(
            "SELECT payload FROM quarantine WHERE reason = 'seq_reused' AND topic = %s",
            (contract.readings_topic(root, device_id),),
        ).fetchall()
    return sorted(
        (r["seq"], r["n_samples"]) for (p,) in payloads for r in json.loads(p)["readings"]
    )


@pytest.mark.parametrize("confirmer_first", [True, False])
def test_a_new_outbox_for_a_known_device_loses_nothing(
    confirmer_first: bool,
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    tmp_path: Path,
    collector: Collector,
    wait_until: Callable[..., None],
) -> None:
    """A box back with a new SD card: the database holds seqs 0-39 of its earlier life and the
    new outbox numbers from 0 again: 10 readings while it had no link, then live ones.

    With the collector side's confirmation there when the agent connects (retained), the
    agent waits for it before sending, moves its numbering past 39 and its unsent readings
    with it: all are stored, none reuses a seq. With the confirmer started only later (the
    agent's wait ran out), what the agent sent under the earlier seqs goes to quarantine as
    ``seq_reused`` (not dropped as copies) until the confirmation moves the numbering. Either
    way every frame ends in exactly one reading, stored or kept, and the earlier life's rows
    stay as they were."""
    _earlier_life(pg_url, topic_root, device_id, 40)
    emu = Emulator(limit=80)
    cfg = _config(device_id, "", mqtt_url, topic_root, tmp_path, window_s=0.2, confirm="on",
                  confirm_timeout_s=600.0)  # fmt: skip
    offline = Outbox(cfg.outbox_path)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for k in range(10):
        offline.append({"ts": (t0 + timedelta(minutes=k)).isoformat(), "window_s": 60.0,
                        "n_samples": 7, "values": {"pm25_ugm3": 9.0, "pm10_ugm3": 14.0},
                        "flags": [], "sensor": {"model": "sds011", "serial": None}})  # fmt: skip
    offline.close()
    confirmer = None
    if confirmer_first:
        confirmer = Confirmer(pg_url, mqtt_url, topic_root, interval_s=0.2).start()
    with PtyHost(emu) as host:
        agent = EdgeAgent(
            dataclasses.replace(cfg, sensors=(dataclasses.replace(cfg.sensors[0], port=host.path),))
        ).start()
        try:
            if confirmer is None:
                wait_until(
                    lambda: len(_reused(pg_url, topic_root, device_id)) >= 10,
                    20,
                    "readings under the earlier life's seqs quarantined",
                )
                confirmer = Confirmer(pg_url, mqtt_url, topic_root, interval_s=0.2).start()
            wait_until(lambda: _all_frames_averaged(agent, emu), 30, _frames_state(agent, emu))
            wait_until(lambda: len(agent.outbox) == 0, 30, "every reading confirmed")
            produced = agent.outbox.next_seq
        finally:
            agent.stop()
            if confirmer is not None:
                confirmer.stop()
    assert agent.counts["renumbered"] == 1
    rows = _stored(pg_url, device_id)
    assert [r[0] for r in rows[:40]] == list(range(40))  # the earlier life, as it was
    assert all(r[2] is None for r in rows[:40])
    new = rows[40:]
    assert [r[0] for r in new] == list(range(40, produced))
    kept = _reused(pg_url, topic_root, device_id)
    if confirmer_first:
        assert kept == []
        assert [r[1] for r in new[:10]] == [7] * 10  # the offline readings, first, renumbered
    else:  # sent before the move: in quarantine under the earlier seqs, each once
        assert [s for s, _ in kept] == list(range(len(kept))) and len(kept) >= 10
    ends = [n for _, n in kept] + [r[1] for r in new]
    assert ends.count(7) == 10  # each offline reading once, stored or kept
    assert sum(ends) == 10 * 7 + emu.frames_sent == 150  # and every frame after them


def test_garbage_on_the_wire_is_counted_and_every_frame_still_arrives(
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until,
) -> None:
    emu = JunkEmulator(limit=60)
    with PtyHost(emu) as host:
        agent = EdgeAgent(_config(device_id, host.path, mqtt_url, topic_root, tmp_path)).start()
        try:
            wait_until(lambda: _all_frames_averaged(agent, emu), 20, _frames_state(agent, emu))
            wait_until(lambda: _delivered(pg_url, agent, device_id), 20, "readings stored")
            produced = agent.outbox.next_seq
        finally:
            agent.stop()
    rows = _stored(pg_url, device_id)
    _assert_exact(rows, produced)
    assert sum(r[1] for r in rows) == 60  # not one frame lost to the junk, none invented
    errors = agent.sensors[0].errors
    assert errors["bad_checksum"] >= emu.bad_checksums == 60
    assert errors["no_frame"] >= 60
    assert agent.counts["rejected_bad_checksum"] == errors["bad_checksum"]


def test_outbox_bound_sheds_exactly_the_oldest_and_reports_the_count(
    pg_url: str, topic_root: str, device_id: str, tmp_path: Path, wait_until
) -> None:
    broker = _restartable_broker(tmp_path / "broker")
    url = broker.start()
    session = f"col-{uuid.uuid4().hex[:8]}"
    _collector(pg_url, url, topic_root, session).stop()  # its persistent session waits for it
    broker.stop()  # a long outage: the agent starts without a broker
    emu = Emulator(limit=60)
    max_rows = 4
    with PtyHost(emu) as host:
        cfg = _config(
            device_id, host.path, url, topic_root, tmp_path, window_s=0.2, outbox_max_rows=max_rows
        )
        agent = EdgeAgent(cfg).start()
        collector = None
        try:
            wait_until(lambda: _all_frames_averaged(agent, emu), 20, _frames_state(agent, emu))
            produced = agent.outbox.next_seq
            shed = agent.outbox.shed_total
            assert shed == produced - max_rows > 5
            assert len(agent.outbox) == max_rows
            broker.start()
            collector = _collector(pg_url, url, topic_root, session)
            wait_until(
                lambda: len(agent.outbox) == 0 and len(_stored(pg_url, device_id)) == max_rows,
                30,
                "the kept readings stored",
            )
            status = _retained_status(url, topic_root, device_id)
        finally:
            agent.stop()
            if collector is not None:
                collector.stop()
            broker.stop()
    seqs = [r[0] for r in _stored(pg_url, device_id)]
    assert seqs == list(range(shed, produced))  # exactly the newest max_rows, no duplicates
    assert status["readings_shed"] == shed
    assert status["last_seq"] == produced - 1
    assert status["state"] == "online"
    assert status["sensors"]["sds011"]["frames"] == 60


def _retained_status(url: str, root: str, device_id: str) -> dict[str, object]:
    """The retained status message, as a new subscriber gets it."""
    import queue

    got: queue.Queue[bytes] = queue.Queue()
    t = parse_mqtt_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"s-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, msg: got.put(msg.payload)
    client.on_connect = lambda c, *_a: c.subscribe(contract.status_topic(root, device_id), 1)
    client.connect(t.host, t.port)
    client.loop_start()
    try:
        while True:
            doc: dict[str, object] = json.loads(got.get(timeout=10))
            if doc.get("outbox_depth") is not None:
                return doc
    finally:
        client.loop_stop()
        client.disconnect()


def test_duty_cycle_sleeps_between_windows_and_leaves_warm_up_out(
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until,
) -> None:
    emu = Emulator(limit=10_000)
    with PtyHost(emu) as host:
        cfg = _config(
            device_id, host.path, mqtt_url, topic_root, tmp_path,
            window_s=1.0, warmup_s=0.2, awake_s=0.5,
        )  # fmt: skip
        agent = EdgeAgent(cfg).start()
        try:
            wait_until(lambda: emu.sleeps >= 3, 15, "three sleeps")
            wait_until(lambda: len(_stored(pg_url, device_id)) >= 3, 15, "three readings")
        finally:
            agent.stop()
    assert agent.sensors[0].duty is not None
    assert agent.sensors[0].duty[0] == (sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x00"),)
    rows = _stored(pg_url, device_id)
    full = rows[1:-1] or rows[1:]  # the first and last windows may be cut by start and stop
    for _seq, n, extra in full:
        assert extra is not None
        # awake 0.5 s of each 1 s window at 20 frames/s: ~4 kept after a 0.2 s warm-up
        assert 1 <= n <= 8, (n, extra)
        assert 1 <= int(extra["n_warmup"]) <= 6, extra  # type: ignore[call-overload]
    assert agent.sensors[0].awake is False  # stop() put it to sleep: the laser is spared
    wait_until(lambda: emu.asleep, 5, "the emulator asleep")


def _outbox_state(path: Path) -> tuple[int, int]:
    """(next_seq, unsent) read from another process's outbox, without writing to it."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (next_seq,) = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        (unsent,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    finally:
        db.close()
    return int(next_seq), int(unsent)


def test_sigkill_mid_publish_then_restart_with_the_same_outbox(
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until,
) -> None:
    emu = Emulator(limit=140)
    outbox = tmp_path / "outbox.sqlite"
    with PtyHost(emu) as host:
        config = tmp_path / "edge.toml"
        config.write_text(
            f'home = "{tmp_path / "home"}"\n'
            f'mqtt_url = "{mqtt_url}"\n'
            f'[mqtt]\ntopic_root = "{topic_root}"\n'
            f'[edge]\ndevice_id = "{device_id}"\noutbox_path = "{outbox}"\n'
            'clock_check = "off"\nreplay_rate = 0\npublish_batch = 2\n'
            f'[[edge.sensors]]\nmodel = "sds011"\nport = "{host.path}"\n'
            "window_s = 0.2\nwarmup_s = 0\n"
        )
        cmd = [sys.executable, "-m", "luftnett.cli", "edge", "run", "--config", str(config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}
        log1, log2 = (tmp_path / "run1.log").open("wb"), (tmp_path / "run2.log").open("wb")
        first = subprocess.Popen(cmd, env=env, stderr=log1)
        try:
            wait_until(lambda: len(_stored(pg_url, device_id)) >= 5, 20, "readings from run 1")
            # `edge run` replaced itself with the lean agent process: same PID, no settings code
            assert b"luftnett.edge.lean" in Path(f"/proc/{first.pid}/cmdline").read_bytes()
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert first.returncode == -signal.SIGKILL
        killed_at = _outbox_state(outbox)[0]
        second = subprocess.Popen(cmd, env=env, stderr=log2)
        try:
            wait_until(lambda: emu.frames_sent == emu.limit, 20, "the emulator to finish")
            wait_until(
                lambda: (
                    _outbox_state(outbox)[1] == 0
                    and len(_stored(pg_url, device_id)) == _outbox_state(outbox)[0] > killed_at
                ),
                30,
                "every numbered reading stored",
            )
        finally:
            second.send_signal(signal.SIGTERM)  # systemd's stop: graceful
            second.wait(20)
            log1.close()
            log2.close()
        assert second.returncode == 0, (tmp_path / "run2.log").read_text()[-2000:]
    produced, unsent = _outbox_state(outbox)
    assert unsent == 0
    _assert_exact(_stored(pg_url, device_id), produced)


def test_edge_check_reports_each_port(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from luftnett.cli import main

    emu = JunkEmulator(limit=1000)
    with PtyHost(emu) as host:
        config = tmp_path / "edge.toml"
        config.write_text(
            f'home = "{tmp_path}"\n[edge]\ndevice_id = "dev-check"\n'
            f'[[edge.sensors]]\nmodel = "sds011"\nport = "{host.path}"\n'
            f'[[edge.sensors]]\nmodel = "sds011"\nport = "{tmp_path / "unplugged"}"\n'
        )
        res = CliRunner().invoke(main, ["edge", "check", "--config", str(config), "--seconds", "1"])
        # the spelling, `luftnett edge --config FILE --check`, runs the same check
        short = CliRunner().invoke(main, ["edge", "--config", str(config), "--check"])
    assert res.exit_code == 1, res.output  # the unplugged one
    assert short.exit_code == 1, short.output
    assert short.output.splitlines()[0].startswith("config ok: device dev-check, 2 sensor(s)")
    assert "cannot open" in short.output
    lines = res.output.splitlines()
    assert lines[0].startswith("config ok: device dev-check, 2 sensor(s)")
    ok = next(line for line in lines if host.path in line)
    assert " ok; " in ok and "bad_checksum=" in ok and "no_frame=" in ok
    assert int(ok.split("; ")[1].split()[0]) >= 5  # frames at 20/s for 1 s
    assert "cannot open" in next(line for line in lines if "unplugged" in line)
    assert lines[-1] == "outbox: not created yet"


@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    """A real 4 MB file system (tmpfs) for the outbox, to fill up."""
    return tmpfs("4m")


def test_full_disk_during_an_outage_keeps_the_newest_and_reports_the_loss(
    pg_url: str, topic_root: str, device_id: str, tmp_path: Path, small_disk: Path, wait_until
) -> None:
    broker = _restartable_broker(tmp_path / "broker")
    url = broker.start()
    session = f"col-{uuid.uuid4().hex[:8]}"
    _collector(pg_url, url, topic_root, session).stop()  # its persistent session waits for it
    broker.stop()  # the link is down while the disk fills up
    emu = Emulator(limit=900, interval_s=0.01)
    with PtyHost(emu) as host:
        cfg = _config(
            device_id,
            host.path,
            url,
            topic_root,
            small_disk,
            window_s=0.02,
            outbox_reserve_bytes=64 * 1024,
        )
        agent = EdgeAgent(cfg).start()
        collector = None
        try:
            reserve = agent.outbox.reserve_path
            wait_until(reserve.exists, 5, "the outbox reserve")
            # something else on the box fills the disk, leaving 40 kB
            st = os.statvfs(small_disk)
            (small_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 40_000))
            s = agent.sensors[0]
            wait_until(
                lambda: (
                    emu.frames_sent >= emu.limit  # 2 frames a tick: it may send one more
                    and s.frames == emu.frames_sent
                    and s.averager.open_frames == 0
                ),
                30,
                "every frame averaged",
            )
            produced, shed = agent.outbox.next_seq, agent.outbox.shed_total
            assert agent.outbox.capped and not reserve.exists()
            assert agent.outbox.lost_total == 0  # there was always something older to shed
            assert shed > 0 and len(agent.outbox) == produced - shed
            broker.start()
            collector = _collector(pg_url, url, topic_root, session)
            wait_until(
                lambda: (
                    len(agent.outbox) == 0 and len(_stored(pg_url, device_id)) == produced - shed
                ),
                30,
                "the kept readings stored",
            )
            status = _retained_status(url, topic_root, device_id)
        finally:
            agent.stop()
            if collector is not None:
                collector.stop()
            broker.stop()
    rows = _stored(pg_url, device_id)
    assert [r[0] for r in rows] == list(range(shed, produced))  # the newest, once each
    assert status["readings_shed"] == shed  # the loss, reported on the status topic
    assert status["last_seq"] == produced - 1
    assert sum(r[1] for r in rows) < emu.frames_sent  # the shed ones are the gap
