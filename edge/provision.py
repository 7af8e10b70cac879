"""`luftnett device add`: a device's broker credentials, and the ACL that confines it.

Each device logs in to Mosquitto with its own user name (= its device id) and a random
password. The ACL holds one pattern for all devices::

    pattern write <root>/v1/%u/#

so a device may publish only under its own id (readings, status, its last will) and read
nothing. The password file holds only salted PBKDF2-SHA512 hashes (Mosquitto 2's ``$7$``
format), written by ``mosquitto_passwd`` when it is installed and by :func:`hash_password`
otherwise; the clear password is printed once, inside the edge config snippet.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import click

from luftnett.contracts.mqtt import DEVICE_ID_PATTERN
from luftnett.errors import ConfigError

__all__ = ["acl_pattern", "add_device", "device", "ensure_acl", "hash_password"]

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
SALT_BYTES = 12


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash: ``$7$<iterations>$<salt b64>$<pbkdf2-sha512 b64>``."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return (
        f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}$"
        f"{base64.b64encode(digest).decode()}"
    )


def acl_pattern(topic_root: str) -> str:
    return f"pattern write {topic_root}/v1/%u/#"


def acl_read_pattern(topic_root: str) -> str:
    """A device reads the collector side's confirmations of what the database holds."""
    return f"pattern read {topic_root}/v1/%u/stored"


def _users(passwd_file: Path) -> set[str]:
    if not passwd_file.exists():
        return set()
    return {line.split(":", 1)[0] for line in passwd_file.read_text().splitlines() if ":" in line}


def _write_entry(passwd_file: Path, user: str, password: str, use_tool: bool) -> str:
    """Add or replace ``user``; return what hashed it."""
    if not passwd_file.exists():
        passwd_file.parent.mkdir(parents=True, exist_ok=True)
        passwd_file.touch(mode=0o600)
    tool = shutil.which("mosquitto_passwd") if use_tool else None
    if tool:
        proc = subprocess.run(
            [tool, "-b", str(passwd_file), user, password], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ConfigError(
                f"mosquitto_passwd refused {passwd_file}: {proc.stderr.strip()[:200]}"
            )
        return "mosquitto_passwd"
    lines = [
        line
        for line in passwd_file.read_text().splitlines()
        if line.strip() and line.split(":", 1)[0] != user
    ]
    lines.append(f"{user}:{hash_password(password)}")
    tmp = passwd_file.with_name(passwd_file.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    os.replace(tmp, passwd_file)
    return "pbkdf2-sha512 ($7$)"


def ensure_acl(acl_file: Path, topic_root: str) -> bool:
    """Put the device patterns at the top of ``acl_file`` unless there; True if any was added."""
    text = acl_file.read_text() if acl_file.exists() else ""
    have = {line.strip() for line in text.splitlines()}
    missing = [p for p in (acl_pattern(topic_root), acl_read_pattern(topic_root)) if p not in have]
    if not missing:
        return False
    header = (
        "# luftnett devices: user name = device id; each writes only under its own topics\n"
        + "".join(f"{p}\n" for p in missing)
        + "\n"
    )
    acl_file.parent.mkdir(parents=True, exist_ok=True)
    acl_file.write_text(header + text)
    return True


def add_device(
    device_id: str,
    passwd_file: Path,
    acl_file: Path,
    topic_root: str = "luftnett",
    replace: bool = False,
    use_tool: bool = True,
) -> tuple[str, str, bool]:
    """Create ``device_id``'s credentials; return ``(password, hashed_by, acl_added)``."""
    if not re.match(DEVICE_ID_PATTERN, device_id):
        raise ConfigError(f"device id must match {DEVICE_ID_PATTERN} (got {device_id!r})")
    try:
        if device_id in _users(passwd_file) and not replace:
            raise ConfigError(
                f"{device_id} already has credentials in {passwd_file}; --replace issues new ones"
            )
        password = secrets.token_urlsafe(24)
        hashed_by = _write_entry(passwd_file, device_id, password, use_tool)
        return password, hashed_by, ensure_acl(acl_file, topic_root)
    except UnicodeDecodeError:
        raise ConfigError(
            f"{passwd_file} or {acl_file} is not a Mosquitto file (not UTF-8 text); "
            "give the broker's password_file and acl_file"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot use {exc.filename or passwd_file}: {exc.strerror or exc}; "
            "check the path and its permissions"
        ) from None


@click.group()
def device() -> None:
    """Broker credentials of field devices (Mosquitto password file and ACL)."""


@device.command("add")
@click.argument("device_id")
@click.option(
    "--passwd-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Mosquitto password_file (created if missing).",
)
@click.option(
    "--acl-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Mosquitto acl_file; the device pattern is added once.",
)
@click.option("--topic-root", default=None, help="Topic root (default mqtt.topic_root).")
@click.option(
    "--broker",
    default="mqtts://broker.example.org:8883",
    show_default=True,
    help="Broker URL for the printed edge config.",
)
@click.option(
    "--ca-file",
    default="/etc/luftnett/ca.crt",
    show_default=True,
    help="Path of the broker's CA certificate on the device, for the printed config.",
)
@click.option("--replace", is_flag=True, help="Issue a new password for an existing device.")
@click.pass_context
def device_add(
    ctx: click.Context,
    device_id: str,
    passwd_file: Path,
    acl_file: Path,
    topic_root: str | None,
    broker: str,
    ca_file: str,
    replace: bool,
) -> None:
    """Create a device's broker credentials and print its edge config snippet.

    Generates a random password, stores only its hash in the password file (with
    mosquitto_passwd when installed), makes sure the ACL confines every device to
    <root>/v1/<its id>/#, and prints the [edge] settings for the device once. Reload the
    broker afterwards (systemctl reload mosquitto, or SIGHUP).

    Example:  luftnett device add school-07 --passwd-file /etc/mosquitto/luftnett.passwd
    --acl-file /etc/mosquitto/luftnett.acl > school-07.toml
    """
    from luftnett.cli import settings_of

    root = topic_root or settings_of(ctx).mqtt.topic_root
    password, hashed_by, acl_added = add_device(
        device_id, passwd_file, acl_file, root, replace=replace
    )
    click.echo(
        f"# edge config of {device_id}: copy to /etc/luftnett/edge.toml (mode 0600); the\n"
        "# password is shown only now\n"
        f'mqtt_url = "{broker}"\n\n'
        f'[mqtt]\ntopic_root = "{root}"\n\n'
        f'[edge]\ndevice_id = "{device_id}"\n'
        f'mqtt_password = "{password}"\n'
        f'tls_ca_file = "{ca_file}"\n\n'
        f'[[edge.sensors]]\nmodel = "sds011"\nport = "/dev/ttyUSB0"'
    )
    click.echo(
        f"{device_id}: credentials written to {passwd_file} ({hashed_by}); ACL "
        f"{'pattern added to' if acl_added else 'already in'} {acl_file}; reload mosquitto",
        err=True,
    )
