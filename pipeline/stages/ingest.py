"""Ingest stage core: validate raw records, normalise them, tag brands (and language).

One call handles a whole batch of raw Kafka values, so the per-record cost is plain Python
over bytes, with no per-record framework overhead::

    ingest = Ingestor(matcher, max_text_chars=20_000, max_record_bytes=1_000_000)
    outcome = ingest.process([b'{"id": ...}', b"not json"])
    outcome.mentions   # enriched mention dicts, in input order
    outcome.rejects    # Reject(raw, reason, detail) for the dead-letter topic

The ingest service calls :meth:`Ingestor.process_encoded` instead: the same work, each
mention handed over already encoded (its wire form), so that a raw record in the usual
shape goes from bytes to bytes without ever being a dict (measured: see
benchmarks/README.md); :meth:`Ingestor.process` is that path with each mention decoded back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import msgspec
import orjson

from pipeline.caching import BoundedCache
from pipeline.config import Settings
from pipeline.records import ROUTED, RoutedMention
from pipeline.schema import InvalidMention, decode_record
from pipeline.stages.brands import BrandMatcher, load_brand_rules
from pipeline.stages.language import build_language_detector
from pipeline.stages.sentiment.carried import (
    CARRIED_KEY,
    CarryingTokenizer,
    build_carrying_tokenizer,
)
from pipeline.usual_mention import UsualMention, decode_usual


class LanguageGuessLike(Protocol):
    """What the ingest stage needs from a language guess."""

    @property
    def lang(self) -> str: ...  # noqa: D102

    @property
    def score(self) -> float: ...  # noqa: D102


class LanguageDetectorLike(Protocol):
    """What the ingest stage needs from a language detector (pipeline.stages.language)."""

    def detect_batch(self, texts: Sequence[str]) -> Sequence[LanguageGuessLike]: ...  # noqa: D102


class _Tags(NamedTuple):
    """What the ingest stage writes on every mention of one text."""

    # (code, score), or None when detection is off
    guess: tuple[str, float] | None
    brands: tuple[str, ...]
    # the sentiment model's token ids in their wire form, or None when not carried
    sentiment_tokens: str | None
    # the same as JSON object members (RoutedCodec.tag_members), for mentions tagged as bytes
    members: bytes


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


class EncodedMention(NamedTuple):
    """A tagged mention in its wire form (``encoded``), with what routing and metrics read."""

    text: str
    brands: tuple[str, ...]
    created_at: str
    encoded: bytes


@dataclass(slots=True)
class EncodedOutcome:
    """The result of one ingest batch, mentions encoded (:meth:`Ingestor.process_encoded`)."""

    mentions: list[EncodedMention] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    unmatched: list[EncodedMention] = field(default_factory=list)
    # every valid mention, matched or not, in input order
    tagged: list[EncodedMention] = field(default_factory=list)

    def forwarded(self, with_unmatched: bool) -> list[EncodedMention]:
        """What goes on to routing, in input order: the matched mentions, or all valid ones."""
        return self.tagged if with_unmatched else self.mentions


class Ingestor:
    """Validate, normalise and tag one batch of raw mention records."""

    def __init__(
        self,
        matcher: BrandMatcher,
        *,
        max_text_chars: int,
        max_record_bytes: int,
        language_detector: LanguageDetectorLike | None = None,
        carrying_tokenizer: CarryingTokenizer | None = None,
        tags_cache_size: int = 50_000,
    ) -> None:
        self.matcher = matcher
        self.carrying_tokenizer = carrying_tokenizer
        self.max_text_chars = max_text_chars
        self.max_record_bytes = max_record_bytes
        self.language_detector = language_detector
        self._tags_by_text = BoundedCache[str, _Tags](tags_cache_size)

    def _tags(self, texts: Sequence[str]) -> list[_Tags]:
        """Each text's language guess ((code, score); None when detection is off) and brands.

        Both are pure functions of the text, so a text seen lately is one lookup: a firehose
        is mostly retweets, and the two stages' own caches cost more than this one per
        repeated text (two lookups, a key tuple, rounding; measured: see benchmarks/README.md).
        """
        known = self._tags_by_text
        # the batch's own answers: remembering its new texts may evict texts it looked up
        found: dict[str, _Tags] = {}
        unknown: list[str] = []
        for text in dict.fromkeys(texts):
            tag = known.get(text)
            if tag is None:
                unknown.append(text)
            else:
                found[text] = tag
        if unknown:
            guesses = self._guesses(unknown)
            carried: list[str | None] = (
                [None] * len(unknown) if self.carrying_tokenizer is None
                else list(self.carrying_tokenizer.wire(unknown)))
            for text, guess, tokens in zip(unknown, guesses, carried, strict=True):
                brands = self._brands(text, guess, found)
                found[text] = known.remember(text, _Tags(guess, brands, tokens, ROUTED.tag_members(
                    lang=None if guess is None else guess[0],
                    lang_score=None if guess is None else guess[1], brands=brands,
                    sentiment_tokens=tokens,
                )))
        return [found[text] for text in texts]

    def _guesses(self, texts: Sequence[str]) -> list[tuple[str, float] | None]:
        """Each text's language guess, rounded as it is written on the mention."""
        if self.language_detector is None:
            return [None] * len(texts)
        return [(guess.lang, round(float(guess.score), 4))
                for guess in self.language_detector.detect_batch(texts)]

    def _brands(
        self, text: str, guess: tuple[str, float] | None, found: dict[str, _Tags],
    ) -> tuple[str, ...]:
        """The brands of a new text; the language first, as a query may be restricted to some.

        A retweet whose prefix changes no verdict (:meth:`BrandMatcher.retweeted`) takes the
        brands of the text it copies when that text is known, in the same language: on the
        firehose many new texts are retweets of a text seen before (measured: see
        benchmarks/README.md), and a match costs several times the check.
        """
        lang = _query_language(guess)
        copied = self.matcher.retweeted(text)
        if copied is not None:
            tags = found.get(copied) or self._tags_by_text.get(copied)
            if tags is not None and _query_language(tags.guess) == lang:
                return tags.brands
        return tuple(self.matcher.match(text, lang))

    def process(self, raws: Sequence[bytes]) -> IngestOutcome:
        """Validate, enrich and split one batch (see the module docstring).

        The same work as :meth:`process_encoded`, each mention decoded back into a dict.
        """
        encoded = self.process_encoded(raws)
        return IngestOutcome(
            mentions=[orjson.loads(mention.encoded) for mention in encoded.mentions],
            rejects=encoded.rejects,
            unmatched=[orjson.loads(mention.encoded) for mention in encoded.unmatched],
        )

    def process_encoded(
        self, raws: Sequence[bytes], *, ingested_at: float | None = None,
    ) -> EncodedOutcome:
        """Validate, tag and encode one batch; ``ingested_at`` is stamped on every mention.

        Every mention is written by :data:`~pipeline.records.ROUTED` as a
        :class:`~pipeline.records.RoutedMention`. A raw record in the usual shape is decoded
        and validated in C (:func:`~pipeline.usual_mention.decode_usual`); when it spells
        out every key it already is the wire form, and the codec appends its tags to its own
        bytes. Any other record takes :func:`~pipeline.schema.decode_record`, which
        normalises it or rejects it, and then the routed type, which rejects a key of
        another type that ingest does not overwrite (a source's own ``lang``, say).
        """
        outcome = EncodedOutcome()
        # per valid mention: its raw record when that already is its wire form (see
        # usual_mention.decode_usual), else the typed mention or the normalised record
        decoded: list[bytes | UsualMention | dict[str, Any]] = []
        raws_of: list[bytes] = []
        texts: list[str] = []
        created_at: list[str] = []
        for raw in raws:
            usual = (decode_usual(raw, max_text_chars=self.max_text_chars)
                     if len(raw) <= self.max_record_bytes else None)
            if usual is not None:
                mention, spelled_out = usual
                decoded.append(raw if spelled_out and type(raw) is bytes else mention)
                raws_of.append(raw)
                texts.append(mention.text)
                created_at.append(mention.created_at)
                continue
            try:
                record = decode_record(raw, max_text_chars=self.max_text_chars,
                                       max_record_bytes=self.max_record_bytes)
            except InvalidMention as error:
                outcome.rejects.append(Reject(raw, error.reason, error.detail))
                continue
            decoded.append(record)
            raws_of.append(raw)
            texts.append(record["text"])
            created_at.append(record["created_at"])
        # the ingest time and the closing brace, the same for the whole batch
        closing = ROUTED.tag_members(ingested_at=ingested_at) + b"}"
        for raw, text, created, item, tags in zip(
                raws_of, texts, created_at, decoded, self._tags(texts), strict=True):
            if isinstance(item, bytes):
                # most of a firehose: its bytes with the text's tags and the batch's time,
                # no encoding
                encoded = ROUTED.encode_tagged(item, tags.members, closing)
            else:
                try:
                    routed = _tagged_mention(item, tags, ingested_at)
                except InvalidMention as error:
                    outcome.rejects.append(Reject(raw, error.reason, error.detail))
                    continue
                encoded = ROUTED.encode_one(routed)
            tagged = EncodedMention(text, tags.brands, created, encoded)
            (outcome.mentions if tags.brands else outcome.unmatched).append(tagged)
            outcome.tagged.append(tagged)
        return outcome


