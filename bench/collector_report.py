"""Results of bench/bench_collector.py and their Markdown section of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from collector_procs import TEMPLATE_DB, Env, mqb_config_text
from collector_stages import Stage, stages_table

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_collector:start -->", "<!-- bench_collector:end -->"

# issue 5, "## Measured": figures quoted there, shown when a peer cannot be run here
QUOTED = {
    "mq-bridge 1.2 (fast publisher)": 29_000,
    "mq-bridge 1.2 (falling behind)": 9_000,
    "collectd mqtt+postgresql": 5_000,
    "Node-RED": 3_000,
    "bare COPY": 150_000,
}


@dataclass
class Run:
    consumer: str
    workload: str
    mode: str  # live | preloaded
    messages: int
    readings: int
    expected_rows: int
    rows: int = 0
    distinct: int | None = None
    t_first: float = 0.0
    t_pub_acked: float = 0.0
    t_done: float = 0.0
    t_calibrated: float = 0.0  # collector: when the last calibrated value was committed
    cpu_wall: float = 0.0  # the CPU meter's interval (0: the run's, first row to last)
    cpu: dict[str, float] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)  # collector: batches, messages
    note: str = ""

    @property
    def complete(self) -> bool:
        return self.rows >= self.expected_rows

    @property
    def seconds(self) -> float:
        return self.t_done - self.t_first

    @property
    def rate(self) -> float:
        """Readings stored per second (for one-row-per-message tables, rows x readings/row)."""
        if not self.expected_rows or self.seconds <= 0:
            return 0.0
        return self.rows * self.readings / self.expected_rows / self.seconds

    @property
    def cal_rate(self) -> float:
        """Readings stored and calibrated per second: first publish to the last calibrated
        value (collector runs; 0 where not measured)."""
        d = self.t_calibrated - self.t_first
        return self.readings / d if self.t_calibrated and d > 0 else 0.0

    def per_cpu_s(self, *groups: str) -> float:
        """Readings stored per CPU-second of the given process groups: what the run cost,
        which other jobs on a shared machine disturb far less than the wall-clock rate. The
        meter runs until the calibrated values too are committed (collector runs)."""
        pct = sum(self.cpu.get(g, 0.0) for g in groups)
        if pct <= 0:
            return 0.0
        if self.cpu_wall > 0:
            return self.rows * self.readings / self.expected_rows / (pct / 100 * self.cpu_wall)
        return 100 * self.rate / pct

    @property
    def pub_rate(self) -> float:
        d = self.t_pub_acked - self.t_first
        return self.messages / d if d > 0 and self.mode == "live" else 0.0


@dataclass
class Latency:
    messages: int
    seen: int
    p50: float
    p99: float
    max: float
    db_p50: float
    db_p99: float
    max_late_s: float
    poll_s: float
    cpu: dict[str, float] = field(default_factory=dict)


@dataclass
class Backlog:
    readings: int
    messages: int
    to_subscribed_s: float
    drain_s: float
    stored: int
    cpu: dict[str, float]
    calibrated_s: float = 0.0  # start -> last calibrated value (0: not measured)


AREAS = (
    ("paho/", "paho-mqtt"),
    ("pydantic", "pydantic"),
    ("msgspec", "msgspec"),
    ("numpy", "numpy"),
    ("psycopg", "psycopg"),
    ("json/", "json (stdlib)"),
    ("luftnett/", "luftnett"),
    ("collector/", "luftnett"),
    ("logging/", "logging"),
    ("threading.py", "threading/queue"),
    ("queue.py", "threading/queue"),
)


def _area(frame: str) -> str:
    return next((name for key, name in AREAS if key in frame), "other")


def summarize_pyspy(raw: Path) -> str:
    """Markdown: samples per thread, self time per library, top functions."""
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    n = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        k = int(count)
        head, *frames = stack.split(";")
        n += k
        threads[head.split(": ", 1)[1] if ": " in head else head] += k
        if not frames:
            continue
        for f in {_frame(f) for f in frames}:
            inclusive[f] += k
        self_[_frame(frames[-1])] += k
        areas[_area(frames[-1])] += k
    if not n:
        return "py-spy recorded no samples"

    def pct(k: int) -> str:
        return f"{100 * k / n:.0f} %"

    ours = [(f, k) for f, k in inclusive.most_common() if _area(f) == "luftnett"][:8]
    return "\n".join(
        [
            f"{n:,} samples at 200 Hz (threads waiting on I/O or locks excluded). By thread: "
            + ", ".join(f"{t} {pct(k)}" for t, k in threads.most_common(4))
            + ".",
            "",
            "Self time by library: "
            + ", ".join(f"{a} {pct(k)}" for a, k in areas.most_common())
            + ".",
            "",
            "| top self time | % | luftnett function, inclusive | % |",
            "|---|---|---|---|",
            *(
                f"| `{a[0]}` | {pct(a[1])} | " + (f"`{b[0]}` | {pct(b[1])} |" if b else " | |")
                for a, b in zip(self_.most_common(8), [*ours, *[None] * 8], strict=False)
            ),
        ]
    )


def _frame(f: str) -> str:
    """``func (site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = f.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = file.split("/")
    keep = 3 if "paho" in parts or "luftnett" in parts else 2
    return f"{name} ({'/'.join(parts[-keep:])})"


def sh(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine(env: Env) -> dict[str, str]:
    """Where and on what the benchmark ran (and the collector defaults it ran with)."""
    from luftnett.settings import CollectorSettings

    cs = CollectorSettings()
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    with psycopg.connect(env.db_url(TEMPLATE_DB)) as c:
        pg = {
            k: str((c.execute(f"SHOW {k}").fetchone() or ("?",))[0])
            for k in (
                "server_version",
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "shared_buffers",
            )
        }
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "collector"])
    commit = sh(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"])
    import paho.mqtt as paho

    mqb = "not run"
    if env.mqb_python:
        mqb = sh([env.mqb_python, "-c", "import mq_bridge; print(mq_bridge.__version__)"])
    from collector_procs import COLLECTOR_ENV

    return {
        "collector_settings": ", ".join(f"{k}={v}" for k, v in sorted(COLLECTOR_ENV.items()))
        or "defaults",
        "collector_batch_size": str(cs.batch_size),
        "collector_flush_interval_s": str(cs.flush_interval_s),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit
        + (" (with uncommitted changes in src/ or collector/)" if dirty not in ("", "?") else ""),
        "uname": sh(["uname", "-a"]),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "ram": mem,
        "postgres": f"PostgreSQL {pg['server_version']}; fsync={pg['fsync']}, "
        f"synchronous_commit={pg['synchronous_commit']}, full_page_writes="
        f"{pg['full_page_writes']}, shared_buffers={pg['shared_buffers']} "
        "(EmbeddedPostgres(fast=False), data on the local disk)",
        "mosquitto": sh(["mosquitto", "-h"]) + " (EmbeddedMosquitto: persistence on, "
        "max_inflight_messages 10000, max_queued_messages 100000)",
        "python": f"Python {platform.python_version()}, psycopg {psycopg.__version__}, "
        f"paho-mqtt {paho.__version__}, mq-bridge {mqb}",
    }


def cpu_text(cpu: dict[str, float]) -> str:
    groups = ("consumer", "postgres", "mosquitto", "publisher", "other")
    return " / ".join(str(int(cpu[g])) if g in cpu else "-" for g in groups)


def median_run(runs: list[Run]) -> Run:
    ok = [r for r in runs if r.complete] or runs
    return sorted(ok, key=lambda r: r.rate)[len(ok) // 2]


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x else "-"


def group_runs(runs: list[Run]) -> dict[tuple[str, str, str], list[Run]]:
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.mode, r.workload, r.consumer), []).append(r)
    return groups


