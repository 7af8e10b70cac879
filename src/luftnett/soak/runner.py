"""Run a soak: start the system, drive the fleet on the simulated clock, inject the scheduled
faults, drain, and count.

The simulated clock ends at the real start time and starts ``profile.hours`` before it; it
advances in ``tick_s`` steps, paced to ``speed`` simulated seconds per real second (it slows
down rather than skip when the machine is behind). Each step, ``shards`` threads advance their
devices (outbox fsyncs overlap). Scheduled faults run one after the other on a thread of their
own, so a restart that takes real seconds does not stop the clock. Real-time parts — the pty
devices and the edge process — run for the real duration of the run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from luftnett.db.migrate import apply_migrations
from luftnett.edge.agent import EdgeAgent
from luftnett.edge.config import EdgeConfig, SensorConfig
from luftnett.firmware_sim.faults import Faulty
from luftnett.firmware_sim.pty import PtyHost
from luftnett.soak import services
from luftnett.soak.accounting import DeviceRecord, count
from luftnett.soak.devices import SimAgent, SimDevice, make_emulator, pty_device
from luftnett.soak.profile import PTY_MODELS, Profile, fleet_plan
from luftnett.soak.report import Event, SoakResult
from luftnett.soak.schedule import build_schedule
from luftnett.soak.traffic import Tap

__all__ = ["run_soak"]

Echo = Callable[[str], None]

PTY_NOISE_EVERY_S = 10.0  # real seconds between garbage bursts / corrupt frames on the ptys


@dataclass(slots=True)
class _Fleet:
    sim: list[SimDevice] = field(default_factory=list)
    pty: list[tuple[PtyHost, EdgeAgent, Faulty]] = field(default_factory=list)
    victim: services.EdgeProcess | None = None
    victim_host: PtyHost | None = None
    victim_emu: Faulty | None = None


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _advance(shard: list[SimDevice], t: float) -> None:
    for d in shard:
        d.advance(t)


def _drained(agent: EdgeAgent) -> bool:
    return agent.sensors[0].averager.open_frames == 0 and len(agent.outbox) == 0


def _stop_agent(agent: EdgeAgent, drain_s: float = 0.0) -> None:
    """Stop once; ``drain_s``: let it deliver what is pending (and see the PUBACKs) first."""
    if not agent._halt.is_set():
        agent.stop(drain_s)


def _commit() -> str:
    """The checkout's commit, when the code runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


