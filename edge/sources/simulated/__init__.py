"""Simulated source: realistic signals for demos, tests and benchmarks."""
