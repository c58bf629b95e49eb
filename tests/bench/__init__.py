"""Benchmarks: plain scripts that print figures (`python -m tests.bench.NAME`); not part of the test suite."""