class SoakRun:
    def __init__(self, profile: Profile, section: str, workdir: Path, echo: Echo) -> None:
        self.p = profile
        self.section = section
        self.dir = workdir
        self.echo = echo
        self.run_id = f"s{uuid.uuid4().hex[:5]}"
        self.root = f"soak{self.run_id}"
        self.hold_root = f"hold{self.run_id}"
        self.pg, self.broker = services.servers(workdir / "servers")
        self.fleet = _Fleet()
        self.events: list[Event] = []
        self.expected_quarantine: dict[str, int] = {}
        self.real0 = time.monotonic()
        self.started = datetime.now(UTC)
        end = math.floor(time.time() / profile.window_s) * profile.window_s
        self.sim_end = float(end)
        self.sim_start = self.sim_end - profile.hours * 3600.0
        self.t = self.sim_start
        self.sim_real_s = 0.0

    # -- log ------------------------------------------------------------------------------
    def event(self, what: str) -> None:
        e = Event((self.t - self.sim_start) / 3600, time.monotonic() - self.real0, what)
        self.events.append(e)
        self.echo(f"[sim {e.sim_h:6.2f} h | {e.real_s:5.0f} s] {what}")

    # -- set-up ---------------------------------------------------------------------------
    def start_services(self, stack: contextlib.ExitStack) -> None:
        (self.dir / "servers").mkdir(parents=True, exist_ok=True)
        self.db_url = self.pg.start()
        stack.callback(self.pg.stop)
        with psycopg.connect(self.db_url) as conn:
            apply_migrations(conn)
        self.mqtt_url = self.broker.start()
        stack.callback(self.broker.stop)
        self.collector = services.CollectorProcess(
            self.db_url, self.mqtt_url, self.root, "soak-collector", self.dir / "collector.log"
        )
        stack.callback(self.collector.stop)
        took = self.collector.start()
        self.tap = Tap(self.mqtt_url, self.root, self.hold_root, sample=0.02, seed=self.p.seed)
        stack.callback(self.tap.stop)
        self.tap.start()
        self.event(f"PostgreSQL, Mosquitto, collector (subscribed in {took:.1f} s) and tap up")

    def start_fleet(self, stack: contextlib.ExitStack) -> None:
        p = self.p
        boxes = self.dir / "outbox"
        for spec in fleet_plan(p, self.run_id):
            cfg = EdgeConfig(
                device_id=spec.device_id,
                outbox_path=boxes / f"{spec.device_id}.outbox",
                mqtt_url=self.mqtt_url,
                sensors=(SensorConfig(spec.model, f"sim:{spec.device_id}", window_s=p.window_s),),
                topic_root=self.hold_root if spec.hold else self.root,
                replay_rate=1000.0,
                outbox_max_rows=spec.outbox_max_rows,
                clock_check="off",
            )
            agent = SimAgent(cfg)
            stack.callback(_stop_agent, agent)
            agent.start()
            self.fleet.sim.append(SimDevice(spec, agent, p.frame_every_s, p.window_s))
        for j, model in enumerate(PTY_MODELS[: p.pty_devices]):
            dev_id = f"{self.run_id}-pty{j}-{model}"
            host, pty_agent, emu = pty_device(
                dev_id, model, self.mqtt_url, self.root, boxes / f"{dev_id}.outbox",
                p.pty_window_s, p.seed * 100 + j,
            )  # fmt: skip
            stack.callback(host.stop)
            stack.callback(_stop_agent, pty_agent)
            pty_agent.start()
            self.fleet.pty.append((host, pty_agent, emu))
        emu = make_emulator("sds011", 12.0, p.seed * 100 + 99, every_s=0.02)  # 50 frames/s
        host = PtyHost(emu).start()
        stack.callback(host.stop)
        victim = services.EdgeProcess(
            f"{self.run_id}-edge-process", host, self.mqtt_url, self.root, boxes, window_s=0.1
        )
        stack.callback(victim.stop)
        victim.start()
        self.fleet.victim, self.fleet.victim_host, self.fleet.victim_emu = victim, host, emu
        if not _wait(lambda: all(d.agent.connected for d in self.fleet.sim), 60):
            self.echo("warning: not every simulated agent connected within 60 s")
        for d in self.fleet.sim:
            d.begin(self.sim_start)
        self.event(
            f"{len(self.fleet.sim)} simulated devices, {len(self.fleet.pty)} pty devices and "
            "1 edge process running"
        )

    # -- the clock ------------------------------------------------------------------------
    def drive(self) -> None:
        p = self.p
        pending = build_schedule(self)
        shards = [self.fleet.sim[i :: p.shards] for i in range(p.shards)]
        shards = [s for s in shards if s]
        progress_every = max(1.0, p.hours / 8) * 3600
        next_progress = self.sim_start + progress_every
        next_pty_noise = time.monotonic()
        faults: dict[str, ThreadPoolExecutor] = {}
        done: list[Future[None]] = []
        clock0 = time.monotonic()
        with ThreadPoolExecutor(len(shards) or 1, thread_name_prefix="soak-shard") as pool:
            while self.t < self.sim_end:
                self.t = min(self.t + p.tick_s, self.sim_end)
                while pending and pending[0][0] <= self.t:
                    _, target, label, action = pending.pop(0)
                    if target not in faults:
                        faults[target] = ThreadPoolExecutor(1, f"soak-fault-{target}")
                    done.append(faults[target].submit(self._fire, label, action))
                if time.monotonic() >= next_pty_noise:  # real-time devices: real-time noise
                    self._pty_noise()
                    next_pty_noise += PTY_NOISE_EVERY_S
                list(pool.map(functools.partial(_advance, t=self.t), shards))
                if self.t >= next_progress:
                    next_progress += progress_every
                    self._progress()
                ahead = clock0 + (self.t - self.sim_start) / p.speed - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        self.sim_real_s = time.monotonic() - clock0
        for pool_ in faults.values():
            pool_.shutdown(wait=True)
        for f in done:
            f.result()  # a fault action that raised fails the run here
        for d in self.fleet.sim:
            d.finish(self.sim_end)
        self.event("simulated time over; every device closed its last window")

    def _fire(self, label: str, action: Callable[[], str]) -> None:
        detail = action()
        self.event(f"{label}: {detail}" if detail else label)

    def _pty_noise(self) -> None:
        """Serial garbage on the first pty device, a corrupt frame on the third."""
        pty = self.fleet.pty
        if pty:
            pty[0][2].garbage(n=64)
        if len(pty) > 2:
            pty[2][2].corrupt(1)

    def _progress(self) -> None:
        produced = sum(d.agent.outbox.next_seq for d in self.fleet.sim)
        backlog = sum(len(d.agent.outbox) for d in self.fleet.sim)
        stored = "-"
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.db_url, connect_timeout=2) as conn,
        ):
            row = conn.execute("SELECT count(*) FROM reading_keys").fetchone()
            stored = f"{int(row[0]) if row else 0:,}"
        self.event(f"simulated devices produced {produced:,}, backlog {backlog:,}; stored {stored}")

    # -- the end --------------------------------------------------------------------------
    def drain(self) -> None:
        """Stop producing, deliver everything, and wait until the database has it all."""
        for _host, _agent, emu in self.fleet.pty:
            emu.unplugged = True
        if self.fleet.victim_emu is not None:
            self.fleet.victim_emu.unplugged = True
        for host, agent, _emu in self.fleet.pty:
            _wait(functools.partial(_drained, agent), 60)
            _stop_agent(agent, drain_s=10.0)  # a frame still on the wire may make one more
            host.stop()
        victim = self.fleet.victim
        if victim is not None:
            time.sleep(1.0)  # its last window (0.1 s) closes
            _wait(lambda: services.outbox_state(victim.outbox)[1] == 0, 60)
            code = victim.stop()
            self.event(f"edge process stopped with SIGTERM (exit {code})")
        if not _wait(lambda: all(len(d.agent.outbox) == 0 for d in self.fleet.sim), 300):
            self.echo("warning: some outboxes still hold readings after 300 s")
        for d in self.fleet.sim:
            _stop_agent(d.agent, drain_s=10.0)
        if not self.tap.drain():
            self.echo("warning: the tap's publications were not all acknowledged")
        self.event("every edge outbox drained and stopped; tap drained")
        ok = _wait(self._stored_all, 600, step=1.0)
        self.event("database caught up" if ok else "database did NOT catch up within 600 s")
        self._quiet()
        self.collector.stop()

    def _targets(self) -> dict[str, int]:
        """Per device: the stored count that leaves nothing lost (produced - shed)."""
        out = {}
        for path in (self.dir / "outbox").glob("*.outbox"):
            produced, _unsent, shed = services.outbox_state(path)
            out[path.name.removesuffix(".outbox")] = produced - shed
        return out

    def _stored_all(self) -> bool:
        targets = self._targets()
        try:
            with psycopg.connect(self.db_url, connect_timeout=2) as conn:
                got: dict[str, int] = dict(
                    conn.execute(
                        "SELECT device_id, count(*) FROM reading_keys GROUP BY device_id"
                    ).fetchall()
                )
        except psycopg.Error:
            return False
        return all(int(got.get(d, 0)) >= n for d, n in targets.items())

    def _quiet(self, quiet_s: float = 3.0, timeout: float = 120.0) -> None:
        """Wait until the collector stops receiving (redeliveries and duplicates included)."""
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.db_url) as conn:
                row = conn.execute(
                    "SELECT coalesce(sum(received), 0) FROM ingest_counts"
                ).fetchone()
                q = conn.execute("SELECT count(*) FROM quarantine").fetchone()
            now = int(row[0] if row else 0) + int(q[0] if q else 0)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.5)

    def records(self) -> list[DeviceRecord]:
        out = []
        for d in self.fleet.sim:
            produced, unsent, shed = services.outbox_state(d.agent.cfg.outbox_path)
            out.append(
                DeviceRecord(
                    d.spec.device_id, "sim", d.spec.model, d.spec.role, produced, shed, unsent,
                    averaged=d.averaged, unnumbered=d.agent.outbox.lost,
                    frames=d.reader.frames, rejected=d.reader.errors.copy(),
                    max_depth=d.max_depth,
                )
            )  # fmt: skip
        for _host, agent, _emu in self.fleet.pty:
            produced, unsent, shed = services.outbox_state(agent.cfg.outbox_path)
            r = agent.sensors[0]
            out.append(
                DeviceRecord(
                    agent.cfg.device_id, "pty", r.cfg.model, "pty", produced, shed, unsent,
                    unnumbered=agent.outbox.lost, frames=r.frames, rejected=r.errors.copy(),
                )
            )  # fmt: skip
        if self.fleet.victim is not None:
            v = self.fleet.victim
            produced, unsent, shed = services.outbox_state(v.outbox)
            out.append(
                DeviceRecord(
                    v.device_id, "edge-process", "sds011", "killed", produced, shed, unsent
                )
            )
        return out


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    made = path is None
    base = Path(tempfile.mkdtemp(prefix="luftnett-soak-")) if path is None else path
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    try:
        yield base
    finally:
        if made:
            shutil.rmtree(base, ignore_errors=True)


