"""Benchmarks: throughput, latency and quality harnesses (see benchmarks/README.md)."""
