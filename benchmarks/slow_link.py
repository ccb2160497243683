"""A TCP relay that holds every byte for a fixed time each way: a broker far away.

The embedded broker answers on loopback within microseconds; a production Kafka cluster
answers a produce with ``acks=all`` after replication, typically milliseconds later. Put
this relay between the clients and Tansu (Tansu advertising the relay's address, so every
connection after the bootstrap goes through it too) to see what those round trips do to a
worker that waits for them::

    python -m benchmarks.slow_link --listen 127.0.0.1:9093 --target 127.0.0.1:9092 --delay-ms 5

Each direction of each connection keeps its byte order: chunks are queued with the time
they may leave and written by one task, in order. Not a general-purpose proxy (no bandwidth
limit, no loss, no jitter).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

CHUNK_BYTES = 1 << 16


async def forward_later(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float,
) -> None:
    """Copy ``reader`` to ``writer``, each chunk leaving ``delay_s`` after it arrived."""
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, chunk = await held.get()
            if not chunk:
                break
            wait_s = due - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            writer.write(chunk)
            await writer.drain()

    releasing = asyncio.create_task(release())
    try:
        while chunk := await reader.read(CHUNK_BYTES):
            held.put_nowait((loop.time() + delay_s, chunk))
        held.put_nowait((0.0, b""))
        await releasing
    except (ConnectionError, asyncio.CancelledError):
        releasing.cancel()
        raise
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], delay_s: float) -> None:
    """Relay every connection to ``listen`` to ``target`` until cancelled."""

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                    ) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        with contextlib.suppress(ConnectionError):
            await asyncio.gather(
                forward_later(client_reader, broker_writer, delay_s),
                forward_later(broker_reader, client_writer, delay_s),
            )

    server = await asyncio.start_server(relay, *listen)
    async with server:
        await server.serve_forever()


def host_port(text: str) -> tuple[str, int]:
    """``"host:port"`` as a tuple."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, type=host_port, help="host:port to accept on")
    parser.add_argument("--target", required=True, type=host_port, help="the broker's host:port")
    parser.add_argument("--delay-ms", required=True, type=float, help="one-way delay")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, args.target, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
