"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from luftnett.settings import Settings

__all__ = ["Conn", "SettingsDep"]


async def _conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    async with request.app.state.pool.connection() as conn:
        conn.row_factory = dict_row
        yield conn


def _settings(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


Conn = Annotated[AsyncConnection[dict[str, Any]], Depends(_conn)]
SettingsDep = Annotated[Settings, Depends(_settings)]
