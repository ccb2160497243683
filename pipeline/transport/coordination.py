"""Whether a consumer's group membership is still alive.

aiokafka runs a consumer's membership of its group (join, sync, heartbeats, rebalances) in one
background task of its group coordinator. An unexpected exception there (an assignor raising
on the assignment it was handed, say) ends that task for good: the consumer leaves no group,
gets no partitions again, and reports the error only from ``getmany()`` / ``getone()``.
Faust's fetcher reads records below those calls, so a Faust worker never hears of it and
stays up consuming nothing. :func:`coordinator_failure` reads the task's outcome directly.

The failure met so far (#37) is Faust's own check in :class:`PartitionAssignor`: the group
leader computes every member's changelog partitions from the leader's tables, so a member
whose tables the leader lacks gets other partitions than it computes itself. That happens
when workers with different stages share one Faust app id; the subclass here names that
cause in the log before the error ends the coordination.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.assignor import PartitionAssignor as FaustPartitionAssignor

log = logging.getLogger(__name__)


def coordinator_failure(consumer: Any) -> BaseException | None:
    """The exception that ended ``consumer``'s group coordination, or ``None``.

    ``None`` too for a consumer not started yet (``None``), one being closed (the task ends
    without an error or is cancelled), and one with manually assigned partitions (no group,
    no such task). ``consumer`` is an ``aiokafka.AIOKafkaConsumer``.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    task = getattr(coordinator, "_coordination_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


def faust_group_consumer(app: Any) -> Any:
    """The aiokafka consumer behind a Faust app's agents (``None`` until it starts)."""
    thread = getattr(app.consumer, "_thread", None)
    return getattr(thread, "_consumer", None)


class PartitionAssignor(FaustPartitionAssignor):
    """Faust's assignor, saying what a failed check of an assignment most likely means."""

    def on_assignment(self, assignment: Any) -> None:
        """Take the leader's assignment (Faust's code), logging the likely cause if refused."""
        try:
            super().on_assignment(assignment)
        except AssertionError as error:
            log.error("the group leader's assignment does not match this worker's tables (%s): "
                      "every member of Faust group %r must run the same stages and tables; "
                      "give each kind of worker its own PIPELINE_APP_ID", error,
                      self.app.conf.id)
            raise
