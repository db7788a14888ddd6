"""Tests of services/studies/."""
