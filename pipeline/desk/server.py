"""Serving the desk with uvicorn: in the foreground, or from a thread of another process.

``mentions desk`` calls :func:`serve`, which blocks until SIGINT or SIGTERM. A worker that
owns an embedded store (one process per chDB folder) serves the desk from the same store with
:class:`DeskThread`: uvicorn on its own event loop in a daemon thread, next to Faust's loop.
uvicorn installs its signal handlers only on the main thread (``Server.capture_signals`` in
uvicorn 0.55 yields without touching them elsewhere), so the worker keeps its own handlers and
stops the desk with :meth:`DeskThread.stop`.

Both also run the themes job every ``PIPELINE_THEMES_INTERVAL_S`` in a thread of their own
(:class:`~pipeline.themes_job.ThemesScheduler`): the process that serves the desk is the one
that may write an embedded store. Both run without a lifespan (the store is opened and closed
by the caller, not by the app) and without uvicorn's logging configuration (the process's own
logging shows the desk's warnings).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Final

import uvicorn

from pipeline.config import Settings
from pipeline.desk.app import Clock, build_desk
from pipeline.desk.inbox.courier import Courier
from pipeline.store.client import ListeningStore, utc_now
from pipeline.themes_job import ThemesScheduler, start_scheduler

log = logging.getLogger(__name__)

# in-flight requests (a long CSV export) get this long to finish when the desk stops
GRACEFUL_SHUTDOWN_S: Final = 5


class DeskStartError(RuntimeError):
    """The desk did not start listening (address taken, not allowed, or too slow)."""


class _DeskServer(uvicorn.Server):
    """uvicorn's server, telling a waiting thread when start-up is over, either way."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()
        self.courier: Courier | None = None

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until told to stop, then stop the inbox's courier too."""
        try:
            super().run(sockets)
        finally:
            if self.courier is not None:
                self.courier.stop()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening (uvicorn's start-up), then wake whoever waits in ``start``."""
        try:
            await super().startup(sockets)
        finally:
            # uvicorn ends a failed start-up (address in use) with sys.exit: wake start() so it
            # reports the failure now instead of at its timeout
            self.startup_over.set()


def _desk_server(settings: Settings, store: ListeningStore, clock: Clock) -> _DeskServer:
    desk = build_desk(store, clock=clock, settings=settings)
    # the inbox's courier: a thread that holds nothing a stop could lose (the outbox is in
    # its database); it runs while the desk serves
    desk.state.courier.start()
    server = _DeskServer(uvicorn.Config(
        desk, host=settings.desk_host,
        port=settings.desk_port,
        log_level="warning", log_config=None, lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    ))
    server.courier = desk.state.courier
    return server


def serve(settings: Settings, store: ListeningStore) -> None:
    """Serve the desk until SIGINT or SIGTERM (``mentions desk``), with the themes job."""
    scheduler = start_scheduler(store, settings)
    try:
        _desk_server(settings, store, utc_now).run()
    finally:
        if scheduler is not None:
            scheduler.stop()


class DeskThread:
    """The desk served from a background thread with its own event loop; one start per object.

    >>> desk = DeskThread(Settings(desk_port=0), store)  # doctest: +SKIP
    >>> desk.start()  # doctest: +SKIP
    'http://127.0.0.1:40521'
    >>> desk.stop()  # doctest: +SKIP
    """

    def __init__(self, settings: Settings, store: ListeningStore, *, clock: Clock = utc_now,
                 start_timeout_s: float = 10.0) -> None:
        self.server = _desk_server(settings, store, clock)
        self.settings, self.store = settings, store
        self.scheduler: ThemesScheduler | None = None
        self.start_timeout_s = start_timeout_s
        self.thread = threading.Thread(target=self._serve, name="desk", daemon=True)
        self.url: str | None = None

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:
            # uvicorn's exit on a failed start-up; start() reports it from the main thread
            pass
        finally:
            self.server.startup_over.set()

    def start(self) -> str:
        """Start serving; once the desk listens, its URL (the real port when the port is 0)."""
        config = self.server.config
        self.thread.start()
        if not self.server.startup_over.wait(self.start_timeout_s):
            self.stop()
            raise DeskStartError(f"the desk did not listen on {config.host}:{config.port} "
                                 f"within {self.start_timeout_s:g} s")
        if not self.server.started:
            self.thread.join()
            raise DeskStartError(f"the desk could not listen on {config.host}:{config.port} "
                                 "(uvicorn logged why: the address in use, or not allowed)")
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self.scheduler = start_scheduler(self.store, self.settings)
        return self.url

    def stop(self, timeout_s: float = GRACEFUL_SHUTDOWN_S + 5.0) -> None:
        """Stop serving and wait for the thread; harmless when not started or stopped."""
        if self.scheduler is not None:
            self.scheduler.stop()
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout_s)
            if self.thread.is_alive():
                log.warning("desk: still stopping after %.0f s", timeout_s)
