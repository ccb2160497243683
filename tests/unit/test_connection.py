"""Every Kafka client connects from the same settings (no broker: nothing is started)."""

from __future__ import annotations

import ssl

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.config import Settings
from pipeline.transport.connection import (
    aiokafka_options,
    faust_credentials,
    kafka_client_options,
)

SASL_SSL = Settings(
    broker="k1:9093,k2:9093", security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
    sasl_username="listener", sasl_password="hunter2",
)


def test_plaintext_gives_the_bootstrap_list_and_no_credentials() -> None:
    settings = Settings(broker="k1:9092,k2:9092")
    expected = {"bootstrap_servers": ["k1:9092", "k2:9092"], "security_protocol": "PLAINTEXT"}
    assert aiokafka_options(settings) == expected
    assert kafka_client_options(settings) == expected
    assert faust_credentials(settings) is None


def test_sasl_over_tls_reaches_every_client_in_its_own_words() -> None:
    sasl = {"sasl_mechanism": "PLAIN", "sasl_plain_username": "listener",
            "sasl_plain_password": "hunter2"}
    aiokafka = aiokafka_options(SASL_SSL)
    assert aiokafka.items() >= {"security_protocol": "SASL_SSL", **sasl}.items()
    assert isinstance(aiokafka["ssl_context"], ssl.SSLContext)
    # kafka-python builds its own context; it only gets a CA file when one is set
    assert kafka_client_options(SASL_SSL) == {
        "bootstrap_servers": ["k1:9093", "k2:9093"], "security_protocol": "SASL_SSL", **sasl,
    }
    credentials = faust_credentials(SASL_SSL)
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("listener", "hunter2")
    assert isinstance(credentials.ssl_context, ssl.SSLContext)


def test_tls_without_sasl_gives_a_context_and_no_sasl_options() -> None:
    settings = Settings(security_protocol="SSL")
    assert isinstance(faust_credentials(settings), faust.SSLCredentials)
    assert not any(key.startswith("sasl") for key in aiokafka_options(settings))
    assert isinstance(aiokafka_options(settings)["ssl_context"], ssl.SSLContext)


async def test_aiokafka_takes_every_option() -> None:
    # constructing a client checks the option names; nothing connects until start()
    consumer = AIOKafkaConsumer(**aiokafka_options(SASL_SSL))
    producer = AIOKafkaProducer(**aiokafka_options(SASL_SSL))
    assert consumer._client._sasl_plain_username == "listener"
    assert producer.client._sasl_plain_username == "listener"
