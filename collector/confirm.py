"""End-to-end acknowledgement: tell each device which of its readings the database holds.

The broker's PUBACK only says the *broker* has a message. Mosquitto keeps queued messages in
memory and writes them to disk every ``autosave_interval``, so a broker crash (power cut,
SIGKILL, OOM) can lose messages it already acknowledged to an edge agent that then deleted them.
The confirmer closes that gap: every ``interval_s`` it reads ``seq_ledger`` (the seq ranges of
each device committed to the database, migration 0020) and publishes, retained, a
:class:`~luftnett.contracts.mqtt.StoredPayload` on ``<root>/v1/<device_id>/stored`` for each
device whose ranges changed. An edge agent keeps a reading after its PUBACK and forgets it only
when its seq shows up there; a reading the broker acknowledged but never delivered is sent again
after ``edge.confirm_timeout_s`` (the collector drops a copy it already has).

It reads only committed state, with its own database connection and its own MQTT client, so it
is independent of the writer: with shared subscriptions every collector process may run one
(they publish the same ranges). ``luftnett collector run`` and ``luftnett demo`` start it
(``collector.confirm_interval_s``; 0 turns it off).
"""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract

__all__ = ["Confirmer"]

log = logging.getLogger(__name__)

#: seq_ledger.updated_at is the writing transaction's start time, so a transaction that began
#: before a poll may commit after it: each poll looks this far behind the previous one.
_OVERLAP = timedelta(seconds=30)

_CHANGED = """
SELECT l.device_id, now(),
       array_agg(lower(r) ORDER BY lower(r)) FILTER (WHERE r IS NOT NULL),
       array_agg(upper(r) ORDER BY lower(r)) FILTER (WHERE r IS NOT NULL)
FROM seq_ledger l LEFT JOIN LATERAL unnest(l.received) AS r ON true
WHERE %(since)s::timestamptz IS NULL OR l.updated_at > %(since)s
GROUP BY l.device_id
"""


class Confirmer:
    """Publishes each device's stored seq ranges (retained) when they change."""

    def __init__(
        self,
        database_url: str,
        mqtt_url: str,
        topic_root: str = "luftnett",
        interval_s: float = 2.0,
        client_id: str | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive (got {interval_s})")
        self.database_url = database_url
        self.topic_root = topic_root
        self.interval_s = interval_s
        self.published = 0  # messages published since start
        self._since: datetime | None = None
        self._last: dict[str, tuple[tuple[int, int], ...]] = {}
        self._stop = threading.Event()
        self._connected = threading.Event()  # set by on_connect, cleared by on_disconnect
        self._resend_all = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        target = parse_mqtt_url(mqtt_url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"luftnett-confirm-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if target.username:
            self._client.username_pw_set(target.username, target.password)
        if target.tls:
            self._client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self._client.max_inflight_messages_set(1000)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._target = target

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("confirmer: broker refused connection", extra={"reason": str(rc)})
            return
        # a broker that lost its retained messages (a crash) gets every device's ranges again
        self._resend_all.set()
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self._connected.clear()

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> Confirmer:
        self._client.connect_async(self._target.host, self._target.port, 30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="confirm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except psycopg.Error as exc:
                log.warning("confirmer: database unavailable", extra={"error": str(exc)[:200]})
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
            self._stop.wait(self.interval_s)

    # -- one poll ----------------------------------------------------------------------------
    def run_once(self) -> int:
        """Publish the ranges of every device whose ranges changed; return how many were sent.

        Does nothing while the broker is not connected (the next poll after the connection
        sends everything).
        """
        if not self._connected.is_set():
            return 0
        if self._resend_all.is_set():
            self._resend_all.clear()
            self._last.clear()
            self._since = None
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, autocommit=True)
        rows = self._conn.execute(_CHANGED, {"since": self._since}).fetchall()
        sent = 0
        newest: datetime | None = None
        for device_id, now, lows, highs in rows:
            newest = now
            ranges = tuple(zip(lows or (), highs or (), strict=True))
            if self._last.get(device_id) == ranges:
                continue
            shown = ranges[-contract.MAX_STORED_RANGES :]
            try:
                payload = contract.StoredPayload(
                    device_id=device_id,
                    ts=now,
                    stored=list(shown),
                    complete=len(shown) == len(ranges),
                )
            except ValidationError as exc:  # a device id the contract does not allow
                log.warning(
                    "confirmer: device skipped", extra={"device": device_id, "error": str(exc)}
                )
                self._last[device_id] = ranges
                continue
            info = self._client.publish(
                contract.stored_topic(self.topic_root, device_id),
                contract.encode(payload),
                qos=contract.QOS,
                retain=True,
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return sent  # not connected after all: this poll is repeated in full
            self._last[device_id] = ranges
            sent += 1
        if newest is not None:
            self._since = newest - _OVERLAP
        self.published += sent
        return sent
