"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg_pool import AsyncConnectionPool

from luftnett import __version__
from luftnett.api.routers import devices, ledger
from luftnett.errors import LuftnettError, StorageError
from luftnett.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings, database_url: str) -> FastAPI:
    """Build the app; the pool opens in the lifespan and fails fast on a wrong DSN."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, min_size=1, max_size=10, open=False, timeout=10
        )
        try:
            await pool.open(wait=True, timeout=15)
        except Exception as exc:
            raise StorageError(
                "API cannot reach the database; check LUFTNETT_DATABASE_URL or start "
                "`luftnett demo`"
            ) from exc
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="luftnett API",
        version=__version__,
        summary="Air-quality microsensor readings: devices, series, downloads, maps.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(ledger.router)  # before devices: /devices/health is a literal path
    app.include_router(devices.router)

    @app.exception_handler(LuftnettError)
    async def _luftnett_error(_r: Request, exc: LuftnettError) -> JSONResponse:
        status = 503 if isinstance(exc, StorageError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/api/v1/health", tags=["meta"], summary="Liveness and database reachability")
    async def health(request: Request) -> dict[str, Any]:
        async with request.app.state.pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM readings")
            (n,) = await cur.fetchone()
        return {"status": "ok", "version": __version__, "readings": n}

    index = resources.files("luftnett.api.static").joinpath("index.html").read_text("utf-8")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def home() -> str:
        return index

    return app
