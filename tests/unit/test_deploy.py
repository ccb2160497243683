from pathlib import Path

import yaml

from pipeline.config import ENV_PREFIX, Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def documents() -> list[dict]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def test_manifests_parse_and_have_kinds() -> None:
    kinds = {doc["kind"] for doc in documents()}
    assert {"Kafka", "KafkaTopic", "Deployment", "ScaledObject", "ConfigMap"} <= kinds


def test_every_pipeline_variable_in_the_manifests_is_a_setting() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    names: set[str] = set()
    for doc in documents():
        if doc["kind"] == "ConfigMap":
            names |= {key for key in doc["data"] if key.startswith(ENV_PREFIX)}
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                names |= {env["name"] for env in container.get("env", [])}
    assert names, "no settings found in the manifests"
    assert names <= fields, names - fields
