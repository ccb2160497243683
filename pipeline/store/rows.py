"""A scored mention as rows of the store: one per brand it names, with the mention itself.

The table is ordered by brand first (the desk's questions are per brand), so a mention that
names two brands is two rows, alike but for ``brand``; one that names none is one row with
``brand`` empty.

:func:`mention_rows` turns a batch of scored mentions (as the sentiment stage emits them)
into ``JSONEachRow`` lines for one insert, and the mentions it cannot store into rejects with
a reason, so the sink dead-letters them instead of failing the batch. The row keeps the
mention itself as emitted (``mention``) next to the columns, so the store answers with the
pipeline's own record, unknown upstream keys included.

Search and terms are computed here, once per distinct text: ``search_text`` is the text's
words folded as the listening queries fold them (case and accents), one space apart, and
``terms`` its content words and hashtags as the crisis alerts count them.

A copy's row also names its original's author (``original_author``), so the desk credits an
author with the reach of the copies of their posts in one pass over the rows, without joining
the copies to their originals at query time. Originals come before their copies on the same
partition, so the encoder remembers the authors of the originals it encoded; one it has not
seen (after a restart) is looked up in the store through ``find_originals``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from msgspec import UNSET, UnsetType

from pipeline.caching import BoundedCache
from pipeline.config import Settings
from pipeline.event_time import epoch_seconds
from pipeline.records import SCORED, ScoredMention, Sentiment, brands_of, encode_mention
from pipeline.schema import InvalidMention
from pipeline.stages.alerts.terms import mention_terms
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.reply import REASONS as REPLY_REASONS
from pipeline.stages.stage_result import Insert, StageResult
from pipeline.text import fold

SENTIMENT_LABELS: Final = ("negative", "neutral", "positive")
# Letters and digits of any script. ClickHouse's tokens (hasToken, tokenbf_v1) are runs of
# ASCII letters and digits and of any non-ASCII byte, so "¿dónde?" or "precio😡" would be one
# token to it: the stored search text is these words only, one space apart, on which both
# rules cut the same tokens.
_SEARCH_TOKEN: Final = re.compile(r"[^\W_]+")
_UINT32_MAX: Final = 2**32 - 1
_UINT64_MAX: Final = 2**64 - 1

# (original ids, earliest and latest Unix second they can have) -> their authors, by id
FindOriginals = Callable[[Sequence[str], float, float], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class RowReject:
    """A mention the store cannot keep: its place in the batch, its bytes, and why."""

    index: int
    raw: bytes
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class RowBatch:
    """One insert's rows (``JSONEachRow``, one per mention and brand) and what was left out."""

    rows: list[bytes]
    rejects: list[RowReject]

    @property
    def payload(self) -> bytes:
        """The rows as one ``JSONEachRow`` insert body."""
        return rows_payload(self.rows)


def stored_result(batch: RowBatch, table: str) -> StageResult:
    """The store sink's answer to a batch: its rows to insert into ``table``, its rejects.

    >>> result = stored_result(RowBatch([b'{"id":"1"}'], []), "brand_mentions")
    >>> [(insert.table, len(insert.rows)) for insert in result.inserts], result.rejects
    ([('brand_mentions', 1)], [])
    """
    return StageResult(inserts=[Insert(table, batch.rows)], rejects=batch.rejects)


def rows_payload(rows: Iterable[bytes]) -> bytes:
    """Rows as one ``JSONEachRow`` insert body: a line each."""
    return b"".join(row + b"\n" for row in rows)


def search_tokens(text: str) -> list[str]:
    """The tokens ClickHouse's ``hasToken`` sees in the folded ``text``, in order.

    >>> search_tokens("¿Cobertura en Móvil? #AcmeFail @telvia😡")
    ['cobertura', 'en', 'movil', 'acmefail', 'telvia']
    """
    return _SEARCH_TOKEN.findall(fold(text))


