"""Where every record sent to a stage went: its output topic or the dead-letter topic."""

from __future__ import annotations

import base64
import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.transport.topics import decode_batch
from tests.integration.conftest import consume_until


@dataclass
class Ledger:
    """What came out of ingest: forwarded mention ids and dead letters (original, reason).

    An original is named by its SHA-256 (:func:`fingerprint`): a letter may carry only the
    first bytes of a huge one, with the whole one's hash.
    """

    forwarded: Counter[str]
    dead: Counter[tuple[str, str]]
    letters: list[dict[str, Any]]

    @property
    def total(self) -> int:
        return sum(self.forwarded.values()) + sum(self.dead.values())


def fingerprint(raw: bytes) -> str:
    """How the ledger names an original record."""
    return hashlib.sha256(raw).hexdigest()


def original_fingerprint(letter: dict[str, Any]) -> str:
    """The fingerprint of the original record a dead letter stands for."""
    if letter.get("original_truncated"):
        return str(letter["original_sha256"])
    if "original_b64" in letter:
        return fingerprint(base64.b64decode(letter["original_b64"]))
    return fingerprint(str(letter["original"]).encode())


def read_ledger(settings: Settings, expected_total: int, timeout_s: float = 90) -> Ledger:
    """Read ``mentions.routed`` and the dead-letter topic until ``expected_total`` records are
    accounted for (or the deadline passes), then a little longer to catch any surplus."""
    deadline = time.monotonic() + timeout_s
    ledger = _ledger(settings)
    while ledger.total < expected_total and time.monotonic() < deadline:
        time.sleep(0.5)
        ledger = _ledger(settings)
    return ledger


def _ledger(settings: Settings) -> Ledger:
    routed = consume_until(settings, settings.topic("routed"), lambda _: False, timeout_s=1.5)
    dead = consume_until(settings, settings.topic("deadletter"), lambda _: False, timeout_s=1.5)
    letters = [orjson.loads(record.value) for record in dead]
    return Ledger(
        forwarded=Counter(str(m["id"]) for r in routed for m in decode_batch(r.value)),
        dead=Counter((original_fingerprint(letter), letter["reason"]) for letter in letters),
        letters=letters,
    )
