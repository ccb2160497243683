"""The crisis stage on the generated firehose: minutes to the first alert, false alerts.

    .venv/bin/python -m benchmarks.crisis [--rates 400,120] [--quiet-days 7] [--seeds 7,8,9]

The synthetic firehose of ``mentions demo`` (:class:`FirehoseGenerator` at the demo's event
rates: ``--rates`` mentions per wall second at the demo's 2400x event time, 400 on a GPU and
120 on a CPU; 400 is 10 mentions per event minute over all brands) goes through the
ingest core (validation, language, brand rules) and, with the sentiment each mention was
written with (the generator's ground truth, so the sentiment model's errors are not
counted here), into the crisis stage core (:class:`PartitionMonitor`, the worker's
configuration: 5-minute windows, 2 minutes' lateness, the example brand rules), in
micro-batches as ``mentions.scored`` carries them. Three runs per detector configuration:

- the demo's injected crisis (acme-mobile, 30 event-hours in, 2 hours, intensity 3): event
  minutes from its start to the end of the window that opened the first alert about it, and
  to the event time at which that alert was sent (the window closed, lateness included);
- the same firehose without a crisis for a warm-up day plus ``--quiet-days``: every alert
  opened is a false one;
- the crisis of the unit and integration tests (``tests/crisis_scenario.py``).

The configurations shipped before issue #30 and after its first round run beside the shipped
one, as baselines, with a variant of the shipped one (:data:`CONFIGURATIONS`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from benchmarks.common import write_results
from pipeline.config import Settings
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator
from pipeline.demo import CPU_SENTIMENT_RATE_PER_S, HISTORY, RATE_PER_S, DemoOptions
from pipeline.records import SCORED, ScoredMention, Sentiment
from pipeline.stages.alerts.record import OPENED, Alert
from pipeline.stages.brands import load_brand_rules
from pipeline.stages.crisis import CrisisConfig, PartitionMonitor
from pipeline.stages.crisis_partitions import crisis_config
from pipeline.stages.ingest import Ingestor, build_ingestor
from pipeline.stages.spikes import SpikeConfig
from tests import crisis_scenario

START = datetime(2026, 3, 2, tzinfo=UTC)
WARM_UP = timedelta(days=1)
# a micro-batch record on mentions.scored: at most this many mentions, this much event time
# (the stage's watermark moves once per record, so a record spanning minutes of event time
# would delay alerts that a real stream sends as soon as the window closes)
BATCH = 200
BATCH_SPAN = timedelta(seconds=10)
# the configuration shipped before issue #30 (commit fba572f), and the one after its first
# round (commit c73daf3): a single rise average of that span, the typical-peak floor at 3
BEFORE_30 = SpikeConfig(rise_memories=(timedelta(minutes=30),), min_daily_peak=3.0,
                        alert_ratio=1.5)
PREVIOUS = SpikeConfig(rise_memories=(timedelta(hours=1),), min_daily_peak=3.0, alert_ratio=1.8)
CONFIGURATIONS = {
    "before #30 (fba572f)": BEFORE_30,
    "previous (c73daf3)": PREVIOUS,
    "shipped": SpikeConfig(),
    # residual clipping is the one mechanism the NAB ablation barely tells from its absence
    "shipped, residual clipping off": SpikeConfig(clip_z=math.inf),
}


@dataclass(slots=True)
class Run:
    """The alerts opened in one run, and when (event time) each was sent."""

    opened: list[tuple[Alert, datetime]] = field(default_factory=list)
    mentions: int = 0

    def first(self, brand: str, after: datetime) -> tuple[Alert, datetime] | None:
        """The first alert opened about ``brand`` for a window ending after ``after``."""
        return next(((a, sent) for a, sent in self.opened
                     if a.brand == brand and a.window_end > after), None)


def scored(firehose: Iterable[tuple[dict[str, Any], str]], ingestor: Ingestor,
           until: datetime) -> Iterator[list[ScoredMention]]:
    """Micro-batches of scored mentions: ingested, with the sentiment they were written with."""
    batch: list[tuple[dict[str, Any], str]] = []
    opened_at = until
    for record, label in firehose:
        created_at = datetime.fromisoformat(record["created_at"])
        if batch and (len(batch) == BATCH or created_at - opened_at >= BATCH_SPAN):
            yield _ingest(batch, ingestor)
            batch = []
        if created_at >= until:
            break
        if not batch:
            opened_at = created_at
        batch.append((record, label))
    if batch:
        yield _ingest(batch, ingestor)


def _ingest(batch: list[tuple[dict[str, Any], str]], ingestor: Ingestor) -> list[ScoredMention]:
    outcome = ingestor.process_encoded([orjson.dumps(record) for record, _ in batch])
    if outcome.rejects:
        raise ValueError(f"the generator wrote mentions ingest refuses: {outcome.rejects[:3]}")
    labels = {record["id"]: label for record, label in batch}
    enriched = [SCORED.from_dict(orjson.loads(mention.encoded)) for mention in outcome.tagged]
    for record in enriched:
        record.sentiment = Sentiment(labels[record.id], {})
    return enriched


def monitor(batches: Iterable[list[ScoredMention]], config: CrisisConfig) -> Run:
    """Feed micro-batches to one partition's crisis core (every brand); collect openings."""
    partition = PartitionMonitor(config)
    run = Run()
    for offset, batch in enumerate(batches):
        run.mentions += len(batch)
        result = partition.apply(offset, batch)
        assert partition.watermark is not None
        run.opened.extend((a, partition.watermark) for a in result.alerts if a.status == OPENED)
    return run


