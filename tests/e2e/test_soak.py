"""The soak, CI-sized: `luftnett soak` with fewer devices and hours, through the real CLI.

Its own PostgreSQL, Mosquitto, collector process, edge process and ptys; every scheduled fault
of the short profile, compressed. Nothing lost, nothing stored twice, the shed readings
counted apart, the malformed payloads in quarantine, and the last line in its exact format.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

LAST_LINE = re.compile(
    r"^produced=(\d+) stored=(\d+) duplicated=(\d+) lost=(\d+) shed=(\d+) quarantined=(\d+)$"
)


@pytest.mark.timeout(420)
def test_soak_loses_nothing_and_counts_what_it_sheds(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\nHand-written text stays.\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUFTNETT_")}
    cmd = [
        sys.executable, "-m", "luftnett.cli", "soak", "--profile", "short",
        "--devices", "10", "--hours", "6", "--doc", str(doc), "--workdir", str(tmp_path / "w"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    out = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    m = LAST_LINE.match(out[-1])
    assert m, f"last line is {out[-1]!r}"
    produced, stored, duplicated, lost, shed, quarantined = map(int, m.groups())
    assert (lost, duplicated) == (0, 0)
    assert produced - stored - shed == lost
    assert produced > 500  # 10 devices x 6 h of 5-minute windows, plus the real-time ones
    assert shed > 0, "the broker outage should overflow the bounded outbox"
    assert quarantined == 9  # exactly the malformed payloads the soak sent
    bad = [line for line in out if line.startswith("BAD")]
    assert not bad, bad
    fired = "\n".join(out)
    for event in (
        "collector SIGKILL",
        "broker stopped",
        "broker started",
        "disk full",
        "PostgreSQL stopped",
        "PostgreSQL started",
        "edge process SIGKILL",
        "sensors unplugged",
        "sampled messages republished",
    ):
        assert event in fired, f"{event!r} never happened"
    text = doc.read_text()
    assert text.startswith("# Reliability\n\nHand-written text stays.\n")
    assert "<!-- soak:custom:begin -->" in text and out[-1] in text