def _query_language(guess: tuple[str, float] | None) -> str | None:
    """The language brand queries are checked for: none when undetermined or not detected."""
    return guess[0] if guess is not None and guess[0] != "und" else None


def _tagged_mention(
    item: UsualMention | dict[str, Any], tags: _Tags, ingested_at: float | None,
) -> RoutedMention:
    """The routed mention of a decoded raw record, tagged; ``InvalidMention`` if it is none.

    A normalised record keeps its own keys and their order (:meth:`MentionCodec.from_dict`);
    a usual mention is all known keys, each of the routed type already.
    """
    if isinstance(item, dict):
        _tag_record(item, tags, ingested_at)
        return ROUTED.from_dict(item)
    mention = RoutedMention(**msgspec.to_builtins(item))
    if tags.guess is not None:
        mention.lang, mention.lang_score = tags.guess
    mention.brands = list(tags.brands)
    if tags.sentiment_tokens is not None:
        mention.sentiment_tokens = tags.sentiment_tokens
    if ingested_at is not None:
        mention.ingested_at = ingested_at
    return mention


def _tag_record(record: dict[str, Any], tags: _Tags, ingested_at: float | None) -> None:
    """Write the stage's tags onto a record (a language only when detection is on).

    Carried token ids replace any the raw record brought; without carrying, a raw record's
    own are left for the sentiment worker to check (by their fingerprint) like any key.
    """
    if tags.guess is not None:
        record["lang"], record["lang_score"] = tags.guess
    record["brands"] = list(tags.brands)
    if tags.sentiment_tokens is not None:
        record.pop(CARRIED_KEY, None)  # written in the wire form's key order
        record[CARRIED_KEY] = tags.sentiment_tokens
    if ingested_at is not None:
        record["ingested_at"] = ingested_at


def build_ingestor(settings: Settings) -> Ingestor:
    """The ingest core for ``settings``: brand rules loaded (and validated), language loaded."""
    # The ingestor remembers each text's tags itself, so the matcher's verdicts per text
    # would only hold the same texts a second time (and cost a lookup and an insert on each
    # new one). The detector's caches are by text without its noise and by cleaned text,
    # which a new text can still hit: a retweet of a new post cleans to the post's text.
    return Ingestor(
        BrandMatcher(load_brand_rules(settings.brands_file), cache_size=0),
        max_text_chars=settings.max_text_chars,
        max_record_bytes=settings.max_record_bytes,
        language_detector=build_language_detector(settings),
        carrying_tokenizer=build_carrying_tokenizer(settings),
    )
