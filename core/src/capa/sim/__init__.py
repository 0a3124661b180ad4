"""Simulated devices shipped with core, for tests, examples and benchmarks."""
