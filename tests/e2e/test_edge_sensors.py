"""Every sensor end to end — garbage on the wire, sleep/wake — through real ptys, the real broker
and the real database.

The emulators run at a compressed cadence (20 values/s; the polled SPS30 and DGS-NO2 are polled
that fast too) so that a 1 s window holds a few sleep/wake cycles. A :class:`Recorder` sits
between the agent and each emulator: it parses the host's bytes and the sensor's bytes with the
driver's own framer, counts the measurements it let through (and stops after ``limit`` of them,
so that the final counts are exact), and watches the emulator's sleep state. Each test ends
with exact counts: every measurement the sensor sent is in exactly one stored reading (in its
mean or in its ``n_warmup``), the stored ``seq`` are ``0 .. produced - 1`` with no duplicate and
no gap, and the emulator saw exactly the driver's sleep and wake sequences.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from luftnett.collector.service import Collector, CollectorConfig
from luftnett.contracts.units import ReadingFlag
from luftnett.edge import drivers
from luftnett.edge.agent import EdgeAgent, EdgeConfig, SensorConfig
from luftnett.edge.config import duty_commands
from luftnett.edge.drivers import no2_uart, sps30
from luftnett.edge.framing import Measurement, Rejected, Reply
from luftnett.errors import ConfigError
from luftnett.firmware_sim.faults import Faulty
from luftnett.firmware_sim.no2_uart import DgsEmulator
from luftnett.firmware_sim.pms import PmsEmulator
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sds011 import Sds011Emulator
from luftnett.firmware_sim.sht31 import Sht31Emulator
from luftnett.firmware_sim.sps30 import Sps30Emulator

pytestmark = pytest.mark.e2e

FAST_S = 0.05  # seconds between values, for every emulator here


def _pm(t: float) -> tuple[float, float]:
    return 10.0 + (t * 7) % 5, 20.0 + (t * 3) % 5  # never zero: a zero mean is a warm-up leak


class FastPms(PmsEmulator):
    def __init__(self) -> None:
        super().__init__(_pm, start_delay_s=FAST_S)

    def _interval(self, now: float) -> float:
        return FAST_S


class FastSps30(Sps30Emulator):
    interval_s = FAST_S


class FastSds011(Sds011Emulator):
    interval_s = FAST_S


class Recorder:
    """An emulator wrapper that sees both directions of the wire with the driver's framers."""

    def __init__(self, emulator: Any, model: str, limit: int) -> None:
        self.emu = emulator
        self.driver = drivers.get(model)
        self.limit = limit
        self.heard = bytearray()  # everything the host wrote
        self.measurements = 0  # passed on to the host
        self.zero_frames = 0  # of those, flagged warming_up by the driver (all-zero payload)
        self.replies: list[Reply] = []
        self.rejected: list[Rejected] = []
        self.sleeps = self.wakes = 0
        self.produced = self.shed = -1  # the outbox's next_seq and shed_total, before stop
        self._out = self.driver.Framer()

    @property
    def asleep(self) -> bool:
        return bool(getattr(self.emu, "asleep", False)) or getattr(self.emu, "state", "") in (
            "sleeping",
        )

    @property
    def done(self) -> bool:
        return self.measurements >= self.limit

    def _pass(self, data: bytes) -> bytes:
        # pyserial flushes its input when it opens the port: say nothing before the host spoke
        if not data or not self.heard or self.done:
            return b""
        for item in self._out.feed(data):
            if isinstance(item, Measurement):
                self.measurements += 1
                self.zero_frames += "warming_up" in item.flags
            elif isinstance(item, Reply):
                self.replies.append(item)
            else:
                self.rejected.append(item)
        return data

    def poll(self, now: float) -> bytes:
        return self._pass(self.emu.poll(now))

    def receive(self, data: bytes, now: float) -> bytes:
        self.heard += data
        out = b""
        for i in range(len(data)):  # byte by byte: a sleep and a wake in one read both count
            was_asleep = self.asleep
            out += self.emu.receive(data[i : i + 1], now)
            if self.asleep and not was_asleep:
                self.sleeps += 1
            elif was_asleep and not self.asleep:
                self.wakes += 1
        return self._pass(out)


