from pipeline.caching import BoundedCache


def test_a_full_cache_forgets_its_oldest_entries_first() -> None:
    cache = BoundedCache[int, str](1_000)
    for key in range(5_000):
        cache.remember(key, str(key))
        assert len(cache) == min(key + 1, 1_000)
    assert list(cache) == list(range(4_000, 5_000))
    assert cache[4_321] == "4321"


def test_remembering_a_held_key_updates_it_and_evicts_nothing() -> None:
    cache = BoundedCache[str, int](2)
    cache.remember("a", 1)
    cache.remember("b", 2)
    assert cache.remember("a", 10) == 10
    assert dict(cache) == {"a": 10, "b": 2}
    cache.remember("c", 3)  # "a" is still the oldest entry
    assert dict(cache) == {"b": 2, "c": 3}


def test_a_cache_of_size_zero_keeps_nothing_but_returns_the_value() -> None:
    cache = BoundedCache[str, int](0)
    assert cache.remember("a", 1) == 1
    assert not cache
