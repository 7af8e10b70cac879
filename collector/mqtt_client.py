"""paho's client with buffered reads: the collector's receive path.

paho reads one packet with three ``recv`` calls (command byte, remaining length, body) and goes
back to ``select()`` after every packet while nothing of its own is in flight, so each
single-reading message costs four system calls before Python even looks at it. This subclass reads
the socket in 64 kB chunks, serves paho's small reads from that buffer, and parses every packet
already buffered before paho selects again: complete QoS 0/1 PUBLISH packets (MQTT 3.1.1) in one
loop of its own, anything else by paho's per-packet code
(tests/unit/test_collector_mqtt_fastpath.py holds the two to the same messages).
:meth:`BufferedClient.ack_many` sends the PUBACKs of a whole batch as one write (paho's ``ack``
queues one packet, wakes its loop and sends once per message). A received QoS 0/1 message is built
without the ``MQTTMessageInfo`` paho gives every message (a ``threading.Condition`` each, a tenth
of the collector's CPU; it serves only ``wait_for_publish`` of outgoing messages) and without
paho's debug log formatting. Everything else (sessions, manual acknowledgement, reconnects, TLS,
callbacks) is paho's own code; a new socket starts an empty buffer.
"""

from __future__ import annotations

import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from luftnett.connect import MqttTarget

try:
    from paho.mqtt._packet import decode_publish
except ImportError:  # pragma: no cover - older paho: its own _handle_publish runs
    decode_publish = None  # type: ignore[assignment]

__all__ = ["SESSION_EXPIRY_S", "BufferedClient", "Inbox", "ReceivedMessage", "session_client"]

_CHUNK = 65536
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (3.1.1 and 5: success)


class ReceivedMessage(mqtt.MQTTMessage):
    """A received message: paho's, without the per-message ``MQTTMessageInfo`` (made on
    first use of ``info``, which nothing does for a received message)."""

    def __init__(self, mid: int = 0, topic: bytes = b"") -> None:
        self.timestamp = 0.0
        self.state = mqtt.mqtt_ms_invalid
        self.dup = False
        self.mid = mid
        self._topic = topic
        self.payload = b""
        self.qos = 0
        self.retain = False
        self.properties = None

    def __getattr__(self, name: str) -> Any:
        if name == "info":
            self.info = mqtt.MQTTMessageInfo(self.mid)
            return self.info
        raise AttributeError(name)


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None  # the socket the buffer was read from
        self._filtered = False  # message_callback_add was used

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._rsock:  # (re)connected: nothing buffered belongs to it
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(_CHUNK)  # BlockingIOError when there is nothing
            if not data:
                return data  # the peer closed: paho handles it
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        out = self._rbuf[self._rpos : end]
        self._rpos = end
        return out

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._sock is not None
            and self._sock is self._rsock
            and self._rpos < len(self._rbuf)
        ):
            if self._drain_publishes() and self._rpos >= len(self._rbuf):
                break
            rc = super().loop_read(1)
        return rc

    def _drain_publishes(self) -> int:
        """Deliver every complete QoS 0/1 PUBLISH at the head of the buffer in one loop and
        return how many; stop at anything else (another packet type, a packet not complete
        yet, one that looks malformed), which paho's own ``_packet_read`` then takes. MQTT
        3.1.1 only (5 has properties), only between packets (paho holds none half-read), only
        with no per-topic callbacks. paho's per-packet state machine (three buffer reads, a
        fresh state dict, two clock reads and locks) cost ~20 µs of the ~27 µs it spent on a
        single-reading message."""
        if (
            decode_publish is None
            or self._filtered
            or self._protocol == mqtt.MQTTv5
            or self._in_packet["command"] != 0
            or (on_message := self.on_message) is None
        ):
            return 0
        buf, pos, end = self._rbuf, self._rpos, len(self._rbuf)
        userdata, mutex, now = self._userdata, self._in_callback_mutex, time.monotonic()
        n = 0
        while pos < end:
            header = buf[pos]
            if header & 0xF0 != 0x30 or header & 0x06 > 0x02:  # not a QoS 0/1 PUBLISH
                break
            i, length, shift = pos + 1, 0, 0
            while i < end and i - pos <= 4:
                b = buf[i]
                length |= (b & 0x7F) << shift
                shift += 7
                i += 1
                if b < 0x80:
                    break
            else:
                break  # length incomplete (or over 4 bytes: paho reports the protocol error)
            if buf[i - 1] & 0x80 or i + length > end or length < 2:
                break
            qos = (header >> 1) & 0x03
            slen = (buf[i] << 8) | buf[i + 1]
            p = i + 2 + slen
            if slen == 0 or p + 2 * qos > i + length:
                break  # malformed: paho's decoder says so
            msg = ReceivedMessage((buf[p] << 8) | buf[p + 1] if qos else 0, buf[i + 2 : p])
            msg.dup, msg.qos, msg.retain = bool(header & 0x08), qos, bool(header & 0x01)
            msg.payload = buf[p + 2 * qos : i + length]
            msg.timestamp = now
            pos = i + length
            self._rpos = pos  # before the callback: a callback that raises loses nothing else
            with mutex:
                on_message(self, userdata, msg)
            n += 1
        if n:
            with self._msgtime_mutex:
                self._last_bytes_received = now
        return n

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        if decode_publish is None or header & 0x06 == 0x04:  # QoS 2: paho's own path
            return super()._handle_publish()
        res = decode_publish(header, self._in_packet["packet"], self._protocol)
        msg = ReceivedMessage(res.mid, res.topic)
        msg.dup, msg.qos, msg.retain = res.dup, res.qos, res.retain
        msg.properties, msg.payload = res.properties, res.payload
        msg.timestamp = time.monotonic()
        if self._filtered:
            self._handle_on_message(msg)
        elif (on_message := self.on_message) is not None:
            # no per-topic callbacks: straight to on_message (paho would match the topic first)
            with self._in_callback_mutex:
                on_message(self, self._userdata, msg)
        if msg.qos == 1 and not self._manual_ack:
            return self._send_command_with_mid(mqtt.PUBACK, msg.mid, False)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Sequence[int]) -> MQTTErrorCode:
        """Acknowledge QoS 1 messages by packet id: one queued write for all of them."""
        if not mids:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        pack = _PUBACK.pack
        packet = b"".join([pack(mqtt.PUBACK, 2, mid) for mid in mids])
        return self._packet_queue(mqtt.PUBACK, packet, 0, 1)


