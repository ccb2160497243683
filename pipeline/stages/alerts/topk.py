"""Weighted space-saving top-k sketch: the heavy hitters of a stream in fixed memory.

The algorithm is Metwally, Agrawal and El Abbadi's (2005), with weights. The incident context
(:mod:`pipeline.stages.alerts.context`) counts terms, hashtags, languages and voices with it.
"""

from __future__ import annotations


class TopK:
    """Weighted space-saving heavy hitters: at most ``capacity`` keys, whatever the stream.

    A new key that finds the sketch full replaces the lightest key and inherits its weight,
    so a heavy key is never lost and a reported weight overestimates by at most the weight of
    the lightest key. Report fewer keys than ``capacity`` for accurate ranks.

    >>> top = TopK(2)
    >>> for word in ["leak", "leak", "fire", "price", "leak"]:
    ...     _ = top.add(word)
    >>> top.top(1)
    [('leak', 3.0)]
    """

    __slots__ = ("capacity", "weights")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.weights: dict[str, float] = {}

    def add(self, key: str, weight: float = 1.0) -> str | None:
        """Count ``key`` with ``weight``; return the key it evicted, if any."""
        weights = self.weights
        if key in weights:
            weights[key] += weight
            return None
        if len(weights) < self.capacity:
            weights[key] = weight
            return None
        victim = min(weights, key=weights.__getitem__)
        floor = weights.pop(victim)
        weights[key] = floor + weight
        return victim

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` heaviest keys, heaviest first (ties by key, for stable output)."""
        ranked = sorted(self.weights.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:n]

    def merge(self, other: TopK) -> None:
        """Add ``other``'s weights into this sketch, keeping the ``capacity`` heaviest."""
        for key, weight in other.weights.items():
            self.weights[key] = self.weights.get(key, 0.0) + weight
        if len(self.weights) > self.capacity:
            self.weights = dict(self.top(self.capacity))

    def total(self) -> float:
        """Sum of the weights held (all weight ever added, as evictions pass it on)."""
        return sum(self.weights.values())


__all__ = [
    "TopK",
]
