"""The FastAPI application: routers, error handlers, request bounds, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles

from app.accounts.sessions import HttpsCookiesMiddleware
from app.api import router as api_router
from app.core.config import get_settings
from app.core.database import dispose_engine
from app.core.errors import install_error_handlers
from app.core.limits import BodyBounds, RequestBoundsMiddleware
from app.core.openapi import install_openapi
from app.ops.middleware import ObservabilityMiddleware
from app.ops.service import warm_up
from app.ops.stats import take_reading
from app.web import STATIC_DIR
from app.web.errors import page_for_error
from app.web.guest import router as web_guest_router
from app.web.links import router as web_links_router
from app.web.organizer import router as web_organizer_router

_MULTIPART_OVERHEAD = 64 * 1024


def body_bounds_for(path: str) -> BodyBounds:
    """Each path's body: a selfie or the organizer's photos, each with their own size and total
    time (a selfie needs far less than a batch of photos), or a small JSON body."""
    settings = get_settings()
    if path == "/api/upload-selfie":
        return BodyBounds(
            settings.selfie_max_bytes + _MULTIPART_OVERHEAD,
            settings.upload_min_rate,
            settings.selfie_upload_max_seconds,
        )
    if path.startswith("/api/events/") and path.endswith("/photos"):
        return BodyBounds(
            settings.photo_upload_max_bytes, settings.upload_min_rate, settings.photo_upload_max_seconds
        )
    return BodyBounds(settings.max_json_body_bytes, settings.request_min_rate)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Runs in each worker after the fork.
    take_reading()  # this worker's first "last minute" window starts now
    # A thread for every request the worker admits (MAX_IN_FLIGHT): a request holding a pooled
    # connection must never wait for a thread to send its answer while the threads are all
    # taken by requests waiting for that connection (which only the pool timeout would end).
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, get_settings().max_in_flight + 8)
    try:
        await run_in_threadpool(warm_up)
    except Exception:  # a database that is down must not stop the worker from starting
        logging.getLogger("app").warning("warm-up failed; the first requests will be slower", exc_info=True)
    yield
    dispose_engine()


def create_app() -> FastAPI:
    settings = get_settings()
    settings.signing_key()  # fail fast (and create the dev key once) at start-up
    app = FastAPI(
        title="Event photos",
        summary="Guests find the event photos they appear in from one selfie.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,  # served from local files by install_openapi, not from a CDN
        redoc_url=None,
    )
    install_error_handlers(app, page=page_for_error)
    install_openapi(app)
    app.add_middleware(
        RequestBoundsMiddleware,
        bounds_for=body_bounds_for,
        read_timeout=settings.request_read_timeout,
    )
    app.add_middleware(HttpsCookiesMiddleware)
    app.add_middleware(ObservabilityMiddleware, max_in_flight=settings.max_in_flight)
    app.include_router(api_router)
    app.include_router(web_guest_router)
    app.include_router(web_links_router)
    app.include_router(web_organizer_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
