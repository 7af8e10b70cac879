"""`luftnett device add`: hashes Mosquitto accepts, one ACL pattern, no silent overwrite."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from luftnett.edge.provision import acl_pattern, acl_read_pattern, add_device, hash_password
from luftnett.errors import ConfigError


def test_hash_is_mosquitto_2_pbkdf2_sha512() -> None:
    salt = bytes(range(12))
    h = hash_password("secret123", salt)
    _, alg, rounds, salt_b64, digest_b64 = h.split("$")
    assert (alg, rounds) == ("7", "101")
    assert base64.b64decode(salt_b64) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"secret123", salt, 101, 64)
    assert base64.b64decode(digest_b64) == expected
    assert hash_password("secret123") != hash_password("secret123")  # salted


@pytest.mark.parametrize("use_tool", [True, False], ids=["mosquitto_passwd", "builtin"])
def test_add_device_writes_a_hash_and_the_acl_pattern_once(tmp_path: Path, use_tool: bool) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    acl.write_text("user luftnett-collector\ntopic read luftnett/v1/+/readings\n")
    pw_a, _, added_a = add_device("dev-a", passwd, acl, use_tool=use_tool)
    pw_b, _, added_b = add_device("dev-b", passwd, acl, use_tool=use_tool)
    assert (added_a, added_b) == (True, False)
    assert pw_a != pw_b and len(pw_a) >= 32
    text = passwd.read_text()
    assert pw_a not in text and pw_b not in text  # only hashes on disk
    users = [line.split(":")[0] for line in text.splitlines()]
    assert users == ["dev-a", "dev-b"]
    lines = acl.read_text().splitlines()
    for pattern in (acl_pattern("luftnett"), acl_read_pattern("luftnett")):
        assert lines.count(pattern) == 1
        assert lines.index(pattern) < lines.index("user luftnett-collector")
    with pytest.raises(ConfigError, match="already has credentials"):
        add_device("dev-a", passwd, acl, use_tool=use_tool)
    pw_a2, _, _ = add_device("dev-a", passwd, acl, replace=True, use_tool=use_tool)
    assert pw_a2 != pw_a
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()].count("dev-a") == 1


def test_bad_device_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device id must match"):
        add_device("Dev A", tmp_path / "p", tmp_path / "a")


def test_a_file_that_cannot_be_used_is_a_clear_error(tmp_path: Path) -> None:
    """A password file under /proc (cannot be created) and one in UTF-16: each a ConfigError
    that names the file, not a traceback."""
    acl = tmp_path / "acl"
    with pytest.raises(ConfigError, match=r"cannot use /proc/luftnett-none.*: .*check the path"):
        add_device("dev-a", Path("/proc/luftnett-none/x.passwd"), acl, use_tool=False)
    utf16 = tmp_path / "passwd"
    utf16.write_text("dev-z:$7$101$abc\n", encoding="utf-16")
    with pytest.raises(ConfigError, match="not a Mosquitto file"):
        add_device("dev-a", utf16, acl, use_tool=False)
