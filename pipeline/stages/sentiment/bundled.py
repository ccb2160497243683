"""Where the bundled sentiment model is built, importable without torch (ingest needs it)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "build" / "sentiment-default"

__all__ = ["DEFAULT_MODEL_DIR"]
