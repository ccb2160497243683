"""``mentions process``: the streaming stages' cores run offline over a JSONL file.

No Kafka: every input line gives exactly one output line, either the enriched mention in the
output file (input order kept) or a reject line ``{"line": N, "reason", "detail",
"original"}`` in the reject file. It is also the backfill tool. Stages that are not built
yet are simply absent from the output (never a placeholder value).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from pipeline.config import Settings
from pipeline.schema import InvalidMention, dead_letter_record, decode_record
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.dedup import Deduplicator, mark_duplicates
from pipeline.stages.ingest import build_ingestor
from pipeline.stages.reply import build_reply_classifier
from pipeline.stages.sentiment.engine import SentimentEngine, build_engine
from pipeline.stages.sentiment.mentions import (
    CopyMemory,
    drop_carried_tokens,
    model_inputs,
    score_mentions,
)
from pipeline.stages.sentiment.targets import build_brand_targets
from pipeline.store.client import ListeningStore
from pipeline.store.incident_rows import alert_rows, is_alert_record
from pipeline.store.rows import RowEncoder, kinds_by_brand
from pipeline.store.tables import INCIDENTS, TABLE


@dataclass(frozen=True, slots=True)
class ProcessSummary:
    """Counts of one offline run."""

    lines: int
    written: int
    rejected: int


def _chunks(lines: BinaryIO, size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for number, line in enumerate(lines, start=1):
        chunk.append((number, line.rstrip(b"\r\n")))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class OfflinePipeline:
    """The stage cores chained in the streaming order, over batches of mention dicts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # token ids are carried for the sentiment stage only: without it, none are made
        carrying = settings.sentiment_carry_tokens and "sentiment" in settings.stages
        self.ingestor = build_ingestor(settings.model_copy(
            update={"sentiment_carry_tokens": carrying}))
        self.deduplicator = Deduplicator(window=timedelta(hours=settings.dedup_window_hours))
        # the model loads only when the sentiment stage is asked for (PIPELINE_STAGES)
        self.sentiment: SentimentEngine | None = None
        if "sentiment" in settings.stages:
            self.sentiment = build_engine(settings)
        self.copies = CopyMemory()
        self.targets = build_brand_targets(settings.brands_file)
        self.replies = build_reply_classifier(settings.brands_file)

    def run_batch(self, mentions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Enrich validated mention records through every built stage, keeping their order."""
        records = self.ingestor.enrich(mentions)
        mark_duplicates(self.deduplicator, records)
        if self.sentiment is not None:
            plan = self.copies.plan(records)
            # the streaming path's inputs: the ids the ingest stage carried, read back
            results = self.sentiment.score_packed(
                self.sentiment.encode_carried(*model_inputs(records, plan[0], self.targets)))
            score_mentions(records, results, plan, self.copies, self.targets)
            drop_carried_tokens(records)
        self.replies.mark(records)
        return records


def process_file(
    settings: Settings, input_path: Path, output_path: Path, reject_path: Path,
    *, batch_size: int = 256,
) -> ProcessSummary:
    """Run the pipeline cores over ``input_path`` (see the module docstring)."""
    pipeline = OfflinePipeline(settings)
    lines = written = rejected = 0
    with (
        input_path.open("rb") as source,
        output_path.open("wb") as output,
        reject_path.open("wb") as rejects,
    ):
        for chunk in _chunks(source, batch_size):
            valid: list[dict[str, Any]] = []
            for number, raw in chunk:
                lines += 1
                try:
                    valid.append(decode_record(
                        raw, max_text_chars=settings.max_text_chars,
                        max_record_bytes=settings.max_record_bytes,
                    ))
                except InvalidMention as error:
                    rejected += 1
                    record = orjson.loads(dead_letter_record(
                        raw, error.reason, error.detail, stage="process",
                        source_topic=str(input_path),
                    ))
                    record["line"] = number
                    rejects.write(orjson.dumps(record) + b"\n")
            for enriched in pipeline.run_batch(valid):
                output.write(orjson.dumps(enriched) + b"\n")
                written += 1
    return ProcessSummary(lines=lines, written=written, rejected=rejected)


@dataclass(frozen=True, slots=True)
class StoreLoadSummary:
    """What ``mentions store load`` did: lines read, mentions and alerts added and held, rejects."""

    lines: int
    added: int
    stored: int
    rejects: list[tuple[int, str]]
    alerts_added: int = 0
    alerts_stored: int = 0

    @property
    def rejected(self) -> int:
        """How many lines were not stored."""
        return len(self.rejects)


def load_into_store(
    settings: Settings, store: ListeningStore, input_path: Path, *, batch_size: int = 20_000,
) -> StoreLoadSummary:
    """Insert the scored mentions and crisis alerts of a JSONL file into the store.

    A line with an alert's shape (``incident_id`` and ``idempotency_key``: a record of the
    alerts topic) is an alert, any other a mention (``mentions process`` output), so one file
    may hold both. Idempotent: the store keeps one row per mention and per alert, so loading a
    file again adds nothing. A line that is not a JSON object, or not a record the store can
    keep, is reported with its number and reason, and the rest is loaded.
    """
    encoder = RowEncoder(kinds_by_brand(load_brand_rules(settings.brands_file)),
                         copy_window_s=settings.dedup_window_hours * 3600,
                         find_originals=store.original_authors)
    before, alerts_before = store.count(), store.alert_count()
    lines = 0
    rejects: list[tuple[int, str]] = []
    with input_path.open("rb") as source:
        for chunk in _chunks(source, batch_size):
            lines += len(chunk)
            records = _json_objects(chunk, rejects)
            mentions = [(number, record) for number, record in records
                        if not is_alert_record(record)]
            alerts = [(number, record) for number, record in records if is_alert_record(record)]
            for numbered, batch, table in (
                    (mentions, encoder.encode([record for _, record in mentions]), TABLE),
                    (alerts, alert_rows([record for _, record in alerts]), INCIDENTS)):
                rejects += [(numbered[reject.index][0], f"{reject.reason}: {reject.detail}")
                            for reject in batch.rejects]
                store.insert(batch.payload, table)
    stored, alerts_stored = store.count(), store.alert_count()
    return StoreLoadSummary(lines=lines, added=stored - before, stored=stored,
                            rejects=sorted(rejects), alerts_added=alerts_stored - alerts_before,
                            alerts_stored=alerts_stored)


def _json_objects(chunk: list[tuple[int, bytes]],
                  rejects: list[tuple[int, str]]) -> list[tuple[int, dict[str, Any]]]:
    """The chunk's lines that are JSON objects, numbered; the others go to ``rejects``."""
    objects: list[tuple[int, dict[str, Any]]] = []
    for number, raw in chunk:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            rejects.append((number, f"not_json: {error}"))
            continue
        if not isinstance(record, dict):
            rejects.append((number, "wrong_type: not a JSON object"))
            continue
        objects.append((number, record))
    return objects
