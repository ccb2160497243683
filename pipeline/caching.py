"""A bounded memo for pure functions of a mention's text.

Retweets and copy-pastes repeat a text moments after it was first seen, so the stages keep
the results of the newest texts (language guesses, brand verdicts) and look them up first.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V]):
    """A dict that keeps only its newest ``size`` entries, oldest first out (0 keeps none).

    A plain dict underneath, so a lookup is ``dict.get`` at C speed.

    >>> cache = BoundedCache[str, int](2)
    >>> [cache.remember(key, value) for key, value in (("a", 1), ("b", 2), ("c", 3))]
    [1, 2, 3]
    >>> sorted(cache)
    ['b', 'c']
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` (evicting the oldest entry if full); return it."""
        if self.size > 0:
            if len(self) >= self.size:
                del self[next(iter(self))]
            self[key] = value
        return value