class RowEncoder:
    """Encodes scored mentions as store rows, remembering each recent text's derived columns.

    ``kinds_by_brand`` maps a listening query's id to its kind (brand, competitor, market);
    copies share their text, so the folded form and terms are computed once per text.
    ``find_originals`` answers the authors of originals this encoder has not seen, at most
    ``copy_window_s`` older than their copies (dedup's window); without it they stay unknown.
    """

    def __init__(self, kinds_by_brand: Mapping[str, str], *, text_cache_size: int = 50_000,
                 original_cache_size: int = 200_000, copy_window_s: float = 86_400.0,
                 find_originals: FindOriginals | None = None) -> None:
        self.kinds_by_brand = dict(kinds_by_brand)
        self._by_text = BoundedCache[str, tuple[str, list[str]]](text_cache_size)
        self._original_authors = BoundedCache[str, str](original_cache_size)
        self.copy_window_s = copy_window_s
        self.find_originals = find_originals

    @classmethod
    def for_settings(cls, settings: Settings, *,
                     find_originals: FindOriginals | None = None) -> RowEncoder:
        """The encoder of the listening queries ``settings`` names, copies within dedup's window."""
        return cls(kinds_by_brand(load_brand_rules(settings.brands_file)),
                   copy_window_s=settings.dedup_window_hours * 3600,
                   find_originals=find_originals)

    def encode_dicts(self, documents: Sequence[Mapping[str, Any]]) -> RowBatch:
        """:meth:`encode` over JSON objects (a file's lines, a test's records).

        An object that is not a scored mention is a reject with the codec's reason.
        """
        mentions: list[ScoredMention] = []
        positions: list[int] = []
        rejects: list[RowReject] = []
        for index, document in enumerate(documents):
            try:
                mentions.append(SCORED.from_dict(document))
            except InvalidMention as error:
                rejects.append(RowReject(index, orjson.dumps(document), error.reason,
                                         error.detail))
                continue
            positions.append(index)
        batch = self.encode(mentions)
        rejects += [replace(reject, index=positions[reject.index]) for reject in batch.rejects]
        return RowBatch(batch.rows, sorted(rejects, key=lambda reject: reject.index))

    def encode(self, mentions: Sequence[ScoredMention]) -> RowBatch:
        """The rows of ``mentions`` (per id and brand, the last copy wins) and the rejects."""
        created = epoch_seconds([mention.created_at for mention in mentions])
        self._learn_originals(mentions, created.tolist())
        rows: dict[tuple[str, str], bytes] = {}
        rejects: list[RowReject] = []
        by_brand: dict[int, dict[str, dict[str, Any]]] = {}
        for index, (mention, created_at) in enumerate(zip(mentions, created.tolist(),
                                                          strict=True)):
            try:
                row = self.row(mention, created_at)
                if mention.sentiment_by_brand is not UNSET:
                    by_brand[index] = brand_sentiment_columns(mention)
            except ValueError as error:
                reason, _, detail = str(error).partition(": ")
                rejects.append(RowReject(index, encode_mention(mention), reason, detail))
                continue
            toward = by_brand.get(index, {})
            for brand in row["brands"] or [""]:
                # a mention naming several brands: each brand's row has its own label
                rows[(row["id"], brand)] = orjson.dumps({"brand": brand, **row,
                                                         **toward.get(brand, {})})
        return RowBatch(list(rows.values()), rejects)

    def _learn_originals(self, mentions: Sequence[ScoredMention],
                         created: list[float]) -> None:
        """Remember the batch's originals' authors; look up those of unseen originals."""
        known = self._original_authors
        unseen: dict[str, float] = {}
        for mention, created_at in zip(mentions, created, strict=True):
            original = mention.duplicate_of
            if not original:
                author = mention.author
                if isinstance(author, Mapping):
                    known.remember(mention.id, _text(author.get("id")))
            elif original not in known and not math.isnan(created_at):
                unseen[original] = created_at
        # originals later in the batch than a copy of theirs are known by now
        for original in [original for original in unseen if original in known]:
            del unseen[original]
        if unseen and self.find_originals is not None:
            found = self.find_originals(sorted(unseen),
                                        min(unseen.values()) - self.copy_window_s,
                                        max(unseen.values()))
            for original, author_id in found.items():
                known.remember(original, author_id)

    def row(self, mention: ScoredMention, created_at: float) -> dict[str, Any]:
        """One mention's columns but ``brand``; ``ValueError("reason: detail")`` if unstorable."""
        if not mention.id:
            raise ValueError("missing_field: id")
        if math.isnan(created_at):
            raise ValueError(f"bad_timestamp: created_at {mention.created_at!r}")
        brands = list(dict.fromkeys(brands_of(mention)))
        author = _mapping(mention.author)
        engagement = _mapping(mention.engagement)
        sentiment = _sentiment_columns(mention.sentiment, "sentiment")
        search_text, terms = self._derived(mention.text)
        duplicate_of = _text(mention.duplicate_of)
        ingested_at = mention.ingested_at
        return {
            "id": mention.id,
            "created_at": created_at,
            "ingested_at": created_at if ingested_at is UNSET or ingested_at is None
            else ingested_at,
            "brands": brands,
            "kinds": sorted({self.kinds_by_brand.get(brand, "brand") for brand in brands}),
            "source": _text(mention.source),
            "author_id": _text(author.get("id")),
            "author_handle": _text(author.get("handle")),
            "author_followers": _count(author.get("followers"), "author.followers", _UINT64_MAX),
            "lang": _text(mention.lang) or "und",
            **sentiment,
            "duplicate_of": duplicate_of,
            "original_author": self._original_authors.get(duplicate_of, "") if duplicate_of else "",
            "duplicate_kind": _text(mention.duplicate_kind) or "unique",
            "copy_count": _count(1 if mention.copy_count is UNSET else mention.copy_count,
                                 "copy_count", _UINT32_MAX),
            "needs_reply": _reply_reason(mention.needs_reply),
            **{name: _count(engagement.get(name), f"engagement.{name}", _UINT32_MAX)
               for name in ("likes", "reposts", "replies", "quotes")},
            "url": _text(mention.url),
            "search_text": search_text,
            "terms": terms,
            "mention": encode_mention(mention).decode(),
        }

    def _derived(self, text: str) -> tuple[str, list[str]]:
        derived = self._by_text.get(text)
        if derived is None:
            words, hashtags = mention_terms(text)
            derived = self._by_text.remember(
                text, (" ".join(search_tokens(text)), sorted(words | hashtags)),
            )
        return derived


