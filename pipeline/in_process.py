"""The worker's stages in one process: topics are lists, the broker is a dict.

:class:`InProcessPipeline` holds the objects the stage agents hold (the ingest core and its
router, the dedup partitions' journals, the copy memory, the sentiment engine and the reply
classifier, the crisis partitions) and makes the calls the agents make on them, in the same
order, over the same record forms: raw bytes in, micro-batch records of ``mentions.routed``
and ``mentions.unique`` by partition, scored mentions by brand partition, alerts. What the
agents would dead-letter is kept in :attr:`InProcessPipeline.dead_letters`; a stage that
answers with a :class:`~pipeline.stages.stage_result.StageResult` (crisis) has its records
and metric changes kept too (``sent``, ``metric_deltas``). It is the test
harness of the stages (as bytewax's ``TestingSource`` / ``TestingSink``) and what
``mentions process`` runs (:mod:`pipeline.offline`).

What it leaves out is the broker's part: no consumer groups, no acks or commits, metrics
are not counted, and the sentiment model is called directly instead of through the async
:class:`~pipeline.stages.sentiment.batcher.SentimentBatcher` (the same engine calls, without
the merging across records)::

    pipeline = InProcessPipeline(settings)
    routed = pipeline.ingest([b'{"id": "1", ...}'])     # partition -> micro-batch records
    unique = pipeline.dedup(routed)                       # partition -> micro-batch records
    scored = pipeline.sentiment(unique)                   # partition -> scored mentions
    alerts = pipeline.crisis(scored)                      # alert events, in order
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pipeline.agents.context import decode_batches
from pipeline.agents.dedup import JournalledPartitions, unique_records
from pipeline.config import Settings
from pipeline.records import SCORED, RoutedMention, ScoredMention, encode_mention
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.record import Alert
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.crisis_partitions import CrisisPartitions, crisis_config, crisis_result
from pipeline.stages.dedup_encoded import mark_routed
from pipeline.stages.ingest import Ingestor, build_ingestor
from pipeline.stages.routing import Router, scored_partitions
from pipeline.stages.sentiment.engine import SentimentEngine, build_engine
from pipeline.stages.sentiment.scoring import MentionScoring
from pipeline.stages.stage_result import MetricDelta, OutRecord, StageResult

log = logging.getLogger(__name__)

# partition -> the records sent to it, in order (a topic of micro-batch records)
Records = dict[int, list[bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a stage would send to the dead-letter topic, and why."""

    stage: str
    reason: str
    detail: str
    value: bytes


