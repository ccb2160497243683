"""What a mention contributes to an incident's context: its terms, and whether it is negative.

:func:`mention_terms` folds a text into content words and hashtags, without handles, URLs,
elided articles or the function words of the pipeline's languages; the store and the desk
use it too, so that their terms are the ones the alerts count.
"""

from __future__ import annotations

import re
from typing import Final

from pipeline.records import ScoredMention, Sentiment
from pipeline.stages.sentiment.labels import sentiment_toward
from pipeline.text import tokenize

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
# French and Italian elisions ("l'appareil", "dell'app") would otherwise be separate terms
_ELISION = re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|un|dell|all|nell|sull|dall)'")
# Function words of the pipeline's languages that would otherwise top every term list.
_STOPWORD_TEXT = """
    the and for are but not you all any can her was one our out has have had this that with
    they them their there what when who will would from your about just like been were into
    than then its it's i'm dont don't get got why how more very too also only really still
    les des une est pas que qui pour dans sur par avec mais plus vous nous ils elle sont
    ont aux ses son sa leur tout tous cette ces comme fait être etre avoir été ete
    los las una por con para del que como pero más mas muy sus este esta esto son hay fue
    ser está esta todo todos nos les ese eso ya
    uma com por para dos das não nao mais muito seu sua isso esse essa está esta são sao foi
    tem ter pra
    der die das und ist nicht mit den dem des ein eine einen auf für fur sich auch noch wie
    von zu wir ihr sie sind war hat haben aber oder kein keine mehr schon nur
    che non per una con del della dei gli le sono questo questa come più piu anche nel alla
    hanno suo sua perché perche gia già tutto
    rt via amp
"""
_STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())


def is_negative(mention: ScoredMention, brand: str | None = None) -> bool:
    """True when the sentiment stage labelled the mention negative (toward ``brand``).

    A mention naming several brands carries a label per brand (``sentiment_by_brand``).
    """
    sentiment = (mention.sentiment if brand is None else sentiment_toward(mention, brand))
    return isinstance(sentiment, Sentiment) and sentiment.label == "negative"


def mention_terms(text: str) -> tuple[set[str], set[str]]:
    """Content words and hashtags of a text (folded, each once); handles and URLs left out."""
    terms: set[str] = set()
    hashtags: set[str] = set()
    for token in tokenize(_URL.sub(" ", text)):
        if token.startswith("#"):
            if len(token) > 2:
                hashtags.add(token)
            continue
        if token.startswith("@"):
            continue
        word = _ELISION.sub("", token)
        if len(word) >= 3 and not word.isdigit() and word not in _STOPWORDS:
            terms.add(word)
    return terms, hashtags


__all__ = [
    "is_negative",
    "mention_terms",
]