def minutes(delta: timedelta) -> float:
    """A duration in minutes, rounded to a tenth."""
    return round(delta.total_seconds() / 60.0, 1)


def firehose_run(config: CrisisConfig, ingestor: Ingestor, *, seed: int, rate_per_s: float,
                 crisis: CrisisPlan | None, until: datetime) -> Run:
    generator = FirehoseGenerator(seed=seed, start=START, rate_per_s=rate_per_s, crisis=crisis)
    return monitor(scored(generator.labelled_mentions(), ingestor, until), config)


def crisis_figures(run: Run, plan: CrisisPlan) -> dict[str, Any]:
    """Time to the first alert about the crisis brand, and the alerts that were false."""
    began = START + plan.start_after
    first = run.first(plan.brand_id, began)
    false = [(a, sent) for a, sent in run.opened
             if a.brand != plan.brand_id or a.window_end <= began]
    return {
        "mentions": run.mentions,
        "first_alert": None if first is None else {
            "kind": first[0].kind, "severity": first[0].severity.name.lower(),
            "window_end_minutes": minutes(first[0].window_end - began),
            "sent_minutes": minutes(first[1] - began),
        },
        "false_alerts": [f"{a.brand} {a.kind} {a.window_end.isoformat()}" for a, _ in false],
    }


def scenario_figures(config: CrisisConfig) -> dict[str, Any]:
    """The unit tests' crisis: minutes from its start to the first alert's window end."""
    brand_config = replace(config, incidents=replace(
        config.incidents, brand_min_negative={crisis_scenario.BRAND: 15}))
    run = monitor(crisis_scenario.typed_windows(), brand_config)
    first = run.first(crisis_scenario.BRAND, crisis_scenario.CRISIS_START)
    return {"window_end_minutes": None if first is None
            else minutes(first[0].window_end - crisis_scenario.CRISIS_START),
            "alerts_opened": len(run.opened)}


def measure(config: CrisisConfig, ingestor: Ingestor, *, seed: int, rate_per_s: float,
            plan: CrisisPlan, quiet_days: float) -> dict[str, Any]:
    """The demo crisis and the quiet week for one configuration, seed and rate."""
    crisis_until = START + plan.start_after + plan.duration + timedelta(hours=1)
    crisis = crisis_figures(firehose_run(config, ingestor, seed=seed, rate_per_s=rate_per_s,
                                         crisis=plan, until=crisis_until), plan)
    quiet = firehose_run(config, ingestor, seed=seed, rate_per_s=rate_per_s, crisis=None,
                         until=START + WARM_UP + timedelta(days=quiet_days))
    return {"crisis": crisis, "quiet": {"mentions": quiet.mentions, "false_alerts": [
        f"{a.brand} {a.kind} {a.window_end.isoformat()}" for a, _ in quiet.opened]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default=f"{RATE_PER_S:g},{CPU_SENTIMENT_RATE_PER_S:g}",
                        help="the demo's feed rates, mentions per wall second, comma-separated")
    parser.add_argument("--quiet-days", type=float, default=7.0)
    parser.add_argument("--seeds", default="7,8,9", help="comma-separated firehose seeds")
    args = parser.parse_args()
    time_scale = DemoOptions().time_scale
    rates = [float(r) for r in args.rates.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = Settings()
    ingestor = build_ingestor(settings)
    base = crisis_config(settings, load_brand_rules(settings.brands_file))
    plan = CrisisPlan(brand_id="acme-mobile", start_after=HISTORY, duration=timedelta(hours=2),
                      intensity=3.0)
    results: dict[str, Any] = {}
    for name, detector in CONFIGURATIONS.items():
        config = replace(base, detector=detector)
        by_rate: dict[str, Any] = {}
        for rate in rates:
            by_seed: dict[str, Any] = {}
            for seed in seeds:
                figures = measure(config, ingestor, seed=seed, rate_per_s=rate / time_scale,
                                  plan=plan, quiet_days=args.quiet_days)
                by_seed[str(seed)] = figures
                first = figures["crisis"]["first_alert"]
                quiet = figures["quiet"]
                print(f"{name:32s} rate {rate:g} seed {seed}: first alert "
                      + ("none" if first is None else
                         f"{first['kind']} window end +{first['window_end_minutes']} min, "
                         f"sent +{first['sent_minutes']} min")
                      + f"; false alerts: crisis run {len(figures['crisis']['false_alerts'])},"
                      f" quiet {args.quiet_days:g} days {len(quiet['false_alerts'])} "
                      f"({quiet['mentions']} mentions)", flush=True)
            by_rate[f"{rate:g}"] = by_seed
        scenario = scenario_figures(config)
        print(f"{name:32s} tests' scenario: first alert window end "
              f"+{scenario['window_end_minutes']} min", flush=True)
        results[name] = {"detector": repr(detector), "rates": by_rate,
                         "tests_scenario": scenario}
    write_results("crisis", {
        "firehose": {"rates_per_wall_s": rates, "time_scale": time_scale,
                     "start": START.isoformat(), "seeds": seeds,
                     "crisis": {"brand": plan.brand_id, "after_h": HISTORY / timedelta(hours=1),
                                "duration_h": plan.duration / timedelta(hours=1),
                                "intensity": plan.intensity},
                     "warm_up_days": WARM_UP.days, "quiet_days": args.quiet_days},
        "crisis_stage": {"window_s": base.window.total_seconds(),
                         "lateness_s": base.lateness.total_seconds(),
                         "micro_batch": {"mentions": BATCH,
                                         "event_s": BATCH_SPAN.total_seconds()}},
        "sentiment": "the generator's ground truth (no model)",
        "configurations": results,
    })


if __name__ == "__main__":
    main()
