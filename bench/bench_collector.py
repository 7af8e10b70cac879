"""Benchmark the collector against its peers in the same run; write docs/benchmarks.md.

    python bench/bench_collector.py --profile short   # < 3 min, for CI
    python bench/bench_collector.py --profile full    # the real measurement (~15 min)
    python bench/bench_collector.py --profile short --no-write --only copy,collector
    python bench/bench_collector.py --profile short --py-spy  # adds a profile of the collector
    python bench/bench_collector.py --render /tmp/bench_collector.json  # re-render saved results

Starts a private PostgreSQL (fsync on: ``EmbeddedPostgres(fast=False)``) and Mosquitto, migrates
a template database and gives every run a fresh copy of it and a topic root of its own. Every
process under test runs on its own: the collector (``python -m luftnett.cli collector run``),
the publishers, the naive subscriber and mq-bridge (bench/collector_load.py).

1. End-to-end readings/s, first publish to the last committed row (``count(*)`` polled), for
   single-reading messages and 100-reading batches, with one collector and with two on a shared
   subscription; the same messages through the naive subscriber (row-by-row autocommit INSERT,
   the floor) and through mq-bridge 1.2 (a Rust MQTT->PostgreSQL bridge writing COPY batches),
   and the same rows by a bare psycopg COPY into ``readings`` (the ceiling).
2. Preloaded: the messages wait in the consumer's persistent session, then the consumer starts:
   its own capacity, with no publisher sharing the CPUs.
3. p50/p99 publish-to-stored latency at a steady 1,000 single-reading messages/s.
4. Backlog drain: 100 devices x 1,440 one-minute readings in 100-reading messages, published
   while the collector is stopped; time from starting it to the last row stored.

mq-bridge runs from its own virtual environment (``--mqbridge-python``, default
/tmp/mqbenv/bin/python; ``python -m venv /tmp/mqbenv && /tmp/mqbenv/bin/pip install
mq-bridge==1.2.0``); without it, its rows say why and the issue's quoted figures are shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from collector_procs import (
    COLLECTOR_ENV,
    DEVICES,
    LOAD,
    CpuMeter,
    Env,
    Proc,
    Workload,
    children,
    clear_sessions,
    collector_batches,
    collector_ready,
    finish_publishers,
    go,
    mqb_tables,
    poll_count,
    publish,
    servers,
    start_collector,
    start_mqbridge,
    start_naive,
    wait_quiet,
    workload,
)
from collector_report import (
    DOC,
    Backlog,
    Latency,
    Results,
    Run,
    machine,
    report,
    summarize_pyspy,
    write_section,
)
from collector_stages import Stage, stages
from quiet import exclusive

from luftnett.contracts.mqtt import readings_topic


@dataclass(frozen=True)
class Profile:
    single_msgs: int  # single-reading messages per live run (collector, mq-bridge)
    batch_readings: int  # readings per live run in 100-reading messages
    naive_readings: int  # the naive subscriber is slow: fewer
    preload_msgs: int  # single-reading messages waiting in the session (<= broker queue)
    latency_s: float
    backlog_per_device: int  # one-minute readings per device (1,440: a day)
    stage_single_msgs: int
    stage_batch_readings: int
    sustained_readings: int  # the sustained100 workload: a load, not a burst
    repeats: int
    quiet_wait_s: float  # per run, waiting for other jobs on the machine to calm down
    quiet_budget_s: float  # in all


PROFILES = {
    "short": Profile(5_000, 20_000, 1_000, 5_000, 5, 144, 2_000, 10_000, 300_000, 1, 0, 0),
    "full": Profile(
        30_000, 200_000, 5_000, 30_000, 60, 1_440, 20_000, 100_000, 1_000_000, 3, 30, 300
    ),
}


def verify(db: str, table: str, run: Run) -> None:
    with psycopg.connect(db) as c:
        if table in ("readings", "mqb_readings"):
            row = c.execute(
                f"SELECT count(*), count(DISTINCT (device_id, seq)) FROM {table}"  # noqa: S608
            ).fetchone()
            run.rows, run.distinct = (row[0], row[1]) if row else (0, 0)
        else:
            (run.rows,) = c.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)  # noqa: S608


#: the kinds of consumer that are luftnett collectors
COLLECTORS = ("collector", "collector-1w", "collector-2p")
_LABELS = {
    "collector-1w": "collector x1, 1 writer",
    "collector-2p": "collector x1, 2 processes",
}


def start_consumers(
    env: Env, kind: str, db: str, root: str, w: Workload, n: int
) -> tuple[list[Proc], str, list[str]]:
    """Start ``n`` consumers of ``kind``; return them, their table and their MQTT client ids."""
    if kind in COLLECTORS:
        group = "bench" if n > 1 else None
        ids = [f"col-{env.runs}-{k}" for k in range(n)]
        # None: the defaults (2 writers, 1 process); collector-2p: one service of 2 processes
        # with one writer each (collector.processes; its worker's client id is <id>-w1)
        writers = 1 if kind in ("collector-1w", "collector-2p") else None
        # --collector-env may set processes too: wait for all of them, clear their sessions
        processes = 2 if kind == "collector-2p" else None
        per_service = processes or int(COLLECTOR_ENV.get("LUFTNETT_COLLECTOR__PROCESSES", "1"))
        procs = [start_collector(env, db, root, cid, group, writers, processes) for cid in ids]
        for p in procs:
            collector_ready(p, processes=per_service)
        ids += [f"{cid}-w{k}" for cid in ids for k in range(1, per_service)]
        return procs, "readings", ids
    if kind == "naive":
        return [start_naive(env, db, root)], "readings", []
    if kind == "mq-bridge":
        mqb_tables(db)
        cid = f"mqb-{env.runs}"
        p = start_mqbridge(env, db, root, cid, w.per_msg)
        p.wait_line("subscribed")
        return [p], ("mqb_readings" if w.per_msg == 1 else "mqb_messages"), [cid]
    raise ValueError(kind)


def calibrated_by(db: str, w: Workload, t_start: float) -> float:
    """When the last calibrated value of the run was committed: every bench reading has a
    PM2.5 and a PM10 value with a fleet default in force, so two values per reading (the
    collector writes them after the readings' commit by default: collector.calibration)."""
    t, n = poll_count(db, "calibrated_values", 2 * w.readings, t_start, last=w.last)
    return t if n >= 2 * w.readings else 0.0


def expected_rows(kind: str, w: Workload) -> int:
    return len(w.messages) if kind == "mq-bridge" and w.per_msg > 1 else w.readings


def live_run(env: Env, kind: str, w: Workload, n: int = 1, publishers: int = 1) -> Run:
    """Consumers subscribed first; publish everything as fast as possible; time to the last
    committed row."""
    db, root = env.fresh_db(), env.next_root()
    label = f"{kind} x{n}" if kind == "collector" else _LABELS.get(kind, kind)
    run = Run(label, w.name, "live", len(w.messages), w.readings, expected_rows(kind, w))
    procs, table, ids = start_consumers(env, kind, db, root, w, n)
    pubs: list[Proc] = []
    try:
        pubs = publish(env, root, w, publishers)
        with exclusive(f"collector bench: {label} {w.name}"):
            meter = CpuMeter(env)
            # a collector's worker processes count as the collector
            meter.start(consumer=[q for p in procs for q in (p.pid, *children(p.pid))])
            go(pubs)
            t_go = time.time()
            run.t_done, _ = poll_count(db, table, run.expected_rows, t_go, last=w.last)
            if kind in COLLECTORS:
                run.t_calibrated = calibrated_by(db, w, t_go)
            run.t_first, run.t_pub_acked, pub_cpu = finish_publishers(pubs)
            run.cpu = meter.stop({"publisher": pub_cpu})
            run.cpu_wall = meter.wall
        if kind in COLLECTORS:
            for p in procs:
                for k, v in collector_batches(p).items():
                    run.batches[k] = run.batches.get(k, 0) + v
    finally:
        for p in [*pubs, *procs]:
            p.stop(signal.SIGINT if p in procs and kind in COLLECTORS else signal.SIGTERM)
        clear_sessions(env, ids)
    verify(db, table, run)
    return run


def preloaded_run(env: Env, kind: str, w: Workload) -> Run:
    """Publish while the consumer is away (its persistent session holds the messages), then
    time from starting the consumer process to the last committed row."""
    db, root = env.fresh_db(), env.next_root()
    run = Run(kind, w.name, "preloaded", len(w.messages), w.readings, expected_rows(kind, w))
    procs, table, ids = start_consumers(env, kind, db, root, w, 1)
    for p in procs:  # the session now exists; stop the consumer, keep the session
        p.stop(signal.SIGINT if kind == "collector" else signal.SIGTERM)
    pubs = publish(env, root, w)
    go(pubs)
    finish_publishers(pubs)
    time.sleep(1.0)  # let the broker settle (it saves its store every 5 s)
    lock = ExitStack()  # the timed part holds the machine; closed when it ends (or fails)
    lock.enter_context(exclusive(f"collector bench: preloaded {kind} {w.name}"))
    if kind == "collector":
        p = start_collector(env, db, root, ids[0], None)
    else:
        p = start_mqbridge(env, db, root, ids[0], w.per_msg)
    try:
        run.t_first = p.t_start
        meter = CpuMeter(env)
        meter.start(consumer=[p.pid])
        run.t_done, _ = poll_count(db, table, run.expected_rows, run.t_first, last=w.last)
        if kind == "collector":
            run.t_calibrated = calibrated_by(db, w, run.t_first)
        run.cpu = meter.stop()
        run.cpu_wall = meter.wall
        lock.close()
        if kind == "collector":
            run.note = f"subscribed after {collector_ready(p, 5) - p.t_start:.1f} s"
            run.batches = dict(collector_batches(p))
    finally:
        lock.close()  # a no-op when closed above
        p.stop(signal.SIGINT if kind == "collector" else signal.SIGTERM)
        clear_sessions(env, ids)
    verify(db, table, run)
    return run


def _validated(w: Workload) -> list[Any]:
    """The workload's messages as the collector's validation accepts them."""
    from luftnett.collector.validate import Accepted, validate_message

    items = []
    for device, payload in w.messages:
        item = validate_message("bench", readings_topic("bench", device), payload.encode())
        assert isinstance(item, Accepted), item
        items.append(item)
    return items


def _timed_copies(
    env: Env, w: Workload, label: str, parts: list[Any], copy_part: Callable[[Any, Any], None]
) -> Run:
    """Into a fresh database, ``copy_part(conn, part)`` and a commit for each part, timed
    and metered as consumer ``label``; the rows verified after."""
    db = env.fresh_db()
    run = Run(label, w.name, "copy", len(w.messages), w.readings, w.readings)
    with psycopg.connect(db) as conn, exclusive(f"collector bench: {label}"):
        meter = CpuMeter(env)
        meter.start()
        run.t_first = time.time()
        for part in parts:
            copy_part(conn, part)
            conn.commit()
        run.t_done = time.time()
        run.cpu = meter.stop()
    run.cpu["consumer"] = run.cpu.pop("harness")  # the COPY client is this process
    verify(db, "readings", run)
    return run


def copy_run(env: Env, w: Workload, chunk: int = 10_000) -> Run:
    """The same rows as the collector stores, COPY'd into readings in binary format by
    psycopg, ``chunk`` rows per transaction. The records are laid out before the clock
    starts, by the collector's own builders (validation, :func:`reading_records`: as the
    collector writes them, ``extra`` included), so the COPY is the server's work and the
    sending only: the ceiling."""
    import numpy as np

    from luftnett.collector.columns import BatchColumns
    from luftnett.collector.copybin import reading_records
    from luftnett.collector.writer import _BIN_HEADER, _BIN_TRAILER, _COPY, _TYPES
    from luftnett.contracts.units import FLAGS_VERSION

    items = _validated(w)
    per = max(1, chunk // w.per_msg)  # messages per transaction
    blobs: list[bytes] = []
    for i in range(0, len(items), per):
        b = BatchColumns.join([(a.device, a.readings) for a in items[i : i + per]])
        zero = np.zeros(len(b), dtype=np.int64)
        recs, left = reading_records(b, zero, zero, FLAGS_VERSION)
        assert not left.size, "the bench's rows are all laid out by numpy"
        blobs.append(_BIN_HEADER + recs + _BIN_TRAILER)

    def copy_blob(conn: Any, blob: bytes) -> None:
        with conn.cursor() as cur, cur.copy(_COPY) as copy:  # the writer's own statement
            copy.set_types(_TYPES)
            copy.write(blob)

    return _timed_copies(env, w, "bare COPY", blobs, copy_blob)


def plain_copy_run(env: Env, w: Workload, chunk: int = 10_000) -> Run:
    """The same rows COPY'd the way a plain psycopg program does it: each reading a Python
    tuple (built before the clock starts, from the collector's validation), ``write_row``
    per row in COPY's text format, ``chunk`` rows per transaction, same table and index.
    The baseline as this benchmark first measured it (1358b8b), beside :func:`copy_run`, the
    stricter ceiling the ratios are to: how much stricter it is."""
    from luftnett.collector.columns import BatchColumns
    from luftnett.db.schema import READING_COLUMNS

    rows = BatchColumns.join([(a.device, a.readings) for a in _validated(w)]).rows()
    sql = f"COPY readings ({', '.join(READING_COLUMNS)}) FROM STDIN"

    def copy_rows(conn: Any, part: list[tuple[Any, ...]]) -> None:
        with conn.cursor() as cur, cur.copy(sql) as copy:
            for r in part:
                copy.write_row(r)

    parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    return _timed_copies(env, w, "plain COPY", parts, copy_rows)


def publisher_alone(env: Env, w: Workload) -> Run:
    """The publisher into a topic nobody subscribes to: the feed's own ceiling."""
    root = env.next_root()
    run = Run("publisher alone", w.name, "live", len(w.messages), w.readings, 0)
    pubs = publish(env, root, w)
    with exclusive(f"collector bench: publisher alone {w.name}"):
        meter = CpuMeter(env)
        meter.start()
        go(pubs)
        run.t_first, run.t_pub_acked, pub_cpu = finish_publishers(pubs)
        run.t_done = run.t_pub_acked
        run.cpu = meter.stop({"publisher": pub_cpu})
    return run


def latency_run(env: Env, duration_s: float, rate: float = 1000.0, poll_s: float = 0.02) -> Latency:
    """A steady ``rate`` of single-reading messages whose ``ts`` is their send time. A poller
    selects new rows every ``poll_s``; a row's stored time is the start of the first query that
    sees it (its commit happened before that query's snapshot and after the previous one's)."""
    db, root = env.fresh_db(), env.next_root()
    col = start_collector(env, db, root, f"col-{env.runs}-lat", None)
    collector_ready(col)
    spec = {
        "host": "127.0.0.1",
        "port": env.mq.port,
        "topic_root": root,
        "rate": rate,
        "duration_s": duration_s,
        "client_id": f"paced-{env.runs}",
    }
    pub = Proc(
        "paced",
        [sys.executable, str(LOAD), "paced", str(env.spec_file("paced", spec))],
        env,
        stdin=True,
    )
    pub.wait_line("ready")
    devices = [f"lat-{i:03d}" for i in range(DEVICES)]
    seen: dict[tuple[str, int], float] = {}
    expected = int(rate * duration_s)
    meter = CpuMeter(env)
    lock = ExitStack()
    lock.enter_context(exclusive("collector bench: latency"))
    meter.start(consumer=[col.pid])
    go([pub])
    with psycopg.connect(db, autocommit=True) as c:
        # A device's messages go to one writer of the collector, so its rows commit in publish
        # (= ts) order: one watermark per device finds every new row (the writers commit
        # independently, so a single watermark over all devices would skip the rows of the
        # writer that commits later).
        watermark = dict.fromkeys(devices, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        deadline = time.time() + duration_s + 15
        while len(seen) < expected and time.time() < deadline:
            t = time.time()
            got = c.execute(
                "SELECT r.device_id, r.seq, r.ts FROM unnest(%s::text[], %s::timestamptz[]) "
                "AS w(device_id, ts) JOIN readings r ON r.device_id = w.device_id AND r.ts > w.ts",
                (devices, [watermark[d] for d in devices]),
            ).fetchall()
            for device, seq, ts in got:
                if (device, seq) not in seen:
                    seen[(device, seq)] = t - ts.timestamp()
                    watermark[device] = max(watermark[device], ts)
            time.sleep(max(0.0, poll_s - (time.time() - t)))
        db_lat = [
            r[0] for r in c.execute("SELECT extract(epoch FROM received_at - ts) FROM readings")
        ]
    res = json.loads(pub.wait_line("t_first"))
    cpu = meter.stop({"publisher": res["cpu_s"]})
    lock.close()
    pub.stop()
    col.stop()
    clear_sessions(env, [f"col-{env.runs}-lat"])
    lat = sorted(seen.values())
    dbl = sorted(float(x) for x in db_lat)

    def q(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")

    return Latency(
        expected,
        len(lat),
        q(lat, 0.5),
        q(lat, 0.99),
        lat[-1] if lat else float("nan"),
        q(dbl, 0.5),
        q(dbl, 0.99),
        res.get("max_late_s", 0.0),
        poll_s,
        cpu,
    )


def backlog_run(env: Env, per_device: int) -> Backlog:
    """100 devices' backlog in 100-reading messages, published while the collector is stopped
    (its persistent session holds them); time from starting it to the last row stored."""
    w = workload("backlog", DEVICES * per_device, 100, per_device)
    r = preloaded_run(env, "collector", w)
    sub = float(r.note.split()[2]) if r.note else float("nan")
    cal = r.t_calibrated - r.t_first if r.t_calibrated else 0.0
    return Backlog(w.readings, len(w.messages), sub, r.seconds, r.rows, r.cpu, cal)


def pyspy_run(env: Env, w: Workload) -> str:
    """One live run of a single collector under ``py-spy record``; summary of where it spends."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return "py-spy not installed (`pip install py-spy`)"
    db, root = env.fresh_db(), env.next_root()
    cid = f"col-{env.runs}-spy"
    col = start_collector(env, db, root, cid, None)
    collector_ready(col)
    raw = env.base / "collector.pyspy.txt"
    spy = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(col.pid),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--rate",
            "200",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    pubs = publish(env, root, w)
    with exclusive("collector bench: py-spy"):
        go(pubs)
        poll_count(db, "readings", w.readings, time.time())
        finish_publishers(pubs)
    col.stop()
    spy.wait(30)
    clear_sessions(env, [cid])
    kept = Path(tempfile.gettempdir()) / "bench_collector.pyspy.txt"
    shutil.copy(raw, kept)
    print(f"py-spy raw stacks kept in {kept}", file=sys.stderr)
    return summarize_pyspy(raw)


STEPS = (
    "stages",
    "pub",
    "copy",
    "plaincopy",
    "collector",
    "collector1w",
    "collector2p",
    "collector2",
    "mqbridge",
    "naive",
    "preload",
    "latency",
    "backlog",
)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="short")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--doc", type=Path, default=DOC, help="file to write the section into")
    ap.add_argument("--only", help=f"comma-separated subset of: {','.join(STEPS)}")
    ap.add_argument("--mqbridge-python", default="/tmp/mqbenv/bin/python")
    ap.add_argument("--publishers", type=int, default=1, help="publisher processes")
    ap.add_argument(
        "--py-spy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile one run of the collector (default: on in full)",
    )
    ap.add_argument(
        "--collector-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every collector started (repeatable), e.g. "
        "LUFTNETT_COLLECTOR__CALIBRATION=inline; the report lists them",
    )
    ap.add_argument(
        "--batch-readings",
        type=int,
        default=None,
        metavar="N",
        help="readings per 100-reading-message run (default: the profile's; full 200,000); "
        "1,000,000 measures a sustained load rather than a burst",
    )
    ap.add_argument(
        "--workloads",
        default=None,
        help="comma-separated workloads of the end-to-end steps: single, batch100, edge100 "
        "(100-reading messages with the window statistics the edge agent sends), sustained100 "
        "(plain 100-reading messages, 1,000,000 readings in full: a load the calibration has "
        "to keep up with, not a burst); the last two for the collectors and the bare COPY "
        "only (default: all in full, all but sustained100 in short)",
    )
    ap.add_argument(
        "--py-spy-workload",
        choices=("single", "batch100"),
        default="single",
        help="the workload of the profiled run (the profile's message count)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        metavar="S",
        help="before each run wait up to S s for other jobs' CPU < 25 %% of a core "
        "(default: none in short; 30 s per run, 300 s in all, in full)",
    )
    ap.add_argument(
        "--results",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_collector.json",
        help="where to save the measurements (JSON)",
    )
    ap.add_argument("--render", type=Path, metavar="JSON", help="only render saved results")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help="rounds of the alternating runs (default: the profile's; full 3, short 1)",
    )
    args = ap.parse_args(argv)
    for kv in args.collector_env:
        key, sep, value = kv.partition("=")
        if not sep or not key.startswith("LUFTNETT_"):
            ap.error(f"--collector-env wants LUFTNETT_...=VALUE, not {kv!r}")
        COLLECTOR_ENV[key] = value
    if args.render:
        return emit(report(Results.from_json(args.render.read_text(encoding="utf-8"))), args)
    prof = PROFILES[args.profile]
    if args.repeats is not None:
        prof = dataclasses.replace(prof, repeats=max(1, args.repeats))
    quiet_per_run = prof.quiet_wait_s if args.quiet_wait is None else args.quiet_wait
    quiet_left = prof.quiet_budget_s if args.quiet_wait is None else 1e9
    steps = set(args.only.split(",")) if args.only else set(STEPS)
    t_start = time.time()

    def quiet() -> str:
        """Wait for other jobs to calm down, within the budget; say how busy it was."""
        nonlocal quiet_left
        if quiet_per_run <= 0 or quiet_left <= 0:
            return ""
        t = time.time()
        pct = wait_quiet(min(quiet_per_run, quiet_left))
        quiet_left -= time.time() - t
        return f" (other jobs {pct:.0f} % of a core)"

    def say(msg: str) -> None:
        print(f"[{time.time() - t_start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    runs: list[Run] = []
    errors: list[str] = []
    lat = backlog = spy = None
    stage_rows: list[Stage] = []

    def save() -> None:
        """Save what is measured so far (a long run on a busy machine may be cut short)."""
        res = Results(args.profile, machine(env), env.mqb_problem, runs, lat, backlog,
                      stage_rows, spy, errors, time.time() - t_start)  # fmt: skip
        args.results.write_text(res.to_json(), encoding="utf-8")

    with servers(args.mqbridge_python) as env:
        if env.mqb_problem and "mqbridge" in steps:
            errors.append(f"mq-bridge: {env.mqb_problem}; the issue's quoted figures are shown")
        say("encoding messages")
        single = workload("single", prof.single_msgs, 1)
        batch = workload("batch100", args.batch_readings or prof.batch_readings, 100)
        wanted = set(
            (
                args.workloads
                or "single,batch100,edge100" + (",sustained100" if args.profile == "full" else "")
            ).split(",")
        )
        sustained = (
            workload("sustained100", prof.sustained_readings, 100)
            if "sustained100" in wanted
            else None
        )
        edge = (
            workload("edge100", args.batch_readings or prof.batch_readings, 100, stats=True)
            if "edge100" in wanted
            else None
        )
        n_single = workload("single", prof.naive_readings, 1)
        n_batch = workload("batch100", prof.naive_readings, 100)
        stage_single = workload("single", prof.stage_single_msgs, 1)
        stage_batch = workload("batch100", prof.stage_batch_readings, 100)
        plan: list[tuple[str, Any]] = []
        if "pub" in steps:
            plan += [
                ("pub", lambda: publisher_alone(env, single)),
                ("pub", lambda: publisher_alone(env, batch)),
            ]
        for step, copier in (("copy", copy_run), ("plaincopy", plain_copy_run)):
            if step in steps:  # the baselines, for the multi-reading workloads
                plan += [
                    (step, lambda c=copier, w=w: c(env, w))
                    for w in (batch, edge, sustained)
                    if w is not None
                ]
        for w, nw in ((single, n_single), (batch, n_batch), (edge, None), (sustained, None)):
            if w is None or w.name not in wanted:
                continue
            if "collector" in steps:
                plan.append(
                    ("collector", lambda w=w: live_run(env, "collector", w, 1, args.publishers))
                )
            if "collector1w" in steps and w is not sustained:
                plan.append(("collector1w", lambda w=w: live_run(env, "collector-1w", w)))
            if "collector2p" in steps:
                plan.append(("collector2p", lambda w=w: live_run(env, "collector-2p", w)))
            if "collector2" in steps:
                plan.append(
                    ("collector2", lambda w=w: live_run(env, "collector", w, 2, args.publishers))
                )
            if nw is None:  # edge100, sustained100: the collectors and the COPY only
                continue
            if "mqbridge" in steps and env.mqb_python:
                plan.append(("mqbridge", lambda w=w: live_run(env, "mq-bridge", w)))
            if "naive" in steps:
                plan.append(("naive", lambda nw=nw: live_run(env, "naive", nw)))
        if "preload" in steps:
            pre = (
                single
                if prof.preload_msgs == prof.single_msgs
                else workload("single", prof.preload_msgs, 1)
            )
            plan.append(("preload", lambda: preloaded_run(env, "collector", pre)))
            if env.mqb_python:
                plan.append(("preload", lambda: preloaded_run(env, "mq-bridge", pre)))
        for rep in range(prof.repeats):  # alternate, so every consumer sees the same load
            for name, fn in plan:
                busy = quiet()
                say(f"round {rep + 1}/{prof.repeats}: {name}{busy}")
                try:
                    r = fn()
                except Exception as exc:  # noqa: BLE001 - record it, measure the rest
                    errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
                    say(f"  failed: {exc}")
                    continue
                runs.append(r)
                save()
                say(
                    f"  {r.consumer} {r.workload}: {r.rate:,.0f} readings/s, "
                    f"{r.rows:,}/{r.expected_rows:,} rows, pub {r.pub_rate:,.0f} msg/s, "
                    f"cpu {r.cpu}"
                )
        if "latency" in steps:
            busy = quiet()
            say(f"latency{busy}")
            try:
                lat = latency_run(env, prof.latency_s)
                save()
                say(f"  {lat}")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"latency: {type(exc).__name__}: {str(exc)[:300]}")
        if "backlog" in steps:
            busy = quiet()
            say(f"backlog{busy}")
            try:
                backlog = backlog_run(env, prof.backlog_per_device)
                save()
                say(f"  {backlog}")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"backlog: {type(exc).__name__}: {str(exc)[:300]}")
        if "stages" in steps:
            busy = quiet()
            say(f"stages{busy}")
            try:
                stage_rows = stages(env, stage_single, stage_batch)
                for st in stage_rows:
                    say(f"  {st}")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"stages: {type(exc).__name__}: {str(exc)[:300]}")
        if args.py_spy or (args.py_spy is None and args.profile == "full"):
            busy = quiet()
            say(f"py-spy{busy}")
            spy = pyspy_run(env, batch if args.py_spy_workload == "batch100" else single)
        res = Results(
            args.profile,
            machine(env),
            env.mqb_problem,
            runs,
            lat,
            backlog,
            stage_rows,
            spy,
            errors,
            time.time() - t_start,
        )
    args.results.write_text(res.to_json(), encoding="utf-8")
    print(f"results in {args.results}", file=sys.stderr)
    return emit(report(res), args)


def emit(text: str, args: argparse.Namespace) -> int:
    print(text)
    if not args.no_write:
        write_section(text, args.doc)
        print(f"wrote {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
