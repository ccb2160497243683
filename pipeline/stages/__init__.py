"""Pure stage cores: plain functions and classes over mentions and batches, no Kafka."""