def run_soak(
    profile: Profile,
    echo: Echo,
    section: str | None = None,
    workdir: Path | None = None,
) -> SoakResult:
    """Run the soak scenario of ``profile``; ``echo`` gets one line per event.

    ``workdir`` holds the servers, outboxes and logs and is left in place; None: a temporary
    directory, removed at the end.
    """
    with _workdir(workdir) as base, contextlib.ExitStack() as stack:
        soak = SoakRun(profile, section or profile.name, base, echo)
        soak.start_services(stack)
        soak.start_fleet(stack)
        soak.drive()
        soak.drain()
        figures = count(soak.db_url, soak.records())
        victim = soak.fleet.victim
        return SoakResult(
            profile=profile,
            section=soak.section,
            run_id=soak.run_id,
            started=soak.started,
            real_s=time.monotonic() - soak.real0,
            sim_real_s=soak.sim_real_s,
            sim_start=datetime.fromtimestamp(soak.sim_start, UTC),
            sim_end=datetime.fromtimestamp(soak.sim_end, UTC),
            figures=figures,
            events=soak.events,
            expected_quarantine=dict(sorted(soak.expected_quarantine.items())),
            republished_readings=soak.tap.republished_readings,
            relayed_readings=soak.tap.relayed_readings,
            edge_kills=victim.kills if victim is not None else [],
            commit=_commit(),
            cpus=_cpus(),
            load=" ".join(f"{x:.1f}" for x in os.getloadavg()),
        )


def _cpus() -> int:
    return os.cpu_count() or 0
