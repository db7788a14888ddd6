"""Tests of services/accounting."""
