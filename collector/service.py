"""The collector process: MQTT in, database out, acknowledged only after the commit.

Three threads, each stage overlapping the others' waits:

* paho's network loop (reading the socket in large chunks:
  :class:`~luftnett.collector.mqtt_client.BufferedClient`); ``on_message`` only puts the
  message into a bounded queue;
* the validator takes batches of messages (size or time) and validates them (payload -> rows
  or a quarantine record), handing each validated batch to the writer;
* the writers (``writers`` of them, default 2, each with a database connection of its own)
  each own a share of the devices (a hash of the topic, which names the device): the
  validator splits every validated chunk by topic and hands each writer its part (a device's
  quarantine records included, so its messages keep their order). A writer joins the parts waiting
  for it into one transaction, commits it, and only then sends their PUBACKs (manual
  acknowledgement, all of a transaction in one write).

So while the server copies and commits batch N, batch N+1 is received and validated, and while
one writer's transaction runs on the server the other writer does its client work (quality
control, calibration, COPY records) for the next: client and server work overlap. A device's
messages always go to the same writer, in order, so two writers never wait for each other's
device locks, and each message is acknowledged only after its own transaction committed. The
longer a commit takes, the more validated messages wait, the larger the next transaction grows.
If the database is down, nothing is acknowledged: the writer backs off and retries the same
batch while the broker holds the rest (persistent session, QoS 1). A SIGKILL loses nothing:
unacknowledged messages are redelivered.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
import psycopg

from luftnett.calibration.apply_db import CalibrationCache
from luftnett.collector.deferred import PendingWork, calibrate_stored, calibrate_work
from luftnett.collector.mqtt_client import BufferedClient, Inbox, session_client
from luftnett.collector.priority import WriterConnection, WritersFirst
from luftnett.collector.rollups import refresh_dirty
from luftnett.collector.validate import Accepted, Quarantined, validate_message
from luftnett.collector.writer import Writer
from luftnett.connect import parse_mqtt_url
from luftnett.contracts import mqtt as contract

__all__ = ["Collector", "CollectorConfig"]

log = logging.getLogger(__name__)

_READY_BATCHES = 8  # validated chunks the writer may have waiting
_CHUNK = 500  # messages the validator takes at a time (the writer joins chunks)
_CHUNK_READINGS = 5_000  # ... and hands over to the writers in parts of about this many readings
_OWED_MAX = 250_000  # readings whose calibration a writer holds in memory
_SETTLE_READINGS = 50_000  # readings settled per calibration transaction
_SETTLE_MIN = 5_000  # ... and at least this many when the writer is idle, or
_SETTLE_IDLE_S = 0.5  # ... the oldest of them waited this long
_BUSY_INBOX = 100  # messages waiting to be validated: a burst (a steady stream leaves a few)
_BUSY_HOLD_S = 1.0  # a writer found busy counts as busy this long after (a burst's gaps)
_GIVE_WAY_S = 0.005  # longest the validator waits, per message, for the writers' Python
_STORED_EVERY_S = 5.0  # how often the maintenance thread settles debts left in the database


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    database_url: str
    mqtt_url: str
    topic_root: str = "luftnett"
    client_id: str = "luftnett-collector"
    batch_size: int = 2000  # messages per transaction, at most
    batch_readings: int = 50_000  # readings per transaction, at most (one message may exceed)
    flush_interval_s: float = 1.0
    shared_group: str | None = None
    keepalive_s: int = 30
    register_unknown_devices: bool = True
    linger_s: float = 0.005
    rollup_interval_s: float = 2.0  # refresh queued rollups this often (0: every batch)
    # MQTT 3.1.1 parses about a third faster in paho than 5 (no property decoding per message);
    # both keep a persistent session, and Mosquitto serves $share subscriptions to both.
    mqtt_protocol: Literal["3.1.1", "5"] = "3.1.1"
    writers: int = 2  # writer threads, each with its own connection and share of the devices
    # in the readings' transaction when no other message waits for the writer, else after it
    calibration: Literal["auto", "deferred", "inline"] = "auto"
    calibration_max_lag_s: float = 5.0  # deferred: longest wait while the writers are busy
    # retire the session: subscribe to nothing (drop what it held), store what it has queued
    # (collector.processes lowered: a worker's session that no process uses any more)
    retire: bool = False


_Chunk = tuple[list[mqtt.MQTTMessage], list[Accepted | Quarantined]]


class _Slot:
    """One writer: its database connection, its queue of validated chunks (bounded, so a slow
    database holds the validator back, and through it paho's loop: back-pressure up to the
    broker), the chunk it holds back for its next transaction, and (deferred calibration) what
    its commits owe in calibrated values, held in memory up to ``_OWED_MAX`` readings."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.ready: queue.Queue[_Chunk] = queue.Queue(maxsize=_READY_BATCHES)
        self.held: _Chunk | None = None
        self.conn: psycopg.Connection[Any] | None = None
        self.writer: Writer | None = None
        self.owed: deque[PendingWork] = deque()
        self.owed_readings = 0
        self.cache = CalibrationCache()
        self.busy_until = 0.0  # monotonic: the writer was last found busy this long before

    def owe(self, work: PendingWork | None) -> None:
        """Hold what a committed batch owes; past the limit it stays owed in the database
        only, and the maintenance thread settles it from the stored readings."""
        if work is None or not work.runs:
            return
        if self.owed_readings + work.readings > _OWED_MAX:
            log.info("calibration debt over the memory limit; settled from the database later")
            return
        self.owed.append(work)
        self.owed_readings += work.readings

    def waiting(self) -> bool:
        """Validated messages wait for this writer."""
        return self.held is not None or not self.ready.empty()

    def give_back(self, works: list[PendingWork]) -> None:
        """Debts taken but not settled, back at the front (oldest first)."""
        self.owed.extendleft(reversed(works))
        self.owed_readings += sum(w.readings for w in works)

    def take_owed(self, limit: int) -> list[PendingWork]:
        out: list[PendingWork] = []
        n = 0
        while self.owed and (not out or n + self.owed[0].readings <= limit):
            w = self.owed.popleft()
            out.append(w)
            n += w.readings
        self.owed_readings -= n
        return out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = self.writer = None


