"""Streaming social-listening pipeline: mentions in, enriched mentions and crisis alerts out."""
