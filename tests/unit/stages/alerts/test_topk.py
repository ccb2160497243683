from __future__ import annotations

from pipeline.stages.alerts.topk import TopK


def test_topk_finds_heavy_hitters_in_a_long_tail() -> None:
    top = TopK(10)
    for i in range(2000):
        top.add(f"tail{i}")
        if i % 4 == 0:
            top.add("leak")
        if i % 8 == 0:
            top.add("fire", 1.0)
    assert len(top.weights) == 10
    assert [key for key, _ in top.top(2)] == ["leak", "fire"]
    # space-saving overestimates by at most the lightest weight, never underestimates
    assert top.weights["leak"] >= 500
