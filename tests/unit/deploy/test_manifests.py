"""Every overlay renders, and every object in it is valid against its schema, offline."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.manifests import OVERLAYS, named, problems, render


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_object_of_the_overlay_is_valid(overlay: str) -> None:
    objects = render(OVERLAYS[overlay])
    assert len(objects) > 30, "the overlay rendered almost nothing"
    found = [problem for obj in objects for problem in problems(obj)]
    assert not found, "\n".join(found)


def test_both_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


# --- the validator fails on invalid objects (each case breaks one valid object) ---------------


def _deployment_typo(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "Deployment", "mentions-cpu-worker")
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    return bad


def _deployment_wrong_type(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "Deployment", "mentions-desk")
    bad["spec"]["replicas"] = "two"
    return bad


def _topic_without_partitions(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "KafkaTopic", "mentions.raw")
    bad["spec"]["partitions"] = 0
    return bad


def _topic_misspelt_field(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "KafkaTopic", "mentions.raw")
    bad["spec"]["partition"] = bad["spec"].pop("partitions")
    return bad


def _scaledobject_without_triggers(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "ScaledObject", "mentions-cpu-worker")
    del bad["spec"]["triggers"]
    return bad


def _listener_of_unknown_type(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "Kafka", "mentions")
    bad["spec"]["kafka"]["listeners"][0]["type"] = "public"
    return bad


def _rule_without_expr(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "PrometheusRule", "mentions-pipeline")
    del bad["spec"]["groups"][0]["rules"][0]["expr"]
    return bad


def _servicemonitor_bad_interval(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "ServiceMonitor", "mentions-workers")
    bad["spec"]["endpoints"][0]["interval"] = "15 seconds"
    return bad


def _unknown_kind(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = copy.deepcopy(objects[0])
    bad["apiVersion"], bad["kind"] = "example.com/v1", "Gadget"
    return bad


def _bad_name(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    bad = named(objects, "ConfigMap", "mentions-brands")
    bad["metadata"]["name"] = "Mentions_Brands"
    return bad


BREAKAGES = [_deployment_typo, _deployment_wrong_type, _topic_without_partitions,
             _topic_misspelt_field, _scaledobject_without_triggers, _listener_of_unknown_type,
             _rule_without_expr, _servicemonitor_bad_interval, _unknown_kind, _bad_name]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda breakage: breakage.__name__[1:])
def test_an_invalid_object_is_reported(breakage: Any) -> None:
    bad = breakage(render(OVERLAYS["prod"]))
    assert problems(bad), f"{breakage.__name__} went unnoticed"


def test_an_overlay_that_does_not_render_fails(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(textwrap.dedent("""\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        resources: [missing.yaml]
    """))
    with pytest.raises(RuntimeError, match=r"missing\.yaml"):
        render(tmp_path)
