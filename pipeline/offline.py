"""``mentions process``: the worker's stages run offline over a JSONL file.

The stages are :class:`~pipeline.in_process.InProcessPipeline`'s: the objects and calls of
the agents, so this command runs the production code paths (crisis alerts excepted). No
Kafka: every input line gives exactly one output line, either the enriched mention in the
output file (input order kept) or a reject line ``{"line": N, "reason", "detail",
"original"}`` in the reject file. It is also the backfill tool. Stages that are not built
yet are simply absent from the output (never a placeholder value).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from pipeline.config import Settings
from pipeline.in_process import DeadLetter, InProcessPipeline
from pipeline.records import ScoredMention, dead_letter_record, encode_mention
from pipeline.stages.stage_result import BadRecord
from pipeline.store.client import ListeningStore
from pipeline.store.incident_rows import alert_rows, is_alert_record
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


def offline_pipeline(settings: Settings) -> InProcessPipeline:
    """The worker's stages in process, set for a file: one partition, nothing left out.

    One partition keeps the input order through every stage, and every mention meets every
    earlier one (one worker holding every partition gives the same verdicts); mentions that
    match no listening query are forwarded too, since every line is written.
    """
    # token ids are carried for the sentiment stage only: without it, none are made
    carrying = settings.sentiment_carry_tokens and "sentiment" in settings.stages
    return InProcessPipeline.build(settings.model_copy(update={
        "partitions": 1, "forward_unmatched": True, "sentiment_carry_tokens": carrying}))


def process_file(
    settings: Settings, input_path: Path, output_path: Path, reject_path: Path,
    *, batch_size: int = 256, store: ListeningStore | None = None,
) -> ProcessSummary:
    """Run the pipeline's stages over ``input_path`` (see the module docstring).

    With ``store``, the scored mentions are also written there by the store sink's write
    step, up to ``settings.store_batch_size`` at a time; rows the store refuses are reject
    lines (without a line number: the mention's own line was written).
    """
    pipeline = offline_pipeline(settings)
    if store is not None:
        pipeline.attach_store(store)
    lines = written = rejected = 0
    unstored: list[ScoredMention] = []
    with (
        input_path.open("rb") as source,
        output_path.open("wb") as output,
        reject_path.open("wb") as rejects,
    ):
        for chunk in _chunks(source, batch_size):
            lines += len(chunk)
            scored = pipeline.sentiment(pipeline.dedup(pipeline.ingest(
                [raw for _number, raw in chunk]))).get(0, [])
            for mention in scored:
                output.write(encode_mention(mention) + b"\n")
                written += 1
            if store is not None:
                unstored += scored
                if len(unstored) >= settings.store_batch_size:
                    _store(pipeline, unstored)
                    unstored = []
            for number, letter in _numbered(chunk, pipeline.dead_letters):
                rejects.write(_reject_line(letter, number, str(input_path)))
                rejected += 1
            pipeline.dead_letters.clear()
        if unstored:
            _store(pipeline, unstored)
            for letter in pipeline.dead_letters:
                rejects.write(_reject_line(letter, None, str(input_path)))
                rejected += 1
    return ProcessSummary(lines=lines, written=written, rejected=rejected)


def _store(pipeline: InProcessPipeline, mentions: list[ScoredMention]) -> None:
    """Write ``mentions`` as one sink batch through the store sink's write step."""
    pipeline.store({0: mentions})
    pipeline.stored.clear()  # in the store now; the harness need not keep them


def _numbered(chunk: list[tuple[int, bytes]],
              letters: list[DeadLetter]) -> Iterator[tuple[int | None, DeadLetter]]:
    """Each dead letter with its line: ingest's hold the line's own bytes, in input order."""
    position = 0
    for letter in letters:
        number = None
        if letter.stage == "ingest":
            while chunk[position][1] is not letter.value:
                position += 1
            number = chunk[position][0]
            position += 1
        yield number, letter


def _reject_line(letter: DeadLetter, number: int | None, source: str) -> bytes:
    record = orjson.loads(dead_letter_record(letter.value, letter.reason, letter.detail,
                                             stage="process", source_topic=source))
    record["line"] = number
    return orjson.dumps(record) + b"\n"


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
    may hold both. Each chunk's mentions and alerts are a batch of the store sink, written by
    its write step (:meth:`~pipeline.in_process.InProcessPipeline.store_rows`, the worker's).
    Idempotent: the store keeps one row per mention and per alert, so loading a file again
    adds nothing. A line that is not a JSON object, not a record the store can keep, or one
    the store refuses is reported with its number and reason, and the rest is loaded.
    """
    pipeline = InProcessPipeline.build(settings.model_copy(update={"stages": ("store",)}))
    pipeline.attach_store(store)
    before, alerts_before = store.count(), store.alert_count()
    lines = 0
    rejects: list[tuple[int, str]] = []
    with input_path.open("rb") as source:
        for chunk in _chunks(source, batch_size):
            lines += len(chunk)
            rejects += _load_chunk(pipeline, chunk)
            pipeline.dead_letters.clear()  # reported above, by line
            pipeline.stored.clear()
    stored, alerts_stored = store.count(), store.alert_count()
    return StoreLoadSummary(lines=lines, added=stored - before, stored=stored,
                            rejects=sorted(rejects), alerts_added=alerts_stored - alerts_before,
                            alerts_stored=alerts_stored)


def _load_chunk(pipeline: InProcessPipeline,
                chunk: list[tuple[int, bytes]]) -> list[tuple[int, str]]:
    """One chunk's mentions, then its alerts, through the sink; the lines not stored, why."""
    rejects: list[tuple[int, str]] = []
    records = _json_objects(chunk, rejects)
    mentions = [(number, record) for number, record in records if not is_alert_record(record)]
    alerts = [(number, record) for number, record in records if is_alert_record(record)]
    for numbered, batch, table, key in (
            (mentions, pipeline.encoder.encode_dicts([record for _, record in mentions]),
             TABLE, "id"),
            (alerts, alert_rows([record for _, record in alerts]), INCIDENTS,
             "idempotency_key")):
        rejects += [(numbered[reject.index][0], f"{reject.reason}: {reject.detail}")
                    for reject in batch.rejects]
        refused = pipeline.store_rows(batch, table)
        rejects += _refused_lines(refused, key, numbered)
    return rejects


def _refused_lines(refused: list[BadRecord], key: str,
                   numbered: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
    """The lines whose rows the store refused, found by the rows' ``key``, each once, and why.

    Every row carries its record's key; one that names no line of the chunk would be line 0.
    """
    if not refused:
        return []
    lines_by_key = {record.get(key): number for number, record in numbered}
    lines: dict[int, str] = {}
    for bad in refused:
        number = lines_by_key.get(orjson.loads(bad.raw).get(key), 0)
        lines.setdefault(number, f"{bad.reason}: {bad.detail}")
    return list(lines.items())


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