@pytest.fixture
def collector(pg_url: str, mqtt_url: str, topic_root: str) -> Iterator[Collector]:
    c = Collector(
        CollectorConfig(
            database_url=pg_url,
            mqtt_url=mqtt_url,
            topic_root=topic_root,
            client_id=f"col-{uuid.uuid4().hex[:8]}",
            flush_interval_s=0.1,
        )
    ).start()
    assert c.wait_ready(10), "collector did not subscribe"
    yield c
    c.stop()


def _stored(pg_url: str, device_id: str) -> list[tuple[int, int, dict[str, Any], int]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, n_samples, extra, flags FROM readings WHERE device_id = %s ORDER BY seq",
            (device_id,),
        ).fetchall()
    return [(r[0], r[1], r[2] or {}, r[3]) for r in rows]


def _run(
    rec: Recorder,
    sensor: SensorConfig,
    pg_url: str,
    mqtt_url: str,
    root: str,
    device_id: str,
    tmp: Path,
    wait_until: Any,
    cycles: int,
) -> tuple[EdgeAgent, list[tuple[int, int, dict[str, Any], int]]]:
    with PtyHost(rec) as host:
        cfg = EdgeConfig(
            device_id=device_id,
            outbox_path=tmp / "outbox.sqlite",
            mqtt_url=mqtt_url,
            sensors=(SensorConfig(sensor.model, host.path, *_rest(sensor)),),
            topic_root=root,
            clock_check="off",
        )
        agent = EdgeAgent(cfg).start()
        s = agent.sensors[0]
        try:
            if cycles:
                wait_until(lambda: rec.wakes >= cycles, 20, f"{cycles} wake-ups")
            wait_until(lambda: rec.done, 20, f"{rec.limit} measurements sent")
            wait_until(
                lambda: s.frames == rec.measurements and s.averager.open_frames == 0,
                10,
                "every measurement averaged",
            )
            wait_until(
                lambda: (
                    len(agent.outbox) == 0
                    and len(_stored(pg_url, device_id)) == agent.outbox.next_seq
                ),
                20,
                "every reading stored",
            )
            rec.produced, rec.shed = agent.outbox.next_seq, agent.outbox.shed_total
        finally:
            agent.stop()
        if cycles:
            wait_until(lambda: rec.asleep, 5, "the sensor asleep after stop")
    return agent, _stored(pg_url, device_id)


def _rest(s: SensorConfig) -> tuple[float | None, float, float | None]:
    return s.window_s, s.warmup_s, s.awake_s


def _assert_exact(agent: EdgeAgent, rec: Recorder, rows: list[tuple[int, int, Any, int]]) -> None:
    seqs = [r[0] for r in rows]
    assert len(seqs) == len(set(seqs)), "duplicates stored"
    assert seqs == list(range(rec.produced)), "a gap in seq"
    assert rec.shed == 0
    # every measurement on the wire is in exactly one reading: in its mean or left out as warm-up
    assert sum(n + int(extra.get("n_warmup", 0)) for _, n, extra, _ in rows) == rec.measurements
    assert agent.sensors[0].frames == rec.measurements
    assert not agent.sensors[0].errors, agent.sensors[0].errors  # acks and replies are no errors
    assert not rec.rejected


# (model, emulator, measurements to send, window / warm-up / awake seconds). The agent polls
# an SPS30 at most once per read timeout (0.2 s) whatever POLL_INTERVAL_S says, so it gets a
# longer window here.
SLEEPERS = [
    pytest.param("sds011", lambda: FastSds011(_pm), 45, (1.0, 0.2, 0.6), id="sds011"),
    pytest.param("pms5003", FastPms, 45, (1.0, 0.2, 0.6), id="pms5003"),
    pytest.param("pms7003", FastPms, 45, (1.0, 0.2, 0.6), id="pms7003"),
    pytest.param("sps30", lambda: FastSps30(_pm), 14, (2.0, 0.3, 1.4), id="sps30"),
]


