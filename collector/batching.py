"""Batching and decoding: messages from the intake queue become plans, in arrival order.

The planner thread drains up to ``collector_batch_max_messages`` messages (or
what arrives within ``collector_batch_max_wait_ms``) and has them decoded, in
decoding processes or itself, while the writer waits on the database: the two
overlap (psycopg releases the GIL).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime

from collector.metrics import CollectorMetrics
from collector.pipeline import Limits, Message, Plan, plan_batch, plan_for_copy, prepare_copy
from collector.settings import CollectorSettings
from takt.store.events import SeenSeqs, WriteMethod

logger = logging.getLogger(__name__)

PendingPlan = tuple[list[Message], Plan | Future[Plan]]


class Planner:
    """Turns the intake queue into :attr:`plans`: (messages, plan or a plan being decoded)."""

    def __init__(
        self,
        settings: CollectorSettings,
        metrics: CollectorMetrics,
        inbox: queue.Queue[Message],
        stop: threading.Event,
        on_fatal: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._inbox = inbox
        self._stop = stop
        self._on_fatal = on_fatal
        self._limits = Limits(settings.plausibility, settings.privacy_levels())
        # Batches being planned or planned, in arrival order; small, to keep the unacked window short.
        self.plans: queue.Queue[PendingPlan] = queue.Queue(maxsize=2 + settings.collector_decode_processes)
        # Decoding is most of the CPU and holds the GIL; in processes of its
        # own it no longer slows the MQTT and database threads. COPY only:
        # events come back as COPY text.
        self._pool: ProcessPoolExecutor | None = None
        if settings.collector_decode_processes and settings.collector_write_method is WriteMethod.COPY:
            self._pool = ProcessPoolExecutor(
                settings.collector_decode_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_decoder,
                initargs=(os.getpid(),),
            )
        # Decoding in this process (no pool): what it has seen, for copy_batch.
        self._seen = SeenSeqs()
        self.thread = threading.Thread(target=self._run, name="collector-planner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        if self._pool is not None:
            # Waits for the decoders to exit (a batch at most), so none is left writing to
            # a closed pipe at interpreter exit.
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self.drain()
                if not batch:
                    continue
                pending = self._plan(batch)
                while not self._stop.is_set():
                    try:
                        self.plans.put((batch, pending), timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except Exception:
            logger.exception("collector planner failed")
            self._on_fatal("collector planner failed; see the log")

    def _plan(self, batch: list[Message]) -> Plan | Future[Plan]:
        if self._pool is not None:
            raw = [(m.topic, m.payload) for m in batch]
            return self._pool.submit(plan_for_copy, raw, datetime.now(UTC), self._limits)
        started = time.perf_counter()
        plan = plan_batch(batch, datetime.now(UTC), self._limits)
        if self.settings.collector_write_method is WriteMethod.COPY:
            prepare_copy(plan, self._seen)
        self.metrics.plan_seconds.observe(time.perf_counter() - started)
        return plan

    def drain(self) -> list[Message]:
        """One batch: the first message within 0.2 s, then more until full or the wait is over."""
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.settings.collector_batch_max_messages
        deadline = time.monotonic() + self.settings.collector_batch_max_wait_ms / 1000
        while len(batch) < limit:
            try:
                batch.append(self._inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        self.metrics.queue_depth.set(self._inbox.qsize())
        return batch


def _init_decoder(parent_pid: int) -> None:
    """Set up a decoding process: tied to its parent, lazy garbage collection.

    Decoding allocates tens of thousands of short-lived objects a batch; at
    the default thresholds the cyclic collector runs hundreds of times a batch
    and costs about a quarter of the decoding time. The decoded objects hold
    no reference cycles, so collecting rarely loses nothing.
    """
    gc.set_threshold(50_000, 20, 100)
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int) -> None:
    """Decoding processes must not outlive a collector killed with SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
