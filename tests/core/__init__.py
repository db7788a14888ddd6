"""Tests of core/, the kernel: canonical JSON and the rate limiter."""
