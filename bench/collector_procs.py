"""Servers, processes and meters for bench/bench_collector.py.

A private PostgreSQL (fsync on) and Mosquitto; a fresh copy of the migrated database per run;
the processes under test (collector, naive subscriber, mq-bridge, publishers: see
collector_load.py), each on its own; CPU use per process group from /proc; completion by
polling ``count(*)``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from collector_load import clear_session

from luftnett.contracts.mqtt import Reading, ReadingsPayload, SensorInfo, encode
from luftnett.db.migrate import apply_migrations
from luftnett.servers import EmbeddedMosquitto, EmbeddedPostgres

LOAD = Path(__file__).resolve().parent / "collector_load.py"
#: settings for every collector the bench starts (``--collector-env``), e.g. the calibration mode
COLLECTOR_ENV: dict[str, str] = {}
TEMPLATE_DB = "luftnett"  # migrated once, copied for every run
RUN_DB = "bench_run"
DEVICES = 100
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- servers, databases, processes --------------------------------------------------------


@dataclass
class Env:
    base: Path
    pg: EmbeddedPostgres
    mq: EmbeddedMosquitto
    mqb_python: str | None
    mqb_problem: str | None
    runs: int = 0
    procs: list[Proc] = field(default_factory=list)  # every child, to stop on the way out

    def db_url(self, name: str = RUN_DB) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/{name}"

    def fresh_db(self) -> str:
        with psycopg.connect(self.db_url("postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {RUN_DB} TEMPLATE {TEMPLATE_DB}")
        return self.db_url()

    def next_root(self) -> str:
        self.runs += 1
        return f"bench{self.runs}"

    def spec_file(self, name: str, spec: dict[str, Any]) -> Path:
        path = self.base / f"{name}-{self.runs}.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        return path


@contextlib.contextmanager
def servers(mqb_python: str | None) -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix="luftnett-bench-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    pg, mq = EmbeddedPostgres(base, fast=False), EmbeddedMosquitto(base)
    try:
        pg.start()
        mq.start()
        with psycopg.connect(pg.url) as conn:
            apply_migrations(conn)
        problem = None
        if mqb_python is None or not Path(mqb_python).exists():
            problem = f"no mq-bridge interpreter at {mqb_python}"
            mqb_python = None
        env = Env(base, pg, mq, mqb_python, problem)
        yield env
    finally:
        with contextlib.suppress(NameError):
            for p in env.procs:
                if p.p.poll() is None:
                    p.p.kill()
                    p.p.wait()
        mq.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


class Proc:
    """A child process whose stdout lines we can wait for; stderr goes to a file."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: Env,
        extra_env: dict[str, str] | None = None,
        stdin: bool = False,
    ) -> None:
        self.name = name
        self.log = env.base / f"{name}-{env.runs}.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}
        child_env.update(extra_env or {})
        self.t_start = time.time()
        with self.log.open("wb") as err:
            self.p = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                env=child_env,
                text=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                cwd=env.base,
            )
        env.procs.append(self)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put("")  # end of output

    @property
    def pid(self) -> int:
        return self.p.pid

    def wait_line(self, word: str, timeout: float = 60) -> str:
        """Next stdout line containing ``word`` (the child must flush)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if word in line:
                return line
            if not line:
                break
        raise RuntimeError(f"{self.name} did not say {word!r}: {self.tail()}")

    def wait_log(self, word: str, timeout: float = 60) -> float:
        """Time at which ``word`` first appeared in the stderr log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if word in self.log.read_text(errors="replace"):
                return time.time()
            if self.p.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not log {word!r}: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-600:]

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_collector(
    env: Env,
    db: str,
    root: str,
    client_id: str,
    group: str | None,
    writers: int | None = None,
    processes: int | None = None,
) -> Proc:
    extra = {
        "LUFTNETT_DATABASE_URL": db,
        "LUFTNETT_MQTT_URL": env.mq.url,
        "LUFTNETT_MQTT__TOPIC_ROOT": root,
        "LUFTNETT_COLLECTOR__CLIENT_ID": client_id,
        "LUFTNETT_HOME": str(env.base / "home"),
        "LUFTNETT_LOG_LEVEL": "INFO",
    }
    extra.update(COLLECTOR_ENV)
    if group:
        extra["LUFTNETT_COLLECTOR__SHARED_GROUP"] = group
    if writers is not None:
        extra["LUFTNETT_COLLECTOR__WRITERS"] = str(writers)
    if processes is not None:
        extra["LUFTNETT_COLLECTOR__PROCESSES"] = str(processes)
    cmd = [sys.executable, "-m", "luftnett.cli", "collector", "run"]
    return Proc(client_id, cmd, env, extra)


