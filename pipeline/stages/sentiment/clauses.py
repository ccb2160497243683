"""Clauses of a mention and the comparative cues between the brands it names.

Pure text work for :mod:`~pipeline.stages.sentiment.targets`:

- :func:`split_clauses` cuts a text where its tone may change: sentence punctuation, commas,
  a run of emoji, and before the contrastive connectors of the mention's language ("pero",
  "mientras que", "en cambio", "but", "whereas", "mais", "invece", "aber"...);
- :func:`find_cues` reads a clause in which several brands are named, each replaced by a
  placeholder (:func:`placeholder`), for the patterns that say which brand comes out ahead:
  "X mejor que Y", "me pasé de X a Y", "switched from X to Y", "X > Y", "X aprende de Y"
  (:data:`AHEAD`), or a comparative whose direction the model's score of X's side decides
  ("Skyra más barata que Lumo", "X is cheaper than Y": :data:`BY_SCORE`);
- :func:`asks_or_plans` tells a question or a plan, where a brand is named without an opinion
  of it, and :func:`names_together` the words that give every brand named the same fate
  ("both", "todos", "ninguno"...).

Cues are matched on folded text (:func:`pipeline.text.fold`): no case, no accents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Contrastive connectors, by language; a clause starts at each. Words that are also common
# elsewhere stay out ("mas" is Spanish "más" typed fast, not Portuguese "but").
_CONNECTORS: Final[dict[str, tuple[str, ...]]] = {
    "es": ("pero", "mientras que", "mientras", "en cambio", "sin embargo", "aunque", "sino"),
    "en": ("but", "whereas", "while", "however", "though", "although", "on the other hand",
           "unlike"),
    "pt": ("mas", "enquanto", "porem", "no entanto", "ja a", "ja o"),
    "fr": ("mais", "alors que", "tandis que", "par contre", "en revanche", "pourtant"),
    "it": ("ma", "mentre", "invece", "pero", "tuttavia"),
    "de": ("aber", "wahrend", "doch", "jedoch", "dagegen"),
}
# a mention whose language is unknown (or another one) is cut at Spanish and English ones
_DEFAULT_LANGS: Final = ("es", "en")

# a clause ends after sentence punctuation, a comma or a run of emoji followed by a space
_BOUNDARY: Final = re.compile(
    r"(?<=[.!?;:\u2026,])\s+|\n+|(?<=[\u2600-\u27bf\U0001f300-\U0001faff])\s+")

_CUT_BY_LANG: dict[str, re.Pattern[str]] = {}


def _connector_pattern(lang: str | None) -> re.Pattern[str]:
    key = lang if lang in _CONNECTORS else ""
    pattern = _CUT_BY_LANG.get(key)
    if pattern is None:
        words = _CONNECTORS[key] if key else tuple(
            word for code in _DEFAULT_LANGS for word in _CONNECTORS[code])
        alternatives = "|".join(sorted((re.escape(w) for w in set(words)), key=len, reverse=True))
        # the text is cut just before the connector; accents are optional in what people type
        pattern = re.compile(rf"\s+(?=(?:{alternatives})\b)", re.IGNORECASE)
        _CUT_BY_LANG[key] = pattern
    return pattern


def split_clauses(text: str, lang: str | None = None) -> list[str]:
    """The clauses of ``text``, in order, without empty ones.

    >>> split_clauses("Telvia se cayó. Menos mal que tengo Acme, pero caro", "es")
    ['Telvia se cayó.', 'Menos mal que tengo Acme,', 'pero caro']
    >>> split_clauses("Skyra 🤮 Lumo Air 😍")
    ['Skyra 🤮', 'Lumo Air 😍']
    """
    connectors = _connector_pattern(lang)
    clauses: list[str] = []
    for sentence in _BOUNDARY.split(text):
        clauses.extend(part.strip() for part in connectors.split(sentence) if part.strip())
    return clauses


def placeholder(index: int) -> str:
    """What stands for the ``index``-th brand of a mention in a clause :func:`find_cues` reads."""
    return f"\x01{index}\x02"


# X and Y: two brand placeholders, and what may lie between a cue word and a brand
_X: Final = r"\x01(?P<x>\d+)\x02"
_Y: Final = r"\x01(?P<y>\d+)\x02"
_GAP: Final = r"[^\x01]{0,40}?"
_SHORT: Final = r"[^\x01]{0,12}?"
_ARTICLE: Final = r"(?:(?:la|el|los|las|the|a|o|le|les|lo|il|der|die|das|zu)\s+)?"


def _cue(pattern: str) -> re.Pattern[str]:
    # a space in a pattern stands for any run of white space
    return re.compile(pattern.replace(" ", r"\s+"))


_BETTER: Final = (r"(?:mejor|mejores|superior|better|best|melhor|meilleur|meilleure|mieux|"
                  r"meglio|migliore|besser)")
_WORSE: Final = (r"(?:peor|peores|inferior|worse|worst|pior|pire|peggio|peggiore|schlechter)")
_THAN: Final = r"(?:que|than|do que|di|als|a|al|que a|que el|que la)"
_FROM: Final = r"(?:de|desde|from|da|do|von|du|de la)"
_TO: Final = r"(?:a|al|to|para|pela|pelo|a la|ad|zu|zur|zum|a|por|for|pour|per|fur)"
_LEFT: Final = (r"(?:deje|dejo|dejamos|cambie|cambiamos|left|leave|leaving|dumped|ditched|"
                r"swapped|traded|troquei|troco|deixei|quitte|lasciato|lascio)")
_SWITCHED: Final = (r"(?:pase|pasamos|paso|cambie|cambiado|cambio|me voy|nos vamos|mudei|"
                    r"switched|switch|moved|moving|went|passe|passato|gewechselt|wechsel)")
_BEATS: Final = (r"(?:supera|superan|beats|beat|outperforms|runs circles around|"
                 r"les da mil vueltas|da mil vueltas)")
_LEARN: Final = (r"(?:aprende|aprended|aprendan|aprendam|aprenda|learn|learn a thing or two|"
                 r"take notes|tomad nota|toma nota|impara|lernt)")
_COMPARATIVE: Final = r"(?:mas|menos|more|less|plus|moins|piu|meno|mais|mehr|weniger|\w{3,}er)"

# Cues where X comes out ahead of Y (or behind it, for those in _BEHIND), whatever the scores.
AHEAD: Final[tuple[re.Pattern[str], ...]] = tuple(_cue(p) for p in (
    rf"{_X}{_GAP}\b{_BETTER}\b{_SHORT}\b{_THAN} {_ARTICLE}{_Y}",
    rf"{_X}{_GAP}\b{_BEATS}\b{_SHORT}{_Y}",
    rf"{_X}\s*>+\s*{_Y}",
    # "me pasé a Y desde X": Y's placeholder comes first, so X and Y swap names here
    rf"\b{_SWITCHED}\b{_SHORT}\b{_TO} {_ARTICLE}{_X}{_GAP}\b(?:desde|from|vindo da) {_ARTICLE}{_Y}",
))
BEHIND: Final[tuple[re.Pattern[str], ...]] = tuple(_cue(p) for p in (
    rf"{_X}{_GAP}\b{_WORSE}\b{_SHORT}\b{_THAN} {_ARTICLE}{_Y}",
    rf"{_X}\s*<+\s*{_Y}",
    rf"\b{_FROM} {_ARTICLE}{_X}{_SHORT}\b{_TO} {_ARTICLE}{_Y}",
    rf"\b{_LEFT}\b{_SHORT}{_X}{_SHORT}\b(?:por|for|pela|pelo|per|pour|fur) {_ARTICLE}{_Y}",
    rf"{_X}{_GAP}\b{_LEARN}\b{_SHORT}{_Y}",
    rf"\b(?:si|if|ojala|wish|se)\b{_SHORT}{_X}{_GAP}\b(?:como|as|que|like) {_ARTICLE}{_Y}",
))
# A comparative without its own direction: X's side (the text before "que"/"than") is scored,
# Y gets the opposite tone. The side ends at the group ``cut``.
BY_SCORE: Final[tuple[re.Pattern[str], ...]] = tuple(_cue(p) for p in (
    rf"{_X}{_GAP}\b{_COMPARATIVE}\b{_GAP}(?P<cut>\b(?:que|than|do que|di|als)) {_ARTICLE}{_Y}",
))


@dataclass(frozen=True, slots=True)
class Cue:
    """What a comparative says about two brands (their indices in the mention's brands).

    ``ahead`` comes out better than ``behind``. A cue found ``by_score`` has no direction of
    its own: ``ahead`` is X, ``behind`` is Y, and X's side (the clause up to ``cut``) is to be
    scored, Y taking the opposite tone.
    """

    ahead: int
    behind: int
    by_score: bool = False
    cut: int = 0


def find_cues(skeleton: str) -> list[Cue]:
    """Comparative cues in a folded clause whose brands are :func:`placeholder` marks.

    >>> find_cues(f"me pase de {placeholder(1)} a {placeholder(0)} y que diferencia")
    [Cue(ahead=0, behind=1, by_score=False, cut=0)]
    >>> find_cues(f"{placeholder(0)} mil veces mejor que {placeholder(1)}")
    [Cue(ahead=0, behind=1, by_score=False, cut=0)]
    >>> find_cues(f"{placeholder(0)} vs {placeholder(1)}")
    []
    """
    cues: list[Cue] = []
    for patterns, ahead_is_x in ((AHEAD, True), (BEHIND, False)):
        for pattern in patterns:
            for found in pattern.finditer(skeleton):
                x, y = int(found.group("x")), int(found.group("y"))
                if x != y:
                    cues.append(Cue(x, y) if ahead_is_x else Cue(y, x))
    if not cues:
        for pattern in BY_SCORE:
            for found in pattern.finditer(skeleton):
                x, y = int(found.group("x")), int(found.group("y"))
                if x != y:
                    cues.append(Cue(x, y, by_score=True, cut=found.start("cut")))
    return cues


# A question, or a plan not yet carried out: future-time words and "let's see" / "trying".
# "next" alone stays out ("came the next day" is a fact); "my next" and "next trip" are plans.
_OPEN: Final = re.compile(
    r"[?\u00bf]|\b(?:manana|proxim[oa]s?|la semana que viene|a ver|voy a probar|pienso probar|"
    r"pregunto|preguntare|tomorrow|my next|next (?:time|trip|flight|week|month|year)|"
    r"thinking (?:about|of)|trying|will try|gonna try|planning|let'?s see|we'?ll see|"
    r"amanha|vou experimentar|vamos ver|pensando em|demain|prochaine?s?|on verra|"
    r"je vais essayer|domani|prossim[oa]|vedremo|provero|morgen|nachsten?|mal sehen)\b")
# Words that put every brand named in the same boat: "both", "all of them", "none", "equal".
# "todos los días", "all morning", "the same day" speak of time or one brand: left out.
_TOGETHER: Final = re.compile(
    r"\b(?:ambos|ambas|los dos|las dos|tod[oa]s(?! (?:los|las|mis|tus)\b)|iguales|ninguno|"
    r"ninguna|both|(?:they|you|we) all|all of them|neither|none|os dois|as duas|"
    r"iguais|nenhum|nenhuma|les deux|tou(?:s|tes)(?! les\b)|aucun|aucune|pareils?|entrambi|"
    r"tutt[ie](?! (?:i|gli|le)\b)|nessuno|uguali|beide|alle|keiner)\b")


def asks_or_plans(folded: str) -> bool:
    """Whether folded text asks a question or states a plan (its brands get no opinion).

    >>> asks_or_plans("alguien sabe si skyra tiene plazas manana"), asks_or_plans("skyra fatal")
    (True, False)
    """
    return _OPEN.search(folded) is not None


def names_together(folded: str) -> bool:
    """Whether folded text speaks of all the brands it names at once ("todos iguales").

    >>> names_together("acme, telvia, zentel... todos te timan"), names_together("acme mola")
    (True, False)
    """
    return _TOGETHER.search(folded) is not None


__all__ = [
    "AHEAD",
    "BEHIND",
    "BY_SCORE",
    "Cue",
    "asks_or_plans",
    "find_cues",
    "names_together",
    "placeholder",
    "split_clauses",
]