def _readings(items: list[Accepted | Quarantined]) -> int:
    return sum(i.count for i in items if isinstance(i, Accepted))


class Collector:
    def __init__(self, cfg: CollectorConfig) -> None:
        self.cfg = cfg
        if cfg.writers < 1:
            raise ValueError(f"writers must be at least 1, not {cfg.writers}")
        self.counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._q = Inbox(maxsize=max(10_000, cfg.batch_size * 4))
        self._slots = [_Slot(k) for k in range(cfg.writers)]
        self._writers_first = WritersFirst()  # the validator gives way to the writers
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._received = 0
        self._last_message = 0.0
        self._connected_at: float | None = None
        self._client = self._make_client()

    def _make_client(self) -> BufferedClient:
        target = parse_mqtt_url(self.cfg.mqtt_url)
        client, self._connect_args = session_client(
            target, self.cfg.client_id, self.cfg.mqtt_protocol, cls=BufferedClient
        )
        assert isinstance(client, BufferedClient)
        client.on_connect = self._on_connect
        # a retiring session counts what comes, to know when it is drained; others need not
        client.on_message = self._on_retiring_message if self.cfg.retire else self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 30)
        self._target = target
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("broker refused connection", extra={"reason": str(rc)})
            return
        self._connected_at = time.monotonic()
        if self.cfg.retire:  # no new messages; what the session queued still comes
            for group in (self.cfg.shared_group, None):
                client.unsubscribe(contract.readings_subscription(self.cfg.topic_root, group))
            log.info("retiring session", extra={"client_id": self.cfg.client_id})
            self._subscribed.set()
            return
        topic = contract.readings_subscription(self.cfg.topic_root, self.cfg.shared_group)
        client.subscribe(topic, qos=contract.QOS)
        # the session may still hold the subscription of an earlier configuration (a single
        # process before collector.processes, or the reverse), which would deliver the same
        # messages a second time: dropped after the new one is in place (a message in between
        # comes twice, and is stored once), never before it (it would come not at all)
        stale = contract.readings_subscription(
            self.cfg.topic_root, None if self.cfg.shared_group else self.cfg.client_id
        )
        client.unsubscribe(stale)
        log.info(
            "connected to broker", extra={"topic": topic, "session_present": flags.session_present}
        )

    def _on_subscribe(self, *_a: Any) -> None:
        log.info("subscribed", extra={"client_id": self.cfg.client_id})
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._q.put(msg)  # bounded: blocks paho's loop when we are behind (back-pressure)

    def _on_retiring_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        self._received += 1
        self._last_message = time.monotonic()
        self._on_message(c, u, msg)

    def drained(self, quiet_s: float) -> bool:
        """Connected, every message received is written and acknowledged, and none came for
        ``quiet_s`` (a retiring session: the broker sends what it queued at once)."""
        if self._connected_at is None:
            return False
        last = max(self._connected_at, self._last_message)
        with self._counts_lock:
            done = self.counts["messages"] >= self._received
        return done and time.monotonic() - last >= quiet_s

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Collector:
        for slot in self._slots:
            self._connect_db(slot)
        # a persistent session (Mosquitto takes $share subscriptions with 3.1.1 too)
        self._client.connect_async(
            self._target.host, self._target.port, self.cfg.keepalive_s, **self._connect_args
        )
        self._client.loop_start()
        self._threads = [
            threading.Thread(target=self._validate_loop, name="collector-validate", daemon=True),
            *(
                threading.Thread(
                    target=self._write_loop, args=(slot,), name=f"collector-write-{k}", daemon=True
                )
                for k, slot in enumerate(self._slots)
            ),
        ]
        self._threads.append(
            threading.Thread(
                target=self._maintenance_loop, name="collector-maintenance", daemon=True
            )
        )
        for t in self._threads:
            t.start()
        return self

    def wait_ready(self, timeout: float = 10) -> bool:
        return self._subscribed.wait(timeout)

    def alive(self) -> bool:
        """True while the validator, writer and maintenance threads run (after :meth:`start`)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)
        self._client.disconnect()
        self._client.loop_stop()
        for slot in self._slots:
            slot.close()

    def _count(self, **n: int) -> None:
        with self._counts_lock:
            self.counts.update(n)

    def _connect_db(self, slot: _Slot) -> bool:
        try:
            conn = WriterConnection.connect(self.cfg.database_url, connect_timeout=5)
            conn.gate = self._writers_first  # its waits on the server let the validator run
            slot.conn = conn
            slot.writer = Writer(
                slot.conn,
                deferred=self.cfg.rollup_interval_s > 0,
                register_unknown=self.cfg.register_unknown_devices,
                calibration="inline" if self.cfg.calibration == "inline" else "deferred",
            )
            return True
        except psycopg.OperationalError as exc:
            log.warning("database unavailable", extra={"error": str(exc).strip()[:200]})
            slot.conn = slot.writer = None
            return False

    # -- worker ------------------------------------------------------------------------------
    def _take_batch(self) -> list[mqtt.MQTTMessage]:
        """A chunk of messages: whatever is queued now, lingering briefly for more.

        Under load the queue refills while a batch is written, so batches grow by themselves;
        at low load a message waits at most ``linger_s`` (never more than ``flush_interval_s``)
        before it is written. The broker only sends as many unacknowledged messages as its
        inflight window allows, so waiting for a full batch would stall the stream.
        """
        batch = self._q.take(min(self.cfg.batch_size, _CHUNK), timeout=0.2)
        if not batch:
            return batch
        size = min(self.cfg.batch_size, _CHUNK)
        deadline = time.monotonic() + self.cfg.flush_interval_s
        while len(batch) < size:
            wait = min(self.cfg.linger_s, deadline - time.monotonic())
            if wait <= 0:
                break
            more = self._q.take(size - len(batch), timeout=wait)
            if not more:
                break
            batch += more
        return batch

    def _maintenance_loop(self) -> None:
        """On a connection of its own: refresh the device-hours the batches marked, every
        ``rollup_interval_s`` (after a burst a refresh reads back every reading it covers: on a
        writer's connection it held that writer's messages back for as long), and settle
        calibration debts left in the database (a writer killed before settling, its memory
        limit reached), every few seconds. A failure leaves both for the next round."""
        conn: psycopg.Connection[Any] | None = None
        cache = CalibrationCache()
        next_rollup = next_stored = 0.0
        while not self._stop.wait(0.2):
            now = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.cfg.database_url, connect_timeout=5)
                if self.cfg.rollup_interval_s > 0 and now >= next_rollup:
                    next_rollup = now + self.cfg.rollup_interval_s
                    while not self._stop.is_set() and (n := refresh_dirty(conn)) > 0:
                        self._count(rollup_hours=n)
                if now >= next_stored:
                    next_stored = now + _STORED_EVERY_S
                    # writers settle what they hold sooner; what they do not hold (past their
                    # memory limit, a crash) is settled at once when they are idle
                    older = 0.0 if self._writers_idle() else 3 * self.cfg.calibration_max_lag_s
                    while not self._stop.is_set():
                        runs, settled, written = calibrate_stored(conn, cache, older)
                        if not runs:
                            break
                        log.info("calibrated stored readings", extra={"readings": settled})
                        self._count(calibrated=settled, calibrated_values=written)
            except psycopg.OperationalError as exc:
                log.warning("maintenance failed; will retry", extra={"error": str(exc)[:200]})
                if conn is not None:
                    conn.close()
                conn = None
            except psycopg.Error as exc:
                log.error("maintenance refused", extra={"error": str(exc)[:200]})
                if conn is not None:
                    conn.rollback()
        if conn is not None:
            conn.close()

    def _validate_loop(self) -> None:
        """Validate what the inbox holds and hand it to the writers in chunks of at most
        ``_CHUNK_READINGS`` readings: a burst of 100-reading messages reaches the writers while
        the rest of it is still being validated (the whole chunk of 500 messages first held
        the first commit back by ~0.3 s); each writer joins what is ready into its next
        transaction."""
        root = self.cfg.topic_root
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            start, n_readings = 0, 0
            items: list[Accepted | Quarantined] = []
            gate, slots = self._writers_first, self._slots
            for i, m in enumerate(batch):
                # while a writer runs Python, and each writer has its next work waiting (so
                # none would wait for this message)
                if gate.running and all(slot.waiting() for slot in slots):
                    gate.give_way(_GIVE_WAY_S)
                item = validate_message(root, m.topic, bytes(m.payload))
                items.append(item)
                if isinstance(item, Accepted):
                    n_readings += item.count
                if n_readings >= _CHUNK_READINGS or i == len(batch) - 1:
                    self._hand_over(batch[start : i + 1], items)
                    start, n_readings, items = i + 1, 0, []

    def _hand_over(
        self, batch: list[mqtt.MQTTMessage], items: list[Accepted | Quarantined]
    ) -> None:
        for slot, part in zip(self._slots, self._split(batch, items), strict=True):
            while part[0] and not self._stop.is_set():
                try:
                    slot.ready.put(part, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _split(
        self, batch: list[mqtt.MQTTMessage], items: list[Accepted | Quarantined]
    ) -> list[_Chunk]:
        """The chunk's messages by writer: all messages of a topic (one device's, whether
        stored or quarantined) to the same one, in their order (a hash of the topic, stable
        across restarts)."""
        n = len(self._slots)
        if n == 1:
            return [(batch, items)]
        parts: list[_Chunk] = [([], []) for _ in range(n)]
        crc32 = zlib.crc32
        for m, item in zip(batch, items, strict=True):
            part = parts[crc32(m.topic.encode()) % n]
            part[0].append(m)
            part[1].append(item)
        return parts

    def _take_ready(self, slot: _Slot) -> _Chunk:
        """The validated chunks waiting now, joined up to ``batch_size`` messages and
        ``batch_readings`` readings (at least one chunk; empty lists when none came within
        0.2 s). A chunk that would pass a limit waits for the next transaction."""
        if slot.held is not None:
            first, slot.held = slot.held, None
        else:
            try:
                first = slot.ready.get(timeout=0.2)
            except queue.Empty:
                return [], []
        msgs, items = list(first[0]), list(first[1])
        n_readings = _readings(items)
        while len(msgs) < self.cfg.batch_size and n_readings < self.cfg.batch_readings:
            try:
                more = slot.ready.get_nowait()
            except queue.Empty:
                break
            more_readings = _readings(more[1])
            if (
                len(msgs) + len(more[0]) > self.cfg.batch_size
                or n_readings + more_readings > self.cfg.batch_readings
            ):
                slot.held = more
                break
            msgs += more[0]
            items += more[1]
            n_readings += more_readings
        return msgs, items

    def _busy(self, slot: _Slot) -> bool:
        """Messages wait for this writer, or a backlog for the validator (a burst, a
        reconnect with a full session), now or within the last ``_BUSY_HOLD_S``: a burst
        leaves short gaps (the writer took everything; the next messages are in flight), and
        calibrating inline or settling debts in them slows the whole burst down.
        ``calibration = "auto"`` defers calibration while busy; debts wait for the writer to
        be idle (or ``calibration_max_lag_s``)."""
        now = time.monotonic()
        if slot.waiting() or len(self._q) >= _BUSY_INBOX:
            slot.busy_until = now + _BUSY_HOLD_S
            return True
        return now < slot.busy_until

    def _writers_idle(self) -> bool:
        """No writer holds calibration debts or has been busy within ``_BUSY_HOLD_S``: what
        is still owed in the database is nobody's in memory."""
        now = time.monotonic()
        return all(not s.owed and not s.waiting() and now >= s.busy_until for s in self._slots)

    def _settle_now(self, slot: _Slot) -> bool:
        """Time to settle the writer's calibration debts: the oldest is ``calibration_max_lag_s``
        old, or the writer is idle and the debts are worth a transaction (many readings, or the
        oldest waited ``_SETTLE_IDLE_S``): at a low rate one settling transaction per batch
        would double the commits each message waits behind."""
        if not slot.owed:
            return False
        age = time.monotonic() - slot.owed[0].since
        if age >= self.cfg.calibration_max_lag_s:
            return True
        return not self._busy(slot) and (slot.owed_readings >= _SETTLE_MIN or age >= _SETTLE_IDLE_S)

    def _write_loop(self, slot: _Slot) -> None:
        while not self._stop.is_set():
            if self._settle_now(slot) and self._settle(slot):
                continue
            batch, items = self._take_ready(slot)
            if not batch:
                continue
            if not self._write_with_retry(slot, items):
                return  # stopping before it was written: unacknowledged, the broker redelivers
            self._client.ack_many([m.mid for m in batch if m.qos == 1])
            self._count(messages=len(batch))
        deadline = time.monotonic() + 5.0  # stopping: settle what it holds, briefly
        while slot.owed and time.monotonic() < deadline and self._settle(slot):
            pass

    def _settle(self, slot: _Slot) -> bool:
        """Write the calibrated values of the oldest debts the writer holds (one transaction);
        False when the database is unavailable (the debts stay held)."""
        if slot.conn is None and not self._connect_db(slot):
            return False
        assert slot.conn is not None
        works = slot.take_owed(_SETTLE_READINGS)
        try:
            with self._writers_first.writing():  # the validator gives way meanwhile
                settled, written = calibrate_work(slot.conn, works, slot.cache)
        except psycopg.OperationalError as exc:
            log.warning("calibration failed; will retry", extra={"error": str(exc)[:200]})
            slot.close()
            slot.give_back(works)
            return False
        except psycopg.Error as exc:  # stays owed in the database: retried from the rows there
            log.error("calibrated values refused", extra={"error": str(exc)[:200]})
            return True
        self._count(calibrated=settled, calibrated_values=written)
        return True

    def _write_with_retry(self, slot: _Slot, items: list[Accepted | Quarantined]) -> bool:
        """Write until it succeeds (True) or the collector stops (False)."""
        delay = 0.5
        while True:
            if slot.writer is None and not self._connect_db(slot):
                pass
            elif slot.writer is not None:
                try:
                    if self.cfg.calibration == "auto":
                        slot.writer.calibration = "deferred" if self._busy(slot) else "inline"
                    t0 = time.perf_counter()
                    with self._writers_first.writing():  # the validator gives way meanwhile
                        res = slot.writer.write(items)
                except psycopg.OperationalError as exc:
                    log.warning("write failed; will retry", extra={"error": str(exc)[:200]})
                    slot.close()
                except psycopg.Error as exc:
                    # the database refused some content: isolate it, quarantine it, keep the rest
                    log.warning(
                        "batch refused; writing one by one", extra={"error": str(exc)[:200]}
                    )
                    try:
                        with self._writers_first.writing():
                            items = self._isolate(slot, items)
                    except psycopg.OperationalError:
                        slot.close()
                    continue
                else:
                    slot.owe(res.pending)
                    self._count(
                        stored=res.stored,
                        duplicates=res.duplicates,
                        quarantined=res.quarantined,
                    )
                    log.info(
                        "batch written",
                        extra={
                            "messages": len(items),
                            "rows": res.stored,
                            "dupes": res.duplicates,
                            "quarantined": res.quarantined,
                            "ms": round(1000 * (time.perf_counter() - t0), 1),
                            "client_id": self.cfg.client_id,  # which of several collectors
                        },
                    )
                    return True
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, 30.0)

    def _isolate(
        self, slot: _Slot, items: list[Accepted | Quarantined]
    ) -> list[Accepted | Quarantined]:
        """Write each message alone (idempotent); return quarantine records for those the
        database refuses, plus the quarantine records that were already in the batch."""
        assert slot.writer is not None
        left: list[Accepted | Quarantined] = []
        for item in items:
            if isinstance(item, Quarantined):
                left.append(item)
                continue
            try:
                res = slot.writer.write([item])
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                left.append(Quarantined(item.topic, item.payload, "db_rejected", str(exc)[:500]))
            else:
                slot.owe(res.pending)
                self._count(
                    stored=res.stored, duplicates=res.duplicates, quarantined=res.quarantined
                )
        return left
