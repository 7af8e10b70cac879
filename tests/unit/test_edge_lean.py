"""The agent's lean process: the config survives the hand-over; no settings code is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from luftnett.edge.config import EdgeConfig, SensorConfig
from luftnett.edge.lean import config_from_json, config_to_json


def test_the_config_survives_the_hand_over_password_included() -> None:
    cfg = EdgeConfig(
        device_id="school-07",
        outbox_path=Path("/var/lib/luftnett/edge/school-07.outbox"),
        mqtt_url="mqtts://broker.example.org:8883",
        sensors=(
            SensorConfig("sds011", "/dev/ttyUSB0", window_s=300, warmup_s=30, awake_s=60),
            SensorConfig("sht31", "/dev/ttyUSB1", name="trh"),
        ),
        username="school-07",
        password="s3cret",
        tls_ca_file=Path("/etc/luftnett/ca.crt"),
        clock_check="kernel",
    )
    back, level = config_from_json(config_to_json(cfg, "WARNING"))
    assert back == cfg
    assert back.password == "s3cret"
    assert level == "WARNING"


def test_the_agent_process_imports_neither_settings_nor_click() -> None:
    code = (
        "import sys, luftnett.edge.lean, luftnett.edge.agent\n"
        "heavy = ('pydantic_settings', 'click', 'luftnett.settings', 'luftnett.servers', "
        "'luftnett.cli', 'numpy', 'psycopg')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