class Inbox:
    """A bounded FIFO between paho's loop (``put``, one message at a time) and the collector
    (``take``, many at a time): one lock, and a wake-up only when the taker waits, where
    ``queue.Queue`` locks and notifies per item on both sides. ``put`` blocks while full
    (back-pressure: paho stops reading, the broker holds the rest)."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[mqtt.MQTTMessage] = deque()
        self._max = maxsize
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._takers = 0
        self._putters = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: mqtt.MQTTMessage) -> None:
        with self._lock:
            while len(self._items) >= self._max:
                self._putters += 1
                self._not_full.wait()
                self._putters -= 1
            self._items.append(item)
            if self._takers:
                self._not_empty.notify()

    def take(self, n: int, timeout: float) -> list[mqtt.MQTTMessage]:
        """Up to ``n`` items; waits up to ``timeout`` s only when there is none."""
        with self._lock:
            if not self._items and timeout > 0:
                self._takers += 1
                self._not_empty.wait(timeout)
                self._takers -= 1
            items = self._items
            k = min(n, len(items))
            out = [items.popleft() for _ in range(k)]
            if k and self._putters:
                self._not_full.notify_all()
            return out


#: how long the broker keeps an MQTT 5 collector session while it is away (3.1.1: for good)
SESSION_EXPIRY_S = 7 * 24 * 3600


def session_client(
    target: MqttTarget,
    client_id: str,
    protocol: str,
    clean: bool = False,
    cls: type[mqtt.Client] = mqtt.Client,
) -> tuple[mqtt.Client, dict[str, Any]]:
    """A client for a collector's session, manual acknowledgement, credentials and TLS as
    ``target`` says, and the keyword arguments its ``connect``/``connect_async`` needs: the
    session persistent (3.1.1 ``clean_session`` False; 5 ``clean_start`` False with
    ``SESSION_EXPIRY_S``), or with ``clean`` deleted when the connection ends. The collector
    and the probes of :mod:`luftnett.collector.processes` connect alike through it."""
    v5 = protocol == "5"
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else clean,
        manual_ack=True,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    connect: dict[str, Any] = {}
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0 if clean else SESSION_EXPIRY_S
        connect = {"clean_start": clean, "properties": props}
    return client, connect
