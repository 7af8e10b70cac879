"""paho's client with buffered reads: the collector's receive path.

paho reads one packet with three ``recv`` calls (command byte, remaining length, body) and goes
back to ``select()`` after every packet while nothing of its own is in flight, so each
single-reading message costs four system calls before Python even looks at it. This subclass
reads the socket in 64 kB chunks, serves paho's small reads from that buffer, and parses every
packet already buffered before paho selects again. :meth:`BufferedClient.ack_many` sends the
PUBACKs of a whole batch as one write (paho's ``ack`` queues one packet, wakes its loop and
sends once per message). Everything else (sessions, manual acknowledgement, reconnects, TLS) is
paho's own code; a new socket starts an empty buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["BufferedClient"]

_CHUNK = 65536
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (3.1.1 and 5: success)


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None  # the socket the buffer was read from

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
            rc = super().loop_read(1)
        return rc

    def ack_many(self, mids: Sequence[int]) -> MQTTErrorCode:
        """Acknowledge QoS 1 messages by packet id: one queued write for all of them."""
        if not mids:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        pack = _PUBACK.pack
        packet = b"".join([pack(mqtt.PUBACK, 2, mid) for mid in mids])
        return self._packet_queue(mqtt.PUBACK, packet, 0, 1)
