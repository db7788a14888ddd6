"""Tests of gateway/, the edge: limits, headers, problem documents, health, Kong, forwarded headers."""
