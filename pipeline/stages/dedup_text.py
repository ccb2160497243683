"""Dedup's matching text: what two copies of a mention have in common, and its fingerprint.

:func:`normalise_for_matching` drops a retweet prefix, @handles, URLs (so tracking parameters
do not matter), emoji and punctuation, and folds case and accents; the original text is never
touched. Exact copies share the fingerprint (BLAKE2b, 8 bytes) of the matching text. Both are
cached by text, as most of a firehose is texts seen moments ago. Routing keys
(:mod:`pipeline.stages.routing`) use the same matching text, so copies meet on one partition.
"""

from __future__ import annotations

import functools
import hashlib
import re

from pipeline.text import fold

_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:?\s*", re.IGNORECASE)
_URL_OR_HANDLE = re.compile(r"(?:https?://|www\.)\S+|@\w+")
_WORDS = re.compile(r"\w+")

# texts whose matching form is kept (process-wide; ~0.5 kB each for a tweet-sized text)
MATCHING_CACHE_SIZE = 50_000


def normalise_for_matching(text: str) -> str:
    """The text two copies have in common: no RT prefix, handles, URLs, emoji or punctuation.

    >>> normalise_for_matching("RT @ana: ¡Acme CAÍDO otra vez!!! 😡 https://t.co/x?utm=1")
    'acme caido otra vez'
    """
    return _words_of(_without_copy_marks(text))


def _without_copy_marks(text: str) -> str:
    """The first step of :func:`normalise_for_matching`: RT prefix, handles and URLs gone."""
    return _URL_OR_HANDLE.sub(" ", _RETWEET.sub("", text))


def _words_of(text: str) -> str:
    """The rest of :func:`normalise_for_matching`: folded words, single-spaced."""
    return " ".join(_WORDS.findall(fold(text)))


def fingerprint(matching_text: str) -> str:
    """Exact-copy key of a normalised text (16 hex digits)."""
    return hashlib.blake2b(matching_text.encode(), digest_size=8).hexdigest()


@functools.lru_cache(maxsize=MATCHING_CACHE_SIZE)
def matching_and_fingerprint(text: str) -> tuple[str, str]:
    """The matching text of a mention's text and its fingerprint, cached by the text.

    One post retweeted by many reads the same, so most of a firehose is texts seen moments
    ago, and a cache hit costs a small part of normalising. A new text whose copy marks
    (RT prefix, handles, URLs) were all that set it apart is a second, cheaper hit.
    """
    return _matching_without_copy_marks(_without_copy_marks(text))


@functools.lru_cache(maxsize=MATCHING_CACHE_SIZE)
def _matching_without_copy_marks(text: str) -> tuple[str, str]:
    """:func:`matching_and_fingerprint` of a text without its copy marks, cached by it.

    Other authors' retweets of one post and its links with other tracking codes differ
    only in those marks, so far fewer texts are distinct without them. Blanking them is
    the cheaper part of a new text's cost; the words, the folding and the hash are the rest
    (measured: see benchmarks/README.md).
    """
    matching = _words_of(text)
    return matching, fingerprint(matching)

