"""Deliveries the edge alone would not make: duplicates, reordering and malformed payloads.

:class:`Tap` is one MQTT v5 client with a persistent session. It

- keeps a sample of the readings messages on their way to the collector and publishes them
  again later, shuffled (:meth:`Tap.republish`): duplicates, out of order;
- relays the messages of devices that publish under ``hold_root`` to the real topic in
  shuffled groups (first deliveries out of order, as a store-and-forward gateway might);
- publishes malformed payloads (:func:`rogue_payloads`) whose quarantine reasons are known.

Callbacks only enqueue; a worker thread does the publishing. Every publish is QoS 1 and
:meth:`Tap.drain` waits for each PUBACK.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract

__all__ = ["Tap", "rogue_payloads"]

HOLD_GROUP = 16  # relay this many held messages at once, shuffled
HOLD_MAX_AGE_S = 2.0  # ... or whatever is held after this many real seconds
SESSION_EXPIRY_S = 7 * 24 * 3600


def _readings_in(payload: bytes) -> int:
    try:
        return len(json.loads(payload)["readings"])
    except (ValueError, KeyError, TypeError):
        return 0


class Tap:
    def __init__(
        self, url: str, root: str, hold_root: str, sample: float, seed: int, keep_max: int = 5000
    ) -> None:
        self.root = root
        self.hold_root = hold_root
        self.sample = sample
        self.keep_max = keep_max
        self.rng = random.Random(seed)
        self.kept: list[tuple[str, bytes]] = []
        self.relayed_messages = 0
        self.relayed_readings = 0
        self.republished_messages = 0
        self.republished_readings = 0  # readings sent a second time: the injected duplicates
        self.rogue: dict[str, int] = {}
        self._lock = threading.Lock()
        self._q: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._held: list[tuple[str, bytes]] = []
        self._held_since = 0.0
        self._sent = 0  # QoS 1 publications made ...
        self._acked = 0  # ... and acknowledged by the broker (paho re-sends after a reconnect)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._flush = threading.Event()
        target = parse_mqtt_url(url)
        self._target = target
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"soak-tap-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.on_message = lambda _c, _u, m: self._q.put((m.topic, bytes(m.payload)))
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(1, 5)
        self._worker = threading.Thread(target=self._work, name="soak-tap", daemon=True)

    # -- life cycle -----------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> Tap:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self._target.host, self._target.port, 30, clean_start=False, properties=props
        )
        self.client.loop_start()
        self._worker.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the soak tap did not subscribe")
        return self

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            return
        opts = SubscribeOptions(qos=contract.QOS, noLocal=True)
        client.subscribe(
            [
                (contract.readings_subscription(self.root), opts),
                (contract.readings_subscription(self.hold_root), opts),
            ]
        )

    def _on_publish(self, *_a: Any) -> None:
        with self._lock:
            self._acked += 1

    def drain(self, timeout: float = 120.0) -> bool:
        """Relay what is held and wait for every PUBACK; True when all were acknowledged."""
        self._flush.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                pending = not self._q.empty() or bool(self._held) or self._acked < self._sent
            if not pending:
                return True
            self._flush.set()
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(5)
        self.client.disconnect()
        self.client.loop_stop()

    # -- worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload = self._q.get(timeout=0.2)
            except queue.Empty:
                topic = ""
                payload = b""
            if topic.startswith(self.hold_root + "/"):
                with self._lock:
                    if not self._held:
                        self._held_since = time.monotonic()
                    self._held.append((topic, payload))
            elif topic and self.rng.random() < self.sample:
                with self._lock:
                    if len(self.kept) < self.keep_max:
                        self.kept.append((topic, payload))
            self._relay_if_due()

    def _relay_if_due(self) -> None:
        with self._lock:
            due = len(self._held) >= HOLD_GROUP or (
                bool(self._held)
                and (self._flush.is_set() or time.monotonic() - self._held_since > HOLD_MAX_AGE_S)
            )
            if not due:
                if self._q.empty():
                    self._flush.clear()
                return
            batch, self._held = self._held, []
        self.rng.shuffle(batch)
        for topic, payload in batch:
            parsed = contract.parse_topic(self.hold_root, topic)
            assert parsed is not None
            self._publish(contract.readings_topic(self.root, parsed[0]), payload)
            self.relayed_messages += 1
            self.relayed_readings += _readings_in(payload)

    def _publish(self, topic: str, payload: bytes) -> None:
        """QoS 1; while the broker is away paho queues it and sends it after reconnecting."""
        with self._lock:
            self._sent += 1
        self.client.publish(topic, payload, qos=contract.QOS)

    # -- injections -----------------------------------------------------------------------
    def republish(self) -> int:
        """Publish the sampled messages again, shuffled; return the readings they carry."""
        with self._lock:
            batch, self.kept = self.kept, []
        self.rng.shuffle(batch)
        n = 0
        for topic, payload in batch:
            self._publish(topic, payload)
            n += _readings_in(payload)
        self.republished_messages += len(batch)
        self.republished_readings += n
        return n

    def publish_rogue(self, run_id: str) -> dict[str, int]:
        """Publish :func:`rogue_payloads`; return the expected quarantine count per reason."""
        expected: dict[str, int] = {}
        for reason, topic_device, payload in rogue_payloads(run_id):
            self._publish(contract.readings_topic(self.root, topic_device), payload)
            expected[reason] = expected.get(reason, 0) + 1
        for k, v in expected.items():
            self.rogue[k] = self.rogue.get(k, 0) + v
        return expected


def rogue_payloads(run_id: str) -> list[tuple[str, str, bytes]]:
    """(expected quarantine reason, topic device, payload): two of each kind, one too large."""
    dev = f"{run_id}-rogue"
    good = json.loads(
        contract.encode(
            contract.ReadingsPayload(
                device_id=dev,
                agent_version="soak",
                sensor=contract.SensorInfo(model="sds011"),
                readings=[
                    contract.Reading(
                        seq=0,
                        ts=datetime(2026, 1, 1, tzinfo=UTC),
                        window_s=60,
                        n_samples=1,
                        values={"pm25_ugm3": 1.0},
                    )
                ],
            )
        )
    )
    wrong_type = json.loads(json.dumps(good))
    wrong_type["readings"][0]["seq"] = "zero"
    out: list[tuple[str, str, bytes]] = []
    for i in range(2):
        out += [
            ("not_json", dev, b"{not json" + bytes([i])),
            ("invalid", dev, json.dumps(wrong_type).encode()),
            ("schema_version", dev, json.dumps(dict(good, schema_version=9)).encode()),
            ("device_mismatch", f"{dev}-other{i}", json.dumps(good).encode()),
        ]
    out.append(("too_large", dev, b'{"schema_version": 1, "pad": "' + b"x" * 1_100_000 + b'"}'))
    return out
