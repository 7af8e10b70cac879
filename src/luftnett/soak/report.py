"""The result of a soak run as text lines, as a Markdown section, and its place in the docs.

:func:`update_doc` replaces the section of one profile between ``<!-- soak:NAME:begin -->``
and ``<!-- soak:NAME:end -->`` in a Markdown file (appending it the first time), so the
hand-written parts of docs/reliability.md stay as they are.
"""

from __future__ import annotations

import itertools
import platform
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from luftnett.soak.accounting import DeviceFigures, SoakFigures
from luftnett.soak.profile import Profile

__all__ = ["Event", "SoakResult", "update_doc"]


@dataclass(frozen=True, slots=True)
class Event:
    sim_h: float  # simulated hours since the start
    real_s: float  # real seconds since the start
    what: str


@dataclass(slots=True)
class SoakResult:
    profile: Profile
    section: str  # the docs section it belongs to: the profile's name, or "custom"
    run_id: str
    started: datetime
    real_s: float
    sim_real_s: float  # of which the simulated clock ran
    sim_start: datetime
    sim_end: datetime
    figures: SoakFigures
    events: list[Event]
    expected_quarantine: dict[str, int]
    republished_readings: int
    relayed_readings: int
    edge_kills: list[dict[str, int]]
    commit: str = ""
    machine: str = field(default_factory=lambda: f"{platform.machine()}, {platform.platform()}")
    cpus: int = 0
    load: str = ""  # load averages (1, 5, 15 min) at the end of the run

    @property
    def compression(self) -> float:
        """Simulated seconds per real second while the simulated clock ran."""
        return self.profile.hours * 3600 / max(self.sim_real_s, 1e-3)

    # -- verdicts -------------------------------------------------------------------------
    @property
    def lost(self) -> int:
        return self.figures.total("lost")

    @property
    def duplicated(self) -> int:
        return self.figures.total("duplicated")

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def _of(self, kind: str | None = None, role: str | None = None) -> list[DeviceFigures]:
        return [
            d
            for d in self.figures.devices
            if (kind is None or d.record.kind == kind) and (role is None or d.record.role == role)
        ]

    def checks(self) -> list[tuple[str, bool, str]]:
        """(what, holds, detail): the cross-checks the run makes besides the last line."""
        f = self.figures
        sim = self._of("sim")
        averaged = sum(d.record.averaged or 0 for d in sim)
        numbered = sum(d.record.produced + d.record.unnumbered for d in sim)
        unsent = sum(d.record.unsent for d in f.devices)
        beyond = f.total("beyond")
        led_stored = f.total("ledger_stored")
        led_missing = f.total("ledger_missing")
        gaps_explained = all(d.ledger_missing <= d.record.shed for d in f.devices)
        q_ok = f.quarantine == self.expected_quarantine
        kills = self.edge_kills
        victim = self._of("edge-process")
        kill_seqs = [k["next_seq"] for k in kills] + [sum(d.record.produced for d in victim)]
        return [
            (
                "simulator's count = outboxes' numbers + unnumbered",
                averaged == numbered,
                f"averaged {averaged:,}, numbered {numbered:,}",
            ),
            ("every outbox empty at the end", unsent == 0, f"unsent {unsent}"),
            ("no stored seq beyond what an outbox issued", beyond == 0, f"{beyond}"),
            (
                "ledger stored = stored",
                led_stored == f.total("stored"),
                f"ledger {led_stored:,}, reading_keys {f.total('stored'):,}",
            ),
            (
                "every ledger gap is a shed range",
                gaps_explained,
                f"ledger missing {led_missing:,}, shed {f.shed():,}",
            ),
            (
                "quarantine = the malformed payloads sent",
                q_ok,
                f"{sum(f.quarantine.values())} of {sum(self.expected_quarantine.values())}, "
                "each with its expected reason"
                if q_ok
                else f"got {f.quarantine}, sent {self.expected_quarantine}",
            ),
            (
                "duplicates received >= duplicates injected",
                f.collector_duplicates >= self.republished_readings,
                f"received {f.collector_duplicates:,}, republished {self.republished_readings:,}",
            ),
            (
                "the killed edge process numbered on after each restart",
                bool(kills) and all(a < b for a, b in itertools.pairwise(kill_seqs)),
                "next_seq at the kills "
                + (", ".join(map(str, kill_seqs[:-1])) or "none")
                + f"; at the end {kill_seqs[-1]}",
            ),
        ]

    def by_model(self) -> list[tuple[str, str, int, int, int, int, int, int]]:
        """(kind, model, devices, produced, stored, shed, frames, rejected) per group."""
        groups: dict[tuple[str, str], list[DeviceFigures]] = {}
        for d in self.figures.devices:
            groups.setdefault((d.record.kind, d.record.model), []).append(d)
        return [
            (
                kind,
                model,
                len(ds),
                sum(d.record.produced for d in ds),
                sum(d.stored for d in ds),
                sum(d.record.shed for d in ds),
                sum(d.record.frames for d in ds),
                sum(sum(d.record.rejected.values()) for d in ds),
            )
            for (kind, model), ds in sorted(groups.items())
        ]

    # -- text -----------------------------------------------------------------------------
    def lines(self) -> list[str]:
        f = self.figures
        p = self.profile
        sim = self._of("sim")
        frames = sum(d.record.frames for d in f.devices)
        rejected: Counter[str] = Counter()
        for d in f.devices:
            rejected.update(d.record.rejected)
        out = [
            f"soak {self.section}: {len(sim)} simulated devices + {len(self._of('pty'))} on "
            f"ptys + {len(self._of('edge-process'))} edge process; {p.hours:g} simulated hours "
            f"in {self.sim_real_s:.0f} s (x{self.compression:.0f}), {self.real_s:.0f} s in all",
            f"readings: produced {f.produced():,}, stored {f.total('stored'):,}, shed "
            f"{f.shed():,} (never stored {f.total('shed_lost'):,}), lost {self.lost:,}, "
            f"duplicated {self.duplicated:,}, unnumbered (disk full) "
            f"{_unnumbered(f):,}",
            f"frames decoded {frames:,}; rejected "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(rejected.items())) or "none"),
            "quarantined: "
            + (", ".join(f"{k} {v}" for k, v in f.quarantine.items()) or "none")
            + f" (sent {sum(self.expected_quarantine.values())} malformed)",
            f"duplicates: {f.collector_duplicates:,} copies received and dropped; "
            f"{self.republished_readings:,} readings republished; "
            f"{self.relayed_readings:,} relayed out of order",
        ]
        out += [
            f"  {kind:12s} {model:8s} devices {n:3d}  produced {prod:7,}  stored {st:7,}  shed "
            f"{shed:5,}  frames {fr:8,}  rejected {rej:6,}"
            for kind, model, n, prod, st, shed, fr, rej in self.by_model()
        ]
        out += [f"{'ok ' if ok else 'BAD'} {what}: {detail}" for what, ok, detail in self.checks()]
        out += [f"fault: {line}" for line in self._fault_lines()]
        return out

    def _fault_lines(self) -> list[str]:
        lines = []
        deepest = max(self._of("sim"), key=lambda d: d.record.max_depth, default=None)
        if deepest is not None:
            r = deepest.record
            lines.append(f"deepest outbox backlog: {r.max_depth} readings ({r.role} device)")
        for d in self._of("sim"):
            r = d.record
            if r.role == "clock-ahead":
                lines.append(f"clock +3 h: {d.clock_suspect} of {d.stored} flagged clock_suspect")
            elif r.role == "clock-behind":
                lines.append(f"clock -2 h: {d.clock_suspect} of {d.stored} flagged (undetectable)")
            elif r.role == "stuck":
                lines.append(f"stuck sensor: {d.stuck} readings flagged stuck")
            elif r.role in ("outbox-bound", "disk-full"):
                lines.append(
                    f"{r.role}: produced {r.produced}, shed {r.shed}, unnumbered {r.unnumbered}, "
                    f"stored {d.stored}, lost {d.lost}"
                )
        for i, k in enumerate(self.edge_kills, 1):
            lines.append(
                f"edge kill {i}: next_seq {k['next_seq']}, unsent {k['unsent']}, uncommitted WAL "
                f"frames {k['uncommitted_wal_frames']}"
            )
        return lines

    # -- markdown -------------------------------------------------------------------------
    def markdown(self) -> str:
        f = self.figures
        p = self.profile
        head = (
            f"Run {self.started:%Y-%m-%d %H:%M} UTC, commit `{self.commit or 'unknown'}`, "
            f"{self.cpus} CPUs ({self.machine}), load average at the end {self.load or '?'}. "
            f"{len(self._of('sim'))} simulated devices, "
            f"{len(self._of('pty'))} on ptys, {len(self._of('edge-process'))} edge process; "
            f"{p.hours:g} simulated hours ({self.sim_start:%Y-%m-%d %H:%M} to "
            f"{self.sim_end:%Y-%m-%d %H:%M} UTC) in {self.sim_real_s:.0f} s of real time "
            f"(x{self.compression:.0f}; {self.real_s:.0f} s with start-up, drain and counting); "
            f"window {p.window_s:g} s, a frame or poll every {p.frame_every_s:g} s."
        )
        models = [
            "| devices | model | n | produced | stored | shed | frames | rejected |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        models += [
            f"| {kind} | {model} | {n} | {prod:,} | {st:,} | {shed:,} | {fr:,} | {rej:,} |"
            for kind, model, n, prod, st, shed, fr, rej in self.by_model()
        ]
        rows = [
            ("produced (outbox sequence numbers)", f"{f.produced():,}"),
            ("stored (reading_keys)", f"{f.total('stored'):,}"),
            ("duplicated (rows beyond one per device and seq)", f"{self.duplicated:,}"),
            ("lost (produced - stored - shed)", f"{self.lost:,}"),
            ("shed by the outbox policy, never stored", f"{f.total('shed_lost'):,}"),
            ("shed but delivered before the shed", f"{f.shed() - f.total('shed_lost'):,}"),
            ("unnumbered (disk full, retry failed)", f"{_unnumbered(f):,}"),
            ("quarantined", f"{sum(f.quarantine.values()):,}"),
            ("duplicate copies received and dropped", f"{f.collector_duplicates:,}"),
            ("readings republished on purpose", f"{self.republished_readings:,}"),
            ("readings relayed out of order", f"{self.relayed_readings:,}"),
        ]
        table = ["| figure | value |", "|---|---:|", *(f"| {a} | {b} |" for a, b in rows)]
        q = ", ".join(f"`{k}` {v}" for k, v in f.quarantine.items()) or "none"
        checks = ["| check | holds | detail |", "|---|---|---|"]
        checks += [f"| {w} | {'yes' if ok else '**no**'} | {d} |" for w, ok, d in self.checks()]
        events = ["| sim h | real s | event |", "|---:|---:|---|"]
        events += [f"| {e.sim_h:.2f} | {e.real_s:.0f} | {e.what} |" for e in self.events]
        return "\n".join(
            [
                head,
                "",
                *table,
                "",
                *models,
                "",
                f"Quarantined by reason: {q}.",
                "",
                *checks,
                "",
                *(f"- {line}" for line in self._fault_lines()),
                "",
                "<details><summary>Event log</summary>",
                "",
                *events,
                "",
                "</details>",
                "",
                "```",
                f.last_line,
                "```",
            ]
        )


def _unnumbered(f: SoakFigures) -> int:
    return sum(d.record.unnumbered for d in f.devices)


def update_doc(path: Path, section: str, body: str) -> None:
    """Put ``body`` between the section's markers in ``path`` (appended when absent)."""
    begin, end = f"<!-- soak:{section}:begin -->", f"<!-- soak:{section}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + f"\n\n## Results: {section}\n\n{block}\n"
    path.write_text(text if text.endswith("\n") else text + "\n")
