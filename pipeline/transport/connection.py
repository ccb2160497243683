"""How every Kafka client of the pipeline connects: one reading of the broker settings.

Three client libraries talk to the broker: Faust (the agents), aiokafka (the batched
consumers) and kafka-python (the admin client, the replay producer, the demo's and the tests'
tools). Each wants the same connection in its own words; this module is the one place that
turns :class:`~pipeline.config.Settings` into them, so a TLS or SASL setting cannot reach one
client and miss another.

>>> from pipeline.config import Settings
>>> settings = Settings(broker="k1:9092,k2:9092")
>>> faust_broker_urls(settings)
['kafka://k1:9092', 'kafka://k2:9092']
>>> aiokafka_options(settings)
{'bootstrap_servers': ['k1:9092', 'k2:9092'], 'security_protocol': 'PLAINTEXT'}
>>> faust_credentials(settings) is None
True
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from pipeline.config import Settings

# a member heartbeats at most this far apart, however long its session timeout
MAX_HEARTBEAT_INTERVAL_S = 3.0


def bootstrap_servers(settings: Settings) -> list[str]:
    """The ``host:port`` bootstrap addresses of the settings' comma-separated broker list."""
    return settings.broker.split(",")


def faust_broker_urls(settings: Settings) -> list[str]:
    """The bootstrap addresses as Faust's ``broker`` URLs."""
    return [f"kafka://{server}" for server in bootstrap_servers(settings)]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for the brokers (with the CA bundle when one is set); None without TLS."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )


def _sasl_options(settings: Settings) -> dict[str, Any]:
    """The SASL options (the same names in aiokafka and kafka-python); empty without SASL."""
    if not settings.security_protocol.startswith("SASL"):
        return {}
    return {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.sasl_password.get_secret_value(),
    }


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for TLS/SASL, or ``None`` for plaintext."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments of an aiokafka consumer or producer."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": settings.security_protocol,
        **_sasl_options(settings),
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    return options


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments of a kafka-python client (producer, consumer, admin).

    kafka-python builds its own TLS context from a CA file, so it gets the file, not a
    context.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": settings.security_protocol,
        **_sasl_options(settings),
    }
    if settings.ssl_cafile is not None:
        options["ssl_cafile"] = str(settings.ssl_cafile)
    return options


def heartbeat_interval_s(settings: Settings) -> float:
    """How often a consumer-group member heartbeats, for Faust's and aiokafka's consumers.

    A third of the session timeout, so that two lost heartbeats do not yet cost the
    membership (Kafka's documented guidance), and at most ``MAX_HEARTBEAT_INTERVAL_S``.

    >>> from pipeline.config import Settings
    >>> heartbeat_interval_s(Settings(group_session_timeout_s=6.0))
    2.0
    >>> heartbeat_interval_s(Settings(group_session_timeout_s=45.0))
    3.0
    """
    return min(MAX_HEARTBEAT_INTERVAL_S, settings.group_session_timeout_s / 3)
