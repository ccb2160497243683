"""The dashboard and the alerting rules only query metrics the pipeline really exports."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from pipeline.metrics import PipelineMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_NAME = re.compile(r"\b(mentions_[a-z_]+)\b")


def exported_series() -> set[str]:
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "mentions-pipeline.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("source", [dashboard_expressions, rule_expressions])
def test_every_queried_metric_exists(source) -> None:  # type: ignore[no-untyped-def]
    exported = exported_series()
    queried = {name for expr in source() for name in _NAME.findall(expr)}
    assert queried, "no pipeline metric found in the expressions"
    assert queried <= exported, sorted(queried - exported)


def test_dashboard_covers_what_the_sre_asks_for() -> None:
    text = " ".join(dashboard_expressions())
    for needed in ("stage_in_total", "consumer_lag", "end_to_end_latency", "batch_size",
                   "device_memory", "deadlettered", "alerts_total", "brand_mentions"):
        assert needed in text, needed


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's 'prometheus' package (.ci/run does)"
    tests_dir = DEPLOY / "prometheus" / "tests"
    result = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"], cwd=tests_dir,
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
