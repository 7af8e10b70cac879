"""Coverage-guided fuzzing (atheris / libFuzzer) of everything that parses untrusted bytes.

Targets: every sensor framer (bytes from a serial port), the MQTT payload decoder and the
collector's message validation (bytes from the network). A target passes when no input makes it
raise anything but the documented error (framers: nothing at all; the decoder: PayloadError;
validation: never — it returns a quarantine record). Run by hand (atheris is not a project
dependency: `pip install atheris`):

    python bench/fuzz.py --runs 200000          # every target, figures to docs/security.md
    python bench/fuzz.py --target sds011 --runs 1000

Each target runs in its own process (libFuzzer exits when done) and reports how many inputs it
executed; the figures go to docs/security.md between the fuzz markers.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

FRAMERS = ("sds011", "pms5003", "sps30", "dgs-no2", "sht31")
TARGETS = (*FRAMERS, "payload", "validate")
REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- fuzz:start -->", "<!-- fuzz:end -->"


def run_target(name: str, runs: int) -> None:  # inside the child process
    import atheris

    with atheris.instrument_imports():
        from luftnett.collector.validate import Accepted, Quarantined, validate_message
        from luftnett.contracts import mqtt as contract
        from luftnett.edge import drivers
        from luftnett.errors import PayloadError

    if name in FRAMERS:
        framer_cls = drivers.get(name).Framer

        def one(data: bytes) -> None:
            fdp = atheris.FuzzedDataProvider(data)
            framer = framer_cls()
            while fdp.remaining_bytes():
                framer.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64)))
            framer.flush()

    elif name == "payload":

        def one(data: bytes) -> None:
            with contextlib.suppress(PayloadError):
                contract.decode_readings(data, topic_device="dev-001")

    else:

        def one(data: bytes) -> None:
            item = validate_message("luftnett", "luftnett/v1/dev-001/readings", data)
            assert isinstance(item, Accepted | Quarantined)

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=4096"], one)
    atheris.Fuzz()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200_000, help="inputs per target")
    ap.add_argument("--target", choices=TARGETS, action="append", help="default: all")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_target(args.child, args.runs)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    rows = []
    for name in args.target or TARGETS:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--runs", str(args.runs)],
            capture_output=True,
            text=True,
        )
        dt = time.perf_counter() - t0
        done = re.search(r"Done (\d+) runs", proc.stderr)
        crashed = proc.returncode != 0
        n = int(done.group(1)) if done else 0
        rows.append((name, n, dt, "crash" if crashed else "ok"))
        print(
            f"{name:10s} {n:>9,} inputs in {dt:6.1f} s  {'CRASH' if crashed else 'ok'}",
            file=sys.stderr,
        )
        if crashed:
            print(proc.stderr[-3000:], file=sys.stderr)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    table = [
        START,
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"`python bench/fuzz.py --runs {args.runs}`.",
        "",
        "| target | inputs executed | seconds | result |",
        "|---|---|---|---|",
        *[f"| {n} | {k:,} | {dt:.0f} | {r} |" for n, k, dt, r in rows],
        END,
    ]
    if not args.no_write:
        doc = REPO / "docs" / "security.md"
        text = doc.read_text(encoding="utf-8")
        block = "\n".join(table)
        if START in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), block, text, flags=re.S)
        else:
            text += "\n## Fuzzing figures\n\n" + block + "\n"
        doc.write_text(text, encoding="utf-8")
    return 1 if any(r == "crash" for *_, r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