@pytest.mark.parametrize(("model", "make", "limit", "timing"), SLEEPERS)
def test_sleep_wake_cycle_loses_nothing_and_leaves_warm_up_out(
    model: str,
    make: Any,
    limit: int,
    timing: tuple[float, float, float],
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sps30, "POLL_INTERVAL_S", FAST_S)  # poll as fast as it measures here
    rec = Recorder(make(), model, limit)
    sensor = SensorConfig(model, "", *timing)
    agent, rows = _run(
        rec, sensor, pg_url, mqtt_url, topic_root, device_id, tmp_path, wait_until, cycles=3
    )
    _assert_exact(agent, rec, rows)

    # the emulator saw the driver's sequences, in full, once per transition
    sleep, wake = duty_commands(rec.driver) or ((), ())
    assert rec.sleeps >= 3 and rec.wakes >= 3
    heard = bytes(rec.heard)
    assert rec.sleeps in (rec.wakes, rec.wakes + 1)  # stop() puts an awake sensor to sleep
    assert heard.count(b"".join(sleep)) == rec.sleeps
    assert heard.count(b"".join(wake)) == rec.wakes + 1  # + the start-up, same sequence
    assert agent.sensors[0].awake is False

    # warm-up: left out of every mean and counted (n_warmup), or, in a window that held nothing
    # else, reported on its own flagged warming_up; a full awake period has some
    warm = [int(extra.get("n_warmup", 0)) for _, _, extra, _ in rows]
    warm_only = [n for _, n, _, flags in rows if flags & ReadingFlag.WARMING_UP]
    assert sum(warm) + sum(warm_only) >= rec.zero_frames
    assert sum(w > 0 for w in warm) + len(warm_only) >= 2
    for _, n, extra, _ in rows:
        if n and "n_warmup" in extra:  # a mean was formed: no warm-up zero leaked into it
            assert float(extra["min"]["pm25_ugm3"]) >= 10.0, extra

    if model.startswith("pms"):
        acks = [r for r in rec.replies if r.command == "sleep"]
        assert len(acks) >= 3 and all(r.fields == {"state": "sleep"} for r in acks)
        assert rec.zero_frames >= 3  # the first frame after each wake is all zeros
    if model == "sps30":
        states = [(r.command, r.fields.get("state")) for r in rec.replies]
        ok = sps30.STATE_OK
        assert ("stop_measurement", ok) in states and ("sleep", ok) in states
        assert ("wake_up", ok) in states and ("start_measurement", ok) in states
        assert ("wake_up", sps30.STATE_WRONG_STATE) in states  # the start-up wake: awake already
        assert rec.zero_frames >= 3  # the first value after each start is all zeros
        assert heard.count(sps30.WAKE_PULSE + sps30.WAKE) == rec.wakes + 1


NON_SLEEPERS = [
    pytest.param(
        "dgs-no2",
        lambda: DgsEmulator(lambda t: (25.0, 21.0, 45.0)),
        no2_uart.CMD_SLEEP,
        id="dgs-no2",
    ),
    pytest.param("sht31", lambda: Sht31Emulator(lambda t: (21.0, 45.0)), b"P0", id="sht31"),
]


@pytest.mark.parametrize(("model", "make", "sleep_cmd"), NON_SLEEPERS)
def test_a_sensor_without_sleep_is_never_put_to_sleep(
    model: str,
    make: Any,
    sleep_cmd: bytes,
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="has no sleep the agent uses"):
        EdgeAgent(
            EdgeConfig(
                device_id=device_id,
                outbox_path=tmp_path / "refused.sqlite",
                mqtt_url=mqtt_url,
                sensors=(SensorConfig(model, "/dev/null", window_s=1, awake_s=0.5),),
            )
        )
    assert not (tmp_path / "refused.sqlite").exists()  # refused before anything was opened
    monkeypatch.setattr(no2_uart, "POLL_INTERVAL_S", FAST_S)
    emu = make()
    emu.interval_s = FAST_S
    rec = Recorder(emu, model, limit=30)
    sensor = SensorConfig(model, "", window_s=1.0, warmup_s=0.0)
    agent, rows = _run(
        rec, sensor, pg_url, mqtt_url, topic_root, device_id, tmp_path, wait_until, cycles=0
    )
    _assert_exact(agent, rec, rows)
    assert rec.sleeps == rec.wakes == 0
    assert sleep_cmd not in bytes(rec.heard)
    assert agent.sensors[0].duty is None
    assert agent.sensors[0].awake is True
    if model == "dgs-no2":
        assert set(bytes(rec.heard)) == {ord("\r")}  # polls only: never `s`, never `c`


