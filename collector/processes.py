"""The collector's worker processes (``collector.processes`` > 1).

One Python process runs its pipeline (paho's loop, the validator, the writers) under one
interpreter lock. On a 2-core machine two collectors with one writer each stored a burst of
100-reading messages ~10-20 % faster than one collector with two writer threads (the same two
database connections; docs/benchmarks.md, session 9). ``collector.processes = N`` runs N such
pipelines as one service: ``luftnett collector run`` is worker 0 and starts workers 1..N-1 as
child processes (``luftnett collector run`` each, with ``processes = 1``, client id
``<client_id>-w<k>``, and no confirmer: the parent's publishes the stored ranges for all).
All take the readings through one shared subscription, ``$share/<group>/...`` (the
configured ``shared_group``, else the client id), exactly as separately started collectors
do: the broker gives each message to one of them, each acknowledges what it committed, and
the database serialises a device's transactions (its row lock), so nothing is lost or stored
twice.

Lowering ``processes`` would leave the sessions of the workers dropped on the broker, and
Mosquitto keeps giving each session in a shared group its turn, connected or not: a share of
every later message would wait there for a worker that never comes. So the service looks for
such sessions when it starts (:func:`orphan_sessions`: ``<client_id>-w<k>`` from ``k =
processes`` on, as long as the broker has one) and runs a *retiring* worker for each: it
subscribes to nothing and drops the session's subscriptions, stores and acknowledges what the
session had queued, then deletes the session (:func:`delete_session`) and exits.

Supervision: a worker that exits on its own is started again (after 1 s, doubling to 30 s
while it keeps failing); stopping the service stops the workers (SIGTERM, then SIGKILL after
``stop_timeout_s``); a worker whose parent dies (even by SIGKILL) gets SIGTERM from the kernel
(``PR_SET_PDEATHSIG``), so no worker outlives its service.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

import paho.mqtt.client as mqtt

from luftnett.collector.mqtt_client import session_client
from luftnett.connect import parse_mqtt_url

log = logging.getLogger(__name__)

__all__ = [
    "PARENT_ENV",
    "RETIRE_ENV",
    "WorkerProcesses",
    "delete_session",
    "die_with_parent",
    "orphan_sessions",
    "session_exists",
    "worker_client_id",
    "worker_env",
]

#: set in a worker's environment: the pid of the service that started it
PARENT_ENV = "LUFTNETT_COLLECTOR_PARENT_PID"
#: set in a retiring worker's environment (its session's queue is drained, then deleted)
RETIRE_ENV = "LUFTNETT_COLLECTOR_RETIRE"
_MAX_WORKERS = 64  # collector.processes' largest value
_PR_SET_PDEATHSIG = 1
_RESTART_MIN_S, _RESTART_MAX_S = 1.0, 30.0
_HEALTHY_S = 60.0  # a worker up this long has its restart delay reset


def worker_client_id(client_id: str, k: int) -> str:
    """Worker ``k``'s MQTT client id: ``<client_id>-w<k>``, a name of its own so that the
    search for dropped workers' sessions never takes a collector started apart with a
    name such as ``<client_id>-1`` for one (its probe would take that session over)."""
    return f"{client_id}-w{k}"


def worker_env(
    base: Mapping[str, str], k: int, client_id: str, group: str, database_url: str, mqtt_url: str
) -> dict[str, str]:
    """The environment of worker ``k``: the service's, with the settings that make it one
    subscriber of the group (and the servers the service resolved, so an embedded demo
    server is shared, not started again)."""
    env = dict(base)
    env.update(
        {
            "LUFTNETT_DATABASE_URL": database_url,
            "LUFTNETT_MQTT_URL": mqtt_url,
            "LUFTNETT_COLLECTOR__PROCESSES": "1",
            "LUFTNETT_COLLECTOR__CLIENT_ID": worker_client_id(client_id, k),
            "LUFTNETT_COLLECTOR__SHARED_GROUP": group,
            "LUFTNETT_COLLECTOR__CONFIRM_INTERVAL_S": "0",
            PARENT_ENV: str(os.getpid()),
        }
    )
    return env


def _connect_once(
    mqtt_url: str, client_id: str, protocol: Literal["3.1.1", "5"], clean: bool
) -> bool:
    """Connect as ``client_id`` and disconnect; return whether the broker had a session for
    it. ``clean`` False keeps a session as the collector's own connection does (a probe that
    finds none leaves an empty one behind); True deletes the session. Nothing is acknowledged:
    what a kept session delivers meanwhile stays in it, unacknowledged, for its owner."""
    t = parse_mqtt_url(mqtt_url)
    # manual acknowledgement, and none sent: what the session delivers stays in it
    client, connect_args = session_client(t, client_id, protocol, clean=clean)
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        answer.update(present=bool(flags.session_present), failed=rc.is_failure, rc=str(rc))
        done.set()

    client.on_connect = on_connect
    client.connect(t.host, t.port, 30, **connect_args)
    client.loop_start()
    try:
        if not done.wait(15):
            raise ConnectionError(f"no answer from the broker for {client_id}")
        if answer["failed"]:
            raise ConnectionError(f"the broker refused {client_id}: {answer['rc']}")
    finally:
        client.disconnect()
        client.loop_stop()
    return bool(answer["present"])


def delete_session(mqtt_url: str, client_id: str, protocol: Literal["3.1.1", "5"]) -> None:
    """Delete ``client_id``'s session on the broker (and whatever it still queues)."""
    _connect_once(mqtt_url, client_id, protocol, clean=True)


