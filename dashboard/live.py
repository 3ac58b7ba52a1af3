"""Change notifications for the page: one database poller per process, many SSE listeners.

Polling a tiny change marker once a second is simpler and sturdier than
LISTEN/NOTIFY here: it needs no trigger in the collector's write path, works
through connection poolers, and a lost connection only delays one tick. Each
browser gets ``event: change`` with which parts changed (events, metrics,
gateways) and refetches those; a comment line every ~15 s keeps proxies from
closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg

from dashboard.queries import HAS_ROLLUP_META_SQL, marker_sql

logger = logging.getLogger(__name__)

KINDS = ("events", "metrics", "gateways")


class LiveHub:
    """Polls :func:`change_marker` while anyone listens and wakes every listener on a change."""

    def __init__(
        self,
        dsn: Callable[[], str],
        interval_s: float = 1.0,
        keepalive_s: float = 15.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = dsn
        # Called before listeners are woken (the API empties its response cache here, so
        # the refetch a change triggers is not answered from before the change).
        self._on_change = on_change
        self.interval_s = interval_s
        self.keepalive_s = keepalive_s
        self._listeners = 0
        self._marker: tuple[str, ...] | None = None
        self._version = 0
        self._changed: set[str] = set()
        self._cond: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._primed: asyncio.Event | None = None

    def _condition(self) -> asyncio.Condition:
        # Created on first use so it binds to the server's running loop.
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _poll(self) -> None:
        conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(self._dsn(), autocommit=True)
                    marker = await self._read(conn)
                except psycopg.Error as exc:
                    logger.warning("live: cannot read the change marker: %s", exc)
                    if conn is not None:
                        await conn.close()
                    conn = None
                else:
                    await self._publish(marker)
                await asyncio.sleep(self.interval_s)
        finally:
            if conn is not None:
                await conn.close()

    @staticmethod
    async def _read(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> tuple[str, ...]:
        has_meta = await (await conn.execute(HAS_ROLLUP_META_SQL)).fetchone()
        row = await (await conn.execute(marker_sql(bool(has_meta and has_meta[0])))).fetchone()
        assert row is not None
        return tuple(str(v or "") for v in row)

    async def _publish(self, marker: tuple[str, ...]) -> None:
        if marker == self._marker:
            return
        previous, self._marker = self._marker, marker
        if previous is None:
            self._primed_event().set()
            return
        changed = {kind for kind, old, new in zip(KINDS, previous, marker, strict=True) if old != new}
        if self._on_change is not None:
            self._on_change()
        cond = self._condition()
        async with cond:
            self._version += 1
            self._changed = changed
            cond.notify_all()

    def _primed_event(self) -> asyncio.Event:
        if self._primed is None:
            self._primed = asyncio.Event()
        return self._primed

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="dashboard-live-poll")

    async def _stop_if_idle(self) -> None:
        if self._listeners == 0 and self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._marker = None
            self._primed = None

    async def _wait_past(self, version: int) -> None:
        cond = self._condition()
        await cond.wait_for(lambda: self._version != version)

    async def stream(self) -> AsyncIterator[str]:
        """Server-sent events for one listener, until the client goes away."""
        self._listeners += 1
        self._start()
        cond = self._condition()
        seen = self._version
        try:
            # 'hello' means: anything stored from now on will be announced, so
            # the listener's first fetch after it misses nothing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._primed_event().wait(), timeout=self.keepalive_s)
            yield "retry: 2000\nevent: hello\ndata: {}\n\n"
            while True:
                async with cond:
                    try:
                        await asyncio.wait_for(self._wait_past(seen), timeout=self.keepalive_s)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    seen = self._version
                    changed = sorted(self._changed)
                yield f"event: change\ndata: {json.dumps({'changed': changed})}\n\n"
        finally:
            self._listeners -= 1
            await self._stop_if_idle()
