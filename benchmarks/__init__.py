"""Benchmarks of the project, run by ``make bench`` (``python -m benchmarks``)."""