def session_exists(mqtt_url: str, client_id: str, protocol: Literal["3.1.1", "5"]) -> bool:
    """Whether the broker keeps a session for ``client_id`` (a connection of that client id
    meanwhile is taken over; the empty session a probe makes is deleted again)."""
    if _connect_once(mqtt_url, client_id, protocol, clean=False):
        return True
    delete_session(mqtt_url, client_id, protocol)
    return False


def orphan_sessions(
    mqtt_url: str, client_id: str, first: int, protocol: Literal["3.1.1", "5"]
) -> list[int]:
    """The workers ``k >= first`` whose sessions (:func:`worker_client_id`) the broker keeps:
    workers are numbered 1.. without gaps, so the search ends at the first ``k`` without one."""
    found: list[int] = []
    for k in range(max(1, first), _MAX_WORKERS + 1):
        if not session_exists(mqtt_url, worker_client_id(client_id, k), protocol):
            break
        found.append(k)
    return found


def die_with_parent() -> None:
    """In a worker: have the kernel send SIGTERM when the service's process ends; exit at
    once if it already has (started by a service that died meanwhile)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != int(parent):
        sys.exit("collector worker: the service that started it is gone")


class _Worker:
    def __init__(self, k: int, env: dict[str, str], retire: bool = False) -> None:
        self.k = k
        self.env = env
        self.retire = retire
        if retire:
            self.env[RETIRE_ENV] = "1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.delay = _RESTART_MIN_S
        self.due = 0.0  # when to start it again after an exit
        self.retired = False  # a retiring worker that finished

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "luftnett.cli", "collector", "run"], env=self.env
        )
        self.started = time.monotonic()
        log.info(
            "collector worker started",
            extra={"worker": self.k, "pid": self.proc.pid, "retiring": self.retire},
        )


class WorkerProcesses:
    """Workers 1..N-1 of a collector service, started and kept running until :meth:`stop`;
    and a retiring worker for each of ``retire`` (numbers of workers no longer wanted whose
    sessions the broker keeps), which ends by itself once its session is drained."""

    def __init__(
        self,
        n: int,
        client_id: str,
        group: str,
        database_url: str,
        mqtt_url: str,
        stop_timeout_s: float = 10.0,
        retire: list[int] | None = None,
    ) -> None:
        base = dict(os.environ)

        def env(k: int) -> dict[str, str]:
            return worker_env(base, k, client_id, group, database_url, mqtt_url)

        self._workers = [_Worker(k, env(k)) for k in range(1, n)]
        self._workers += [_Worker(k, env(k), retire=True) for k in retire or []]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="collector-workers", daemon=True)
        self.stop_timeout_s = stop_timeout_s

    def start(self) -> WorkerProcesses:
        for w in self._workers:
            w.start()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for w in self._workers:
                if w.retired or w.proc is None or w.proc.poll() is None:
                    continue
                if w.retire and w.proc.returncode == 0:  # its session is drained and gone
                    w.retired = True
                    log.info("collector worker retired", extra={"worker": w.k})
                    continue
                if w.due == 0.0:  # just found exited
                    if now - w.started >= _HEALTHY_S:
                        w.delay = _RESTART_MIN_S
                    w.due = now + w.delay
                    log.error(
                        "collector worker exited; starting it again",
                        extra={"worker": w.k, "code": w.proc.returncode, "in_s": w.delay},
                    )
                    w.delay = min(_RESTART_MAX_S, 2 * w.delay)
                elif now >= w.due and not self._stop.is_set():
                    w.due = 0.0
                    w.start()

    def stop(self) -> None:
        """SIGTERM every worker (each stops as ``luftnett collector run`` does: its batches
        finish, what it did not commit stays unacknowledged for the broker to deliver again),
        then SIGKILL what is left after ``stop_timeout_s``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        running = [w.proc for w in self._workers if w.proc is not None and w.proc.poll() is None]
        for p in running:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for p in running:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("collector worker did not stop; killing it", extra={"pid": p.pid})
                p.kill()
                p.wait()
