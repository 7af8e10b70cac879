"""The confirmer: each device's stored seq ranges, read from the database, published retained."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from luftnett.collector.confirm import Confirmer
from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract

pytestmark = pytest.mark.e2e


@pytest.fixture
def stored_messages(mqtt_url: str, topic_root: str) -> Iterator[queue.Queue[bytes]]:
    """Every message on ``<root>/v1/+/stored``, in order."""
    got: queue.Queue[bytes] = queue.Queue()
    target = parse_mqtt_url(mqtt_url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.on_message = lambda _c, _u, m: got.put(m.payload)
    c.connect(target.host, target.port)
    c.subscribe(f"{topic_root}/v1/+/stored", qos=1)
    c.loop_start()
    yield got
    c.loop_stop()
    c.disconnect()


def _ledger(pg_url: str, device_id: str, ranges_sql: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO seq_ledger (device_id, received) "
            f"SELECT %s, {ranges_sql} "
            "ON CONFLICT (device_id) DO UPDATE SET received = excluded.received, "
            "updated_at = now()",
            (device_id,),
        )


def test_ranges_published_when_they_change_newest_first_kept(
    pg_url: str, mqtt_url: str, topic_root: str, device_id: str, stored_messages, wait_until
) -> None:
    # 1,005 ranges [10 i, 10 i + 5): more than one message may carry
    _ledger(pg_url, device_id, "range_agg(int8range(i * 10, i * 10 + 5)) "
            "FROM generate_series(0, 1004) i")  # fmt: skip
    confirmer = Confirmer(pg_url, mqtt_url, topic_root, interval_s=0.1).start()
    try:
        first = contract.StoredPayload.model_validate_json(stored_messages.get(timeout=10))
        while first.device_id != device_id:  # other tests' devices share the database
            first = contract.StoredPayload.model_validate_json(stored_messages.get(timeout=10))
        assert len(first.stored) == contract.MAX_STORED_RANGES and not first.complete
        assert first.stored[0] == (50, 55) and first.stored[-1] == (10040, 10045)
        wait_until(lambda: confirmer.published >= 1, 5, "the poll that sent it to finish")
        before = confirmer.published
        time.sleep(0.5)  # five polls with nothing changed: nothing sent
        assert confirmer.published == before
        _ledger(pg_url, device_id, "range_agg(int8range(i * 10, i * 10 + 5)) "
                "FROM generate_series(1000, 1010) i")  # fmt: skip
        wait_until(lambda: confirmer.published > before, 5, "the change published")
    finally:
        confirmer.stop()
    msgs = []
    while not stored_messages.empty():
        m = contract.StoredPayload.model_validate_json(stored_messages.get())
        if m.device_id == device_id:
            msgs.append(m)
    assert msgs[-1].complete and msgs[-1].stored[0] == (10000, 10005)
    assert msgs[-1].stored[-1] == (10100, 10105) and len(msgs[-1].stored) == 11


def test_stored_payload_refuses_ranges_out_of_order() -> None:
    ok = {"device_id": "dev-001", "ts": "2026-11-23T00:00:00Z", "stored": [[0, 5], [7, 9]]}
    assert contract.StoredPayload.model_validate(ok).stored == [(0, 5), (7, 9)]
    for bad in ([[5, 0]], [[7, 9], [0, 5]], [[-1, 3]], [[0, 5], [3, 9]]):
        with pytest.raises(ValueError, match="ascending"):
            contract.StoredPayload.model_validate({**ok, "stored": bad})
