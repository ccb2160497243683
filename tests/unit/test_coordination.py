"""The assignor check that stalled a restarted dedup worker (#37), replayed in-process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from pipeline.agents.app import build_app
from pipeline.config import load_settings
from pipeline.transport.coordination import PartitionAssignor


def dedup_app() -> Any:
    settings = load_settings(broker="127.0.0.1:1", stages="dedup", partitions=2, app_id="g")

    async def build() -> Any:
        return build_app(settings)[0]

    return asyncio.run(build())


def leader_assignment(app: Any, changelog_partitions: list[int]) -> Any:
    """What the group leader sends this dedup worker: routed partition 0 active, 1 standby,
    and ``changelog_partitions`` of the journal's changelog in the Kafka assignment."""
    [changelog] = app.tables.changelog_topics
    routed = "t.routed"
    mine = ClientAssignment(actives={routed: [0], changelog: [0]},
                            standbys={routed: [1], changelog: [1]})
    metadata = ClientMetadata(assignment=mine, url=str(app.conf.canonical_url),
                              changelog_distribution={}, external_topic_distribution={},
                              topic_groups={})
    return ConsumerProtocolMemberAssignment(
        app.assignor.version, [(routed, [0]), (changelog, changelog_partitions)],
        app.assignor._compress(metadata.dumps()),
    )


def test_an_assignment_from_a_leader_with_the_same_tables_is_taken() -> None:
    app = dedup_app()
    assert isinstance(app.assignor, PartitionAssignor)
    # a leader that knows the journal table adds its standby partition to the changelog's
    app.assignor.on_assignment(leader_assignment(app, [0, 1]))
    assert app.assignor.assigned_standbys()


def test_one_from_a_leader_without_the_journal_table_is_refused_with_the_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = dedup_app()
    # a leader without the table leaves the standby out: what the restarted dedup worker got
    with caplog.at_level(logging.ERROR, logger="pipeline.transport.coordination"), \
            pytest.raises(AssertionError, match=r"\[0\]\)[^!]*!= .*\[0, 1\]\)"):
        app.assignor.on_assignment(leader_assignment(app, [0]))
    [line] = [record.getMessage() for record in caplog.records]
    assert "every member of Faust group 'g' must run the same stages" in line
    assert "PIPELINE_APP_ID" in line
