"""The worker's stages in one process: topics are lists, the broker is a dict.

:class:`InProcessPipeline` holds the objects the stage agents hold (the ingest core and its
router, the dedup partitions' journals, the copy memory, the sentiment engine and the reply
classifier, the crisis partitions) and asks each stage for the same
:class:`~pipeline.stages.stage_result.StageResult` the worker's runner
(:mod:`pipeline.agents.runner`) acts on, over the same record forms: raw bytes in,
micro-batch records of ``mentions.routed`` and ``mentions.unique`` by partition, scored
mentions by brand partition, alerts. Where the runner sends, it keeps: what would be
dead-lettered in :attr:`InProcessPipeline.dead_letters`, every stage's metric changes in
``metric_deltas``, the alert records in ``sent``; the other records are handed to the next
stage. It is the test harness of the stages (as bytewax's ``TestingSource`` /
``TestingSink``) and what ``mentions process`` runs (:mod:`pipeline.offline`).

What it leaves out is the broker's part: no consumer groups, no acks or commits, metrics
are not counted, and the sentiment model is called directly instead of through the async
:class:`~pipeline.stages.sentiment.batcher.SentimentBatcher` (the same engine calls, without
the merging across records)::

    pipeline = InProcessPipeline(settings)
    routed = pipeline.ingest([b'{"id": "1", ...}'])     # partition -> micro-batch records
    unique = pipeline.dedup(routed)                       # partition -> micro-batch records
    scored = pipeline.sentiment(unique)                   # partition -> scored mentions
    alerts = pipeline.crisis(scored)                      # alert events, in order
    pipeline.store(scored)                                # rows per store table, in ``stored``

The store stage's answer is the sink's (:func:`~pipeline.store.rows.stored_result`). With a
store attached (:meth:`InProcessPipeline.attach_store`) the sink's write step writes it there,
the worker's :class:`~pipeline.agents.store_writer.StoreWriter` (outages waited out, the rows
the store refuses dead-lettered as ``store_rejected``); without one the rows are only kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from pipeline.agents.context import decode_batches
from pipeline.agents.store_writer import StoreWriter
from pipeline.config import Settings
from pipeline.metrics import PipelineMetrics
from pipeline.records import SCORED, RoutedMention, ScoredMention, encode_mention
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.record import Alert
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.crisis_partitions import CrisisPartitions, crisis_config, crisis_result
from pipeline.stages.dedup_partitions import JournalledPartitions, dedup_result
from pipeline.stages.ingest import Ingestor, build_ingestor
from pipeline.stages.ingest_result import ingest_result
from pipeline.stages.routing import Router
from pipeline.stages.sentiment.labels import SentimentResult
from pipeline.stages.sentiment.scoring import MentionScoring
from pipeline.stages.sentiment.stage import scored_records, scored_result
from pipeline.stages.stage_result import BadRecord, MetricDelta, OutRecord, StageResult
from pipeline.store.client import ListeningStore
from pipeline.store.incident_rows import alert_rows_from_values
from pipeline.store.rows import RowBatch, RowEncoder, stored_result
from pipeline.store.tables import INCIDENTS, TABLE

if TYPE_CHECKING:  # the engine's module imports torch, which the store-only harness skips
    from pipeline.stages.sentiment.engine import SentimentEngine

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
    # the alert records the crisis stage sent, and what every stage counted
    sent: list[OutRecord] = field(default_factory=list)
    metric_deltas: list[MetricDelta] = field(default_factory=list)
    # the store sink's rows by table, as its write step inserts them (refused rows left out)
    stored: dict[str, list[bytes]] = field(default_factory=dict)
    row_encoder: RowEncoder | None = None
    # the sink's write step, once a store is attached
    store_writer: StoreWriter | None = None

    @classmethod
    def build(cls, settings: Settings, *, engine: SentimentEngine | None = None,
              ingestor: Ingestor | None = None) -> InProcessPipeline:
        """Every stage's objects for ``settings``, their state tables in dicts."""
        rules = load_brand_rules(settings.brands_file)
        if engine is None and "sentiment" in settings.stages:
            from pipeline.stages.sentiment.engine import build_engine

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
        return _by_partition(self._settle("ingest", ingest_result(
            self.ingestor, self.router, list(raws), ingested_at=ingested_at,
            forward_unmatched=self.settings.forward_unmatched)))

    def dedup(self, routed: Mapping[int, Sequence[bytes]]) -> Records:
        """``mentions.routed`` records -> ``mentions.unique`` records, as the dedup agent does."""
        unique: Records = {}
        for partition, records in routed.items():
            for raw in records:
                result = dedup_result(self.dedup_partitions, partition, raw,
                                      self.settings.partitions)
                for target, values in _by_partition(self._settle("dedup", result)).items():
                    unique.setdefault(target, []).extend(values)
        return unique

    def sentiment(self, unique: Mapping[int, Sequence[bytes]]) -> dict[int, list[ScoredMention]]:
        """``mentions.unique`` records -> scored mentions by ``mentions.scored`` partition.

        Each record as the sentiment agent handles one: copies inherit, the model scores the
        rest (a batch it fails on goes on unscored, with ``sentiment_error``), then replies.
        """
        scored: dict[int, list[ScoredMention]] = {}
        for records in unique.values():
            for raw in records:
                mentions = self._decode("sentiment", [raw])
                if not mentions:
                    continue
                sent = self._settle("sentiment", self.score(mentions))
                for partition, values in _by_partition(sent).items():
                    scored.setdefault(partition, []).extend(decode_batches(values, SCORED)[0])
        return scored

    def score(self, mentions: list[ScoredMention]) -> StageResult:
        """Sentiment and ``needs_reply`` onto one record's mentions, in place; their records."""
        partitions = self.settings.partitions
        if self.engine is None:
            self.scoring.settle(mentions)
            return StageResult(records=scored_records(mentions, partitions))
        scoring_round = self.scoring.begin(mentions)
        outcome: Sequence[SentimentResult] | Exception
        try:
            outcome = (self.engine.score_packed(self.engine.encode_carried(
                scoring_round.texts, scoring_round.carried)) if scoring_round.texts else [])
        except Exception as error:  # the agent's rule: never lose the batch
            outcome = error
        return scored_result(self.scoring, scoring_round, outcome, partitions)

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
        self.sent += self._settle("crisis", result)
        return list(result.alerts)

    def attach_store(self, store: ListeningStore) -> None:
        """Write the store sink's answers into ``store`` from now on, as the worker does."""
        self.store_writer = StoreWriter(self.settings, PipelineMetrics(CollectorRegistry()),
                                        self.encoder, store=store)

    @property
    def encoder(self) -> RowEncoder:
        """The sink's row encoder (it asks an attached store for the originals' authors)."""
        if self.row_encoder is None:
            self.row_encoder = RowEncoder.for_settings(self.settings)
        return self.row_encoder

    def store(self, scored: Mapping[int, Sequence[ScoredMention]]) -> None:
        """Scored mentions and the alerts sent so far -> rows by table, as the sink answers.

        Each partition's mentions as one sink batch, then the alert records as one; each
        goes through :meth:`store_rows`.
        """
        batches = [(self.encoder.encode(list(mentions)), TABLE)
                   for mentions in scored.values() if mentions]
        alert_values = [record.value for record in self.sent if record.topic == "alerts"]
        if alert_values:
            batches.append((alert_rows_from_values(alert_values), INCIDENTS))
        for batch, table in batches:
            self.store_rows(batch, table)

    def store_rows(self, batch: RowBatch, table: str) -> list[BadRecord]:
        """One sink batch's rows answered and acted on as the runner does; the rows refused.

        The rows it cannot keep go to the dead letters; with a store attached its write step
        inserts the rest, and the rows the store refuses are dead letters too. What was
        inserted (or, without a store, would be) is kept in :attr:`stored`.
        """
        result = stored_result(batch, table)
        self._settle("store", result)
        refused = ([] if self.store_writer is None
                   else self.store_writer.write_now(result.inserts))
        for bad in refused:
            self.dead_letters.append(DeadLetter("store", bad.reason, bad.detail, bad.raw))
        refused_rows = {bad.raw for bad in refused}
        for insert in result.inserts:
            self.stored.setdefault(insert.table, []).extend(
                row for row in insert.rows if row not in refused_rows)
        return refused

    def run(self, raws: Sequence[bytes]) -> tuple[dict[int, list[ScoredMention]], list[Alert]]:
        """One batch of raw records through every stage: scored mentions and alerts."""
        scored = self.sentiment(self.dedup(self.ingest(raws)))
        return scored, self.crisis(scored)

    def _settle(self, stage: str, result: StageResult) -> list[OutRecord]:
        """What the runner does with a stage's result, into lists: the records it would send.

        Dead letters kept, state saved, metric changes kept; the records are the caller's.
        """
        self._refused(stage, result.refused)
        for reject in result.rejects:
            self.dead_letters.append(DeadLetter(stage, reject.reason, reject.detail, reject.raw))
        result.save()
        self.metric_deltas += result.metrics
        return result.records

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


def _by_partition(records: Iterable[OutRecord]) -> Records:
    """Records' values by partition, in order."""
    by_partition: Records = {}
    for record in records:
        by_partition.setdefault(record.partition or 0, []).append(record.value)
    return by_partition
