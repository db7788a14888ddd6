"""Tests of services/observations/."""
