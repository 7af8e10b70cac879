"""Load-side processes for bench/bench_collector.py: each runs in a process of its own.

    python bench/collector_load.py publish SPEC.json      # fast MQTT v5 publisher (QoS 1)
    python bench/collector_load.py paced SPEC.json        # steady-rate publisher, for latency
    python bench/collector_load.py naive SPEC.json        # the naive subscriber (the floor)
    /tmp/mqbenv/bin/python bench/collector_load.py mqbridge SPEC.json   # mq-bridge route

Only the standard library is imported at module level, so the mq-bridge role runs in mq-bridge's
own virtual environment, where luftnett is not installed.

The fast publisher speaks MQTT v5 over a raw socket: every PUBLISH packet is encoded before the
start signal, then written in chunks while at most ``window`` messages await their PUBACK (the
broker's Receive Maximum caps it). paho's ``publish()`` costs ~100 us of Python per message, so a
paho publisher, not the subscriber under test, would limit a run; this one publishes ~130,000
messages/s into Mosquitto on a 2-core machine. Each role prints "ready" on stdout when it can
start, and one JSON line with its own timings when it is done.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

# -- MQTT v5 packets ------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, clean_start: bool = True) -> bytes:
    """CONNECT, MQTT v5, no keep-alive, session expiry 0 (the session ends with the link)."""
    flags = 0x02 if clean_start else 0x00
    body = _str(b"MQTT") + bytes([5, flags]) + struct.pack("!H", 0) + _varint(0)
    body += _str(client_id.encode())
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH, QoS 1, no properties."""
    body = _str(topic.encode()) + struct.pack("!H", packet_id) + b"\x00" + payload
    return b"\x32" + _varint(len(body)) + body


DISCONNECT = b"\xe0\x00"


def _split_packets(buf: bytes) -> tuple[list[int], bytes]:
    """Complete packets' types in ``buf`` and the incomplete rest."""
    types: list[int] = []
    i = 0
    while len(buf) - i >= 2:
        mult, length, j = 1, 0, i + 1
        while True:
            if j >= len(buf):
                return types, buf[i:]
            b = buf[j]
            length += (b & 0x7F) * mult
            mult *= 128
            j += 1
            if not b & 0x80:
                break
        if len(buf) < j + length:
            break
        types.append(buf[i] >> 4)
        i = j + length
    return types, buf[i:]


