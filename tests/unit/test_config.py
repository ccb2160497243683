import pytest
from pydantic import ValidationError

from pipeline.config import describe_settings, load_settings


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_BROKER", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("PIPELINE_STAGES", "ingest")
    monkeypatch.setenv("PIPELINE_SASL_PASSWORD", "hunter2")
    settings = load_settings(partitions=8, app_id=None)
    assert settings.broker == "kafka-0:9092,kafka-1:9092"
    assert settings.stages == ("ingest",)
    assert settings.partitions == 8
    assert settings.topic("raw") == "mentions.raw"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.redacted())


def test_hot_brands_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_DEDUP_HOT_BRANDS", "acme-mobile:4, telvia")
    assert load_settings().dedup_hot_brands == {"acme-mobile": 4, "telvia": 2}


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_STAGES", "ingest,teleport")
    with pytest.raises(ValidationError):
        load_settings()
    with pytest.raises(ValidationError):
        load_settings(partitions=0)


def test_every_setting_documents_its_environment_variable() -> None:
    for env_name, _default, description in describe_settings():
        assert f"({env_name})" in description, env_name
