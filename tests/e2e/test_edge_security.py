"""TLS, per-device credentials and the ACL against a real Mosquitto.

The broker runs with a CA and certificate generated here, a password file and ACL written by
`luftnett device add`, and TLS only. Device A's credentials cannot write device B's topic (and
the collector never sees such a message), cannot read other devices, and a wrong password or
no password is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import queue
import re
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from luftnett.cli import main
from luftnett.collector.service import Collector, CollectorConfig
from luftnett.contracts import mqtt as contract
from luftnett.edge.agent import EdgeAgent, EdgeConfig, SensorConfig
from luftnett.edge.provision import add_device, hash_password
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sds011 import Sds011Emulator
from luftnett.servers import EmbeddedMosquitto, free_port

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, ca_key
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
    )
    if issuer is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return b.sign(ca_key, hashes.SHA256())


def _pki(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a broker certificate for 127.0.0.1: (ca, cert, key) files."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("luftnett test CA", ca_key, None, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("127.0.0.1", key, ca, ca_key)
    paths = d / "ca.crt", d / "broker.crt", d / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class SecureBroker:
    broker: EmbeddedMosquitto
    ca: Path
    root: str
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.broker.port


@pytest.fixture
def secure(tmp_path: Path, topic_root: str) -> Iterator[SecureBroker]:
    ca, cert, key = _pki(tmp_path / "pki")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    passwords = {}
    for dev in ("dev-a", "dev-b"):
        res = CliRunner().invoke(
            main,
            [
                "device", "add", dev, "--passwd-file", str(passwd), "--acl-file", str(acl),
                "--topic-root", topic_root, "--ca-file", str(ca),
            ],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        m = re.search(r'mqtt_password = "([^"]+)"', res.stdout)
        assert m, res.stdout
        passwords[dev] = m.group(1)
    # the collector's user: read every device's readings
    passwords["collector"] = uuid.uuid4().hex
    with passwd.open("a") as f:
        f.write(f"collector:{hash_password(passwords['collector'])}\n")
    with acl.open("a") as f:
        f.write(f"user collector\ntopic read {topic_root}/v1/+/readings\n")
    broker = EmbeddedMosquitto(
        tmp_path / "broker", password_file=passwd, acl_file=acl, tls=(ca, cert, key)
    )
    broker.start()
    yield SecureBroker(broker, ca, topic_root, passwords)
    broker.stop()


def _client(
    s: SecureBroker, user: str | None, password: str | None
) -> tuple[mqtt.Client, queue.Queue[object]]:
    events: queue.Queue[object] = queue.Queue()
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    c.tls_set(ca_certs=str(s.ca), cert_reqs=ssl.CERT_REQUIRED)
    if user:
        c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, rc, _p: events.put(("connack", rc))
    c.on_publish = lambda _c, _u, mid, rc, _p: events.put(("puback", mid, rc))
    c.on_subscribe = lambda _c, _u, mid, rcs, _p: events.put(("suback", mid, rcs))
    c.on_message = lambda _c, _u, msg: events.put(("message", msg.topic))
    return c, events


def _next(events: queue.Queue[object], kind: str) -> tuple[object, ...]:
    while True:
        ev = events.get(timeout=10)
        assert isinstance(ev, tuple)
        if ev[0] == kind:
            return ev


def _payload(device_id: str, seq: int) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "device_id": device_id,
            "agent_version": "test",
            "sensor": {"model": "sds011"},
            "readings": [
                {
                    "seq": seq,
                    "ts": "2026-01-01T00:00:00+00:00",
                    "window_s": 60,
                    "n_samples": 1,
                    "values": {"pm25_ugm3": 1.0},
                }
            ],
        }
    ).encode()


def _count(pg_url: str, sql: str, *params: object) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def test_device_credentials_and_acl_confine_each_device_to_its_own_topics(
    secure: SecureBroker, pg_url: str, wait_until, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real collector, over TLS with its own user (it trusts the system CAs: point them at ours)
    monkeypatch.setenv("SSL_CERT_FILE", str(secure.ca))
    suffix = uuid.uuid4().hex[:6]
    collector = Collector(
        CollectorConfig(
            database_url=pg_url,
            mqtt_url=f"mqtts://collector:{secure.passwords['collector']}@127.0.0.1:{secure.port}",
            topic_root=secure.root,
            client_id=f"col-{suffix}",
            flush_interval_s=0.1,
        )
    ).start()
    a, events = _client(secure, "dev-a", secure.passwords["dev-a"])
    try:
        assert collector.wait_ready(10), "collector did not subscribe over TLS"
        a.connect("127.0.0.1", secure.port)
        a.loop_start()
        assert not _next(events, "connack")[1].is_failure  # type: ignore[attr-defined]
        # A writes B's topic: the broker refuses it (MQTT v5 PUBACK "not authorized")
        seq = uuid.uuid4().int % 2**40  # unique even on a reused test database
        forged = _payload("dev-b", seq).replace(b'"pm25_ugm3": 1.0', b'"pm25_ugm3": 666.0')
        info = a.publish(contract.readings_topic(secure.root, "dev-b"), forged, 1)
        _, mid, rc = _next(events, "puback")
        assert mid == info.mid
        assert rc.is_failure, rc  # type: ignore[attr-defined]
        # A may ask to read B's topic (Mosquitto 2.0 grants the SUBACK) but gets nothing of it
        a.subscribe(contract.readings_topic(secure.root, "dev-b"), 1)
        _next(events, "suback")
        b, b_events = _client(secure, "dev-b", secure.passwords["dev-b"])
        b.connect("127.0.0.1", secure.port)
        b.loop_start()
        try:
            assert not _next(b_events, "connack")[1].is_failure  # type: ignore[attr-defined]
            b.publish(contract.readings_topic(secure.root, "dev-b"), _payload("dev-b", seq), 1)
            assert not _next(b_events, "puback")[2].is_failure  # type: ignore[attr-defined]
        finally:
            b.loop_stop()
            b.disconnect()
        # A writes its own topic: accepted and stored
        a.publish(contract.readings_topic(secure.root, "dev-a"), _payload("dev-a", seq), 1)
        _, _, rc = _next(events, "puback")
        assert not rc.is_failure  # type: ignore[attr-defined]
        wait_until(
            lambda: _count(pg_url, "SELECT count(*) FROM readings WHERE seq = %s "
                           "AND device_id IN ('dev-a', 'dev-b')", seq) == 2,
            10,
            "dev-a's and dev-b's own readings stored",
        )  # fmt: skip
        # B's one message under B's topic is B's own: A's forged one never reached the collector
        assert _count(pg_url, "SELECT count(*) FROM readings WHERE device_id = 'dev-b' "
                      "AND seq = %s AND pm25_ugm3 = 1.0", seq) == 1  # fmt: skip
        assert (
            _count(
                pg_url,
                "SELECT count(*) FROM quarantine WHERE topic = %s",
                contract.readings_topic(secure.root, "dev-b"),
            )
            == 0
        )  # not even to quarantine it
        assert not [e for e in list(events.queue) if isinstance(e, tuple) and e[0] == "message"]
    finally:
        a.loop_stop()
        a.disconnect()
        collector.stop()


@pytest.mark.parametrize(
    ("user", "password"),
    [
        pytest.param("dev-a", "wrong-password", id="wrong-password"),
        pytest.param("dev-a", None, id="no-password"),
        pytest.param(None, None, id="anonymous"),
        pytest.param("dev-c", "whatever", id="unknown-device"),
    ],
)
def test_bad_credentials_are_refused(
    secure: SecureBroker, user: str | None, password: str | None
) -> None:
    c, events = _client(secure, user, password)
    c.connect("127.0.0.1", secure.port)
    c.loop_start()
    try:
        (_, rc) = _next(events, "connack")
        assert rc.is_failure, rc  # type: ignore[attr-defined]
    finally:
        c.loop_stop()
        c.disconnect()


def test_plain_mqtt_to_the_tls_listener_gets_nowhere(secure: SecureBroker) -> None:
    with socket.create_connection(("127.0.0.1", secure.port), timeout=5) as s:
        # an MQTT 3.1.1 CONNECT in clear text: the TLS listener answers no CONNACK
        s.sendall(bytes.fromhex("101000044d5154540402003c0004746573740000"))
        s.settimeout(5)
        try:
            data = s.recv(4)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert not data.startswith(b"\x20")


def test_the_agent_publishes_over_tls_with_its_own_credentials(
    secure: SecureBroker, pg_url: str, tmp_path: Path, wait_until, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(secure.ca))
    collector = Collector(
        CollectorConfig(
            database_url=pg_url,
            mqtt_url=f"mqtts://collector:{secure.passwords['collector']}@127.0.0.1:{secure.port}",
            topic_root=secure.root,
            client_id=f"col-{uuid.uuid4().hex[:6]}",
            flush_interval_s=0.1,
        )
    ).start()
    emu = Sds011Emulator(lambda _t: (4.2, 6.3))
    emu.interval_s = 0.05
    before = _count(pg_url, "SELECT count(*) FROM readings WHERE device_id = 'dev-b'")
    try:
        assert collector.wait_ready(10)
        with PtyHost(emu) as host:
            agent = EdgeAgent(
                EdgeConfig(
                    device_id="dev-b",
                    outbox_path=tmp_path / "b.outbox",
                    mqtt_url=f"mqtts://127.0.0.1:{secure.port}",
                    sensors=(SensorConfig("sds011", host.path, window_s=0.3),),
                    topic_root=secure.root,
                    clock_check="off",
                    username="dev-b",
                    password=secure.passwords["dev-b"],
                    tls_ca_file=secure.ca,
                )
            ).start()
            try:
                wait_until(
                    lambda: _count(pg_url, "SELECT count(*) FROM readings WHERE device_id = "
                                   "'dev-b'") >= before + 3,
                    15,
                    "dev-b's readings over TLS",
                )  # fmt: skip
            finally:
                agent.stop()
    finally:
        collector.stop()


def test_the_shipped_production_config_starts_and_refuses_strangers(tmp_path: Path) -> None:
    """deploy/mosquitto/ as shipped, with only paths, ports and the user swapped for the test."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    ca, cert, key = _pki(tmp_path / "pki")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    shutil.copy(REPO / "deploy/mosquitto/luftnett.acl", acl)
    password, _, added = add_device("dev-a", passwd, acl, "luftnett")
    assert not added  # the shipped ACL already holds the device pattern
    tls_port, local_port = free_port(), free_port()
    conf = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    for old, new in {
        "user mosquitto": "user root",
        "/etc/mosquitto/luftnett.passwd": str(passwd),
        "/etc/mosquitto/luftnett.acl": str(acl),
        "/etc/mosquitto/certs/ca.crt": str(ca),
        "/etc/mosquitto/certs/broker.crt": str(cert),
        "/etc/mosquitto/certs/broker.key": str(key),
        "listener 8883": f"listener {tls_port}",
        "listener 1883 127.0.0.1": f"listener {local_port} 127.0.0.1",
        "/var/lib/mosquitto/": f"{tmp_path}/",
        "log_dest syslog": f"log_dest file {tmp_path}/mosquitto.log",
    }.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(
        [exe, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from luftnett.servers import wait_port

        wait_port(tls_port, 15, "the shipped mosquitto.conf")
        s = SecureBroker(EmbeddedMosquitto(tmp_path, port=tls_port), ca, "luftnett", {})
        for user, pw, refused in (("dev-a", password, False), ("dev-a", "nope", True)):
            c, events = _client(s, user, pw)
            c.connect("127.0.0.1", tls_port)
            c.loop_start()
            try:
                assert _next(events, "connack")[1].is_failure is refused  # type: ignore[attr-defined]
            finally:
                c.loop_stop()
                c.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)
