"""Waiting for face checks without a query per upload: one poller per event loop.

Every upload waiting for its face check registers here; a single task reads the
outcome of all of them in one query every ``interval`` seconds. However many guests
upload at once, a web worker makes at most ~20 such queries a second.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from app.core.config import get_settings
from app.core.database import session_scope
from app.selfies.models import Selfie, SelfieStatus


@dataclass(frozen=True)
class Outcome:
    status: str | None  # None: the selfie is gone (a newer one replaced it)
    error_code: str | None = None
    error_message: str | None = None


def _outcomes(ids: list[int], waiting: tuple[str, ...]) -> dict[int, Outcome]:
    with session_scope() as session:
        rows = session.execute(
            select(Selfie.id, Selfie.status, Selfie.error_code, Selfie.error_message).where(
                Selfie.id.in_(ids)
            )
        ).all()
    found = {r.id: Outcome(r.status, r.error_code, r.error_message) for r in rows}
    return {
        i: found.get(i, Outcome(None))
        for i in ids
        if found.get(i, Outcome(None)).status != SelfieStatus.pending
    }


class SelfieWaiter:
    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval

        self._waiting: dict[int, asyncio.Future[Outcome]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, selfie_id: int, timeout: float) -> Outcome | None:
        """The selfie's outcome once it leaves ``pending`` (and ``matching`` too with
        SELFIE_RESPOND_AFTER=matches), or None after ``timeout``."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[selfie_id] = future
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(selfie_id, None)

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.interval)
            ids = list(self._waiting)
            if not ids:
                break
            waiting = (SelfieStatus.pending,)
            if get_settings().selfie_respond_after == "matches":
                waiting = (SelfieStatus.pending, SelfieStatus.matching)
            outcomes = await run_in_threadpool(_outcomes, ids, waiting)
            for selfie_id, outcome in outcomes.items():
                future = self._waiting.get(selfie_id)
                if future is not None and not future.done():
                    future.set_result(outcome)


_waiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SelfieWaiter] = weakref.WeakKeyDictionary()


def selfie_waiter() -> SelfieWaiter:
    loop = asyncio.get_running_loop()
    waiter = _waiters.get(loop)
    if waiter is None:
        waiter = _waiters[loop] = SelfieWaiter()
    return waiter
