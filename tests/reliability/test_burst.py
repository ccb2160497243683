"""A burst of ten times the steady rate: worker memory stays bounded and the lag recovers.

One worker runs ingest, dedup and sentiment (the slowest stage on a CPU) at a steady rate it
keeps up with, then takes ten times that rate for 10 s (a minute with ``RELIABILITY_SOAK=1``).
The worker's peak resident memory (sampled VmRSS) in each phase and the time from the end of
the burst until every mention sent is scored and committed are printed; the figures are in
benchmarks/README.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from pipeline.config import Settings
from pipeline.stages.ingest import build_ingestor
from pipeline.transport.topics import decode_batch
from tests.integration.conftest import RunningWorker, consume_until
from tests.integration.polling import wait_until
from tests.integration.test_scaling import firehose, uncommitted
from tests.reliability.feeding import Feed, RssSampler, max_rss_mib

pytestmark = pytest.mark.integration

STEADY_PER_S = 40
# peak memory a burst may add to the worker's steady-state peak: a queue without bounds
# would take the whole backlog (a minute of burst is ~12k mentions, ~1 KB each decoded)
BURST_MEMORY_BUDGET_MIB = 256


def test_a_tenfold_burst_keeps_memory_bounded_and_the_lag_recovers(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker], soak: bool,
) -> None:
    settings = pipeline_settings
    worker = start_worker(settings, "ingest,dedup,sentiment")
    burst_s = 60 if soak else 10
    phases = [(STEADY_PER_S, 10), (10 * STEADY_PER_S, burst_s)]
    raws = firehose(seed=41, count=sum(rate * seconds for rate, seconds in phases))
    sent = 0
    sampler = RssSampler(worker.process.pid)
    sampler.start()
    peaks: list[float] = []
    for rate, seconds in phases:
        feed = Feed(settings, raws[sent:sent + rate * seconds], settings.topic("raw"),
                    rate_per_s=rate)
        feed.start()
        feed.join(timeout=seconds + 60)
        sent += feed.finish()
        peaks.append(sampler.take_peak())
    burst_over = time.monotonic()

    def caught_up() -> bool:
        return not any(uncommitted(settings.model_copy(
            update={"app_id": f"{settings.app_id}-ingest"}), settings.topic("raw")).values()
        ) and not any(uncommitted(settings, settings.topic("unique")).values())

    wait_until(caught_up, "the lag to recover after the burst", 600 if soak else 240)
    recovered_s = time.monotonic() - burst_over
    peaks[1] = max(peaks[1], sampler.take_peak())  # the drain after the burst counts too
    sampler.stop.set()
    high_water = max_rss_mib(worker.process.pid)
    expected = {m["id"] for m in build_ingestor(settings).process(raws[:sent]).mentions}
    scored = {m["id"] for record in consume_until(
        settings, settings.topic("scored"), lambda _: False, timeout_s=5)
        for m in decode_batch(record.value)}
    print(f"\nburst of {10 * STEADY_PER_S}/s for {burst_s}s: {sent} sent, {len(expected)} "
          f"valid; RSS peak {peaks[0]:.0f} MiB steady, {peaks[1]:.0f} MiB in the burst and "
          f"its drain (high-water mark {high_water:.0f} MiB, start-up included); lag "
          f"recovered {recovered_s:.1f}s after the burst's end")
    assert expected <= scored
    assert peaks[1] - peaks[0] <= BURST_MEMORY_BUDGET_MIB
    assert worker.process.poll() is None
