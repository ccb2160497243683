"""The inbox file: SLA per brand, saved answers, forwarding rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.config import PACKAGE_DATA
from pipeline.stages.inbox.forward import forward_key, mention_body
from pipeline.stages.inbox.rules import InboxConfig, InboxConfigError, load_inbox_config

CONFIG = {
    "sla": {"default_minutes": 120, "brands": {"acme-mobile": 30}},
    "templates": [
        {"name": "dm", "reason": "complaint", "lang": "es", "text": "Hola @{handle} ({brand})"},
        {"name": "acme only", "reason": "complaint", "lang": "es", "brands": ["acme-*"],
         "text": "Acme"},
        {"name": "en", "reason": "complaint", "lang": "en", "text": "Hi"},
    ],
    "forward": [
        {"name": "billing-es", "reasons": ["complaint"], "langs": ["es"],
         "words": ["Factura", "cobr"], "to": ["customer-care-es"]},
        {"name": "all-praise", "reasons": ["praise"], "to": ["marketing"]},
    ],
}


def test_sla_is_per_brand_with_a_default() -> None:
    config = InboxConfig.from_config(CONFIG, ["customer-care-es", "marketing"])
    assert config.sla("acme-mobile") == timedelta(minutes=30)
    assert config.sla("nimbus-bank") == timedelta(hours=2)


def test_templates_fit_the_reason_language_and_brand() -> None:
    config = InboxConfig.from_config(CONFIG, ["customer-care-es", "marketing"])
    assert [t.name for t in config.templates_for("acme-mobile", "complaint", "es")] == [
        "dm", "acme only"]
    assert [t.name for t in config.templates_for("nimbus-bank", "complaint", "es")] == ["dm"]
    assert config.templates_for("acme-mobile", "question", "es") == []
    assert config.templates[0].fill("ana", "Acme Mobile") == "Hola @ana (Acme Mobile)"


def test_billing_complaints_in_spanish_go_to_customer_care() -> None:
    config = InboxConfig.from_config(CONFIG, ["customer-care-es", "marketing"])

    def names(reason: str, lang: str, text: str) -> list[str]:
        return [rule.name for rule in config.rules_for(["acme-mobile"], reason, lang, text)]

    assert names("complaint", "es", "Otra vez la FACTURA mal") == ["billing-es"]
    assert names("complaint", "es", "Me han cobrado dos veces") == ["billing-es"]
    assert names("complaint", "en", "You charged me twice, factura") == []
    assert names("complaint", "es", "No tengo cobertura") == []
    assert names("praise", "pt", "Adoro!") == ["all-praise"]


def test_a_rule_naming_an_unknown_destination_is_refused_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inbox.yaml"
    path.write_text("forward:\n  - {name: x, to: [nowhere]}\n", encoding="utf-8")
    with pytest.raises(InboxConfigError, match=r"inbox\.yaml.*nowhere"):
        load_inbox_config(path, ["customer-care-es"])


def test_the_shipped_example_loads() -> None:
    config = load_inbox_config(PACKAGE_DATA / "inbox.example.yaml")
    assert config.sla("acme-mobile") == timedelta(hours=1)
    assert config.templates_for("acme-mobile", "complaint", "es")


def test_a_forward_body_carries_its_key_and_the_mention() -> None:
    key = forward_key("mention", "x:1", "care", "rule:billing-es")
    body = mention_body("json", {"id": "x:1", "text": "hola"}, key=key, brand_name="Acme",
                        sender="rule billing-es", note="")
    assert body["idempotency_key"] == key and body["mention"]["id"] == "x:1"
