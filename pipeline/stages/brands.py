"""Brand stage core: the listened brands' rules, and a matcher for thousands of their queries.

Matching is accent- and case-insensitive ("Telefónica" = "telefonica"). Every term of every
query (:mod:`pipeline.stages.brand_query`) goes into one Aho-Corasick automaton over the
normalised token stream, so a mention is scanned once whatever the number of queries; only the
queries with at least one positive term hit are then checked against their boolean tree. A
retweet whose ``RT @handle:`` can start no term matches what the text it copies matches
(:meth:`BrandMatcher.retweeted`), which the ingest stage uses to tag retweets of texts it
already knows without a match.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ahocorasick
import yaml

from pipeline.caching import BoundedCache
from pipeline.stages.brand_query import (
    And,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Term,
    iter_terms,
    parse_query,
    positive_terms,
)
from pipeline.text import tokenize

# What a retweet puts before the text it copies.
_RETWEET_PREFIX = re.compile(r"RT @(\w+): ")

# --------------------------------------------------------------------------------------------
# Brand rules file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrandRule:
    """One listened brand: its query, optional languages and exclusion query."""

    id: str
    name: str
    query: str
    kind: Literal["brand", "competitor", "market"] = "brand"
    languages: frozenset[str] = frozenset()
    exclude: str | None = None
    min_crisis_volume: int | None = None
    # the brand's own accounts and its employees' handles (glob patterns): its inside voices
    accounts: tuple[str, ...] = ()
    employees: tuple[str, ...] = ()
    parsed: Node = field(init=False, repr=False, compare=False)
    parsed_exclude: Node | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parsed", parse_query(self.query))
        object.__setattr__(
            self, "parsed_exclude", parse_query(self.exclude) if self.exclude else None
        )


class BrandRulesError(ValueError):
    """A listening-queries file that cannot be loaded; the message says where and why."""


def load_brand_rules(path: Path) -> list[BrandRule]:
    """Load and validate a YAML listening-queries file (see pipeline/data/brands.example.yaml).

    Every query is parsed here, so a bad query stops the process at start-up with the brand,
    the position and a caret under the error.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise BrandRulesError(f"{path}: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("brands"), list):
        raise BrandRulesError(f"{path}: expected a mapping with a 'brands' list")
    return brand_rules_from_dicts(document["brands"], origin=str(path))


def brand_rules_from_dicts(entries: Sequence[Any], *, origin: str = "<rules>") -> list[BrandRule]:
    """Build and validate brand rules from plain dicts (the ``brands`` list of the file)."""
    rules: list[BrandRule] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{origin}: brand #{number}"
        if not isinstance(entry, dict):
            raise BrandRulesError(f"{where}: expected a mapping")
        unknown = set(entry) - {
            "id", "name", "query", "kind", "languages", "exclude", "min_crisis_volume",
            "accounts", "employees",
        }
        if unknown:
            raise BrandRulesError(f"{where}: unknown keys {sorted(unknown)}")
        brand_id = entry.get("id")
        if not isinstance(brand_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", brand_id):
            raise BrandRulesError(
                f"{where}: 'id' must be lower-case letters, digits, '_', '.', '-'"
            )
        if brand_id in seen:
            raise BrandRulesError(f"{where}: duplicate id {brand_id!r}")
        seen.add(brand_id)
        query = entry.get("query")
        if not isinstance(query, str):
            raise BrandRulesError(f"{where} ({brand_id}): 'query' must be a string")
        kind = entry.get("kind", "brand")
        if kind not in ("brand", "competitor", "market"):
            raise BrandRulesError(f"{where} ({brand_id}): kind must be brand|competitor|market")
        languages = entry.get("languages") or []
        if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
            raise BrandRulesError(f"{where} ({brand_id}): 'languages' must be a list of codes")
        min_volume = entry.get("min_crisis_volume")
        if min_volume is not None and (not isinstance(min_volume, int) or min_volume < 1):
            raise BrandRulesError(f"{where} ({brand_id}): min_crisis_volume must be >= 1")
        handles = {key: _handle_patterns(entry, key, f"{where} ({brand_id})")
                   for key in ("accounts", "employees")}
        try:
            rules.append(BrandRule(
                id=brand_id, name=str(entry.get("name", brand_id)), query=query, kind=kind,
                languages=frozenset(code.lower() for code in languages),
                exclude=entry.get("exclude"), min_crisis_volume=min_volume, **handles,
            ))
        except QuerySyntaxError as error:
            raise BrandRulesError(f"{where} ({brand_id}): {error}") from None
    return rules


def _handle_patterns(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A brand's ``accounts`` or ``employees``: handles or glob patterns (``acme_*``)."""
    patterns = entry.get(key) or []
    if not isinstance(patterns, list) or not all(
            isinstance(pattern, str) and pattern.strip().lstrip("@") for pattern in patterns):
        raise BrandRulesError(f"{where}: '{key}' must be a list of handles or patterns "
                              "(e.g. [acmemobile, '*_acme'])")
    return tuple(pattern.strip() for pattern in patterns)


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------

# A hit of one term: the token index where it starts and where it ends (inclusive).
Span = tuple[int, int]


# Whether a rule (or a part of it) holds, given the term spans of one text.
Predicate = Callable[[dict[int, list[Span]]], bool]


@dataclass(slots=True)
class _CompiledRule:
    rule: BrandRule
    matches: Predicate
    excluded: Predicate | None


class BrandMatcher:
    """Tag texts with every brand whose query matches.

    >>> matcher = BrandMatcher(brand_rules_from_dicts([
    ...     {"id": "telefonica", "query": 'telefonica OR "movistar plus"'}]))
    >>> matcher.match("¡Telefónica otra vez sin servicio!")
    ['telefonica']
    """

    def __init__(self, rules: Sequence[BrandRule], *, cache_size: int = 50_000) -> None:
        self.rules = list(rules)
        # verdicts of the last ``cache_size`` (text, language) pairs: a retweet is the text
        # it copies, and on the firehose most mentions are texts seen moments ago
        self._verdicts = BoundedCache[tuple[str, str | None], tuple[str, ...]](cache_size)
        self._term_ids: dict[Term, int] = {}
        self._compiled: list[_CompiledRule] = []
        # rule indices to check when a term hits (only positive terms trigger a check)
        self._triggers: dict[int, list[int]] = {}
        for rule_index, rule in enumerate(self.rules):
            trees = [rule.parsed] + ([rule.parsed_exclude] if rule.parsed_exclude else [])
            for tree in trees:
                for term in iter_terms(tree):
                    self._term_ids.setdefault(term, len(self._term_ids))
            for term in positive_terms(rule.parsed):
                triggered = self._triggers.setdefault(self._term_ids[term], [])
                if not triggered or triggered[-1] != rule_index:
                    triggered.append(rule_index)
            self._compiled.append(_CompiledRule(
                rule, _compile(rule.parsed, self._term_ids),
                None if rule.parsed_exclude is None
                else _compile(rule.parsed_exclude, self._term_ids),
            ))
        # each brand's positive terms: where a mention names the brand (see brand_spans)
        self._brand_terms = {
            rule.id: frozenset(self._term_ids[term] for term in positive_terms(rule.parsed))
            for rule in self.rules
        }
        # the tokens a term occurrence can start at: a pattern's first word, or a token that
        # begins with a one-word prefix pattern (see retweeted)
        self._first_words: frozenset[str] = frozenset()
        self._first_word_prefixes: tuple[str, ...] = ()
        self._automaton = self._build_automaton()

    def _build_automaton(self) -> Any:
        automaton = ahocorasick.Automaton()
        patterns: dict[str, list[tuple[int, int, bool]]] = {}
        for term, term_id in self._term_ids.items():
            # Patterns run over " tok tok tok " so a leading space anchors a word start and a
            # trailing space a word end; prefix terms simply leave the end open.
            variants = [term.words]
            first = term.words[0]
            if first[0] not in "#@":
                # a plain word also matches the same word used as a hashtag
                variants.append(("#" + first, *term.words[1:]))
            for words in variants:
                key = " " + " ".join(words) + ("" if term.prefix else " ")
                patterns.setdefault(key, []).append((term_id, len(words), term.prefix))
        first_words, one_word_prefixes = set(), set()
        for key in patterns:
            first_word, *others = key.split()
            if not others and not key.endswith(" "):
                one_word_prefixes.add(first_word)
            else:
                first_words.add(first_word)
        self._first_words = frozenset(first_words)
        self._first_word_prefixes = tuple(sorted(one_word_prefixes))
        for key, payload in patterns.items():
            automaton.add_word(key, (len(key), payload))
        if patterns:
            automaton.make_automaton()
        return automaton

    def term_spans(self, tokens: Sequence[str]) -> dict[int, list[Span]]:
        """Where each term occurs in a token sequence: term id -> [(first, last) token]."""
        if not self._term_ids or not tokens:
            return {}
        stream = " " + " ".join(tokens) + " "
        # token index of every character offset: starts[i] is where token i begins
        starts: list[int] = []
        offset = 1
        for token in tokens:
            starts.append(offset)
            offset += len(token) + 1
        spans: dict[int, list[Span]] = {}
        for end, (length, payload) in self._automaton.iter(stream):
            # the pattern's leading space sits just before the first matched token
            first = bisect_right(starts, end - length + 2) - 1
            for term_id, word_count, _prefix in payload:
                spans.setdefault(term_id, []).append((first, first + word_count - 1))
        return spans

    def brand_spans(self, tokens: Sequence[str], brands: Sequence[str]) -> dict[str, list[Span]]:
        """Where each of ``brands`` is named in a token sequence: brand -> its terms' spans.

        Only the positive terms of a brand's query count (an excluded word names no brand);
        a brand not named in ``tokens`` is absent.

        >>> matcher = BrandMatcher(brand_rules_from_dicts([
        ...     {"id": "acme", "query": '"acme mobile" OR @acme'},
        ...     {"id": "zeta", "query": "zeta"}]))
        >>> matcher.brand_spans(tokenize("Zeta > Acme Mobile, @acme"), ["acme", "zeta"])
        {'acme': [(1, 2), (3, 3)], 'zeta': [(0, 0)]}
        """
        spans = self.term_spans(tokens)
        named: dict[str, list[Span]] = {}
        for brand in brands:
            found = sorted(span for term_id in self._brand_terms.get(brand, ())
                           for span in spans.get(term_id, ()))
            if found:
                named[brand] = found
        return named

    def retweeted(self, text: str) -> str | None:
        """The text that ``text`` retweets, when the two match the same brands; else None.

        That is so when no term occurrence can start in the retweet's ``RT @handle:`` (in
        any language: the prefix then changes no rule's verdict). The prefix ends in a space,
        so the retweet's tokens are the prefix's followed by the copied text's; an occurrence
        starts at a token that a pattern's first word is (or, for a one-word prefix term,
        begins); so when neither prefix token is one, every occurrence lies in the copied
        text, one token later than in the copied text alone, and rules look at which terms
        occur and how far apart. The copied text's verdict then serves every retweet of it,
        for two set lookups instead of a match.

        >>> matcher = BrandMatcher(brand_rules_from_dicts([
        ...     {"id": "acme", "query": 'acme OR "@acme support"'}]))
        >>> matcher.retweeted("RT @ana: acme is down"), matcher.retweeted("RT @acme: down")
        ('acme is down', None)
        """
        prefix = _RETWEET_PREFIX.match(text)
        if prefix is None:
            return None
        handle = prefix.group(1)
        # an ASCII handle folds to its lower case, one token; others take the general path
        lead = ["rt", "@" + handle.lower()] if handle.isascii() else tokenize(prefix.group())
        for token in lead:
            if token in self._first_words or token.startswith(self._first_word_prefixes):
                return None
        return text[prefix.end():]

    def match(self, text: str, lang: str | None = None) -> list[str]:
        """Ids of the brands whose query matches ``text`` (and whose languages allow ``lang``)."""
        key = (text, lang)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts.remember(key, tuple(self._match(text, lang)))
        return list(verdict)

    def _match(self, text: str, lang: str | None) -> list[str]:
        spans = self.term_spans(tokenize(text))
        if not spans:
            return []
        candidates = sorted(
            {rule_index for term_id in spans for rule_index in self._triggers.get(term_id, ())}
        )
        matched: list[str] = []
        for rule_index in candidates:
            compiled = self._compiled[rule_index]
            rule = compiled.rule
            if rule.languages and lang is not None and lang not in rule.languages:
                continue
            if not compiled.matches(spans):
                continue
            if compiled.excluded is not None and compiled.excluded(spans):
                continue
            matched.append(rule.id)
        return matched


def _compile(node: Node, term_ids: dict[Term, int]) -> Predicate:
    """The query tree as nested closures over term ids.

    Built once per rule: matching a text then costs no ``isinstance`` dispatch and no
    hashing of ``Term`` objects (brand matching runs on every mention at ingest). An OR or
    AND of plain terms, the usual shape of a brand's aliases, is one set operation.
    """
    if isinstance(node, Term):
        term_id = term_ids[node]
        return lambda spans: term_id in spans
    if isinstance(node, Or | And):
        terms = [operand for operand in node.operands if isinstance(operand, Term)]
        if len(terms) == len(node.operands):
            ids = frozenset(term_ids[term] for term in terms)
            if isinstance(node, Or):
                return lambda spans: not ids.isdisjoint(spans)
            return lambda spans: all(term_id in spans for term_id in ids)
        parts = tuple(_compile(operand, term_ids) for operand in node.operands)
        if isinstance(node, Or):
            return lambda spans: any(part(spans) for part in parts)
        return lambda spans: all(part(spans) for part in parts)
    if isinstance(node, Not):
        inner = _compile(node.operand, term_ids)
        return lambda spans: not inner(spans)
    left = _span_ids(node.left, term_ids)
    right = _span_ids(node.right, term_ids)
    distance, ordered = node.distance, node.ordered

    def near(spans: dict[int, list[Span]]) -> bool:
        lefts = [span for term_id in left for span in spans.get(term_id, ())]
        rights = [span for term_id in right for span in spans.get(term_id, ())]
        for left_first, left_last in lefts:
            for right_first, right_last in rights:
                if right_first > left_last:
                    gap = right_first - left_last
                elif ordered:
                    continue
                else:
                    gap = left_first - right_last
                if 0 < gap <= distance:
                    return True
        return False

    return near


def _span_ids(node: Node, term_ids: dict[Term, int]) -> tuple[int, ...]:
    """Term ids whose spans a NEAR operand stands for (a term, or an OR of terms)."""
    if isinstance(node, Term):
        return (term_ids[node],)
    if isinstance(node, Or):
        return tuple(term_id for operand in node.operands
                     for term_id in _span_ids(operand, term_ids))
    raise TypeError(f"{type(node).__name__} has no positions")  # the parser forbids this