class RawPublisher:
    """One MQTT v5 connection that publishes QoS 1 with a window of unacknowledged messages."""

    def __init__(self, host: str, port: int, client_id: str, window: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        connack = self.sock.recv(4096)
        if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused the publisher: CONNACK {connack.hex()}")
        self.window = min(window, _receive_maximum(connack))
        self.sent = 0
        self.acked = 0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        rest = b""
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            types, rest = _split_packets(rest + data)
            n = sum(1 for t in types if t == 4)  # PUBACK
            if n:
                with self._cond:
                    self.acked += n
                    self._cond.notify()

    def send(self, packets: list[bytes]) -> None:
        """Write all packets, never more than ``window`` unacknowledged."""
        i = 0
        while i < len(packets):
            with self._cond:
                while self.sent - self.acked >= self.window:
                    self._cond.wait()
                room = self.window - (self.sent - self.acked)
            k = min(room, len(packets) - i, 256)
            self.sock.sendall(b"".join(packets[i : i + k]))
            i += k
            self.sent += k

    def wait_acked(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        try:
            self.sock.sendall(DISCONNECT)
        finally:
            self.sock.close()


def _receive_maximum(connack: bytes) -> int:
    """The broker's Receive Maximum (property 0x21) from a v5 CONNACK; 65535 when absent."""
    i = 1
    while connack[i] & 0x80:
        i += 1
    i += 3  # end of remaining length, flags, reason code
    plen, mult = 0, 1
    while True:
        b = connack[i]
        plen += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    end = i + plen
    sizes = {0x11: 4, 0x21: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x22: 2, 0x28: 1, 0x29: 1, 0x2A: 1}
    while i < end:
        prop = connack[i]
        i += 1
        if prop == 0x21:
            return int(struct.unpack("!H", connack[i : i + 2])[0])
        if prop in sizes:
            i += sizes[prop]
        elif prop in (0x12, 0x1A, 0x1C, 0x1F, 0x15):  # strings
            i += 2 + struct.unpack("!H", connack[i : i + 2])[0]
        elif prop == 0x26:  # user property: two strings
            for _ in range(2):
                i += 2 + struct.unpack("!H", connack[i : i + 2])[0]
        else:
            break
    return 65535


def clear_session(host: str, port: int, client_id: str) -> None:
    """End a persistent session: connect with clean start and session expiry 0, disconnect."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(connect_packet(client_id, clean_start=True))
        s.recv(4096)
        s.sendall(DISCONNECT)


# -- roles --------------------------------------------------------------------------------


def _wait_go() -> None:
    print("ready", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit(0)


def role_publish(spec: dict[str, Any]) -> None:
    """Publish pre-encoded messages (a JSON-lines file of device ids and payloads) at once."""
    from luftnett.contracts.mqtt import readings_topic

    root = spec["topic_root"]
    packets = []
    with open(spec["messages"], encoding="utf-8") as f:
        for i, line in enumerate(f):
            device, payload = json.loads(line)
            topic = readings_topic(root, device)
            packets.append(publish_packet(topic, payload.encode(), i % 65535 + 1))
    pub = RawPublisher(spec["host"], spec["port"], spec["client_id"], spec.get("window", 1000))
    _wait_go()
    cpu0 = time.process_time()
    t0 = time.time()
    pub.send(packets)
    t_sent = time.time()
    ok = pub.wait_acked()
    t1 = time.time()
    pub.close()
    out = {
        "messages": len(packets),
        "t_first": t0,
        "t_sent": t_sent,
        "t_acked": t1,
        "ok": ok,
        "window": pub.window,
        "cpu_s": time.process_time() - cpu0,
    }
    print(json.dumps(out), flush=True)


def role_paced(spec: dict[str, Any]) -> None:
    """Publish single-reading messages at a steady rate; each reading's ts is its send time."""
    import datetime as dt

    from luftnett.contracts.mqtt import Reading, ReadingsPayload, SensorInfo, encode, readings_topic

    root, rate, duration = spec["topic_root"], float(spec["rate"]), float(spec["duration_s"])
    devices = [f"lat-{i:03d}" for i in range(spec.get("devices", 100))]
    sensor = SensorInfo(model="sds011", serial="bench")
    pub = RawPublisher(spec["host"], spec["port"], spec["client_id"], spec.get("window", 1000))
    _wait_go()
    n = int(rate * duration)
    cpu0 = time.process_time()
    t0 = time.time()
    late = 0.0
    for i in range(n):
        due = t0 + i / rate
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            late = max(late, -wait)
        device = devices[i % len(devices)]
        now = dt.datetime.now(dt.UTC)
        p = ReadingsPayload(
            device_id=device,
            agent_version="bench",
            sensor=sensor,
            readings=[
                Reading(
                    seq=i // len(devices),
                    ts=now,
                    window_s=1.0,
                    n_samples=1,
                    values={"pm25_ugm3": 5.0 + i % 13, "pm10_ugm3": 9.0 + i % 7},
                )
            ],
        )
        pub.send([publish_packet(readings_topic(root, device), encode(p), i % 65535 + 1)])
    t_sent = time.time()
    ok = pub.wait_acked()
    pub.close()
    out = {
        "messages": n,
        "t_first": t0,
        "t_sent": t_sent,
        "t_acked": time.time(),
        "ok": ok,
        "max_late_s": late,
        "cpu_s": time.process_time() - cpu0,
    }
    print(json.dumps(out), flush=True)


NAIVE_COLUMNS_FROM_PAYLOAD = (
    "device_id",
    "seq",
    "ts",
    "window_s",
    "n_samples",
    "sensor_model",
    "sensor_serial",
    "flags",
    "schema_version",
)


def role_naive(spec: dict[str, Any]) -> None:
    """paho subscriber that INSERTs each reading in its own autocommit transaction, inside
    ``on_message``: what a first attempt at a collector looks like."""
    import paho.mqtt.client as mqtt
    import psycopg
    from paho.mqtt.enums import CallbackAPIVersion

    from luftnett.contracts.mqtt import readings_subscription
    from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS

    conn = psycopg.connect(spec["database_url"], autocommit=True)
    cols = [c for c in READING_COLUMNS if c in NAIVE_COLUMNS_FROM_PAYLOAD or c in VALUE_COLUMNS]
    insert = "INSERT INTO readings ({}) VALUES ({})".format(  # noqa: S608 - fixed column names
        ", ".join(cols), ", ".join(["%s"] * len(cols))
    )
    done = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(readings_subscription(spec["topic_root"]), qos=1)

    def on_subscribe(*_a: Any) -> None:
        print("subscribed", flush=True)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        for r in doc["readings"]:
            row = {
                "device_id": doc["device_id"],
                "sensor_model": doc["sensor"]["model"],
                "sensor_serial": doc["sensor"].get("serial"),
                "schema_version": doc["schema_version"],
                "flags": 0,
                **{k: r[k] for k in ("seq", "ts", "window_s", "n_samples")},
                **r["values"],
            }
            conn.execute(insert, [row.get(c) for c in cols])

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=spec["client_id"], protocol=mqtt.MQTTv5
    )
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(spec["host"], spec["port"])
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    client.loop_start()
    done.wait()
    client.disconnect()
    client.loop_stop()
    conn.close()


def role_mqbridge(spec: dict[str, Any]) -> None:
    """Run one mq-bridge route (its config in the spec) until SIGTERM; log "subscribed"."""
    import logging

    import mq_bridge

    class Relay(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if "MQTT subscribed" in msg:
                print("subscribed", flush=True)
            elif record.levelno >= logging.WARNING:
                print(f"mq-bridge {record.levelname}: {msg[:300]}", file=sys.stderr, flush=True)

    logging.getLogger().addHandler(Relay())
    logging.getLogger().setLevel(logging.INFO)
    mq_bridge.init_logging("info")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    route = mq_bridge.Route.from_config(spec["route"])
    route.start()
    print(f"mq-bridge {mq_bridge.__version__} started", file=sys.stderr, flush=True)
    done.wait()
    route.stop()
    route.join()


def role_sink(spec: dict[str, Any]) -> None:
    """paho client set up as the collector's (manual acknowledgement, QoS 1; with ``buffered``
    the collector's BufferedClient), which acks each message in ``on_message`` and does nothing
    else: what receiving alone costs."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from luftnett.contracts.mqtt import readings_subscription

    v5 = spec["protocol"] == "v5"
    n, got = spec["messages"], 0
    done = threading.Event()
    t: dict[str, float] = {}

    def on_connect(c: mqtt.Client, *_a: Any) -> None:
        c.subscribe(readings_subscription(spec["topic_root"]), qos=1)

    def on_subscribe(*_a: Any) -> None:
        print("subscribed", flush=True)

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        if not got:
            t["first"], t["cpu0"] = time.time(), time.process_time()
        got += 1
        c.ack(msg.mid, msg.qos)
        if got == n:
            t["last"], t["cpu1"] = time.time(), time.process_time()
            done.set()

    from luftnett.collector.mqtt_client import BufferedClient

    client = (BufferedClient if spec.get("buffered") else mqtt.Client)(
        CallbackAPIVersion.VERSION2,
        client_id=spec["client_id"],
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=True,
    )
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(spec["host"], spec["port"])
    client.loop_start()
    ok = done.wait(300)
    client.disconnect()
    client.loop_stop()
    out = {
        "messages": got,
        "ok": ok,
        "wall_s": t.get("last", 0) - t.get("first", 0),
        "cpu_s": t.get("cpu1", 0) - t.get("cpu0", 0),
    }
    print(json.dumps(out), flush=True)


ROLES = {
    "sink": role_sink,
    "publish": role_publish,
    "paced": role_paced,
    "naive": role_naive,
    "mqbridge": role_mqbridge,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ROLES:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    ROLES[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")))
