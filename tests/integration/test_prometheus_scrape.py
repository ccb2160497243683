"""A real Prometheus server scrapes a running worker; its query API shows the series moving."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from pipeline.config import Settings
from pipeline.transport.broker import free_port, wait_for_port
from tests.integration.conftest import RunningWorker, produce

pytestmark = pytest.mark.integration


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for_value(port: int, promql: str, above: float, timeout_s: float = 60) -> float:
    deadline = time.monotonic() + timeout_s
    value = float("nan")
    while time.monotonic() < deadline:
        try:
            result = query(port, promql)
        except OSError:  # 503 while Prometheus is still starting, or a refused connection
            time.sleep(1)
            continue
        if result:
            value = float(result[0]["value"][1])
            if value > above:
                return value
        time.sleep(1)
    pytest.fail(f"{promql} stayed at {value} (wanted > {above})")


def mentions(start: int, count: int) -> list[bytes]:
    return [orjson.dumps({
        "id": f"p{i}", "text": f"Acme Mobile {i}", "created_at": "2026-11-22T10:00:00Z",
        "source": "twitter", "author": {"id": "u"},
    }) for i in range(start, start + count)]


def test_prometheus_scrapes_moving_pipeline_series(
    pipeline_settings: Settings, start_worker: Callable[..., RunningWorker], tmp_path: Path,
) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install Debian's 'prometheus' package (.ci/run does)"
    worker = start_worker(pipeline_settings, "ingest")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: mentions-cpu-worker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker.web_port}']}}]\n"
    )
    server = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        assert wait_for_port("127.0.0.1", port, 30), "prometheus did not start"
        ready_url = f"http://127.0.0.1:{port}/-/ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        assert wait_for_value(port, 'up{job="mentions-cpu-worker"}', above=0.5) == 1.0
        produce(pipeline_settings, mentions(0, 30))
        first = wait_for_value(port, 'mentions_stage_in_total{stage="ingest"}', above=0)
        produce(pipeline_settings, mentions(100, 20))
        second = wait_for_value(port, 'mentions_stage_in_total{stage="ingest"}', above=first)
        assert second == 50
        assert query(port, 'mentions_stage_out_total{stage="ingest"}')
        assert query(port, "mentions_assigned_partitions")
    finally:
        server.terminate()
        server.wait(timeout=20)
