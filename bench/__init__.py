"""Benchmarks that ``make bench`` runs as ``python -m bench.<name>``: they print figures and assert nothing."""
