"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from psycopg import AsyncConnection
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from luftnett import __version__
from luftnett.api import sensorthings, startup
from luftnett.api.deps import Conn, ReadAccess
from luftnett.api.routers import (
    admin,
    aggregates,
    airindex,
    calibration_jobs,
    devices,
    downloads,
    exceedances,
    ledger,
    maps,
    sites,
)
from luftnett.api.routers import annotations as annotations_router
from luftnett.api.routers import catalogue as catalogue_router
from luftnett.errors import ConfigError, LuftnettError, StorageError
from luftnett.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(x) for x in loc]
    if parts and parts[0] in ("query", "path", "header", "body"):
        kind = {"query": "query parameter", "path": "path parameter"}.get(parts[0], parts[0])
        rest = ".".join(parts[1:])
        return f"{kind} {rest!r}" if rest else kind
    return ".".join(parts) or "request"


def _validation_message(exc: RequestValidationError) -> str:
    msgs = []
    for err in exc.errors()[:5]:
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        msgs.append(f"{_where(err.get('loc', ()))}: {msg}")
    return "; ".join(msgs) + " (see /docs for the parameters)"


async def _configure(conn: AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)
    await conn.execute("SET TIME ZONE 'UTC'")
    # short analytical queries: JIT compilation costs seconds and saves milliseconds
    await conn.execute("SET jit = off")


#: Swagger UI's and ReDoc's files in the fastapi-offline package (/docs, /redoc without a CDN)
_DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}


@functools.cache
def _docs_file(name: str) -> bytes:
    """One of _DOCS_FILES, read on the first request for it (~2.8 MB together: not at start)."""
    return (resources.files("fastapi_offline") / "static" / name).read_bytes()


def create_app(settings: Settings, database_url: str) -> FastAPI:
    """Build the app; the pool opens in the lifespan and fails fast on a wrong DSN."""
    startup.tune_memory()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, min_size=1, max_size=10, open=False, timeout=10, configure=_configure
        )
        try:
            await pool.open(wait=True, timeout=15)
        except Exception as exc:
            raise StorageError(
                "API cannot reach the database; check LUFTNETT_DATABASE_URL or start "
                "`luftnett demo`"
            ) from exc
        app.state.pool = pool
        warming = asyncio.create_task(startup.prewarm(pool))  # in the background
        try:
            yield
        finally:
            warming.cancel()
            await pool.close()

    app = FastAPI(
        title="luftnett API",
        version=__version__,
        summary="Air-quality microsensor readings: devices, series, limit values, downloads.",
        description="Open municipal air-quality data from low-cost sensors. All values are "
        "**indicative measurements** (microsensors), never evidence of legal compliance. "
        "Read endpoints are open unless `api.read_open` is false; write and admin endpoints "
        "need an `X-API-Key`. See docs/api.md. A read-only OGC SensorThings API 1.1 "
        "serves the same data at [/sta/v1.1](/sta/v1.1) (docs/sensorthings.md).",
        lifespan=lifespan,
        # /docs and /redoc from the files of the fastapi-offline package, not FastAPI's CDN
        # links: they work offline (a laptop in the field)
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database_url = database_url  # for the annotations' sync writes
    app.include_router(ledger.router)  # before devices: /devices/health is a literal path
    app.include_router(devices.router)
    app.include_router(sites.router)
    app.include_router(aggregates.router)
    app.include_router(exceedances.router)
    app.include_router(airindex.router)
    app.include_router(downloads.router)
    app.include_router(maps.router)
    app.include_router(admin.router)
    app.include_router(annotations_router.router)
    app.include_router(calibration_jobs.router)
    app.include_router(catalogue_router.router)
    app.include_router(sensorthings.router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": _validation_message(exc), "errors": errors}, status_code=422)

    @app.exception_handler(LuftnettError)
    async def _luftnett_error(_r: Request, exc: LuftnettError) -> JSONResponse:
        status = (
            503 if isinstance(exc, StorageError) else 404 if isinstance(exc, ConfigError) else 400
        )
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(pg_errors.DataError)
    async def _data_error(_r: Request, exc: pg_errors.DataError) -> JSONResponse:
        log.warning("database refused a value", extra={"sqlstate": exc.sqlstate})
        return JSONResponse(
            {
                "detail": "a parameter value is out of the range the database accepts; "
                "check times and numbers"
            },
            status_code=422,
        )

    @app.get(
        "/api/v1/health",
        tags=["meta"],
        summary="Liveness and database reachability",
        description="`status: ok` with the number of stored readings (an estimate on large "
        "tables).",
        dependencies=[ReadAccess],
    )
    async def health(conn: Conn) -> dict[str, Any]:
        cur = await conn.execute(
            "SELECT CASE WHEN c.reltuples > 1000000 THEN c.reltuples::bigint "
            "ELSE (SELECT count(*) FROM readings) END AS n FROM pg_class c "
            "WHERE c.oid = 'readings'::regclass"
        )
        row = await cur.fetchone()
        return {"status": "ok", "version": __version__, "readings": row["n"] if row else 0}

    static = resources.files("luftnett.api.static")
    index = static.joinpath("index.html").read_text("utf-8")
    assets = {name: static.joinpath(name).read_bytes() for name in _STATIC}

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def home() -> str:
        return index

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in assets:
            return JSONResponse({"detail": f"no static file {name!r}"}, status_code=404)
        return Response(assets[name], media_type=_STATIC[name])

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – ReDoc",
            redoc_js_url="/docs-static/redoc.standalone.js",
            redoc_favicon_url="data:,",
            with_google_fonts=False,
        )

    @app.get("/docs-static/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in _DOCS_FILES:
            return JSONResponse({"detail": f"no docs file {name!r}"}, status_code=404)
        return Response(
            _docs_file(name),
            media_type=_DOCS_FILES[name],
            headers={"Cache-Control": "max-age=86400"},
        )

    return app
