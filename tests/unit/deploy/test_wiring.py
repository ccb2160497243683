"""The overlays agree with the code: topics, changelogs, groups, settings, security, rules."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.agents.app import build_app
from pipeline.agents.batch_consumer import batch_consumer_options
from pipeline.config import ENV_PREFIX, Settings, load_settings
from pipeline.transport.topics import topic_specs
from tests.unit.deploy.manifests import (
    K8S,
    OVERLAYS,
    REPO,
    container_env,
    named,
    of_kind,
    pod_templates,
    render,
)

OVERLAY_NAMES = sorted(OVERLAYS)
# which stage reads each topic a ScaledObject watches, and whether it reads it with its own
# batched consumer group (<app id>-<stage>) or as a Faust agent (the app id's group)
READER_OF_TOPIC = {"raw": ("ingest", True), "routed": ("dedup", False),
                   "unique": ("sentiment", False), "scored": ("store", True)}


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Settings:
    """The worker's Settings, parsed by the real settings class from its environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(**extra)


def workers(objects: tuple[dict[str, Any], ...]) -> list[str]:
    """The Deployments that run `mentions worker`."""
    return [obj["metadata"]["name"] for obj in of_kind(objects, "Deployment")
            if obj["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"]


def partitions_of(objects: tuple[dict[str, Any], ...]) -> dict[str, int]:
    """Topic name -> partitions, from the KafkaTopics."""
    return {obj["spec"].get("topicName", obj["metadata"]["name"]): obj["spec"]["partitions"]
            for obj in of_kind(objects, "KafkaTopic")}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_topics_are_the_ones_the_workers_would_create(
    overlay: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(OVERLAYS[overlay])
    settings = settings_of(container_env(objects, "mentions-cpu-worker"), monkeypatch)
    declared = {obj["metadata"]["name"]: obj["spec"] for obj in of_kind(objects, "KafkaTopic")}
    for spec in topic_specs(settings):
        assert spec.name in declared, f"{overlay}: no KafkaTopic {spec.name}"
        topic = declared[spec.name]
        assert topic["partitions"] == spec.partitions, spec.name
        assert int(topic["config"]["retention.ms"]) == spec.retention_ms, spec.name
        assert topic["replicas"] == settings.replication_factor, spec.name


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_faust_table_has_a_compacted_changelog_topic(
    overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    objects = render(OVERLAYS[overlay])
    brands = tmp_path / "brands.yaml"
    brands.write_text(named(objects, "ConfigMap", "mentions-brands")["data"]["brands.yaml"])
    declared = {obj["metadata"]["name"]: obj["spec"] for obj in of_kind(objects, "KafkaTopic")}
    expected = set()
    for deployment in workers(objects):
        env = container_env(objects, deployment)
        # registering the sentiment stage loads the model; it keeps no table
        if "sentiment" in env["PIPELINE_STAGES"]:
            continue
        # the files and TLS the cluster mounts are not here; table names do not depend on them
        for mounted in ("PIPELINE_SSL_CAFILE", "PIPELINE_ALERT_ROUTES_FILE",
                        "PIPELINE_SECURITY_PROTOCOL"):
            env.pop(mounted, None)
            monkeypatch.delenv(mounted, raising=False)
        settings = settings_of(env, monkeypatch, brands_file=brands,
                               data_dir=tmp_path / deployment)
        app, _ = build_app(settings)
        for table in app.tables.values():
            topic = table.changelog_topic
            expected.add(topic.get_topic_name())
            spec = declared.get(topic.get_topic_name())
            assert spec is not None, f"{overlay}: no KafkaTopic {topic.get_topic_name()}"
            assert spec["partitions"] == topic.partitions
            assert spec["config"]["cleanup.policy"] == "compact"
    assert expected, "no Faust table found"
    changelogs = {name for name in declared if name.endswith("-changelog")}
    assert changelogs == expected, "a changelog KafkaTopic no table writes"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_scaled_objects_watch_their_workers_groups_and_stay_within_partitions(
    overlay: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(OVERLAYS[overlay])
    partitions = partitions_of(objects)
    for scaled in of_kind(objects, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        settings = settings_of(container_env(objects, target), monkeypatch)
        assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        for trigger in scaled["spec"]["triggers"]:
            topic = trigger["metadata"]["topic"]
            stage, batched = READER_OF_TOPIC[topic.removeprefix(f"{settings.topic_prefix}.")]
            assert stage in settings.stages, f"{target} does not run {stage}"
            group = (batch_consumer_options(settings, stage, 1)["group_id"] if batched
                     else settings.app_id)
            assert trigger["metadata"]["consumerGroup"] == group, target
            assert trigger["metadata"]["bootstrapServers"] == settings.broker, target
            # a consumer beyond the partition count gets no partition
            assert scaled["spec"]["maxReplicaCount"] <= partitions[topic], (target, topic)


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_pipeline_variable_is_a_setting(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    names = set()
    for config_map in of_kind(objects, "ConfigMap"):
        names |= {key for key in config_map.get("data", {}) if key.startswith(ENV_PREFIX)}
    for _, pod in pod_templates(objects):
        for container in pod["containers"]:
            names |= {env["name"] for env in container.get("env", [])
                      if env["name"].startswith(ENV_PREFIX)}
    assert names, "no settings found"
    assert names <= fields, names - fields


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_table_store_is_one_the_package_can_open(overlay: str) -> None:
    store = named(render(OVERLAYS[overlay]), "ConfigMap", "mentions-settings")["data"][
        "PIPELINE_TABLE_STORE"]
    scheme = store.split("://")[0]
    # Faust's rocksdb:// needs a driver the package does not depend on (nor do the images)
    drivers = {"memory": [], "rocksdb": ["rocksdict", "rocksdb"]}[scheme]
    assert not drivers or any(importlib.util.find_spec(name) for name in drivers), store


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_pod_is_locked_down_and_sized(overlay: str) -> None:
    for workload, pod in pod_templates(render(OVERLAYS[overlay])):
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, workload
        assert context["runAsUser"] > 0, workload
        assert context["seccompProfile"]["type"] == "RuntimeDefault", workload
        assert pod["automountServiceAccountToken"] is False, workload
        for container in pod["containers"]:
            where = f"{workload}/{container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where
            assert "livenessProbe" in container and "readinessProbe" in container, where


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_pipeline_containers_probe_healthz_and_readyz(overlay: str) -> None:
    for workload, pod in pod_templates(render(OVERLAYS[overlay])):
        container = pod["containers"][0]
        if container["name"] == "clickhouse":
            continue
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", workload
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", workload
        # /tmp is the one writable path a read-only root needs (caches); workers add state
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/tmp" in mounts, workload


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_deployment_has_a_disruption_budget(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    budgets = [budget["spec"]["selector"]["matchLabels"]
               for budget in of_kind(objects, "PodDisruptionBudget")]
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if b.items() <= labels.items()]
        assert len(covering) == 1, deployment["metadata"]["name"]


def test_prod_sentiment_runs_on_gpu_nodes_from_the_cuda_image() -> None:
    pod = named(render(OVERLAYS["prod"]), "Deployment", "mentions-sentiment-worker")[
        "spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(toleration["key"] == "nvidia.com/gpu" for toleration in pod["tolerations"])
    assert "mentions-pipeline-cuda" in container["image"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_only_the_sentiment_worker_uses_the_cuda_image(overlay: str) -> None:
    for workload, pod in pod_templates(render(OVERLAYS[overlay])):
        image = pod["containers"][0]["image"]
        if "-cuda" in image:
            assert workload == "mentions-sentiment-worker", workload


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_network_policies_admit_the_roles_that_need_each_service(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    labels = {name: named(objects, kind, name)["spec"]["template"]["metadata"]["labels"]
              for kind, name in [("Deployment", name) for name in workers(objects)]
              + [("Deployment", "mentions-desk")]}
    for worker in workers(objects):
        assert labels[worker]["mentions.io/kafka-client"] == "true", worker
    readers = {name for name, pod in labels.items()
               if pod.get("mentions.io/clickhouse-client") == "true"}
    assert readers == {"mentions-store-sink", "mentions-desk"}
    peers = named(objects, "Kafka", "mentions")["spec"]["kafka"]["listeners"][0][
        "networkPolicyPeers"]
    assert {"podSelector": {"matchLabels": {"mentions.io/kafka-client": "true"}}} in peers
    policies = {policy["metadata"]["name"] for policy in of_kind(objects, "NetworkPolicy")}
    assert {"mentions-default-deny-ingress", "mentions-clickhouse-clients",
            "mentions-desk-from-ingress"} <= policies


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_desk_is_served_over_tls_with_its_secrets(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    ingress = named(objects, "Ingress", "mentions-desk")["spec"]
    hosts = {rule["host"] for rule in ingress["rules"]}
    assert hosts == {host for tls in ingress["tls"] for host in tls["hosts"]}
    pod = named(objects, "Deployment", "mentions-desk")["spec"]["template"]["spec"]
    secrets = {env["valueFrom"]["secretKeyRef"]["name"] for env in pod["containers"][0]["env"]
               if "valueFrom" in env} | {volume["secret"]["secretName"]
                                         for volume in pod["volumes"] if "secret" in volume}
    assert any(name.startswith("mentions-desk-users") for name in secrets)
    assert any(name.startswith("mentions-desk-session") for name in secrets)


def test_the_prometheus_rule_is_generated_from_deploy_prometheus() -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("prometheus_rule", K8S / "prometheus_rule.py")
    assert spec is not None and spec.loader is not None
    generator = module_from_spec(spec)
    spec.loader.exec_module(generator)
    rules = (REPO / "deploy" / "prometheus" / "rules.yml").read_text()
    committed = (K8S / "base" / "prometheus-rule.yaml").read_text()
    assert committed == generator.prometheus_rule(rules), (
        "run python deploy/k8s/prometheus_rule.py")


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_rules_jobs_are_the_jobs_the_service_monitor_makes(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    rules = yaml.safe_dump(named(objects, "PrometheusRule", "mentions-pipeline")["spec"])
    named_jobs = set(re.findall(r'job="([^"]+)"', rules))
    relabeled = [relabel for endpoint in named(objects, "ServiceMonitor", "mentions-workers")[
        "spec"]["endpoints"] for relabel in endpoint["relabelings"]
        if relabel["targetLabel"] == "job"]
    assert relabeled[0]["sourceLabels"] == ["__meta_kubernetes_pod_label_mentions_io_job"]
    jobs = {pod_labels["mentions.io/job"] for pod_labels in (
        named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in workers(objects))}
    assert named_jobs, "the rules name no job"
    assert named_jobs <= jobs, named_jobs - jobs


# Secrets the cluster's operators write: Strimzi (the KafkaUser's password, the cluster CA)
# and cert-manager or you (the desk's certificate)
OPERATOR_SECRETS = {"mentions-worker", "mentions-cluster-ca-cert", "mentions-desk-tls"}


def referenced_secrets(objects: tuple[dict[str, Any], ...]) -> set[str]:
    """Names of the Secrets the pods, the Ingress and KEDA read."""
    names = set()
    for _, pod in pod_templates(objects):
        names |= {volume["secret"]["secretName"] for volume in pod.get("volumes", [])
                  if "secret" in volume}
        for container in pod["containers"]:
            names |= {env["valueFrom"]["secretKeyRef"]["name"] for env in container.get("env", [])
                      if "secretKeyRef" in env.get("valueFrom", {})}
    for ingress in of_kind(objects, "Ingress"):
        names |= {tls["secretName"] for tls in ingress["spec"].get("tls", [])}
    for auth in of_kind(objects, "TriggerAuthentication"):
        names |= {ref["name"] for ref in auth["spec"].get("secretTargetRef", [])}
    return names


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_secret_is_rendered_made_by_an_operator_or_in_the_readme(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    rendered = {secret["metadata"]["name"] for secret in of_kind(objects, "Secret")}
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"create secret generic ([\w-]+)", readme))
    missing = referenced_secrets(objects) - rendered - OPERATOR_SECRETS - documented
    assert not missing, f"{overlay}: Secrets nobody makes: {missing}"
    if overlay == "dev":
        assert referenced_secrets(objects) - rendered <= OPERATOR_SECRETS


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_workers_reach_the_kafka_and_clickhouse_the_overlay_runs(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    settings = named(objects, "ConfigMap", "mentions-settings")["data"]
    kafka = named(objects, "Kafka", "mentions")
    namespace = kafka["metadata"]["namespace"]
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert settings["PIPELINE_BROKER"] == (
        f"{kafka['metadata']['name']}-kafka-bootstrap.{namespace}.svc:{listener['port']}")
    assert listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
    assert settings["PIPELINE_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert settings["PIPELINE_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert settings["PIPELINE_SASL_USERNAME"] == named(objects, "KafkaUser", "mentions-worker")[
        "metadata"]["name"]
    service = named(objects, "Service", "mentions-clickhouse")
    port = service["spec"]["ports"][0]["port"]
    assert settings["PIPELINE_STORE_URL"].startswith(
        f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}/")
    users = named(objects, "ConfigMap", "mentions-clickhouse-users")["data"]
    assert any(f"<{settings['PIPELINE_STORE_USER']}>" in text for text in users.values())


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_object_is_in_the_pipelines_namespace(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    namespace = next(of_kind(objects, "Namespace"))["metadata"]["name"]
    outside = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects
               if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != namespace]
    assert not outside, outside


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_selector_selects_pods_the_overlay_runs(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    pods = [obj["spec"]["template"]["metadata"]["labels"] for obj in objects
            if obj["kind"] in ("Deployment", "StatefulSet")]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pods)

    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items(), where
        elif obj["kind"] == "Service":
            assert selects(obj["spec"]["selector"]), where
        elif obj["kind"] == "NetworkPolicy":
            selector = obj["spec"]["podSelector"].get("matchLabels", {})
            assert not selector or selects(selector), where
