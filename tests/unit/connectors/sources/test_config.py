from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.connectors.sources.config import SourcesFileError, load_sources, sources_from_dict


def test_the_example_sources_file_loads_with_spanish_press_first() -> None:
    sources = load_sources(Settings().sources_file)
    assert sources.prefilter
    assert all(url.startswith("wss://") for url in sources.bluesky.endpoints)
    assert sources.rss.feeds[0].name == "El País"
    assert all(instance.token_file is None or instance.token_env
               for instance in sources.mastodon.instances)


def test_a_mistake_in_the_sources_file_says_where(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("mastodon:\n  instances:\n    - url: https://m.example\n      streams: [all]\n")
    with pytest.raises(SourcesFileError, match=r"sources\.yaml"):
        load_sources(path)
    with pytest.raises(SourcesFileError):
        sources_from_dict({"rss": {"poll_interval_s": 0}})
