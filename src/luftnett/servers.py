"""Private PostgreSQL and Mosquitto servers from the system binaries, on loopback.

Used by ``luftnett demo``, by every command that finds the demo's servers when nothing is
configured, and by the test fixtures. PostgreSQL refuses to run as root, so as root it runs as
the ``postgres`` user (``runuser``); Mosquitto is told to keep the current user.

Layout under a base directory (``Settings.home`` for the demo)::

    <base>/pg/            PostgreSQL data directory (trust auth, 127.0.0.1 only)
    <base>/mosquitto/     mosquitto.conf, persistence, log, pid
    <base>/servers.json   ports of the last start, so a second terminal finds them
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from luftnett.errors import ServiceError

__all__ = ["EmbeddedMosquitto", "EmbeddedPostgres", "free_port", "wait_port"]

log = logging.getLogger(__name__)

DB_NAME = "luftnett"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not open 127.0.0.1:{port} within {timeout:.0f} s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if found:
        return found[0]
    path = shutil.which(name)
    if path:
        return path
    raise ServiceError(
        f"PostgreSQL's {name} not found; install it with `apt-get install postgresql` "
        "or set LUFTNETT_DATABASE_URL to a running server"
    )


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _read_state(base: Path) -> dict[str, dict[str, int]]:
    try:
        return dict(json.loads((base / "servers.json").read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _write_state(base: Path, key: str, value: dict[str, int]) -> None:
    state = _read_state(base)
    state[key] = value
    tmp = base / "servers.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(base / "servers.json")


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    # the postgres user must be able to walk into it when we are root
    for p in [path, *path.parents]:
        if p == Path("/"):
            break
        if os.geteuid() == 0 and p.stat().st_mode & 0o001 == 0 and p.is_relative_to("/tmp"):
            p.chmod(p.stat().st_mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster of our own in ``base/pg``."""

    base: Path
    port: int = 0
    fast: bool = False  # fsync off: for tests only
    started_here: bool = field(default=False, init=False)

    @property
    def datadir(self) -> Path:
        return self.base / "pg"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def exists(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running_port(self) -> int | None:
        """Port of a postmaster already serving this data directory, if any."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, PermissionError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return port if port_open(port) else None

    def init(self) -> None:
        _make_dir(self.base)
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
        log.info("initialising PostgreSQL cluster", extra={"datadir": str(self.datadir)})
        subprocess.run(
            _as_pg_user(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> str:
        """Start (initdb first if needed) and create the database; return its URL."""
        if not self.exists():
            self.init()
        running = self.running_port()
        if running is not None:
            self.port = running
            return self.url
        if not self.port:
            self.port = _read_state(self.base).get("postgres", {}).get("port") or free_port()
            if port_open(self.port):
                self.port = free_port()
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories='{self.datadir}' -c max_connections=200"
        )
        if self.fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        proc = subprocess.run(
            _as_pg_user(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.datadir / "server.log"),
                    "-o",
                    opts,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = (self.datadir / "server.log").read_text()[-400:]
            raise ServiceError(f"PostgreSQL did not start in {self.datadir}: {proc.stderr} {tail}")
        self.started_here = True
        _write_state(self.base, "postgres", {"port": self.port})
        self._create_db()
        return self.url

    def _create_db(self) -> None:
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname=%s", (DB_NAME,)
            ).fetchone():
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')

    def stop(self) -> None:
        if not self.exists() or self.running_port() is None:
            return
        subprocess.run(
            _as_pg_user([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        self.started_here = False

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class EmbeddedMosquitto:
    """A Mosquitto broker of our own in ``base/mosquitto``, as a child process."""

    base: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # optional security, as deploy/mosquitto/ has it: no anonymous clients once a password file
    # is given; ``tls`` = (cafile, certfile, keyfile) makes the listener TLS-only (mqtts://)
    password_file: Path | None = None
    acl_file: Path | None = None
    tls: tuple[Path, Path, Path] | None = None

    @property
    def dir(self) -> Path:
        return self.base / "mosquitto"

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _security_conf(self) -> str:
        lines = [f"allow_anonymous {'false' if self.password_file else 'true'}"]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls:
            cafile, certfile, keyfile = self.tls
            lines += [f"cafile {cafile}", f"certfile {certfile}", f"keyfile {keyfile}"]
        return "".join(f"{line}\n" for line in lines)

    def running_port(self) -> int | None:
        state = _read_state(self.base).get("mosquitto", {})
        pid, port = state.get("pid"), state.get("port")
        if not pid or not port:
            return None
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return None
        return port if port_open(port) else None

    def start(self) -> str:
        running = self.running_port()
        if running is not None:
            self.port = running
            return self.url
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ServiceError(
                "mosquitto not found; install it with `apt-get install mosquitto` "
                "or set LUFTNETT_MQTT_URL to a running broker"
            )
        _make_dir(self.dir)
        if not self.port:
            self.port = _read_state(self.base).get("mosquitto", {}).get("port") or free_port()
            if port_open(self.port):
                self.port = free_port()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            "# written by luftnett: a private broker on loopback\n"
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\n"
            f"{self._security_conf()}"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 5\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 10000\n"  # the collector's window (deploy/ too)
            f"log_dest file {self.dir}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            wait_port(self.port, 15, "mosquitto")
        except ServiceError:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.proc.kill()
            raise ServiceError(f"mosquitto did not start: {err.strip()[:300]}") from None
        _write_state(self.base, "mosquitto", {"port": self.port, "pid": self.proc.pid})
        return self.url

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self, forget_unsaved: bool = True) -> None:
        """Crash the broker (SIGKILL: nothing saved). ``forget_unsaved`` also deletes its
        persistence file, as if the crash came before the next ``autosave_interval``."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        if forget_unsaved:
            (self.dir / "mosquitto.db").unlink(missing_ok=True)


@contextlib.contextmanager
def running(*servers: EmbeddedPostgres | EmbeddedMosquitto) -> Iterator[None]:
    """Start servers and stop the ones started here on exit, even on Ctrl-C."""
    started: list[EmbeddedPostgres | EmbeddedMosquitto] = []
    try:
        for s in servers:
            was_running = s.running_port() is not None
            s.start()
            if not was_running:
                started.append(s)
        yield
    finally:
        for s in reversed(started):
            s.stop()
