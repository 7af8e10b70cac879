"""Benchmark the edge agent against the targets of issue 4.

    python bench/bench_edge.py                # writes its section of docs/benchmarks.md
    python bench/bench_edge.py --no-write     # prints only
    python bench/bench_edge.py --duration 20  # a shorter resource run

1. Resources: ``luftnett edge run`` (which execs its lean agent process, same PID) with four
   emulated sensors of the real mix on ptys at their real cadences — SDS011 (1 frame/s),
   PMS5003 (every 2.3 s), SPS30 (polled each second, SHDLC) and DGS-NO2 (one line per CR each
   second) — 60 s windows, 30 s warm-up, publishing to a local Mosquitto, for
   ``--duration`` seconds after a 10 s settling time: RSS (VmRSS at the end, VmHWM peak) and CPU
   (utime + stime from /proc, over the wall time). Targets: < 40 MB, < 2 % of one core.
2. Replay: an outbox holding 1,440 (a 1-minute agent after 24 h offline) and 86,400 (a 1-second
   stream after 24 h) realistic readings, drained by the agent to the local broker (QoS 1, the
   default batch of 100, no rate bound), from start until the last PUBACK. Target >= 5,000/s.
3. Commit latency of :meth:`Outbox.append` (one fsync'd transaction per reading), p50/p99.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from luftnett.edge.agent import EdgeAgent, EdgeConfig, SensorConfig
from luftnett.edge.outbox import Outbox
from luftnett.firmware_sim.no2_uart import DgsEmulator
from luftnett.firmware_sim.pms import PmsEmulator
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sds011 import Sds011Emulator
from luftnett.firmware_sim.sps30 import Sps30Emulator
from luftnett.servers import EmbeddedMosquitto

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quiet import exclusive, write_section

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def _proc(pid: int) -> tuple[float, int, int]:
    """(cpu seconds, VmRSS kB, VmHWM kB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return cpu, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


_HEAVY = (
    "import sys, luftnett.cli, luftnett.settings, luftnett.servers\n"
    "from luftnett.edge.lean import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _mix() -> list[tuple[str, Any]]:
    def pm(t: float) -> tuple[float, float]:
        return 10 + t % 7, 15 + t % 5

    return [
        ("sds011", Sds011Emulator(pm)),
        ("pms5003", PmsEmulator(pm)),
        ("sps30", Sps30Emulator(pm)),
        ("dgs-no2", DgsEmulator(lambda t: (12 + t % 9, 18.0, 55.0))),
    ]


def _agent_process(url: str, tmp: Path, name: str, heavy: bool) -> tuple[Any, list[PtyHost]]:
    """``luftnett edge run`` on four emulated sensors; ``heavy``: the same agent loop in a
    process that also loaded the settings code and the CLI (what `edge run` was before)."""
    mix = _mix()
    hosts = [PtyHost(emu).start() for _, emu in mix]
    config = tmp / f"{name}.toml"
    sensors = "".join(
        f'[[edge.sensors]]\nmodel = "{model}"\nport = "{h.path}"\n'
        for (model, _), h in zip(mix, hosts, strict=True)
    )
    config.write_text(
        f'home = "{tmp / "home"}"\nmqtt_url = "{url}"\nlog_level = "WARNING"\n'
        f'[edge]\ndevice_id = "bench-{name}"\noutbox_path = "{tmp / name}.outbox"\n'
        f'window_s = 60\nclock_check = "year"\n{sensors}'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUFTNETT_", "MALLOC_"))}
    if not heavy:
        cmd = [sys.executable, "-m", "luftnett.cli", "edge", "run", "--config", str(config)]
        return subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL), hosts
    from luftnett.edge.config import from_settings
    from luftnett.edge.lean import config_to_json
    from luftnett.settings import load_settings

    settings = load_settings(config)
    r, w = os.pipe()
    os.write(w, config_to_json(from_settings(settings, url), "WARNING"))
    os.close(w)
    cmd = [sys.executable, "-c", _HEAVY, "--config-fd", str(r)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, pass_fds=(r,))
    os.close(r)
    return proc, hosts


def bench_resources(url: str, tmp: Path, duration_s: float) -> dict[str, dict[str, float]]:
    """The lean agent and the heavy one side by side, at the same time: a same-run ratio."""
    runs = {name: _agent_process(url, tmp, name, name == "heavy") for name in ("lean", "heavy")}
    out: dict[str, dict[str, float]] = {}
    try:
        time.sleep(10)  # imports, connect, ports open
        with exclusive("edge agent resources"):
            cpu0 = {name: _proc(p.pid)[0] for name, (p, _) in runs.items()}
            t0 = time.monotonic()
            time.sleep(duration_s)
            end = {name: _proc(p.pid) for name, (p, _) in runs.items()}
            wall = time.monotonic() - t0
        for name, (_p, hosts) in runs.items():
            cpu1, rss, hwm = end[name]
            out[name] = {
                "cpu_pct": 100 * (cpu1 - cpu0[name]) / wall,
                "rss_mb": rss / 1024,
                "hwm_mb": hwm / 1024,
                "wall_s": wall,
                "frames": sum(h.emulator.frames_sent for h in hosts),  # type: ignore[attr-defined]
            }
        cmdline = Path(f"/proc/{runs['lean'][0].pid}/cmdline").read_bytes()
        assert b"luftnett.edge.lean" in cmdline, cmdline  # `edge run` became the lean process
    finally:
        for p, hosts in runs.values():
            p.terminate()
            p.wait(30)
            for h in hosts:
                h.stop()
    return out


class Silent:
    def poll(self, now: float) -> bytes:
        return b""

    def receive(self, data: bytes, now: float) -> bytes:
        return b""


def _reading(i: int) -> dict[str, Any]:
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=60 * i)
    v = {"pm10_ugm3": 20.113 + i % 7, "pm25_ugm3": 12.302 + i % 5}
    return {
        "ts": ts.isoformat(),
        "window_s": 60.0,
        "n_samples": 30,
        "values": v,
        "flags": [],
        "n": {"pm10_ugm3": 30, "pm25_ugm3": 30},
        "min": {k: round(x - 3, 1) for k, x in v.items()},
        "max": {k: round(x + 3, 1) for k, x in v.items()},
        "n_warmup": 30,
        "sensor": {"model": "sds011", "serial": "A160"},
    }


def bench_replay(url: str, tmp: Path, n: int, confirm: str = "off") -> dict[str, Any]:
    """Drain ``n`` readings to the broker until the last PUBACK. ``confirm = "on"``: the
    end-to-end acknowledgement — a PUBACK marks the rows instead of deleting them; the
    database's confirmation of all ``n`` then deletes them, timed on its own."""
    path = Path(tempfile.mkdtemp(dir=tmp)) / f"replay-{n}-{confirm}.outbox"
    box = Outbox(path)
    # fill in one transaction (as n fsync'd appends would, only faster to prepare)
    db = box._db
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO outbox (seq, reading, stored_at) VALUES (?, ?, ?)",
        (
            (i, json.dumps({**_reading(i), "seq": i}, separators=(",", ":")), time.time())
            for i in range(n)
        ),
    )
    db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (n,))
    db.execute("COMMIT")
    box.close()
    size_mb = path.stat().st_size / 1e6
    with PtyHost(Silent()) as host:
        agent = EdgeAgent(
            EdgeConfig(
                device_id=f"bench-replay-{n}-{confirm}",
                outbox_path=path,
                mqtt_url=url,
                sensors=(SensorConfig("sds011", host.path),),
                replay_rate=0,
                clock_check="off",
                health_interval_s=3600,
                confirm=confirm,  # type: ignore[arg-type]
            )
        )
        assert len(agent.outbox) == n
        with exclusive(f"edge replay {n}"):
            t_start = time.perf_counter()
            agent.start()
            agent._connected.wait(10)
            t0 = time.perf_counter()  # the link is up: replay starts
            connect_s = t0 - t_start
            while agent.counts["published"] < n:
                time.sleep(0.005)
            elapsed = time.perf_counter() - t0
        published = agent.counts["published"]
        agent.stop(0)
    assert published == n, (published, n)
    box = Outbox(path)
    confirm_s = 0.0
    if confirm == "on":
        assert box.unconfirmed == n, (box.unconfirmed, n)  # all acknowledged, all kept
        with exclusive(f"edge confirm {n}"):
            t = time.perf_counter()
            box.confirm([(0, n)])
            confirm_s = time.perf_counter() - t
    assert len(box) == 0
    box.close()
    return {
        "confirm": confirm,
        "confirm_s": confirm_s,
        "n": n,
        "s": elapsed,
        "per_s": n / elapsed,
        "outbox_mb": size_mb,
        "with_connect_per_s": n / (elapsed + connect_s),
    }


