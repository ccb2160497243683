"""Ingest stage core: validate raw records, normalise them, tag brands (and language).

One call handles a whole batch of raw Kafka values, so the per-record cost is plain Python
over bytes, with no per-record framework overhead::

    ingest = Ingestor(matcher, max_text_chars=20_000, max_record_bytes=1_000_000)
    outcome = ingest.process([b'{"id": ...}', b"not json"])
    outcome.mentions   # enriched mention dicts, in input order
    outcome.rejects    # Reject(raw, reason, detail) for the dead-letter topic
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.config import Settings
from pipeline.schema import InvalidMention, decode_record
from pipeline.stages.brands import BrandMatcher, load_brand_rules
from pipeline.stages.language import build_language_detector


class LanguageGuessLike(Protocol):
    """What the ingest stage needs from a language guess."""

    @property
    def lang(self) -> str: ...  # noqa: D102

    @property
    def score(self) -> float: ...  # noqa: D102


class LanguageDetectorLike(Protocol):
    """What the ingest stage needs from a language detector (pipeline.stages.language)."""

    def detect_batch(self, texts: Sequence[str]) -> Sequence[LanguageGuessLike]: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class Reject:
    """A raw record that failed validation, with the bounded reason and the precise detail."""

    raw: bytes
    reason: str
    detail: str


@dataclass(slots=True)
class IngestOutcome:
    """The result of one ingest batch."""

    mentions: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # valid mentions that matched no listening query (counted, forwarded only when asked)
    unmatched: list[dict[str, Any]] = field(default_factory=list)


class Ingestor:
    """Validate, normalise and tag one batch of raw mention records."""

    def __init__(
        self,
        matcher: BrandMatcher,
        *,
        max_text_chars: int,
        max_record_bytes: int,
        language_detector: LanguageDetectorLike | None = None,
    ) -> None:
        self.matcher = matcher
        self.max_text_chars = max_text_chars
        self.max_record_bytes = max_record_bytes
        self.language_detector = language_detector

    def decode(self, raws: Sequence[bytes]) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Split a batch into valid mention records (wire form) and rejects, in input order."""
        records: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        for raw in raws:
            try:
                records.append(decode_record(
                    raw, max_text_chars=self.max_text_chars,
                    max_record_bytes=self.max_record_bytes,
                ))
            except InvalidMention as error:
                rejects.append(Reject(raw, error.reason, error.detail))
        return records, rejects

    def enrich(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``records`` (validated, from :meth:`decode`) with ``brands``, ``lang``, ``lang_score``.

        Language comes first because a brand's query may be restricted to some languages. The
        records are enriched in place and returned as a list.
        """
        texts = [record["text"] for record in records]
        langs: list[str | None] = [None] * len(records)
        if self.language_detector is not None:
            guesses = self.language_detector.detect_batch(texts)
            for index, (record, guess) in enumerate(zip(records, guesses, strict=True)):
                record["lang"] = guess.lang
                record["lang_score"] = round(float(guess.score), 4)
                langs[index] = guess.lang if guess.lang != "und" else None
        match = self.matcher.match
        for record, text, lang in zip(records, texts, langs, strict=True):
            record["brands"] = match(text, lang)
        return list(records)

    def process(self, raws: Sequence[bytes]) -> IngestOutcome:
        """Validate, enrich and split one batch (see the module docstring)."""
        records, rejects = self.decode(raws)
        outcome = IngestOutcome(rejects=rejects)
        for record in self.enrich(records):
            (outcome.mentions if record["brands"] else outcome.unmatched).append(record)
        return outcome


def build_ingestor(settings: Settings) -> Ingestor:
    """The ingest core for ``settings``: brand rules loaded (and validated), language loaded."""
    return Ingestor(
        BrandMatcher(load_brand_rules(settings.brands_file)),
        max_text_chars=settings.max_text_chars,
        max_record_bytes=settings.max_record_bytes,
        language_detector=build_language_detector(settings),
    )
