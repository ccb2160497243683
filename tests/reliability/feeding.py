"""Feeding a topic at a steady rate from a thread, and reading a worker's memory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.transport.connection import kafka_client_options


class Feed(threading.Thread):
    """Sends ``values`` to one partition of ``topic`` at ``rate_per_s``, in order, until
    stopped or out of records; ``sent`` counts what was handed to the producer.

    One partition keeps the input order, so two runs of the same records see the same order.
    """

    def __init__(self, settings: Settings, values: list[bytes], topic: str, *,
                 rate_per_s: float, partition: int = 0) -> None:
        super().__init__(daemon=True)
        self.settings, self.values, self.topic = settings, values, topic
        self.rate_per_s, self.partition = rate_per_s, partition
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(**kafka_client_options(self.settings))
        chunk = max(1, int(self.rate_per_s / 10))
        started = time.monotonic()
        try:
            while not self.stop.is_set() and self.sent < len(self.values):
                for value in self.values[self.sent:self.sent + chunk]:
                    producer.send(self.topic, value=value, partition=self.partition)
                self.sent = min(len(self.values), self.sent + chunk)
                # paced by the clock, so a slow send does not lower the rate
                time.sleep(max(0.0, started + self.sent / self.rate_per_s - time.monotonic()))
            producer.flush()
        finally:
            producer.close()

    def finish(self) -> int:
        """Stop sending, flush, and return how many records were sent."""
        self.stop.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the feed did not stop"
        return self.sent


def max_rss_mib(pid: int) -> float:
    """The peak resident memory of a live process (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def rss_mib(pid: int) -> float:
    """The resident memory of a live process now (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssSampler(threading.Thread):
    """Samples a process's resident memory twice a second; ``peak`` is the largest since
    the last :meth:`take_peak` (the process's own high-water mark also holds its start-up)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AssertionError):
                return

    def take_peak(self) -> float:
        """The peak since the last call, and start again."""
        peak, self.peak = self.peak, 0.0
        return peak
