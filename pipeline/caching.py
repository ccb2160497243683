"""A bounded memo for pure functions of a mention's text.

Retweets and copy-pastes repeat a text moments after it was first seen, so the stages keep
the results of the newest texts (language guesses, brand verdicts) and look them up first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(OrderedDict[K, V]):
    """A dict that keeps only its newest ``size`` entries, oldest first out (0 keeps none).

    An ``OrderedDict``, not a plain dict: both look up at C speed, but a plain dict evicts
    its oldest key by ``next(iter(d))``, which walks over the slots every earlier deletion
    left empty at the front until the next resize: once a large cache is full, that walk
    comes with every new text (measured: see benchmarks/README.md).

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
        """Store ``value`` under ``key`` (evicting the oldest entry if full); return it.

        A key already held keeps its place in the eviction order.
        """
        if self.size > 0:
            if len(self) >= self.size and key not in self:
                self.popitem(last=False)
            self[key] = value
        return value
