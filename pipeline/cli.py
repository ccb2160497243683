"""The ``mentions`` command: demo, worker, broker, replay, generate, process, store, desk, config.

Every flag that configures the pipeline is a field of :class:`pipeline.config.Settings`: the
flag and the ``PIPELINE_*`` environment variable are the same setting, the flag wins.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import KNOWN_STAGES, Settings, describe_settings, load_settings
from pipeline.desk.users_cli import add_user_commands

# CLI flag -> settings field, for the flags shared by the commands that talk to Kafka.
_SETTINGS_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--broker", "broker", str, "Kafka bootstrap servers (PIPELINE_BROKER)"),
    ("--app-id", "app_id", str, "Faust app id / consumer group (PIPELINE_APP_ID)"),
    ("--topic-prefix", "topic_prefix", str, "prefix of mention topics (PIPELINE_TOPIC_PREFIX)"),
    ("--partitions", "partitions", int, "partitions of created topics (PIPELINE_PARTITIONS)"),
    ("--brands-file", "brands_file", Path, "listening queries YAML (PIPELINE_BRANDS_FILE)"),
)


# CLI flag -> settings field, for the commands that use the listening store.
_STORE_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--store-url", "store_url", str, "chdb:///folder or http(s)://host:8123/database "
     "(PIPELINE_STORE_URL)"),
    ("--brands-file", "brands_file", Path, "listening queries YAML (PIPELINE_BRANDS_FILE)"),
)


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    for flag, field_name, kind, text in _STORE_FLAGS:
        parser.add_argument(flag, dest=field_name, type=kind, default=None, help=text)


def _store_settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return load_settings(**{field_name: getattr(args, field_name, None)
                            for _flag, field_name, _k, _t in _STORE_FLAGS}, **extra)


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for flag, field_name, kind, text in _SETTINGS_FLAGS:
        parser.add_argument(flag, dest=field_name, type=kind, default=None, help=text)


def _settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {
        field_name: getattr(args, field_name, None) for _flag, field_name, _k, _t in _SETTINGS_FLAGS
    }
    overrides.update(extra)
    return load_settings(**overrides)


def _parse_rate(text: str) -> float:
    """Accept ``500``, ``500/s`` or ``30000/min``."""
    value, _, unit = text.partition("/")
    per_second = {"": 1.0, "s": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}.get(unit)
    if per_second is None:
        raise argparse.ArgumentTypeError(f"rate unit must be /s, /min or /h, got {text!r}")
    return float(value) * per_second


def _parse_duration(text: str) -> float:
    """Accept ``90``, ``90s``, ``5m`` or ``1h`` (seconds)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one Faust worker for the given stages."""
    from pipeline.agents.worker import run_worker

    settings = _settings_from(
        args, stages=args.stages, web_port=args.web_port, web_host=args.web_host,
        data_dir=args.data_dir,
    )
    return run_worker(settings, loglevel=args.loglevel)


def cmd_broker(args: argparse.Namespace) -> int:
    """Run the embedded Tansu broker in the foreground until interrupted."""
    from pipeline.transport.broker import PRODUCER_BATCH_BYTES, EmbeddedBroker

    broker = EmbeddedBroker.start(host=args.host, port=args.port)
    print(f"tansu broker on {broker.bootstrap} (pid {broker.pid}); Ctrl-C stops it", flush=True)
    print(f"workers and feeders against it need PIPELINE_PRODUCER_BATCH_BYTES="
          f"{PRODUCER_BATCH_BYTES} (one record per batch: Tansu misreports end offsets "
          "otherwise)", flush=True)
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop and broker.process.poll() is None:
            time.sleep(0.2)
    finally:
        broker.stop()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Send a JSONL file's lines to the raw topic."""
    from pipeline.connectors.replay import jsonl_records, produce_records
    from pipeline.transport.topics import ensure_topics

    settings = _settings_from(args)
    ensure_topics(settings)
    sent = produce_records(settings, jsonl_records(args.file), rate_per_s=args.rate)
    print(f"sent {sent} records to {settings.topic('raw')}", flush=True)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Write synthetic mentions to a file, or send them to the raw topic."""
    from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator

    crisis = None
    if args.crisis:
        crisis = CrisisPlan(
            brand_id=args.crisis, start_after=timedelta(seconds=args.crisis_after),
            duration=timedelta(seconds=args.crisis_duration),
        )
    start = datetime.fromisoformat(args.start) if args.start else datetime.now(UTC)
    firehose = FirehoseGenerator(
        seed=args.seed, start=start, rate_per_s=args.event_rate, crisis=crisis,
    )
    records = (orjson.dumps(mention) for mention in firehose.mentions(args.count))
    if args.output is not None:
        with args.output.open("wb") as output:
            written = 0
            for record in records:
                output.write(record + b"\n")
                written += 1
        print(f"wrote {written} mentions to {args.output}", flush=True)
        return 0
    from pipeline.connectors.replay import produce_records
    from pipeline.transport.topics import ensure_topics

    settings = _settings_from(args)
    ensure_topics(settings)
    sent = produce_records(settings, records, rate_per_s=args.rate)
    print(f"sent {sent} mentions to {settings.topic('raw')}", flush=True)
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    """Run the stage cores offline over a JSONL file."""
    from pipeline.offline import process_file

    settings = _settings_from(args)
    reject_path = args.rejects or args.output.with_name(args.output.stem + ".rejects.jsonl")
    store = None
    if args.store_url is not None:
        from pipeline.store.client import ListeningStore

        settings = settings.model_copy(update={"store_url": args.store_url})
        store = ListeningStore.open(settings)
        print(f"store: {store.location}", file=sys.stderr, flush=True)
        before = store.count()
    summary = process_file(settings, args.input, args.output, reject_path, store=store)
    print(
        f"{summary.lines} lines: {summary.written} written to {args.output}, "
        f"{summary.rejected} rejected to {reject_path}",
        flush=True,
    )
    if store is not None:
        stored = store.count()
        print(f"{stored - before} mentions added to the store ({stored} stored in all)",
              flush=True)
    return 0


def cmd_spikes(args: argparse.Namespace) -> int:
    """Score one ``timestamp,value`` series with the shipped detector (NAB results format)."""
    from pipeline.stages.spikes import score_series_csv

    score_series_csv(args.input, args.output)
    print(f"wrote {args.output}", flush=True)
    return 0


def cmd_store_load(args: argparse.Namespace) -> int:
    """Load ``mentions process`` output and alerts into the store; print what it added."""
    from pipeline.offline import load_into_store
    from pipeline.store.client import ListeningStore

    settings = _store_settings(args)
    store = ListeningStore.open(settings)
    print(f"store: {store.location}", file=sys.stderr, flush=True)
    summary = load_into_store(settings, store, args.input, batch_size=args.batch_size)
    print(f"{summary.added} mentions added ({summary.lines} lines read, {summary.stored} "
          f"stored in all, {summary.rejected} rejected); {summary.alerts_added} alerts added "
          f"({summary.alerts_stored} stored in all)", flush=True)
    for line_number, reason in summary.rejects[:20]:
        print(f"  line {line_number}: {reason}", file=sys.stderr)
    return 0 if not summary.rejected else 1


def cmd_store_count(args: argparse.Namespace) -> int:
    """Print how many distinct mentions the store holds."""
    from pipeline.store.client import ListeningStore

    store = ListeningStore.open(_store_settings(args))
    print(store.count(), flush=True)
    return 0


def cmd_themes(args: argparse.Namespace) -> int:
    """Run the themes job once over the stored mentions it has not seen; print what it did."""
    from pipeline.store.client import ListeningStore
    from pipeline.themes_job import themes_job

    settings = _store_settings(args)
    store = ListeningStore.open(settings)
    print(f"store: {store.location}", file=sys.stderr, flush=True)
    report = themes_job(store, settings).run()
    print(f"{report.mentions} mentions read, {report.assigned} joined a theme, "
          f"{report.spawned} formed {report.new_themes} new themes; {report.themes} themes in "
          "all", flush=True)
    return 0


def cmd_desk(args: argparse.Namespace) -> int:
    """Serve the desk (JSON API and console) from the configured store."""
    from pipeline.desk.server import serve
    from pipeline.store.client import ListeningStore

    settings = _store_settings(args, desk_port=args.port, desk_host=args.host)
    if settings.desk_port == 0:
        from pipeline.transport.broker import free_port

        # chosen here, so that the address printed is the one served
        settings = settings.model_copy(update={"desk_port": free_port()})
    store = ListeningStore.open(settings)
    login = (f"login with the users in {settings.desk_users_file}" if settings.desk_users_file
             else "no login (loopback only)")
    print(f"desk on http://{settings.desk_host}:{settings.desk_port}/ reading "
          f"{store.location}; {login}", flush=True)
    serve(settings, store)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start everything and replay the sample firehose with a live progress line."""
    from pipeline.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(
        duration_s=args.duration, rate_per_s=args.rate, workers=args.workers,
        web_port=args.web_port, crisis=not args.no_crisis, seed=args.seed,
        broker=args.broker, time_scale=args.time_scale, desk_port=args.desk_port,
        store_url=args.store_url,
    ))