def brand_sentiment_columns(mention: ScoredMention) -> dict[str, dict[str, Any]]:
    """The sentiment columns of each brand in a mention's ``sentiment_by_brand``.

    >>> from pipeline.records import Sentiment
    >>> brand_sentiment_columns(ScoredMention(id="1", text="", created_at="",
    ...     sentiment_by_brand={"telvia": Sentiment("negative", {"negative": 0.9})}
    ... ))["telvia"]["sentiment"]
    'negative'
    """
    by_brand = mention.sentiment_by_brand
    if by_brand is UNSET:
        return {}
    return {brand: _sentiment_columns(toward, f"sentiment_by_brand.{brand}")
            for brand, toward in by_brand.items()}


def _sentiment_columns(sentiment: Sentiment | UnsetType | None, name: str) -> dict[str, Any]:
    """``sentiment`` and the three score columns of a sentiment record (blank if absent)."""
    label: str = ""
    scores: Mapping[str, float] = {}
    if isinstance(sentiment, Sentiment):  # anything else is an unscored mention, as before
        label, scores = sentiment.label, sentiment.scores
        if label not in SENTIMENT_LABELS:
            raise ValueError(f"wrong_type: {name} label {label!r}")
    return {"sentiment": label, **{n: _score(scores.get(n)) for n in SENTIMENT_LABELS}}


def kinds_by_brand(rules: Iterable[Any]) -> dict[str, str]:
    """Each listening query's id and kind, from the listening queries' rules."""
    return {rule.id: rule.kind for rule in rules}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: Mapping[str, Any] | UnsetType) -> Mapping[str, Any]:
    return {} if value is UNSET else value


def _count(value: Any, name: str, top: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"wrong_type: {name} {value!r} is not a count")
    return value


def _reply_reason(value: Any) -> str | None:
    # written by the scoring stage; a record from before it has none (NULL)
    if not value:
        return None
    if value in REPLY_REASONS:
        return str(value)
    raise ValueError(f"wrong_type: needs_reply {value!r} is not one of {list(REPLY_REASONS)}")


def _score(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0
