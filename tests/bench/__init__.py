"""Helpers of `python -m tests.benchmark` (see tests/benchmark.py): figures, observers, scenarios."""
