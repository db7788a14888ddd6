"""Tests of services/consents/."""
