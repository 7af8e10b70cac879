"""The collector's writers: each validated chunk is split by topic (device), so a device's
messages, stored or quarantined, always go to the same writer in their order."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from luftnett.collector.service import Collector, CollectorConfig
from luftnett.collector.validate import Accepted, Quarantined


def _collector(writers: int) -> Collector:
    # no connection is made before start(): the split needs none
    return Collector(
        CollectorConfig(
            database_url="postgresql://127.0.0.1:1/none",
            mqtt_url="mqtt://127.0.0.1:1",
            writers=writers,
        )
    )


def _chunk(devices: list[str]) -> tuple[list[mqtt.MQTTMessage], list[Accepted | Quarantined]]:
    """One message per entry; every fifth is a quarantine record of its device's topic."""
    msgs: list[mqtt.MQTTMessage] = []
    items: list[Accepted | Quarantined] = []
    for i, d in enumerate(devices):
        topic = f"luftnett/v1/{d}/readings"
        msgs.append(mqtt.MQTTMessage(mid=i + 1, topic=topic.encode()))
        if i % 5 == 4:
            items.append(Quarantined(topic, b"{", "not_json", "test"))
        else:
            items.append(Accepted((d, "sds011", None, "1"), [], topic, b"{}"))
    return msgs, items


@pytest.mark.parametrize("writers", [2, 3])
def test_a_device_always_goes_to_the_same_writer_in_order(writers: int) -> None:
    col = _collector(writers)
    devices = [f"dev-{i % 17:03d}" for i in range(200)] + ["not a device", "x"]
    msgs, items = _chunk(devices)
    owner: dict[str, int] = {}
    for _ in range(2):  # a second chunk: the same topics land where they did
        parts = col._split(msgs, items)
        assert len(parts) == writers
        seen = sorted(m.mid for p in parts for m in p[0])
        assert seen == list(range(1, len(devices) + 1))  # every message once
        for k, (pm, pi) in enumerate(parts):
            assert len(pm) == len(pi)
            assert [m.mid for m in pm] == sorted(m.mid for m in pm)  # order kept
            for m, item in zip(pm, pi, strict=True):
                assert item is items[m.mid - 1]  # each message keeps its own item
                assert owner.setdefault(item.topic, k) == k  # stored or quarantined alike
    assert len(owner) == 19
    assert len(set(owner.values())) == writers  # 19 topics spread over every writer


def test_one_writer_takes_the_chunk_as_it_is() -> None:
    msgs, items = _chunk(["dev-001", "dev-002", "dev-003", "dev-004", "dev-005"])
    assert _collector(1)._split(msgs, items) == [(msgs, items)]


def test_no_writer_is_refused() -> None:
    with pytest.raises(ValueError, match="writers must be at least 1"):
        _collector(0)