def collector_ready(p: Proc, timeout: float = 60, processes: int = 1) -> float:
    """Wait for the collector's "subscribed" log lines (one per process: its workers log to
    the same file); return the time the last was logged."""
    deadline = time.time() + timeout
    while True:
        p.wait_log('"msg": "subscribed"', max(0.1, deadline - time.time()))
        times = [
            dt.datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
            for line in p.log.read_text(errors="replace").splitlines()
            if '"msg": "subscribed"' in line
        ]
        if len(times) >= processes:
            return max(times)
        if time.time() > deadline:
            raise TimeoutError(f"{p.name}: {len(times)} of {processes} processes subscribed")
        time.sleep(0.05)


def collector_batches(p: Proc) -> Counter[str]:
    """Batches written and messages in them, from the collector's JSON log."""
    c: Counter[str] = Counter()
    for line in p.log.read_text(errors="replace").splitlines():
        if '"batch written"' in line:
            doc = json.loads(line)
            c["batches"] += 1
            c["messages"] += doc.get("messages", 0)
    return c


def start_naive(env: Env, db: str, root: str) -> Proc:
    spec = {
        "database_url": db,
        "host": "127.0.0.1",
        "port": env.mq.port,
        "topic_root": root,
        "client_id": f"naive-{env.runs}",
    }
    p = Proc("naive", [sys.executable, str(LOAD), "naive", str(env.spec_file("naive", spec))], env)
    p.wait_line("subscribed")
    return p


MQB_SINGLE_COLUMNS = (
    "device_id",
    "seq",
    "ts",
    "window_s",
    "n_samples",
    "sensor_model",
    "sensor_serial",
    "pm25_ugm3",
    "pm10_ugm3",
    "schema_version",
)


MQB_SINGLE_MAPPING = {
    "device_id": "$.device_id",
    "sensor_model": "$.sensor.model",
    "sensor_serial": "$.sensor.serial",
    "schema_version": "$.schema_version",
    "seq": "$.readings[0].seq",
    "ts": "$.readings[0].ts",
    "window_s": "$.readings[0].window_s",
    "n_samples": "$.readings[0].n_samples",
    "pm25_ugm3": "$.readings[0].values.pm25_ugm3",
    "pm10_ugm3": "$.readings[0].values.pm10_ugm3",
}


def mqb_tables(db: str) -> None:
    """``mqb_readings``: the layout of ``readings`` (defaults and index, no ledger, no dedupe);
    ``mqb_messages``: one row per message, for batches (mq-bridge does not split a message)."""
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE mqb_readings (LIKE readings INCLUDING DEFAULTS INCLUDING INDEXES)")
        for (col,) in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'mqb_readings' AND is_nullable = 'NO' AND column_default IS NULL"
        ).fetchall():
            if col not in MQB_SINGLE_COLUMNS:
                c.execute(f'ALTER TABLE mqb_readings ALTER COLUMN "{col}" DROP NOT NULL')
        c.execute(
            "CREATE TABLE mqb_messages (device_id text, schema_version smallint, "
            "agent_version text, extra jsonb, received_at timestamptz NOT NULL DEFAULT now())"
        )


