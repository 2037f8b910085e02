"""The simulator part: simulated history (backfill), the load generator and signal models, for demos,
tests and benchmarks. It drives the edge's own processing so simulated data looks like real data."""