@dataclass(slots=True)
class InProcessPipeline:
    """The stage objects of one worker, called as the agents call them (module docstring).

    ``engine`` replaces the model ``settings`` names (tests pass a stand-in); without the
    ``sentiment`` stage in ``settings.stages`` no model is loaded and mentions go on unscored,
    still marked for replies, as ``mentions process`` always did.
    """

    settings: Settings
    ingestor: Ingestor
    router: Router
    dedup_partitions: JournalledPartitions
    engine: SentimentEngine | None
    scoring: MentionScoring
    crisis_partitions: CrisisPartitions
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # the next offset of each scored partition: the crisis stage skips a redelivered record
    scored_offsets: dict[int, int] = field(default_factory=dict)
    # what the stages that answer with a StageResult sent and counted
    sent: list[OutRecord] = field(default_factory=list)
    metric_deltas: list[MetricDelta] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, engine: SentimentEngine | None = None,
              ingestor: Ingestor | None = None) -> InProcessPipeline:
        """Every stage's objects for ``settings``, their state tables in dicts."""
        rules = load_brand_rules(settings.brands_file)
        if engine is None and "sentiment" in settings.stages:
            engine = build_engine(settings)
        return cls(
            settings=settings,
            ingestor=build_ingestor(settings) if ingestor is None else ingestor,
            router=Router(settings),
            dedup_partitions=JournalledPartitions(
                {}, timedelta(hours=settings.dedup_window_hours)),
            engine=engine,
            scoring=MentionScoring.for_brands(settings.brands_file),
            crisis_partitions=CrisisPartitions(
                crisis_config(settings, rules), partitions=settings.partitions,
                brand_names={rule.id: rule.name for rule in rules}, live={}, model={}),
        )

    def ingest(self, raws: Sequence[bytes], *, ingested_at: float | None = None) -> Records:
        """Raw records -> ``mentions.routed`` micro-batch records, as the ingest service does."""
        outcome = self.ingestor.process_encoded(raws, ingested_at=ingested_at)
        for reject in outcome.rejects:
            self.dead_letters.append(DeadLetter("ingest", reject.reason, reject.detail,
                                                reject.raw))
        return self.router.records(outcome.forwarded(self.settings.forward_unmatched))

    def dedup(self, routed: Mapping[int, Sequence[bytes]]) -> Records:
        """``mentions.routed`` records -> ``mentions.unique`` records, as the dedup agent does."""
        unique: Records = {}
        for partition, records in routed.items():
            for raw in records:
                for target, values in self._dedup_record(partition, raw).items():
                    unique.setdefault(target, []).extend(values)
        return unique

    def _dedup_record(self, partition: int, raw: bytes) -> Records:
        journal = self.dedup_partitions.journal(partition)
        outcome = mark_routed(journal.deduplicator, raw)
        self._refused("dedup", outcome.unreadable)
        if outcome.marked is None:
            self.dead_letters.append(DeadLetter("dedup", "bad_value", str(outcome.broken), raw))
            return {}
        self.dedup_partitions.save(journal, outcome.marked.newest)
        return unique_records(outcome.marked, self.settings.partitions)

    def sentiment(self, unique: Mapping[int, Sequence[bytes]]) -> dict[int, list[ScoredMention]]:
        """``mentions.unique`` records -> scored mentions by ``mentions.scored`` partition.

        Each record as the sentiment agent handles one: copies inherit, the model scores the
        rest (a batch it fails on goes on unscored, with ``sentiment_error``), then replies.
        """
        scored: dict[int, list[ScoredMention]] = {}
        for records in unique.values():
            for raw in records:
                mentions = self._decode("sentiment", [raw])
                self.score(mentions)
                for mention in mentions:
                    for target in scored_partitions(mention, self.settings.partitions):
                        scored.setdefault(target, []).append(mention)
        return scored

    def score(self, mentions: list[ScoredMention]) -> None:
        """Sentiment and ``needs_reply`` onto one record's mentions, in place."""
        if self.engine is None or not mentions:
            self.scoring.settle(mentions)
            return
        scoring_round = self.scoring.begin(mentions)
        try:
            results = (self.engine.score_packed(self.engine.encode_carried(
                scoring_round.texts, scoring_round.carried)) if scoring_round.texts else [])
        except Exception as error:  # the agent's rule: never lose the batch
            log.warning("sentiment: %d mentions go on unscored: %s", len(mentions), error)
            self.scoring.fail(scoring_round, error)
        else:
            self.scoring.finish(scoring_round, results)

    def crisis(self, scored: Mapping[int, Sequence[ScoredMention]]) -> list[Alert]:
        """Scored mentions by partition -> alert events, each partition's as one record."""
        alerts: list[Alert] = []
        for partition, mentions in scored.items():
            for record in SCORED.encode_batches(mentions):
                alerts += self.crisis_record(partition, record)
        return alerts

    def crisis_record(self, partition: int, record: bytes,
                      offset: int | None = None) -> list[Alert]:
        """One ``mentions.scored`` record at ``offset`` (default: the partition's next)."""
        if offset is None:
            offset = self.scored_offsets.get(partition, 0)
        self.scored_offsets[partition] = max(self.scored_offsets.get(partition, 0), offset + 1)
        result = crisis_result(self.crisis_partitions, partition, offset,
                               self._decode("crisis", [record]))
        return self._settle("crisis", result)

    def run(self, raws: Sequence[bytes]) -> tuple[dict[int, list[ScoredMention]], list[Alert]]:
        """One batch of raw records through every stage: scored mentions and alerts."""
        scored = self.sentiment(self.dedup(self.ingest(raws)))
        return scored, self.crisis(scored)

    def _settle(self, stage: str, result: StageResult) -> list[Alert]:
        """What the agent does with a stage's result, into lists: sent, saved, counted."""
        self._refused(stage, result.refused)
        self.sent += result.records
        result.save()
        self.metric_deltas += result.metrics
        return list(result.alerts)

    def _decode(self, stage: str, records: list[bytes]) -> list[ScoredMention]:
        mentions, refused, broken = decode_batches(records, SCORED)
        for value, reason in broken:
            self.dead_letters.append(DeadLetter(stage, "bad_value", reason, value))
        self._refused(stage, refused)
        return mentions

    def _refused(
        self, stage: str,
        refused: Iterable[tuple[RoutedMention | Mapping[str, Any], InvalidMention]],
    ) -> None:
        for mention, error in refused:
            self.dead_letters.append(DeadLetter(stage, error.reason, error.detail,
                                                encode_mention(mention)))
