"""The edge agent: serial port -> framer -> averager -> outbox -> MQTT.

Threads: a reader (pyserial blocks), paho's network loop (``loop_start``) and a publisher that
drains the outbox. Callbacks only put into queues; the publisher does the I/O. A reading leaves
the outbox only after the broker acknowledged the message that carried it (QoS 1).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import serial
from paho.mqtt.enums import CallbackAPIVersion

from luftnett import __version__
from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract
from luftnett.edge import drivers
from luftnett.edge.averaging import Averager
from luftnett.edge.framing import Measurement, Rejected
from luftnett.edge.outbox import Outbox

__all__ = ["EdgeAgent", "EdgeConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    device_id: str
    sensor_model: str
    serial_port: str
    window_s: float
    outbox_path: Path
    mqtt_url: str
    topic_root: str = "luftnett"
    publish_batch: int = 100
    keepalive_s: int = 30


class EdgeAgent:
    def __init__(self, cfg: EdgeConfig) -> None:
        self.cfg = cfg
        self.driver = drivers.get(cfg.sensor_model)
        self.outbox = Outbox(cfg.outbox_path)
        self.averager = Averager(cfg.window_s, getattr(self.driver, "INTERVAL_S", None))
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._acks: queue.Queue[int] = queue.Queue()
        self._connected = threading.Event()
        self._inflight: dict[int, list[int]] = {}  # mid -> seqs
        self._inflight_lock = threading.Lock()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client = self._make_client()

    # -- MQTT ------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        target = parse_mqtt_url(self.cfg.mqtt_url)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edge-{self.cfg.device_id}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        status = contract.StatusPayload(device_id=self.cfg.device_id, state="offline")
        client.will_set(
            contract.status_topic(self.cfg.topic_root, self.cfg.device_id),
            contract.encode(status),
            qos=contract.QOS,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(1, 30)
        self._target = target
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("broker refused connection", extra={"reason": str(rc)})
            return
        status = contract.StatusPayload(
            device_id=self.cfg.device_id, state="online", agent_version=__version__
        )
        client.publish(
            contract.status_topic(self.cfg.topic_root, self.cfg.device_id),
            contract.encode(status),
            qos=contract.QOS,
            retain=True,
        )
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connected.clear()
        with self._inflight_lock:
            self._inflight.clear()  # re-sent from the outbox after reconnect; collector dedupes
        self._wake.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._acks.put(mid)

    # -- threads ---------------------------------------------------------------------------
    def start(self) -> EdgeAgent:
        self._client.connect_async(self._target.host, self._target.port, self.cfg.keepalive_s)
        self._client.loop_start()
        for fn in (self._read_loop, self._publish_loop):
            t = threading.Thread(target=fn, name=f"{fn.__name__}-{self.cfg.device_id}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, drain_s: float = 2.0) -> None:
        """Stop reading, try to deliver what is pending for ``drain_s``, then disconnect."""
        self._stop.set()
        deadline = time.monotonic() + drain_s
        while len(self.outbox) and self._connected.is_set() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._wake.set()
        for t in self._threads:
            t.join(5)
        self._client.disconnect()
        self._client.loop_stop()
        self.outbox.close()

    def _open_port(self) -> serial.Serial | None:
        try:
            port = serial.Serial(self.cfg.serial_port, self.driver.BAUD, timeout=0.2)
        except serial.SerialException as exc:
            self.counts["port_errors"] += 1
            log.warning(
                "cannot open serial port", extra={"port": self.cfg.serial_port, "error": str(exc)}
            )
            return None
        for cmd in self.driver.INIT_COMMANDS:
            port.write(cmd)
        return port

    def _read_loop(self) -> None:
        framer = self.driver.Framer()
        port: serial.Serial | None = None
        while not self._stop.is_set():
            if port is None:
                port = self._open_port()
                if port is None:
                    self._stop.wait(2.0)
                    continue
            try:
                data = port.read(256)
            except (serial.SerialException, OSError) as exc:
                log.warning("serial read failed; reopening", extra={"error": str(exc)})
                self.counts["port_errors"] += 1
                port.close()
                port = None
                continue
            now = time.time()
            for item in framer.feed(data):
                if isinstance(item, Measurement):
                    self.counts["frames"] += 1
                    self._store(self.averager.add(item, now))
                elif isinstance(item, Rejected):
                    self.counts[f"rejected_{item.category}"] += 1
            self._store(self.averager.close_due(now))
        if port is not None:
            port.close()

    def _store(self, readings: list[dict[str, Any]]) -> None:
        for r in readings:
            self.outbox.append(r)
            self.counts["readings"] += 1
            self._wake.set()

    def _publish_loop(self) -> None:
        last_sent = -1
        while not (self._stop.is_set() and (not len(self.outbox) or not self._connected.is_set())):
            self._wake.wait(0.5)
            self._wake.clear()
            self._drain_acks()
            if not self._connected.is_set():
                last_sent = -1
                continue
            with self._inflight_lock:
                if not self._inflight:
                    last_sent = -1  # everything acked or lost: start again from the oldest
            batch = self.outbox.pending(self.cfg.publish_batch, after=last_sent)
            if not batch:
                continue
            payload = contract.ReadingsPayload(
                device_id=self.cfg.device_id,
                agent_version=__version__,
                sensor=contract.SensorInfo(
                    model=self.cfg.sensor_model, serial=self.averager.serial
                ),
                readings=[contract.Reading.model_validate(r) for r in batch],
            )
            with self._inflight_lock:
                info = self._client.publish(
                    contract.readings_topic(self.cfg.topic_root, self.cfg.device_id),
                    contract.encode(payload),
                    qos=contract.QOS,
                )
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self._inflight[info.mid] = [r["seq"] for r in batch]
                    last_sent = batch[-1]["seq"]
            if len(batch) == self.cfg.publish_batch:
                self._wake.set()
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
                self.outbox.delete(seqs)
                self.counts["published"] += len(seqs)