def throughput_table(groups: dict[tuple[str, str, str], list[Run]], mode: str) -> list[str]:
    lines = [
        "| workload | consumer | messages | readings | stored | readings/s "
        "(median of complete runs; min-max) | calibrated: readings/s to the last value | "
        "publisher msg/s | CPU % consumer / postgres / "
        "mosquitto / publisher / other | readings per CPU-second: consumer (+ postgres) | "
        "msgs per batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (m, wname, consumer), rs in groups.items():
        if m != mode:
            continue
        med = median_run(rs)
        alone = consumer == "publisher alone"
        done = rs if alone else [r for r in rs if r.complete]
        rates = [r.rate for r in done]
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(done) > 1 else ""
        stored = "-"
        if not alone:
            stored = f"{med.expected_rows:,} rows: {len(done)} of {len(rs)} runs complete"
            stored += "".join(f"; one stopped at {r.rows:,}" for r in rs if not r.complete)
            stored += "".join(
                f"; {r.rows - r.distinct:,} duplicates"
                for r in rs
                if r.distinct is not None and r.distinct != r.rows
            )
        cpu = cpu_text(med.cpu)
        b = med.batches
        per_batch = f"{b['messages'] / b['batches']:.0f}" if b.get("batches") else "-"
        rate = "-"
        if not alone:
            rate = f"{statistics.median(rates):,.0f}" if rates else "incomplete"
            rate += f"; {spread}" if spread else ""
        if consumer == "publisher alone":
            pub = f"{statistics.median(r.pub_rate for r in rs):,.0f}"
        else:
            pub = fmt_rate(statistics.median(r.pub_rate for r in rs)) if mode == "live" else "-"
        cal_rates = [r.cal_rate for r in done if r.cal_rate]
        cal = "-"
        if cal_rates:
            cal = f"{statistics.median(cal_rates):,.0f}"
            if len(cal_rates) > 1:
                cal += f"; {min(cal_rates):,.0f}-{max(cal_rates):,.0f}"
        note = f" ({med.note})" if med.note else ""
        eff = "-"
        if done and not alone and all("consumer" in r.cpu for r in done):
            own = statistics.median(r.per_cpu_s("consumer") for r in done)
            with_pg = statistics.median(r.per_cpu_s("consumer", "postgres") for r in done)
            eff = f"{own:,.0f} ({with_pg:,.0f})"
        lines.append(
            f"| {wname} | {consumer}{note} | {med.messages:,} | {med.readings:,} | {stored} | "
            f"{rate} | {cal} | {pub} | {cpu} | {eff} | {per_batch} |"
        )
    return lines


def ratio_lines(
    groups: dict[tuple[str, str, str], list[Run]], mqb_problem: str | None
) -> list[str]:
    def rate(mode: str, w: str, c: str) -> float | None:
        done = [r for r in groups.get((mode, w, c), []) if r.complete]
        return statistics.median(r.rate for r in done) if done else None

    def eff(mode: str, w: str, c: str) -> float | None:
        done = [r for r in groups.get((mode, w, c), []) if r.complete and "consumer" in r.cpu]
        return statistics.median(r.per_cpu_s("consumer") for r in done) if done else None

    def ratio(a: float | None, b: float | None, text: str, target: str = "") -> str:
        if a is None or b is None or not b:
            return f"| {text} | not measured | {target} |"
        return f"| {text} | {a / b:.2f} ({a:,.0f} / {b:,.0f}) | {target} |"

    c1s, c2s = rate("live", "single", "collector x1"), rate("live", "single", "collector x2")
    c1b, c2b = rate("live", "batch100", "collector x1"), rate("live", "batch100", "collector x2")
    mqs = rate("live", "single", "mq-bridge")
    lines = ["| ratio (same run) | value | target |", "|---|---|---|"]
    if mqs is not None:
        lines.append(ratio(c1s, mqs, "single-reading msgs: collector x1 / mq-bridge 1.2", ">= 1"))
        lines.append(ratio(c2s, mqs, "single-reading msgs: collector x2 / mq-bridge 1.2", ">= 1"))
    else:
        q = float(QUOTED["mq-bridge 1.2 (fast publisher)"])
        lines.append(
            ratio(
                c1s,
                q,
                "single: collector x1 / mq-bridge **quoted** 29,000 (not "
                "measured: " + (mqb_problem or "failed") + ")",
                ">= 1",
            )
        )
    lines += [
        ratio(
            rate("preloaded", "single", "collector"),
            rate("preloaded", "single", "mq-bridge"),
            "single, preloaded session: collector / mq-bridge 1.2",
            ">= 1",
        ),
        *(
            ratio(
                rate("live", w, consumer),
                rate("copy", w, "bare COPY"),
                f"{text}: {label} / bare COPY",
                ">= 0.67" + (" and >= 100,000 readings/s" if first else ""),
            )
            for w, text in (
                ("batch100", "100-reading msgs"),
                (
                    "edge100",
                    "100-reading msgs as the edge agent sends them (n/min/max in every reading)",
                ),
                ("sustained100", "100-reading msgs, sustained (the calibration keeping up)"),
            )
            for first, (consumer, label) in zip(
                (w == "batch100", False, False),
                (
                    ("collector x1", "collector x1"),
                    ("collector x2", "collector x2"),
                    (
                        "collector x1, 2 processes",
                        "one collector service of 2 processes "
                        "(collector.processes = 2, 1 writer each)",
                    ),
                ),
                strict=True,
            )
        ),
        ratio(c1s, rate("live", "single", "naive"), "single: collector x1 / naive subscriber"),
        ratio(c1b, rate("live", "batch100", "naive"), "batch100: collector x1 / naive subscriber"),
        ratio(
            eff("live", "single", "collector x1"),
            eff("live", "single", "mq-bridge"),
            "single: collector x1 / mq-bridge, readings per consumer CPU-second",
        ),
        ratio(
            eff("live", "batch100", "collector x1"),
            eff("copy", "batch100", "bare COPY"),
            "batch100: collector x1 / bare COPY, readings per client CPU-second",
        ),
        ratio(c2s, c1s, "single: 2 collectors / 1 collector"),
        ratio(c2b, c1b, "batch100: 2 collectors / 1 collector"),
    ]
    return lines


@dataclass
class Results:
    """Everything one run of the benchmark measured; saved as JSON, rendered by report()."""

    profile: str
    machine: dict[str, str]
    mqb_problem: str | None
    runs: list[Run] = field(default_factory=list)
    latency: Latency | None = None
    backlog: Backlog | None = None
    stages: list[Stage] = field(default_factory=list)
    spy: str | None = None
    errors: list[str] = field(default_factory=list)
    took_s: float = 0.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Results:
        d = json.loads(text)
        return cls(
            profile=d["profile"],
            machine=d["machine"],
            mqb_problem=d["mqb_problem"],
            runs=[Run(**r) for r in d["runs"]],
            latency=Latency(**d["latency"]) if d["latency"] else None,
            backlog=Backlog(**d["backlog"]) if d["backlog"] else None,
            stages=[Stage(**s) for s in d["stages"]],
            spy=d["spy"],
            errors=d["errors"],
            took_s=d["took_s"],
        )


def report(res: Results) -> str:
    runs, lat, backlog, spy = res.runs, res.latency, res.backlog, res.spy
    stage_rows, errors, prof_name, took_s = res.stages, res.errors, res.profile, res.took_s
    m = dict(res.machine)
    batch_size, flush_s = m.pop("collector_batch_size"), m.pop("collector_flush_interval_s")
    groups = group_runs(runs)
    others = [r.cpu["other"] for r in runs if "other" in r.cpu]
    if lat and "other" in lat.cpu:
        others.append(lat.cpu["other"])
    if backlog and "other" in backlog.cpu:
        others.append(backlog.cpu["other"])
    shared = []
    if others:
        shared.append(
            f"- other jobs on the machine during the runs: mean {statistics.mean(others):.0f} %, "
            f"max {max(others):.0f} % of one core (column `other` below)"
        )
        if statistics.mean(others) > 25:
            shared += [
                "",
                "**This machine was shared with other jobs during the run: absolute figures are "
                "low and noisy. Runs alternate, so the ratios are the fairer comparison, and "
                "readings per CPU-second (what a run cost its consumer) are disturbed least.**",
            ]
    out = [
        START,
        "## Collector (bench/bench_collector.py)",
        "",
        "Run it: `python bench/bench_collector.py --profile full` (the real measurement, ~15 min) "
        "or `--profile short` (< 3 min, CI); `--no-write` prints only, `--py-spy` adds a profile "
        "of the collector, `--render FILE.json` re-renders saved results (each run saves them to "
        "`--results`, default `/tmp/bench_collector.json`). mq-bridge is read from "
        "`--mqbridge-python` (default "
        "`/tmp/mqbenv/bin/python`: `python -m venv /tmp/mqbenv && /tmp/mqbenv/bin/pip install "
        "mq-bridge==1.2.0`).",
        "",
        f"- profile: {prof_name} (took {took_s / 60:.1f} min)",
        *(f"- {k}: {v}" for k, v in m.items()),
        *shared,
        "",
        "Every run gets a fresh copy of the migrated database and a topic root of its own; each "
        "process under test runs on its own (collector: `python -m luftnett.cli collector run`, "
        f"defaults batch_size {batch_size}, flush_interval_s {flush_s}). "
        "Workloads: `single` (one reading a message), `batch100` (100 readings a message, "
        "values only), `edge100` (100 readings a message with the window statistics `n`, `min` "
        "and `max` the edge agent's averaging puts in every reading, stored in `extra`: what a "
        "fleet of luftnett edge agents sends), `sustained100` (the `batch100` kind of message, "
        "1,000,000 readings in the full profile: several seconds of load, so that "
        "`calibration_max_lag_s` (5 s) makes the collector write calibrated values during it "
        "rather than after; a 200,000-reading burst is over first). "
        "Publisher: pre-encoded MQTT v5 QoS 1 "
        "packets written over a raw socket with up to 1,000 unacknowledged (its window; the "
        "broker allows 10,000); paho's `publish()` would itself cap a run near 5,000 msg/s here. "
        "Readings/s "
        "runs from the first publish to the poll that finds the last row (poll interval 1 % of "
        "the elapsed time, 20-500 ms; each poll looks up every device's last reading by index "
        "and, once all are there, counts the table: a `count(*)` every poll loaded the server "
        "during the run; the lookup is planned afresh each poll with joins by index only: "
        "planned once on the still-empty table, it hashed the whole table every poll): a "
        "reading is stored, and its message "
        "acknowledged, when its row is committed. While messages wait for it, the collector "
        "writes the calibrated values after that commit (`collector.calibration = auto`, the "
        "default; docs/storage.md): the *calibrated* column runs from the first publish to the "
        "poll that finds the last of them (two per reading), and CPU % and readings per CPU-second "
        "of collector runs are measured over that longer interval, so they include the "
        "calibration's work. CPU % is of one core over the run "
        "(2 cores = 200 %): a consumer near 100 % is bound by one Python thread (the GIL). "
        "Readings per CPU-second = readings/s / consumer CPU: the run's cost, least disturbed "
        "by other jobs. A run is incomplete when no new row arrived within the harness's stall "
        "limit (one 50,000-row transaction of the collector can take that long on a loaded "
        "machine); its rate is left out of the median.",
        "",
        "### End to end, consumers subscribed before the publisher starts",
        "",
        *throughput_table(groups, "live"),
        "",
        "### Preloaded: the messages wait in the consumer's persistent session, then it starts",
        "",
        "Time from starting the consumer process to the last row; no publisher shares the CPUs.",
        "",
        *throughput_table(groups, "preloaded"),
        "",
        "### Baselines: COPY of the same rows into `readings`",
        "",
        "**bare COPY** (the ceiling): the collector's own validation and binary COPY records "
        "(`reading_records`, `extra` included), laid out before the clock starts, then "
        "psycopg's `copy.write`, 10,000 rows per transaction, same table and index. **plain "
        "COPY**: the same rows as Python tuples (built before the clock), psycopg's "
        "`copy.write_row` per row in COPY's text format, 10,000 rows per transaction: a COPY "
        "as a plain psycopg program writes it (this benchmark's first baseline, 1358b8b), shown "
        "to tell how strict the ceiling is; the ratios are to the ceiling. Rows only: no "
        "calibrated values, no ledger, no quality control.",
        "",
        *throughput_table(groups, "copy"),
        "",
        "### Ratios",
        "",
        *ratio_lines(groups, res.mqb_problem),
        "",
        "Peers: the **naive subscriber** is paho with one autocommit `INSERT` per reading inside "
        "`on_message` (no validation, no dedupe, no quarantine). **mq-bridge 1.2** "
        f"({mqb_config_text()}): single-reading messages are flattened by its `transform` "
        "middleware and written by `sqlx` with `bulk_copy` (COPY batches) into `mqb_readings`, "
        "a table `LIKE readings` with the same index; 100-reading messages cannot be split into "
        "rows by its configuration, so it stores one row per message in `mqb_messages` "
        "(device_id, schema_version, agent_version columns, the readings array in a jsonb "
        "`extra`), and its readings/s counts 100 per row. It does no validation, no dedupe and "
        "no device upsert; the collector validates every payload against the contract (msgspec, "
        "pydantic for what msgspec leaves), upserts the device, dedupes on (device, seq) "
        "against its seq-range ledger, runs quality control, acknowledges after commit and "
        "writes calibrated values in the same transaction or (under load) right after. "
        "Figures quoted in issue 5 (not measured here): collectd mqtt+postgresql ~5,000, "
        "Node-RED ~3,000 readings/s.",
        "",
    ]
    if lat:
        out += [
            "### Latency at a steady 1,000 single-reading messages/s (one collector)",
            "",
            f"{lat.messages:,} messages over {lat.messages / 1000:.0f} s from 100 devices; each "
            "reading's `ts` is its send time. A poller selects new rows every "
            f"{lat.poll_s * 1000:.0f} ms; a row counts as stored at the start of the first query "
            "that sees it (its commit lies between that query and the one before), so the "
            f"figures are upper bounds within {lat.poll_s * 1000:.0f} ms. The `received_at` "
            "column (the write transaction's start) gives a lower bound. The publisher's worst "
            f"lag behind its schedule was {lat.max_late_s * 1000:.0f} ms.",
            "",
            "| | p50 | p99 | max | seen | CPU % collector / postgres / mosquitto / publisher / "
            "other |",
            "|---|---|---|---|---|---|",
            f"| publish -> committed (polled) | {lat.p50 * 1000:.0f} ms | {lat.p99 * 1000:.0f} ms"
            f" | {lat.max * 1000:.0f} ms | {lat.seen:,}/{lat.messages:,} | {cpu_text(lat.cpu)} |",
            f"| publish -> write transaction start (`received_at`) | {lat.db_p50 * 1000:.0f} ms | "
            f"{lat.db_p99 * 1000:.0f} ms | | | |",
            "",
            f"Target p99 < 1 s: **{'met' if lat.p99 < 1 else 'missed'}**.",
            "",
        ]
    if backlog:
        out += [
            "### Backlog drain (one collector)",
            "",
            f"{backlog.readings:,} readings (100 devices x {backlog.readings // 100:,} one-minute "
            f"readings) in {backlog.messages:,} messages of up to 100, published while the "
            "collector was stopped; its persistent session held them.",
            "",
            "| start -> subscribed | start -> all stored | readings/s | start -> all calibrated "
            "| stored | CPU % collector / postgres / mosquitto / publisher / other |",
            "|---|---|---|---|---|---|",
            f"| {backlog.to_subscribed_s:.1f} s | {backlog.drain_s:.1f} s | "
            f"{backlog.readings / backlog.drain_s:,.0f} | "
            f"{f'{backlog.calibrated_s:.1f} s' if backlog.calibrated_s else '-'} | "
            f"{backlog.stored:,} | {cpu_text(backlog.cpu)} |",
            "",
            (
                f"Target < 30 s: **{'met' if backlog.drain_s < 30 else 'missed'}**."
                if backlog.readings >= 144_000
                else "A scaled-down backlog (short profile); the < 30 s target is for the "
                "144,000 readings of `--profile full`."
            ),
            "",
        ]
    if stage_rows:
        mqs = groups.get(("live", "single", "mq-bridge"))
        budget = statistics.median(r.rate for r in mqs) if mqs else None
        out += [
            "### Where the time goes, stage by stage",
            "",
            "CPU time per message of each stage of the collector's hot path, measured apart "
            "(bench/collector_stages.py): receiving with paho set up as the collector's (in a "
            "process of its own, acking each message, nothing else), `validate_message` and "
            "`Writer.write` called directly (rollups queued, as the collector runs it; the write "
            "includes quality control, the ledger and, written in the same transaction here "
            "(`calibration=inline`), the calibrated values).",
            "",
            *stages_table(stage_rows, budget),
            "",
        ]
    if spy:
        out += [
            "### Where the collector spends its time (py-spy, the `--py-spy-workload` run)",
            "",
            spy,
            "",
        ]
    if errors:
        out += ["### Not measured", "", *(f"- {e}" for e in errors), ""]
    out.append(END)
    return "\n".join(out) + "\n"


def write_section(text: str, doc: Path) -> None:
    doc.parent.mkdir(parents=True, exist_ok=True)
    cur = (
        doc.read_text(encoding="utf-8")
        if doc.exists()
        else "# Benchmarks\n\nWritten by the scripts in `bench/`.\n"
    )
    if START in cur and END in cur:
        head, rest = cur.split(START, 1)
        cur = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        cur = cur.rstrip("\n") + "\n\n" + text
    doc.write_text(cur, encoding="utf-8")
