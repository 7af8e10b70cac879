"""The processes a soak run starts, stops and kills: PostgreSQL, Mosquitto, the collector and
an edge agent, the last two as real ``luftnett`` subprocesses.

Servers listen on ports below the ephemeral range, so while one is down no outgoing connection
(a reconnect attempt, a database poll) can take its port and keep it from coming back.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from luftnett.errors import ServiceError
from luftnett.firmware_sim.pty import PtyHost
from luftnett.servers import EmbeddedMosquitto, EmbeddedPostgres

__all__ = [
    "CollectorProcess",
    "EdgeProcess",
    "low_port",
    "outbox_state",
    "uncommitted_wal_frames",
]

SUBSCRIBED = '"subscribed"'


def low_port() -> int:
    """A free loopback port below the ephemeral range."""
    low = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise ServiceError("no free port below the ephemeral range")


def servers(base: Path) -> tuple[EmbeddedPostgres, EmbeddedMosquitto]:
    """A private PostgreSQL (fsync on) and Mosquitto under ``base``, on restartable ports."""
    return EmbeddedPostgres(base / "pg", port=low_port()), EmbeddedMosquitto(
        base / "broker", port=low_port()
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}


class CollectorProcess:
    """``luftnett collector run`` as a child process; :meth:`kill` is a SIGKILL."""

    def __init__(self, db_url: str, mqtt_url: str, root: str, client_id: str, log: Path) -> None:
        self.env = _clean_env()
        self.env.update(
            LUFTNETT_DATABASE_URL=db_url,
            LUFTNETT_MQTT_URL=mqtt_url,
            LUFTNETT_MQTT__TOPIC_ROOT=root,
            LUFTNETT_COLLECTOR__CLIENT_ID=client_id,
            LUFTNETT_LOG_LEVEL="INFO",
        )
        self.log_path = log
        self.proc: subprocess.Popen[str] | None = None
        self._subscribed = threading.Event()
        self._reader: threading.Thread | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until the persistent session's subscription is acknowledged;
        return the seconds that took."""
        t0 = time.monotonic()
        self._subscribed.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "luftnett.cli", "collector", "run"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.starts += 1
        self._reader = threading.Thread(
            target=self._read, args=(self.proc,), name="collector-log", daemon=True
        )
        self._reader.start()
        if not self._subscribed.wait(timeout):
            raise ServiceError(f"the collector did not subscribe within {timeout:.0f} s")
        return time.monotonic() - t0

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        with self.log_path.open("a") as out:
            for line in proc.stderr:
                out.write(line)
                if SUBSCRIBED in line:
                    self._subscribed.set()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self._join()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # as systemd stops it (SIGINT: see wait_forever)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._join()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


class EdgeProcess:
    """``luftnett edge run`` as a child process reading a pty, writing its outbox constantly."""

    def __init__(
        self,
        device_id: str,
        host: PtyHost,
        mqtt_url: str,
        root: str,
        workdir: Path,
        window_s: float,
    ) -> None:
        self.device_id = device_id
        self.host = host
        self.outbox = workdir / f"{device_id}.outbox"
        self.config = workdir / f"{device_id}.toml"
        self.config.write_text(
            f'home = "{workdir / "home"}"\n'
            f'mqtt_url = "{mqtt_url}"\n'
            f'[mqtt]\ntopic_root = "{root}"\n'
            f'[edge]\ndevice_id = "{device_id}"\noutbox_path = "{self.outbox}"\n'
            'clock_check = "off"\npublish_batch = 2\n'
            f'[[edge.sensors]]\nmodel = "sds011"\nport = "{host.path}"\n'
            f"window_s = {window_s}\nwarmup_s = 0\n"
        )
        self.log = workdir / f"{device_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills: list[dict[str, int]] = []

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "luftnett.cli", "edge", "run", "--config", str(self.config)],
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill(self) -> dict[str, int]:
        """SIGKILL; record the outbox as the process left it (before anyone opens it)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        record = {"uncommitted_wal_frames": uncommitted_wal_frames(self.outbox)}
        next_seq, unsent, shed = outbox_state(self.outbox)
        record.update(next_seq=next_seq, unsent=unsent, shed=shed)
        self.kills.append(record)
        return record

    def stop(self) -> int | None:
        """SIGTERM (systemd's stop): the agent drains for 2 s and says goodbye."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def outbox_state(path: Path) -> tuple[int, int, int]:
    """(next_seq, unsent, shed) of an outbox file, read without writing to it."""
    if not path.exists():
        return 0, 0, 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        (unsent,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    finally:
        db.close()
    return int(meta.get("next_seq", 0)), int(unsent), int(meta.get("shed", 0))


def uncommitted_wal_frames(db_path: Path) -> int:
    """Frames of an unfinished transaction at the end of a SQLite WAL file.

    A WAL frame whose header carries a non-zero "database size" ends a transaction; frames of
    the current WAL generation (salts equal to the header's) after the last such frame belong
    to a transaction the writer never committed: the process died inside it.
    """
    wal = Path(f"{db_path}-wal")
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    pending = 0
    off = 32
    while off + 24 + page_size <= len(data):
        header = data[off : off + 24]
        if header[8:16] != salts:
            break
        commit_size = struct.unpack(">I", header[4:8])[0]
        pending = 0 if commit_size else pending + 1
        off += 24 + page_size
    return pending
