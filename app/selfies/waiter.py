"""Waiting for news of guests' selfies without a query per waiting client.

Long-polls (``GET /api/selfie?wait=``) and event streams (``GET /api/selfie/events``)
register here the guest they watch and what they already know; one task per event loop
reads the snapshots of every watched guest in one pair of queries every
``SELFIE_WATCH_INTERVAL`` seconds and wakes the waiters whose guest changed. Waiting holds
no database connection and does not count as a request in flight.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool

from app.core.config import get_settings
from app.core.database import session_scope
from app.core.limits import idle
from app.selfies.service import Snapshot, snapshots

Until = Callable[[Snapshot], bool]
log = logging.getLogger("app.selfies")


def _read(user_ids: list[int]) -> dict[int, Snapshot]:
    with session_scope() as session:
        return snapshots(session=session, user_ids=user_ids)


class SelfieWatcher:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._waiting: dict[int, list[tuple[Until, asyncio.Future[Snapshot]]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, user_id: int, until: Until, timeout: float) -> Snapshot | None:
        """The guest's snapshot once ``until(snapshot)`` holds, or None after ``timeout``."""
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        entry = (until, future)
        self._waiting.setdefault(user_id, []).append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            async with idle():
                return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            entries = self._waiting.get(user_id, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._waiting.pop(user_id, None)

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.interval)
            user_ids = list(self._waiting)
            if not user_ids:
                break
            try:
                found = await run_in_threadpool(_read, user_ids)
            except Exception:  # the database is away for a moment: waiters time out or retry
                log.warning("cannot read the state of watched selfies", exc_info=True)
                continue
            for user_id, snap in found.items():
                for until, future in list(self._waiting.get(user_id, [])):
                    if not future.done() and until(snap):
                        future.set_result(snap)


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SelfieWatcher] = weakref.WeakKeyDictionary()


def selfie_watcher() -> SelfieWatcher:
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = SelfieWatcher(get_settings().selfie_watch_interval)
    return watcher
