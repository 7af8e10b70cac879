"""The collector's worker processes (``collector.processes`` > 1).

One Python process runs its pipeline (paho's loop, the validator, the writers) under one
interpreter lock. On a 2-core machine two collectors with one writer each stored a burst of
100-reading messages ~10-20 % faster than one collector with two writer threads (the same two
database connections; docs/benchmarks.md, session 9). ``collector.processes = N`` runs N such
pipelines as one service: ``luftnett collector run`` is worker 0 and starts workers 1..N-1 as
child processes (``luftnett collector run`` each, with ``processes = 1``, client id
``<client_id>-<k>``, and no confirmer: the parent's publishes the stored ranges for all).
All take the readings through one shared subscription, ``$share/<group>/...`` (the
configured ``shared_group``, else the client id), exactly as separately started collectors
do: the broker gives each message to one of them, each acknowledges what it committed, and
the database serialises a device's transactions (its row lock), so nothing is lost or stored
twice.

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

log = logging.getLogger(__name__)

__all__ = ["PARENT_ENV", "WorkerProcesses", "die_with_parent", "worker_env"]

#: set in a worker's environment: the pid of the service that started it
PARENT_ENV = "LUFTNETT_COLLECTOR_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_RESTART_MIN_S, _RESTART_MAX_S = 1.0, 30.0
_HEALTHY_S = 60.0  # a worker up this long has its restart delay reset


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
            "LUFTNETT_COLLECTOR__CLIENT_ID": f"{client_id}-{k}",
            "LUFTNETT_COLLECTOR__SHARED_GROUP": group,
            "LUFTNETT_COLLECTOR__CONFIRM_INTERVAL_S": "0",
            PARENT_ENV: str(os.getpid()),
        }
    )
    return env


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
    def __init__(self, k: int, env: dict[str, str]) -> None:
        self.k = k
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.delay = _RESTART_MIN_S
        self.due = 0.0  # when to start it again after an exit

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "luftnett.cli", "collector", "run"], env=self.env
        )
        self.started = time.monotonic()
        log.info("collector worker started", extra={"worker": self.k, "pid": self.proc.pid})


class WorkerProcesses:
    """Workers 1..N-1 of a collector service, started and kept running until :meth:`stop`."""

    def __init__(
        self,
        n: int,
        client_id: str,
        group: str,
        database_url: str,
        mqtt_url: str,
        stop_timeout_s: float = 10.0,
    ) -> None:
        base = dict(os.environ)
        self._workers = [
            _Worker(k, worker_env(base, k, client_id, group, database_url, mqtt_url))
            for k in range(1, n)
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="collector-workers", daemon=True)
        self.stop_timeout_s = stop_timeout_s
        self.restarts = 0

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc is not None]

    def start(self) -> WorkerProcesses:
        for w in self._workers:
            w.start()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for w in self._workers:
                if w.proc is None or w.proc.poll() is None:
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
                    self.restarts += 1

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
