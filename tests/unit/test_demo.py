"""The demo's feed rate: what one worker keeps up with where the sentiment model runs."""

from pipeline.config import load_settings
from pipeline.demo import CPU_SENTIMENT_RATE_PER_S, RATE_PER_S, default_rate


def test_sentiment_on_a_cpu_slows_the_feed() -> None:
    assert default_rate(load_settings(sentiment_device="cpu")) == CPU_SENTIMENT_RATE_PER_S
    assert CPU_SENTIMENT_RATE_PER_S < RATE_PER_S


def test_a_gpu_or_no_sentiment_stage_keeps_the_full_rate() -> None:
    assert default_rate(load_settings(sentiment_device="cuda:1")) == RATE_PER_S
    assert default_rate(load_settings(stages=["ingest", "dedup", "crisis"])) == RATE_PER_S