def start_mqbridge(env: Env, db: str, root: str, client_id: str, per_msg: int) -> Proc:
    assert env.mqb_python is not None
    mqtt = {
        "url": f"tcp://127.0.0.1:{env.mq.port}",
        "topic": f"{root}/v1/+/readings",
        "qos": 1,
        "client_id": client_id,
        "clean_session": False,
        "session_expiry_interval": 3600,
        "max_inflight": 1000,
        "queue_capacity": 10_000,
    }
    if per_msg == 1:  # one reading per message: flatten it into the columns of readings
        cols = ", ".join(MQB_SINGLE_COLUMNS)
        vals = ", ".join(f"${{payload:{c}}}" for c in MQB_SINGLE_COLUMNS)
        inp = {"mqtt": mqtt, "middlewares": [{"transform": {"mapping": MQB_SINGLE_MAPPING}}]}
        insert = f"INSERT INTO mqb_readings ({cols}) VALUES ({vals})"  # noqa: S608 - fixed names
        out = {
            "sqlx": {"url": db, "table": "mqb_readings", "bulk_copy": True, "insert_query": insert}
        }
    else:  # a batch: top-level fields into columns, the rest (readings array) as jsonb
        inp = {"mqtt": mqtt}
        out = {
            "sqlx": {"url": db, "table": "mqb_messages", "columns": "auto", "extra_column": "extra"}
        }
    spec = {"route": {"input": inp, "output": out, "batch_size": 512}}
    p = Proc(
        client_id,
        [env.mqb_python, str(LOAD), "mqbridge", str(env.spec_file("mqbridge", spec))],
        env,
    )
    return p


def mqb_config_text() -> str:
    return (
        "input `mqtt` (QoS 1, persistent session, max_inflight 1000, queue_capacity 10000), "
        "route batch_size 512 (its default), concurrency 1 (default)"
    )


def _reading(d: int, s: int, stats: bool) -> Reading:
    values = {"pm25_ugm3": 3.0 + (s * 7 + d) % 40 / 4, "pm10_ugm3": 6.0 + (s * 5 + d) % 60 / 4}
    window = {}
    if stats:
        window = {
            "n": dict.fromkeys(values, 60),
            "min": {k: round(v * 0.8, 3) for k, v in values.items()},
            "max": {k: round(v * 1.3, 3) for k, v in values.items()},
        }
    return Reading(
        seq=s,
        ts=T0 + dt.timedelta(minutes=s),
        window_s=60.0,
        n_samples=60,
        values=values,
        **window,  # type: ignore[arg-type]
    )


