"""The sources file: which endpoints, instances and feeds to listen to (YAML).

Secrets never live in it: a Mastodon instance names the environment variable or the file
that holds its token (``token_env`` / ``token_file``), read when the connector starts and
kept as a :class:`~pydantic.SecretStr`, so it is redacted wherever it is printed.

>>> sources = sources_from_dict({"rss": {"feeds": ["https://example.org/feed.xml"]}})
>>> sources.rss.feeds[0].url, sources.bluesky.rewind_s
('https://example.org/feed.xml', 5.0)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

# Bluesky's four public Jetstream instances (their documented hostnames).
PUBLIC_JETSTREAMS = (
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)


class SourcesFileError(ValueError):
    """A sources file that cannot be loaded; the message says where and why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuntimeOptions(_Frozen):
    """What every connector shares: memory bound, cursor cadence, backoff."""

    queue_size: int = Field(1000, ge=1, description="events held between reader and producer")
    max_in_flight: int = Field(500, ge=1, description="records sent but not yet acknowledged")
    cursor_interval_s: float = Field(1.0, gt=0, description="how often the cursor is saved")
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)


class BlueskyOptions(_Frozen):
    """Jetstream endpoints (rotated on failure) and how far a resume rewinds."""

    endpoints: tuple[str, ...] = PUBLIC_JETSTREAMS
    rewind_s: float = Field(5.0, ge=0, description="resume this far before the saved cursor")
    handle_cache: int = Field(100_000, ge=0, description="DID -> handle entries remembered")


class MastodonInstance(_Frozen):
    """One instance and the streams to follow there."""

    url: str
    # public, public:local, hashtag (one stream per tag in ``hashtags``, and per hashtag
    # term of the listening queries when ``hashtags_from_queries``), hashtag:local
    streams: tuple[Literal["public", "public:local", "hashtag", "hashtag:local"], ...] = (
        "public:local",
    )
    hashtags: tuple[str, ...] = ()
    hashtags_from_queries: bool = True
    token_env: str | None = None
    token_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def token(self) -> SecretStr | None:
        """The access token, from its environment variable or file; None when neither is set."""
        if self.token_env and os.environ.get(self.token_env):
            return SecretStr(os.environ[self.token_env].strip())
        if self.token_file is not None:
            return SecretStr(self.token_file.read_text(encoding="utf-8").strip())
        return None


class MastodonOptions(_Frozen):
    """Instances to stream from."""

    instances: tuple[MastodonInstance, ...] = ()


class FeedOptions(_Frozen):
    """One RSS or Atom feed."""

    url: str
    name: str | None = None


class RssOptions(_Frozen):
    """Feeds to poll, how often, and how many entry ids each remembers."""

    feeds: tuple[FeedOptions, ...] = ()
    poll_interval_s: float = Field(300.0, gt=0)
    seen_ids_per_feed: int = Field(500, ge=1)
    max_feed_bytes: int = Field(5_000_000, ge=1)
    timeout_s: float = Field(30.0, gt=0)

    @field_validator("feeds", mode="before")
    @classmethod
    def _plain_urls(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"url": item} if isinstance(item, str) else item for item in value]
        return value


class SourcesConfig(_Frozen):
    """The whole sources file."""

    runtime: RuntimeOptions = RuntimeOptions()
    bluesky: BlueskyOptions = BlueskyOptions()
    mastodon: MastodonOptions = MastodonOptions()
    rss: RssOptions = RssOptions()
    # send only mentions the listening queries could match (README: Real sources)
    prefilter: bool = True


def sources_from_dict(document: Any, *, origin: str = "<sources>") -> SourcesConfig:
    """Validate a parsed sources document."""
    try:
        return SourcesConfig.model_validate(document or {})
    except ValidationError as error:
        raise SourcesFileError(f"{origin}: {error}") from None


def load_sources(path: Path) -> SourcesConfig:
    """Load and validate a YAML sources file (see pipeline/data/sources.example.yaml)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SourcesFileError(f"{path}: {error}") from None
    return sources_from_dict(document, origin=str(path))
