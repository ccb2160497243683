"""Case- and accent-folded text and its word tokens, as listening queries read them.

Brand queries, dedup's matching text, alert terms and the store's search text all fold the
same way, so a word a query names is the word those find. Both functions are one C-speed
regex pass over the text, not a Python loop over characters or tokens: they run on every
mention in ingest and dedup.
"""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"[#@]?\w+(?:['\u2019]\w+)*", re.UNICODE)


# Combining diacritics of the Latin, Greek and Cyrillic scripts and Arabic short vowels: what
# people drop when they type fast ("telefonica"). One C-speed regex pass instead of a Python
# loop over characters (this runs on every mention in ingest and dedup).
_DIACRITICS = re.compile(r"[\u0300-\u036f\u064b-\u065f\u0670]")


def fold(text: str) -> str:
    """Case- and accent-fold: ``fold("Telefónica")`` is ``"telefonica"``."""
    if text.isascii():
        return text.casefold()
    return _DIACRITICS.sub("", unicodedata.normalize("NFKD", text.casefold()))


def folded_tokens(text: str) -> tuple[str, list[re.Match[str]]]:
    """The folded text and its tokens' matches: what :func:`tokenize` finds, with offsets.

    >>> folded, tokens = folded_tokens("Telvía > Acme")
    >>> folded, [(t.group(), t.start()) for t in tokens]
    ('telvia > acme', [('telvia', 0), ('acme', 9)])
    """
    folded = fold(text).replace("\u2019", "'")
    return folded, list(_TOKEN.finditer(folded))


def tokenize(text: str) -> list[str]:
    """Folded word, ``#hashtag`` and ``@handle`` tokens of a text, in order.

    A typographic apostrophe becomes ``'`` in the whole text before the tokens are found:
    the same tokens as replacing it in each (both are inside-word marks for ``_TOKEN``),
    without a Python call per token (measured: see benchmarks/README.md).
    """
    return _TOKEN.findall(fold(text).replace("\u2019", "'"))
