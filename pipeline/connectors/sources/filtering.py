"""What every connector shares between an event and a record: outcomes, filter, HTML.

A mapper turns one network event into a mention dict (the ``mentions.raw`` wire format of
:mod:`pipeline.schema`), or raises :class:`SkipEvent` (not for us: another collection, a
deletion, no query could match; counted by reason) or :class:`UnmappableEvent` (it reached
us but cannot be a mention; counted and dead-lettered with the original bytes).

The pre-filter is the listening queries themselves: a mention is sent when at least one
brand's query matches its text, languages aside (the ingest stage decides language from the
text, so a source's language tag must not hide a mention). Ingest applies the same queries
again; the filter only keeps the rest of the network off the topic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Final

from pipeline.stages.brand_query import And, Node, Not, Or, Term, positive_terms
from pipeline.stages.brands import BrandMatcher, BrandRule

# Bounded label values of mentions_source_skipped_total{reason}.
SKIP_REASONS: Final = (
    "not_a_post", "not_a_create", "no_text", "no_query_match", "seen_before", "not_an_update",
    "author_opted_out",
)


class SkipEvent(Exception):
    """The event is not a mention we want; ``reason`` is one of :data:`SKIP_REASONS`."""

    def __init__(self, reason: str) -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}")
        super().__init__(reason)
        self.reason = reason


class UnmappableEvent(Exception):
    """The event reached us but cannot become a mention; ``reason`` is a schema reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class QueryPrefilter:
    """Passes the texts that at least one listening query matches (languages aside).

    >>> from pipeline.stages.brands import brand_rules_from_dicts
    >>> keep = QueryPrefilter(brand_rules_from_dicts([{"id": "t", "query": "telvia OR #movil"}]))
    >>> keep("Telvia sin cobertura"), keep("hoy llueve"), keep.hashtags()
    (True, False, ['movil', 'telvia'])
    """

    def __init__(self, rules: Sequence[BrandRule], *, enabled: bool = True) -> None:
        self.rules = list(rules)
        self.enabled = enabled
        self._matcher = BrandMatcher(self.rules)

    def __call__(self, text: str) -> bool:
        """Whether ``text`` could match a listening query."""
        return not self.enabled or bool(self._matcher.match(text, None))

    def hashtags(self) -> list[str]:
        """One-word terms of the queries that a hashtag stream can carry (pushed to Mastodon).

        A plain word counts too: the queries match a word used as a hashtag. Only a term
        that matches its query on its own is pushed (``caro`` in ``fibra NEAR/4 caro`` is
        not): a stream of posts that cannot match would be noise the filter drops. Prefix
        wildcards, phrases and handles cannot be a hashtag stream and are left out.
        """
        tags = set()
        for rule in self.rules:
            for term in positive_terms(rule.parsed):
                if term.prefix or len(term.words) != 1 or not _matches_alone(rule.parsed, term):
                    continue
                word = term.words[0].removeprefix("#")
                if _HASHTAG.fullmatch(word):
                    tags.add(word)
        return sorted(tags)


def _matches_alone(node: Node, term: Term) -> bool:
    """Whether a text holding ``term`` and no other term satisfies the query ``node``."""
    if isinstance(node, Term):
        return node == term
    if isinstance(node, And):
        return all(_matches_alone(operand, term) for operand in node.operands)
    if isinstance(node, Or):
        return any(_matches_alone(operand, term) for operand in node.operands)
    if isinstance(node, Not):
        return not _matches_alone(node.operand, term)
    return False  # NEAR needs two terms


_HASHTAG = re.compile(r"[^\W]\w*")
_BLOCKS: Final = frozenset({"p", "div", "li", "blockquote", "h1", "h2", "h3", "h4", "pre", "tr"})


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip_depth += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # a line break in HTML source is a space; only <br> and blocks break lines
            self.parts.append(data.replace("\r", " ").replace("\n", " "))


_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def html_to_text(html: str) -> str:
    r"""Readable text of an HTML fragment: paragraphs kept, tags dropped, entities decoded.

    Mastodon hides the scheme and the tail of long links in ``invisible`` spans; their text
    is kept, so a link reads whole.

    >>> html_to_text('<p>Hola <a href="https://x.es"><span class="invisible">https://</span>'
    ...              '<span>x.es</span></a> &amp; adiós</p><p>dos<br>líneas</p>')
    'Hola https://x.es & adiós\n\ndos\nlíneas'
    """
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    text = _SPACES.sub(" ", "".join(collector.parts))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()