def make_messages(
    n_readings: int, per_msg: int, per_device: int | None = None, stats: bool = False
) -> list[tuple[str, str]]:
    """(device_id, payload) of ``n_readings`` one-minute readings from 100 SDS011 devices,
    ``per_msg`` readings per message, devices interleaved as a fleet publishes; ``stats``: with
    the window statistics (``n``, ``min``, ``max`` per quantity) the edge agent's averaging
    puts in every reading (``edge/averaging.py``), stored in ``extra``."""
    per_device = per_device or -(-n_readings // DEVICES)
    sensor = SensorInfo(model="sds011", serial="bench")
    streams = []
    left = n_readings
    for d in range(DEVICES):
        device = f"dev-{d:03d}"
        k = min(per_device, left)
        left -= k
        chunks = []
        for start in range(0, k, per_msg):
            readings = [_reading(d, s, stats) for s in range(start, min(start + per_msg, k))]
            p = ReadingsPayload(
                device_id=device, agent_version="bench", sensor=sensor, readings=readings
            )
            chunks.append((device, encode(p).decode()))
        streams.append(chunks)
    out: list[tuple[str, str]] = []
    for i in range(max(len(s) for s in streams)):
        out.extend(s[i] for s in streams if i < len(s))
    return out


#: (device ids, seqs, times) of each device's last reading
LastReadings = tuple[list[str], list[int], list[dt.datetime]]


@dataclass(frozen=True)
class Workload:
    name: str
    per_msg: int
    messages: list[tuple[str, str]]
    readings: int
    #: each device's last reading (:func:`last_readings`), found once, before any timing
    last: LastReadings


def workload(
    name: str, n_readings: int, per_msg: int, per_device: int | None = None, stats: bool = False
) -> Workload:
    msgs = make_messages(n_readings, per_msg, per_device, stats)
    return Workload(name, per_msg, msgs, n_readings, last_readings(msgs))


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class CpuMeter:
    """CPU % (of one core) of process groups between start() and stop(); ``other`` is every
    process not in a group: other engineers' jobs on a shared machine."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.groups: dict[str, list[int]] = {}
        self.before: dict[int, float] = {}

    def _pg_pids(self) -> list[int]:
        try:
            master = int((self.env.pg.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [master, *children(master)]

    def start(self, **groups: list[int]) -> None:
        self.groups = dict(groups)
        self.groups["mosquitto"] = [self.env.mq.proc.pid] if self.env.mq.proc else []
        self.groups["harness"] = [os.getpid()]
        self.before = {p: cpu_s(p) for ps in self.groups.values() for p in ps}
        self.before.update({p: cpu_s(p) for p in self._pg_pids()})
        self.busy = busy_s()
        self.t = time.time()

    def add(self, group: str, pid: int) -> None:
        self.groups.setdefault(group, []).append(pid)
        self.before[pid] = cpu_s(pid)

    def stop(self, extra_cpu_s: dict[str, float] | None = None) -> dict[str, float]:
        """``extra_cpu_s``: CPU seconds that processes which already exited reported."""
        self.wall = time.time() - self.t
        self.groups["postgres"] = self._pg_pids()
        used = {
            g: sum(max(0.0, cpu_s(p) - self.before.get(p, 0.0)) for p in ps)
            for g, ps in self.groups.items()
        }
        for g, v in (extra_cpu_s or {}).items():
            used[g] = used.get(g, 0.0) + v
        used["other"] = max(0.0, busy_s() - self.busy - sum(used.values()))
        return {g: round(100 * v / self.wall) for g, v in used.items()}


def wait_quiet(max_s: float, limit_pct: float = 25.0, window_s: float = 2.0) -> float:
    """Wait (at most ``max_s``) until the machine's busy CPU over ``window_s`` is below
    ``limit_pct`` of one core; return the last busy %. The servers are idle meanwhile."""
    deadline = time.time() + max_s
    while True:
        b0 = busy_s()
        time.sleep(window_s)
        pct = 100 * (busy_s() - b0) / window_s
        if pct < limit_pct or time.time() > deadline:
            return pct


def last_readings(messages: list[tuple[str, str]]) -> LastReadings:
    """Each device's last reading in these messages: (device ids, seqs, times)."""
    last: dict[str, tuple[int, dt.datetime]] = {}
    for device, payload in messages:
        r = json.loads(payload)["readings"][-1]
        ts = dt.datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
        if device not in last or r["seq"] > last[device][0]:
            last[device] = (r["seq"], ts)
    devices = sorted(last)
    return devices, [last[d][0] for d in devices], [last[d][1] for d in devices]


# the workload's last reading of every device, found through each table's index
_PROBES = {
    "readings": "SELECT count(*) FROM unnest(%s::text[], %s::int8[], %s::timestamptz[]) "
    "AS u(d, s, t) WHERE EXISTS (SELECT 1 FROM {table} r WHERE r.device_id = u.d AND r.ts = u.t)",
    "calibrated_values": "SELECT count(DISTINCT u.d) FROM unnest(%s::text[], %s::int8[], "
    "%s::timestamptz[]) AS u(d, s, t) JOIN {table} c ON c.device_id = u.d AND c.seq = u.s",
}
_PROBES["mqb_readings"] = _PROBES["readings"]


def poll_count(
    db: str,
    table: str,
    expected: int,
    t_start: float,
    stall_s: float = 180,
    last: LastReadings | None = None,
) -> tuple[float, int]:
    """Poll until ``table`` holds ``expected`` rows (the interval grows with the run: 1 %), or
    until no row arrived for ``stall_s``: one transaction of 500 messages of 100 readings can
    take tens of seconds on a loaded machine, so this is generous.

    With ``last`` (:func:`last_readings`) and a table that has an index to find them, each
    poll first looks up every device's last reading (a few index probes) and counts the whole
    table only once all are there (each device's readings are committed in order): a
    ``count(*)`` of 200,000 rows every 20 ms kept the server busy for a fifth of the run,
    a load the bare COPY, timed without polling, never had. The probes are planned afresh
    each time, joins by index only: planned on the still-empty table (a collector's first
    commit can come after the fifth poll) and then kept as the prepared statement's generic
    plan, the probe hashed the whole table every poll, up to a core's work during a run."""
    last_n, last_change = -1, time.time()
    probe = _PROBES[table].format(table=table) if last is not None and table in _PROBES else None
    devices = last[0] if last is not None else []
    counted = 0.0
    with psycopg.connect(db, autocommit=True, prepare_threshold=None) as c:
        c.execute("SET enable_hashjoin = off")
        c.execute("SET enable_mergejoin = off")
        while True:
            t = time.time()
            done = probe is None or c.execute(probe, last).fetchone() == (len(devices),)
            if done or t - counted > 2.0:  # also every 2 s: progress, for the stall check
                counted = t
                (n,) = c.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)  # noqa: S608
                if n >= expected:
                    return t, n
                if done:
                    probe = None  # not in order after all: count every time
                if n != last_n:
                    last_n, last_change = n, t
                elif t - last_change > stall_s:
                    return t, n
            time.sleep(min(0.5, max(0.02, (t - t_start) / 100)))


