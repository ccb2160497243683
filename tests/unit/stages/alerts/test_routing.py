from __future__ import annotations

import pytest

from pipeline.stages.alerts.record import CRISIS, VOLUME_SPIKE, Alert, Severity
from pipeline.stages.alerts.routing import Destination, RoutingRules
from tests.unit.stages.alerts.conftest import alert_sequence


def routing() -> RoutingRules:
    return RoutingRules.from_config({
        "destinations": {
            "pr-acme": {"url": "https://hooks.example/T0/secret-token"},
            "sre": {"url": "http://127.0.0.1:9/hook", "style": "json"},
            "exec": {"url": "https://hooks.example/exec"},
        },
        "routes": [
            {"brands": ["acme-*"], "min_severity": "info", "to": ["pr-acme"]},
            {"brands": "*", "min_severity": "critical", "kinds": ["crisis"],
             "to": ["exec"]},
            {"brands": ["*bank*"], "min_severity": "warning", "to": ["sre"]},
        ],
    })


def routed(rules: RoutingRules, brand: str, kind: str, severity: Severity) -> list[str]:
    opened, _ = alert_sequence()
    alert = Alert.from_dict({**opened.to_dict(), "brand": brand, "kind": kind,
                             "severity": severity.label})
    return [d.name for d in rules.destinations_for(alert)]


def test_routing_by_brand_pattern_kind_and_severity() -> None:
    rules = routing()
    assert routed(rules, "acme-mobile", VOLUME_SPIKE, Severity.INFO) == ["pr-acme"]
    assert routed(rules, "acme-mobile", CRISIS, Severity.CRITICAL) == ["pr-acme", "exec"]
    assert routed(rules, "telvia", CRISIS, Severity.WARNING) == []
    assert routed(rules, "telvia", VOLUME_SPIKE, Severity.CRITICAL) == []
    assert routed(rules, "telvia", CRISIS, Severity.CRITICAL) == ["exec"]
    assert routed(rules, "nimbus-bank", CRISIS, Severity.INFO) == []
    assert routed(rules, "nimbus-bank", VOLUME_SPIKE, Severity.WARNING) == ["sre"]
    assert rules.destinations["sre"].style == "json"


def test_routing_config_errors_and_secret_urls() -> None:
    with pytest.raises(ValueError, match="unknown destinations"):
        RoutingRules.from_config({"destinations": {}, "routes": [{"to": ["nobody"]}]})
    with pytest.raises(ValueError, match="unknown alert kinds"):
        RoutingRules.from_config({"destinations": {"x": {"url": "https://h/x"}},
                                  "routes": [{"to": ["x"], "kinds": ["meltdown"]}]})
    with pytest.raises(ValueError, match="http"):
        Destination("x", "ftp://hooks.example/x")
    with pytest.raises(ValueError, match="severity"):
        Severity.parse("apocalyptic")
    destination = routing().destinations["pr-acme"]
    assert "secret-token" not in repr(destination)
    assert destination.host == "hooks.example"