class Garbler(Recorder):
    """A recorder around a :class:`Faulty` sensor that spoils the wire all the time: random
    bytes before every 3rd output and a wrong checksum (DGS: a spoilt field) every 5th."""

    def __init__(self, emulator: Any, model: str, limit: int) -> None:
        super().__init__(Faulty(emulator, model, seed=len(model)), model, limit)
        self.outputs = 0

    def _pass(self, data: bytes) -> bytes:
        if data and self.heard and not self.done:
            self.outputs += 1
            if self.outputs % 3 == 0:
                self.emu.garbage(n=24)
            if self.outputs % 5 == 0:
                self.emu.corrupt(1)
        return super()._pass(data)

    def poll(self, now: float) -> bytes:
        return self._pass(self.emu.poll(now))


def test_garbage_on_every_wire_is_counted_and_every_frame_still_arrives(
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One agent, one sensor of each kind, all at once, garbage and bad checksums on each."""
    monkeypatch.setattr(sps30, "POLL_INTERVAL_S", FAST_S)
    monkeypatch.setattr(no2_uart, "POLL_INTERVAL_S", FAST_S)
    sht = Sht31Emulator(lambda t: (21.0, 45.0))
    sht.interval_s = FAST_S
    recs = {
        "sds011": Garbler(FastSds011(_pm), "sds011", 40),
        "pms5003": Garbler(FastPms(), "pms5003", 40),
        "sps30": Garbler(FastSps30(_pm), "sps30", 15),
        "dgs-no2": Garbler(DgsEmulator(lambda t: (-12.0, 21.0, 45.0)), "dgs-no2", 15),
        "sht31": Garbler(sht, "sht31", 40),
    }
    hosts = {model: PtyHost(rec).start() for model, rec in recs.items()}
    try:
        cfg = EdgeConfig(
            device_id=device_id,
            outbox_path=tmp_path / "outbox.sqlite",
            mqtt_url=mqtt_url,
            sensors=tuple(SensorConfig(m, h.path, window_s=0.5) for m, h in hosts.items()),
            topic_root=topic_root,
            clock_check="off",
        )
        agent = EdgeAgent(cfg).start()
        readers = {s.cfg.model: s for s in agent.sensors}
        try:
            for model, rec in recs.items():
                r = readers[model]
                wait_until(lambda rec=rec: rec.done, 20, f"{model}: {rec.limit} measurements")
                wait_until(
                    lambda r=r, rec=rec: (
                        r.frames == rec.measurements and r.averager.open_frames == 0
                    ),
                    10,
                    f"{model}: every measurement averaged",
                )
            wait_until(
                lambda: (
                    len(agent.outbox) == 0
                    and len(_stored(pg_url, device_id)) == agent.outbox.next_seq
                ),
                20,
                "every reading stored",
            )
            produced = agent.outbox.next_seq
        finally:
            agent.stop()
    finally:
        for h in hosts.values():
            h.stop()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, sensor_model, n_samples, extra FROM readings WHERE device_id = %s "
            "ORDER BY seq",
            (device_id,),
        ).fetchall()
    assert [r[0] for r in rows] == list(range(produced))  # no duplicate, no gap
    for model, rec in recs.items():
        r = readers[model]
        got = sum(
            n + int((extra or {}).get("n_warmup", 0)) for _, m, n, extra in rows if m == model
        )
        assert got == rec.measurements, model  # not one frame lost to the junk, none invented
        # the agent's error counts are exactly what its framer's twin saw on the same bytes
        # (how many no_frame runs the SDS011 framer reports depends on how the bytes arrive)
        seen = Counter(x.category for x in rec.rejected)
        if model == "sds011":
            assert r.errors["no_frame"] > 0 and seen["no_frame"] > 0
            del r.errors["no_frame"], seen["no_frame"]
        assert r.errors == seen, model
        assert sum(r.errors.values()) >= 5, (model, r.errors)
