"""One typed, frozen settings object per process.

Every field is read from an environment variable ``PIPELINE_<FIELD>`` (``deploy/k8s`` sets
them) and every CLI flag of ``mentions`` maps onto the same field, so there is exactly one
source of truth. Nothing here reads ``os.environ`` at import time: :func:`load_settings`
does, when a command starts.

>>> settings = load_settings(broker="kafka-0:9092")
>>> settings.broker
'kafka-0:9092'
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"

ENV_PREFIX = "PIPELINE_"

# The stages that exist, in data-flow order; a worker runs any subset of them. A worker runs
# the first four unless told otherwise: the store sink is its own deployment (with an embedded
# store, exactly one process may own the store's folder).
Stage = Literal["ingest", "dedup", "sentiment", "crisis", "store"]
ALL_STAGES: tuple[Stage, ...] = ("ingest", "dedup", "sentiment", "crisis")
KNOWN_STAGES: tuple[Stage, ...] = (*ALL_STAGES, "store")


class Settings(BaseSettings):
    """Settings of one pipeline process; each field's environment variable is PIPELINE_<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", env_nested_delimiter="__",
    )

    # --- broker ---------------------------------------------------------------------------
    broker: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated (PIPELINE_BROKER).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol (PIPELINE_SECURITY_PROTOCOL).",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when SASL is used (PIPELINE_SASL_MECHANISM).",
    )
    sasl_username: str = Field("", description="SASL user name (PIPELINE_SASL_USERNAME).")
    sasl_password: SecretStr = Field(
        SecretStr(""), description="SASL password (PIPELINE_SASL_PASSWORD).",
    )
    ssl_cafile: Path | None = Field(
        None, description="CA bundle for TLS to the brokers (PIPELINE_SSL_CAFILE).",
    )

    # --- topics ---------------------------------------------------------------------------
    app_id: str = Field(
        "mentions", description="Faust app id: consumer group and table prefix (PIPELINE_APP_ID).",
    )
    topic_prefix: str = Field(
        "mentions", description="Prefix of the mention topics (PIPELINE_TOPIC_PREFIX).",
    )
    alerts_topic: str = Field(
        "alerts.crisis", description="Topic that receives crisis alerts (PIPELINE_ALERTS_TOPIC).",
    )
    partitions: int = Field(
        4, ge=1, description="Partitions of topics created at start-up (PIPELINE_PARTITIONS).",
    )
    replication_factor: int = Field(
        1, ge=1, description="Replication of topics created at start-up "
        "(PIPELINE_REPLICATION_FACTOR).",
    )
    retention_hours: float = Field(
        72.0, gt=0, description="Retention of the mention topics (PIPELINE_RETENTION_HOURS).",
    )
    producer_batch_bytes: int = Field(
        16384, ge=1, description="Most bytes per producer batch and partition (Faust's "
        "default); 1 sends every record alone, which the embedded Tansu broker needs for "
        "correct end offsets (PIPELINE_PRODUCER_BATCH_BYTES).",
    )
    consumer_fetch_max_wait_ms: int = Field(
        100, ge=1, le=60_000, description="Longest a Faust agent's fetch waits for data "
        "(Faust hard-codes 1500; Kafka answers earlier when data arrives, the embedded Tansu "
        "broker does not) (PIPELINE_CONSUMER_FETCH_MAX_WAIT_MS).",
    )

    group_session_timeout_s: float = Field(
        10.0, gt=0, description="Consumer-group session timeout: how fast a dead worker's "
        "partitions move (PIPELINE_GROUP_SESSION_TIMEOUT_S).",
    )
    group_rebalance_timeout_s: float = Field(
        10.0, gt=0, description="How long a rebalance waits for members to rejoin "
        "(PIPELINE_GROUP_REBALANCE_TIMEOUT_S).",
    )

    # --- worker ---------------------------------------------------------------------------
    stages: Annotated[tuple[Stage, ...], NoDecode] = Field(
        ALL_STAGES, description="Stages this worker runs, comma separated (PIPELINE_STAGES).",
    )
    web_host: str = Field(
        "127.0.0.1", description="Address of /metrics, /healthz, /readyz (PIPELINE_WEB_HOST).",
    )
    web_port: int = Field(
        6066, ge=0, le=65535,
        description="Port of /metrics, /healthz, /readyz; 0 picks a free one (PIPELINE_WEB_PORT).",
    )
    data_dir: Path = Field(
        Path("/tmp/mentions-data"),
        description="Worker state directory (table stores) (PIPELINE_DATA_DIR).",
    )
    table_store: str = Field(
        "memory://",
        description="Faust table store: memory:// or rocksdb:// (PIPELINE_TABLE_STORE).",
    )
    gc_young_threshold: int = Field(
        50_000, ge=0, description="Net allocations between the garbage collector's young "
        "passes; CPython's 700 kept the worker busy in the collector, promoting each "
        "in-flight micro-batch to the old generations (figures in benchmarks/README.md; 0 "
        "keeps CPython's defaults) "
        "(PIPELINE_GC_YOUNG_THRESHOLD).",
    )
    ingest_batch_size: int = Field(
        2000, ge=1, description="Most raw mentions taken per ingest batch: a batch holds what "
        "arrived within the wait, so only a backlog fills it, and then a bigger batch spreads "
        "each batch's sends and commit over more mentions (PIPELINE_INGEST_BATCH_SIZE).",
    )
    ingest_batch_wait_s: float = Field(
        0.05, gt=0, description="Longest wait to fill an ingest batch, seconds "
        "(PIPELINE_INGEST_BATCH_WAIT_S).",
    )
    forward_unmatched: bool = Field(
        False, description="Forward mentions that match no brand query instead of counting and "
        "dropping them at ingest (PIPELINE_FORWARD_UNMATCHED).",
    )

    # --- language ---------------------------------------------------------------------------
    languages: Annotated[tuple[str, ...], NoDecode] = Field(
        ("ar", "de", "en", "es", "fr", "hi", "it", "pt"),
        description="ISO 639-1 codes the language stage may answer, comma separated; "
        "anything else is 'und' (PIPELINE_LANGUAGES).",
    )
    detect_language: bool = Field(
        True, description="Run language identification at ingest (PIPELINE_DETECT_LANGUAGE).",
    )

    # --- dedup ------------------------------------------------------------------------------
    dedup_window_hours: float = Field(
        24.0, gt=0, description="How long a text is remembered for duplicate detection, in "
        "event-time hours (PIPELINE_DEDUP_WINDOW_HOURS).",
    )

    dedup_hot_brands: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="Brands too big for one partition and how many routing sub-keys each "
        "gets, e.g. 'acme-mobile:4,telvia:2' (PIPELINE_DEDUP_HOT_BRANDS).",
    )

    # --- sentiment ---------------------------------------------------------------------------
    sentiment_model: str = Field(
        "", description="Sequence-classification checkpoint: a local folder or a Hugging Face "
        "Hub id (from the local cache); empty means the bundled multilingual model built at "
        "set-up (PIPELINE_SENTIMENT_MODEL).",
    )
    sentiment_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="The checkpoint's label names onto negative/neutral/positive, e.g. "
        "'LABEL_0:negative,LABEL_1:neutral,LABEL_2:positive'; empty reads the checkpoint's "
        "own id2label (PIPELINE_SENTIMENT_LABELS).",
    )
    sentiment_device: str = Field(
        "auto", description="Where the model runs: auto (cuda when present), cpu, cuda, "
        "cuda:1 (PIPELINE_SENTIMENT_DEVICE).",
    )
    sentiment_batch_size: int = Field(
        0, ge=0, description="Most mentions per model forward; 0 picks the fastest measured "
        "for the device: 32 on CPU, 1024 on CUDA (PIPELINE_SENTIMENT_BATCH_SIZE).",
    )
    sentiment_max_wait_ms: float = Field(
        20.0, ge=0, description="Longest a mention waits for a batch to fill, milliseconds "
        "(PIPELINE_SENTIMENT_MAX_WAIT_MS).",
    )
    sentiment_max_tokens: int = Field(
        128, ge=8, description="Texts are truncated to this many tokens "
        "(PIPELINE_SENTIMENT_MAX_TOKENS).",
    )
    sentiment_int8: bool | None = Field(
        None, description="On CPU, dynamic int8 Linear layers, smoothed by the model's own "
        "calibration when it has one (faster for a little val macro-F1: figures in "
        "models/MODEL_CARD.md). Unset: on exactly when the model folder carries that "
        "calibration (PIPELINE_SENTIMENT_INT8).",
    )
    sentiment_concurrency: int = Field(
        4, ge=1, description="Micro-batches in flight per worker, so tokenising and the next "
        "batch overlap the model (PIPELINE_SENTIMENT_CONCURRENCY).",
    )
    sentiment_carry_tokens: bool = Field(
        False, description="Ingest tokenises each mention once with the sentiment model's "
        "tokenizer and carries the ids on it, so the sentiment worker does not tokenise: on "
        "where sentiment runs on GPUs, whose workers are bound by tokenising; off on CPU, "
        "where the model dwarfs tokenising and ingest would pay for nothing "
        "(PIPELINE_SENTIMENT_CARRY_TOKENS).",
    )
    sentiment_compile: bool = Field(
        False, description="Run the model's forward through torch.compile (slower start; "
        "its gain is measured per device in benchmarks/README.md) "
        "(PIPELINE_SENTIMENT_COMPILE).",
    )
    sentiment_engines: int = Field(
        1, ge=1, le=16, description="Engine processes per sentiment worker, each with the "
        "model on the same device, when one process cannot keep a GPU busy "
        "(PIPELINE_SENTIMENT_ENGINES).",
    )
    sentiment_timeout_s: float = Field(
        60.0, gt=0, description="A micro-batch not scored within this goes on unscored and is "
        "counted (PIPELINE_SENTIMENT_TIMEOUT_S).",
    )

    # --- crisis detection and alerts ------------------------------------------------------
    crisis_window_s: float = Field(
        300.0, gt=0, description="Event-time window of the crisis detector, seconds "
        "(PIPELINE_CRISIS_WINDOW_S).",
    )
    crisis_lateness_s: float = Field(
        120.0, ge=0, description="How late, in event time, a scored mention may arrive and "
        "still count in its window, seconds (PIPELINE_CRISIS_LATENESS_S).",
    )
    alert_routes_file: Path | None = Field(
        None, description="YAML webhook routing: destinations and which brands, kinds and "
        "severities each gets (README: Alerts); unset, alerts go to the alerts topic only "
        "(PIPELINE_ALERT_ROUTES_FILE).",
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, description="Time for one webhook attempt, seconds "
        "(PIPELINE_WEBHOOK_TIMEOUT_S).",
    )
    webhook_max_attempts: int = Field(
        5, ge=1, description="Attempts per alert and destination before it is dead-lettered "
        "(PIPELINE_WEBHOOK_MAX_ATTEMPTS).",
    )

    # --- listening store and desk ----------------------------------------------------------
    store_url: str = Field(
        "", description="The listening store: chdb:///folder (ClickHouse's engine in-process, "
        "one process owns the folder) or http(s)://host:8123/database (a ClickHouse server); "
        "empty means chdb:// in mentions/store under $XDG_DATA_HOME (~/.local/share) "
        "(PIPELINE_STORE_URL).",
    )
    store_user: str = Field(
        "default", description="ClickHouse server user (PIPELINE_STORE_USER).",
    )
    store_password: SecretStr = Field(
        SecretStr(""), description="ClickHouse server password (PIPELINE_STORE_PASSWORD).",
    )
    store_timeout_s: float = Field(
        30.0, gt=0, description="Connect and request timeout to a ClickHouse server, seconds "
        "(PIPELINE_STORE_TIMEOUT_S).",
    )
    store_retention_days: int = Field(
        90, ge=1, le=36500, description="Days a mention is kept, by event time (the table's "
        "TTL; a change applies at the next start) (PIPELINE_STORE_RETENTION_DAYS).",
    )
    store_batch_size: int = Field(
        20_000, ge=1, description="Most scored records (micro-batches) the store sink takes per "
        "insert (PIPELINE_STORE_BATCH_SIZE).",
    )
    store_batch_wait_s: float = Field(
        1.0, gt=0, description="Longest the store sink waits to fill an insert, seconds: "
        "ClickHouse wants few large inserts (PIPELINE_STORE_BATCH_WAIT_S).",
    )
    store_settle_s: float = Field(
        60.0, gt=0, description="How often the store sink brings the leaders' echoes table up "
        "to the closed hours and rebuilds the hours late mentions changed, seconds "
        "(PIPELINE_STORE_SETTLE_S).",
    )
    store_retry_max_s: float = Field(
        30.0, gt=0, description="Longest pause between the sink's retries while the store is "
        "down, seconds (PIPELINE_STORE_RETRY_MAX_S).",
    )
    desk_host: str = Field(
        "127.0.0.1", description="Address the desk (JSON API and console) listens on "
        "(PIPELINE_DESK_HOST).",
    )
    desk_port: int = Field(
        8080, ge=0, le=65535, description="Port of the desk; 0 picks a free one "
        "(PIPELINE_DESK_PORT).",
    )
    desk_in_worker: bool = Field(
        False, description="A worker running the store stage also serves the desk, from the "
        "same store: how an embedded (chDB) store is read while it is written "
        "(PIPELINE_DESK_IN_WORKER).",
    )
    themes_interval_s: float = Field(
        900.0, ge=0, description="How often the process that serves the desk runs the themes "
        "job over the newly stored mentions, seconds; 0 turns it off (then run `mentions "
        "themes`) (PIPELINE_THEMES_INTERVAL_S).",
    )
    themes_model: Path | None = Field(
        None, description="The encoder folder the themes job embeds mentions with; unset, "
        "models/build/e5-small (PIPELINE_THEMES_MODEL).",
    )
    desk_users_file: Path | None = Field(
        None, description="The console's users, roles and argon2 password hashes (YAML, "
        "written by `mentions desk user add`); set, every page and API route needs a login. "
        "A desk listening beyond loopback needs one (PIPELINE_DESK_USERS_FILE).",
    )
    desk_session_secret: SecretStr = Field(
        SecretStr(""), description="Key that signs the console's session cookies; share it "
        "between desk replicas. Unset, each process makes one (logins end at a restart) "
        "(PIPELINE_DESK_SESSION_SECRET).",
    )
    desk_session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a console login lasts, hours "
        "(PIPELINE_DESK_SESSION_HOURS).",
    )
    desk_secure_cookies: bool = Field(
        False, description="Mark the console's cookies Secure even when the request did not "
        "arrive over HTTPS (a TLS proxy in front that does not say so); over HTTPS they always "
        "are (PIPELINE_DESK_SECURE_COOKIES).",
    )
    desk_language: Literal["es", "en"] = Field(
        "es", description="The console's language until a reader picks another "
        "(PIPELINE_DESK_LANGUAGE).",
    )
    desk_time_zone: str = Field(
        "Europe/Madrid", description="IANA time zone of the console's times until a reader "
        "picks another (PIPELINE_DESK_TIME_ZONE).",
    )
    desk_stale_after_s: float = Field(
        900.0, gt=0, description="The console says its data is stale when the store's newest "
        "mention was stored longer ago than this, seconds (PIPELINE_DESK_STALE_AFTER_S).",
    )
    desk_refresh_s: float = Field(
        10.0, ge=1, description="How often an open console page asks for new mentions, "
        "incidents and the store's freshness, seconds (PIPELINE_DESK_REFRESH_S).",
    )

    inbox_file: Path | None = Field(
        PACKAGE_DATA / "inbox.example.yaml", description="The inbox's SLA per brand, saved "
        "answers per reason and language, and forwarding rules (YAML; README: Inbox) "
        "(PIPELINE_INBOX_FILE).",
    )
    inbox_db_url: str = Field(
        "", description="SQLAlchemy URL of the inbox's workflow database, shared by every desk "
        "(sqlite:///file or postgresql+psycopg://...); empty means a SQLite file next to an "
        "embedded store (PIPELINE_INBOX_DB_URL).",
    )
    inbox_poll_s: float = Field(
        2.0, gt=0, description="How often the desk delivers queued forwards and applies the "
        "forwarding rules, seconds (PIPELINE_INBOX_POLL_S).",
    )

    # --- mentions and queries -------------------------------------------------------------
    brands_file: Path = Field(
        PACKAGE_DATA / "brands.example.yaml",
        description="Listening queries: brands, competitors and their boolean queries "
        "(PIPELINE_BRANDS_FILE).",
    )
    sources_file: Path = Field(
        PACKAGE_DATA / "sources.example.yaml",
        description="What `mentions source` listens to: Jetstream endpoints, Mastodon "
        "instances and streams, RSS/Atom feeds (README: Real sources) "
        "(PIPELINE_SOURCES_FILE).",
    )
    max_text_chars: int = Field(
        20_000, ge=1, description="Longest accepted mention text, in characters "
        "(PIPELINE_MAX_TEXT_CHARS).",
    )
    max_record_bytes: int = Field(
        # half of the producers' ~1 MB request limit: an accepted mention, tagged and scored,
        # must still fit one record of every topic downstream
        512 * 1024, ge=1, description="Largest accepted raw record, in bytes "
        "(PIPELINE_MAX_RECORD_BYTES).",
    )

    @field_validator("stages", "languages", mode="before")
    @classmethod
    def _split_stages(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sentiment_labels", mode="before")
    @classmethod
    def _parse_label_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = (item.split(":", 1) for item in value.split(",") if ":" in item)
            return {name.strip(): label.strip() for name, label in pairs}
        return value

    @field_validator("dedup_hot_brands", mode="before")
    @classmethod
    def _parse_hot_brands(cls, value: Any) -> Any:
        if isinstance(value, str):
            spreads: dict[str, int] = {}
            for part in filter(None, (item.strip() for item in value.split(","))):
                brand, _, spread = part.partition(":")
                spreads[brand.strip()] = int(spread or 2)
            return spreads
        return value

    @field_validator("desk_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Madrid)") from None
        return value

    @property
    def store_url_or_default(self) -> str:
        """The store URL, the default embedded folder when none is set."""
        if self.store_url:
            return self.store_url
        data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return f"chdb://{Path(data_home).resolve() / 'mentions' / 'store'}"

    # --- derived names --------------------------------------------------------------------
    def topic(self, name: str) -> str:
        """Full topic name for a pipeline topic (``raw``, ``routed``, ``deadletter``...)."""
        return f"{self.topic_prefix}.{name}"

    def redacted(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict with secrets masked (for logs and `config`)."""
        dumped = self.model_dump(mode="json")
        for name, value in dumped.items():
            if isinstance(getattr(self, name), SecretStr):
                dumped[name] = "**********" if value else ""
        return dumped


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, with explicit (CLI) overrides on top.

    ``None`` overrides are ignored so that unset CLI flags fall back to the environment.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)


# What a process that starts workers (demo, integration tests, benchmarks) hands down to them:
# the broker, the topic and group names and the producer batching it chose.
WORKER_SHARED_SETTINGS = ("broker", "app_id", "topic_prefix", "alerts_topic", "partitions",
                          "producer_batch_bytes", "crisis_lateness_s")


def settings_env(settings: Settings,
                 names: Iterable[str] = WORKER_SHARED_SETTINGS) -> dict[str, str]:
    """The ``PIPELINE_*`` variables that give a child process these settings' values.

    >>> settings_env(Settings(partitions=3), ["partitions"])
    {'PIPELINE_PARTITIONS': '3'}
    """
    return {f"{ENV_PREFIX}{name.upper()}": str(getattr(settings, name)) for name in names}


def describe_settings() -> list[tuple[str, str, str]]:
    """Rows of (environment variable, default, description) for every settings field."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = ""
        rows.append((f"{ENV_PREFIX}{name.upper()}", str(default), field.description or ""))
    return rows
