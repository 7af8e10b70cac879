"""The collector's buffered paho client on a real broker: packets that arrive together in one
read are all delivered at once (none waits for more traffic), in order, and a reconnect starts
clean; manual acknowledgement still decides what the broker redelivers."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from luftnett.collector.mqtt_client import BufferedClient, ReceivedMessage
from luftnett.connect import parse_mqtt_url

pytestmark = pytest.mark.e2e


def _client(mqtt_url: str, client_id: str, got: list[tuple[str, bytes]], ack: bool) -> Any:
    t = parse_mqtt_url(mqtt_url)
    ready = threading.Event()
    c = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=False,
        manual_ack=True,
    )

    def on_message(cl: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload))
        if ack:
            cl.ack(msg.mid, msg.qos)

    c.on_connect = lambda cl, *_a: cl.subscribe(f"{client_id}/#", qos=1)
    c.on_subscribe = lambda *_a: ready.set()
    c.on_message = on_message
    c.connect(t.host, t.port)
    c.loop_start()
    assert ready.wait(10)
    return c


def test_a_burst_is_delivered_whole_without_waiting_for_more_traffic(
    mqtt_url: str, wait_until: Any
) -> None:
    cid = f"buf-{uuid.uuid4().hex[:8]}"
    got: list[tuple[str, bytes]] = []
    c = _client(mqtt_url, cid, got, ack=True)
    t = parse_mqtt_url(mqtt_url)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{cid}-pub")
    pub.max_inflight_messages_set(1000)
    pub.connect(t.host, t.port)
    pub.loop_start()
    try:
        sent = [(f"{cid}/x", f"m{i:04d}".encode() * (1 + i % 50)) for i in range(300)]
        infos = [pub.publish(topic, payload, qos=1) for topic, payload in sent]  # a burst
        infos[-1].wait_for_publish(10)
        t0 = time.monotonic()
        wait_until(lambda: len(got) >= 300, timeout=5, what="all 300 messages")
        # paho's own select() would sit on buffered packets until the keepalive ping
        assert time.monotonic() - t0 < 2
        assert got == sent
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.disconnect()
        c.loop_stop()


def test_unacknowledged_messages_come_back_after_a_reconnect(
    mqtt_url: str, publish: Any, wait_until: Any
) -> None:
    cid = f"buf-{uuid.uuid4().hex[:8]}"
    first: list[tuple[str, bytes]] = []
    c = _client(mqtt_url, cid, first, ack=False)
    for i in range(20):
        publish(f"{cid}/x", f"{i}".encode())
    wait_until(lambda: len(first) >= 20, timeout=5, what="20 messages")
    c.disconnect()
    c.loop_stop()
    again: list[tuple[str, bytes]] = []
    c = _client(mqtt_url, cid, again, ack=True)  # same session: the 20 unacked come back
    try:
        wait_until(lambda: len(again) >= 20, timeout=10, what="20 redelivered messages")
        assert sorted(again) == sorted(first)
    finally:
        c.disconnect()
        c.loop_stop()


def test_ack_many_acknowledges_exactly_the_given_messages(
    mqtt_url: str, publish: Any, wait_until: Any
) -> None:
    """One write of many PUBACKs: the broker drops exactly those and redelivers the rest."""
    cid = f"buf-{uuid.uuid4().hex[:8]}"
    msgs: list[mqtt.MQTTMessage] = []
    c = _client(mqtt_url, cid, [], ack=False)
    c.on_message = lambda _cl, _u, m: msgs.append(m)
    for i in range(30):
        publish(f"{cid}/x", f"{i}".encode())
    wait_until(lambda: len(msgs) >= 30, timeout=5, what="30 messages")
    assert all(isinstance(m, ReceivedMessage) and m.qos == 1 for m in msgs)
    assert msgs[0].info.mid == msgs[0].mid  # paho's MQTTMessageInfo, made on first use
    acked = [m for m in msgs if int(m.payload) % 3]  # 20 of 30, not in a row
    assert c.ack_many([m.mid for m in acked]) == mqtt.MQTT_ERR_SUCCESS
    assert c.ack_many([]) == mqtt.MQTT_ERR_SUCCESS
    time.sleep(0.5)  # the PUBACKs reach the broker before the disconnect
    c.disconnect()
    c.loop_stop()
    again: list[tuple[str, bytes]] = []
    c = _client(mqtt_url, cid, again, ack=True)
    try:
        wait_until(lambda: len(again) >= 10, timeout=10, what="10 redelivered messages")
        time.sleep(0.5)  # nothing more comes
        assert sorted(int(p) for _t, p in again) == list(range(0, 30, 3))
    finally:
        c.disconnect()
        c.loop_stop()


def test_per_topic_callbacks_still_take_their_messages(
    mqtt_url: str, publish: Any, wait_until: Any
) -> None:
    """on_message gets messages straight; once message_callback_add is used, paho matches."""
    cid = f"buf-{uuid.uuid4().hex[:8]}"
    plain: list[tuple[str, bytes]] = []
    c = _client(mqtt_url, cid, plain, ack=True)
    special: list[str] = []
    try:
        publish(f"{cid}/a", b"1")
        wait_until(lambda: len(plain) == 1, timeout=5, what="the plain message")
        c.message_callback_add(f"{cid}/special/#", lambda _c, _u, m: special.append(m.topic))
        publish(f"{cid}/special/x", b"2")
        publish(f"{cid}/b", b"3")
        wait_until(lambda: len(plain) == 2 and special, timeout=5, what="both routes")
        assert special == [f"{cid}/special/x"]
        assert plain == [(f"{cid}/a", b"1"), (f"{cid}/b", b"3")]
    finally:
        c.disconnect()
        c.loop_stop()
