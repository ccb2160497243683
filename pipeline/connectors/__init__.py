"""Connectors: sources that feed mentions into the raw topic (replay, synthetic firehose)."""
