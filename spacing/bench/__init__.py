"""Throughput benchmarks, run as ``python -m spacing.bench <subcommand>`` (never as timed tests)."""
