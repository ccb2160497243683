"""Store sink: scored micro-batches and crisis alerts -> rows -> inserts into the store -> commit.

ClickHouse wants few large inserts, not one per record: the sink reads ``mentions.scored`` and
the alerts topic with one batched consumer (:class:`~pipeline.agents.runner.BatchedStage`, up
to ``store_batch_size`` records or ``store_batch_wait_s``), encodes each topic's records as
rows of its table (mentions, decoded by the runner with the ``SCORED`` codec:
:class:`~pipeline.store.rows.RowEncoder`, which asks the store for the authors of originals it
has not seen; alerts: :func:`~pipeline.store.incident_rows.alert_rows_from_values`) and
answers them as one insert per topic (:func:`~pipeline.store.rows.stored_result`). The
runner's write step (:class:`~pipeline.agents.store_writer.StoreWriter`) performs it before
anything is acked, and the offsets commit only once the inserts returned. One consumer over
both topics, as ClickHouse's own Kafka sink maps topics to tables: one store handle, one
outage wait, one desk, one group; the alerts are few and ride along with the mentions' batches.

- At-least-once in, exactly-once in effect: a replayed batch inserts its rows again and the
  tables (keyed by mention, and by alert idempotency key) keep one (``mentions.scored`` also
  carries a mention once per brand partition it names: same id, same row).
- A store that is down makes the sink wait and retry with backoff, one log line per outage;
  nothing is committed meanwhile, so lag grows and nothing is dropped.
- A mention or alert that cannot be a row, or that the store refuses, goes to the dead-letter
  topic with the reason; a refused insert is split in halves until the refused rows are found,
  so one bad record never holds the rest back. Delivery is ``ACKED``: the commit waits for
  the dead letters' acks too.
- Every ``store_settle_s`` the writer settles the leaders' echoes table between two inserts,
  and with ``PIPELINE_DESK_IN_WORKER`` it serves the desk from this worker.
"""

from __future__ import annotations

from pipeline.agents.context import WorkerContext
from pipeline.agents.runner import Batch, BatchedStage, Delivery, Stage
from pipeline.agents.store_writer import StoreWriter
from pipeline.records import SCORED
from pipeline.stages.stage_result import StageResult
from pipeline.store.incident_rows import alert_rows_from_values
from pipeline.store.rows import RowEncoder, stored_result
from pipeline.store.tables import INCIDENTS, TABLE

STAGE = "store"


def register(context: WorkerContext) -> None:
    """Attach the sink to the app (it opens the store when it starts)."""
    settings = context.settings
    writer = StoreWriter(settings, context.metrics, RowEncoder.for_settings(settings))

    async def answer(batch: Batch) -> StageResult:
        if batch.topic == settings.alerts_topic:
            return stored_result(alert_rows_from_values(batch.values), INCIDENTS)
        return stored_result(await writer.encode(batch.mentions or []), TABLE)

    stage = Stage(STAGE, "scored", answer, Delivery.ACKED, codec=SCORED,
                  more_sources={"alerts": None}, write=writer.write,
                  on_start=writer.start, on_stop=writer.close)
    sink = BatchedStage(context, stage, batch_size=settings.store_batch_size,
                        batch_wait_s=settings.store_batch_wait_s, loop=None)
    writer.stopping = lambda: sink.should_stop
    context.app.service(sink)
    context.readiness.checks["store_reachable"] = lambda: writer.reachable
    context.readiness.checks["store_partitions_assigned"] = lambda: bool(sink.assignment)
