"""The desk's fixtures: one store of generated, processed mentions and of crisis incidents
(:func:`tests.incident_alerts.listed_incidents`), served by uvicorn.

The store is a database of its own in the test process's chDB folder (``chdb_store_url``:
a process opens one folder in its life), filled once; tests tell their data apart by filters
and periods, never by writing more rows.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from pipeline.config import Settings
from pipeline.connectors.generator import CrisisPlan, FirehoseGenerator
from pipeline.desk.server import DeskThread
from pipeline.offline import process_file
from pipeline.stages.brands import load_brand_rules
from pipeline.store.client import ListeningStore
from pipeline.store.incident_rows import alert_rows
from pipeline.store.rows import RowEncoder, kinds_by_brand
from pipeline.store.tables import INCIDENTS
from tests.incident_alerts import listed_incidents
from tests.unit.desk.expected import created_at

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# the desk's clock: every query's default period (the last 24 hours) holds every mention
NOW = START + timedelta(hours=3)
COUNT = 2000
# a crisis about acme-mobile 30 to 50 minutes in: rising terms, negative voices, copies
CRISIS = CrisisPlan(brand_id="acme-mobile", start_after=timedelta(minutes=30),
                    duration=timedelta(minutes=20))


@pytest.fixture(scope="session")
def scored_mentions(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The firehose's mentions after the offline pipeline: the store's content, for Python."""
    folder = tmp_path_factory.mktemp("firehose")
    raw, scored = folder / "raw.jsonl", folder / "scored.jsonl"
    firehose = FirehoseGenerator(seed=11, start=START, rate_per_s=0.5, crisis=CRISIS)
    raw.write_bytes(b"".join(orjson.dumps(mention) + b"\n"
                             for mention in firehose.mentions(COUNT)))
    summary = process_file(Settings(), raw, scored, folder / "rejects.jsonl")
    assert (summary.written, summary.rejected) == (COUNT, 0)
    mentions = [orjson.loads(line) for line in scored.read_bytes().splitlines()]
    assert max(created_at(mention) for mention in mentions) < NOW
    return mentions


@pytest.fixture(scope="session")
def store(chdb_store_url: str,
          scored_mentions: list[dict[str, Any]]) -> Iterator[ListeningStore]:
    # fixed dates: a retention of ten years keeps them whatever today is
    settings = Settings(store_url=chdb_store_url, store_retention_days=3650)
    store = ListeningStore.open(settings, database="unit_desk")
    encoder = RowEncoder(kinds_by_brand(load_brand_rules(settings.brands_file)))
    batch = encoder.encode_dicts(scored_mentions)
    assert batch.rejects == []
    store.insert(batch.payload)
    assert store.count() == COUNT
    alerts = alert_rows([alert for alerts in listed_incidents(NOW) for alert in alerts])
    assert alerts.rejects == []
    store.insert(alerts.payload, INCIDENTS)
    yield store
    store.close()


@pytest.fixture(scope="session")
def desk(store: ListeningStore) -> Iterator[httpx.Client]:
    """An HTTP client on a real uvicorn serving the desk over the session's store."""
    thread = DeskThread(Settings(desk_port=0), store, clock=lambda: NOW)
    url = thread.start()
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client
    thread.stop()
