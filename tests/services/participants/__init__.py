"""Tests of services/participants/."""
