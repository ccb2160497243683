"""The overlays' roles start as the manifests configure them and answer their probes.

Each test takes a Deployment's settings from the rendered dev overlay (its ConfigMap and env),
replaces only what exists in a cluster alone (broker address and TLS, mounted files, ports),
starts the real process and asks it the liveness and readiness paths of its probes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.demo import wait_until_ready
from pipeline.transport.broker import free_port
from tests.integration.conftest import RunningWorker
from tests.unit.deploy.manifests import OVERLAYS, container_env, named, render

pytestmark = pytest.mark.integration

DEV = OVERLAYS["dev"]
DEV_SECRETS = DEV / "secrets"
# what only a cluster has: the broker and its TLS, the names this test run must keep apart,
# the ports and mounted files (each replaced below)
CLUSTER_BOUND = {"PIPELINE_BROKER", "PIPELINE_SECURITY_PROTOCOL", "PIPELINE_SASL_MECHANISM",
                 "PIPELINE_SASL_USERNAME", "PIPELINE_SSL_CAFILE", "PIPELINE_APP_ID",
                 "PIPELINE_PARTITIONS", "PIPELINE_DATA_DIR", "PIPELINE_WEB_HOST",
                 "PIPELINE_WEB_PORT", "PIPELINE_BRANDS_FILE", "PIPELINE_ALERT_ROUTES_FILE",
                 "PIPELINE_STORE_URL", "PIPELINE_DESK_HOST", "PIPELINE_DESK_PORT",
                 "PIPELINE_DESK_USERS_FILE"}


def probe_paths(objects: tuple[dict[str, Any], ...], deployment: str) -> list[str]:
    """The HTTP paths of a Deployment's liveness and readiness probes."""
    container = named(objects, "Deployment", deployment)["spec"]["template"]["spec"][
        "containers"][0]
    return [container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")]


def status_of(url: str) -> int:
    """The HTTP status a GET of ``url`` answers (without following redirects)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("deployment", ["mentions-cpu-worker", "mentions-crisis-worker"])
def test_a_worker_role_starts_with_its_manifest_settings(
    deployment: str, pipeline_settings: Settings,
    start_worker: Callable[..., RunningWorker], tmp_path: Path,
) -> None:
    objects = render(DEV)
    env = {name: value for name, value in container_env(objects, deployment).items()
           if name not in CLUSTER_BOUND}
    brands = tmp_path / "brands.yaml"
    brands.write_text(named(objects, "ConfigMap", "mentions-brands")["data"]["brands.yaml"])
    worker = start_worker(
        pipeline_settings, env.pop("PIPELINE_STAGES"), **env,
        PIPELINE_APP_ID=f"{pipeline_settings.app_id}-{deployment}",
        PIPELINE_WEB_HOST="127.0.0.1", PIPELINE_BRANDS_FILE=str(brands),
        PIPELINE_ALERT_ROUTES_FILE=str(DEV_SECRETS / "routes.yaml"),
    )
    for path in probe_paths(objects, deployment):
        assert status_of(f"http://127.0.0.1:{worker.web_port}{path}") == 200, path


def test_the_desk_starts_with_its_manifest_settings_and_asks_for_a_login(tmp_path: Path) -> None:
    objects = render(DEV)
    env = {name: value for name, value in container_env(objects, "mentions-desk").items()
           if name not in CLUSTER_BOUND}
    port = free_port()
    env.update({
        "PIPELINE_STORE_URL": f"chdb://{tmp_path / 'store'}",
        "PIPELINE_DESK_HOST": "127.0.0.1", "PIPELINE_DESK_PORT": str(port),
        "PIPELINE_DESK_USERS_FILE": str(DEV_SECRETS / "desk-users.yaml"),
        "PIPELINE_DESK_SESSION_SECRET": "a-test-session-key-of-some-length",
        "PIPELINE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
    })
    log_path = tmp_path / "desk.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "desk"], env={**os.environ, **env},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}/readyz", process, 120)
        assert ready, log_path.read_text(errors="replace")[-3000:]
        for path in probe_paths(objects, "mentions-desk"):
            assert status_of(f"http://127.0.0.1:{port}{path}") == 200, path
        # the users file is in force: the console wants a login
        assert status_of(f"http://127.0.0.1:{port}/") in (302, 303, 307, 401)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
