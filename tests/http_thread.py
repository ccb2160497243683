"""A real aiohttp server on 127.0.0.1 in a thread of its own, for tests' webhook receivers."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class AiohttpThread:
    """Serves the routes :meth:`add_routes` adds, on a free port, until :meth:`stop`."""

    def __init__(self, *, shutdown_timeout: float = 60.0) -> None:
        self.port = 0
        self._shutdown_timeout = shutdown_timeout
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def add_routes(self, app: web.Application) -> None:
        """The receiver's routes (subclasses)."""
        raise NotImplementedError

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=self._shutdown_timeout)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self, timeout_s: float = 30) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
