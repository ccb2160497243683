"""Faust's table recovery, with the stream partitions resumed only after the seek.

After a rebalance Faust pauses every assigned partition, reads the tables' changelogs, and
then hands the stream partitions back to the agents in :meth:`Recovery.on_recovery_completed`
(or ``_resume_streams`` when an app has no tables). faust-streaming 0.15.3 does that in this
order:

1. resume the stream partitions: the fetcher starts reading them at once, from the
   committed offsets, and the agents' queues fill;
2. await ``perform_seek()``: a round trip for the committed offsets, during which those
   records keep arriving and the consumer's *read offset* moves past them;
3. ``flow_control.resume()``, which clears every agent queue.

The records queued between 1 and 3 are thrown away, and when the fetcher reads them again
after the seek they sit below the read offset and Faust drops them as already seen. They
are never processed, never acked, and the commit of their partition stops at the first of
them for good (Faust commits only a contiguous run of acked offsets). The scale-out test
(``tests/integration/test_scaling.py``) hit this in 3 of 13 runs; in one, the surviving
worker skipped 6 routed micro-batches (178 mentions), its log said "DROPPED MESSAGE ROFF
90" to "95", and the committed offset stayed at 90 while later batches went on
(faust-streaming issue #596 reports the same race).

:class:`SeekFirstRecovery` keeps the stream partitions paused through the seek, clears the
queues, and only then resumes the partitions, with no ``await`` between the last two steps,
so nothing can be queued and thrown away. :class:`TableManager` makes the app use it; it is
passed to ``faust.App(TableManager=...)``. The rest is Faust's own code.
"""

from __future__ import annotations

import asyncio
from typing import cast

from faust.app.base import App as FaustApp
from faust.tables import TableManager as FaustTableManager
from faust.tables.recovery import Recovery


class SeekFirstRecovery(Recovery):
    """Faust's recovery service, resuming stream partitions after seeking them."""

    async def _hand_streams_back(self, generation_id: int, *, standbys_ready: bool) -> None:
        app, consumer = self.app, self.app.consumer
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery of generation %s overtaken by generation %s",
                             generation_id, app.consumer_generation_id)
            return
        assignment = consumer.assignment()
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(
                consumer.perform_seek(), timeout=app.conf.broker_request_timeout,
            )
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        # from here to the resume no await: the queues are emptied of anything read before
        # the seek, and the partitions resume from the committed offsets, as one step
        app.flow_control.resume()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        consumer.resume_flow()
        self.log.info("Stream partitions resumed from their committed offsets")
        # AppT does not declare the fetcher; Faust's own recovery casts the same way
        await cast(FaustApp, app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if standbys_ready:
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """The tables are recovered: hand the stream partitions to the agents."""
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        table_callbacks = [
            asyncio.ensure_future(table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table],
            ))
            for table in self.tables.values()
        ]
        if table_callbacks:
            await asyncio.wait(table_callbacks)
        await self._hand_streams_back(
            generation_id, standbys_ready=not self.app.assignor.assigned_standbys(),
        )

    async def _resume_streams(self, generation_id: int = 0) -> None:
        # Faust's path for an app without tables (the sentiment worker): the same fix
        await self.app.on_rebalance_complete.send()
        await self._hand_streams_back(generation_id, standbys_ready=True)


class TableManager(FaustTableManager):
    """Faust's table manager with :class:`SeekFirstRecovery` as its recovery service."""

    @property
    def recovery(self) -> Recovery:
        """The recovery service (created on first use, as Faust does)."""
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(
                self.app, self, beacon=self.beacon, loop=self.loop,
            )
        return self._recovery