def bench_commit(tmp: Path, n: int = 2000) -> dict[str, float]:
    box = Outbox(tmp / "commit.outbox")
    lat = []
    docs = [_reading(i) for i in range(n)]
    with exclusive("edge outbox commit"):
        for doc in docs:
            t = time.perf_counter()
            box.append(doc)
            lat.append(time.perf_counter() - t)
    box.close()
    q = statistics.quantiles(lat, n=100)
    return {"n": n, "p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98], "mean_ms": 1000 * sum(lat) / n}


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "edge", "src/luftnett/contracts", "bench/bench_edge.py"):
        commit += " (with uncommitted changes)"
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    fs = (
        subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True)
        .stdout.splitlines()[-1]
        .split()[1]
    )
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    mosquitto = mosquitto.splitlines()[0] if mosquitto else "mosquitto"
    return (
        f"- machine: `{uname}`\n"
        f"- CPU: {cpu}, {os.cpu_count()} cores; outbox on {fs} ({tempfile.gettempdir()})\n"
        f"- Python {platform.python_version()}, {mosquitto}\n"
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit `{commit}`\n"
        f"- load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores: the machine "
        "is shared with other jobs, so replay rates vary by about 2x between runs\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="resource run, seconds")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--resources-only", action="store_true", help="only the RSS/CPU run; print")
    args = ap.parse_args()
    if args.resources_only:
        with tempfile.TemporaryDirectory(prefix="bench-edge-") as d:
            broker = EmbeddedMosquitto(Path(d) / "broker")
            try:
                print("resources", bench_resources(broker.start(), Path(d), args.duration))
            finally:
                broker.stop()
        return
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as d:
        tmp = Path(d)
        broker = EmbeddedMosquitto(tmp / "broker")
        url = broker.start()
        try:
            commit = bench_commit(tmp)
            print("commit", commit, flush=True)
            replay = []
            for n in (1440, 86_400):  # alternated, 3 each: the median of each kind
                runs = [bench_replay(url, tmp, n, c) for _ in range(3) for c in ("off", "on")]
                for c in ("off", "on"):
                    mine = sorted((r for r in runs if r["confirm"] == c), key=lambda r: r["s"])
                    replay.append(mine[1])
            print("replay", replay, flush=True)
            both = bench_resources(url, tmp, args.duration)
            print("resources", both, flush=True)
        finally:
            broker.stop()
    res, heavy = both["lean"], both["heavy"]

    def ok(good: bool) -> str:
        return "yes" if good else "**no**"

    text = (
        "## Edge agent (bench/bench_edge.py)\n\n"
        f"{machine()}\n"
        "| measure | result | target | met |\n|---|---|---|---|\n"
        f"| agent RSS, SDS011 + PMS5003 + SPS30 + DGS-NO2 at their cadences, "
        f"{res['wall_s']:.0f} s (end / peak) | "
        f"{res['rss_mb']:.1f} / {res['hwm_mb']:.1f} MB | < 40 MB | {ok(res['hwm_mb'] < 40)} |\n"
        f"| agent CPU, same run ({res['frames']:.0f} frames) | {res['cpu_pct']:.2f} % of one core "
        f"| < 2 % | {ok(res['cpu_pct'] < 2)} |\n"
        f"| same run, the agent with the settings code loaded (as before) | "
        f"{heavy['rss_mb']:.1f} / {heavy['hwm_mb']:.1f} MB, {heavy['cpu_pct']:.2f} % CPU; lean / "
        f"heavy RSS = {res['rss_mb'] / heavy['rss_mb']:.2f} | — | — |\n"
        + "".join(
            f"| replay {r['n']:,.0f} readings ({r['outbox_mb']:.1f} MB outbox) to the local broker"
            + (
                ", end-to-end ack on (PUBACK marks; then one confirmation deletes all in "
                f"{1000 * r['confirm_s']:.0f} ms)"
                if r["confirm"] == "on"
                else ""
            )
            + f" | {r['per_s']:,.0f} readings/s ({r['s']:.2f} s; "
            f"{r['with_connect_per_s']:,.0f}/s counting start-up and connect) | >= 5,000/s | "
            f"{ok(r['per_s'] >= 5000)} |\n"
            for r in replay
        )
        + "".join(
            f"| replay {on['n']:,.0f}: end-to-end ack on / off, same run (medians of 3, "
            "alternated) | "
            f"{on['per_s'] / off['per_s']:.2f} | — | — |\n"
            for off, on in zip(replay[::2], replay[1::2], strict=True)
        )
        + f"| outbox commit per reading (fsync'd), n = {commit['n']:,.0f} | "
        f"p50 {commit['p50_ms']:.2f} ms, p99 {commit['p99_ms']:.2f} ms | — | — |\n\n"
        "Resources: `luftnett edge run`, which checks the config and execs its lean agent "
        "process (same PID; the benchmark checks its command line), with one sensor of each PM "
        "and gas kind on a pty at its real cadence: SDS011 1 frame/s, PMS5003 every 2.3 s, "
        "SPS30 polled each second over SHDLC, DGS-NO2 one line per CR each second (60 s "
        "windows, 30 s warm-up, outbox and publisher idle between windows), measured from "
        "/proc after 10 s of settling. The RSS is almost all imports: the interpreter ~8 MB, "
        "pydantic with the payload models ~21 MB (pydantic-core alone ~8 MB), paho with ssl "
        "~6 MB, pyserial and sqlite3 ~2 MB; the agent's own state is under 2 MB and does not "
        "grow. The previous single-process agent also loaded pydantic-settings and click "
        "(41.3 MB with four SDS011). "
        "Replay (each case 3 times, alternating off/on, the median shown): "
        "the agent in the benchmark's process, QoS 1, batches of 100 readings (~45 kB), at most "
        "20 unacknowledged messages, no rate bound (`edge.replay_rate = 0`; the default 1,000/s "
        "bounds a real link on purpose), from the moment the link is up until the last PUBACK "
        "deleted the last row (end-to-end ack off) or marked it (on: the row stays until the "
        "collector side confirms the database holds it; docs/reliability.md). "
        "Commit: one `BEGIN IMMEDIATE … COMMIT` with `synchronous=FULL` (WAL, checkpointed "
        "every 64 pages so that it fits in the full-disk reserve) per reading; an SD "
        "card is slower than this disk, and one commit a minute per sensor is the real load.\n"
    )
    print(text)
    if not args.no_write:
        write_section("bench_edge", text)


if __name__ == "__main__":
    main()
