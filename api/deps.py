"""FastAPI dependencies as ``Annotated`` aliases: connection, settings, profiles, access.

Access: read endpoints are open while ``api.read_open`` is true (municipal open data); write
and admin endpoints always need a key of ``api.api_keys`` in the ``X-API-Key`` header. Keys are
compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from luftnett.api.profiles import ProfileSet, load_profiles
from luftnett.settings import Settings

__all__ = ["ApiKey", "Conn", "HasKey", "Profiles", "ReadAccess", "SettingsDep", "key_ok"]

_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="API key (api.api_keys); required for write and admin endpoints, and for "
    "reads when api.read_open is false",
)


async def _conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    async with request.app.state.pool.connection() as conn:
        conn.row_factory = dict_row
        yield conn


def _settings(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


def key_ok(settings: Settings, given: str | None) -> bool:
    """True when ``given`` equals one of the configured keys (constant-time compare)."""
    if not given:
        return False
    probe = given.encode("utf-8", "surrogatepass")
    ok = False
    for k in settings.api.api_keys:
        ok |= hmac.compare_digest(probe, k.get_secret_value().encode("utf-8"))
    return ok


def _require_key(
    settings: Annotated[Settings, Depends(_settings)],
    key: Annotated[str | None, Security(_key_header)] = None,
) -> None:
    if not key:
        raise HTTPException(
            401,
            "this endpoint needs an API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    if not key_ok(settings, key):
        raise HTTPException(403, "the X-API-Key given is not valid; ask an administrator")


def _read_access(
    settings: Annotated[Settings, Depends(_settings)],
    key: Annotated[str | None, Security(_key_header)] = None,
) -> None:
    if settings.api.read_open:
        return
    _require_key(settings, key)


def _has_key(
    settings: Annotated[Settings, Depends(_settings)],
    key: Annotated[str | None, Security(_key_header)] = None,
) -> bool:
    """Whether the request carries a valid key (for what only staff may read, on open
    endpoints); a wrong key is refused as on the write endpoints, never ignored."""
    if not key:
        return False
    _require_key(settings, key)
    return True


def _profiles() -> ProfileSet:
    return load_profiles()


Conn = Annotated[AsyncConnection[dict[str, Any]], Depends(_conn)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Profiles = Annotated[ProfileSet, Depends(_profiles)]
ApiKey = Depends(_require_key)
ReadAccess = Depends(_read_access)
HasKey = Annotated[bool, Depends(_has_key)]
