"""The collector's MQTT client delivers exactly what paho's own parser delivers, from the same
bytes over a real socket, however the stream is cut: PUBLISH packets of QoS 0 and 1 (flags,
topics, payloads from empty to past the 64 kB read size) with other packets between them, read
in pieces that split headers, lengths and payloads anywhere."""

from __future__ import annotations

import socket
import struct
from itertools import pairwise
from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from luftnett.collector.mqtt_client import BufferedClient


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish(topic: bytes, payload: bytes, qos: int, mid: int, dup: bool, retain: bool) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    header = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return bytes([header]) + _length(len(body) + len(payload)) + body + payload


publishes = st.builds(
    _publish,
    st.binary(min_size=1, max_size=30).filter(lambda t: b"\x00" not in t),
    st.one_of(
        *[st.binary(max_size=300)] * 6, st.builds(lambda n: b"x" * n, st.integers(60_000, 140_000))
    ),
    st.sampled_from([0, 1]),
    st.integers(1, 65535),
    st.booleans(),
    st.booleans(),
)
PINGRESP = b"\xd0\x00"


def _deliver(cls: type[mqtt.Client], stream: bytes, cuts: list[int]) -> list[tuple[Any, ...]]:
    """Feed ``stream`` in pieces (cut at ``cuts``) into a socket the client reads; what its
    on_message got."""
    a, b = socket.socketpair()
    a.setblocking(False)
    c = cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv311,
            clean_session=False, manual_ack=True)  # fmt: skip
    got: list[tuple[Any, ...]] = []
    c.on_message = lambda _c, _u, m: got.append(
        (m._topic, bytes(m.payload), m.qos, m.mid if m.qos else 0, m.dup, m.retain)
    )
    c._sock = a  # type: ignore[attr-defined]  # what connect() would set
    try:
        bounds = [0, *sorted(set(cuts)), len(stream)]
        for lo, hi in pairwise(bounds):
            for k in range(lo, hi, 100_000):  # within the socket's buffer
                b.sendall(stream[k : min(hi, k + 100_000)])
                for _ in range(50):  # until this piece is consumed
                    assert c.loop_read() == mqtt.MQTT_ERR_SUCCESS
        return got
    finally:
        c._sock = None  # type: ignore[attr-defined]
        a.close()
        b.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(publishes, st.just(PINGRESP)), min_size=1, max_size=25),
    st.lists(st.floats(0, 1), max_size=12),
)
def test_fast_path_delivers_what_paho_delivers(packets: list[bytes], cut_at: list[float]) -> None:
    stream = b"".join(packets)
    cuts = [int(f * len(stream)) for f in cut_at]
    expected = _deliver(mqtt.Client, stream, cuts)
    assert len(expected) == sum(p != PINGRESP for p in packets)
    assert _deliver(BufferedClient, stream, cuts) == expected
