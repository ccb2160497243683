"""The firehose's usual mention shape: validated in one msgspec pass, tagged as bytes.

Most raw records are already normal: only the known keys, each of its expected type and form.
:func:`decode_usual` decodes and validates such a record in C into a :class:`UsualMention`,
which encodes to exactly the wire form :func:`pipeline.schema.decode_record` makes of it;
anything else, valid or not, takes that precise path. A record that spells every key out is
tagged by appending members to its own bytes (:class:`pipeline.records.RoutedCodec`),
without being encoded again.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import UnsetType

from pipeline.schema import ENGAGEMENT_COUNTS, is_canonical_utc

# Counts above this are left to the precise path: orjson reads a JSON integer beyond 64 bits
# as a float (which validation rejects), msgspec as a Python int.
_LARGEST_COUNT: Final = 2**63 - 1
_Count = Annotated[int, msgspec.Meta(ge=0, le=_LARGEST_COUNT)]


# Optional keys default to UNSET, not to the value validation writes for them, so that a
# record that spells every key is told from one that leaves some out (see decode_usual).
class _UsualAuthor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: str
    handle: str | UnsetType | None = msgspec.UNSET
    followers: _Count | UnsetType | None = msgspec.UNSET


class _UsualEngagement(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    likes: _Count | UnsetType = msgspec.UNSET
    reposts: _Count | UnsetType = msgspec.UNSET
    replies: _Count | UnsetType = msgspec.UNSET
    quotes: _Count | UnsetType = msgspec.UNSET


class UsualMention(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A raw record in the usual shape, typed; it encodes to its wire form.

    Fields are in the wire form's key order; an ``UNSET`` field is left out of the encoding
    (an absent ``engagement`` stays absent, and the ingest stage's tags are set before it
    encodes). Built only by :func:`decode_usual`, which fills absent optional values in.
    """

    id: str
    text: str
    created_at: str
    source: str
    author: _UsualAuthor
    url: str | UnsetType | None = msgspec.UNSET
    lang_hint: str | UnsetType | None = msgspec.UNSET
    engagement: _UsualEngagement | UnsetType = msgspec.UNSET
    # the ingest stage's tags: a raw record that already has one takes the precise path
    lang: str | UnsetType = msgspec.UNSET
    lang_score: float | UnsetType = msgspec.UNSET
    brands: list[str] | UnsetType = msgspec.UNSET
    sentiment_tokens: str | UnsetType = msgspec.UNSET
    ingested_at: float | UnsetType = msgspec.UNSET


_USUAL_MENTION = msgspec.json.Decoder(UsualMention)
encode_usual_mention: Final = msgspec.json.Encoder().encode


def decode_usual(raw: bytes, *, max_text_chars: int) -> tuple[UsualMention, bool] | None:
    """``raw`` decoded and validated in one pass in C, when it is a mention in the usual shape.

    The usual shape: only the known keys, every value of its expected type and already
    normal (a non-blank id, text and source within limits, ``created_at`` already ISO 8601
    in UTC as validation writes it, a string author id, counts that are plain non-negative
    integers). Then the result encodes to exactly what
    :func:`~pipeline.schema.decode_record` makes of ``raw`` (a test holds the two paths to
    that). Anything else, valid or not, is None: the caller takes
    :func:`~pipeline.schema.decode_record`, which normalises it or says what is wrong. Most
    of a firehose is the usual shape, and this path builds ~5 objects per mention instead
    of the ~30 of a decoded dict, in less time than ``orjson.loads`` alone takes (measured:
    see benchmarks/README.md).

    With the mention comes whether ``raw`` spells every key of that encoding (as the
    firehose does) and ends with its closing brace: then ``raw`` already is the wire form,
    up to key order and spacing, and :meth:`~pipeline.records.RoutedCodec.encode_tagged` can
    tag it without encoding it again. Otherwise the absent optional values are filled in
    (null, or a count of 0) as validation fills them.
    """
    try:
        mention = _USUAL_MENTION.decode(raw)
    except msgspec.MsgspecError:
        return None
    text, author = mention.text, mention.author
    if (not text or len(text) > max_text_chars or text.isspace()
            or not mention.id or mention.id.isspace()
            or not mention.source or mention.source.isspace()
            or not author.id
            or not is_canonical_utc(mention.created_at)
            or not (mention.lang is mention.lang_score is mention.brands
                    is mention.sentiment_tokens is mention.ingested_at is msgspec.UNSET)):
        return None
    unset = msgspec.UNSET
    engagement = mention.engagement
    if (mention.url is not unset and mention.lang_hint is not unset
            and author.handle is not unset and author.followers is not unset
            and (engagement is unset
                 or (engagement.likes is not unset and engagement.reposts is not unset
                     and engagement.replies is not unset and engagement.quotes is not unset))
            and raw[-1:] == b"}"):
        return mention, True
    _fill_absent(mention)
    return mention, False


def _fill_absent(mention: UsualMention) -> None:
    """Write null for absent optional keys and 0 for absent counts, as validation does."""
    unset, author, engagement = msgspec.UNSET, mention.author, mention.engagement
    if mention.url is unset:
        mention.url = None
    if mention.lang_hint is unset:
        mention.lang_hint = None
    if author.handle is unset:
        author.handle = None
    if author.followers is unset:
        author.followers = None
    if engagement is not unset:
        for count in ENGAGEMENT_COUNTS:
            if getattr(engagement, count) is unset:
                setattr(engagement, count, 0)