def publish(env: Env, root: str, w: Workload, publishers: int = 1) -> list[Proc]:
    """Start publisher processes, each with its share of devices; return them once ready."""
    procs = []
    for k in range(publishers):
        mine = [m for i, m in enumerate(w.messages) if int(m[0][-3:]) % publishers == k]
        path = env.base / f"messages-{env.runs}-{k}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for m in mine:
                f.write(json.dumps(m) + "\n")
        spec = {
            "host": "127.0.0.1",
            "port": env.mq.port,
            "topic_root": root,
            "client_id": f"pub-{env.runs}-{k}",
            "messages": str(path),
            "window": 1000,
        }
        p = Proc(
            f"publisher{k}",
            [sys.executable, str(LOAD), "publish", str(env.spec_file(f"pub{k}", spec))],
            env,
            stdin=True,
        )
        procs.append(p)
    for p in procs:
        p.wait_line("ready", 300)
    return procs


def go(procs: list[Proc]) -> None:
    for p in procs:
        assert p.p.stdin is not None
        p.p.stdin.write("go\n")
        p.p.stdin.flush()


def finish_publishers(procs: list[Proc]) -> tuple[float, float, float]:
    """(first publish, last PUBACK, CPU seconds) over all publishers."""
    res = [json.loads(p.wait_line("t_first", 600)) for p in procs]
    for p in procs:
        p.stop()
    if not all(r["ok"] for r in res):
        raise RuntimeError("a publisher did not get all its PUBACKs")
    return (
        min(r["t_first"] for r in res),
        max(r["t_acked"] for r in res),
        sum(r["cpu_s"] for r in res),
    )


def clear_sessions(env: Env, client_ids: list[str]) -> None:
    for cid in client_ids:
        clear_session("127.0.0.1", env.mq.port, cid)
