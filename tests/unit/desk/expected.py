"""What the desk should answer, computed in plain Python over the processed mentions.

Independent of the store's SQL and of its search folding, so a test compares two derivations.
"""

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

Mention = dict[str, Any]


def created_at(mention: Mention) -> datetime:
    return datetime.fromisoformat(mention["created_at"])


def newest_first(mentions: Iterable[Mention]) -> list[str]:
    """Ids by event time, newest first; a tie goes to the greater id (the store's order)."""
    ordered = sorted(mentions, key=lambda mention: (created_at(mention), mention["id"]),
                     reverse=True)
    return [mention["id"] for mention in ordered]


def plain(text: str) -> str:
    """Lower case without accents (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text: str) -> set[str]:
    return set(re.findall(r"[0-9a-z]+", plain(text)))


def ids(mentions: Iterable[Mention], keep: Callable[[Mention], bool]) -> set[str]:
    return {mention["id"] for mention in mentions if keep(mention)}


def in_period(mention: Mention, since: datetime, until: datetime) -> bool:
    return since <= created_at(mention) < until
