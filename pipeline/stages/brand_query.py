"""The listening-query language: its syntax tree and a parser with pointed errors.

The language is the one listening teams know from the big suites::

    ("acme mobile" OR acmemobile OR #acme OR @acme_es) AND NOT (roadrunner OR "wile e")
    telef* NEAR/3 (caro OR cara OR fraude)
    acme NEAR/2f phone           # NEAR/nf: in this order

- words match whole words (and the body of a hashtag: ``acme`` matches ``#acme``);
- ``"quoted phrases"`` match consecutive words;
- a trailing ``*`` matches any word starting with the prefix (``telef*``);
- ``#tag`` matches only that hashtag, ``@handle`` only that handle;
- ``AND`` / ``OR`` / ``NOT`` (upper case), parentheses; juxtaposition means AND;
- ``A NEAR/n B``: some match of A and some match of B at most n words apart.

Terms are folded (:func:`pipeline.text.tokenize`) as they are parsed, so the tree holds what
the matcher (:mod:`pipeline.stages.brands`) looks for in a folded token stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipeline.text import tokenize


class QuerySyntaxError(ValueError):
    """A query that does not parse; ``position`` is the 0-based character offset."""

    def __init__(self, message: str, query: str, position: int) -> None:
        pointer = f"{query}\n{' ' * position}^"
        super().__init__(f"{message} at position {position}:\n{pointer}")
        self.message = message
        self.query = query
        self.position = position


@dataclass(frozen=True, slots=True)
class Term:
    """A leaf: a word, phrase, prefix wildcard, hashtag or handle (already folded)."""

    words: tuple[str, ...]
    prefix: bool = False

    def describe(self) -> str:
        """The term as it would be written in a query."""
        body = " ".join(self.words)
        if len(self.words) > 1:
            return f'"{body}"'
        return body + ("*" if self.prefix else "")


@dataclass(frozen=True, slots=True)
class And:
    """Every operand matches."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one operand matches."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The operand does not match."""

    operand: Node


@dataclass(frozen=True, slots=True)
class Near:
    """Both operands match within ``distance`` words (in order when ``ordered``)."""

    left: Node
    right: Node
    distance: int
    ordered: bool


Node = Term | And | Or | Not | Near

_LEXEME = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))|
        (?P<phrase>"[^"]*"?)|
        (?P<near>NEAR/(?P<distance>\d+)(?P<ordered>f)?)(?=[\s("]|$)|
        (?P<op>AND|OR|NOT)(?=[\s("]|$)|
        (?P<word>[^\s()"]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: Literal["lparen", "rparen", "phrase", "near", "op", "word", "end"]
    text: str
    position: int
    distance: int = 0
    ordered: bool = False


def _lex(query: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    position = 0
    while position < len(query):
        if query[position:].strip() == "":
            break
        found = _LEXEME.match(query, position)
        if found is None or found.end() == position:
            raise QuerySyntaxError("unexpected character", query, position)
        kind = found.lastgroup
        start = found.start(kind) if kind else position
        if kind in ("distance", "ordered"):
            kind = "near"
        if kind == "near":
            start = found.start("near")
            lexemes.append(_Lexeme(
                "near", found.group("near"), start,
                distance=int(found.group("distance")), ordered=bool(found.group("ordered")),
            ))
        elif kind == "phrase":
            text = found.group("phrase")
            if len(text) < 2 or not text.endswith('"'):
                raise QuerySyntaxError("unterminated quoted phrase", query, start)
            lexemes.append(_Lexeme("phrase", text[1:-1], start))
        elif kind == "lparen":
            lexemes.append(_Lexeme("lparen", "(", start))
        elif kind == "rparen":
            lexemes.append(_Lexeme("rparen", ")", start))
        elif kind == "op":
            lexemes.append(_Lexeme("op", found.group("op"), start))
        elif kind == "word":
            lexemes.append(_Lexeme("word", found.group("word"), start))
        position = found.end()
    lexemes.append(_Lexeme("end", "", len(query)))
    return lexemes


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND? not)*; not := NOT not | near."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.lexemes = _lex(query)
        self.index = 0

    @property
    def current(self) -> _Lexeme:
        return self.lexemes[self.index]

    def _advance(self) -> _Lexeme:
        lexeme = self.lexemes[self.index]
        self.index += 1
        return lexeme

    def _error(self, message: str, lexeme: _Lexeme | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.query, (lexeme or self.current).position)

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise self._error("empty query")
        node = self._or()
        if self.current.kind != "end":
            raise self._error(f"unexpected {self.current.text!r}")
        return node

    def _or(self) -> Node:
        operands = [self._and()]
        while self.current.kind == "op" and self.current.text == "OR":
            self._advance()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Node:
        operands = [self._not()]
        while True:
            lexeme = self.current
            if lexeme.kind == "op" and lexeme.text == "AND":
                self._advance()
                operands.append(self._not())
            elif lexeme.kind in ("word", "phrase", "lparen") or (
                lexeme.kind == "op" and lexeme.text == "NOT"
            ):
                operands.append(self._not())
            else:
                break
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _not(self) -> Node:
        if self.current.kind == "op" and self.current.text == "NOT":
            self._advance()
            return Not(self._not())
        return self._near()

    def _near(self) -> Node:
        left = self._primary()
        while self.current.kind == "near":
            operator = self._advance()
            right_start = self.current
            right = self._primary()
            for side, where in ((left, operator), (right, right_start)):
                if not _is_positional(side):
                    raise self._error(
                        "NEAR takes terms, phrases or OR-groups of them", where
                    )
            left = Near(left, right, operator.distance, operator.ordered)
        return left

    def _primary(self) -> Node:
        lexeme = self.current
        if lexeme.kind == "lparen":
            self._advance()
            if self.current.kind == "rparen":
                raise self._error("empty parentheses")
            node = self._or()
            if self.current.kind != "rparen":
                raise self._error("missing closing parenthesis", lexeme)
            self._advance()
            return node
        if lexeme.kind == "word":
            self._advance()
            return self._word_term(lexeme)
        if lexeme.kind == "phrase":
            self._advance()
            words = tuple(tokenize(lexeme.text))
            if not words:
                raise self._error("empty quoted phrase", lexeme)
            return Term(words)
        if lexeme.kind == "end":
            raise self._error("query ends where a term was expected")
        raise self._error(f"expected a term, found {lexeme.text!r}")

    def _word_term(self, lexeme: _Lexeme) -> Term:
        text = lexeme.text
        prefix = text.endswith("*")
        body = text[:-1] if prefix else text
        if "*" in body:
            raise self._error("a wildcard * is only allowed at the end of a word", lexeme)
        tokens = tokenize(body)
        if not tokens:
            raise self._error(f"{text!r} has no letters or digits", lexeme)
        if prefix and len(tokens[-1].lstrip("#@")) < 2:
            raise self._error("a wildcard needs at least two letters before *", lexeme)
        if len(tokens) > 1 and not prefix:
            # "e-commerce" or "at&t": written as one word, matched as the phrase of its parts
            return Term(tuple(tokens))
        if len(tokens) > 1:
            raise self._error("a wildcard term must be a single word", lexeme)
        return Term((tokens[0],), prefix=prefix)


def _is_positional(node: Node) -> bool:
    if isinstance(node, Term):
        return True
    if isinstance(node, Or):
        return all(_is_positional(operand) for operand in node.operands)
    return False


def parse_query(query: str) -> Node:
    """Parse a listening query into its syntax tree, or raise :class:`QuerySyntaxError`.

    >>> parse_query('acme AND NOT "road runner"')
    And(operands=(Term(words=('acme',), prefix=False), Not(operand=Term(words=('road', \
'runner'), prefix=False))))
    """
    node = _Parser(query).parse()
    if not _has_positive_term(node):
        raise QuerySyntaxError("a query needs at least one term that is not negated", query, 0)
    return node


def _has_positive_term(node: Node) -> bool:
    if isinstance(node, Term):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, Near):
        return True
    if isinstance(node, And):
        return any(_has_positive_term(operand) for operand in node.operands)
    return all(_has_positive_term(operand) for operand in node.operands)


def iter_terms(node: Node) -> Iterable[Term]:
    """Every leaf term of a syntax tree."""
    if isinstance(node, Term):
        yield node
    elif isinstance(node, Not):
        yield from iter_terms(node.operand)
    elif isinstance(node, Near):
        yield from iter_terms(node.left)
        yield from iter_terms(node.right)
    else:
        for operand in node.operands:
            yield from iter_terms(operand)


def positive_terms(node: Node) -> Iterable[Term]:
    """Terms whose presence can make the query true (not under a NOT)."""
    if isinstance(node, Term):
        yield node
    elif isinstance(node, Near):
        yield from iter_terms(node)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            yield from positive_terms(operand)

