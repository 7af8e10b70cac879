"""The edge agent: serial ports -> framers -> averagers -> outbox -> MQTT.

Threads: one reader per sensor (pyserial blocks), paho's network loop (``loop_start``) and a
publisher that drains the outbox and publishes the retained status. Callbacks only put into
queues or set events; the publisher does the I/O. A reading leaves the outbox only after the
broker acknowledged the message that carried it (QoS 1) — and, with the end-to-end
acknowledgement (``confirm``, docs/reliability.md), only once the collector side confirms on
``<root>/v1/<device>/stored`` that the database holds it; acknowledged readings left unconfirmed
for ``confirm_timeout_s`` are sent again. A backlog goes out oldest first, in batches of
``publish_batch``, at most ``replay_rate`` readings/s and ``max_inflight`` messages awaiting
their PUBACK. An outbox that never heard from the collector side (a new SD card) waits up to
``FIRST_CONFIRM_WAIT_S`` after its first connection for the retained confirmation before it
sends (once a process: a collector side without confirmations is not waited for again): if
the database holds seqs of the device's earlier life, its unsent readings are renumbered past
them first (:meth:`Outbox.confirm`) instead of reaching the collector under reused seqs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import ssl
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
import serial
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from luftnett import __version__
from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract
from luftnett.edge import drivers
from luftnett.edge.averaging import Averager
from luftnett.edge.clock import ClockStatus, check_clock
from luftnett.edge.config import EdgeConfig, SensorConfig, duty_commands
from luftnett.edge.framing import Measurement, Rejected
from luftnett.edge.health import HealthReporter
from luftnett.edge.outbox import Outbox

__all__ = ["EdgeAgent", "EdgeConfig", "Pacer", "SensorConfig", "SensorReader"]

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.2
#: an outbox that never heard from the collector side waits this long after connecting for the
#: retained confirmation before it sends: the database may hold seqs it is about to reuse
FIRST_CONFIRM_WAIT_S = 2.0
REOPEN_AFTER_S = 2.0


class Pacer:
    """Token bucket: at most ``rate`` readings/s (0 = unbounded), bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = max(float(burst), rate)
        self._tokens = self.capacity
        self._last = time.monotonic()

    def take(self, n: int) -> float:
        """Take ``n`` tokens and return 0, or return the seconds to wait before asking again."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate


class SensorReader:
    """One sensor on one serial port: reads, frames, averages, hands readings to ``store``."""

    def __init__(self, cfg: SensorConfig, agent: EdgeAgent) -> None:
        self.cfg = cfg
        self.agent = agent
        self.driver = drivers.get(cfg.model)
        assert cfg.window_s is not None  # sensor_list() fills it in
        self.averager = Averager(cfg.window_s, getattr(self.driver, "INTERVAL_S", None))
        interval = getattr(self.driver, "INTERVAL_S", None)
        if cfg.awake_s is not None and interval:
            self.averager.expected_n = (cfg.awake_s - cfg.warmup_s) / interval
        # sensor_list() refused awake_s for a driver without SLEEP_COMMANDS/WAKE_COMMANDS
        self.duty = duty_commands(self.driver) if cfg.awake_s is not None else None
        self.frames = 0
        self.errors: Counter[str] = Counter()
        self.awake: bool | None = None
        self._port: serial.Serial | None = None
        self._next_poll = 0.0

    # -- port ------------------------------------------------------------------------------
    def _send(self, commands: tuple[bytes, ...]) -> None:
        assert self._port is not None
        gap = float(getattr(self.driver, "COMMAND_GAP_S", 0.0))
        for i, cmd in enumerate(commands):
            if i and gap:
                self.agent._stop.wait(gap)
            self._port.write(cmd)

    def _open(self) -> bool:
        try:
            self._port = serial.Serial(self.cfg.port, self.driver.BAUD, timeout=READ_TIMEOUT_S)
            self._send(tuple(self.driver.INIT_COMMANDS))
        except (serial.SerialException, OSError) as exc:
            self.errors["port"] += 1
            log.warning("cannot open serial port", extra={"port": self.cfg.port, "error": str(exc)})
            self._close()
            return False
        self.awake = True
        self.averager.warm_up(time.time() + self.cfg.warmup_s)
        return True

    def _close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None

    # -- loop ------------------------------------------------------------------------------
    def run(self) -> None:
        framer = self.driver.Framer()
        stop = self.agent._stop
        while not stop.is_set():
            if self._port is None and not self._open():
                stop.wait(REOPEN_AFTER_S)
                continue
            assert self._port is not None
            try:
                # whatever has arrived, else wait up to READ_TIMEOUT_S for one byte: frames are
                # timestamped when they arrive, not when a fixed-size read fills up
                data = self._port.read(self._port.in_waiting or 1)
                now = time.time()
                for item in framer.feed(data):
                    if isinstance(item, Measurement):
                        self.frames += 1
                        self.agent._store(self, self.averager.add(item, now))
                    elif isinstance(item, Rejected):
                        self.errors[item.category] += 1
                self.agent._store(self, self.averager.close_due(now))
                self._poll_and_duty(now)
            except (serial.SerialException, OSError) as exc:
                log.warning(
                    "serial port failed; reopening",
                    extra={"port": self.cfg.port, "error": str(exc)},
                )
                self.errors["port"] += 1
                self._close()
        if self._port is not None and self.duty is not None and self.awake:
            with contextlib.suppress(serial.SerialException, OSError):
                self._send(self.duty[0])  # spare the laser while the agent is down
                self.awake = False
        self._close()

    def _poll_and_duty(self, now: float) -> None:
        if self.duty is not None and self.cfg.awake_s is not None:
            wake_at = self.averager.window_end(now) - self.cfg.awake_s
            if self.awake and now < wake_at:
                self._send(self.duty[0])
                self.awake = False
            elif not self.awake and now >= wake_at:
                self._send(self.duty[1])
                self.awake = True
                self.averager.warm_up(now + self.cfg.warmup_s)
        poll = getattr(self.driver, "POLL_COMMAND", None)
        if poll and self.awake and now >= self._next_poll:
            assert self._port is not None
            self._port.write(poll)
            self._next_poll = now + float(getattr(self.driver, "POLL_INTERVAL_S", 1.0))


class EdgeAgent:
    def __init__(self, cfg: EdgeConfig) -> None:
        self.cfg = cfg
        self.sensors = [SensorReader(s, self) for s in cfg.sensor_list()]
        self.outbox = Outbox(
            cfg.outbox_path,
            cfg.outbox_max_rows,
            cfg.outbox_max_bytes,
            reserve_bytes=cfg.outbox_reserve_bytes,
        )
        self.clock: ClockStatus = check_clock(cfg.clock_check)
        if self.clock.suspect:
            log.warning("device clock suspect", extra={"reason": self.clock.reason})
        self.started = time.monotonic()
        self._counts: Counter[str] = Counter()  # publisher thread only
        self._stop = threading.Event()  # stop reading
        self._halt = threading.Event()  # stop publishing now
        self._acks: queue.Queue[int] = queue.Queue()
        self._confirms: queue.Queue[list[tuple[int, int]]] = queue.Queue()
        # wait for the database's confirmation before forgetting a reading (module doc)
        seen = self.outbox.confirmations_seen
        self._e2e = cfg.confirm == "on" or (cfg.confirm == "auto" and seen)
        self._next_requeue = time.monotonic() + min(30.0, cfg.confirm_timeout_s / 4)
        # a new outbox waits once, at its first connection, for the first confirmation
        self._await_confirm = cfg.confirm != "off" and not seen
        self._connected_at = 0.0
        self._connected = threading.Event()
        self._status_due = threading.Event()
        self._inflight: dict[int, list[int]] = {}  # mid -> seqs
        self._inflight_lock = threading.Lock()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._store_lock = threading.Lock()
        self.health = HealthReporter(self)
        self._client = self._make_client()

    @property
    def counts(self) -> Counter[str]:
        """Totals since start: frames, readings, published, rejected_<category>, port_errors."""
        c = Counter(self._counts)
        for s in self.sensors:
            c["frames"] += s.frames
            for cat, n in s.errors.items():
                c["port_errors" if cat == "port" else f"rejected_{cat}"] += n
        return c

    # -- MQTT ------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        target = parse_mqtt_url(self.cfg.mqtt_url)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edge-{self.cfg.device_id}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        user = self.cfg.username or target.username
        if user:
            client.username_pw_set(user, self.cfg.password or target.password)
        if target.tls:
            ca = str(self.cfg.tls_ca_file) if self.cfg.tls_ca_file else None
            client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(self.cfg.max_inflight)
        client.will_set(
            contract.status_topic(self.cfg.topic_root, self.cfg.device_id),
            contract.encode(contract.StatusPayload(device_id=self.cfg.device_id, state="offline")),
            qos=contract.QOS,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self._target = target
        return client

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("broker refused connection", extra={"reason": str(rc)})
            return
        self._connected_at = time.monotonic()
        self._connected.set()
        self._status_due.set()
        if self.cfg.confirm != "off":
            self._client.subscribe(
                contract.stored_topic(self.cfg.topic_root, self.cfg.device_id), qos=contract.QOS
            )
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connected.clear()
        with self._inflight_lock:
            self._inflight.clear()  # re-sent from the outbox after reconnect; collector dedupes
        self._wake.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            stored = contract.StoredPayload.model_validate_json(msg.payload)
        except ValidationError as exc:
            log.warning("bad stored confirmation ignored", extra={"error": str(exc)[:200]})
            return
        if stored.device_id != self.cfg.device_id:
            log.warning("stored confirmation for another device ignored")
            return
        self._confirms.put(list(stored.stored))
        self._wake.set()

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> EdgeAgent:
        self._client.connect_async(self._target.host, self._target.port, self.cfg.keepalive_s)
        self._client.loop_start()
        for s in self.sensors:
            self._spawn(s.run, f"read-{self.cfg.device_id}-{s.cfg.name}")
        self._spawn(self._publish_loop, f"publish-{self.cfg.device_id}")
        return self

    def _spawn(self, fn: Any, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, drain_s: float = 2.0) -> None:
        """Stop reading, try to deliver what is pending for ``drain_s``, then disconnect."""
        self._stop.set()
        if not self._threads:
            self.outbox.close()
            return
        for t in self._threads[:-1]:
            t.join(5)
        deadline = time.monotonic() + drain_s
        while len(self.outbox) and self._connected.is_set() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._halt.set()
        self._wake.set()
        self._threads[-1].join(5)
        if self._connected.is_set():
            info = self._publish_status("offline")
            if info is not None:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(1.0)
        self._client.disconnect()
        self._client.loop_stop()
        self.outbox.close()

    # -- readings --------------------------------------------------------------------------
    def _store(self, sensor: SensorReader, readings: list[dict[str, Any]]) -> None:
        if not readings:
            return
        with self._store_lock:
            status = check_clock(self.cfg.clock_check)
            if status.suspect != self.clock.suspect:
                log.warning(
                    "device clock now suspect" if status.suspect else "device clock synchronised",
                    extra={"reason": status.reason},
                )
            self.clock = status
            for r in readings:
                r["sensor"] = {"model": sensor.cfg.model, "serial": sensor.averager.serial}
                if status.suspect:
                    r["flags"] = sorted({*r["flags"], "clock_suspect"})
                try:
                    contract.Reading.model_validate({**r, "seq": 0})
                except ValidationError as exc:
                    # stored and sent all the same: the collector quarantines it verbatim
                    self._counts["invalid"] += 1
                    log.error("reading breaks the contract", extra={"error": str(exc)[:300]})
                try:
                    self.outbox.append(r)
                except sqlite3.Error:
                    log.exception("outbox write failed; reading lost")
                    self.outbox.count_lost()
                    continue
                self._counts["readings"] += 1
        self._wake.set()

    def _publish_status(self, state: str = "online") -> mqtt.MQTTMessageInfo | None:
        payload = self.health.status(state)
        info = self._client.publish(
            contract.status_topic(self.cfg.topic_root, self.cfg.device_id),
            contract.encode(payload),
            qos=contract.QOS,
            retain=True,
        )
        return info if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def _payload(self, batch: list[tuple[int, str]]) -> bytes:
        """A ReadingsPayload spliced from the outbox's JSON: no decode and re-encode per reading.

        Each reading was checked against the contract when it was stored (:meth:`_store`).
        """
        first = json.loads(batch[0][1]).get("sensor") or {"model": self.sensors[0].cfg.model}
        head = json.dumps(
            {
                "schema_version": contract.SCHEMA_VERSION,
                "device_id": self.cfg.device_id,
                "agent_version": __version__,
                "sensor": {k: v for k, v in first.items() if v is not None},
            },
            separators=(",", ":"),
        )
        return f'{head[:-1]},"readings":[{",".join(r for _, r in batch)}]}}'.encode()

    def _publish_loop(self) -> None:
        last_sent = -1
        pacer = Pacer(self.cfg.replay_rate, self.cfg.publish_batch)
        topic = contract.readings_topic(self.cfg.topic_root, self.cfg.device_id)
        while not self._halt.is_set():
            if self._stop.is_set() and not self._connected.is_set():
                break
            self._wake.wait(0.5)
            self._wake.clear()
            self._drain_confirms()
            self._drain_acks()
            self._maybe_requeue()
            self.health.tick()
            if not self._connected.is_set():
                last_sent = -1
                continue
            if self._status_due.is_set() or self.health.due():
                self._status_due.clear()
                self._publish_status()
            if self._await_confirm:  # a new outbox (module doc)
                if time.monotonic() - self._connected_at < FIRST_CONFIRM_WAIT_S:
                    continue
                self._await_confirm = False  # once: no collector side answered
            with self._inflight_lock:
                if not self._inflight:
                    last_sent = -1  # everything acked or lost: start again from the oldest
                if len(self._inflight) >= self.cfg.max_inflight:
                    continue
            try:
                batch = self.outbox.pending_raw(self.cfg.publish_batch, after=last_sent)
            except sqlite3.Error:  # the outbox heals a damaged file itself; anything else: retry
                log.exception("outbox read failed; trying again")
                self._halt.wait(1.0)
                continue
            if not batch:
                continue
            wait = pacer.take(len(batch))
            if wait:
                self._halt.wait(min(wait, 0.5))
                self._wake.set()
                continue
            data = self._payload(batch)
            with self._inflight_lock:
                info = self._client.publish(topic, data, qos=contract.QOS)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self._inflight[info.mid] = [seq for seq, _ in batch]
                    last_sent = batch[-1][0]
            self._wake.set()  # more may be waiting
        self._drain_acks()

    def _drain_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            with self._inflight_lock:
                seqs = self._inflight.pop(mid, None)
            if seqs:
                try:
                    if self._e2e:
                        self.outbox.mark_acked(seqs)  # kept until the database confirms it
                    else:
                        self.outbox.delete(seqs)
                except sqlite3.Error:
                    # kept: sent again from the outbox later, and the collector drops the copy
                    log.exception("outbox delete failed; acknowledged readings kept")
                    continue
                self._counts["published"] += len(seqs)

    def _drain_confirms(self) -> None:
        while True:
            try:
                ranges = self._confirms.get_nowait()
            except queue.Empty:
                return
            with self._inflight_lock:  # sent, awaiting the PUBACK: keep their seqs
                flying = [seq for seqs in self._inflight.values() for seq in seqs]
            try:
                n = self.outbox.confirm(ranges, flying)
            except sqlite3.Error:
                log.exception("outbox confirm failed; readings kept (confirmed again later)")
                continue
            self._await_confirm = False
            if (moved := self.outbox.renumbered) is not None:
                self.outbox.renumbered = None
                self._counts["renumbered"] += 1
                log.warning(
                    "the database holds seqs this outbox never issued (a new or reset outbox?): "
                    "numbering continues after them, unsent readings renumbered; those already "
                    "sent go to the collector's quarantine as seq_reused",
                    extra={"next_seq_was": moved[0], "renumbered_from": moved[1],
                           "unsent_renumbered": moved[2]},
                )  # fmt: skip
            if not self._e2e and self.cfg.confirm == "auto":
                log.info("collector side confirms stored readings: end-to-end acknowledgement on")
            self._e2e = self.cfg.confirm != "off"
            self._counts["confirmed"] += n

    def _maybe_requeue(self) -> None:
        """Acknowledged by the broker, never confirmed: the broker may have lost them."""
        if not self._e2e or time.monotonic() < self._next_requeue:
            return
        self._next_requeue = time.monotonic() + min(30.0, self.cfg.confirm_timeout_s / 4)
        try:
            n = self.outbox.requeue_unconfirmed(self.cfg.confirm_timeout_s)
        except sqlite3.Error:
            log.exception("outbox requeue failed")
            return
        if n:
            self._counts["resent"] += n
            log.warning(
                "readings acknowledged by the broker but not confirmed stored: sending again",
                extra={"readings": n, "confirm_timeout_s": self.cfg.confirm_timeout_s},
            )