def cmd_source(args: argparse.Namespace) -> int:
    """Listen to a real network (Bluesky, Mastodon, RSS/Atom) into the raw topic."""
    from pipeline.connectors.sources.config import load_sources
    from pipeline.connectors.sources.process import run_source

    settings = _settings_from(args, sources_file=args.sources_file, web_port=args.web_port,
                              web_host=args.web_host)
    logging.getLogger("pipeline.sources").setLevel(args.loglevel.upper())
    return run_source(args.network, settings, load_sources(settings.sources_file))


def cmd_config(args: argparse.Namespace) -> int:
    """Print every setting: its environment variable, default and meaning (or current values)."""
    if args.current:
        print(orjson.dumps(load_settings().redacted(), option=orjson.OPT_INDENT_2).decode())
        return 0
    for env_name, default, description in describe_settings():
        print(f"{env_name:<34} {default:<40.40} {description}")
    return 0


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mentions`` command."""
    parser = argparse.ArgumentParser(
        prog="mentions", description="Streaming social-listening pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add_commands in (_add_demo_command, _add_worker_commands, _add_feed_commands,
                         _add_offline_commands, _add_store_commands, _add_desk_commands,
                         _add_source_command, _add_themes_command, _add_config_command):
        add_commands(commands)
    return parser


def _add_demo_command(commands: Any) -> None:
    """``mentions demo``: everything on an embedded broker, with the desk."""
    demo = commands.add_parser("demo", help="run everything on an embedded broker")
    demo.add_argument("--duration", type=_parse_duration, default=_parse_duration("150s"),
                      help="how long to run (e.g. 150s, 5m; 0 = until Ctrl-C)")
    demo.add_argument("--rate", type=_parse_rate, default=None,
                      help="mentions per second fed in, wall time (default: 400/s, or 120/s "
                      "when sentiment runs on a CPU)")
    demo.add_argument("--workers", type=int, default=1, help="worker processes")
    demo.add_argument("--web-port", type=int, default=6066, help="first worker's /metrics port")
    demo.add_argument("--no-crisis", action="store_true", help="do not inject a crisis")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--time-scale", type=float, default=2400.0,
                      help="event seconds per wall second (the detectors warm up for a day "
                      "of event time)")
    demo.add_argument("--broker", default=None,
                      help="use this Kafka instead of starting the embedded broker")
    demo.add_argument("--desk-port", type=int, default=8080,
                      help="the desk's port (a free one if this is taken)")
    demo.add_argument("--store-url", default=None,
                      help="the listening store (default: an embedded one in the demo's folder)")
    demo.set_defaults(handler=cmd_demo)


def _add_worker_commands(commands: Any) -> None:
    """``mentions worker`` and ``mentions broker``: the processes of a deployment."""
    worker = commands.add_parser("worker", help="run one Faust worker")
    _add_settings_flags(worker)
    worker.add_argument("--stages", default=None,
                        help=f"comma separated, of {','.join(KNOWN_STAGES)} (PIPELINE_STAGES)")
    worker.add_argument("--web-port", type=int, default=None, help="(PIPELINE_WEB_PORT)")
    worker.add_argument("--web-host", default=None, help="(PIPELINE_WEB_HOST)")
    worker.add_argument("--data-dir", type=Path, default=None, help="(PIPELINE_DATA_DIR)")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(handler=cmd_worker)

    broker = commands.add_parser("broker", help="run the embedded Tansu broker alone")
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(handler=cmd_broker)


def _add_feed_commands(commands: Any) -> None:
    """``mentions replay`` and ``mentions generate``: mentions into the raw topic or a file."""
    replay = commands.add_parser("replay", help="send a JSONL file to the raw topic")
    replay.add_argument("file", type=Path)
    replay.add_argument("--rate", type=_parse_rate, default=None, help="e.g. 500/s")
    _add_settings_flags(replay)
    replay.set_defaults(handler=cmd_replay)

    generate = commands.add_parser("generate", help="synthetic firehose to a file or the topic")
    generate.add_argument("--count", type=int, default=10_000)
    generate.add_argument("--output", type=Path, default=None, help="JSONL file (else: Kafka)")
    generate.add_argument("--rate", type=_parse_rate, default=None, help="send rate, e.g. 500/s")
    generate.add_argument("--event-rate", type=float, default=20.0,
                          help="mentions per second of event time (created_at spacing)")
    generate.add_argument("--start", default=None, help="event time of the first mention (ISO)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--crisis", default=None, metavar="BRAND_ID",
                          help="inject a negative burst about this brand")
    generate.add_argument("--crisis-after", type=float, default=1800.0,
                          help="event-time seconds before the crisis starts")
    generate.add_argument("--crisis-duration", type=float, default=1200.0)
    _add_settings_flags(generate)
    generate.set_defaults(handler=cmd_generate)


def _add_offline_commands(commands: Any) -> None:
    """``mentions process`` and ``mentions spikes``: the stages over files, no broker."""
    process = commands.add_parser("process", help="run the stages offline over a JSONL file")
    process.add_argument("--input", type=Path, required=True)
    process.add_argument("--output", type=Path, required=True)
    process.add_argument("--rejects", type=Path, default=None,
                         help="reject file (default: OUTPUT.rejects.jsonl)")
    process.add_argument("--store-url", default=None,
                         help="also write the scored mentions into this store, as the store "
                         "sink does: chdb:///folder or http(s)://host:8123/database (only "
                         "when given: PIPELINE_STORE_URL is not read here)")
    _add_settings_flags(process)
    process.set_defaults(handler=cmd_process)

    spikes = commands.add_parser(
        "spikes", help="score a timestamp,value CSV series with the spike detector",
    )
    spikes.add_argument("--input", type=Path, required=True, help="timestamp,value CSV")
    spikes.add_argument("--output", type=Path, required=True,
                        help="timestamp,value,anomaly_score,label CSV")
    spikes.set_defaults(handler=cmd_spikes)


def _add_store_commands(commands: Any) -> None:
    """``mentions store load|count``: the listening store."""
    store = commands.add_parser("store", help="the listening store: load a file, count")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    load = store_commands.add_parser(
        "load", help="load `mentions process` output and crisis alerts (idempotent: a mention "
        "or alert is kept once)",
    )
    load.add_argument("--input", type=Path, required=True,
                      help="JSONL of scored mentions and/or alerts (a line with incident_id and "
                      "idempotency_key is an alert, as on the alerts topic)")
    load.add_argument("--batch-size", type=int, default=20_000, help="rows per insert")
    _add_store_flags(load)
    load.set_defaults(handler=cmd_store_load)
    count = store_commands.add_parser("count", help="print the distinct mentions stored")
    _add_store_flags(count)
    count.set_defaults(handler=cmd_store_count)


def _add_desk_commands(commands: Any) -> None:
    """``mentions desk`` and its ``user`` commands."""
    desk = commands.add_parser("desk", help="serve the JSON API and console from the store")
    desk.add_argument("--port", type=int, default=None, help="(PIPELINE_DESK_PORT)")
    desk.add_argument("--host", default=None, help="(PIPELINE_DESK_HOST)")
    _add_store_flags(desk)
    desk.set_defaults(handler=cmd_desk)
    add_user_commands(desk)


def _add_themes_command(commands: Any) -> None:
    """``mentions themes``: one run of the themes job."""
    themes = commands.add_parser(
        "themes", help="group the newly stored mentions into themes (once; the desk's process "
        "also runs it every PIPELINE_THEMES_INTERVAL_S)")
    _add_store_flags(themes)
    themes.set_defaults(handler=cmd_themes)


def _add_config_command(commands: Any) -> None:
    """``mentions config``: the settings and their environment variables."""
    config = commands.add_parser("config", help="list the settings and their env variables")
    config.add_argument("--current", action="store_true", help="print the effective values")
    config.set_defaults(handler=cmd_config)


def _add_source_command(commands: Any) -> None:
    """``mentions source bluesky|mastodon|rss``: a connector process (README: Real sources)."""
    source = commands.add_parser(
        "source", help="listen to Bluesky (Jetstream), Mastodon or RSS/Atom feeds into the raw "
        "topic")
    source.add_argument("network", choices=("bluesky", "mastodon", "rss"))
    source.add_argument("--sources-file", type=Path, default=None,
                        help="endpoints, instances and feeds (PIPELINE_SOURCES_FILE)")
    source.add_argument("--web-port", type=int, default=None,
                        help="/metrics port; 0 picks a free one (PIPELINE_WEB_PORT)")
    source.add_argument("--web-host", default=None, help="(PIPELINE_WEB_HOST)")
    source.add_argument("--loglevel", default="info")
    _add_settings_flags(source)
    source.set_defaults(handler=cmd_source)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mentions`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        from pydantic import ValidationError

        from pipeline.connectors.sources.config import SourcesFileError
        from pipeline.desk.security import DeskAccessError
        from pipeline.desk.users import UsersFileError
        from pipeline.stages.alerts.routing import RoutingRulesError
        from pipeline.stages.brands import BrandRulesError
        from pipeline.store.client import StoreRejected, StoreUnavailable

        if isinstance(error, ValidationError | BrandRulesError | RoutingRulesError
                      | FileNotFoundError | StoreUnavailable | StoreRejected
                      | DeskAccessError | UsersFileError | SourcesFileError):
            print(f"mentions {args.command}: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
