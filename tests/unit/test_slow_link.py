"""The benchmarks' slow link relays bytes intact, in order, and late by its delay each way."""

import asyncio
import time

from benchmarks.slow_link import serve
from pipeline.transport.broker import free_port

DELAY_S = 0.05


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()


async def connect_when_listening(
    port: int, timeout_s: float = 5.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def test_slow_link_relays_in_order_after_its_delay_each_way() -> None:
    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    link_port = free_port()
    link = asyncio.create_task(serve(("127.0.0.1", link_port), ("127.0.0.1", target_port), DELAY_S))
    try:
        reader, writer = await connect_when_listening(link_port)
        message = b"".join(f"chunk {n};".encode() for n in range(20_000))
        started = time.monotonic()
        writer.write(message)
        await writer.drain()
        echoed = await reader.readexactly(len(message))
        round_trip_s = time.monotonic() - started
        writer.close()
    finally:
        link.cancel()
        target.close()
    assert echoed == message
    assert round_trip_s >= 2 * DELAY_S
