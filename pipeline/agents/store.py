"""Store sink: scored micro-batches and crisis alerts -> rows -> inserts into the store -> commit.

ClickHouse wants few large inserts, not one per record: the sink reads ``mentions.scored`` and
the alerts topic with one batched consumer
(:class:`~pipeline.agents.batch_consumer.BatchedConsumerService`, up to ``store_batch_size``
records or ``store_batch_wait_s``), encodes each topic's records as rows of its table (mentions:
:class:`~pipeline.store.rows.RowEncoder`, which asks the store for the authors of originals it
has not seen; alerts: :func:`~pipeline.store.incident_rows.alert_rows_from_values`), inserts
each in one statement, and commits the offsets only once the inserts returned. One consumer
over both topics, as ClickHouse's own Kafka sink maps topics to tables: one store handle, one
outage wait, one desk, one group; the alerts are few and ride along with the mentions' batches.

- At-least-once in, exactly-once in effect: a replayed batch inserts its rows again and the
  tables (keyed by mention, and by alert idempotency key) keep one (``mentions.scored`` also
  carries a mention once per brand partition it names: same id, same row).
- Every ``store_settle_s`` it settles the leaders' echoes table
  (:func:`~pipeline.store.echoes.settle`: the hours closed since, and those late mentions
  changed), between two inserts, so the leaders query reads few rows per author.
- A store that is down makes the sink wait and retry with backoff, one log line per outage;
  nothing is committed meanwhile, so lag grows and nothing is dropped.
- A mention or alert that cannot be a row, or that the store refuses, goes to the dead-letter
  topic with the reason; a refused insert is split in halves until the refused rows are found,
  so one bad record never holds the rest back.

With an embedded store this worker is the store's only process; ``PIPELINE_DESK_IN_WORKER``
then serves the desk from it too (:class:`~pipeline.desk.server.DeskThread`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.agents.batch_consumer import BatchedConsumerService
from pipeline.agents.context import WorkerContext
from pipeline.records import SCORED
from pipeline.stages.brands import load_brand_rules
from pipeline.store.client import ListeningStore, StoreRejected, StoreUnavailable
from pipeline.store.incident_rows import alert_rows_from_values
from pipeline.store.rows import RowBatch, RowEncoder, kinds_by_brand, rows_payload
from pipeline.store.tables import INCIDENTS, TABLE

STAGE = "store"
log = logging.getLogger(__name__)
_T = TypeVar("_T")


class StoreSink(BatchedConsumerService):
    """Batched consumer of the scored and alerts topics writing the listening store."""

    def __init__(self, context: WorkerContext, encoder: RowEncoder, **kwargs: Any) -> None:
        settings = context.settings
        super().__init__(
            context, stage=STAGE, topics=(settings.topic("scored"), settings.alerts_topic),
            batch_size=settings.store_batch_size, batch_wait_s=settings.store_batch_wait_s,
            **kwargs,
        )
        self.alerts_topic = settings.alerts_topic
        self.encoder = encoder
        self.store: ListeningStore | None = None
        self.reachable = True
        self.desk: Any = None
        self.settled_at = -math.inf

    async def on_start(self) -> None:
        """Open the store (or leave that to the first batch if it is down), join the group."""
        try:
            await self._open_store()
        except StoreUnavailable as error:
            self._store_down(error)
        await super().on_start()

    async def on_stop(self) -> None:
        """Leave the group, stop the desk, release the store."""
        await super().on_stop()
        if self.desk is not None:
            self.desk.stop()
        if self.store is not None:
            self.store.close()

    async def _open_store(self) -> ListeningStore:
        """The store, opened on first use; with ``desk_in_worker`` the desk starts with it."""
        if self.store is None:
            settings = self.context.settings
            self.store = await asyncio.to_thread(ListeningStore.open, settings)
            self.encoder.find_originals = self.store.original_authors
            log.warning("store sink writing %s", self.store.location)
            if settings.desk_in_worker:
                from pipeline.desk.server import DeskThread

                self.desk = DeskThread(settings, self.store)
                log.warning("desk on %s", await asyncio.to_thread(self.desk.start))
        return self.store

    async def handle(self, topic: str, values: list[bytes]) -> None:
        """Insert a batch of one topic's records; dead-letter what cannot be stored."""
        if topic == self.alerts_topic:
            batch = alert_rows_from_values(values)
            await self._store(topic, batch, INCIDENTS)
            return
        mentions = await self.context.decode_in(STAGE, values, topic, SCORED)
        batch = await self._with_store(lambda _: self.encoder.encode(mentions))
        await self._store(topic, batch, TABLE)
        self.context.observe_out(STAGE, mentions)
        await self._settle()

    async def _settle(self) -> None:
        """Settle the leaders' echoes table if ``store_settle_s`` passed since the last time."""
        if time.monotonic() - self.settled_at < self.context.settings.store_settle_s:
            return
        self.settled_at = time.monotonic()
        try:
            settled = await self._with_store(lambda store: store.settle_echoes())
        except StoreRejected as error:
            # the leaders then read more from the mentions, nothing is lost: try next time
            log.warning("store: settling the leaders' echoes failed: %s", error)
            return
        if settled.built_hours:
            log.info("store: leaders' echoes built for %d hours, frontier %s",
                     settled.built_hours, settled.frontier)

    async def _store(self, topic: str, batch: RowBatch, table: str) -> None:
        """Insert a batch's rows into ``table``; dead-letter its rejects and the refused rows."""
        refused = await self._insert(batch.rows, table)
        letters = [*((reject.raw, reject.reason, reject.detail) for reject in batch.rejects),
                   *((row, "store_rejected", error) for row, error in refused)]
        acks = [await self.context.dead_letter(raw, reason, detail, stage=STAGE,
                                               source_topic=topic)
                for raw, reason, detail in letters]
        # commit only after every dead letter is on the broker, as ingest does
        await asyncio.gather(*acks)

    async def _insert(self, rows: list[bytes], table: str) -> list[tuple[bytes, str]]:
        """Insert ``rows``, waiting out outages; the rows the store refused, with its error."""
        if not rows:
            return []
        started = time.perf_counter()
        try:
            await self._with_store(lambda store: store.insert(rows_payload(rows), table))
        except StoreRejected as error:
            self.context.metrics.store_errors.labels(reason="rejected").inc()
            if len(rows) == 1:
                log.warning("store refused a row of %s: %s", table, error)
                return [(rows[0], str(error))]
            middle = len(rows) // 2
            return (await self._insert(rows[:middle], table)
                    + await self._insert(rows[middle:], table))
        self.context.metrics.store_insert_seconds.observe(time.perf_counter() - started)
        self.context.metrics.store_rows.labels(table=table).inc(len(rows))
        return []

    async def _with_store(self, work: Callable[[ListeningStore], _T]) -> _T:
        """Run ``work`` on the store in a thread, waiting out outages with backoff."""
        delay = 0.5
        while True:
            try:
                store = await self._open_store()
                done = await asyncio.to_thread(work, store)
            except StoreUnavailable as error:
                self.context.metrics.store_errors.labels(reason="unavailable").inc()
                self._store_down(error)
                if self.should_stop:
                    # shutting down: leave the batch uncommitted, the next owner replays it
                    raise asyncio.CancelledError from error
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.context.settings.store_retry_max_s)
                continue
            if not self.reachable:
                log.warning("store: reachable again")
            self.reachable = True
            return done

    def _store_down(self, error: StoreUnavailable) -> None:
        """Say once per outage that the store is down and what the sink does about it."""
        if self.reachable:
            log.error("store: %s; retrying with backoff until it is back, offsets are not "
                      "committed meanwhile", error)
        self.reachable = False


def register(context: WorkerContext) -> None:
    """Attach the sink to the app (it opens the store when it starts)."""
    settings = context.settings
    encoder = RowEncoder(kinds_by_brand(load_brand_rules(settings.brands_file)),
                         copy_window_s=settings.dedup_window_hours * 3600)
    sink = StoreSink(context, encoder, loop=None)
    context.app.service(sink)
    context.readiness.checks["store_reachable"] = lambda: sink.reachable
    context.readiness.checks["store_partitions_assigned"] = lambda: bool(sink.assignment)
