"""The per-event Faust ceiling: an agent over ``stream.take(500, within=0.05)`` only.

It does nothing else (``--send`` adds one send per event). Run by benchmarks/pipeline.py in
a subprocess; prints one JSON line with events/s once ``--count`` events were seen.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import faust
import orjson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--send", action="store_true")
    parser.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args()
    app = faust.App(
        f"baseline-{os.getpid()}", broker=f"kafka://{args.broker}", value_serializer="raw",
        web_port=args.web_port, autodiscover=False, broker_session_timeout=10,
        broker_rebalance_timeout=10, store="memory://",
        datadir=f"/tmp/faust-baseline-{os.getpid()}",
    )
    source = app.topic(args.topic, value_type=bytes, value_serializer="raw")
    sink = app.topic(f"{args.topic}.copy", value_type=bytes, value_serializer="raw")
    seen = 0
    started = 0.0

    @app.agent(source)
    async def count(stream: Any) -> None:
        nonlocal seen, started
        async for values in stream.take(500, within=0.05):
            if not started:
                started = time.perf_counter()
            if args.send:
                for value in values:
                    await sink.send(value=value)
            seen += len(values)
            if seen >= args.count:
                elapsed = time.perf_counter() - started
                print(orjson.dumps({"events": seen, "seconds": elapsed,
                                    "events_per_s": seen / elapsed}).decode(), flush=True)
                os._exit(0)

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
